/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the job queue (see ovi-server-queue.h). */
#include "ovi-server-queue.h"

#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>

#include "ovi-server-runner.h"
#include "ovi-server-store.h"

/* the share of the progress bar the denoising steps take; decoding and
 * encoding the clip take the rest */
#define DENOISE_SHARE 0.9

typedef struct {
  gchar *id;
  OviQueueStoppedFunc func;
  gpointer user_data;
} Waiter;

struct _OviQueue {
  gchar *data_dir;
  guint max_active;
  OviQueueChangedFunc changed;
  gpointer user_data;
  OviStore *store;
  OviRunner *runner;
  GHashTable *jobs; /* id -> OviJob (owned) */
  GQueue order;     /* OviJob, by seq */
  OviJob *running;
  GList *waiters; /* Waiter */
};

static gchar *
job_file (OviQueue *q, const gchar *dir, const OviJob *job, const gchar *ext)
{
  g_autofree gchar *name = g_strconcat (job->id, ext, NULL);
  /* ids are 32 hex digits (checked on load and at every route), so this
   * stays inside the data dir */
  g_assert (ovi_job_id_is_valid (job->id));
  return g_build_filename (q->data_dir, dir, name, NULL);
}

gchar *
ovi_queue_result_path (OviQueue *q, const OviJob *job)
{
  return job_file (q, "results", job, ".mp4");
}

static gchar *
image_path (OviQueue *q, const OviJob *job)
{
  return job_file (q, "images", job, ".img");
}

static void
save (OviQueue *q, const OviJob *job)
{
  g_autoptr (GError) err = NULL;

  /* the job goes on in memory; the next write may succeed */
  if (!ovi_store_update (q->store, job, &err))
    g_printerr ("ovi-server: %s\n", err->message);
}

static void
notify (OviQueue *q, const OviJob *job, gboolean removed)
{
  q->changed (job, removed, q->user_data);
}

static void
schedule (OviQueue *q)
{
  GList *l;
  g_autofree gchar *img = NULL, *out = NULL;
  OviJob *job = NULL;

  if (q->running)
    return;
  for (l = q->order.head; l && !job; l = l->next)
    if (((OviJob *) l->data)->state == OVI_JOB_QUEUED)
      job = l->data;
  if (!job)
    return;
  job->state = OVI_JOB_RUNNING;
  job->started = g_get_real_time ();
  job->attempts++;
  job->progress = 0;
  job->step = 0;
  job->eta = -1;
  save (q, job);
  q->running = job;
  img = job->has_image ? image_path (q, job) : NULL;
  out = ovi_queue_result_path (q, job);
  ovi_runner_run (q->runner, job->id, job->params, img, out);
  notify (q, job, FALSE);
}

/* ---- reports from the runner ---- */

static void
on_progress (const gchar *id, gint step, gint steps, gdouble eta,
             gpointer user_data)
{
  OviQueue *q = user_data;
  OviJob *job = g_hash_table_lookup (q->jobs, id);

  if (!job || job != q->running)
    return;
  job->step = step;
  job->steps = steps;
  job->eta = eta;
  job->progress = steps > 0 ? DENOISE_SHARE * step / steps : 0;
  notify (q, job, FALSE);
}

static void
call_waiters (OviQueue *q, const OviJob *job)
{
  GList *l = q->waiters;

  while (l) {
    GList *next = l->next;
    Waiter *w = l->data;
    if (strcmp (w->id, job->id) == 0) {
      w->func (job, w->user_data);
      q->waiters = g_list_delete_link (q->waiters, l);
      g_free (w->id);
      g_free (w);
    }
    l = next;
  }
}

static void
on_finished (const gchar *id, OviJobState state, const gchar *error,
             gint last_step, gint cancel_step, gpointer user_data)
{
  OviQueue *q = user_data;
  OviJob *job = g_hash_table_lookup (q->jobs, id);

  g_assert (job && job == q->running);
  q->running = NULL;
  job->state = state;
  job->finished = g_get_real_time ();
  job->step = last_step;
  job->cancel_step = cancel_step;
  job->eta = -1;
  if (state == OVI_JOB_DONE)
    job->progress = 1.0;
  g_free (job->error);
  job->error = g_strdup (error);
  save (q, job);
  notify (q, job, FALSE);
  call_waiters (q, job);
  schedule (q);
}

/* ---- setting up ---- */

static gboolean
make_dirs (const gchar *data_dir, GError **error)
{
  const gchar *const subdirs[] = { "", "images", "results" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (subdirs); i++) {
    g_autofree gchar *d = g_build_filename (data_dir, subdirs[i], NULL);
    if (g_mkdir_with_parents (d, 0700) != 0) {
      int e = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                   "cannot create %s: %s", d, g_strerror (e));
      return FALSE;
    }
  }
  return TRUE;
}

/* what a job killed mid-write left behind; it runs again from the start */
static void
remove_partial_results (const gchar *data_dir)
{
  g_autofree gchar *dir = g_build_filename (data_dir, "results", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    if (g_str_has_suffix (name, ".part")) {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  }
}

static void
add_job (OviQueue *q, OviJob *job)
{
  g_hash_table_insert (q->jobs, job->id, job);
  g_queue_push_tail (&q->order, job);
}

static gboolean
load_jobs (OviQueue *q, GError **error)
{
  g_autoptr (GPtrArray) jobs = ovi_store_load (q->store, error);
  guint i;

  if (!jobs)
    return FALSE;
  for (i = 0; i < jobs->len; i++) {
    OviJob *job = g_ptr_array_steal_index (jobs, i--);
    if (job->state == OVI_JOB_QUEUED && job->attempts > 0)
      g_print ("ovi-server: job %s was interrupted; it runs again\n", job->id);
    add_job (q, job);
  }
  return TRUE;
}

OviQueue *
ovi_queue_new (const gchar *data_dir, const gchar *model_dir, guint max_active,
               OviQueueChangedFunc changed, gpointer user_data, GError **error)
{
  static const OviRunnerCallbacks callbacks = { on_progress, on_finished };
  OviQueue *q;
  g_autofree gchar *db = g_build_filename (data_dir, "jobs.sqlite", NULL);
  g_autoptr (OviStore) store = NULL;

  if (!make_dirs (data_dir, error) || !(store = ovi_store_open (db, error)))
    return NULL;
  remove_partial_results (data_dir);
  q = g_new0 (OviQueue, 1);
  q->data_dir = g_strdup (data_dir);
  q->max_active = max_active;
  q->changed = changed;
  q->user_data = user_data;
  q->store = g_steal_pointer (&store);
  q->jobs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                   (GDestroyNotify) ovi_job_free);
  g_queue_init (&q->order);
  if (!load_jobs (q, error)) {
    ovi_queue_free (q);
    return NULL;
  }
  q->runner = ovi_runner_new (model_dir, &callbacks, q);
  schedule (q);
  return q;
}

void
ovi_queue_free (OviQueue *q)
{
  if (q->runner)
    ovi_runner_free (q->runner);
  g_queue_clear (&q->order);
  g_hash_table_unref (q->jobs);
  ovi_store_close (q->store);
  g_list_free_full (q->waiters, g_free);
  g_free (q->data_dir);
  g_free (q);
}

/* ---- the API ---- */

guint
ovi_queue_n_active (OviQueue *q)
{
  GList *l;
  guint n = 0;

  for (l = q->order.head; l; l = l->next)
    n += !ovi_job_state_is_final (((OviJob *) l->data)->state);
  return n;
}

guint
ovi_queue_n_loads (OviQueue *q)
{
  return ovi_runner_get_n_loads (q->runner);
}

static gboolean
write_image (OviQueue *q, const OviJob *job, GBytes *image, GError **error)
{
  g_autofree gchar *path = image_path (q, job);
  gsize n;
  const gchar *d = g_bytes_get_data (image, &n);

  return g_file_set_contents_full (path, d, n, G_FILE_SET_CONTENTS_CONSISTENT,
                                   0600, error);
}

const OviJob *
ovi_queue_submit (OviQueue *q, JsonObject *params, GBytes *image,
                  GError **error)
{
  g_autoptr (OviJob) job = NULL;

  if (ovi_queue_n_active (q) >= q->max_active) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FULL,
                 "the queue is full (%u jobs queued or running); try again "
                 "later",
                 q->max_active);
    return NULL;
  }
  job = ovi_job_new (params, image != NULL);
  /* the image first: a job in the store always has its files */
  if ((image && !write_image (q, job, image, error))
      || !ovi_store_insert (q->store, job, error))
    return NULL;
  add_job (q, job);
  notify (q, job, FALSE);
  schedule (q);
  return g_steal_pointer (&job);
}

const OviJob *
ovi_queue_get (OviQueue *q, const gchar *id)
{
  return id ? g_hash_table_lookup (q->jobs, id) : NULL;
}

GPtrArray *
ovi_queue_list (OviQueue *q)
{
  GPtrArray *all = g_ptr_array_sized_new (q->order.length);
  GList *l;

  for (l = q->order.head; l; l = l->next)
    g_ptr_array_add (all, l->data);
  return all;
}

static OviJob *
find (OviQueue *q, const gchar *id, GError **error)
{
  OviJob *job = id ? g_hash_table_lookup (q->jobs, id) : NULL;

  if (!job)
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_NOT_FOUND,
                 "no job %s", id);
  return job;
}

gboolean
ovi_queue_cancel (OviQueue *q, const gchar *id, OviQueueStoppedFunc stopped,
                  gpointer user_data, GError **error)
{
  OviJob *job = find (q, id, error);
  Waiter *w;

  if (!job)
    return FALSE;
  if (ovi_job_state_is_final (job->state)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_CONFLICT,
                 "job %s is already %s", id,
                 ovi_job_state_to_string (job->state));
    return FALSE;
  }
  if (job->state == OVI_JOB_QUEUED) {
    job->state = OVI_JOB_CANCELLED;
    job->finished = g_get_real_time ();
    save (q, job);
    notify (q, job, FALSE);
    stopped (job, user_data);
    return TRUE;
  }
  w = g_new0 (Waiter, 1);
  w->id = g_strdup (id);
  w->func = stopped;
  w->user_data = user_data;
  q->waiters = g_list_append (q->waiters, w);
  ovi_runner_cancel (q->runner, id);
  return TRUE;
}

gboolean
ovi_queue_remove (OviQueue *q, const gchar *id, GError **error)
{
  OviJob *job = find (q, id, error);
  g_autofree gchar *img = NULL, *out = NULL;

  if (!job)
    return FALSE;
  if (!ovi_job_state_is_final (job->state)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_CONFLICT,
                 "job %s is %s; cancel it first", id,
                 ovi_job_state_to_string (job->state));
    return FALSE;
  }
  if (!ovi_store_delete (q->store, id, error))
    return FALSE;
  img = image_path (q, job);
  out = ovi_queue_result_path (q, job);
  g_unlink (img);
  g_unlink (out);
  notify (q, job, TRUE);
  g_queue_remove (&q->order, job);
  g_hash_table_remove (q->jobs, id);
  return TRUE;
}
