/* tests/sim/sim.h — the simulated cluster's shared types: per-seed knobs, nodes (a raft
 * node over a memstorage "disk" plus a volatile state machine), clients and the cluster.
 * Internal to tests/sim; each .c file owns one concern and says so at its top. */
#ifndef KEEL_SIM_SIM_H
#define KEEL_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "kvstore.h"
#include "net.h"
#include "prng.h"
#include "raft.h"
#include "sm.h"
#include "trace.h"

#define SIM_MAX_IDS 63 /* node ids 1..63: partitions are bit masks */

/* Everything a seed decides about a run (params.c). */
typedef struct sim_params {
	uint64_t seed;
	int nodes;                   /* initial voters: 3, 5 or 7 */
	/* raft configuration */
	int election_tick, heartbeat_tick;
	bool pre_vote, check_quorum, no_forwarding;
	raft_read_only_option_t read_only;
	uint64_t max_size_per_msg;
	int max_inflight;
	/* run shape, in ticks */
	uint64_t chaos_ticks;        /* faults and clients */
	uint64_t heal_ticks;         /* base bound for converging afterwards (plus backlog) */
	/* faults (per tick unless said otherwise) */
	sim_net_faults_t net;
	double p_crash, p_crash_in_ready, p_partition, p_slow_disk /* per Ready */;
	double p_transfer, p_campaign, p_conf;
	uint64_t down_min, down_max, part_min, part_max, slow_max /* substeps */;
	/* clients and the application */
	double p_write, p_read, p_follower_op;
	size_t write_pad_max;
	uint64_t snap_every, snap_keep;
	const char *disk_dir;        /* --disk: real WAL + kvstore under it; NULL: memory */
} sim_params_t;

void sim_params_from_seed(sim_params_t *p, uint64_t seed, int nodes);
void sim_params_print(const sim_params_t *p, FILE *out);

typedef enum sim_node_state {
	SIM_NODE_FREE = 0,  /* id never used */
	SIM_NODE_JOINING,   /* a conf change adding it was proposed; not started yet */
	SIM_NODE_UP,
	SIM_NODE_DOWN,      /* crashed; its disk (memstorage) survives */
	SIM_NODE_GONE,      /* removed from the cluster and shut down for good */
} sim_node_state_t;

typedef struct sim_pending_read {
	uint64_t rid, index;
} sim_pending_read_t;

/* A conf-change entry on a node's disk. */
typedef struct sim_conf_ent {
	uint64_t index;
	int type;                    /* RAFT_CONF_*, -1 if it did not decode */
	uint64_t id;
} sim_conf_ent_t;

/* The membership a node's disk implies: base (at base_index) + the changes after it. */
typedef struct sim_confs {
	raft_conf_t base;
	uint64_t base_index;
	sim_conf_ent_t *ents;
	size_t n, cap;
	raft_conf_t tail;            /* cache of the membership at the log's tail ... */
	bool tail_ok;                /* ... valid until the entries or the base change */
} sim_confs_t;

typedef struct sim_node {
	uint64_t id;
	sim_node_state_t state;
	bool boot;                   /* an initial member: bootstraps with the initial peers */
	bool doomed;                 /* a removal was proposed: never add or promote it again */
	bool removed;                /* a committed conf change removed it */
	raft_memstorage_t *ms;       /* the disk in memory mode ... */
	raft_wal_t *wal;             /* ... or the WAL and ... */
	kv_t *kv;                    /* ... the store, with --disk (disk.c) */
	bool torn;                   /* the next crash cuts the WAL torn_keep bytes into ... */
	uint64_t torn_keep;          /* ... what was written since the last sync */
	sim_confs_t confs;           /* membership on the disk (survives crashes) */
	raft_node_t *raft;           /* volatile: NULL unless UP */
	sim_sm_t sm;                 /* volatile */
	uint64_t life;               /* incremented at every start */
	raft_hard_state_t hs;        /* what the disk holds */
	raft_status_t st;            /* last observed status */
	raft_state_t role;
	uint64_t life_commit;        /* highest commit seen in this life */
	uint64_t led_term;           /* last term it was seen leading (completeness checked) */
	uint64_t ready_at;           /* slow disk: its next Ready is handled no earlier */
	bool crash_in_ready;         /* crash while handling its next Ready ... */
	uint64_t crash_down;         /* ... and stay down this many ticks */
	bool self_stop;              /* applied its own removal: shut down after advance */
	uint64_t restart_at, stop_at;
	uint64_t snap_index;         /* index of the disk's snapshot */
	sim_pending_read_t *reads;
	size_t n_reads, cap_reads;
} sim_node_t;

typedef struct sim_write {
	uint64_t node, life;         /* proposer */
	uint64_t index;              /* where it was acknowledged */
	bool acked;
} sim_write_t;

typedef struct sim_read {
	uint64_t node, life, start;
	uint64_t need_index;         /* highest index of a write acknowledged before start */
	uint64_t need_wid;           /* that write */
	bool served;
} sim_read_t;

typedef struct sim_clients {
	sim_write_t *w;              /* w[wid], wid from 1 */
	size_t n_w, cap_w;
	sim_read_t *r;               /* r[rid], rid from 1 */
	size_t n_r, cap_r;
	uint64_t max_acked_index, max_acked_wid;
	uint64_t acked, served;
} sim_clients_t;

/* A lease the simulated clients granted (lease.c); times in ms of the tick clock. */
typedef struct sim_lease {
	int64_t id;
	uint64_t ttl_ms;
	bool keep;                   /* clients keep it alive */
	uint64_t granted_at;         /* first apply of its grant, 0 until then */
	uint64_t renewed_at;         /* last successful keep-alive */
	uint64_t acked_at;           /* last keep-alive a later checkpoint carried */
	uint64_t next_renew;
	uint64_t revoked_at;
} sim_lease_t;

/* An expiry some leader decided before the TTL had run (it must never commit). */
typedef struct sim_lease_early {
	int64_t id;
	uint64_t term, by, at, since, ttl_ms;
} sim_lease_early_t;

/* A checkpoint proposal: it covers the renewals its proposer made before it. */
typedef struct sim_lease_cp {
	int64_t id;
	uint64_t term, by, covers;
	bool applied;
} sim_lease_cp_t;

/* A successful keep-alive: who took it, in which term. */
typedef struct sim_lease_renewal {
	int64_t id;
	uint64_t by, term, at;
} sim_lease_renewal_t;

typedef struct sim_leases {
	sim_lease_t l[512];
	size_t n;
	sim_lease_renewal_t renewals[4096]; /* a ring */
	size_t n_renewals;
	uint64_t promoted_at[SIM_MAX_IDS + 1]; /* when each node's lessor last became primary */
	sim_lease_cp_t cps[4096];    /* a ring */
	size_t n_cps;
	sim_lease_early_t early[512];
	size_t n_early;
} sim_leases_t;

typedef enum sim_phase {
	SIM_PHASE_CHAOS = 0,
	SIM_PHASE_HEAL,
	SIM_PHASE_DONE,
} sim_phase_t;

typedef struct sim_cluster {
	sim_params_t p;
	sim_rng_t rng;
	uint64_t now;                /* substeps */
	uint64_t tick;               /* ticks so far */
	uint64_t next_tick_at;
	sim_phase_t phase;
	uint64_t heal_start;         /* tick the heal phase began */
	uint64_t heal_deadline;      /* tick by which it must have converged */
	uint64_t heal_took;          /* ticks it took */
	bool scripted;               /* demo: no random faults, clients or conf changes */
	sim_node_t nodes[SIM_MAX_IDS + 1]; /* nodes[id] */
	uint64_t next_id;
	sim_net_t net;
	sim_check_t chk;
	sim_trace_t trace;
	sim_clients_t cl;
	sim_leases_t leases;
	raft_entry_t **scratch;      /* storage reads */
	size_t scratch_cap;
	uint64_t leader;             /* last leader seen, for logging changes */
	uint64_t conf_logged;        /* highest conf-change index reported committed */
	uint64_t elections, crashes, snapshots_sent, conf_changes;
} sim_cluster_t;

#define SIM_TRACE_C(c, kind, ...) SIM_TRACE(&(c)->trace, (c)->now, kind, __VA_ARGS__)

static inline bool sim_failed(const sim_cluster_t *c)
{
	return c->chk.failed;
}

/* cluster.c: life cycle and the event loop. */
sim_cluster_t *sim_cluster_new(const sim_params_t *p, int verbose, FILE *out);
void sim_cluster_free(sim_cluster_t *c);
/* Runs until the heal phase converged (true) or an invariant broke (false). */
bool sim_cluster_run(sim_cluster_t *c);
/* Advances simulated time by n ticks (or until failure). */
void sim_cluster_run_ticks(sim_cluster_t *c, uint64_t n);
/* Heal phase: faults stop, partitions heal, crashed members restart. */
void sim_cluster_begin_heal(sim_cluster_t *c);
/* True when a leader leads every member and all of them applied everything. */
bool sim_cluster_converged(sim_cluster_t *c);
/* The live leader of the highest term, or NULL. */
sim_node_t *sim_cluster_leader(sim_cluster_t *c);
sim_node_t *sim_cluster_node(sim_cluster_t *c, uint64_t id);

/* node.c: one node's life; ready.c: its Ready loop. */
const raft_storage_ops_t *sim_node_ops(const sim_node_t *n, void **ctx);
raft_entry_t **sim_cluster_scratch(sim_cluster_t *c, size_t n); /* borrowed buffer */
void sim_node_start(sim_cluster_t *c, sim_node_t *n);
void sim_node_crash(sim_cluster_t *c, sim_node_t *n, uint64_t down_ticks);
void sim_node_stop(sim_cluster_t *c, sim_node_t *n);
void sim_node_handle_ready(sim_cluster_t *c, sim_node_t *n);
/* Hands a message that came out of the network to its addressee (unless it was lost, the
 * addressee is down or partitioned away: then the sender hears of it); frees it. */
void sim_node_deliver(sim_cluster_t *c, raft_msg_t *m, bool lost);
void sim_node_observe(sim_cluster_t *c, sim_node_t *n);
void sim_node_snapshot(sim_cluster_t *c, sim_node_t *n);

/* client.c: writes and reads and the linearizability bookkeeping. */
void sim_clients_free(sim_clients_t *cl);
uint64_t sim_client_write(sim_cluster_t *c, sim_node_t *n);
uint64_t sim_client_read(sim_cluster_t *c, sim_node_t *n);
void sim_client_on_apply(sim_cluster_t *c, sim_node_t *n, const raft_entry_t *e);
void sim_client_on_read_state(sim_cluster_t *c, sim_node_t *n, const raft_read_state_t *rs);
void sim_client_serve_reads(sim_cluster_t *c, sim_node_t *n);
/* Every acknowledged write must be in n's state machine. */
bool sim_client_check_member(sim_cluster_t *c, sim_node_t *n);
void sim_client_tick(sim_cluster_t *c);

/* member.c: membership changes and the nodes they start and stop. */
int sim_member_propose(sim_cluster_t *c, sim_node_t *leader, int type, uint64_t id);
void sim_member_tick(sim_cluster_t *c);
void sim_member_on_apply(sim_cluster_t *c, sim_node_t *n, const raft_entry_t *e);
uint64_t sim_member_new_id(sim_cluster_t *c);

/* confs.c: membership implied by each node's disk, checked against the core's. */
void sim_confs_free(sim_confs_t *cf);
void sim_confs_on_append(sim_confs_t *cf, raft_entry_t *const *ents, size_t count);
void sim_confs_rebase(sim_confs_t *cf, uint64_t index, const raft_conf_t *conf, bool keep_tail);
/* Rebuilds n's view from what its disk holds now (after a crash lost part of it). */
void sim_confs_reload(sim_cluster_t *c, sim_node_t *n);
void sim_confs_check(sim_cluster_t *c, sim_node_t *n);
bool sim_confs_check_applied(sim_cluster_t *c, sim_node_t *n, uint64_t index,
			     const raft_conf_t *conf);
void sim_confs_check_commit(sim_cluster_t *c, sim_node_t *leader, uint64_t index);

/* faults.c: crashes, restarts, partitions, transfers and forced campaigns. */
void sim_faults_tick(sim_cluster_t *c);
void sim_faults_restart_due(sim_cluster_t *c);
void sim_faults_heal_due(sim_cluster_t *c);
void sim_faults_isolate(sim_cluster_t *c, uint64_t id, uint64_t ticks);
void sim_faults_heal_all(sim_cluster_t *c);
int sim_faults_transfer(sim_cluster_t *c, sim_node_t *leader, uint64_t to);

/* disk.c: a node's disk, in memory or (--disk) the real WAL and kvstore. */
bool sim_disk_on(const sim_cluster_t *c);
raft_storage_t sim_disk_storage(const sim_node_t *n);
bool sim_disk_present(const sim_node_t *n);
bool sim_disk_open(sim_cluster_t *c, sim_node_t *n);
void sim_disk_crash(sim_cluster_t *c, sim_node_t *n);
void sim_disk_destroy(sim_cluster_t *c, sim_node_t *n);
int sim_disk_save(sim_cluster_t *c, sim_node_t *n, const raft_hard_state_t *hs,
		  raft_entry_t *const *ents, size_t count, bool sync);
bool sim_disk_torn(sim_cluster_t *c, sim_node_t *n, const raft_ready_t *rd);
const char *sim_disk_error(const sim_node_t *n, int rc);
bool sim_disk_snapshot_data(sim_cluster_t *c, sim_node_t *n, uint8_t **data, size_t *len);
bool sim_disk_snapshot_sm(const sim_cluster_t *c, const uint8_t *data, size_t len,
			  const uint8_t **sm, size_t *sm_len);
bool sim_disk_install(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap);
int sim_disk_save_snapshot(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap);
int sim_disk_create_snapshot(sim_cluster_t *c, sim_node_t *n, uint64_t index,
			     const raft_conf_t *conf, const void *data, size_t len, uint64_t upto);
bool sim_disk_apply(sim_cluster_t *c, sim_node_t *n, raft_entry_t *const *ents, size_t count);
bool sim_disk_check_converged(sim_cluster_t *c, const raft_conf_t *conf);

/* lease.c: leases granted, kept alive and expired through the leader (--disk only). */
uint64_t sim_lease_now_ms(void *ctx);
void sim_lease_tick(sim_cluster_t *c);
void sim_lease_on_role(sim_cluster_t *c, sim_node_t *n, uint64_t applied_term);
void sim_lease_on_result(sim_cluster_t *c, sim_node_t *n, const kv_result_t *r,
			 const Etcdserverpb__InternalRaftRequest *req);
bool sim_lease_check_converged(sim_cluster_t *c, sim_node_t *leader);

/* demo.c: the scripted story; 0 when every act happened and every invariant held. */
int sim_demo_run(uint64_t seed, int verbose, FILE *out, const char *disk_dir);

#endif
