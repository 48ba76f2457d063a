/* test_kv_maint.c — kvstore/maint.c: alarms applied and persisted, the NOSPACE cap on
 * writes, etcd's quota cost, the file's size, the whole-store hash, and defragmentation:
 * a compacted copy caught up from the log and swapped in keeps revision, leases,
 * watchers and data exactly; a copy that cannot be made or does not fit leaves the store
 * as it was. */
#include "kv_harness.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------- */

/* Entries applied to a store, kept so a defragmented copy can be fed the same log. */
typedef struct mlog {
	raft_entry_t **e;
	size_t n, cap;
} mlog_t;

static void mlog_free(mlog_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		raft_entry_free(l->e[i]);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* What kv_apply reported for the last entry of a batch. */
typedef struct got {
	int err;
	ProtobufCMessage *resp;      /* kept when wanted, else freed */
	bool want;
} got_t;

static void got_cb(void *ud, kv_result_t *res)
{
	got_t *g = ud;
	g->err = res->err;
	if (g->resp)
		protobuf_c_message_free_unpacked(g->resp, NULL);
	g->resp = NULL;
	if (g->want)
		g->resp = res->resp;
	else if (res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
}

/* Packs req into the next entry and applies it through kv_apply (the log's path), keeping
 * the entry in l (may be NULL); returns the request's error and, when resp is not NULL,
 * its response. */
static int mlog_apply_resp(kvh_t *h, mlog_t *l, const Etcdserverpb__InternalRaftRequest *req,
			   ProtobufCMessage **resp)
{
	size_t len = etcdserverpb__internal_raft_request__get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	etcdserverpb__internal_raft_request__pack(req, buf);
	h->index++;
	raft_entry_t *e = raft_entry_new(h->term, h->index, RAFT_ENTRY_NORMAL, buf, len);
	free(buf);
	assert_non_null(e);
	got_t g = { .want = resp != NULL };
	assert_int_equal(kv_apply(h->kv, &e, 1, got_cb, &g), KV_OK);
	if (resp)
		*resp = g.resp;
	if (l) {
		if (l->n == l->cap) {
			l->cap = l->cap ? 2 * l->cap : 64;
			l->e = realloc(l->e, l->cap * sizeof(*l->e));
			assert_non_null(l->e);
		}
		l->e[l->n++] = e;
	} else {
		raft_entry_free(e);
	}
	return g.err;
}

static int mlog_apply(kvh_t *h, mlog_t *l, const Etcdserverpb__InternalRaftRequest *req)
{
	return mlog_apply_resp(h, l, req, NULL);
}

static int put_via(kvh_t *h, mlog_t *l, const char *k, const char *v, int64_t lease)
{
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin(k);
	p.value = kvh_bin(v);
	p.lease = lease;
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.put = &p;
	return mlog_apply(h, l, &r);
}

static int del_via(kvh_t *h, mlog_t *l, const char *k, const char *end)
{
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	d.key = kvh_bin(k);
	if (end)
		d.range_end = kvh_bin(end);
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.delete_range = &d;
	return mlog_apply(h, l, &r);
}

static int grant_via(kvh_t *h, mlog_t *l, int64_t id, int64_t ttl)
{
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	g.id = id;
	g.ttl = ttl;
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.lease_grant = &g;
	return mlog_apply(h, l, &r);
}

static int compact_via(kvh_t *h, mlog_t *l, int64_t rev)
{
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.compaction = &c;
	return mlog_apply(h, l, &r);
}

/* An alarm request at the next index (kept in l), answered with its response. */
static Etcdserverpb__AlarmResponse *alarm_log(kvh_t *h, mlog_t *l, int action, uint64_t member,
					      int type)
{
	Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
	ar.action = action;
	ar.memberid = member;
	ar.alarm = type;
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.alarm = &ar;
	ProtobufCMessage *resp = NULL;
	assert_int_equal(mlog_apply_resp(h, l, &r, &resp), KV_OK);
	assert_non_null(resp);
	assert_ptr_equal(resp->descriptor, &etcdserverpb__alarm_response__descriptor);
	return (Etcdserverpb__AlarmResponse *)resp;
}

static Etcdserverpb__AlarmResponse *alarm_via(kvh_t *h, int action, uint64_t member, int type)
{
	return alarm_log(h, NULL, action, member, type);
}

static size_t alarm_count(kvh_t *h, int action, uint64_t member, int type)
{
	Etcdserverpb__AlarmResponse *r = alarm_via(h, action, member, type);
	size_t n = r->n_alarms;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return n;
}

enum { GET = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET,
       ON = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE,
       OFF = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE,
       NONE = ETCDSERVERPB__ALARM_TYPE__NONE,
       NOSPACE = ETCDSERVERPB__ALARM_TYPE__NOSPACE,
       CORRUPT = ETCDSERVERPB__ALARM_TYPE__CORRUPT };

/* Everything a client can read, flattened: all keys with metadata, leases, revisions. */
static char *dump(kv_t *kv)
{
	size_t cap = 1 << 20, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_zero;
	req.range_end = kvh_zero;
	Etcdserverpb__RangeResponse *r = NULL;
	assert_int_equal(kv_range(kv, &req, &r), KV_OK);
	len += (size_t)snprintf(s + len, cap - len, "rev=%lld compact=%lld index=%llu count=%lld|",
				(long long)kv_revision(kv), (long long)kv_compact_revision(kv),
				(unsigned long long)kv_applied_index(kv), (long long)r->count);
	for (size_t i = 0; i < r->n_kvs && len < cap - 256; i++) {
		Mvccpb__KeyValue *x = r->kvs[i];
		len += (size_t)snprintf(s + len, cap - len, "%.*s=%.*s/%lld/%lld/%lld/%lld;",
					(int)x->key.len, (char *)x->key.data, (int)x->value.len,
					(char *)x->value.data, (long long)x->create_revision,
					(long long)x->mod_revision, (long long)x->version,
					(long long)x->lease);
	}
	kvh_range_free(r);
	Etcdserverpb__LeaseLeasesResponse *ll = NULL;
	assert_int_equal(kv_lease_leases(kv, &ll), KV_OK);
	for (size_t i = 0; i < ll->n_leases; i++)
		len += (size_t)snprintf(s + len, cap - len, "lease %lld;",
					(long long)ll->leases[i]->id);
	protobuf_c_message_free_unpacked(&ll->base, NULL);
	return s;
}

static int64_t lease_ttl(kv_t *kv, int64_t id)
{
	Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
	q.id = id;
	Etcdserverpb__LeaseTimeToLiveResponse *r = NULL;
	assert_int_equal(kv_lease_time_to_live(kv, &q, &r), KV_OK);
	int64_t ttl = r->ttl;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ttl;
}

static off_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* ---- alarms -------------------------------------------------------------------------- */

static void test_alarms_activate_list_deactivate_and_survive_reopen(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	assert_false(kv_alarm_active(h->kv, NONE));
	Etcdserverpb__AlarmResponse *r = alarm_via(h, ON, 7, NOSPACE);
	assert_int_equal(r->n_alarms, 1);
	assert_int_equal(r->alarms[0]->memberid, 7);
	assert_int_equal(r->alarms[0]->alarm, NOSPACE);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* etcd answers an activation that was already on with the alarm as well */
	assert_int_equal(alarm_count(h, ON, 7, NOSPACE), 1);
	assert_int_equal(alarm_count(h, ON, 3, CORRUPT), 1);
	assert_true(kv_alarm_active(h->kv, NOSPACE));
	assert_true(kv_alarm_active(h->kv, CORRUPT));

	r = alarm_via(h, GET, 0, NONE);
	assert_int_equal(r->n_alarms, 2);
	assert_int_equal(r->alarms[0]->memberid, 3); /* member order */
	assert_int_equal(r->alarms[1]->memberid, 7);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(alarm_count(h, GET, 0, NOSPACE), 1);

	kvh_reopen(h);
	Etcdserverpb__AlarmMember **v = NULL;
	size_t n = 0;
	assert_int_equal(kv_alarm_list(h->kv, NONE, &v, &n), KV_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
	assert_true(kv_alarm_active(h->kv, NOSPACE));

	assert_int_equal(alarm_count(h, OFF, 7, NOSPACE), 1);
	assert_int_equal(alarm_count(h, OFF, 7, NOSPACE), 0); /* nothing left to remove */
	assert_false(kv_alarm_active(h->kv, NOSPACE));
	kvh_reopen(h);
	assert_false(kv_alarm_active(h->kv, NOSPACE));
	assert_true(kv_alarm_active(h->kv, CORRUPT));
	/* alarms are requests of their own: they never move the revision */
	assert_int_equal(kv_revision(h->kv), 1);
	kvh_free(h);
}

static void test_nospace_alarm_refuses_puts_txns_with_puts_and_grants_only(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	alarm_count(h, ON, 9, NOSPACE);
	int64_t rev = kv_revision(h->kv);
	assert_int_equal(put_via(h, NULL, "b", "2", 0), KV_ERR_QUOTA);
	assert_int_equal(grant_via(h, NULL, 5, 60), KV_ERR_QUOTA);
	assert_int_equal(kv_revision(h->kv), rev);

	/* a txn whose failure branch puts costs what that branch costs: refused */
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin("c");
	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	op.request_put = &p;
	Etcdserverpb__RequestOp *ops[] = { &op };
	Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
	t.failure = ops;
	t.n_failure = 1;
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.txn = &t;
	assert_int_equal(mlog_apply(h, NULL, &r), KV_ERR_QUOTA);
	/* one that only deletes is a write that frees space: allowed */
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	d.key = kvh_bin("a");
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op.request_delete_range = &d;
	t.failure = NULL;
	t.n_failure = 0;
	t.success = ops;
	t.n_success = 1;
	assert_int_equal(mlog_apply(h, NULL, &r), KV_OK);
	assert_int_equal(kv_revision(h->kv), rev + 1);
	assert_int_equal(compact_via(h, NULL, rev + 1), KV_OK);
	assert_int_equal(del_via(h, NULL, "zz", NULL), KV_OK);

	alarm_count(h, OFF, 9, NOSPACE);
	assert_int_equal(put_via(h, NULL, "b", "2", 0), KV_OK);
	assert_int_equal(grant_via(h, NULL, 5, 60), KV_OK);
	kvh_free(h);
}

/* An alarm and a put in one batch: the put sees the alarm its batch applied before it. */
static void test_alarm_applied_earlier_in_the_batch_caps_a_later_put(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
	ar.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
	ar.memberid = 1;
	ar.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
	Etcdserverpb__InternalRaftRequest a = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	a.alarm = &ar;
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin("k");
	Etcdserverpb__InternalRaftRequest b = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	b.put = &p;
	const Etcdserverpb__InternalRaftRequest *reqs[] = { &a, &b };
	raft_entry_t *e[2];
	for (int i = 0; i < 2; i++) {
		size_t len = etcdserverpb__internal_raft_request__get_packed_size(reqs[i]);
		uint8_t buf[256];
		etcdserverpb__internal_raft_request__pack(reqs[i], buf);
		e[i] = raft_entry_new(1, (uint64_t)i + 1, RAFT_ENTRY_NORMAL, buf, len);
	}
	/* the alarm decodes from the packed entry as it was put in */
	Etcdserverpb__InternalRaftRequest *back = etcdserverpb__internal_raft_request__unpack(
		NULL, e[0]->data.len, e[0]->data.data);
	assert_non_null(back);
	const Etcdserverpb__AlarmRequest *got = back->alarm;
	assert_non_null(got);
	assert_int_equal(got->action, ON);
	assert_int_equal(got->memberid, 1);
	assert_int_equal(got->alarm, NOSPACE);
	protobuf_c_message_free_unpacked(&back->base, NULL);
	assert_null(b.alarm);

	kv_t *kv = h->kv;
	assert_false(kv_alarm_active(kv, NOSPACE)); /* the cache is fresh and empty */
	got_t g = {0};
	assert_int_equal(kv_apply(kv, e, 2, got_cb, &g), KV_OK); /* one batch */
	assert_int_equal(g.err, KV_ERR_QUOTA);
	assert_int_equal(kv_revision(kv), 1);
	assert_true(kv_alarm_active(kv, NOSPACE));
	h->index = 2;
	raft_entry_free(e[0]);
	raft_entry_free(e[1]);
	kvh_free(h);
}

static void test_quota_cost_is_etcds(void **state)
{
	(void)state;
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin("key");
	p.value = kvh_bin("value");
	Etcdserverpb__InternalRaftRequest r = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	r.put = &p;
	assert_int_equal(kv_quota_cost(&r), 256 + 3 + 5);

	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	op.request_put = &p;
	Etcdserverpb__RequestOp *two[] = { &op, &op }, *one[] = { &op };
	Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
	t.success = one;
	t.n_success = 1;
	t.failure = two;
	t.n_failure = 2;
	r.put = NULL;
	r.txn = &t;
	assert_int_equal(kv_quota_cost(&r), 2 * (256 + 8)); /* the larger branch */

	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	r.txn = NULL;
	r.lease_grant = &g;
	assert_int_equal(kv_quota_cost(&r), 64);
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	r.lease_grant = NULL;
	r.delete_range = &d;
	assert_int_equal(kv_quota_cost(&r), 0);
}

/* ---- size and hash ------------------------------------------------------------------- */

static void test_db_size_is_high_water_and_in_use_drops_when_compacted(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t size0, use0, size1, use1, size2, use2;
	assert_int_equal(kv_db_size(h->kv, &size0, &use0), KV_OK);
	char k[32], v[1024];
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "key/%d", i % 200);
		kvh_put(h, k, v, 0);
	}
	assert_int_equal(kv_db_size(h->kv, &size1, &use1), KV_OK);
	assert_true(size1 > size0 + 1000 * 1024);
	assert_true(use1 <= size1);
	assert_int_equal(size1, file_size(h->path));
	kvh_compact(h, kv_revision(h->kv));
	bool done = false;
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 100, &done), KV_OK);
	kvh_put(h, "one", "more", 0); /* frees the compaction's pages for reuse */
	assert_int_equal(kv_db_size(h->kv, &size2, &use2), KV_OK);
	assert_true(size2 >= size1);           /* the file never shrinks by itself */
	assert_true(use2 < use1 / 2);          /* but most of it is free now */
	kvh_free(h);
}

static void build_same(kvh_t *h)
{
	char k[32], v[32];
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "k%03d", i % 50);
		snprintf(v, sizeof(v), "v%d", i);
		kvh_put(h, k, v, 0);
	}
	kvh_grant(h, 77, 100);
	kvh_put(h, "leased", "x", 77);
	compact_via(h, NULL, 200); /* logical only: no physical step yet */
}

static void test_hash_is_equal_however_far_physical_compaction_went(void **state)
{
	(void)state;
	kvh_t *a = kvh_new(NULL), *b = kvh_new(NULL);
	build_same(a);
	build_same(b);
	bool done = false;
	while (!done) /* only a compacts physically */
		assert_int_equal(kv_compact_step(a->kv, 7, &done), KV_OK);
	assert_true(kv_compact_pending(b->kv));
	uint32_t ha, hb;
	int64_t ra, rb;
	assert_int_equal(kv_hash(a->kv, &ha, &ra), KV_OK);
	assert_int_equal(kv_hash(b->kv, &hb, &rb), KV_OK);
	assert_int_equal(ha, hb);
	assert_int_equal(ra, kv_revision(a->kv));
	assert_int_equal(ra, rb);
	/* a member's own record of the --initial-cluster it started with is not replicated
	 * (a member that joined later has another one): it never shows */
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
	char *urls[] = { (char *)"http://127.0.0.1:2380" };
	m.id = 42;
	m.name = (char *)"m42";
	m.n_peerurls = 1;
	m.peerurls = urls;
	Etcdserverpb__Member *mp[] = { &m };
	assert_int_equal(kv_members_bootstrap(b->kv, mp, 1), KV_OK);
	assert_int_equal(kv_hash(b->kv, &hb, &rb), KV_OK);
	assert_int_equal(ha, hb);
	/* any replicated difference shows: one more alarm, or one more put */
	alarm_count(b, ON, 1, NOSPACE);
	kvh_put(a, "pad", "x", 0); /* keep indexes apart from the point */
	assert_int_equal(kv_hash(b->kv, &hb, &rb), KV_OK);
	assert_int_equal(kv_hash(a->kv, &ha, &ra), KV_OK);
	assert_int_not_equal(ha, hb);
	kvh_free(a);
	kvh_free(b);
}

/* ---- defragmentation --------------------------------------------------------------- */

typedef struct seen {
	int events;
	int64_t last_rev;
} seen_t;

static int seen_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	seen_t *s = ud;
	s->events += (int)resp->n_events;
	for (size_t i = 0; i < resp->n_events; i++)
		s->last_rev = resp->events[i]->kv->mod_revision;
	return 0;
}

/* A store with history worth compacting, a lease renewed in memory only, and a watcher. */
typedef struct dstore {
	kvh_t *h;
	kv_watcher_t *w;
	seen_t seen;
	char copy[400];
} dstore_t;

static void dstore_build(dstore_t *d)
{
	kvh_t *h = d->h = kvh_new(NULL);
	char k[32], v[2048];
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "key/%04d", i % 300);
		put_via(h, NULL, k, v, 0);
	}
	assert_int_equal(grant_via(h, NULL, 42, 100), KV_OK);
	put_via(h, NULL, "leased", "x", 42);
	compact_via(h, NULL, kv_revision(h->kv) - 10);
	bool done = false;
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 1000, &done), KV_OK);
	kv_lease_promote(h->kv);
	h->now_ms += 60000;
	int64_t ttl;
	assert_int_equal(kv_lease_renew(h->kv, 42, &ttl), KV_OK); /* memory only, not logged */
	Etcdserverpb__WatchCreateRequest wr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	wr.key = kvh_bin("key/");
	wr.range_end = kvh_bin("key0");
	assert_int_equal(kv_watch(h->kv, &wr, seen_cb, &d->seen, &d->w), KV_OK);
	snprintf(d->copy, sizeof(d->copy), "%s/defrag.db", h->dir);
}

static void dstore_free(dstore_t *d)
{
	kv_watch_cancel(d->h->kv, d->w);
	kvh_free(d->h);
}

/* What the store applies after the copy was taken: the copy must replay all of it. */
static void write_after_copy(kvh_t *h, mlog_t *log)
{
	put_via(h, log, "key/0001", "after", 0);
	del_via(h, log, "key/0002", NULL);
	assert_int_equal(grant_via(h, log, 43, 30), KV_OK);
	put_via(h, log, "key/0003", "with-lease", 43);
	Etcdserverpb__AlarmResponse *r = alarm_log(h, log, ON, 5, CORRUPT);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	compact_via(h, log, kv_revision(h->kv) - 2);
	put_via(h, log, "other", "y", 0);
}

static void test_defrag_swap_with_replay_keeps_revision_leases_watchers_data(void **state)
{
	(void)state;
	dstore_t d = {0};
	dstore_build(&d);
	kvh_t *h = d.h;
	char err[512];
	off_t before = file_size(h->path);
	assert_int_equal(kv_defrag_copy(h->kv, d.copy, err, sizeof(err)), KV_OK);
	mlog_t log = {0};
	write_after_copy(h, &log);
	assert_int_equal(d.seen.events, 3);

	char *want = dump(h->kv);
	uint32_t hash_want, hash_got;
	int64_t rev_want, rev_got;
	assert_int_equal(kv_hash(h->kv, &hash_want, &rev_want), KV_OK);
	int64_t ttl42 = lease_ttl(h->kv, 42), ttl43 = lease_ttl(h->kv, 43);
	assert_true(ttl42 > 90); /* the renewal, not the 40 s the log knows of */

	kv_t *copy = NULL;
	assert_int_equal(kv_defrag_open(h->kv, d.copy, &copy, err, sizeof(err)), KV_OK);
	assert_true(kv_applied_index(copy) < kv_applied_index(h->kv));
	assert_int_equal(kv_apply(copy, log.e, log.n, NULL, NULL), KV_OK);
	assert_int_equal(kv_applied_index(copy), kv_applied_index(h->kv));
	int old_fd = -2;
	assert_int_equal(kv_defrag_swap(h->kv, copy, &old_fd), KV_OK);
	assert_true(old_fd >= 0);
	kv_defrag_finish(h->path, old_fd);

	assert_int_equal(d.seen.events, 3); /* the swap told watchers nothing */
	char *got = dump(h->kv);
	assert_string_equal(got, want);
	assert_int_equal(kv_hash(h->kv, &hash_got, &rev_got), KV_OK);
	assert_int_equal(hash_got, hash_want);
	assert_int_equal(rev_got, rev_want);
	assert_true(kv_lease_is_primary(h->kv));
	assert_int_equal(lease_ttl(h->kv, 42), ttl42);
	assert_int_equal(lease_ttl(h->kv, 43), ttl43);
	assert_true(kv_alarm_active(h->kv, CORRUPT));
	off_t after = file_size(h->path);
	assert_true(after < before / 3);
	struct stat st;
	assert_int_not_equal(stat(d.copy, &st), 0); /* moved into place */

	/* the store goes on: the same watcher sees the next write */
	int64_t rev = kv_revision(h->kv);
	put_via(h, NULL, "key/0009", "next", 0);
	assert_int_equal(d.seen.events, 4);
	assert_int_equal(d.seen.last_rev, rev + 1);
	assert_int_equal(lease_ttl(h->kv, 42), ttl42);
	free(want);
	free(got);
	mlog_free(&log);
	dstore_free(&d);
}

static void test_defrag_swap_survives_a_restart(void **state)
{
	(void)state;
	dstore_t d = {0};
	dstore_build(&d);
	kvh_t *h = d.h;
	char err[512];
	assert_int_equal(kv_defrag_copy(h->kv, d.copy, err, sizeof(err)), KV_OK);
	mlog_t log = {0};
	write_after_copy(h, &log);
	kv_t *copy = NULL;
	assert_int_equal(kv_defrag_open(h->kv, d.copy, &copy, err, sizeof(err)), KV_OK);
	assert_int_equal(kv_apply(copy, log.e, log.n, NULL, NULL), KV_OK);
	int old_fd = -2;
	assert_int_equal(kv_defrag_swap(h->kv, copy, &old_fd), KV_OK);
	assert_true(old_fd >= 0);
	kv_defrag_finish(h->path, old_fd);
	char *want = dump(h->kv);
	uint32_t hw, hg;
	int64_t rw, rg;
	assert_int_equal(kv_hash(h->kv, &hw, &rw), KV_OK);
	kv_watch_cancel(h->kv, d.w);
	d.w = NULL;
	kv_sync(h->kv);
	kvh_reopen(h);
	char *got = dump(h->kv);
	assert_string_equal(got, want);
	assert_int_equal(kv_hash(h->kv, &hg, &rg), KV_OK);
	assert_int_equal(hg, hw);
	char old[400];
	snprintf(old, sizeof(old), "%s.defrag-old", h->path);
	assert_int_not_equal(access(old, F_OK), 0);
	free(want);
	free(got);
	mlog_free(&log);
	kvh_free(h);
}

static void test_failed_copy_leaves_the_store_serving(void **state)
{
	(void)state;
	dstore_t d = {0};
	dstore_build(&d);
	kvh_t *h = d.h;
	char *want = dump(h->kv), err[512] = "";
	char bad[400];
	snprintf(bad, sizeof(bad), "%s/no-such-dir/defrag.db", h->dir);
	assert_int_not_equal(kv_defrag_copy(h->kv, bad, err, sizeof(err)), KV_OK);
	assert_non_null(strstr(err, "no-such-dir"));
	char *got = dump(h->kv);
	assert_string_equal(got, want);
	/* a file that is no store does not open as a copy */
	FILE *f = fopen(d.copy, "w");
	assert_non_null(f);
	fputs("not an lmdb file, not at all; long enough to be read as a meta page?", f);
	fclose(f);
	kv_t *copy = NULL;
	assert_int_not_equal(kv_defrag_open(h->kv, d.copy, &copy, err, sizeof(err)), KV_OK);
	assert_null(copy);
	assert_int_equal(put_via(h, NULL, "key/0100", "still", 0), KV_OK);
	assert_int_equal(d.seen.events, 1);
	free(want);
	free(got);
	dstore_free(&d);
}

/* A copy that missed entries is not the store: the swap refuses it and changes nothing. */
static void test_copy_that_does_not_match_is_refused_and_the_store_is_intact(void **state)
{
	(void)state;
	dstore_t d = {0};
	dstore_build(&d);
	kvh_t *h = d.h;
	char err[512];
	assert_int_equal(kv_defrag_copy(h->kv, d.copy, err, sizeof(err)), KV_OK);
	mlog_t log = {0};
	write_after_copy(h, &log);
	char *want = dump(h->kv);
	off_t before = file_size(h->path);
	kv_t *copy = NULL;
	assert_int_equal(kv_defrag_open(h->kv, d.copy, &copy, err, sizeof(err)), KV_OK);
	assert_int_equal(kv_apply(copy, log.e, log.n - 1, NULL, NULL), KV_OK); /* one short */
	int old_fd = -2;
	assert_int_equal(kv_defrag_swap(h->kv, copy, &old_fd), KV_ERR_CORRUPT);
	assert_int_equal(old_fd, -1);
	assert_non_null(strstr(kv_last_error(h->kv), "not the store"));
	char *got = dump(h->kv);
	assert_string_equal(got, want);
	assert_int_equal(file_size(h->path), before);
	assert_int_not_equal(access(d.copy, F_OK), 0); /* the refused copy is gone */
	assert_int_equal(put_via(h, NULL, "key/0100", "still", 0), KV_OK);
	assert_int_equal(d.seen.events, 4);
	free(want);
	free(got);
	mlog_free(&log);
	dstore_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alarms_activate_list_deactivate_and_survive_reopen),
		cmocka_unit_test(test_nospace_alarm_refuses_puts_txns_with_puts_and_grants_only),
		cmocka_unit_test(test_alarm_applied_earlier_in_the_batch_caps_a_later_put),
		cmocka_unit_test(test_quota_cost_is_etcds),
		cmocka_unit_test(test_db_size_is_high_water_and_in_use_drops_when_compacted),
		cmocka_unit_test(test_hash_is_equal_however_far_physical_compaction_went),
		cmocka_unit_test(test_defrag_swap_with_replay_keeps_revision_leases_watchers_data),
		cmocka_unit_test(test_defrag_swap_survives_a_restart),
		cmocka_unit_test(test_failed_copy_leaves_the_store_serving),
		cmocka_unit_test(test_copy_that_does_not_match_is_refused_and_the_store_is_intact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
