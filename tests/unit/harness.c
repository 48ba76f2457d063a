/* tests/unit/harness.c — the unit tests' in-process network of raft nodes.
 * Follows raft.h's Ready contract to the letter (persist, send, apply, advance) with
 * memstorage as the disk; never reaches into the core beyond raft.h. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H_STABILIZE_LIMIT 100000

static void *h_xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size);
	assert_non_null(q);
	return q;
}

/* ---- nets and nodes ---------------------------------------------------------------- */

h_net_t *h_net_alloc(h_cfg_fn fn)
{
	h_net_t *net = calloc(1, sizeof(*net));
	assert_non_null(net);
	net->cfg_fn = fn;
	net->wire = true;
	net->auto_report_snap = true;
	for (uint64_t id = 1; id <= H_MAX_NODES; id++)
		net->nodes[id].id = id;
	return net;
}

h_net_t *h_net_new(size_t n_voters, size_t n_learners, h_cfg_fn fn)
{
	uint64_t voters[H_MAX_NODES], learners[H_MAX_NODES];
	assert_true(n_voters + n_learners <= H_MAX_NODES);
	h_net_t *net = h_net_alloc(fn);
	for (size_t i = 0; i < n_voters; i++)
		voters[i] = i + 1;
	for (size_t i = 0; i < n_learners; i++)
		learners[i] = n_voters + i + 1;
	for (size_t i = 0; i < n_voters + n_learners; i++)
		h_node_boot(net, i + 1, voters, n_voters, learners, n_learners);
	h_drain_all(net);
	return net;
}

static void h_node_clear_applied(h_node_t *nd)
{
	for (size_t i = 0; i < nd->n_ents; i++)
		raft_entry_free(nd->ents[i]);
	free(nd->ents);
	free(nd->reads);
	nd->ents = NULL;
	nd->reads = NULL;
	nd->n_ents = nd->cap_ents = nd->n_reads = nd->cap_reads = 0;
}

void h_net_free(h_net_t *net)
{
	if (!net)
		return;
	h_clear(net);
	free(net->queue);
	for (uint64_t id = 1; id <= H_MAX_NODES; id++) {
		h_node_t *nd = &net->nodes[id];
		if (nd->raft)
			raft_node_free(nd->raft);
		if (nd->ms)
			raft_memstorage_free(nd->ms);
		h_node_clear_applied(nd);
	}
	free(net);
}

h_node_t *h_node(h_net_t *net, uint64_t id)
{
	assert_true(id >= 1 && id <= H_MAX_NODES);
	return &net->nodes[id];
}

raft_node_t *h_raft(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	assert_non_null(nd->raft);
	return nd->raft;
}

void h_config(h_net_t *net, uint64_t id, raft_config_t *cfg)
{
	h_node_t *nd = h_node(net, id);
	raft_config_default(cfg, id, raft_memstorage_storage(nd->ms));
	cfg->seed = id * 7919 + 17;
	cfg->applied = nd->applied;
	cfg->peers = nd->n_peers ? nd->peers : NULL;
	cfg->n_peers = nd->n_peers;
	cfg->learners = nd->n_learners ? nd->learners : NULL;
	cfg->n_learners = nd->n_learners;
	if (net->cfg_fn)
		net->cfg_fn(cfg);
}

void h_start(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	raft_config_t cfg;
	assert_null(nd->raft);
	assert_non_null(nd->ms);
	h_config(net, id, &cfg);
	int rc = raft_node_new(&cfg, &nd->raft);
	assert_int_equal(rc, RAFT_OK);
	assert_non_null(nd->raft);
	nd->present = true;
}

static void h_node_prepare(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	assert_false(nd->present);
	nd->ms = raft_memstorage_new();
	assert_non_null(nd->ms);
	nd->n_peers = nd->n_learners = 0;
	nd->applied = 0;
}

void h_node_boot(h_net_t *net, uint64_t id, const uint64_t *peers, size_t n_peers,
		 const uint64_t *learners, size_t n_learners)
{
	h_node_prepare(net, id);
	h_node_t *nd = h_node(net, id);
	memcpy(nd->peers, peers, n_peers * sizeof(*peers));
	nd->n_peers = n_peers;
	if (n_learners)
		memcpy(nd->learners, learners, n_learners * sizeof(*learners));
	nd->n_learners = n_learners;
	h_start(net, id);
}

void h_node_join(h_net_t *net, uint64_t id)
{
	h_node_prepare(net, id);
	h_start(net, id);
}

static void h_storage_seed(raft_memstorage_t *ms, const uint64_t *voters, size_t n_voters)
{
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	Raftpb__Snapshot snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = (uint64_t *)voters;
	cs.n_voters = n_voters;
	md.conf_state = &cs;
	md.index = 1;
	md.term = 1;
	snap.metadata = &md;
	assert_int_equal(raft_memstorage_apply_snapshot(ms, &snap), RAFT_OK);
}

void h_node_boot_log(h_net_t *net, uint64_t id, const uint64_t *voters, size_t n_voters,
		     const uint64_t *terms, size_t n_terms, uint64_t hs_term, uint64_t commit)
{
	h_node_prepare(net, id);
	h_node_t *nd = h_node(net, id);
	h_storage_seed(nd->ms, voters, n_voters);
	for (size_t i = 0; i < n_terms; i++) {
		char data[32];
		uint64_t index = i + 2;
		int len = snprintf(data, sizeof(data), "e%llu/t%llu", (unsigned long long)index,
				   (unsigned long long)terms[i]);
		raft_entry_t *e = raft_entry_new(terms[i], index, RAFT_ENTRY_NORMAL, data,
						 (size_t)len);
		assert_non_null(e);
		assert_int_equal(raft_memstorage_append(nd->ms, &e, 1), RAFT_OK);
		raft_entry_free(e);
	}
	raft_hard_state_t hs = {.term = hs_term, .vote = RAFT_NONE, .commit = commit};
	assert_int_equal(raft_memstorage_set_hard_state(nd->ms, &hs), RAFT_OK);
	nd->applied = 1;
	nd->snap_index = 1;
	h_start(net, id);
}

void h_stop(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	assert_non_null(nd->raft);
	raft_node_free(nd->raft);
	nd->raft = NULL;
}

void h_restart(h_net_t *net, uint64_t id)
{
	h_stop(net, id);
	h_start(net, id);
}

/* ---- status ------------------------------------------------------------------------ */

raft_status_t h_status(h_net_t *net, uint64_t id)
{
	raft_status_t st;
	memset(&st, 0, sizeof(st));
	raft_status(h_raft(net, id), &st);
	return st;
}

raft_state_t h_state(h_net_t *net, uint64_t id)
{
	return h_status(net, id).state;
}

uint64_t h_term(h_net_t *net, uint64_t id)
{
	return h_status(net, id).term;
}

uint64_t h_leader(h_net_t *net)
{
	uint64_t best = 0, best_term = 0;
	for (uint64_t id = 1; id <= H_MAX_NODES; id++) {
		if (!net->nodes[id].raft)
			continue;
		raft_status_t st = h_status(net, id);
		if (st.state == RAFT_LEADER && st.term >= best_term) {
			best = id;
			best_term = st.term;
		}
	}
	return best;
}

size_t h_count_leaders(h_net_t *net)
{
	size_t n = 0;
	for (uint64_t id = 1; id <= H_MAX_NODES; id++)
		if (net->nodes[id].raft && h_state(net, id) == RAFT_LEADER)
			n++;
	return n;
}

/* ---- the Ready loop ---------------------------------------------------------------- */

static void h_enqueue(h_net_t *net, raft_msg_t *m)
{
	if (net->n_queue == net->cap_queue) {
		net->cap_queue = net->cap_queue ? 2 * net->cap_queue : 64;
		net->queue = h_xrealloc(net->queue, net->cap_queue * sizeof(*net->queue));
	}
	net->queue[net->n_queue++] = m;
}

static void h_count_sent(h_net_t *net, const raft_msg_t *m)
{
	if (m->from <= H_MAX_NODES && m->to <= H_MAX_NODES && (int)m->type < H_MSG_TYPES)
		net->sent[m->from][m->to][m->type]++;
}

static void h_record_entry(h_node_t *nd, const raft_entry_t *e)
{
	if (nd->n_ents == nd->cap_ents) {
		nd->cap_ents = nd->cap_ents ? 2 * nd->cap_ents : 64;
		nd->ents = h_xrealloc(nd->ents, nd->cap_ents * sizeof(*nd->ents));
	}
	nd->ents[nd->n_ents] = raft_entry_clone(e);
	assert_non_null(nd->ents[nd->n_ents]);
	nd->n_ents++;
}

static void h_record_read(h_node_t *nd, const raft_read_state_t *rs)
{
	if (nd->n_reads == nd->cap_reads) {
		nd->cap_reads = nd->cap_reads ? 2 * nd->cap_reads : 16;
		nd->reads = h_xrealloc(nd->reads, nd->cap_reads * sizeof(*nd->reads));
	}
	h_read_t *r = &nd->reads[nd->n_reads++];
	memset(r, 0, sizeof(*r));
	r->index = rs->index;
	size_t len = rs->ctx.len < sizeof(r->ctx) - 1 ? rs->ctx.len : sizeof(r->ctx) - 1;
	if (len)
		memcpy(r->ctx, rs->ctx.data, len);
}

static void h_persist(h_node_t *nd, const raft_ready_t *rd)
{
	if (rd->hard_state_changed) {
		assert_true(rd->hard_state.commit >= nd->max_commit);
		nd->max_commit = rd->hard_state.commit;
		assert_int_equal(raft_memstorage_set_hard_state(nd->ms, &rd->hard_state), 0);
	}
	if (rd->snapshot)
		assert_int_equal(raft_memstorage_apply_snapshot(nd->ms, rd->snapshot), RAFT_OK);
	if (rd->n_entries)
		assert_int_equal(raft_memstorage_append(nd->ms, rd->entries, rd->n_entries), 0);
}

static void h_apply(h_node_t *nd, const raft_ready_t *rd)
{
	if (rd->snapshot) {
		nd->n_snaps++;
		nd->snap_index = rd->snapshot->metadata->index;
		nd->applied = nd->snap_index;
	}
	for (size_t i = 0; i < rd->n_committed; i++) {
		const raft_entry_t *e = rd->committed[i];
		assert_true(e->index > nd->applied);
		h_record_entry(nd, e);
		nd->applied = e->index;
	}
	for (size_t i = 0; i < rd->n_read_states; i++)
		h_record_read(nd, &rd->read_states[i]);
}

static void h_ready_once(h_net_t *net, h_node_t *nd)
{
	raft_ready_t rd;
	memset(&rd, 0, sizeof(rd));
	assert_int_equal(raft_ready(nd->raft, &rd), RAFT_OK);
	h_ready_handle(net, nd, &rd);
}

void h_ready_handle(h_net_t *net, h_node_t *nd, raft_ready_t *rd)
{
	if (net->ready_hook)
		net->ready_hook(net, nd, rd, net->hook_arg);
	h_persist(nd, rd);
	for (size_t i = 0; i < rd->n_msgs; i++) {
		h_count_sent(net, rd->msgs[i]);
		h_enqueue(net, rd->msgs[i]);
		rd->msgs[i] = NULL;
	}
	h_apply(nd, rd);
	raft_advance(nd->raft, rd);
	if (nd->compact_every && nd->applied >= nd->snap_index + nd->compact_every)
		h_compact(net, nd->id);
}

void h_drain(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	for (int guard = 0; nd->raft && raft_has_ready(nd->raft); guard++) {
		assert_true(guard < 1000);
		h_ready_once(net, nd);
	}
}

void h_drain_all(h_net_t *net)
{
	for (uint64_t id = 1; id <= H_MAX_NODES; id++)
		h_drain(net, id);
}

/* ---- delivery ---------------------------------------------------------------------- */

static bool h_dropped(h_net_t *net, raft_msg_t *m)
{
	if (net->filter && net->filter(net, m, net->filter_arg))
		return true;
	if (m->from <= H_MAX_NODES && m->to <= H_MAX_NODES && net->cut[m->from][m->to])
		return true;
	if ((int)m->type < 32 && (net->drop_types & (1u << m->type)))
		return true;
	return m->to == 0 || m->to > H_MAX_NODES || !net->nodes[m->to].raft;
}

static raft_msg_t *h_wire(raft_msg_t *m)
{
	size_t len = raftpb__message__get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	assert_int_equal(raftpb__message__pack(m, buf), len);
	raft_msg_t *copy = raftpb__message__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(copy);
	raft_msg_free(m);
	return copy;
}

static void h_deliver_one(h_net_t *net, raft_msg_t *m)
{
	if (h_dropped(net, m)) {
		raft_msg_free(m);
		return;
	}
	if (net->wire)
		m = h_wire(m);
	if (raft_step(net->nodes[m->to].raft, m) != RAFT_OK)
		net->step_errors++;
	if ((int)m->type == RAFT_MSG_SNAP && net->auto_report_snap && m->from <= H_MAX_NODES &&
	    net->nodes[m->from].raft)
		raft_report_snapshot(net->nodes[m->from].raft, m->to, false);
	raft_msg_free(m);
}

size_t h_deliver(h_net_t *net)
{
	h_drain_all(net);
	raft_msg_t **batch = net->queue;
	size_t n = net->n_queue;
	net->queue = NULL;
	net->n_queue = net->cap_queue = 0;
	for (size_t i = 0; i < n; i++)
		h_deliver_one(net, batch[i]);
	free(batch);
	return n;
}

static bool h_any_ready(h_net_t *net)
{
	for (uint64_t id = 1; id <= H_MAX_NODES; id++)
		if (net->nodes[id].raft && raft_has_ready(net->nodes[id].raft))
			return true;
	return false;
}

void h_stabilize(h_net_t *net)
{
	for (int i = 0; net->n_queue || h_any_ready(net); i++) {
		assert_true(i < H_STABILIZE_LIMIT);
		h_deliver(net);
	}
}

void h_tick(h_net_t *net, uint64_t id, int n)
{
	for (int i = 0; i < n; i++)
		raft_tick(h_raft(net, id));
}

void h_tick_all(h_net_t *net, int n)
{
	for (int i = 0; i < n; i++)
		for (uint64_t id = 1; id <= H_MAX_NODES; id++)
			if (net->nodes[id].raft)
				raft_tick(net->nodes[id].raft);
}

void h_tick_stabilize(h_net_t *net, int n)
{
	for (int i = 0; i < n; i++) {
		h_tick_all(net, 1);
		h_stabilize(net);
	}
}

void h_elect(h_net_t *net, uint64_t id)
{
	assert_int_equal(raft_campaign(h_raft(net, id)), RAFT_OK);
	h_stabilize(net);
	assert_int_equal(h_state(net, id), RAFT_LEADER);
}

int h_propose(h_net_t *net, uint64_t id, const char *s)
{
	return raft_propose(h_raft(net, id), s, strlen(s));
}

int h_propose_cc(h_net_t *net, uint64_t id, int type, uint64_t node_id)
{
	Raftpb__ConfChange cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)type;
	cc.node_id = node_id;
	return raft_propose_conf_change(h_raft(net, id), &cc);
}

int h_read_index(h_net_t *net, uint64_t id, const char *ctx)
{
	return raft_read_index(h_raft(net, id), ctx, strlen(ctx));
}

/* ---- filters ----------------------------------------------------------------------- */

void h_cut(h_net_t *net, uint64_t a, uint64_t b)
{
	net->cut[a][b] = net->cut[b][a] = true;
}

void h_isolate(h_net_t *net, uint64_t id)
{
	for (uint64_t o = 1; o <= H_MAX_NODES; o++)
		if (o != id)
			h_cut(net, id, o);
}

void h_heal(h_net_t *net)
{
	memset(net->cut, 0, sizeof(net->cut));
	net->drop_types = 0;
	net->filter = NULL;
	net->filter_arg = NULL;
}

void h_drop_type(h_net_t *net, int type)
{
	net->drop_types |= 1u << type;
}

void h_set_filter(h_net_t *net, h_filter_fn fn, void *arg)
{
	net->filter = fn;
	net->filter_arg = arg;
}

void h_set_ready_hook(h_net_t *net, h_ready_fn fn, void *arg)
{
	net->ready_hook = fn;
	net->hook_arg = arg;
}

/* ---- the queue --------------------------------------------------------------------- */

static bool h_matches(const raft_msg_t *m, int type, uint64_t from, uint64_t to)
{
	return (type == H_ANY_TYPE || (int)m->type == type) &&
	       (from == H_ANY || m->from == from) && (to == H_ANY || m->to == to);
}

size_t h_count(const h_net_t *net, int type, uint64_t from, uint64_t to)
{
	size_t n = 0;
	for (size_t i = 0; i < net->n_queue; i++)
		n += h_matches(net->queue[i], type, from, to);
	return n;
}

size_t h_take(h_net_t *net, int type, uint64_t from, uint64_t to, raft_msg_t **out,
	      size_t max)
{
	size_t taken = 0, kept = 0;
	for (size_t i = 0; i < net->n_queue; i++) {
		raft_msg_t *m = net->queue[i];
		if (taken < max && h_matches(m, type, from, to))
			out[taken++] = m;
		else
			net->queue[kept++] = m;
	}
	net->n_queue = kept;
	return taken;
}

void h_send(h_net_t *net, raft_msg_t *m)
{
	h_enqueue(net, m);
}

void h_clear(h_net_t *net)
{
	for (size_t i = 0; i < net->n_queue; i++)
		raft_msg_free(net->queue[i]);
	net->n_queue = 0;
}

size_t h_sent(const h_net_t *net, int type, uint64_t from, uint64_t to)
{
	size_t n = 0;
	for (uint64_t f = 1; f <= H_MAX_NODES; f++)
		for (uint64_t t = 1; t <= H_MAX_NODES; t++)
			if ((from == H_ANY || f == from) && (to == H_ANY || t == to))
				n += net->sent[f][t][type];
	return n;
}

void h_reset_sent(h_net_t *net)
{
	memset(net->sent, 0, sizeof(net->sent));
}

/* ---- storage and state machine views ----------------------------------------------- */

static raft_storage_t h_storage(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	assert_non_null(nd->ms);
	return raft_memstorage_storage(nd->ms);
}

uint64_t h_log_term(h_net_t *net, uint64_t id, uint64_t index)
{
	raft_storage_t s = h_storage(net, id);
	uint64_t term = 0;
	if (s.ops->term(s.ctx, index, &term) != RAFT_OK)
		return 0;
	return term;
}

uint64_t h_last_index(h_net_t *net, uint64_t id)
{
	raft_storage_t s = h_storage(net, id);
	uint64_t index = 0;
	assert_int_equal(s.ops->last_index(s.ctx, &index), RAFT_OK);
	return index;
}

uint64_t h_first_index(h_net_t *net, uint64_t id)
{
	raft_storage_t s = h_storage(net, id);
	uint64_t index = 0;
	assert_int_equal(s.ops->first_index(s.ctx, &index), RAFT_OK);
	return index;
}

bool h_logs_equal(h_net_t *net, uint64_t a, uint64_t b)
{
	uint64_t last = h_last_index(net, a);
	if (last != h_last_index(net, b))
		return false;
	uint64_t first = h_first_index(net, a);
	if (h_first_index(net, b) > first)
		first = h_first_index(net, b);
	for (uint64_t i = first; i <= last; i++)
		if (h_log_term(net, a, i) != h_log_term(net, b, i) || h_log_term(net, a, i) == 0)
			return false;
	return true;
}

size_t h_applied_count(h_net_t *net, uint64_t id, const char *s)
{
	h_node_t *nd = h_node(net, id);
	size_t n = 0, len = strlen(s);
	for (size_t i = 0; i < nd->n_ents; i++) {
		const raft_entry_t *e = nd->ents[i];
		if (e->type == RAFTPB__ENTRY_TYPE__ENTRY_NORMAL && e->data.len == len &&
		    memcmp(e->data.data, s, len) == 0)
			n++;
	}
	return n;
}

size_t h_applied_normal(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	size_t n = 0;
	for (size_t i = 0; i < nd->n_ents; i++)
		n += nd->ents[i]->type == RAFTPB__ENTRY_TYPE__ENTRY_NORMAL &&
		     nd->ents[i]->data.len > 0;
	return n;
}

void h_compact(h_net_t *net, uint64_t id)
{
	h_node_t *nd = h_node(net, id);
	raft_conf_t conf;
	char data[32];
	if (nd->applied <= nd->snap_index)
		return;
	raft_applied_conf(h_raft(net, id), &conf);
	int len = snprintf(data, sizeof(data), "snap@%llu", (unsigned long long)nd->applied);
	assert_int_equal(raft_memstorage_create_snapshot(nd->ms, nd->applied, &conf, data,
							 (size_t)len), RAFT_OK);
	assert_int_equal(raft_memstorage_compact(nd->ms, nd->applied), RAFT_OK);
	nd->snap_index = nd->applied;
}

raft_msg_t h_msg(int type, uint64_t from, uint64_t to, uint64_t term)
{
	raft_msg_t m = RAFTPB__MESSAGE__INIT;
	m.type = (Raftpb__MessageType)type;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}
