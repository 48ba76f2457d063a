/* cluster/leader.c — leader election among a component's replicas on libkeel's election recipe.
 * The campaign blocks on a thread of its own and is ended by revoking its session's lease: never
 * frees a session that a campaign still uses. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keel/concurrency.h>

#include "cluster.h"

#define LEADER_PREFIX KC_REGISTRY "leader-election/"
#define LEADER_POLL_MS 100          /* how often *stop is looked at */
#define LEADER_REVOKE_RETRY_MS 1000 /* a revoke that failed (store away) is tried again */

struct kc_leader {
	keel_session_t *s;
	keel_election_t *e;
};

typedef struct leader_campaign {
	keel_election_t *e;
	const char *identity;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rc;
	keel_error_t err;
} leader_campaign_t;

static void *leader_campaign_main(void *arg)
{
	leader_campaign_t *c = arg;
	keel_error_t err = { 0 };
	int rc;

	rc = keel_election_campaign(c->e, c->identity, strlen(c->identity), -1, &err);
	pthread_mutex_lock(&c->mu);
	c->rc = rc;
	c->err = err;
	c->done = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Waits up to ms for the campaign to end; true when it has. */
static bool leader_wait(leader_campaign_t *c, int ms)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&c->mu);
	if (!c->done)
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	return done;
}

/* Ends a campaign still running: without its lease the candidate's key is gone and the
 * campaign's wait fails. */
static void leader_abandon(keel_t *k, keel_session_t *s, leader_campaign_t *c)
{
	do {
		keel_lease_id_req_t r = { .id = keel_session_lease(s) };

		keel_lease_revoke(k, &r, NULL, NULL);
	} while (!leader_wait(c, LEADER_REVOKE_RETRY_MS));
}

static void leader_free(kc_leader_t *l)
{
	keel_election_free(l->e);
	keel_session_close(l->s);
	free(l);
}

int kc_leader_acquire(keel_t *k, const char *name, const char *identity, int ttl,
		      volatile sig_atomic_t *stop, kc_leader_t **out, keel_error_t *err)
{
	leader_campaign_t c = { 0 };
	pthread_t th;
	kc_leader_t *l;
	char prefix[256];
	int rc;

	if (!k || !name || !identity || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_leader_acquire: missing argument");
	*out = NULL;
	if (stop && *stop)
		return keel_error_set(err, KEEL_CODE_CANCELLED, "leader election: stopped");
	snprintf(prefix, sizeof(prefix), "%s%s", LEADER_PREFIX, name);
	l = calloc(1, sizeof(*l));
	if (!l)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	rc = keel_session_new(k, ttl > 0 ? ttl : 15, 0, &l->s, err);
	if (rc) {
		free(l);
		return rc;
	}
	rc = keel_election_new(l->s, prefix, &l->e, err);
	if (rc) {
		leader_free(l);
		return rc;
	}
	c.e = l->e;
	c.identity = identity;
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	if (pthread_create(&th, NULL, leader_campaign_main, &c) != 0) {
		pthread_mutex_destroy(&c.mu);
		pthread_cond_destroy(&c.cv);
		leader_free(l);
		return keel_error_set(err, KEEL_CODE_LOCAL, "pthread_create failed");
	}
	while (!leader_wait(&c, LEADER_POLL_MS)) {
		if (stop && *stop) {
			leader_abandon(k, l->s, &c);
			c.rc = KEEL_CODE_CANCELLED;
			keel_error_set(&c.err, KEEL_CODE_CANCELLED, "leader election: stopped");
			break;
		}
	}
	pthread_join(th, NULL);
	pthread_mutex_destroy(&c.mu);
	pthread_cond_destroy(&c.cv);
	if (c.rc == 0 && stop && *stop) {
		c.rc = KEEL_CODE_CANCELLED;
		keel_error_set(&c.err, KEEL_CODE_CANCELLED, "leader election: stopped");
	}
	if (c.rc) {
		if (err)
			*err = c.err;
		leader_free(l);
		return c.rc;
	}
	*out = l;
	return 0;
}

bool kc_leader_lost(const kc_leader_t *l)
{
	return !l || keel_session_lost(l->s);
}

void kc_leader_release(kc_leader_t *l)
{
	if (!l)
		return;
	keel_election_resign(l->e, 0, NULL);
	leader_free(l);
}
