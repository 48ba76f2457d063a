/* cluster/cluster.h — the cluster layer's one door: the object model (Node, Pod, ReplicaSet and
 * the nodes' heartbeat Leases as JSON documents under /registry), manifests, store access with
 * optimistic concurrency, the watcher machinery (informer, work queue, leader election) and the
 * entry points of the components `keel` runs (agent, scheduler, controllers).
 *
 * Objects are jansson values shaped as Kubernetes objects: apiVersion, kind, metadata, spec,
 * status, with Kubernetes' field names. metadata.resourceVersion is the key's mod revision as
 * a decimal string: it is filled in on every read and never stored. Every write of an existing
 * object is a txn conditioned on that revision, so a lost race is a conflict, never an
 * overwrite. Objects handed out by an informer are shared and must be treated as read-only:
 * json_deep_copy one before changing it. */
#ifndef KEEL_CLUSTER_H
#define KEEL_CLUSTER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keel/keel.h>

/* ---- kinds and keys ------------------------------------------------------------------------ */

typedef enum kc_kind {
	KC_NODE = 0,
	KC_POD,
	KC_REPLICASET,
	KC_LEASE, /* a node's heartbeat, namespace kube-node-lease, attached to a store lease */
	KC_KIND_COUNT,
} kc_kind_t;

typedef struct kc_kind_info {
	kc_kind_t kind;
	const char *name;        /* "ReplicaSet": the kind field */
	const char *api_version; /* "apps/v1" */
	const char *plural;      /* "replicasets": the /registry folder, `keel get replicasets` */
	const char *singular;    /* "replicaset" */
	const char *short_name;  /* "rs" ("no", "po", NULL for leases) */
	const char *resource;    /* "replicasets.apps": kubectl's messages ("pods", "nodes") */
	bool namespaced;
} kc_kind_info_t;

#define KC_REGISTRY "/registry/"
#define KC_DEFAULT_NAMESPACE "default"
#define KC_NODE_LEASE_NAMESPACE "kube-node-lease"

const kc_kind_info_t *kc_kind_info(kc_kind_t kind);
/* By any name kubectl accepts for it: plural, singular, short name, the kind, "rs/x"'s "rs",
 * "replicasets.apps" (case-insensitive); NULL when unknown. */
const kc_kind_info_t *kc_kind_lookup(const char *name);
/* The kind named by a document's apiVersion and kind; -1 with msg ("no kind \"Foo\" is
 * registered for version \"v1\"", as kubectl says) when there is none. apiVersion may be
 * absent (the defaults fill it). */
int kc_kind_of(const json_t *obj, kc_kind_t *kind, char *msg, size_t n);

/* Keys (malloc'ed): /registry/pods/<ns>/<name>, /registry/nodes/<name> (cluster-scoped
 * kinds have no namespace part). kc_prefix: /registry/pods/ (ns NULL: every namespace) or
 * /registry/pods/<ns>/. */
char *kc_key(kc_kind_t kind, const char *ns, const char *name);
char *kc_prefix(kc_kind_t kind, const char *ns);
/* Splits a key back; ns is NULL for cluster-scoped kinds. -1 when it is not an object key. */
int kc_key_parse(const char *key, size_t len, kc_kind_t *kind, char **ns, char **name);
/* The key of an object from its own kind, namespace and name (NULL when they are missing). */
char *kc_object_key(const json_t *obj);

/* ---- accessors (borrowed results; NULL or 0 when absent or of another type) ---------------- */

/* A dotted path with optional array indexes: "spec.containers[0].name". */
json_t *kc_path(const json_t *obj, const char *path);
const char *kc_path_str(const json_t *obj, const char *path);
int64_t kc_path_int(const json_t *obj, const char *path, int64_t dflt);
/* Sets the value at path (steals value), creating the objects on the way; -1 on a type clash
 * or out of memory (value is released either way). */
int kc_path_set(json_t *obj, const char *path, json_t *value);

const char *kc_name(const json_t *obj);
const char *kc_namespace(const json_t *obj); /* NULL for cluster-scoped objects */
const char *kc_uid(const json_t *obj);
int64_t kc_resource_version(const json_t *obj);
bool kc_deleting(const json_t *obj); /* metadata.deletionTimestamp is set */
/* The ownerReferences entry with controller: true, or NULL. */
const json_t *kc_controller_ref(const json_t *obj);

/* ---- time ---------------------------------------------------------------------------------- */

/* RFC 3339 in UTC with seconds, as Kubernetes writes timestamps: 2026-11-27T15:04:05Z. */
void kc_time_format(int64_t unix_seconds, char buf[32]);
void kc_time_now(char buf[32]);
/* Unix seconds of such a timestamp (fractions and offsets accepted); -1 when malformed. */
int64_t kc_time_parse(const char *s);
/* Monotonic milliseconds, for timeouts and backoff. */
int64_t kc_mono_ms(void);

/* ---- conditions, taints, resources --------------------------------------------------------- */

/* The status ("True", "False", "Unknown") of status.conditions[type == type], or NULL. */
const char *kc_condition_status(const json_t *obj, const char *type);
/* Sets a condition in obj's status.conditions: lastTransitionTime changes only when the status
 * does; lastHeartbeatTime/lastProbeTime are not written. Returns 1 when something changed, 0
 * when it was already so, -1 on out of memory. */
int kc_condition_set(json_t *obj, const char *type, const char *status, const char *reason,
		     const char *message);
/* A Node is Ready when its Ready condition is True. */
bool kc_node_ready(const json_t *node);
/* Whether a pod's spec.tolerations tolerate one taint ({key, value, effect}), Kubernetes' rule:
 * operator Exists or Equal (default), empty key with Exists tolerates everything, empty effect
 * matches every effect. */
bool kc_tolerates(const json_t *tolerations, const json_t *taint);

/* A Kubernetes quantity ("500m", "2", "1.5", "128Mi", "1G", "1e3") in thousandths of its unit:
 * cpu "500m" -> 500, memory "128Mi" -> 134217728000. A JSON integer or real is a plain number.
 * -1 with msg on anything else (and on overflow). */
int kc_quantity_parse(const json_t *q, int64_t *milli, char *msg, size_t n);
/* Canonical text: cpu as "250m" or "2"; memory as "128Mi", "1Gi" or plain bytes. */
void kc_format_cpu(int64_t milli, char *buf, size_t n);
void kc_format_memory(int64_t bytes, char *buf, size_t n);
/* A pod's requests summed over its containers; a container with limits and no requests
 * requests its limits, as Kubernetes defaults them. Unparseable values count as 0 (objects
 * are validated before they are stored). */
void kc_pod_requests(const json_t *pod, int64_t *cpu_milli, int64_t *memory_bytes);

/* ---- defaults and validation --------------------------------------------------------------- */

/* Fills what Kubernetes would: apiVersion/kind when missing, metadata.namespace "default" for
 * namespaced kinds, pod restartPolicy Always, terminationGracePeriodSeconds 30, replicas 1,
 * a ReplicaSet's template restartPolicy, empty labels objects, schedulerName
 * "default-scheduler". Never status: it belongs to the components. */
void kc_object_default(kc_kind_t kind, json_t *obj);
/* 0 when valid; otherwise -1 and kubectl's text in msg, naming the object, the field and why:
 *   The Pod "web" is invalid: spec.containers[0].command: Required value
 *   The ReplicaSet "web" is invalid: spec.template.metadata.labels: Invalid value:
 *     {"app":"x"}: `selector` does not match template `labels`
 * Checks names (DNS-1123 subdomain/label), labels, every field the components read (types,
 * quantities, restartPolicy values, selectors). Call after kc_object_default. */
int kc_object_validate(kc_kind_t kind, const json_t *obj, char *msg, size_t n);

/* ---- label selectors ----------------------------------------------------------------------- */

typedef struct kc_selector kc_selector_t;
/* kubectl's -l syntax: "app=web,tier!=db,env in (a,b),!legacy,track". -1 with msg. */
int kc_selector_parse(const char *text, kc_selector_t **out, char *msg, size_t n);
/* A LabelSelector object ({matchLabels, matchExpressions}); an empty one ({}) matches
 * everything, a NULL one nothing (Kubernetes' nil selector). */
int kc_selector_from_json(const json_t *sel, kc_selector_t **out, char *msg, size_t n);
bool kc_selector_matches(const kc_selector_t *s, const json_t *labels);
/* The selector in -l syntax (malloc'ed), as kubectl -o wide shows it. */
char *kc_selector_string(const kc_selector_t *s);
void kc_selector_free(kc_selector_t *s);

/* ---- manifests ----------------------------------------------------------------------------- */

/* Parses a manifest: YAML (libyaml; several documents separated by ---, comments, anchors) or
 * JSON (one value or several in a row). A kind: List's items are expanded. Plain YAML scalars
 * become JSON numbers, booleans and null as YAML 1.2's core schema says; quoted ones stay
 * strings. *docs is a new array of objects. -1 with msg naming source and line on bad input. */
int kc_manifest_parse(const char *text, size_t len, const char *source, json_t **docs,
		      char *msg, size_t n);
/* YAML text (malloc'ed) of a value, block style, keys in the value's order, as kubectl -o yaml
 * prints: strings that would read back as another type are quoted, multi-line strings are
 * literal blocks. What it prints parses back (kc_manifest_parse) to an equal value. */
char *kc_yaml_dump(const json_t *v);

/* ---- the store ----------------------------------------------------------------------------- */

/* Connects to endpoints (comma-separated "host:port" or URLs); NULL or "" means the
 * KEEL_ENDPOINTS variable, else 127.0.0.1:2379. */
int kc_connect(const char *endpoints, keel_t **out, keel_error_t *err);

/* Errors use kubectl's texts in err->message and these codes:
 *   KEEL_CODE_NOT_FOUND       pods "web-1" not found
 *   KEEL_CODE_ALREADY_EXISTS  pods "web-1" already exists
 *   KEEL_CODE_ABORTED         Operation cannot be fulfilled on pods "web-1": the object has
 *                             been modified; please apply your changes to the latest version
 *                             and try again
 *   KEEL_CODE_INVALID_ARGUMENT  kc_object_validate's text
 * and the store's own errors otherwise. */
int kc_get(keel_t *k, kc_kind_t kind, const char *ns, const char *name, json_t **out,
	   keel_error_t *err);
/* Every object of a kind (ns NULL: all namespaces) in key order, read at one revision. */
int kc_list(keel_t *k, kc_kind_t kind, const char *ns, json_t **items, int64_t *revision,
	    keel_error_t *err);
/* Creates obj (kind from its kind field): defaults, validates, sets metadata.uid (random UUID)
 * and creationTimestamp, drops resourceVersion, and writes only if the key does not exist.
 * With metadata.generateName and no name, a name is made of it plus 5 random characters
 * (retried on a clash). On success obj carries its name, uid and resourceVersion. */
int kc_create(keel_t *k, json_t *obj, keel_error_t *err);
/* Writes obj conditioned on its resourceVersion (defaulted and validated first; a
 * resourceVersion is required). One round trip: uid and creationTimestamp are written as
 * given, so keep the ones you read. On success obj carries the new resourceVersion. */
int kc_update(keel_t *k, json_t *obj, keel_error_t *err);
/* Removes the key; rv > 0: only if its mod revision is still rv. */
int kc_delete(keel_t *k, kc_kind_t kind, const char *ns, const char *name, int64_t rv,
	      keel_error_t *err);
/* Read-modify-write with retries on conflict: fn changes a fresh copy of the object and
 * returns 0 to write it, 1 when nothing needs writing, or a non-zero code with err set to give
 * up. *out (may be NULL) gets the object as stored afterwards. */
typedef int (*kc_mutate_fn)(void *ud, json_t *obj, keel_error_t *err);
int kc_modify(keel_t *k, kc_kind_t kind, const char *ns, const char *name, kc_mutate_fn fn,
	      void *ud, json_t **out, keel_error_t *err);
/* Deletes a pod the Kubernetes way: one not bound to a node (or force) is removed at once;
 * a bound one gets metadata.deletionTimestamp and deletionGracePeriodSeconds (grace < 0: its
 * spec.terminationGracePeriodSeconds) and its node's agent stops it and removes it. */
int kc_pod_delete(keel_t *k, const char *ns, const char *name, int64_t grace, bool force,
		  keel_error_t *err);
/* The same for exactly the pod a controller examined: refused with KEEL_CODE_ABORTED when the
 * stored pod has another uid (re-created under the name) or, if pod had a controller owner,
 * another one (adopted or released since). Force deletes only that incarnation too. */
int kc_pod_delete_if(keel_t *k, const json_t *pod, int64_t grace, bool force, keel_error_t *err);

/* ---- informer: list, then watch from the list's revision ----------------------------------- */

typedef struct kc_informer kc_informer_t;
/* Called for every change: old NULL = added, new NULL = deleted (old is the last state seen).
 * Both are borrowed for the call. Calls come one at a time, in store order: the initial adds
 * on the thread calling kc_informer_start (before it returns), watch events on the handle's
 * callback thread, and after a relist (the watch's revision was compacted) the differences on
 * the informer's own thread. fn may call kc_informer_get/list but no blocking store call, and
 * never kc_informer_stop. */
typedef void (*kc_informer_fn)(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			       const json_t *new_obj);
/* Lists the kind (ns NULL: all), calls fn for each object (as added), starts the watch, and
 * returns. The cache stays current until kc_informer_stop. */
int kc_informer_start(keel_t *k, kc_kind_t kind, const char *ns, kc_informer_fn fn, void *ud,
		      kc_informer_t **out, keel_error_t *err);
/* The cached object under key (a new reference, read-only) or NULL. */
json_t *kc_informer_get(kc_informer_t *inf, const char *key);
/* Every cached object (a new array of shared, read-only objects), in key order. */
json_t *kc_informer_list(kc_informer_t *inf);
/* The revision the cache reflects. */
int64_t kc_informer_revision(kc_informer_t *inf);
/* No fn call runs after it returns. */
void kc_informer_stop(kc_informer_t *inf);

/* ---- work queue: keys to reconcile, each handled by one worker at a time ------------------- */

typedef struct kc_queue kc_queue_t;
kc_queue_t *kc_queue_new(void);
/* A key already waiting is not added twice; a key being processed is queued again after its
 * kc_queue_done. */
void kc_queue_add(kc_queue_t *q, const char *key);
void kc_queue_add_after(kc_queue_t *q, const char *key, int delay_ms);
/* Adds after the key's backoff (5 ms doubling per failure, at most max_ms) */
void kc_queue_add_rate_limited(kc_queue_t *q, const char *key, int max_ms);
/* Clears the key's failure count. */
void kc_queue_forget(kc_queue_t *q, const char *key);
/* The next ready key (malloc'ed: hand it back to kc_queue_done), or NULL after timeout_ms
 * (<0: wait until shut down) or once the queue is shut down. */
char *kc_queue_get(kc_queue_t *q, int timeout_ms);
void kc_queue_done(kc_queue_t *q, char *key);
size_t kc_queue_len(kc_queue_t *q);
/* Wakes every kc_queue_get with NULL; later adds are dropped. */
void kc_queue_shutdown(kc_queue_t *q);
void kc_queue_free(kc_queue_t *q);

/* ---- leader election among replicas of a component ----------------------------------------- */

typedef struct kc_leader kc_leader_t;
/* Campaigns with libkeel's election recipe under /registry/leader-election/<name>, value
 * identity, in a session of ttl seconds. Returns 0 once this process leads, KEEL_CODE_CANCELLED
 * when *stop became non-zero first (checked at least every 500 ms), or an error. */
int kc_leader_acquire(keel_t *k, const char *name, const char *identity, int ttl,
		      volatile sig_atomic_t *stop, kc_leader_t **out, keel_error_t *err);
/* True once the session's lease is lost: another replica may lead; stop acting. */
bool kc_leader_lost(const kc_leader_t *l);
/* Resigns (when still leading) and frees. */
void kc_leader_release(kc_leader_t *l);

/* ---- process ------------------------------------------------------------------------------- */

/* SIGINT and SIGTERM set the returned flag (and SIGPIPE is ignored). */
volatile sig_atomic_t *kc_signals_install(void);
/* "<hostname>_<pid>": a component's default identity. */
void kc_identity(char *buf, size_t n);

/* ---- components: run until SIGINT/SIGTERM, return the exit status ------------------------- */

/* argv holds the arguments after `keel <component>` and no program name: `keel scheduler
 * --workers 4` calls kc_scheduler_main(2, {"--workers", "4"}). */

int kc_agent_main(int argc, char **argv);
int kc_scheduler_main(int argc, char **argv);
int kc_controllers_main(int argc, char **argv);

#endif
