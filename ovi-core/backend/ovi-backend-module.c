/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: finding and loading backend modules (see ovi-backend-module.h). */
#define _GNU_SOURCE
#include "ovi-backend-module.h"

#include "ovi-config.h"
#include "ovi-error.h"

#include <dlfcn.h>
#include <stdlib.h>

/* the folder this libovi was loaded from, or NULL */
static char *
libovi_dir (void)
{
  Dl_info info;

  if (dladdr ((void *) ovi_backend_module_dirs, &info) == 0
      || info.dli_fname == NULL)
    return NULL;
  g_autofree char *real = realpath (info.dli_fname, NULL);
  return real ? g_path_get_dirname (real) : NULL;
}

static void
add_build_tree_dir (GPtrArray *dirs, const char *lib_dir)
{
  g_autofree char *top = g_path_get_dirname (lib_dir);
  g_autofree char *base = g_path_get_basename (lib_dir);
  g_autofree char *marker = g_build_filename (top, "meson-private", NULL);

  if (g_strcmp0 (base, "ovi-core") == 0
      && g_file_test (marker, G_FILE_TEST_IS_DIR))
    g_ptr_array_add (dirs, g_build_filename (top, "kernels", NULL));
}

GPtrArray *
ovi_backend_module_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new_with_free_func (g_free);
  const char *env = g_getenv ("OVI_BACKEND_PATH");
  g_autofree char *lib_dir = libovi_dir ();

  if (env && *env) {
    g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
    for (int i = 0; parts[i]; i++)
      if (*parts[i])
        g_ptr_array_add (dirs, g_strdup (parts[i]));
  }
  if (lib_dir) {
    g_ptr_array_add (dirs, g_build_filename (lib_dir, "gst-ovi", NULL));
    add_build_tree_dir (dirs, lib_dir);
  }
  g_ptr_array_add (dirs, g_strdup (OVI_BACKEND_DIR));
  return dirs;
}

char *
ovi_backend_module_find (const char *file, GError **error)
{
  g_autoptr (GPtrArray) dirs = ovi_backend_module_dirs ();
  g_autoptr (GString) tried = g_string_new (NULL);

  for (guint i = 0; i < dirs->len; i++) {
    char *path = g_build_filename (g_ptr_array_index (dirs, i), file, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
      return path;
    g_string_append_printf (tried, "%s%s", i ? ", " : "",
                            (char *) g_ptr_array_index (dirs, i));
    g_free (path);
  }
  g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
               "no %s in %s (set OVI_BACKEND_PATH to the folder holding it)",
               file, tried->str);
  return NULL;
}

GModule *
ovi_backend_module_open (const char *file, GError **error)
{
  static GMutex lock;
  static GHashTable *opened; /* file -> GModule* (resident) */
  g_autofree char *path = NULL;
  GModule *module;

  g_mutex_lock (&lock);
  if (opened == NULL)
    opened = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  module = g_hash_table_lookup (opened, file);
  if (module == NULL && (path = ovi_backend_module_find (file, error))) {
    module = g_module_open (path, G_MODULE_BIND_LAZY);
    if (module == NULL) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_BACKEND,
                   "cannot load the backend module %s: %s", path,
                   g_module_error ());
    } else {
      g_module_make_resident (module);
      g_hash_table_insert (opened, g_strdup (file), module);
    }
  }
  g_mutex_unlock (&lock);
  return module;
}
