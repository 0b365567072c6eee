/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: the weight cache file (see ovi-weight-cache.h). */
#include "ovi-weight-cache.h"

#include "ovi-weights-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_ALIGN    4096 /* the data section: page aligned */
#define TENSOR_ALIGN  256  /* each tensor: a device copy's alignment */
#define SCALE_SUFFIX  ".qscale"
#define FP_HEAD_BYTES (1 << 20)
#define FP_SAMPLE     4096
#define FP_N_SAMPLES  16

#define KEY_FORMAT      "ovi.cache.format"
#define KEY_KIND        "ovi.cache.kind"
#define KEY_SOURCE      "ovi.cache.source"
#define KEY_SIZE        "ovi.cache.source_size"
#define KEY_MTIME       "ovi.cache.source_mtime"
#define KEY_FINGERPRINT "ovi.cache.source_fingerprint"
#define KEY_DATA_BYTES  "ovi.cache.data_bytes"
#define KEY_TABLE       "ovi.cache.table"

void
ovi_weight_cache_info_clear (OviWeightCacheInfo *info)
{
  g_clear_pointer (&info->path, g_free);
  g_clear_pointer (&info->rejected, g_free);
  info->reused = info->written = FALSE;
}

char *
ovi_weight_cache_dir (void)
{
  const char *env = g_getenv ("OVI_WEIGHT_CACHE_DIR");

  if (env && *env)
    return g_strdup (env);
  /* $XDG_CACHE_HOME, else ~/.cache */
  return g_build_filename (g_get_user_cache_dir (), "gst-ovi", NULL);
}

static char *
absolute (const char *path)
{
  return g_canonicalize_filename (path, NULL);
}

char *
ovi_weight_cache_path (const char *cache_dir, const char *source_path,
                       const char *kind)
{
  g_autofree char *abs = absolute (source_path);
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, abs, -1);
  g_autofree char *base = g_path_get_basename (abs);
  g_autofree char *dir
      = cache_dir ? g_strdup (cache_dir) : ovi_weight_cache_dir ();
  g_autofree char *file = NULL;
  char *dot = strrchr (base, '.');

  if (dot && dot != base)
    *dot = '\0';
  hash[16] = '\0';
  file = g_strdup_printf ("%s.%s.%s.safetensors", base, kind, hash);
  return g_build_filename (dir, file, NULL);
}

/* ---- the source's identity ---- */

typedef struct {
  char *path; /* absolute */
  guint64 size;
  char *mtime; /* "seconds.nanoseconds" */
  char *fingerprint;
} SourceId;

static void
source_id_clear (SourceId *s)
{
  g_clear_pointer (&s->path, g_free);
  g_clear_pointer (&s->mtime, g_free);
  g_clear_pointer (&s->fingerprint, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SourceId, source_id_clear)

static gboolean
hash_range (GChecksum *sum, int fd, guint64 offset, gsize n, guint8 *buf,
            const char *path, GError **error)
{
  while (n > 0) {
    ssize_t got = pread (fd, buf, n, (off_t) offset);
    if (got <= 0) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot read: %s", path,
                   got < 0 ? g_strerror (errno) : "unexpected end of file");
      return FALSE;
    }
    g_checksum_update (sum, buf, (gsize) got);
    offset += (guint64) got;
    n -= (gsize) got;
  }
  return TRUE;
}

/* size, mtime and a cheap content fingerprint: the header (and more) at
 * the front, samples spread over the data, the tail */
static gboolean
source_id (const char *path, SourceId *id, GError **error)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (FP_HEAD_BYTES);
  struct stat st;
  gboolean ok = TRUE;
  int fd;

  memset (id, 0, sizeof *id);
  id->path = absolute (path);
  fd = open (id->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot read: %s",
                 id->path, g_strerror (errno));
    if (fd >= 0)
      close (fd);
    return FALSE;
  }
  id->size = (guint64) st.st_size;
  id->mtime = g_strdup_printf ("%" G_GINT64_FORMAT ".%09ld",
                               (gint64) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  ok = hash_range (sum, fd, 0, MIN (id->size, FP_HEAD_BYTES), buf, id->path,
                   error);
  for (int i = 1; ok && i <= FP_N_SAMPLES && id->size > FP_SAMPLE; i++) {
    guint64 at = (id->size - FP_SAMPLE) / FP_N_SAMPLES * i;
    ok = hash_range (sum, fd, at, FP_SAMPLE, buf, id->path, error);
  }
  close (fd);
  if (ok)
    id->fingerprint = g_strdup (g_checksum_get_string (sum));
  return ok;
}

/* ---- the tensor table and its digest ---- */

typedef struct {
  char *name;
  OviDType dtype;
  int ndim;
  int64_t shape[OVI_MAX_DIMS];
  guint64 begin, end; /* in the data section */
} Entry;

static void
entry_clear (gpointer data)
{
  g_free (((Entry *) data)->name);
}

static int
entry_by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (((const Entry *) a)->name, ((const Entry *) b)->name);
}

static char *
table_digest (GArray *entries)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr (GString) line = g_string_new (NULL);

  g_array_sort (entries, entry_by_name);
  for (guint i = 0; i < entries->len; i++) {
    const Entry *e = &g_array_index (entries, Entry, i);
    g_string_printf (line, "%s|%s|", e->name, ovi_dtype_name (e->dtype));
    for (int d = 0; d < e->ndim; d++)
      g_string_append_printf (line, "%" G_GINT64_FORMAT ",", e->shape[d]);
    g_string_append_printf (line,
                            "|%" G_GUINT64_FORMAT "|%" G_GUINT64_FORMAT "\n",
                            e->begin, e->end);
    g_checksum_update (sum, (const guchar *) line->str, line->len);
  }
  return g_strdup (g_checksum_get_string (sum));
}

/* ---- validating ---- */

static guint64
header_length (OviWeightFile *wf)
{
  gsize size;
  const guint8 *p = g_bytes_get_data (wf->bytes, &size);
  guint64 v = 0;

  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* the table as the reader found it (offsets in the data section) */
static GArray *
read_table (OviWeightFile *wf, guint64 data_start)
{
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (Entry));

  g_array_set_clear_func (entries, entry_clear);
  for (guint i = 0; i < ovi_weight_file_n_tensors (wf); i++) {
    const char *name = ovi_weight_file_name (wf, i);
    g_autoptr (OviTensor) t = ovi_weight_file_get (wf, name, NULL);
    Entry e = { 0 };

    if (t == NULL) /* listed, so present: only a digest mismatch follows */
      continue;
    e = (Entry){ g_strdup (name), t->dtype, t->ndim };
    memcpy (e.shape, t->shape, sizeof e.shape);
    /* a tensor the reader had to copy (misaligned) gets offset 0, which
     * the digest then refuses */
    if (t->storage == wf->storage)
      e.begin = t->offset - data_start;
    e.end = e.begin + ovi_tensor_nbytes (t);
    g_array_append_val (entries, e);
  }
  return entries;
}

static const char *
meta (OviWeightFile *wf, const char *key)
{
  const char *v = ovi_weight_file_metadata (wf, key);
  return v ? v : "(none)";
}

#define REJECT(...)                                                            \
  G_STMT_START                                                                 \
  {                                                                            \
    g_autofree char *_why = g_strdup_printf (__VA_ARGS__);                     \
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: rejected: %s", path, \
                 _why);                                                        \
    return FALSE;                                                              \
  }                                                                            \
  G_STMT_END

gboolean
ovi_weight_cache_check (OviWeightFile *wf, const char *path, const char *kind,
                        GError **error)
{
  g_autoptr (GArray) table = NULL;
  g_autofree char *digest = NULL;
  guint64 header_len, data_bytes;
  gsize file_size;
  const char *fmt = meta (wf, KEY_FORMAT);

  if (g_strcmp0 (fmt, G_STRINGIFY (OVI_WEIGHT_CACHE_FORMAT)) != 0)
    REJECT ("format version %s, this build reads version %d", fmt,
            OVI_WEIGHT_CACHE_FORMAT);
  if (g_strcmp0 (meta (wf, KEY_KIND), kind) != 0)
    REJECT ("it holds %s weights, %s are needed", meta (wf, KEY_KIND), kind);
  header_len = header_length (wf);
  g_bytes_get_data (wf->bytes, &file_size);
  data_bytes = g_ascii_strtoull (meta (wf, KEY_DATA_BYTES), NULL, 10);
  if (file_size != 8 + header_len + data_bytes)
    REJECT ("truncated or extended: %" G_GSIZE_FORMAT " bytes, its header "
            "says %" G_GUINT64_FORMAT,
            file_size, 8 + header_len + data_bytes);
  table = read_table (wf, 8 + header_len);
  digest = table_digest (table);
  if (g_strcmp0 (digest, meta (wf, KEY_TABLE)) != 0)
    REJECT ("its tensor table does not match the digest written with it "
            "(corrupt header)");
  return TRUE;
}

static gboolean
check_source (OviWeightFile *wf, const char *path, const SourceId *src,
              GError **error)
{
  g_autofree char *size_str = g_strdup_printf ("%" G_GUINT64_FORMAT, src->size);

  if (g_strcmp0 (meta (wf, KEY_SOURCE), src->path) != 0)
    REJECT ("it was made from %s, not %s", meta (wf, KEY_SOURCE), src->path);
  if (g_strcmp0 (meta (wf, KEY_SIZE), size_str) != 0
      || g_strcmp0 (meta (wf, KEY_MTIME), src->mtime) != 0)
    REJECT ("the source %s changed since it was written (size %s, mtime %s "
            "then; size %s, mtime %s now)",
            src->path, meta (wf, KEY_SIZE), meta (wf, KEY_MTIME), size_str,
            src->mtime);
  if (g_strcmp0 (meta (wf, KEY_FINGERPRINT), src->fingerprint) != 0)
    REJECT ("the content of the source %s changed since it was written "
            "(fingerprint)",
            src->path);
  return TRUE;
}

static OviWeightFile *
validate_against (const char *path, const char *kind, const SourceId *src,
                  GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (OviWeightFile) wf = ovi_weight_file_open (path, NULL, &local);

  if (wf == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: rejected: unreadable or corrupt (%s)", path,
                 local->message);
    return NULL;
  }
  if (!ovi_weight_cache_check (wf, path, kind, error)
      || !check_source (wf, path, src, error))
    return NULL;
  return g_steal_pointer (&wf);
}

#undef REJECT

OviWeightFile *
ovi_weight_cache_validate (const char *path, const OviWeightCacheSpec *spec,
                           GError **error)
{
  g_auto (SourceId) src = { 0 };

  if (!source_id (spec->source_path, &src, error))
    return NULL;
  return validate_against (path, spec->kind, &src, error);
}

/* ---- building ---- */

/* the block index of "...blocks.<i>....", -1 for the rest */
static int
block_index (const char *name)
{
  const char *b = strstr (name, ".blocks.");

  return b ? atoi (b + strlen (".blocks.")) : -1;
}

static int
by_block_then_name (gconstpointer a, gconstpointer b)
{
  const char *x = *(const char *const *) a, *y = *(const char *const *) b;
  int bx = block_index (x), by = block_index (y);

  if (bx != by)
    return bx < 0 ? 1 : by < 0 ? -1 : bx - by;
  return strcmp (x, y);
}

typedef struct {
  FILE *fp;
  const char *tmp;
  guint64 reserve; /* header space, the data section's offset */
  guint64 at;      /* bytes of data written */
  GArray *entries;
} Writer;

static gboolean
write_tensor (Writer *w, const char *name, const OviTensor *t, GError **error)
{
  guint64 begin = (w->at + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
  Entry e = { g_strdup (name), t->dtype, t->ndim };

  memcpy (e.shape, t->shape, sizeof e.shape);
  e.begin = begin;
  e.end = begin + ovi_tensor_nbytes (t);
  g_array_append_val (w->entries, e);
  if (fseeko (w->fp, (off_t) (w->reserve + begin), SEEK_SET) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot seek: %s", w->tmp,
                 g_strerror (errno));
    return FALSE;
  }
  w->at = e.end;
  return ovi_weights_write_tensor_data (w->fp, t, w->tmp, error);
}

/* header space for `n` tensors named like those in `names`: the entry of a
 * tensor and of its scale, the metadata, rounded up to a page */
static guint64
header_reserve (GPtrArray *names, const SourceId *src)
{
  guint64 bytes = 4096 + 2 * strlen (src->path);

  for (guint i = 0; i < names->len; i++)
    bytes += 2 * (strlen (g_ptr_array_index (names, i)) + 160);
  return (bytes + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
}

static char *
header_json (GArray *entries, const OviWeightCacheSpec *spec,
             const SourceId *src, guint64 data_bytes, gsize *len)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *digest = table_digest (entries);
  g_autofree char *size = g_strdup_printf ("%" G_GUINT64_FORMAT, src->size);
  g_autofree char *data = g_strdup_printf ("%" G_GUINT64_FORMAT, data_bytes);
  const char *kv[][2] = {
    { KEY_FORMAT, G_STRINGIFY (OVI_WEIGHT_CACHE_FORMAT) },
    { KEY_KIND, spec->kind },
    { KEY_SOURCE, src->path },
    { KEY_SIZE, size },
    { KEY_MTIME, src->mtime },
    { KEY_FINGERPRINT, src->fingerprint },
    { KEY_DATA_BYTES, data },
    { KEY_TABLE, digest },
  };

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "__metadata__");
  json_builder_begin_object (b);
  for (guint i = 0; i < G_N_ELEMENTS (kv); i++) {
    json_builder_set_member_name (b, kv[i][0]);
    json_builder_add_string_value (b, kv[i][1]);
  }
  json_builder_end_object (b);
  for (guint i = 0; i < entries->len; i++) {
    const Entry *e = &g_array_index (entries, Entry, i);
    ovi_safetensors_add_header_entry (b, e->name, e->dtype, e->ndim, e->shape,
                                      e->begin, e->end);
  }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, len);
}

/* the length, the JSON, spaces up to the reserved data offset */
static gboolean
write_header (Writer *w, const char *json, gsize len, GError **error)
{
  guint64 n = w->reserve - 8;
  guint8 le[8];
  g_autofree char *pad = NULL;

  if (len > n) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "%s: header of %" G_GSIZE_FORMAT
                 " bytes exceeds the %" G_GUINT64_FORMAT " reserved",
                 w->tmp, len, n);
    return FALSE;
  }
  for (int i = 0; i < 8; i++)
    le[i] = (guint8) (n >> (8 * i));
  pad = g_malloc (n - len);
  memset (pad, ' ', n - len);
  if (fseeko (w->fp, 0, SEEK_SET) != 0 || fwrite (le, 1, 8, w->fp) != 8
      || fwrite (json, 1, len, w->fp) != len
      || fwrite (pad, 1, n - len, w->fp) != n - len) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", w->tmp,
                 g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* every tensor of `names` that `make` keeps, in that order, into w->fp */
static gboolean
write_data (Writer *w, OviWeightFile *src, GPtrArray *names,
            const OviWeightCacheSpec *spec, GError **error)
{
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index (names, i);
    g_autoptr (OviTensor) raw = ovi_weight_file_get (src, name, error);
    g_autoptr (OviTensor) made = NULL;
    GError *local = NULL;

    if (raw == NULL)
      return FALSE;
    made = spec->make (name, raw, spec->user_data, &local);
    if (local) {
      g_propagate_error (error, local);
      return FALSE;
    }
    if (made == NULL)
      continue;
    if (!write_tensor (w, name, made, error))
      return FALSE;
    if (made->scale) {
      g_autofree char *sname = g_strconcat (name, SCALE_SUFFIX, NULL);
      if (!write_tensor (w, sname, made->scale, error))
        return FALSE;
    }
  }
  return TRUE;
}

static gboolean
finish_file (Writer *w, const char *path, GError **error)
{
  int fd = fileno (w->fp);

  if (fflush (w->fp) != 0 || fsync (fd) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", w->tmp,
                 g_strerror (errno));
    return FALSE;
  }
  if (g_rename (w->tmp, path) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot rename to %s: %s",
                 w->tmp, path, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* the source's tensors as names, a block's together */
static GPtrArray *
names_in_block_order (OviWeightFile *src)
{
  GPtrArray *names = g_ptr_array_new ();

  for (guint i = 0; i < ovi_weight_file_n_tensors (src); i++)
    g_ptr_array_add (names, (gpointer) ovi_weight_file_name (src, i));
  g_ptr_array_sort (names, by_block_then_name);
  return names;
}

static gboolean
build (const char *path, const OviWeightCacheSpec *spec, const SourceId *id,
       GError **error)
{
  g_autoptr (OviWeightFile) src
      = ovi_weight_file_open (spec->source_path, NULL, error);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *tmp = g_strconcat (path, ".tmp-XXXXXX", NULL);
  g_autofree char *json = NULL;
  g_autoptr (GPtrArray) names = NULL;
  Writer w = { 0 };
  gsize len = 0;
  gboolean ok = FALSE;
  int fd;

  if (src == NULL)
    return FALSE;
  if (g_mkdir_with_parents (dir, 0700) != 0) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot create: %s", dir,
                 g_strerror (errno));
    return FALSE;
  }
  fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0 || (w.fp = fdopen (fd, "w+b")) == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO,
                 "%s: cannot write a cache file there: %s", dir,
                 g_strerror (errno));
    if (fd >= 0)
      close (fd);
    return FALSE;
  }
  w.tmp = tmp;
  names = names_in_block_order (src);
  w.reserve = header_reserve (names, id);
  w.entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_array_set_clear_func (w.entries, entry_clear);
  ok = write_data (&w, src, names, spec, error);
  if (ok) {
    guint64 data_bytes = w.at;
    json = header_json (w.entries, spec, id, data_bytes, &len);
    ok = write_header (&w, json, len, error) && finish_file (&w, path, error);
  }
  fclose (w.fp);
  g_array_unref (w.entries);
  if (!ok)
    g_unlink (tmp);
  return ok;
}

/* ---- opening ---- */

OviWeightFile *
ovi_weight_cache_open (const OviWeightCacheSpec *spec, OviWeightCacheInfo *info,
                       GError **error)
{
  g_auto (OviWeightCacheInfo) local_info = { 0 };
  g_auto (SourceId) src = { 0 };
  OviWeightCacheInfo *in = info ? info : &local_info;
  g_autofree char *path = NULL;
  OviWeightFile *wf;
  GError *why = NULL;

  memset (in, 0, sizeof *in);
  path = ovi_weight_cache_path (spec->cache_dir, spec->source_path, spec->kind);
  in->path = g_strdup (path);
  if (!source_id (spec->source_path, &src, error))
    return NULL;
  if (g_file_test (path, G_FILE_TEST_EXISTS)) {
    wf = validate_against (path, spec->kind, &src, &why);
    if (wf) {
      in->reused = TRUE;
      return wf;
    }
    in->rejected = g_strdup (why->message);
    g_message ("%s; making it again", why->message);
    g_clear_error (&why);
  }
  if (!build (path, spec, &src, error))
    return NULL;
  in->written = TRUE;
  return validate_against (path, spec->kind, &src, error);
}

OviTensor *
ovi_weight_cache_get (OviWeightFile *cache, const char *name)
{
  g_autofree char *sname = g_strconcat (name, SCALE_SUFFIX, NULL);
  OviTensor *t;

  if (!ovi_weight_file_contains (cache, name))
    return NULL;
  t = ovi_weight_file_get (cache, name, NULL);
  if (t && ovi_weight_file_contains (cache, sname))
    t->scale = ovi_weight_file_get (cache, sname, NULL);
  return t;
}
