/* test_kv_apply.c — the store's front door: applying Raft entries exactly once across
 * restarts, what an undecodable or failing request leaves behind, checks before
 * proposing, the exclusive lock, and snapshots of the store moved between members. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv_harness.h"
#include "tmpdir.h"

/* A packed put request as a Raft entry's data. */
static raft_entry_t *put_entry(uint64_t index, uint64_t term, const char *key, const char *value,
			       uint64_t id)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__RequestHeader hdr = ETCDSERVERPB__REQUEST_HEADER__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	hdr.id = id;
	req.header = &hdr;
	put.key = kvh_bin(key);
	put.value = kvh_bin(value);
	req.put = &put;
	uint8_t buf[256];
	size_t len = etcdserverpb__internal_raft_request__pack(&req, buf);
	return raft_entry_new(term, index, RAFT_ENTRY_NORMAL, buf, len);
}

typedef struct seen {
	uint64_t index[64], id[64];
	int err[64];
	int64_t rev[64];
	size_t n;
} seen_t;

static void record(void *ud, kv_result_t *r)
{
	seen_t *s = ud;
	s->index[s->n] = r->index;
	s->id[s->n] = r->id;
	s->err[s->n] = r->err;
	s->rev[s->n] = r->revision;
	s->n++;
	if (r->resp)
		protobuf_c_message_free_unpacked(r->resp, NULL);
}

static void free_entries(raft_entry_t **e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		raft_entry_free(e[i]);
}

static void test_apply_batch_reports_each_entry_in_order(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	raft_entry_t *e[4];
	e[0] = raft_entry_new(1, 1, RAFT_ENTRY_NORMAL, NULL, 0); /* a leader's empty entry */
	e[1] = put_entry(2, 1, "a", "1", 77);
	e[2] = put_entry(3, 1, "b", "2", 78);
	e[3] = put_entry(4, 1, "a", "3", 79);
	seen_t s = {0};
	assert_int_equal(kv_apply(h->kv, e, 4, record, &s), KV_OK);
	assert_int_equal(s.n, 4);
	uint64_t want_id[] = { 0, 77, 78, 79 };
	int64_t want_rev[] = { 1, 2, 3, 4 }; /* a new store is at revision 1 */
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(s.index[i], i + 1);
		assert_int_equal(s.id[i], want_id[i]);
		assert_int_equal(s.err[i], KV_OK);
		assert_int_equal(s.rev[i], want_rev[i]);
	}
	assert_int_equal(kv_applied_index(h->kv), 4);
	assert_int_equal(kv_revision(h->kv), 4);
	h->index = 4;
	free_entries(e, 4);
	kvh_free(h);
}

static void test_replay_after_restart_applies_each_entry_once(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	raft_entry_t *e[6];
	for (size_t i = 0; i < 6; i++)
		e[i] = put_entry(i + 1, 2, "k", i % 2 ? "odd" : "even", i + 100);
	assert_int_equal(kv_apply(h->kv, e, 4, NULL, NULL), KV_OK);
	h->index = 4;
	uint32_t before = kvh_hash(h, 0);
	kvh_reopen(h);
	assert_int_equal(kv_applied_index(h->kv), 4);
	assert_int_equal(kv_applied_term(h->kv), 2);
	assert_int_equal(kvh_hash(h, 0), before);
	/* The WAL hands out entries 1..6 again: only 5 and 6 apply. */
	seen_t s = {0};
	assert_int_equal(kv_apply(h->kv, e, 6, record, &s), KV_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.index[0], 5);
	assert_int_equal(s.index[1], 6);
	Etcdserverpb__RangeResponse *r = kvh_get(h, "k", NULL, 0);
	assert_int_equal(r->n_kvs, 1);
	assert_int_equal(r->kvs[0]->version, 6);
	assert_int_equal(r->kvs[0]->mod_revision, 7); /* a new store is at revision 1 */
	kvh_range_free(r);
	h->index = 6;
	free_entries(e, 6);
	kvh_free(h);
}

static void test_undecodable_entry_is_applied_as_an_error(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
	raft_entry_t *e[2];
	e[0] = raft_entry_new(1, 1, RAFT_ENTRY_NORMAL, junk, sizeof(junk));
	e[1] = put_entry(2, 1, "x", "y", 5);
	seen_t s = {0};
	assert_int_equal(kv_apply(h->kv, e, 2, record, &s), KV_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.err[0], KV_ERR_BAD_REQUEST);
	assert_int_equal(s.err[1], KV_OK);
	assert_int_equal(kv_applied_index(h->kv), 2);
	assert_int_equal(kv_revision(h->kv), 2);
	h->index = 2;
	free_entries(e, 2);
	kvh_free(h);
}

static void test_conf_change_entry_advances_the_index_only(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	uint32_t hash = kvh_hash(h, 0);
	raft_entry_t *e = raft_entry_new(2, 1, RAFT_ENTRY_CONF_CHANGE, "cc", 2);
	seen_t s = {0};
	assert_int_equal(kv_apply(h->kv, &e, 1, record, &s), KV_OK);
	assert_int_equal(s.n, 0); /* index 1 was the put: nothing new */
	e->index = 2;
	assert_int_equal(kv_apply(h->kv, &e, 1, record, &s), KV_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.err[0], KV_ERR_BAD_REQUEST); /* not a ConfChange: refused, a no-op */
	assert_int_equal(kv_applied_index(h->kv), 2);
	assert_int_equal(kv_revision(h->kv), 2);
	assert_int_equal(kvh_hash(h, 0), hash);
	h->index = 2;
	raft_entry_free(e);
	kvh_free(h);
}

static void test_failed_request_changes_nothing_and_keeps_the_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	uint32_t hash = kvh_hash(h, 0);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key = kvh_bin("b");
	put.value = kvh_bin("2");
	put.lease = 12345; /* no such lease */
	req.put = &put;
	kv_result_t res;
	assert_int_equal(kvh_apply(h, &req, &res), KV_ERR_LEASE_NOT_FOUND);
	assert_null(res.resp);
	assert_int_equal(res.revision, 2);
	assert_int_equal(kv_revision(h->kv), 2);
	assert_int_equal(kv_applied_index(h->kv), 2);
	assert_int_equal(kvh_hash(h, 0), hash);
	assert_string_equal(kv_strerror(res.err), "etcdserver: requested lease not found");
	kvh_free(h);
}

static void test_check_request_refuses_what_etcd_refuses(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	req.put = &put;
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_EMPTY_KEY);
	assert_string_equal(kv_strerror(KV_ERR_EMPTY_KEY), "etcdserver: key is not provided");
	char big[KV_MAX_KEY_SIZE + 2];
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	put.key = kvh_bin(big);
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_KEY_TOO_LARGE);
	big[KV_MAX_KEY_SIZE] = 0;
	put.key = kvh_bin(big);
	assert_int_equal(kv_check_request(h->kv, &req), KV_OK);
	put.ignore_value = true;
	put.value = kvh_bin("v");
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_VALUE_PROVIDED);
	assert_string_equal(kv_strerror(KV_ERR_VALUE_PROVIDED), "etcdserver: value is provided");
	put.ignore_value = false;
	put.ignore_lease = true;
	put.lease = 9;
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_LEASE_PROVIDED);

	Etcdserverpb__InternalRaftRequest g = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest grant = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	grant.ttl = KV_MAX_LEASE_TTL + 1;
	g.lease_grant = &grant;
	assert_int_equal(kv_check_request(h->kv, &g), KV_ERR_LEASE_TTL_TOO_LARGE);
	assert_string_equal(kv_strerror(KV_ERR_LEASE_TTL_TOO_LARGE), "etcdserver: too large lease TTL");

	Etcdserverpb__InternalRaftRequest empty = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	assert_int_equal(kv_check_request(h->kv, &empty), KV_ERR_BAD_REQUEST);
	kvh_free(h);
}

static void test_txn_writing_one_key_twice_is_refused_before_proposing(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	Etcdserverpb__PutRequest p1 = ETCDSERVERPB__PUT_REQUEST__INIT, p2 = p1;
	p1.key = kvh_bin("dup");
	p2.key = kvh_bin("dup");
	Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT, o2 = o1;
	o1.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	o1.request_put = &p1;
	o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	o2.request_put = &p2;
	Etcdserverpb__RequestOp *ops[] = { &o1, &o2 };
	Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
	txn.success = ops;
	txn.n_success = 2;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.txn = &txn;
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_DUPLICATE_KEY);
	assert_string_equal(kv_strerror(KV_ERR_DUPLICATE_KEY),
			    "etcdserver: duplicate key given in txn request");
	kvh_free(h);
}

static void test_second_process_cannot_open_the_store(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		kv_t *kv = NULL;
		char err[512];
		int rc = kv_open(h->path, NULL, &kv, err, sizeof(err));
		_exit(rc == KV_ERR_LOCKED && strstr(err, h->path) ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	kvh_free(h);
}

static void test_open_of_a_non_lmdb_file_fails_with_its_name(void **state)
{
	(void)state;
	char dir[256];
	test_tmpdir(dir, sizeof(dir), "kv-bad");
	char path[300];
	snprintf(path, sizeof(path), "%s/db", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fputs("not an lmdb file ", f);
	fclose(f);
	kv_t *kv = NULL;
	char err[512] = "";
	int rc = kv_open(path, NULL, &kv, err, sizeof(err));
	assert_int_not_equal(rc, KV_OK);
	assert_null(kv);
	assert_non_null(strstr(err, path));
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_snapshot_moves_the_whole_store_to_another_member(void **state)
{
	(void)state;
	kvh_t *a = kvh_new(NULL), *b = kvh_new(NULL);
	for (int i = 0; i < 200; i++) {
		char key[16], val[16];
		snprintf(key, sizeof(key), "key%03d", i % 37);
		snprintf(val, sizeof(val), "v%d", i);
		kvh_put(a, key, val, 0);
	}
	kvh_del(a, "key000", "key010");
	int64_t lease = kvh_grant(a, 0, 60);
	kvh_put(a, "leased", "x", lease);
	kvh_put(b, "only-on-b", "y", 0);

	char copy[400];
	snprintf(copy, sizeof(copy), "%s/copy", b->dir);
	assert_int_equal(kv_snapshot_save(a->kv, copy), KV_OK);
	assert_int_equal(kv_snapshot_install(b->kv, copy), KV_OK);
	assert_int_equal(access(copy, F_OK), -1); /* moved into place */
	assert_int_equal(kv_applied_index(b->kv), kv_applied_index(a->kv));
	assert_int_equal(kv_revision(b->kv), kv_revision(a->kv));
	assert_int_equal(kvh_hash(b, 0), kvh_hash(a, 0));
	Etcdserverpb__RangeResponse *r = kvh_get(b, "only-on-b", NULL, 0);
	assert_int_equal(r->n_kvs, 0);
	kvh_range_free(r);
	/* Leases came along: revoking on b deletes the attached key there. */
	b->index = a->index;
	assert_int_equal(kvh_revoke(b, lease), KV_OK);
	r = kvh_get(b, "leased", NULL, 0);
	assert_int_equal(r->n_kvs, 0);
	kvh_range_free(r);
	/* And it survives a restart. */
	kvh_reopen(b);
	assert_int_equal(kv_applied_index(b->kv), a->index + 1);
	kvh_free(a);
	kvh_free(b);
}

/* The store as the server opens it: commits flush data pages, snapshot copies and their
 * installation are fsynced. Same answers as with no_sync. */
static void test_synced_store_saves_and_installs_snapshots(void **state)
{
	(void)state;
	char dir[256], a_path[300], b_path[300], copy[300], err[512];
	test_tmpdir(dir, sizeof(dir), "kv-sync");
	snprintf(a_path, sizeof(a_path), "%s/a", dir);
	snprintf(b_path, sizeof(b_path), "%s/b", dir);
	snprintf(copy, sizeof(copy), "%s/copy", dir);
	kv_options_t opt;
	kv_options_default(&opt);
	opt.map_size = 64u << 20;
	kv_t *a, *b;
	assert_int_equal(kv_open(a_path, &opt, &a, err, sizeof(err)), KV_OK);
	assert_int_equal(kv_open(b_path, &opt, &b, err, sizeof(err)), KV_OK);
	raft_entry_t *e[3];
	for (size_t i = 0; i < 3; i++)
		e[i] = put_entry(i + 1, 1, i == 1 ? "y" : "x", "v", i + 1);
	assert_int_equal(kv_apply(a, e, 3, NULL, NULL), KV_OK);
	assert_int_equal(kv_sync(a), KV_OK);
	assert_int_equal(kv_snapshot_save(a, copy), KV_OK);
	assert_int_equal(kv_snapshot_install(b, copy), KV_OK);
	uint32_t ha, hb;
	int64_t ca, cb, ra, rb;
	assert_int_equal(kv_hash_kv(a, 0, &ha, &ca, &ra), KV_OK);
	assert_int_equal(kv_hash_kv(b, 0, &hb, &cb, &rb), KV_OK);
	assert_int_equal(ha, hb);
	assert_int_equal(ra, 4);
	assert_int_equal(rb, 4);
	assert_int_equal(kv_applied_index(b), 3);
	/* A revision past the store's is refused with etcd's words. */
	assert_int_equal(kv_hash_kv(b, 5, &hb, &cb, &rb), KV_ERR_FUTURE_REV);
	free_entries(e, 3);
	kv_close(a);
	kv_close(b);
	assert_int_equal(test_rmtree(dir), 0);
}

/* Every op of a txn is checked before proposing, nested ones included. */
static void test_check_request_looks_inside_txn_ops(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	Etcdserverpb__RequestOp o_range = ETCDSERVERPB__REQUEST_OP__INIT, o_del = o_range;
	o_range.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
	o_range.request_range = &rr;
	o_del.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	o_del.request_delete_range = &dr;
	Etcdserverpb__RequestOp *ops[] = { &o_range, &o_del };
	Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
	txn.failure = ops;
	txn.n_failure = 2;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.txn = &txn;
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_EMPTY_KEY);
	rr.key = kvh_bin("r");
	assert_int_equal(kv_check_request(h->kv, &req), KV_ERR_EMPTY_KEY);
	dr.key = kvh_bin("d");
	assert_int_equal(kv_check_request(h->kv, &req), KV_OK);
	Etcdserverpb__InternalRaftRequest del = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest d2 = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	del.delete_range = &d2;
	assert_int_equal(kv_check_request(h->kv, &del), KV_ERR_EMPTY_KEY);
	/* A key too long to store can still be read or deleted: it is simply not there. */
	char big[KV_MAX_KEY_SIZE + 10];
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	d2.key = kvh_bin(big);
	assert_int_equal(kv_check_request(h->kv, &del), KV_OK);
	kvh_free(h);
}

/* A copy that is not a store cannot be installed; the handle then refuses everything
 * with an error instead of reaching LMDB without an environment. */
static void test_failed_install_leaves_a_closed_handle_not_a_crash(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	char bad[400];
	snprintf(bad, sizeof(bad), "%s/bad", h->dir);
	FILE *f = fopen(bad, "wb");
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fputs("not an lmdb file ", f);
	fclose(f);
	assert_int_not_equal(kv_snapshot_install(h->kv, bad), KV_OK);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key = kvh_bin("b");
	req.put = &put;
	kv_result_t res;
	assert_int_equal(kv_apply_request(h->kv, 100, 1, &req, &res), KV_ERR_IO);
	Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
	rr.key = kvh_bin("a");
	Etcdserverpb__RangeResponse *resp = NULL;
	assert_int_equal(kv_range(h->kv, &rr, &resp), KV_ERR_IO);
	assert_null(resp);
	assert_non_null(strstr(kv_last_error(h->kv), "failed snapshot install"));
	assert_int_equal(kv_sync(h->kv), KV_ERR_IO);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_batch_reports_each_entry_in_order),
		cmocka_unit_test(test_replay_after_restart_applies_each_entry_once),
		cmocka_unit_test(test_undecodable_entry_is_applied_as_an_error),
		cmocka_unit_test(test_conf_change_entry_advances_the_index_only),
		cmocka_unit_test(test_failed_request_changes_nothing_and_keeps_the_revision),
		cmocka_unit_test(test_check_request_refuses_what_etcd_refuses),
		cmocka_unit_test(test_txn_writing_one_key_twice_is_refused_before_proposing),
		cmocka_unit_test(test_second_process_cannot_open_the_store),
		cmocka_unit_test(test_open_of_a_non_lmdb_file_fails_with_its_name),
		cmocka_unit_test(test_snapshot_moves_the_whole_store_to_another_member),
		cmocka_unit_test(test_synced_store_saves_and_installs_snapshots),
		cmocka_unit_test(test_check_request_looks_inside_txn_ops),
		cmocka_unit_test(test_failed_install_leaves_a_closed_handle_not_a_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
