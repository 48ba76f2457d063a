/* cluster/queue.c — the watchers' work queue, client-go's semantics: a key waits at most once,
 * is handled by one worker at a time, may come back after a delay or a per-key backoff. Never
 * touches the store; nothing but memory work under its lock. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

#define QUEUE_BACKOFF_BASE_MS 5

/* ---- a string-keyed hash map (open addressing, linear probing, tombstones) ---------------- */

typedef struct qmap_slot {
	char *key;                   /* NULL: empty; QMAP_GONE: deleted */
	int64_t val;
} qmap_slot_t;

typedef struct qmap {
	qmap_slot_t *slots;
	size_t cap;                  /* a power of two */
	size_t used;                 /* live + tombstones */
	size_t live;
} qmap_t;

static char qmap_gone_mark;
#define QMAP_GONE (&qmap_gone_mark)

static uint64_t qmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
	return h;
}

/* The slot holding key, or NULL. */
static qmap_slot_t *qmap_find(const qmap_t *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = qmap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		qmap_slot_t *s = &m->slots[i];

		if (!s->key)
			return NULL;
		if (s->key != QMAP_GONE && strcmp(s->key, key) == 0)
			return s;
	}
}

static void qmap_place(qmap_t *m, char *key, int64_t val)
{
	size_t i;

	for (i = qmap_hash(key) & (m->cap - 1); m->slots[i].key; i = (i + 1) & (m->cap - 1))
		;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->used++;
	m->live++;
}

static int qmap_grow(qmap_t *m)
{
	size_t cap = m->cap ? m->cap : 16, i;
	qmap_slot_t *old = m->slots;
	size_t old_cap = m->cap;

	while (cap < (m->live + 1) * 3)
		cap *= 2;
	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -1;
	}
	m->cap = cap;
	m->used = m->live = 0;
	for (i = 0; i < old_cap; i++)
		if (old[i].key && old[i].key != QMAP_GONE)
			qmap_place(m, old[i].key, old[i].val);
	free(old);
	return 0;
}

/* Sets key's value (copying the key when new); -1 on out of memory. */
static int qmap_set(qmap_t *m, const char *key, int64_t val)
{
	qmap_slot_t *s = qmap_find(m, key);
	char *copy;

	if (s) {
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 2 > m->cap && qmap_grow(m) != 0)
		return -1;
	copy = strdup(key);
	if (!copy)
		return -1;
	qmap_place(m, copy, val);
	return 0;
}

static void qmap_del(qmap_t *m, const char *key)
{
	qmap_slot_t *s = qmap_find(m, key);

	if (!s)
		return;
	free(s->key);
	s->key = QMAP_GONE;
	m->live--;
}

static void qmap_free(qmap_t *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != QMAP_GONE)
			free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ---- the queue ------------------------------------------------------------------------------ */

typedef struct qdelayed {
	int64_t due_ms;
	char *key;
} qdelayed_t;

struct kc_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **fifo;                 /* ring of ready keys */
	size_t head, len, cap;
	qmap_t dirty;                /* waiting to be handed out (in fifo, or back after done) */
	qmap_t processing;           /* handed out, not yet done */
	qmap_t failures;             /* per-key failure count for the backoff */
	qmap_t delayed;              /* key -> due time of its live heap entry */
	qdelayed_t *heap;            /* min-heap by due time; entries not in delayed are stale */
	size_t heap_len, heap_cap;
	bool shut;
};

kc_queue_t *kc_queue_new(void)
{
	kc_queue_t *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;

	if (!q)
		return NULL;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	return q;
}

static int queue_fifo_push(kc_queue_t *q, char *key)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		char **f = malloc(cap * sizeof(*f));

		if (!f)
			return -1;
		for (size_t i = 0; i < q->len; i++)
			f[i] = q->fifo[(q->head + i) % q->cap];
		free(q->fifo);
		q->fifo = f;
		q->head = 0;
		q->cap = cap;
	}
	q->fifo[(q->head + q->len) % q->cap] = key;
	q->len++;
	return 0;
}

static char *queue_fifo_pop(kc_queue_t *q)
{
	char *key = q->fifo[q->head];

	q->head = (q->head + 1) % q->cap;
	q->len--;
	return key;
}

/* client-go's Add, under the lock. */
static void queue_add_locked(kc_queue_t *q, const char *key)
{
	char *copy;

	if (q->shut || qmap_find(&q->dirty, key))
		return;
	if (qmap_set(&q->dirty, key, 0) != 0)
		return;
	if (qmap_find(&q->processing, key))
		return;              /* queued again by kc_queue_done */
	copy = strdup(key);
	if (!copy || queue_fifo_push(q, copy) != 0) {
		free(copy);
		qmap_del(&q->dirty, key);
		return;
	}
	pthread_cond_signal(&q->cv);
}

void kc_queue_add(kc_queue_t *q, const char *key)
{
	if (!q || !key)
		return;
	pthread_mutex_lock(&q->mu);
	queue_add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
}

static void queue_heap_swap(kc_queue_t *q, size_t a, size_t b)
{
	qdelayed_t t = q->heap[a];

	q->heap[a] = q->heap[b];
	q->heap[b] = t;
}

static void queue_heap_up(kc_queue_t *q, size_t i)
{
	while (i > 0 && q->heap[(i - 1) / 2].due_ms > q->heap[i].due_ms) {
		queue_heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void queue_heap_down(kc_queue_t *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < q->heap_len && q->heap[l].due_ms < q->heap[m].due_ms)
			m = l;
		if (r < q->heap_len && q->heap[r].due_ms < q->heap[m].due_ms)
			m = r;
		if (m == i)
			return;
		queue_heap_swap(q, i, m);
		i = m;
	}
}

static qdelayed_t queue_heap_pop(kc_queue_t *q)
{
	qdelayed_t top = q->heap[0];

	q->heap[0] = q->heap[--q->heap_len];
	queue_heap_down(q, 0);
	return top;
}

/* Moves every delayed key that is due into the queue; returns the next due time or -1. */
static int64_t queue_promote_due(kc_queue_t *q)
{
	int64_t now = kc_mono_ms();

	while (q->heap_len > 0 && q->heap[0].due_ms <= now) {
		qdelayed_t d = queue_heap_pop(q);
		qmap_slot_t *s = qmap_find(&q->delayed, d.key);

		/* A stale entry: the key was re-delayed to an earlier time, or already added. */
		if (s && s->val == d.due_ms) {
			qmap_del(&q->delayed, d.key);
			queue_add_locked(q, d.key);
		}
		free(d.key);
	}
	return q->heap_len > 0 ? q->heap[0].due_ms : -1;
}

void kc_queue_add_after(kc_queue_t *q, const char *key, int delay_ms)
{
	int64_t due;
	qmap_slot_t *s;
	char *copy;

	if (!q || !key)
		return;
	if (delay_ms <= 0) {
		kc_queue_add(q, key);
		return;
	}
	due = kc_mono_ms() + delay_ms;
	pthread_mutex_lock(&q->mu);
	s = qmap_find(&q->delayed, key);
	/* As client-go: a key already waiting for an earlier time keeps that time. */
	if (q->shut || (s && s->val <= due))
		goto out;
	if (q->heap_len == q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
		qdelayed_t *h = realloc(q->heap, cap * sizeof(*h));

		if (!h)
			goto out;
		q->heap = h;
		q->heap_cap = cap;
	}
	copy = strdup(key);
	if (!copy || qmap_set(&q->delayed, key, due) != 0) {
		free(copy);
		goto out;
	}
	q->heap[q->heap_len].due_ms = due;
	q->heap[q->heap_len].key = copy;
	queue_heap_up(q, q->heap_len++);
	/* A getter sleeping until a later due time must recompute its wait. */
	pthread_cond_broadcast(&q->cv);
out:
	pthread_mutex_unlock(&q->mu);
}

void kc_queue_add_rate_limited(kc_queue_t *q, const char *key, int max_ms)
{
	int64_t n = 0, delay = QUEUE_BACKOFF_BASE_MS;
	qmap_slot_t *s;

	if (!q || !key)
		return;
	pthread_mutex_lock(&q->mu);
	s = qmap_find(&q->failures, key);
	if (s)
		n = s->val;
	qmap_set(&q->failures, key, n + 1);
	pthread_mutex_unlock(&q->mu);
	for (int64_t i = 0; i < n && delay < max_ms; i++)
		delay *= 2;
	if (delay > max_ms)
		delay = max_ms;
	kc_queue_add_after(q, key, (int)delay);
}

void kc_queue_forget(kc_queue_t *q, const char *key)
{
	if (!q || !key)
		return;
	pthread_mutex_lock(&q->mu);
	qmap_del(&q->failures, key);
	pthread_mutex_unlock(&q->mu);
}

static void queue_wait_until(kc_queue_t *q, int64_t until_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* kc_mono_ms may use another epoch: wait for the difference. */
	int64_t wait = until_ms - kc_mono_ms();
	if (wait < 0)
		wait = 0;
	ts.tv_sec += wait / 1000;
	ts.tv_nsec += (wait % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

char *kc_queue_get(kc_queue_t *q, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? kc_mono_ms() + timeout_ms : -1;
	char *key = NULL;

	if (!q)
		return NULL;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		int64_t next_due, until;

		if (q->shut)
			break;
		next_due = queue_promote_due(q);
		if (q->len > 0) {
			key = queue_fifo_pop(q);
			if (qmap_set(&q->processing, key, 0) != 0) {
				/* Out of memory: hand it out anyway; done copes. */
			}
			qmap_del(&q->dirty, key);
			break;
		}
		if (deadline >= 0 && kc_mono_ms() >= deadline)
			break;
		until = deadline;
		if (next_due >= 0 && (until < 0 || next_due < until))
			until = next_due;
		if (until < 0)
			pthread_cond_wait(&q->cv, &q->mu);
		else
			queue_wait_until(q, until);
	}
	pthread_mutex_unlock(&q->mu);
	return key;
}

void kc_queue_done(kc_queue_t *q, char *key)
{
	if (!q || !key)
		return;
	pthread_mutex_lock(&q->mu);
	qmap_del(&q->processing, key);
	if (!q->shut && qmap_find(&q->dirty, key) && queue_fifo_push(q, key) == 0) {
		key = NULL;          /* the queue owns it again */
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	free(key);
}

size_t kc_queue_len(kc_queue_t *q)
{
	size_t n;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->mu);
	queue_promote_due(q);
	n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void kc_queue_shutdown(kc_queue_t *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->shut = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void kc_queue_free(kc_queue_t *q)
{
	if (!q)
		return;
	while (q->len > 0)
		free(queue_fifo_pop(q));
	free(q->fifo);
	for (size_t i = 0; i < q->heap_len; i++)
		free(q->heap[i].key);
	free(q->heap);
	qmap_free(&q->dirty);
	qmap_free(&q->processing);
	qmap_free(&q->failures);
	qmap_free(&q->delayed);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}
