/* server/svc_maint.c — etcd's Maintenance service on keeld, but for the Snapshot stream
 * (svc_snapshot.c): Status, Hash, HashKV, Alarm, Defragment, MoveLeader, and the quota
 * check of the write path. Defragmentation copies the store on a worker while the member
 * serves, catches the copy up from the log on the loop in short steps, and swaps it in
 * when raft is not held; it never stops reads or writes for longer than one such step.
 * Nothing here calls into raft while it is held (see node.c's top comment). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keeld.h"
#include "svc.h"

#define NOSPACE_TEXT "etcdserver: mvcc: database space exceeded"
#define DEFRAG_POLL_MS 1          /* how soon a waiting catch-up step looks again */
#define DEFRAG_STEP_ENTRIES 128   /* entries applied to the copy per batch */
#define DEFRAG_STEP_US 2000       /* a catch-up step gives the loop back after this */
#define DEFRAG_COMPACT_WAIT_MS 30000 /* longest wait for a physical compaction under way */
#define TRANSFER_TIMEOUT_TEXT "etcdserver: request timed out, leader transfer took too long"

static uint64_t svc_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- Status ---------------------------------------------------------------------------- */

/* An alarm as etcd's Status lists it: gogo-protobuf's compact text of the AlarmMember,
 * where a field at its zero value is left out and every field ends with a space. */
static void status_alarm_text(const Etcdserverpb__AlarmMember *m, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	if (m->memberid)
		off += (size_t)snprintf(buf, len, "memberID:%llu ",
					(unsigned long long)m->memberid);
	if (m->alarm && off < len) {
		const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
			&etcdserverpb__alarm_type__descriptor, (int)m->alarm);
		if (v)
			snprintf(buf + off, len - off, "alarm:%s ", v->name);
		else
			snprintf(buf + off, len - off, "alarm:%d ", (int)m->alarm);
	}
}

/* The applied configuration, as etcd answers from its applied membership. Never
 * raft_status here: it reads the log's bounds from the storage, which the disk worker
 * changes (appends, installs a snapshot, compacts) while raft is held. */
static bool status_is_learner(keeld_t *s, uint64_t id)
{
	raft_conf_t conf;
	raft_applied_conf(s->raft, &conf);
	return raft_conf_is_learner(&conf, id);
}

void svc_status_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__status_request__descriptor, msg,
					   len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	resp.header = &hdr;
	resp.version = (char *)KEELD_API_VERSION;
	int64_t size = 0, in_use = 0;
	if (kv_db_size(s->kv, &size, &in_use) == KV_OK) {
		resp.dbsize = size;
		resp.dbsizeinuse = in_use;
	}
	resp.leader = s->lead;
	resp.raftindex = s->commit;
	resp.raftterm = s->term;
	resp.raftappliedindex = s->applied;
	resp.islearner = status_is_learner(s, s->id);

	Etcdserverpb__AlarmMember **alarms = NULL;
	size_t n_alarms = 0;
	if (kv_alarm_list(s->kv, ETCDSERVERPB__ALARM_TYPE__NONE, &alarms, &n_alarms) != KV_OK)
		n_alarms = 0;
	char **errors = calloc(n_alarms + 1, sizeof(*errors));
	char (*texts)[96] = calloc(n_alarms + 1, sizeof(*texts));
	if (errors && texts) {
		if (s->lead == RAFT_NONE)
			errors[resp.n_errors++] = (char *)"etcdserver: no leader";
		for (size_t i = 0; i < n_alarms; i++) {
			status_alarm_text(alarms[i], texts[i], sizeof(texts[i]));
			errors[resp.n_errors++] = texts[i];
		}
		resp.errors = errors;
	}
	svc_reply(s, call, &resp.base, &hdr, true);
	for (size_t i = 0; i < n_alarms; i++)
		protobuf_c_message_free_unpacked(&alarms[i]->base, NULL);
	free(alarms);
	free(errors);
	free(texts);
}

/* ---- HashKV and Hash ----------------------------------------------------------------------- */

void svc_hash_kv_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__HashKVRequest *req = (Etcdserverpb__HashKVRequest *)svc_decode(
		call, &etcdserverpb__hash_kvrequest__descriptor, msg, len);
	if (!req)
		return;
	uint32_t hash = 0;
	int64_t compact_rev = 0, hash_rev = 0, rev = req->revision;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	/* etcd refuses the compaction revision itself here (HashByRev: rev <= compacted). */
	int64_t compacted = kv_compact_revision(s->kv);
	int rc = rev > 0 && compacted > 0 && rev <= compacted
			 ? KV_ERR_COMPACTED
			 : kv_hash_kv(s->kv, rev, &hash, &compact_rev, &hash_rev);
	if (rc != KV_OK) {
		svc_fail_kv(call, rc);
		return;
	}
	Etcdserverpb__HashKVResponse resp = ETCDSERVERPB__HASH_KVRESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	/* etcd's header carries the current revision whatever revision was hashed, and a
	 * store never compacted has compact revision -1. */
	hdr.revision = kv_revision(s->kv);
	resp.header = &hdr;
	resp.hash = hash;
	resp.compact_revision = compact_rev > 0 ? compact_rev : -1;
	svc_reply(s, call, &resp.base, &hdr, true);
}

/* Hash reads the whole store: a worker does it, under the store lock so a snapshot
 * install or a defragmentation cannot swap the file underneath. */
typedef struct hash_job {
	keeld_t *s;
	grpc_call_t *call;           /* NULL once the call is gone */
	uv_work_t work;
	int rc;
	uint32_t hash;
	int64_t rev;
} hash_job_t;

static void hash_work(uv_work_t *w)
{
	hash_job_t *j = w->data;
	uv_rwlock_rdlock(&j->s->store_lock);
	j->rc = kv_hash(j->s->kv, &j->hash, &j->rev);
	uv_rwlock_rdunlock(&j->s->store_lock);
}

static void hash_after_work(uv_work_t *w, int status)
{
	hash_job_t *j = w->data;
	if (j->call) {
		grpc_call_set_user(j->call, NULL);
		if (status != 0) {
			svc_fail(j->call, GRPC_UNKNOWN, uv_strerror(status));
		} else if (j->rc != KV_OK) {
			svc_fail_kv(j->call, j->rc);
		} else {
			Etcdserverpb__HashResponse resp = ETCDSERVERPB__HASH_RESPONSE__INIT;
			Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
			hdr.revision = j->rev;
			resp.header = &hdr;
			resp.hash = j->hash;
			svc_reply(j->s, j->call, &resp.base, &hdr, true);
		}
	}
	free(j);
}

void svc_hash_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__hash_request__descriptor, msg,
					   len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	hash_job_t *j = calloc(1, sizeof(*j));
	if (!j) {
		svc_fail(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	j->s = s;
	j->call = call;
	j->work.data = j;
	int rc = uv_queue_work(s->loop, &j->work, hash_work, hash_after_work);
	if (rc != 0) {
		free(j);
		svc_fail(call, GRPC_UNKNOWN, uv_strerror(rc));
		return;
	}
	grpc_call_set_user(call, j);
}

void svc_hash_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	hash_job_t *j = grpc_call_user(call);
	if (j) {
		grpc_call_set_user(call, NULL);
		j->call = NULL;
	}
}

/* ---- Alarm and the quota --------------------------------------------------------------- */

static void alarm_done(keeld_t *s, void *ud, kv_result_t *res, int status, const char *message)
{
	svc_call_t *c = ud;
	if (!res) {
		svc_fail(c->call, status, message);
		return;
	}
	if (res->err) {
		svc_fail_kv(c->call, res->err);
	} else if (res->resp) {
		/* etcd's applier answers an AlarmResponse without a header (etcdctl's json
		 * output shows it: "{}" when no alarm is raised). */
		Etcdserverpb__AlarmResponse *r = (Etcdserverpb__AlarmResponse *)res->resp;
		if (r->header)
			protobuf_c_message_free_unpacked(&r->header->base, NULL);
		r->header = NULL;
		svc_reply(s, c->call, res->resp, NULL, true);
	} else {
		svc_fail(c->call, GRPC_INTERNAL, "etcdserver: no response for the request");
	}
	if (res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
}

static void alarm_propose(keeld_t *s, Etcdserverpb__AlarmRequest *ar, keeld_done_fn done,
			  void *ud)
{
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.alarm = ar;
	keeld_propose(s, &ir, done, ud);
}

/* Like etcd, every request goes through raft, GET included: the answer is linearizable. */
void svc_alarm_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__AlarmRequest *req = (Etcdserverpb__AlarmRequest *)svc_decode(
		call, &etcdserverpb__alarm_request__descriptor, msg, len);
	if (!req)
		return;
	svc_call_t *c = svc_call_new(s, call);
	if (!c) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	c->req = &req->base;
	alarm_propose(s, req, alarm_done, c);
}

static bool alarm_mine_active(keeld_t *s)
{
	Etcdserverpb__AlarmMember **v = NULL;
	size_t n = 0;
	bool mine = false;
	if (kv_alarm_list(s->kv, ETCDSERVERPB__ALARM_TYPE__NOSPACE, &v, &n) != KV_OK)
		return false;
	for (size_t i = 0; i < n; i++) {
		mine |= v[i]->memberid == s->id;
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	}
	free(v);
	return mine;
}

bool svc_quota_ok(keeld_t *s, grpc_call_t *call, const Etcdserverpb__InternalRaftRequest *ir)
{
	int64_t quota = s->cfg->quota_backend_bytes;
	if (quota < 0) /* etcd: a negative quota disables it */
		return true;
	if (quota == 0)
		quota = (int64_t)2 << 30;
	int64_t cost = kv_quota_cost(ir), size = 0;
	if (cost == 0 || kv_db_size(s->kv, &size, NULL) != KV_OK || size + cost < quota)
		return true;
	/* etcd proposes the alarm on every refused write; one already on for this member
	 * would change nothing. */
	if (!alarm_mine_active(s)) {
		Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
		ar.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
		ar.memberid = s->id;
		ar.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
		LOG_WARN("store of %lld bytes is over the quota of %lld; raising the NOSPACE alarm",
			 (long long)size, (long long)quota);
		alarm_propose(s, &ar, NULL, NULL);
	}
	svc_fail(call, GRPC_RESOURCE_EXHAUSTED, NOSPACE_TEXT);
	return false;
}

/* ---- Defragment ------------------------------------------------------------------------ */

typedef struct defrag_waiter {
	grpc_call_t *call;           /* NULL once the call is gone */
	struct defrag_waiter *next;
} defrag_waiter_t;

/* A defragmentation goes through these in order, then swaps. */
enum { DEFRAG_COMPACTING, DEFRAG_COPYING, DEFRAG_CATCHING_UP, DEFRAG_FINISHING, DEFRAG_DONE };

struct svc_defrag {
	keeld_t *s;
	uv_work_t work;
	uv_timer_t timer;
	uv_check_t check;
	int open_handles;
	int phase;
	kv_t *copy;
	int rc;
	char err[512];
	char path[4200];
	char store_path[4200];
	int old_fd;                  /* the old file, held until the finishing worker */
	defrag_waiter_t *waiters;
	uint64_t snap_index;         /* s->snap_index when the copy was taken */
	uint64_t start_us, copy_start_us, copied_us, longest_step_us, entries;
	raft_entry_t **ents;
};

static void defrag_handle_closed(uv_handle_t *h)
{
	struct svc_defrag *d = h->data;
	if (--d->open_handles > 0)
		return;
	free(d->ents);
	free(d);
}

/* Answers every caller still there and frees the job once its handles are closed. */
static void defrag_finish(struct svc_defrag *d, int status, const char *message)
{
	keeld_t *s = d->s;
	d->phase = DEFRAG_DONE;
	if (d->copy) {
		kv_close(d->copy);
		d->copy = NULL;
	}
	char lock[4300];
	snprintf(lock, sizeof(lock), "%s-lock", d->path);
	unlink(d->path);
	unlink(lock);
	s->defrag = NULL;
	while (d->waiters) {
		defrag_waiter_t *w = d->waiters;
		d->waiters = w->next;
		if (w->call) {
			grpc_call_set_user(w->call, NULL);
			if (status != GRPC_OK) {
				svc_fail(w->call, status, message);
			} else {
				/* etcd answers a DefragmentResponse without a header */
				Etcdserverpb__DefragmentResponse r;
				etcdserverpb__defragment_response__init(&r);
				svc_reply(s, w->call, &r.base, NULL, true);
			}
		}
		free(w);
	}
	uv_close((uv_handle_t *)&d->timer, defrag_handle_closed);
	uv_close((uv_handle_t *)&d->check, defrag_handle_closed);
}

static void defrag_fail(struct svc_defrag *d, const char *what, const char *why)
{
	LOG_WARN("failed to defragment: %s: %s", what, why);
	char msg[700];
	snprintf(msg, sizeof(msg), "%s: %s", what, why);
	defrag_finish(d, GRPC_UNKNOWN, msg);
}

/* The copy takes the store's place. Raft is not held, so nothing is being applied and no
 * worker of node.c touches the store; a client snapshot's copy may, hence the lock. */
static void defrag_finish_work(uv_work_t *w);
static void defrag_finish_after(uv_work_t *w, int status);

static void defrag_swap(struct svc_defrag *d, uint64_t step_start)
{
	keeld_t *s = d->s;
	if (uv_rwlock_trywrlock(&s->store_lock) != 0)
		return; /* a client snapshot is copying: the next step tries again */
	int rc = KV_OK;
	/* The copy's catch-up was applied without a flush, as the store's own applies are;
	 * that is safe while the log still holds those entries, which a snapshot taken
	 * meanwhile may have released: then flush first. */
	if (s->snap_index != d->snap_index)
		rc = kv_sync(d->copy);
	if (rc == KV_OK) {
		rc = kv_defrag_swap(s->kv, d->copy, &d->old_fd);
	} else {
		kv_close(d->copy);
	}
	d->copy = NULL;
	uv_rwlock_wrunlock(&s->store_lock);
	uint64_t now = svc_now_us(), pause = now - step_start;
	if (pause > d->longest_step_us)
		d->longest_step_us = pause;
	if (rc != KV_OK) {
		defrag_fail(d, "swapping in the defragmented store", kv_last_error(s->kv));
		return;
	}
	int64_t size = 0;
	kv_db_size(s->kv, &size, NULL);
	LOG_INFO("defragment: swapped in, %lld bytes now; copy %.1f ms, %llu entries caught up, "
		 "total %.1f ms, longest pause %.2f ms (the swap %.2f ms)", (long long)size,
		 (double)(d->copied_us - d->copy_start_us) / 1000, (unsigned long long)d->entries,
		 (double)(now - d->start_us) / 1000, (double)d->longest_step_us / 1000,
		 (double)pause / 1000);
	/* The rename made durable and the old file freed, off the loop; then the answer. */
	d->phase = DEFRAG_FINISHING;
	uv_timer_stop(&d->timer);
	uv_check_stop(&d->check);
	snprintf(d->store_path, sizeof(d->store_path), "%s/db", s->member_dir);
	rc = uv_queue_work(s->loop, &d->work, defrag_finish_work, defrag_finish_after);
	if (rc != 0) {
		kv_defrag_finish(d->store_path, d->old_fd);
		defrag_finish(d, GRPC_OK, NULL);
	}
}

static void defrag_finish_work(uv_work_t *w)
{
	struct svc_defrag *d = w->data;
	kv_defrag_finish(d->store_path, d->old_fd);
}

static void defrag_finish_after(uv_work_t *w, int status)
{
	(void)status;
	struct svc_defrag *d = w->data;
	LOG_INFO("finished defragment");
	defrag_finish(d, GRPC_OK, NULL);
}

/* One catch-up step: applies to the copy what the store applied since, for at most
 * DEFRAG_STEP_US, and swaps when the copy has caught up. Only while raft is not held:
 * then the log's storage is not being written and nothing is being applied. */
static void defrag_copy_start(struct svc_defrag *d);

static void defrag_step(struct svc_defrag *d)
{
	keeld_t *s = d->s;
	if (d->phase != DEFRAG_COMPACTING && d->phase != DEFRAG_CATCHING_UP)
		return;
	if (s->stopping) {
		defrag_finish(d, GRPC_UNAVAILABLE, "etcdserver: server stopped");
		return;
	}
	if (d->phase == DEFRAG_COMPACTING) {
		/* What a compaction under way is about to free need not be copied (etcd's
		 * compact --physical has waited for it before a defrag comes). */
		if (kv_compact_pending(s->kv) &&
		    svc_now_us() - d->start_us < DEFRAG_COMPACT_WAIT_MS * 1000ULL) {
			keeld_background(s); /* the steps run on the loop's idle turns */
			return;
		}
		defrag_copy_start(d);
		return;
	}
	if (s->held)
		return;
	uint64_t start = svc_now_us();
	raft_storage_t st = raft_wal_storage(s->wal);
	for (;;) {
		uint64_t have = kv_applied_index(d->copy), want = kv_applied_index(s->kv);
		if (have == want) {
			defrag_swap(d, start);
			return;
		}
		if (have > want) {
			defrag_fail(d, "catching up the copy", "the copy is ahead of the store");
			return;
		}
		if (svc_now_us() - start >= DEFRAG_STEP_US)
			break;
		uint64_t hi = want + 1;
		if (hi - (have + 1) > DEFRAG_STEP_ENTRIES)
			hi = have + 1 + DEFRAG_STEP_ENTRIES;
		size_t n = 0;
		int rc = st.ops->entries(st.ctx, have + 1, hi, UINT64_MAX, d->ents, &n);
		if (rc != 0 || n == 0) {
			char why[128];
			snprintf(why, sizeof(why),
				 "entries %llu..%llu are no longer in the log (%s)",
				 (unsigned long long)(have + 1), (unsigned long long)want,
				 rc ? raft_strerror(rc) : "none returned");
			defrag_fail(d, "catching up the copy", why);
			return;
		}
		rc = kv_apply(d->copy, d->ents, n, NULL, NULL);
		if (rc != KV_OK) {
			defrag_fail(d, "catching up the copy", kv_last_error(d->copy));
			return;
		}
		d->entries += n;
	}
	uint64_t took = svc_now_us() - start;
	if (took > d->longest_step_us)
		d->longest_step_us = took;
}

static void defrag_on_timer(uv_timer_t *t)
{
	defrag_step(t->data);
}

static void defrag_on_check(uv_check_t *c)
{
	defrag_step(c->data);
}

static void defrag_work(uv_work_t *w)
{
	struct svc_defrag *d = w->data;
	/* A raft snapshot installed meanwhile would swap the store under the copy. */
	uv_rwlock_rdlock(&d->s->store_lock);
	d->rc = kv_defrag_copy(d->s->kv, d->path, d->err, sizeof(d->err));
	uv_rwlock_rdunlock(&d->s->store_lock);
}

static void defrag_after_work(uv_work_t *w, int status)
{
	struct svc_defrag *d = w->data;
	keeld_t *s = d->s;
	d->copied_us = svc_now_us();
	if (s->stopping) {
		defrag_finish(d, GRPC_UNAVAILABLE, "etcdserver: server stopped");
		return;
	}
	if (status != 0 || d->rc != KV_OK) {
		defrag_fail(d, "copying the store", status ? uv_strerror(status) : d->err);
		return;
	}
	char err[512];
	if (kv_defrag_open(s->kv, d->path, &d->copy, err, sizeof(err)) != KV_OK) {
		defrag_fail(d, "opening the copy", err);
		return;
	}
	LOG_INFO("defragment: copied the store at index %llu in %.1f ms; catching up to %llu",
		 (unsigned long long)kv_applied_index(d->copy),
		 (double)(d->copied_us - d->copy_start_us) / 1000,
		 (unsigned long long)kv_applied_index(s->kv));
	d->phase = DEFRAG_CATCHING_UP;
	defrag_step(d);
}

static void defrag_copy_start(struct svc_defrag *d)
{
	keeld_t *s = d->s;
	d->phase = DEFRAG_COPYING;
	d->snap_index = s->snap_index;
	d->copy_start_us = svc_now_us();
	int rc = uv_queue_work(s->loop, &d->work, defrag_work, defrag_after_work);
	if (rc != 0)
		defrag_fail(d, "queueing the copy", uv_strerror(rc));
}

static bool defrag_wait(struct svc_defrag *d, grpc_call_t *call)
{
	defrag_waiter_t *w = calloc(1, sizeof(*w));
	if (!w)
		return false;
	w->call = call;
	w->next = d->waiters;
	d->waiters = w;
	grpc_call_set_user(call, w);
	return true;
}

static struct svc_defrag *defrag_start(keeld_t *s)
{
	struct svc_defrag *d = calloc(1, sizeof(*d));
	raft_entry_t **ents = malloc(DEFRAG_STEP_ENTRIES * sizeof(*ents));
	if (!d || !ents) {
		free(d);
		free(ents);
		return NULL;
	}
	d->s = s;
	d->ents = ents;
	d->work.data = d;
	d->start_us = svc_now_us();
	d->phase = DEFRAG_COMPACTING;
	d->old_fd = -1;
	snprintf(d->path, sizeof(d->path), "%s/defrag.db", s->member_dir);
	uv_timer_init(s->loop, &d->timer);
	uv_check_init(s->loop, &d->check);
	d->timer.data = d->check.data = d;
	d->open_handles = 2;
	s->defrag = d;
	LOG_INFO("starting defragment");
	uv_timer_start(&d->timer, defrag_on_timer, DEFRAG_POLL_MS, DEFRAG_POLL_MS);
	uv_check_start(&d->check, defrag_on_check);
	return d;
}

/* A request that comes while a defragmentation runs waits for that one and gets its answer
 * (etcd would run a second pass after it; a second pass right away frees nothing more). */
void svc_defrag_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__defragment_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	struct svc_defrag *d = s->defrag ? s->defrag : defrag_start(s);
	if (!d || !defrag_wait(d, call))
		svc_fail(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
}

void svc_defrag_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	defrag_waiter_t *w = grpc_call_user(call);
	if (w) {
		grpc_call_set_user(call, NULL);
		w->call = NULL;
	}
}

/* ---- MoveLeader -------------------------------------------------------------------------- */

typedef struct move_job {
	keeld_t *s;
	grpc_call_t *call;           /* NULL once the call is gone */
	uv_timer_t timer;
	uint64_t target, deadline_ms;
	bool asked;
} move_job_t;

static void move_closed(uv_handle_t *h)
{
	free(h->data);
}

static void move_end(move_job_t *j, int status, const char *message)
{
	if (j->call) {
		grpc_call_set_user(j->call, NULL);
		if (status == GRPC_OK) {
			/* etcd answers a MoveLeaderResponse without a header */
			Etcdserverpb__MoveLeaderResponse r;
			etcdserverpb__move_leader_response__init(&r);
			svc_reply(j->s, j->call, &r.base, NULL, true);
		} else {
			svc_fail(j->call, status, message);
		}
		j->call = NULL;
	}
	uv_close((uv_handle_t *)&j->timer, move_closed);
}

/* Each tick: ask raft once it is not held, then wait for the target to lead (etcd polls
 * its leader every tick too). */
static void move_on_timer(uv_timer_t *t)
{
	move_job_t *j = t->data;
	keeld_t *s = j->s;
	if (!j->call) {
		uv_close((uv_handle_t *)&j->timer, move_closed);
		return;
	}
	if (s->stopping) {
		move_end(j, GRPC_UNAVAILABLE, "etcdserver: server stopped");
		return;
	}
	if (!j->asked && !s->held) {
		j->asked = true;
		int rc = raft_transfer_leader(s->raft, j->target);
		if (rc != 0)
			LOG_WARN("leadership transfer to %016llx: %s",
				 (unsigned long long)j->target, raft_strerror(rc));
		else
			LOG_INFO("leadership transfer starting: %016llx to %016llx",
				 (unsigned long long)s->id, (unsigned long long)j->target);
	}
	if (s->lead == j->target) {
		LOG_INFO("leadership transfer finished: %016llx leads",
			 (unsigned long long)j->target);
		move_end(j, GRPC_OK, NULL);
		return;
	}
	if (keeld_now_ms() >= j->deadline_ms)
		move_end(j, GRPC_UNKNOWN, TRANSFER_TIMEOUT_TEXT);
}

/* etcd: only the leader moves leadership, to a voting member (of the applied membership:
 * see status_is_learner for why not raft_status). */
static bool move_target_ok(keeld_t *s, uint64_t target)
{
	raft_conf_t conf;
	raft_applied_conf(s->raft, &conf);
	for (size_t i = 0; i < conf.n_voters; i++)
		if (conf.voters[i] == target)
			return true;
	return false;
}

void svc_move_leader_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__MoveLeaderRequest *req = (Etcdserverpb__MoveLeaderRequest *)svc_decode(
		call, &etcdserverpb__move_leader_request__descriptor, msg, len);
	if (!req)
		return;
	uint64_t target = req->targetid;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (s->lead != s->id || s->state != RAFT_LEADER) {
		svc_fail(call, GRPC_FAILED_PRECONDITION, "etcdserver: not leader");
		return;
	}
	if (!move_target_ok(s, target)) {
		svc_fail(call, GRPC_FAILED_PRECONDITION, "etcdserver: bad leader transferee");
		return;
	}
	move_job_t *j = calloc(1, sizeof(*j));
	if (!j) {
		svc_fail(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	j->s = s;
	j->call = call;
	j->target = target;
	j->deadline_ms = keeld_now_ms() + 5000 + 2 * (uint64_t)s->cfg->election_ms;
	uv_timer_init(s->loop, &j->timer);
	j->timer.data = j;
	grpc_call_set_user(call, j);
	uint64_t every = s->cfg->heartbeat_ms ? s->cfg->heartbeat_ms : 100;
	uv_timer_start(&j->timer, move_on_timer, 0, every);
}

void svc_move_leader_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	move_job_t *j = grpc_call_user(call);
	if (j) {
		grpc_call_set_user(call, NULL);
		j->call = NULL;
	}
}
