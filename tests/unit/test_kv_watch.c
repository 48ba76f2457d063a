/* tests/unit/test_kv_watch.c — the watch hub against etcd 3.4's watch semantics: ranges,
 * history replay and the sync boundary, filters, prev_kv, fragments, refusals (exactly
 * once, in order), compaction cancels, progress notifications, and a seeded random model. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_int.h"

/* ---- a model of the history ------------------------------------------------------ */

typedef struct mev {
	int64_t rev;
	int type;                    /* MVCCPB__EVENT__EVENT_TYPE__PUT or __DELETE */
	char *key, *val, *prev;      /* prev: value before, NULL for a create */
} mev_t;

typedef struct mkv {
	char *key, *val;
} mkv_t;

typedef struct model {
	kvh_t *h;
	mev_t *log;
	size_t n_log, cap_log;
	mkv_t *live;                 /* sorted by key */
	size_t n_live, cap_live;
	int64_t compacts[64];        /* revisions compacted at */
	size_t n_compacts;
} model_t;

static char *xstrdup(const char *s)
{
	char *p = s ? strdup(s) : NULL;
	if (s)
		assert_non_null(p);
	return p;
}

static void *xgrow(void *arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return arr;
	size_t c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	void *p = realloc(arr, c * elem);
	assert_non_null(p);
	*cap = c;
	return p;
}

static mkv_t *model_find(model_t *m, const char *key, size_t *pos)
{
	size_t lo = 0, hi = m->n_live;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(m->live[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return lo < m->n_live && strcmp(m->live[lo].key, key) == 0 ? &m->live[lo] : NULL;
}

static void model_log(model_t *m, int64_t rev, int type, const char *key, const char *val,
		      const char *prev)
{
	m->log = xgrow(m->log, &m->cap_log, m->n_log + 1, sizeof(*m->log));
	mev_t *e = &m->log[m->n_log++];
	e->rev = rev;
	e->type = type;
	e->key = xstrdup(key);
	e->val = xstrdup(val);
	e->prev = xstrdup(prev);
}

static void model_set(model_t *m, int64_t rev, const char *key, const char *val)
{
	size_t pos;
	mkv_t *kv = model_find(m, key, &pos);
	model_log(m, rev, MVCCPB__EVENT__EVENT_TYPE__PUT, key, val, kv ? kv->val : NULL);
	if (kv) {
		free(kv->val);
		kv->val = xstrdup(val);
		return;
	}
	m->live = xgrow(m->live, &m->cap_live, m->n_live + 1, sizeof(*m->live));
	memmove(&m->live[pos + 1], &m->live[pos], (m->n_live - pos) * sizeof(*m->live));
	m->live[pos].key = xstrdup(key);
	m->live[pos].val = xstrdup(val);
	m->n_live++;
}

/* The test's own reading of etcd's range conventions (end NULL: one key; "" as end
 * never used; "\0" spelled from_key). */
static bool in_range(const char *key, const char *start, const char *end, bool from_key)
{
	if (from_key)
		return strcmp(key, start) >= 0;
	if (!end)
		return strcmp(key, start) == 0;
	return strcmp(key, start) >= 0 && strcmp(key, end) < 0;
}

static void model_free(model_t *m)
{
	for (size_t i = 0; i < m->n_log; i++) {
		free(m->log[i].key);
		free(m->log[i].val);
		free(m->log[i].prev);
	}
	for (size_t i = 0; i < m->n_live; i++) {
		free(m->live[i].key);
		free(m->live[i].val);
	}
	free(m->log);
	free(m->live);
	memset(m, 0, sizeof(*m));
}

static int64_t m_put(model_t *m, const char *key, const char *val)
{
	int64_t rev = kvh_put(m->h, key, val, 0);
	assert_int_equal(rev, kv_revision(m->h->kv));
	model_set(m, rev, key, val);
	return rev;
}

/* Deletes [key, end) (end NULL: the one key) and logs a tombstone per live key, in key
 * order as etcd deletes them. */
static int64_t m_del(model_t *m, const char *key, const char *end)
{
	int64_t before = kv_revision(m->h->kv);
	int64_t n = kvh_del(m->h, key, end);
	int64_t rev = kv_revision(m->h->kv);
	assert_int_equal(rev, n ? before + 1 : before);
	size_t i = 0, got = 0;
	while (i < m->n_live) {
		mkv_t *kv = &m->live[i];
		if (!in_range(kv->key, key, end, false)) {
			i++;
			continue;
		}
		model_log(m, rev, MVCCPB__EVENT__EVENT_TYPE__DELETE, kv->key, NULL, kv->val);
		free(kv->key);
		free(kv->val);
		memmove(kv, kv + 1, (m->n_live - i - 1) * sizeof(*kv));
		m->n_live--;
		got++;
	}
	assert_int_equal(got, n);
	return rev;
}

/* One txn of puts (distinct keys): one revision, events in op order. */
static int64_t m_txn_puts(model_t *m, const char **keys, const char **vals, size_t n)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
	Etcdserverpb__RequestOp ops[64], *opp[64];
	Etcdserverpb__PutRequest puts[64];
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++) {
		etcdserverpb__request_op__init(&ops[i]);
		etcdserverpb__put_request__init(&puts[i]);
		puts[i].key = kvh_bin(keys[i]);
		puts[i].value = kvh_bin(vals[i]);
		ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
		ops[i].request_put = &puts[i];
		opp[i] = &ops[i];
	}
	txn.n_success = n;
	txn.success = opp;
	req.txn = &txn;
	assert_int_equal(kvh_apply(m->h, &req, NULL), KV_OK);
	int64_t rev = kv_revision(m->h->kv);
	for (size_t i = 0; i < n; i++)
		model_set(m, rev, keys[i], vals[i]);
	return rev;
}

/* ---- a recording receiver -------------------------------------------------------- */

typedef struct rev_t {
	int64_t rev;
	int type;
	char *key, *val, *prev;
	bool has_prev;
	int64_t create_rev, version;
} rev_t;

typedef struct resp_info {
	size_t n_events;
	bool fragment;
	size_t size;
	int64_t hdr_rev;
} resp_info_t;

typedef struct rec {
	int64_t watch_id;
	rev_t *ev;
	size_t n_ev, cap_ev;
	resp_info_t *resp;           /* every taken response that carried events */
	size_t n_resp, cap_resp;
	int calls, refused;
	int refuse;                  /* refuse this many calls, then take */
	bool refuse_all;
	int refuse_pct;              /* random refusals, percent */
	uint64_t rng;
	int canceled;
	int64_t compact_rev, cancel_hdr_rev;
	int progress;
	int64_t progress_rev;
	int after_cancel;            /* responses after the cancel: must stay 0 */
	int64_t kv_rev;              /* the store revision now, set by the test */
	kvh_t *h;
} rec_t;

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static char *bin_str(const ProtobufCBinaryData *b)
{
	char *s = malloc(b->len + 1);
	assert_non_null(s);
	if (b->len)
		memcpy(s, b->data, b->len);
	s[b->len] = 0;
	return s;
}

static int rec_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	rec_t *r = ud;
	r->calls++;
	if (r->refuse > 0) {
		r->refuse--;
		r->refused++;
		return -1;
	}
	if (r->refuse_all || (r->refuse_pct && (int)(rng_next(&r->rng) % 100) < r->refuse_pct)) {
		r->refused++;
		return -1;
	}
	assert_int_equal(resp->watch_id, r->watch_id);
	assert_non_null(resp->header);
	assert_false(resp->created);
	if (r->canceled)
		r->after_cancel++;
	if (resp->canceled) {
		r->canceled++;
		r->compact_rev = resp->compact_revision;
		r->cancel_hdr_rev = resp->header->revision;
		assert_int_equal(resp->n_events, 0);
		return 0;
	}
	/* Never as of a revision the store has not reached. */
	assert_true(resp->header->revision <= kv_revision(r->h->kv));
	if (resp->n_events == 0) {
		r->progress++;
		r->progress_rev = resp->header->revision;
		return 0;
	}
	r->resp = xgrow(r->resp, &r->cap_resp, r->n_resp + 1, sizeof(*r->resp));
	resp_info_t *ri = &r->resp[r->n_resp++];
	ri->n_events = resp->n_events;
	ri->fragment = resp->fragment;
	ri->size = protobuf_c_message_get_packed_size(&resp->base);
	ri->hdr_rev = resp->header->revision;
	for (size_t i = 0; i < resp->n_events; i++) {
		const Mvccpb__Event *e = resp->events[i];
		assert_non_null(e->kv);
		assert_true(e->kv->mod_revision <= resp->header->revision);
		r->ev = xgrow(r->ev, &r->cap_ev, r->n_ev + 1, sizeof(*r->ev));
		rev_t *x = &r->ev[r->n_ev++];
		memset(x, 0, sizeof(*x));
		x->rev = e->kv->mod_revision;
		x->type = e->type;
		x->key = bin_str(&e->kv->key);
		x->val = e->type == MVCCPB__EVENT__EVENT_TYPE__PUT ? bin_str(&e->kv->value) : NULL;
		x->create_rev = e->kv->create_revision;
		x->version = e->kv->version;
		if (e->prev_kv) {
			x->has_prev = true;
			x->prev = bin_str(&e->prev_kv->value);
		}
	}
	return 0;
}

static void rec_free(rec_t *r)
{
	for (size_t i = 0; i < r->n_ev; i++) {
		free(r->ev[i].key);
		free(r->ev[i].val);
		free(r->ev[i].prev);
	}
	free(r->ev);
	free(r->resp);
	memset(r, 0, sizeof(*r));
}

/* ---- watchers -------------------------------------------------------------------- */

typedef struct wspec {
	const char *key, *end;       /* end NULL: one key */
	bool from_key;               /* end "\0" */
	int64_t start;
	bool zero_key;               /* key "\0" (the model reads it as "") */
	bool prev_kv, noput, nodelete, fragment, progress;
} wspec_t;

static kv_watcher_t *watch_start(kvh_t *h, const wspec_t *s, rec_t *r, int64_t id)
{
	Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	Etcdserverpb__WatchCreateRequest__FilterType f[2];
	req.key = s->zero_key ? kvh_zero : kvh_bin(s->key);
	if (s->from_key)
		req.range_end = kvh_zero;
	else
		req.range_end = kvh_bin(s->end);
	req.start_revision = s->start;
	req.prev_kv = s->prev_kv;
	req.fragment = s->fragment;
	req.progress_notify = s->progress;
	req.watch_id = id;
	if (s->noput)
		f[req.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
	if (s->nodelete)
		f[req.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
	req.filters = f;
	r->watch_id = id;
	r->h = h;
	kv_watcher_t *w = NULL;
	assert_int_equal(kv_watch(h->kv, &req, rec_cb, r, &w), KV_OK);
	assert_non_null(w);
	return w;
}

static void step_all(kvh_t *h)
{
	for (int i = 0; i < 100000 && kv_watch_step(h->kv) > 0; i++)
		;
	assert_int_equal(kv_watch_step(h->kv), 0);
}

static bool model_compacted_at(const model_t *m, int64_t rev)
{
	for (size_t i = 0; i < m->n_compacts; i++)
		if (m->compacts[i] == rev)
			return true;
	return false;
}

static bool model_compacted_after(const model_t *m, int64_t rev)
{
	for (size_t i = 0; i < m->n_compacts; i++)
		if (m->compacts[i] > rev)
			return true;
	return false;
}

/* The events a watcher must see: the history from first_rev, in range, filtered. */
static void expect_events(const model_t *m, const wspec_t *s, int64_t first_rev, const rec_t *r,
			  bool prefix_only)
{
	size_t j = 0;
	for (size_t i = 0; i < m->n_log; i++) {
		const mev_t *e = &m->log[i];
		if (e->rev < first_rev || !in_range(e->key, s->key, s->end, s->from_key))
			continue;
		if (e->type == MVCCPB__EVENT__EVENT_TYPE__PUT ? s->noput : s->nodelete)
			continue;
		if (j == r->n_ev && prefix_only)
			return;
		/* Compaction at M drops a tombstone at M, so a watcher that reads history from M
		 * does not see that delete: etcd 3.4 behaves the same. */
		if (e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE && model_compacted_at(m, e->rev) &&
		    (j >= r->n_ev || r->ev[j].rev != e->rev || strcmp(r->ev[j].key, e->key) != 0))
			continue;
		if (j >= r->n_ev)
			fail_msg("watcher %lld: missing event %zu (rev %lld key %s), got %zu",
				 (long long)r->watch_id, j, (long long)e->rev, e->key, r->n_ev);
		const rev_t *x = &r->ev[j];
		if (x->rev != e->rev || x->type != e->type || strcmp(x->key, e->key) != 0)
			fail_msg("watcher %lld event %zu: got rev %lld type %d key %s, "
				 "want rev %lld type %d key %s", (long long)r->watch_id, j,
				 (long long)x->rev, x->type, x->key, (long long)e->rev, e->type, e->key);
		if (e->val)
			assert_string_equal(x->val, e->val);
		/* prev_kv is read at rev - 1 on replay: gone once that is compacted, as in etcd. */
		bool may_lack = model_compacted_after(m, e->rev - 1);
		if (!s->prev_kv) {
			assert_false(x->has_prev);
		} else if (x->has_prev || !may_lack) {
			assert_int_equal(x->has_prev, e->prev != NULL);
			if (e->prev)
				assert_string_equal(x->prev, e->prev);
		}
		j++;
	}
	if (j != r->n_ev)
		fail_msg("watcher %lld: %zu extra events", (long long)r->watch_id, r->n_ev - j);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_key_prefix_and_from_key_watchers_get_exactly_their_events(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	wspec_t specs[] = {
		{ .key = "foo" },
		{ .key = "foo", .end = "fop" },
		{ .key = "foo/b", .from_key = true },
		{ .key = "", .from_key = true },        /* "" + "\0": every key */
		{ .key = "", .from_key = true, .zero_key = true }, /* "\0" + "\0": every key */
	};
	enum { N = sizeof(specs) / sizeof(specs[0]) };
	rec_t r[N] = { 0 };
	kv_watcher_t *w[N];
	for (int i = 0; i < N; i++)
		w[i] = watch_start(h, &specs[i], &r[i], i + 1);
	int64_t first = kv_revision(h->kv) + 1;
	m_put(&m, "foo", "1");
	m_put(&m, "foo/a", "2");
	m_put(&m, "fo", "3");
	m_put(&m, "fop", "4");
	m_put(&m, "foo/b", "5");
	m_put(&m, "zzz", "6");
	m_del(&m, "foo", "foo0");   /* foo and foo/a, foo/b in one revision */
	const char *k[] = { "foo", "a" }, *v[] = { "7", "8" };
	m_txn_puts(&m, k, v, 2);
	for (int i = 0; i < N; i++) {
		expect_events(&m, &specs[i], first, &r[i], false);
		assert_int_equal(r[i].refused, 0);
	}
	assert_int_equal(r[0].n_ev, 3);     /* put, delete, txn put */
	assert_int_equal(r[1].n_ev, 7);
	assert_int_equal(kv_watch_step(h->kv), 0);
	for (int i = 0; i < N; i++) {
		kv_watch_cancel(h->kv, w[i]);
		rec_free(&r[i]);
	}
	model_free(&m);
	kvh_free(h);
}

static void test_one_response_per_batch_carries_the_current_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	rec_t r = { 0 };
	wspec_t s = { .key = "a", .from_key = true };
	kv_watcher_t *w = watch_start(h, &s, &r, 7);
	const char *k[] = { "a", "b", "c" }, *v[] = { "1", "2", "3" };
	int64_t rev = m_txn_puts(&m, k, v, 3);
	assert_int_equal(r.n_resp, 1);
	assert_int_equal(r.resp[0].n_events, 3);
	assert_int_equal(r.resp[0].hdr_rev, rev);
	assert_false(r.resp[0].fragment);
	kv_watch_cancel(h->kv, w);
	rec_free(&r);
	model_free(&m);
	kvh_free(h);
}

static void test_range_end_at_or_before_key_is_refused(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	req.key = kvh_bin("b");
	req.range_end = kvh_bin("a");
	rec_t r = { 0 };
	kv_watcher_t *w = (kv_watcher_t *)&r;
	assert_int_equal(kv_watch(h->kv, &req, rec_cb, &r, &w), KV_ERR_WATCH_RANGE_EMPTY);
	assert_null(w);
	req.range_end = kvh_bin("b");
	assert_int_equal(kv_watch(h->kv, &req, rec_cb, &r, &w), KV_ERR_WATCH_RANGE_EMPTY);
	req.range_end = kvh_bin("ba");   /* after "b": one key */
	assert_int_equal(kv_watch(h->kv, &req, rec_cb, &r, &w), KV_OK);
	kv_watch_cancel(h->kv, w);
	req.range_end = kvh_bin("c");
	assert_int_equal(kv_watch(h->kv, &req, NULL, &r, &w), KV_ERR_BAD_REQUEST);
	assert_int_equal(kv_watch(h->kv, &req, rec_cb, &r, &w), KV_OK);
	kv_watch_cancel(h->kv, w);
	kvh_free(h);
}

/* History: puts, deletes and a multi-key delete replayed with prev_kv from a past start,
 * then live events, with the catch-up interleaved with new writes. */
static void test_past_start_replays_history_then_continues_live_without_gap(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_batch_events = 2;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	m_put(&m, "k1", "a");
	int64_t start = m_put(&m, "k2", "b");
	m_put(&m, "k1", "c");
	m_del(&m, "k1", NULL);
	m_put(&m, "k1", "d");
	m_put(&m, "k3", "e");
	int64_t multi = m_del(&m, "k1", "k9"); /* three tombstones in one revision */
	m_put(&m, "x", "f");
	m_put(&m, "k2", "g");

	wspec_t s = { .key = "k", .end = "l", .start = start, .prev_kv = true };
	wspec_t all = { .key = "", .from_key = true, .start = 1, .prev_kv = true };
	wspec_t one = { .key = "k1", .start = 1 };
	rec_t r = { 0 }, ra = { 0 }, r1 = { 0 };
	kv_watcher_t *w = watch_start(h, &s, &r, 1);
	kv_watcher_t *wa = watch_start(h, &all, &ra, 2);
	kv_watcher_t *w1 = watch_start(h, &one, &r1, 3);
	assert_int_equal(r.calls, 0);            /* history comes from kv_watch_step */
	assert_true(kv_watch_step(h->kv) > 0);   /* two records per step: still behind */
	assert_true(r.n_ev > 0 && r.n_ev < 9);
	m_put(&m, "k3", "h");                     /* while behind */
	assert_true(kv_watch_step(h->kv) > 0);
	m_del(&m, "k2", NULL);
	step_all(h);
	m_put(&m, "k4", "i");                     /* live now */
	m_put(&m, "k4", "j");
	assert_int_equal(kv_watch_step(h->kv), 0);
	expect_events(&m, &s, start, &r, false);
	expect_events(&m, &all, 1, &ra, false);
	expect_events(&m, &one, 1, &r1, false);
	/* The multi-key delete's three events came in one response. */
	bool seen = false;
	for (size_t i = 0, e = 0; i < r.n_resp; e += r.resp[i].n_events, i++)
		for (size_t j = e; j < e + r.resp[i].n_events; j++)
			if (r.ev[j].rev == multi && strcmp(r.ev[j].key, "k1") == 0) {
				assert_true(j + 2 < e + r.resp[i].n_events);
				seen = true;
			}
	assert_true(seen);
	/* A replayed put carries the metadata of the record. */
	assert_int_equal(r.ev[0].rev, start);
	assert_int_equal(r.ev[0].create_rev, start);
	assert_int_equal(r.ev[0].version, 1);
	kv_watch_cancel(h->kv, w);
	kv_watch_cancel(h->kv, wa);
	kv_watch_cancel(h->kv, w1);
	rec_free(&r);
	rec_free(&ra);
	rec_free(&r1);
	model_free(&m);
	kvh_free(h);
}

static void test_future_start_waits_for_that_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	int64_t rev = m_put(&m, "a", "1");
	wspec_t s = { .key = "a", .start = rev + 3 };
	rec_t r = { 0 };
	kv_watcher_t *w = watch_start(h, &s, &r, 1);
	m_put(&m, "a", "2");
	m_put(&m, "a", "3");
	assert_int_equal(r.n_ev, 0);
	m_put(&m, "a", "4");
	assert_int_equal(kv_watch_step(h->kv), 0);
	expect_events(&m, &s, rev + 3, &r, false);
	assert_int_equal(r.n_ev, 1);
	kv_watch_cancel(h->kv, w);
	rec_free(&r);
	model_free(&m);
	kvh_free(h);
}

static void test_filters_drop_puts_or_deletes_live_and_from_history(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	m_put(&m, "a", "1");
	m_del(&m, "a", NULL);
	m_put(&m, "b", "2");
	wspec_t specs[] = {
		{ .key = "", .from_key = true, .start = 1, .noput = true },
		{ .key = "", .from_key = true, .start = 1, .nodelete = true },
		{ .key = "", .from_key = true, .noput = true },
		{ .key = "", .from_key = true, .nodelete = true, .prev_kv = true },
		{ .key = "", .from_key = true, .noput = true, .nodelete = true },
	};
	enum { N = sizeof(specs) / sizeof(specs[0]) };
	rec_t r[N] = { 0 };
	kv_watcher_t *w[N];
	int64_t first[N];
	for (int i = 0; i < N; i++) {
		w[i] = watch_start(h, &specs[i], &r[i], i);
		first[i] = specs[i].start ? specs[i].start : kv_revision(h->kv) + 1;
	}
	step_all(h);
	m_put(&m, "a", "3");
	m_del(&m, "b", NULL);
	m_put(&m, "b", "4");
	m_del(&m, "a", "z");
	step_all(h);
	for (int i = 0; i < N; i++)
		expect_events(&m, &specs[i], first[i], &r[i], false);
	assert_int_equal(r[0].n_ev, 4);
	assert_int_equal(r[2].n_ev, 3);
	assert_int_equal(r[4].n_ev, 0);
	assert_int_equal(r[4].calls, 0);       /* all filtered: nothing sent at all */
	for (size_t i = 0; i < r[2].n_ev; i++)
		assert_int_equal(r[2].ev[i].type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
	for (int i = 0; i < N; i++) {
		kv_watch_cancel(h->kv, w[i]);
		rec_free(&r[i]);
	}
	model_free(&m);
	kvh_free(h);
}

/* A txn of 20 large values to a fragmenting and a plain watcher. */
static void test_fragments_cut_between_events_concatenate_to_the_whole(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_max_response_bytes = 1000;
	opt.watch_batch_events = 5;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	wspec_t fs = { .key = "big/", .end = "big0", .fragment = true, .prev_kv = true };
	wspec_t ps = { .key = "big/", .end = "big0", .prev_kv = true };
	rec_t fr = { 0 }, pr = { 0 }, hr = { 0 };
	kv_watcher_t *fw = watch_start(h, &fs, &fr, 1);
	kv_watcher_t *pw = watch_start(h, &ps, &pr, 2);
	int64_t first = kv_revision(h->kv) + 1;
	char keys[20][16], vals[20][301];
	const char *kp[20], *vp[20];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 20; i++) {
			snprintf(keys[i], sizeof(keys[i]), "big/%02d", i);
			memset(vals[i], 'a' + i + round, 300);
			vals[i][300] = 0;
			kp[i] = keys[i];
			vp[i] = vals[i];
		}
		m_txn_puts(&m, kp, vp, 20);
	}
	/* The same from history: a watcher starting at the first txn. */
	wspec_t hs = fs;
	hs.start = first;
	kv_watcher_t *hw = watch_start(h, &hs, &hr, 3);
	step_all(h);
	expect_events(&m, &ps, first, &pr, false);
	expect_events(&m, &fs, first, &fr, false);
	expect_events(&m, &hs, first, &hr, false);
	assert_int_equal(pr.n_resp, 2);
	assert_false(pr.resp[0].fragment);
	assert_true(pr.resp[0].size >= 1000);
	const rec_t *frs[] = { &fr, &hr };
	for (int k = 0; k < 2; k++) {
		const rec_t *r = frs[k];
		assert_true(r->n_resp > 4);
		size_t in_txn = 0;
		for (size_t i = 0; i < r->n_resp; i++) {
			in_txn += r->resp[i].n_events;
			bool last = in_txn == 20;
			assert_int_equal(r->resp[i].fragment, !last);
			if (last)
				in_txn = 0;
			/* Under the limit unless one event alone exceeds it. */
			assert_true(r->resp[i].size < 1000 || r->resp[i].n_events == 1);
		}
		assert_int_equal(in_txn, 0);
	}
	kv_watch_cancel(h->kv, fw);
	kv_watch_cancel(h->kv, pw);
	kv_watch_cancel(h->kv, hw);
	rec_free(&fr);
	rec_free(&pr);
	rec_free(&hr);
	model_free(&m);
	kvh_free(h);
}

/* Fragment sizes follow etcd's greedy cut: a fragment stays under the limit unless it is
 * one event, and the next fragment's first event would have reached the limit. */
typedef struct frag_log {
	size_t size[64], first_cost[64], n_events[64];
	bool fragment[64];
	size_t n;
} frag_log_t;

static int frag_log_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	frag_log_t *f = ud;
	assert_true(f->n < 64);
	assert_true(resp->n_events > 0);
	size_t es = protobuf_c_message_get_packed_size(&resp->events[0]->base);
	f->size[f->n] = protobuf_c_message_get_packed_size(&resp->base);
	f->first_cost[f->n] = 1 + (es < 128 ? 1 : es < 16384 ? 2 : 3) + es;
	f->n_events[f->n] = resp->n_events;
	f->fragment[f->n] = resp->fragment;
	f->n++;
	return 0;
}

static void test_fragment_sizes_follow_etcds_greedy_cut(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_max_response_bytes = 700;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	frag_log_t f = { 0 };
	Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	req.key = kvh_bin("k");
	req.range_end = kvh_bin("l");
	req.fragment = true;
	kv_watcher_t *w = NULL;
	assert_int_equal(kv_watch(h->kv, &req, frag_log_cb, &f, &w), KV_OK);
	char keys[12][8], vals[12][260];
	const char *kp[12], *vp[12];
	for (int i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
		memset(vals[i], 'A' + i, 50 + 17 * i);   /* uneven sizes */
		vals[i][50 + 17 * i] = 0;
		kp[i] = keys[i];
		vp[i] = vals[i];
	}
	m_txn_puts(&m, kp, vp, 12);
	assert_true(f.n > 3);
	size_t total = 0;
	for (size_t i = 0; i < f.n; i++) {
		total += f.n_events[i];
		assert_int_equal(f.fragment[i], i + 1 < f.n);
		assert_true(f.size[i] < 700 || f.n_events[i] == 1);
		if (i + 1 < f.n)   /* the next event did not fit */
			assert_true(f.size[i] + f.first_cost[i + 1] >= 700);
	}
	assert_int_equal(total, 12);
	/* A response under the limit is not fragmented at all. */
	f.n = 0;
	m_put(&m, "k00", "small");
	assert_int_equal(f.n, 1);
	assert_false(f.fragment[0]);
	kv_watch_cancel(h->kv, w);
	model_free(&m);
	kvh_free(h);
}

/* A receiver that refuses the k-th call of each burst. */
typedef struct nth_rec {
	rec_t r;
	int call;
	int refuse_at;               /* refuse call number refuse_at (1-based), 0: never */
} nth_rec_t;

static int nth_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	nth_rec_t *n = ud;
	if (++n->call == n->refuse_at) {
		n->r.refused++;
		return -1;
	}
	return rec_cb(&n->r, w, resp);
}

static void test_refused_fragment_resumes_mid_revision_exactly_once(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_max_response_bytes = 700;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	int64_t first = kv_revision(h->kv) + 1;
	nth_rec_t n = { .refuse_at = 3 };
	n.r.watch_id = 5;
	n.r.h = h;
	Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	req.key = kvh_bin("k");
	req.range_end = kvh_bin("l");
	req.fragment = true;
	req.watch_id = 5;
	kv_watcher_t *w = NULL;
	assert_int_equal(kv_watch(h->kv, &req, nth_cb, &n, &w), KV_OK);
	char keys[12][8], vals[12][201];
	const char *kp[12], *vp[12];
	for (int i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
		memset(vals[i], 'A' + i, 200);
		vals[i][200] = 0;
		kp[i] = keys[i];
		vp[i] = vals[i];
	}
	m_txn_puts(&m, kp, vp, 12);              /* ~12 fragments: the 3rd is refused */
	assert_int_equal(n.r.refused, 1);
	assert_true(n.r.n_ev > 0 && n.r.n_ev < 12);
	kv_watch_step(h->kv);
	m_put(&m, "k99", "after");
	step_all(h);
	wspec_t s = { .key = "k", .end = "l" };
	expect_events(&m, &s, first, &n.r, false);
	kv_watch_cancel(h->kv, w);
	rec_free(&n.r);
	model_free(&m);
	kvh_free(h);
}

static void test_refusing_n_times_then_taking_delivers_exactly_once_in_order(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_batch_events = 3;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	wspec_t s = { .key = "", .from_key = true, .prev_kv = true };
	rec_t r = { 0 };
	kv_watcher_t *w = watch_start(h, &s, &r, 9);
	int64_t first = kv_revision(h->kv) + 1;
	m_put(&m, "a", "1");
	r.refuse = 5;
	m_put(&m, "b", "2");                      /* refused: falls behind */
	m_put(&m, "a", "3");
	m_del(&m, "a", NULL);
	const char *k[] = { "c", "d", "e" }, *v[] = { "4", "5", "6" };
	m_txn_puts(&m, k, v, 3);
	for (int i = 0; i < 3; i++)
		assert_true(kv_watch_step(h->kv) > 0);   /* refusals 2..4 */
	m_put(&m, "f", "7");
	step_all(h);
	m_put(&m, "g", "8");
	assert_int_equal(r.refused, 5);
	expect_events(&m, &s, first, &r, false);
	kv_watch_cancel(h->kv, w);
	rec_free(&r);
	model_free(&m);
	kvh_free(h);
}

static void test_a_receiver_that_always_refuses_stays_behind_without_harm(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	wspec_t s = { .key = "a" }, t = { .key = "a" };
	rec_t r = { 0 }, ok = { 0 };
	r.refuse_all = true;
	kv_watcher_t *w = watch_start(h, &s, &r, 1);
	kv_watcher_t *w2 = watch_start(h, &t, &ok, 2);
	int64_t first = kv_revision(h->kv) + 1;
	for (int i = 0; i < 20; i++) {
		char v[8];
		snprintf(v, sizeof(v), "%d", i);
		m_put(&m, "a", v);
		assert_int_equal(kv_watch_step(h->kv), 1);
	}
	kv_watch_progress(h->kv, w);   /* behind: no progress notification */
	assert_int_equal(r.n_ev, 0);
	expect_events(&m, &t, first, &ok, false);
	r.refuse_all = false;
	step_all(h);
	expect_events(&m, &s, first, &r, false);
	kv_watch_cancel(h->kv, w);
	kv_watch_cancel(h->kv, w2);
	rec_free(&r);
	rec_free(&ok);
	model_free(&m);
	kvh_free(h);
}

static void test_compaction_cancels_a_behind_watcher_with_its_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	wspec_t s = { .key = "a" };
	rec_t r = { 0 };
	kv_watcher_t *w = watch_start(h, &s, &r, 4);
	m_put(&m, "a", "1");
	r.refuse_all = true;
	for (int i = 0; i < 6; i++)
		m_put(&m, "a", "x");                  /* revs 3..8, all refused */
	assert_int_equal(kvh_compact(h, 6), KV_OK);
	/* The cancel is offered at once and refused; the next step offers it again. */
	assert_int_equal(r.canceled, 0);
	assert_int_equal(kv_watch_step(h->kv), 1);
	r.refuse_all = false;
	assert_int_equal(kv_watch_step(h->kv), 0);
	assert_int_equal(r.canceled, 1);
	assert_int_equal(r.compact_rev, 6);
	assert_int_equal(r.cancel_hdr_rev, 0);   /* as etcd 3.4 sends it */
	assert_int_equal(r.n_ev, 1);
	m_put(&m, "a", "after");
	kv_watch_progress(h->kv, w);
	kv_watch_progress(h->kv, NULL);
	assert_int_equal(kv_watch_step(h->kv), 0);
	assert_int_equal(r.after_cancel, 0);
	assert_int_equal(r.progress, 0);
	kv_watch_cancel(h->kv, w);
	rec_free(&r);
	model_free(&m);
	kvh_free(h);
}

/* etcd 3.4: a start below the compacted revision is canceled, the compacted revision
 * itself is still served (etcdctl watch --rev=N after compact M, N = M-1 and N = M). */
static void test_start_below_compaction_cancels_at_once_start_at_it_is_served(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	for (int i = 0; i < 4; i++)
		m_put(&m, "a", "v");
	int64_t c = m_put(&m, "a", "last");
	int64_t d = m_del(&m, "a", NULL);
	m_put(&m, "b", "x");
	assert_int_equal(kvh_compact(h, c), KV_OK);
	wspec_t below = { .key = "a", .start = c - 1 }, at = { .key = "a", .start = c };
	rec_t rb = { 0 }, ra = { 0 };
	kv_watcher_t *wb = watch_start(h, &below, &rb, 1);
	assert_int_equal(rb.canceled, 1);          /* inside kv_watch */
	assert_int_equal(rb.compact_rev, c);
	kv_watcher_t *wa = watch_start(h, &at, &ra, 2);
	step_all(h);
	assert_int_equal(ra.canceled, 0);
	assert_int_equal(ra.n_ev, 2);
	assert_int_equal(ra.ev[0].rev, c);
	assert_string_equal(ra.ev[0].val, "last");
	assert_int_equal(ra.ev[1].rev, d);
	assert_int_equal(ra.ev[1].type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
	assert_int_equal(rb.after_cancel, 0);
	assert_int_equal(rb.n_ev, 0);
	kv_watch_cancel(h->kv, wb);
	kv_watch_cancel(h->kv, wa);
	rec_free(&rb);
	rec_free(&ra);
	model_free(&m);
	kvh_free(h);
}

static void test_progress_goes_to_caught_up_watchers_only(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	m_put(&m, "a", "1");
	wspec_t sp = { .key = "a", .progress = true }, sn = { .key = "a" };
	wspec_t behind = { .key = "a", .start = 1, .progress = true };
	rec_t rp = { 0 }, rn = { 0 }, rb = { 0 };
	kv_watcher_t *wp = watch_start(h, &sp, &rp, 1);
	kv_watcher_t *wn = watch_start(h, &sn, &rn, 2);
	kv_watcher_t *wb = watch_start(h, &behind, &rb, 3);
	int64_t rev = m_put(&m, "z", "2");
	kv_watch_progress(h->kv, NULL);
	assert_int_equal(rp.progress, 1);
	assert_int_equal(rp.progress_rev, rev);
	assert_int_equal(rn.progress, 0);          /* did not ask */
	assert_int_equal(rb.progress, 0);          /* behind */
	kv_watch_progress(h->kv, wn);               /* asked by the client: sent */
	assert_int_equal(rn.progress, 1);
	assert_int_equal(rn.progress_rev, rev);
	kv_watch_progress(h->kv, wb);
	assert_int_equal(rb.progress, 0);
	step_all(h);
	kv_watch_progress(h->kv, NULL);
	assert_int_equal(rb.progress, 1);
	assert_int_equal(rb.progress_rev, rev);
	assert_int_equal(rb.n_ev, 1);
	/* A refused progress notification is just dropped: nothing falls behind. */
	rp.refuse = 1;
	kv_watch_progress(h->kv, wp);
	assert_int_equal(kv_watch_step(h->kv), 0);
	kv_watch_cancel(h->kv, wp);
	kv_watch_cancel(h->kv, wn);
	kv_watch_cancel(h->kv, wb);
	rec_free(&rp);
	rec_free(&rn);
	rec_free(&rb);
	model_free(&m);
	kvh_free(h);
}

static void test_prev_kv_is_captured_only_while_someone_wants_it(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	assert_false(kv_hub_wants_prev(h->kv));
	wspec_t s = { .key = "a", .prev_kv = true }, p = { .key = "a" };
	rec_t r = { 0 }, rp = { 0 };
	kv_watcher_t *w = watch_start(h, &s, &r, 1);
	kv_watcher_t *wp = watch_start(h, &p, &rp, 2);
	assert_true(kv_hub_wants_prev(h->kv));
	int64_t first = kv_revision(h->kv) + 1;
	m_put(&m, "a", "1");
	m_put(&m, "a", "2");
	m_del(&m, "a", NULL);
	expect_events(&m, &s, first, &r, false);
	expect_events(&m, &p, first, &rp, false);  /* and never to who did not ask */
	assert_true(r.ev[1].has_prev);
	kv_watch_cancel(h->kv, w);
	assert_false(kv_hub_wants_prev(h->kv));
	kv_watch_cancel(h->kv, wp);
	rec_free(&r);
	rec_free(&rp);
	model_free(&m);
	kvh_free(h);
}

static void test_watchers_left_open_are_freed_by_close(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	m_put(&m, "a", "1");
	assert_int_equal(kvh_compact(h, 1), KV_OK);
	m_put(&m, "a", "2");
	rec_t r[4] = { 0 };
	wspec_t synced = { .key = "a" }, behind = { .key = "a", .start = 1 };
	wspec_t range = { .key = "a", .end = "b" };
	watch_start(h, &synced, &r[0], 1);
	watch_start(h, &behind, &r[1], 2);
	r[2].refuse_all = true;
	watch_start(h, &range, &r[2], 3);
	m_put(&m, "a", "3");
	assert_int_equal(kvh_compact(h, 3), KV_OK);  /* r[2] behind: canceling, refused */
	r[3].refuse_all = true;
	watch_start(h, &behind, &r[3], 4);
	for (int i = 0; i < 4; i++)
		rec_free(&r[i]);
	model_free(&m);
	kvh_free(h);   /* ASan: nothing leaks, no callback runs */
}

/* Prefix watchers are found through the hashes of the event key's prefixes: the edges
 * of etcd's prefix end (0xff bytes, a prefix equal to the whole key, look-alike ranges). */
static void test_prefix_watchers_match_exactly_the_keys_under_the_prefix(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	model_t m = { .h = h };
	wspec_t specs[] = {
		{ .key = "a\xff", .end = "b" },       /* prefix "a\xff" */
		{ .key = "a", .end = "b" },            /* prefix "a" */
		{ .key = "ab", .end = "b" },           /* a range, not a prefix */
		{ .key = "abc", .end = "abd" },        /* prefix "abc" */
		{ .key = "abc", .end = "abd" },        /* twice */
		{ .key = "abc" },                      /* the key */
	};
	enum { N = sizeof(specs) / sizeof(specs[0]) };
	rec_t r[N] = { 0 };
	kv_watcher_t *w[N];
	for (int i = 0; i < N; i++)
		w[i] = watch_start(h, &specs[i], &r[i], i);
	int64_t first = kv_revision(h->kv) + 1;
	const char *keys[] = { "a", "a\xfe", "a\xff", "a\xff\x01", "ab", "abc", "abcd", "abd",
			       "b", "\xff", "ab\xff" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		m_put(&m, keys[i], "v");
	m_del(&m, "a", "b");
	for (int i = 0; i < N; i++)
		expect_events(&m, &specs[i], first, &r[i], false);
	assert_int_equal(r[0].n_ev, 4);   /* a\xff, a\xff\x01, and their deletes */
	assert_int_equal(r[3].n_ev, 4);
	assert_int_equal(r[4].n_ev, 4);
	assert_int_equal(r[5].n_ev, 2);
	for (int i = 0; i < N; i++) {
		kv_watch_cancel(h->kv, w[i]);
		rec_free(&r[i]);
	}
	model_free(&m);
	kvh_free(h);
}

/* A follower's store replaced by a leader's snapshot: caught-up watchers resume from the
 * new history exactly where they were, or are canceled if that history is compacted. */
static void test_snapshot_install_resyncs_or_cancels_watchers(void **state)
{
	(void)state;
	for (int compacted = 0; compacted < 2; compacted++) {
		kvh_t *h1 = kvh_new(NULL), *h2 = kvh_new(NULL);
		model_t m = { .h = h1 };
		for (int i = 0; i < 5; i++) {
			char v[8];
			snprintf(v, sizeof(v), "o%d", i);
			m_put(&m, "s", v);
			kvh_put(h2, "s", v, 0);
		}
		wspec_t live = { .key = "s", .prev_kv = true }, behind = { .key = "s", .start = 2 };
		rec_t rl = { 0 }, rb = { 0 };
		kv_watcher_t *wl = watch_start(h2, &live, &rl, 1);
		kv_watcher_t *wb = watch_start(h2, &behind, &rb, 2);
		int64_t first = kv_revision(h2->kv) + 1;
		for (int i = 0; i < 5; i++)
			m_put(&m, "s", "new");
		if (compacted)
			assert_int_equal(kvh_compact(h1, kv_revision(h1->kv) - 1), KV_OK);
		char snap[400];
		snprintf(snap, sizeof(snap), "%s/snap", h2->dir);
		assert_int_equal(kv_snapshot_save(h1->kv, snap), KV_OK);
		assert_int_equal(kv_snapshot_install(h2->kv, snap), KV_OK);
		h2->index = kv_applied_index(h2->kv);
		step_all(h2);
		m.h = h2;
		m_put(&m, "s", "after");
		assert_int_equal(kv_watch_step(h2->kv), 0);
		if (compacted) {
			assert_int_equal(rl.canceled, 1);
			assert_int_equal(rl.compact_rev, kv_compact_revision(h2->kv));
			assert_int_equal(rb.canceled, 1);
			assert_int_equal(rl.n_ev, 0);
		} else {
			expect_events(&m, &live, first, &rl, false);
			expect_events(&m, &behind, 2, &rb, false);
		}
		kv_watch_cancel(h2->kv, wl);
		kv_watch_cancel(h2->kv, wb);
		rec_free(&rl);
		rec_free(&rb);
		model_free(&m);
		kvh_free(h1);
		kvh_free(h2);
	}
}

/* ---- the seeded random model ----------------------------------------------------- */

typedef struct rw {
	wspec_t s;
	char key[8], end[8];
	rec_t r;
	kv_watcher_t *w;
	int64_t first;
} rw_t;

static void random_spec(uint64_t *rng, rw_t *x, int64_t cur, int64_t compact)
{
	int kind = (int)(rng_next(rng) % 5);
	int a = (int)(rng_next(rng) % 20), b = (int)(rng_next(rng) % 20);
	if (a > b) {
		int t = a;
		a = b;
		b = t;
	}
	snprintf(x->key, sizeof(x->key), "k%02d", a);
	snprintf(x->end, sizeof(x->end), "k%02d", b + 1);
	x->s.key = x->key;
	if (kind == 1) {
		x->s.end = x->end;
	} else if (kind == 2) {
		x->s.from_key = true;
	} else if (kind == 3) {
		x->s.key = "";
		x->s.from_key = true;
	} else if (kind == 4) {   /* a prefix: "k0" .. "k1", or "k1" .. "k2" */
		snprintf(x->key, sizeof(x->key), "k%d", a % 2);
		snprintf(x->end, sizeof(x->end), "k%d", a % 2 + 1);
		x->s.end = x->end;
	}
	int f = (int)(rng_next(rng) % 6);
	x->s.noput = f == 0;
	x->s.nodelete = f == 1;
	x->s.prev_kv = rng_next(rng) % 2;
	x->s.fragment = rng_next(rng) % 3 == 0;
	int64_t lo = compact > 1 ? compact : 1;
	int64_t span = cur + 2 - lo + 1;
	x->s.start = rng_next(rng) % 4 == 0 ? 0 : lo + (int64_t)(rng_next(rng) % (uint64_t)span);
	x->first = x->s.start && x->s.start > cur ? x->s.start : x->s.start ? x->s.start : cur + 1;
	x->r.refuse_pct = 30;
	x->r.rng = rng_next(rng) | 1;
}

static void run_random(uint64_t seed, bool compaction)
{
	kv_options_t opt;
	kv_options_default(&opt);
	opt.watch_batch_events = 1 + seed % 5;
	opt.watch_max_response_bytes = 200;
	kvh_t *h = kvh_new(&opt);
	model_t m = { .h = h };
	uint64_t rng = seed * 2654435761u + 1;
	enum { NW = 40, OPS = 400 };
	rw_t *ws = calloc(NW, sizeof(*ws));
	assert_non_null(ws);
	size_t nw = 0;
	int64_t compact = 0;
	for (int op = 0; op < OPS; op++) {
		int dice = (int)(rng_next(&rng) % 100);
		char key[8], end[8], val[32];
		snprintf(key, sizeof(key), "k%02d", (int)(rng_next(&rng) % 20));
		snprintf(val, sizeof(val), "v%d", op);
		if (dice < 45) {
			m_put(&m, key, val);
		} else if (dice < 60) {
			m_del(&m, key, NULL);
		} else if (dice < 68) {
			snprintf(end, sizeof(end), "k%02d", (int)(rng_next(&rng) % 21));
			if (strcmp(key, end) < 0)
				m_del(&m, key, end);
		} else if (dice < 83) {
			char kb[4][8], vb[4][32];
			const char *kp[4], *vp[4];
			int n = 2 + (int)(rng_next(&rng) % 3), base = (int)(rng_next(&rng) % 20);
			for (int i = 0; i < n; i++) {
				snprintf(kb[i], sizeof(kb[i]), "k%02d", (base + i * 7) % 20);
				snprintf(vb[i], sizeof(vb[i]), "t%d.%d", op, i);
				kp[i] = kb[i];
				vp[i] = vb[i];
			}
			m_txn_puts(&m, kp, vp, (size_t)n);
		} else if (dice < 93 && nw < NW) {
			rw_t *x = &ws[nw];
			random_spec(&rng, x, kv_revision(h->kv), compact);
			x->w = watch_start(h, &x->s, &x->r, (int64_t)nw);
			nw++;
		} else if (compaction && dice >= 97) {
			int64_t cur = kv_revision(h->kv);
			int64_t c = cur - (int64_t)(rng_next(&rng) % 5);
			if (dice >= 98 && c > compact && c >= 1 && m.n_compacts < 64) {
				assert_int_equal(kvh_compact(h, c), KV_OK);
				compact = c;
				m.compacts[m.n_compacts++] = c;
			}
		} else {
			kv_watch_progress(h->kv, NULL);
		}
		if (rng_next(&rng) % 2)
			kv_watch_step(h->kv);
	}
	for (size_t i = 0; i < nw; i++)
		ws[i].r.refuse_pct = 0;
	step_all(h);
	size_t canceled = 0, events = 0, refused = 0;
	for (size_t i = 0; i < nw; i++) {
		rw_t *x = &ws[i];
		assert_int_equal(x->r.after_cancel, 0);
		if (x->r.canceled) {
			canceled++;
			assert_true(compaction);
			assert_true(x->r.compact_rev > 0 && x->r.compact_rev <= compact);
		}
		expect_events(&m, &x->s, x->first, &x->r, x->r.canceled != 0);
		events += x->r.n_ev;
		refused += (size_t)x->r.refused;
		kv_watch_cancel(h->kv, x->w);
		rec_free(&x->r);
	}
	print_message("seed %llu: %zu watchers, %zu events delivered, %zu refusals, %zu canceled\n",
		      (unsigned long long)seed, nw, events, refused, canceled);
	free(ws);
	model_free(&m);
	kvh_free(h);
}

static uint64_t base_seed(void)
{
	const char *s = getenv("KEEL_SEED");
	return s ? strtoull(s, NULL, 10) : 20240601;
}

static void test_random_watchers_with_refusals_get_exactly_filtered_history(void **state)
{
	(void)state;
	for (uint64_t i = 0; i < 6; i++)
		run_random(base_seed() + i, false);
}

static void test_random_watchers_with_compaction_see_a_prefix_then_the_cancel(void **state)
{
	(void)state;
	for (uint64_t i = 0; i < 6; i++)
		run_random(base_seed() + 100 + i, true);
}

/* ---- timing (information only; never fails on time) ------------------------------ */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int count_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	*(size_t *)ud += resp->n_events;
	return 0;
}

static void test_notify_cost_with_ten_thousand_single_key_watchers(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	enum { NW = 10000, PUTS = 200 };
	kv_watcher_t **w = calloc(NW, sizeof(*w));
	assert_non_null(w);
	size_t got = 0;
	char key[16];
	double t0 = now_s();
	for (int i = 0; i < NW; i++) {
		Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
		snprintf(key, sizeof(key), "w%05d", i);
		req.key = kvh_bin(key);
		req.watch_id = i;
		assert_int_equal(kv_watch(h->kv, &req, count_cb, &got, &w[i]), KV_OK);
	}
	double t1 = now_s();
	/* The notify alone, on a batch of one put event. */
	Mvccpb__KeyValue kvp = MVCCPB__KEY_VALUE__INIT;
	Mvccpb__Event ev = MVCCPB__EVENT__INIT, *evp = &ev;
	kvh_put(h, "w00042", "v", 0);
	kvp.key = kvh_bin("w00042");
	kvp.value = kvh_bin("v");
	kvp.mod_revision = kv_revision(h->kv) + 1;
	ev.kv = &kvp;
	kv_events_t evs = { &evp, 1, 1 };
	got = 0;
	double t2 = now_s();
	for (int i = 0; i < PUTS; i++) {
		kvp.mod_revision = kv_revision(h->kv) + 1 + i;
		kv_hub_notify(h->kv, &evs, kvp.mod_revision);
	}
	double t3 = now_s();
	assert_int_equal(got, PUTS);
	/* And a whole put through apply. */
	double t4 = now_s();
	for (int i = 0; i < PUTS; i++) {
		snprintf(key, sizeof(key), "w%05d", i * 37 % NW);
		kvh_put(h, key, "x", 0);
	}
	double t5 = now_s();
	assert_int_equal(got, 2 * PUTS);
	print_message("10000 single-key watchers: create %.1f ms total; kv_hub_notify of one put "
		      "%.2f us; kvh_put incl. apply+notify %.1f us\n", (t1 - t0) * 1e3,
		      (t3 - t2) / PUTS * 1e6, (t5 - t4) / PUTS * 1e6);
	for (int i = 0; i < NW; i++)
		kv_watch_cancel(h->kv, w[i]);
	free(w);
	kvh_free(h);
}

/* Notify cost with 10,000 watchers of one shape: prefixes ("p01234/" .. "p012340") or
 * general ranges ("r01234" .. "r01235\x01"); one event matches one watcher. */
static double notify_cost_us(bool prefix)
{
	kvh_t *h = kvh_new(NULL);
	enum { NW = 10000, ROUNDS = 200 };
	kv_watcher_t **w = calloc(NW, sizeof(*w));
	assert_non_null(w);
	size_t got = 0;
	char key[16], end[16];
	for (int i = 0; i < NW; i++) {
		Etcdserverpb__WatchCreateRequest req = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
		if (prefix) {
			snprintf(key, sizeof(key), "p%05d/", i);
			snprintf(end, sizeof(end), "p%05d0", i);
		} else {
			snprintf(key, sizeof(key), "r%05d", i);
			snprintf(end, sizeof(end), "r%05d\x01", i);
		}
		req.key = kvh_bin(key);
		req.range_end = kvh_bin(end);
		assert_int_equal(kv_watch(h->kv, &req, count_cb, &got, &w[i]), KV_OK);
	}
	Mvccpb__KeyValue kvp = MVCCPB__KEY_VALUE__INIT;
	Mvccpb__Event ev = MVCCPB__EVENT__INIT, *evp = &ev;
	kvp.key = kvh_bin(prefix ? "p04242/some/object" : "r04242");
	kvp.value = kvh_bin("v");
	ev.kv = &kvp;
	kv_events_t evs = { &evp, 1, 1 };
	double t0 = now_s();
	for (int i = 0; i < ROUNDS; i++) {
		kvp.mod_revision = kv_revision(h->kv) + 1 + i;
		kv_hub_notify(h->kv, &evs, kvp.mod_revision);
	}
	double t1 = now_s();
	assert_int_equal(got, ROUNDS);
	for (int i = 0; i < NW; i++)
		kv_watch_cancel(h->kv, w[i]);
	free(w);
	kvh_free(h);
	return (t1 - t0) / ROUNDS * 1e6;
}

static void test_notify_cost_with_ten_thousand_prefix_or_range_watchers(void **state)
{
	(void)state;
	double p = notify_cost_us(true), r = notify_cost_us(false);
	print_message("10000 prefix watchers: kv_hub_notify of one put %.2f us; 10000 general "
		      "range watchers: %.2f us\n", p, r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_prefix_and_from_key_watchers_get_exactly_their_events),
		cmocka_unit_test(test_one_response_per_batch_carries_the_current_revision),
		cmocka_unit_test(test_range_end_at_or_before_key_is_refused),
		cmocka_unit_test(test_past_start_replays_history_then_continues_live_without_gap),
		cmocka_unit_test(test_future_start_waits_for_that_revision),
		cmocka_unit_test(test_filters_drop_puts_or_deletes_live_and_from_history),
		cmocka_unit_test(test_fragments_cut_between_events_concatenate_to_the_whole),
		cmocka_unit_test(test_fragment_sizes_follow_etcds_greedy_cut),
		cmocka_unit_test(test_refused_fragment_resumes_mid_revision_exactly_once),
		cmocka_unit_test(test_refusing_n_times_then_taking_delivers_exactly_once_in_order),
		cmocka_unit_test(test_a_receiver_that_always_refuses_stays_behind_without_harm),
		cmocka_unit_test(test_compaction_cancels_a_behind_watcher_with_its_revision),
		cmocka_unit_test(test_start_below_compaction_cancels_at_once_start_at_it_is_served),
		cmocka_unit_test(test_progress_goes_to_caught_up_watchers_only),
		cmocka_unit_test(test_prev_kv_is_captured_only_while_someone_wants_it),
		cmocka_unit_test(test_watchers_left_open_are_freed_by_close),
		cmocka_unit_test(test_prefix_watchers_match_exactly_the_keys_under_the_prefix),
		cmocka_unit_test(test_snapshot_install_resyncs_or_cancels_watchers),
		cmocka_unit_test(test_random_watchers_with_refusals_get_exactly_filtered_history),
		cmocka_unit_test(test_random_watchers_with_compaction_see_a_prefix_then_the_cancel),
		cmocka_unit_test(test_notify_cost_with_ten_thousand_single_key_watchers),
		cmocka_unit_test(test_notify_cost_with_ten_thousand_prefix_or_range_watchers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
