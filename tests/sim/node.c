/* tests/sim/node.c — one node's life: start/restart from its disk (the memstorage; the raft
 * node and state machine are volatile), crash, stop, message delivery, observation, and
 * the application's snapshots. The Ready loop is in ready.c. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

const raft_storage_ops_t *sim_node_ops(const sim_node_t *n, void **ctx)
{
	raft_storage_t s = sim_disk_storage(n);
	*ctx = s.ctx;
	return s.ops;
}

raft_entry_t **sim_cluster_scratch(sim_cluster_t *c, size_t n)
{
	if (n > c->scratch_cap) {
		size_t cap = c->scratch_cap ? c->scratch_cap : 256;
		while (cap < n)
			cap *= 2;
		raft_entry_t **p = realloc(c->scratch, cap * sizeof(*p));
		if (!p)
			abort();
		c->scratch = p;
		c->scratch_cap = cap;
	}
	return c->scratch;
}

static void sim_node_config(sim_cluster_t *c, sim_node_t *n, raft_config_t *cfg,
			    uint64_t *peers)
{
	const sim_params_t *p = &c->p;
	raft_config_default(cfg, n->id, sim_disk_storage(n));
	cfg->election_tick = p->election_tick;
	cfg->heartbeat_tick = p->heartbeat_tick;
	cfg->applied = n->sm.applied;
	cfg->max_size_per_msg = p->max_size_per_msg;
	cfg->max_inflight_msgs = p->max_inflight;
	cfg->check_quorum = p->check_quorum;
	cfg->pre_vote = p->pre_vote;
	cfg->read_only_option = p->read_only;
	cfg->disable_proposal_forwarding = p->no_forwarding;
	cfg->seed = sim_rng_next(&c->rng);
	if (n->boot) {
		for (int i = 0; i < p->nodes; i++)
			peers[i] = (uint64_t)i + 1;
		cfg->peers = peers;
		cfg->n_peers = (size_t)p->nodes;
	}
}

/* Rebuilds the state machine from the disk's snapshot (empty when there is none). */
static bool sim_node_restore(sim_cluster_t *c, sim_node_t *n)
{
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	const raft_snapshot_t *snap = NULL;
	sim_sm_init(&n->sm);
	n->snap_index = 0;
	int rc = ops->snapshot(ctx, &snap);
	if (rc != RAFT_OK)
		return sim_check_fail(&c->chk, "storage", "n%llu: snapshot() failed: %s",
				      (unsigned long long)n->id, raft_strerror(rc));
	if (!snap || !snap->metadata || snap->metadata->index == 0)
		return true;
	const uint8_t *sm;
	size_t sm_len;
	if (!sim_disk_snapshot_sm(c, snap->data.data, snap->data.len, &sm, &sm_len) ||
	    !sim_sm_decode(&n->sm, sm, sm_len) ||
	    n->sm.applied != snap->metadata->index || n->sm.term != snap->metadata->term)
		return sim_check_fail(&c->chk, "snapshot", "n%llu: the disk's snapshot at index "
				      "%llu does not hold the state at that index",
				      (unsigned long long)n->id,
				      (unsigned long long)snap->metadata->index);
	n->snap_index = snap->metadata->index;
	return sim_disk_install(c, n, snap) &&
	       sim_check_snapshot(&c->chk, n->id, n->sm.applied, n->sm.term, n->sm.chain);
}

void sim_node_start(sim_cluster_t *c, sim_node_t *n)
{
	if (!sim_disk_open(c, n) || !sim_node_restore(c, n))
		return;
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	memset(&n->hs, 0, sizeof(n->hs));
	ops->initial_state(ctx, &n->hs);
	uint64_t last = 0;
	ops->last_index(ctx, &last);

	raft_config_t cfg;
	uint64_t peers[SIM_MAX_IDS];
	sim_node_config(c, n, &cfg, peers);
	int rc = raft_node_new(&cfg, &n->raft);
	if (rc != RAFT_OK) {
		n->raft = NULL;
		sim_check_fail(&c->chk, "restart", "n%llu cannot start from its disk: %s",
			       (unsigned long long)n->id, raft_strerror(rc));
		return;
	}
	n->state = SIM_NODE_UP;
	n->life++;
	n->life_commit = 0;
	n->led_term = 0;
	n->role = RAFT_FOLLOWER;
	n->ready_at = 0;
	n->crash_in_ready = false;
	n->self_stop = false;
	n->n_reads = 0;
	if (n->life == 1 && !n->boot)
		SIM_TRACE_C(c, SIM_EV_NODE_START, n->id);
	else if (n->life > 1)
		SIM_TRACE_C(c, SIM_EV_RESTART, n->id, n->hs.term, n->hs.commit, n->snap_index, last);
	sim_node_observe(c, n);
	if (n->st.commit < n->hs.commit)
		sim_check_fail(&c->chk, "commit monotonic", "n%llu restarted with commit %llu but "
			       "its disk says %llu", (unsigned long long)n->id,
			       (unsigned long long)n->st.commit, (unsigned long long)n->hs.commit);
}

/* What the node knew in memory (its commit index, its term) is real knowledge even if it
 * never reaches the disk: record it before it is lost. */
static void sim_node_drop_volatile(sim_cluster_t *c, sim_node_t *n)
{
	if (n->raft) {
		raft_status_t st;
		raft_status(n->raft, &st);
		sim_check_commit_seen(&c->chk, st.term, st.commit);
	}
	raft_node_free(n->raft);
	n->raft = NULL;
	sim_sm_free(&n->sm);
	n->n_reads = 0;
	n->role = RAFT_FOLLOWER;
	n->crash_in_ready = false;
}

void sim_node_crash(sim_cluster_t *c, sim_node_t *n, uint64_t down_ticks)
{
	sim_node_drop_volatile(c, n);
	sim_disk_crash(c, n);
	n->state = SIM_NODE_DOWN;
	n->restart_at = c->tick + down_ticks;
	c->crashes++;
}

void sim_node_stop(sim_cluster_t *c, sim_node_t *n)
{
	sim_node_drop_volatile(c, n);
	sim_disk_destroy(c, n);
	sim_confs_free(&n->confs);
	free(n->reads);
	n->reads = NULL;
	n->cap_reads = 0;
	if (n->state == SIM_NODE_UP)
		SIM_TRACE_C(c, SIM_EV_NODE_STOP, n->id);
	n->state = SIM_NODE_GONE;
}

/* ---- delivery ---------------------------------------------------------------------- */

static bool sim_step_error_ok(int rc)
{
	/* Refusals a correct core may give for a well-formed message from a peer. */
	return rc == RAFT_OK || rc == RAFT_ERR_STEP_PEER_NOT_FOUND ||
	       rc == RAFT_ERR_PROPOSAL_DROPPED || rc == RAFT_ERR_NO_LEADER ||
	       rc == RAFT_ERR_CONF_CHANGE_PENDING || rc == RAFT_ERR_INVALID_CONF_CHANGE;
}

/* The transport tells the sender what became of a message it could not deliver. */
static void sim_report_failure(sim_cluster_t *c, int type, uint64_t from, uint64_t to)
{
	sim_node_t *s = sim_cluster_node(c, from);
	if (!s || s->state != SIM_NODE_UP)
		return;
	if (type == RAFT_MSG_SNAP)
		raft_report_snapshot(s->raft, to, true);
	else if (type == RAFT_MSG_APP || type == RAFT_MSG_HEARTBEAT)
		raft_report_unreachable(s->raft, to);
}

void sim_node_deliver(sim_cluster_t *c, raft_msg_t *m, bool lost)
{
	int type = (int)m->type;
	uint64_t from = m->from, to = m->to;
	sim_node_t *n = sim_cluster_node(c, to);
	bool reach = !lost && n && n->state == SIM_NODE_UP && !sim_net_blocked(&c->net, from, to);
	SIM_TRACE_C(c, reach ? SIM_EV_MSG_DELIVER : SIM_EV_MSG_DROP, from, to, (uint64_t)type,
		    m->term, m->index, m->commit);
	if (!reach) {
		sim_report_failure(c, type, from, to);
		raft_msg_free(m);
		return;
	}
	int rc = raft_step(n->raft, m);
	if (!sim_step_error_ok(rc)) {
		SIM_TRACE_C(c, SIM_EV_STEP_ERR, to, (uint64_t)type, from, (uint64_t)(int64_t)rc);
		sim_check_fail(&c->chk, "step", "n%llu refused a %s from n%llu (term %llu): %s",
			       (unsigned long long)to, sim_msg_type_name(type),
			       (unsigned long long)from, (unsigned long long)m->term,
			       raft_strerror(rc));
	} else if (type == RAFT_MSG_SNAP) {
		sim_node_t *s = sim_cluster_node(c, from);
		if (s && s->state == SIM_NODE_UP)
			raft_report_snapshot(s->raft, to, false);
	}
	raft_msg_free(m);
}

/* ---- observation ------------------------------------------------------------------- */

void sim_node_observe(sim_cluster_t *c, sim_node_t *n)
{
	raft_status(n->raft, &n->st);
	const raft_status_t *st = &n->st;
	if (st->commit < n->life_commit)
		sim_check_fail(&c->chk, "commit monotonic", "n%llu's commit went from %llu back "
			       "to %llu", (unsigned long long)n->id,
			       (unsigned long long)n->life_commit, (unsigned long long)st->commit);
	n->life_commit = st->commit;
	sim_check_commit_seen(&c->chk, st->term, st->commit);
	if (st->state == RAFT_LEADER)
		sim_check_leader(&c->chk, st->term, n->id);
}

void sim_node_snapshot(sim_cluster_t *c, sim_node_t *n)
{
	uint64_t index = n->sm.applied;
	if (index <= n->snap_index)
		return;
	raft_conf_t conf;
	raft_applied_conf(n->raft, &conf);
	if (!sim_confs_check_applied(c, n, index, &conf))
		return;
	uint8_t *data = NULL;
	size_t len = 0;
	if (!sim_disk_snapshot_data(c, n, &data, &len))
		return;
	uint64_t keep = sim_rng_below(&c->rng, c->p.snap_keep + 1);
	uint64_t upto = index > keep ? index - keep : 1;
	if (upto < n->snap_index)
		upto = n->snap_index;
	int rc = sim_disk_create_snapshot(c, n, index, &conf, data, len, upto);
	free(data);
	if (rc != RAFT_OK) {
		sim_check_fail(&c->chk, "storage", "n%llu: create_snapshot at %llu: %s",
			       (unsigned long long)n->id, (unsigned long long)index,
			       sim_disk_error(n, rc));
		return;
	}
	n->snap_index = index;
	sim_confs_rebase(&n->confs, index, &conf, true);
	SIM_TRACE_C(c, SIM_EV_SNAP_CREATE, n->id, index, upto);
	sim_check_snapshot(&c->chk, n->id, index, n->sm.term, n->sm.chain);
}
