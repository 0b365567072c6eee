/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovi-server: a job, its parameters and their JSON form.
 *
 * The parameters a job may set are properties of the elements it runs
 * (ovitextsrc, ovidenoise). Their types and ranges come from the elements'
 * GParamSpecs, so the server accepts exactly what the elements accept and a
 * bad value is refused at submission with the field's name.
 */
#pragma once

#include <gst/gst.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define OVI_SERVER_ERROR (ovi_server_error_quark ())
GQuark ovi_server_error_quark (void);

typedef enum {
  OVI_SERVER_ERROR_INVALID,   /* a bad request: 400 */
  OVI_SERVER_ERROR_NOT_FOUND, /* 404 */
  OVI_SERVER_ERROR_FULL,      /* the queue is full: 429 */
  OVI_SERVER_ERROR_CONFLICT,  /* not in a state that allows it: 409 */
  OVI_SERVER_ERROR_FAILED,
} OviServerError;

typedef enum {
  OVI_JOB_QUEUED,
  OVI_JOB_RUNNING,
  OVI_JOB_DONE,
  OVI_JOB_FAILED,
  OVI_JOB_CANCELLED,
} OviJobState;

typedef struct {
  gint64 seq; /* submission order */
  gchar *id;  /* 32 lower-case hex digits */
  OviJobState state;
  JsonObject *params; /* validated fields, by their JSON names */
  gboolean has_image;
  gdouble progress; /* 0..1 */
  gint step, steps;
  gint cancel_step; /* -1, or the step done when a cancel arrived */
  gdouble eta;      /* seconds; < 0: unknown */
  gchar *error;
  gint64 created, started, finished; /* unix time in microseconds; 0: unset */
  guint attempts;                    /* times it was started */
} OviJob;

const gchar *ovi_job_state_to_string (OviJobState state);
gboolean ovi_job_state_from_string (const gchar *s, OviJobState *state);
gboolean ovi_job_state_is_final (OviJobState state);

/* Looks the job fields up in the element classes; fails when an element is
 * missing (the ovi plugin not found). `lora_dir` (may be NULL: no LoRAs) is
 * the folder whose files the `lora` field names. Call once after gst_init. */
gboolean ovi_job_fields_init (const gchar *lora_dir, GError **error);

OviJob *ovi_job_new (JsonObject *params, gboolean has_image);
void ovi_job_free (OviJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OviJob, ovi_job_free)

gboolean ovi_job_id_is_valid (const gchar *id);

/* Validates a submitted JSON object: the known fields with values the
 * elements accept, `prompt` required; `image` (base64, or a data: URL) is
 * decoded into *image (a PNG or JPEG). On error *field names the bad field
 * (NULL when the body as a whole is wrong). */
JsonObject *ovi_job_params_parse (JsonNode *root, GBytes **image, gchar **field,
                                  GError **error);
/* The same for the parts of a multipart/form-data body: text parts carry
 * the fields (numbers as text), a part named `image` the image file. */
JsonObject *ovi_job_params_parse_form (GHashTable *texts, GBytes *image_part,
                                       GBytes **image, gchar **field,
                                       GError **error);

/* Sets the params on the elements named after their factories
 * ("ovitextsrc", "ovidenoise") in `bin`. */
gboolean ovi_job_params_apply (JsonObject *params, GstBin *bin, GError **error);

/* {"id", "state", "progress", "eta", "error", ...} */
JsonNode *ovi_job_to_json (const OviJob *job);

/* the names of the fields a job accepts, "image" last; NULL-terminated */
const gchar *const *ovi_job_field_names (void);

G_END_DECLS
