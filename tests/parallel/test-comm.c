/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the in-process communicator (ranks as threads, one CPU backend
 * each): all-to-all, all-gather and broadcast move what they promise on 1 to
 * 4 ranks; the Ulysses all-to-alls (1 and 2 branches) put every token of
 * this rank's heads where the fusion DiT expects it and come back exactly;
 * a rank that fails aborts the group instead of leaving the others waiting,
 * and the error is the failing rank's. */
#include <string.h>

#include "ovi-comm.h"
#include "ovi-ranks.h"

#define MAX_RANKS 4

typedef struct {
  int n;
  OviBackend *be[MAX_RANKS];
  OviComm **comm;
  int fail_rank; /* -1: none */
  int batch;
} Group;

static void
group_init (Group *g, int n)
{
  memset (g, 0, sizeof *g);
  g->n = n;
  g->fail_rank = -1;
  for (int r = 0; r < n; r++)
    g->be[r] = ovi_backend_new_cpu (1);
  g->comm = ovi_comm_cpu_group_new (n, g->be);
}

static void
group_clear (Group *g)
{
  for (int r = 0; r < g->n; r++) {
    ovi_comm_free (g->comm[r]);
    ovi_backend_free (g->be[r]);
  }
  g_free (g->comm);
}

static OviTensor *
filled (OviBackend *be, int64_t n, float (*value) (int64_t i, gpointer),
        gpointer data)
{
  OviTensor *t = ovi_backend_new_act (be, 1, &n);
  float *p = ovi_tensor_data (t);

  for (int64_t i = 0; i < n; i++)
    p[i] = value (i, data);
  return t;
}

static float
rank_value (int64_t i, gpointer data)
{
  return 1000 * GPOINTER_TO_INT (data) + i;
}

static gboolean
collectives (int r, gpointer data, GError **error)
{
  Group *g = data;
  int P = g->n;
  g_autoptr (OviTensor) send
      = filled (g->be[r], 3 * P, rank_value, GINT_TO_POINTER (r));
  g_autoptr (OviTensor) recv = filled (g->be[r], 3 * P, rank_value, NULL);
  g_autoptr (OviTensor) all = filled (g->be[r], 3 * P * P, rank_value, NULL);
  g_autoptr (OviTensor) b
      = filled (g->be[r], 5, rank_value, GINT_TO_POINTER (r + 1));

  if (r == g->fail_rank) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FAILED, "rank %d gives up", r);
    return FALSE;
  }
  ovi_comm_all_to_all (g->comm[r], recv, send);
  ovi_comm_all_gather (g->comm[r], all, send);
  ovi_comm_broadcast (g->comm[r], b, P - 1);
  if (!ovi_backend_sync (g->be[r], error))
    return FALSE;
  const float *rv = ovi_tensor_data (recv), *av = ovi_tensor_data (all);
  const float *bv = ovi_tensor_data (b);
  for (int q = 0; q < P; q++)
    for (int i = 0; i < 3; i++) {
      /* chunk q of recv = chunk r of rank q's send */
      g_assert_cmpfloat (rv[q * 3 + i], ==, 1000 * q + r * 3 + i);
      for (int j = 0; j < P; j++)
        g_assert_cmpfloat (av[q * 3 * P + j * 3 + i], ==, 1000 * q + j * 3 + i);
    }
  for (int i = 0; i < 5; i++)
    g_assert_cmpfloat (bv[i], ==, 1000 * P + i);
  return TRUE;
}

static void
test_collectives (void)
{
  for (int n = 1; n <= MAX_RANKS; n++) {
    Group g;
    g_autoptr (GError) error = NULL;

    group_init (&g, n);
    g_assert_true (ovi_ranks_run (n, collectives, &g, g.comm, n, &error));
    g_assert_no_error (error);
    group_clear (&g);
  }
}

/* x[b, token, column] of the whole sequence, every rank's rows */
static float
token_value (int64_t b, int64_t token, int64_t col)
{
  return 10000 * b + 100 * token + col;
}

static gboolean
ulysses (int r, gpointer data, GError **error)
{
  Group *g = data;
  int P = g->n, B = g->batch;
  int64_t n = 3, D = 4 * P, w = D / P;
  int64_t ls[2] = { B * n, D }, fs[2] = { B * P * n, w };
  int64_t scratch_n = 2 * B * n * D;
  g_autoptr (OviTensor) local = ovi_backend_new_act (g->be[r], 2, ls);
  g_autoptr (OviTensor) back = ovi_backend_new_act (g->be[r], 2, ls);
  g_autoptr (OviTensor) full = ovi_backend_new_act (g->be[r], 2, fs);
  g_autoptr (OviTensor) scratch = ovi_backend_new_act (g->be[r], 1, &scratch_n);
  float *lv = ovi_tensor_data (local);

  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < n; i++)
      for (int64_t c = 0; c < D; c++)
        lv[(b * n + i) * D + c] = token_value (b, r * n + i, c);
  ovi_comm_seq_to_heads (g->comm[r], full, local, B, scratch);
  ovi_comm_heads_to_seq (g->comm[r], back, full, B, scratch);
  if (!ovi_backend_sync (g->be[r], error))
    return FALSE;
  const float *fv = ovi_tensor_data (full), *bv = ovi_tensor_data (back);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < P * n; t++)
      for (int64_t c = 0; c < w; c++)
        g_assert_cmpfloat (fv[(b * P * n + t) * w + c], ==,
                           token_value (b, t, r * w + c));
  for (int64_t i = 0; i < B * n * D; i++)
    g_assert_cmpfloat (bv[i], ==, lv[i]);
  return TRUE;
}

static void
test_ulysses (void)
{
  for (int n = 1; n <= MAX_RANKS; n++)
    for (int batch = 1; batch <= 2; batch++) {
      Group g;
      g_autoptr (GError) error = NULL;

      group_init (&g, n);
      g.batch = batch;
      g_assert_true (ovi_ranks_run (n, ulysses, &g, g.comm, n, &error));
      g_assert_no_error (error);
      group_clear (&g);
    }
}

static void
test_failing_rank (void)
{
  Group g;
  g_autoptr (GError) error = NULL;

  group_init (&g, 4);
  g.fail_rank = 1;
  g_assert_false (ovi_ranks_run (4, collectives, &g, g.comm, 4, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==, "rank 1 of 4: rank 1 gives up");
  g_assert_true (ovi_comm_aborted (g.comm[0]));
  group_clear (&g);
}

/* a shape mismatch inside a collective is the rank's error; the others
 * are released with OVI_ERROR_ABORTED */
static gboolean
bad_gather (int r, gpointer data, GError **error)
{
  Group *g = data;
  int64_t n = r == 2 ? 5 : 3 * g->n;
  int64_t one = 3;
  g_autoptr (OviTensor) send = ovi_backend_new_act (g->be[r], 1, &one);
  g_autoptr (OviTensor) all = ovi_backend_new_act (g->be[r], 1, &n);

  ovi_comm_all_gather (g->comm[r], all, send);
  return ovi_backend_sync (g->be[r], error);
}

static void
test_bad_shape (void)
{
  Group g;
  g_autoptr (GError) error = NULL;

  group_init (&g, 3);
  g_assert_false (ovi_ranks_run (3, bad_gather, &g, g.comm, 3, &error));
  g_assert_error (error, OVI_ERROR, OVI_ERROR_SHAPE);
  g_assert_true (g_str_has_prefix (error->message, "rank 2 of 3: all-gather"));
  group_clear (&g);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/comm/collectives", test_collectives);
  g_test_add_func ("/comm/ulysses-all-to-alls", test_ulysses);
  g_test_add_func ("/comm/failing-rank-releases-the-others", test_failing_rank);
  g_test_add_func ("/comm/bad-shape-aborts", test_bad_shape);
  return g_test_run ();
}
