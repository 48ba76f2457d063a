/* client/lease.c — the Lease service: unary grant/revoke/ttl/list/keep-alive-once, and the
 * keep-alive hub: one LeaseKeepAlive stream per handle carrying every keep-alive, renewing
 * each lease every TTL/3 from timers on the I/O thread. User callbacks only ever run through
 * kt_dispatch; the hub's stream state is touched only on the I/O thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "client_int.h"
#include "conv.h"
#include "hub_sync.h"

#define LEASE_PATH(m) "/etcdserverpb.Lease/" m
/* Before the first answer the TTL is unknown: retry this often, give up after this long
 * (etcd's client waits its default TTL for the first answer too). */
#define LEASE_FIRST_RETRY_MS 500
#define LEASE_FIRST_DEADLINE_MS 5000

/* ---- unary calls --------------------------------------------------------------------- */

int keel_lease_grant(keel_t *k, const keel_lease_grant_req_t *req,
		     keel_lease_grant_result_t *out, keel_error_t *err)
{
	if (!k || !req || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_lease_grant: missing argument");
	Etcdserverpb__LeaseGrantRequest m = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	m.ttl = req->ttl;
	m.id = req->id;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, LEASE_PATH("LeaseGrant"), NULL, &m.base, req->timeout_ms, false,
			   &etcdserverpb__lease_grant_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)resp;
	if (r->error && r->error[0]) {
		/* etcd never fills this field; a server that does means the grant failed. */
		rc = keel_error_set(err, KEEL_CODE_UNKNOWN, "%s", r->error);
	} else {
		conv_header(&out->header, r->header);
		out->id = r->id;
		out->ttl = r->ttl;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

int keel_lease_revoke(keel_t *k, const keel_lease_id_req_t *req, keel_header_t *out,
		      keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_lease_revoke: missing argument");
	Etcdserverpb__LeaseRevokeRequest m = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
	m.id = req->id;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, LEASE_PATH("LeaseRevoke"), NULL, &m.base, req->timeout_ms, false,
			   &etcdserverpb__lease_revoke_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		conv_header(out, ((Etcdserverpb__LeaseRevokeResponse *)resp)->header);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* One request and one answer on the bidi method, as etcd's KeepAliveOnce does. */
int keel_lease_keepalive_once(keel_t *k, const keel_lease_id_req_t *req,
			      keel_lease_grant_result_t *out, keel_error_t *err)
{
	if (!k || !req || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "keel_lease_keepalive_once: missing argument");
	Etcdserverpb__LeaseKeepAliveRequest m = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
	m.id = req->id;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, LEASE_PATH("LeaseKeepAlive"), NULL, &m.base, req->timeout_ms,
			   false, &etcdserverpb__lease_keep_alive_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	Etcdserverpb__LeaseKeepAliveResponse *r = (Etcdserverpb__LeaseKeepAliveResponse *)resp;
	if (r->ttl <= 0) {
		rc = keel_error_set(err, KEEL_CODE_NOT_FOUND,
				    "etcdserver: requested lease not found");
	} else {
		conv_header(&out->header, r->header);
		out->id = r->id;
		out->ttl = r->ttl;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

int keel_lease_ttl(keel_t *k, const keel_lease_id_req_t *req, keel_lease_ttl_result_t **out,
		   keel_error_t *err)
{
	if (!k || !req || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_lease_ttl: missing argument");
	*out = NULL;
	Etcdserverpb__LeaseTimeToLiveRequest m = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
	m.id = req->id;
	m.keys = req->keys;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, LEASE_PATH("LeaseTimeToLive"), NULL, &m.base, req->timeout_ms,
			   true, &etcdserverpb__lease_time_to_live_response__descriptor, &resp,
			   err);
	if (rc != 0)
		return rc;
	*out = conv_lease_ttl_result((Etcdserverpb__LeaseTimeToLiveResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return *out ? 0 : conv_oom(err);
}

int keel_lease_list(keel_t *k, const keel_lease_list_req_t *req,
		    keel_lease_list_result_t **out, keel_error_t *err)
{
	if (!k || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_lease_list: missing argument");
	*out = NULL;
	Etcdserverpb__LeaseLeasesRequest m = ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, LEASE_PATH("LeaseLeases"), NULL, &m.base,
			   req ? req->timeout_ms : 0, true,
			   &etcdserverpb__lease_leases_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	*out = conv_lease_list_result((Etcdserverpb__LeaseLeasesResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return *out ? 0 : conv_oom(err);
}

/* ---- the keep-alive hub -------------------------------------------------------------- */

struct keel_keepalive {
	int64_t id;
	keel_keepalive_fn fn;
	void *ud;
	int refs;                    /* atomic: user, I/O side, each queued callback */
	cbgate_t gate;               /* shared with the user's and the dispatch thread */
	keel_lease_hub_t *hub;       /* valid until detached */
	/* I/O thread only. */
	keel_keepalive_t *prev, *next;
	bool linked;
	bool ended;                  /* ttl 0 reported: renewals stopped */
	uv_timer_t timer;
	uint64_t expires_at;         /* loop ms: the lease is gone without a renew by then */
	int64_t ttl;                 /* last TTL answered; 0 before the first answer */
};

struct keel_lease_hub {
	kt_t *t;
	/* I/O thread only. */
	kt_stream_t *s;
	bool open;
	keel_keepalive_t *head;
	hublatch_t latch;            /* keel_lease_hub_free waits for the timers and stream */
};

static void ka_unref(keel_keepalive_t *ka)
{
	if (__atomic_sub_fetch(&ka->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	cbgate_destroy(&ka->gate);
	free(ka);
}

static void ka_ref(keel_keepalive_t *ka)
{
	__atomic_add_fetch(&ka->refs, 1, __ATOMIC_ACQ_REL);
}

typedef struct ka_cb {
	keel_keepalive_t *ka;
	keel_header_t header;
	int64_t ttl;
} ka_cb_t;

/* Dispatch side: the user's callback, unless the keep-alive was stopped meanwhile. */
static void ka_cb_run(void *arg)
{
	ka_cb_t *cb = arg;
	keel_keepalive_t *ka = cb->ka;
	if (cbgate_enter(&ka->gate)) {
		ka->fn(ka->ud, &cb->header, ka->id, cb->ttl);
		cbgate_leave(&ka->gate);
	}
	ka_unref(ka);
	free(cb);
}

static void ka_notify(keel_lease_hub_t *h, keel_keepalive_t *ka, const keel_header_t *hdr,
		      int64_t ttl)
{
	ka_cb_t *cb = calloc(1, sizeof(*cb));
	if (!cb)
		return;              /* out of memory: this notice is lost, renewals go on */
	cb->ka = ka;
	if (hdr)
		cb->header = *hdr;
	cb->ttl = ttl;
	ka_ref(ka);
	if (kt_dispatch(h->t, ka_cb_run, cb) != 0) {
		ka_unref(ka);
		free(cb);
	}
}

static void ka_send(keel_lease_hub_t *h, keel_keepalive_t *ka)
{
	if (!h->open)
		return;
	Etcdserverpb__LeaseKeepAliveRequest m = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
	m.id = ka->id;
	uint8_t buf[16];
	size_t len = etcdserverpb__lease_keep_alive_request__pack(&m, buf);
	if (kt_stream_send(h->s, buf, len) != 0)
		h->open = false;
}

/* The lease ran out without a renew (or the server said it is gone): report once. */
static void ka_end(keel_lease_hub_t *h, keel_keepalive_t *ka, const keel_header_t *hdr)
{
	if (ka->ended)
		return;
	ka->ended = true;
	uv_timer_stop(&ka->timer);
	ka_notify(h, ka, hdr, 0);
}

/* Arms the next renew: TTL/3 after the last answer, but never past the expiry check. */
static void ka_arm(keel_keepalive_t *ka, uint64_t now);

static void ka_on_timer(uv_timer_t *tm)
{
	keel_keepalive_t *ka = tm->data;
	keel_lease_hub_t *h = ka->hub;
	uint64_t now = uv_now(tm->loop);
	if (now >= ka->expires_at) {
		ka_end(h, ka, NULL);
		return;
	}
	ka_send(h, ka);
	ka_arm(ka, now);
}

static void ka_arm(keel_keepalive_t *ka, uint64_t now)
{
	uint64_t every = ka->ttl > 0 ? (uint64_t)ka->ttl * 1000 / 3 : LEASE_FIRST_RETRY_MS;
	if (every == 0)
		every = 1;
	uint64_t left = ka->expires_at > now ? ka->expires_at - now : 0;
	uv_timer_start(&ka->timer, ka_on_timer, every < left ? every : left, 0);
}

static void lease_on_open(void *ud, kt_stream_t *s)
{
	keel_lease_hub_t *h = ud;
	h->s = s;
	h->open = true;
	for (keel_keepalive_t *ka = h->head; ka; ka = ka->next)
		if (!ka->ended)
			ka_send(h, ka);
}

static void lease_on_message(void *ud, kt_stream_t *s, const uint8_t *msg, size_t len)
{
	(void)s;
	keel_lease_hub_t *h = ud;
	Etcdserverpb__LeaseKeepAliveResponse *r =
		etcdserverpb__lease_keep_alive_response__unpack(NULL, len, msg);
	if (!r)
		return;              /* garbage from the server: the deadline check still runs */
	keel_header_t hdr;
	conv_header(&hdr, r->header);
	uint64_t now = uv_now(kt_loop(h->t));
	for (keel_keepalive_t *ka = h->head; ka; ka = ka->next) {
		if (ka->id != r->id || ka->ended)
			continue;
		if (r->ttl <= 0) {
			ka_end(h, ka, &hdr);
			continue;
		}
		ka->ttl = r->ttl;
		ka->expires_at = now + (uint64_t)r->ttl * 1000;
		ka_arm(ka, now);
		ka_notify(h, ka, &hdr, r->ttl);
	}
	etcdserverpb__lease_keep_alive_response__free_unpacked(r, NULL);
}

static void lease_on_broken(void *ud, kt_stream_t *s, int code, const char *message)
{
	(void)s, (void)code, (void)message;
	keel_lease_hub_t *h = ud;
	h->open = false;
}

static void lease_on_closed(void *ud)
{
	keel_lease_hub_t *h = ud;
	h->s = NULL;
	h->open = false;
	hublatch_closed(&h->latch);
}

static const kt_stream_ops_t lease_stream_ops = {
	.on_open = lease_on_open,
	.on_message = lease_on_message,
	.on_broken = lease_on_broken,
	.on_closed = lease_on_closed,
};

/* The timer holds the I/O side's reference; keel_lease_hub_free waits for it too. */
static void ka_on_timer_closed(uv_handle_t *hd)
{
	keel_keepalive_t *ka = hd->data;
	hublatch_closed(&ka->hub->latch);
	ka_unref(ka);
}

static void ka_unlink(keel_lease_hub_t *h, keel_keepalive_t *ka)
{
	if (ka->prev)
		ka->prev->next = ka->next;
	else
		h->head = ka->next;
	if (ka->next)
		ka->next->prev = ka->prev;
	ka->prev = ka->next = NULL;
	ka->linked = false;
}

/* I/O thread: start renewing (and open the hub's stream on the first keep-alive). */
static void ka_add(void *arg)
{
	keel_keepalive_t *ka = arg;
	keel_lease_hub_t *h = ka->hub;
	uv_timer_init(kt_loop(h->t), &ka->timer);
	ka->timer.data = ka;
	ka->linked = true;
	ka->next = h->head;
	if (h->head)
		h->head->prev = ka;
	h->head = ka;
	uint64_t now = uv_now(kt_loop(h->t));
	ka->expires_at = now + LEASE_FIRST_DEADLINE_MS;
	if (!h->s) {
		h->s = kt_stream_open(h->t, LEASE_PATH("LeaseKeepAlive"), &lease_stream_ops, h);
		if (h->s)
			hublatch_closing(&h->latch);    /* on_closed will come */
	} else {
		ka_send(h, ka);
	}
	ka_arm(ka, now);
}

/* I/O thread: a stopped keep-alive leaves the hub (unless keel_close already took it). */
static void ka_remove(void *arg)
{
	keel_keepalive_t *ka = arg;
	keel_lease_hub_t *h = ka->hub;
	if (!ka->linked)
		return;
	ka_unlink(h, ka);
	hublatch_closing(&h->latch);
	uv_close((uv_handle_t *)&ka->timer, ka_on_timer_closed);
}

static keel_lease_hub_t *lease_hub_get(keel_t *k)
{
	keel_lease_hub_t *h = __atomic_load_n(&k->leases, __ATOMIC_ACQUIRE);
	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->t = k->t;
	hublatch_init(&h->latch);
	keel_lease_hub_t *expected = NULL;
	if (!__atomic_compare_exchange_n(&k->leases, &expected, h, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		hublatch_destroy(&h->latch);
		free(h);
		return expected;
	}
	return h;
}

int keel_lease_keepalive(keel_t *k, int64_t id, keel_keepalive_fn fn, void *ud,
			 keel_keepalive_t **out, keel_error_t *err)
{
	if (!k || !fn || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "keel_lease_keepalive: missing argument");
	*out = NULL;
	keel_lease_hub_t *h = lease_hub_get(k);
	keel_keepalive_t *ka = h ? calloc(1, sizeof(*ka)) : NULL;
	if (!ka)
		return conv_oom(err);
	ka->id = id;
	ka->fn = fn;
	ka->ud = ud;
	ka->hub = h;
	ka->refs = 2;                /* the user's handle and the I/O thread's timer */
	cbgate_init(&ka->gate);
	if (kt_post(k->t, ka_add, ka) != 0) {
		cbgate_destroy(&ka->gate);
		free(ka);
		return keel_error_set(err, KEEL_CODE_CANCELLED, "keel: handle closed");
	}
	*out = ka;
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

void keel_keepalive_stop(keel_keepalive_t *ka)
{
	if (!ka)
		return;
	/* The I/O side's reference goes with its timer (keel_close may have closed it). */
	if (!cbgate_stop(&ka->gate))
		kt_post(ka->hub->t, ka_remove, ka);
	ka_unref(ka);
}

/* I/O thread, from keel_lease_hub_free: detach every keep-alive, close the stream. */
static void lease_hub_shutdown(void *arg)
{
	keel_lease_hub_t *h = arg;
	while (h->head) {
		keel_keepalive_t *ka = h->head;
		cbgate_detach(&ka->gate);
		ka_remove(ka);
	}
	if (h->s)
		kt_stream_close(h->s);
	hublatch_shut(&h->latch);
}

void keel_lease_hub_free(keel_lease_hub_t *h)
{
	if (!h)
		return;
	if (kt_post(h->t, lease_hub_shutdown, h) == 0)
		hublatch_wait(&h->latch);
	hublatch_destroy(&h->latch);
	free(h);
}
