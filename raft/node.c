/* raft/node.c — the driver around the state machine: turning calls into local messages,
 * assembling Ready batches and taking them back in raft_advance(). Not thread-safe: one
 * caller drives a node, and nothing else is called between raft_ready and raft_advance. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

void raft_config_default(raft_config_t *cfg, uint64_t id, raft_storage_t storage)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->id = id;
	cfg->storage = storage;
	cfg->election_tick = 10;
	cfg->heartbeat_tick = 1;
	cfg->max_size_per_msg = 1 << 20;
	cfg->max_committed_size_per_ready = 64 << 20;
	cfg->max_inflight_msgs = 256;
	cfg->check_quorum = true;
	cfg->pre_vote = true;
	cfg->read_only_option = RAFT_READ_SAFE;
}

int raft_node_new(const raft_config_t *cfg, raft_node_t **out)
{
	*out = NULL;
	raft_node_t *n = calloc(1, sizeof(*n));
	if (!n)
		return RAFT_ERR_NOMEM;
	int rc = raft_init(n, cfg);
	if (rc != RAFT_OK) {
		raft_deinit(n);
		free(n);
		return rc;
	}
	*out = n;
	return RAFT_OK;
}

void raft_node_free(raft_node_t *n)
{
	if (!n)
		return;
	raft_deinit(n);
	free(n->rd_msgs);
	free(n);
}

static int step_local(raft_node_t *n, int type, uint64_t from, raft_entry_t *e,
		      const void *ctx, size_t ctx_len)
{
	raft_msg_t m = RAFTPB__MESSAGE__INIT;
	raft_entry_t *ents[1] = { e };
	m.type = (Raftpb__MessageType)type;
	m.from = from;
	if (e) {
		m.entries = ents;
		m.n_entries = 1;
	}
	m.context.data = (uint8_t *)ctx;
	m.context.len = ctx_len;
	return raft_step_msg(n, &m);
}

int raft_campaign(raft_node_t *n)
{
	return step_local(n, RAFT_MSG_HUP, 0, NULL, NULL, 0);
}

int raft_propose(raft_node_t *n, const void *data, size_t len)
{
	raft_entry_t *e = raft_entry_new(0, 0, RAFT_ENTRY_NORMAL, data, len);
	if (!e)
		return RAFT_ERR_NOMEM;
	int rc = step_local(n, RAFT_MSG_PROP, 0, e, NULL, 0);
	raft_entry_free(e);
	return rc;
}

int raft_propose_conf_change(raft_node_t *n, const raft_conf_change_t *cc)
{
	size_t len = raftpb__conf_change__get_packed_size(cc);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return RAFT_ERR_NOMEM;
	raftpb__conf_change__pack(cc, buf);
	raft_entry_t *e = raft_entry_new(0, 0, RAFT_ENTRY_CONF_CHANGE, buf, len);
	free(buf);
	if (!e)
		return RAFT_ERR_NOMEM;
	int rc = step_local(n, RAFT_MSG_PROP, 0, e, NULL, 0);
	raft_entry_free(e);
	return rc;
}

int raft_read_index(raft_node_t *n, const void *ctx, size_t len)
{
	return step_local(n, RAFT_MSG_READ_INDEX, 0, NULL, ctx, len);
}

int raft_transfer_leader(raft_node_t *n, uint64_t transferee)
{
	if (transferee == RAFT_NONE)
		return RAFT_ERR_INVALID_MSG;
	if (n->state != RAFT_LEADER && n->lead == RAFT_NONE)
		return RAFT_ERR_NO_LEADER;
	return step_local(n, RAFT_MSG_TRANSFER_LEADER, transferee, NULL, NULL, 0);
}

void raft_report_unreachable(raft_node_t *n, uint64_t id)
{
	if (n->state == RAFT_LEADER)
		step_local(n, RAFT_MSG_UNREACHABLE, id, NULL, NULL, 0);
}

void raft_report_snapshot(raft_node_t *n, uint64_t id, bool failed)
{
	if (n->state != RAFT_LEADER)
		return;
	raft_msg_t m = RAFTPB__MESSAGE__INIT;
	m.type = (Raftpb__MessageType)RAFT_MSG_SNAP_STATUS;
	m.from = id;
	m.reject = failed;
	raft_step_msg(n, &m);
}

static raft_hard_state_t hard_state(const raft_node_t *n)
{
	raft_hard_state_t hs = { .term = n->term, .vote = n->vote, .commit = n->log.committed };
	return hs;
}

static bool hs_equal(const raft_hard_state_t *a, const raft_hard_state_t *b)
{
	return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

bool raft_has_ready(const raft_node_t *n)
{
	raft_hard_state_t hs = hard_state(n);
	return n->lead != n->prev_lead || n->state != n->prev_state ||
	       !hs_equal(&hs, &n->prev_hs) || n->log.u_n > 0 || n->log.u_snap ||
	       n->n_msgs > 0 || n->n_read_states > 0 || n->append_pending ||
	       log_has_next_committed(&n->log);
}

static int collect_committed(raft_node_t *n)
{
	entries_free(n->rd_committed, n->rd_n_committed); /* a Ready never advanced */
	n->rd_committed = NULL;
	n->rd_n_committed = 0;
	if (!log_has_next_committed(&n->log))
		return RAFT_OK;
	uint64_t lo = n->log.applied + 1, first = log_first_index(&n->log);
	if (lo < first)
		lo = first;
	uint64_t max = n->max_committed_size ? n->max_committed_size : UINT64_MAX;
	return log_entries(&n->log, lo, n->log.committed + 1, max, &n->rd_committed,
			   &n->rd_n_committed);
}

int raft_ready(raft_node_t *n, raft_ready_t *rd)
{
	memset(rd, 0, sizeof(*rd));
	raft_flush_appends(n);
	rd->lead = n->lead;
	rd->state = n->state;
	rd->soft_state_changed = n->lead != n->prev_lead || n->state != n->prev_state;
	rd->hard_state = hard_state(n);
	rd->hard_state_changed = !hs_equal(&rd->hard_state, &n->prev_hs);
	rd->entries = n->log.u_ents;
	rd->n_entries = n->log.u_n;
	rd->snapshot = n->log.u_snap;
	int rc = collect_committed(n);
	if (rc != RAFT_OK)
		return rc;
	rd->committed = n->rd_committed;
	rd->n_committed = n->rd_n_committed;
	free(n->rd_msgs);
	n->rd_msgs = n->msgs;
	rd->msgs = n->msgs;
	rd->n_msgs = n->n_msgs;
	n->msgs = NULL;
	n->n_msgs = n->cap_msgs = 0;
	rd->read_states = n->read_states;
	rd->n_read_states = n->n_read_states;
	rd->must_sync = rd->n_entries > 0 || rd->hard_state.term != n->prev_hs.term ||
			rd->hard_state.vote != n->prev_hs.vote;
	return RAFT_OK;
}

void raft_advance(raft_node_t *n, raft_ready_t *rd)
{
	n->prev_lead = rd->lead;
	n->prev_state = rd->state;
	if (rd->hard_state_changed)
		n->prev_hs = rd->hard_state;
	if (rd->n_entries > 0) {
		const raft_entry_t *last = rd->entries[rd->n_entries - 1];
		log_stable_to(&n->log, last->index, last->term);
	}
	if (rd->snapshot) {
		uint64_t idx = rd->snapshot->metadata->index;
		log_stable_snap_to(&n->log, idx);
		if (n->log.applied < idx)
			n->log.applied = idx;
	}
	if (n->rd_n_committed > 0) {
		uint64_t last = n->rd_committed[n->rd_n_committed - 1]->index;
		if (last > n->log.applied)
			n->log.applied = last;
	}
	entries_free(n->rd_committed, n->rd_n_committed);
	n->rd_committed = NULL;
	n->rd_n_committed = 0;
	for (size_t i = 0; i < rd->n_read_states; i++)
		free(rd->read_states[i].ctx.data);
	/* read states that arrived after this Ready stay queued */
	if (rd->n_read_states > 0) {
		memmove(n->read_states, n->read_states + rd->n_read_states,
			(n->n_read_states - rd->n_read_states) * sizeof(*n->read_states));
		n->n_read_states -= rd->n_read_states;
	}
	free(n->rd_msgs);
	n->rd_msgs = NULL;
	conf_history_compact(&n->confs, n->log.applied);
	memset(rd, 0, sizeof(*rd));
	raft_on_stable(n);
}

void raft_status(const raft_node_t *n, raft_status_t *st)
{
	memset(st, 0, sizeof(*st));
	st->id = n->id;
	st->state = n->state;
	st->term = n->term;
	st->vote = n->vote;
	st->lead = n->lead;
	st->commit = n->log.committed;
	st->applied = n->log.applied;
	st->last_index = log_last_index(&n->log);
	st->first_index = log_first_index(&n->log);
	st->lead_transferee = n->lead_transferee;
	st->conf = *conf_history_current(&n->confs);
}

int raft_progress(const raft_node_t *n, uint64_t id, raft_progress_state_t *state,
		  uint64_t *match, uint64_t *next)
{
	if (n->state != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	const progress_t *p = raft_progress_of(n, id);
	if (!p)
		return RAFT_ERR_STEP_PEER_NOT_FOUND;
	*state = p->state;
	*match = p->match;
	*next = p->next;
	return RAFT_OK;
}

void raft_applied_conf(const raft_node_t *n, raft_conf_t *c)
{
	*c = *conf_history_at(&n->confs, n->log.applied);
}
