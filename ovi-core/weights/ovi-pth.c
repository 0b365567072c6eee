/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gst-ovi: PyTorch zip checkpoints (what torch.save writes since 1.6).
 *
 * The file is a zip of STORED entries: <archive>/data.pkl (a pickle of the
 * state dict), <archive>/data/<key> (the raw little-endian bytes of each
 * storage), <archive>/version and maybe <archive>/byteorder. The pickle is
 * read by an allow-list interpreter: it builds only dicts, lists, tuples,
 * scalars, strings, storages and tensors, and refuses every global that is
 * not a known container, storage type or tensor rebuild function with
 * OVI_ERROR_UNSAFE. Nothing named by the file is ever called.
 */
#include "ovi-weights-private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* zip                                                                 */
/* ------------------------------------------------------------------ */

typedef struct {
  char *name;
  guint64 offset; /* of the entry's data in the file */
  guint64 size;
} ZipEntry;

static guint16
rd16 (const guint8 *p)
{
  return (guint16) (p[0] | (p[1] << 8));
}

static guint32
rd32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16)
         | ((guint32) p[3] << 24);
}

static guint64
rd64 (const guint8 *p)
{
  return (guint64) rd32 (p) | ((guint64) rd32 (p + 4) << 32);
}

static void
zip_entry_free (gpointer data)
{
  ZipEntry *e = data;

  g_free (e->name);
  g_free (e);
}

#define ZFAIL(...)                                                             \
  G_STMT_START                                                                 \
  {                                                                            \
    g_autofree char *_m = g_strdup_printf (__VA_ARGS__);                       \
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: %s", path, _m);      \
    return FALSE;                                                              \
  }                                                                            \
  G_STMT_END

static gboolean
zip_read (const guint8 *data, gsize size, const char *path, GHashTable *entries,
          GPtrArray *order, GError **error)
{
  gssize eocd = -1;
  guint64 n_entries, cd_size, cd_offset, cd_end, p;

  if (size < 22)
    ZFAIL ("zip file truncated (%" G_GSIZE_FORMAT " bytes)", size);
  for (gssize i = (gssize) size - 22; i >= 0 && i >= (gssize) size - 22 - 65535;
       i--) {
    if (rd32 (data + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    ZFAIL ("zip end of central directory not found: file truncated?");
  n_entries = rd16 (data + eocd + 10);
  cd_size = rd32 (data + eocd + 12);
  cd_offset = rd32 (data + eocd + 16);
  if (n_entries == 0xffff || cd_size == 0xffffffffu
      || cd_offset == 0xffffffffu) {
    guint64 loc = (guint64) eocd, rec;

    if (loc < 20 || rd32 (data + loc - 20) != 0x07064b50)
      ZFAIL ("zip64 end of central directory locator missing");
    rec = rd64 (data + loc - 20 + 8);
    if (rec > size || size - rec < 56 || rd32 (data + rec) != 0x06064b50)
      ZFAIL ("zip64 end of central directory record out of range");
    n_entries = rd64 (data + rec + 32);
    cd_size = rd64 (data + rec + 40);
    cd_offset = rd64 (data + rec + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset)
    ZFAIL ("zip central directory lies outside the file: file truncated?");
  cd_end = cd_offset + cd_size;
  p = cd_offset;
  for (guint64 i = 0; i < n_entries; i++) {
    guint16 flags, method, nlen, elen, clen;
    guint64 csize, usize, lho, lnlen, lelen, doff;
    const guint8 *extra;
    ZipEntry *e;

    if (cd_end - p < 46 || rd32 (data + p) != 0x02014b50)
      ZFAIL ("zip central directory entry %" G_GUINT64_FORMAT " is corrupt", i);
    flags = rd16 (data + p + 8);
    method = rd16 (data + p + 10);
    csize = rd32 (data + p + 20);
    usize = rd32 (data + p + 24);
    nlen = rd16 (data + p + 28);
    elen = rd16 (data + p + 30);
    clen = rd16 (data + p + 32);
    lho = rd32 (data + p + 42);
    if (cd_end - p - 46 < (guint64) nlen + elen + clen)
      ZFAIL ("zip central directory entry %" G_GUINT64_FORMAT " is corrupt", i);
    extra = data + p + 46 + nlen;
    /* zip64 extended information */
    for (guint off = 0; off + 4 <= elen;) {
      guint16 id = rd16 (extra + off), len = rd16 (extra + off + 2);
      const guint8 *q = extra + off + 4, *q_end;

      if (off + 4 + (guint) len > elen)
        break;
      q_end = q + len;
      if (id == 0x0001) {
        if (usize == 0xffffffffu && q + 8 <= q_end) {
          usize = rd64 (q);
          q += 8;
        }
        if (csize == 0xffffffffu && q + 8 <= q_end) {
          csize = rd64 (q);
          q += 8;
        }
        if (lho == 0xffffffffu && q + 8 <= q_end)
          lho = rd64 (q);
      }
      off += 4 + len;
    }
    e = g_new0 (ZipEntry, 1);
    e->name = g_strndup ((const char *) data + p + 46, nlen);
    p += 46 + (guint64) nlen + elen + clen;
    if (flags & 1) {
      g_autofree char *n = e->name;
      g_free (e);
      ZFAIL ("zip entry '%s' is encrypted", n);
    }
    if (method != 0) {
      g_autofree char *n = e->name;
      g_free (e);
      ZFAIL ("zip entry '%s' is compressed (method %u); only stored "
             "entries (as torch.save writes them) are supported",
             n, method);
    }
    if (csize != usize || lho > size || size - lho < 30
        || rd32 (data + lho) != 0x04034b50) {
      g_autofree char *n = e->name;
      g_free (e);
      ZFAIL ("zip entry '%s' has a corrupt local header", n);
    }
    lnlen = rd16 (data + lho + 26);
    lelen = rd16 (data + lho + 28);
    doff = lho + 30 + lnlen + lelen;
    if (doff > size || usize > size - doff) {
      g_autofree char *n = e->name;
      g_free (e);
      ZFAIL ("zip entry '%s' extends past the end of the file: file "
             "truncated?",
             n);
    }
    e->offset = doff;
    e->size = usize;
    if (g_hash_table_contains (entries, e->name)) {
      g_autofree char *n = e->name;
      g_free (e);
      ZFAIL ("zip entry '%s' appears twice", n);
    }
    g_hash_table_insert (entries, e->name, e);
    g_ptr_array_add (order, e);
  }
  return TRUE;
}

#undef ZFAIL

/* ------------------------------------------------------------------ */
/* the allow-list unpickler                                            */
/* ------------------------------------------------------------------ */

typedef enum {
  PV_NONE,
  PV_BOOL,
  PV_INT,
  PV_BIGINT, /* an integer that does not fit in 64 bits */
  PV_FLOAT,
  PV_STR,
  PV_BYTES,
  PV_TUPLE,
  PV_LIST,
  PV_DICT,
  PV_GLOBAL,
  PV_STORAGE,
  PV_TENSOR,
} PvKind;

typedef enum {
  GL_ORDERED_DICT,
  GL_REBUILD_TENSOR_V2,
  GL_REBUILD_PARAMETER,
  GL_REBUILD_PARAMETER_WITH_STATE,
  GL_STORAGE_TYPE,
} GlobalId;

typedef struct {
  PvKind kind;
  gint64 i;
  double f;
  char *s; /* str/bytes (NUL-terminated copy), storage key */
  gsize len;
  GPtrArray *items; /* tuple/list items; dict: key, value, key, value */
  GlobalId global;  /* PV_GLOBAL */
  OviDType dtype;   /* storage type, storage, tensor */
  gint64 numel;     /* storage */
  /* tensor */
  const char *storage_key; /* borrowed from the storage value */
  gint64 storage_numel;
  gint64 offset;
  int ndim;
  gint64 shape[OVI_MAX_DIMS];
  gint64 stride[OVI_MAX_DIMS];
} PVal;

static const struct {
  const char *name;
  OviDType dtype;
} storage_types[] = {
  { "FloatStorage", OVI_DTYPE_F32 },
  { "HalfStorage", OVI_DTYPE_F16 },
  { "BFloat16Storage", OVI_DTYPE_BF16 },
  { "DoubleStorage", OVI_DTYPE_F64 },
  { "LongStorage", OVI_DTYPE_I64 },
  { "IntStorage", OVI_DTYPE_I32 },
  { "ByteStorage", OVI_DTYPE_U8 },
  { "CharStorage", OVI_DTYPE_I8 },
  { "BoolStorage", OVI_DTYPE_BOOL },
  { "Float8_e4m3fnStorage", OVI_DTYPE_F8_E4M3 },
};

typedef struct {
  const char *path;
  const guint8 *p, *end, *start;
  GPtrArray *arena; /* every PVal, freed at the end */
  GPtrArray *stack;
  GArray *marks;    /* stack heights at each MARK */
  GHashTable *memo; /* index -> PVal* */
  GError **error;
} Unpickler;

static void
pval_free (gpointer data)
{
  PVal *v = data;

  g_free (v->s);
  if (v->items)
    g_ptr_array_unref (v->items);
  g_free (v);
}

static PVal *
pv_new (Unpickler *u, PvKind kind)
{
  PVal *v = g_new0 (PVal, 1);

  v->kind = kind;
  if (kind == PV_TUPLE || kind == PV_LIST || kind == PV_DICT)
    v->items = g_ptr_array_new ();
  g_ptr_array_add (u->arena, v);
  return v;
}

static gboolean G_GNUC_PRINTF (3, 4)
    fmt_error (Unpickler *u, int code, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (u->error, OVI_ERROR, code, "%s: %s", u->path, msg);
  return FALSE;
}

#define PERR(...) fmt_error (u, OVI_ERROR_FORMAT, __VA_ARGS__)

static guint
floor_height (Unpickler *u)
{
  return u->marks->len ? g_array_index (u->marks, guint, u->marks->len - 1) : 0;
}

static gboolean
push (Unpickler *u, PVal *v)
{
  g_ptr_array_add (u->stack, v);
  return TRUE;
}

static PVal *
pop (Unpickler *u)
{
  if (u->stack->len <= floor_height (u)) {
    PERR ("corrupt pickle: stack underflow at byte %" G_GSIZE_FORMAT,
          (gsize) (u->p - u->start));
    return NULL;
  }
  return g_ptr_array_steal_index (u->stack, u->stack->len - 1);
}

static PVal *
top (Unpickler *u)
{
  if (u->stack->len <= floor_height (u)) {
    PERR ("corrupt pickle: stack underflow at byte %" G_GSIZE_FORMAT,
          (gsize) (u->p - u->start));
    return NULL;
  }
  return g_ptr_array_index (u->stack, u->stack->len - 1);
}

/* pops everything above the last MARK into a new array */
static GPtrArray *
pop_mark (Unpickler *u)
{
  guint h;
  GPtrArray *items;

  if (u->marks->len == 0) {
    PERR ("corrupt pickle: no MARK at byte %" G_GSIZE_FORMAT,
          (gsize) (u->p - u->start));
    return NULL;
  }
  h = g_array_index (u->marks, guint, u->marks->len - 1);
  g_array_set_size (u->marks, u->marks->len - 1);
  items = g_ptr_array_sized_new (u->stack->len - h);
  for (guint i = h; i < u->stack->len; i++)
    g_ptr_array_add (items, g_ptr_array_index (u->stack, i));
  g_ptr_array_set_size (u->stack, h);
  return items;
}

static gboolean
need (Unpickler *u, guint64 n)
{
  if ((guint64) (u->end - u->p) < n)
    return PERR ("pickle truncated at byte %" G_GSIZE_FORMAT,
                 (gsize) (u->p - u->start));
  return TRUE;
}

static gboolean
read_line (Unpickler *u, char **out)
{
  const guint8 *nl = memchr (u->p, '\n', u->end - u->p);

  if (nl == NULL)
    return PERR ("pickle truncated in a GLOBAL name");
  *out = g_strndup ((const char *) u->p, nl - u->p);
  u->p = nl + 1;
  return TRUE;
}

static PVal *
make_global (Unpickler *u, const char *module, const char *name)
{
  PVal *v;

  if (strcmp (module, "collections") == 0
      && strcmp (name, "OrderedDict") == 0) {
    v = pv_new (u, PV_GLOBAL);
    v->global = GL_ORDERED_DICT;
    return v;
  }
  if (strcmp (module, "torch._utils") == 0) {
    static const struct {
      const char *n;
      GlobalId id;
    } fns[] = {
      { "_rebuild_tensor_v2", GL_REBUILD_TENSOR_V2 },
      { "_rebuild_parameter", GL_REBUILD_PARAMETER },
      { "_rebuild_parameter_with_state", GL_REBUILD_PARAMETER_WITH_STATE },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (fns); i++) {
      if (strcmp (name, fns[i].n) == 0) {
        v = pv_new (u, PV_GLOBAL);
        v->global = fns[i].id;
        return v;
      }
    }
  }
  if (strcmp (module, "torch") == 0) {
    for (gsize i = 0; i < G_N_ELEMENTS (storage_types); i++) {
      if (strcmp (name, storage_types[i].name) == 0) {
        v = pv_new (u, PV_GLOBAL);
        v->global = GL_STORAGE_TYPE;
        v->dtype = storage_types[i].dtype;
        return v;
      }
    }
  }
  {
    g_autofree char *m = g_strescape (module, NULL);
    g_autofree char *n = g_strescape (name, NULL);

    fmt_error (
        u, OVI_ERROR_UNSAFE,
        "the pickle asks for '%s.%s', which is not on the allow-list of a "
        "weights file (containers, storages and tensors); refusing to load "
        "it, nothing from it was run",
        m, n);
  }
  return NULL;
}

static gboolean
get_int_tuple (Unpickler *u, PVal *t, int *ndim, gint64 *out, const char *what)
{
  if (t->kind != PV_TUPLE && t->kind != PV_LIST)
    return PERR ("tensor %s is not a tuple", what);
  if (t->items->len > OVI_MAX_DIMS)
    return PERR ("tensor has %u dimensions, at most %d are supported",
                 t->items->len, OVI_MAX_DIMS);
  for (guint i = 0; i < t->items->len; i++) {
    PVal *d = g_ptr_array_index (t->items, i);

    if (d->kind != PV_INT || d->i < 0)
      return PERR ("tensor %s entry %u is not a non-negative integer", what, i);
    out[i] = d->i;
  }
  *ndim = (int) t->items->len;
  return TRUE;
}

static PVal *
do_reduce (Unpickler *u, PVal *fn, PVal *args)
{
  guint n;

  if (fn->kind != PV_GLOBAL) {
    PERR ("corrupt pickle: REDUCE on something that is not a callable");
    return NULL;
  }
  if (args->kind != PV_TUPLE) {
    PERR ("corrupt pickle: REDUCE arguments are not a tuple");
    return NULL;
  }
  n = args->items->len;
  switch (fn->global) {
    case GL_ORDERED_DICT: {
      PVal *d = pv_new (u, PV_DICT);

      if (n != 0) {
        PERR ("OrderedDict with initial items is not supported");
        return NULL;
      }
      return d;
    }
    case GL_REBUILD_TENSOR_V2: {
      PVal *st, *off, *t;
      int nd_shape, nd_stride;

      if (n < 6 || n > 7) {
        PERR ("_rebuild_tensor_v2 takes 6 or 7 arguments, got %u", n);
        return NULL;
      }
      st = g_ptr_array_index (args->items, 0);
      off = g_ptr_array_index (args->items, 1);
      if (st->kind != PV_STORAGE) {
        PERR ("_rebuild_tensor_v2: first argument is not a storage");
        return NULL;
      }
      if (off->kind != PV_INT || off->i < 0) {
        PERR ("_rebuild_tensor_v2: invalid storage offset");
        return NULL;
      }
      t = pv_new (u, PV_TENSOR);
      t->dtype = st->dtype;
      t->storage_key = st->s;
      t->storage_numel = st->numel;
      t->offset = off->i;
      if (!get_int_tuple (u, g_ptr_array_index (args->items, 2), &nd_shape,
                          t->shape, "size")
          || !get_int_tuple (u, g_ptr_array_index (args->items, 3), &nd_stride,
                             t->stride, "stride"))
        return NULL;
      if (nd_shape != nd_stride) {
        PERR ("_rebuild_tensor_v2: size has %d entries, stride %d", nd_shape,
              nd_stride);
        return NULL;
      }
      t->ndim = nd_shape;
      return t;
    }
    case GL_REBUILD_PARAMETER:
    case GL_REBUILD_PARAMETER_WITH_STATE: {
      PVal *t;

      if (n != (fn->global == GL_REBUILD_PARAMETER ? 3u : 4u)) {
        PERR ("_rebuild_parameter: wrong number of arguments (%u)", n);
        return NULL;
      }
      t = g_ptr_array_index (args->items, 0);
      if (t->kind != PV_TENSOR) {
        PERR ("_rebuild_parameter: first argument is not a tensor");
        return NULL;
      }
      return t;
    }
    case GL_STORAGE_TYPE:
    default:
      PERR ("corrupt pickle: a storage type cannot be called");
      return NULL;
  }
}

static PVal *
do_persid (Unpickler *u, PVal *pid)
{
  PVal *tag, *type, *key, *loc, *numel, *st;

  if (pid->kind != PV_TUPLE || pid->items->len != 5) {
    PERR ("persistent id is not a 5-tuple ('storage', type, key, location, "
          "numel)");
    return NULL;
  }
  tag = g_ptr_array_index (pid->items, 0);
  type = g_ptr_array_index (pid->items, 1);
  key = g_ptr_array_index (pid->items, 2);
  loc = g_ptr_array_index (pid->items, 3);
  numel = g_ptr_array_index (pid->items, 4);
  if (tag->kind != PV_STR || strcmp (tag->s, "storage") != 0) {
    PERR ("persistent id is not a storage");
    return NULL;
  }
  if (type->kind != PV_GLOBAL || type->global != GL_STORAGE_TYPE) {
    PERR ("persistent id has no storage type");
    return NULL;
  }
  if (key->kind != PV_STR || loc->kind != PV_STR) {
    PERR ("persistent id key or location is not a string");
    return NULL;
  }
  if (numel->kind != PV_INT || numel->i < 0) {
    PERR ("persistent id has an invalid element count");
    return NULL;
  }
  st = pv_new (u, PV_STORAGE);
  st->dtype = type->dtype;
  st->s = g_strdup (key->s);
  st->numel = numel->i;
  return st;
}

static gboolean
memo_put (Unpickler *u, guint64 index)
{
  PVal *v = top (u);

  if (v == NULL)
    return FALSE;
  g_hash_table_insert (u->memo, GSIZE_TO_POINTER ((gsize) index + 1), v);
  return TRUE;
}

static gboolean
memo_get (Unpickler *u, guint64 index)
{
  PVal *v = g_hash_table_lookup (u->memo, GSIZE_TO_POINTER ((gsize) index + 1));

  if (v == NULL)
    return PERR ("corrupt pickle: memo entry %" G_GUINT64_FORMAT
                 " does not exist",
                 index);
  return push (u, v);
}

static gboolean
push_string (Unpickler *u, guint64 len, PvKind kind)
{
  PVal *v;

  if (!need (u, len))
    return FALSE;
  if (kind == PV_STR && !g_utf8_validate_len ((const char *) u->p, len, NULL))
    return PERR ("pickle string is not valid UTF-8");
  v = pv_new (u, kind);
  v->s = g_strndup ((const char *) u->p, len);
  v->len = len;
  u->p += len;
  return push (u, v);
}

static gboolean
push_int (Unpickler *u, gint64 i)
{
  PVal *v = pv_new (u, PV_INT);

  v->i = i;
  return push (u, v);
}

/* little-endian two's complement of n bytes */
static gboolean
push_long (Unpickler *u, guint64 n)
{
  if (!need (u, n))
    return FALSE;
  if (n > 8) {
    /* fits in 64 bits only if the extra bytes are sign extension */
    guint8 ext = (u->p[n - 1] & 0x80) ? 0xff : 0x00;
    gboolean fits = TRUE;

    for (guint64 k = 8; k < n; k++)
      if (u->p[k] != ext)
        fits = FALSE;
    if (fits && ((u->p[7] & 0x80) != 0) != (ext == 0xff))
      fits = FALSE;
    if (!fits) {
      u->p += n;
      return push (u, pv_new (u, PV_BIGINT));
    }
  }
  {
    guint64 v = 0;
    guint64 m = MIN (n, 8);

    for (guint64 k = 0; k < m; k++)
      v |= (guint64) u->p[k] << (8 * k);
    if (m > 0 && m < 8 && (u->p[m - 1] & 0x80))
      v |= ~(guint64) 0 << (8 * m);
    u->p += n;
    return push_int (u, (gint64) v);
  }
}

static gboolean
make_tuple_of (Unpickler *u, guint count)
{
  PVal *t = pv_new (u, PV_TUPLE);

  if (u->stack->len < floor_height (u) + count)
    return PERR ("corrupt pickle: stack underflow at byte %" G_GSIZE_FORMAT,
                 (gsize) (u->p - u->start));
  for (guint k = u->stack->len - count; k < u->stack->len; k++)
    g_ptr_array_add (t->items, g_ptr_array_index (u->stack, k));
  g_ptr_array_set_size (u->stack, u->stack->len - count);
  return push (u, t);
}

static gboolean
set_items (Unpickler *u, PVal *d, GPtrArray *kv)
{
  if (d->kind != PV_DICT)
    return PERR ("corrupt pickle: SETITEM(S) on something not a dict");
  if (kv->len % 2)
    return PERR ("corrupt pickle: odd number of items for SETITEMS");
  for (guint k = 0; k < kv->len; k++)
    g_ptr_array_add (d->items, g_ptr_array_index (kv, k));
  return TRUE;
}

static PVal *
unpickle (Unpickler *u)
{
  while (u->p < u->end) {
    guint8 op = *u->p++;

    switch (op) {
      case 0x80: /* PROTO */
        if (!need (u, 1))
          return NULL;
        if (*u->p > 5) {
          PERR ("unsupported pickle protocol %u", *u->p);
          return NULL;
        }
        u->p++;
        break;
      case 0x95: /* FRAME */
        if (!need (u, 8))
          return NULL;
        u->p += 8;
        break;
      case '.': { /* STOP */
        PVal *v = pop (u);

        return v;
      }
      case 'N':
        if (!push (u, pv_new (u, PV_NONE)))
          return NULL;
        break;
      case 0x88:   /* NEWTRUE */
      case 0x89: { /* NEWFALSE */
        PVal *v = pv_new (u, PV_BOOL);

        v->i = op == 0x88;
        push (u, v);
        break;
      }
      case 'J': /* BININT */
        if (!need (u, 4))
          return NULL;
        push_int (u, (gint32) rd32 (u->p));
        u->p += 4;
        break;
      case 'K': /* BININT1 */
        if (!need (u, 1))
          return NULL;
        push_int (u, *u->p++);
        break;
      case 'M': /* BININT2 */
        if (!need (u, 2))
          return NULL;
        push_int (u, rd16 (u->p));
        u->p += 2;
        break;
      case 0x8a: /* LONG1 */
        if (!need (u, 1))
          return NULL;
        u->p++;
        if (!push_long (u, u->p[-1]))
          return NULL;
        break;
      case 0x8b: { /* LONG4 */
        gint32 n;

        if (!need (u, 4))
          return NULL;
        n = (gint32) rd32 (u->p);
        u->p += 4;
        if (n < 0) {
          PERR ("corrupt pickle: negative LONG4 length");
          return NULL;
        }
        if (!push_long (u, (guint64) n))
          return NULL;
        break;
      }
      case 'G': { /* BINFLOAT, big-endian */
        guint64 bits = 0;
        PVal *v;

        if (!need (u, 8))
          return NULL;
        for (int k = 0; k < 8; k++)
          bits = (bits << 8) | u->p[k];
        u->p += 8;
        v = pv_new (u, PV_FLOAT);
        memcpy (&v->f, &bits, 8);
        push (u, v);
        break;
      }
      case 'X': /* BINUNICODE */
        if (!need (u, 4))
          return NULL;
        u->p += 4;
        if (!push_string (u, rd32 (u->p - 4), PV_STR))
          return NULL;
        break;
      case 0x8c: /* SHORT_BINUNICODE */
        if (!need (u, 1))
          return NULL;
        u->p++;
        if (!push_string (u, u->p[-1], PV_STR))
          return NULL;
        break;
      case 0x8d: /* BINUNICODE8 */
        if (!need (u, 8))
          return NULL;
        u->p += 8;
        if (!push_string (u, rd64 (u->p - 8), PV_STR))
          return NULL;
        break;
      case 'T': /* BINSTRING */
      case 'B': /* BINBYTES */
        if (!need (u, 4))
          return NULL;
        u->p += 4;
        if (!push_string (u, rd32 (u->p - 4), PV_BYTES))
          return NULL;
        break;
      case 'U': /* SHORT_BINSTRING */
      case 'C': /* SHORT_BINBYTES */
        if (!need (u, 1))
          return NULL;
        u->p++;
        if (!push_string (u, u->p[-1], PV_BYTES))
          return NULL;
        break;
      case '}':
        push (u, pv_new (u, PV_DICT));
        break;
      case ']':
        push (u, pv_new (u, PV_LIST));
        break;
      case ')':
        push (u, pv_new (u, PV_TUPLE));
        break;
      case '(': /* MARK */
        g_array_append_val (u->marks, u->stack->len);
        break;
      case 't':
      case 'l':
      case 'd': { /* TUPLE, LIST, DICT from the marked items */
        g_autoptr (GPtrArray) items = pop_mark (u);
        PVal *v;

        if (items == NULL)
          return NULL;
        v = pv_new (u, op == 't' ? PV_TUPLE : op == 'l' ? PV_LIST : PV_DICT);
        if (op == 'd' && items->len % 2) {
          PERR ("corrupt pickle: odd number of items for DICT");
          return NULL;
        }
        for (guint k = 0; k < items->len; k++)
          g_ptr_array_add (v->items, g_ptr_array_index (items, k));
        push (u, v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: /* TUPLE1..3 */
        if (!make_tuple_of (u, op - 0x84))
          return NULL;
        break;
      case 's': { /* SETITEM */
        PVal *v = pop (u), *k = v ? pop (u) : NULL, *d = k ? top (u) : NULL;
        g_autoptr (GPtrArray) kv = g_ptr_array_new ();

        if (d == NULL)
          return NULL;
        g_ptr_array_add (kv, k);
        g_ptr_array_add (kv, v);
        if (!set_items (u, d, kv))
          return NULL;
        break;
      }
      case 'u': { /* SETITEMS */
        g_autoptr (GPtrArray) kv = pop_mark (u);
        PVal *d = kv ? top (u) : NULL;

        if (d == NULL || !set_items (u, d, kv))
          return NULL;
        break;
      }
      case 'a': { /* APPEND */
        PVal *v = pop (u), *l = v ? top (u) : NULL;

        if (l == NULL)
          return NULL;
        if (l->kind != PV_LIST) {
          PERR ("corrupt pickle: APPEND to something not a list");
          return NULL;
        }
        g_ptr_array_add (l->items, v);
        break;
      }
      case 'e': { /* APPENDS */
        g_autoptr (GPtrArray) items = pop_mark (u);
        PVal *l = items ? top (u) : NULL;

        if (l == NULL)
          return NULL;
        if (l->kind != PV_LIST) {
          PERR ("corrupt pickle: APPENDS to something not a list");
          return NULL;
        }
        for (guint k = 0; k < items->len; k++)
          g_ptr_array_add (l->items, g_ptr_array_index (items, k));
        break;
      }
      case 'q': /* BINPUT */
        if (!need (u, 1) || !memo_put (u, *u->p++))
          return NULL;
        break;
      case 'r': /* LONG_BINPUT */
        if (!need (u, 4) || !memo_put (u, rd32 (u->p)))
          return NULL;
        u->p += 4;
        break;
      case 0x94: /* MEMOIZE */
        if (!memo_put (u, g_hash_table_size (u->memo)))
          return NULL;
        break;
      case 'h': /* BINGET */
        if (!need (u, 1) || !memo_get (u, *u->p++))
          return NULL;
        break;
      case 'j': /* LONG_BINGET */
        if (!need (u, 4) || !memo_get (u, rd32 (u->p)))
          return NULL;
        u->p += 4;
        break;
      case '0': /* POP */
        if (u->stack->len > floor_height (u)) {
          g_ptr_array_set_size (u->stack, u->stack->len - 1);
        } else if (u->marks->len) {
          g_ptr_array_unref (pop_mark (u));
        } else {
          pop (u);
          return NULL;
        }
        break;
      case '1': { /* POP_MARK */
        g_autoptr (GPtrArray) items = pop_mark (u);

        if (items == NULL)
          return NULL;
        break;
      }
      case '2': { /* DUP */
        PVal *v = top (u);

        if (v == NULL)
          return NULL;
        push (u, v);
        break;
      }
      case 'c': { /* GLOBAL */
        g_autofree char *module = NULL, *name = NULL;
        PVal *g;

        if (!read_line (u, &module) || !read_line (u, &name))
          return NULL;
        g = make_global (u, module, name);
        if (g == NULL)
          return NULL;
        push (u, g);
        break;
      }
      case 0x93: { /* STACK_GLOBAL */
        PVal *name = pop (u), *module = name ? pop (u) : NULL, *g;

        if (module == NULL)
          return NULL;
        if (name->kind != PV_STR || module->kind != PV_STR) {
          PERR ("corrupt pickle: STACK_GLOBAL needs two strings");
          return NULL;
        }
        g = make_global (u, module->s, name->s);
        if (g == NULL)
          return NULL;
        push (u, g);
        break;
      }
      case 'R': { /* REDUCE */
        PVal *args = pop (u), *fn = args ? pop (u) : NULL, *r;

        if (fn == NULL)
          return NULL;
        r = do_reduce (u, fn, args);
        if (r == NULL)
          return NULL;
        push (u, r);
        break;
      }
      case 'Q': { /* BINPERSID */
        PVal *pid = pop (u), *st;

        if (pid == NULL)
          return NULL;
        st = do_persid (u, pid);
        if (st == NULL)
          return NULL;
        push (u, st);
        break;
      }
      case 'b': { /* BUILD: only an OrderedDict's _metadata */
        PVal *state = pop (u), *obj = state ? top (u) : NULL;

        if (obj == NULL)
          return NULL;
        if (obj->kind != PV_DICT && obj->kind != PV_TENSOR) {
          PERR ("corrupt pickle: BUILD on something that is not a dict");
          return NULL;
        }
        break;
      }
      default:
        PERR ("unsupported pickle opcode 0x%02x at byte %" G_GSIZE_FORMAT, op,
              (gsize) (u->p - 1 - u->start));
        return NULL;
    }
  }
  PERR ("pickle truncated: no STOP");
  return NULL;
}

/* ------------------------------------------------------------------ */
/* flattening and storage binding                                      */
/* ------------------------------------------------------------------ */

#define MAX_NESTING 64

typedef struct {
  OviWeightFile *wf;
  GHashTable *zip;
  const char *archive; /* "name/" */
  guint64 visits, max_visits;
  GError **error;
} Flatten;

static gboolean G_GNUC_PRINTF (2, 3)
    flat_error (Flatten *f, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (f->error, OVI_ERROR, OVI_ERROR_FORMAT, "%s: %s", f->wf->path,
               msg);
  return FALSE;
}

static gboolean
bind_tensor (Flatten *f, const char *name, PVal *t)
{
  g_autofree char *entry_name
      = g_strconcat (f->archive, "data/", t->storage_key, NULL);
  ZipEntry *ze = g_hash_table_lookup (f->zip, entry_name);
  gsize esize = ovi_dtype_size (t->dtype);
  guint64 storage_bytes, last = (guint64) t->offset, off_bytes;
  gboolean empty = FALSE;

  if (ze == NULL)
    return flat_error (f,
                       "tensor '%s': storage '%s' is missing from the "
                       "archive",
                       name, entry_name);
  if (!ovi_mul_u64 ((guint64) t->storage_numel, esize, &storage_bytes)
      || storage_bytes > ze->size)
    return flat_error (f,
                       "tensor '%s': storage '%s' holds %" G_GUINT64_FORMAT
                       " bytes, less than its %" G_GINT64_FORMAT " %s elements",
                       name, entry_name, ze->size, t->storage_numel,
                       ovi_dtype_name (t->dtype));
  for (int d = 0; d < t->ndim; d++) {
    guint64 reach;

    if (t->shape[d] == 0) {
      empty = TRUE;
      continue;
    }
    if (!ovi_mul_u64 ((guint64) t->shape[d] - 1, (guint64) t->stride[d], &reach)
        || !ovi_add_u64 (last, reach, &last))
      return flat_error (f, "tensor '%s': size and stride overflow", name);
  }
  if (!empty && last >= (guint64) t->storage_numel)
    return flat_error (f,
                       "tensor '%s' (offset %" G_GINT64_FORMAT
                       ") reaches element %" G_GUINT64_FORMAT
                       " of a storage of %" G_GINT64_FORMAT,
                       name, t->offset, last, t->storage_numel);
  if (empty && (guint64) t->offset > (guint64) t->storage_numel)
    return flat_error (f, "tensor '%s': offset past its storage", name);
  if (!ovi_shape_fits_int64 (t->ndim, t->shape))
    return flat_error (f, "tensor '%s': element count overflows", name);
  off_bytes = ze->offset + (guint64) t->offset * esize;
  return ovi_weight_file_add (f->wf, name, (gsize) off_bytes, t->dtype, t->ndim,
                              t->shape, t->stride, f->error);
}

static gboolean
flatten (Flatten *f, PVal *v, const char *name, int depth)
{
  if (++f->visits > f->max_visits)
    return flat_error (f, "the pickle's structure is too large for its size "
                          "(shared sub-objects repeated)");
  if (depth > MAX_NESTING)
    return flat_error (f,
                       "the pickle nests deeper than %d levels (or is "
                       "cyclic)",
                       MAX_NESTING);
  switch (v->kind) {
    case PV_TENSOR:
      if (name == NULL)
        return TRUE; /* a bare tensor at the top: no name */
      if (!ovi_weights_name_ok (name)) {
        g_autofree char *escaped = g_strescape (name, NULL);
        return flat_error (f, "tensor name '%s' contains control characters",
                           escaped);
      }
      return bind_tensor (f, name, v);
    case PV_DICT:
      for (guint i = 0; i + 1 < v->items->len; i += 2) {
        PVal *k = g_ptr_array_index (v->items, i);
        PVal *val = g_ptr_array_index (v->items, i + 1);
        g_autofree char *key = NULL, *full = NULL;

        if (k->kind == PV_STR)
          key = g_strdup (k->s);
        else if (k->kind == PV_INT)
          key = g_strdup_printf ("%" G_GINT64_FORMAT, k->i);
        else
          continue; /* not a name */
        full = name ? g_strconcat (name, ".", key, NULL) : g_strdup (key);
        if (!flatten (f, val, full, depth + 1))
          return FALSE;
      }
      return TRUE;
    case PV_LIST:
    case PV_TUPLE:
      for (guint i = 0; i < v->items->len; i++) {
        g_autofree char *full = name ? g_strdup_printf ("%s.%u", name, i)
                                     : g_strdup_printf ("%u", i);

        if (!flatten (f, g_ptr_array_index (v->items, i), full, depth + 1))
          return FALSE;
      }
      return TRUE;
    default:
      return TRUE; /* scalars, strings: not weights */
  }
}

gboolean
ovi_pth_parse (OviWeightFile *wf, GError **error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (wf->bytes, &size);
  g_autoptr (GHashTable) zip = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) order = g_ptr_array_new_with_free_func (zip_entry_free);
  g_autofree char *archive = NULL;
  ZipEntry *pkl = NULL, *bo;
  g_autofree char *bo_name = NULL;
  Unpickler u = { 0 };
  PVal *root;
  gboolean ok = FALSE;

  if (!zip_read (data, size, wf->path, zip, order, error))
    return FALSE;
  for (guint i = 0; i < order->len; i++) {
    ZipEntry *e = g_ptr_array_index (order, i);
    const char *slash = strchr (e->name, '/');

    if (slash && strcmp (slash, "/data.pkl") == 0) {
      pkl = e;
      archive = g_strndup (e->name, slash - e->name + 1);
      break;
    }
  }
  if (pkl == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: a zip file without <archive>/data.pkl: not a torch.save "
                 "checkpoint",
                 wf->path);
    return FALSE;
  }
  bo_name = g_strconcat (archive, "byteorder", NULL);
  bo = g_hash_table_lookup (zip, bo_name);
  if (bo && !(bo->size == 6 && memcmp (data + bo->offset, "little", 6) == 0)) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_FORMAT,
                 "%s: the checkpoint is not little-endian; not supported",
                 wf->path);
    return FALSE;
  }

  u.path = wf->path;
  u.start = u.p = data + pkl->offset;
  u.end = u.p + pkl->size;
  u.arena = g_ptr_array_new_with_free_func (pval_free);
  u.stack = g_ptr_array_new ();
  u.marks = g_array_new (FALSE, FALSE, sizeof (guint));
  u.memo = g_hash_table_new (g_direct_hash, g_direct_equal);
  u.error = error;
  root = unpickle (&u);
  if (root) {
    Flatten f = { wf, zip, archive, 0, 0, error };

    f.max_visits = 64 * (guint64) pkl->size + 1024;
    ok = flatten (&f, root, NULL, 0);
  }
  g_hash_table_unref (u.memo);
  g_array_unref (u.marks);
  g_ptr_array_unref (u.stack);
  g_ptr_array_unref (u.arena);
  return ok;
}

/* ------------------------------------------------------------------ */
/* writer                                                              */
/* ------------------------------------------------------------------ */

static guint32 crc_table[256];

static void
crc_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    for (guint32 n = 0; n < 256; n++) {
      guint32 c = n;

      for (int k = 0; k < 8; k++)
        c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      crc_table[n] = c;
    }
    g_once_init_leave (&done, 1);
  }
}

static guint32
crc_update (guint32 crc, const guint8 *p, gsize n)
{
  crc = ~crc;
  for (gsize i = 0; i < n; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static void
put16 (GByteArray *b, guint v)
{
  guint8 x[2] = { v & 0xff, (v >> 8) & 0xff };
  g_byte_array_append (b, x, 2);
}

static void
put32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  g_byte_array_append (b, x, 4);
}

static void
put64 (GByteArray *b, guint64 v)
{
  put32 (b, (guint32) v);
  put32 (b, (guint32) (v >> 32));
}

/* pickle helpers (protocol 2) */
static void
pk_op (GByteArray *b, guint8 op)
{
  g_byte_array_append (b, &op, 1);
}

static void
pk_str (GByteArray *b, const char *s)
{
  gsize n = strlen (s);

  pk_op (b, 'X');
  put32 (b, (guint32) n);
  g_byte_array_append (b, (const guint8 *) s, (guint) n);
}

static void
pk_int (GByteArray *b, gint64 v)
{
  if (v >= 0 && v < 256) {
    pk_op (b, 'K');
    pk_op (b, (guint8) v);
  } else if (v >= 0 && v < 65536) {
    pk_op (b, 'M');
    put16 (b, (guint) v);
  } else if (v >= G_MININT32 && v <= G_MAXINT32) {
    pk_op (b, 'J');
    put32 (b, (guint32) (gint32) v);
  } else {
    pk_op (b, 0x8a);
    pk_op (b, 8);
    put64 (b, (guint64) v);
  }
}

static void
pk_global (GByteArray *b, const char *module, const char *name)
{
  pk_op (b, 'c');
  g_byte_array_append (b, (const guint8 *) module, (guint) strlen (module));
  pk_op (b, '\n');
  g_byte_array_append (b, (const guint8 *) name, (guint) strlen (name));
  pk_op (b, '\n');
}

static void
pk_int_tuple (GByteArray *b, int n, const int64_t *v)
{
  pk_op (b, '(');
  for (int i = 0; i < n; i++)
    pk_int (b, v[i]);
  pk_op (b, 't');
}

static void
pk_ordered_dict (GByteArray *b)
{
  pk_global (b, "collections", "OrderedDict");
  pk_op (b, ')');
  pk_op (b, 'R');
}

static const char *
storage_name (OviDType dtype)
{
  for (gsize i = 0; i < G_N_ELEMENTS (storage_types); i++)
    if (storage_types[i].dtype == dtype)
      return storage_types[i].name;
  return NULL;
}

typedef struct {
  FILE *fp;
  const char *path;
  guint64 pos;
  GByteArray *central;
  guint n_entries;
  gboolean zip64;
  gboolean force_zip64; /* tests: zip64 records as for files over 4 GiB */
  GError **error;
} ZipWriter;

static gboolean
zw_write (ZipWriter *z, const void *p, gsize n)
{
  if (n && fwrite (p, 1, n, z->fp) != n) {
    g_set_error (z->error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s",
                 z->path, g_strerror (errno));
    return FALSE;
  }
  z->pos += n;
  return TRUE;
}

/* a local header whose data starts on a 64-byte boundary, as torch writes */
static gboolean
zw_begin (ZipWriter *z, const char *name, guint64 size, guint32 crc)
{
  g_autoptr (GByteArray) h = g_byte_array_new ();
  gsize nlen = strlen (name);
  guint64 lho = z->pos;
  gboolean big = z->force_zip64 || size >= 0xffffffffu || lho >= 0xffffffffu;
  guint extra_fixed = big ? 20 : 0;
  guint pad = (guint) ((64 - (lho + 30 + nlen + extra_fixed + 4) % 64) % 64);

  put32 (h, 0x04034b50);
  put16 (h, big ? 45 : 20);
  put16 (h, 0);
  put16 (h, 0); /* stored */
  put16 (h, 0);
  put16 (h, 0x21); /* 1980-01-01 */
  put32 (h, crc);
  put32 (h, big ? 0xffffffffu : (guint32) size);
  put32 (h, big ? 0xffffffffu : (guint32) size);
  put16 (h, (guint) nlen);
  put16 (h, extra_fixed + 4 + pad);
  g_byte_array_append (h, (const guint8 *) name, (guint) nlen);
  if (big) {
    put16 (h, 0x0001);
    put16 (h, 16);
    put64 (h, size);
    put64 (h, size);
  }
  put16 (h, 0x4246); /* "FB": torch's alignment padding */
  put16 (h, pad);
  for (guint i = 0; i < pad; i++)
    pk_op (h, 'Z');

  /* the central directory record */
  {
    GByteArray *c = z->central;
    gboolean cbig = big;

    put32 (c, 0x02014b50);
    put16 (c, cbig ? 45 : 20);
    put16 (c, cbig ? 45 : 20);
    put16 (c, 0);
    put16 (c, 0);
    put16 (c, 0);
    put16 (c, 0x21);
    put32 (c, crc);
    put32 (c, cbig ? 0xffffffffu : (guint32) size);
    put32 (c, cbig ? 0xffffffffu : (guint32) size);
    put16 (c, (guint) nlen);
    put16 (c, cbig ? 28 : 0);
    put16 (c, 0);
    put16 (c, 0);
    put16 (c, 0);
    put32 (c, 0);
    put32 (c, cbig ? 0xffffffffu : (guint32) lho);
    g_byte_array_append (c, (const guint8 *) name, (guint) nlen);
    if (cbig) {
      put16 (c, 0x0001);
      put16 (c, 24);
      put64 (c, size);
      put64 (c, size);
      put64 (c, lho);
      z->zip64 = TRUE;
    }
  }
  z->n_entries++;
  return zw_write (z, h->data, h->len);
}

static gboolean
zw_finish (ZipWriter *z)
{
  g_autoptr (GByteArray) e = g_byte_array_new ();
  guint64 cd_offset = z->pos, cd_size = z->central->len;

  if (!zw_write (z, z->central->data, z->central->len))
    return FALSE;
  if (z->zip64 || cd_offset >= 0xffffffffu || z->n_entries >= 0xffff) {
    guint64 rec = z->pos;

    put32 (e, 0x06064b50);
    put64 (e, 44);
    put16 (e, 45);
    put16 (e, 45);
    put32 (e, 0);
    put32 (e, 0);
    put64 (e, z->n_entries);
    put64 (e, z->n_entries);
    put64 (e, cd_size);
    put64 (e, cd_offset);
    put32 (e, 0x07064b50);
    put32 (e, 0);
    put64 (e, rec);
    put32 (e, 1);
    put32 (e, 0x06054b50);
    put16 (e, 0);
    put16 (e, 0);
    put16 (e, 0xffff);
    put16 (e, 0xffff);
    put32 (e, 0xffffffffu);
    put32 (e, 0xffffffffu);
    put16 (e, 0);
  } else {
    put32 (e, 0x06054b50);
    put16 (e, 0);
    put16 (e, 0);
    put16 (e, z->n_entries);
    put16 (e, z->n_entries);
    put32 (e, (guint32) cd_size);
    put32 (e, (guint32) cd_offset);
    put16 (e, 0);
  }
  return zw_write (z, e->data, e->len);
}

static gboolean
zw_entry_bytes (ZipWriter *z, const char *name, const guint8 *p, gsize n)
{
  return zw_begin (z, name, n, crc_update (0, p, n)) && zw_write (z, p, n);
}

/* a host tensor's elements in row-major order, contiguous */
static GBytes *
contiguous_bytes (const OviTensor *t)
{
  gsize esize = ovi_dtype_size (t->dtype);
  int64_t n = ovi_tensor_numel (t);
  int64_t index[OVI_MAX_DIMS] = { 0 };
  const guint8 *base = ovi_tensor_data (t);
  guint8 *out, *q;

  if (ovi_tensor_is_contiguous (t))
    return g_bytes_new_static (base, (gsize) n * esize);
  out = q = g_malloc ((gsize) MAX (n, 1) * esize);
  for (int64_t i = 0; i < n; i++) {
    int64_t off = 0;

    for (int d = 0; d < t->ndim; d++)
      off += index[d] * t->stride[d];
    memcpy (q, base + off * (int64_t) esize, esize);
    q += esize;
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++index[d] < t->shape[d])
        break;
      index[d] = 0;
    }
  }
  return g_bytes_new_take (out, (gsize) n * esize);
}

gboolean
ovi_pth_write (const char *path, const OviNamedTensor *tensors, guint n_tensors,
               const char *nest_under, GError **error)
{
  g_autoptr (GByteArray) pkl = g_byte_array_new ();
  g_autoptr (GByteArray) central = g_byte_array_new ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  ZipWriter z = { 0 };
  gboolean ok = FALSE;

  crc_init ();
  for (guint i = 0; i < n_tensors; i++) {
    const OviTensor *t = tensors[i].tensor;

    if (tensors[i].name == NULL || t == NULL) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "%s: tensor %u has no name or no tensor", path, i);
      return FALSE;
    }
    if (!ovi_weights_check_writable (path, &tensors[i], seen, error))
      return FALSE;
    if (storage_name (t->dtype) == NULL) {
      g_set_error (error, OVI_ERROR, OVI_ERROR_INVALID_ARGUMENT,
                   "%s: tensor '%s': dtype %s has no torch storage type", path,
                   tensors[i].name, ovi_dtype_name (t->dtype));
      return FALSE;
    }
  }

  /* the pickle */
  pk_op (pkl, 0x80);
  pk_op (pkl, 2);
  if (nest_under) {
    pk_op (pkl, '}');
    pk_str (pkl, nest_under);
  }
  pk_ordered_dict (pkl);
  if (n_tensors > 0) {
    pk_op (pkl, '(');
    for (guint i = 0; i < n_tensors; i++) {
      const OviTensor *t = tensors[i].tensor;
      char key[16];
      int64_t stride[OVI_MAX_DIMS];

      g_snprintf (key, sizeof (key), "%u", i);
      ovi_contiguous_strides (t->ndim, t->shape, stride);
      pk_str (pkl, tensors[i].name);
      pk_global (pkl, "torch._utils", "_rebuild_tensor_v2");
      pk_op (pkl, '(');
      pk_op (pkl, '(');
      pk_str (pkl, "storage");
      pk_global (pkl, "torch", storage_name (t->dtype));
      pk_str (pkl, key);
      pk_str (pkl, "cpu");
      pk_int (pkl, ovi_tensor_numel (t));
      pk_op (pkl, 't');
      pk_op (pkl, 'Q');
      pk_int (pkl, 0);
      pk_int_tuple (pkl, t->ndim, t->shape);
      pk_int_tuple (pkl, t->ndim, stride);
      pk_op (pkl, 0x89);
      pk_ordered_dict (pkl);
      pk_op (pkl, 't');
      pk_op (pkl, 'R');
    }
    pk_op (pkl, 'u');
  }
  if (nest_under)
    pk_op (pkl, 's');
  pk_op (pkl, '.');

  z.path = path;
  z.central = central;
  z.force_zip64 = g_getenv ("OVI_PTH_FORCE_ZIP64") != NULL;
  z.error = error;
  z.fp = fopen (path, "wb");
  if (z.fp == NULL) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: cannot create: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  if (!zw_entry_bytes (&z, "archive/data.pkl", pkl->data, pkl->len))
    goto out;
  for (guint i = 0; i < n_tensors; i++) {
    g_autoptr (GBytes) b = contiguous_bytes (tensors[i].tensor);
    g_autofree char *name = g_strdup_printf ("archive/data/%u", i);
    gsize n;
    const guint8 *p = g_bytes_get_data (b, &n);

    if (!zw_entry_bytes (&z, name, p, n))
      goto out;
  }
  if (!zw_entry_bytes (&z, "archive/version", (const guint8 *) "3\n", 2)
      || !zw_finish (&z))
    goto out;
  ok = TRUE;
out:
  if (fclose (z.fp) != 0 && ok) {
    g_set_error (error, OVI_ERROR, OVI_ERROR_IO, "%s: write failed: %s", path,
                 g_strerror (errno));
    ok = FALSE;
  }
  return ok;
}
