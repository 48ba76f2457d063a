/* keel/concurrency.h — etcd's concurrency recipes on libkeel: session, mutex, election,
 * plus a queue and a barrier. Keys follow etcd's own layout (clientv3/concurrency and
 * contrib/recipes), so Keel programs, etcdctl lock/elect and Go programs using etcd's
 * package contend for the same locks and elections.
 *
 * A session is a lease kept alive in the background. A mutex or an election lives in a
 * session: its keys are <prefix>/<lease id in lower-case hex>, attached to the lease, so
 * a holder that dies releases them when its lease expires.
 *
 * Blocking calls take timeout_ms (<0 = wait for ever, 0 = the client's default) and may
 * run in parallel on different objects; one object is used by one thread at a time. */
#ifndef KEEL_CONCURRENCY_H
#define KEEL_CONCURRENCY_H

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- session ----------------------------------------------------------------------- */

typedef struct keel_session keel_session_t;
/* Grants a lease of ttl seconds (etcd's default is 60) — or adopts lease when it is
 * non-zero — and keeps it alive until keel_session_close. */
int keel_session_new(keel_t *k, int64_t ttl, int64_t lease, keel_session_t **out,
		     keel_error_t *err);
int64_t keel_session_lease(const keel_session_t *s);
keel_t *keel_session_client(const keel_session_t *s);
/* True once the lease is known lost (expired or revoked): every lock held through this
 * session may already belong to someone else. */
bool keel_session_lost(const keel_session_t *s);
/* Stops the keep-alive and revokes the lease (releasing everything held through it). */
void keel_session_close(keel_session_t *s);

/* ---- mutex ------------------------------------------------------------------------- */

typedef struct keel_mutex keel_mutex_t;
/* prefix as etcd's NewMutex takes it (etcdctl lock's name): the keys are prefix + "/" + id. */
int keel_mutex_new(keel_session_t *s, const char *prefix, keel_mutex_t **out,
		   keel_error_t *err);
void keel_mutex_free(keel_mutex_t *m);
/* Waits until this session owns the lock. A waiter watches only the key just before its
 * own (by create revision), never the whole prefix. On timeout its key is deleted. */
int keel_mutex_lock(keel_mutex_t *m, int timeout_ms, keel_error_t *err);
/* Takes the lock only if nobody holds it; KEEL_CODE_ABORTED with kind KEEL_E_OTHER and
 * message "mutex: Locked by another session" otherwise. */
int keel_mutex_trylock(keel_mutex_t *m, int timeout_ms, keel_error_t *err);
int keel_mutex_unlock(keel_mutex_t *m, int timeout_ms, keel_error_t *err);
/* The held lock's key and its create revision: the fencing token. Guard a write with
 * keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, key, len, NULL, 0, revision). */
const char *keel_mutex_key(const keel_mutex_t *m);
int64_t keel_mutex_revision(const keel_mutex_t *m);

/* ---- election ---------------------------------------------------------------------- */

typedef struct keel_election keel_election_t;
int keel_election_new(keel_session_t *s, const char *prefix, keel_election_t **out,
		      keel_error_t *err);
void keel_election_free(keel_election_t *e);
/* Waits until elected, then the leader's value is value. */
int keel_election_campaign(keel_election_t *e, const void *value, size_t len, int timeout_ms,
			   keel_error_t *err);
/* Changes the value while leader; KEEL_CODE_FAILED_PRECONDITION "election: not leader"
 * when not. */
int keel_election_proclaim(keel_election_t *e, const void *value, size_t len, int timeout_ms,
			   keel_error_t *err);
int keel_election_resign(keel_election_t *e, int timeout_ms, keel_error_t *err);
/* The current leader's key-value (on any handle, elected or not); KEEL_CODE_NOT_FOUND
 * "election: no leader" when there is none. Free with keel_range_result_free. */
int keel_election_leader(keel_t *k, const char *prefix, keel_range_result_t **out,
			 keel_error_t *err);
/* Calls fn with each new leader value (the current one first) until stopped, as etcd's
 * Observe does. kv is borrowed for the call. */
typedef struct keel_observe keel_observe_t;
typedef void (*keel_observe_fn)(void *ud, const keel_kv_t *leader);
int keel_election_observe(keel_t *k, const char *prefix, keel_observe_fn fn, void *ud,
			  keel_observe_t **out, keel_error_t *err);
/* Stops and frees: fn is not called after it returns. Not from inside fn. */
void keel_observe_stop(keel_observe_t *o);
const char *keel_election_key(const keel_election_t *e);
int64_t keel_election_revision(const keel_election_t *e);

/* ---- queue (etcd's contrib/recipes Queue) ------------------------------------------ */

/* Items are keys prefix/<time in ns>, taken in create-revision order. */
int keel_queue_enqueue(keel_t *k, const char *prefix, const void *value, size_t len,
		       keel_error_t *err);
/* Waits for the oldest item, removes it, and returns it (free with
 * keel_range_result_free; the item is kvs[0]). Exactly one dequeuer gets each item. */
int keel_queue_dequeue(keel_t *k, const char *prefix, int timeout_ms,
		       keel_range_result_t **out, keel_error_t *err);

/* ---- barrier (etcd's contrib/recipes Barrier) -------------------------------------- */

/* Hold creates the barrier key (fails with ALREADY_EXISTS if held), release deletes it,
 * wait returns once the key does not exist. */
int keel_barrier_hold(keel_t *k, const char *key, keel_error_t *err);
int keel_barrier_release(keel_t *k, const char *key, keel_error_t *err);
int keel_barrier_wait(keel_t *k, const char *key, int timeout_ms, keel_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
