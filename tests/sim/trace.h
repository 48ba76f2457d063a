/* tests/sim/trace.h — what the simulated cluster did: a ring of recent events, kept as plain
 * numbers and formatted only when printed (verbose mode, or the trace of a failure). */
#ifndef KEEL_SIM_TRACE_H
#define KEEL_SIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

/* Event kinds; trace.c holds one table row (level, format) per kind. */
typedef enum sim_ev {
	SIM_EV_INFO = 0,      /* free text (a static string) of the demo or a phase banner */
	SIM_EV_PRE_CAMPAIGN,
	SIM_EV_CAMPAIGN,
	SIM_EV_LEADER,
	SIM_EV_FOLLOW,
	SIM_EV_LEADER_COMMIT,
	SIM_EV_APPLY,
	SIM_EV_CRASH,
	SIM_EV_CRASH_READY,
	SIM_EV_CRASH_TORN,
	SIM_EV_RESTART,
	SIM_EV_ISOLATE,
	SIM_EV_SPLIT,
	SIM_EV_ONEWAY,
	SIM_EV_HEAL,
	SIM_EV_PROPOSE,
	SIM_EV_PROPOSE_FAIL,
	SIM_EV_ACK,
	SIM_EV_READ,
	SIM_EV_READ_FAIL,
	SIM_EV_READ_INDEX,
	SIM_EV_READ_SERVED,
	SIM_EV_CONF_PROPOSE,
	SIM_EV_CONF_FAIL,
	SIM_EV_CONF_COMMIT,
	SIM_EV_NODE_START,
	SIM_EV_NODE_STOP,
	SIM_EV_SNAP_CREATE,
	SIM_EV_SNAP_INSTALL,
	SIM_EV_TRANSFER,
	SIM_EV_TRANSFER_FAIL,
	SIM_EV_FORCE_CAMPAIGN,
	SIM_EV_SLOW_DISK,
	SIM_EV_MSG_DELIVER,
	SIM_EV_MSG_DROP,
	SIM_EV_MSG_DUP,
	SIM_EV_STEP_ERR,
	SIM_EV_CLIENTS,
	SIM_EV_LEASE_PROMOTE,
	SIM_EV_LEASE_DEMOTE,
	SIM_EV_LEASE_RENEW,
	SIM_EV_LEASE_EXPIRE,
	SIM_EV_WAL_TORN,
	SIM_EV_COUNT
} sim_ev_t;

#define SIM_TRACE_RING 4096
#define SIM_TRACE_VALUES 6

typedef struct sim_event {
	uint64_t time;
	sim_ev_t kind;
	uint64_t v[SIM_TRACE_VALUES];
} sim_event_t;

typedef struct sim_trace {
	sim_event_t ring[SIM_TRACE_RING];
	size_t next;               /* slot of the next event */
	size_t count;              /* events ever recorded */
	int verbose;               /* 0 quiet, 1 story, 2 + clients/applies, 3 + messages */
	FILE *out;
} sim_trace_t;

/* Simulated time is counted in substeps; raft_tick() runs every SIM_TICK of them. */
#define SIM_TICK 10

void sim_trace_init(sim_trace_t *t, int verbose, FILE *out);
/* Records an event; prints it at once when its level is within the verbosity. */
void sim_trace_add(sim_trace_t *t, uint64_t time, sim_ev_t kind, uint64_t a, uint64_t b,
		   uint64_t c, uint64_t d, uint64_t e, uint64_t f);
/* Prints the last n recorded events at verbosity max_level or below. */
void sim_trace_dump(const sim_trace_t *t, FILE *out, size_t n, int max_level);
/* Formats one event into buf (no newline). */
void sim_trace_format(const sim_trace_t *t, const sim_event_t *ev, char *buf, size_t len);
/* Records a free line (text must be static) at the story level: narration, banners. */
void sim_trace_say(sim_trace_t *t, uint64_t time, const char *text);

const char *sim_msg_type_name(int type);

#define SIM_TRACE(t, time, kind, ...) sim_trace_add_((t), (time), (kind), __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define sim_trace_add_(t, time, kind, a, b, c, d, e, f, ...) \
	sim_trace_add((t), (time), (kind), (a), (b), (c), (d), (e), (f))

#endif
