/* cli/keel_cmd.c — the commands that change or stream the cluster: apply (create, or replace
 * the fields a manifest sets under a resourceVersion condition), delete (graceful for pods,
 * waiting for them to go), scale and logs (an HTTP/1.0 GET to the pod's agent). Every write
 * goes through the store layer's conditioned calls; nothing here writes a key directly. */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keel.h"

/* ---- manifests ------------------------------------------------------------------------------ */

static char *keel_slurp(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
		if (n == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (buf && ferror(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

int keel_read_manifest(const char *path, json_t **docs)
{
	bool is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			keel_fail("the path \"%s\" does not exist", path);
		else
			keel_fail("open %s: %s", path, strerror(errno));
		return -1;
	}
	size_t len = 0;
	char *text = keel_slurp(f, &len);
	if (!is_stdin)
		fclose(f);
	if (!text) {
		keel_fail("read %s: %s", is_stdin ? "STDIN" : path, strerror(errno ? errno : EIO));
		return -1;
	}
	char msg[1024];
	int rc = kc_manifest_parse(text, len, is_stdin ? "STDIN" : path, docs, msg, sizeof(msg));
	free(text);
	if (rc != 0) {
		keel_fail("error parsing %s: %s", is_stdin ? "STDIN" : path, msg);
		return -1;
	}
	return 0;
}

/* One object of a manifest, checked and defaulted, with where it came from. */
typedef struct keel_doc {
	json_t *obj;
	const kc_kind_info_t *ki;
	const char *source;
} keel_doc_t;

typedef struct keel_docs {
	json_t *files[KEEL_MAX_MULTI];   /* each file's parsed array (owns the objects) */
	size_t n_files;
	keel_doc_t *docs;
	size_t n, cap;
} keel_docs_t;

static void keel_docs_free(keel_docs_t *d)
{
	for (size_t i = 0; i < d->n_files; i++)
		json_decref(d->files[i]);
	free(d->docs);
	memset(d, 0, sizeof(*d));
}

/* Kind and namespace of one document: -1 after printing kubectl's error. */
static int keel_doc_place(keel_ctx_t *c, keel_doc_t *d)
{
	char msg[512];
	kc_kind_t kind;
	if (kc_kind_of(d->obj, &kind, msg, sizeof(msg)) != 0) {
		keel_fail("unable to recognize \"%s\": %s", d->source, msg);
		return -1;
	}
	d->ki = kc_kind_info(kind);
	if (!kc_name(d->obj) || !*kc_name(d->obj)) {
		keel_fail("error when retrieving current configuration from \"%s\": resource name "
			  "may not be empty", d->source);
		return -1;
	}
	if (!d->ki->namespaced)
		return 0;
	const char *ns = kc_namespace(d->obj);
	if (!ns || !*ns)
		return kc_path_set(d->obj, "metadata.namespace", json_string(c->ns)) == 0 ? 0 :
			keel_fail("out of memory");
	if (c->ns_set && strcmp(ns, c->ns) != 0) {
		keel_fail("the namespace from the provided object \"%s\" does not match the "
			  "namespace \"%s\". You must pass '--namespace=%s' to perform this "
			  "operation.", ns, c->ns, ns);
		return -1;
	}
	return 0;
}

static int keel_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory given to -f: its .yaml, .yml and .json files in name order (kubectl's rule,
 * without recursion). */
static int keel_dir_manifests(const char *dir, json_t *into)
{
	DIR *d = opendir(dir);
	if (!d)
		return keel_fail("open %s: %s", dir, strerror(errno));
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		const char *dot = strrchr(e->d_name, '.');
		bool manifest = dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 ||
					strcmp(dot, ".json") == 0);
		if (e->d_name[0] != '.' && manifest)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), keel_name_cmp);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		json_t *docs = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i] ? names[i] : "");
		if (rc == 0 && (!names[i] || keel_read_manifest(path, &docs) != 0))
			rc = 1;
		size_t j;
		json_t *obj;
		json_array_foreach(docs, j, obj) {
			json_t *rec = json_pack("{s:s, s:O}", "source", path, "obj", obj);
			if (!rec || json_array_append_new(into, rec) != 0)
				rc = 1;
		}
		json_decref(docs);
		free(names[i]);
	}
	return rc;
}

/* Reads every file, then checks every document: nothing is written unless all are good. */
static int keel_docs_load(keel_ctx_t *c, const char *const *paths, int n_paths, bool validate,
			  keel_docs_t *out)
{
	memset(out, 0, sizeof(*out));
	for (int p = 0; p < n_paths; p++) {
		json_t *docs = NULL;
		struct stat st;
		bool dir = strcmp(paths[p], "-") != 0 && stat(paths[p], &st) == 0 &&
			   S_ISDIR(st.st_mode);
		if (dir) {
			/* [{source, obj}]: the objects keep the name of their own file */
			docs = json_array();
			if (!docs || keel_dir_manifests(paths[p], docs) != 0) {
				json_decref(docs);
				return -1;
			}
		} else if (keel_read_manifest(paths[p], &docs) != 0) {
			return -1;
		}
		out->files[out->n_files++] = docs;
		size_t i;
		json_t *obj;
		json_array_foreach(docs, i, obj) {
			if (out->n == out->cap) {
				size_t cap = out->cap ? out->cap * 2 : 16;
				keel_doc_t *nd = realloc(out->docs, cap * sizeof(*nd));
				if (!nd)
					return keel_fail("out of memory"), -1;
				out->docs = nd;
				out->cap = cap;
			}
			keel_doc_t *d = &out->docs[out->n++];
			d->obj = dir ? json_object_get(obj, "obj") : obj;
			d->source = dir ? json_string_value(json_object_get(obj, "source")) :
				    strcmp(paths[p], "-") == 0 ? "STDIN" : paths[p];
			if (keel_doc_place(c, d) != 0)
				return -1;
			if (!validate)
				continue;
			char msg[1024];
			kc_object_default(d->ki->kind, d->obj);
			if (kc_object_validate(d->ki->kind, d->obj, msg, sizeof(msg)) != 0) {
				fprintf(stderr, "%s\n", msg);
				return -1;
			}
		}
	}
	if (out->n == 0 && validate) {
		keel_fail("no objects passed to apply");
		return -1;
	}
	return 0;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static const keel_flag_t keel_apply_flags[] = {
	{"filename", 'f', KEEL_FLAG_MULTI, "manifest file (YAML or JSON; - for stdin); repeatable"},
	{NULL, 0, 0, NULL},
};

static const char keel_apply_usage[] =
	"Create objects from manifests, or update the fields the manifests set.\n\n"
	"Usage:\n"
	"  keel apply -f FILE [-f FILE ...]";

typedef struct keel_apply_edit {
	const json_t *doc;
	kc_kind_t kind;
	bool changed;
} keel_apply_edit_t;

/* A copy of v without what Go's zero values make equal to absence (null, "", [], {}), so that
 * spec comparisons follow Kubernetes' semantic equality; NULL when nothing is left. */
static json_t *keel_json_semantic(const json_t *v)
{
	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		return NULL;
	json_t *out = NULL;
	if (json_is_object(v)) {
		const char *key;
		json_t *val;
		out = json_object();
		json_object_foreach((json_t *)v, key, val) {
			json_t *sv = keel_json_semantic(val);
			if (sv && out)
				json_object_set_new(out, key, sv);
			else
				json_decref(sv);
		}
		if (out && json_object_size(out) == 0) {
			json_decref(out);
			out = NULL;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *val;
		out = json_array_size(v) ? json_array() : NULL;
		json_array_foreach((json_t *)v, i, val) {
			json_t *sv = keel_json_semantic(val);
			if (out)
				json_array_append_new(out, sv ? sv : json_object());
			else
				json_decref(sv);
		}
	} else {
		out = json_deep_copy(v);
	}
	return out;
}

static bool keel_json_semantic_equal(const json_t *a, const json_t *b)
{
	json_t *sa = keel_json_semantic(a), *sb = keel_json_semantic(b);
	bool eq = (!sa && !sb) || (sa && sb && json_equal(sa, sb));
	json_decref(sa);
	json_decref(sb);
	return eq;
}

static const json_t *keel_spec_field(const json_t *spec, const char *field)
{
	const json_t *v = json_object_get(spec, field);
	return json_is_null(v) ? NULL : v;
}

/* Kubernetes' rule for activeDeadlineSeconds: it may be set, or lowered, never raised or
 * removed. */
static int keel_pod_deadline_check(const char *name, const json_t *was, const json_t *now,
				   char *msg, size_t n)
{
	if (!now) {
		if (was)
			snprintf(msg, n, "The Pod \"%s\" is invalid: spec.activeDeadlineSeconds: "
				 "Invalid value: \"null\": must not update from a positive integer "
				 "to nil value", name);
		return was ? -1 : 0;
	}
	if (!json_is_integer(now) || json_integer_value(now) < 0 ||
	    json_integer_value(now) > INT32_MAX) {
		char *text = json_dumps(now, JSON_ENCODE_ANY | JSON_COMPACT);
		snprintf(msg, n, "The Pod \"%s\" is invalid: spec.activeDeadlineSeconds: Invalid "
			 "value: %s: must be between 0 and 2147483647, inclusive", name,
			 text ? text : "?");
		free(text);
		return -1;
	}
	if (json_is_integer(was) && json_integer_value(was) < json_integer_value(now)) {
		snprintf(msg, n, "The Pod \"%s\" is invalid: spec.activeDeadlineSeconds: Invalid "
			 "value: %lld: must be less than or equal to previous value", name,
			 (long long)json_integer_value(now));
		return -1;
	}
	return 0;
}

/* Kubernetes' rule for tolerations: each existing one must still be there; only its
 * tolerationSeconds may change. */
static bool keel_pod_tolerations_kept(const json_t *was, const json_t *now)
{
	size_t i, j;
	const json_t *old, *cur;
	bool kept = true;
	json_array_foreach(was, i, old) {
		json_t *o = json_is_object(old) ? json_deep_copy(old) : json_incref((json_t *)old);
		json_object_del(o, "tolerationSeconds");
		bool found = false;
		json_array_foreach(now, j, cur) {
			json_t *c = json_is_object(cur) ? json_deep_copy(cur) :
				    json_incref((json_t *)cur);
			json_object_del(c, "tolerationSeconds");
			found = keel_json_semantic_equal(o, c);
			json_decref(c);
			if (found)
				break;
		}
		json_decref(o);
		if (!found) {
			kept = false;
			break;
		}
	}
	return kept;
}

/* The fields of spec (top level) whose values differ, as ", "-separated text in buf. */
static void keel_spec_diff_fields(const json_t *a, const json_t *b, char *buf, size_t n)
{
	const json_t *objs[2] = {a, b};
	size_t used = 0;
	buf[0] = '\0';
	for (int side = 0; side < 2; side++) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)objs[side], key, val) {
			if (side == 1 && json_object_get(a, key))
				continue;  /* compared from a's side already */
			if (keel_json_semantic_equal(json_object_get(a, key),
						     json_object_get(b, key)))
				continue;
			int w = snprintf(buf + used, n - used, "%sspec.%s", used ? ", " : "", key);
			if (w < 0 || (size_t)w >= n - used) {
				buf[used] = '\0';
				return;
			}
			used += (size_t)w;
		}
	}
}

/* What the API server lets an update change in an existing pod's spec (there is no image
 * here): activeDeadlineSeconds (set or lowered), tolerations (additions; tolerationSeconds),
 * terminationGracePeriodSeconds (to 1 from a negative value). 0, or -1 with kubectl's text. */
static int keel_pod_update_check(const char *name, const json_t *was, const json_t *now,
				 char *msg, size_t n)
{
	if (json_array_size(json_object_get(was, "containers")) !=
	    json_array_size(json_object_get(now, "containers"))) {
		snprintf(msg, n, "The Pod \"%s\" is invalid: spec.containers: Forbidden: pod "
			 "updates may not add or remove containers", name);
		return -1;
	}
	if (keel_pod_deadline_check(name, keel_spec_field(was, "activeDeadlineSeconds"),
				    keel_spec_field(now, "activeDeadlineSeconds"), msg, n) != 0)
		return -1;
	if (!keel_pod_tolerations_kept(json_object_get(was, "tolerations"),
				       json_object_get(now, "tolerations"))) {
		snprintf(msg, n, "The Pod \"%s\" is invalid: spec.tolerations: Forbidden: existing "
			 "toleration can not be modified except its tolerationSeconds", name);
		return -1;
	}
	/* The allowed changes are put back to their old values; what still differs is not
	 * allowed. */
	json_t *munged = json_is_object(now) ? json_deep_copy(now) : json_object();
	if (!munged) {
		snprintf(msg, n, "out of memory");
		return -2;
	}
	const char *kept[] = {"activeDeadlineSeconds", "tolerations"};
	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_object_get(was, kept[i]);
		if (v)
			json_object_set(munged, kept[i], v);
		else
			json_object_del(munged, kept[i]);
	}
	const json_t *grace_was = json_object_get(was, "terminationGracePeriodSeconds");
	const json_t *grace_now = json_object_get(munged, "terminationGracePeriodSeconds");
	if (json_is_integer(grace_was) && json_integer_value(grace_was) < 0 &&
	    json_is_integer(grace_now) && json_integer_value(grace_now) == 1)
		json_object_set(munged, "terminationGracePeriodSeconds", (json_t *)grace_was);
	int rc = 0;
	if (!keel_json_semantic_equal(was, munged)) {
		char fields[256];
		keel_spec_diff_fields(was, munged, fields, sizeof(fields));
		snprintf(msg, n, "The Pod \"%s\" is invalid: spec: Forbidden: pod updates may not "
			 "change fields other than `spec.activeDeadlineSeconds`,"
			 "`spec.tolerations` (only additions to existing tolerations),"
			 "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
			 "previously negative)\n  changed: %s",
			 name, fields);
		rc = -1;
	}
	json_decref(munged);
	return rc;
}

/* Replaces what the manifest sets (labels, annotations, spec), keeping status and the
 * server-set metadata; a pod keeps the node the scheduler bound it to, and its spec changes
 * only as far as Kubernetes allows (nothing is written otherwise). */
static int keel_apply_mutate(void *ud, json_t *obj, keel_error_t *err)
{
	keel_apply_edit_t *e = ud;
	json_t *before = json_deep_copy(obj);
	const json_t *dmd = json_object_get(e->doc, "metadata");
	int rc = before ? 0 : -1;
	const char *fields[] = {"labels", "annotations"};
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		json_t *v = json_object_get(dmd, fields[i]);
		if (v) {
			char path[32];
			snprintf(path, sizeof(path), "metadata.%s", fields[i]);
			rc = kc_path_set(obj, path, json_deep_copy(v));
		}
	}
	const json_t *dspec = json_object_get(e->doc, "spec");
	if (rc == 0 && dspec) {
		json_t *spec = json_deep_copy(dspec);
		const char *bound = kc_path_str(obj, "spec.nodeName");
		if (spec && e->kind == KC_POD && bound && !json_object_get(spec, "nodeName"))
			json_object_set_new(spec, "nodeName", json_string(bound));
		int bad = spec && e->kind == KC_POD ?
			keel_pod_update_check(kc_name(obj) ? kc_name(obj) : "",
					      json_object_get(obj, "spec"), spec, err->message,
					      sizeof(err->message)) : 0;
		if (bad) {
			json_decref(spec);
			json_decref(before);
			err->code = bad == -1 ? KEEL_CODE_INVALID_ARGUMENT : KEEL_CODE_LOCAL;
			return err->code;
		}
		rc = spec ? json_object_set_new(obj, "spec", spec) : -1;
	}
	if (rc != 0) {
		json_decref(before);
		err->code = KEEL_CODE_LOCAL;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return KEEL_CODE_LOCAL;
	}
	e->changed = !json_equal(before, obj);
	json_decref(before);
	return e->changed ? 0 : 1;
}

static int keel_apply_one(keel_t *k, const keel_doc_t *d)
{
	const char *ns = d->ki->namespaced ? kc_namespace(d->obj) : NULL;
	const char *name = kc_name(d->obj);
	char q[64];
	keel_kind_qualified(d->ki, q, sizeof(q));
	keel_error_t err = {0};
	json_t *cur = NULL;
	if (kc_get(k, d->ki->kind, ns, name, &cur, &err) != 0) {
		if (err.code != KEEL_CODE_NOT_FOUND) {
			keel_print_error_in(&err, "retrieving current configuration from",
					    d->source);
			return 1;
		}
		json_t *obj = json_deep_copy(d->obj);
		json_t *md = json_object_get(obj, "metadata");
		json_object_del(md, "resourceVersion");
		json_object_del(md, "uid");
		json_object_del(md, "creationTimestamp");
		if (!obj || kc_create(k, obj, &err) != 0) {
			if (!obj)
				keel_fail("out of memory");
			else
				keel_print_error_in(&err, "creating", d->source);
			json_decref(obj);
			return 1;
		}
		json_decref(obj);
		printf("%s/%s created\n", q, name);
		return 0;
	}
	json_decref(cur);
	keel_apply_edit_t e = {.doc = d->obj, .kind = d->ki->kind};
	if (kc_modify(k, d->ki->kind, ns, name, keel_apply_mutate, &e, NULL, &err) != 0) {
		keel_print_error_in(&err, "patching", d->source);
		return 1;
	}
	printf("%s/%s %s\n", q, name, e.changed ? "configured" : "unchanged");
	return 0;
}

int keel_apply_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	keel_docs_t docs = {0};
	int rc = 1;
	if (keel_flags_parse("apply", argc, argv, keel_apply_flags, &f) != 0)
		goto out;
	if (f.help) {
		keel_usage(stdout, keel_apply_usage, keel_apply_flags);
		rc = 0;
		goto out;
	}
	if (f.n_multi == 0) {
		keel_fail("must specify one of -f and -k");
		goto out;
	}
	if (f.n_pos) {
		keel_fail("Unexpected args: [%s]\nSee 'keel apply -h' for help and examples",
			  f.pos[0]);
		goto out;
	}
	if (keel_docs_load(c, f.multi, f.n_multi, true, &docs) != 0)
		goto out;
	keel_t *k = keel_ctx_store(c);
	if (!k)
		goto out;
	rc = 0;
	for (size_t i = 0; i < docs.n; i++) {
		rc |= keel_apply_one(k, &docs.docs[i]);
		fflush(stdout);
	}
out:
	keel_docs_free(&docs);
	keel_flags_free(&f);
	return rc;
}

/* ---- delete --------------------------------------------------------------------------------- */

static const keel_flag_t keel_delete_flags[] = {
	{"filename", 'f', KEEL_FLAG_MULTI, "delete the objects of this manifest; repeatable"},
	{"selector", 'l', KEEL_FLAG_VALUE, "delete the objects matching this label selector"},
	{"all", 0, KEEL_FLAG_BOOL, "delete every object of the type in the namespace"},
	{"grace-period", 0, KEEL_FLAG_VALUE, "seconds a pod gets to stop (-1: its own setting)"},
	{"force", 0, KEEL_FLAG_BOOL, "remove pods at once, without waiting for their agent"},
	{"wait", 0, KEEL_FLAG_BOOL, "wait until the objects are gone (default true)"},
	{"timeout", 0, KEEL_FLAG_VALUE, "how long to wait (0: a week)"},
	{"ignore-not-found", 0, KEEL_FLAG_BOOL, "treat missing objects as deleted"},
	{"now", 0, KEEL_FLAG_BOOL, "same as --grace-period=1"},
	{NULL, 0, 0, NULL},
};
enum { DF_FILE, DF_SELECTOR, DF_ALL, DF_GRACE, DF_FORCE, DF_WAIT, DF_TIMEOUT, DF_IGNORE,
       DF_NOW };

static const char keel_delete_usage[] =
	"Delete objects by name, manifest or label selector. Pods are deleted gracefully: their\n"
	"agent stops them first; keel waits until they are gone unless --wait=false.\n\n"
	"Usage:\n"
	"  keel delete TYPE NAME ... | TYPE/NAME ... | -f FILE | TYPE -l SELECTOR | TYPE --all";

typedef struct keel_target {
	const kc_kind_info_t *ki;
	char *ns;
	char *name;
	char *uid;    /* the object deleted, for the wait */
} keel_target_t;

typedef struct keel_targets {
	keel_target_t *v;
	size_t n, cap;
} keel_targets_t;

static int keel_targets_add(keel_targets_t *t, const kc_kind_info_t *ki, const char *ns,
			    const char *name)
{
	if (!name)
		return keel_fail("a %s to delete has no name", ki->singular);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		keel_target_t *nv = realloc(t->v, cap * sizeof(*nv));
		if (!nv)
			return keel_fail("out of memory");
		t->v = nv;
		t->cap = cap;
	}
	keel_target_t *x = &t->v[t->n];
	x->ki = ki;
	x->ns = ki->namespaced && ns ? strdup(ns) : NULL;
	x->name = strdup(name);
	x->uid = NULL;
	t->n++;
	return x->name ? 0 : keel_fail("out of memory");
}

static void keel_targets_free(keel_targets_t *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].ns);
		free(t->v[i].name);
		free(t->v[i].uid);
	}
	free(t->v);
}

/* TYPE with -l or --all: the matching objects of the namespace (or every one with -A). */
static int keel_targets_select(keel_ctx_t *c, const kc_kind_info_t *ki, const char *selector,
			       keel_targets_t *t)
{
	kc_selector_t *sel = NULL;
	char msg[512];
	if (selector && kc_selector_parse(selector, &sel, msg, sizeof(msg)) != 0)
		return keel_fail("%s", msg);
	keel_t *k = keel_ctx_store(c);
	json_t *items = NULL;
	int64_t rev;
	keel_error_t err = {0};
	int rc = 0;
	if (!k) {
		rc = 1;
	} else if (kc_list(k, ki->kind, ki->namespaced && !c->all_ns ? c->ns : NULL, &items, &rev,
			   &err) != 0) {
		keel_print_error(&err);
		rc = 1;
	}
	size_t i;
	json_t *obj;
	json_array_foreach(items, i, obj) {
		if (rc != 0 || (sel && !kc_selector_matches(sel, kc_path(obj, "metadata.labels"))))
			continue;
		/* The list read one namespace's keys: an object's own metadata.namespace may be
		 * missing or differ (written past the store layer), so it only names it with -A. */
		const char *ns = ki->namespaced && !c->all_ns ? c->ns : kc_namespace(obj);
		if (!kc_name(obj) || !*kc_name(obj) || (ki->namespaced && (!ns || !*ns))) {
			fprintf(stderr, "Warning: skipping a stored %s without a %s\n",
				ki->singular, kc_name(obj) && *kc_name(obj) ? "namespace" : "name");
			continue;
		}
		rc = keel_targets_add(t, ki, ns, kc_name(obj));
	}
	json_decref(items);
	kc_selector_free(sel);
	return rc;
}

static int keel_delete_targets(keel_ctx_t *c, keel_flags_t *f, keel_targets_t *t)
{
	const char *sel = f->val[DF_SELECTOR];
	bool all = keel_flag_bool(f, DF_ALL, false);
	if (f->n_multi) {
		if (f->n_pos)
			return keel_fail("Unexpected args: [%s]", f->pos[0]);
		keel_docs_t docs;
		int rc = keel_docs_load(c, f->multi, f->n_multi, false, &docs);
		for (size_t i = 0; rc == 0 && i < docs.n; i++)
			rc = keel_targets_add(t, docs.docs[i].ki, kc_namespace(docs.docs[i].obj),
					      kc_name(docs.docs[i].obj));
		keel_docs_free(&docs);
		return rc ? 1 : 0;
	}
	if (f->n_pos == 0)
		return keel_fail("You must provide one or more resources by argument or "
				 "filename.\nExample resource specifications include:\n"
				 "   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n"
				 "   '<resource> <name>'\n   '<resource>'");
	if (strchr(f->pos[0], '/')) {
		for (int i = 0; i < f->n_pos; i++) {
			char *slash = strchr(f->pos[i], '/');
			if (!slash)
				return keel_fail("there is no need to specify a resource type as a "
						 "separate argument when passing arguments in "
						 "resource/name form");
			*slash = '\0';
			const kc_kind_info_t *ki = kc_kind_lookup(f->pos[i]);
			if (!ki) {
				fprintf(stderr, "error: the server doesn't have a resource type "
					"\"%s\"\n", f->pos[i]);
				return 1;
			}
			if (keel_targets_add(t, ki, c->ns, slash + 1) != 0)
				return 1;
		}
		return 0;
	}
	const kc_kind_info_t *ki = kc_kind_lookup(f->pos[0]);
	if (!ki) {
		fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n",
			f->pos[0]);
		return 1;
	}
	if (f->n_pos > 1) {
		if (sel || all)
			return keel_fail("name cannot be provided when a selector is specified");
		for (int i = 1; i < f->n_pos; i++)
			if (keel_targets_add(t, ki, c->ns, f->pos[i]) != 0)
				return 1;
		return 0;
	}
	if (!sel && !all)
		return keel_fail("resource(s) were provided, but no name was specified");
	if (keel_targets_select(c, ki, sel, t) != 0)
		return 1;
	if (t->n == 0)
		fprintf(stderr, "No resources found\n");
	return 0;
}

/* Polls until each deleted pod is gone (or replaced by another of the same name). */
static int keel_delete_wait(keel_ctx_t *c, keel_targets_t *t, int64_t timeout_ms,
			    volatile sig_atomic_t *stop)
{
	keel_t *k = keel_ctx_store(c);
	int64_t deadline = kc_mono_ms() + timeout_ms;
	for (size_t i = 0; i < t->n; i++) {
		keel_target_t *x = &t->v[i];
		if (!x->uid)
			continue;
		for (;;) {
			json_t *obj = NULL;
			keel_error_t err = {0};
			if (kc_get(k, x->ki->kind, x->ns, x->name, &obj, &err) != 0) {
				if (err.code == KEEL_CODE_NOT_FOUND)
					break;
				keel_print_error(&err);
				return 1;
			}
			bool same = kc_uid(obj) && strcmp(kc_uid(obj), x->uid) == 0;
			json_decref(obj);
			if (!same)
				break;
			if (*stop)
				return 1;
			if (kc_mono_ms() >= deadline)
				return keel_fail("timed out waiting for the condition on %s/%s",
						 x->ki->plural, x->name);
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

static int keel_delete_one(keel_t *k, keel_target_t *x, int64_t grace, bool force, bool ignore)
{
	char q[64];
	keel_kind_qualified(x->ki, q, sizeof(q));
	keel_error_t err = {0};
	int rc;
	if (x->ki->kind == KC_POD) {
		json_t *obj = NULL;
		if (kc_get(k, KC_POD, x->ns, x->name, &obj, &err) == 0) {
			x->uid = kc_uid(obj) ? strdup(kc_uid(obj)) : NULL;
			json_decref(obj);
		}
		rc = err.code ? -1 : kc_pod_delete(k, x->ns, x->name, grace, force, &err);
	} else {
		rc = kc_delete(k, x->ki->kind, x->ns, x->name, 0, &err);
	}
	if (rc != 0) {
		free(x->uid);
		x->uid = NULL;
		if (ignore && err.code == KEEL_CODE_NOT_FOUND)
			return 0;
		keel_print_error(&err);
		return 1;
	}
	printf("%s \"%s\" %sdeleted\n", q, x->name, force ? "force " : "");
	fflush(stdout);
	return 0;
}

int keel_delete_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	keel_targets_t t = {0};
	int rc = 1;
	if (keel_flags_parse("delete", argc, argv, keel_delete_flags, &f) != 0)
		goto out;
	if (f.help) {
		keel_usage(stdout, keel_delete_usage, keel_delete_flags);
		rc = 0;
		goto out;
	}
	int64_t grace = -1, timeout_ms = 7LL * 24 * 3600 * 1000;
	bool force = keel_flag_bool(&f, DF_FORCE, false);
	if (f.val[DF_GRACE]) {
		char *end;
		grace = strtoll(f.val[DF_GRACE], &end, 10);
		if (*end || end == f.val[DF_GRACE]) {
			keel_fail("invalid argument \"%s\" for \"--grace-period\" flag: "
				  "strconv.ParseInt: parsing \"%s\": invalid syntax",
				  f.val[DF_GRACE], f.val[DF_GRACE]);
			goto out;
		}
	}
	if (keel_flag_bool(&f, DF_NOW, false))
		grace = 1;
	/* kubectl: 0 means "immediately" only with --force; otherwise the shortest grace, 1. */
	if (grace == 0 && !force)
		grace = 1;
	if (force && grace < 0)
		grace = 0;
	if (f.val[DF_TIMEOUT]) {
		int64_t ms = keel_duration_ms(f.val[DF_TIMEOUT]);
		if (ms < 0) {
			keel_fail("invalid argument \"%s\" for \"--timeout\" flag",
				  f.val[DF_TIMEOUT]);
			goto out;
		}
		if (ms > 0)
			timeout_ms = ms;
	}
	if (keel_delete_targets(c, &f, &t) != 0)
		goto out;
	keel_t *k = t.n ? keel_ctx_store(c) : NULL;
	rc = 0;
	if (t.n && !k)
		rc = 1;
	if (force && t.n)
		fprintf(stderr, "Warning: Immediate deletion does not wait for confirmation that "
			"the running resource has been terminated. The resource may continue to "
			"run on the cluster indefinitely.\n");
	for (size_t i = 0; k && i < t.n; i++)
		rc |= keel_delete_one(k, &t.v[i], grace, force,
				      keel_flag_bool(&f, DF_IGNORE, false));
	if (k && keel_flag_bool(&f, DF_WAIT, true) && !force)
		rc |= keel_delete_wait(c, &t, timeout_ms, kc_signals_install());
out:
	keel_targets_free(&t);
	keel_flags_free(&f);
	return rc;
}

/* ---- scale ---------------------------------------------------------------------------------- */

static const keel_flag_t keel_scale_flags[] = {
	{"replicas", 0, KEEL_FLAG_VALUE, "the new number of replicas (required)"},
	{"current-replicas", 0, KEEL_FLAG_VALUE, "only scale when spec.replicas is this now"},
	{NULL, 0, 0, NULL},
};

static const char keel_scale_usage[] =
	"Set a new size for a ReplicaSet.\n\n"
	"Usage:\n"
	"  keel scale rs/NAME --replicas=COUNT\n"
	"  keel scale replicaset NAME ... --replicas=COUNT";

typedef struct keel_scale_edit {
	int64_t replicas;
	int64_t current;   /* -1: no precondition */
} keel_scale_edit_t;

static int keel_scale_mutate(void *ud, json_t *obj, keel_error_t *err)
{
	keel_scale_edit_t *e = ud;
	int64_t now = kc_path_int(obj, "spec.replicas", 1);
	if (e->current >= 0 && now != e->current) {
		err->code = KEEL_CODE_FAILED_PRECONDITION;
		snprintf(err->message, sizeof(err->message),
			 "Expected replicas to be %lld, was %lld", (long long)e->current,
			 (long long)now);
		return KEEL_CODE_FAILED_PRECONDITION;
	}
	if (now == e->replicas && json_is_integer(kc_path(obj, "spec.replicas")))
		return 1;
	if (kc_path_set(obj, "spec.replicas", json_integer(e->replicas)) != 0) {
		err->code = KEEL_CODE_LOCAL;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return KEEL_CODE_LOCAL;
	}
	return 0;
}

static int64_t keel_parse_count(const char *s)
{
	char *end;
	if (!s || !*s)
		return -2;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno || v > INT32_MAX)
		return -2;
	return v;
}

int keel_scale_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	int rc = 1;
	if (keel_flags_parse("scale", argc, argv, keel_scale_flags, &f) != 0)
		goto out;
	if (f.help) {
		keel_usage(stdout, keel_scale_usage, keel_scale_flags);
		rc = 0;
		goto out;
	}
	if (!f.val[0]) {
		keel_fail("required flag(s) \"replicas\" not set");
		goto out;
	}
	keel_scale_edit_t e = {.replicas = keel_parse_count(f.val[0]), .current = -1};
	if (e.replicas < 0) {
		keel_fail(
			"The --replicas=COUNT flag is required, and COUNT must be greater than or "
			"equal to 0");
		goto out;
	}
	if (f.val[1] && (e.current = keel_parse_count(f.val[1])) < 0) {
		keel_fail("invalid argument \"%s\" for \"--current-replicas\" flag", f.val[1]);
		goto out;
	}
	if (f.n_pos == 0) {
		keel_fail("You must provide one or more resources by argument or filename.");
		goto out;
	}
	const char *names_one[1];
	const char **names = names_one;
	int n_names;
	const kc_kind_info_t *ki;
	char *slash = strchr(f.pos[0], '/');
	if (slash) {
		*slash = '\0';
		ki = kc_kind_lookup(f.pos[0]);
		names_one[0] = slash + 1;
		n_names = 1;
	} else {
		ki = kc_kind_lookup(f.pos[0]);
		names = (const char **)(f.pos + 1);
		n_names = f.n_pos - 1;
	}
	if (!ki) {
		fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n",
			f.pos[0]);
		goto out;
	}
	if (n_names == 0) {
		keel_fail("resource(s) were provided, but no name was specified");
		goto out;
	}
	if (ki->kind != KC_REPLICASET) {
		fprintf(stderr, "Error from server (NotFound): the server could not find the "
			"requested resource\n");
		goto out;
	}
	keel_t *k = keel_ctx_store(c);
	if (!k)
		goto out;
	rc = 0;
	for (int i = 0; i < n_names; i++) {
		keel_error_t err = {0};
		if (kc_modify(k, KC_REPLICASET, c->ns, names[i], keel_scale_mutate, &e, NULL,
			      &err) != 0) {
			if (err.code == KEEL_CODE_FAILED_PRECONDITION)
				keel_fail("%s", err.message);
			else
				keel_print_error(&err);
			rc = 1;
			continue;
		}
		printf("replicaset.apps/%s scaled\n", names[i]);
	}
out:
	keel_flags_free(&f);
	return rc;
}

/* ---- logs ----------------------------------------------------------------------------------- */

static const keel_flag_t keel_logs_flags[] = {
	{"container", 'c', KEEL_FLAG_VALUE, "the container (default: the pod's first)"},
	{"follow", 'f', KEEL_FLAG_BOOL, "stream the log as it grows, until Ctrl-C"},
	{"tail", 0, KEEL_FLAG_VALUE, "only the last N lines (-1: all)"},
	{"previous", 'p', KEEL_FLAG_BOOL, "the log of the previous, terminated instance"},
	{NULL, 0, 0, NULL},
};
enum { LF_CONTAINER, LF_FOLLOW, LF_TAIL, LF_PREVIOUS };

static const char keel_logs_usage[] =
	"Print the log of a container in a pod, as its node's agent serves it.\n\n"
	"Usage:\n"
	"  keel logs POD [-c CONTAINER] [-f] [--tail N] [-p]";

/* The container to read: -c's (checked against the spec) or the first one. */
static const char *keel_logs_container(const json_t *pod, const char *pod_name, const char *want)
{
	const json_t *cs = kc_path(pod, "spec.containers");
	size_t i;
	const json_t *c;
	if (want) {
		json_array_foreach(cs, i, c)
			if (json_string_value(json_object_get(c, "name")) &&
			    strcmp(json_string_value(json_object_get(c, "name")), want) == 0)
				return want;
		fprintf(stderr, "Error from server (BadRequest): container %s is not valid for pod "
			"%s\n", want, pod_name);
		return NULL;
	}
	const char *first = json_string_value(json_object_get(json_array_get(cs, 0), "name"));
	if (!first) {
		keel_fail("pod %s has no containers", pod_name);
		return NULL;
	}
	if (json_array_size(cs) > 1) {
		fprintf(stderr, "Defaulted container \"%s\" out of: ", first);
		json_array_foreach(cs, i, c) {
			const char *n = json_string_value(json_object_get(c, "name"));
			fprintf(stderr, "%s%s", i ? ", " : "", n ? n : "");
		}
		fputc('\n', stderr);
	}
	return first;
}

/* The kubelet's refusals, read from the pod's status before asking its agent. */
static int keel_logs_check_state(const json_t *pod, const char *pod_name, const char *container,
				 bool previous)
{
	if (!kc_path_str(pod, "spec.nodeName")) {
		fprintf(stderr, "Error from server (BadRequest): pod %s does not have a host "
			"assigned\n", pod_name);
		return 1;
	}
	const json_t *st = NULL;
	size_t i;
	const json_t *c;
	json_array_foreach(kc_path(pod, "status.containerStatuses"), i, c) {
		const char *n = json_string_value(json_object_get(c, "name"));
		if (n && strcmp(n, container) == 0)
			st = c;
	}
	const json_t *last = kc_path(st, "lastState.terminated");
	if (previous && !last) {
		fprintf(stderr, "Error from server (BadRequest): previous terminated container "
			"\"%s\" in pod \"%s\" not found\n", container, pod_name);
		return 1;
	}
	const json_t *waiting = kc_path(st, "state.waiting");
	if (!previous && (!st || (waiting && !last))) {
		const char *reason = json_string_value(json_object_get(waiting, "reason"));
		fprintf(stderr, "Error from server (BadRequest): container \"%s\" in pod \"%s\" is "
			"waiting to start: %s\n", container, pod_name,
			reason && *reason ? reason : "ContainerCreating");
		return 1;
	}
	return 0;
}

static int keel_dial(const char *host, int port)
{
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

/* Reads from fd until the stop flag, EOF or an error; -1 on error. 0 bytes and 0: EOF. */
static ssize_t keel_read_some(int fd, char *buf, size_t n, volatile sig_atomic_t *stop)
{
	for (;;) {
		if (*stop)
			return 0;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, 200);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		ssize_t got = read(fd, buf, n);
		if (got < 0 && errno == EINTR)
			continue;
		return got;
	}
}

static int keel_write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		/* An agent that closes early must give an error, not a SIGPIPE. */
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* GET path from host:port with HTTP/1.0; the body goes to stdout on 200, else is the error. */
static int keel_http_stream(const char *host, int port, const char *path,
			    volatile sig_atomic_t *stop)
{
	int fd = keel_dial(host, port);
	if (fd < 0)
		return keel_fail("Get \"http://%s:%d%s\": dial tcp %s:%d: connect: %s", host, port,
				 path, host, port, strerror(errno ? errno : ECONNREFUSED));
	char *req = NULL;
	int len = asprintf(&req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: keel\r\n\r\n",
			   path, host, port);
	if (len < 0 || keel_write_all(fd, req, (size_t)len) != 0) {
		if (len >= 0)
			free(req);
		close(fd);
		return keel_fail("sending the request to %s:%d failed", host, port);
	}
	free(req);
	/* The head is small: read it whole, then stream the rest. */
	char head[8192];
	size_t hn = 0;
	char *body = NULL;
	while (!body && hn < sizeof(head) - 1) {
		ssize_t got = keel_read_some(fd, head + hn, sizeof(head) - 1 - hn, stop);
		if (got <= 0)
			break;
		hn += (size_t)got;
		head[hn] = '\0';
		char *end = strstr(head, "\r\n\r\n");
		if (end)
			body = end + 4;
		else if ((end = strstr(head, "\n\n")))
			body = end + 2;
	}
	int status = 0;
	if (!body || sscanf(head, "HTTP/%*d.%*d %d", &status) != 1) {
		close(fd);
		if (*stop)
			return 0;
		return keel_fail("malformed response from the agent at %s:%d", host, port);
	}
	size_t pending = hn - (size_t)(body - head);
	if (status != 200) {
		/* Collect the message (bounded) and show it as the server's error. */
		char msg[4096];
		size_t mn = pending < sizeof(msg) - 1 ? pending : sizeof(msg) - 1;
		memcpy(msg, body, mn);
		ssize_t got;
		while (mn < sizeof(msg) - 1 &&
		       (got = keel_read_some(fd, msg + mn, sizeof(msg) - 1 - mn, stop)) > 0)
			mn += (size_t)got;
		msg[mn] = '\0';
		while (mn && (msg[mn - 1] == '\n' || msg[mn - 1] == '\r'))
			msg[--mn] = '\0';
		close(fd);
		const char *reason = status == 404 ? "NotFound" : status == 400 ? "BadRequest" :
			status == 403 ? "Forbidden" : "InternalError";
		fprintf(stderr, "Error from server (%s): %s\n", reason,
			mn ? msg : "the agent refused the request");
		return 1;
	}
	int rc = 0;
	if (pending && fwrite(body, 1, pending, stdout) != pending)
		rc = 1;
	fflush(stdout);
	char buf[16384];
	ssize_t got;
	while (rc == 0 && (got = keel_read_some(fd, buf, sizeof(buf), stop)) > 0) {
		if (fwrite(buf, 1, (size_t)got, stdout) != (size_t)got)
			rc = 1;
		fflush(stdout);
	}
	close(fd);
	return rc;
}

static const char *keel_node_address_of(const json_t *node, const char *type)
{
	size_t i;
	const json_t *a;
	json_array_foreach(kc_path(node, "status.addresses"), i, a) {
		const char *t = json_string_value(json_object_get(a, "type"));
		if (t && strcmp(t, type) == 0)
			return json_string_value(json_object_get(a, "address"));
	}
	return NULL;
}

/* Percent-encodes every byte but RFC 3986's unreserved ones: a stored name cannot add path
 * segments or a query to the request. */
static void keel_url_escape(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	}
}

/* /logs/<ns>/<pod>/<container>[?follow=true&tailLines=N&previous=true], malloc'ed and as
 * long as it needs to be (NULL when out of memory). */
static char *keel_logs_path(const char *ns, const char *pod, const char *container, bool follow,
			    long long tail, bool previous)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("/logs/", f);
	keel_url_escape(f, ns);
	fputc('/', f);
	keel_url_escape(f, pod);
	fputc('/', f);
	keel_url_escape(f, container);
	const char *sep = "?";
	if (follow)
		fprintf(f, "%sfollow=true", sep), sep = "&";
	if (tail >= 0)
		fprintf(f, "%stailLines=%lld", sep, tail), sep = "&";
	if (previous)
		fprintf(f, "%sprevious=true", sep);
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad) {
		free(buf);
		return NULL;
	}
	return buf;
}

int keel_logs_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	int rc = 1;
	json_t *pod = NULL, *node = NULL;
	if (keel_flags_parse("logs", argc, argv, keel_logs_flags, &f) != 0)
		goto out;
	if (f.help) {
		keel_usage(stdout, keel_logs_usage, keel_logs_flags);
		rc = 0;
		goto out;
	}
	if (f.n_pos != 1) {
		keel_fail(f.n_pos ? "only one pod may be named; keel logs POD [-c CONTAINER]" :
			  "expected POD.\nPOD is a required argument for the logs command\nSee "
			  "'keel logs -h' for help and examples");
		goto out;
	}
	const char *name = f.pos[0];
	if (strncmp(name, "pod/", 4) == 0 || strncmp(name, "pods/", 5) == 0 ||
	    strncmp(name, "po/", 3) == 0)
		name = strchr(name, '/') + 1;
	long long tail = -1;
	if (f.val[LF_TAIL]) {
		char *end;
		tail = strtoll(f.val[LF_TAIL], &end, 10);
		if (*end || end == f.val[LF_TAIL]) {
			keel_fail("invalid argument \"%s\" for \"--tail\" flag", f.val[LF_TAIL]);
			goto out;
		}
	}
	keel_t *k = keel_ctx_store(c);
	keel_error_t err = {0};
	if (!k)
		goto out;
	if (kc_get(k, KC_POD, c->ns, name, &pod, &err) != 0) {
		keel_print_error(&err);
		goto out;
	}
	/* Messages name the pod as asked: the stored object may lack a name. */
	const char *container = keel_logs_container(pod, name, f.val[LF_CONTAINER]);
	bool previous = keel_flag_bool(&f, LF_PREVIOUS, false);
	if (!container || keel_logs_check_state(pod, name, container, previous) != 0)
		goto out;
	const char *node_name = kc_path_str(pod, "spec.nodeName");
	if (kc_get(k, KC_NODE, NULL, node_name, &node, &err) != 0) {
		keel_print_error(&err);
		goto out;
	}
	const char *ip = keel_node_address_of(node, "InternalIP");
	int64_t port = kc_path_int(node, "status.daemonEndpoints.kubeletEndpoint.Port", 0);
	if (!ip || port <= 0 || port > 65535) {
		keel_fail("node %s has no InternalIP address or agent port to read logs from",
			  node_name);
		goto out;
	}
	/* The namespace the pod was read from, not the object's own (which may say anything). */
	char *path = keel_logs_path(c->ns, name, container,
				    keel_flag_bool(&f, LF_FOLLOW, false), tail, previous);
	if (!path) {
		keel_fail("out of memory");
		goto out;
	}
	rc = keel_http_stream(ip, (int)port, path, kc_signals_install());
	free(path);
out:
	json_decref(pod);
	json_decref(node);
	keel_flags_free(&f);
	return rc;
}
