/* tests/unit/test_msg.c — ownership helpers of the protobuf-c types (new/clone/free of
 * entries, messages and snapshots), a pack/unpack round trip, and the name tables. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static raft_snapshot_t *msg_snapshot_new(uint64_t index, uint64_t term)
{
	uint64_t voters[] = {1, 2, 3};
	uint64_t learners[] = {4};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = voters;
	cs.n_voters = 3;
	cs.learners = learners;
	cs.n_learners = 1;
	md.conf_state = &cs;
	md.index = index;
	md.term = term;
	snap.metadata = &md;
	snap.data.data = (uint8_t *)"state-machine";
	snap.data.len = 13;
	raft_snapshot_t *copy = raft_snapshot_clone(&snap);
	assert_non_null(copy);
	return copy;
}

/* A heap message with two entries, a snapshot and a context, built by raft_msg_clone. */
static raft_msg_t *msg_full_new(void)
{
	raft_entry_t *ents[2];
	ents[0] = raft_entry_new(3, 11, RAFT_ENTRY_NORMAL, "put x=1", 7);
	ents[1] = raft_entry_new(3, 12, RAFT_ENTRY_CONF_CHANGE, "\x10\x04", 2);
	raft_snapshot_t *snap = msg_snapshot_new(10, 2);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, 3);
	m.log_term = 2;
	m.index = 10;
	m.entries = ents;
	m.n_entries = 2;
	m.commit = 9;
	m.snapshot = snap;
	m.reject = true;
	m.reject_hint = 8;
	m.context.data = (uint8_t *)"ctx";
	m.context.len = 3;
	raft_msg_t *copy = raft_msg_clone(&m);
	assert_non_null(copy);
	raft_entry_free(ents[0]);
	raft_entry_free(ents[1]);
	raft_snapshot_free(snap);
	return copy;
}

static void msg_assert_full(const raft_msg_t *m)
{
	assert_int_equal(m->type, RAFT_MSG_APP);
	assert_int_equal(m->from, 1);
	assert_int_equal(m->to, 2);
	assert_int_equal(m->term, 3);
	assert_int_equal(m->log_term, 2);
	assert_int_equal(m->index, 10);
	assert_int_equal(m->commit, 9);
	assert_true(m->reject);
	assert_int_equal(m->reject_hint, 8);
	assert_int_equal(m->context.len, 3);
	assert_memory_equal(m->context.data, "ctx", 3);
	assert_int_equal(m->n_entries, 2);
	assert_int_equal(m->entries[0]->index, 11);
	assert_int_equal(m->entries[0]->term, 3);
	assert_int_equal(m->entries[0]->type, RAFT_ENTRY_NORMAL);
	assert_int_equal(m->entries[0]->data.len, 7);
	assert_memory_equal(m->entries[0]->data.data, "put x=1", 7);
	assert_int_equal(m->entries[1]->type, RAFT_ENTRY_CONF_CHANGE);
	assert_non_null(m->snapshot);
	assert_non_null(m->snapshot->metadata);
	assert_int_equal(m->snapshot->metadata->index, 10);
	assert_int_equal(m->snapshot->metadata->term, 2);
	assert_int_equal(m->snapshot->data.len, 13);
	assert_non_null(m->snapshot->metadata->conf_state);
	assert_int_equal(m->snapshot->metadata->conf_state->n_voters, 3);
	assert_int_equal(m->snapshot->metadata->conf_state->n_learners, 1);
	assert_int_equal(m->snapshot->metadata->conf_state->learners[0], 4);
}

static void test_msg_clone_is_deep(void **state)
{
	(void)state;
	raft_msg_t *m = msg_full_new();
	msg_assert_full(m);
	raft_msg_t *c = raft_msg_clone(m);
	assert_non_null(c);
	assert_ptr_not_equal(c->entries, m->entries);
	assert_ptr_not_equal(c->entries[0], m->entries[0]);
	assert_ptr_not_equal(c->snapshot, m->snapshot);
	/* the copy must survive the original */
	raft_msg_free(m);
	msg_assert_full(c);
	raft_msg_free(c);
}

static void test_msg_pack_unpack_round_trip(void **state)
{
	(void)state;
	raft_msg_t *m = msg_full_new();
	size_t len = raftpb__message__get_packed_size(m);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(raftpb__message__pack(m, buf), len);
	raft_msg_t *u = raftpb__message__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(u);
	msg_assert_full(u);
	/* an unpacked message clones and frees like a built one */
	raft_msg_t *c = raft_msg_clone(u);
	raft_msg_free(u);
	msg_assert_full(c);
	raft_msg_free(c);
	raft_msg_free(m);
}

static void test_msg_minimal_clone_and_free(void **state)
{
	(void)state;
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 4, 5, 6);
	raft_msg_t *c = raft_msg_clone(&m);
	assert_non_null(c);
	assert_int_equal(c->type, RAFT_MSG_HEARTBEAT);
	assert_int_equal(c->from, 4);
	assert_int_equal(c->to, 5);
	assert_int_equal(c->term, 6);
	assert_int_equal(c->n_entries, 0);
	assert_null(c->snapshot);
	raft_msg_free(c);
	raft_msg_free(NULL);
}

static void test_entry_new_and_clone(void **state)
{
	(void)state;
	raft_entry_t *e = raft_entry_new(4, 17, RAFT_ENTRY_NORMAL, "abc", 3);
	assert_non_null(e);
	assert_int_equal(e->term, 4);
	assert_int_equal(e->index, 17);
	assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
	assert_int_equal(e->data.len, 3);
	raft_entry_t *c = raft_entry_clone(e);
	raft_entry_free(e);
	assert_non_null(c);
	assert_int_equal(c->index, 17);
	assert_memory_equal(c->data.data, "abc", 3);
	raft_entry_free(c);

	raft_entry_t *empty = raft_entry_new(1, 1, RAFT_ENTRY_NORMAL, NULL, 0);
	assert_non_null(empty);
	assert_int_equal(empty->data.len, 0);
	raft_entry_t *ec = raft_entry_clone(empty);
	assert_non_null(ec);
	raft_entry_free(empty);
	raft_entry_free(ec);
}

static void test_entry_pack_unpack_frees_with_entry_free(void **state)
{
	(void)state;
	raft_entry_t *e = raft_entry_new(2, 5, RAFT_ENTRY_CONF_CHANGE, "xyz", 3);
	uint8_t buf[64];
	size_t len = raftpb__entry__pack(e, buf);
	raft_entry_t *u = raftpb__entry__unpack(NULL, len, buf);
	assert_non_null(u);
	assert_int_equal(u->index, 5);
	assert_int_equal(u->type, RAFT_ENTRY_CONF_CHANGE);
	raft_entry_free(u);
	raft_entry_free(e);
}

static void test_snapshot_clone_is_deep(void **state)
{
	(void)state;
	raft_snapshot_t *s = msg_snapshot_new(42, 7);
	raft_snapshot_t *c = raft_snapshot_clone(s);
	raft_snapshot_free(s);
	assert_non_null(c);
	assert_int_equal(c->metadata->index, 42);
	assert_int_equal(c->metadata->term, 7);
	assert_int_equal(c->metadata->conf_state->n_voters, 3);
	assert_memory_equal(c->data.data, "state-machine", 13);
	raft_snapshot_free(c);
	raft_snapshot_free(NULL);
}

static void test_strerror_names_every_error(void **state)
{
	(void)state;
	const char *names[1 - RAFT_ERR_STORAGE];
	for (int err = RAFT_OK; err >= RAFT_ERR_STORAGE; err--) {
		const char *s = raft_strerror(err);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
		names[-err] = s;
		for (int other = RAFT_OK; other > err; other--)
			assert_string_not_equal(s, names[-other]);
	}
	assert_non_null(raft_strerror(-1000));
	assert_non_null(raft_strerror(5));
}

static void test_state_name_names_every_state(void **state)
{
	(void)state;
	assert_string_not_equal(raft_state_name(RAFT_FOLLOWER), raft_state_name(RAFT_LEADER));
	assert_string_not_equal(raft_state_name(RAFT_CANDIDATE),
				raft_state_name(RAFT_PRE_CANDIDATE));
	assert_non_null(raft_state_name((raft_state_t)99));
}

static void test_unpacked_message_with_unknown_fields_frees_cleanly(void **state)
{
	(void)state;
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 1, 2, 3);
	uint8_t buf[64];
	size_t len = raftpb__message__pack(&m, buf);
	/* field 99, varint 5: a field from some future version */
	buf[len++] = 0x98;
	buf[len++] = 0x06;
	buf[len++] = 0x05;
	raft_msg_t *u = raftpb__message__unpack(NULL, len, buf);
	assert_non_null(u);
	assert_int_equal(u->term, 3);
	assert_true(u->base.n_unknown_fields >= 1);
	raft_msg_t *c = raft_msg_clone(u);
	assert_non_null(c);
	raft_msg_free(u);
	raft_msg_free(c);
}

static void test_snapshot_clone_of_partial_snapshots(void **state)
{
	(void)state;
	raft_snapshot_t bare = RAFTPB__SNAPSHOT__INIT;
	raft_snapshot_t *c = raft_snapshot_clone(&bare);
	assert_non_null(c);
	raft_snapshot_free(c);
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	md.index = 5;
	md.term = 2;
	bare.metadata = &md;
	c = raft_snapshot_clone(&bare);
	assert_non_null(c);
	assert_int_equal(c->metadata->index, 5);
	raft_snapshot_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_clone_is_deep),
		cmocka_unit_test(test_msg_pack_unpack_round_trip),
		cmocka_unit_test(test_msg_minimal_clone_and_free),
		cmocka_unit_test(test_entry_new_and_clone),
		cmocka_unit_test(test_entry_pack_unpack_frees_with_entry_free),
		cmocka_unit_test(test_snapshot_clone_is_deep),
		cmocka_unit_test(test_strerror_names_every_error),
		cmocka_unit_test(test_state_name_names_every_state),
		cmocka_unit_test(test_unpacked_message_with_unknown_fields_frees_cleanly),
		cmocka_unit_test(test_snapshot_clone_of_partial_snapshots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
