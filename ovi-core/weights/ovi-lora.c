/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: LoRA files: key formats, validation, merge (see ovi-lora.h). */
#include "ovi-lora.h"

#include <math.h>
#include <string.h>

static const char *const tower_prefix[2] = { "video_model.", "audio_model." };

/* ---- targets and specs ---- */

const char *
ovi_lora_target_to_string (OviLoraTarget target)
{
  switch (target) {
    case OVI_LORA_TARGET_AUDIO:
      return "audio";
    case OVI_LORA_TARGET_BOTH:
      return "both";
    default:
      return "video";
  }
}

gboolean
ovi_lora_target_from_string (const char *s, OviLoraTarget *target)
{
  static const OviLoraTarget all[]
      = { OVI_LORA_TARGET_VIDEO, OVI_LORA_TARGET_AUDIO, OVI_LORA_TARGET_BOTH };

  for (gsize i = 0; i < G_N_ELEMENTS (all); i++) {
    if (g_strcmp0 (s, ovi_lora_target_to_string (all[i])) == 0) {
      *target = all[i];
      return TRUE;
    }
  }
  return FALSE;
}

void
ovi_lora_spec_free (OviLoraSpec *spec)
{
  if (spec == NULL)
    return;
  g_free (spec->path);
  g_free (spec);
}

static gboolean
check_strength (double strength, const char *what, GError **error)
{
  if (isfinite (strength) && strength >= 0)
    return TRUE;
  g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
               "LoRA %s: strength %g must be a finite number >= 0", what,
               strength);
  return FALSE;
}

static gboolean
parse_number (const char *s, double *out)
{
  char *end = NULL;

  if (*s == '\0')
    return FALSE;
  *out = g_ascii_strtod (s, &end);
  return end != NULL && *end == '\0';
}

/* "path[:strength[:target]]", parsed from the right so that a path may
 * hold ':' itself */
static OviLoraSpec *
parse_entry (const char *entry, const OviLoraSpec *defaults, GError **error)
{
  g_autofree char *rest = g_strdup (entry);
  g_autoptr (GError) local = NULL;
  OviLoraSpec *spec = g_new0 (OviLoraSpec, 1);
  gboolean has_target = FALSE;
  char *colon;

  spec->strength = defaults->strength;
  spec->target = defaults->target;
  colon = strrchr (rest, ':');
  if (colon && ovi_lora_target_from_string (colon + 1, &spec->target)) {
    has_target = TRUE;
    *colon = '\0';
    colon = strrchr (rest, ':');
  }
  if (colon && parse_number (colon + 1, &spec->strength)) {
    *colon = '\0';
  } else if (has_target) {
    g_set_error (&local, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "LoRA entry '%s': expected path:strength:target, the "
                 "strength '%s' is not a number",
                 entry, colon ? colon + 1 : "");
  }
  if (local == NULL && *rest == '\0')
    g_set_error (&local, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "LoRA entry '%s' has no file name", entry);
  if (local == NULL)
    check_strength (spec->strength, entry, &local);
  if (local) {
    ovi_lora_spec_free (spec);
    g_propagate_error (error, g_steal_pointer (&local));
    return NULL;
  }
  spec->path = g_steal_pointer (&rest);
  return spec;
}

GPtrArray *
ovi_lora_specs_parse (const char *text, GError **error)
{
  OviLoraSpec defaults = { .strength = 1.0 };

  return ovi_lora_specs_parse_with_defaults (text, &defaults, error);
}

GPtrArray *
ovi_lora_specs_parse_with_defaults (const char *text,
                                    const OviLoraSpec *defaults, GError **error)
{
  g_autoptr (GPtrArray) specs
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_lora_spec_free);
  g_auto (GStrv) entries = g_strsplit (text ? text : "", ";", -1);

  for (int i = 0; entries[i]; i++) {
    char *entry = g_strstrip (entries[i]);
    OviLoraSpec *spec;

    if (*entry == '\0')
      continue;
    spec = parse_entry (entry, defaults, error);
    if (spec == NULL)
      return NULL;
    g_ptr_array_add (specs, spec);
  }
  return g_steal_pointer (&specs);
}

gboolean
ovi_lora_specs_equal (const GPtrArray *a, const GPtrArray *b)
{
  guint na = a ? a->len : 0, nb = b ? b->len : 0;

  if (na != nb)
    return FALSE;
  for (guint i = 0; i < na; i++) {
    const OviLoraSpec *x = g_ptr_array_index (a, i);
    const OviLoraSpec *y = g_ptr_array_index (b, i);
    if (g_strcmp0 (x->path, y->path) != 0 || x->strength != y->strength
        || x->target != y->target)
      return FALSE;
  }
  return TRUE;
}

char *
ovi_lora_format_to_string (guint formats)
{
  static const struct {
    guint bit;
    const char *name;
  } names[] = {
    { OVI_LORA_FORMAT_DIFFUSERS, "diffusers/PEFT" },
    { OVI_LORA_FORMAT_NATIVE, "native (ComfyUI/lightx2v)" },
    { OVI_LORA_FORMAT_KOHYA, "kohya/musubi" },
    { OVI_LORA_FORMAT_OVI, "Ovi names" },
  };
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    if (formats & names[i].bit)
      g_string_append_printf (s, "%s%s", s->len ? ", " : "", names[i].name);
  if (s->len == 0)
    g_string_append (s, "none");
  return g_string_free (s, FALSE);
}

/* ---- key names ---- */

typedef enum {
  PART_DOWN,
  PART_UP,
  PART_ALPHA,
  PART_DIFF,
  PART_DIFF_B,
  N_PARTS
} Part;

static const char *const part_name[N_PARTS]
    = { "lora_down", "lora_up", "alpha", "diff", "diff_b" };

static const struct {
  const char *suffix;
  Part part;
} key_suffixes[] = {
  { ".lora_down.weight", PART_DOWN },
  { ".lora_up.weight", PART_UP },
  { ".lora_A.weight", PART_DOWN },
  { ".lora_B.weight", PART_UP },
  { ".lora_A.default.weight", PART_DOWN },
  { ".lora_B.default.weight", PART_UP },
  { ".alpha", PART_ALPHA },
  { ".diff_b", PART_DIFF_B },
  { ".diff", PART_DIFF },
};

/* diffusers' Wan module names -> Wan's (WanTransformer3DModel; its norm2 is
 * Wan's affine cross-attention norm3) */
static const struct {
  const char *from, *to;
} diffusers_names[] = {
  { ".attn1.", ".self_attn." },
  { ".attn2.", ".cross_attn." },
  { ".to_q.", ".q." },
  { ".to_k.", ".k." },
  { ".to_v.", ".v." },
  { ".to_out.0.", ".o." },
  { ".ffn.net.0.proj.", ".ffn.0." },
  { ".ffn.net.2.", ".ffn.2." },
  { ".norm2.", ".norm3." },
  { ".condition_embedder.text_embedder.linear_1.", ".text_embedding.0." },
  { ".condition_embedder.text_embedder.linear_2.", ".text_embedding.2." },
  { ".condition_embedder.time_embedder.linear_1.", ".time_embedding.0." },
  { ".condition_embedder.time_embedder.linear_2.", ".time_embedding.2." },
  { ".condition_embedder.time_proj.", ".time_projection.1." },
  { ".proj_out.", ".head.head." },
};

static gboolean
looks_diffusers (const char *padded)
{
  static const char *const marks[]
      = { ".attn1.",   ".attn2.",  ".to_q.",    ".to_k.",
          ".to_v.",    ".to_out.", ".ffn.net.", ".condition_embedder.",
          ".proj_out." };

  for (gsize i = 0; i < G_N_ELEMENTS (marks); i++)
    if (strstr (padded, marks[i]))
      return TRUE;
  return FALSE;
}

static char *
replace_all (const char *s, const char *from, const char *to)
{
  g_auto (GStrv) parts = g_strsplit (s, from, -1);
  return g_strjoinv (to, parts);
}

/* `s` with diffusers' module names renamed (s has no format prefix) */
static char *
from_diffusers (const char *s)
{
  char *padded = g_strconcat (".", s, ".", NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (diffusers_names); i++) {
    char *next
        = replace_all (padded, diffusers_names[i].from, diffusers_names[i].to);
    g_free (padded);
    padded = next;
  }
  padded[strlen (padded) - 1] = '\0';
  char *out = g_strdup (padded + 1);
  g_free (padded);
  return out;
}

/* A key stem in Wan's dotted names (with or without a tower prefix), or
 * NULL when it is in none of the formats. */
static char *
normalize_stem (const char *stem, GHashTable *kohya, guint *formats)
{
  const char *s = stem;
  gboolean diffusers = FALSE;
  char *out;

  if (g_str_has_prefix (s, "lora_unet_")) {
    s += strlen ("lora_unet_");
    while (*s == '_')
      s++;
    out = g_strdup (g_hash_table_lookup (kohya, s));
    if (out)
      *formats |= OVI_LORA_FORMAT_KOHYA;
  } else {
    if (g_str_has_prefix (s, "base_model.model.")) {
      s += strlen ("base_model.model.");
      diffusers = TRUE;
    }
    if (g_str_has_prefix (s, "model.diffusion_model."))
      s += strlen ("model.diffusion_model.");
    else if (g_str_has_prefix (s, "diffusion_model."))
      s += strlen ("diffusion_model.");
    else if (g_str_has_prefix (s, "transformer.")) {
      s += strlen ("transformer.");
      diffusers = TRUE;
    }
    g_autofree char *padded = g_strconcat (".", s, ".", NULL);
    diffusers |= looks_diffusers (padded);
    out = diffusers ? from_diffusers (s) : g_strdup (s);
    *formats |= diffusers ? OVI_LORA_FORMAT_DIFFUSERS : OVI_LORA_FORMAT_NATIVE;
  }
  if (out
      && (g_str_has_prefix (out, tower_prefix[0])
          || g_str_has_prefix (out, tower_prefix[1])))
    *formats |= OVI_LORA_FORMAT_OVI;
  return out;
}

static char *
stem_of (const char *name)
{
  if (g_str_has_suffix (name, ".weight"))
    return g_strndup (name, strlen (name) - strlen (".weight"));
  if (g_str_has_suffix (name, ".bias"))
    return g_strndup (name, strlen (name) - strlen (".bias"));
  return g_strdup (name);
}

/* kohya name (dots as '_') -> dotted stem, both with and without the
 * tower prefix, for every tensor of the model */
static GHashTable *
kohya_names (OviWeightFile *model)
{
  GHashTable *h
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (guint i = 0; i < ovi_weight_file_n_tensors (model); i++) {
    g_autofree char *stem = stem_of (ovi_weight_file_name (model, i));
    const char *rel = stem;

    for (int t = 0; t < 2; t++)
      if (g_str_has_prefix (stem, tower_prefix[t]))
        rel = stem + strlen (tower_prefix[t]);
    g_hash_table_replace (h, g_strdelimit (g_strdup (stem), ".", '_'),
                          g_strdup (stem));
    g_hash_table_replace (h, g_strdelimit (g_strdup (rel), ".", '_'),
                          g_strdup (rel));
  }
  return h;
}

/* ---- reading one file ---- */

typedef struct {
  char *stem;               /* absolute dotted stem in the model */
  gboolean from_both;       /* a tower-less key sent to both towers */
  guint formats;            /* OviLoraFormat bits of its keys */
  OviTensor *part[N_PARTS]; /* F32 host copies */
  char *key[N_PARTS];       /* the file's key of each part */
} Group;

static void
group_free (gpointer data)
{
  Group *g = data;

  g_free (g->stem);
  for (int p = 0; p < N_PARTS; p++) {
    g_clear_pointer (&g->part[p], ovi_tensor_unref);
    g_free (g->key[p]);
  }
  g_free (g);
}

static void
delta_free (gpointer data)
{
  OviLoraDelta *d = data;

  g_free (d->key);
  g_clear_pointer (&d->down, ovi_tensor_unref);
  g_clear_pointer (&d->up, ovi_tensor_unref);
  g_clear_pointer (&d->diff, ovi_tensor_unref);
  g_free (d);
}

static void
file_info_clear (OviLoraFileInfo *info)
{
  g_free (info->path);
  g_clear_pointer (&info->unmatched, g_ptr_array_unref);
}

struct _OviLoraSet {
  OviLoraFileInfo *files;
  guint n_files;
  GHashTable *by_target; /* model name -> GPtrArray of OviLoraDelta* */
};

typedef struct {
  OviLoraSet *set;
  OviWeightFile *model;
  OviWeightFile *lora;
  const OviLoraSpec *spec;
  OviLoraFileInfo *info;
  GHashTable *kohya;
  GHashTable *groups;  /* stem -> Group* */
  GHashTable *matched; /* keys that fed a delta */
} Reader;

/* the key's values as F32, all finite */
static OviTensor *
read_values (Reader *r, const char *key, GError **error)
{
  g_autoptr (OviTensor) raw = ovi_weight_file_get (r->lora, key, error);
  g_autoptr (OviTensor) f = NULL;

  if (raw == NULL)
    return NULL;
  if (!ovi_dtype_is_float (raw->dtype)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: LoRA tensor '%s' has dtype %s (need a float dtype)",
                 r->spec->path, key, ovi_dtype_name (raw->dtype));
    return NULL;
  }
  f = ovi_tensor_to_f32 (raw, error);
  if (f == NULL)
    return NULL;
  const float *v = ovi_tensor_data (f);
  for (int64_t i = 0; i < ovi_tensor_numel (f); i++) {
    if (!isfinite (v[i])) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                   "%s: LoRA tensor '%s' has a non-finite value (%g) at "
                   "element %" G_GINT64_FORMAT,
                   r->spec->path, key, v[i], i);
      return NULL;
    }
  }
  return g_steal_pointer (&f);
}

static gboolean
add_part (Reader *r, const char *stem, Part part, const char *key,
          OviTensor *values, guint formats, gboolean from_both, GError **error)
{
  Group *g = g_hash_table_lookup (r->groups, stem);

  if (g == NULL) {
    g = g_new0 (Group, 1);
    g->stem = g_strdup (stem);
    g_hash_table_insert (r->groups, g->stem, g);
  }
  g->from_both |= from_both;
  g->formats |= formats;
  if (g->part[part]) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: LoRA keys '%s' and '%s' both give the %s of %s",
                 r->spec->path, g->key[part], key, part_name[part], stem);
    return FALSE;
  }
  g->part[part] = ovi_tensor_ref (values);
  g->key[part] = g_strdup (key);
  return TRUE;
}

static gboolean
read_key (Reader *r, const char *key, GError **error)
{
  g_autofree char *stem = NULL, *dotted = NULL;
  g_autoptr (OviTensor) values = NULL;
  Part part = N_PARTS;
  guint formats = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (key_suffixes) && part == N_PARTS; i++) {
    if (g_str_has_suffix (key, key_suffixes[i].suffix)) {
      part = key_suffixes[i].part;
      stem = g_strndup (key, strlen (key) - strlen (key_suffixes[i].suffix));
    }
  }
  if (part != N_PARTS)
    dotted = normalize_stem (stem, r->kohya, &formats);
  if (dotted == NULL)
    return TRUE; /* unmatched */
  values = read_values (r, key, error);
  if (values == NULL)
    return FALSE;
  for (int t = 0; t < 2; t++) {
    if (g_str_has_prefix (dotted, tower_prefix[t]))
      return add_part (r, dotted, part, key, values, formats, FALSE, error);
  }
  for (int t = 0; t < 2; t++) {
    OviLoraTarget want = t == 0 ? OVI_LORA_TARGET_VIDEO : OVI_LORA_TARGET_AUDIO;
    g_autofree char *abs = NULL;

    if (r->spec->target != want && r->spec->target != OVI_LORA_TARGET_BOTH)
      continue;
    abs = g_strconcat (tower_prefix[t], dotted, NULL);
    if (!add_part (r, abs, part, key, values, formats,
                   r->spec->target == OVI_LORA_TARGET_BOTH, error))
      return FALSE;
  }
  return TRUE;
}

/* ---- groups -> deltas ---- */

static const char *
model_name (Reader *r, const char *stem, const char *const *suffixes,
            char **out)
{
  for (int i = 0; suffixes[i]; i++) {
    char *name = g_strconcat (stem, suffixes[i], NULL);
    if (ovi_weight_file_contains (r->model, name)) {
      *out = name;
      return name;
    }
    g_free (name);
  }
  *out = NULL;
  return NULL;
}

static OviTensor *
model_tensor (Reader *r, const char *name)
{
  /* the header's view: no transform may be installed while reading */
  return ovi_weight_file_get (r->model, name, NULL);
}

static char *
shape_str (const OviTensor *t)
{
  return ovi_shape_to_string (t->ndim, t->shape);
}

static gboolean
fits_lora (Reader *r, Group *g, const char *target, const OviTensor *w,
           int *rank, GError **error)
{
  OviTensor *down = g->part[PART_DOWN], *up = g->part[PART_UP];
  int64_t out = w->ndim > 0 ? w->shape[0] : 1;
  int64_t cols = out > 0 ? ovi_tensor_numel (w) / out : 0;
  int64_t rk = down->ndim > 0 ? down->shape[0] : 0;

  if (down->ndim < 2 || up->ndim < 2 || rk == 0) {
    g_autofree char *ds = shape_str (down), *us = shape_str (up);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: LoRA '%s' has rank 0 or no matrix (lora_up %s, "
                 "lora_down %s)",
                 r->spec->path, g->key[PART_DOWN], us, ds);
    return FALSE;
  }
  /* by division: shapes from the file may be huge with a zero dim */
  if (rk > G_MAXINT || cols == 0 || ovi_tensor_numel (down) % rk != 0
      || ovi_tensor_numel (down) / rk != cols || up->shape[0] != out
      || ovi_tensor_numel (up) % out != 0
      || ovi_tensor_numel (up) / out != rk) {
    g_autofree char *ds = shape_str (down), *us = shape_str (up),
                    *ws = shape_str (w);
    g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                 "%s: LoRA '%s': lora_up %s x lora_down %s does not fit %s %s",
                 r->spec->path, g->key[PART_DOWN], us, ds, target, ws);
    return FALSE;
  }
  *rank = (int) rk;
  return TRUE;
}

static gboolean
fits_diff (Reader *r, const char *key, const OviTensor *diff,
           const char *target, const OviTensor *w, GError **error)
{
  if (ovi_tensor_numel (diff) == ovi_tensor_numel (w))
    return TRUE;
  g_autofree char *ds = shape_str (diff), *ws = shape_str (w);
  g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
               "%s: LoRA '%s' has shape %s but %s is %s", r->spec->path, key,
               ds, target, ws);
  return FALSE;
}

static void
add_delta (Reader *r, const char *target, OviLoraDelta *d)
{
  GPtrArray *list = g_hash_table_lookup (r->set->by_target, target);

  if (list == NULL) {
    list = g_ptr_array_new_with_free_func (delta_free);
    g_hash_table_insert (r->set->by_target, g_strdup (target), list);
  }
  g_ptr_array_add (list, d);
}

static void
note_rank (Reader *r, int rank, double alpha)
{
  OviLoraFileInfo *info = r->info;

  if (info->rank != 0 && (rank != info->rank || alpha != info->alpha))
    info->mixed = TRUE;
  if (rank >= info->rank) {
    info->rank = rank;
    info->alpha = alpha;
  }
}

static gboolean
group_lora (Reader *r, Group *g, GError **error)
{
  static const char *const w_suffix[] = { ".weight", NULL };
  g_autofree char *target = NULL;
  g_autoptr (OviTensor) w = NULL;
  OviLoraDelta *d;
  double alpha;
  int rank;

  if ((!g->part[PART_DOWN] && !g->part[PART_UP])
      || !model_name (r, g->stem, w_suffix, &target))
    return TRUE; /* no pair, or a module the model lacks: unmatched */
  if (!g->part[PART_DOWN] != !g->part[PART_UP]) {
    Part have = g->part[PART_DOWN] ? PART_DOWN : PART_UP;
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: LoRA key '%s' has no %s partner", r->spec->path,
                 g->key[have],
                 part_name[have == PART_DOWN ? PART_UP : PART_DOWN]);
    return FALSE;
  }
  w = model_tensor (r, target);
  if (g->from_both && !fits_lora (r, g, target, w, &rank, NULL))
    return TRUE; /* the towers differ here (head, patch embedding) */
  if (!fits_lora (r, g, target, w, &rank, error))
    return FALSE;
  alpha = rank;
  if (g->part[PART_ALPHA]) {
    if (ovi_tensor_numel (g->part[PART_ALPHA]) != 1) {
      g_autofree char *as = shape_str (g->part[PART_ALPHA]);
      g_set_error (error, OVI_ERROR, OVI_ERROR_SHAPE,
                   "%s: LoRA alpha '%s' has shape %s (need one value)",
                   r->spec->path, g->key[PART_ALPHA], as);
      return FALSE;
    }
    alpha = ((const float *) ovi_tensor_data (g->part[PART_ALPHA]))[0];
    g_hash_table_add (r->matched, g_strdup (g->key[PART_ALPHA]));
  }
  d = g_new0 (OviLoraDelta, 1);
  d->key = g_strdup (g->key[PART_DOWN]);
  d->down = ovi_tensor_ref (g->part[PART_DOWN]);
  d->up = ovi_tensor_ref (g->part[PART_UP]);
  d->rank = rank;
  d->alpha = alpha;
  d->strength = r->spec->strength;
  d->lora_scale = r->spec->strength * alpha / rank;
  add_delta (r, target, d);
  r->info->formats |= g->formats;
  note_rank (r, rank, alpha);
  g_hash_table_add (r->matched, g_strdup (g->key[PART_DOWN]));
  g_hash_table_add (r->matched, g_strdup (g->key[PART_UP]));
  return TRUE;
}

static gboolean
group_diff (Reader *r, Group *g, Part part, GError **error)
{
  /* a bare parameter (head.modulation) or Ovi's ModulationAdd
   * (blocks.N.modulation.modulation) for a Wan "blocks.N.modulation" */
  static const char *const w_suffix[] = { ".weight", "", ".modulation", NULL };
  static const char *const b_suffix[] = { ".bias", NULL };
  g_autofree char *target = NULL;
  g_autoptr (OviTensor) w = NULL;
  OviLoraDelta *d;

  if (!g->part[part]
      || !model_name (r, g->stem, part == PART_DIFF ? w_suffix : b_suffix,
                      &target))
    return TRUE;
  w = model_tensor (r, target);
  if (g->from_both
      && !fits_diff (r, g->key[part], g->part[part], target, w, NULL))
    return TRUE; /* the towers differ here (head, patch embedding) */
  if (!fits_diff (r, g->key[part], g->part[part], target, w, error))
    return FALSE;
  d = g_new0 (OviLoraDelta, 1);
  d->key = g_strdup (g->key[part]);
  d->diff = ovi_tensor_ref (g->part[part]);
  d->strength = r->spec->strength;
  add_delta (r, target, d);
  r->info->formats |= g->formats;
  g_hash_table_add (r->matched, g_strdup (g->key[part]));
  return TRUE;
}

static gboolean
read_file (Reader *r, GError **error)
{
  GHashTableIter it;
  gpointer value;
  guint n = ovi_weight_file_n_tensors (r->lora);

  for (guint i = 0; i < n; i++)
    if (!read_key (r, ovi_weight_file_name (r->lora, i), error))
      return FALSE;
  g_hash_table_iter_init (&it, r->groups);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    if (!group_lora (r, value, error)
        || !group_diff (r, value, PART_DIFF, error)
        || !group_diff (r, value, PART_DIFF_B, error))
      return FALSE;
  }
  r->info->n_keys = n;
  for (guint i = 0; i < n; i++) {
    const char *key = ovi_weight_file_name (r->lora, i);
    if (!g_hash_table_contains (r->matched, key))
      g_ptr_array_add (r->info->unmatched, g_strdup (key));
  }
  r->info->n_matched = n - r->info->unmatched->len;
  return TRUE;
}

static void
no_match_error (Reader *r, GError **error)
{
  GString *keys = g_string_new (NULL);
  guint n = ovi_weight_file_n_tensors (r->lora);

  for (guint i = 0; i < MIN (n, 4); i++)
    g_string_append_printf (keys, "%s'%s'", i ? ", " : "",
                            ovi_weight_file_name (r->lora, i));
  g_set_error (
      error, OVI_ERROR, OVI_ERROR_MISSING_TENSOR,
      "%s: none of its %u keys names a tensor of the fusion model (e.g. %s); "
      "formats tried: diffusers/PEFT (transformer.blocks.N.attn1.to_q.lora_A"
      ".weight), native/ComfyUI/lightx2v (diffusion_model.blocks.N.self_attn"
      ".q.lora_down.weight, .alpha, .diff, .diff_b), kohya/musubi "
      "(lora_unet_blocks_N_self_attn_q.lora_down.weight), Ovi names "
      "(video_model./audio_model. in front)",
      r->spec->path, n, keys->len ? keys->str : "none");
  g_string_free (keys, TRUE);
}

/* `lora` NULL: opened from spec->path */
static gboolean
read_spec (OviLoraSet *set, OviWeightFile *model, GHashTable *kohya,
           const OviLoraSpec *spec, OviWeightFile *lora, OviLoraFileInfo *info,
           GError **error)
{
  Reader r = {
    .set = set,
    .model = model,
    .spec = spec,
    .info = info,
    .kohya = kohya,
  };
  g_autoptr (OviWeightFile) opened = NULL;
  gboolean ok;

  info->path = g_strdup (spec->path);
  info->unmatched = g_ptr_array_new_with_free_func (g_free);
  if (!check_strength (spec->strength, spec->path, error))
    return FALSE;
  if (lora == NULL)
    lora = opened = ovi_weight_file_open (spec->path, NULL, error);
  if (lora == NULL)
    return FALSE;
  r.lora = lora;
  r.groups = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, group_free);
  r.matched = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  ok = read_file (&r, error);
  if (ok && info->n_matched == 0) {
    no_match_error (&r, error);
    ok = FALSE;
  }
  g_hash_table_unref (r.matched);
  g_hash_table_unref (r.groups);
  return ok;
}

static OviLoraSet *
set_new (OviWeightFile *model, const OviLoraSpec *const *specs, guint n_specs,
         OviWeightFile *lora, GError **error)
{
  g_autoptr (OviLoraSet) set = g_new0 (OviLoraSet, 1);
  g_autoptr (GHashTable) kohya = kohya_names (model);

  set->files = g_new0 (OviLoraFileInfo, MAX (n_specs, 1));
  set->n_files = n_specs;
  set->by_target = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify) g_ptr_array_unref);
  for (guint i = 0; i < n_specs; i++)
    if (!read_spec (set, model, kohya, specs[i], lora, &set->files[i], error))
      return NULL;
  return g_steal_pointer (&set);
}

OviLoraSet *
ovi_lora_set_new (OviWeightFile *model, const OviLoraSpec *const *specs,
                  guint n_specs, GError **error)
{
  return set_new (model, specs, n_specs, NULL, error);
}

OviLoraSet *
ovi_lora_set_new_from_file (OviWeightFile *model, OviWeightFile *lora,
                            const OviLoraSpec *spec, GError **error)
{
  return set_new (model, &spec, 1, lora, error);
}

void
ovi_lora_set_free (OviLoraSet *set)
{
  if (set == NULL)
    return;
  for (guint i = 0; i < set->n_files; i++)
    file_info_clear (&set->files[i]);
  g_free (set->files);
  g_clear_pointer (&set->by_target, g_hash_table_unref);
  g_free (set);
}

guint
ovi_lora_set_n_files (const OviLoraSet *set)
{
  return set->n_files;
}

const OviLoraFileInfo *
ovi_lora_set_file_info (const OviLoraSet *set, guint i)
{
  g_return_val_if_fail (i < set->n_files, NULL);
  return &set->files[i];
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
ovi_lora_set_targets (const OviLoraSet *set)
{
  GPtrArray *names = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, set->by_target);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (names, key);
  g_ptr_array_sort (names, compare_names);
  return names;
}

const GPtrArray *
ovi_lora_set_deltas (const OviLoraSet *set, const char *target)
{
  return g_hash_table_lookup (set->by_target, target);
}

char *
ovi_lora_set_unmatched_message (const OviLoraSet *set)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < set->n_files; i++) {
    const OviLoraFileInfo *f = &set->files[i];
    if (f->unmatched->len == 0)
      continue;
    g_string_append_printf (
        s, "%s%u of the %u keys of %s match nothing: ", s->len ? "; " : "",
        f->unmatched->len, f->n_keys, f->path);
    for (guint k = 0; k < MIN (f->unmatched->len, 8); k++)
      g_string_append_printf (
          s, "%s%s", k ? ", " : "",
          (const char *) g_ptr_array_index (f->unmatched, k));
    if (f->unmatched->len > 8)
      g_string_append_printf (s, " (and %u more)", f->unmatched->len - 8);
  }
  if (s->len == 0) {
    g_string_free (s, TRUE);
    return NULL;
  }
  return g_string_free (s, FALSE);
}

/* ---- merging ---- */

static uint32_t
f32_bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static float
bits_f32 (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

/* d rounded to float by round-to-odd: a later round-to-nearest to any
 * narrower format then rounds d itself once */
static float
to_f32_odd (double d)
{
  float f = (float) d;

  if ((double) f == d || !isfinite (f))
    return f;
  if (fabs ((double) f) > fabs (d))
    f = nextafterf (f, 0.0f);
  return bits_f32 (f32_bits (f) | 1u);
}

static void
store (OviTensor *out, int64_t i, double v)
{
  void *p = ovi_tensor_data (out);

  switch (out->dtype) {
    case OVI_DTYPE_F64:
      ((double *) p)[i] = v;
      break;
    case OVI_DTYPE_F32:
      ((float *) p)[i] = (float) v;
      break;
    case OVI_DTYPE_F16:
      ((uint16_t *) p)[i] = ovi_f32_to_f16 (to_f32_odd (v));
      break;
    case OVI_DTYPE_F8_E4M3:
      ((uint8_t *) p)[i] = ovi_f32_to_f8e4m3 (to_f32_odd (v));
      break;
    default: /* BF16 */
      ((uint16_t *) p)[i] = ovi_f32_to_bf16 (to_f32_odd (v));
      break;
  }
}

/* acc[rows, cols] += scale * up[rows, r] . down[r, cols] for rows
 * [row0, row1) */
typedef struct {
  double *acc;
  int64_t row0, row1, cols;
  const OviLoraDelta *d;
  double scale;
} RankRows;

/* tiles of TILE_ROWS x TILE_COLS accumulators stay in cache while every
 * row of `down` they need streams through once per tile */
#define TILE_ROWS 8
#define TILE_COLS 256

static gpointer
add_low_rank_rows (gpointer data)
{
  const RankRows *j = data;
  const float *up = ovi_tensor_data (j->d->up);
  const float *down = ovi_tensor_data (j->d->down);
  int rank = j->d->rank;
  double tile[TILE_ROWS][TILE_COLS];

  for (int64_t r0 = j->row0; r0 < j->row1; r0 += TILE_ROWS) {
    int nr = (int) MIN (TILE_ROWS, j->row1 - r0);
    for (int64_t c0 = 0; c0 < j->cols; c0 += TILE_COLS) {
      int nc = (int) MIN (TILE_COLS, j->cols - c0);
      memset (tile, 0, sizeof tile);
      for (int k = 0; k < rank; k++) {
        const float *dk = down + (int64_t) k * j->cols + c0;
        for (int r = 0; r < nr; r++) {
          double u = up[(r0 + r) * rank + k];
          for (int c = 0; c < nc; c++)
            tile[r][c] += u * dk[c];
        }
      }
      for (int r = 0; r < nr; r++) {
        double *acc = j->acc + (r0 + r) * j->cols + c0;
        for (int c = 0; c < nc; c++)
          acc[c] += j->scale * tile[r][c];
      }
    }
  }
  return NULL;
}

/* rows split over the cores when the product is big (every row is
 * computed the same way whatever the split) */
static void
add_low_rank (double *acc, int64_t rows, int64_t cols, const OviLoraDelta *d,
              double scale)
{
  guint64 macs = (guint64) rows * cols * d->rank;
  int n = macs < (1u << 22)
              ? 1
              : (int) MIN ((int64_t) g_get_num_processors (), rows);
  RankRows *jobs = g_new (RankRows, n);
  GThread **threads = g_new0 (GThread *, n);

  for (int t = 0; t < n; t++) {
    jobs[t]
        = (RankRows){ acc, rows * t / n, rows * (t + 1) / n, cols, d, scale };
    if (t > 0)
      threads[t] = g_thread_new ("ovi-lora-merge", add_low_rank_rows, &jobs[t]);
  }
  add_low_rank_rows (&jobs[0]);
  for (int t = 1; t < n; t++)
    g_thread_join (threads[t]);
  g_free (threads);
  g_free (jobs);
}

OviTensor *
ovi_lora_merge (const OviTensor *w, const GPtrArray *deltas, GError **error)
{
  g_autoptr (OviTensor) f = NULL;
  g_autoptr (OviTensor) out = NULL;
  int64_t n, rows, cols;
  OviDType dtype = w->dtype;
  double *acc;

  if (!ovi_dtype_is_float (w->dtype)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                 "LoRA merge: weight dtype %s is not a float dtype",
                 ovi_dtype_name (w->dtype));
    return NULL;
  }
  if (w->scale != NULL || dtype == OVI_DTYPE_I8)
    dtype = OVI_DTYPE_BF16;
  f = ovi_tensor_to_f32 (w, error);
  if (f == NULL)
    return NULL;
  out = ovi_tensor_new (dtype, w->ndim, w->shape, error);
  if (out == NULL)
    return NULL;
  n = ovi_tensor_numel (f);
  rows = w->ndim > 0 ? w->shape[0] : 1;
  cols = rows > 0 ? n / rows : 0;
  acc = g_new (double, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    acc[i] = ((const float *) ovi_tensor_data (f))[i];
  for (guint k = 0; deltas && k < deltas->len; k++) {
    const OviLoraDelta *d = g_ptr_array_index (deltas, k);
    if (d->down && d->lora_scale != 0)
      add_low_rank (acc, rows, cols, d, d->lora_scale);
    if (d->diff && d->strength != 0) {
      const float *dv = ovi_tensor_data (d->diff);
      for (int64_t i = 0; i < n; i++)
        acc[i] += d->strength * (double) dv[i];
    }
  }
  for (int64_t i = 0; i < n; i++)
    store (out, i, acc[i]);
  g_free (acc);
  return g_steal_pointer (&out);
}

static OviTensor *
merge_transform (const char *name, OviTensor *t, gpointer user_data,
                 GError **error)
{
  const GPtrArray *deltas = ovi_lora_set_deltas (user_data, name);

  if (deltas == NULL)
    return ovi_tensor_ref (t);
  return ovi_lora_merge (t, deltas, error);
}

void
ovi_lora_set_install (OviLoraSet *set, OviWeightFile *wf)
{
  ovi_weight_file_set_transform (wf, merge_transform, set);
}

void
ovi_lora_set_uninstall (OviWeightFile *wf)
{
  ovi_weight_file_set_transform (wf, NULL, NULL);
}

gboolean
ovi_lora_merge_begin (OviWeightFile *wf, const GPtrArray *specs,
                      OviLoraSet **set, GError **error)
{
  *set = NULL;
  if (specs == NULL || specs->len == 0)
    return TRUE;
  *set = ovi_lora_set_new (wf, (const OviLoraSpec *const *) specs->pdata,
                           specs->len, error);
  if (*set == NULL)
    return FALSE;
  ovi_lora_set_install (*set, wf);
  return TRUE;
}

void
ovi_lora_merge_end (OviWeightFile *wf, OviLoraSet *set, char **warning)
{
  if (warning) {
    g_free (*warning);
    *warning = set ? ovi_lora_set_unmatched_message (set) : NULL;
  }
  if (set == NULL)
    return;
  ovi_lora_set_uninstall (wf);
  ovi_lora_set_free (set);
}
