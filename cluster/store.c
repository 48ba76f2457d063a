/* cluster/store.c — objects in the store: get, list, create, update, delete, read-modify-write,
 * every write of an existing object a txn conditioned on its resourceVersion (filled on read,
 * never stored). A write is one round trip, success or failure; never an unconditioned put. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster.h"
#include "informer_int.h"

#define STORE_DEFAULT_ENDPOINT "127.0.0.1:2379"
#define STORE_NAME_RETRIES 16       /* generateName clashes before giving up */
#define STORE_MODIFY_RETRIES 100    /* conflicts kc_modify absorbs before giving up */
#define STORE_MAX_ENDPOINTS 32

/* ---- connecting ------------------------------------------------------------------------- */

int kc_connect(const char *endpoints, keel_t **out, keel_error_t *err)
{
	const char *eps[STORE_MAX_ENDPOINTS];
	keel_options_t opt;
	char *copy, *save = NULL, *tok;
	size_t n = 0;
	int rc;

	if (!out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_connect: no result");
	*out = NULL;
	if (!endpoints || !*endpoints)
		endpoints = getenv("KEEL_ENDPOINTS");
	if (!endpoints || !*endpoints)
		endpoints = STORE_DEFAULT_ENDPOINT;
	copy = strdup(endpoints);
	if (!copy)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	for (tok = strtok_r(copy, ", ", &save); tok && n < STORE_MAX_ENDPOINTS;
	     tok = strtok_r(NULL, ", ", &save))
		eps[n++] = tok;
	if (n == 0) {
		free(copy);
		return keel_error_set(err, KEEL_CODE_LOCAL, "no endpoint in \"%s\"", endpoints);
	}
	keel_options_init(&opt);
	opt.endpoints = eps;
	opt.n_endpoints = n;
	rc = keel_connect(&opt, out, err);
	free(copy);
	return rc;
}

/* ---- encoding ----------------------------------------------------------------------------- */

static const char *store_resource(kc_kind_t kind)
{
	const kc_kind_info_t *ki = kc_kind_info(kind);

	return ki && ki->resource ? ki->resource : "objects";
}

static int store_not_found(keel_error_t *err, kc_kind_t kind, const char *name)
{
	return keel_error_set(err, KEEL_CODE_NOT_FOUND, "%s \"%s\" not found", store_resource(kind),
			      name ? name : "");
}

static int store_conflict(keel_error_t *err, kc_kind_t kind, const char *name)
{
	return keel_error_set(err, KEEL_CODE_ABORTED,
			      "Operation cannot be fulfilled on %s \"%s\": the object has been "
			      "modified; please apply your changes to the latest version and try "
			      "again",
			      store_resource(kind), name ? name : "");
}

static int store_oom(keel_error_t *err)
{
	return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
}

/* The stored text of obj: compact JSON without metadata.resourceVersion (malloc'ed). obj is
 * not changed: only the top level and metadata are copied, shallowly. */
static char *store_encode(const json_t *obj)
{
	json_t *top = json_copy((json_t *)obj);
	json_t *meta = json_object_get(obj, "metadata");
	char *text;

	if (!top)
		return NULL;
	if (json_is_object(meta) && json_object_get(meta, "resourceVersion")) {
		json_t *m = json_copy(meta);

		if (!m) {
			json_decref(top);
			return NULL;
		}
		json_object_del(m, "resourceVersion");
		json_object_set_new(top, "metadata", m);
	}
	text = json_dumps(top, JSON_COMPACT);
	json_decref(top);
	return text;
}

static void store_set_rv(json_t *obj, int64_t rev)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)rev);
	kc_path_set(obj, "metadata.resourceVersion", json_string(buf));
}

/* The object stored in kv, with its resourceVersion; NULL with why in msg when the value is
 * not a JSON object. */
json_t *kc_store_decode(const keel_kv_t *kv, char *msg, size_t n)
{
	json_error_t je;
	json_t *obj = json_loadb((const char *)kv->value, kv->value_len, 0, &je);

	if (!obj) {
		snprintf(msg, n, "cannot decode %.*s: %s", (int)kv->key_len, (const char *)kv->key,
			 je.text);
		return NULL;
	}
	if (!json_is_object(obj) ||
	    (json_object_get(obj, "metadata") && !json_is_object(json_object_get(obj, "metadata")))) {
		snprintf(msg, n, "cannot decode %.*s: not a JSON object with object metadata",
			 (int)kv->key_len, (const char *)kv->key);
		json_decref(obj);
		return NULL;
	}
	store_set_rv(obj, kv->mod_revision);
	return obj;
}

/* ---- reading --------------------------------------------------------------------------- */

int kc_get(keel_t *k, kc_kind_t kind, const char *ns, const char *name, json_t **out,
	   keel_error_t *err)
{
	keel_range_result_t *r = NULL;
	char msg[512];
	char *key;
	int rc;

	if (!out || !name)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_get: no name or no result");
	*out = NULL;
	key = kc_key(kind, ns, name);
	if (!key)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "no key for %s \"%s\"",
				      store_resource(kind), name);
	rc = keel_get(k, key, &r, err);
	free(key);
	if (rc)
		return rc;
	if (r->n_kvs == 0) {
		keel_range_result_free(r);
		return store_not_found(err, kind, name);
	}
	*out = kc_store_decode(&r->kvs[0], msg, sizeof(msg));
	keel_range_result_free(r);
	if (!*out)
		return keel_error_set(err, KEEL_CODE_DATA_LOSS, "%s", msg);
	return 0;
}

int kc_list(keel_t *k, kc_kind_t kind, const char *ns, json_t **items, int64_t *revision,
	    keel_error_t *err)
{
	keel_range_req_t req = { 0 };
	keel_range_result_t *r = NULL;
	char *prefix;
	uint8_t *end;
	json_t *arr;
	int rc;

	if (!items)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_list: no result");
	*items = NULL;
	prefix = kc_prefix(kind, ns);
	end = prefix ? malloc(strlen(prefix) + 1) : NULL;
	if (!end) {
		free(prefix);
		return store_oom(err);
	}
	req.key = prefix;
	req.key_len = strlen(prefix);
	req.range_end = end;
	req.range_end_len = keel_prefix_end(prefix, req.key_len, end);
	rc = keel_range(k, &req, &r, err);
	free(prefix);
	free(end);
	if (rc)
		return rc;
	arr = json_array();
	if (!arr) {
		keel_range_result_free(r);
		return store_oom(err);
	}
	for (size_t i = 0; i < r->n_kvs; i++) {
		char msg[512];
		json_t *obj = kc_store_decode(&r->kvs[i], msg, sizeof(msg));

		if (!obj) {
			fprintf(stderr, "kc_list: skipping %s\n", msg);
			continue;
		}
		json_array_append_new(arr, obj);
	}
	if (revision)
		*revision = r->header.revision;
	keel_range_result_free(r);
	*items = arr;
	return 0;
}

/* ---- creating ------------------------------------------------------------------------------ */

static int store_random(void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((char *)buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int store_uuid(char out[37])
{
	uint8_t b[16];

	if (store_random(b, sizeof(b)) != 0)
		return -1;
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

/* generateName + 5 characters of Kubernetes' alphabet (no vowels, no look-alikes). */
static int store_generate_name(json_t *obj, const char *base)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	uint8_t r[5];
	char *name;
	size_t n = strlen(base);

	if (store_random(r, sizeof(r)) != 0)
		return -1;
	name = malloc(n + 6);
	if (!name)
		return -1;
	memcpy(name, base, n);
	for (size_t i = 0; i < 5; i++)
		name[n + i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
	name[n + 5] = '\0';
	int rc = kc_path_set(obj, "metadata.name", json_string(name));
	free(name);
	return rc;
}

/* One attempt: writes obj under its key unless the key exists. 1 when it exists. */
static int store_create_once(keel_t *k, json_t *obj, keel_error_t *err)
{
	keel_txn_result_t *res = NULL;
	keel_put_req_t put = { 0 };
	keel_txn_t *t;
	char *key = kc_object_key(obj);
	char *text = store_encode(obj);
	int rc;

	t = keel_txn_new();
	if (!key || !text || !t) {
		free(key);
		free(text);
		keel_txn_free(t);
		return key ? store_oom(err)
			   : keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT,
					    "the object has no kind, namespace or name");
	}
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, key, strlen(key), NULL, 0, 0);
	put.key = key;
	put.key_len = strlen(key);
	put.value = text;
	put.value_len = strlen(text);
	keel_txn_put(t, KEEL_THEN, &put);
	rc = keel_txn_commit(k, t, &res, err);
	keel_txn_free(t);
	free(key);
	free(text);
	if (rc)
		return rc;
	if (!res->succeeded) {
		keel_txn_result_free(res);
		return 1;
	}
	store_set_rv(obj, res->header.revision);
	keel_txn_result_free(res);
	return 0;
}

int kc_create(keel_t *k, json_t *obj, keel_error_t *err)
{
	const char *gen = NULL;
	char msg[512], ts[32], uid[37];
	kc_kind_t kind;
	int rc;

	if (!json_is_object(obj))
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "the object is not a JSON object");
	if (kc_kind_of(obj, &kind, msg, sizeof(msg)) != 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "%s", msg);
	kc_object_default(kind, obj);
	if (!kc_name(obj) || !*kc_name(obj)) {
		gen = kc_path_str(obj, "metadata.generateName");
		if (gen && *gen && store_generate_name(obj, gen) != 0)
			return store_oom(err);
	}
	if (store_uuid(uid) != 0)
		return keel_error_set(err, KEEL_CODE_LOCAL, "getrandom: %s", strerror(errno));
	kc_time_now(ts);
	if (kc_path_set(obj, "metadata.uid", json_string(uid)) != 0 ||
	    kc_path_set(obj, "metadata.creationTimestamp", json_string(ts)) != 0 ||
	    kc_path_set(obj, "metadata.generation", json_integer(1)) != 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "metadata is not an object");
	json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
	if (kc_object_validate(kind, obj, msg, sizeof(msg)) != 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "%s", msg);
	for (int i = 0;; i++) {
		rc = store_create_once(k, obj, err);
		if (rc != 1)
			return rc;
		if (!gen || !*gen || i + 1 >= STORE_NAME_RETRIES)
			break;
		if (store_generate_name(obj, gen) != 0)
			return store_oom(err);
	}
	return keel_error_set(err, KEEL_CODE_ALREADY_EXISTS, "%s \"%s\" already exists",
			      store_resource(kind), kc_name(obj));
}

/* ---- conditioned writes ------------------------------------------------------------------- */

/* The failure branch of a conditioned write read the key: missing or modified. */
static int store_txn_failed(const keel_txn_result_t *res, kc_kind_t kind, const char *name,
			    keel_error_t *err)
{
	const keel_range_result_t *r = NULL;

	if (res->n_responses > 0 && res->responses[0].type == KEEL_OP_RANGE)
		r = res->responses[0].u.range;
	if (!r || r->n_kvs == 0)
		return store_not_found(err, kind, name);
	return store_conflict(err, kind, name);
}

/* Runs t, whose compare guards an operation on key: the else branch reads the key so that
 * one round trip tells a conflict from a missing object. Frees t; *revision (may be NULL) is
 * the write's revision on success. */
static int store_txn_guarded(keel_t *k, keel_txn_t *t, const char *key, kc_kind_t kind,
			     const char *name, int64_t *revision, keel_error_t *err)
{
	keel_txn_result_t *res = NULL;
	keel_range_req_t get = { 0 };
	int rc;

	get.key = key;
	get.key_len = strlen(key);
	get.keys_only = true;
	keel_txn_range(t, KEEL_ELSE, &get);
	rc = keel_txn_commit(k, t, &res, err);
	keel_txn_free(t);
	if (rc)
		return rc;
	if (!res->succeeded)
		rc = store_txn_failed(res, kind, name, err);
	else if (revision)
		*revision = res->header.revision;
	keel_txn_result_free(res);
	return rc;
}

int kc_update(keel_t *k, json_t *obj, keel_error_t *err)
{
	keel_put_req_t put = { 0 };
	char msg[512];
	kc_kind_t kind;
	keel_txn_t *t;
	char *key, *text;
	int64_t rv, revision = 0;
	int rc;

	if (!json_is_object(obj))
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "the object is not a JSON object");
	if (kc_kind_of(obj, &kind, msg, sizeof(msg)) != 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "%s", msg);
	rv = kc_resource_version(obj);
	if (rv <= 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT,
				      "%s \"%s\" is invalid: metadata.resourceVersion: Invalid "
				      "value: 0x0: must be specified for an update",
				      kc_kind_info(kind)->name, kc_name(obj) ? kc_name(obj) : "");
	kc_object_default(kind, obj);
	if (kc_object_validate(kind, obj, msg, sizeof(msg)) != 0)
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT, "%s", msg);
	key = kc_object_key(obj);
	text = store_encode(obj);
	t = keel_txn_new();
	if (!key || !text || !t) {
		free(key);
		free(text);
		keel_txn_free(t);
		return store_oom(err);
	}
	keel_txn_cmp_int(t, KEEL_CMP_MOD, KEEL_CMP_EQUAL, key, strlen(key), NULL, 0, rv);
	put.key = key;
	put.key_len = strlen(key);
	put.value = text;
	put.value_len = strlen(text);
	keel_txn_put(t, KEEL_THEN, &put);
	rc = store_txn_guarded(k, t, key, kind, kc_name(obj), &revision, err);
	free(key);
	free(text);
	if (rc == 0)
		store_set_rv(obj, revision);
	return rc;
}

int kc_delete(keel_t *k, kc_kind_t kind, const char *ns, const char *name, int64_t rv,
	      keel_error_t *err)
{
	keel_delete_req_t del = { 0 };
	keel_txn_t *t;
	char *key;
	int rc;

	if (!name)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_delete: no name");
	key = kc_key(kind, ns, name);
	t = keel_txn_new();
	if (!key || !t) {
		free(key);
		keel_txn_free(t);
		return store_oom(err);
	}
	if (rv > 0)
		keel_txn_cmp_int(t, KEEL_CMP_MOD, KEEL_CMP_EQUAL, key, strlen(key), NULL, 0, rv);
	else
		keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_GREATER, key, strlen(key), NULL, 0,
				 0);
	del.key = key;
	del.key_len = strlen(key);
	keel_txn_delete(t, KEEL_THEN, &del);
	rc = store_txn_guarded(k, t, key, kind, name, NULL, err);
	free(key);
	return rc;
}

/* ---- read-modify-write -------------------------------------------------------------------- */

int kc_modify(keel_t *k, kc_kind_t kind, const char *ns, const char *name, kc_mutate_fn fn,
	      void *ud, json_t **out, keel_error_t *err)
{
	int rc;

	if (out)
		*out = NULL;
	if (!fn)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_modify: no function");
	for (int attempt = 0;; attempt++) {
		json_t *obj = NULL, *spec_before;

		rc = kc_get(k, kind, ns, name, &obj, err);
		if (rc)
			return rc;
		spec_before = json_deep_copy(json_object_get(obj, "spec"));
		rc = fn(ud, obj, err);
		if (rc == 0 && !json_equal(spec_before, json_object_get(obj, "spec")))
			kc_path_set(obj, "metadata.generation",
				    json_integer(kc_path_int(obj, "metadata.generation", 0) + 1));
		json_decref(spec_before);
		if (rc == 1) {
			rc = 0;
		} else if (rc == 0) {
			rc = kc_update(k, obj, err);
			if (rc == KEEL_CODE_ABORTED && attempt + 1 < STORE_MODIFY_RETRIES) {
				json_decref(obj);
				continue;
			}
		}
		if (rc == 0 && out)
			*out = obj;
		else
			json_decref(obj);
		return rc;
	}
}

/* ---- pods ---------------------------------------------------------------------------------- */

/* Marks a bound pod for graceful deletion; 1 when it already is with no longer a grace. */
static int store_pod_mark(json_t *pod, int64_t grace)
{
	char ts[32];

	if (grace < 0)
		grace = kc_path_int(pod, "spec.terminationGracePeriodSeconds", 30);
	if (grace < 0)
		grace = 0;
	if (kc_deleting(pod)) {
		/* As Kubernetes: a second delete may only shorten the grace period. */
		int64_t cur = kc_path_int(pod, "metadata.deletionGracePeriodSeconds", grace);

		if (grace >= cur)
			return 1;
	} else {
		kc_time_now(ts);
		kc_path_set(pod, "metadata.deletionTimestamp", json_string(ts));
	}
	kc_path_set(pod, "metadata.deletionGracePeriodSeconds", json_integer(grace));
	return 0;
}

/* 0 when cur is the incarnation examined: same uid and, when examined had a controller, the
 * same controller (a pod adopted or released since is another decision). */
static int store_pod_same(const json_t *examined, const json_t *cur, keel_error_t *err)
{
	const char *uid = kc_uid(examined), *cur_uid = kc_uid(cur);
	const json_t *ref = kc_controller_ref(examined), *cur_ref = kc_controller_ref(cur);
	const char *owner = kc_path_str(ref, "uid"), *cur_owner = kc_path_str(cur_ref, "uid");

	if (uid && (!cur_uid || strcmp(uid, cur_uid) != 0))
		return keel_error_set(err, KEEL_CODE_ABORTED,
				      "pods \"%s\" was replaced since it was read (uid %s, now %s)",
				      kc_name(cur), uid, cur_uid ? cur_uid : "none");
	if (ref && (!owner || !cur_owner || strcmp(owner, cur_owner) != 0))
		return keel_error_set(err, KEEL_CODE_ABORTED,
				      "pods \"%s\" changed owner since it was read", kc_name(cur));
	return 0;
}

static int store_pod_delete(keel_t *k, const char *ns, const char *name, const json_t *examined,
			    int64_t grace, bool force, keel_error_t *err)
{
	int rc;

	if (force && !examined)
		return kc_delete(k, KC_POD, ns, name, 0, err);
	for (int attempt = 0;; attempt++) {
		json_t *pod = NULL;
		const char *node;
		bool replaced = false;

		rc = kc_get(k, KC_POD, ns, name, &pod, err);
		if (rc)
			return rc;
		node = kc_path_str(pod, "spec.nodeName");
		if (examined && (rc = store_pod_same(examined, pod, err)) != 0)
			replaced = true;
		else if (force || !node || !*node)
			rc = kc_delete(k, KC_POD, ns, name, kc_resource_version(pod), err);
		else if (store_pod_mark(pod, grace) == 0)
			rc = kc_update(k, pod, err);
		json_decref(pod);
		/* A conflict on the write is a race with a status update: read again. A replaced
		 * pod is not retried: the caller decided about another one. */
		if (rc != KEEL_CODE_ABORTED || attempt + 1 >= STORE_MODIFY_RETRIES || replaced)
			return rc;
	}
}

int kc_pod_delete(keel_t *k, const char *ns, const char *name, int64_t grace, bool force,
		  keel_error_t *err)
{
	return store_pod_delete(k, ns, name, NULL, grace, force, err);
}

int kc_pod_delete_if(keel_t *k, const json_t *pod, int64_t grace, bool force, keel_error_t *err)
{
	const char *ns = kc_namespace(pod), *name = kc_name(pod);

	if (!ns || !name || !kc_uid(pod))
		return keel_error_set(err, KEEL_CODE_INVALID_ARGUMENT,
				      "kc_pod_delete_if: the pod has no namespace, name or uid");
	return store_pod_delete(k, ns, name, pod, grace, force, err);
}
