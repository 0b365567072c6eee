/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the CPU backend's thread pool: every index once, thread indices
 * in range, real concurrency, nested calls inline, many small jobs. */
#include "ovi-cpu-threads.h"

typedef struct {
  gint *hits;
  gint max_tid;
  gint seen[8];
  OviCpuPool *pool;
} Job;

static void
count_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Job *j = data;

  for (int64_t i = start; i < end; i++)
    g_atomic_int_inc (&j->hits[i]);
  g_atomic_int_set (&j->seen[tid], 1);
  if (tid > g_atomic_int_get (&j->max_tid))
    g_atomic_int_set (&j->max_tid, tid);
}

/* Chunks that wait for each other: each arrives, then waits until every
 * chunk has arrived (or a generous deadline passes), so `most_at_once`
 * counts how many ran at the same time, whatever the machine's load. */
typedef struct {
  GMutex lock;
  GCond cond;
  int arrived, running, most_at_once, expected;
} Rendezvous;

static void
meet_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Rendezvous *r = data;
  gint64 deadline = g_get_monotonic_time () + 30 * G_TIME_SPAN_SECOND;

  g_mutex_lock (&r->lock);
  r->arrived++;
  r->running++;
  r->most_at_once = MAX (r->most_at_once, r->running);
  g_cond_broadcast (&r->cond);
  while (r->arrived < r->expected
         && g_cond_wait_until (&r->cond, &r->lock, deadline))
    ;
  r->running--;
  g_mutex_unlock (&r->lock);
}

static void
nested_range (gpointer data, int64_t start, int64_t end, int tid)
{
  Job *j = data;

  /* runs inline on this thread */
  for (int64_t i = start; i < end; i++) {
    Job inner = { j->hits + i * 10, 0, { 0 }, NULL };
    ovi_cpu_pool_parallel_for (j->pool, 10, 1, count_range, &inner);
    g_assert_cmpint (inner.max_tid, ==, tid);
  }
}

static void
test_pool (void)
{
  for (int nt = 1; nt <= 3; nt++) {
    OviCpuPool *pool = ovi_cpu_pool_new (nt);
    gint hits[1000] = { 0 };
    Job j = { hits, 0, { 0 }, pool };

    g_assert_cmpint (ovi_cpu_pool_n_threads (pool), ==, nt);
    for (int rep = 0; rep < 200; rep++)
      ovi_cpu_pool_parallel_for (pool, 1000, 7, count_range, &j);
    for (int i = 0; i < 1000; i++)
      g_assert_cmpint (hits[i], ==, 200);
    g_assert_cmpint (j.max_tid, <, nt);

    memset (hits, 0, sizeof (hits));
    ovi_cpu_pool_parallel_for (pool, 100, 1, nested_range, &j);
    for (int i = 0; i < 1000; i++)
      g_assert_cmpint (hits[i], ==, 1);

    if (nt >= 2) {
      /* two chunks of a 2-item job run at the same time */
      Rendezvous r = { .expected = 2 };
      g_mutex_init (&r.lock);
      g_cond_init (&r.cond);
      ovi_cpu_pool_parallel_for (pool, 2, 1, meet_range, &r);
      g_assert_cmpint (r.arrived, ==, 2);
      g_assert_cmpint (r.most_at_once, ==, 2);
      g_mutex_clear (&r.lock);
      g_cond_clear (&r.cond);
    }
    ovi_cpu_pool_free (pool);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/threads/pool", test_pool);
  return g_test_run ();
}
