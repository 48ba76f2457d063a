/* test_kv_txn.c — etcd v3 txns through kvstore's door: every compare target and result,
 * range compares, nested txns, reads that see the txn's own writes, duplicate-key
 * rejection, all-or-nothing failure and one revision per txn. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Requests built for one test; freed together. */
static void *pool[4096];
static size_t pool_n;

static void *pool_add(void *p)
{
	assert_non_null(p);
	assert_true(pool_n < sizeof(pool) / sizeof(pool[0]));
	pool[pool_n++] = p;
	return p;
}

static void pool_free(void)
{
	while (pool_n)
		free(pool[--pool_n]);
}

static Etcdserverpb__Compare *cmp(int target, int result, const char *key, const char *end,
				  int64_t n, const char *value)
{
	Etcdserverpb__Compare *c = pool_add(malloc(sizeof(*c)));
	etcdserverpb__compare__init(c);
	c->target = target;
	c->result = result;
	c->key = kvh_bin(key);
	if (end && strcmp(end, "\\0") == 0)
		c->range_end = kvh_zero;
	else
		c->range_end = kvh_bin(end);
	switch (target) {
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
		c->version = n;
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
		c->create_revision = n;
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
		c->mod_revision = n;
		break;
	case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
		c->lease = n;
		break;
	default:
		c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
		c->value = kvh_bin(value);
		break;
	}
	return c;
}

static Etcdserverpb__RequestOp *op_put(const char *key, const char *value, int64_t lease)
{
	Etcdserverpb__PutRequest *p = pool_add(malloc(sizeof(*p)));
	etcdserverpb__put_request__init(p);
	p->key = kvh_bin(key);
	p->value = kvh_bin(value);
	p->lease = lease;
	Etcdserverpb__RequestOp *op = pool_add(malloc(sizeof(*op)));
	etcdserverpb__request_op__init(op);
	op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	op->request_put = p;
	return op;
}

static Etcdserverpb__RequestOp *op_del(const char *key, const char *end)
{
	Etcdserverpb__DeleteRangeRequest *d = pool_add(malloc(sizeof(*d)));
	etcdserverpb__delete_range_request__init(d);
	d->key = kvh_bin(key);
	d->range_end = end && strcmp(end, "\\0") == 0 ? kvh_zero : kvh_bin(end);
	Etcdserverpb__RequestOp *op = pool_add(malloc(sizeof(*op)));
	etcdserverpb__request_op__init(op);
	op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op->request_delete_range = d;
	return op;
}

static Etcdserverpb__RequestOp *op_get(const char *key, const char *end, int64_t rev)
{
	Etcdserverpb__RangeRequest *r = pool_add(malloc(sizeof(*r)));
	etcdserverpb__range_request__init(r);
	r->key = kvh_bin(key);
	r->range_end = end && strcmp(end, "\\0") == 0 ? kvh_zero : kvh_bin(end);
	r->revision = rev;
	Etcdserverpb__RequestOp *op = pool_add(malloc(sizeof(*op)));
	etcdserverpb__request_op__init(op);
	op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
	op->request_range = r;
	return op;
}

/* A txn from NULL-terminated lists (compares, success ops, failure ops). */
static Etcdserverpb__TxnRequest *txn(Etcdserverpb__Compare **c, Etcdserverpb__RequestOp **s,
				     Etcdserverpb__RequestOp **f)
{
	Etcdserverpb__TxnRequest *t = pool_add(malloc(sizeof(*t)));
	etcdserverpb__txn_request__init(t);
	while (c && c[t->n_compare])
		t->n_compare++;
	while (s && s[t->n_success])
		t->n_success++;
	while (f && f[t->n_failure])
		t->n_failure++;
	t->compare = t->n_compare ? pool_add(malloc(t->n_compare * sizeof(*c))) : NULL;
	t->success = t->n_success ? pool_add(malloc(t->n_success * sizeof(*s))) : NULL;
	t->failure = t->n_failure ? pool_add(malloc(t->n_failure * sizeof(*f))) : NULL;
	if (t->n_compare)
		memcpy(t->compare, c, t->n_compare * sizeof(*c));
	if (t->n_success)
		memcpy(t->success, s, t->n_success * sizeof(*s));
	if (t->n_failure)
		memcpy(t->failure, f, t->n_failure * sizeof(*f));
	return t;
}

static Etcdserverpb__RequestOp *op_txn(Etcdserverpb__TxnRequest *t)
{
	Etcdserverpb__RequestOp *op = pool_add(malloc(sizeof(*op)));
	etcdserverpb__request_op__init(op);
	op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
	op->request_txn = t;
	return op;
}

/* Applies t; *out (may be NULL) gets the response. */
static int run(kvh_t *h, Etcdserverpb__TxnRequest *t, Etcdserverpb__TxnResponse **out)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.txn = t;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (out)
		*out = (Etcdserverpb__TxnResponse *)res.resp;
	else if (res.resp)
		protobuf_c_message_free_unpacked(res.resp, NULL);
	return err;
}

/* Does the txn with the one compare c succeed? */
static bool holds(kvh_t *h, Etcdserverpb__Compare *c)
{
	Etcdserverpb__TxnResponse *r;
	assert_int_equal(run(h, txn((Etcdserverpb__Compare *[]){ c, NULL }, NULL, NULL), &r),
			 KV_OK);
	bool ok = r->succeeded;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ok;
}

enum { EQ = 0, GT = 1, LT = 2, NE = 3 };
enum { VER = 0, CRE = 1, MOD = 2, VAL = 3, LEA = 4 };

static void test_compare_every_target_and_result(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	int64_t lease = kvh_grant(h, 42, 60);
	kvh_put(h, "k", "m", 0);             /* r0+1 */
	kvh_put(h, "k", "m", lease);         /* r0+2: version 2, lease 42 */
	static const struct {
		int target;
		int64_t n;
		const char *v;
	} eq[] = { { VER, 2, NULL }, { CRE, 1, NULL }, { MOD, 2, NULL }, { VAL, 0, "m" },
		   { LEA, 42, NULL } };
	for (size_t i = 0; i < 5; i++) {
		int64_t n = eq[i].n;
		if (eq[i].target == CRE || eq[i].target == MOD)
			n += r0;
		const char *lo = eq[i].v ? "l" : NULL, *hi = eq[i].v ? "n" : NULL;
		int t = eq[i].target;
		assert_true(holds(h, cmp(t, EQ, "k", NULL, n, eq[i].v)));
		assert_false(holds(h, cmp(t, NE, "k", NULL, n, eq[i].v)));
		assert_false(holds(h, cmp(t, GT, "k", NULL, n, eq[i].v)));
		assert_false(holds(h, cmp(t, LT, "k", NULL, n, eq[i].v)));
		assert_true(holds(h, cmp(t, GT, "k", NULL, n - 1, lo)));
		assert_true(holds(h, cmp(t, LT, "k", NULL, n + 1, hi)));
		assert_true(holds(h, cmp(t, NE, "k", NULL, n + 1, hi)));
		assert_false(holds(h, cmp(t, EQ, "k", NULL, n + 1, hi)));
	}
	/* A missing key compares as zero; with VALUE it never holds. */
	assert_true(holds(h, cmp(VER, EQ, "nokey", NULL, 0, NULL)));
	assert_true(holds(h, cmp(CRE, EQ, "nokey", NULL, 0, NULL)));
	assert_true(holds(h, cmp(MOD, LT, "nokey", NULL, 1, NULL)));
	assert_true(holds(h, cmp(LEA, EQ, "nokey", NULL, 0, NULL)));
	assert_false(holds(h, cmp(VAL, EQ, "nokey", NULL, 0, "")));
	assert_false(holds(h, cmp(VAL, NE, "nokey", NULL, 0, "x")));
	/* Read-only txns leave the revision alone. */
	assert_int_equal(kv_revision(h->kv), r0 + 2);
	pool_free();
	kvh_free(h);
}

static void test_range_compare_needs_every_key(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "p/a", "1", 0);
	kvh_put(h, "p/b", "1", 0);
	kvh_put(h, "p/b", "2", 0);
	kvh_put(h, "q", "9", 0);
	assert_true(holds(h, cmp(VER, GT, "p/", "p0", 0, NULL)));
	assert_false(holds(h, cmp(VER, EQ, "p/", "p0", 1, NULL)));
	assert_true(holds(h, cmp(VER, LT, "p/", "p0", 3, NULL)));
	assert_true(holds(h, cmp(VAL, LT, "p/", "p0", 0, "3")));
	assert_false(holds(h, cmp(VAL, EQ, "p/", "p0", 0, "1")));
	assert_true(holds(h, cmp(VER, GT, "p", "\\0", 0, NULL)));   /* from key */
	/* an empty range compares the zero KeyValue */
	assert_true(holds(h, cmp(VER, EQ, "r", "s", 0, NULL)));
	assert_false(holds(h, cmp(VAL, EQ, "r", "s", 0, "")));
	pool_free();
	kvh_free(h);
}

static void test_txn_takes_one_revision_with_sub_revisions(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "x", "0", 0);             /* r0+1 */
	Etcdserverpb__TxnResponse *r;
	Etcdserverpb__TxnRequest *t = txn(
		(Etcdserverpb__Compare *[]){ cmp(VER, EQ, "x", NULL, 1, NULL), NULL },
		(Etcdserverpb__RequestOp *[]){ op_put("a", "1", 0), op_put("b", "1", 0),
					       op_del("x", NULL), op_get("a", "c", 0), NULL },
		NULL);
	assert_int_equal(run(h, t, &r), KV_OK);
	assert_true(r->succeeded);
	assert_int_equal(r->header->revision, r0 + 2);
	assert_int_equal(r->n_responses, 4);
	assert_int_equal(r->responses[0]->response_put->header->revision, r0 + 2);
	assert_int_equal(r->responses[2]->response_delete_range->deleted, 1);
	/* the range sees the txn's own writes */
	Etcdserverpb__RangeResponse *rr = r->responses[3]->response_range;
	assert_int_equal(rr->n_kvs, 2);
	assert_int_equal(rr->kvs[1]->mod_revision, r0 + 2);
	assert_int_equal(rr->header->revision, r0 + 2);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(kv_revision(h->kv), r0 + 2);
	/* a later write takes the next revision: the txn used exactly one */
	assert_int_equal(kvh_put(h, "y", "1", 0), r0 + 3);
	/* watch order inside a revision: a then b then x, by sub revision */
	Etcdserverpb__RangeResponse *g = kvh_get(h, "a", "c", r0 + 2);
	assert_int_equal(g->n_kvs, 2);
	kvh_range_free(g);
	pool_free();
	kvh_free(h);
}

static void test_failure_branch_runs_when_a_compare_fails(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "x", "0", 0);
	Etcdserverpb__TxnResponse *r;
	Etcdserverpb__TxnRequest *t = txn(
		(Etcdserverpb__Compare *[]){ cmp(VER, EQ, "x", NULL, 1, NULL),
					     cmp(VAL, EQ, "x", NULL, 0, "nope"), NULL },
		(Etcdserverpb__RequestOp *[]){ op_put("s", "1", 0), NULL },
		(Etcdserverpb__RequestOp *[]){ op_put("f", "1", 0), op_get("s", NULL, 0), NULL });
	assert_int_equal(run(h, t, &r), KV_OK);
	assert_false(r->succeeded);
	assert_int_equal(r->n_responses, 2);
	assert_int_equal(r->responses[0]->response_case,
			 ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
	assert_int_equal(r->responses[1]->response_range->n_kvs, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	Etcdserverpb__RangeResponse *g = kvh_get(h, "f", NULL, 0);
	assert_int_equal(g->n_kvs, 1);
	kvh_range_free(g);
	pool_free();
	kvh_free(h);
}

static void test_nested_txn_decides_on_state_before_the_txn(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "old", 0);                       /* r0+1 */
	/* outer puts a=new; the inner compare still sees a=old, as in etcd */
	Etcdserverpb__TxnRequest *inner = txn(
		(Etcdserverpb__Compare *[]){ cmp(VAL, EQ, "a", NULL, 0, "old"), NULL },
		(Etcdserverpb__RequestOp *[]){ op_put("then", "1", 0), op_get("a", NULL, 0), NULL },
		(Etcdserverpb__RequestOp *[]){ op_put("else", "1", 0), NULL });
	Etcdserverpb__TxnRequest *t = txn(NULL,
		(Etcdserverpb__RequestOp *[]){ op_put("a", "new", 0), op_txn(inner), NULL }, NULL);
	Etcdserverpb__TxnResponse *r;
	assert_int_equal(run(h, t, &r), KV_OK);
	assert_true(r->succeeded);
	Etcdserverpb__TxnResponse *ir = r->responses[1]->response_txn;
	assert_true(ir->succeeded);
	assert_int_equal(ir->header->revision, 0);         /* etcd leaves nested headers at 0 */
	assert_int_equal(ir->n_responses, 2);
	Etcdserverpb__RangeResponse *rr = ir->responses[1]->response_range;
	assert_int_equal(rr->n_kvs, 1);
	assert_int_equal(rr->kvs[0]->value.len, 3);
	assert_memory_equal(rr->kvs[0]->value.data, "new", 3);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(kv_revision(h->kv), r0 + 2);
	Etcdserverpb__RangeResponse *g = kvh_get(h, "then", NULL, 0);
	assert_int_equal(g->n_kvs, 1);
	assert_int_equal(g->kvs[0]->mod_revision, r0 + 2);
	kvh_range_free(g);
	pool_free();
	kvh_free(h);
}

static void test_duplicate_keys_are_rejected(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	int64_t rev = kv_revision(h->kv);
	Etcdserverpb__TxnRequest *bad[] = {
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("a", "1", 0), op_put("a", "2", 0), NULL },
		    NULL),
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_del("a", "c"), op_put("b", "2", 0), NULL },
		    NULL),
		txn(NULL, NULL,
		    (Etcdserverpb__RequestOp *[]){ op_put("k", "1", 0), op_del("k", NULL), NULL }),
		/* nested: a child put against a delete of this level */
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_del("a", "z"),
			  op_txn(txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("m", "1", 0), NULL },
				     NULL)), NULL }, NULL),
		/* nested: this level's put against a child's delete */
		txn(NULL, (Etcdserverpb__RequestOp *[]){
			  op_txn(txn(NULL, NULL, (Etcdserverpb__RequestOp *[]){ op_del("m", NULL), NULL })),
			  op_put("m", "1", 0), NULL }, NULL),
		/* nested: two children putting one key */
		txn(NULL, (Etcdserverpb__RequestOp *[]){
			  op_txn(txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("m", "1", 0), NULL }, NULL)),
			  op_txn(txn(NULL, NULL, (Etcdserverpb__RequestOp *[]){ op_put("m", "1", 0), NULL })),
			  NULL }, NULL),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		req.txn = bad[i];
		int err = kv_check_request(h->kv, &req);
		if (err != KV_ERR_DUPLICATE_KEY)
			fail_msg("case %zu: check says %d", i, err);
		assert_int_equal(run(h, bad[i], NULL), KV_ERR_DUPLICATE_KEY);
		assert_string_equal(kv_strerror(err), "etcdserver: duplicate key given in txn request");
	}
	Etcdserverpb__TxnRequest *good[] = {
		/* then and else of one nested txn may write the same key */
		txn(NULL, (Etcdserverpb__RequestOp *[]){
			  op_txn(txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("m", "1", 0), NULL },
				     (Etcdserverpb__RequestOp *[]){ op_put("m", "2", 0), NULL })),
			  NULL }, NULL),
		/* success and failure are separate */
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("n", "1", 0), NULL },
		    (Etcdserverpb__RequestOp *[]){ op_put("n", "2", 0), NULL }),
		/* two deletes of one key are fine */
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_del("z", NULL), op_del("y", "zz"), NULL },
		    NULL),
		/* etcd 3.4 lets a from-key delete pass next to a put in its range */
		txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("q", "1", 0), op_del("p", "\\0"), NULL },
		    NULL),
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		req.txn = good[i];
		assert_int_equal(kv_check_request(h->kv, &req), KV_OK);
		assert_int_equal(run(h, good[i], NULL), KV_OK);
	}
	/* the last one put q and deleted it again in one revision */
	Etcdserverpb__RangeResponse *g = kvh_get(h, "q", NULL, 0);
	assert_int_equal(g->n_kvs, 0);
	kvh_range_free(g);
	g = kvh_get(h, "q", NULL, kv_revision(h->kv) - 1);
	assert_int_equal(g->n_kvs, 0);
	kvh_range_free(g);
	assert_int_equal(kv_revision(h->kv), rev + 3);
	pool_free();
	kvh_free(h);
}

static void test_failed_op_aborts_the_whole_txn(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	int64_t rev = kv_revision(h->kv);
	uint32_t hash = kvh_hash(h, 0);
	Etcdserverpb__TxnRequest *t = txn(NULL,
		(Etcdserverpb__RequestOp *[]){ op_put("b", "1", 0), op_del("a", NULL),
					       op_put("c", "1", 999), NULL }, NULL);
	assert_int_equal(run(h, t, NULL), KV_ERR_LEASE_NOT_FOUND);
	assert_int_equal(kv_revision(h->kv), rev);
	assert_int_equal(kvh_hash(h, 0), hash);
	/* ignore_value on a missing key, deep in a nested txn */
	Etcdserverpb__RequestOp *iv = op_put("nokey", NULL, 0);
	iv->request_put->ignore_value = true;
	t = txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("b", "1", 0),
		    op_txn(txn(NULL, (Etcdserverpb__RequestOp *[]){ iv, NULL }, NULL)), NULL }, NULL);
	assert_int_equal(run(h, t, NULL), KV_ERR_KEY_NOT_FOUND);
	/* a range at a future revision */
	t = txn(NULL, (Etcdserverpb__RequestOp *[]){ op_put("b", "1", 0), op_get("a", NULL, rev + 1),
						     NULL }, NULL);
	assert_int_equal(run(h, t, NULL), KV_ERR_FUTURE_REV);
	/* too many ops */
	Etcdserverpb__RequestOp *many[KV_DEFAULT_MAX_TXN_OPS + 2];
	for (int i = 0; i <= KV_DEFAULT_MAX_TXN_OPS; i++)
		many[i] = op_get("a", NULL, 0);
	many[KV_DEFAULT_MAX_TXN_OPS + 1] = NULL;
	assert_int_equal(run(h, txn(NULL, many, NULL), NULL), KV_ERR_TOO_MANY_OPS);
	many[KV_DEFAULT_MAX_TXN_OPS] = NULL;
	assert_int_equal(run(h, txn(NULL, many, NULL), NULL), KV_OK);
	/* an empty compare key */
	assert_int_equal(run(h, txn((Etcdserverpb__Compare *[]){ cmp(VER, EQ, "", NULL, 0, NULL),
								  NULL }, NULL, NULL), NULL),
			 KV_ERR_EMPTY_KEY);
	assert_int_equal(kv_revision(h->kv), rev);
	assert_int_equal(kvh_hash(h, 0), hash);
	Etcdserverpb__RangeResponse *g = kvh_get(h, "a", "z", 0);
	assert_int_equal(g->n_kvs, 1);
	kvh_range_free(g);
	pool_free();
	kvh_free(h);
}

static void test_txn_delete_then_put_starts_a_new_life(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "a", "2", 0);
	/* from-key delete + put of a key inside it pass the check (etcd 3.4) */
	Etcdserverpb__TxnRequest *t = txn(NULL,
		(Etcdserverpb__RequestOp *[]){ op_del("a", "\\0"), op_put("a", "3", 0),
					       op_get("a", NULL, 0), NULL }, NULL);
	Etcdserverpb__TxnResponse *r;
	assert_int_equal(run(h, t, &r), KV_OK);
	Etcdserverpb__RangeResponse *rr = r->responses[2]->response_range;
	assert_int_equal(rr->n_kvs, 1);
	assert_int_equal(rr->kvs[0]->version, 1);
	assert_int_equal(rr->kvs[0]->create_revision, r0 + 3);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	pool_free();
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compare_every_target_and_result),
		cmocka_unit_test(test_range_compare_needs_every_key),
		cmocka_unit_test(test_txn_takes_one_revision_with_sub_revisions),
		cmocka_unit_test(test_failure_branch_runs_when_a_compare_fails),
		cmocka_unit_test(test_nested_txn_decides_on_state_before_the_txn),
		cmocka_unit_test(test_duplicate_keys_are_rejected),
		cmocka_unit_test(test_failed_op_aborts_the_whole_txn),
		cmocka_unit_test(test_txn_delete_then_put_starts_a_new_life),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
