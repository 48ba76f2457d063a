/* tests/sim/member.c — membership changes: proposes add-learner/promote/add-voter/remove
 * (the leader too), starts a joining node (empty disk, no peers) once a log names it, and
 * stops nodes whose removal committed. Never applies a change itself. */
#include <stdlib.h>

#include "sim.h"

uint64_t sim_member_new_id(sim_cluster_t *c)
{
	if (c->next_id > SIM_MAX_IDS)
		return 0;
	return c->next_id++;
}

int sim_member_propose(sim_cluster_t *c, sim_node_t *leader, int type, uint64_t id)
{
	if (id == RAFT_NONE || id > SIM_MAX_IDS)
		return RAFT_ERR_INVALID_CONF_CHANGE;
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)type;
	cc.node_id = id;
	int rc = raft_propose_conf_change(leader->raft, &cc);
	if (rc != RAFT_OK) {
		SIM_TRACE_C(c, SIM_EV_CONF_FAIL, leader->id, (uint64_t)type, id,
			    (uint64_t)(int64_t)rc);
		return rc;
	}
	SIM_TRACE_C(c, SIM_EV_CONF_PROPOSE, leader->id, (uint64_t)type, id);
	sim_node_t *n = &c->nodes[id];
	if (type == RAFT_CONF_REMOVE_NODE)
		n->doomed = true;
	else if (n->state == SIM_NODE_FREE)
		n->state = SIM_NODE_JOINING;
	return rc;
}

static bool sim_conf_has(const raft_conf_t *conf, uint64_t id)
{
	return raft_conf_is_voter(conf, id) || raft_conf_is_learner(conf, id);
}

/* A joining node starts once any live node's log names it (changes take effect when
 * appended, so the leader already replicates to it). */
static bool sim_member_named(sim_cluster_t *c, uint64_t id)
{
	for (uint64_t i = 1; i <= SIM_MAX_IDS; i++)
		if (c->nodes[i].state == SIM_NODE_UP && sim_conf_has(&c->nodes[i].st.conf, id))
			return true;
	return false;
}

static void sim_member_lifecycle(sim_cluster_t *c)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS && !sim_failed(c); id++) {
		sim_node_t *n = &c->nodes[id];
		if (n->state == SIM_NODE_JOINING && !n->removed && sim_member_named(c, id))
			sim_node_start(c, n);
		else if (n->removed && n->state == SIM_NODE_UP && c->now >= n->stop_at)
			sim_node_stop(c, n);
		else if (n->removed && (n->state == SIM_NODE_DOWN || n->state == SIM_NODE_JOINING))
			sim_node_stop(c, n);
	}
}

static uint64_t sim_pick(sim_cluster_t *c, const uint64_t *ids, size_t n)
{
	return n ? ids[sim_rng_below(&c->rng, n)] : 0;
}

/* One random change that keeps the voter count within [max(3, N-1), N+1]. */
static void sim_member_random_change(sim_cluster_t *c)
{
	sim_node_t *l = sim_cluster_leader(c);
	if (!l)
		return;
	const raft_conf_t *conf = &l->st.conf;
	size_t nv = conf->n_voters, nl = conf->n_learners;
	size_t min_v = c->p.nodes - 1 > 3 ? (size_t)c->p.nodes - 1 : 3;
	size_t max_v = (size_t)c->p.nodes + 1;
	uint64_t promotable[RAFT_MAX_NODES];
	size_t np = 0;
	for (size_t i = 0; i < nl; i++) {
		sim_node_t *n = sim_cluster_node(c, conf->learners[i]);
		if (n && !n->doomed && (n->state == SIM_NODE_UP || n->state == SIM_NODE_DOWN))
			promotable[np++] = n->id;
	}
	int kinds[5], nk = 0;
	if (nl < 2)
		kinds[nk++] = 0; /* add learner */
	if (np && nv < max_v)
		kinds[nk++] = 1; /* promote */
	if (nv < max_v)
		kinds[nk++] = 2; /* add voter */
	if (nv > min_v)
		kinds[nk++] = 3; /* remove voter */
	if (nl)
		kinds[nk++] = 4; /* remove learner */
	if (!nk)
		return;
	uint64_t id = 0;
	switch (kinds[sim_rng_below(&c->rng, (uint64_t)nk)]) {
	case 0:
		if ((id = sim_member_new_id(c)))
			sim_member_propose(c, l, RAFT_CONF_ADD_LEARNER, id);
		break;
	case 1:
		sim_member_propose(c, l, RAFT_CONF_ADD_NODE, sim_pick(c, promotable, np));
		break;
	case 2:
		if ((id = sim_member_new_id(c)))
			sim_member_propose(c, l, RAFT_CONF_ADD_NODE, id);
		break;
	case 3:
		id = sim_rng_chance(&c->rng, 0.3) ? l->id : sim_pick(c, conf->voters, nv);
		sim_member_propose(c, l, RAFT_CONF_REMOVE_NODE, id);
		break;
	case 4:
		sim_member_propose(c, l, RAFT_CONF_REMOVE_NODE, sim_pick(c, conf->learners, nl));
		break;
	}
	c->conf_changes++;
}

void sim_member_tick(sim_cluster_t *c)
{
	sim_member_lifecycle(c);
	if (c->phase == SIM_PHASE_CHAOS && !c->scripted && !sim_failed(c) &&
	    sim_rng_chance(&c->rng, c->p.p_conf))
		sim_member_random_change(c);
}

/* A committed removal is final (ids are never reused): the node shuts down when it applies
 * it itself, or a little later if it never hears of it. */
void sim_member_on_apply(sim_cluster_t *c, sim_node_t *n, const raft_entry_t *e)
{
	if ((int)e->type != RAFT_ENTRY_CONF_CHANGE)
		return;
	raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, e->data.len, e->data.data);
	if (!cc) {
		sim_check_fail(&c->chk, "integrity", "n%llu applied a conf-change entry at %llu "
			       "that does not decode", (unsigned long long)n->id,
			       (unsigned long long)e->index);
		return;
	}
	uint64_t id = cc->node_id;
	int type = (int)cc->type;
	raftpb__conf_change__free_unpacked(cc, NULL);
	if (e->index > c->conf_logged) {
		c->conf_logged = e->index;
		SIM_TRACE_C(c, SIM_EV_CONF_COMMIT, (uint64_t)type, id, e->index);
	}
	if (type != RAFT_CONF_REMOVE_NODE || id == 0 || id > SIM_MAX_IDS)
		return;
	sim_node_t *gone = &c->nodes[id];
	if (!gone->removed) {
		gone->removed = true;
		gone->stop_at = c->now + SIM_TICK * sim_rng_range(&c->rng, 1, 20);
	}
	if (gone == n)
		n->self_stop = true;
}
