/* server/grpc.h — gRPC over HTTP/2 cleartext, on nghttp2 and a libuv loop: listeners,
 * connections, calls, message framing and status trailers. It knows nothing of etcd: the
 * server registers its methods by path and gets each call's messages as bytes.
 *
 * Threading: everything runs on the loop thread that owns the server.
 *
 * Call lifetime: a call starts when a client opens a stream on a registered path. The
 * owner gets on_message for each complete gRPC message (exactly one for a unary method,
 * delivered once the client half-closed), on_half_close when the client ends its side of
 * a streaming call, and on_close exactly once when the call is gone for any reason
 * (finished and flushed, reset by the client, connection lost, server closing). After
 * on_close the call pointer must not be used. grpc_call_finish ends the call from the
 * server side; the pointer stays valid (send/finish become no-ops) until on_close. */
#ifndef KEEL_SERVER_GRPC_H
#define KEEL_SERVER_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct grpc_server grpc_server_t;
typedef struct grpc_conn grpc_conn_t;
typedef struct grpc_call grpc_call_t;

/* gRPC status codes (the subset etcd uses). */
enum {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};

typedef struct grpc_method {
	const char *path;            /* e.g. "/etcdserverpb.KV/Range" */
	bool streaming;              /* client or server streaming (bidi included) */
	/* One complete message (decompressed, without its 5-byte prefix), borrowed. */
	void (*on_message)(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
	void (*on_half_close)(void *ud, grpc_call_t *call); /* may be NULL */
	void (*on_close)(void *ud, grpc_call_t *call);      /* may be NULL */
} grpc_method_t;

typedef struct grpc_server_options {
	size_t max_recv_msg_size;    /* larger messages get RESOURCE_EXHAUSTED (default 4 MiB) */
	uint32_t max_concurrent_streams; /* per connection (default 1000) */
} grpc_server_options_t;
void grpc_server_options_default(grpc_server_options_t *opt);

/* methods (and their paths) must outlive the server. loop may be NULL for a server that
 * only serves raw connections (the fuzz target). */
int grpc_server_new(uv_loop_t *loop, const grpc_method_t *methods, size_t n_methods,
		    void *ud, const grpc_server_options_t *opt, grpc_server_t **out);
/* Listens on host:port (port 0 picks one; grpc_server_port tells which). */
int grpc_server_listen(grpc_server_t *s, const char *host, int port, char *err,
		       size_t errlen);
int grpc_server_port(const grpc_server_t *s, size_t listener);
/* Serves a connected stream socket (e.g. one end of a socketpair(AF_UNIX) whose other end
 * a client in the same process holds) as one more connection, without a listener. The
 * descriptor belongs to the server from this call on, also when it fails (it is closed
 * then), except when the loop already watches it. Loop thread only; -1 with err when
 * the server is closing or the descriptor cannot be used. */
int grpc_server_adopt_fd(grpc_server_t *s, int fd, char *err, size_t errlen);
/* Closes listeners and connections (every open call gets on_close), then frees the
 * server once libuv has released its handles: run the loop until done is called. */
void grpc_server_close(grpc_server_t *s, void (*done)(void *arg), void *arg);

/* A connection that is not a socket: bytes come in through grpc_conn_feed and go out
 * through write (which must take or copy them). For the fuzz target and tests. */
typedef void (*grpc_write_fn)(void *arg, const uint8_t *data, size_t len);
grpc_conn_t *grpc_conn_new_raw(grpc_server_t *s, grpc_write_fn write, void *arg);
/* Feeds received bytes; < 0 when the connection must be dropped (protocol error). */
int grpc_conn_feed(grpc_conn_t *c, const uint8_t *data, size_t len);
/* Frees a raw connection (open calls get on_close). grpc_server_close frees the raw
 * connections still open, so free yours before closing the server or not at all. */
void grpc_conn_free(grpc_conn_t *c);

/* Queues one message (copied). -1 if the call is finished or gone. */
int grpc_call_send(grpc_call_t *call, const uint8_t *msg, size_t len);
/* Whoever built a message sent without a copy, told how its sending goes. Both run on
 * the loop thread from inside the connection's work and must not call into grpc. */
typedef struct grpc_msg_owner {
	/* msg[0, upto) went to the transport and is never read again (may be NULL). */
	void (*drained)(void *arg, size_t upto);
	/* The call is done with msg: all of it sent, or the call is gone. Exactly once. */
	void (*release)(void *arg);
} grpc_msg_owner_t;
/* Queues one message without copying it (a large answer built once): msg must stay
 * readable until owner->release(arg), which also runs when this fails (-1: the call is
 * finished or gone), before it returns. Ordered with grpc_call_send's messages. owner is
 * copied. */
int grpc_call_send_owned(grpc_call_t *call, const uint8_t *msg, size_t len,
			 const grpc_msg_owner_t *owner, void *arg);
/* Ends the call with a status and message (NULL or "" for none); the message is
 * percent-encoded into grpc-message as gRPC requires. */
void grpc_call_finish(grpc_call_t *call, int status, const char *message);
/* Bytes queued on the call and not yet written to the socket (owned messages included),
 * for backpressure. */
size_t grpc_call_pending_bytes(const grpc_call_t *call);
void grpc_call_set_user(grpc_call_t *call, void *user);
void *grpc_call_user(const grpc_call_t *call);
const grpc_method_t *grpc_call_method(const grpc_call_t *call);
/* The value of a request header (e.g. "hasleader"), or NULL. */
const char *grpc_call_header(const grpc_call_t *call, const char *name);

#endif
