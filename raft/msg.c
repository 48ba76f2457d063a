/* raft/msg.c — ownership of the protobuf-c types the core hands around: building,
 * cloning and freeing entries, messages and snapshots, and the names of errors.
 * A freshly built entry carries its data in the same allocation; unpacked ones do not. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

static void unknown_fields_free(ProtobufCMessage *base)
{
	for (unsigned i = 0; i < base->n_unknown_fields; i++)
		free(base->unknown_fields[i].data);
	free(base->unknown_fields);
	base->unknown_fields = NULL;
	base->n_unknown_fields = 0;
}

int bytes_copy(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src)
{
	dst->len = 0;
	dst->data = NULL;
	if (src->len == 0)
		return RAFT_OK;
	dst->data = malloc(src->len);
	if (!dst->data)
		return RAFT_ERR_NOMEM;
	memcpy(dst->data, src->data, src->len);
	dst->len = src->len;
	return RAFT_OK;
}

raft_entry_t *raft_entry_new(uint64_t term, uint64_t index, int type, const void *data,
			     size_t len)
{
	raft_entry_t *e = malloc(sizeof(*e) + len);
	if (!e)
		return NULL;
	raftpb__entry__init(e);
	e->term = term;
	e->index = index;
	e->type = (Raftpb__EntryType)type;
	if (len) {
		e->data.data = (uint8_t *)(e + 1);
		memcpy(e->data.data, data, len);
		e->data.len = len;
	}
	return e;
}

raft_entry_t *raft_entry_clone(const raft_entry_t *e)
{
	return raft_entry_new(e->term, e->index, e->type, e->data.data, e->data.len);
}

void raft_entry_free(raft_entry_t *e)
{
	if (!e)
		return;
	if (e->data.data && e->data.data != (uint8_t *)(e + 1))
		free(e->data.data);
	unknown_fields_free(&e->base);
	free(e);
}

int array_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return RAFT_OK;
	size_t c = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, c * elem);
	if (!p)
		return RAFT_ERR_NOMEM;
	*arr = p;
	*cap = c;
	return RAFT_OK;
}

void entries_free(raft_entry_t **ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		raft_entry_free(ents[i]);
	free(ents);
}

size_t entry_size(const raft_entry_t *e)
{
	return e->data.len + ENTRY_OVERHEAD;
}

static void conf_state_free(Raftpb__ConfState *cs)
{
	if (!cs)
		return;
	free(cs->voters);
	free(cs->learners);
	unknown_fields_free(&cs->base);
	free(cs);
}

void raft_snapshot_free(raft_snapshot_t *s)
{
	if (!s)
		return;
	free(s->data.data);
	if (s->metadata) {
		conf_state_free(s->metadata->conf_state);
		unknown_fields_free(&s->metadata->base);
		free(s->metadata);
	}
	unknown_fields_free(&s->base);
	free(s);
}

static uint64_t *ids_dup(const uint64_t *ids, size_t n)
{
	if (n == 0)
		return NULL;
	uint64_t *out = malloc(n * sizeof(*out));
	if (out)
		memcpy(out, ids, n * sizeof(*out));
	return out;
}

raft_snapshot_t *raft_snapshot_clone(const raft_snapshot_t *s)
{
	raft_snapshot_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	raftpb__snapshot__init(c);
	if (bytes_copy(&c->data, &s->data))
		goto fail;
	c->metadata = calloc(1, sizeof(*c->metadata));
	if (!c->metadata)
		goto fail;
	raftpb__snapshot_metadata__init(c->metadata);
	if (!s->metadata)
		return c;
	c->metadata->index = s->metadata->index;
	c->metadata->term = s->metadata->term;
	const Raftpb__ConfState *cs = s->metadata->conf_state;
	if (!cs)
		return c;
	c->metadata->conf_state = calloc(1, sizeof(*cs));
	if (!c->metadata->conf_state)
		goto fail;
	Raftpb__ConfState *ccs = c->metadata->conf_state;
	raftpb__conf_state__init(ccs);
	ccs->voters = ids_dup(cs->voters, cs->n_voters);
	ccs->learners = ids_dup(cs->learners, cs->n_learners);
	if ((cs->n_voters && !ccs->voters) || (cs->n_learners && !ccs->learners))
		goto fail;
	ccs->n_voters = cs->n_voters;
	ccs->n_learners = cs->n_learners;
	return c;
fail:
	raft_snapshot_free(c);
	return NULL;
}

raft_msg_t *msg_new(int type, uint64_t to)
{
	raft_msg_t *m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	raftpb__message__init(m);
	m->type = (Raftpb__MessageType)type;
	m->to = to;
	return m;
}

void raft_msg_free(raft_msg_t *m)
{
	if (!m)
		return;
	entries_free(m->entries, m->n_entries);
	raft_snapshot_free(m->snapshot);
	free(m->context.data);
	unknown_fields_free(&m->base);
	free(m);
}

raft_msg_t *raft_msg_clone(const raft_msg_t *m)
{
	raft_msg_t *c = msg_new(m->type, m->to);
	if (!c)
		return NULL;
	c->from = m->from;
	c->term = m->term;
	c->log_term = m->log_term;
	c->index = m->index;
	c->commit = m->commit;
	c->reject = m->reject;
	c->reject_hint = m->reject_hint;
	if (bytes_copy(&c->context, &m->context))
		goto fail;
	if (m->snapshot && !(c->snapshot = raft_snapshot_clone(m->snapshot)))
		goto fail;
	if (m->n_entries) {
		c->entries = calloc(m->n_entries, sizeof(*c->entries));
		if (!c->entries)
			goto fail;
		for (size_t i = 0; i < m->n_entries; i++) {
			c->entries[i] = raft_entry_clone(m->entries[i]);
			if (!c->entries[i])
				goto fail;
			c->n_entries++;
		}
	}
	return c;
fail:
	raft_msg_free(c);
	return NULL;
}

static const char *const err_names[] = {
	[0] = "ok",
	[-RAFT_ERR_COMPACTED] = "requested index is unavailable due to compaction",
	[-RAFT_ERR_UNAVAILABLE] = "requested entry at index is unavailable",
	[-RAFT_ERR_SNAPSHOT_TEMP_UNAVAILABLE] = "snapshot is temporarily unavailable",
	[-RAFT_ERR_SNAP_OUT_OF_DATE] = "requested index is older than the existing snapshot",
	[-RAFT_ERR_PROPOSAL_DROPPED] = "raft proposal dropped",
	[-RAFT_ERR_NO_LEADER] = "no leader",
	[-RAFT_ERR_CONF_CHANGE_PENDING] = "a configuration change is already in progress",
	[-RAFT_ERR_INVALID_CONF_CHANGE] = "invalid configuration change",
	[-RAFT_ERR_STEP_LOCAL_MSG] = "raft: cannot step raft local message",
	[-RAFT_ERR_STEP_PEER_NOT_FOUND] = "raft: cannot step as peer not found",
	[-RAFT_ERR_INVALID_CONFIG] = "invalid raft configuration",
	[-RAFT_ERR_NOMEM] = "out of memory",
	[-RAFT_ERR_INVALID_MSG] = "malformed raft message",
	[-RAFT_ERR_NOT_LEADER] = "not the leader",
	[-RAFT_ERR_STORAGE] = "raft storage error",
	[-RAFT_ERR_IO] = "wal: input/output error",
	[-RAFT_ERR_CORRUPT] = "wal: corrupt data",
	[-RAFT_ERR_LOCKED] = "data directory is locked by another process",
};

const char *raft_strerror(int err)
{
	if (err > 0 || (size_t)-err >= sizeof(err_names) / sizeof(err_names[0]) ||
	    !err_names[-err])
		return "unknown raft error";
	return err_names[-err];
}

const char *raft_state_name(raft_state_t s)
{
	switch (s) {
	case RAFT_FOLLOWER: return "follower";
	case RAFT_CANDIDATE: return "candidate";
	case RAFT_PRE_CANDIDATE: return "pre-candidate";
	case RAFT_LEADER: return "leader";
	}
	return "unknown";
}
