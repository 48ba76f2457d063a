/* cluster/rs_controller.c — the ReplicaSet controller: claims pods (adopts matching orphans,
 * releases owned pods that stopped matching), creates or deletes pods toward spec.replicas
 * behind expectations, and writes status. Reconciles from the caches, never from an event's
 * content; never acts while halted (leadership lost). Also the pure helpers it is built on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers_int.h"

#define KCTL_BURST_REPLICAS 500 /* at most this many creates or deletes per sync, as Kubernetes */
#define KCTL_CREATE_THREADS 16
#define KCTL_MAX_GENERATE_PREFIX 58 /* 63 minus the 5 random characters */

/* ---- pure helpers -------------------------------------------------------------------------- */

bool kctl_pod_active(const json_t *pod)
{
	const char *phase = kc_path_str(pod, "status.phase");
	if (kc_deleting(pod))
		return false;
	return !phase || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0);
}

bool kctl_pod_ready(const json_t *pod)
{
	const char *s = kc_condition_status(pod, "Ready");
	return s && !strcmp(s, "True");
}

/* The Ready condition's lastTransitionTime in unix seconds, -1 when absent. */
static int64_t kctl_pod_ready_since(const json_t *pod)
{
	const json_t *conds = kc_path(pod, "status.conditions");
	size_t i;
	const json_t *cond;
	json_array_foreach(conds, i, cond) {
		const char *type = kc_path_str(cond, "type");
		if (type && !strcmp(type, "Ready")) {
			const char *t = kc_path_str(cond, "lastTransitionTime");
			return t ? kc_time_parse(t) : -1;
		}
	}
	return -1;
}

bool kctl_pod_available(const json_t *pod, int64_t min_ready_s, int64_t now_unix)
{
	if (!kctl_pod_ready(pod))
		return false;
	if (min_ready_s <= 0)
		return true;
	int64_t since = kctl_pod_ready_since(pod);
	return since >= 0 && since + min_ready_s <= now_unix;
}

bool kctl_labels_contain(const json_t *labels, const json_t *want)
{
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)want, k, v) {
		const json_t *have = json_object_get(labels, k);
		if (!have || !json_is_string(have) || !json_is_string(v) ||
		    strcmp(json_string_value(have), json_string_value(v)) != 0)
			return false;
	}
	return true;
}

static int kctl_phase_rank(const json_t *pod)
{
	const char *phase = kc_path_str(pod, "status.phase");
	if (phase && !strcmp(phase, "Running"))
		return 2;
	if (phase && !strcmp(phase, "Unknown"))
		return 1;
	return 0;
}

static int64_t kctl_pod_restarts(const json_t *pod)
{
	const json_t *cs = kc_path(pod, "status.containerStatuses");
	int64_t max = 0;
	size_t i;
	const json_t *s;
	json_array_foreach(cs, i, s) {
		int64_t r = kc_path_int(s, "restartCount", 0);
		if (r > max)
			max = r;
	}
	return max;
}

static int kctl_cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

int kctl_pod_delete_cmp(const json_t *a, const json_t *b)
{
	const char *na = kc_path_str(a, "spec.nodeName"), *nb = kc_path_str(b, "spec.nodeName");
	bool ua = !na || !*na, ub = !nb || !*nb;
	if (ua != ub)
		return ua ? -1 : 1;
	int pa = kctl_phase_rank(a), pb = kctl_phase_rank(b);
	if (pa != pb)
		return pa < pb ? -1 : 1;
	bool ra = kctl_pod_ready(a), rb = kctl_pod_ready(b);
	if (ra != rb)
		return ra ? 1 : -1;
	if (ra) {
		/* Ready for less time goes first: the later transition. */
		int c = kctl_cmp_i64(kctl_pod_ready_since(b), kctl_pod_ready_since(a));
		if (c)
			return c;
	}
	int c = kctl_cmp_i64(kctl_pod_restarts(b), kctl_pod_restarts(a));
	if (c)
		return c;
	const char *ta = kc_path_str(a, "metadata.creationTimestamp");
	const char *tb = kc_path_str(b, "metadata.creationTimestamp");
	int64_t ca = ta ? kc_time_parse(ta) : -1, cb = tb ? kc_time_parse(tb) : -1;
	if (ca < 0 || cb < 0) {
		if ((ca < 0) != (cb < 0))
			return ca < 0 ? -1 : 1;
	} else if (ca != cb) {
		return ca > cb ? -1 : 1;
	}
	const char *xa = kc_name(a), *xb = kc_name(b);
	return strcmp(xa ? xa : "", xb ? xb : "");
}

static int kctl_pod_delete_qcmp(const void *a, const void *b)
{
	return kctl_pod_delete_cmp(*(const json_t *const *)a, *(const json_t *const *)b);
}

void kctl_pods_sort_for_delete(const json_t **pods, size_t n)
{
	if (n > 1)
		qsort(pods, n, sizeof(*pods), kctl_pod_delete_qcmp);
}

void kctl_rs_count(const json_t *rs, const json_t *const *pods, size_t n, int64_t now_unix,
		   kctl_rs_counts_t *out)
{
	const json_t *tlabels = kc_path(rs, "spec.template.metadata.labels");
	int64_t min_ready = kc_path_int(rs, "spec.minReadySeconds", 0);
	*out = (kctl_rs_counts_t){.replicas = (int64_t)n};
	for (size_t i = 0; i < n; i++) {
		const json_t *labels = kc_path(pods[i], "metadata.labels");
		if (!tlabels || kctl_labels_contain(labels, tlabels))
			out->fully_labeled++;
		if (kctl_pod_ready(pods[i]))
			out->ready++;
		if (kctl_pod_available(pods[i], min_ready, now_unix))
			out->available++;
	}
}

size_t kctl_batch_next(size_t prev, size_t left)
{
	size_t b = prev ? prev * 2 : 1;
	return b < left ? b : left;
}

/* ---- expectations -------------------------------------------------------------------------- */

#define KCTL_EXPECT_BUCKETS 256

typedef struct kctl_exp_rec {
	struct kctl_exp_rec *next;
	char *key;
	int64_t adds;
	char **dels;
	size_t n_dels;
	int64_t ts_ms;
} kctl_exp_rec_t;

struct kctl_expect {
	pthread_mutex_t mu;
	kctl_exp_rec_t *buckets[KCTL_EXPECT_BUCKETS];
};

static size_t kctl_expect_hash(const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % KCTL_EXPECT_BUCKETS;
}

static void kctl_exp_rec_free(kctl_exp_rec_t *r)
{
	for (size_t i = 0; i < r->n_dels; i++)
		free(r->dels[i]);
	free(r->dels);
	free(r->key);
	free(r);
}

kctl_expect_t *kctl_expect_new(void)
{
	kctl_expect_t *e = calloc(1, sizeof(*e));
	if (e)
		pthread_mutex_init(&e->mu, NULL);
	return e;
}

void kctl_expect_free(kctl_expect_t *e)
{
	if (!e)
		return;
	for (size_t b = 0; b < KCTL_EXPECT_BUCKETS; b++) {
		while (e->buckets[b]) {
			kctl_exp_rec_t *r = e->buckets[b];
			e->buckets[b] = r->next;
			kctl_exp_rec_free(r);
		}
	}
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* With e->mu held: the record's link, so it can be replaced or unlinked. */
static kctl_exp_rec_t **kctl_expect_find(kctl_expect_t *e, const char *key)
{
	kctl_exp_rec_t **p = &e->buckets[kctl_expect_hash(key)];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

int kctl_expect_set(kctl_expect_t *e, const char *key, int64_t adds, const char *const *dels,
		    size_t n_dels, int64_t now_ms)
{
	kctl_exp_rec_t *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->key = strdup(key);
	r->dels = n_dels ? calloc(n_dels, sizeof(char *)) : NULL;
	if (!r->key || (n_dels && !r->dels)) {
		kctl_exp_rec_free(r);
		return -1;
	}
	for (; r->n_dels < n_dels; r->n_dels++) {
		r->dels[r->n_dels] = strdup(dels[r->n_dels]);
		if (!r->dels[r->n_dels]) {
			kctl_exp_rec_free(r);
			return -1;
		}
	}
	r->adds = adds;
	r->ts_ms = now_ms;
	pthread_mutex_lock(&e->mu);
	kctl_exp_rec_t **p = kctl_expect_find(e, key);
	if (*p) {
		kctl_exp_rec_t *old = *p;
		r->next = old->next;
		kctl_exp_rec_free(old);
	}
	*p = r;
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void kctl_expect_observe_add(kctl_expect_t *e, const char *key)
{
	pthread_mutex_lock(&e->mu);
	kctl_exp_rec_t *r = *kctl_expect_find(e, key);
	if (r && r->adds > 0)
		r->adds--;
	pthread_mutex_unlock(&e->mu);
}

void kctl_expect_observe_delete(kctl_expect_t *e, const char *key, const char *pod_key)
{
	pthread_mutex_lock(&e->mu);
	kctl_exp_rec_t *r = *kctl_expect_find(e, key);
	for (size_t i = 0; r && i < r->n_dels; i++) {
		if (!strcmp(r->dels[i], pod_key)) {
			free(r->dels[i]);
			r->dels[i] = r->dels[--r->n_dels];
			break;
		}
	}
	pthread_mutex_unlock(&e->mu);
}

bool kctl_expect_satisfied(kctl_expect_t *e, const char *key, int64_t now_ms)
{
	pthread_mutex_lock(&e->mu);
	kctl_exp_rec_t *r = *kctl_expect_find(e, key);
	bool ok = !r || (r->adds <= 0 && r->n_dels == 0) ||
		  now_ms - r->ts_ms > KCTL_EXPECT_TIMEOUT_MS;
	pthread_mutex_unlock(&e->mu);
	return ok;
}

void kctl_expect_forget(kctl_expect_t *e, const char *key)
{
	pthread_mutex_lock(&e->mu);
	kctl_exp_rec_t **p = kctl_expect_find(e, key);
	if (*p) {
		kctl_exp_rec_t *r = *p;
		*p = r->next;
		kctl_exp_rec_free(r);
	}
	pthread_mutex_unlock(&e->mu);
}

/* ---- the controller ------------------------------------------------------------------------ */

struct kctl_rs {
	kctl_t *c;
	kc_queue_t *q;
	kctl_pool_t *pool;
	kctl_expect_t *exp;
};

kctl_rs_t *kctl_rs_new(kctl_t *c)
{
	kctl_rs_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->c = c;
	r->q = kc_queue_new();
	r->exp = kctl_expect_new();
	if (!r->q || !r->exp) {
		kctl_rs_free(r);
		return NULL;
	}
	return r;
}

void kctl_rs_stop(kctl_rs_t *r)
{
	if (r && r->pool) {
		kctl_pool_stop(r->pool);
		r->pool = NULL;
	}
}

void kctl_rs_free(kctl_rs_t *r)
{
	if (!r)
		return;
	kctl_rs_stop(r);
	if (r->q)
		kc_queue_free(r->q);
	kctl_expect_free(r->exp);
	free(r);
}

/* The key of the ReplicaSet controlling pod, or NULL (malloc'ed). */
static char *kctl_rs_owner_key(const json_t *pod)
{
	const json_t *ref = kc_controller_ref(pod);
	const char *kind = kc_path_str(ref, "kind"), *name = kc_path_str(ref, "name");
	if (!ref || !kind || strcmp(kind, "ReplicaSet") != 0 || !name)
		return NULL;
	return kc_key(KC_REPLICASET, kc_namespace(pod), name);
}

/* Orphans: every ReplicaSet of the pod's namespace whose selector matches it may adopt it. */
static void kctl_rs_enqueue_matching(kctl_rs_t *r, const json_t *pod)
{
	kc_informer_t *inf = kctl_informer(r->c, KC_REPLICASET);
	const char *ns = kc_namespace(pod);
	if (!inf || !ns || kc_deleting(pod))
		return;
	json_t *all = kc_informer_list(inf);
	size_t i;
	json_t *rs;
	json_array_foreach(all, i, rs) {
		const char *rns = kc_namespace(rs);
		kc_selector_t *sel = NULL;
		char msg[256];
		if (!rns || strcmp(rns, ns) != 0 ||
		    kc_selector_from_json(kc_path(rs, "spec.selector"), &sel, msg, sizeof(msg)))
			continue;
		if (kc_selector_matches(sel, kc_path(pod, "metadata.labels"))) {
			char *key = kc_object_key(rs);
			if (key)
				kc_queue_add(r->q, key);
			free(key);
		}
		if (sel)
			kc_selector_free(sel);
	}
	json_decref(all);
}

static void kctl_rs_pod_event(kctl_rs_t *r, const char *pod_key, const json_t *old_obj,
			      const json_t *new_obj)
{
	char *okey = old_obj ? kctl_rs_owner_key(old_obj) : NULL;
	char *nkey = new_obj ? kctl_rs_owner_key(new_obj) : NULL;
	if (!old_obj && nkey) {
		/* Seen Terminating at once (e.g. after a restart): it counts as deleted. */
		if (kc_deleting(new_obj))
			kctl_expect_observe_delete(r->exp, nkey, pod_key);
		else
			kctl_expect_observe_add(r->exp, nkey);
	} else if (old_obj && new_obj && nkey && kc_deleting(new_obj) && !kc_deleting(old_obj)) {
		kctl_expect_observe_delete(r->exp, nkey, pod_key);
	} else if (!new_obj && okey) {
		kctl_expect_observe_delete(r->exp, okey, pod_key);
	}
	if (okey)
		kc_queue_add(r->q, okey);
	if (nkey && (!okey || strcmp(okey, nkey) != 0))
		kc_queue_add(r->q, nkey);
	if (new_obj && !nkey)
		kctl_rs_enqueue_matching(r, new_obj);
	free(okey);
	free(nkey);
}

void kctl_rs_event(kctl_rs_t *r, kc_kind_t kind, const char *key, const json_t *old_obj,
		   const json_t *new_obj)
{
	if (!r)
		return;
	if (kind == KC_REPLICASET)
		kc_queue_add(r->q, key);
	else if (kind == KC_POD)
		kctl_rs_pod_event(r, key, old_obj, new_obj);
}

void kctl_rs_resync(kctl_rs_t *r)
{
	kc_informer_t *inf = kctl_informer(r->c, KC_REPLICASET);
	if (!inf)
		return;
	json_t *all = kc_informer_list(inf);
	size_t i;
	json_t *rs;
	json_array_foreach(all, i, rs) {
		char *key = kc_object_key(rs);
		if (key)
			kc_queue_add(r->q, key);
		free(key);
	}
	json_decref(all);
}

/* ---- one sync ------------------------------------------------------------------------------ */

typedef struct kctl_rs_sync {
	kctl_rs_t *r;
	const json_t *rs;
	const char *key, *ns, *name, *uid;
	kc_selector_t *sel;
	json_t *pod_template; /* for creates */
	const json_t **victims;
	atomic_bool delete_failed;  /* set by kctl_parallel's threads */
	atomic_bool create_invalid; /* the template does not make a valid pod: retrying won't help */
	int can_adopt;              /* 0: not checked yet, 1: the store has this uid, -1: not */
} kctl_rs_sync_t;

typedef struct kctl_claim {
	const kctl_rs_sync_t *s;
	bool adopt;
	bool done;
} kctl_claim_t;

static int kctl_claim_mutate(void *ud, json_t *pod, keel_error_t *err)
{
	kctl_claim_t *cl = ud;
	const kctl_rs_sync_t *s = cl->s;
	(void)err;
	const json_t *ref = kc_controller_ref(pod);
	bool matches = kc_selector_matches(s->sel, kc_path(pod, "metadata.labels"));
	if (cl->adopt) {
		if (ref || kc_deleting(pod) || !matches)
			return 1;
		json_t *owner = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", "apps/v1",
					  "kind", "ReplicaSet", "name", s->name, "uid", s->uid,
					  "controller", 1, "blockOwnerDeletion", 1);
		json_t *refs = kc_path(pod, "metadata.ownerReferences");
		if (!owner)
			return 1;
		if (json_is_array(refs))
			json_array_append_new(refs, owner);
		else if (kc_path_set(pod, "metadata.ownerReferences", json_pack("[o]", owner)))
			return 1;
		cl->done = true;
		return 0;
	}
	const char *uid = kc_path_str(ref, "uid");
	if (!ref || !uid || strcmp(uid, s->uid) != 0 || matches)
		return 1;
	json_t *refs = kc_path(pod, "metadata.ownerReferences");
	for (size_t i = json_array_size(refs); i-- > 0;) {
		const char *u = kc_path_str(json_array_get(refs, i), "uid");
		if (u && !strcmp(u, s->uid))
			json_array_remove(refs, i);
	}
	cl->done = true;
	return 0;
}

/* Adopts or releases one pod; true when it now belongs to the ReplicaSet (adopt) or no longer
 * does (release). */
/* Before adopting, as Kubernetes: the cached ReplicaSet may be one deleted (and maybe
 * recreated) since; a pod adopted by a dead uid would be garbage-collected. */
static bool kctl_rs_can_adopt(kctl_rs_sync_t *s)
{
	if (s->can_adopt == 0) {
		json_t *live = NULL;
		keel_error_t err = {0};
		s->can_adopt = -1;
		if (kc_get(s->r->c->k, KC_REPLICASET, s->ns, s->name, &live, &err) == 0) {
			const char *uid = kc_uid(live);
			if (uid && !strcmp(uid, s->uid))
				s->can_adopt = 1;
			json_decref(live);
		}
	}
	return s->can_adopt > 0;
}

static bool kctl_rs_claim(kctl_rs_sync_t *s, const json_t *pod, bool adopt)
{
	if (kctl_halted(s->r->c) || (adopt && !kctl_rs_can_adopt(s)))
		return false;
	kctl_claim_t cl = {.s = s, .adopt = adopt};
	keel_error_t err = {0};
	const char *pname = kc_name(pod);
	if (kc_modify(s->r->c->k, KC_POD, s->ns, pname, kctl_claim_mutate, &cl, NULL, &err)) {
		if (err.code != KEEL_CODE_NOT_FOUND)
			kctl_log("replicaset %s/%s: %s pod %s: %s", s->ns, s->name,
				 adopt ? "adopting" : "releasing", pname, err.message);
		return false;
	}
	if (cl.done)
		kctl_log("replicaset %s/%s: %s pod %s", s->ns, s->name,
			 adopt ? "adopted" : "released", pname);
	return cl.done;
}

/* The active pods the ReplicaSet owns after adopting and releasing (shared, read-only). */
static const json_t **kctl_rs_claim_pods(kctl_rs_sync_t *s, json_t *all, size_t *n_out)
{
	size_t n = 0;
	const json_t **owned = calloc(json_array_size(all) + 1, sizeof(*owned));
	if (!owned)
		return NULL;
	size_t i;
	json_t *pod;
	json_array_foreach(all, i, pod) {
		const char *ns = kc_namespace(pod);
		if (!ns || strcmp(ns, s->ns) != 0 || !kctl_pod_active(pod))
			continue;
		const json_t *ref = kc_controller_ref(pod);
		bool matches = kc_selector_matches(s->sel, kc_path(pod, "metadata.labels"));
		if (ref) {
			const char *uid = kc_path_str(ref, "uid");
			if (!uid || strcmp(uid, s->uid) != 0)
				continue;
			if (matches || !kctl_rs_claim(s, pod, false))
				owned[n++] = pod;
		} else if (matches && kctl_rs_claim(s, pod, true)) {
			owned[n++] = pod;
		}
	}
	*n_out = n;
	return owned;
}

static json_t *kctl_rs_pod_from_template(const kctl_rs_sync_t *s)
{
	const json_t *tmeta = kc_path(s->rs, "spec.template.metadata");
	const json_t *tspec = kc_path(s->rs, "spec.template.spec");
	const json_t *labels = json_object_get(tmeta, "labels");
	const json_t *annotations = json_object_get(tmeta, "annotations");
	char prefix[KCTL_MAX_GENERATE_PREFIX + 1];
	snprintf(prefix, sizeof(prefix), "%s-", s->name);
	if (strlen(s->name) + 1 > KCTL_MAX_GENERATE_PREFIX)
		prefix[KCTL_MAX_GENERATE_PREFIX] = '\0';
	json_t *l = json_is_object(labels) ? json_deep_copy(labels) : json_object();
	json_t *spec = json_is_object(tspec) ? json_deep_copy(tspec) : json_object();
	/* "o" steals l and spec, even when packing fails. */
	json_t *pod = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:o, s:[{s:s, s:s, s:s, s:s, s:b, s:b}]}, s:o}",
		"apiVersion", "v1", "kind", "Pod", "metadata", "generateName", prefix,
		"namespace", s->ns, "labels", l, "ownerReferences", "apiVersion", "apps/v1",
		"kind", "ReplicaSet", "name", s->name, "uid", s->uid, "controller", 1,
		"blockOwnerDeletion", 1, "spec", spec);
	if (pod && json_is_object(annotations))
		kc_path_set(pod, "metadata.annotations", json_deep_copy(annotations));
	return pod;
}

static int kctl_rs_create_one(void *ud, size_t i)
{
	kctl_rs_sync_t *s = ud;
	(void)i;
	if (kctl_halted(s->r->c))
		return -1;
	json_t *pod = json_deep_copy(s->pod_template);
	keel_error_t err = {0};
	if (!pod)
		return -1;
	if (kc_create(s->r->c->k, pod, &err) != 0) {
		kctl_log("replicaset %s/%s: creating a pod: %s", s->ns, s->name, err.message);
		if (err.code == KEEL_CODE_INVALID_ARGUMENT)
			atomic_store(&s->create_invalid, true);
		json_decref(pod);
		return -1;
	}
	kctl_log("replicaset %s/%s: created pod %s", s->ns, s->name, kc_name(pod));
	json_decref(pod);
	return 0;
}

static int kctl_rs_delete_one(void *ud, size_t i)
{
	kctl_rs_sync_t *s = ud;
	const char *pname = kc_name(s->victims[i]);
	keel_error_t err = {0};
	char *pkey = kc_key(KC_POD, s->ns, pname);
	if (kctl_halted(s->r->c)) {
		if (pkey)
			kctl_expect_observe_delete(s->r->exp, s->key, pkey);
		free(pkey);
		return 0;
	}
	/* Only the pod ranked (same uid, still ours): one re-created or released since was not. */
	int rc = kc_pod_delete_if(s->r->c->k, s->victims[i], -1, false, &err);
	if (rc == 0)
		kctl_log("replicaset %s/%s: deleted pod %s", s->ns, s->name, pname);
	if (rc != 0 && pkey) /* no event will come for it */
		kctl_expect_observe_delete(s->r->exp, s->key, pkey);
	if (rc != 0 && err.code != KEEL_CODE_NOT_FOUND) {
		kctl_log("replicaset %s/%s: deleting pod %s: %s", s->ns, s->name, pname,
			 err.message);
		atomic_store(&s->delete_failed, true);
	}
	free(pkey);
	return 0;
}

static int kctl_rs_create(kctl_rs_sync_t *s, size_t want)
{
	kctl_rs_t *r = s->r;
	s->pod_template = kctl_rs_pod_from_template(s);
	if (!s->pod_template)
		return KCTL_RETRY;
	if (kctl_expect_set(r->exp, s->key, (int64_t)want, NULL, 0, kc_mono_ms()) != 0)
		return KCTL_RETRY;
	size_t created = 0, done = 0;
	for (size_t b = kctl_batch_next(0, want); b > 0; b = kctl_batch_next(b, want - done)) {
		size_t ok = kctl_parallel(b, KCTL_CREATE_THREADS, kctl_rs_create_one, s, NULL);
		created += ok;
		done += b;
		if (ok < b || kctl_halted(r->c))
			break;
	}
	/* Nothing will be observed for the pods not created. */
	for (size_t i = created; i < want; i++)
		kctl_expect_observe_add(r->exp, s->key);
	/* An invalid template waits for the ReplicaSet to change (its event) or the resync. */
	return created == want || atomic_load(&s->create_invalid) ? KCTL_DONE : KCTL_RETRY;
}

static int kctl_rs_delete(kctl_rs_sync_t *s, const json_t **owned, size_t n_owned, size_t n)
{
	kctl_pods_sort_for_delete(owned, n_owned);
	s->victims = owned;
	char **keys = calloc(n, sizeof(char *));
	if (!keys)
		return KCTL_RETRY;
	size_t nk = 0;
	for (; nk < n; nk++) {
		keys[nk] = kc_key(KC_POD, s->ns, kc_name(owned[nk]));
		if (!keys[nk])
			break;
	}
	int rc = KCTL_RETRY;
	if (nk == n && kctl_expect_set(s->r->exp, s->key, 0, (const char *const *)keys, n,
				       kc_mono_ms()) == 0) {
		kctl_parallel(n, KCTL_CREATE_THREADS, kctl_rs_delete_one, s, NULL);
		rc = atomic_load(&s->delete_failed) ? KCTL_RETRY : KCTL_DONE;
	}
	for (size_t i = 0; i < nk; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

typedef struct kctl_rs_status {
	const char *uid;
	kctl_rs_counts_t counts;
	int64_t generation;
	bool written; /* the last call of the mutation wrote */
} kctl_rs_status_t;

static const char *const kctl_rs_status_fields[] = {
	"replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
	"observedGeneration",
};

static void kctl_rs_status_values(const kctl_rs_status_t *st, int64_t v[5])
{
	v[0] = st->counts.replicas;
	v[1] = st->counts.fully_labeled;
	v[2] = st->counts.ready;
	v[3] = st->counts.available;
	v[4] = st->generation;
}

static bool kctl_rs_status_same(const json_t *rs, const kctl_rs_status_t *st)
{
	int64_t v[5];
	kctl_rs_status_values(st, v);
	const json_t *status = kc_path(rs, "status");
	for (size_t i = 0; i < 5; i++) {
		const json_t *f = json_object_get(status, kctl_rs_status_fields[i]);
		if (!json_is_integer(f) || json_integer_value(f) != v[i])
			return false;
	}
	return true;
}

static int kctl_rs_status_mutate(void *ud, json_t *rs, keel_error_t *err)
{
	kctl_rs_status_t *st = ud;
	const char *uid = kc_uid(rs);
	(void)err;
	st->written = false;
	if (!uid || strcmp(uid, st->uid) != 0 || kctl_rs_status_same(rs, st))
		return 1;
	json_t *status = kc_path(rs, "status");
	if (!json_is_object(status)) {
		if (kc_path_set(rs, "status", json_object()))
			return 1;
		status = kc_path(rs, "status");
	}
	int64_t v[5];
	kctl_rs_status_values(st, v);
	for (size_t i = 0; i < 5; i++)
		json_object_set_new(status, kctl_rs_status_fields[i], json_integer(v[i]));
	st->written = true;
	return 0;
}

static int kctl_rs_update_status(kctl_rs_sync_t *s, const json_t **owned, size_t n)
{
	char now[32];
	kc_time_now(now);
	kctl_rs_status_t st = {.uid = s->uid,
			       .generation = kc_path_int(s->rs, "metadata.generation", 1)};
	kctl_rs_count(s->rs, owned, n, kc_time_parse(now), &st.counts);
	int64_t min_ready = kc_path_int(s->rs, "spec.minReadySeconds", 0);
	/* Ready pods become available later without any event: look again then. */
	if (min_ready > 0 && st.counts.ready > st.counts.available)
		kc_queue_add_after(s->r->q, s->key, (int)(min_ready > 3600 ? 3600 : min_ready) * 1000);
	if (kctl_rs_status_same(s->rs, &st) || kctl_halted(s->r->c))
		return KCTL_DONE;
	keel_error_t err = {0};
	if (kc_modify(s->r->c->k, KC_REPLICASET, s->ns, s->name, kctl_rs_status_mutate, &st, NULL,
		      &err)) {
		if (err.code == KEEL_CODE_NOT_FOUND)
			return KCTL_DONE;
		kctl_log("replicaset %s/%s: updating status: %s", s->ns, s->name, err.message);
		return err.code == KEEL_CODE_INVALID_ARGUMENT ? KCTL_DONE : KCTL_RETRY;
	}
	if (st.written)
		kctl_debug(s->r->c,
			   "replicaset %s/%s: status replicas=%lld ready=%lld available=%lld", s->ns,
			   s->name, (long long)st.counts.replicas, (long long)st.counts.ready,
			   (long long)st.counts.available);
	return KCTL_DONE;
}

static int kctl_rs_sync_owned(kctl_rs_sync_t *s, json_t *all, bool satisfied)
{
	kctl_rs_t *r = s->r;
	size_t n = 0;
	const json_t **owned = kctl_rs_claim_pods(s, all, &n);
	if (!owned)
		return KCTL_RETRY;
	int rc = KCTL_DONE;
	int64_t replicas = kc_path_int(s->rs, "spec.replicas", 1);
	if (replicas < 0)
		replicas = 0;
	if (!satisfied) {
		/* The events still awaited requeue it; this is the fallback for lost ones. */
		kc_queue_add_after(r->q, s->key, 1000);
	} else if (!kctl_halted(r->c) && (int64_t)n < replicas) {
		int64_t d = replicas - (int64_t)n;
		rc = kctl_rs_create(s, (size_t)(d > KCTL_BURST_REPLICAS ? KCTL_BURST_REPLICAS : d));
	} else if (!kctl_halted(r->c) && (int64_t)n > replicas) {
		int64_t d = (int64_t)n - replicas;
		rc = kctl_rs_delete(s, owned, n,
				    (size_t)(d > KCTL_BURST_REPLICAS ? KCTL_BURST_REPLICAS : d));
		/* Sorting reordered owned; the status counts do not care. */
	}
	int src = kctl_rs_update_status(s, owned, n);
	free(owned);
	return rc != KCTL_DONE ? rc : src;
}

/* True (with kubectl's text in msg) when the ReplicaSet, defaulted as the API would, fails
 * validation. The cached object is shared: a copy is defaulted. */
static bool kctl_rs_invalid(const json_t *rs, char *msg, size_t n)
{
	json_t *copy = json_deep_copy(rs);
	if (!copy) {
		snprintf(msg, n, "out of memory");
		return true;
	}
	kc_object_default(KC_REPLICASET, copy);
	int rc = kc_object_validate(KC_REPLICASET, copy, msg, n);
	json_decref(copy);
	return rc != 0;
}

static int kctl_rs_sync(void *ud, const char *key)
{
	kctl_rs_t *r = ud;
	kctl_t *c = r->c;
	if (kctl_halted(c))
		return KCTL_DONE;
	json_t *rs = kc_informer_get(kctl_informer(c, KC_REPLICASET), key);
	if (!rs) {
		kctl_expect_forget(r->exp, key);
		return KCTL_DONE;
	}
	kctl_rs_sync_t s = {.r = r, .rs = rs, .key = key, .ns = kc_namespace(rs),
			    .name = kc_name(rs), .uid = kc_uid(rs)};
	char msg[512];
	int rc = KCTL_DONE;
	if (!s.ns || !s.name || !s.uid) {
		kctl_log("replicaset %s: no namespace, name or uid: ignored", key);
	} else if (kctl_rs_invalid(rs, msg, sizeof(msg))) {
		/* Written past the API's validation (straight into the store): an empty selector
		 * would claim every pod of the namespace, one that misses the template's labels
		 * would release each pod it creates and create without end. */
		if (kctl_once(c->invalid, key, kc_resource_version(rs)))
			kctl_log("replicaset %s/%s: ignored until it is fixed: %s", s.ns, s.name,
				 msg);
	} else if (kc_selector_from_json(kc_path(rs, "spec.selector"), &s.sel, msg,
					 sizeof(msg))) {
		kctl_log("replicaset %s/%s: invalid selector: %s", s.ns, s.name, msg);
	} else {
		/* Expectations before the pod list, as client-go: an add observed between the two
		 * would otherwise count as seen while the list still lacks the pod. */
		bool satisfied = kctl_expect_satisfied(r->exp, key, kc_mono_ms());
		json_t *all = kc_informer_list(kctl_informer(c, KC_POD));
		rc = all ? kctl_rs_sync_owned(&s, all, satisfied) : KCTL_RETRY;
		json_decref(all);
	}
	if (s.sel)
		kc_selector_free(s.sel);
	json_decref(s.pod_template);
	json_decref(rs);
	return rc;
}

void kctl_rs_start(kctl_rs_t *r)
{
	r->pool = kctl_pool_start(r->q, r->c->cfg->workers, kctl_rs_sync, r);
}
