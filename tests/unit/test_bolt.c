/* test_bolt.c — etcd-format snapshots (kvstore/bolt.c): a store written as a bbolt file and
 * imported back is the same store (history, deletes, leases, compaction, overflow pages,
 * multi-level trees), and damaged or foreign files are refused with a message, never a
 * crash. That etcd's own tools read the files is tests/keelctl_ops/ops_snapshot.py's job. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_harness.h"
#include "kv_int.h"

#define PS 4096

typedef struct buf {
	uint8_t *p;
	size_t n, cap;
} buf_t;

static void buf_add(buf_t *b, const void *p, size_t n)
{
	if (b->n + n + 8 > b->cap) {
		b->cap = (b->n + n + 8) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	uint64_t len = n;
	memcpy(b->p + b->n, &len, 8);
	memcpy(b->p + b->n + 8, p, n);
	b->n += n + 8;
}

/* Every record of a database, in order, length-prefixed. */
static void dump_dbi(kv_t *kv, MDB_dbi dbi, buf_t *out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	assert_int_equal(mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	MDB_val k, v;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		buf_add(out, k.mv_data, k.mv_size);
		buf_add(out, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
}

static uint64_t meta_u64(kv_t *kv, const char *name)
{
	MDB_txn *txn;
	uint64_t v;
	assert_int_equal(mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(kv_meta_get(kv, txn, name, &v), KV_OK);
	mdb_txn_abort(txn);
	return v;
}

static void assert_same_dbi(kv_t *a, MDB_dbi da, kv_t *b, MDB_dbi db, const char *what)
{
	buf_t x = { 0 }, y = { 0 };
	dump_dbi(a, da, &x);
	dump_dbi(b, db, &y);
	if (x.n != y.n || (x.n && memcmp(x.p, y.p, x.n) != 0))
		fail_msg("database %s differs after the round trip (%zu vs %zu bytes)", what, x.n,
			 y.n);
	free(x.p);
	free(y.p);
}

typedef struct rt {
	kvh_t *h;
	char bolt[400], store[400];
	kv_t *back;
} rt_t;

/* Saves h's store as a bbolt file and imports it into a second store. */
static void round_trip(rt_t *t, kvh_t *h)
{
	char err[512] = "";
	t->h = h;
	snprintf(t->bolt, sizeof(t->bolt), "%s/snap.bolt", h->dir);
	snprintf(t->store, sizeof(t->store), "%s/restored.db", h->dir);
	int rc = kv_bolt_save(h->kv, t->bolt, err, sizeof(err));
	if (rc != KV_OK)
		fail_msg("save: %s", err);
	rc = kv_bolt_restore(t->bolt, t->store, err, sizeof(err));
	if (rc != KV_OK)
		fail_msg("restore: %s", err);
	assert_int_equal(kv_open(t->store, NULL, &t->back, err, sizeof(err)), KV_OK);
}

static void rt_close(rt_t *t)
{
	kv_close(t->back);
	kvh_free(t->h);
}

/* The whole MVCC state: records, index, leases and their keys, revision and compaction. */
static void assert_same_store(kv_t *a, kv_t *b)
{
	assert_same_dbi(a, a->dbi_rev, b, b->dbi_rev, "rev");
	assert_same_dbi(a, a->dbi_idx, b, b->dbi_idx, "idx");
	assert_same_dbi(a, a->dbi_lease, b, b->dbi_lease, "lease");
	assert_same_dbi(a, a->dbi_lkeys, b, b->dbi_lkeys, "lkeys");
	assert_same_dbi(a, a->dbi_alarm, b, b->dbi_alarm, "alarm");
	/* "rev" itself is absent from a store never written: kv_revision says 1 for both. */
	static const char *const names[] = { "compact", "compact_sched" };
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(meta_u64(a, names[i]), meta_u64(b, names[i]));
	assert_int_equal(kv_revision(a), kv_revision(b));
	assert_int_equal(kv_compact_revision(a), kv_compact_revision(b));
	assert_int_equal(meta_u64(b, "cindex"), 0);
}

static void checkpoint(kvh_t *h, int64_t id, int64_t ms)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseCheckpointRequest r = ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
	Etcdserverpb__LeaseCheckpoint c = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
	Etcdserverpb__LeaseCheckpoint *cs[1] = { &c };
	c.id = id;
	c.remaining_ms = ms;
	c.remaining_ttl = (ms + 999) / 1000;
	r.checkpoints = cs;
	r.n_checkpoints = 1;
	req.lease_checkpoint = &r;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
}

/* An active alarm, written as maint.c keys it: member ID, then the type, big-endian. */
static void raise_alarm(kvh_t *h, uint64_t member, uint32_t type)
{
	uint8_t k[12];
	kv_put_be64(k, member);
	for (int i = 0; i < 4; i++)
		k[8 + i] = (uint8_t)(type >> (24 - 8 * i));
	MDB_txn *txn;
	MDB_val mk = { sizeof(k), k }, mv = { 0, k };
	assert_int_equal(mdb_txn_begin(h->kv->env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, h->kv->dbi_alarm, &mk, &mv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

static void compact_logically(kvh_t *h, int64_t rev)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	req.compaction = &c;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
}

static void test_round_trip_keeps_history_deletes_leases_and_compaction(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 100, 60);
	kvh_grant(h, 200, 30);
	kvh_grant(h, 300, 90); /* revoked below: its keys go with it */
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "b", "2", 100);
	kvh_put(h, "c", "3", 300);
	kvh_put(h, "a", "again", 0);
	kvh_del(h, "b", NULL);
	kvh_put(h, "b", "back", 200);
	kvh_put(h, "d", "", 100); /* an empty value */
	assert_int_equal(kvh_revoke(h, 300), KV_OK);
	checkpoint(h, 200, 12000);
	int64_t mid = kvh_put(h, "e", "5", 0);
	assert_int_equal(kvh_compact(h, mid - 2), KV_OK);
	kvh_del(h, "a", NULL);
	kvh_put(h, "f", "6", 0);
	raise_alarm(h, 0x8e9e05c52164694dull, 1);  /* NOSPACE */
	raise_alarm(h, 0x8e9e05c52164694dull, 2);  /* CORRUPT */
	raise_alarm(h, 0x10, 1);

	rt_t t;
	round_trip(&t, h);
	assert_same_store(h->kv, t.back);
	/* Reads agree too: at the compaction point, in the middle, now; hashes alike. */
	int64_t revs[] = { mid - 2, mid, kv_revision(h->kv) };
	for (size_t i = 0; i < 3; i++) {
		uint32_t ha, hb;
		int64_t ca, cb, ra, rb;
		assert_int_equal(kv_hash_kv(h->kv, revs[i], &ha, &ca, &ra), KV_OK);
		assert_int_equal(kv_hash_kv(t.back, revs[i], &hb, &cb, &rb), KV_OK);
		assert_int_equal(ha, hb);
	}
	Etcdserverpb__LeaseLeasesResponse *la, *lb;
	assert_int_equal(kv_lease_leases(h->kv, &la), KV_OK);
	assert_int_equal(kv_lease_leases(t.back, &lb), KV_OK);
	assert_int_equal(la->n_leases, 2);
	assert_int_equal(lb->n_leases, 2);
	protobuf_c_message_free_unpacked(&la->base, NULL);
	protobuf_c_message_free_unpacked(&lb->base, NULL);
	rt_close(&t);
}

static void test_round_trip_of_an_empty_store(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	rt_t t;
	round_trip(&t, h);
	assert_same_store(h->kv, t.back);
	kv_bolt_status_t st;
	char err[512];
	assert_int_equal(kv_bolt_status(t.bolt, &st, err, sizeof(err)), KV_OK);
	assert_int_equal(st.revision, 0);
	/* auth's authRevision, cluster's clusterVersion, meta's consistent_index */
	assert_int_equal(st.total_keys, 3);
	rt_close(&t);
}

static void test_scheduled_compaction_not_yet_done_survives(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	for (int i = 0; i < 20; i++)
		kvh_put(h, "k", "v", 0);
	compact_logically(h, 10); /* no physical step: old revisions still stored */
	assert_true(kv_compact_pending(h->kv));
	rt_t t;
	round_trip(&t, h);
	assert_same_store(h->kv, t.back);
	assert_true(kv_compact_pending(t.back));
	assert_int_equal(kv_compact_revision(t.back), 10);
	rt_close(&t);
}

static void test_large_values_go_to_overflow_pages(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	size_t sizes[] = { 4000, 4097, 20000, 300000, 1 };
	for (size_t i = 0; i < 5; i++) {
		char *v = malloc(sizes[i] + 1);
		for (size_t j = 0; j < sizes[i]; j++)
			v[j] = (char)('a' + (j * 7 + i) % 26);
		v[sizes[i]] = 0;
		char key[16];
		snprintf(key, sizeof(key), "big%zu", i);
		kvh_put(h, key, v, 0);
		free(v);
	}
	rt_t t;
	round_trip(&t, h);
	assert_same_store(h->kv, t.back);
	struct stat sb;
	assert_int_equal(stat(t.bolt, &sb), 0);
	assert_true(sb.st_size > 320000);
	assert_int_equal(sb.st_size % PS, 0);
	rt_close(&t);
}

/* ---- reading the file as bbolt lays it out, to look at and to damage it -------------- */

static uint8_t *file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc(*len ? *len : 1);
	assert_int_equal(fread(p, 1, *len, f), *len);
	fclose(f);
	return p;
}

static void file_write(const char *path, const uint8_t *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* The root page of the named top-level bucket (0 when inline). */
static uint64_t bucket_root(const uint8_t *f, const char *name)
{
	uint64_t root = rd64(f + 16 + 16);
	const uint8_t *p = f + root * PS;
	assert_true(rd16(p + 8) & 0x02); /* Keel's root bucket is one leaf */
	for (unsigned i = 0; i < rd16(p + 10); i++) {
		const uint8_t *e = p + 16 + i * 16;
		const uint8_t *k = e + rd32(e + 4);
		if (rd32(e + 8) == strlen(name) && memcmp(k, name, strlen(name)) == 0)
			return rd64(k + rd32(e + 8));
	}
	fail_msg("no bucket %s", name);
	return 0;
}

static int tree_depth(const uint8_t *f, uint64_t pg)
{
	const uint8_t *p = f + pg * PS;
	if (rd16(p + 8) & 0x02)
		return 1;
	const uint8_t *e = p + 16;
	return 1 + tree_depth(f, rd64(e + 8));
}

static void test_many_keys_span_branch_levels(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	char key[80], val[80];
	for (int i = 0; i < 40000; i++) {
		snprintf(key, sizeof(key), "/registry/pods/ns%03d/pod-%07d", i % 97, i);
		snprintf(val, sizeof(val), "value-%d", i * 31);
		kvh_put(h, key, val, 0);
	}
	for (int i = 0; i < 40000; i += 3) {
		snprintf(key, sizeof(key), "/registry/pods/ns%03d/pod-%07d", i % 97, i);
		kvh_del(h, key, NULL);
	}
	rt_t t;
	round_trip(&t, h);
	assert_same_store(h->kv, t.back);
	size_t len;
	uint8_t *f = file_read(t.bolt, &len);
	uint64_t root = bucket_root(f, "key");
	assert_true(root >= 2);
	assert_true(tree_depth(f, root) >= 3);
	kv_bolt_status_t st;
	char err[512];
	assert_int_equal(kv_bolt_status(t.bolt, &st, err, sizeof(err)), KV_OK);
	assert_int_equal(st.revision, kv_revision(h->kv));
	assert_int_equal(st.total_size, (int64_t)len);
	free(f);
	rt_close(&t);
}

/* ---- damaged and foreign files -------------------------------------------------------- */

typedef struct dmg {
	kvh_t *h;
	char bolt[400], bad[400], store[400];
	uint8_t *data;
	size_t len;
} dmg_t;

static void dmg_setup(dmg_t *d)
{
	d->h = kvh_new(NULL);
	char key[64], val[300];
	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	kvh_grant(d->h, 7, 60);
	for (int i = 0; i < 600; i++) {
		snprintf(key, sizeof(key), "key-%05d", i);
		kvh_put(d->h, key, val, i % 5 == 0 ? 7 : 0);
	}
	snprintf(d->bolt, sizeof(d->bolt), "%s/good.bolt", d->h->dir);
	snprintf(d->bad, sizeof(d->bad), "%s/bad.bolt", d->h->dir);
	snprintf(d->store, sizeof(d->store), "%s/out.db", d->h->dir);
	char err[512];
	assert_int_equal(kv_bolt_save(d->h->kv, d->bolt, err, sizeof(err)), KV_OK);
	d->data = file_read(d->bolt, &d->len);
}

static void dmg_free(dmg_t *d)
{
	free(d->data);
	kvh_free(d->h);
}

/* Status and restore of p both fail with a message containing want (NULL: any), and the
 * failed restore leaves nothing behind. */
static void expect_refused(dmg_t *d, const uint8_t *p, size_t len, const char *want)
{
	file_write(d->bad, p, len);
	char err[512] = "";
	kv_bolt_status_t st;
	int rc = kv_bolt_status(d->bad, &st, err, sizeof(err));
	if (rc == KV_OK || !err[0] || (want && !strstr(err, want)))
		fail_msg("status: rc %d, error \"%s\", wanted \"%s\"", rc, err, want ? want : "");
	err[0] = 0;
	rc = kv_bolt_restore(d->bad, d->store, err, sizeof(err));
	if (rc == KV_OK || !err[0] || (want && !strstr(err, want)))
		fail_msg("restore: rc %d, error \"%s\", wanted \"%s\"", rc, err, want ? want : "");
	struct stat sb;
	assert_int_not_equal(stat(d->store, &sb), 0);
}

static uint8_t *dup_data(const dmg_t *d)
{
	uint8_t *p = malloc(d->len);
	memcpy(p, d->data, d->len);
	return p;
}

/* A page of the "key" tree: a branch when the tree has one, else its leaf. */
static uint64_t some_tree_page(const dmg_t *d, bool want_branch)
{
	uint64_t root = bucket_root(d->data, "key");
	assert_true(root >= 2);
	const uint8_t *p = d->data + root * PS;
	if (want_branch) {
		assert_true(rd16(p + 8) & 0x01);
		return root;
	}
	while (!(rd16(p + 8) & 0x02))
		p = d->data + rd64(p + 16 + 8) * PS;
	return (uint64_t)(p - d->data) / PS;
}

static void test_damaged_files_are_refused_with_clear_errors(void **state)
{
	(void)state;
	dmg_t d;
	dmg_setup(&d);
	char err[512];
	kv_bolt_status_t st;
	assert_int_equal(kv_bolt_status(d.bolt, &st, err, sizeof(err)), KV_OK);

	expect_refused(&d, d.data, d.len - PS, "truncated");
	expect_refused(&d, d.data, 100, "truncated");
	expect_refused(&d, d.data, 40, "not a bbolt database");
	expect_refused(&d, (const uint8_t *)"", 0, "not a bbolt database");
	uint8_t *p = dup_data(&d);
	p[16 + 8] ^= 1;      /* meta 0's page size, under its checksum */
	p[PS + 16 + 8] ^= 1; /* and meta 1's */
	expect_refused(&d, p, d.len, "not a bbolt database");
	free(p);

	uint64_t branch = some_tree_page(&d, true), leaf = some_tree_page(&d, false);
	p = dup_data(&d);
	p[leaf * PS] ^= 0x40; /* the page's own id */
	expect_refused(&d, p, d.len, "says it is page");
	free(p);

	p = dup_data(&d);
	uint32_t far = 0x7fff0000;
	memcpy(p + leaf * PS + 16 + 4, &far, 4); /* the first element's key offset */
	expect_refused(&d, p, d.len, "out of the page");
	free(p);

	p = dup_data(&d);
	memcpy(p + branch * PS + 16 + 8, &branch, 8); /* a branch whose child is itself */
	expect_refused(&d, p, d.len, "multiple references");
	free(p);

	p = dup_data(&d);
	uint64_t beyond = d.len / PS + 5;
	memcpy(p + branch * PS + 16 + 8, &beyond, 8);
	expect_refused(&d, p, d.len, "out of bounds");
	free(p);

	p = dup_data(&d);
	uint16_t many = 0xfff0;
	memcpy(p + leaf * PS + 10, &many, 2); /* an element count past the page */
	expect_refused(&d, p, d.len, "do not fit");
	free(p);

	p = dup_data(&d);
	uint32_t over = 0x40000000;
	memcpy(p + leaf * PS + 12, &over, 4); /* overflow pages past the end */
	expect_refused(&d, p, d.len, "overflow");
	free(p);

	/* An LMDB file, as Keel's snapshots were before they were etcd's. */
	size_t llen;
	uint8_t *lmdb = file_read(d.h->path, &llen);
	expect_refused(&d, lmdb, llen, "not a bbolt database");
	free(lmdb);
	dmg_free(&d);
}

/* Every page damaged at a few places in turn: status and restore either succeed or fail
 * with a message (and leave nothing) — never crash, hang or leak (ASan build). */
static void test_any_damaged_page_never_crashes(void **state)
{
	(void)state;
	dmg_t d;
	dmg_setup(&d);
	static const size_t offs[] = { 0, 8, 10, 12, 16, 20, 24, 28, 40, 200, 3000 };
	static const uint8_t vals[] = { 0xff, 0x01, 0x80 };
	size_t refused = 0, runs = 0;
	uint8_t *p = dup_data(&d);
	for (size_t pg = 0; pg < d.len / PS; pg++) {
		for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			size_t at = pg * PS + offs[i];
			uint8_t keep = p[at];
			p[at] ^= vals[(pg + i) % 3];
			file_write(d.bad, p, d.len);
			p[at] = keep;
			char err[512] = "";
			kv_bolt_status_t st;
			int rc = kv_bolt_status(d.bad, &st, err, sizeof(err));
			assert_true(rc == KV_OK || err[0]);
			err[0] = 0;
			rc = kv_bolt_restore(d.bad, d.store, err, sizeof(err));
			runs++;
			if (rc == KV_OK) {
				char lock[420];
				snprintf(lock, sizeof(lock), "%s-lock", d.store);
				unlink(d.store);
				unlink(lock);
				continue;
			}
			refused++;
			assert_true(err[0]);
			struct stat sb;
			assert_int_not_equal(stat(d.store, &sb), 0);
		}
	}
	free(p);
	/* Most damage is noticed (headers, offsets, checksums, protobuf, ordering). */
	assert_true(refused * 2 > runs);
	dmg_free(&d);
}

static void test_restore_refuses_an_existing_store_path(void **state)
{
	(void)state;
	dmg_t d;
	dmg_setup(&d);
	char err[512] = "";
	assert_int_equal(kv_bolt_restore(d.bolt, d.h->path, err, sizeof(err)), KV_ERR_IO);
	assert_non_null(strstr(err, "already exists"));
	dmg_free(&d);
}

static void test_status_ignores_a_sha256_trailer(void **state)
{
	(void)state;
	dmg_t d;
	dmg_setup(&d);
	uint8_t *p = malloc(d.len + 32);
	memcpy(p, d.data, d.len);
	memset(p + d.len, 0xab, 32);
	file_write(d.bad, p, d.len + 32);
	kv_bolt_status_t a, b;
	char err[512];
	assert_int_equal(kv_bolt_status(d.bolt, &a, err, sizeof(err)), KV_OK);
	assert_int_equal(kv_bolt_status(d.bad, &b, err, sizeof(err)), KV_OK);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.total_size, (int64_t)d.len);
	assert_int_equal(a.revision, kv_revision(d.h->kv));
	/* 600 revisions, a lease, and the 3 fixed entries. */
	assert_int_equal(a.total_keys, 600 + 1 + 3);
	free(p);
	dmg_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_keeps_history_deletes_leases_and_compaction),
		cmocka_unit_test(test_round_trip_of_an_empty_store),
		cmocka_unit_test(test_scheduled_compaction_not_yet_done_survives),
		cmocka_unit_test(test_large_values_go_to_overflow_pages),
		cmocka_unit_test(test_many_keys_span_branch_levels),
		cmocka_unit_test(test_damaged_files_are_refused_with_clear_errors),
		cmocka_unit_test(test_any_damaged_page_never_crashes),
		cmocka_unit_test(test_restore_refuses_an_existing_store_path),
		cmocka_unit_test(test_status_ignores_a_sha256_trailer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
