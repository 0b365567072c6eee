/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: a weight cache file of our own (docs/vram-modes.md, "The
 * re-quantised weight cache").
 *
 * When a mode needs weights in a form the model file does not hold (int8 /
 * fp8 quantised at load from a bf16 file), they are made once and written
 * to a safetensors file under the user cache; later loads map it read-only
 * and use the tensors in place (page cache, no private copy).
 *
 * The file: safetensors, each cached tensor under its source name, its
 * scale (if any) under "<name>.qscale"; the tensors of one block index
 * ("*.blocks.<i>.*", both towers) lie together, each 256-byte aligned from a
 * 4096-aligned data section, so a block's weights are one span of the file
 * (the block streamer copies that span as it is). "__metadata__" binds it
 * to its source: format version, kind, the source's absolute path, size,
 * mtime (ns), a fingerprint (SHA-256 of the source's first MiB, 16 evenly
 * spaced 4 KiB samples and its last 4 KiB), the data section's size and a
 * digest of the tensor table. A file that does not match is rejected with
 * the reason and rebuilt; it is written to a temporary file and renamed, so
 * a reader never sees half a file.
 */
#pragma once

#include <glib.h>

#include "ovi-weights.h"

G_BEGIN_DECLS

#define OVI_WEIGHT_CACHE_FORMAT 1

/* The tensor to cache for `name` (a new reference, with its `scale`), or
 * NULL with no error for a tensor the cache leaves out; NULL with `error`
 * on failure. */
typedef OviTensor *(*OviWeightCacheFunc) (const char *name,
                                          const OviTensor *weight,
                                          gpointer user_data, GError **error);

typedef struct {
  const char *source_path; /* the model file the tensors are made from */
  const char *kind;        /* names the transformation: "int8-per-channel" */
  const char *cache_dir;   /* NULL: ovi_weight_cache_dir () */
  OviWeightCacheFunc make;
  gpointer user_data;
} OviWeightCacheSpec;

typedef struct {
  char *path;      /* the cache file */
  gboolean reused; /* an existing file was valid: nothing was written */
  gboolean written;
  char *rejected; /* why an existing file was not used, or NULL */
} OviWeightCacheInfo;

void ovi_weight_cache_info_clear (OviWeightCacheInfo *info);

/* $OVI_WEIGHT_CACHE_DIR when set, else $XDG_CACHE_HOME/gst-ovi, else
 * ~/.cache/gst-ovi. Free with g_free. */
char *ovi_weight_cache_dir (void);

/* The file that caches `kind` of `source_path` in `cache_dir` (NULL: the
 * default): "<source basename>.<kind>.<hash of the absolute path>.
 * safetensors". Free with g_free. */
char *ovi_weight_cache_path (const char *cache_dir, const char *source_path,
                             const char *kind);

/* The cache file of `spec`, mapped read-only: the existing one when it is
 * valid for the source as it is now, else (rejected with the reason in
 * info->rejected, or missing) built by calling spec->make on every tensor
 * of the source, written atomically and mapped. Fails (OVI_ERROR_IO) when
 * the file cannot be written (read-only directory, disk full: the caller
 * falls back to its own copies) or the source cannot be read, and with
 * spec->make's error. `info` may be NULL. */
OviWeightFile *ovi_weight_cache_open (const OviWeightCacheSpec *spec,
                                      OviWeightCacheInfo *info, GError **error);

/* The checks of an opened cache file that need no source: the format
 * version, the kind, the length its header gives and the digest of its
 * tensor table. FALSE with OVI_ERROR_FORMAT naming `path` and what does not
 * match. (The fuzz target runs it on hostile files.) */
gboolean ovi_weight_cache_check (OviWeightFile *wf, const char *path,
                                 const char *kind, GError **error);

/* Checks the cache file at `path` against `spec`'s source without
 * building anything: FALSE with OVI_ERROR_FORMAT naming the file and what
 * does not match (source changed, wrong kind or format version, truncated,
 * unreadable). */
OviWeightFile *ovi_weight_cache_validate (const char *path,
                                          const OviWeightCacheSpec *spec,
                                          GError **error);

/* The cached tensor `name` with its scale, viewing the mapping, or NULL
 * when the cache does not hold it. */
OviTensor *ovi_weight_cache_get (OviWeightFile *cache, const char *name);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (OviWeightCacheInfo,
                                  ovi_weight_cache_info_clear)

G_END_DECLS
