/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: error domain of the engine.
 *
 * Every engine failure is a GError in OVI_ERROR with one of these codes; the
 * message names the file, the tensor, the expected and found shapes or the
 * memory needed and free, so the GStreamer elements can show it to a person
 * as it is. Nothing in the engine calls exit() or abort() on bad input.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define OVI_ERROR (ovi_error_quark ())

typedef enum {
  OVI_ERROR_FAILED, /* anything not covered below */
  OVI_ERROR_IO,     /* open/read/mmap of a file failed */
  OVI_ERROR_FORMAT, /* a file is corrupt, truncated or not what it claims */
  OVI_ERROR_UNSAFE, /* a pickle asked for something outside the allow-list */
  OVI_ERROR_MISSING_TENSOR,   /* a tensor the model needs is not in the file */
  OVI_ERROR_SHAPE,            /* a tensor has the wrong shape or dtype */
  OVI_ERROR_INVALID_ARGUMENT, /* a caller passed an impossible value */
  OVI_ERROR_UNKNOWN_PRESET, /* a model / vram-mode / allocation name is unknown
                             */
  OVI_ERROR_OUT_OF_MEMORY,  /* host or device memory exhausted */
  OVI_ERROR_BACKEND,        /* a backend (e.g. CUDA) is missing or failed */
  OVI_ERROR_CANCELLED,      /* the caller's GCancellable fired */
  OVI_ERROR_PARITY,         /* a parity check did not pass */
  OVI_ERROR_ABORTED, /* skipped: another rank of a parallel run failed */
} OviErrorCode;

GQuark ovi_error_quark (void);

G_END_DECLS
