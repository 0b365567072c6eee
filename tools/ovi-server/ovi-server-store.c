/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the SQLite job store (see ovi-server-store.h). */
#include "ovi-server-store.h"

#include <sqlite3.h>

struct _OviStore {
  sqlite3 *db;
  gchar *path;
};

static const gchar schema[]
    = "PRAGMA journal_mode=WAL;"
      /* FULL: a finished state survives a power loss, not just a kill */
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS jobs ("
      "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  id TEXT NOT NULL UNIQUE,"
      "  state TEXT NOT NULL,"
      "  params TEXT NOT NULL,"
      "  has_image INTEGER NOT NULL,"
      "  error TEXT,"
      "  created INTEGER NOT NULL,"
      "  started INTEGER,"
      "  finished INTEGER,"
      "  attempts INTEGER NOT NULL DEFAULT 0);";

static gboolean
db_error (OviStore *store, const gchar *what, GError **error)
{
  g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED, "%s: %s: %s",
               store->path, what, sqlite3_errmsg (store->db));
  return FALSE;
}

OviStore *
ovi_store_open (const gchar *path, GError **error)
{
  g_autoptr (OviStore) store = g_new0 (OviStore, 1);
  char *msg = NULL;

  store->path = g_strdup (path);
  if (sqlite3_open_v2 (path, &store->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                           | SQLITE_OPEN_FULLMUTEX,
                       NULL)
      != SQLITE_OK) {
    db_error (store, "cannot open", error);
    return NULL;
  }
  sqlite3_busy_timeout (store->db, 5000);
  if (sqlite3_exec (store->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "%s: cannot set up the job table: %s", path, msg);
    sqlite3_free (msg);
    return NULL;
  }
  return g_steal_pointer (&store);
}

void
ovi_store_close (OviStore *store)
{
  if (!store)
    return;
  sqlite3_close (store->db);
  g_free (store->path);
  g_free (store);
}

static void
bind_time (sqlite3_stmt *st, int i, gint64 us)
{
  if (us)
    sqlite3_bind_int64 (st, i, us);
  else
    sqlite3_bind_null (st, i);
}

static gboolean
step_done (OviStore *store, sqlite3_stmt *st, const gchar *what, GError **error)
{
  gboolean ok = sqlite3_step (st) == SQLITE_DONE;

  if (!ok)
    db_error (store, what, error);
  sqlite3_finalize (st);
  return ok;
}

gboolean
ovi_store_insert (OviStore *store, OviJob *job, GError **error)
{
  sqlite3_stmt *st = NULL;
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree gchar *params = NULL;

  json_node_set_object (node, job->params);
  params = json_to_string (node, FALSE);
  if (sqlite3_prepare_v2 (store->db,
                          "INSERT INTO jobs (id, state, params, has_image, "
                          "created) VALUES (?, ?, ?, ?, ?)",
                          -1, &st, NULL)
      != SQLITE_OK)
    return db_error (store, "cannot insert a job", error);
  sqlite3_bind_text (st, 1, job->id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (st, 2, ovi_job_state_to_string (job->state), -1,
                     SQLITE_STATIC);
  sqlite3_bind_text (st, 3, params, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int (st, 4, job->has_image);
  sqlite3_bind_int64 (st, 5, job->created);
  if (!step_done (store, st, "cannot insert a job", error))
    return FALSE;
  job->seq = sqlite3_last_insert_rowid (store->db);
  return TRUE;
}

gboolean
ovi_store_update (OviStore *store, const OviJob *job, GError **error)
{
  sqlite3_stmt *st = NULL;

  if (sqlite3_prepare_v2 (store->db,
                          "UPDATE jobs SET state = ?, error = ?, started = ?, "
                          "finished = ?, attempts = ? WHERE id = ?",
                          -1, &st, NULL)
      != SQLITE_OK)
    return db_error (store, "cannot update a job", error);
  sqlite3_bind_text (st, 1, ovi_job_state_to_string (job->state), -1,
                     SQLITE_STATIC);
  if (job->error)
    sqlite3_bind_text (st, 2, job->error, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (st, 2);
  bind_time (st, 3, job->started);
  bind_time (st, 4, job->finished);
  sqlite3_bind_int (st, 5, job->attempts);
  sqlite3_bind_text (st, 6, job->id, -1, SQLITE_TRANSIENT);
  return step_done (store, st, "cannot update a job", error);
}

gboolean
ovi_store_delete (OviStore *store, const gchar *id, GError **error)
{
  sqlite3_stmt *st = NULL;

  if (sqlite3_prepare_v2 (store->db, "DELETE FROM jobs WHERE id = ?", -1, &st,
                          NULL)
      != SQLITE_OK)
    return db_error (store, "cannot delete a job", error);
  sqlite3_bind_text (st, 1, id, -1, SQLITE_TRANSIENT);
  return step_done (store, st, "cannot delete a job", error);
}

static OviJob *
job_from_row (OviStore *store, sqlite3_stmt *st, GError **error)
{
  const gchar *id = (const gchar *) sqlite3_column_text (st, 1);
  const gchar *state = (const gchar *) sqlite3_column_text (st, 2);
  g_autoptr (JsonNode) params
      = json_from_string ((const gchar *) sqlite3_column_text (st, 3), NULL);
  g_autoptr (OviJob) job = NULL;

  if (!ovi_job_id_is_valid (id) || !params
      || !JSON_NODE_HOLDS_OBJECT (params)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_FAILED,
                 "%s: job row %lld is damaged", store->path,
                 (long long) sqlite3_column_int64 (st, 0));
    return NULL;
  }
  job = ovi_job_new (json_node_get_object (params), sqlite3_column_int (st, 4));
  g_free (job->id);
  job->id = g_strdup (id);
  job->seq = sqlite3_column_int64 (st, 0);
  if (!ovi_job_state_from_string (state, &job->state)
      || job->state == OVI_JOB_RUNNING)
    job->state = OVI_JOB_QUEUED;
  if (sqlite3_column_type (st, 5) != SQLITE_NULL)
    job->error = g_strdup ((const gchar *) sqlite3_column_text (st, 5));
  job->created = sqlite3_column_int64 (st, 6);
  job->started = sqlite3_column_int64 (st, 7);
  job->finished = sqlite3_column_int64 (st, 8);
  job->attempts = sqlite3_column_int (st, 9);
  if (job->state == OVI_JOB_QUEUED)
    job->started = 0;
  if (job->state == OVI_JOB_DONE)
    job->progress = 1.0;
  return g_steal_pointer (&job);
}

GPtrArray *
ovi_store_load (OviStore *store, GError **error)
{
  g_autoptr (GPtrArray) jobs
      = g_ptr_array_new_with_free_func ((GDestroyNotify) ovi_job_free);
  sqlite3_stmt *st = NULL;
  int rc;

  if (sqlite3_prepare_v2 (store->db,
                          "SELECT seq, id, state, params, has_image, error, "
                          "created, started, finished, attempts FROM jobs "
                          "ORDER BY seq",
                          -1, &st, NULL)
      != SQLITE_OK) {
    db_error (store, "cannot read the jobs", error);
    return NULL;
  }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
    OviJob *job = job_from_row (store, st, error);
    if (!job) {
      sqlite3_finalize (st);
      return NULL;
    }
    g_ptr_array_add (jobs, job);
  }
  if (rc != SQLITE_DONE)
    db_error (store, "cannot read the jobs", error);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&jobs);
}
