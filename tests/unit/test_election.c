/* tests/unit/test_election.c — leader election (Raft §5.2, §5.4.1): randomized timeouts,
 * terms, durable votes, one vote per term, up-to-date logs, split votes; pre-vote and
 * check-quorum (thesis §9.6) keep a partitioned node from disrupting a healthy leader. */
#include "harness.h"

#include <string.h>

static uint64_t g_seed;

static void cfg_plain(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

static void cfg_plain_seeded(raft_config_t *cfg)
{
	cfg_plain(cfg);
	cfg->seed = g_seed;
}

static void cfg_prevote_only(raft_config_t *cfg)
{
	cfg->pre_vote = true;
	cfg->check_quorum = false;
}

static void cfg_cq_only(raft_config_t *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = true;
}

/* Counts queued responses of a type from one node to another with the given reject. */
static size_t count_resp(h_net_t *net, int type, uint64_t from, uint64_t to, bool reject)
{
	raft_msg_t *buf[64];
	size_t n = h_take(net, type, from, to, buf, 64), hits = 0;
	for (size_t i = 0; i < n; i++) {
		hits += (bool)buf[i]->reject == reject;
		h_send(net, buf[i]);
	}
	return hits;
}

/* Steps a vote request from `from` (with its real last index/term) into `to`. */
static int step_vote(h_net_t *net, int type, uint64_t from, uint64_t to, uint64_t term)
{
	raft_msg_t m = h_msg(type, from, to, term);
	m.index = h_last_index(net, from);
	m.log_term = h_log_term(net, from, m.index);
	int rc = raft_step(h_raft(net, to), &m);
	h_drain(net, to);
	return rc;
}

/* ---- basic election ---------------------------------------------------------------- */

static void test_election_timeout_is_randomized_within_bounds(void **state)
{
	(void)state;
	bool seen[20] = {false};
	size_t distinct = 0;
	for (g_seed = 1; g_seed <= 24; g_seed++) {
		h_net_t *net = h_net_new(3, 0, cfg_plain_seeded);
		uint64_t term0 = h_term(net, 1);
		int ticks = 0;
		while (h_state(net, 1) == RAFT_FOLLOWER && ticks < 40) {
			h_tick(net, 1, 1);
			ticks++;
		}
		assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
		assert_int_equal(h_term(net, 1), term0 + 1);
		assert_true(ticks >= 10 && ticks < 20);
		if (!seen[ticks]) {
			seen[ticks] = true;
			distinct++;
		}
		h_net_free(net);
	}
	assert_true(distinct >= 3);
}

static void test_candidate_starts_new_election_after_timeout(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_isolate(net, 1);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	uint64_t t = h_term(net, 1);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	h_tick(net, 1, 20);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	assert_true(h_term(net, 1) > t);
	h_net_free(net);
}

static void test_winner_leads_and_others_follow(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, NULL);
	uint64_t t0 = h_term(net, 1);
	h_elect(net, 3);
	for (uint64_t id = 1; id <= 5; id++) {
		raft_status_t st = h_status(net, id);
		assert_int_equal(st.term, t0 + 1);
		assert_int_equal(st.lead, 3);
		assert_int_equal(st.state, id == 3 ? RAFT_LEADER : RAFT_FOLLOWER);
	}
	assert_int_equal(h_count_leaders(net), 1);
	h_net_free(net);
}

static void test_leader_commits_empty_entry_of_its_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	uint64_t last0 = h_status(net, 1).last_index;
	h_elect(net, 1);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.last_index, last0 + 1);
	assert_int_equal(h_log_term(net, 1, last0 + 1), st.term);
	assert_int_equal(st.commit, last0 + 1);
	for (uint64_t id = 2; id <= 3; id++) {
		assert_int_equal(h_status(net, id).commit, last0 + 1);
		assert_true(h_logs_equal(net, 1, id));
	}
	h_net_free(net);
}

static void test_ticks_alone_elect_exactly_one_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(5, 0, NULL);
	int rounds = 0;
	while (h_count_leaders(net) == 0 && rounds < 100) {
		h_tick_stabilize(net, 1);
		rounds++;
	}
	assert_int_equal(h_count_leaders(net), 1);
	assert_true(rounds >= 10);
	uint64_t lead = h_leader(net);
	for (uint64_t id = 1; id <= 5; id++)
		assert_int_equal(h_status(net, id).lead, lead);
	h_net_free(net);
}

static void test_single_node_elects_itself(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(h_propose(net, 1, "solo"), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_applied_count(net, 1, "solo"), 1);
	h_net_free(net);
}

static void test_single_node_elects_itself_on_tick(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(1, 0, NULL);
	h_tick_stabilize(net, 25);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

/* ---- votes ------------------------------------------------------------------------- */

typedef struct vote_check {
	uint64_t voter;
	int type;
	size_t granted_seen;
} vote_check_t;

static void hook_vote_persisted(h_net_t *net, h_node_t *nd, const raft_ready_t *rd, void *arg)
{
	(void)net;
	vote_check_t *vc = arg;
	if (nd->id != vc->voter)
		return;
	for (size_t i = 0; i < rd->n_msgs; i++) {
		const raft_msg_t *m = rd->msgs[i];
		if ((int)m->type != vc->type || m->reject)
			continue;
		vc->granted_seen++;
		assert_true(rd->hard_state_changed);
		assert_int_equal(rd->hard_state.vote, m->to);
		assert_int_equal(rd->hard_state.term, m->term);
		assert_true(rd->must_sync);
	}
}

static void check_vote_persisted_before_sent(h_cfg_fn fn)
{
	h_net_t *net = h_net_new(3, 0, fn);
	vote_check_t vc = {.voter = 2, .type = RAFT_MSG_VOTE_RESP};
	h_set_ready_hook(net, hook_vote_persisted, &vc);
	h_elect(net, 1);
	assert_true(vc.granted_seen >= 1);
	/* and the vote is on "disk" */
	raft_storage_t s = raft_memstorage_storage(h_node(net, 2)->ms);
	raft_hard_state_t hs;
	assert_int_equal(s.ops->initial_state(s.ctx, &hs), RAFT_OK);
	assert_int_equal(hs.vote, 1);
	assert_int_equal(hs.term, h_term(net, 1));
	h_net_free(net);
}

static void test_vote_is_persisted_before_it_is_sent(void **state)
{
	(void)state;
	check_vote_persisted_before_sent(cfg_plain);
}

static void test_vote_after_prevote_is_persisted_before_it_is_sent(void **state)
{
	(void)state;
	check_vote_persisted_before_sent(NULL);
}

static void test_node_votes_once_per_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	uint64_t t = h_term(net, 3) + 1;
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 1, 3, t), RAFT_OK);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 1, false), 1);
	assert_int_equal(h_status(net, 3).vote, 1);
	assert_int_equal(h_term(net, 3), t);

	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 2, 3, t), RAFT_OK);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 2, false), 0);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 2, true), 1);
	assert_int_equal(h_status(net, 3).vote, 1);

	/* a retransmitted request from the same candidate is granted again */
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 1, 3, t), RAFT_OK);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 1, false), 2);

	/* a new term frees the vote */
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 2, 3, t + 1), RAFT_OK);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 2, false), 1);
	assert_int_equal(h_status(net, 3).vote, 2);
	h_net_free(net);
}

static void test_vote_for_lower_term_is_not_granted(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	h_elect(net, 2);
	uint64_t t = h_term(net, 3);
	raft_msg_t m = h_msg(RAFT_MSG_VOTE, 1, 3, t - 1);
	m.index = 1000;
	m.log_term = t;
	assert_int_equal(raft_step(h_raft(net, 3), &m), RAFT_OK);
	h_drain(net, 3);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 3, 1, false), 0);
	assert_int_equal(h_term(net, 3), t);
	assert_int_equal(h_status(net, 3).vote, 2);
	h_net_free(net);
}

static void test_vote_not_granted_to_candidate_with_older_last_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	raft_status_t st = h_status(net, 2);
	/* longer log, but an older last term: not up to date */
	raft_msg_t m = h_msg(RAFT_MSG_VOTE, 3, 2, st.term + 1);
	m.index = st.last_index + 10;
	m.log_term = st.term - 1;
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 2, 3, true), 1);
	assert_int_equal(h_status(net, 2).vote, RAFT_NONE);
	/* same last term, shorter log: not up to date either */
	m.term = st.term + 2;
	m.index = st.last_index - 1;
	m.log_term = h_log_term(net, 2, st.last_index);
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	h_drain(net, 2);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 2, 3, true), 2);
	h_net_free(net);
}

static void test_candidate_with_stale_log_loses(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	h_cut(net, 1, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_propose(net, 1, "only-on-1-and-2"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	assert_int_equal(raft_campaign(h_raft(net, 3)), RAFT_OK);
	h_drain(net, 3);
	h_deliver(net); /* votes to 1 and 2 */
	h_drain_all(net);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 1, 3, false), 0);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 2, 3, false), 0);
	h_stabilize(net);
	assert_int_not_equal(h_state(net, 3), RAFT_LEADER);
	/* whoever leads next has the entries node 3 lacks */
	for (int i = 0; i < 200 && h_count_leaders(net) == 0; i++)
		h_tick_stabilize(net, 1);
	uint64_t lead = h_leader(net);
	assert_true(lead == 1 || lead == 2);
	assert_int_equal(h_applied_count(net, 3, "only-on-1-and-2"), 5);
	h_net_free(net);
}

static void test_split_vote_resolves_in_a_later_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(4, 0, cfg_plain);
	uint64_t t = h_term(net, 1);
	h_cut(net, 1, 2);
	h_cut(net, 1, 4);
	h_cut(net, 2, 3);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	assert_int_equal(raft_campaign(h_raft(net, 2)), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_count_leaders(net), 0);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	assert_int_equal(h_state(net, 2), RAFT_CANDIDATE);
	assert_int_equal(h_status(net, 3).vote, 1);
	assert_int_equal(h_status(net, 4).vote, 2);
	h_heal(net);
	for (int i = 0; i < 300 && h_count_leaders(net) == 0; i++)
		h_tick_stabilize(net, 1);
	assert_int_equal(h_count_leaders(net), 1);
	assert_true(h_term(net, h_leader(net)) > t + 1);
	h_net_free(net);
}

static void test_higher_term_message_makes_leader_follow(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	raft_msg_t m = h_msg(RAFT_MSG_HEARTBEAT, 2, 1, t + 5);
	assert_int_equal(raft_step(h_raft(net, 1), &m), RAFT_OK);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.state, RAFT_FOLLOWER);
	assert_int_equal(st.term, t + 5);
	assert_int_equal(st.lead, 2);
	h_net_free(net);
}

static void test_candidate_follows_leader_of_its_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_isolate(net, 2);
	assert_int_equal(raft_campaign(h_raft(net, 2)), RAFT_OK);
	h_stabilize(net);
	uint64_t t = h_term(net, 2);
	assert_int_equal(h_state(net, 2), RAFT_CANDIDATE);
	raft_msg_t m = h_msg(RAFT_MSG_APP, 3, 2, t);
	m.index = h_last_index(net, 2);
	m.log_term = h_log_term(net, 2, m.index);
	assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
	assert_int_equal(h_state(net, 2), RAFT_FOLLOWER);
	assert_int_equal(h_status(net, 2).lead, 3);
	assert_int_equal(h_term(net, 2), t);
	h_net_free(net);
}

static void test_campaign_on_leader_is_noop(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	raft_campaign(h_raft(net, 1));
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	assert_int_equal(h_term(net, 1), t);
	h_net_free(net);
}

/* ---- pre-vote ---------------------------------------------------------------------- */

static void test_prevote_does_not_bump_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 3);
	h_isolate(net, 3);
	for (int i = 0; i < 60; i++) {
		h_tick(net, 3, 1);
		h_stabilize(net);
	}
	assert_int_equal(h_term(net, 3), t);
	assert_int_equal(h_state(net, 3), RAFT_PRE_CANDIDATE);
	h_net_free(net);
}

static void check_rejoin_keeps_leader(h_cfg_fn fn, bool progress_while_away)
{
	h_net_t *net = h_net_new(3, 0, fn);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 60; i++) {
		h_tick(net, 3, 1);
		if (progress_while_away && i % 10 == 0)
			assert_int_equal(h_propose(net, 1, "while-away"), RAFT_OK);
		h_stabilize(net);
	}
	assert_int_equal(h_term(net, 3), t);
	h_heal(net);
	h_tick_stabilize(net, 40);
	assert_int_equal(h_leader(net), 1);
	assert_int_equal(h_term(net, 1), t);
	assert_int_equal(h_term(net, 3), t);
	assert_int_equal(h_status(net, 3).lead, 1);
	assert_true(h_logs_equal(net, 1, 3));
	h_net_free(net);
}

static void test_prevote_does_not_disrupt_leader(void **state)
{
	(void)state;
	check_rejoin_keeps_leader(NULL, false);
	check_rejoin_keeps_leader(NULL, true);
}

static void test_prevote_alone_protects_leader_when_rejoining_log_is_stale(void **state)
{
	(void)state;
	check_rejoin_keeps_leader(cfg_prevote_only, true);
}

static void test_without_prevote_rejoining_node_bumps_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	h_isolate(net, 3);
	for (int i = 0; i < 60; i++) {
		h_tick(net, 3, 1);
		h_stabilize(net);
	}
	assert_true(h_term(net, 3) > t);
	h_heal(net);
	h_tick_stabilize(net, 60);
	assert_true(h_term(net, h_leader(net)) > t);
	h_net_free(net);
}

static void test_prevote_uses_next_term_without_changing_own(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_prevote_only);
	uint64_t t = h_term(net, 1);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_drain(net, 1);
	raft_status_t st = h_status(net, 1);
	assert_int_equal(st.state, RAFT_PRE_CANDIDATE);
	assert_int_equal(st.term, t);
	assert_int_equal(st.vote, RAFT_NONE);
	assert_int_equal(h_count(net, RAFT_MSG_PRE_VOTE, 1, H_ANY), 2);
	assert_int_equal(h_count(net, RAFT_MSG_VOTE, 1, H_ANY), 0);
	raft_msg_t *m[2];
	assert_int_equal(h_take(net, RAFT_MSG_PRE_VOTE, 1, H_ANY, m, 2), 2);
	assert_int_equal(m[0]->term, t + 1);
	h_send(net, m[0]);
	h_send(net, m[1]);
	h_deliver(net); /* pre-votes reach 2 and 3 */
	for (uint64_t id = 2; id <= 3; id++) {
		assert_int_equal(h_term(net, id), t);
		assert_int_equal(h_status(net, id).vote, RAFT_NONE);
	}
	h_deliver(net); /* responses reach 1 */
	h_drain(net, 1);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	assert_int_equal(h_term(net, 1), t + 1);
	assert_true(h_count(net, RAFT_MSG_VOTE, 1, H_ANY) >= 1);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	assert_int_equal(h_term(net, 1), t + 1);
	h_net_free(net);
}

static void test_prevote_rejected_for_stale_log(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_prevote_only);
	h_elect(net, 1);
	h_cut(net, 1, 3);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_OK);
	h_stabilize(net);
	h_heal(net);
	/* 1 goes away; 2 has the newer log and must refuse 3 even without a leader */
	h_stop(net, 1);
	uint64_t t = h_term(net, 2);
	assert_int_equal(raft_campaign(h_raft(net, 3)), RAFT_OK);
	h_stabilize(net);
	assert_int_not_equal(h_state(net, 3), RAFT_LEADER);
	assert_int_not_equal(h_state(net, 3), RAFT_CANDIDATE);
	assert_int_equal(h_term(net, 3), t);
	assert_int_equal(h_term(net, 2), t);
	h_net_free(net);
}

/* ---- check quorum ------------------------------------------------------------------ */

static void test_check_quorum_isolated_leader_steps_down(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	h_isolate(net, 1);
	h_tick(net, 1, 9);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_tick(net, 1, 11);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_FOLLOWER);
	assert_int_equal(h_propose(net, 1, "x"), RAFT_ERR_NO_LEADER);
	h_net_free(net);
}

static void test_check_quorum_leader_with_majority_stays(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	h_isolate(net, 3);
	h_tick_stabilize(net, 60);
	assert_int_equal(h_leader(net), 1);
	assert_int_equal(h_term(net, 1), t);
	h_net_free(net);
}

static void test_without_check_quorum_isolated_leader_stays(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_prevote_only);
	h_elect(net, 1);
	h_isolate(net, 1);
	h_tick(net, 1, 60);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	h_net_free(net);
}

static void test_check_quorum_majority_elects_new_leader(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	h_isolate(net, 1);
	h_tick_stabilize(net, 60);
	uint64_t lead = h_leader(net);
	assert_true(lead == 2 || lead == 3);
	assert_true(h_term(net, lead) > t);
	assert_int_not_equal(h_state(net, 1), RAFT_LEADER);
	h_heal(net);
	h_tick_stabilize(net, 5);
	assert_int_equal(h_status(net, 1).lead, lead);
	assert_int_equal(h_term(net, 1), h_term(net, lead));
	h_net_free(net);
}

static void test_follower_in_lease_ignores_vote(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_cq_only);
	h_elect(net, 1);
	uint64_t t = h_term(net, 2);
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 3, 2, t + 1), RAFT_OK);
	assert_int_equal(h_term(net, 2), t);
	assert_int_equal(h_status(net, 2).lead, 1);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 2, 3, false), 0);
	h_net_free(net);
}

static void test_leader_in_lease_ignores_vote(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_cq_only);
	h_elect(net, 1);
	uint64_t t = h_term(net, 1);
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 3, 1, t + 1), RAFT_OK);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	assert_int_equal(h_term(net, 1), t);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 1, 3, false), 0);
	h_net_free(net);
}

static void test_follower_in_lease_ignores_prevote(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	uint64_t t = h_term(net, 2);
	assert_int_equal(step_vote(net, RAFT_MSG_PRE_VOTE, 3, 2, t + 1), RAFT_OK);
	assert_int_equal(h_term(net, 2), t);
	assert_int_equal(count_resp(net, RAFT_MSG_PRE_VOTE_RESP, 2, 3, false), 0);
	h_net_free(net);
}

static void test_without_check_quorum_follower_grants_higher_term_vote(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, cfg_plain);
	h_elect(net, 1);
	uint64_t t = h_term(net, 2);
	assert_int_equal(step_vote(net, RAFT_MSG_VOTE, 3, 2, t + 1), RAFT_OK);
	assert_int_equal(h_term(net, 2), t + 1);
	assert_int_equal(count_resp(net, RAFT_MSG_VOTE_RESP, 2, 3, false), 1);
	h_net_free(net);
}

static void test_vote_responses_from_non_voters_do_not_count(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(2, 2, cfg_plain);
	h_cut(net, 1, 2);
	assert_int_equal(raft_campaign(h_raft(net, 1)), RAFT_OK);
	h_stabilize(net);
	uint64_t t = h_term(net, 1);
	for (uint64_t from = 3; from <= 4; from++) {
		raft_msg_t m = h_msg(RAFT_MSG_VOTE_RESP, from, 1, t);
		raft_step(h_raft(net, 1), &m);
	}
	raft_msg_t stranger = h_msg(RAFT_MSG_VOTE_RESP, 8, 1, t);
	raft_step(h_raft(net, 1), &stranger);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_CANDIDATE);
	h_net_free(net);
}

static void test_candidate_follows_heartbeat_or_snapshot_of_its_term(void **state)
{
	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		h_net_t *net = h_net_new(3, 0, cfg_plain);
		h_isolate(net, 2);
		assert_int_equal(raft_campaign(h_raft(net, 2)), RAFT_OK);
		h_stabilize(net);
		uint64_t t = h_term(net, 2);
		raft_msg_t m = h_msg(kind ? RAFT_MSG_SNAP : RAFT_MSG_HEARTBEAT, 3, 2, t);
		uint64_t voters[] = {1, 2, 3};
		Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
		Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
		raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
		cs.voters = voters;
		cs.n_voters = 3;
		md.conf_state = &cs;
		md.index = 1;
		md.term = 1;
		snap.metadata = &md;
		if (kind)
			m.snapshot = &snap;
		assert_int_equal(raft_step(h_raft(net, 2), &m), RAFT_OK);
		assert_int_equal(h_state(net, 2), RAFT_FOLLOWER);
		assert_int_equal(h_status(net, 2).lead, 3);
		assert_int_equal(h_term(net, 2), t);
		h_net_free(net);
	}
}

static void test_stale_prevote_is_rejected_with_current_term(void **state)
{
	(void)state;
	h_net_t *net = h_net_new(3, 0, NULL);
	h_elect(net, 1);
	assert_int_equal(raft_transfer_leader(h_raft(net, 1), 2), RAFT_OK);
	h_stabilize(net); /* term moves on */
	assert_int_equal(h_leader(net), 2);
	uint64_t t = h_term(net, 3);
	assert_int_equal(step_vote(net, RAFT_MSG_PRE_VOTE, 1, 3, t - 1), RAFT_OK);
	raft_msg_t *resp[2];
	assert_int_equal(h_take(net, RAFT_MSG_PRE_VOTE_RESP, 3, 1, resp, 2), 1);
	assert_true(resp[0]->reject);
	assert_int_equal(resp[0]->term, t);
	raft_msg_free(resp[0]);
	h_net_free(net);
}

static void test_stale_leader_learns_newer_term_from_append_response(void **state)
{
	(void)state;
	/* without check-quorum an isolated leader keeps leading its old term */
	h_net_t *net = h_net_new(3, 0, cfg_prevote_only);
	h_elect(net, 1);
	h_isolate(net, 1);
	h_tick_stabilize(net, 40);
	uint64_t lead = h_leader(net);
	assert_true(lead == 2 || lead == 3);
	assert_int_equal(h_state(net, 1), RAFT_LEADER);
	assert_true(h_term(net, 1) < h_term(net, lead));
	/* its next heartbeat is answered with the newer term, and it steps down */
	h_heal(net);
	h_tick(net, 1, 1);
	h_stabilize(net);
	assert_int_equal(h_state(net, 1), RAFT_FOLLOWER);
	h_tick_stabilize(net, 2);
	assert_int_equal(h_status(net, 1).lead, lead);
	assert_int_equal(h_term(net, 1), h_term(net, lead));
	h_net_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_election_timeout_is_randomized_within_bounds),
		cmocka_unit_test(test_candidate_starts_new_election_after_timeout),
		cmocka_unit_test(test_winner_leads_and_others_follow),
		cmocka_unit_test(test_leader_commits_empty_entry_of_its_term),
		cmocka_unit_test(test_ticks_alone_elect_exactly_one_leader),
		cmocka_unit_test(test_single_node_elects_itself),
		cmocka_unit_test(test_single_node_elects_itself_on_tick),
		cmocka_unit_test(test_vote_is_persisted_before_it_is_sent),
		cmocka_unit_test(test_vote_after_prevote_is_persisted_before_it_is_sent),
		cmocka_unit_test(test_node_votes_once_per_term),
		cmocka_unit_test(test_vote_for_lower_term_is_not_granted),
		cmocka_unit_test(test_vote_not_granted_to_candidate_with_older_last_term),
		cmocka_unit_test(test_candidate_with_stale_log_loses),
		cmocka_unit_test(test_split_vote_resolves_in_a_later_term),
		cmocka_unit_test(test_higher_term_message_makes_leader_follow),
		cmocka_unit_test(test_candidate_follows_leader_of_its_term),
		cmocka_unit_test(test_campaign_on_leader_is_noop),
		cmocka_unit_test(test_prevote_does_not_bump_term),
		cmocka_unit_test(test_prevote_does_not_disrupt_leader),
		cmocka_unit_test(test_prevote_alone_protects_leader_when_rejoining_log_is_stale),
		cmocka_unit_test(test_without_prevote_rejoining_node_bumps_term),
		cmocka_unit_test(test_prevote_uses_next_term_without_changing_own),
		cmocka_unit_test(test_prevote_rejected_for_stale_log),
		cmocka_unit_test(test_check_quorum_isolated_leader_steps_down),
		cmocka_unit_test(test_check_quorum_leader_with_majority_stays),
		cmocka_unit_test(test_without_check_quorum_isolated_leader_stays),
		cmocka_unit_test(test_check_quorum_majority_elects_new_leader),
		cmocka_unit_test(test_follower_in_lease_ignores_vote),
		cmocka_unit_test(test_leader_in_lease_ignores_vote),
		cmocka_unit_test(test_follower_in_lease_ignores_prevote),
		cmocka_unit_test(test_without_check_quorum_follower_grants_higher_term_vote),
		cmocka_unit_test(test_vote_responses_from_non_voters_do_not_count),
		cmocka_unit_test(test_candidate_follows_heartbeat_or_snapshot_of_its_term),
		cmocka_unit_test(test_stale_prevote_is_rejected_with_current_term),
		cmocka_unit_test(test_stale_leader_learns_newer_term_from_append_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
