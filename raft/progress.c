/* raft/progress.c — a leader's view of one follower: match/next, the probe, replicate
 * and snapshot states, and the window of MsgApp in flight (a ring of last indexes). */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

/* The inflight ring (buf, size) belongs to the slot and survives re-initialisation. */
void progress_init(progress_t *p, uint64_t id, uint64_t next, bool learner)
{
	inflights_t ins = p->ins;
	memset(p, 0, sizeof(*p));
	p->ins.buf = ins.buf;
	p->ins.size = ins.size;
	p->id = id;
	p->next = next ? next : 1;
	p->state = RAFT_PROGRESS_PROBE;
	p->is_learner = learner;
	p->recent_active = true;
}

static void reset_state(progress_t *p, raft_progress_state_t s)
{
	p->probe_sent = false;
	p->pending_snapshot = 0;
	p->state = s;
	p->ins.start = p->ins.count = 0;
}

void progress_become_probe(progress_t *p)
{
	if (p->state == RAFT_PROGRESS_SNAPSHOT) {
		uint64_t pending = p->pending_snapshot;
		reset_state(p, RAFT_PROGRESS_PROBE);
		p->next = (p->match + 1 > pending + 1) ? p->match + 1 : pending + 1;
	} else {
		reset_state(p, RAFT_PROGRESS_PROBE);
		p->next = p->match + 1;
	}
}

void progress_become_replicate(progress_t *p)
{
	reset_state(p, RAFT_PROGRESS_REPLICATE);
	p->next = p->match + 1;
}

void progress_become_snapshot(progress_t *p, uint64_t snapi)
{
	reset_state(p, RAFT_PROGRESS_SNAPSHOT);
	p->pending_snapshot = snapi;
}

/* An acknowledgement up to n; false when it is stale. */
bool progress_maybe_update(progress_t *p, uint64_t n)
{
	bool updated = false;
	if (p->match < n) {
		p->match = n;
		updated = true;
		p->probe_sent = false;
	}
	if (p->next < n + 1)
		p->next = n + 1;
	return updated;
}

/* A rejection of the append at `rejected`; false when it is stale. match_hint is the
 * follower's suggestion of where its log may still match. */
bool progress_maybe_decr_to(progress_t *p, uint64_t rejected, uint64_t match_hint)
{
	if (p->state == RAFT_PROGRESS_REPLICATE) {
		if (rejected <= p->match)
			return false;
		p->next = p->match + 1;
		return true;
	}
	if (p->next - 1 != rejected)
		return false;
	uint64_t n = rejected < match_hint + 1 ? rejected : match_hint + 1;
	p->next = n > p->match + 1 ? n : p->match + 1;
	p->probe_sent = false;
	return true;
}

bool progress_is_paused(const progress_t *p)
{
	switch (p->state) {
	case RAFT_PROGRESS_PROBE: return p->probe_sent;
	case RAFT_PROGRESS_REPLICATE: return inflights_full(&p->ins);
	case RAFT_PROGRESS_SNAPSHOT: return true;
	}
	return true;
}

void inflights_add(inflights_t *in, uint64_t last)
{
	if (in->count == in->size)
		return; /* callers check full() first */
	in->buf[(in->start + in->count) % in->size] = last;
	in->count++;
}

void inflights_free_le(inflights_t *in, uint64_t to)
{
	while (in->count > 0 && in->buf[in->start] <= to) {
		in->start = (in->start + 1) % in->size;
		in->count--;
	}
	if (in->count == 0)
		in->start = 0;
}

void inflights_free_first(inflights_t *in)
{
	if (in->count > 0)
		inflights_free_le(in, in->buf[in->start]);
}

bool inflights_full(const inflights_t *in)
{
	return in->count == in->size;
}
