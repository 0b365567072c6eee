/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: device-memory accounting for a backend.
 *
 * Attaching an account wraps the backend's `new_storage` (every tensor
 * ovi_backend_new_tensor / _new_act / _upload makes goes through it): the
 * bytes alive and their peak are counted, and an optional limit makes an
 * allocation past it fail with OVI_ERROR_OUT_OF_MEMORY (needed / in use /
 * limit in the message), as a GPU with that much free memory would. Host
 * tensors that never go through the backend (weights read from a file on
 * the CPU backend, pinned host slabs) are not counted: on the CPU backend
 * the account simulates the GPU's memory. Thread-safe. */
#pragma once

#include "ovi-backend.h"

G_BEGIN_DECLS

typedef struct _OviMemAccount OviMemAccount;

/* limit 0: count only. One account per backend at a time. */
OviMemAccount *ovi_mem_account_attach (OviBackend *be, guint64 limit);
/* restores the backend's op table; call before ovi_backend_free. Storages
 * still alive keep the counters valid until they go. */
void ovi_mem_account_detach (OviMemAccount *acc);

guint64 ovi_mem_account_used (OviMemAccount *acc);
guint64 ovi_mem_account_peak (OviMemAccount *acc);
guint64 ovi_mem_account_limit (OviMemAccount *acc);
void ovi_mem_account_set_limit (OviMemAccount *acc, guint64 limit);
/* peak := used */
void ovi_mem_account_reset_peak (OviMemAccount *acc);
/* allocations refused because of the limit */
guint ovi_mem_account_refusals (OviMemAccount *acc);

/* "12.3 GiB" / "512.0 MiB" / "17 B" (free with g_free) */
char *ovi_format_bytes (guint64 bytes);

G_END_DECLS
