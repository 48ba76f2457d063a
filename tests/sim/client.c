/* tests/sim/client.c — the clients: unique writes (raft_propose) and linearizable reads
 * (raft_read_index) sent to random nodes, acknowledgements, and the checks that every read
 * sees every write acknowledged before it began and that no acknowledged write is lost. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_READ_CTX_LEN 9

void sim_clients_free(sim_clients_t *cl)
{
	free(cl->w);
	free(cl->r);
	memset(cl, 0, sizeof(*cl));
}

static void *sim_grow_slot(void *arr, size_t *cap, size_t elem, size_t index)
{
	if (index < *cap)
		return arr;
	size_t n = *cap ? *cap * 2 : 256;
	while (n <= index)
		n *= 2;
	char *p = realloc(arr, n * elem);
	if (!p)
		abort();
	memset(p + *cap * elem, 0, (n - *cap) * elem);
	*cap = n;
	return p;
}

uint64_t sim_client_write(sim_cluster_t *c, sim_node_t *n)
{
	sim_clients_t *cl = &c->cl;
	uint64_t wid = ++cl->n_w;
	cl->w = sim_grow_slot(cl->w, &cl->cap_w, sizeof(*cl->w), (size_t)wid);
	uint8_t buf[SIM_WRITE_HEADER + 256];
	size_t pad = (size_t)sim_rng_below(&c->rng, c->p.write_pad_max + 1);
	size_t len = sim_write_encode(buf, sizeof(buf), wid, n->id, pad);
	int rc = raft_propose(n->raft, buf, len);
	if (rc != RAFT_OK) {
		SIM_TRACE_C(c, SIM_EV_PROPOSE_FAIL, wid, n->id, (uint64_t)(int64_t)rc);
		return 0;
	}
	cl->w[wid] = (sim_write_t){.node = n->id, .life = n->life};
	SIM_TRACE_C(c, SIM_EV_PROPOSE, wid, n->id);
	return wid;
}

uint64_t sim_client_read(sim_cluster_t *c, sim_node_t *n)
{
	sim_clients_t *cl = &c->cl;
	uint64_t rid = ++cl->n_r;
	cl->r = sim_grow_slot(cl->r, &cl->cap_r, sizeof(*cl->r), (size_t)rid);
	uint8_t ctx[SIM_READ_CTX_LEN] = {'R'};
	sim_put64(ctx + 1, rid);
	int rc = raft_read_index(n->raft, ctx, sizeof(ctx));
	if (rc != RAFT_OK) {
		SIM_TRACE_C(c, SIM_EV_READ_FAIL, rid, n->id, (uint64_t)(int64_t)rc);
		return 0;
	}
	cl->r[rid] = (sim_read_t){.node = n->id, .life = n->life, .start = c->now,
				  .need_index = cl->max_acked_index, .need_wid = cl->max_acked_wid};
	SIM_TRACE_C(c, SIM_EV_READ, rid, n->id, cl->max_acked_index);
	return rid;
}

/* A write is acknowledged when the node it was proposed to (in the same life) applies it. */
void sim_client_on_apply(sim_cluster_t *c, sim_node_t *n, const raft_entry_t *e)
{
	sim_clients_t *cl = &c->cl;
	uint64_t wid, proposer;
	if (!sim_write_decode(e, &wid, &proposer))
		return;
	if (wid == 0 || wid > cl->n_w) {
		sim_check_fail(&c->chk, "integrity", "n%llu applied write w%llu nobody sent",
			       (unsigned long long)n->id, (unsigned long long)wid);
		return;
	}
	sim_write_t *w = &cl->w[wid];
	if (w->acked || w->node != n->id || w->life != n->life || proposer != n->id)
		return;
	w->acked = true;
	w->index = e->index;
	cl->acked++;
	if (e->index > cl->max_acked_index) {
		cl->max_acked_index = e->index;
		cl->max_acked_wid = wid;
	}
	SIM_TRACE_C(c, SIM_EV_ACK, n->id, wid, e->index);
}

static void sim_pending_push(sim_node_t *n, uint64_t rid, uint64_t index)
{
	if (n->n_reads == n->cap_reads) {
		size_t cap = n->cap_reads ? n->cap_reads * 2 : 16;
		sim_pending_read_t *p = realloc(n->reads, cap * sizeof(*p));
		if (!p)
			abort();
		n->reads = p;
		n->cap_reads = cap;
	}
	n->reads[n->n_reads++] = (sim_pending_read_t){rid, index};
}

void sim_client_on_read_state(sim_cluster_t *c, sim_node_t *n, const raft_read_state_t *rs)
{
	sim_clients_t *cl = &c->cl;
	uint64_t rid = 0;
	if (rs->ctx.len == SIM_READ_CTX_LEN && rs->ctx.data[0] == 'R')
		rid = sim_get64(rs->ctx.data + 1);
	if (rid == 0 || rid > cl->n_r || cl->r[rid].node == 0) {
		sim_check_fail(&c->chk, "read index", "n%llu returned a read state for a read "
			       "nobody asked for (ctx of %zu bytes)", (unsigned long long)n->id,
			       rs->ctx.len);
		return;
	}
	sim_read_t *r = &cl->r[rid];
	if (r->node != n->id) {
		sim_check_fail(&c->chk, "read index", "read r%llu was asked of n%llu but n%llu "
			       "answered it", (unsigned long long)rid, (unsigned long long)r->node,
			       (unsigned long long)n->id);
		return;
	}
	if (rs->index < r->need_index) {
		sim_check_fail(&c->chk, "linearizable read", "read r%llu on n%llu got read index "
			       "%llu, but write w%llu at index %llu was acknowledged before the "
			       "read began", (unsigned long long)rid, (unsigned long long)n->id,
			       (unsigned long long)rs->index, (unsigned long long)r->need_wid,
			       (unsigned long long)r->need_index);
		return;
	}
	SIM_TRACE_C(c, SIM_EV_READ_INDEX, n->id, rid, rs->index);
	if (r->life == n->life && !r->served)
		sim_pending_push(n, rid, rs->index);
}

void sim_client_serve_reads(sim_cluster_t *c, sim_node_t *n)
{
	size_t keep = 0;
	for (size_t i = 0; i < n->n_reads; i++) {
		sim_pending_read_t pr = n->reads[i];
		sim_read_t *r = &c->cl.r[pr.rid];
		if (pr.index > n->sm.applied) {
			n->reads[keep++] = pr;
			continue;
		}
		if (r->served)
			continue;
		if (n->sm.applied < r->need_index ||
		    (r->need_wid && !sim_sm_has_write(&n->sm, r->need_wid))) {
			sim_check_fail(&c->chk, "linearizable read", "n%llu served read r%llu at "
				       "applied %llu without write w%llu (index %llu) acknowledged "
				       "before the read began", (unsigned long long)n->id,
				       (unsigned long long)pr.rid, (unsigned long long)n->sm.applied,
				       (unsigned long long)r->need_wid,
				       (unsigned long long)r->need_index);
			return;
		}
		r->served = true;
		c->cl.served++;
		SIM_TRACE_C(c, SIM_EV_READ_SERVED, n->id, pr.rid, n->sm.applied);
	}
	n->n_reads = keep;
}

bool sim_client_check_member(sim_cluster_t *c, sim_node_t *n)
{
	const sim_clients_t *cl = &c->cl;
	for (uint64_t wid = 1; wid <= cl->n_w; wid++) {
		const sim_write_t *w = &cl->w[wid];
		if (w->acked && !sim_sm_has_write(&n->sm, wid))
			return sim_check_fail(&c->chk, "durability", "write w%llu was acknowledged at "
					      "index %llu but member n%llu (applied %llu) does not have "
					      "it", (unsigned long long)wid,
					      (unsigned long long)w->index, (unsigned long long)n->id,
					      (unsigned long long)n->sm.applied);
	}
	return true;
}

/* Mostly the current leader; sometimes any node that believes it leads (a stale leader
 * is where linearizability breaks); otherwise any live node (followers forward). */
static sim_node_t *sim_client_target(sim_cluster_t *c)
{
	sim_node_t *l = sim_cluster_leader(c);
	uint64_t dice = sim_rng_below(&c->rng, 100);
	if (l && dice >= (uint64_t)(c->p.p_follower_op * 100) + 15)
		return l;
	sim_node_t *up[SIM_MAX_IDS], *leaders[SIM_MAX_IDS];
	size_t n = 0, nl = 0;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *x = &c->nodes[id];
		if (x->state != SIM_NODE_UP)
			continue;
		up[n++] = x;
		if (x->st.state == RAFT_LEADER)
			leaders[nl++] = x;
	}
	if (nl && dice < 15)
		return leaders[sim_rng_below(&c->rng, nl)];
	return n ? up[sim_rng_below(&c->rng, n)] : NULL;
}

/* p_write is the expected number of writes per tick (may exceed 1). */
void sim_client_tick(sim_cluster_t *c)
{
	if (c->phase != SIM_PHASE_CHAOS || c->scripted)
		return;
	double w = c->p.p_write;
	for (; w > 0 && !sim_failed(c); w -= 1.0) {
		if (w < 1.0 && !sim_rng_chance(&c->rng, w))
			break;
		sim_node_t *n = sim_client_target(c);
		if (n)
			sim_client_write(c, n);
	}
	if (sim_rng_chance(&c->rng, c->p.p_read)) {
		sim_node_t *n = sim_client_target(c);
		if (n)
			sim_client_read(c, n);
	}
}
