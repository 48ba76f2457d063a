/* raft/log.c — the core's view of the log: entries already in storage, then an unstable
 * tail (and possibly an incoming snapshot) the caller has not persisted yet, plus the
 * committed and applied indexes. Pure: reads storage through its ops, never writes it. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

static int st_first(const raft_log_t *l, uint64_t *i)
{
	return l->storage.ops->first_index(l->storage.ctx, i);
}

static int st_last(const raft_log_t *l, uint64_t *i)
{
	return l->storage.ops->last_index(l->storage.ctx, i);
}

int log_init(raft_log_t *l, raft_storage_t storage)
{
	memset(l, 0, sizeof(*l));
	l->storage = storage;
	uint64_t first, last;
	if (st_first(l, &first) || st_last(l, &last))
		return RAFT_ERR_STORAGE;
	l->u_offset = last + 1;
	l->committed = first - 1;
	l->applied = first - 1;
	return RAFT_OK;
}

void log_free(raft_log_t *l)
{
	entries_free(l->u_ents, l->u_n);
	raft_snapshot_free(l->u_snap);
	memset(l, 0, sizeof(*l));
}

uint64_t log_first_index(const raft_log_t *l)
{
	if (l->u_snap)
		return l->u_snap->metadata->index + 1;
	uint64_t i = 0;
	st_first(l, &i);
	return i;
}

uint64_t log_last_index(const raft_log_t *l)
{
	if (l->u_n)
		return l->u_offset + l->u_n - 1;
	if (l->u_snap)
		return l->u_snap->metadata->index;
	uint64_t i = 0;
	st_last(l, &i);
	return i;
}

uint64_t log_stabled_index(const raft_log_t *l)
{
	if (l->u_snap)
		return 0;
	return l->u_offset - 1;
}

int log_term(const raft_log_t *l, uint64_t i, uint64_t *t)
{
	*t = 0;
	uint64_t dummy = log_first_index(l) - 1;
	if (i < dummy)
		return RAFT_ERR_COMPACTED;
	if (i > log_last_index(l))
		return RAFT_ERR_UNAVAILABLE;
	if (i >= l->u_offset) {
		*t = l->u_ents[i - l->u_offset]->term;
		return RAFT_OK;
	}
	if (l->u_snap) {
		if (i == l->u_snap->metadata->index) {
			*t = l->u_snap->metadata->term;
			return RAFT_OK;
		}
		return RAFT_ERR_COMPACTED;
	}
	int rc = l->storage.ops->term(l->storage.ctx, i, t);
	if (rc == RAFT_ERR_COMPACTED || rc == RAFT_ERR_UNAVAILABLE)
		*t = 0;
	return rc;
}

uint64_t log_term_or_zero(const raft_log_t *l, uint64_t i)
{
	uint64_t t;
	return log_term(l, i, &t) == RAFT_OK ? t : 0;
}

uint64_t log_last_term(const raft_log_t *l)
{
	return log_term_or_zero(l, log_last_index(l));
}

bool log_match_term(const raft_log_t *l, uint64_t i, uint64_t t)
{
	uint64_t lt;
	return log_term(l, i, &lt) == RAFT_OK && lt == t;
}

/* Raft §5.4.1: a candidate's log is at least as up to date as ours. */
bool log_is_up_to_date(const raft_log_t *l, uint64_t lasti, uint64_t term)
{
	uint64_t lt = log_last_term(l);
	return term > lt || (term == lt && lasti >= log_last_index(l));
}

static int unstable_reserve(raft_log_t *l, size_t n)
{
	if (l->u_n + n <= l->u_cap)
		return RAFT_OK;
	size_t cap = l->u_cap ? l->u_cap : 64;
	while (cap < l->u_n + n)
		cap *= 2;
	raft_entry_t **p = realloc(l->u_ents, cap * sizeof(*p));
	if (!p)
		return RAFT_ERR_NOMEM;
	l->u_ents = p;
	l->u_cap = cap;
	return RAFT_OK;
}

/* Takes ownership of ents. The first entry decides where they go: right after the tail,
 * over part of the unstable tail, or before it (the stable entries from there are then
 * stale and will be overwritten in storage when this tail is persisted). */
int log_append(raft_log_t *l, raft_entry_t **ents, size_t n)
{
	if (n == 0)
		return RAFT_OK;
	if (unstable_reserve(l, n)) {
		for (size_t i = 0; i < n; i++)
			raft_entry_free(ents[i]);
		return RAFT_ERR_NOMEM;
	}
	uint64_t after = ents[0]->index;
	if (after <= l->u_offset) {
		for (size_t i = 0; i < l->u_n; i++)
			raft_entry_free(l->u_ents[i]);
		l->u_n = 0;
		l->u_offset = after;
	} else if (after < l->u_offset + l->u_n) {
		size_t keep = after - l->u_offset;
		for (size_t i = keep; i < l->u_n; i++)
			raft_entry_free(l->u_ents[i]);
		l->u_n = keep;
	}
	memcpy(l->u_ents + l->u_n, ents, n * sizeof(*ents));
	l->u_n += n;
	return RAFT_OK;
}

/* The index of the first entry whose term differs from ours (or that we do not have);
 * 0 when every entry is already in the log. */
uint64_t log_find_conflict(const raft_log_t *l, raft_entry_t *const *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!log_match_term(l, ents[i]->index, ents[i]->term))
			return ents[i]->index;
	return 0;
}

/* The largest index <= index whose term is <= term: where a leader with an entry of
 * `term` at `index` can next probe (fast backtracking, etcd's findConflictByTerm). */
uint64_t log_find_conflict_by_term(const raft_log_t *l, uint64_t index, uint64_t term,
				   uint64_t *term_out)
{
	uint64_t last = log_last_index(l);
	if (index > last)
		index = last;
	for (;;) {
		uint64_t t;
		int rc = log_term(l, index, &t);
		if (rc != RAFT_OK) {
			*term_out = 0;
			return index;
		}
		if (t <= term) {
			*term_out = t;
			return index;
		}
		if (index == 0) {
			*term_out = 0;
			return 0;
		}
		index--;
	}
}

static int copy_from_storage(const raft_log_t *l, uint64_t lo, uint64_t hi,
			     uint64_t max_bytes, raft_entry_t **out, size_t *n,
			     uint64_t *bytes)
{
	raft_entry_t **tmp = malloc((hi - lo) * sizeof(*tmp));
	if (!tmp)
		return RAFT_ERR_NOMEM;
	size_t got = 0;
	int rc = l->storage.ops->entries(l->storage.ctx, lo, hi, max_bytes, tmp, &got);
	for (size_t i = 0; rc == RAFT_OK && i < got; i++) {
		if (*n > 0 && *bytes + entry_size(tmp[i]) > max_bytes)
			break;
		if (!(out[*n] = raft_entry_clone(tmp[i]))) {
			rc = RAFT_ERR_NOMEM;
			break;
		}
		*bytes += entry_size(tmp[i]);
		(*n)++;
	}
	free(tmp);
	return rc;
}

/* Copies of [lo, hi) limited to max_bytes (always at least one entry). */
int log_entries(const raft_log_t *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		raft_entry_t ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	uint64_t last = log_last_index(l);
	if (lo > last || lo >= hi)
		return RAFT_OK;
	if (lo < log_first_index(l))
		return RAFT_ERR_COMPACTED;
	if (hi > last + 1)
		hi = last + 1;
	/* every entry counts at least its header, which bounds how many can fit */
	uint64_t fit = max_bytes / ENTRY_OVERHEAD + 1;
	if (hi - lo > fit)
		hi = lo + fit;
	raft_entry_t **ents = malloc((hi - lo) * sizeof(*ents));
	if (!ents)
		return RAFT_ERR_NOMEM;
	uint64_t bytes = 0;
	int rc = RAFT_OK;
	if (lo < l->u_offset) {
		uint64_t shi = hi < l->u_offset ? hi : l->u_offset;
		rc = copy_from_storage(l, lo, shi, max_bytes, ents, n, &bytes);
		if (rc == RAFT_OK && *n < shi - lo)
			goto done; /* size limit reached inside storage */
	}
	for (uint64_t i = lo > l->u_offset ? lo : l->u_offset; rc == RAFT_OK && i < hi; i++) {
		const raft_entry_t *e = l->u_ents[i - l->u_offset];
		if (*n > 0 && bytes + entry_size(e) > max_bytes)
			break;
		if (!(ents[*n] = raft_entry_clone(e))) {
			rc = RAFT_ERR_NOMEM;
			break;
		}
		bytes += entry_size(e);
		(*n)++;
	}
done:
	if (rc != RAFT_OK) {
		entries_free(ents, *n);
		*n = 0;
		return rc;
	}
	*out = ents;
	return RAFT_OK;
}

void log_commit_to(raft_log_t *l, uint64_t c)
{
	if (c > l->committed)
		l->committed = c;
}

/* Commits max_index only through an entry of the current term (Raft §5.4.2). */
bool log_maybe_commit(raft_log_t *l, uint64_t max_index, uint64_t term)
{
	if (max_index > l->committed && log_term_or_zero(l, max_index) == term) {
		log_commit_to(l, max_index);
		return true;
	}
	return false;
}

void log_stable_to(raft_log_t *l, uint64_t i, uint64_t t)
{
	if (i < l->u_offset || i >= l->u_offset + l->u_n)
		return;
	if (l->u_ents[i - l->u_offset]->term != t)
		return; /* replaced since it was handed out */
	size_t drop = i - l->u_offset + 1;
	for (size_t k = 0; k < drop; k++)
		raft_entry_free(l->u_ents[k]);
	memmove(l->u_ents, l->u_ents + drop, (l->u_n - drop) * sizeof(*l->u_ents));
	l->u_n -= drop;
	l->u_offset = i + 1;
}

void log_stable_snap_to(raft_log_t *l, uint64_t i)
{
	if (l->u_snap && l->u_snap->metadata->index == i) {
		raft_snapshot_free(l->u_snap);
		l->u_snap = NULL;
	}
}

int log_restore(raft_log_t *l, const raft_snapshot_t *s)
{
	raft_snapshot_t *c = raft_snapshot_clone(s);
	if (!c)
		return RAFT_ERR_NOMEM;
	for (size_t i = 0; i < l->u_n; i++)
		raft_entry_free(l->u_ents[i]);
	l->u_n = 0;
	raft_snapshot_free(l->u_snap);
	l->u_snap = c;
	l->u_offset = s->metadata->index + 1;
	l->committed = s->metadata->index;
	return RAFT_OK;
}

int log_snapshot(const raft_log_t *l, const raft_snapshot_t **s)
{
	if (l->u_snap) {
		*s = l->u_snap;
		return RAFT_OK;
	}
	return l->storage.ops->snapshot(l->storage.ctx, s);
}

bool log_has_next_committed(const raft_log_t *l)
{
	if (l->u_snap)
		return false; /* the snapshot is applied first */
	uint64_t off = l->applied + 1;
	uint64_t first = log_first_index(l);
	if (off < first)
		off = first;
	return l->committed + 1 > off;
}
