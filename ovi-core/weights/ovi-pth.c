/* gst-ovi: PyTorch zip checkpoints (torch.save) reader and writer. */
#include "ovi-weights-private.h"

gboolean
ovi_pth_parse(OviWeightFile *wf, GError **error)
{
  g_set_error(error, OVI_ERROR, OVI_ERROR_FORMAT,
              "%s: PyTorch zip checkpoints are not readable yet", wf->path);
  return FALSE;
}
