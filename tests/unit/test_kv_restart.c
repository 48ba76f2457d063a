/* test_kv_restart.c — what survives a close and reopen: the key space with its history,
 * HashKV, the revision, the compaction and the consistent index, and that an entry at or
 * below the applied index is never applied again. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_many(kvh_t *h, int n)
{
	char k[16], v[32];
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "key/%03d", (i * 37) % 101);
		snprintf(v, sizeof(v), "value-%d", i);
		if (i % 11 == 10)
			kvh_del(h, k, NULL);
		else if (i % 29 == 28)
			kvh_del(h, "key/050", "key/060");
		else
			kvh_put(h, k, v, 0);
	}
}

/* Answers of a few reads at rev, flattened to compare. */
static char *reads_at(kvh_t *h, int64_t rev)
{
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	const char *starts[] = { "key/", "key/05", "key/1" };
	const char *ends[] = { "key0", "key/06", "\\0" };
	for (int q = 0; q < 3; q++) {
		Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
		req.key = kvh_bin(starts[q]);
		req.range_end = strcmp(ends[q], "\\0") == 0 ? kvh_zero : kvh_bin(ends[q]);
		req.revision = rev;
		req.limit = q == 1 ? 3 : 0;
		Etcdserverpb__RangeResponse *r = NULL;
		assert_int_equal(kv_range(h->kv, &req, &r), KV_OK);
		len += (size_t)snprintf(s + len, cap - len, "[%lld %d %lld]", (long long)r->count,
					r->more, (long long)r->header->revision);
		for (size_t i = 0; i < r->n_kvs && len < cap - 128; i++) {
			Mvccpb__KeyValue *kv = r->kvs[i];
			len += (size_t)snprintf(s + len, cap - len, "%.*s=%.*s/%lld/%lld/%lld;",
						(int)kv->key.len, (char *)kv->key.data,
						(int)kv->value.len, (char *)kv->value.data,
						(long long)kv->create_revision,
						(long long)kv->mod_revision, (long long)kv->version);
		}
		kvh_range_free(r);
	}
	return s;
}

static void test_reopen_keeps_history_hash_and_index(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	write_many(h, 600);
	int64_t rev = kv_revision(h->kv);
	int64_t crev = rev - 300;
	assert_int_equal(kvh_compact(h, crev), KV_OK);
	write_many(h, 50);
	rev = kv_revision(h->kv);
	uint64_t index = kv_applied_index(h->kv);
	uint32_t hash = kvh_hash(h, 0), hash_old = kvh_hash(h, rev - 200);
	char *now = reads_at(h, 0), *old = reads_at(h, rev - 200);
	kvh_reopen(h);
	assert_int_equal(kv_revision(h->kv), rev);
	assert_int_equal(kv_applied_index(h->kv), index);
	assert_int_equal(kv_compact_revision(h->kv), crev);
	assert_int_equal(kvh_hash(h, 0), hash);
	assert_int_equal(kvh_hash(h, rev - 200), hash_old);
	char *now2 = reads_at(h, 0), *old2 = reads_at(h, rev - 200);
	assert_string_equal(now, now2);
	assert_string_equal(old, old2);
	/* it keeps counting from where it was */
	assert_int_equal(kvh_put(h, "after", "1", 0), rev + 1);
	free(now);
	free(old);
	free(now2);
	free(old2);
	kvh_free(h);
}

static void test_reopen_with_pending_compaction_finishes_it(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	write_many(h, 300);
	int64_t rev = kv_revision(h->kv);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev - 20;
	req.compaction = &c;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
	bool done = false;
	assert_int_equal(kv_compact_step(h->kv, 10, &done), KV_OK);
	assert_false(done);
	uint32_t hash = kvh_hash(h, 0);
	kvh_reopen(h);
	assert_true(kv_compact_pending(h->kv));
	assert_int_equal(kvh_hash(h, 0), hash);
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 10, &done), KV_OK);
	assert_int_equal(kvh_hash(h, 0), hash);
	kvh_reopen(h);
	assert_false(kv_compact_pending(h->kv));
	assert_int_equal(kvh_hash(h, 0), hash);
	kvh_free(h);
}

static void test_entry_at_or_below_applied_index_is_skipped(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "b", "1", 0);
	int64_t rev = kv_revision(h->kv);
	uint32_t hash = kvh_hash(h, 0);
	kvh_reopen(h);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
	p.key = kvh_bin("a");
	p.value = kvh_bin("replayed");
	req.put = &p;
	for (uint64_t idx = 1; idx <= h->index; idx++) {
		kv_result_t res;
		assert_int_equal(kv_apply_request(h->kv, idx, h->term, &req, &res), KV_OK);
		assert_null(res.resp);
	}
	/* the same through kv_apply, as a WAL replay would */
	uint8_t buf[64];
	size_t n = etcdserverpb__internal_raft_request__pack(&req, buf);
	raft_entry_t e = RAFTPB__ENTRY__INIT;
	e.index = h->index;
	e.term = h->term;
	e.data.data = buf;
	e.data.len = n;
	raft_entry_t *ents[] = { &e };
	assert_int_equal(kv_apply(h->kv, ents, 1, NULL, NULL), KV_OK);
	assert_int_equal(kv_revision(h->kv), rev);
	assert_int_equal(kvh_hash(h, 0), hash);
	Etcdserverpb__RangeResponse *r = kvh_get(h, "a", NULL, 0);
	assert_int_equal(r->kvs[0]->value.len, 1);
	kvh_range_free(r);
	/* the next index does apply */
	e.index = h->index + 1;
	assert_int_equal(kv_apply(h->kv, ents, 1, NULL, NULL), KV_OK);
	h->index++;
	assert_int_equal(kv_revision(h->kv), rev + 1);
	kvh_reopen(h);
	assert_int_equal(kv_applied_index(h->kv), h->index);
	r = kvh_get(h, "a", NULL, 0);
	assert_int_equal(r->kvs[0]->value.len, 8);
	kvh_range_free(r);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reopen_keeps_history_hash_and_index),
		cmocka_unit_test(test_reopen_with_pending_compaction_finishes_it),
		cmocka_unit_test(test_entry_at_or_below_applied_index_is_skipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
