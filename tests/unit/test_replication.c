/* tests/unit/test_replication.c — log replication (Raft §5.3): per-follower progress
 * (probe / replicate), fast backtracking of mismatched logs, pipelining bounded by
 * max_inflight_msgs, batching bounded by max_size_per_msg, and heartbeats. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

static void cfg_inflight3(raft_config_t *cfg)
{
	cfg->max_inflight_msgs = 3;
	cfg->max_size_per_msg = 0;
}

static void cfg_size100(raft_config_t *cfg)
{
	cfg->max_size_per_msg = 100;
}

static void cfg_heartbeat3(raft_config_t *cfg)
{
	cfg->election_tick = 10;
	cfg->heartbeat_tick = 3;
}

static raft_progress_state_t progress_state(h_net_t *net, uint64_t lead, uint64_t id,
					    uint64_t *match, uint64_t *next)
{
	raft_progress_state_t st = RAFT_PROGRESS_PROBE;
	uint64_t m = 0, n = 0;
	assert_int_equal(raft_progress(h_raft(net, lead), id, &st, &m, &n), RAFT_OK);
	if (match)
		*match = m;
	if (next)
		*next = n;
	return st;
}

static void test_proposals_replicate_to_every_node_in_order(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, NULL);
	h_elect(net, 1);
	char buf[16];
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "p%d", i);
		assert_int_equal(h_propose(net, 1, buf), RAFT_OK);
	}
	h_stabilize(net);
	for (uint64_t id = 1; id <= 5; id++) {
		h_node_t *nd = h_node(net, id);
		int next = 0;
		for (size_t i = 0; i < nd->n_ents; i++) {
			const raft_entry_t *e = nd->ents[i];
			if (e->type != RAFTPB__ENTRY_TYPE__ENTRY_NORMAL || e->data.len == 0)
				continue;
			snprintf(buf, sizeof(buf), "p%d", next++);
			assert_int_equal(e->data.len, strlen(buf));
			assert_memory_equal(e->data.data, buf, e->data.len);
		}
		assert_int_equal(next, 10);
		assert_true(h_logs_equal(net, 1, id));
		assert_int_equal(h_status(net, id).commit, h_status(net, 1).last_index);
	}
	h_net_free(net);
}

static void test_proposal_appends_at_next_index_with_leader_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(h_status(net, 1).last_index, st.last_index + 1);
	assert_int_equal(h_log_term(net, 1, st.last_index + 1), st.term);
	/* the leader persisted it before any follower acknowledged */
	assert_int_equal(h_status(net, 1).commit, st.commit);
	h_net_free(net);
}

static void test_progress_probe_then_replicate(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_cut(net, 1, 3);
	h_elect(net, 1);
	uint64_t last = h_status(net, 1).last_index, match, next;
	assert_int_equal(progress_state(net, 1, 2, &match, &next), RAFT_PROGRESS_REPLICATE);
	assert_int_equal(match, last);
	assert_int_equal(next, last + 1);
	assert_int_equal(progress_state(net, 1, 3, &match, NULL), RAFT_PROGRESS_PROBE);
	assert_true(match < last);
	h_heal(net);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_tick_stabilize(net, 2);
	last = h_status(net, 1).last_index;
	assert_int_equal(progress_state(net, 1, 3, &match, &next), RAFT_PROGRESS_REPLICATE);
	assert_int_equal(match, last);
	assert_int_equal(next, last + 1);
	h_net_free(net);
}

static void test_progress_query_errors(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_progress_state_t st;
	uint64_t match, next;
	assert_int_equal(raft_progress(h_raft(net, 2), 3, &st, &match, &next),
			 RAFT_ERR_NOT_LEADER);
	assert_int_equal(raft_progress(h_raft(net, 1), 7, &st, &match, &next),
			 RAFT_ERR_STEP_PEER_NOT_FOUND);
	assert_int_equal(raft_progress(h_raft(net, 1), 1, &st, &match, &next), RAFT_OK);
	assert_int_equal(match, h_status(net, 1).last_index);
	h_net_free(net);
}

static void test_probe_sends_one_append_until_answered(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_cut(net, 1, 3);
	h_elect(net, 1);
	h_reset_sent(net);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
		h_stabilize(net);
	}
	assert_true(h_sent(net, RAFT_MSG_APP, 1, 3) <= 1);
	assert_true(h_sent(net, RAFT_MSG_APP, 1, 2) >= 5);
	assert_int_equal(progress_state(net, 1, 3, NULL, NULL), RAFT_PROGRESS_PROBE);
	h_heal(net);
	h_tick_stabilize(net, 2);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(h_applied_count(net, 3, "x"), 5);
	h_net_free(net);
}

/* Drops every MsgApp to node 2, counting those that carried entries. */
static bool filter_drop_app_to_2(h_net_t *net, raft_msg_t *m, void *arg)
{
	(void)net;
	size_t *with_entries = arg;
	if ((int)m->type != RAFT_MSG_APP || m->to != 2)
		return false;
	*with_entries += m->n_entries > 0;
	return true;
}

static void test_inflight_limit_bounds_pipelining(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_inflight3);
	h_elect(net, 1);
	assert_int_equal(progress_state(net, 1, 2, NULL, NULL), RAFT_PROGRESS_REPLICATE);
	size_t with_entries = 0;
	h_set_filter(net, filter_drop_app_to_2, &with_entries);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(h_propose(net, 1, "pipelined"), RAFT_OK);
		h_stabilize(net);
	}
	assert_int_equal(with_entries, 3);
	assert_int_equal(progress_state(net, 1, 2, NULL, NULL), RAFT_PROGRESS_REPLICATE);
	/* the leader still commits with node 3 */
	assert_int_equal(h_status(net, 1).commit, h_status(net, 1).last_index);
	h_heal(net);
	h_tick_stabilize(net, 5);
	assert_true(h_logs_equal(net, 1, 2));
	assert_int_equal(h_applied_count(net, 2, "pipelined"), 10);
	h_net_free(net);
}

static void test_inflight_slots_free_on_acknowledgement(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_inflight3);
	h_elect(net, 1);
	raft_msg_t *held[8];
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_propose(net, 1, "a"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(h_take(net, RAFT_MSG_APP, 1, 2, held, 8), 3);
	for (int i = 0; i < 2; i++)
		assert_int_equal(h_propose(net, 1, "b"), RAFT_OK);
	h_drain(net, 1);
	assert_int_equal(h_count(net, RAFT_MSG_APP, 1, 2), 0); /* window full */
	/* the first acknowledgement opens the window again */
	h_send(net, held[0]);
	h_deliver(net); /* MsgApp reaches 2 (and node 3's traffic moves) */
	h_deliver(net); /* 2's response reaches 1 */
	h_drain(net, 1);
	assert_true(h_count(net, RAFT_MSG_APP, 1, 2) >= 1);
	h_send(net, held[1]);
	h_send(net, held[2]);
	h_stabilize(net);
	assert_true(h_logs_equal(net, 1, 2));
	assert_int_equal(h_applied_count(net, 2, "b"), 2);
	h_net_free(net);
}

typedef struct size_watch {
	uint64_t to;
	uint64_t max_bytes;
	size_t max_entries;
	size_t apps;
} size_watch_t;

static bool filter_size_watch(h_net_t *net, raft_msg_t *m, void *arg)
{
	(void)net;
	size_watch_t *w = arg;
	if ((int)m->type != RAFT_MSG_APP || m->to != w->to || m->n_entries == 0)
		return false;
	uint64_t bytes = 0;
	for (size_t i = 0; i < m->n_entries; i++)
		bytes += m->entries[i]->data.len;
	if (m->n_entries > 1)
		assert_true(bytes <= w->max_bytes);
	if (m->n_entries > w->max_entries)
		w->max_entries = m->n_entries;
	w->apps++;
	return false;
}

static void test_max_size_per_msg_batches_entries(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_size100);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 30; i++)
		assert_int_equal(h_propose(net, 1, "0123456789"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	size_watch_t w = {.to = 3, .max_bytes = 100};
	h_set_filter(net, filter_size_watch, &w);
	h_tick_stabilize(net, 3);
	assert_true(h_logs_equal(net, 1, 3));
	assert_true(w.max_entries > 1);
	assert_true(w.max_entries <= 10);
	assert_true(w.apps >= 3);
	assert_true(w.apps < 30); /* fewer messages than entries */
	h_net_free(net);
}

static void test_zero_max_size_sends_one_entry_per_append(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_inflight3);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 6; i++)
		assert_int_equal(h_propose(net, 1, "0123456789"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	size_watch_t w = {.to = 3, .max_bytes = 0};
	h_set_filter(net, filter_size_watch, &w);
	h_tick_stabilize(net, 5);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(w.max_entries, 1);
	h_net_free(net);
}

static void test_heartbeats_every_heartbeat_tick(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_heartbeat3);
	h_elect(net, 1);
	h_reset_sent(net);
	for (int i = 0; i < 9; i++) {
		h_tick(net, 1, 1);
		h_stabilize(net);
	}
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, 1, 2), 3);
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, 1, 3), 3);
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT_RESP, 2, 1), 3);
	h_tick(net, 1, 2);
	h_stabilize(net);
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, 1, 2), 3);
	assert_int_equal(h_sent(net, RAFT_MSG_HEARTBEAT, 2, H_ANY), 0);
	h_net_free(net);
}

static bool filter_heartbeat_commit_in_log(h_net_t *net, raft_msg_t *m, void *arg)
{
	size_t *seen = arg;
	if ((int)m->type != RAFT_MSG_HEARTBEAT || !h_node(net, m->to)->raft)
		return false;
	assert_true(m->commit <= h_last_index(net, m->to));
	(*seen)++;
	return false;
}

static void test_heartbeat_commit_never_exceeds_follower_match(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	size_t seen = 0;
	h_set_filter(net, filter_heartbeat_commit_in_log, &seen);
	h_tick_stabilize(net, 3);
	assert_true(seen >= 6);
	assert_true(h_logs_equal(net, 1, 3));
	h_net_free(net);
}

static void test_follower_rejects_append_with_missing_prev(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, st.term);
	m.index = st.last_index + 5;
	m.log_term = st.term;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	raft_msg_t *resp[4];
	assert_int_equal(h_take(net, RAFT_MSG_APP_RESP, 2, 1, resp, 4), 1);
	assert_true(resp[0]->reject);
	assert_int_equal(resp[0]->reject_hint, st.last_index);
	raft_msg_free(resp[0]);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	h_net_free(net);
}

static void test_follower_accepts_duplicate_append_idempotently(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "dup"), RAFT_OK);
	h_stabilize(net);
	raft_status_t st = h_status(net, 2);
	raft_entry_t *e = raft_entry_new(st.term, st.last_index, RAFT_ENTRY_NORMAL, "dup", 3);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, st.term);
	m.index = st.last_index - 1;
	m.log_term = h_log_term(net, 2, m.index);
	m.entries = &e;
	m.n_entries = 1;
	m.commit = st.commit;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	raft_entry_free(e);
	h_drain(net, 2);
	raft_msg_t *resp[4];
	assert_int_equal(h_take(net, RAFT_MSG_APP_RESP, 2, 1, resp, 4), 1);
	assert_false(resp[0]->reject);
	assert_int_equal(resp[0]->index, st.last_index);
	raft_msg_free(resp[0]);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	assert_int_equal(h_applied_count(net, 2, "dup"), 1);
	h_net_free(net);
}

static void test_follower_ignores_append_from_stale_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	h_elect(net, 2);
	raft_status_t st = h_status(net, 3);
	raft_entry_t *e = raft_entry_new(st.term - 1, st.last_index, RAFT_ENTRY_NORMAL, "old", 3);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 3, st.term - 1);
	m.index = st.last_index - 1;
	m.log_term = h_log_term(net, 3, m.index);
	m.entries = &e;
	m.n_entries = 1;
	assert_int_equal(raft_step(h_raft(net, 3), &m), RAFT_OK);
	raft_entry_free(e);
	h_drain(net, 3);
	raft_status_t after = h_status(net, 3);
	assert_int_equal(after.term, st.term);
	assert_int_equal(after.lead, 2);
	assert_int_equal(after.last_index, st.last_index);
	assert_int_equal(h_log_term(net, 3, st.last_index), st.term);
	h_net_free(net);
}

/* Boots nodes with crafted logs: index 1 is a snapshot (term 1), terms[] from index 2. */
static void boot_logs(h_net_t *net, const uint64_t *const *logs, const size_t *lens,
		      const uint64_t *hs_terms, size_t n)
{
	uint64_t voters[H_MAX_NODES];
	for (size_t i = 0; i < n; i++)
		voters[i] = i + 1;
	for (size_t i = 0; i < n; i++)
		h_node_boot_log(net, i + 1, voters, n, logs[i], lens[i], hs_terms[i], 1);
	h_drain_all(net);
}

static void test_follower_truncates_conflicting_suffix(void **state)
{
	(void)state;
	static const uint64_t lead[] = {2, 2, 3};
	static const uint64_t other[] = {2, 2, 2, 2, 2};
	const uint64_t *logs[] = {lead, other, lead};
	const size_t lens[] = {3, 5, 3};
	const uint64_t hs[] = {3, 2, 3};
	h_net_t *net = h_net_alloc(cfg_plain);
	boot_logs(net, logs, lens, hs, 3);
	h_elect(net, 1);
	h_stabilize(net);
	assert_true(h_logs_equal(net, 1, 2));
	assert_int_equal(h_log_term(net, 2, 4), 3);
	assert_int_equal(h_applied_count(net, 2, "e5/t2"), 0);
	assert_int_equal(h_applied_count(net, 2, "e6/t2"), 0);
	assert_int_equal(h_applied_count(net, 2, "e4/t3"), 1);
	h_net_free(net);
}

/* Figure 7 of the Raft paper: a leader for term 8 and followers (a)-(f). Index 1 is the
 * snapshot, so each array starts at index 2 (the paper's log from its second entry). */
static void test_leader_brings_every_figure7_follower_in_line(void **state)
{
	(void)state;
	static const uint64_t leader[] = {1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const uint64_t fa[] = {1, 1, 4, 4, 5, 5, 6, 6};
	static const uint64_t fb[] = {1, 1, 4};
	static const uint64_t fc[] = {1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	static const uint64_t fd[] = {1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
	static const uint64_t fe[] = {1, 1, 4, 4, 4, 4};
	static const uint64_t ff[] = {1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	const uint64_t *followers[] = {fa, fb, fc, fd, fe, ff};
	const size_t flens[] = {8, 3, 10, 11, 6, 10};
	const uint64_t fterms[] = {6, 4, 6, 7, 4, 3};
	for (size_t c = 0; c < 6; c++) {
		const uint64_t *logs[] = {leader, followers[c], leader};
		const size_t lens[] = {9, flens[c], 9};
		const uint64_t hs[] = {8, fterms[c], 8};
		h_net_t *net = h_net_alloc(cfg_plain);
		boot_logs(net, logs, lens, hs, 3);
		h_elect(net, 1);
		assert_int_equal(h_propose(net, 1, "after"), RAFT_OK);
		h_stabilize(net);
		assert_true(h_logs_equal(net, 1, 2));
		assert_int_equal(h_applied_count(net, 2, "after"), 1);
		assert_int_equal(h_status(net, 2).commit, h_status(net, 1).last_index);
		h_net_free(net);
	}
}

static void test_fast_backtracking_fixes_divergent_log_in_few_round_trips(void **state)
{
	(void)state;
	uint64_t old[60], fresh[30];
	for (size_t i = 0; i < 60; i++)
		old[i] = 2;
	for (size_t i = 0; i < 30; i++)
		fresh[i] = 3;
	const uint64_t *logs[] = {old, fresh, fresh};
	const size_t lens[] = {60, 30, 30};
	const uint64_t hs[] = {2, 3, 3};
	h_net_t *net = h_net_alloc(cfg_plain);
	boot_logs(net, logs, lens, hs, 3);
	h_reset_sent(net);
	h_elect(net, 2);
	assert_true(h_logs_equal(net, 1, 2));
	assert_int_equal(h_last_index(net, 1), 32);
	assert_true(h_sent(net, RAFT_MSG_APP, 2, 1) <= 4);
	h_net_free(net);
}

static void test_lagging_follower_catches_up_in_few_round_trips(void **state)
{
	(void)state;
	uint64_t full[100];
	for (size_t i = 0; i < 100; i++)
		full[i] = 2;
	const uint64_t *logs[] = {full, full, full};
	const size_t lens[] = {100, 100, 0};
	const uint64_t hs[] = {2, 2, 2};
	h_net_t *net = h_net_alloc(cfg_plain);
	boot_logs(net, logs, lens, hs, 3);
	h_reset_sent(net);
	h_elect(net, 1);
	assert_true(h_logs_equal(net, 1, 3));
	assert_true(h_sent(net, RAFT_MSG_APP, 1, 3) <= 3);
	assert_int_equal(h_applied_count(net, 3, "e50/t2"), 1);
	h_net_free(net);
}

static void test_report_unreachable_moves_follower_to_probe(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(progress_state(net, 1, 2, NULL, NULL), RAFT_PROGRESS_REPLICATE);
	raft_report_unreachable(h_raft(net, 1), 2);
	assert_int_equal(progress_state(net, 1, 2, NULL, NULL), RAFT_PROGRESS_PROBE);
	/* unknown ids and non-leaders ignore the report */
	raft_report_unreachable(h_raft(net, 1), 7);
	raft_report_unreachable(h_raft(net, 2), 3);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_tick_stabilize(net, 2);
	assert_int_equal(progress_state(net, 1, 2, NULL, NULL), RAFT_PROGRESS_REPLICATE);
	assert_true(h_logs_equal(net, 1, 2));
	h_net_free(net);
}

typedef struct sync_watch {
	size_t entry_readies;
} sync_watch_t;

static void hook_entries_must_sync(h_net_t *net, h_node_t *nd, const raft_ready_t *rd,
				   void *arg)
{
	(void)net;
	(void)nd;
	sync_watch_t *w = arg;
	if (rd->n_entries > 0) {
		assert_true(rd->must_sync);
		w->entry_readies++;
	}
}

static void test_leader_persists_entries_with_must_sync(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	sync_watch_t w = {0};
	h_set_ready_hook(net, hook_entries_must_sync, &w);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	assert_true(w.entry_readies >= 4);
	h_net_free(net);
}

/* Steps an append of n entries (terms[i]) after (index, log_term) into node `to`. */
static void step_append(h_net_t *net, uint64_t from, uint64_t to, uint64_t term,
			uint64_t index, uint64_t log_term, const uint64_t *terms, size_t n)
{
	raft_entry_t *ents[8];
	for (size_t i = 0; i < n; i++)
		ents[i] = raft_entry_new(terms[i], index + 1 + i, RAFT_ENTRY_NORMAL, "u", 1);
	raft_msg_t m = h_msg(RAFT_MSG_APP, from, to, term);
	m.index = index;
	m.log_term = log_term;
	m.entries = ents;
	m.n_entries = n;
	assert_int_equal(raft_step(h_raft(net, to), &m), RAFT_OK);
	for (size_t i = 0; i < n; i++)
		raft_entry_free(ents[i]);
}

static void test_follower_replaces_unpersisted_conflicting_entries(void **state)
{
	(void)state;
	for (int variant = 0; variant < 2; variant++) {
		h_net_t *net = h_net_new(3, 0, cfg_plain);
		h_elect(net, 1);
		raft_status_t st = h_status(net, 2);
		uint64_t t = st.term, l = st.last_index, lt = h_log_term(net, 2, l);
		const uint64_t first[] = {t, t, t};
		const uint64_t second[] = {t + 1, t + 1};
		step_append(net, 1, 2, t, l, lt, first, 3);
		if (variant == 0) /* conflict at the first unpersisted entry */
			step_append(net, 3, 2, t + 1, l, lt, second, 2);
		else /* conflict in the middle of the unpersisted entries */
			step_append(net, 3, 2, t + 1, l + 1, t, second, 2);
		h_drain(net, 2);
		uint64_t want_last = variant == 0 ? l + 2 : l + 3;
		assert_int_equal(h_last_index(net, 2), want_last);
		assert_int_equal(h_log_term(net, 2, want_last), t + 1);
		assert_int_equal(h_log_term(net, 2, l + 1), variant == 0 ? t + 1 : t);
		h_net_free(net);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proposals_replicate_to_every_node_in_order),
		cmocka_unit_test(test_proposal_appends_at_next_index_with_leader_term),
		cmocka_unit_test(test_progress_probe_then_replicate),
		cmocka_unit_test(test_progress_query_errors),
		cmocka_unit_test(test_probe_sends_one_append_until_answered),
		cmocka_unit_test(test_inflight_limit_bounds_pipelining),
		cmocka_unit_test(test_inflight_slots_free_on_acknowledgement),
		cmocka_unit_test(test_max_size_per_msg_batches_entries),
		cmocka_unit_test(test_zero_max_size_sends_one_entry_per_append),
		cmocka_unit_test(test_heartbeats_every_heartbeat_tick),
		cmocka_unit_test(test_heartbeat_commit_never_exceeds_follower_match),
		cmocka_unit_test(test_follower_rejects_append_with_missing_prev),
		cmocka_unit_test(test_follower_accepts_duplicate_append_idempotently),
		cmocka_unit_test(test_follower_ignores_append_from_stale_term),
		cmocka_unit_test(test_follower_truncates_conflicting_suffix),
		cmocka_unit_test(test_leader_brings_every_figure7_follower_in_line),
		cmocka_unit_test(test_fast_backtracking_fixes_divergent_log_in_few_round_trips),
		cmocka_unit_test(test_lagging_follower_catches_up_in_few_round_trips),
		cmocka_unit_test(test_report_unreachable_moves_follower_to_probe),
		cmocka_unit_test(test_leader_persists_entries_with_must_sync),
		cmocka_unit_test(test_follower_replaces_unpersisted_conflicting_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
