/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the jobs in SQLite (WAL), so a crash loses none.
 *
 * The database is <data-dir>/jobs.sqlite. Only state changes are written
 * (progress is live only). Used from the main thread only.
 */
#pragma once

#include "ovi-server-job.h"

G_BEGIN_DECLS

typedef struct _OviStore OviStore;

OviStore *ovi_store_open (const gchar *path, GError **error);
void ovi_store_close (OviStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviStore, ovi_store_close)

/* inserts a new job and sets job->seq */
gboolean ovi_store_insert (OviStore *store, OviJob *job, GError **error);
/* writes state, error, times and attempts */
gboolean ovi_store_update (OviStore *store, const OviJob *job, GError **error);
gboolean ovi_store_delete (OviStore *store, const gchar *id, GError **error);
/* Every job, in submission order. A job found `running` was interrupted
 * (the server died); it comes back `queued`, to run again. */
GPtrArray *ovi_store_load (OviStore *store, GError **error);

G_END_DECLS
