/* cluster/controllers_int.h — private to `keel controllers`: the shared context of the three
 * controllers (ReplicaSet, node lifecycle, pod GC), their worker pools, and the pure pieces
 * (pod ranking, counting, expectations) the unit tests pin. Never included outside cluster/. */
#ifndef KEEL_CONTROLLERS_INT_H
#define KEEL_CONTROLLERS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"

/* ---- configuration and shared context ------------------------------------------------------ */

typedef struct kctl_config {
	const char *endpoints;
	bool leader_elect;
	int lease_duration_s;      /* the controllers' own leader election */
	int pod_eviction_timeout_s; /* NotReady this long: the node's pods are deleted */
	int node_grace_s;          /* a node's lease may be absent this long after we start */
	int workers;               /* per controller */
	int resync_s;              /* every key is reconciled again this often */
	int verbose;
	/* KEEL_TEST_EVENT_DELAY_MS: each pod event is delivered this much later, a lagging watch
	 * for tests of the expectations (0 = off). */
	int event_delay_ms;
} kctl_config_t;

/* Parses argv as after `keel controllers`. 0 ok, 1 when --help was printed, -1 with msg. */
int kctl_config_parse(int argc, char **argv, kctl_config_t *cfg, char *msg, size_t n);

typedef struct kctl_rs kctl_rs_t;
typedef struct kctl_nlc kctl_nlc_t;
typedef struct kctl_gc kctl_gc_t;

/* Remembers which stored objects were reported invalid, so that an object that fails
 * kc_object_validate is logged once per resourceVersion and then skipped, not retried. */
typedef struct kctl_once kctl_once_t;
kctl_once_t *kctl_once_new(void);
void kctl_once_free(kctl_once_t *o);
/* True the first time (key, rv) is seen (the caller logs then); false after. Thread-safe. */
bool kctl_once(kctl_once_t *o, const char *key, int64_t rv);

typedef struct kctl {
	keel_t *k;
	const kctl_config_t *cfg;
	/* Set by the main thread as each informer starts, read by other informers' callbacks
	 * (which hold inf_lock for reading) and by the workers. */
	kc_informer_t *_Atomic inf[KC_KIND_COUNT];
	pthread_rwlock_t inf_lock;
	kctl_once_t *invalid; /* objects already reported invalid */
	atomic_bool halt;            /* leadership lost or shutting down: stop acting */
	volatile sig_atomic_t *stop; /* the process was asked to exit: main thread only */
	int64_t started_ms;          /* monotonic, when this term as leader began */
	kctl_rs_t *rs;
	kctl_nlc_t *nlc;
	kctl_gc_t *gc;
} kctl_t;

/* One line on stderr: "<RFC 3339> controllers: <message>". */
void kctl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define kctl_debug(c, ...)                                                                         \
	do {                                                                                       \
		if ((c)->cfg->verbose)                                                             \
			kctl_log(__VA_ARGS__);                                                     \
	} while (0)

bool kctl_halted(const kctl_t *c);
/* The informer of a kind, NULL before it started. */
kc_informer_t *kctl_informer(const kctl_t *c, kc_kind_t kind);
/* The cached object (new reference) of a kind by namespace and name, or NULL. */
json_t *kctl_cached(const kctl_t *c, kc_kind_t kind, const char *ns, const char *name);

/* ---- worker pools ------------------------------------------------------------------------- */

/* What a sync function returns for its key. */
enum {
	KCTL_DONE = 0,   /* reconciled: forget the key's failures */
	KCTL_RETRY = -1, /* failed: again after the key's backoff */
};
typedef int (*kctl_sync_fn)(void *ud, const char *key);
typedef struct kctl_pool kctl_pool_t;
/* n threads taking keys from q and calling fn. */
kctl_pool_t *kctl_pool_start(kc_queue_t *q, int n, kctl_sync_fn fn, void *ud);
/* Shuts the queue down and joins the threads (each finishes the key it holds). */
void kctl_pool_stop(kctl_pool_t *p);

/* Runs fn(ud, i) for i in [0, n) on up to max_threads threads; returns how many returned 0.
 * After the first failure no new index is started (Kubernetes' slow start stops a batch's
 * successors too); *attempted (may be NULL) gets how many were started. */
typedef int (*kctl_each_fn)(void *ud, size_t i);
size_t kctl_parallel(size_t n, int max_threads, kctl_each_fn fn, void *ud, size_t *attempted);

/* ---- the controllers: each owns a queue and a pool; events only enqueue ------------------- */

kctl_rs_t *kctl_rs_new(kctl_t *c);
void kctl_rs_start(kctl_rs_t *r);
void kctl_rs_stop(kctl_rs_t *r); /* joins the workers */
void kctl_rs_free(kctl_rs_t *r);
void kctl_rs_event(kctl_rs_t *r, kc_kind_t kind, const char *key, const json_t *old_obj,
		   const json_t *new_obj);
void kctl_rs_resync(kctl_rs_t *r);

kctl_nlc_t *kctl_nlc_new(kctl_t *c);
void kctl_nlc_start(kctl_nlc_t *n);
void kctl_nlc_stop(kctl_nlc_t *n);
void kctl_nlc_free(kctl_nlc_t *n);
void kctl_nlc_event(kctl_nlc_t *n, kc_kind_t kind, const char *key, const json_t *old_obj,
		    const json_t *new_obj);
void kctl_nlc_resync(kctl_nlc_t *n);

kctl_gc_t *kctl_gc_new(kctl_t *c);
void kctl_gc_start(kctl_gc_t *g);
void kctl_gc_stop(kctl_gc_t *g);
void kctl_gc_free(kctl_gc_t *g);
void kctl_gc_event(kctl_gc_t *g, kc_kind_t kind, const char *key, const json_t *old_obj,
		   const json_t *new_obj);
void kctl_gc_resync(kctl_gc_t *g);

/* ---- pure logic (no I/O; unit-tested) ------------------------------------------------------ */

/* No deletionTimestamp and phase neither Succeeded nor Failed. */
bool kctl_pod_active(const json_t *pod);
/* The Ready condition is True. */
bool kctl_pod_ready(const json_t *pod);
/* Ready for at least min_ready_s at now_unix (by the Ready condition's lastTransitionTime). */
bool kctl_pod_available(const json_t *pod, int64_t min_ready_s, int64_t now_unix);
/* Every label of want is on labels with the same value. */
bool kctl_labels_contain(const json_t *labels, const json_t *want);

/* Kubernetes' order of pods to delete first: unscheduled before scheduled, Pending before
 * Unknown before Running, not ready before ready, ready for less time before longer, more
 * restarts before fewer, newer before older. <0 when a goes before b. */
int kctl_pod_delete_cmp(const json_t *a, const json_t *b);
void kctl_pods_sort_for_delete(const json_t **pods, size_t n);

typedef struct kctl_rs_counts {
	int64_t replicas;
	int64_t fully_labeled;
	int64_t ready;
	int64_t available;
} kctl_rs_counts_t;
/* Counts of the RS's status over the pods it owns (already filtered to active, owned ones). */
void kctl_rs_count(const json_t *rs, const json_t *const *pods, size_t n, int64_t now_unix,
		   kctl_rs_counts_t *out);

/* Slow start: the size of the next batch after one of prev (0 = the first), at most left. */
size_t kctl_batch_next(size_t prev, size_t left);

/* Expectations, as client-go's: after a controller creates or deletes pods for a key it waits
 * until the informer has shown those changes (or the record is older than the timeout) before
 * it acts on that key again, so informer lag cannot make it create or delete twice. Deletions
 * are tracked by pod key, so a pod seen first Terminating and later gone counts once.
 * Thread-safe. */
#define KCTL_EXPECT_TIMEOUT_MS 30000
typedef struct kctl_expect kctl_expect_t;
kctl_expect_t *kctl_expect_new(void);
void kctl_expect_free(kctl_expect_t *e);
/* Replaces the key's record: adds creations and the deletions of dels[0..n_dels). -1 on OOM. */
int kctl_expect_set(kctl_expect_t *e, const char *key, int64_t adds, const char *const *dels,
		    size_t n_dels, int64_t now_ms);
void kctl_expect_observe_add(kctl_expect_t *e, const char *key);
void kctl_expect_observe_delete(kctl_expect_t *e, const char *key, const char *pod_key);
/* True when there is no record, every expected change was seen, or the record expired. */
bool kctl_expect_satisfied(kctl_expect_t *e, const char *key, int64_t now_ms);
void kctl_expect_forget(kctl_expect_t *e, const char *key);

#endif
