/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: libFuzzer target for the prompt-file parser of ovitextsrc
 * (gst_ovi_parse_prompts: plain lines or JSON lines with per-clip
 * overrides). Any input either parses into entries with a non-empty UTF-8
 * prompt or fails with a GError naming the input. Links GStreamer core (for
 * GstStructure) and json-glib, none of the element code. */
#include "gstoviutil.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
const char *__lsan_default_suppressions (void);
const char *__asan_default_options (void);

/* GLib's quark table starts as a block allocated by a library constructor
 * and is dropped on purpose (lock-free readers) when it grows, which LSan
 * reports once GStreamer has interned enough quarks: allocations made
 * while libraries load are not ours. GLib has no frame pointers: the slow
 * unwinder is needed for the loader frames to show in the stack. */
const char *
__asan_default_options (void)
{
  return "fast_unwind_on_malloc=0";
}

const char *
__lsan_default_suppressions (void)
{
  return "leak:_dl_init\n";
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean inited;
  GError *error = NULL;

  if (!inited) {
    gst_init (NULL, NULL);
    inited = TRUE;
  }
  char *text = g_strndup ((const char *) data, size);
  GPtrArray *entries = gst_ovi_parse_prompts (text, "fuzz.txt", &error);
  if (entries == NULL) {
    if (error == NULL || strstr (error->message, "fuzz.txt") == NULL)
      __builtin_trap ();
    g_error_free (error);
  } else {
    if (error != NULL || entries->len == 0)
      __builtin_trap ();
    for (guint i = 0; i < entries->len; i++) {
      GstOviPromptEntry *e = g_ptr_array_index (entries, i);
      GstOviPromptEntry *c = gst_ovi_prompt_entry_copy (e);
      if (e->prompt == NULL || !*e->prompt
          || !g_utf8_validate (e->prompt, -1, NULL))
        __builtin_trap ();
      if (e->overrides) {
        char *s = gst_structure_to_string (e->overrides);
        g_free (s);
      }
      gst_ovi_prompt_entry_free (c);
    }
    g_ptr_array_unref (entries);
  }
  g_free (text);
  return 0;
}
