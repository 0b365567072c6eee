/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the HTTP side (see ovi-server-http.h). */
#include "ovi-server-http.h"

#include <string.h>

#include "ovi-config.h"

#define RESOURCE_PREFIX   "/org/gst-ovi/ovi-server/"
#define KEEPALIVE_SECONDS 15
/* RFC 6585; libsoup 3.2 has no name for it */
#define STATUS_TOO_MANY_REQUESTS 429

struct _OviHttp {
  gchar *token;
  gsize max_body_bytes;
  gchar *model;
  SoupServer *server;
  OviQueue *queue;
  GList *clients; /* SoupServerMessage, event streams */
  guint keepalive_id;
};

typedef void (*RouteFunc) (OviHttp *http, SoupServerMessage *msg,
                           const gchar *id, GHashTable *query);

typedef struct {
  const gchar *method;
  const gchar *path; /* "{id}" matches one segment */
  gboolean auth;
  RouteFunc func;
} Route;

/* ---- responses ---- */

static void
respond_bytes (SoupServerMessage *msg, guint status, const gchar *type,
               GBytes *bytes)
{
  soup_server_message_set_status (
      msg, status,
      status == STATUS_TOO_MANY_REQUESTS ? "Too Many Requests" : NULL);
  soup_message_headers_set_content_type (
      soup_server_message_get_response_headers (msg), type, NULL);
  soup_message_body_append_bytes (soup_server_message_get_response_body (msg),
                                  bytes);
}

static void
respond_json (SoupServerMessage *msg, guint status, JsonNode *node)
{
  gsize len;
  gchar *text = json_to_string (node, FALSE);
  g_autoptr (GBytes) bytes = NULL;

  len = strlen (text);
  bytes = g_bytes_new_take (text, len);
  respond_bytes (msg, status, "application/json", bytes);
}

static void
respond_job (SoupServerMessage *msg, guint status, const OviJob *job)
{
  g_autoptr (JsonNode) node = ovi_job_to_json (job);
  respond_json (msg, status, node);
}

static void
respond_error (SoupServerMessage *msg, guint status, const gchar *field,
               const gchar *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, message);
  if (field) {
    json_builder_set_member_name (b, "field");
    json_builder_add_string_value (b, field);
  }
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  respond_json (msg, status, node);
}

static guint
status_of (const GError *error)
{
  if (error->domain != OVI_SERVER_ERROR)
    return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  switch (error->code) {
    case OVI_SERVER_ERROR_INVALID:
      return SOUP_STATUS_BAD_REQUEST;
    case OVI_SERVER_ERROR_NOT_FOUND:
      return SOUP_STATUS_NOT_FOUND;
    case OVI_SERVER_ERROR_FULL:
      return STATUS_TOO_MANY_REQUESTS;
    case OVI_SERVER_ERROR_CONFLICT:
      return SOUP_STATUS_CONFLICT;
    default:
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  }
}

static void
respond_gerror (SoupServerMessage *msg, const GError *error, const gchar *field)
{
  guint status = status_of (error);

  if (status == STATUS_TOO_MANY_REQUESTS)
    soup_message_headers_replace (
        soup_server_message_get_response_headers (msg), "Retry-After", "5");
  respond_error (msg, status, field, error->message);
}

static void
respond_resource (SoupServerMessage *msg, const gchar *name, const gchar *type)
{
  g_autofree gchar *path = g_strconcat (RESOURCE_PREFIX, name, NULL);
  g_autoptr (GBytes) bytes
      = g_resources_lookup_data (path, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);

  g_assert (bytes); /* compiled in */
  respond_bytes (msg, SOUP_STATUS_OK, type, bytes);
}

/* ---- event streams ---- */

static void
stream_send (SoupServerMessage *msg, const gchar *text)
{
  soup_message_body_append (soup_server_message_get_response_body (msg),
                            SOUP_MEMORY_COPY, text, strlen (text));
  soup_server_message_unpause (msg);
}

static void
broadcast (OviHttp *http, const gchar *text)
{
  GList *l;

  for (l = http->clients; l; l = l->next)
    stream_send (l->data, text);
}

void
ovi_http_job_changed (const OviJob *job, gboolean removed, gpointer user_data)
{
  OviHttp *http = user_data;
  g_autoptr (JsonNode) node = NULL;
  g_autofree gchar *json = NULL, *event = NULL;

  if (!http->clients)
    return;
  if (removed) {
    event = g_strdup_printf ("event: removed\ndata: {\"id\":\"%s\"}\n\n",
                             job->id);
  } else {
    node = ovi_job_to_json (job);
    json = json_to_string (node, FALSE);
    event = g_strdup_printf ("event: job\ndata: %s\n\n", json);
  }
  broadcast (http, event);
}

static gboolean
send_keepalive (gpointer data)
{
  broadcast (data, ": keepalive\n\n");
  return G_SOURCE_CONTINUE;
}

static void
on_stream_finished (SoupServerMessage *msg, gpointer data)
{
  OviHttp *http = data;
  GList *l = g_list_find (http->clients, msg);

  if (l) {
    http->clients = g_list_delete_link (http->clients, l);
    g_object_unref (msg);
  }
}

static void
get_events (OviHttp *http, SoupServerMessage *msg, const gchar *id,
            GHashTable *query)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_content_type (h, "text/event-stream", NULL);
  soup_message_headers_set_encoding (h, SOUP_ENCODING_CHUNKED);
  soup_message_headers_replace (h, "Cache-Control", "no-store");
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg),
                                    FALSE);
  g_signal_connect (msg, "finished", G_CALLBACK (on_stream_finished), http);
  http->clients = g_list_prepend (http->clients, g_object_ref (msg));
  stream_send (msg, "retry: 2000\n\n");
}

/* ---- jobs ---- */

static gboolean
params_from_json (SoupServerMessage *msg, JsonObject **params, GBytes **image,
                  gchar **field, GError **error)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize len;
  const gchar *data = g_bytes_get_data (bytes, &len);
  g_autoptr (GError) err = NULL;

  if (!json_parser_load_from_data (parser, data, len, &err)) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID,
                 "the body is not valid JSON: %s", err->message);
    return FALSE;
  }
  *params = ovi_job_params_parse (json_parser_get_root (parser), image, field,
                                  error);
  return *params != NULL;
}

static gboolean
params_from_form (SoupServerMessage *msg, JsonObject **params, GBytes **image,
                  gchar **field, GError **error)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (SoupMultipart) mp = soup_multipart_new_from_message (
      soup_server_message_get_request_headers (msg), bytes);
  g_autoptr (GHashTable) texts
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GBytes) image_part = NULL;
  int i;

  if (!mp) {
    g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID,
                 "the multipart/form-data body cannot be parsed");
    return FALSE;
  }
  for (i = 0; i < soup_multipart_get_length (mp); i++) {
    SoupMessageHeaders *ph;
    GBytes *pb;
    g_autofree gchar *disposition = NULL;
    g_autoptr (GHashTable) dparams = NULL;
    const gchar *name;

    soup_multipart_get_part (mp, i, &ph, &pb);
    if (!soup_message_headers_get_content_disposition (ph, &disposition,
                                                       &dparams)
        || !(name = g_hash_table_lookup (dparams, "name")))
      continue;
    if (strcmp (name, "image") == 0) {
      if (g_bytes_get_size (pb) > 0) {
        g_clear_pointer (&image_part, g_bytes_unref);
        image_part = g_bytes_ref (pb);
      }
    } else {
      gsize n;
      const gchar *d = g_bytes_get_data (pb, &n);
      if (!g_utf8_validate_len (d, n, NULL)) {
        *field = g_strdup (name);
        g_set_error (error, OVI_SERVER_ERROR, OVI_SERVER_ERROR_INVALID,
                     "%s: not UTF-8 text", name);
        return FALSE;
      }
      g_hash_table_replace (texts, g_strdup (name), g_strndup (d, n));
    }
  }
  *params = ovi_job_params_parse_form (texts, image_part, image, field, error);
  return *params != NULL;
}

static void
post_job (OviHttp *http, SoupServerMessage *msg, const gchar *id,
          GHashTable *query)
{
  const gchar *type = soup_message_headers_get_content_type (
      soup_server_message_get_request_headers (msg), NULL);
  g_autoptr (JsonObject) params = NULL;
  g_autoptr (GBytes) image = NULL;
  g_autofree gchar *field = NULL;
  g_autoptr (GError) err = NULL;
  const OviJob *job;
  gboolean ok;

  if (g_strcmp0 (type, "application/json") == 0)
    ok = params_from_json (msg, &params, &image, &field, &err);
  else if (g_strcmp0 (type, "multipart/form-data") == 0)
    ok = params_from_form (msg, &params, &image, &field, &err);
  else {
    respond_error (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, NULL,
                   "send application/json or multipart/form-data");
    return;
  }
  if (!ok || !(job = ovi_queue_submit (http->queue, params, image, &err))) {
    respond_gerror (msg, err, field);
    return;
  }
  respond_job (msg, SOUP_STATUS_CREATED, job);
}

static const OviJob *
find_job (OviHttp *http, SoupServerMessage *msg, const gchar *id)
{
  const OviJob *job
      = ovi_job_id_is_valid (id) ? ovi_queue_get (http->queue, id) : NULL;

  if (!job)
    respond_error (msg, SOUP_STATUS_NOT_FOUND, NULL, "no such job");
  return job;
}

static void
get_job (OviHttp *http, SoupServerMessage *msg, const gchar *id,
         GHashTable *query)
{
  const OviJob *job = find_job (http, msg, id);

  if (job)
    respond_job (msg, SOUP_STATUS_OK, job);
}

static void
list_jobs (OviHttp *http, SoupServerMessage *msg, const gchar *id,
           GHashTable *query)
{
  const gchar *state_name = query ? g_hash_table_lookup (query, "state") : NULL;
  g_autoptr (GPtrArray) jobs = ovi_queue_list (http->queue);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  OviJobState state = OVI_JOB_QUEUED;
  guint i;

  if (state_name && !ovi_job_state_from_string (state_name, &state)) {
    respond_error (msg, SOUP_STATUS_BAD_REQUEST, "state",
                   "state: must be one of queued, running, done, failed, "
                   "cancelled");
    return;
  }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "jobs");
  json_builder_begin_array (b);
  for (i = 0; i < jobs->len; i++) {
    const OviJob *job = jobs->pdata[i];
    if (!state_name || job->state == state)
      json_builder_add_value (b, ovi_job_to_json (job));
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  respond_json (msg, SOUP_STATUS_OK, node);
}

static void
on_cancel_stopped (const OviJob *job, gpointer user_data)
{
  SoupServerMessage *msg = user_data;

  respond_job (msg, SOUP_STATUS_OK, job);
  soup_server_message_unpause (msg);
  g_object_unref (msg);
}

static void
delete_job (OviHttp *http, SoupServerMessage *msg, const gchar *id,
            GHashTable *query)
{
  const OviJob *job = find_job (http, msg, id);
  g_autoptr (GError) err = NULL;

  if (!job)
    return;
  if (ovi_job_state_is_final (job->state)) {
    if (ovi_queue_remove (http->queue, id, &err))
      soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
    else
      respond_gerror (msg, err, NULL);
    return;
  }
  /* answered when the job has stopped */
  soup_server_message_pause (msg);
  if (!ovi_queue_cancel (http->queue, id, on_cancel_stopped, g_object_ref (msg),
                         &err)) {
    g_object_unref (msg);
    respond_gerror (msg, err, NULL);
    soup_server_message_unpause (msg);
  }
}

static void
get_result (OviHttp *http, SoupServerMessage *msg, const gchar *id,
            GHashTable *query)
{
  const OviJob *job = find_job (http, msg, id);
  g_autofree gchar *path = NULL;
  g_autoptr (GMappedFile) file = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GError) err = NULL;

  if (!job)
    return;
  if (job->state != OVI_JOB_DONE) {
    g_autofree gchar *text = g_strdup_printf (
        "job %s is %s, not done", id, ovi_job_state_to_string (job->state));
    respond_error (msg, SOUP_STATUS_CONFLICT, NULL, text);
    return;
  }
  path = ovi_queue_result_path (http->queue, job);
  file = g_mapped_file_new (path, FALSE, &err);
  if (!file) {
    respond_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, NULL, err->message);
    return;
  }
  bytes = g_mapped_file_get_bytes (file);
  respond_bytes (msg, SOUP_STATUS_OK, "video/mp4", bytes);
}

/* ---- the rest ---- */

static void
get_page (OviHttp *http, SoupServerMessage *msg, const gchar *id,
          GHashTable *query)
{
  respond_resource (msg, "index.html", "text/html; charset=utf-8");
}

static void
get_openapi (OviHttp *http, SoupServerMessage *msg, const gchar *id,
             GHashTable *query)
{
  respond_resource (msg, "openapi.json", "application/json");
}

static void
get_health (OviHttp *http, SoupServerMessage *msg, const gchar *id,
            GHashTable *query)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, "ok");
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, OVI_VERSION);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, http->model);
  json_builder_set_member_name (b, "active_jobs");
  json_builder_add_int_value (b, ovi_queue_n_active (http->queue));
  json_builder_set_member_name (b, "weight_loads");
  json_builder_add_int_value (b, ovi_queue_n_loads (http->queue));
  json_builder_set_member_name (b, "token_required");
  json_builder_add_boolean_value (b, http->token != NULL);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  respond_json (msg, SOUP_STATUS_OK, node);
}

static const Route routes[] = {
  { "GET", "/", FALSE, get_page },
  { "GET", "/health", FALSE, get_health },
  { "GET", "/openapi.json", FALSE, get_openapi },
  { "GET", "/v1/jobs", TRUE, list_jobs },
  { "POST", "/v1/jobs", TRUE, post_job },
  { "GET", "/v1/jobs/{id}", TRUE, get_job },
  { "DELETE", "/v1/jobs/{id}", TRUE, delete_job },
  { "GET", "/v1/jobs/{id}/result", TRUE, get_result },
  { "GET", "/v1/events", TRUE, get_events },
};

JsonNode *
ovi_http_routes_to_json (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  guint i;

  json_builder_begin_array (b);
  for (i = 0; i < G_N_ELEMENTS (routes); i++) {
    json_builder_begin_array (b);
    json_builder_add_string_value (b, routes[i].method);
    json_builder_add_string_value (b, routes[i].path);
    json_builder_end_array (b);
  }
  json_builder_end_array (b);
  return json_builder_get_root (b);
}

/* ---- routing ---- */

/* TRUE when `path` fits `pattern`; *id gets the {id} segment */
static gboolean
path_matches (const gchar *pattern, const gchar *path, gchar **id)
{
  g_auto (GStrv) want = g_strsplit (pattern, "/", -1);
  g_auto (GStrv) have = g_strsplit (path, "/", -1);
  guint i;

  if (g_strv_length (want) != g_strv_length (have))
    return FALSE;
  for (i = 0; want[i]; i++) {
    if (strcmp (want[i], "{id}") == 0 && *have[i]) {
      g_free (*id);
      *id = g_strdup (have[i]);
    } else if (strcmp (want[i], have[i]) != 0) {
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
authorized (OviHttp *http, SoupServerMessage *msg, GHashTable *query)
{
  const gchar *header;
  const gchar *given = NULL;

  if (!http->token)
    return TRUE;
  header = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization");
  if (header && g_ascii_strncasecmp (header, "Bearer ", 7) == 0)
    given = header + 7;
  /* EventSource and <video> cannot send headers */
  else if (query)
    given = g_hash_table_lookup (query, "access_token");
  return given && strcmp (given, http->token) == 0;
}

static void
handle (SoupServer *server, SoupServerMessage *msg, const char *path,
        GHashTable *query, gpointer data)
{
  OviHttp *http = data;
  const gchar *method = soup_server_message_get_method (msg);
  g_autoptr (GString) allowed = g_string_new (NULL);
  guint i;

  if (strcmp (method, "HEAD") == 0)
    method = "GET";
  for (i = 0; i < G_N_ELEMENTS (routes); i++) {
    g_autofree gchar *id = NULL;
    if (!path_matches (routes[i].path, path, &id))
      continue;
    if (strcmp (routes[i].method, method) != 0) {
      g_string_append_printf (allowed, "%s%s", allowed->len ? ", " : "",
                              routes[i].method);
      continue;
    }
    if (routes[i].auth && !authorized (http, msg, query)) {
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "WWW-Authenticate",
          "Bearer realm=\"ovi-server\"");
      respond_error (msg, SOUP_STATUS_UNAUTHORIZED, NULL,
                     "a bearer token is needed (Authorization: Bearer ...)");
      return;
    }
    routes[i].func (http, msg, id, query);
    return;
  }
  if (allowed->len) {
    soup_message_headers_replace (
        soup_server_message_get_response_headers (msg), "Allow", allowed->str);
    respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL,
                   "method not allowed");
    return;
  }
  respond_error (msg, SOUP_STATUS_NOT_FOUND, NULL, "not found");
}

/* before the body is read: refuse bodies that are too large, or of unknown
 * length */
static void
check_body (SoupServer *server, SoupServerMessage *msg, const char *path,
            GHashTable *query, gpointer data)
{
  OviHttp *http = data;
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  goffset len;

  if (soup_message_headers_get_encoding (h) == SOUP_ENCODING_CONTENT_LENGTH) {
    len = soup_message_headers_get_content_length (h);
    if (len >= 0 && (guint64) len > http->max_body_bytes) {
      g_autofree gchar *text = g_strdup_printf (
          "the body is larger than %" G_GSIZE_FORMAT " bytes",
          http->max_body_bytes);
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Connection",
          "close");
      respond_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, NULL, text);
    }
  } else if (soup_message_headers_get_encoding (h) != SOUP_ENCODING_NONE) {
    soup_message_headers_replace (
        soup_server_message_get_response_headers (msg), "Connection", "close");
    respond_error (msg, SOUP_STATUS_LENGTH_REQUIRED, NULL,
                   "a request body needs a Content-Length");
  }
}

OviHttp *
ovi_http_new (const OviHttpConfig *config)
{
  OviHttp *http = g_new0 (OviHttp, 1);

  http->token = g_strdup (config->token);
  http->max_body_bytes = config->max_body_bytes;
  http->model = g_strdup (config->model);
  http->server = soup_server_new ("server-header", "ovi-server", NULL);
  soup_server_add_early_handler (http->server, NULL, check_body, http, NULL);
  soup_server_add_handler (http->server, NULL, handle, http, NULL);
  http->keepalive_id
      = g_timeout_add_seconds (KEEPALIVE_SECONDS, send_keepalive, http);
  return http;
}

void
ovi_http_set_queue (OviHttp *http, OviQueue *queue)
{
  http->queue = queue;
}

SoupServer *
ovi_http_get_server (OviHttp *http)
{
  return http->server;
}

void
ovi_http_free (OviHttp *http)
{
  GList *l;

  g_source_remove (http->keepalive_id);
  for (l = http->clients; l; l = l->next) {
    g_signal_handlers_disconnect_by_data (l->data, http);
    soup_message_body_complete (
        soup_server_message_get_response_body (l->data));
    soup_server_message_unpause (l->data);
    g_object_unref (l->data);
  }
  g_list_free (http->clients);
  soup_server_disconnect (http->server);
  g_object_unref (http->server);
  g_free (http->token);
  g_free (http->model);
  g_free (http);
}
