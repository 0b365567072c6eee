/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: runs jobs, one at a time, through the ovi elements.
 *
 * Each job is a pipeline
 *   ovitextsrc ! ovidenoise ! tee
 *     ! ovivaedec ! x264enc ! mp4mux     (video)
 *     ! oviaudiodec ! avenc_aac ! mux.   (audio)   ! filesink
 * (+ filesrc ! decodebin ! videoconvert ! ovidenoise.image for an image),
 * run on the runner's own thread. The loaded weights are shared across
 * jobs: every pipeline gets the "ovi.engine" GstContext the first one
 * announced, and the last pipeline is kept in READY (where the elements
 * still hold their stages) until the next one has taken them, so the
 * weights load once per process.
 */
#pragma once

#include "ovi-server-job.h"

G_BEGIN_DECLS

typedef struct _OviRunner OviRunner;

typedef struct {
  /* a denoising step finished; eta in seconds (< 0: unknown) */
  void (*progress) (const gchar *id, gint step, gint steps, gdouble eta,
                    gpointer user_data);
  /* the job ended: DONE (the result file is in place), FAILED (error says
   * why) or CANCELLED (cancel_step: the steps done when the denoiser was
   * told to stop; last_step: the last step done) */
  void (*finished) (const gchar *id, OviJobState state, const gchar *error,
                    gint last_step, gint cancel_step, gpointer user_data);
} OviRunnerCallbacks;

/* Callbacks run in the thread-default main context of the caller. */
OviRunner *ovi_runner_new (const gchar *model_dir,
                           const OviRunnerCallbacks *callbacks,
                           gpointer user_data);
/* Stops the running job without reporting it (it stays `running` in the
 * store and runs again at the next start) and joins the thread. */
void ovi_runner_free (OviRunner *runner);

/* Queues a job; the result goes to out_path (written as out_path.part and
 * renamed when complete). image_path may be NULL. */
void ovi_runner_run (OviRunner *runner, const gchar *id, JsonObject *params,
                     const gchar *image_path, const gchar *out_path);
/* Stops the job `id` (queued in the runner or running) between two
 * denoising steps; it is then reported CANCELLED. */
void ovi_runner_cancel (OviRunner *runner, const gchar *id);
/* weight loads done so far (the elements' ovi-load progress messages) */
guint ovi_runner_get_n_loads (OviRunner *runner);

G_END_DECLS
