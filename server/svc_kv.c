/* server/svc_kv.c — KV.Range on keeld: checks the request as etcd's gRPC layer does, then
 * reads the local store at once (serializable) or after a ReadIndex (linearizable). Never
 * builds the answer as messages: it goes from the store to the wire as packed bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "keeld.h"
#include "svc.h"

/* etcd 3.4's gRPC server sends messages up to math.MaxInt32 bytes and grpc-go refuses a
 * larger one with this status. */
#define RANGE_MAX_SEND 2147483647u

static void range_drained(void *arg, size_t upto)
{
	kv_packed_release(arg, upto);
}

static void range_release(void *arg)
{
	kv_packed_free(arg);
	free(arg);
}

static const grpc_msg_owner_t range_owner = { range_drained, range_release };

/* The answer is packed straight from the store into one buffer that the gRPC layer sends
 * without copying and gives back as it drains: a large range costs one copy of itself. */
static void range_now(keeld_t *s, grpc_call_t *call, const Etcdserverpb__RangeRequest *req)
{
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	keeld_header(s, &h);
	kv_packed_t *p = malloc(sizeof(*p));
	if (!p) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	int rc = kv_range_pack(s->kv, req, &h, RANGE_MAX_SEND, p);
	if (rc != KV_OK || !p->data) {
		size_t len = p->len;
		free(p);
		if (rc != KV_OK) {
			svc_fail_kv(call, rc);
		} else {
			char msg[128];
			snprintf(msg, sizeof(msg), "grpc: trying to send message larger than max "
				 "(%zu vs. %u)", len, RANGE_MAX_SEND);
			grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, msg);
		}
		return;
	}
	grpc_call_send_owned(call, p->data, p->len, &range_owner, p);
	grpc_call_finish(call, GRPC_OK, NULL);
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
