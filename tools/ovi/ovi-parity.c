/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity CASE_DIR [--backend cpu|cuda]`. */
#include "ovi-parity.h"
#include "ovi-cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
  const char *case_name;
  OviParityRunner run;
} runners[] = {
  { "fusion_dit", ovi_parity_run_fusion_dit },
  { "sampler", ovi_parity_run_sampler },
  { "video_vae", ovi_parity_run_video_vae },
  { "audio", ovi_parity_run_audio },
  { "tokenizer", ovi_parity_run_tokenizer },
  { "t5", ovi_parity_run_t5 },
  { NULL, NULL },
};

char *
ovi_parity_path (OviParity *p, const char *relative)
{
  return g_build_filename (p->case_dir, relative, NULL);
}

static void report (OviParity *p, const char *name, gboolean ok,
                    const char *format, ...) G_GNUC_PRINTF (4, 5);

static void
report (OviParity *p, const char *name, gboolean ok, const char *format, ...)
{
  va_list args;
  g_autofree char *detail = NULL;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);
  printf ("%s %s %s\n", name, detail, ok ? "ok" : "FAIL");
  if (ok)
    p->passed++;
  else
    p->failed++;
}

gboolean
ovi_parity_check (OviParity *p, const char *name, OviTensor *got,
                  const OviTensor *ref)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) g = NULL;
  g_autoptr (OviTensor) r = NULL;
  double diff2 = 0, ref2 = 0, max_abs = 0, max_ref = 0;
  gboolean ok;

  if (isnan (p->rel_tol)) {
    report (p, name, FALSE,
            "error=\"the case states no fp32 tolerance (give --tolerance)\"");
    return FALSE;
  }
  g = ovi_backend_download_f32 (p->backend, got, &error);
  if (g)
    r = ovi_tensor_to_f32 (ref, &error);
  if (g == NULL || r == NULL) {
    report (p, name, FALSE, "error=\"%s\"", error->message);
    return FALSE;
  }
  if (ovi_tensor_numel (r) == 0) {
    report (p, name, FALSE, "error=\"empty reference: nothing compared\"");
    return FALSE;
  }
  if (ovi_tensor_numel (g) != ovi_tensor_numel (r)) {
    g_autofree char *gs = ovi_shape_to_string (g->ndim, g->shape);
    g_autofree char *rs = ovi_shape_to_string (r->ndim, r->shape);
    report (p, name, FALSE, "shape=%s expected=%s", gs, rs);
    return FALSE;
  }
  const float *gd = ovi_tensor_data (g), *rd = ovi_tensor_data (r);
  for (int64_t i = 0; i < ovi_tensor_numel (g); i++) {
    double d = (double) gd[i] - rd[i];
    diff2 += d * d;
    ref2 += (double) rd[i] * rd[i];
    max_abs = MAX (max_abs, fabs (d));
    max_ref = MAX (max_ref, fabs (rd[i]));
  }
  double rel = ref2 > 0 ? sqrt (diff2 / ref2) : sqrt (diff2);
  ok = isfinite (rel) && rel <= p->rel_tol
       && max_abs <= p->abs_tol * MAX (1.0, max_ref);
  report (p, name, ok, "max_abs=%.3e rel=%.3e", max_abs, rel);
  return ok;
}

gboolean
ovi_parity_check_io (OviParity *p, const char *name, OviTensor *got)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OviTensor) ref = NULL;

  if (p->io) {
    ref = ovi_weight_file_get (p->io, name, &error);
    g_hash_table_add (p->compared, g_strdup (name));
  }
  if (ref == NULL) {
    report (p, name, FALSE, "error=\"%s\"",
            error ? error->message : "case has no io.safetensors");
    return FALSE;
  }
  return ovi_parity_check (p, name, got, ref);
}

gboolean
ovi_parity_check_exact (OviParity *p, const char *name, const int64_t *got,
                        gsize n_got, const int64_t *ref, gsize n_ref)
{
  gsize first_diff = 0;

  if (p->io && ovi_weight_file_contains (p->io, name))
    g_hash_table_add (p->compared, g_strdup (name));
  while (first_diff < MIN (n_got, n_ref) && got[first_diff] == ref[first_diff])
    first_diff++;
  gboolean ok = n_ref > 0 && n_got == n_ref && first_diff == n_ref;
  if (n_ref == 0)
    report (p, name, FALSE, "error=\"empty reference: nothing compared\"");
  else if (ok)
    report (p, name, TRUE, "n=%" G_GSIZE_FORMAT " exact", n_ref);
  else
    report (p, name, FALSE,
            "n=%" G_GSIZE_FORMAT " expected_n=%" G_GSIZE_FORMAT
            " first_mismatch=%" G_GSIZE_FORMAT,
            n_got, n_ref, first_diff);
  return ok;
}

/* The fp32 rule is stated as "rel_l2 <= R and max_abs <= A * max(1, max|ref|)".
 * A case without one (the tokenizer: exact checks only) leaves the bounds
 * NAN, so a float comparison fails instead of passing under a made-up
 * rule; a rule that is there but cannot be read is an error. */
static gboolean
read_tolerance (OviParity *p, GError **error)
{
  JsonObject *tol = NULL;
  JsonNode *rule;

  p->rel_tol = p->abs_tol = NAN;
  if (json_object_has_member (p->config, "tolerance"))
    tol = json_object_get_object_member (p->config, "tolerance");
  rule = tol ? json_object_get_member (tol, "fp32_pass_if") : NULL;
  if (rule == NULL)
    return TRUE;
  const char *text = JSON_NODE_HOLDS_VALUE (rule)
                             && json_node_get_value_type (rule) == G_TYPE_STRING
                         ? json_node_get_string (rule)
                         : NULL;
  char tail;
  if (text == NULL
      || sscanf (text, "rel_l2 <= %lf and max_abs <= %lf * max(1, max|ref|)%c",
                 &p->rel_tol, &p->abs_tol, &tail)
             != 2
      || !(p->rel_tol > 0) || !(p->abs_tol > 0)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: cannot read tolerance.fp32_pass_if \"%s\" (expected "
                 "\"rel_l2 <= R and max_abs <= A * max(1, max|ref|)\")",
                 p->case_dir, text ? text : "(not a string)");
    p->rel_tol = p->abs_tol = NAN;
    return FALSE;
  }
  return TRUE;
}

static gboolean
open_case (OviParity *p, const char *case_dir, GError **error)
{
  g_autofree char *config_path = NULL, *io_path = NULL;
  JsonNode *root;

  p->case_dir = g_strdup (case_dir);
  config_path = ovi_parity_path (p, "config.json");
  p->parser = json_parser_new ();
  if (!json_parser_load_from_file (p->parser, config_path, error))
    return FALSE;
  root = json_parser_get_root (p->parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: not a JSON object",
                 config_path);
    return FALSE;
  }
  p->config = json_node_get_object (root);
  p->compared = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (!read_tolerance (p, error))
    return FALSE;
  io_path = ovi_parity_path (p, "io.safetensors");
  if (g_file_test (io_path, G_FILE_TEST_EXISTS)) {
    p->io = ovi_weight_file_open (io_path, NULL, error);
    if (p->io == NULL)
      return FALSE;
  }
  return TRUE;
}

static void
close_case (OviParity *p)
{
  g_clear_pointer (&p->io, ovi_weight_file_free);
  g_clear_pointer (&p->backend, ovi_backend_free);
  g_clear_object (&p->parser);
  g_clear_pointer (&p->compared, g_hash_table_unref);
  g_free (p->case_dir);
}

static gboolean
is_input_name (const char *name)
{
  static const char *const prefixes[]
      = { "in.", "init.", "text.", "i2v.", "dbg." };
  int step, n = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (prefixes); i++)
    if (g_str_has_prefix (name, prefixes[i]))
      return TRUE;
  return sscanf (name, "step%d.in.%n", &step, &n) == 1 && n > 0;
}

/* One FAIL line per reference tensor of the case that no check used, and
 * one when nothing at all was compared. */
static void
check_coverage (OviParity *p)
{
  if (p->passed + p->failed == 0)
    report (p, "(run)", FALSE, "error=\"no comparison was made\"");
  for (guint i = 0; p->io && i < ovi_weight_file_n_tensors (p->io); i++) {
    const char *name = ovi_weight_file_name (p->io, i);
    if (!is_input_name (name) && !g_hash_table_contains (p->compared, name))
      report (p, name, FALSE, "error=\"reference never compared\"");
  }
}

static OviParityRunner
find_runner (const char *case_name)
{
  for (gsize i = 0; runners[i].case_name; i++)
    if (g_strcmp0 (runners[i].case_name, case_name) == 0)
      return runners[i].run;
  return NULL;
}

int
ovi_cmd_parity (int argc, char **argv)
{
  g_autofree char *backend_name = NULL;
  double tolerance = 0.0;
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  int sp = 1, shard = 1;
  gboolean cfg_parallel = FALSE;
  GOptionEntry entries[] = {
    { "backend", 'b', 0, G_OPTION_ARG_STRING, &backend_name,
      "Backend to run on: cpu (default), cuda (bf16) or cuda-fp32", "NAME" },
    { "tolerance", 't', 0, G_OPTION_ARG_DOUBLE, &tolerance,
      "Pass if rel_l2 <= R and max_abs <= 10 R * max(1, max|ref|), instead "
      "of the case's fp32 rule (e.g. 5e-2 for a bf16 backend)",
      "R" },
    { "sp", 0, 0, G_OPTION_ARG_INT, &sp,
      "Run the fusion DiT on N ranks (Ulysses sequence parallel; CPU ranks "
      "are threads, CUDA ranks GPUs 0..N-1 over NCCL): fusion_dit and "
      "sampler cases",
      "N" },
    { "cfg-parallel", 0, 0, G_OPTION_ARG_NONE, &cfg_parallel,
      "Run the positive and the negative pass at once on two rank groups "
      "(combines with --sp)",
      NULL },
    { "shard", 0, 0, G_OPTION_ARG_INT, &shard,
      "Split every fused block's matmul weights over N ranks, gathered per "
      "block (with --sp: the same N ranks)",
      "N" },
    { NULL }
  };
  OviParity p = { 0 };
  OviParityRunner run;
  const char *case_name;
  gboolean ran;

  ctx = g_option_context_new (
      "CASE_DIR - check the engine against a golden case");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return ovi_cli_fail ("%s", error->message);
  if (argc != 2)
    return ovi_cli_fail ("parity takes one CASE_DIR (see ovi parity --help)");
  if (sp < 1 || sp > 64)
    return ovi_cli_fail ("--sp %d: give 1 to 64 ranks", sp);
  if (shard < 1 || shard > 64 || (shard > 1 && sp > 1 && shard != sp))
    return ovi_cli_fail ("--shard %d: give 1 to 64 ranks, the same as --sp "
                         "when both are given",
                         shard);
  p.sp = sp;
  p.cfg_parallel = cfg_parallel;
  p.shard = shard;

  if (!open_case (&p, argv[1], &error)) {
    close_case (&p);
    return ovi_cli_fail ("%s", error->message);
  }
  if (tolerance > 0.0) {
    p.rel_tol = tolerance;
    p.abs_tol = 10.0 * tolerance;
  }
  case_name = json_object_get_string_member_with_default (p.config, "case", "");
  run = find_runner (case_name);
  if (run == NULL) {
    close_case (&p);
    return ovi_cli_fail ("%s: unknown case type '%s'", argv[1], case_name);
  }
  if ((sp > 1 || cfg_parallel || shard > 1)
      && g_strcmp0 (case_name, "fusion_dit") != 0
      && g_strcmp0 (case_name, "sampler") != 0) {
    g_autofree char *name = g_strdup (case_name);
    close_case (&p);
    return ovi_cli_fail ("%s: --sp, --cfg-parallel and --shard apply to the "
                         "fusion_dit "
                         "and sampler cases, not to '%s'",
                         argv[1], name);
  }
  p.backend = ovi_backend_new_by_name (backend_name ? backend_name : "cpu", 0,
                                       &error);
  ran = p.backend != NULL && run (&p, &error);
  if (!ran)
    fprintf (stderr, "ovi: %s: %s\n", argv[1], error->message);
  else
    check_coverage (&p);
  printf ("%d passed, %d failed\n", p.passed, p.failed + (ran ? 0 : 1));
  int status = ran && p.failed == 0 ? 0 : 1;
  close_case (&p);
  return status;
}
