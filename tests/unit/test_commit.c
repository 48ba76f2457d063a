/* tests/unit/test_commit.c — commitment (Raft §5.3, §5.4.2): majority replication, entries
 * of older terms committed only through an entry of the leader's term (Figure 8), the
 * follower's commit bounded by what it verified, and commit never moving backwards. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

/* Figure 8 needs hand-driven elections and one entry per MsgApp. */
static void cfg_fig8(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
	cfg->max_size_per_msg = 0;
}

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

/* Campaigns until id leads (an earlier attempt may lose to votes already cast). */
static void elect_by_campaigning(h_net_t *net, uint64_t id)
{
	for (int i = 0; i < 5 && h_state(net, id) != RAFT_LEADER; i++) {
		assert_int_equal(raft_campaign(h_raft(net, id)), RAFT_OK);
		h_stabilize(net);
	}
	assert_int_equal(h_state(net, id), RAFT_LEADER);
}

typedef struct term_filter {
	uint64_t term; /* strip entries of this term from MsgApp ... */
	uint64_t a, b; /* ... to these nodes */
} term_filter_t;

/* Delivers only the prefix of a MsgApp's entries that precedes the filtered term. */
static bool filter_term_entries(h_net_t *net, raft_msg_t *m, void *arg)
{
	(void)net;
	term_filter_t *f = arg;
	if ((int)m->type != RAFT_MSG_APP || (m->to != f->a && m->to != f->b))
		return false;
	for (size_t i = 0; i < m->n_entries; i++) {
		if (m->entries[i]->term != f->term)
			continue;
		for (size_t j = i; j < m->n_entries; j++)
			raft_entry_free(m->entries[j]);
		m->n_entries = i;
		break;
	}
	return false;
}

/* Figure 8 (a)-(c) with five nodes. Returns the index of S1's term-2 style entry, which
 * ends on S1, S2 and S3 (a majority) while S1 leads a later term, uncommitted. */
static uint64_t figure8_setup(h_net_t *net, term_filter_t *tf)
{
	h_elect(net, 1);
	uint64_t idx = h_status(net, 1).last_index + 1;
	/* (a) S1 replicates its entry to S2 only */
	h_cut(net, 1, 3);
	h_cut(net, 1, 4);
	h_cut(net, 1, 5);
	assert_int_equal(h_propose(net, 1, "fig8-old"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_log_term(net, 2, idx), h_term(net, 1));
	/* (b) S1 crashes; S5 wins with S3, S4 and appends at idx only locally */
	h_stop(net, 1);
	h_heal(net);
	h_drop_type(net, RAFT_MSG_APP);
	elect_by_campaigning(net, 5);
	h_heal(net);
	assert_int_equal(h_last_index(net, 5), idx);
	assert_int_equal(h_last_index(net, 3), idx - 1);
	/* (c) S5 crashes; S1 restarts, wins, and replicates the old entry to S3 only */
	h_stop(net, 5);
	h_start(net, 1);
	h_drain(net, 1);
	h_drop_type(net, RAFT_MSG_APP);
	elect_by_campaigning(net, 1);
	h_heal(net);
	tf->term = h_term(net, 1);
	tf->a = 3;
	tf->b = 4;
	h_set_filter(net, filter_term_entries, tf);
	h_tick_stabilize(net, 3);
	raft_progress_state_t st;
	uint64_t match, next;
	assert_int_equal(raft_progress(h_raft(net, 1), 3, &st, &match, &next), RAFT_OK);
	assert_int_equal(match, idx);
	assert_int_equal(h_log_term(net, 3, idx), h_log_term(net, 1, idx));
	return idx;
}

static void test_figure8_old_term_entry_not_committed_by_counting_replicas(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, cfg_fig8);
	term_filter_t tf;
	uint64_t idx = figure8_setup(net, &tf);
	assert_true(h_status(net, 1).commit < idx);
	for (uint64_t id = 1; id <= 4; id++)
		assert_int_equal(h_applied_count(net, id, "fig8-old"), 0);

	/* (d) S1 crashes again; S5 can legitimately win and overwrite the entry */
	h_stop(net, 1);
	h_heal(net);
	h_start(net, 5);
	h_drain(net, 5);
	elect_by_campaigning(net, 5);
	h_stabilize(net);
	for (uint64_t id = 2; id <= 4; id++) {
		assert_true(h_logs_equal(net, 5, id));
		assert_int_equal(h_log_term(net, id, idx), h_log_term(net, 5, idx));
	}
	h_start(net, 1);
	h_tick_stabilize(net, 3);
	assert_true(h_logs_equal(net, 5, 1));
	for (uint64_t id = 1; id <= 5; id++)
		assert_int_equal(h_applied_count(net, id, "fig8-old"), 0);
	h_net_free(net);
}

static void test_figure8_old_entry_commits_with_current_term_entry(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, cfg_fig8);
	term_filter_t tf;
	uint64_t idx = figure8_setup(net, &tf);
	/* (e) the entry of S1's own term reaches the majority: both commit */
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_true(h_status(net, 1).commit > idx);
	for (uint64_t id = 1; id <= 4; id++)
		assert_int_equal(h_applied_count(net, id, "fig8-old"), 1);
	/* S5 can no longer win */
	h_stop(net, 1);
	h_start(net, 5);
	for (int i = 0; i < 3; i++) {
		raft_campaign(h_raft(net, 5));
		h_stabilize(net);
		assert_int_not_equal(h_state(net, 5), RAFT_LEADER);
	}
	h_net_free(net);
}

static uint64_t crafted_boot(h_net_t *net, const uint64_t *const *logs, const size_t *lens,
			     const uint64_t *hs, size_t n)
{
	uint64_t voters[H_MAX_NODES];
	for (size_t i = 0; i < n; i++)
		voters[i] = i + 1;
	for (size_t i = 0; i < n; i++)
		h_node_boot_log(net, i + 1, voters, n, logs[i], lens[i], hs[i], 1);
	h_drain_all(net);
	return h_last_index(net, 1);
}

static void test_leader_does_not_commit_old_term_entry_on_replica_count(void **state)
{
	(void)state;
	/* node 1 holds index 2 from term 2 (never committed); it now leads term 4 */
	static const uint64_t mine[] = {2};
	const uint64_t *logs[] = {mine, NULL, NULL};
	const size_t lens[] = {1, 0, 0};
	const uint64_t hs[] = {3, 3, 3};
	h_net_t *net = h_net_alloc(cfg_fig8);
	crafted_boot(net, logs, lens, hs, 3);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_drop_type(net, RAFT_MSG_APP);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	term_filter_t tf = {.term = h_term(net, 1), .a = 2, .b = 3};
	h_heal(net);
	h_set_filter(net, filter_term_entries, &tf);
	h_tick_stabilize(net, 3);
	/* index 2 is on every node, yet must not commit */
	for (uint64_t id = 2; id <= 3; id++)
		assert_int_equal(h_log_term(net, id, 2), 2);
	assert_int_equal(h_status(net, 1).commit, 1);
	assert_int_equal(h_applied_count(net, 1, "e2/t2"), 0);
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_status(net, 1).commit, 3);
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(h_applied_count(net, id, "e2/t2"), 1);
	h_net_free(net);
}

static void test_new_leader_commits_previous_entries_with_its_noop(void **state)
{
	(void)state;
	static const uint64_t all[] = {2, 2};
	const uint64_t *logs[] = {all, all, all};
	const size_t lens[] = {2, 2, 2};
	const uint64_t hs[] = {2, 2, 2};
	h_net_t *net = h_net_alloc(cfg_plain);
	crafted_boot(net, logs, lens, hs, 3);
	h_elect(net, 2);
	for (uint64_t id = 1; id <= 3; id++) {
		assert_int_equal(h_status(net, id).commit, 4);
		assert_int_equal(h_applied_count(net, id, "e2/t2"), 1);
		assert_int_equal(h_applied_count(net, id, "e3/t2"), 1);
	}
	h_net_free(net);
}

static void test_commit_requires_majority(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, NULL);
	h_elect(net, 1);
	uint64_t c0 = h_status(net, 1).commit;
	h_cut(net, 1, 3);
	h_cut(net, 1, 4);
	h_cut(net, 1, 5);
	assert_int_equal(h_propose(net, 1, "minority"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).commit, c0);
	assert_int_equal(h_applied_count(net, 1, "minority"), 0);
	h_heal(net);
	h_cut(net, 1, 4);
	h_cut(net, 1, 5);
	h_tick_stabilize(net, 2);
	assert_int_equal(h_status(net, 1).commit, c0 + 1);
	assert_int_equal(h_applied_count(net, 1, "minority"), 1);
	h_net_free(net);
}

static void test_single_node_commits_on_its_own_persist(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "one"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(h_status(net, 1).commit, h_status(net, 1).last_index);
	assert_int_equal(h_applied_count(net, 1, "one"), 1);
	h_net_free(net);
}

static void test_follower_commit_bounded_by_last_new_entry(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	raft_entry_t *e = raft_entry_new(st.term, st.last_index + 1, RAFT_ENTRY_NORMAL, "n", 1);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, st.term);
	m.index = st.last_index;
	m.log_term = h_log_term(net, 2, st.last_index);
	m.entries = &e;
	m.n_entries = 1;
	m.commit = st.last_index + 5;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	raft_entry_free(e);
	h_drain(net, 2);
	assert_int_equal(h_status(net, 2).commit, st.last_index + 1);
	assert_int_equal(h_applied_count(net, 2, "n"), 1);
	h_net_free(net);
}

static void test_follower_does_not_commit_unverified_suffix(void **state)
{
	(void)state;
	/* node 2 has extra entries of term 2 that the leader never sent it */
	static const uint64_t lead[] = {2};
	static const uint64_t extra[] = {2, 2, 2, 2};
	const uint64_t *logs[] = {lead, extra, lead};
	const size_t lens[] = {1, 4, 1};
	const uint64_t hs[] = {3, 3, 3};
	h_net_t *net = h_net_alloc(cfg_plain);
	crafted_boot(net, logs, lens, hs, 3);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, 4);
	m.index = 2;
	m.log_term = 2;
	m.commit = 5;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_status(net, 2).commit, 2);
	assert_int_equal(h_applied_count(net, 2, "e3/t2"), 0);
	h_net_free(net);
}

static void test_heartbeat_with_lower_commit_does_not_move_commit_back(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 1, 2, st.term);
	m.commit = 1;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_status(net, 2).commit, st.commit);
	raft_msg_t a = h_msg(RAFT_MSG_APP, 1, 2, st.term);
	a.index = 1;
	a.log_term = h_log_term(net, 2, 1);
	a.commit = 1;
	assert_int_equal(raft_step(h_raft(net, 2), &a), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_status(net, 2).commit, st.commit);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	h_net_free(net);
}

static void test_heartbeat_commit_beyond_log_is_clamped(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 1, 2, st.term);
	m.commit = st.last_index + 100;
	raft_step(h_raft(net, 2), &m);
	h_drain(net, 2);
	assert_true(h_status(net, 2).commit <= h_status(net, 2).last_index);
	h_net_free(net);
}

static void test_commit_never_moves_backwards_across_leader_changes(void **state)
{
	(void)state;
	/* the harness asserts every Ready's commit >= the previous one on that node */
	h_net_t *net = h_net_new(3, 0, NULL);
	uint64_t prev[4] = {0};
	for (uint64_t round = 0; round < 6; round++) {
		uint64_t lead = 1 + round % 3;
		h_heal(net);
		h_tick_stabilize(net, 3);
		raft_campaign(h_raft(net, lead));
		h_stabilize(net);
		if (h_state(net, lead) != RAFT_LEADER)
			h_tick_stabilize(net, 30);
		uint64_t cur = h_leader(net);
		assert_int_not_equal(cur, 0);
		assert_int_equal(h_propose(net, cur, "r"), RAFT_OK);
		h_isolate(net, cur % 3 + 1); /* a follower: nothing proposed is lost */
		assert_int_equal(h_propose(net, cur, "r"), RAFT_OK);
		h_stabilize(net);
		if (round % 2)
			h_restart(net, 1 + (round + 2) % 3);
		for (uint64_t id = 1; id <= 3; id++) {
			uint64_t c = h_status(net, id).commit;
			assert_true(c >= prev[id]);
			prev[id] = c;
		}
	}
	h_heal(net);
	h_tick_stabilize(net, 30);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	for (uint64_t id = 1; id <= 3; id++) {
		assert_true(h_logs_equal(net, lead, id));
		assert_int_equal(h_applied_count(net, id, "r"), 12);
	}
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_figure8_old_term_entry_not_committed_by_counting_replicas),
		cmocka_unit_test(test_figure8_old_entry_commits_with_current_term_entry),
		cmocka_unit_test(test_leader_does_not_commit_old_term_entry_on_replica_count),
		cmocka_unit_test(test_new_leader_commits_previous_entries_with_its_noop),
		cmocka_unit_test(test_commit_requires_majority),
		cmocka_unit_test(test_single_node_commits_on_its_own_persist),
		cmocka_unit_test(test_follower_commit_bounded_by_last_new_entry),
		cmocka_unit_test(test_follower_does_not_commit_unverified_suffix),
		cmocka_unit_test(test_heartbeat_with_lower_commit_does_not_move_commit_back),
		cmocka_unit_test(test_heartbeat_commit_beyond_log_is_clamped),
		cmocka_unit_test(test_commit_never_moves_backwards_across_leader_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
