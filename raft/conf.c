/* raft/conf.c — membership: applying one single-server change to a configuration, and
 * the history of configurations along the log. A change takes effect when its entry is
 * appended (Raft thesis §4.1), so truncating the log must bring the old one back. */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

static bool ids_has(const uint64_t *ids, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static void ids_remove(uint64_t *ids, size_t *n, uint64_t id)
{
	for (size_t i = 0; i < *n; i++) {
		if (ids[i] == id) {
			memmove(ids + i, ids + i + 1, (*n - i - 1) * sizeof(*ids));
			(*n)--;
			return;
		}
	}
}

bool raft_conf_is_voter(const raft_conf_t *c, uint64_t id)
{
	return ids_has(c->voters, c->n_voters, id);
}

bool raft_conf_is_learner(const raft_conf_t *c, uint64_t id)
{
	return ids_has(c->learners, c->n_learners, id);
}

int raft_conf_apply(raft_conf_t *c, const raft_conf_change_t *cc)
{
	uint64_t id = cc->node_id;
	bool voter = raft_conf_is_voter(c, id), learner = raft_conf_is_learner(c, id);
	if (id == RAFT_NONE)
		return RAFT_ERR_INVALID_CONF_CHANGE;
	switch ((int)cc->type) {
	case RAFT_CONF_UPDATE_NODE:
		return voter || learner ? RAFT_OK : RAFT_ERR_INVALID_CONF_CHANGE;
	case RAFT_CONF_ADD_NODE:
		if (voter || (!learner && c->n_voters + c->n_learners >= RAFT_MAX_NODES))
			return RAFT_ERR_INVALID_CONF_CHANGE;
		ids_remove(c->learners, &c->n_learners, id);
		c->voters[c->n_voters++] = id;
		return RAFT_OK;
	case RAFT_CONF_ADD_LEARNER:
		if (learner || (voter && c->n_voters == 1) ||
		    (!voter && c->n_voters + c->n_learners >= RAFT_MAX_NODES))
			return RAFT_ERR_INVALID_CONF_CHANGE;
		ids_remove(c->voters, &c->n_voters, id);
		c->learners[c->n_learners++] = id;
		return RAFT_OK;
	case RAFT_CONF_REMOVE_NODE:
		if (!voter && !learner)
			return RAFT_ERR_INVALID_CONF_CHANGE;
		if (voter && c->n_voters == 1)
			return RAFT_ERR_INVALID_CONF_CHANGE; /* a cluster needs a voter */
		ids_remove(c->voters, &c->n_voters, id);
		ids_remove(c->learners, &c->n_learners, id);
		return RAFT_OK;
	default:
		return RAFT_ERR_INVALID_CONF_CHANGE;
	}
}

int raft_conf_from_state(raft_conf_t *c, const Raftpb__ConfState *cs)
{
	memset(c, 0, sizeof(*c));
	if (!cs)
		return RAFT_OK;
	if (cs->n_voters + cs->n_learners > RAFT_MAX_NODES)
		return RAFT_ERR_INVALID_CONF_CHANGE;
	for (size_t i = 0; i < cs->n_voters; i++) {
		if (cs->voters[i] == RAFT_NONE || raft_conf_is_voter(c, cs->voters[i]))
			return RAFT_ERR_INVALID_CONF_CHANGE;
		c->voters[c->n_voters++] = cs->voters[i];
	}
	for (size_t i = 0; i < cs->n_learners; i++) {
		uint64_t id = cs->learners[i];
		if (id == RAFT_NONE || raft_conf_is_voter(c, id) || raft_conf_is_learner(c, id))
			return RAFT_ERR_INVALID_CONF_CHANGE;
		c->learners[c->n_learners++] = id;
	}
	return RAFT_OK;
}

int raft_conf_to_state(const raft_conf_t *c, Raftpb__ConfState *cs)
{
	raftpb__conf_state__init(cs);
	if (c->n_voters && !(cs->voters = malloc(c->n_voters * sizeof(uint64_t))))
		return RAFT_ERR_NOMEM;
	if (c->n_learners && !(cs->learners = malloc(c->n_learners * sizeof(uint64_t)))) {
		raft_conf_state_clear(cs);
		return RAFT_ERR_NOMEM;
	}
	if (c->n_voters)
		memcpy(cs->voters, c->voters, c->n_voters * sizeof(uint64_t));
	if (c->n_learners)
		memcpy(cs->learners, c->learners, c->n_learners * sizeof(uint64_t));
	cs->n_voters = c->n_voters;
	cs->n_learners = c->n_learners;
	return RAFT_OK;
}

void raft_conf_state_clear(Raftpb__ConfState *cs)
{
	free(cs->voters);
	free(cs->learners);
	raftpb__conf_state__init(cs);
}

int conf_change_decode(const raft_entry_t *e, raft_conf_change_t **cc)
{
	*cc = raftpb__conf_change__unpack(NULL, e->data.len, e->data.data);
	return *cc ? RAFT_OK : RAFT_ERR_INVALID_CONF_CHANGE;
}

void conf_history_free(conf_history_t *h)
{
	free(h->pts);
	memset(h, 0, sizeof(*h));
}

static int history_push(conf_history_t *h, uint64_t index, const raft_conf_t *c)
{
	if (array_grow((void **)&h->pts, &h->cap, h->n, sizeof(*h->pts)))
		return RAFT_ERR_NOMEM;
	h->pts[h->n].index = index;
	h->pts[h->n].conf = *c;
	h->n++;
	return RAFT_OK;
}

int conf_history_reset(conf_history_t *h, uint64_t index, const raft_conf_t *c)
{
	h->n = 0;
	return history_push(h, index, c);
}

const raft_conf_t *conf_history_current(const conf_history_t *h)
{
	return &h->pts[h->n - 1].conf;
}

int conf_history_on_append(conf_history_t *h, const raft_entry_t *e)
{
	if (e->type != RAFT_ENTRY_CONF_CHANGE)
		return RAFT_OK;
	raft_conf_change_t *cc;
	if (conf_change_decode(e, &cc) != RAFT_OK)
		return RAFT_OK; /* garbage in the log is a no-op on every member alike */
	raft_conf_t next = *conf_history_current(h);
	int rc = RAFT_OK;
	if (raft_conf_apply(&next, cc) == RAFT_OK)
		rc = history_push(h, e->index, &next);
	raftpb__conf_change__free_unpacked(cc, NULL);
	return rc;
}

/* Entries from from_index on were removed: forget the changes they carried. */
void conf_history_truncate(conf_history_t *h, uint64_t from_index)
{
	while (h->n > 1 && h->pts[h->n - 1].index >= from_index)
		h->n--;
}

/* Keeps the newest point at or before applied and everything after it. */
void conf_history_compact(conf_history_t *h, uint64_t applied)
{
	size_t k = 0;
	while (k + 1 < h->n && h->pts[k + 1].index <= applied)
		k++;
	if (k == 0)
		return;
	memmove(h->pts, h->pts + k, (h->n - k) * sizeof(*h->pts));
	h->n -= k;
}

const raft_conf_t *conf_history_at(const conf_history_t *h, uint64_t index)
{
	size_t k = 0;
	while (k + 1 < h->n && h->pts[k + 1].index <= index)
		k++;
	return &h->pts[k].conf;
}
