/* tests/fuzz/fuzz_grpc.c — libFuzzer target for the gRPC front: each input is what a
 * client sends on one raw connection of a server with echo methods. It must never crash,
 * leak or hang the server, whatever the bytes; it checks nothing else. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "grpc.h"

/* Input layout: byte 0 picks the mode, the rest goes to the connection.
 *   bit 0: send the HTTP/2 client preface first (so inputs need not find it)
 *   bits 1-3: feed in pieces of 1, 2, 7, 64, 1000 bytes or all at once */
static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const size_t pieces[8] = {0, 1, 2, 7, 64, 1000, 0, 3};

static void echo_unary(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud;
	if (len > 0 && msg[0] == 'E') {
		/* an error text with bytes that need percent-encoding */
		char text[64];
		size_t n = len - 1 < sizeof text - 1 ? len - 1 : sizeof text - 1;
		memcpy(text, msg + 1, n);
		text[n] = '\0';
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, text);
		return;
	}
	grpc_call_send(call, msg, len);
	grpc_call_finish(call, GRPC_OK, NULL);
}

static void echo_stream(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	(void)ud;
	grpc_call_send(call, msg, len);
	if (len > 0 && msg[0] == 'F')
		grpc_call_finish(call, GRPC_ABORTED, "finished inside on_message");
	(void)grpc_call_header(call, "hasleader");
	(void)grpc_call_pending_bytes(call);
}

static void stream_half_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	grpc_call_finish(call, GRPC_OK, "");
}

static void on_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	(void)call;
}

static const grpc_method_t methods[] = {
	{"/etcdserverpb.KV/Range", false, echo_unary, NULL, on_close},
	{"/etcdserverpb.Watch/Watch", true, echo_stream, stream_half_close, on_close},
};

static void sink(void *arg, const uint8_t *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
}

static grpc_server_t *fuzz_server(void)
{
	static grpc_server_t *srv;
	if (!srv) {
		grpc_server_options_t opt;
		grpc_server_options_default(&opt);
		opt.max_recv_msg_size = 64 * 1024;
		opt.max_concurrent_streams = 100;
		if (grpc_server_new(NULL, methods, sizeof methods / sizeof methods[0], NULL, &opt,
				    &srv) != 0)
			return NULL;
	}
	return srv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	grpc_server_t *srv = fuzz_server();
	if (!srv || size == 0)
		return 0;
	uint8_t mode = data[0];
	size_t piece = pieces[(mode >> 1) & 7];
	data++;
	size--;
	grpc_conn_t *c = grpc_conn_new_raw(srv, sink, NULL);
	if (!c)
		return 0;
	int rc = 0;
	if (mode & 1)
		rc = grpc_conn_feed(c, (const uint8_t *)preface, sizeof preface - 1);
	while (rc >= 0 && size > 0) {
		size_t n = piece && piece < size ? piece : size;
		rc = grpc_conn_feed(c, data, n);
		data += n;
		size -= n;
	}
	grpc_conn_free(c);
	return 0;
}
