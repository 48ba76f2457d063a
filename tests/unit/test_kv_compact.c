/* test_kv_compact.c — compaction: logical at apply (reads below fail with etcd's text),
 * physical in resumable steps that keep the newest revision at or below the compaction
 * and drop tombstones, and a HashKV that does not move while physical work progresses. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_at(kvh_t *h, const char *key, const char *end, int64_t rev,
		  Etcdserverpb__RangeResponse **out)
{
	Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin(key);
	if (end && strcmp(end, "\\0") == 0)
		req.range_end = kvh_zero;
	else
		req.range_end = kvh_bin(end);
	req.revision = rev;
	*out = NULL;
	return kv_range(h->kv, &req, out);
}

/* Logical compaction only: the request is applied, no physical step runs. */
static int compact_logical(kvh_t *h, int64_t rev)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	req.compaction = &c;
	return kvh_apply(h, &req, NULL);
}

/* A packed summary of a whole-keyspace read at rev, to compare answers. */
static char *snapshot_at(kvh_t *h, int64_t rev)
{
	Etcdserverpb__RangeResponse *r;
	Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_zero;
	req.range_end = kvh_zero;
	req.revision = rev;
	assert_int_equal(kv_range(h->kv, &req, &r), KV_OK);
	size_t cap = 64 + r->n_kvs * 96, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	len += (size_t)snprintf(s + len, cap - len, "count=%lld;", (long long)r->count);
	for (size_t i = 0; i < r->n_kvs; i++) {
		Mvccpb__KeyValue *kv = r->kvs[i];
		len += (size_t)snprintf(s + len, cap - len, "%.*s=%.*s/%lld/%lld/%lld;",
					(int)kv->key.len, (char *)kv->key.data, (int)kv->value.len,
					(char *)kv->value.data, (long long)kv->create_revision,
					(long long)kv->mod_revision, (long long)kv->version);
	}
	kvh_range_free(r);
	return s;
}

/* A history with overwrites, deletes, re-creations and multi-key revisions. */
static void write_history(kvh_t *h, int keys, int rounds)
{
	char k[16], v[16];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < keys; i++) {
			snprintf(k, sizeof(k), "k%03d", i);
			snprintf(v, sizeof(v), "v%d.%d", r, i);
			if ((i + r) % 5 == 3)
				kvh_del(h, k, NULL);
			else
				kvh_put(h, k, v, 0);
		}
		if (r % 3 == 2)
			kvh_del(h, "k010", "k020");
	}
}

static void test_compaction_keeps_newest_at_or_below(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t r0 = kv_revision(h->kv);
	kvh_put(h, "a", "1", 0);    /* r0+1 */
	kvh_put(h, "a", "2", 0);    /* r0+2 */
	kvh_put(h, "a", "3", 0);    /* r0+3 */
	kvh_put(h, "b", "1", 0);    /* r0+4 */
	kvh_del(h, "b", NULL);      /* r0+5 */
	kvh_put(h, "c", "1", 0);    /* r0+6 */
	char *before3 = snapshot_at(h, r0 + 3), *before6 = snapshot_at(h, r0 + 6);
	assert_int_equal(kvh_compact(h, r0 + 3), KV_OK);
	assert_int_equal(kv_compact_revision(h->kv), r0 + 3);
	assert_false(kv_compact_pending(h->kv));
	char *after3 = snapshot_at(h, r0 + 3), *after6 = snapshot_at(h, r0 + 6);
	assert_string_equal(before3, after3);
	assert_string_equal(before6, after6);
	Etcdserverpb__RangeResponse *r;
	int err = get_at(h, "a", NULL, r0 + 2, &r);
	assert_int_equal(err, KV_ERR_COMPACTED);
	assert_null(r);
	assert_string_equal(kv_strerror(err),
			    "etcdserver: mvcc: required revision has been compacted");
	assert_int_equal(get_at(h, "b", NULL, r0 + 4, &r), KV_OK);
	assert_int_equal(r->n_kvs, 1);
	kvh_range_free(r);
	/* compaction past the tombstone: b is gone at every readable revision */
	assert_int_equal(kvh_compact(h, r0 + 5), KV_OK);
	assert_int_equal(get_at(h, "b", NULL, r0 + 5, &r), KV_OK);
	assert_int_equal(r->n_kvs, 0);
	kvh_range_free(r);
	assert_int_equal(get_at(h, "a", "\\0", r0 + 5, &r), KV_OK);
	assert_int_equal(r->count, 1);
	assert_int_equal(r->kvs[0]->mod_revision, r0 + 3);
	kvh_range_free(r);
	free(before3);
	free(before6);
	free(after3);
	free(after6);
	kvh_free(h);
}

static void test_compaction_errors_carry_etcd_texts(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "a", "2", 0);
	int64_t rev = kv_revision(h->kv);
	/* etcd starts uncompacted below revision 0: compacting to 0 succeeds (and does
	 * nothing), a negative revision is already compacted */
	assert_int_equal(compact_logical(h, -1), KV_ERR_COMPACTED);
	assert_int_equal(compact_logical(h, 0), KV_OK);
	assert_int_equal(kv_compact_revision(h->kv), 0);
	int err = compact_logical(h, rev + 1);
	assert_int_equal(err, KV_ERR_FUTURE_REV);
	assert_string_equal(kv_strerror(err),
			    "etcdserver: mvcc: required revision is a future revision");
	assert_int_equal(compact_logical(h, rev), KV_OK);
	assert_int_equal(compact_logical(h, rev), KV_ERR_COMPACTED);
	assert_int_equal(compact_logical(h, rev - 1), KV_ERR_COMPACTED);
	assert_int_equal(kv_compact_revision(h->kv), rev);
	/* compaction does not move the revision */
	assert_int_equal(kv_revision(h->kv), rev);
	bool done = false;
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 1, &done), KV_OK);
	kvh_free(h);
}

static void test_hash_is_stable_across_partial_compaction_steps(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	write_history(h, 30, 12);
	int64_t cur = kv_revision(h->kv), at = cur - 100;
	uint32_t before = kvh_hash(h, 0), before_mid = kvh_hash(h, cur - 40);
	char *snap_before = snapshot_at(h, at);
	assert_int_equal(compact_logical(h, at), KV_OK);
	/* the logical compaction alone changes the hash (older history is out of it)... */
	uint32_t logical = kvh_hash(h, 0), logical_mid = kvh_hash(h, cur - 40);
	assert_int_not_equal(logical, before);
	(void)before_mid;
	/* ...but physical steps, however far they got, never do */
	bool done = false;
	int steps = 0;
	while (!done) {
		assert_int_equal(kv_compact_step(h->kv, 3, &done), KV_OK);
		steps++;
		assert_int_equal(kvh_hash(h, 0), logical);
		assert_int_equal(kvh_hash(h, cur - 40), logical_mid);
	}
	assert_true(steps >= 10);
	char *snap_after = snapshot_at(h, at);
	assert_string_equal(snap_before, snap_after);
	/* a fresh store fed the same writes and fully compacted in one go agrees */
	kvh_t *h2 = kvh_new(NULL);
	write_history(h2, 30, 12);
	assert_int_equal(kvh_compact(h2, at), KV_OK);
	assert_int_equal(kvh_hash(h2, 0), logical);
	/* and one that differs by a single value does not */
	kvh_put(h2, "k000", "other", 0);
	kvh_put(h, "k000", "same", 0);
	assert_int_not_equal(kvh_hash(h2, 0), kvh_hash(h, 0));
	free(snap_before);
	free(snap_after);
	kvh_free(h2);
	kvh_free(h);
}

static void test_second_compaction_while_first_is_pending(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	write_history(h, 20, 6);
	int64_t cur = kv_revision(h->kv);
	assert_int_equal(compact_logical(h, cur - 50), KV_OK);
	bool done = false;
	assert_int_equal(kv_compact_step(h->kv, 5, &done), KV_OK);
	assert_false(done);
	assert_int_equal(compact_logical(h, cur - 10), KV_OK);
	uint32_t hash = kvh_hash(h, 0);
	char *snap = snapshot_at(h, cur - 10);
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 5, &done), KV_OK);
	assert_false(kv_compact_pending(h->kv));
	assert_int_equal(kvh_hash(h, 0), hash);
	char *snap2 = snapshot_at(h, cur - 10);
	assert_string_equal(snap, snap2);
	Etcdserverpb__RangeResponse *r;
	assert_int_equal(get_at(h, "k000", NULL, cur - 11, &r), KV_ERR_COMPACTED);
	free(snap);
	free(snap2);
	kvh_free(h);
}

static void test_compacted_store_keeps_writing(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_del(h, "a", NULL);
	assert_int_equal(kvh_compact(h, kv_revision(h->kv)), KV_OK);
	int64_t r = kvh_put(h, "a", "2", 0);
	Etcdserverpb__RangeResponse *g = kvh_get(h, "a", NULL, 0);
	assert_int_equal(g->kvs[0]->version, 1);
	assert_int_equal(g->kvs[0]->create_revision, r);
	kvh_range_free(g);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compaction_keeps_newest_at_or_below),
		cmocka_unit_test(test_compaction_errors_carry_etcd_texts),
		cmocka_unit_test(test_hash_is_stable_across_partial_compaction_steps),
		cmocka_unit_test(test_second_compaction_while_first_is_pending),
		cmocka_unit_test(test_compacted_store_keeps_writing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
