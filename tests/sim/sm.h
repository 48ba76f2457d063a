/* tests/sim/sm.h — the replicated state machine every simulated node applies entries to:
 * applied index, a hash chain over every applied entry, and the set of client writes seen.
 * Its snapshot encoding is what InstallSnapshot carries between nodes. */
#ifndef KEEL_SIM_SM_H
#define KEEL_SIM_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

typedef struct sim_sm {
	uint64_t applied;  /* index of the last entry applied */
	uint64_t term;     /* its term */
	uint64_t chain;    /* hash chain over (index, term, entry hash) of every entry applied */
	uint64_t writes;   /* client write entries applied (duplicates count) */
	uint8_t *bits;     /* bit w set: write w has been applied */
	size_t nbytes;
} sim_sm_t;

void sim_sm_init(sim_sm_t *sm);
void sim_sm_free(sim_sm_t *sm);
/* Applies one entry: the caller checked e->index == applied + 1. */
void sim_sm_apply(sim_sm_t *sm, const raft_entry_t *e);
bool sim_sm_has_write(const sim_sm_t *sm, uint64_t wid);

/* Snapshot data: encode allocates *buf (free()); decode replaces sm's state and returns
 * false (sm untouched) if the bytes are not a valid encoding. */
bool sim_sm_encode(const sim_sm_t *sm, uint8_t **buf, size_t *len);
bool sim_sm_decode(sim_sm_t *sm, const void *buf, size_t len);

/* Hash of an entry's type and data (not its index or term). */
uint64_t sim_entry_hash(const raft_entry_t *e);
/* The chain after appending an entry with this index, term and hash. */
uint64_t sim_chain_next(uint64_t chain, uint64_t index, uint64_t term, uint64_t hash);

/* Client write payloads: 'W', write id, proposer id, then pad bytes of filler. */
#define SIM_WRITE_HEADER 17
size_t sim_write_encode(uint8_t *buf, size_t cap, uint64_t wid, uint64_t proposer, size_t pad);
bool sim_write_decode(const raft_entry_t *e, uint64_t *wid, uint64_t *proposer);

void sim_put64(uint8_t *p, uint64_t v);
uint64_t sim_get64(const uint8_t *p);

#endif
