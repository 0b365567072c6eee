/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the communicator wrappers and the Ulysses all-to-alls written
 * once over them (see ovi-comm.h). */
#include "ovi-comm.h"
#include "ovi-backend-impl.h"
#include "ovi-backend-module.h"

/* NCCL lives in the CUDA module (kernels/ovi-nccl-comm.c), so libovi loads
 * and links without CUDA or NCCL */
typedef OviComm **(*OviNcclGroupNew) (int size, OviBackend **backends,
                                      GError **error);

OviComm **
ovi_comm_nccl_group_new (int size, OviBackend **backends, GError **error)
{
  GError *local = NULL;
  GModule *module = ovi_backend_module_open ("libovi-cuda.so", &local);
  OviNcclGroupNew fn = NULL;

  if (module == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND, "NCCL over %d GPUs: %s",
                 size, local->message);
    g_error_free (local);
    return NULL;
  }
  if (!g_module_symbol (module, "ovi_nccl_group_new", (gpointer *) &fn)
      || fn == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                 "NCCL over %d GPUs: %s was built without NCCL (install "
                 "libnccl-dev and rebuild with -Dnccl=enabled)",
                 size, g_module_name (module));
    return NULL;
  }
  return fn (size, backends, error);
}

void
ovi_comm_free (OviComm *c)
{
  if (c)
    c->ops->free (c);
}

void
ovi_comm_abort (OviComm *c)
{
  c->ops->abort (c);
}

gboolean
ovi_comm_aborted (OviComm *c)
{
  return c->ops->aborted (c);
}

static gboolean
check_buffer (OviComm *c, const char *op, const char *what, const OviTensor *t,
              gsize multiple_of)
{
  OviDevice dev = ovi_backend_get_device (c->be);

  if (ovi_tensor_is_contiguous (t) && t->storage->device.type == dev.type
      && t->storage->device.index == dev.index
      && ovi_tensor_nbytes (t) % multiple_of == 0)
    return TRUE;
  g_autofree char *s = ovi_shape_to_string (t->ndim, t->shape);
  ovi_backend_set_error (c->be, OVI_ERROR, OVI_ERROR_SHAPE,
                         "%s (rank %d of %d): %s %s %s must be contiguous on "
                         "the rank's device and split into %d equal chunks",
                         op, c->rank, c->size, what, s,
                         ovi_dtype_name (t->dtype), c->size);
  return FALSE;
}

/* a rank with a pending error must not leave its peers waiting */
static gboolean
ready (OviComm *c, const char *op)
{
  if (c->be->error == NULL)
    return TRUE;
  ovi_comm_abort (c);
  return FALSE;
}

static gboolean
check_pair (OviComm *c, const char *op, const OviTensor *recv,
            const OviTensor *send, gsize recv_per_send)
{
  if (!check_buffer (c, op, "receive buffer", recv, c->size)
      || !check_buffer (c, op, "send buffer", send, 1))
    return FALSE;
  if (recv->dtype == send->dtype
      && ovi_tensor_nbytes (recv) == ovi_tensor_nbytes (send) * recv_per_send)
    return TRUE;
  g_autofree char *rs = ovi_shape_to_string (recv->ndim, recv->shape);
  g_autofree char *ss = ovi_shape_to_string (send->ndim, send->shape);
  ovi_backend_set_error (c->be, OVI_ERROR, OVI_ERROR_SHAPE,
                         "%s (rank %d of %d): receive %s %s does not fit send "
                         "%s %s",
                         op, c->rank, c->size, rs, ovi_dtype_name (recv->dtype),
                         ss, ovi_dtype_name (send->dtype));
  return FALSE;
}

void
ovi_comm_all_to_all (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  if (ready (c, "all-to-all") && check_pair (c, "all-to-all", recv, send, 1)
      && check_buffer (c, "all-to-all", "send buffer", send, c->size))
    c->ops->all_to_all (c, recv, send);
  else
    ovi_comm_abort (c);
}

void
ovi_comm_all_gather (OviComm *c, OviTensor *recv, const OviTensor *send)
{
  if (ready (c, "all-gather")
      && check_pair (c, "all-gather", recv, send, c->size))
    c->ops->all_gather (c, recv, send);
  else
    ovi_comm_abort (c);
}

void
ovi_comm_broadcast (OviComm *c, OviTensor *buf, int root)
{
  if (ready (c, "broadcast") && root >= 0 && root < c->size
      && check_buffer (c, "broadcast", "buffer", buf, 1))
    c->ops->broadcast (c, buf, root);
  else
    ovi_comm_abort (c);
}

gboolean
ovi_comm_root_flag (OviComm *c, gboolean flag, gboolean *out, GError **error)
{
  int64_t one = 1;
  g_autoptr (OviTensor) t = ovi_backend_new_act (c->be, 1, &one);
  g_autoptr (OviTensor) host = NULL;

  if (t == NULL) {
    ovi_comm_abort (c);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "rank %d of %d: out of memory", c->rank, c->size);
    return FALSE;
  }
  ovi_op_fill (c->be, t, flag ? 1.0f : 0.0f);
  ovi_comm_broadcast (c, t, 0);
  host = ovi_backend_download_f32 (c->be, t, error);
  if (host == NULL)
    return FALSE;
  *out = ((const float *) ovi_tensor_data (host))[0] != 0.0f;
  return TRUE;
}

/* `t` [B * n, P * w] as [B, n, P, w] */
static OviTensor *
as_bnpw (OviTensor *t, int64_t B, int P)
{
  int64_t shape[4] = { B, t->shape[0] / B, P, t->shape[1] / P };
  return ovi_tensor_reshape (t, 4, shape);
}

/* `t` [B * P * n, w] as [B, P, n, w] */
static OviTensor *
as_bpnw (OviTensor *t, int64_t B, int P)
{
  int64_t shape[4] = { B, P, t->shape[0] / (B * P), t->shape[1] };
  return ovi_tensor_reshape (t, 4, shape);
}

/* part `i` (0 or 1) of the scratch as [P, B, n, w] */
static OviTensor *
packed_view (OviTensor *scratch, int i, int P, int64_t B, int64_t n, int64_t w)
{
  int64_t shape[4] = { P, B, n, w }, len = P * B * n * w;
  g_autoptr (OviTensor) part = ovi_tensor_narrow (scratch, 0, i * len, len);
  return ovi_tensor_reshape (part, 4, shape);
}

/* [B, X, Y, w] as [X, B, Y, w] (a view) */
static OviTensor *
swap01 (OviTensor *t)
{
  const int order[4] = { 1, 0, 2, 3 };
  return ovi_tensor_permute (t, order);
}

/* [B, n, P, w] as [P, B, n, w] (a view) */
static OviTensor *
heads_first (OviTensor *t)
{
  const int order[4] = { 2, 0, 1, 3 };
  return ovi_tensor_permute (t, order);
}

void
ovi_comm_seq_to_heads (OviComm *c, OviTensor *full, OviTensor *local, int batch,
                       OviTensor *scratch)
{
  int P = c->size;
  int64_t n = local->shape[0] / batch, w = local->shape[1] / P;
  g_autoptr (OviTensor) src = as_bnpw (local, batch, P);
  g_autoptr (OviTensor) by_rank = heads_first (src);
  g_autoptr (OviTensor) send = packed_view (scratch, 0, P, batch, n, w);

  /* send[p] = this rank's tokens of every branch, heads of rank p */
  ovi_op_copy (c->be, send, by_rank);
  if (batch == 1) {
    /* [P, 1, n, w] is already full's layout */
    ovi_comm_all_to_all (c, full, send);
  } else {
    g_autoptr (OviTensor) recv = packed_view (scratch, 1, P, batch, n, w);
    g_autoptr (OviTensor) dst = as_bpnw (full, batch, P);
    g_autoptr (OviTensor) dst_by_rank = swap01 (dst);
    ovi_comm_all_to_all (c, recv, send);
    ovi_op_copy (c->be, dst_by_rank, recv);
  }
}

void
ovi_comm_heads_to_seq (OviComm *c, OviTensor *local, OviTensor *full, int batch,
                       OviTensor *scratch)
{
  int P = c->size;
  int64_t n = local->shape[0] / batch, w = local->shape[1] / P;
  g_autoptr (OviTensor) dst = as_bnpw (local, batch, P);
  g_autoptr (OviTensor) dst_by_rank = heads_first (dst);
  g_autoptr (OviTensor) recv = packed_view (scratch, 1, P, batch, n, w);

  /* rank p's tokens of every branch go back to rank p; what comes back
   * from rank q is this rank's tokens for q's heads */
  if (batch == 1) {
    ovi_comm_all_to_all (c, recv, full);
  } else {
    g_autoptr (OviTensor) send = packed_view (scratch, 0, P, batch, n, w);
    g_autoptr (OviTensor) src = as_bpnw (full, batch, P);
    g_autoptr (OviTensor) src_by_rank = swap01 (src);
    ovi_op_copy (c->be, send, src_by_rank);
    ovi_comm_all_to_all (c, recv, send);
  }
  ovi_op_copy (c->be, dst_by_rank, recv);
}
