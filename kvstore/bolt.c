/* bolt.c — etcd 3.4's snapshot format: a bbolt database holding etcd's buckets. Writes one
 * from a single LMDB read transaction of the store, streaming pages bottom-up; reads one
 * (status, and import into a new store) trusting no byte of it before checking it against
 * the file's size. Never changes a live store: an import only fills a store it created.
 *
 * bbolt's layout, as this file writes and expects it (native little-endian integers):
 *   page    header: id u64, flags u16, count u16, overflow u32 (pages that follow it);
 *           pages 0 and 1 hold the two meta records, the one with the higher txid wins.
 *   meta    magic, version, page size, flags (u32 each); root bucket (root page u64,
 *           sequence u64); freelist page, high-water mark, txid, FNV-1a-64 checksum of
 *           the 56 bytes before it (u64 each).
 *   branch  elements {pos u32, ksize u32, child page u64}: pos counts from the element,
 *           the key is the first key of the child.
 *   leaf    elements {flags u32, pos u32, ksize u32, vsize u32}, then keys and values.
 *   bucket  a leaf value flagged 1: {root page u64, sequence u64}; root 0 means the
 *           bucket's one leaf page follows inline in the value.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_int.h"
#include "lease.pb-c.h"

#define BOLT_PAGE 4096u                   /* the page size Keel writes */
#define BOLT_HDR 16u                      /* page header */
#define BOLT_ELEM 16u                     /* leaf and branch element */
#define BOLT_META 64u                     /* meta record, checksum included */
#define BOLT_BUCKET_HDR 16u               /* bucket value: root, sequence */
#define BOLT_MAGIC 0xED0CDAEDu
#define BOLT_VERSION 2u
#define BOLT_F_BRANCH 0x01u
#define BOLT_F_LEAF 0x02u
#define BOLT_F_META 0x04u
#define BOLT_F_FREELIST 0x10u
#define BOLT_E_BUCKET 0x01u               /* leaf element flag: the value is a bucket */
#define BOLT_NO_FREELIST UINT64_MAX
/* Pages are filled to 90%, as etcd's defragmentation and sequential writes fill them: a
 * snapshot restored by etcd then takes new revisions without splitting every page. */
#define BOLT_FILL (BOLT_PAGE * 9 / 10)
#define BOLT_INLINE_MAX (BOLT_PAGE / 4)   /* bbolt inlines buckets up to a quarter page */
#define BOLT_LEVELS 32                    /* tree height; far above what 2^64 pages need */
#define BOLT_NEST 8                       /* buckets within buckets (etcd has none) */
#define BOLT_WBUF (1u << 20)
#define BOLT_REV_LEN 17                   /* etcd's revision key: main '_' sub */
/* An import commits every so many revisions, so one LMDB transaction stays small. */
#define BOLT_BATCH_RECS 20000
#define BOLT_BATCH_BYTES (64u << 20)

/* ---- little-endian fields ------------------------------------------------------------ */

static void le16_put(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t le16_get(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64_get(const uint8_t *p)
{
	return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}

static uint64_t bolt_fnv64a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static int bolt_fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bolt_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* A growable byte buffer. */
static int bolt_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return KV_OK;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	uint8_t *p = realloc(*buf, c);
	if (!p)
		return KV_ERR_NOMEM;
	*buf = p;
	*cap = c;
	return KV_OK;
}

/* ======================================================================================
 * Writer
 * ====================================================================================== */

/* One element of a node being filled: its bytes live in the node's data. */
typedef struct bw_item {
	uint32_t flags, ksize, vsize;
	uint64_t child;              /* branch: the child page */
	size_t off;                  /* key (then value) in data */
} bw_item_t;

/* The page being filled at one level of a tree. */
typedef struct bw_node {
	bw_item_t *items;
	size_t n, cap;
	uint8_t *data;
	size_t dlen, dcap;
	uint64_t pages;              /* pages this level has written */
} bw_node_t;

/* A bucket's tree built bottom-up: level 0 takes the sorted entries; each full page is
 * written at once and its first key goes up a level, so memory holds one page per level. */
typedef struct bw_tree {
	bw_node_t lvl[BOLT_LEVELS];
	bool has_bucket;             /* some entry is a bucket: never inline */
} bw_tree_t;

typedef struct bw {
	int fd;
	const char *path;
	uint64_t next;               /* id of the next page to write */
	uint8_t *wbuf;               /* pages not yet written, from page wfrom */
	size_t wlen;
	uint64_t wfrom;
	uint8_t *page;               /* scratch: one node encoded */
	size_t page_cap;
	uint8_t *val;                /* scratch: one packed value */
	size_t val_cap;
	char *err;
	size_t errlen;
} bw_t;

static size_t bw_node_size(const bw_node_t *nd)
{
	return BOLT_HDR + nd->n * BOLT_ELEM + nd->dlen;
}

static int bw_node_add(bw_node_t *nd, uint32_t flags, const uint8_t *k, size_t klen,
		       const uint8_t *v, size_t vlen, uint64_t child)
{
	if (nd->n == nd->cap) {
		size_t cap = nd->cap ? nd->cap * 2 : 64;
		bw_item_t *p = realloc(nd->items, cap * sizeof(*p));
		if (!p)
			return KV_ERR_NOMEM;
		nd->items = p;
		nd->cap = cap;
	}
	if (bolt_reserve(&nd->data, &nd->dcap, nd->dlen + klen + vlen) != KV_OK)
		return KV_ERR_NOMEM;
	nd->items[nd->n++] = (bw_item_t){ .flags = flags, .ksize = (uint32_t)klen,
					  .vsize = (uint32_t)vlen, .child = child,
					  .off = nd->dlen };
	memcpy(nd->data + nd->dlen, k, klen);
	if (vlen)
		memcpy(nd->data + nd->dlen + klen, v, vlen);
	nd->dlen += klen + vlen;
	return KV_OK;
}

/* Encodes nd into p (zeroed, at least bw_node_size bytes) as page id. */
static void bw_node_encode(const bw_node_t *nd, bool leaf, uint8_t *p, uint64_t id,
			   uint32_t overflow)
{
	le64_put(p, id);
	le16_put(p + 8, leaf ? BOLT_F_LEAF : BOLT_F_BRANCH);
	le16_put(p + 10, (uint16_t)nd->n);
	le32_put(p + 12, overflow);
	size_t data = BOLT_HDR + nd->n * BOLT_ELEM;
	for (size_t i = 0; i < nd->n; i++) {
		const bw_item_t *it = &nd->items[i];
		uint8_t *e = p + BOLT_HDR + i * BOLT_ELEM;
		uint32_t pos = (uint32_t)(data - (BOLT_HDR + i * BOLT_ELEM));
		if (leaf) {
			le32_put(e, it->flags);
			le32_put(e + 4, pos);
			le32_put(e + 8, it->ksize);
			le32_put(e + 12, it->vsize);
		} else {
			le32_put(e, pos);
			le32_put(e + 4, it->ksize);
			le64_put(e + 8, it->child);
		}
		memcpy(p + data, nd->data + it->off, (size_t)it->ksize + it->vsize);
		data += (size_t)it->ksize + it->vsize;
	}
}

static int bw_write_out(bw_t *bw)
{
	size_t off = 0;
	while (off < bw->wlen) {
		ssize_t w = pwrite(bw->fd, bw->wbuf + off, bw->wlen - off,
				   (off_t)(bw->wfrom * BOLT_PAGE + off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return bolt_fail(bw->err, bw->errlen, KV_ERR_IO, "%s: write: %s", bw->path,
					 w < 0 ? strerror(errno) : "no progress");
		off += (size_t)w;
	}
	bw->wfrom += bw->wlen / BOLT_PAGE;
	bw->wlen = 0;
	return KV_OK;
}

/* Appends whole pages at bw->next (pages are written in id order, with no gaps). */
static int bw_write_pages(bw_t *bw, const uint8_t *p, uint64_t npages)
{
	size_t len = (size_t)npages * BOLT_PAGE;
	if (bw->wlen + len > BOLT_WBUF) {
		int rc = bw_write_out(bw);
		if (rc != KV_OK)
			return rc;
	}
	if (len > BOLT_WBUF) {
		uint8_t *save = bw->wbuf;
		bw->wbuf = (uint8_t *)p;
		bw->wlen = len;
		int rc = bw_write_out(bw);
		bw->wbuf = save;
		bw->next += npages;
		return rc;
	}
	memcpy(bw->wbuf + bw->wlen, p, len);
	bw->wlen += len;
	bw->next += npages;
	return KV_OK;
}

/* Writes nd as the next page(s); returns the first page's id. */
static int bw_node_write(bw_t *bw, const bw_node_t *nd, bool leaf, uint64_t *id)
{
	size_t size = bw_node_size(nd);
	uint64_t npages = (size + BOLT_PAGE - 1) / BOLT_PAGE;
	if (npages == 0)
		npages = 1;
	if (nd->n >= 0xFFFF || npages - 1 > UINT32_MAX)
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT, "%s: a page of %zu entries",
				 bw->path, nd->n);
	if (bolt_reserve(&bw->page, &bw->page_cap, (size_t)npages * BOLT_PAGE) != KV_OK)
		return KV_ERR_NOMEM;
	memset(bw->page, 0, (size_t)npages * BOLT_PAGE);
	*id = bw->next;
	bw_node_encode(nd, leaf, bw->page, *id, (uint32_t)(npages - 1));
	return bw_write_pages(bw, bw->page, npages);
}

static int bw_tree_add(bw_t *bw, bw_tree_t *t, int level, uint32_t flags, const uint8_t *k,
		       size_t klen, const uint8_t *v, size_t vlen, uint64_t child);

/* The node of level is full (or the tree ends): it becomes a page, its first key goes up. */
static int bw_tree_flush(bw_t *bw, bw_tree_t *t, int level)
{
	bw_node_t *nd = &t->lvl[level];
	uint64_t id;
	int rc = bw_node_write(bw, nd, level == 0, &id);
	if (rc != KV_OK)
		return rc;
	nd->pages++;
	rc = bw_tree_add(bw, t, level + 1, 0, nd->data + nd->items[0].off, nd->items[0].ksize,
			 NULL, 0, id);
	nd->n = 0;
	nd->dlen = 0;
	return rc;
}

static int bw_tree_add(bw_t *bw, bw_tree_t *t, int level, uint32_t flags, const uint8_t *k,
		       size_t klen, const uint8_t *v, size_t vlen, uint64_t child)
{
	if (level >= BOLT_LEVELS)
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT, "%s: tree deeper than %d",
				 bw->path, BOLT_LEVELS);
	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT, "%s: an entry of %zu bytes",
				 bw->path, klen + vlen);
	bw_node_t *nd = &t->lvl[level];
	/* A branch keeps two children at least, so every level up has fewer pages even when
	 * keys are large; a leaf may hold one large value alone, in overflow pages. */
	size_t min = level == 0 ? 1 : 2;
	if (nd->n >= min && bw_node_size(nd) + BOLT_ELEM + klen + vlen > BOLT_FILL) {
		int rc = bw_tree_flush(bw, t, level);
		if (rc != KV_OK)
			return rc;
	}
	if (flags & BOLT_E_BUCKET)
		t->has_bucket = true;
	return bw_node_add(nd, flags, k, klen, v, vlen, child);
}

static int bw_leaf_add(bw_t *bw, bw_tree_t *t, const uint8_t *k, size_t klen, const uint8_t *v,
		       size_t vlen)
{
	return bw_tree_add(bw, t, 0, 0, k, klen, v, vlen, 0);
}

/* Ends a tree: *root is its root page, or 0 with the inline page in bw->page[0..*inl_len)
 * when the tree is one small leaf and may_inline. */
static int bw_tree_finish(bw_t *bw, bw_tree_t *t, bool may_inline, uint64_t *root,
			  size_t *inl_len)
{
	bw_node_t *leaf = &t->lvl[0];
	*inl_len = 0;
	if (may_inline && leaf->pages == 0 && !t->has_bucket &&
	    bw_node_size(leaf) <= BOLT_INLINE_MAX) {
		size_t size = bw_node_size(leaf);
		if (bolt_reserve(&bw->page, &bw->page_cap, size) != KV_OK)
			return KV_ERR_NOMEM;
		memset(bw->page, 0, size);
		bw_node_encode(leaf, true, bw->page, 0, 0);
		*root = 0;
		*inl_len = size;
		return KV_OK;
	}
	if (leaf->pages == 0 && leaf->n == 0)
		return bw_node_write(bw, leaf, true, root); /* an empty tree of its own page */
	for (int l = 0; l < BOLT_LEVELS; l++) {
		bw_node_t *nd = &t->lvl[l];
		if (l > 0 && nd->pages == 0 && nd->n == 1) {
			*root = nd->items[0].child;
			return KV_OK;
		}
		if (nd->n) {
			int rc = bw_tree_flush(bw, t, l);
			if (rc != KV_OK)
				return rc;
		}
	}
	return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT, "%s: tree deeper than %d", bw->path,
			 BOLT_LEVELS);
}

static void bw_tree_free(bw_tree_t *t)
{
	for (int l = 0; l < BOLT_LEVELS; l++) {
		free(t->lvl[l].items);
		free(t->lvl[l].data);
	}
}

/* ---- the store's side: what each bucket holds ------------------------------------------ */

typedef struct bw_src {
	kv_t *kv;
	MDB_txn *txn;
	uint64_t cindex, compact, compact_sched;
} bw_src_t;

static int bw_mdb_fail(bw_t *bw, int rc, const char *what)
{
	return bolt_fail(bw->err, bw->errlen, rc == ENOMEM ? KV_ERR_NOMEM : KV_ERR_IO,
			 "%s: reading the store: %s: %s", bw->path, what, mdb_strerror(rc));
}

static int bw_meta_u64(bw_t *bw, bw_src_t *src, const char *name, uint64_t *out)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc = mdb_get(src->txn, src->kv->dbi_meta, &k, &v);
	*out = 0;
	if (rc == MDB_NOTFOUND)
		return KV_OK;
	if (rc != MDB_SUCCESS)
		return bw_mdb_fail(bw, rc, name);
	if (v.mv_size != 8)
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
				 "%s: the store's meta value %s has %zu bytes", bw->path, name,
				 v.mv_size);
	*out = kv_get_be64(v.mv_data);
	return KV_OK;
}

/* etcd's revision key: main, '_', sub; 't' after it marks a delete. */
static size_t bolt_rev_key(uint8_t *out, uint64_t main, uint64_t sub, bool tombstone)
{
	kv_put_be64(out, main);
	out[8] = '_';
	kv_put_be64(out + 9, sub);
	if (!tombstone)
		return BOLT_REV_LEN;
	out[BOLT_REV_LEN] = 't';
	return BOLT_REV_LEN + 1;
}

static int bw_pack(bw_t *bw, const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	if (bolt_reserve(&bw->val, &bw->val_cap, *len ? *len : 1) != KV_OK)
		return KV_ERR_NOMEM;
	protobuf_c_message_pack(m, bw->val);
	return KV_OK;
}

/* Streams an LMDB database through fn, in key order. */
typedef int (*bw_rec_fn)(bw_t *bw, bw_tree_t *t, const MDB_val *k, const MDB_val *v);

static int bw_scan(bw_t *bw, bw_tree_t *t, bw_src_t *src, MDB_dbi dbi, const char *what,
		   bw_rec_fn fn)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(src->txn, dbi, &cur);
	if (rc != MDB_SUCCESS)
		return bw_mdb_fail(bw, rc, what);
	MDB_val k, v;
	int err = KV_OK;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && err == KV_OK;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		err = fn(bw, t, &k, &v);
	mdb_cursor_close(cur);
	if (err == KV_OK && rc != MDB_NOTFOUND)
		err = bw_mdb_fail(bw, rc, what);
	return err;
}

static int bw_rec_key(bw_t *bw, bw_tree_t *t, const MDB_val *k, const MDB_val *v)
{
	kv_rec_hdr_t h;
	if (k->mv_size != 16 || v->mv_size < sizeof(h))
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
				 "%s: the store has a revision record of %zu+%zu bytes", bw->path,
				 k->mv_size, v->mv_size);
	memcpy(&h, v->mv_data, sizeof(h));
	if (h.type > KV_REC_DEL || h.key_len > v->mv_size - sizeof(h))
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
				 "%s: the store has a revision record of type %u, key %u bytes",
				 bw->path, h.type, h.key_len);
	const uint8_t *key = (const uint8_t *)v->mv_data + sizeof(h);
	Mvccpb__KeyValue m = MVCCPB__KEY_VALUE__INIT;
	m.key.data = (uint8_t *)key;
	m.key.len = h.key_len;
	bool del = h.type == KV_REC_DEL;
	if (!del) {
		m.create_revision = h.create_revision;
		m.mod_revision = h.mod_revision;
		m.version = h.version;
		m.lease = h.lease;
		m.value.data = (uint8_t *)key + h.key_len;
		m.value.len = v->mv_size - sizeof(h) - h.key_len;
	}
	uint8_t rk[BOLT_REV_LEN + 1];
	size_t rlen = bolt_rev_key(rk, kv_get_be64(k->mv_data),
				   kv_get_be64((const uint8_t *)k->mv_data + 8), del);
	size_t vlen;
	int rc = bw_pack(bw, &m.base, &vlen);
	return rc ? rc : bw_leaf_add(bw, t, rk, rlen, bw->val, vlen);
}

static int bw_rec_lease(bw_t *bw, bw_tree_t *t, const MDB_val *k, const MDB_val *v)
{
	kv_lease_rec_t rec;
	if (k->mv_size != 8 || v->mv_size != sizeof(rec))
		return bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
				 "%s: the store has a lease record of %zu+%zu bytes", bw->path,
				 k->mv_size, v->mv_size);
	memcpy(&rec, v->mv_data, sizeof(rec));
	Leasepb__Lease m = LEASEPB__LEASE__INIT;
	m.id = (int64_t)kv_get_be64(k->mv_data);
	m.ttl = rec.ttl;
	/* etcd checkpoints whole seconds: round up, so the lease never ends earlier. */
	m.remainingttl = rec.remaining_ms > 0 ? (rec.remaining_ms + 999) / 1000 : 0;
	size_t vlen;
	int rc = bw_pack(bw, &m.base, &vlen);
	return rc ? rc : bw_leaf_add(bw, t, k->mv_data, 8, bw->val, vlen);
}

typedef int (*bw_fill_fn)(bw_t *bw, bw_tree_t *t, bw_src_t *src);

static int bw_fill_key(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	return bw_scan(bw, t, src, src->kv->dbi_rev, "rev", bw_rec_key);
}

static int bw_fill_lease(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	return bw_scan(bw, t, src, src->kv->dbi_lease, "lease", bw_rec_lease);
}

static int bw_add_str(bw_t *bw, bw_tree_t *t, const char *k, const void *v, size_t vlen)
{
	return bw_leaf_add(bw, t, (const uint8_t *)k, strlen(k), v, vlen);
}

/* Keys in byte order, as every bucket needs them. */
static int bw_fill_meta(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	uint8_t ci[8], fin[BOLT_REV_LEN], sched[BOLT_REV_LEN];
	kv_put_be64(ci, src->cindex);
	bolt_rev_key(fin, src->compact, 0, false);
	bolt_rev_key(sched, src->compact_sched, 0, false);
	int rc = bw_add_str(bw, t, "consistent_index", ci, 8);
	if (rc == KV_OK && src->compact)
		rc = bw_add_str(bw, t, "finishedCompactRev", fin, sizeof(fin));
	if (rc == KV_OK && src->compact_sched)
		rc = bw_add_str(bw, t, "scheduledCompactRev", sched, sizeof(sched));
	return rc;
}

/* etcd keys an alarm by its packed AlarmMember (no value): gathered and sorted by those
 * bytes, as bbolt needs. There are a few at most (one per member and type). */
typedef struct bw_alarm {
	uint8_t b[32];               /* two varint fields: 22 bytes at most */
	size_t len;
} bw_alarm_t;

static int bw_alarm_cmp(const void *a, const void *b)
{
	const bw_alarm_t *x = a, *y = b;
	return kv_key_cmp(x->b, x->len, y->b, y->len);
}

static int bw_fill_alarm(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	MDB_stat ms;
	int rc = mdb_stat(src->txn, src->kv->dbi_alarm, &ms);
	if (rc != MDB_SUCCESS)
		return bw_mdb_fail(bw, rc, "alarm");
	bw_alarm_t *al = calloc(ms.ms_entries + 1, sizeof(*al));
	size_t n = 0;
	MDB_cursor *cur = NULL;
	int err = al ? KV_OK : KV_ERR_NOMEM;
	if (!err && (rc = mdb_cursor_open(src->txn, src->kv->dbi_alarm, &cur)) != MDB_SUCCESS)
		err = bw_mdb_fail(bw, rc, "alarm");
	MDB_val k, v;
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == MDB_SUCCESS && !err && n < ms.ms_entries;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 12) {
			err = bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
					"%s: the store has an alarm key of %zu bytes", bw->path,
					k.mv_size);
			break;
		}
		const uint8_t *kb = k.mv_data;
		Etcdserverpb__AlarmMember m = ETCDSERVERPB__ALARM_MEMBER__INIT;
		m.memberid = kv_get_be64(kb);
		m.alarm = (Etcdserverpb__AlarmType)((uint32_t)kb[8] << 24 | (uint32_t)kb[9] << 16 |
						    (uint32_t)kb[10] << 8 | kb[11]);
		al[n].len = protobuf_c_message_pack(&m.base, al[n].b);
		n++;
	}
	if (cur)
		mdb_cursor_close(cur);
	if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = bw_mdb_fail(bw, rc, "alarm");
	if (!err && n)
		qsort(al, n, sizeof(*al), bw_alarm_cmp);
	for (size_t i = 0; !err && i < n; i++)
		err = bw_leaf_add(bw, t, al[i].b, al[i].len, NULL, 0);
	free(al);
	return err;
}

/* ---- members, as etcd's backend keeps them ------------------------------------------ */

/* etcd keys a member by its id in hex without padding and stores it as Go's JSON of its
 * Member struct; a removed id maps to "removed". */
typedef struct bw_member {
	char key[17];
	char *json;                  /* NULL for a removed id */
} bw_member_t;

static int bw_member_cmp(const void *a, const void *b)
{
	return strcmp(((const bw_member_t *)a)->key, ((const bw_member_t *)b)->key);
}

/* Appends s as a JSON string the way Go's encoding/json writes it (<, > and & escaped). */
static void bw_json_str(char *out, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	out[(*n)++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			out[(*n)++] = '\\';
			out[(*n)++] = (char)*p;
		} else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
			*n += (size_t)sprintf(out + *n, "\\u00%c%c", hex[*p >> 4], hex[*p & 15]);
		} else {
			out[(*n)++] = (char)*p;
		}
	}
	out[(*n)++] = '"';
}

/* {"id":..,"peerURLs":[..],"isLearner":true,"name":".."}: the fields etcd writes, in its
 * order, empty ones left out as its omitempty tags say. */
static char *bw_member_json(const Etcdserverpb__Member *m)
{
	size_t cap = 128 + (m->name ? 6 * strlen(m->name) : 0);
	for (size_t i = 0; i < m->n_peerurls; i++)
		cap += 6 * strlen(m->peerurls[i]) + 4;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = (size_t)sprintf(out, "{\"id\":%llu,\"peerURLs\":[", (unsigned long long)m->id);
	for (size_t i = 0; i < m->n_peerurls; i++) {
		if (i)
			out[n++] = ',';
		bw_json_str(out, &n, m->peerurls[i]);
	}
	out[n++] = ']';
	if (m->islearner)
		n += (size_t)sprintf(out + n, ",\"isLearner\":true");
	if (m->name && *m->name) {
		n += (size_t)sprintf(out + n, ",\"name\":");
		bw_json_str(out, &n, m->name);
	}
	out[n++] = '}';
	out[n] = 0;
	return out;
}

/* The members (tag 'm') or removed ids (tag 'r') of Keel's "members" db, sorted by key. */
static int bw_fill_member_tag(bw_t *bw, bw_tree_t *t, bw_src_t *src, uint8_t tag)
{
	MDB_stat ms;
	int rc = mdb_stat(src->txn, src->kv->dbi_members, &ms);
	if (rc != MDB_SUCCESS)
		return bw_mdb_fail(bw, rc, "members");
	bw_member_t *mb = calloc(ms.ms_entries + 1, sizeof(*mb));
	size_t n = 0;
	MDB_cursor *cur = NULL;
	int err = mb ? KV_OK : KV_ERR_NOMEM;
	if (!err && (rc = mdb_cursor_open(src->txn, src->kv->dbi_members, &cur)) != MDB_SUCCESS)
		err = bw_mdb_fail(bw, rc, "members");
	MDB_val k, v;
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == MDB_SUCCESS && !err && n < ms.ms_entries;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 9 || ((const uint8_t *)k.mv_data)[0] != tag)
			continue;
		uint64_t id = kv_get_be64((const uint8_t *)k.mv_data + 1);
		snprintf(mb[n].key, sizeof(mb[n].key), "%llx", (unsigned long long)id);
		if (tag == 'm') {
			Etcdserverpb__Member *m = etcdserverpb__member__unpack(NULL, v.mv_size,
									       v.mv_data);
			if (!m) {
				err = bolt_fail(bw->err, bw->errlen, KV_ERR_CORRUPT,
						"%s: the store's member %llx does not decode",
						bw->path, (unsigned long long)id);
				break;
			}
			mb[n].json = bw_member_json(m);
			etcdserverpb__member__free_unpacked(m, NULL);
			if (!mb[n].json) {
				err = KV_ERR_NOMEM;
				break;
			}
		}
		n++;
	}
	if (cur)
		mdb_cursor_close(cur);
	if (!err && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = bw_mdb_fail(bw, rc, "members");
	if (!err && n)
		qsort(mb, n, sizeof(*mb), bw_member_cmp);
	for (size_t i = 0; !err && i < n; i++) {
		const char *val = mb[i].json ? mb[i].json : "removed";
		err = bw_leaf_add(bw, t, (const uint8_t *)mb[i].key, strlen(mb[i].key),
				  (const uint8_t *)val, strlen(val));
	}
	for (size_t i = 0; mb && i < ms.ms_entries + 1; i++)
		free(mb[i].json);
	free(mb);
	return err;
}

static int bw_fill_members(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	return bw_fill_member_tag(bw, t, src, 'm');
}

static int bw_fill_members_removed(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	return bw_fill_member_tag(bw, t, src, 'r');
}

/* What etcd 3.4 keeps in these on a fresh member: auth off at revision 1, cluster 3.4. */
static int bw_fill_auth(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	(void)src;
	uint8_t one[8];
	kv_put_be64(one, 1);
	return bw_add_str(bw, t, "authRevision", one, 8);
}

static int bw_fill_cluster(bw_t *bw, bw_tree_t *t, bw_src_t *src)
{
	(void)src;
	return bw_add_str(bw, t, "clusterVersion", "3.4.0", 5);
}

/* etcd 3.4's buckets in byte order of their names. "members" is written as etcd writes it,
 * though a restore (etcd's or Keel's) takes the new membership from its flags. */
static const struct {
	const char *name;
	bw_fill_fn fill;             /* NULL: empty */
} bw_buckets[] = {
	{ "alarm", bw_fill_alarm },
	{ "auth", bw_fill_auth },
	{ "authRoles", NULL },
	{ "authUsers", NULL },
	{ "cluster", bw_fill_cluster },
	{ "key", bw_fill_key },
	{ "lease", bw_fill_lease },
	{ "members", bw_fill_members },
	{ "members_removed", bw_fill_members_removed },
	{ "meta", bw_fill_meta },
};

/* One bucket: its tree, then its entry in the root bucket. */
static int bw_bucket(bw_t *bw, bw_tree_t *root, bw_src_t *src, const char *name, bw_fill_fn fill)
{
	bw_tree_t t;
	memset(&t, 0, sizeof(t));
	int rc = fill ? fill(bw, &t, src) : KV_OK;
	uint64_t rootpg = 0;
	size_t inl = 0;
	if (rc == KV_OK)
		rc = bw_tree_finish(bw, &t, true, &rootpg, &inl);
	bw_tree_free(&t);
	if (rc != KV_OK)
		return rc;
	uint8_t *v = malloc(BOLT_BUCKET_HDR + inl);
	if (!v)
		return KV_ERR_NOMEM;
	le64_put(v, rootpg);
	le64_put(v + 8, 0);
	if (inl)
		memcpy(v + BOLT_BUCKET_HDR, bw->page, inl);
	rc = bw_tree_add(bw, root, 0, BOLT_E_BUCKET, (const uint8_t *)name, strlen(name), v,
			 BOLT_BUCKET_HDR + inl, 0);
	free(v);
	return rc;
}

static void bw_meta_page(uint8_t *p, uint64_t txid, uint64_t root, uint64_t freelist,
			 uint64_t hwm)
{
	memset(p, 0, BOLT_PAGE);
	le64_put(p, txid % 2);
	le16_put(p + 8, BOLT_F_META);
	uint8_t *m = p + BOLT_HDR;
	le32_put(m, BOLT_MAGIC);
	le32_put(m + 4, BOLT_VERSION);
	le32_put(m + 8, BOLT_PAGE);
	le32_put(m + 12, 0);
	le64_put(m + 16, root);
	le64_put(m + 24, 0);
	le64_put(m + 32, freelist);
	le64_put(m + 40, hwm);
	le64_put(m + 48, txid);
	le64_put(m + 56, bolt_fnv64a(m, 56));
}

/* Every bucket, the root, an empty freelist, then the two meta pages that point at them. */
static int bw_write_db(bw_t *bw, bw_src_t *src)
{
	bw_tree_t root;
	memset(&root, 0, sizeof(root));
	int rc = KV_OK;
	for (size_t i = 0; rc == KV_OK && i < sizeof(bw_buckets) / sizeof(bw_buckets[0]); i++)
		rc = bw_bucket(bw, &root, src, bw_buckets[i].name, bw_buckets[i].fill);
	uint64_t rootpg = 0;
	size_t inl;
	if (rc == KV_OK)
		rc = bw_tree_finish(bw, &root, false, &rootpg, &inl);
	bw_tree_free(&root);
	if (rc != KV_OK)
		return rc;
	uint8_t *p = calloc(1, BOLT_PAGE);
	if (!p)
		return KV_ERR_NOMEM;
	uint64_t freelist = bw->next;
	le64_put(p, freelist);
	le16_put(p + 8, BOLT_F_FREELIST);
	rc = bw_write_pages(bw, p, 1);
	if (rc == KV_OK)
		rc = bw_write_out(bw);
	/* Both metas describe the same tree; the higher txid (page 0) is the one read. */
	for (uint64_t txid = 1; rc == KV_OK && txid <= 2; txid++) {
		bw_meta_page(p, txid, rootpg, freelist, bw->next);
		if (pwrite(bw->fd, p, BOLT_PAGE, (off_t)((txid % 2) * BOLT_PAGE)) != BOLT_PAGE)
			rc = bolt_fail(bw->err, bw->errlen, KV_ERR_IO, "%s: write: %s", bw->path,
				       strerror(errno));
	}
	free(p);
	return rc;
}

int kv_bolt_save(kv_t *kv, const char *path, char *err, size_t errlen)
{
	if (!kv->env)
		return bolt_fail(err, errlen, KV_ERR_IO,
				 "%s: closed after a failed snapshot install", kv->path);
	bw_t bw = { .fd = -1, .path = path, .next = 2, .wfrom = 2, .err = err, .errlen = errlen };
	bw_src_t src = { .kv = kv };
	int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &src.txn);
	if (rc != MDB_SUCCESS)
		return bolt_fail(err, errlen, KV_ERR_IO, "%s: begin read: %s", kv->path,
				 mdb_strerror(rc));
	if ((rc = bw_meta_u64(&bw, &src, "cindex", &src.cindex)) == KV_OK &&
	    (rc = bw_meta_u64(&bw, &src, "compact", &src.compact)) == KV_OK)
		rc = bw_meta_u64(&bw, &src, "compact_sched", &src.compact_sched);
	if (rc == KV_OK && !(bw.wbuf = malloc(BOLT_WBUF)))
		rc = KV_ERR_NOMEM;
	if (rc == KV_OK) {
		bw.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (bw.fd < 0)
			rc = bolt_fail(err, errlen, KV_ERR_IO, "%s: open: %s", path,
				       strerror(errno));
	}
	if (rc == KV_OK)
		rc = bw_write_db(&bw, &src);
	mdb_txn_abort(src.txn);
	if (rc == KV_OK && (kv->opt.no_sync ? 0 : fsync(bw.fd)) != 0)
		rc = bolt_fail(err, errlen, KV_ERR_IO, "%s: fsync: %s", path, strerror(errno));
	if (bw.fd >= 0 && close(bw.fd) != 0 && rc == KV_OK)
		rc = bolt_fail(err, errlen, KV_ERR_IO, "%s: close: %s", path, strerror(errno));
	if (rc == KV_ERR_NOMEM)
		bolt_fail(err, errlen, rc, "%s: out of memory", path);
	if (rc != KV_OK && bw.fd >= 0)
		unlink(path);
	free(bw.wbuf);
	free(bw.page);
	free(bw.val);
	return rc;
}

/* ======================================================================================
 * Reader
 * ====================================================================================== */

typedef struct br {
	int fd;
	const char *path;
	uint64_t fsize;
	uint32_t ps;                 /* page size */
	uint64_t hwm, root, freelist;
	uint8_t *reach, *freed;      /* bitmaps over pages [0, hwm); reach NULL: not checking */
	int nest;                    /* buckets entered within buckets */
	char *err;
	size_t errlen;
} br_t;

typedef struct br_elem {
	uint32_t flags;
	const uint8_t *k, *v;
	size_t klen, vlen;
} br_elem_t;

/* Visits the entries of one bucket in order; the iterator checks they ascend. */
typedef struct br_iter br_iter_t;
typedef int (*br_fn)(br_t *r, br_iter_t *it, const br_elem_t *e);
struct br_iter {
	br_fn fn;
	void *ud;
	const char *bucket;          /* for messages */
	uint8_t *last;
	size_t last_len, last_cap;
	bool has_last;
};

static int br_fail(br_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int br_fail(br_t *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return bolt_fail(r->err, r->errlen, KV_ERR_CORRUPT, "%s: damaged bbolt file: %s", r->path,
			 msg);
}

static bool bit_get(const uint8_t *b, uint64_t i) { return b[i / 8] >> (i % 8) & 1; }
static void bit_set(uint8_t *b, uint64_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }

static int br_pread(br_t *r, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(r->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bolt_fail(r->err, r->errlen, KV_ERR_IO, "%s: read: %s", r->path,
					 strerror(errno));
		if (n == 0)
			return br_fail(r, "%zu bytes at offset %llu pass the end of the file", len,
				       (unsigned long long)off);
		got += (size_t)n;
	}
	return KV_OK;
}

typedef struct bolt_meta {
	uint32_t magic, version, ps, flags;
	uint64_t root, seq, freelist, hwm, txid, sum;
	bool valid;
} bolt_meta_t;

static void br_meta_parse(const uint8_t *m, bolt_meta_t *out)
{
	out->magic = le32_get(m);
	out->version = le32_get(m + 4);
	out->ps = le32_get(m + 8);
	out->flags = le32_get(m + 12);
	out->root = le64_get(m + 16);
	out->seq = le64_get(m + 24);
	out->freelist = le64_get(m + 32);
	out->hwm = le64_get(m + 40);
	out->txid = le64_get(m + 48);
	out->sum = le64_get(m + 56);
	/* bbolt takes a zero checksum as "none". */
	out->valid = out->magic == BOLT_MAGIC && out->version == BOLT_VERSION &&
		     (out->sum == 0 || out->sum == bolt_fnv64a(m, 56));
}

/* The meta record of the page at off, if the file has one there. */
static int br_meta_at(br_t *r, uint64_t off, bolt_meta_t *m)
{
	uint8_t buf[BOLT_HDR + BOLT_META];
	memset(m, 0, sizeof(*m));
	if (r->fsize < off + sizeof(buf))
		return KV_OK;
	int rc = br_pread(r, buf, sizeof(buf), off);
	if (rc == KV_OK)
		br_meta_parse(buf + BOLT_HDR, m);
	return rc;
}

static bool br_ps_ok(uint32_t ps)
{
	return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

/* Opens path and picks its meta as bbolt does: page 0's gives the page size, then the
 * valid meta with the higher txid wins. check: track pages for the Tx.Check rules. */
static int br_open(br_t *r, const char *path, bool check, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	r->err = err;
	r->errlen = errlen;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (r->fd < 0 || fstat(r->fd, &sb) != 0)
		return bolt_fail(err, errlen, KV_ERR_IO, "%s: %s", path, strerror(errno));
	r->fsize = (uint64_t)sb.st_size;
	bolt_meta_t m0, m1;
	int rc = br_meta_at(r, 0, &m0);
	if (rc != KV_OK)
		return rc;
	uint32_t ps = m0.valid && br_ps_ok(m0.ps) ? m0.ps : BOLT_PAGE;
	if ((rc = br_meta_at(r, ps, &m1)) != KV_OK)
		return rc;
	m0.valid &= m0.ps == ps;
	m1.valid &= m1.ps == ps;
	const bolt_meta_t *m = m0.valid && (!m1.valid || m0.txid >= m1.txid) ? &m0
			       : m1.valid ? &m1 : NULL;
	if (!m)
		return bolt_fail(err, errlen, KV_ERR_CORRUPT,
				 "%s: not a bbolt database (no valid meta page; an etcd snapshot "
				 "starts with one)", path);
	r->ps = ps;
	r->hwm = m->hwm;
	r->root = m->root;
	r->freelist = m->freelist;
	if (r->hwm < 3 || r->hwm > r->fsize / ps)
		return r->hwm < 3 ? br_fail(r, "its meta page says %llu pages",
					    (unsigned long long)r->hwm)
				  : br_fail(r, "truncated: %llu bytes, its meta page says %llu "
					    "pages of %u bytes", (unsigned long long)r->fsize,
					    (unsigned long long)r->hwm, ps);
	if (r->root < 2 || r->root >= r->hwm)
		return br_fail(r, "root page %llu out of bounds", (unsigned long long)r->root);
	if (r->freelist != BOLT_NO_FREELIST && (r->freelist < 2 || r->freelist >= r->hwm))
		return br_fail(r, "freelist page %llu out of bounds",
			       (unsigned long long)r->freelist);
	if (!check)
		return KV_OK;
	r->reach = calloc(1, r->hwm / 8 + 1);
	r->freed = calloc(1, r->hwm / 8 + 1);
	if (!r->reach || !r->freed)
		return bolt_fail(err, errlen, KV_ERR_NOMEM, "%s: out of memory", path);
	bit_set(r->reach, 0);
	bit_set(r->reach, 1);
	return KV_OK;
}

static void br_close(br_t *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->reach);
	free(r->freed);
	r->reach = r->freed = NULL;
}

/* Reads page id with its overflow pages into a new buffer, after checking the header. */
static int br_page(br_t *r, uint64_t id, uint8_t **out, size_t *len)
{
	*out = NULL;
	if (id < 2 || id >= r->hwm)
		return br_fail(r, "page %llu out of bounds (%llu pages)", (unsigned long long)id,
			       (unsigned long long)r->hwm);
	uint8_t h[BOLT_HDR];
	int rc = br_pread(r, h, sizeof(h), id * r->ps);
	if (rc != KV_OK)
		return rc;
	uint64_t hid = le64_get(h);
	uint32_t overflow = le32_get(h + 12);
	if (hid != id)
		return br_fail(r, "page %llu says it is page %llu", (unsigned long long)id,
			       (unsigned long long)hid);
	if (overflow >= r->hwm - id)
		return br_fail(r, "page %llu: %u overflow pages pass the last page",
			       (unsigned long long)id, overflow);
	for (uint64_t i = 0; r->reach && i <= overflow; i++) {
		if (bit_get(r->reach, id + i))
			return br_fail(r, "page %llu: multiple references",
				       (unsigned long long)(id + i));
		bit_set(r->reach, id + i);
	}
	*len = ((size_t)overflow + 1) * r->ps;
	*out = malloc(*len);
	if (!*out)
		return bolt_fail(r->err, r->errlen, KV_ERR_NOMEM, "%s: out of memory", r->path);
	rc = br_pread(r, *out, *len, id * r->ps);
	if (rc != KV_OK) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

static int br_visit(br_t *r, br_iter_t *it, const br_elem_t *e, const char *where)
{
	if (e->klen == 0)
		return br_fail(r, "%s: bucket %s: an empty key", where, it->bucket);
	if (it->has_last && kv_key_cmp(it->last, it->last_len, e->k, e->klen) >= 0)
		return br_fail(r, "%s: bucket %s: keys out of order", where, it->bucket);
	if (bolt_reserve(&it->last, &it->last_cap, e->klen) != KV_OK)
		return bolt_fail(r->err, r->errlen, KV_ERR_NOMEM, "%s: out of memory", r->path);
	memcpy(it->last, e->k, e->klen);
	it->last_len = e->klen;
	it->has_last = true;
	return it->fn(r, it, e);
}

/* The elements of a leaf page p[0..len) (a page of the file, or an inline bucket's). */
static int br_leaf(br_t *r, const uint8_t *p, size_t len, const char *where, br_iter_t *it)
{
	size_t count = le16_get(p + 10);
	if (BOLT_HDR + count * BOLT_ELEM > len)
		return br_fail(r, "%s: %zu elements do not fit the page", where, count);
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = p + BOLT_HDR + i * BOLT_ELEM;
		uint64_t start = BOLT_HDR + i * BOLT_ELEM + (uint64_t)le32_get(e + 4);
		uint32_t ksize = le32_get(e + 8), vsize = le32_get(e + 12);
		if (start + ksize + vsize > len)
			return br_fail(r, "%s: element %zu out of the page", where, i);
		br_elem_t el = { .flags = le32_get(e), .k = p + start, .klen = ksize,
				 .v = p + start + ksize, .vlen = vsize };
		int rc = br_visit(r, it, &el, where);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

static int br_tree(br_t *r, uint64_t id, int depth, br_iter_t *it)
{
	if (depth >= BOLT_LEVELS)
		return br_fail(r, "bucket %s: tree deeper than %d levels", it->bucket, BOLT_LEVELS);
	uint8_t *p;
	size_t len;
	int rc = br_page(r, id, &p, &len);
	if (rc != KV_OK)
		return rc;
	char where[64];
	snprintf(where, sizeof(where), "page %llu", (unsigned long long)id);
	uint16_t flags = le16_get(p + 8);
	size_t count = le16_get(p + 10);
	if (r->freed && bit_get(r->freed, id))
		rc = br_fail(r, "page %llu: reachable freed", (unsigned long long)id);
	else if (flags & BOLT_F_LEAF)
		rc = br_leaf(r, p, len, where, it);
	else if (!(flags & BOLT_F_BRANCH))
		rc = br_fail(r, "page %llu: invalid type (flags 0x%x)", (unsigned long long)id,
			     flags);
	else if (count == 0 || BOLT_HDR + count * BOLT_ELEM > len)
		rc = br_fail(r, "page %llu: branch of %zu elements", (unsigned long long)id, count);
	for (size_t i = 0; rc == KV_OK && !(flags & BOLT_F_LEAF) && i < count; i++) {
		const uint8_t *e = p + BOLT_HDR + i * BOLT_ELEM;
		uint64_t start = BOLT_HDR + i * BOLT_ELEM + (uint64_t)le32_get(e);
		if (start + le32_get(e + 4) > len)
			rc = br_fail(r, "page %llu: element %zu out of the page",
				     (unsigned long long)id, i);
		else
			rc = br_tree(r, le64_get(e + 8), depth + 1, it);
	}
	free(p);
	return rc;
}

/* Walks the bucket whose value (from its parent's leaf) is v. */
static int br_bucket(br_t *r, const uint8_t *v, size_t vlen, br_iter_t *it)
{
	if (vlen < BOLT_BUCKET_HDR)
		return br_fail(r, "bucket %s: a value of %zu bytes", it->bucket, vlen);
	if (r->nest >= BOLT_NEST)
		return br_fail(r, "bucket %s: buckets nested deeper than %d", it->bucket,
			       BOLT_NEST);
	uint64_t root = le64_get(v);
	int rc;
	r->nest++;
	if (root != 0) {
		rc = br_tree(r, root, 0, it);
	} else if (vlen < BOLT_BUCKET_HDR + BOLT_HDR ||
		   !(le16_get(v + BOLT_BUCKET_HDR + 8) & BOLT_F_LEAF)) {
		rc = br_fail(r, "bucket %s: a bad inline page", it->bucket);
	} else {
		char where[80];
		snprintf(where, sizeof(where), "inline bucket %.40s", it->bucket);
		rc = br_leaf(r, v + BOLT_BUCKET_HDR, vlen - BOLT_BUCKET_HDR, where, it);
	}
	r->nest--;
	return rc;
}

static int br_walk(br_t *r, const uint8_t *v, size_t vlen, const char *name, br_fn fn, void *ud)
{
	br_iter_t it = { .fn = fn, .ud = ud, .bucket = name };
	int rc = br_bucket(r, v, vlen, &it);
	free(it.last);
	return rc;
}

/* The root bucket, whose value is in the meta page. */
static int br_walk_root(br_t *r, br_fn fn, void *ud)
{
	uint8_t v[BOLT_BUCKET_HDR] = { 0 };
	le64_put(v, r->root);
	return br_walk(r, v, sizeof(v), "(root)", fn, ud);
}

/* An element's key as a bucket name for messages (cut at 40 bytes). */
static const char *br_name(char *buf, size_t len, const br_elem_t *e)
{
	snprintf(buf, len, "%.*s", (int)(e->klen < 40 ? e->klen : 40), (const char *)e->k);
	return buf;
}

static int br_visit_nothing(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	(void)it;
	char name[48];
	if (!(e->flags & BOLT_E_BUCKET))
		return KV_OK;
	return br_walk(r, e->v, e->vlen, br_name(name, sizeof(name), e), br_visit_nothing, NULL);
}

/* bbolt's Tx.Check: freelist pages freed once each, every page reached once or freed. */
static int br_load_freelist(br_t *r)
{
	if (r->freelist == BOLT_NO_FREELIST)
		return KV_OK;
	uint8_t *p;
	size_t len;
	int rc = br_page(r, r->freelist, &p, &len);
	if (rc != KV_OK)
		return rc;
	uint64_t count = le16_get(p + 10), idx = 0;
	if (!(le16_get(p + 8) & BOLT_F_FREELIST)) {
		rc = br_fail(r, "page %llu is not a freelist", (unsigned long long)r->freelist);
	} else if (count == 0xFFFF) {
		if (len < BOLT_HDR + 8)
			rc = br_fail(r, "freelist page too short");
		else
			count = le64_get(p + BOLT_HDR), idx = 1;
	}
	if (rc == KV_OK && (count > len / 8 || BOLT_HDR + (idx + count) * 8 > len))
		rc = br_fail(r, "freelist of %llu pages does not fit its page",
			     (unsigned long long)count);
	for (uint64_t i = 0; rc == KV_OK && i < count; i++) {
		uint64_t id = le64_get(p + BOLT_HDR + (idx + i) * 8);
		if (id < 2 || id >= r->hwm)
			rc = br_fail(r, "freelist: page %llu out of bounds",
				     (unsigned long long)id);
		else if (bit_get(r->freed, id))
			rc = br_fail(r, "page %llu: already freed", (unsigned long long)id);
		else
			bit_set(r->freed, id);
	}
	free(p);
	return rc;
}

static int br_check_pages(br_t *r)
{
	if (r->freelist == BOLT_NO_FREELIST)
		return KV_OK; /* bbolt then counts unreached pages as free */
	for (uint64_t id = 0; id < r->hwm; id++) {
		bool reached = bit_get(r->reach, id), freed = bit_get(r->freed, id);
		if (!reached && !freed)
			return br_fail(r, "page %llu: unreachable unfreed", (unsigned long long)id);
	}
	return KV_OK;
}

/* ---- status ---------------------------------------------------------------------------- */

typedef struct br_status {
	kv_bolt_status_t *st;
	uint32_t crc;
	bool key_bucket;
} br_status_t;

static int br_status_entry(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	br_status_t *s = it->ud;
	s->crc = kv_crc32c(s->crc, e->k, e->klen);
	s->st->total_keys++;
	if (e->flags & BOLT_E_BUCKET) {
		char name[48];
		return br_walk(r, e->v, e->vlen, br_name(name, sizeof(name), e), br_visit_nothing,
			       NULL);
	}
	s->crc = kv_crc32c(s->crc, e->v, e->vlen);
	if (s->key_bucket) {
		if (e->klen < BOLT_REV_LEN)
			return br_fail(r, "bucket key: a revision key of %zu bytes", e->klen);
		s->st->revision = (int64_t)kv_get_be64(e->k);
	}
	return KV_OK;
}

static int br_status_bucket(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	br_status_t *s = it->ud;
	char name[48];
	br_name(name, sizeof(name), e);
	if (!(e->flags & BOLT_E_BUCKET))
		return br_fail(r, "%s at the top level is not a bucket", name);
	s->crc = kv_crc32c(s->crc, e->k, e->klen);
	s->key_bucket = e->klen == 3 && memcmp(e->k, "key", 3) == 0;
	return br_walk(r, e->v, e->vlen, name, br_status_entry, s);
}

/* The full check and the figures, on an open reader in check mode. */
static int br_status(br_t *r, kv_bolt_status_t *st)
{
	memset(st, 0, sizeof(*st));
	br_status_t s = { .st = st };
	int rc = br_load_freelist(r);
	if (rc == KV_OK)
		rc = br_walk_root(r, br_status_bucket, &s);
	if (rc == KV_OK)
		rc = br_check_pages(r);
	st->hash = s.crc;
	st->total_size = (int64_t)(r->hwm * r->ps);
	return rc;
}

int kv_bolt_status(const char *path, kv_bolt_status_t *st, char *err, size_t errlen)
{
	br_t r;
	int rc = br_open(&r, path, true, err, errlen);
	if (rc == KV_OK)
		rc = br_status(&r, st);
	br_close(&r);
	return rc;
}

/* ---- import ---------------------------------------------------------------------------- */

enum { BI_KEY, BI_LEASE, BI_META, BI_ALARM, BI_N };
static const char *const bi_names[BI_N] = { "key", "lease", "meta", "alarm" };

typedef struct bi {
	br_t *r;
	kv_t *kv;
	MDB_txn *txn;
	size_t recs, bytes;          /* written since the last commit */
	int64_t last_main;           /* of the last revision imported */
	int64_t finished, scheduled; /* compaction revisions from "meta" */
	uint8_t *rec;
	size_t rec_cap;
	uint8_t *found[BI_N];        /* the bucket values of bi_names (copies) */
	size_t found_len[BI_N];
} bi_t;

static int bi_mdb(bi_t *b, int rc, const char *what)
{
	return bolt_fail(b->r->err, b->r->errlen, rc == MDB_MAP_FULL ? KV_ERR_NO_SPACE : KV_ERR_IO,
			 "%s: writing the new store: %s: %s", b->kv->path, what, mdb_strerror(rc));
}

static int bi_begin(bi_t *b)
{
	int rc = mdb_txn_begin(b->kv->env, NULL, 0, &b->txn);
	if (rc != MDB_SUCCESS) {
		b->txn = NULL;
		return bi_mdb(b, rc, "begin");
	}
	b->recs = b->bytes = 0;
	return KV_OK;
}

static int bi_commit(bi_t *b)
{
	int rc = mdb_txn_commit(b->txn);
	b->txn = NULL;
	return rc == MDB_SUCCESS ? KV_OK : bi_mdb(b, rc, "commit");
}

/* Commits now and then, so a large snapshot never makes one huge transaction. */
static int bi_step(bi_t *b, size_t bytes)
{
	b->recs++;
	b->bytes += bytes;
	if (b->recs < BOLT_BATCH_RECS && b->bytes < BOLT_BATCH_BYTES)
		return KV_OK;
	int rc = bi_commit(b);
	return rc ? rc : bi_begin(b);
}

static int bi_find(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	bi_t *b = it->ud;
	for (int i = 0; i < BI_N; i++) {
		if (e->klen != strlen(bi_names[i]) || memcmp(e->k, bi_names[i], e->klen) != 0)
			continue;
		if (!(e->flags & BOLT_E_BUCKET))
			return br_fail(r, "%s is not a bucket", bi_names[i]);
		b->found[i] = malloc(e->vlen);
		if (!b->found[i])
			return bolt_fail(r->err, r->errlen, KV_ERR_NOMEM, "%s: out of memory",
					 r->path);
		memcpy(b->found[i], e->v, e->vlen);
		b->found_len[i] = e->vlen;
	}
	return KV_OK;
}

static int bi_meta(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	bi_t *b = it->ud;
	static const char fin[] = "finishedCompactRev", sched[] = "scheduledCompactRev";
	int64_t *dst = NULL;
	if (e->klen == sizeof(fin) - 1 && memcmp(e->k, fin, e->klen) == 0)
		dst = &b->finished;
	else if (e->klen == sizeof(sched) - 1 && memcmp(e->k, sched, e->klen) == 0)
		dst = &b->scheduled;
	if (!dst)
		return KV_OK; /* consistent_index: a restored store starts a new log */
	if ((e->flags & BOLT_E_BUCKET) || e->vlen < 8 || kv_get_be64(e->v) > INT64_MAX)
		return br_fail(r, "meta %.*s: not a revision", (int)e->klen, (const char *)e->k);
	*dst = (int64_t)kv_get_be64(e->v);
	return KV_OK;
}

static int bi_lease(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	bi_t *b = it->ud;
	if ((e->flags & BOLT_E_BUCKET) || e->klen != 8)
		return br_fail(r, "bucket lease: a key of %zu bytes", e->klen);
	int64_t id = (int64_t)kv_get_be64(e->k);
	Leasepb__Lease *m = leasepb__lease__unpack(NULL, e->vlen, e->v);
	if (!m)
		return br_fail(r, "lease %016llx: not a leasepb.Lease", (unsigned long long)id);
	kv_lease_rec_t rec = { .ttl = m->ttl, .remaining_ms = m->remainingttl };
	bool ok = m->id == id && id > 0 && m->ttl >= 1 && m->ttl <= KV_MAX_LEASE_TTL &&
		  m->remainingttl >= 0;
	leasepb__lease__free_unpacked(m, NULL);
	if (!ok)
		return br_fail(r, "lease %016llx: id, TTL %lld or remaining TTL %lld out of range",
			       (unsigned long long)id, (long long)rec.ttl,
			       (long long)rec.remaining_ms);
	rec.remaining_ms = (rec.remaining_ms > rec.ttl ? rec.ttl : rec.remaining_ms) * 1000;
	uint8_t kb[8];
	kv_put_be64(kb, (uint64_t)id);
	MDB_val k = { 8, kb }, v = { sizeof(rec), &rec };
	int rc = mdb_put(b->txn, b->kv->dbi_lease, &k, &v, 0);
	return rc ? bi_mdb(b, rc, "lease") : bi_step(b, sizeof(rec));
}

/* An alarm, keyed by its packed AlarmMember, into "alarm" (member, type big-endian). */
static int bi_alarm(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	bi_t *b = it->ud;
	Etcdserverpb__AlarmMember *m = (e->flags & BOLT_E_BUCKET) ? NULL
		: etcdserverpb__alarm_member__unpack(NULL, e->klen, e->k);
	if (!m)
		return br_fail(r, "bucket alarm: a key that is no AlarmMember");
	uint8_t k[12];
	kv_put_be64(k, m->memberid);
	uint32_t type = (uint32_t)m->alarm;
	bool ok = m->alarm == ETCDSERVERPB__ALARM_TYPE__NOSPACE ||
		  m->alarm == ETCDSERVERPB__ALARM_TYPE__CORRUPT;
	etcdserverpb__alarm_member__free_unpacked(m, NULL);
	if (!ok)
		return br_fail(r, "bucket alarm: alarm type %u", type);
	for (int i = 0; i < 4; i++)
		k[8 + i] = (uint8_t)(type >> (24 - 8 * i));
	MDB_val mk = { sizeof(k), k }, mv = { 0, k };
	int rc = mdb_put(b->txn, b->kv->dbi_alarm, &mk, &mv, 0);
	return rc ? bi_mdb(b, rc, "alarm") : bi_step(b, sizeof(k));
}

/* Checks what Keel relies on in a revision: etcd writes every one of these. */
static int bi_kv_check(br_t *r, const Mvccpb__KeyValue *m, int64_t main, bool del)
{
	if (m->key.len == 0 || m->key.len > KV_MAX_KEY_SIZE)
		return m->key.len ? bolt_fail(r->err, r->errlen, KV_ERR_KEY_TOO_LARGE,
					      "%s: revision %lld has a key of %zu bytes; Keel "
					      "stores keys of at most %d bytes", r->path,
					      (long long)main, m->key.len, KV_MAX_KEY_SIZE)
				  : br_fail(r, "revision %lld: an empty key", (long long)main);
	if (!del && (m->mod_revision != main || m->create_revision < 1 ||
		     m->create_revision > main || m->version < 1 || m->lease < 0))
		return br_fail(r, "revision %lld: create %lld mod %lld version %lld lease %lld",
			       (long long)main, (long long)m->create_revision,
			       (long long)m->mod_revision, (long long)m->version,
			       (long long)m->lease);
	return KV_OK;
}

static int bi_key(br_t *r, br_iter_t *it, const br_elem_t *e)
{
	bi_t *b = it->ud;
	const uint8_t *k = e->k;
	bool del = e->klen == BOLT_REV_LEN + 1 && k[BOLT_REV_LEN] == 't';
	if ((e->flags & BOLT_E_BUCKET) || (e->klen != BOLT_REV_LEN && !del) || k[8] != '_' ||
	    kv_get_be64(k) > INT64_MAX || kv_get_be64(k + 9) > INT64_MAX || kv_get_be64(k) < 1)
		return br_fail(r, "bucket key: a key of %zu bytes that is no revision", e->klen);
	int64_t main = (int64_t)kv_get_be64(k), sub = (int64_t)kv_get_be64(k + 9);
	Mvccpb__KeyValue *m = mvccpb__key_value__unpack(NULL, e->vlen, e->v);
	if (!m)
		return br_fail(r, "revision %lld: not an mvccpb.KeyValue", (long long)main);
	int rc = bi_kv_check(r, m, main, del);
	kv_rec_hdr_t h;
	memset(&h, 0, sizeof(h));
	h.type = del ? KV_REC_DEL : KV_REC_PUT;
	h.key_len = (uint32_t)m->key.len;
	if (!del) {
		h.create_revision = m->create_revision;
		h.mod_revision = m->mod_revision;
		h.version = m->version;
		h.lease = m->lease;
	}
	size_t vlen = del ? 0 : m->value.len;
	size_t len = sizeof(h) + m->key.len + vlen;
	if (rc == KV_OK && bolt_reserve(&b->rec, &b->rec_cap, len) != KV_OK)
		rc = bolt_fail(r->err, r->errlen, KV_ERR_NOMEM, "%s: out of memory", r->path);
	if (rc == KV_OK) {
		memcpy(b->rec, &h, sizeof(h));
		memcpy(b->rec + sizeof(h), m->key.data, m->key.len);
		if (vlen)
			memcpy(b->rec + sizeof(h) + m->key.len, m->value.data, vlen);
	}
	uint8_t rk[16], ent[17];
	kv_put_be64(rk, (uint64_t)main);
	kv_put_be64(rk + 8, (uint64_t)sub);
	memcpy(ent, rk, 16);
	ent[16] = h.type;
	MDB_val mk = { 16, rk }, mv = { len, b->rec };
	MDB_val ik = { m->key.len, m->key.data }, iv = { 17, ent };
	int mrc = MDB_SUCCESS;
	if (rc == KV_OK) {
		/* Ascending keys give ascending revisions: a second entry of one revision (with
		 * and without the delete mark) is the one thing the append refuses. */
		mrc = mdb_put(b->txn, b->kv->dbi_rev, &mk, &mv, MDB_APPEND);
		if (mrc == MDB_KEYEXIST)
			rc = br_fail(r, "revision %lld_%lld stored twice", (long long)main,
				     (long long)sub);
		else if (mrc == MDB_SUCCESS)
			mrc = mdb_put(b->txn, b->kv->dbi_idx, &ik, &iv, MDB_NODUPDATA);
		if (rc == KV_OK && mrc != MDB_SUCCESS)
			rc = bi_mdb(b, mrc, "revision");
	}
	mvccpb__key_value__free_unpacked(m, NULL);
	if (rc != KV_OK)
		return rc;
	b->last_main = main;
	return bi_step(b, len);
}

/* "lkeys": each key whose latest revision is a put with a lease that exists. */
static int bi_lease_keys(bi_t *b)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(b->txn, b->kv->dbi_idx, &cur);
	if (rc != MDB_SUCCESS)
		return bi_mdb(b, rc, "idx");
	MDB_val k, v;
	int err = KV_OK;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && !err;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
		if ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP)) != MDB_SUCCESS)
			break;
		const uint8_t *ent = v.mv_data;
		if (v.mv_size != 17 || ent[16] != KV_REC_PUT)
			continue;
		MDB_val rk = { 16, (void *)ent }, rv;
		kv_rec_hdr_t h;
		if ((rc = mdb_get(b->txn, b->kv->dbi_rev, &rk, &rv)) != MDB_SUCCESS)
			break;
		memcpy(&h, rv.mv_data, sizeof(h));
		uint8_t lk[8];
		kv_put_be64(lk, (uint64_t)h.lease);
		MDB_val lkey = { 8, lk }, lrec;
		if (h.lease == 0 || mdb_get(b->txn, b->kv->dbi_lease, &lkey, &lrec) != MDB_SUCCESS)
			continue; /* as etcd: a key whose lease is gone keeps it, unattached */
		int prc = mdb_put(b->txn, b->kv->dbi_lkeys, &lkey, &k, MDB_NODUPDATA);
		if (prc != MDB_SUCCESS && prc != MDB_KEYEXIST)
			err = bi_mdb(b, prc, "lkeys");
	}
	mdb_cursor_close(cur);
	if (!err && rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
		err = bi_mdb(b, rc, "idx");
	return err;
}

/* The revision as etcd's restore derives it: the newest stored, or the finished
 * compaction if that is newer (every revision up to it may be compacted away). */
static int bi_meta_write(bi_t *b)
{
	int64_t rev = b->last_main > b->finished ? b->last_main : b->finished;
	int64_t sched = b->scheduled > b->finished ? b->scheduled : b->finished;
	if (sched > rev)
		rev = sched;
	if (rev < 1)
		rev = 1;
	static const char *const names[] = { "rev", "compact", "compact_sched", "cindex", "cterm" };
	uint64_t vals[] = { (uint64_t)rev, (uint64_t)b->finished, (uint64_t)sched, 0, 0 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		int rc = kv_meta_put(b->kv, b->txn, names[i], vals[i]);
		if (rc != KV_OK)
			return bolt_fail(b->r->err, b->r->errlen, rc, "%s", kv_last_error(b->kv));
	}
	return KV_OK;
}

static int bi_run(bi_t *b)
{
	br_t *r = b->r;
	int rc = br_walk_root(r, bi_find, b);
	if (rc != KV_OK)
		return rc;
	if (!b->found[BI_KEY] || !b->found[BI_META])
		return bolt_fail(r->err, r->errlen, KV_ERR_CORRUPT,
				 "%s: not an etcd snapshot (a bbolt database without etcd's \"%s\" "
				 "bucket)", r->path, b->found[BI_KEY] ? "meta" : "key");
	static const br_fn fns[BI_N] = { bi_key, bi_lease, bi_meta, bi_alarm };
	/* leases before the keys that name them */
	static const int order[BI_N] = { BI_META, BI_LEASE, BI_KEY, BI_ALARM };
	if ((rc = bi_begin(b)) != KV_OK)
		return rc;
	for (int i = 0; rc == KV_OK && i < BI_N; i++) {
		int j = order[i];
		if (b->found[j])
			rc = br_walk(r, b->found[j], b->found_len[j], bi_names[j], fns[j], b);
	}
	if (rc == KV_OK)
		rc = bi_commit(b);
	if (rc == KV_OK && (rc = bi_begin(b)) == KV_OK && (rc = bi_lease_keys(b)) == KV_OK &&
	    (rc = bi_meta_write(b)) == KV_OK)
		rc = bi_commit(b);
	if (b->txn)
		mdb_txn_abort(b->txn);
	b->txn = NULL;
	return rc;
}

static void bi_remove_store(const char *path)
{
	char lock[4200];
	snprintf(lock, sizeof(lock), "%s-lock", path);
	unlink(path);
	unlink(lock);
}

int kv_bolt_restore(const char *bolt_path, const char *store_path, char *err, size_t errlen)
{
	struct stat sb;
	if (lstat(store_path, &sb) == 0)
		return bolt_fail(err, errlen, KV_ERR_IO, "%s: already exists", store_path);
	br_t r;
	kv_bolt_status_t st;
	int rc = br_open(&r, bolt_path, true, err, errlen);
	if (rc == KV_OK)
		rc = br_status(&r, &st);
	/* The import reads the pages again: each still once at most, so a file changed since
	 * the check cannot make it loop. */
	if (r.reach)
		memset(r.reach, 0, r.hwm / 8 + 1);
	if (rc != KV_OK) {
		br_close(&r);
		return rc;
	}
	kv_options_t opt;
	kv_options_default(&opt);
	opt.no_sync = true; /* one flush at the end */
	bi_t b = { .r = &r };
	char kerr[512];
	rc = kv_open(store_path, &opt, &b.kv, kerr, sizeof(kerr));
	if (rc != KV_OK) {
		bolt_fail(err, errlen, rc, "%s", kerr);
	} else {
		rc = bi_run(&b);
		if (rc == KV_OK && (rc = kv_from_mdb(b.kv, mdb_env_sync(b.kv->env, 1), "sync")))
			bolt_fail(err, errlen, rc, "%s", kv_last_error(b.kv));
		kv_close(b.kv);
	}
	for (int i = 0; i < BI_N; i++)
		free(b.found[i]);
	free(b.rec);
	br_close(&r);
	if (rc != KV_OK)
		bi_remove_store(store_path);
	return rc;
}
