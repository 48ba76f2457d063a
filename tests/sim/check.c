/* tests/sim/check.c — the global safety bookkeeping behind every invariant the simulator
 * asserts. Grows tables on demand; never looks at a raft node itself, so it can be fed
 * by hand in unit tests. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_check_init(sim_check_t *chk)
{
	memset(chk, 0, sizeof(*chk));
}

void sim_check_free(sim_check_t *chk)
{
	free(chk->leaders);
	free(chk->commit_at_term);
	free(chk->log);
	free(chk->tab);
	memset(chk, 0, sizeof(*chk));
}

bool sim_check_fail(sim_check_t *chk, const char *invariant, const char *fmt, ...)
{
	if (chk->failed)
		return false;
	chk->failed = true;
	snprintf(chk->invariant, sizeof(chk->invariant), "%s", invariant);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(chk->detail, sizeof(chk->detail), fmt, ap);
	va_end(ap);
	return false;
}

/* Makes arr (of elem-size items, *n of them) hold at least index + 1, zero-filled. */
static void *sim_grow(void *arr, size_t *n, size_t elem, uint64_t index)
{
	if (index < *n)
		return arr;
	size_t cap = *n ? *n : 64;
	while (cap <= index)
		cap *= 2;
	char *p = realloc(arr, cap * elem);
	if (!p)
		abort();
	memset(p + *n * elem, 0, (cap - *n) * elem);
	*n = cap;
	return p;
}

bool sim_check_leader(sim_check_t *chk, uint64_t term, uint64_t id)
{
	chk->leaders = sim_grow(chk->leaders, &chk->n_leaders, sizeof(uint64_t), term);
	uint64_t *slot = &chk->leaders[term];
	if (*slot && *slot != id)
		return sim_check_fail(chk, "election safety",
				      "two leaders in term %llu: n%llu and n%llu",
				      (unsigned long long)term, (unsigned long long)*slot,
				      (unsigned long long)id);
	*slot = id;
	return true;
}

static uint64_t sim_key_hash(uint64_t index, uint64_t term)
{
	uint64_t x = index * 0x9e3779b97f4a7c15ull ^ term * 0xc2b2ae3d27d4eb4full;
	return x ^ (x >> 29);
}

static sim_logkey_t *sim_tab_find(sim_logkey_t *tab, size_t cap, uint64_t index, uint64_t term)
{
	size_t i = (size_t)(sim_key_hash(index, term) & (cap - 1));
	while (tab[i].index && (tab[i].index != index || tab[i].term != term))
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static void sim_tab_grow(sim_check_t *chk)
{
	size_t cap = chk->tab_cap ? chk->tab_cap * 2 : 1024;
	sim_logkey_t *tab = calloc(cap, sizeof(*tab));
	if (!tab)
		abort();
	for (size_t i = 0; i < chk->tab_cap; i++)
		if (chk->tab[i].index)
			*sim_tab_find(tab, cap, chk->tab[i].index, chk->tab[i].term) = chk->tab[i];
	free(chk->tab);
	chk->tab = tab;
	chk->tab_cap = cap;
}

bool sim_check_log_entry(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			 uint64_t hash, uint64_t prev_term)
{
	if (index == 0)
		return sim_check_fail(chk, "log matching", "n%llu stores an entry at index 0",
				      (unsigned long long)node);
	if ((chk->tab_n + 1) * 2 > chk->tab_cap)
		sim_tab_grow(chk);
	sim_logkey_t *k = sim_tab_find(chk->tab, chk->tab_cap, index, term);
	if (!k->index) {
		*k = (sim_logkey_t){index, term, hash, prev_term, node};
		chk->tab_n++;
		return true;
	}
	if (k->hash != hash)
		return sim_check_fail(chk, "log matching",
				      "entry (index %llu, term %llu) has different content on n%llu "
				      "and n%llu", (unsigned long long)index, (unsigned long long)term,
				      (unsigned long long)k->by, (unsigned long long)node);
	if (prev_term == SIM_UNKNOWN)
		return true;
	if (k->prev_term == SIM_UNKNOWN) {
		k->prev_term = prev_term;
		return true;
	}
	if (k->prev_term != prev_term)
		return sim_check_fail(chk, "log matching",
				      "entry (index %llu, term %llu) follows an entry of term %llu on "
				      "n%llu but of term %llu on n%llu", (unsigned long long)index,
				      (unsigned long long)term, (unsigned long long)k->prev_term,
				      (unsigned long long)k->by, (unsigned long long)prev_term,
				      (unsigned long long)node);
	return true;
}

static sim_committed_t *sim_committed_slot(sim_check_t *chk, uint64_t index)
{
	chk->log = sim_grow(chk->log, &chk->n_log, sizeof(sim_committed_t), index);
	return &chk->log[index];
}

static bool sim_match_term(sim_check_t *chk, const char *inv, sim_committed_t *c,
			   uint64_t node, uint64_t index, uint64_t term, const char *what)
{
	if (!(c->flags & SIM_HAS_TERM)) {
		c->term = term;
		c->by = node;
		c->flags |= SIM_HAS_TERM;
		return true;
	}
	if (c->term != term)
		return sim_check_fail(chk, inv,
				      "index %llu: n%llu %s an entry of term %llu, but n%llu had "
				      "committed one of term %llu", (unsigned long long)index,
				      (unsigned long long)node, what, (unsigned long long)term,
				      (unsigned long long)c->by, (unsigned long long)c->term);
	return true;
}

static bool sim_match_hash(sim_check_t *chk, const char *inv, sim_committed_t *c,
			   uint64_t node, uint64_t index, uint64_t hash, const char *what)
{
	if (hash == SIM_UNKNOWN)
		return true;
	if (!(c->flags & SIM_HAS_HASH)) {
		c->hash = hash;
		c->flags |= SIM_HAS_HASH;
		return true;
	}
	if (c->hash != hash)
		return sim_check_fail(chk, inv,
				      "index %llu (term %llu): n%llu %s different content than n%llu",
				      (unsigned long long)index, (unsigned long long)c->term,
				      (unsigned long long)node, what, (unsigned long long)c->by);
	return true;
}

static bool sim_match_chain(sim_check_t *chk, sim_committed_t *c, uint64_t node,
			    uint64_t index, uint64_t chain, const char *what)
{
	if (!(c->flags & SIM_HAS_CHAIN)) {
		c->chain = chain;
		c->flags |= SIM_HAS_CHAIN;
		return true;
	}
	if (c->chain != chain)
		return sim_check_fail(chk, "state machine safety",
				      "n%llu %s a state at index %llu that differs from the one "
				      "other nodes reached there", (unsigned long long)node, what,
				      (unsigned long long)index);
	return true;
}

bool sim_check_committed(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			 uint64_t hash)
{
	sim_committed_t *c = sim_committed_slot(chk, index);
	return sim_match_term(chk, "committed log", c, node, index, term, "has committed") &&
	       sim_match_hash(chk, "committed log", c, node, index, hash, "committed");
}

bool sim_check_applied(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
		       uint64_t hash, uint64_t chain)
{
	sim_committed_t *c = sim_committed_slot(chk, index);
	return sim_match_term(chk, "state machine safety", c, node, index, term, "applied") &&
	       sim_match_hash(chk, "state machine safety", c, node, index, hash, "applied") &&
	       sim_match_chain(chk, c, node, index, chain, "reached");
}

bool sim_check_snapshot(sim_check_t *chk, uint64_t node, uint64_t index, uint64_t term,
			uint64_t chain)
{
	if (index == 0)
		return true;
	sim_committed_t *c = sim_committed_slot(chk, index);
	return sim_match_term(chk, "snapshot", c, node, index, term, "has a snapshot at") &&
	       sim_match_chain(chk, c, node, index, chain, "restored from a snapshot");
}

void sim_check_commit_seen(sim_check_t *chk, uint64_t term, uint64_t commit)
{
	chk->commit_at_term = sim_grow(chk->commit_at_term, &chk->n_commit_at_term,
				       sizeof(uint64_t), term);
	if (commit > chk->commit_at_term[term])
		chk->commit_at_term[term] = commit;
	if (commit > chk->max_commit)
		chk->max_commit = commit;
}

uint64_t sim_check_commit_bound(const sim_check_t *chk, uint64_t term)
{
	uint64_t bound = 0;
	for (uint64_t t = 0; t < term && t < chk->n_commit_at_term; t++)
		if (chk->commit_at_term[t] > bound)
			bound = chk->commit_at_term[t];
	return bound;
}

const sim_committed_t *sim_check_committed_at(const sim_check_t *chk, uint64_t index)
{
	if (index >= chk->n_log || !chk->log[index].flags)
		return NULL;
	return &chk->log[index];
}
