/* tests/unit/test_snapshot.c — log compaction and InstallSnapshot (Raft §7): a follower
 * behind the leader's first index gets MsgSnap, restores it through Ready.snapshot and
 * continues by MsgApp; the snapshot progress state and raft_report_snapshot. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static raft_progress_state_t prog(h_net_t *net, uint64_t lead, uint64_t id, uint64_t *match)
{
	raft_progress_state_t st;
	uint64_t m, n;
	assert_int_equal(raft_progress(h_raft(net, lead), id, &st, &m, &n), RAFT_OK);
	if (match)
		*match = m;
	return st;
}

/* Elects 1, leaves 3 behind by n entries, then compacts the leader's log. */
static h_net_t *lagging_follower_net(int n)
{
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < n; i++)
		assert_int_equal(h_propose(net, 1, "behind"), RAFT_OK);
	h_stabilize(net);
	h_compact(net, 1);
	assert_true(h_first_index(net, 1) > h_last_index(net, 3) + 1);
	return net;
}

static bool filter_drop_snap(h_net_t *net, raft_msg_t *m, void *arg)
{
	(void)net;
	size_t *dropped = arg;
	if ((int)m->type != RAFT_MSG_SNAP)
		return false;
	(*dropped)++;
	return true;
}

static void test_lagging_follower_gets_snapshot_and_continues(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(20);
	uint64_t snap = h_node(net, 1)->snap_index;
	h_heal(net);
	h_reset_sent(net);
	assert_int_equal(h_propose(net, 1, "after"), RAFT_OK);
	h_tick_stabilize(net, 3);

	assert_true(h_sent(net, RAFT_MSG_SNAP, 1, 3) >= 1);
	h_node_t *n3 = h_node(net, 3);
	assert_int_equal(n3->n_snaps, 1);
	assert_int_equal(n3->snap_index, snap);
	assert_int_equal(h_first_index(net, 3), snap + 1);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(h_applied_count(net, 3, "behind"), 0); /* came inside the snapshot */
	assert_int_equal(h_applied_count(net, 3, "after"), 1);
	assert_int_equal(h_status(net, 3).commit, h_status(net, 1).commit);

	raft_storage_t s = raft_memstorage_storage(n3->ms);
	const raft_snapshot_t *got = NULL;
	assert_int_equal(s.ops->snapshot(s.ctx, &got), RAFT_OK);
	char want[32];
	int len = snprintf(want, sizeof(want), "snap@%llu", (unsigned long long)snap);
	assert_int_equal(got->data.len, (size_t)len);
	assert_memory_equal(got->data.data, want, (size_t)len);

	/* from here on plain appends */
	h_reset_sent(net);
	assert_int_equal(h_propose(net, 1, "later"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_sent(net, RAFT_MSG_SNAP, 1, 3), 0);
	assert_true(h_sent(net, RAFT_MSG_APP, 1, 3) >= 1);
	assert_int_equal(h_applied_count(net, 3, "later"), 1);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_REPLICATE);
	h_net_free(net);
}

static void test_progress_in_snapshot_state_while_transfer_pending(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(10);
	h_heal(net);
	size_t dropped = 0;
	h_set_filter(net, filter_drop_snap, &dropped);
	h_tick_stabilize(net, 2);
	assert_true(dropped >= 1);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_SNAPSHOT);
	/* no appends are sent while the snapshot is pending */
	h_reset_sent(net);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	size_t apps = h_sent(net, RAFT_MSG_APP, 1, 3);
	assert_int_equal(apps, 0);
	h_net_free(net);
}

static void test_failed_snapshot_report_returns_to_probe_and_retries(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(10);
	h_heal(net);
	size_t dropped = 0;
	h_set_filter(net, filter_drop_snap, &dropped);
	h_tick_stabilize(net, 2);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_SNAPSHOT);
	raft_report_snapshot(h_raft(net, 1), 3, true);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_PROBE);
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_node(net, 3)->n_snaps, 1);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_REPLICATE);
	h_net_free(net);
}

static void test_successful_snapshot_report_then_ack_resumes_replication(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(10);
	h_heal(net);
	net->auto_report_snap = false;
	h_tick(net, 1, 1);
	h_deliver(net); /* heartbeat out */
	h_deliver(net); /* response back */
	h_drain(net, 1);
	raft_msg_t *snap[2];
	for (int i = 0; i < 5 && h_count(net, RAFT_MSG_SNAP, 1, 3) == 0; i++) {
		h_deliver(net);
		h_drain(net, 1);
	}
	assert_int_equal(h_take(net, RAFT_MSG_SNAP, 1, 3, snap, 2), 1);
	assert_non_null(snap[0]->snapshot);
	assert_int_equal(snap[0]->snapshot->metadata->index, h_node(net, 1)->snap_index);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_SNAPSHOT);
	h_send(net, snap[0]);
	h_stabilize(net); /* 3 restores and acknowledges */
	raft_report_snapshot(h_raft(net, 1), 3, false);
	h_tick_stabilize(net, 2);
	uint64_t match;
	assert_int_equal(prog(net, 1, 3, &match), RAFT_PROGRESS_REPLICATE);
	assert_int_equal(match, h_status(net, 1).last_index);
	h_net_free(net);
}

static void test_follower_ignores_snapshot_older_than_commit(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	uint64_t voters[] = {1, 2, 3};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = voters;
	cs.n_voters = 3;
	md.conf_state = &cs;
	md.index = st.commit - 2;
	md.term = h_log_term(net, 2, md.index);
	snap.metadata = &md;
	raft_msg_t m = h_msg(RAFT_MSG_SNAP, 1, 2, st.term);
	m.snapshot = &snap;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_node(net, 2)->n_snaps, 0);
	raft_msg_t *resp[2];
	assert_int_equal(h_take(net, RAFT_MSG_APP_RESP, 2, 1, resp, 2), 1);
	assert_false(resp[0]->reject);
	assert_int_equal(resp[0]->index, st.commit);
	raft_msg_free(resp[0]);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	h_net_free(net);
}

static void test_snapshot_without_voters_is_refused(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	md.index = st.last_index + 10; /* ahead of the log: would be restored */
	md.term = st.term;
	snap.metadata = &md;
	raft_msg_t m = h_msg(RAFT_MSG_SNAP, 1, 2, st.term);
	m.snapshot = &snap;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_node(net, 2)->n_snaps, 0);
	raft_status_t after = h_status(net, 2);
	assert_int_equal(after.last_index, st.last_index);
	assert_int_equal(after.conf.n_voters, 3);
	h_net_free(net);
}

static void test_new_member_joins_through_snapshot_with_membership(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 4), RAFT_OK);
	h_stabilize(net);
	for (int i = 0; i < 10; i++)
		assert_int_equal(h_propose(net, 1, "pre-join"), RAFT_OK);
	h_stabilize(net);
	h_compact(net, 1);
	h_node_join(net, 4);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_node(net, 4)->n_snaps, 1);
	assert_true(h_logs_equal(net, 1, 4));
	raft_status_t st = h_status(net, 4);
	assert_int_equal(st.conf.n_voters, 3);
	for (uint64_t id = 1; id <= 3; id++)
		assert_true(raft_conf_is_voter(&st.conf, id));
	assert_true(raft_conf_is_learner(&st.conf, 4));
	raft_conf_t applied;
	raft_applied_conf(h_raft(net, 4), &applied);
	assert_true(raft_conf_is_learner(&applied, 4));
	assert_int_equal(applied.n_voters, 3);
	h_net_free(net);
}

static void test_restart_after_snapshot_restores_from_storage(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(15);
	uint64_t snap = h_node(net, 1)->snap_index;
	h_heal(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_node(net, 3)->n_snaps, 1);
	h_restart(net, 3);
	h_drain(net, 3);
	raft_status_t st = h_status(net, 3);
	assert_int_equal(st.first_index, snap + 1);
	assert_true(st.commit >= snap);
	assert_int_equal(st.applied, h_node(net, 3)->applied);
	assert_int_equal(h_node(net, 3)->n_snaps, 1); /* not handed out again */
	assert_int_equal(h_propose(net, 1, "post-restart"), RAFT_OK);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_applied_count(net, 3, "post-restart"), 1);
	h_net_free(net);
}

static void test_restart_of_compacted_leader_keeps_serving(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++)
		h_compact(net, id);
	for (uint64_t id = 1; id <= 3; id++)
		h_restart(net, id);
	h_tick_stabilize(net, 40);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	assert_int_equal(h_propose(net, lead, "y"), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(h_applied_count(net, id, "y"), 1);
	h_net_free(net);
}

static void test_up_to_date_follower_never_needs_snapshot(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_reset_sent(net);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 4; i++)
			assert_int_equal(h_propose(net, 1, "z"), RAFT_OK);
		h_stabilize(net);
		h_compact(net, 1);
	}
	h_tick_stabilize(net, 3);
	assert_int_equal(h_sent(net, RAFT_MSG_SNAP, 1, H_ANY), 0);
	assert_int_equal(h_applied_count(net, 3, "z"), 20);
	h_net_free(net);
}

static void cfg_small(raft_config_t *cfg)
{
	cfg->max_size_per_msg = 64;
	cfg->max_inflight_msgs = 4;
}

static void test_auto_compacting_cluster_converges_through_partitions(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, cfg_small);
	for (uint64_t id = 1; id <= 5; id++)
		h_node(net, id)->compact_every = 7;
	h_tick_stabilize(net, 25);
	size_t proposed = 0;
	for (int round = 0; round < 12; round++) {
		h_heal(net);
		h_isolate(net, 1 + (uint64_t)(round * 3) % 5);
		h_tick_stabilize(net, 25);
		uint64_t lead = h_leader(net);
		if (!lead)
			continue;
		for (int i = 0; i < 6; i++)
			if (h_propose(net, lead, "ac") == RAFT_OK)
				proposed++;
		h_tick_stabilize(net, 2);
	}
	h_heal(net);
	h_tick_stabilize(net, 30);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	assert_int_equal(h_propose(net, lead, "final"), RAFT_OK);
	h_tick_stabilize(net, 5);
	size_t total_snaps = 0;
	for (uint64_t id = 1; id <= 5; id++) {
		assert_true(h_logs_equal(net, lead, id));
		assert_int_equal(h_applied_count(net, id, "final"), 1);
		total_snaps += h_node(net, id)->n_snaps;
	}
	assert_true(total_snaps >= 1);
	assert_true(proposed >= 30);
	h_net_free(net);
}

/* A storage wrapper whose snapshot is temporarily unavailable. */
static raft_storage_t g_inner;
static bool g_snap_unavailable;

static int wrap_initial_state(void *ctx, raft_hard_state_t *hs)
{
	(void)ctx;
	return g_inner.ops->initial_state(g_inner.ctx, hs);
}

static int wrap_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max,
			raft_entry_t **out, size_t *n)
{
	(void)ctx;
	return g_inner.ops->entries(g_inner.ctx, lo, hi, max, out, n);
}

static int wrap_term(void *ctx, uint64_t i, uint64_t *t)
{
	(void)ctx;
	return g_inner.ops->term(g_inner.ctx, i, t);
}

static int wrap_first(void *ctx, uint64_t *i)
{
	(void)ctx;
	return g_inner.ops->first_index(g_inner.ctx, i);
}

static int wrap_last(void *ctx, uint64_t *i)
{
	(void)ctx;
	return g_inner.ops->last_index(g_inner.ctx, i);
}

static int wrap_snapshot(void *ctx, const raft_snapshot_t **s)
{
	(void)ctx;
	if (g_snap_unavailable)
		return RAFT_ERR_SNAPSHOT_TEMP_UNAVAILABLE;
	return g_inner.ops->snapshot(g_inner.ctx, s);
}

static const raft_storage_ops_t wrap_ops = {
	wrap_initial_state, wrap_entries, wrap_term, wrap_first, wrap_last, wrap_snapshot,
};

static void cfg_wrap_node1(raft_config_t *cfg)
{
	if (cfg->id != 1)
		return;
	g_inner = cfg->storage;
	cfg->storage.ops = &wrap_ops;
	cfg->storage.ctx = NULL;
}

static void test_snapshot_temporarily_unavailable_is_retried(void **state)
{
	(void)state;
	g_snap_unavailable = false;
	h_net_t *net = h_net_new(3, 0, cfg_wrap_node1);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 8; i++)
		assert_int_equal(h_propose(net, 1, "w"), RAFT_OK);
	h_stabilize(net);
	h_compact(net, 1);
	g_snap_unavailable = true;
	h_heal(net);
	h_reset_sent(net);
	h_tick_stabilize(net, 3);
	assert_int_equal(h_sent(net, RAFT_MSG_SNAP, 1, 3), 0);
	assert_int_not_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_SNAPSHOT);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	g_snap_unavailable = false;
	h_tick_stabilize(net, 3);
	assert_true(h_sent(net, RAFT_MSG_SNAP, 1, 3) >= 1);
	assert_true(h_logs_equal(net, 1, 3));
	h_net_free(net);
}

static void test_snapshot_matching_own_log_only_moves_commit(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_drop_type(net, RAFT_MSG_APP_RESP);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_propose(net, 1, "uncommitted"), RAFT_OK);
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	assert_true(st.commit < st.last_index);
	uint64_t voters[] = {1, 2, 3};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = voters;
	cs.n_voters = 3;
	md.conf_state = &cs;
	md.index = st.last_index;
	md.term = h_log_term(net, 2, st.last_index);
	snap.metadata = &md;
	raft_msg_t m = h_msg(RAFT_MSG_SNAP, 1, 2, st.term);
	m.snapshot = &snap;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_node(net, 2)->n_snaps, 0);
	assert_int_equal(h_status(net, 2).commit, st.last_index);
	assert_int_equal(h_applied_count(net, 2, "uncommitted"), 3);
	assert_int_equal(h_first_index(net, 2), 1);
	h_net_free(net);
}

static void test_unreported_snapshot_times_out_and_is_resent(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(10);
	h_heal(net);
	size_t dropped = 0;
	h_set_filter(net, filter_drop_snap, &dropped);
	h_tick_stabilize(net, 3);
	assert_int_equal(dropped, 1);
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_SNAPSHOT);
	h_tick_stabilize(net, 60);
	assert_true(dropped >= 2);
	h_heal(net);
	h_tick_stabilize(net, 60);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(prog(net, 1, 3, NULL), RAFT_PROGRESS_REPLICATE);
	h_net_free(net);
}

static void test_snapshot_report_on_follower_or_unknown_is_ignored(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_report_snapshot(h_raft(net, 2), 3, true);
	raft_report_snapshot(h_raft(net, 1), 9, false);
	raft_report_snapshot(h_raft(net, 1), 2, true); /* not in snapshot state */
	h_stabilize(net);
	assert_int_equal(prog(net, 1, 2, NULL), RAFT_PROGRESS_REPLICATE);
	assert_int_equal(h_propose(net, 1, "ok"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 3, "ok"), 1);
	h_net_free(net);
}

static void test_append_after_unpersisted_snapshot_is_accepted(void **state)
{
	(void)state;
	h_net_t *net = lagging_follower_net(10);
	uint64_t snap_index = h_node(net, 1)->snap_index;
	uint64_t t = h_term(net, 1);
	const raft_snapshot_t *snap = NULL;
	raft_storage_t s = raft_memstorage_storage(h_node(net, 1)->ms);
	assert_int_equal(s.ops->snapshot(s.ctx, &snap), RAFT_OK);
	raft_msg_t m = h_msg(RAFT_MSG_SNAP, 1, 3, t);
	m.snapshot = (raft_snapshot_t *)snap;
	assert_int_equal(raft_step(h_raft(net, 3), &m), RAFT_OK);
	/* before 3 persists the snapshot, an append right after it arrives */
	raft_entry_t *e = raft_entry_new(t, snap_index + 1, RAFT_ENTRY_NORMAL, "next", 4);
	raft_msg_t a = h_msg(RAFT_MSG_APP, 1, 3, t);
	a.index = snap_index;
	a.log_term = snap->metadata->term;
	a.entries = &e;
	a.n_entries = 1;
	assert_int_equal(raft_step(h_raft(net, 3), &a), RAFT_OK);
	/* and one that points below the snapshot is answered without harm */
	raft_msg_t b = h_msg(RAFT_MSG_APP, 1, 3, t);
	b.index = snap_index - 1;
	b.log_term = t;
	assert_int_equal(raft_step(h_raft(net, 3), &b), RAFT_OK);
	raft_entry_free(e);
	h_drain(net, 3);
	assert_int_equal(h_node(net, 3)->n_snaps, 1);
	assert_int_equal(h_last_index(net, 3), snap_index + 1);
	assert_int_equal(h_log_term(net, 3, snap_index + 1), t);
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lagging_follower_gets_snapshot_and_continues),
		cmocka_unit_test(test_progress_in_snapshot_state_while_transfer_pending),
		cmocka_unit_test(test_failed_snapshot_report_returns_to_probe_and_retries),
		cmocka_unit_test(test_successful_snapshot_report_then_ack_resumes_replication),
		cmocka_unit_test(test_follower_ignores_snapshot_older_than_commit),
		cmocka_unit_test(test_snapshot_without_voters_is_refused),
		cmocka_unit_test(test_new_member_joins_through_snapshot_with_membership),
		cmocka_unit_test(test_restart_after_snapshot_restores_from_storage),
		cmocka_unit_test(test_restart_of_compacted_leader_keeps_serving),
		cmocka_unit_test(test_up_to_date_follower_never_needs_snapshot),
		cmocka_unit_test(test_auto_compacting_cluster_converges_through_partitions),
		cmocka_unit_test(test_snapshot_temporarily_unavailable_is_retried),
		cmocka_unit_test(test_snapshot_matching_own_log_only_moves_commit),
		cmocka_unit_test(test_unreported_snapshot_times_out_and_is_resent),
		cmocka_unit_test(test_snapshot_report_on_follower_or_unknown_is_ignored),
		cmocka_unit_test(test_append_after_unpersisted_snapshot_is_accepted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
