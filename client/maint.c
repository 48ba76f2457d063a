/* client/maint.c — the Maintenance service: status, hashkv, alarms, defragment, move-leader
 * and the snapshot stream, each addressed to one endpoint. Reads (status, hashkv, alarm
 * list) are idempotent; defragment, disarm and move-leader are never retried elsewhere. */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "conv.h"

#define MAINT_PATH(m) "/etcdserverpb.Maintenance/" m

int keel_status(keel_t *k, const keel_endpoint_req_t *req, keel_status_result_t **out,
		keel_error_t *err)
{
	if (!k || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_status: missing argument");
	*out = NULL;
	Etcdserverpb__StatusRequest m = ETCDSERVERPB__STATUS_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, MAINT_PATH("Status"), req ? req->endpoint : NULL, &m.base,
			   req ? req->timeout_ms : 0, true,
			   &etcdserverpb__status_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	*out = conv_status_result((Etcdserverpb__StatusResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return *out ? 0 : conv_oom(err);
}

int keel_hashkv(keel_t *k, const keel_endpoint_req_t *req, keel_hashkv_result_t *out,
		keel_error_t *err)
{
	if (!k || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_hashkv: missing argument");
	Etcdserverpb__HashKVRequest m = ETCDSERVERPB__HASH_KVREQUEST__INIT;
	m.revision = req ? req->revision : 0;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, MAINT_PATH("HashKV"), req ? req->endpoint : NULL, &m.base,
			   req ? req->timeout_ms : 0, true,
			   &etcdserverpb__hash_kvresponse__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	Etcdserverpb__HashKVResponse *r = (Etcdserverpb__HashKVResponse *)resp;
	conv_header(&out->header, r->header);
	out->hash = r->hash;
	out->compact_revision = r->compact_revision;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int keel_defragment(keel_t *k, const keel_endpoint_req_t *req, keel_header_t *out,
		    keel_error_t *err)
{
	if (!k)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_defragment: no client");
	Etcdserverpb__DefragmentRequest m = ETCDSERVERPB__DEFRAGMENT_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, MAINT_PATH("Defragment"), req ? req->endpoint : NULL, &m.base,
			   req ? req->timeout_ms : 0, false,
			   &etcdserverpb__defragment_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		conv_header(out, ((Etcdserverpb__DefragmentResponse *)resp)->header);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* The leader's client URL, found as etcdctl would: ask the current endpoint who leads,
 * then the membership for that member's client URLs. *url is malloc'ed. */
static int maint_find_leader(keel_t *k, int timeout_ms, char **url, keel_error_t *err)
{
	keel_endpoint_req_t sreq = { .timeout_ms = timeout_ms };
	keel_status_result_t *st;
	int rc = keel_status(k, &sreq, &st, err);
	if (rc != 0)
		return rc;
	uint64_t leader = st->leader;
	keel_status_result_free(st);
	if (leader == 0)
		return keel_error_set(err, KEEL_CODE_UNAVAILABLE, "etcdserver: no leader");
	keel_member_req_t mreq = { .timeout_ms = timeout_ms };
	keel_member_result_t *ml;
	rc = keel_member_list(k, &mreq, &ml, err);
	if (rc != 0)
		return rc;
	*url = NULL;
	/* The first match only: a membership that names the leader twice must not leak. */
	for (size_t i = 0; i < ml->n_members && !*url; i++) {
		if (ml->members[i].id == leader && ml->members[i].n_client_urls > 0) {
			*url = strdup(ml->members[i].client_urls[0]);
			if (!*url) {
				keel_member_result_free(ml);
				return conv_oom(err);
			}
		}
	}
	keel_member_result_free(ml);
	if (!*url)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "move-leader: no client URL for leader %016llx",
				      (unsigned long long)leader);
	return 0;
}

int keel_move_leader(keel_t *k, const keel_endpoint_req_t *req, keel_header_t *out,
		     keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_move_leader: missing argument");
	char *leader_url = NULL;
	const char *ep = req->endpoint;
	if (!ep) {
		int rc = maint_find_leader(k, req->timeout_ms, &leader_url, err);
		if (rc != 0)
			return rc;
		ep = leader_url;
	}
	Etcdserverpb__MoveLeaderRequest m = ETCDSERVERPB__MOVE_LEADER_REQUEST__INIT;
	m.targetid = req->target_id;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, MAINT_PATH("MoveLeader"), ep, &m.base, req->timeout_ms, false,
			   &etcdserverpb__move_leader_response__descriptor, &resp, err);
	free(leader_url);
	if (rc != 0)
		return rc;
	if (out)
		conv_header(out, ((Etcdserverpb__MoveLeaderResponse *)resp)->header);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int maint_alarm(keel_t *k, const keel_endpoint_req_t *req,
		       const Etcdserverpb__AlarmRequest *m, Etcdserverpb__AlarmResponse **resp,
		       keel_error_t *err)
{
	bool get = m->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET;
	return conv_call(k->t, MAINT_PATH("Alarm"), req ? req->endpoint : NULL, &m->base,
			 req ? req->timeout_ms : 0, get,
			 &etcdserverpb__alarm_response__descriptor, (ProtobufCMessage **)resp,
			 err);
}

int keel_alarm_list(keel_t *k, const keel_endpoint_req_t *req, keel_alarm_result_t **out,
		    keel_error_t *err)
{
	if (!k || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_alarm_list: missing argument");
	*out = NULL;
	Etcdserverpb__AlarmRequest m = ETCDSERVERPB__ALARM_REQUEST__INIT;
	m.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET;
	Etcdserverpb__AlarmResponse *resp;
	int rc = maint_alarm(k, req, &m, &resp, err);
	if (rc != 0)
		return rc;
	*out = conv_alarm_result(resp);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return *out ? 0 : conv_oom(err);
}

/* Appends the alarms of r to acc (header taken from r). */
static int maint_alarm_append(keel_alarm_result_t *acc, const Etcdserverpb__AlarmResponse *r)
{
	conv_header(&acc->header, r->header);
	if (r->n_alarms == 0)
		return 0;
	keel_alarm_t *a = realloc(acc->alarms, (acc->n_alarms + r->n_alarms) * sizeof(*a));
	if (!a)
		return -1;
	for (size_t i = 0; i < r->n_alarms; i++) {
		a[acc->n_alarms + i].member_id = r->alarms[i]->memberid;
		a[acc->n_alarms + i].alarm = (keel_alarm_type_t)r->alarms[i]->alarm;
	}
	acc->alarms = a;
	acc->n_alarms += r->n_alarms;
	return 0;
}

/* Member 0 and type NONE disarm every raised alarm one by one, as etcd's client does;
 * the result lists what was disarmed. */
int keel_alarm_disarm(keel_t *k, const keel_endpoint_req_t *req, const keel_alarm_t *alarm,
		      keel_alarm_result_t **out, keel_error_t *err)
{
	if (!k || !alarm)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_alarm_disarm: missing argument");
	if (out)
		*out = NULL;
	keel_alarm_result_t *list = NULL;
	keel_alarm_t one = *alarm;
	const keel_alarm_t *todo = &one;
	size_t n_todo = 1;
	if (alarm->member_id == 0 && alarm->alarm == KEEL_ALARM_NONE) {
		int rc = keel_alarm_list(k, req, &list, err);
		if (rc != 0)
			return rc;
		todo = list->alarms;
		n_todo = list->n_alarms;
	}
	keel_alarm_result_t *acc = calloc(1, sizeof(*acc));
	if (!acc) {
		keel_alarm_result_free(list);
		return conv_oom(err);
	}
	if (list)
		acc->header = list->header;
	int rc = 0;
	for (size_t i = 0; i < n_todo && rc == 0; i++) {
		Etcdserverpb__AlarmRequest m = ETCDSERVERPB__ALARM_REQUEST__INIT;
		m.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE;
		m.memberid = todo[i].member_id;
		m.alarm = (Etcdserverpb__AlarmType)todo[i].alarm;
		Etcdserverpb__AlarmResponse *resp;
		rc = maint_alarm(k, req, &m, &resp, err);
		if (rc != 0)
			break;
		if (maint_alarm_append(acc, resp) != 0)
			rc = conv_oom(err);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	keel_alarm_result_free(list);
	if (rc != 0 || !out)
		keel_alarm_result_free(acc);
	else
		*out = acc;
	return rc;
}

typedef struct snap_ctx {
	keel_snapshot_fn fn;
	void *ud;
	bool bad;                    /* a message did not parse */
	bool aborted;                /* fn asked to stop */
} snap_ctx_t;

static int maint_snapshot_msg(void *ud, const uint8_t *msg, size_t len)
{
	snap_ctx_t *c = ud;
	Etcdserverpb__SnapshotResponse *r = etcdserverpb__snapshot_response__unpack(NULL, len, msg);
	if (!r) {
		c->bad = true;
		return 1;
	}
	int stop = c->fn(c->ud, r->blob.data, r->blob.len, r->remaining_bytes);
	etcdserverpb__snapshot_response__free_unpacked(r, NULL);
	if (stop)
		c->aborted = true;
	return stop;
}

int keel_snapshot(keel_t *k, const keel_endpoint_req_t *req, keel_snapshot_fn fn, void *ud,
		  keel_error_t *err)
{
	if (!k || !fn)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_snapshot: missing argument");
	Etcdserverpb__SnapshotRequest m = ETCDSERVERPB__SNAPSHOT_REQUEST__INIT;
	uint8_t buf[8];
	size_t len = etcdserverpb__snapshot_request__pack(&m, buf);
	snap_ctx_t c = { .fn = fn, .ud = ud };
	int timeout = req && req->timeout_ms > 0 ? req->timeout_ms : -1;
	int rc = kt_server_stream(k->t, MAINT_PATH("Snapshot"), req ? req->endpoint : NULL, buf,
				  len, timeout, maint_snapshot_msg, &c, err);
	if (c.bad)
		return keel_error_set(err, KEEL_CODE_INTERNAL,
				      "grpc: failed to unmarshal the received message");
	if (c.aborted)
		return keel_error_set(err, KEEL_CODE_CANCELLED, "snapshot aborted by the caller");
	return rc;
}
