/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: finding and loading a backend module (libovi-cuda.so).
 *
 * The module is looked for, first hit wins, in
 *  1. $OVI_BACKEND_PATH (a folder, or a list of folders separated by ':'),
 *  2. the folder of the libovi in use + "/gst-ovi" (an install, wherever
 *     its prefix was moved to),
 *  3. the build tree's kernels/ when that libovi is the one of an
 *     uninstalled meson build (<build>/ovi-core/libovi.so beside
 *     <build>/meson-private), so `ovi` from build/tools and the elements
 *     through GST_PLUGIN_PATH find the module they were built with,
 *  4. OVI_BACKEND_DIR, the configured install folder.
 */
#pragma once

#include <gmodule.h>

G_BEGIN_DECLS

/* the folders above, in order (existing or not) */
GPtrArray *ovi_backend_module_dirs (void);

/* the path of `file` in the first folder that has it, or NULL with an
 * OVI_ERROR_BACKEND error naming every folder looked in */
char *ovi_backend_module_find (const char *file, GError **error);

/* The module, opened once per process and kept resident (its storages
 * may outlive every backend); NULL with an error naming the file and why
 * it did not load. */
GModule *ovi_backend_module_open (const char *file, GError **error);

G_END_DECLS
