/* raft/memstorage.c — the in-memory implementation of the storage interface, for tests,
 * the simulator and benchmarks. ents[0] is a dummy standing for the snapshot's index and
 * term, so the log covers (snapshot index, last index]. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

struct raft_memstorage {
	raft_hard_state_t hs;
	raft_snapshot_t *snap;
	raft_entry_t **ents;       /* ents[0]: dummy at the snapshot's index */
	size_t n, cap;
};

static uint64_t ms_offset(const raft_memstorage_t *ms)
{
	return ms->ents[0]->index;
}

static int ms_initial_state(void *ctx, raft_hard_state_t *hs)
{
	*hs = ((raft_memstorage_t *)ctx)->hs;
	return RAFT_OK;
}

static int ms_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		      raft_entry_t **out, size_t *n)
{
	raft_memstorage_t *ms = ctx;
	uint64_t off = ms_offset(ms);
	*n = 0;
	if (lo <= off)
		return RAFT_ERR_COMPACTED;
	if (hi > off + ms->n)
		return RAFT_ERR_UNAVAILABLE;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi; i++) {
		raft_entry_t *e = ms->ents[i - off];
		if (*n > 0 && bytes + entry_size(e) > max_bytes)
			break;
		bytes += entry_size(e);
		out[(*n)++] = e;
	}
	return RAFT_OK;
}

static int ms_term(void *ctx, uint64_t i, uint64_t *t)
{
	raft_memstorage_t *ms = ctx;
	uint64_t off = ms_offset(ms);
	*t = 0;
	if (i < off)
		return RAFT_ERR_COMPACTED;
	if (i - off >= ms->n)
		return RAFT_ERR_UNAVAILABLE;
	*t = ms->ents[i - off]->term;
	return RAFT_OK;
}

static int ms_first_index(void *ctx, uint64_t *i)
{
	*i = ms_offset(ctx) + 1;
	return RAFT_OK;
}

static int ms_last_index(void *ctx, uint64_t *i)
{
	raft_memstorage_t *ms = ctx;
	*i = ms_offset(ms) + ms->n - 1;
	return RAFT_OK;
}

static int ms_snapshot(void *ctx, const raft_snapshot_t **s)
{
	*s = ((raft_memstorage_t *)ctx)->snap;
	return RAFT_OK;
}

static const raft_storage_ops_t ms_ops = {
	.initial_state = ms_initial_state,
	.entries = ms_entries,
	.term = ms_term,
	.first_index = ms_first_index,
	.last_index = ms_last_index,
	.snapshot = ms_snapshot,
};

static raft_snapshot_t *empty_snapshot(void)
{
	raft_snapshot_t s = RAFTPB__SNAPSHOT__INIT;
	return raft_snapshot_clone(&s);
}

raft_memstorage_t *raft_memstorage_new(void)
{
	raft_memstorage_t *ms = calloc(1, sizeof(*ms));
	if (!ms)
		return NULL;
	ms->cap = 64;
	ms->ents = malloc(ms->cap * sizeof(*ms->ents));
	ms->snap = empty_snapshot();
	if (!ms->ents || !ms->snap || !(ms->ents[0] = raft_entry_new(0, 0, 0, NULL, 0))) {
		raft_memstorage_free(ms);
		return NULL;
	}
	ms->n = 1;
	return ms;
}

void raft_memstorage_free(raft_memstorage_t *ms)
{
	if (!ms)
		return;
	if (ms->ents)
		entries_free(ms->ents, ms->n);
	raft_snapshot_free(ms->snap);
	free(ms);
}

raft_storage_t raft_memstorage_storage(raft_memstorage_t *ms)
{
	raft_storage_t s = { .ops = &ms_ops, .ctx = ms };
	return s;
}

int raft_memstorage_set_hard_state(raft_memstorage_t *ms, const raft_hard_state_t *hs)
{
	ms->hs = *hs;
	return RAFT_OK;
}

static int ms_reserve(raft_memstorage_t *ms, size_t n)
{
	if (n <= ms->cap)
		return RAFT_OK;
	size_t cap = ms->cap;
	while (cap < n)
		cap *= 2;
	raft_entry_t **p = realloc(ms->ents, cap * sizeof(*p));
	if (!p)
		return RAFT_ERR_NOMEM;
	ms->ents = p;
	ms->cap = cap;
	return RAFT_OK;
}

int raft_memstorage_append(raft_memstorage_t *ms, raft_entry_t *const *ents, size_t n)
{
	if (n == 0)
		return RAFT_OK;
	uint64_t first = ms_offset(ms) + 1;
	uint64_t last = ents[0]->index + n - 1;
	if (last < first)
		return RAFT_OK; /* all already compacted */
	size_t skip = first > ents[0]->index ? first - ents[0]->index : 0;
	uint64_t at = ents[skip]->index - ms_offset(ms); /* position of the first new one */
	if (at > ms->n)
		return RAFT_ERR_UNAVAILABLE; /* would leave a gap */
	for (size_t i = at; i < ms->n; i++)
		raft_entry_free(ms->ents[i]);
	ms->n = at;
	if (ms_reserve(ms, ms->n + (n - skip)))
		return RAFT_ERR_NOMEM;
	for (size_t i = skip; i < n; i++) {
		if (!(ms->ents[ms->n] = raft_entry_clone(ents[i])))
			return RAFT_ERR_NOMEM;
		ms->n++;
	}
	return RAFT_OK;
}

int raft_memstorage_apply_snapshot(raft_memstorage_t *ms, const raft_snapshot_t *snap)
{
	if (!snap->metadata)
		return RAFT_ERR_INVALID_MSG;
	if (ms->snap->metadata->index >= snap->metadata->index)
		return RAFT_ERR_SNAP_OUT_OF_DATE;
	raft_snapshot_t *c = raft_snapshot_clone(snap);
	raft_entry_t *dummy = raft_entry_new(snap->metadata->term, snap->metadata->index, 0,
					     NULL, 0);
	if (!c || !dummy) {
		raft_snapshot_free(c);
		raft_entry_free(dummy);
		return RAFT_ERR_NOMEM;
	}
	for (size_t i = 0; i < ms->n; i++)
		raft_entry_free(ms->ents[i]);
	ms->ents[0] = dummy;
	ms->n = 1;
	raft_snapshot_free(ms->snap);
	ms->snap = c;
	return RAFT_OK;
}

int raft_memstorage_create_snapshot(raft_memstorage_t *ms, uint64_t index,
				    const raft_conf_t *conf, const void *data, size_t len)
{
	if (index <= ms->snap->metadata->index)
		return RAFT_ERR_SNAP_OUT_OF_DATE;
	uint64_t off = ms_offset(ms);
	if (index > off + ms->n - 1)
		return RAFT_ERR_UNAVAILABLE;
	raft_snapshot_t *s = empty_snapshot();
	if (!s)
		return RAFT_ERR_NOMEM;
	s->metadata->index = index;
	s->metadata->term = ms->ents[index - off]->term;
	s->metadata->conf_state = malloc(sizeof(*s->metadata->conf_state));
	if (!s->metadata->conf_state || raft_conf_to_state(conf, s->metadata->conf_state))
		goto nomem;
	if (len) {
		if (!(s->data.data = malloc(len)))
			goto nomem;
		memcpy(s->data.data, data, len);
		s->data.len = len;
	}
	raft_snapshot_free(ms->snap);
	ms->snap = s;
	return RAFT_OK;
nomem:
	raft_snapshot_free(s);
	return RAFT_ERR_NOMEM;
}

int raft_memstorage_compact(raft_memstorage_t *ms, uint64_t index)
{
	uint64_t off = ms_offset(ms);
	if (index <= off)
		return RAFT_ERR_COMPACTED;
	if (index > off + ms->n - 1 || index > ms->snap->metadata->index)
		return RAFT_ERR_UNAVAILABLE; /* a follower must be able to catch up */
	size_t k = index - off; /* ents[k] becomes the new dummy */
	for (size_t i = 0; i < k; i++)
		raft_entry_free(ms->ents[i]);
	raft_entry_t *d = ms->ents[k];
	if (d->data.len) {
		raft_entry_t *dummy = raft_entry_new(d->term, d->index, 0, NULL, 0);
		if (dummy) {
			raft_entry_free(d);
			ms->ents[k] = dummy;
		}
	}
	memmove(ms->ents, ms->ents + k, (ms->n - k) * sizeof(*ms->ents));
	ms->n -= k;
	return RAFT_OK;
}
