/* server/svc.h — what the service files share: the per-call context and the reply and
 * error helpers (services.c), and the handlers of the other service files. */
#ifndef KEEL_SERVER_SVC_H
#define KEEL_SERVER_SVC_H

#include "keeld.h"

/* One unary call or keep-alive stream in flight; freed when the call closes, after
 * keeld_forget has detached it from everything that might still answer it. */
typedef struct svc_call {
	keeld_t *s;
	grpc_call_t *call;
	ProtobufCMessage *req;       /* the decoded request, kept until the call ends */
	/* Keep-alive streams: renews not answered yet, and whether the client half-closed
	 * (the stream ends once they are answered, as etcd answers what it read). */
	unsigned renews_in_flight;
	bool half_closed;
} svc_call_t;

svc_call_t *svc_call_new(keeld_t *s, grpc_call_t *call);
void svc_on_close(void *ud, grpc_call_t *call);
void svc_fail(grpc_call_t *call, int status, const char *message);
void svc_fail_kv(grpc_call_t *call, int kv_err);
void svc_bad_message(grpc_call_t *call, const char *why);
ProtobufCMessage *svc_decode(grpc_call_t *call, const ProtobufCMessageDescriptor *d,
			     const uint8_t *msg, size_t len);
bool svc_leader_ok(keeld_t *s, grpc_call_t *call);
void svc_reply(keeld_t *s, grpc_call_t *call, ProtobufCMessage *resp,
	       Etcdserverpb__ResponseHeader *h, bool finish);

void svc_watch_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_watch_half_close(void *ud, grpc_call_t *call);
void svc_watch_close(void *ud, grpc_call_t *call);

/* svc_kv.c: KV.Range. */
void svc_range_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
/* svc_cluster.c: the Cluster service. */
void svc_member_list_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
/* MemberAdd, MemberRemove, MemberUpdate, MemberPromote (node.c serves them alongside
 * keeld_methods, unless that table has them). */
extern const grpc_method_t svc_cluster_methods[];
extern const size_t svc_cluster_n_methods;
/* svc_maint.c: the Maintenance service but Snapshot. */
void svc_status_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_hash_kv_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_hash_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_hash_close(void *ud, grpc_call_t *call);
void svc_alarm_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_defrag_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_defrag_close(void *ud, grpc_call_t *call);
void svc_move_leader_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_move_leader_close(void *ud, grpc_call_t *call);
/* The write path's quota check (etcd's quotaKVServer/quotaLeaseServer): false when the
 * write would take the store over --quota-backend-bytes; then the call is answered with
 * etcd's NoSpace and this member's NOSPACE alarm is proposed. */
bool svc_quota_ok(keeld_t *s, grpc_call_t *call, const Etcdserverpb__InternalRaftRequest *ir);

/* svc_snapshot.c: Maintenance.Snapshot, a server stream of the store's copy. */
void svc_snapshot_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len);
void svc_snapshot_close(void *ud, grpc_call_t *call);

#endif
