/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: turns on a shared stage (private to ovi-core).
 *
 * The users of one loaded stage (two pipelines, `ovi generate` and an
 * element, ...) take turns on its backend and scratch buffers one step at a
 * time (a denoising step, a frame group) instead of one whole clip at a
 * time. Turns are granted in the order they were asked for, so two users
 * alternate step by step, and a wait ends as soon as the waiter's
 * GCancellable fires (OVI_ERROR_CANCELLED): a flush never waits for
 * another user's clip, at most for the step that is running.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  GMutex mutex;
  GCond cond;
  gboolean busy;
  GQueue waiters; /* Waiter *, first asked first */
} OviTurns;

void ovi_turns_init (OviTurns *turns);
void ovi_turns_clear (OviTurns *turns);
/* Waits for the turn; FALSE with OVI_ERROR_CANCELLED (`what` names the
 * stage in the message) when `cancellable` fires first, and then the turn
 * is not held. */
gboolean ovi_turns_take (OviTurns *turns, GCancellable *cancellable,
                         const char *what, GError **error);
/* Hands the turn to the longest waiter, if any. */
void ovi_turns_give (OviTurns *turns);

G_END_DECLS
