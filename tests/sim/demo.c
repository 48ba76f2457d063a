/* tests/sim/demo.c — `keel-sim --demo`: a scripted, narrated 3-node story (election, writes,
 * a read, a partition, InstallSnapshot, a learner promoted, a transfer, a removal) with
 * every invariant checked as in the random runs. */
#include <stdio.h>

#include "sim.h"

typedef bool (*sim_demo_pred_t)(sim_cluster_t *c, uint64_t arg);

/* Runs tick by tick until pred holds; fails the run after max ticks. */
static bool sim_demo_until(sim_cluster_t *c, sim_demo_pred_t pred, uint64_t arg, uint64_t max,
			   const char *what)
{
	for (uint64_t i = 0; i < max && !sim_failed(c); i++) {
		if (pred(c, arg))
			return true;
		sim_cluster_run_ticks(c, 1);
	}
	if (!sim_failed(c) && !pred(c, arg))
		sim_check_fail(&c->chk, "demo", "%s did not happen within %llu ticks", what,
			       (unsigned long long)max);
	return !sim_failed(c);
}

/* A leader other than not_id (0: any leader). */
static bool sim_pred_leader(sim_cluster_t *c, uint64_t not_id)
{
	sim_node_t *l = sim_cluster_leader(c);
	return l && l->id != not_id;
}

static bool sim_leader_is(sim_cluster_t *c, uint64_t id)
{
	sim_node_t *l = sim_cluster_leader(c);
	return l && l->id == id;
}

static bool sim_acked_at_least(sim_cluster_t *c, uint64_t n)
{
	if (c->cl.acked < n)
		return false;
	SIM_TRACE_C(c, SIM_EV_CLIENTS, c->cl.acked, c->cl.served);
	return true;
}

static bool sim_served_at_least(sim_cluster_t *c, uint64_t n)
{
	if (c->cl.served < n)
		return false;
	SIM_TRACE_C(c, SIM_EV_CLIENTS, c->cl.acked, c->cl.served);
	return true;
}

/* Node id is up and has applied everything the leader committed. */
static bool sim_caught_up(sim_cluster_t *c, uint64_t id)
{
	sim_node_t *l = sim_cluster_leader(c), *n = sim_cluster_node(c, id);
	return l && n->state == SIM_NODE_UP && n->sm.applied >= l->st.commit &&
	       l->st.commit == l->st.last_index;
}

static bool sim_is_voter(sim_cluster_t *c, uint64_t id)
{
	sim_node_t *l = sim_cluster_leader(c);
	return l && raft_conf_is_voter(&l->st.conf, id) && l->st.commit == l->st.last_index;
}

static bool sim_is_gone(sim_cluster_t *c, uint64_t id)
{
	return c->nodes[id].state == SIM_NODE_GONE;
}

static bool sim_converged(sim_cluster_t *c, uint64_t unused)
{
	(void)unused;
	return sim_cluster_converged(c);
}

/* Proposes a conf change at the leader, retrying while an earlier one (or the new
 * leader's first entry) is still pending. */
static bool sim_demo_conf(sim_cluster_t *c, int type, uint64_t id)
{
	for (int i = 0; i < 50 && !sim_failed(c); i++) {
		sim_node_t *l = sim_cluster_leader(c);
		if (l && sim_member_propose(c, l, type, id) == RAFT_OK)
			return true;
		sim_cluster_run_ticks(c, 1);
	}
	return sim_check_fail(&c->chk, "demo", "could not propose a conf change for n%llu",
			      (unsigned long long)id);
}

static void sim_demo_writes(sim_cluster_t *c, sim_node_t *to, int n)
{
	for (int i = 0; i < n; i++)
		sim_client_write(c, to);
}

static sim_node_t *sim_demo_follower(sim_cluster_t *c, uint64_t leader)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++)
		if (id != leader && c->nodes[id].state == SIM_NODE_UP)
			return &c->nodes[id];
	return NULL;
}

static void sim_demo_params(sim_params_t *p, uint64_t seed)
{
	sim_params_from_seed(p, seed, 3);
	p->election_tick = 10;
	p->heartbeat_tick = 1;
	p->pre_vote = p->check_quorum = true;
	p->read_only = RAFT_READ_SAFE;
	p->no_forwarding = false;
	p->max_size_per_msg = 1u << 20;
	p->max_inflight = 256;
	p->net = (sim_net_faults_t){.wire = 1, .lat_min = 1, .lat_max = 3};
	p->snap_every = 1u << 30;
	p->snap_keep = 0;
	p->write_pad_max = 16;
}

static bool sim_demo_script(sim_cluster_t *c)
{
	sim_trace_t *t = &c->trace;
	sim_trace_say(t, c->now, "== 1. Three nodes boot, each with an empty disk, and elect a leader");
	if (!sim_demo_until(c, sim_pred_leader, 0, 100, "a first election"))
		return false;
	sim_node_t *l1 = sim_cluster_leader(c);

	sim_trace_say(t, c->now, "== 2. A client writes five values through the leader ...");
	sim_demo_writes(c, l1, 5);
	if (!sim_demo_until(c, sim_acked_at_least, 5, 50, "five acknowledged writes"))
		return false;
	sim_trace_say(t, c->now, "   ... and reads linearizably from a follower (ReadIndex)");
	sim_client_read(c, sim_demo_follower(c, l1->id));
	if (!sim_demo_until(c, sim_served_at_least, 1, 50, "a linearizable read"))
		return false;

	sim_trace_say(t, c->now, "== 3. The leader is cut off; the other two elect a new one");
	sim_faults_isolate(c, l1->id, 60);
	if (!sim_demo_until(c, sim_pred_leader, l1->id, 100, "a new leader"))
		return false;
	sim_node_t *l2 = sim_cluster_leader(c);
	sim_trace_say(t, c->now, "   writes go on through the new leader");
	sim_demo_writes(c, l2, 3);
	if (!sim_demo_until(c, sim_acked_at_least, 8, 50, "three more writes"))
		return false;

	sim_trace_say(t, c->now, "== 4. The partition heals: the old leader steps down and catches up");
	sim_faults_heal_all(c);
	if (!sim_demo_until(c, sim_caught_up, l1->id, 100, "the old leader catching up"))
		return false;

	sim_node_t *f = sim_demo_follower(c, l2->id);
	sim_trace_say(t, c->now, "== 5. A follower crashes; meanwhile the leader snapshots and "
				 "compacts its log");
	SIM_TRACE_C(c, SIM_EV_CRASH, f->id, 1);
	sim_node_crash(c, f, 1000);
	sim_demo_writes(c, l2, 5);
	if (!sim_demo_until(c, sim_acked_at_least, 13, 50, "writes with a follower down"))
		return false;
	sim_node_snapshot(c, l2);
	sim_trace_say(t, c->now, "   the follower restarts behind the compaction point: it gets "
				 "an InstallSnapshot");
	sim_node_start(c, f);
	if (!sim_demo_until(c, sim_caught_up, f->id, 100, "the restarted follower catching up"))
		return false;

	uint64_t id = sim_member_new_id(c);
	sim_trace_say(t, c->now, "== 6. A fourth node joins as a learner, catches up, and is "
				 "promoted to voter");
	if (!sim_demo_conf(c, RAFT_CONF_ADD_LEARNER, id) ||
	    !sim_demo_until(c, sim_caught_up, id, 100, "the learner catching up"))
		return false;
	if (!sim_demo_conf(c, RAFT_CONF_ADD_NODE, id) ||
	    !sim_demo_until(c, sim_is_voter, id, 100, "the promotion"))
		return false;

	sim_trace_say(t, c->now, "== 7. The leader hands leadership over to the new node");
	sim_faults_transfer(c, sim_cluster_leader(c), id);
	if (!sim_demo_until(c, sim_leader_is, id, 100, "the leadership transfer"))
		return false;

	sim_trace_say(t, c->now, "== 8. The first leader is removed from the cluster");
	if (!sim_demo_conf(c, RAFT_CONF_REMOVE_NODE, l1->id) ||
	    !sim_demo_until(c, sim_is_gone, l1->id, 100, "the removal"))
		return false;
	sim_demo_writes(c, sim_cluster_leader(c), 2);
	if (!sim_demo_until(c, sim_acked_at_least, 15, 50, "writes in the new configuration"))
		return false;

	sim_trace_say(t, c->now, "== 9. Every member holds every acknowledged write");
	return sim_demo_until(c, sim_converged, 0, 200, "convergence");
}

/* With --disk: what each member's store holds at the end (equal on all of them). */
static void sim_demo_stores(sim_cluster_t *c, FILE *out)
{
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		uint32_t hash;
		int64_t compact, rev;
		if (n->state != SIM_NODE_UP || !n->kv ||
		    kv_hash_kv(n->kv, 0, &hash, &compact, &rev) != KV_OK)
			continue;
		fprintf(out, "  n%llu: WAL and LMDB store applied to index %llu, revision %lld, "
			"HashKV %08x\n", (unsigned long long)id,
			(unsigned long long)kv_applied_index(n->kv), (long long)rev, hash);
	}
}

int sim_demo_run(uint64_t seed, int verbose, FILE *out, const char *disk_dir)
{
	sim_params_t p;
	sim_demo_params(&p, seed);
	p.disk_dir = disk_dir;
	sim_cluster_t *c = sim_cluster_new(&p, verbose < 1 ? 1 : verbose, out);
	c->scripted = true;
	bool ok = sim_demo_script(c);
	if (ok) {
		sim_node_t *l = sim_cluster_leader(c);
		fprintf(out, "\nThe end: leader n%llu (term %llu), %zu voters, commit index %llu, "
			"%llu writes acknowledged, %llu reads served, every invariant held.\n",
			(unsigned long long)l->id, (unsigned long long)l->st.term,
			l->st.conf.n_voters, (unsigned long long)l->st.commit,
			(unsigned long long)c->cl.acked, (unsigned long long)c->cl.served);
		sim_demo_stores(c, out);
	} else {
		fprintf(out, "\ndemo FAILED: %s: %s\n", c->chk.invariant, c->chk.detail);
	}
	sim_cluster_free(c);
	return ok ? 0 : 1;
}
