/* server/keeld.h — what keeld's own files share (not a public door): the server state, the
 * raft driver (node.c), the client services (services.c, svc_watch.c) and the log (log.c).
 * Everything here runs on the one loop thread, except the Ready's disk work, which node.c
 * hands to a libuv worker while raft is held (see node.c's top comment). */
#ifndef KEEL_SERVER_KEELD_H
#define KEEL_SERVER_KEELD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "grpc.h"
#include "kvstore.h"
#include "peer.h"
#include "raft.h"

#define KEELD_VERSION "0.1.0"
/* What Status reports as the server version: the etcd API level keeld speaks, because
 * etcd's clients read it to decide which features they may use. */
#define KEELD_API_VERSION "3.4.0"

/* ---- log.c ------------------------------------------------------------------------- */
void keeld_log_set_level(keeld_log_level_t lvl);
void keeld_log(keeld_log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG_DEBUG(...) keeld_log(KEELD_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) keeld_log(KEELD_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) keeld_log(KEELD_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) keeld_log(KEELD_LOG_ERROR, __VA_ARGS__)

/* ---- the server ---------------------------------------------------------------------- */

typedef struct keeld keeld_t;

/* What a proposal's owner learns when its entry applies (res != NULL), or why it never
 * will (res == NULL, status/message an etcd error). res->resp passes to the callback. */
typedef void (*keeld_done_fn)(keeld_t *s, void *ud, kv_result_t *res, int status,
			      const char *message);
/* A linearizable read may run now (status 0) or failed. */
typedef void (*keeld_read_fn)(keeld_t *s, void *ud, int status, const char *message);
/* A request forwarded to the leader came back: a packed response or an error. */
typedef void (*keeld_fwd_fn)(keeld_t *s, void *ud, int status, const char *message,
			     const uint8_t *resp, size_t len);

/* Member attributes learned from the configuration and from peers. */
typedef struct keeld_member {
	uint64_t id;
	char name[128];
	char peer_urls[1024];        /* comma-separated */
	char client_urls[1024];      /* comma-separated, empty until the member told us */
	bool is_learner;
} keeld_member_t;

typedef struct keeld_read keeld_read_t;
typedef struct keeld_fwd keeld_fwd_t;
typedef struct node node_t;          /* node.c's own state */

struct keeld {
	const keeld_config_t *cfg;
	uv_loop_t *loop;
	char member_dir[4096];       /* <data-dir>/member */
	raft_wal_t *wal;
	kv_t *kv;
	raft_node_t *raft;
	grpc_server_t *grpc;
	peer_net_t *peers;
	node_t *node;
	uint64_t id, cluster_id;
	keeld_member_t members[KEELD_MAX_MEMBERS];
	size_t n_members;

	/* Raft state as last seen in a Ready. */
	uint64_t lead, term, commit;
	raft_state_t state;
	uint64_t applied, snap_index;

	/* The Ready cycle: raft is held while its disk work runs on a worker thread; inputs
	 * that arrive meanwhile wait in queues (node.c). */
	bool held;
	raft_ready_t rd;
	uv_work_t work;
	int work_rc;
	char work_err[512];
	int held_ticks;
	raft_msg_t **inbox;
	size_t n_inbox, cap_inbox;
	bool snapshot_due;
	uint64_t snap_job_index;
	uint64_t next_req;

	/* Linearizable reads: a batch waits for one ReadIndex, then for apply. */
	keeld_read_t *reads_new, *reads_wait;
	uint64_t read_ctx;
	uint64_t read_index;         /* index the waiting batch may run at; 0 = not yet */
	uint64_t read_sent_ms;
	/* Requests forwarded to the leader. */
	keeld_fwd_t *fwds;

	/* Read-held by workers copying the store off the loop (svc_snapshot.c); a snapshot
	 * install write-holds it. */
	uv_rwlock_t store_lock;
	bool store_lock_init;
	/* The defragmentation under way (svc_maint.c), NULL if none; it frees itself. */
	struct svc_defrag *defrag;

	uv_timer_t tick_timer;
	uv_idle_t idle;
	uv_check_t check;            /* drives raft after each poll (node.c) */
	bool stopping;
	int exit_code;
};

/* node.c */
int keeld_start(keeld_t *s, const keeld_config_t *cfg, uv_loop_t *loop, char *err,
		size_t errlen);
void keeld_stop(keeld_t *s, int exit_code);
uint64_t keeld_now_ms(void);
/* Proposes an InternalRaftRequest (its header ID is set here). On a follower the entry
 * goes to the leader through raft. done runs exactly once. */
void keeld_propose(keeld_t *s, Etcdserverpb__InternalRaftRequest *req, keeld_done_fn done,
		   void *ud);
/* Forgets the owner of every pending proposal with this ud (its call went away). */
void keeld_forget(keeld_t *s, void *ud);
void keeld_read(keeld_t *s, keeld_read_fn fn, void *ud);
void keeld_forward(keeld_t *s, uint32_t method, const uint8_t *req, size_t len,
		   keeld_fwd_fn fn, void *ud);
void keeld_header(keeld_t *s, Etcdserverpb__ResponseHeader *h);
/* Starts the background steps (watchers catching up, physical compaction). */
void keeld_background(keeld_t *s);
/* Frees what keeld_start built, once the loop has no more handles of it. */
void keeld_free(keeld_t *s);
/* The etcd gRPC status code and message for a kv error. */
int keeld_kv_status(int kv_err, const char **message);

/* services.c */
extern const grpc_method_t keeld_methods[];
extern const size_t keeld_n_methods;
/* A forwarded request arriving at the leader: answers through reply. */
typedef void (*keeld_reply_fn)(keeld_t *s, uint64_t to, uint64_t req_id, int status,
			       const char *message, const uint8_t *resp, size_t len);
void keeld_serve_forwarded(keeld_t *s, uint64_t from, uint64_t req_id, uint32_t method,
			   const uint8_t *req, size_t len, keeld_reply_fn reply);

/* node.c: membership. Proposes a conf change (RAFT_CONF_*) about member m (its id; for an
 * add or an update its peer URLs), the member carried in the change's context. done runs
 * exactly once: res->resp is the MemberListResponse after the change, res->err set when
 * the change was refused at apply. */
void keeld_propose_conf_change(keeld_t *s, int type, const Etcdserverpb__Member *m,
			       keeld_done_fn done, void *ud);
/* svc_cluster.c: the members as etcd lists them, in id order, borrowing s->members (URLs
 * split into the view's own storage). malloc'd, too big for the loop thread's stack: free
 * it; NULL when out of memory. */
typedef struct keeld_member_view {
	size_t n;
	Etcdserverpb__Member ms[KEELD_MAX_MEMBERS], *mp[KEELD_MAX_MEMBERS];
	char peer[KEELD_MAX_MEMBERS][1024], client[KEELD_MAX_MEMBERS][1024];
	char *peer_v[KEELD_MAX_MEMBERS][KEELD_MAX_URLS], *client_v[KEELD_MAX_MEMBERS][KEELD_MAX_URLS];
} keeld_member_view_t;
keeld_member_view_t *keeld_members_view(keeld_t *s);
/* svc_cluster.c: the leader's side of a forwarded MemberPromote. */
void svc_cluster_serve_forwarded(keeld_t *s, uint64_t from, uint64_t req_id,
				 const uint8_t *req, size_t len, keeld_reply_fn reply);
/* A promotion travels to the leader, which alone knows whether the learner is in sync. */
enum { KEELD_FWD_MEMBER_PROMOTE = 100 };

/* Methods that travel to the leader (keeld_forward). */
enum { KEELD_FWD_LEASE_RENEW = 1, KEELD_FWD_LEASE_TTL = 2 };

/* Application frames on the peer transport. */
enum { KEELD_APP_FWD_REQ = 1, KEELD_APP_FWD_RESP = 2, KEELD_APP_MEMBER_ATTR = 3 };

#endif
