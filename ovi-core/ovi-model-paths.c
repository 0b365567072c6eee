/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: model folder resolution (OviModelPaths of ovi-engine.h).
 *
 * A model folder is the official download layout (docs/weights.md). With
 * no variant named, the variant is the first of models.json's official
 * entries (720x720_5s, 960x960_5s, 960x960_10s) whose fusion file exists,
 * so a folder holding several fusion files runs the 720x720_5s model — the
 * lightest, and the only one with an fp8 file — unless a variant is named.
 * A folder with the tiny marker (ovi-tiny.json) is the tiny model. With no
 * folder, the tiny model in the user cache is used, written on first use.
 */
#include "ovi-engine.h"
#include "ovi-error.h"
#include "ovi-presets.h"
#include "ovi-tiny.h"

#include <string.h>

void
ovi_model_paths_free (OviModelPaths *paths)
{
  if (paths == NULL)
    return;
  g_free (paths->variant);
  g_free (paths->fusion_path);
  g_free (paths->t5_path);
  g_free (paths->spiece_path);
  g_free (paths->vae_path);
  g_free (paths->audio_vae_path);
  g_free (paths->vocoder_path);
  g_free (paths);
}

OviModelPaths *
ovi_model_paths_copy (const OviModelPaths *paths)
{
  OviModelPaths *c = g_memdup2 (paths, sizeof *paths);

  c->variant = g_strdup (paths->variant);
  c->fusion_path = g_strdup (paths->fusion_path);
  c->t5_path = g_strdup (paths->t5_path);
  c->spiece_path = g_strdup (paths->spiece_path);
  c->vae_path = g_strdup (paths->vae_path);
  c->audio_vae_path = g_strdup (paths->audio_vae_path);
  c->vocoder_path = g_strdup (paths->vocoder_path);
  return c;
}

static char *
need_file (const char *root, const char *variant, const char *rel,
           GError **error)
{
  g_autofree char *path = g_build_filename (root, rel, NULL);
  g_autofree char *folder = NULL;

  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer (&path);
  folder = g_path_get_dirname (path);
  g_set_error (
      error, OVI_ERROR, OVI_ERROR_IO,
      "model folder '%s' (variant %s) lacks %s: expected the file %s%s; see "
      "docs/weights.md for the official download layout",
      root, variant, rel, path,
      g_file_test (folder, G_FILE_TEST_IS_DIR)
          ? ""
          : " (its folder does not exist either)");
  return NULL;
}

/* the official variants in detection order, with their fusion files */
static gboolean
detect_variant (const char *root, char **variant, GError **error)
{
  g_auto (GStrv) names = ovi_model_preset_names (error);
  g_autoptr (GString) tried = g_string_new (NULL);

  if (names == NULL)
    return FALSE;
  for (guint i = 0; names[i]; i++) {
    const OviModelPreset *m;
    g_autofree char *path = NULL;

    if (strcmp (names[i], "tiny") == 0)
      continue;
    m = ovi_model_preset_lookup (names[i], error);
    if (m == NULL)
      return FALSE;
    path = g_build_filename (root, m->fusion_file, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
      *variant = g_strdup (m->name);
      return TRUE;
    }
    g_string_append_printf (tried, "%s%s (%s)", tried->len ? ", " : "",
                            m->fusion_file, m->name);
  }
  g_set_error (
      error, OVI_ERROR, OVI_ERROR_IO,
      "model folder '%s' holds no Ovi fusion weights: expected one of %s; "
      "see docs/weights.md for the official download layout",
      root, tried->str);
  return FALSE;
}

OviModelPaths *
ovi_model_paths_resolve (const char *model_dir, const char *variant,
                         GError **error)
{
  g_autoptr (OviModelPaths) paths = NULL;
  g_autofree char *root = NULL;
  g_autofree char *chosen = NULL;
  g_autofree char *marker = NULL;
  const OviModelPreset *m;
  gboolean is_tiny;

  if (model_dir == NULL || *model_dir == '\0') {
    if (variant != NULL && strcmp (variant, "tiny") != 0) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
          "variant '%s' needs its weights: set the model folder (model-dir) "
          "to the official download; without one only the tiny model runs",
          variant);
      return NULL;
    }
    root = ovi_tiny_ensure_default (error);
    if (root == NULL)
      return NULL;
  } else {
    if (!g_file_test (model_dir, G_FILE_TEST_IS_DIR)) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                   "model folder '%s' does not exist or is not a folder",
                   model_dir);
      return NULL;
    }
    root = g_canonicalize_filename (model_dir, NULL);
  }

  marker = g_build_filename (root, OVI_TINY_MARKER, NULL);
  is_tiny = g_file_test (marker, G_FILE_TEST_IS_REGULAR);
  if (variant != NULL) {
    if (ovi_model_preset_lookup (variant, error) == NULL)
      return NULL;
    if (is_tiny != (strcmp (variant, "tiny") == 0)) {
      g_set_error (
          error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
          is_tiny
              ? "model folder '%s' holds the tiny model (%s), not variant '%s'"
              : "model folder '%s' has no %s, so it is not the tiny model "
                "(variant '%s'); write one with `ovi make-tiny DIR`",
          root, OVI_TINY_MARKER, variant);
      return NULL;
    }
    chosen = g_strdup (variant);
  } else if (is_tiny) {
    chosen = g_strdup ("tiny");
  } else if (!detect_variant (root, &chosen, error)) {
    return NULL;
  }

  m = ovi_model_preset_lookup (chosen, error);
  if (m == NULL)
    return NULL;

  paths = g_new0 (OviModelPaths, 1);
  paths->variant = g_strdup (m->name);
  paths->video_latent_frames = m->video_latent_frames;
  paths->audio_latent_length = m->audio_latent_length;
  paths->target_area = m->target_area;
  paths->audcap_syntax = m->audcap_syntax;
  paths->num_heads = m->num_heads;
  paths->text_len = m->text_len;
  paths->eps = m->eps;
  paths->audio_rope_scale = m->audio_rope_scale;
  if ((paths->fusion_path = need_file (root, m->name, m->fusion_file, error))
          == NULL
      || (paths->t5_path = need_file (root, m->name, m->t5_file, error)) == NULL
      || (paths->spiece_path = need_file (root, m->name, m->spiece_file, error))
             == NULL
      || (paths->vae_path = need_file (root, m->name, m->vae_file, error))
             == NULL
      || (paths->audio_vae_path
          = need_file (root, m->name, m->audio_vae_file, error))
             == NULL
      || (paths->vocoder_path
          = need_file (root, m->name, m->vocoder_file, error))
             == NULL)
    return NULL;
  return g_steal_pointer (&paths);
}
