/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: `ovi lora LORA --model-dir DIR [--strength S] [--target T]
 * [--sum]`: what a LoRA file changes in a model's fusion DiT. Prints the
 * formats detected, rank, alpha and the matched / unmatched key counts;
 * with --sum, each fusion tensor the LoRA changes as `ovi inspect --sum`
 * prints a tensor, the values being the merged weight in the model's
 * dtype. LORA may be a list as the element's `lora` property takes it
 * (path[:strength[:target]];...); --strength / --target set the default of
 * entries without their own. */
#include "ovi-cli.h"
#include "ovi-engine.h"
#include "ovi-lora.h"

#include <stdio.h>
#include <string.h>

static void
print_info (const OviLoraFileInfo *info, const OviLoraSpec *spec)
{
  g_autofree char *formats = ovi_lora_format_to_string (info->formats);

  printf ("file: %s\n", info->path);
  printf ("format: %s\n", formats);
  printf ("strength: %g, target: %s\n", spec->strength,
          ovi_lora_target_to_string (spec->target));
  if (info->rank > 0)
    printf ("rank: %d, alpha: %g (scale %g)%s\n", info->rank, info->alpha,
            info->alpha / info->rank,
            info->mixed ? " (ranks or alphas differ between keys)" : "");
  else
    printf ("rank: none (full-weight deltas only)\n");
  printf ("keys: %u, matched: %u, unmatched: %u\n", info->n_keys,
          info->n_matched, info->unmatched->len);
  for (guint i = 0; i < info->unmatched->len; i++)
    printf ("unmatched: %s\n",
            (const char *) g_ptr_array_index (info->unmatched, i));
}

static int
print_sums (OviWeightFile *model, OviLoraSet *set)
{
  g_autoptr (GPtrArray) targets = ovi_lora_set_targets (set);
  GString *out = g_string_new (NULL);
  GError *error = NULL;

  for (guint i = 0; i < targets->len; i++) {
    const char *name = g_ptr_array_index (targets, i);
    g_autoptr (OviTensor) w = ovi_weight_file_get (model, name, &error);
    g_autoptr (OviTensor) merged = NULL;

    if (w)
      merged = ovi_lora_merge (w, ovi_lora_set_deltas (set, name), &error);
    if (merged == NULL) {
      g_string_free (out, TRUE);
      return ovi_cli_fail_error (error);
    }
    ovi_cli_append_tensor_line (out, name, merged, TRUE);
  }
  fwrite (out->str, 1, out->len, stdout);
  g_string_free (out, TRUE);
  return 0;
}

/* entries without a strength / target of their own get the options' */
static GPtrArray *
parse_list (const char *list, const char *strength, const char *target,
            GError **error)
{
  OviLoraSpec defaults = { .strength = 1.0 };
  char *end = NULL;

  if (target && !ovi_lora_target_from_string (target, &defaults.target)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "--target %s: expected video, audio or both", target);
    return NULL;
  }
  if (strength) {
    defaults.strength = g_ascii_strtod (strength, &end);
    if (end == strength || *end != '\0') {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "--strength %s is not a number", strength);
      return NULL;
    }
  }
  return ovi_lora_specs_parse_with_defaults (list, &defaults, error);
}

int
ovi_cmd_lora (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *model_name = NULL, *strength = NULL,
                  *target = NULL;
  gboolean sum = FALSE;
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OviModelPaths) paths = NULL;
  g_autoptr (OviWeightFile) model = NULL;
  g_autoptr (GPtrArray) specs = NULL;
  g_autoptr (OviLoraSet) set = NULL;
  GOptionEntry entries[] = {
    { "model-dir", 'd', 0, G_OPTION_ARG_FILENAME, &model_dir,
      "Model folder (official layout; default: the tiny model)", "DIR" },
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model_name,
      "Model preset (default: the one whose weights are present)", "NAME" },
    { "strength", 's', 0, G_OPTION_ARG_STRING, &strength,
      "Strength (default 1)", "S" },
    { "target", 't', 0, G_OPTION_ARG_STRING, &target,
      "Tower of keys without one: video (default), audio or both", "T" },
    { "sum", 0, 0, G_OPTION_ARG_NONE, &sum,
      "Print each changed tensor as `ovi inspect --sum` does, merged", NULL },
    { NULL }
  };

  ctx = g_option_context_new ("LORA - what a LoRA file changes in a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return ovi_cli_fail ("%s", error->message);
  if (argc != 2)
    return ovi_cli_fail ("lora: give one LoRA file (or a list "
                         "path[:strength[:target]];...)");
  specs = parse_list (argv[1], strength, target, &error);
  if (specs == NULL)
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (specs->len == 0)
    return ovi_cli_fail ("lora: no LoRA file given");
  paths = ovi_model_paths_resolve (model_dir, model_name, &error);
  if (paths)
    model = ovi_weight_file_open (paths->fusion_path, NULL, &error);
  if (model)
    set = ovi_lora_set_new (model, (const OviLoraSpec *const *) specs->pdata,
                            specs->len, &error);
  if (set == NULL)
    return ovi_cli_fail_error (g_steal_pointer (&error));
  if (sum)
    return print_sums (model, set);
  printf ("model: %s\n", paths->fusion_path);
  for (guint i = 0; i < ovi_lora_set_n_files (set); i++)
    print_info (ovi_lora_set_file_info (set, i), g_ptr_array_index (specs, i));
  {
    g_autoptr (GPtrArray) targets = ovi_lora_set_targets (set);
    printf ("tensors changed: %u\n", targets->len);
  }
  return fflush (stdout) == 0 ? 0 : 1;
}
