/* client/kv.c — the KV service's unary calls: range, put, delete, compact. Only reads are
 * idempotent (retried on another endpoint after Unavailable): a write retried after its
 * request left could apply twice. */
#include <stdlib.h>

#include "client_int.h"
#include "conv.h"

#define KV_PATH(m) "/etcdserverpb.KV/" m

int keel_range(keel_t *k, const keel_range_req_t *req, keel_range_result_t **out,
	       keel_error_t *err)
{
	if (!k || !req || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_range: missing argument");
	*out = NULL;
	Etcdserverpb__RangeRequest m;
	conv_range_req(&m, req);
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, KV_PATH("Range"), NULL, &m.base, req->timeout_ms, true,
			   &etcdserverpb__range_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	*out = conv_range_result((Etcdserverpb__RangeResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return *out ? 0 : conv_oom(err);
}

int keel_put(keel_t *k, const keel_put_req_t *req, keel_put_result_t **out, keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_put: missing argument");
	if (out)
		*out = NULL;
	Etcdserverpb__PutRequest m;
	conv_put_req(&m, req);
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, KV_PATH("Put"), NULL, &m.base, req->timeout_ms, false,
			   &etcdserverpb__put_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		*out = conv_put_result((Etcdserverpb__PutResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return !out || *out ? 0 : conv_oom(err);
}

int keel_delete(keel_t *k, const keel_delete_req_t *req, keel_delete_result_t **out,
		keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_delete: missing argument");
	if (out)
		*out = NULL;
	Etcdserverpb__DeleteRangeRequest m;
	conv_delete_req(&m, req);
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, KV_PATH("DeleteRange"), NULL, &m.base, req->timeout_ms, false,
			   &etcdserverpb__delete_range_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		*out = conv_delete_result((Etcdserverpb__DeleteRangeResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return !out || *out ? 0 : conv_oom(err);
}

int keel_compact(keel_t *k, const keel_compact_req_t *req, keel_header_t *out,
		 keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_compact: missing argument");
	Etcdserverpb__CompactionRequest m = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	m.revision = req->revision;
	m.physical = req->physical;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, KV_PATH("Compact"), NULL, &m.base, req->timeout_ms, false,
			   &etcdserverpb__compaction_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		conv_header(out, ((Etcdserverpb__CompactionResponse *)resp)->header);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}
