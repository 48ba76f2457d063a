/* server/svc_kv.c — KV.Range on keeld: checks the request as etcd's gRPC layer does, then
 * reads the local store at once (serializable) or after a ReadIndex (linearizable). */
#include <stdlib.h>

#include "keeld.h"
#include "svc.h"

static void range_now(keeld_t *s, grpc_call_t *call, const Etcdserverpb__RangeRequest *req)
{
	Etcdserverpb__RangeResponse *resp = NULL;
	int rc = kv_range(s->kv, req, &resp);
	if (rc != KV_OK) {
		svc_fail_kv(call, rc);
		return;
	}
	svc_reply(s, call, &resp->base, resp->header, true);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void range_read_done(keeld_t *s, void *ud, int status, const char *message)
{
	svc_call_t *c = ud;
	if (status != 0) {
		svc_fail(c->call, status, message);
		return;
	}
	range_now(s, c->call, (Etcdserverpb__RangeRequest *)c->req);
}

static bool range_sort_ok(const Etcdserverpb__RangeRequest *r)
{
	return r->sort_order >= 0 && r->sort_order <= 2 && r->sort_target >= 0 &&
	       r->sort_target <= 4;
}

void svc_range_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__RangeRequest *req = (Etcdserverpb__RangeRequest *)svc_decode(
		call, &etcdserverpb__range_request__descriptor, msg, len);
	if (!req)
		return;
	if (req->key.len == 0) {
		svc_fail(call, GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
	} else if (!range_sort_ok(req)) {
		svc_fail(call, GRPC_INVALID_ARGUMENT, "etcdserver: invalid sort option");
	} else if (req->serializable) {
		range_now(s, call, req);
	} else {
		svc_call_t *c = svc_call_new(s, call);
		if (c) {
			c->req = &req->base;
			keeld_read(s, range_read_done, c);
			return;
		}
	}
	protobuf_c_message_free_unpacked(&req->base, NULL);
}
