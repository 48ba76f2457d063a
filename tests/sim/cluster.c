/* tests/sim/cluster.c — a run's life and its discrete-event loop: time jumps to the next
 * tick, message or delayed Ready; each tick runs faults, membership, clients and raft_tick;
 * the heal phase must then converge within a bound. Owns all memory of a run. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

sim_cluster_t *sim_cluster_new(const sim_params_t *p, int verbose, FILE *out)
{
	sim_cluster_t *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->p = *p;
	sim_rng_seed(&c->rng, p->seed);
	sim_trace_init(&c->trace, verbose, out);
	sim_net_init(&c->net, &p->net);
	sim_check_init(&c->chk);
	c->next_tick_at = SIM_TICK;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++)
		c->nodes[id].id = id;
	c->next_id = (uint64_t)p->nodes + 1;
	for (uint64_t id = 1; id <= (uint64_t)p->nodes && !sim_failed(c); id++) {
		c->nodes[id].boot = true;
		sim_node_start(c, &c->nodes[id]);
	}
	return c;
}

void sim_cluster_free(sim_cluster_t *c)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		raft_node_free(n->raft);
		sim_disk_destroy(c, n);
		sim_confs_free(&n->confs);
		sim_sm_free(&n->sm);
		free(n->reads);
	}
	sim_net_free(&c->net);
	sim_check_free(&c->chk);
	sim_clients_free(&c->cl);
	free(c->scratch);
	free(c);
}

sim_node_t *sim_cluster_node(sim_cluster_t *c, uint64_t id)
{
	return id >= 1 && id <= SIM_MAX_IDS ? &c->nodes[id] : NULL;
}

sim_node_t *sim_cluster_leader(sim_cluster_t *c)
{
	sim_node_t *best = NULL;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		if (n->state != SIM_NODE_UP)
			continue;
		raft_status(n->raft, &n->st);
		if (n->st.state == RAFT_LEADER && (!best || n->st.term > best->st.term))
			best = n;
	}
	return best;
}

/* Handles the Readies that are due; a slow disk may postpone one. */
static void sim_cluster_readies(sim_cluster_t *c)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS && !sim_failed(c); id++) {
		sim_node_t *n = &c->nodes[id];
		for (int round = 0; round < 4 && n->state == SIM_NODE_UP && !sim_failed(c); round++) {
			if (n->ready_at > c->now || !raft_has_ready(n->raft))
				break;
			if (c->phase == SIM_PHASE_CHAOS && !c->scripted &&
			    sim_rng_chance(&c->rng, c->p.p_slow_disk)) {
				uint64_t wait = sim_rng_range(&c->rng, 1, c->p.slow_max);
				n->ready_at = c->now + wait;
				SIM_TRACE_C(c, SIM_EV_SLOW_DISK, n->id, wait);
				break;
			}
			sim_node_handle_ready(c, n);
		}
	}
}

static uint64_t sim_cluster_next_time(const sim_cluster_t *c)
{
	uint64_t next = c->next_tick_at, t = sim_net_next_time(&c->net);
	if (t < next)
		next = t;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		const sim_node_t *n = &c->nodes[id];
		if (n->state == SIM_NODE_UP && n->ready_at > c->now && n->ready_at < next)
			next = n->ready_at;
	}
	return next;
}

static void sim_cluster_tick_nodes(sim_cluster_t *c)
{
	uint64_t start = sim_rng_below(&c->rng, SIM_MAX_IDS);
	for (uint64_t k = 0; k < SIM_MAX_IDS; k++) {
		sim_node_t *n = &c->nodes[1 + (start + k) % SIM_MAX_IDS];
		if (n->state == SIM_NODE_UP)
			raft_tick(n->raft);
	}
}

static void sim_cluster_on_tick(sim_cluster_t *c)
{
	c->tick++;
	c->next_tick_at += SIM_TICK;
	if (c->phase == SIM_PHASE_CHAOS && !c->scripted && c->tick >= c->p.chaos_ticks)
		sim_cluster_begin_heal(c);
	sim_faults_heal_due(c);
	sim_faults_restart_due(c);
	sim_faults_tick(c);
	sim_member_tick(c);
	sim_client_tick(c);
	sim_lease_tick(c);
	if (sim_failed(c))
		return;
	sim_cluster_tick_nodes(c);
	if (c->phase != SIM_PHASE_HEAL || c->scripted)
		return;
	if (sim_cluster_converged(c))
		c->phase = SIM_PHASE_DONE, c->heal_took = c->tick - c->heal_start;
	else if (c->tick > c->heal_deadline)
		sim_check_fail(&c->chk, "liveness", "%llu ticks after the faults healed the "
			       "cluster has still not converged (a leader, everything committed "
			       "and applied on every member)",
			       (unsigned long long)(c->heal_deadline - c->heal_start));
}

/* One instant of simulated time: a tick if due, every message due, the Readies. */
static void sim_cluster_step(sim_cluster_t *c)
{
	c->now = sim_cluster_next_time(c);
	if (c->now == c->next_tick_at)
		sim_cluster_on_tick(c);
	raft_msg_t *m;
	bool lost;
	while (!sim_failed(c) && (m = sim_net_pop(&c->net, c->now, &lost)))
		sim_node_deliver(c, m, lost);
	sim_cluster_readies(c);
}

void sim_cluster_run_ticks(sim_cluster_t *c, uint64_t n)
{
	uint64_t until = c->tick + n;
	while (!sim_failed(c) && c->tick < until)
		sim_cluster_step(c);
}

bool sim_cluster_run(sim_cluster_t *c)
{
	while (!sim_failed(c) && c->phase != SIM_PHASE_DONE)
		sim_cluster_step(c);
	return !sim_failed(c);
}

/* Ticks a member may need to replay the whole log: one round trip (at most ~1.2 ticks)
 * moves max_inflight messages of at least one entry each. */
static uint64_t sim_cluster_backlog_ticks(const sim_cluster_t *c)
{
	uint64_t last = 0;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		const sim_node_t *n = &c->nodes[id];
		if (n->state == SIM_NODE_UP && n->st.last_index > last)
			last = n->st.last_index;
	}
	uint64_t entry = SIM_WRITE_HEADER + c->p.write_pad_max + 16;
	uint64_t per_msg = c->p.max_size_per_msg / entry;
	uint64_t per_rtt = (per_msg ? per_msg : 1) * (uint64_t)c->p.max_inflight;
	return (last * 3 / 2) / per_rtt + 1;
}

void sim_cluster_begin_heal(sim_cluster_t *c)
{
	c->phase = SIM_PHASE_HEAL;
	c->heal_start = c->tick;
	c->heal_deadline = c->tick + c->p.heal_ticks + sim_cluster_backlog_ticks(c);
	c->net.faults_on = false;
	sim_trace_say(&c->trace, c->now, "--- faults stop: partitions heal, crashed members "
					 "restart; the cluster must converge ---");
	sim_faults_heal_all(c);
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		n->crash_in_ready = false;
		n->ready_at = 0;
		if (n->state == SIM_NODE_DOWN)
			n->restart_at = 0;
	}
	sim_faults_restart_due(c);
}

static bool sim_conf_has(const raft_conf_t *conf, uint64_t id)
{
	return raft_conf_is_voter(conf, id) || raft_conf_is_learner(conf, id);
}

/* Converged: a leader has committed its whole log and every member of its (committed)
 * configuration is up, follows it in its term (a partitioned stale leader does not count)
 * and has applied all of it. Nodes outside it are shut down. */
bool sim_cluster_converged(sim_cluster_t *c)
{
	sim_node_t *l = sim_cluster_leader(c);
	if (!l || l->st.commit < l->st.last_index)
		return false;
	raft_status_t st = l->st;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		if (n->state == SIM_NODE_UP && !sim_conf_has(&st.conf, id))
			sim_node_stop(c, n);
	}
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		if (!sim_conf_has(&st.conf, id))
			continue;
		if (n->state != SIM_NODE_UP || n->sm.applied < st.commit)
			return false;
		raft_status(n->raft, &n->st);
		if (n->st.term != st.term || n->st.lead != l->id)
			return false;
	}
	for (uint64_t id = 1; id <= SIM_MAX_IDS && !sim_failed(c); id++)
		if (sim_conf_has(&st.conf, id))
			sim_client_check_member(c, &c->nodes[id]);
	if (!sim_failed(c))
		sim_disk_check_converged(c, &st.conf);
	if (!sim_failed(c))
		sim_lease_check_converged(c, l);
	return !sim_failed(c);
}
