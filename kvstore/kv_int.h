/* kv_int.h — what the files of kvstore/ share: the handle, the LMDB layout, the write
 * context of one apply, and the calls between mvcc, lease, watch and apply. Never
 * included outside kvstore/.
 *
 * LMDB layout (one environment, one file, MDB_NOSUBDIR):
 *   "rev"   key: revision, 16 bytes (main, sub; big-endian u64, so LMDB's byte order is
 *           revision order). value: a record (below). One per put and per delete.
 *   "idx"   MDB_DUPSORT. key: the user key. data: 17 bytes (main, sub big-endian, then
 *           KV_REC_PUT or KV_REC_DEL): every revision of the key still stored, in order.
 *   "meta"  named values: "rev", "compact", "compact_sched" (int64), "cindex", "cterm"
 *           (uint64), all 8 bytes big-endian.
 *   "lease" key: lease ID (8 bytes big-endian). value: kv_lease_rec_t.
 *   "lkeys" MDB_DUPSORT. key: lease ID (8 bytes big-endian). data: a user key attached
 *           to that lease (its latest revision carries the lease).
 *   "alarm" key: member ID (8 bytes big-endian) then AlarmType (4 bytes big-endian).
 *           value: empty. One per active alarm (maint.c).
 */
#ifndef KEEL_KV_INT_H
#define KEEL_KV_INT_H

#include <lmdb.h>

#include "kvstore.h"

/* A record in "rev". Fixed header then key then value; integers little-endian as in
 * memory on every platform Keel builds for, read with memcpy (never through a cast:
 * LMDB values are not aligned). Tombstones carry the key and zero metadata. */
enum { KV_REC_PUT = 0, KV_REC_DEL = 1 };
typedef struct kv_rec_hdr {
	uint8_t type;                /* KV_REC_PUT or KV_REC_DEL */
	uint8_t pad[3];
	uint32_t key_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
} kv_rec_hdr_t;                      /* 40 bytes; then key, then value */

typedef struct kv_lease_rec {
	int64_t ttl;                 /* granted TTL, seconds */
	int64_t remaining_ms;        /* last checkpointed remaining TTL, milliseconds (0: none),
				      * never above ttl * 1000: a restart's deadlines start from it */
} kv_lease_rec_t;

struct kv_lessor;
struct kv_hub;

struct kv {
	MDB_env *env;
	MDB_dbi dbi_rev, dbi_idx, dbi_meta, dbi_lease, dbi_lkeys;
	MDB_dbi dbi_alarm;           /* maint.c */
	int alarm_mask;              /* bit per active AlarmType as committed; -1: read again */
	MDB_dbi dbi_members;         /* members.c: the membership (see there) */
	kv_options_t opt;
	char *path;
	int lock_fd;                 /* the data file, flock'ed: one process per store */
	int64_t rev;                 /* current revision (main) */
	int64_t compact_rev;         /* reads below fail; 0 if never compacted */
	int64_t compact_done;        /* physical compaction finished up to here */
	uint64_t cindex, cterm;      /* consistent index and its term */
	bool rename_unsynced;        /* a defragmentation renamed a copy over the file and the
				      * directory may not be on disk yet: kv_sync syncs it, so
				      * the WAL never drops entries only the new file holds */
	uint8_t *compact_resume;     /* first key the next compaction step looks at */
	size_t compact_resume_len;
	struct kv_lessor *lessor;
	struct kv_hub *hub;
	char errbuf[256];
};

/* The events of one apply batch, in revision order, for the watch hub. Each event is a
 * malloc'd Mvccpb__Event with malloc'd kv (and prev_kv when kv_hub_wants_prev said so). */
typedef struct kv_events {
	Mvccpb__Event **ev;
	size_t n, cap;
} kv_events_t;

/* The write context of one apply batch: one LMDB write transaction. Each write request
 * takes main = kv->rev + 1 lazily on its first change (a request that changes nothing
 * does not advance the revision); sub counts its changes. */
typedef struct kv_wtxn {
	kv_t *kv;
	MDB_txn *txn;
	int64_t rev;                 /* revision as of this point of the batch */
	int64_t main;                /* revision of the request being applied, 0 if none yet */
	int64_t sub;
	kv_events_t events;
	bool want_events;            /* some watcher is caught up: it takes events live */
	bool want_prev;              /* some watcher wants prev_kv: capture it in events */
} kv_wtxn_t;

/* ---- apply.c ---- */
/* A read transaction and the revision it sees (a new store's 1); a closed store (after a
 * failed snapshot install) is KV_ERR_IO. */
int kv_read_begin(kv_t *kv, MDB_txn **txn, int64_t *cur);

/* ---- util.c ---- */
void kv_put_be64(uint8_t *p, uint64_t v);
uint64_t kv_get_be64(const uint8_t *p);
int kv_set_error(kv_t *kv, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kv_from_mdb(kv_t *kv, int rc, const char *what); /* maps an LMDB code to KV_ERR_* */
int kv_meta_get(kv_t *kv, MDB_txn *txn, const char *name, uint64_t *v);
int kv_meta_put(kv_t *kv, MDB_txn *txn, const char *name, uint64_t v);
int kv_events_push(kv_events_t *e, Mvccpb__Event *ev);
void kv_events_clear(kv_events_t *e);
/* Is key inside [start, end) by etcd's conventions: end empty = the one key start;
 * end "\0" = every key >= start (start "\0" too: every key). */
bool kv_in_range(const ProtobufCBinaryData *key, const ProtobufCBinaryData *start,
		 const ProtobufCBinaryData *end);
/* Byte-wise comparison of two keys, as LMDB and etcd order them. */
int kv_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
uint32_t kv_crc32c(uint32_t crc, const void *p, size_t n);
/* malloc'd copies for responses that protobuf_c_message_free_unpacked can free. */
int kv_bin_dup(ProtobufCBinaryData *dst, const void *p, size_t n);
Etcdserverpb__ResponseHeader *kv_header_new(int64_t revision);

/* ---- mvcc.c: the revisioned key space ---- */
/* The state of key at revision rev (<= 0: latest as seen by txn) as a malloc'd KeyValue,
 * or NULL if it does not exist then. keys_only leaves the value out. */
int mvcc_get(kv_t *kv, MDB_txn *txn, const uint8_t *key, size_t klen, int64_t rev,
	     bool keys_only, Mvccpb__KeyValue **out);
int mvcc_put(kv_wtxn_t *w, const Etcdserverpb__PutRequest *req, Etcdserverpb__PutResponse *resp);
int mvcc_delete_range(kv_wtxn_t *w, const Etcdserverpb__DeleteRangeRequest *req,
		      Etcdserverpb__DeleteRangeResponse *resp);
/* A range inside a read or write transaction as of revision cur (the caller's view). */
int mvcc_range(kv_t *kv, MDB_txn *txn, int64_t cur, const Etcdserverpb__RangeRequest *req,
	       Etcdserverpb__RangeResponse *resp);
int mvcc_txn(kv_wtxn_t *w, const Etcdserverpb__TxnRequest *req, Etcdserverpb__TxnResponse *resp);
/* Logical compaction at apply: records the revision; physical work is kv_compact_step. */
int mvcc_compact(kv_wtxn_t *w, const Etcdserverpb__CompactionRequest *req);
/* Physical compaction up to upto, from resume (NULL: the first key) over at most
 * max_keys keys; *next (malloc'd) is where the next step resumes, *done when none left. */
int mvcc_compact_step(kv_t *kv, MDB_txn *txn, int64_t upto, const uint8_t *resume_key,
		      size_t resume_len, size_t max_keys, uint8_t **next_key, size_t *next_len,
		      bool *done);
/* HashKV at rev (see kv_hash_kv). */
int mvcc_hash(kv_t *kv, MDB_txn *txn, int64_t rev, uint32_t *hash);
/* etcd's checks on a txn before it is proposed: op count, and no key written twice
 * (puts and deletes of one branch, nested txns included). */
int mvcc_check_txn(const Etcdserverpb__TxnRequest *t, int max_ops);
/* Decodes a "rev" record into a malloc'd KeyValue (NULL value when keys_only). */
int mvcc_decode(kv_t *kv, const MDB_val *k, const MDB_val *v, bool keys_only,
		Mvccpb__KeyValue **out, int *type);

/* ---- lease.c: the lessor ---- */
int kv_lessor_open(kv_t *kv, MDB_txn *txn);      /* loads leases from "lease" */
void kv_lessor_close(kv_t *kv);
int kv_lessor_grant(kv_wtxn_t *w, const Etcdserverpb__LeaseGrantRequest *req,
		    Etcdserverpb__LeaseGrantResponse *resp);
/* Deletes every key attached to the lease in one revision, then the lease. */
int kv_lessor_revoke(kv_wtxn_t *w, const Etcdserverpb__LeaseRevokeRequest *req);
int kv_lessor_checkpoint(kv_wtxn_t *w, const Etcdserverpb__LeaseCheckpointRequest *req);
bool kv_lessor_exists(kv_t *kv, int64_t id);
/* Keep "lkeys" in step with the keys' latest revisions; called by mvcc_put and
 * mvcc_delete_range inside the write transaction. */
int kv_lessor_attach(kv_wtxn_t *w, int64_t id, const uint8_t *key, size_t klen);
int kv_lessor_detach(kv_wtxn_t *w, int64_t id, const uint8_t *key, size_t klen);
/* After the apply transaction commits (true) or aborts (false): in-memory state that
 * was staged during the batch becomes real or is dropped. */
void kv_lessor_commit(kv_t *kv, bool committed);
/* After a snapshot install: reload everything from the new file. */
int kv_lessor_reload(kv_t *kv, MDB_txn *txn);

/* ---- members.c: the membership ---- */
/* Applies one conf-change entry inside the batch's transaction (see members.c). */
int kv_members_apply(kv_wtxn_t *w, const raft_entry_t *e, kv_result_t *res);

/* ---- watch.c: the hub ---- */
int kv_hub_new(kv_t *kv);
void kv_hub_free(kv_t *kv);
/* Whether apply must build events at all: a caught-up watcher exists. (Watchers behind
 * read history from LMDB, so with none caught up the batch needs no events.) */
bool kv_hub_wants_events(const kv_t *kv);
bool kv_hub_wants_prev(const kv_t *kv);
/* The events of a committed batch, now at revision rev: delivered to caught-up watchers
 * in order; a watcher whose callback refuses falls behind. */
void kv_hub_notify(kv_t *kv, const kv_events_t *events, int64_t rev);
/* After a compaction or a snapshot install. */
void kv_hub_compacted(kv_t *kv, int64_t compact_rev);
void kv_hub_reset(kv_t *kv);

/* ---- range_pack.c: the buffer of a packed range and protobuf's varints ---- */
size_t kv_pb_varint_len(uint64_t v);
uint8_t *kv_pb_put_varint(uint8_t *p, uint64_t v); /* returns the byte after it */
/* A buffer of len bytes for *p (mapped when large); KV_ERR_NOMEM leaves *p empty. */
int kv_packed_alloc(kv_packed_t *p, size_t len);
/* kv_range_pack inside the caller's read transaction as of revision cur; hdr goes into
 * the answer as it is. */
int mvcc_range_pack(kv_t *kv, MDB_txn *txn, int64_t cur, const Etcdserverpb__RangeRequest *req,
		    const Etcdserverpb__ResponseHeader *hdr, size_t max_len, kv_packed_t *out);

/* ---- apply.c, for maint.c's swap ---- */
int kv_env_open(kv_t *kv);       /* lock, LMDB, databases, meta, lessor (reload if set) */
void kv_env_close(kv_t *kv);     /* LMDB and the lock; the lessor stays */

/* ---- maint.c ---- */
/* Runs req's AlarmRequest (field 10, as etcd's) inside the batch; *resp an AlarmResponse. */
int kv_alarm_dispatch(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req,
		      ProtobufCMessage **resp);
/* KV_ERR_QUOTA for a request with a quota cost while a NOSPACE alarm is active as the
 * batch sees it; KV_OK otherwise. */
int kv_alarm_capped(kv_wtxn_t *w, const Etcdserverpb__InternalRaftRequest *req);

#endif
