/* client/watch.c — the watch hub: one Watch stream per handle carrying every watch, created
 * one at a time (server ids map to our watches in answer order), re-created after a broken
 * stream from the revision after the last one delivered, so no event is lost or repeated.
 * Stream state lives on the I/O thread only; user callbacks only ever run via kt_dispatch. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"
#include "conv.h"
#include "hub_sync.h"

#define WATCH_PATH "/etcdserverpb.Watch/Watch"
/* We never ask for fragments (etcd sends them only when asked): a server that sends them
 * anyway gets its joined fragments bounded, then the watch is canceled. */
#define WATCH_MAX_FRAG_BYTES (64u << 20)

enum watch_state {
	W_PENDING,                   /* to be (re)created on the stream */
	W_CREATING,                  /* create sent: the next created answer is ours */
	W_ACTIVE,                    /* the server knows it as id */
	W_DONE,                      /* the server canceled it: nothing more comes */
};

struct keel_watch {
	keel_watch_hub_t *hub;
	keel_watch_fn fn;
	void *ud;
	uint8_t *key, *end;
	size_t key_len, end_len;
	int64_t start_rev;
	bool progress_notify, prev_kv, no_put, no_delete;
	int refs;                    /* atomic: user, I/O side, each queued callback */
	/* Shared with the user's and the dispatch thread, under gate.mu. */
	cbgate_t gate;
	bool create_done;            /* the first created answer came */
	/* I/O thread only. */
	keel_watch_t *prev, *next;
	bool linked;
	enum watch_state state;
	bool cancel_wanted;          /* canceled by the user while its create was in flight */
	bool synced;                 /* the server has nothing older to send it */
	int64_t id;
	int64_t next_rev;            /* the next revision to deliver; 0 = not known yet */
	keel_event_t *frag;          /* events of fragments joined so far */
	size_t n_frag;
	size_t frag_bytes;           /* wire size of those fragments */
};

struct keel_watch_hub {
	kt_t *t;
	/* I/O thread only. */
	kt_stream_t *s;
	bool open;
	keel_watch_t *head, *tail;   /* in creation order */
	keel_watch_t *creating;
	hublatch_t latch;            /* keel_watch_hub_free waits for the stream to close */
};

static void watch_unref(keel_watch_t *w)
{
	if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < w->n_frag; i++)
		conv_event_clear(&w->frag[i]);
	free(w->frag);
	free(w->key);
	free(w->end);
	cbgate_destroy(&w->gate);
	free(w);
}

/* ---- delivery ------------------------------------------------------------------------ */

typedef struct watch_cb {
	keel_watch_t *w;
	keel_watch_resp_t resp;
	keel_event_t *events;        /* owned */
	char *reason;                /* owned */
} watch_cb_t;

static void watch_cb_free(watch_cb_t *cb)
{
	for (size_t i = 0; i < cb->resp.n_events; i++)
		conv_event_clear(&cb->events[i]);
	free(cb->events);
	free(cb->reason);
	free(cb);
}

static void watch_cb_run(void *arg)
{
	watch_cb_t *cb = arg;
	keel_watch_t *w = cb->w;
	if (cbgate_enter(&w->gate)) {
		w->fn(w->ud, &cb->resp);
		cbgate_leave(&w->gate);
	}
	watch_unref(w);
	watch_cb_free(cb);
}

/* Queues one response for w's callback; takes events (n of them) in every case. */
static void watch_deliver(keel_watch_hub_t *h, keel_watch_t *w,
			  const Etcdserverpb__WatchResponse *r, bool created,
			  keel_event_t *events, size_t n)
{
	watch_cb_t *cb = calloc(1, sizeof(*cb));
	char *reason = strdup(r->cancel_reason ? r->cancel_reason : "");
	if (!cb || !reason) {
		/* Out of memory: the batch is lost to the user, not reordered. */
		for (size_t i = 0; i < n; i++)
			conv_event_clear(&events[i]);
		free(events);
		free(cb);
		free(reason);
		return;
	}
	cb->w = w;
	cb->events = events;
	cb->reason = reason;
	conv_header(&cb->resp.header, r->header);
	cb->resp.watch_id = w->id;
	cb->resp.created = created;
	cb->resp.canceled = r->canceled;
	cb->resp.compact_revision = r->compact_revision;
	cb->resp.cancel_reason = reason;
	cb->resp.events = events;
	cb->resp.n_events = n;
	__atomic_add_fetch(&w->refs, 1, __ATOMIC_ACQ_REL);
	if (kt_dispatch(h->t, watch_cb_run, cb) != 0) {
		watch_unref(w);
		watch_cb_free(cb);
	}
}

/* ---- the stream ---------------------------------------------------------------------- */

static void watch_send(keel_watch_hub_t *h, const Etcdserverpb__WatchRequest *req)
{
	if (!h->open)
		return;
	size_t len = etcdserverpb__watch_request__get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return;              /* the create is retried after the next reopen */
	etcdserverpb__watch_request__pack(req, buf);
	if (kt_stream_send(h->s, buf, len) != 0)
		h->open = false;
	free(buf);
}

static void watch_unlink(keel_watch_hub_t *h, keel_watch_t *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		h->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		h->tail = w->prev;
	w->prev = w->next = NULL;
	w->linked = false;
	if (h->creating == w)
		h->creating = NULL;
	watch_unref(w);              /* the I/O side's reference */
}

static void watch_send_create(keel_watch_hub_t *h, keel_watch_t *w)
{
	Etcdserverpb__WatchCreateRequest c = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	Etcdserverpb__WatchCreateRequest__FilterType filters[2];
	c.key.data = w->key;
	c.key.len = w->key_len;
	c.range_end.data = w->end;
	c.range_end.len = w->end_len;
	c.start_revision = w->next_rev ? w->next_rev : w->start_rev;
	c.progress_notify = w->progress_notify;
	c.prev_kv = w->prev_kv;
	if (w->no_put)
		filters[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
	if (w->no_delete)
		filters[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
	c.filters = filters;
	Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
	req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
	req.create_request = &c;
	watch_send(h, &req);
}

static void watch_send_cancel(keel_watch_hub_t *h, int64_t id)
{
	Etcdserverpb__WatchCancelRequest c = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
	c.watch_id = id;
	Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
	req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
	req.cancel_request = &c;
	watch_send(h, &req);
}

/* Creates the next pending watch, if none is being created: etcd answers creates in the
 * order they came, but nothing in an answer names the create it belongs to. */
static void watch_pump(keel_watch_hub_t *h)
{
	if (!h->open || h->creating)
		return;
	for (keel_watch_t *w = h->head; w; w = w->next) {
		if (w->state != W_PENDING)
			continue;
		watch_send_create(h, w);
		if (!h->open)
			return;
		w->state = W_CREATING;
		h->creating = w;
		return;
	}
}

static void watch_on_open(void *ud, kt_stream_t *s)
{
	keel_watch_hub_t *h = ud;
	h->s = s;
	h->open = true;
	h->creating = NULL;
	keel_watch_t *next;
	for (keel_watch_t *w = h->head; w; w = next) {
		next = w->next;
		for (size_t i = 0; i < w->n_frag; i++)
			conv_event_clear(&w->frag[i]);
		free(w->frag);
		w->frag = NULL;
		w->n_frag = 0;
		w->frag_bytes = 0;
		if (w->cancel_wanted) {
			watch_unlink(h, w);
			continue;
		}
		if (w->state != W_DONE)
			w->state = W_PENDING;
		w->synced = false;
	}
	watch_pump(h);
}

static void watch_on_broken(void *ud, kt_stream_t *s, int code, const char *message)
{
	(void)s, (void)code, (void)message;
	keel_watch_hub_t *h = ud;
	h->open = false;
	h->creating = NULL;
}

static void watch_on_closed(void *ud)
{
	keel_watch_hub_t *h = ud;
	h->s = NULL;
	h->open = false;
	hublatch_closed(&h->latch);
}

static void watch_created(keel_watch_hub_t *h, const Etcdserverpb__WatchResponse *r)
{
	keel_watch_t *w = h->creating;
	if (!w)
		return;              /* an answer we did not ask for */
	h->creating = NULL;
	w->id = r->watch_id;
	if (w->cancel_wanted) {
		if (!r->canceled)
			watch_send_cancel(h, r->watch_id);
		watch_unlink(h, w);
		watch_pump(h);
		return;
	}
	int64_t rev = r->header ? r->header->revision : 0;
	bool first = false;
	pthread_mutex_lock(&w->gate.mu);
	first = !w->create_done;
	pthread_mutex_unlock(&w->gate.mu);
	if (r->canceled) {
		w->state = W_DONE;
	} else {
		w->state = W_ACTIVE;
		if (w->next_rev == 0 && w->start_rev == 0 && rev > 0)
			w->next_rev = rev + 1;
		else if (w->next_rev == 0)
			w->next_rev = w->start_rev;
		/* Starting after the current revision, there is no history to catch up. */
		w->synced = w->next_rev > rev;
	}
	/* A re-created watch's created answer is not news to the user; a cancel is. */
	if (first || r->canceled)
		watch_deliver(h, w, r, first, NULL, 0);
	if (first) {
		pthread_mutex_lock(&w->gate.mu);
		w->create_done = true;
		pthread_cond_broadcast(&w->gate.cv);
		pthread_mutex_unlock(&w->gate.mu);
	}
	watch_pump(h);
}

static keel_watch_t *watch_by_id(keel_watch_hub_t *h, int64_t id)
{
	for (keel_watch_t *w = h->head; w; w = w->next)
		if (w->state == W_ACTIVE && w->id == id)
			return w;
	return NULL;
}

/* Progress for the whole stream (etcd 3.4 answers a progress request with watch id -1):
 * every active watch hears of it, but only a synced one may skip ahead to it. */
static void watch_progress_all(keel_watch_hub_t *h, const Etcdserverpb__WatchResponse *r)
{
	int64_t rev = r->header ? r->header->revision : 0;
	for (keel_watch_t *w = h->head; w; w = w->next) {
		if (w->state != W_ACTIVE || w->cancel_wanted)
			continue;
		if (w->synced && rev + 1 > w->next_rev)
			w->next_rev = rev + 1;
		watch_deliver(h, w, r, false, NULL, 0);
	}
}

/* Joins r's events to w's earlier fragments, dropping any already delivered (a resumed
 * watch never repeats an event). Returns the array (NULL when empty) or -1 on no memory. */
static int watch_collect(keel_watch_t *w, const Etcdserverpb__WatchResponse *r,
			 keel_event_t **out, size_t *n_out)
{
	size_t n = w->n_frag;
	keel_event_t *evs = w->frag;
	w->frag = NULL;
	w->n_frag = 0;
	if (r->n_events) {
		keel_event_t *a = realloc(evs, (n + r->n_events) * sizeof(*a));
		if (!a)
			goto oom;
		evs = a;
	}
	for (size_t i = 0; i < r->n_events; i++) {
		const Mvccpb__Event *e = r->events[i];
		if (e->kv && e->kv->mod_revision < w->next_rev)
			continue;
		if (conv_event(&evs[n], e) != 0)
			goto oom;
		n++;
	}
	*out = n ? evs : NULL;
	*n_out = n;
	if (!n)
		free(evs);
	return 0;
oom:
	for (size_t i = 0; i < n; i++)
		conv_event_clear(&evs[i]);
	free(evs);
	return -1;
}

/* Unrequested fragments past the bound: drop them and end the watch as the server would
 * (canceled, with a reason), so memory stays bounded whatever the server sends. */
static void watch_frag_overflow(keel_watch_hub_t *h, keel_watch_t *w,
				const Etcdserverpb__WatchResponse *r, keel_event_t *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		conv_event_clear(&evs[i]);
	free(evs);
	w->frag_bytes = 0;
	w->state = W_DONE;
	watch_send_cancel(h, w->id);
	Etcdserverpb__WatchResponse c = *r;
	c.canceled = 1;
	c.fragment = 0;
	c.n_events = 0;
	c.cancel_reason = (char *)"keel: fragmented watch response too large";
	watch_deliver(h, w, &c, false, NULL, 0);
}

static void watch_on_message(void *ud, kt_stream_t *s, const uint8_t *msg, size_t len)
{
	(void)s;
	keel_watch_hub_t *h = ud;
	Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
	if (!r)
		return;              /* garbage from the server: ignored, not fatal */
	if (r->created) {
		watch_created(h, r);
	} else if (r->watch_id == -1 && r->n_events == 0 && !r->canceled) {
		watch_progress_all(h, r);
	} else {
		keel_watch_t *w = watch_by_id(h, r->watch_id);
		if (w && !w->cancel_wanted) {
			keel_event_t *evs = NULL;
			size_t n = 0;
			if (watch_collect(w, r, &evs, &n) != 0) {
				n = 0;
				evs = NULL;
			}
			w->frag_bytes = r->fragment ? w->frag_bytes + len : 0;
			if (r->fragment && w->frag_bytes > WATCH_MAX_FRAG_BYTES) {
				watch_frag_overflow(h, w, r, evs, n);
			} else if (r->fragment) {
				w->frag = evs;
				w->n_frag = n;
			} else {
				if (n > 0)
					w->next_rev = evs[n - 1].kv.mod_revision + 1;
				int64_t rev = r->header ? r->header->revision : 0;
				if (n == 0 && r->n_events == 0 && !r->canceled) {
					/* A watch's own progress notice: etcd sends those only
					 * to synced watchers. */
					w->synced = true;
					if (rev + 1 > w->next_rev)
						w->next_rev = rev + 1;
				}
				if (r->canceled)
					w->state = W_DONE;
				if (n > 0 || r->n_events == 0 || r->canceled)
					watch_deliver(h, w, r, false, evs, n);
				else
					free(evs);
			}
		}
	}
	etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static const kt_stream_ops_t watch_stream_ops = {
	.on_open = watch_on_open,
	.on_message = watch_on_message,
	.on_broken = watch_on_broken,
	.on_closed = watch_on_closed,
};

/* ---- the user's side ----------------------------------------------------------------- */

/* I/O thread: a new watch joins the queue (opening the stream on the first one). */
static void watch_add(void *arg)
{
	keel_watch_t *w = arg;
	keel_watch_hub_t *h = w->hub;
	w->linked = true;
	w->state = W_PENDING;
	w->prev = h->tail;
	if (h->tail)
		h->tail->next = w;
	else
		h->head = w;
	h->tail = w;
	if (!h->s) {
		h->s = kt_stream_open(h->t, WATCH_PATH, &watch_stream_ops, h);
		if (h->s)
			hublatch_closing(&h->latch);
		return;
	}
	watch_pump(h);
}

/* I/O thread: the user canceled w. */
static void watch_remove(void *arg)
{
	keel_watch_t *w = arg;
	keel_watch_hub_t *h = w->hub;
	if (!w->linked)
		return;
	if (w->state == W_CREATING && h->open) {
		w->cancel_wanted = true;     /* its created answer tells us the id to cancel */
		return;
	}
	if (w->state == W_ACTIVE && h->open)
		watch_send_cancel(h, w->id);
	watch_unlink(h, w);
}

static keel_watch_hub_t *watch_hub_get(keel_t *k)
{
	keel_watch_hub_t *h = __atomic_load_n(&k->watches, __ATOMIC_ACQUIRE);
	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->t = k->t;
	hublatch_init(&h->latch);
	keel_watch_hub_t *expected = NULL;
	if (!__atomic_compare_exchange_n(&k->watches, &expected, h, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		hublatch_destroy(&h->latch);
		free(h);
		return expected;
	}
	return h;
}

static keel_watch_t *watch_new(keel_watch_hub_t *h, const keel_watch_req_t *req,
			       keel_watch_fn fn, void *ud)
{
	keel_watch_t *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->key = conv_bytes(req->key, req->key ? req->key_len : 0);
	w->end = conv_bytes(req->range_end, req->range_end ? req->range_end_len : 0);
	if (!w->key || !w->end) {
		free(w->key);
		free(w->end);
		free(w);
		return NULL;
	}
	w->key_len = req->key ? req->key_len : 0;
	w->end_len = req->range_end ? req->range_end_len : 0;
	w->hub = h;
	w->fn = fn;
	w->ud = ud;
	w->start_rev = req->start_revision;
	w->progress_notify = req->progress_notify;
	w->prev_kv = req->prev_kv;
	w->no_put = req->no_put;
	w->no_delete = req->no_delete;
	w->id = -1;
	w->refs = 2;                 /* the user's handle and the I/O side */
	cbgate_init(&w->gate);
	return w;
}

/* Waits for the first created answer; false when timeout_ms (>= 0) passed first. */
static bool watch_wait_created(keel_watch_t *w, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms >= 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&w->gate.mu);
	int rc = 0;
	while (!w->create_done && !w->gate.detached && rc != ETIMEDOUT)
		rc = timeout_ms >= 0 ? pthread_cond_timedwait(&w->gate.cv, &w->gate.mu, &until)
				     : pthread_cond_wait(&w->gate.cv, &w->gate.mu);
	bool ok = w->create_done;
	pthread_mutex_unlock(&w->gate.mu);
	return ok;
}

int keel_watch(keel_t *k, const keel_watch_req_t *req, keel_watch_fn fn, void *ud,
	       keel_watch_t **out, keel_error_t *err)
{
	if (!k || !req || !fn || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_watch: missing argument");
	*out = NULL;
	keel_watch_hub_t *h = watch_hub_get(k);
	keel_watch_t *w = h ? watch_new(h, req, fn, ud) : NULL;
	if (!w)
		return conv_oom(err);
	if (kt_post(k->t, watch_add, w) != 0) {
		w->refs = 1;
		watch_unref(w);
		return keel_error_set(err, KEEL_CODE_CANCELLED, "keel: handle closed");
	}
	int timeout = kt_call_timeout(k->t);
	if (!watch_wait_created(w, timeout)) {
		keel_watch_cancel(w);
		return keel_error_set(err, KEEL_CODE_DEADLINE_EXCEEDED,
				      "context deadline exceeded");
	}
	/* The created answer was dispatched before create_done was set: once the queue has
	 * run that far, fn has seen it (on the dispatch thread itself this returns at once). */
	kt_dispatch_flush(k->t);
	*out = w;
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

void keel_watch_cancel(keel_watch_t *w)
{
	if (!w)
		return;
	if (!cbgate_stop(&w->gate))
		kt_post(w->hub->t, watch_remove, w);
	watch_unref(w);
}

static void watch_progress_send(void *arg)
{
	keel_watch_hub_t *h = arg;
	Etcdserverpb__WatchProgressRequest p = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
	Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
	req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
	req.progress_request = &p;
	watch_send(h, &req);
}

int keel_watch_request_progress(keel_t *k, keel_error_t *err)
{
	if (!k)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "keel_watch_request_progress: no client");
	keel_watch_hub_t *h = __atomic_load_n(&k->watches, __ATOMIC_ACQUIRE);
	if (h && kt_post(k->t, watch_progress_send, h) != 0)
		return keel_error_set(err, KEEL_CODE_CANCELLED, "keel: handle closed");
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

/* I/O thread, from keel_watch_hub_free: detach every watch, close the stream. */
static void watch_hub_shutdown(void *arg)
{
	keel_watch_hub_t *h = arg;
	while (h->head) {
		keel_watch_t *w = h->head;
		cbgate_detach(&w->gate);
		watch_unlink(h, w);
	}
	if (h->s)
		kt_stream_close(h->s);
	hublatch_shut(&h->latch);
}

void keel_watch_hub_free(keel_watch_hub_t *h)
{
	if (!h)
		return;
	if (kt_post(h->t, watch_hub_shutdown, h) == 0)
		hublatch_wait(&h->latch);
	hublatch_destroy(&h->latch);
	free(h);
}
