/* server/grpc.c — gRPC over HTTP/2 cleartext: nghttp2 server sessions on libuv TCP streams
 * (or adopted socket descriptors, or raw byte feeds), gRPC message framing and status
 * trailers, answered the way grpc-go answers. Never aborts on network input; never frees a
 * call or a connection while a callback that could still use it is on the stack. */
#include "grpc.h"

#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define GRPC_READ_BUF (64 * 1024)
#define GRPC_WRITE_CHUNK (64 * 1024)
/* Stop pulling frames from nghttp2 while this much is queued on the socket. */
#define GRPC_WRITE_HIGH (256 * 1024)
#define GRPC_STREAM_WINDOW (1 << 20)
#define GRPC_CONN_WINDOW (8 << 20)
/* Request metadata a call may carry; more resets the stream. */
#define GRPC_MAX_HEADER_BYTES (16 * 1024)
/* A reassembly buffer larger than this is released after its message. */
#define GRPC_KEEP_RBUF (64 * 1024)

struct grpc_link {
	struct grpc_link *prev, *next;
};

#define LINK_OWNER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void link_init(struct grpc_link *l)
{
	l->prev = l->next = l;
}

static bool link_empty(const struct grpc_link *l)
{
	return l->next == l;
}

static void link_push(struct grpc_link *head, struct grpc_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void link_remove(struct grpc_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

/* A message queued on a call after one sent without a copy: that one itself (msg is its
 * owner's), or a copied one behind it (copy holds it), so messages keep their order. */
typedef struct grpc_seg {
	struct grpc_seg *next;
	uint8_t prefix[5];
	size_t off;          /* bytes of prefix and message handed to nghttp2 */
	const uint8_t *msg;
	size_t len;
	uint8_t *copy;
	grpc_msg_owner_t owner;
	void *arg;
} grpc_seg_t;

typedef struct grpc_hdr {
	char *name;
	char *value;
} grpc_hdr_t;

struct grpc_call {
	struct grpc_link link; /* conn->calls, then conn->dead once its stream closed */
	grpc_conn_t *conn;
	int32_t stream_id;
	const grpc_method_t *method;
	void *user;

	grpc_hdr_t *hdrs;
	size_t n_hdrs;
	size_t hdr_bytes;
	char *path;
	char *ctype;
	char *encoding;

	/* Reassembly of one length-prefixed message. */
	uint8_t prefix[5];
	size_t prefix_got;
	bool in_body;
	uint8_t *rbuf;
	size_t rcap, rlen, rgot;
	/* A unary call's message, kept until the client half-closes. */
	uint8_t *unary;
	size_t unary_len;
	bool have_unary;

	/* Framed response bytes not yet handed to nghttp2: obuf first, then the segments
	 * (obuf only grows while there are none). */
	uint8_t *obuf;
	size_t ooff, olen, ocap;
	grpc_seg_t *seg_head, *seg_tail;
	size_t seg_bytes;    /* of the segments, not yet handed over */
	int status;
	char *message; /* percent-encoded */

	bool started;        /* the owner knows the call: on_close is owed */
	bool headers_sent;   /* response HEADERS submitted */
	bool finished;       /* no more sends; incoming messages dropped */
	bool trailers_sent;
	bool deferred;       /* the data provider waits for grpc_call_send/finish */
	bool stream_closed;
	bool close_notified;
};

struct grpc_conn {
	struct grpc_link link;  /* server->conns */
	struct grpc_link dirty; /* server->dirty while a flush is owed */
	grpc_server_t *server;
	nghttp2_session *h2;
	bool raw;
	grpc_write_fn write;
	void *warg;
	/* A socket accepted from a listener (tcp) or adopted from its owner (pipe). */
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} io;
	size_t write_queued;
	struct grpc_link calls;
	struct grpc_link dead;
	int depth;          /* nesting of entries that may call back into the owner */
	bool closed;        /* calls notified; no more I/O */
	bool failed;        /* protocol error: flush the GOAWAY, then close */
	bool destroy_owed;  /* raw conn freed from inside one of its callbacks */
	bool handle_closing;
};

typedef struct grpc_listener {
	uv_tcp_t tcp;
	grpc_server_t *server;
	int port;
} grpc_listener_t;

struct grpc_server {
	uv_loop_t *loop;
	const grpc_method_t *methods;
	size_t n_methods;
	void *ud;
	grpc_server_options_t opt;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;
	grpc_listener_t **listeners;
	size_t n_listeners;
	uv_prepare_t prepare;
	bool has_prepare;
	struct grpc_link conns;
	struct grpc_link dirty;
	size_t n_live; /* handles and connections not yet released */
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
	uint8_t rbuf[GRPC_READ_BUF];
};

typedef struct grpc_wreq {
	uv_write_t req;
	grpc_conn_t *conn;
	size_t len;
	uint8_t data[];
} grpc_wreq_t;

static void conn_flush(grpc_conn_t *c);
static void conn_close(grpc_conn_t *c);
static void conn_destroy(grpc_conn_t *c);
static void server_maybe_free(grpc_server_t *s);

/* ---- small helpers ---- */

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static nghttp2_nv nv_make(const char *name, const char *value)
{
	nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			 NGHTTP2_NV_FLAG_NONE};
	return nv;
}

/* grpc-message carries printable ASCII except '%'; everything else is %XX (gRPC spec). */
static char *grpc_encode_message(const char *msg)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = msg ? strlen(msg) : 0;
	char *out = malloc(3 * n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)msg[i];
		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Go's %q for the ASCII cases grpc-go's "malformed method name" text meets. */
static void go_quote(char *out, size_t outlen, const char *in)
{
	size_t o = 0;
	if (outlen < 3)
		return;
	out[o++] = '"';
	for (; *in && o + 6 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, outlen - o, "\\%c", ch);
		else if (ch == '\n')
			o += (size_t)snprintf(out + o, outlen - o, "\\n");
		else if (ch == '\t')
			o += (size_t)snprintf(out + o, outlen - o, "\\t");
		else if (ch == '\r')
			o += (size_t)snprintf(out + o, outlen - o, "\\r");
		else if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* ---- calls ---- */

static grpc_call_t *call_of(grpc_conn_t *c, int32_t stream_id)
{
	return nghttp2_session_get_stream_user_data(c->h2, stream_id);
}

static void seg_free(grpc_seg_t *g)
{
	if (g->owner.release)
		g->owner.release(g->arg);
	free(g->copy);
	free(g);
}

static void call_free(grpc_call_t *call)
{
	while (call->seg_head) {
		grpc_seg_t *g = call->seg_head;
		call->seg_head = g->next;
		seg_free(g);
	}
	for (size_t i = 0; i < call->n_hdrs; i++) {
		free(call->hdrs[i].name);
		free(call->hdrs[i].value);
	}
	free(call->hdrs);
	free(call->path);
	free(call->ctype);
	free(call->encoding);
	free(call->rbuf);
	free(call->unary);
	free(call->obuf);
	free(call->message);
	free(call);
}

static void call_notify_close(grpc_call_t *call)
{
	grpc_server_t *s = call->conn->server;
	call->finished = true;
	if (!call->started || call->close_notified)
		return;
	call->close_notified = true;
	if (call->method->on_close)
		call->method->on_close(s->ud, call);
}

static void conn_want_flush(grpc_conn_t *c)
{
	if (c->closed)
		return;
	if (c->raw) {
		if (c->depth == 0)
			conn_flush(c);
		return;
	}
	if (link_empty(&c->dirty))
		link_push(&c->server->dirty, &c->dirty);
}

/* Copies up to room bytes of the queued segments into one DATA frame's buffer; the owner
 * of a message hears how far it went and gets it back once all of it did. */
static size_t call_read_segs(grpc_call_t *call, uint8_t *buf, size_t room)
{
	size_t n = 0;
	while (n < room && call->seg_head) {
		grpc_seg_t *g = call->seg_head;
		if (g->off < 5) {
			size_t k = 5 - g->off < room - n ? 5 - g->off : room - n;
			memcpy(buf + n, g->prefix + g->off, k);
			g->off += k;
			n += k;
		}
		size_t done = g->off - 5, k = g->len - done < room - n ? g->len - done : room - n;
		if (g->off >= 5 && k) {
			memcpy(buf + n, g->msg + done, k);
			g->off += k;
			n += k;
			if (g->owner.drained)
				g->owner.drained(g->arg, done + k);
		}
		if (g->off < 5 + g->len)
			break;
		call->seg_head = g->next;
		if (!call->seg_head)
			call->seg_tail = NULL;
		seg_free(g);
	}
	call->seg_bytes -= n;
	return n;
}

static ssize_t call_read_data(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
			      size_t length, uint32_t *flags, nghttp2_data_source *src,
			      void *user_data)
{
	grpc_call_t *call = src->ptr;
	size_t avail = call->olen - call->ooff, n = avail < length ? avail : length;
	(void)user_data;
	if (n == 0 && !call->seg_head && !call->finished) {
		call->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n)
		memcpy(buf, call->obuf + call->ooff, n);
	call->ooff += n;
	if (call->ooff == call->olen)
		call->ooff = call->olen = 0;
	if (call->olen == 0)
		n += call_read_segs(call, buf + n, length - n);
	if (call->olen == 0 && !call->seg_head && call->finished) {
		char status[16];
		snprintf(status, sizeof status, "%d", call->status);
		nghttp2_nv nv[2] = {nv_make("grpc-status", status),
				    nv_make("grpc-message", call->message ? call->message : "")};
		if (nghttp2_submit_trailer(h2, stream_id, nv, 2) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		call->trailers_sent = true;
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)n;
}

static int call_submit_headers(grpc_call_t *call)
{
	nghttp2_nv nv[2] = {nv_make(":status", "200"), nv_make("content-type", "application/grpc")};
	nghttp2_data_provider dp = {.source.ptr = call, .read_callback = call_read_data};
	if (nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 2, &dp) != 0)
		return -1;
	call->headers_sent = true;
	return 0;
}

/* Ends the call whether or not the owner knows it (rejected calls end here too). */
static void call_end(grpc_call_t *call, int http_status, int status, const char *message)
{
	grpc_conn_t *c = call->conn;
	/* Input buffers stay: the owner may still read the message it was handed. */
	call->finished = true;
	call->status = status;
	call->message = grpc_encode_message(message);
	if (!call->headers_sent) {
		/* Trailers-Only: one HEADERS frame with END_STREAM, as grpc-go answers. */
		char hs[8], st[16];
		snprintf(hs, sizeof hs, "%d", http_status);
		snprintf(st, sizeof st, "%d", status);
		nghttp2_nv nv[4] = {nv_make(":status", hs),
				    nv_make("content-type", "application/grpc"),
				    nv_make("grpc-status", st),
				    nv_make("grpc-message", call->message ? call->message : "")};
		call->headers_sent = true;
		call->trailers_sent = true;
		if (nghttp2_submit_response(c->h2, call->stream_id, nv, 4, NULL) != 0)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
						  NGHTTP2_INTERNAL_ERROR);
	} else if (call->deferred) {
		call->deferred = false;
		nghttp2_session_resume_data(c->h2, call->stream_id);
	}
	conn_want_flush(c);
}

static void call_end_fmt(grpc_call_t *call, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void call_end_fmt(grpc_call_t *call, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	call_end(call, 200, status, msg);
}

static const grpc_method_t *server_find_method(const grpc_server_t *s, const char *path)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i].path, path) == 0)
			return &s->methods[i];
	return NULL;
}

/* Is "/service/" the prefix of a registered path? */
static bool server_knows_service(const grpc_server_t *s, const char *service, size_t n)
{
	for (size_t i = 0; i < s->n_methods; i++) {
		const char *p = s->methods[i].path;
		if (p[0] == '/' && strncmp(p + 1, service, n) == 0 && p[1 + n] == '/' &&
		    !strchr(p + 2 + n, '/'))
			return true;
	}
	return false;
}

/* grpc-go accepts "application/grpc" alone or followed by "+subtype" or ";params". */
static bool ctype_is_grpc(const char *ct)
{
	static const char base[] = "application/grpc";
	size_t n = sizeof base - 1;
	if (!ct || strncasecmp(ct, base, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == '+' || ct[n] == ';';
}

static void call_reject_path(grpc_call_t *call)
{
	const grpc_server_t *s = call->conn->server;
	const char *full = call->path ? call->path : "";
	const char *sm = full[0] == '/' ? full + 1 : full;
	const char *slash = strrchr(sm, '/');
	if (!slash) {
		char q[300];
		go_quote(q, sizeof q, full);
		call_end_fmt(call, GRPC_RESOURCE_EXHAUSTED, "malformed method name: %s", q);
		return;
	}
	size_t n = (size_t)(slash - sm);
	if (server_knows_service(s, sm, n))
		call_end_fmt(call, GRPC_UNIMPLEMENTED, "unknown method %s for service %.*s",
			     slash + 1, (int)n, sm);
	else
		call_end_fmt(call, GRPC_UNIMPLEMENTED, "unknown service %.*s", (int)n, sm);
}

/* The request HEADERS are complete: decide whether the owner gets this call. */
static void call_accept(grpc_call_t *call)
{
	if (!ctype_is_grpc(call->ctype)) {
		char q[300], msg[340];
		go_quote(q, sizeof q, call->ctype ? call->ctype : "");
		snprintf(msg, sizeof msg, "invalid gRPC request content-type %s", q);
		call_end(call, 415, GRPC_INVALID_ARGUMENT, msg);
		return;
	}
	const char *path = call->path ? call->path : "";
	const grpc_method_t *m = server_find_method(call->conn->server, path);
	if (!m) {
		call_reject_path(call);
		return;
	}
	if (call->encoding && strcmp(call->encoding, "identity") != 0) {
		call_end_fmt(call, GRPC_UNIMPLEMENTED,
			     "grpc: Decompressor is not installed for grpc-encoding \"%s\"",
			     call->encoding);
		return;
	}
	call->method = m;
	call->started = true;
}

static void call_deliver(grpc_call_t *call, const uint8_t *msg, size_t len)
{
	grpc_server_t *s = call->conn->server;
	if (!call->method->streaming) {
		if (call->have_unary)
			return; /* grpc-go reads one request message and ignores the rest */
		call->unary = call->rbuf;
		call->unary_len = len;
		call->have_unary = true;
		call->rbuf = NULL;
		call->rcap = 0;
		return;
	}
	call->method->on_message(s->ud, call, msg ? msg : (const uint8_t *)"", len);
}

static bool call_open_for_input(const grpc_call_t *call)
{
	return call->started && !call->finished && !call->conn->closed;
}

/* The 5-byte prefix is complete: check it as grpc-go's parser does. */
static bool call_take_prefix(grpc_call_t *call)
{
	const grpc_server_t *s = call->conn->server;
	uint8_t flag = call->prefix[0];
	uint32_t len = (uint32_t)call->prefix[1] << 24 | (uint32_t)call->prefix[2] << 16 |
		       (uint32_t)call->prefix[3] << 8 | call->prefix[4];
	if (len > s->opt.max_recv_msg_size) {
		call_end_fmt(call, GRPC_RESOURCE_EXHAUSTED,
			     "grpc: received message larger than max (%u vs. %zu)", len,
			     s->opt.max_recv_msg_size);
		return false;
	}
	if (flag == 1) {
		/* A set grpc-encoding other than identity was refused at accept. */
		call_end(call, 200, GRPC_INTERNAL,
			 "grpc: compressed flag set with identity or empty encoding");
		return false;
	}
	if (flag != 0) {
		call_end_fmt(call, GRPC_INTERNAL, "grpc: received unexpected payload format %d",
			     flag);
		return false;
	}
	call->in_body = true;
	call->rlen = len;
	call->rgot = 0;
	return true;
}

static bool call_grow_rbuf(grpc_call_t *call, size_t need)
{
	if (need <= call->rcap)
		return true;
	size_t cap = call->rcap ? call->rcap : 4096;
	while (cap < need)
		cap *= 2;
	if (cap > call->rlen)
		cap = call->rlen;
	uint8_t *p = realloc(call->rbuf, cap);
	if (!p)
		return false;
	call->rbuf = p;
	call->rcap = cap;
	return true;
}

static void call_message_done(grpc_call_t *call)
{
	call->in_body = false;
	call->prefix_got = 0;
	call_deliver(call, call->rbuf, call->rlen);
	if (call->rcap > GRPC_KEEP_RBUF) {
		free(call->rbuf);
		call->rbuf = NULL;
		call->rcap = 0;
	}
	call->rlen = call->rgot = 0;
}

/* Feeds DATA bytes; messages may span any number of frames. */
static void call_parse(grpc_call_t *call, const uint8_t *p, size_t n)
{
	while (n > 0 && call_open_for_input(call)) {
		if (!call->method->streaming && call->have_unary)
			return;
		if (!call->in_body) {
			size_t take = 5 - call->prefix_got;
			take = take < n ? take : n;
			memcpy(call->prefix + call->prefix_got, p, take);
			call->prefix_got += take;
			p += take;
			n -= take;
			if (call->prefix_got < 5 || !call_take_prefix(call))
				continue;
			if (call->rlen == 0)
				call_message_done(call);
			continue;
		}
		size_t take = call->rlen - call->rgot;
		take = take < n ? take : n;
		if (!call_grow_rbuf(call, call->rgot + take)) {
			call_end(call, 200, GRPC_RESOURCE_EXHAUSTED, "grpc: out of memory");
			return;
		}
		memcpy(call->rbuf + call->rgot, p, take);
		call->rgot += take;
		p += take;
		n -= take;
		if (call->rgot == call->rlen)
			call_message_done(call);
	}
}

/* The client half-closed. */
static void call_remote_end(grpc_call_t *call)
{
	grpc_server_t *s = call->conn->server;
	if (!call_open_for_input(call))
		return;
	if (call->in_body || call->prefix_got > 0) {
		call_end(call, 200, GRPC_UNKNOWN, "unexpected EOF"); /* as etcd 3.4 answers */
		return;
	}
	if (!call->method->streaming) {
		if (!call->have_unary) {
			/* No message at all: grpc-go 1.26 answers io.EOF's text after an empty
			 * DATA frame (and leaves a stream ended by HEADERS hanging; it ends
			 * here too). */
			call_end(call, 200, GRPC_UNKNOWN, "EOF");
			return;
		}
		const uint8_t *msg = call->unary ? call->unary : (const uint8_t *)"";
		call->method->on_message(s->ud, call, msg, call->unary_len);
		free(call->unary);
		call->unary = NULL;
		return;
	}
	if (call->method->on_half_close)
		call->method->on_half_close(s->ud, call);
}

/* ---- nghttp2 callbacks (user_data is the connection) ---- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	grpc_conn_t *c = ud;
	if (c->closed || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	grpc_call_t *call = calloc(1, sizeof *call);
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = f->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, call) != 0) {
		free(call);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	link_push(&c->calls, &call->link);
	return 0;
}

static int call_keep_header(grpc_call_t *call, const uint8_t *name, size_t nlen,
			    const uint8_t *value, size_t vlen)
{
	char **slot = NULL;
	if (nlen == 5 && memcmp(name, ":path", 5) == 0)
		slot = &call->path;
	else if (nlen == 12 && memcmp(name, "content-type", 12) == 0)
		slot = &call->ctype;
	else if (nlen == 13 && memcmp(name, "grpc-encoding", 13) == 0)
		slot = &call->encoding;
	if (slot) {
		free(*slot);
		*slot = dup_bytes(value, vlen);
		return *slot ? 0 : -1;
	}
	if (nlen > 0 && name[0] == ':')
		return 0;
	grpc_hdr_t *h = realloc(call->hdrs, (call->n_hdrs + 1) * sizeof *h);
	if (!h)
		return -1;
	call->hdrs = h;
	h[call->n_hdrs].name = dup_bytes(name, nlen);
	h[call->n_hdrs].value = dup_bytes(value, vlen);
	call->n_hdrs++;
	return h[call->n_hdrs - 1].name && h[call->n_hdrs - 1].value ? 0 : -1;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	grpc_conn_t *c = ud;
	(void)flags;
	if (c->closed || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (!call)
		return 0;
	call->hdr_bytes += nlen + vlen + 32;
	if (call->hdr_bytes > GRPC_MAX_HEADER_BYTES ||
	    call_keep_header(call, name, nlen, value, vlen) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	grpc_conn_t *c = ud;
	if (c->closed || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (!call)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		call_accept(call);
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		call_remote_end(call);
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *ud)
{
	grpc_conn_t *c = ud;
	(void)flags;
	if (c->closed)
		return 0;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
	if (call)
		call_parse(call, data, len);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	grpc_conn_t *c = ud;
	int32_t id = f->hd.stream_id;
	if (c->closed || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	/* Our side is done while the client's is open: reset it as grpc-go does, so the
	 * stream (and the call) closes now. */
	if (call_of(c, id) && nghttp2_session_get_stream_remote_close(h2, id) == 0)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
			   void *ud)
{
	grpc_conn_t *c = ud;
	(void)error_code;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
	if (!call || c->closed)
		return 0;
	nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
	call->stream_closed = true;
	link_remove(&call->link);
	link_push(&c->dead, &call->link);
	call_notify_close(call);
	return 0;
}

/* ---- connections ---- */

static void conn_enter(grpc_conn_t *c)
{
	c->depth++;
}

static void conn_reap(grpc_conn_t *c)
{
	while (!link_empty(&c->dead)) {
		grpc_call_t *call = LINK_OWNER(c->dead.next, grpc_call_t, link);
		link_remove(&call->link);
		call_free(call);
	}
}

/* Returns false when the connection was destroyed on the way out. */
static bool conn_leave(grpc_conn_t *c)
{
	if (--c->depth > 0)
		return true;
	if (c->destroy_owed) {
		conn_destroy(c);
		return false;
	}
	conn_reap(c);
	return true;
}

static bool conn_done(grpc_conn_t *c)
{
	return !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2);
}

static void conn_on_write(uv_write_t *req, int status)
{
	grpc_wreq_t *w = (grpc_wreq_t *)req;
	grpc_conn_t *c = w->conn;
	c->write_queued -= w->len;
	free(w);
	if (c->closed)
		return;
	if (status < 0)
		conn_close(c);
	else
		conn_flush(c);
}

static void conn_flush_socket(grpc_conn_t *c)
{
	while (c->write_queued < GRPC_WRITE_HIGH && !c->closed) {
		grpc_wreq_t *w = NULL;
		size_t len = 0, cap = 0;
		for (;;) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(c->h2, &d);
			if (n < 0)
				c->failed = true;
			if (n <= 0)
				break;
			if (len + (size_t)n > cap) {
				size_t ncap = len + (size_t)n > GRPC_WRITE_CHUNK ? len + (size_t)n
										 : GRPC_WRITE_CHUNK;
				grpc_wreq_t *nw = realloc(w, sizeof *w + ncap);
				if (!nw) {
					c->failed = true;
					break;
				}
				w = nw;
				cap = ncap;
			}
			memcpy(w->data + len, d, (size_t)n);
			len += (size_t)n;
			if (len >= GRPC_WRITE_CHUNK)
				break;
		}
		if (len == 0 || c->closed) {
			free(w);
			break;
		}
		w->conn = c;
		w->len = len;
		uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
		if (uv_write(&w->req, &c->io.stream, &b, 1, conn_on_write) != 0) {
			free(w);
			conn_close(c);
			return;
		}
		c->write_queued += len;
		if (c->failed)
			break;
	}
	if (!c->closed && c->write_queued == 0 && (c->failed || conn_done(c)))
		conn_close(c);
}

static void conn_flush_raw(grpc_conn_t *c)
{
	while (!c->closed) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->h2, &d);
		if (n < 0)
			c->failed = true;
		if (n <= 0)
			break;
		c->write(c->warg, d, (size_t)n);
	}
}

static void conn_flush(grpc_conn_t *c)
{
	if (!link_empty(&c->dirty))
		link_remove(&c->dirty);
	if (c->closed)
		return;
	conn_enter(c);
	if (c->raw)
		conn_flush_raw(c);
	else
		conn_flush_socket(c);
	conn_leave(c);
}

/* Bytes from the peer. -1 when the connection is finished (protocol error or both sides
 * done); the connection may then be destroyed already if destroyed is set. */
static int conn_recv(grpc_conn_t *c, const uint8_t *data, size_t len, bool *destroyed)
{
	*destroyed = false;
	if (c->closed || c->failed)
		return -1;
	conn_enter(c);
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
	if (rv < 0 && !c->closed) {
		/* Bad bytes: say GOAWAY if the session still can, then drop this one. */
		nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
		c->failed = true;
	}
	conn_flush(c);
	if (!conn_leave(c)) {
		*destroyed = true;
		return -1;
	}
	return c->closed || c->failed || conn_done(c) ? -1 : 0;
}

static int conn_start(grpc_conn_t *c)
{
	grpc_server_t *s = c->server;
	nghttp2_settings_entry iv[2] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->opt.max_concurrent_streams},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW},
	};
	if (nghttp2_session_server_new2(&c->h2, s->cbs, c, s->h2opt) != 0)
		return -1;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
						  GRPC_CONN_WINDOW) != 0) {
		nghttp2_session_del(c->h2);
		c->h2 = NULL;
		return -1;
	}
	return 0;
}

static grpc_conn_t *conn_alloc(grpc_server_t *s)
{
	grpc_conn_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->server = s;
	link_init(&c->link);
	link_init(&c->dirty);
	link_init(&c->calls);
	link_init(&c->dead);
	return c;
}

static void conn_notify_calls(grpc_conn_t *c)
{
	/* on_close may do anything but free the connection; restart the walk each time. */
	for (;;) {
		grpc_call_t *found = NULL;
		for (struct grpc_link *l = c->calls.next; l != &c->calls; l = l->next) {
			grpc_call_t *call = LINK_OWNER(l, grpc_call_t, link);
			if (call->started && !call->close_notified) {
				found = call;
				break;
			}
		}
		if (!found)
			return;
		call_notify_close(found);
	}
}

static void conn_on_handle_closed(uv_handle_t *h)
{
	conn_destroy(LINK_OWNER(h, grpc_conn_t, io));
}

/* Stops all I/O and tells the owner about every open call. Socket connections are freed
 * once libuv releases the handle; raw ones by grpc_conn_free. */
static void conn_close(grpc_conn_t *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (!link_empty(&c->dirty))
		link_remove(&c->dirty);
	conn_enter(c);
	conn_notify_calls(c);
	c->depth--; /* destruction is decided by the callers below, not here */
	if (!c->raw && !c->handle_closing) {
		c->handle_closing = true;
		uv_read_stop(&c->io.stream);
		uv_close(&c->io.handle, conn_on_handle_closed);
	}
}

static void conn_destroy(grpc_conn_t *c)
{
	grpc_server_t *s = c->server;
	if (c->h2)
		nghttp2_session_del(c->h2);
	c->h2 = NULL;
	while (!link_empty(&c->calls)) {
		grpc_call_t *call = LINK_OWNER(c->calls.next, grpc_call_t, link);
		link_remove(&call->link);
		call_free(call);
	}
	conn_reap(c);
	if (!link_empty(&c->dirty))
		link_remove(&c->dirty);
	link_remove(&c->link);
	free(c);
	s->n_live--;
	server_maybe_free(s);
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	grpc_conn_t *c = LINK_OWNER(h, grpc_conn_t, io);
	(void)suggested;
	*buf = uv_buf_init((char *)c->server->rbuf, sizeof c->server->rbuf);
}

static void conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	grpc_conn_t *c = LINK_OWNER(st, grpc_conn_t, io);
	bool destroyed;
	if (c->closed || nread == 0)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (conn_recv(c, (const uint8_t *)buf->base, (size_t)nread, &destroyed) < 0 &&
	    !destroyed && !c->closed)
		uv_read_stop(st); /* the GOAWAY drains, then conn_flush_socket closes */
}

/* The handle is initialised (and counted live): start the session and reading. On
 * failure the handle is closed and the connection freed through conn_on_handle_closed. */
static int conn_begin(grpc_conn_t *c)
{
	if (conn_start(c) != 0) {
		c->closed = true;
		c->handle_closing = true;
		uv_close(&c->io.handle, conn_on_handle_closed);
		return -1;
	}
	if (uv_read_start(&c->io.stream, conn_on_alloc, conn_on_read) != 0) {
		conn_close(c);
		return -1;
	}
	conn_flush(c);
	return 0;
}

static void server_on_connection(uv_stream_t *ls, int status)
{
	grpc_listener_t *l = (grpc_listener_t *)ls;
	grpc_server_t *s = l->server;
	if (status < 0 || s->closing)
		return;
	grpc_conn_t *c = conn_alloc(s);
	if (!c)
		return;
	if (uv_tcp_init(s->loop, &c->io.tcp) != 0) {
		free(c);
		return;
	}
	link_push(&s->conns, &c->link);
	s->n_live++;
	if (uv_accept(ls, &c->io.stream) != 0) {
		c->closed = true;
		c->handle_closing = true;
		uv_close(&c->io.handle, conn_on_handle_closed);
		return;
	}
	uv_tcp_nodelay(&c->io.tcp, 1);
	conn_begin(c);
}

int grpc_server_adopt_fd(grpc_server_t *s, int fd, char *err, size_t errlen)
{
	int rc;
	if (!s->loop || s->closing) {
		snprintf(err, errlen, "grpc: server has no loop or is closing");
		close(fd);
		return -1;
	}
	grpc_conn_t *c = conn_alloc(s);
	if (!c || (rc = uv_pipe_init(s->loop, &c->io.pipe, 0)) != 0) {
		snprintf(err, errlen, "grpc: out of memory");
		free(c);
		close(fd);
		return -1;
	}
	link_push(&s->conns, &c->link);
	s->n_live++;
	if ((rc = uv_pipe_open(&c->io.pipe, fd)) != 0) {
		/* libuv took no ownership: the handle closes without the descriptor */
		snprintf(err, errlen, "grpc: adopt fd %d: %s", fd, uv_strerror(rc));
		if (rc != UV_EEXIST) /* EEXIST: the loop already watches it, so it is not ours */
			close(fd);
		c->closed = true;
		c->handle_closing = true;
		uv_close(&c->io.handle, conn_on_handle_closed);
		return -1;
	}
	if (conn_begin(c) != 0) {
		snprintf(err, errlen, "grpc: cannot start a session on fd %d", fd);
		return -1;
	}
	return 0;
}

/* ---- server ---- */

static void server_on_prepare(uv_prepare_t *p)
{
	grpc_server_t *s = LINK_OWNER(p, grpc_server_t, prepare);
	while (!link_empty(&s->dirty)) {
		grpc_conn_t *c = LINK_OWNER(s->dirty.next, grpc_conn_t, dirty);
		conn_flush(c); /* unlinks it from dirty */
	}
}

void grpc_server_options_default(grpc_server_options_t *opt)
{
	opt->max_recv_msg_size = 4u << 20;
	opt->max_concurrent_streams = 1000;
}

static int server_setup_nghttp2(grpc_server_t *s)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -1;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	s->cbs = cb;
	if (nghttp2_option_new(&s->h2opt) != 0)
		return -1;
	/* grpc-go puts the endpoint as written into :authority, and etcdctl's --cluster
	 * endpoints are URLs ("http://host:port"), which nghttp2's HTTP checks reset as a
	 * protocol error. gRPC needs none of those checks: calls are validated here. */
	nghttp2_option_set_no_http_messaging(s->h2opt, 1);
	return 0;
}

int grpc_server_new(uv_loop_t *loop, const grpc_method_t *methods, size_t n_methods,
		    void *ud, const grpc_server_options_t *opt, grpc_server_t **out)
{
	grpc_server_t *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->loop = loop;
	s->methods = methods;
	s->n_methods = n_methods;
	s->ud = ud;
	if (opt)
		s->opt = *opt;
	else
		grpc_server_options_default(&s->opt);
	link_init(&s->conns);
	link_init(&s->dirty);
	if (server_setup_nghttp2(s) != 0)
		goto fail;
	if (loop) {
		if (uv_prepare_init(loop, &s->prepare) != 0)
			goto fail;
		s->has_prepare = true;
		s->n_live++;
		uv_prepare_start(&s->prepare, server_on_prepare);
		uv_unref((uv_handle_t *)&s->prepare);
	}
	*out = s;
	return 0;
fail:
	if (s->cbs)
		nghttp2_session_callbacks_del(s->cbs);
	if (s->h2opt)
		nghttp2_option_del(s->h2opt);
	free(s);
	return -1;
}

static void server_on_handle_closed(uv_handle_t *h)
{
	grpc_server_t *s = h->data;
	if (h->type == UV_TCP)
		free(h);
	s->n_live--;
	server_maybe_free(s);
}

int grpc_server_listen(grpc_server_t *s, const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_storage addr;
	int rc;
	if (!s->loop || s->closing) {
		snprintf(err, errlen, "grpc: server has no loop or is closing");
		return -1;
	}
	if (strchr(host, ':'))
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
	else
		rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
	if (rc != 0) {
		snprintf(err, errlen, "grpc: bad listen address %s: %s", host, uv_strerror(rc));
		return -1;
	}
	grpc_listener_t **ls = realloc(s->listeners, (s->n_listeners + 1) * sizeof *ls);
	if (!ls) {
		snprintf(err, errlen, "grpc: out of memory");
		return -1;
	}
	s->listeners = ls;
	grpc_listener_t *l = calloc(1, sizeof *l);
	if (!l || uv_tcp_init(s->loop, &l->tcp) != 0) {
		free(l);
		snprintf(err, errlen, "grpc: out of memory");
		return -1;
	}
	l->server = s;
	l->tcp.data = s;
	s->n_live++;
	rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, 511, server_on_connection);
	if (rc == 0) {
		struct sockaddr_storage got;
		int n = sizeof got;
		rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&got, &n);
		if (rc == 0)
			l->port = ntohs(got.ss_family == AF_INET6
						? ((struct sockaddr_in6 *)&got)->sin6_port
						: ((struct sockaddr_in *)&got)->sin_port);
	}
	if (rc != 0) {
		snprintf(err, errlen, "grpc: listen on %s:%d: %s", host, port, uv_strerror(rc));
		uv_close((uv_handle_t *)&l->tcp, server_on_handle_closed);
		return -1;
	}
	s->listeners[s->n_listeners++] = l;
	return 0;
}

int grpc_server_port(const grpc_server_t *s, size_t listener)
{
	return listener < s->n_listeners ? s->listeners[listener]->port : -1;
}

static void server_maybe_free(grpc_server_t *s)
{
	if (!s->closing || s->n_live > 0)
		return;
	void (*done)(void *) = s->done;
	void *arg = s->done_arg;
	nghttp2_session_callbacks_del(s->cbs);
	nghttp2_option_del(s->h2opt);
	free(s->listeners);
	free(s);
	if (done)
		done(arg);
}

void grpc_server_close(grpc_server_t *s, void (*done)(void *arg), void *arg)
{
	if (s->closing)
		return;
	s->closing = true;
	s->done = done;
	s->done_arg = arg;
	s->n_live++; /* hold the server while closing what it owns */
	for (size_t i = 0; i < s->n_listeners; i++)
		uv_close((uv_handle_t *)&s->listeners[i]->tcp, server_on_handle_closed);
	s->n_listeners = 0;
	if (s->has_prepare) {
		s->prepare.data = s;
		uv_close((uv_handle_t *)&s->prepare, server_on_handle_closed);
	}
	for (;;) {
		grpc_conn_t *open = NULL;
		for (struct grpc_link *l = s->conns.next; l != &s->conns; l = l->next) {
			grpc_conn_t *c = LINK_OWNER(l, grpc_conn_t, link);
			if (!c->closed || (c->raw && !c->destroy_owed)) {
				open = c;
				break;
			}
		}
		if (!open)
			break;
		conn_close(open);
		if (open->raw) {
			if (open->depth > 0)
				open->destroy_owed = true;
			else
				conn_destroy(open);
		}
	}
	s->n_live--;
	server_maybe_free(s);
}

/* ---- raw connections ---- */

grpc_conn_t *grpc_conn_new_raw(grpc_server_t *s, grpc_write_fn write, void *arg)
{
	if (s->closing)
		return NULL;
	grpc_conn_t *c = conn_alloc(s);
	if (!c)
		return NULL;
	c->raw = true;
	c->write = write;
	c->warg = arg;
	if (conn_start(c) != 0) {
		free(c);
		return NULL;
	}
	link_push(&s->conns, &c->link);
	s->n_live++;
	conn_flush(c);
	return c;
}

int grpc_conn_feed(grpc_conn_t *c, const uint8_t *data, size_t len)
{
	bool destroyed;
	int rc = conn_recv(c, data, len, &destroyed);
	if (rc < 0 && !destroyed)
		conn_close(c);
	return rc;
}

void grpc_conn_free(grpc_conn_t *c)
{
	if (!c)
		return;
	conn_close(c);
	if (c->depth > 0)
		c->destroy_owed = true;
	else
		conn_destroy(c);
}

/* ---- the owner's side of a call ---- */

static bool call_can_send(const grpc_call_t *call)
{
	return call->started && !call->finished && !call->stream_closed && !call->conn->closed;
}

static void frame_prefix(uint8_t *o, size_t len)
{
	o[0] = 0;
	o[1] = (uint8_t)(len >> 24);
	o[2] = (uint8_t)(len >> 16);
	o[3] = (uint8_t)(len >> 8);
	o[4] = (uint8_t)len;
}

/* Something was queued: start the response or wake its data provider. */
static int call_kick(grpc_call_t *call)
{
	if (!call->headers_sent) {
		if (call_submit_headers(call) != 0)
			return -1;
	} else if (call->deferred) {
		call->deferred = false;
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	}
	conn_want_flush(call->conn);
	return 0;
}

static void call_push_seg(grpc_call_t *call, grpc_seg_t *g)
{
	frame_prefix(g->prefix, g->len);
	if (call->seg_tail)
		call->seg_tail->next = g;
	else
		call->seg_head = g;
	call->seg_tail = g;
	call->seg_bytes += 5 + g->len;
}

/* A copied message behind an owned one still queued. */
static int call_send_copy_seg(grpc_call_t *call, const uint8_t *msg, size_t len)
{
	grpc_seg_t *g = calloc(1, sizeof(*g));
	uint8_t *copy = malloc(len ? len : 1);
	if (!g || !copy) {
		free(g);
		free(copy);
		return -1;
	}
	if (len)
		memcpy(copy, msg, len);
	g->copy = copy;
	g->msg = copy;
	g->len = len;
	call_push_seg(call, g);
	return call_kick(call);
}

int grpc_call_send_owned(grpc_call_t *call, const uint8_t *msg, size_t len,
			 const grpc_msg_owner_t *owner, void *arg)
{
	grpc_seg_t *g = NULL;
	if (call_can_send(call) && len <= UINT32_MAX)
		g = calloc(1, sizeof(*g));
	if (!g) {
		if (owner->release)
			owner->release(arg);
		return -1;
	}
	g->msg = msg;
	g->len = len;
	g->owner = *owner;
	g->arg = arg;
	call_push_seg(call, g);
	/* Queued: from here the call owns the release (sent, or freed with the call), so a
	 * failed kick must not tell the caller it still owns msg. */
	(void)call_kick(call);
	return 0;
}

int grpc_call_send(grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!call_can_send(call) || len > UINT32_MAX)
		return -1;
	if (call->seg_head)
		return call_send_copy_seg(call, msg, len);
	size_t need = call->olen + 5 + len;
	if (call->ooff > 0 && need > call->ocap) {
		memmove(call->obuf, call->obuf + call->ooff, call->olen - call->ooff);
		call->olen -= call->ooff;
		call->ooff = 0;
		need = call->olen + 5 + len;
	}
	if (need > call->ocap) {
		size_t cap = call->ocap ? call->ocap : 1024;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(call->obuf, cap);
		if (!p)
			return -1;
		call->obuf = p;
		call->ocap = cap;
	}
	uint8_t *o = call->obuf + call->olen;
	frame_prefix(o, len);
	if (len)
		memcpy(o + 5, msg, len);
	call->olen += 5 + len;
	return call_kick(call);
}

void grpc_call_finish(grpc_call_t *call, int status, const char *message)
{
	if (!call_can_send(call))
		return;
	call_end(call, 200, status, message);
}

size_t grpc_call_pending_bytes(const grpc_call_t *call)
{
	return call->olen - call->ooff + call->seg_bytes;
}

void grpc_call_set_user(grpc_call_t *call, void *user)
{
	call->user = user;
}

void *grpc_call_user(const grpc_call_t *call)
{
	return call->user;
}

const grpc_method_t *grpc_call_method(const grpc_call_t *call)
{
	return call->method;
}

const char *grpc_call_header(const grpc_call_t *call, const char *name)
{
	for (size_t i = 0; i < call->n_hdrs; i++)
		if (strcasecmp(call->hdrs[i].name, name) == 0)
			return call->hdrs[i].value;
	return NULL;
}
