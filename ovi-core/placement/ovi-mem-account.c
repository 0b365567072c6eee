/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: device-memory accounting (see ovi-mem-account.h). */
#include "ovi-mem-account.h"
#include "ovi-backend-impl.h"

struct _OviMemAccount {
  gint ref_count;
  OviBackend *be;
  const OviBackendOps *orig;
  OviBackendOps ops; /* the backend's table with new_storage wrapped */
  GMutex lock;
  guint64 used, peak, limit;
  guint refusals;
};

typedef struct {
  OviMemAccount *acc;
  gsize size;
  GDestroyNotify release;
  gpointer release_data;
} Tracked;

static void
account_unref (OviMemAccount *acc)
{
  if (!g_atomic_int_dec_and_test (&acc->ref_count))
    return;
  g_mutex_clear (&acc->lock);
  g_free (acc);
}

static void
tracked_release (gpointer data)
{
  Tracked *t = data;

  g_mutex_lock (&t->acc->lock);
  t->acc->used -= t->size;
  g_mutex_unlock (&t->acc->lock);
  if (t->release)
    t->release (t->release_data);
  account_unref (t->acc);
  g_free (t);
}

char *
ovi_format_bytes (guint64 b)
{
  if (b >= ((guint64) 1 << 30))
    return g_strdup_printf ("%.2f GiB", b / (double) ((guint64) 1 << 30));
  if (b >= ((guint64) 1 << 20))
    return g_strdup_printf ("%.1f MiB", b / (double) ((guint64) 1 << 20));
  if (b >= 1024)
    return g_strdup_printf ("%.1f KiB", b / 1024.0);
  return g_strdup_printf ("%" G_GUINT64_FORMAT " B", b);
}

static OviStorage *
accounted_new_storage (OviBackend *be, gsize size, GError **error)
{
  OviMemAccount *acc
      = (OviMemAccount *) ((char *) be->ops
                           - G_STRUCT_OFFSET (OviMemAccount, ops));
  OviStorage *s;
  Tracked *t;

  g_mutex_lock (&acc->lock);
  if (acc->limit > 0 && acc->used + size > acc->limit) {
    g_autofree char *need = ovi_format_bytes (size);
    g_autofree char *fr = ovi_format_bytes (
        acc->limit > acc->used ? acc->limit - acc->used : 0);
    g_autofree char *used = ovi_format_bytes (acc->used);
    g_autofree char *lim = ovi_format_bytes (acc->limit);
    acc->refusals++;
    g_mutex_unlock (&acc->lock);
    g_set_error (error, OVI_ERROR, OVI_ERROR_OUT_OF_MEMORY,
                 "device memory limit: %s needed, %s free (%s in use of %s)",
                 need, fr, used, lim);
    return NULL;
  }
  /* reserve first so concurrent allocations see it */
  acc->used += size;
  acc->peak = MAX (acc->peak, acc->used);
  g_mutex_unlock (&acc->lock);
  s = acc->orig->new_storage (be, size, error);
  if (s == NULL) {
    g_mutex_lock (&acc->lock);
    acc->used -= size;
    g_mutex_unlock (&acc->lock);
    return NULL;
  }
  t = g_new0 (Tracked, 1);
  t->acc = acc;
  g_atomic_int_inc (&acc->ref_count);
  t->size = size;
  t->release = s->release;
  t->release_data = s->release_data;
  s->release = tracked_release;
  s->release_data = t;
  return s;
}

OviMemAccount *
ovi_mem_account_attach (OviBackend *be, guint64 limit)
{
  OviMemAccount *acc;

  g_return_val_if_fail (be != NULL, NULL);
  g_return_val_if_fail (be->ops->new_storage != accounted_new_storage, NULL);
  acc = g_new0 (OviMemAccount, 1);
  acc->ref_count = 1;
  g_mutex_init (&acc->lock);
  acc->be = be;
  acc->orig = be->ops;
  acc->ops = *be->ops;
  acc->ops.new_storage = accounted_new_storage;
  acc->limit = limit;
  be->ops = &acc->ops;
  return acc;
}

void
ovi_mem_account_detach (OviMemAccount *acc)
{
  if (acc == NULL)
    return;
  if (acc->be && acc->be->ops == &acc->ops)
    acc->be->ops = acc->orig;
  acc->be = NULL;
  account_unref (acc);
}

#define GETTER(field, type)                                                    \
  type ovi_mem_account_##field (OviMemAccount *acc)                            \
  {                                                                            \
    type v;                                                                    \
    g_mutex_lock (&acc->lock);                                                 \
    v = acc->field;                                                            \
    g_mutex_unlock (&acc->lock);                                               \
    return v;                                                                  \
  }
GETTER (used, guint64)
GETTER (peak, guint64)
GETTER (limit, guint64)
GETTER (refusals, guint)
#undef GETTER

void
ovi_mem_account_set_limit (OviMemAccount *acc, guint64 limit)
{
  g_mutex_lock (&acc->lock);
  acc->limit = limit;
  g_mutex_unlock (&acc->lock);
}

void
ovi_mem_account_reset_peak (OviMemAccount *acc)
{
  g_mutex_lock (&acc->lock);
  acc->peak = acc->used;
  g_mutex_unlock (&acc->lock);
}
