/* tests/sim/net.c — in-flight messages in a binary heap ordered by (delivery time, send
 * order), per-link FIFO, the loss/duplication/reordering model and the partition table.
 * Never steps a node: the cluster pops due messages and decides what reaching one means. */
#include "net.h"

#include <stdlib.h>
#include <string.h>

void sim_net_init(sim_net_t *net, const sim_net_faults_t *f)
{
	memset(net, 0, sizeof(*net));
	net->f = *f;
	net->faults_on = true;
	net->link_last = calloc(SIM_NET_IDS * SIM_NET_IDS, sizeof(uint64_t));
	if (!net->link_last)
		abort();
}

void sim_net_free(sim_net_t *net)
{
	for (size_t i = 0; i < net->n; i++)
		raft_msg_free(net->heap[i].m);
	free(net->heap);
	net->heap = NULL;
	free(net->link_last);
	net->link_last = NULL;
	net->n = net->cap = 0;
}

static bool sim_packet_before(const sim_packet_t *x, const sim_packet_t *y)
{
	return x->at != y->at ? x->at < y->at : x->tie < y->tie;
}

static void sim_heap_swap(sim_packet_t *h, size_t i, size_t j)
{
	sim_packet_t t = h[i];
	h[i] = h[j];
	h[j] = t;
}

static void sim_heap_push(sim_net_t *net, sim_packet_t p)
{
	if (net->n == net->cap) {
		size_t cap = net->cap ? net->cap * 2 : 256;
		sim_packet_t *h = realloc(net->heap, cap * sizeof(*h));
		if (!h)
			abort();
		net->heap = h;
		net->cap = cap;
	}
	size_t i = net->n++;
	net->heap[i] = p;
	while (i > 0 && sim_packet_before(&net->heap[i], &net->heap[(i - 1) / 2])) {
		sim_heap_swap(net->heap, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static sim_packet_t sim_heap_pop(sim_net_t *net)
{
	sim_packet_t top = net->heap[0];
	net->heap[0] = net->heap[--net->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < net->n && sim_packet_before(&net->heap[l], &net->heap[m]))
			m = l;
		if (r < net->n && sim_packet_before(&net->heap[r], &net->heap[m]))
			m = r;
		if (m == i)
			break;
		sim_heap_swap(net->heap, i, m);
		i = m;
	}
	return top;
}

/* Delivery time of a message sent now: after everything sent earlier on its link, unless
 * it is reordered or held back (faults), which takes it out of the link's order. */
static uint64_t sim_net_arrival(sim_net_t *net, sim_rng_t *rng, uint64_t now, const raft_msg_t *m,
				bool force_out_of_order)
{
	const sim_net_faults_t *f = &net->f;
	uint64_t at = now + sim_rng_range(rng, f->lat_min ? f->lat_min : 1, f->lat_max);
	bool out_of_order = force_out_of_order;
	if (net->faults_on && sim_rng_chance(rng, f->reorder))
		at += sim_rng_range(rng, 0, f->jitter_max), out_of_order = true;
	if (net->faults_on && sim_rng_chance(rng, f->long_delay))
		at += sim_rng_range(rng, f->jitter_max, f->long_max), out_of_order = true;
	if (out_of_order || m->from >= SIM_NET_IDS || m->to >= SIM_NET_IDS)
		return at;
	uint64_t *last = &net->link_last[m->from * SIM_NET_IDS + m->to];
	if (at < *last)
		at = *last;
	*last = at;
	return at;
}

raft_msg_t *sim_net_wire(raft_msg_t *m)
{
	size_t len = raftpb__message__get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	if (raftpb__message__pack(m, buf) != len) {
		free(buf);
		return NULL;
	}
	raft_msg_t *copy = raftpb__message__unpack(NULL, len, buf);
	free(buf);
	if (!copy)
		return NULL;
	raft_msg_free(m);
	return copy;
}

void sim_net_send(sim_net_t *net, sim_rng_t *rng, uint64_t now, raft_msg_t *m)
{
	net->sent++;
	bool lost = net->faults_on && sim_rng_chance(rng, net->f.drop);
	if (!lost && sim_rng_chance(rng, net->f.wire)) {
		raft_msg_t *w = sim_net_wire(m);
		if (!w)
			abort(); /* the encoder failed on the core's own message */
		m = w;
		net->wired++;
	}
	if (!lost && net->faults_on && sim_rng_chance(rng, net->f.dup)) {
		raft_msg_t *dup = raft_msg_clone(m);
		if (!dup)
			abort();
		sim_heap_push(net, (sim_packet_t){sim_net_arrival(net, rng, now, dup, true),
						  net->seq++, dup, false});
		net->duplicated++;
	}
	net->dropped += lost;
	sim_heap_push(net, (sim_packet_t){sim_net_arrival(net, rng, now, m, false), net->seq++, m,
					  lost});
}

uint64_t sim_net_next_time(const sim_net_t *net)
{
	return net->n ? net->heap[0].at : UINT64_MAX;
}

raft_msg_t *sim_net_pop(sim_net_t *net, uint64_t now, bool *lost)
{
	if (!net->n || net->heap[0].at > now)
		return NULL;
	sim_packet_t p = sim_heap_pop(net);
	*lost = p.lost;
	net->delivered += !p.lost;
	return p.m;
}

static bool sim_in(uint64_t set, uint64_t id)
{
	return id < 64 && (set >> id & 1);
}

bool sim_net_blocked(const sim_net_t *net, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < net->n_parts; i++) {
		const sim_partition_t *p = &net->parts[i];
		if (sim_in(p->a, from) && sim_in(p->b, to))
			return true;
		if (p->symmetric && sim_in(p->b, from) && sim_in(p->a, to))
			return true;
	}
	return false;
}

bool sim_net_partition(sim_net_t *net, uint64_t a, uint64_t b, bool symmetric, uint64_t until)
{
	if (net->n_parts == SIM_NET_MAX_PARTS)
		return false;
	net->parts[net->n_parts++] = (sim_partition_t){a, b, symmetric, until};
	return true;
}

bool sim_net_heal_due(sim_net_t *net, uint64_t now, sim_partition_t *healed)
{
	for (size_t i = 0; i < net->n_parts; i++) {
		if (net->parts[i].until <= now) {
			*healed = net->parts[i];
			net->parts[i] = net->parts[--net->n_parts];
			return true;
		}
	}
	return false;
}

void sim_net_heal_all(sim_net_t *net)
{
	net->n_parts = 0;
}
