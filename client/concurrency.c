/* client/concurrency.c — etcd's concurrency recipes (session, mutex, election) and
 * contrib/recipes (queue, barrier) on libkeel's public KV, lease and watch calls. Never
 * sends anything itself (of the transport it only reads the default call timeout) and
 * keeps no state outside its own objects. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/concurrency.h"
#include "client_int.h"

#define SESSION_DEFAULT_TTL 60
/* How often a blocked wait looks at its session and its deadline even without events. */
#define WAIT_SLICE_MS 200
/* Pause before an observer retries after a failed call. */
#define OBSERVE_RETRY_MS 500

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An absolute deadline in monotonic ms; -1 = none. */
static int64_t deadline_of(keel_t *k, int timeout_ms)
{
	if (timeout_ms == 0)
		timeout_ms = kt_call_timeout(k->t);
	if (timeout_ms < 0)
		return -1;
	return now_ms() + timeout_ms;
}

static int err_deadline(keel_error_t *err)
{
	keel_error_set(err, KEEL_CODE_DEADLINE_EXCEEDED, "context deadline exceeded");
	if (err)
		err->kind = KEEL_E_DEADLINE;
	return KEEL_CODE_DEADLINE_EXCEEDED;
}

static int err_other(keel_error_t *err, int code, const char *msg)
{
	keel_error_set(err, code, "%s", msg);
	if (err)
		err->kind = KEEL_E_OTHER;
	return code;
}

/* The timeout of one call made on behalf of a wait with this deadline: what is left of it,
 * or the client's default (0) when the wait has none; -2 when the deadline has passed. */
static int call_timeout(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return 0;
	left = deadline - now_ms();
	if (left <= 0)
		return -2;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

#define CALL_TIMEOUT_OR_FAIL(var, deadline, err)                                           \
	do {                                                                               \
		(var) = call_timeout(deadline);                                            \
		if ((var) == -2)                                                           \
			return err_deadline(err);                                          \
	} while (0)

/* etcd formats a lease id with Go's %x: lower-case hex of the signed value. */
static char *key_of_lease(const char *prefix, int64_t lease)
{
	char *key = NULL;
	int n;

	if (lease < 0)
		n = asprintf(&key, "%s/-%" PRIx64, prefix, (uint64_t)0 - (uint64_t)lease);
	else
		n = asprintf(&key, "%s/%" PRIx64, prefix, (uint64_t)lease);
	return n < 0 ? NULL : key;
}

static char *str_cat(const char *a, const char *b)
{
	char *s = NULL;

	return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

/* A range over every key under dir (dir ends with "/"); end must hold strlen(dir) bytes. */
static void range_prefix(keel_range_req_t *r, const char *dir, uint8_t *end)
{
	size_t len = strlen(dir);

	r->key = dir;
	r->key_len = len;
	r->range_end = end;
	r->range_end_len = keel_prefix_end(dir, len, end);
}

/* The first (ASCEND) or last (DESCEND) key under dir by create revision, optionally only
 * among keys created at or before max_create (0 = any). */
static int get_by_create(keel_t *k, const char *dir, keel_sort_order_t order, int64_t max_create,
			 int timeout_ms, keel_range_result_t **out, keel_error_t *err)
{
	keel_range_req_t r;
	uint8_t *end = malloc(strlen(dir) + 1);
	int rc;

	if (!end)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	memset(&r, 0, sizeof(r));
	r.timeout_ms = timeout_ms;
	range_prefix(&r, dir, end);
	r.limit = 1;
	r.sort_order = order;
	r.sort_target = KEEL_SORT_BY_CREATE;
	r.max_create_revision = max_create;
	rc = keel_range(k, &r, out, err);
	free(end);
	return rc;
}

static void txn_range_first_create(keel_txn_t *t, keel_branch_t b, const char *dir, uint8_t *end)
{
	keel_range_req_t r;

	memset(&r, 0, sizeof(r));
	range_prefix(&r, dir, end);
	r.limit = 1;
	r.sort_order = KEEL_SORT_ASCEND;
	r.sort_target = KEEL_SORT_BY_CREATE;
	keel_txn_range(t, b, &r);
}

static void txn_get(keel_txn_t *t, keel_branch_t b, const char *key)
{
	keel_range_req_t r;

	memset(&r, 0, sizeof(r));
	r.key = key;
	r.key_len = strlen(key);
	keel_txn_range(t, b, &r);
}

static void txn_put(keel_txn_t *t, keel_branch_t b, const char *key, const void *value,
		    size_t len, int64_t lease)
{
	keel_put_req_t p;

	memset(&p, 0, sizeof(p));
	p.key = key;
	p.key_len = strlen(key);
	p.value = value;
	p.value_len = len;
	p.lease = lease;
	keel_txn_put(t, b, &p);
}

static void txn_delete(keel_txn_t *t, keel_branch_t b, const void *key, size_t len)
{
	keel_delete_req_t d;

	memset(&d, 0, sizeof(d));
	d.key = key;
	d.key_len = len;
	keel_txn_delete(t, b, &d);
}

/* The range result of a txn's i-th response, or NULL when the server sent something else. */
static keel_range_result_t *txn_range_at(const keel_txn_result_t *r, size_t i)
{
	if (i >= r->n_responses || r->responses[i].type != KEEL_OP_RANGE)
		return NULL;
	return r->responses[i].u.range;
}

static int delete_key(keel_t *k, const char *key, int timeout_ms, keel_error_t *err)
{
	keel_delete_req_t d;
	keel_delete_result_t *res = NULL;
	int rc;

	memset(&d, 0, sizeof(d));
	d.timeout_ms = timeout_ms;
	d.key = key;
	d.key_len = strlen(key);
	rc = keel_delete(k, &d, &res, err);
	keel_delete_result_free(res);
	return rc;
}

static int get_key(keel_t *k, const char *key, int timeout_ms, keel_range_result_t **out,
		   keel_error_t *err)
{
	keel_range_req_t r;

	memset(&r, 0, sizeof(r));
	r.timeout_ms = timeout_ms;
	r.key = key;
	r.key_len = strlen(key);
	return keel_range(k, &r, out, err);
}

static bool key_is(const keel_kv_t *kv, const char *key)
{
	size_t len = strlen(key);

	return kv->key_len == len && memcmp(kv->key, key, len) == 0;
}

/* ---- a watch waited on synchronously ------------------------------------------------ */

/* Events of one or more watches, copied by their callbacks and taken by one waiting
 * thread. The waiter decides what matters; the callbacks only queue. */
typedef struct cw_event {
	struct cw_event *next;
	keel_event_type_t type;
	keel_kv_t kv;                /* own copy of key and value */
	int tag;                     /* which watch (the ud slot that delivered it) */
} cw_event_t;

typedef struct cwatch cwatch_t;
typedef struct cw_slot {
	cwatch_t *cw;
	int tag;
	keel_watch_t *w;
	bool canceled;               /* the server ended this watch (e.g. compaction) */
} cw_slot_t;

struct cwatch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	cw_event_t *head, **tail;
	bool stop;                   /* set by another thread to end the wait */
	cw_slot_t slot[2];
};

static void cw_init(cwatch_t *cw)
{
	pthread_condattr_t ca;

	memset(cw, 0, sizeof(*cw));
	pthread_mutex_init(&cw->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cw->cv, &ca);
	pthread_condattr_destroy(&ca);
	cw->tail = &cw->head;
	for (int i = 0; i < 2; i++) {
		cw->slot[i].cw = cw;
		cw->slot[i].tag = i;
	}
}

static void cw_event_free(cw_event_t *e)
{
	free(e->kv.key);
	free(e->kv.value);
	free(e);
}

static void cw_clear_events(cwatch_t *cw)
{
	cw_event_t *e, *n;

	for (e = cw->head; e; e = n) {
		n = e->next;
		cw_event_free(e);
	}
	cw->head = NULL;
	cw->tail = &cw->head;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
	uint8_t *d = malloc(len + 1);

	if (d) {
		if (len)
			memcpy(d, p, len);
		d[len] = 0;
	}
	return d;
}

static void cw_on_watch(void *ud, const keel_watch_resp_t *resp)
{
	cw_slot_t *slot = ud;
	cwatch_t *cw = slot->cw;

	pthread_mutex_lock(&cw->mu);
	for (size_t i = 0; i < resp->n_events; i++) {
		const keel_event_t *ev = &resp->events[i];
		cw_event_t *e = calloc(1, sizeof(*e));

		if (!e)
			break;
		e->type = ev->type;
		e->tag = slot->tag;
		e->kv = ev->kv;
		e->kv.key = dup_bytes(ev->kv.key, ev->kv.key_len);
		e->kv.value = dup_bytes(ev->kv.value, ev->kv.value_len);
		if (!e->kv.key || !e->kv.value) {
			cw_event_free(e);
			break;
		}
		*cw->tail = e;
		cw->tail = &e->next;
	}
	if (resp->canceled)
		slot->canceled = true;
	pthread_cond_broadcast(&cw->cv);
	pthread_mutex_unlock(&cw->mu);
}

/* Starts watch number tag on [key, end) from rev. */
static int cw_start(cwatch_t *cw, int tag, keel_t *k, const void *key, size_t key_len,
		    const void *end, size_t end_len, int64_t rev, keel_error_t *err)
{
	keel_watch_req_t wr;

	memset(&wr, 0, sizeof(wr));
	wr.key = key;
	wr.key_len = key_len;
	wr.range_end = end;
	wr.range_end_len = end_len;
	wr.start_revision = rev;
	cw->slot[tag].canceled = false;
	return keel_watch(k, &wr, cw_on_watch, &cw->slot[tag], &cw->slot[tag].w, err);
}

/* Cancels watch tag and drops its queued events. */
static void cw_stop(cwatch_t *cw, int tag)
{
	cw_event_t **pp, *e;

	if (cw->slot[tag].w) {
		keel_watch_cancel(cw->slot[tag].w);
		cw->slot[tag].w = NULL;
	}
	pthread_mutex_lock(&cw->mu);
	cw->slot[tag].canceled = false;
	for (pp = &cw->head; (e = *pp);) {
		if (e->tag == tag) {
			*pp = e->next;
			cw_event_free(e);
		} else {
			pp = &e->next;
		}
	}
	cw->tail = &cw->head;
	while (*cw->tail)
		cw->tail = &(*cw->tail)->next;
	pthread_mutex_unlock(&cw->mu);
}

static void cw_destroy(cwatch_t *cw)
{
	cw_stop(cw, 0);
	cw_stop(cw, 1);
	cw_clear_events(cw);
	pthread_mutex_destroy(&cw->mu);
	pthread_cond_destroy(&cw->cv);
}

typedef enum { CW_EVENT, CW_CANCELED, CW_TIMEOUT, CW_LOST, CW_STOPPED } cw_wait_t;

/* Takes the next event (caller frees it), or says why there is none: a watch was ended
 * by the server (*tag says which), the deadline passed, the session was lost, or stop. */
static cw_wait_t cw_next(cwatch_t *cw, int64_t deadline, const keel_session_t *s,
			 cw_event_t **out, int *tag)
{
	cw_wait_t res;

	pthread_mutex_lock(&cw->mu);
	for (;;) {
		int64_t until, now;
		struct timespec ts;

		if (cw->head) {
			*out = cw->head;
			cw->head = cw->head->next;
			if (!cw->head)
				cw->tail = &cw->head;
			res = CW_EVENT;
			break;
		}
		if (cw->stop) {
			res = CW_STOPPED;
			break;
		}
		if (cw->slot[0].canceled || cw->slot[1].canceled) {
			*tag = cw->slot[0].canceled ? 0 : 1;
			res = CW_CANCELED;
			break;
		}
		if (s && keel_session_lost(s)) {
			res = CW_LOST;
			break;
		}
		now = now_ms();
		if (deadline >= 0 && now >= deadline) {
			res = CW_TIMEOUT;
			break;
		}
		until = now + WAIT_SLICE_MS;
		if (deadline >= 0 && deadline < until)
			until = deadline;
		ts.tv_sec = until / 1000;
		ts.tv_nsec = (until % 1000) * 1000000;
		pthread_cond_timedwait(&cw->cv, &cw->mu, &ts);
	}
	pthread_mutex_unlock(&cw->mu);
	return res;
}

/* ---- session ------------------------------------------------------------------------ */

struct keel_session {
	keel_t *k;
	int64_t lease;
	int64_t ttl;
	keel_keepalive_t *ka;
	atomic_bool lost;
};

static void session_on_keepalive(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	keel_session_t *s = ud;

	(void)h;
	(void)id;
	if (ttl <= 0)
		atomic_store(&s->lost, true);
}

int keel_session_new(keel_t *k, int64_t ttl, int64_t lease, keel_session_t **out,
		     keel_error_t *err)
{
	keel_session_t *s;
	int rc;

	if (!k || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "session: no client or no result");
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	s->k = k;
	s->ttl = ttl > 0 ? ttl : SESSION_DEFAULT_TTL;
	atomic_init(&s->lost, false);
	s->lease = lease;
	if (!lease) {
		keel_lease_grant_req_t g = { .ttl = s->ttl };
		keel_lease_grant_result_t gr;

		rc = keel_lease_grant(k, &g, &gr, err);
		if (rc) {
			free(s);
			return rc;
		}
		s->lease = gr.id;
	}
	rc = keel_lease_keepalive(k, s->lease, session_on_keepalive, s, &s->ka, err);
	if (rc) {
		if (!lease) {
			keel_lease_id_req_t r = { .id = s->lease };

			keel_lease_revoke(k, &r, NULL, NULL);
		}
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int64_t keel_session_lease(const keel_session_t *s)
{
	return s ? s->lease : 0;
}

keel_t *keel_session_client(const keel_session_t *s)
{
	return s ? s->k : NULL;
}

bool keel_session_lost(const keel_session_t *s)
{
	return s ? atomic_load(&s->lost) : true;
}

void keel_session_close(keel_session_t *s)
{
	/* A revoke slower than the TTL is pointless: the lease has expired by then. */
	keel_lease_id_req_t r = { .id = s ? s->lease : 0 };

	if (!s)
		return;
	keel_keepalive_stop(s->ka);
	r.timeout_ms = (int)(s->ttl > 3600 ? 3600000 : s->ttl * 1000);
	keel_lease_revoke(s->k, &r, NULL, NULL);
	free(s);
}

/* ---- waiting for the keys before one's own ------------------------------------------ */

/* etcd's waitDeletes: waits until no key under dir has a create revision <= max_create,
 * watching only the newest such key each round. own (watched as watch 1) is the waiter's
 * key: if it disappears meanwhile, the lease is gone and the wait fails, rather than
 * wrongly report ownership. own_rev is a revision at which own existed. */
static int wait_deletes(keel_session_t *s, const char *dir, int64_t max_create, const char *own,
			int64_t own_rev, int64_t deadline, const char *what, keel_error_t *err)
{
	keel_t *k = s->k;
	cwatch_t cw;
	bool own_watched;
	int rc, to;

	cw_init(&cw);
	rc = cw_start(&cw, 1, k, own, strlen(own), NULL, 0, own_rev + 1, err);
	if (rc)
		goto out;
	own_watched = true;
	for (;;) {
		keel_range_result_t *r = NULL;
		keel_kv_t *pred;
		bool pred_gone = false;

		to = call_timeout(deadline);
		if (to == -2) {
			rc = err_deadline(err);
			goto out;
		}
		rc = get_by_create(k, dir, KEEL_SORT_DESCEND, max_create, to, &r, err);
		if (rc)
			goto out;
		if (r->n_kvs == 0) {
			keel_range_result_free(r);
			break;
		}
		pred = &r->kvs[0];
		rc = cw_start(&cw, 0, k, pred->key, pred->key_len, NULL, 0, r->header.revision,
			      err);
		if (rc) {
			keel_range_result_free(r);
			goto out;
		}
		while (!pred_gone) {
			cw_event_t *e = NULL;
			int tag = 0;
			char msg[64];

			switch (cw_next(&cw, deadline, s, &e, &tag)) {
			case CW_EVENT:
				if (e->type == KEEL_EVENT_DELETE && e->tag == 0 &&
				    e->kv.key_len == pred->key_len &&
				    memcmp(e->kv.key, pred->key, pred->key_len) == 0)
					pred_gone = true;
				if (e->type == KEEL_EVENT_DELETE && e->tag == 1 &&
				    key_is(&e->kv, own))
					rc = -1;
				cw_event_free(e);
				break;
			case CW_CANCELED:
				/* Compacted under us: the next round's range tells what is left. */
				pred_gone = true;
				if (tag == 1) {
					cw_stop(&cw, 1);
					own_watched = false;
				}
				break;
			case CW_TIMEOUT:
				rc = err_deadline(err);
				break;
			case CW_LOST:
			case CW_STOPPED:
				rc = -1;
				break;
			}
			if (rc == -1) {
				snprintf(msg, sizeof(msg), "%s: session is expired", what);
				rc = err_other(err, KEEL_CODE_ABORTED, msg);
			}
			if (rc)
				break;
		}
		cw_stop(&cw, 0);
		keel_range_result_free(r);
		if (rc)
			goto out;
	}
	if (!own_watched) {
		keel_range_result_t *r = NULL;

		to = call_timeout(deadline);
		rc = to == -2 ? err_deadline(err) : get_key(k, own, to, &r, err);
		if (!rc && r->n_kvs == 0) {
			char msg[64];

			snprintf(msg, sizeof(msg), "%s: session is expired", what);
			rc = err_other(err, KEEL_CODE_ABORTED, msg);
		}
		keel_range_result_free(r);
	}
out:
	cw_destroy(&cw);
	return rc;
}

/* ---- a session's key in a prefix's queue (what a mutex and an election hold) ---------- */

typedef struct qkey {
	keel_session_t *s;
	char *dir;                   /* prefix + "/" */
	char *prefix;
	char *key;                   /* NULL unless queued */
	int64_t rev;                 /* -1 unless queued */
} qkey_t;

/* false (and nothing to free) when out of memory. */
static bool qkey_init(qkey_t *q, keel_session_t *s, const char *prefix)
{
	q->s = s;
	q->dir = str_cat(prefix, "/");
	q->prefix = strdup(prefix);
	q->key = NULL;
	q->rev = -1;
	if (q->dir && q->prefix)
		return true;
	free(q->dir);
	free(q->prefix);
	return false;
}

static void qkey_reset(qkey_t *q)
{
	free(q->key);
	q->key = NULL;
	q->rev = -1;
}

static void qkey_clear(qkey_t *q)
{
	qkey_reset(q);
	free(q->dir);
	free(q->prefix);
}

/* The common first step of lock and campaign: create <dir><lease> unless it exists (then
 * read it), and read the first key of dir. On success q holds the key and its create
 * revision, and *out the txn's answer. */
static int qkey_enqueue(qkey_t *q, const void *value, size_t len, bool with_owner,
			int timeout_ms, keel_txn_result_t **out, keel_error_t *err)
{
	keel_txn_t *t = keel_txn_new();
	uint8_t *end = malloc(strlen(q->dir) + 1);
	keel_range_result_t *mine;
	char *key;
	int rc;

	*out = NULL;
	qkey_reset(q);
	key = key_of_lease(q->prefix, q->s->lease);
	if (!t || !end || !key) {
		keel_txn_free(t);
		free(end);
		free(key);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	keel_txn_timeout(t, timeout_ms);
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, key, strlen(key), NULL, 0, 0);
	txn_put(t, KEEL_THEN, key, value, len, q->s->lease);
	txn_get(t, KEEL_ELSE, key);
	if (with_owner) {
		txn_range_first_create(t, KEEL_THEN, q->dir, end);
		txn_range_first_create(t, KEEL_ELSE, q->dir, end);
	}
	rc = keel_txn_commit(q->s->k, t, out, err);
	keel_txn_free(t);
	free(end);
	if (rc) {
		free(key);
		return rc;
	}
	mine = (*out)->succeeded ? NULL : txn_range_at(*out, 0);
	if (!(*out)->succeeded && (!mine || mine->n_kvs == 0)) {
		/* The key vanished between compare and read: impossible in one txn. */
		keel_txn_result_free(*out);
		*out = NULL;
		free(key);
		return err_other(err, KEEL_CODE_INTERNAL, "concurrency: malformed txn response");
	}
	q->key = key;
	q->rev = mine ? mine->kvs[0].create_revision : (*out)->header.revision;
	return 0;
}

/* ---- mutex -------------------------------------------------------------------------- */

struct keel_mutex {
	qkey_t q;                    /* queued unless key is NULL; held once first */
};

int keel_mutex_new(keel_session_t *s, const char *prefix, keel_mutex_t **out,
		   keel_error_t *err)
{
	keel_mutex_t *m;

	if (!s || !prefix || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "mutex: no session or no prefix");
	m = calloc(1, sizeof(*m));
	if (!m || !qkey_init(&m->q, s, prefix)) {
		free(m);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	*out = m;
	return 0;
}

void keel_mutex_free(keel_mutex_t *m)
{
	if (!m)
		return;
	qkey_clear(&m->q);
	free(m);
}

/* Enqueues this session's key; *owner tells whether it is first already. */
static int mutex_acquire(keel_mutex_t *m, int timeout_ms, bool *owner, int64_t *hdr_rev,
			 keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_range_result_t *first;
	int rc;

	rc = qkey_enqueue(&m->q, "", 0, true, timeout_ms, &r, err);
	if (rc)
		return rc;
	first = txn_range_at(r, 1);
	if (!first) {
		keel_txn_result_free(r);
		qkey_reset(&m->q);
		return err_other(err, KEEL_CODE_INTERNAL, "concurrency: malformed txn response");
	}
	*owner = first->n_kvs == 0 || first->kvs[0].create_revision == m->q.rev;
	*hdr_rev = r->header.revision;
	keel_txn_result_free(r);
	return 0;
}

int keel_mutex_lock(keel_mutex_t *m, int timeout_ms, keel_error_t *err)
{
	int64_t deadline, hdr_rev = 0;
	bool owner = false;
	int rc, to;

	if (!m)
		return keel_error_set(err, KEEL_CODE_LOCAL, "mutex: NULL");
	deadline = deadline_of(m->q.s->k, timeout_ms);
	CALL_TIMEOUT_OR_FAIL(to, deadline, err);
	rc = mutex_acquire(m, to, &owner, &hdr_rev, err);
	if (rc || owner)
		return rc;
	rc = wait_deletes(m->q.s, m->q.dir, m->q.rev - 1, m->q.key, hdr_rev, deadline, "mutex",
			  err);
	if (rc) {
		/* Leave the queue, or the next waiter would wait for a key nobody unlocks. */
		delete_key(m->q.s->k, m->q.key, 0, NULL);
		qkey_reset(&m->q);
	}
	return rc;
}

int keel_mutex_trylock(keel_mutex_t *m, int timeout_ms, keel_error_t *err)
{
	int64_t hdr_rev = 0;
	bool owner = false;
	int rc;

	if (!m)
		return keel_error_set(err, KEEL_CODE_LOCAL, "mutex: NULL");
	rc = mutex_acquire(m, timeout_ms, &owner, &hdr_rev, err);
	if (rc || owner)
		return rc;
	rc = delete_key(m->q.s->k, m->q.key, timeout_ms, err);
	qkey_reset(&m->q);
	if (rc)
		return rc;
	return err_other(err, KEEL_CODE_ABORTED, "mutex: Locked by another session");
}

int keel_mutex_unlock(keel_mutex_t *m, int timeout_ms, keel_error_t *err)
{
	int rc;

	if (!m)
		return keel_error_set(err, KEEL_CODE_LOCAL, "mutex: NULL");
	if (!m->q.key)
		return 0;
	rc = delete_key(m->q.s->k, m->q.key, timeout_ms, err);
	if (!rc)
		qkey_reset(&m->q);
	return rc;
}

const char *keel_mutex_key(const keel_mutex_t *m)
{
	return m && m->q.key ? m->q.key : "";
}

int64_t keel_mutex_revision(const keel_mutex_t *m)
{
	return m ? m->q.rev : -1;
}

/* ---- election ----------------------------------------------------------------------- */

struct keel_election {
	qkey_t q;                    /* the campaign's key; key NULL when not a candidate */
	bool leader;                 /* etcd's leaderSession != nil */
};

int keel_election_new(keel_session_t *s, const char *prefix, keel_election_t **out,
		      keel_error_t *err)
{
	keel_election_t *e;

	if (!s || !prefix || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "election: no session or no prefix");
	e = calloc(1, sizeof(*e));
	if (!e || !qkey_init(&e->q, s, prefix)) {
		free(e);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	*out = e;
	return 0;
}

void keel_election_free(keel_election_t *e)
{
	if (!e)
		return;
	qkey_clear(&e->q);
	free(e);
}

static void election_reset(keel_election_t *e)
{
	qkey_reset(&e->q);
	e->leader = false;
}

static const char *NOT_LEADER = "election: not leader";

int keel_election_proclaim(keel_election_t *e, const void *value, size_t len, int timeout_ms,
			   keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_txn_t *t;
	int rc;

	if (!e)
		return keel_error_set(err, KEEL_CODE_LOCAL, "election: NULL");
	if (!e->leader || !e->q.key)
		return err_other(err, KEEL_CODE_FAILED_PRECONDITION, NOT_LEADER);
	t = keel_txn_new();
	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	keel_txn_timeout(t, timeout_ms);
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, e->q.key, strlen(e->q.key), NULL, 0,
			 e->q.rev);
	txn_put(t, KEEL_THEN, e->q.key, value ? value : "", value ? len : 0, e->q.s->lease);
	rc = keel_txn_commit(e->q.s->k, t, &r, err);
	keel_txn_free(t);
	if (rc)
		return rc;
	if (!r->succeeded) {
		keel_txn_result_free(r);
		election_reset(e);
		return err_other(err, KEEL_CODE_FAILED_PRECONDITION, NOT_LEADER);
	}
	keel_txn_result_free(r);
	return 0;
}

int keel_election_resign(keel_election_t *e, int timeout_ms, keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_txn_t *t;
	int rc;

	if (!e)
		return keel_error_set(err, KEEL_CODE_LOCAL, "election: NULL");
	if (!e->leader || !e->q.key)
		return 0;
	t = keel_txn_new();
	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	keel_txn_timeout(t, timeout_ms);
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, e->q.key, strlen(e->q.key), NULL, 0,
			 e->q.rev);
	txn_delete(t, KEEL_THEN, e->q.key, strlen(e->q.key));
	rc = keel_txn_commit(e->q.s->k, t, &r, err);
	keel_txn_free(t);
	keel_txn_result_free(r);
	election_reset(e);
	return rc;
}

int keel_election_campaign(keel_election_t *e, const void *value, size_t len, int timeout_ms,
			   keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_range_result_t *mine;
	int64_t deadline, hdr_rev;
	int rc, to;

	if (!e)
		return keel_error_set(err, KEEL_CODE_LOCAL, "election: NULL");
	if (!value)
		len = 0;
	deadline = deadline_of(e->q.s->k, timeout_ms);
	CALL_TIMEOUT_OR_FAIL(to, deadline, err);
	election_reset(e);
	rc = qkey_enqueue(&e->q, value ? value : "", len, false, to, &r, err);
	if (rc)
		return rc;
	e->leader = true;
	hdr_rev = r->header.revision;
	mine = r->succeeded ? NULL : txn_range_at(r, 0);
	if (mine && (mine->kvs[0].value_len != len ||
		     (len && memcmp(mine->kvs[0].value, value, len) != 0))) {
		CALL_TIMEOUT_OR_FAIL(to, deadline, err);
		rc = keel_election_proclaim(e, value, len, to, err);
		if (rc) {
			keel_txn_result_free(r);
			keel_election_resign(e, 0, NULL);
			return rc;
		}
	}
	keel_txn_result_free(r);
	rc = wait_deletes(e->q.s, e->q.dir, e->q.rev - 1, e->q.key, hdr_rev, deadline, "election",
			  err);
	if (rc) {
		/* As etcd: a campaign given up (deadline) leaves the race; one that failed
		 * otherwise keeps its key but is not the leader. */
		if (rc == KEEL_CODE_DEADLINE_EXCEEDED)
			keel_election_resign(e, 0, NULL);
		else
			e->leader = false;
	}
	return rc;
}

int keel_election_leader(keel_t *k, const char *prefix, keel_range_result_t **out,
			 keel_error_t *err)
{
	char *dir;
	int rc;

	if (!k || !prefix || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "election: no client or no prefix");
	*out = NULL;
	dir = str_cat(prefix, "/");
	if (!dir)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	rc = get_by_create(k, dir, KEEL_SORT_ASCEND, 0, 0, out, err);
	free(dir);
	if (rc)
		return rc;
	if ((*out)->n_kvs == 0) {
		keel_range_result_free(*out);
		*out = NULL;
		return err_other(err, KEEL_CODE_NOT_FOUND, "election: no leader");
	}
	return 0;
}

const char *keel_election_key(const keel_election_t *e)
{
	return e && e->q.key ? e->q.key : "";
}

int64_t keel_election_revision(const keel_election_t *e)
{
	return e ? e->q.rev : -1;
}

/* ---- observe ------------------------------------------------------------------------ */

struct keel_observe {
	keel_t *k;
	char *dir;
	keel_observe_fn fn;
	void *ud;
	cwatch_t cw;                 /* cw.stop ends the observer */
	pthread_t thread;
	/* The last leader reported, so a restart after compaction does not repeat it. */
	uint8_t *last_key;
	size_t last_key_len;
	int64_t last_mod;
};

static bool observe_stopped(keel_observe_t *o)
{
	bool stop;

	pthread_mutex_lock(&o->cw.mu);
	stop = o->cw.stop;
	pthread_mutex_unlock(&o->cw.mu);
	return stop;
}

static void observe_pause(keel_observe_t *o)
{
	cw_event_t *e = NULL;
	int tag;

	if (cw_next(&o->cw, now_ms() + OBSERVE_RETRY_MS, NULL, &e, &tag) == CW_EVENT)
		cw_event_free(e);
}

static void observe_report(keel_observe_t *o, const keel_kv_t *kv)
{
	if (o->last_key && kv->key_len == o->last_key_len && kv->mod_revision == o->last_mod &&
	    memcmp(kv->key, o->last_key, kv->key_len) == 0)
		return;
	free(o->last_key);
	o->last_key = dup_bytes(kv->key, kv->key_len);
	o->last_key_len = kv->key_len;
	o->last_mod = kv->mod_revision;
	o->fn(o->ud, kv);
}

/* Waits for the first put under the prefix from rev; fills *out (caller frees). */
static cw_wait_t observe_first_put(keel_observe_t *o, int64_t rev, cw_event_t **out)
{
	size_t len = strlen(o->dir);
	uint8_t *end = malloc(len + 1);
	size_t end_len;
	cw_wait_t res = CW_CANCELED;

	*out = NULL;
	if (!end)
		return CW_CANCELED;
	end_len = keel_prefix_end(o->dir, len, end);
	if (cw_start(&o->cw, 0, o->k, o->dir, len, end, end_len, rev, NULL) == 0) {
		for (;;) {
			cw_event_t *e = NULL;
			int tag;

			res = cw_next(&o->cw, -1, NULL, &e, &tag);
			if (res != CW_EVENT)
				break;
			if (e->type == KEEL_EVENT_PUT) {
				*out = e;
				break;
			}
			cw_event_free(e);
		}
	}
	cw_stop(&o->cw, 0);
	free(end);
	return res;
}

/* Reports the leader kv's updates until its key is deleted (or the watch ends). */
static void observe_follow(keel_observe_t *o, const keel_kv_t *kv, int64_t rev)
{
	uint8_t *key = dup_bytes(kv->key, kv->key_len);
	size_t key_len = kv->key_len;

	if (!key || cw_start(&o->cw, 0, o->k, key, key_len, NULL, 0, rev + 1, NULL) != 0) {
		free(key);
		observe_pause(o);
		return;
	}
	for (;;) {
		cw_event_t *e = NULL;
		int tag;
		bool deleted;

		if (cw_next(&o->cw, -1, NULL, &e, &tag) != CW_EVENT)
			break;
		deleted = e->type == KEEL_EVENT_DELETE;
		if (!deleted)
			observe_report(o, &e->kv);
		cw_event_free(e);
		if (deleted)
			break;
	}
	cw_stop(&o->cw, 0);
	free(key);
}

static void *observe_main(void *arg)
{
	keel_observe_t *o = arg;

	while (!observe_stopped(o)) {
		keel_range_result_t *r = NULL;
		cw_event_t *first = NULL;

		if (get_by_create(o->k, o->dir, KEEL_SORT_ASCEND, 0, 0, &r, NULL) != 0) {
			observe_pause(o);
			continue;
		}
		if (r->n_kvs > 0) {
			observe_report(o, &r->kvs[0]);
			observe_follow(o, &r->kvs[0], r->header.revision);
		} else if (observe_first_put(o, r->header.revision, &first) == CW_EVENT) {
			observe_report(o, &first->kv);
			observe_follow(o, &first->kv, first->kv.mod_revision);
			cw_event_free(first);
		}
		keel_range_result_free(r);
	}
	return NULL;
}

int keel_election_observe(keel_t *k, const char *prefix, keel_observe_fn fn, void *ud,
			  keel_observe_t **out, keel_error_t *err)
{
	keel_observe_t *o;

	if (!k || !prefix || !fn || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "observe: missing argument");
	*out = NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	o->dir = str_cat(prefix, "/");
	if (!o->dir) {
		free(o);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	o->k = k;
	o->fn = fn;
	o->ud = ud;
	cw_init(&o->cw);
	if (pthread_create(&o->thread, NULL, observe_main, o) != 0) {
		cw_destroy(&o->cw);
		free(o->dir);
		free(o);
		return keel_error_set(err, KEEL_CODE_LOCAL, "observe: cannot start a thread");
	}
	*out = o;
	return 0;
}

void keel_observe_stop(keel_observe_t *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->cw.mu);
	o->cw.stop = true;
	pthread_cond_broadcast(&o->cw.cv);
	pthread_mutex_unlock(&o->cw.mu);
	pthread_join(o->thread, NULL);
	cw_destroy(&o->cw);
	free(o->last_key);
	free(o->dir);
	free(o);
}

/* ---- queue -------------------------------------------------------------------------- */

static const char *KEY_EXISTS = "key already exists";

/* contrib/recipes' putNewKV: creates key only if it does not exist. */
static int put_new_key(keel_t *k, const char *key, const void *value, size_t len,
		       int timeout_ms, bool *created, keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_txn_t *t = keel_txn_new();
	int rc;

	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	keel_txn_timeout(t, timeout_ms);
	keel_txn_cmp_int(t, KEEL_CMP_VERSION, KEEL_CMP_EQUAL, key, strlen(key), NULL, 0, 0);
	txn_put(t, KEEL_THEN, key, value, len, 0);
	rc = keel_txn_commit(k, t, &r, err);
	keel_txn_free(t);
	if (!rc)
		*created = r->succeeded;
	keel_txn_result_free(r);
	return rc;
}

int keel_queue_enqueue(keel_t *k, const char *prefix, const void *value, size_t len,
		       keel_error_t *err)
{
	if (!k || !prefix)
		return keel_error_set(err, KEEL_CODE_LOCAL, "queue: no client or no prefix");
	if (!value)
		len = 0;
	for (;;) {
		struct timespec ts;
		char *key = NULL;
		bool created = false;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (asprintf(&key, "%s/%" PRId64, prefix,
			     (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec) < 0)
			return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
		rc = put_new_key(k, key, value ? value : "", len, 0, &created, err);
		free(key);
		if (rc || created)
			return rc;
	}
}

/* Deletes key only if it is still at mod revision rev: whoever does it owns the item. */
static int claim_key(keel_t *k, const keel_kv_t *kv, int timeout_ms, bool *claimed,
		     keel_error_t *err)
{
	keel_txn_result_t *r = NULL;
	keel_txn_t *t = keel_txn_new();
	int rc;

	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	keel_txn_timeout(t, timeout_ms);
	keel_txn_cmp_int(t, KEEL_CMP_MOD, KEEL_CMP_EQUAL, kv->key, kv->key_len, NULL, 0,
			 kv->mod_revision);
	txn_delete(t, KEEL_THEN, kv->key, kv->key_len);
	rc = keel_txn_commit(k, t, &r, err);
	keel_txn_free(t);
	if (!rc)
		*claimed = r->succeeded;
	keel_txn_result_free(r);
	return rc;
}

/* Waits for a put under dir after rev. */
static int queue_wait_put(keel_t *k, const char *dir, int64_t rev, int64_t deadline,
			  keel_error_t *err)
{
	size_t len = strlen(dir);
	uint8_t *end = malloc(len + 1);
	cwatch_t cw;
	int rc;

	if (!end)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	cw_init(&cw);
	rc = cw_start(&cw, 0, k, dir, len, end, keel_prefix_end(dir, len, end), rev + 1, err);
	while (!rc) {
		cw_event_t *e = NULL;
		int tag;
		cw_wait_t w = cw_next(&cw, deadline, NULL, &e, &tag);

		if (w == CW_TIMEOUT) {
			rc = err_deadline(err);
		} else if (w == CW_EVENT) {
			bool put = e->type == KEEL_EVENT_PUT;

			cw_event_free(e);
			if (put)
				break;
		} else {
			break;  /* compacted: look again */
		}
	}
	cw_destroy(&cw);
	free(end);
	return rc;
}

int keel_queue_dequeue(keel_t *k, const char *prefix, int timeout_ms,
		       keel_range_result_t **out, keel_error_t *err)
{
	int64_t deadline;
	char *dir;
	int rc;

	if (!k || !prefix || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "queue: missing argument");
	*out = NULL;
	dir = str_cat(prefix, "/");
	if (!dir)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	deadline = deadline_of(k, timeout_ms);
	for (;;) {
		keel_range_result_t *r = NULL;
		bool claimed = false;
		int to = call_timeout(deadline);

		if (to == -2) {
			rc = err_deadline(err);
			break;
		}
		rc = get_by_create(k, dir, KEEL_SORT_ASCEND, 0, to, &r, err);
		if (rc)
			break;
		if (r->n_kvs == 0) {
			int64_t rev = r->header.revision;

			keel_range_result_free(r);
			rc = queue_wait_put(k, dir, rev, deadline, err);
			if (rc)
				break;
			continue;
		}
		to = call_timeout(deadline);
		rc = to == -2 ? err_deadline(err) : claim_key(k, &r->kvs[0], to, &claimed, err);
		if (rc || claimed) {
			if (claimed)
				*out = r;
			else
				keel_range_result_free(r);
			break;
		}
		keel_range_result_free(r);
	}
	free(dir);
	return rc;
}

/* ---- barrier ------------------------------------------------------------------------ */

int keel_barrier_hold(keel_t *k, const char *key, keel_error_t *err)
{
	bool created = false;
	int rc;

	if (!k || !key)
		return keel_error_set(err, KEEL_CODE_LOCAL, "barrier: no client or no key");
	rc = put_new_key(k, key, "", 0, 0, &created, err);
	if (rc)
		return rc;
	return created ? 0 : err_other(err, KEEL_CODE_ALREADY_EXISTS, KEY_EXISTS);
}

int keel_barrier_release(keel_t *k, const char *key, keel_error_t *err)
{
	if (!k || !key)
		return keel_error_set(err, KEEL_CODE_LOCAL, "barrier: no client or no key");
	return delete_key(k, key, 0, err);
}

int keel_barrier_wait(keel_t *k, const char *key, int timeout_ms, keel_error_t *err)
{
	int64_t deadline;
	int rc = 0;

	if (!k || !key)
		return keel_error_set(err, KEEL_CODE_LOCAL, "barrier: no client or no key");
	deadline = deadline_of(k, timeout_ms);
	for (;;) {
		keel_range_result_t *r = NULL;
		int64_t rev;
		cwatch_t cw;
		bool gone = false;
		int to = call_timeout(deadline);

		if (to == -2)
			return err_deadline(err);
		rc = get_key(k, key, to, &r, err);
		if (rc)
			return rc;
		rev = r->header.revision;
		gone = r->n_kvs == 0;
		keel_range_result_free(r);
		if (gone)
			return 0;
		cw_init(&cw);
		rc = cw_start(&cw, 0, k, key, strlen(key), NULL, 0, rev + 1, err);
		while (!rc && !gone) {
			cw_event_t *e = NULL;
			int tag;
			cw_wait_t w = cw_next(&cw, deadline, NULL, &e, &tag);

			if (w == CW_TIMEOUT) {
				rc = err_deadline(err);
			} else if (w == CW_EVENT) {
				gone = e->type == KEEL_EVENT_DELETE;
				cw_event_free(e);
			} else {
				break;  /* compacted: look again */
			}
		}
		cw_destroy(&cw);
		if (rc || gone)
			return rc;
	}
}
