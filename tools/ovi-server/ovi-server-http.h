/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: the HTTP side: routes, bearer token, limits, server-sent
 * events, the page and /openapi.json (compiled in as GResources). */
#pragma once

#include <libsoup/soup.h>

#include "ovi-server-queue.h"

G_BEGIN_DECLS

typedef struct {
  const gchar *token;   /* NULL: no token needed */
  gsize max_body_bytes; /* larger request bodies get 413 */
  const gchar *model;   /* what /health says runs ("tiny" or the model dir) */
} OviHttpConfig;

typedef struct _OviHttp OviHttp;

OviHttp *ovi_http_new (const OviHttpConfig *config);
void ovi_http_free (OviHttp *http);
/* the queue's change callback: sends the job to the event streams */
void ovi_http_job_changed (const OviJob *job, gboolean removed,
                           gpointer user_data);
void ovi_http_set_queue (OviHttp *http, OviQueue *queue);
SoupServer *ovi_http_get_server (OviHttp *http);

/* every route as [method, path] pairs, for --list-routes */
JsonNode *ovi_http_routes_to_json (void);

G_END_DECLS
