/* tests/sim/check.h — Raft's safety properties as global bookkeeping: one leader per term,
 * log matching, the committed log and per-term commit knowledge (leader completeness).
 * Pure data: the cluster feeds it what nodes persist and apply; keeps the first failure. */
#ifndef KEEL_SIM_CHECK_H
#define KEEL_SIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_UNKNOWN UINT64_MAX

enum {
	SIM_HAS_TERM = 1,  /* the committed entry's term is known */
	SIM_HAS_HASH = 2,  /* ... and its content */
	SIM_HAS_CHAIN = 4, /* ... and the state machine's hash chain after applying it */
};

typedef struct sim_committed {
	uint64_t term, hash, chain;
	uint64_t by;       /* node that first told us */
	unsigned flags;
} sim_committed_t;

typedef struct sim_logkey {
	uint64_t index, term; /* index 0: empty slot */
	uint64_t hash, prev_term, by;
} sim_logkey_t;

typedef struct sim_check {
	uint64_t *leaders;        /* leaders[term]: the node that led it, 0 if none seen */
	size_t n_leaders;
	uint64_t *commit_at_term; /* highest commit index a node knew while at that term */
	size_t n_commit_at_term;
	uint64_t max_commit;      /* highest commit index any node ever knew */
	sim_committed_t *log;     /* log[index]: the committed entry at index */
	size_t n_log;
	sim_logkey_t *tab;        /* (index, term) -> (hash, previous term), open addressing */
	size_t tab_cap, tab_n;
	bool failed;
	char invariant[64];
	char detail[1024];
} sim_check_t;

void sim_check_init(sim_check_t *chk);
void sim_check_free(sim_check_t *chk);

/* Records a violation (only the first is kept); always returns false. */
bool sim_check_fail(sim_check_t *chk, const char *invariant, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Election safety: node id leads term. */
bool sim_check_leader(sim_check_t *chk, uint64_t term, uint64_t id);
/* Log matching: node holds (index, term) with this content after an entry of prev_term
 * (SIM_UNKNOWN if the entry before is not available). */
bool sim_check_log_entry(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			 uint64_t hash, uint64_t prev_term);
/* Node knows the entry (index, term[, hash]) is committed; hash may be SIM_UNKNOWN. */
bool sim_check_committed(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			 uint64_t hash);
/* State machine safety: node applied (index, term, hash) reaching chain. */
bool sim_check_applied(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
		       uint64_t hash, uint64_t chain);
/* A snapshot of the state at (index, term) with this chain was installed or taken. */
bool sim_check_snapshot(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			uint64_t chain);
/* Node was at term and knew entries up to commit were committed. */
void sim_check_commit_seen(sim_check_t *chk, uint64_t term, uint64_t commit);
/* Highest index known committed while some node was at a term lower than term: the
 * prefix every leader of term must hold (leader completeness). */
uint64_t sim_check_commit_bound(const sim_check_t *chk, uint64_t term);
/* The committed entry at index, or NULL when nothing is known about it. */
const sim_committed_t *sim_check_committed_at(const sim_check_t *chk, uint64_t index);

#endif
