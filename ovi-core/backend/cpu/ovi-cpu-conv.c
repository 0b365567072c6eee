/* gst-ovi: CPU convolutions, padding and upsampling. */
#include "ovi-cpu-private.h"

void ovi_cpu_register_conv_ops(OviBackendOps *ops);

void
ovi_cpu_register_conv_ops(OviBackendOps *ops)
{
}
