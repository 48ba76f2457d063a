/* tests/transport/test_transport.c — libkeel's gRPC client (client/transport.c) against the
 * gRPC server keeld uses, each test server on its own thread and loop on 127.0.0.1:0.
 * Covers calls, deadlines, failover, streams, keep-alive, dispatch and kt_free. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <nghttp2/nghttp2.h>
#include <poll.h>

#include "grpc.h"
#include "transport.h"

/* ---- a test server on its own thread ------------------------------------------------ */

typedef struct tsrv {
	char name[8];
	uv_loop_t loop;
	uv_thread_t th;
	uv_async_t stop;
	grpc_server_t *s;
	int port;
	bool running;
	atomic_int unary_calls, unavail_calls, hang_started, hang_closed, bidi_msgs, bidi_halves;
} tsrv_t;

static void srv_finish_ok_with(grpc_call_t *call, const uint8_t *msg, size_t len)
{
	grpc_call_send(call, msg, len);
	grpc_call_finish(call, GRPC_OK, NULL);
}

static void m_echo(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	atomic_fetch_add(&s->unary_calls, 1);
	srv_finish_ok_with(call, msg, len);
}

static void m_who(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	(void)msg;
	(void)len;
	srv_finish_ok_with(call, (const uint8_t *)s->name, strlen(s->name));
}

/* The request is "<code>|<message>": the call ends with that status. */
static void m_fail(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	char buf[1024];
	(void)ud;
	snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
	char *bar = strchr(buf, '|');
	grpc_call_finish(call, atoi(buf), bar ? bar + 1 : "");
}

/* Server "A" is Unavailable ("etcdserver: no leader"), others answer their name. */
static void m_unavail(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	(void)msg;
	(void)len;
	atomic_fetch_add(&s->unavail_calls, 1);
	if (strcmp(s->name, "A") == 0)
		grpc_call_finish(call, GRPC_UNAVAILABLE, "etcdserver: no leader");
	else
		srv_finish_ok_with(call, (const uint8_t *)s->name, strlen(s->name));
}

static void m_hang(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	(void)call;
	(void)msg;
	(void)len;
	atomic_fetch_add(&s->hang_started, 1);
}

static void m_hang_close(void *ud, grpc_call_t *call)
{
	tsrv_t *s = ud;
	(void)call;
	atomic_fetch_add(&s->hang_closed, 1);
}

/* Bidi: each message comes back prefixed with the server's name. */
static void m_bidi(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	uint8_t buf[256];
	size_t n = strlen(s->name);
	atomic_fetch_add(&s->bidi_msgs, 1);
	if (len > sizeof buf - n - 1)
		len = sizeof buf - n - 1;
	memcpy(buf, s->name, n);
	buf[n] = ':';
	memcpy(buf + n + 1, msg, len);
	grpc_call_send(call, buf, n + 1 + len);
}

static void m_bidi_half_close(void *ud, grpc_call_t *call)
{
	tsrv_t *s = ud;
	atomic_fetch_add(&s->bidi_halves, 1);
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Server streaming: the request is a count; that many messages "0", "1", ... then OK. */
static void m_count(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	char buf[32];
	(void)ud;
	snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
	int n = atoi(buf);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%d", i);
		grpc_call_send(call, (const uint8_t *)buf, strlen(buf));
	}
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Bidi that ends the call with a status on its first message. */
static void m_bidi_end(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud;
	(void)msg;
	(void)len;
	grpc_call_finish(call, GRPC_OUT_OF_RANGE,
			 "etcdserver: mvcc: required revision has been compacted");
}

/* What the request carried, as "te|user-agent|content-type|grpc-timeout-present". */
static void m_headers(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	char buf[512];
	const char *tmo = grpc_call_header(call, "grpc-timeout");
	(void)ud;
	(void)msg;
	(void)len;
	snprintf(buf, sizeof buf, "%s|%s|%s", grpc_call_header(call, "te"),
		 grpc_call_header(call, "user-agent"), tmo ? "timeout" : "none");
	srv_finish_ok_with(call, (const uint8_t *)buf, strlen(buf));
}

/* A TxnResponse nested DEEP_TXN_LEVELS times through ResponseOp.response_txn (about 1 MiB):
 * unpacked by plain recursion it would overflow the caller's stack. */
#define DEEP_TXN_LEVELS 100000

/* Writes v as a varint ending just before end; returns its length. */
static size_t put_varint_back(uint8_t *end, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		tmp[n++] = v ? (uint8_t)(b | 0x80) : b;
	} while (v);
	memcpy(end - n, tmp, n);
	return n;
}

static void m_deep_txn(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud;
	(void)msg;
	(void)len;
	size_t cap = (size_t)DEEP_TXN_LEVELS * 12;
	uint8_t *buf = malloc(cap), *p = buf + cap;
	assert_non_null(buf);
	for (int i = 0; i < DEEP_TXN_LEVELS; i++) {
		/* ResponseOp{response_txn (4) = inner}, then TxnResponse{responses (3) = op}. */
		p -= put_varint_back(p, (uint64_t)(buf + cap - p));
		*--p = 4 << 3 | 2;
		p -= put_varint_back(p, (uint64_t)(buf + cap - p));
		*--p = 3 << 3 | 2;
	}
	srv_finish_ok_with(call, p, (size_t)(buf + cap - p));
	free(buf);
}

/* Status names member 1 as leader; the membership lists member 1 twice, both times with
 * this server's own URL; MoveLeader answers an empty response. */
static void m_status_leader1(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud, (void)msg, (void)len;
	static const uint8_t status[] = {4 << 3 | 0, 1};
	srv_finish_ok_with(call, status, sizeof status);
}

static void m_members_twice(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	tsrv_t *s = ud;
	(void)msg, (void)len;
	char url[64];
	uint8_t member[80], out[200];
	int ul = snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
	size_t m = 0, o = 0;
	member[m++] = 1 << 3 | 0; /* ID = 1 */
	member[m++] = 1;
	member[m++] = 4 << 3 | 2; /* clientURLs */
	member[m++] = (uint8_t)ul;
	memcpy(member + m, url, (size_t)ul);
	m += (size_t)ul;
	for (int i = 0; i < 2; i++) {
		out[o++] = 2 << 3 | 2; /* members */
		out[o++] = (uint8_t)m;
		memcpy(out + o, member, m);
		o += m;
	}
	srv_finish_ok_with(call, out, o);
}

static void m_empty_ok(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud, (void)msg, (void)len;
	srv_finish_ok_with(call, (const uint8_t *)"", 0);
}

/* A Watch server that confirms the create, then sends unrequested fragments of one
 * response (2 MiB each) without end: WATCH_FRAGS of them, more than the client joins. */
#define WATCH_FRAG_VALUE (2u << 20)
#define WATCH_FRAGS 40

static void m_watch_fragments(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud;
	if (len == 0 || msg[0] != (1 << 3 | 2))
		return; /* not a create (the client's cancel, say) */
	static const uint8_t created[] = {3 << 3 | 0, 1};
	grpc_call_send(call, created, sizeof created);
	size_t cap = WATCH_FRAG_VALUE + 64, kv = 0, ev = 0, o = 0;
	uint8_t *kvb = malloc(cap), *evb = malloc(cap), *out = malloc(cap);
	assert_true(kvb && evb && out);
	uint8_t *vend = kvb + 32, *end;
	kvb[kv++] = 1 << 3 | 2; /* key "k" */
	kvb[kv++] = 1;
	kvb[kv++] = 'k';
	kvb[kv++] = 3 << 3 | 0; /* mod_revision 5 */
	kvb[kv++] = 5;
	kvb[kv++] = 5 << 3 | 2; /* value */
	end = vend;
	size_t vl = put_varint_back(end, WATCH_FRAG_VALUE);
	memmove(kvb + kv, end - vl, vl);
	kv += vl;
	memset(kvb + kv, 'v', WATCH_FRAG_VALUE);
	kv += WATCH_FRAG_VALUE;
	evb[ev++] = 2 << 3 | 2; /* Event.kv */
	end = evb + 32;
	vl = put_varint_back(end, kv);
	memmove(evb + ev, end - vl, vl);
	ev += vl;
	memcpy(evb + ev, kvb, kv);
	ev += kv;
	out[o++] = 7 << 3 | 0; /* fragment = true */
	out[o++] = 1;
	out[o++] = 11 << 3 | 2; /* events */
	end = out + 32;
	vl = put_varint_back(end, ev);
	memmove(out + o, end - vl, vl);
	o += vl;
	memcpy(out + o, evb, ev);
	o += ev;
	for (int i = 0; i < WATCH_FRAGS; i++)
		grpc_call_send(call, out, o);
	free(kvb);
	free(evb);
	free(out);
}

static const grpc_method_t srv_methods[] = {
	{"/etcdserverpb.Watch/Watch", true, m_watch_fragments, NULL, NULL},
	{"/etcdserverpb.Maintenance/Status", false, m_status_leader1, NULL, NULL},
	{"/etcdserverpb.Cluster/MemberList", false, m_members_twice, NULL, NULL},
	{"/etcdserverpb.Maintenance/MoveLeader", false, m_empty_ok, NULL, NULL},
	{"/etcdserverpb.KV/Txn", false, m_deep_txn, NULL, NULL},
	{"/test.T/Headers", false, m_headers, NULL, NULL},
	{"/test.T/Echo", false, m_echo, NULL, NULL},
	{"/test.T/Who", false, m_who, NULL, NULL},
	{"/test.T/Fail", false, m_fail, NULL, NULL},
	{"/test.T/Unavail", false, m_unavail, NULL, NULL},
	{"/test.T/Hang", false, m_hang, NULL, m_hang_close},
	{"/test.T/Bidi", true, m_bidi, m_bidi_half_close, NULL},
	{"/test.T/BidiEnd", true, m_bidi_end, NULL, NULL},
	{"/test.T/Count", true, m_count, NULL, NULL},
};

static void srv_main(void *arg)
{
	tsrv_t *s = arg;
	uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void srv_closed(void *arg)
{
	(void)arg;
}

static void srv_on_stop(uv_async_t *a)
{
	tsrv_t *s = a->data;
	grpc_server_close(s->s, srv_closed, s);
	uv_close((uv_handle_t *)&s->stop, NULL);
}

static tsrv_t *srv_start_on(const char *name, int port)
{
	tsrv_t *s = calloc(1, sizeof *s);
	assert_non_null(s);
	snprintf(s->name, sizeof s->name, "%s", name);
	assert_int_equal(uv_loop_init(&s->loop), 0);
	grpc_server_options_t opt;
	grpc_server_options_default(&opt);
	opt.max_recv_msg_size = 16u << 20;
	size_t nm = sizeof srv_methods / sizeof srv_methods[0];
	assert_int_equal(grpc_server_new(&s->loop, srv_methods, nm, s, &opt, &s->s), 0);
	char err[256];
	assert_int_equal(grpc_server_listen(s->s, "127.0.0.1", port, err, sizeof err), 0);
	s->port = grpc_server_port(s->s, 0);
	assert_true(s->port > 0);
	uv_async_init(&s->loop, &s->stop, srv_on_stop);
	s->stop.data = s;
	assert_int_equal(uv_thread_create(&s->th, srv_main, s), 0);
	s->running = true;
	return s;
}

static tsrv_t *srv_start(const char *name)
{
	return srv_start_on(name, 0);
}

/* Closes the server (its connections drop) but keeps the struct for its counters. */
static void srv_stop(tsrv_t *s)
{
	if (!s->running)
		return;
	s->running = false;
	uv_async_send(&s->stop);
	uv_thread_join(&s->th);
	assert_int_equal(uv_loop_close(&s->loop), 0);
}

static void srv_free(tsrv_t *s)
{
	srv_stop(s);
	free(s);
}

static char *srv_ep(const tsrv_t *s, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.1:%d", s->port);
	return buf;
}

/* A port nothing listens on. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static void opts_init(kt_options_t *o, const char *const *eps, size_t n)
{
	memset(o, 0, sizeof *o);
	o->endpoints = eps;
	o->n_endpoints = n;
	o->dial_timeout_ms = 2000;
	o->call_timeout_ms = 5000;
	o->keepalive_time_ms = 10000;
	o->keepalive_timeout_ms = 3000;
}

static kt_t *kt_open1(const char *ep)
{
	const char *eps[1] = {ep};
	kt_options_t o;
	opts_init(&o, eps, 1);
	kt_t *t = NULL;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	return t;
}

static int call_str(kt_t *t, const char *path, const char *ep, const char *req, int tmo,
		    bool idem, char *out, size_t outlen, keel_error_t *err)
{
	uint8_t *resp = NULL;
	size_t rlen = 0;
	int rc = kt_unary(t, path, ep, (const uint8_t *)req, strlen(req), tmo, idem, &resp, &rlen,
			  err);
	if (out)
		snprintf(out, outlen, "%.*s", (int)rlen, resp ? (const char *)resp : "");
	free(resp);
	return rc;
}

/* ---- errors.c ---------------------------------------------------------------------- */

static void test_errkind_recognises_etcd_messages(void **state)
{
	(void)state;
	assert_int_equal(keel_errkind_of(0, NULL), KEEL_E_NONE);
	assert_int_equal(keel_errkind_of(11, "etcdserver: mvcc: required revision has been "
					     "compacted"),
			 KEEL_E_COMPACTED);
	assert_int_equal(keel_errkind_of(11, "etcdserver: mvcc: required revision is a future "
					     "revision"),
			 KEEL_E_FUTURE_REV);
	assert_int_equal(keel_errkind_of(5, "etcdserver: requested lease not found"),
			 KEEL_E_LEASE_NOT_FOUND);
	assert_int_equal(keel_errkind_of(9, "etcdserver: lease already exists"),
			 KEEL_E_LEASE_EXISTS);
	assert_int_equal(keel_errkind_of(14, "etcdserver: no leader"), KEEL_E_NO_LEADER);
	assert_int_equal(keel_errkind_of(14, "etcdserver: request timed out"), KEEL_E_TIMEOUT);
	assert_int_equal(keel_errkind_of(14, "etcdserver: request timed out, possibly due to "
					     "previous leader failure"),
			 KEEL_E_TIMEOUT);
	assert_int_equal(keel_errkind_of(14, "etcdserver: request timed out, possibly due to "
					     "connection lost"),
			 KEEL_E_TIMEOUT);
	assert_int_equal(keel_errkind_of(4, "context deadline exceeded"), KEEL_E_DEADLINE);
	assert_int_equal(keel_errkind_of(8, "etcdserver: mvcc: database space exceeded"),
			 KEEL_E_NO_SPACE);
	assert_int_equal(keel_errkind_of(3, "etcdserver: too many operations in txn request"),
			 KEEL_E_TOO_MANY_OPS);
	assert_int_equal(keel_errkind_of(3, "etcdserver: duplicate key given in txn request"),
			 KEEL_E_DUPLICATE_KEY);
	assert_int_equal(keel_errkind_of(3, "etcdserver: request is too large"),
			 KEEL_E_REQUEST_TOO_LARGE);
	assert_int_equal(keel_errkind_of(5, "etcdserver: member not found"),
			 KEEL_E_MEMBER_NOT_FOUND);
	assert_int_equal(keel_errkind_of(3, "etcdserver: key is not provided"), KEEL_E_OTHER);
	assert_int_equal(keel_errkind_of(14, "connection refused"), KEEL_E_UNAVAILABLE);
	keel_error_t e;
	assert_int_equal(keel_error_set(&e, 5, "etcdserver: %s", "requested lease not found"), 5);
	assert_int_equal(e.code, 5);
	assert_int_equal(e.kind, KEEL_E_LEASE_NOT_FOUND);
	assert_string_equal(e.message, "etcdserver: requested lease not found");
	assert_int_equal(keel_error_set(NULL, 7, "x"), 7);
}

static void test_new_rejects_bad_endpoints(void **state)
{
	(void)state;
	const char *bad[][1] = {{"https://127.0.0.1:2379"}, {"127.0.0.1:99999"}, {":2379"},
				{"[::1"}, {"127.0.0.1:x"}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		kt_options_t o;
		opts_init(&o, bad[i], 1);
		kt_t *t = (kt_t *)1;
		keel_error_t err;
		assert_int_equal(kt_new(&o, &t, &err), KEEL_CODE_INVALID_ARGUMENT);
		assert_null(t);
	}
	kt_options_t o;
	opts_init(&o, NULL, 0);
	kt_t *t = NULL;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), KEEL_CODE_INVALID_ARGUMENT);
}

/* ---- unary calls ------------------------------------------------------------------- */

static void test_unary_echo_round_trips(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64], url[80], lh[64], out[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
	snprintf(lh, sizeof lh, "localhost:%d", s->port);
	const char *eps[3] = {srv_ep(s, ep, sizeof ep), url, lh};
	for (int i = 0; i < 3; i++) {
		kt_t *t = kt_open1(eps[i]);
		keel_error_t err;
		assert_int_equal(call_str(t, "/test.T/Echo", NULL, "hello", 0, false, out,
					  sizeof out, &err),
				 0);
		assert_string_equal(out, "hello");
		assert_int_equal(err.code, 0);
		assert_int_equal(err.kind, KEEL_E_NONE);
		/* An empty message both ways. */
		uint8_t *resp = (uint8_t *)1;
		size_t rlen = 7;
		assert_int_equal(kt_unary(t, "/test.T/Echo", NULL, NULL, 0, 0, true, &resp, &rlen,
					  &err),
				 0);
		assert_int_equal(rlen, 0);
		free(resp);
		kt_free(t);
	}
	assert_int_equal(atomic_load(&s->unary_calls), 6);
	srv_free(s);
}

typedef struct {
	kt_t *t;
	int id, n, failures;
} worker_t;

static void worker_main(void *arg)
{
	worker_t *w = arg;
	for (int i = 0; i < w->n; i++) {
		char req[64], out[64];
		keel_error_t err;
		snprintf(req, sizeof req, "w%d-call%d", w->id, i);
		if (call_str(w->t, "/test.T/Echo", NULL, req, 0, false, out, sizeof out, &err) !=
			    0 ||
		    strcmp(out, req) != 0)
			w->failures++;
	}
}

static double run_workers(kt_t *t, int threads, int per)
{
	worker_t w[16];
	uv_thread_t th[16];
	uint64_t t0 = uv_hrtime();
	for (int i = 0; i < threads; i++) {
		w[i] = (worker_t){t, i, per, 0};
		assert_int_equal(uv_thread_create(&th[i], worker_main, &w[i]), 0);
	}
	for (int i = 0; i < threads; i++) {
		uv_thread_join(&th[i]);
		assert_int_equal(w[i].failures, 0);
	}
	double secs = (double)(uv_hrtime() - t0) / 1e9;
	return (double)threads * per / secs;
}

typedef struct {
	int port;
	atomic_int dials;
} dialer_t;

/* kt_options_t.dial: a blocking TCP connect, counted. */
static int count_dial(void *arg, char *errbuf, size_t errlen)
{
	dialer_t *d = arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	atomic_fetch_add(&d->dials, 1);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		snprintf(errbuf, errlen, "connect: refused");
		close(fd);
		return -1;
	}
	return fd;
}

static void test_many_threads_share_one_connection(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	dialer_t d = {.port = s->port};
	const char *eps[1] = {"embedded:1"};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.dial = count_dial;
	o.dial_arg = &d;
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	run_workers(t, 8, 300);
	assert_int_equal(atomic_load(&s->unary_calls), 2400);
	/* One connection for all: and no stream was reset, or a server's reset-flood guard
	 * would have sent GOAWAY after about a thousand and forced a second dial. */
	assert_int_equal(atomic_load(&d.dials), 1);
	kt_free(t);
	srv_free(s);
}

static void test_request_headers_follow_grpc(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64], out[512];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	keel_error_t err;
	assert_int_equal(call_str(t, "/test.T/Headers", NULL, "", 1000, false, out, sizeof out,
				  &err),
			 0);
	assert_string_equal(out, "trailers|keel/0.1|timeout");
	assert_int_equal(call_str(t, "/test.T/Headers", NULL, "", -1, false, out, sizeof out,
				  &err),
			 0);
	assert_string_equal(out, "trailers|keel/0.1|none");
	kt_free(t);
	srv_free(s);
}

static void test_reconnects_when_the_server_comes_back(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	int port = s->port;
	char ep[64], out[16];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	keel_error_t err;
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "", 0, false, out, sizeof out, &err), 0);
	srv_free(s);
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "", -1, false, out, sizeof out, &err),
			 KEEL_CODE_UNAVAILABLE);
	s = srv_start_on("A2", port);
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "", 0, false, out, sizeof out, &err), 0);
	assert_string_equal(out, "A2");
	kt_free(t);
	srv_free(s);
}

static void test_ten_mib_each_way(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	size_t n = 10u << 20;
	uint8_t *req = malloc(n);
	for (size_t i = 0; i < n; i++)
		req[i] = (uint8_t)(i * 7 + (i >> 13));
	uint8_t *resp = NULL;
	size_t rlen = 0;
	keel_error_t err;
	assert_int_equal(kt_unary(t, "/test.T/Echo", NULL, req, n, 20000, false, &resp, &rlen,
				  &err),
			 0);
	assert_int_equal(rlen, n);
	assert_memory_equal(resp, req, n);
	free(resp);
	free(req);
	/* Over the server's limit (16 MiB here): its status comes back, the handle lives. */
	n = 17u << 20;
	req = calloc(1, n);
	assert_int_equal(kt_unary(t, "/test.T/Echo", NULL, req, n, 20000, false, &resp, &rlen,
				  &err),
			 KEEL_CODE_RESOURCE_EXHAUSTED);
	assert_null(resp);
	free(req);
	char out[16];
	assert_int_equal(call_str(t, "/test.T/Echo", NULL, "ok", 0, false, out, sizeof out, &err),
			 0);
	assert_string_equal(out, "ok");
	kt_free(t);
	srv_free(s);
}

static void test_server_status_and_encoded_message_reach_the_caller(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	keel_error_t err;
	const char *msg = "etcdserver: lease already exists; 100% sure, caf\xc3\xa9 \"q\"\t~";
	char req[256];
	snprintf(req, sizeof req, "9|%s", msg);
	assert_int_equal(call_str(t, "/test.T/Fail", NULL, req, 0, false, NULL, 0, &err), 9);
	assert_int_equal(err.code, 9);
	assert_int_equal(err.kind, KEEL_E_LEASE_EXISTS);
	assert_string_equal(err.message, msg);
	assert_int_equal(call_str(t, "/test.T/Fail", NULL,
				  "11|etcdserver: mvcc: required revision has been compacted", 0,
				  true, NULL, 0, &err),
			 11);
	assert_int_equal(err.kind, KEEL_E_COMPACTED);
	/* A status of OK without a message is an error for a unary call. */
	assert_int_equal(call_str(t, "/test.T/Fail", NULL, "0|", 0, false, NULL, 0, &err),
			 KEEL_CODE_INTERNAL);
	/* An unknown method: the server's Unimplemented comes through. */
	assert_int_equal(call_str(t, "/test.T/Nope", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_UNIMPLEMENTED);
	kt_free(t);
	srv_free(s);
}

static void wait_for(atomic_int *v, int want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (atomic_load(v) < want && now_ms() < end)
		uv_sleep(5);
	assert_int_equal(atomic_load(v), want);
}

static void test_deadline_resets_the_stream(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	keel_error_t err;
	uint64_t t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Hang", NULL, "x", 300, false, NULL, 0, &err),
			 KEEL_CODE_DEADLINE_EXCEEDED);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 295 && took < 800);
	assert_string_equal(err.message, "context deadline exceeded");
	assert_int_equal(err.kind, KEEL_E_DEADLINE);
	wait_for(&s->hang_started, 1, 2000);
	wait_for(&s->hang_closed, 1, 2000);
	/* The handle's default deadline applies with timeout 0. */
	kt_free(t);
	const char *eps[1] = {ep};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.call_timeout_ms = 200;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	assert_int_equal(kt_call_timeout(t), 200);
	t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Hang", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_DEADLINE_EXCEEDED);
	took = now_ms() - t0;
	assert_true(took >= 195 && took < 700);
	kt_free(t);
	srv_free(s);
}

/* ---- failover ---------------------------------------------------------------------- */

static void test_failover_skips_a_closed_port(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("B");
	char dead[64], ep[64], out[64];
	snprintf(dead, sizeof dead, "127.0.0.1:%d", closed_port());
	const char *eps[2] = {dead, srv_ep(s, ep, sizeof ep)};
	kt_options_t o;
	opts_init(&o, eps, 2);
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	for (int i = 0; i < 5; i++) {
		/* Not idempotent: the request never left, so it may go elsewhere. */
		assert_int_equal(call_str(t, "/test.T/Who", NULL, "x", -1, false, out, sizeof out,
					  &err),
				 0);
		assert_string_equal(out, "B");
	}
	/* Explicitly addressed: the dead one fails at once, the live one answers. */
	assert_int_equal(call_str(t, "/test.T/Who", dead, "x", 0, true, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	assert_non_null(strstr(err.message, "connection refused"));
	assert_int_equal(call_str(t, "/test.T/Who", ep, "x", 0, true, out, sizeof out, &err), 0);
	assert_string_equal(out, "B");
	kt_free(t);
	srv_free(s);
}

static void test_unavailable_is_retried_only_when_idempotent(void **state)
{
	(void)state;
	tsrv_t *a = srv_start("A"), *b = srv_start("B");
	char ea[64], eb[64], out[64];
	const char *eps[2] = {srv_ep(a, ea, sizeof ea), srv_ep(b, eb, sizeof eb)};
	kt_options_t o;
	opts_init(&o, eps, 2);
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	assert_int_equal(call_str(t, "/test.T/Unavail", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	assert_string_equal(err.message, "etcdserver: no leader");
	assert_int_equal(err.kind, KEEL_E_NO_LEADER);
	assert_int_equal(atomic_load(&a->unavail_calls), 1);
	assert_int_equal(atomic_load(&b->unavail_calls), 0);
	assert_int_equal(call_str(t, "/test.T/Unavail", NULL, "x", 0, true, out, sizeof out, &err),
			 0);
	assert_string_equal(out, "B");
	assert_int_equal(atomic_load(&a->unavail_calls), 2);
	assert_int_equal(atomic_load(&b->unavail_calls), 1);
	/* The pin moved to B: the next call goes there first. */
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "x", 0, false, out, sizeof out, &err), 0);
	assert_string_equal(out, "B");
	kt_free(t);
	srv_free(a);
	srv_free(b);
}

static void test_all_endpoints_dead_fails_without_hanging(void **state)
{
	(void)state;
	char d1[64], d2[64];
	snprintf(d1, sizeof d1, "127.0.0.1:%d", closed_port());
	snprintf(d2, sizeof d2, "localhost:%d", closed_port());
	const char *eps[2] = {d1, d2};
	kt_options_t o;
	opts_init(&o, eps, 2);
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Echo", NULL, "x", -1, true, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(err.kind, KEEL_E_UNAVAILABLE);
	assert_non_null(strstr(err.message, "all endpoints unreachable"));
	assert_non_null(strstr(err.message, "connection refused"));
	/* With a deadline it keeps trying (backing off) until then. */
	t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Echo", NULL, "x", 400, true, NULL, 0, &err),
			 KEEL_CODE_DEADLINE_EXCEEDED);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 395 && took < 1000);
	kt_free(t);
	/* A name that does not resolve. */
	t = kt_open1("no-such-host.invalid:2379");
	assert_int_equal(call_str(t, "/test.T/Echo", NULL, "x", -1, true, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	assert_non_null(strstr(err.message, "lookup"));
	kt_free(t);
}

/* ---- server streaming -------------------------------------------------------------- */

typedef struct {
	int n, stop_after;
	char got[64];
} count_t;

static int on_count(void *ud, const uint8_t *msg, size_t len)
{
	count_t *c = ud;
	char want[16];
	snprintf(want, sizeof want, "%d", c->n);
	if (len != strlen(want) || memcmp(msg, want, len) != 0)
		c->got[0] = '!';
	c->n++;
	return c->stop_after && c->n >= c->stop_after;
}

static void test_server_stream_delivers_every_message(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	keel_error_t err;
	count_t c = {0};
	assert_int_equal(kt_server_stream(t, "/test.T/Count", NULL, (const uint8_t *)"500", 3, 0,
					  on_count, &c, &err),
			 0);
	assert_int_equal(c.n, 500);
	assert_int_equal(c.got[0], 0);
	count_t c2 = {.stop_after = 3};
	assert_int_equal(kt_server_stream(t, "/test.T/Count", ep, (const uint8_t *)"100", 3, 0,
					  on_count, &c2, &err),
			 KEEL_CODE_CANCELLED);
	assert_int_equal(c2.n, 3);
	kt_free(t);
	srv_free(s);
}

/* ---- bidirectional streams --------------------------------------------------------- */

typedef struct {
	kt_t *t;
	kt_stream_t *s;
	const char *path;
	uv_mutex_t mu;
	int opens, broken, closed, msgs;
	int broken_code;
	char log[1024];
	int send_on_open;   /* messages to send on each open */
	int close_after;    /* kt_stream_close after this many messages (0 = never) */
	bool close_on_open; /* kt_stream_close right after the sends of on_open */
	int first_send_rc, early_send_rc;
} bidi_t;

static void blog(bidi_t *b, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(b->log);
	va_start(ap, fmt);
	vsnprintf(b->log + n, sizeof b->log - n, fmt, ap);
	va_end(ap);
}

static void b_on_open(void *ud, kt_stream_t *s)
{
	bidi_t *b = ud;
	assert_true(kt_on_io_thread(b->t));
	uv_mutex_lock(&b->mu);
	b->opens++;
	blog(b, "open;");
	uv_mutex_unlock(&b->mu);
	for (int i = 0; i < b->send_on_open; i++) {
		char m[16];
		snprintf(m, sizeof m, "m%d", i);
		int rc = kt_stream_send(s, (const uint8_t *)m, strlen(m));
		if (i == 0)
			b->first_send_rc = rc;
	}
	if (b->close_on_open)
		kt_stream_close(s);
}

static void b_on_message(void *ud, kt_stream_t *s, const uint8_t *msg, size_t len)
{
	bidi_t *b = ud;
	uv_mutex_lock(&b->mu);
	b->msgs++;
	blog(b, "%.*s;", (int)len, (const char *)msg);
	bool close = b->close_after && b->msgs == b->close_after;
	uv_mutex_unlock(&b->mu);
	if (close)
		kt_stream_close(s);
}

static void b_on_broken(void *ud, kt_stream_t *s, int code, const char *message)
{
	bidi_t *b = ud;
	(void)s;
	(void)message;
	uv_mutex_lock(&b->mu);
	b->broken++;
	b->broken_code = code;
	blog(b, "broken %d;", code);
	uv_mutex_unlock(&b->mu);
}

static void b_on_closed(void *ud)
{
	bidi_t *b = ud;
	uv_mutex_lock(&b->mu);
	b->closed++;
	blog(b, "closed;");
	uv_mutex_unlock(&b->mu);
}

static const kt_stream_ops_t bidi_ops = {b_on_open, b_on_message, b_on_broken, b_on_closed};

static void b_open(void *arg)
{
	bidi_t *b = arg;
	b->s = kt_stream_open(b->t, b->path, &bidi_ops, b);
	/* Not open yet: on_open comes later, never from inside kt_stream_open. */
	b->early_send_rc = kt_stream_send(b->s, (const uint8_t *)"x", 1);
}

static void b_close(void *arg)
{
	bidi_t *b = arg;
	kt_stream_close(b->s);
}

static void bidi_init(bidi_t *b, kt_t *t, const char *path)
{
	memset(b, 0, sizeof *b);
	b->t = t;
	b->path = path;
	uv_mutex_init(&b->mu);
}

static int bidi_get(bidi_t *b, const int *field)
{
	uv_mutex_lock(&b->mu);
	int v = *field;
	uv_mutex_unlock(&b->mu);
	return v;
}

static void bidi_wait(bidi_t *b, const int *field, int want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (bidi_get(b, field) < want && now_ms() < end)
		uv_sleep(5);
	if (bidi_get(b, field) < want)
		fail_msg("waited for %d, log: %s", want, b->log);
}

static void test_bidi_stream_carries_messages_both_ways(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	bidi_t b;
	bidi_init(&b, t, "/test.T/Bidi");
	b.send_on_open = 3;
	b.close_after = 3;
	assert_int_equal(kt_post(t, b_open, &b), 0);
	bidi_wait(&b, &b.closed, 1, 3000);
	assert_int_equal(b.first_send_rc, 0);
	assert_int_equal(b.early_send_rc, -1);
	assert_string_equal(b.log, "open;A:m0;A:m1;A:m2;closed;");
	kt_free(t);
	assert_int_equal(b.closed, 1);
	uv_mutex_destroy(&b.mu);
	srv_free(s);
}

static void test_stream_close_sends_what_was_queued_first(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	bidi_t b;
	bidi_init(&b, t, "/test.T/Bidi");
	b.send_on_open = 2;
	b.close_on_open = true;
	assert_int_equal(kt_post(t, b_open, &b), 0);
	bidi_wait(&b, &b.closed, 1, 3000);
	/* The server got both messages and our end of the stream, and nothing came back to
	 * an owner that had closed. */
	wait_for(&s->bidi_halves, 1, 3000);
	assert_int_equal(atomic_load(&s->bidi_msgs), 2);
	assert_string_equal(b.log, "open;closed;");
	kt_free(t);
	assert_int_equal(b.closed, 1);
	uv_mutex_destroy(&b.mu);
	srv_free(s);
}

static void test_stream_ended_by_server_is_broken_then_reopened(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	bidi_t b;
	bidi_init(&b, t, "/test.T/BidiEnd");
	b.send_on_open = 1;
	assert_int_equal(kt_post(t, b_open, &b), 0);
	bidi_wait(&b, &b.opens, 3, 3000);
	assert_true(bidi_get(&b, &b.broken) >= 2);
	assert_int_equal(b.broken_code, KEEL_CODE_OUT_OF_RANGE);
	assert_int_equal(kt_post(t, b_close, &b), 0);
	bidi_wait(&b, &b.closed, 1, 3000);
	kt_free(t);
	assert_int_equal(b.closed, 1);
	uv_mutex_destroy(&b.mu);
	srv_free(s);
}

static void test_stream_moves_to_the_other_endpoint_when_its_server_goes(void **state)
{
	(void)state;
	tsrv_t *a = srv_start("A"), *bs = srv_start("B");
	char ea[64], eb[64];
	const char *eps[2] = {srv_ep(a, ea, sizeof ea), srv_ep(bs, eb, sizeof eb)};
	kt_options_t o;
	opts_init(&o, eps, 2);
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	bidi_t b;
	bidi_init(&b, t, "/test.T/Bidi");
	b.send_on_open = 1;
	assert_int_equal(kt_post(t, b_open, &b), 0);
	bidi_wait(&b, &b.msgs, 1, 3000);
	srv_stop(a);
	bidi_wait(&b, &b.msgs, 2, 5000);
	assert_int_equal(b.opens, 2);
	assert_int_equal(b.broken, 1);
	assert_int_equal(b.broken_code, KEEL_CODE_UNAVAILABLE);
	assert_string_equal(b.log, "open;A:m0;broken 14;open;B:m0;");
	kt_free(t);
	assert_int_equal(b.closed, 1);
	uv_mutex_destroy(&b.mu);
	srv_free(a);
	srv_free(bs);
}

/* ---- keep-alive -------------------------------------------------------------------- */

/* A listener that accepts (through the kernel's backlog) and never says a word. */
static int silent_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A listener whose accept queue is full: connecting to it hangs (the SYN is dropped). */
static int hanging_listener(int *port, int *filler)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	*filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	connect(*filler, (struct sockaddr *)&a, sizeof a);
	struct pollfd p = {.fd = *filler, .events = POLLOUT};
	assert_int_equal(poll(&p, 1, 1000), 1);
	return fd;
}

static void test_dial_timeout_moves_on_from_a_hanging_connect(void **state)
{
	(void)state;
	int port, filler, lfd = hanging_listener(&port, &filler);
	tsrv_t *s = srv_start("B");
	char hang[64], ep[64], out[16];
	snprintf(hang, sizeof hang, "127.0.0.1:%d", port);
	const char *eps[2] = {hang, srv_ep(s, ep, sizeof ep)};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.dial_timeout_ms = 300;
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "x", -1, false, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 295 && took < 1000);
	assert_non_null(strstr(err.message, "i/o timeout"));
	kt_free(t);
	opts_init(&o, eps, 2);
	o.dial_timeout_ms = 300;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	assert_int_equal(call_str(t, "/test.T/Who", NULL, "x", -1, false, out, sizeof out, &err),
			 0);
	assert_string_equal(out, "B");
	kt_free(t);
	srv_free(s);
	close(filler);
	close(lfd);
}

static void test_keepalive_declares_a_silent_server_dead(void **state)
{
	(void)state;
	int port, lfd = silent_listener(&port);
	char ep[64];
	snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
	const char *eps[1] = {ep};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.keepalive_time_ms = 200;
	o.keepalive_timeout_ms = 200;
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(call_str(t, "/test.T/Echo", NULL, "x", -1, false, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 390 && took < 1500);
	assert_non_null(strstr(err.message, "keepalive"));
	/* A stream on it is broken the same way. */
	bidi_t b;
	bidi_init(&b, t, "/test.T/Bidi");
	assert_int_equal(kt_post(t, b_open, &b), 0);
	bidi_wait(&b, &b.broken, 1, 3000);
	assert_int_equal(b.broken_code, KEEL_CODE_UNAVAILABLE);
	kt_free(t);
	assert_int_equal(b.closed, 1);
	uv_mutex_destroy(&b.mu);
	close(lfd);
}

static void test_keepalive_keeps_a_slow_call_on_a_live_server(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	const char *eps[1] = {srv_ep(s, ep, sizeof ep)};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.keepalive_time_ms = 50;
	o.keepalive_timeout_ms = 100;
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	/* Many PINGs go out and are answered: the call ends by its deadline, not as dead. */
	assert_int_equal(call_str(t, "/test.T/Hang", NULL, "x", 700, false, NULL, 0, &err),
			 KEEL_CODE_DEADLINE_EXCEEDED);
	kt_free(t);
	srv_free(s);
}

/* ---- a raw HTTP/2 server that answers the way a broken or foreign server might ------- */

typedef struct rstream {
	char path[64];
	uint8_t body[64];
	size_t blen, boff;
	bool trailers, hold;
} rstream_t;

typedef struct rawsrv {
	int lfd, port;
	uv_thread_t th;
	atomic_int stop;
	atomic_int requests, refused;
} rawsrv_t;

static nghttp2_nv rnv(const char *n, const char *v)
{
	nghttp2_nv nv = {(uint8_t *)n, (uint8_t *)v, strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE};
	return nv;
}

static ssize_t raw_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
			uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	rstream_t *r = src->ptr;
	(void)ud;
	size_t n = r->blen - r->boff < length ? r->blen - r->boff : length;
	memcpy(buf, r->body + r->boff, n);
	r->boff += n;
	if (r->boff == r->blen) {
		if (r->hold && n == 0)
			return NGHTTP2_ERR_DEFERRED;
		if (!r->hold) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			if (r->trailers) {
				nghttp2_nv tr[2] = {rnv("grpc-status", "0"),
						    rnv("grpc-message", "")};
				nghttp2_submit_trailer(h2, id, tr, 2);
				*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			}
		}
	}
	return (ssize_t)n;
}

static void put_msg(rstream_t *r, uint8_t flag, const char *m, uint32_t announced)
{
	size_t n = strlen(m);
	r->body[r->blen] = flag;
	uint32_t len = announced ? announced : (uint32_t)n;
	r->body[r->blen + 1] = (uint8_t)(len >> 24);
	r->body[r->blen + 2] = (uint8_t)(len >> 16);
	r->body[r->blen + 3] = (uint8_t)(len >> 8);
	r->body[r->blen + 4] = (uint8_t)len;
	memcpy(r->body + r->blen + 5, m, announced ? 0 : n);
	r->blen += 5 + (announced ? 0 : n);
}

static void raw_respond(nghttp2_session *h2, int32_t id, rstream_t *r, rawsrv_t *rs)
{
	nghttp2_data_provider dp = {.source.ptr = r, .read_callback = raw_read};
	nghttp2_nv ok[2] = {rnv(":status", "200"), rnv("content-type", "application/grpc")};
	atomic_fetch_add(&rs->requests, 1);
	if (strcmp(r->path, "/raw/Compressed") == 0) {
		put_msg(r, 1, "abc", 0);
		r->trailers = true;
		nghttp2_submit_response(h2, id, ok, 2, &dp);
	} else if (strcmp(r->path, "/raw/Http503") == 0 || strcmp(r->path, "/raw/Http404") == 0) {
		nghttp2_nv nv[1] = {rnv(":status", r->path[9] == '5' ? "503" : "404")};
		nghttp2_submit_response(h2, id, nv, 1, NULL);
	} else if (strcmp(r->path, "/raw/NoTrailers") == 0) {
		put_msg(r, 0, "abc", 0);
		nghttp2_submit_response(h2, id, ok, 2, &dp);
	} else if (strcmp(r->path, "/raw/TwoMsgs") == 0) {
		put_msg(r, 0, "one", 0);
		put_msg(r, 0, "two", 0);
		r->trailers = true;
		nghttp2_submit_response(h2, id, ok, 2, &dp);
	} else if (strcmp(r->path, "/raw/Huge") == 0) {
		put_msg(r, 0, "", 0x80000000u); /* one past clientv3's 2 GiB - 1 */
		r->hold = true;
		nghttp2_submit_response(h2, id, ok, 2, &dp);
	} else if (strcmp(r->path, "/raw/RefuseOnce") == 0 && atomic_load(&rs->refused) == 0) {
		atomic_fetch_add(&rs->refused, 1);
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
	} else {
		put_msg(r, 0, "fine", 0);
		r->trailers = true;
		nghttp2_submit_response(h2, id, ok, 2, &dp);
	}
}

static int raw_on_begin(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	(void)ud;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		nghttp2_session_set_stream_user_data(h2, f->hd.stream_id,
						     calloc(1, sizeof(rstream_t)));
	return 0;
}

static int raw_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
			 size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	rstream_t *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	(void)flags;
	(void)ud;
	if (r && nl == 5 && memcmp(name, ":path", 5) == 0)
		snprintf(r->path, sizeof r->path, "%.*s", (int)vl, (const char *)value);
	return 0;
}

static int raw_on_frame(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	rstream_t *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (r && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS))
		raw_respond(h2, f->hd.stream_id, r, ud);
	return 0;
}

static int raw_on_close(nghttp2_session *h2, int32_t id, uint32_t ec, void *ud)
{
	(void)ec;
	(void)ud;
	free(nghttp2_session_get_stream_user_data(h2, id));
	return 0;
}

static void raw_serve(rawsrv_t *rs, int fd)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *h2;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, raw_on_begin);
	nghttp2_session_callbacks_set_on_header_callback(cb, raw_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, raw_on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, raw_on_close);
	nghttp2_session_server_new(&h2, cb, rs);
	nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
	uint8_t buf[16384];
	for (;;) {
		const uint8_t *d;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(h2, &d)) > 0)
			if (send(fd, d, (size_t)n, MSG_NOSIGNAL) != n)
				goto out;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (atomic_load(&rs->stop))
			break;
		if (poll(&p, 1, 20) <= 0)
			continue;
		n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0 || nghttp2_session_mem_recv(h2, buf, (size_t)n) < 0)
			break;
	}
out:
	nghttp2_session_del(h2);
	nghttp2_session_callbacks_del(cb);
	close(fd);
}

static void raw_main(void *arg)
{
	rawsrv_t *rs = arg;
	while (!atomic_load(&rs->stop)) {
		struct pollfd p = {.fd = rs->lfd, .events = POLLIN};
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept(rs->lfd, NULL, NULL);
		if (fd >= 0)
			raw_serve(rs, fd);
	}
}

static rawsrv_t *raw_start(void)
{
	rawsrv_t *rs = calloc(1, sizeof *rs);
	rs->lfd = silent_listener(&rs->port);
	assert_int_equal(uv_thread_create(&rs->th, raw_main, rs), 0);
	return rs;
}

static void raw_stop(rawsrv_t *rs)
{
	atomic_store(&rs->stop, 1);
	uv_thread_join(&rs->th);
	close(rs->lfd);
	free(rs);
}

static void test_malformed_responses_become_clear_errors(void **state)
{
	(void)state;
	rawsrv_t *rs = raw_start();
	char ep[64], out[64];
	snprintf(ep, sizeof ep, "127.0.0.1:%d", rs->port);
	kt_t *t = kt_open1(ep);
	keel_error_t err;
	assert_int_equal(call_str(t, "/raw/Fine", NULL, "x", 0, false, out, sizeof out, &err), 0);
	assert_string_equal(out, "fine");
	assert_int_equal(call_str(t, "/raw/Compressed", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_INTERNAL);
	assert_non_null(strstr(err.message, "compress"));
	assert_int_equal(call_str(t, "/raw/Http503", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_UNAVAILABLE);
	assert_non_null(strstr(err.message, "503"));
	assert_int_equal(call_str(t, "/raw/Http404", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_UNIMPLEMENTED);
	assert_int_equal(call_str(t, "/raw/NoTrailers", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_INTERNAL);
	assert_non_null(strstr(err.message, "trailers"));
	assert_int_equal(call_str(t, "/raw/TwoMsgs", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_INTERNAL);
	assert_non_null(strstr(err.message, "more than one"));
	assert_int_equal(call_str(t, "/raw/Huge", NULL, "x", 0, false, NULL, 0, &err),
			 KEEL_CODE_RESOURCE_EXHAUSTED);
	/* Refused by the server: never processed, so even a non-idempotent call is retried. */
	assert_int_equal(call_str(t, "/raw/RefuseOnce", NULL, "x", 0, false, out, sizeof out, &err),
			 0);
	assert_string_equal(out, "fine");
	assert_int_equal(atomic_load(&rs->refused), 1);
	/* Still one healthy connection after all that. */
	assert_int_equal(call_str(t, "/raw/Fine", NULL, "x", 0, false, out, sizeof out, &err), 0);
	kt_free(t);
	raw_stop(rs);
}

/* ---- dispatch ---------------------------------------------------------------------- */

typedef struct {
	kt_t *t;
	int order[1000];
	int n;
	bool wrong_thread;
	atomic_int slow_done;
} dlog_t;

typedef struct {
	dlog_t *d;
	int i;
} ditem_t;

static void d_record(void *arg)
{
	ditem_t *it = arg;
	if (!kt_on_dispatch(it->d->t) || kt_on_io_thread(it->d->t))
		it->d->wrong_thread = true;
	it->d->order[it->d->n++] = it->i;
	free(it);
}

static void d_slow(void *arg)
{
	dlog_t *d = arg;
	uv_sleep(100);
	atomic_store(&d->slow_done, 1);
}

static void dispatch_many(dlog_t *d, int from, int to)
{
	for (int i = from; i < to; i++) {
		ditem_t *it = malloc(sizeof *it);
		it->d = d;
		it->i = i;
		assert_int_equal(kt_dispatch(d->t, d_record, it), 0);
	}
}

static void test_dispatch_runs_in_order_and_flush_waits(void **state)
{
	(void)state;
	char ep[64];
	snprintf(ep, sizeof ep, "127.0.0.1:%d", closed_port());
	kt_t *t = kt_open1(ep);
	dlog_t *d = calloc(1, sizeof *d);
	d->t = t;
	assert_false(kt_on_dispatch(t));
	assert_false(kt_on_io_thread(t));
	dispatch_many(d, 0, 1000);
	kt_dispatch_flush(t);
	assert_int_equal(d->n, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(d->order[i], i);
	assert_false(d->wrong_thread);
	assert_int_equal(kt_dispatch(t, d_slow, d), 0);
	kt_dispatch_flush(t);
	assert_int_equal(atomic_load(&d->slow_done), 1);
	/* kt_free runs what is still queued. */
	atomic_store(&d->slow_done, 0);
	assert_int_equal(kt_dispatch(t, d_slow, d), 0);
	kt_free(t);
	assert_int_equal(atomic_load(&d->slow_done), 1);
	free(d);
}

typedef struct {
	kt_t *t;
	dlog_t *d;
} upost_t;

/* From the I/O thread, as the watch and lease hubs do. */
static void u_from_io(void *arg)
{
	upost_t *u = arg;
	dispatch_many(u->d, 500, 1000);
}

static void test_dispatch_on_the_users_loop(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	char ep[64];
	snprintf(ep, sizeof ep, "127.0.0.1:%d", closed_port());
	const char *eps[1] = {ep};
	kt_options_t o;
	opts_init(&o, eps, 1);
	o.user_loop = &loop;
	kt_t *t;
	keel_error_t err;
	assert_int_equal(kt_new(&o, &t, &err), 0);
	dlog_t *d = calloc(1, sizeof *d);
	d->t = t;
	assert_true(kt_on_dispatch(t));
	dispatch_many(d, 0, 500);
	upost_t u = {t, d};
	assert_int_equal(kt_post(t, u_from_io, &u), 0);
	uint64_t end = now_ms() + 3000;
	while (d->n < 1000 && now_ms() < end)
		uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(1);
	assert_int_equal(d->n, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(d->order[i], i);
	assert_false(d->wrong_thread);
	/* Queued but not yet run: kt_free runs it. */
	atomic_store(&d->slow_done, 0);
	assert_int_equal(kt_dispatch(t, d_slow, d), 0);
	kt_free(t);
	assert_int_equal(atomic_load(&d->slow_done), 1);
	uv_run(&loop, UV_RUN_DEFAULT); /* lets the async handle close */
	assert_int_equal(uv_loop_close(&loop), 0);
	free(d);
}

/* ---- kt_free under load ------------------------------------------------------------ */

typedef struct {
	kt_t *t;
	int rc;
	keel_error_t err;
} hanger_t;

static void hanger_main(void *arg)
{
	hanger_t *h = arg;
	h->rc = call_str(h->t, "/test.T/Hang", NULL, "x", -1, false, NULL, 0, &h->err);
}

static void test_deeply_nested_txn_response_is_refused_not_a_crash(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	const char *eps[1] = {srv_ep(s, ep, sizeof ep)};
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = eps;
	o.n_endpoints = 1;
	keel_t *k = NULL;
	keel_error_t err;
	assert_int_equal(keel_connect(&o, &k, &err), 0);
	keel_txn_t *txn = keel_txn_new();
	assert_non_null(txn);
	keel_txn_result_t *res = NULL;
	assert_int_equal(keel_txn_commit(k, txn, &res, &err), KEEL_CODE_INTERNAL);
	assert_null(res);
	assert_non_null(strstr(err.message, "nested deeper"));
	keel_txn_free(txn);
	keel_close(k);
	srv_free(s);
}

/* The leader's URL comes from the server's membership; a hostile one naming the leader
 * twice must not leak (the ASan build checks). */
static void test_move_leader_takes_the_first_url_of_a_repeated_leader(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	const char *eps[1] = {srv_ep(s, ep, sizeof ep)};
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = eps;
	o.n_endpoints = 1;
	keel_t *k = NULL;
	keel_error_t err;
	assert_int_equal(keel_connect(&o, &k, &err), 0);
	keel_endpoint_req_t req = {.target_id = 2};
	int rc = keel_move_leader(k, &req, NULL, &err);
	if (rc != 0)
		print_error("move-leader: %s\n", err.message);
	assert_int_equal(rc, 0);
	keel_close(k);
	srv_free(s);
}

typedef struct {
	atomic_int created, canceled;
	char reason[128];
} wrec_t;

static void wrec_on_watch(void *ud, const keel_watch_resp_t *r)
{
	wrec_t *w = ud;
	if (r->created)
		atomic_store(&w->created, 1);
	if (r->canceled) {
		snprintf(w->reason, sizeof w->reason, "%s", r->cancel_reason);
		atomic_store(&w->canceled, 1);
	}
}

static void test_unrequested_watch_fragments_are_bounded(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	const char *eps[1] = {srv_ep(s, ep, sizeof ep)};
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = eps;
	o.n_endpoints = 1;
	keel_t *k = NULL;
	keel_error_t err;
	assert_int_equal(keel_connect(&o, &k, &err), 0);
	wrec_t rec;
	memset(&rec, 0, sizeof rec);
	keel_watch_req_t wr = {.key = "k", .key_len = 1};
	keel_watch_t *w = NULL;
	assert_int_equal(keel_watch(k, &wr, wrec_on_watch, &rec, &w, &err), 0);
	assert_int_equal(atomic_load(&rec.created), 1);
	uint64_t until = now_ms() + 20000;
	while (!atomic_load(&rec.canceled) && now_ms() < until)
		uv_sleep(10);
	assert_int_equal(atomic_load(&rec.canceled), 1);
	assert_non_null(strstr(rec.reason, "fragment"));
	keel_watch_cancel(w);
	keel_close(k);
	srv_free(s);
}

static void test_free_with_streams_and_calls_in_flight(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	bidi_t b[3];
	for (int i = 0; i < 3; i++) {
		bidi_init(&b[i], t, "/test.T/Bidi");
		b[i].send_on_open = 2;
		assert_int_equal(kt_post(t, b_open, &b[i]), 0);
	}
	hanger_t h[4];
	uv_thread_t th[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (hanger_t){.t = t};
		assert_int_equal(uv_thread_create(&th[i], hanger_main, &h[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		bidi_wait(&b[i], &b[i].msgs, 2, 3000);
	wait_for(&s->hang_started, 4, 3000);
	kt_free(t);
	for (int i = 0; i < 4; i++) {
		uv_thread_join(&th[i]);
		assert_int_equal(h[i].rc, KEEL_CODE_CANCELLED);
		assert_int_equal(h[i].err.kind, KEEL_E_CLOSED);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(b[i].closed, 1);
		assert_int_equal(b[i].opens, 1);
		uv_mutex_destroy(&b[i].mu);
	}
	wait_for(&s->hang_closed, 4, 3000);
	srv_free(s);
}

/* ---- the round-trip rate (printed, not asserted) ----------------------------------- */

static void test_round_trip_rate(void **state)
{
	(void)state;
	tsrv_t *s = srv_start("A");
	char ep[64];
	kt_t *t = kt_open1(srv_ep(s, ep, sizeof ep));
	run_workers(t, 1, 200); /* warm up */
	double r1 = run_workers(t, 1, 5000);
	double r8 = run_workers(t, 8, 2500);
	printf("transport: unary round trips on loopback: 1 thread %.0f calls/s, 8 threads "
	       "%.0f calls/s\n",
	       r1, r8);
	kt_free(t);
	srv_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errkind_recognises_etcd_messages),
		cmocka_unit_test(test_new_rejects_bad_endpoints),
		cmocka_unit_test(test_unary_echo_round_trips),
		cmocka_unit_test(test_many_threads_share_one_connection),
		cmocka_unit_test(test_request_headers_follow_grpc),
		cmocka_unit_test(test_reconnects_when_the_server_comes_back),
		cmocka_unit_test(test_ten_mib_each_way),
		cmocka_unit_test(test_server_status_and_encoded_message_reach_the_caller),
		cmocka_unit_test(test_deadline_resets_the_stream),
		cmocka_unit_test(test_failover_skips_a_closed_port),
		cmocka_unit_test(test_unavailable_is_retried_only_when_idempotent),
		cmocka_unit_test(test_all_endpoints_dead_fails_without_hanging),
		cmocka_unit_test(test_server_stream_delivers_every_message),
		cmocka_unit_test(test_bidi_stream_carries_messages_both_ways),
		cmocka_unit_test(test_stream_close_sends_what_was_queued_first),
		cmocka_unit_test(test_stream_ended_by_server_is_broken_then_reopened),
		cmocka_unit_test(test_stream_moves_to_the_other_endpoint_when_its_server_goes),
		cmocka_unit_test(test_dial_timeout_moves_on_from_a_hanging_connect),
		cmocka_unit_test(test_keepalive_declares_a_silent_server_dead),
		cmocka_unit_test(test_keepalive_keeps_a_slow_call_on_a_live_server),
		cmocka_unit_test(test_malformed_responses_become_clear_errors),
		cmocka_unit_test(test_dispatch_runs_in_order_and_flush_waits),
		cmocka_unit_test(test_dispatch_on_the_users_loop),
		cmocka_unit_test(test_deeply_nested_txn_response_is_refused_not_a_crash),
		cmocka_unit_test(test_move_leader_takes_the_first_url_of_a_repeated_leader),
		cmocka_unit_test(test_unrequested_watch_fragments_are_bounded),
		cmocka_unit_test(test_free_with_streams_and_calls_in_flight),
		cmocka_unit_test(test_round_trip_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
