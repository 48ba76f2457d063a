/* tests/unit/test_grpc.c — the gRPC front through its public API, driven by a small
 * nghttp2 client over real loopback sockets on the same thread as the server's uv loop
 * (the test pumps both), plus raw connections fed by hand. No disk is touched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpc.h"

#define MAX_STREAMS 16
#define MAX_CLOSED 64

/* ---- the client ---- */

typedef struct tstream {
	int32_t id;
	/* request body still to send */
	uint8_t *body;
	size_t blen, boff;
	bool end;
	size_t chunk; /* at most this many body bytes per DATA frame (0: no limit) */
	/* response */
	uint8_t *data;
	size_t len, cap;
	char status[512];
	char ctype[512];
	int grpc_status;
	char grpc_message[512];
	int header_frames;
	bool headers_end_stream; /* the first HEADERS frame carried END_STREAM */
	bool closed;
	uint32_t close_err;
} tstream_t;

typedef struct tclient {
	int fd;
	nghttp2_session *h2;
	tstream_t st[MAX_STREAMS];
	int n;
	size_t read_limit; /* bytes read per pump; 0: 64 KiB */
	bool eof;
	bool goaway;
	uint8_t *out; /* raw mode: bytes for the server */
	size_t out_len, out_cap;
} tclient_t;

static void buf_append(uint8_t **p, size_t *len, size_t *cap, const uint8_t *d, size_t n)
{
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 1024;
		while (c < *len + n)
			c *= 2;
		*p = realloc(*p, c);
		assert_non_null(*p);
		*cap = c;
	}
	memcpy(*p + *len, d, n);
	*len += n;
}

static tstream_t *client_stream(tclient_t *tc, int32_t id)
{
	for (int i = 0; i < tc->n; i++)
		if (tc->st[i].id == id)
			return &tc->st[i];
	return NULL;
}

static ssize_t cl_send(nghttp2_session *h2, const uint8_t *d, size_t n, int flags, void *ud)
{
	tclient_t *tc = ud;
	(void)h2;
	(void)flags;
	if (tc->fd < 0) {
		buf_append(&tc->out, &tc->out_len, &tc->out_cap, d, n);
		return (ssize_t)n;
	}
	ssize_t w = send(tc->fd, d, n, MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return NGHTTP2_ERR_WOULDBLOCK;
	return w < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : w;
}

static int cl_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	tstream_t *s = client_stream(ud, f->hd.stream_id);
	(void)h2;
	(void)flags;
	if (!s)
		return 0;
	char v[512];
	snprintf(v, sizeof v, "%.*s", (int)vl, value);
	if (nl == 7 && !memcmp(name, ":status", 7))
		snprintf(s->status, sizeof s->status, "%s", v);
	else if (nl == 12 && !memcmp(name, "content-type", 12))
		snprintf(s->ctype, sizeof s->ctype, "%s", v);
	else if (nl == 11 && !memcmp(name, "grpc-status", 11))
		s->grpc_status = atoi(v);
	else if (nl == 12 && !memcmp(name, "grpc-message", 12))
		snprintf(s->grpc_message, sizeof s->grpc_message, "%s", v);
	return 0;
}

static int cl_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	tclient_t *tc = ud;
	(void)h2;
	if (f->hd.type == NGHTTP2_GOAWAY)
		tc->goaway = true;
	tstream_t *s = client_stream(tc, f->hd.stream_id);
	if (s && f->hd.type == NGHTTP2_HEADERS) {
		if (s->header_frames++ == 0)
			s->headers_end_stream = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	}
	return 0;
}

static int cl_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		   void *ud)
{
	tstream_t *s = client_stream(ud, id);
	(void)h2;
	(void)flags;
	if (s)
		buf_append(&s->data, &s->len, &s->cap, d, n);
	return 0;
}

static int cl_close(nghttp2_session *h2, int32_t id, uint32_t err, void *ud)
{
	tstream_t *s = client_stream(ud, id);
	(void)h2;
	if (s) {
		s->closed = true;
		s->close_err = err;
	}
	return 0;
}

static ssize_t cl_read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	tstream_t *s = src->ptr;
	(void)h2;
	(void)id;
	(void)ud;
	size_t n = s->blen - s->boff;
	if (n > len)
		n = len;
	if (s->chunk && n > s->chunk)
		n = s->chunk;
	memcpy(buf, s->body + s->boff, n);
	s->boff += n;
	if (s->boff == s->blen) {
		if (s->end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (n == 0)
			return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

static void client_init(tclient_t *tc, int fd)
{
	nghttp2_session_callbacks *cb;
	memset(tc, 0, sizeof *tc);
	tc->fd = fd;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_send_callback(cb, cl_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_close);
	assert_int_equal(nghttp2_session_client_new(&tc->h2, cb, tc), 0);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(tc->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void client_connect(tclient_t *tc, int port)
{
	client_init(tc, tcp_connect(port));
}

/* A client that grants the server 16 MiB of flow-control credit up front, so only TCP
 * (and the server's own write limit) holds a response back. */
static void client_connect_wide(tclient_t *tc, int port)
{
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20};
	int fd = socket(AF_INET, SOCK_STREAM, 0), small = 64 * 1024;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	client_init(tc, fd);
	assert_int_equal(nghttp2_submit_settings(tc->h2, NGHTTP2_FLAG_NONE, &iv, 1), 0);
	assert_int_equal(nghttp2_session_set_local_window_size(tc->h2, NGHTTP2_FLAG_NONE, 0,
							       16 << 20),
			 0);
}

static void client_free(tclient_t *tc)
{
	if (tc->fd >= 0)
		close(tc->fd);
	tc->fd = -1;
	nghttp2_session_del(tc->h2);
	for (int i = 0; i < tc->n; i++) {
		free(tc->st[i].body);
		free(tc->st[i].data);
	}
	free(tc->out);
	memset(tc, 0, sizeof *tc);
	tc->fd = -1;
}

/* Frames a message as gRPC does (flag 0). */
static void frame_msg(uint8_t **p, size_t *len, size_t *cap, const void *msg, size_t n)
{
	uint8_t pre[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			  (uint8_t)n};
	buf_append(p, len, cap, pre, 5);
	buf_append(p, len, cap, msg, n);
}

/* Opens a stream; body (already framed) is sent, END_STREAM after it if end. extra is
 * "name", "value" pairs, NULL-terminated. ctype NULL leaves content-type out. */
static tstream_t *client_call(tclient_t *tc, const char *path, const char *ctype,
			      const uint8_t *body, size_t blen, bool end, const char **extra)
{
	nghttp2_nv nv[16];
	int n = 0;
#define NV(nm, vl) \
	(nv[n++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(vl), strlen(nm), strlen(vl), 0})
	NV(":method", "POST");
	NV(":scheme", "http");
	NV(":path", path);
	NV(":authority", "localhost");
	if (ctype)
		NV("content-type", ctype);
	NV("te", "trailers");
	for (int i = 0; extra && extra[i]; i += 2)
		NV(extra[i], extra[i + 1]);
#undef NV
	assert_true(tc->n < MAX_STREAMS);
	tstream_t *s = &tc->st[tc->n++];
	memset(s, 0, sizeof *s);
	s->grpc_status = -1;
	if (blen) {
		s->body = malloc(blen);
		memcpy(s->body, body, blen);
	}
	s->blen = blen;
	s->end = end;
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = cl_read_body};
	s->id = nghttp2_submit_request(tc->h2, NULL, nv, (size_t)n,
				       (blen || !end) ? &dp : NULL, NULL);
	assert_true(s->id > 0);
	return s;
}

static void client_send_more(tclient_t *tc, tstream_t *s, const uint8_t *d, size_t n, bool end)
{
	size_t cap = s->blen;
	buf_append(&s->body, &s->blen, &cap, d, n);
	s->end = end;
	nghttp2_session_resume_data(tc->h2, s->id);
}

static tstream_t *client_unary(tclient_t *tc, const char *path, const void *msg, size_t n)
{
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, msg, n);
	tstream_t *s = client_call(tc, path, "application/grpc", b, len, true, NULL);
	free(b);
	return s;
}

/* ---- the server side ---- */

typedef struct fx {
	uv_loop_t loop;
	grpc_server_t *srv;
	int port;
	int n_messages;
	int n_half_close;
	int n_close;
	grpc_call_t *closed[MAX_CLOSED];
	bool duplicate_close;
	grpc_call_t *held[MAX_STREAMS];
	int n_held;
	bool done;
	size_t max_pending;
	grpc_call_t *big; /* the Big call until it closes */
} fx_t;

static fx_t *fx_of(void *ud)
{
	return ud;
}

static void on_close(void *ud, grpc_call_t *call)
{
	static int closed_mark;
	fx_t *fx = fx_of(ud);
	if (call == fx->big)
		fx->big = NULL;
	/* a freed call's address comes back for later calls: mark the call, not the address */
	if (grpc_call_user(call) == &closed_mark)
		fx->duplicate_close = true;
	grpc_call_set_user(call, &closed_mark);
	if (fx->n_close < MAX_CLOSED)
		fx->closed[fx->n_close] = call;
	fx->n_close++;
}

static void echo_unary(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	fx_of(ud)->n_messages++;
	assert_int_equal(grpc_call_send(call, msg, len), 0);
	grpc_call_finish(call, GRPC_OK, NULL);
	/* after finish: sends are refused, the message is still readable */
	assert_int_equal(grpc_call_send(call, msg, len), -1);
	if (len)
		assert_int_equal(msg[len - 1], msg[len - 1]);
}

static void echo_stream(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	fx_of(ud)->n_messages++;
	assert_int_equal(grpc_call_send(call, msg, len), 0);
}

static void finish_ok(void *ud, grpc_call_t *call)
{
	fx_of(ud)->n_half_close++;
	grpc_call_finish(call, GRPC_OK, "");
}

static void hold_message(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	fx_t *fx = fx_of(ud);
	(void)msg;
	(void)len;
	fx->n_messages++;
	if (grpc_call_user(call) == NULL && fx->n_held < MAX_STREAMS) {
		grpc_call_set_user(call, fx);
		fx->held[fx->n_held++] = call;
	}
}

/* Its message is the text of the error it answers with. */
static void fail_unary(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	char text[256];
	fx_of(ud)->n_messages++;
	snprintf(text, sizeof text, "%.*s", (int)len, msg);
	grpc_call_finish(call, GRPC_FAILED_PRECONDITION, text);
}

#define BIG_MSG (64 * 1024)
#define BIG_COUNT 128

static uint8_t big_byte(uint32_t msg, size_t at)
{
	return (uint8_t)(msg * 31 + at * 7 + (at >> 9));
}

static void big_unary(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	fx_t *fx = fx_of(ud);
	uint8_t *m = malloc(BIG_MSG);
	(void)msg;
	(void)len;
	fx->n_messages++;
	for (uint32_t i = 0; i < BIG_COUNT; i++) {
		for (size_t j = 0; j < BIG_MSG; j++)
			m[j] = big_byte(i, j);
		assert_int_equal(grpc_call_send(call, m, BIG_MSG), 0);
	}
	fx->max_pending = grpc_call_pending_bytes(call);
	fx->big = call;
	free(m);
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Answers with the value of the "hasleader" request header. */
static void header_unary(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	const char *v = grpc_call_header(call, "hasleader");
	(void)msg;
	(void)len;
	fx_of(ud)->n_messages++;
	assert_ptr_equal(grpc_call_method(call)->on_message, header_unary);
	if (!v)
		v = "(none)";
	grpc_call_send(call, (const uint8_t *)v, strlen(v));
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Ends the call on its first message, whatever follows in the same frame. */
static void first_only(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	fx_of(ud)->n_messages++;
	grpc_call_send(call, msg, len);
	grpc_call_finish(call, GRPC_ABORTED, "enough");
	grpc_call_finish(call, GRPC_OK, NULL); /* second finish is a no-op */
}

static const grpc_method_t methods[] = {
	{"/test.Echo/Unary", false, echo_unary, NULL, on_close},
	{"/test.Echo/Stream", true, echo_stream, finish_ok, on_close},
	{"/test.Echo/Hold", true, hold_message, NULL, on_close},
	{"/test.Echo/Fail", false, fail_unary, NULL, on_close},
	{"/test.Echo/Big", false, big_unary, NULL, on_close},
	{"/test.Echo/Header", false, header_unary, NULL, on_close},
	{"/test.Echo/FirstOnly", true, first_only, NULL, on_close},
	{"/test.Other/Thing", false, echo_unary, NULL, on_close},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static void fx_start(fx_t *fx, size_t max_recv)
{
	grpc_server_options_t opt;
	char err[256];
	grpc_server_options_default(&opt);
	if (max_recv)
		opt.max_recv_msg_size = max_recv;
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(grpc_server_new(&fx->loop, methods, N_METHODS, fx, &opt, &fx->srv), 0);
	assert_int_equal(grpc_server_listen(fx->srv, "127.0.0.1", 0, err, sizeof err), 0);
	fx->port = grpc_server_port(fx->srv, 0);
	assert_true(fx->port > 0);
}

static int fx_setup(void **state)
{
	fx_t *fx = calloc(1, sizeof *fx);
	fx_start(fx, 0);
	*state = fx;
	return 0;
}

static void on_server_done(void *arg)
{
	((fx_t *)arg)->done = true;
}

static void fx_stop(fx_t *fx)
{
	grpc_server_close(fx->srv, on_server_done, fx);
	for (int i = 0; i < 1000 && !fx->done; i++)
		uv_run(&fx->loop, UV_RUN_NOWAIT);
	assert_true(fx->done);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	assert_false(fx->duplicate_close);
}

static int fx_teardown(void **state)
{
	fx_t *fx = *state;
	fx_stop(fx);
	free(fx);
	return 0;
}

/* One turn: the client writes and reads what it can, the server's loop runs once. */
static void pump(fx_t *fx, tclient_t *tc)
{
	uint8_t buf[64 * 1024];
	if (tc && tc->h2 && tc->fd >= 0 && !tc->eof) {
		nghttp2_session_send(tc->h2);
		struct pollfd p = {tc->fd, POLLIN, 0};
		if (poll(&p, 1, 1) > 0) {
			size_t lim = tc->read_limit ? tc->read_limit : sizeof buf;
			ssize_t n = recv(tc->fd, buf, lim < sizeof buf ? lim : sizeof buf, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				tc->eof = true;
			else if (n > 0)
				assert_int_equal(nghttp2_session_mem_recv(tc->h2, buf, (size_t)n),
						 n);
			nghttp2_session_send(tc->h2);
		}
	}
	uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define PUMP_UNTIL(fx, tc, cond)                                        \
	do {                                                            \
		double until_ = now_s() + 20;                           \
		while (!(cond) && now_s() < until_)                     \
			pump((fx), (tc));                               \
		assert_true(cond);                                      \
	} while (0)

static void pump_for(fx_t *fx, tclient_t *tc, int turns)
{
	for (int i = 0; i < turns; i++)
		pump(fx, tc);
}

static void assert_framed(const tstream_t *s, const void *msg, size_t n)
{
	assert_int_equal(s->len, n + 5);
	assert_int_equal(s->data[0], 0);
	assert_int_equal((size_t)s->data[1] << 24 | (size_t)s->data[2] << 16 |
				 (size_t)s->data[3] << 8 | s->data[4],
			 n);
	assert_memory_equal(s->data + 5, msg, n);
}

/* ---- tests ---- */

static void test_unary_echo_round_trips(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect(&tc, fx->port);
	tstream_t *s = client_unary(&tc, "/test.Echo/Unary", "hello", 5);
	PUMP_UNTIL(fx, &tc, s->closed && fx->n_close == 1);
	assert_string_equal(s->status, "200");
	assert_string_equal(s->ctype, "application/grpc");
	assert_int_equal(s->grpc_status, GRPC_OK);
	assert_string_equal(s->grpc_message, "");
	assert_int_equal(s->header_frames, 2); /* response headers, then trailers */
	assert_false(s->headers_end_stream);
	assert_int_equal(s->close_err, NGHTTP2_NO_ERROR);
	assert_framed(s, "hello", 5);
	assert_int_equal(fx->n_messages, 1);
	assert_int_equal(nghttp2_session_get_remote_settings(
				 tc.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
			 1000);
	client_free(&tc);
}

static void test_unary_sees_request_headers(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	const char *extra[] = {"hasleader", "true", NULL};
	client_connect(&tc, fx->port);
	frame_msg(&b, &len, &cap, "", 0);
	tstream_t *s1 = client_call(&tc, "/test.Echo/Header", "application/grpc+proto", b, len,
				    true, extra);
	tstream_t *s2 = client_call(&tc, "/test.Echo/Header", "application/grpc", b, len, true,
				    NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, s1->closed && s2->closed);
	assert_framed(s1, "true", 4);
	assert_framed(s2, "(none)", 6);
	client_free(&tc);
}

/* Every stream echoes its messages, framed as they came, whatever the DATA boundaries. */
static void test_streams_echo_many_messages_concurrently(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	enum { STREAMS = 5, MSGS = 300 };
	uint8_t *want[STREAMS] = {0};
	size_t wlen[STREAMS] = {0}, wcap[STREAMS] = {0};
	tstream_t *s[STREAMS];
	client_connect(&tc, fx->port);
	for (int i = 0; i < STREAMS; i++) {
		s[i] = client_call(&tc, "/test.Echo/Stream", "application/grpc", NULL, 0, false,
				   NULL);
		s[i]->chunk = 997 + 13 * (size_t)i; /* messages straddle DATA frames */
	}
	for (int m = 0; m < MSGS; m++) {
		for (int i = 0; i < STREAMS; i++) {
			uint8_t msg[3000];
			size_t n = (size_t)(m * 37 + i * 101) % sizeof msg;
			for (size_t j = 0; j < n; j++)
				msg[j] = (uint8_t)(m + i + j);
			size_t before = wlen[i];
			frame_msg(&want[i], &wlen[i], &wcap[i], msg, n);
			client_send_more(&tc, s[i], want[i] + before, wlen[i] - before,
					 m == MSGS - 1);
		}
		if (m % 50 == 0)
			pump(fx, &tc);
	}
	PUMP_UNTIL(fx, &tc, s[0]->closed && s[1]->closed && s[2]->closed && s[3]->closed &&
				    s[4]->closed);
	for (int i = 0; i < STREAMS; i++) {
		assert_int_equal(s[i]->grpc_status, GRPC_OK);
		assert_int_equal(s[i]->len, wlen[i]);
		assert_memory_equal(s[i]->data, want[i], wlen[i]);
		free(want[i]);
	}
	assert_int_equal(fx->n_messages, STREAMS * MSGS);
	assert_int_equal(fx->n_half_close, STREAMS);
	PUMP_UNTIL(fx, &tc, fx->n_close == STREAMS);
	client_free(&tc);
}

static void test_unknown_service_and_method_are_unimplemented(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect(&tc, fx->port);
	tstream_t *svc = client_unary(&tc, "/etcdserverpb.Foo/Bar", "x", 1);
	tstream_t *meth = client_unary(&tc, "/test.Echo/Bar", "x", 1);
	tstream_t *bad = client_unary(&tc, "/nopath", "x", 1);
	PUMP_UNTIL(fx, &tc, svc->closed && meth->closed && bad->closed);
	assert_int_equal(svc->grpc_status, GRPC_UNIMPLEMENTED);
	assert_string_equal(svc->grpc_message, "unknown service etcdserverpb.Foo");
	assert_int_equal(meth->grpc_status, GRPC_UNIMPLEMENTED);
	assert_string_equal(meth->grpc_message, "unknown method Bar for service test.Echo");
	/* grpc-go 1.26 (etcd 3.4) answers a path without a method so */
	assert_int_equal(bad->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(bad->grpc_message, "malformed method name: \"/nopath\"");
	assert_int_equal(fx->n_messages, 0);
	assert_int_equal(fx->n_close, 0); /* the owner never saw these calls */
	client_free(&tc);
}

static void test_error_before_any_message_is_trailers_only(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect(&tc, fx->port);
	tstream_t *s = client_unary(&tc, "/test.Echo/Fail", "no leader", 9);
	PUMP_UNTIL(fx, &tc, s->closed && fx->n_close == 1);
	assert_int_equal(s->header_frames, 1);
	assert_true(s->headers_end_stream);
	assert_string_equal(s->status, "200");
	assert_string_equal(s->ctype, "application/grpc");
	assert_int_equal(s->grpc_status, GRPC_FAILED_PRECONDITION);
	assert_string_equal(s->grpc_message, "no leader");
	assert_int_equal(s->len, 0);
	client_free(&tc);
}

static void test_grpc_message_is_percent_encoded(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	const char text[] = "100% sure: caf\xc3\xa9\n~ok";
	client_connect(&tc, fx->port);
	tstream_t *s = client_unary(&tc, "/test.Echo/Fail", text, strlen(text));
	PUMP_UNTIL(fx, &tc, s->closed);
	assert_string_equal(s->grpc_message, "100%25 sure: caf%C3%A9%0A~ok");
	client_free(&tc);
}

static void test_oversized_message_is_refused_and_connection_serves_on(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t big[2000];
	memset(big, 'b', sizeof big);
	fx_stop(fx);
	memset(fx, 0, sizeof *fx);
	fx_start(fx, 1024);
	client_connect(&tc, fx->port);
	tstream_t *s = client_unary(&tc, "/test.Echo/Unary", big, sizeof big);
	PUMP_UNTIL(fx, &tc, s->closed);
	assert_int_equal(s->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(s->grpc_message,
			    "grpc: received message larger than max (2000 vs. 1024)");
	assert_int_equal(fx->n_messages, 0);
	/* a streaming call too, its limit hit mid-stream */
	tstream_t *st = client_call(&tc, "/test.Echo/Stream", "application/grpc", NULL, 0,
				    false, NULL);
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "small", 5);
	frame_msg(&b, &len, &cap, big, 1025);
	client_send_more(&tc, st, b, len, false);
	free(b);
	PUMP_UNTIL(fx, &tc, st->closed);
	assert_int_equal(st->grpc_status, GRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st->grpc_message,
			    "grpc: received message larger than max (1025 vs. 1024)");
	assert_int_equal(fx->n_messages, 1);
	/* the connection still serves */
	tstream_t *ok = client_unary(&tc, "/test.Echo/Unary", big, 1024);
	PUMP_UNTIL(fx, &tc, ok->closed && fx->n_close == 3);
	assert_int_equal(ok->grpc_status, GRPC_OK);
	assert_framed(ok, big, 1024);
	client_free(&tc);
}

static void test_compressed_messages_are_refused_as_grpc_go_does(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	const uint8_t flagged[] = {1, 0, 0, 0, 2, 'h', 'i'};
	const uint8_t odd[] = {2, 0, 0, 0, 2, 'h', 'i'};
	const char *gzip[] = {"grpc-encoding", "gzip", NULL};
	client_connect(&tc, fx->port);
	tstream_t *a = client_call(&tc, "/test.Echo/Unary", "application/grpc", flagged,
				   sizeof flagged, true, NULL);
	tstream_t *b = client_call(&tc, "/test.Echo/Unary", "application/grpc", odd, sizeof odd,
				   true, NULL);
	tstream_t *c = client_call(&tc, "/test.Echo/Unary", "application/grpc", flagged,
				   sizeof flagged, true, gzip);
	PUMP_UNTIL(fx, &tc, a->closed && b->closed && c->closed);
	assert_int_equal(a->grpc_status, GRPC_INTERNAL);
	assert_string_equal(a->grpc_message,
			    "grpc: compressed flag set with identity or empty encoding");
	assert_int_equal(b->grpc_status, GRPC_INTERNAL);
	assert_string_equal(b->grpc_message, "grpc: received unexpected payload format 2");
	assert_int_equal(c->grpc_status, GRPC_UNIMPLEMENTED);
	assert_string_equal(c->grpc_message,
			    "grpc: Decompressor is not installed for grpc-encoding \"gzip\"");
	assert_int_equal(fx->n_messages, 0);
	client_free(&tc);
}

static void test_non_grpc_content_type_gets_415(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect(&tc, fx->port);
	tstream_t *s = client_call(&tc, "/test.Echo/Unary", "application/json", NULL, 0, true,
				   NULL);
	tstream_t *none = client_call(&tc, "/test.Echo/Unary", NULL, NULL, 0, true, NULL);
	PUMP_UNTIL(fx, &tc, s->closed && none->closed);
	assert_string_equal(s->status, "415");
	assert_int_equal(s->grpc_status, GRPC_INVALID_ARGUMENT);
	assert_string_equal(s->grpc_message,
			    "invalid gRPC request content-type \"application/json\"");
	assert_string_equal(none->status, "415");
	assert_string_equal(none->grpc_message, "invalid gRPC request content-type \"\"");
	client_free(&tc);
}

static void test_truncated_message_is_unexpected_eof_and_no_message_is_eof(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	const uint8_t cut[] = {0, 0, 0, 0, 3, 'a'};
	client_connect(&tc, fx->port);
	tstream_t *s = client_call(&tc, "/test.Echo/Unary", "application/grpc", cut, sizeof cut,
				   true, NULL);
	tstream_t *empty = client_call(&tc, "/test.Echo/Unary", "application/grpc", NULL, 0,
				       true, NULL);
	PUMP_UNTIL(fx, &tc, s->closed && empty->closed && fx->n_close == 2);
	assert_int_equal(s->grpc_status, GRPC_UNKNOWN);
	assert_string_equal(s->grpc_message, "unexpected EOF");
	assert_int_equal(empty->grpc_status, GRPC_UNKNOWN);
	assert_string_equal(empty->grpc_message, "EOF"); /* grpc-go: io.EOF, no message at all */
	assert_int_equal(fx->n_messages, 0);
	client_free(&tc);
}

static void test_finish_inside_on_message_drops_the_rest(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	for (int i = 0; i < 10; i++)
		frame_msg(&b, &len, &cap, "m", 1);
	client_connect(&tc, fx->port);
	/* client keeps its side open: the server's end resets it (NO_ERROR) */
	tstream_t *s = client_call(&tc, "/test.Echo/FirstOnly", "application/grpc", b, len,
				   false, NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, s->closed && fx->n_close == 1);
	assert_int_equal(fx->n_messages, 1);
	assert_int_equal(s->grpc_status, GRPC_ABORTED);
	assert_string_equal(s->grpc_message, "enough");
	assert_framed(s, "m", 1);
	assert_int_equal(s->close_err, NGHTTP2_NO_ERROR);
	client_free(&tc);
}

static void test_client_reset_closes_call_once(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_connect(&tc, fx->port);
	tstream_t *s = client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false,
				   NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 1);
	assert_int_equal(fx->n_close, 0);
	nghttp2_submit_rst_stream(tc.h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	PUMP_UNTIL(fx, &tc, fx->n_close == 1);
	assert_ptr_equal(fx->closed[0], fx->held[0]);
	pump_for(fx, &tc, 20);
	assert_int_equal(fx->n_close, 1);
	client_free(&tc);
}

static void test_connection_loss_closes_every_call(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_connect(&tc, fx->port);
	for (int i = 0; i < 3; i++)
		client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false, NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 3);
	close(tc.fd);
	tc.fd = -1;
	PUMP_UNTIL(fx, NULL, fx->n_close == 3);
	pump_for(fx, NULL, 20);
	assert_int_equal(fx->n_close, 3);
	client_free(&tc);
}

static void test_server_close_closes_open_calls(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_connect(&tc, fx->port);
	for (int i = 0; i < 2; i++)
		client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false, NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 2);
	grpc_server_close(fx->srv, on_server_done, fx);
	assert_int_equal(fx->n_close, 2);
	PUMP_UNTIL(fx, &tc, fx->done && tc.eof);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	client_free(&tc);
	/* the teardown's close needs a live server */
	memset(fx, 0, sizeof *fx);
	fx_start(fx, 0);
}

static void test_garbage_drops_only_its_connection(void **state)
{
	fx_t *fx = *state;
	tclient_t good, bad;
	const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	client_connect(&good, fx->port);
	tstream_t *s1 = client_unary(&good, "/test.Echo/Unary", "one", 3);
	PUMP_UNTIL(fx, &good, s1->closed);
	int fd = tcp_connect(fx->port);
	assert_int_equal(send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL), (ssize_t)sizeof junk - 1);
	/* the server closes it: read until EOF */
	bool eof = false;
	double until = now_s() + 10;
	while (!eof && now_s() < until) {
		uint8_t buf[4096];
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			eof = true;
	}
	assert_true(eof);
	close(fd);
	/* a valid client that later sends junk mid-session gets a GOAWAY and is dropped */
	client_connect(&bad, fx->port);
	tstream_t *b1 = client_unary(&bad, "/test.Echo/Unary", "b", 1);
	PUMP_UNTIL(fx, &bad, b1->closed);
	const uint8_t frame[] = {0, 0, 0, 0xee, 0, 0, 0, 0, 0}; /* bogus type: ignored */
	const uint8_t settings_bad[] = {0, 0, 3, 4, 0, 0, 0, 0, 0, 1, 2, 3}; /* size % 6 */
	assert_int_equal(send(bad.fd, frame, sizeof frame, MSG_NOSIGNAL), (ssize_t)sizeof frame);
	assert_int_equal(send(bad.fd, settings_bad, sizeof settings_bad, MSG_NOSIGNAL),
			 (ssize_t)sizeof settings_bad);
	PUMP_UNTIL(fx, &bad, bad.eof);
	/* the first connection still works */
	tstream_t *s2 = client_unary(&good, "/test.Echo/Unary", "two", 3);
	PUMP_UNTIL(fx, &good, s2->closed);
	assert_int_equal(s2->grpc_status, GRPC_OK);
	assert_framed(s2, "two", 3);
	client_free(&bad);
	client_free(&good);
}

static void test_large_response_to_slow_reader_arrives_in_order(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect(&tc, fx->port);
	tc.read_limit = 16 * 1024;
	tstream_t *s = client_unary(&tc, "/test.Echo/Big", "", 0);
	/* stall: the server must hold back without losing anything */
	for (int i = 0; i < 50; i++) {
		nghttp2_session_send(tc.h2);
		uv_run(&fx->loop, UV_RUN_NOWAIT);
	}
	PUMP_UNTIL(fx, &tc, s->closed);
	assert_int_equal(s->grpc_status, GRPC_OK);
	assert_int_equal(s->len, (size_t)BIG_COUNT * (BIG_MSG + 5));
	assert_true(fx->max_pending >= (size_t)BIG_COUNT * BIG_MSG); /* queued on the call */
	for (uint32_t i = 0; i < BIG_COUNT; i++) {
		const uint8_t *m = s->data + (size_t)i * (BIG_MSG + 5);
		assert_int_equal(m[0], 0);
		assert_int_equal((uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 |
					 (uint32_t)m[3] << 8 | m[4],
				 BIG_MSG);
		for (size_t j = 0; j < BIG_MSG; j++)
			if (m[5 + j] != big_byte(i, j))
				fail_msg("message %u byte %zu differs", i, j);
	}
	client_free(&tc);
}


/* Sends made outside any callback (a timer, another connection) go out on the next loop
 * turn. */
static void test_send_outside_callbacks_reaches_the_client(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_connect(&tc, fx->port);
	tstream_t *s = client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, true,
				   NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 1);
	assert_int_equal(grpc_call_send(fx->held[0], (const uint8_t *)"late", 4), 0);
	assert_int_equal(grpc_call_pending_bytes(fx->held[0]), 9);
	PUMP_UNTIL(fx, &tc, s->len == 9);
	assert_framed(s, "late", 4);
	assert_int_equal(grpc_call_pending_bytes(fx->held[0]), 0);
	assert_false(s->closed);
	grpc_call_finish(fx->held[0], GRPC_OK, NULL);
	PUMP_UNTIL(fx, &tc, s->closed && fx->n_close == 1);
	assert_int_equal(s->grpc_status, GRPC_OK);
	client_free(&tc);
}

/* With flow-control credit to spare, a client that does not read must still not make the
 * server copy the whole response into its socket queue: most of it stays on the call. */
static void test_unread_socket_keeps_response_on_the_call(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_connect_wide(&tc, fx->port);
	tstream_t *s = client_unary(&tc, "/test.Echo/Big", "", 0);
	PUMP_UNTIL(fx, &tc, fx->big != NULL);
	tc.read_limit = 1; /* barely reads, so the socket fills */
	for (int i = 0; i < 300; i++) {
		nghttp2_session_send(tc.h2);
		uv_run(&fx->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_non_null(fx->big);
	size_t pending = grpc_call_pending_bytes(fx->big);
	assert_true(pending > (size_t)2 << 20);
	tc.read_limit = 0;
	PUMP_UNTIL(fx, &tc, s->closed);
	assert_int_equal(s->grpc_status, GRPC_OK);
	assert_int_equal(s->len, (size_t)BIG_COUNT * (BIG_MSG + 5));
	client_free(&tc);
}

/* ---- raw connections ---- */

static void raw_write(void *arg, const uint8_t *d, size_t n)
{
	tclient_t *tc = arg;
	assert_true(nghttp2_session_mem_recv(tc->h2, d, n) == (ssize_t)n);
}

static void test_raw_conn_fed_byte_by_byte_decodes(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_init(&tc, -1);
	grpc_conn_t *c = grpc_conn_new_raw(fx->srv, raw_write, &tc);
	assert_non_null(c);
	tstream_t *u = client_unary(&tc, "/test.Echo/Unary", "unary", 5);
	tstream_t *st = client_call(&tc, "/test.Echo/Stream", "application/grpc", NULL, 0, false,
				    NULL);
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "abc", 3);
	frame_msg(&b, &len, &cap, "", 0);
	frame_msg(&b, &len, &cap, "defgh", 5);
	client_send_more(&tc, st, b, len, true);
	for (int round = 0; round < 20 && !(u->closed && st->closed); round++) {
		nghttp2_session_send(tc.h2);
		uint8_t *out = tc.out;
		size_t n = tc.out_len;
		tc.out = NULL;
		tc.out_len = tc.out_cap = 0;
		for (size_t i = 0; i < n; i++)
			assert_int_equal(grpc_conn_feed(c, out + i, 1), 0);
		free(out);
	}
	assert_true(u->closed && st->closed);
	assert_framed(u, "unary", 5);
	assert_int_equal(st->grpc_status, GRPC_OK);
	assert_int_equal(st->len, len);
	assert_memory_equal(st->data, b, len);
	free(b);
	assert_int_equal(fx->n_close, 2);
	/* bad bytes end it */
	const uint8_t junk[] = {0, 0, 3, 4, 0, 0, 0, 0, 0, 1, 2, 3};
	assert_true(grpc_conn_feed(c, junk, sizeof junk) < 0);
	assert_true(tc.goaway);
	grpc_conn_free(c);
	client_free(&tc);
}

static void test_raw_conn_free_closes_open_calls(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_init(&tc, -1);
	grpc_conn_t *c = grpc_conn_new_raw(fx->srv, raw_write, &tc);
	client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false, NULL);
	free(b);
	nghttp2_session_send(tc.h2);
	assert_int_equal(grpc_conn_feed(c, tc.out, tc.out_len), 0);
	assert_int_equal(fx->n_held, 1);
	grpc_conn_free(c);
	assert_int_equal(fx->n_close, 1);
	client_free(&tc);
}

static void test_bad_preface_is_refused(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	client_init(&tc, -1);
	grpc_conn_t *c = grpc_conn_new_raw(fx->srv, raw_write, &tc);
	const char junk[] = "PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n";
	assert_true(grpc_conn_feed(c, (const uint8_t *)junk, sizeof junk - 1) < 0);
	assert_true(grpc_conn_feed(c, (const uint8_t *)junk, 1) < 0);
	grpc_conn_free(c);
	client_free(&tc);
}

static void test_percent_encoding_and_malformed_names_on_listen_errors(void **state)
{
	fx_t *fx = *state;
	char err[256];
	assert_int_equal(grpc_server_listen(fx->srv, "not-an-ip", 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "not-an-ip"));
	assert_int_equal(grpc_server_listen(fx->srv, "127.0.0.1", fx->port, err, sizeof err), -1);
	assert_non_null(strstr(err, "listen"));
	assert_int_equal(grpc_server_port(fx->srv, 5), -1);
}

/* ---- adopted sockets (the embedded store's in-process connections) ---- */

/* One end of a socketpair served as a connection; the client holds the other end. */
static void client_adopt(fx_t *fx, tclient_t *tc)
{
	int sv[2];
	char err[256];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(grpc_server_adopt_fd(fx->srv, sv[0], err, sizeof err), 0);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	client_init(tc, sv[1]);
}

static void test_adopted_socketpair_serves_unary_and_streaming_calls(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	client_adopt(fx, &tc);
	tstream_t *u = client_unary(&tc, "/test.Echo/Unary", "hello", 5);
	frame_msg(&b, &len, &cap, "one", 3);
	frame_msg(&b, &len, &cap, "two", 3);
	tstream_t *st = client_call(&tc, "/test.Echo/Stream", "application/grpc", b, len, true,
				    NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, u->closed && st->closed && fx->n_close == 2);
	assert_int_equal(u->grpc_status, GRPC_OK);
	assert_framed(u, "hello", 5);
	assert_int_equal(st->grpc_status, GRPC_OK);
	assert_int_equal(st->len, 2 * (5 + 3));
	assert_memory_equal(st->data + 5, "one", 3);
	assert_memory_equal(st->data + 13, "two", 3);
	assert_int_equal(fx->n_messages, 3);
	assert_int_equal(fx->n_half_close, 1);
	client_free(&tc);
}

static void test_adopted_socket_closed_by_its_peer_closes_calls_and_frees(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_adopt(fx, &tc);
	for (int i = 0; i < 2; i++)
		client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false, NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 2);
	close(tc.fd);
	tc.fd = -1;
	PUMP_UNTIL(fx, NULL, fx->n_close == 2);
	pump_for(fx, NULL, 20);
	assert_int_equal(fx->n_close, 2);
	client_free(&tc);
}

static void test_server_close_ends_adopted_connections(void **state)
{
	fx_t *fx = *state;
	tclient_t tc;
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	frame_msg(&b, &len, &cap, "x", 1);
	client_adopt(fx, &tc);
	client_call(&tc, "/test.Echo/Hold", "application/grpc", b, len, false, NULL);
	free(b);
	PUMP_UNTIL(fx, &tc, fx->n_held == 1);
	grpc_server_close(fx->srv, on_server_done, fx);
	assert_int_equal(fx->n_close, 1);
	PUMP_UNTIL(fx, &tc, fx->done && tc.eof);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	client_free(&tc);
	/* the teardown's close needs a live server */
	memset(fx, 0, sizeof *fx);
	fx_start(fx, 0);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void test_adopt_fd_refusals_close_the_descriptor(void **state)
{
	fx_t *fx = *state;
	grpc_server_t *loopless;
	char err[256];
	int sv[2];
	/* not a descriptor at all */
	err[0] = '\0';
	assert_int_equal(grpc_server_adopt_fd(fx->srv, -1, err, sizeof err), -1);
	assert_non_null(strstr(err, "adopt fd -1"));
	/* a server without a loop cannot serve a socket: the descriptor is closed anyway */
	assert_int_equal(grpc_server_new(NULL, methods, N_METHODS, fx, NULL, &loopless), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(grpc_server_adopt_fd(loopless, sv[0], err, sizeof err), -1);
	assert_non_null(strstr(err, "no loop"));
	assert_false(fd_is_open(sv[0]));
	grpc_server_close(loopless, NULL, NULL);
	close(sv[1]);
	/* the failures left the real server serving */
	tclient_t tc;
	client_adopt(fx, &tc);
	tstream_t *u = client_unary(&tc, "/test.Echo/Unary", "ok", 2);
	PUMP_UNTIL(fx, &tc, u->closed && fx->n_close == 1);
	assert_framed(u, "ok", 2);
	client_free(&tc);
}

#define GRPC_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		GRPC_TEST(test_unary_echo_round_trips),
		GRPC_TEST(test_unary_sees_request_headers),
		GRPC_TEST(test_streams_echo_many_messages_concurrently),
		GRPC_TEST(test_unknown_service_and_method_are_unimplemented),
		GRPC_TEST(test_error_before_any_message_is_trailers_only),
		GRPC_TEST(test_grpc_message_is_percent_encoded),
		GRPC_TEST(test_oversized_message_is_refused_and_connection_serves_on),
		GRPC_TEST(test_compressed_messages_are_refused_as_grpc_go_does),
		GRPC_TEST(test_non_grpc_content_type_gets_415),
		GRPC_TEST(test_truncated_message_is_unexpected_eof_and_no_message_is_eof),
		GRPC_TEST(test_finish_inside_on_message_drops_the_rest),
		GRPC_TEST(test_client_reset_closes_call_once),
		GRPC_TEST(test_connection_loss_closes_every_call),
		GRPC_TEST(test_server_close_closes_open_calls),
		GRPC_TEST(test_garbage_drops_only_its_connection),
		GRPC_TEST(test_large_response_to_slow_reader_arrives_in_order),
		GRPC_TEST(test_send_outside_callbacks_reaches_the_client),
		GRPC_TEST(test_unread_socket_keeps_response_on_the_call),
		GRPC_TEST(test_raw_conn_fed_byte_by_byte_decodes),
		GRPC_TEST(test_raw_conn_free_closes_open_calls),
		GRPC_TEST(test_bad_preface_is_refused),
		GRPC_TEST(test_percent_encoding_and_malformed_names_on_listen_errors),
		GRPC_TEST(test_adopted_socketpair_serves_unary_and_streaming_calls),
		GRPC_TEST(test_adopted_socket_closed_by_its_peer_closes_calls_and_frees),
		GRPC_TEST(test_server_close_ends_adopted_connections),
		GRPC_TEST(test_adopt_fd_refusals_close_the_descriptor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
