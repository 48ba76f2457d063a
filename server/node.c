/* server/node.c — keeld's raft driver. It opens the member's WAL and store, runs the raft
 * core on the loop (ticks, peer messages, proposals, ReadIndex), persists each Ready on a
 * libuv worker thread, applies committed entries, answers the proposals' owners, takes a
 * snapshot every --snapshot-count entries, and does the leader's lease and auto-compaction
 * duties. It also keeps the membership: the store's member records (changed only by
 * applied conf changes) become s->members and the transport's peers; a member started with
 * --initial-cluster-state existing joins by asking its peers who the members are; a member
 * removed from the cluster stops by itself.
 *
 * The loop never waits on disk. A Ready that has something to persist is handed to a
 * worker (uv_queue_work) and raft is *held*: nothing calls into the core until the worker
 * is done, which is what the Ready contract asks; ticks, peer messages, proposals and
 * snapshot reports that arrive meanwhile wait in queues and enter the core together once
 * the Ready is advanced, so the next Ready carries all of them and one fdatasync covers the
 * batch (group commit). A leader sends its messages before its own write finishes: the
 * core counts the leader's own match only at advance, so an entry still commits only once
 * it is durable on a quorum that includes or excludes the leader honestly. Followers send
 * after the fsync, so an acknowledgement always means durable.
 *
 * Applying happens on the loop, in LMDB write transactions without a flush of their own
 * (kv no_sync): the WAL is the durability point, and on restart raft re-delivers every
 * committed entry past the store's consistent index. Before a snapshot lets the WAL release
 * segments, the worker flushes the store (kv_sync). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "be.h"
#include "keeld.h"
#include "svc.h"

#define PENDING_BUCKETS 4096
#define SNAP_MAGIC "KEELSNP1"
#define SNAP_CATCHUP_ENTRIES 5000 /* entries kept behind a snapshot for slow followers */

typedef struct keeld_pending keeld_pending_t;
struct keeld_pending {
	uint64_t id;
	keeld_done_fn done;
	void *ud;
	uint64_t start_ms, deadline_ms;
	bool proposed;               /* raft took it (else it waited for a leader) */
	keeld_pending_t *hnext;      /* bucket chain */
	keeld_pending_t *prev, *next; /* by deadline (= by start: one timeout for all) */
};

struct keeld_read {
	keeld_read_fn fn;
	void *ud;
	uint64_t deadline_ms;
	keeld_read_t *next;
};

struct keeld_fwd {
	uint64_t req_id;
	keeld_fwd_fn fn;
	void *ud;
	uint64_t deadline_ms;
	uint64_t sent_ms;            /* 0: to be sent (again) at the next tick */
	uint32_t method;
	uint8_t *req;
	size_t len;
	keeld_fwd_t *next;
};

/* Proposals are queued until raft can take them. */
typedef struct prop {
	uint64_t id;
	uint8_t *data;               /* a packed InternalRaftRequest, or ConfChange if conf */
	size_t len;
	uint64_t deadline_ms;
	bool conf;
} prop_t;

enum { REPORT_UNREACHABLE = 1, REPORT_SNAP_DONE, REPORT_SNAP_FAILED };

/* A disk job for the worker: persist the held Ready, create a snapshot, or both. */
typedef struct job {
	bool ready;
	bool snapshot;
	raft_conf_t conf;
	uint64_t compact_index;
} job_t;

struct node {
	keeld_pending_t *buckets[PENDING_BUCKETS];
	keeld_pending_t *head, *tail;  /* by deadline */
	prop_t *props;
	size_t n_props, cap_props;
	struct { uint64_t id; int kind; } reports[128]; /* from the transport */
	size_t n_reports;
	job_t job;
	uint64_t lead_elected_ms;    /* when this member last learned of a new leader */
	uint64_t progress_ms, attrs_ms, compact_last_ms;
	uint64_t attrs_fast_until;   /* attributes go out often until then (a start, a join) */
	int64_t marks[11];           /* revisions sampled for periodic auto-compaction */
	size_t n_marks;
	uint64_t removed_stop_ms;    /* this member was removed: stop then (0: not removed) */
	grpc_method_t *methods;      /* keeld_methods plus the Cluster service's (svc_cluster.c) */
	/* The newest hard state whose only change was the commit index: not worth a trip to
	 * the disk worker on every commit (see ready_needs_disk); it goes out with the next
	 * log write. */
	raft_hard_state_t hs_unsaved;
	bool hs_dirty;
	/* each method's own message handler: methods[i].on_message is node_gate_msg */
	void (**handlers)(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
};

uint64_t keeld_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t node_clock(void *ctx)
{
	(void)ctx;
	return keeld_now_ms();
}

/* etcd's request timeout: 5 s plus two election timeouts. */
static uint64_t node_req_timeout_ms(const keeld_t *s)
{
	return 5000 + 2 * (uint64_t)s->cfg->election_ms;
}

/* etcd's answer to a proposal that timed out. One raft never took (no leader all along)
 * gets the bare context error; one that a leader election interrupted (it started within
 * two election timeouts before the new leader) the leader-failure text. */
static int node_timeout_status(keeld_t *s, const keeld_pending_t *p, const char **message)
{
	uint64_t elected = s->node->lead_elected_ms;
	if (!p->proposed) {
		*message = "context deadline exceeded";
		return GRPC_UNKNOWN;
	}
	if (elected && p->start_ms < elected &&
	    p->start_ms + 2 * (uint64_t)s->cfg->election_ms > elected)
		*message = "etcdserver: request timed out, possibly due to previous leader failure";
	else
		*message = "etcdserver: request timed out";
	return GRPC_UNAVAILABLE;
}

int keeld_kv_status(int kv_err, const char **message)
{
	*message = kv_strerror(kv_err);
	switch (kv_err) {
	case KV_ERR_COMPACTED:
	case KV_ERR_FUTURE_REV:
	case KV_ERR_LEASE_TTL_TOO_LARGE:
		return GRPC_OUT_OF_RANGE;
	case KV_ERR_EMPTY_KEY:
	case KV_ERR_KEY_TOO_LARGE:
	case KV_ERR_KEY_NOT_FOUND:
	case KV_ERR_VALUE_PROVIDED:
	case KV_ERR_LEASE_PROVIDED:
	case KV_ERR_DUPLICATE_KEY:
	case KV_ERR_TOO_MANY_OPS:
	case KV_ERR_BAD_REQUEST:
	case KV_ERR_WATCH_RANGE_EMPTY:
		return GRPC_INVALID_ARGUMENT;
	case KV_ERR_LEASE_NOT_FOUND:
		return GRPC_NOT_FOUND;
	case KV_ERR_LEASE_EXISTS:
		return GRPC_FAILED_PRECONDITION;
	case KV_ERR_NOT_PRIMARY:
		*message = "etcdserver: not leader";
		return GRPC_FAILED_PRECONDITION;
	case KV_ERR_NO_SPACE:
		*message = "etcdserver: mvcc: database space exceeded";
		return GRPC_RESOURCE_EXHAUSTED;
	case KV_ERR_QUOTA:
		return GRPC_RESOURCE_EXHAUSTED;
	default:
		return GRPC_UNKNOWN;
	}
}

void keeld_header(keeld_t *s, Etcdserverpb__ResponseHeader *h)
{
	if (!h)
		return;
	h->cluster_id = s->cluster_id;
	h->member_id = s->id;
	h->raft_term = s->term;
	if (h->revision == 0)
		h->revision = kv_revision(s->kv);
}

/* ---- pending proposals -------------------------------------------------------------- */

static void pending_unlink(node_t *x, keeld_pending_t *p)
{
	keeld_pending_t **pp = &x->buckets[p->id % PENDING_BUCKETS];
	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	if (p->prev)
		p->prev->next = p->next;
	else
		x->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		x->tail = p->prev;
}

static keeld_pending_t *pending_find(node_t *x, uint64_t id)
{
	for (keeld_pending_t *p = x->buckets[id % PENDING_BUCKETS]; p; p = p->hnext)
		if (p->id == id)
			return p;
	return NULL;
}

/* Ends a pending proposal with an error. */
static void pending_fail(keeld_t *s, keeld_pending_t *p, int status, const char *message)
{
	pending_unlink(s->node, p);
	if (p->done)
		p->done(s, p->ud, NULL, status, message);
	free(p);
}

void keeld_forget(keeld_t *s, void *ud)
{
	node_t *x = s->node;
	for (keeld_pending_t *p = x->head; p; p = p->next)
		if (p->ud == ud)
			p->done = NULL;
	for (keeld_read_t *r = s->reads_new; r; r = r->next)
		if (r->ud == ud)
			r->fn = NULL;
	for (keeld_read_t *r = s->reads_wait; r; r = r->next)
		if (r->ud == ud)
			r->fn = NULL;
	for (keeld_fwd_t *f = s->fwds; f; f = f->next)
		if (f->ud == ud)
			f->fn = NULL;
}

/* Request ids: this member's low 16 bits, then a counter seeded from the clock, so ids
 * from different members and from a restarted member never collide in practice. */
static uint64_t node_next_id(keeld_t *s)
{
	return ((s->id & 0xffff) << 48) | (++s->next_req & 0xffffffffffffULL);
}

/* Queues data (owned) as proposal id with done as its owner; false when out of memory
 * (data is freed, done not called). */
static bool node_pending_add(keeld_t *s, uint64_t id, uint8_t *data, size_t len, bool conf,
			     keeld_done_fn done, void *ud)
{
	node_t *x = s->node;
	keeld_pending_t *p = calloc(1, sizeof(*p));
	if (x->n_props == x->cap_props) {
		size_t cap = x->cap_props ? 2 * x->cap_props : 64;
		prop_t *np = realloc(x->props, cap * sizeof(*np));
		if (np) {
			x->props = np;
			x->cap_props = cap;
		}
	}
	if (!data || !p || x->n_props == x->cap_props) {
		free(data);
		free(p);
		return false;
	}
	uint64_t now = keeld_now_ms();
	p->id = id;
	p->done = done;
	p->ud = ud;
	p->start_ms = now;
	p->deadline_ms = now + node_req_timeout_ms(s);
	p->hnext = x->buckets[p->id % PENDING_BUCKETS];
	x->buckets[p->id % PENDING_BUCKETS] = p;
	p->prev = x->tail;
	if (x->tail)
		x->tail->next = p;
	else
		x->head = p;
	x->tail = p;
	x->props[x->n_props++] = (prop_t){p->id, data, len, p->deadline_ms, conf};
	return true;
}

void keeld_propose(keeld_t *s, Etcdserverpb__InternalRaftRequest *req, keeld_done_fn done,
		   void *ud)
{
	Etcdserverpb__RequestHeader hdr = ETCDSERVERPB__REQUEST_HEADER__INIT;
	hdr.id = node_next_id(s);
	req->header = &hdr;
	size_t len = etcdserverpb__internal_raft_request__get_packed_size(req);
	if (len > s->cfg->max_request_bytes) {
		req->header = NULL;
		if (done)
			done(s, ud, NULL, GRPC_INVALID_ARGUMENT, "etcdserver: request is too large");
		return;
	}
	uint8_t *data = malloc(len ? len : 1);
	if (data)
		etcdserverpb__internal_raft_request__pack(req, data);
	req->header = NULL;
	if (!node_pending_add(s, hdr.id, data, len, false, done, ud) && done)
		done(s, ud, NULL, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
}

void keeld_propose_conf_change(keeld_t *s, int type, const Etcdserverpb__Member *m,
			       keeld_done_fn done, void *ud)
{
	uint64_t id = node_next_id(s);
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)type;
	cc.node_id = m->id;
	uint8_t *ctx = NULL, *data = NULL;
	size_t clen = 0, len = 0;
	if (kv_members_pack_context(id, m, &ctx, &clen) == KV_OK) {
		cc.context.data = ctx;
		cc.context.len = clen;
		len = raftpb__conf_change__get_packed_size(&cc);
		if ((data = malloc(len ? len : 1)) != NULL)
			raftpb__conf_change__pack(&cc, data);
	}
	free(ctx);
	if (!node_pending_add(s, id, data, len, true, done, ud) && done)
		done(s, ud, NULL, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
}

/* ---- linearizable reads --------------------------------------------------------------- */

void keeld_read(keeld_t *s, keeld_read_fn fn, void *ud)
{
	keeld_read_t *r = calloc(1, sizeof(*r));
	if (!r) {
		fn(s, ud, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	r->fn = fn;
	r->ud = ud;
	r->deadline_ms = keeld_now_ms() + node_req_timeout_ms(s);
	r->next = s->reads_new;
	s->reads_new = r;
}

static void reads_finish(keeld_t *s, keeld_read_t **list, int status, const char *message)
{
	keeld_read_t *r = *list;
	*list = NULL;
	while (r) {
		keeld_read_t *next = r->next;
		if (r->fn)
			r->fn(s, r->ud, status, message);
		free(r);
		r = next;
	}
}

/* Asks raft for a read index for the batch waiting (called while raft is not held). */
static void reads_request(keeld_t *s)
{
	if (!s->reads_wait) {
		if (!s->reads_new)
			return;
		s->reads_wait = s->reads_new;
		s->reads_new = NULL;
		s->read_index = 0;
		s->read_sent_ms = 0;
	}
	if (s->read_index || (s->read_sent_ms &&
			      keeld_now_ms() - s->read_sent_ms < s->cfg->election_ms))
		return;
	/* The leader tracks pending reads by context, so a context must be unique in the
	 * cluster, not just here: this member's id, then its counter. */
	uint8_t ctx[16];
	s->read_ctx++;
	put_be64(ctx, s->id);
	put_be64(ctx + 8, s->read_ctx);
	s->read_sent_ms = keeld_now_ms();
	int rc = raft_read_index(s->raft, ctx, sizeof(ctx));
	if (rc != 0)
		LOG_DEBUG("read index: %s", raft_strerror(rc));
}

static void reads_serve(keeld_t *s)
{
	if (s->reads_wait && s->read_index && s->applied >= s->read_index) {
		reads_finish(s, &s->reads_wait, 0, NULL);
		s->read_index = 0;
	}
}

static void reads_take_states(keeld_t *s, const raft_ready_t *rd)
{
	for (size_t i = 0; i < rd->n_read_states; i++) {
		const raft_read_state_t *rs = &rd->read_states[i];
		if (rs->ctx.len != 16 || get_be64(rs->ctx.data) != s->id)
			continue;
		if (get_be64(rs->ctx.data + 8) == s->read_ctx && s->reads_wait)
			s->read_index = rs->index;
	}
}

/* ---- forwarding to the leader ---------------------------------------------------------- */

static void fwd_local_reply(keeld_t *s, uint64_t to, uint64_t req_id, int status,
			    const char *message, const uint8_t *resp, size_t len);

static void fwd_remote_reply(keeld_t *s, uint64_t to, uint64_t req_id, int status,
			     const char *message, const uint8_t *resp, size_t len)
{
	size_t mlen = message ? strlen(message) : 0;
	uint8_t *buf = malloc(16 + mlen + len);
	if (!buf)
		return;
	put_be64(buf, req_id);
	put_be32(buf + 8, (uint32_t)status);
	put_be32(buf + 12, (uint32_t)mlen);
	if (mlen)
		memcpy(buf + 16, message, mlen);
	if (len)
		memcpy(buf + 16 + mlen, resp, len);
	peer_net_send_app(s->peers, to, KEELD_APP_FWD_REQ + 1, buf, 16 + mlen + len);
	free(buf);
}

/* The Cluster service answers its own forwarded method (a promotion, which only the
 * leader can check); everything else is services.c's. */
static void node_serve_forwarded(keeld_t *s, uint64_t from, uint64_t req_id, uint32_t method,
				 const uint8_t *req, size_t len, keeld_reply_fn reply)
{
	if (method == KEELD_FWD_MEMBER_PROMOTE)
		svc_cluster_serve_forwarded(s, from, req_id, req, len, reply);
	else
		keeld_serve_forwarded(s, from, req_id, method, req, len, reply);
}

static void fwd_free(keeld_fwd_t *f)
{
	free(f->req);
	free(f);
}

/* Sends f to the leader, or answers it here when this member leads. Without a leader it
 * waits for the next tick: like etcd, a renewal rides out an election rather than fail. */
static void fwd_send(keeld_t *s, keeld_fwd_t *f)
{
	f->sent_ms = 0;
	if (s->state == RAFT_LEADER) {
		f->sent_ms = keeld_now_ms();
		node_serve_forwarded(s, s->id, f->req_id, f->method, f->req, f->len,
				     fwd_local_reply);
		return;
	}
	if (s->lead == RAFT_NONE)
		return;
	uint8_t *buf = malloc(12 + f->len);
	if (!buf)
		return;
	put_be64(buf, f->req_id);
	put_be32(buf + 8, f->method);
	if (f->len)
		memcpy(buf + 12, f->req, f->len);
	if (peer_net_send_app(s->peers, s->lead, KEELD_APP_FWD_REQ, buf, 12 + f->len) == 0)
		f->sent_ms = keeld_now_ms();
	free(buf);
}

void keeld_forward(keeld_t *s, uint32_t method, const uint8_t *req, size_t len,
		   keeld_fwd_fn fn, void *ud)
{
	keeld_fwd_t *f = calloc(1, sizeof(*f));
	uint8_t *copy = malloc(len ? len : 1);
	if (!f || !copy) {
		free(f);
		free(copy);
		fn(s, ud, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory", NULL, 0);
		return;
	}
	memcpy(copy, req, len);
	f->req_id = node_next_id(s);
	f->fn = fn;
	f->ud = ud;
	f->method = method;
	f->req = copy;
	f->len = len;
	f->deadline_ms = keeld_now_ms() + node_req_timeout_ms(s);
	f->next = s->fwds;
	s->fwds = f;
	fwd_send(s, f);
}

/* An answer to a forwarded request. Unavailable (no leader yet, a deposed leader, a leader
 * whose lessor is not ready) is retried until the request's deadline. */
static void fwd_complete(keeld_t *s, uint64_t req_id, int status, const char *message,
			 const uint8_t *resp, size_t len)
{
	for (keeld_fwd_t **pp = &s->fwds; *pp; pp = &(*pp)->next) {
		keeld_fwd_t *f = *pp;
		if (f->req_id != req_id)
			continue;
		if (status == GRPC_UNAVAILABLE && keeld_now_ms() < f->deadline_ms) {
			f->sent_ms = 0;
			return;
		}
		*pp = f->next;
		if (f->fn)
			f->fn(s, f->ud, status, message, resp, len);
		fwd_free(f);
		return;
	}
}

/* Each tick: forwarded requests past their deadline fail; those waiting for a leader, or
 * unanswered for an election timeout (a frame lost with a connection), go again. */
static void fwd_tick(keeld_t *s, uint64_t now)
{
	uint64_t again[256];
	size_t n = 0;
	for (keeld_fwd_t **pp = &s->fwds; *pp;) {
		keeld_fwd_t *f = *pp;
		if (f->deadline_ms <= now) {
			*pp = f->next;
			if (f->fn)
				f->fn(s, f->ud, GRPC_UNAVAILABLE, "etcdserver: request timed out",
				      NULL, 0);
			fwd_free(f);
			continue;
		}
		if ((f->sent_ms == 0 || now - f->sent_ms >= s->cfg->election_ms) &&
		    n < sizeof(again) / sizeof(again[0]))
			again[n++] = f->req_id;
		pp = &f->next;
	}
	/* Sent after the walk: a local answer changes the list. */
	for (size_t i = 0; i < n; i++)
		for (keeld_fwd_t *f = s->fwds; f; f = f->next)
			if (f->req_id == again[i]) {
				fwd_send(s, f);
				break;
			}
}

static void fwd_local_reply(keeld_t *s, uint64_t to, uint64_t req_id, int status,
			    const char *message, const uint8_t *resp, size_t len)
{
	(void)to;
	fwd_complete(s, req_id, status, message, resp, len);
}

/* ---- peers ------------------------------------------------------------------------------ */

static void node_push(void **arr, size_t *n, size_t *cap, size_t elem, const void *v)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		void *na = realloc(*arr, nc * elem);
		if (!na)
			return;
		*arr = na;
		*cap = nc;
	}
	memcpy((char *)*arr + *n * elem, v, elem);
	(*n)++;
}

static void on_peer_raft(void *ud, raft_msg_t *m)
{
	keeld_t *s = ud;
	size_t before = s->n_inbox;
	node_push((void **)&s->inbox, &s->n_inbox, &s->cap_inbox, sizeof(m), &m);
	if (s->n_inbox == before)
		raft_msg_free(m);
}

/* Transport reports wait for node_flush_inputs like every other input, so they can never
 * reach the core while it is held or between raft_ready and raft_advance. */
static void node_report(keeld_t *s, uint64_t id, int kind)
{
	node_t *x = s->node;
	for (size_t i = 0; i < x->n_reports; i++)
		if (x->reports[i].id == id && x->reports[i].kind == kind)
			return;
	if (x->n_reports < sizeof(x->reports) / sizeof(x->reports[0])) {
		x->reports[x->n_reports].id = id;
		x->reports[x->n_reports].kind = kind;
		x->n_reports++;
	}
}

static void on_peer_unreachable(void *ud, uint64_t id)
{
	node_report(ud, id, REPORT_UNREACHABLE);
}

static void on_peer_log(void *ud, const char *level, const char *line)
{
	(void)ud;
	keeld_log(strcmp(level, "error") == 0	? KEELD_LOG_ERROR
		  : strcmp(level, "warn") == 0 ? KEELD_LOG_WARN
					       : KEELD_LOG_INFO,
		  "peer: %s", line);
}

static void on_peer_snapshot_status(void *ud, uint64_t id, bool failed)
{
	node_report(ud, id, failed ? REPORT_SNAP_FAILED : REPORT_SNAP_DONE);
}

/* A peer told its name and client URLs (MemberList shows them). */
static void node_member_attr(keeld_t *s, uint64_t id, const char *name, const char *client_urls)
{
	for (size_t i = 0; i < s->n_members; i++) {
		keeld_member_t *m = &s->members[i];
		if (m->id != id)
			continue;
		snprintf(m->name, sizeof(m->name), "%s", name);
		snprintf(m->client_urls, sizeof(m->client_urls), "%s", client_urls);
	}
}

/* ---- membership ---------------------------------------------------------------------- */

static void node_join_urls(const keeld_url_list_t *l, char *buf, size_t len);

static void node_urls_join(char *const *v, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", v[i]);
}

/* The first of a member's peer URLs, as the transport dials it. */
static int node_peer_addr(const keeld_member_t *m, keeld_url_t *u)
{
	keeld_url_list_t urls;
	char err[256];
	if (keeld_parse_urls(m->peer_urls, &urls, err, sizeof(err)) != 0 || urls.n == 0)
		return -1;
	/* The first URL keeld can dial: an IP address (the list is sorted, and a host name
	 * may sort before one). */
	*u = urls.v[0];
	for (size_t i = 0; i < urls.n; i++) {
		unsigned char addr[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, urls.v[i].host, addr) == 1 ||
		    inet_pton(AF_INET6, urls.v[i].host, addr) == 1) {
			*u = urls.v[i];
			break;
		}
	}
	if (!strcmp(u->host, "localhost"))
		snprintf(u->host, sizeof(u->host), "127.0.0.1");
	return 0;
}

static const keeld_member_t *node_member_find(const keeld_member_t *ms, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ms[i].id == id)
			return &ms[i];
	return NULL;
}

/* Once removed, a member stops by itself, a second later as etcd does (the answer to the
 * call that removed it, and the leader's last messages, get out first). Exit code 0, as
 * etcd exits after "the member has been permanently removed from the cluster". */
static void node_removed(keeld_t *s, const char *how)
{
	node_t *x = s->node;
	if (x->removed_stop_ms || s->stopping)
		return;
	LOG_ERROR("this member (%016llx) was removed from the cluster; stopping (%s)",
		  (unsigned long long)s->id, how);
	x->removed_stop_ms = keeld_now_ms() + 1000;
}


/* Tells the transport where a member is. A member whose peer URL keeld cannot dial (a host
 * name: keeld resolves none yet) stays in the membership, unreachable, with a warning:
 * refusing to start would let one bad URL, committed through raft, stop every member. */
static void node_peer_add(keeld_t *s, const keeld_member_t *m)
{
	keeld_url_t u;
	if (m->id == s->id)
		return;
	if (node_peer_addr(m, &u) != 0 || peer_net_add(s->peers, m->id, u.host, u.port) != 0)
		LOG_WARN("member %016llx: cannot dial peer URL \"%s\" (keeld needs an IP address "
			 "and a port)", (unsigned long long)m->id, m->peer_urls);
}
/* Rebuilds s->members from the store's membership (the replicated truth), keeping what
 * members told about themselves (name, client URLs), and makes the transport match:
 * members added are dialed, removed ones forgotten, moved ones re-addressed. Before the
 * store holds any member (a new cluster before its first apply, a member still joining)
 * the members from the configuration stay. */
static void node_members_sync(keeld_t *s)
{
	Etcdserverpb__MemberListResponse *list = NULL;
	int rc = kv_members_list(s->kv, &list);
	if (rc != KV_OK) {
		LOG_WARN("reading the membership: %s %s", kv_strerror(rc), kv_last_error(s->kv));
		return;
	}
	if (list->n_members == 0) {
		protobuf_c_message_free_unpacked(&list->base, NULL);
		return;
	}
	keeld_member_t *old = malloc(KEELD_MAX_MEMBERS * sizeof(*old));
	if (!old) {
		protobuf_c_message_free_unpacked(&list->base, NULL);
		return;
	}
	size_t n_old = s->n_members;
	memcpy(old, s->members, n_old * sizeof(old[0]));
	size_t n = 0;
	for (size_t i = 0; i < list->n_members && n < KEELD_MAX_MEMBERS; i++) {
		const Etcdserverpb__Member *lm = list->members[i];
		keeld_member_t *m = &s->members[n++];
		const keeld_member_t *was = node_member_find(old, n_old, lm->id);
		memset(m, 0, sizeof(*m));
		m->id = lm->id;
		m->is_learner = lm->islearner;
		node_urls_join(lm->peerurls, lm->n_peerurls, m->peer_urls, sizeof(m->peer_urls));
		if (m->id == s->id) {
			snprintf(m->name, sizeof(m->name), "%s", s->cfg->name);
			node_join_urls(&s->cfg->advertise_client_urls, m->client_urls,
				       sizeof(m->client_urls));
		} else if (was) {
			snprintf(m->name, sizeof(m->name), "%s", was->name[0] ? was->name
						 : lm->name ? lm->name : "");
			snprintf(m->client_urls, sizeof(m->client_urls), "%s", was->client_urls);
		} else if (lm->name) {
			snprintf(m->name, sizeof(m->name), "%s", lm->name);
		}
	}
	s->n_members = n;
	protobuf_c_message_free_unpacked(&list->base, NULL);
	s->node->attrs_fast_until = keeld_now_ms() + 5000;
	for (size_t i = 0; s->peers && i < n; i++)
		node_peer_add(s, &s->members[i]);
	/* Only a removal takes a peer away: a member catching up through old entries sees the
	 * membership of the past for a while, in which today's leader may not exist yet. */
	bool removed = false;
	for (size_t i = 0; s->peers && i < n_old; i++)
		if (old[i].id != s->id && !node_member_find(s->members, n, old[i].id) &&
		    kv_member_removed(s->kv, old[i].id, &removed) == KV_OK && removed)
			peer_net_remove(s->peers, old[i].id);
	free(old);
	if (!node_member_find(s->members, n, s->id) &&
	    kv_member_removed(s->kv, s->id, &removed) == KV_OK && removed)
		node_removed(s, "it applied its own removal");
}

static bool on_peer_is_removed(void *ud, uint64_t id)
{
	keeld_t *s = ud;
	bool removed = false;
	return kv_member_removed(s->kv, id, &removed) == KV_OK && removed;
}

static void on_peer_removed(void *ud, uint64_t by)
{
	keeld_t *s = ud;
	char how[64];
	snprintf(how, sizeof(how), "member %016llx says so", (unsigned long long)by);
	node_removed(s, how);
}

/* The membership for a member joining: the cluster id in the header, every member with
 * its peer URLs and what is known of its name and client URLs. */
static int on_peer_members(void *ud, uint8_t **data, size_t *len)
{
	keeld_t *s = ud;
	keeld_member_view_t *v = keeld_members_view(s);
	if (!v)
		return -1;
	Etcdserverpb__MemberListResponse resp = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	hdr.cluster_id = s->cluster_id;
	hdr.member_id = s->id;
	hdr.raft_term = s->term;
	resp.header = &hdr;
	resp.n_members = v->n;
	resp.members = v->mp;
	*len = etcdserverpb__member_list_response__get_packed_size(&resp);
	*data = malloc(*len ? *len : 1);
	if (*data)
		etcdserverpb__member_list_response__pack(&resp, *data);
	free(v);
	return *data ? 0 : -1;
}

static void on_peer_app(void *ud, uint64_t from, uint32_t kind, const uint8_t *data,
			size_t len)
{
	keeld_t *s = ud;
	switch (kind) {
	case KEELD_APP_FWD_REQ:
		if (len < 12)
			return;
		node_serve_forwarded(s, from, get_be64(data), get_be32(data + 8), data + 12,
				     len - 12, fwd_remote_reply);
		return;
	case KEELD_APP_FWD_RESP: {
		if (len < 16)
			return;
		uint32_t mlen = get_be32(data + 12);
		if (mlen > len - 16 || mlen > 1024)
			return;
		char msg[1025];
		memcpy(msg, data + 16, mlen);
		msg[mlen] = 0;
		fwd_complete(s, get_be64(data), (int)get_be32(data + 8), mlen ? msg : NULL,
			     data + 16 + mlen, len - 16 - mlen);
		return;
	}
	case KEELD_APP_MEMBER_ATTR: {
		if (len < 2)
			return;
		size_t nlen = (size_t)data[0] << 8 | data[1];
		if (nlen >= 128 || nlen > len - 2 || len - 2 - nlen >= 1024)
			return;
		char name[128], urls[1024];
		memcpy(name, data + 2, nlen);
		name[nlen] = 0;
		memcpy(urls, data + 2 + nlen, len - 2 - nlen);
		urls[len - 2 - nlen] = 0;
		node_member_attr(s, from, name, urls);
		return;
	}
	default:
		LOG_DEBUG("peer %016llx: unknown frame kind %u", (unsigned long long)from, kind);
	}
}

static void node_send_attrs(keeld_t *s)
{
	const keeld_member_t *self = NULL;
	for (size_t i = 0; i < s->n_members; i++)
		if (s->members[i].id == s->id)
			self = &s->members[i];
	if (!self)
		return;
	size_t nlen = strlen(self->name), ulen = strlen(self->client_urls);
	uint8_t buf[2 + 128 + 1024];
	buf[0] = (uint8_t)(nlen >> 8);
	buf[1] = (uint8_t)nlen;
	memcpy(buf + 2, self->name, nlen);
	memcpy(buf + 2 + nlen, self->client_urls, ulen);
	for (size_t i = 0; i < s->n_members; i++)
		if (s->members[i].id != s->id)
			peer_net_send_app(s->peers, s->members[i].id, KEELD_APP_MEMBER_ATTR, buf,
					  2 + nlen + ulen);
}

/* ---- the Ready cycle ---------------------------------------------------------------- */

static void node_fatal(keeld_t *s, const char *what, const char *msg)
{
	LOG_ERROR("%s: %s; stopping", what, msg);
	keeld_stop(s, 1);
}

static char *node_path(const keeld_t *s, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", s->member_dir, name);
	return buf;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	return close(fd);
}

/* A raft snapshot's data: the magic, then the store copy at path. */
static int read_snapshot_data(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n + sizeof(SNAP_MAGIC));
	if (!buf) {
		close(fd);
		return -1;
	}
	memcpy(buf, SNAP_MAGIC, 8);
	size_t off = 0;
	while (off < n) {
		ssize_t r = read(fd, buf + 8 + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = 8 + off;
	return off == n ? 0 : -1;
}

/* The store part of a snapshot's data, written where kv_snapshot_install takes it. */
static int node_write_snap_store(keeld_t *s, const raft_snapshot_t *snap, char *err,
				 size_t errlen)
{
	char path[4200];
	node_path(s, "snap-install.db", path, sizeof(path));
	if (snap->data.len < 8 || memcmp(snap->data.data, SNAP_MAGIC, 8) != 0) {
		snprintf(err, errlen, "snapshot at %llu: data is not a keeld snapshot",
			 (unsigned long long)snap->metadata->index);
		return -1;
	}
	if (write_file(path, snap->data.data + 8, snap->data.len - 8) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int node_install_store(keeld_t *s, uint64_t index)
{
	char path[4200];
	node_path(s, "snap-install.db", path, sizeof(path));
	/* A client's snapshot copies the store on a worker (svc_snapshot.c): the store must
	 * not be swapped under it. */
	uv_rwlock_wrlock(&s->store_lock);
	int rc = kv_snapshot_install(s->kv, path);
	uv_rwlock_wrunlock(&s->store_lock);
	if (rc != KV_OK) {
		LOG_ERROR("installing the store of the snapshot at %llu: %s %s",
			  (unsigned long long)index, kv_strerror(rc), kv_last_error(s->kv));
		return -1;
	}
	LOG_INFO("installed the store of the snapshot at index %llu (revision %lld)",
		 (unsigned long long)index, (long long)kv_revision(s->kv));
	return 0;
}

static void work_cb(uv_work_t *w)
{
	keeld_t *s = w->data;
	job_t *j = &s->node->job;
	s->work_rc = 0;
	s->work_err[0] = 0;
	raft_ready_t *rd = &s->rd;
	if (j->ready && rd->snapshot) {
		int rc = raft_wal_save_snapshot(s->wal, rd->snapshot);
		if (rc != 0) {
			s->work_rc = rc;
			snprintf(s->work_err, sizeof(s->work_err), "%s", raft_wal_error(s->wal));
			return;
		}
		if (node_write_snap_store(s, rd->snapshot, s->work_err, sizeof(s->work_err))) {
			s->work_rc = -1;
			return;
		}
	}
	const raft_hard_state_t *hs = NULL;
	if (j->ready && rd->hard_state_changed)
		hs = &rd->hard_state;
	else if (j->ready && s->node->hs_dirty)
		hs = &s->node->hs_unsaved;
	if (hs || (j->ready && rd->n_entries)) {
		int rc = raft_wal_save(s->wal, hs, rd->entries, rd->n_entries, rd->must_sync);
		if (rc != 0) {
			s->work_rc = rc;
			snprintf(s->work_err, sizeof(s->work_err), "%s", raft_wal_error(s->wal));
			return;
		}
		/* The loop sets it only while raft is not held, never during this job. */
		s->node->hs_dirty = false;
	}
	if (j->snapshot) {
		char path[4200];
		node_path(s, "snap-create.db", path, sizeof(path));
		unlink(path);
		int rc = kv_sync(s->kv);
		if (rc == KV_OK)
			rc = kv_snapshot_save(s->kv, path);
		uint8_t *data = NULL;
		size_t len = 0;
		if (rc != KV_OK || read_snapshot_data(path, &data, &len) != 0) {
			s->work_rc = -1;
			snprintf(s->work_err, sizeof(s->work_err), "snapshot of the store: %s",
				 rc != KV_OK ? kv_last_error(s->kv) : strerror(errno));
			free(data);
			unlink(path);
			return;
		}
		unlink(path);
		rc = raft_wal_create_snapshot(s->wal, s->snap_job_index, &j->conf, data, len,
					      j->compact_index);
		free(data);
		if (rc != 0) {
			s->work_rc = rc;
			snprintf(s->work_err, sizeof(s->work_err), "%s", raft_wal_error(s->wal));
		}
	}
}

static void node_finish_ready(keeld_t *s);
static void node_drive(keeld_t *s);

static void after_work_cb(uv_work_t *w, int status)
{
	keeld_t *s = w->data;
	job_t *j = &s->node->job;
	s->held = false;
	if (s->stopping) {
		/* Peers and clients are gone: what the Ready still had to send or apply is
		 * redone from the log on the next start. */
		for (size_t i = 0; j->ready && i < s->rd.n_msgs; i++)
			raft_msg_free(s->rd.msgs[i]);
		if (j->ready)
			raft_advance(s->raft, &s->rd);
		return;
	}
	if (status != 0 || s->work_rc != 0) {
		node_fatal(s, "writing the log", status ? uv_strerror(status) : s->work_err);
		if (j->ready)
			raft_advance(s->raft, &s->rd);
		return;
	}
	if (j->snapshot) {
		LOG_INFO("snapshot at index %llu; log compacted to %llu",
			 (unsigned long long)s->snap_job_index, (unsigned long long)j->compact_index);
		s->snap_index = s->snap_job_index;
		j->snapshot = false;
	}
	if (j->ready)
		node_finish_ready(s);
	if (!s->stopping)
		node_drive(s);
}

/* Fixes what a due snapshot records (the applied index and its membership), outside
 * raft_ready/raft_advance as the core asks. The snapshot is taken at once as a job of its
 * own, even on a busy member that always has a Ready to persist; nothing is applied while
 * it runs, so the store copy is exactly the state at that index. */
static void node_plan_snapshot(keeld_t *s)
{
	job_t *j = &s->node->job;
	s->snapshot_due = false;
	j->snapshot = true;
	raft_applied_conf(s->raft, &j->conf);
	s->snap_job_index = s->applied;
	uint64_t keep = SNAP_CATCHUP_ENTRIES;
	if (s->cfg->snapshot_count < keep)
		keep = s->cfg->snapshot_count;
	j->compact_index = s->applied > keep ? s->applied - keep : 0;
}

static void node_hold(keeld_t *s, bool ready)
{
	s->node->job.ready = ready;
	s->held = true;
	s->work.data = s;
	int rc = uv_queue_work(s->loop, &s->work, work_cb, after_work_cb);
	if (rc != 0) {
		s->held = false;
		node_fatal(s, "queueing disk work", uv_strerror(rc));
	}
}

static void node_send(keeld_t *s, raft_ready_t *rd)
{
	for (size_t i = 0; i < rd->n_msgs; i++) {
		if (rd->msgs[i])
			peer_net_send(s->peers, rd->msgs[i]);
		rd->msgs[i] = NULL;
	}
	rd->n_msgs = 0;
}

static void node_applied(void *ud, kv_result_t *res)
{
	keeld_t *s = ud;
	node_t *x = s->node;
	/* The members change before the proposer hears of it: its answer lists them. */
	if (res->entry && res->entry->type == RAFT_ENTRY_CONF_CHANGE && !res->err)
		node_members_sync(s);
	keeld_pending_t *p = res->id ? pending_find(x, res->id) : NULL;
	if (!p) {
		if (res->resp)
			protobuf_c_message_free_unpacked(res->resp, NULL);
		return;
	}
	pending_unlink(x, p);
	if (p->done)
		p->done(s, p->ud, res, 0, NULL);
	else if (res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
	free(p);
}

static void node_finish_ready(keeld_t *s)
{
	raft_ready_t *rd = &s->rd;
	bool applied = rd->n_committed > 0; /* raft_advance clears rd */
	node_send(s, rd);
	if (rd->snapshot && rd->snapshot->metadata->index > kv_applied_index(s->kv)) {
		if (node_install_store(s, rd->snapshot->metadata->index) != 0) {
			raft_advance(s->raft, rd);
			keeld_stop(s, 1);
			return;
		}
	}
	if (rd->snapshot) {
		s->applied = rd->snapshot->metadata->index;
		s->snap_index = s->applied;
		node_members_sync(s); /* the membership came with the store */
	}
	if (rd->n_committed) {
		int rc = kv_apply(s->kv, rd->committed, rd->n_committed, node_applied, s);
		if (rc != KV_OK) {
			LOG_ERROR("applying entries %llu..%llu: %s %s",
				  (unsigned long long)rd->committed[0]->index,
				  (unsigned long long)rd->committed[rd->n_committed - 1]->index,
				  kv_strerror(rc), kv_last_error(s->kv));
			raft_advance(s->raft, rd);
			keeld_stop(s, 1);
			return;
		}
		const raft_entry_t *last = rd->committed[rd->n_committed - 1];
		s->applied = last->index;
		if (s->state == RAFT_LEADER && !kv_lease_is_primary(s->kv) && last->term == s->term)
			kv_lease_promote(s->kv);
	}
	reads_take_states(s, rd);
	raft_advance(s->raft, rd);
	reads_serve(s);
	if (s->cfg->snapshot_count && s->applied > s->snap_index + s->cfg->snapshot_count)
		s->snapshot_due = true;
	if (applied)
		keeld_background(s);
}

static void node_observe(keeld_t *s, const raft_ready_t *rd)
{
	if (rd->hard_state_changed) {
		s->term = rd->hard_state.term;
		s->commit = rd->hard_state.commit;
	}
	if (!rd->soft_state_changed)
		return;
	if (rd->lead != s->lead) {
		if (rd->lead != RAFT_NONE)
			s->node->lead_elected_ms = keeld_now_ms();
		if (rd->lead == RAFT_NONE)
			LOG_INFO("lost leader at term %llu", (unsigned long long)s->term);
		else
			LOG_INFO("leader is %016llx at term %llu", (unsigned long long)rd->lead,
				 (unsigned long long)s->term);
	}
	s->lead = rd->lead;
	if (rd->state != RAFT_LEADER && kv_lease_is_primary(s->kv))
		kv_lease_demote(s->kv);
	s->state = rd->state;
}

static int node_propose_conf(keeld_t *s, const prop_t *p)
{
	raft_conf_change_t *cc = raftpb__conf_change__unpack(NULL, p->len, p->data);
	if (!cc)
		return RAFT_ERR_INVALID_CONF_CHANGE;
	int rc = raft_propose_conf_change(s->raft, cc);
	raftpb__conf_change__free_unpacked(cc, NULL);
	return rc;
}

/* Feeds what waited while raft was held. */
static void node_flush_inputs(keeld_t *s)
{
	node_t *x = s->node;
	for (; s->held_ticks > 0; s->held_ticks--)
		raft_tick(s->raft);
	for (size_t i = 0; i < x->n_reports; i++) {
		if (x->reports[i].kind == REPORT_UNREACHABLE)
			raft_report_unreachable(s->raft, x->reports[i].id);
		else
			raft_report_snapshot(s->raft, x->reports[i].id,
					     x->reports[i].kind == REPORT_SNAP_FAILED);
	}
	x->n_reports = 0;
	for (size_t i = 0; i < s->n_inbox; i++) {
		int rc = raft_step(s->raft, s->inbox[i]);
		if (rc != 0 && rc != RAFT_ERR_STEP_PEER_NOT_FOUND)
			LOG_DEBUG("step: %s", raft_strerror(rc));
		raft_msg_free(s->inbox[i]);
	}
	s->n_inbox = 0;
	uint64_t now = keeld_now_ms();
	size_t kept = 0;
	for (size_t i = 0; i < x->n_props; i++) {
		prop_t *p = &x->props[i];
		int rc = p->deadline_ms < now ? RAFT_OK
			 : p->conf	      ? node_propose_conf(s, p)
					      : raft_propose(s->raft, p->data, p->len);
		/* A conf change waits for the one before it to commit, as etcd's would. */
		if (rc == RAFT_ERR_NO_LEADER || rc == RAFT_ERR_PROPOSAL_DROPPED ||
		    (p->conf && rc == RAFT_ERR_CONF_CHANGE_PENDING)) {
			x->props[kept++] = *p; /* retried next tick, until its deadline */
			continue;
		}
		if (rc != 0) {
			LOG_WARN("propose: %s", raft_strerror(rc));
			keeld_pending_t *pp = pending_find(x, p->id);
			if (pp && p->conf)
				pending_fail(s, pp, GRPC_FAILED_PRECONDITION,
					     "etcdserver: invalid configuration change");
		} else if (p->deadline_ms >= now) {
			keeld_pending_t *pp = pending_find(x, p->id);
			if (pp)
				pp->proposed = true;
		}
		free(p->data);
	}
	x->n_props = kept;
	reads_request(s);
}

/* A Ready whose only news for the disk is a higher commit index is applied at once: the
 * commit index on disk may lag (raft learns it again from the leader, and a restart tells
 * the core applied = min(store, commit), which the snapshot index bounds from below), while
 * a worker round trip per commit would sit on every write's path, on every member. Term and
 * vote changes (must_sync) and entries always go to disk first. */
static bool ready_needs_disk(const raft_ready_t *rd)
{
	return rd->n_entries || rd->snapshot || rd->must_sync;
}

static void node_drive(keeld_t *s)
{
	for (int round = 0; round < 64 && !s->held && !s->stopping; round++) {
		node_flush_inputs(s);
		if (s->snapshot_due) {
			node_plan_snapshot(s);
			node_hold(s, false);
			return;
		}
		if (!raft_has_ready(s->raft))
			return;
		int rc = raft_ready(s->raft, &s->rd);
		if (rc != 0) {
			node_fatal(s, "raft ready", raft_strerror(rc));
			return;
		}
		node_observe(s, &s->rd);
		if (s->rd.hard_state_changed && !ready_needs_disk(&s->rd)) {
			s->node->hs_unsaved = s->rd.hard_state;
			s->node->hs_dirty = true;
		}
		if (ready_needs_disk(&s->rd)) {
			if (s->rd.state == RAFT_LEADER)
				node_send(s, &s->rd);
			node_hold(s, true);
			return;
		}
		node_finish_ready(s);
	}
}

/* ---- periodic duties ------------------------------------------------------------------ */

static void reads_expire(keeld_t *s, keeld_read_t **list, uint64_t now)
{
	for (keeld_read_t **pp = list; *pp;) {
		keeld_read_t *r = *pp;
		if (r->deadline_ms > now) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (r->fn)
			r->fn(s, r->ud, GRPC_UNAVAILABLE, "etcdserver: request timed out");
		free(r);
	}
}

static void node_expire(keeld_t *s, uint64_t now)
{
	node_t *x = s->node;
	while (x->head && x->head->deadline_ms <= now) {
		const char *msg;
		int st = node_timeout_status(s, x->head, &msg);
		pending_fail(s, x->head, st, msg);
	}
	reads_expire(s, &s->reads_wait, now);
	reads_expire(s, &s->reads_new, now);
	if (!s->reads_wait)
		s->read_index = 0;
	fwd_tick(s, now);
}

/* The leader's lease duties: revoke what expired, checkpoint remaining TTLs. */
static void node_lease_duties(keeld_t *s)
{
	if (s->state != RAFT_LEADER || !kv_lease_is_primary(s->kv))
		return;
	int64_t ids[64];
	size_t n = kv_lease_expired(s->kv, ids, 64);
	for (size_t i = 0; i < n; i++) {
		Etcdserverpb__LeaseRevokeRequest rv = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
		rv.id = ids[i];
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		req.lease_revoke = &rv;
		keeld_propose(s, &req, NULL, NULL);
	}
	Etcdserverpb__LeaseCheckpointRequest *cp;
	while ((cp = kv_lease_checkpoints(s->kv)) != NULL) {
		Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
		req.lease_checkpoint = cp;
		keeld_propose(s, &req, NULL, NULL);
		protobuf_c_message_free_unpacked(&cp->base, NULL);
	}
}

static void node_compact_to(keeld_t *s, int64_t rev)
{
	if (rev <= kv_compact_revision(s->kv) || rev > kv_revision(s->kv))
		return;
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	req.compaction = &c;
	LOG_INFO("auto-compaction: compacting to revision %lld", (long long)rev);
	keeld_propose(s, &req, NULL, NULL);
}

/* --auto-compaction: revision mode keeps the last <retention> revisions, checked every
 * 5 minutes as etcd does; periodic mode samples the revision every retention/10 and
 * compacts to the sample taken one retention ago. Only the leader proposes. */
static void node_auto_compact(keeld_t *s, uint64_t now)
{
	node_t *x = s->node;
	uint64_t ret = s->cfg->compaction_retention;
	if (ret == 0 || s->state != RAFT_LEADER)
		return;
	if (s->cfg->compaction_mode == KEELD_COMPACT_REVISION) {
		if (now - x->compact_last_ms < 5 * 60 * 1000)
			return;
		x->compact_last_ms = now;
		node_compact_to(s, kv_revision(s->kv) - (int64_t)ret);
		return;
	}
	uint64_t every = ret / 10 ? ret / 10 : 1;
	if (x->compact_last_ms && now - x->compact_last_ms < every)
		return;
	x->compact_last_ms = now;
	if (x->n_marks == 11) {
		memmove(x->marks, x->marks + 1, 10 * sizeof(x->marks[0]));
		x->n_marks = 10;
	}
	x->marks[x->n_marks++] = kv_revision(s->kv);
	if (x->n_marks == 11)
		node_compact_to(s, x->marks[0]);
}

static void on_tick(uv_timer_t *t)
{
	keeld_t *s = t->data;
	node_t *x = s->node;
	uint64_t now = keeld_now_ms();
	s->held_ticks++;
	if (x->removed_stop_ms && now >= x->removed_stop_ms) {
		keeld_stop(s, 0);
		return;
	}
	node_expire(s, now);
	if (s->held)
		return;
	node_lease_duties(s);
	node_auto_compact(s, now);
	/* A member's name and client URLs are what MemberList shows of it: right after it
	 * starts, or after the membership changed, peers should hear them soon. */
	if (now - x->attrs_ms >= (now < x->attrs_fast_until ? 200 : 2000)) {
		x->attrs_ms = now;
		node_send_attrs(s);
	}
	if (now - x->progress_ms >= 10 * 60 * 1000) {
		x->progress_ms = now;
		kv_watch_progress(s->kv, NULL);
	}
	node_drive(s);
}

/* Raft runs after the I/O of each loop turn (uv_check), so everything that turn brought
 * enters the core together, and what it sends is flushed by the transports' uv_prepare
 * before the loop next blocks. Work left over keeps the loop from blocking (on_idle). */
static void on_check(uv_check_t *h)
{
	keeld_t *s = h->data;
	if (s->held || s->stopping)
		return;
	node_drive(s);
	if (!s->held && raft_has_ready(s->raft))
		keeld_background(s);
}

/* Background steps that must never stall the loop: watchers catching up, physical
 * compaction. Runs while either has work. */
static void on_idle(uv_idle_t *h)
{
	keeld_t *s = h->data;
	size_t behind = kv_watch_step(s->kv);
	bool compacting = kv_compact_pending(s->kv);
	if (compacting) {
		bool done = false;
		int rc = kv_compact_step(s->kv, 1000, &done);
		if (rc != KV_OK)
			LOG_WARN("compaction step: %s %s", kv_strerror(rc), kv_last_error(s->kv));
		compacting = rc == KV_OK && !done;
	}
	if (!behind && !compacting && (s->held || !raft_has_ready(s->raft)))
		uv_idle_stop(h);
}

void keeld_background(keeld_t *s)
{
	if (!s->stopping)
		uv_idle_start(&s->idle, on_idle);
}

/* ---- start and stop --------------------------------------------------------------------- */

/* Names that must be resolved before libuv can bind them. */
static const char *node_bind_host(const char *h)
{
	return strcmp(h, "localhost") == 0 ? "127.0.0.1" : h;
}


static int node_mkdir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
	return -1;
}

static void node_join_urls(const keeld_url_list_t *l, char *buf, size_t len)
{
	buf[0] = 0;
	size_t off = 0;
	for (size_t i = 0; i < l->n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", l->v[i].text);
}

/* The member's identity, written on its first start and read on every later one: like
 * etcd, a member restarting from its data directory keeps its id, its cluster and the
 * membership it was created with, whatever --initial-cluster says now. Lines:
 * "self <id>", "cluster <id>", "member <id>\t<name>\t<peer urls>" (ids in hex). */
static int node_identity_load(keeld_t *s, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 1 : (snprintf(err, errlen, "%s: %s", path,
						       strerror(errno)), -1);
	char line[2300];
	size_t n = 0;
	uint64_t self = 0, cluster = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		unsigned long long id;
		char name[128], urls[1024];
		if (sscanf(line, "self %llx", &id) == 1) {
			self = id;
		} else if (sscanf(line, "cluster %llx", &id) == 1) {
			cluster = id;
		} else if (sscanf(line, "member %llx\t%127[^\t]\t%1023[^\t]", &id, name, urls) == 3 &&
			   n < KEELD_MAX_MEMBERS) {
			keeld_member_t *m = &s->members[n++];
			memset(m, 0, sizeof(*m));
			m->id = id;
			snprintf(m->peer_urls, sizeof(m->peer_urls), "%s", urls);
			/* "-": a member nobody had named yet (a join's answer can hold one) */
			if (strcmp(name, "-") != 0)
				snprintf(m->name, sizeof(m->name), "%s", name);
		}
	}
	fclose(f);
	if (!self || !cluster || !n) {
		snprintf(err, errlen, "%s: not a keeld member identity file", path);
		return -1;
	}
	s->id = self;
	s->cluster_id = cluster;
	s->n_members = n;
	return 0;
}

static int node_identity_save(keeld_t *s, const char *path, char *err, size_t errlen)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "self %016llx\ncluster %016llx\n", (unsigned long long)s->id,
		(unsigned long long)s->cluster_id);
	for (size_t i = 0; i < s->n_members; i++)
		fprintf(f, "member %016llx\t%s\t%s\n", (unsigned long long)s->members[i].id,
			s->members[i].id == s->id ? s->cfg->name
			: s->members[i].name[0]	  ? s->members[i].name
						  : "-",
			s->members[i].peer_urls[0] ? s->members[i].peer_urls : "-");
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether the member's peer URLs (normalized and sorted, as config.c keeps them) are
 * exactly urls. */
static bool node_same_urls(char *const *urls, size_t n, const keeld_url_list_t *want)
{
	char joined[1024], err[256];
	keeld_url_list_t got;
	node_urls_join(urls, n, joined, sizeof(joined));
	if (n == 0 || keeld_parse_urls(joined, &got, err, sizeof(err)) != 0 || got.n != want->n)
		return false;
	for (size_t i = 0; i < got.n; i++)
		if (strcmp(got.v[i].text, want->v[i].text) != 0)
			return false;
	return true;
}

/* Asks each other member of --initial-cluster, once, for the membership. */
static Etcdserverpb__MemberListResponse *node_join_ask(keeld_t *s, const char *self_name,
						       char *last, size_t lastlen)
{
	const keeld_config_t *cfg = s->cfg;
	for (size_t i = 0; i < cfg->n_members; i++) {
		if (!strcmp(cfg->members[i].name, self_name))
			continue;
		for (size_t u = 0; u < cfg->members[i].peer_urls.n; u++) {
			const keeld_url_t *url = &cfg->members[i].peer_urls.v[u];
			uint8_t *buf;
			size_t len;
			if (peer_ask_members(node_bind_host(url->host), url->port, 1000, &buf, &len,
					     last, lastlen) != 0)
				continue;
			Etcdserverpb__MemberListResponse *r =
				etcdserverpb__member_list_response__unpack(NULL, len, buf);
			free(buf);
			if (r && r->header && r->header->cluster_id && r->n_members)
				return r;
			if (r)
				etcdserverpb__member_list_response__free_unpacked(r, NULL);
			snprintf(last, lastlen, "%s: the answer is not a membership", url->text);
		}
	}
	return NULL;
}

/* A member started with --initial-cluster-state existing and no data joins a running
 * cluster: it must not bootstrap a log of its own. It asks the other members named in
 * --initial-cluster for the membership (etcd asks their peer URLs the same), takes the
 * cluster's id from the answer and its own id from the member with its peer URLs (which
 * `member add` created); the leader then replicates the log to it. */
static int node_join(keeld_t *s, char *err, size_t errlen)
{
	const keeld_config_t *cfg = s->cfg;
	const keeld_member_conf_t *self = NULL;
	for (size_t i = 0; i < cfg->n_members; i++)
		if (!strcmp(cfg->members[i].name, cfg->name))
			self = &cfg->members[i];
	if (!self) {
		snprintf(err, errlen, "couldn't find local name \"%s\" in the initial cluster "
			 "configuration", cfg->name);
		return -1;
	}
	char last[512] = "no other member in --initial-cluster";
	uint64_t deadline = keeld_now_ms() + 5000;
	const Etcdserverpb__Member *me = NULL;
	Etcdserverpb__MemberListResponse *r = NULL;
	for (;;) {
		r = node_join_ask(s, cfg->name, last, sizeof(last));
		for (size_t i = 0; r && !me && i < r->n_members; i++)
			if (node_same_urls(r->members[i]->peerurls, r->members[i]->n_peerurls,
					   &self->peer_urls))
				me = r->members[i];
		if (me || keeld_now_ms() >= deadline)
			break;
		if (r) {
			snprintf(last, sizeof(last), "no member of cluster %016llx has this member's "
				 "peer URLs (add it first: etcdctl member add %s --peer-urls=...)",
				 (unsigned long long)r->header->cluster_id, cfg->name);
			etcdserverpb__member_list_response__free_unpacked(r, NULL);
			r = NULL;
		}
		usleep(200 * 1000); /* the member that served the add may be ahead of the rest */
	}
	if (!me) {
		snprintf(err, errlen, "cannot join the cluster (--initial-cluster-state existing): "
			 "%s", last);
		if (r)
			etcdserverpb__member_list_response__free_unpacked(r, NULL);
		return -1;
	}
	s->id = me->id;
	s->cluster_id = r->header->cluster_id;
	s->n_members = 0;
	for (size_t i = 0; i < r->n_members && i < KEELD_MAX_MEMBERS; i++) {
		const Etcdserverpb__Member *rm = r->members[i];
		keeld_member_t *m = &s->members[s->n_members++];
		memset(m, 0, sizeof(*m));
		m->id = rm->id;
		m->is_learner = rm->islearner;
		node_urls_join(rm->peerurls, rm->n_peerurls, m->peer_urls, sizeof(m->peer_urls));
		node_urls_join(rm->clienturls, rm->n_clienturls, m->client_urls,
			       sizeof(m->client_urls));
		snprintf(m->name, sizeof(m->name), "%s", rm->id == s->id ? cfg->name
						 : rm->name ? rm->name : "");
		if (rm->id == s->id)
			node_join_urls(&cfg->advertise_client_urls, m->client_urls,
				       sizeof(m->client_urls));
	}
	LOG_INFO("joining cluster %016llx as member %016llx (%zu members)",
		 (unsigned long long)s->cluster_id, (unsigned long long)s->id, s->n_members);
	etcdserverpb__member_list_response__free_unpacked(r, NULL);
	return 0;
}

static int node_identity(keeld_t *s, char *err, size_t errlen)
{
	char path[4200];
	node_path(s, "identity", path, sizeof(path));
	int rc = node_identity_load(s, path, err, errlen);
	if (rc > 0 && s->cfg->cluster_state_existing && node_join(s, err, errlen) != 0)
		return -1;
	if (rc <= 0) {
		for (size_t i = 0; rc == 0 && i < s->n_members; i++)
			if (s->members[i].id == s->id) {
				snprintf(s->members[i].name, sizeof(s->members[i].name), "%s",
					 s->cfg->name);
				node_join_urls(&s->cfg->advertise_client_urls,
					       s->members[i].client_urls,
					       sizeof(s->members[i].client_urls));
			}
		return rc;
	}
	if (!s->id) {
		snprintf(err, errlen, "couldn't find local name \"%s\" in the initial cluster "
			 "configuration, and %s holds no member identity", s->cfg->name,
			 s->member_dir);
		return -1;
	}
	return node_identity_save(s, path, err, errlen);
}

/* Copies of the store made for clients' snapshots (svc_snapshot.c) and by a defragmentation
 * (svc_maint.c) are deleted once done;
 * a crash in between leaves one behind. Called with the data dir locked (the WAL's lock). */
static void node_remove_stale_copies(const keeld_t *s)
{
	DIR *d = opendir(s->member_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		bool snap = strncmp(e->d_name, "snapshot-send-", 14) == 0 && n >= 3 &&
			    strcmp(e->d_name + n - 3, ".db") == 0;
		bool defrag = !strcmp(e->d_name, "defrag.db") ||
			      !strcmp(e->d_name, "defrag.db-lock") ||
			      !strcmp(e->d_name, "db.defrag-old");
		if (!snap && !defrag)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			LOG_INFO("removed %s/%s, left by an interrupted %s", s->member_dir,
				 e->d_name, snap ? "client snapshot" : "defragmentation");
	}
	closedir(d);
}

/* The store learns the first members' attributes (their conf changes carry none), then
 * the membership it holds replaces the configuration's. */
static int node_members_open(keeld_t *s, char *err, size_t errlen)
{
	keeld_member_view_t *v = keeld_members_view(s);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < v->n; i++)
		v->ms[i].n_clienturls = 0; /* each running member's own news, never stored */
	int rc = kv_members_bootstrap(s->kv, v->mp, v->n);
	free(v);
	if (rc != KV_OK) {
		snprintf(err, errlen, "recording the first members: %s %s", kv_strerror(rc),
			 kv_last_error(s->kv));
		return -1;
	}
	node_members_sync(s);
	return 0;
}

static int node_open_storage(keeld_t *s, char *err, size_t errlen)
{
	const keeld_config_t *cfg = s->cfg;
	if (node_mkdir(cfg->data_dir, err, errlen) ||
	    snprintf(s->member_dir, sizeof(s->member_dir), "%s/member", cfg->data_dir) < 0 ||
	    node_mkdir(s->member_dir, err, errlen))
		return -1;
	raft_wal_options_t wo;
	raft_wal_options_default(&wo);
	int rc = raft_wal_open(s->member_dir, &wo, &s->wal, err, errlen);
	if (rc != 0 || node_identity(s, err, errlen) != 0)
		return -1;
	node_remove_stale_copies(s);
	kv_options_t ko;
	kv_options_default(&ko);
	ko.no_sync = true; /* the WAL is the durability point; see the top comment */
	ko.now_ms = node_clock;
	/* The quota is soft (checked before proposing; the NOSPACE alarm caps apply), so the
	 * map leaves room past it: the map is address space, not disk. */
	size_t quota = cfg->quota_backend_bytes > 0 ? (size_t)cfg->quota_backend_bytes
						    : (size_t)2 << 30;
	ko.map_size = 2 * quota < ((size_t)1 << 30) ? ((size_t)1 << 30) : 2 * quota;
	ko.watch_max_response_bytes = cfg->max_request_bytes;
	/* etcd's shortest lease: one and a half election timeouts, in whole seconds rounded
	 * up, so a lease outlives a leader election. */
	ko.min_lease_ttl = (int64_t)((3 * (uint64_t)cfg->election_ms / 2 + 999) / 1000);
	char path[4200];
	rc = kv_open(node_path(s, "db", path, sizeof(path)), &ko, &s->kv, err, errlen);
	if (rc != KV_OK)
		return -1;
	/* A crash between saving a received snapshot and installing its store leaves the
	 * store behind the log's snapshot: install it again. */
	raft_storage_t st = raft_wal_storage(s->wal);
	const raft_snapshot_t *snap = NULL;
	if (st.ops->snapshot(st.ctx, &snap) == 0 && snap && snap->metadata &&
	    snap->metadata->index > kv_applied_index(s->kv)) {
		if (node_write_snap_store(s, snap, err, errlen) != 0 ||
		    node_install_store(s, snap->metadata->index) != 0) {
			if (!err[0])
				snprintf(err, errlen, "cannot install the store of the snapshot");
			return -1;
		}
	}
	if (snap && snap->metadata)
		s->snap_index = snap->metadata->index;
	return node_members_open(s, err, errlen);
}

static int node_open_raft(keeld_t *s, char *err, size_t errlen)
{
	const keeld_config_t *cfg = s->cfg;
	raft_storage_t st = raft_wal_storage(s->wal);
	raft_hard_state_t hs;
	if (st.ops->initial_state(st.ctx, &hs) != 0) {
		snprintf(err, errlen, "cannot read the log's hard state");
		return -1;
	}
	raft_config_t rc;
	raft_config_default(&rc, s->id, st);
	rc.heartbeat_tick = 1;
	rc.election_tick = (int)(cfg->election_ms / cfg->heartbeat_ms);
	uint64_t applied = kv_applied_index(s->kv);
	if (applied > hs.commit)
		applied = hs.commit;
	if (applied < s->snap_index)
		applied = s->snap_index;
	rc.applied = applied;
	rc.seed = s->id ^ (uint64_t)time(NULL);
	uint64_t peers[KEELD_MAX_MEMBERS];
	for (size_t i = 0; i < s->n_members; i++)
		peers[i] = s->members[i].id;
	if (!cfg->cluster_state_existing) {
		rc.peers = peers;
		rc.n_peers = s->n_members;
	}
	int r = raft_node_new(&rc, &s->raft);
	if (r != 0) {
		snprintf(err, errlen, "raft: %s", raft_strerror(r));
		return -1;
	}
	s->term = hs.term;
	s->commit = hs.commit;
	s->applied = applied;
	/* A member alone in its cluster need not wait an election timeout to find that nobody
	 * else will lead (etcd fast-forwards its ticks likewise): an embedded store is ready
	 * at once. */
	if (s->n_members == 1 && s->members[0].id == s->id)
		raft_campaign(s->raft);
	return 0;
}

/* Whether this member is a learner now (the store's membership says so). */
static bool node_is_learner(const keeld_t *s)
{
	const keeld_member_t *self = node_member_find(s->members, s->n_members, s->id);
	return self && self->is_learner;
}

/* etcd 3.4 serves a learner's clients only Status and serializable Range; every other
 * call (streams included) gets "rpc not supported for learner" before anything else. */
static bool node_learner_may_serve(const grpc_method_t *m, const uint8_t *msg, size_t len)
{
	if (!strcmp(m->path, "/etcdserverpb.Maintenance/Status"))
		return true;
	if (strcmp(m->path, "/etcdserverpb.KV/Range") != 0)
		return false;
	Etcdserverpb__RangeRequest *r = etcdserverpb__range_request__unpack(NULL, len, msg);
	bool ok = !r || r->serializable; /* one that does not decode: Range says why */
	if (r)
		etcdserverpb__range_request__free_unpacked(r, NULL);
	return ok;
}

static void node_gate_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	const grpc_method_t *m = grpc_call_method(call);
	size_t i = (size_t)(m - s->node->methods);
	if (node_is_learner(s) && !node_learner_may_serve(m, msg, len)) {
		grpc_call_finish(call, GRPC_UNAVAILABLE, "etcdserver: rpc not supported for learner");
		return;
	}
	s->node->handlers[i](ud, call, msg, len);
}

/* services.c's table, then the Cluster service's methods it does not have yet; every
 * message passes the learner gate first. */
static size_t node_methods(keeld_t *s)
{
	size_t n = keeld_n_methods, max = keeld_n_methods + svc_cluster_n_methods;
	grpc_method_t *t = malloc(max * sizeof(*t));
	s->node->handlers = malloc(max * sizeof(*s->node->handlers));
	s->node->methods = t;
	if (!t || !s->node->handlers)
		return 0;
	memcpy(t, keeld_methods, keeld_n_methods * sizeof(*t));
	for (size_t i = 0; i < svc_cluster_n_methods; i++) {
		bool dup = false;
		for (size_t k = 0; k < keeld_n_methods; k++)
			dup = dup || !strcmp(keeld_methods[k].path, svc_cluster_methods[i].path);
		if (!dup)
			t[n++] = svc_cluster_methods[i];
	}
	for (size_t i = 0; i < n; i++) {
		s->node->handlers[i] = t[i].on_message;
		t[i].on_message = node_gate_msg;
	}
	return n;
}

static int node_open_network(keeld_t *s, char *err, size_t errlen)
{
	const keeld_config_t *cfg = s->cfg;
	peer_options_t po;
	peer_options_default(&po);
	po.cluster_id = s->cluster_id;
	/* A restarted member is dialled again within a few heartbeats, as etcd's peers retry
	 * every 100 ms; longer backoff would only delay its catching up. */
	po.backoff_max_ms = 4 * (uint64_t)cfg->heartbeat_ms;
	if (po.backoff_max_ms < po.backoff_min_ms)
		po.backoff_max_ms = po.backoff_min_ms;
	static const peer_callbacks_t pcb = {
		.on_raft = on_peer_raft,
		.on_app = on_peer_app,
		.on_unreachable = on_peer_unreachable,
		.on_snapshot_status = on_peer_snapshot_status,
		.on_log = on_peer_log,
		.is_removed = on_peer_is_removed,
		.on_removed = on_peer_removed,
		.members = on_peer_members,
	};
	if (peer_net_new(s->loop, s->id, &po, &pcb, s, &s->peers) != 0) {
		snprintf(err, errlen, "cannot create the peer transport");
		return -1;
	}
	for (size_t i = 0; i < cfg->listen_peer_urls.n; i++) {
		const keeld_url_t *u = &cfg->listen_peer_urls.v[i];
		if (peer_net_listen(s->peers, node_bind_host(u->host), u->port, err, errlen) != 0)
			return -1;
	}
	for (size_t i = 0; i < s->n_members; i++)
		node_peer_add(s, &s->members[i]);
	grpc_server_options_t go;
	grpc_server_options_default(&go);
	go.max_recv_msg_size = cfg->max_request_bytes + 512 * 1024; /* etcd's gRPC overhead */
	size_t n_methods = node_methods(s);
	if (!n_methods ||
	    grpc_server_new(s->loop, s->node->methods, n_methods, s, &go, &s->grpc) != 0) {
		snprintf(err, errlen, "cannot create the gRPC server");
		return -1;
	}
	for (size_t i = 0; i < cfg->listen_client_urls.n; i++) {
		const keeld_url_t *u = &cfg->listen_client_urls.v[i];
		if (grpc_server_listen(s->grpc, node_bind_host(u->host), u->port, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int keeld_start(keeld_t *s, const keeld_config_t *cfg, uv_loop_t *loop, char *err,
		size_t errlen)
{
	memset(s, 0, sizeof(*s));
	err[0] = 0;
	s->cfg = cfg;
	s->loop = loop;
	s->id = cfg->self_id;
	s->cluster_id = cfg->cluster_id;
	s->node = calloc(1, sizeof(*s->node));
	if (!s->node) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->next_req = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 8;
	if (uv_rwlock_init(&s->store_lock) != 0) {
		snprintf(err, errlen, "cannot create the store lock");
		return -1;
	}
	s->store_lock_init = true;
	for (size_t i = 0; i < cfg->n_members && i < KEELD_MAX_MEMBERS; i++) {
		keeld_member_t *m = &s->members[s->n_members++];
		m->id = cfg->members[i].id;
		node_join_urls(&cfg->members[i].peer_urls, m->peer_urls, sizeof(m->peer_urls));
		/* etcd's first members carry their --initial-cluster names from the start */
		snprintf(m->name, sizeof(m->name), "%s", cfg->members[i].name);
		if (m->id == s->id) {
			node_join_urls(&cfg->advertise_client_urls, m->client_urls,
				       sizeof(m->client_urls));
		}
	}
	if (node_open_storage(s, err, errlen))
		return -1;
	if (s->node->removed_stop_ms) {
		keeld_stop(s, 0); /* node_members_sync said why */
		return 0;
	}
	if (node_open_raft(s, err, errlen) || node_open_network(s, err, errlen))
		return -1;
	s->node->attrs_fast_until = keeld_now_ms() + 5000;
	uv_timer_init(loop, &s->tick_timer);
	s->tick_timer.data = s;
	uv_timer_start(&s->tick_timer, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	uv_check_init(loop, &s->check);
	s->check.data = s;
	uv_check_start(&s->check, on_check);
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	keeld_background(s);
	LOG_INFO("keeld %s: member %016llx (%s) of cluster %016llx, data in %s, applied %llu, "
		 "revision %lld", KEELD_VERSION, (unsigned long long)s->id, cfg->name,
		 (unsigned long long)s->cluster_id, cfg->data_dir, (unsigned long long)s->applied,
		 (long long)kv_revision(s->kv));
	return 0;
}

void keeld_stop(keeld_t *s, int exit_code)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->exit_code = exit_code;
	LOG_INFO("stopping");
	node_t *x = s->node;
	while (x && x->head)
		pending_fail(s, x->head, GRPC_UNAVAILABLE, "etcdserver: server stopped");
	reads_finish(s, &s->reads_wait, GRPC_UNAVAILABLE, "etcdserver: server stopped");
	reads_finish(s, &s->reads_new, GRPC_UNAVAILABLE, "etcdserver: server stopped");
	while (s->fwds) {
		keeld_fwd_t *f = s->fwds;
		s->fwds = f->next;
		if (f->fn)
			f->fn(s, f->ud, GRPC_UNAVAILABLE, "etcdserver: server stopped", NULL, 0);
		fwd_free(f);
	}
	if (s->grpc)
		grpc_server_close(s->grpc, NULL, NULL);
	if (s->peers)
		peer_net_close(s->peers, NULL, NULL);
	s->grpc = NULL;
	s->peers = NULL;
	if (uv_is_active((uv_handle_t *)&s->tick_timer) || s->tick_timer.data) {
		uv_close((uv_handle_t *)&s->tick_timer, NULL);
		uv_close((uv_handle_t *)&s->check, NULL);
		uv_close((uv_handle_t *)&s->idle, NULL);
	}
}

void keeld_free(keeld_t *s)
{
	if (s->raft)
		raft_node_free(s->raft);
	if (s->kv) {
		int rc = kv_sync(s->kv);
		if (rc != KV_OK)
			LOG_WARN("flushing the store: %s", kv_last_error(s->kv));
		kv_close(s->kv);
	}
	if (s->wal)
		raft_wal_close(s->wal);
	for (size_t i = 0; i < s->n_inbox; i++)
		raft_msg_free(s->inbox[i]);
	free(s->inbox);
	if (s->store_lock_init)
		uv_rwlock_destroy(&s->store_lock);
	if (s->node) {
		for (size_t i = 0; i < s->node->n_props; i++)
			free(s->node->props[i].data);
		free(s->node->props);
		free(s->node->methods);
		free(s->node->handlers);
		free(s->node);
	}
	memset(s, 0, sizeof(*s));
}
