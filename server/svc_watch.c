/* server/svc_watch.c — etcd's Watch service on keeld: one bidirectional stream carries any
 * number of watchers (create, cancel, progress requests in; created, events, cancels and
 * progress notifications out), with etcd 3.4's watch ids and answers. A client that reads
 * slowly makes its watchers fall behind (kvstore catches them up later from LMDB) instead
 * of growing the server's memory. */
#include <stdlib.h>
#include <string.h>

#include "svc.h"

/* Beyond this much unsent output on the stream, events wait in the store instead. */
#define WATCH_MAX_PENDING_BYTES (16u << 20)

typedef struct watch_ent {
	int64_t id;
	kv_watcher_t *w;
	struct watch_stream *ws;
	bool canceled;               /* the store canceled it (compaction); handle still ours */
	struct watch_ent *next;
} watch_ent_t;

typedef struct watch_stream {
	keeld_t *s;
	grpc_call_t *call;
	watch_ent_t *list;
	int64_t next_id;
} watch_stream_t;

static void ws_send(watch_stream_t *ws, Etcdserverpb__WatchResponse *r)
{
	size_t len = etcdserverpb__watch_response__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return;
	etcdserverpb__watch_response__pack(r, buf);
	grpc_call_send(ws->call, buf, len);
	free(buf);
}

/* The header every watch response carries: the store's revision as given (0 for a
 * compaction cancel, as etcd 3.4 sends), with this member's ids and term. */
static void ws_header(keeld_t *s, Etcdserverpb__ResponseHeader *h, int64_t revision)
{
	etcdserverpb__response_header__init(h);
	h->cluster_id = s->cluster_id;
	h->member_id = s->id;
	h->raft_term = s->term;
	h->revision = revision;
}

static int ws_deliver(void *ud, kv_watcher_t *w, const Etcdserverpb__WatchResponse *resp)
{
	(void)w;
	watch_ent_t *e = ud;
	watch_stream_t *ws = e->ws;
	if (grpc_call_pending_bytes(ws->call) > WATCH_MAX_PENDING_BYTES)
		return -1;
	Etcdserverpb__WatchResponse r = *resp;
	Etcdserverpb__ResponseHeader h;
	ws_header(ws->s, &h, resp->header ? resp->header->revision : 0);
	r.header = &h;
	ws_send(ws, &r);
	if (resp->canceled)
		e->canceled = true;
	return 0;
}

static watch_ent_t *ws_find(watch_stream_t *ws, int64_t id)
{
	for (watch_ent_t *e = ws->list; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

/* etcd 3.4 numbers watchers per stream from 0, skipping ids in use. */
static int64_t ws_next_id(watch_stream_t *ws)
{
	while (ws_find(ws, ws->next_id))
		ws->next_id++;
	return ws->next_id++;
}

/* A response without events: created, canceled, or progress (watch id -1), with the
 * store's current revision. */
static void ws_control(watch_stream_t *ws, int64_t id, bool created, bool canceled,
		       const char *cancel_reason)
{
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h;
	ws_header(ws->s, &h, kv_revision(ws->s->kv));
	r.header = &h;
	r.watch_id = id;
	r.created = created;
	r.canceled = canceled;
	if (cancel_reason)
		r.cancel_reason = (char *)cancel_reason;
	ws_send(ws, &r);
}

static void ws_created(watch_stream_t *ws, int64_t id, const char *cancel_reason)
{
	ws_control(ws, id, true, cancel_reason != NULL, cancel_reason);
}

static void ws_create(watch_stream_t *ws, const Etcdserverpb__WatchCreateRequest *creq)
{
	keeld_t *s = ws->s;
	if (creq->watch_id != 0 && ws_find(ws, creq->watch_id)) {
		ws_created(ws, -1, "mvcc: duplicate watch ID provided on the WatchStream");
		return;
	}
	watch_ent_t *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->ws = ws;
	e->id = creq->watch_id != 0 ? creq->watch_id : ws_next_id(ws);
	Etcdserverpb__WatchCreateRequest req = *creq;
	req.watch_id = e->id;
	/* Created goes first: the store may cancel at once (compacted start revision). */
	if (req.range_end.len && !(req.range_end.len == 1 && req.range_end.data[0] == 0)) {
		size_t n = req.key.len < req.range_end.len ? req.key.len : req.range_end.len;
		int c = memcmp(req.key.data, req.range_end.data, n);
		if (c > 0 || (c == 0 && req.key.len >= req.range_end.len)) {
			ws_created(ws, -1, "mvcc: watcher range is empty");
			free(e);
			return;
		}
	}
	ws_created(ws, e->id, NULL);
	int rc = kv_watch(s->kv, &req, ws_deliver, e, &e->w);
	if (rc != KV_OK) {
		if (e->w)
			kv_watch_cancel(s->kv, e->w);
		free(e);
		return;
	}
	e->next = ws->list;
	ws->list = e;
	keeld_background(s);
}

static void ws_cancel(watch_stream_t *ws, int64_t id)
{
	for (watch_ent_t **pp = &ws->list; *pp; pp = &(*pp)->next) {
		watch_ent_t *e = *pp;
		if (e->id != id)
			continue;
		*pp = e->next;
		kv_watch_cancel(ws->s->kv, e->w);
		bool was_canceled = e->canceled;
		free(e);
		if (!was_canceled)
			ws_control(ws, id, false, true, NULL);
		return;
	}
}

/* For the whole stream, as etcd 3.4 answers a progress request: watch id -1. */
static void ws_progress(watch_stream_t *ws)
{
	ws_control(ws, -1, false, false, NULL);
}

void svc_watch_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	watch_stream_t *ws = grpc_call_user(call);
	if (!ws && !svc_leader_ok(s, call))
		return;
	if (!ws) {
		ws = calloc(1, sizeof(*ws));
		if (!ws) {
			grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
			return;
		}
		ws->s = s;
		ws->call = call;
		grpc_call_set_user(call, ws);
	}
	Etcdserverpb__WatchRequest *req = (Etcdserverpb__WatchRequest *)svc_decode(
		call, &etcdserverpb__watch_request__descriptor, msg, len);
	if (!req)
		return;
	switch (req->request_union_case) {
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
		ws_create(ws, req->create_request);
		break;
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
		ws_cancel(ws, req->cancel_request->watch_id);
		break;
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
		ws_progress(ws);
		break;
	default:
		break;
	}
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* etcd keeps a watch stream open after the client half-closes it: events still flow
 * until the client cancels the call. */
void svc_watch_half_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	(void)call;
}

void svc_watch_close(void *ud, grpc_call_t *call)
{
	keeld_t *s = ud;
	watch_stream_t *ws = grpc_call_user(call);
	if (!ws)
		return;
	grpc_call_set_user(call, NULL);
	while (ws->list) {
		watch_ent_t *e = ws->list;
		ws->list = e->next;
		kv_watch_cancel(s->kv, e->w);
		free(e);
	}
	free(ws);
}
