/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the job queue: the jobs in memory and in the store, their
 * files under the data dir, and the runner that works them off in order.
 *
 *   <data-dir>/jobs.sqlite        the jobs (ovi-server-store.h)
 *   <data-dir>/images/<id>.img    the image a job was submitted with
 *   <data-dir>/results/<id>.mp4   a finished job's clip
 *
 * Lives in the main thread; the runner reports back into it.
 */
#pragma once

#include "ovi-server-job.h"

G_BEGIN_DECLS

typedef struct _OviQueue OviQueue;

/* a job changed (removed: it is gone) */
typedef void (*OviQueueChangedFunc) (const OviJob *job, gboolean removed,
                                     gpointer user_data);
/* a cancelled job has stopped */
typedef void (*OviQueueStoppedFunc) (const OviJob *job, gpointer user_data);

OviQueue *ovi_queue_new (const gchar *data_dir, const gchar *model_dir,
                         guint max_active, OviQueueChangedFunc changed,
                         gpointer user_data, GError **error);
/* the running job stays `running` in the store: it runs again next time */
void ovi_queue_free (OviQueue *queue);

/* OVI_SERVER_ERROR_FULL when max_active jobs are queued or running */
const OviJob *ovi_queue_submit (OviQueue *queue, JsonObject *params,
                                GBytes *image, GError **error);
const OviJob *ovi_queue_get (OviQueue *queue, const gchar *id);
/* every job in submission order (const OviJob *, transfer container) */
GPtrArray *ovi_queue_list (OviQueue *queue);
/* A queued job is cancelled at once (stopped is called before this
 * returns); a running one stops between two steps and stopped is called
 * then. OVI_SERVER_ERROR_CONFLICT for a finished job. */
gboolean ovi_queue_cancel (OviQueue *queue, const gchar *id,
                           OviQueueStoppedFunc stopped, gpointer user_data,
                           GError **error);
/* forgets a finished job and deletes its files */
gboolean ovi_queue_remove (OviQueue *queue, const gchar *id, GError **error);
/* the result file of a done job */
gchar *ovi_queue_result_path (OviQueue *queue, const OviJob *job);

guint ovi_queue_n_active (OviQueue *queue);
guint ovi_queue_n_loads (OviQueue *queue);

G_END_DECLS
