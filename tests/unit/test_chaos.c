/* tests/unit/test_chaos.c — seeded random runs with loss, duplication, reordering,
 * partitions, restarts, compaction and membership churn; checks Election Safety and State
 * Machine Safety after every step, and that the cluster converges once healed. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAOS_MAX_INDEX 20000
#define CHAOS_MAX_TERM 4096

typedef struct chaos {
	h_net_t *net;
	uint64_t rng;
	uint64_t leader_of[CHAOS_MAX_TERM]; /* term -> the one node that led it */
	uint64_t term_at[CHAOS_MAX_INDEX];  /* index -> term of the entry applied there */
	uint32_t hash_at[CHAOS_MAX_INDEX];  /* index -> hash of its data */
	size_t checked[H_MAX_NODES + 1];    /* applied entries already checked per node */
	size_t n_nodes;
	uint64_t extra;                     /* the node whose membership churns */
	int proposals;
} chaos_t;

static uint64_t chaos_rand(chaos_t *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static bool chaos_chance(chaos_t *c, unsigned percent)
{
	return chaos_rand(c) % 100 < percent;
}

static uint32_t chaos_hash(const raft_entry_t *e)
{
	uint32_t h = 2166136261u ^ (uint32_t)e->type;
	for (size_t i = 0; i < e->data.len; i++)
		h = (h ^ e->data.data[i]) * 16777619u;
	return h;
}

/* Election Safety and State Machine Safety, checked incrementally. */
static void chaos_check(chaos_t *c)
{
	for (uint64_t id = 1; id <= H_MAX_NODES; id++) {
		h_node_t *nd = h_node(c->net, id);
		if (!nd->raft)
			continue;
		raft_status_t st = h_status(c->net, id);
		assert_true(st.commit <= st.last_index);
		if (st.state == RAFT_LEADER) {
			assert_true(st.term < CHAOS_MAX_TERM);
			if (c->leader_of[st.term] == 0)
				c->leader_of[st.term] = id;
			assert_int_equal(c->leader_of[st.term], id);
		}
		for (size_t i = c->checked[id]; i < nd->n_ents; i++) {
			const raft_entry_t *e = nd->ents[i];
			assert_true(e->index < CHAOS_MAX_INDEX);
			if (c->term_at[e->index] == 0) {
				c->term_at[e->index] = e->term;
				c->hash_at[e->index] = chaos_hash(e);
			}
			assert_int_equal(c->term_at[e->index], e->term);
			assert_int_equal(c->hash_at[e->index], chaos_hash(e));
		}
		c->checked[id] = nd->n_ents;
	}
}

static void chaos_step_msg(chaos_t *c, raft_msg_t *m)
{
	h_net_t *net = c->net;
	bool dropped = m->to == 0 || m->to > H_MAX_NODES || !h_node(net, m->to)->raft ||
		       net->cut[m->from][m->to] || chaos_chance(c, 8);
	raft_node_t *sender = m->from <= H_MAX_NODES ? h_node(net, m->from)->raft : NULL;
	if (!dropped)
		raft_step(h_node(net, m->to)->raft, m);
	/* like a transport: report snapshot outcomes, except now and then a lost report */
	if ((int)m->type == RAFT_MSG_SNAP && sender && chaos_chance(c, 80))
		raft_report_snapshot(sender, m->to, dropped);
	raft_msg_free(m);
}

/* Delivers what is queued in a shuffled order, duplicating a few messages. */
static void chaos_deliver(chaos_t *c)
{
	h_drain_all(c->net);
	raft_msg_t *batch[1024];
	size_t n = h_take(c->net, H_ANY_TYPE, H_ANY, H_ANY, batch, 1024);
	for (size_t i = n; i > 1; i--) {
		size_t j = chaos_rand(c) % i;
		raft_msg_t *t = batch[i - 1];
		batch[i - 1] = batch[j];
		batch[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		if (chaos_chance(c, 3)) {
			raft_msg_t *dup = raft_msg_clone(batch[i]);
			if (dup)
				h_send(c->net, dup); /* arrives in a later round */
		}
		chaos_step_msg(c, batch[i]);
	}
	h_drain_all(c->net);
}

static uint64_t chaos_node(chaos_t *c)
{
	return 1 + chaos_rand(c) % c->n_nodes;
}

static void chaos_membership(chaos_t *c, uint64_t lead)
{
	raft_status_t st = h_status(c->net, lead);
	uint64_t x = c->extra;
	int type;
	if (raft_conf_is_voter(&st.conf, x))
		type = chaos_chance(c, 50) ? RAFT_CONF_REMOVE_NODE : RAFT_CONF_ADD_LEARNER;
	else if (raft_conf_is_learner(&st.conf, x))
		type = chaos_chance(c, 50) ? RAFT_CONF_ADD_NODE : RAFT_CONF_REMOVE_NODE;
	else
		type = RAFT_CONF_ADD_LEARNER;
	if (type == RAFT_CONF_ADD_LEARNER && raft_conf_is_voter(&st.conf, x))
		return; /* demotion is not a single-step change here */
	h_propose_cc(c->net, lead, type, x);
}

static void chaos_action(chaos_t *c)
{
	h_net_t *net = c->net;
	uint64_t r = chaos_rand(c) % 100, lead = h_leader(net);
	if (r < 35) {
		h_tick_all(net, 1);
	} else if (r < 60) {
		uint64_t id = lead && chaos_chance(c, 70) ? lead : chaos_node(c);
		if (h_node(net, id)->raft) {
			char buf[32];
			snprintf(buf, sizeof(buf), "v%d", c->proposals++);
			h_propose(net, id, buf);
		}
	} else if (r < 66) {
		h_heal(net);
		if (chaos_chance(c, 60))
			h_isolate(net, chaos_node(c));
		if (chaos_chance(c, 30))
			h_cut(net, chaos_node(c), chaos_node(c));
	} else if (r < 69) {
		uint64_t id = chaos_node(c);
		if (h_node(net, id)->raft)
			h_restart(net, id);
	} else if (r < 72) {
		uint64_t id = chaos_node(c);
		if (h_node(net, id)->raft)
			h_compact(net, id);
	} else if (r < 75) {
		if (lead)
			chaos_membership(c, lead);
	} else if (r < 78) {
		if (lead)
			raft_transfer_leader(h_raft(net, lead), chaos_node(c));
	} else if (r < 82) {
		uint64_t id = chaos_node(c);
		if (h_node(net, id)->raft)
			h_read_index(net, id, "chaos");
	} else if (r < 84) {
		uint64_t id = chaos_node(c);
		if (h_node(net, id)->raft)
			raft_campaign(h_raft(net, id));
	}
	chaos_deliver(c);
	chaos_check(c);
}

static bool chaos_all_applied(chaos_t *c, const raft_conf_t *conf, const char *s)
{
	for (size_t i = 0; i < conf->n_voters; i++)
		if (h_node(c->net, conf->voters[i])->raft &&
		    h_applied_count(c->net, conf->voters[i], s) != 1)
			return false;
	return true;
}

/* Without pre-vote and check-quorum a removed node that never learned of its removal
 * keeps deposing leaders with higher terms (thesis §4.2.3): such runs stop it first. */
static void chaos_run(uint64_t seed, size_t n_voters, h_cfg_fn fn, int steps, bool stop_extra)
{
	chaos_t *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	c->net = h_net_new(n_voters, 1, fn);
	c->n_nodes = n_voters + 1;
	c->extra = n_voters + 1;
	for (int i = 0; i < steps; i++)
		chaos_action(c);
	/* liveness: once healed and quiet, one leader and everyone converges */
	if (stop_extra && h_node(c->net, c->extra)->raft)
		h_stop(c->net, c->extra);
	h_heal(c->net);
	h_tick_stabilize(c->net, 20);
	for (int i = 0; i < 400 && h_count_leaders(c->net) != 1; i++)
		h_tick_stabilize(c->net, 1); /* disrupted elections may take a few rounds */
	uint64_t lead = h_leader(c->net);
	assert_int_not_equal(lead, 0);
	assert_int_equal(h_propose(c->net, lead, "last"), RAFT_OK);
	raft_status_t st = h_status(c->net, lead);
	/* a snapshot lost without a report is retried after a timeout: allow for it */
	for (int i = 0; i < 100 && !chaos_all_applied(c, &st.conf, "last"); i++)
		h_tick_stabilize(c->net, 1);
	chaos_check(c);
	assert_true(chaos_all_applied(c, &st.conf, "last"));
	h_net_free(c->net);
	free(c);
}

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

static void cfg_small(raft_config_t *cfg)
{
	cfg->max_size_per_msg = 32;
	cfg->max_inflight_msgs = 2;
}

static void test_chaos_defaults(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 30; seed++)
		chaos_run(seed, 3, NULL, 3000, false);
}

static void test_chaos_five_nodes(void **state)
{
	(void)state;
	for (uint64_t seed = 100; seed < 120; seed++)
		chaos_run(seed, 5, NULL, 3000, false);
}

static void test_chaos_without_prevote_or_check_quorum(void **state)
{
	(void)state;
	for (uint64_t seed = 200; seed < 230; seed++)
		chaos_run(seed, 3, cfg_plain, 3000, true);
}

static void test_chaos_small_messages_and_windows(void **state)
{
	(void)state;
	for (uint64_t seed = 300; seed < 320; seed++)
		chaos_run(seed, 5, cfg_small, 3000, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chaos_defaults),
		cmocka_unit_test(test_chaos_five_nodes),
		cmocka_unit_test(test_chaos_without_prevote_or_check_quorum),
		cmocka_unit_test(test_chaos_small_messages_and_windows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
