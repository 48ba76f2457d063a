/* client/conv.h — libkeel's conversions between etcd's protobuf-c messages and keel_* result
 * structs, and the typed unary call every API file uses (not a public door). Converters
 * never keep a pointer into the message: results own copies and free with one call. */
#ifndef KEEL_CLIENT_CONV_H
#define KEEL_CLIENT_CONV_H

#include <protobuf-c/protobuf-c.h>

#include "keel/keel.h"
#include "kv.pb-c.h"
#include "rpc.pb-c.h"
#include "transport.h"

/* Packs req, calls path with kt_unary and unpacks the answer as resp_desc (*resp is then
 * freed with protobuf_c_message_free_unpacked). An answer that does not parse gives
 * KEEL_CODE_INTERNAL. Returns 0 or the error code (err filled). */
int conv_call(kt_t *t, const char *path, const char *endpoint, const ProtobufCMessage *req,
	      int timeout_ms, bool idempotent, const ProtobufCMessageDescriptor *resp_desc,
	      ProtobufCMessage **resp, keel_error_t *err);
/* The error every converter reports on out of memory. */
int conv_oom(keel_error_t *err);

/* Response parts. A NULL header gives zeros. */
void conv_header(keel_header_t *out, const Etcdserverpb__ResponseHeader *h);
/* Copies a KeyValue (key and value NUL-terminated); -1 on out of memory (out cleared). */
int conv_kv(keel_kv_t *out, const Mvccpb__KeyValue *kv);
void conv_kv_clear(keel_kv_t *kv);
/* A malloc'ed copy of n bytes followed by a NUL (NULL on out of memory). */
uint8_t *conv_bytes(const void *p, size_t n);

/* Whole responses: NULL on out of memory (nothing leaks). */
keel_range_result_t *conv_range_result(const Etcdserverpb__RangeResponse *m);
keel_put_result_t *conv_put_result(const Etcdserverpb__PutResponse *m);
keel_delete_result_t *conv_delete_result(const Etcdserverpb__DeleteRangeResponse *m);
keel_txn_result_t *conv_txn_result(const Etcdserverpb__TxnResponse *m);
keel_lease_ttl_result_t *conv_lease_ttl_result(const Etcdserverpb__LeaseTimeToLiveResponse *m);
keel_lease_list_result_t *conv_lease_list_result(const Etcdserverpb__LeaseLeasesResponse *m);
/* Member responses share one shape: header, optional new member, membership. */
keel_member_result_t *conv_member_result(const Etcdserverpb__ResponseHeader *h,
					 const Etcdserverpb__Member *added, size_t n,
					 Etcdserverpb__Member *const *members);
keel_status_result_t *conv_status_result(const Etcdserverpb__StatusResponse *m);
keel_alarm_result_t *conv_alarm_result(const Etcdserverpb__AlarmResponse *m);
/* An event (kv and the optional prev_kv copied); -1 on out of memory (out cleared). */
int conv_event(keel_event_t *out, const Mvccpb__Event *e);
void conv_event_clear(keel_event_t *e);

/* Requests: fill a message that borrows the request's buffers (no copies, nothing to
 * free); the message must not outlive req. */
void conv_range_req(Etcdserverpb__RangeRequest *m, const keel_range_req_t *req);
void conv_put_req(Etcdserverpb__PutRequest *m, const keel_put_req_t *req);
void conv_delete_req(Etcdserverpb__DeleteRangeRequest *m, const keel_delete_req_t *req);

#endif
