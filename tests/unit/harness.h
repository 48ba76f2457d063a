/* tests/unit/harness.h — a tiny in-process "network" of raft nodes for the unit tests.
 * Owns the message queue, delivery filters, the Ready loop (raft.h's contract, persisting
 * into a raft_memstorage_t) and what each node applied. Pure test code: no I/O. */
#ifndef KEEL_TEST_HARNESS_H
#define KEEL_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include "raft.h"

#define H_MAX_NODES 8   /* ids 1..H_MAX_NODES */
#define H_MSG_TYPES 20  /* message types counted in h_net_t.sent */
#define H_ANY 0         /* wildcard for from/to in the queue helpers */
#define H_ANY_TYPE (-1) /* wildcard for the type in the queue helpers */

typedef struct h_net h_net_t;
typedef struct h_node h_node_t;

/* Adjusts the config of a node before it starts (applied to every node of a net). */
typedef void (*h_cfg_fn)(raft_config_t *cfg);
/* Returns true to drop the message (called for every message taken off the queue); may
 * also rewrite the message (e.g. deliver only a prefix of its entries). */
typedef bool (*h_filter_fn)(h_net_t *net, raft_msg_t *m, void *arg);
/* Sees every Ready of every node before the harness handles it. */
typedef void (*h_ready_fn)(h_net_t *net, h_node_t *nd, const raft_ready_t *rd, void *arg);

typedef struct h_read {
	uint64_t index;
	char ctx[32];
} h_read_t;

struct h_node {
	uint64_t id;
	bool present;                /* has storage (started at least once) */
	raft_node_t *raft;           /* NULL while stopped */
	raft_memstorage_t *ms;
	uint64_t applied;            /* last index applied (entry or snapshot) */
	raft_entry_t **ents;         /* copies of every applied entry, in order */
	size_t n_ents, cap_ents;
	h_read_t *reads;             /* read states received, in order */
	size_t n_reads, cap_reads;
	size_t n_snaps;              /* snapshots received through Ready */
	uint64_t snap_index;         /* index of the last snapshot applied from Ready */
	uint64_t max_commit;         /* highest hard_state.commit seen in a Ready */
	uint64_t compact_every;      /* >0: snapshot+compact once applied moves this far */
	uint64_t peers[H_MAX_NODES];
	size_t n_peers;
	uint64_t learners[H_MAX_NODES];
	size_t n_learners;
};

struct h_net {
	h_node_t nodes[H_MAX_NODES + 1]; /* by id; [0] unused */
	h_cfg_fn cfg_fn;
	raft_msg_t **queue;
	size_t n_queue, cap_queue;
	bool cut[H_MAX_NODES + 1][H_MAX_NODES + 1]; /* cut[from][to] drops */
	uint32_t drop_types;                         /* bit per message type */
	h_filter_fn filter;
	void *filter_arg;
	h_ready_fn ready_hook;
	void *hook_arg;
	bool wire;             /* pack/unpack every message before delivery (default) */
	bool auto_report_snap; /* report a delivered MsgSnap as done to its sender */
	size_t sent[H_MAX_NODES + 1][H_MAX_NODES + 1][H_MSG_TYPES]; /* [from][to][type] */
	size_t step_errors;
};

/* Nets. Voters get ids 1..n_voters, learners the ids after them; all bootstrap. */
h_net_t *h_net_new(size_t n_voters, size_t n_learners, h_cfg_fn fn);
/* A net with no nodes yet: add them with h_node_boot / h_node_join / h_node_boot_log. */
h_net_t *h_net_alloc(h_cfg_fn fn);
void h_net_free(h_net_t *net);

/* Node lifecycle. */
void h_config(h_net_t *net, uint64_t id, raft_config_t *cfg); /* the config h_* uses */
void h_node_boot(h_net_t *net, uint64_t id, const uint64_t *peers, size_t n_peers,
		 const uint64_t *learners, size_t n_learners);
void h_node_join(h_net_t *net, uint64_t id); /* empty storage, no peers: a new member */
/* Storage holding a snapshot at index 1 (term 1, the given voters) then one entry per
 * element of terms (indices 2..), hard state {hs_term, 0, commit}. */
void h_node_boot_log(h_net_t *net, uint64_t id, const uint64_t *voters, size_t n_voters,
		     const uint64_t *terms, size_t n_terms, uint64_t hs_term, uint64_t commit);
void h_stop(h_net_t *net, uint64_t id);    /* frees the raft node, keeps storage */
void h_start(h_net_t *net, uint64_t id);   /* restarts from storage, applied kept */
void h_restart(h_net_t *net, uint64_t id); /* h_stop + h_start */

h_node_t *h_node(h_net_t *net, uint64_t id);
raft_node_t *h_raft(h_net_t *net, uint64_t id);
raft_status_t h_status(h_net_t *net, uint64_t id);
raft_state_t h_state(h_net_t *net, uint64_t id);
uint64_t h_term(h_net_t *net, uint64_t id);
/* The present node that leads with the highest term, or 0. */
uint64_t h_leader(h_net_t *net);
size_t h_count_leaders(h_net_t *net);

/* Driving. */
void h_drain(h_net_t *net, uint64_t id);   /* handle every Ready of one node */
void h_drain_all(h_net_t *net);
/* Handles one Ready the caller got from raft_ready: persist, queue msgs, apply, advance. */
void h_ready_handle(h_net_t *net, h_node_t *nd, raft_ready_t *rd);
size_t h_deliver(h_net_t *net);            /* drain, then deliver what is queued once */
void h_stabilize(h_net_t *net);            /* deliver until nothing moves */
void h_tick(h_net_t *net, uint64_t id, int n);
void h_tick_all(h_net_t *net, int n);
/* n rounds of: tick every running node once, then stabilize. */
void h_tick_stabilize(h_net_t *net, int n);
void h_elect(h_net_t *net, uint64_t id);   /* campaign + stabilize; asserts it leads */
int h_propose(h_net_t *net, uint64_t id, const char *s);
int h_propose_cc(h_net_t *net, uint64_t id, int type, uint64_t node_id);
int h_read_index(h_net_t *net, uint64_t id, const char *ctx);

/* Filters. */
void h_cut(h_net_t *net, uint64_t a, uint64_t b); /* both directions */
void h_isolate(h_net_t *net, uint64_t id);
void h_heal(h_net_t *net); /* clears cuts, dropped types and the filter */
void h_drop_type(h_net_t *net, int type);
void h_set_filter(h_net_t *net, h_filter_fn fn, void *arg);
void h_set_ready_hook(h_net_t *net, h_ready_fn fn, void *arg);

/* The queue. from/to may be H_ANY, type H_ANY_TYPE. */
size_t h_count(const h_net_t *net, int type, uint64_t from, uint64_t to);
/* Removes up to max matching messages into out (the caller frees with raft_msg_free). */
size_t h_take(h_net_t *net, int type, uint64_t from, uint64_t to, raft_msg_t **out,
	      size_t max);
void h_send(h_net_t *net, raft_msg_t *m); /* enqueues, taking ownership */
void h_clear(h_net_t *net);
size_t h_sent(const h_net_t *net, int type, uint64_t from, uint64_t to);
void h_reset_sent(h_net_t *net);

/* Storage and state machine views. */
uint64_t h_log_term(h_net_t *net, uint64_t id, uint64_t index); /* 0 if unavailable */
uint64_t h_last_index(h_net_t *net, uint64_t id);                /* of the storage */
uint64_t h_first_index(h_net_t *net, uint64_t id);               /* of the storage */
bool h_logs_equal(h_net_t *net, uint64_t a, uint64_t b);         /* terms of stored logs */
size_t h_applied_count(h_net_t *net, uint64_t id, const char *s); /* normal entries == s */
size_t h_applied_normal(h_net_t *net, uint64_t id);              /* non-empty normal */
/* Snapshot at the node's applied index with its applied conf, then compacts to it. */
void h_compact(h_net_t *net, uint64_t id);

/* A message on the stack, for raft_step: no fields owned. */
raft_msg_t h_msg(int type, uint64_t from, uint64_t to, uint64_t term);

#endif
