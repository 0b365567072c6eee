/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: caps filtering and per-clip metadata (see gstovicaps.h). */
#include "gstovicaps.h"

void
gst_ovi_clip_meta_register (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    static const gchar *tags[] = { NULL };
    gst_meta_register_custom (GST_OVI_CLIP_META_NAME, tags, NULL, NULL, NULL);
    g_once_init_leave (&once, 1);
  }
}

GstStructure *
gst_ovi_buffer_add_clip_meta (GstBuffer *buffer)
{
  GstCustomMeta *meta;

  gst_ovi_clip_meta_register ();
  meta = gst_buffer_add_custom_meta (buffer, GST_OVI_CLIP_META_NAME);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

GstStructure *
gst_ovi_buffer_get_clip_meta (GstBuffer *buffer)
{
  GstCustomMeta *meta;

  gst_ovi_clip_meta_register ();
  meta = gst_buffer_get_custom_meta (buffer, GST_OVI_CLIP_META_NAME);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

GstCaps *
gst_ovi_caps_filter (GstCaps *caps, GstCaps *filter)
{
  GstCaps *res;

  if (!filter)
    return caps;
  res = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref (caps);
  return res;
}
