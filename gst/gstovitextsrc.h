/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: ovitextsrc, prompts -> umT5 text embeddings, one buffer per clip. */
#pragma once

#include <gst/base/gstpushsrc.h>

#include "gstoviengine-cache.h"

G_BEGIN_DECLS

#define GST_TYPE_OVI_TEXT_SRC (gst_ovi_text_src_get_type ())
G_DECLARE_FINAL_TYPE (GstOviTextSrc, gst_ovi_text_src, GST, OVI_TEXT_SRC,
                      GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE (ovitextsrc);

G_END_DECLS
