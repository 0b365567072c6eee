/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests: an engine keeps its cache alive when set_context swaps caches.
 *
 * An application hands oviaudiodec its own engine cache A ("ovi.engine"
 * context), the element loads its stage from A, then the application hands
 * it cache B while the stage is still held. The element lets go of A, but
 * the loaded engine still belongs to A: A must stay alive (a weak
 * reference tells) until the element releases the engine at READY->NULL,
 * and go then. Without the engine's reference A would be freed at the swap
 * and the release would use freed memory.
 */
#include <gst/gst.h>

static GstElement *
make_pipeline (GstElement **dec)
{
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *src = gst_element_factory_make ("fakesrc", NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);

  *dec = gst_element_factory_make ("oviaudiodec", NULL);
  g_assert_nonnull (*dec);
  g_object_set (src, "num-buffers", 0, NULL);
  gst_bin_add_many (GST_BIN (pipe), src, *dec, sink, NULL);
  g_assert_true (gst_element_link_many (src, *dec, sink, NULL));
  return pipe;
}

static void
to_paused (GstElement *pipe)
{
  g_assert_cmpint (gst_element_set_state (pipe, GST_STATE_PAUSED), !=,
                   GST_STATE_CHANGE_FAILURE);
  g_assert_cmpint (
      gst_element_get_state (pipe, NULL, NULL, GST_CLOCK_TIME_NONE), !=,
      GST_STATE_CHANGE_FAILURE);
}

/* a new engine cache, of the plugin's type (registered once an element has
 * used the default cache) */
static GstObject *
new_cache (void)
{
  GType type = g_type_from_name ("GstOviEngineCache");

  g_assert_true (type != 0);
  return gst_object_ref_sink (g_object_new (type, NULL));
}

static void
hand_cache (GstElement *el, GstObject *cache)
{
  GstContext *ctx = gst_context_new ("ovi.engine", TRUE);

  gst_structure_set (gst_context_writable_structure (ctx), "cache",
                     G_OBJECT_TYPE (cache), cache, NULL);
  gst_element_set_context (el, ctx);
  gst_context_unref (ctx);
}

static void
test_swap_while_held (void)
{
  GstElement *dec, *pipe = make_pipeline (&dec);
  GstElement *warm_dec, *warm = make_pipeline (&warm_dec);
  GstObject *a, *b;
  gpointer a_alive;

  to_paused (warm); /* registers the cache type (the default cache) */
  gst_element_set_state (warm, GST_STATE_NULL);
  gst_object_unref (warm);
  a = new_cache ();
  b = new_cache ();
  a_alive = a;
  g_object_add_weak_pointer (G_OBJECT (a), &a_alive);

  hand_cache (dec, a);
  to_paused (pipe);
  gst_object_unref (a); /* the application's reference */
  hand_cache (dec, b);  /* the element's reference to A goes */
  /* the engine still holds A (had the element not loaded from A, A would
   * be gone now) */
  g_assert_nonnull (a_alive);

  gst_element_set_state (pipe, GST_STATE_NULL);
  g_assert_null (a_alive); /* released with the engine */

  gst_object_unref (pipe);
  gst_object_unref (b);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine-context/swap-while-held", test_swap_while_held);
  return g_test_run ();
}
