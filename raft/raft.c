/* raft/raft.c — the Raft state machine: elections (with pre-vote and check-quorum), log
 * replication and commitment, snapshots, single-server membership changes, leadership
 * transfer and ReadIndex. Pure: it only fills the outbox and the log's unstable tail. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

static const char campaign_transfer[] = "CampaignTransfer";

/* A follower left in snapshot state this many election timeouts without a report from
 * the transport is probed again, so a lost snapshot cannot stall it for ever. */
#define SNAPSHOT_TIMEOUT_ELECTIONS 4

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_next(raft_node_t *r)
{
	/* splitmix64: small, seedable, good enough for timeouts */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const raft_conf_t *conf(const raft_node_t *r)
{
	return conf_history_current(&r->confs);
}

static bool promotable(const raft_node_t *r)
{
	return raft_conf_is_voter(conf(r), r->id);
}

static size_t quorum(const raft_node_t *r)
{
	return conf(r)->n_voters / 2 + 1;
}

progress_t *raft_progress_of(const raft_node_t *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void send(raft_node_t *r, raft_msg_t *m)
{
	if (!m)
		return;
	if (m->from == RAFT_NONE)
		m->from = r->id; /* forwarded requests keep their origin (a transfer: its target) */
	/* Votes carry the term they campaign for; everything else carries ours, except
	 * local messages (term 0) forwarded as-is (proposals, reads, transfers). */
	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_VOTE_RESP ||
	    m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_PRE_VOTE_RESP) {
		/* term set by caller */
	} else if (m->type != RAFT_MSG_PROP && m->type != RAFT_MSG_READ_INDEX &&
		   m->type != RAFT_MSG_TRANSFER_LEADER) {
		m->term = r->term;
	}
	if (array_grow((void **)&r->msgs, &r->cap_msgs, r->n_msgs, sizeof(*r->msgs))) {
		raft_msg_free(m);
		return;
	}
	r->msgs[r->n_msgs++] = m;
}

static void add_read_state(raft_node_t *r, uint64_t index, const ProtobufCBinaryData *ctx)
{
	if (array_grow((void **)&r->read_states, &r->cap_read_states, r->n_read_states,
		       sizeof(*r->read_states)))
		return;
	raft_read_state_t *rs = &r->read_states[r->n_read_states];
	if (bytes_copy(&rs->ctx, ctx))
		return;
	rs->index = index;
	r->n_read_states++;
}

/* ---------------------------------------------------------------- progress set */

static void progress_clear(raft_node_t *r)
{
	r->n_prs = 0;
}

static void progress_add(raft_node_t *r, uint64_t id, bool learner)
{
	if (r->n_prs == RAFT_MAX_NODES)
		return; /* raft_conf_apply caps members at RAFT_MAX_NODES */
	progress_init(&r->prs[r->n_prs++], id, log_last_index(&r->log) + 1, learner);
}

static int progress_slots_alloc(raft_node_t *r)
{
	size_t per = (size_t)r->max_inflight;
	r->prs = calloc(RAFT_MAX_NODES, sizeof(*r->prs));
	r->inflight_pool = malloc(RAFT_MAX_NODES * per * sizeof(uint64_t));
	if (!r->prs || !r->inflight_pool)
		return RAFT_ERR_NOMEM;
	for (size_t i = 0; i < RAFT_MAX_NODES; i++) {
		r->prs[i].ins.buf = r->inflight_pool + i * per;
		r->prs[i].ins.size = per;
	}
	return RAFT_OK;
}

/* Leader: make the tracked set match the configuration now in effect. */
static void progress_sync_conf(raft_node_t *r)
{
	const raft_conf_t *c = conf(r);
	for (size_t i = 0; i < r->n_prs;) {
		progress_t *p = &r->prs[i];
		if (raft_conf_is_voter(c, p->id) || raft_conf_is_learner(c, p->id)) {
			p->is_learner = raft_conf_is_learner(c, p->id);
			i++;
			continue;
		}
		/* swap with the last slot: each keeps its own inflight ring */
		progress_t gone = *p;
		*p = r->prs[--r->n_prs];
		r->prs[r->n_prs] = gone;
	}
	for (size_t i = 0; i < c->n_voters; i++)
		if (!raft_progress_of(r, c->voters[i]))
			progress_add(r, c->voters[i], false);
	for (size_t i = 0; i < c->n_learners; i++)
		if (!raft_progress_of(r, c->learners[i]))
			progress_add(r, c->learners[i], true);
	if (r->lead_transferee && !raft_progress_of(r, r->lead_transferee))
		r->lead_transferee = RAFT_NONE;
}

/* ---------------------------------------------------------------- log + conf */

/* Appends owned entries, keeping the membership history in step with the log. */
static int append_entries(raft_node_t *r, raft_entry_t **ents, size_t n)
{
	if (n == 0)
		return RAFT_OK;
	size_t before = r->confs.n;
	int rc = log_append(&r->log, ents, n);
	if (rc != RAFT_OK)
		return rc;
	conf_history_truncate(&r->confs, r->log.u_ents[r->log.u_n - n]->index);
	bool changed = r->confs.n != before;
	before = r->confs.n;
	for (size_t i = 0; i < n; i++)
		conf_history_on_append(&r->confs, r->log.u_ents[r->log.u_n - n + i]);
	if ((changed || r->confs.n != before) && r->state == RAFT_LEADER)
		progress_sync_conf(r);
	return RAFT_OK;
}

/* ---------------------------------------------------------------- sending */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static bool send_snapshot(raft_node_t *r, progress_t *pr)
{
	if (!pr->recent_active)
		return false;
	const raft_snapshot_t *s;
	if (log_snapshot(&r->log, &s) != RAFT_OK || !s || !s->metadata ||
	    s->metadata->index == 0)
		return false;
	raft_msg_t *m = msg_new(RAFT_MSG_SNAP, pr->id);
	if (!m || !(m->snapshot = raft_snapshot_clone(s))) {
		raft_msg_free(m);
		return false;
	}
	progress_become_snapshot(pr, s->metadata->index);
	pr->snapshot_sent = r->ticks;
	send(r, m);
	return true;
}

/* Sends what pr needs next; with send_if_empty also an empty probe or commit update. */
static bool maybe_send_append(raft_node_t *r, uint64_t to, bool send_if_empty)
{
	progress_t *pr = raft_progress_of(r, to);
	if (!pr || to == r->id || progress_is_paused(pr))
		return false;
	uint64_t prev_term;
	int errt = log_term(&r->log, pr->next - 1, &prev_term);
	raft_entry_t **ents = NULL;
	size_t n = 0;
	int erre = errt;
	if (errt == RAFT_OK)
		erre = log_entries(&r->log, pr->next, UINT64_MAX, r->max_msg_size, &ents, &n);
	if (errt != RAFT_OK || erre != RAFT_OK) {
		entries_free(ents, n);
		bool gone = (errt == RAFT_ERR_COMPACTED || errt == RAFT_ERR_UNAVAILABLE) ||
			    (erre == RAFT_ERR_COMPACTED || erre == RAFT_ERR_UNAVAILABLE);
		return gone && send_snapshot(r, pr); /* else (no memory): retry later */
	}
	if (n == 0 && !send_if_empty) {
		free(ents);
		return false;
	}
	raft_msg_t *m = msg_new(RAFT_MSG_APP, to);
	if (!m) {
		entries_free(ents, n);
		return false;
	}
	m->index = pr->next - 1;
	m->log_term = prev_term;
	m->entries = ents;
	m->n_entries = n;
	m->commit = r->log.committed;
	if (n > 0) {
		uint64_t last = ents[n - 1]->index;
		if (pr->state == RAFT_PROGRESS_REPLICATE) {
			pr->next = last + 1;
			inflights_add(&pr->ins, last);
		} else if (pr->state == RAFT_PROGRESS_PROBE) {
			pr->probe_sent = true;
		}
	}
	send(r, m);
	return true;
}

static void send_append(raft_node_t *r, uint64_t to)
{
	maybe_send_append(r, to, true);
}

static void bcast_append(raft_node_t *r)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_append(r, r->prs[i].id);
}

static void send_heartbeat(raft_node_t *r, progress_t *pr, const ProtobufCBinaryData *ctx)
{
	raft_msg_t *m = msg_new(RAFT_MSG_HEARTBEAT, pr->id);
	if (!m)
		return;
	/* Never tell a follower to commit past what it is known to hold. */
	m->commit = min_u64(pr->match, r->log.committed);
	m->index = r->ticks; /* echoed back: the stamp lease reads count from */
	if (ctx && bytes_copy(&m->context, ctx)) {
		raft_msg_free(m);
		return;
	}
	send(r, m);
}

static void bcast_heartbeat(raft_node_t *r, const ProtobufCBinaryData *ctx)
{
	if (!ctx && r->n_reads > 0)
		ctx = &r->reads[r->n_reads - 1].ctx;
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_heartbeat(r, &r->prs[i], ctx);
}

/* ---------------------------------------------------------------- state changes */

static void reads_clear(raft_node_t *r)
{
	for (size_t i = 0; i < r->n_reads; i++)
		free(r->reads[i].ctx.data);
	r->n_reads = 0;
	for (size_t i = 0; i < r->n_pending_reads; i++)
		raft_msg_free(r->pending_reads[i]);
	r->n_pending_reads = 0;
}

static void reset_randomized_timeout(raft_node_t *r)
{
	r->randomized_election_timeout =
		r->election_timeout + (int)(rng_next(r) % (uint64_t)r->election_timeout);
}

static void reset(raft_node_t *r, uint64_t term)
{
	if (r->term != term) {
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->lead = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_randomized_timeout(r);
	r->lead_transferee = RAFT_NONE;
	r->n_votes = 0;
	r->pending_conf_index = 0;
	r->lease_disabled = false;
	r->append_pending = false;
	progress_clear(r);
	reads_clear(r);
}

static void become_follower(raft_node_t *r, uint64_t term, uint64_t lead)
{
	reset(r, term);
	r->lead = lead;
	r->state = RAFT_FOLLOWER;
}

static void become_candidate(raft_node_t *r)
{
	reset(r, r->term + 1);
	r->vote = r->id;
	r->state = RAFT_CANDIDATE;
}

static void become_pre_candidate(raft_node_t *r)
{
	/* Pre-vote changes neither term nor vote (thesis §9.6). */
	r->n_votes = 0;
	r->lead = RAFT_NONE;
	r->state = RAFT_PRE_CANDIDATE;
}

static void become_leader(raft_node_t *r)
{
	reset(r, r->term);
	r->lead = r->id;
	r->state = RAFT_LEADER;
	progress_sync_conf(r);
	progress_t *self = raft_progress_of(r, r->id);
	if (self) {
		self->match = log_stabled_index(&r->log);
		progress_become_replicate(self);
	}
	/* An entry of our own term: commits everything before it (§5.4.2), unlocks reads
	 * and conf changes (the latter fixes the single-server change bug of the thesis). */
	raft_entry_t *e = raft_entry_new(r->term, log_last_index(&r->log) + 1,
					 RAFT_ENTRY_NORMAL, NULL, 0);
	if (e)
		append_entries(r, &e, 1);
	r->pending_conf_index = log_last_index(&r->log);
}

/* ---------------------------------------------------------------- elections */

/* Records a vote; returns 1 if won, -1 if lost, 0 while undecided. */
static int poll(raft_node_t *r, uint64_t id, bool granted)
{
	if (!raft_conf_is_voter(conf(r), id))
		return 0;
	size_t i;
	for (i = 0; i < r->n_votes; i++)
		if (r->votes[i] == id)
			break;
	if (i == r->n_votes && r->n_votes < RAFT_MAX_NODES) {
		r->votes[r->n_votes] = id;
		r->granted[r->n_votes] = granted;
		r->n_votes++;
	}
	size_t yes = 0, no = 0;
	for (i = 0; i < r->n_votes; i++) {
		if (!raft_conf_is_voter(conf(r), r->votes[i]))
			continue;
		if (r->granted[i])
			yes++;
		else
			no++;
	}
	size_t q = quorum(r);
	if (yes >= q)
		return 1;
	if (no > conf(r)->n_voters - q)
		return -1;
	return 0;
}

static void campaign(raft_node_t *r, bool pre, bool transfer)
{
	if (!promotable(r))
		return;
	uint64_t term;
	int type;
	if (pre) {
		become_pre_candidate(r);
		type = RAFT_MSG_PRE_VOTE;
		term = r->term + 1;
	} else {
		become_candidate(r);
		type = RAFT_MSG_VOTE;
		term = r->term;
	}
	if (poll(r, r->id, true) == 1) {
		/* a single voter wins at once */
		if (pre)
			campaign(r, false, transfer);
		else
			become_leader(r);
		return;
	}
	const raft_conf_t *c = conf(r);
	for (size_t i = 0; i < c->n_voters; i++) {
		if (c->voters[i] == r->id)
			continue;
		raft_msg_t *m = msg_new(type, c->voters[i]);
		if (!m)
			continue;
		m->term = term;
		m->index = log_last_index(&r->log);
		m->log_term = log_last_term(&r->log);
		if (transfer && !pre) {
			m->context.data = malloc(sizeof(campaign_transfer) - 1);
			if (m->context.data) {
				memcpy(m->context.data, campaign_transfer,
				       sizeof(campaign_transfer) - 1);
				m->context.len = sizeof(campaign_transfer) - 1;
			}
		}
		send(r, m);
	}
}

static void hup(raft_node_t *r, bool transfer)
{
	if (r->state == RAFT_LEADER || !promotable(r))
		return;
	campaign(r, r->pre_vote && !transfer, transfer);
}

static bool is_transfer_ctx(const raft_msg_t *m)
{
	return m->context.len == sizeof(campaign_transfer) - 1 &&
	       memcmp(m->context.data, campaign_transfer, m->context.len) == 0;
}

/* With check-quorum a node that heard from a leader within the election timeout (or,
 * with lease reads, started less than one ago) keeps that leader: it ignores votes. */
static bool in_lease(const raft_node_t *r)
{
	if (!r->check_quorum)
		return false;
	if (r->lead != RAFT_NONE && r->election_elapsed < r->election_timeout)
		return true;
	return r->read_only == RAFT_READ_LEASE && r->ticks < (uint64_t)r->election_timeout;
}

static void handle_vote_request(raft_node_t *r, const raft_msg_t *m)
{
	bool pre = m->type == RAFT_MSG_PRE_VOTE;
	bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
			(pre && m->term > r->term);
	raft_msg_t *resp = msg_new(pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
	if (!resp)
		return;
	if (can_vote && log_is_up_to_date(&r->log, m->index, m->log_term)) {
		resp->term = m->term;
		if (!pre) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	} else {
		resp->term = r->term;
		resp->reject = true;
	}
	send(r, resp);
}

/* ---------------------------------------------------------------- follower side */

static bool entries_well_formed(const raft_msg_t *m)
{
	uint64_t prev_term = m->log_term;
	for (size_t i = 0; i < m->n_entries; i++) {
		const raft_entry_t *e = m->entries[i];
		if (!e || e->index != m->index + 1 + i || e->term < prev_term || e->term > m->term)
			return false;
		prev_term = e->term;
	}
	return true;
}

static void reply_append(raft_node_t *r, uint64_t to, uint64_t index)
{
	raft_msg_t *m = msg_new(RAFT_MSG_APP_RESP, to);
	if (m) {
		m->index = index;
		send(r, m);
	}
}

static void handle_append_entries(raft_node_t *r, const raft_msg_t *m)
{
	if (m->index < r->log.committed) {
		reply_append(r, m->from, r->log.committed);
		return;
	}
	if (log_match_term(&r->log, m->index, m->log_term)) {
		uint64_t last_new = m->index + m->n_entries;
		uint64_t ci = log_find_conflict(&r->log, m->entries, m->n_entries);
		if (ci != 0 && ci <= r->log.committed)
			return; /* would rewrite committed history: refuse the message */
		if (ci != 0) {
			size_t from = ci - (m->index + 1);
			size_t n = m->n_entries - from;
			raft_entry_t **copy = malloc(n * sizeof(*copy));
			if (!copy)
				return;
			for (size_t i = 0; i < n; i++) {
				if (!(copy[i] = raft_entry_clone(m->entries[from + i]))) {
					entries_free(copy, i);
					return;
				}
			}
			int rc = append_entries(r, copy, n);
			free(copy);
			if (rc != RAFT_OK)
				return;
		}
		log_commit_to(&r->log, min_u64(m->commit, last_new));
		reply_append(r, m->from, last_new);
		return;
	}
	raft_msg_t *resp = msg_new(RAFT_MSG_APP_RESP, m->from);
	if (!resp)
		return;
	uint64_t hint_term;
	uint64_t hint = log_find_conflict_by_term(&r->log,
						  min_u64(m->index, log_last_index(&r->log)),
						  m->log_term, &hint_term);
	resp->index = m->index;
	resp->reject = true;
	resp->reject_hint = hint;
	resp->log_term = hint_term;
	send(r, resp);
}

static void handle_heartbeat(raft_node_t *r, const raft_msg_t *m)
{
	log_commit_to(&r->log, min_u64(m->commit, log_last_index(&r->log)));
	raft_msg_t *resp = msg_new(RAFT_MSG_HEARTBEAT_RESP, m->from);
	if (!resp)
		return;
	resp->index = m->index;
	if (bytes_copy(&resp->context, &m->context)) {
		raft_msg_free(resp);
		return;
	}
	send(r, resp);
}

static int restore_snapshot(raft_node_t *r, const raft_snapshot_t *s)
{
	uint64_t idx = s->metadata->index;
	if (idx <= r->log.committed)
		return 0;
	if (log_match_term(&r->log, idx, s->metadata->term)) {
		/* we already have it: just move the commit point */
		log_commit_to(&r->log, idx);
		return 0;
	}
	raft_conf_t c;
	if (raft_conf_from_state(&c, s->metadata->conf_state) != RAFT_OK || c.n_voters == 0)
		return 0; /* a cluster always has a voter: such a snapshot is malformed */
	if (log_restore(&r->log, s) != RAFT_OK)
		return 0;
	conf_history_reset(&r->confs, idx, &c);
	return 1;
}

static void handle_snapshot(raft_node_t *r, const raft_msg_t *m)
{
	if (restore_snapshot(r, m->snapshot))
		reply_append(r, m->from, log_last_index(&r->log));
	else
		reply_append(r, m->from, r->log.committed);
}

/* ---------------------------------------------------------------- leader side */

/* The q-th largest of v[0..n) (v is reordered): what a quorum of q agrees on. */
static uint64_t quorum_kth(uint64_t *v, size_t n, size_t q)
{
	for (size_t i = 1; i < n; i++) /* insertion sort, descending: n is small */
		for (size_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n >= q ? v[q - 1] : 0;
}

static uint64_t quorum_match(const raft_node_t *r)
{
	const raft_conf_t *c = conf(r);
	uint64_t m[RAFT_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < c->n_voters; i++) {
		const progress_t *p = raft_progress_of(r, c->voters[i]);
		m[n++] = p ? p->match : 0;
	}
	return quorum_kth(m, n, quorum(r));
}

static bool committed_in_term(const raft_node_t *r)
{
	return log_term_or_zero(&r->log, r->log.committed) == r->term;
}

static void respond_read(raft_node_t *r, uint64_t from, uint64_t index,
			 const ProtobufCBinaryData *ctx)
{
	if (from == r->id || from == RAFT_NONE) {
		add_read_state(r, index, ctx);
		return;
	}
	raft_msg_t *m = msg_new(RAFT_MSG_READ_INDEX_RESP, from);
	if (!m)
		return;
	m->index = index;
	if (bytes_copy(&m->context, ctx)) {
		raft_msg_free(m);
		return;
	}
	send(r, m);
}

/* The leader lease: a quorum acknowledged heartbeats stamped less than an election
 * timeout ago (minus a tick of margin), so no other leader can exist yet. */
static bool lease_valid(const raft_node_t *r)
{
	if (r->lease_disabled || r->lead_transferee != RAFT_NONE)
		return false;
	const raft_conf_t *c = conf(r);
	uint64_t s[RAFT_MAX_NODES];
	size_t n = 0;
	for (size_t i = 0; i < c->n_voters; i++) {
		const progress_t *p = raft_progress_of(r, c->voters[i]);
		s[n++] = c->voters[i] == r->id ? r->ticks : (p ? p->lease_ack : 0);
	}
	uint64_t stamp = quorum_kth(s, n, quorum(r));
	return stamp > 0 && r->ticks + 1 < stamp + (uint64_t)r->election_timeout;
}

static int read_req_add(raft_node_t *r, const raft_msg_t *m, uint64_t from)
{
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].ctx.len == m->context.len &&
		    memcmp(r->reads[i].ctx.data, m->context.data, m->context.len) == 0)
			return 1; /* already pending */
	if (array_grow((void **)&r->reads, &r->cap_reads, r->n_reads, sizeof(*r->reads)))
		return RAFT_ERR_NOMEM;
	read_req_t *q = &r->reads[r->n_reads];
	memset(q, 0, sizeof(*q));
	if (bytes_copy(&q->ctx, &m->context))
		return RAFT_ERR_NOMEM;
	q->index = r->log.committed;
	q->from = from;
	q->acks[q->n_acks++] = r->id;
	r->n_reads++;
	return RAFT_OK;
}

static void serve_read_index(raft_node_t *r, const raft_msg_t *m)
{
	uint64_t from = m->from ? m->from : r->id;
	if (conf(r)->n_voters == 1 && promotable(r)) {
		respond_read(r, from, r->log.committed, &m->context);
		return;
	}
	if (r->read_only == RAFT_READ_LEASE && lease_valid(r)) {
		respond_read(r, from, r->log.committed, &m->context);
		return;
	}
	if (read_req_add(r, m, from) == RAFT_OK)
		bcast_heartbeat(r, &m->context);
}

static void step_read_index_leader(raft_node_t *r, const raft_msg_t *m)
{
	if (!committed_in_term(r)) {
		/* a new leader does not know the commit point until an entry of its term
		 * commits: hold the request until then */
		if (array_grow((void **)&r->pending_reads, &r->cap_pending_reads,
			       r->n_pending_reads, sizeof(*r->pending_reads)))
			return;
		raft_msg_t *c = raft_msg_clone(m);
		if (c) {
			if (!c->from)
				c->from = r->id;
			r->pending_reads[r->n_pending_reads++] = c;
		}
		return;
	}
	serve_read_index(r, m);
}

static void release_pending_reads(raft_node_t *r)
{
	if (r->n_pending_reads == 0 || !committed_in_term(r))
		return;
	size_t n = r->n_pending_reads;
	raft_msg_t **ms = r->pending_reads;
	r->pending_reads = NULL;
	r->n_pending_reads = r->cap_pending_reads = 0;
	for (size_t i = 0; i < n; i++) {
		serve_read_index(r, ms[i]);
		raft_msg_free(ms[i]);
	}
	free(ms);
}

static void read_ack(raft_node_t *r, const raft_msg_t *m)
{
	if (m->context.len == 0)
		return;
	size_t k;
	for (k = 0; k < r->n_reads; k++)
		if (r->reads[k].ctx.len == m->context.len &&
		    memcmp(r->reads[k].ctx.data, m->context.data, m->context.len) == 0)
			break;
	if (k == r->n_reads)
		return;
	read_req_t *q = &r->reads[k];
	bool seen = false;
	for (size_t i = 0; i < q->n_acks; i++)
		seen |= q->acks[i] == m->from;
	if (!seen && q->n_acks < RAFT_MAX_NODES)
		q->acks[q->n_acks++] = m->from;
	size_t voters = 0;
	for (size_t i = 0; i < q->n_acks; i++)
		voters += raft_conf_is_voter(conf(r), q->acks[i]);
	if (voters < quorum(r))
		return;
	/* Heartbeats go out in order: this quorum also confirms every earlier request. */
	size_t done = k + 1;
	for (size_t i = 0; i < done; i++) {
		respond_read(r, r->reads[i].from, r->reads[i].index, &r->reads[i].ctx);
		free(r->reads[i].ctx.data);
	}
	memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
	r->n_reads -= done;
}

static void send_timeout_now(raft_node_t *r, uint64_t to)
{
	r->lease_disabled = true; /* the transferee may win at once: our lease is void */
	send(r, msg_new(RAFT_MSG_TIMEOUT_NOW, to));
}

static void leader_maybe_step_down_removed(raft_node_t *r)
{
	/* A leader that removed itself steps down once the change committed (§4.2.2). */
	if (r->state == RAFT_LEADER && !promotable(r) &&
	    r->log.committed >= r->pending_conf_index)
		become_follower(r, r->term, RAFT_NONE);
}

static bool maybe_commit(raft_node_t *r)
{
	if (!log_maybe_commit(&r->log, quorum_match(r), r->term))
		return false;
	release_pending_reads(r);
	return true;
}

static void after_commit(raft_node_t *r)
{
	bcast_append(r);
	leader_maybe_step_down_removed(r);
}

void raft_flush_appends(raft_node_t *r)
{
	if (!r->append_pending)
		return;
	r->append_pending = false;
	if (r->state != RAFT_LEADER)
		return;
	for (size_t i = 0; i < r->n_prs; i++) {
		uint64_t id = r->prs[i].id;
		/* as many messages as the window and the size limit allow */
		while (id != r->id && maybe_send_append(r, id, false))
			;
	}
}

void raft_on_stable(raft_node_t *r)
{
	if (r->state != RAFT_LEADER)
		return;
	progress_t *self = raft_progress_of(r, r->id);
	if (self)
		progress_maybe_update(self, log_stabled_index(&r->log));
	if (maybe_commit(r))
		after_commit(r);
}

static void handle_append_resp(raft_node_t *r, progress_t *pr, const raft_msg_t *m)
{
	pr->recent_active = true;
	if (m->reject) {
		uint64_t next_probe = m->reject_hint;
		if (m->log_term > 0) {
			uint64_t t;
			next_probe = log_find_conflict_by_term(&r->log, m->reject_hint,
							       m->log_term, &t);
		}
		if (progress_maybe_decr_to(pr, m->index, next_probe)) {
			if (pr->state == RAFT_PROGRESS_REPLICATE)
				progress_become_probe(pr);
			send_append(r, m->from);
		}
		return;
	}
	bool old_paused = progress_is_paused(pr);
	if (!progress_maybe_update(pr, m->index))
		return;
	switch (pr->state) {
	case RAFT_PROGRESS_PROBE:
		progress_become_replicate(pr);
		break;
	case RAFT_PROGRESS_SNAPSHOT:
		if (pr->match >= pr->pending_snapshot) {
			progress_become_probe(pr);
			progress_become_replicate(pr);
		}
		break;
	case RAFT_PROGRESS_REPLICATE:
		inflights_free_le(&pr->ins, m->index);
		break;
	}
	uint64_t from = m->from;
	if (maybe_commit(r)) {
		after_commit(r);
		if (r->state != RAFT_LEADER)
			return;
	} else if (old_paused) {
		send_append(r, from);
	}
	pr = raft_progress_of(r, from);
	while (pr && maybe_send_append(r, from, false))
		pr = raft_progress_of(r, from);
	if (pr && from == r->lead_transferee && pr->match == log_last_index(&r->log))
		send_timeout_now(r, from);
}

static void handle_heartbeat_resp(raft_node_t *r, progress_t *pr, const raft_msg_t *m)
{
	pr->recent_active = true;
	pr->probe_sent = false;
	if (m->index <= r->ticks && m->index > pr->lease_ack)
		pr->lease_ack = m->index;
	if (pr->state == RAFT_PROGRESS_REPLICATE && inflights_full(&pr->ins))
		inflights_free_first(&pr->ins);
	if (pr->state == RAFT_PROGRESS_SNAPSHOT &&
	    r->ticks - pr->snapshot_sent > SNAPSHOT_TIMEOUT_ELECTIONS * (uint64_t)r->election_timeout) {
		/* the transport never reported the snapshot: treat it as lost */
		pr->pending_snapshot = 0;
		progress_become_probe(pr);
	}
	if (pr->match < log_last_index(&r->log) || pr->state == RAFT_PROGRESS_PROBE)
		send_append(r, m->from);
	read_ack(r, m);
}

static bool check_quorum_active(raft_node_t *r)
{
	size_t active = 0;
	const raft_conf_t *c = conf(r);
	for (size_t i = 0; i < c->n_voters; i++) {
		progress_t *p = raft_progress_of(r, c->voters[i]);
		if (c->voters[i] == r->id || (p && p->recent_active))
			active++;
	}
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			r->prs[i].recent_active = false;
	return active >= quorum(r);
}

static int propose_entries(raft_node_t *r, const raft_msg_t *m)
{
	if (!raft_progress_of(r, r->id))
		return RAFT_ERR_PROPOSAL_DROPPED; /* we removed ourselves */
	if (r->lead_transferee != RAFT_NONE)
		return RAFT_ERR_PROPOSAL_DROPPED;
	uint64_t last = log_last_index(&r->log);
	for (size_t i = 0; i < m->n_entries; i++) {
		const raft_entry_t *e = m->entries[i];
		if (e->type != RAFT_ENTRY_CONF_CHANGE)
			continue;
		if (r->pending_conf_index > r->log.committed)
			return RAFT_ERR_CONF_CHANGE_PENDING;
		raft_conf_change_t *cc;
		if (conf_change_decode(e, &cc) != RAFT_OK)
			return RAFT_ERR_INVALID_CONF_CHANGE;
		raft_conf_t c = *conf(r);
		int rc = raft_conf_apply(&c, cc);
		raftpb__conf_change__free_unpacked(cc, NULL);
		if (rc != RAFT_OK)
			return rc;
		if (m->n_entries != 1)
			return RAFT_ERR_INVALID_CONF_CHANGE; /* one change per proposal */
	}
	raft_entry_t **ents = malloc(m->n_entries * sizeof(*ents));
	if (!ents)
		return RAFT_ERR_NOMEM;
	for (size_t i = 0; i < m->n_entries; i++) {
		const raft_entry_t *e = m->entries[i];
		ents[i] = raft_entry_new(r->term, last + 1 + i, e->type, e->data.data, e->data.len);
		if (!ents[i]) {
			entries_free(ents, i);
			return RAFT_ERR_NOMEM;
		}
	}
	int rc = append_entries(r, ents, m->n_entries);
	free(ents);
	if (rc != RAFT_OK)
		return rc;
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i]->type == RAFT_ENTRY_CONF_CHANGE)
			r->pending_conf_index = last + 1 + i;
	/* Sent when the next Ready is built, so proposals between two Readys travel to
	 * each follower in one MsgApp instead of one each. */
	r->append_pending = true;
	return RAFT_OK;
}

static void step_transfer_leader(raft_node_t *r, progress_t *pr, uint64_t target)
{
	if (pr->is_learner || target == r->id)
		return;
	if (r->lead_transferee == target)
		return; /* already under way */
	r->lead_transferee = target;
	r->election_elapsed = 0; /* the transfer must finish within an election timeout */
	if (pr->match == log_last_index(&r->log))
		send_timeout_now(r, target);
	else
		send_append(r, target);
}

static int step_leader(raft_node_t *r, const raft_msg_t *m)
{
	switch (m->type) {
	case RAFT_MSG_BEAT:
		bcast_heartbeat(r, NULL);
		return RAFT_OK;
	case RAFT_MSG_CHECK_QUORUM:
		if (!check_quorum_active(r))
			become_follower(r, r->term, RAFT_NONE);
		return RAFT_OK;
	case RAFT_MSG_PROP:
		if (m->n_entries == 0)
			return RAFT_ERR_INVALID_MSG;
		return propose_entries(r, m);
	case RAFT_MSG_READ_INDEX:
		step_read_index_leader(r, m);
		return RAFT_OK;
	default:
		break;
	}
	progress_t *pr = raft_progress_of(r, m->from);
	if (m->type == RAFT_MSG_TRANSFER_LEADER) {
		/* from is the transferee (etcd's convention) */
		if (pr)
			step_transfer_leader(r, pr, m->from);
		return pr ? RAFT_OK : RAFT_ERR_STEP_PEER_NOT_FOUND;
	}
	if (!pr)
		return RAFT_ERR_STEP_PEER_NOT_FOUND;
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
		handle_append_resp(r, pr, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		handle_heartbeat_resp(r, pr, m);
		break;
	case RAFT_MSG_SNAP_STATUS:
		if (pr->state != RAFT_PROGRESS_SNAPSHOT)
			break;
		if (m->reject)
			pr->pending_snapshot = 0;
		progress_become_probe(pr);
		pr->probe_sent = true; /* wait for the follower's answer to the snapshot */
		break;
	case RAFT_MSG_UNREACHABLE:
		if (pr->state == RAFT_PROGRESS_REPLICATE)
			progress_become_probe(pr);
		break;
	default:
		break;
	}
	return RAFT_OK;
}

/* ---------------------------------------------------------------- candidate, follower */

static int step_candidate(raft_node_t *r, const raft_msg_t *m)
{
	int resp_type = r->state == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP
							: RAFT_MSG_VOTE_RESP;
	switch (m->type) {
	case RAFT_MSG_PROP:
		return RAFT_ERR_NO_LEADER;
	case RAFT_MSG_READ_INDEX:
		return RAFT_ERR_NO_LEADER;
	case RAFT_MSG_APP:
		become_follower(r, m->term, m->from);
		handle_append_entries(r, m);
		return RAFT_OK;
	case RAFT_MSG_HEARTBEAT:
		become_follower(r, m->term, m->from);
		handle_heartbeat(r, m);
		return RAFT_OK;
	case RAFT_MSG_SNAP:
		become_follower(r, m->term, m->from);
		handle_snapshot(r, m);
		return RAFT_OK;
	default:
		break;
	}
	if ((int)m->type != resp_type)
		return RAFT_OK;
	int res = poll(r, m->from, !m->reject);
	if (res == 1) {
		if (r->state == RAFT_PRE_CANDIDATE) {
			campaign(r, false, false);
		} else {
			become_leader(r);
			bcast_append(r);
		}
	} else if (res == -1) {
		become_follower(r, r->term, RAFT_NONE);
	}
	return RAFT_OK;
}

static int forward_to_leader(raft_node_t *r, const raft_msg_t *m)
{
	if (r->lead == RAFT_NONE)
		return RAFT_ERR_NO_LEADER;
	raft_msg_t *c = raft_msg_clone(m);
	if (!c)
		return RAFT_ERR_NOMEM;
	c->to = r->lead;
	send(r, c);
	return RAFT_OK;
}

static int step_follower(raft_node_t *r, const raft_msg_t *m)
{
	switch (m->type) {
	case RAFT_MSG_PROP:
		if (r->lead == RAFT_NONE)
			return RAFT_ERR_NO_LEADER;
		if (r->disable_proposal_forwarding)
			return RAFT_ERR_PROPOSAL_DROPPED;
		return forward_to_leader(r, m);
	case RAFT_MSG_APP:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_append_entries(r, m);
		return RAFT_OK;
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_heartbeat(r, m);
		return RAFT_OK;
	case RAFT_MSG_SNAP:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_snapshot(r, m);
		return RAFT_OK;
	case RAFT_MSG_TRANSFER_LEADER:
	case RAFT_MSG_READ_INDEX:
		return forward_to_leader(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		hup(r, true);
		return RAFT_OK;
	case RAFT_MSG_READ_INDEX_RESP:
		add_read_state(r, m->index, &m->context);
		return RAFT_OK;
	default:
		return RAFT_OK;
	}
}

/* ---------------------------------------------------------------- step */

static bool is_local_msg(int type)
{
	return type == RAFT_MSG_HUP || type == RAFT_MSG_BEAT || type == RAFT_MSG_UNREACHABLE ||
	       type == RAFT_MSG_SNAP_STATUS || type == RAFT_MSG_CHECK_QUORUM;
}

static bool is_response_msg(int type)
{
	return type == RAFT_MSG_APP_RESP || type == RAFT_MSG_VOTE_RESP ||
	       type == RAFT_MSG_HEARTBEAT_RESP || type == RAFT_MSG_UNREACHABLE ||
	       type == RAFT_MSG_PRE_VOTE_RESP;
}

static bool well_formed(const raft_msg_t *m)
{
	if ((unsigned)m->type > RAFT_MSG_PRE_VOTE_RESP)
		return false;
	if (m->type == RAFT_MSG_SNAP && (!m->snapshot || !m->snapshot->metadata))
		return false;
	if (m->type == RAFT_MSG_APP && !entries_well_formed(m))
		return false;
	for (size_t i = 0; i < m->n_entries; i++)
		if (!m->entries[i])
			return false;
	return true;
}

/* Term handling common to every state (Raft §5.1, thesis §9.6 for pre-vote). */
static int step_term(raft_node_t *r, const raft_msg_t *m)
{
	if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
			if (!is_transfer_ctx(m) && in_lease(r))
				return 1; /* ignore: we still hear from a leader */
		}
		if (m->type == RAFT_MSG_PRE_VOTE ||
		    (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject))
			return 0; /* pre-vote never changes terms */
		bool from_leader = m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
				   m->type == RAFT_MSG_SNAP;
		become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
		return 0;
	}
	if (m->term < r->term) {
		if (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP) {
			/* Let a stale leader learn our term and step down. Only members get
			 * MsgApp and heartbeats, so this never lets a removed node disrupt;
			 * and a member whose term ran ahead while its stale configuration
			 * sent its votes elsewhere would otherwise never rejoin. */
			send(r, msg_new(RAFT_MSG_APP_RESP, m->from));
		} else if (m->type == RAFT_MSG_PRE_VOTE) {
			raft_msg_t *resp = msg_new(RAFT_MSG_PRE_VOTE_RESP, m->from);
			if (resp) {
				resp->term = r->term;
				resp->reject = true;
				send(r, resp);
			}
		}
		return 1;
	}
	return 0;
}

int raft_step_msg(raft_node_t *r, const raft_msg_t *m)
{
	if (!well_formed(m))
		return RAFT_ERR_INVALID_MSG;
	if (m->term != 0 && step_term(r, m))
		return RAFT_OK;
	switch (m->type) {
	case RAFT_MSG_HUP:
		hup(r, false);
		return RAFT_OK;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PRE_VOTE:
		handle_vote_request(r, m);
		return RAFT_OK;
	default:
		break;
	}
	if (m->term == 0 && is_response_msg(m->type) && m->type != RAFT_MSG_UNREACHABLE)
		return RAFT_ERR_INVALID_MSG;
	switch (r->state) {
	case RAFT_LEADER:
		return step_leader(r, m);
	case RAFT_CANDIDATE:
	case RAFT_PRE_CANDIDATE:
		return step_candidate(r, m);
	case RAFT_FOLLOWER:
		return step_follower(r, m);
	}
	return RAFT_OK;
}

int raft_step(raft_node_t *r, const raft_msg_t *m)
{
	if (is_local_msg(m->type))
		return RAFT_ERR_STEP_LOCAL_MSG;
	if (m->from == RAFT_NONE)
		return RAFT_ERR_INVALID_MSG;
	/* Only forwarded requests travel without a term. */
	bool forwarded = m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX ||
			 m->type == RAFT_MSG_TRANSFER_LEADER;
	if ((m->term == 0) != forwarded)
		return RAFT_ERR_INVALID_MSG;
	return raft_step_msg(r, m);
}

/* ---------------------------------------------------------------- ticks */

static void tick_election(raft_node_t *r)
{
	r->election_elapsed++;
	if (promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
		r->election_elapsed = 0;
		hup(r, false);
	}
}

static void tick_heartbeat(raft_node_t *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->election_timeout) {
		r->election_elapsed = 0;
		if (r->check_quorum && !check_quorum_active(r)) {
			become_follower(r, r->term, RAFT_NONE);
			return;
		}
		r->lead_transferee = RAFT_NONE; /* a transfer gets one election timeout */
	}
	if (r->heartbeat_elapsed >= r->heartbeat_timeout) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r, NULL);
	}
}

void raft_tick(raft_node_t *r)
{
	r->ticks++;
	if (r->state == RAFT_LEADER)
		tick_heartbeat(r);
	else
		tick_election(r);
}

/* ---------------------------------------------------------------- init */

static int bootstrap(raft_node_t *r, const raft_config_t *cfg)
{
	size_t n = cfg->n_peers + cfg->n_learners;
	if (n == 0)
		return RAFT_OK;
	raft_entry_t **ents = calloc(n, sizeof(*ents));
	if (!ents)
		return RAFT_ERR_NOMEM;
	int rc = RAFT_OK;
	for (size_t i = 0; i < n && rc == RAFT_OK; i++) {
		raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
		bool learner = i >= cfg->n_peers;
		cc.type = learner ? RAFT_CONF_ADD_LEARNER : RAFT_CONF_ADD_NODE;
		cc.node_id = learner ? cfg->learners[i - cfg->n_peers] : cfg->peers[i];
		uint8_t buf[64];
		size_t len = raftpb__conf_change__pack(&cc, buf);
		ents[i] = raft_entry_new(1, i + 1, RAFT_ENTRY_CONF_CHANGE, buf, len);
		if (!ents[i])
			rc = RAFT_ERR_NOMEM;
	}
	if (rc == RAFT_OK) {
		rc = append_entries(r, ents, n);
	} else {
		for (size_t i = 0; i < n; i++)
			raft_entry_free(ents[i]);
	}
	free(ents);
	if (rc != RAFT_OK)
		return rc;
	r->term = 1;
	log_commit_to(&r->log, n);
	return RAFT_OK;
}

/* Membership on restart: the snapshot's, then every change still in the log. */
static int load_conf(raft_node_t *r)
{
	const raft_snapshot_t *s = NULL;
	if (r->log.storage.ops->snapshot(r->log.storage.ctx, &s) != RAFT_OK)
		return RAFT_ERR_STORAGE;
	raft_conf_t c;
	uint64_t base = 0;
	if (s && s->metadata) {
		if (raft_conf_from_state(&c, s->metadata->conf_state) != RAFT_OK)
			return RAFT_ERR_STORAGE;
		base = s->metadata->index;
	} else {
		memset(&c, 0, sizeof(c));
	}
	int rc = conf_history_reset(&r->confs, base, &c);
	uint64_t first = log_first_index(&r->log), last = log_last_index(&r->log);
	for (uint64_t lo = first; rc == RAFT_OK && lo <= last;) {
		raft_entry_t **ents;
		size_t n;
		rc = log_entries(&r->log, lo, last + 1, 1 << 20, &ents, &n);
		for (size_t i = 0; rc == RAFT_OK && i < n; i++)
			rc = conf_history_on_append(&r->confs, ents[i]);
		entries_free(ents, n);
		if (n == 0)
			break;
		lo += n;
	}
	return rc;
}

static int validate(const raft_config_t *cfg)
{
	if (cfg->id == RAFT_NONE || cfg->heartbeat_tick <= 0 ||
	    cfg->election_tick <= cfg->heartbeat_tick || !cfg->storage.ops ||
	    cfg->n_peers + cfg->n_learners > RAFT_MAX_NODES)
		return RAFT_ERR_INVALID_CONFIG;
	if (cfg->read_only_option == RAFT_READ_LEASE && !cfg->check_quorum)
		return RAFT_ERR_INVALID_CONFIG; /* a lease is only as good as check-quorum */
	return RAFT_OK;
}

int raft_init(raft_node_t *r, const raft_config_t *cfg)
{
	int rc = validate(cfg);
	if (rc != RAFT_OK)
		return rc;
	memset(r, 0, sizeof(*r));
	r->id = cfg->id;
	r->election_timeout = cfg->election_tick;
	r->heartbeat_timeout = cfg->heartbeat_tick;
	r->check_quorum = cfg->check_quorum;
	r->pre_vote = cfg->pre_vote;
	r->read_only = cfg->read_only_option;
	r->disable_proposal_forwarding = cfg->disable_proposal_forwarding;
	r->max_msg_size = cfg->max_size_per_msg;
	r->max_committed_size = cfg->max_committed_size_per_ready;
	r->max_inflight = cfg->max_inflight_msgs > 0 ? cfg->max_inflight_msgs : 1;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dULL);
	if ((rc = progress_slots_alloc(r)) != RAFT_OK)
		return rc;
	if ((rc = log_init(&r->log, cfg->storage)) != RAFT_OK)
		return rc;
	raft_hard_state_t hs;
	if (cfg->storage.ops->initial_state(cfg->storage.ctx, &hs) != RAFT_OK)
		return RAFT_ERR_STORAGE;
	if ((rc = load_conf(r)) != RAFT_OK)
		return rc;
	bool empty = log_last_index(&r->log) == 0 && hs.term == 0;
	if (empty && (rc = bootstrap(r, cfg)) != RAFT_OK)
		return rc;
	if (!empty) {
		if (hs.commit > log_last_index(&r->log))
			return RAFT_ERR_STORAGE; /* hard state and log disagree */
		r->term = hs.term;
		r->vote = hs.vote;
		log_commit_to(&r->log, hs.commit);
	}
	if (cfg->applied > 0) {
		if (cfg->applied > r->log.committed)
			return RAFT_ERR_INVALID_CONFIG;
		if (cfg->applied > r->log.applied)
			r->log.applied = cfg->applied;
	}
	uint64_t term = r->term, vote = r->vote;
	become_follower(r, term, RAFT_NONE);
	r->vote = vote;
	r->prev_hs.term = empty ? 0 : hs.term;
	r->prev_hs.vote = empty ? 0 : hs.vote;
	r->prev_hs.commit = empty ? 0 : hs.commit;
	r->prev_state = RAFT_FOLLOWER;
	return RAFT_OK;
}

void raft_deinit(raft_node_t *r)
{
	free(r->prs);
	free(r->inflight_pool);
	reads_clear(r);
	free(r->reads);
	free(r->pending_reads);
	for (size_t i = 0; i < r->n_msgs; i++)
		raft_msg_free(r->msgs[i]);
	free(r->msgs);
	for (size_t i = 0; i < r->n_read_states; i++)
		free(r->read_states[i].ctx.data);
	free(r->read_states);
	entries_free(r->rd_committed, r->rd_n_committed);
	log_free(&r->log);
	conf_history_free(&r->confs);
}
