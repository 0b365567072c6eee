/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CPU backend's persistent thread pool. */
#include "ovi-cpu-threads.h"

struct _OviCpuPool {
  int n_threads;
  GThread **workers;
  GMutex lock;
  GCond work_cond;
  GCond done_cond;
  GMutex job_lock; /* one parallel_for at a time */
  guint generation;
  int active;
  gboolean quit;
  /* the current job */
  OviCpuRangeFunc fn;
  gpointer data;
  int64_t n;
  int64_t chunk;
  int64_t n_chunks;
  gint next_chunk;
};

typedef struct {
  OviCpuPool *pool;
  int index;
} WorkerArgs;

/* index of the pool thread running on this thread, -1 outside any job */
static __thread int current_index = -1;

static void
run_chunks (OviCpuPool *pool, int index)
{
  int saved = current_index;

  current_index = index;
  for (;;) {
    int64_t c = g_atomic_int_add (&pool->next_chunk, 1);
    int64_t start, end;

    if (c >= pool->n_chunks)
      break;
    start = c * pool->chunk;
    end = MIN (pool->n, start + pool->chunk);
    pool->fn (pool->data, start, end, index);
  }
  current_index = saved;
}

static gpointer
worker_main (gpointer user_data)
{
  WorkerArgs *args = user_data;
  OviCpuPool *pool = args->pool;
  int index = args->index;
  guint seen = 0;

  g_free (args);
  g_mutex_lock (&pool->lock);
  for (;;) {
    while (pool->generation == seen && !pool->quit)
      g_cond_wait (&pool->work_cond, &pool->lock);
    if (pool->quit)
      break;
    seen = pool->generation;
    g_mutex_unlock (&pool->lock);

    run_chunks (pool, index);

    g_mutex_lock (&pool->lock);
    if (--pool->active == 0)
      g_cond_signal (&pool->done_cond);
  }
  g_mutex_unlock (&pool->lock);
  return NULL;
}

OviCpuPool *
ovi_cpu_pool_new (int n_threads)
{
  OviCpuPool *pool = g_new0 (OviCpuPool, 1);

  if (n_threads <= 0)
    n_threads = (int) g_get_num_processors ();
  n_threads = CLAMP (n_threads, 1, 1024);
  pool->n_threads = n_threads;
  g_mutex_init (&pool->lock);
  g_mutex_init (&pool->job_lock);
  g_cond_init (&pool->work_cond);
  g_cond_init (&pool->done_cond);
  pool->workers = g_new0 (GThread *, n_threads);
  for (int i = 1; i < n_threads; i++) {
    WorkerArgs *args = g_new (WorkerArgs, 1);
    GError *error = NULL;
    char name[32];

    args->pool = pool;
    args->index = i;
    g_snprintf (name, sizeof (name), "ovi-cpu-%d", i);
    pool->workers[i] = g_thread_try_new (name, worker_main, args, &error);
    if (pool->workers[i] == NULL) {
      /* run with the threads we have */
      g_warning ("ovi: could not start CPU worker %d: %s", i, error->message);
      g_clear_error (&error);
      g_free (args);
      pool->n_threads = i;
      break;
    }
  }
  return pool;
}

void
ovi_cpu_pool_free (OviCpuPool *pool)
{
  if (pool == NULL)
    return;
  g_mutex_lock (&pool->lock);
  pool->quit = TRUE;
  g_cond_broadcast (&pool->work_cond);
  g_mutex_unlock (&pool->lock);
  for (int i = 1; i < pool->n_threads; i++)
    g_thread_join (pool->workers[i]);
  g_free (pool->workers);
  g_mutex_clear (&pool->lock);
  g_mutex_clear (&pool->job_lock);
  g_cond_clear (&pool->work_cond);
  g_cond_clear (&pool->done_cond);
  g_free (pool);
}

int
ovi_cpu_pool_n_threads (OviCpuPool *pool)
{
  return pool->n_threads;
}

void
ovi_cpu_pool_parallel_for (OviCpuPool *pool, int64_t n, int64_t grain,
                           OviCpuRangeFunc fn, gpointer data)
{
  int64_t chunk, n_chunks;

  if (n <= 0)
    return;
  grain = MAX (grain, 1);
  /* about 4 chunks per thread for balance, never smaller than grain */
  chunk = MAX (grain, (n + pool->n_threads * 4 - 1) / (pool->n_threads * 4));
  n_chunks = (n + chunk - 1) / chunk;
  if (pool->n_threads == 1 || n_chunks == 1 || current_index >= 0) {
    /* same chunk boundaries as the threaded path, so results are identical */
    int index = current_index >= 0 ? current_index : 0;

    for (int64_t c = 0; c < n_chunks; c++)
      fn (data, c * chunk, MIN (n, (c + 1) * chunk), index);
    return;
  }
  g_return_if_fail (n_chunks < G_MAXINT);

  g_mutex_lock (&pool->job_lock);
  g_mutex_lock (&pool->lock);
  pool->fn = fn;
  pool->data = data;
  pool->n = n;
  pool->chunk = chunk;
  pool->n_chunks = n_chunks;
  g_atomic_int_set (&pool->next_chunk, 0);
  pool->active = pool->n_threads - 1;
  pool->generation++;
  g_cond_broadcast (&pool->work_cond);
  g_mutex_unlock (&pool->lock);

  run_chunks (pool, 0);

  g_mutex_lock (&pool->lock);
  while (pool->active > 0)
    g_cond_wait (&pool->done_cond, &pool->lock);
  g_mutex_unlock (&pool->lock);
  g_mutex_unlock (&pool->job_lock);
}
