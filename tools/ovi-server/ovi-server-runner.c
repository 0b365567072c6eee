/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the job runner (see ovi-server-runner.h). */
#include "ovi-server-runner.h"

#include <math.h>

#include <glib/gstdio.h>

#define CANCEL_MESSAGE "ovi-server-cancel"
#define QUIT_MESSAGE   "ovi-server-quit"
#define ENGINE_CONTEXT "ovi.engine"

static const gchar job_pipeline[]
    = "ovitextsrc name=ovitextsrc num-clips=1 ! ovidenoise name=ovidenoise "
      "! tee name=t "
      "t. ! queue ! ovivaedec name=ovivaedec ! videoconvert "
      "! video/x-raw,format=I420 ! x264enc ! h264parse ! queue ! mux. "
      "t. ! queue ! oviaudiodec name=oviaudiodec ! audioconvert "
      "! audioresample ! avenc_aac ! aacparse ! queue ! mux. "
      "mp4mux name=mux faststart=true ! filesink name=sink";
static const gchar image_branch[]
    = "filesrc name=image ! decodebin ! videoconvert ! ovidenoise.image";

static const gchar *const ovi_elements[]
    = { "ovitextsrc", "ovidenoise", "ovivaedec", "oviaudiodec" };

typedef struct {
  gchar *id;
  JsonObject *params;
  gchar *image_path;
  gchar *out_path;
} Task;

struct _OviRunner {
  gchar *model_dir;
  OviRunnerCallbacks callbacks;
  gpointer user_data;
  GMainContext *context;
  GThread *thread;
  GAsyncQueue *tasks;
  GstElement *warm;       /* the last pipeline, in READY (runner thread) */
  GstContext *engine_ctx; /* "ovi.engine", from the first pipeline */
  gint n_loads;           /* atomic */

  GMutex lock; /* guards the fields below */
  GstElement *pipeline;
  gchar *current_id;
  gchar *cancel_id; /* a cancel for a task not started yet */
  gboolean quitting;
};

typedef struct {
  OviRunner *runner;
  gchar *id;
  OviJobState state;
  gchar *error;
  gint step, steps, cancel_step;
  gdouble eta;
} Report;

static Task quit_task;

static void
task_free (Task *t)
{
  g_free (t->id);
  json_object_unref (t->params);
  g_free (t->image_path);
  g_free (t->out_path);
  g_free (t);
}

static void
report_free (Report *r)
{
  g_free (r->id);
  g_free (r->error);
  g_free (r);
}

static gboolean
deliver_progress (gpointer data)
{
  Report *r = data;
  r->runner->callbacks.progress (r->id, r->step, r->steps, r->eta,
                                 r->runner->user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
deliver_finished (gpointer data)
{
  Report *r = data;
  r->runner->callbacks.finished (r->id, r->state, r->error, r->step,
                                 r->cancel_step, r->runner->user_data);
  return G_SOURCE_REMOVE;
}

static void
report (OviRunner *runner, GSourceFunc func, Report *r)
{
  r->runner = runner;
  g_main_context_invoke_full (runner->context, G_PRIORITY_DEFAULT, func, r,
                              (GDestroyNotify) report_free);
}

/* ---- building a job's pipeline ---- */

static GstElement *
build_pipeline (OviRunner *runner, Task *t, const gchar *part_path,
                GError **error)
{
  g_autofree gchar *desc
      = t->image_path ? g_strdup_printf ("%s %s", job_pipeline, image_branch)
                      : g_strdup (job_pipeline);
  g_autoptr (GstElement) pipeline = gst_parse_launch (desc, error);
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstElement) den = NULL;
  guint i;

  if (!pipeline)
    return NULL;
  for (i = 0; runner->model_dir && i < G_N_ELEMENTS (ovi_elements); i++) {
    g_autoptr (GstElement) e
        = gst_bin_get_by_name (GST_BIN (pipeline), ovi_elements[i]);
    g_object_set (e, "model-dir", runner->model_dir, NULL);
  }
  /* LoRAs at run time: a job's LoRAs never reload the shared weights */
  den = gst_bin_get_by_name (GST_BIN (pipeline), "ovidenoise");
  gst_util_set_object_arg (G_OBJECT (den), "lora-mode", "unmerged");
  if (!ovi_job_params_apply (t->params, GST_BIN (pipeline), error))
    return NULL;
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "location", part_path, NULL);
  if (t->image_path) {
    g_autoptr (GstElement) src
        = gst_bin_get_by_name (GST_BIN (pipeline), "image");
    g_object_set (src, "location", t->image_path, NULL);
  }
  /* the engine of the earlier jobs, so no weights load twice */
  if (runner->engine_ctx)
    gst_element_set_context (pipeline, runner->engine_ctx);
  return g_steal_pointer (&pipeline);
}

/* ---- running it ---- */

typedef struct {
  OviJobState state;
  gchar *error;
  gint step, steps, cancel_step;
  gboolean quit;
} Outcome;

static gchar *
error_text (GstMessage *msg)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *debug = NULL;

  gst_message_parse_error (msg, &err, &debug);
  g_printerr ("ovi-server: job error from %s: %s (%s)\n",
              GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message,
              debug ? debug : "");
  return g_strdup_printf ("%s: %s", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
                          err->message);
}

static void
on_progress_message (OviRunner *runner, const gchar *id, GstMessage *msg,
                     Outcome *o)
{
  const GstStructure *s = gst_message_get_structure (msg);
  guint64 eta = GST_CLOCK_TIME_NONE;
  Report *r;

  if (!s || !gst_structure_has_name (s, "ovi-progress")
      || !gst_structure_get_int (s, "step", &o->step)
      || !gst_structure_get_int (s, "steps", &o->steps))
    return;
  gst_structure_get_uint64 (s, "eta", &eta);
  r = g_new0 (Report, 1);
  r->id = g_strdup (id);
  r->step = o->step;
  r->steps = o->steps;
  r->eta = GST_CLOCK_TIME_IS_VALID (eta) ? (gdouble) eta / GST_SECOND : -1;
  report (runner, deliver_progress, r);
}

static void
on_have_context (OviRunner *runner, GstMessage *msg)
{
  GstContext *ctx = NULL;

  gst_message_parse_have_context (msg, &ctx);
  if (!runner->engine_ctx
      && g_strcmp0 (gst_context_get_context_type (ctx), ENGINE_CONTEXT) == 0)
    runner->engine_ctx = gst_context_ref (ctx);
  gst_context_unref (ctx);
}

static void
on_load_progress (OviRunner *runner, GstMessage *msg)
{
  GstProgressType type;
  g_autofree gchar *code = NULL, *text = NULL;

  gst_message_parse_progress (msg, &type, &code, &text);
  if (type == GST_PROGRESS_TYPE_COMPLETE && g_strcmp0 (code, "ovi-load") == 0)
    g_atomic_int_inc (&runner->n_loads);
}

/* Handles one bus message; TRUE when the job is over. */
static gboolean
handle_message (OviRunner *runner, const gchar *id, GstMessage *msg, Outcome *o)
{
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      o->state = OVI_JOB_DONE;
      return TRUE;
    case GST_MESSAGE_ERROR:
      o->state = OVI_JOB_FAILED;
      o->error = error_text (msg);
      return TRUE;
    case GST_MESSAGE_ELEMENT:
      on_progress_message (runner, id, msg, o);
      return FALSE;
    case GST_MESSAGE_HAVE_CONTEXT:
      on_have_context (runner, msg);
      return FALSE;
    case GST_MESSAGE_PROGRESS:
      on_load_progress (runner, msg);
      return FALSE;
    case GST_MESSAGE_APPLICATION:
      if (gst_message_has_name (msg, QUIT_MESSAGE)) {
        o->quit = TRUE;
        return TRUE;
      }
      if (gst_message_has_name (msg, CANCEL_MESSAGE)) {
        o->state = OVI_JOB_CANCELLED;
        o->cancel_step = o->step;
        return TRUE;
      }
      return FALSE;
    default:
      return FALSE;
  }
}

static const GstMessageType job_messages
    = GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT
      | GST_MESSAGE_HAVE_CONTEXT | GST_MESSAGE_PROGRESS
      | GST_MESSAGE_APPLICATION;

/* started: FALSE when the pipeline refused to start; its error message is
 * then already on the bus */
static void
wait_for_end (OviRunner *runner, GstElement *pipeline, const gchar *id,
              gboolean started, Outcome *o)
{
  g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
  GstClockTime wait = started ? GST_CLOCK_TIME_NONE : 0;

  for (;;) {
    g_autoptr (GstMessage) msg
        = gst_bus_timed_pop_filtered (bus, wait, job_messages);
    if (!msg) {
      o->state = OVI_JOB_FAILED;
      o->error = g_strdup ("the pipeline did not start");
      return;
    }
    if (handle_message (runner, id, msg, o))
      return;
  }
}

/* after a cancel: the step in flight may still finish and report */
static void
drain_progress (OviRunner *runner, GstElement *pipeline, const gchar *id,
                Outcome *o)
{
  g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT
                                               | GST_MESSAGE_HAVE_CONTEXT
                                               | GST_MESSAGE_PROGRESS))) {
    handle_message (runner, id, msg, o);
    gst_message_unref (msg);
  }
}

/* A cancel stops the denoiser first, so its cancellable fires now rather
 * than after the sinks have gone to READY; at most the step in flight then
 * completes. cancel_step: the steps done at that moment. */
static void
stop_denoiser (GstElement *pipeline, Outcome *o)
{
  g_autoptr (GstElement) den
      = gst_bin_get_by_name (GST_BIN (pipeline), "ovidenoise");
  gdouble progress = 0;

  g_object_get (den, "progress", &progress, NULL);
  if (o->steps > 0)
    o->cancel_step = MAX (o->step, (gint) lround (progress * o->steps));
  gst_element_set_state (den, GST_STATE_READY);
}

static void
keep_warm (OviRunner *runner, GstElement *pipeline)
{
  if (runner->warm) {
    gst_element_set_state (runner->warm, GST_STATE_NULL);
    gst_object_unref (runner->warm);
  }
  runner->warm = pipeline;
}

static void
set_current (OviRunner *runner, GstElement *pipeline, const gchar *id)
{
  g_mutex_lock (&runner->lock);
  gst_object_replace ((GstObject **) &runner->pipeline, GST_OBJECT (pipeline));
  g_free (runner->current_id);
  runner->current_id = g_strdup (id);
  if (pipeline && (runner->quitting || g_strcmp0 (runner->cancel_id, id) == 0))
    gst_element_post_message (
        pipeline,
        gst_message_new_application (
            NULL, gst_structure_new_empty (runner->quitting ? QUIT_MESSAGE
                                                            : CANCEL_MESSAGE)));
  if (g_strcmp0 (runner->cancel_id, id) == 0)
    g_clear_pointer (&runner->cancel_id, g_free);
  g_mutex_unlock (&runner->lock);
}

static void
run_pipeline (OviRunner *runner, GstElement *pipeline, const gchar *id,
              Outcome *o)
{
  gboolean started;

  set_current (runner, pipeline, id);
  started = gst_element_set_state (pipeline, GST_STATE_PLAYING)
            != GST_STATE_CHANGE_FAILURE;
  /* the new pipeline went through READY->PAUSED and holds the stages now */
  keep_warm (runner, NULL);
  wait_for_end (runner, pipeline, id, started, o);
  set_current (runner, NULL, NULL);
  if (o->state == OVI_JOB_FAILED) {
    gst_element_set_state (pipeline, GST_STATE_NULL);
    return;
  }
  if (o->state == OVI_JOB_CANCELLED)
    stop_denoiser (pipeline, o);
  /* READY stops the sampler between two steps and keeps the stages */
  gst_element_set_state (pipeline, GST_STATE_READY);
  drain_progress (runner, pipeline, id, o);
  keep_warm (runner, gst_object_ref (pipeline));
}

static gboolean
finish_file (const gchar *part, const gchar *out, Outcome *o)
{
  GStatBuf st;

  if (o->state != OVI_JOB_DONE) {
    g_unlink (part);
    return TRUE;
  }
  if (g_stat (part, &st) != 0 || st.st_size == 0 || g_rename (part, out) != 0) {
    o->state = OVI_JOB_FAILED;
    o->error = g_strdup_printf ("the result %s was not written", part);
    g_unlink (part);
    return FALSE;
  }
  return TRUE;
}

static void
run_task (OviRunner *runner, Task *t)
{
  g_autofree gchar *part = g_strconcat (t->out_path, ".part", NULL);
  g_autoptr (GError) err = NULL;
  g_autoptr (GstElement) pipeline = build_pipeline (runner, t, part, &err);
  Outcome o = { .state = OVI_JOB_FAILED, .cancel_step = -1 };
  Report *r;

  if (pipeline)
    run_pipeline (runner, pipeline, t->id, &o);
  else
    o.error = g_strdup_printf ("could not build the job's pipeline: %s",
                               err->message);
  if (o.quit) {
    g_unlink (part);
    g_free (o.error);
    return;
  }
  finish_file (part, t->out_path, &o);
  r = g_new0 (Report, 1);
  r->id = g_strdup (t->id);
  r->state = o.state;
  r->error = o.error;
  r->step = o.step;
  r->cancel_step = o.cancel_step;
  report (runner, deliver_finished, r);
}

static gpointer
runner_thread (gpointer data)
{
  OviRunner *runner = data;
  Task *t;

  while ((t = g_async_queue_pop (runner->tasks)) != &quit_task) {
    run_task (runner, t);
    task_free (t);
  }
  keep_warm (runner, NULL);
  return NULL;
}

OviRunner *
ovi_runner_new (const gchar *model_dir, const OviRunnerCallbacks *callbacks,
                gpointer user_data)
{
  OviRunner *runner = g_new0 (OviRunner, 1);

  runner->model_dir = g_strdup (model_dir);
  runner->callbacks = *callbacks;
  runner->user_data = user_data;
  runner->context = g_main_context_ref_thread_default ();
  runner->tasks = g_async_queue_new ();
  g_mutex_init (&runner->lock);
  runner->thread = g_thread_new ("ovi-runner", runner_thread, runner);
  return runner;
}

void
ovi_runner_free (OviRunner *runner)
{
  Task *t;

  g_mutex_lock (&runner->lock);
  runner->quitting = TRUE;
  if (runner->pipeline)
    gst_element_post_message (
        runner->pipeline, gst_message_new_application (
                              NULL, gst_structure_new_empty (QUIT_MESSAGE)));
  g_mutex_unlock (&runner->lock);
  /* tasks not started yet stay queued in the store */
  while ((t = g_async_queue_try_pop (runner->tasks)))
    if (t != &quit_task)
      task_free (t);
  g_async_queue_push (runner->tasks, &quit_task);
  g_thread_join (runner->thread);
  g_async_queue_unref (runner->tasks);
  g_clear_pointer (&runner->engine_ctx, gst_context_unref);
  g_main_context_unref (runner->context);
  g_mutex_clear (&runner->lock);
  g_free (runner->cancel_id);
  g_free (runner->current_id);
  g_free (runner->model_dir);
  g_free (runner);
}

void
ovi_runner_run (OviRunner *runner, const gchar *id, JsonObject *params,
                const gchar *image_path, const gchar *out_path)
{
  Task *t = g_new0 (Task, 1);

  t->id = g_strdup (id);
  t->params = json_object_ref (params);
  t->image_path = g_strdup (image_path);
  t->out_path = g_strdup (out_path);
  g_async_queue_push (runner->tasks, t);
}

void
ovi_runner_cancel (OviRunner *runner, const gchar *id)
{
  g_mutex_lock (&runner->lock);
  if (runner->pipeline && g_strcmp0 (runner->current_id, id) == 0) {
    gst_element_post_message (
        runner->pipeline, gst_message_new_application (
                              NULL, gst_structure_new_empty (CANCEL_MESSAGE)));
  } else {
    g_free (runner->cancel_id);
    runner->cancel_id = g_strdup (id);
  }
  g_mutex_unlock (&runner->lock);
}

guint
ovi_runner_get_n_loads (OviRunner *runner)
{
  return (guint) g_atomic_int_get (&runner->n_loads);
}
