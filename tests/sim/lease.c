/* tests/sim/lease.c — leases in the --disk simulation. Clients grant leases, attach keys
 * and keep some of them alive through the leader; the leader's lessor (promoted once it
 * has applied an entry of its own term, demoted as soon as it stops leading) proposes
 * checkpoints and the revokes of expired leases, all through the log. Checked, across
 * crashes and failovers: no revoke that takes effect was decided before the lease's TTL
 * had run since its grant or since a keep-alive whose checkpoint was applied (a stale
 * leader may decide early, but its decision must never commit); none outlives its last
 * keep-alive by more than a bound once the cluster is healthy. The clock is the tick:
 * 100 ms each. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_LEASE_MS_PER_TICK 100
#define SIM_LEASE_MAX 512
/* Once healed, an unrenewed lease must be gone this long after its TTL ran out:
 * checkpoint rounding (1 s), the lessor's retry of an unapplied revoke (3 s), commit. */
#define SIM_LEASE_LATE_MS 15000

uint64_t sim_lease_now_ms(void *ctx)
{
	const sim_cluster_t *c = ctx;
	return c->tick * SIM_LEASE_MS_PER_TICK;
}

static sim_lease_t *sim_lease_find(sim_cluster_t *c, int64_t id)
{
	for (size_t i = 0; i < c->leases.n; i++)
		if (c->leases.l[i].id == id)
			return &c->leases.l[i];
	return NULL;
}

static bool sim_lease_propose(sim_cluster_t *c, sim_node_t *n,
			      const Etcdserverpb__InternalRaftRequest *req)
{
	size_t len = etcdserverpb__internal_raft_request__get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	etcdserverpb__internal_raft_request__pack(req, buf);
	int rc = raft_propose(n->raft, buf, len);
	free(buf);
	(void)c;
	return rc == RAFT_OK;
}

static void sim_lease_grant(sim_cluster_t *c, sim_node_t *l)
{
	if (c->leases.n == SIM_LEASE_MAX)
		return;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	g.id = kv_lease_new_id(l->kv);
	g.ttl = 5 + (int64_t)sim_rng_below(&c->rng, 6);
	req.lease_grant = &g;
	if (sim_lease_find(c, g.id) || !sim_lease_propose(c, l, &req))
		return;
	sim_lease_t *s = &c->leases.l[c->leases.n++];
	memset(s, 0, sizeof(*s));
	s->id = g.id;
	s->ttl_ms = (uint64_t)g.ttl * 1000;
	s->keep = sim_rng_chance(&c->rng, 0.5);
}

static void sim_lease_put(sim_cluster_t *c, sim_node_t *l)
{
	if (!c->leases.n)
		return;
	sim_lease_t *s = &c->leases.l[sim_rng_below(&c->rng, c->leases.n)];
	char key[32];
	snprintf(key, sizeof(key), "lease/%llx/%llu", (unsigned long long)s->id,
		 (unsigned long long)sim_rng_below(&c->rng, 4));
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key.data = (uint8_t *)key;
	put.key.len = strlen(key);
	put.lease = s->id;
	req.put = &put;
	sim_lease_propose(c, l, &req);
}

/* The last keep-alive of lease id that node l took in its current term. */
static uint64_t sim_lease_own_renewal(const sim_cluster_t *c, const sim_node_t *l, int64_t id)
{
	size_t n = c->leases.n_renewals, lo = n > 4096 ? n - 4096 : 0;
	for (size_t k = n; k > lo; k--) {
		const sim_lease_renewal_t *r = &c->leases.renewals[(k - 1) % 4096];
		if (r->id == id && r->by == l->id && r->term == l->st.term)
			return r->at;
	}
	return 0;
}

/* A checkpoint carries the renewals its proposer took in its own term before proposing
 * it (not those a stale leader took elsewhere): they count as acknowledged when it
 * applies on that proposer in that term. */
static void sim_lease_note_checkpoint(sim_cluster_t *c, sim_node_t *l,
				      const Etcdserverpb__LeaseCheckpointRequest *cp)
{
	for (size_t i = 0; i < cp->n_checkpoints; i++) {
		int64_t id = cp->checkpoints[i]->id;
		uint64_t covers = sim_lease_own_renewal(c, l, id);
		sim_lease_cp_t *r = &c->leases.cps[c->leases.n_cps++ % 4096];
		*r = (sim_lease_cp_t){ id, l->st.term, l->id, covers, false };
	}
}

static void sim_lease_checkpoint_applied(sim_cluster_t *c, sim_node_t *n, uint64_t term,
					 int64_t id)
{
	size_t n_cps = c->leases.n_cps, lo = n_cps > 4096 ? n_cps - 4096 : 0;
	for (size_t k = lo; k < n_cps; k++) {
		sim_lease_cp_t *r = &c->leases.cps[k % 4096];
		if (r->applied || r->id != id || r->term != term || r->by != n->id)
			continue;
		r->applied = true;
		sim_lease_t *s = sim_lease_find(c, id);
		if (s && r->covers > s->acked_at)
			s->acked_at = r->covers;
		return;
	}
}

/* Keep-alives go to the leader of the newest term, every third of a TTL, for the leases
 * the clients keep; an acknowledged renewal counts once its checkpoint applies. */
static void sim_lease_keepalives(sim_cluster_t *c, sim_node_t *l, uint64_t now)
{
	for (size_t i = 0; i < c->leases.n; i++) {
		sim_lease_t *s = &c->leases.l[i];
		if (!s->keep || !s->granted_at || s->revoked_at || now < s->next_renew)
			continue;
		int64_t ttl;
		if (kv_lease_renew(l->kv, s->id, &ttl) != KV_OK)
			continue;
		s->next_renew = now + s->ttl_ms / 3;
		s->renewed_at = now;
		c->leases.renewals[c->leases.n_renewals++ % 4096] =
			(sim_lease_renewal_t){ s->id, l->id, l->st.term, now };
		SIM_TRACE_C(c, SIM_EV_LEASE_RENEW, l->id, (uint64_t)s->id, now);
	}
}

void sim_lease_tick(sim_cluster_t *c)
{
	if (!sim_disk_on(c) || c->scripted)
		return;
	sim_node_t *l = sim_cluster_leader(c);
	if (!l || !l->kv || !kv_lease_is_primary(l->kv))
		return;
	uint64_t now = sim_lease_now_ms(c);
	int64_t ids[16];
	size_t n = kv_lease_expired(l->kv, ids, 16);
	for (size_t i = 0; i < n && !sim_failed(c); i++) {
		sim_lease_t *s = sim_lease_find(c, ids[i]);
		uint64_t since = s ? (s->acked_at > s->granted_at ? s->acked_at : s->granted_at) : 0;
		if (s && s->granted_at && now < since + s->ttl_ms &&
		    c->leases.n_early < SIM_LEASE_MAX) {
			sim_lease_early_t *e = &c->leases.early[c->leases.n_early++];
			*e = (sim_lease_early_t){ ids[i], l->st.term, l->id, now, since, s->ttl_ms };
		}
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
		r.id = ids[i];
		req.lease_revoke = &r;
		if (sim_lease_propose(c, l, &req))
			SIM_TRACE_C(c, SIM_EV_LEASE_EXPIRE, l->id, (uint64_t)ids[i], now);
	}
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(l->kv);
	if (cp) {
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		req.lease_checkpoint = cp;
		if (sim_lease_propose(c, l, &req))
			sim_lease_note_checkpoint(c, l, cp);
		protobuf_c_message_free_unpacked(&cp->base, NULL);
	}
	if (c->phase != SIM_PHASE_CHAOS)
		return;
	sim_lease_keepalives(c, l, now);
	if (sim_rng_chance(&c->rng, 0.02))
		sim_lease_grant(c, l);
	if (sim_rng_chance(&c->rng, 0.05))
		sim_lease_put(c, l);
}

/* The lessor follows leadership: demoted at once when the node stops leading, promoted
 * once, as leader, it has applied an entry of its own term (so every checkpoint of
 * earlier terms is in its lessor). */
void sim_lease_on_role(sim_cluster_t *c, sim_node_t *n, uint64_t applied_term)
{
	if (!n->kv)
		return;
	bool leading = n->raft && n->st.state == RAFT_LEADER;
	if (!leading && kv_lease_is_primary(n->kv)) {
		kv_lease_demote(n->kv);
		SIM_TRACE_C(c, SIM_EV_LEASE_DEMOTE, n->id, sim_lease_now_ms(c));
	} else if (leading && !kv_lease_is_primary(n->kv) && applied_term == n->st.term) {
		kv_lease_promote(n->kv);
		c->leases.promoted_at[n->id] = sim_lease_now_ms(c);
		SIM_TRACE_C(c, SIM_EV_LEASE_PROMOTE, n->id, sim_lease_now_ms(c));
	}
}

/* Results of applied lease requests: a grant's clock starts at its first apply; a
 * keep-alive is acknowledged when a checkpoint from the renewing leader's term applies
 * on that leader. */
void sim_lease_on_result(sim_cluster_t *c, sim_node_t *n, const kv_result_t *r,
			 const Etcdserverpb__InternalRaftRequest *req)
{
	uint64_t now = sim_lease_now_ms(c);
	if (req->lease_grant && r->err == KV_OK) {
		sim_lease_t *s = sim_lease_find(c, req->lease_grant->id);
		if (s && !s->granted_at)
			s->granted_at = now, s->next_renew = now + s->ttl_ms / 3;
	}
	if (req->lease_revoke && r->err == KV_OK) {
		sim_lease_t *s = sim_lease_find(c, req->lease_revoke->id);
		if (s && !s->revoked_at)
			s->revoked_at = now;
		for (size_t i = 0; i < c->leases.n_early && r->entry; i++) {
			const sim_lease_early_t *e = &c->leases.early[i];
			if (e->id == req->lease_revoke->id && e->term == r->entry->term)
				sim_check_fail(&c->chk, "lease expiry", "n%llu applies the revoke of "
					       "lease %llx that n%llu decided at %llu ms in term %llu, "
					       "but its TTL of %llu ms ran from %llu ms (grant or last "
					       "checkpointed keep-alive)", (unsigned long long)n->id,
					       (unsigned long long)e->id, (unsigned long long)e->by,
					       (unsigned long long)e->at, (unsigned long long)e->term,
					       (unsigned long long)e->ttl_ms,
					       (unsigned long long)e->since);
		}
	}
	if (req->lease_checkpoint && r->entry)
		for (size_t i = 0; i < req->lease_checkpoint->n_checkpoints; i++)
			sim_lease_checkpoint_applied(c, n, r->entry->term,
						     req->lease_checkpoint->checkpoints[i]->id);
}

/* Once healed: a lease nobody renewed for TTL + SIM_LEASE_LATE_MS must be gone, counted
 * from the leader's promotion too: nobody expires leases while no lessor is primary, and
 * a restarted node's deadlines restart at its open (a monotonic clock does not survive a
 * restart), which is before its promotion. */
bool sim_lease_check_converged(sim_cluster_t *c, sim_node_t *leader)
{
	if (!sim_disk_on(c) || !leader->kv)
		return true;
	uint64_t now = sim_lease_now_ms(c);
	for (size_t i = 0; i < c->leases.n; i++) {
		sim_lease_t *s = &c->leases.l[i];
		if (!s->granted_at || s->revoked_at)
			continue;
		uint64_t last = s->renewed_at > s->granted_at ? s->renewed_at : s->granted_at;
		if (c->leases.promoted_at[leader->id] > last)
			last = c->leases.promoted_at[leader->id];
		if (now < last + s->ttl_ms + SIM_LEASE_LATE_MS + c->p.election_tick * 3 *
							    SIM_LEASE_MS_PER_TICK)
			continue;
		Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
		q.id = s->id;
		Etcdserverpb__LeaseTimeToLiveResponse *resp = NULL;
		if (kv_lease_time_to_live(leader->kv, &q, &resp) != KV_OK || !resp)
			continue;
		int64_t ttl = resp->ttl;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (ttl >= 0)
			return sim_check_fail(&c->chk, "lease expiry", "lease %llx (TTL %llu ms) was "
					      "last renewed at %llu ms and still lives at %llu ms",
					      (unsigned long long)s->id,
					      (unsigned long long)s->ttl_ms,
					      (unsigned long long)last, (unsigned long long)now);
	}
	return true;
}
