/* tests/sim/sm.c — the replicated state machine: applies entries, answers "has write w been
 * applied", and encodes itself as snapshot data. Knows nothing of nodes or the network. */
#include "sm.h"

#include <stdlib.h>
#include <string.h>

#define SIM_SM_HEADER (4 + 8 * 5)

void sim_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t sim_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t sim_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

uint64_t sim_entry_hash(const raft_entry_t *e)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)e->type;
	for (size_t i = 0; i < e->data.len; i++) {
		h ^= e->data.data[i];
		h *= 0x100000001b3ull;
	}
	return sim_mix(h ^ e->data.len);
}

uint64_t sim_chain_next(uint64_t chain, uint64_t index, uint64_t term, uint64_t hash)
{
	return sim_mix(chain ^ sim_mix(index * 0x9e3779b97f4a7c15ull ^ term) ^ hash);
}

void sim_sm_init(sim_sm_t *sm)
{
	memset(sm, 0, sizeof(*sm));
}

void sim_sm_free(sim_sm_t *sm)
{
	free(sm->bits);
	memset(sm, 0, sizeof(*sm));
}

static void sim_sm_set_write(sim_sm_t *sm, uint64_t wid)
{
	size_t byte = (size_t)(wid / 8);
	if (byte >= sm->nbytes) {
		size_t n = sm->nbytes ? sm->nbytes : 64;
		while (n <= byte)
			n *= 2;
		uint8_t *bits = realloc(sm->bits, n);
		if (!bits)
			abort();
		memset(bits + sm->nbytes, 0, n - sm->nbytes);
		sm->bits = bits;
		sm->nbytes = n;
	}
	sm->bits[byte] |= (uint8_t)(1u << (wid % 8));
}

bool sim_sm_has_write(const sim_sm_t *sm, uint64_t wid)
{
	size_t byte = (size_t)(wid / 8);
	return byte < sm->nbytes && (sm->bits[byte] >> (wid % 8) & 1);
}

void sim_sm_apply(sim_sm_t *sm, const raft_entry_t *e)
{
	uint64_t wid, proposer;
	sm->chain = sim_chain_next(sm->chain, e->index, e->term, sim_entry_hash(e));
	sm->applied = e->index;
	sm->term = e->term;
	if (sim_write_decode(e, &wid, &proposer)) {
		sim_sm_set_write(sm, wid);
		sm->writes++;
	}
}

bool sim_sm_encode(const sim_sm_t *sm, uint8_t **buf, size_t *len)
{
	size_t n = SIM_SM_HEADER + sm->nbytes;
	uint8_t *p = malloc(n);
	if (!p)
		return false;
	p[0] = 'K', p[1] = 'S', p[2] = 'M', p[3] = '1';
	sim_put64(p + 4, sm->applied);
	sim_put64(p + 12, sm->term);
	sim_put64(p + 20, sm->chain);
	sim_put64(p + 28, sm->writes);
	sim_put64(p + 36, sm->nbytes);
	if (sm->nbytes)
		memcpy(p + SIM_SM_HEADER, sm->bits, sm->nbytes);
	*buf = p;
	*len = n;
	return true;
}

bool sim_sm_decode(sim_sm_t *sm, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	if (len < SIM_SM_HEADER || memcmp(p, "KSM1", 4) != 0)
		return false;
	uint64_t nbytes = sim_get64(p + 36);
	if (nbytes != len - SIM_SM_HEADER)
		return false;
	uint8_t *bits = NULL;
	if (nbytes) {
		bits = malloc((size_t)nbytes);
		if (!bits)
			return false;
		memcpy(bits, p + SIM_SM_HEADER, (size_t)nbytes);
	}
	free(sm->bits);
	sm->applied = sim_get64(p + 4);
	sm->term = sim_get64(p + 12);
	sm->chain = sim_get64(p + 20);
	sm->writes = sim_get64(p + 28);
	sm->bits = bits;
	sm->nbytes = (size_t)nbytes;
	return true;
}

size_t sim_write_encode(uint8_t *buf, size_t cap, uint64_t wid, uint64_t proposer, size_t pad)
{
	size_t n = SIM_WRITE_HEADER + pad;
	if (n > cap)
		n = cap, pad = cap - SIM_WRITE_HEADER;
	buf[0] = 'W';
	sim_put64(buf + 1, wid);
	sim_put64(buf + 9, proposer);
	for (size_t i = 0; i < pad; i++)
		buf[SIM_WRITE_HEADER + i] = (uint8_t)(wid * 31 + i);
	return n;
}

bool sim_write_decode(const raft_entry_t *e, uint64_t *wid, uint64_t *proposer)
{
	if ((int)e->type != RAFT_ENTRY_NORMAL || e->data.len < SIM_WRITE_HEADER || e->data.data[0] != 'W')
		return false;
	*wid = sim_get64(e->data.data + 1);
	*proposer = sim_get64(e->data.data + 9);
	return true;
}
