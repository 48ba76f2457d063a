/* keel/keel.h — libkeel's public API: a client of a Keel (or etcd v3) cluster, and the same
 * API on an embedded store running inside the calling process (keel_open).
 *
 * Conventions
 * - Every call returns 0 on success or a non-zero status (a gRPC status code, KEEL_CODE_*,
 *   or KEEL_CODE_LOCAL for a failure inside this process); when err is not NULL it is
 *   filled with the code, etcd's error kind and the server's message, unchanged.
 * - Every request struct starts with timeout_ms: the call's deadline (0 = the client's
 *   default, <0 = none). Zero-initialise request structs, then set what you need.
 * - Results are owned by the caller and freed with the one matching *_free function.
 *   Byte strings in results are NUL-terminated after their length, for convenience.
 *
 * Threads
 * - A keel_t owns one I/O thread. Every blocking call may be made from any number of
 *   threads at once on the same handle, except from inside a callback of that same handle
 *   when callbacks are delivered on the caller's libuv loop (see keel_options_t.loop).
 * - Watch and keep-alive callbacks run one at a time, in order, either on the client's
 *   own callback thread (default; blocking calls on the handle are allowed there) or on
 *   the caller's libuv loop (keel_options_t.loop; the caller runs that loop).
 */
#ifndef KEEL_KEEL_H
#define KEEL_KEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KEEL_VERSION_MAJOR 0
#define KEEL_VERSION_MINOR 1
#define KEEL_VERSION_PATCH 0
#define KEEL_VERSION "0.1.0"
/* The library linked at run time (may differ from KEEL_VERSION, the headers compiled). */
const char *keel_version(void);

/* ---- errors ------------------------------------------------------------------------ */

/* gRPC status codes, as etcd returns them. */
enum {
	KEEL_CODE_OK = 0,
	KEEL_CODE_CANCELLED = 1,
	KEEL_CODE_UNKNOWN = 2,
	KEEL_CODE_INVALID_ARGUMENT = 3,
	KEEL_CODE_DEADLINE_EXCEEDED = 4,
	KEEL_CODE_NOT_FOUND = 5,
	KEEL_CODE_ALREADY_EXISTS = 6,
	KEEL_CODE_PERMISSION_DENIED = 7,
	KEEL_CODE_RESOURCE_EXHAUSTED = 8,
	KEEL_CODE_FAILED_PRECONDITION = 9,
	KEEL_CODE_ABORTED = 10,
	KEEL_CODE_OUT_OF_RANGE = 11,
	KEEL_CODE_UNIMPLEMENTED = 12,
	KEEL_CODE_INTERNAL = 13,
	KEEL_CODE_UNAVAILABLE = 14,
	KEEL_CODE_DATA_LOSS = 15,
	KEEL_CODE_UNAUTHENTICATED = 16,
	/* Not from a server: bad arguments, out of memory, a closed handle, a file error. */
	KEEL_CODE_LOCAL = 100,
};

/* etcd's errors a program may want to branch on, recognised from the server's message. */
typedef enum keel_errkind {
	KEEL_E_NONE = 0,
	KEEL_E_OTHER,                /* some other error: read code and message */
	KEEL_E_COMPACTED,            /* mvcc: required revision has been compacted */
	KEEL_E_FUTURE_REV,           /* mvcc: required revision is a future revision */
	KEEL_E_LEASE_NOT_FOUND,      /* etcdserver: requested lease not found */
	KEEL_E_LEASE_EXISTS,         /* etcdserver: lease already exists */
	KEEL_E_NO_LEADER,            /* etcdserver: no leader */
	KEEL_E_TIMEOUT,              /* etcdserver: request timed out (and its variants) */
	KEEL_E_DEADLINE,             /* the call's own deadline passed (context deadline exceeded) */
	KEEL_E_NO_SPACE,             /* etcdserver: mvcc: database space exceeded */
	KEEL_E_TOO_MANY_OPS,         /* etcdserver: too many operations in txn request */
	KEEL_E_DUPLICATE_KEY,        /* etcdserver: duplicate key given in txn request */
	KEEL_E_REQUEST_TOO_LARGE,    /* etcdserver: request is too large */
	KEEL_E_MEMBER_NOT_FOUND,     /* etcdserver: member not found */
	KEEL_E_UNAVAILABLE,          /* no endpoint could be reached */
	KEEL_E_CLOSED,               /* the handle or stream was closed */
} keel_errkind_t;

typedef struct keel_error {
	int code;                    /* KEEL_CODE_* */
	keel_errkind_t kind;
	char message[512];           /* the server's message as sent, or a local one */
} keel_error_t;

/* ---- the handle -------------------------------------------------------------------- */

typedef struct keel keel_t;
struct uv_loop_s;

/* Process-wide setup: ignores SIGPIPE (a dropped connection must not kill the program).
 * Call once before any other call; calling it again does nothing. */
int keel_init(void);

typedef struct keel_options {
	const char *const *endpoints; /* "host:port" or "http://host:port"; tried in order */
	size_t n_endpoints;
	int dial_timeout_ms;         /* connecting to one endpoint (default 5000) */
	int call_timeout_ms;         /* default deadline of a call (default 5000; <0 = none) */
	int keepalive_time_ms;       /* HTTP/2 PING after this much idle time (default 10000) */
	int keepalive_timeout_ms;    /* no PING ack within this: the connection is dead (3000) */
	/* NULL: callbacks run on the client's own callback thread. Otherwise they are posted
	 * to this loop: keel_connect/keel_open and keel_close must then be called on the
	 * thread that runs it (libuv handles are not thread-safe), and the loop must run once
	 * more after keel_close so the handle's last libuv handle can close. */
	struct uv_loop_s *loop;
} keel_options_t;
void keel_options_init(keel_options_t *opt);

/* Connects lazily: returns at once; the first call dials. Fails only on bad options. */
int keel_connect(const keel_options_t *opt, keel_t **out, keel_error_t *err);
/* Stops every watch and keep-alive of the handle (their callbacks are not called after
 * this returns) and frees the handle; for an embedded store it also stops the member.
 * No other thread may be inside a call on the handle, and it must not be called from one
 * of the handle's callbacks. */
void keel_close(keel_t *k);

/* ---- common result parts ----------------------------------------------------------- */

typedef struct keel_header {
	uint64_t cluster_id;
	uint64_t member_id;
	int64_t revision;
	uint64_t raft_term;
} keel_header_t;

typedef struct keel_kv {
	uint8_t *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	int64_t create_revision;     /* also the fencing token of a lock key */
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
} keel_kv_t;

/* ---- KV ---------------------------------------------------------------------------- */

/* range_end as in etcd: NULL/0 = the key alone; "\0" (len 1) = every key >= key;
 * keel_prefix_end computes the end of a prefix. */
typedef enum { KEEL_SORT_NONE = 0, KEEL_SORT_ASCEND = 1, KEEL_SORT_DESCEND = 2 } keel_sort_order_t;
typedef enum {
	KEEL_SORT_BY_KEY = 0, KEEL_SORT_BY_VERSION = 1, KEEL_SORT_BY_CREATE = 2,
	KEEL_SORT_BY_MOD = 3, KEEL_SORT_BY_VALUE = 4,
} keel_sort_target_t;

typedef struct keel_range_req {
	int timeout_ms;
	const void *key;
	size_t key_len;
	const void *range_end;
	size_t range_end_len;
	int64_t limit;
	int64_t revision;
	keel_sort_order_t sort_order;
	keel_sort_target_t sort_target;
	bool serializable;
	bool keys_only;
	bool count_only;
	int64_t min_mod_revision, max_mod_revision;
	int64_t min_create_revision, max_create_revision;
} keel_range_req_t;

typedef struct keel_range_result {
	keel_header_t header;
	keel_kv_t *kvs;
	size_t n_kvs;
	bool more;
	int64_t count;
} keel_range_result_t;

typedef struct keel_put_req {
	int timeout_ms;
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	int64_t lease;
	bool prev_kv;
	bool ignore_value;
	bool ignore_lease;
} keel_put_req_t;

typedef struct keel_put_result {
	keel_header_t header;
	keel_kv_t *prev_kv;          /* NULL unless asked for and the key existed */
} keel_put_result_t;

typedef struct keel_delete_req {
	int timeout_ms;
	const void *key;
	size_t key_len;
	const void *range_end;
	size_t range_end_len;
	bool prev_kv;
} keel_delete_req_t;

typedef struct keel_delete_result {
	keel_header_t header;
	int64_t deleted;
	keel_kv_t *prev_kvs;
	size_t n_prev_kvs;
} keel_delete_result_t;

typedef struct keel_compact_req {
	int timeout_ms;
	int64_t revision;
	bool physical;
} keel_compact_req_t;

/* Writes into buf (at least key_len bytes) the smallest key after every key with this
 * prefix; returns its length, or 1 with buf = "\0" when no such key exists (all 0xff). */
size_t keel_prefix_end(const void *prefix, size_t len, uint8_t *buf);

int keel_range(keel_t *k, const keel_range_req_t *req, keel_range_result_t **out,
	       keel_error_t *err);
void keel_range_result_free(keel_range_result_t *r);
int keel_put(keel_t *k, const keel_put_req_t *req, keel_put_result_t **out, keel_error_t *err);
void keel_put_result_free(keel_put_result_t *r);
int keel_delete(keel_t *k, const keel_delete_req_t *req, keel_delete_result_t **out,
		keel_error_t *err);
void keel_delete_result_free(keel_delete_result_t *r);
/* out may be NULL when the header is not wanted. */
int keel_compact(keel_t *k, const keel_compact_req_t *req, keel_header_t *out,
		 keel_error_t *err);

/* Shorthands: one key (out->n_kvs == 0 when absent) and a plain put. */
int keel_get(keel_t *k, const char *key, keel_range_result_t **out, keel_error_t *err);
int keel_put_str(keel_t *k, const char *key, const char *value, int64_t lease,
		 keel_error_t *err);

/* ---- Txn ----------------------------------------------------------------------------- */

typedef enum { KEEL_CMP_EQUAL = 0, KEEL_CMP_GREATER = 1, KEEL_CMP_LESS = 2,
	       KEEL_CMP_NOT_EQUAL = 3 } keel_cmp_op_t;
typedef enum { KEEL_CMP_VERSION = 0, KEEL_CMP_CREATE = 1, KEEL_CMP_MOD = 2,
	       KEEL_CMP_VALUE = 3, KEEL_CMP_LEASE = 4 } keel_cmp_target_t;
typedef enum { KEEL_THEN = 0, KEEL_ELSE = 1 } keel_branch_t;

typedef struct keel_txn keel_txn_t;
/* A builder: add compares and operations, run it with keel_txn_commit, free it. Every
 * add copies its arguments. Adds report failure (out of memory) at commit time. */
keel_txn_t *keel_txn_new(void);
void keel_txn_free(keel_txn_t *t);
void keel_txn_timeout(keel_txn_t *t, int timeout_ms);
/* Compares an integer field (version, create, mod, lease) of key (or of every key in
 * [key, range_end) when range_end is set). */
void keel_txn_cmp_int(keel_txn_t *t, keel_cmp_target_t target, keel_cmp_op_t op,
		      const void *key, size_t key_len, const void *range_end,
		      size_t range_end_len, int64_t v);
void keel_txn_cmp_value(keel_txn_t *t, keel_cmp_op_t op, const void *key, size_t key_len,
			const void *range_end, size_t range_end_len, const void *value,
			size_t value_len);
void keel_txn_range(keel_txn_t *t, keel_branch_t b, const keel_range_req_t *req);
void keel_txn_put(keel_txn_t *t, keel_branch_t b, const keel_put_req_t *req);
void keel_txn_delete(keel_txn_t *t, keel_branch_t b, const keel_delete_req_t *req);
/* A nested txn (copied; the caller still frees sub). */
void keel_txn_txn(keel_txn_t *t, keel_branch_t b, const keel_txn_t *sub);

typedef enum { KEEL_OP_RANGE = 0, KEEL_OP_PUT = 1, KEEL_OP_DELETE = 2, KEEL_OP_TXN = 3 } keel_op_type_t;
typedef struct keel_txn_result keel_txn_result_t;
typedef struct keel_op_result {
	keel_op_type_t type;
	union {
		keel_range_result_t *range;
		keel_put_result_t *put;
		keel_delete_result_t *del;
		keel_txn_result_t *txn;
	} u;
} keel_op_result_t;
struct keel_txn_result {
	keel_header_t header;
	bool succeeded;
	keel_op_result_t *responses;
	size_t n_responses;
};
int keel_txn_commit(keel_t *k, const keel_txn_t *t, keel_txn_result_t **out, keel_error_t *err);
void keel_txn_result_free(keel_txn_result_t *r);

/* ---- Lease ------------------------------------------------------------------------- */

typedef struct keel_lease_grant_req {
	int timeout_ms;
	int64_t ttl;                 /* seconds */
	int64_t id;                  /* 0 = the server picks */
} keel_lease_grant_req_t;
typedef struct keel_lease_grant_result {
	keel_header_t header;
	int64_t id;
	int64_t ttl;
} keel_lease_grant_result_t;

typedef struct keel_lease_id_req {
	int timeout_ms;
	int64_t id;
	bool keys;                   /* keel_lease_ttl: list the attached keys too */
} keel_lease_id_req_t;

typedef struct keel_lease_ttl_result {
	keel_header_t header;
	int64_t id;
	int64_t ttl;                 /* -1 when the lease has expired or does not exist */
	int64_t granted_ttl;
	keel_kv_t *keys;             /* only key/key_len are set */
	size_t n_keys;
} keel_lease_ttl_result_t;

typedef struct keel_lease_list_req {
	int timeout_ms;
} keel_lease_list_req_t;
typedef struct keel_lease_list_result {
	keel_header_t header;
	int64_t *ids;
	size_t n_ids;
} keel_lease_list_result_t;

/* Results are plain structs without pointers: no free function. */
int keel_lease_grant(keel_t *k, const keel_lease_grant_req_t *req,
		     keel_lease_grant_result_t *out, keel_error_t *err);
int keel_lease_revoke(keel_t *k, const keel_lease_id_req_t *req, keel_header_t *out,
		      keel_error_t *err);
/* One renewal (etcdctl lease keep-alive --once); out->ttl is the new TTL. */
int keel_lease_keepalive_once(keel_t *k, const keel_lease_id_req_t *req,
			      keel_lease_grant_result_t *out, keel_error_t *err);
int keel_lease_ttl(keel_t *k, const keel_lease_id_req_t *req, keel_lease_ttl_result_t **out,
		   keel_error_t *err);
void keel_lease_ttl_result_free(keel_lease_ttl_result_t *r);
int keel_lease_list(keel_t *k, const keel_lease_list_req_t *req,
		    keel_lease_list_result_t **out, keel_error_t *err);
void keel_lease_list_result_free(keel_lease_list_result_t *r);

/* Keep-alive stream: renews the lease every TTL/3 over one LeaseKeepAlive stream (shared
 * by all keep-alives of the handle), reopened on another endpoint when a connection
 * breaks. fn gets each response (ttl > 0). When the lease is gone (the server answers
 * TTL <= 0) or cannot be renewed before it would expire, fn gets ttl == 0 once and the
 * keep-alive ends; it still must be freed with keel_keepalive_stop. */
typedef struct keel_keepalive keel_keepalive_t;
typedef void (*keel_keepalive_fn)(void *ud, const keel_header_t *header, int64_t id,
				  int64_t ttl);
int keel_lease_keepalive(keel_t *k, int64_t id, keel_keepalive_fn fn, void *ud,
			 keel_keepalive_t **out, keel_error_t *err);
/* Stops and frees: no callback runs after it returns (unless called from that callback).
 * As with watches, keel_close stops keep-alives without freeing them. */
void keel_keepalive_stop(keel_keepalive_t *ka);

/* ---- Watch ------------------------------------------------------------------------- */

typedef enum { KEEL_EVENT_PUT = 0, KEEL_EVENT_DELETE = 1 } keel_event_type_t;
typedef struct keel_event {
	keel_event_type_t type;
	keel_kv_t kv;
	keel_kv_t *prev_kv;          /* NULL unless asked for (and there was one) */
} keel_event_t;

typedef struct keel_watch_req {
	const void *key;
	size_t key_len;
	const void *range_end;
	size_t range_end_len;
	int64_t start_revision;      /* 0 = from now */
	bool progress_notify;
	bool prev_kv;
	bool no_put;
	bool no_delete;
} keel_watch_req_t;

/* What a watch callback gets, borrowed for the callback's duration. A batch of events
 * (n_events > 0), a progress notification (n_events == 0), or the end of the watch
 * (canceled: the server ended it, e.g. compact_revision > 0 when the start revision was
 * compacted; no callback follows). */
typedef struct keel_watch_resp {
	keel_header_t header;
	int64_t watch_id;
	bool created;
	bool canceled;
	int64_t compact_revision;
	const char *cancel_reason;   /* "" when none */
	const keel_event_t *events;
	size_t n_events;
} keel_watch_resp_t;

typedef struct keel_watch keel_watch_t;
typedef void (*keel_watch_fn)(void *ud, const keel_watch_resp_t *resp);
/* Starts a watch; returns once the server confirmed it and fn has run for that response
 * (created set), so fn must not wait for the thread inside keel_watch. Waits at most the
 * handle's call timeout (then KEEL_CODE_DEADLINE_EXCEEDED). After a broken connection the
 * watch is re-created on another endpoint from the revision after the last one delivered:
 * no event is lost or delivered twice. */
int keel_watch(keel_t *k, const keel_watch_req_t *req, keel_watch_fn fn, void *ud,
	       keel_watch_t **out, keel_error_t *err);
/* Asks the server for a progress notification on every watch of the handle. */
int keel_watch_request_progress(keel_t *k, keel_error_t *err);
/* Cancels and frees: no callback runs after it returns (unless called from that
 * callback, which may cancel its own watch). keel_close stops every watch of the handle
 * but does not free them: cancel them before or after it (after, it only frees). */
void keel_watch_cancel(keel_watch_t *w);

/* ---- Cluster --------------------------------------------------------------------- */

typedef struct keel_member {
	uint64_t id;
	char *name;
	char **peer_urls;
	size_t n_peer_urls;
	char **client_urls;
	size_t n_client_urls;
	bool is_learner;
} keel_member_t;

typedef struct keel_member_req {
	int timeout_ms;
	uint64_t id;                 /* remove, update, promote */
	const char *const *peer_urls; /* add, update */
	size_t n_peer_urls;
	bool is_learner;             /* add */
} keel_member_req_t;

typedef struct keel_member_result {
	keel_header_t header;
	keel_member_t *member;       /* add: the new member; else NULL */
	keel_member_t *members;      /* the membership after the call */
	size_t n_members;
} keel_member_result_t;

int keel_member_list(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		     keel_error_t *err);
int keel_member_add(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		    keel_error_t *err);
int keel_member_remove(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		       keel_error_t *err);
int keel_member_update(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
		       keel_error_t *err);
int keel_member_promote(keel_t *k, const keel_member_req_t *req, keel_member_result_t **out,
			keel_error_t *err);
void keel_member_result_free(keel_member_result_t *r);

/* ---- Maintenance ----------------------------------------------------------------- */

/* Maintenance calls address one endpoint (as etcdctl endpoint ... does): endpoint is
 * "host:port" or a URL, NULL = the handle's current one. */
typedef struct keel_endpoint_req {
	int timeout_ms;
	const char *endpoint;
	int64_t revision;            /* hashkv */
	uint64_t target_id;          /* move-leader: the transferee */
} keel_endpoint_req_t;

typedef struct keel_status_result {
	keel_header_t header;
	char *version;
	int64_t db_size;
	int64_t db_size_in_use;
	uint64_t leader;
	uint64_t raft_index;
	uint64_t raft_term;
	uint64_t raft_applied_index;
	bool is_learner;
	char **errors;
	size_t n_errors;
} keel_status_result_t;

typedef struct keel_hashkv_result {
	keel_header_t header;
	uint32_t hash;
	int64_t compact_revision;
} keel_hashkv_result_t;

typedef enum { KEEL_ALARM_NONE = 0, KEEL_ALARM_NOSPACE = 1, KEEL_ALARM_CORRUPT = 2 } keel_alarm_type_t;
typedef struct keel_alarm {
	uint64_t member_id;
	keel_alarm_type_t alarm;
} keel_alarm_t;
typedef struct keel_alarm_result {
	keel_header_t header;
	keel_alarm_t *alarms;
	size_t n_alarms;
} keel_alarm_result_t;

int keel_status(keel_t *k, const keel_endpoint_req_t *req, keel_status_result_t **out,
		keel_error_t *err);
void keel_status_result_free(keel_status_result_t *r);
int keel_hashkv(keel_t *k, const keel_endpoint_req_t *req, keel_hashkv_result_t *out,
		keel_error_t *err);
int keel_defragment(keel_t *k, const keel_endpoint_req_t *req, keel_header_t *out,
		    keel_error_t *err);
int keel_move_leader(keel_t *k, const keel_endpoint_req_t *req, keel_header_t *out,
		     keel_error_t *err);
/* Lists alarms (alarm == NONE) or disarms one (alarm set; member_id 0 = every member). */
int keel_alarm_list(keel_t *k, const keel_endpoint_req_t *req, keel_alarm_result_t **out,
		    keel_error_t *err);
int keel_alarm_disarm(keel_t *k, const keel_endpoint_req_t *req, const keel_alarm_t *alarm,
		      keel_alarm_result_t **out, keel_error_t *err);
void keel_alarm_result_free(keel_alarm_result_t *r);
/* Streams the endpoint's backend snapshot: fn gets each chunk in order (return non-zero
 * to abort) and remaining_bytes as the server reports it. The call's deadline does not
 * apply to a snapshot unless timeout_ms > 0. */
typedef int (*keel_snapshot_fn)(void *ud, const uint8_t *chunk, size_t len,
				uint64_t remaining_bytes);
int keel_snapshot(keel_t *k, const keel_endpoint_req_t *req, keel_snapshot_fn fn, void *ud,
		  keel_error_t *err);

/* Any unary method by path, for what the typed calls do not cover: the request and the
 * response are protobuf bytes (*resp malloc'ed, free it). idempotent calls are retried
 * on another endpoint after Unavailable; others only when they never left this process. */
int keel_call_raw(keel_t *k, const char *path, const char *endpoint, const uint8_t *req,
		  size_t req_len, int timeout_ms, bool idempotent, uint8_t **resp,
		  size_t *resp_len, keel_error_t *err);

/* ---- The embedded store ------------------------------------------------------------ */

typedef struct keel_open_options {
	/* keeld's (etcd's) flags for the member, e.g. {"--name", "a", "--initial-cluster",
	 * ...}. A listener exists only where the flags ask for one (--listen-client-urls,
	 * --listen-peer-urls): etcd's defaults (localhost:2379, :2380) do not apply, so by
	 * default the member is reached only through the returned handle; a member without
	 * --listen-peer-urls must be alone in --initial-cluster. --data-dir is the dir
	 * argument (the flag is refused, as are --help and --version); ETCD_* variables are
	 * not read, as etcd's embed package reads none. */
	const char *const *flags;
	size_t n_flags;
	int call_timeout_ms;         /* as in keel_options_t (0 = 5000) */
	struct uv_loop_s *loop;      /* as in keel_options_t */
	bool log;                    /* the member's log on stderr (default: errors only; the
	                              * level is process-wide: the last keel_open sets it) */
} keel_open_options_t;
void keel_open_options_init(keel_open_options_t *opt);
/* Opens (or creates) the store in dir and runs its member on a thread of this process,
 * until keel_close. The handle works with every call above. */
int keel_open(const char *dir, const keel_open_options_t *opt, keel_t **out,
	      keel_error_t *err);

/* ---- Utilities --------------------------------------------------------------------- */

/* etcd's error kind of a status: code 0 gives KEEL_E_NONE; otherwise the kind etcd's
 * message names, else one from the code alone (UNAVAILABLE, DEADLINE, or OTHER). */
keel_errkind_t keel_errkind_of(int code, const char *message);
/* Fills err (if not NULL) and returns code: for libraries built on this one. */
int keel_error_set(keel_error_t *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
