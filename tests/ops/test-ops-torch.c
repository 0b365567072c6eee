/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: runs the cases torch-ops.py wrote (inputs, PyTorch outputs) on
 * the CPU backend and compares: usage test-ops-torch DIR */
#include "ovi-backend.h"

#include <json-glib/json-glib.h>
#include <math.h>

static const char *dir;

static OviTensor *
load (JsonObject *desc)
{
  JsonArray *sh = json_object_get_array_member (desc, "shape");
  int64_t shape[OVI_MAX_DIMS];
  int nd = (int) json_array_get_length (sh);
  g_autofree char *path = g_build_filename (
      dir, json_object_get_string_member (desc, "file"), NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  OviTensor *t;

  for (int i = 0; i < nd; i++)
    shape[i] = json_array_get_int_element (sh, i);
  t = ovi_tensor_new_f32 (nd, shape);
  if (!g_file_get_contents (path, &data, &len, NULL)
      || len != ovi_tensor_nbytes (t))
    g_error ("cannot read %s", path);
  memcpy (ovi_tensor_data (t), data, len);
  return t;
}

static int
param_int (JsonObject *p, const char *name)
{
  return (int) json_object_get_int_member (p, name);
}

int
main (int argc, char **argv)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (OviBackend) be = ovi_backend_new_cpu (2);
  g_autofree char *manifest = NULL;
  GError *error = NULL;
  JsonArray *cases;
  int failures = 0;

  if (argc != 2)
    g_error ("usage: %s DIR", argv[0]);
  dir = argv[1];
  manifest = g_build_filename (dir, "cases.json", NULL);
  if (!json_parser_load_from_file (parser, manifest, &error))
    g_error ("%s", error->message);
  cases = json_node_get_array (json_parser_get_root (parser));
  for (guint c = 0; c < json_array_get_length (cases); c++) {
    JsonObject *cs = json_array_get_object_element (cases, c);
    JsonObject *in = json_object_get_object_member (cs, "inputs");
    JsonObject *p = json_object_get_object_member (cs, "params");
    const char *op = json_object_get_string_member (cs, "op");
    double tol = json_object_get_double_member (cs, "tol");
    g_autoptr (OviTensor) want
        = load (json_object_get_object_member (cs, "expected"));
    g_autoptr (OviTensor) out
        = ovi_backend_new_act (be, want->ndim, want->shape);
    g_autoptr (OviTensor) x = NULL, w = NULL, b = NULL;
    const float *o, *r;
    double num = 0, den = 0, err;

#define IN(name) load (json_object_get_object_member (in, name))
    if (json_object_has_member (in, "x"))
      x = IN ("x");
    if (g_str_equal (op, "conv1d")) {
      w = IN ("w");
      b = IN ("b");
      ovi_op_conv1d (be, out, x, w, b, param_int (p, "stride"),
                     param_int (p, "pad"), param_int (p, "pad"),
                     param_int (p, "dilation"), param_int (p, "groups"));
    } else if (g_str_equal (op, "conv_transpose1d")) {
      w = IN ("w");
      b = IN ("b");
      ovi_op_conv_transpose1d (be, out, x, w, b, param_int (p, "stride"),
                               param_int (p, "pad"), param_int (p, "groups"));
    } else if (g_str_equal (op, "conv3d")) {
      JsonArray *sa = json_object_get_array_member (p, "stride");
      JsonArray *pa = json_object_get_array_member (p, "pad");
      int st[3], pad[6];
      for (int i = 0; i < 3; i++)
        st[i] = (int) json_array_get_int_element (sa, i);
      for (int i = 0; i < 6; i++)
        pad[i] = (int) json_array_get_int_element (pa, i);
      w = IN ("w");
      b = IN ("b");
      ovi_op_conv3d (be, out, x, w, b, st, pad);
    } else if (g_str_equal (op, "layer_norm")) {
      w = IN ("w");
      b = IN ("b");
      ovi_op_layer_norm (be, out, x, w, b,
                         (float) json_object_get_double_member (p, "eps"));
    } else if (g_str_equal (op, "rms_norm")) {
      w = IN ("w");
      ovi_op_rms_norm (be, out, x, w,
                       (float) json_object_get_double_member (p, "eps"));
    } else if (g_str_equal (op, "softmax")) {
      ovi_op_softmax (be, out, x);
    } else if (g_str_equal (op, "gelu_tanh")) {
      ovi_op_unary (be, out, x, OVI_ACT_GELU_TANH, 1.0f);
    } else if (g_str_equal (op, "gelu_erf")) {
      ovi_op_unary (be, out, x, OVI_ACT_GELU_ERF, 1.0f);
    } else if (g_str_equal (op, "silu")) {
      ovi_op_unary (be, out, x, OVI_ACT_SILU, 1.0f);
    } else if (g_str_equal (op, "upsample2")) {
      ovi_op_upsample_nearest (be, out, x, 2, (int[]){ 2, 2 });
    } else if (g_str_equal (op, "pad_replicate")) {
      ovi_op_pad (be, out, x, 2, (int[]){ 1, 3, 2, 1 }, OVI_PAD_REPLICATE);
    } else if (g_str_equal (op, "pixel_unshuffle")) {
      ovi_op_pixel_unshuffle (be, out, x, 2);
    } else if (g_str_equal (op, "attention")) {
      g_autoptr (OviTensor) q = IN ("q");
      g_autoptr (OviTensor) k = IN ("k");
      g_autoptr (OviTensor) v = IN ("v");
      JsonArray *la = json_object_get_array_member (p, "kv_lens");
      int64_t lens[8];
      for (guint i = 0; i < json_array_get_length (la) && i < 8; i++)
        lens[i] = json_array_get_int_element (la, i);
      b = IN ("bias");
      ovi_op_attention (be, out, q, k, v, b, lens,
                        (float) json_object_get_double_member (p, "scale"));
    } else if (g_str_equal (op, "rope")) {
      w = IN ("cos");
      b = IN ("sin");
      ovi_op_rope (be, out, x, w, b);
    } else if (g_str_equal (op, "snake_beta")) {
      w = IN ("alpha");
      b = IN ("beta");
      ovi_op_snake_beta (be, out, x, w, b, TRUE);
    } else if (g_str_equal (op, "channel_norm_l2")) {
      w = IN ("gamma");
      ovi_op_channel_norm (be, out, x, w, OVI_CHANNEL_NORM_L2_SQRT_C);
    } else if (g_str_equal (op, "channel_norm_mag")) {
      ovi_op_channel_norm (be, out, x, NULL, OVI_CHANNEL_NORM_MAGNITUDE);
    } else {
      g_error ("unknown op %s", op);
    }
#undef IN
    if (!ovi_backend_sync (be, &error)) {
      g_printerr ("not ok %u %s: %s\n", c, op, error->message);
      g_clear_error (&error);
      failures++;
      continue;
    }
    o = ovi_tensor_data (out);
    r = ovi_tensor_data (want);
    for (int64_t i = 0; i < ovi_tensor_numel (out); i++) {
      num += ((double) o[i] - r[i]) * ((double) o[i] - r[i]);
      den += (double) r[i] * r[i];
    }
    err = sqrt (num / MAX (den, 1e-300));
    if (!(err <= tol + 6e-8)) { /* + the f32 rounding of the reference */
      g_print ("not ok %u %s: rel_l2 %.3g > %.3g\n", c, op, err, tol);
      failures++;
    } else {
      g_print ("ok %u %s: rel_l2 %.3g\n", c, op, err);
    }
  }
  return failures ? 1 : 0;
}
