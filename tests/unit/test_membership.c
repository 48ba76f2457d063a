/* tests/unit/test_membership.c — single-server membership changes (thesis §4.1): a change
 * takes effect when appended, one at a time, learners (replicate, never vote or count),
 * promotion, removal of followers and of the leader itself. */
#include "harness.h"

#include <string.h>

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

/* Whether node `at` currently sees `id` as a voter / learner. */
static bool h_is_voter(h_net_t *net, uint64_t at, uint64_t id)
{
	raft_status_t st = h_status(net, at);
	return raft_conf_is_voter(&st.conf, id);
}

static bool h_is_learner(h_net_t *net, uint64_t at, uint64_t id)
{
	raft_status_t st = h_status(net, at);
	return raft_conf_is_learner(&st.conf, id);
}

static int prog_err(h_net_t *net, uint64_t lead, uint64_t id)
{
	raft_progress_state_t st;
	uint64_t m, n;
	return raft_progress(h_raft(net, lead), id, &st, &m, &n);
}

static void assert_voters(h_net_t *net, uint64_t id, const uint64_t *voters, size_t n)
{
	raft_status_t st = h_status(net, id);
	assert_int_equal(st.conf.n_voters, n);
	for (size_t i = 0; i < n; i++)
		assert_true(raft_conf_is_voter(&st.conf, voters[i]));
}

static void test_add_voter_catches_up_and_counts_for_quorum(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "before"), RAFT_OK);
	h_stabilize(net);
	h_node_join(net, 4);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
	h_tick_stabilize(net, 3);
	static const uint64_t four[] = {1, 2, 3, 4};
	for (uint64_t id = 1; id <= 4; id++)
		assert_voters(net, id, four, 4);
	assert_true(h_logs_equal(net, 1, 4));
	assert_int_equal(h_applied_count(net, 4, "before"), 1);
	assert_int_equal(prog_err(net, 1, 4), RAFT_OK);

	/* four voters: 1 and 2 alone are not a majority */
	uint64_t c = h_status(net, 1).commit;
	h_cut(net, 1, 3);
	h_cut(net, 1, 4);
	assert_int_equal(h_propose(net, 1, "needs-three"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).commit, c);
	h_heal(net);
	h_cut(net, 1, 4);
	h_tick_stabilize(net, 2);
	assert_int_equal(h_status(net, 1).commit, c + 1);
	h_net_free(net);
}

static void test_conf_change_takes_effect_when_appended(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
	h_drain(net, 1);
	uint64_t cc_index = h_status(net, 1).last_index;
	assert_true(h_is_voter(net, 1, 4));
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	assert_int_equal(st.last_index, cc_index);
	assert_true(st.commit < cc_index);
	assert_true(raft_conf_is_voter(&st.conf, 4));
	raft_conf_t applied;
	raft_applied_conf(h_raft(net, 2), &applied);
	assert_false(raft_conf_is_voter(&applied, 4));
	assert_int_equal(applied.n_voters, 3);
	h_heal(net);
	h_tick_stabilize(net, 2);
	raft_applied_conf(h_raft(net, 2), &applied);
	assert_true(raft_conf_is_voter(&applied, 4));
	h_net_free(net);
}

static void test_second_conf_change_refused_while_first_pending(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5),
			 RAFT_ERR_CONF_CHANGE_PENDING);
	assert_false(h_is_learner(net, 1, 5));
	/* normal proposals still go through */
	assert_int_equal(h_propose(net, 1, "normal"), RAFT_OK);
	h_heal(net);
	h_tick_stabilize(net, 2);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5), RAFT_OK);
	h_stabilize(net);
	assert_true(h_is_learner(net, 2, 5));
	h_net_free(net);
}

static void test_conf_change_pending_carries_over_to_new_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 4), RAFT_OK);
	h_stabilize(net);
	h_elect(net, 2);
	assert_int_equal(h_propose_cc(net, 2, RAFT_CONF_ADD_LEARNER, 5),
			 RAFT_ERR_CONF_CHANGE_PENDING);
	h_heal(net);
	h_tick_stabilize(net, 2);
	assert_int_equal(h_propose_cc(net, 2, RAFT_CONF_ADD_LEARNER, 5), RAFT_OK);
	h_stabilize(net);
	raft_status_t st = h_status(net, 3);
	assert_true(raft_conf_is_learner(&st.conf, 4));
	assert_true(raft_conf_is_learner(&st.conf, 5));
	h_net_free(net);
}

static void test_invalid_conf_changes_refused(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, NULL);
	h_elect(net, 1);
	uint64_t last = h_status(net, 1).last_index;
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 9),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 2),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 4),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, RAFT_NONE),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).last_index, last);
	/* none of them blocks a valid change */
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
	h_stabilize(net);
	assert_true(h_is_voter(net, 4, 4));
	h_net_free(net);
}

static void test_remove_follower_shrinks_quorum(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 3), RAFT_OK);
	h_stabilize(net);
	static const uint64_t two[] = {1, 2};
	assert_voters(net, 1, two, 2);
	assert_voters(net, 2, two, 2);
	assert_int_equal(prog_err(net, 1, 3), RAFT_ERR_STEP_PEER_NOT_FOUND);
	h_stop(net, 3);
	assert_int_equal(h_propose(net, 1, "two-node"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "two-node"), 1);
	/* with two voters both are needed */
	uint64_t c = h_status(net, 1).commit;
	h_cut(net, 1, 2);
	assert_int_equal(h_propose(net, 1, "alone"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).commit, c);
	h_net_free(net);
}

static void test_removed_leader_steps_down_after_removal_commits(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 1), RAFT_OK);
	h_stabilize(net);
	/* in effect at once, but the leader manages the cluster until it commits */
	assert_false(h_is_voter(net, 1, 1));
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	uint64_t cc_index = h_status(net, 1).last_index;
	h_heal(net);
	h_tick(net, 1, 1);
	h_stabilize(net);
	assert_true(h_status(net, 1).commit >= cc_index);
	assert_int_not_equal(h_state(net, 1), RAFT_LEADER);
	h_tick_stabilize(net, 40);
	uint64_t lead = h_leader(net);
	assert_true(lead == 2 || lead == 3);
	assert_true(h_status(net, 2).commit >= cc_index);
	static const uint64_t rest[] = {2, 3};
	assert_voters(net, lead, rest, 2);
	assert_int_equal(h_propose(net, lead, "without-1"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "without-1"), 1);
	assert_int_equal(h_applied_count(net, 3, "without-1"), 1);
	h_net_free(net);
}

static void test_removed_leader_commits_removal_with_new_majority(void **state)
{
	(void)state;
	/* the leader does not count itself once removed: 1 and 2 alone cannot commit */
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_cut(net, 1, 3);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 1), RAFT_OK);
	h_stabilize(net);
	uint64_t cc_index = h_status(net, 1).last_index;
	assert_true(h_status(net, 1).commit < cc_index);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_heal(net);
	h_tick(net, 1, 1);
	h_stabilize(net);
	assert_true(h_status(net, 1).commit >= cc_index);
	h_net_free(net);
}

static void test_learner_receives_log(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "for-learner"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 4, "for-learner"), 1);
	assert_true(h_logs_equal(net, 1, 4));
	raft_status_t st = h_status(net, 4);
	assert_true(raft_conf_is_learner(&st.conf, 4));
	assert_int_equal(st.conf.n_voters, 3);
	assert_int_equal(st.lead, 1);
	assert_int_equal(prog_err(net, 1, 4), RAFT_OK);
	h_net_free(net);
}

static void test_learner_does_not_count_for_quorum(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, NULL);
	h_elect(net, 1);
	uint64_t c = h_status(net, 1).commit;
	h_cut(net, 1, 2);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 3).last_index, h_status(net, 1).last_index);
	assert_int_equal(h_status(net, 1).commit, c);
	h_net_free(net);
}

static void test_learner_votes_do_not_elect(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, cfg_plain);
	h_cut(net, 1, 2);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	assert_int_not_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

static void test_learner_never_campaigns(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, NULL);
	uint64_t t = h_term(net, 4);
	h_isolate(net, 4);
	h_tick(net, 4, 100);
	raft_campaign(h_raft(net, 4));
	h_stabilize(net);
	assert_int_equal(h_state(net, 4), RAFT_FOLLOWER);
	assert_int_equal(h_term(net, 4), t);
	assert_int_equal(h_sent(net, RAFT_MSG_VOTE, 4, H_ANY), 0);
	assert_int_equal(h_sent(net, RAFT_MSG_PRE_VOTE, 4, H_ANY), 0);
	h_net_free(net);
}

static void test_promoted_learner_votes_and_can_lead(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, cfg_plain);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 4; id++) {
		raft_status_t st = h_status(net, id);
		assert_int_equal(st.conf.n_voters, 4);
		assert_int_equal(st.conf.n_learners, 0);
		assert_true(raft_conf_is_voter(&st.conf, 4));
	}
	h_elect(net, 4);
	assert_int_equal(h_propose(net, 4, "from-4"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 1, "from-4"), 1);
	h_net_free(net);
}

static void test_add_learner_to_running_cluster(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "history"), RAFT_OK);
	h_stabilize(net);
	h_node_join(net, 5);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5), RAFT_OK);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_applied_count(net, 5, "history"), 1);
	raft_status_t st = h_status(net, 5);
	assert_true(raft_conf_is_learner(&st.conf, 5));
	assert_int_equal(st.conf.n_voters, 3);
	/* the learner's join does not change the quorum */
	h_stop(net, 5);
	assert_int_equal(h_propose(net, 1, "still-3"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "still-3"), 1);
	h_net_free(net);
}

static void test_follower_forwards_conf_change_to_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 2, RAFT_CONF_ADD_LEARNER, 6), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_count(net, RAFT_MSG_PROP, 2, 1), 1);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++)
		assert_true(h_is_learner(net, id, 6));
	h_net_free(net);
}

static void test_membership_rebuilt_from_log_and_snapshot_on_restart(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 4), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 3), RAFT_OK);
	h_stabilize(net);
	h_restart(net, 2);
	raft_status_t st = h_status(net, 2);
	assert_int_equal(st.conf.n_voters, 2);
	assert_true(raft_conf_is_learner(&st.conf, 4));
	assert_false(raft_conf_is_voter(&st.conf, 3));
	h_compact(net, 2);
	h_restart(net, 2);
	st = h_status(net, 2);
	assert_int_equal(st.conf.n_voters, 2);
	assert_true(raft_conf_is_learner(&st.conf, 4));
	raft_conf_t applied;
	raft_applied_conf(h_raft(net, 2), &applied);
	assert_int_equal(applied.n_voters, 2);
	h_net_free(net);
}

static void test_conf_change_entry_is_applied_through_ready(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 7), RAFT_OK);
	h_stabilize(net);
	h_node_t *nd = h_node(net, 3);
	const raft_entry_t *last = nd->ents[nd->n_ents - 1];
	assert_int_equal(last->type, RAFT_ENTRY_CONF_CHANGE);
	raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, last->data.len,
							      last->data.data);
	assert_non_null(cc);
	assert_int_equal(cc->type, RAFT_CONF_ADD_LEARNER);
	assert_int_equal(cc->node_id, 7);
	raftpb__conf_change__free_unpacked(cc, NULL);
	h_net_free(net);
}

/* etcd's member update travels as a conf change: committed and applied like the others,
 * one at a time, but the configuration stays as it was; an update of a non-member is
 * refused like any change that makes no sense. */
static void test_update_node_is_ordered_but_changes_no_configuration(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t before = h_status(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_UPDATE_NODE, 9),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_UPDATE_NODE, 2), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5),
			 RAFT_ERR_CONF_CHANGE_PENDING);
	h_heal(net);
	h_tick_stabilize(net, 2);
	for (uint64_t id = 1; id <= 3; id++) {
		raft_status_t st = h_status(net, id);
		assert_int_equal(st.commit, before.last_index + 1);
		assert_int_equal(st.conf.n_voters, 3);
		assert_int_equal(st.conf.n_learners, 0);
		h_node_t *nd = h_node(net, id);
		const raft_entry_t *last = nd->ents[nd->n_ents - 1];
		assert_int_equal(last->type, RAFT_ENTRY_CONF_CHANGE);
		raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, last->data.len,
								      last->data.data);
		assert_non_null(cc);
		assert_int_equal((int)cc->type, RAFT_CONF_UPDATE_NODE);
		raftpb__conf_change__free_unpacked(cc, NULL);
	}
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5), RAFT_OK);
	h_net_free(net);
}

static void test_overwritten_conf_change_is_reverted(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, cfg_plain);
	h_elect(net, 1);
	h_cut(net, 1, 3);
	h_cut(net, 1, 4);
	h_cut(net, 1, 5);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 6), RAFT_OK);
	h_stabilize(net);
	assert_true(h_is_learner(net, 2, 6)); /* in effect on append, not committed */
	h_stop(net, 1);
	h_heal(net);
	h_elect(net, 3); /* 2 refuses, 4 and 5 elect 3 */
	h_stabilize(net);
	assert_true(h_logs_equal(net, 3, 2));
	assert_false(h_is_learner(net, 2, 6));
	assert_int_equal(h_status(net, 2).conf.n_voters, 5);
	h_start(net, 1);
	assert_true(h_is_learner(net, 1, 6)); /* its own log still has the change */
	h_tick_stabilize(net, 3);
	assert_true(h_logs_equal(net, 3, 1));
	assert_false(h_is_learner(net, 1, 6));
	assert_int_equal(h_propose_cc(net, 3, RAFT_CONF_ADD_LEARNER, 7), RAFT_OK);
	h_stabilize(net);
	assert_true(h_is_learner(net, 1, 7));
	h_net_free(net);
}

static void test_removed_node_does_not_disrupt_cluster(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 3), RAFT_OK);
	h_stabilize(net);
	uint64_t t = h_term(net, 1);
	/* 3 may never learn it was removed: it times out and asks for votes */
	h_tick_stabilize(net, 80);
	assert_int_equal(h_leader(net), 1);
	assert_int_equal(h_term(net, 1), t);
	assert_int_equal(h_propose(net, 1, "undisturbed"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "undisturbed"), 1);
	h_net_free(net);
}

static void test_grow_from_one_node_to_three(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "alone"), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 2; id <= 3; id++) {
		h_node_join(net, id);
		assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, id), RAFT_OK);
		h_tick_stabilize(net, 3);
		assert_true(h_is_voter(net, id, id));
		assert_int_equal(h_applied_count(net, id, "alone"), 1);
	}
	/* three voters now: losing one keeps a quorum, losing two does not */
	h_stop(net, 3);
	assert_int_equal(h_propose(net, 1, "two-of-three"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "two-of-three"), 1);
	uint64_t c = h_status(net, 1).commit;
	h_stop(net, 2);
	assert_int_equal(h_propose(net, 1, "one-of-three"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).commit, c);
	h_net_free(net);
}

static void test_shrink_to_single_node_commits_alone(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 0, NULL);
	h_elect(net, 1);
	h_cut(net, 1, 2);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 2), RAFT_OK);
	h_stabilize(net);
	/* in effect on append: the leader alone is the quorum of {1} */
	assert_int_equal(h_status(net, 1).commit, h_status(net, 1).last_index);
	assert_int_equal(h_propose(net, 1, "solo"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 1, "solo"), 1);
	h_net_free(net);
}

static void test_check_quorum_ignores_learner_acks(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, NULL);
	h_elect(net, 1);
	h_cut(net, 1, 2);
	h_tick_stabilize(net, 25);
	assert_int_not_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

static void test_removing_last_voter_refused(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 1, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 1),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	assert_int_equal(h_propose(net, 1, "still-here"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "still-here"), 1);
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_voter_catches_up_and_counts_for_quorum),
		cmocka_unit_test(test_conf_change_takes_effect_when_appended),
		cmocka_unit_test(test_second_conf_change_refused_while_first_pending),
		cmocka_unit_test(test_conf_change_pending_carries_over_to_new_leader),
		cmocka_unit_test(test_invalid_conf_changes_refused),
		cmocka_unit_test(test_remove_follower_shrinks_quorum),
		cmocka_unit_test(test_removed_leader_steps_down_after_removal_commits),
		cmocka_unit_test(test_removed_leader_commits_removal_with_new_majority),
		cmocka_unit_test(test_learner_receives_log),
		cmocka_unit_test(test_learner_does_not_count_for_quorum),
		cmocka_unit_test(test_learner_votes_do_not_elect),
		cmocka_unit_test(test_learner_never_campaigns),
		cmocka_unit_test(test_promoted_learner_votes_and_can_lead),
		cmocka_unit_test(test_add_learner_to_running_cluster),
		cmocka_unit_test(test_follower_forwards_conf_change_to_leader),
		cmocka_unit_test(test_membership_rebuilt_from_log_and_snapshot_on_restart),
		cmocka_unit_test(test_conf_change_entry_is_applied_through_ready),
		cmocka_unit_test(test_overwritten_conf_change_is_reverted),
		cmocka_unit_test(test_update_node_is_ordered_but_changes_no_configuration),
		cmocka_unit_test(test_removed_node_does_not_disrupt_cluster),
		cmocka_unit_test(test_grow_from_one_node_to_three),
		cmocka_unit_test(test_shrink_to_single_node_commits_alone),
		cmocka_unit_test(test_check_quorum_ignores_learner_acks),
		cmocka_unit_test(test_removing_last_voter_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
