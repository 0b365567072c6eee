/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: turns on a shared stage (see ovi-turns.h). */
#include "ovi-turns.h"

#include "ovi-error.h"

typedef struct {
  gboolean granted;
} Waiter;

void
ovi_turns_init (OviTurns *turns)
{
  g_mutex_init (&turns->mutex);
  g_cond_init (&turns->cond);
  turns->busy = FALSE;
  g_queue_init (&turns->waiters);
}

void
ovi_turns_clear (OviTurns *turns)
{
  g_warn_if_fail (!turns->busy && g_queue_is_empty (&turns->waiters));
  g_cond_clear (&turns->cond);
  g_mutex_clear (&turns->mutex);
}

static void
wake_all (GCancellable *cancellable, gpointer user_data)
{
  OviTurns *turns = user_data;

  g_mutex_lock (&turns->mutex);
  g_cond_broadcast (&turns->cond);
  g_mutex_unlock (&turns->mutex);
}

/* called with the mutex held */
static void
hand_over (OviTurns *turns)
{
  Waiter *next = g_queue_pop_head (&turns->waiters);

  if (next == NULL) {
    turns->busy = FALSE;
    return;
  }
  next->granted = TRUE; /* busy stays set: the turn passes directly */
  g_cond_broadcast (&turns->cond);
}

gboolean
ovi_turns_take (OviTurns *turns, GCancellable *cancellable, const char *what,
                GError **error)
{
  Waiter me = { FALSE };
  gulong handler = 0;
  gboolean cancelled;

  if (cancellable)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (wake_all), turns,
                                     NULL);
  g_mutex_lock (&turns->mutex);
  if (!turns->busy && g_queue_is_empty (&turns->waiters)) {
    turns->busy = TRUE;
    me.granted = TRUE;
  } else {
    g_queue_push_tail (&turns->waiters, &me);
    while (!me.granted && !g_cancellable_is_cancelled (cancellable))
      g_cond_wait (&turns->cond, &turns->mutex);
    if (!me.granted)
      g_queue_remove (&turns->waiters, &me);
  }
  cancelled = g_cancellable_is_cancelled (cancellable);
  if (cancelled && me.granted)
    hand_over (turns);
  g_mutex_unlock (&turns->mutex);
  if (handler)
    g_cancellable_disconnect (cancellable, handler);
  if (cancelled) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_CANCELLED, "%s cancelled", what);
    return FALSE;
  }
  return TRUE;
}

void
ovi_turns_give (OviTurns *turns)
{
  g_mutex_lock (&turns->mutex);
  hand_over (turns);
  g_mutex_unlock (&turns->mutex);
}
