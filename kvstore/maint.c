/* maint.c — the store's side of etcd's Maintenance service: alarms as replicated state
 * (the "alarm" database, written only at apply), the quota's cost and the NOSPACE cap,
 * the file's size, the whole-store hash, and defragmentation by a compacted copy that
 * catches up and is swapped in while the store keeps its in-memory state.
 * Never notifies watchers and never changes revision, leases or compaction of the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_int.h"

/* etcd's estimates (etcdserver/quota.go). */
#define QUOTA_KV_OVERHEAD 256
#define QUOTA_LEASE_OVERHEAD 64
#define ALARM_KEY_LEN 12

/* ---- quota ------------------------------------------------------------------------- */

static int64_t quota_cost_put(const Etcdserverpb__PutRequest *p)
{
	return QUOTA_KV_OVERHEAD + (int64_t)p->key.len + (int64_t)p->value.len;
}

static int64_t quota_cost_ops(Etcdserverpb__RequestOp *const *ops, size_t n)
{
	int64_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT &&
		    ops[i]->request_put)
			c += quota_cost_put(ops[i]->request_put);
	return c;
}

int64_t kv_quota_cost(const Etcdserverpb__InternalRaftRequest *req)
{
	if (req->put)
		return quota_cost_put(req->put);
	if (req->txn) {
		int64_t s = quota_cost_ops(req->txn->success, req->txn->n_success);
		int64_t f = quota_cost_ops(req->txn->failure, req->txn->n_failure);
		return s > f ? s : f;
	}
	if (req->lease_grant)
		return QUOTA_LEASE_OVERHEAD;
	return 0;
}

/* ---- alarms ---------------------------------------------------------------------- */

static void alarm_key(uint8_t *k, uint64_t member, int type)
{
	kv_put_be64(k, member);
	k[8] = (uint8_t)((uint32_t)type >> 24);
	k[9] = (uint8_t)((uint32_t)type >> 16);
	k[10] = (uint8_t)((uint32_t)type >> 8);
	k[11] = (uint8_t)type;
}

static int alarm_key_type(const uint8_t *k)
{
	return (int)((uint32_t)k[8] << 24 | (uint32_t)k[9] << 16 | (uint32_t)k[10] << 8 | k[11]);
}

/* Calls fn for each alarm of type (NONE: every one) in key order. */
typedef int (*alarm_fn)(void *ctx, uint64_t member, int type);

static int alarm_walk(kv_t *kv, MDB_txn *txn, int type, alarm_fn fn, void *ctx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, kv->dbi_alarm, &cur);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "open alarm cursor");
	MDB_val k, v;
	int err = KV_OK;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && err == KV_OK;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ALARM_KEY_LEN) {
			err = kv_set_error(kv, KV_ERR_CORRUPT, "%s: alarm key of %zu bytes",
					   kv->path, k.mv_size);
			break;
		}
		int t = alarm_key_type(k.mv_data);
		if (type == ETCDSERVERPB__ALARM_TYPE__NONE || t == type)
			err = fn(ctx, kv_get_be64(k.mv_data), t);
	}
	mdb_cursor_close(cur);
	if (err == KV_OK && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = kv_from_mdb(kv, rc, "walk alarms");
	return err;
}

static int alarm_mask_add(void *ctx, uint64_t member, int type)
{
	(void)member;
	if (type >= 0 && type < 30)
		*(int *)ctx |= 1 << type;
	return KV_OK;
}

/* Collects alarms into a growing malloc'd array. */
typedef struct alarm_acc {
	Etcdserverpb__AlarmMember **v;
	size_t n, cap;
} alarm_acc_t;

static int alarm_acc_add(void *ctx, uint64_t member, int type)
{
	alarm_acc_t *a = ctx;
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 4;
		void *nv = realloc(a->v, cap * sizeof(*a->v));
		if (!nv)
			return KV_ERR_NOMEM;
		a->v = nv;
		a->cap = cap;
	}
	Etcdserverpb__AlarmMember *m = malloc(sizeof(*m));
	if (!m)
		return KV_ERR_NOMEM;
	etcdserverpb__alarm_member__init(m);
	m->memberid = member;
	m->alarm = (Etcdserverpb__AlarmType)type;
	a->v[a->n++] = m;
	return KV_OK;
}

static void alarm_acc_free(alarm_acc_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		protobuf_c_message_free_unpacked(&a->v[i]->base, NULL);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static int alarm_read_begin(kv_t *kv, MDB_txn **txn)
{
	if (!kv->env)
		return kv_set_error(kv, KV_ERR_IO, "%s: closed after a failed snapshot install",
				    kv->path);
	return kv_from_mdb(kv, mdb_txn_begin(kv->env, NULL, MDB_RDONLY, txn), "begin read");
}

bool kv_alarm_active(kv_t *kv, int type)
{
	if (kv->alarm_mask < 0) {
		MDB_txn *txn;
		int mask = 0;
		if (alarm_read_begin(kv, &txn) != KV_OK)
			return false;
		int rc = alarm_walk(kv, txn, ETCDSERVERPB__ALARM_TYPE__NONE, alarm_mask_add, &mask);
		mdb_txn_abort(txn);
		if (rc != KV_OK)
			return false;
		kv->alarm_mask = mask;
	}
	if (type == ETCDSERVERPB__ALARM_TYPE__NONE)
		return kv->alarm_mask != 0;
	return type > 0 && type < 30 && (kv->alarm_mask & (1 << type));
}

int kv_alarm_list(kv_t *kv, int type, Etcdserverpb__AlarmMember ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	MDB_txn *txn;
	int rc = alarm_read_begin(kv, &txn);
	if (rc != KV_OK)
		return rc;
	alarm_acc_t a = {0};
	rc = alarm_walk(kv, txn, type, alarm_acc_add, &a);
	mdb_txn_abort(txn);
	if (rc != KV_OK) {
		alarm_acc_free(&a);
		return rc;
	}
	*out = a.v;
	*n = a.n;
	return KV_OK;
}

static int alarm_apply(kv_wtxn_t *w, const Etcdserverpb__AlarmRequest *ar, alarm_acc_t *acc)
{
	kv_t *kv = w->kv;
	if (ar->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET)
		return alarm_walk(kv, w->txn, ar->alarm, alarm_acc_add, acc);
	uint8_t kb[ALARM_KEY_LEN];
	alarm_key(kb, ar->memberid, ar->alarm);
	MDB_val k = { sizeof(kb), kb }, v = { 0, NULL };
	int rc = mdb_get(w->txn, kv->dbi_alarm, &k, &v);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return kv_from_mdb(kv, rc, "read alarm");
	bool had = rc == MDB_SUCCESS;
	switch (ar->action) {
	case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE:
		if (!had && (rc = mdb_put(w->txn, kv->dbi_alarm, &k, &v, 0)) != MDB_SUCCESS)
			return kv_from_mdb(kv, rc, "put alarm");
		break;
	case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE:
		if (!had)
			return KV_OK;
		if ((rc = mdb_del(w->txn, kv->dbi_alarm, &k, NULL)) != MDB_SUCCESS)
			return kv_from_mdb(kv, rc, "delete alarm");
		break;
	default: /* an action etcd does not know: it answers nothing and changes nothing */
		return KV_OK;
	}
	/* The batch may still abort: the next question reads what was committed. */
	kv->alarm_mask = -1;
	return alarm_acc_add(acc, ar->memberid, ar->alarm);
}

int kv_alarm_dispatch(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req,
		      ProtobufCMessage **resp)
{
	const Etcdserverpb__AlarmRequest *ar = req->alarm;
	if (!ar)
		return KV_ERR_BAD_REQUEST;
	Etcdserverpb__AlarmResponse *r = malloc(sizeof(*r));
	if (!r)
		return KV_ERR_NOMEM;
	etcdserverpb__alarm_response__init(r);
	alarm_acc_t acc = {0};
	int rc = alarm_apply(w, ar, &acc);
	if (rc != KV_OK) {
		alarm_acc_free(&acc);
		free(r);
		return rc;
	}
	r->alarms = acc.v;
	r->n_alarms = acc.n;
	*resp = &r->base;
	return KV_OK;
}

static int alarm_find_type(void *ctx, uint64_t member, int type)
{
	(void)member;
	(void)type;
	*(bool *)ctx = true;
	return KV_OK;
}

int kv_alarm_capped(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req)
{
	if (kv_quota_cost(req) == 0)
		return KV_OK;
	kv_t *kv = w->kv;
	bool on = false;
	if (kv->alarm_mask >= 0) {
		on = kv->alarm_mask & (1 << ETCDSERVERPB__ALARM_TYPE__NOSPACE);
	} else {
		/* An alarm applied earlier in this batch counts: read through the batch. */
		int rc = alarm_walk(kv, w->txn, ETCDSERVERPB__ALARM_TYPE__NOSPACE, alarm_find_type,
				    &on);
		if (rc != KV_OK)
			return rc;
	}
	return on ? KV_ERR_QUOTA : KV_OK;
}

/* ---- size -------------------------------------------------------------------------- */

/* Pages on LMDB's freelist: each record of the free database (dbi 0) is a page-number
 * list whose first element is its length. */
static int size_free_pages(kv_t *kv, uint64_t *pages)
{
	MDB_txn *txn;
	int rc = alarm_read_begin(kv, &txn);
	if (rc != KV_OK)
		return rc;
	MDB_cursor *cur;
	*pages = 0;
	rc = mdb_cursor_open(txn, 0, &cur);
	if (rc != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		return kv_from_mdb(kv, rc, "open freelist cursor");
	}
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t first;
		if (v.mv_size < sizeof(first))
			continue;
		memcpy(&first, v.mv_data, sizeof(first));
		*pages += first;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "walk freelist");
}

int kv_db_size(kv_t *kv, int64_t *size, int64_t *in_use)
{
	if (!kv->env)
		return kv_set_error(kv, KV_ERR_IO, "%s: closed after a failed snapshot install",
				    kv->path);
	MDB_envinfo info;
	MDB_stat st;
	int rc = mdb_env_info(kv->env, &info);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_stat(kv->env, &st);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "env info");
	*size = (int64_t)(info.me_last_pgno + 1) * (int64_t)st.ms_psize;
	if (!in_use)
		return KV_OK;
	uint64_t free_pages;
	if ((rc = size_free_pages(kv, &free_pages)) != KV_OK)
		return rc;
	int64_t free_bytes = (int64_t)free_pages * (int64_t)st.ms_psize;
	*in_use = free_bytes < *size ? *size - free_bytes : 0;
	return KV_OK;
}

/* ---- hash -------------------------------------------------------------------------- */

/* What of a database is replicated. */
enum {
	HASH_ALL,      /* every record */
	HASH_REV,      /* "rev": records above the compaction point (16-byte revision keys) */
	HASH_IDX,      /* "idx": revisions above the compaction point (17-byte values) */
	HASH_META,     /* "meta": all but physical compaction's progress */
	HASH_MEMBERS,  /* "members": all but each member's own record of its --initial-cluster */
};

static uint32_t hash_len(uint32_t h, size_t n)
{
	uint8_t b[8];
	kv_put_be64(b, n);
	return kv_crc32c(h, b, sizeof(b));
}

static bool hash_keep(int what, const MDB_val *k, const MDB_val *v, uint64_t compact)
{
	switch (what) {
	case HASH_REV:
		return k->mv_size < 8 || kv_get_be64(k->mv_data) > compact;
	case HASH_IDX:
		return v->mv_size < 8 || kv_get_be64(v->mv_data) > compact;
	case HASH_META:
		return !(k->mv_size == 7 && memcmp(k->mv_data, "compact", 7) == 0);
	case HASH_MEMBERS: /* tag 'b' (members.c): written at start, outside raft */
		return !(k->mv_size > 0 && ((const uint8_t *)k->mv_data)[0] == 'b');
	default:
		return true;
	}
}

static int hash_db(kv_t *kv, MDB_txn *txn, const char *name, MDB_dbi dbi, int what,
		   uint64_t compact, uint32_t *h)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "hash: open cursor");
	*h = kv_crc32c(*h, name, strlen(name) + 1);
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!hash_keep(what, &k, &v, compact))
			continue;
		*h = hash_len(*h, k.mv_size);
		*h = kv_crc32c(*h, k.mv_data, k.mv_size);
		*h = hash_len(*h, v.mv_size);
		*h = kv_crc32c(*h, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "hash: walk");
}

int kv_hash(kv_t *kv, uint32_t *hash, int64_t *rev)
{
	const struct {
		const char *name;
		size_t off;
		int what;
	} dbs[] = {
		{ "rev", offsetof(kv_t, dbi_rev), HASH_REV },
		{ "idx", offsetof(kv_t, dbi_idx), HASH_IDX },
		{ "meta", offsetof(kv_t, dbi_meta), HASH_META },
		{ "lease", offsetof(kv_t, dbi_lease), HASH_ALL },
		{ "lkeys", offsetof(kv_t, dbi_lkeys), HASH_ALL },
		{ "alarm", offsetof(kv_t, dbi_alarm), HASH_ALL },
		{ "members", offsetof(kv_t, dbi_members), HASH_MEMBERS },
	};
	MDB_txn *txn;
	int rc = alarm_read_begin(kv, &txn);
	if (rc != KV_OK)
		return rc;
	uint64_t compact, r;
	/* The compaction as this transaction sees it, not kv->compact_rev: this may run on
	 * another thread than apply. */
	if ((rc = kv_meta_get(kv, txn, "compact_sched", &compact)) == KV_OK)
		rc = kv_meta_get(kv, txn, "rev", &r);
	uint32_t h = 0;
	for (size_t i = 0; rc == KV_OK && i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi dbi = *(const MDB_dbi *)((const char *)kv + dbs[i].off);
		rc = hash_db(kv, txn, dbs[i].name, dbi, dbs[i].what, compact, &h);
	}
	mdb_txn_abort(txn);
	if (rc != KV_OK)
		return rc;
	*hash = h;
	*rev = r ? (int64_t)r : 1;
	return KV_OK;
}

/* ---- defragmentation --------------------------------------------------------------- */

int kv_defrag_copy(kv_t *kv, const char *path, char *err, size_t errlen)
{
	/* kv->errbuf belongs to the owner thread: errors go to err only. */
	if (!kv->env) {
		snprintf(err, errlen, "%s: closed after a failed snapshot install", kv->path);
		return KV_ERR_IO;
	}
	unlink(path);
	int rc = mdb_env_copy2(kv->env, path, MDB_CP_COMPACT);
	if (rc != MDB_SUCCESS) {
		/* (the ternaries keep gcc's -Wformat-truncation quiet under sanitizers) */
		const char *why = mdb_strerror(rc);
		snprintf(err, errlen, "copying %s to %s: %s", kv->path ? kv->path : "?",
			 path ? path : "?", why ? why : "?");
		unlink(path);
		return rc == MDB_MAP_FULL ? KV_ERR_NO_SPACE : KV_ERR_IO;
	}
	/* The copy replaces the store's file: it must be on disk before that, whatever the
	 * store's own no_sync says (the WAL cannot redo what the copy lost). */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "fsync %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(path);
		return KV_ERR_IO;
	}
	close(fd);
	return KV_OK;
}

/* Paths longer than this are refused by kv_defrag_swap before anything happens. */
#define DEFRAG_PATH_MAX 4096

static void defrag_unlink(const char *path)
{
	char lock[DEFRAG_PATH_MAX + 16];
	snprintf(lock, sizeof(lock), "%.*s-lock", DEFRAG_PATH_MAX, path);
	unlink(path);
	unlink(lock);
}

int kv_defrag_open(kv_t *kv, const char *path, kv_t **copy, char *err, size_t errlen)
{
	kv_options_t opt = kv->opt;
	int rc = kv_open(path, &opt, copy, err, errlen);
	if (rc != KV_OK)
		return rc;
	if (kv_applied_index(*copy) > kv->cindex || kv_revision(*copy) > kv->rev) {
		snprintf(err, errlen, "%s is ahead of the store (index %llu > %llu)", path,
			 (unsigned long long)kv_applied_index(*copy),
			 (unsigned long long)kv->cindex);
		kv_close(*copy);
		*copy = NULL;
		return KV_ERR_CORRUPT;
	}
	return KV_OK;
}

/* The rename of the copy over the store's name, on disk (whatever no_sync says: the copy
 * was fsynced for this), and the old file's blocks given back. */
void kv_defrag_finish(const char *path, int old_fd)
{
	if (old_fd >= 0)
		close(old_fd);
	char dir[DEFRAG_PATH_MAX + 1];
	snprintf(dir, sizeof(dir), "%.*s", DEFRAG_PATH_MAX, path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* The copy must be the store's state exactly, as far as memory knows it. */
static int defrag_check(kv_t *kv, const kv_t *copy)
{
	if (copy->cindex == kv->cindex && copy->cterm == kv->cterm && copy->rev == kv->rev &&
	    copy->compact_rev == kv->compact_rev)
		return KV_OK;
	return kv_set_error(kv, KV_ERR_CORRUPT,
			    "%s: the defragmented copy is not the store (index %llu/%llu, revision "
			    "%lld/%lld, compaction %lld/%lld)", copy->path,
			    (unsigned long long)copy->cindex, (unsigned long long)kv->cindex,
			    (long long)copy->rev, (long long)kv->rev, (long long)copy->compact_rev,
			    (long long)kv->compact_rev);
}

/* Opens the file now at kv->path, keeping the lessor that memory has (kv_env_open would
 * reload it from the file: renewals not checkpointed yet would be lost). */
static int defrag_reopen(kv_t *kv)
{
	struct kv_lessor *ls = kv->lessor;
	kv->lessor = NULL;
	int rc = kv_env_open(kv);
	if (kv->lessor)
		kv_lessor_close(kv);
	kv->lessor = ls;
	if (rc != KV_OK)
		kv_env_close(kv);
	return rc;
}

int kv_defrag_swap(kv_t *kv, kv_t *copy, int *old_fd)
{
	char path[DEFRAG_PATH_MAX + 1], old[DEFRAG_PATH_MAX + 16];
	*old_fd = -1;
	int rc = kv->env ? defrag_check(kv, copy) : KV_ERR_IO;
	if (strlen(copy->path) > DEFRAG_PATH_MAX || strlen(kv->path) > DEFRAG_PATH_MAX)
		rc = kv_set_error(kv, KV_ERR_IO, "%s: path too long", copy->path);
	snprintf(path, sizeof(path), "%.*s", DEFRAG_PATH_MAX, copy->path);
	snprintf(old, sizeof(old), "%.*s.defrag-old", DEFRAG_PATH_MAX, kv->path);
	kv_close(copy);
	if (rc != KV_OK) {
		defrag_unlink(path);
		return rc;
	}
	/* The old file stays reachable under another name until the new one is open. */
	unlink(old);
	if (link(kv->path, old) != 0) {
		int e = errno;
		defrag_unlink(path);
		return kv_set_error(kv, KV_ERR_IO, "link %s to %s: %s", kv->path, old, strerror(e));
	}
	/* Freeing the old file's blocks takes milliseconds per 100 MB: this descriptor keeps
	 * them until the caller closes it (kv_defrag_finish, off the owner's thread). */
	int keep = open(kv->path, O_RDONLY | O_CLOEXEC);
	kv_env_close(kv);
	if (rename(path, kv->path) != 0) {
		int e = errno;
		defrag_unlink(path);
		unlink(old);
		if (keep >= 0)
			close(keep);
		if ((rc = defrag_reopen(kv)) != KV_OK)
			return rc;
		return kv_set_error(kv, KV_ERR_IO, "rename %s to %s: %s", path, kv->path,
				    strerror(e));
	}
	char lock[DEFRAG_PATH_MAX + 16];
	snprintf(lock, sizeof(lock), "%.*s-lock", DEFRAG_PATH_MAX, path);
	unlink(lock);
	kv->rename_unsynced = true;
	rc = defrag_reopen(kv);
	if (rc != KV_OK) {
		char why[256];
		snprintf(why, sizeof(why), "%s", kv->errbuf);
		int back = rename(old, kv->path) == 0 ? defrag_reopen(kv) : KV_ERR_IO;
		if (keep >= 0)
			close(keep);
		if (back == KV_OK)
			return kv_set_error(kv, rc, "opening the defragmented store: %s", why);
		return rc;
	}
	unlink(old);
	*old_fd = keep;
	/* The copy holds what physical compaction had done when it was taken; steps since
	 * went to the old file, so where the walk stood means nothing here. Start it over:
	 * it is idempotent. */
	free(kv->compact_resume);
	kv->compact_resume = NULL;
	kv->compact_resume_len = 0;
	return KV_OK;
}
