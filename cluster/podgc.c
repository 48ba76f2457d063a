/* cluster/podgc.c — garbage collection of pods: a pod whose controller owner is gone (checked
 * live, by uid, after the cache says so) is deleted gracefully; a pod bound to a node that does
 * not exist is deleted at once (force). Terminated pods are otherwise kept. Never acts while
 * halted, and never on the cache's word alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers_int.h"

struct kctl_gc {
	kctl_t *c;
	kc_queue_t *q;
	kctl_pool_t *pool;
};

kctl_gc_t *kctl_gc_new(kctl_t *c)
{
	kctl_gc_t *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->c = c;
	g->q = kc_queue_new();
	if (!g->q) {
		free(g);
		return NULL;
	}
	return g;
}

void kctl_gc_stop(kctl_gc_t *g)
{
	if (g && g->pool) {
		kctl_pool_stop(g->pool);
		g->pool = NULL;
	}
}

void kctl_gc_free(kctl_gc_t *g)
{
	if (!g)
		return;
	kctl_gc_stop(g);
	kc_queue_free(g->q);
	free(g);
}

static void kctl_gc_enqueue_pod(kctl_gc_t *g, const json_t *pod)
{
	char *key = kc_object_key(pod);
	if (key)
		kc_queue_add(g->q, key);
	free(key);
}

/* The pods whose controller ref has this uid, or that are bound to this node. */
static void kctl_gc_enqueue_dependents(kctl_gc_t *g, const char *owner_uid, const char *node)
{
	kc_informer_t *inf = kctl_informer(g->c, KC_POD);
	if (!inf)
		return;
	json_t *all = kc_informer_list(inf);
	size_t i;
	json_t *pod;
	json_array_foreach(all, i, pod) {
		const char *uid = kc_path_str(kc_controller_ref(pod), "uid");
		const char *on = kc_path_str(pod, "spec.nodeName");
		bool owned = owner_uid && uid && !strcmp(uid, owner_uid);
		if (owned || (node && on && !strcmp(on, node)))
			kctl_gc_enqueue_pod(g, pod);
	}
	json_decref(all);
}

void kctl_gc_event(kctl_gc_t *g, kc_kind_t kind, const char *key, const json_t *old_obj,
		   const json_t *new_obj)
{
	if (!g)
		return;
	if (kind == KC_POD && new_obj)
		kc_queue_add(g->q, key);
	else if (kind == KC_REPLICASET && !new_obj && old_obj && kc_uid(old_obj))
		kctl_gc_enqueue_dependents(g, kc_uid(old_obj), NULL);
	else if (kind == KC_NODE && !new_obj && old_obj && kc_name(old_obj))
		kctl_gc_enqueue_dependents(g, NULL, kc_name(old_obj));
}

void kctl_gc_resync(kctl_gc_t *g)
{
	kc_informer_t *inf = kctl_informer(g->c, KC_POD);
	if (!inf)
		return;
	json_t *all = kc_informer_list(inf);
	size_t i;
	json_t *pod;
	json_array_foreach(all, i, pod)
		kctl_gc_enqueue_pod(g, pod);
	json_decref(all);
}

/* 1 when the object is confirmed gone from the store (or replaced: another uid), 0 when it
 * exists, -1 when the store could not tell. */
static int kctl_gc_gone(kctl_t *c, kc_kind_t kind, const char *ns, const char *name,
			const char *uid)
{
	json_t *obj = NULL;
	keel_error_t err = {0};
	if (kc_get(c->k, kind, ns, name, &obj, &err) != 0)
		return err.code == KEEL_CODE_NOT_FOUND ? 1 : -1;
	const char *have = kc_uid(obj);
	int gone = uid && have && strcmp(uid, have) != 0;
	json_decref(obj);
	return gone;
}

/* Deletes exactly the version of the pod that was examined; a pod changed since (conflict) is
 * examined again from the cache after the backoff. */
static int kctl_gc_delete(kctl_t *c, const json_t *pod, bool force, const char *why)
{
	keel_error_t err = {0};
	const char *ns = kc_namespace(pod), *name = kc_name(pod);
	if (kctl_halted(c))
		return KCTL_DONE;
	/* rv 0 would make kc_delete unconditioned; a cached object always has one. */
	int64_t rv = kc_resource_version(pod);
	if (force && rv <= 0)
		return KCTL_DONE;
	/* Graceful: only the incarnation examined (same uid and owner), which the store call
	 * re-reads and marks under a resourceVersion condition. */
	int rc = force ? kc_delete(c->k, KC_POD, ns, name, rv, &err)
		       : kc_pod_delete_if(c->k, pod, -1, false, &err);
	if (rc != 0) {
		if (err.code == KEEL_CODE_NOT_FOUND)
			return KCTL_DONE;
		if (err.code == KEEL_CODE_ABORTED)
			kctl_debug(c, "podgc: pod %s/%s changed since it was examined: again later",
				   ns, name);
		else
			kctl_log("podgc: deleting pod %s/%s: %s", ns, name, err.message);
		return KCTL_RETRY;
	}
	kctl_log("podgc: deleted pod %s/%s%s: %s", ns, name, force ? " (force)" : "", why);
	return KCTL_DONE;
}

/* Bound to a node that does not exist. */
static int kctl_gc_check_node(kctl_t *c, const json_t *pod, bool *deleted)
{
	const char *node = kc_path_str(pod, "spec.nodeName");
	*deleted = false;
	if (!node || !*node)
		return KCTL_DONE;
	json_t *cached = kctl_cached(c, KC_NODE, NULL, node);
	if (cached) {
		json_decref(cached);
		return KCTL_DONE;
	}
	int gone = kctl_gc_gone(c, KC_NODE, NULL, node, NULL);
	if (gone < 0)
		return KCTL_RETRY;
	if (!gone)
		return KCTL_DONE;
	char why[320];
	snprintf(why, sizeof(why), "node %s does not exist", node);
	*deleted = true;
	return kctl_gc_delete(c, pod, true, why);
}

/* Its controller owner is gone. */
static int kctl_gc_check_owner(kctl_t *c, const json_t *pod)
{
	const json_t *ref = kc_controller_ref(pod);
	const char *kind = kc_path_str(ref, "kind"), *name = kc_path_str(ref, "name");
	const char *uid = kc_path_str(ref, "uid");
	if (!ref || !kind || !name || !uid || kc_deleting(pod))
		return KCTL_DONE;
	/* Only owners this cluster knows; others are somebody else's business. */
	if (strcmp(kind, "ReplicaSet") != 0)
		return KCTL_DONE;
	const char *ns = kc_namespace(pod);
	json_t *owner = kctl_cached(c, KC_REPLICASET, ns, name);
	const char *ouid = kc_uid(owner);
	bool present = ouid && !strcmp(ouid, uid);
	json_decref(owner);
	if (present)
		return KCTL_DONE;
	int gone = kctl_gc_gone(c, KC_REPLICASET, ns, name, uid);
	if (gone < 0)
		return KCTL_RETRY;
	if (!gone)
		return KCTL_DONE;
	char why[320];
	snprintf(why, sizeof(why), "owner replicaset %s (uid %s) is gone", name, uid);
	return kctl_gc_delete(c, pod, false, why);
}

static int kctl_gc_sync(void *ud, const char *key)
{
	kctl_gc_t *g = ud;
	kctl_t *c = g->c;
	if (kctl_halted(c))
		return KCTL_DONE;
	json_t *pod = kc_informer_get(kctl_informer(c, KC_POD), key);
	if (!pod)
		return KCTL_DONE;
	bool deleted = false;
	int rc = kctl_gc_check_node(c, pod, &deleted);
	if (rc == KCTL_DONE && !deleted)
		rc = kctl_gc_check_owner(c, pod);
	json_decref(pod);
	return rc;
}

void kctl_gc_start(kctl_gc_t *g)
{
	g->pool = kctl_pool_start(g->q, g->c->cfg->workers, kctl_gc_sync, g);
}
