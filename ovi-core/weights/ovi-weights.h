/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: reading (and, for the tiny model and tests, writing) checkpoints.
 *
 * Two readers behind one lookup API:
 *  - safetensors, mmap'd, header validated (offsets in range, no overlaps,
 *    sizes match shapes), every dtype including BF16 and F8_E4M3;
 *  - PyTorch zip checkpoints (.pth/.pt as torch.save writes them) through an
 *    allow-list unpickler that builds only tensors, dicts, lists, tuples and
 *    scalars and executes nothing from the file.
 *
 * Tensors handed out are host tensors pointing into the mapping (zero copy,
 * read-only); they keep the mapping alive by reference, so they may outlive
 * the OviWeightFile. A .pth tensor is a strided view of its storage exactly
 * as torch had it (shared storages, storage offsets, transposed views: no
 * copy), so do not assume contiguity: check ovi_tensor_is_contiguous or use
 * ovi_tensor_to_f32. Only data that is misaligned in the file is copied.
 * Nested dicts in a .pth are flattened with '.', list/tuple items by index
 * ({'generator': sd} gives "generator.conv_pre.weight", [a, b] under "l"
 * gives "l.0", "l.1"); non-tensor values (ints, strings, _metadata) are
 * ignored; a prefix can be stripped at open time.
 *
 * Errors: OVI_ERROR_IO (cannot open/map), OVI_ERROR_FORMAT (truncated or
 * corrupt file, bad header, compressed zip entry, legacy pre-1.6 torch
 * format), OVI_ERROR_UNSAFE (the pickle names a global outside the
 * allow-list: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * _rebuild_parameter(_with_state), torch.<Float|Half|BFloat16|Double|Long|
 * Int|Byte|Char|Bool|Float8_e4m3fn>Storage), OVI_ERROR_MISSING_TENSOR,
 * OVI_ERROR_SHAPE. Every message starts with "FILE: ".
 * An OviWeightFile is immutable after open: any thread may read it.
 */
#pragma once

#include <glib.h>

#include "ovi-tensor.h"
#include "ovi-error.h"

G_BEGIN_DECLS

typedef struct _OviWeightFile OviWeightFile;

/* Opens a safetensors or PyTorch zip file, chosen by content, not by name.
 * The file is mapped read-only: tensors from it must not be written to.
 * `prefix` (nullable): only names starting with it are kept, with it removed
 * (e.g. "generator." for best_netG.pt). */
OviWeightFile *ovi_weight_file_open (const char *path, const char *prefix,
                                     GError **error);
/* As ovi_weight_file_open, from bytes already in memory (tests, fuzzers);
 * `display_name` stands for the path in messages. Tensors keep `bytes`
 * alive. */
OviWeightFile *ovi_weight_file_open_bytes (GBytes *bytes,
                                           const char *display_name,
                                           const char *prefix, GError **error);
void ovi_weight_file_free (OviWeightFile *wf);
const char *ovi_weight_file_path (const OviWeightFile *wf);

guint ovi_weight_file_n_tensors (const OviWeightFile *wf);
/* names in file order (safetensors: sorted by name; pth: pickle order) */
const char *ovi_weight_file_name (const OviWeightFile *wf, guint index);
gboolean ovi_weight_file_contains (const OviWeightFile *wf, const char *name);

/* The tensor called `name`, or NULL with OVI_ERROR_MISSING_TENSOR naming the
 * file and the tensor. Weight-norm names are matched as torch does at load
 * time: "X.parametrizations.weight.original0"/"original1" finds a legacy
 * "X.weight_g"/"X.weight_v" and the other way round (also for _contains). */
OviTensor *ovi_weight_file_get (OviWeightFile *wf, const char *name,
                                GError **error);
/* As ovi_weight_file_get, and the shape must be exactly `shape` (an entry
 * of -1 matches any size); otherwise OVI_ERROR_SHAPE with expected vs found. */
OviTensor *ovi_weight_file_get_shaped (OviWeightFile *wf, const char *name,
                                       int ndim, const int64_t *shape,
                                       GError **error);

/* A loader-side hook: while set, ovi_weight_file_get (and _get_shaped)
 * hand each tensor to `func`, which returns the tensor to use instead (a
 * new reference of the same shape, e.g. with a LoRA merged in, ovi-lora.h)
 * or NULL with `error` set. NULL unsets it. Set it only while one thread
 * loads from the file (it breaks the file's immutability for that time). */
void ovi_weight_file_set_transform (OviWeightFile *wf, OviWeightFilter func,
                                    gpointer user_data);

/* The read-only file mapping the tensors point into: TRUE and its bytes
 * when `wf` was opened from a file (ovi_weight_file_open); FALSE (NULL, 0)
 * when it was opened from bytes in memory. A tensor whose elements lie in
 * it (not a copy of misaligned data) may have its pages advised. */
gboolean ovi_weight_file_mapping (const OviWeightFile *wf, const void **base,
                                  gsize *size);

typedef enum {
  OVI_PAGES_WILLNEED, /* read ahead: the pages are about to be used */
  OVI_PAGES_DONTNEED, /* unmap them: they become clean page cache the
                         kernel may reclaim; touching them again reads
                         the file's data again */
} OviPagesAdvice;

/* Advises the kernel about the pages holding [data, data + size), widened
 * to whole pages. ONLY for bytes inside a read-only file mapping
 * (ovi_weight_file_mapping): DONTNEED on ordinary memory would zero it. */
void ovi_mapped_pages_advise (const void *data, gsize size,
                              OviPagesAdvice advice);

/* safetensors "__metadata__" value, or NULL */
const char *ovi_weight_file_metadata (const OviWeightFile *wf, const char *key);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviWeightFile, ovi_weight_file_free)

/* Writers (tiny model, tests). Tensors are written contiguous (strided
 * sources are gathered), any host dtype; a tensor's `scale` is not written.
 * safetensors: header in the order given, data ordered by element size so
 * everything is aligned, header padded with spaces to a multiple of 8.
 * pth: one storage per tensor, 64-byte aligned STORED zip entries, zip64
 * past 4 GiB; F8_E4M3 needs torch >= 2.1 to load. */
typedef struct {
  const char *name;
  const OviTensor *tensor;
} OviNamedTensor;

gboolean ovi_safetensors_write (
    const char *path, const OviNamedTensor *tensors, guint n_tensors,
    GHashTable *metadata /* nullable, char* -> char* */, GError **error);
/* A torch.save-compatible zip (readable by torch.load(weights_only=True));
 * `nest_under` (nullable) wraps the state dict as {nest_under: sd}. */
gboolean ovi_pth_write (const char *path, const OviNamedTensor *tensors,
                        guint n_tensors, const char *nest_under,
                        GError **error);

G_END_DECLS
