/* tests/unit/test_conf.c — membership as plain data: raft_conf_apply for each change type,
 * refusal of changes that make no sense, and conversion to and from a ConfState. */
#include "harness.h"

#include <string.h>

static raft_conf_change_t cc_make(int type, uint64_t id)
{
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)type;
	cc.node_id = id;
	return cc;
}

static int conf_apply(raft_conf_t *c, int type, uint64_t id)
{
	raft_conf_change_t cc = cc_make(type, id);
	return raft_conf_apply(c, &cc);
}

static void test_conf_add_voter_to_empty(void **state)
{
	(void)state;
	raft_conf_t c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, 1), RAFT_OK);
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, 2), RAFT_OK);
	assert_int_equal(c.n_voters, 2);
	assert_int_equal(c.n_learners, 0);
	assert_true(raft_conf_is_voter(&c, 1));
	assert_true(raft_conf_is_voter(&c, 2));
	assert_false(raft_conf_is_voter(&c, 3));
	assert_false(raft_conf_is_learner(&c, 1));
}

static void test_conf_add_existing_voter_is_invalid(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 2, .voters = {1, 2}};
	raft_conf_t before = c;
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, 2), RAFT_ERR_INVALID_CONF_CHANGE);
	assert_memory_equal(&c, &before, sizeof(c));
}

static void test_conf_remove_unknown_is_invalid(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 2, .voters = {1, 2}};
	raft_conf_t before = c;
	assert_int_equal(conf_apply(&c, RAFT_CONF_REMOVE_NODE, 9), RAFT_ERR_INVALID_CONF_CHANGE);
	assert_memory_equal(&c, &before, sizeof(c));
}

static void test_conf_node_id_zero_is_invalid(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 1, .voters = {1}};
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, RAFT_NONE),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_LEARNER, RAFT_NONE),
			 RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(c.n_voters, 1);
	assert_int_equal(c.n_learners, 0);
}

static void test_conf_remove_voter_and_learner(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 3, .voters = {1, 2, 3}, .n_learners = 1, .learners = {4}};
	assert_int_equal(conf_apply(&c, RAFT_CONF_REMOVE_NODE, 2), RAFT_OK);
	assert_int_equal(c.n_voters, 2);
	assert_false(raft_conf_is_voter(&c, 2));
	assert_true(raft_conf_is_voter(&c, 1));
	assert_true(raft_conf_is_voter(&c, 3));
	assert_int_equal(conf_apply(&c, RAFT_CONF_REMOVE_NODE, 4), RAFT_OK);
	assert_int_equal(c.n_learners, 0);
	assert_false(raft_conf_is_learner(&c, 4));
	assert_int_equal(conf_apply(&c, RAFT_CONF_REMOVE_NODE, 4), RAFT_ERR_INVALID_CONF_CHANGE);
}

static void test_conf_add_learner_then_promote(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 1, .voters = {1}};
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_LEARNER, 5), RAFT_OK);
	assert_true(raft_conf_is_learner(&c, 5));
	assert_false(raft_conf_is_voter(&c, 5));
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_LEARNER, 5), RAFT_ERR_INVALID_CONF_CHANGE);
	assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, 5), RAFT_OK);
	assert_true(raft_conf_is_voter(&c, 5));
	assert_false(raft_conf_is_learner(&c, 5));
	assert_int_equal(c.n_voters, 2);
	assert_int_equal(c.n_learners, 0);
}

static void test_conf_full_config_refuses_more(void **state)
{
	(void)state;
	raft_conf_t c;
	memset(&c, 0, sizeof(c));
	for (uint64_t id = 1; id <= RAFT_MAX_NODES; id++)
		assert_int_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, id), RAFT_OK);
	raft_conf_t before = c;
	assert_int_not_equal(conf_apply(&c, RAFT_CONF_ADD_NODE, RAFT_MAX_NODES + 1), RAFT_OK);
	assert_memory_equal(&c, &before, sizeof(c));
}

static void test_conf_state_round_trip(void **state)
{
	(void)state;
	raft_conf_t c = {.n_voters = 3, .voters = {3, 1, 2}, .n_learners = 2,
			 .learners = {7, 9}};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	raft_conf_t back;
	assert_int_equal(raft_conf_to_state(&c, &cs), RAFT_OK);
	assert_int_equal(cs.n_voters, 3);
	assert_int_equal(cs.n_learners, 2);
	assert_int_equal(raft_conf_from_state(&back, &cs), RAFT_OK);
	assert_int_equal(back.n_voters, 3);
	assert_int_equal(back.n_learners, 2);
	for (uint64_t id = 1; id <= 3; id++)
		assert_true(raft_conf_is_voter(&back, id));
	assert_true(raft_conf_is_learner(&back, 7));
	assert_true(raft_conf_is_learner(&back, 9));
	assert_false(raft_conf_is_voter(&back, 7));
	raft_conf_state_clear(&cs);
}

static void test_conf_state_empty_round_trip(void **state)
{
	(void)state;
	raft_conf_t c, back;
	memset(&c, 0, sizeof(c));
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	assert_int_equal(raft_conf_to_state(&c, &cs), RAFT_OK);
	assert_int_equal(cs.n_voters, 0);
	assert_int_equal(raft_conf_from_state(&back, &cs), RAFT_OK);
	assert_int_equal(back.n_voters, 0);
	assert_int_equal(back.n_learners, 0);
	raft_conf_state_clear(&cs);
}

static void test_conf_from_state_refuses_oversized(void **state)
{
	(void)state;
	uint64_t ids[RAFT_MAX_NODES + 1];
	for (size_t i = 0; i <= RAFT_MAX_NODES; i++)
		ids[i] = i + 1;
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	cs.voters = ids;
	cs.n_voters = RAFT_MAX_NODES + 1;
	raft_conf_t c;
	assert_int_not_equal(raft_conf_from_state(&c, &cs), RAFT_OK);
}

static void test_conf_from_state_refuses_duplicates_and_zero(void **state)
{
	(void)state;
	raft_conf_t c;
	uint64_t dup[] = {1, 2, 1};
	uint64_t zero[] = {1, 0};
	uint64_t voters[] = {1, 2};
	uint64_t both[] = {2};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	cs.voters = dup;
	cs.n_voters = 3;
	assert_int_equal(raft_conf_from_state(&c, &cs), RAFT_ERR_INVALID_CONF_CHANGE);
	cs.voters = zero;
	cs.n_voters = 2;
	assert_int_equal(raft_conf_from_state(&c, &cs), RAFT_ERR_INVALID_CONF_CHANGE);
	cs.voters = voters;
	cs.learners = both; /* a voter cannot also be a learner */
	cs.n_learners = 1;
	assert_int_equal(raft_conf_from_state(&c, &cs), RAFT_ERR_INVALID_CONF_CHANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_add_voter_to_empty),
		cmocka_unit_test(test_conf_add_existing_voter_is_invalid),
		cmocka_unit_test(test_conf_remove_unknown_is_invalid),
		cmocka_unit_test(test_conf_node_id_zero_is_invalid),
		cmocka_unit_test(test_conf_remove_voter_and_learner),
		cmocka_unit_test(test_conf_add_learner_then_promote),
		cmocka_unit_test(test_conf_full_config_refuses_more),
		cmocka_unit_test(test_conf_state_round_trip),
		cmocka_unit_test(test_conf_state_empty_round_trip),
		cmocka_unit_test(test_conf_from_state_refuses_oversized),
		cmocka_unit_test(test_conf_from_state_refuses_duplicates_and_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
