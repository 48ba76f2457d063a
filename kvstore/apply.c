/* apply.c — the store's handle and its front door: open/close on LMDB, applying
 * committed Raft entries exactly once (data and consistent index in one write
 * transaction), checks before proposing, reads, HashKV, compaction steps and snapshots.
 * Never blocks on anything but LMDB; never applies an entry twice or out of order. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "kv_int.h"

static const char *const kv_err_text[] = {
	[0] = "ok",
	[-KV_ERR_COMPACTED] = "etcdserver: mvcc: required revision has been compacted",
	[-KV_ERR_FUTURE_REV] = "etcdserver: mvcc: required revision is a future revision",
	[-KV_ERR_EMPTY_KEY] = "etcdserver: key is not provided",
	[-KV_ERR_KEY_TOO_LARGE] = "etcdserver: key is too large",
	[-KV_ERR_KEY_NOT_FOUND] = "etcdserver: key not found",
	[-KV_ERR_VALUE_PROVIDED] = "etcdserver: value is provided",
	[-KV_ERR_LEASE_PROVIDED] = "etcdserver: lease is provided",
	[-KV_ERR_DUPLICATE_KEY] = "etcdserver: duplicate key given in txn request",
	[-KV_ERR_TOO_MANY_OPS] = "etcdserver: too many operations in txn request",
	[-KV_ERR_LEASE_NOT_FOUND] = "etcdserver: requested lease not found",
	[-KV_ERR_LEASE_EXISTS] = "etcdserver: lease already exists",
	[-KV_ERR_LEASE_TTL_TOO_LARGE] = "etcdserver: too large lease TTL",
	[-KV_ERR_NOT_PRIMARY] = "etcdserver: not a primary lessor",
	[-KV_ERR_BAD_REQUEST] = "etcdserver: malformed request in the log",
	[-KV_ERR_NOMEM] = "etcdserver: out of memory",
	[-KV_ERR_IO] = "etcdserver: storage failure",
	[-KV_ERR_CORRUPT] = "etcdserver: storage is corrupt",
	[-KV_ERR_LOCKED] = "etcdserver: database is locked by another process",
	[-KV_ERR_NO_SPACE] = "etcdserver: mvcc: database space exceeded",
	[-KV_ERR_WATCH_RANGE_EMPTY] = "mvcc: watcher range is empty",
	[-KV_ERR_QUOTA] = "etcdserver: mvcc: database space exceeded",
};

const char *kv_strerror(int err)
{
	if (err > 0 || (size_t)-err >= sizeof(kv_err_text) / sizeof(kv_err_text[0]) ||
	    !kv_err_text[-err])
		return "etcdserver: unknown error";
	return kv_err_text[-err];
}

static uint64_t kv_clock_zero(void *ctx)
{
	(void)ctx;
	return 0;
}

void kv_options_default(kv_options_t *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->map_size = (size_t)8 << 30;
	opt->max_txn_ops = KV_DEFAULT_MAX_TXN_OPS;
	opt->now_ms = kv_clock_zero;
	opt->min_lease_ttl = 5;
	opt->checkpoint_interval_ms = 5000;
	opt->watch_max_response_bytes = 3 * 512 * 1024;
	opt->watch_batch_events = 1000;
}

int64_t kv_revision(const kv_t *kv) { return kv->rev; }
int64_t kv_compact_revision(const kv_t *kv) { return kv->compact_rev; }
uint64_t kv_applied_index(const kv_t *kv) { return kv->cindex; }
uint64_t kv_applied_term(const kv_t *kv) { return kv->cterm; }
const char *kv_last_error(const kv_t *kv) { return kv->errbuf; }

/* ---- open and close -------------------------------------------------------------- */

static int kv_open_dbis(kv_t *kv, MDB_txn *txn)
{
	static const struct {
		const char *name;
		unsigned flags;
		size_t off;
	} dbs[] = {
		{ "rev", 0, offsetof(kv_t, dbi_rev) },
		{ "idx", MDB_DUPSORT, offsetof(kv_t, dbi_idx) },
		{ "meta", 0, offsetof(kv_t, dbi_meta) },
		{ "lease", 0, offsetof(kv_t, dbi_lease) },
		{ "lkeys", MDB_DUPSORT, offsetof(kv_t, dbi_lkeys) },
		{ "alarm", 0, offsetof(kv_t, dbi_alarm) },
		{ "members", 0, offsetof(kv_t, dbi_members) },
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)kv + dbs[i].off);
		int rc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | MDB_CREATE, dbi);
		if (rc != MDB_SUCCESS)
			return kv_from_mdb(kv, rc, dbs[i].name);
	}
	return KV_OK;
}

/* Loads revision, compaction and consistent index from "meta". */
static int kv_load_meta(kv_t *kv, MDB_txn *txn)
{
	uint64_t rev, compact, sched, cindex, cterm;
	int rc;
	if ((rc = kv_meta_get(kv, txn, "rev", &rev)) || (rc = kv_meta_get(kv, txn, "compact", &compact)) ||
	    (rc = kv_meta_get(kv, txn, "compact_sched", &sched)) ||
	    (rc = kv_meta_get(kv, txn, "cindex", &cindex)) ||
	    (rc = kv_meta_get(kv, txn, "cterm", &cterm)))
		return rc;
	/* A new store is at revision 1, as etcd's is: its first write is revision 2. */
	kv->rev = rev ? (int64_t)rev : 1;
	kv->compact_done = (int64_t)compact;
	kv->compact_rev = (int64_t)(sched > compact ? sched : compact);
	kv->cindex = cindex;
	kv->cterm = cterm;
	return KV_OK;
}

/* LMDB lets several processes share a file, and a second open in the same process
 * breaks the first one's locks; a member must be alone on its data, so the exclusive
 * flock comes before LMDB opens anything. */
static int kv_lock(kv_t *kv)
{
	kv->lock_fd = open(kv->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (kv->lock_fd < 0)
		return kv_set_error(kv, KV_ERR_IO, "%s: open: %s", kv->path, strerror(errno));
	if (flock(kv->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return KV_OK;
	int e = errno;
	close(kv->lock_fd);
	kv->lock_fd = -1;
	if (e == EWOULDBLOCK)
		return kv_set_error(kv, KV_ERR_LOCKED, "%s: locked by another process", kv->path);
	return kv_set_error(kv, KV_ERR_IO, "%s: flock: %s", kv->path, strerror(e));
}

int kv_env_open(kv_t *kv)
{
	int rc = kv_lock(kv);
	if (rc != KV_OK)
		return rc;
	rc = mdb_env_create(&kv->env);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "mdb_env_create");
	mdb_env_set_maxdbs(kv->env, 8);
	mdb_env_set_mapsize(kv->env, kv->opt.map_size);
	unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | (kv->opt.no_sync ? MDB_NOSYNC : MDB_NOMETASYNC);
	rc = mdb_env_open(kv->env, kv->path, flags, 0600);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "open");
	MDB_txn *txn;
	rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "begin");
	kv->alarm_mask = -1; /* a new file: maint.c reads its alarms again */
	/* After a snapshot install the lessor reloads in place: it keeps being primary and
	 * keeps its ID generator, so no lease ID is handed out twice. */
	if ((rc = kv_open_dbis(kv, txn)) || (rc = kv_load_meta(kv, txn)) ||
	    (rc = kv->lessor ? kv_lessor_reload(kv, txn) : kv_lessor_open(kv, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "commit");
	return KV_OK;
}

/* Closes LMDB and the lock; the lessor stays (kv_close frees it). */
void kv_env_close(kv_t *kv)
{
	if (kv->env)
		mdb_env_close(kv->env);
	kv->env = NULL;
	if (kv->lock_fd >= 0)
		close(kv->lock_fd);
	kv->lock_fd = -1;
}

int kv_open(const char *path, const kv_options_t *opt, kv_t **out, char *err, size_t errlen)
{
	kv_t *kv = calloc(1, sizeof(*kv));
	if (!kv || !(kv->path = strdup(path))) {
		free(kv);
		snprintf(err, errlen, "%s: out of memory", path);
		return KV_ERR_NOMEM;
	}
	kv->lock_fd = -1;
	kv_options_default(&kv->opt);
	if (opt)
		kv->opt = *opt;
	if (!kv->opt.now_ms)
		kv->opt.now_ms = kv_clock_zero;
	if (kv->opt.max_txn_ops <= 0)
		kv->opt.max_txn_ops = KV_DEFAULT_MAX_TXN_OPS;
	if (!kv->opt.map_size)
		kv->opt.map_size = (size_t)8 << 30;
	if (!kv->opt.watch_batch_events)
		kv->opt.watch_batch_events = 1000;
	if (!kv->opt.watch_max_response_bytes)
		kv->opt.watch_max_response_bytes = 3 * 512 * 1024;
	int rc = kv_env_open(kv);
	if (rc == KV_OK)
		rc = kv_hub_new(kv);
	if (rc != KV_OK) {
		snprintf(err, errlen, "%s", kv->errbuf[0] ? kv->errbuf : kv_strerror(rc));
		kv_env_close(kv);
		kv_lessor_close(kv);
		free(kv->path);
		free(kv);
		return rc;
	}
	*out = kv;
	return KV_OK;
}

void kv_close(kv_t *kv)
{
	if (!kv)
		return;
	kv_hub_free(kv);
	kv_env_close(kv);
	kv_lessor_close(kv);
	free(kv->compact_resume);
	free(kv->path);
	free(kv);
}

/* After a snapshot install failed to reopen the store, the handle has no LMDB env: every
 * call that needs one says so instead of handing LMDB a NULL. */
static int kv_need_env(kv_t *kv)
{
	if (kv->env)
		return KV_OK;
	return kv_set_error(kv, KV_ERR_IO, "%s: closed after a failed snapshot install",
			    kv->path);
}

static void kv_fsync_dir(const char *path);

int kv_sync(kv_t *kv)
{
	int rc = kv_need_env(kv);
	if (rc == KV_OK)
		rc = kv_from_mdb(kv, mdb_env_sync(kv->env, 1), "sync");
	if (rc == KV_OK && kv->rename_unsynced) {
		kv_fsync_dir(kv->path);
		kv->rename_unsynced = false;
	}
	return rc;
}

/* ---- apply ----------------------------------------------------------------------- */

static void *kv_resp_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

/* Runs one decoded request inside the batch's transaction. *resp gets the response. */
static int kv_dispatch(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req,
		       ProtobufCMessage **resp)
{
	const ProtobufCMessageDescriptor *d;
	int rc;
	if (req->alarm)
		return kv_alarm_dispatch(w, req, resp);
	if ((rc = kv_alarm_capped(w, req)) != KV_OK)
		return rc;
	if (req->put)
		d = &etcdserverpb__put_response__descriptor;
	else if (req->delete_range)
		d = &etcdserverpb__delete_range_response__descriptor;
	else if (req->txn)
		d = &etcdserverpb__txn_response__descriptor;
	else if (req->compaction)
		d = &etcdserverpb__compaction_response__descriptor;
	else if (req->lease_grant)
		d = &etcdserverpb__lease_grant_response__descriptor;
	else if (req->lease_revoke)
		d = &etcdserverpb__lease_revoke_response__descriptor;
	else if (req->lease_checkpoint)
		d = &etcdserverpb__lease_checkpoint_response__descriptor;
	else
		return KV_ERR_BAD_REQUEST;
	ProtobufCMessage *m = kv_resp_new(d);
	if (!m)
		return KV_ERR_NOMEM;
	if (req->put)
		rc = mvcc_put(w, req->put, (Etcdserverpb__PutResponse *)m);
	else if (req->delete_range)
		rc = mvcc_delete_range(w, req->delete_range, (Etcdserverpb__DeleteRangeResponse *)m);
	else if (req->txn)
		rc = mvcc_txn(w, req->txn, (Etcdserverpb__TxnResponse *)m);
	else if (req->compaction)
		rc = mvcc_compact(w, req->compaction);
	else if (req->lease_grant)
		rc = kv_lessor_grant(w, req->lease_grant, (Etcdserverpb__LeaseGrantResponse *)m);
	else if (req->lease_revoke)
		rc = kv_lessor_revoke(w, req->lease_revoke);
	else
		rc = kv_lessor_checkpoint(w, req->lease_checkpoint);
	if (rc != KV_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*resp = m;
	return KV_OK;
}

static bool kv_is_storage_error(int rc)
{
	return rc == KV_ERR_NOMEM || rc == KV_ERR_IO || rc == KV_ERR_CORRUPT ||
	       rc == KV_ERR_NO_SPACE;
}

/* The response header: revision as of right after the request. */
static int kv_set_header(ProtobufCMessage *m, int64_t rev)
{
	/* Every response of kv_dispatch has its header as the first field. */
	const ProtobufCFieldDescriptor *f = &m->descriptor->fields[0];
	if (strcmp(f->name, "header") != 0)
		return KV_OK;
	Etcdserverpb__ResponseHeader **h = (Etcdserverpb__ResponseHeader **)((char *)m + f->offset);
	if (!*h && !(*h = kv_header_new(rev)))
		return KV_ERR_NOMEM;
	(*h)->revision = rev;
	return KV_OK;
}

/* Applies one request. Puts, deletes and lease requests find every request-level error
 * (a missing lease, ignore_value on a missing key) before they write, so they run in the
 * batch's transaction; a txn can fail in its third op after two wrote, and a compaction
 * moves in-memory state, so those run in a nested transaction that an error aborts.
 * Storage errors return (the batch aborts); request errors go into res->err and leave
 * nothing behind. */
static int kv_apply_one(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req,
			kv_result_t *res)
{
	kv_t *kv = w->kv;
	bool nested = req->txn || req->compaction;
	MDB_txn *parent = w->txn, *child = NULL;
	int rc;
	if (nested) {
		rc = mdb_txn_begin(kv->env, parent, 0, &child);
		if (rc != MDB_SUCCESS)
			return kv_from_mdb(kv, rc, "begin request");
		w->txn = child;
	}
	size_t n_events = w->events.n;
	int64_t compact_rev = kv->compact_rev, rev_before = w->rev;
	w->main = 0;
	w->sub = 0;
	ProtobufCMessage *resp = NULL;
	rc = kv_dispatch(w, req, &resp);
	w->txn = parent;
	if (rc == KV_OK && w->main)
		w->rev = w->main;
	if (rc == KV_OK)
		rc = kv_set_header(resp, w->rev);
	if (rc == KV_OK && child) {
		int mrc = mdb_txn_commit(child);
		child = NULL; /* LMDB frees it, committed or not */
		if (mrc != MDB_SUCCESS)
			rc = kv_from_mdb(kv, mrc, "commit request");
	}
	if (rc == KV_OK) {
		res->resp = resp;
		res->revision = w->rev;
		return KV_OK;
	}
	if (child)
		mdb_txn_abort(child);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	kv->compact_rev = compact_rev;
	while (w->events.n > n_events) {
		Mvccpb__Event *ev = w->events.ev[--w->events.n];
		protobuf_c_message_free_unpacked(&ev->base, NULL);
	}
	w->rev = rev_before;
	if (kv_is_storage_error(rc))
		return rc;
	if (!nested && w->sub)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: a request failed (%s) after it wrote",
				    kv->path, kv_strerror(rc));
	w->main = 0;
	res->err = rc;
	res->revision = w->rev;
	return KV_OK;
}

static int kv_apply_entry(kv_wtxn_t *w, const raft_entry_t *e, kv_result_t *res)
{
	memset(res, 0, sizeof(*res));
	res->index = e->index;
	res->entry = e;
	res->revision = w->rev;
	if (e->type == RAFT_ENTRY_CONF_CHANGE)
		return kv_members_apply(w, e, res);
	if (e->type != RAFT_ENTRY_NORMAL || e->data.len == 0)
		return KV_OK;
	Etcdserverpb__InternalRaftRequest *req =
		etcdserverpb__internal_raft_request__unpack(NULL, e->data.len, e->data.data);
	if (!req) {
		res->err = KV_ERR_BAD_REQUEST;
		return KV_OK;
	}
	res->id = req->header ? req->header->id : req->id;
	int rc = kv_apply_one(w, req, res);
	etcdserverpb__internal_raft_request__free_unpacked(req, NULL);
	return rc;
}

static int kv_wtxn_begin(kv_t *kv, kv_wtxn_t *w)
{
	memset(w, 0, sizeof(*w));
	w->kv = kv;
	w->rev = kv->rev;
	w->want_events = kv_hub_wants_events(kv);
	w->want_prev = w->want_events && kv_hub_wants_prev(kv);
	int rc = kv_need_env(kv);
	return rc ? rc : kv_from_mdb(kv, mdb_txn_begin(kv->env, NULL, 0, &w->txn), "begin apply");
}

/* Commits the batch with the consistent index of its last entry; on failure nothing of
 * the batch stays, in LMDB or in memory. */
static int kv_wtxn_commit(kv_wtxn_t *w, uint64_t index, uint64_t term, int64_t compact_before)
{
	kv_t *kv = w->kv;
	int rc = kv_meta_put(kv, w->txn, "cindex", index);
	if (rc == KV_OK && w->rev != kv->rev)
		rc = kv_meta_put(kv, w->txn, "rev", (uint64_t)w->rev);
	if (rc == KV_OK)
		rc = kv_meta_put(kv, w->txn, "cterm", term);
	if (rc == KV_OK)
		rc = kv_from_mdb(kv, mdb_txn_commit(w->txn), "commit apply");
	else
		mdb_txn_abort(w->txn);
	w->txn = NULL;
	kv_lessor_commit(kv, rc == KV_OK);
	if (rc != KV_OK) {
		kv->compact_rev = compact_before;
		return rc;
	}
	kv->rev = w->rev;
	kv->cindex = index;
	kv->cterm = term;
	return KV_OK;
}

static void kv_wtxn_abort(kv_wtxn_t *w, int64_t compact_before)
{
	if (w->txn)
		mdb_txn_abort(w->txn);
	w->txn = NULL;
	kv_lessor_commit(w->kv, false);
	w->kv->compact_rev = compact_before;
	kv_events_clear(&w->events);
	free(w->events.ev);
}

/* After a commit: results to their owners, then events to watchers. */
static void kv_wtxn_publish(kv_wtxn_t *w, int64_t compact_before)
{
	kv_t *kv = w->kv;
	if (kv->compact_rev != compact_before)
		kv_hub_compacted(kv, kv->compact_rev);
	kv_hub_notify(kv, &w->events, kv->rev);
	kv_events_clear(&w->events);
	free(w->events.ev);
}

int kv_apply(kv_t *kv, raft_entry_t *const *ents, size_t n, kv_applied_fn cb, void *ud)
{
	size_t first = 0;
	while (first < n && ents[first]->index <= kv->cindex)
		first++;
	if (first == n)
		return KV_OK;
	kv_result_t *res = calloc(n - first, sizeof(*res));
	if (!res)
		return KV_ERR_NOMEM;
	int64_t compact_before = kv->compact_rev;
	kv_wtxn_t w;
	int rc = kv_wtxn_begin(kv, &w);
	for (size_t i = first; rc == KV_OK && i < n; i++)
		rc = kv_apply_entry(&w, ents[i], &res[i - first]);
	if (rc == KV_OK)
		rc = kv_wtxn_commit(&w, ents[n - 1]->index, ents[n - 1]->term, compact_before);
	if (rc != KV_OK) {
		for (size_t i = 0; i < n - first; i++)
			if (res[i].resp)
				protobuf_c_message_free_unpacked(res[i].resp, NULL);
		free(res);
		kv_wtxn_abort(&w, compact_before);
		return rc;
	}
	for (size_t i = 0; i < n - first; i++) {
		if (cb)
			cb(ud, &res[i]);
		else if (res[i].resp)
			protobuf_c_message_free_unpacked(res[i].resp, NULL);
	}
	free(res);
	kv_wtxn_publish(&w, compact_before);
	return KV_OK;
}

int kv_apply_request(kv_t *kv, uint64_t index, uint64_t term,
		     const Etcdserverpb__InternalRaftRequest *req, kv_result_t *res)
{
	memset(res, 0, sizeof(*res));
	res->index = index;
	res->id = req->header ? req->header->id : req->id;
	res->revision = kv->rev;
	if (index <= kv->cindex)
		return KV_OK;
	int64_t compact_before = kv->compact_rev;
	kv_wtxn_t w;
	int rc = kv_wtxn_begin(kv, &w);
	if (rc == KV_OK)
		rc = kv_apply_one(&w, req, res);
	if (rc == KV_OK)
		rc = kv_wtxn_commit(&w, index, term, compact_before);
	if (rc != KV_OK) {
		if (res->resp)
			protobuf_c_message_free_unpacked(res->resp, NULL);
		res->resp = NULL;
		kv_wtxn_abort(&w, compact_before);
		return rc;
	}
	kv_wtxn_publish(&w, compact_before);
	return KV_OK;
}

/* ---- checks before proposing ----------------------------------------------------- */

/* Only a write that would store a key needs it to fit LMDB; reading or deleting a key
 * too long to exist simply finds nothing, as etcd would. */
static int kv_check_key(const ProtobufCBinaryData *key)
{
	return key->len == 0 ? KV_ERR_EMPTY_KEY : KV_OK;
}

static int kv_check_put(const Etcdserverpb__PutRequest *p)
{
	int rc = kv_check_key(&p->key);
	if (rc != KV_OK)
		return rc;
	if (p->key.len > KV_MAX_KEY_SIZE)
		return KV_ERR_KEY_TOO_LARGE;
	if (p->ignore_value && p->value.len)
		return KV_ERR_VALUE_PROVIDED;
	if (p->ignore_lease && p->lease)
		return KV_ERR_LEASE_PROVIDED;
	return KV_OK;
}

static int kv_check_txn_ops(const Etcdserverpb__TxnRequest *t);

static int kv_check_op(const Etcdserverpb__RequestOp *op)
{
	switch (op->request_case) {
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
		return kv_check_key(&op->request_range->key);
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
		return kv_check_put(op->request_put);
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
		return kv_check_key(&op->request_delete_range->key);
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
		return kv_check_txn_ops(op->request_txn);
	default:
		return KV_ERR_BAD_REQUEST;
	}
}

static int kv_check_txn_ops(const Etcdserverpb__TxnRequest *t)
{
	for (size_t i = 0; i < t->n_compare; i++) {
		int rc = kv_check_key(&t->compare[i]->key);
		if (rc != KV_OK)
			return rc;
	}
	for (size_t i = 0; i < t->n_success; i++) {
		int rc = kv_check_op(t->success[i]);
		if (rc != KV_OK)
			return rc;
	}
	for (size_t i = 0; i < t->n_failure; i++) {
		int rc = kv_check_op(t->failure[i]);
		if (rc != KV_OK)
			return rc;
	}
	return KV_OK;
}

int kv_check_request(const kv_t *kv, const Etcdserverpb__InternalRaftRequest *req)
{
	if (req->put)
		return kv_check_put(req->put);
	if (req->delete_range)
		return kv_check_key(&req->delete_range->key);
	if (req->range)
		return kv_check_key(&req->range->key);
	if (req->txn) {
		int rc = mvcc_check_txn(req->txn, kv->opt.max_txn_ops);
		return rc != KV_OK ? rc : kv_check_txn_ops(req->txn);
	}
	if (req->lease_grant)
		return req->lease_grant->ttl > KV_MAX_LEASE_TTL ? KV_ERR_LEASE_TTL_TOO_LARGE : KV_OK;
	if (req->compaction || req->lease_revoke || req->lease_checkpoint)
		return KV_OK;
	return KV_ERR_BAD_REQUEST;
}

/* ---- reads ----------------------------------------------------------------------- */

/* A read transaction with the revision it sees (not kv->rev: another thread may be
 * applying). */
int kv_read_begin(kv_t *kv, MDB_txn **txn, int64_t *cur)
{
	int rc = kv_need_env(kv);
	if (rc != KV_OK)
		return rc;
	rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, txn);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "begin read");
	uint64_t rev;
	rc = kv_meta_get(kv, *txn, "rev", &rev);
	if (rc != KV_OK) {
		mdb_txn_abort(*txn);
		return rc;
	}
	*cur = rev ? (int64_t)rev : 1;
	return KV_OK;
}

int kv_range(kv_t *kv, const Etcdserverpb__RangeRequest *req, Etcdserverpb__RangeResponse **out)
{
	*out = NULL;
	MDB_txn *txn;
	int64_t cur;
	int rc = kv_read_begin(kv, &txn, &cur);
	if (rc != KV_OK)
		return rc;
	Etcdserverpb__RangeResponse *resp = kv_resp_new(&etcdserverpb__range_response__descriptor);
	rc = resp ? mvcc_range(kv, txn, cur, req, resp) : KV_ERR_NOMEM;
	mdb_txn_abort(txn);
	if (rc == KV_OK && !resp->header && !(resp->header = kv_header_new(cur)))
		rc = KV_ERR_NOMEM;
	if (rc != KV_OK) {
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		return rc;
	}
	resp->header->revision = cur;
	*out = resp;
	return KV_OK;
}

int kv_hash_kv(kv_t *kv, int64_t rev, uint32_t *hash, int64_t *compact_rev, int64_t *hash_rev)
{
	MDB_txn *txn;
	int64_t cur;
	int rc = kv_read_begin(kv, &txn, &cur);
	if (rc != KV_OK)
		return rc;
	/* The compaction as of this snapshot, not kv->compact_rev: apply may be running. */
	uint64_t compact;
	if ((rc = kv_meta_get(kv, txn, "compact_sched", &compact)) != KV_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	if (rev <= 0)
		rev = cur;
	*compact_rev = (int64_t)compact;
	*hash_rev = rev;
	if (rev > cur)
		rc = KV_ERR_FUTURE_REV;
	else if (rev < (int64_t)compact)
		rc = KV_ERR_COMPACTED;
	else
		rc = mvcc_hash(kv, txn, rev, hash);
	mdb_txn_abort(txn);
	return rc;
}

/* ---- physical compaction --------------------------------------------------------- */

bool kv_compact_pending(const kv_t *kv)
{
	return kv->compact_done < kv->compact_rev;
}

int kv_compact_step(kv_t *kv, size_t max_keys, bool *done)
{
	*done = !kv_compact_pending(kv);
	if (*done)
		return KV_OK;
	MDB_txn *txn;
	int rc = kv_need_env(kv);
	if (rc != KV_OK)
		return rc;
	rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "begin compaction");
	uint8_t *next = NULL;
	size_t next_len = 0;
	int64_t upto = kv->compact_rev;
	rc = mvcc_compact_step(kv, txn, upto, kv->compact_resume, kv->compact_resume_len,
			       max_keys ? max_keys : 1000, &next, &next_len, done);
	if (rc == KV_OK && *done)
		rc = kv_meta_put(kv, txn, "compact", (uint64_t)upto);
	if (rc == KV_OK)
		rc = kv_from_mdb(kv, mdb_txn_commit(txn), "commit compaction");
	else
		mdb_txn_abort(txn);
	if (rc != KV_OK) {
		free(next);
		*done = false;
		return rc;
	}
	free(kv->compact_resume);
	kv->compact_resume = *done ? NULL : next;
	kv->compact_resume_len = *done ? 0 : next_len;
	if (*done) {
		free(next);
		kv->compact_done = upto;
		*done = !kv_compact_pending(kv);
	}
	return KV_OK;
}

/* ---- snapshots of the state machine ---------------------------------------------- */

int kv_snapshot_save(kv_t *kv, const char *path)
{
	int rc = kv_need_env(kv);
	if (rc != KV_OK)
		return rc;
	rc = mdb_env_copy2(kv->env, path, MDB_CP_COMPACT);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, path);
	if (kv->opt.no_sync)
		return KV_OK;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return kv_set_error(kv, KV_ERR_IO, "%s: fsync: %s", path, strerror(e));
	}
	close(fd);
	return KV_OK;
}

/* Makes a rename in the directory of path durable. */
static void kv_fsync_dir(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Opens LMDB again after kv_env_close; on failure the handle is left without an env
 * (kv_need_env), never half open. */
static int kv_env_reopen(kv_t *kv)
{
	int rc = kv_env_open(kv);
	if (rc != KV_OK)
		kv_env_close(kv);
	return rc;
}

int kv_snapshot_install(kv_t *kv, const char *path)
{
	int rc = kv_need_env(kv);
	if (rc != KV_OK)
		return rc;
	kv_env_close(kv);
	char lock[4096];
	snprintf(lock, sizeof(lock), "%s-lock", kv->path);
	if (rename(path, kv->path) != 0) {
		int e = errno;
		if ((rc = kv_env_reopen(kv)) != KV_OK)
			return rc;
		return kv_set_error(kv, KV_ERR_IO, "rename %s to %s: %s", path, kv->path, strerror(e));
	}
	unlink(lock);
	if (!kv->opt.no_sync)
		kv_fsync_dir(kv->path);
	free(kv->compact_resume);
	kv->compact_resume = NULL;
	kv->compact_resume_len = 0;
	if ((rc = kv_env_reopen(kv)) != KV_OK)
		return rc;
	kv_hub_reset(kv);
	return KV_OK;
}
