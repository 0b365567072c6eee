/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the NCCL communicator on the GPUs there are (1 to 4 ranks, one
 * thread and CUDA backend each): all-to-all, all-gather, broadcast and the
 * Ulysses round trip move what they promise, as on CPU ranks
 * (tests/parallel/test-comm.c). Exits 77 (skip) without a CUDA device or
 * when the module was built without NCCL. */
#include <string.h>

#include "ovi-comm.h"
#include "ovi-ranks.h"

#define MAX_RANKS 4

typedef struct {
  int n;
  OviBackend *be[MAX_RANKS];
  OviComm **comm;
} Group;

static OviTensor *
upload (OviBackend *be, const float *v, int64_t n)
{
  g_autoptr (OviTensor) host = ovi_tensor_new_f32 (1, &n);
  OviTensor *t = ovi_backend_new_tensor (be, OVI_DTYPE_F32, 1, &n);

  memcpy (ovi_tensor_data (host), v, n * sizeof (float));
  ovi_op_copy (be, t, host);
  return t;
}

static gboolean
collectives (int r, gpointer data, GError **error)
{
  Group *g = data;
  int P = g->n;
  float sv[3 * MAX_RANKS], bv[5];
  g_autoptr (OviTensor) send = NULL, recv = NULL, all = NULL, b = NULL;
  g_autoptr (OviTensor) hr = NULL, ha = NULL, hb = NULL;
  int64_t n = 3 * P, na = 3 * P * P;

  for (int i = 0; i < 3 * P; i++)
    sv[i] = 1000 * r + i;
  for (int i = 0; i < 5; i++)
    bv[i] = 100 * r + i;
  send = upload (g->be[r], sv, n);
  b = upload (g->be[r], bv, 5);
  recv = ovi_backend_new_tensor (g->be[r], OVI_DTYPE_F32, 1, &n);
  all = ovi_backend_new_tensor (g->be[r], OVI_DTYPE_F32, 1, &na);
  ovi_comm_all_to_all (g->comm[r], recv, send);
  ovi_comm_all_gather (g->comm[r], all, send);
  ovi_comm_broadcast (g->comm[r], b, P - 1);
  if (!(hr = ovi_backend_download_f32 (g->be[r], recv, error))
      || !(ha = ovi_backend_download_f32 (g->be[r], all, error))
      || !(hb = ovi_backend_download_f32 (g->be[r], b, error)))
    return FALSE;
  const float *rv = ovi_tensor_data (hr), *av = ovi_tensor_data (ha);
  const float *bb = ovi_tensor_data (hb);
  for (int q = 0; q < P; q++)
    for (int i = 0; i < 3; i++) {
      g_assert_cmpfloat (rv[q * 3 + i], ==, 1000 * q + r * 3 + i);
      for (int j = 0; j < P; j++)
        g_assert_cmpfloat (av[q * 3 * P + j * 3 + i], ==, 1000 * q + j * 3 + i);
    }
  for (int i = 0; i < 5; i++)
    g_assert_cmpfloat (bb[i], ==, 100 * (P - 1) + i);
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  Group g = { 0 };

  g_test_init (&argc, &argv, NULL);
  for (g.n = 0; g.n < MAX_RANKS; g.n++) {
    g.be[g.n] = ovi_backend_new_by_name ("cuda-fp32", g.n, &error);
    if (g.be[g.n] == NULL)
      break;
  }
  if (g.n == 0) {
    g_print ("SKIP: %s\n", error->message);
    return 77;
  }
  g_clear_error (&error);
  g.comm = ovi_comm_nccl_group_new (g.n, g.be, &error);
  if (g.comm == NULL && strstr (error->message, "built without NCCL")) {
    g_print ("SKIP: %s\n", error->message);
    return 77;
  }
  g_assert_no_error (error);
  g_print ("NCCL over %d GPU(s)\n", g.n);
  g_assert_true (ovi_ranks_run (g.n, collectives, &g, g.comm, g.n, &error));
  g_assert_no_error (error);
  for (int r = 0; r < g.n; r++) {
    ovi_comm_free (g.comm[r]);
    ovi_backend_free (g.be[r]);
  }
  g_free (g.comm);
  return 0;
}
