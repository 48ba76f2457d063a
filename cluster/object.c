/* cluster/object.c — the object model: the kind table, registry keys, path accessors, time,
 * conditions, taint toleration, defaults and validation with kubectl's texts. Pure: never
 * touches the store, the network or the clock except through kc_time_now/kc_mono_ms. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cluster.h"

static const kc_kind_info_t kinds[KC_KIND_COUNT] = {
	{KC_NODE, "Node", "v1", "nodes", "node", "no", "nodes", false},
	{KC_POD, "Pod", "v1", "pods", "pod", "po", "pods", true},
	{KC_REPLICASET, "ReplicaSet", "apps/v1", "replicasets", "replicaset", "rs",
	 "replicasets.apps", true},
	{KC_LEASE, "Lease", "coordination.k8s.io/v1", "leases", "lease", NULL,
	 "leases.coordination.k8s.io", true},
};

/* ---- kinds and keys ------------------------------------------------------------------------ */

const kc_kind_info_t *kc_kind_info(kc_kind_t kind)
{
	if ((int)kind < 0 || kind >= KC_KIND_COUNT)
		return NULL;
	return &kinds[kind];
}

static bool name_eq(const char *a, size_t alen, const char *b)
{
	return b && strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* "replicasets.v1.apps": kubectl's fully qualified resource.version.group form. */
static bool name_is_versioned(const kc_kind_info_t *ki, const char *s, size_t len)
{
	char buf[128];
	const char *slash = strchr(ki->api_version, '/');
	if (slash)
		snprintf(buf, sizeof(buf), "%s.%s.%.*s", ki->plural, slash + 1,
			 (int)(slash - ki->api_version), ki->api_version);
	else
		snprintf(buf, sizeof(buf), "%s.%s", ki->plural, ki->api_version);
	return name_eq(s, len, buf);
}

const kc_kind_info_t *kc_kind_lookup(const char *name)
{
	if (!name)
		return NULL;
	size_t len = strcspn(name, "/");
	if (len == 0)
		return NULL;
	for (int i = 0; i < KC_KIND_COUNT; i++) {
		const kc_kind_info_t *ki = &kinds[i];
		if (name_eq(name, len, ki->plural) || name_eq(name, len, ki->singular) ||
		    name_eq(name, len, ki->short_name) || name_eq(name, len, ki->name) ||
		    name_eq(name, len, ki->resource) || name_is_versioned(ki, name, len))
			return ki;
	}
	return NULL;
}

int kc_kind_of(const json_t *obj, kc_kind_t *kind, char *msg, size_t n)
{
	const char *k = json_string_value(json_object_get(obj, "kind"));
	const char *av = json_string_value(json_object_get(obj, "apiVersion"));
	if (!json_is_object(obj)) {
		snprintf(msg, n, "the object is not a JSON/YAML map");
		return -1;
	}
	if (!k || !*k) {
		char *text = json_dumps(obj, JSON_COMPACT);
		snprintf(msg, n, "Object 'Kind' is missing in '%s'", text ? text : "{}");
		free(text);
		return -1;
	}
	for (int i = 0; i < KC_KIND_COUNT; i++) {
		if (strcmp(kinds[i].name, k) != 0)
			continue;
		/* apiVersion may be left out: kc_object_default fills it in. */
		if (av && strcmp(av, kinds[i].api_version) != 0)
			break;
		if (kind)
			*kind = kinds[i].kind;
		return 0;
	}
	snprintf(msg, n, "no kind \"%s\" is registered for version \"%s\"", k, av ? av : "");
	return -1;
}

static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		return NULL;
	char *s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)len + 1, fmt, ap);
	va_end(ap);
	return s;
}

char *kc_key(kc_kind_t kind, const char *ns, const char *name)
{
	const kc_kind_info_t *ki = kc_kind_info(kind);
	if (!ki || !name)
		return NULL;
	if (!ki->namespaced)
		return str_printf(KC_REGISTRY "%s/%s", ki->plural, name);
	return str_printf(KC_REGISTRY "%s/%s/%s", ki->plural, ns && *ns ? ns : KC_DEFAULT_NAMESPACE,
			  name);
}

char *kc_prefix(kc_kind_t kind, const char *ns)
{
	const kc_kind_info_t *ki = kc_kind_info(kind);
	if (!ki)
		return NULL;
	if (!ki->namespaced || !ns)
		return str_printf(KC_REGISTRY "%s/", ki->plural);
	return str_printf(KC_REGISTRY "%s/%s/", ki->plural, ns);
}

static bool segment_ok(const char *s, size_t len)
{
	return len > 0 && memchr(s, '/', len) == NULL && memchr(s, '\0', len) == NULL;
}

int kc_key_parse(const char *key, size_t len, kc_kind_t *kind, char **ns, char **name)
{
	size_t rl = strlen(KC_REGISTRY);
	if (!key || len <= rl || memcmp(key, KC_REGISTRY, rl) != 0)
		return -1;
	const char *p = key + rl, *end = key + len;
	const char *slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		return -1;
	const kc_kind_info_t *ki = NULL;
	for (int i = 0; i < KC_KIND_COUNT; i++)
		if (strlen(kinds[i].plural) == (size_t)(slash - p) &&
		    memcmp(kinds[i].plural, p, (size_t)(slash - p)) == 0)
			ki = &kinds[i];
	if (!ki)
		return -1;
	p = slash + 1;
	const char *nsp = NULL;
	size_t nsl = 0;
	if (ki->namespaced) {
		slash = memchr(p, '/', (size_t)(end - p));
		if (!slash || !segment_ok(p, (size_t)(slash - p)))
			return -1;
		nsp = p;
		nsl = (size_t)(slash - p);
		p = slash + 1;
	}
	if (!segment_ok(p, (size_t)(end - p)))
		return -1;
	char *nsc = nsp ? strndup(nsp, nsl) : NULL;
	char *nm = strndup(p, (size_t)(end - p));
	if ((nsp && !nsc) || !nm) {
		free(nsc);
		free(nm);
		return -1;
	}
	if (kind)
		*kind = ki->kind;
	if (ns)
		*ns = nsc;
	else
		free(nsc);
	if (name)
		*name = nm;
	else
		free(nm);
	return 0;
}

char *kc_object_key(const json_t *obj)
{
	kc_kind_t kind;
	char msg[160];
	if (kc_kind_of(obj, &kind, msg, sizeof(msg)) != 0)
		return NULL;
	const char *name = kc_name(obj);
	const char *ns = kc_namespace(obj);
	if (!name || !*name || (kinds[kind].namespaced && (!ns || !*ns)))
		return NULL;
	return kc_key(kind, ns, name);
}

/* ---- accessors ----------------------------------------------------------------------------- */

/* One step of a path: a member name (len > 0) or, when is_index, an array index. */
typedef struct path_step {
	const char *name;
	size_t len;
	bool is_index;
	size_t index;
} path_step_t;

/* Reads the step at *p; returns 0 and advances, 1 at the end, -1 when malformed. */
static int path_next(const char **p, path_step_t *st)
{
	const char *s = *p;
	if (*s == '\0')
		return 1;
	if (*s == '.')
		s++;
	if (*s == '[') {
		char *end;
		if (!isdigit((unsigned char)s[1]))
			return -1;
		unsigned long long v = strtoull(s + 1, &end, 10);
		if (*end != ']')
			return -1;
		st->is_index = true;
		st->index = (size_t)v;
		*p = end + 1;
		return 0;
	}
	size_t len = strcspn(s, ".[");
	if (len == 0)
		return -1;
	st->is_index = false;
	st->name = s;
	st->len = len;
	*p = s + len;
	return 0;
}

static json_t *path_child(const json_t *cur, const path_step_t *st)
{
	if (st->is_index)
		return json_is_array(cur) ? json_array_get(cur, st->index) : NULL;
	if (!json_is_object(cur))
		return NULL;
	return json_object_getn(cur, st->name, st->len);
}

json_t *kc_path(const json_t *obj, const char *path)
{
	const json_t *cur = obj;
	path_step_t st;
	int r;
	if (!obj || !path)
		return NULL;
	while (cur && (r = path_next(&path, &st)) == 0)
		cur = path_child(cur, &st);
	if (cur && r < 0)
		return NULL;
	return (json_t *)cur;
}

const char *kc_path_str(const json_t *obj, const char *path)
{
	return json_string_value(kc_path(obj, path));
}

int64_t kc_path_int(const json_t *obj, const char *path, int64_t dflt)
{
	json_t *v = kc_path(obj, path);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9.2e18 && d <= 9.2e18)
			return (int64_t)d;
	}
	return dflt;
}

/* A new empty container for the step that follows. */
static json_t *path_container_for(const path_step_t *next)
{
	return next->is_index ? json_array() : json_object();
}

static int path_put(json_t *cur, const path_step_t *st, json_t *v)
{
	if (st->is_index) {
		if (!json_is_array(cur))
			return -1;
		if (st->index < json_array_size(cur))
			return json_array_set_new(cur, st->index, v);
		if (st->index == json_array_size(cur))
			return json_array_append_new(cur, v);
		json_decref(v);
		return -1;
	}
	if (!json_is_object(cur)) {
		json_decref(v);
		return -1;
	}
	return json_object_setn_new(cur, st->name, st->len, v);
}

int kc_path_set(json_t *obj, const char *path, json_t *value)
{
	path_step_t st, next;
	json_t *cur = obj;
	int r = path ? path_next(&path, &st) : -1;
	if (!obj || !value || r != 0) {
		json_decref(value);
		return -1;
	}
	for (;;) {
		r = path_next(&path, &next);
		if (r < 0)
			break;
		if (r == 1) {
			if ((st.is_index && !json_is_array(cur)) ||
			    (!st.is_index && !json_is_object(cur)))
				break;
			return path_put(cur, &st, value);
		}
		json_t *child = path_child(cur, &st);
		if (!child || json_is_null(child)) {
			child = path_container_for(&next);
			if (!child || (st.is_index && !json_is_array(cur)) ||
			    (!st.is_index && !json_is_object(cur))) {
				json_decref(child);
				break;
			}
			json_incref(child);
			if (path_put(cur, &st, child) != 0) {
				json_decref(child);
				break;
			}
			json_decref(child);
		}
		cur = child;
		st = next;
	}
	json_decref(value);
	return -1;
}

const char *kc_name(const json_t *obj)
{
	return kc_path_str(obj, "metadata.name");
}

const char *kc_namespace(const json_t *obj)
{
	return kc_path_str(obj, "metadata.namespace");
}

const char *kc_uid(const json_t *obj)
{
	return kc_path_str(obj, "metadata.uid");
}

int64_t kc_resource_version(const json_t *obj)
{
	json_t *v = kc_path(obj, "metadata.resourceVersion");
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	const char *s = json_string_value(v);
	if (!s || !isdigit((unsigned char)*s))
		return 0;
	char *end;
	long long r = strtoll(s, &end, 10);
	return *end ? 0 : (int64_t)r;
}

bool kc_deleting(const json_t *obj)
{
	json_t *v = kc_path(obj, "metadata.deletionTimestamp");
	return v && !json_is_null(v);
}

const json_t *kc_controller_ref(const json_t *obj)
{
	json_t *refs = kc_path(obj, "metadata.ownerReferences");
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r)
		if (json_is_true(json_object_get(r, "controller")))
			return r;
	return NULL;
}

/* ---- time ---------------------------------------------------------------------------------- */

void kc_time_format(int64_t unix_seconds, char buf[32])
{
	time_t t = (time_t)unix_seconds;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "1970-01-01T00:00:00Z");
}

void kc_time_now(char buf[32])
{
	kc_time_format((int64_t)time(NULL), buf);
}

static int read_digits(const char **p, int count)
{
	int v = 0;
	for (int i = 0; i < count; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += count;
	return v;
}

static bool expect_char(const char **p, const char *set)
{
	if (**p == '\0' || !strchr(set, **p))
		return false;
	(*p)++;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int64_t kc_time_parse(const char *s)
{
	if (!s)
		return -1;
	const char *p = s;
	int y = read_digits(&p, 4);
	if (y < 0 || !expect_char(&p, "-"))
		return -1;
	int mo = read_digits(&p, 2);
	if (mo < 1 || mo > 12 || !expect_char(&p, "-"))
		return -1;
	int d = read_digits(&p, 2);
	if (d < 1 || d > month_days(y, mo) || !expect_char(&p, "Tt "))
		return -1;
	int h = read_digits(&p, 2);
	if (h < 0 || h > 23 || !expect_char(&p, ":"))
		return -1;
	int mi = read_digits(&p, 2);
	if (mi < 0 || mi > 59 || !expect_char(&p, ":"))
		return -1;
	int sec = read_digits(&p, 2);
	if (sec < 0 || sec > 60)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		int oh = read_digits(&p, 2);
		if (oh < 0 || oh > 23 || !expect_char(&p, ":"))
			return -1;
		int om = read_digits(&p, 2);
		if (om < 0 || om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	return t < 0 ? -1 : t;
}

int64_t kc_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- conditions, taints -------------------------------------------------------------------- */

static json_t *condition_find(const json_t *obj, const char *type)
{
	json_t *conds = kc_path(obj, "status.conditions");
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && type && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

const char *kc_condition_status(const json_t *obj, const char *type)
{
	return json_string_value(json_object_get(condition_find(obj, type), "status"));
}

/* Sets or removes (value NULL) a string member; 1 when that changed it. */
static int set_str_field(json_t *o, const char *key, const char *value)
{
	const char *old = json_string_value(json_object_get(o, key));
	if (!value) {
		if (!json_object_get(o, key))
			return 0;
		json_object_del(o, key);
		return 1;
	}
	if (old && strcmp(old, value) == 0)
		return 0;
	return json_object_set_new(o, key, json_string(value)) == 0 ? 1 : -1;
}

static json_t *conditions_array(json_t *obj)
{
	json_t *conds = kc_path(obj, "status.conditions");
	if (json_is_array(conds))
		return conds;
	if (kc_path_set(obj, "status.conditions", json_array()) != 0)
		return NULL;
	return kc_path(obj, "status.conditions");
}

int kc_condition_set(json_t *obj, const char *type, const char *status, const char *reason,
		     const char *message)
{
	if (!json_is_object(obj) || !type || !status)
		return -1;
	json_t *c = condition_find(obj, type);
	int changed = 0;
	if (!c) {
		json_t *conds = conditions_array(obj);
		c = json_object();
		if (!conds || !c || json_object_set_new(c, "type", json_string(type)) != 0 ||
		    json_array_append_new(conds, c) != 0)
			return -1;
		changed = 1;
	}
	const char *old = json_string_value(json_object_get(c, "status"));
	if (!old || strcmp(old, status) != 0 || !json_object_get(c, "lastTransitionTime")) {
		char now[32];
		kc_time_now(now);
		if (set_str_field(c, "lastTransitionTime", now) < 0)
			return -1;
		changed = 1;
	}
	int r1 = set_str_field(c, "status", status);
	int r2 = set_str_field(c, "reason", reason);
	int r3 = set_str_field(c, "message", message);
	if (r1 < 0 || r2 < 0 || r3 < 0)
		return -1;
	return changed || r1 || r2 || r3;
}

bool kc_node_ready(const json_t *node)
{
	const char *s = kc_condition_status(node, "Ready");
	return s && strcmp(s, "True") == 0;
}

static const char *str_or_empty(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static bool toleration_matches(const json_t *t, const json_t *taint)
{
	const char *effect = str_or_empty(t, "effect");
	const char *key = str_or_empty(t, "key");
	const char *op = str_or_empty(t, "operator");
	if (*effect && strcmp(effect, str_or_empty(taint, "effect")) != 0)
		return false;
	if (*key && strcmp(key, str_or_empty(taint, "key")) != 0)
		return false;
	if (strcmp(op, "Exists") == 0)
		return true;
	if (*op == '\0' || strcmp(op, "Equal") == 0)
		return strcmp(str_or_empty(t, "value"), str_or_empty(taint, "value")) == 0;
	return false;
}

bool kc_tolerates(const json_t *tolerations, const json_t *taint)
{
	size_t i;
	json_t *t;
	json_array_foreach(tolerations, i, t)
		if (json_is_object(t) && toleration_matches(t, taint))
			return true;
	return false;
}

/* ---- defaults ------------------------------------------------------------------------------ */

static json_t *object_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_object(v))
		return v;
	if (v && !json_is_null(v))
		return NULL; /* a type clash: left for validation to report */
	v = json_object();
	if (json_object_set_new(o, key, v) != 0)
		return NULL;
	return v;
}

static void set_default(json_t *o, const char *key, json_t *v)
{
	if (o && !json_object_get(o, key))
		json_object_set_new(o, key, v);
	else
		json_decref(v);
}

static void default_pod_spec(json_t *spec)
{
	if (!spec)
		return;
	set_default(spec, "restartPolicy", json_string("Always"));
	set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
	set_default(spec, "schedulerName", json_string("default-scheduler"));
}

void kc_object_default(kc_kind_t kind, json_t *obj)
{
	const kc_kind_info_t *ki = kc_kind_info(kind);
	if (!ki || !json_is_object(obj))
		return;
	set_default(obj, "apiVersion", json_string(ki->api_version));
	set_default(obj, "kind", json_string(ki->name));
	json_t *meta = object_member(obj, "metadata");
	if (!meta)
		return;
	if (ki->namespaced) {
		json_t *ns = json_object_get(meta, "namespace");
		if (!ns || json_is_null(ns) || (json_is_string(ns) && !json_string_length(ns)))
			json_object_set_new(meta, "namespace", json_string(KC_DEFAULT_NAMESPACE));
	} else {
		/* the API server clears a cluster-scoped object's namespace, never refuses it */
		json_object_del(meta, "namespace");
	}
	object_member(meta, "labels");
	if (kind == KC_POD) {
		/* status.phase stays unset: status belongs to the agent, and `keel apply` of a
		 * defaulted manifest must not write a phase over the running pod's */
		default_pod_spec(object_member(obj, "spec"));
	} else if (kind == KC_REPLICASET) {
		json_t *spec = object_member(obj, "spec");
		set_default(spec, "replicas", json_integer(1));
		json_t *tmpl = spec ? object_member(spec, "template") : NULL;
		json_t *tmeta = tmpl ? object_member(tmpl, "metadata") : NULL;
		if (tmeta)
			object_member(tmeta, "labels");
		default_pod_spec(tmpl ? object_member(tmpl, "spec") : NULL);
	}
}

/* ---- validation: Kubernetes' field errors, joined as kubectl prints them ------------------- */

#define RE_DNS_LABEL "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define RE_QNAME "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define MSG_DNS_SUBDOMAIN                                                                         \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' " \
	"or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "     \
	"regex used for validation is '" RE_DNS_LABEL "(\\." RE_DNS_LABEL ")*')"
#define MSG_DNS_LABEL                                                                            \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " \
	"regex used for validation is '" RE_DNS_LABEL "')"
#define MSG_QNAME                                                                                 \
	"must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "  \
	"an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for " \
	"validation is '" RE_QNAME "')"
#define MSG_LABEL_VALUE                                                                          \
	"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
	"or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "    \
	"'my_value',  or '12345', regex used for validation is '(" RE_QNAME ")?')"
#define MSG_ENV_NAME                                                                             \
	"a valid environment variable name must consist of alphabetic characters, digits, '_', " \
	"'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  " \
	"or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"

#define KC_UID_MAX 64
#define MSG_UID                                                                                \
	"a valid uid must be 1 to 64 alphanumeric characters or '-' (e.g. "                     \
	"'7c9e6679-7425-40de-944b-e07fc1f90ae7', regex used for validation is '[-A-Za-z0-9]{1,64}')"

/* Field paths are built with this: a path too long for the buffer is cut, never overflowed. */
static void pathf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

static const char *const restart_policies[] = {"Always", "OnFailure", "Never", NULL};
static const char *const rs_restart_policies[] = {"Always", NULL};
static const char *const taint_effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};
static const char *const toleration_ops[] = {"Equal", "Exists", NULL};
static const char *const container_resources[] = {"cpu", "memory", "ephemeral-storage", NULL};

/* The error list: "a, b" text and a count. */
typedef struct verrs {
	char *buf;
	size_t len, cap;
	int count;
	bool failed;
} verrs_t;

static void verr_append(verrs_t *e, const char *t)
{
	size_t l = strlen(t);
	if (e->failed)
		return;
	if (e->len + l + 1 > e->cap) {
		size_t cap = (e->len + l + 1) * 2;
		char *b = realloc(e->buf, cap);
		if (!b) {
			e->failed = true;
			return;
		}
		e->buf = b;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, t, l + 1);
	e->len += l;
}

static void verr_add(verrs_t *e, const char *path, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (e->count++)
		verr_append(e, ", ");
	verr_append(e, path);
	verr_append(e, ": ");
	verr_append(e, text);
}

static void err_required(verrs_t *e, const char *path, const char *detail)
{
	verr_add(e, path, detail ? "Required value: %s" : "Required value", detail);
}

/* Values print as JSON: strings quoted, numbers plain, maps as {"k":"v"}. */
static void err_invalid(verrs_t *e, const char *path, const json_t *v, const char *detail)
{
	char *d = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	verr_add(e, path, "Invalid value: %s: %s", d ? d : "null", detail);
	free(d);
}

static void err_invalid_str(verrs_t *e, const char *path, const char *s, const char *detail)
{
	json_t *v = json_string(s);
	err_invalid(e, path, v, detail);
	json_decref(v);
}

static void err_unsupported(verrs_t *e, const char *path, const json_t *v,
			    const char *const *supported)
{
	char list[256] = "";
	size_t off = 0;
	for (const char *const *p = supported; *p; p++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s\"%s\"",
					p == supported ? "" : ", ", *p);
	char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	verr_add(e, path, "Unsupported value: %s: supported values: %s", d ? d : "null", list);
	free(d);
}

static bool in_list(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static bool re_dns_label(const char *s, size_t len)
{
	if (len == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

static bool re_dns_subdomain(const char *s, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!re_dns_label(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static bool re_qname(const char *s, size_t len)
{
	if (len == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

/* Kubernetes' IsDNS1123Subdomain: one error per broken rule. */
static void check_subdomain(verrs_t *e, const char *path, const char *s, const char *prefix)
{
	size_t len = strlen(s);
	char buf[600];
	if (len > 253) {
		snprintf(buf, sizeof(buf), "%smust be no more than 253 characters", prefix);
		err_invalid_str(e, path, s, buf);
	}
	if (!re_dns_subdomain(s, len)) {
		snprintf(buf, sizeof(buf), "%s%s", prefix, MSG_DNS_SUBDOMAIN);
		err_invalid_str(e, path, s, buf);
	}
}

static void check_dns_label(verrs_t *e, const char *path, const char *s)
{
	size_t len = strlen(s);
	if (len > 63)
		err_invalid_str(e, path, s, "must be no more than 63 characters");
	if (!re_dns_label(s, len))
		err_invalid_str(e, path, s, MSG_DNS_LABEL);
}

/* Kubernetes' IsQualifiedName, the rule for label keys and taint keys. */
static void check_qualified_name(verrs_t *e, const char *path, const char *s)
{
	const char *name = s;
	const char *slash = strchr(s, '/');
	if (slash && strchr(slash + 1, '/')) {
		err_invalid_str(e, path, s,
				"a qualified name " MSG_QNAME " with an optional DNS "
				"subdomain prefix and '/' (e.g. 'example.com/MyName')");
		return;
	}
	if (slash) {
		size_t plen = (size_t)(slash - s);
		if (plen == 0) {
			err_invalid_str(e, path, s, "prefix part must be non-empty");
		} else {
			if (plen > 253)
				err_invalid_str(e, path, s,
						"prefix part must be no more than 253 "
						"characters");
			if (!re_dns_subdomain(s, plen))
				err_invalid_str(e, path, s, "prefix part " MSG_DNS_SUBDOMAIN);
		}
		name = slash + 1;
	}
	size_t len = strlen(name);
	if (len == 0)
		err_invalid_str(e, path, s, "name part must be non-empty");
	else if (len > 63)
		err_invalid_str(e, path, s, "name part must be no more than 63 characters");
	if (!re_qname(name, len))
		err_invalid_str(e, path, s, "name part " MSG_QNAME);
}

static void check_label_value(verrs_t *e, const char *path, const char *v)
{
	size_t len = strlen(v);
	if (len > 63)
		err_invalid_str(e, path, v, "must be no more than 63 characters");
	if (len > 0 && !re_qname(v, len))
		err_invalid_str(e, path, v, MSG_LABEL_VALUE);
}

/* A map of label keys to label values (labels, nodeSelector). */
static void check_labels(verrs_t *e, const char *path, const json_t *labels)
{
	const char *k;
	json_t *v;
	if (!labels || json_is_null(labels))
		return;
	if (!json_is_object(labels)) {
		err_invalid(e, path, labels, "must be a map of strings");
		return;
	}
	json_object_foreach((json_t *)labels, k, v) {
		check_qualified_name(e, path, k);
		if (!json_is_string(v))
			err_invalid(e, path, v, "must be a string");
		else
			check_label_value(e, path, json_string_value(v));
	}
}

static void check_time_field(verrs_t *e, const char *path, const json_t *v)
{
	if (!v || json_is_null(v))
		return;
	if (!json_is_string(v) || kc_time_parse(json_string_value(v)) < 0)
		err_invalid(e, path, v, "must be an RFC 3339 timestamp");
}

static void check_nonnegative_int(verrs_t *e, const char *path, const json_t *v, bool required)
{
	if (!v || json_is_null(v)) {
		if (required)
			err_required(e, path, NULL);
	} else if (!json_is_integer(v)) {
		err_invalid(e, path, v, "must be an integer");
	} else if (json_integer_value(v) < 0) {
		err_invalid(e, path, v, "must be greater than or equal to 0");
	}
}

static void check_owner_refs(verrs_t *e, const json_t *refs)
{
	static const struct {
		const char *field, *what;
	} required[] = {
		{"apiVersion", "version"}, {"kind", "kind"}, {"name", "name"}, {"uid", "uid"}};
	char p[128], detail[64];
	size_t i, controllers = 0;
	json_t *r;
	if (!refs || json_is_null(refs))
		return;
	if (!json_is_array(refs)) {
		err_invalid(e, "metadata.ownerReferences", refs, "must be a list of references");
		return;
	}
	json_array_foreach(refs, i, r) {
		if (!json_is_object(r)) {
			pathf(p, sizeof(p), "metadata.ownerReferences[%zu]", i);
			err_invalid(e, p, r, "must be a map");
			continue;
		}
		for (size_t f = 0; f < sizeof(required) / sizeof(required[0]); f++) {
			json_t *v = json_object_get(r, required[f].field);
			pathf(p, sizeof(p), "metadata.ownerReferences.%s", required[f].field);
			snprintf(detail, sizeof(detail), "%s must not be empty", required[f].what);
			if (v && !json_is_string(v))
				err_invalid(e, p, v, "must be a string");
			else if (!json_string_length(v))
				err_invalid_str(e, p, "", detail);
		}
		json_t *c = json_object_get(r, "controller");
		if (c && !json_is_null(c) && !json_is_boolean(c)) {
			pathf(p, sizeof(p), "metadata.ownerReferences[%zu].controller", i);
			err_invalid(e, p, c, "must be a boolean");
		}
		controllers += json_is_true(c);
	}
	if (controllers > 1)
		err_invalid(e, "metadata.ownerReferences", refs,
			    "Only one reference can have Controller set to true");
}

/* The agent names a pod's directory and cgroup after its uid: a uid is a token (a UUID when
 * kc_create made it), never a path. */
static void check_uid(verrs_t *e, const json_t *uid)
{
	const char *s = json_string_value(uid);
	size_t len = s ? strlen(s) : 0;
	bool ok = len > 0 && len <= KC_UID_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char)s[i]) || s[i] == '-';
	if (s && !ok)
		err_invalid(e, "metadata.uid", uid, MSG_UID);
}

/* The metadata fields the components read besides names and labels. */
static void check_meta_fields(verrs_t *e, const json_t *meta)
{
	static const char *const strings[] = {"uid", "resourceVersion", "generateName", NULL};
	static const char *const times[] = {"creationTimestamp", "deletionTimestamp", NULL};
	char p[96];
	for (const char *const *f = strings; *f; f++) {
		json_t *v = json_object_get(meta, *f);
		pathf(p, sizeof(p), "metadata.%s", *f);
		if (v && !json_is_null(v) && !json_is_string(v))
			err_invalid(e, p, v, "must be a string");
	}
	for (const char *const *f = times; *f; f++) {
		pathf(p, sizeof(p), "metadata.%s", *f);
		check_time_field(e, p, json_object_get(meta, *f));
	}
	check_uid(e, json_object_get(meta, "uid"));
	check_nonnegative_int(e, "metadata.generation", json_object_get(meta, "generation"), false);
	check_nonnegative_int(e, "metadata.deletionGracePeriodSeconds",
			      json_object_get(meta, "deletionGracePeriodSeconds"), false);
	check_owner_refs(e, json_object_get(meta, "ownerReferences"));
}

/* metadata.name, or a generateName whose generated suffix will be alphanumeric. */
static void check_name(verrs_t *e, const json_t *meta)
{
	json_t *name = json_object_get(meta, "name");
	const char *gen = json_string_value(json_object_get(meta, "generateName"));
	if (name && !json_is_string(name)) {
		err_invalid(e, "metadata.name", name, "must be a string");
	} else if (json_string_length(name)) {
		check_subdomain(e, "metadata.name", json_string_value(name), "");
	} else if (gen && *gen) {
		char *masked = strdup(gen);
		size_t gl = strlen(gen);
		if (masked && masked[gl - 1] == '-')
			masked[gl - 1] = 'a';
		if (masked && !re_dns_subdomain(masked, gl))
			err_invalid_str(e, "metadata.generateName", gen, MSG_DNS_SUBDOMAIN);
		free(masked);
	} else {
		err_required(e, "metadata.name", "name or generateName is required");
	}
}

static void check_namespace(verrs_t *e, const kc_kind_info_t *ki, const json_t *meta)
{
	json_t *ns = json_object_get(meta, "namespace");
	if (ns && !json_is_null(ns) && !json_is_string(ns))
		err_invalid(e, "metadata.namespace", ns, "must be a string");
	else if (ki->namespaced && !json_string_length(ns))
		err_required(e, "metadata.namespace", NULL);
	else if (ki->namespaced)
		check_dns_label(e, "metadata.namespace", json_string_value(ns));
	else if (json_string_length(ns))
		verr_add(e, "metadata.namespace", "Forbidden: not allowed on this type");
}

static void check_annotations(verrs_t *e, const json_t *ann)
{
	const char *k;
	json_t *v;
	if (ann && !json_is_null(ann) && !json_is_object(ann))
		err_invalid(e, "metadata.annotations", ann, "must be a map of strings");
	json_object_foreach((json_t *)ann, k, v) {
		check_qualified_name(e, "metadata.annotations", k);
		if (!json_is_string(v))
			err_invalid(e, "metadata.annotations", v, "must be a string");
	}
}

static void check_meta(verrs_t *e, const kc_kind_info_t *ki, const json_t *obj)
{
	const json_t *meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta)) {
		err_required(e, "metadata", NULL);
		return;
	}
	check_name(e, meta);
	check_namespace(e, ki, meta);
	check_labels(e, "metadata.labels", json_object_get(meta, "labels"));
	check_annotations(e, json_object_get(meta, "annotations"));
	check_meta_fields(e, meta);
}

/* A list of strings: command (required non-empty) and args. */
static void check_string_list(verrs_t *e, const char *path, const json_t *v, bool required)
{
	char p[320];
	size_t i;
	json_t *x;
	if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0)) {
		if (required)
			err_required(e, path, NULL);
		return;
	}
	if (!json_is_array(v)) {
		err_invalid(e, path, v, "must be a list of strings");
		return;
	}
	json_array_foreach(v, i, x) {
		if (json_is_string(x))
			continue;
		pathf(p, sizeof(p), "%s[%zu]", path, i);
		err_invalid(e, p, x, "must be a string");
	}
}

static bool env_name_ok(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-._", *s))
			return false;
	return true;
}

static void check_env(verrs_t *e, const char *path, const json_t *env)
{
	char p[320];
	size_t i;
	json_t *x;
	if (!env || json_is_null(env))
		return;
	if (!json_is_array(env)) {
		err_invalid(e, path, env, "must be a list of {name, value}");
		return;
	}
	json_array_foreach(env, i, x) {
		if (!json_is_object(x)) {
			pathf(p, sizeof(p), "%s[%zu]", path, i);
			err_invalid(e, p, x, "must be a map");
			continue;
		}
		json_t *name = json_object_get(x, "name");
		json_t *value = json_object_get(x, "value");
		pathf(p, sizeof(p), "%s[%zu].name", path, i);
		if (!json_string_length(name) && (!name || json_is_string(name)))
			err_required(e, p, NULL);
		else if (!json_is_string(name))
			err_invalid(e, p, name, "must be a string");
		else if (!env_name_ok(json_string_value(name)))
			err_invalid(e, p, name, MSG_ENV_NAME);
		pathf(p, sizeof(p), "%s[%zu].value", path, i);
		if (value && !json_is_null(value) && !json_is_string(value))
			err_invalid(e, p, value, "must be a string");
	}
}

/* A map of resource names to quantities; names (NULL: any) lists the standard ones. */
static void check_quantities(verrs_t *e, const char *path, const json_t *m,
			     const char *const *names)
{
	char p[320], msg[200];
	const char *k;
	json_t *v;
	if (!m || json_is_null(m))
		return;
	if (!json_is_object(m)) {
		err_invalid(e, path, m, "must be a map of quantities");
		return;
	}
	json_object_foreach((json_t *)m, k, v) {
		int64_t milli;
		pathf(p, sizeof(p), "%s[%s]", path, k);
		if (names && !strchr(k, '/') && !in_list(k, names))
			err_invalid_str(e, p, k, "must be a standard resource for containers");
		else if (kc_quantity_parse(v, &milli, msg, sizeof(msg)) != 0)
			err_invalid(e, p, v, msg);
		else if (milli < 0)
			err_invalid(e, p, v, "must be greater than or equal to 0");
	}
}

static void check_resources(verrs_t *e, const char *path, const json_t *res)
{
	char p[320], detail[128];
	if (!res || json_is_null(res))
		return;
	if (!json_is_object(res)) {
		err_invalid(e, path, res, "must be a map with requests and limits");
		return;
	}
	json_t *req = json_object_get(res, "requests");
	json_t *lim = json_object_get(res, "limits");
	pathf(p, sizeof(p), "%s.requests", path);
	check_quantities(e, p, req, container_resources);
	pathf(p, sizeof(p), "%s.limits", path);
	check_quantities(e, p, lim, container_resources);
	if (!json_is_object(req) || !json_is_object(lim))
		return;
	const char *k;
	json_t *rv;
	pathf(p, sizeof(p), "%s.requests", path);
	json_object_foreach(req, k, rv) {
		int64_t r, l;
		json_t *lv = json_object_get(lim, k);
		if (!lv || kc_quantity_parse(rv, &r, NULL, 0) != 0 ||
		    kc_quantity_parse(lv, &l, NULL, 0) != 0 || r <= l)
			continue;
		snprintf(detail, sizeof(detail), "must be less than or equal to %s limit", k);
		err_invalid(e, p, rv, detail);
	}
}

static void check_container(verrs_t *e, const char *path, const json_t *c, json_t *seen)
{
	char p[320];
	if (!json_is_object(c)) {
		err_invalid(e, path, c, "must be a map");
		return;
	}
	json_t *name = json_object_get(c, "name");
	pathf(p, sizeof(p), "%s.name", path);
	if (!json_string_length(name) && (!name || json_is_string(name))) {
		err_required(e, p, NULL);
	} else if (!json_is_string(name)) {
		err_invalid(e, p, name, "must be a string");
	} else {
		const char *nm = json_string_value(name);
		check_dns_label(e, p, nm);
		if (json_object_get(seen, nm)) {
			char *d = json_dumps(name, JSON_ENCODE_ANY);
			verr_add(e, p, "Duplicate value: %s", d ? d : "");
			free(d);
		}
		json_object_set_new(seen, nm, json_true());
	}
	pathf(p, sizeof(p), "%s.command", path);
	check_string_list(e, p, json_object_get(c, "command"), true);
	pathf(p, sizeof(p), "%s.args", path);
	check_string_list(e, p, json_object_get(c, "args"), false);
	pathf(p, sizeof(p), "%s.env", path);
	check_env(e, p, json_object_get(c, "env"));
	json_t *wd = json_object_get(c, "workingDir");
	pathf(p, sizeof(p), "%s.workingDir", path);
	if (wd && !json_is_null(wd) && !json_is_string(wd))
		err_invalid(e, p, wd, "must be a string");
	pathf(p, sizeof(p), "%s.resources", path);
	check_resources(e, p, json_object_get(c, "resources"));
}

static void check_toleration(verrs_t *e, const char *path, const json_t *t)
{
	char p[320];
	if (!json_is_object(t)) {
		err_invalid(e, path, t, "must be a map");
		return;
	}
	static const char *const fields[] = {"key", "operator", "value", "effect", NULL};
	for (const char *const *f = fields; *f; f++) {
		json_t *v = json_object_get(t, *f);
		pathf(p, sizeof(p), "%s.%s", path, *f);
		if (v && !json_is_null(v) && !json_is_string(v)) {
			err_invalid(e, p, v, "must be a string");
			return;
		}
	}
	const char *key = str_or_empty(t, "key");
	const char *op = str_or_empty(t, "operator");
	const char *value = str_or_empty(t, "value");
	const char *effect = str_or_empty(t, "effect");
	pathf(p, sizeof(p), "%s.key", path);
	if (*key)
		check_qualified_name(e, p, key);
	pathf(p, sizeof(p), "%s.operator", path);
	if (!*key && strcmp(op, "Exists") != 0)
		err_invalid_str(e, p, op,
				"operator must be Exists when `key` is empty, which means "
				"\"match all values and all keys\"");
	if (!*op || strcmp(op, "Equal") == 0) {
		pathf(p, sizeof(p), "%s.value", path);
		check_label_value(e, p, value);
	} else if (strcmp(op, "Exists") == 0) {
		if (*value)
			err_invalid_str(e, p, value,
					"value must be empty when `operator` is 'Exists'");
	} else {
		err_unsupported(e, p, json_object_get(t, "operator"), toleration_ops);
	}
	json_t *secs = json_object_get(t, "tolerationSeconds");
	pathf(p, sizeof(p), "%s.effect", path);
	if (*effect && !in_list(effect, taint_effects))
		err_unsupported(e, p, json_object_get(t, "effect"), taint_effects);
	if (secs && !json_is_null(secs)) {
		if (!json_is_integer(secs)) {
			pathf(p, sizeof(p), "%s.tolerationSeconds", path);
			err_invalid(e, p, secs, "must be an integer");
		} else if (strcmp(effect, "NoExecute") != 0) {
			err_invalid_str(e, p, effect,
					"effect must be 'NoExecute' when "
					"`tolerationSeconds` is set");
		}
	}
}

/* One summed resource; past INT64_MAX milli-units it cannot be represented. */
typedef struct res_sum {
	int64_t total;
	bool over;
} res_sum_t;

/* The container's valid quantity at resources.<part>[res] (and its JSON in *q), or -1. */
static int64_t container_quantity(const json_t *c, const char *part, const char *res,
				  json_t **q)
{
	int64_t v;
	*q = json_object_get(json_object_get(json_object_get(c, "resources"), part), res);
	if (!*q || kc_quantity_parse(*q, &v, NULL, 0) != 0 || v < 0)
		return -1;
	return v;
}

/* Adds v to sum; on the first overflow, an error on the quantity that caused it. */
static void sum_add(verrs_t *e, const char *cpath, const char *part, const char *res,
		    const json_t *q, int64_t v, const char *what, res_sum_t *sum)
{
	char p[400], detail[160];
	if (v < 0 || sum->over)
		return;
	if (v <= INT64_MAX - sum->total) {
		sum->total += v;
		return;
	}
	sum->over = true;
	pathf(p, sizeof(p), "%s.resources.%s[%s]", cpath, part, res);
	snprintf(detail, sizeof(detail), "the pod's total %s %s must be no more than %" PRId64 "m",
		 res, what, INT64_MAX);
	err_invalid(e, p, q, detail);
}

/* kc_pod_requests and the scheduler add the containers' requests (a container without one
 * counts its limit): a pod whose sums overflow would wrap to a request that fits anywhere. */
static void check_resource_sums(verrs_t *e, const char *path, const json_t *containers)
{
	static const char *const summed[] = {"cpu", "memory", NULL};
	char p[320];
	for (const char *const *r = summed; *r; r++) {
		res_sum_t req = {0}, lim = {0}, eff = {0};
		size_t i;
		json_t *c, *rq, *lq;
		json_array_foreach(containers, i, c) {
			pathf(p, sizeof(p), "%s.containers[%zu]", path, i);
			int64_t rv = container_quantity(c, "requests", *r, &rq);
			int64_t lv = container_quantity(c, "limits", *r, &lq);
			sum_add(e, p, "requests", *r, rq, rv, "requests", &req);
			sum_add(e, p, "limits", *r, lq, lv, "limits", &lim);
			if (req.over || lim.over)
				continue;
			if (rv >= 0)
				sum_add(e, p, "requests", *r, rq, rv, "requests", &eff);
			else
				sum_add(e, p, "limits", *r, lq, lv, "requests", &eff);
		}
	}
}

static void check_containers(verrs_t *e, const char *path, const json_t *containers)
{
	char p[320];
	pathf(p, sizeof(p), "%s.containers", path);
	if (containers && !json_is_null(containers) && !json_is_array(containers)) {
		err_invalid(e, p, containers, "must be a list of containers");
		return;
	}
	if (json_array_size(containers) == 0) {
		err_required(e, p, NULL);
		return;
	}
	json_t *seen = json_object();
	size_t i;
	json_t *c;
	json_array_foreach(containers, i, c) {
		pathf(p, sizeof(p), "%s.containers[%zu]", path, i);
		check_container(e, p, c, seen);
	}
	json_decref(seen);
	check_resource_sums(e, path, containers);
}

static void check_tolerations(verrs_t *e, const char *path, const json_t *tols)
{
	char p[320];
	pathf(p, sizeof(p), "%s.tolerations", path);
	if (tols && !json_is_null(tols) && !json_is_array(tols))
		err_invalid(e, p, tols, "must be a list of tolerations");
	size_t i;
	json_t *t;
	json_array_foreach(tols, i, t) {
		pathf(p, sizeof(p), "%s.tolerations[%zu]", path, i);
		check_toleration(e, p, t);
	}
}

/* A string member that may be absent; with dns_name, a given one is a DNS-1123 subdomain. */
static void check_optional_string(verrs_t *e, const char *path, const json_t *v, bool dns_name)
{
	if (v && !json_is_null(v) && !json_is_string(v))
		err_invalid(e, path, v, "must be a string");
	else if (dns_name && json_string_length(v))
		check_subdomain(e, path, json_string_value(v), "");
}

static void check_pod_spec(verrs_t *e, const char *path, const json_t *spec,
			   const char *const *policies)
{
	char p[320];
	if (!json_is_object(spec)) {
		err_required(e, path, NULL);
		return;
	}
	check_containers(e, path, json_object_get(spec, "containers"));
	json_t *rp = json_object_get(spec, "restartPolicy");
	pathf(p, sizeof(p), "%s.restartPolicy", path);
	if (!rp || json_is_null(rp) || (json_is_string(rp) && !json_string_length(rp)))
		err_required(e, p, NULL);
	else if (!in_list(json_string_value(rp), policies))
		err_unsupported(e, p, rp, policies);
	pathf(p, sizeof(p), "%s.terminationGracePeriodSeconds", path);
	check_nonnegative_int(e, p, json_object_get(spec, "terminationGracePeriodSeconds"), false);
	pathf(p, sizeof(p), "%s.nodeSelector", path);
	check_labels(e, p, json_object_get(spec, "nodeSelector"));
	pathf(p, sizeof(p), "%s.nodeName", path);
	check_optional_string(e, p, json_object_get(spec, "nodeName"), true);
	pathf(p, sizeof(p), "%s.schedulerName", path);
	check_optional_string(e, p, json_object_get(spec, "schedulerName"), false);
	check_tolerations(e, path, json_object_get(spec, "tolerations"));
}

static const char *const selector_ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};

/* A LabelSelector object, each part at its own path as Kubernetes reports it. */
static void check_label_selector(verrs_t *e, const char *path, const json_t *sel)
{
	char p[320];
	pathf(p, sizeof(p), "%s.matchLabels", path);
	check_labels(e, p, json_object_get(sel, "matchLabels"));
	json_t *exprs = json_object_get(sel, "matchExpressions");
	pathf(p, sizeof(p), "%s.matchExpressions", path);
	if (exprs && !json_is_null(exprs) && !json_is_array(exprs))
		err_invalid(e, p, exprs, "must be a list of requirements");
	size_t i;
	json_t *x;
	json_array_foreach(exprs, i, x) {
		pathf(p, sizeof(p), "%s.matchExpressions[%zu]", path, i);
		if (!json_is_object(x)) {
			err_invalid(e, p, x, "must be a map");
			continue;
		}
		json_t *key = json_object_get(x, "key");
		json_t *op = json_object_get(x, "operator");
		json_t *values = json_object_get(x, "values");
		const char *ops = json_string_value(op);
		pathf(p, sizeof(p), "%s.matchExpressions[%zu].operator", path, i);
		if (!ops || !*ops)
			err_required(e, p, NULL);
		else if (!in_list(ops, selector_ops))
			err_invalid(e, p, op, "not a valid selector operator");
		pathf(p, sizeof(p), "%s.matchExpressions[%zu].values", path, i);
		if (values && !json_is_null(values) && !json_is_array(values))
			err_invalid(e, p, values, "must be a list of strings");
		else if (ops && (!strcmp(ops, "In") || !strcmp(ops, "NotIn")) &&
			 json_array_size(values) == 0)
			err_required(e, p, "must be specified when `operator` is 'In' or 'NotIn'");
		else if (ops && (!strcmp(ops, "Exists") || !strcmp(ops, "DoesNotExist")) &&
			 json_array_size(values) > 0)
			verr_add(e, p,
				 "Forbidden: may not be specified when `operator` is 'Exists' "
				 "or 'DoesNotExist'");
		size_t j;
		json_t *v;
		json_array_foreach(values, j, v) {
			pathf(p, sizeof(p), "%s.matchExpressions[%zu].values[%zu]", path, i, j);
			if (!json_is_string(v))
				err_invalid(e, p, v, "must be a string");
			else
				check_label_value(e, p, json_string_value(v));
		}
		pathf(p, sizeof(p), "%s.matchExpressions[%zu].key", path, i);
		if (key && !json_is_string(key))
			err_invalid(e, p, key, "must be a string");
		else
			check_qualified_name(e, p, key ? json_string_value(key) : "");
	}
}

static void check_replicaset(verrs_t *e, const json_t *obj)
{
	json_t *spec = json_object_get(obj, "spec");
	if (!json_is_object(spec)) {
		err_required(e, "spec", NULL);
		return;
	}
	check_nonnegative_int(e, "spec.replicas", json_object_get(spec, "replicas"), true);
	check_nonnegative_int(e, "spec.minReadySeconds", json_object_get(spec, "minReadySeconds"),
			      false);
	json_t *sel = json_object_get(spec, "selector");
	kc_selector_t *s = NULL;
	if (!sel || json_is_null(sel)) {
		err_required(e, "spec.selector", NULL);
	} else if (!json_is_object(sel)) {
		err_invalid(e, "spec.selector", sel, "must be a label selector");
	} else {
		int before = e->count;
		check_label_selector(e, "spec.selector", sel);
		if (json_object_size(json_object_get(sel, "matchLabels")) +
			    json_array_size(json_object_get(sel, "matchExpressions")) ==
		    0)
			err_invalid(e, "spec.selector", sel,
				    "empty selector is invalid for deployment");
		else if (e->count == before && kc_selector_from_json(sel, &s, NULL, 0) != 0)
			s = NULL;
	}
	json_t *tmpl = json_object_get(spec, "template");
	if (!json_is_object(tmpl)) {
		err_required(e, "spec.template", NULL);
		kc_selector_free(s);
		return;
	}
	json_t *labels = kc_path(tmpl, "metadata.labels");
	check_labels(e, "spec.template.metadata.labels", labels);
	if (s && !kc_selector_matches(s, json_is_object(labels) ? labels : NULL)) {
		json_t *shown = json_is_object(labels) ? json_incref(labels) : json_object();
		err_invalid(e, "spec.template.metadata.labels", shown,
			    "`selector` does not match template `labels`");
		json_decref(shown);
	}
	kc_selector_free(s);
	check_pod_spec(e, "spec.template.spec", json_object_get(tmpl, "spec"), rs_restart_policies);
}

static void check_node(verrs_t *e, const json_t *obj)
{
	char p[320];
	json_t *spec = json_object_get(obj, "spec");
	if (spec && !json_is_null(spec) && !json_is_object(spec)) {
		err_invalid(e, "spec", spec, "must be a map");
		return;
	}
	json_t *unsched = json_object_get(spec, "unschedulable");
	if (unsched && !json_is_null(unsched) && !json_is_boolean(unsched))
		err_invalid(e, "spec.unschedulable", unsched, "must be a boolean");
	json_t *taints = json_object_get(spec, "taints");
	if (taints && !json_is_null(taints) && !json_is_array(taints))
		err_invalid(e, "spec.taints", taints, "must be a list of taints");
	size_t i;
	json_t *t;
	json_array_foreach(taints, i, t) {
		pathf(p, sizeof(p), "spec.taints[%zu]", i);
		if (!json_is_object(t)) {
			err_invalid(e, p, t, "must be a map");
			continue;
		}
		json_t *key = json_object_get(t, "key");
		json_t *value = json_object_get(t, "value");
		json_t *effect = json_object_get(t, "effect");
		pathf(p, sizeof(p), "spec.taints[%zu].key", i);
		if (key && !json_is_string(key))
			err_invalid(e, p, key, "must be a string");
		else
			check_qualified_name(e, p, key ? json_string_value(key) : "");
		pathf(p, sizeof(p), "spec.taints[%zu].value", i);
		if (value && !json_is_null(value) && !json_is_string(value))
			err_invalid(e, p, value, "must be a string");
		else if (value)
			check_label_value(e, p,
					  json_string_value(value) ? json_string_value(value) : "");
		pathf(p, sizeof(p), "spec.taints[%zu].effect", i);
		if (!json_string_length(effect) && (!effect || json_is_string(effect)))
			err_required(e, p, NULL);
		else if (!in_list(json_string_value(effect), taint_effects))
			err_unsupported(e, p, effect, taint_effects);
	}
	check_quantities(e, "status.capacity", kc_path(obj, "status.capacity"), NULL);
	check_quantities(e, "status.allocatable", kc_path(obj, "status.allocatable"), NULL);
}

static void check_lease(verrs_t *e, const json_t *obj)
{
	json_t *spec = json_object_get(obj, "spec");
	if (spec && !json_is_null(spec) && !json_is_object(spec)) {
		err_invalid(e, "spec", spec, "must be a map");
		return;
	}
	json_t *holder = json_object_get(spec, "holderIdentity");
	if (holder && !json_is_null(holder) && !json_is_string(holder))
		err_invalid(e, "spec.holderIdentity", holder, "must be a string");
	json_t *dur = json_object_get(spec, "leaseDurationSeconds");
	if (dur && !json_is_null(dur) && !json_is_integer(dur))
		err_invalid(e, "spec.leaseDurationSeconds", dur, "must be an integer");
	else if (json_is_integer(dur) && json_integer_value(dur) <= 0)
		err_invalid(e, "spec.leaseDurationSeconds", dur, "must be greater than 0");
	check_nonnegative_int(e, "spec.leaseTransitions", json_object_get(spec, "leaseTransitions"),
			      false);
	check_time_field(e, "spec.acquireTime", json_object_get(spec, "acquireTime"));
	check_time_field(e, "spec.renewTime", json_object_get(spec, "renewTime"));
}

static const char *const pod_phases[] = {"Pending", "Running", "Succeeded",
					 "Failed",  "Unknown", NULL};
static const char *const condition_statuses[] = {"True", "False", "Unknown", NULL};

/* status.conditions: a list of {type, status, ...} with Kubernetes' three statuses. */
static void check_conditions(verrs_t *e, const json_t *status)
{
	char p[96];
	json_t *conds = json_object_get(status, "conditions");
	if (conds && !json_is_null(conds) && !json_is_array(conds)) {
		err_invalid(e, "status.conditions", conds, "must be a list of conditions");
		return;
	}
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c) {
		pathf(p, sizeof(p), "status.conditions[%zu]", i);
		if (!json_is_object(c)) {
			err_invalid(e, p, c, "must be a map");
			continue;
		}
		json_t *type = json_object_get(c, "type");
		json_t *st = json_object_get(c, "status");
		pathf(p, sizeof(p), "status.conditions[%zu].type", i);
		if (!json_string_length(type))
			err_required(e, p, NULL);
		pathf(p, sizeof(p), "status.conditions[%zu].status", i);
		if (st && !json_is_null(st) && !in_list(json_string_value(st), condition_statuses))
			err_unsupported(e, p, st, condition_statuses);
	}
}

static void check_status(verrs_t *e, kc_kind_t kind, const json_t *obj)
{
	json_t *status = json_object_get(obj, "status");
	if (!status || json_is_null(status))
		return;
	if (!json_is_object(status)) {
		err_invalid(e, "status", status, "must be a map");
		return;
	}
	check_conditions(e, status);
	if (kind == KC_POD) {
		json_t *phase = json_object_get(status, "phase");
		if (phase && !json_is_null(phase) && !in_list(json_string_value(phase), pod_phases))
			err_unsupported(e, "status.phase", phase, pod_phases);
		json_t *cs = json_object_get(status, "containerStatuses");
		if (cs && !json_is_null(cs) && !json_is_array(cs))
			err_invalid(e, "status.containerStatuses", cs, "must be a list");
	} else if (kind == KC_REPLICASET) {
		static const char *const counts[] = {"replicas",           "fullyLabeledReplicas",
						     "readyReplicas",      "availableReplicas",
						     "observedGeneration", NULL};
		char p[64];
		for (const char *const *f = counts; *f; f++) {
			pathf(p, sizeof(p), "status.%s", *f);
			check_nonnegative_int(e, p, json_object_get(status, *f), false);
		}
	}
}

int kc_object_validate(kc_kind_t kind, const json_t *obj, char *msg, size_t n)
{
	const kc_kind_info_t *ki = kc_kind_info(kind);
	if (!ki || !json_is_object(obj)) {
		snprintf(msg, n, "the object is not a JSON/YAML map");
		return -1;
	}
	verrs_t e = {0};
	verr_append(&e, "");
	check_meta(&e, ki, obj);
	switch (kind) {
	case KC_POD:
		check_pod_spec(&e, "spec", json_object_get(obj, "spec"), restart_policies);
		break;
	case KC_REPLICASET:
		check_replicaset(&e, obj);
		break;
	case KC_NODE:
		check_node(&e, obj);
		break;
	case KC_LEASE:
		check_lease(&e, obj);
		break;
	default:
		break;
	}
	check_status(&e, kind, obj);
	int r = 0;
	if (e.count > 0 || e.failed) {
		const char *name = kc_name(obj);
		if (e.failed)
			snprintf(msg, n, "The %s \"%s\" is invalid: out of memory", ki->name,
				 name ? name : "");
		else if (e.count == 1)
			snprintf(msg, n, "The %s \"%s\" is invalid: %s", ki->name, name ? name : "",
				 e.buf);
		else
			snprintf(msg, n, "The %s \"%s\" is invalid: [%s]", ki->name,
				 name ? name : "", e.buf);
		r = -1;
	}
	free(e.buf);
	return r;
}
