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


/* ---- Packed ranges (range_pack.c) ----------------------------------------------- */

/* A whole RangeResponse in protobuf wire form, in one buffer written once: key and value
 * bytes go straight from LMDB's memory into it, so a range over a million keys costs one
 * copy of the answer instead of a tree of KeyValues plus its packing. Buffers of 1 MiB
 * and more are an anonymous mapping, so a sender can give the front back as it drains
 * (kv_packed_release) and the whole answer is never resident after it has left. */
typedef struct kv_packed {
	uint8_t *data;               /* the message: len bytes (NULL after kv_packed_free) */
	size_t len;
	uint8_t *map;                /* the mapping still held, or NULL when data is malloc'd */
	size_t map_len;
} kv_packed_t;

/* The bytes protobuf_c_message_pack gives for kv_range's answer to req, with hdr's
 * cluster_id, member_id and raft_term in its header (revision: the store's, as kv_range
 * sets it). Same errors as kv_range; nothing is allocated on an error. An answer longer
 * than max_len (0: no limit) is not built: KV_OK with out->data NULL and out->len the
 * length it would have, so the caller can refuse it as gRPC refuses a large message.
 * Runs on any thread, like kv_range (its own read transaction). Free with
 * kv_packed_free. */
int kv_range_pack(kv_t *kv, const Etcdserverpb__RangeRequest *req,
		  const Etcdserverpb__ResponseHeader *hdr, size_t max_len, kv_packed_t *out);
/* The sender will never read data[0, upto) again: whole pages of it go back to the
 * system (in steps of at least 1 MiB; nothing for a malloc'd buffer). */
void kv_packed_release(kv_packed_t *p, size_t upto);
void kv_packed_free(kv_packed_t *p);

/* ---- Membership ------------------------------------------------------------------ */

/* The cluster's members are replicated state, kept in the store (members.c) and changed
 * only by conf-change entries, in the same transaction as the consistent index: they are
 * in every store snapshot and survive restarts. A conf-change entry's kv_result has id =
 * the proposal's id (from the context) and resp = a MemberListResponse of the members
 * after the change; err = KV_ERR_BAD_REQUEST when the change makes no sense (an unknown or
 * removed member, a promotion of a voter, a context that does not decode or names another
 * member), and then nothing changed. The etcd-level checks (duplicate peer URLs, too many
 * learners, quorum) are the proposer's, before the change enters the log.
 *
 * A conf change's context is a packed InternalRaftRequest with header.ID = req_id and
 * keel_member = m (the member the change is about: its id, and for an add or an update its
 * peer URLs). *out is malloc'd. */
int kv_members_pack_context(uint64_t req_id, const Etcdserverpb__Member *m, uint8_t **out,
			    size_t *len);
/* The raft core writes the first members' conf changes without a context: their records
 * (id, name, peer URLs) come from the bootstrap configuration given here, the same on
 * every member, before anything is applied. Idempotent; not a replicated change. */
int kv_members_bootstrap(kv_t *kv, Etcdserverpb__Member *const *ms, size_t n);
/* The members in id order (name and peer URLs as recorded, isLearner; no client URLs).
 * Free with protobuf_c_message_free_unpacked. */
int kv_members_list(kv_t *kv, Etcdserverpb__MemberListResponse **out);
/* Whether id was a member and was removed (etcd refuses a removed id forever). */
int kv_member_removed(kv_t *kv, uint64_t id, bool *removed);

/* ---- Maintenance (maint.c): alarms, quota, size, hash, defragmentation ------------ */

/* A write refused at apply because a NOSPACE alarm is active somewhere in the cluster
 * (etcd's capped applier): puts, txns with a put in a branch, lease grants. The entry
 * still applies, as a no-op; text "etcdserver: mvcc: database space exceeded". */
enum { KV_ERR_QUOTA = -21 };

/* etcd's cost of a request against the backend quota: a put is 256 bytes plus key and
 * value; a txn the larger of its branches' top-level puts; a lease grant 64; anything
 * else 0 (it never counts against the quota). */
int64_t kv_quota_cost(const Etcdserverpb__InternalRaftRequest *req);

/* Alarms are replicated state (the "alarm" database), changed only by applying an
 * InternalRaftRequest that carries an AlarmRequest (etcd's field 10). GET answers the
 * alarms of that type (NONE: all) in member order; ACTIVATE answers the alarm whether it
 * was new or not; DEACTIVATE answers the alarm it removed, or none. */
/* Whether an alarm of this type (NONE: any) is active as of the last commit. Loop thread. */
bool kv_alarm_active(kv_t *kv, int type);
/* The committed alarms of a type (NONE: all), malloc'd: free each with
 * protobuf_c_message_free_unpacked and the array with free. */
int kv_alarm_list(kv_t *kv, int type, Etcdserverpb__AlarmMember ***out, size_t *n);

/* The store's size as etcd reports it: size is the file's high-water mark (pages ever
 * used times the page size), in_use that minus LMDB's free pages. in_use may be NULL
 * (then the freelist is not walked). */
int kv_db_size(kv_t *kv, int64_t *size, int64_t *in_use);

/* etcd's Maintenance.Hash: CRC32C over every database's replicated records (the MVCC
 * history above the compaction point, meta but physical-compaction progress, leases,
 * lease keys, alarms), so members at the same applied index hash equal however far their
 * physical compaction has gone. *rev is the revision it saw. Thread-safe like kv_range. */
int kv_hash(kv_t *kv, uint32_t *hash, int64_t *rev);

/* Defragmentation without stopping the store:
 *   1. kv_defrag_copy (any thread, while the store serves): a compacted, fsynced copy.
 *   2. kv_defrag_open (owner thread): the copy as a store of its own, at the copy's
 *      consistent index; feed it with kv_apply the entries the store applied since
 *      (kv_applied_index of each tells how far), in batches, while the store serves.
 *   3. kv_defrag_swap (owner thread, when both are at the same index): the copy takes
 *      the store's place in its file; revision, leases (deadlines, primary), watchers
 *      and compaction keep their in-memory state, nobody is notified of anything.
 * The swap consumes copy in every case. On any failure before the rename the store is
 * untouched; if the new file cannot be opened the old one is put back. Only when that
 * also fails is the handle closed as after a failed kv_snapshot_install. */
int kv_defrag_copy(kv_t *kv, const char *path, char *err, size_t errlen);
int kv_defrag_open(kv_t *kv, const char *path, kv_t **copy, char *err, size_t errlen);
/* The copy's writes since kv_defrag_open are as durable as the store's own applies with
 * no_sync: kv_sync(copy) first when the log may no longer hold them. On KV_OK, *old_fd
 * holds the old file open (or is -1): pass it with the store's path to kv_defrag_finish,
 * which fsyncs the directory (the rename) and closes it (the old blocks go back to the
 * filesystem then, which takes time for a large file): any thread, no kv_t needed. */
int kv_defrag_swap(kv_t *kv, kv_t *copy, int *old_fd);
void kv_defrag_finish(const char *path, int old_fd);

/* ---- etcd-format snapshots (bolt.c) --------------------------------------------- */

/* etcd 3.4's snapshot is its bbolt database: buckets "key" (one entry per revision: main
 * and sub as 8-byte big-endian numbers joined by '_', then 't' for a delete; the value a
 * packed mvccpb.KeyValue, only the key for a delete), "lease" (8-byte big-endian ID: a
 * packed leasepb.Lease), "meta" (consistent_index 8 bytes big-endian; scheduledCompactRev
 * and finishedCompactRev as 17-byte revisions) and the buckets etcd creates for its own
 * bookkeeping (alarm, auth, authRoles, authUsers, cluster, members, members_removed).
 * Functions return KV_OK or KV_ERR_*, with a message naming the file in err. */
typedef struct kv_bolt_status {
	uint32_t hash;               /* CRC-32C of bucket names, keys and values in order */
	int64_t revision;            /* main revision of the last entry of "key" */
	int64_t total_keys;          /* entries of every top-level bucket */
	int64_t total_size;          /* bbolt's size: high-water mark * page size */
} kv_bolt_status_t;

/* Writes the store, as one LMDB read transaction sees it, to path as a bbolt file of
 * 4096-byte pages (created or truncated, fsync'ed, removed on failure). Like kv_range it
 * may run on another thread than the rest: it reads only through its own transaction and
 * never writes kv's error text. Not while kv_snapshot_install runs (the caller locks). */
int kv_bolt_save(kv_t *kv, const char *path, char *err, size_t errlen);
/* What `etcdctl snapshot status` reports for the bbolt file at path (bytes past its last
 * page, such as a snapshot's SHA-256 trailer, are ignored), after the checks bbolt's
 * Tx.Check makes. Every page id, count and offset is checked against the file: a damaged
 * file is KV_ERR_CORRUPT with a message, never a crash or an unbounded allocation. */
int kv_bolt_status(const char *path, kv_bolt_status_t *st, char *err, size_t errlen);
/* Checks the bbolt file at bolt_path as kv_bolt_status does, then imports it into a new
 * store at store_path (which must not exist): every revision of "key", deletes included,
 * the leases and the keys attached to them, the compaction revisions. The new store starts
 * a new log (consistent index 0). On failure the new store's files are removed. */
int kv_bolt_restore(const char *bolt_path, const char *store_path, char *err, size_t errlen);

#endif
