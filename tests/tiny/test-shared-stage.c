/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: loading stages (ovi-stage.h) and two users of one loaded denoiser
 * stage (tiny model, CPU backend).
 *
 * Two threads run requests on the same denoise stage, as two pipelines
 * sharing a stage do. User A waits in its step callback until user B has
 * finished a step (both are mid-clip), then cancels B and waits until B's
 * run has returned: that wait can only end if B stops waiting for the
 * denoiser without A running another step (with one lock per clip it would
 * never end, and the guard below fails the test). Checks: B fails with
 * OVI_ERROR_CANCELLED after at most the one step it was running, and A's
 * latents equal those of A's request run alone.
 */
#include "ovi-engine.h"
#include "ovi-presets.h"
#include "ovi-stage.h"
#include "ovi-test-util.h"
#include "ovi-tiny.h"

#include <string.h>

#define STEPS       8
#define CANCEL_STEP 3
/* a guard against a hang, not a timing check */
#define GUARD_US (120 * G_TIME_SPAN_SECOND)

static char *tiny_dir;
static OviStageConfig config; /* the tiny model on the CPU backend */

typedef struct {
  GMutex lock;
  GCond cond;
  int a_steps, b_steps;
  int b_steps_at_cancel;
  gboolean b_returned;
  gboolean guard_fired;
  GCancellable *b_cancel;
} Shared;

static OviTensor *
text (int n, int dim, float value)
{
  int64_t shape[2] = { n, dim };
  OviTensor *t = ovi_tensor_new_f32 (2, shape);
  float *v = ovi_tensor_data (t);

  for (int64_t i = 0; i < (int64_t) n * dim; i++)
    v[i] = value * (float) ((i * 7919) % 13 - 6) / 6.0f;
  return t;
}

typedef struct {
  OviTensor *pos, *vneg, *aneg;
  OviDenoiseRequest req;
} Request;

static void
request_init (Request *r, const OviModelPreset *m, guint64 seed)
{
  r->pos = text (7, m->text_dim, 1.0f);
  r->vneg = text (5, m->text_dim, -0.5f);
  r->aneg = text (6, m->text_dim, 0.25f);
  ovi_denoise_request_init (&r->req);
  r->req.text_pos = r->pos;
  r->req.text_video_neg = r->vneg;
  r->req.text_audio_neg = r->aneg;
  r->req.seed = seed;
  r->req.steps = STEPS;
  r->req.slg_layer = m->slg_layer;
  r->req.width = m->default_width;
  r->req.height = m->default_height;
}

static void
request_clear (Request *r)
{
  g_clear_pointer (&r->pos, ovi_tensor_unref);
  g_clear_pointer (&r->vneg, ovi_tensor_unref);
  g_clear_pointer (&r->aneg, ovi_tensor_unref);
}

/* waits on sh->cond until *flag_or_count reaches `at_least` */
static void
wait_for (Shared *sh, const int *value, int at_least)
{
  gint64 end = g_get_monotonic_time () + GUARD_US;

  while (*value < at_least)
    if (!g_cond_wait_until (&sh->cond, &sh->lock, end)) {
      sh->guard_fired = TRUE;
      return;
    }
}

static void
a_on_step (int step, int steps, gpointer user_data)
{
  Shared *sh = user_data;

  g_mutex_lock (&sh->lock);
  sh->a_steps = step;
  if (step == 1)
    wait_for (sh, &sh->b_steps, 1);
  if (step == CANCEL_STEP) {
    sh->b_steps_at_cancel = sh->b_steps;
    g_cancellable_cancel (sh->b_cancel);
    wait_for (sh, &sh->b_returned, TRUE);
  }
  g_mutex_unlock (&sh->lock);
}

static void
b_on_step (int step, int steps, gpointer user_data)
{
  Shared *sh = user_data;

  g_mutex_lock (&sh->lock);
  sh->b_steps = step;
  g_cond_broadcast (&sh->cond);
  g_mutex_unlock (&sh->lock);
}

typedef struct {
  OviDenoiser *d;
  Request *r;
  Shared *sh;
  OviTensor *video, *audio;
  GError *error;
} BRun;

static gpointer
run_b (gpointer data)
{
  BRun *b = data;

  ovi_denoiser_run (b->d, &b->r->req, b_on_step, b->sh, b->sh->b_cancel,
                    &b->video, &b->audio, &b->error);
  g_mutex_lock (&b->sh->lock);
  b->sh->b_returned = TRUE;
  g_cond_broadcast (&b->sh->cond);
  g_mutex_unlock (&b->sh->lock);
  return NULL;
}

static void
assert_equal (const OviTensor *a, const OviTensor *b)
{
  g_assert_cmpint (ovi_tensor_numel (a), ==, ovi_tensor_numel (b));
  g_assert_cmpmem (ovi_tensor_data (a), ovi_tensor_nbytes (a),
                   ovi_tensor_data (b), ovi_tensor_nbytes (b));
}

static void
test_cancel_one_of_two (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviStage) stage = NULL;
  g_autoptr (OviTensor) solo_video = NULL, solo_audio = NULL;
  g_autoptr (OviTensor) a_video = NULL, a_audio = NULL;
  const OviModelPreset *m;
  OviDenoiser *d;
  Request ra, rb;
  Shared sh = { 0 };
  BRun b = { 0 };
  GThread *thread;

  stage = ovi_stage_load (OVI_STAGE_DENOISE, &config, &error);
  g_assert_no_error (error);
  d = ovi_stage_get_denoiser (stage);
  g_assert_nonnull (d);
  m = ovi_model_preset_lookup ("tiny", &error);
  g_assert_no_error (error);
  request_init (&ra, m, 103);
  request_init (&rb, m, 7);

  g_assert_true (ovi_denoiser_run (d, &ra.req, NULL, NULL, NULL, &solo_video,
                                   &solo_audio, &error));
  g_assert_no_error (error);

  g_mutex_init (&sh.lock);
  g_cond_init (&sh.cond);
  sh.b_cancel = g_cancellable_new ();
  b = (BRun){ .d = d, .r = &rb, .sh = &sh };
  thread = g_thread_new ("user-b", run_b, &b);
  g_assert_true (ovi_denoiser_run (d, &ra.req, a_on_step, &sh, NULL, &a_video,
                                   &a_audio, &error));
  g_assert_no_error (error);
  g_thread_join (thread);

  g_assert_false (sh.guard_fired);
  g_assert_error (b.error, OVI_ERROR, OVI_ERROR_CANCELLED);
  g_assert_null (b.video);
  g_assert_null (b.audio);
  g_test_message ("B: %d steps when cancelled, %d when it returned",
                  sh.b_steps_at_cancel, sh.b_steps);
  g_assert_cmpint (sh.b_steps_at_cancel, >=, 1);
  g_assert_cmpint (sh.b_steps - sh.b_steps_at_cancel, <=, 1);
  g_assert_cmpint (sh.a_steps, ==, STEPS);
  assert_equal (a_video, solo_video);
  assert_equal (a_audio, solo_audio);

  g_clear_error (&b.error);
  g_object_unref (sh.b_cancel);
  g_cond_clear (&sh.cond);
  g_mutex_clear (&sh.lock);
  request_clear (&ra);
  request_clear (&rb);
}

static void
test_plan (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviStagePlan) a = NULL, b = NULL, text = NULL, bad = NULL;
  g_autoptr (OviStage) stage = NULL;
  OviStageConfig c = config;

  /* same config, same key; another stage, another key */
  a = ovi_stage_plan_new (OVI_STAGE_DENOISE, &config, &error);
  g_assert_no_error (error);
  b = ovi_stage_plan_new (OVI_STAGE_DENOISE, &config, &error);
  g_assert_no_error (error);
  text = ovi_stage_plan_new (OVI_STAGE_TEXT, &config, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ovi_stage_plan_get_key (a), ==, ovi_stage_plan_get_key (b));
  g_assert_cmpstr (ovi_stage_plan_get_key (a), !=,
                   ovi_stage_plan_get_key (text));
  g_assert_nonnull (strstr (ovi_stage_plan_get_description (a), "fusion DiT"));
  g_assert_nonnull (strstr (ovi_stage_plan_get_description (a), "on cpu"));

  stage = ovi_stage_plan_load (text, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ovi_stage_get_kind (stage), ==, OVI_STAGE_TEXT);
  g_assert_cmpstr (ovi_stage_get_key (stage), ==,
                   ovi_stage_plan_get_key (text));
  g_assert_cmpstr (ovi_stage_get_device_name (stage), ==, "cpu");
  g_assert_cmpint (ovi_stage_get_vram_mode (stage), ==, OVI_VRAM_MODE_STANDARD);
  g_assert_cmpstr (ovi_stage_get_paths (stage)->variant, ==, "tiny");
  g_assert_nonnull (ovi_stage_get_text_encoder (stage));
  g_assert_null (ovi_stage_get_denoiser (stage));

  /* bad input: an error naming the value */
  c.backend = "gpu";
  bad = ovi_stage_plan_new (OVI_STAGE_DENOISE, &c, &error);
  g_assert_null (bad);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "\"gpu\""));
  g_clear_error (&error);
  c.backend = "cpu";
  c.vram_mode = OVI_VRAM_MODE_FP8;
  bad = ovi_stage_plan_new (OVI_STAGE_DENOISE, &c, &error);
  g_assert_null (bad);
  g_assert_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "vram-mode=fp8"));
  g_clear_error (&error);
  c = config;
  c.model_dir = "/nonexistent/ovi-models";
  bad = ovi_stage_plan_new (OVI_STAGE_DENOISE, &c, &error);
  g_assert_null (bad);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "/nonexistent/ovi-models"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tiny_dir = ovi_test_make_tiny_dir ("ovi-shared-stage-XXXXXX",
                                     OVI_TINY_DEFAULT_SEED);
  ovi_stage_config_init (&config);
  config.model_dir = tiny_dir;
  config.backend = "cpu";
  config.n_threads = 2;
  g_test_add_func ("/stage/plan", test_plan);
  g_test_add_func ("/stage/cancel-one-of-two", test_cancel_one_of_two);
  return ovi_test_run_then_remove (tiny_dir);
}
