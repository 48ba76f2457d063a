/* server/peer.c — keeld's member-to-member transport on libuv: dialing, batching, backoff,
 * snapshot streaming and the receiving side's connections. Runs on the loop thread only;
 * never blocks, never calls a user callback from inside an API call (see "events").
 *
 * Connections. Each member dials its peers and only ever writes on what it dialed; an
 * accepted connection is receive-only. That makes a pair use a connection each way instead
 * of one shared one, and buys the absence of a dial race (no tie-break, no half-adopted
 * sockets) and a failure model that is one state machine per direction. Per peer there are
 * two outgoing links: "msg" (Raft messages and APP frames) and "snap" (MsgSnap chunks), so
 * a multi-MiB snapshot waits in its own socket's buffers, never in front of heartbeats.
 * Every connection opens with a HELLO (see peer_frame.c); the receiver checks it and
 * closes with a logged reason on a wrong cluster, receiver or unknown sender. The sender
 * reads its own outgoing socket only to notice EOF: that is how a refused HELLO or a dead
 * peer shows up.
 *
 * Batching. peer_net_send only appends a frame to the msg connection's pending list and
 * starts a uv_prepare; the prepare callback (which runs before the loop next blocks in
 * poll) hands each connection's whole pending list to one uv_write. Snapshot chunks are
 * written by the snap connection itself, at most two chunks in flight, the next one from
 * the previous one's write callback, so the loop keeps turning between chunks.
 *
 * Failures and backoff. A link is idle, connecting, open, or backing off. A failed attempt
 * or a lost connection sets retry_at = now + backoff (backoff_min doubling per consecutive
 * failure, capped at backoff_max; a connection that lived backoff_max resets the count)
 * and reports on_unreachable once. Until retry_at, messages for the peer are dropped
 * (Raft retries); the first send after it dials again, so reconnecting is lazy and costs
 * nothing for a peer nobody talks to. Frames queued while connecting are kept, up to
 * max_queue_bytes (pending plus in flight); beyond it they are dropped and the peer
 * reported unreachable once per overflow. A MsgSnap reports on_snapshot_status(false)
 * when the socket accepted its last chunk, (true) if its connection fails first or it
 * could not be queued.
 *
 * Removing a peer (or closing the transport) drops what was queued for it without any
 * callback: nobody is left to care about that member's snapshot status. The removed
 * member's inbound connections get a REMOVED frame before they close, and so does a later
 * HELLO from it (is_removed): it learns it is out of the cluster. A dialer reads REMOVED
 * on its send-only connection and reports on_removed.
 *
 * Membership queries. A member joining knows neither its id nor the cluster's: it opens a
 * connection with ASK instead of HELLO and gets the membership back (cb.members) as one
 * MEMBERS frame on the same connection, which then closes. peer_ask_members is the
 * asking side, blocking, with its own socket, for use before the loop runs.
 *
 * Events. on_unreachable and on_snapshot_status are queued and delivered from the prepare
 * callback, so the core never sees them inside its own peer_net_send call (the Ready
 * contract forbids reentering raft there). on_raft / on_app come straight from reads. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "be.h"
#include "peer.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define READ_BUF_SIZE (64 * 1024)
#define SNAP_CHUNKS_IN_FLIGHT 2
#define KEEPALIVE_SECS 10
/* Like etcd's default peer dial timeout: without it a blackholed address keeps a link
 * "connecting" for the kernel's SYN retries (minutes), queueing instead of reporting. */
#define CONNECT_TIMEOUT_MS 1000
#define HOUSEKEEPING_MS 100

enum conn_kind { LINK_MSG = 0, LINK_SNAP = 1, CONN_INBOUND = 2 };
enum conn_state { CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };
enum event_kind { EV_UNREACHABLE, EV_SNAP_STATUS };

static const char *const link_names[] = {"message", "snapshot", "inbound"};

/* A MsgSnap on its way out. Its packed form is head | body | tail where body is the
 * snapshot's data, borrowed from msg rather than copied: packing a big snapshot into a
 * fresh buffer would stall the loop (page faults and a copy, ~15 ms for 20 MiB). */
struct snap_job {
	struct snap_job *next;
	raft_msg_t *msg; /* owns the data the body points into */
	uv_buf_t seg[3]; /* head (malloc'd), body (borrowed), tail (malloc'd) */
	size_t len;      /* the packed size: the three segments */
	size_t next_off; /* where the next chunk to write starts */
};

struct conn {
	uv_tcp_t tcp;
	peer_net_t *net;
	struct peer *peer; /* outgoing: the owning peer; NULL once detached */
	enum conn_kind kind;
	enum conn_state state;
	uv_connect_t connect;
	uint64_t dialed_at;
	uint64_t opened_at;
	struct conn *prev, *next; /* the net's list of live connections */
	/* msg link: frames not yet handed to uv_write */
	uv_buf_t *pend;
	size_t n_pend, cap_pend;
	size_t queued_bytes; /* pending plus in flight */
	bool overflow;       /* unreachable already reported for this overflow */
	/* snap link */
	uint8_t hello[PEER_FRAME_HELLO_SIZE];
	uv_write_t hello_req;
	struct snap_job *jobs, **jobs_tail;
	size_t snap_bytes;
	unsigned chunks_in_flight;
	/* inbound */
	peer_decoder_t *dec;
	uint64_t remote_id; /* the HELLO's sender once accepted */
	char remote[64];
	uint8_t *rbuf;
	uint8_t sink[64]; /* outgoing: reads only to notice EOF, or a REMOVED frame */
	uint8_t sink_acc[PEER_FRAME_REMOVED_SIZE];
	size_t sink_n;
	uint64_t removed_sender; /* inbound: a HELLO from this removed member came */
	bool answering;          /* inbound: writing a last frame (MEMBERS, REMOVED), then close */
};

struct link {
	struct conn *conn;
	unsigned failures;
	bool in_backoff;
	uint64_t retry_at;
};

struct peer {
	struct peer *next;
	uint64_t id;
	struct sockaddr_storage addr;
	char addr_str[64];
	struct link links[2];
	peer_stats_t st;
};

struct event {
	enum event_kind kind;
	uint64_t id;
	bool failed;
};

struct listener {
	uv_tcp_t tcp;
	struct listener *next;
	peer_net_t *net;
};

struct peer_net {
	uv_loop_t *loop;
	uint64_t self;
	peer_options_t opt;
	size_t chunk_size; /* snap_chunk_size, clamped so a chunk frame fits max_frame_size */
	peer_callbacks_t cb;
	void *ud;
	uv_prepare_t prepare;
	uv_timer_t housekeeping; /* connect timeouts; unref'd so it never keeps a loop alive */
	struct listener *listeners;
	int port;
	struct peer *peers;
	struct conn *conns;
	struct event *events;
	size_t n_events, cap_events, ev_head;
	unsigned handles; /* uv handles not yet closed */
	bool closing;
	void (*done)(void *);
	void *done_arg;
};

struct batch_req {
	uv_write_t req;
	struct conn *c;
	size_t nbufs;
	size_t bytes;
	uv_buf_t bufs[];
};

struct chunk_req {
	uv_write_t req;
	struct conn *c;
	struct snap_job *job;
	size_t len;
	bool last;
	uint8_t hdr[PEER_FRAME_SNAP_HEADER_SIZE];
};

static void peer_log(const peer_net_t *n, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void peer_log(const peer_net_t *n, const char *level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n->cb.on_log)
		n->cb.on_log(n->ud, level, line);
	else
		fprintf(stderr, "%-5s peer: %s\n", level, line);
}

static struct peer *peer_find(const peer_net_t *n, uint64_t id)
{
	for (struct peer *p = n->peers; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* ---- events ---------------------------------------------------------------------- */

static void on_prepare(uv_prepare_t *h);

static void net_kick(peer_net_t *n)
{
	if (!n->closing)
		uv_prepare_start(&n->prepare, on_prepare);
}

static void event_push(peer_net_t *n, enum event_kind kind, uint64_t id, bool failed)
{
	if (n->closing)
		return;
	if (n->n_events == n->cap_events) {
		size_t cap = n->cap_events ? n->cap_events * 2 : 16;
		struct event *e = realloc(n->events, cap * sizeof(*e));
		if (!e) {
			peer_log(n, "error", "out of memory: lost an event for member %" PRIx64, id);
			return;
		}
		n->events = e;
		n->cap_events = cap;
	}
	n->events[n->n_events++] = (struct event){kind, id, failed};
	net_kick(n);
}

/* Delivers queued events; callbacks may send, add, remove or even close the transport. */
static void events_deliver(peer_net_t *n)
{
	while (!n->closing && n->ev_head < n->n_events) {
		struct event e = n->events[n->ev_head++];
		if (e.kind == EV_UNREACHABLE) {
			if (n->cb.on_unreachable)
				n->cb.on_unreachable(n->ud, e.id);
		} else if (n->cb.on_snapshot_status) {
			n->cb.on_snapshot_status(n->ud, e.id, e.failed);
		}
	}
	n->ev_head = n->n_events = 0;
}

/* ---- connections ----------------------------------------------------------------- */

static void net_handle_closed(peer_net_t *n)
{
	if (--n->handles > 0 || !n->closing)
		return;
	void (*done)(void *) = n->done;
	void *arg = n->done_arg;
	free(n->events);
	free(n);
	if (done)
		done(arg);
}

static void on_net_handle_closed(uv_handle_t *h)
{
	net_handle_closed(h->data);
}

static void snap_job_free(struct snap_job *j)
{
	free(j->seg[0].base);
	free(j->seg[2].base);
	raft_msg_free(j->msg);
	free(j);
}

static void conn_free_queues(struct conn *c)
{
	for (size_t i = 0; i < c->n_pend; i++)
		free(c->pend[i].base);
	free(c->pend);
	c->pend = NULL;
	c->n_pend = c->cap_pend = 0;
	while (c->jobs) {
		struct snap_job *j = c->jobs;
		c->jobs = j->next;
		snap_job_free(j);
	}
}

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = container_of(h, struct conn, tcp);
	peer_net_t *n = c->net;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_free_queues(c);
	peer_decoder_free(c->dec);
	free(c->rbuf);
	free(c);
	net_handle_closed(n);
}

/* Closes c without reporting anything; write callbacks still run (cancelled) first. */
static void conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->peer && c->kind != CONN_INBOUND && c->peer->links[c->kind].conn == c)
		c->peer->links[c->kind].conn = NULL;
	c->state = CONN_CLOSING;
	c->peer = NULL;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static uint64_t backoff_next(const peer_net_t *n, unsigned failures)
{
	uint64_t d = n->opt.backoff_min_ms;
	for (unsigned i = 1; i < failures && d < n->opt.backoff_max_ms; i++)
		d *= 2;
	return d < n->opt.backoff_max_ms ? d : n->opt.backoff_max_ms;
}

/* An outgoing connection failed: start backing off, report, drop what it held. */
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	if (c->state == CONN_CLOSING)
		return;
	struct peer *p = c->peer;
	peer_net_t *n = c->net;
	if (p && c->kind != CONN_INBOUND) {
		char why[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		struct link *l = &p->links[c->kind];
		uint64_t now = uv_now(n->loop);
		if (c->state == CONN_OPEN && now - c->opened_at >= n->opt.backoff_max_ms)
			l->failures = 0;
		l->failures++;
		uint64_t delay = backoff_next(n, l->failures);
		l->in_backoff = true;
		l->retry_at = now + delay;
		p->st.connect_failures++;
		p->st.backoff_ms = delay;
		p->st.dropped += c->n_pend;
		if (!n->closing)
			peer_log(n, "warn", "%s connection to member %" PRIx64 " (%s) failed: %s; "
				 "retry in %" PRIu64 " ms", link_names[c->kind], p->id,
				 p->addr_str, why, delay);
		event_push(n, EV_UNREACHABLE, p->id, false);
		for (struct snap_job *j = c->jobs; j; j = j->next)
			event_push(n, EV_SNAP_STATUS, p->id, true);
	}
	conn_close(c);
}

static void on_sink_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)size;
	struct conn *c = container_of(h, struct conn, tcp);
	*buf = uv_buf_init((char *)c->sink, sizeof(c->sink));
}

/* The receiving side writes only one thing back: REMOVED, when this member was removed
 * from the cluster. Anything else breaks the connection. */
static void on_sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = container_of(s, struct conn, tcp);
	if (nread < 0) {
		conn_fail(c, "%s",
			  nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
		return;
	}
	size_t take = (size_t)nread;
	if (take > sizeof(c->sink_acc) - c->sink_n)
		take = sizeof(c->sink_acc) - c->sink_n;
	memcpy(c->sink_acc + c->sink_n, c->sink, take);
	c->sink_n += take;
	uint8_t type = 0;
	const uint8_t *pl;
	size_t plen;
	int rc = peer_frame_parse(c->sink_acc, c->sink_n, sizeof(c->sink_acc), &type, &pl, &plen);
	if (rc == 0 && take == (size_t)nread)
		return;
	peer_net_t *n = c->net;
	uint64_t by = c->peer ? c->peer->id : 0;
	if (rc > 0 && type == PEER_FRAME_REMOVED && plen == 8 && get_be64(pl) == n->self) {
		peer_log(n, "warn", "member %" PRIx64 " says this member was removed", by);
		conn_fail(c, "this member was removed from the cluster");
		if (n->cb.on_removed && !n->closing)
			n->cb.on_removed(n->ud, by);
		return;
	}
	conn_fail(c, "the receiving side wrote to a send-only connection");
}

static void snap_pump(struct conn *c);

static void on_hello_written(uv_write_t *req, int status)
{
	struct conn *c = container_of(req, struct conn, hello_req);
	if (status < 0 && status != UV_ECANCELED)
		conn_fail(c, "writing HELLO: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = container_of(req, struct conn, connect);
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_fail(c, "connect: %s", uv_strerror(status));
		return;
	}
	c->state = CONN_OPEN;
	c->opened_at = uv_now(c->net->loop);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, on_sink_alloc, on_sink_read);
	if (rc < 0) {
		conn_fail(c, "read start: %s", uv_strerror(rc));
		return;
	}
	if (c->kind == LINK_MSG) {
		if (c->n_pend)
			net_kick(c->net);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)c->hello, sizeof(c->hello));
	rc = uv_write(&c->hello_req, (uv_stream_t *)&c->tcp, &b, 1, on_hello_written);
	if (rc < 0) {
		conn_fail(c, "writing HELLO: %s", uv_strerror(rc));
		return;
	}
	snap_pump(c);
}

static struct conn *conn_new(peer_net_t *n, enum conn_kind kind)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (uv_tcp_init(n->loop, &c->tcp) < 0) {
		free(c);
		return NULL;
	}
	n->handles++;
	c->net = n;
	c->kind = kind;
	c->jobs_tail = &c->jobs;
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	return c;
}

static int pend_push(struct conn *c, uint8_t *frame, size_t len)
{
	if (c->n_pend == c->cap_pend) {
		size_t cap = c->cap_pend ? c->cap_pend * 2 : 16;
		uv_buf_t *b = realloc(c->pend, cap * sizeof(*b));
		if (!b)
			return -1;
		c->pend = b;
		c->cap_pend = cap;
	}
	c->pend[c->n_pend++] = uv_buf_init((char *)frame, (unsigned)len);
	c->queued_bytes += len;
	return 0;
}

/* Dials p on one link; NULL (and the failure handled) when that is impossible now. */
static struct conn *link_dial(peer_net_t *n, struct peer *p, enum conn_kind kind)
{
	struct link *l = &p->links[kind];
	struct conn *c = conn_new(n, kind);
	if (!c) {
		peer_log(n, "error", "cannot create a connection to member %" PRIx64, p->id);
		return NULL;
	}
	c->peer = p;
	c->state = CONN_CONNECTING;
	l->conn = c;
	l->in_backoff = false;
	p->st.connects++;
	c->dialed_at = uv_now(n->loop);
	peer_frame_hello(c->hello, n->self, p->id, n->opt.cluster_id);
	if (kind == LINK_MSG) {
		uint8_t *h = malloc(sizeof(c->hello));
		if (!h || pend_push(c, h, sizeof(c->hello))) {
			free(h);
			conn_fail(c, "out of memory");
			return NULL;
		}
		memcpy(h, c->hello, sizeof(c->hello));
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_SECS);
	int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&p->addr,
				on_connect);
	if (rc < 0) {
		conn_fail(c, "connect: %s", uv_strerror(rc));
		return NULL;
	}
	return c;
}

/* The link's connection, dialing if allowed; NULL while backing off. */
static struct conn *link_conn(peer_net_t *n, struct peer *p, enum conn_kind kind)
{
	struct link *l = &p->links[kind];
	if (l->conn)
		return l->conn;
	if (l->in_backoff && uv_now(n->loop) < l->retry_at)
		return NULL;
	return link_dial(n, p, kind);
}

/* ---- sending: message link ------------------------------------------------------- */

static void on_batch_written(uv_write_t *req, int status)
{
	struct batch_req *b = container_of(req, struct batch_req, req);
	struct conn *c = b->c;
	for (size_t i = 0; i < b->nbufs; i++)
		free(b->bufs[i].base);
	c->queued_bytes -= b->bytes;
	if (c->queued_bytes <= c->net->opt.max_queue_bytes / 2)
		c->overflow = false;
	free(b);
	if (status < 0 && status != UV_ECANCELED)
		conn_fail(c, "write: %s", uv_strerror(status));
}

static void conn_flush(struct conn *c)
{
	if (c->state != CONN_OPEN || c->n_pend == 0)
		return;
	struct batch_req *b = malloc(sizeof(*b) + c->n_pend * sizeof(uv_buf_t));
	if (!b) {
		conn_fail(c, "out of memory");
		return;
	}
	b->c = c;
	b->nbufs = c->n_pend;
	b->bytes = 0;
	for (size_t i = 0; i < c->n_pend; i++) {
		b->bufs[i] = c->pend[i];
		b->bytes += c->pend[i].len;
	}
	c->n_pend = 0;
	if (c->peer) {
		peer_stats_t *st = &c->peer->st;
		st->writes++;
		st->frames += b->nbufs;
		if (b->nbufs > st->max_frames_per_write)
			st->max_frames_per_write = b->nbufs;
	}
	int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, b->bufs, (unsigned)b->nbufs,
			  on_batch_written);
	if (rc < 0) {
		for (size_t i = 0; i < b->nbufs; i++)
			free(b->bufs[i].base);
		c->queued_bytes -= b->bytes;
		free(b);
		conn_fail(c, "write: %s", uv_strerror(rc));
	}
}

static void on_prepare(uv_prepare_t *h)
{
	peer_net_t *n = h->data;
	do {
		events_deliver(n);
		if (n->closing)
			return;
		for (struct conn *c = n->conns; c; c = c->next)
			if (c->kind == LINK_MSG)
				conn_flush(c);
	} while (n->n_events > 0);
	uv_prepare_stop(h);
}

/* Queues one frame (owned) for p's message link, or drops it. */
static void link_queue_frame(peer_net_t *n, struct peer *p, uint8_t *frame, size_t len)
{
	struct conn *c = link_conn(n, p, LINK_MSG);
	if (!c) {
		p->st.dropped++;
		free(frame);
		return;
	}
	if (len - 4 > n->opt.max_frame_size) { /* the length field counts all but itself */
		peer_log(n, "warn", "dropping a %zu-byte frame for member %" PRIx64
			 ": larger than max_frame_size", len, p->id);
		p->st.dropped++;
		free(frame);
		return;
	}
	if (c->queued_bytes + len > n->opt.max_queue_bytes || pend_push(c, frame, len)) {
		p->st.dropped++;
		free(frame);
		if (!c->overflow) {
			c->overflow = true;
			peer_log(n, "warn", "queue for member %" PRIx64 " full (%zu bytes): dropping",
				 p->id, c->queued_bytes);
			event_push(n, EV_UNREACHABLE, p->id, false);
		}
		return;
	}
	if (c->state == CONN_OPEN)
		net_kick(n);
}

/* ---- sending: snapshot link ------------------------------------------------------ */

static void on_chunk_written(uv_write_t *req, int status)
{
	struct chunk_req *r = container_of(req, struct chunk_req, req);
	struct conn *c = r->c;
	c->chunks_in_flight--;
	if (status < 0) {
		free(r);
		if (status != UV_ECANCELED)
			conn_fail(c, "snapshot write: %s", uv_strerror(status));
		return;
	}
	if (c->peer)
		c->peer->st.snap_bytes_written += r->len;
	if (r->last) {
		/* Writes complete in order, so the finished job is the head. */
		struct snap_job *j = c->jobs;
		c->jobs = j->next;
		if (!c->jobs)
			c->jobs_tail = &c->jobs;
		c->snap_bytes -= j->len;
		if (c->peer)
			event_push(c->net, EV_SNAP_STATUS, c->peer->id, false);
		snap_job_free(j);
	}
	free(r);
	snap_pump(c);
}

/* The pieces of the job's packed bytes [off, off + len): at most one per segment. */
static size_t snap_job_slice(const struct snap_job *j, size_t off, size_t len, uv_buf_t *out)
{
	size_t n = 0, start = 0;
	for (int i = 0; i < 3 && len > 0; i++) {
		size_t slen = j->seg[i].len;
		if (off < start + slen) {
			size_t from = off - start, take = slen - from < len ? slen - from : len;
			out[n++] = uv_buf_init(j->seg[i].base + from, (unsigned)take);
			off += take;
			len -= take;
		}
		start += slen;
	}
	return n;
}

static void snap_pump(struct conn *c)
{
	while (c->state == CONN_OPEN && c->chunks_in_flight < SNAP_CHUNKS_IN_FLIGHT) {
		struct snap_job *j = c->jobs;
		while (j && j->next_off == j->len)
			j = j->next;
		if (!j)
			return;
		size_t len = j->len - j->next_off;
		if (len > c->net->chunk_size)
			len = c->net->chunk_size;
		struct chunk_req *r = malloc(sizeof(*r));
		if (!r) {
			conn_fail(c, "out of memory");
			return;
		}
		r->c = c;
		r->job = j;
		r->len = len;
		r->last = j->next_off + len == j->len;
		uv_buf_t bufs[4];
		size_t nbufs = 1 + snap_job_slice(j, j->next_off, len, bufs + 1);
		peer_frame_snap_header(r->hdr, j->len, j->next_off, bufs + 1, nbufs - 1);
		bufs[0] = uv_buf_init((char *)r->hdr, sizeof(r->hdr));
		int rc = uv_write(&r->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs,
				  on_chunk_written);
		if (rc < 0) {
			free(r);
			conn_fail(c, "snapshot write: %s", uv_strerror(rc));
			return;
		}
		j->next_off += len;
		c->chunks_in_flight++;
	}
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Lays m out as head | data | tail: head is m packed without its snapshot, then the keys
 * and lengths of the snapshot field (9) and its data field (1); tail is the metadata
 * field (2). Protobuf readers take fields in any order, so the receiver unpacks the same
 * message pack() would have made (less unknown fields of the Snapshot, which keeld never
 * has). Takes m on success. */
static int snap_job_build(struct snap_job *j, raft_msg_t *m)
{
	raft_snapshot_t *s = m->snapshot;
	size_t dlen = s ? s->data.len : 0;
	size_t mlen = s && s->metadata ? raftpb__snapshot_metadata__get_packed_size(s->metadata)
				       : 0;
	size_t tail_len = s && s->metadata ? 1 + varint_len(mlen) + mlen : 0;
	size_t snap_len = (dlen ? 1 + varint_len(dlen) + dlen : 0) + tail_len;
	m->snapshot = NULL;
	size_t head_len = raftpb__message__get_packed_size(m) +
			  (s ? 1 + varint_len(snap_len) : 0) + (dlen ? 1 + varint_len(dlen) : 0);
	uint8_t *head = malloc(head_len);
	uint8_t *tail = tail_len ? malloc(tail_len) : NULL;
	if (!head || (tail_len && !tail)) {
		m->snapshot = s;
		free(head);
		free(tail);
		return -1;
	}
	size_t h = raftpb__message__pack(m, head);
	m->snapshot = s;
	if (s) {
		head[h++] = 9 << 3 | 2;
		h += varint_put(head + h, snap_len);
	}
	if (dlen) {
		head[h++] = 1 << 3 | 2;
		varint_put(head + h, dlen);
	}
	if (tail_len) {
		tail[0] = 2 << 3 | 2;
		size_t t = 1 + varint_put(tail + 1, mlen);
		raftpb__snapshot_metadata__pack(s->metadata, tail + t);
	}
	j->msg = m;
	j->seg[0].base = (char *)head;
	j->seg[0].len = head_len;
	j->seg[1].base = dlen ? (char *)s->data.data : NULL;
	j->seg[1].len = dlen;
	j->seg[2].base = (char *)tail;
	j->seg[2].len = tail_len;
	j->len = head_len + dlen + tail_len;
	return 0;
}

/* A snapshot that will not be sent: raft hears it failed (and, unless the link is
 * already backing off, that the peer is unreachable). */
static void snap_drop(peer_net_t *n, struct peer *p, raft_msg_t *m, const char *why)
{
	raft_msg_free(m);
	p->st.dropped++;
	if (why) {
		peer_log(n, "warn", "dropping a snapshot for member %" PRIx64 ": %s", p->id, why);
		event_push(n, EV_UNREACHABLE, p->id, false);
	}
	event_push(n, EV_SNAP_STATUS, p->id, true);
}

static void snap_send(peer_net_t *n, struct peer *p, raft_msg_t *m)
{
	struct conn *c = link_conn(n, p, LINK_SNAP);
	if (!c) {
		snap_drop(n, p, m, NULL);
		return;
	}
	struct snap_job *j = calloc(1, sizeof(*j));
	if (!j || snap_job_build(j, m)) {
		free(j);
		snap_drop(n, p, m, "out of memory");
		return;
	}
	if (c->jobs && c->snap_bytes + j->len > n->opt.max_queue_bytes) {
		j->msg = NULL;
		snap_job_free(j);
		snap_drop(n, p, m, "snapshot queue full");
		return;
	}
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	c->snap_bytes += j->len;
	snap_pump(c);
}

/* ---- receiving ------------------------------------------------------------------- */

struct answer_req {
	uv_write_t req;
	struct conn *c;
	uint8_t *frame;
};

static void on_answer_written(uv_write_t *req, int status)
{
	(void)status;
	struct answer_req *a = container_of(req, struct answer_req, req);
	struct conn *c = a->c;
	free(a->frame);
	free(a);
	conn_close(c);
}

/* Writes a last frame (owned) on an inbound connection and closes it once written. */
static void conn_answer(struct conn *c, uint8_t *frame, size_t len)
{
	if (c->answering || c->state == CONN_CLOSING) {
		free(frame);
		return;
	}
	c->answering = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	struct answer_req *a = frame ? malloc(sizeof(*a)) : NULL;
	if (!a) {
		free(frame);
		conn_close(c);
		return;
	}
	a->c = c;
	a->frame = frame;
	uv_buf_t b = uv_buf_init((char *)frame, (unsigned)len);
	if (uv_write(&a->req, (uv_stream_t *)&c->tcp, &b, 1, on_answer_written) < 0) {
		free(frame);
		free(a);
		conn_close(c);
	}
}

static void conn_answer_removed(struct conn *c, uint64_t id)
{
	uint8_t *f = malloc(PEER_FRAME_REMOVED_SIZE);
	if (f)
		peer_frame_removed(f, id);
	conn_answer(c, f, PEER_FRAME_REMOVED_SIZE);
}

static void in_on_ask(void *ud)
{
	struct conn *c = ud;
	peer_net_t *n = c->net;
	uint8_t *data = NULL, *f = NULL;
	size_t len = 0, flen = 0;
	if (!n->closing && n->cb.members && n->cb.members(n->ud, &data, &len) == 0) {
		f = peer_frame_members(data, len, &flen);
		peer_log(n, "info", "%s asked for the membership", c->remote);
	}
	free(data);
	conn_answer(c, f, flen);
}

static void in_on_raft(void *ud, raft_msg_t *m)
{
	struct conn *c = ud;
	peer_net_t *n = c->net;
	if (c->state == CONN_CLOSING || n->closing || !n->cb.on_raft)
		raft_msg_free(m);
	else
		n->cb.on_raft(n->ud, m);
}

static void in_on_app(void *ud, uint64_t from, uint32_t kind, const uint8_t *data, size_t len)
{
	struct conn *c = ud;
	peer_net_t *n = c->net;
	if (c->state != CONN_CLOSING && !n->closing && n->cb.on_app)
		n->cb.on_app(n->ud, from, kind, data, len);
}

static bool in_known_sender(void *ud, uint64_t id)
{
	struct conn *c = ud;
	peer_net_t *n = c->net;
	if (!peer_find(n, id)) {
		if (n->cb.is_removed && n->cb.is_removed(n->ud, id))
			c->removed_sender = id;
		return false;
	}
	c->remote_id = id;
	return true;
}

static void in_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)size;
	struct conn *c = container_of(h, struct conn, tcp);
	*buf = uv_buf_init((char *)c->rbuf, READ_BUF_SIZE);
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = container_of(s, struct conn, tcp);
	if (c->state == CONN_CLOSING || c->answering)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			peer_log(c->net, "info", "connection from %s: %s", c->remote,
				 uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	char err[256];
	if (peer_decoder_feed(c->dec, (const uint8_t *)buf->base, (size_t)nread, err,
			      sizeof(err)) < 0 && !c->answering) {
		if (c->removed_sender) {
			peer_log(c->net, "info", "refused removed member %" PRIx64 " (%s)",
				 c->removed_sender, c->remote);
			conn_answer_removed(c, c->removed_sender);
			return;
		}
		peer_log(c->net, "warn", "closing connection from %s: %s", c->remote, err);
		conn_close(c);
	}
}

static void remote_name(uv_tcp_t *t, char *out, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	char ip[48] = "?";
	int port = 0;
	if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(out, len, "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *server, int status)
{
	peer_net_t *n = server->data;
	if (status < 0) {
		peer_log(n, "warn", "accept: %s", uv_strerror(status));
		return;
	}
	struct conn *c = conn_new(n, CONN_INBOUND);
	if (!c) {
		peer_log(n, "error", "out of memory accepting a connection");
		return;
	}
	c->state = CONN_OPEN;
	c->opened_at = uv_now(n->loop);
	static const peer_decoder_callbacks_t dcb = {
		.on_raft = in_on_raft, .on_app = in_on_app, .known_sender = in_known_sender,
		.on_ask = in_on_ask};
	c->dec = peer_decoder_new(n->self, &n->opt, &dcb, c);
	c->rbuf = malloc(READ_BUF_SIZE);
	int rc = c->dec && c->rbuf ? uv_accept(server, (uv_stream_t *)&c->tcp) : UV_ENOMEM;
	if (rc == 0) {
		remote_name(&c->tcp, c->remote, sizeof(c->remote));
		rc = uv_read_start((uv_stream_t *)&c->tcp, in_alloc, in_read);
	}
	if (rc < 0) {
		peer_log(n, "warn", "accepting a connection: %s", uv_strerror(rc));
		conn_close(c);
	}
}

/* ---- the public API -------------------------------------------------------------- */

static void on_housekeeping(uv_timer_t *t)
{
	peer_net_t *n = t->data;
	uint64_t now = uv_now(n->loop);
	for (struct conn *c = n->conns; c; c = c->next)
		if (c->kind != CONN_INBOUND && c->state == CONN_CONNECTING &&
		    now - c->dialed_at >= CONNECT_TIMEOUT_MS)
			conn_fail(c, "connect timed out after %d ms", CONNECT_TIMEOUT_MS);
}

int peer_net_new(uv_loop_t *loop, uint64_t self_id, const peer_options_t *opt,
		 const peer_callbacks_t *cb, void *ud, peer_net_t **out)
{
	peer_options_t d;
	peer_options_default(&d);
	if (self_id == RAFT_NONE || !loop || !out)
		return -1;
	peer_net_t *n = calloc(1, sizeof(*n));
	if (!n)
		return -1;
	n->opt = opt ? *opt : d;
	/* Zero means "the default", so a caller can set only what it cares about. */
	if (!n->opt.max_frame_size)
		n->opt.max_frame_size = d.max_frame_size;
	if (n->opt.max_frame_size < PEER_FRAME_SNAP_HEADER_SIZE + 64)
		n->opt.max_frame_size = PEER_FRAME_SNAP_HEADER_SIZE + 64;
	if (n->opt.max_frame_size > UINT32_MAX)
		n->opt.max_frame_size = UINT32_MAX;
	if (!n->opt.snap_chunk_size)
		n->opt.snap_chunk_size = d.snap_chunk_size;
	if (!n->opt.backoff_min_ms)
		n->opt.backoff_min_ms = d.backoff_min_ms;
	if (!n->opt.backoff_max_ms)
		n->opt.backoff_max_ms = d.backoff_max_ms;
	if (n->opt.backoff_max_ms < n->opt.backoff_min_ms)
		n->opt.backoff_max_ms = n->opt.backoff_min_ms;
	if (!n->opt.max_queue_bytes)
		n->opt.max_queue_bytes = d.max_queue_bytes;
	/* A chunk frame is its data plus the SNAP header (less the u32 length). */
	n->chunk_size = n->opt.snap_chunk_size;
	if (n->chunk_size > n->opt.max_frame_size - (PEER_FRAME_SNAP_HEADER_SIZE - 4))
		n->chunk_size = n->opt.max_frame_size - (PEER_FRAME_SNAP_HEADER_SIZE - 4);
	n->loop = loop;
	n->self = self_id;
	if (cb)
		n->cb = *cb;
	n->ud = ud;
	n->port = -1;
	uv_prepare_init(loop, &n->prepare);
	n->prepare.data = n;
	uv_timer_init(loop, &n->housekeeping);
	n->housekeeping.data = n;
	uv_timer_start(&n->housekeeping, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
	uv_unref((uv_handle_t *)&n->housekeeping);
	n->handles = 2;
	*out = n;
	return 0;
}

static int addr_parse(const char *host, int port, struct sockaddr_storage *ss)
{
	if (!host || port < 0 || port > 65535)
		return -1;
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -1;
}

static void listen_error(char *err, size_t errlen, const char *what, const char *host,
			 int port, int rc)
{
	if (err && errlen)
		snprintf(err, errlen, "peer listen %s:%d: %s: %s", host, port, what,
			 uv_strerror(rc));
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *l = container_of(h, struct listener, tcp);
	peer_net_t *n = l->net;
	free(l);
	net_handle_closed(n);
}

/* May be called once per listen URL; peer_net_port reports the first one's port. */
int peer_net_listen(peer_net_t *n, const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	if (n->closing) {
		listen_error(err, errlen, "transport closing", host, port, UV_EINVAL);
		return -1;
	}
	if (addr_parse(host, port, &ss)) {
		listen_error(err, errlen, "not a numeric address", host, port, UV_EINVAL);
		return -1;
	}
	struct listener *l = calloc(1, sizeof(*l));
	int rc = l ? uv_tcp_init(n->loop, &l->tcp) : UV_ENOMEM;
	if (rc < 0) {
		free(l);
		listen_error(err, errlen, "socket", host, port, rc);
		return -1;
	}
	n->handles++;
	l->net = n;
	l->tcp.data = n;
	const char *what = "bind";
	rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (rc == 0) {
		what = "listen";
		rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_connection);
	}
	struct sockaddr_storage bound;
	int blen = sizeof(bound);
	if (rc == 0) {
		what = "getsockname";
		rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen);
	}
	if (rc < 0) {
		listen_error(err, errlen, what, host, port, rc);
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
		return -1;
	}
	l->next = n->listeners;
	n->listeners = l;
	if (n->port < 0)
		n->port = bound.ss_family == AF_INET6
				  ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
				  : ntohs(((struct sockaddr_in *)&bound)->sin_port);
	return 0;
}

int peer_net_port(const peer_net_t *n)
{
	return n->port;
}

static void peer_close_links(struct peer *p)
{
	for (int k = LINK_MSG; k <= LINK_SNAP; k++) {
		if (p->links[k].conn)
			conn_close(p->links[k].conn);
		p->links[k] = (struct link){0};
	}
}

int peer_net_add(peer_net_t *n, uint64_t id, const char *host, int port)
{
	struct sockaddr_storage ss;
	if (n->closing || id == RAFT_NONE || id == n->self || addr_parse(host, port, &ss))
		return -1;
	struct peer *p = peer_find(n, id);
	if (p) {
		if (!memcmp(&p->addr, &ss, sizeof(ss)))
			return 0;
		peer_close_links(p); /* re-addressed: redial lazily, with a fresh backoff */
	} else {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -1;
		p->id = id;
		p->next = n->peers;
		n->peers = p;
	}
	p->addr = ss;
	snprintf(p->addr_str, sizeof(p->addr_str), "%s%s%s:%d", strchr(host, ':') ? "[" : "",
		 host, strchr(host, ':') ? "]" : "", port);
	return 0;
}

void peer_net_remove(peer_net_t *n, uint64_t id)
{
	for (struct peer **pp = &n->peers; *pp; pp = &(*pp)->next) {
		struct peer *p = *pp;
		if (p->id != id)
			continue;
		*pp = p->next;
		peer_close_links(p);
		free(p);
		break;
	}
	/* What a removed member already sent stays delivered; nothing more is read, and it
	 * hears why. */
	for (struct conn *c = n->conns; c; c = c->next)
		if (c->kind == CONN_INBOUND && c->remote_id == id && c->state == CONN_OPEN)
			conn_answer_removed(c, id);
}

uint64_t peer_net_active_since(const peer_net_t *n, uint64_t id)
{
	const struct peer *p = peer_find(n, id);
	uint64_t since = 0;
	if (!p)
		return 0;
	const struct conn *out = p->links[LINK_MSG].conn;
	if (out && out->state == CONN_OPEN)
		since = out->opened_at;
	for (const struct conn *c = n->conns; c; c = c->next)
		if (c->kind == CONN_INBOUND && c->remote_id == id && c->state == CONN_OPEN &&
		    !c->answering && (!since || c->opened_at < since))
			since = c->opened_at;
	return since;
}

void peer_net_send(peer_net_t *n, raft_msg_t *m)
{
	if (!m)
		return;
	struct peer *p = n->closing ? NULL : peer_find(n, m->to);
	if (!p) {
		raft_msg_free(m);
		return;
	}
	if (m->type == RAFT_MSG_SNAP) {
		snap_send(n, p, m);
		return;
	}
	size_t len = 0;
	uint8_t *f = peer_frame_raft(m, &len);
	raft_msg_free(m);
	if (!f) {
		peer_log(n, "error", "cannot encode a message for member %" PRIx64, p->id);
		p->st.dropped++;
		return;
	}
	link_queue_frame(n, p, f, len);
}

int peer_net_send_app(peer_net_t *n, uint64_t to, uint32_t kind, const void *data,
		      size_t len)
{
	struct peer *p = n->closing ? NULL : peer_find(n, to);
	if (!p)
		return -1;
	size_t flen = 0;
	uint8_t *f = peer_frame_app(kind, data, len, &flen);
	if (!f) {
		p->st.dropped++;
		return 0;
	}
	link_queue_frame(n, p, f, flen);
	return 0;
}

void peer_net_close(peer_net_t *n, void (*done)(void *arg), void *arg)
{
	if (n->closing)
		return;
	n->closing = true;
	n->done = done;
	n->done_arg = arg;
	while (n->peers) {
		struct peer *p = n->peers;
		n->peers = p->next;
		peer_close_links(p);
		free(p);
	}
	for (struct conn *c = n->conns; c; c = c->next)
		conn_close(c);
	while (n->listeners) {
		struct listener *l = n->listeners;
		n->listeners = l->next;
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
	}
	uv_close((uv_handle_t *)&n->prepare, on_net_handle_closed);
	uv_close((uv_handle_t *)&n->housekeeping, on_net_handle_closed);
}

int peer_net_stats(const peer_net_t *n, uint64_t id, peer_stats_t *st)
{
	const struct peer *p = peer_find(n, id);
	if (!p)
		return -1;
	*st = p->st;
	return 0;
}

/* ---- asking a peer for the membership (blocking, before the loop runs) ------------- */

static uint64_t ask_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline; 0 when ready, -1 (errno ETIMEDOUT) if not. */
static int ask_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = ask_now_ms();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd pfd = {fd, events, 0};
		int rc = poll(&pfd, 1, (int)(deadline - now));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static int ask_connect(int fd, const struct sockaddr_storage *ss, uint64_t deadline)
{
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in);
	if (connect(fd, (const struct sockaddr *)ss, sl) == 0)
		return 0;
	if (errno != EINPROGRESS || ask_wait(fd, POLLOUT, deadline) != 0)
		return -1;
	int soerr = 0;
	socklen_t el = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0)
		return -1;
	errno = soerr;
	return soerr ? -1 : 0;
}

static int ask_exchange(int fd, uint64_t deadline, uint8_t **buf, size_t *cap, size_t *got,
			const char **what)
{
	uint8_t ask[PEER_FRAME_ASK_SIZE];
	peer_frame_ask(ask);
	for (size_t off = 0; off < sizeof(ask);) {
		*what = "write";
		if (ask_wait(fd, POLLOUT, deadline) != 0)
			return -1;
		ssize_t w = send(fd, ask + off, sizeof(ask) - off, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		off += w > 0 ? (size_t)w : 0;
	}
	peer_options_t d;
	peer_options_default(&d);
	for (;;) {
		uint8_t type;
		const uint8_t *pl;
		size_t plen;
		int rc = peer_frame_parse(*buf, *got, d.max_frame_size, &type, &pl, &plen);
		*what = "answer";
		if (rc > 0)
			return type == PEER_FRAME_MEMBERS ? 0 : (errno = EPROTO, -1);
		if (rc < 0) {
			errno = EPROTO;
			return -1;
		}
		if (*got == *cap) {
			size_t nc = *cap ? 2 * *cap : 64 * 1024;
			uint8_t *nb = nc <= d.max_frame_size + 4 ? realloc(*buf, nc) : NULL;
			if (!nb) {
				errno = nc <= d.max_frame_size + 4 ? ENOMEM : EMSGSIZE;
				return -1;
			}
			*buf = nb;
			*cap = nc;
		}
		*what = "read";
		if (ask_wait(fd, POLLIN, deadline) != 0)
			return -1;
		ssize_t r = recv(fd, *buf + *got, *cap - *got, 0);
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		*got += r > 0 ? (size_t)r : 0;
	}
}

int peer_ask_members(const char *host, int port, uint64_t timeout_ms, uint8_t **out,
		     size_t *len, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	*out = NULL;
	*len = 0;
	if (addr_parse(host, port, &ss)) {
		snprintf(err, errlen, "%s:%d: not a numeric address", host, port);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	uint64_t deadline = ask_now_ms() + timeout_ms;
	uint8_t *buf = NULL;
	size_t cap = 0, got = 0;
	const char *what = "connect";
	int rc = ask_connect(fd, &ss, deadline);
	if (rc == 0)
		rc = ask_exchange(fd, deadline, &buf, &cap, &got, &what);
	if (rc != 0) {
		snprintf(err, errlen, "asking %s:%d for the members: %s: %s", host, port, what,
			 strerror(errno));
		free(buf);
		close(fd);
		return -1;
	}
	close(fd);
	size_t plen = get_be32(buf) - 5;
	memmove(buf, buf + PEER_FRAME_HEADER_SIZE, plen);
	*out = buf;
	*len = plen;
	return 0;
}
