/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: a small persistent thread pool for the CPU backend.
 *
 * ovi_cpu_pool_parallel_for() splits [0, n) into chunks of at least `grain`
 * items and runs `fn` on them from the pool's workers and the calling thread.
 * Chunks are fixed by (n, grain, n_threads) only, so results never depend on
 * which thread ran which chunk. A call made from inside a worker runs inline.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct _OviCpuPool OviCpuPool;

/* fn (data, start, end, thread_index); thread_index < n_threads */
typedef void (*OviCpuRangeFunc) (gpointer data, int64_t start, int64_t end,
                                 int thread_index);

OviCpuPool *ovi_cpu_pool_new (int n_threads);
void ovi_cpu_pool_free (OviCpuPool *pool);
int ovi_cpu_pool_n_threads (OviCpuPool *pool);
void ovi_cpu_pool_parallel_for (OviCpuPool *pool, int64_t n, int64_t grain,
                                OviCpuRangeFunc fn, gpointer data);

G_END_DECLS
