/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: HTML5 named character references (generated table, see
 * gen-html-entities.py), sorted by name (byte order). */
#pragma once

typedef struct {
  const char *name;  /* "amp;", "amp", "eacute;" ... */
  const char *value; /* UTF-8 */
} OviHtmlEntity;

extern const OviHtmlEntity ovi_html5_entities[];
extern const unsigned ovi_html5_n_entities;
extern const OviHtmlEntity ovi_ftfy_upper_entities[];
extern const unsigned ovi_ftfy_n_upper_entities;
