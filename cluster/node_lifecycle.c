/* cluster/node_lifecycle.c — the node lifecycle controller: a node whose heartbeat Lease is gone
 * becomes NotReady with the unreachable taints; after the pod eviction timeout its pods are
 * deleted gracefully; when the lease is back and the agent reports Ready the taints go. Reads
 * only the caches to decide; never acts while halted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers_int.h"

#define KCTL_TAINT_UNREACHABLE "node.kubernetes.io/unreachable"

struct kctl_nlc {
	kctl_t *c;
	kc_queue_t *q;
	kctl_pool_t *pool;
};

kctl_nlc_t *kctl_nlc_new(kctl_t *c)
{
	kctl_nlc_t *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->c = c;
	n->q = kc_queue_new();
	if (!n->q) {
		free(n);
		return NULL;
	}
	return n;
}

void kctl_nlc_stop(kctl_nlc_t *n)
{
	if (n && n->pool) {
		kctl_pool_stop(n->pool);
		n->pool = NULL;
	}
}

void kctl_nlc_free(kctl_nlc_t *n)
{
	if (!n)
		return;
	kctl_nlc_stop(n);
	kc_queue_free(n->q);
	free(n);
}

void kctl_nlc_event(kctl_nlc_t *n, kc_kind_t kind, const char *key, const json_t *old_obj,
		    const json_t *new_obj)
{
	if (!n)
		return;
	if (kind == KC_NODE) {
		kc_queue_add(n->q, key);
	} else if (kind == KC_LEASE) {
		const char *name = kc_name(new_obj ? new_obj : old_obj);
		char *nkey = name ? kc_key(KC_NODE, NULL, name) : NULL;
		if (nkey)
			kc_queue_add(n->q, nkey);
		free(nkey);
	}
}

void kctl_nlc_resync(kctl_nlc_t *n)
{
	kc_informer_t *inf = kctl_informer(n->c, KC_NODE);
	if (!inf)
		return;
	json_t *all = kc_informer_list(inf);
	size_t i;
	json_t *node;
	json_array_foreach(all, i, node) {
		char *key = kc_object_key(node);
		if (key)
			kc_queue_add(n->q, key);
		free(key);
	}
	json_decref(all);
}

/* The node's unreachable taint of this effect, or NULL. */
static const json_t *kctl_unreachable_taint(const json_t *node, const char *effect)
{
	const json_t *taints = kc_path(node, "spec.taints");
	size_t i;
	const json_t *t;
	json_array_foreach(taints, i, t) {
		const char *k = kc_path_str(t, "key"), *e = kc_path_str(t, "effect");
		if (k && e && !strcmp(k, KCTL_TAINT_UNREACHABLE) && !strcmp(e, effect))
			return t;
	}
	return NULL;
}

static bool kctl_node_marked(const json_t *node)
{
	const char *ready = kc_condition_status(node, "Ready");
	return ready && !strcmp(ready, "Unknown") &&
	       kctl_unreachable_taint(node, "NoSchedule") &&
	       kctl_unreachable_taint(node, "NoExecute");
}

static int kctl_nlc_mark_mutate(void *ud, json_t *node, keel_error_t *err)
{
	static const char *const effects[] = {"NoSchedule", "NoExecute"};
	(void)ud, (void)err;
	if (kctl_node_marked(node))
		return 1;
	if (kc_condition_set(node, "Ready", "Unknown", "NodeStatusUnknown",
			     "Kubelet stopped posting node status.") < 0)
		return 1;
	json_t *taints = kc_path(node, "spec.taints");
	if (!json_is_array(taints)) {
		if (kc_path_set(node, "spec.taints", json_array()))
			return 1;
		taints = kc_path(node, "spec.taints");
	}
	char now[32];
	kc_time_now(now);
	for (size_t i = 0; i < 2; i++) {
		if (!kctl_unreachable_taint(node, effects[i]))
			json_array_append_new(taints,
					      json_pack("{s:s, s:s, s:s}", "key",
							KCTL_TAINT_UNREACHABLE, "effect",
							effects[i], "timeAdded", now));
	}
	return 0;
}

static int kctl_nlc_clear_mutate(void *ud, json_t *node, keel_error_t *err)
{
	(void)ud, (void)err;
	json_t *taints = kc_path(node, "spec.taints");
	bool changed = false;
	if (!kc_node_ready(node))
		return 1;
	for (size_t i = json_array_size(taints); i-- > 0;) {
		const char *k = kc_path_str(json_array_get(taints, i), "key");
		if (k && !strcmp(k, KCTL_TAINT_UNREACHABLE)) {
			json_array_remove(taints, i);
			changed = true;
		}
	}
	return changed ? 0 : 1;
}

/* Deletes the node's pods that do not tolerate being unreachable. */
static int kctl_nlc_evict(kctl_nlc_t *n, const char *name, const json_t *taint)
{
	kctl_t *c = n->c;
	json_t *all = kc_informer_list(kctl_informer(c, KC_POD));
	json_t *victims = json_array();
	int rc = KCTL_DONE;
	size_t i;
	json_t *pod;
	json_array_foreach(all, i, pod) {
		const char *on = kc_path_str(pod, "spec.nodeName");
		if (!on || strcmp(on, name) != 0 || kc_deleting(pod))
			continue;
		if (taint && kc_tolerates(kc_path(pod, "spec.tolerations"), taint))
			continue;
		json_array_append(victims, pod);
	}
	if (json_array_size(victims) > 0 && !kctl_halted(c))
		kctl_log("node %s: evicting %zu pods", name, json_array_size(victims));
	json_array_foreach(victims, i, pod) {
		keel_error_t err = {0};
		if (kctl_halted(c))
			break;
		const char *pns = kc_namespace(pod), *pname = kc_name(pod);
		if (kc_pod_delete_if(c->k, pod, -1, false, &err) == 0) {
			kctl_log("node %s: deleted pod %s/%s", name, pns, pname);
		} else if (err.code != KEEL_CODE_NOT_FOUND) {
			kctl_log("node %s: deleting pod %s/%s: %s", name, pns, pname, err.message);
			rc = KCTL_RETRY;
		}
	}
	json_decref(victims);
	json_decref(all);
	return rc;
}

/* A failed write: retried, except for a stored Node that fails validation (written past the
 * API): no retry can fix it, so it is logged once per resourceVersion and left until it
 * changes (its event or the resync brings it back). */
static int kctl_nlc_failed(kctl_t *c, const char *key, const json_t *node, const char *what,
			   const keel_error_t *err)
{
	bool invalid = err->code == KEEL_CODE_INVALID_ARGUMENT;
	if (!invalid || kctl_once(c->invalid, key, kc_resource_version(node)))
		kctl_log("node %s: %s: %s%s", kc_name(node), what, err->message,
			 invalid ? " (ignored until the node changes)" : "");
	return invalid ? KCTL_DONE : KCTL_RETRY;
}

/* When the node became unreachable, in unix seconds (its NoExecute taint's timeAdded). */
static int64_t kctl_nlc_since(const json_t *node, int64_t now)
{
	const char *t = kc_path_str(kctl_unreachable_taint(node, "NoExecute"), "timeAdded");
	int64_t since = t ? kc_time_parse(t) : -1;
	return since >= 0 ? since : now;
}

static int kctl_nlc_unreachable(kctl_nlc_t *n, const char *key, json_t *node)
{
	kctl_t *c = n->c;
	const char *name = kc_name(node);
	char nowbuf[32];
	kc_time_now(nowbuf);
	int64_t now = kc_time_parse(nowbuf);
	int64_t grace_ms = (int64_t)c->cfg->node_grace_s * 1000;
	/* A fresh leader or a fresh node: the agent may not have put its lease yet. */
	int64_t wait_ms = c->started_ms + grace_ms - kc_mono_ms();
	const char *created = kc_path_str(node, "metadata.creationTimestamp");
	int64_t ct = created ? kc_time_parse(created) : -1;
	if (ct >= 0 && (ct + c->cfg->node_grace_s - now) * 1000 > wait_ms)
		wait_ms = (ct + c->cfg->node_grace_s - now) * 1000;
	if (wait_ms > 0) {
		kc_queue_add_after(n->q, key, (int)(wait_ms + 100));
		return KCTL_DONE;
	}
	json_t *stored = NULL;
	if (!kctl_node_marked(node)) {
		keel_error_t err = {0};
		if (kctl_halted(c))
			return KCTL_DONE;
		if (kc_modify(c->k, KC_NODE, NULL, name, kctl_nlc_mark_mutate, NULL, &stored,
			      &err)) {
			if (err.code == KEEL_CODE_NOT_FOUND)
				return KCTL_DONE;
			return kctl_nlc_failed(c, key, node, "marking NotReady", &err);
		}
		kctl_log("node %s: NotReady (heartbeat lease expired)", name);
	}
	const json_t *cur = stored ? stored : node;
	int64_t left = kctl_nlc_since(cur, now) + c->cfg->pod_eviction_timeout_s - now;
	int rc = KCTL_DONE;
	if (left > 0)
		kc_queue_add_after(n->q, key, (int)(left * 1000 + 100));
	else
		rc = kctl_nlc_evict(n, name, kctl_unreachable_taint(cur, "NoExecute"));
	json_decref(stored);
	return rc;
}

static int kctl_nlc_sync(void *ud, const char *key)
{
	kctl_nlc_t *n = ud;
	kctl_t *c = n->c;
	if (kctl_halted(c))
		return KCTL_DONE;
	json_t *node = kc_informer_get(kctl_informer(c, KC_NODE), key);
	if (!node)
		return KCTL_DONE;
	const char *name = kc_name(node);
	json_t *lease = name ? kctl_cached(c, KC_LEASE, KC_NODE_LEASE_NAMESPACE, name) : NULL;
	int rc = KCTL_DONE;
	if (!name) {
		rc = KCTL_DONE;
	} else if (!lease) {
		rc = kctl_nlc_unreachable(n, key, node);
	} else if (kc_node_ready(node) && (kctl_unreachable_taint(node, "NoSchedule") ||
					   kctl_unreachable_taint(node, "NoExecute"))) {
		/* The agent is back and says Ready: the node may take pods again. */
		keel_error_t err = {0};
		if (kctl_halted(c)) {
			rc = KCTL_DONE;
		} else if (kc_modify(c->k, KC_NODE, NULL, name, kctl_nlc_clear_mutate, NULL, NULL,
				     &err) == 0) {
			kctl_log("node %s: Ready (heartbeat lease is back): unreachable taints "
				 "removed",
				 name);
		} else if (err.code != KEEL_CODE_NOT_FOUND) {
			rc = kctl_nlc_failed(c, key, node, "removing taints", &err);
		}
	}
	json_decref(lease);
	json_decref(node);
	return rc;
}

void kctl_nlc_start(kctl_nlc_t *n)
{
	n->pool = kctl_pool_start(n->q, n->c->cfg->workers, kctl_nlc_sync, n);
}
