/* tests/sim/faults.c — the chaos: crashes (now, or in the middle of handling a Ready),
 * restarts from disk, symmetric and one-way partitions, leadership transfers and forced
 * campaigns, all drawn from the run's PRNG. Message loss lives in net.c. */
#include "sim.h"

static size_t sim_up_nodes(sim_cluster_t *c, sim_node_t **out)
{
	size_t n = 0;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++)
		if (c->nodes[id].state == SIM_NODE_UP)
			out[n++] = &c->nodes[id];
	return n;
}

/* Every node that has a disk (up or down): the ones a partition can separate. */
static uint64_t sim_started_mask(sim_cluster_t *c)
{
	uint64_t mask = 0;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++)
		if (c->nodes[id].state == SIM_NODE_UP || c->nodes[id].state == SIM_NODE_DOWN ||
		    c->nodes[id].state == SIM_NODE_JOINING)
			mask |= 1ull << id;
	return mask;
}

/* The leader half of the time (leader changes are where Raft gets subtle), else any
 * live node. */
static sim_node_t *sim_pick_victim(sim_cluster_t *c)
{
	sim_node_t *l = sim_cluster_leader(c);
	if (l && sim_rng_chance(&c->rng, 0.5))
		return l;
	sim_node_t *up[SIM_MAX_IDS];
	size_t n = sim_up_nodes(c, up);
	return n ? up[sim_rng_below(&c->rng, n)] : NULL;
}

static void sim_fault_crash(sim_cluster_t *c)
{
	sim_node_t *victim = sim_pick_victim(c);
	if (!victim)
		return;
	uint64_t down = sim_rng_range(&c->rng, c->p.down_min, c->p.down_max);
	if (sim_rng_chance(&c->rng, c->p.p_crash_in_ready)) {
		victim->crash_in_ready = true; /* at its next Ready, before or mid persist */
		victim->crash_down = down;
		return;
	}
	SIM_TRACE_C(c, SIM_EV_CRASH, victim->id, down);
	sim_node_crash(c, victim, down);
}

void sim_faults_isolate(sim_cluster_t *c, uint64_t id, uint64_t ticks)
{
	uint64_t me = 1ull << id, rest = ~me & ~1ull;
	if (sim_net_partition(&c->net, me, rest, true, c->now + ticks * SIM_TICK))
		SIM_TRACE_C(c, SIM_EV_ISOLATE, id, ticks);
}

static void sim_fault_partition(sim_cluster_t *c)
{
	uint64_t all = sim_started_mask(c), ticks = sim_rng_range(&c->rng, c->p.part_min,
								 c->p.part_max);
	uint64_t until = c->now + ticks * SIM_TICK;
	uint64_t a = all & sim_rng_next(&c->rng), b = all & ~a;
	if (!a || !b)
		return;
	switch (sim_rng_below(&c->rng, 4)) {
	case 0: { /* isolate one node */
		sim_node_t *victim = sim_pick_victim(c);
		if (victim)
			sim_faults_isolate(c, victim->id, ticks);
		break;
	}
	case 1: /* split in two */
		if (sim_net_partition(&c->net, a, b, true, until))
			SIM_TRACE_C(c, SIM_EV_SPLIT, a, b, ticks);
		break;
	case 2: /* one way, between groups */
		if (sim_net_partition(&c->net, a, b, false, until))
			SIM_TRACE_C(c, SIM_EV_ONEWAY, a, b, ticks);
		break;
	default: { /* one way, a single link */
		uint64_t from = a & (~a + 1), to = b & (~b + 1);
		if (sim_net_partition(&c->net, from, to, false, until))
			SIM_TRACE_C(c, SIM_EV_ONEWAY, from, to, ticks);
		break;
	}
	}
}

int sim_faults_transfer(sim_cluster_t *c, sim_node_t *leader, uint64_t to)
{
	int rc = raft_transfer_leader(leader->raft, to);
	if (rc == RAFT_OK)
		SIM_TRACE_C(c, SIM_EV_TRANSFER, leader->id, to);
	else
		SIM_TRACE_C(c, SIM_EV_TRANSFER_FAIL, leader->id, to, (uint64_t)(int64_t)rc);
	return rc;
}

static void sim_fault_transfer(sim_cluster_t *c)
{
	sim_node_t *l = sim_cluster_leader(c);
	if (!l || l->st.conf.n_voters < 2)
		return;
	const raft_conf_t *conf = &l->st.conf;
	uint64_t to = conf->voters[sim_rng_below(&c->rng, conf->n_voters)];
	if (to != l->id)
		sim_faults_transfer(c, l, to);
}

static void sim_fault_campaign(sim_cluster_t *c)
{
	sim_node_t *up[SIM_MAX_IDS];
	size_t n = sim_up_nodes(c, up);
	if (!n)
		return;
	sim_node_t *x = up[sim_rng_below(&c->rng, n)];
	SIM_TRACE_C(c, SIM_EV_FORCE_CAMPAIGN, x->id);
	raft_campaign(x->raft);
}

void sim_faults_tick(sim_cluster_t *c)
{
	if (c->phase != SIM_PHASE_CHAOS || c->scripted)
		return;
	const sim_params_t *p = &c->p;
	if (sim_rng_chance(&c->rng, p->p_crash))
		sim_fault_crash(c);
	if (sim_rng_chance(&c->rng, p->p_partition))
		sim_fault_partition(c);
	if (sim_rng_chance(&c->rng, p->p_transfer))
		sim_fault_transfer(c);
	if (sim_rng_chance(&c->rng, p->p_campaign))
		sim_fault_campaign(c);
}

void sim_faults_restart_due(sim_cluster_t *c)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS && !sim_failed(c); id++) {
		sim_node_t *n = &c->nodes[id];
		if (n->state == SIM_NODE_DOWN && !n->removed && n->restart_at <= c->tick)
			sim_node_start(c, n);
	}
}

void sim_faults_heal_due(sim_cluster_t *c)
{
	sim_partition_t p;
	while (sim_net_heal_due(&c->net, c->now, &p))
		SIM_TRACE_C(c, SIM_EV_HEAL, p.a, p.b);
}

void sim_faults_heal_all(sim_cluster_t *c)
{
	sim_partition_t p;
	while (sim_net_heal_due(&c->net, UINT64_MAX, &p))
		SIM_TRACE_C(c, SIM_EV_HEAL, p.a, p.b);
}
