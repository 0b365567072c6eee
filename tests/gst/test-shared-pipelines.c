/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: two pipelines sharing one loaded denoiser (tiny model, CPU).
 *
 * Pipelines A and B (ovitextsrc ! ovidenoise ! fakesink, same settings) in
 * one process share the engine cache and so one denoise stage. A's
 * streaming thread is held in its step message at step HOLD_STEP, outside
 * the denoiser's turn, until B has gone to READY: B's change to READY must
 * therefore end without A running another step (with one lock per clip it
 * would wait for A's clip and the hang guard fails the test). Checks: B
 * gets to READY after at most the step it was running, and A then finishes
 * its clip (EOS, every step reported).
 */
#include <gst/gst.h>

#define STEPS     8
#define HOLD_STEP 2
/* B's clip is long, so it cannot finish between the moment the test sees it
 * running and its change to READY, however loaded the machine */
#define B_STEPS 400
/* a guard against a hang, not a timing check */
#define GUARD_US (120 * G_TIME_SPAN_SECOND)

typedef struct {
  GMutex lock;
  GCond cond;
  GstElement *a, *b;
  int a_steps, b_steps;
  gboolean a_held, b_ready, guard_fired;
} Shared;

/* waits (lock held) until *flag is set */
static void
wait_flag (Shared *sh, const gboolean *flag)
{
  gint64 end = g_get_monotonic_time () + GUARD_US;

  while (!*flag)
    if (!g_cond_wait_until (&sh->cond, &sh->lock, end)) {
      sh->guard_fired = TRUE;
      return;
    }
}

static void
wait_steps (Shared *sh, const int *steps, int at_least)
{
  gint64 end = g_get_monotonic_time () + GUARD_US;

  while (*steps < at_least)
    if (!g_cond_wait_until (&sh->cond, &sh->lock, end)) {
      sh->guard_fired = TRUE;
      return;
    }
}

/* runs in the posting (streaming) thread */
static GstBusSyncReply
on_message (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  Shared *sh = user_data;
  const GstStructure *s = gst_message_get_structure (msg);
  gboolean from_a;
  int step;

  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT
      || !gst_structure_has_name (s, "ovi-progress")
      || !gst_structure_get_int (s, "step", &step))
    return GST_BUS_PASS;
  from_a = bus == GST_ELEMENT_BUS (sh->a);
  g_mutex_lock (&sh->lock);
  if (from_a)
    sh->a_steps = step;
  else
    sh->b_steps = step;
  g_cond_broadcast (&sh->cond);
  if (from_a && step == HOLD_STEP) {
    sh->a_held = TRUE;
    g_cond_broadcast (&sh->cond);
    wait_flag (sh, &sh->b_ready);
  }
  g_mutex_unlock (&sh->lock);
  return GST_BUS_PASS;
}

static GstElement *
make_pipeline (Shared *sh, int steps)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *desc = g_strdup_printf (
      "ovitextsrc prompt=\"A lighthouse at dusk. <AUDCAP>waves<ENDAUDCAP>\" "
      "num-clips=1 ! ovidenoise steps=%d seed=5 ! fakesink",
      steps);
  GstElement *p = gst_parse_launch (desc, &error);
  GstBus *bus;

  g_assert_no_error (error);
  bus = gst_element_get_bus (p);
  gst_bus_set_sync_handler (bus, on_message, sh, NULL);
  gst_object_unref (bus);
  return p;
}

static void
test_flush_one_of_two (void)
{
  Shared sh = { 0 };
  GstMessage *msg;
  GstBus *bus;
  int b_steps_at_ready_call, a_steps_at_ready;

  g_mutex_init (&sh.lock);
  g_cond_init (&sh.cond);
  sh.a = make_pipeline (&sh, STEPS);
  sh.b = make_pipeline (&sh, B_STEPS);
  g_assert_cmpint (gst_element_set_state (sh.a, GST_STATE_PLAYING), !=,
                   GST_STATE_CHANGE_FAILURE);
  g_assert_cmpint (gst_element_set_state (sh.b, GST_STATE_PLAYING), !=,
                   GST_STATE_CHANGE_FAILURE);

  /* A holds at HOLD_STEP (outside the denoiser's turn); B runs meanwhile */
  g_mutex_lock (&sh.lock);
  wait_flag (&sh, &sh.a_held);
  wait_steps (&sh, &sh.b_steps, 1);
  b_steps_at_ready_call = sh.b_steps;
  g_mutex_unlock (&sh.lock);
  g_assert_false (sh.guard_fired);

  g_assert_cmpint (gst_element_set_state (sh.b, GST_STATE_READY), ==,
                   GST_STATE_CHANGE_SUCCESS);
  g_mutex_lock (&sh.lock);
  a_steps_at_ready = sh.a_steps;
  g_test_message ("B: %d steps when sent to READY, %d when there; A at %d",
                  b_steps_at_ready_call, sh.b_steps, a_steps_at_ready);
  g_assert_cmpint (a_steps_at_ready, ==, HOLD_STEP);
  g_assert_cmpint (sh.b_steps - b_steps_at_ready_call, <=, 1);
  g_assert_cmpint (sh.b_steps, <, B_STEPS);
  sh.b_ready = TRUE;
  g_cond_broadcast (&sh.cond);
  g_mutex_unlock (&sh.lock);

  /* A finishes its clip */
  bus = gst_element_get_bus (sh.a);
  msg = gst_bus_timed_pop_filtered (bus, 300 * GST_SECOND,
                                    GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (msg);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);
  g_assert_cmpint (sh.a_steps, ==, STEPS);
  g_assert_false (sh.guard_fired);

  gst_element_set_state (sh.a, GST_STATE_NULL);
  gst_element_set_state (sh.b, GST_STATE_NULL);
  gst_object_unref (sh.a);
  gst_object_unref (sh.b);
  g_cond_clear (&sh.cond);
  g_mutex_clear (&sh.lock);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/shared-pipelines/flush-one-of-two", test_flush_one_of_two);
  return g_test_run ();
}
