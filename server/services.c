/* server/services.c — etcd's v3 unary services on keeld: KV writes and Lease (Range, Watch,
 * Cluster and Maintenance have files of their own), and the helpers every service file
 * shares. Each handler decodes its request, checks it the way etcd's gRPC layer does, and
 * answers through raft (writes) or the leader (lease renewals and TTLs).
 * Errors carry etcd's gRPC status codes and texts to the letter, because etcd's clients
 * compare them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keeld.h"
#include "pbcheck.h"
#include "svc.h"

/* ---- call contexts ------------------------------------------------------------------ */

svc_call_t *svc_call_new(keeld_t *s, grpc_call_t *call)
{
	svc_call_t *c = calloc(1, sizeof(*c));
	if (!c) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return NULL;
	}
	c->s = s;
	c->call = call;
	grpc_call_set_user(call, c);
	return c;
}

void svc_on_close(void *ud, grpc_call_t *call)
{
	keeld_t *s = ud;
	svc_call_t *c = grpc_call_user(call);
	if (!c)
		return;
	grpc_call_set_user(call, NULL);
	keeld_forget(s, c);
	if (c->req)
		protobuf_c_message_free_unpacked(c->req, NULL);
	free(c);
}

void svc_fail(grpc_call_t *call, int status, const char *message)
{
	grpc_call_finish(call, status, message);
}

void svc_fail_kv(grpc_call_t *call, int kv_err)
{
	const char *msg;
	int st = keeld_kv_status(kv_err, &msg);
	if (kv_err == KV_ERR_QUOTA) /* etcd's ErrGRPCNoSpace, whatever node.c's table says */
		st = GRPC_RESOURCE_EXHAUSTED;
	grpc_call_finish(call, st, msg);
}

/* etcd's clients ask "hasleader" (clientv3.WithRequireLeader, which etcdctl's watch uses)
 * to hear at once that the member has no leader, instead of waiting for a timeout. */
bool svc_leader_ok(keeld_t *s, grpc_call_t *call)
{
	if (s->lead != RAFT_NONE || !grpc_call_header(call, "hasleader"))
		return true;
	grpc_call_finish(call, GRPC_UNAVAILABLE, "etcdserver: no leader");
	return false;
}

/* Sends one response message (header filled) and, for unary calls, the OK status. */
void svc_reply(keeld_t *s, grpc_call_t *call, ProtobufCMessage *resp,
	       Etcdserverpb__ResponseHeader *h, bool finish)
{
	keeld_header(s, h);
	if (h && h->revision < 0)
		h->revision = 0;
	size_t len = protobuf_c_message_get_packed_size(resp);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	protobuf_c_message_pack(resp, buf);
	grpc_call_send(call, buf, len);
	free(buf);
	if (finish)
		grpc_call_finish(call, GRPC_OK, NULL);
}

/* grpc-go's answer to bytes that do not decode as the method's request: Internal, with the
 * decoder's own text (pbcheck.c gives etcd's). */
void svc_bad_message(grpc_call_t *call, const char *why)
{
	char msg[600];
	snprintf(msg, sizeof(msg), "grpc: error unmarshalling request: %s", why);
	grpc_call_finish(call, GRPC_INTERNAL, msg);
}

ProtobufCMessage *svc_decode(grpc_call_t *call, const ProtobufCMessageDescriptor *d,
			     const uint8_t *msg, size_t len)
{
	char why[512];
	uint8_t *clean;
	size_t clean_len;
	if (pb_check(d, msg, len, why, sizeof(why), &clean, &clean_len) != 0) {
		svc_bad_message(call, why);
		return NULL;
	}
	ProtobufCMessage *m = clean ? protobuf_c_message_unpack(d, NULL, clean_len, clean)
				    : protobuf_c_message_unpack(d, NULL, len, msg);
	free(clean);
	if (!m) /* what etcd accepts and protobuf-c does not (a group deep inside) */
		svc_bad_message(call, "keeld: unsupported encoding (a group field)");
	return m;
}

static Etcdserverpb__ResponseHeader *svc_resp_header(ProtobufCMessage *resp)
{
	/* Every etcd response keeps its header in field 1. */
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(resp->descriptor, 1);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	Etcdserverpb__ResponseHeader **hp =
		(Etcdserverpb__ResponseHeader **)((char *)resp + f->offset);
	if (!*hp) {
		*hp = malloc(sizeof(**hp));
		if (*hp)
			etcdserverpb__response_header__init(*hp);
	}
	return *hp;
}

/* ---- KV ------------------------------------------------------------------------------ */

/* A write's entry applied (or failed): answer the call. */
static void write_done(keeld_t *s, void *ud, kv_result_t *res, int status, const char *message)
{
	svc_call_t *c = ud;
	if (!res) {
		svc_fail(c->call, status, message);
		return;
	}
	if (res->err) {
		svc_fail_kv(c->call, res->err);
	} else if (res->resp) {
		svc_reply(s, c->call, res->resp, svc_resp_header(res->resp), true);
	} else {
		svc_fail(c->call, GRPC_INTERNAL, "etcdserver: no response for the request");
	}
	if (res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
}

/* Checks and proposes a write; the request message stays with the call until it ends. */
static void svc_write(keeld_t *s, grpc_call_t *call, ProtobufCMessage *req,
		      Etcdserverpb__InternalRaftRequest *ir)
{
	/* etcd checks the quota first (its quota servers wrap the KV and Lease servers). */
	if (!svc_quota_ok(s, call, ir)) {
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}
	int rc = kv_check_request(s->kv, ir);
	if (rc != KV_OK) {
		svc_fail_kv(call, rc);
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}
	svc_call_t *c = svc_call_new(s, call);
	if (!c) {
		protobuf_c_message_free_unpacked(req, NULL);
		return;
	}
	c->req = req;
	keeld_propose(s, ir, write_done, c);
}

static void kv_put_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	Etcdserverpb__PutRequest *req = (Etcdserverpb__PutRequest *)svc_decode(
		call, &etcdserverpb__put_request__descriptor, msg, len);
	if (!req)
		return;
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.put = req;
	svc_write(ud, call, &req->base, &ir);
}

static void kv_delete_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	Etcdserverpb__DeleteRangeRequest *req = (Etcdserverpb__DeleteRangeRequest *)svc_decode(
		call, &etcdserverpb__delete_range_request__descriptor, msg, len);
	if (!req)
		return;
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.delete_range = req;
	svc_write(ud, call, &req->base, &ir);
}

static void kv_txn_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	Etcdserverpb__TxnRequest *req = (Etcdserverpb__TxnRequest *)svc_decode(
		call, &etcdserverpb__txn_request__descriptor, msg, len);
	if (!req)
		return;
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.txn = req;
	svc_write(ud, call, &req->base, &ir);
}

static void kv_compact_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__CompactionRequest *req = (Etcdserverpb__CompactionRequest *)svc_decode(
		call, &etcdserverpb__compaction_request__descriptor, msg, len);
	if (!req)
		return;
	/* etcd refuses these before proposing, so they never enter the log. */
	/* kv_compact_revision is 0 for a store never compacted, which etcd takes as below
	 * revision 0 (compacting to 0 succeeds); apply has the final word either way. */
	int64_t compacted = kv_compact_revision(s->kv);
	if (req->revision < 0 || (compacted > 0 && req->revision <= compacted)) {
		svc_fail_kv(call, KV_ERR_COMPACTED);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	if (req->revision > kv_revision(s->kv)) {
		svc_fail_kv(call, KV_ERR_FUTURE_REV);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.compaction = req;
	svc_write(s, call, &req->base, &ir);
}

/* ---- Lease ---------------------------------------------------------------------------- */

static void lease_grant_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__LeaseGrantRequest *req = (Etcdserverpb__LeaseGrantRequest *)svc_decode(
		call, &etcdserverpb__lease_grant_request__descriptor, msg, len);
	if (!req)
		return;
	if (req->ttl > KV_MAX_LEASE_TTL) {
		svc_fail_kv(call, KV_ERR_LEASE_TTL_TOO_LARGE);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	if (req->id == 0)
		req->id = kv_lease_new_id(s->kv);
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.lease_grant = req;
	svc_write(s, call, &req->base, &ir);
}

static void lease_revoke_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	Etcdserverpb__LeaseRevokeRequest *req = (Etcdserverpb__LeaseRevokeRequest *)svc_decode(
		call, &etcdserverpb__lease_revoke_request__descriptor, msg, len);
	if (!req)
		return;
	Etcdserverpb__InternalRaftRequest ir = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	ir.lease_revoke = req;
	svc_write(ud, call, &req->base, &ir);
}

/* A forwarded answer: the leader packed the response; this member sends it on with its
 * own header, as etcd fills every header on the member the client asked (the leader's
 * revision stays). */
static void fwd_relay(keeld_t *s, grpc_call_t *call, const ProtobufCMessageDescriptor *d,
		      const uint8_t *resp, size_t len, bool finish)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, resp);
	if (!m) {
		svc_fail(call, GRPC_INTERNAL, "etcdserver: bad answer from the leader");
		return;
	}
	svc_reply(s, call, m, svc_resp_header(m), finish);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void fwd_unary_done(keeld_t *s, void *ud, int status, const char *message,
			   const uint8_t *resp, size_t len)
{
	svc_call_t *c = ud;
	if (status != 0) {
		svc_fail(c->call, status, message);
		return;
	}
	fwd_relay(s, c->call, &etcdserverpb__lease_time_to_live_response__descriptor, resp, len,
		  true);
}

static void lease_ttl_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__lease_time_to_live_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	svc_call_t *c = svc_call_new(s, call);
	if (c)
		keeld_forward(s, KEELD_FWD_LEASE_TTL, msg, len, fwd_unary_done, c);
}

static void lease_leases_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__lease_leases_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	Etcdserverpb__LeaseLeasesResponse *resp = NULL;
	int rc = kv_lease_leases(s->kv, &resp);
	if (rc != KV_OK) {
		svc_fail_kv(call, rc);
		return;
	}
	svc_reply(s, call, &resp->base, resp->header, true);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* The keep-alive stream: each request renews on the leader, each answer goes back in
 * order of arrival from the leader. */
static void keepalive_done(keeld_t *s, void *ud, int status, const char *message,
			   const uint8_t *resp, size_t len)
{
	svc_call_t *c = ud;
	c->renews_in_flight--;
	if (status != 0) {
		svc_fail(c->call, status, message);
		return;
	}
	fwd_relay(s, c->call, &etcdserverpb__lease_keep_alive_response__descriptor, resp, len,
		  false);
	if (c->half_closed && c->renews_in_flight == 0)
		grpc_call_finish(c->call, GRPC_OK, NULL);
}

static void lease_keepalive_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	svc_call_t *c = grpc_call_user(call);
	if (!c && !(c = svc_call_new(s, call)))
		return;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__lease_keep_alive_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	c->renews_in_flight++;
	keeld_forward(s, KEELD_FWD_LEASE_RENEW, msg, len, keepalive_done, c);
}

static void keepalive_half_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	svc_call_t *c = grpc_call_user(call);
	if (c && c->renews_in_flight > 0)
		c->half_closed = true;
	else
		grpc_call_finish(call, GRPC_OK, NULL);
}

/* The member that received the call checked the request as etcd would (svc_decode)
 * before forwarding it, so only a broken peer frame gets here. */
#define FWD_UNDECODABLE "keeld: a forwarded request does not decode"

/* On the leader: answers a request forwarded by a member (or by itself). */
void keeld_serve_forwarded(keeld_t *s, uint64_t from, uint64_t req_id, uint32_t method,
			   const uint8_t *req, size_t len, keeld_reply_fn reply)
{
	if (s->state != RAFT_LEADER) {
		reply(s, from, req_id, GRPC_UNAVAILABLE, "etcdserver: not leader", NULL, 0);
		return;
	}
	ProtobufCMessage *resp = NULL;
	Etcdserverpb__ResponseHeader *h = NULL;
	if (method == KEELD_FWD_LEASE_RENEW) {
		Etcdserverpb__LeaseKeepAliveRequest *r = etcdserverpb__lease_keep_alive_request__unpack(
			NULL, len, req);
		if (!r) {
			reply(s, from, req_id, GRPC_INTERNAL, FWD_UNDECODABLE, NULL, 0);
			return;
		}
		int64_t ttl = 0;
		int rc = kv_lease_renew(s->kv, r->id, &ttl);
		Etcdserverpb__LeaseKeepAliveResponse ka;
		Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
		etcdserverpb__lease_keep_alive_response__init(&ka);
		ka.header = &hdr;
		ka.id = r->id;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (rc == KV_ERR_NOT_PRIMARY) {
			reply(s, from, req_id, GRPC_UNAVAILABLE, "etcdserver: no leader", NULL, 0);
			return;
		}
		/* A grant answered by a follower that applied it first: the leader has it
		 * committed but not yet applied. The forwarder asks again. */
		if (rc == KV_ERR_LEASE_NOT_FOUND && s->applied < s->commit) {
			reply(s, from, req_id, GRPC_UNAVAILABLE,
			      "etcdserver: request timed out, waiting for the applied index took too long",
			      NULL, 0);
			return;
		}
		if (rc != KV_OK && rc != KV_ERR_LEASE_NOT_FOUND) {
			const char *msg;
			int st = keeld_kv_status(rc, &msg);
			reply(s, from, req_id, st, msg, NULL, 0);
			return;
		}
		/* etcd answers TTL 0 for a lease it does not know: the client's "expired" */
		if (rc == KV_ERR_LEASE_NOT_FOUND)
			LOG_DEBUG("keep-alive of unknown lease %016llx", (unsigned long long)ka.id);
		ka.ttl = rc == KV_OK ? ttl : 0;
		keeld_header(s, &hdr);
		uint8_t buf[128];
		size_t n = etcdserverpb__lease_keep_alive_response__pack(&ka, buf);
		reply(s, from, req_id, GRPC_OK, NULL, buf, n);
		return;
	}
	if (method == KEELD_FWD_LEASE_TTL) {
		Etcdserverpb__LeaseTimeToLiveRequest *r =
			etcdserverpb__lease_time_to_live_request__unpack(NULL, len, req);
		if (!r) {
			reply(s, from, req_id, GRPC_INTERNAL, FWD_UNDECODABLE, NULL, 0);
			return;
		}
		Etcdserverpb__LeaseTimeToLiveResponse *tr = NULL;
		int rc = kv_lease_time_to_live(s->kv, r, &tr);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (rc != KV_OK) {
			const char *msg;
			int st = keeld_kv_status(rc, &msg);
			reply(s, from, req_id, st, msg, NULL, 0);
			return;
		}
		resp = &tr->base;
		h = tr->header;
	}
	if (!resp) {
		reply(s, from, req_id, GRPC_UNIMPLEMENTED, "keeld: unknown forwarded method", NULL, 0);
		return;
	}
	keeld_header(s, h);
	size_t n = protobuf_c_message_get_packed_size(resp);
	uint8_t *buf = malloc(n ? n : 1);
	if (buf) {
		protobuf_c_message_pack(resp, buf);
		reply(s, from, req_id, GRPC_OK, NULL, buf, n);
	} else {
		reply(s, from, req_id, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory", NULL, 0);
	}
	free(buf);
	protobuf_c_message_free_unpacked(resp, NULL);
}

/* ---- the method table ------------------------------------------------------------------ */

const grpc_method_t keeld_methods[] = {
	{"/etcdserverpb.KV/Range", false, svc_range_msg, NULL, svc_on_close},
	{"/etcdserverpb.KV/Put", false, kv_put_msg, NULL, svc_on_close},
	{"/etcdserverpb.KV/DeleteRange", false, kv_delete_msg, NULL, svc_on_close},
	{"/etcdserverpb.KV/Txn", false, kv_txn_msg, NULL, svc_on_close},
	{"/etcdserverpb.KV/Compact", false, kv_compact_msg, NULL, svc_on_close},
	{"/etcdserverpb.Watch/Watch", true, svc_watch_msg, svc_watch_half_close,
	 svc_watch_close},
	{"/etcdserverpb.Lease/LeaseGrant", false, lease_grant_msg, NULL, svc_on_close},
	{"/etcdserverpb.Lease/LeaseRevoke", false, lease_revoke_msg, NULL, svc_on_close},
	{"/etcdserverpb.Lease/LeaseKeepAlive", true, lease_keepalive_msg, keepalive_half_close,
	 svc_on_close},
	{"/etcdserverpb.Lease/LeaseTimeToLive", false, lease_ttl_msg, NULL, svc_on_close},
	{"/etcdserverpb.Lease/LeaseLeases", false, lease_leases_msg, NULL, svc_on_close},
	{"/etcdserverpb.Cluster/MemberList", false, svc_member_list_msg, NULL, svc_on_close},
	{"/etcdserverpb.Maintenance/Status", false, svc_status_msg, NULL, svc_on_close},
	{"/etcdserverpb.Maintenance/HashKV", false, svc_hash_kv_msg, NULL, svc_on_close},
	{"/etcdserverpb.Maintenance/Hash", false, svc_hash_msg, NULL, svc_hash_close},
	{"/etcdserverpb.Maintenance/Alarm", false, svc_alarm_msg, NULL, svc_on_close},
	{"/etcdserverpb.Maintenance/Defragment", false, svc_defrag_msg, NULL, svc_defrag_close},
	{"/etcdserverpb.Maintenance/MoveLeader", false, svc_move_leader_msg, NULL,
	 svc_move_leader_close},
	{"/etcdserverpb.Maintenance/Snapshot", true, svc_snapshot_msg, NULL, svc_snapshot_close},
};
const size_t keeld_n_methods = sizeof(keeld_methods) / sizeof(keeld_methods[0]);
