/* client/cluster.c — the Cluster service: member list, add, remove, update, promote. Only
 * the list is idempotent; a membership change retried after it left could apply twice. */
#include <stdlib.h>

#include "client_int.h"
#include "conv.h"

#define CLUSTER_PATH(m) "/etcdserverpb.Cluster/" m

/* Every member response is header + members (+ the new member for add): a table entry
 * names the method, whether it may be retried, and its answer type. */
typedef struct member_call {
	const char *path;
	bool idempotent;
	const ProtobufCMessageDescriptor *resp;
} member_call_t;

static int member_finish(const member_call_t *mc, ProtobufCMessage *resp,
			 keel_member_result_t **out, keel_error_t *err)
{
	keel_member_result_t *r = NULL;
	if (mc->resp == &etcdserverpb__member_add_response__descriptor) {
		Etcdserverpb__MemberAddResponse *m = (Etcdserverpb__MemberAddResponse *)resp;
		r = conv_member_result(m->header, m->member, m->n_members, m->members);
	} else if (mc->resp == &etcdserverpb__member_list_response__descriptor) {
		Etcdserverpb__MemberListResponse *m = (Etcdserverpb__MemberListResponse *)resp;
		r = conv_member_result(m->header, NULL, m->n_members, m->members);
	} else if (mc->resp == &etcdserverpb__member_remove_response__descriptor) {
		Etcdserverpb__MemberRemoveResponse *m = (Etcdserverpb__MemberRemoveResponse *)resp;
		r = conv_member_result(m->header, NULL, m->n_members, m->members);
	} else if (mc->resp == &etcdserverpb__member_update_response__descriptor) {
		Etcdserverpb__MemberUpdateResponse *m = (Etcdserverpb__MemberUpdateResponse *)resp;
		r = conv_member_result(m->header, NULL, m->n_members, m->members);
	} else {
		Etcdserverpb__MemberPromoteResponse *m =
			(Etcdserverpb__MemberPromoteResponse *)resp;
		r = conv_member_result(m->header, NULL, m->n_members, m->members);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	if (!r)
		return conv_oom(err);
	if (out)
		*out = r;
	else
		keel_member_result_free(r);
	return 0;
}

static int member_call(keel_t *k, const member_call_t *mc, const ProtobufCMessage *req,
		       int timeout_ms, keel_member_result_t **out, keel_error_t *err)
{
	if (out)
		*out = NULL;
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, mc->path, NULL, req, timeout_ms, mc->idempotent, mc->resp, &resp,
			   err);
	if (rc != 0)
		return rc;
	return member_finish(mc, resp, out, err);
}

static const member_call_t member_list_call = {
	CLUSTER_PATH("MemberList"), true, &etcdserverpb__member_list_response__descriptor,
};
static const member_call_t member_add_call = {
	CLUSTER_PATH("MemberAdd"), false, &etcdserverpb__member_add_response__descriptor,
};
static const member_call_t member_remove_call = {
	CLUSTER_PATH("MemberRemove"), false, &etcdserverpb__member_remove_response__descriptor,
};
static const member_call_t member_update_call = {
	CLUSTER_PATH("MemberUpdate"), false, &etcdserverpb__member_update_response__descriptor,
};
static const member_call_t member_promote_call = {
	CLUSTER_PATH("MemberPromote"), false, &etcdserverpb__member_promote_response__descriptor,
};

int keel_member_list(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		     keel_error_t *err)
{
	if (!k)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_member_list: no client");
	Etcdserverpb__MemberListRequest m = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
	return member_call(k, &member_list_call, &m.base, req ? req->timeout_ms : 0, out, err);
}

int keel_member_add(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		    keel_error_t *err)
{
	if (!k || !req || req->n_peer_urls == 0 || !req->peer_urls)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_member_add: no peer URL");
	Etcdserverpb__MemberAddRequest m = ETCDSERVERPB__MEMBER_ADD_REQUEST__INIT;
	m.n_peerurls = req->n_peer_urls;
	m.peerurls = (char **)(uintptr_t)req->peer_urls;
	m.islearner = req->is_learner;
	return member_call(k, &member_add_call, &m.base, req->timeout_ms, out, err);
}

int keel_member_remove(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		       keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_member_remove: missing argument");
	Etcdserverpb__MemberRemoveRequest m = ETCDSERVERPB__MEMBER_REMOVE_REQUEST__INIT;
	m.id = req->id;
	return member_call(k, &member_remove_call, &m.base, req->timeout_ms, out, err);
}

int keel_member_update(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		       keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_member_update: missing argument");
	Etcdserverpb__MemberUpdateRequest m = ETCDSERVERPB__MEMBER_UPDATE_REQUEST__INIT;
	m.id = req->id;
	m.n_peerurls = req->peer_urls ? req->n_peer_urls : 0;
	m.peerurls = (char **)(uintptr_t)req->peer_urls;
	return member_call(k, &member_update_call, &m.base, req->timeout_ms, out, err);
}

int keel_member_promote(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
			keel_error_t *err)
{
	if (!k || !req)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "keel_member_promote: missing argument");
	Etcdserverpb__MemberPromoteRequest m = ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
	m.id = req->id;
	return member_call(k, &member_promote_call, &m.base, req->timeout_ms, out, err);
}
