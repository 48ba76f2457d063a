/* tests/unit/test_read_index.c — linearizable reads (thesis §6.4): ReadIndex confirmed by a
 * heartbeat quorum, only once the leader committed an entry of its term; the lease-based
 * variant; read requests on followers forwarded to the leader and answered locally. */
#include "harness.h"

#include <string.h>

static void cfg_lease(raft_config_t *cfg)
{
	cfg->read_only_option = RAFT_READ_LEASE;
	cfg->check_quorum = true;
}

static size_t n_reads(h_net_t *net, uint64_t id)
{
	return h_node(net, id)->n_reads;
}

static const h_read_t *read_at(h_net_t *net, uint64_t id, size_t i)
{
	assert_true(i < h_node(net, id)->n_reads);
	return &h_node(net, id)->reads[i];
}

static void test_read_index_needs_heartbeat_quorum(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t commit = h_status(net, 1).commit;
	h_cut(net, 1, 3); /* 1 and 2 are still a quorum */
	assert_int_equal(h_read_index(net, 1, "r1"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(n_reads(net, 1), 0);
	raft_msg_t *hb[4];
	assert_int_equal(h_take(net, RAFT_MSG_HEARTBEAT, 1, 2, hb, 4), 1);
	assert_int_equal(hb[0]->context.len, 2);
	assert_memory_equal(hb[0]->context.data, "r1", 2);
	h_send(net, hb[0]);
	h_deliver(net); /* heartbeats out */
	assert_int_equal(n_reads(net, 1), 0);
	h_deliver(net); /* acknowledgement back */
	h_drain(net, 1);
	assert_int_equal(n_reads(net, 1), 1);
	assert_string_equal(read_at(net, 1, 0)->ctx, "r1");
	assert_int_equal(read_at(net, 1, 0)->index, commit);
	h_net_free(net);
}

static void test_read_index_not_served_without_quorum(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 1);
	assert_int_equal(h_read_index(net, 1, "lonely"), RAFT_OK);
	h_stabilize(net);
	h_tick(net, 1, 3);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 1), 0);
	h_heal(net);
	h_tick_stabilize(net, 1);
	assert_int_equal(n_reads(net, 1), 1);
	assert_string_equal(read_at(net, 1, 0)->ctx, "lonely");
	h_net_free(net);
}

static void test_read_index_waits_for_commit_in_leader_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	uint64_t noop = h_status(net, 1).last_index;
	assert_true(h_status(net, 1).commit < noop);
	assert_int_equal(h_read_index(net, 1, "early"), RAFT_OK);
	h_tick_stabilize(net, 2);
	assert_int_equal(n_reads(net, 1), 0);
	h_heal(net);
	h_tick_stabilize(net, 2);
	assert_int_equal(n_reads(net, 1), 1);
	assert_string_equal(read_at(net, 1, 0)->ctx, "early");
	assert_true(read_at(net, 1, 0)->index >= noop);
	h_net_free(net);
}

static void test_read_index_reflects_latest_commit(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_propose(net, 1, "w"), RAFT_OK);
	h_stabilize(net);
	uint64_t commit = h_status(net, 1).commit;
	assert_int_equal(h_read_index(net, 1, "after-writes"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 1), 1);
	assert_int_equal(read_at(net, 1, 0)->index, commit);
	assert_true(h_node(net, 1)->applied >= read_at(net, 1, 0)->index);
	h_net_free(net);
}

static void test_multiple_reads_answered_in_order(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_read_index(net, 1, "a"), RAFT_OK);
	assert_int_equal(h_propose(net, 1, "w"), RAFT_OK);
	assert_int_equal(h_read_index(net, 1, "b"), RAFT_OK);
	assert_int_equal(h_read_index(net, 1, "c"), RAFT_OK);
	h_stabilize(net);
	h_tick_stabilize(net, 1);
	assert_int_equal(n_reads(net, 1), 3);
	assert_string_equal(read_at(net, 1, 0)->ctx, "a");
	assert_string_equal(read_at(net, 1, 1)->ctx, "b");
	assert_string_equal(read_at(net, 1, 2)->ctx, "c");
	assert_true(read_at(net, 1, 0)->index <= read_at(net, 1, 1)->index);
	assert_true(read_at(net, 1, 1)->index <= read_at(net, 1, 2)->index);
	h_net_free(net);
}

/* With lease reads a fresh node ignores votes for its first election timeout (it may not
 * know of a leader whose lease is still running), so lease nets elect by ticking. */
static uint64_t lease_net_leader(h_net_t *net)
{
	for (int i = 0; i < 60 && h_count_leaders(net) == 0; i++)
		h_tick_stabilize(net, 1);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	return lead;
}

static void test_lease_read_answers_without_heartbeat_round(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_lease);
	uint64_t lead = lease_net_leader(net);
	h_tick_stabilize(net, 2); /* a quorum acknowledged a heartbeat of this leader */
	uint64_t commit = h_status(net, lead).commit;
	h_reset_sent(net);
	assert_int_equal(h_read_index(net, lead, "lease"), RAFT_OK);
	h_drain(net, lead);
	assert_int_equal(n_reads(net, lead), 1);
	assert_string_equal(read_at(net, lead, 0)->ctx, "lease");
	assert_int_equal(read_at(net, lead, 0)->index, commit);
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, lead, H_ANY), 0);
	h_net_free(net);
}

static void test_lease_read_falls_back_to_heartbeats_when_lease_expired(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_lease);
	uint64_t lead = lease_net_leader(net);
	h_tick_stabilize(net, 2);
	h_isolate(net, lead);
	h_tick(net, lead, 9); /* the quorum's last acknowledgement is getting old */
	h_stabilize(net);
	assert_int_equal(h_read_index(net, lead, "expired"), RAFT_OK);
	h_drain(net, lead);
	assert_int_equal(n_reads(net, lead), 0);
	h_net_free(net);
}

static void test_lease_read_refused_without_check_quorum(void **state)
{
	(void)state;
	raft_memstorage_t *ms = raft_memstorage_new();
	raft_config_t cfg;
	uint64_t peers[] = {1, 2, 3};
	raft_config_default(&cfg, 1, raft_memstorage_storage(ms));
	cfg.peers = peers;
	cfg.n_peers = 3;
	cfg.read_only_option = RAFT_READ_LEASE;
	cfg.check_quorum = false;
	raft_node_t *n = NULL;
	assert_int_equal(raft_node_new(&cfg, &n), RAFT_ERR_INVALID_CONFIG);
	assert_null(n);
	cfg.check_quorum = true;
	assert_int_equal(raft_node_new(&cfg, &n), RAFT_OK);
	raft_node_free(n);
	raft_memstorage_free(ms);
}

static void test_follower_read_index_is_forwarded_and_answered_locally(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "w"), RAFT_OK);
	h_stabilize(net);
	uint64_t commit = h_status(net, 1).commit;
	assert_int_equal(h_read_index(net, 2, "from-2"), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_count(net, RAFT_MSG_READ_INDEX, 2, 1), 1);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 2), 1);
	assert_string_equal(read_at(net, 2, 0)->ctx, "from-2");
	assert_int_equal(read_at(net, 2, 0)->index, commit);
	assert_int_equal(n_reads(net, 1), 0);
	assert_true(h_sent(net, RAFT_MSG_READ_INDEX_RESP, 1, 2) >= 1);
	h_net_free(net);
}

static void test_follower_lease_read_is_forwarded(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_lease);
	uint64_t lead = lease_net_leader(net);
	uint64_t follower = lead % 3 + 1;
	h_tick_stabilize(net, 2);
	h_reset_sent(net);
	assert_int_equal(h_read_index(net, follower, "lease-f"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(n_reads(net, follower), 1);
	assert_string_equal(read_at(net, follower, 0)->ctx, "lease-f");
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, lead, H_ANY), 0);
	h_net_free(net);
}

static void test_lease_node_ignores_votes_right_after_start(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_lease);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	assert_int_not_equal(h_state(net, 1), RAFT_LEADER);
	assert_int_equal(h_term(net, 2), h_term(net, 3));
	h_net_free(net);
}

static void test_read_index_without_leader_fails(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	assert_int_equal(h_read_index(net, 1, "nobody"), RAFT_ERR_NO_LEADER);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 1), 0);
	h_net_free(net);
}

static void test_single_node_read_index_is_immediate(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_read_index(net, 1, "solo"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(n_reads(net, 1), 1);
	assert_int_equal(read_at(net, 1, 0)->index, h_status(net, 1).commit);
	h_net_free(net);
}

static void test_learner_read_index_is_forwarded(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 1, NULL);
	h_elect(net, 1);
	assert_int_equal(h_read_index(net, 4, "learner"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 4), 1);
	assert_string_equal(read_at(net, 4, 0)->ctx, "learner");
	h_net_free(net);
}

static void test_heartbeat_response_with_stale_context_is_harmless(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT_RESP, 2, 1, h_term(net, 1));
	m.context.data = (uint8_t *)"never-asked";
	m.context.len = 11;
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 1), 0);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

static void test_held_read_dropped_when_new_leader_steps_down(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_read_index(net, 1, "held"), RAFT_OK); /* no commit in term yet */
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 2, 1, h_term(net, 1) + 1);
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_OK);
	assert_int_equal(h_state(net, 1), RAFT_FOLLOWER);
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(n_reads(net, 1), 0);
	h_net_free(net);
}

static void test_in_flight_read_dropped_when_leader_steps_down(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 1);
	assert_int_equal(h_read_index(net, 1, "in-flight"), RAFT_OK);
	h_stabilize(net);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 2, 1, h_term(net, 1) + 1);
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_OK);
	assert_int_equal(h_state(net, 1), RAFT_FOLLOWER);
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(n_reads(net, 1), 0);
	h_net_free(net);
}

static void test_node_freed_with_unread_read_states(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_read_index(net, 1, "never-drained"), RAFT_OK);
	assert_int_equal(h_propose(net, 1, "never-drained"), RAFT_OK);
	h_net_free(net); /* must not leak (run under ASan) */
}

static void test_learner_acks_do_not_confirm_read(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, NULL);
	h_elect(net, 1);
	h_cut(net, 1, 2);
	assert_int_equal(h_read_index(net, 1, "voters-only"), RAFT_OK);
	h_stabilize(net);
	h_tick(net, 1, 1);
	h_stabilize(net);
	assert_int_equal(n_reads(net, 1), 0);
	h_heal(net);
	h_tick_stabilize(net, 1);
	assert_int_equal(n_reads(net, 1), 1);
	h_net_free(net);
}

static void test_lease_read_ignores_learner_acks(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, cfg_lease);
	uint64_t lead = lease_net_leader(net);
	uint64_t other = lead == 1 ? 2 : 1;
	h_cut(net, lead, other);
	h_tick_stabilize(net, 9); /* only learners acknowledge heartbeats now */
	if (h_state(net, lead) == RAFT_LEADER) {
		assert_int_equal(h_read_index(net, lead, "lease-learners"), RAFT_OK);
		h_drain(net, lead);
		assert_int_equal(n_reads(net, lead), 0);
	}
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_index_needs_heartbeat_quorum),
		cmocka_unit_test(test_read_index_not_served_without_quorum),
		cmocka_unit_test(test_read_index_waits_for_commit_in_leader_term),
		cmocka_unit_test(test_read_index_reflects_latest_commit),
		cmocka_unit_test(test_multiple_reads_answered_in_order),
		cmocka_unit_test(test_lease_read_answers_without_heartbeat_round),
		cmocka_unit_test(test_lease_read_falls_back_to_heartbeats_when_lease_expired),
		cmocka_unit_test(test_lease_read_refused_without_check_quorum),
		cmocka_unit_test(test_lease_node_ignores_votes_right_after_start),
		cmocka_unit_test(test_follower_read_index_is_forwarded_and_answered_locally),
		cmocka_unit_test(test_follower_lease_read_is_forwarded),
		cmocka_unit_test(test_read_index_without_leader_fails),
		cmocka_unit_test(test_single_node_read_index_is_immediate),
		cmocka_unit_test(test_learner_read_index_is_forwarded),
		cmocka_unit_test(test_heartbeat_response_with_stale_context_is_harmless),
		cmocka_unit_test(test_held_read_dropped_when_new_leader_steps_down),
		cmocka_unit_test(test_in_flight_read_dropped_when_leader_steps_down),
		cmocka_unit_test(test_node_freed_with_unread_read_states),
		cmocka_unit_test(test_learner_acks_do_not_confirm_read),
		cmocka_unit_test(test_lease_read_ignores_learner_acks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
