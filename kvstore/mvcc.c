/* mvcc.c — etcd v3's revisioned key space on LMDB ("rev" and "idx"): put, delete, range,
 * txn, compaction and HashKV, with etcd 3.4's semantics to the letter. Never begins,
 * commits or aborts a transaction (apply.c does), and changes the revision only via w->main.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

#define MVCC_REV_LEN 16              /* "rev" key: main, sub */
#define MVCC_ENT_LEN 17              /* "idx" data: main, sub, type */
#define MVCC_HDR_LEN sizeof(kv_rec_hdr_t)

_Static_assert(sizeof(kv_rec_hdr_t) == 40, "the record header is 40 bytes on disk");

typedef Etcdserverpb__RangeRequest range_req_t;
typedef Etcdserverpb__RangeResponse range_resp_t;
typedef Etcdserverpb__TxnRequest txn_req_t;
typedef Etcdserverpb__TxnResponse txn_resp_t;
typedef Etcdserverpb__RequestOp req_op_t;
typedef Etcdserverpb__Compare compare_t;
typedef ProtobufCBinaryData bin_t;

/* ---- encoding ------------------------------------------------------------------------ */

static void mvcc_rev_encode(uint8_t *out, int64_t main, int64_t sub)
{
	kv_put_be64(out, (uint64_t)main);
	kv_put_be64(out + 8, (uint64_t)sub);
}

static int64_t mvcc_ent_main(const uint8_t *ent)
{
	return (int64_t)kv_get_be64(ent);
}

/* A "rev" record, parsed in place (pointers into LMDB's memory). */
typedef struct mvcc_rec {
	kv_rec_hdr_t h;
	const uint8_t *key;
	const uint8_t *val;
	size_t vlen;
} mvcc_rec_t;

static int mvcc_rec_parse(kv_t *kv, const MDB_val *v, mvcc_rec_t *r)
{
	if (v->mv_size < MVCC_HDR_LEN)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: rev record of %zu bytes", kv->path,
				    v->mv_size);
	memcpy(&r->h, v->mv_data, MVCC_HDR_LEN);
	if (r->h.type > KV_REC_DEL || r->h.key_len > v->mv_size - MVCC_HDR_LEN)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: rev record type %u key length %u",
				    kv->path, r->h.type, r->h.key_len);
	r->key = (const uint8_t *)v->mv_data + MVCC_HDR_LEN;
	r->val = r->key + r->h.key_len;
	r->vlen = v->mv_size - MVCC_HDR_LEN - r->h.key_len;
	return KV_OK;
}

static int mvcc_corrupt_ent(kv_t *kv, size_t size)
{
	return kv_set_error(kv, KV_ERR_CORRUPT, "%s: idx entry of %zu bytes", kv->path, size);
}

/* ---- building messages ----------------------------------------------------------------- */

static Mvccpb__KeyValue *mvcc_kv_new(void)
{
	Mvccpb__KeyValue *kvp = malloc(sizeof(*kvp));
	if (kvp)
		mvccpb__key_value__init(kvp);
	return kvp;
}

static void mvcc_kv_free(Mvccpb__KeyValue *kvp)
{
	if (kvp)
		protobuf_c_message_free_unpacked(&kvp->base, NULL);
}

/* The KeyValue of a record at revision main; a tombstone gives key and mod_revision only,
 * as etcd's DELETE events do. */
static int mvcc_kv_build(const mvcc_rec_t *r, int64_t main, bool with_value, Mvccpb__KeyValue **out)
{
	Mvccpb__KeyValue *kvp = mvcc_kv_new();
	if (!kvp)
		return KV_ERR_NOMEM;
	if (kv_bin_dup(&kvp->key, r->key, r->h.key_len) != KV_OK ||
	    (with_value && kv_bin_dup(&kvp->value, r->val, r->vlen) != KV_OK)) {
		mvcc_kv_free(kvp);
		return KV_ERR_NOMEM;
	}
	if (r->h.type == KV_REC_PUT) {
		kvp->create_revision = r->h.create_revision;
		kvp->mod_revision = r->h.mod_revision;
		kvp->version = r->h.version;
		kvp->lease = r->h.lease;
	} else {
		kvp->mod_revision = main;
	}
	*out = kvp;
	return KV_OK;
}

static int mvcc_kv_copy(const Mvccpb__KeyValue *src, Mvccpb__KeyValue **out)
{
	Mvccpb__KeyValue *kvp = mvcc_kv_new();
	if (!kvp)
		return KV_ERR_NOMEM;
	if (kv_bin_dup(&kvp->key, src->key.data, src->key.len) != KV_OK ||
	    kv_bin_dup(&kvp->value, src->value.data, src->value.len) != KV_OK) {
		mvcc_kv_free(kvp);
		return KV_ERR_NOMEM;
	}
	kvp->create_revision = src->create_revision;
	kvp->mod_revision = src->mod_revision;
	kvp->version = src->version;
	kvp->lease = src->lease;
	*out = kvp;
	return KV_OK;
}

int mvcc_decode(kv_t *kv, const MDB_val *k, const MDB_val *v, bool keys_only,
		Mvccpb__KeyValue **out, int *type)
{
	*out = NULL;
	if (k->mv_size != MVCC_REV_LEN)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: rev key of %zu bytes", kv->path,
				    k->mv_size);
	mvcc_rec_t r;
	int rc = mvcc_rec_parse(kv, v, &r);
	if (rc != KV_OK)
		return rc;
	if (type)
		*type = r.h.type;
	return mvcc_kv_build(&r, (int64_t)kv_get_be64(k->mv_data), !keys_only, out);
}

/* ---- reading the index ----------------------------------------------------------------- */

/* The logical compaction revision as etcd's store keeps it: -1 when never compacted. It is
 * read from the transaction, so a reader on another thread sees the one of its snapshot. */
static int mvcc_first_rev(kv_t *kv, MDB_txn *txn, int64_t *first)
{
	MDB_val k = { sizeof("compact_sched") - 1, "compact_sched" }, d;
	int rc = mdb_get(txn, kv->dbi_meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*first = -1;
		return KV_OK;
	}
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "read compact_sched");
	if (d.mv_size != 8)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: compact_sched of %zu bytes", kv->path,
				    d.mv_size);
	*first = (int64_t)kv_get_be64(d.mv_data);
	return KV_OK;
}

/* With c on key (any of its entries): the newest entry at or below rev (rev <= 0: the
 * newest of all) into ent; *found false when the key has none then. */
static int mvcc_idx_at(kv_t *kv, MDB_cursor *c, MDB_val *key, int64_t rev, uint8_t *ent,
		       bool *found)
{
	MDB_val d;
	*found = false;
	int rc = mdb_cursor_get(c, key, &d, MDB_LAST_DUP);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "read idx");
	if (d.mv_size != MVCC_ENT_LEN)
		return mvcc_corrupt_ent(kv, d.mv_size);
	if (rev > 0 && mvcc_ent_main(d.mv_data) > rev) {
		uint8_t probe[MVCC_ENT_LEN] = { 0 };
		mvcc_rev_encode(probe, rev + 1, 0);
		d.mv_size = sizeof(probe);
		d.mv_data = probe;
		rc = mdb_cursor_get(c, key, &d, MDB_GET_BOTH_RANGE);
		if (rc == MDB_SUCCESS)
			rc = mdb_cursor_get(c, key, &d, MDB_PREV_DUP);
		if (rc == MDB_NOTFOUND)
			return KV_OK;
		if (rc != MDB_SUCCESS)
			return kv_from_mdb(kv, rc, "read idx");
		if (d.mv_size != MVCC_ENT_LEN)
			return mvcc_corrupt_ent(kv, d.mv_size);
	}
	memcpy(ent, d.mv_data, MVCC_ENT_LEN);
	*found = true;
	return KV_OK;
}

/* Walks the keys of [start, end) (etcd's conventions) that are live at rev, in key order. */
typedef struct mvcc_iter {
	kv_t *kv;
	MDB_txn *txn;
	MDB_cursor *c;
	bin_t start;
	bin_t end;
	int64_t rev;
	bool single, from_key, started;
	MDB_val key;                 /* current key, in LMDB's memory */
	uint8_t ent[MVCC_ENT_LEN];   /* its entry at rev */
} mvcc_iter_t;

static int mvcc_iter_open(kv_t *kv, MDB_txn *txn, const bin_t *start, const bin_t *end,
			  int64_t rev, mvcc_iter_t *it)
{
	memset(it, 0, sizeof(*it));
	it->kv = kv;
	it->txn = txn;
	it->start = *start;
	it->end = *end;
	it->rev = rev;
	it->single = end->len == 0;
	it->from_key = end->len == 1 && end->data[0] == 0;
	int rc = mdb_cursor_open(txn, kv->dbi_idx, &it->c);
	return rc == MDB_SUCCESS ? KV_OK : kv_from_mdb(kv, rc, "open idx cursor");
}

static void mvcc_iter_close(mvcc_iter_t *it)
{
	if (it->c)
		mdb_cursor_close(it->c);
	it->c = NULL;
}

/* 1: the next live key is in it->key/it->ent; 0: no more; < 0: an error. */
static int mvcc_iter_next(mvcc_iter_t *it)
{
	for (;;) {
		MDB_val d;
		int rc;
		if (!it->started) {
			it->started = true;
			/* No stored key is longer than KV_MAX_KEY_SIZE: a longer single key is
			 * absent, a longer start is found past its truncation. */
			if (it->single && it->start.len > KV_MAX_KEY_SIZE)
				return 0;
			it->key.mv_size = it->start.len < KV_MAX_KEY_SIZE ? it->start.len
									 : KV_MAX_KEY_SIZE;
			it->key.mv_data = it->start.data;
			rc = mdb_cursor_get(it->c, &it->key, &d, it->single ? MDB_SET_KEY
									    : MDB_SET_RANGE);
		} else {
			if (it->single)
				return 0;
			rc = mdb_cursor_get(it->c, &it->key, &d, MDB_NEXT_NODUP);
		}
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != MDB_SUCCESS)
			return kv_from_mdb(it->kv, rc, "walk idx");
		if (!it->single) {
			if (kv_key_cmp(it->key.mv_data, it->key.mv_size, it->start.data,
				       it->start.len) < 0)
				continue;
			if (!it->from_key && kv_key_cmp(it->key.mv_data, it->key.mv_size,
							it->end.data, it->end.len) >= 0)
				return 0;
		}
		bool found;
		rc = mvcc_idx_at(it->kv, it->c, &it->key, it->rev, it->ent, &found);
		if (rc != KV_OK)
			return rc;
		if (found && it->ent[16] == KV_REC_PUT)
			return 1;
	}
}

/* The "rev" record of an idx entry. */
static int mvcc_rec_get(kv_t *kv, MDB_txn *txn, const uint8_t *ent, MDB_val *k, MDB_val *v,
			mvcc_rec_t *r)
{
	k->mv_size = MVCC_REV_LEN;
	k->mv_data = (void *)ent;
	int rc = mdb_get(txn, kv->dbi_rev, k, v);
	if (rc == MDB_NOTFOUND)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: idx names revision %lld.%lld, not in rev",
				    kv->path, (long long)mvcc_ent_main(ent),
				    (long long)kv_get_be64(ent + 8));
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "read rev");
	return r ? mvcc_rec_parse(kv, v, r) : KV_OK;
}

int mvcc_get(kv_t *kv, MDB_txn *txn, const uint8_t *key, size_t klen, int64_t rev,
	     bool keys_only, Mvccpb__KeyValue **out)
{
	*out = NULL;
	if (klen == 0)
		return KV_OK;
	bin_t start = { klen, (uint8_t *)key }, end = { 0, NULL };
	mvcc_iter_t it;
	int rc = mvcc_iter_open(kv, txn, &start, &end, rev, &it);
	if (rc != KV_OK)
		return rc;
	rc = mvcc_iter_next(&it);
	if (rc == 1) {
		MDB_val k, v;
		mvcc_rec_t r;
		rc = mvcc_rec_get(kv, txn, it.ent, &k, &v, &r);
		if (rc == KV_OK)
			rc = mvcc_kv_build(&r, mvcc_ent_main(it.ent), !keys_only, out);
	}
	mvcc_iter_close(&it);
	return rc < 0 ? rc : KV_OK;
}

/* ---- range ----------------------------------------------------------------------------- */

static int mvcc_cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int mvcc_sort_cmp(const Mvccpb__KeyValue *a, const Mvccpb__KeyValue *b, int target)
{
	switch (target) {
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
		return mvcc_cmp_i64(a->version, b->version);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
		return mvcc_cmp_i64(a->create_revision, b->create_revision);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
		return mvcc_cmp_i64(a->mod_revision, b->mod_revision);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
		return kv_key_cmp(a->value.data, a->value.len, b->value.data, b->value.len);
	default:
		return kv_key_cmp(a->key.data, a->key.len, b->key.data, b->key.len);
	}
}

/* Stable merge sort: ties keep key order in both directions, as Go's sort does for the
 * small results it sorts by insertion. */
static void mvcc_sort(Mvccpb__KeyValue **a, Mvccpb__KeyValue **tmp, size_t n, int target,
		      bool desc)
{
	if (n < 2)
		return;
	size_t h = n / 2;
	mvcc_sort(a, tmp, h, target, desc);
	mvcc_sort(a + h, tmp, n - h, target, desc);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n) {
		int c = mvcc_sort_cmp(a[i], a[j], target);
		if (desc)
			c = -c;
		tmp[k++] = c <= 0 ? a[i++] : a[j++];
	}
	while (i < h)
		tmp[k++] = a[i++];
	while (j < n)
		tmp[k++] = a[j++];
	memcpy(a, tmp, n * sizeof(*a));
}

static bool mvcc_pruned(const range_req_t *req, const kv_rec_hdr_t *h)
{
	return (req->max_mod_revision && h->mod_revision > req->max_mod_revision) ||
	       (req->min_mod_revision && h->mod_revision < req->min_mod_revision) ||
	       (req->max_create_revision && h->create_revision > req->max_create_revision) ||
	       (req->min_create_revision && h->create_revision < req->min_create_revision);
}

static int mvcc_kvs_push(range_resp_t *resp, size_t *cap, Mvccpb__KeyValue *kvp)
{
	if (resp->n_kvs == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		Mvccpb__KeyValue **p = realloc(resp->kvs, c * sizeof(*p));
		if (!p) {
			mvcc_kv_free(kvp);
			return KV_ERR_NOMEM;
		}
		resp->kvs = p;
		*cap = c;
	}
	resp->kvs[resp->n_kvs++] = kvp;
	return KV_OK;
}

/* What a range request asks of the walk, decided once for both ways of answering it
 * (KeyValue messages, or packed bytes). */
typedef struct mvcc_plan {
	bool filter;                 /* some min/max mod/create revision filter */
	bool sorting;                /* sort the kvs (by target, desc or not) */
	bool desc;
	bool by_value;               /* sorting by value: values are read even if keys_only */
	size_t want;                 /* kvs to read at most; every live key still counts */
} mvcc_plan_t;

static void mvcc_plan(const range_req_t *req, mvcc_plan_t *p)
{
	p->filter = req->min_mod_revision || req->max_mod_revision ||
		    req->min_create_revision || req->max_create_revision;
	int order = req->sort_order;
	if (req->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
	    order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE)
		order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
	p->sorting = req->sort_target <= ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE &&
		     (order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND ||
		      order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND);
	p->desc = order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
	p->by_value = p->sorting &&
		      req->sort_target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
	/* etcd reads limit + 1 keys in key order unless the request itself asks for an order
	 * or a filter; a target without an order then sorts only those. */
	bool fetch_all = req->sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE ||
			 p->filter;
	p->want = SIZE_MAX;
	if (req->count_only)
		p->want = 0;
	else if (!fetch_all && req->limit > 0 && (uint64_t)req->limit < SIZE_MAX - 1)
		p->want = (size_t)req->limit + 1;
}

/* Collects the live keys at rev into resp: count is all of them (etcd counts before the
 * filters and the limit); the kvs are filtered, sorted and cut to the limit. */
static int mvcc_range_collect(kv_t *kv, MDB_txn *txn, int64_t rev, const range_req_t *req,
			      range_resp_t *resp)
{
	mvcc_plan_t p;
	mvcc_plan(req, &p);
	bool with_value = !req->keys_only || p.by_value;

	mvcc_iter_t it;
	int rc = mvcc_iter_open(kv, txn, &req->key, &req->range_end, rev, &it);
	if (rc != KV_OK)
		return rc;
	size_t cap = 0;
	int64_t count = 0;
	while ((rc = mvcc_iter_next(&it)) == 1) {
		count++;
		if (resp->n_kvs >= p.want)
			continue;
		MDB_val k, v;
		mvcc_rec_t r;
		Mvccpb__KeyValue *kvp;
		if ((rc = mvcc_rec_get(kv, txn, it.ent, &k, &v, &r)) != KV_OK)
			break;
		if (p.filter && mvcc_pruned(req, &r.h))
			continue;
		if ((rc = mvcc_kv_build(&r, mvcc_ent_main(it.ent), with_value, &kvp)) != KV_OK ||
		    (rc = mvcc_kvs_push(resp, &cap, kvp)) != KV_OK)
			break;
	}
	mvcc_iter_close(&it);
	if (rc < 0)
		return rc;
	resp->count = count;
	if (p.sorting && resp->n_kvs > 1) {
		Mvccpb__KeyValue **tmp = malloc(resp->n_kvs * sizeof(*tmp));
		if (!tmp)
			return KV_ERR_NOMEM;
		mvcc_sort(resp->kvs, tmp, resp->n_kvs, req->sort_target, p.desc);
		free(tmp);
	}
	if (req->limit > 0 && resp->n_kvs > (uint64_t)req->limit) {
		while (resp->n_kvs > (size_t)req->limit)
			mvcc_kv_free(resp->kvs[--resp->n_kvs]);
		resp->more = true;
	}
	if (req->keys_only && p.by_value) {
		for (size_t i = 0; i < resp->n_kvs; i++) {
			free(resp->kvs[i]->value.data);
			resp->kvs[i]->value.data = NULL;
			resp->kvs[i]->value.len = 0;
		}
	}
	return KV_OK;
}

/* The revision a range reads, or etcd's error for it. */
static int mvcc_range_rev(kv_t *kv, MDB_txn *txn, int64_t cur, const range_req_t *req,
			  int64_t *rev)
{
	if (req->key.len == 0)
		return KV_ERR_EMPTY_KEY;
	*rev = req->revision;
	if (*rev > cur)
		return KV_ERR_FUTURE_REV;
	if (*rev <= 0)
		*rev = cur;
	int64_t first;
	int rc = mvcc_first_rev(kv, txn, &first);
	if (rc != KV_OK)
		return rc;
	return *rev < first ? KV_ERR_COMPACTED : KV_OK;
}

int mvcc_range(kv_t *kv, MDB_txn *txn, int64_t cur, const range_req_t *req, range_resp_t *resp)
{
	int64_t rev;
	int rc = mvcc_range_rev(kv, txn, cur, req, &rev);
	return rc != KV_OK ? rc : mvcc_range_collect(kv, txn, rev, req, resp);
}

/* ---- range, packed --------------------------------------------------------------------- */

/* A record picked for a packed answer, left in LMDB's memory: a read transaction's
 * pointers stay valid until it ends, so nothing of the record is copied before it goes
 * into the answer. 16 bytes a key instead of a KeyValue with two allocations. */
typedef struct mvcc_pick {
	const uint8_t *rec;
	size_t size;
} mvcc_pick_t;

typedef struct mvcc_picks {
	mvcc_pick_t *v;
	size_t n, cap;
} mvcc_picks_t;

/* Picks were parsed once when taken; this only finds the parts again. */
static void mvcc_pick_rec(const mvcc_pick_t *p, mvcc_rec_t *r)
{
	memcpy(&r->h, p->rec, MVCC_HDR_LEN);
	r->key = p->rec + MVCC_HDR_LEN;
	r->val = r->key + r->h.key_len;
	r->vlen = p->size - MVCC_HDR_LEN - r->h.key_len;
}

static int mvcc_picks_push(mvcc_picks_t *l, const MDB_val *v)
{
	if (l->n == l->cap) {
		size_t c = l->cap ? l->cap * 2 : 64;
		mvcc_pick_t *p = realloc(l->v, c * sizeof(*p));
		if (!p)
			return KV_ERR_NOMEM;
		l->v = p;
		l->cap = c;
	}
	l->v[l->n].rec = v->mv_data;
	l->v[l->n].size = v->mv_size;
	l->n++;
	return KV_OK;
}

/* The same order as mvcc_sort_cmp gives the KeyValues built from these records. */
static int mvcc_pick_cmp(const mvcc_pick_t *a, const mvcc_pick_t *b, int target)
{
	mvcc_rec_t ra, rb;
	mvcc_pick_rec(a, &ra);
	mvcc_pick_rec(b, &rb);
	switch (target) {
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
		return mvcc_cmp_i64(ra.h.version, rb.h.version);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
		return mvcc_cmp_i64(ra.h.create_revision, rb.h.create_revision);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
		return mvcc_cmp_i64(ra.h.mod_revision, rb.h.mod_revision);
	case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
		return kv_key_cmp(ra.val, ra.vlen, rb.val, rb.vlen);
	default:
		return kv_key_cmp(ra.key, ra.h.key_len, rb.key, rb.h.key_len);
	}
}

/* mvcc_sort's merge, step for step, so ties land where they land there. */
static void mvcc_pick_sort(mvcc_pick_t *a, mvcc_pick_t *tmp, size_t n, int target, bool desc)
{
	if (n < 2)
		return;
	size_t h = n / 2;
	mvcc_pick_sort(a, tmp, h, target, desc);
	mvcc_pick_sort(a + h, tmp, n - h, target, desc);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n) {
		int c = mvcc_pick_cmp(&a[i], &a[j], target);
		if (desc)
			c = -c;
		tmp[k++] = c <= 0 ? a[i++] : a[j++];
	}
	while (i < h)
		tmp[k++] = a[i++];
	while (j < n)
		tmp[k++] = a[j++];
	memcpy(a, tmp, n * sizeof(*a));
}

/* mvcc_range_collect's walk, keeping records where they are. The idx entry said "put",
 * so a record that is a tombstone is damage (a KeyValue of it would be half empty). */
static int mvcc_range_pick(kv_t *kv, MDB_txn *txn, int64_t rev, const range_req_t *req,
			   const mvcc_plan_t *p, mvcc_picks_t *out, int64_t *count)
{
	mvcc_iter_t it;
	int rc = mvcc_iter_open(kv, txn, &req->key, &req->range_end, rev, &it);
	if (rc != KV_OK)
		return rc;
	*count = 0;
	while ((rc = mvcc_iter_next(&it)) == 1) {
		(*count)++;
		if (out->n >= p->want)
			continue;
		MDB_val k, v;
		mvcc_rec_t r;
		if ((rc = mvcc_rec_get(kv, txn, it.ent, &k, &v, &r)) != KV_OK)
			break;
		if (r.h.type != KV_REC_PUT) {
			rc = kv_set_error(kv, KV_ERR_CORRUPT, "%s: idx names a put at %lld, rev "
					  "holds a delete", kv->path,
					  (long long)mvcc_ent_main(it.ent));
			break;
		}
		if (p->filter && mvcc_pruned(req, &r.h))
			continue;
		if ((rc = mvcc_picks_push(out, &v)) != KV_OK)
			break;
	}
	mvcc_iter_close(&it);
	return rc < 0 ? rc : KV_OK;
}

static size_t mvcc_wire_i64(int64_t v)
{
	return v ? 1 + kv_pb_varint_len((uint64_t)v) : 0;
}

static size_t mvcc_wire_bytes(size_t len)
{
	return len ? 1 + kv_pb_varint_len(len) + len : 0;
}

/* The packed length of the KeyValue of r (proto3: zero fields are left out). */
static size_t mvcc_wire_kv_len(const mvcc_rec_t *r, bool with_value)
{
	return mvcc_wire_bytes(r->h.key_len) + mvcc_wire_i64(r->h.create_revision) +
	       mvcc_wire_i64(r->h.mod_revision) + mvcc_wire_i64(r->h.version) +
	       mvcc_wire_bytes(with_value ? r->vlen : 0) + mvcc_wire_i64(r->h.lease);
}

static uint8_t *mvcc_put_i64(uint8_t *o, uint8_t tag, int64_t v)
{
	if (!v)
		return o;
	*o++ = tag;
	return kv_pb_put_varint(o, (uint64_t)v);
}

static uint8_t *mvcc_put_bytes(uint8_t *o, uint8_t tag, const uint8_t *p, size_t len)
{
	if (!len)
		return o;
	*o++ = tag;
	o = kv_pb_put_varint(o, len);
	memcpy(o, p, len);
	return o + len;
}

/* Field tags: (number << 3) | wire type (0 varint, 2 length-delimited). */
enum {
	WIRE_RR_HEADER = 0x0a, WIRE_RR_KVS = 0x12, WIRE_RR_MORE = 0x18, WIRE_RR_COUNT = 0x20,
	WIRE_KV_KEY = 0x0a, WIRE_KV_CREATE = 0x10, WIRE_KV_MOD = 0x18, WIRE_KV_VERSION = 0x20,
	WIRE_KV_VALUE = 0x2a, WIRE_KV_LEASE = 0x30,
};

/* One element of RangeResponse.kvs: tag, length, then KeyValue's fields in number order
 * (the order protobuf-c packs them in). */
static uint8_t *mvcc_put_kv(uint8_t *o, const mvcc_rec_t *r, bool with_value)
{
	*o++ = WIRE_RR_KVS;
	o = kv_pb_put_varint(o, mvcc_wire_kv_len(r, with_value));
	o = mvcc_put_bytes(o, WIRE_KV_KEY, r->key, r->h.key_len);
	o = mvcc_put_i64(o, WIRE_KV_CREATE, r->h.create_revision);
	o = mvcc_put_i64(o, WIRE_KV_MOD, r->h.mod_revision);
	o = mvcc_put_i64(o, WIRE_KV_VERSION, r->h.version);
	o = mvcc_put_bytes(o, WIRE_KV_VALUE, r->val, with_value ? r->vlen : 0);
	return mvcc_put_i64(o, WIRE_KV_LEASE, r->h.lease);
}

/* Sizes everything first, so the answer is written once into a buffer of its length. */
static int mvcc_range_write(kv_t *kv, const range_req_t *req, const mvcc_picks_t *l,
			    int64_t count, bool more, const Etcdserverpb__ResponseHeader *hdr,
			    size_t max_len, kv_packed_t *out)
{
	bool with_value = !req->keys_only;
	size_t hlen = protobuf_c_message_get_packed_size(&hdr->base);
	size_t len = 1 + kv_pb_varint_len(hlen) + hlen;
	for (size_t i = 0; i < l->n; i++) {
		mvcc_rec_t r;
		mvcc_pick_rec(&l->v[i], &r);
		size_t n = mvcc_wire_kv_len(&r, with_value);
		len += 1 + kv_pb_varint_len(n) + n;
	}
	len += (more ? 2 : 0) + mvcc_wire_i64(count);
	if (max_len && len > max_len) {
		out->len = len;
		return KV_OK;
	}
	int rc = kv_packed_alloc(out, len);
	if (rc != KV_OK)
		return rc;
	uint8_t *o = out->data;
	*o++ = WIRE_RR_HEADER;
	o = kv_pb_put_varint(o, hlen);
	o += protobuf_c_message_pack(&hdr->base, o);
	for (size_t i = 0; i < l->n; i++) {
		mvcc_rec_t r;
		mvcc_pick_rec(&l->v[i], &r);
		o = mvcc_put_kv(o, &r, with_value);
	}
	if (more) {
		*o++ = WIRE_RR_MORE;
		*o++ = 1;
	}
	o = mvcc_put_i64(o, WIRE_RR_COUNT, count);
	if ((size_t)(o - out->data) != len) {
		size_t wrote = (size_t)(o - out->data);
		kv_packed_free(out);
		return kv_set_error(kv, KV_ERR_IO, "packed range of %zu bytes, sized %zu", wrote,
				    len);
	}
	return KV_OK;
}

int mvcc_range_pack(kv_t *kv, MDB_txn *txn, int64_t cur, const range_req_t *req,
		    const Etcdserverpb__ResponseHeader *hdr, size_t max_len, kv_packed_t *out)
{
	int64_t rev, count;
	int rc = mvcc_range_rev(kv, txn, cur, req, &rev);
	if (rc != KV_OK)
		return rc;
	mvcc_plan_t p;
	mvcc_plan(req, &p);
	mvcc_picks_t l = { 0 };
	rc = mvcc_range_pick(kv, txn, rev, req, &p, &l, &count);
	if (rc == KV_OK && p.sorting && l.n > 1) {
		mvcc_pick_t *tmp = malloc(l.n * sizeof(*tmp));
		if (tmp)
			mvcc_pick_sort(l.v, tmp, l.n, req->sort_target, p.desc);
		else
			rc = KV_ERR_NOMEM;
		free(tmp);
	}
	bool more = false;
	if (rc == KV_OK && req->limit > 0 && l.n > (uint64_t)req->limit) {
		l.n = (size_t)req->limit;
		more = true;
	}
	if (rc == KV_OK)
		rc = mvcc_range_write(kv, req, &l, count, more, hdr, max_len, out);
	free(l.v);
	return rc;
}

/* ---- writes ---------------------------------------------------------------------------- */

/* Appends one revision of key: the record in "rev" and its entry in "idx". */
static int mvcc_write_rev(kv_wtxn_t *w, int type, const bin_t *key, const bin_t *value,
			  const kv_rec_hdr_t *meta)
{
	kv_t *kv = w->kv;
	if (!w->main)
		w->main = w->rev + 1;
	uint8_t rk[MVCC_REV_LEN], ent[MVCC_ENT_LEN];
	mvcc_rev_encode(rk, w->main, w->sub);
	memcpy(ent, rk, MVCC_REV_LEN);
	ent[16] = (uint8_t)type;
	kv_rec_hdr_t h;
	memset(&h, 0, sizeof(h));
	if (meta)
		h = *meta;
	h.type = (uint8_t)type;
	h.key_len = (uint32_t)key->len;
	size_t vlen = value ? value->len : 0;
	MDB_val k = { sizeof(rk), rk }, v = { MVCC_HDR_LEN + key->len + vlen, NULL };
	/* Revisions only grow, so every record goes at the end of "rev". */
	int rc = mdb_put(w->txn, kv->dbi_rev, &k, &v, MDB_APPEND | MDB_RESERVE);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "write rev");
	uint8_t *p = v.mv_data;
	memcpy(p, &h, MVCC_HDR_LEN);
	if (key->len)
		memcpy(p + MVCC_HDR_LEN, key->data, key->len);
	if (vlen)
		memcpy(p + MVCC_HDR_LEN + key->len, value->data, vlen);
	MDB_val ik = { key->len, key->data }, iv = { sizeof(ent), ent };
	rc = mdb_put(w->txn, kv->dbi_idx, &ik, &iv, MDB_NODUPDATA);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "write idx");
	w->sub++;
	return KV_OK;
}

/* Queues the event of a change: kv is taken over; prev (borrowed) is copied when some
 * watcher wants prev_kv. */
static int mvcc_event_push(kv_wtxn_t *w, int type, Mvccpb__KeyValue *kvp,
			   const Mvccpb__KeyValue *prev)
{
	Mvccpb__Event *ev = malloc(sizeof(*ev));
	if (!ev) {
		mvcc_kv_free(kvp);
		return KV_ERR_NOMEM;
	}
	mvccpb__event__init(ev);
	ev->type = type == KV_REC_PUT ? MVCCPB__EVENT__EVENT_TYPE__PUT
				      : MVCCPB__EVENT__EVENT_TYPE__DELETE;
	ev->kv = kvp;
	int rc = KV_OK;
	if (w->want_prev && prev)
		rc = mvcc_kv_copy(prev, &ev->prev_kv);
	if (rc == KV_OK)
		rc = kv_events_push(&w->events, ev);
	if (rc != KV_OK)
		protobuf_c_message_free_unpacked(&ev->base, NULL);
	return rc;
}

static int mvcc_check_put(const Etcdserverpb__PutRequest *req)
{
	if (req->key.len == 0)
		return KV_ERR_EMPTY_KEY;
	if (req->key.len > KV_MAX_KEY_SIZE)
		return KV_ERR_KEY_TOO_LARGE;
	if (req->ignore_value && req->value.len)
		return KV_ERR_VALUE_PROVIDED;
	if (req->ignore_lease && req->lease)
		return KV_ERR_LEASE_PROVIDED;
	return KV_OK;
}

static int mvcc_put_apply(kv_wtxn_t *w, const Etcdserverpb__PutRequest *req,
			  Etcdserverpb__PutResponse *resp)
{
	kv_t *kv = w->kv;
	Mvccpb__KeyValue *prev = NULL, *kvp = NULL;
	int rc = mvcc_get(kv, w->txn, req->key.data, req->key.len, 0, false, &prev);
	if (rc != KV_OK)
		return rc;
	if ((req->ignore_value || req->ignore_lease) && !prev) {
		rc = KV_ERR_KEY_NOT_FOUND;
		goto out;
	}
	bin_t value = req->ignore_value ? prev->value : req->value;
	int64_t lease = req->ignore_lease ? prev->lease : req->lease;
	int64_t old_lease = prev ? prev->lease : 0;
	kv_rec_hdr_t h;
	memset(&h, 0, sizeof(h));
	h.create_revision = prev ? prev->create_revision : (w->main ? w->main : w->rev + 1);
	h.mod_revision = w->main ? w->main : w->rev + 1;
	h.version = prev ? prev->version + 1 : 1;
	h.lease = lease;
	if ((rc = mvcc_write_rev(w, KV_REC_PUT, &req->key, &value, &h)) != KV_OK)
		goto out;
	if (old_lease != lease && old_lease &&
	    (rc = kv_lessor_detach(w, old_lease, req->key.data, req->key.len)) != KV_OK)
		goto out;
	if (old_lease != lease && lease &&
	    (rc = kv_lessor_attach(w, lease, req->key.data, req->key.len)) != KV_OK)
		goto out;
	if (!w->want_events)
		goto done;
	if (!(kvp = mvcc_kv_new())) {
		rc = KV_ERR_NOMEM;
		goto out;
	}
	kvp->create_revision = h.create_revision;
	kvp->mod_revision = h.mod_revision;
	kvp->version = h.version;
	kvp->lease = h.lease;
	if (kv_bin_dup(&kvp->key, req->key.data, req->key.len) != KV_OK ||
	    kv_bin_dup(&kvp->value, value.data, value.len) != KV_OK) {
		mvcc_kv_free(kvp);
		rc = KV_ERR_NOMEM;
		goto out;
	}
	if ((rc = mvcc_event_push(w, KV_REC_PUT, kvp, prev)) != KV_OK)
		goto out;
done:
	if (req->prev_kv && resp) {
		resp->prev_kv = prev;
		prev = NULL;
	}
out:
	mvcc_kv_free(prev);
	return rc;
}

int mvcc_put(kv_wtxn_t *w, const Etcdserverpb__PutRequest *req, Etcdserverpb__PutResponse *resp)
{
	int rc = mvcc_check_put(req);
	if (rc != KV_OK)
		return rc;
	/* etcd looks the lease up before it looks at the key (ignore_value on a missing key
	 * with a missing lease reports the lease). */
	if (req->lease && !kv_lessor_exists(w->kv, req->lease))
		return KV_ERR_LEASE_NOT_FOUND;
	return mvcc_put_apply(w, req, resp);
}

/* The live keys of a range at the latest revision, with values when asked. */
typedef struct mvcc_kvs {
	Mvccpb__KeyValue **v;
	size_t n, cap;
} mvcc_kvs_t;

static void mvcc_kvs_free(mvcc_kvs_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		mvcc_kv_free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int mvcc_live_keys(kv_t *kv, MDB_txn *txn, const bin_t *key, const bin_t *end,
			  bool with_value, mvcc_kvs_t *out)
{
	mvcc_iter_t it;
	int rc = mvcc_iter_open(kv, txn, key, end, 0, &it);
	if (rc != KV_OK)
		return rc;
	while ((rc = mvcc_iter_next(&it)) == 1) {
		MDB_val k, v;
		mvcc_rec_t r;
		Mvccpb__KeyValue *kvp;
		if ((rc = mvcc_rec_get(kv, txn, it.ent, &k, &v, &r)) != KV_OK ||
		    (rc = mvcc_kv_build(&r, mvcc_ent_main(it.ent), with_value, &kvp)) != KV_OK)
			break;
		if (out->n == out->cap) {
			size_t c = out->cap ? out->cap * 2 : 8;
			Mvccpb__KeyValue **p = realloc(out->v, c * sizeof(*p));
			if (!p) {
				mvcc_kv_free(kvp);
				rc = KV_ERR_NOMEM;
				break;
			}
			out->v = p;
			out->cap = c;
		}
		out->v[out->n++] = kvp;
	}
	mvcc_iter_close(&it);
	return rc < 0 ? rc : KV_OK;
}

int mvcc_delete_range(kv_wtxn_t *w, const Etcdserverpb__DeleteRangeRequest *req,
		      Etcdserverpb__DeleteRangeResponse *resp)
{
	kv_t *kv = w->kv;
	if (req->key.len == 0)
		return KV_ERR_EMPTY_KEY;
	mvcc_kvs_t dels = { 0 };
	/* Collect first, write after: the cursor never walks what it is changing. */
	int rc = mvcc_live_keys(kv, w->txn, &req->key, &req->range_end,
				req->prev_kv || w->want_prev, &dels);
	for (size_t i = 0; rc == KV_OK && i < dels.n; i++) {
		const Mvccpb__KeyValue *p = dels.v[i];
		rc = mvcc_write_rev(w, KV_REC_DEL, &p->key, NULL, NULL);
		if (rc == KV_OK && p->lease)
			rc = kv_lessor_detach(w, p->lease, p->key.data, p->key.len);
		Mvccpb__KeyValue *kvp = NULL;
		if (!w->want_events)
			continue;
		if (rc == KV_OK && !(kvp = mvcc_kv_new()))
			rc = KV_ERR_NOMEM;
		if (rc == KV_OK) {
			kvp->mod_revision = w->main;
			if (kv_bin_dup(&kvp->key, p->key.data, p->key.len) != KV_OK) {
				mvcc_kv_free(kvp);
				rc = KV_ERR_NOMEM;
			}
		}
		if (rc == KV_OK)
			rc = mvcc_event_push(w, KV_REC_DEL, kvp, p);
	}
	if (rc == KV_OK && resp) {
		resp->deleted = (int64_t)dels.n;
		if (req->prev_kv && dels.n) {
			resp->prev_kvs = dels.v;
			resp->n_prev_kvs = dels.n;
			dels.v = NULL;
			dels.n = 0;
		}
	}
	mvcc_kvs_free(&dels);
	return rc;
}

/* ---- txn ------------------------------------------------------------------------------- */

/* A put or a delete of a txn as etcd's checkIntervals sees it: a point [k, k+"\0") or an
 * interval [b, e). Deletes with range_end "\0" become [b, "\0"), which etcd's interval tree
 * never finds overlapping anything; that is kept, to accept exactly what etcd accepts. */
typedef struct mvcc_ivl {
	bin_t b, e;
	bool point;
} mvcc_ivl_t;

typedef struct mvcc_wset {
	bin_t *puts;
	size_t np, cp;
	mvcc_ivl_t *dels;
	size_t nd, cd;
} mvcc_wset_t;

static void mvcc_wset_free(mvcc_wset_t *s)
{
	free(s->puts);
	free(s->dels);
	memset(s, 0, sizeof(*s));
}

static bool mvcc_wset_has_put(const mvcc_wset_t *s, const bin_t *k)
{
	for (size_t i = 0; i < s->np; i++)
		if (kv_key_cmp(s->puts[i].data, s->puts[i].len, k->data, k->len) == 0)
			return true;
	return false;
}

static bool mvcc_wset_deletes(const mvcc_wset_t *s, const bin_t *k)
{
	for (size_t i = 0; i < s->nd; i++) {
		const mvcc_ivl_t *d = &s->dels[i];
		int cb = kv_key_cmp(d->b.data, d->b.len, k->data, k->len);
		if (d->point ? cb == 0
			     : cb <= 0 && kv_key_cmp(k->data, k->len, d->e.data, d->e.len) < 0)
			return true;
	}
	return false;
}

static int mvcc_wset_add_put(mvcc_wset_t *s, const bin_t *k)
{
	if (mvcc_wset_has_put(s, k))
		return KV_OK;
	if (s->np == s->cp) {
		size_t c = s->cp ? s->cp * 2 : 8;
		bin_t *p = realloc(s->puts, c * sizeof(*p));
		if (!p)
			return KV_ERR_NOMEM;
		s->puts = p;
		s->cp = c;
	}
	s->puts[s->np++] = *k;
	return KV_OK;
}

static int mvcc_wset_add_del(mvcc_wset_t *s, const mvcc_ivl_t *d)
{
	if (s->nd == s->cd) {
		size_t c = s->cd ? s->cd * 2 : 8;
		mvcc_ivl_t *p = realloc(s->dels, c * sizeof(*p));
		if (!p)
			return KV_ERR_NOMEM;
		s->dels = p;
		s->cd = c;
	}
	s->dels[s->nd++] = *d;
	return KV_OK;
}

static int mvcc_check_intervals(req_op_t *const *ops, size_t n, mvcc_wset_t *out);

/* Merges the write sets of one nested txn's branches into out (etcd's rules: then and
 * else may put the same key, being exclusive; neither may hit what out already has). */
static int mvcc_merge_child(const txn_req_t *t, mvcc_wset_t *out)
{
	mvcc_wset_t then = { 0 }, els = { 0 };
	int rc = mvcc_check_intervals(t->success, t->n_success, &then);
	if (rc == KV_OK)
		rc = mvcc_check_intervals(t->failure, t->n_failure, &els);
	for (size_t i = 0; rc == KV_OK && i < then.np; i++) {
		if (mvcc_wset_has_put(out, &then.puts[i]) || mvcc_wset_deletes(out, &then.puts[i]))
			rc = KV_ERR_DUPLICATE_KEY;
		else
			rc = mvcc_wset_add_put(out, &then.puts[i]);
	}
	for (size_t i = 0; rc == KV_OK && i < els.np; i++) {
		if ((mvcc_wset_has_put(out, &els.puts[i]) && !mvcc_wset_has_put(&then, &els.puts[i])) ||
		    mvcc_wset_deletes(out, &els.puts[i]))
			rc = KV_ERR_DUPLICATE_KEY;
		else
			rc = mvcc_wset_add_put(out, &els.puts[i]);
	}
	for (size_t i = 0; rc == KV_OK && i < then.nd; i++)
		rc = mvcc_wset_add_del(out, &then.dels[i]);
	for (size_t i = 0; rc == KV_OK && i < els.nd; i++)
		rc = mvcc_wset_add_del(out, &els.dels[i]);
	mvcc_wset_free(&then);
	mvcc_wset_free(&els);
	return rc;
}

static int mvcc_check_intervals(req_op_t *const *ops, size_t n, mvcc_wset_t *out)
{
	int rc = KV_OK;
	for (size_t i = 0; rc == KV_OK && i < n; i++) {
		if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE ||
		    !ops[i]->request_delete_range)
			continue;
		const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
		mvcc_ivl_t iv = { d->key, d->range_end, d->range_end.len == 0 };
		rc = mvcc_wset_add_del(out, &iv);
	}
	for (size_t i = 0; rc == KV_OK && i < n; i++)
		if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
		    ops[i]->request_txn)
			rc = mvcc_merge_child(ops[i]->request_txn, out);
	for (size_t i = 0; rc == KV_OK && i < n; i++) {
		if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT ||
		    !ops[i]->request_put)
			continue;
		const bin_t *k = &ops[i]->request_put->key;
		if (mvcc_wset_has_put(out, k) || mvcc_wset_deletes(out, k))
			rc = KV_ERR_DUPLICATE_KEY;
		else
			rc = mvcc_wset_add_put(out, k);
	}
	if (rc != KV_OK)
		mvcc_wset_free(out);
	return rc;
}

static int mvcc_check_txn_req(const txn_req_t *t, int64_t max_ops);

static int mvcc_check_op(const req_op_t *op, int64_t max_ops)
{
	switch (op ? op->request_case : ETCDSERVERPB__REQUEST_OP__REQUEST__NOT_SET) {
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
		if (op->request_range && op->request_range->key.len)
			return KV_OK;
		return op->request_range ? KV_ERR_EMPTY_KEY : KV_ERR_KEY_NOT_FOUND;
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
		return op->request_put ? mvcc_check_put(op->request_put) : KV_ERR_KEY_NOT_FOUND;
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
		if (op->request_delete_range && op->request_delete_range->key.len)
			return KV_OK;
		return op->request_delete_range ? KV_ERR_EMPTY_KEY : KV_ERR_KEY_NOT_FOUND;
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
		return op->request_txn ? mvcc_check_txn_req(op->request_txn, max_ops)
				       : KV_ERR_KEY_NOT_FOUND;
	default:
		/* etcd answers an empty op with "key not found". */
		return KV_ERR_KEY_NOT_FOUND;
	}
}

static int mvcc_check_txn_req(const txn_req_t *t, int64_t max_ops)
{
	size_t opc = t->n_compare;
	if (opc < t->n_success)
		opc = t->n_success;
	if (opc < t->n_failure)
		opc = t->n_failure;
	if ((int64_t)opc > max_ops)
		return KV_ERR_TOO_MANY_OPS;
	for (size_t i = 0; i < t->n_compare; i++)
		if (!t->compare[i] || t->compare[i]->key.len == 0)
			return KV_ERR_EMPTY_KEY;
	for (size_t i = 0; i < t->n_success; i++) {
		int rc = mvcc_check_op(t->success[i], max_ops - (int64_t)opc);
		if (rc != KV_OK)
			return rc;
	}
	for (size_t i = 0; i < t->n_failure; i++) {
		int rc = mvcc_check_op(t->failure[i], max_ops - (int64_t)opc);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

int mvcc_check_txn(const txn_req_t *t, int max_ops)
{
	int rc = mvcc_check_txn_req(t, max_ops > 0 ? max_ops : KV_DEFAULT_MAX_TXN_OPS);
	mvcc_wset_t s = { 0 };
	if (rc == KV_OK && (rc = mvcc_check_intervals(t->success, t->n_success, &s)) == KV_OK) {
		mvcc_wset_free(&s);
		rc = mvcc_check_intervals(t->failure, t->n_failure, &s);
	}
	mvcc_wset_free(&s);
	return rc;
}

/* etcd's compareKV: a missing key compares as the zero KeyValue. */
static bool mvcc_compare_kv(const compare_t *c, const kv_rec_hdr_t *h, const uint8_t *val,
			    size_t vlen)
{
	int res = 0;
	int64_t want = 0;
	switch (c->target) {
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE: {
		bool set = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
		res = kv_key_cmp(val, vlen, set ? c->value.data : NULL, set ? c->value.len : 0);
		break;
	}
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
		if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
			want = c->create_revision;
		res = mvcc_cmp_i64(h->create_revision, want);
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
		if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
			want = c->mod_revision;
		res = mvcc_cmp_i64(h->mod_revision, want);
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
		if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION)
			want = c->version;
		res = mvcc_cmp_i64(h->version, want);
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
		if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE)
			want = c->lease;
		res = mvcc_cmp_i64(h->lease, want);
		break;
	default:
		break;
	}
	switch (c->result) {
	case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
		return res == 0;
	case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
		return res != 0;
	case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
		return res > 0;
	case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
		return res < 0;
	default:
		return true;
	}
}

/* Every live key of the compare's range must satisfy it; none at all compares the zero
 * KeyValue, except VALUE, which fails (etcd cannot tell a missing value from ""). */
static int mvcc_compare(kv_wtxn_t *w, const compare_t *c, bool *ok)
{
	mvcc_iter_t it;
	int rc = mvcc_iter_open(w->kv, w->txn, &c->key, &c->range_end, 0, &it);
	if (rc != KV_OK)
		return rc;
	bool any = false;
	*ok = true;
	while (*ok && (rc = mvcc_iter_next(&it)) == 1) {
		MDB_val k, v;
		mvcc_rec_t r;
		any = true;
		if ((rc = mvcc_rec_get(w->kv, w->txn, it.ent, &k, &v, &r)) != KV_OK)
			break;
		*ok = mvcc_compare_kv(c, &r.h, r.val, r.vlen);
	}
	mvcc_iter_close(&it);
	if (rc < 0)
		return rc;
	if (!any) {
		kv_rec_hdr_t zero;
		memset(&zero, 0, sizeof(zero));
		*ok = c->target != ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE &&
		      mvcc_compare_kv(c, &zero, NULL, 0);
	}
	return KV_OK;
}

/* Which branch every txn of the tree takes, in pre-order (etcd's compareToPath): all
 * decided on the state before the txn writes anything. */
typedef struct mvcc_path {
	bool *b;
	size_t n, cap;
} mvcc_path_t;

static req_op_t *const *mvcc_branch(const txn_req_t *t, bool ok, size_t *n)
{
	*n = ok ? t->n_success : t->n_failure;
	return ok ? t->success : t->failure;
}

static int mvcc_path_build(kv_wtxn_t *w, const txn_req_t *t, mvcc_path_t *p)
{
	bool ok = true;
	for (size_t i = 0; ok && i < t->n_compare; i++) {
		int rc = mvcc_compare(w, t->compare[i], &ok);
		if (rc != KV_OK)
			return rc;
	}
	if (p->n == p->cap) {
		size_t c = p->cap ? p->cap * 2 : 8;
		bool *b = realloc(p->b, c * sizeof(*b));
		if (!b)
			return KV_ERR_NOMEM;
		p->b = b;
		p->cap = c;
	}
	p->b[p->n++] = ok;
	size_t n;
	req_op_t *const *ops = mvcc_branch(t, ok, &n);
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
			continue;
		int rc = mvcc_path_build(w, ops[i]->request_txn, p);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

static bool mvcc_txn_readonly(const txn_req_t *t)
{
	for (int b = 0; b < 2; b++) {
		size_t n;
		req_op_t *const *ops = mvcc_branch(t, b == 0, &n);
		for (size_t i = 0; i < n; i++) {
			switch (ops[i]->request_case) {
			case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
			case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
				return false;
			case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
				if (!mvcc_txn_readonly(ops[i]->request_txn))
					return false;
				break;
			default:
				break;
			}
		}
	}
	return true;
}

/* etcd's checkRequestPut and checkRequestRange, on the state before the txn. */
static int mvcc_txn_check_op(kv_wtxn_t *w, const req_op_t *op, bool puts, int64_t first)
{
	if (puts && op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
		const Etcdserverpb__PutRequest *p = op->request_put;
		if (p->ignore_value || p->ignore_lease) {
			Mvccpb__KeyValue *cur = NULL;
			int rc = mvcc_get(w->kv, w->txn, p->key.data, p->key.len, 0, true, &cur);
			if (rc != KV_OK)
				return rc;
			if (!cur)
				return KV_ERR_KEY_NOT_FOUND;
			mvcc_kv_free(cur);
		}
		if (p->lease && !kv_lessor_exists(w->kv, p->lease))
			return KV_ERR_LEASE_NOT_FOUND;
	}
	if (!puts && op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
		int64_t rev = op->request_range->revision;
		if (rev == 0)
			return KV_OK;
		if (rev > w->rev)
			return KV_ERR_FUTURE_REV;
		if (rev < first)
			return KV_ERR_COMPACTED;
	}
	return KV_OK;
}

static int mvcc_txn_check(kv_wtxn_t *w, const txn_req_t *t, const mvcc_path_t *p, size_t *pos,
			  bool puts, int64_t first)
{
	size_t n;
	req_op_t *const *ops = mvcc_branch(t, p->b[(*pos)++], &n);
	for (size_t i = 0; i < n; i++) {
		int rc = ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN
				 ? mvcc_txn_check(w, ops[i]->request_txn, p, pos, puts, first)
				 : mvcc_txn_check_op(w, ops[i], puts, first);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

static void *mvcc_msg_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

static int mvcc_txn_exec(kv_wtxn_t *w, const txn_req_t *t, const mvcc_path_t *p, size_t *pos,
			 txn_resp_t *resp);

/* Runs one op of a txn into its ResponseOp (already in the response, so a failure part
 * way leaves a response that frees cleanly). Inner headers carry the revision etcd puts
 * there; a nested txn's header stays 0 as in etcd. */
static int mvcc_txn_op(kv_wtxn_t *w, const req_op_t *op, const mvcc_path_t *p, size_t *pos,
		       Etcdserverpb__ResponseOp *ro)
{
	int rc;
	Etcdserverpb__ResponseHeader **hdr;
	int64_t rev;
	switch (op->request_case) {
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
		range_resp_t *r = mvcc_msg_new(&etcdserverpb__range_response__descriptor);
		if (!r)
			return KV_ERR_NOMEM;
		ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
		ro->response_range = r;
		rev = w->main ? w->main : w->rev;
		rc = mvcc_range(w->kv, w->txn, rev, op->request_range, r);
		hdr = &r->header;
		break;
	}
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
		Etcdserverpb__PutResponse *r = mvcc_msg_new(&etcdserverpb__put_response__descriptor);
		if (!r)
			return KV_ERR_NOMEM;
		ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
		ro->response_put = r;
		rc = mvcc_put(w, op->request_put, r);
		rev = w->main;
		hdr = &r->header;
		break;
	}
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
		Etcdserverpb__DeleteRangeResponse *r =
			mvcc_msg_new(&etcdserverpb__delete_range_response__descriptor);
		if (!r)
			return KV_ERR_NOMEM;
		ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
		ro->response_delete_range = r;
		rc = mvcc_delete_range(w, op->request_delete_range, r);
		rev = w->main ? w->main : w->rev;
		hdr = &r->header;
		break;
	}
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
		txn_resp_t *r = mvcc_msg_new(&etcdserverpb__txn_response__descriptor);
		if (!r)
			return KV_ERR_NOMEM;
		ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
		ro->response_txn = r;
		rc = mvcc_txn_exec(w, op->request_txn, p, pos, r);
		rev = 0;
		hdr = &r->header;
		break;
	}
	default:
		return KV_OK;
	}
	if (rc == KV_OK && !(*hdr = kv_header_new(rev)))
		rc = KV_ERR_NOMEM;
	return rc;
}

static int mvcc_txn_exec(kv_wtxn_t *w, const txn_req_t *t, const mvcc_path_t *p, size_t *pos,
			 txn_resp_t *resp)
{
	bool ok = p->b[(*pos)++];
	size_t n;
	req_op_t *const *ops = mvcc_branch(t, ok, &n);
	resp->succeeded = ok;
	if (n && !(resp->responses = calloc(n, sizeof(*resp->responses))))
		return KV_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		Etcdserverpb__ResponseOp *ro =
			mvcc_msg_new(&etcdserverpb__response_op__descriptor);
		if (!ro)
			return KV_ERR_NOMEM;
		resp->responses[resp->n_responses++] = ro;
		int rc = mvcc_txn_op(w, ops[i], p, pos, ro);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

int mvcc_txn(kv_wtxn_t *w, const txn_req_t *req, txn_resp_t *resp)
{
	int rc = mvcc_check_txn(req, w->kv->opt.max_txn_ops);
	if (rc != KV_OK)
		return rc;
	mvcc_path_t p = { 0 };
	int64_t first = 0;
	size_t pos = 0;
	rc = mvcc_path_build(w, req, &p);
	if (rc == KV_OK && !mvcc_txn_readonly(req))
		rc = mvcc_txn_check(w, req, &p, &pos, true, first);
	if (rc == KV_OK)
		rc = mvcc_first_rev(w->kv, w->txn, &first);
	if (rc == KV_OK) {
		pos = 0;
		rc = mvcc_txn_check(w, req, &p, &pos, false, first);
	}
	if (rc == KV_OK) {
		pos = 0;
		rc = mvcc_txn_exec(w, req, &p, &pos, resp);
	}
	free(p.b);
	return rc;
}

/* ---- compaction ------------------------------------------------------------------------ */

int mvcc_compact(kv_wtxn_t *w, const Etcdserverpb__CompactionRequest *req)
{
	int64_t first;
	int rc = mvcc_first_rev(w->kv, w->txn, &first);
	if (rc != KV_OK)
		return rc;
	if (req->revision <= first)
		return KV_ERR_COMPACTED;
	if (req->revision > w->rev)
		return KV_ERR_FUTURE_REV;
	rc = kv_meta_put(w->kv, w->txn, "compact_sched", (uint64_t)req->revision);
	if (rc == KV_OK)
		w->kv->compact_rev = req->revision;
	return rc;
}

/* The entries of the key under c with main <= upto, oldest first. */
typedef struct mvcc_ents {
	uint8_t (*e)[MVCC_ENT_LEN];
	size_t n, cap;
} mvcc_ents_t;

static int mvcc_ents_below(kv_t *kv, MDB_cursor *c, MDB_val *key, int64_t upto, mvcc_ents_t *out)
{
	MDB_val d;
	out->n = 0;
	int rc = mdb_cursor_get(c, key, &d, MDB_FIRST_DUP);
	while (rc == MDB_SUCCESS) {
		if (d.mv_size != MVCC_ENT_LEN)
			return mvcc_corrupt_ent(kv, d.mv_size);
		if (mvcc_ent_main(d.mv_data) > upto)
			return KV_OK;
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 16;
			void *p = realloc(out->e, cap * MVCC_ENT_LEN);
			if (!p)
				return KV_ERR_NOMEM;
			out->e = p;
			out->cap = cap;
		}
		memcpy(out->e[out->n++], d.mv_data, MVCC_ENT_LEN);
		rc = mdb_cursor_get(c, key, &d, MDB_NEXT_DUP);
	}
	return rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "compact: read idx");
}

/* Drops the revisions of the key under c that compaction at upto retires, then moves c
 * to the next key (*more false: there is none). */
static int mvcc_compact_key(kv_t *kv, MDB_txn *txn, MDB_cursor *c, MDB_val *key, int64_t upto,
			    mvcc_ents_t *ents, bool *more)
{
	int rc = mvcc_ents_below(kv, c, key, upto, ents);
	if (rc != KV_OK)
		return rc;
	size_t drop = ents->n ? ents->n - 1 : 0;
	if (ents->n && ents->e[ents->n - 1][16] == KV_REC_DEL)
		drop++;
	MDB_val d;
	uint8_t kb[KV_MAX_KEY_SIZE];
	size_t klen = key->mv_size <= sizeof(kb) ? key->mv_size : sizeof(kb);
	if (drop) {
		memcpy(kb, key->mv_data, klen);
		for (size_t i = 0; i < drop; i++) {
			MDB_val ik = { klen, kb }, iv = { MVCC_ENT_LEN, ents->e[i] };
			MDB_val rk = { MVCC_REV_LEN, ents->e[i] };
			rc = mdb_del(txn, kv->dbi_idx, &ik, &iv);
			if (rc == MDB_SUCCESS)
				rc = mdb_del(txn, kv->dbi_rev, &rk, NULL);
			if (rc != MDB_SUCCESS)
				return kv_from_mdb(kv, rc, "compact: delete");
		}
		/* Find our place again rather than trust a cursor under deletions. */
		key->mv_size = klen;
		key->mv_data = kb;
		rc = mdb_cursor_get(c, key, &d, MDB_SET_RANGE);
		if (rc == MDB_SUCCESS && kv_key_cmp(key->mv_data, key->mv_size, kb, klen) == 0)
			rc = mdb_cursor_get(c, key, &d, MDB_NEXT_NODUP);
	} else {
		rc = mdb_cursor_get(c, key, &d, MDB_NEXT_NODUP);
	}
	*more = rc == MDB_SUCCESS;
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return kv_from_mdb(kv, rc, "compact: walk idx");
	return KV_OK;
}

int mvcc_compact_step(kv_t *kv, MDB_txn *txn, int64_t upto, const uint8_t *resume_key,
		      size_t resume_len, size_t max_keys, uint8_t **next_key, size_t *next_len,
		      bool *done)
{
	*next_key = NULL;
	*next_len = 0;
	*done = false;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, kv->dbi_idx, &c);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "compact: open cursor");
	MDB_val key = { 0, NULL }, d;
	if (resume_key && resume_len) {
		key.mv_size = resume_len < KV_MAX_KEY_SIZE ? resume_len : KV_MAX_KEY_SIZE;
		key.mv_data = (void *)resume_key;
		rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(c, &key, &d, MDB_FIRST);
	}
	bool more = rc == MDB_SUCCESS;
	rc = rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "compact: seek");
	mvcc_ents_t ents = { 0 };
	for (size_t visited = 0; rc == KV_OK && more && visited < (max_keys ? max_keys : 1);
	     visited++)
		rc = mvcc_compact_key(kv, txn, c, &key, upto, &ents, &more);
	free(ents.e);
	if (rc == KV_OK && more) {
		/* Stopped on a key not yet looked at: the next step starts there. */
		uint8_t *k = malloc(key.mv_size ? key.mv_size : 1);
		if (!k) {
			rc = KV_ERR_NOMEM;
		} else {
			memcpy(k, key.mv_data, key.mv_size);
			*next_key = k;
			*next_len = key.mv_size;
		}
	}
	*done = rc == KV_OK && !more;
	mdb_cursor_close(c);
	return rc;
}

/* ---- HashKV ---------------------------------------------------------------------------- */

static int mvcc_hash_ent(kv_t *kv, MDB_txn *txn, const uint8_t *ent, uint32_t *h)
{
	MDB_val k, v;
	int rc = mvcc_rec_get(kv, txn, ent, &k, &v, NULL);
	if (rc != KV_OK)
		return rc;
	*h = kv_crc32c(*h, k.mv_data, k.mv_size);
	*h = kv_crc32c(*h, v.mv_data, v.mv_size);
	return KV_OK;
}

/* One key's part of the hash: what compaction at c keeps (the newest revision <= c unless
 * a tombstone) and every revision in (c, rev], whether or not compaction ran yet. */
static int mvcc_hash_key(kv_t *kv, MDB_txn *txn, MDB_cursor *cur, MDB_val *key, int64_t c,
			 int64_t rev, uint32_t *h)
{
	uint8_t kept[MVCC_ENT_LEN];
	bool have_kept = false;
	MDB_val d;
	int rc = mdb_cursor_get(cur, key, &d, MDB_FIRST_DUP);
	while (rc == MDB_SUCCESS) {
		if (d.mv_size != MVCC_ENT_LEN)
			return mvcc_corrupt_ent(kv, d.mv_size);
		int64_t main = mvcc_ent_main(d.mv_data);
		if (main > rev)
			break;
		if (main <= c) {
			memcpy(kept, d.mv_data, MVCC_ENT_LEN);
			have_kept = true;
		} else {
			if (have_kept && kept[16] == KV_REC_PUT &&
			    (rc = mvcc_hash_ent(kv, txn, kept, h)) != KV_OK)
				return rc;
			have_kept = false;
			uint8_t ent[MVCC_ENT_LEN];
			memcpy(ent, d.mv_data, MVCC_ENT_LEN);
			if ((rc = mvcc_hash_ent(kv, txn, ent, h)) != KV_OK)
				return rc;
		}
		rc = mdb_cursor_get(cur, key, &d, MDB_NEXT_DUP);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return kv_from_mdb(kv, rc, "hash: read idx");
	if (have_kept && kept[16] == KV_REC_PUT)
		return mvcc_hash_ent(kv, txn, kept, h);
	return KV_OK;
}

int mvcc_hash(kv_t *kv, MDB_txn *txn, int64_t rev, uint32_t *hash)
{
	int64_t c;
	int rc = mvcc_first_rev(kv, txn, &c);
	if (rc != KV_OK)
		return rc;
	MDB_cursor *cur;
	rc = mdb_cursor_open(txn, kv->dbi_idx, &cur);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "hash: open cursor");
	uint32_t h = 0;
	MDB_val key, d;
	int mrc = mdb_cursor_get(cur, &key, &d, MDB_FIRST);
	while (mrc == MDB_SUCCESS && rc == KV_OK) {
		rc = mvcc_hash_key(kv, txn, cur, &key, c, rev, &h);
		if (rc == KV_OK)
			mrc = mdb_cursor_get(cur, &key, &d, MDB_NEXT_NODUP);
	}
	mdb_cursor_close(cur);
	if (rc == KV_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
		rc = kv_from_mdb(kv, mrc, "hash: walk idx");
	if (rc == KV_OK)
		*hash = h;
	return rc;
}
