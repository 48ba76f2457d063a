/* tests/unit/test_oom.c — allocation-failure injection: a scenario runs once per core
 * allocation (malloc/calloc/realloc wrapped at link time), failing exactly that one; the core
 * must report or absorb it, never crash or leak, and the cluster must recover afterwards. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static bool g_armed;          /* inside a core call */
static size_t g_countdown;    /* >0: the armed allocation that brings it to 0 fails */
static size_t g_armed_allocs; /* armed allocations seen in this run */
static size_t g_failures;     /* allocations failed in this run */

static bool oom_fail_now(void)
{
	if (!g_armed)
		return false;
	g_armed_allocs++;
	if (g_countdown > 0 && --g_countdown == 0) {
		g_failures++;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t size)
{
	return oom_fail_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return oom_fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return oom_fail_now() ? NULL : __real_realloc(p, size);
}

#define ARMED(call) (g_armed = true, oom_rc = (call), g_armed = false, oom_rc)
static int oom_rc;

static void oom_check_rc(int rc)
{
	assert_true(rc == RAFT_OK || rc == RAFT_ERR_NOMEM || rc == RAFT_ERR_NO_LEADER ||
		    rc == RAFT_ERR_PROPOSAL_DROPPED || rc == RAFT_ERR_CONF_CHANGE_PENDING ||
		    rc == RAFT_ERR_STEP_PEER_NOT_FOUND);
}

static int oom_tick(raft_node_t *n)
{
	raft_tick(n);
	return RAFT_OK;
}

/* Drains Readies and delivers messages with every core call armed. */
static void oom_deliver_all(h_net_t *net)
{
	for (int round = 0; round < 200; round++) {
		bool moved = false;
		for (uint64_t id = 1; id <= H_MAX_NODES; id++) {
			h_node_t *nd = h_node(net, id);
			for (int i = 0; nd->raft && raft_has_ready(nd->raft) && i < 50; i++) {
				raft_ready_t rd;
				memset(&rd, 0, sizeof(rd));
				if (ARMED(raft_ready(nd->raft, &rd)) != RAFT_OK) {
					assert_int_equal(oom_rc, RAFT_ERR_NOMEM);
					continue;
				}
				h_ready_handle(net, nd, &rd);
				moved = true;
			}
		}
		raft_msg_t *batch[512];
		size_t n = h_take(net, H_ANY_TYPE, H_ANY, H_ANY, batch, 512);
		for (size_t i = 0; i < n; i++) {
			raft_msg_t *m = batch[i];
			raft_node_t *to = m->to <= H_MAX_NODES ? h_node(net, m->to)->raft : NULL;
			if (to && !net->cut[m->from][m->to])
				oom_check_rc(ARMED(raft_step(to, m)));
			raft_msg_free(m);
		}
		if (!moved && n == 0)
			return;
	}
}

static void oom_tick_round(h_net_t *net, int n)
{
	for (int i = 0; i < n; i++) {
		for (uint64_t id = 1; id <= H_MAX_NODES; id++)
			if (h_node(net, id)->raft)
				(void)ARMED(oom_tick(h_node(net, id)->raft));
		oom_deliver_all(net);
	}
}

static uint64_t oom_wait_leader(h_net_t *net)
{
	for (int i = 0; i < 60 && h_leader(net) == 0; i++)
		oom_tick_round(net, 1);
	return h_leader(net);
}

static int oom_propose(h_net_t *net, uint64_t id, const char *s)
{
	return ARMED(raft_propose(h_raft(net, id), s, strlen(s)));
}

/* The scenario: election, proposals, a read, a conf change, a snapshot to a lagging
 * follower and a leadership transfer — with the core's allocations under test. */
static void oom_scenario(h_net_t *net)
{
	oom_check_rc(ARMED(raft_campaign(h_raft(net, 1))));
	oom_deliver_all(net);
	uint64_t lead = oom_wait_leader(net);
	if (!lead)
		return;
	for (int i = 0; i < 3; i++)
		oom_check_rc(oom_propose(net, lead, "oom"));
	oom_check_rc(ARMED(raft_read_index(h_raft(net, lead), "rd", 2)));
	Raftpb__ConfChange cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)RAFT_CONF_ADD_LEARNER;
	cc.node_id = 4;
	oom_check_rc(ARMED(raft_propose_conf_change(h_raft(net, lead), &cc)));
	oom_deliver_all(net);
	uint64_t lag = lead % 3 + 1;
	h_isolate(net, lag);
	for (int i = 0; i < 4; i++)
		oom_check_rc(oom_propose(net, lead, "oom"));
	oom_deliver_all(net);
	if (h_node(net, lead)->raft && h_state(net, lead) == RAFT_LEADER)
		h_compact(net, lead);
	h_heal(net);
	oom_tick_round(net, 4);
	lead = oom_wait_leader(net);
	if (!lead)
		return;
	oom_check_rc(ARMED(raft_transfer_leader(h_raft(net, lead), lead % 3 + 1)));
	oom_deliver_all(net);
	oom_tick_round(net, 3);
}

/* After the scenario, with allocations working again, the cluster must recover. */
static void oom_check_recovers(h_net_t *net)
{
	h_heal(net);
	h_tick_stabilize(net, 60);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	assert_int_equal(h_propose(net, lead, "final"), RAFT_OK);
	h_tick_stabilize(net, 3);
	for (uint64_t id = 1; id <= 3; id++) {
		assert_true(h_logs_equal(net, lead, id));
		assert_int_equal(h_applied_count(net, id, "final"), 1);
	}
}

static size_t oom_run(size_t countdown)
{
	g_countdown = countdown;
	g_armed_allocs = 0;
	g_failures = 0;
	h_net_t *net = h_net_new(3, 0, NULL);
	oom_scenario(net);
	g_countdown = 0;
	oom_check_recovers(net);
	h_net_free(net);
	return g_armed_allocs;
}

static void test_core_survives_each_allocation_failing(void **state)
{
	(void)state;
	size_t total = oom_run(0);
	assert_true(total > 100);
	size_t stride = total > 4000 ? total / 4000 + 1 : 1;
	size_t injected = 0;
	for (size_t k = 1; k <= total; k += stride) {
		oom_run(k);
		injected += g_failures;
	}
	assert_true(injected > 0);
}

/* Storage with a snapshot, a conf change in the log and a hard state, for restarts. */
static raft_memstorage_t *oom_storage_new(void)
{
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(h_propose(net, 1, "s"), RAFT_OK);
	h_stabilize(net);
	h_compact(net, 1);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_LEARNER, 4), RAFT_OK);
	assert_int_equal(h_propose(net, 1, "t"), RAFT_OK);
	h_stabilize(net);
	raft_memstorage_t *ms = h_node(net, 1)->ms;
	h_node(net, 1)->ms = NULL; /* keep it past the net */
	h_stop(net, 1);
	h_net_free(net);
	return ms;
}

static void test_node_new_survives_each_allocation_failing(void **state)
{
	(void)state;
	raft_memstorage_t *ms = oom_storage_new();
	raft_config_t cfg;
	raft_config_default(&cfg, 1, raft_memstorage_storage(ms));
	size_t ok = 0;
	for (size_t k = 1; k < 400; k++) {
		raft_node_t *n = NULL;
		g_countdown = k;
		g_failures = 0;
		int rc = ARMED(raft_node_new(&cfg, &n));
		g_countdown = 0;
		if (rc == RAFT_OK) {
			assert_non_null(n);
			raft_status_t st;
			raft_status(n, &st);
			assert_int_equal(st.conf.n_voters, 3);
			assert_int_equal(st.conf.n_learners, 1);
			raft_node_free(n);
			ok++;
			if (g_failures == 0)
				break; /* k is past the last allocation */
		} else {
			assert_int_equal(rc, RAFT_ERR_NOMEM);
			assert_null(n);
		}
	}
	assert_true(ok >= 1);
	raft_memstorage_free(ms);
}

static raft_msg_t *oom_big_msg(void)
{
	raft_entry_t *ents[2] = {
		raft_entry_new(2, 1, RAFT_ENTRY_NORMAL, "abc", 3),
		raft_entry_new(2, 2, RAFT_ENTRY_NORMAL, "def", 3),
	};
	uint64_t voters[] = {1, 2};
	uint64_t learners[] = {3};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = voters;
	cs.n_voters = 2;
	cs.learners = learners;
	cs.n_learners = 1;
	md.conf_state = &cs;
	md.index = 4;
	md.term = 2;
	snap.metadata = &md;
	snap.data.data = (uint8_t *)"snap";
	snap.data.len = 4;
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, 2);
	m.entries = ents;
	m.n_entries = 2;
	m.snapshot = &snap;
	m.context.data = (uint8_t *)"ctx";
	m.context.len = 3;
	raft_msg_t *c = raft_msg_clone(&m);
	raft_entry_free(ents[0]);
	raft_entry_free(ents[1]);
	return c;
}

static void test_helpers_survive_each_allocation_failing(void **state)
{
	(void)state;
	raft_msg_t *m = oom_big_msg();
	assert_non_null(m);
	raft_conf_t conf = {.n_voters = 2, .voters = {1, 2}, .n_learners = 1, .learners = {3}};
	for (size_t k = 1; k < 40; k++) {
		g_countdown = k;
		g_armed = true;
		raft_msg_t *c = raft_msg_clone(m);
		raft_snapshot_t *s = raft_snapshot_clone(m->snapshot);
		raft_entry_t *e = raft_entry_clone(m->entries[0]);
		Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
		int crc = raft_conf_to_state(&conf, &cs);
		raft_memstorage_t *ms = raft_memstorage_new();
		g_armed = false;
		if (ms) {
			g_armed = true;
			int rc = raft_memstorage_append(ms, m->entries, m->n_entries);
			if (rc == RAFT_OK)
				rc = raft_memstorage_create_snapshot(ms, 2, &conf, "x", 1);
			if (rc == RAFT_OK)
				rc = raft_memstorage_compact(ms, 2);
			int arc = raft_memstorage_apply_snapshot(ms, m->snapshot);
			g_armed = false;
			assert_true(rc == RAFT_OK || rc == RAFT_ERR_NOMEM);
			assert_true(arc == RAFT_OK || arc == RAFT_ERR_NOMEM ||
				    arc == RAFT_ERR_SNAP_OUT_OF_DATE);
		}
		g_countdown = 0;
		raft_msg_free(c);
		raft_snapshot_free(s);
		raft_entry_free(e);
		if (crc == RAFT_OK)
			raft_conf_state_clear(&cs);
		else
			assert_int_equal(crc, RAFT_ERR_NOMEM);
		raft_memstorage_free(ms);
	}
	raft_msg_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_survives_each_allocation_failing),
		cmocka_unit_test(test_node_new_survives_each_allocation_failing),
		cmocka_unit_test(test_helpers_survive_each_allocation_failing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
