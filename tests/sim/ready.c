/* tests/sim/ready.c — one node's Ready loop: persist (snapshot, entries, hard state, or a
 * crash part-way), send, apply, read states, advance; with the checks that need what was
 * just persisted: Ready shape, log matching, commits, promises, leader completeness. */
#include <stdlib.h>

#include "sim.h"

/* Leader completeness: a new leader's (fully persisted) log holds every entry known to
 * be committed before its term. */
static void sim_check_new_leader(sim_cluster_t *c, sim_node_t *n)
{
	uint64_t term = n->st.term, bound = sim_check_commit_bound(&c->chk, term);
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	uint64_t first = 0, last = 0;
	ops->first_index(ctx, &first);
	ops->last_index(ctx, &last);
	n->led_term = term;
	c->elections++;
	SIM_TRACE_C(c, SIM_EV_LEADER, n->id, term, first, last);
	if (last < bound) {
		sim_check_fail(&c->chk, "leader completeness", "n%llu leads term %llu with a log "
			       "ending at %llu, but index %llu was committed before",
			       (unsigned long long)n->id, (unsigned long long)term,
			       (unsigned long long)last, (unsigned long long)bound);
		return;
	}
	for (uint64_t i = first; i <= bound; i++) {
		const sim_committed_t *ce = sim_check_committed_at(&c->chk, i);
		uint64_t t = 0;
		if (!ce || !(ce->flags & SIM_HAS_TERM) || ops->term(ctx, i, &t) != RAFT_OK)
			continue;
		if (t != ce->term) {
			sim_check_fail(&c->chk, "leader completeness", "n%llu leads term %llu but "
				       "holds term %llu at index %llu, where n%llu committed term "
				       "%llu", (unsigned long long)n->id, (unsigned long long)term,
				       (unsigned long long)t, (unsigned long long)i,
				       (unsigned long long)ce->by, (unsigned long long)ce->term);
			return;
		}
	}
}

static void sim_log_role(sim_cluster_t *c, sim_node_t *n, const raft_ready_t *rd)
{
	if (!rd->soft_state_changed || rd->state == n->role)
		return;
	n->role = rd->state;
	switch (rd->state) {
	case RAFT_PRE_CANDIDATE: SIM_TRACE_C(c, SIM_EV_PRE_CAMPAIGN, n->id, n->st.term + 1); break;
	case RAFT_CANDIDATE: SIM_TRACE_C(c, SIM_EV_CAMPAIGN, n->id, n->st.term); break;
	case RAFT_FOLLOWER: SIM_TRACE_C(c, SIM_EV_FOLLOW, n->id, rd->lead, n->st.term); break;
	case RAFT_LEADER: break; /* logged with its completeness check */
	}
}

/* ---- the Ready loop ---------------------------------------------------------------- */

static bool sim_ready_shape(sim_cluster_t *c, sim_node_t *n, const raft_ready_t *rd)
{
	for (size_t i = 1; i < rd->n_entries; i++)
		if (rd->entries[i]->index != rd->entries[i - 1]->index + 1)
			return sim_check_fail(&c->chk, "ready", "n%llu: entries to persist are not "
					      "contiguous (%llu then %llu)", (unsigned long long)n->id,
					      (unsigned long long)rd->entries[i - 1]->index,
					      (unsigned long long)rd->entries[i]->index);
	uint64_t base = n->sm.applied;
	if (rd->snapshot && rd->snapshot->metadata) {
		if (rd->snapshot->metadata->index <= base)
			return sim_check_fail(&c->chk, "ready", "n%llu: snapshot at %llu would take "
					      "the state machine back from %llu",
					      (unsigned long long)n->id,
					      (unsigned long long)rd->snapshot->metadata->index,
					      (unsigned long long)base);
		base = rd->snapshot->metadata->index;
	}
	for (size_t i = 0; i < rd->n_committed; i++)
		if (rd->committed[i]->index != base + 1 + i)
			return sim_check_fail(&c->chk, "ready", "n%llu: committed entry %llu handed "
					      "out after applied index %llu",
					      (unsigned long long)n->id,
					      (unsigned long long)rd->committed[i]->index,
					      (unsigned long long)(base + i));
	bool hs_moved = rd->hard_state_changed &&
			(rd->hard_state.term != n->hs.term || rd->hard_state.vote != n->hs.vote);
	if ((rd->n_entries || hs_moved) && !rd->must_sync)
		return sim_check_fail(&c->chk, "ready", "n%llu: new entries or a new term/vote "
				      "without must_sync", (unsigned long long)n->id);
	return true;
}

static void sim_free_msgs(raft_ready_t *rd)
{
	for (size_t i = 0; i < rd->n_msgs; i++)
		raft_msg_free(rd->msgs[i]);
	rd->n_msgs = 0;
}

static bool sim_check_hard_state(sim_cluster_t *c, sim_node_t *n, const raft_hard_state_t *hs)
{
	const raft_hard_state_t *old = &n->hs;
	if (hs->term < old->term)
		return sim_check_fail(&c->chk, "term monotonic", "n%llu's term went from %llu back "
				      "to %llu", (unsigned long long)n->id,
				      (unsigned long long)old->term, (unsigned long long)hs->term);
	if (hs->term == old->term && old->vote && hs->vote != old->vote)
		return sim_check_fail(&c->chk, "one vote per term", "n%llu voted for n%llu and then "
				      "for n%llu in term %llu", (unsigned long long)n->id,
				      (unsigned long long)old->vote, (unsigned long long)hs->vote,
				      (unsigned long long)hs->term);
	if (hs->commit < old->commit)
		return sim_check_fail(&c->chk, "commit monotonic", "n%llu's persisted commit went "
				      "from %llu back to %llu", (unsigned long long)n->id,
				      (unsigned long long)old->commit, (unsigned long long)hs->commit);
	return true;
}

/* Entries then the hard state, in one write and (when the Ready asks) one sync. */
static bool sim_persist(sim_cluster_t *c, sim_node_t *n, const raft_hard_state_t *hs,
			raft_entry_t *const *ents, size_t count, bool sync)
{
	if (hs && !sim_check_hard_state(c, n, hs))
		return false;
	if (!count && !hs)
		return true;
	int rc = sim_disk_save(c, n, hs, ents, count, sync);
	if (rc != RAFT_OK)
		return sim_check_fail(&c->chk, "storage", "n%llu: saving %zu entries at %llu: %s",
				      (unsigned long long)n->id, count,
				      (unsigned long long)(count ? ents[0]->index : 0),
				      sim_disk_error(n, rc));
	if (count)
		sim_confs_on_append(&n->confs, ents, count);
	if (hs)
		n->hs = *hs;
	return true;
}

static bool sim_persist_snapshot(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap)
{
	int rc = sim_disk_save_snapshot(c, n, snap);
	if (rc != RAFT_OK)
		return sim_check_fail(&c->chk, "storage", "n%llu: apply_snapshot at %llu: %s",
				      (unsigned long long)n->id,
				      (unsigned long long)snap->metadata->index,
				      sim_disk_error(n, rc));
	n->snap_index = snap->metadata->index;
	raft_conf_t conf = {0};
	if (snap->metadata->conf_state &&
	    raft_conf_from_state(&conf, snap->metadata->conf_state) != RAFT_OK)
		return sim_check_fail(&c->chk, "snapshot", "n%llu: the snapshot at %llu carries an "
				      "invalid ConfState", (unsigned long long)n->id,
				      (unsigned long long)snap->metadata->index);
	sim_confs_rebase(&n->confs, snap->metadata->index, &conf, false);
	return sim_check_committed(&c->chk, n->id, snap->metadata->index, snap->metadata->term,
				   SIM_UNKNOWN);
}

/* Crash while handling a Ready: nothing of it, or (when that leaves a valid disk) a prefix
 * of its entries without the hard state, reaches the disk. Its messages are lost. */
static void sim_crash_in_ready(sim_cluster_t *c, sim_node_t *n, raft_ready_t *rd)
{
	if (!rd->snapshot && sim_disk_torn(c, n, rd)) {
		sim_free_msgs(rd);
		sim_node_crash(c, n, n->crash_down);
		return;
	}
	bool torn_ok = rd->n_entries && !rd->snapshot &&
		       (!rd->hard_state_changed || rd->hard_state.term == n->hs.term);
	size_t written = 0;
	if (torn_ok)
		written = (size_t)sim_rng_below(&c->rng, rd->n_entries + rd->hard_state_changed);
	if (written) {
		SIM_TRACE_C(c, SIM_EV_CRASH_TORN, n->id, written, rd->n_entries);
		sim_persist(c, n, NULL, rd->entries, written, false);
	} else {
		SIM_TRACE_C(c, SIM_EV_CRASH_READY, n->id, rd->n_entries, rd->hard_state_changed,
			    rd->n_msgs);
	}
	sim_free_msgs(rd);
	sim_node_crash(c, n, n->crash_down);
}

/* Log matching and committed-prefix checks over what the disk now holds, read back
 * through the storage interface the core itself uses. */
static void sim_check_appended(sim_cluster_t *c, sim_node_t *n, raft_entry_t *const *ents,
			       size_t count, uint64_t old_commit)
{
	if (!count)
		return;
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	uint64_t lo = ents[0]->index, hi = ents[count - 1]->index + 1, last = 0, prev = 0;
	raft_entry_t **got = sim_cluster_scratch(c, count);
	size_t n_got = 0;
	int rc = ops->entries(ctx, lo, hi, UINT64_MAX, got, &n_got);
	ops->last_index(ctx, &last);
	if (rc != RAFT_OK || n_got != count || last != hi - 1) {
		sim_check_fail(&c->chk, "storage", "n%llu: after appending [%llu, %llu) the disk "
			       "returns %zu entries (%s) and ends at %llu",
			       (unsigned long long)n->id, (unsigned long long)lo,
			       (unsigned long long)hi, n_got, raft_strerror(rc),
			       (unsigned long long)last);
		return;
	}
	if (ops->term(ctx, lo - 1, &prev) != RAFT_OK)
		prev = SIM_UNKNOWN;
	uint64_t commit = n->hs.commit > old_commit ? n->hs.commit : old_commit;
	for (size_t i = 0; i < count && !sim_failed(c); i++) {
		const raft_entry_t *e = got[i];
		uint64_t h = sim_entry_hash(e);
		if (e->index != ents[i]->index || e->term != ents[i]->term ||
		    h != sim_entry_hash(ents[i])) {
			sim_check_fail(&c->chk, "storage", "n%llu: the disk returns a different "
				       "entry at %llu than was appended", (unsigned long long)n->id,
				       (unsigned long long)ents[i]->index);
			return;
		}
		sim_check_log_entry(&c->chk, n->id, e->index, e->term, h, prev);
		if (e->index <= commit)
			sim_check_committed(&c->chk, n->id, e->index, e->term, h);
		prev = e->term;
	}
}

/* Entries newly covered by the persisted commit index are committed: record them. */
static void sim_check_new_commit(sim_cluster_t *c, sim_node_t *n, uint64_t old_commit)
{
	uint64_t commit = n->hs.commit;
	sim_check_commit_seen(&c->chk, n->hs.term, commit);
	if (commit <= old_commit)
		return;
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	uint64_t first = 0, last = 0;
	ops->first_index(ctx, &first);
	ops->last_index(ctx, &last);
	if (commit > last) {
		sim_check_fail(&c->chk, "durability", "n%llu persisted commit %llu but its disk "
			       "holds entries only up to %llu", (unsigned long long)n->id,
			       (unsigned long long)commit, (unsigned long long)last);
		return;
	}
	uint64_t lo = old_commit + 1 > first ? old_commit + 1 : first;
	if (lo > commit)
		return;
	raft_entry_t **got = sim_cluster_scratch(c, (size_t)(commit + 1 - lo));
	size_t n_got = 0;
	if (ops->entries(ctx, lo, commit + 1, UINT64_MAX, got, &n_got) != RAFT_OK)
		return;
	for (size_t i = 0; i < n_got && !sim_failed(c); i++)
		sim_check_committed(&c->chk, n->id, got[i]->index, got[i]->term,
				    sim_entry_hash(got[i]));
}

/* What a message promises must already be on the disk: a granted vote, an ack of entries.
 * A later term on disk releases the promise: the node never votes in that term again, and
 * a later leader may truncate what it acked (as if persisted, acked, then truncated). */
static void sim_check_promise(sim_cluster_t *c, sim_node_t *n, const raft_msg_t *m)
{
	int type = (int)m->type;
	if (type == RAFT_MSG_VOTE_RESP && !m->reject && n->hs.term <= m->term &&
	    (n->hs.term != m->term || n->hs.vote != m->to)) {
		sim_check_fail(&c->chk, "durability", "n%llu grants its vote to n%llu in term %llu "
			       "but its disk says term %llu, vote n%llu", (unsigned long long)n->id,
			       (unsigned long long)m->to, (unsigned long long)m->term,
			       (unsigned long long)n->hs.term, (unsigned long long)n->hs.vote);
		return;
	}
	if (type != RAFT_MSG_APP_RESP || m->reject || m->term != n->hs.term)
		return;
	void *ctx;
	const raft_storage_ops_t *ops = sim_node_ops(n, &ctx);
	uint64_t last = 0;
	ops->last_index(ctx, &last);
	if (m->index > last)
		sim_check_fail(&c->chk, "durability", "n%llu acknowledges entries up to %llu to "
			       "n%llu but its disk holds only up to %llu", (unsigned long long)n->id,
			       (unsigned long long)m->index, (unsigned long long)m->to,
			       (unsigned long long)last);
}

static void sim_send(sim_cluster_t *c, sim_node_t *n, raft_ready_t *rd)
{
	for (size_t i = 0; i < rd->n_msgs; i++) {
		raft_msg_t *m = rd->msgs[i];
		/* forwarded requests keep their requester in from */
		bool forwarded = m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX ||
				 m->type == RAFT_MSG_TRANSFER_LEADER;
		if ((!forwarded && m->from != n->id) || m->from == RAFT_NONE || m->to == n->id ||
		    m->to == RAFT_NONE) {
			sim_check_fail(&c->chk, "ready", "n%llu sends a %s from n%llu to n%llu",
				       (unsigned long long)n->id, sim_msg_type_name((int)m->type),
				       (unsigned long long)m->from, (unsigned long long)m->to);
			raft_msg_free(m);
			continue;
		}
		sim_check_promise(c, n, m);
		if ((int)m->type == RAFT_MSG_SNAP)
			c->snapshots_sent++;
		sim_net_send(&c->net, &c->rng, c->now, m);
	}
	rd->n_msgs = 0;
}

static void sim_apply_snapshot(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap)
{
	const Raftpb__SnapshotMetadata *md = snap->metadata;
	const uint8_t *sm;
	size_t sm_len;
	if (!sim_disk_snapshot_sm(c, snap->data.data, snap->data.len, &sm, &sm_len) ||
	    !sim_sm_decode(&n->sm, sm, sm_len) ||
	    n->sm.applied != md->index || n->sm.term != md->term) {
		sim_check_fail(&c->chk, "snapshot", "n%llu got a snapshot for index %llu (term %llu) "
			       "whose data is not the state at that index",
			       (unsigned long long)n->id, (unsigned long long)md->index,
			       (unsigned long long)md->term);
		return;
	}
	SIM_TRACE_C(c, SIM_EV_SNAP_INSTALL, n->id, md->index, md->term);
	if (!sim_disk_install(c, n, snap))
		return;
	sim_check_snapshot(&c->chk, n->id, md->index, md->term, n->sm.chain);
}

static void sim_apply(sim_cluster_t *c, sim_node_t *n, const raft_ready_t *rd)
{
	if (rd->snapshot && rd->snapshot->metadata)
		sim_apply_snapshot(c, n, rd->snapshot);
	if (!rd->n_committed)
		return;
	if (rd->committed[rd->n_committed - 1]->index > n->hs.commit) {
		sim_check_fail(&c->chk, "ready", "n%llu is told to apply up to %llu, beyond its "
			       "commit index %llu", (unsigned long long)n->id,
			       (unsigned long long)rd->committed[rd->n_committed - 1]->index,
			       (unsigned long long)n->hs.commit);
		return;
	}
	uint64_t from = n->sm.applied + 1;
	for (size_t i = 0; i < rd->n_committed && !sim_failed(c); i++) {
		const raft_entry_t *e = rd->committed[i];
		sim_sm_apply(&n->sm, e);
		sim_check_applied(&c->chk, n->id, e->index, e->term, sim_entry_hash(e), n->sm.chain);
		sim_client_on_apply(c, n, e);
		sim_member_on_apply(c, n, e);
	}
	if (!sim_failed(c))
		sim_disk_apply(c, n, rd->committed, rd->n_committed);
	SIM_TRACE_C(c, SIM_EV_APPLY, n->id, from, n->sm.applied);
	if (n->role == RAFT_LEADER)
		SIM_TRACE_C(c, SIM_EV_LEADER_COMMIT, n->id, n->st.term, n->sm.applied);
}

void sim_node_handle_ready(sim_cluster_t *c, sim_node_t *n)
{
	raft_ready_t rd;
	int rc = raft_ready(n->raft, &rd);
	if (rc != RAFT_OK) {
		sim_check_fail(&c->chk, "ready", "n%llu: raft_ready: %s", (unsigned long long)n->id,
			       raft_strerror(rc));
		return;
	}
	if (!sim_ready_shape(c, n, &rd)) {
		sim_free_msgs(&rd);
		return;
	}
	if (n->crash_in_ready) {
		sim_crash_in_ready(c, n, &rd);
		return;
	}
	/* 1. persist: snapshot, entries, hard state (a WAL's record order) */
	uint64_t old_commit = n->hs.commit;
	bool ok = (!rd.snapshot || sim_persist_snapshot(c, n, rd.snapshot)) &&
		  sim_persist(c, n, rd.hard_state_changed ? &rd.hard_state : NULL, rd.entries,
			      rd.n_entries, rd.must_sync);
	if (ok) {
		sim_check_appended(c, n, rd.entries, rd.n_entries, old_commit);
		sim_check_new_commit(c, n, old_commit);
	}
	/* 2. send */
	sim_send(c, n, &rd);
	bool was_leader = n->role == RAFT_LEADER && n->led_term == n->st.term;
	sim_node_observe(c, n);
	if (ok && was_leader && n->st.state == RAFT_LEADER && n->st.term == n->led_term &&
	    n->hs.commit > old_commit)
		sim_confs_check_commit(c, n, n->hs.commit);
	sim_log_role(c, n, &rd);
	if (n->kv)
		sim_lease_on_role(c, n, n->sm.term);
	if (n->st.state == RAFT_LEADER && n->st.term > n->led_term)
		sim_check_new_leader(c, n);
	if (ok && !sim_failed(c))
		sim_confs_check(c, n);
	/* 3. apply, 4. read states */
	if (!sim_failed(c))
		sim_apply(c, n, &rd);
	for (size_t i = 0; i < rd.n_read_states && !sim_failed(c); i++)
		sim_client_on_read_state(c, n, &rd.read_states[i]);
	/* 5. advance */
	raft_advance(n->raft, &rd);
	if (sim_failed(c))
		return;
	sim_client_serve_reads(c, n);
	if (n->self_stop) {
		sim_node_stop(c, n);
		return;
	}
	if (n->sm.applied >= n->snap_index + c->p.snap_every)
		sim_node_snapshot(c, n);
	sim_node_observe(c, n);
}
