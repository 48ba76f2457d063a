/* raft/raft.h — the one public door of Keel's consensus core.
 * The core is a pure state machine: no sockets, files, threads, clocks or globals. Time
 * enters by raft_tick(), randomness from the seeded PRNG in the config, and everything the
 * core wants done leaves through a Ready batch that the caller acknowledges with
 * raft_advance(). Messages and entries are the protobuf-c types of proto/raft.proto.
 *
 * The Ready contract (in this order):
 *   1. persist rd.hard_state (if rd.hard_state_changed), rd.entries and rd.snapshot;
 *      when rd.must_sync is set this must be durable (fdatasync) before step 2;
 *   2. send rd.msgs (they are the caller's now: free each with raft_msg_free);
 *   3. apply rd.snapshot (if any), then rd.committed in order;
 *   4. serve rd.read_states once the applied index reaches each one's index;
 *   5. call raft_advance(node, &rd).
 * Everything in rd but msgs is borrowed from the node and valid until raft_advance(),
 * and no other call may be made on the node between raft_ready() and raft_advance().
 *
 * Threading: a raft_node_t is not thread-safe; one thread drives it.
 * Membership: single-server changes that take effect when the entry is appended to a log
 * (Raft thesis §4.1), see docs/architecture.md. Conf changes are applied by the core
 * itself; the caller only observes them (raft_status, raft_applied_conf). */
#ifndef KEEL_RAFT_H
#define KEEL_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.pb-c.h"

typedef Raftpb__Entry raft_entry_t;
typedef Raftpb__Message raft_msg_t;
typedef Raftpb__Snapshot raft_snapshot_t;
typedef Raftpb__ConfChange raft_conf_change_t;

#define RAFT_NONE 0 /* no node: ids are never 0 */

/* Short names for the message types of proto/raft.proto. */
#define RAFT_MSG_HUP RAFTPB__MESSAGE_TYPE__MSG_HUP
#define RAFT_MSG_BEAT RAFTPB__MESSAGE_TYPE__MSG_BEAT
#define RAFT_MSG_PROP RAFTPB__MESSAGE_TYPE__MSG_PROP
#define RAFT_MSG_APP RAFTPB__MESSAGE_TYPE__MSG_APP
#define RAFT_MSG_APP_RESP RAFTPB__MESSAGE_TYPE__MSG_APP_RESP
#define RAFT_MSG_VOTE RAFTPB__MESSAGE_TYPE__MSG_VOTE
#define RAFT_MSG_VOTE_RESP RAFTPB__MESSAGE_TYPE__MSG_VOTE_RESP
#define RAFT_MSG_SNAP RAFTPB__MESSAGE_TYPE__MSG_SNAP
#define RAFT_MSG_HEARTBEAT RAFTPB__MESSAGE_TYPE__MSG_HEARTBEAT
#define RAFT_MSG_HEARTBEAT_RESP RAFTPB__MESSAGE_TYPE__MSG_HEARTBEAT_RESP
#define RAFT_MSG_UNREACHABLE RAFTPB__MESSAGE_TYPE__MSG_UNREACHABLE
#define RAFT_MSG_SNAP_STATUS RAFTPB__MESSAGE_TYPE__MSG_SNAP_STATUS
#define RAFT_MSG_CHECK_QUORUM RAFTPB__MESSAGE_TYPE__MSG_CHECK_QUORUM
#define RAFT_MSG_TRANSFER_LEADER RAFTPB__MESSAGE_TYPE__MSG_TRANSFER_LEADER
#define RAFT_MSG_TIMEOUT_NOW RAFTPB__MESSAGE_TYPE__MSG_TIMEOUT_NOW
#define RAFT_MSG_READ_INDEX RAFTPB__MESSAGE_TYPE__MSG_READ_INDEX
#define RAFT_MSG_READ_INDEX_RESP RAFTPB__MESSAGE_TYPE__MSG_READ_INDEX_RESP
#define RAFT_MSG_PRE_VOTE RAFTPB__MESSAGE_TYPE__MSG_PRE_VOTE
#define RAFT_MSG_PRE_VOTE_RESP RAFTPB__MESSAGE_TYPE__MSG_PRE_VOTE_RESP

#define RAFT_ENTRY_NORMAL RAFTPB__ENTRY_TYPE__ENTRY_NORMAL
#define RAFT_ENTRY_CONF_CHANGE RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE

#define RAFT_CONF_ADD_NODE RAFTPB__CONF_CHANGE_TYPE__CONF_ADD_NODE
#define RAFT_CONF_REMOVE_NODE RAFTPB__CONF_CHANGE_TYPE__CONF_REMOVE_NODE
#define RAFT_CONF_ADD_LEARNER RAFTPB__CONF_CHANGE_TYPE__CONF_ADD_LEARNER
/* etcd's ConfChangeUpdateNode (wire value 3, outside proto/raft.proto's enum): a change of a
 * member's attributes carried in its context. Valid only for a member; it leaves the
 * configuration as it is, but is ordered like every conf change (one pending at a time). */
#define RAFT_CONF_UPDATE_NODE 3

/* Error codes: 0 is success, every error is negative. raft_strerror() names each. */
enum raft_err {
	RAFT_OK = 0,
	RAFT_ERR_COMPACTED = -1,          /* index is older than the storage's first entry */
	RAFT_ERR_UNAVAILABLE = -2,        /* index is past the storage's last entry */
	RAFT_ERR_SNAPSHOT_TEMP_UNAVAILABLE = -3, /* storage cannot produce a snapshot now */
	RAFT_ERR_SNAP_OUT_OF_DATE = -4,   /* snapshot is older than the storage's */
	RAFT_ERR_PROPOSAL_DROPPED = -5,   /* proposal refused (transfer, removed, forwarding off) */
	RAFT_ERR_NO_LEADER = -6,          /* nobody to forward to, or to serve a read */
	RAFT_ERR_CONF_CHANGE_PENDING = -7, /* an earlier conf change is not committed yet */
	RAFT_ERR_INVALID_CONF_CHANGE = -8, /* change makes no sense for the current config */
	RAFT_ERR_STEP_LOCAL_MSG = -9,     /* a local-only message type arrived from a peer */
	RAFT_ERR_STEP_PEER_NOT_FOUND = -10, /* response from a node the leader does not track */
	RAFT_ERR_INVALID_CONFIG = -11,
	RAFT_ERR_NOMEM = -12,
	RAFT_ERR_INVALID_MSG = -13,       /* malformed message (e.g. entries out of order) */
	RAFT_ERR_NOT_LEADER = -14,        /* operation needs this node to lead */
	RAFT_ERR_STORAGE = -15,           /* storage returned an unexpected error */
};
const char *raft_strerror(int err);

typedef enum raft_state {
	RAFT_FOLLOWER = 0,
	RAFT_CANDIDATE,
	RAFT_PRE_CANDIDATE,
	RAFT_LEADER,
} raft_state_t;
const char *raft_state_name(raft_state_t s);

typedef enum raft_read_only_option {
	RAFT_READ_SAFE = 0,  /* ReadIndex confirmed by a heartbeat round */
	RAFT_READ_LEASE,     /* leader lease; needs check_quorum (clock-drift assumption) */
} raft_read_only_option_t;

typedef struct raft_hard_state {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
} raft_hard_state_t;

/* Membership as plain data. */
#define RAFT_MAX_NODES 64
typedef struct raft_conf {
	size_t n_voters;
	size_t n_learners;
	uint64_t voters[RAFT_MAX_NODES];
	uint64_t learners[RAFT_MAX_NODES];
} raft_conf_t;

bool raft_conf_is_voter(const raft_conf_t *c, uint64_t id);
bool raft_conf_is_learner(const raft_conf_t *c, uint64_t id);
/* Applies one change; RAFT_ERR_INVALID_CONF_CHANGE leaves c unchanged. */
int raft_conf_apply(raft_conf_t *c, const raft_conf_change_t *cc);
/* Conversion to and from the ConfState of a snapshot. raft_conf_to_state allocates the
 * arrays of cs (free them with raft_conf_state_clear). */
int raft_conf_from_state(raft_conf_t *c, const Raftpb__ConfState *cs);
int raft_conf_to_state(const raft_conf_t *c, Raftpb__ConfState *cs);
void raft_conf_state_clear(Raftpb__ConfState *cs);

/* Storage: what the core reads its stable log, hard state and snapshot through. The
 * caller writes to it (from Ready); the core only reads. The log in storage holds the
 * entries (first_index-1, last_index]; the entry at first_index-1 is the snapshot's
 * (index and term only), and term() answers for it. */
typedef struct raft_storage_ops {
	int (*initial_state)(void *ctx, raft_hard_state_t *hs);
	/* Entries [lo, hi), stopping before max_bytes (data + 24 per entry) is exceeded (always at
	 * least one entry). out has room for hi-lo pointers; they are borrowed and stay
	 * valid until the storage is next modified. */
	int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		       raft_entry_t **out, size_t *n);
	int (*term)(void *ctx, uint64_t index, uint64_t *term);
	int (*first_index)(void *ctx, uint64_t *index);
	int (*last_index)(void *ctx, uint64_t *index);
	/* The latest snapshot, borrowed until the storage is next modified. */
	int (*snapshot)(void *ctx, const raft_snapshot_t **snap);
} raft_storage_ops_t;

typedef struct raft_storage {
	const raft_storage_ops_t *ops;
	void *ctx;
} raft_storage_t;

typedef struct raft_config {
	uint64_t id;                 /* this node; never RAFT_NONE */
	int election_tick;           /* ticks without a leader before campaigning (base) */
	int heartbeat_tick;          /* ticks between heartbeats; < election_tick */
	raft_storage_t storage;
	uint64_t applied;            /* last applied index when restarting */
	uint64_t max_committed_size_per_ready; /* bytes of committed entries per Ready, counted
						* like max_size_per_msg (0: no limit) */
	uint64_t max_size_per_msg;   /* bytes of entries per MsgApp, data plus 24 per entry
					 * for its header (0: one entry per message) */
	int max_inflight_msgs;       /* MsgApp in flight per follower when replicating */
	bool check_quorum;
	bool pre_vote;
	raft_read_only_option_t read_only_option;
	bool disable_proposal_forwarding;
	uint64_t seed;               /* PRNG seed for randomized election timeouts */
	/* Bootstrap: used only when storage is empty (no entries, no snapshot). The core then
	 * writes one committed conf-change entry per member at term 1, like every member of
	 * a new cluster does, so members added later learn the whole membership from the log. */
	const uint64_t *peers;
	size_t n_peers;
	const uint64_t *learners;
	size_t n_learners;
} raft_config_t;

/* Fills a config with the defaults used across Keel (election 10, heartbeat 1,
 * 1 MiB per message, 256 in flight, 64 MiB committed per Ready, pre-vote and
 * check-quorum on). */
void raft_config_default(raft_config_t *cfg, uint64_t id, raft_storage_t storage);

typedef struct raft_read_state {
	uint64_t index;              /* serve the read once applied >= index */
	ProtobufCBinaryData ctx;     /* the caller's request context */
} raft_read_state_t;

typedef struct raft_ready {
	bool soft_state_changed;
	uint64_t lead;
	raft_state_t state;

	bool hard_state_changed;
	raft_hard_state_t hard_state;

	raft_entry_t **entries;      /* to persist, in order */
	size_t n_entries;
	const raft_snapshot_t *snapshot; /* to persist and restore from, or NULL */
	raft_entry_t **committed;    /* to apply, in order */
	size_t n_committed;
	raft_msg_t **msgs;           /* to send; owned by the caller */
	size_t n_msgs;
	raft_read_state_t *read_states;
	size_t n_read_states;
	bool must_sync;
} raft_ready_t;

typedef struct raft_node raft_node_t;

int raft_node_new(const raft_config_t *cfg, raft_node_t **out);
void raft_node_free(raft_node_t *n);

void raft_tick(raft_node_t *n);
/* Feeds a message from a peer. The node copies what it keeps; m stays the caller's. */
int raft_step(raft_node_t *n, const raft_msg_t *m);
int raft_campaign(raft_node_t *n);
int raft_propose(raft_node_t *n, const void *data, size_t len);
int raft_propose_conf_change(raft_node_t *n, const raft_conf_change_t *cc);
/* Asks for a linearizable read point; the answer comes back as a read state with the
 * same ctx (on this node, even when the leader is elsewhere). */
int raft_read_index(raft_node_t *n, const void *ctx, size_t len);
int raft_transfer_leader(raft_node_t *n, uint64_t transferee);
void raft_report_unreachable(raft_node_t *n, uint64_t id);
void raft_report_snapshot(raft_node_t *n, uint64_t id, bool failed);

bool raft_has_ready(const raft_node_t *n);
int raft_ready(raft_node_t *n, raft_ready_t *rd);
void raft_advance(raft_node_t *n, raft_ready_t *rd);

typedef enum raft_progress_state {
	RAFT_PROGRESS_PROBE = 0,
	RAFT_PROGRESS_REPLICATE,
	RAFT_PROGRESS_SNAPSHOT,
} raft_progress_state_t;

typedef struct raft_status {
	uint64_t id;
	raft_state_t state;
	uint64_t term;
	uint64_t vote;
	uint64_t lead;
	uint64_t commit;
	uint64_t applied;
	uint64_t last_index;
	uint64_t first_index;        /* first entry still available to the core */
	uint64_t lead_transferee;
	raft_conf_t conf;            /* configuration in effect (at the log's tail) */
} raft_status_t;

void raft_status(const raft_node_t *n, raft_status_t *st);
/* Progress of a follower as seen by a leader; RAFT_ERR_NOT_LEADER / _PEER_NOT_FOUND. */
int raft_progress(const raft_node_t *n, uint64_t id, raft_progress_state_t *state,
		  uint64_t *match, uint64_t *next);
/* Membership as of the applied index: what a snapshot taken now must record. */
void raft_applied_conf(const raft_node_t *n, raft_conf_t *c);

/* Ownership helpers for the protobuf-c types, whether the core built them or
 * protobuf_c unpacked them with the default allocator. */
void raft_entry_free(raft_entry_t *e);
void raft_msg_free(raft_msg_t *m);
raft_msg_t *raft_msg_clone(const raft_msg_t *m);
void raft_snapshot_free(raft_snapshot_t *s);
raft_snapshot_t *raft_snapshot_clone(const raft_snapshot_t *s);
raft_entry_t *raft_entry_new(uint64_t term, uint64_t index, int type, const void *data,
			     size_t len);
raft_entry_t *raft_entry_clone(const raft_entry_t *e);

/* The in-memory storage, for tests, the simulator and benchmarks. */
typedef struct raft_memstorage raft_memstorage_t;
raft_memstorage_t *raft_memstorage_new(void);
void raft_memstorage_free(raft_memstorage_t *ms);
raft_storage_t raft_memstorage_storage(raft_memstorage_t *ms);
int raft_memstorage_set_hard_state(raft_memstorage_t *ms, const raft_hard_state_t *hs);
/* Appends copies; entries overlapping the stored log replace it from their first index. */
int raft_memstorage_append(raft_memstorage_t *ms, raft_entry_t *const *ents, size_t n);
/* Replaces the whole log with a copy of snap (RAFT_ERR_SNAP_OUT_OF_DATE if older). */
int raft_memstorage_apply_snapshot(raft_memstorage_t *ms, const raft_snapshot_t *snap);
/* Records a snapshot of the state at index (<= last index) with its membership. */
int raft_memstorage_create_snapshot(raft_memstorage_t *ms, uint64_t index,
				    const raft_conf_t *conf, const void *data, size_t len);
/* Drops entries up to index, which a snapshot must already cover: entries <= index
 * are then only reachable through that snapshot. */
int raft_memstorage_compact(raft_memstorage_t *ms, uint64_t index);

/* ---- The durable log (wal.c, snapfile.c) -------------------------------------------
 * A member's directory holds wal/ (segments) and snap/ (snapshot files); raft_wal_open
 * takes an exclusive lock on it (a second process gets RAFT_ERR_LOCKED with a message).
 * Records are framed with their length and a CRC32C and written to preallocated
 * segments; one fdatasync covers a whole raft_wal_save (group commit). Open replays the
 * directory into an in-memory copy of the log, which raft_wal_storage serves to the core.
 * A torn last record (a crash mid-write) is cut off on open; a bad record anywhere else
 * refuses to open, and err names the file and the offset. Not thread-safe: one thread
 * at a time per handle. */
enum {
	RAFT_ERR_IO = -20,           /* a system call failed; err/raft_wal_error says which */
	RAFT_ERR_CORRUPT = -21,      /* a record or snapshot file fails its checksum or framing */
	RAFT_ERR_LOCKED = -22,       /* another process holds the directory */
};

/* CRC32C (Castagnoli) of n bytes continuing from crc (0 to start): the WAL's and the
 * snapshot files' checksum, also used by kvstore's HashKV. */
uint32_t raft_crc32c(uint32_t crc, const void *p, size_t n);

typedef struct raft_wal raft_wal_t;
typedef struct raft_wal_options {
	uint64_t segment_size;       /* bytes preallocated per segment (default 64 MiB) */
	bool no_sync;                /* skip fdatasync/fsync (tests and the simulator only) */
} raft_wal_options_t;
void raft_wal_options_default(raft_wal_options_t *opt);

/* Opens or creates the log in dir (created if missing, with wal/ and snap/). */
int raft_wal_open(const char *dir, const raft_wal_options_t *opt, raft_wal_t **out,
		  char *err, size_t errlen);
void raft_wal_close(raft_wal_t *w);
/* What the core reads through; valid until raft_wal_close. */
raft_storage_t raft_wal_storage(raft_wal_t *w);
/* The message of the last error, naming the file (and offset for corruption). */
const char *raft_wal_error(const raft_wal_t *w);

/* Persists one Ready's log part: the hard state (when hs is not NULL) and entries (an
 * entry overlapping the log replaces it from its index on, on disk and in memory), then
 * one fdatasync when sync is true (the Ready's must_sync). Durable on return. */
int raft_wal_save(raft_wal_t *w, const raft_hard_state_t *hs, raft_entry_t *const *ents,
		  size_t n, bool sync);
/* Persists a snapshot received from the leader: its file first (atomically, checksummed),
 * then a marker record, and the in-memory log restarts after it. */
int raft_wal_save_snapshot(raft_wal_t *w, const raft_snapshot_t *snap);
/* Records a snapshot of the local state machine at index (<= last index) with its
 * membership and data, then drops the log up to compact_index (<= index) and releases
 * every segment whose entries are all at or below it. */
int raft_wal_create_snapshot(raft_wal_t *w, uint64_t index, const raft_conf_t *conf,
			     const void *data, size_t len, uint64_t compact_index);

/* For crash tests: closes the log as a power cut would. Every byte written since the
 * last fdatasync may be lost; the tail segment keeps keep_unsynced of them (capped at what
 * was written), which may end in the middle of a record. */
void raft_wal_crash(raft_wal_t *w, uint64_t keep_unsynced);

#endif
