/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: an HTTP job queue and a web page over the ovi elements.
 *
 *   ovi-server [--port N] [--bind ADDR] [--data-dir DIR] [--model-dir DIR]
 *              [--token TOKEN] [--lora-dir DIR] [--max-queue N]
 *              [--max-body-bytes N]
 *
 * Jobs are kept in SQLite under the data dir and run one at a time through
 * GStreamer pipelines of the ovi elements (see docs/server.md).
 */
#include <stdlib.h>

#include <glib-unix.h>
#include <gst/gst.h>

#include "ovi-engine.h"
#include "ovi-server-http.h"
#include "ovi-server-job.h"
#include "ovi-server-queue.h"

typedef struct {
  gint port;
  gchar *bind;
  gchar *data_dir;
  gchar *model_dir;
  gchar *lora_dir;
  gchar *token;
  gint max_queue;
  gint64 max_body_bytes;
  gboolean list_routes;
} Options;

/* a wrong folder is said at start, not at the first job */
static gboolean
check_model_dir (const gchar *model_dir, GError **error)
{
  g_autoptr (OviModelPaths) paths
      = ovi_model_paths_resolve (model_dir, NULL, error);
  return paths != NULL;
}

static gboolean
parse_options (int *argc, char ***argv, Options *o, GError **error)
{
  const GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &o->port,
      "TCP port (default 8080; 0: any free port)", "N" },
    { "bind", 'b', 0, G_OPTION_ARG_STRING, &o->bind,
      "Address to listen on (default 127.0.0.1)", "ADDR" },
    { "data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &o->data_dir,
      "Jobs database and results (default $XDG_DATA_HOME/ovi-server)", "DIR" },
    { "model-dir", 'm', 0, G_OPTION_ARG_FILENAME, &o->model_dir,
      "The official download (default: the tiny test model)", "DIR" },
    { "lora-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->lora_dir,
      "LoRA files jobs may name in their lora field (default: none)", "DIR" },
    { "token", 't', 0, G_OPTION_ARG_STRING, &o->token,
      "Require 'Authorization: Bearer TOKEN' on /v1/", "TOKEN" },
    { "max-queue", 0, 0, G_OPTION_ARG_INT, &o->max_queue,
      "Most jobs queued or running; more get 429 (default 100)", "N" },
    { "max-body-bytes", 0, 0, G_OPTION_ARG_INT64, &o->max_body_bytes,
      "Largest request body; larger get 413 (default 33554432)", "N" },
    { "list-routes", 0, 0, G_OPTION_ARG_NONE, &o->list_routes,
      "Print the routes and job fields as JSON and exit", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);

  o->port = 8080;
  o->max_queue = 100;
  o->max_body_bytes = 32 << 20;
  g_option_context_set_summary (
      ctx, "An HTTP job queue and a web page over the ovi GStreamer elements.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, argc, argv, error))
    return FALSE;
  if (o->port < 0 || o->port > 65535 || o->max_queue < 1
      || o->max_body_bytes < 1024) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--port must be 0..65535, --max-queue at least 1 and "
                 "--max-body-bytes at least 1024");
    return FALSE;
  }
  if (o->model_dir && !check_model_dir (o->model_dir, error))
    return FALSE;
  if (!o->bind)
    o->bind = g_strdup ("127.0.0.1");
  if (!o->data_dir)
    o->data_dir = g_build_filename (g_get_user_data_dir (), "ovi-server", NULL);
  return TRUE;
}

static void
options_clear (Options *o)
{
  g_free (o->bind);
  g_free (o->data_dir);
  g_free (o->model_dir);
  g_free (o->lora_dir);
  g_free (o->token);
}

static int
list_routes (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *text = NULL;
  const gchar *const *f;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "routes");
  json_builder_add_value (b, ovi_http_routes_to_json ());
  json_builder_set_member_name (b, "job_fields");
  json_builder_begin_array (b);
  for (f = ovi_job_field_names (); *f; f++)
    json_builder_add_string_value (b, *f);
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  text = json_to_string (root, TRUE);
  g_print ("%s\n", text);
  return 0;
}

static gboolean
start_listening (SoupServer *server, const Options *o, GError **error)
{
  g_autoptr (GInetAddress) addr = g_inet_address_new_from_string (o->bind);
  g_autoptr (GSocketAddress) sa = NULL;
  GSList *uris, *l;

  if (!addr) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "--bind %s is not an IP address", o->bind);
    return FALSE;
  }
  sa = g_inet_socket_address_new (addr, o->port);
  if (!soup_server_listen (server, sa, 0, error))
    return FALSE;
  uris = soup_server_get_uris (server);
  for (l = uris; l; l = l->next) {
    g_autofree gchar *s = g_uri_to_string (l->data);
    /* the tests read this line to find the port */
    g_print ("ovi-server: listening on %s\n", s);
  }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return TRUE;
}

static gboolean
quit (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

static int
serve (const Options *o)
{
  const OviHttpConfig config = {
    .token = o->token,
    .max_body_bytes = (gsize) o->max_body_bytes,
    .model = o->model_dir ? o->model_dir : "tiny",
  };
  OviHttp *http = ovi_http_new (&config);
  g_autoptr (GError) err = NULL;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  OviQueue *queue = ovi_queue_new (o->data_dir, o->model_dir, o->max_queue,
                                   ovi_http_job_changed, http, &err);

  if (!queue || !start_listening (ovi_http_get_server (http), o, &err)) {
    g_printerr ("ovi-server: %s\n", err->message);
    if (queue)
      ovi_queue_free (queue);
    ovi_http_free (http);
    return 1;
  }
  ovi_http_set_queue (http, queue);
  g_unix_signal_add (SIGINT, quit, loop);
  g_unix_signal_add (SIGTERM, quit, loop);
  g_main_loop_run (loop);
  g_print ("ovi-server: stopping\n");
  ovi_http_free (http);
  ovi_queue_free (queue);
  return 0;
}

int
main (int argc, char **argv)
{
  Options o = { 0 };
  g_autoptr (GError) err = NULL;
  int rc;

  if (!parse_options (&argc, &argv, &o, &err)
      || !ovi_job_fields_init (o.lora_dir, &err)) {
    g_printerr ("ovi-server: %s\n", err->message);
    options_clear (&o);
    return 2;
  }
  rc = o.list_routes ? list_routes () : serve (&o);
  options_clear (&o);
  gst_deinit ();
  return rc;
}
