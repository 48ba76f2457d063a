/* tests/unit/test_node.c — the node as a whole: proposal forwarding and refusal, restart
 * from storage, bootstrap from config peers, config validation, raft_step's refusal of
 * local or malformed messages, and the Ready/advance cycle itself. */
#include "harness.h"

#include <string.h>

static void cfg_no_forwarding(raft_config_t *cfg)
{
	cfg->disable_proposal_forwarding = true;
}

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

/* ---- proposals --------------------------------------------------------------------- */

static void test_follower_forwards_proposal_to_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 2, "via-2"), RAFT_OK);
	h_drain(net, 2);
	raft_msg_t *m[2];
	assert_int_equal(h_take(net, RAFT_MSG_PROP, 2, 1, m, 2), 1);
	assert_int_equal(m[0]->n_entries, 1);
	assert_memory_equal(m[0]->entries[0]->data.data, "via-2", 5);
	h_send(net, m[0]);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(h_applied_count(net, id, "via-2"), 1);
	h_net_free(net);
}

static void test_disabled_forwarding_refuses_proposal_on_follower(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_no_forwarding);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 2, "refused"), RAFT_ERR_PROPOSAL_DROPPED);
	h_drain(net, 2);
	assert_int_equal(h_count(net, RAFT_MSG_PROP, 2, H_ANY), 0);
	assert_int_equal(h_propose(net, 1, "accepted"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 2, "accepted"), 1);
	h_net_free(net);
}

static void test_propose_without_leader_fails(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_ERR_NO_LEADER);
	assert_int_equal(h_propose_cc(net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_ERR_NO_LEADER);
	h_drain(net, 1);
	assert_int_equal(h_count(net, H_ANY_TYPE, 1, H_ANY), 0);
	h_net_free(net);
}

static void test_candidate_refuses_proposal(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_isolate(net, 1);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	assert_int_not_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_net_free(net);
}

static void test_leader_accepts_forwarded_proposal_from_peer_message(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_entry_t *e = raft_entry_new(0, 0, RAFT_ENTRY_NORMAL, "raw", 3);
	raft_msg_t m = h_msg(RAFT_MSG_PROP, 3, 1, 0);
	m.entries = &e;
	m.n_entries = 1;
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_OK);
	raft_entry_free(e);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 3, "raw"), 1);
	h_net_free(net);
}

static void test_empty_proposal_is_replicated(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t last = h_status(net, 1).last_index;
	assert_int_equal(raft_propose(h_raft(net, 1), NULL, 0), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 3).commit, last + 1);
	h_net_free(net);
}

/* ---- restart ----------------------------------------------------------------------- */

static void test_restart_restores_hard_state_and_log(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(h_propose(net, 1, "durable"), RAFT_OK);
	h_stabilize(net);
	raft_status_t before = h_status(net, 2);
	h_restart(net, 2);
	raft_status_t after = h_status(net, 2);
	assert_int_equal(after.term, before.term);
	assert_int_equal(after.vote, before.vote);
	assert_int_equal(after.vote, 1);
	assert_int_equal(after.commit, before.commit);
	assert_int_equal(after.last_index, before.last_index);
	assert_int_equal(after.applied, before.applied);
	assert_int_equal(after.state, RAFT_FOLLOWER);
	assert_int_equal(after.conf.n_voters, 3);
	size_t applied = h_node(net, 2)->n_ents;
	h_drain(net, 2);
	assert_int_equal(h_node(net, 2)->n_ents, applied); /* nothing applied twice */
	h_net_free(net);
}

static void test_restart_with_zero_applied_replays_committed_entries(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_propose(net, 1, "replay"), RAFT_OK);
	h_stabilize(net);
	uint64_t commit = h_status(net, 3).commit;
	h_stop(net, 3);
	h_node_t *nd = h_node(net, 3);
	for (size_t i = 0; i < nd->n_ents; i++)
		raft_entry_free(nd->ents[i]);
	nd->n_ents = 0;
	nd->applied = 0;
	h_start(net, 3);
	h_drain(net, 3);
	assert_int_equal(nd->applied, commit);
	assert_int_equal(h_applied_count(net, 3, "replay"), 3);
	assert_int_equal(nd->ents[0]->index, 1);
	h_net_free(net);
}

static void test_restarted_follower_catches_up(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_stop(net, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_propose(net, 1, "missed"), RAFT_OK);
	h_stabilize(net);
	h_start(net, 3);
	h_tick_stabilize(net, 3);
	assert_true(h_logs_equal(net, 1, 3));
	assert_int_equal(h_applied_count(net, 3, "missed"), 5);
	h_net_free(net);
}

static void test_whole_cluster_restart_keeps_committed_data(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 2);
	assert_int_equal(h_propose(net, 2, "kept"), RAFT_OK);
	h_stabilize(net);
	uint64_t term = h_term(net, 2);
	for (uint64_t id = 1; id <= 3; id++)
		h_restart(net, id);
	assert_int_equal(h_count_leaders(net), 0);
	h_tick_stabilize(net, 40);
	uint64_t lead = h_leader(net);
	assert_int_not_equal(lead, 0);
	assert_true(h_term(net, lead) > term);
	assert_int_equal(h_propose(net, lead, "new"), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++) {
		assert_int_equal(h_applied_count(net, id, "kept"), 1);
		assert_int_equal(h_applied_count(net, id, "new"), 1);
	}
	h_net_free(net);
}

static void test_restarted_leader_comes_back_as_follower(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_restart(net, 1);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.state, RAFT_FOLLOWER);
	assert_int_equal(st.lead, RAFT_NONE);
	h_tick_stabilize(net, 40);
	assert_int_equal(h_count_leaders(net), 1);
	h_net_free(net);
}

/* ---- bootstrap --------------------------------------------------------------------- */

typedef struct boot_watch {
	size_t readies;
	size_t entries;
	size_t committed;
	raft_hard_state_t hs;
	bool hs_seen;
} boot_watch_t;

static void hook_boot(h_net_t *net, h_node_t *nd, const raft_ready_t *rd, void *arg)
{
	(void)net;
	(void)nd;
	boot_watch_t *w = arg;
	w->readies++;
	w->entries += rd->n_entries;
	w->committed += rd->n_committed;
	if (rd->hard_state_changed) {
		w->hs = rd->hard_state;
		w->hs_seen = true;
	}
	for (size_t i = 0; i < rd->n_entries; i++)
		assert_int_equal(rd->entries[i]->term, 1);
}

static void check_boot_entry(h_net_t *net, uint64_t index, int type, uint64_t node_id)
{
	raft_storage_t s = raft_memstorage_storage(h_node(net, 1)->ms);
	raft_entry_t *out[1];
	size_t n = 0;
	assert_int_equal(s.ops->entries(s.ctx, index, index + 1, UINT64_MAX, out, &n), RAFT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(out[0]->type, RAFT_ENTRY_CONF_CHANGE);
	assert_int_equal(out[0]->term, 1);
	raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, out[0]->data.len,
							      out[0]->data.data);
	assert_non_null(cc);
	assert_int_equal(cc->type, type);
	assert_int_equal(cc->node_id, node_id);
	raftpb__conf_change__free_unpacked(cc, NULL);
}

static void test_bootstrap_writes_one_committed_conf_entry_per_member(void **state)
{
	(void)state;
	h_net_t *net = h_net_alloc(NULL);
	boot_watch_t w = {0};
	h_set_ready_hook(net, hook_boot, &w);
	uint64_t peers[] = {1, 2, 3};
	uint64_t learners[] = {4};
	h_node_boot(net, 1, peers, 3, learners, 1);
	h_drain(net, 1);
	assert_int_equal(w.entries, 4);
	assert_int_equal(w.committed, 4);
	assert_true(w.hs_seen);
	assert_int_equal(w.hs.term, 1);
	assert_int_equal(w.hs.commit, 4);
	assert_int_equal(h_last_index(net, 1), 4);
	check_boot_entry(net, 1, RAFT_CONF_ADD_NODE, 1);
	check_boot_entry(net, 2, RAFT_CONF_ADD_NODE, 2);
	check_boot_entry(net, 3, RAFT_CONF_ADD_NODE, 3);
	check_boot_entry(net, 4, RAFT_CONF_ADD_LEARNER, 4);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.term, 1);
	assert_int_equal(st.commit, 4);
	assert_int_equal(st.state, RAFT_FOLLOWER);
	assert_int_equal(st.conf.n_voters, 3);
	assert_int_equal(st.conf.n_learners, 1);
	assert_true(raft_conf_is_learner(&st.conf, 4));
	raft_conf_t applied;
	raft_applied_conf(h_raft(net, 1), &applied);
	assert_int_equal(applied.n_voters, 3);
	h_net_free(net);
}

static void test_bootstrap_ignored_when_storage_has_state(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_node_t *nd = h_node(net, 2);
	for (size_t i = 0; i < 5; i++)
		nd->peers[i] = i + 1;
	nd->n_peers = 5;
	uint64_t last = h_status(net, 2).last_index;
	h_restart(net, 2);
	h_drain(net, 2);
	raft_status_t st = h_status(net, 2);
	assert_int_equal(st.conf.n_voters, 3);
	assert_int_equal(st.last_index, last);
	h_net_free(net);
}

static void test_node_without_peers_or_state_waits_to_be_added(void **state)
{
	(void)state;
	h_net_t *net = h_net_alloc(NULL);
	h_node_join(net, 1);
	h_tick_stabilize(net, 50);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.state, RAFT_FOLLOWER);
	assert_int_equal(st.conf.n_voters, 0);
	assert_int_equal(st.last_index, 0);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_ERR_NO_LEADER);
	h_net_free(net);
}

/* ---- config validation ------------------------------------------------------------- */

typedef void (*cfg_breaker_fn)(raft_config_t *cfg);

static void break_id(raft_config_t *cfg) { cfg->id = RAFT_NONE; }
static void break_heartbeat_ge_election(raft_config_t *cfg) { cfg->heartbeat_tick = cfg->election_tick; }
static void break_heartbeat_zero(raft_config_t *cfg) { cfg->heartbeat_tick = 0; }
static void break_election_zero(raft_config_t *cfg) { cfg->election_tick = 0; }
static void break_too_many_peers(raft_config_t *cfg)
{
	static uint64_t many[RAFT_MAX_NODES + 1];
	for (size_t i = 0; i <= RAFT_MAX_NODES; i++)
		many[i] = i + 1;
	cfg->peers = many;
	cfg->n_peers = RAFT_MAX_NODES + 1;
}
static void break_storage(raft_config_t *cfg) { cfg->storage.ops = NULL; }
static void break_lease(raft_config_t *cfg)
{
	cfg->read_only_option = RAFT_READ_LEASE;
	cfg->check_quorum = false;
}

static void test_invalid_configs_refused(void **state)
{
	(void)state;
	static const cfg_breaker_fn breakers[] = {
		break_id, break_heartbeat_ge_election, break_heartbeat_zero, break_election_zero,
		break_too_many_peers, break_storage, break_lease,
	};
	uint64_t peers[] = {1, 2, 3};
	for (size_t i = 0; i < sizeof(breakers) / sizeof(breakers[0]); i++) {
		raft_memstorage_t *ms = raft_memstorage_new();
		raft_config_t cfg;
		raft_config_default(&cfg, 1, raft_memstorage_storage(ms));
		cfg.peers = peers;
		cfg.n_peers = 3;
		breakers[i](&cfg);
		raft_node_t *n = NULL;
		assert_int_equal(raft_node_new(&cfg, &n), RAFT_ERR_INVALID_CONFIG);
		assert_null(n);
		raft_memstorage_free(ms);
	}
}

static void test_config_defaults(void **state)
{
	(void)state;
	raft_memstorage_t *ms = raft_memstorage_new();
	raft_config_t cfg;
	raft_config_default(&cfg, 7, raft_memstorage_storage(ms));
	assert_int_equal(cfg.id, 7);
	assert_int_equal(cfg.election_tick, 10);
	assert_int_equal(cfg.heartbeat_tick, 1);
	assert_int_equal(cfg.max_size_per_msg, 1024 * 1024);
	assert_int_equal(cfg.max_inflight_msgs, 256);
	assert_true(cfg.pre_vote);
	assert_true(cfg.check_quorum);
	assert_int_equal(cfg.read_only_option, RAFT_READ_SAFE);
	assert_false(cfg.disable_proposal_forwarding);
	assert_int_equal(cfg.n_peers, 0);
	raft_memstorage_free(ms);
}

/* ---- raft_step --------------------------------------------------------------------- */

static void test_step_refuses_local_message_types_from_peers(void **state)
{
	(void)state;
	static const int local[] = {
		RAFT_MSG_HUP, RAFT_MSG_BEAT, RAFT_MSG_UNREACHABLE, RAFT_MSG_SNAP_STATUS,
		RAFT_MSG_CHECK_QUORUM,
	};
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t before = h_status(net, 2);
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		for (uint64_t to = 1; to <= 2; to++) {
			raft_msg_t m = h_msg(local[i], 3, to, before.term);
			assert_int_equal(raft_step(h_raft(net, to), &m), RAFT_ERR_STEP_LOCAL_MSG);
		}
	}
	h_stabilize(net);
	raft_status_t after = h_status(net, 2);
	assert_int_equal(after.term, before.term);
	assert_int_equal(after.state, RAFT_FOLLOWER);
	assert_int_equal(h_leader(net), 1);
	h_net_free(net);
}

static void test_step_response_from_unknown_peer(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	raft_msg_t m = h_msg(RAFT_MSG_APP_RESP, 9, 1, t);
	m.index = 3;
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_ERR_STEP_PEER_NOT_FOUND);
	m = h_msg(RAFT_MSG_HEARTBEAT_RESP, 9, 1, t);
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_ERR_STEP_PEER_NOT_FOUND);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

static void test_step_rejects_append_with_entries_out_of_order(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	raft_entry_t *e[2];
	e[0] = raft_entry_new(st.term, st.last_index + 2, RAFT_ENTRY_NORMAL, "b", 1);
	e[1] = raft_entry_new(st.term, st.last_index + 1, RAFT_ENTRY_NORMAL, "a", 1);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 1, 2, st.term);
	m.index = st.last_index;
	m.log_term = h_log_term(net, 2, st.last_index);
	m.entries = e;
	m.n_entries = 2;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_ERR_INVALID_MSG);
	/* entries that do not start right after index */
	e[0]->index = st.last_index + 3;
	e[1]->index = st.last_index + 4;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_ERR_INVALID_MSG);
	/* a term that goes backwards */
	e[0]->index = st.last_index + 1;
	e[1]->index = st.last_index + 2;
	e[0]->term = st.term;
	e[1]->term = st.term - 1;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_ERR_INVALID_MSG);
	raft_entry_free(e[0]);
	raft_entry_free(e[1]);
	h_drain(net, 2);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	h_net_free(net);
}

static void test_step_survives_snapshot_message_without_snapshot(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	raft_msg_t m = h_msg(RAFT_MSG_SNAP, 1, 2, st.term);
	int rc = raft_step(h_raft(net, 2), &m);
	assert_true(rc == RAFT_ERR_INVALID_MSG || rc == RAFT_OK);
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT; /* no metadata */
	m.snapshot = &snap;
	rc = raft_step(h_raft(net, 2), &m);
	assert_true(rc == RAFT_ERR_INVALID_MSG || rc == RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(h_node(net, 2)->n_snaps, 0);
	assert_int_equal(h_status(net, 2).last_index, st.last_index);
	h_net_free(net);
}

static void test_step_ignores_message_to_the_wrong_term_leader(void **state)
{
	(void)state;
	/* an old leader's heartbeat after a new election changes nothing */
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t old = h_term(net, 1);
	assert_int_equal(raft_transfer_leader(h_raft(net, 1), 2), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_leader(net), 2);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 1, 3, old);
	m.commit = 1;
	assert_int_equal(raft_step(h_raft(net, 3), &m), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_status(net, 3).lead, 2);
	assert_int_equal(h_leader(net), 2);
	h_net_free(net);
}

/* ---- Ready cycle ------------------------------------------------------------------- */

typedef struct soft_watch {
	uint64_t lead;
	raft_state_t state;
	size_t changes;
} soft_watch_t;

static void hook_soft(h_net_t *net, h_node_t *nd, const raft_ready_t *rd, void *arg)
{
	(void)net;
	soft_watch_t *w = arg;
	if (nd->id != 3 || !rd->soft_state_changed)
		return;
	w->lead = rd->lead;
	w->state = rd->state;
	w->changes++;
}

static void test_ready_reports_soft_state_changes(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	soft_watch_t w = {0};
	h_set_ready_hook(net, hook_soft, &w);
	h_elect(net, 1);
	assert_true(w.changes >= 1);
	assert_int_equal(w.lead, 1);
	assert_int_equal(w.state, RAFT_FOLLOWER);
	size_t changes = w.changes;
	h_tick_stabilize(net, 3);
	assert_int_equal(w.changes, changes);
	assert_int_equal(raft_transfer_leader(h_raft(net, 1), 3), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(w.lead, 3);
	assert_int_equal(w.state, RAFT_LEADER);
	h_net_free(net);
}

static void test_no_ready_once_everything_is_acknowledged(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	for (uint64_t id = 1; id <= 3; id++)
		assert_false(raft_has_ready(h_raft(net, id)));
	raft_status_t st = h_status(net, 2);
	assert_int_equal(st.id, 2);
	assert_int_equal(st.applied, st.commit);
	assert_int_equal(st.first_index, 1);
	h_net_free(net);
}

static void test_manual_ready_cycle_persists_then_applies(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "once"), RAFT_OK);
	raft_ready_t rd;
	assert_true(raft_has_ready(h_raft(net, 1)));
	assert_int_equal(raft_ready(h_raft(net, 1), &rd), RAFT_OK);
	assert_int_equal(rd.n_entries, 1);
	assert_int_equal(raft_memstorage_append(h_node(net, 1)->ms, rd.entries, rd.n_entries),
			 RAFT_OK);
	for (size_t i = 0; i < rd.n_msgs; i++)
		raft_msg_free(rd.msgs[i]);
	raft_advance(h_raft(net, 1), &rd);
	h_drain(net, 1);
	assert_int_equal(h_applied_count(net, 1, "once"), 1);
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follower_forwards_proposal_to_leader),
		cmocka_unit_test(test_disabled_forwarding_refuses_proposal_on_follower),
		cmocka_unit_test(test_propose_without_leader_fails),
		cmocka_unit_test(test_candidate_refuses_proposal),
		cmocka_unit_test(test_leader_accepts_forwarded_proposal_from_peer_message),
		cmocka_unit_test(test_empty_proposal_is_replicated),
		cmocka_unit_test(test_restart_restores_hard_state_and_log),
		cmocka_unit_test(test_restart_with_zero_applied_replays_committed_entries),
		cmocka_unit_test(test_restarted_follower_catches_up),
		cmocka_unit_test(test_whole_cluster_restart_keeps_committed_data),
		cmocka_unit_test(test_restarted_leader_comes_back_as_follower),
		cmocka_unit_test(test_bootstrap_writes_one_committed_conf_entry_per_member),
		cmocka_unit_test(test_bootstrap_ignored_when_storage_has_state),
		cmocka_unit_test(test_node_without_peers_or_state_waits_to_be_added),
		cmocka_unit_test(test_invalid_configs_refused),
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_step_refuses_local_message_types_from_peers),
		cmocka_unit_test(test_step_response_from_unknown_peer),
		cmocka_unit_test(test_step_rejects_append_with_entries_out_of_order),
		cmocka_unit_test(test_step_survives_snapshot_message_without_snapshot),
		cmocka_unit_test(test_step_ignores_message_to_the_wrong_term_leader),
		cmocka_unit_test(test_ready_reports_soft_state_changes),
		cmocka_unit_test(test_no_ready_once_everything_is_acknowledged),
		cmocka_unit_test(test_manual_ready_cycle_persists_then_applies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
