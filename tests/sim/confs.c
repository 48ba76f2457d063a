/* tests/sim/confs.c — the membership each node's disk implies (snapshot ConfState + later
 * conf-change entries), checked against raft_status/raft_applied_conf; no log holds two
 * uncommitted changes; a leader's commit is on a majority of disks. Observes only. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_confs_free(sim_confs_t *cf)
{
	free(cf->ents);
	memset(cf, 0, sizeof(*cf));
}

static void sim_confs_push(sim_confs_t *cf, uint64_t index, int type, uint64_t id)
{
	if (cf->n == cf->cap) {
		size_t cap = cf->cap ? cf->cap * 2 : 16;
		sim_conf_ent_t *p = realloc(cf->ents, cap * sizeof(*p));
		if (!p)
			abort();
		cf->ents = p;
		cf->cap = cap;
	}
	cf->ents[cf->n++] = (sim_conf_ent_t){index, type, id};
}

void sim_confs_on_append(sim_confs_t *cf, raft_entry_t *const *ents, size_t count)
{
	if (!count)
		return;
	uint64_t lo = ents[0]->index;
	while (cf->n && cf->ents[cf->n - 1].index >= lo)
		cf->n--, cf->tail_ok = false;
	for (size_t i = 0; i < count; i++) {
		const raft_entry_t *e = ents[i];
		if ((int)e->type != RAFT_ENTRY_CONF_CHANGE)
			continue;
		cf->tail_ok = false;
		raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, e->data.len, e->data.data);
		if (!cc) {
			sim_confs_push(cf, e->index, -1, 0); /* undecodable: flagged by the check */
			continue;
		}
		sim_confs_push(cf, e->index, (int)cc->type, cc->node_id);
		raftpb__conf_change__free_unpacked(cc, NULL);
	}
}

/* The disk took a snapshot at index with membership conf: a local one (keep_tail) keeps
 * the entries after index, an installed one replaces the whole log. */
void sim_confs_rebase(sim_confs_t *cf, uint64_t index, const raft_conf_t *conf, bool keep_tail)
{
	size_t keep = 0;
	for (size_t i = 0; i < cf->n && keep_tail; i++)
		if (cf->ents[i].index > index)
			cf->ents[keep++] = cf->ents[i];
	cf->n = keep;
	cf->base = *conf;
	cf->base_index = index;
	cf->tail_ok = false;
}

void sim_confs_reload(sim_cluster_t *c, sim_node_t *n)
{
	raft_storage_t st = sim_disk_storage(n);
	const raft_snapshot_t *snap = NULL;
	raft_conf_t conf = {0};
	uint64_t index = 0, first = 0, last = 0;
	if (st.ops->snapshot(st.ctx, &snap) == RAFT_OK && snap && snap->metadata) {
		index = snap->metadata->index;
		if (snap->metadata->conf_state)
			raft_conf_from_state(&conf, snap->metadata->conf_state);
	}
	sim_confs_rebase(&n->confs, index, &conf, false);
	st.ops->first_index(st.ctx, &first);
	st.ops->last_index(st.ctx, &last);
	if (last < first)
		return;
	raft_entry_t **got = sim_cluster_scratch(c, (size_t)(last + 1 - first));
	size_t n_got = 0;
	if (st.ops->entries(st.ctx, first, last + 1, UINT64_MAX, got, &n_got) == RAFT_OK)
		sim_confs_on_append(&n->confs, got, n_got);
}

/* Membership after every change up to index (UINT64_MAX: the whole log). */
static bool sim_confs_at(const sim_confs_t *cf, uint64_t index, raft_conf_t *out)
{
	*out = cf->base;
	for (size_t i = 0; i < cf->n && cf->ents[i].index <= index; i++) {
		if (cf->ents[i].type < 0)
			return false;
		raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
		cc.type = (Raftpb__ConfChangeType)cf->ents[i].type;
		cc.node_id = cf->ents[i].id;
		raft_conf_apply(out, &cc); /* an invalid change leaves it unchanged */
	}
	return true;
}

static bool sim_set_equal(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = false;
		for (size_t j = 0; j < nb && !found; j++)
			found = a[i] == b[j];
		if (!found)
			return false;
	}
	return true;
}

static bool sim_conf_equal(const raft_conf_t *a, const raft_conf_t *b)
{
	return sim_set_equal(a->voters, a->n_voters, b->voters, b->n_voters) &&
	       sim_set_equal(a->learners, a->n_learners, b->learners, b->n_learners);
}

static void sim_conf_format(const raft_conf_t *c, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "voters");
	for (size_t i = 0; i < c->n_voters && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, " n%llu",
					(unsigned long long)c->voters[i]);
	if (off < len)
		off += (size_t)snprintf(buf + off, len - off, ", learners");
	for (size_t i = 0; i < c->n_learners && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, " n%llu",
					(unsigned long long)c->learners[i]);
}

/* "snapshot at 90 (voters n1 n2 n3, learners), then 93: add-learner n4, ..." */
static void sim_confs_history(const sim_confs_t *cf, char *buf, size_t len)
{
	static const char *const names[] = {"add-voter", "remove", "add-learner"};
	char base[200];
	sim_conf_format(&cf->base, base, sizeof(base));
	size_t off = (size_t)snprintf(buf, len, "disk has membership (%s) at %llu", base,
				      (unsigned long long)cf->base_index);
	for (size_t i = 0; i < cf->n && off < len; i++) {
		const sim_conf_ent_t *e = &cf->ents[i];
		off += (size_t)snprintf(buf + off, len - off, ", then at %llu %s n%llu",
					(unsigned long long)e->index,
					e->type >= 0 && e->type <= 2 ? names[e->type] : "?",
					(unsigned long long)e->id);
	}
}

/* After a Ready is persisted the core's log is the disk's: so must its membership be. */
void sim_confs_check(sim_cluster_t *c, sim_node_t *n)
{
	sim_confs_t *cf = &n->confs;
	if (!cf->tail_ok && !sim_confs_at(cf, UINT64_MAX, &cf->tail)) {
		sim_check_fail(&c->chk, "membership", "n%llu's log holds a conf-change entry that "
			       "does not decode", (unsigned long long)n->id);
		return;
	}
	cf->tail_ok = true;
	const raft_conf_t disk = cf->tail;
	if (!sim_conf_equal(&disk, &n->st.conf)) {
		char a[256], b[256], h[256];
		sim_conf_format(&n->st.conf, a, sizeof(a));
		sim_conf_format(&disk, b, sizeof(b));
		sim_confs_history(cf, h, sizeof(h));
		sim_check_fail(&c->chk, "membership", "n%llu says its configuration is (%s) but "
			       "its log implies (%s): %s", (unsigned long long)n->id, a, b, h);
		return;
	}
	uint64_t committed = c->chk.max_commit, pending = 0, first = 0;
	for (size_t i = 0; i < cf->n; i++)
		if (cf->ents[i].index > committed && !pending++)
			first = cf->ents[i].index;
	if (pending > 1)
		sim_check_fail(&c->chk, "one conf change at a time", "n%llu's log holds %llu "
			       "uncommitted conf changes (from index %llu; highest commit known "
			       "anywhere: %llu)", (unsigned long long)n->id,
			       (unsigned long long)pending, (unsigned long long)first,
			       (unsigned long long)committed);
}

/* The membership the core reports for a snapshot at index must be the log's there. */
bool sim_confs_check_applied(sim_cluster_t *c, sim_node_t *n, uint64_t index,
			     const raft_conf_t *conf)
{
	raft_conf_t disk;
	if (!sim_confs_at(&n->confs, index, &disk) || sim_conf_equal(&disk, conf))
		return true;
	char a[256], b[256];
	sim_conf_format(conf, a, sizeof(a));
	sim_conf_format(&disk, b, sizeof(b));
	return sim_check_fail(&c->chk, "membership", "n%llu: raft_applied_conf at index %llu is "
			      "(%s) but the log implies (%s)", (unsigned long long)n->id,
			      (unsigned long long)index, a, b);
}

/* Whether voter id's disk holds (index, term), or a snapshot past it. A node shut down
 * for good no longer has a disk to ask: it counts (it may have had it). */
static bool sim_disk_has(sim_cluster_t *c, uint64_t id, uint64_t index, uint64_t term)
{
	sim_node_t *v = sim_cluster_node(c, id);
	if (!v || v->state == SIM_NODE_GONE)
		return true;
	if (!sim_disk_present(v))
		return false;
	raft_storage_t st = sim_disk_storage(v);
	uint64_t t = 0, first = 0;
	st.ops->first_index(st.ctx, &first);
	if (index + 1 < first)
		return true;
	return st.ops->term(st.ctx, index, &t) == RAFT_OK && t == term;
}

static size_t sim_copies(sim_cluster_t *c, const raft_conf_t *conf, uint64_t index,
			 uint64_t term)
{
	size_t n = 0;
	for (size_t i = 0; i < conf->n_voters; i++)
		n += sim_disk_has(c, conf->voters[i], index, term);
	return n;
}

/* A leader that advanced its commit index to index in its own term: the entry must be on
 * a majority of the disks of its configuration (as of now, or as of index). */
void sim_confs_check_commit(sim_cluster_t *c, sim_node_t *leader, uint64_t index)
{
	raft_storage_t st = sim_disk_storage(leader);
	uint64_t term = 0;
	if (st.ops->term(st.ctx, index, &term) != RAFT_OK)
		return;
	raft_conf_t at;
	const raft_conf_t *tail = &leader->st.conf;
	if (sim_copies(c, tail, index, term) * 2 > tail->n_voters)
		return;
	if (sim_confs_at(&leader->confs, index, &at) && sim_copies(c, &at, index, term) * 2 >
							   at.n_voters)
		return;
	sim_check_fail(&c->chk, "commit quorum", "n%llu (leader, term %llu) committed index "
		       "%llu (term %llu) but only %zu of its %zu voters have it on disk",
		       (unsigned long long)leader->id, (unsigned long long)leader->st.term,
		       (unsigned long long)index, (unsigned long long)term,
		       sim_copies(c, tail, index, term), tail->n_voters);
}
