/* tests/sim/test_check.c — the simulator's own checks, tested by hand-fed histories: each
 * invariant must fire on a violation and stay quiet on a legal history; the network and
 * the state machine encoding behave as the simulator relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "net.h"
#include "sm.h"

static void test_two_leaders_in_one_term_are_caught(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	assert_true(sim_check_leader(&chk, 3, 1));
	assert_true(sim_check_leader(&chk, 3, 1));
	assert_true(sim_check_leader(&chk, 4, 2));
	assert_false(sim_check_leader(&chk, 3, 2));
	assert_string_equal(chk.invariant, "election safety");
	sim_check_free(&chk);
}

static void test_same_index_and_term_with_other_content_is_caught(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	assert_true(sim_check_log_entry(&chk, 1, 5, 2, 0xaa, 1));
	assert_true(sim_check_log_entry(&chk, 2, 5, 3, 0xbb, 1)); /* other term: legal */
	assert_false(sim_check_log_entry(&chk, 3, 5, 2, 0xcc, 1));
	assert_string_equal(chk.invariant, "log matching");
	sim_check_free(&chk);
}

static void test_same_entry_after_different_predecessors_is_caught(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	assert_true(sim_check_log_entry(&chk, 1, 7, 4, 0xaa, 3));
	assert_true(sim_check_log_entry(&chk, 2, 7, 4, 0xaa, SIM_UNKNOWN));
	assert_false(sim_check_log_entry(&chk, 3, 7, 4, 0xaa, 2));
	assert_string_equal(chk.invariant, "log matching");
	sim_check_free(&chk);
}

static void test_log_table_grows_and_keeps_entries(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	for (uint64_t i = 1; i <= 5000; i++)
		assert_true(sim_check_log_entry(&chk, 1, i, i / 100 + 1, i * 7, SIM_UNKNOWN));
	for (uint64_t i = 1; i <= 5000; i++)
		assert_true(sim_check_log_entry(&chk, 2, i, i / 100 + 1, i * 7, SIM_UNKNOWN));
	assert_false(sim_check_log_entry(&chk, 2, 4321, 4321 / 100 + 1, 1, SIM_UNKNOWN));
	sim_check_free(&chk);
}

static void test_applying_a_different_committed_entry_is_caught(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	assert_true(sim_check_committed(&chk, 1, 10, 3, 0x11));
	assert_true(sim_check_applied(&chk, 2, 10, 3, 0x11, 0x99));
	assert_false(sim_check_applied(&chk, 3, 10, 4, 0x22, 0x98));
	assert_string_equal(chk.invariant, "state machine safety");
	sim_check_free(&chk);
}

static void test_diverging_state_is_caught(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	assert_true(sim_check_applied(&chk, 1, 10, 3, 0x11, 0x99));
	assert_false(sim_check_snapshot(&chk, 2, 10, 3, 0x98));
	sim_check_free(&chk);
}

static void test_commit_bound_only_counts_earlier_terms(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	sim_check_commit_seen(&chk, 2, 10);
	sim_check_commit_seen(&chk, 3, 15);
	sim_check_commit_seen(&chk, 3, 12); /* lower: ignored */
	sim_check_commit_seen(&chk, 5, 30);
	assert_int_equal(sim_check_commit_bound(&chk, 2), 0);
	assert_int_equal(sim_check_commit_bound(&chk, 3), 10);
	assert_int_equal(sim_check_commit_bound(&chk, 5), 15);
	assert_int_equal(sim_check_commit_bound(&chk, 6), 30);
	sim_check_free(&chk);
}

static void test_only_the_first_failure_is_kept(void **state)
{
	(void)state;
	sim_check_t chk;
	sim_check_init(&chk);
	sim_check_fail(&chk, "first", "one");
	sim_check_fail(&chk, "second", "two");
	assert_string_equal(chk.invariant, "first");
	assert_string_equal(chk.detail, "one");
	sim_check_free(&chk);
}

static void test_state_machine_snapshot_round_trips(void **state)
{
	(void)state;
	sim_sm_t a, b;
	sim_sm_init(&a);
	sim_sm_init(&b);
	uint8_t buf[64];
	for (uint64_t i = 1; i <= 100; i++) {
		size_t len = sim_write_encode(buf, sizeof(buf), i * 3, 1, i % 20);
		raft_entry_t *e = raft_entry_new(2, i, RAFT_ENTRY_NORMAL, buf, len);
		sim_sm_apply(&a, e);
		raft_entry_free(e);
	}
	uint8_t *data;
	size_t len;
	assert_true(sim_sm_encode(&a, &data, &len));
	assert_true(sim_sm_decode(&b, data, len));
	assert_false(sim_sm_decode(&b, data, len - 1));
	free(data);
	assert_int_equal(b.applied, 100);
	assert_int_equal(b.chain, a.chain);
	assert_true(sim_sm_has_write(&b, 300));
	assert_false(sim_sm_has_write(&b, 301));
	sim_sm_free(&a);
	sim_sm_free(&b);
}

static raft_msg_t *msg_new(uint64_t from, uint64_t to, uint64_t index)
{
	raft_msg_t *m = malloc(sizeof(*m));
	raftpb__message__init(m);
	m->type = RAFTPB__MESSAGE_TYPE__MSG_APP;
	m->from = from;
	m->to = to;
	m->index = index;
	raft_msg_t *copy = raft_msg_clone(m);
	free(m);
	return copy;
}

static void test_network_delivers_in_time_order_and_frees_the_rest(void **state)
{
	(void)state;
	sim_net_faults_t f = {.lat_min = 1, .lat_max = 10, .wire = 0.5};
	sim_net_t net;
	sim_rng_t rng;
	sim_rng_seed(&rng, 42);
	sim_net_init(&net, &f);
	for (uint64_t i = 0; i < 200; i++)
		sim_net_send(&net, &rng, 0, msg_new(1, 2, i));
	uint64_t last = 0, got = 0;
	bool lost;
	for (uint64_t now = 0; now <= 5; now++) {
		raft_msg_t *m;
		while ((m = sim_net_pop(&net, now, &lost))) {
			assert_false(lost);
			assert_true(now >= last);
			last = now;
			got++;
			raft_msg_free(m);
		}
	}
	assert_true(got > 0 && got < 200);
	assert_true(sim_net_next_time(&net) > 5);
	sim_net_free(&net); /* frees what is still in flight */
}

static void test_partitions_block_the_right_directions(void **state)
{
	(void)state;
	sim_net_faults_t f = {.lat_min = 1, .lat_max = 1};
	sim_net_t net;
	sim_net_init(&net, &f);
	assert_true(sim_net_partition(&net, 1u << 1, 1u << 2 | 1u << 3, false, 100));
	assert_true(sim_net_blocked(&net, 1, 2));
	assert_false(sim_net_blocked(&net, 2, 1));
	assert_true(sim_net_partition(&net, 1u << 4, 1u << 5, true, 50));
	assert_true(sim_net_blocked(&net, 5, 4));
	sim_partition_t p;
	assert_true(sim_net_heal_due(&net, 60, &p));
	assert_int_equal(p.until, 50);
	assert_false(sim_net_heal_due(&net, 60, &p));
	assert_false(sim_net_blocked(&net, 5, 4));
	sim_net_heal_all(&net);
	assert_false(sim_net_blocked(&net, 1, 2));
	sim_net_free(&net);
}

static void test_wire_round_trip_preserves_a_message(void **state)
{
	(void)state;
	raft_msg_t *m = msg_new(3, 4, 77);
	m->commit = 9;
	raft_msg_t *w = sim_net_wire(m);
	assert_non_null(w);
	assert_int_equal(w->from, 3);
	assert_int_equal(w->to, 4);
	assert_int_equal(w->index, 77);
	assert_int_equal(w->commit, 9);
	raft_msg_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_leaders_in_one_term_are_caught),
		cmocka_unit_test(test_same_index_and_term_with_other_content_is_caught),
		cmocka_unit_test(test_same_entry_after_different_predecessors_is_caught),
		cmocka_unit_test(test_log_table_grows_and_keeps_entries),
		cmocka_unit_test(test_applying_a_different_committed_entry_is_caught),
		cmocka_unit_test(test_diverging_state_is_caught),
		cmocka_unit_test(test_commit_bound_only_counts_earlier_terms),
		cmocka_unit_test(test_only_the_first_failure_is_kept),
		cmocka_unit_test(test_state_machine_snapshot_round_trips),
		cmocka_unit_test(test_network_delivers_in_time_order_and_frees_the_rest),
		cmocka_unit_test(test_partitions_block_the_right_directions),
		cmocka_unit_test(test_wire_round_trip_preserves_a_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
