/* kvstore.h — the replicated state machine: etcd v3's MVCC data model on LMDB, leases
 * and the watch hub. The only door of kvstore/. It does no networking, owns no thread
 * and reads time only through the clock in its options.
 *
 * Threading: one kv_t is used from one thread at a time (the caller serializes), except
 * kv_range and kv_hash_kv, which open their own LMDB read transaction and may run on
 * other threads concurrently with everything else.
 *
 * Durability: the WAL is the durability point. Every kv_apply commits the data and the
 * consistent index (last applied Raft index) in one LMDB write transaction, so replaying
 * the WAL after a crash applies each entry exactly once. With kv_options_t.no_sync those
 * commits are not flushed at all; call kv_sync before the WAL drops entries the store has
 * applied (before a snapshot releases WAL segments), or a power loss can take the applied
 * state back past what the WAL still holds. Without no_sync each commit flushes data
 * pages but not the meta page (MDB_NOMETASYNC): a power loss may undo the last commits but
 * never corrupts the file.
 *
 * Ownership: every protobuf-c response this module returns is built with malloc, one
 * allocation per message, string and array, so protobuf_c_message_free_unpacked(resp,
 * NULL) frees it. Requests are always borrowed.
 */
#ifndef KEEL_KVSTORE_H
#define KEEL_KVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.pb-c.h"
#include "raft.h"
#include "raft_internal.pb-c.h"
#include "rpc.pb-c.h"

typedef struct kv kv_t;

/* Errors. kv_strerror gives the text etcd 3.4 puts in its gRPC status for the same
 * condition, because etcd's clients compare those strings. */
enum {
	KV_OK = 0,
	KV_ERR_COMPACTED = -1,        /* revision below the compacted revision */
	KV_ERR_FUTURE_REV = -2,       /* revision above the current revision */
	KV_ERR_EMPTY_KEY = -3,
	KV_ERR_KEY_TOO_LARGE = -4,    /* longer than KV_MAX_KEY_SIZE */
	KV_ERR_KEY_NOT_FOUND = -5,    /* ignore_value/ignore_lease on a missing key */
	KV_ERR_VALUE_PROVIDED = -6,   /* ignore_value with a value */
	KV_ERR_LEASE_PROVIDED = -7,   /* ignore_lease with a lease */
	KV_ERR_DUPLICATE_KEY = -8,    /* a txn writes one key twice */
	KV_ERR_TOO_MANY_OPS = -9,
	KV_ERR_LEASE_NOT_FOUND = -10,
	KV_ERR_LEASE_EXISTS = -11,
	KV_ERR_LEASE_TTL_TOO_LARGE = -12,
	KV_ERR_NOT_PRIMARY = -13,     /* a leader-only lease call on a non-leader */
	KV_ERR_BAD_REQUEST = -14,     /* an entry whose request does not decode or is empty */
	KV_ERR_NOMEM = -15,
	KV_ERR_IO = -16,              /* LMDB failed; kv_last_error says how */
	KV_ERR_CORRUPT = -17,         /* a record in the database is not what Keel wrote */
	KV_ERR_LOCKED = -18,          /* another process has the database open */
	KV_ERR_NO_SPACE = -19,        /* the LMDB map is full */
	KV_ERR_WATCH_RANGE_EMPTY = -20, /* a watch whose range_end is at or before its key */
};
const char *kv_strerror(int err);

/* LMDB's own key limit (compile-time MDB_MAXKEYSIZE of Debian's liblmdb). etcd accepts
 * keys up to the request size; Keel refuses to store a longer key (a put, also inside a
 * txn) with KV_ERR_KEY_TOO_LARGE. Reading or deleting one finds nothing, as no such key
 * can exist. */
#define KV_MAX_KEY_SIZE 511
/* etcd's default --max-txn-ops. */
#define KV_DEFAULT_MAX_TXN_OPS 128
/* etcd's largest lease TTL: 9,000,000,000 seconds. */
#define KV_MAX_LEASE_TTL 9000000000LL

typedef struct kv_options {
	size_t map_size;             /* LMDB map size in bytes (default 8 GiB) */
	bool no_sync;                /* never flush apply commits (see Durability above) */
	int max_txn_ops;             /* 0: KV_DEFAULT_MAX_TXN_OPS */
	/* Leases. Times are milliseconds of a monotonic clock the caller provides; tests
	 * and the simulator pass a virtual one. */
	uint64_t (*now_ms)(void *ctx);
	void *clock_ctx;
	int64_t min_lease_ttl;       /* seconds; shorter grants are raised to it (default 5) */
	uint64_t checkpoint_interval_ms; /* how often remaining TTLs go through the log
					  * (default 5000); renewed leases go sooner */
	/* Watch. */
	size_t watch_max_response_bytes; /* fragment size for watchers that ask (1.5 MiB) */
	size_t watch_batch_events;   /* events a catching-up watcher reads per step (1000) */
} kv_options_t;

void kv_options_default(kv_options_t *opt);

/* Opens (creating if needed) the store in the file path (LMDB with MDB_NOSUBDIR; the
 * lock file is path + "-lock"). On failure err gets a message naming the file. */
int kv_open(const char *path, const kv_options_t *opt, kv_t **out, char *err, size_t errlen);
void kv_close(kv_t *kv);
/* The message of the last KV_ERR_IO / KV_ERR_CORRUPT, naming the file. */
const char *kv_last_error(const kv_t *kv);
int kv_sync(kv_t *kv);

/* Current revision, compacted revision (0 if never compacted), and the last applied
 * Raft entry (consistent index and its term). */
int64_t kv_revision(const kv_t *kv);
int64_t kv_compact_revision(const kv_t *kv);
uint64_t kv_applied_index(const kv_t *kv);
uint64_t kv_applied_term(const kv_t *kv);

/* ---- Apply ---------------------------------------------------------------------- */

/* What one applied entry produced. resp is the etcd response message (PutResponse,
 * DeleteRangeResponse, TxnResponse, CompactionResponse, LeaseGrantResponse,
 * LeaseRevokeResponse, LeaseCheckpointResponse), or NULL when err != 0 or the entry
 * carries no request (an empty entry, a conf change). Ownership of resp passes to the
 * callback. Errors here are the request's own (an etcd error the client gets back):
 * the entry is still applied, as a no-op. */
typedef struct kv_result {
	uint64_t index;              /* Raft index of the entry */
	uint64_t id;                 /* request ID (InternalRaftRequest.header.ID), 0 if none */
	int err;
	ProtobufCMessage *resp;
	int64_t revision;            /* store revision after this entry */
	const raft_entry_t *entry;   /* the entry, for conf changes (type and data) */
} kv_result_t;
typedef void (*kv_applied_fn)(void *ud, kv_result_t *res);

/* Applies committed entries in order, all in one LMDB write transaction, skipping those
 * at or below the consistent index. Normal entries carry a packed InternalRaftRequest (or
 * nothing). cb (may be NULL) runs once per applied entry after the commit, then watchers
 * see the events. A return other than KV_OK is a storage failure: nothing of the batch
 * is applied and the node must stop. */
int kv_apply(kv_t *kv, raft_entry_t *const *ents, size_t n, kv_applied_fn cb, void *ud);
/* The same for one request at a given index and term (the embedded store, tests). */
int kv_apply_request(kv_t *kv, uint64_t index, uint64_t term,
		     const Etcdserverpb__InternalRaftRequest *req, kv_result_t *res);
/* Checks a write before it is proposed (empty key, size of a key to store, ignore_*
 * combinations, duplicate keys in a txn, too many ops), so a bad request never enters
 * the log. Apply checks again. */
int kv_check_request(const kv_t *kv, const Etcdserverpb__InternalRaftRequest *req);

/* ---- Reads ---------------------------------------------------------------------- */

/* A Range outside Raft (serializable, or after a ReadIndex). *resp is set on KV_OK. */
int kv_range(kv_t *kv, const Etcdserverpb__RangeRequest *req,
	     Etcdserverpb__RangeResponse **resp);
/* Hash of the MVCC state at revision rev (0: current), independent of how far physical
 * compaction has gone, so members at the same revision compare equal. */
int kv_hash_kv(kv_t *kv, int64_t rev, uint32_t *hash, int64_t *compact_rev,
	       int64_t *hash_rev);

/* Compaction is logical at apply (reads below it fail at once) and physical in bounded
 * steps, so apply never stalls: call kv_compact_step until it reports done. */
bool kv_compact_pending(const kv_t *kv);
int kv_compact_step(kv_t *kv, size_t max_keys, bool *done);

/* ---- Leases (the lessor) -------------------------------------------------------- */

/* Grant, revoke and checkpoint are replicated requests (kv_apply). Expiry is decided by
 * the leader only. Call kv_lease_promote once this node, as leader, has applied an entry
 * of its own term (then every checkpoint committed before it is applied here); deadlines
 * continue from the last checkpointed remaining TTL, measured from when it was applied
 * here, so a failover neither shortens nor resets a lease. Call kv_lease_demote as soon
 * as it stops being leader: a deposed leader never decides an expiry. */
void kv_lease_promote(kv_t *kv);
void kv_lease_demote(kv_t *kv);
bool kv_lease_is_primary(const kv_t *kv);
/* Leader-local renewal (no log entry); *ttl is the granted TTL. The renewal is
 * checkpointed through the log soon after (kv_lease_checkpoints). KV_ERR_LEASE_NOT_FOUND
 * also for a lease already past its expiry (its revoke is on the way; etcd answers the
 * same). */
int kv_lease_renew(kv_t *kv, int64_t id, int64_t *ttl);
/* Up to max expired leases to propose as LeaseRevoke; each is returned once per
 * promotion until revoked (again after lease_retry_ms if the revoke did not apply). */
size_t kv_lease_expired(kv_t *kv, int64_t *ids, size_t max);
/* A LeaseCheckpointRequest to propose now, or NULL: leases renewed since their last
 * checkpoint and leases not checkpointed for checkpoint_interval_ms, at most 1000 per
 * request (call again while it returns one). Cheap: call it every tick. Free with
 * protobuf_c_message_free_unpacked.
 *
 * Remaining TTLs travel in milliseconds (remaining_ms; etcd's remaining_TTL is filled too,
 * rounded up, and read only from a checkpoint without remaining_ms). After a failover a
 * lease expires no earlier than its last checkpointed deadline and no later than that plus
 * the commit-and-apply latency of that checkpoint. A renewal not yet checkpointed when the
 * leader failed is lost with the leader's memory: the lease keeps the deadline checkpointed
 * before it. A lease nobody renews keeps its deadline however often leaders change (only a
 * periodic checkpoint applied on another node adds its latency, at most once per
 * checkpoint_interval_ms). lease.c's top comment has the reasoning. */
Etcdserverpb__LeaseCheckpointRequest *kv_lease_checkpoints(kv_t *kv);
/* An unknown or revoked lease is KV_OK with ttl -1, as etcd's gRPC answers (etcdctl prints
 * "lease X already expired"). ttl is the whole seconds left, rounded down, never above
 * the granted TTL: on the primary from its expiry, elsewhere from this node's deadline.
 * Headers carry only the revision; the server fills the rest. */
int kv_lease_time_to_live(kv_t *kv, const Etcdserverpb__LeaseTimeToLiveRequest *req,
			  Etcdserverpb__LeaseTimeToLiveResponse **resp);
int kv_lease_leases(kv_t *kv, Etcdserverpb__LeaseLeasesResponse **resp);
/* A fresh lease ID for a grant request with ID 0: chosen by the proposer, unique among
 * live leases, never 0 or negative. */
int64_t kv_lease_new_id(kv_t *kv);

/* ---- Watch ---------------------------------------------------------------------- */

typedef struct kv_watcher kv_watcher_t;
/* Delivers one response, borrowed for the call (copy what you keep): events (a fragment
 * of them when the watcher asked for fragments), a progress notification (no events), or
 * the cancel (canceled, compact_revision). resp->header carries only the revision: the
 * store's revision at send time (etcd's WatchResponse.header.revision; 0 in a compaction
 * cancel, as etcd 3.4 sends it); the server fills cluster id, member id and raft term.
 * Events come in revision order, each once; one revision's events are never split
 * between responses except into fragments. Return 0 when taken; -1 when the receiver is
 * full: the watcher then falls behind and catches up from LMDB later, losing and
 * repeating nothing. The callback must not call into kv (the hub is walking its lists). */
typedef int (*kv_watch_fn)(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp);

/* Starts a watcher on [key, range_end) (etcd's conventions); watch_id in the responses is
 * req->watch_id. start_revision 0: from the next revision; above the current revision:
 * waits for it; below the compacted revision (equal is still served, as in etcd 3.4): the
 * cancel is delivered through cb inside kv_watch, so the server sends its "created"
 * response first (a refused cancel is offered again by kv_watch_step). Returns
 * KV_ERR_WATCH_RANGE_EMPTY when range_end is neither empty nor "\0" and not after key,
 * KV_ERR_BAD_REQUEST for a NULL callback. Whatever happened, the owner frees the handle
 * with kv_watch_cancel, valid in every state; kv_close frees handles still open, after
 * which they must not be used. */
int kv_watch(kv_t *kv, const Etcdserverpb__WatchCreateRequest *req, kv_watch_fn cb, void *ud,
	     kv_watcher_t **out);
void kv_watch_cancel(kv_t *kv, kv_watcher_t *w);
/* Moves watchers that are behind forward (at least watch_batch_events records each, and
 * always to the end of the revision it is in); returns the number still behind
 * (catching up, or with a cancel not yet taken). The owner calls it while it returns
 * non-zero, between other work, so synced watchers never wait for slow ones. */
size_t kv_watch_step(kv_t *kv);
/* A progress notification (header revision, no events) to w if it is caught up; to every
 * caught-up watcher that asked for progress_notify when w is NULL. */
void kv_watch_progress(kv_t *kv, kv_watcher_t *w);

/* ---- Snapshots of the state machine --------------------------------------------- */

/* Writes a compacted copy of the store to path while it keeps serving. */
int kv_snapshot_save(kv_t *kv, const char *path);
/* Replaces the store with the copy at path (moved into place) and reloads leases;
 * watchers behind the new state are cancelled or resynced. If the store cannot be opened
 * again (a bad copy), the handle is closed for good: apply, reads, compaction, sync and
 * snapshots return KV_ERR_IO, and only kv_close remains to call. */
int kv_snapshot_install(kv_t *kv, const char *path);

#endif
