/* gst-ovi: error domain of the engine. */
#include "ovi-error.h"

G_DEFINE_QUARK (ovi - error - quark, ovi_error)
