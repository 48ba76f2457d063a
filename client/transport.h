/* client/transport.h — libkeel's gRPC client on nghttp2 (not a public door): the I/O
 * thread and its libuv loop, HTTP/2 connections to endpoints with keep-alive PINGs,
 * failover, unary calls with deadlines, bidirectional streams that reopen after a broken
 * connection, and the ordered delivery of callbacks to the user (dispatch).
 *
 * Threads: kt_unary, kt_post and kt_dispatch may be called from any thread. Stream ops
 * callbacks and posted functions run on the I/O thread; kt_stream_send/kt_stream_close run
 * only there (from a stream callback or a posted function). Dispatched functions run one
 * at a time in post order on the callback thread or the user's loop. */
#ifndef KEEL_CLIENT_TRANSPORT_H
#define KEEL_CLIENT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/keel.h"

typedef struct kt kt_t;
typedef struct kt_stream kt_stream_t;

/* Gives a connected stream socket (blocking or not) or -1 with a message: replaces TCP
 * dialing (the embedded store hands out one end of a socketpair). Called on the I/O
 * thread. */
typedef int (*kt_dial_fn)(void *arg, char *errbuf, size_t errlen);

typedef struct kt_options {
	const char *const *endpoints; /* "host:port" or "http://host:port" (copied) */
	size_t n_endpoints;
	int dial_timeout_ms;
	int call_timeout_ms;
	int keepalive_time_ms;
	int keepalive_timeout_ms;
	struct uv_loop_s *user_loop; /* dispatch target; NULL = own callback thread */
	kt_dial_fn dial;             /* NULL = TCP to the endpoints */
	void *dial_arg;
} kt_options_t;

/* Starts the I/O thread (and the callback thread). Does not dial yet. With user_loop,
 * kt_new and kt_free run on that loop's thread; kt_free runs what is still queued for
 * dispatch itself, and the loop must run once more to release the async handle.
 *
 * Behaviours owners rely on: on_broken comes only for a stream that had opened (a stream
 * that cannot connect is retried quietly, 50 ms doubling to 1 s); kt_stream_send fails
 * before on_open, after on_broken or close, and past 64 MiB queued; queued messages are
 * dropped when a stream breaks; a blocking call from the I/O thread fails at once with
 * KEEL_CODE_LOCAL instead of deadlocking. */
int kt_new(const kt_options_t *opt, kt_t **out, keel_error_t *err);
/* Ends every stream (on_closed runs for each), fails calls in flight with
 * KEEL_CODE_CANCELLED/KEEL_E_CLOSED, joins the threads, frees. Dispatched functions
 * already queued are run before it returns (so owners can free what they carry). */
void kt_free(kt_t *t);

/* A blocking unary call. endpoint NULL = the current endpoint (failing over in order);
 * otherwise exactly that endpoint (a URL or host:port, need not be in the list).
 * timeout_ms: 0 = the default, <0 = none. On success *resp is malloc'ed (may be NULL
 * with *resp_len 0 for an empty message). Retries on the next endpoint after Unavailable
 * when idempotent, or when the request never left this process. err gets the grpc-status
 * and the percent-decoded grpc-message, and kind from keel_errkind_of. A deadline that
 * passes gives KEEL_CODE_DEADLINE_EXCEEDED, "context deadline exceeded". */
int kt_unary(kt_t *t, const char *path, const char *endpoint, const uint8_t *req,
	     size_t req_len, int timeout_ms, bool idempotent, uint8_t **resp,
	     size_t *resp_len, keel_error_t *err);

/* Server-streaming call to one endpoint (Maintenance.Snapshot): on_msg gets each message
 * on the calling thread's behalf (it is called on the I/O thread; the caller blocks until
 * the end). Return non-zero from on_msg to cancel. */
int kt_server_stream(kt_t *t, const char *path, const char *endpoint, const uint8_t *req,
		     size_t req_len, int timeout_ms,
		     int (*on_msg)(void *ud, const uint8_t *msg, size_t len), void *ud,
		     keel_error_t *err);

/* A long-lived bidirectional stream (Watch, LeaseKeepAlive) on the current endpoint.
 * on_open: the stream is (re)opened on a connection; the owner (re)sends what it needs.
 * on_message: one message. on_broken: the stream or its connection failed (code/message
 * say why); the transport reopens it after a backoff (on another endpoint if the
 * connection failed) and calls on_open again. on_closed: once, after kt_stream_close or
 * kt_free; nothing follows. All run on the I/O thread. */
typedef struct kt_stream_ops {
	void (*on_open)(void *ud, kt_stream_t *s);
	void (*on_message)(void *ud, kt_stream_t *s, const uint8_t *msg, size_t len);
	void (*on_broken)(void *ud, kt_stream_t *s, int code, const char *message);
	void (*on_closed)(void *ud);
} kt_stream_ops_t;

/* I/O thread only. The stream opens as soon as a connection is up. */
kt_stream_t *kt_stream_open(kt_t *t, const char *path, const kt_stream_ops_t *ops, void *ud);
/* Queues one message on the open stream (copied); -1 if not open now (on_open will come). */
int kt_stream_send(kt_stream_t *s, const uint8_t *msg, size_t len);
/* Half-closes and forgets the stream; on_closed follows (possibly from inside this call). */
void kt_stream_close(kt_stream_t *s);

/* Runs fn(arg) on the I/O thread soon (from any thread, including the I/O thread). */
int kt_post(kt_t *t, void (*fn)(void *arg), void *arg);
/* Runs fn(arg) on the dispatch side (callback thread or user loop), in order. */
int kt_dispatch(kt_t *t, void (*fn)(void *arg), void *arg);
/* True when called on the I/O thread, or on the dispatch thread. */
bool kt_on_io_thread(const kt_t *t);
bool kt_on_dispatch(const kt_t *t);
/* Waits until every function dispatched before this call has run (not from dispatch). */
void kt_dispatch_flush(kt_t *t);
/* The loop of the I/O thread (timers of the owners of streams). */
struct uv_loop_s *kt_loop(kt_t *t);
/* Default call timeout in ms (<0 none). */
int kt_call_timeout(const kt_t *t);

#endif
