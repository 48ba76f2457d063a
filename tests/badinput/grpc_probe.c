/* tests/badinput/grpc_probe.c — a tiny gRPC-over-HTTP/2 (cleartext) client for tests: sends
 * hand-built, possibly broken, unary calls one after another on one connection and prints the
 * status each one gets. Test tool only: it trusts its command line and never retries.
 *
 * usage: grpc_probe [--timeout SEC] [--hex] HOST:PORT CALL...
 *   CALL := --call PATH [--header NAME:VALUE]... [--headers-only] MSG...
 *   MSG  := --put KEY VALUE | --put-fill KEY N | --range KEY | --raw HEX | --file PATH
 *           followed by modifiers of that message: --prefix HEX10 (the raw 5-byte gRPC prefix,
 *           e.g. to claim more bytes than are sent) | --flag N (the compressed-flag byte)
 * A call without MSG sends no message at all (an empty DATA frame ending the stream);
 * --headers-only instead ends the stream on the HEADERS frame (no DATA frame at all).
 * Calls run in order: the next one starts when the previous stream has closed.
 * Output, one line per call:
 *   CALL <i> status=<grpc-status|-1> http=<:status|-1> msgs=<size,...> message=<grpc-message>
 * the message percent-decoded, bytes outside printable ASCII written as \xNN. Without a
 * grpc-status, message= says what happened instead (stream reset, connection closed,
 * timeout). With --hex each response message follows as a line "HEX <i> <hex>".
 * Exit status: 0 when every call got an answer of some kind, 2 on usage or connect errors.
 */
#include <errno.h>
#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rpc.pb-c.h"

#define PROBE_MAX_HEADERS 8

struct probe_buf {
	uint8_t *data;
	size_t len;
};

struct probe_call {
	const char *path;
	const char *headers[PROBE_MAX_HEADERS];
	int nheaders;
	struct probe_buf body;	/* every request message, prefixes included */
	size_t last_msg;	/* offset of the newest message's prefix in body */
	int has_msg;
	int headers_only;	/* END_STREAM on HEADERS, no data provider */
	size_t sent;		/* body bytes handed to nghttp2 */
	/* the answer */
	int32_t stream_id;
	int closed;
	uint32_t rst_code;
	int grpc_status;	/* -1 until seen */
	int http_status;
	char *grpc_message;
	struct probe_buf resp;	/* raw response DATA, gRPC framing included */
};

struct probe {
	const char *authority;
	int fd;
	int hex;
	double timeout;
	struct probe_call *calls;
	int ncalls;
	int current;		/* index of the call in flight, or ncalls when all are done */
	int goaway;
	nghttp2_session *session;
};

static void probe_die(const char *what)
{
	fprintf(stderr, "grpc_probe: %s\n", what);
	exit(2);
}

static void *probe_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		probe_die("out of memory");
	return q;
}

static void probe_buf_append(struct probe_buf *b, const void *data, size_t len)
{
	b->data = probe_xrealloc(b->data, b->len + len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

static int probe_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex into a fresh buffer; dies on odd length or a non-hex digit. */
static struct probe_buf probe_hex_decode(const char *hex)
{
	struct probe_buf b = {0};
	size_t n = strlen(hex);
	if (n % 2)
		probe_die("hex string of odd length");
	b.data = probe_xrealloc(NULL, n / 2);
	for (size_t i = 0; i < n; i += 2) {
		int hi = probe_hex_value(hex[i]), lo = probe_hex_value(hex[i + 1]);
		if (hi < 0 || lo < 0)
			probe_die("bad hex digit");
		b.data[b.len++] = (uint8_t)(hi << 4 | lo);
	}
	return b;
}

static struct probe_buf probe_read_file(const char *path)
{
	struct probe_buf b = {0};
	uint8_t chunk[65536];
	size_t n;
	FILE *f = fopen(path, "rb");
	if (!f)
		probe_die("cannot open request file");
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		probe_buf_append(&b, chunk, n);
	fclose(f);
	return b;
}

static struct probe_buf probe_pack(const ProtobufCMessage *msg)
{
	struct probe_buf b = {0};
	b.len = protobuf_c_message_get_packed_size(msg);
	b.data = probe_xrealloc(NULL, b.len);
	protobuf_c_message_pack(msg, b.data);
	return b;
}

static struct probe_buf probe_encode_put(const char *key, const uint8_t *value, size_t vlen)
{
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key.data = (uint8_t *)key;
	put.key.len = strlen(key);
	put.value.data = (uint8_t *)value;
	put.value.len = vlen;
	return probe_pack(&put.base);
}

static struct probe_buf probe_encode_range(const char *key)
{
	Etcdserverpb__RangeRequest range = ETCDSERVERPB__RANGE_REQUEST__INIT;
	range.key.data = (uint8_t *)key;
	range.key.len = strlen(key);
	return probe_pack(&range.base);
}

/* Appends one gRPC message (flag 0, big-endian length) to the call's body; takes msg. */
static void probe_call_add_msg(struct probe_call *call, struct probe_buf msg)
{
	uint8_t prefix[5] = {0, (uint8_t)(msg.len >> 24), (uint8_t)(msg.len >> 16),
			     (uint8_t)(msg.len >> 8), (uint8_t)msg.len};
	call->last_msg = call->body.len;
	call->has_msg = 1;
	probe_buf_append(&call->body, prefix, sizeof(prefix));
	probe_buf_append(&call->body, msg.data, msg.len);
	free(msg.data);
}

static void probe_call_set_prefix(struct probe_call *call, const char *hex)
{
	struct probe_buf p = probe_hex_decode(hex);
	if (!call->has_msg || p.len != 5)
		probe_die("--prefix needs 10 hex digits after a message");
	memcpy(call->body.data + call->last_msg, p.data, 5);
	free(p.data);
}

static const char *probe_next_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		probe_die("missing argument");
	return argv[++*i];
}

/* Parses the CALL... part of the command line into p->calls. */
static void probe_parse_calls(struct probe *p, int argc, char **argv, int i)
{
	struct probe_call *call = NULL;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--call")) {
			size_t size = (size_t)(p->ncalls + 1) * sizeof(*call);
			p->calls = probe_xrealloc(p->calls, size);
			call = &p->calls[p->ncalls++];
			memset(call, 0, sizeof(*call));
			call->path = probe_next_arg(argc, argv, &i);
			call->grpc_status = -1;
			call->http_status = -1;
			continue;
		}
		if (!call)
			probe_die("a message option before --call");
		if (!strcmp(a, "--header")) {
			if (call->nheaders == PROBE_MAX_HEADERS)
				probe_die("too many headers");
			call->headers[call->nheaders++] = probe_next_arg(argc, argv, &i);
		} else if (!strcmp(a, "--headers-only")) {
			call->headers_only = 1;
		} else if (!strcmp(a, "--put")) {
			const char *key = probe_next_arg(argc, argv, &i);
			const char *value = probe_next_arg(argc, argv, &i);
			probe_call_add_msg(call, probe_encode_put(key, (const uint8_t *)value,
								  strlen(value)));
		} else if (!strcmp(a, "--put-fill")) {
			const char *key = probe_next_arg(argc, argv, &i);
			size_t n = strtoul(probe_next_arg(argc, argv, &i), NULL, 10);
			uint8_t *value = probe_xrealloc(NULL, n);
			memset(value, 'x', n);
			probe_call_add_msg(call, probe_encode_put(key, value, n));
			free(value);
		} else if (!strcmp(a, "--range")) {
			const char *key = probe_next_arg(argc, argv, &i);
			probe_call_add_msg(call, probe_encode_range(key));
		} else if (!strcmp(a, "--raw")) {
			probe_call_add_msg(call, probe_hex_decode(probe_next_arg(argc, argv, &i)));
		} else if (!strcmp(a, "--file")) {
			probe_call_add_msg(call, probe_read_file(probe_next_arg(argc, argv, &i)));
		} else if (!strcmp(a, "--prefix")) {
			probe_call_set_prefix(call, probe_next_arg(argc, argv, &i));
		} else if (!strcmp(a, "--flag")) {
			if (!call->has_msg)
				probe_die("--flag needs a message before it");
			call->body.data[call->last_msg] =
				(uint8_t)strtoul(probe_next_arg(argc, argv, &i), NULL, 0);
		} else {
			probe_die("unknown option (see the comment at the top of grpc_probe.c)");
		}
	}
	if (!p->ncalls)
		probe_die("no --call given");
}

static int probe_connect(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;
	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		probe_die("endpoint must be HOST:PORT");
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res))
		probe_die("cannot resolve endpoint");
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		probe_die("cannot connect");
	return fd;
}

static struct probe_call *probe_call_of(struct probe *p, int32_t stream_id)
{
	for (int i = 0; i < p->ncalls; i++)
		if (p->calls[i].stream_id == stream_id)
			return &p->calls[i];
	return NULL;
}

static ssize_t probe_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			       size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			       void *user_data)
{
	struct probe_call *call = source->ptr;
	size_t n = call->body.len - call->sent;
	(void)session, (void)stream_id, (void)user_data;
	if (n > length)
		n = length;
	if (n)
		memcpy(buf, call->body.data + call->sent, n);
	call->sent += n;
	if (call->sent == call->body.len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int probe_on_header(nghttp2_session *session, const nghttp2_frame *frame,
			   const uint8_t *name, size_t namelen, const uint8_t *value,
			   size_t valuelen, uint8_t flags, void *user_data)
{
	struct probe_call *call = probe_call_of(user_data, frame->hd.stream_id);
	(void)session, (void)flags;
	if (!call)
		return 0;
	if (namelen == 7 && !memcmp(name, ":status", 7)) {
		call->http_status = atoi((const char *)value);
	} else if (namelen == 11 && !memcmp(name, "grpc-status", 11)) {
		call->grpc_status = atoi((const char *)value);
	} else if (namelen == 12 && !memcmp(name, "grpc-message", 12)) {
		free(call->grpc_message);
		call->grpc_message = probe_xrealloc(NULL, valuelen + 1);
		memcpy(call->grpc_message, value, valuelen);
		call->grpc_message[valuelen] = '\0';
	}
	return 0;
}

static int probe_on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	struct probe_call *call = probe_call_of(user_data, stream_id);
	(void)session, (void)flags;
	if (call)
		probe_buf_append(&call->resp, data, len);
	return 0;
}

static int probe_on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			  void *user_data)
{
	struct probe_call *call = probe_call_of(user_data, stream_id);
	(void)session;
	if (call) {
		call->closed = 1;
		call->rst_code = error_code;
	}
	return 0;
}

static int probe_on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	(void)session;
	if (frame->hd.type == NGHTTP2_GOAWAY)
		((struct probe *)user_data)->goaway = 1;
	return 0;
}

static nghttp2_nv probe_nv(const char *name, const char *value)
{
	nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			 NGHTTP2_NV_FLAG_NONE};
	return nv;
}

/* Opens the stream of call i; returns 0, or -1 when the session refuses it. */
static int probe_submit(struct probe *p, int i)
{
	struct probe_call *call = &p->calls[i];
	nghttp2_nv nva[6 + PROBE_MAX_HEADERS];
	char names[PROBE_MAX_HEADERS][128];
	size_t n = 0;
	nghttp2_data_provider dp = {.source.ptr = call, .read_callback = probe_read_body};
	nva[n++] = probe_nv(":method", "POST");
	nva[n++] = probe_nv(":scheme", "http");
	nva[n++] = probe_nv(":path", call->path);
	nva[n++] = probe_nv(":authority", p->authority);
	nva[n++] = probe_nv("content-type", "application/grpc");
	nva[n++] = probe_nv("te", "trailers");
	for (int h = 0; h < call->nheaders; h++) {
		const char *colon = strchr(call->headers[h], ':');
		size_t len = colon ? (size_t)(colon - call->headers[h]) : 0;
		if (!colon || len >= sizeof(names[h]))
			probe_die("--header needs NAME:VALUE");
		memcpy(names[h], call->headers[h], len);
		names[h][len] = '\0';
		nva[n++] = probe_nv(names[h], colon + 1);
	}
	call->stream_id = nghttp2_submit_request(p->session, NULL, nva, n,
						 call->headers_only ? NULL : &dp, call);
	return call->stream_id < 0 ? -1 : 0;
}

static double probe_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int probe_flush(struct probe *p)
{
	const uint8_t *out;
	ssize_t n;
	while ((n = nghttp2_session_mem_send(p->session, &out)) > 0) {
		while (n > 0) {
			ssize_t w = send(p->fd, out, (size_t)n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			out += w;
			n -= w;
		}
	}
	return n < 0 ? -1 : 0;
}

/* Reads what the server sent within ms; returns -1 when the connection is gone. */
static int probe_pump(struct probe *p, int ms)
{
	uint8_t buf[65536];
	struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
	ssize_t n;
	int r = poll(&pfd, 1, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	n = recv(p->fd, buf, sizeof(buf), 0);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	if (nghttp2_session_mem_recv(p->session, buf, (size_t)n) < 0)
		return -1;
	return 0;
}

/* Runs every call in order; afterwards the unfinished ones say why in their fields. */
static const char *probe_run(struct probe *p)
{
	double deadline = probe_now() + p->timeout;
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
	nghttp2_submit_settings(p->session, NGHTTP2_FLAG_NONE, &iv, 1);
	for (p->current = 0; p->current < p->ncalls;) {
		struct probe_call *call = &p->calls[p->current];
		if (!call->stream_id) {
			if (p->goaway)
				return "goaway received";
			if (probe_submit(p, p->current))
				return "stream refused by session";
		}
		if (probe_flush(p))
			return "connection closed";
		if (call->closed) {
			p->current++;
			continue;
		}
		if (probe_now() > deadline)
			return "timeout";
		if (probe_pump(p, 50))
			return "connection closed";
	}
	probe_flush(p);
	return NULL;
}

static void probe_print_text(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int hi, lo;
		if (c == '%' && (hi = probe_hex_value(s[1])) >= 0 &&
		    (lo = probe_hex_value(s[2])) >= 0) {
			c = (unsigned char)(hi << 4 | lo);
			s += 2;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
}

/* Prints the sizes (and with hex the bytes) of the gRPC messages in a response body. */
static void probe_print_msgs(const struct probe_buf *b, int hex, int index)
{
	size_t off = 0;
	int first = 1;
	printf(" msgs=");
	while (off + 5 <= b->len) {
		size_t len = (size_t)b->data[off + 1] << 24 | (size_t)b->data[off + 2] << 16 |
			     (size_t)b->data[off + 3] << 8 | b->data[off + 4];
		if (len > b->len - off - 5) {
			printf("%spartial:%zu/%zu", first ? "" : ",", b->len - off - 5, len);
			off = b->len;
			break;
		}
		printf("%s%zu", first ? "" : ",", len);
		first = 0;
		off += 5 + len;
	}
	if (off < b->len)
		printf("%strailing:%zu", first ? "" : ",", b->len - off);
	if (!hex)
		return;
	printf("\nHEX %d ", index);
	for (size_t i = 0; i < b->len; i++)
		printf("%02x", b->data[i]);
}

static void probe_report(const struct probe *p, const char *failure)
{
	for (int i = 0; i < p->ncalls; i++) {
		const struct probe_call *c = &p->calls[i];
		printf("CALL %d status=%d http=%d", i, c->grpc_status, c->http_status);
		probe_print_msgs(&c->resp, p->hex, i);
		printf(" message=");
		if (c->grpc_status >= 0)
			probe_print_text(c->grpc_message ? c->grpc_message : "");
		else if (c->closed)
			printf("stream closed without grpc-status (rst code %u)", c->rst_code);
		else if (i == p->current && failure)
			printf("%s", failure);
		else
			printf("not sent (%s)", failure ? failure : "?");
		putchar('\n');
	}
}

static void probe_free(struct probe *p)
{
	for (int i = 0; i < p->ncalls; i++) {
		free(p->calls[i].body.data);
		free(p->calls[i].resp.data);
		free(p->calls[i].grpc_message);
	}
	free(p->calls);
}

int main(int argc, char **argv)
{
	struct probe p = {.timeout = 20.0};
	nghttp2_session_callbacks *cbs;
	const char *failure;
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--hex"))
			p.hex = 1;
		else if (!strcmp(argv[i], "--timeout"))
			p.timeout = atof(probe_next_arg(argc, argv, &i));
		else
			break;
	}
	if (i >= argc)
		probe_die("usage: grpc_probe [--timeout SEC] [--hex] HOST:PORT --call PATH MSG...");
	p.authority = argv[i];
	probe_parse_calls(&p, argc, argv, i + 1);
	p.fd = probe_connect(p.authority);

	if (nghttp2_session_callbacks_new(&cbs))
		probe_die("out of memory");
	nghttp2_session_callbacks_set_on_header_callback(cbs, probe_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, probe_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, probe_on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, probe_on_frame);
	if (nghttp2_session_client_new(&p.session, cbs, &p))
		probe_die("out of memory");
	nghttp2_session_callbacks_del(cbs);

	failure = probe_run(&p);
	probe_report(&p, failure);
	fflush(stdout);
	nghttp2_session_del(p.session);
	close(p.fd);
	probe_free(&p);
	return 0;
}
