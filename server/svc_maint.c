/* server/svc_maint.c — etcd's Maintenance service on keeld, but for the Snapshot stream
 * (svc_snapshot.c): Status and HashKV. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keeld.h"
#include "svc.h"

void svc_status_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__status_request__descriptor, msg,
					   len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	resp.header = &hdr;
	resp.version = (char *)KEELD_API_VERSION;
	char path[4200];
	snprintf(path, sizeof(path), "%s/db", s->member_dir);
	struct stat st;
	if (stat(path, &st) == 0) {
		resp.dbsize = (int64_t)st.st_size;
		resp.dbsizeinuse = (int64_t)st.st_blocks * 512;
	}
	resp.leader = s->lead;
	char *errors[] = {(char *)"etcdserver: no leader"};
	if (s->lead == RAFT_NONE) {
		resp.n_errors = 1;
		resp.errors = errors;
	}
	resp.raftindex = s->commit;
	resp.raftterm = s->term;
	resp.raftappliedindex = s->applied;
	svc_reply(s, call, &resp.base, &hdr, true);
}

void svc_hash_kv_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	Etcdserverpb__HashKVRequest *req = (Etcdserverpb__HashKVRequest *)svc_decode(
		call, &etcdserverpb__hash_kvrequest__descriptor, msg, len);
	if (!req)
		return;
	uint32_t hash = 0;
	int64_t compact_rev = 0, hash_rev = 0;
	int rc = kv_hash_kv(s->kv, req->revision, &hash, &compact_rev, &hash_rev);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (rc != KV_OK) {
		svc_fail_kv(call, rc);
		return;
	}
	Etcdserverpb__HashKVResponse resp = ETCDSERVERPB__HASH_KVRESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	hdr.revision = hash_rev;
	resp.header = &hdr;
	resp.hash = hash;
	resp.compact_revision = compact_rev;
	svc_reply(s, call, &resp.base, &hdr, true);
}
