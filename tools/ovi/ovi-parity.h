/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi parity CASE_DIR`, checking the engine against a golden case.
 *
 * A runner per case type ("case" in config.json) loads the case's weights
 * and inputs, runs the engine stage on the chosen backend and calls
 * ovi_parity_check*() once per output. Each check prints one line
 *   NAME max_abs=… rel=… ok|FAIL
 * and the command ends with "N passed, M failed". The pass rule is the
 * case's own tolerance block.
 *
 * A run cannot pass by accident: it fails when nothing was compared, when
 * the case's fp32 rule cannot be read, and when a reference tensor of
 * io.safetensors (every name but the inputs in.*, init.*, text.*, i2v.*,
 * step{i}.in.* and the optional dbg.*) was never compared. */
#pragma once

#include <json-glib/json-glib.h>

#include "ovi-backend.h"
#include "ovi-weights.h"

typedef struct {
  char *case_dir;
  JsonParser *parser;
  JsonObject *config; /* config.json */
  OviBackend *backend;
  OviWeightFile *io; /* io.safetensors, NULL when the case has none */
  double rel_tol;    /* rel_l2 bound; NAN: the case states no fp32 rule */
  double abs_tol;    /* max_abs bound, times max(1, max|ref|) */
  int passed;
  int failed;
  GHashTable *compared; /* io tensor names a check has used */
  /* ranks (--sp, --cfg-parallel): the fusion forwards run on sp (x 2)
   * ranks; 1 and FALSE: one */
  int sp;
  gboolean cfg_parallel;
  int shard; /* --shard: block weights split over this many ranks */
} OviParity;

typedef gboolean (*OviParityRunner) (OviParity *p, GError **error);

/* case_dir/relative, to be freed */
char *ovi_parity_path (OviParity *p, const char *relative);

/* Compares `got` (any backend, any float dtype) with `ref` by the case's
 * rule and prints the line. Shapes must have the same number of elements. */
gboolean ovi_parity_check (OviParity *p, const char *name, OviTensor *got,
                           const OviTensor *ref);
/* As ovi_parity_check against the tensor of io.safetensors named `name`. */
gboolean ovi_parity_check_io (OviParity *p, const char *name, OviTensor *got);
/* Exact comparison of integer sequences (token ids). */
gboolean ovi_parity_check_exact (OviParity *p, const char *name,
                                 const int64_t *got, gsize n_got,
                                 const int64_t *ref, gsize n_ref);

/* Runners, one per case type. */
gboolean ovi_parity_run_fusion_dit (OviParity *p, GError **error);
gboolean ovi_parity_run_sampler (OviParity *p, GError **error);
gboolean ovi_parity_run_video_vae (OviParity *p, GError **error);
gboolean ovi_parity_run_audio (OviParity *p, GError **error);
gboolean ovi_parity_run_tokenizer (OviParity *p, GError **error);
gboolean ovi_parity_run_t5 (OviParity *p, GError **error);
