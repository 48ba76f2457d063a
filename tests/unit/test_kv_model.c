/* test_kv_model.c — model-based randomized test of the MVCC key space: seeded random
 * sequences of put / delete / txn / range / compact / lease grant+revoke / reopen are
 * fed to two stores and to a plain in-memory model of etcd's full history (linear scans,
 * obviously right); every answer, error and revision must agree, and the two stores'
 * HashKV must agree however far their physical compaction went.
 * Usage: unit_kv_model [first..last | seed,seed,...] [ops per seed] (default 1..2000 200). */
#include "kv_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys and values ------------------------------------------------------------------ */

typedef struct mkey {
	const char *s;
	size_t len;
} mkey_t;

static const mkey_t model_keys[] = { { "a", 1 }, { "aa", 2 }, { "ab", 2 }, { "b", 1 },
				     { "ba", 2 }, { "bb", 2 }, { "c", 1 }, { "d", 1 },
				     { "e", 1 }, { "f", 1 } };
#define NKEYS ((int)(sizeof(model_keys) / sizeof(model_keys[0])))
static const mkey_t model_starts[] = { { "\0", 1 }, { "0", 1 }, { "ac", 2 } };
static const mkey_t model_ends[] = { { "aa", 2 }, { "ac", 2 }, { "b", 1 }, { "b\0", 2 },
				     { "bc", 2 }, { "c", 1 }, { "e", 1 }, { "g", 1 },
				     { "z", 1 }, { "a", 1 } };
static const char *const model_values[] = { "", "x", "y", "z", "xx", "yy", "v1", "v22" };
#define NVALUES ((int)(sizeof(model_values) / sizeof(model_values[0])))
#define NLEASES 4

static ProtobufCBinaryData bin(const mkey_t *k)
{
	ProtobufCBinaryData b = { k->len, (uint8_t *)k->s };
	return b;
}

static int bcmp_(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (al < bl ? -1 : al > bl);
}

static bool in_range(const mkey_t *k, const ProtobufCBinaryData *s, const ProtobufCBinaryData *e)
{
	int cs = bcmp_((const uint8_t *)k->s, k->len, s->data, s->len);
	if (e->len == 0)
		return cs == 0;
	if (e->len == 1 && e->data[0] == 0)
		return cs >= 0;
	return cs >= 0 && bcmp_((const uint8_t *)k->s, k->len, e->data, e->len) < 0;
}

/* ---- the model: the whole history, scanned linearly ---------------------------------- */

typedef struct mrec {
	int key;
	int64_t main;
	bool del;
	const char *val;
	int64_t create, mod, ver, lease;
} mrec_t;

typedef struct model {
	mrec_t *h;
	size_t n, cap;
	int64_t rev;
	int64_t compact;             /* -1: never, as etcd */
	bool lease[NLEASES + 1];
	int64_t main;                /* revision of the write in progress, 0 if none */
} model_t;

/* The record of key live at rev, or NULL. */
static const mrec_t *m_state(const model_t *m, int key, int64_t rev)
{
	for (size_t i = m->n; i-- > 0;)
		if (m->h[i].key == key && m->h[i].main <= rev)
			return m->h[i].del ? NULL : &m->h[i];
	return NULL;
}

static const mrec_t *m_latest(const model_t *m, int key)
{
	return m_state(m, key, INT64_MAX);
}

static void m_append(model_t *m, mrec_t r)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->h = realloc(m->h, m->cap * sizeof(*m->h));
		assert_non_null(m->h);
	}
	if (!m->main)
		m->main = m->rev + 1;
	r.main = m->main;
	m->h[m->n++] = r;
}

static void m_put(model_t *m, int key, const char *val, int64_t lease)
{
	const mrec_t *cur = m_latest(m, key);
	mrec_t r = { .key = key, .val = val, .lease = lease };
	int64_t main = m->main ? m->main : m->rev + 1;
	r.create = cur ? cur->create : main;
	r.ver = cur ? cur->ver + 1 : 1;
	r.mod = main;
	m_append(m, r);
}

static void m_del(model_t *m, int key)
{
	mrec_t r = { .key = key, .del = true };
	m_append(m, r);
}

static void m_end_write(model_t *m)
{
	if (m->main)
		m->rev = m->main;
	m->main = 0;
}

/* ---- a test run: the model, two stores, and request memory --------------------------- */

typedef struct run {
	uint64_t rng;
	uint64_t seed;
	int op;
	model_t m;
	kvh_t *a, *b;                /* a: stepped compaction and reopens; b: eager compaction */
	void **pool;
	size_t np, cp;
} run_t;

static uint64_t rnd(run_t *r)
{
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 2685821657736338717ULL;
}

static int rn(run_t *r, int n)
{
	return (int)(rnd(r) % (uint64_t)n);
}

static void *alloc(run_t *r, size_t size)
{
	void *p = calloc(1, size);
	assert_non_null(p);
	if (r->np == r->cp) {
		r->cp = r->cp ? r->cp * 2 : 256;
		r->pool = realloc(r->pool, r->cp * sizeof(*r->pool));
		assert_non_null(r->pool);
	}
	r->pool[r->np++] = p;
	return p;
}

static void pool_free(run_t *r)
{
	while (r->np)
		free(r->pool[--r->np]);
}

#define CHECK(r, cond, ...)                                                                   \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			char msg_[256];                                                        \
			snprintf(msg_, sizeof(msg_), __VA_ARGS__);                             \
			fail_msg("seed %" PRIu64 " op %d: %s (%s:%d)", (r)->seed, (r)->op, msg_,   \
				 __FILE__, __LINE__);                                           \
		}                                                                              \
	} while (0)

static void check_kv(run_t *r, const Mvccpb__KeyValue *got, const mrec_t *want, bool keys_only,
		     const char *what)
{
	const mkey_t *k = &model_keys[want->key];
	CHECK(r, bcmp_(got->key.data, got->key.len, (const uint8_t *)k->s, k->len) == 0,
	      "%s: key %.*s want %.*s", what, (int)got->key.len, (char *)got->key.data,
	      (int)k->len, k->s);
	const char *v = keys_only ? "" : want->val;
	CHECK(r, bcmp_(got->value.data, got->value.len, (const uint8_t *)v, strlen(v)) == 0,
	      "%s: value of %s: %.*s want %s", what, k->s, (int)got->value.len,
	      (char *)got->value.data, v);
	CHECK(r, got->create_revision == want->create && got->mod_revision == want->mod &&
		 got->version == want->ver && got->lease == want->lease,
	      "%s: %s meta %lld/%lld/%lld/%lld want %lld/%lld/%lld/%lld", what, k->s,
	      (long long)got->create_revision, (long long)got->mod_revision,
	      (long long)got->version, (long long)got->lease, (long long)want->create,
	      (long long)want->mod, (long long)want->ver, (long long)want->lease);
}

/* ---- range ----------------------------------------------------------------------------- */

static int64_t sort_key_cmp(const mrec_t *a, const mrec_t *b, int target)
{
	switch (target) {
	case 1: return a->ver < b->ver ? -1 : a->ver > b->ver;
	case 2: return a->create < b->create ? -1 : a->create > b->create;
	case 3: return a->mod < b->mod ? -1 : a->mod > b->mod;
	case 4: return strcmp(a->val, b->val);
	default: return a->key < b->key ? -1 : a->key > b->key;
	}
}

/* etcd 3.4's applierV3backend.Range over the model, then compares with got. */
static void check_range(run_t *r, const Etcdserverpb__RangeRequest *q, int64_t cur, int err,
			const Etcdserverpb__RangeResponse *got)
{
	model_t *m = &r->m;
	int64_t rev = q->revision;
	int want_err = KV_OK;
	if (q->key.len == 0)
		want_err = KV_ERR_EMPTY_KEY;
	else if (rev > cur)
		want_err = KV_ERR_FUTURE_REV;
	else if ((rev <= 0 ? cur : rev) < m->compact)
		want_err = KV_ERR_COMPACTED;
	CHECK(r, err == want_err, "range err %d want %d (rev %lld cur %lld compact %lld)", err,
	      want_err, (long long)rev, (long long)cur, (long long)m->compact);
	if (err)
		return;
	if (rev <= 0)
		rev = cur;
	const mrec_t *kvs[NKEYS];
	int n = 0, count = 0;
	bool filter = q->min_mod_revision || q->max_mod_revision || q->min_create_revision ||
		      q->max_create_revision;
	int64_t fetch = (q->sort_order || filter || q->limit <= 0) ? NKEYS : q->limit + 1;
	for (int k = 0; k < NKEYS; k++) {
		const mrec_t *s = in_range(&model_keys[k], &q->key, &q->range_end)
					  ? m_state(m, k, rev) : NULL;
		if (!s)
			continue;
		count++;
		if (q->count_only || n >= fetch)
			continue;
		if ((q->max_mod_revision && s->mod > q->max_mod_revision) ||
		    (q->min_mod_revision && s->mod < q->min_mod_revision) ||
		    (q->max_create_revision && s->create > q->max_create_revision) ||
		    (q->min_create_revision && s->create < q->min_create_revision))
			continue;
		kvs[n++] = s;
	}
	int order = q->sort_order;
	if (q->sort_target != 0 && order == 0)
		order = 1;
	if (order == 1 || order == 2) {
		/* insertion sort: stable */
		for (int i = 1; i < n; i++) {
			for (int j = i; j > 0; j--) {
				int64_t c = sort_key_cmp(kvs[j - 1], kvs[j], q->sort_target);
				if (order == 2)
					c = -c;
				if (c <= 0)
					break;
				const mrec_t *t = kvs[j];
				kvs[j] = kvs[j - 1];
				kvs[j - 1] = t;
			}
		}
	}
	bool more = false;
	if (q->limit > 0 && n > q->limit) {
		n = (int)q->limit;
		more = true;
	}
	CHECK(r, got->count == count, "range count %lld want %d", (long long)got->count, count);
	CHECK(r, got->more == more, "range more %d want %d", got->more, more);
	CHECK(r, (int)got->n_kvs == n, "range n_kvs %zu want %d", got->n_kvs, n);
	for (int i = 0; i < n; i++)
		check_kv(r, got->kvs[i], kvs[i], q->keys_only, "range");
	if (got->header)
		CHECK(r, got->header->revision == cur, "range header %lld want %lld",
		      (long long)got->header->revision, (long long)cur);
}

static void gen_bounds(run_t *r, ProtobufCBinaryData *key, ProtobufCBinaryData *end)
{
	int s = rn(r, NKEYS + 3);
	*key = s < NKEYS ? bin(&model_keys[s]) : bin(&model_starts[s - NKEYS]);
	int e = rn(r, 10);
	if (e < 4)
		*end = (ProtobufCBinaryData){ 0, NULL };
	else if (e < 6)
		*end = kvh_zero;
	else
		*end = bin(&model_ends[rn(r, (int)(sizeof(model_ends) / sizeof(model_ends[0])))]);
	if (s == NKEYS && end->len == 0)
		*end = kvh_zero;     /* "\0" alone is no key of ours; make it "everything" */
}

static int64_t gen_rev(run_t *r)
{
	const model_t *m = &r->m;
	if (rn(r, 3) == 0)
		return rn(r, 4) ? 0 : -1;
	int64_t lo = m->compact - 2 > 0 ? m->compact - 2 : 0;
	return lo + rn(r, (int)(m->rev - lo + 3));
}

static Etcdserverpb__RangeRequest *gen_range(run_t *r)
{
	Etcdserverpb__RangeRequest *q = alloc(r, sizeof(*q));
	etcdserverpb__range_request__init(q);
	gen_bounds(r, &q->key, &q->range_end);
	q->revision = gen_rev(r);
	if (rn(r, 3) == 0)
		q->limit = rn(r, 4);
	if (rn(r, 3) == 0) {
		q->sort_target = rn(r, 5);
		q->sort_order = rn(r, 3);
	}
	q->keys_only = rn(r, 6) == 0;
	q->count_only = rn(r, 8) == 0;
	if (rn(r, 5) == 0) {
		int64_t top = r->m.rev + 2;
		switch (rn(r, 4)) {
		case 0: q->min_mod_revision = rn(r, (int)top); break;
		case 1: q->max_mod_revision = rn(r, (int)top); break;
		case 2: q->min_create_revision = rn(r, (int)top); break;
		default: q->max_create_revision = rn(r, (int)top); break;
		}
	}
	if (rn(r, 100) == 0)
		q->key = (ProtobufCBinaryData){ 0, NULL };
	return q;
}

static void do_range(run_t *r)
{
	Etcdserverpb__RangeRequest *q = gen_range(r);
	kvh_t *h = rn(r, 2) ? r->a : r->b;
	Etcdserverpb__RangeResponse *got = NULL;
	int err = kv_range(h->kv, q, &got);
	check_range(r, q, r->m.rev, err, got);
	kvh_range_free(got);
}

/* ---- writes ---------------------------------------------------------------------------- */

/* Applies req to both stores; both must agree on err and revision. *resp is a's. */
static int apply_both(run_t *r, const Etcdserverpb__InternalRaftRequest *req,
		      ProtobufCMessage **resp)
{
	kv_result_t ra, rb;
	int ea = kvh_apply(r->a, req, &ra);
	int eb = kvh_apply(r->b, req, &rb);
	CHECK(r, ea == eb, "stores disagree: err %d vs %d", ea, eb);
	CHECK(r, ra.revision == rb.revision, "stores disagree: rev %lld vs %lld",
	      (long long)ra.revision, (long long)rb.revision);
	if (rb.resp)
		protobuf_c_message_free_unpacked(rb.resp, NULL);
	*resp = ra.resp;
	return ea;
}

static int64_t gen_lease(run_t *r)
{
	return rn(r, 3) == 0 ? 1 + rn(r, NLEASES + 1) : 0;     /* NLEASES+1 never exists */
}

static void check_prev(run_t *r, const Mvccpb__KeyValue *got, const mrec_t *want, const char *what)
{
	CHECK(r, (got != NULL) == (want != NULL), "%s: prev_kv %s, want %s", what,
	      got ? "present" : "absent", want ? "present" : "absent");
	if (got)
		check_kv(r, got, want, false, what);
}

static void do_put(run_t *r)
{
	model_t *m = &r->m;
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	int key = rn(r, NKEYS);
	const char *val = model_values[rn(r, NVALUES)];
	p.key = bin(&model_keys[key]);
	p.value = kvh_bin(val);
	p.lease = gen_lease(r);
	p.prev_kv = rn(r, 2);
	p.ignore_value = rn(r, 8) == 0;
	p.ignore_lease = rn(r, 8) == 0;
	if (p.ignore_value && rn(r, 2))
		p.value = kvh_bin(""), val = "";
	if (p.ignore_lease && rn(r, 2))
		p.lease = 0;
	const mrec_t *cur = m_latest(m, key);
	int want = KV_OK;
	if (p.ignore_value && p.value.len)
		want = KV_ERR_VALUE_PROVIDED;
	else if (p.ignore_lease && p.lease)
		want = KV_ERR_LEASE_PROVIDED;
	else if (p.lease && (p.lease > NLEASES || !m->lease[p.lease]))
		want = KV_ERR_LEASE_NOT_FOUND;
	else if ((p.ignore_value || p.ignore_lease) && !cur)
		want = KV_ERR_KEY_NOT_FOUND;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.put = &p;
	ProtobufCMessage *resp;
	int err = apply_both(r, &req, &resp);
	CHECK(r, err == want, "put err %d want %d", err, want);
	if (err == KV_OK) {
		mrec_t prev = cur ? *cur : (mrec_t){ 0 };
		m_put(m, key, p.ignore_value ? cur->val : val, p.ignore_lease ? cur->lease : p.lease);
		m_end_write(m);
		Etcdserverpb__PutResponse *pr = (Etcdserverpb__PutResponse *)resp;
		check_prev(r, pr->prev_kv, p.prev_kv && cur ? &prev : NULL, "put");
		CHECK(r, pr->header->revision == m->rev, "put header");
		protobuf_c_message_free_unpacked(resp, NULL);
	}
}

static void do_delete(run_t *r)
{
	model_t *m = &r->m;
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	gen_bounds(r, &d.key, &d.range_end);
	d.prev_kv = rn(r, 2);
	const mrec_t *prev[NKEYS];
	int n = 0;
	for (int k = 0; k < NKEYS; k++)
		if (in_range(&model_keys[k], &d.key, &d.range_end) && (prev[n] = m_latest(m, k)))
			n++;
	mrec_t saved[NKEYS];
	for (int i = 0; i < n; i++)
		saved[i] = *prev[i];
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.delete_range = &d;
	ProtobufCMessage *resp;
	int err = apply_both(r, &req, &resp);
	CHECK(r, err == KV_OK, "delete err %d", err);
	for (int i = 0; i < n; i++)
		m_del(m, saved[i].key);
	m_end_write(m);
	Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)resp;
	CHECK(r, dr->deleted == n, "deleted %lld want %d", (long long)dr->deleted, n);
	CHECK(r, (int)dr->n_prev_kvs == (d.prev_kv ? n : 0), "n_prev_kvs %zu", dr->n_prev_kvs);
	for (size_t i = 0; i < dr->n_prev_kvs; i++)
		check_kv(r, dr->prev_kvs[i], &saved[i], false, "delete prev");
	CHECK(r, dr->header->revision == m->rev, "delete header");
	protobuf_c_message_free_unpacked(resp, NULL);
}

/* ---- txn ------------------------------------------------------------------------------- */

/* Writes go to distinct keys (used marks every key a put or delete may touch), so no txn
 * is a duplicate-key txn; test_kv_txn pins those. */
static Etcdserverpb__TxnRequest *gen_txn(run_t *r, int depth, bool *used);

static Etcdserverpb__RequestOp *gen_op(run_t *r, int depth, bool *used)
{
	Etcdserverpb__RequestOp *op = alloc(r, sizeof(*op));
	etcdserverpb__request_op__init(op);
	int kind = rn(r, 10);
	if (kind < 4 || (kind == 9 && depth >= 2)) {
		op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
		op->request_range = gen_range(r);
		if (!op->request_range->key.len)
			op->request_range->key = bin(&model_keys[0]);
		if (rn(r, 3))
			op->request_range->revision = 0;
		return op;
	}
	if (kind == 9) {
		op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
		op->request_txn = gen_txn(r, depth + 1, used);
		return op;
	}
	int key = rn(r, NKEYS);
	for (int tries = 0; used[key] && tries < NKEYS; tries++)
		key = (key + 1) % NKEYS;
	if (used[key]) {
		op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
		op->request_range = alloc(r, sizeof(*op->request_range));
		etcdserverpb__range_request__init(op->request_range);
		op->request_range->key = bin(&model_keys[key]);
		return op;
	}
	if (kind < 7) {
		Etcdserverpb__PutRequest *p = alloc(r, sizeof(*p));
		etcdserverpb__put_request__init(p);
		p->key = bin(&model_keys[key]);
		p->value = kvh_bin(model_values[rn(r, NVALUES)]);
		p->lease = gen_lease(r);
		p->prev_kv = rn(r, 2);
		used[key] = true;
		op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
		op->request_put = p;
		return op;
	}
	Etcdserverpb__DeleteRangeRequest *d = alloc(r, sizeof(*d));
	etcdserverpb__delete_range_request__init(d);
	d->key = bin(&model_keys[key]);
	d->prev_kv = rn(r, 2);
	/* sometimes [key, key+2): this key and the next, when that one is free too */
	if (key + 1 < NKEYS && !used[key + 1] && rn(r, 2)) {
		d->range_end = key + 2 < NKEYS ? bin(&model_keys[key + 2]) : bin(&model_ends[8]);
		used[key + 1] = true;
	}
	used[key] = true;
	op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op->request_delete_range = d;
	return op;
}

static Etcdserverpb__Compare *gen_compare(run_t *r)
{
	Etcdserverpb__Compare *c = alloc(r, sizeof(*c));
	etcdserverpb__compare__init(c);
	c->target = rn(r, 5);
	c->result = rn(r, 4);
	c->key = bin(&model_keys[rn(r, NKEYS)]);
	if (rn(r, 4) == 0)
		c->range_end = rn(r, 2) ? kvh_zero : bin(&model_ends[rn(r, 9)]);
	int64_t n = rn(r, (int)r->m.rev + 3);
	switch (c->target) {
	case 0:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
		c->version = rn(r, 4);
		break;
	case 1:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
		c->create_revision = n;
		break;
	case 2:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
		c->mod_revision = n;
		break;
	case 3:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
		c->value = kvh_bin(model_values[rn(r, NVALUES)]);
		break;
	default:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
		c->lease = rn(r, NLEASES + 1);
		break;
	}
	return c;
}

static Etcdserverpb__TxnRequest *gen_txn(run_t *r, int depth, bool *used)
{
	Etcdserverpb__TxnRequest *t = alloc(r, sizeof(*t));
	etcdserverpb__txn_request__init(t);
	t->n_compare = rn(r, 3);
	t->compare = alloc(r, 3 * sizeof(*t->compare));
	for (size_t i = 0; i < t->n_compare; i++)
		t->compare[i] = gen_compare(r);
	t->n_success = rn(r, 4);
	t->success = alloc(r, 4 * sizeof(*t->success));
	for (size_t i = 0; i < t->n_success; i++)
		t->success[i] = gen_op(r, depth, used);
	t->n_failure = rn(r, 4);
	t->failure = alloc(r, 4 * sizeof(*t->failure));
	for (size_t i = 0; i < t->n_failure; i++)
		t->failure[i] = gen_op(r, depth, used);
	return t;
}

static int64_t m_field(const mrec_t *s, int target)
{
	switch (target) {
	case 0: return s ? s->ver : 0;
	case 1: return s ? s->create : 0;
	case 2: return s ? s->mod : 0;
	default: return s ? s->lease : 0;
	}
}

static bool m_compare(const model_t *m, const Etcdserverpb__Compare *c)
{
	const mrec_t *live[NKEYS];
	int n = 0;
	for (int k = 0; k < NKEYS; k++)
		if (in_range(&model_keys[k], &c->key, &c->range_end) && (live[n] = m_latest(m, k)))
			n++;
	if (n == 0 && c->target == 3)
		return false;
	for (int i = 0; i < (n ? n : 1); i++) {
		const mrec_t *s = n ? live[i] : NULL;
		int res;
		if (c->target == 3) {
			res = bcmp_((const uint8_t *)s->val, strlen(s->val), c->value.data,
				    c->value.len);
		} else {
			int64_t a = m_field(s, c->target);
			int64_t b = c->target == 0 ? c->version : c->target == 1 ? c->create_revision
					  : c->target == 2 ? c->mod_revision : c->lease;
			res = a < b ? -1 : a > b;
		}
		bool ok = c->result == 0 ? res == 0 : c->result == 1 ? res > 0
			  : c->result == 2 ? res < 0 : res != 0;
		if (!ok)
			return false;
	}
	return true;
}

/* Branch choice of every txn in the tree, pre-order, on the state before the txn. */
static void m_path(const model_t *m, const Etcdserverpb__TxnRequest *t, bool *path, int *n)
{
	bool ok = true;
	for (size_t i = 0; ok && i < t->n_compare; i++)
		ok = m_compare(m, t->compare[i]);
	path[(*n)++] = ok;
	size_t no = ok ? t->n_success : t->n_failure;
	Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
	for (size_t i = 0; i < no; i++)
		if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
			m_path(m, ops[i]->request_txn, path, n);
}

static bool m_has_writes(const Etcdserverpb__TxnRequest *t)
{
	for (int b = 0; b < 2; b++) {
		size_t n = b ? t->n_failure : t->n_success;
		Etcdserverpb__RequestOp **ops = b ? t->failure : t->success;
		for (size_t i = 0; i < n; i++)
			if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT ||
			    ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE ||
			    (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
			     m_has_writes(ops[i]->request_txn)))
				return true;
	}
	return false;
}

/* etcd's checks on the chosen path: puts (leases) first over the whole tree, then ranges. */
static int m_check(const model_t *m, const Etcdserverpb__TxnRequest *t, const bool *path,
		   int *pos, bool puts)
{
	bool ok = path[(*pos)++];
	size_t n = ok ? t->n_success : t->n_failure;
	Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
	for (size_t i = 0; i < n; i++) {
		const Etcdserverpb__RequestOp *op = ops[i];
		int err = KV_OK;
		if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
			err = m_check(m, op->request_txn, path, pos, puts);
		else if (puts && op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
			int64_t l = op->request_put->lease;
			if (l && (l > NLEASES || !m->lease[l]))
				err = KV_ERR_LEASE_NOT_FOUND;
		} else if (!puts && op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
			int64_t rev = op->request_range->revision;
			if (rev > m->rev)
				err = KV_ERR_FUTURE_REV;
			else if (rev != 0 && rev < m->compact)
				err = KV_ERR_COMPACTED;
		}
		if (err)
			return err;
	}
	return KV_OK;
}

static int key_index(const ProtobufCBinaryData *k)
{
	for (int i = 0; i < NKEYS; i++)
		if (bcmp_(k->data, k->len, (const uint8_t *)model_keys[i].s, model_keys[i].len) == 0)
			return i;
	return -1;
}

/* Runs the chosen path on the model, checking each response op of got. */
static void m_exec(run_t *r, const Etcdserverpb__TxnRequest *t, const bool *path, int *pos,
		   const Etcdserverpb__TxnResponse *got)
{
	model_t *m = &r->m;
	bool ok = path[(*pos)++];
	size_t n = ok ? t->n_success : t->n_failure;
	Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
	CHECK(r, got->succeeded == ok, "txn succeeded %d want %d", got->succeeded, ok);
	CHECK(r, got->n_responses == n, "txn responses %zu want %zu", got->n_responses, n);
	for (size_t i = 0; i < n; i++) {
		const Etcdserverpb__RequestOp *op = ops[i];
		const Etcdserverpb__ResponseOp *ro = got->responses[i];
		switch (op->request_case) {
		case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
			CHECK(r, ro->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE,
			      "op %zu not a range", i);
			int64_t cur = m->main ? m->main : m->rev;
			check_range(r, op->request_range, cur, KV_OK, ro->response_range);
			break;
		}
		case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
			const Etcdserverpb__PutRequest *p = op->request_put;
			int k = key_index(&p->key);
			const mrec_t *cur = m_latest(m, k);
			mrec_t prev = cur ? *cur : (mrec_t){ 0 };
			char val[16];
			snprintf(val, sizeof(val), "%.*s", (int)p->value.len, (char *)p->value.data);
			const char *v = NULL;
			for (int j = 0; j < NVALUES; j++)
				if (strcmp(model_values[j], val) == 0)
					v = model_values[j];
			m_put(m, k, v, p->lease);
			check_prev(r, ro->response_put->prev_kv, p->prev_kv && cur ? &prev : NULL,
				   "txn put");
			CHECK(r, ro->response_put->header->revision == m->main, "txn put header");
			break;
		}
		case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
			const Etcdserverpb__DeleteRangeRequest *d = op->request_delete_range;
			mrec_t saved[NKEYS];
			int nd = 0;
			for (int k = 0; k < NKEYS; k++) {
				const mrec_t *s = in_range(&model_keys[k], &d->key, &d->range_end)
							  ? m_latest(m, k) : NULL;
				if (s)
					saved[nd++] = *s;
			}
			for (int j = 0; j < nd; j++)
				m_del(m, saved[j].key);
			const Etcdserverpb__DeleteRangeResponse *dr = ro->response_delete_range;
			CHECK(r, dr->deleted == nd, "txn deleted %lld want %d", (long long)dr->deleted, nd);
			CHECK(r, (int)dr->n_prev_kvs == (d->prev_kv ? nd : 0), "txn prev_kvs");
			for (size_t j = 0; j < dr->n_prev_kvs; j++)
				check_kv(r, dr->prev_kvs[j], &saved[j], false, "txn delete prev");
			break;
		}
		case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
			m_exec(r, op->request_txn, path, pos, ro->response_txn);
			break;
		default:
			break;
		}
	}
}

static void do_txn(run_t *r)
{
	model_t *m = &r->m;
	bool used[NKEYS] = { false };
	Etcdserverpb__TxnRequest *t = gen_txn(r, 0, used);
	bool path[256];
	int np = 0, pos = 0;
	m_path(m, t, path, &np);
	int want = KV_OK;
	if (m_has_writes(t))
		want = m_check(m, t, path, &pos, true);
	pos = 0;
	if (want == KV_OK)
		want = m_check(m, t, path, &pos, false);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.txn = t;
	ProtobufCMessage *resp;
	int err = apply_both(r, &req, &resp);
	CHECK(r, err == want, "txn err %d want %d", err, want);
	if (err)
		return;
	pos = 0;
	Etcdserverpb__TxnResponse *tr = (Etcdserverpb__TxnResponse *)resp;
	m_exec(r, t, path, &pos, tr);
	m_end_write(m);
	CHECK(r, tr->header->revision == m->rev, "txn header %lld want %lld",
	      (long long)tr->header->revision, (long long)m->rev);
	protobuf_c_message_free_unpacked(resp, NULL);
}

/* ---- compaction, leases, reopen -------------------------------------------------------- */

static void do_compact(run_t *r)
{
	model_t *m = &r->m;
	int64_t lo = m->compact > 0 ? m->compact - 1 : 0;
	int64_t rev = lo + rn(r, (int)(m->rev - lo + 2));
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.compaction = &c;
	int want = rev <= m->compact ? KV_ERR_COMPACTED : rev > m->rev ? KV_ERR_FUTURE_REV : KV_OK;
	ProtobufCMessage *resp;
	int err = apply_both(r, &req, &resp);
	CHECK(r, err == want, "compact %lld err %d want %d", (long long)rev, err, want);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (err)
		return;
	m->compact = rev;
	bool done = false;
	while (!done)
		assert_int_equal(kv_compact_step(r->b->kv, 0, &done), KV_OK);
	/* a goes a random part of the way */
	for (int steps = rn(r, 4); steps > 0 && !done; steps--)
		assert_int_equal(kv_compact_step(r->a->kv, 1 + rn(r, 3), &done), KV_OK);
}

static void do_lease(run_t *r)
{
	model_t *m = &r->m;
	int64_t id = 1 + rn(r, NLEASES);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ProtobufCMessage *resp;
	if (rn(r, 2)) {
		Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
		g.id = id;
		g.ttl = 100;
		req.lease_grant = &g;
		int err = apply_both(r, &req, &resp);
		CHECK(r, err == (m->lease[id] ? KV_ERR_LEASE_EXISTS : KV_OK), "grant err %d", err);
		m->lease[id] = true;
	} else {
		Etcdserverpb__LeaseRevokeRequest v = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
		v.id = id;
		req.lease_revoke = &v;
		int err = apply_both(r, &req, &resp);
		CHECK(r, err == (m->lease[id] ? KV_OK : KV_ERR_LEASE_NOT_FOUND), "revoke err %d", err);
		if (m->lease[id]) {
			for (int k = 0; k < NKEYS; k++) {
				const mrec_t *s = m_latest(m, k);
				if (s && s->lease == id)
					m_del(m, k);
			}
			m_end_write(m);
		}
		m->lease[id] = false;
	}
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
}

static void check_hashes(run_t *r)
{
	model_t *m = &r->m;
	CHECK(r, kv_revision(r->a->kv) == m->rev && kv_revision(r->b->kv) == m->rev,
	      "revision %lld/%lld want %lld", (long long)kv_revision(r->a->kv),
	      (long long)kv_revision(r->b->kv), (long long)m->rev);
	uint32_t ha = kvh_hash(r->a, 0), hb = kvh_hash(r->b, 0);
	CHECK(r, ha == hb, "HashKV %08x vs %08x", ha, hb);
	int64_t lo = m->compact > 1 ? m->compact : 1;
	if (m->rev > lo) {
		int64_t at = lo + rn(r, (int)(m->rev - lo + 1));
		ha = kvh_hash(r->a, at);
		hb = kvh_hash(r->b, at);
		CHECK(r, ha == hb, "HashKV at %lld: %08x vs %08x", (long long)at, ha, hb);
	}
}

static void run_seed(uint64_t seed, int nops)
{
	run_t r;
	memset(&r, 0, sizeof(r));
	r.seed = seed;
	r.rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	r.m.compact = -1;
	r.a = kvh_new(NULL);
	r.b = kvh_new(NULL);
	r.m.rev = kv_revision(r.a->kv);
	for (r.op = 0; r.op < nops; r.op++) {
		int what = rn(&r, 100);
		if (what < 25)
			do_put(&r);
		else if (what < 35)
			do_delete(&r);
		else if (what < 55)
			do_txn(&r);
		else if (what < 85)
			do_range(&r);
		else if (what < 90)
			do_compact(&r);
		else if (what < 98)
			do_lease(&r);
		else
			kvh_reopen(r.a);
		pool_free(&r);
		if (r.op % 8 == 7 || r.op == nops - 1)
			check_hashes(&r);
	}
	free(r.pool);
	free(r.m.h);
	kvh_free(r.a);
	kvh_free(r.b);
}

typedef struct seeds {
	uint64_t *v;
	size_t n;
	int ops;
} seeds_t;

static void test_model_agrees_with_stores(void **state)
{
	const seeds_t *s = *state;
	for (size_t i = 0; i < s->n; i++)
		run_seed(s->v[i], s->ops);
	printf("kv_model: %zu seeds x %d ops agree\n", s->n, s->ops);
}

int main(int argc, char **argv)
{
	seeds_t s = { NULL, 0, 200 };
	unsigned long long first = 1, last = 2000;
	if (argc > 1 && strchr(argv[1], ',')) {
		for (char *p = argv[1]; *p;) {
			s.v = realloc(s.v, (s.n + 1) * sizeof(*s.v));
			s.v[s.n++] = strtoull(p, &p, 10);
			while (*p == ',')
				p++;
		}
	} else if (argc > 1 && sscanf(argv[1], "%llu..%llu", &first, &last) < 1) {
		fprintf(stderr, "usage: %s [first..last | a,b,c] [ops]\n", argv[0]);
		return 2;
	} else if (argc > 1 && !strstr(argv[1], "..")) {
		last = first;
	}
	if (!s.n) {
		for (unsigned long long x = first; x <= last; x++) {
			s.v = realloc(s.v, (s.n + 1) * sizeof(*s.v));
			s.v[s.n++] = x;
		}
	}
	if (argc > 2)
		s.ops = atoi(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(test_model_agrees_with_stores, &s),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(s.v);
	return rc;
}
