/* client/transport.c — libkeel's gRPC client: one I/O thread running its own libuv loop
 * with nghttp2 client sessions to the endpoints, unary and server-streaming calls with
 * deadlines and failover, long-lived streams that reopen, and ordered dispatch of the
 * owners' callbacks. Never blocks the I/O loop; never frees an object that an nghttp2 or
 * libuv callback still on the stack can reach (frees come from close callbacks or later).
 *
 * Choices worth knowing (the header states the contract):
 * - Every endpoint has at most one usable connection; calls without an endpoint go to the
 *   pinned one (t->pin), which moves round-robin when its connection fails, gets a GOAWAY,
 *   or answers Unavailable to an idempotent call. Connections are dialed on first use.
 * - A failed attempt is retried on the pinned endpoint when the request never left this
 *   process (dial failure, refused stream, connection lost before END_STREAM was written)
 *   or when the call is idempotent and the failure is Unavailable. After each full round
 *   of the endpoints a call waits 50 ms, doubling to 1 s. A call with no deadline stops
 *   after one full round: Unavailable, "all endpoints unreachable: <last error>" (or the
 *   server's own Unavailable status, unchanged). With a deadline it tries until then.
 *   A call to an explicit endpoint is never moved elsewhere: it fails at once.
 * - A connection is usable as soon as TCP connects (requests are queued behind the
 *   preface). HTTP/2 PINGs are sent only while the connection has calls or streams (etcd's
 *   servers count pings on an idle connection as abuse); any bytes read count as liveness.
 * - kt_stream_*: on_broken is called only for a stream that was open (on_open delivered);
 *   a stream whose connection cannot be made is retried quietly with its backoff.
 *   kt_stream_close sends what was queued, ends our side, then cancels (RST_STREAM CANCEL)
 *   so the server stops sending; on_closed is posted (runs from the I/O loop soon).
 * - User-loop dispatch: kt_new must run on the thread of that loop (uv_async_init is not
 *   thread-safe), and kt_free must too, once nothing else uses the handle: it runs the
 *   functions still queued itself and closes the async handle, whose memory is released
 *   when the loop next runs (run it once more before uv_loop_close). */
#include "transport.h"

#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define KT_READ_BUF (64 * 1024)
#define KT_WRITE_CHUNK (64 * 1024)
/* Stop pulling frames out of nghttp2 while this much waits for the socket. */
#define KT_WRITE_HIGH (1024 * 1024)
#define KT_STREAM_WINDOW (8 << 20)
#define KT_CONN_WINDOW (16 << 20)
#define KT_MAX_MSG (64u << 20)         /* largest request */
/* Largest answer: etcd's clients accept up to 2 GiB - 1 (clientv3's receive default), and a
 * range of millions of keys needs it. A message's buffer grows as its bytes arrive, so an
 * announced length alone reserves at most KT_RECV_FIRST. */
#define KT_MAX_RECV_MSG 0x7fffffffu
#define KT_RECV_FIRST ((size_t)1 << 20)
/* kt_stream_send refuses to queue more than this on one stream. */
#define KT_MAX_PENDING (64u << 20)
#define KT_BACKOFF_MIN_MS 50
#define KT_BACKOFF_MAX_MS 1000
#define KT_DEFAULT_PORT "2379"
#define KT_CLOSING_MSG "grpc: the client connection is closing"

typedef struct kt_link {
	struct kt_link *prev, *next;
} kt_link_t;

#define KT_OWNER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void link_init(kt_link_t *l)
{
	l->prev = l->next = l;
}

static bool link_empty(const kt_link_t *l)
{
	return l->next == l;
}

static void link_push(kt_link_t *head, kt_link_t *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void link_remove(kt_link_t *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

static kt_link_t *link_pop(kt_link_t *head)
{
	if (link_empty(head))
		return NULL;
	kt_link_t *l = head->next;
	link_remove(l);
	return l;
}

/* Moves every element of from to the end of to. */
static void link_splice(kt_link_t *to, kt_link_t *from)
{
	kt_link_t *l;
	while ((l = link_pop(from)))
		link_push(to, l);
}

typedef struct kt_op {
	kt_link_t link;
	void (*fn)(void *arg);
	void *arg;
	bool owned; /* malloc'ed by kt_post: freed once taken */
} kt_op_t;

typedef struct kt_ep {
	char *name;      /* as given */
	char *host;      /* without the brackets of an IPv6 literal */
	char *port;
	char *authority; /* host:port, for :authority and messages */
	int index;       /* in the list, -1 for an explicitly addressed extra */
	struct kt_conn *conn; /* the connection new calls use, or NULL */
	kt_link_t link;  /* t->extra_eps */
} kt_ep_t;

enum { H2S_NONE, H2S_WAITING, H2S_ACTIVE };

/* One HTTP/2 stream's worth of state, shared by calls and streams. nghttp2 reaches it
 * only through the stream's user data, cleared when it is detached. */
typedef struct kt_h2s {
	bool is_stream;
	int where;               /* H2S_* */
	struct kt_conn *conn;    /* while WAITING or ACTIVE */
	int32_t id;
	kt_link_t link;          /* conn->waiting or conn->active */
	bool hdr_sent, end_sent; /* end_sent: the request is out of this process */
	bool remote_end;         /* the server's END_STREAM arrived */
	uint8_t pre[5];
	size_t pre_have;
	uint8_t *msg;
	size_t msg_len, msg_have, msg_cap;
	bool in_msg;
	int http_status;
	int grpc_status;         /* -1 until received */
	char *grpc_message;      /* percent-decoded */
} kt_h2s_t;

enum { CONN_DIALING, CONN_READY, CONN_DEAD };

typedef struct kt_conn {
	kt_t *t;
	kt_ep_t *ep;
	bool current;            /* ep->conn == this */
	int state;
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} io;
	bool io_open, dial_started, gai_busy;
	uv_connect_t creq;
	uv_getaddrinfo_t gai;
	struct addrinfo *ai, *ai_next;
	char dial_err[200];
	uv_timer_t dial_timer, ka_timer;
	int refs;                /* libuv handles and requests not yet given back */
	nghttp2_session *h2;
	kt_link_t waiting, active, dirty, all;
	size_t write_queued;
	bool ping_out;
	uint64_t last_read;
	char *rbuf;
} kt_conn_t;

typedef struct kt_wreq {
	uv_write_t req;
	kt_conn_t *c;
	size_t len;
	uint8_t data[];
} kt_wreq_t;

typedef struct kt_call {
	kt_h2s_t h;
	kt_op_t op;
	kt_t *t;
	kt_link_t link;          /* t->calls while the I/O thread has it */
	const char *path;
	const char *endpoint;    /* the caller's, valid while it waits */
	kt_ep_t *fixed;
	const uint8_t *req;
	size_t req_len, tx_off;
	uint8_t pre[5];
	uint64_t deadline;       /* uv_hrtime() ns; 0 = none */
	bool idempotent;
	int (*on_msg)(void *ud, const uint8_t *msg, size_t len);
	void *ud;
	kt_ep_t *ep;             /* of the current attempt */
	int tries;               /* failed attempts */
	uv_timer_t deadline_timer, retry_timer;
	int open_handles;
	bool finished;
	int code;
	char msg[512];
	uint8_t *resp;
	size_t resp_len;
	int nmsgs;
	uv_sem_t sem;
} kt_call_t;

struct kt_stream {
	kt_h2s_t h;
	kt_t *t;
	char *path;
	kt_stream_ops_t ops;
	void *ud;
	kt_link_t link;          /* t->streams */
	bool open;               /* on_open delivered for the current HTTP/2 stream */
	bool closed, closed_told, timer_closed;
	uint8_t *obuf;
	size_t olen, ooff, ocap;
	bool deferred, eof;
	uv_timer_t retry;
	int backoff_ms;
};

typedef struct kt_ditem {
	kt_link_t link;
	void (*fn)(void *arg);
	void *arg;
} kt_ditem_t;

struct kt {
	kt_ep_t *eps;
	size_t n_eps;
	kt_link_t extra_eps;
	size_t pin;
	int dial_timeout_ms, call_timeout_ms, ka_time_ms, ka_timeout_ms;
	kt_dial_fn dial;
	void *dial_arg;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;

	uv_loop_t loop;
	uv_thread_t io_thread, io_tid;
	uv_async_t wake;
	uv_prepare_t prep;
	uv_sem_t started;
	uv_mutex_t mu;           /* ops, wake_closed */
	kt_link_t ops;
	bool wake_closed;
	kt_op_t stop_op;

	/* I/O thread only. */
	bool shutting;
	kt_link_t conns, dirty, streams, calls;

	/* Dispatch. */
	uv_loop_t *user_loop;
	uv_async_t *uasync;
	uv_thread_t d_thread, d_tid;
	uv_mutex_t dmu;
	uv_cond_t dwork, ddone;
	kt_link_t dq;
	uint64_t d_posted, d_done;
	bool d_stop, d_closed;
};

static void conn_fail(kt_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void call_finish(kt_call_t *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void call_start(kt_call_t *call);
static void stream_schedule(kt_stream_t *s);
static void stream_try_free(kt_stream_t *s);
static void h2s_go(kt_conn_t *c, kt_h2s_t *h);

/* ---- small helpers ----------------------------------------------------------------- */

static kt_call_t *call_of(kt_h2s_t *h)
{
	return KT_OWNER(h, kt_call_t, h);
}

static kt_stream_t *stream_of(kt_h2s_t *h)
{
	return KT_OWNER(h, kt_stream_t, h);
}

static nghttp2_nv nv_make(const char *name, const char *value)
{
	nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			 NGHTTP2_NV_FLAG_NONE};
	return nv;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int hex_val(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* grpc-message is percent-encoded; a malformed escape stays as it came. */
static char *pct_decode(const uint8_t *v, size_t n)
{
	char *o = malloc(n + 1);
	size_t j = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (v[i] == '%' && i + 2 < n && (hi = hex_val(v[i + 1])) >= 0 &&
		    (lo = hex_val(v[i + 2])) >= 0) {
			o[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			o[j++] = (char)v[i];
		}
	}
	o[j] = '\0';
	return o;
}

static int backoff_next(int ms)
{
	return ms * 2 > KT_BACKOFF_MAX_MS ? KT_BACKOFF_MAX_MS : ms * 2;
}

/* The gRPC status of a response whose :status was not 200 (gRPC's HTTP mapping). */
static int http_to_grpc(int hs)
{
	switch (hs) {
	case 400:
		return KEEL_CODE_INTERNAL;
	case 401:
		return KEEL_CODE_UNAUTHENTICATED;
	case 403:
		return KEEL_CODE_PERMISSION_DENIED;
	case 404:
		return KEEL_CODE_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return KEEL_CODE_UNAVAILABLE;
	default:
		return KEEL_CODE_UNKNOWN;
	}
}

static int rst_to_grpc(uint32_t e)
{
	switch (e) {
	case NGHTTP2_REFUSED_STREAM:
		return KEEL_CODE_UNAVAILABLE;
	case NGHTTP2_CANCEL:
		return KEEL_CODE_CANCELLED;
	case NGHTTP2_ENHANCE_YOUR_CALM:
		return KEEL_CODE_RESOURCE_EXHAUSTED;
	case NGHTTP2_INADEQUATE_SECURITY:
		return KEEL_CODE_PERMISSION_DENIED;
	default:
		return KEEL_CODE_INTERNAL;
	}
}

/* ---- endpoints --------------------------------------------------------------------- */

static void ep_clear(kt_ep_t *ep)
{
	free(ep->name);
	free(ep->host);
	free(ep->port);
	free(ep->authority);
}

/* "host:port", "http://host:port", "[v6]:port"; the port defaults to etcd's 2379. */
static int ep_parse(kt_ep_t *ep, const char *s, char *err, size_t errlen)
{
	const char *p = s, *host, *hend, *port = NULL;
	memset(ep, 0, sizeof *ep);
	link_init(&ep->link);
	if (strncmp(p, "http://", 7) == 0) {
		p += 7;
	} else if (strstr(p, "://")) {
		snprintf(err, errlen, "keel: endpoint %s: only http:// is supported", s);
		return -1;
	}
	size_t n = strcspn(p, "/");
	if (p[0] == '[') {
		host = p + 1;
		hend = memchr(p, ']', n);
		if (!hend) {
			snprintf(err, errlen, "keel: endpoint %s: missing ']'", s);
			return -1;
		}
		if (hend + 1 < p + n) {
			if (hend[1] != ':') {
				snprintf(err, errlen, "keel: endpoint %s: bad port", s);
				return -1;
			}
			port = hend + 2;
		}
	} else {
		host = p;
		const char *colon = memchr(p, ':', n);
		hend = colon ? colon : p + n;
		if (colon)
			port = colon + 1;
	}
	size_t plen = port ? (size_t)(p + n - port) : 0;
	char pbuf[8];
	if (!port) {
		snprintf(pbuf, sizeof pbuf, "%s", KT_DEFAULT_PORT);
	} else {
		long v = 0;
		if (plen == 0 || plen > 5) {
			snprintf(err, errlen, "keel: endpoint %s: bad port", s);
			return -1;
		}
		for (size_t i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9') {
				snprintf(err, errlen, "keel: endpoint %s: bad port", s);
				return -1;
			}
			v = v * 10 + (port[i] - '0');
		}
		if (v < 1 || v > 65535) {
			snprintf(err, errlen, "keel: endpoint %s: bad port", s);
			return -1;
		}
		snprintf(pbuf, sizeof pbuf, "%ld", v);
	}
	if (hend == host) {
		snprintf(err, errlen, "keel: endpoint %s: no host", s);
		return -1;
	}
	ep->name = strdup(s);
	ep->host = strndup(host, (size_t)(hend - host));
	ep->port = strdup(pbuf);
	bool v6 = memchr(ep->host ? ep->host : "", ':', ep->host ? strlen(ep->host) : 0) != NULL;
	size_t alen = strlen(ep->host ? ep->host : "") + strlen(pbuf) + 4;
	ep->authority = malloc(alen);
	if (!ep->name || !ep->host || !ep->port || !ep->authority) {
		ep_clear(ep);
		snprintf(err, errlen, "keel: out of memory");
		return -1;
	}
	snprintf(ep->authority, alen, v6 ? "[%s]:%s" : "%s:%s", ep->host, pbuf);
	return 0;
}

/* The endpoint a call names explicitly: one of the list if it is the same host and port,
 * otherwise a cached extra one (kept until kt_free). */
static kt_ep_t *ep_lookup(kt_t *t, const char *name, char *err, size_t errlen)
{
	kt_ep_t probe;
	if (ep_parse(&probe, name, err, errlen) != 0)
		return NULL;
	kt_ep_t *found = NULL;
	for (size_t i = 0; i < t->n_eps && !found; i++)
		if (strcmp(t->eps[i].authority, probe.authority) == 0)
			found = &t->eps[i];
	for (kt_link_t *l = t->extra_eps.next; l != &t->extra_eps && !found; l = l->next) {
		kt_ep_t *e = KT_OWNER(l, kt_ep_t, link);
		if (strcmp(e->authority, probe.authority) == 0)
			found = e;
	}
	if (found) {
		ep_clear(&probe);
		return found;
	}
	kt_ep_t *e = malloc(sizeof *e);
	if (!e) {
		ep_clear(&probe);
		snprintf(err, errlen, "keel: out of memory");
		return NULL;
	}
	*e = probe;
	e->index = -1;
	link_init(&e->link);
	link_push(&t->extra_eps, &e->link);
	return e;
}

/* ---- HTTP/2 streams (shared by calls and streams) ---------------------------------- */

static void h2s_reset_rx(kt_h2s_t *h)
{
	free(h->msg);
	free(h->grpc_message);
	h->msg = NULL;
	h->grpc_message = NULL;
	h->msg_len = h->msg_have = h->pre_have = 0;
	h->in_msg = false;
	h->http_status = 0;
	h->grpc_status = -1;
	h->hdr_sent = h->end_sent = h->remote_end = false;
}

/* Forgets the HTTP/2 stream: nghttp2 no longer reaches h. */
static void h2s_detach(kt_h2s_t *h)
{
	if (h->where == H2S_NONE)
		return;
	link_remove(&h->link);
	if (h->where == H2S_ACTIVE && h->conn->h2)
		nghttp2_session_set_stream_user_data(h->conn->h2, h->id, NULL);
	h->where = H2S_NONE;
	h->conn = NULL;
	h->id = 0;
}

/* Detaches h and resets its HTTP/2 stream if either side of it is still open. A stream
 * that ended normally is never reset: servers count resets (HTTP/2 rapid-reset defences
 * answer too many with GOAWAY). */
static void h2s_cancel(kt_h2s_t *h, uint32_t error_code)
{
	if (h->where == H2S_ACTIVE && h->conn->state == CONN_READY) {
		kt_conn_t *c = h->conn;
		nghttp2_stream *st = nghttp2_session_find_stream(c->h2, h->id);
		bool open = st ? (nghttp2_session_get_stream_local_close(c->h2, h->id) == 0 ||
				  (!h->remote_end &&
				   nghttp2_session_get_stream_remote_close(c->h2, h->id) == 0))
			       : !h->hdr_sent; /* HEADERS still queued: the reset cancels them */
		if (open)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, h->id, error_code);
		if (link_empty(&c->dirty))
			link_push(&c->t->dirty, &c->dirty);
	}
	h2s_detach(h);
}

/* The status of a stream the server ended. */
static void h2s_status(const kt_h2s_t *h, int *code, char *msg, size_t len)
{
	if (h->http_status == 0) {
		*code = KEEL_CODE_INTERNAL;
		snprintf(msg, len, "malformed header: missing HTTP status");
	} else if (h->http_status != 200) {
		*code = http_to_grpc(h->http_status);
		snprintf(msg, len, "unexpected HTTP status code received from server: %d",
			 h->http_status);
	} else if (h->grpc_status < 0) {
		*code = KEEL_CODE_INTERNAL;
		snprintf(msg, len, "server closed the stream without sending trailers");
	} else if (h->grpc_status == 0 && (h->in_msg || h->pre_have)) {
		*code = KEEL_CODE_INTERNAL;
		snprintf(msg, len, "server ended the stream inside a message");
	} else {
		*code = h->grpc_status;
		snprintf(msg, len, "%s", h->grpc_message ? h->grpc_message : "");
	}
}

static ssize_t h2s_read_data(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
			     uint32_t *flags, nghttp2_data_source *src, void *user_data)
{
	kt_h2s_t *h = nghttp2_session_get_stream_user_data(h2, id);
	(void)src;
	(void)user_data;
	if (!h)
		return NGHTTP2_ERR_DEFERRED; /* detached: a reset is on its way */
	if (!h->is_stream) {
		kt_call_t *call = call_of(h);
		size_t total = 5 + call->req_len, n = 0;
		while (n < length && call->tx_off < total) {
			size_t k;
			if (call->tx_off < 5) {
				k = 5 - call->tx_off < length - n ? 5 - call->tx_off : length - n;
				memcpy(buf + n, call->pre + call->tx_off, k);
			} else {
				size_t off = call->tx_off - 5;
				size_t left = call->req_len - off;
				k = left < length - n ? left : length - n;
				memcpy(buf + n, call->req + off, k);
			}
			n += k;
			call->tx_off += k;
		}
		if (call->tx_off == total)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	kt_stream_t *s = stream_of(h);
	size_t avail = s->olen - s->ooff, n = avail < length ? avail : length;
	if (n == 0) {
		if (s->eof) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	memcpy(buf, s->obuf + s->ooff, n);
	s->ooff += n;
	if (s->ooff == s->olen) {
		s->ooff = s->olen = 0;
		if (s->eof)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

/* Sends h's request HEADERS on c; the body follows through h2s_read_data. */
static int h2s_submit(kt_conn_t *c, kt_h2s_t *h)
{
	const char *path;
	char tmo[32];
	nghttp2_nv nv[8];
	size_t n = 0;
	if (h->is_stream) {
		path = stream_of(h)->path;
		tmo[0] = '\0';
	} else {
		kt_call_t *call = call_of(h);
		path = call->path;
		tmo[0] = '\0';
		if (call->deadline) {
			uint64_t now = uv_hrtime();
			uint64_t ms = 1;
			if (call->deadline > now)
				ms = (call->deadline - now + 999999) / 1000000;
			if (ms < 100000000)
				snprintf(tmo, sizeof tmo, "%" PRIu64 "m", ms);
			else
				snprintf(tmo, sizeof tmo, "%" PRIu64 "S", ms / 1000 + 1);
		}
		call->tx_off = 0;
		call->nmsgs = 0;
	}
	nv[n++] = nv_make(":method", "POST");
	nv[n++] = nv_make(":scheme", "http");
	nv[n++] = nv_make(":path", path);
	nv[n++] = nv_make(":authority", c->ep->authority);
	nv[n++] = nv_make("content-type", "application/grpc");
	nv[n++] = nv_make("te", "trailers");
	nv[n++] = nv_make("user-agent", "keel/0.1");
	if (tmo[0])
		nv[n++] = nv_make("grpc-timeout", tmo);
	nghttp2_data_provider dp = {.source.ptr = h, .read_callback = h2s_read_data};
	h2s_reset_rx(h);
	int32_t id = nghttp2_submit_request(c->h2, NULL, nv, n, &dp, h);
	if (id < 0)
		return id;
	h->where = H2S_ACTIVE;
	h->conn = c;
	h->id = id;
	link_push(&c->active, &h->link);
	if (link_empty(&c->dirty))
		link_push(&c->t->dirty, &c->dirty);
	return 0;
}

/* ---- calls ------------------------------------------------------------------------- */

static void call_on_handle_closed(uv_handle_t *hd)
{
	kt_call_t *call = hd->data;
	if (--call->open_handles == 0)
		uv_sem_post(&call->sem); /* the caller owns the call from here */
}

static void call_finish(kt_call_t *call, int code, const char *fmt, ...)
{
	if (call->finished)
		return;
	call->finished = true;
	h2s_cancel(&call->h, NGHTTP2_CANCEL);
	h2s_reset_rx(&call->h);
	call->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call->msg, sizeof call->msg, fmt, ap);
	va_end(ap);
	if (code != KEEL_CODE_OK) {
		free(call->resp);
		call->resp = NULL;
		call->resp_len = 0;
	}
	link_remove(&call->link);
	uv_close((uv_handle_t *)&call->deadline_timer, call_on_handle_closed);
	uv_close((uv_handle_t *)&call->retry_timer, call_on_handle_closed);
}

static void call_on_retry_timer(uv_timer_t *tm)
{
	call_start(tm->data);
}

/* One attempt failed with code/msg; local: the request never reached a server (a dial
 * failure or the like), which is what "all endpoints unreachable" then says. */
static void call_retry(kt_call_t *call, int code, const char *msg, bool local)
{
	kt_t *t = call->t;
	h2s_cancel(&call->h, NGHTTP2_CANCEL);
	h2s_reset_rx(&call->h);
	free(call->resp);
	call->resp = NULL;
	call->resp_len = 0;
	if (t->shutting) {
		call_finish(call, KEEL_CODE_CANCELLED, KT_CLOSING_MSG);
		return;
	}
	if (call->fixed) {
		call_finish(call, code, "%s", msg);
		return;
	}
	call->tries++;
	if (call->ep && call->ep->index >= 0 && t->pin == (size_t)call->ep->index)
		t->pin = (t->pin + 1) % t->n_eps;
	if (!call->deadline && call->tries >= (int)t->n_eps) {
		if (local)
			call_finish(call, code, "all endpoints unreachable: %s", msg);
		else
			call_finish(call, code, "%s", msg);
		return;
	}
	uint64_t delay = 0;
	if (call->tries % (int)t->n_eps == 0) {
		int rounds = call->tries / (int)t->n_eps, ms = KT_BACKOFF_MIN_MS;
		for (int i = 1; i < rounds && ms < KT_BACKOFF_MAX_MS; i++)
			ms = backoff_next(ms);
		delay = (uint64_t)ms;
	}
	uv_timer_start(&call->retry_timer, call_on_retry_timer, delay, 0);
}

static void call_on_deadline(uv_timer_t *tm)
{
	call_finish(tm->data, KEEL_CODE_DEADLINE_EXCEEDED, "context deadline exceeded");
}

static kt_conn_t *conn_get(kt_t *t, kt_ep_t *ep);

static void call_start(kt_call_t *call)
{
	kt_t *t = call->t;
	if (call->finished)
		return;
	if (t->shutting) {
		call_finish(call, KEEL_CODE_CANCELLED, KT_CLOSING_MSG);
		return;
	}
	kt_ep_t *ep = call->fixed ? call->fixed : &t->eps[t->pin];
	kt_conn_t *c = conn_get(t, ep);
	if (!c) {
		call_finish(call, KEEL_CODE_LOCAL, "keel: out of memory");
		return;
	}
	call->ep = ep;
	h2s_go(c, &call->h);
}

/* The first step of a call on the I/O thread. */
static void call_begin(void *arg)
{
	kt_call_t *call = arg;
	kt_t *t = call->t;
	link_push(&t->calls, &call->link);
	uv_timer_init(&t->loop, &call->deadline_timer);
	uv_timer_init(&t->loop, &call->retry_timer);
	call->deadline_timer.data = call->retry_timer.data = call;
	call->open_handles = 2;
	if (t->shutting) {
		call_finish(call, KEEL_CODE_CANCELLED, KT_CLOSING_MSG);
		return;
	}
	if (call->endpoint) {
		char err[256];
		call->fixed = ep_lookup(t, call->endpoint, err, sizeof err);
		if (!call->fixed) {
			call_finish(call, KEEL_CODE_INVALID_ARGUMENT, "%s", err);
			return;
		}
	}
	if (call->deadline) {
		uint64_t now = uv_hrtime();
		if (now >= call->deadline) {
			call_finish(call, KEEL_CODE_DEADLINE_EXCEEDED, "context deadline exceeded");
			return;
		}
		uint64_t ms = (call->deadline - now + 999999) / 1000000;
		uv_update_time(&t->loop);
		uv_timer_start(&call->deadline_timer, call_on_deadline, ms, 0);
	}
	call_start(call);
}

/* The server ended the call's stream. */
static void call_on_end(kt_call_t *call, int code, const char *msg)
{
	if (code == KEEL_CODE_OK && !call->on_msg && call->nmsgs != 1) {
		call_finish(call, KEEL_CODE_INTERNAL,
			    "grpc: unary response carried %d messages, want exactly 1",
			    call->nmsgs);
		return;
	}
	if (code == KEEL_CODE_UNAVAILABLE && call->idempotent && call->nmsgs == 0) {
		call_retry(call, code, msg, false);
		return;
	}
	call_finish(call, code, "%s", msg);
}

/* The call's connection is gone. */
static void call_on_conn_lost(kt_call_t *call, const char *msg)
{
	bool left = call->h.end_sent;
	if (!left || (call->idempotent && call->nmsgs == 0))
		call_retry(call, KEEL_CODE_UNAVAILABLE, msg, !left);
	else
		call_finish(call, KEEL_CODE_UNAVAILABLE, "%s", msg);
}

static void call_deliver(kt_call_t *call, uint8_t *m, size_t len)
{
	call->nmsgs++;
	if (call->on_msg) {
		int rc = call->on_msg(call->ud, m, len);
		free(m);
		if (rc != 0)
			call_finish(call, KEEL_CODE_CANCELLED, "context canceled");
		return;
	}
	if (call->nmsgs > 1) {
		free(m);
		call_finish(call, KEEL_CODE_INTERNAL,
			    "grpc: unary response carried more than one message");
		return;
	}
	call->resp = m;
	call->resp_len = len;
}

/* ---- streams ----------------------------------------------------------------------- */

static void stream_on_timer_closed(uv_handle_t *hd)
{
	kt_stream_t *s = hd->data;
	s->timer_closed = true;
	stream_try_free(s);
}

static void stream_try_free(kt_stream_t *s)
{
	if (!s->closed || !s->closed_told || !s->timer_closed || s->h.where != H2S_NONE)
		return;
	link_remove(&s->link);
	h2s_reset_rx(&s->h);
	free(s->obuf);
	free(s->path);
	free(s);
}

static void stream_notify_closed(void *arg)
{
	kt_stream_t *s = arg;
	s->closed_told = true;
	if (s->ops.on_closed)
		s->ops.on_closed(s->ud);
	stream_try_free(s);
}

static void stream_opened(kt_stream_t *s)
{
	s->open = true;
	s->olen = s->ooff = 0;
	s->deferred = s->eof = false;
	if (s->ops.on_open)
		s->ops.on_open(s->ud, s);
}

static void stream_on_retry(uv_timer_t *tm)
{
	kt_stream_t *s = tm->data;
	kt_t *t = s->t;
	if (s->closed || t->shutting || s->h.where != H2S_NONE)
		return;
	kt_conn_t *c = conn_get(t, &t->eps[t->pin]);
	if (!c) {
		stream_schedule(s);
		return;
	}
	h2s_go(c, &s->h);
}

static void stream_schedule(kt_stream_t *s)
{
	if (s->closed || s->t->shutting)
		return;
	int ms = s->backoff_ms;
	s->backoff_ms = backoff_next(ms);
	uv_timer_start(&s->retry, stream_on_retry, (uint64_t)ms, 0);
}

/* The stream's HTTP/2 stream ended or its connection failed: tell the owner if it was
 * open, then reopen after the backoff. */
static void stream_broken(kt_stream_t *s, int code, const char *msg)
{
	h2s_cancel(&s->h, NGHTTP2_CANCEL);
	h2s_reset_rx(&s->h);
	bool was_open = s->open;
	s->open = false;
	s->olen = s->ooff = 0;
	if (s->closed) {
		stream_try_free(s);
		return;
	}
	if (was_open && s->ops.on_broken)
		s->ops.on_broken(s->ud, s, code, msg);
	stream_schedule(s);
}

static void stream_deliver(kt_stream_t *s, uint8_t *m, size_t len)
{
	if (!s->closed) {
		s->backoff_ms = KT_BACKOFF_MIN_MS;
		if (s->ops.on_message)
			s->ops.on_message(s->ud, s, m, len);
	}
	free(m);
}

/* Ends the stream for its owner; on_closed runs now (direct) or from the loop. */
static void stream_close(kt_stream_t *s, bool direct)
{
	kt_t *t = s->t;
	if (s->closed)
		return;
	s->closed = true;
	s->open = false;
	uv_timer_stop(&s->retry);
	if (s->h.where == H2S_ACTIVE && s->olen > s->ooff && s->h.conn->state == CONN_READY &&
	    !t->shutting) {
		kt_conn_t *c = s->h.conn;
		s->eof = true;
		if (s->deferred) {
			s->deferred = false;
			nghttp2_session_resume_data(c->h2, s->h.id);
		}
		if (link_empty(&c->dirty))
			link_push(&t->dirty, &c->dirty);
	} else {
		h2s_cancel(&s->h, NGHTTP2_CANCEL);
	}
	uv_close((uv_handle_t *)&s->retry, stream_on_timer_closed);
	if (direct || kt_post(t, stream_notify_closed, s) != 0)
		stream_notify_closed(s);
}

/* ---- connections ------------------------------------------------------------------- */

static void conn_mark_dirty(kt_conn_t *c)
{
	if (c->state != CONN_DEAD && link_empty(&c->dirty))
		link_push(&c->t->dirty, &c->dirty);
}

static void conn_maybe_free(kt_conn_t *c)
{
	if (c->state != CONN_DEAD || c->refs > 0)
		return;
	link_remove(&c->all);
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->ai)
		uv_freeaddrinfo(c->ai);
	free(c->rbuf);
	free(c);
}

static void conn_on_handle_closed(uv_handle_t *hd)
{
	kt_conn_t *c = hd->data;
	c->refs--;
	conn_maybe_free(c);
}

/* Not the endpoint's connection for new calls any more; the pin moves on. */
static void conn_retire(kt_conn_t *c)
{
	kt_t *t = c->t;
	if (!c->current)
		return;
	c->current = false;
	c->ep->conn = NULL;
	if (c->ep->index >= 0 && t->pin == (size_t)c->ep->index)
		t->pin = (t->pin + 1) % t->n_eps;
}

static void conn_fail(kt_conn_t *c, const char *fmt, ...)
{
	if (c->state == CONN_DEAD)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->state = CONN_DEAD;
	conn_retire(c);
	link_remove(&c->dirty);
	uv_close((uv_handle_t *)&c->dial_timer, conn_on_handle_closed);
	uv_close((uv_handle_t *)&c->ka_timer, conn_on_handle_closed);
	if (c->io_open) {
		c->io_open = false;
		uv_close(&c->io.h, conn_on_handle_closed);
	}
	if (c->gai_busy)
		uv_cancel((uv_req_t *)&c->gai); /* its callback still comes, with ECANCELED */
	kt_link_t lost;
	link_init(&lost);
	link_splice(&lost, &c->waiting);
	link_splice(&lost, &c->active);
	for (kt_link_t *l = lost.next; l != &lost; l = l->next) {
		kt_h2s_t *h = KT_OWNER(l, kt_h2s_t, link);
		if (h->where == H2S_ACTIVE && c->h2)
			nghttp2_session_set_stream_user_data(c->h2, h->id, NULL);
		h->where = H2S_WAITING; /* still linked, on lost */
	}
	kt_link_t *l;
	while ((l = link_pop(&lost))) {
		kt_h2s_t *h = KT_OWNER(l, kt_h2s_t, link);
		h->where = H2S_NONE;
		h->conn = NULL;
		h->id = 0;
		if (h->is_stream)
			stream_broken(stream_of(h), KEEL_CODE_UNAVAILABLE, msg);
		else
			call_on_conn_lost(call_of(h), msg);
	}
	conn_maybe_free(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
	kt_wreq_t *w = (kt_wreq_t *)req;
	kt_conn_t *c = w->c;
	c->write_queued -= w->len;
	free(w);
	if (c->state != CONN_READY)
		return;
	if (status < 0)
		conn_fail(c, "write tcp %s: %s", c->ep->authority, uv_strerror(status));
	else
		conn_mark_dirty(c);
}

static void conn_flush(kt_conn_t *c)
{
	while (c->state == CONN_READY && c->write_queued < KT_WRITE_HIGH) {
		kt_wreq_t *w = NULL;
		size_t len = 0, cap = 0;
		ssize_t n = 0;
		while (len < KT_WRITE_CHUNK) {
			const uint8_t *d;
			n = nghttp2_session_mem_send(c->h2, &d);
			if (n <= 0 || c->state != CONN_READY)
				break;
			if (len + (size_t)n > cap) {
				size_t ncap = len + (size_t)n > KT_WRITE_CHUNK ? len + (size_t)n
									   : KT_WRITE_CHUNK;
				kt_wreq_t *nw = realloc(w, sizeof *w + ncap);
				if (!nw) {
					n = NGHTTP2_ERR_NOMEM;
					break;
				}
				w = nw;
				cap = ncap;
			}
			memcpy(w->data + len, d, (size_t)n);
			len += (size_t)n;
		}
		if (c->state != CONN_READY) {
			free(w);
			return;
		}
		if (n < 0) {
			free(w);
			conn_fail(c, "connection error: %s", nghttp2_strerror((int)n));
			return;
		}
		if (len == 0) {
			free(w);
			break;
		}
		w->c = c;
		w->len = len;
		uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
		int rc = uv_write(&w->req, &c->io.s, &b, 1, conn_on_write);
		if (rc != 0) {
			free(w);
			conn_fail(c, "write tcp %s: %s", c->ep->authority, uv_strerror(rc));
			return;
		}
		c->write_queued += len;
	}
	if (c->state == CONN_READY && c->write_queued == 0 && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2))
		conn_fail(c, "server closed the connection (GOAWAY)");
}

static void conn_on_keepalive(uv_timer_t *tm)
{
	kt_conn_t *c = tm->data;
	kt_t *t = c->t;
	if (c->state != CONN_READY)
		return;
	if (c->ping_out) {
		conn_fail(c, "keepalive ping failed to receive ACK within timeout");
		return;
	}
	uint64_t idle = uv_now(&t->loop) - c->last_read;
	if (link_empty(&c->active)) {
		uv_timer_start(&c->ka_timer, conn_on_keepalive, (uint64_t)t->ka_time_ms, 0);
		return;
	}
	if (idle < (uint64_t)t->ka_time_ms) {
		uv_timer_start(&c->ka_timer, conn_on_keepalive, (uint64_t)t->ka_time_ms - idle, 0);
		return;
	}
	if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL) != 0) {
		conn_fail(c, "connection error: cannot queue a PING");
		return;
	}
	c->ping_out = true;
	conn_mark_dirty(c);
	uv_timer_start(&c->ka_timer, conn_on_keepalive, (uint64_t)t->ka_timeout_ms, 0);
}

static void conn_on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	kt_conn_t *c = hd->data;
	(void)suggested;
	*buf = uv_buf_init(c->rbuf, KT_READ_BUF);
}

static void conn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	kt_conn_t *c = st->data;
	kt_t *t = c->t;
	if (c->state != CONN_READY || n == 0)
		return;
	if (n < 0) {
		if (n == UV_EOF)
			conn_fail(c, "error reading from server: EOF");
		else
			conn_fail(c, "read tcp %s: %s", c->ep->authority, uv_strerror((int)n));
		return;
	}
	c->last_read = uv_now(&t->loop);
	if (c->ping_out && t->ka_time_ms > 0) {
		c->ping_out = false;
		uv_timer_start(&c->ka_timer, conn_on_keepalive, (uint64_t)t->ka_time_ms, 0);
	}
	ssize_t rv = nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base, (size_t)n);
	if (c->state != CONN_READY)
		return;
	if (rv < 0) {
		conn_fail(c, "connection error: %s", nghttp2_strerror((int)rv));
		return;
	}
	conn_mark_dirty(c);
}

static void conn_on_connected(kt_conn_t *c)
{
	kt_t *t = c->t;
	uv_timer_stop(&c->dial_timer);
	nghttp2_settings_entry iv[2] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, KT_STREAM_WINDOW},
	};
	c->rbuf = malloc(KT_READ_BUF);
	if (!c->rbuf || nghttp2_session_client_new2(&c->h2, t->cbs, c, t->h2opt) != 0) {
		conn_fail(c, "keel: out of memory");
		return;
	}
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, KT_CONN_WINDOW) !=
		    0) {
		conn_fail(c, "keel: cannot set up the HTTP/2 session");
		return;
	}
	c->io.h.data = c;
	int rc = uv_read_start(&c->io.s, conn_on_alloc, conn_on_read);
	if (rc != 0) {
		conn_fail(c, "read tcp %s: %s", c->ep->authority, uv_strerror(rc));
		return;
	}
	c->state = CONN_READY;
	c->last_read = uv_now(&t->loop);
	if (t->ka_time_ms > 0)
		uv_timer_start(&c->ka_timer, conn_on_keepalive, (uint64_t)t->ka_time_ms, 0);
	kt_link_t *l;
	while (c->state == CONN_READY && (l = link_pop(&c->waiting))) {
		kt_h2s_t *h = KT_OWNER(l, kt_h2s_t, link);
		h->where = H2S_NONE;
		h->conn = NULL;
		h2s_go(c, h);
	}
	conn_mark_dirty(c);
}

static void conn_connect_next(kt_conn_t *c);

static void conn_on_io_closed(uv_handle_t *hd)
{
	kt_conn_t *c = hd->data;
	c->refs--;
	if (c->state == CONN_DIALING)
		conn_connect_next(c);
	else
		conn_maybe_free(c);
}

/* One address failed: try the next one the lookup gave, or give up. */
static void conn_dial_failed(kt_conn_t *c, const char *addr, int status)
{
	snprintf(c->dial_err, sizeof c->dial_err, "dial tcp %s: connect: %s", addr,
		 uv_strerror(status));
	if (c->ai_next && c->io_open) {
		c->io_open = false;
		uv_close(&c->io.h, conn_on_io_closed);
		return;
	}
	conn_fail(c, "%s", c->dial_err);
}

static void conn_on_connect(uv_connect_t *req, int status)
{
	kt_conn_t *c = req->data;
	if (c->state != CONN_DIALING)
		return;
	if (status < 0) {
		conn_dial_failed(c, c->ep->authority, status);
		return;
	}
	conn_on_connected(c);
}

static void conn_connect(kt_conn_t *c, const struct sockaddr *sa)
{
	kt_t *t = c->t;
	int rc = uv_tcp_init(&t->loop, &c->io.tcp);
	if (rc != 0) {
		conn_fail(c, "dial tcp %s: %s", c->ep->authority, uv_strerror(rc));
		return;
	}
	c->io.h.data = c;
	c->io_open = true;
	c->refs++;
	uv_tcp_nodelay(&c->io.tcp, 1);
	c->creq.data = c;
	rc = uv_tcp_connect(&c->creq, &c->io.tcp, sa, conn_on_connect);
	if (rc != 0)
		conn_dial_failed(c, c->ep->authority, rc);
}

static void conn_connect_next(kt_conn_t *c)
{
	while (c->ai_next && c->ai_next->ai_family != AF_INET && c->ai_next->ai_family != AF_INET6)
		c->ai_next = c->ai_next->ai_next;
	if (!c->ai_next) {
		conn_fail(c, "%s", c->dial_err[0] ? c->dial_err : "dial tcp: no address");
		return;
	}
	struct addrinfo *ai = c->ai_next;
	c->ai_next = ai->ai_next;
	conn_connect(c, ai->ai_addr);
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	kt_conn_t *c = req->data;
	c->refs--;
	c->gai_busy = false;
	if (c->state != CONN_DIALING) {
		if (res)
			uv_freeaddrinfo(res);
		conn_maybe_free(c);
		return;
	}
	if (status < 0) {
		conn_fail(c, "dial tcp: lookup %s: %s", c->ep->host, uv_strerror(status));
		return;
	}
	c->ai = c->ai_next = res;
	conn_connect_next(c);
}

static void conn_dial_custom(kt_conn_t *c)
{
	kt_t *t = c->t;
	char err[256] = "";
	int fd = t->dial(t->dial_arg, err, sizeof err);
	if (fd < 0) {
		conn_fail(c, "dial: %s", err[0] ? err : "failed");
		return;
	}
	int rc = uv_pipe_init(&t->loop, &c->io.pipe, 0);
	if (rc != 0) {
		close(fd);
		conn_fail(c, "dial: %s", uv_strerror(rc));
		return;
	}
	c->io.h.data = c;
	c->io_open = true;
	c->refs++;
	rc = uv_pipe_open(&c->io.pipe, fd);
	if (rc != 0) {
		close(fd);
		conn_fail(c, "dial: %s", uv_strerror(rc));
		return;
	}
	conn_on_connected(c);
}

/* Dialing starts from the dial timer's first (zero) tick, never inside conn_get, so that
 * a synchronous failure cannot surprise the caller that is attaching to the connection. */
static void conn_on_dial_timer(uv_timer_t *tm)
{
	kt_conn_t *c = tm->data;
	kt_t *t = c->t;
	if (c->state != CONN_DIALING)
		return;
	if (c->dial_started) {
		conn_fail(c, "dial tcp %s: i/o timeout", c->ep->authority);
		return;
	}
	c->dial_started = true;
	if (t->dial_timeout_ms > 0)
		uv_timer_start(&c->dial_timer, conn_on_dial_timer, (uint64_t)t->dial_timeout_ms, 0);
	if (t->dial) {
		conn_dial_custom(c);
		return;
	}
	struct sockaddr_storage ss;
	int port = atoi(c->ep->port);
	if (uv_ip4_addr(c->ep->host, port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(c->ep->host, port, (struct sockaddr_in6 *)&ss) == 0) {
		conn_connect(c, (struct sockaddr *)&ss);
		return;
	}
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	c->gai.data = c;
	c->refs++;
	c->gai_busy = true;
	int rc = uv_getaddrinfo(&t->loop, &c->gai, conn_on_resolved, c->ep->host, c->ep->port,
				&hints);
	if (rc != 0) {
		c->refs--;
		c->gai_busy = false;
		conn_fail(c, "dial tcp: lookup %s: %s", c->ep->host, uv_strerror(rc));
	}
}

static kt_conn_t *conn_get(kt_t *t, kt_ep_t *ep)
{
	if (ep->conn)
		return ep->conn;
	kt_conn_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->t = t;
	c->ep = ep;
	c->state = CONN_DIALING;
	link_init(&c->waiting);
	link_init(&c->active);
	link_init(&c->dirty);
	link_push(&t->conns, &c->all);
	uv_timer_init(&t->loop, &c->dial_timer);
	uv_timer_init(&t->loop, &c->ka_timer);
	c->dial_timer.data = c->ka_timer.data = c;
	c->refs = 2;
	c->current = true;
	ep->conn = c;
	uv_timer_start(&c->dial_timer, conn_on_dial_timer, 0, 0);
	return c;
}

/* Puts h on c: submitted now if c is up, else queued until it is. */
static void h2s_go(kt_conn_t *c, kt_h2s_t *h)
{
	if (c->state == CONN_DIALING) {
		h->where = H2S_WAITING;
		h->conn = c;
		link_push(&c->waiting, &h->link);
		return;
	}
	int rc = h2s_submit(c, h);
	if (rc == 0) {
		if (h->is_stream)
			stream_opened(stream_of(h));
		return;
	}
	/* Out of stream ids (or memory): this connection takes no more requests. */
	conn_retire(c);
	if (h->is_stream)
		stream_schedule(stream_of(h));
	else if (rc == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
		call_start(call_of(h)); /* a fresh connection to the same endpoint */
	else
		call_finish(call_of(h), KEEL_CODE_INTERNAL, "keel: cannot submit: %s",
			    nghttp2_strerror(rc));
}

/* ---- nghttp2 callbacks ------------------------------------------------------------- */

static kt_h2s_t *h2s_find(kt_conn_t *c, int32_t id)
{
	if (id == 0 || c->state != CONN_READY)
		return NULL;
	kt_h2s_t *h = nghttp2_session_get_stream_user_data(c->h2, id);
	return h && h->conn == c && h->where == H2S_ACTIVE ? h : NULL;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *ud)
{
	kt_conn_t *c = ud;
	(void)h2;
	(void)flags;
	if (c->state != CONN_READY)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	kt_h2s_t *h = h2s_find(c, f->hd.stream_id);
	if (!h || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int v = 0;
		for (size_t i = 0; i < valuelen && i < 4; i++)
			v = v * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
		h->http_status = v;
	} else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int v = 0;
		bool ok = valuelen > 0 && valuelen < 6;
		for (size_t i = 0; ok && i < valuelen; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			v = v * 10 + (value[i] - '0');
		}
		h->grpc_status = ok ? v : KEEL_CODE_UNKNOWN;
	} else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		free(h->grpc_message);
		h->grpc_message = pct_decode(value, valuelen);
	}
	return 0;
}

static void h2s_fail(kt_h2s_t *h, int code, const char *msg)
{
	if (h->is_stream)
		stream_broken(stream_of(h), code, msg);
	else
		call_finish(call_of(h), code, "%s", msg);
}

static void h2s_deliver(kt_h2s_t *h, uint8_t *m, size_t len)
{
	if (h->is_stream)
		stream_deliver(stream_of(h), m, len);
	else
		call_deliver(call_of(h), m, len);
}

/* Doubles a message's buffer toward its announced length until need fits. */
static int h2s_grow_msg(kt_h2s_t *h, size_t need)
{
	size_t cap = h->msg_cap;
	while (cap < need)
		cap = cap > h->msg_len / 2 ? h->msg_len : cap * 2;
	uint8_t *m = realloc(h->msg, cap);
	if (!m)
		return -1;
	h->msg = m;
	h->msg_cap = cap;
	return 0;
}

/* gRPC's length-prefixed messages out of DATA bytes. Stops when h is detached or closed
 * by what a delivered message caused. */
static void h2s_feed(kt_conn_t *c, kt_h2s_t *h, const uint8_t *p, size_t n)
{
	while (n > 0 && h->where == H2S_ACTIVE && h->conn == c &&
	       !(h->is_stream && stream_of(h)->closed)) {
		if (!h->in_msg) {
			size_t k = 5 - h->pre_have < n ? 5 - h->pre_have : n;
			memcpy(h->pre + h->pre_have, p, k);
			h->pre_have += k;
			p += k;
			n -= k;
			if (h->pre_have < 5)
				return;
			h->pre_have = 0;
			uint32_t len = get_be32(h->pre + 1);
			if (h->pre[0] & 1) {
				h2s_fail(h, KEEL_CODE_INTERNAL,
					 "grpc: compressed message received, but no "
					 "compression was negotiated");
				return;
			}
			if (len > KT_MAX_RECV_MSG) {
				char msg[128];
				snprintf(msg, sizeof msg,
					 "grpc: received message larger than max (%" PRIu32
					 " vs. %u)",
					 len, KT_MAX_RECV_MSG);
				h2s_fail(h, KEEL_CODE_RESOURCE_EXHAUSTED, msg);
				return;
			}
			h->msg_cap = len < KT_RECV_FIRST ? (len ? len : 1) : KT_RECV_FIRST;
			h->msg = malloc(h->msg_cap);
			if (!h->msg) {
				h2s_fail(h, KEEL_CODE_LOCAL, "keel: out of memory");
				return;
			}
			h->msg_len = len;
			h->msg_have = 0;
			h->in_msg = true;
		}
		size_t k = h->msg_len - h->msg_have < n ? h->msg_len - h->msg_have : n;
		if (h->msg_have + k > h->msg_cap && h2s_grow_msg(h, h->msg_have + k) != 0) {
			h2s_fail(h, KEEL_CODE_LOCAL, "keel: out of memory");
			return;
		}
		memcpy(h->msg + h->msg_have, p, k);
		h->msg_have += k;
		p += k;
		n -= k;
		if (h->msg_have == h->msg_len) {
			uint8_t *m = h->msg;
			h->msg = NULL;
			h->in_msg = false;
			h2s_deliver(h, m, h->msg_len);
		}
	}
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	kt_conn_t *c = ud;
	(void)h2;
	(void)flags;
	if (c->state != CONN_READY)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	kt_h2s_t *h = h2s_find(c, id);
	if (h)
		h2s_feed(c, h, data, len);
	return 0;
}

static void h2s_on_remote_end(kt_h2s_t *h)
{
	int code;
	char msg[512];
	/* nghttp2 marks the stream half-closed only after this callback. */
	h->remote_end = true;
	h2s_status(h, &code, msg, sizeof msg);
	if (h->is_stream)
		stream_broken(stream_of(h), code, msg);
	else
		call_on_end(call_of(h), code, msg);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	kt_conn_t *c = ud;
	(void)h2;
	if (c->state != CONN_READY)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	switch (f->hd.type) {
	case NGHTTP2_PING:
		if (f->hd.flags & NGHTTP2_FLAG_ACK)
			c->ping_out = false;
		break;
	case NGHTTP2_GOAWAY:
			/* Streams above last_stream_id come back as REFUSED_STREAM and are
			 * retried. */
		conn_retire(c);
		break;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
			kt_h2s_t *h = h2s_find(c, f->hd.stream_id);
			if (h)
				h2s_on_remote_end(h);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	kt_conn_t *c = ud;
	(void)h2;
	if (c->state != CONN_READY)
		return 0;
	kt_h2s_t *h = h2s_find(c, f->hd.stream_id);
	if (!h)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS)
		h->hdr_sent = true;
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		h->end_sent = true;
		if (h->is_stream && stream_of(h)->closed) {
			/* kt_stream_close: what was queued is out; now stop the server. */
			h2s_cancel(h, NGHTTP2_CANCEL);
			stream_try_free(stream_of(h));
		}
	}
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *ud)
{
	kt_conn_t *c = ud;
	(void)h2;
	kt_h2s_t *h = h2s_find(c, id);
	if (!h)
		return 0;
	h2s_detach(h);
	char msg[160];
	if (error_code == NGHTTP2_REFUSED_STREAM) {
		/* The server did not process it: safe to try elsewhere. */
		snprintf(msg, sizeof msg, "stream refused by the server");
		if (h->is_stream)
			stream_broken(stream_of(h), KEEL_CODE_UNAVAILABLE, msg);
		else
			call_retry(call_of(h), KEEL_CODE_UNAVAILABLE, msg, true);
		return 0;
	}
	snprintf(msg, sizeof msg, "stream terminated by RST_STREAM with error code: %s",
		 nghttp2_http2_strerror(error_code));
	h2s_fail(h, error_code == NGHTTP2_NO_ERROR ? KEEL_CODE_INTERNAL : rst_to_grpc(error_code),
		 msg);
	return 0;
}

/* ---- the I/O loop ------------------------------------------------------------------ */

static int io_push(kt_t *t, kt_op_t *op)
{
	uv_mutex_lock(&t->mu);
	if (t->wake_closed) {
		uv_mutex_unlock(&t->mu);
		return -1;
	}
	link_push(&t->ops, &op->link);
	/* Under the lock: the handle is closed under it too. */
	uv_async_send(&t->wake);
	uv_mutex_unlock(&t->mu);
	return 0;
}

static void io_run_ops(kt_t *t, kt_link_t *batch)
{
	kt_link_t *l;
	while ((l = link_pop(batch))) {
		kt_op_t *op = KT_OWNER(l, kt_op_t, link);
		void (*fn)(void *) = op->fn;
		void *arg = op->arg;
		if (op->owned)
			free(op);
		fn(arg);
	}
	(void)t;
}

static void io_on_wake(uv_async_t *a)
{
	kt_t *t = a->data;
	kt_link_t batch;
	link_init(&batch);
	uv_mutex_lock(&t->mu);
	link_splice(&batch, &t->ops);
	uv_mutex_unlock(&t->mu);
	io_run_ops(t, &batch);
}

static void io_on_prepare(uv_prepare_t *p)
{
	kt_t *t = p->data;
	kt_link_t *l;
	while ((l = link_pop(&t->dirty)))
		conn_flush(KT_OWNER(l, kt_conn_t, dirty));
}

/* kt_free's stop: close every stream and call, drop every connection, then stop taking
 * posted functions; the loop ends when the last handle is closed. */
static void io_shutdown(void *arg)
{
	kt_t *t = arg;
	t->shutting = true;
	for (kt_link_t *l = t->streams.next; l != &t->streams; l = l->next) {
		kt_stream_t *s = KT_OWNER(l, kt_stream_t, link);
		if (!s->closed)
			stream_close(s, true);
	}
	while (!link_empty(&t->calls))
		call_finish(KT_OWNER(t->calls.next, kt_call_t, link), KEEL_CODE_CANCELLED,
			    KT_CLOSING_MSG);
	for (kt_link_t *l = t->conns.next; l != &t->conns;) {
		kt_conn_t *c = KT_OWNER(l, kt_conn_t, all);
		l = l->next; /* c may be freed */
		conn_fail(c, KT_CLOSING_MSG);
	}
	uv_close((uv_handle_t *)&t->prep, NULL);
	for (;;) {
		kt_link_t batch;
		link_init(&batch);
		uv_mutex_lock(&t->mu);
		if (link_empty(&t->ops)) {
			t->wake_closed = true;
			uv_mutex_unlock(&t->mu);
			break;
		}
		link_splice(&batch, &t->ops);
		uv_mutex_unlock(&t->mu);
		io_run_ops(t, &batch);
	}
	uv_close((uv_handle_t *)&t->wake, NULL);
}

static void io_main(void *arg)
{
	kt_t *t = arg;
	t->io_tid = uv_thread_self();
	uv_sem_post(&t->started);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	uv_loop_close(&t->loop);
}

/* ---- dispatch ---------------------------------------------------------------------- */

static void dispatch_run_one(kt_t *t, kt_ditem_t *it)
{
	it->fn(it->arg);
	free(it);
	uv_mutex_lock(&t->dmu);
	t->d_done++;
	uv_cond_broadcast(&t->ddone);
	uv_mutex_unlock(&t->dmu);
}

static void dispatch_main(void *arg)
{
	kt_t *t = arg;
	t->d_tid = uv_thread_self();
	uv_sem_post(&t->started);
	uv_mutex_lock(&t->dmu);
	for (;;) {
		while (link_empty(&t->dq) && !t->d_stop)
			uv_cond_wait(&t->dwork, &t->dmu);
		kt_link_t *l = link_pop(&t->dq);
		if (!l)
			break;
		uv_mutex_unlock(&t->dmu);
		dispatch_run_one(t, KT_OWNER(l, kt_ditem_t, link));
		uv_mutex_lock(&t->dmu);
	}
	uv_mutex_unlock(&t->dmu);
}

/* Runs what is queued; with close set, refuses further kt_dispatch once empty. */
static void dispatch_drain(kt_t *t, bool close)
{
	for (;;) {
		uv_mutex_lock(&t->dmu);
		kt_link_t *l = link_pop(&t->dq);
		if (!l && close)
			t->d_closed = true;
		uv_mutex_unlock(&t->dmu);
		if (!l)
			return;
		dispatch_run_one(t, KT_OWNER(l, kt_ditem_t, link));
	}
}

static void dispatch_on_async(uv_async_t *a)
{
	kt_t *t = a->data;
	t->d_tid = uv_thread_self();
	dispatch_drain(t, false);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* ---- the contract ------------------------------------------------------------------ */

static int kt_setup_nghttp2(kt_t *t)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -1;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	t->cbs = cb;
	if (nghttp2_option_new(&t->h2opt) != 0)
		return -1;
	/* We check what gRPC needs ourselves; a proxy's odd header must not kill a call. */
	nghttp2_option_set_no_http_messaging(t->h2opt, 1);
	/* Until the server's SETTINGS say otherwise: HTTP/2's recommended minimum. */
	nghttp2_option_set_peer_max_concurrent_streams(t->h2opt, 100);
	return 0;
}

static void kt_destroy_sync(kt_t *t)
{
	uv_mutex_destroy(&t->mu);
	uv_mutex_destroy(&t->dmu);
	uv_cond_destroy(&t->dwork);
	uv_cond_destroy(&t->ddone);
	uv_sem_destroy(&t->started);
}

static void kt_destroy(kt_t *t)
{
	for (size_t i = 0; i < t->n_eps; i++)
		ep_clear(&t->eps[i]);
	free(t->eps);
	kt_link_t *l;
	while ((l = link_pop(&t->extra_eps))) {
		kt_ep_t *e = KT_OWNER(l, kt_ep_t, link);
		ep_clear(e);
		free(e);
	}
	if (t->cbs)
		nghttp2_session_callbacks_del(t->cbs);
	if (t->h2opt)
		nghttp2_option_del(t->h2opt);
	free(t);
}

int kt_new(const kt_options_t *opt, kt_t **out, keel_error_t *err)
{
	char msg[256];
	*out = NULL;
	if (!opt || (opt->n_endpoints == 0 && !opt->dial) || (opt->n_endpoints && !opt->endpoints))
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "keel: no endpoints");
	kt_t *t = calloc(1, sizeof *t);
	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: out of memory");
	link_init(&t->extra_eps);
	link_init(&t->ops);
	link_init(&t->conns);
	link_init(&t->dirty);
	link_init(&t->streams);
	link_init(&t->calls);
	link_init(&t->dq);
	size_t n = opt->n_endpoints ? opt->n_endpoints : 1;
	t->eps = calloc(n, sizeof *t->eps);
	if (!t->eps) {
		kt_destroy(t);
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = opt->n_endpoints ? opt->endpoints[i] : "localhost:2379";
		if (!name || ep_parse(&t->eps[i], name, msg, sizeof msg) != 0) {
			if (!name)
				snprintf(msg, sizeof msg, "keel: endpoint %zu is NULL", i);
			kt_destroy(t);
			return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "%s", msg);
		}
		t->eps[i].index = (int)i;
		t->n_eps = i + 1;
	}
	t->dial_timeout_ms = opt->dial_timeout_ms ? opt->dial_timeout_ms : 5000;
	t->call_timeout_ms = opt->call_timeout_ms ? opt->call_timeout_ms : 5000;
	t->ka_time_ms = opt->keepalive_time_ms ? opt->keepalive_time_ms : 10000;
	t->ka_timeout_ms = opt->keepalive_timeout_ms > 0 ? opt->keepalive_timeout_ms : 3000;
	t->dial = opt->dial;
	t->dial_arg = opt->dial_arg;
	t->user_loop = opt->user_loop;
	t->stop_op.fn = io_shutdown;
	t->stop_op.arg = t;
	if (kt_setup_nghttp2(t) != 0) {
		kt_destroy(t);
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: out of memory");
	}
	if (uv_loop_init(&t->loop) != 0) {
		kt_destroy(t);
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: cannot create the I/O loop");
	}
	uv_async_init(&t->loop, &t->wake, io_on_wake);
	t->wake.data = t;
	uv_prepare_init(&t->loop, &t->prep);
	t->prep.data = t;
	uv_prepare_start(&t->prep, io_on_prepare);
	uv_mutex_init(&t->mu);
	uv_mutex_init(&t->dmu);
	uv_cond_init(&t->dwork);
	uv_cond_init(&t->ddone);
	uv_sem_init(&t->started, 0);
	int rc = 0;
	if (t->user_loop) {
		t->uasync = malloc(sizeof *t->uasync);
		rc = t->uasync ? uv_async_init(t->user_loop, t->uasync, dispatch_on_async)
			       : UV_ENOMEM;
		if (rc == 0) {
			t->uasync->data = t;
			t->d_tid = uv_thread_self();
		} else {
			free(t->uasync);
			t->uasync = NULL;
		}
	} else {
		rc = uv_thread_create(&t->d_thread, dispatch_main, t);
		if (rc == 0)
			uv_sem_wait(&t->started);
	}
	int rc_io = rc == 0 ? uv_thread_create(&t->io_thread, io_main, t) : rc;
	if (rc_io != 0) {
		/* Nothing ran on the loop: undo by hand. */
		if (rc == 0 && t->user_loop) {
			uv_close((uv_handle_t *)t->uasync, free_handle);
		} else if (rc == 0) {
			uv_mutex_lock(&t->dmu);
			t->d_stop = true;
			uv_cond_signal(&t->dwork);
			uv_mutex_unlock(&t->dmu);
			uv_thread_join(&t->d_thread);
		}
		uv_close((uv_handle_t *)&t->wake, NULL);
		uv_close((uv_handle_t *)&t->prep, NULL);
		uv_run(&t->loop, UV_RUN_DEFAULT);
		uv_loop_close(&t->loop);
		kt_destroy_sync(t);
		kt_destroy(t);
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: cannot start threads: %s",
				      uv_strerror(rc_io));
	}
	uv_sem_wait(&t->started);
	*out = t;
	return 0;
}

void kt_free(kt_t *t)
{
	if (!t)
		return;
	if (io_push(t, &t->stop_op) == 0)
		uv_thread_join(&t->io_thread);
	if (t->user_loop) {
		dispatch_drain(t, true);
		uv_close((uv_handle_t *)t->uasync, free_handle);
	} else {
		uv_mutex_lock(&t->dmu);
		t->d_stop = true;
		uv_cond_signal(&t->dwork);
		uv_mutex_unlock(&t->dmu);
		uv_thread_join(&t->d_thread);
		dispatch_drain(t, true);
	}
	kt_destroy_sync(t);
	kt_destroy(t);
}

/* Runs a call on the I/O thread and waits for its end. */
static int call_run(kt_call_t *call, keel_error_t *err)
{
	kt_t *t = call->t;
	if (kt_on_io_thread(t))
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "keel: a blocking call on the client's I/O thread");
	if (call->req_len > KT_MAX_MSG)
		return keel_error_set(err, KEEL_CODE_RESOURCE_EXHAUSTED,
				      "grpc: trying to send message larger than max (%zu vs. %u)",
				      call->req_len, KT_MAX_MSG);
	put_be32(call->pre + 1, (uint32_t)call->req_len);
	call->h.grpc_status = -1;
	link_init(&call->h.link);
	link_init(&call->link);
	call->op.fn = call_begin;
	call->op.arg = call;
	if (uv_sem_init(&call->sem, 0) != 0)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: cannot create a semaphore");
	if (io_push(t, &call->op) != 0) {
		uv_sem_destroy(&call->sem);
		return keel_error_set(err, KEEL_CODE_CANCELLED, KT_CLOSING_MSG);
	}
	uv_sem_wait(&call->sem);
	uv_sem_destroy(&call->sem);
	return keel_error_set(err, call->code, "%s", call->msg);
}

static uint64_t deadline_of(const kt_t *t, int timeout_ms)
{
	int ms = timeout_ms == 0 ? t->call_timeout_ms : timeout_ms;
	return ms > 0 ? uv_hrtime() + (uint64_t)ms * 1000000u : 0;
}

int kt_unary(kt_t *t, const char *path, const char *endpoint, const uint8_t *req,
	     size_t req_len, int timeout_ms, bool idempotent, uint8_t **resp,
	     size_t *resp_len, keel_error_t *err)
{
	*resp = NULL;
	*resp_len = 0;
	kt_call_t *call = calloc(1, sizeof *call);
	if (!call)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: out of memory");
	call->t = t;
	call->path = path;
	call->endpoint = endpoint;
	call->req = req;
	call->req_len = req_len;
	call->deadline = deadline_of(t, timeout_ms);
	call->idempotent = idempotent;
	int rc = call_run(call, err);
	if (rc == KEEL_CODE_OK) {
		*resp = call->resp;
		*resp_len = call->resp_len;
	} else {
		free(call->resp);
	}
	free(call);
	return rc;
}

int kt_server_stream(kt_t *t, const char *path, const char *endpoint, const uint8_t *req,
		     size_t req_len, int timeout_ms,
		     int (*on_msg)(void *ud, const uint8_t *msg, size_t len), void *ud,
		     keel_error_t *err)
{
	kt_call_t *call = calloc(1, sizeof *call);
	if (!call)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel: out of memory");
	call->t = t;
	call->path = path;
	call->endpoint = endpoint;
	call->req = req;
	call->req_len = req_len;
	call->deadline = deadline_of(t, timeout_ms);
	call->on_msg = on_msg;
	call->ud = ud;
	int rc = call_run(call, err);
	free(call->resp);
	free(call);
	return rc;
}

kt_stream_t *kt_stream_open(kt_t *t, const char *path, const kt_stream_ops_t *ops, void *ud)
{
	kt_stream_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	s->t = t;
	s->h.is_stream = true;
	s->h.grpc_status = -1;
	link_init(&s->h.link);
	s->ops = *ops;
	s->ud = ud;
	s->backoff_ms = KT_BACKOFF_MIN_MS;
	uv_timer_init(&t->loop, &s->retry);
	s->retry.data = s;
	link_push(&t->streams, &s->link);
	if (t->shutting)
		stream_close(s, false);
	else
		uv_timer_start(&s->retry, stream_on_retry, 0, 0); /* never inside this call */
	return s;
}

int kt_stream_send(kt_stream_t *s, const uint8_t *msg, size_t len)
{
	if (s->closed || !s->open || s->h.where != H2S_ACTIVE)
		return -1;
	size_t pending = s->olen - s->ooff;
	if (len > KT_MAX_MSG || pending + len + 5 > KT_MAX_PENDING)
		return -1;
	if (s->olen + len + 5 > s->ocap) {
		if (s->ooff > 0) {
			memmove(s->obuf, s->obuf + s->ooff, pending);
			s->olen = pending;
			s->ooff = 0;
		}
		size_t need = s->olen + len + 5, cap = s->ocap ? s->ocap : 256;
		while (cap < need)
			cap *= 2;
		if (cap > s->ocap) {
			uint8_t *nb = realloc(s->obuf, cap);
			if (!nb)
				return -1;
			s->obuf = nb;
			s->ocap = cap;
		}
	}
	s->obuf[s->olen] = 0;
	put_be32(s->obuf + s->olen + 1, (uint32_t)len);
	if (len)
		memcpy(s->obuf + s->olen + 5, msg, len);
	s->olen += len + 5;
	kt_conn_t *c = s->h.conn;
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(c->h2, s->h.id);
	}
	conn_mark_dirty(c);
	return 0;
}

void kt_stream_close(kt_stream_t *s)
{
	if (s)
		stream_close(s, false);
}

int kt_post(kt_t *t, void (*fn)(void *arg), void *arg)
{
	kt_op_t *op = malloc(sizeof *op);
	if (!op)
		return -1;
	op->fn = fn;
	op->arg = arg;
	op->owned = true;
	if (io_push(t, op) != 0) {
		free(op);
		return -1;
	}
	return 0;
}

int kt_dispatch(kt_t *t, void (*fn)(void *arg), void *arg)
{
	kt_ditem_t *it = malloc(sizeof *it);
	if (!it)
		return -1;
	it->fn = fn;
	it->arg = arg;
	uv_mutex_lock(&t->dmu);
	if (t->d_closed) {
		uv_mutex_unlock(&t->dmu);
		free(it);
		return -1;
	}
	link_push(&t->dq, &it->link);
	t->d_posted++;
	if (t->user_loop)
		uv_async_send(t->uasync);
	else
		uv_cond_signal(&t->dwork);
	uv_mutex_unlock(&t->dmu);
	return 0;
}

bool kt_on_io_thread(const kt_t *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->io_tid) != 0;
}

bool kt_on_dispatch(const kt_t *t)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &t->d_tid) != 0;
}

void kt_dispatch_flush(kt_t *t)
{
	if (kt_on_dispatch(t))
		return; /* it would wait for itself */
	uv_mutex_lock(&t->dmu);
	uint64_t target = t->d_posted;
	while (t->d_done < target)
		uv_cond_wait(&t->ddone, &t->dmu);
	uv_mutex_unlock(&t->dmu);
}

struct uv_loop_s *kt_loop(kt_t *t)
{
	return &t->loop;
}

int kt_call_timeout(const kt_t *t)
{
	return t->call_timeout_ms;
}
