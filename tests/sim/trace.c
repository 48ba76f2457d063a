/* tests/sim/trace.c — event ring and its formatting: one table row per event kind says at
 * which verbosity it prints and how. Recording is cheap (numbers only); never allocates. */
#include "trace.h"

#include <stdbool.h>
#include <string.h>

#include "raft.h"

/* Argument kinds in a row's `args`: u number, m message type, e raft error, s raft
 * state, c conf change type, g set of node ids (bit mask), t static text, b changed or
 * not, l a leader's id (0: none known). */
typedef struct sim_ev_row {
	int level;
	const char *fmt;
	const char *args;
} sim_ev_row_t;

static const sim_ev_row_t sim_ev_rows[SIM_EV_COUNT] = {
	[SIM_EV_INFO] = {1, "%s", "t"},
	[SIM_EV_PRE_CAMPAIGN] = {2, "n%s starts a pre-vote for term %s", "uu"},
	[SIM_EV_CAMPAIGN] = {1, "n%s campaigns for term %s", "uu"},
	[SIM_EV_LEADER] = {1, "n%s becomes LEADER of term %s (log %s..%s)", "uuuu"},
	[SIM_EV_FOLLOW] = {2, "n%s follows %s in term %s", "ulu"},
	[SIM_EV_LEADER_COMMIT] = {1, "n%s (leader, term %s) commits up to index %s", "uuu"},
	[SIM_EV_APPLY] = {2, "n%s applies %s..%s", "uuu"},
	[SIM_EV_CRASH] = {1, "n%s CRASHES (down for %s ticks)", "uu"},
	[SIM_EV_CRASH_READY] = {1, "n%s CRASHES before persisting a Ready (%s entries, hard "
				   "state %s, %s msgs lost)", "uubu"},
	[SIM_EV_CRASH_TORN] = {1, "n%s CRASHES mid-write: %s of %s entries reached the disk", "uuu"},
	[SIM_EV_RESTART] = {1, "n%s restarts from disk: term %s, commit %s, snapshot %s, "
			       "log to %s", "uuuuu"},
	[SIM_EV_ISOLATE] = {1, "network: n%s is cut off for %s ticks", "uu"},
	[SIM_EV_SPLIT] = {1, "network: split %s | %s for %s ticks", "ggu"},
	[SIM_EV_ONEWAY] = {1, "network: messages %s -> %s are lost for %s ticks", "ggu"},
	[SIM_EV_HEAL] = {1, "network: partition %s | %s heals", "gg"},
	[SIM_EV_PROPOSE] = {2, "client: write w%s sent to n%s", "uu"},
	[SIM_EV_PROPOSE_FAIL] = {2, "client: write w%s refused by n%s: %s", "uue"},
	[SIM_EV_ACK] = {2, "n%s acknowledges write w%s (index %s)", "uuu"},
	[SIM_EV_READ] = {2, "client: read r%s sent to n%s (must see index %s)", "uuu"},
	[SIM_EV_READ_FAIL] = {2, "client: read r%s refused by n%s: %s", "uue"},
	[SIM_EV_READ_INDEX] = {2, "n%s: read r%s may be served at index %s", "uuu"},
	[SIM_EV_READ_SERVED] = {2, "n%s serves read r%s at applied index %s", "uuu"},
	[SIM_EV_CONF_PROPOSE] = {1, "leader n%s proposes %s n%s", "ucu"},
	[SIM_EV_CONF_FAIL] = {2, "leader n%s could not propose %s n%s: %s", "ucue"},
	[SIM_EV_CONF_COMMIT] = {1, "membership: %s n%s committed at index %s", "cuu"},
	[SIM_EV_NODE_START] = {1, "n%s starts with an empty disk, waits for the leader", "u"},
	[SIM_EV_NODE_STOP] = {1, "n%s is no longer a member and shuts down", "u"},
	[SIM_EV_SNAP_CREATE] = {1, "n%s takes a snapshot at index %s, compacts its log up to %s", "uuu"},
	[SIM_EV_SNAP_INSTALL] = {1, "n%s installs a snapshot at index %s (term %s) from the leader", "uuu"},
	[SIM_EV_TRANSFER] = {1, "leader n%s hands leadership over to n%s", "uu"},
	[SIM_EV_TRANSFER_FAIL] = {2, "leader n%s could not transfer to n%s: %s", "uue"},
	[SIM_EV_FORCE_CAMPAIGN] = {2, "n%s is told to campaign now", "u"},
	[SIM_EV_SLOW_DISK] = {3, "n%s: disk is slow, Ready waits %s substeps", "uu"},
	[SIM_EV_MSG_DELIVER] = {3, "  n%s -> n%s %s term %s index %s/%s", "uumuuu"},
	[SIM_EV_MSG_DROP] = {3, "  n%s -> n%s %s term %s index %s/%s DROPPED", "uumuuu"},
	[SIM_EV_MSG_DUP] = {3, "  n%s -> n%s %s term %s duplicated", "uumu"},
	[SIM_EV_STEP_ERR] = {2, "n%s rejects %s from n%s: %s", "umue"},
	[SIM_EV_CLIENTS] = {1, "   clients so far: %s writes acknowledged, %s linearizable reads "
			       "served", "uu"},
	[SIM_EV_LEASE_PROMOTE] = {1, "n%s's lessor becomes primary (at %s ms)", "uu"},
	[SIM_EV_LEASE_DEMOTE] = {1, "n%s's lessor is demoted (at %s ms)", "uu"},
	[SIM_EV_LEASE_RENEW] = {2, "n%s renews lease %s (at %s ms)", "uuu"},
	[SIM_EV_LEASE_EXPIRE] = {1, "n%s proposes the revoke of expired lease %s (at %s ms)", "uuu"},
	[SIM_EV_WAL_TORN] = {1, "n%s CRASHES mid-write: its WAL keeps %s bytes of a Ready "
			       "of %s entries", "uuu"},
};

static const char *const sim_msg_names[] = {
	"Hup", "Beat", "Prop", "App", "AppResp", "Vote", "VoteResp", "Snap",
	"Heartbeat", "HeartbeatResp", "Unreachable", "SnapStatus", "CheckQuorum",
	"TransferLeader", "TimeoutNow", "ReadIndex", "ReadIndexResp", "PreVote",
	"PreVoteResp",
};

const char *sim_msg_type_name(int type)
{
	size_t n = sizeof(sim_msg_names) / sizeof(sim_msg_names[0]);
	return type >= 0 && (size_t)type < n ? sim_msg_names[type] : "?";
}

static const char *sim_conf_type_name(uint64_t t)
{
	switch (t) {
	case RAFT_CONF_ADD_NODE: return "add-voter";
	case RAFT_CONF_REMOVE_NODE: return "remove";
	case RAFT_CONF_ADD_LEARNER: return "add-learner";
	default: return "?";
	}
}

/* {n1,n3}; a set of more than half the ids prints as its complement: {all but n2}. */
static void sim_format_set(uint64_t mask, char *buf, size_t len)
{
	size_t off = 0;
	mask &= ~1ull;
	bool invert = __builtin_popcountll(mask) > 32;
	if (invert)
		mask = ~mask & ~1ull;
	off += (size_t)snprintf(buf + off, len - off, invert ? "{all but " : "{");
	for (unsigned id = 1; id < 64 && off < len; id++)
		if (mask >> id & 1)
			off += (size_t)snprintf(buf + off, len - off, "%sn%u",
						buf[off - 1] == '{' || buf[off - 1] == ' ' ? "" : ",",
						id);
	if (off < len)
		snprintf(buf + off, len - off, "}");
}

static void sim_format_arg(char kind, uint64_t v, char *buf, size_t len)
{
	switch (kind) {
	case 'm': snprintf(buf, len, "%s", sim_msg_type_name((int)v)); break;
	case 'e': snprintf(buf, len, "%s", raft_strerror((int)(int64_t)v)); break;
	case 's': snprintf(buf, len, "%s", raft_state_name((raft_state_t)v)); break;
	case 'c': snprintf(buf, len, "%s", sim_conf_type_name(v)); break;
	case 'g': sim_format_set(v, buf, len); break;
	case 't': snprintf(buf, len, "%s", (const char *)(uintptr_t)v); break;
	case 'b': snprintf(buf, len, "%s", v ? "changed" : "unchanged"); break;
	case 'l': v ? snprintf(buf, len, "n%llu", (unsigned long long)v)
		    : snprintf(buf, len, "no leader (yet)"); break;
	default: snprintf(buf, len, "%llu", (unsigned long long)v); break;
	}
}

void sim_trace_format(const sim_trace_t *t, const sim_event_t *ev, char *buf, size_t len)
{
	(void)t;
	const sim_ev_row_t *row = &sim_ev_rows[ev->kind];
	char a[SIM_TRACE_VALUES][160];
	for (int i = 0; i < SIM_TRACE_VALUES; i++) {
		char kind = i < (int)strlen(row->args) ? row->args[i] : 'u';
		sim_format_arg(kind, ev->v[i], a[i], sizeof(a[i]));
	}
	int off = snprintf(buf, len, "[%5llu.%llu] ", (unsigned long long)(ev->time / SIM_TICK),
			   (unsigned long long)(ev->time % SIM_TICK));
	if (off < 0 || (size_t)off >= len)
		return;
	snprintf(buf + off, len - (size_t)off, row->fmt, a[0], a[1], a[2], a[3], a[4], a[5]);
}

void sim_trace_init(sim_trace_t *t, int verbose, FILE *out)
{
	memset(t, 0, sizeof(*t));
	t->verbose = verbose;
	t->out = out;
}

void sim_trace_add(sim_trace_t *t, uint64_t time, sim_ev_t kind, uint64_t a, uint64_t b,
		   uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	sim_event_t *ev = &t->ring[t->next];
	ev->time = time;
	ev->kind = kind;
	ev->v[0] = a, ev->v[1] = b, ev->v[2] = c, ev->v[3] = d, ev->v[4] = e, ev->v[5] = f;
	t->next = (t->next + 1) % SIM_TRACE_RING;
	t->count++;
	if (t->out && sim_ev_rows[kind].level <= t->verbose) {
		char buf[512];
		sim_trace_format(t, ev, buf, sizeof(buf));
		fprintf(t->out, "%s\n", buf);
	}
}

void sim_trace_say(sim_trace_t *t, uint64_t time, const char *text)
{
	sim_trace_add(t, time, SIM_EV_INFO, (uint64_t)(uintptr_t)text, 0, 0, 0, 0, 0);
}

void sim_trace_dump(const sim_trace_t *t, FILE *out, size_t n, int max_level)
{
	size_t have = t->count < SIM_TRACE_RING ? t->count : SIM_TRACE_RING;
	size_t first = have, picked = 0;
	while (first > 0 && picked < n) {
		size_t slot = (t->next + SIM_TRACE_RING - have + first - 1) % SIM_TRACE_RING;
		picked += sim_ev_rows[t->ring[slot].kind].level <= max_level;
		first--;
	}
	for (size_t i = first; i < have; i++) {
		const sim_event_t *ev = &t->ring[(t->next + SIM_TRACE_RING - have + i) % SIM_TRACE_RING];
		if (sim_ev_rows[ev->kind].level > max_level)
			continue;
		char buf[512];
		sim_trace_format(t, ev, buf, sizeof(buf));
		fprintf(out, "  %s\n", buf);
	}
}
