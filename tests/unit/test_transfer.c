/* tests/unit/test_transfer.c — leadership transfer (thesis §3.10): the target catches up,
 * gets MsgTimeoutNow and wins; proposals are dropped while a transfer is pending; a
 * transfer that does not finish within an election timeout is abandoned. */
#include "harness.h"

#include <string.h>

static void test_transfer_to_up_to_date_follower(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	assert_int_equal(raft_transfer_leader(h_raft(net, 1), 2), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(h_count(net, RAFT_MSG_TIMEOUT_NOW, 1, 2), 1);
	h_stabilize(net);
	assert_int_equal(h_state(net, 2), RAFT_LEADER);
	assert_int_equal(h_term(net, 2), t + 1);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.state, RAFT_FOLLOWER);
	assert_int_equal(st.lead, 2);
	assert_int_equal(st.lead_transferee, RAFT_NONE);
	h_net_free(net);
}

typedef struct tn_watch {
	size_t seen;
	uint64_t target;
} tn_watch_t;

static void hook_timeout_now_after_catch_up(h_net_t *net, h_node_t *nd, const raft_ready_t *rd,
					    void *arg)
{
	tn_watch_t *w = arg;
	for (size_t i = 0; i < rd->n_msgs; i++) {
		if ((int)rd->msgs[i]->type != RAFT_MSG_TIMEOUT_NOW)
			continue;
		raft_progress_state_t st;
		uint64_t match, next;
		assert_int_equal(raft_progress(nd->raft, w->target, &st, &match, &next), RAFT_OK);
		raft_status_t s;
		raft_status(nd->raft, &s);
		assert_int_equal(match, s.last_index);
		(void)net;
		w->seen++;
	}
}

static void test_transfer_target_catches_up_before_timeout_now(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_propose(net, 1, "lagging"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	tn_watch_t w = {.target = 3};
	h_set_ready_hook(net, hook_timeout_now_after_catch_up, &w);
	assert_int_equal(raft_transfer_leader(h_raft(net, 1), 3), RAFT_OK);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	h_tick_stabilize(net, 3);
	assert_int_equal(w.seen, 1);
	assert_int_equal(h_leader(net), 3);
	assert_int_equal(h_applied_count(net, 3, "lagging"), 5);
	h_net_free(net);
}

static void test_proposals_dropped_while_transfer_pending(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	assert_int_equal(h_propose(net, 1, "before"), RAFT_OK);
	h_stabilize(net);
	raft_transfer_leader(h_raft(net, 1), 3);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	assert_int_equal(h_propose(net, 1, "during"), RAFT_ERR_PROPOSAL_DROPPED);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 5),
			 RAFT_ERR_PROPOSAL_DROPPED);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 1, "during"), 0);
	h_net_free(net);
}

static void test_transfer_aborts_after_election_timeout(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	h_isolate(net, 3);
	raft_transfer_leader(h_raft(net, 1), 3);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	h_tick_stabilize(net, 5);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	h_tick_stabilize(net, 10);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.lead_transferee, RAFT_NONE);
	assert_int_equal(st.state, RAFT_LEADER);
	assert_int_equal(st.term, t);
	assert_int_equal(h_propose(net, 1, "after-abort"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "after-abort"), 1);
	h_net_free(net);
}

static void test_transfer_to_self_or_unknown_is_ignored(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, NULL);
	h_elect(net, 1);
	raft_transfer_leader(h_raft(net, 1), 1);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, RAFT_NONE);
	raft_transfer_leader(h_raft(net, 1), 9);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, RAFT_NONE);
	raft_transfer_leader(h_raft(net, 1), 4); /* a learner cannot lead */
	h_tick_stabilize(net, 3);
	assert_int_equal(h_leader(net), 1);
	assert_int_not_equal(h_state(net, 4), RAFT_LEADER);
	assert_int_equal(h_propose(net, 1, "still-leading"), RAFT_OK);
	h_net_free(net);
}

static void test_follower_forwards_transfer_request(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(raft_transfer_leader(h_raft(net, 2), 2), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_count(net, RAFT_MSG_TRANSFER_LEADER, 2, 1), 1);
	h_stabilize(net);
	assert_int_equal(h_leader(net), 2);
	h_net_free(net);
}

static void test_new_transfer_replaces_pending_one(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	raft_transfer_leader(h_raft(net, 1), 3);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	raft_transfer_leader(h_raft(net, 1), 2);
	h_stabilize(net);
	assert_int_equal(h_leader(net), 2);
	h_net_free(net);
}

static void test_repeated_transfer_to_same_target_keeps_it_pending(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	assert_int_equal(h_propose(net, 1, "behind"), RAFT_OK);
	h_stabilize(net);
	raft_transfer_leader(h_raft(net, 1), 3);
	h_tick_stabilize(net, 4);
	raft_transfer_leader(h_raft(net, 1), 3);
	h_stabilize(net);
	assert_int_equal(h_status(net, 1).lead_transferee, 3);
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_leader(net), 3);
	h_net_free(net);
}

static void test_transfer_on_follower_without_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	raft_transfer_leader(h_raft(net, 2), 2);
	h_stabilize(net);
	assert_int_equal(h_count_leaders(net), 0);
	h_net_free(net);
}

static void test_timeout_now_makes_follower_campaign_past_lease(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	/* a bare MsgTimeoutNow from the leader: no pre-vote, lease-holders still vote */
	raft_msg_t m = h_msg(RAFT_MSG_TIMEOUT_NOW, 1, 3, t);
	assert_int_equal(raft_step(h_raft(net, 3), &m), RAFT_OK);
	h_drain(net, 3);
	assert_int_equal(h_state(net, 3), RAFT_CANDIDATE);
	assert_int_equal(h_count(net, RAFT_MSG_PRE_VOTE, 3, H_ANY), 0);
	h_stabilize(net);
	assert_int_equal(h_leader(net), 3);
	assert_int_equal(h_term(net, 3), t + 1);
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transfer_to_up_to_date_follower),
		cmocka_unit_test(test_transfer_target_catches_up_before_timeout_now),
		cmocka_unit_test(test_proposals_dropped_while_transfer_pending),
		cmocka_unit_test(test_transfer_aborts_after_election_timeout),
		cmocka_unit_test(test_transfer_to_self_or_unknown_is_ignored),
		cmocka_unit_test(test_follower_forwards_transfer_request),
		cmocka_unit_test(test_new_transfer_replaces_pending_one),
		cmocka_unit_test(test_repeated_transfer_to_same_target_keeps_it_pending),
		cmocka_unit_test(test_transfer_on_follower_without_leader),
		cmocka_unit_test(test_timeout_now_makes_follower_campaign_past_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
