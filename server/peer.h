/* server/peer.h — the member-to-member transport of keeld: each member dials a message
 * connection and a snapshot connection to every peer and writes only on those;
 * length-prefixed, CRC-checked frames batched per loop turn, reconnect with backoff, and
 * snapshots (MsgSnap) sent in chunks on their own connection so they never delay
 * heartbeats.
 *
 * Threading: everything runs on the loop thread that owns the transport.
 *
 * Frames are checked before anything is believed: a frame that is too long, fails its
 * checksum, does not decode, names another cluster or another member, or arrives before
 * the handshake closes that connection and nothing else (peer_decoder_feed is the part
 * the fuzz target drives). */
#ifndef KEEL_SERVER_PEER_H
#define KEEL_SERVER_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft.h"

typedef struct peer_net peer_net_t;

typedef struct peer_callbacks {
	/* A Raft message for this member; ownership passes (free with raft_msg_free). */
	void (*on_raft)(void *ud, raft_msg_t *m);
	/* An application frame (kind chosen by the server), borrowed for the call. */
	void (*on_app)(void *ud, uint64_t from, uint32_t kind, const uint8_t *data,
		       size_t len);
	/* Sending to id failed (connection refused or lost); the core wants to know. */
	void (*on_unreachable)(void *ud, uint64_t id);
	/* A MsgSnap to id was delivered in full (failed = false) or given up. */
	void (*on_snapshot_status)(void *ud, uint64_t id, bool failed);
	/* A line for the server's log; level is "info", "warn" or "error". NULL = stderr. */
	void (*on_log)(void *ud, const char *level, const char *line);
	/* Membership (any may be NULL). is_removed: whether a HELLO's unknown sender is a
	 * removed member, which then gets a REMOVED frame before the connection closes.
	 * on_removed: a peer (by) said this member was removed from the cluster. members:
	 * the answer to an ASK, a malloc'd packed MemberListResponse (0), or -1 to refuse. */
	bool (*is_removed)(void *ud, uint64_t id);
	void (*on_removed)(void *ud, uint64_t by);
	int (*members)(void *ud, uint8_t **data, size_t *len);
} peer_callbacks_t;

typedef struct peer_options {
	uint64_t cluster_id;         /* both sides must agree, or the handshake fails */
	size_t max_frame_size;       /* largest frame accepted (default 16 MiB) */
	size_t snap_chunk_size;      /* bytes per snapshot chunk (default 1 MiB) */
	uint64_t backoff_min_ms;     /* reconnect backoff, doubling (default 50) */
	uint64_t backoff_max_ms;     /* (default 2000) */
	size_t max_queue_bytes;      /* per peer; beyond it messages are dropped and the
				      * peer reported unreachable (default 64 MiB) */
} peer_options_t;
void peer_options_default(peer_options_t *opt);

int peer_net_new(uv_loop_t *loop, uint64_t self_id, const peer_options_t *opt,
		 const peer_callbacks_t *cb, void *ud, peer_net_t **out);
/* Listens for peers on host:port (port 0 picks one; peer_net_port tells which). */
int peer_net_listen(peer_net_t *n, const char *host, int port, char *err, size_t errlen);
int peer_net_port(const peer_net_t *n);
/* Adds (or re-addresses) a peer; connections are made lazily on the first send. */
int peer_net_add(peer_net_t *n, uint64_t id, const char *host, int port);
/* Forgets a peer. Its inbound connections get a REMOVED frame, then close: the member
 * learns it was removed from the cluster. */
void peer_net_remove(peer_net_t *n, uint64_t id);
/* Loop time (uv_now, ms) since which id has had an open connection either way without a
 * break, or 0: etcd's "active since", which its reconfiguration checks read. */
uint64_t peer_net_active_since(const peer_net_t *n, uint64_t id);
/* Asks the member listening on host:port for the membership (an ASK frame, answered by a
 * MEMBERS frame): *out (malloc'd) is the packed MemberListResponse. Blocks up to
 * timeout_ms with its own socket: for a member joining, before its loop runs. -1 with
 * err on failure. */
int peer_ask_members(const char *host, int port, uint64_t timeout_ms, uint8_t **out,
		     size_t *len, char *err, size_t errlen);
/* Queues m (ownership passes) for m->to; everything queued in one loop turn goes out in
 * one write per connection. MsgSnap goes on the snapshot connection, in chunks. */
void peer_net_send(peer_net_t *n, raft_msg_t *m);
/* Queues an application frame (data copied). -1 if the peer is unknown. */
int peer_net_send_app(peer_net_t *n, uint64_t to, uint32_t kind, const void *data,
		      size_t len);
/* Closes every handle; done is called once libuv released them (run the loop). */
void peer_net_close(peer_net_t *n, void (*done)(void *arg), void *arg);

/* ---- frames (peer_frame.c), exposed for tests and the fuzz target --------------- */

/* A receiving connection's decoder state: feed it bytes, it calls back per frame. */
typedef struct peer_decoder peer_decoder_t;
typedef struct peer_decoder_callbacks {
	void (*on_raft)(void *ud, raft_msg_t *m);
	void (*on_app)(void *ud, uint64_t from, uint32_t kind, const uint8_t *data,
		       size_t len);
	/* (Added by peer.c's author.) Whether a HELLO's sender is a member this side knows;
	 * NULL accepts any sender. Cluster and receiver are checked by the decoder itself. */
	bool (*known_sender)(void *ud, uint64_t id);
	/* An ASK opened the connection (a member joining asks for the membership); NULL
	 * refuses it. Nothing is decoded after it. */
	void (*on_ask)(void *ud);
} peer_decoder_callbacks_t;
peer_decoder_t *peer_decoder_new(uint64_t self_id, const peer_options_t *opt,
				 const peer_decoder_callbacks_t *cb, void *ud);
void peer_decoder_free(peer_decoder_t *d);
/* < 0 (and a message in err) when the stream is bad and the connection must close. */
int peer_decoder_feed(peer_decoder_t *d, const uint8_t *data, size_t len, char *err,
		      size_t errlen);

/* ---- additions (strictly additive, by peer.c's author) ----------------------------
 * The sending half of the frame format, for peer.c, the tests and the fuzz seeds.
 * A frame is [u32 length][u8 type][u32 crc32c of type + payload][payload], big-endian;
 * length counts everything after itself and is at most max_frame_size. */
#define PEER_FRAME_HEADER_SIZE 9
#define PEER_FRAME_HELLO_SIZE (PEER_FRAME_HEADER_SIZE + 28)
#define PEER_FRAME_SNAP_HEADER_SIZE (PEER_FRAME_HEADER_SIZE + 16)
/* The HELLO that opens every connection: from, to, cluster and the format version. */
void peer_frame_hello(uint8_t out[PEER_FRAME_HELLO_SIZE], uint64_t from, uint64_t to,
		      uint64_t cluster_id);
/* A whole RAFT or APP frame in one malloc'd buffer (free()); NULL when out of memory. */
uint8_t *peer_frame_raft(const raft_msg_t *m, size_t *len);
uint8_t *peer_frame_app(uint32_t kind, const void *data, size_t dlen, size_t *len);
/* The header of one snapshot chunk; the chunk (the nbufs pieces of chunk, in order)
 * follows it on the wire. total is the packed MsgSnap's size, offset where this chunk
 * starts in it. */
void peer_frame_snap_header(uint8_t out[PEER_FRAME_SNAP_HEADER_SIZE], uint64_t total,
			    uint64_t offset, const uv_buf_t *chunk, size_t nbufs);

/* Frames that travel from the receiving side back to a dialer (peer_frame.c's comment):
 * the membership in answer to an ASK, and the notice that the dialer was removed. */
enum { PEER_FRAME_MEMBERS = 6, PEER_FRAME_REMOVED = 7 };
#define PEER_FRAME_ASK_SIZE (PEER_FRAME_HEADER_SIZE + 4)
#define PEER_FRAME_REMOVED_SIZE (PEER_FRAME_HEADER_SIZE + 8)
void peer_frame_ask(uint8_t out[PEER_FRAME_ASK_SIZE]);
void peer_frame_removed(uint8_t out[PEER_FRAME_REMOVED_SIZE], uint64_t id);
/* A MEMBERS frame around data (a packed MemberListResponse), malloc'd. */
uint8_t *peer_frame_members(const void *data, size_t dlen, size_t *len);
/* Parses the frame at the start of buf: its size (> 0) with type and payload (borrowed
 * from buf), 0 when buf does not hold all of it yet, -1 when it is bad (length out of
 * range, checksum). */
int peer_frame_parse(const uint8_t *buf, size_t len, size_t max_frame, uint8_t *type,
		     const uint8_t **payload, size_t *plen);

/* Counters per peer, for tests and metrics; -1 if the peer is unknown. */
typedef struct peer_stats {
	uint64_t writes;           /* uv_write calls on the message connection */
	uint64_t frames;           /* frames those writes carried (HELLO included) */
	uint64_t max_frames_per_write;
	uint64_t connects;         /* connection attempts, both connections */
	uint64_t connect_failures; /* attempts or connections that failed */
	uint64_t backoff_ms;       /* delay chosen after the latest failure */
	uint64_t dropped;          /* messages dropped (disconnected, or queue full) */
	uint64_t snap_bytes_written; /* snapshot chunk bytes the socket accepted */
} peer_stats_t;
int peer_net_stats(const peer_net_t *n, uint64_t id, peer_stats_t *st);

#endif
