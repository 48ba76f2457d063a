/* tests/sim/net.h — the simulated network: in-flight messages in time order, FIFO per link
 * like the peers' TCP connections, with loss, duplication, reordering and (one-way or
 * symmetric) partitions as faults. Owns what it holds; never calls into a raft node. */
#ifndef KEEL_SIM_NET_H
#define KEEL_SIM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prng.h"
#include "raft.h"

typedef struct sim_net_faults {
	double drop;       /* a message is lost */
	double dup;        /* a message is delivered twice */
	double reorder;    /* a message leaves its link's FIFO order: up to jitter_max late */
	double long_delay; /* a message arrives up to long_max substeps late (stale) */
	double wire;       /* a message goes through protobuf pack + unpack */
	uint64_t lat_min, lat_max, jitter_max, long_max;
} sim_net_faults_t;

/* Messages from a node in set a to a node in set b are lost (and b to a if symmetric). */
typedef struct sim_partition {
	uint64_t a, b;     /* bit i: node id i */
	bool symmetric;
	uint64_t until;    /* heals at this time */
} sim_partition_t;

typedef struct sim_packet {
	uint64_t at;       /* delivery time */
	uint64_t tie;      /* send order among packets due at the same time */
	raft_msg_t *m;
	bool lost;         /* dropped by the network: surfaces at `at` so the sender can be
	                    * told it was unreachable, but never reaches the receiver */
} sim_packet_t;

#define SIM_NET_MAX_PARTS 8
#define SIM_NET_IDS 64

typedef struct sim_net {
	sim_packet_t *heap;
	size_t n, cap;
	sim_partition_t parts[SIM_NET_MAX_PARTS];
	size_t n_parts;
	sim_net_faults_t f;
	bool faults_on;    /* off: no loss, duplication or reordering (wire still applies) */
	uint64_t seq;      /* send order: FIFO among messages due at the same time */
	uint64_t *link_last; /* [from * SIM_NET_IDS + to]: latest in-order delivery time */
	uint64_t sent, dropped, duplicated, delivered, wired;
} sim_net_t;

void sim_net_init(sim_net_t *net, const sim_net_faults_t *f);
void sim_net_free(sim_net_t *net);

/* Takes m and queues it, maybe duplicated, maybe marked lost. */
void sim_net_send(sim_net_t *net, sim_rng_t *rng, uint64_t now, raft_msg_t *m);
/* Time of the earliest queued message, UINT64_MAX when none. */
uint64_t sim_net_next_time(const sim_net_t *net);
/* Removes and returns the next message due at or before now (the caller's), or NULL;
 * *lost tells whether the network lost it on the way. */
raft_msg_t *sim_net_pop(sim_net_t *net, uint64_t now, bool *lost);

bool sim_net_blocked(const sim_net_t *net, uint64_t from, uint64_t to);
/* Adds a partition; false when SIM_NET_MAX_PARTS are already active. */
bool sim_net_partition(sim_net_t *net, uint64_t a, uint64_t b, bool symmetric, uint64_t until);
/* Removes one partition due to heal by now into *healed; false when none is due. */
bool sim_net_heal_due(sim_net_t *net, uint64_t now, sim_partition_t *healed);
void sim_net_heal_all(sim_net_t *net);

/* Round-trips m through the protobuf wire encoding: returns the unpacked copy and frees m,
 * or returns NULL (m untouched) if packing or unpacking failed. */
raft_msg_t *sim_net_wire(raft_msg_t *m);

#endif
