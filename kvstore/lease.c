/* lease.c — the lessor: etcd v3 leases kept in "lease"/"lkeys", an in-memory map of them
 * and, on the leader only, an expiry heap. It never decides an expiry unless primary, and
 * never lets a leader change reset a lease's deadline (etcd does; see kv_lease_promote).
 *
 * Failover bound. A checkpoint carries the leader's exact remaining TTL in milliseconds
 * (remaining_ms; etcd's whole seconds ride along, unread). Every node records, when it
 * applies a grant or a checkpoint, a deadline hint: its own clock at that apply plus the
 * granted TTL or the remaining milliseconds, later or earlier than the hint it had. The
 * apply comes after the proposal, so a hint is never earlier than the proposer's deadline,
 * only later by that checkpoint's commit-and-apply latency. A new leader takes the hints
 * as its expiries. So after a failover a lease expires no earlier than its last
 * checkpointed deadline and no later than that plus the commit-and-apply latency of that
 * checkpoint. A renewal not yet checkpointed when the leader failed is lost with the
 * leader's memory: the lease keeps the deadline checkpointed before it, which comes early
 * by the time between the two renewals for the client that renewed (renewals go out at
 * the next kv_lease_checkpoints call, so that window is short).
 * A promotion alone never moves a deadline, so a lease nobody renews keeps its deadline
 * however often leaders change; only a periodic checkpoint proposed on one node and
 * applied on another adds its latency, at most once per checkpoint_interval_ms. A primary
 * does not take its own checkpoints back (stage_commit_one): its expiries are exact.
 * A restarted node knows only the stored remaining TTL: its hints start at open.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_int.h"

/* How long an expired lease handed out by kv_lease_expired waits before it is handed out
 * again if its revoke has not applied (a lost proposal, a leader that lost its term). */
#define LEASE_RETRY_MS 3000
/* etcd's limit of checkpoints in one LeaseCheckpointRequest. */
#define LEASE_CKPT_BATCH 1000
#define LEASE_NO_HEAP SIZE_MAX

typedef struct lease {
	int64_t id;                  /* first: the map reads ids through the entry pointer */
	int64_t ttl;                 /* granted TTL, seconds */
	uint64_t hint_ms;            /* this node's view of the deadline, if nobody renews */
	uint64_t ckpt_ms;            /* last checkpoint applied here or proposed by us */
	/* Primary only. */
	uint64_t expiry_ms;
	uint64_t due_ms;             /* heap key: expiry, or when to hand it out again */
	size_t hidx;                 /* position in the heap, LEASE_NO_HEAP if not in it */
	bool renewed;                /* renewed since it was last put in a checkpoint */
	bool owned;                  /* this primary granted, renewed or checkpointed it since
				      * promotion, so checkpoints from the log no longer move it */
	struct lease *prev, *next;   /* checkpoint-age list, oldest ckpt_ms first */
} lease_t;

/* A change made by the apply batch in progress, applied to the map at commit. */
typedef struct lease_stage {
	int64_t id;                  /* first, as in lease_t */
	bool gone;                   /* revoked (final state) */
	bool fresh;                  /* granted in this batch: nl is the new lease */
	bool ckpt;                   /* checkpointed in this batch */
	int64_t ttl;
	uint64_t hint_ms, at_ms;
	lease_t *nl;
} lease_stage_t;

/* Open addressing, linear probing, backward-shift deletion. Entries begin with an int64 id. */
typedef struct lease_map {
	void **slot;
	size_t cap, n;
} lease_map_t;

struct kv_lessor {
	lease_map_t map;             /* id -> lease_t */
	lease_map_t stage;           /* id -> lease_stage_t, the batch in progress */
	size_t stage_fresh;          /* fresh leases staged: room reserved in map and heap */
	lease_t *old, *young;        /* checkpoint-age list */
	lease_t **heap;
	size_t heap_n, heap_cap;
	int64_t *renewed;            /* ids renewed since their last checkpoint */
	size_t renewed_n, renewed_cap;
	bool primary;
	uint64_t id_seed, id_counter;
};

/* ---- helpers ---- */

static uint64_t lease_now(const kv_t *kv)
{
	if (kv->opt.now_ms)
		return kv->opt.now_ms(kv->opt.clock_ctx);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t lease_deadline(uint64_t now, int64_t secs)
{
	return now + (uint64_t)secs * 1000u;
}

/* Whole seconds until t, rounded down as etcd reports them, never negative. */
static int64_t lease_secs_left(uint64_t t, uint64_t now)
{
	return t > now ? (int64_t)((t - now) / 1000u) : 0;
}

static uint64_t lease_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* ---- the id map ---- */

static int64_t map_entry_id(const void *e)
{
	int64_t id;
	memcpy(&id, e, sizeof(id));
	return id;
}

static size_t map_home(const lease_map_t *m, int64_t id)
{
	return (size_t)lease_mix64((uint64_t)id) & (m->cap - 1);
}

static void *map_get(const lease_map_t *m, int64_t id)
{
	if (m->n == 0)
		return NULL;
	for (size_t i = map_home(m, id);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slot[i])
			return NULL;
		if (map_entry_id(m->slot[i]) == id)
			return m->slot[i];
	}
}

static void map_place(lease_map_t *m, void *e)
{
	size_t i = map_home(m, map_entry_id(e));
	while (m->slot[i])
		i = (i + 1) & (m->cap - 1);
	m->slot[i] = e;
	m->n++;
}

/* Room for want entries at a load of at most one half. */
static int map_reserve(lease_map_t *m, size_t want)
{
	if (want * 2 <= m->cap)
		return KV_OK;
	size_t cap = m->cap ? m->cap : 16;
	while (want * 2 > cap)
		cap *= 2;
	void **slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return KV_ERR_NOMEM;
	lease_map_t nm = { slot, cap, 0 };
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i])
			map_place(&nm, m->slot[i]);
	free(m->slot);
	*m = nm;
	return KV_OK;
}

static void map_remove(lease_map_t *m, int64_t id)
{
	size_t mask = m->cap - 1, i;
	if (m->n == 0)
		return;
	for (i = map_home(m, id);; i = (i + 1) & mask) {
		if (!m->slot[i])
			return;
		if (map_entry_id(m->slot[i]) == id)
			break;
	}
	m->slot[i] = NULL;
	m->n--;
	/* Shift back the entries of the run after i that may no longer be reachable. */
	for (size_t j = (i + 1) & mask; m->slot[j]; j = (j + 1) & mask) {
		size_t k = map_home(m, map_entry_id(m->slot[j]));
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		m->slot[i] = m->slot[j];
		m->slot[j] = NULL;
		i = j;
	}
}

static void map_free(lease_map_t *m, bool entries)
{
	if (entries)
		for (size_t i = 0; i < m->cap; i++)
			free(m->slot[i]);
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

/* ---- the expiry heap (primary only), keyed by due_ms ---- */

static void heap_set(struct kv_lessor *ls, size_t i, lease_t *l)
{
	ls->heap[i] = l;
	l->hidx = i;
}

static void heap_up(struct kv_lessor *ls, size_t i)
{
	lease_t *l = ls->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (ls->heap[p]->due_ms <= l->due_ms)
			break;
		heap_set(ls, i, ls->heap[p]);
		i = p;
	}
	heap_set(ls, i, l);
}

static void heap_down(struct kv_lessor *ls, size_t i)
{
	lease_t *l = ls->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= ls->heap_n)
			break;
		if (c + 1 < ls->heap_n && ls->heap[c + 1]->due_ms < ls->heap[c]->due_ms)
			c++;
		if (l->due_ms <= ls->heap[c]->due_ms)
			break;
		heap_set(ls, i, ls->heap[c]);
		i = c;
	}
	heap_set(ls, i, l);
}

static void heap_fix(struct kv_lessor *ls, lease_t *l)
{
	if (l->hidx == LEASE_NO_HEAP)
		return;
	heap_up(ls, l->hidx);
	heap_down(ls, l->hidx);
}

static int heap_reserve(struct kv_lessor *ls, size_t want)
{
	if (want <= ls->heap_cap)
		return KV_OK;
	size_t cap = ls->heap_cap ? ls->heap_cap : 16;
	while (cap < want)
		cap *= 2;
	lease_t **h = realloc(ls->heap, cap * sizeof(*h));
	if (!h)
		return KV_ERR_NOMEM;
	ls->heap = h;
	ls->heap_cap = cap;
	return KV_OK;
}

/* Capacity was reserved when the lease was staged or the heap was built. */
static void heap_push(struct kv_lessor *ls, lease_t *l)
{
	heap_set(ls, ls->heap_n++, l);
	heap_up(ls, l->hidx);
}

static void heap_remove(struct kv_lessor *ls, lease_t *l)
{
	size_t i = l->hidx;
	if (i == LEASE_NO_HEAP)
		return;
	l->hidx = LEASE_NO_HEAP;
	lease_t *last = ls->heap[--ls->heap_n];
	if (i == ls->heap_n)
		return;
	heap_set(ls, i, last);
	heap_up(ls, i);
	heap_down(ls, last->hidx);
}

static void heap_clear(struct kv_lessor *ls)
{
	for (size_t i = 0; i < ls->heap_n; i++)
		ls->heap[i]->hidx = LEASE_NO_HEAP;
	ls->heap_n = 0;
}

/* ---- the checkpoint-age list ---- */

static void age_unlink(struct kv_lessor *ls, lease_t *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (ls->old == l)
		ls->old = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else if (ls->young == l)
		ls->young = l->prev;
	l->prev = l->next = NULL;
}

static void age_append(struct kv_lessor *ls, lease_t *l)
{
	l->prev = ls->young;
	l->next = NULL;
	if (ls->young)
		ls->young->next = l;
	else
		ls->old = l;
	ls->young = l;
}

static void age_touch(struct kv_lessor *ls, lease_t *l, uint64_t now)
{
	l->ckpt_ms = now;
	age_unlink(ls, l);
	age_append(ls, l);
}

/* ---- leases in memory ---- */

static lease_t *lease_new(int64_t id, int64_t ttl, uint64_t hint, uint64_t at)
{
	lease_t *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->id = id;
	l->ttl = ttl;
	l->hint_ms = hint;
	l->ckpt_ms = at;
	l->hidx = LEASE_NO_HEAP;
	return l;
}

/* The primary's view of a lease that it has not touched since promotion: its hint. */
static void lease_arm(struct kv_lessor *ls, lease_t *l)
{
	l->expiry_ms = l->hint_ms;
	l->due_ms = l->expiry_ms;
	if (l->hidx == LEASE_NO_HEAP)
		heap_push(ls, l);
	else
		heap_fix(ls, l);
}

/* Inserts l; the map and heap have room (reserved when it was staged or loaded). */
static void lease_insert(struct kv_lessor *ls, lease_t *l)
{
	map_place(&ls->map, l);
	age_append(ls, l);
	if (ls->primary) {
		lease_arm(ls, l);
		l->owned = true;
	}
}

static void lease_drop(struct kv_lessor *ls, lease_t *l)
{
	map_remove(&ls->map, l->id);
	heap_remove(ls, l);
	age_unlink(ls, l);
	free(l);
}

static void lessor_free(struct kv_lessor *ls)
{
	if (!ls)
		return;
	for (size_t i = 0; i < ls->stage.cap; i++) {
		lease_stage_t *st = ls->stage.slot[i];
		if (st)
			free(st->nl);
	}
	map_free(&ls->stage, true);
	map_free(&ls->map, true);
	free(ls->heap);
	free(ls->renewed);
	free(ls);
}

/* ---- LMDB ---- */

static MDB_val lease_key(uint8_t buf[8], int64_t id)
{
	kv_put_be64(buf, (uint64_t)id);
	return (MDB_val){ .mv_size = 8, .mv_data = buf };
}

/* Reads and checks the record of id: KV_OK, KV_ERR_LEASE_NOT_FOUND or an error. */
static int lease_rec_get(kv_t *kv, MDB_txn *txn, int64_t id, kv_lease_rec_t *rec)
{
	uint8_t kb[8];
	MDB_val k = lease_key(kb, id), v;
	int rc = mdb_get(txn, kv->dbi_lease, &k, &v);
	if (rc == MDB_NOTFOUND)
		return KV_ERR_LEASE_NOT_FOUND;
	if (rc)
		return kv_from_mdb(kv, rc, "read lease");
	if (v.mv_size != sizeof(*rec))
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: lease %lld: record of %zu bytes",
				    kv->path, (long long)id, v.mv_size);
	memcpy(rec, v.mv_data, sizeof(*rec));
	if (rec->ttl < 1 || rec->ttl > KV_MAX_LEASE_TTL || rec->remaining_ms < 0 ||
	    rec->remaining_ms > rec->ttl * 1000)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: lease %lld: ttl %lld s remaining %lld ms",
				    kv->path, (long long)id, (long long)rec->ttl,
				    (long long)rec->remaining_ms);
	return KV_OK;
}

static int lease_rec_put(kv_t *kv, MDB_txn *txn, int64_t id, const kv_lease_rec_t *rec)
{
	uint8_t kb[8];
	MDB_val k = lease_key(kb, id);
	MDB_val v = { .mv_size = sizeof(*rec), .mv_data = (void *)rec };
	int rc = mdb_put(txn, kv->dbi_lease, &k, &v, 0);
	return rc ? kv_from_mdb(kv, rc, "write lease") : KV_OK;
}

/* Loads every lease of "lease" into a new lessor; hints start now (a restart knows no
 * better: the remaining TTL last checkpointed, or the granted TTL). */
static int lessor_load(kv_t *kv, MDB_txn *txn, struct kv_lessor **out)
{
	struct kv_lessor *ls = calloc(1, sizeof(*ls));
	MDB_cursor *cur = NULL;
	if (!ls)
		return KV_ERR_NOMEM;
	uint64_t now = lease_now(kv);
	int rc = mdb_cursor_open(txn, kv->dbi_lease, &cur);
	int err = rc ? kv_from_mdb(kv, rc, "open lease cursor") : KV_OK;
	MDB_val k, v;
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int64_t id = k.mv_size == 8 ? (int64_t)kv_get_be64(k.mv_data) : 0;
		kv_lease_rec_t rec;
		if (id <= 0) {
			err = kv_set_error(kv, KV_ERR_CORRUPT, "%s: lease key of %zu bytes, id %lld",
					   kv->path, k.mv_size, (long long)id);
			break;
		}
		if ((err = lease_rec_get(kv, txn, id, &rec)) != KV_OK)
			break;
		int64_t left = rec.remaining_ms ? rec.remaining_ms : rec.ttl * 1000;
		lease_t *l = lease_new(id, rec.ttl, now + (uint64_t)left, now);
		if (!l || map_reserve(&ls->map, ls->map.n + 1) != KV_OK) {
			free(l);
			err = KV_ERR_NOMEM;
			break;
		}
		lease_insert(ls, l);
	}
	if (!err && rc != MDB_NOTFOUND)
		err = kv_from_mdb(kv, rc, "read leases");
	if (cur)
		mdb_cursor_close(cur);
	if (err) {
		lessor_free(ls);
		return err;
	}
	*out = ls;
	return KV_OK;
}

/* A seed that differs between members and between runs of one member, so that ids
 * proposed by different leaders rarely collide (a collision is refused at apply). */
static uint64_t lessor_seed(const kv_t *kv)
{
	uint64_t s = 0;
	if (getentropy(&s, sizeof(s)) != 0)
		s = 0;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *p = kv->path ? kv->path : ""; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	return lease_mix64(s ^ h ^ lease_now(kv) ^ (uint64_t)getpid());
}

int kv_lessor_open(kv_t *kv, MDB_txn *txn)
{
	struct kv_lessor *ls;
	int err = lessor_load(kv, txn, &ls);
	if (err)
		return err;
	ls->id_seed = lessor_seed(kv);
	kv->lessor = ls;
	return KV_OK;
}

void kv_lessor_close(kv_t *kv)
{
	lessor_free(kv->lessor);
	kv->lessor = NULL;
}

int kv_lessor_reload(kv_t *kv, MDB_txn *txn)
{
	struct kv_lessor *old = kv->lessor, *ls;
	int err = lessor_load(kv, txn, &ls);
	if (err)
		return err;
	ls->id_seed = old->id_seed;
	ls->id_counter = old->id_counter;
	kv->lessor = ls;
	if (old->primary)
		kv_lease_promote(kv);
	lessor_free(old);
	return KV_OK;
}

/* ---- staging ---- */

/* The staged change of id, created on first use. NULL when out of memory. */
static lease_stage_t *stage_get(struct kv_lessor *ls, int64_t id)
{
	lease_stage_t *st = map_get(&ls->stage, id);
	if (st)
		return st;
	if (map_reserve(&ls->stage, ls->stage.n + 1) != KV_OK)
		return NULL;
	if (!(st = calloc(1, sizeof(*st))))
		return NULL;
	st->id = id;
	map_place(&ls->stage, st);
	return st;
}

static void stage_drop_new(struct kv_lessor *ls, lease_stage_t *st)
{
	if (st->nl) {
		free(st->nl);
		st->nl = NULL;
		ls->stage_fresh--;
	}
}

bool kv_lessor_exists(kv_t *kv, int64_t id)
{
	struct kv_lessor *ls = kv->lessor;
	const lease_stage_t *st = map_get(&ls->stage, id);
	if (st && (st->gone || st->fresh))
		return st->fresh;
	return map_get(&ls->map, id) != NULL;
}

static void stage_commit_one(struct kv_lessor *ls, lease_stage_t *st)
{
	lease_t *l = map_get(&ls->map, st->id);
	if (st->gone || st->fresh) {
		if (l)
			lease_drop(ls, l);
		l = NULL;
	}
	if (st->fresh) {
		l = st->nl;
		st->nl = NULL;
		l->ttl = st->ttl;
		l->hint_ms = st->hint_ms;
		l->ckpt_ms = st->at_ms;
		lease_insert(ls, l);
		return;
	}
	if (!st->ckpt || !l)
		return;
	l->hint_ms = st->hint_ms;
	age_touch(ls, l, st->at_ms);
	/* A checkpoint this primary did not make (an older leader's, still in the log when we
	 * took over) carries renewals we never saw: it moves the deadline. Ours do not: our
	 * expiry is exact, and the hint is later by the commit latency, which taken back
	 * would stretch the lease at every checkpoint. */
	if (ls->primary && !l->owned)
		lease_arm(ls, l);
}

void kv_lessor_commit(kv_t *kv, bool committed)
{
	struct kv_lessor *ls = kv->lessor;
	if (!ls)
		return;
	for (size_t i = 0; i < ls->stage.cap; i++) {
		lease_stage_t *st = ls->stage.slot[i];
		if (!st)
			continue;
		if (committed)
			stage_commit_one(ls, st);
		free(st->nl);
		free(st);
		ls->stage.slot[i] = NULL;
	}
	ls->stage.n = 0;
	ls->stage_fresh = 0;
}

/* ---- replicated requests ---- */

int kv_lessor_grant(kv_wtxn_t *w, const Etcdserverpb__LeaseGrantRequest *req,
		    Etcdserverpb__LeaseGrantResponse *resp)
{
	kv_t *kv = w->kv;
	struct kv_lessor *ls = kv->lessor;
	if (req->id <= 0)
		return KV_ERR_BAD_REQUEST;
	if (req->ttl > KV_MAX_LEASE_TTL)
		return KV_ERR_LEASE_TTL_TOO_LARGE;
	kv_lease_rec_t rec;
	int err = lease_rec_get(kv, w->txn, req->id, &rec);
	if (err == KV_OK)
		return KV_ERR_LEASE_EXISTS;
	if (err != KV_ERR_LEASE_NOT_FOUND)
		return err;
	int64_t ttl = req->ttl;
	int64_t min = kv->opt.min_lease_ttl > 1 ? kv->opt.min_lease_ttl : 1;
	if (ttl < min)
		ttl = min;
	if (ttl > KV_MAX_LEASE_TTL)
		ttl = KV_MAX_LEASE_TTL;

	/* Everything that could fail at commit is allocated now. */
	lease_stage_t *st = stage_get(ls, req->id);
	if (!st)
		return KV_ERR_NOMEM;
	if (!st->nl) {
		if (map_reserve(&ls->map, ls->map.n + ls->stage_fresh + 1) != KV_OK ||
		    heap_reserve(ls, ls->map.n + ls->stage_fresh + 1) != KV_OK ||
		    !(st->nl = lease_new(req->id, ttl, 0, 0)))
			return KV_ERR_NOMEM;
		ls->stage_fresh++;
	}
	rec = (kv_lease_rec_t){ .ttl = ttl, .remaining_ms = 0 };
	if ((err = lease_rec_put(kv, w->txn, req->id, &rec)) != KV_OK)
		return err;
	uint64_t now = lease_now(kv);
	st->gone = false;
	st->fresh = true;
	st->ckpt = false;
	st->ttl = ttl;
	st->at_ms = now;
	st->hint_ms = lease_deadline(now, ttl);
	resp->id = req->id;
	resp->ttl = ttl;
	return KV_OK;
}

/* The keys attached to id, copied (deleting them changes "lkeys" under a cursor). */
static int lease_keys_read(kv_t *kv, MDB_txn *txn, int64_t id, ProtobufCBinaryData **out,
			   size_t *n)
{
	uint8_t kb[8];
	MDB_val k = lease_key(kb, id), v;
	MDB_cursor *cur;
	size_t count = 0;
	ProtobufCBinaryData *keys = NULL;
	size_t got = 0;
	*out = NULL;
	*n = 0;
	int rc = mdb_cursor_open(txn, kv->dbi_lkeys, &cur);
	if (rc)
		return kv_from_mdb(kv, rc, "open lkeys cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	if (rc == 0)
		rc = mdb_cursor_count(cur, &count);
	if (rc == 0 && count > 0 && !(keys = calloc(count, sizeof(*keys))))
		rc = ENOMEM;
	for (; rc == 0 && got < count; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
		uint8_t *d = malloc(v.mv_size ? v.mv_size : 1);
		if (!d) {
			rc = ENOMEM;
			break;
		}
		memcpy(d, v.mv_data, v.mv_size);
		keys[got].data = d;
		keys[got++].len = v.mv_size;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		for (size_t i = 0; i < got; i++)
			free(keys[i].data);
		free(keys);
		return rc == ENOMEM ? KV_ERR_NOMEM : kv_from_mdb(kv, rc, "read lkeys");
	}
	*out = keys;
	*n = got;
	return KV_OK;
}

static void lease_keys_free(ProtobufCBinaryData *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i].data);
	free(keys);
}

/* The members mvcc_delete_range may have allocated in a response on our stack. */
static void lease_delresp_clear(Etcdserverpb__DeleteRangeResponse *resp)
{
	if (resp->header)
		protobuf_c_message_free_unpacked(&resp->header->base, NULL);
	for (size_t i = 0; i < resp->n_prev_kvs; i++)
		protobuf_c_message_free_unpacked(&resp->prev_kvs[i]->base, NULL);
	free(resp->prev_kvs);
}

/* Deletes key if its latest revision still carries lease id ("lkeys" should never say
 * otherwise; if it does, the key belongs to someone else now and stays). */
static int lease_delete_key(kv_wtxn_t *w, int64_t id, const ProtobufCBinaryData *key)
{
	Mvccpb__KeyValue *cur = NULL;
	int err = mvcc_get(w->kv, w->txn, key->data, key->len, 0, true, &cur);
	if (err)
		return err;
	bool ours = cur && cur->lease == id;
	if (cur)
		protobuf_c_message_free_unpacked(&cur->base, NULL);
	if (!ours)
		return kv_lessor_detach(w, id, key->data, key->len);
	Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	Etcdserverpb__DeleteRangeResponse resp = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
	req.key = *key;
	err = mvcc_delete_range(w, &req, &resp);
	lease_delresp_clear(&resp);
	return err;
}

int kv_lessor_revoke(kv_wtxn_t *w, const Etcdserverpb__LeaseRevokeRequest *req)
{
	kv_t *kv = w->kv;
	kv_lease_rec_t rec;
	int err = req->id > 0 ? lease_rec_get(kv, w->txn, req->id, &rec) : KV_ERR_LEASE_NOT_FOUND;
	if (err)
		return err;
	lease_stage_t *st = stage_get(kv->lessor, req->id);
	if (!st)
		return KV_ERR_NOMEM;
	ProtobufCBinaryData *keys;
	size_t n;
	if ((err = lease_keys_read(kv, w->txn, req->id, &keys, &n)) != KV_OK)
		return err;
	/* All deletes share w->main: one revision, one sub revision per key. */
	for (size_t i = 0; i < n && !err; i++)
		err = lease_delete_key(w, req->id, &keys[i]);
	lease_keys_free(keys, n);
	if (err)
		return err;
	uint8_t kb[8];
	MDB_val k = lease_key(kb, req->id);
	int rc = mdb_del(w->txn, kv->dbi_lkeys, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return kv_from_mdb(kv, rc, "delete lkeys");
	if ((rc = mdb_del(w->txn, kv->dbi_lease, &k, NULL)) != 0)
		return kv_from_mdb(kv, rc, "delete lease");
	stage_drop_new(kv->lessor, st);
	st->gone = true;
	st->fresh = false;
	st->ckpt = false;
	return KV_OK;
}

/* The remaining milliseconds of a checkpoint, at most the granted TTL; 0 to ignore it.
 * remaining_TTL (etcd's whole seconds) counts only in a checkpoint without remaining_ms. */
static int64_t lease_ckpt_remaining_ms(const Etcdserverpb__LeaseCheckpoint *cp, int64_t ttl)
{
	int64_t max = ttl * 1000;
	if (cp->remaining_ms < 0 || (cp->remaining_ms == 0 && cp->remaining_ttl <= 0))
		return 0;
	if (cp->remaining_ms == 0)
		return cp->remaining_ttl >= ttl ? max : cp->remaining_ttl * 1000;
	return cp->remaining_ms < max ? cp->remaining_ms : max;
}

/* The hint is taken as it comes, earlier or later than the one it replaces: the proposer's
 * deadline measured from this apply, which is never earlier than the proposer's own. */
static int lease_checkpoint_one(kv_wtxn_t *w, const Etcdserverpb__LeaseCheckpoint *cp,
				uint64_t now)
{
	kv_t *kv = w->kv;
	kv_lease_rec_t rec;
	if (!cp || cp->id <= 0)
		return KV_OK;
	int err = lease_rec_get(kv, w->txn, cp->id, &rec);
	if (err == KV_ERR_LEASE_NOT_FOUND)
		return KV_OK;
	if (err)
		return err;
	int64_t ms = lease_ckpt_remaining_ms(cp, rec.ttl);
	if (ms == 0)
		return KV_OK;
	lease_stage_t *st = stage_get(kv->lessor, cp->id);
	if (!st)
		return KV_ERR_NOMEM;
	rec.remaining_ms = ms;
	if ((err = lease_rec_put(kv, w->txn, cp->id, &rec)) != KV_OK)
		return err;
	st->ckpt = true;
	st->ttl = rec.ttl;
	st->at_ms = now;
	st->hint_ms = now + (uint64_t)ms;
	return KV_OK;
}

int kv_lessor_checkpoint(kv_wtxn_t *w, const Etcdserverpb__LeaseCheckpointRequest *req)
{
	uint64_t now = lease_now(w->kv);
	int err = KV_OK;
	for (size_t i = 0; i < req->n_checkpoints && !err; i++)
		err = lease_checkpoint_one(w, req->checkpoints[i], now);
	return err;
}

int kv_lessor_attach(kv_wtxn_t *w, int64_t id, const uint8_t *key, size_t klen)
{
	kv_t *kv = w->kv;
	kv_lease_rec_t rec;
	int err = id > 0 ? lease_rec_get(kv, w->txn, id, &rec) : KV_ERR_LEASE_NOT_FOUND;
	if (err)
		return err;
	uint8_t kb[8];
	MDB_val k = lease_key(kb, id);
	MDB_val v = { .mv_size = klen, .mv_data = (void *)key };
	int rc = mdb_put(w->txn, kv->dbi_lkeys, &k, &v, MDB_NODUPDATA);
	if (rc && rc != MDB_KEYEXIST)
		return kv_from_mdb(kv, rc, "write lkeys");
	return KV_OK;
}

int kv_lessor_detach(kv_wtxn_t *w, int64_t id, const uint8_t *key, size_t klen)
{
	kv_t *kv = w->kv;
	uint8_t kb[8];
	MDB_val k = lease_key(kb, id);
	MDB_val v = { .mv_size = klen, .mv_data = (void *)key };
	int rc = mdb_del(w->txn, kv->dbi_lkeys, &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return kv_from_mdb(kv, rc, "delete lkeys");
	return KV_OK;
}

/* ---- leader-local calls ---- */

void kv_lease_promote(kv_t *kv)
{
	struct kv_lessor *ls = kv->lessor;
	heap_clear(ls);
	ls->renewed_n = 0;
	if (heap_reserve(ls, ls->map.n + ls->stage_fresh) != KV_OK) {
		/* Without a heap this node cannot expire leases: stay a non-primary (renewals
		 * fail with KV_ERR_NOT_PRIMARY, so clients go elsewhere) rather than never
		 * expire anything. */
		ls->primary = false;
		return;
	}
	ls->primary = true;
	for (size_t i = 0; i < ls->map.cap; i++) {
		lease_t *l = ls->map.slot[i];
		if (!l)
			continue;
		l->renewed = false;
		l->owned = false;
		l->expiry_ms = l->due_ms = l->hint_ms;
		heap_set(ls, ls->heap_n++, l);
	}
	for (size_t i = ls->heap_n / 2; i-- > 0;)
		heap_down(ls, i);
}

void kv_lease_demote(kv_t *kv)
{
	struct kv_lessor *ls = kv->lessor;
	ls->primary = false;
	heap_clear(ls);
	ls->renewed_n = 0;
	for (size_t i = 0; i < ls->map.cap; i++) {
		lease_t *l = ls->map.slot[i];
		if (l)
			l->renewed = l->owned = false;
	}
}

bool kv_lease_is_primary(const kv_t *kv)
{
	return kv->lessor->primary;
}

int kv_lease_renew(kv_t *kv, int64_t id, int64_t *ttl)
{
	struct kv_lessor *ls = kv->lessor;
	if (!ls->primary)
		return KV_ERR_NOT_PRIMARY;
	lease_t *l = map_get(&ls->map, id);
	uint64_t now = lease_now(kv);
	/* An expired lease is on its way to a revoke; renewing it would race the revoke
	 * (etcd waits for the revoke and answers not found). */
	if (!l || l->expiry_ms <= now)
		return KV_ERR_LEASE_NOT_FOUND;
	if (!l->renewed) {
		if (ls->renewed_n == ls->renewed_cap) {
			size_t cap = ls->renewed_cap ? ls->renewed_cap * 2 : 64;
			int64_t *r = realloc(ls->renewed, cap * sizeof(*r));
			if (!r)
				return KV_ERR_NOMEM;
			ls->renewed = r;
			ls->renewed_cap = cap;
		}
		ls->renewed[ls->renewed_n++] = id;
		l->renewed = true;
	}
	l->owned = true;
	l->expiry_ms = l->due_ms = lease_deadline(now, l->ttl);
	heap_fix(ls, l);
	*ttl = l->ttl;
	return KV_OK;
}

size_t kv_lease_expired(kv_t *kv, int64_t *ids, size_t max)
{
	struct kv_lessor *ls = kv->lessor;
	size_t n = 0;
	if (!ls->primary)
		return 0;
	uint64_t now = lease_now(kv);
	while (n < max && ls->heap_n > 0 && ls->heap[0]->due_ms <= now) {
		lease_t *l = ls->heap[0];
		if (l->expiry_ms <= now) {
			ids[n++] = l->id;
			l->due_ms = now + LEASE_RETRY_MS;
		} else {
			l->due_ms = l->expiry_ms;
		}
		heap_down(ls, 0);
	}
	return n;
}

/* Adds a checkpoint of l to req (the caller keeps n_checkpoints under the batch). */
static int lease_ckpt_add(struct kv_lessor *ls, Etcdserverpb__LeaseCheckpointRequest *req,
			  lease_t *l, uint64_t now)
{
	Etcdserverpb__LeaseCheckpoint *cp = NULL;
	if (l->expiry_ms > now && !(cp = malloc(sizeof(*cp))))
		return KV_ERR_NOMEM; /* l stays due: the next call tries again */
	l->renewed = false;
	age_touch(ls, l, now);
	if (!cp)
		return KV_OK;        /* expired: it is being revoked */
	etcdserverpb__lease_checkpoint__init(cp);
	cp->id = l->id;
	cp->remaining_ms = (int64_t)(l->expiry_ms - now);        /* at least 1: checked above */
	cp->remaining_ttl = (cp->remaining_ms + 999) / 1000;     /* for etcd's eyes only */
	req->checkpoints[req->n_checkpoints++] = cp;
	l->owned = true;
	return KV_OK;
}

Etcdserverpb__LeaseCheckpointRequest *kv_lease_checkpoints(kv_t *kv)
{
	struct kv_lessor *ls = kv->lessor;
	if (!ls->primary)
		return NULL;
	uint64_t now = lease_now(kv);
	Etcdserverpb__LeaseCheckpointRequest *req = malloc(sizeof(*req));
	Etcdserverpb__LeaseCheckpoint **cps = malloc(LEASE_CKPT_BATCH * sizeof(*cps));
	if (!req || !cps) {
		free(req);
		free(cps);
		return NULL;
	}
	etcdserverpb__lease_checkpoint_request__init(req);
	req->checkpoints = cps;
	int err = KV_OK;
	size_t used = 0;
	/* Renewed leases first: until their checkpoint applies, a failover loses them. */
	for (; used < ls->renewed_n && req->n_checkpoints < LEASE_CKPT_BATCH && !err; used++) {
		lease_t *l = map_get(&ls->map, ls->renewed[used]);
		if (l && l->renewed)
			err = lease_ckpt_add(ls, req, l, now);
	}
	if (used)
		memmove(ls->renewed, ls->renewed + used,
			(ls->renewed_n - used) * sizeof(*ls->renewed));
	ls->renewed_n -= used;
	while (!err && req->n_checkpoints < LEASE_CKPT_BATCH && ls->old &&
	       ls->old->ckpt_ms + kv->opt.checkpoint_interval_ms <= now)
		err = lease_ckpt_add(ls, req, ls->old, now);
	if (req->n_checkpoints == 0) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return NULL;
	}
	return req;
}

/* ---- reads ---- */

static Etcdserverpb__ResponseHeader *lease_header(const kv_t *kv)
{
	Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));
	if (h) {
		etcdserverpb__response_header__init(h);
		h->revision = kv->rev;
	}
	return h;
}

int kv_lease_time_to_live(kv_t *kv, const Etcdserverpb__LeaseTimeToLiveRequest *req,
			  Etcdserverpb__LeaseTimeToLiveResponse **out)
{
	struct kv_lessor *ls = kv->lessor;
	Etcdserverpb__LeaseTimeToLiveResponse *resp = malloc(sizeof(*resp));
	*out = NULL;
	if (!resp)
		return KV_ERR_NOMEM;
	etcdserverpb__lease_time_to_live_response__init(resp);
	resp->id = req->id;
	if (!(resp->header = lease_header(kv))) {
		free(resp);
		return KV_ERR_NOMEM;
	}
	const lease_t *l = map_get(&ls->map, req->id);
	if (!l) {
		resp->ttl = -1;      /* what etcd's gRPC answers for a lease it does not know */
		*out = resp;
		return KV_OK;
	}
	uint64_t now = lease_now(kv);
	resp->ttl = lease_secs_left(ls->primary ? l->expiry_ms : l->hint_ms, now);
	if (resp->ttl > l->ttl)
		resp->ttl = l->ttl;  /* as etcd: never more than granted, whatever the clocks did */
	resp->grantedttl = l->ttl;
	if (req->keys) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
		int err = rc ? kv_from_mdb(kv, rc, "begin read") : KV_OK;
		if (!err) {
			err = lease_keys_read(kv, txn, req->id, &resp->keys, &resp->n_keys);
			mdb_txn_abort(txn);
		}
		if (err) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			return err;
		}
	}
	*out = resp;
	return KV_OK;
}

int kv_lease_leases(kv_t *kv, Etcdserverpb__LeaseLeasesResponse **out)
{
	struct kv_lessor *ls = kv->lessor;
	Etcdserverpb__LeaseLeasesResponse *resp = malloc(sizeof(*resp));
	*out = NULL;
	if (!resp)
		return KV_ERR_NOMEM;
	etcdserverpb__lease_leases_response__init(resp);
	resp->header = lease_header(kv);
	if (ls->map.n)
		resp->leases = calloc(ls->map.n, sizeof(*resp->leases));
	if (!resp->header || (ls->map.n && !resp->leases)) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return KV_ERR_NOMEM;
	}
	for (size_t i = 0; i < ls->map.cap; i++) {
		const lease_t *l = ls->map.slot[i];
		if (!l)
			continue;
		Etcdserverpb__LeaseStatus *s = malloc(sizeof(*s));
		if (!s) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			return KV_ERR_NOMEM;
		}
		etcdserverpb__lease_status__init(s);
		s->id = l->id;
		resp->leases[resp->n_leases++] = s;
	}
	*out = resp;
	return KV_OK;
}

int64_t kv_lease_new_id(kv_t *kv)
{
	struct kv_lessor *ls = kv->lessor;
	for (;;) {
		/* The counter through a bijection of 63-bit numbers: distinct for every call
		 * of this run, spread over the whole positive range like etcd's ids. */
		uint64_t x = (ls->id_seed + ++ls->id_counter) & INT64_MAX;
		x ^= x >> 31;
		x = (x * 0x9e3779b97f4a7c15ULL) & INT64_MAX;
		x ^= x >> 29;
		x = (x * 0xbf58476d1ce4e5b9ULL) & INT64_MAX;
		x ^= x >> 32;
		int64_t id = (int64_t)x;
		if (id > 0 && !kv_lessor_exists(kv, id))
			return id;
	}
}
