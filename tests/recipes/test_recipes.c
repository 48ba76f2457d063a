/* tests/recipes/test_recipes.c — libkeel's concurrency recipes against a live cluster (keeld
 * or etcd, from KEEL_TEST_ENDPOINTS): mutex, fencing, waiter chain, session loss, election,
 * queue and barrier. keel_watch and keel_range are wrapped (-Wl,--wrap) to see who asks what. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/concurrency.h"

/* ---- spying on the recipes' watches and ranges ---------------------------------------- */

#define SPY_MAX 16
#define SPY_WATCHES 64

/* Threads that set spy_id (1..SPY_MAX-1) get their calls recorded under that id. */
static _Thread_local int spy_id;
static pthread_mutex_t spy_mu = PTHREAD_MUTEX_INITIALIZER;
static int spy_ranges[SPY_MAX];
static char *spy_watch_keys[SPY_MAX][SPY_WATCHES];
static int spy_n_watches[SPY_MAX];

int __real_keel_watch(keel_t *k, const keel_watch_req_t *req, keel_watch_fn fn, void *ud,
		      keel_watch_t **out, keel_error_t *err);
int __real_keel_range(keel_t *k, const keel_range_req_t *req, keel_range_result_t **out,
		      keel_error_t *err);

int __wrap_keel_watch(keel_t *k, const keel_watch_req_t *req, keel_watch_fn fn, void *ud,
		      keel_watch_t **out, keel_error_t *err)
{
	if (spy_id > 0 && spy_id < SPY_MAX) {
		char *key = strndup(req->key, req->key_len);

		pthread_mutex_lock(&spy_mu);
		if (req->range_end_len == 0 && spy_n_watches[spy_id] < SPY_WATCHES)
			spy_watch_keys[spy_id][spy_n_watches[spy_id]++] = key;
		else if (spy_n_watches[spy_id] < SPY_WATCHES)
			spy_watch_keys[spy_id][spy_n_watches[spy_id]++] = strdup("<range>"),
			free(key);
		else
			free(key);
		pthread_mutex_unlock(&spy_mu);
	}
	return __real_keel_watch(k, req, fn, ud, out, err);
}

int __wrap_keel_range(keel_t *k, const keel_range_req_t *req, keel_range_result_t **out,
		      keel_error_t *err)
{
	if (spy_id > 0 && spy_id < SPY_MAX) {
		pthread_mutex_lock(&spy_mu);
		spy_ranges[spy_id]++;
		pthread_mutex_unlock(&spy_mu);
	}
	return __real_keel_range(k, req, out, err);
}

static void spy_reset(void)
{
	pthread_mutex_lock(&spy_mu);
	for (int i = 0; i < SPY_MAX; i++) {
		for (int j = 0; j < spy_n_watches[i]; j++)
			free(spy_watch_keys[i][j]);
		spy_n_watches[i] = 0;
		spy_ranges[i] = 0;
	}
	pthread_mutex_unlock(&spy_mu);
}

/* The watches of id on keys other than own, as a count; *last gets the latest such key. */
static int spy_foreign_watches(int id, const char *own, char *last, size_t len)
{
	int n = 0;

	pthread_mutex_lock(&spy_mu);
	for (int j = 0; j < spy_n_watches[id]; j++) {
		if (strcmp(spy_watch_keys[id][j], own) != 0) {
			n++;
			snprintf(last, len, "%s", spy_watch_keys[id][j]);
		}
	}
	pthread_mutex_unlock(&spy_mu);
	return n;
}

static int spy_range_count(int id)
{
	int n;

	pthread_mutex_lock(&spy_mu);
	n = spy_ranges[id];
	pthread_mutex_unlock(&spy_mu);
	return n;
}

/* ---- fixtures ------------------------------------------------------------------------- */

static char **endpoints;
static size_t n_endpoints;
static int prefix_seq;

static keel_t *client_new(void)
{
	keel_options_t opt;
	keel_error_t err;
	keel_t *k = NULL;

	keel_options_init(&opt);
	opt.endpoints = (const char *const *)endpoints;
	opt.n_endpoints = n_endpoints;
	assert_int_equal(keel_connect(&opt, &k, &err), 0);
	return k;
}

static void unique_prefix(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "/recipes-test/%d-%ld-%d/%s", (int)getpid(), (long)time(NULL),
		 ++prefix_seq, what);
}

static keel_session_t *session_new(keel_t *k, int64_t ttl)
{
	keel_session_t *s = NULL;
	keel_error_t err;

	assert_int_equal(keel_session_new(k, ttl, 0, &s, &err), 0);
	assert_non_null(s);
	return s;
}

static int64_t prefix_count(keel_t *k, const char *prefix)
{
	char dir[256];
	uint8_t end[256];
	keel_range_req_t r;
	keel_range_result_t *res = NULL;
	keel_error_t err;
	int64_t n;

	snprintf(dir, sizeof(dir), "%s/", prefix);
	memset(&r, 0, sizeof(r));
	r.key = dir;
	r.key_len = strlen(dir);
	r.range_end = end;
	r.range_end_len = keel_prefix_end(dir, strlen(dir), end);
	r.count_only = true;
	assert_int_equal(__real_keel_range(k, &r, &res, &err), 0);
	n = res->count;
	keel_range_result_free(res);
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_prefix_count(keel_t *k, const char *prefix, int64_t want)
{
	int64_t until = now_ms() + 10000;

	while (prefix_count(k, prefix) != want && now_ms() < until)
		sleep_ms(20);
	assert_int_equal(prefix_count(k, prefix), want);
}

/* ---- mutex ---------------------------------------------------------------------------- */

static void test_mutex_trylock_fails_while_another_session_holds(void **state)
{
	keel_t *k = client_new();
	keel_session_t *s1 = session_new(k, 10), *s2 = session_new(k, 10);
	keel_mutex_t *m1 = NULL, *m2 = NULL;
	keel_error_t err;
	char pfx[128], want[160];

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "trylock");
	assert_int_equal(keel_mutex_new(s1, pfx, &m1, &err), 0);
	assert_int_equal(keel_mutex_new(s2, pfx, &m2, &err), 0);
	assert_int_equal(keel_mutex_lock(m1, 0, &err), 0);
	snprintf(want, sizeof(want), "%s/%llx", pfx, (unsigned long long)keel_session_lease(s1));
	assert_string_equal(keel_mutex_key(m1), want);

	assert_int_equal(keel_mutex_trylock(m2, 0, &err), KEEL_CODE_ABORTED);
	assert_int_equal(err.kind, KEEL_E_OTHER);
	assert_string_equal(err.message, "mutex: Locked by another session");
	/* The failed attempt left no key behind. */
	assert_int_equal(prefix_count(k, pfx), 1);

	/* Locking again through the same session reuses the key: still held. */
	assert_int_equal(keel_mutex_trylock(m1, 0, &err), 0);
	assert_int_equal(keel_mutex_unlock(m1, 0, &err), 0);
	assert_int_equal(prefix_count(k, pfx), 0);
	assert_int_equal(keel_mutex_trylock(m2, 0, &err), 0);
	assert_int_equal(keel_mutex_unlock(m2, 0, &err), 0);

	keel_mutex_free(m1);
	keel_mutex_free(m2);
	keel_session_close(s1);
	keel_session_close(s2);
	keel_close(k);
}

static void test_mutex_fencing_token_increases_and_rejects_stale_writes(void **state)
{
	keel_t *k = client_new();
	keel_session_t *s1 = session_new(k, 10), *s2 = session_new(k, 10);
	keel_mutex_t *m1 = NULL, *m2 = NULL;
	keel_txn_result_t *tr = NULL;
	keel_error_t err;
	char pfx[128];
	int64_t prev = 0, tok1;

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "fence");
	assert_int_equal(keel_mutex_new(s1, pfx, &m1, &err), 0);
	assert_int_equal(keel_mutex_new(s2, pfx, &m2, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(keel_mutex_lock(m1, 0, &err), 0);
		assert_true(keel_mutex_revision(m1) > prev);
		prev = keel_mutex_revision(m1);
		assert_int_equal(keel_mutex_unlock(m1, 0, &err), 0);
		assert_int_equal(keel_mutex_revision(m1), -1);
	}
	assert_int_equal(keel_mutex_lock(m1, 0, &err), 0);
	tok1 = keel_mutex_revision(m1);
	char key1[160];
	snprintf(key1, sizeof(key1), "%s", keel_mutex_key(m1));

	/* A write guarded by the held token commits. */
	keel_txn_t *t = keel_txn_new();
	keel_put_req_t p = { .key = "fenced", .key_len = 6, .value = "one", .value_len = 3 };
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, key1, strlen(key1), NULL, 0, tok1);
	keel_txn_put(t, KEEL_THEN, &p);
	assert_int_equal(keel_txn_commit(k, t, &tr, &err), 0);
	assert_true(tr->succeeded);
	keel_txn_result_free(tr);

	assert_int_equal(keel_mutex_unlock(m1, 0, &err), 0);
	assert_int_equal(keel_mutex_lock(m2, 0, &err), 0);
	assert_true(keel_mutex_revision(m2) > tok1);
	/* The old holder's token no longer matches anything: its write is refused. */
	assert_int_equal(keel_txn_commit(k, t, &tr, &err), 0);
	assert_false(tr->succeeded);
	keel_txn_result_free(tr);
	keel_txn_free(t);
	assert_int_equal(keel_mutex_unlock(m2, 0, &err), 0);

	keel_mutex_free(m1);
	keel_mutex_free(m2);
	keel_session_close(s1);
	keel_session_close(s2);
	keel_close(k);
}

typedef struct waiter {
	keel_t *k;
	keel_session_t *s;
	keel_mutex_t *m;
	int id;                      /* spy id */
	int timeout_ms;
	int hold_ms;
	atomic_int *order;           /* acquisition counter shared by waiters */
	int acquired_as;             /* 1-based position of acquisition, 0 = never */
	int rc;
	keel_error_t err;
	atomic_bool done;
} waiter_t;

static void *waiter_main(void *arg)
{
	waiter_t *w = arg;

	spy_id = w->id;
	w->rc = keel_mutex_lock(w->m, w->timeout_ms, &w->err);
	if (w->rc == 0) {
		w->acquired_as = atomic_fetch_add(w->order, 1) + 1;
		sleep_ms(w->hold_ms);
		keel_mutex_unlock(w->m, 0, NULL);
	}
	atomic_store(&w->done, true);
	return NULL;
}

static void test_mutex_waiter_gets_lock_after_unlock(void **state)
{
	keel_t *k = client_new();
	keel_session_t *s1 = session_new(k, 10), *s2 = session_new(k, 10);
	keel_mutex_t *m1 = NULL;
	keel_error_t err;
	atomic_int order = 0;
	waiter_t w = { .k = k, .s = s2, .timeout_ms = -1, .order = &order };
	pthread_t th;
	char pfx[128];
	int64_t t0;

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "handover");
	assert_int_equal(keel_mutex_new(s1, pfx, &m1, &err), 0);
	assert_int_equal(keel_mutex_new(s2, pfx, &w.m, &err), 0);
	assert_int_equal(keel_mutex_lock(m1, 0, &err), 0);
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	wait_prefix_count(k, pfx, 2);
	sleep_ms(300);
	assert_false(atomic_load(&w.done));
	t0 = now_ms();
	assert_int_equal(keel_mutex_unlock(m1, 0, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.acquired_as, 1);
	assert_true(now_ms() - t0 < 3000);

	/* A lock that times out leaves the queue: its key is gone. */
	assert_int_equal(keel_mutex_lock(m1, 0, &err), 0);
	assert_int_equal(keel_mutex_lock(w.m, 300, &err), KEEL_CODE_DEADLINE_EXCEEDED);
	assert_int_equal(err.kind, KEEL_E_DEADLINE);
	assert_int_equal(prefix_count(k, pfx), 1);
	assert_int_equal(keel_mutex_unlock(m1, 0, &err), 0);

	keel_mutex_free(m1);
	keel_mutex_free(w.m);
	keel_session_close(s1);
	keel_session_close(s2);
	keel_close(k);
}

#define N_WAITERS 5

static void test_mutex_waiters_watch_only_their_predecessor(void **state)
{
	keel_t *k = client_new();
	keel_session_t *hs = session_new(k, 10);
	keel_mutex_t *hm = NULL;
	waiter_t w[N_WAITERS + 1];
	pthread_t th[N_WAITERS + 1];
	char keys[N_WAITERS + 1][160], last[160];
	atomic_int order = 0;
	keel_error_t err;
	char pfx[128];

	(void)state;
	spy_reset();
	unique_prefix(pfx, sizeof(pfx), "chain");
	assert_int_equal(keel_mutex_new(hs, pfx, &hm, &err), 0);
	assert_int_equal(keel_mutex_lock(hm, 0, &err), 0);
	snprintf(keys[0], sizeof(keys[0]), "%s", keel_mutex_key(hm));
	/* Queue the waiters one at a time so their keys' order is known. */
	for (int i = 1; i <= N_WAITERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].k = client_new();
		w[i].s = session_new(w[i].k, 10);
		w[i].id = i;
		w[i].timeout_ms = -1;
		w[i].hold_ms = 100;
		w[i].order = &order;
		assert_int_equal(keel_mutex_new(w[i].s, pfx, &w[i].m, &err), 0);
		snprintf(keys[i], sizeof(keys[i]), "%s/%llx", pfx,
			 (unsigned long long)keel_session_lease(w[i].s));
		assert_int_equal(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
		wait_prefix_count(k, pfx, i + 1);
		/* Give it time to install its watch. */
		for (int64_t until = now_ms() + 5000;
		     spy_foreign_watches(i, keys[i], last, sizeof(last)) < 1 && now_ms() < until;)
			sleep_ms(10);
	}
	/* Each waiter looked once and watches the key right before its own. */
	for (int i = 1; i <= N_WAITERS; i++) {
		assert_int_equal(spy_foreign_watches(i, keys[i], last, sizeof(last)), 1);
		assert_string_equal(last, keys[i - 1]);
		assert_int_equal(spy_range_count(i), 1);
	}

	/* Delete waiter 3's key: only waiter 4 (whose predecessor it was) wakes, and it now
	 * watches waiter 2. Waiter 3 itself gives up (its key is gone). */
	keel_delete_req_t d = { .key = keys[3], .key_len = strlen(keys[3]) };
	keel_delete_result_t *dr = NULL;
	assert_int_equal(keel_delete(k, &d, &dr, &err), 0);
	keel_delete_result_free(dr);
	for (int64_t until = now_ms() + 5000;
	     spy_foreign_watches(4, keys[4], last, sizeof(last)) < 2 && now_ms() < until;)
		sleep_ms(10);
	sleep_ms(300);
	assert_int_equal(spy_foreign_watches(4, keys[4], last, sizeof(last)), 2);
	assert_string_equal(last, keys[2]);
	assert_int_equal(spy_range_count(4), 2);
	for (int i = 1; i <= N_WAITERS; i++) {
		if (i == 4)
			continue;
		assert_int_equal(spy_foreign_watches(i, keys[i], last, sizeof(last)), 1);
		assert_int_equal(spy_range_count(i), 1);
	}
	pthread_join(th[3], NULL);
	assert_int_equal(w[3].rc, KEEL_CODE_ABORTED);
	assert_string_equal(w[3].err.message, "mutex: session is expired");
	for (int i = 1; i <= N_WAITERS; i++)
		assert_int_equal(w[i].acquired_as, 0);

	/* Release: the lock goes down the chain in order, each waiter looking once more. */
	assert_int_equal(keel_mutex_unlock(hm, 0, &err), 0);
	for (int i = 1; i <= N_WAITERS; i++)
		if (i != 3)
			pthread_join(th[i], NULL);
	assert_int_equal(w[1].acquired_as, 1);
	assert_int_equal(w[2].acquired_as, 2);
	assert_int_equal(w[4].acquired_as, 3);
	assert_int_equal(w[5].acquired_as, 4);
	assert_int_equal(spy_range_count(1), 2);
	assert_int_equal(spy_range_count(2), 2);
	assert_int_equal(spy_range_count(4), 3);
	assert_int_equal(spy_range_count(5), 2);
	assert_int_equal(prefix_count(k, pfx), 0);

	for (int i = 1; i <= N_WAITERS; i++) {
		keel_mutex_free(w[i].m);
		keel_session_close(w[i].s);
		keel_close(w[i].k);
	}
	spy_reset();
	keel_mutex_free(hm);
	keel_session_close(hs);
	keel_close(k);
}

static void test_session_lost_after_revoke_and_waiter_gives_up(void **state)
{
	keel_t *k = client_new(), *other = client_new();
	keel_session_t *hs = session_new(k, 10), *s = session_new(k, 3);
	keel_mutex_t *hm = NULL;
	atomic_int order = 0;
	waiter_t w = { .k = k, .s = s, .timeout_ms = -1, .order = &order };
	keel_lease_id_req_t r = { .id = keel_session_lease(s) };
	keel_error_t err;
	pthread_t th;
	char pfx[128];
	int64_t t0;

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "lost");
	assert_int_equal(keel_mutex_new(hs, pfx, &hm, &err), 0);
	assert_int_equal(keel_mutex_new(s, pfx, &w.m, &err), 0);
	assert_int_equal(keel_mutex_lock(hm, 0, &err), 0);
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	wait_prefix_count(k, pfx, 2);
	assert_false(keel_session_lost(s));

	t0 = now_ms();
	assert_int_equal(keel_lease_revoke(other, &r, NULL, &err), 0);
	pthread_join(th, NULL);
	/* The waiter noticed its key was gone at once, not at the next renewal. */
	assert_int_not_equal(w.rc, 0);
	assert_true(now_ms() - t0 < 1000);
	/* The keep-alive reports the loss within a renewal period (ttl/3). */
	while (!keel_session_lost(s) && now_ms() - t0 < 5000)
		sleep_ms(20);
	assert_true(keel_session_lost(s));
	assert_false(keel_session_lost(hs));
	assert_int_equal(keel_mutex_unlock(hm, 0, &err), 0);

	keel_mutex_free(hm);
	keel_mutex_free(w.m);
	keel_session_close(s);
	keel_session_close(hs);
	keel_close(other);
	keel_close(k);
}

/* ---- election ------------------------------------------------------------------------- */

typedef struct seen {
	pthread_mutex_t mu;
	char values[16][64];
	int n;
} seen_t;

static void on_leader(void *ud, const keel_kv_t *kv)
{
	seen_t *s = ud;

	pthread_mutex_lock(&s->mu);
	if (s->n < 16)
		snprintf(s->values[s->n++], 64, "%.*s", (int)kv->value_len,
			 (const char *)kv->value);
	pthread_mutex_unlock(&s->mu);
}

static int seen_count(seen_t *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void wait_seen(seen_t *s, int n)
{
	for (int64_t until = now_ms() + 5000; seen_count(s) < n && now_ms() < until;)
		sleep_ms(10);
	assert_int_equal(seen_count(s), n);
}

typedef struct campaigner {
	keel_election_t *e;
	const char *value;
	int rc;
	atomic_bool done;
} campaigner_t;

static void *campaign_main(void *arg)
{
	campaigner_t *c = arg;

	c->rc = keel_election_campaign(c->e, c->value, strlen(c->value), -1, NULL);
	atomic_store(&c->done, true);
	return NULL;
}

static void assert_leader(keel_t *k, const char *pfx, const char *value)
{
	keel_range_result_t *r = NULL;
	keel_error_t err;

	assert_int_equal(keel_election_leader(k, pfx, &r, &err), 0);
	assert_int_equal(r->n_kvs, 1);
	assert_int_equal(r->kvs[0].value_len, strlen(value));
	assert_memory_equal(r->kvs[0].value, value, strlen(value));
	keel_range_result_free(r);
}

static void test_election_campaign_proclaim_resign_and_observe_order(void **state)
{
	keel_t *k = client_new();
	keel_session_t *s1 = session_new(k, 10), *s2 = session_new(k, 10), *s3 = session_new(k, 10);
	keel_election_t *e1 = NULL, *e3 = NULL;
	campaigner_t c2 = { .value = "b" };
	keel_observe_t *o = NULL;
	keel_range_result_t *r = NULL;
	seen_t seen = { .mu = PTHREAD_MUTEX_INITIALIZER };
	keel_error_t err;
	pthread_t th;
	char pfx[128];

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "elect");
	assert_int_equal(keel_election_leader(k, pfx, &r, &err), KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "election: no leader");
	assert_null(r);
	assert_int_equal(keel_election_observe(k, pfx, on_leader, &seen, &o, &err), 0);

	assert_int_equal(keel_election_new(s1, pfx, &e1, &err), 0);
	assert_int_equal(keel_election_new(s2, pfx, &c2.e, &err), 0);
	assert_int_equal(keel_election_new(s3, pfx, &e3, &err), 0);
	assert_int_equal(keel_election_campaign(e1, "a", 1, 0, &err), 0);
	assert_true(keel_election_revision(e1) > 0);
	assert_leader(k, pfx, "a");
	wait_seen(&seen, 1);
	/* An observer that starts while a leader exists gets the current leader first. */
	keel_observe_t *o2 = NULL;
	seen_t seen2 = { .mu = PTHREAD_MUTEX_INITIALIZER };
	assert_int_equal(keel_election_observe(k, pfx, on_leader, &seen2, &o2, &err), 0);
	wait_seen(&seen2, 1);
	keel_observe_stop(o2);
	assert_string_equal(seen2.values[0], "a");

	assert_int_equal(pthread_create(&th, NULL, campaign_main, &c2), 0);
	wait_prefix_count(k, pfx, 2);
	sleep_ms(200);
	assert_false(atomic_load(&c2.done));

	assert_int_equal(keel_election_proclaim(e1, "a2", 2, 0, &err), 0);
	assert_leader(k, pfx, "a2");
	wait_seen(&seen, 2);
	/* Not a candidate: cannot proclaim. */
	assert_int_equal(keel_election_proclaim(e3, "x", 1, 0, &err),
			 KEEL_CODE_FAILED_PRECONDITION);
	assert_string_equal(err.message, "election: not leader");

	assert_int_equal(keel_election_resign(e1, 0, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(c2.rc, 0);
	assert_leader(k, pfx, "b");
	wait_seen(&seen, 3);
	/* e1 resigned: proclaiming is refused. */
	assert_int_equal(keel_election_proclaim(e1, "z", 1, 0, &err),
			 KEEL_CODE_FAILED_PRECONDITION);

	assert_int_equal(keel_election_resign(c2.e, 0, &err), 0);
	assert_int_equal(keel_election_leader(k, pfx, &r, &err), KEEL_CODE_NOT_FOUND);
	/* A new leader after an empty spell is seen too. */
	assert_int_equal(keel_election_campaign(e3, "c", 1, 0, &err), 0);
	wait_seen(&seen, 4);
	keel_observe_stop(o);
	assert_string_equal(seen.values[0], "a");
	assert_string_equal(seen.values[1], "a2");
	assert_string_equal(seen.values[2], "b");
	assert_string_equal(seen.values[3], "c");
	assert_int_equal(keel_election_resign(e3, 0, &err), 0);

	keel_election_free(e1);
	keel_election_free(c2.e);
	keel_election_free(e3);
	keel_session_close(s1);
	keel_session_close(s2);
	keel_session_close(s3);
	keel_close(k);
}

/* ---- queue ---------------------------------------------------------------------------- */

#define N_ITEMS 30
#define N_CONSUMERS 3

typedef struct consumer {
	keel_t *k;
	const char *pfx;
	atomic_int *taken;
	int items[N_ITEMS];
	int n;
	int errors;
} consumer_t;

static void *consumer_main(void *arg)
{
	consumer_t *c = arg;

	while (atomic_load(c->taken) < N_ITEMS) {
		keel_range_result_t *r = NULL;
		keel_error_t err;
		int rc = keel_queue_dequeue(c->k, c->pfx, 500, &r, &err);

		if (rc == KEEL_CODE_DEADLINE_EXCEEDED)
			continue;
		if (rc != 0 || r->n_kvs != 1) {
			c->errors++;
			keel_range_result_free(r);
			continue;
		}
		if (c->n < N_ITEMS)
			c->items[c->n++] = atoi((const char *)r->kvs[0].value);
		atomic_fetch_add(c->taken, 1);
		keel_range_result_free(r);
	}
	return NULL;
}

static void test_queue_fifo_with_three_consumers_each_item_taken_once(void **state)
{
	keel_t *k = client_new();
	consumer_t c[N_CONSUMERS];
	pthread_t th[N_CONSUMERS];
	int count[N_ITEMS] = { 0 };
	atomic_int taken = 0;
	keel_range_result_t *r = NULL;
	keel_error_t err;
	char pfx[128], v[16];

	(void)state;
	unique_prefix(pfx, sizeof(pfx), "queue");
	/* Empty: a dequeue waits for its deadline. */
	assert_int_equal(keel_queue_dequeue(k, pfx, 200, &r, &err), KEEL_CODE_DEADLINE_EXCEEDED);
	assert_null(r);
	/* Items come out in the order they went in. */
	for (int i = 0; i < 3; i++) {
		snprintf(v, sizeof(v), "%d", i);
		assert_int_equal(keel_queue_enqueue(k, pfx, v, strlen(v), &err), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(keel_queue_dequeue(k, pfx, 0, &r, &err), 0);
		snprintf(v, sizeof(v), "%d", i);
		assert_int_equal(r->kvs[0].value_len, strlen(v));
		assert_memory_equal(r->kvs[0].value, v, strlen(v));
		keel_range_result_free(r);
	}

	for (int i = 0; i < N_CONSUMERS; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].k = client_new();
		c[i].pfx = pfx;
		c[i].taken = &taken;
		assert_int_equal(pthread_create(&th[i], NULL, consumer_main, &c[i]), 0);
	}
	/* Consumers are already waiting on the empty queue when items arrive. */
	sleep_ms(200);
	for (int i = 0; i < N_ITEMS; i++) {
		snprintf(v, sizeof(v), "%d", i);
		assert_int_equal(keel_queue_enqueue(k, pfx, v, strlen(v), &err), 0);
	}
	for (int i = 0; i < N_CONSUMERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N_CONSUMERS; i++) {
		assert_int_equal(c[i].errors, 0);
		for (int j = 0; j < c[i].n; j++) {
			assert_in_range(c[i].items[j], 0, N_ITEMS - 1);
			count[c[i].items[j]]++;
			/* Each consumer sees the items in FIFO order. */
			if (j > 0)
				assert_true(c[i].items[j] > c[i].items[j - 1]);
		}
		keel_close(c[i].k);
	}
	for (int i = 0; i < N_ITEMS; i++)
		assert_int_equal(count[i], 1);
	assert_int_equal(prefix_count(k, pfx), 0);
	keel_close(k);
}

/* ---- barrier -------------------------------------------------------------------------- */

typedef struct barrier_waiter {
	keel_t *k;
	const char *key;
	int rc;
	atomic_bool done;
} barrier_waiter_t;

static void *barrier_main(void *arg)
{
	barrier_waiter_t *b = arg;

	b->rc = keel_barrier_wait(b->k, b->key, -1, NULL);
	atomic_store(&b->done, true);
	return NULL;
}

static void test_barrier_blocks_waiters_until_released(void **state)
{
	keel_t *k = client_new();
	barrier_waiter_t b[2];
	pthread_t th[2];
	keel_error_t err;
	char key[128];

	(void)state;
	unique_prefix(key, sizeof(key), "barrier");
	assert_int_equal(keel_barrier_wait(k, key, 0, &err), 0);
	assert_int_equal(keel_barrier_hold(k, key, &err), 0);
	assert_int_equal(keel_barrier_hold(k, key, &err), KEEL_CODE_ALREADY_EXISTS);
	assert_int_equal(keel_barrier_wait(k, key, 200, &err), KEEL_CODE_DEADLINE_EXCEEDED);
	for (int i = 0; i < 2; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].k = k;
		b[i].key = key;
		assert_int_equal(pthread_create(&th[i], NULL, barrier_main, &b[i]), 0);
	}
	/* Other writes do not release the waiters. */
	assert_int_equal(keel_put_str(k, "/recipes-test/unrelated", "x", 0, &err), 0);
	sleep_ms(300);
	assert_false(atomic_load(&b[0].done));
	assert_false(atomic_load(&b[1].done));
	assert_int_equal(keel_barrier_release(k, key, &err), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(b[i].rc, 0);
	}
	assert_int_equal(keel_barrier_hold(k, key, &err), 0);
	assert_int_equal(keel_barrier_release(k, key, &err), 0);
	keel_close(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutex_trylock_fails_while_another_session_holds),
		cmocka_unit_test(test_mutex_fencing_token_increases_and_rejects_stale_writes),
		cmocka_unit_test(test_mutex_waiter_gets_lock_after_unlock),
		cmocka_unit_test(test_mutex_waiters_watch_only_their_predecessor),
		cmocka_unit_test(test_session_lost_after_revoke_and_waiter_gives_up),
		cmocka_unit_test(test_election_campaign_proclaim_resign_and_observe_order),
		cmocka_unit_test(test_queue_fifo_with_three_consumers_each_item_taken_once),
		cmocka_unit_test(test_barrier_blocks_waiters_until_released),
	};
	const char *env = getenv("KEEL_TEST_ENDPOINTS");
	char *list, *save = NULL;
	int rc;

	if (!env || !*env) {
		fprintf(stderr, "KEEL_TEST_ENDPOINTS is not set: run through with_cluster.py\n");
		return 77;
	}
	keel_init();
	list = strdup(env);
	endpoints = calloc(strlen(env) + 1, sizeof(char *));
	if (!list || !endpoints)
		return 1;
	for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save))
		endpoints[n_endpoints++] = e;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(endpoints);
	free(list);
	return rc;
}
