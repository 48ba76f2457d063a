/* test_kv_mvcc.c — etcd v3's key space through kvstore's door: revisions, versions,
 * tombstones, history reads, range conventions, limit/count/more, sorting, filters and
 * etcd's error texts. Touches only a temporary store. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Etcdserverpb__RangeRequest range_req_t;
typedef Etcdserverpb__RangeResponse range_resp_t;

static int range(kvh_t *h, const range_req_t *req, range_resp_t **out)
{
	*out = NULL;
	return kv_range(h->kv, req, out);
}

static void assert_kv(const Mvccpb__KeyValue *kv, const char *key, const char *val,
		      int64_t create, int64_t mod, int64_t version)
{
	assert_int_equal(kv->key.len, strlen(key));
	assert_memory_equal(kv->key.data, key, kv->key.len);
	if (val) {
		assert_int_equal(kv->value.len, strlen(val));
		if (kv->value.len)
			assert_memory_equal(kv->value.data, val, kv->value.len);
	} else {
		assert_int_equal(kv->value.len, 0);
	}
	assert_int_equal(kv->create_revision, create);
	assert_int_equal(kv->mod_revision, mod);
	assert_int_equal(kv->version, version);
}

/* Keys of a response, joined with commas, for compact order assertions. */
static void keys_of(const range_resp_t *r, char *buf, size_t n)
{
	buf[0] = 0;
	for (size_t i = 0; i < r->n_kvs; i++) {
		size_t l = strlen(buf);
		snprintf(buf + l, n - l, "%s%.*s", i ? "," : "", (int)r->kvs[i]->key.len,
			 (const char *)r->kvs[i]->key.data);
	}
}

static int put_req(kvh_t *h, const Etcdserverpb__PutRequest *p, Etcdserverpb__PutResponse **resp)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.put = (Etcdserverpb__PutRequest *)p;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (resp)
		*resp = (Etcdserverpb__PutResponse *)res.resp;
	else if (res.resp)
		protobuf_c_message_free_unpacked(res.resp, NULL);
	return err;
}

static void test_put_sets_create_mod_and_version(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	assert_int_equal(kvh_put(h, "a", "1", 0), r0 + 1);
	assert_int_equal(kvh_put(h, "b", "x", 0), r0 + 2);
	assert_int_equal(kvh_put(h, "a", "2", 0), r0 + 3);
	assert_int_equal(kvh_put(h, "a", "3", 0), r0 + 4);
	range_resp_t *r = kvh_get(h, "a", NULL, 0);
	assert_int_equal(r->n_kvs, 1);
	assert_int_equal(r->count, 1);
	assert_false(r->more);
	assert_int_equal(r->header->revision, r0 + 4);
	assert_kv(r->kvs[0], "a", "3", r0 + 1, r0 + 4, 3);
	kvh_range_free(r);
	assert_int_equal(kv_revision(h->kv), r0 + 4);
	kvh_free(h);
}

static void test_put_on_deleted_key_restarts_version(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "k", "1", 0);
	kvh_put(h, "k", "2", 0);
	assert_int_equal(kvh_del(h, "k", NULL), 1);
	assert_int_equal(kv_revision(h->kv), r0 + 3);
	range_resp_t *r = kvh_get(h, "k", NULL, 0);
	assert_int_equal(r->n_kvs, 0);
	assert_int_equal(r->count, 0);
	kvh_range_free(r);
	kvh_put(h, "k", "3", 0);
	r = kvh_get(h, "k", NULL, 0);
	assert_kv(r->kvs[0], "k", "3", r0 + 4, r0 + 4, 1);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_delete_of_nothing_keeps_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	int64_t rev = kv_revision(h->kv);
	assert_int_equal(kvh_del(h, "zz", NULL), 0);
	assert_int_equal(kvh_del(h, "b", "c"), 0);
	assert_int_equal(kv_revision(h->kv), rev);
	kvh_del(h, "a", NULL);
	assert_int_equal(kvh_del(h, "a", NULL), 0);
	assert_int_equal(kv_revision(h->kv), rev + 1);
	kvh_free(h);
}

static void test_history_reads_at_each_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "1", 0);         /* r0+1 */
	kvh_put(h, "b", "1", 0);         /* r0+2 */
	kvh_put(h, "a", "2", 0);         /* r0+3 */
	kvh_del(h, "b", NULL);           /* r0+4 */
	kvh_put(h, "b", "2", 0);         /* r0+5 */
	kvh_del(h, "a", NULL);           /* r0+6 */
	static const char *want[] = { "", "a=1", "a=1,b=1", "a=2,b=1", "a=2", "a=2,b=2", "b=2" };
	for (int i = 0; i <= 6; i++) {
		if (r0 + i <= 0)
			continue;
		range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
		req.key = kvh_bin("a");
		req.range_end = kvh_zero;
		req.revision = r0 + i;
		range_resp_t *r;
		assert_int_equal(range(h, &req, &r), KV_OK);
		char got[64] = "";
		for (size_t j = 0; j < r->n_kvs; j++) {
			size_t l = strlen(got);
			snprintf(got + l, sizeof(got) - l, "%s%.*s=%.*s", j ? "," : "",
				 (int)r->kvs[j]->key.len, (char *)r->kvs[j]->key.data,
				 (int)r->kvs[j]->value.len, (char *)r->kvs[j]->value.data);
		}
		assert_string_equal(got, want[i]);
		assert_int_equal(r->count, (int64_t)r->n_kvs);
		/* The header is the store's revision, not the one read at. */
		assert_int_equal(r->header->revision, r0 + 6);
		kvh_range_free(r);
	}
	/* a's second life metadata as of r0+3. */
	range_resp_t *r = kvh_get(h, "a", NULL, r0 + 3);
	assert_kv(r->kvs[0], "a", "2", r0 + 1, r0 + 3, 2);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_prefix_and_from_key_ranges(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	const char *keys[] = { "a", "ab", "abc", "abd", "b", "ba", "c" };
	for (size_t i = 0; i < 7; i++)
		kvh_put(h, keys[i], "v", 0);
	char got[64];
	range_resp_t *r = kvh_get(h, "ab", "ac", 0);      /* prefix "ab" */
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "ab,abc,abd");
	kvh_range_free(r);
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("b");
	req.range_end = kvh_zero;                          /* from key */
	assert_int_equal(range(h, &req, &r), KV_OK);
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "b,ba,c");
	kvh_range_free(r);
	req.key = kvh_zero;                                /* everything */
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->count, 7);
	kvh_range_free(r);
	r = kvh_get(h, "abc", "b", 0);
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "abc,abd");
	kvh_range_free(r);
	r = kvh_get(h, "c", "a", 0);                       /* end before start: nothing */
	assert_int_equal(r->n_kvs, 0);
	kvh_range_free(r);
	assert_int_equal(kvh_del(h, "ab", "ac"), 3);
	r = kvh_get(h, "a", "c", 0);
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "a,b,ba");
	kvh_range_free(r);
	kvh_free(h);
}

static void test_limit_sets_more_and_count_is_total(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	for (char c = 'a'; c <= 'e'; c++) {
		char k[2] = { c, 0 };
		kvh_put(h, k, "v", 0);
	}
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("a");
	req.range_end = kvh_zero;
	range_resp_t *r;
	for (int limit = 1; limit <= 6; limit++) {
		req.limit = limit;
		assert_int_equal(range(h, &req, &r), KV_OK);
		assert_int_equal(r->n_kvs, limit < 5 ? limit : 5);
		assert_int_equal(r->count, 5);
		assert_int_equal(r->more, limit < 5);
		kvh_range_free(r);
	}
	kvh_free(h);
}

static void test_sort_by_every_target_and_order(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	/* keys a..d; versions a1 b3 c1 d2; values a=z b=y c=x d=w; create a<b<c<d */
	kvh_put(h, "a", "z", 0);
	kvh_put(h, "b", "q", 0);
	kvh_put(h, "c", "x", 0);
	kvh_put(h, "d", "q", 0);
	kvh_put(h, "b", "q", 0);
	kvh_put(h, "d", "w", 0);
	kvh_put(h, "b", "y", 0);
	static const struct {
		int target, order;
		const char *want;
	} cases[] = {
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY, 0, "a,b,c,d" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY, 1, "a,b,c,d" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY, 2, "d,c,b,a" },
		/* ties keep key order in both directions */
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION, 0, "a,c,d,b" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION, 1, "a,c,d,b" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION, 2, "b,d,a,c" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE, 1, "a,b,c,d" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE, 2, "d,c,b,a" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD, 1, "a,c,d,b" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD, 2, "b,d,c,a" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE, 1, "d,c,b,a" },
		{ ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE, 2, "a,b,c,d" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
		req.key = kvh_bin("a");
		req.range_end = kvh_zero;
		req.sort_target = cases[i].target;
		req.sort_order = cases[i].order;
		range_resp_t *r;
		assert_int_equal(range(h, &req, &r), KV_OK);
		char got[64];
		keys_of(r, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got %s want %s", i, got, cases[i].want);
		kvh_range_free(r);
	}
	/* With an order the limit applies after sorting everything... */
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("a");
	req.range_end = kvh_zero;
	req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION;
	req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
	req.limit = 2;
	range_resp_t *r;
	char got[64];
	assert_int_equal(range(h, &req, &r), KV_OK);
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "b,d");
	assert_true(r->more);
	assert_int_equal(r->count, 4);
	kvh_range_free(r);
	/* ...without one (target only) etcd sorts just the first limit+1 keys it read. */
	req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE;
	req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
	assert_int_equal(range(h, &req, &r), KV_OK);
	keys_of(r, got, sizeof(got));
	assert_string_equal(got, "c,b");
	assert_true(r->more);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_keys_only_and_count_only(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "b", "22", 0);
	kvh_put(h, "c", "333", 0);
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("a");
	req.range_end = kvh_bin("c");
	req.keys_only = true;
	range_resp_t *r;
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 2);
	assert_kv(r->kvs[1], "b", NULL, kv_revision(h->kv) - 1, kv_revision(h->kv) - 1, 1);
	kvh_range_free(r);
	/* keys_only still sorts by value */
	req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
	req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_kv(r->kvs[0], "b", NULL, kv_revision(h->kv) - 1, kv_revision(h->kv) - 1, 1);
	kvh_range_free(r);
	req.keys_only = false;
	req.count_only = true;
	req.limit = 1;
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 0);
	assert_int_equal(r->count, 2);
	assert_false(r->more);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_min_max_filters_prune_but_count_does_not(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "1", 0);   /* c=m=r0+1 */
	kvh_put(h, "b", "1", 0);   /* c=r0+2 */
	kvh_put(h, "c", "1", 0);   /* c=m=r0+3 */
	kvh_put(h, "b", "2", 0);   /* m=r0+4 */
	static const struct {
		int64_t min_mod, max_mod, min_create, max_create;
		const char *want;
	} cases[] = {
		{ 0, 0, 0, 0, "a,b,c" },
		{ 2, 0, 0, 0, "b,c" },
		{ 0, 3, 0, 0, "a,c" },
		{ 0, 0, 2, 0, "b,c" },
		{ 0, 0, 0, 2, "a,b" },
		{ 4, 4, 0, 0, "b" },
		{ 0, 0, 2, 2, "b" },
		{ 4, 0, 3, 0, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
		req.key = kvh_bin("a");
		req.range_end = kvh_zero;
		req.min_mod_revision = cases[i].min_mod ? r0 + cases[i].min_mod : 0;
		req.max_mod_revision = cases[i].max_mod ? r0 + cases[i].max_mod : 0;
		req.min_create_revision = cases[i].min_create ? r0 + cases[i].min_create : 0;
		req.max_create_revision = cases[i].max_create ? r0 + cases[i].max_create : 0;
		range_resp_t *r;
		assert_int_equal(range(h, &req, &r), KV_OK);
		char got[64];
		keys_of(r, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got %s want %s", i, got, cases[i].want);
		assert_int_equal(r->count, 3);
		kvh_range_free(r);
	}
	/* a filter with a limit: more counts what survived the filter */
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("a");
	req.range_end = kvh_zero;
	req.min_create_revision = r0 + 2;
	req.limit = 1;
	range_resp_t *r;
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 1);
	assert_true(r->more);
	req.limit = 2;
	kvh_range_free(r);
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 2);
	assert_false(r->more);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_put_prev_kv_and_ignore_flags(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	int64_t lease = kvh_grant(h, 7, 100);
	kvh_put(h, "k", "v1", lease);             /* r0+1 */
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin("k");
	p.ignore_value = true;
	p.prev_kv = true;
	Etcdserverpb__PutResponse *resp;
	assert_int_equal(put_req(h, &p, &resp), KV_OK);   /* r0+2: value kept, lease dropped */
	assert_non_null(resp->prev_kv);
	assert_kv(resp->prev_kv, "k", "v1", r0 + 1, r0 + 1, 1);
	assert_int_equal(resp->prev_kv->lease, lease);
	assert_int_equal(resp->header->revision, r0 + 2);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	range_resp_t *r = kvh_get(h, "k", NULL, 0);
	assert_kv(r->kvs[0], "k", "v1", r0 + 1, r0 + 2, 2);
	assert_int_equal(r->kvs[0]->lease, 0);
	kvh_range_free(r);
	kvh_put(h, "k", "v2", lease);                     /* r0+3 */
	p.ignore_value = false;
	p.ignore_lease = true;
	p.value = kvh_bin("v3");
	assert_int_equal(put_req(h, &p, NULL), KV_OK);    /* r0+4: lease kept */
	r = kvh_get(h, "k", NULL, 0);
	assert_kv(r->kvs[0], "k", "v3", r0 + 1, r0 + 4, 4);
	assert_int_equal(r->kvs[0]->lease, lease);
	kvh_range_free(r);
	/* a put without prev_kv answers none */
	p.prev_kv = false;
	assert_int_equal(put_req(h, &p, &resp), KV_OK);
	assert_null(resp->prev_kv);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	/* revoking the lease deletes the key that still carries it */
	assert_int_equal(kvh_revoke(h, lease), KV_OK);
	r = kvh_get(h, "k", NULL, 0);
	assert_int_equal(r->n_kvs, 0);
	kvh_range_free(r);
	kvh_free(h);
}

static void test_errors_carry_etcd_texts(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	int64_t rev = kv_revision(h->kv);
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	int err = put_req(h, &p, NULL);
	assert_int_equal(err, KV_ERR_EMPTY_KEY);
	assert_string_equal(kv_strerror(err), "etcdserver: key is not provided");
	char big[KV_MAX_KEY_SIZE + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	p.key = kvh_bin(big);
	assert_int_equal(put_req(h, &p, NULL), KV_ERR_KEY_TOO_LARGE);
	big[KV_MAX_KEY_SIZE] = 0;                 /* exactly the limit is fine */
	p.key = kvh_bin(big);
	assert_int_equal(put_req(h, &p, NULL), KV_OK);
	rev++;
	p.key = kvh_bin("missing");
	p.ignore_value = true;
	err = put_req(h, &p, NULL);
	assert_int_equal(err, KV_ERR_KEY_NOT_FOUND);
	assert_string_equal(kv_strerror(err), "etcdserver: key not found");
	p.value = kvh_bin("v");
	err = put_req(h, &p, NULL);
	assert_int_equal(err, KV_ERR_VALUE_PROVIDED);
	assert_string_equal(kv_strerror(err), "etcdserver: value is provided");
	p.ignore_value = false;
	p.ignore_lease = true;
	p.lease = 5;
	err = put_req(h, &p, NULL);
	assert_int_equal(err, KV_ERR_LEASE_PROVIDED);
	assert_string_equal(kv_strerror(err), "etcdserver: lease is provided");
	p.ignore_lease = false;
	err = put_req(h, &p, NULL);
	assert_int_equal(err, KV_ERR_LEASE_NOT_FOUND);
	assert_string_equal(kv_strerror(err), "etcdserver: requested lease not found");
	assert_int_equal(kv_revision(h->kv), rev);

	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	range_resp_t *r;
	assert_int_equal(range(h, &req, &r), KV_ERR_EMPTY_KEY);
	assert_null(r);
	req.key = kvh_bin("a");
	req.revision = rev + 1;
	err = range(h, &req, &r);
	assert_int_equal(err, KV_ERR_FUTURE_REV);
	assert_string_equal(kv_strerror(err), "etcdserver: mvcc: required revision is a future revision");
	req.revision = -5;                        /* negative: current */
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 1);
	kvh_range_free(r);
	kvh_put(h, "a", "2", 0);
	assert_int_equal(kvh_compact(h, rev), KV_OK);
	req.revision = rev - 1;
	err = range(h, &req, &r);
	assert_int_equal(err, KV_ERR_COMPACTED);
	assert_string_equal(kv_strerror(err), "etcdserver: mvcc: required revision has been compacted");
	req.revision = rev;                       /* the compacted revision itself is readable */
	assert_int_equal(range(h, &req, &r), KV_OK);
	assert_int_equal(r->n_kvs, 1);
	kvh_range_free(r);

	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	ir.delete_range = &d;
	assert_int_equal(kvh_apply(h, &ir, NULL), KV_ERR_EMPTY_KEY);
	kvh_free(h);
}

static void test_delete_range_returns_prev_kvs(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "b", "2", 0);
	kvh_put(h, "c", "3", 0);
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	d.key = kvh_bin("a");
	d.range_end = kvh_bin("c");
	d.prev_kv = true;
	ir.delete_range = &d;
	kv_result_t res;
	assert_int_equal(kvh_apply(h, &ir, &res), KV_OK);
	Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)res.resp;
	assert_int_equal(dr->deleted, 2);
	assert_int_equal(dr->n_prev_kvs, 2);
	assert_kv(dr->prev_kvs[0], "a", "1", r0 + 1, r0 + 1, 1);
	assert_kv(dr->prev_kvs[1], "b", "2", r0 + 2, r0 + 2, 1);
	assert_int_equal(dr->header->revision, r0 + 4);
	protobuf_c_message_free_unpacked(res.resp, NULL);
	/* both deletions share one revision */
	assert_int_equal(kv_revision(h->kv), r0 + 4);
	range_resp_t *r = kvh_get(h, "a", "c", r0 + 3);
	assert_int_equal(r->n_kvs, 2);
	kvh_range_free(r);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_sets_create_mod_and_version),
		cmocka_unit_test(test_put_on_deleted_key_restarts_version),
		cmocka_unit_test(test_delete_of_nothing_keeps_revision),
		cmocka_unit_test(test_history_reads_at_each_revision),
		cmocka_unit_test(test_prefix_and_from_key_ranges),
		cmocka_unit_test(test_limit_sets_more_and_count_is_total),
		cmocka_unit_test(test_sort_by_every_target_and_order),
		cmocka_unit_test(test_keys_only_and_count_only),
		cmocka_unit_test(test_min_max_filters_prune_but_count_does_not),
		cmocka_unit_test(test_put_prev_kv_and_ignore_flags),
		cmocka_unit_test(test_errors_carry_etcd_texts),
		cmocka_unit_test(test_delete_range_returns_prev_kvs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
