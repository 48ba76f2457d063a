/* client/hub_sync.h — what the watch and lease hubs share to stop safely: the gate between
 * a watch's or keep-alive's user callbacks (dispatch thread) and its stop (any thread, the
 * callback's own included), and the latch keel_close waits on until the hub's I/O handles
 * closed. Private to libkeel; never calls user code, never waits on the callback's thread. */
#ifndef KEEL_CLIENT_HUB_SYNC_H
#define KEEL_CLIENT_HUB_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

typedef struct cbgate {
	pthread_mutex_t mu;          /* also guards the owner's other shared fields */
	pthread_cond_t cv;           /* on CLOCK_MONOTONIC, for the owner's timed waits too */
	bool stopped;                /* no callback may start any more */
	bool running;                /* a callback runs on cb_thread */
	pthread_t cb_thread;
	bool detached;               /* keel_close took the owner out of its hub */
} cbgate_t;

static inline void cbgate_init(cbgate_t *g)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
}

static inline void cbgate_destroy(cbgate_t *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

/* Dispatch thread: true when the callback may run now (then cbgate_leave after it). */
static inline bool cbgate_enter(cbgate_t *g)
{
	pthread_mutex_lock(&g->mu);
	bool go = !g->stopped;
	if (go) {
		g->running = true;
		g->cb_thread = pthread_self();
	}
	pthread_mutex_unlock(&g->mu);
	return go;
}

static inline void cbgate_leave(cbgate_t *g)
{
	pthread_mutex_lock(&g->mu);
	g->running = false;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* No callback starts after this returns, and none is running unless the caller is that
 * callback (waiting for itself would never end). True when keel_close detached the owner. */
static inline bool cbgate_stop(cbgate_t *g)
{
	pthread_mutex_lock(&g->mu);
	g->stopped = true;
	while (g->running && !pthread_equal(g->cb_thread, pthread_self()))
		pthread_cond_wait(&g->cv, &g->mu);
	bool detached = g->detached;
	pthread_mutex_unlock(&g->mu);
	return detached;
}

/* I/O thread, keel_close: stop without waiting, and wake anyone waiting on the owner. */
static inline void cbgate_detach(cbgate_t *g)
{
	pthread_mutex_lock(&g->mu);
	g->stopped = true;
	g->detached = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* A hub's shutdown: keel_close waits until the I/O thread shut it and every handle it was
 * closing (stream, timers) reported closed. */
typedef struct hublatch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int closing;                 /* handles still to report closed */
	bool shut;
} hublatch_t;

static inline void hublatch_init(hublatch_t *l)
{
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

static inline void hublatch_destroy(hublatch_t *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
}

/* One more handle will report closed (hublatch_closed). */
static inline void hublatch_closing(hublatch_t *l)
{
	pthread_mutex_lock(&l->mu);
	l->closing++;
	pthread_mutex_unlock(&l->mu);
}

static inline void hublatch_closed(hublatch_t *l)
{
	pthread_mutex_lock(&l->mu);
	l->closing--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static inline void hublatch_shut(hublatch_t *l)
{
	pthread_mutex_lock(&l->mu);
	l->shut = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static inline void hublatch_wait(hublatch_t *l)
{
	pthread_mutex_lock(&l->mu);
	while (!l->shut || l->closing > 0)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

#endif
