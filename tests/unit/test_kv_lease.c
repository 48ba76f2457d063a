/* tests/unit/test_kv_lease.c — the lessor: grants, revokes and checkpoints through apply,
 * key attachment, leader-only expiry and renewal, and deadlines that survive failovers
 * and restarts without being shortened or stretched. The clock is the harness's now_ms. */
#include "kv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

/* ---- helpers ---- */

static int grant_err(kvh_t *h, int64_t id, int64_t ttl, int64_t *got_id, int64_t *got_ttl)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	g.id = id;
	g.ttl = ttl;
	req.lease_grant = &g;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (err == KV_OK) {
		Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)res.resp;
		if (got_id)
			*got_id = r->id;
		if (got_ttl)
			*got_ttl = r->ttl;
	}
	if (res.resp)
		protobuf_c_message_free_unpacked(res.resp, NULL);
	return err;
}

static int put_err(kvh_t *h, const char *key, const char *value, int64_t lease)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key = kvh_bin(key);
	put.value = kvh_bin(value);
	put.lease = lease;
	req.put = &put;
	return kvh_apply(h, &req, NULL);
}

static void apply_checkpoint(kvh_t *h, const Etcdserverpb__LeaseCheckpointRequest *cp)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.lease_checkpoint = (Etcdserverpb__LeaseCheckpointRequest *)cp;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
}

/* A checkpoint as etcd writes it: whole seconds, no remaining_ms. */
static void checkpoint_secs(kvh_t *h, int64_t id, int64_t remaining_ttl, int64_t remaining_ms)
{
	Etcdserverpb__LeaseCheckpoint c = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
	Etcdserverpb__LeaseCheckpoint *cs[1] = { &c };
	Etcdserverpb__LeaseCheckpointRequest cp = ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
	c.id = id;
	c.remaining_ttl = remaining_ttl;
	c.remaining_ms = remaining_ms;
	cp.n_checkpoints = 1;
	cp.checkpoints = cs;
	apply_checkpoint(h, &cp);
}

static void checkpoint_one(kvh_t *h, int64_t id, int64_t remaining_ttl)
{
	checkpoint_secs(h, id, remaining_ttl, 0);
}

/* A checkpoint as Keel writes it: milliseconds, and the seconds rounded up. */
static void checkpoint_ms(kvh_t *h, int64_t id, int64_t remaining_ms)
{
	checkpoint_secs(h, id, (remaining_ms + 999) / 1000, remaining_ms);
}

/* Remaining TTL (-1: unknown) and granted TTL; keys copied into *keys when asked. */
static int64_t ttl_of(kvh_t *h, int64_t id, int64_t *granted)
{
	Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
	Etcdserverpb__LeaseTimeToLiveResponse *resp = NULL;
	req.id = id;
	assert_int_equal(kv_lease_time_to_live(h->kv, &req, &resp), KV_OK);
	assert_non_null(resp);
	assert_int_equal(resp->id, id);
	int64_t ttl = resp->ttl;
	if (granted)
		*granted = resp->grantedttl;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ttl;
}

/* The keys attached to id, sorted, joined by ",". */
static char *keys_of(kvh_t *h, int64_t id)
{
	Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
	Etcdserverpb__LeaseTimeToLiveResponse *resp = NULL;
	req.id = id;
	req.keys = true;
	assert_int_equal(kv_lease_time_to_live(h->kv, &req, &resp), KV_OK);
	char *s = calloc(1, 4096);
	assert_non_null(s);
	for (size_t i = 0; i < resp->n_keys; i++) {
		if (i)
			strcat(s, ",");
		strncat(s, (const char *)resp->keys[i].data, resp->keys[i].len);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return s;
}

static void assert_keys(kvh_t *h, int64_t id, const char *want)
{
	char *got = keys_of(h, id);
	assert_string_equal(got, want);
	free(got);
}

static bool key_exists(kvh_t *h, const char *key)
{
	Etcdserverpb__RangeResponse *r = kvh_get(h, key, NULL, 0);
	bool found = r->count > 0;
	kvh_range_free(r);
	return found;
}

static int64_t key_lease(kvh_t *h, const char *key)
{
	Etcdserverpb__RangeResponse *r = kvh_get(h, key, NULL, 0);
	assert_int_equal(r->n_kvs, 1);
	int64_t lease = r->kvs[0]->lease;
	kvh_range_free(r);
	return lease;
}

static size_t expired(kvh_t *h, int64_t *ids, size_t max)
{
	return kv_lease_expired(h->kv, ids, max);
}

static bool expires_now(kvh_t *h, int64_t id)
{
	int64_t ids[64];
	size_t n = expired(h, ids, 64);
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* Events seen by a watcher. */
typedef struct seen {
	int64_t rev[64];
	int type[64];
	size_t n;
} seen_t;

static int seen_cb(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	seen_t *s = ud;
	for (size_t i = 0; i < resp->n_events && s->n < 64; i++) {
		s->rev[s->n] = resp->events[i]->kv->mod_revision;
		s->type[s->n++] = resp->events[i]->type;
	}
	return 0;
}

/* ---- grant ---- */

static void test_grant_with_id_stores_lease_and_keeps_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	int64_t rev = kv_revision(h->kv);
	int64_t id, ttl;
	assert_int_equal(grant_err(h, 42, 30, &id, &ttl), KV_OK);
	assert_int_equal(id, 42);
	assert_int_equal(ttl, 30);
	assert_int_equal(kv_revision(h->kv), rev);
	int64_t granted;
	assert_int_equal(ttl_of(h, 42, &granted), 30);
	assert_int_equal(granted, 30);
	kvh_free(h);
}

static void test_generated_ids_are_positive_unique_and_grantable(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	enum { N = 2000 };
	int64_t *ids = calloc(N, sizeof(*ids));
	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		ids[i] = kv_lease_new_id(h->kv);
		assert_true(ids[i] > 0);
		for (int j = 0; j < i; j++)
			assert_true(ids[i] != ids[j]);
	}
	/* Random-looking: not a small counter. */
	assert_true(ids[0] > (1LL << 32) || ids[1] > (1LL << 32));
	int64_t got = kvh_grant(h, 0, 10);
	assert_true(got > 0);
	assert_int_equal(ttl_of(h, got, NULL), 10);
	/* A live lease's id is never handed out again. */
	for (int i = 0; i < N; i++)
		assert_true(kv_lease_new_id(h->kv) != got);
	free(ids);
	kvh_free(h);
}

static void test_grant_refuses_id_zero_at_apply(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	assert_int_equal(grant_err(h, 0, 10, NULL, NULL), KV_ERR_BAD_REQUEST);
	assert_int_equal(grant_err(h, -5, 10, NULL, NULL), KV_ERR_BAD_REQUEST);
	Etcdserverpb__LeaseLeasesResponse *l = NULL;
	assert_int_equal(kv_lease_leases(h->kv, &l), KV_OK);
	assert_int_equal(l->n_leases, 0);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	kvh_free(h);
}

static void test_grant_duplicate_id_fails_with_lease_exists(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 7, 10);
	assert_int_equal(grant_err(h, 7, 20, NULL, NULL), KV_ERR_LEASE_EXISTS);
	int64_t granted;
	ttl_of(h, 7, &granted);
	assert_int_equal(granted, 10);
	kvh_free(h);
}

static void test_grant_ttl_too_large_fails(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	assert_int_equal(grant_err(h, 7, KV_MAX_LEASE_TTL + 1, NULL, NULL),
			 KV_ERR_LEASE_TTL_TOO_LARGE);
	assert_int_equal(ttl_of(h, 7, NULL), -1);
	int64_t ttl;
	assert_int_equal(grant_err(h, 8, KV_MAX_LEASE_TTL, NULL, &ttl), KV_OK);
	assert_int_equal(ttl, KV_MAX_LEASE_TTL);
	kvh_free(h);
}

static void test_grant_raises_ttl_to_min_lease_ttl(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.min_lease_ttl = 7;
	kvh_t *h = kvh_new(&opt);
	int64_t ttl;
	assert_int_equal(grant_err(h, 1, 2, NULL, &ttl), KV_OK);
	assert_int_equal(ttl, 7);
	assert_int_equal(grant_err(h, 2, -3, NULL, &ttl), KV_OK);
	assert_int_equal(ttl, 7);
	assert_int_equal(grant_err(h, 3, 8, NULL, &ttl), KV_OK);
	assert_int_equal(ttl, 8);
	int64_t granted;
	assert_int_equal(ttl_of(h, 1, &granted), 7);
	assert_int_equal(granted, 7);
	kvh_free(h);
}

/* ---- revoke and attachment ---- */

static void test_revoke_deletes_every_attached_key_in_one_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 5, 60);
	kvh_put(h, "k1", "v", 5);
	kvh_put(h, "k2", "v", 5);
	kvh_put(h, "k3", "v", 5);
	kvh_put(h, "other", "v", 0);
	int64_t rev = kv_revision(h->kv);

	seen_t seen = { 0 };
	Etcdserverpb__WatchCreateRequest wr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	wr.key = kvh_zero;
	wr.range_end = kvh_zero;
	kv_watcher_t *w;
	assert_int_equal(kv_watch(h->kv, &wr, seen_cb, &seen, &w), KV_OK);

	assert_int_equal(kvh_revoke(h, 5), KV_OK);
	assert_int_equal(kv_revision(h->kv), rev + 1);
	assert_false(key_exists(h, "k1"));
	assert_false(key_exists(h, "k2"));
	assert_false(key_exists(h, "k3"));
	assert_true(key_exists(h, "other"));
	assert_int_equal(seen.n, 3);
	for (size_t i = 0; i < seen.n; i++) {
		assert_int_equal(seen.type[i], MVCCPB__EVENT__EVENT_TYPE__DELETE);
		assert_int_equal(seen.rev[i], rev + 1);
	}
	assert_int_equal(ttl_of(h, 5, NULL), -1);
	assert_false(kv_lessor_exists(h->kv, 5));
	kv_watch_cancel(h->kv, w);
	kvh_free(h);
}

static void test_revoke_unknown_lease_fails(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	assert_int_equal(kvh_revoke(h, 99), KV_ERR_LEASE_NOT_FOUND);
	kvh_grant(h, 99, 10);
	assert_int_equal(kvh_revoke(h, 99), KV_OK);
	assert_int_equal(kvh_revoke(h, 99), KV_ERR_LEASE_NOT_FOUND);
	kvh_free(h);
}

static void test_revoke_without_keys_keeps_revision(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_grant(h, 3, 10);
	int64_t rev = kv_revision(h->kv);
	assert_int_equal(kvh_revoke(h, 3), KV_OK);
	assert_int_equal(kv_revision(h->kv), rev);
	kvh_free(h);
}

static void test_put_with_missing_lease_fails(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t rev = kv_revision(h->kv);
	assert_int_equal(put_err(h, "a", "1", 12345), KV_ERR_LEASE_NOT_FOUND);
	assert_false(key_exists(h, "a"));
	assert_int_equal(kv_revision(h->kv), rev);
	kvh_grant(h, 12345, 10);
	kvh_revoke(h, 12345);
	assert_int_equal(put_err(h, "a", "1", 12345), KV_ERR_LEASE_NOT_FOUND);
	kvh_free(h);
}

static void test_reput_with_other_lease_moves_attachment(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 60);
	kvh_grant(h, 2, 60);
	kvh_put(h, "k", "v1", 1);
	assert_keys(h, 1, "k");
	kvh_put(h, "k", "v2", 2);
	assert_keys(h, 1, "");
	assert_keys(h, 2, "k");
	assert_int_equal(key_lease(h, "k"), 2);
	/* Revoking the old lease leaves the key alone. */
	assert_int_equal(kvh_revoke(h, 1), KV_OK);
	assert_true(key_exists(h, "k"));
	/* A put without a lease detaches it too. */
	kvh_put(h, "k", "v3", 0);
	assert_keys(h, 2, "");
	assert_int_equal(kvh_revoke(h, 2), KV_OK);
	assert_true(key_exists(h, "k"));
	kvh_free(h);
}

static void test_deleting_a_key_detaches_it(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 60);
	kvh_put(h, "a", "v", 1);
	kvh_put(h, "b", "v", 1);
	assert_int_equal(kvh_del(h, "a", NULL), 1);
	assert_keys(h, 1, "b");
	/* Re-creating the key without the lease: the revoke must not touch it. */
	kvh_put(h, "a", "v", 0);
	int64_t rev = kv_revision(h->kv);
	assert_int_equal(kvh_revoke(h, 1), KV_OK);
	assert_true(key_exists(h, "a"));
	assert_false(key_exists(h, "b"));
	assert_int_equal(kv_revision(h->kv), rev + 1);
	kvh_free(h);
}

static void test_time_to_live_reports_remaining_granted_and_keys(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	kvh_grant(h, 9, 30);
	kvh_put(h, "x", "1", 9);
	kvh_put(h, "y", "1", 9);
	h->now_ms += 10500;
	int64_t granted;
	assert_int_equal(ttl_of(h, 9, &granted), 19);
	assert_int_equal(granted, 30);
	assert_keys(h, 9, "x,y");
	/* A follower answers from its deadline hint. */
	kv_lease_demote(h->kv);
	assert_int_equal(ttl_of(h, 9, NULL), 19);
	/* Unknown lease: etcd's gRPC answers TTL -1. */
	assert_int_equal(ttl_of(h, 10, NULL), -1);
	kvh_free(h);
}

static void test_leases_lists_every_lease(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	int64_t want[50];
	for (int i = 0; i < 50; i++)
		want[i] = kvh_grant(h, 0, 10);
	kvh_revoke(h, want[7]);
	Etcdserverpb__LeaseLeasesResponse *l = NULL;
	assert_int_equal(kv_lease_leases(h->kv, &l), KV_OK);
	assert_int_equal(l->n_leases, 49);
	for (int i = 0; i < 50; i++) {
		bool found = false;
		for (size_t j = 0; j < l->n_leases; j++)
			found |= l->leases[j]->id == want[i];
		assert_int_equal(found, i != 7);
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	kvh_free(h);
}

/* ---- expiry, renewal, primary ---- */

static void test_expiry_only_on_the_primary(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 10);
	int64_t ids[8];
	h->now_ms += 20000;
	assert_false(kv_lease_is_primary(h->kv));
	assert_int_equal(expired(h, ids, 8), 0);
	kv_lease_promote(h->kv);
	assert_true(kv_lease_is_primary(h->kv));
	assert_int_equal(expired(h, ids, 8), 1);
	assert_int_equal(ids[0], 1);
	/* Returned once, then again only after the retry period if not revoked. */
	assert_int_equal(expired(h, ids, 8), 0);
	h->now_ms += 2999;
	assert_int_equal(expired(h, ids, 8), 0);
	h->now_ms += 1;
	assert_int_equal(expired(h, ids, 8), 1);
	kvh_revoke(h, 1);
	h->now_ms += 10000;
	assert_int_equal(expired(h, ids, 8), 0);
	kvh_free(h);
}

static void test_expired_returns_at_most_max_in_deadline_order(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	for (int i = 1; i <= 10; i++) {
		kvh_grant(h, i, 10);
		h->now_ms += 100;
	}
	h->now_ms += 8900;       /* t0 + 9900: lease i is due at t0 + 10000 + 100 (i - 1) */
	int64_t ids[16];
	assert_int_equal(expired(h, ids, 16), 0);
	h->now_ms += 450;        /* t0 + 10350: 1..4 */
	assert_int_equal(expired(h, ids, 2), 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(expired(h, ids, 16), 2);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 4);
	kvh_free(h);
}

static void test_lease_granted_on_primary_expires_after_ttl(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	uint64_t t0 = h->now_ms;
	kvh_grant(h, 1, 10);
	h->now_ms = t0 + 9999;
	assert_false(expires_now(h, 1));
	h->now_ms = t0 + 10000;
	assert_true(expires_now(h, 1));
	kvh_free(h);
}

static void test_renew_extends_expiry(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	uint64_t t0 = h->now_ms;
	kvh_grant(h, 1, 10);
	h->now_ms = t0 + 8000;
	int64_t ttl = 0;
	assert_int_equal(kv_lease_renew(h->kv, 1, &ttl), KV_OK);
	assert_int_equal(ttl, 10);
	assert_int_equal(ttl_of(h, 1, NULL), 10);
	h->now_ms = t0 + 17999;
	assert_false(expires_now(h, 1));
	h->now_ms = t0 + 18000;
	assert_true(expires_now(h, 1));
	assert_int_equal(kv_lease_renew(h->kv, 77, &ttl), KV_ERR_LEASE_NOT_FOUND);
	kvh_free(h);
}

static void test_expired_lease_cannot_be_renewed(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	kvh_grant(h, 1, 10);
	h->now_ms += 10000;
	int64_t ttl;
	assert_int_equal(kv_lease_renew(h->kv, 1, &ttl), KV_ERR_LEASE_NOT_FOUND);
	assert_true(expires_now(h, 1));
	kvh_free(h);
}

static void test_demote_stops_expiry_and_renewal(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	kvh_grant(h, 1, 10);
	kv_lease_demote(h->kv);
	assert_false(kv_lease_is_primary(h->kv));
	int64_t ttl;
	assert_int_equal(kv_lease_renew(h->kv, 1, &ttl), KV_ERR_NOT_PRIMARY);
	h->now_ms += 60000;
	int64_t ids[4];
	assert_int_equal(expired(h, ids, 4), 0);
	assert_null(kv_lease_checkpoints(h->kv));
	/* The lease is still there: only a revoke through the log removes it. */
	assert_int_equal(ttl_of(h, 1, NULL), 0);
	kvh_free(h);
}

/* ---- checkpoints ---- */

static void test_checkpoints_carry_exact_ms_and_seconds_rounded_up(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	kvh_grant(h, 1, 10);
	kvh_grant(h, 2, 10);
	assert_null(kv_lease_checkpoints(h->kv));
	h->now_ms += 3000;
	int64_t ttl;
	assert_int_equal(kv_lease_renew(h->kv, 1, &ttl), KV_OK);
	h->now_ms += 400;
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(h->kv);
	assert_non_null(cp);
	assert_int_equal(cp->n_checkpoints, 1);
	assert_int_equal(cp->checkpoints[0]->id, 1);
	assert_int_equal(cp->checkpoints[0]->remaining_ms, 9600);
	assert_int_equal(cp->checkpoints[0]->remaining_ttl, 10); /* for etcd: rounded up */
	apply_checkpoint(h, cp);
	protobuf_c_message_free_unpacked(&cp->base, NULL);
	/* Once taken, not again until renewed again or the interval passes. */
	assert_null(kv_lease_checkpoints(h->kv));
	/* Applying our own checkpoint leaves our deadline where the renewal put it. */
	h->now_ms += 9599;
	assert_false(expires_now(h, 1));
	h->now_ms += 1;
	assert_true(expires_now(h, 1));
	kvh_free(h);
}

static void test_checkpoints_refresh_leases_after_the_interval(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	uint64_t t0 = h->now_ms;
	kvh_grant(h, 1, 60);
	h->now_ms = t0 + 4999;
	assert_null(kv_lease_checkpoints(h->kv));
	h->now_ms = t0 + 5000;
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(h->kv);
	assert_non_null(cp);
	assert_int_equal(cp->n_checkpoints, 1);
	assert_int_equal(cp->checkpoints[0]->remaining_ms, 55000);
	assert_int_equal(cp->checkpoints[0]->remaining_ttl, 55);
	apply_checkpoint(h, cp);
	protobuf_c_message_free_unpacked(&cp->base, NULL);
	/* Applying our own checkpoint does not move our deadline. */
	h->now_ms = t0 + 59999;
	assert_false(expires_now(h, 1));
	h->now_ms = t0 + 60000;
	assert_true(expires_now(h, 1));
	kvh_free(h);
}

static void test_checkpoints_are_batched_by_1000(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_lease_promote(h->kv);
	enum { N = 2500 };
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	req.lease_grant = &g;
	for (int i = 1; i <= N; i++) {
		g.id = i;
		g.ttl = 100;
		assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
	}
	h->now_ms += 1;
	for (int i = 1; i <= N; i++) {
		int64_t ttl;
		assert_int_equal(kv_lease_renew(h->kv, i, &ttl), KV_OK);
	}
	size_t sizes[4] = { 0 }, k = 0;
	Etcdserverpb__LeaseCheckpointRequest *cp;
	while ((cp = kv_lease_checkpoints(h->kv)) != NULL) {
		assert_true(k < 4);
		sizes[k++] = cp->n_checkpoints;
		protobuf_c_message_free_unpacked(&cp->base, NULL);
	}
	assert_int_equal(k, 3);
	assert_int_equal(sizes[0], 1000);
	assert_int_equal(sizes[1], 1000);
	assert_int_equal(sizes[2], 500);
	kvh_free(h);
}

static void test_checkpoint_of_unknown_lease_is_ignored(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 30);
	Etcdserverpb__LeaseCheckpoint c1 = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
	Etcdserverpb__LeaseCheckpoint c2 = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
	Etcdserverpb__LeaseCheckpoint *cs[2] = { &c1, &c2 };
	Etcdserverpb__LeaseCheckpointRequest cp = ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
	c1.id = 555;
	c1.remaining_ttl = 10;
	c2.id = 1;
	c2.remaining_ttl = 12;
	cp.n_checkpoints = 2;
	cp.checkpoints = cs;
	apply_checkpoint(h, &cp);
	assert_int_equal(ttl_of(h, 555, NULL), -1);
	assert_int_equal(ttl_of(h, 1, NULL), 12);
	kvh_free(h);
}

/* remaining_ms wins when set; etcd's seconds count only without it; nonsense changes
 * nothing; nothing goes past the granted TTL. */
static void test_checkpoint_reads_ms_first_then_seconds(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	uint64_t t0 = h->now_ms;
	for (int64_t id = 1; id <= 5; id++)
		kvh_grant(h, id, 30);
	checkpoint_secs(h, 1, 30, 2500);      /* seconds disagree: not read */
	checkpoint_secs(h, 2, 12, 0);         /* etcd's checkpoint: 12 s */
	checkpoint_secs(h, 3, 7, -5);         /* negative ms: ignored */
	checkpoint_secs(h, 4, 0, 0);          /* empty: ignored */
	checkpoint_secs(h, 5, 99, 99999999);  /* beyond the granted TTL: 30 s */
	assert_int_equal(ttl_of(h, 1, NULL), 2);
	assert_int_equal(ttl_of(h, 2, NULL), 12);
	assert_int_equal(ttl_of(h, 3, NULL), 30);
	assert_int_equal(ttl_of(h, 4, NULL), 30);
	assert_int_equal(ttl_of(h, 5, NULL), 30);
	kv_lease_promote(h->kv);
	h->now_ms = t0 + 2499;
	assert_false(expires_now(h, 1));
	h->now_ms = t0 + 2500;
	assert_true(expires_now(h, 1));
	h->now_ms = t0 + 11999;
	assert_false(expires_now(h, 2));
	h->now_ms = t0 + 12000;
	assert_true(expires_now(h, 2));
	assert_int_equal(kvh_revoke(h, 1), KV_OK);
	assert_int_equal(kvh_revoke(h, 2), KV_OK);
	h->now_ms = t0 + 29999;
	int64_t ids[8];
	assert_int_equal(expired(h, ids, 8), 0);
	h->now_ms = t0 + 30000;
	assert_int_equal(expired(h, ids, 8), 3);
	kvh_free(h);
}

/* ---- failover ---- */

/* Two members fed the same log. */
typedef struct pair {
	kvh_t *m[2];
} pair_t;

static void pair_grant(pair_t *p, int64_t id, int64_t ttl)
{
	for (int i = 0; i < 2; i++)
		kvh_grant(p->m[i], id, ttl);
}

static void pair_revoke(pair_t *p, int64_t id)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(kvh_revoke(p->m[i], id), KV_OK);
}

static void pair_set_clock(pair_t *p, uint64_t now)
{
	p->m[0]->now_ms = p->m[1]->now_ms = now;
}

/* The leader's checkpoints, applied on both. */
static void pair_checkpoint(pair_t *p, int leader)
{
	Etcdserverpb__LeaseCheckpointRequest *cp;
	while ((cp = kv_lease_checkpoints(p->m[leader]->kv)) != NULL) {
		for (int i = 0; i < 2; i++)
			apply_checkpoint(p->m[i], cp);
		protobuf_c_message_free_unpacked(&cp->base, NULL);
	}
}

static void pair_new(pair_t *p, const kv_options_t *opt)
{
	for (int i = 0; i < 2; i++)
		p->m[i] = kvh_new(opt);
}

static void pair_free(pair_t *p)
{
	for (int i = 0; i < 2; i++)
		kvh_free(p->m[i]);
}

/* (a) The new leader's deadline is the checkpointed one, measured from its apply. */
static void test_failover_expires_at_checkpointed_deadline(void **state)
{
	(void)state;
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	kv_lease_promote(p.m[0]->kv);
	pair_grant(&p, 1, 30);
	pair_set_clock(&p, t0 + 5000);
	for (int i = 0; i < 2; i++)
		checkpoint_one(p.m[i], 1, 10);   /* deadline t0 + 15 s */
	pair_set_clock(&p, t0 + 12000);
	kv_lease_demote(p.m[0]->kv);
	kv_lease_promote(p.m[1]->kv);
	assert_int_equal(ttl_of(p.m[1], 1, NULL), 3);
	p.m[1]->now_ms = t0 + 14999;
	assert_false(expires_now(p.m[1], 1));
	p.m[1]->now_ms = t0 + 15000;
	assert_true(expires_now(p.m[1], 1));
	pair_free(&p);
}

/* A lease whose deadline passed while nobody led expires as soon as someone leads. */
static void test_promotion_expires_overdue_lease_at_once(void **state)
{
	(void)state;
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	pair_grant(&p, 1, 10);
	pair_set_clock(&p, t0 + 30000);
	kv_lease_promote(p.m[1]->kv);
	assert_true(expires_now(p.m[1], 1));
	pair_free(&p);
}

/* (b) Leaders changing every second for a minute: deadlines hold. etcd would restart every
 * lease's TTL at each promotion and never expire them. */
static void run_flapping(uint64_t interval_ms, uint64_t grant_offset, int64_t ttl,
			 uint64_t step_ms)
{
	kv_options_t opt;
	kv_options_default(&opt);
	opt.checkpoint_interval_ms = interval_ms;
	pair_t p;
	pair_new(&p, &opt);
	uint64_t t0 = 1000000, granted = t0 + grant_offset;
	pair_set_clock(&p, granted);
	pair_grant(&p, 1, ttl);
	uint64_t deadline = granted + (uint64_t)ttl * 1000;
	int leader = 0;
	kv_lease_promote(p.m[leader]->kv);
	uint64_t revoked_at = 0, before = 0;
	/* The leader looks at its leases every step_ms, on a grid that the grant is not on. */
	uint64_t next_flap = t0 + 1000, jitter = 12345;
	for (uint64_t t = t0 + step_ms; t <= t0 + 60000 && !revoked_at; t += step_ms) {
		/* Calls come every step_ms give or take a third of it, as timers do. */
		jitter = jitter * 6364136223846793005ULL + 1442695040888963407ULL;
		t += (jitter >> 33) % (step_ms / 3 + 1);
		if (t < granted)
			continue;
		pair_set_clock(&p, t);
		if (t >= next_flap) {
			next_flap += 1000;
			kv_lease_demote(p.m[leader]->kv);
			leader ^= 1;
			kv_lease_promote(p.m[leader]->kv);
		}
		pair_checkpoint(&p, leader);
		if (expires_now(p.m[leader], 1)) {
			revoked_at = t;
			pair_revoke(&p, 1);
		} else {
			before = t;
		}
	}
	assert_true(revoked_at != 0);
	if (getenv("LEASE_DEBUG"))
		fprintf(stderr, "flapping: revoked %lld ms after the deadline\n",
			(long long)(revoked_at - deadline));
	/* Expired at the leader's first look at or after the deadline: not before, not after. */
	assert_true(revoked_at >= deadline);
	assert_true(before < deadline);
	pair_free(&p);
}

static void test_flapping_leaders_never_extend_a_lease(void **state)
{
	(void)state;
	run_flapping(5000, 0, 5, 1000);
	/* Checkpoints at every step, at an offset that rounding would stretch. */
	run_flapping(1000, 300, 5, 100);
	run_flapping(1000, 370, 40, 100);
	run_flapping(500, 730, 30, 50);
}

/* (c) Renewals the old leader checkpointed hold on the new leader. */
static void test_renewed_then_checkpointed_lease_survives_failover(void **state)
{
	(void)state;
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	kv_lease_promote(p.m[0]->kv);
	pair_grant(&p, 1, 10);
	pair_set_clock(&p, t0 + 8000);
	int64_t ttl;
	assert_int_equal(kv_lease_renew(p.m[0]->kv, 1, &ttl), KV_OK);   /* until t0 + 18 s */
	pair_checkpoint(&p, 0);
	pair_set_clock(&p, t0 + 9000);
	kv_lease_demote(p.m[0]->kv);
	kv_lease_promote(p.m[1]->kv);
	p.m[1]->now_ms = t0 + 17999;
	assert_false(expires_now(p.m[1], 1));
	p.m[1]->now_ms = t0 + 18000;
	assert_true(expires_now(p.m[1], 1));
	pair_free(&p);
}

/* (a) A renewal that moves the deadline by 300 ms, under the one-second grain of etcd's
 * remaining_TTL, is carried exactly: whoever leads next expires the lease no earlier than
 * the renewed deadline and no later than that plus the checkpoint's commit latency. The
 * renewing leader itself keeps its exact deadline. */
static void run_small_renewal(uint64_t latency, bool failover)
{
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	kv_lease_promote(p.m[0]->kv);
	pair_grant(&p, 1, 10);
	pair_set_clock(&p, t0 + 300);
	int64_t ttl;
	assert_int_equal(kv_lease_renew(p.m[0]->kv, 1, &ttl), KV_OK);   /* until t0 + 10.3 s */
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(p.m[0]->kv);
	assert_non_null(cp);
	assert_int_equal(cp->checkpoints[0]->remaining_ms, 10000);
	pair_set_clock(&p, t0 + 300 + latency);
	for (int i = 0; i < 2; i++)
		apply_checkpoint(p.m[i], cp);
	protobuf_c_message_free_unpacked(&cp->base, NULL);
	int leader = 0;
	if (failover) {
		kv_lease_demote(p.m[0]->kv);
		kv_lease_promote(p.m[1]->kv);
		leader = 1;
	}
	uint64_t deadline = t0 + 10300 + (failover ? latency : 0);
	p.m[leader]->now_ms = t0 + 10299;
	assert_false(expires_now(p.m[leader], 1));
	p.m[leader]->now_ms = deadline - 1;
	assert_false(expires_now(p.m[leader], 1));
	p.m[leader]->now_ms = deadline;
	assert_true(expires_now(p.m[leader], 1));
	pair_free(&p);
}

static void test_small_renewal_survives_failover_exactly(void **state)
{
	(void)state;
	run_small_renewal(0, true);
	run_small_renewal(40, true);
	run_small_renewal(250, true);
	run_small_renewal(250, false);
}

/* Periodic checkpoints of a lease nobody renews never move its deadline, however often
 * they round and whoever leads. */
static void test_periodic_checkpoints_do_not_stretch_a_lease(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.checkpoint_interval_ms = 700;
	pair_t p;
	pair_new(&p, &opt);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0 + 123);
	pair_grant(&p, 1, 60);
	int leader = 0;
	kv_lease_promote(p.m[leader]->kv);
	for (uint64_t t = t0 + 123; t < t0 + 123 + 59000; t += 333) {
		pair_set_clock(&p, t);
		pair_checkpoint(&p, leader);
		kv_lease_demote(p.m[leader]->kv);
		leader ^= 1;
		kv_lease_promote(p.m[leader]->kv);
		assert_false(expires_now(p.m[leader], 1));
	}
	pair_set_clock(&p, t0 + 123 + 59999);
	assert_false(expires_now(p.m[leader], 1));
	pair_set_clock(&p, t0 + 123 + 60000);
	assert_true(expires_now(p.m[leader], 1));
	pair_free(&p);
}

/* An old leader's checkpoint that applies after the promotion still counts. */
static void test_checkpoint_of_previous_leader_applied_after_promotion(void **state)
{
	(void)state;
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	kv_lease_promote(p.m[0]->kv);
	pair_grant(&p, 1, 10);
	pair_set_clock(&p, t0 + 8000);
	int64_t ttl;
	assert_int_equal(kv_lease_renew(p.m[0]->kv, 1, &ttl), KV_OK);
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(p.m[0]->kv);
	assert_non_null(cp);
	kv_lease_demote(p.m[0]->kv);
	kv_lease_promote(p.m[1]->kv);          /* deadline still t0 + 10 s here */
	for (int i = 0; i < 2; i++)
		apply_checkpoint(p.m[i], cp);
	protobuf_c_message_free_unpacked(&cp->base, NULL);
	p.m[1]->now_ms = t0 + 17999;
	assert_false(expires_now(p.m[1], 1));
	p.m[1]->now_ms = t0 + 18000;
	assert_true(expires_now(p.m[1], 1));
	pair_free(&p);
}

/* Checkpoints in flight: proposed by the leader, applied on both members LAT ms later. */
enum { LAT_MS = 250, INFLIGHT = 64 };
typedef struct inflight {
	Etcdserverpb__LeaseCheckpointRequest *cp[INFLIGHT];
	uint64_t at[INFLIGHT];
	size_t head, n;
} inflight_t;

static void inflight_propose(inflight_t *q, pair_t *p, int leader, uint64_t now)
{
	Etcdserverpb__LeaseCheckpointRequest *cp;
	while ((cp = kv_lease_checkpoints(p->m[leader]->kv)) != NULL) {
		assert_true(q->n < INFLIGHT);
		size_t i = (q->head + q->n++) % INFLIGHT;
		q->cp[i] = cp;
		q->at[i] = now + LAT_MS;
	}
}

/* Applies, in log order, every checkpoint due by now (all of them when flush). */
static void inflight_apply(inflight_t *q, pair_t *p, uint64_t now, bool flush)
{
	while (q->n > 0 && (flush || q->at[q->head] <= now)) {
		for (int i = 0; i < 2; i++)
			apply_checkpoint(p->m[i], q->cp[q->head]);
		protobuf_c_message_free_unpacked(&q->cp[q->head]->base, NULL);
		q->head = (q->head + 1) % INFLIGHT;
		q->n--;
	}
}

/* (b) Leaders change every 300 ms for two minutes while checkpoints take LAT_MS to commit
 * and apply. Unrenewed 10 s leases, granted one after another at odd offsets, are each
 * revoked at the leader's first look at or after the deadline plus at most one commit
 * latency: never before the deadline, and not stretched by the 30-odd promotions each
 * one lives through. etcd would restart their TTLs at every promotion. */
static void test_flapping_every_300ms_with_commit_latency_holds_deadlines(void **state)
{
	(void)state;
	enum { STEP_MS = 50, N = 11 };
	pair_t p;
	pair_new(&p, NULL);
	inflight_t q = { 0 };
	uint64_t t0 = 1000000, deadline[N + 1] = { 0 }, revoked[N + 1] = { 0 };
	int64_t next = 1;
	int leader = 0;
	kv_lease_promote(p.m[leader]->kv);
	for (uint64_t t = t0; t <= t0 + 120000; t += STEP_MS) {
		pair_set_clock(&p, t);
		inflight_apply(&q, &p, t, false);
		if ((t - t0) % 300 == 0 && t > t0) {
			kv_lease_demote(p.m[leader]->kv);
			leader ^= 1;
			kv_lease_promote(p.m[leader]->kv);
		}
		if (next <= N && t >= t0 + 130 + (uint64_t)(next - 1) * 10770) {
			pair_grant(&p, next, 10);
			deadline[next++] = t + 10000;
		}
		inflight_propose(&q, &p, leader, t);
		int64_t ids[8];
		size_t n = expired(p.m[leader], ids, 8);
		for (size_t i = 0; i < n; i++) {
			assert_true(ids[i] >= 1 && ids[i] <= N);
			assert_int_equal(revoked[ids[i]], 0);
			revoked[ids[i]] = t;
			pair_revoke(&p, ids[i]);
		}
	}
	inflight_apply(&q, &p, 0, true);
	for (int64_t id = 1; id <= N; id++) {
		if (getenv("LEASE_DEBUG"))
			fprintf(stderr, "lease %lld revoked %lld ms after its deadline\n",
				(long long)id, (long long)(revoked[id] - deadline[id]));
		assert_true(revoked[id] >= deadline[id]);
		assert_true(revoked[id] <= deadline[id] + LAT_MS + STEP_MS);
	}
	pair_free(&p);
}

/* (c) A follower that applies a checkpoint long after it was proposed measures the remaining
 * TTL from its own apply: its deadline is later than the leader's, never earlier. A later
 * checkpoint applied at once brings it back (hints are taken as they come, not merged). */
static void run_late_apply(bool caught_up)
{
	pair_t p;
	pair_new(&p, NULL);
	uint64_t t0 = 1000000;
	pair_set_clock(&p, t0);
	kv_lease_promote(p.m[0]->kv);
	pair_grant(&p, 1, 10);
	p.m[0]->now_ms = t0 + 4000;
	int64_t ttl;
	assert_int_equal(kv_lease_renew(p.m[0]->kv, 1, &ttl), KV_OK);   /* until t0 + 14 s */
	Etcdserverpb__LeaseCheckpointRequest *cp = kv_lease_checkpoints(p.m[0]->kv);
	assert_non_null(cp);
	assert_int_equal(cp->checkpoints[0]->remaining_ms, 10000);
	apply_checkpoint(p.m[0], cp);
	pair_set_clock(&p, t0 + 9000);                                  /* m1: 5 s late */
	apply_checkpoint(p.m[1], cp);
	protobuf_c_message_free_unpacked(&cp->base, NULL);
	assert_int_equal(ttl_of(p.m[0], 1, NULL), 5);
	assert_int_equal(ttl_of(p.m[1], 1, NULL), 10);
	uint64_t deadline = t0 + 19000;
	if (caught_up) {
		/* m0's periodic checkpoint (5 s after its last), applied on both at once. */
		pair_checkpoint(&p, 0);
		assert_int_equal(ttl_of(p.m[1], 1, NULL), 5);
		deadline = t0 + 14000;
	}
	kv_lease_demote(p.m[0]->kv);
	kv_lease_promote(p.m[1]->kv);
	p.m[1]->now_ms = t0 + 13999;
	assert_false(expires_now(p.m[1], 1));
	p.m[1]->now_ms = deadline - 1;
	assert_false(expires_now(p.m[1], 1));
	p.m[1]->now_ms = deadline;
	assert_true(expires_now(p.m[1], 1));
	pair_free(&p);
}

static void test_checkpoint_applied_late_gives_a_later_deadline(void **state)
{
	(void)state;
	run_late_apply(false);
	run_late_apply(true);
}

/* ---- persistence and aborts ---- */

static void test_leases_survive_reopen(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 30);
	kvh_grant(h, 2, 40);
	kvh_put(h, "a", "v", 1);
	h->now_ms += 10000;
	checkpoint_ms(h, 2, 25400);
	kvh_reopen(h);
	int64_t granted;
	/* A restart knows no better than the checkpointed remaining TTL, or the granted one. */
	assert_int_equal(ttl_of(h, 1, &granted), 30);
	assert_int_equal(granted, 30);
	assert_int_equal(ttl_of(h, 2, &granted), 25);
	assert_int_equal(granted, 40);
	assert_keys(h, 1, "a");
	assert_true(kv_lessor_exists(h->kv, 1));
	assert_int_equal(grant_err(h, 1, 10, NULL, NULL), KV_ERR_LEASE_EXISTS);
	/* ... to the millisecond. */
	kv_lease_promote(h->kv);
	h->now_ms += 25399;
	assert_false(expires_now(h, 2));
	h->now_ms += 1;
	assert_true(expires_now(h, 2));
	assert_false(expires_now(h, 1));
	assert_int_equal(kvh_revoke(h, 1), KV_OK);
	assert_false(key_exists(h, "a"));
	kvh_reopen(h);
	assert_int_equal(ttl_of(h, 1, NULL), -1);
	kvh_free(h);
}

/* A stored remaining TTL above the granted one is not what Keel writes: open refuses the
 * file with a message rather than trusting it. */
static void test_stored_remaining_above_granted_ttl_is_corrupt(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_grant(h, 1, 10);
	kv_t *kv = h->kv;
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(kv->env, NULL, 0, &txn), 0);
	uint8_t kb[8];
	kv_put_be64(kb, 1);
	kv_lease_rec_t rec = { .ttl = 10, .remaining_ms = 10001 };
	MDB_val k = { .mv_size = 8, .mv_data = kb }, v = { .mv_size = sizeof(rec), .mv_data = &rec };
	assert_int_equal(mdb_put(txn, kv->dbi_lease, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	kv_close(h->kv);
	h->kv = NULL;
	char err[512] = "";
	assert_int_not_equal(kv_open(h->path, &h->opt, &h->kv, err, sizeof(err)), KV_OK);
	assert_null(h->kv);
	assert_non_null(strstr(err, "remaining 10001 ms"));
	kvh_free(h);
}

static void test_staged_grant_is_dropped_when_the_batch_aborts(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kv_t *kv = h->kv;
	kv_lease_promote(kv);
	kvh_grant(h, 1, 10);
	kv_wtxn_t w;
	memset(&w, 0, sizeof(w));
	w.kv = kv;
	w.rev = kv_revision(kv);
	assert_int_equal(mdb_txn_begin(kv->env, NULL, 0, &w.txn), 0);
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantResponse gr = ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;
	g.id = 2;
	g.ttl = 10;
	assert_int_equal(kv_lessor_grant(&w, &g, &gr), KV_OK);
	assert_true(kv_lessor_exists(kv, 2));
	Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
	r.id = 1;
	assert_int_equal(kv_lessor_revoke(&w, &r), KV_OK);
	assert_false(kv_lessor_exists(kv, 1));
	mdb_txn_abort(w.txn);
	kv_lessor_commit(kv, false);
	assert_false(kv_lessor_exists(kv, 2));
	assert_true(kv_lessor_exists(kv, 1));
	assert_int_equal(ttl_of(h, 2, NULL), -1);
	assert_int_equal(ttl_of(h, 1, NULL), 10);
	h->now_ms += 10000;
	assert_true(expires_now(h, 1));
	kvh_free(h);
}

/* Through the public API: a batch that fills the map is undone, lessor included. */
static void test_grant_in_a_batch_that_fails_leaves_no_lease(void **state)
{
	(void)state;
	kv_options_t opt;
	kv_options_default(&opt);
	opt.map_size = 1u << 20;
	kvh_t *h = kvh_new(&opt);
	Etcdserverpb__InternalRaftRequest g = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest gr = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	gr.id = 3;
	gr.ttl = 10;
	g.lease_grant = &gr;
	Etcdserverpb__InternalRaftRequest p = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	size_t big = 4u << 20;
	uint8_t *val = calloc(1, big);
	assert_non_null(val);
	put.key = kvh_bin("big");
	put.value.data = val;
	put.value.len = big;
	p.put = &put;
	raft_entry_t e[2] = { RAFTPB__ENTRY__INIT, RAFTPB__ENTRY__INIT };
	raft_entry_t *ents[2] = { &e[0], &e[1] };
	const Etcdserverpb__InternalRaftRequest *reqs[2] = { &g, &p };
	for (int i = 0; i < 2; i++) {
		e[i].index = h->index + 1 + (uint64_t)i;
		e[i].term = 1;
		e[i].data.len = etcdserverpb__internal_raft_request__get_packed_size(reqs[i]);
		e[i].data.data = malloc(e[i].data.len);
		assert_non_null(e[i].data.data);
		etcdserverpb__internal_raft_request__pack(reqs[i], e[i].data.data);
	}
	int rc = kv_apply(h->kv, ents, 2, NULL, NULL);
	assert_int_not_equal(rc, KV_OK);
	assert_false(kv_lessor_exists(h->kv, 3));
	assert_int_equal(ttl_of(h, 3, NULL), -1);
	for (int i = 0; i < 2; i++)
		free(e[i].data.data);
	free(val);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grant_with_id_stores_lease_and_keeps_revision),
		cmocka_unit_test(test_generated_ids_are_positive_unique_and_grantable),
		cmocka_unit_test(test_grant_refuses_id_zero_at_apply),
		cmocka_unit_test(test_grant_duplicate_id_fails_with_lease_exists),
		cmocka_unit_test(test_grant_ttl_too_large_fails),
		cmocka_unit_test(test_grant_raises_ttl_to_min_lease_ttl),
		cmocka_unit_test(test_revoke_deletes_every_attached_key_in_one_revision),
		cmocka_unit_test(test_revoke_unknown_lease_fails),
		cmocka_unit_test(test_revoke_without_keys_keeps_revision),
		cmocka_unit_test(test_put_with_missing_lease_fails),
		cmocka_unit_test(test_reput_with_other_lease_moves_attachment),
		cmocka_unit_test(test_deleting_a_key_detaches_it),
		cmocka_unit_test(test_time_to_live_reports_remaining_granted_and_keys),
		cmocka_unit_test(test_leases_lists_every_lease),
		cmocka_unit_test(test_expiry_only_on_the_primary),
		cmocka_unit_test(test_expired_returns_at_most_max_in_deadline_order),
		cmocka_unit_test(test_lease_granted_on_primary_expires_after_ttl),
		cmocka_unit_test(test_renew_extends_expiry),
		cmocka_unit_test(test_expired_lease_cannot_be_renewed),
		cmocka_unit_test(test_demote_stops_expiry_and_renewal),
		cmocka_unit_test(test_checkpoints_carry_exact_ms_and_seconds_rounded_up),
		cmocka_unit_test(test_checkpoints_refresh_leases_after_the_interval),
		cmocka_unit_test(test_checkpoints_are_batched_by_1000),
		cmocka_unit_test(test_checkpoint_of_unknown_lease_is_ignored),
		cmocka_unit_test(test_checkpoint_reads_ms_first_then_seconds),
		cmocka_unit_test(test_failover_expires_at_checkpointed_deadline),
		cmocka_unit_test(test_promotion_expires_overdue_lease_at_once),
		cmocka_unit_test(test_flapping_leaders_never_extend_a_lease),
		cmocka_unit_test(test_renewed_then_checkpointed_lease_survives_failover),
		cmocka_unit_test(test_checkpoint_of_previous_leader_applied_after_promotion),
		cmocka_unit_test(test_small_renewal_survives_failover_exactly),
		cmocka_unit_test(test_flapping_every_300ms_with_commit_latency_holds_deadlines),
		cmocka_unit_test(test_checkpoint_applied_late_gives_a_later_deadline),
		cmocka_unit_test(test_periodic_checkpoints_do_not_stretch_a_lease),
		cmocka_unit_test(test_leases_survive_reopen),
		cmocka_unit_test(test_stored_remaining_above_granted_ttl_is_corrupt),
		cmocka_unit_test(test_staged_grant_is_dropped_when_the_batch_aborts),
		cmocka_unit_test(test_grant_in_a_batch_that_fails_leaves_no_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
