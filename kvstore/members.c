/* kvstore/members.c — the cluster's membership as replicated state: the "members" db,
 * changed only by conf-change entries inside the apply transaction that also moves the
 * consistent index, so it is exactly-once, in every store snapshot, and survives restarts.
 * Never trusts an entry it did not check: a change that makes no sense changes nothing.
 *
 * Keys of "members" (9 bytes: a tag, then the member id big-endian, so LMDB's order is id
 * order, the order etcd lists members in):
 *   'm' id  a member: a packed Etcdserverpb.Member (id, name when known from the
 *           bootstrap configuration, peer URLs, isLearner; never client URLs, which are
 *           each running member's own news)
 *   'r' id  a removed member (empty value): etcd refuses a removed id forever
 *   'b' id  the bootstrap configuration's record of a first member (kv_members_bootstrap):
 *           the raft core writes those members' conf changes without a context, so their
 *           attributes come from here. The same on every member (one --initial-cluster).
 *
 * A conf change's context is a packed InternalRaftRequest: header.ID (the proposal's id,
 * so the proposer finds its answer) and keel_member (the member the change is about). */
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

enum { TAG_MEMBER = 'm', TAG_REMOVED = 'r', TAG_BOOT = 'b' };
#define MEMBER_KEY_LEN 9
#define MEMBER_MAX_URLS 64 /* a context with more peer URLs is not one keeld wrote */

static MDB_val member_key(uint8_t buf[MEMBER_KEY_LEN], uint8_t tag, uint64_t id)
{
	buf[0] = tag;
	kv_put_be64(buf + 1, id);
	return (MDB_val){MEMBER_KEY_LEN, buf};
}

/* The record under (tag, id): *out is NULL when there is none. */
static int member_get(kv_t *kv, MDB_txn *txn, uint8_t tag, uint64_t id,
		      Etcdserverpb__Member **out)
{
	uint8_t kb[MEMBER_KEY_LEN];
	MDB_val k = member_key(kb, tag, id), v;
	*out = NULL;
	int rc = mdb_get(txn, kv->dbi_members, &k, &v);
	if (rc == MDB_NOTFOUND)
		return KV_OK;
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "members get");
	*out = etcdserverpb__member__unpack(NULL, v.mv_size, v.mv_data);
	if (!*out || (*out)->id != id)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: member %016llx: bad record", kv->path,
				    (unsigned long long)id);
	return KV_OK;
}

static int member_exists(kv_t *kv, MDB_txn *txn, uint8_t tag, uint64_t id, bool *yes)
{
	uint8_t kb[MEMBER_KEY_LEN];
	MDB_val k = member_key(kb, tag, id), v;
	int rc = mdb_get(txn, kv->dbi_members, &k, &v);
	*yes = rc == MDB_SUCCESS;
	return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "members get");
}

static int member_put(kv_t *kv, MDB_txn *txn, uint8_t tag, const Etcdserverpb__Member *m)
{
	uint8_t kb[MEMBER_KEY_LEN];
	MDB_val k = member_key(kb, tag, m->id);
	/* Client URLs are never stored: a running member tells them itself. */
	Etcdserverpb__Member rec = *m;
	rec.n_clienturls = 0;
	rec.clienturls = NULL;
	size_t len = etcdserverpb__member__get_packed_size(&rec);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return KV_ERR_NOMEM;
	etcdserverpb__member__pack(&rec, buf);
	MDB_val v = {len, buf};
	int rc = mdb_put(txn, kv->dbi_members, &k, &v, 0);
	free(buf);
	return kv_from_mdb(kv, rc, "members put");
}

static int member_del(kv_t *kv, MDB_txn *txn, uint8_t tag, uint64_t id)
{
	uint8_t kb[MEMBER_KEY_LEN];
	MDB_val k = member_key(kb, tag, id);
	int rc = mdb_del(txn, kv->dbi_members, &k, NULL);
	return rc == MDB_NOTFOUND ? KV_OK : kv_from_mdb(kv, rc, "members del");
}

static int removed_put(kv_t *kv, MDB_txn *txn, uint64_t id)
{
	uint8_t kb[MEMBER_KEY_LEN];
	MDB_val k = member_key(kb, TAG_REMOVED, id), v = {0, NULL};
	return kv_from_mdb(kv, mdb_put(txn, kv->dbi_members, &k, &v, 0), "members put");
}

/* Every member record, in id order, into a malloc'd list response. */
static int members_collect(kv_t *kv, MDB_txn *txn, int64_t rev,
			   Etcdserverpb__MemberListResponse **out)
{
	Etcdserverpb__MemberListResponse *r = malloc(sizeof(*r));
	if (!r)
		return KV_ERR_NOMEM;
	etcdserverpb__member_list_response__init(r);
	int rc = (r->header = kv_header_new(rev)) ? KV_OK : KV_ERR_NOMEM;
	MDB_cursor *cur = NULL;
	if (rc == KV_OK)
		rc = kv_from_mdb(kv, mdb_cursor_open(txn, kv->dbi_members, &cur), "members cursor");
	uint8_t first = TAG_MEMBER;
	MDB_val k = {1, &first}, v;
	size_t cap = 0;
	for (int op = MDB_SET_RANGE; rc == KV_OK; op = MDB_NEXT) {
		int mrc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
		if (mrc == MDB_NOTFOUND)
			break;
		if (mrc != MDB_SUCCESS) {
			rc = kv_from_mdb(kv, mrc, "members next");
			break;
		}
		if (k.mv_size != MEMBER_KEY_LEN || ((uint8_t *)k.mv_data)[0] != TAG_MEMBER)
			break;
		if (r->n_members == cap) {
			size_t nc = cap ? 2 * cap : 8;
			Etcdserverpb__Member **nm = realloc(r->members, nc * sizeof(*nm));
			if (!nm) {
				rc = KV_ERR_NOMEM;
				break;
			}
			r->members = nm;
			cap = nc;
		}
		Etcdserverpb__Member *m = etcdserverpb__member__unpack(NULL, v.mv_size, v.mv_data);
		if (!m || m->id != kv_get_be64((uint8_t *)k.mv_data + 1)) {
			if (m)
				etcdserverpb__member__free_unpacked(m, NULL);
			rc = kv_set_error(kv, KV_ERR_CORRUPT, "%s: a member record does not decode",
					  kv->path);
			break;
		}
		r->members[r->n_members++] = m;
	}
	if (cur)
		mdb_cursor_close(cur);
	if (rc != KV_OK) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rc;
	}
	*out = r;
	return KV_OK;
}

/* ---- the context of a conf change ------------------------------------------------- */

int kv_members_pack_context(uint64_t req_id, const Etcdserverpb__Member *m, uint8_t **out,
			    size_t *len)
{
	Etcdserverpb__RequestHeader h = ETCDSERVERPB__REQUEST_HEADER__INIT;
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	h.id = req_id;
	ir.header = &h;
	ir.keel_member = (Etcdserverpb__Member *)m;
	*len = etcdserverpb__internal_raft_request__get_packed_size(&ir);
	*out = malloc(*len ? *len : 1);
	if (!*out)
		return KV_ERR_NOMEM;
	etcdserverpb__internal_raft_request__pack(&ir, *out);
	return KV_OK;
}

/* What a context must be: a request naming the change's own member, with sane URLs. */
static bool context_ok(const Etcdserverpb__InternalRaftRequest *ir, uint64_t node_id)
{
	const Etcdserverpb__Member *m = ir->keel_member;
	if (!m || m->id != node_id || m->n_peerurls > MEMBER_MAX_URLS)
		return false;
	for (size_t i = 0; i < m->n_peerurls; i++)
		if (!m->peerurls[i] || !m->peerurls[i][0])
			return false;
	return true;
}

/* A new member's record: the context's peer URLs, else the bootstrap configuration's
 * record, else the id alone (a first member the configuration did not name). */
static int member_new(kv_t *kv, MDB_txn *txn, const Etcdserverpb__Member *ctx, uint64_t id,
		      bool learner)
{
	Etcdserverpb__Member *boot = NULL, bare = ETCDSERVERPB__MEMBER__INIT;
	int rc = ctx ? KV_OK : member_get(kv, txn, TAG_BOOT, id, &boot);
	if (rc == KV_OK) {
		Etcdserverpb__Member rec = ctx ? *ctx : boot ? *boot : bare;
		rec.id = id;
		rec.islearner = learner;
		if (ctx)
			rec.name = (char *)""; /* named when it starts and says so, as in etcd */
		rc = member_put(kv, txn, TAG_MEMBER, &rec);
	}
	if (boot)
		etcdserverpb__member__free_unpacked(boot, NULL);
	return rc;
}

/* Checks the change against the members as they are, then makes it. Returns a storage
 * error, or KV_OK with *refused set when the change makes no sense (nothing written). */
static int members_change(kv_t *kv, MDB_txn *txn, const raft_conf_change_t *cc,
			  const Etcdserverpb__Member *ctx, bool *refused)
{
	uint64_t id = cc->node_id;
	Etcdserverpb__Member *cur = NULL;
	bool removed;
	int rc = member_exists(kv, txn, TAG_REMOVED, id, &removed);
	if (rc == KV_OK)
		rc = member_get(kv, txn, TAG_MEMBER, id, &cur);
	if (rc != KV_OK)
		return rc;
	*refused = true;
	switch ((int)cc->type) {
	case RAFT_CONF_ADD_NODE:
		if (removed || (cur && !cur->islearner))
			break;
		*refused = false;
		if (cur) { /* a learner's promotion keeps everything else */
			cur->islearner = false;
			rc = member_put(kv, txn, TAG_MEMBER, cur);
		} else {
			rc = member_new(kv, txn, ctx, id, false);
		}
		break;
	case RAFT_CONF_ADD_LEARNER:
		if (removed || cur)
			break;
		*refused = false;
		rc = member_new(kv, txn, ctx, id, true);
		break;
	case RAFT_CONF_REMOVE_NODE:
		if (!cur)
			break;
		*refused = false;
		rc = member_del(kv, txn, TAG_MEMBER, id);
		if (rc == KV_OK)
			rc = removed_put(kv, txn, id);
		break;
	case RAFT_CONF_UPDATE_NODE:
		if (!cur || !ctx)
			break;
		*refused = false;
		Etcdserverpb__Member rec = *cur;
		rec.n_peerurls = ctx->n_peerurls;
		rec.peerurls = ctx->peerurls;
		rc = member_put(kv, txn, TAG_MEMBER, &rec);
		break;
	default:
		break;
	}
	if (cur)
		etcdserverpb__member__free_unpacked(cur, NULL);
	return rc;
}

int kv_members_apply(kv_wtxn_t *w, const raft_entry_t *e, kv_result_t *res)
{
	kv_t *kv = w->kv;
	raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, e->data.len, e->data.data);
	Etcdserverpb__InternalRaftRequest *ir = NULL;
	int rc = KV_OK;
	bool refused = true;
	if (cc && cc->context.len) {
		ir = etcdserverpb__internal_raft_request__unpack(NULL, cc->context.len,
								 cc->context.data);
		if (ir && ir->header)
			res->id = ir->header->id;
	}
	if (cc && cc->node_id != RAFT_NONE && (!cc->context.len || (ir && context_ok(ir, cc->node_id))))
		rc = members_change(kv, w->txn, cc, ir ? ir->keel_member : NULL, &refused);
	if (rc == KV_OK && refused)
		res->err = KV_ERR_BAD_REQUEST;
	Etcdserverpb__MemberListResponse *list = NULL;
	if (rc == KV_OK && !refused && (rc = members_collect(kv, w->txn, w->rev, &list)) == KV_OK)
		res->resp = &list->base;
	if (ir)
		etcdserverpb__internal_raft_request__free_unpacked(ir, NULL);
	if (cc)
		raftpb__conf_change__free_unpacked(cc, NULL);
	return rc;
}

/* ---- outside apply ---------------------------------------------------------------- */

static int members_need_env(kv_t *kv)
{
	if (kv->env)
		return KV_OK;
	return kv_set_error(kv, KV_ERR_IO, "%s: closed after a failed snapshot install", kv->path);
}

static int members_read_begin(kv_t *kv, MDB_txn **txn)
{
	int rc = members_need_env(kv);
	if (rc != KV_OK)
		return rc;
	return kv_from_mdb(kv, mdb_txn_begin(kv->env, NULL, MDB_RDONLY, txn), "begin read");
}

int kv_members_bootstrap(kv_t *kv, Etcdserverpb__Member *const *ms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!ms[i] || ms[i]->id == RAFT_NONE)
			return KV_ERR_BAD_REQUEST;
	int rc = members_need_env(kv);
	if (rc != KV_OK)
		return rc;
	MDB_txn *txn;
	rc = kv_from_mdb(kv, mdb_txn_begin(kv->env, NULL, 0, &txn), "begin bootstrap");
	if (rc != KV_OK)
		return rc;
	for (size_t i = 0; rc == KV_OK && i < n; i++) {
		Etcdserverpb__Member rec = *ms[i];
		rec.islearner = false;
		rc = member_put(kv, txn, TAG_BOOT, &rec);
	}
	if (rc != KV_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	return kv_from_mdb(kv, mdb_txn_commit(txn), "commit bootstrap");
}

int kv_members_list(kv_t *kv, Etcdserverpb__MemberListResponse **out)
{
	*out = NULL;
	MDB_txn *txn;
	int rc = members_read_begin(kv, &txn);
	if (rc != KV_OK)
		return rc;
	rc = members_collect(kv, txn, 0, out);
	mdb_txn_abort(txn);
	return rc;
}

int kv_member_removed(kv_t *kv, uint64_t id, bool *removed)
{
	*removed = false;
	MDB_txn *txn;
	int rc = members_read_begin(kv, &txn);
	if (rc != KV_OK)
		return rc;
	rc = member_exists(kv, txn, TAG_REMOVED, id, removed);
	mdb_txn_abort(txn);
	return rc;
}
