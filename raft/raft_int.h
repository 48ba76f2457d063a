/* raft/raft_int.h — the core's internal types, shared by the files of raft/ only:
 * the log (stable storage + unstable tail), per-follower progress, membership history,
 * pending ReadIndex requests and the node itself. Never included outside raft/. */
#ifndef KEEL_RAFT_INT_H
#define KEEL_RAFT_INT_H

#include "raft.h"

/* ---- log.c: storage + the unstable tail not yet handed to storage ---- */
typedef struct raft_log {
	raft_storage_t storage;
	raft_snapshot_t *u_snap;   /* incoming snapshot not yet persisted (owned) */
	raft_entry_t **u_ents;     /* u_ents[i]->index == u_offset + i (owned) */
	size_t u_n, u_cap;
	uint64_t u_offset;
	uint64_t committed;
	uint64_t applied;
} raft_log_t;

int log_init(raft_log_t *l, raft_storage_t storage);
void log_free(raft_log_t *l);
uint64_t log_first_index(const raft_log_t *l);
uint64_t log_last_index(const raft_log_t *l);
uint64_t log_stabled_index(const raft_log_t *l);
int log_term(const raft_log_t *l, uint64_t i, uint64_t *t);
uint64_t log_term_or_zero(const raft_log_t *l, uint64_t i);
uint64_t log_last_term(const raft_log_t *l);
bool log_match_term(const raft_log_t *l, uint64_t i, uint64_t t);
bool log_is_up_to_date(const raft_log_t *l, uint64_t lasti, uint64_t term);
/* Appends owned entries after truncating any conflicting suffix; returns the new last. */
int log_append(raft_log_t *l, raft_entry_t **ents, size_t n);
uint64_t log_find_conflict(const raft_log_t *l, raft_entry_t *const *ents, size_t n);
uint64_t log_find_conflict_by_term(const raft_log_t *l, uint64_t index, uint64_t term,
				   uint64_t *term_out);
/* Copies of entries [lo, last] up to max_bytes (at least one). */
int log_entries(const raft_log_t *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		raft_entry_t ***out, size_t *n);
void log_commit_to(raft_log_t *l, uint64_t c);
bool log_maybe_commit(raft_log_t *l, uint64_t max_index, uint64_t term);
void log_stable_to(raft_log_t *l, uint64_t i, uint64_t t);
void log_stable_snap_to(raft_log_t *l, uint64_t i);
int log_restore(raft_log_t *l, const raft_snapshot_t *s);
int log_snapshot(const raft_log_t *l, const raft_snapshot_t **s);
bool log_has_next_committed(const raft_log_t *l);
void entries_free(raft_entry_t **ents, size_t n);
/* Makes room for one more element after n in *arr (capacity *cap, doubling). */
int array_grow(void **arr, size_t *cap, size_t n, size_t elem);
#define ENTRY_OVERHEAD 24 /* type, term, index and framing of an entry on the wire */
size_t entry_size(const raft_entry_t *e);

/* ---- progress.c: a leader's view of one follower ---- */
typedef struct inflights {
	size_t start, count, size;
	uint64_t *buf;
} inflights_t;

typedef struct progress {
	uint64_t id;
	uint64_t match, next;
	raft_progress_state_t state;
	uint64_t pending_snapshot;
	bool recent_active;
	bool probe_sent;
	bool is_learner;
	uint64_t lease_ack;        /* leader tick stamped on the newest acked heartbeat */
	uint64_t snapshot_sent;    /* leader tick the pending snapshot was sent at */
	inflights_t ins;
} progress_t;

void progress_init(progress_t *p, uint64_t id, uint64_t next, bool learner);
void progress_become_probe(progress_t *p);
void progress_become_replicate(progress_t *p);
void progress_become_snapshot(progress_t *p, uint64_t snapi);
bool progress_maybe_update(progress_t *p, uint64_t n);
bool progress_maybe_decr_to(progress_t *p, uint64_t rejected, uint64_t match_hint);
bool progress_is_paused(const progress_t *p);
void inflights_add(inflights_t *in, uint64_t last);
void inflights_free_le(inflights_t *in, uint64_t to);
void inflights_free_first(inflights_t *in);
bool inflights_full(const inflights_t *in);

/* ---- conf.c: membership history of the log, for on-append changes ---- */
typedef struct conf_point {
	uint64_t index;            /* log index of the change (or of the snapshot) */
	raft_conf_t conf;          /* membership from that index on */
} conf_point_t;

typedef struct conf_history {
	conf_point_t *pts;         /* pts[0] is at or before the applied index */
	size_t n, cap;
} conf_history_t;

void conf_history_free(conf_history_t *h);
int conf_history_reset(conf_history_t *h, uint64_t index, const raft_conf_t *c);
const raft_conf_t *conf_history_current(const conf_history_t *h);
/* Records the change carried by a conf-change entry; invalid changes change nothing. */
int conf_history_on_append(conf_history_t *h, const raft_entry_t *e);
void conf_history_truncate(conf_history_t *h, uint64_t from_index);
void conf_history_compact(conf_history_t *h, uint64_t applied);
const raft_conf_t *conf_history_at(const conf_history_t *h, uint64_t index);
int conf_change_decode(const raft_entry_t *e, raft_conf_change_t **cc);

/* ---- pending ReadIndex requests on a leader ---- */
typedef struct read_req {
	ProtobufCBinaryData ctx;   /* owned */
	uint64_t index;
	uint64_t from;             /* requesting node (self for local) */
	uint64_t acks[RAFT_MAX_NODES];
	size_t n_acks;
} read_req_t;

/* ---- raft.c: the node ---- */
struct raft_node {
	uint64_t id;
	uint64_t term;
	uint64_t vote;
	uint64_t lead;
	raft_state_t state;
	raft_log_t log;
	conf_history_t confs;

	progress_t *prs;           /* RAFT_MAX_NODES slots allocated at start, so a leader
				    * never fails to track a member; n_prs in use */
	size_t n_prs;
	uint64_t *inflight_pool;   /* the slots' inflight rings */

	uint64_t votes[RAFT_MAX_NODES];   /* candidate: voters heard from */
	bool granted[RAFT_MAX_NODES];
	size_t n_votes;

	raft_msg_t **msgs;         /* outbox, handed to the caller by Ready */
	size_t n_msgs, cap_msgs;

	read_req_t *reads;         /* leader: ReadIndex waiting for a heartbeat quorum */
	size_t n_reads, cap_reads;
	raft_msg_t **pending_reads; /* leader: requests waiting for a commit in this term */
	size_t n_pending_reads, cap_pending_reads;
	raft_read_state_t *read_states;
	size_t n_read_states, cap_read_states;

	uint64_t lead_transferee;
	uint64_t pending_conf_index;
	bool lease_disabled;       /* leader sent TimeoutNow this term: no lease reads */
	bool append_pending;       /* leader: proposals since the last Ready, not yet sent */

	int election_elapsed;
	int heartbeat_elapsed;
	int election_timeout;
	int heartbeat_timeout;
	int randomized_election_timeout;
	uint64_t ticks;            /* ticks since this node started: lease stamps */

	bool check_quorum;
	bool pre_vote;
	raft_read_only_option_t read_only;
	bool disable_proposal_forwarding;
	uint64_t max_msg_size;
	uint64_t max_committed_size;
	int max_inflight;
	uint64_t rng;

	/* Ready bookkeeping */
	raft_hard_state_t prev_hs;
	uint64_t prev_lead;
	raft_state_t prev_state;
	raft_entry_t **rd_committed;
	size_t rd_n_committed;
	raft_msg_t **rd_msgs;      /* the array handed out; its messages are the caller's */
};

/* raft.c internals used by node.c */
int raft_init(raft_node_t *r, const raft_config_t *cfg);
void raft_deinit(raft_node_t *r);
int raft_step_msg(raft_node_t *r, const raft_msg_t *m);
void raft_on_stable(raft_node_t *r);
void raft_flush_appends(raft_node_t *r);
progress_t *raft_progress_of(const raft_node_t *r, uint64_t id);
raft_msg_t *msg_new(int type, uint64_t to);
int bytes_copy(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src);

#endif
