/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: error domain of the engine. */
#include "ovi-error.h"

G_DEFINE_QUARK (ovi - error - quark, ovi_error)
