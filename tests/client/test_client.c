/* tests/client/test_client.c — libkeel's typed API against a live cluster (keeld or etcd
 * 3.4, from tests/lib/with_cluster.py: KEEL_TEST_ENDPOINTS, KEEL_TEST_SERVER). Each test
 * works under its own key prefix; tests that compact run after those reading history.
 * Exits 77 (skipped) without a cluster. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "keel/keel.h"

static keel_t *k;
static char *endpoints[8];
static size_t n_endpoints;

/* Fails the test with the error's text when rc is not 0. */
static void ok(int rc, const keel_error_t *e, const char *what)
{
	if (rc != 0)
		fail_msg("%s: code %d kind %d: %s", what, rc, e->kind, e->message);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t put(const char *key, const char *value)
{
	keel_error_t e;
	keel_put_req_t req = { .key = key, .key_len = strlen(key), .value = value,
			       .value_len = strlen(value) };
	keel_put_result_t *r;
	ok(keel_put(k, &req, &r, &e), &e, "put");
	int64_t rev = r->header.revision;
	keel_put_result_free(r);
	return rev;
}

static keel_range_result_t *range_prefix(const char *prefix, keel_range_req_t req)
{
	static uint8_t end[256];
	keel_error_t e;
	req.key = prefix;
	req.key_len = strlen(prefix);
	req.range_end = end;
	req.range_end_len = keel_prefix_end(prefix, strlen(prefix), end);
	keel_range_result_t *r;
	ok(keel_range(k, &req, &r, &e), &e, "range");
	return r;
}

static bool kv_is(const keel_kv_t *kv, const char *key, const char *value)
{
	return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
	       (!value || strcmp((const char *)kv->value, value) == 0);
}

/* ---- KV ------------------------------------------------------------------------------ */

static void test_put_then_get_returns_value_and_metadata(void **state)
{
	(void)state;
	keel_error_t e;
	int64_t r1 = put("/kv/a", "1");
	int64_t r2 = put("/kv/a", "2");
	assert_true(r2 > r1);
	keel_range_result_t *r;
	ok(keel_get(k, "/kv/a", &r, &e), &e, "get");
	assert_int_equal(r->n_kvs, 1);
	assert_true(kv_is(&r->kvs[0], "/kv/a", "2"));
	assert_int_equal(r->kvs[0].create_revision, r1);
	assert_int_equal(r->kvs[0].mod_revision, r2);
	assert_int_equal(r->kvs[0].version, 2);
	assert_true(r->header.revision >= r2);
	assert_true(r->header.cluster_id != 0);
	keel_range_result_free(r);
	ok(keel_get(k, "/kv/absent", &r, &e), &e, "get absent");
	assert_int_equal(r->n_kvs, 0);
	assert_int_equal(r->count, 0);
	keel_range_result_free(r);
}

static void test_range_prefix_limit_sort_and_revision(void **state)
{
	(void)state;
	int64_t revs[5];
	char key[32], val[32];
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "/rg/%d", i);
		snprintf(val, sizeof val, "v%d", 4 - i);
		revs[i] = put(key, val);
	}
	put("/rh/outside", "x");
	keel_range_result_t *r = range_prefix("/rg/", (keel_range_req_t){ 0 });
	assert_int_equal(r->n_kvs, 5);
	assert_int_equal(r->count, 5);
	assert_false(r->more);
	assert_true(kv_is(&r->kvs[0], "/rg/0", "v4"));
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .limit = 2 });
	assert_int_equal(r->n_kvs, 2);
	assert_int_equal(r->count, 5);
	assert_true(r->more);
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .sort_order = KEEL_SORT_DESCEND,
						     .sort_target = KEEL_SORT_BY_KEY });
	assert_true(kv_is(&r->kvs[0], "/rg/4", NULL));
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .sort_order = KEEL_SORT_ASCEND,
						     .sort_target = KEEL_SORT_BY_VALUE });
	assert_true(kv_is(&r->kvs[0], "/rg/4", "v0"));
	keel_range_result_free(r);

	/* The store as it was after the third put. */
	r = range_prefix("/rg/", (keel_range_req_t){ .revision = revs[2] });
	assert_int_equal(r->n_kvs, 3);
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .count_only = true });
	assert_int_equal(r->n_kvs, 0);
	assert_int_equal(r->count, 5);
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .keys_only = true });
	assert_int_equal(r->n_kvs, 5);
	assert_int_equal(r->kvs[1].value_len, 0);
	assert_string_equal((char *)r->kvs[1].value, "");
	assert_true(kv_is(&r->kvs[1], "/rg/1", NULL));
	keel_range_result_free(r);

	r = range_prefix("/rg/", (keel_range_req_t){ .min_mod_revision = revs[3],
						     .serializable = true });
	assert_int_equal(r->n_kvs, 2);
	keel_range_result_free(r);
}

static void test_range_future_revision_is_an_error(void **state)
{
	(void)state;
	keel_error_t e;
	keel_range_req_t req = { .key = "/x", .key_len = 2, .revision = 1000000000 };
	keel_range_result_t *r = NULL;
	int rc = keel_range(k, &req, &r, &e);
	assert_int_equal(rc, KEEL_CODE_OUT_OF_RANGE);
	assert_int_equal(e.kind, KEEL_E_FUTURE_REV);
	assert_string_equal(e.message, "etcdserver: mvcc: required revision is a future revision");
	assert_null(r);
}

static void test_delete_range_returns_prev_kvs(void **state)
{
	(void)state;
	keel_error_t e;
	put("/del/a", "va");
	put("/del/b", "vb");
	put("/del/c", "vc");
	keel_delete_req_t req = { .key = "/del/a", .key_len = 6, .range_end = "/del/c",
				  .range_end_len = 6, .prev_kv = true };
	keel_delete_result_t *r;
	ok(keel_delete(k, &req, &r, &e), &e, "delete");
	assert_int_equal(r->deleted, 2);
	assert_int_equal(r->n_prev_kvs, 2);
	assert_true(kv_is(&r->prev_kvs[0], "/del/a", "va"));
	assert_true(kv_is(&r->prev_kvs[1], "/del/b", "vb"));
	keel_delete_result_free(r);
	req.prev_kv = false;
	req.range_end = NULL;
	req.key = "/del/c";
	ok(keel_delete(k, &req, &r, &e), &e, "delete one");
	assert_int_equal(r->deleted, 1);
	assert_int_equal(r->n_prev_kvs, 0);
	keel_delete_result_free(r);
	keel_range_result_t *rr = range_prefix("/del/", (keel_range_req_t){ 0 });
	assert_int_equal(rr->count, 0);
	keel_range_result_free(rr);
}

static void test_put_prev_kv_and_ignore_value(void **state)
{
	(void)state;
	keel_error_t e;
	put("/pv/k", "first");
	keel_put_req_t req = { .key = "/pv/k", .key_len = 5, .value = "second", .value_len = 6,
			       .prev_kv = true };
	keel_put_result_t *r;
	ok(keel_put(k, &req, &r, &e), &e, "put prev");
	assert_non_null(r->prev_kv);
	assert_true(kv_is(r->prev_kv, "/pv/k", "first"));
	keel_put_result_free(r);
	keel_put_req_t ign = { .key = "/pv/k", .key_len = 5, .ignore_value = true };
	ok(keel_put(k, &ign, NULL, &e), &e, "put ignore_value");
	keel_range_result_t *g;
	ok(keel_get(k, "/pv/k", &g, &e), &e, "get");
	assert_true(kv_is(&g->kvs[0], "/pv/k", "second"));
	assert_int_equal(g->kvs[0].version, 3);
	keel_range_result_free(g);
	keel_put_req_t none = { .key = "/pv/none", .key_len = 8, .ignore_value = true };
	int rc = keel_put(k, &none, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_INVALID_ARGUMENT);
	assert_string_equal(e.message, "etcdserver: key not found");
}

/* ---- txn ----------------------------------------------------------------------------- */

static void test_txn_compares_every_target(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_req_t g = { .ttl = 60 };
	keel_lease_grant_result_t lease;
	ok(keel_lease_grant(k, &g, &lease, &e), &e, "grant");
	int64_t c = put("/tx/k", "v1");
	keel_put_req_t pl = { .key = "/tx/k", .key_len = 5, .value = "v2", .value_len = 2,
			      .lease = lease.id };
	keel_put_result_t *pr;
	ok(keel_put(k, &pl, &pr, &e), &e, "put with lease");
	int64_t m = pr->header.revision;
	keel_put_result_free(pr);

	struct { keel_cmp_target_t t; keel_cmp_op_t op; int64_t v; bool want; } cases[] = {
		{ KEEL_CMP_VERSION, KEEL_CMP_EQUAL, 2, true },
		{ KEEL_CMP_VERSION, KEEL_CMP_GREATER, 2, false },
		{ KEEL_CMP_CREATE, KEEL_CMP_EQUAL, c, true },
		{ KEEL_CMP_CREATE, KEEL_CMP_LESS, c, false },
		{ KEEL_CMP_MOD, KEEL_CMP_EQUAL, m, true },
		{ KEEL_CMP_MOD, KEEL_CMP_NOT_EQUAL, m, false },
		{ KEEL_CMP_LEASE, KEEL_CMP_EQUAL, lease.id, true },
		{ KEEL_CMP_LEASE, KEEL_CMP_EQUAL, 0, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		keel_txn_t *t = keel_txn_new();
		keel_txn_cmp_int(t, cases[i].t, cases[i].op, "/tx/k", 5, NULL, 0, cases[i].v);
		keel_txn_result_t *r;
		ok(keel_txn_commit(k, t, &r, &e), &e, "txn");
		if (r->succeeded != cases[i].want)
			fail_msg("compare case %zu: succeeded %d", i, r->succeeded);
		keel_txn_result_free(r);
		keel_txn_free(t);
	}
	const char *vals[] = { "v2", "v1" };
	for (int i = 0; i < 2; i++) {
		keel_txn_t *t = keel_txn_new();
		keel_txn_cmp_value(t, KEEL_CMP_EQUAL, "/tx/k", 5, NULL, 0, vals[i], 2);
		keel_txn_result_t *r;
		ok(keel_txn_commit(k, t, &r, &e), &e, "txn value");
		assert_int_equal(r->succeeded, i == 0);
		keel_txn_result_free(r);
		keel_txn_free(t);
	}
	/* A compare over a range: every key's version must match. */
	put("/tx/r1", "a");
	put("/tx/r2", "b");
	keel_txn_t *t = keel_txn_new();
	keel_txn_cmp_int(t, KEEL_CMP_VERSION, KEEL_CMP_EQUAL, "/tx/r", 5, "/tx/s", 5, 1);
	keel_txn_result_t *r;
	ok(keel_txn_commit(k, t, &r, &e), &e, "txn range compare");
	assert_true(r->succeeded);
	keel_txn_result_free(r);
	keel_txn_free(t);
	keel_lease_id_req_t rv = { .id = lease.id };
	ok(keel_lease_revoke(k, &rv, NULL, &e), &e, "revoke");
}

static void test_txn_then_else_and_nested(void **state)
{
	(void)state;
	keel_error_t e;
	put("/tn/a", "1");
	keel_txn_t *sub = keel_txn_new();
	keel_txn_cmp_value(sub, KEEL_CMP_EQUAL, "/tn/a", 5, NULL, 0, "1", 1);
	keel_txn_put(sub, KEEL_THEN, &(keel_put_req_t){ .key = "/tn/nested", .key_len = 10,
						       .value = "yes", .value_len = 3 });
	keel_txn_t *t = keel_txn_new();
	keel_txn_cmp_int(t, KEEL_CMP_VERSION, KEEL_CMP_EQUAL, "/tn/a", 5, NULL, 0, 1);
	keel_txn_put(t, KEEL_THEN, &(keel_put_req_t){ .key = "/tn/b", .key_len = 5,
						     .value = "then", .value_len = 4 });
	keel_txn_range(t, KEEL_THEN, &(keel_range_req_t){ .key = "/tn/a", .key_len = 5 });
	keel_txn_txn(t, KEEL_THEN, sub);
	keel_txn_free(sub);          /* the builder copied it */
	keel_txn_delete(t, KEEL_THEN, &(keel_delete_req_t){ .key = "/tn/zz", .key_len = 6 });
	keel_txn_put(t, KEEL_ELSE, &(keel_put_req_t){ .key = "/tn/b", .key_len = 5,
						     .value = "else", .value_len = 4 });
	keel_txn_result_t *r;
	ok(keel_txn_commit(k, t, &r, &e), &e, "txn");
	assert_true(r->succeeded);
	assert_int_equal(r->n_responses, 4);
	assert_int_equal(r->responses[0].type, KEEL_OP_PUT);
	assert_int_equal(r->responses[1].type, KEEL_OP_RANGE);
	assert_true(kv_is(&r->responses[1].u.range->kvs[0], "/tn/a", "1"));
	assert_int_equal(r->responses[2].type, KEEL_OP_TXN);
	assert_true(r->responses[2].u.txn->succeeded);
	assert_int_equal(r->responses[2].u.txn->n_responses, 1);
	assert_int_equal(r->responses[3].type, KEEL_OP_DELETE);
	assert_int_equal(r->responses[3].u.del->deleted, 0);
	keel_txn_result_free(r);
	/* A second version of /tn/a makes the compare fail: the else branch runs. */
	put("/tn/a", "2");
	ok(keel_txn_commit(k, t, &r, &e), &e, "txn else");
	assert_false(r->succeeded);
	assert_int_equal(r->n_responses, 1);
	keel_txn_result_free(r);
	keel_txn_free(t);
	keel_range_result_t *g;
	ok(keel_get(k, "/tn/b", &g, &e), &e, "get");
	assert_true(kv_is(&g->kvs[0], "/tn/b", "else"));
	keel_range_result_free(g);
	ok(keel_get(k, "/tn/nested", &g, &e), &e, "get nested");
	assert_int_equal(g->n_kvs, 1);
	keel_range_result_free(g);
}

static void test_txn_duplicate_key_is_etcds_error(void **state)
{
	(void)state;
	keel_error_t e;
	keel_txn_t *t = keel_txn_new();
	keel_put_req_t p = { .key = "/td/k", .key_len = 5, .value = "v", .value_len = 1 };
	keel_txn_put(t, KEEL_THEN, &p);
	keel_txn_put(t, KEEL_THEN, &p);
	int rc = keel_txn_commit(k, t, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_INVALID_ARGUMENT);
	assert_int_equal(e.kind, KEEL_E_DUPLICATE_KEY);
	assert_string_equal(e.message, "etcdserver: duplicate key given in txn request");
	keel_txn_free(t);
}

/* ---- leases -------------------------------------------------------------------------- */

static void test_lease_grant_ttl_keys_list_revoke(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_result_t g;
	ok(keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = 30 }, &g, &e), &e, "grant");
	assert_true(g.id != 0);
	assert_int_equal(g.ttl, 30);
	ok(keel_put_str(k, "/ls/a", "1", g.id, &e), &e, "put a");
	ok(keel_put_str(k, "/ls/b", "2", g.id, &e), &e, "put b");
	keel_lease_ttl_result_t *t;
	ok(keel_lease_ttl(k, &(keel_lease_id_req_t){ .id = g.id, .keys = true }, &t, &e), &e,
	   "ttl");
	assert_int_equal(t->id, g.id);
	assert_int_equal(t->granted_ttl, 30);
	assert_true(t->ttl > 0 && t->ttl <= 30);
	assert_int_equal(t->n_keys, 2);
	bool seen_a = false;
	for (size_t i = 0; i < t->n_keys; i++)
		seen_a |= strcmp((char *)t->keys[i].key, "/ls/a") == 0;
	assert_true(seen_a);
	keel_lease_ttl_result_free(t);
	keel_lease_list_result_t *l;
	ok(keel_lease_list(k, NULL, &l, &e), &e, "list");
	bool found = false;
	for (size_t i = 0; i < l->n_ids; i++)
		found |= l->ids[i] == g.id;
	assert_true(found);
	keel_lease_list_result_free(l);
	ok(keel_lease_revoke(k, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e), &e, "revoke");
	keel_range_result_t *r = range_prefix("/ls/", (keel_range_req_t){ 0 });
	assert_int_equal(r->count, 0);
	keel_range_result_free(r);
	ok(keel_lease_ttl(k, &(keel_lease_id_req_t){ .id = g.id }, &t, &e), &e, "ttl gone");
	assert_int_equal(t->ttl, -1);
	keel_lease_ttl_result_free(t);
	int rc = keel_lease_revoke(k, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_NOT_FOUND);
	assert_int_equal(e.kind, KEEL_E_LEASE_NOT_FOUND);
	assert_string_equal(e.message, "etcdserver: requested lease not found");
}

static void test_lease_keepalive_once_renews(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_result_t g, ka;
	ok(keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = 20 }, &g, &e), &e, "grant");
	ok(keel_lease_keepalive_once(k, &(keel_lease_id_req_t){ .id = g.id }, &ka, &e), &e,
	   "keepalive once");
	assert_int_equal(ka.id, g.id);
	assert_int_equal(ka.ttl, 20);
	ok(keel_lease_revoke(k, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e), &e, "revoke");
	int rc = keel_lease_keepalive_once(k, &(keel_lease_id_req_t){ .id = g.id }, &ka, &e);
	assert_int_equal(rc, KEEL_CODE_NOT_FOUND);
	assert_int_equal(e.kind, KEEL_E_LEASE_NOT_FOUND);
}

typedef struct ka_log {
	pthread_mutex_t mu;
	int n;                       /* answers with ttl > 0 */
	int zeros;                   /* answers with ttl == 0 */
	int64_t last_ttl;
} ka_log_t;

static void ka_fn(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	(void)h, (void)id;
	ka_log_t *l = ud;
	pthread_mutex_lock(&l->mu);
	if (ttl > 0)
		l->n++;
	else
		l->zeros++;
	l->last_ttl = ttl;
	pthread_mutex_unlock(&l->mu);
}

static void test_lease_keepalive_stream_keeps_lease_past_ttl(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_result_t g;
	ok(keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = 2 }, &g, &e), &e, "grant");
	ok(keel_put_str(k, "/ka/k", "v", g.id, &e), &e, "put");
	ka_log_t log = { .mu = PTHREAD_MUTEX_INITIALIZER };
	keel_keepalive_t *ka;
	ok(keel_lease_keepalive(k, g.id, ka_fn, &log, &ka, &e), &e, "keepalive");
	usleep(5000 * 1000);         /* the TTL plus 3 s */
	keel_lease_ttl_result_t *t;
	ok(keel_lease_ttl(k, &(keel_lease_id_req_t){ .id = g.id }, &t, &e), &e, "ttl");
	assert_true(t->ttl > 0);
	keel_lease_ttl_result_free(t);
	keel_range_result_t *r;
	ok(keel_get(k, "/ka/k", &r, &e), &e, "get");
	assert_int_equal(r->n_kvs, 1);
	keel_range_result_free(r);
	keel_keepalive_stop(ka);
	pthread_mutex_lock(&log.mu);
	int n = log.n, zeros = log.zeros;
	pthread_mutex_unlock(&log.mu);
	/* Every TTL/3 (~667 ms) over 5 s, plus the first at once. */
	if (n < 4)
		fail_msg("only %d renewals in 5 s", n);
	assert_int_equal(zeros, 0);
	/* After stop no callback runs, and renewals end: the lease expires. */
	usleep(3500 * 1000);
	pthread_mutex_lock(&log.mu);
	assert_int_equal(log.n, n);
	pthread_mutex_unlock(&log.mu);
	ok(keel_lease_ttl(k, &(keel_lease_id_req_t){ .id = g.id }, &t, &e), &e, "ttl after");
	assert_int_equal(t->ttl, -1);
	keel_lease_ttl_result_free(t);
}

static void test_lease_keepalive_on_revoked_lease_reports_ttl_zero_once(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_result_t g;
	ok(keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = 10 }, &g, &e), &e, "grant");
	ok(keel_lease_revoke(k, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e), &e, "revoke");
	ka_log_t log = { .mu = PTHREAD_MUTEX_INITIALIZER, .last_ttl = -5 };
	keel_keepalive_t *ka;
	ok(keel_lease_keepalive(k, g.id, ka_fn, &log, &ka, &e), &e, "keepalive");
	int64_t until = now_ms() + 5000;
	for (;;) {
		pthread_mutex_lock(&log.mu);
		int zeros = log.zeros;
		pthread_mutex_unlock(&log.mu);
		if (zeros > 0 || now_ms() > until)
			break;
		usleep(20 * 1000);
	}
	usleep(1500 * 1000);         /* nothing more may come */
	pthread_mutex_lock(&log.mu);
	assert_int_equal(log.zeros, 1);
	assert_int_equal(log.n, 0);
	assert_int_equal(log.last_ttl, 0);
	pthread_mutex_unlock(&log.mu);
	keel_keepalive_stop(ka);
}

/* ---- watch --------------------------------------------------------------------------- */

#define MAX_SEEN 256

typedef struct watch_log {
	pthread_mutex_t mu;
	int responses;
	bool created, canceled;
	int64_t compact_revision;
	int n;
	keel_event_type_t type[MAX_SEEN];
	int64_t rev[MAX_SEEN];
	char key[MAX_SEEN][32];
	char value[MAX_SEEN][16];
	char prev[MAX_SEEN][16];     /* "" when no prev_kv */
} watch_log_t;

static void watch_fn(void *ud, const keel_watch_resp_t *r)
{
	watch_log_t *l = ud;
	pthread_mutex_lock(&l->mu);
	l->responses++;
	l->created |= r->created;
	if (r->canceled) {
		l->canceled = true;
		l->compact_revision = r->compact_revision;
	}
	for (size_t i = 0; i < r->n_events && l->n < MAX_SEEN; i++) {
		const keel_event_t *ev = &r->events[i];
		l->type[l->n] = ev->type;
		l->rev[l->n] = ev->kv.mod_revision;
		snprintf(l->key[l->n], 32, "%s", (const char *)ev->kv.key);
		snprintf(l->value[l->n], 16, "%s", (const char *)ev->kv.value);
		snprintf(l->prev[l->n], 16, "%s", ev->prev_kv ? (const char *)ev->prev_kv->value
							      : "");
		l->n++;
	}
	pthread_mutex_unlock(&l->mu);
}

static watch_log_t *watch_log_new(void)
{
	watch_log_t *l = calloc(1, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

static void watch_log_free(watch_log_t *l)
{
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Waits until the log holds n events (or the watch ended); fails after 5 s. */
static void wait_events(watch_log_t *l, int n)
{
	int64_t until = now_ms() + 5000;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		bool done = l->n >= n || l->canceled;
		int have = l->n;
		pthread_mutex_unlock(&l->mu);
		if (done)
			return;
		if (now_ms() > until)
			fail_msg("%d of %d events after 5 s", have, n);
		usleep(10 * 1000);
	}
}

static keel_watch_t *watch_prefix(const char *prefix, keel_watch_req_t req, watch_log_t *l)
{
	static uint8_t end[64];
	keel_error_t e;
	req.key = prefix;
	req.key_len = strlen(prefix);
	req.range_end = end;
	req.range_end_len = keel_prefix_end(prefix, strlen(prefix), end);
	keel_watch_t *w;
	ok(keel_watch(k, &req, watch_fn, l, &w, &e), &e, "watch");
	return w;
}

static void test_watch_delivers_events_in_order_with_prev_kv(void **state)
{
	(void)state;
	keel_error_t e;
	watch_log_t *l = watch_log_new();
	keel_watch_t *w = watch_prefix("/wa/", (keel_watch_req_t){ .prev_kv = true }, l);
	pthread_mutex_lock(&l->mu);
	assert_true(l->created);
	pthread_mutex_unlock(&l->mu);
	int64_t r1 = put("/wa/x", "1");
	int64_t r2 = put("/wa/x", "2");
	put("/wb/outside", "no");
	keel_delete_req_t d = { .key = "/wa/x", .key_len = 5 };
	ok(keel_delete(k, &d, NULL, &e), &e, "delete");
	wait_events(l, 3);
	keel_watch_cancel(w);
	assert_int_equal(l->n, 3);
	assert_int_equal(l->type[0], KEEL_EVENT_PUT);
	assert_int_equal(l->rev[0], r1);
	assert_string_equal(l->prev[0], "");
	assert_int_equal(l->rev[1], r2);
	assert_string_equal(l->value[1], "2");
	assert_string_equal(l->prev[1], "1");
	assert_int_equal(l->type[2], KEEL_EVENT_DELETE);
	assert_string_equal(l->key[2], "/wa/x");
	assert_string_equal(l->prev[2], "2");
	/* Cancel returned: nothing more reaches the callback. */
	int n = l->responses;
	put("/wa/x", "3");
	usleep(300 * 1000);
	assert_int_equal(l->responses, n);
	watch_log_free(l);
}

static void test_watch_filters_drop_puts_or_deletes(void **state)
{
	(void)state;
	keel_error_t e;
	watch_log_t *np = watch_log_new(), *nd = watch_log_new();
	keel_watch_t *w1 = watch_prefix("/wf/", (keel_watch_req_t){ .no_put = true }, np);
	keel_watch_t *w2 = watch_prefix("/wf/", (keel_watch_req_t){ .no_delete = true }, nd);
	put("/wf/a", "1");
	keel_delete_req_t d = { .key = "/wf/a", .key_len = 5 };
	ok(keel_delete(k, &d, NULL, &e), &e, "delete");
	put("/wf/b", "2");
	wait_events(np, 1);
	wait_events(nd, 2);
	usleep(200 * 1000);
	keel_watch_cancel(w1);
	keel_watch_cancel(w2);
	assert_int_equal(np->n, 1);
	assert_int_equal(np->type[0], KEEL_EVENT_DELETE);
	assert_int_equal(nd->n, 2);
	assert_int_equal(nd->type[0], KEEL_EVENT_PUT);
	assert_int_equal(nd->type[1], KEEL_EVENT_PUT);
	assert_string_equal(nd->key[1], "/wf/b");
	watch_log_free(np);
	watch_log_free(nd);
}

static void test_watch_from_past_revision_replays_history(void **state)
{
	(void)state;
	int64_t r1 = put("/wp/a", "1");
	put("/wp/b", "2");
	int64_t r3 = put("/wp/a", "3");
	watch_log_t *l = watch_log_new();
	keel_watch_t *w = watch_prefix("/wp/", (keel_watch_req_t){ .start_revision = r1 }, l);
	int64_t r4 = put("/wp/c", "4");
	wait_events(l, 4);
	keel_watch_cancel(w);
	assert_int_equal(l->n, 4);
	assert_int_equal(l->rev[0], r1);
	assert_int_equal(l->rev[2], r3);
	assert_int_equal(l->rev[3], r4);
	for (int i = 1; i < 4; i++)
		assert_true(l->rev[i] > l->rev[i - 1]);
	watch_log_free(l);
}

static void test_watch_request_progress_reaches_every_watch(void **state)
{
	(void)state;
	keel_error_t e;
	watch_log_t *l = watch_log_new();
	keel_watch_t *w = watch_prefix("/wq/", (keel_watch_req_t){ 0 }, l);
	int before = l->responses;
	ok(keel_watch_request_progress(k, &e), &e, "progress");
	int64_t until = now_ms() + 5000;
	while (now_ms() < until) {
		pthread_mutex_lock(&l->mu);
		int n = l->responses;
		pthread_mutex_unlock(&l->mu);
		if (n > before)
			break;
		usleep(10 * 1000);
	}
	keel_watch_cancel(w);
	assert_true(l->responses > before);
	assert_int_equal(l->n, 0);
	watch_log_free(l);
}

/* ---- callbacks that end their own watch or keep-alive -------------------------------- */

typedef struct self_cancel {
	pthread_mutex_t mu;
	keel_watch_t *w;
	keel_keepalive_t *ka;
	int calls;
} self_cancel_t;

static void self_cancel_watch_fn(void *ud, const keel_watch_resp_t *r)
{
	self_cancel_t *c = ud;
	pthread_mutex_lock(&c->mu);
	c->calls++;
	keel_watch_t *w = r->n_events > 0 ? c->w : NULL;
	if (w)
		c->w = NULL;
	pthread_mutex_unlock(&c->mu);
	if (w)
		keel_watch_cancel(w);    /* from inside its own callback: must not wait */
}

static void test_watch_cancel_from_its_own_callback(void **state)
{
	(void)state;
	keel_error_t e;
	self_cancel_t c = { .mu = PTHREAD_MUTEX_INITIALIZER };
	keel_watch_req_t req = { .key = "/sc/k", .key_len = 5 };
	keel_watch_t *w;
	/* Only the created answer comes before the put: it does not look at c.w. */
	ok(keel_watch(k, &req, self_cancel_watch_fn, &c, &w, &e), &e, "watch");
	pthread_mutex_lock(&c.mu);
	c.w = w;
	pthread_mutex_unlock(&c.mu);
	put("/sc/k", "1");
	int64_t until = now_ms() + 5000;
	for (;;) {
		pthread_mutex_lock(&c.mu);
		bool done = c.w == NULL;
		pthread_mutex_unlock(&c.mu);
		if (done || now_ms() > until)
			break;
		usleep(10 * 1000);
	}
	put("/sc/k", "2");
	usleep(300 * 1000);
	pthread_mutex_lock(&c.mu);
	assert_null(c.w);
	assert_int_equal(c.calls, 2);  /* created, then the first event; nothing after */
	pthread_mutex_unlock(&c.mu);
}

static void self_stop_ka_fn(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	(void)h, (void)id, (void)ttl;
	self_cancel_t *c = ud;
	pthread_mutex_lock(&c->mu);
	c->calls++;
	keel_keepalive_t *ka = c->ka;
	c->ka = NULL;
	pthread_mutex_unlock(&c->mu);
	if (ka)
		keel_keepalive_stop(ka);
}

static void test_keepalive_stop_from_its_own_callback(void **state)
{
	(void)state;
	keel_error_t e;
	keel_lease_grant_result_t g;
	ok(keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = 3 }, &g, &e), &e, "grant");
	self_cancel_t c = { .mu = PTHREAD_MUTEX_INITIALIZER };
	keel_keepalive_t *ka;
	pthread_mutex_lock(&c.mu);
	ok(keel_lease_keepalive(k, g.id, self_stop_ka_fn, &c, &ka, &e), &e, "keepalive");
	c.ka = ka;
	pthread_mutex_unlock(&c.mu);
	usleep(2500 * 1000);         /* several renew periods (1 s each) */
	pthread_mutex_lock(&c.mu);
	assert_null(c.ka);
	assert_int_equal(c.calls, 1);
	pthread_mutex_unlock(&c.mu);
	ok(keel_lease_revoke(k, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e), &e, "revoke");
}

static void test_txn_builder_reports_bad_add_at_commit(void **state)
{
	(void)state;
	keel_error_t e;
	keel_txn_t *t = keel_txn_new();
	keel_txn_cmp_int(t, KEEL_CMP_VALUE, KEEL_CMP_EQUAL, "k", 1, NULL, 0, 1);
	keel_txn_put(t, KEEL_THEN, &(keel_put_req_t){ .key = "/tb/k", .key_len = 5 });
	int rc = keel_txn_commit(k, t, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_LOCAL);
	assert_non_null(strstr(e.message, "not an integer field"));
	keel_txn_free(t);
	keel_range_result_t *r;
	ok(keel_get(k, "/tb/k", &r, &e), &e, "get");
	assert_int_equal(r->n_kvs, 0);   /* nothing was sent */
	keel_range_result_free(r);
}

/* ---- callbacks on the caller's loop ------------------------------------------------- */

typedef struct loop_log {
	pthread_t loop_thread;
	int events, renewals;
	bool wrong_thread;
} loop_log_t;

static void loop_watch_fn(void *ud, const keel_watch_resp_t *r)
{
	loop_log_t *l = ud;
	l->events += (int)r->n_events;
	l->wrong_thread |= !pthread_equal(pthread_self(), l->loop_thread);
}

static void loop_ka_fn(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	(void)h, (void)id;
	loop_log_t *l = ud;
	if (ttl > 0)
		l->renewals++;
	l->wrong_thread |= !pthread_equal(pthread_self(), l->loop_thread);
}

static void loop_stop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void test_callbacks_run_on_the_callers_loop(void **state)
{
	(void)state;
	keel_error_t e;
	uv_loop_t loop;
	uv_loop_init(&loop);
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = (const char *const *)endpoints;
	o.n_endpoints = n_endpoints;
	o.loop = &loop;
	keel_t *c;
	ok(keel_connect(&o, &c, &e), &e, "connect");
	loop_log_t l = { .loop_thread = pthread_self() };
	keel_watch_t *w;
	keel_watch_req_t req = { .key = "/ul/k", .key_len = 5 };
	ok(keel_watch(c, &req, loop_watch_fn, &l, &w, &e), &e, "watch");
	keel_lease_grant_result_t g;
	ok(keel_lease_grant(c, &(keel_lease_grant_req_t){ .ttl = 3 }, &g, &e), &e, "grant");
	keel_keepalive_t *ka;
	ok(keel_lease_keepalive(c, g.id, loop_ka_fn, &l, &ka, &e), &e, "keepalive");
	ok(keel_put_str(c, "/ul/k", "1", 0, &e), &e, "put");
	ok(keel_put_str(c, "/ul/k", "2", 0, &e), &e, "put");
	assert_int_equal(l.events, 0);   /* nothing runs until the loop does */
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, loop_stop, 2500, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	keel_watch_cancel(w);
	keel_keepalive_stop(ka);
	ok(keel_lease_revoke(c, &(keel_lease_id_req_t){ .id = g.id }, NULL, &e), &e, "revoke");
	keel_close(c);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(l.events, 2);
	assert_true(l.renewals >= 2);
	assert_false(l.wrong_thread);
}

/* ---- membership changes and maintenance -------------------------------------------- */

static void test_member_add_update_promote_remove_learner(void **state)
{
	(void)state;
	keel_error_t e;
	const char *urls[] = { "http://127.0.0.1:9" };
	keel_member_req_t add = { .peer_urls = urls, .n_peer_urls = 1, .is_learner = true };
	keel_member_result_t *r;
	int rc;
	/* etcd refuses changes until every peer has been connected for 5 s. */
	int64_t until = now_ms() + 15000;
	while ((rc = keel_member_add(k, &add, &r, &e)) == KEEL_CODE_UNAVAILABLE &&
	       strstr(e.message, "unhealthy cluster") && now_ms() < until)
		usleep(200 * 1000);
	ok(rc, &e, "member add");
	assert_non_null(r->member);
	assert_true(r->member->is_learner);
	assert_int_equal(r->n_members, n_endpoints + 1);
	uint64_t id = r->member->id;
	keel_member_result_free(r);
	const char *urls2[] = { "http://127.0.0.1:10" };
	keel_member_req_t upd = { .id = id, .peer_urls = urls2, .n_peer_urls = 1 };
	ok(keel_member_update(k, &upd, &r, &e), &e, "member update");
	bool found = false;
	for (size_t i = 0; i < r->n_members; i++)
		if (r->members[i].id == id)
			found = strcmp(r->members[i].peer_urls[0], urls2[0]) == 0;
	assert_true(found);
	keel_member_result_free(r);
	/* A learner that never started is not in sync: etcd refuses to promote it. */
	rc = keel_member_promote(k, &(keel_member_req_t){ .id = id }, &r, &e);
	assert_int_equal(rc, KEEL_CODE_FAILED_PRECONDITION);
	assert_string_equal(e.message, "etcdserver: can only promote a learner member which is "
				       "in sync with leader");
	ok(keel_member_remove(k, &(keel_member_req_t){ .id = id }, &r, &e), &e, "remove");
	assert_int_equal(r->n_members, n_endpoints);
	keel_member_result_free(r);
	rc = keel_member_remove(k, &(keel_member_req_t){ .id = id }, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_NOT_FOUND);
	assert_int_equal(e.kind, KEEL_E_MEMBER_NOT_FOUND);
}

typedef struct snap_sum {
	size_t bytes;
	int chunks;
	uint64_t last_remaining;
} snap_sum_t;

static int snap_fn(void *ud, const uint8_t *chunk, size_t len, uint64_t remaining)
{
	(void)chunk;
	snap_sum_t *s = ud;
	s->bytes += len;
	s->chunks++;
	s->last_remaining = remaining;
	return 0;
}

static int snap_abort_fn(void *ud, const uint8_t *chunk, size_t len, uint64_t remaining)
{
	snap_fn(ud, chunk, len, remaining);
	return 1;
}

static void test_maintenance_alarm_defrag_snapshot_move_leader(void **state)
{
	(void)state;
	keel_error_t e;
	keel_alarm_result_t *a;
	int rc = keel_alarm_list(k, NULL, &a, &e);
	ok(rc, &e, "alarm list");
	assert_int_equal(a->n_alarms, 0);
	keel_alarm_result_free(a);
	keel_alarm_t all = { 0 };
	ok(keel_alarm_disarm(k, NULL, &all, &a, &e), &e, "alarm disarm all");
	assert_int_equal(a->n_alarms, 0);
	keel_alarm_result_free(a);
	keel_header_t h;
	/* etcd 3.4 answers a defragment without a header. */
	ok(keel_defragment(k, &(keel_endpoint_req_t){ .endpoint = endpoints[1] }, &h, &e), &e,
	   "defragment");
	snap_sum_t s = { 0 };
	ok(keel_snapshot(k, NULL, snap_fn, &s, &e), &e, "snapshot");
	assert_true(s.bytes > 4096);
	assert_int_equal(s.last_remaining, 0);
	snap_sum_t s2 = { 0 };
	rc = keel_snapshot(k, NULL, snap_abort_fn, &s2, &e);
	assert_int_not_equal(rc, 0);
	assert_int_equal(s2.chunks, 1);
	/* Move the leadership to another member, found through the membership. */
	keel_status_result_t *st;
	ok(keel_status(k, NULL, &st, &e), &e, "status");
	uint64_t leader = st->leader;
	keel_status_result_free(st);
	keel_member_result_t *ml;
	ok(keel_member_list(k, NULL, &ml, &e), &e, "member list");
	uint64_t target = ml->members[0].id == leader ? ml->members[1].id : ml->members[0].id;
	keel_member_result_free(ml);
	ok(keel_move_leader(k, &(keel_endpoint_req_t){ .target_id = target, .timeout_ms = 10000 },
			    &h, &e), &e, "move leader");
	int64_t until = now_ms() + 5000;
	uint64_t now_leader = 0;
	while (now_ms() < until) {
		if (keel_status(k, NULL, &st, &e) == 0) {
			now_leader = st->leader;
			keel_status_result_free(st);
			if (now_leader == target)
				break;
		}
		usleep(50 * 1000);
	}
	assert_int_equal(now_leader, target);
}

/* ---- cluster and maintenance --------------------------------------------------------- */

static void test_member_list_names_every_member(void **state)
{
	(void)state;
	keel_error_t e;
	keel_member_result_t *r;
	ok(keel_member_list(k, NULL, &r, &e), &e, "member list");
	assert_int_equal(r->n_members, n_endpoints);
	for (size_t i = 0; i < r->n_members; i++) {
		assert_true(r->members[i].id != 0);
		assert_true(r->members[i].n_peer_urls > 0);
		assert_true(r->members[i].n_client_urls > 0);
		assert_true(strlen(r->members[i].name) > 0);
	}
	assert_null(r->member);
	keel_member_result_free(r);
}

static void test_status_of_each_endpoint_agrees_on_leader(void **state)
{
	(void)state;
	keel_error_t e;
	uint64_t leader = 0;
	for (size_t i = 0; i < n_endpoints; i++) {
		keel_status_result_t *s;
		keel_endpoint_req_t req = { .endpoint = endpoints[i] };
		ok(keel_status(k, &req, &s, &e), &e, "status");
		assert_true(s->leader != 0);
		assert_true(strlen(s->version) > 0);
		assert_true(s->raft_index > 0);
		assert_true(s->db_size > 0);
		if (leader)
			assert_int_equal(s->leader, leader);
		leader = s->leader;
		keel_status_result_free(s);
	}
}

static void test_hashkv_equal_on_every_endpoint(void **state)
{
	(void)state;
	keel_error_t e;
	int64_t rev = put("/hk/last", "x");
	uint32_t hash0 = 0;
	for (size_t i = 0; i < n_endpoints; i++) {
		keel_hashkv_result_t h;
		keel_endpoint_req_t req = { .endpoint = endpoints[i], .revision = rev };
		int64_t until = now_ms() + 5000;
		int rc;
		/* A follower may not have applied rev yet: "future revision" for a moment. */
		while ((rc = keel_hashkv(k, &req, &h, &e)) != 0 && e.kind == KEEL_E_FUTURE_REV &&
		       now_ms() < until)
			usleep(50 * 1000);
		ok(rc, &e, "hashkv");
		if (i == 0)
			hash0 = h.hash;
		else if (h.hash != hash0)
			fail_msg("endpoint %s: hash %u, first endpoint %u", endpoints[i], h.hash,
				 hash0);
	}
}

/* Runs last among the history readers: it compacts. */
static void test_compacted_revision_gives_etcds_error_and_cancels_watch(void **state)
{
	(void)state;
	keel_error_t e;
	int64_t old = put("/cp/k", "1");
	int64_t now = put("/cp/k", "2");
	keel_header_t h;
	ok(keel_compact(k, &(keel_compact_req_t){ .revision = now, .physical = true }, &h, &e),
	   &e, "compact");
	assert_true(h.revision >= now);
	keel_range_req_t req = { .key = "/cp/k", .key_len = 5, .revision = old };
	keel_range_result_t *r = NULL;
	int rc = keel_range(k, &req, &r, &e);
	assert_int_equal(rc, KEEL_CODE_OUT_OF_RANGE);
	assert_int_equal(e.kind, KEEL_E_COMPACTED);
	assert_string_equal(e.message, "etcdserver: mvcc: required revision has been compacted");
	assert_null(r);
	/* A watch from the compacted revision: created, then canceled with the compaction. */
	watch_log_t *l = watch_log_new();
	keel_watch_t *w = watch_prefix("/cp/", (keel_watch_req_t){ .start_revision = old }, l);
	int64_t until = now_ms() + 5000;
	while (now_ms() < until) {
		pthread_mutex_lock(&l->mu);
		bool c = l->canceled;
		pthread_mutex_unlock(&l->mu);
		if (c)
			break;
		usleep(10 * 1000);
	}
	keel_watch_cancel(w);
	assert_true(l->created);
	assert_true(l->canceled);
	assert_int_equal(l->compact_revision, now);
	assert_int_equal(l->n, 0);
	watch_log_free(l);
	/* A second compaction of the same revision is etcd's other error. */
	rc = keel_compact(k, &(keel_compact_req_t){ .revision = now }, NULL, &e);
	assert_int_equal(rc, KEEL_CODE_OUT_OF_RANGE);
	assert_int_equal(e.kind, KEEL_E_COMPACTED);
}

static void test_connect_rejects_bad_endpoints(void **state)
{
	(void)state;
	keel_error_t e;
	keel_options_t o;
	keel_options_init(&o);
	assert_int_equal(o.dial_timeout_ms, 5000);
	assert_int_equal(o.call_timeout_ms, 5000);
	assert_int_equal(o.keepalive_time_ms, 10000);
	assert_int_equal(o.keepalive_timeout_ms, 3000);
	keel_t *c = NULL;
	assert_int_equal(keel_connect(&o, &c, &e), KEEL_CODE_LOCAL);
	assert_null(c);
	const char *bad[] = { "https://127.0.0.1:2379", "127.0.0.1", "unix:///x", "h:99999",
			      ":80", "http://h:" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o.endpoints = &bad[i];
		o.n_endpoints = 1;
		if (keel_connect(&o, &c, &e) != KEEL_CODE_LOCAL)
			fail_msg("endpoint %s accepted", bad[i]);
		if (i == 0)
			assert_non_null(strstr(e.message, "TLS is not supported"));
	}
	const char *good[] = { "127.0.0.1:1", "http://localhost:2379", "[::1]:2379" };
	o.endpoints = good;
	o.n_endpoints = 3;
	assert_int_equal(keel_connect(&o, &c, &e), 0);
	keel_close(c);
}

static void test_unreachable_endpoint_fails_within_deadline(void **state)
{
	(void)state;
	keel_error_t e;
	keel_options_t o;
	keel_options_init(&o);
	const char *ep = "127.0.0.1:1";
	o.endpoints = &ep;
	o.n_endpoints = 1;
	o.call_timeout_ms = 1000;
	o.dial_timeout_ms = 500;
	keel_t *c;
	ok(keel_connect(&o, &c, &e), &e, "connect");
	int64_t t0 = now_ms();
	keel_range_result_t *r = NULL;
	int rc = keel_get(c, "x", &r, &e);
	assert_true(rc == KEEL_CODE_UNAVAILABLE || rc == KEEL_CODE_DEADLINE_EXCEEDED);
	assert_null(r);
	assert_true(now_ms() - t0 < 3000);
	keel_close(c);
}

static void test_call_raw_passes_protobuf_bytes(void **state)
{
	(void)state;
	keel_error_t e;
	/* An empty RangeRequest body would be an empty key: etcd rejects it. */
	uint8_t *resp = NULL;
	size_t len = 0;
	int rc = keel_call_raw(k, "/etcdserverpb.KV/Range", NULL, (const uint8_t *)"", 0, 0, true,
			       &resp, &len, &e);
	assert_int_equal(rc, KEEL_CODE_INVALID_ARGUMENT);
	assert_string_equal(e.message, "etcdserver: key is not provided");
	free(resp);
	/* A MemberList request is empty too, and answers. */
	rc = keel_call_raw(k, "/etcdserverpb.Cluster/MemberList", NULL, (const uint8_t *)"", 0, 0,
			   true, &resp, &len, &e);
	ok(rc, &e, "raw member list");
	assert_true(len > 0);
	free(resp);
}

static int setup(void **state)
{
	(void)state;
	keel_init();
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = (const char *const *)endpoints;
	o.n_endpoints = n_endpoints;
	keel_error_t e;
	if (keel_connect(&o, &k, &e) != 0) {
		fprintf(stderr, "connect: %s\n", e.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	keel_close(k);
	return 0;
}

static bool test_chosen(const char *name, const char *only)
{
	char *list = strdup(only), *save;
	bool yes = false;
	for (char *w = strtok_r(list, ",", &save); w && !yes; w = strtok_r(NULL, ",", &save))
		yes = strstr(name, w) != NULL;
	free(list);
	return yes;
}

int main(void)
{
	const char *eps = getenv("KEEL_TEST_ENDPOINTS");
	if (!eps || !*eps) {
		fprintf(stderr, "KEEL_TEST_ENDPOINTS not set: run through with_cluster.py\n");
		return 77;
	}
	char *list = strdup(eps);
	for (char *save, *p = strtok_r(list, ",", &save); p && n_endpoints < 8;
	     p = strtok_r(NULL, ",", &save))
		endpoints[n_endpoints++] = strdup(p);
	free(list);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_rejects_bad_endpoints),
		cmocka_unit_test(test_put_then_get_returns_value_and_metadata),
		cmocka_unit_test(test_range_prefix_limit_sort_and_revision),
		cmocka_unit_test(test_range_future_revision_is_an_error),
		cmocka_unit_test(test_delete_range_returns_prev_kvs),
		cmocka_unit_test(test_put_prev_kv_and_ignore_value),
		cmocka_unit_test(test_txn_compares_every_target),
		cmocka_unit_test(test_txn_then_else_and_nested),
		cmocka_unit_test(test_txn_duplicate_key_is_etcds_error),
		cmocka_unit_test(test_lease_grant_ttl_keys_list_revoke),
		cmocka_unit_test(test_lease_keepalive_once_renews),
		cmocka_unit_test(test_lease_keepalive_stream_keeps_lease_past_ttl),
		cmocka_unit_test(test_lease_keepalive_on_revoked_lease_reports_ttl_zero_once),
		cmocka_unit_test(test_watch_delivers_events_in_order_with_prev_kv),
		cmocka_unit_test(test_watch_filters_drop_puts_or_deletes),
		cmocka_unit_test(test_watch_from_past_revision_replays_history),
		cmocka_unit_test(test_watch_request_progress_reaches_every_watch),
		cmocka_unit_test(test_watch_cancel_from_its_own_callback),
		cmocka_unit_test(test_keepalive_stop_from_its_own_callback),
		cmocka_unit_test(test_txn_builder_reports_bad_add_at_commit),
		cmocka_unit_test(test_callbacks_run_on_the_callers_loop),
		cmocka_unit_test(test_member_list_names_every_member),
		cmocka_unit_test(test_status_of_each_endpoint_agrees_on_leader),
		cmocka_unit_test(test_hashkv_equal_on_every_endpoint),
		cmocka_unit_test(test_call_raw_passes_protobuf_bytes),
		cmocka_unit_test(test_member_add_update_promote_remove_learner),
		cmocka_unit_test(test_maintenance_alarm_defrag_snapshot_move_leader),
		cmocka_unit_test(test_unreachable_endpoint_fails_within_deadline),
		cmocka_unit_test(test_compacted_revision_gives_etcds_error_and_cancels_watch),
	};
	/* KEEL_TEST_ONLY=word,word runs only the tests whose names contain one of the words
	 * (for debugging), in their usual order. */
	struct CMUnitTest chosen[sizeof tests / sizeof tests[0]];
	size_t n = 0;
	const char *only = getenv("KEEL_TEST_ONLY");
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!only || test_chosen(tests[i].name, only))
			chosen[n++] = tests[i];
	int rc = _cmocka_run_group_tests("client", chosen, n, setup, teardown);
	for (size_t i = 0; i < n_endpoints; i++)
		free(endpoints[i]);
	return rc;
}
