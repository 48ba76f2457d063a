/* tests/cluster/objects/test_cluster_object.c — the object model: kind lookup, registry keys,
 * paths, time, conditions, toleration rules, defaults, and validation with kubectl's texts
 * (compared as whole strings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

static json_t *parse(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, 0, &err);
	if (!v)
		fail_msg("bad test JSON at %d: %s", err.position, err.text);
	return v;
}

/* ---- kinds and keys ------------------------------------------------------------------------ */

static void test_kind_lookup_accepts_every_kubectl_name(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		kc_kind_t kind;
	} names[] = {
		{"nodes", KC_NODE},
		{"node", KC_NODE},
		{"no", KC_NODE},
		{"Node", KC_NODE},
		{"NODES", KC_NODE},
		{"pods", KC_POD},
		{"pod", KC_POD},
		{"po", KC_POD},
		{"Pod", KC_POD},
		{"po/web-1", KC_POD},
		{"replicasets", KC_REPLICASET},
		{"replicaset", KC_REPLICASET},
		{"rs", KC_REPLICASET},
		{"ReplicaSet", KC_REPLICASET},
		{"replicasets.apps", KC_REPLICASET},
		{"replicasets.v1.apps", KC_REPLICASET},
		{"rs/web", KC_REPLICASET},
		{"leases", KC_LEASE},
		{"lease", KC_LEASE},
		{"Lease", KC_LEASE},
		{"leases.coordination.k8s.io", KC_LEASE},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const kc_kind_info_t *ki = kc_kind_lookup(names[i].name);
		if (!ki || ki->kind != names[i].kind)
			fail_msg("%s: wrong kind", names[i].name);
	}
	assert_null(kc_kind_lookup("deployments"));
	assert_null(kc_kind_lookup(""));
	assert_null(kc_kind_lookup("/x"));
	assert_null(kc_kind_lookup(NULL));
	assert_null(kc_kind_lookup("pods.apps"));
}

static void test_kind_table_matches_kubernetes(void **state)
{
	(void)state;
	const kc_kind_info_t *ki = kc_kind_info(KC_REPLICASET);
	assert_string_equal(ki->name, "ReplicaSet");
	assert_string_equal(ki->api_version, "apps/v1");
	assert_string_equal(ki->resource, "replicasets.apps");
	assert_true(ki->namespaced);
	ki = kc_kind_info(KC_NODE);
	assert_false(ki->namespaced);
	assert_string_equal(ki->short_name, "no");
	ki = kc_kind_info(KC_LEASE);
	assert_null(ki->short_name);
	assert_string_equal(ki->api_version, "coordination.k8s.io/v1");
	assert_null(kc_kind_info(KC_KIND_COUNT));
}

static void test_kind_of_reads_api_version_and_kind(void **state)
{
	(void)state;
	char msg[200];
	kc_kind_t kind;
	json_t *o = parse("{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\"}");
	assert_int_equal(kc_kind_of(o, &kind, msg, sizeof(msg)), 0);
	assert_int_equal(kind, KC_REPLICASET);
	json_decref(o);
	o = parse("{\"apiVersion\":\"v1\",\"kind\":\"Foo\"}");
	assert_int_equal(kc_kind_of(o, &kind, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "no kind \"Foo\" is registered for version \"v1\"");
	json_decref(o);
	o = parse("{\"apiVersion\":\"v1\",\"kind\":\"ReplicaSet\"}");
	assert_int_equal(kc_kind_of(o, &kind, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "no kind \"ReplicaSet\" is registered for version \"v1\"");
	json_decref(o);
	o = parse("{\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}");
	assert_int_equal(kc_kind_of(o, &kind, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Object 'Kind' is missing in '{\"apiVersion\":\"v1\",\"metadata\":"
				 "{\"name\":\"x\"}}'");
	json_decref(o);
	/* apiVersion may be left out: defaults fill it */
	o = parse("{\"kind\":\"Lease\"}");
	assert_int_equal(kc_kind_of(o, &kind, msg, sizeof(msg)), 0);
	assert_int_equal(kind, KC_LEASE);
	json_decref(o);
}

static void test_keys_round_trip(void **state)
{
	(void)state;
	static const struct {
		kc_kind_t kind;
		const char *ns, *name, *key;
	} cases[] = {
		{KC_POD, "default", "web-1", "/registry/pods/default/web-1"},
		{KC_NODE, NULL, "n1", "/registry/nodes/n1"},
		{KC_REPLICASET, "prod", "web", "/registry/replicasets/prod/web"},
		{KC_LEASE, "kube-node-lease", "n1", "/registry/leases/kube-node-lease/n1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *key = kc_key(cases[i].kind, cases[i].ns, cases[i].name);
		assert_string_equal(key, cases[i].key);
		kc_kind_t kind;
		char *ns = (char *)"junk", *name = NULL;
		assert_int_equal(kc_key_parse(key, strlen(key), &kind, &ns, &name), 0);
		assert_int_equal(kind, cases[i].kind);
		if (cases[i].ns)
			assert_string_equal(ns, cases[i].ns);
		else
			assert_null(ns);
		assert_string_equal(name, cases[i].name);
		free(ns);
		free(name);
		free(key);
	}
	/* a node's key ignores a namespace; a pod without one lands in default */
	char *key = kc_key(KC_NODE, "default", "n1");
	assert_string_equal(key, "/registry/nodes/n1");
	free(key);
	key = kc_key(KC_POD, NULL, "p");
	assert_string_equal(key, "/registry/pods/default/p");
	free(key);
}

static void test_key_parse_rejects_non_object_keys(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"/registry/pods/default",
		"/registry/pods/default/",
		"/registry/pods//x",
		"/registry/pods/a/b/c",
		"/registry/nodes/",
		"/registry/nodes/a/b",
		"/registry/deployments/a/b",
		"/other/pods/a/b",
		"/registry/",
		"/registry/podsx/a/b",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kc_kind_t kind;
		char *ns = NULL, *name = NULL;
		if (kc_key_parse(bad[i], strlen(bad[i]), &kind, &ns, &name) != -1)
			fail_msg("%s parsed", bad[i]);
	}
	/* len, not the NUL, bounds the key */
	const char *k = "/registry/nodes/n1XYZ";
	char *name = NULL;
	assert_int_equal(kc_key_parse(k, strlen(k) - 3, NULL, NULL, &name), 0);
	assert_string_equal(name, "n1");
	free(name);
}

static void test_prefix_and_object_key(void **state)
{
	(void)state;
	char *p = kc_prefix(KC_POD, NULL);
	assert_string_equal(p, "/registry/pods/");
	free(p);
	p = kc_prefix(KC_POD, "kube-system");
	assert_string_equal(p, "/registry/pods/kube-system/");
	free(p);
	p = kc_prefix(KC_NODE, "x");
	assert_string_equal(p, "/registry/nodes/");
	free(p);
	json_t *o = parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\","
			  "\"namespace\":\"ns1\"}}");
	p = kc_object_key(o);
	assert_string_equal(p, "/registry/pods/ns1/a");
	free(p);
	json_object_del(json_object_get(o, "metadata"), "namespace");
	assert_null(kc_object_key(o));
	json_decref(o);
}

/* ---- accessors ----------------------------------------------------------------------------- */

static void test_paths_read_nested_values_and_arrays(void **state)
{
	(void)state;
	json_t *o = parse("{\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"42\","
			  "\"ownerReferences\":[{\"name\":\"a\"},{\"name\":\"b\",\"controller\":"
			  "true}]},"
			  "\"spec\":{\"containers\":[{\"name\":\"main\",\"args\":[\"x\",\"y\"]}],"
			  "\"n\":7,\"m\":[[1,2],[3]]}}");
	assert_string_equal(kc_path_str(o, "spec.containers[0].name"), "main");
	assert_string_equal(kc_path_str(o, "spec.containers[0].args[1]"), "y");
	assert_null(kc_path(o, "spec.containers[1].name"));
	assert_null(kc_path(o, "spec.containers.name"));
	assert_null(kc_path(o, "spec.containers["));
	assert_null(kc_path(o, "spec..n"));
	assert_int_equal(kc_path_int(o, "spec.n", -1), 7);
	assert_int_equal(kc_path_int(o, "spec.m[0][1]", -1), 2);
	assert_int_equal(kc_path_int(o, "spec.missing", -9), -9);
	assert_int_equal(kc_path_int(o, "metadata.name", -9), -9);
	assert_null(kc_path_str(o, "spec.n"));
	assert_string_equal(kc_name(o), "web");
	assert_null(kc_namespace(o));
	assert_int_equal(kc_resource_version(o), 42);
	assert_string_equal(json_string_value(json_object_get(kc_controller_ref(o), "name")), "b");
	assert_false(kc_deleting(o));
	json_decref(o);
}

static void test_path_set_creates_and_refuses_clashes(void **state)
{
	(void)state;
	json_t *o = json_object();
	assert_int_equal(kc_path_set(o, "spec.nodeName", json_string("n1")), 0);
	assert_string_equal(kc_path_str(o, "spec.nodeName"), "n1");
	assert_int_equal(kc_path_set(o, "status.conditions[0].type", json_string("Ready")), 0);
	assert_string_equal(kc_path_str(o, "status.conditions[0].type"), "Ready");
	assert_int_equal(kc_path_set(o, "status.conditions[1]", json_integer(5)), 0);
	assert_int_equal(kc_path_int(o, "status.conditions[1]", 0), 5);
	assert_int_equal(kc_path_set(o, "status.conditions[0].type", json_string("X")), 0);
	assert_string_equal(kc_path_str(o, "status.conditions[0].type"), "X");
	/* type clashes and gaps: -1, the value is released (ASan checks) */
	assert_int_equal(kc_path_set(o, "spec.nodeName.x", json_string("v")), -1);
	assert_int_equal(kc_path_set(o, "spec[0]", json_string("v")), -1);
	assert_int_equal(kc_path_set(o, "status.conditions[5]", json_string("v")), -1);
	assert_int_equal(kc_path_set(o, "", json_string("v")), -1);
	assert_int_equal(kc_path_set(o, "a..b", json_string("v")), -1);
	assert_string_equal(kc_path_str(o, "spec.nodeName"), "n1");
	json_decref(o);
}

static void test_metadata_accessors(void **state)
{
	(void)state;
	json_t *o = parse("{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"uid\":\"u-1\","
			  "\"deletionTimestamp\":\"2026-11-27T15:04:05Z\",\"resourceVersion\":"
			  "\"x1\"}}");
	assert_string_equal(kc_namespace(o), "d");
	assert_string_equal(kc_uid(o), "u-1");
	assert_true(kc_deleting(o));
	assert_int_equal(kc_resource_version(o), 0);
	assert_null(kc_controller_ref(o));
	json_decref(o);
	assert_null(kc_name(NULL));
	assert_int_equal(kc_resource_version(NULL), 0);
}

/* ---- time ---------------------------------------------------------------------------------- */

static void test_time_format_and_parse(void **state)
{
	(void)state;
	char buf[32];
	kc_time_format(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	kc_time_format(INT64_C(1795791845), buf);
	assert_string_equal(buf, "2026-11-27T15:04:05Z");
	assert_int_equal(kc_time_parse("2026-11-27T15:04:05Z"), INT64_C(1795791845));
	assert_int_equal(kc_time_parse("2026-11-27T15:04:05.123456Z"), INT64_C(1795791845));
	assert_int_equal(kc_time_parse("2026-11-27T16:04:05+01:00"), INT64_C(1795791845));
	assert_int_equal(kc_time_parse("2026-11-27T14:34:05-00:30"), INT64_C(1795791845));
	assert_int_equal(kc_time_parse("2024-02-29T00:00:00Z"), INT64_C(1709164800));
	static const char *const bad[] = {"",
					  "2026-11-27",
					  "2026-11-27T15:04:05",
					  "2026-13-01T00:00:00Z",
					  "2026-02-29T00:00:00Z",
					  "2026-11-27T25:00:00Z",
					  "2026-11-27T15:04:05Zjunk",
					  "2026-11-27T15:04:05.Z",
					  "x026-11-27T15:04:05Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kc_time_parse(bad[i]) != -1)
			fail_msg("%s parsed", bad[i]);
	assert_int_equal(kc_time_parse(NULL), -1);
	kc_time_now(buf);
	assert_true(kc_time_parse(buf) > INT64_C(1700000000));
	int64_t a = kc_mono_ms(), b = kc_mono_ms();
	assert_true(b >= a);
}

/* ---- conditions, taints -------------------------------------------------------------------- */

static void test_condition_transition_time_changes_only_with_status(void **state)
{
	(void)state;
	json_t *o = json_object();
	assert_null(kc_condition_status(o, "Ready"));
	assert_int_equal(kc_condition_set(o, "Ready", "True", "AgentReady", "up"), 1);
	assert_string_equal(kc_condition_status(o, "Ready"), "True");
	assert_true(kc_node_ready(o));
	json_t *c = json_array_get(kc_path(o, "status.conditions"), 0);
	assert_non_null(json_object_get(c, "lastTransitionTime"));
	assert_null(json_object_get(c, "lastHeartbeatTime"));
	/* mark the stored time so a rewrite would be visible */
	json_object_set_new(c, "lastTransitionTime", json_string("2000-01-01T00:00:00Z"));
	assert_int_equal(kc_condition_set(o, "Ready", "True", "AgentReady", "up"), 0);
	assert_int_equal(kc_condition_set(o, "Ready", "True", "Other", "still up"), 1);
	assert_string_equal(kc_path_str(o, "status.conditions[0].lastTransitionTime"), "2000-01-"
										       "01T00:00:"
										       "00Z");
	assert_string_equal(kc_path_str(o, "status.conditions[0].reason"), "Other");
	assert_int_equal(kc_condition_set(o, "Ready", "Unknown", "NodeStatusUnknown", NULL), 1);
	assert_string_not_equal(kc_path_str(o, "status.conditions[0].lastTransitionTime"), "2000-"
											   "01-"
											   "01T00:"
											   "00:"
											   "00Z");
	assert_null(kc_path(o, "status.conditions[0].message"));
	assert_false(kc_node_ready(o));
	assert_int_equal(kc_condition_set(o, "PodScheduled", "False", "Unschedulable", "m"), 1);
	assert_int_equal(json_array_size(kc_path(o, "status.conditions")), 2);
	assert_string_equal(kc_condition_status(o, "PodScheduled"), "False");
	json_decref(o);
	assert_false(kc_node_ready(NULL));
}

static void test_toleration_rules(void **state)
{
	(void)state;
	static const struct {
		const char *toleration, *taint;
		bool tolerated;
	} cases[] = {
		/* Equal (the default) needs key and value to match */
		{"{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}", true},
		{"{\"key\":\"k\",\"operator\":\"Equal\",\"value\":\"v\"}",
		 "{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoExecute\"}", true},
		{"{\"key\":\"k\",\"value\":\"w\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}", false},
		{"{\"key\":\"k\",\"value\":\"v\"}",
		 "{\"key\":\"k2\",\"value\":\"v\","
		 "\"effect\":\"NoSchedule\"}",
		 false},
		/* an absent value equals an empty one */
		{"{\"key\":\"k\"}", "{\"key\":\"k\",\"effect\":\"NoSchedule\"}", true},
		{"{\"key\":\"k\"}", "{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}",
		 false},
		/* Exists ignores the value */
		{"{\"key\":\"k\",\"operator\":\"Exists\"}",
		 "{\"key\":\"k\",\"value\":\"any\",\"effect\":\"NoExecute\"}", true},
		/* effect must match unless empty */
		{"{\"key\":\"k\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"k\",\"effect\":\"NoExecute\"}", false},
		{"{\"key\":\"k\",\"operator\":\"Exists\",\"effect\":\"NoExecute\"}",
		 "{\"key\":\"k\",\"effect\":\"NoExecute\"}", true},
		/* empty key with Exists tolerates everything */
		{"{\"operator\":\"Exists\"}",
		 "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\"}", true},
		{"{\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"x\",\"effect\":\"NoExecute\"}", false},
		/* an unknown operator tolerates nothing */
		{"{\"key\":\"k\",\"operator\":\"Gt\",\"value\":\"v\"}",
		 "{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *tols = json_array();
		json_array_append_new(tols, parse(cases[i].toleration));
		json_t *taint = parse(cases[i].taint);
		if (kc_tolerates(tols, taint) != cases[i].tolerated)
			fail_msg("case %zu: %s vs %s", i, cases[i].toleration, cases[i].taint);
		json_decref(tols);
		json_decref(taint);
	}
	json_t *taint = parse("{\"key\":\"k\",\"effect\":\"NoSchedule\"}");
	assert_false(kc_tolerates(NULL, taint));
	json_t *two = parse("[{\"key\":\"a\",\"operator\":\"Exists\"},{\"key\":\"k\","
			    "\"operator\":\"Exists\"}]");
	assert_true(kc_tolerates(two, taint));
	json_decref(two);
	json_decref(taint);
}

/* ---- defaults ------------------------------------------------------------------------------ */

static void test_defaults_fill_what_kubernetes_would(void **state)
{
	(void)state;
	json_t *pod = parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[]}}");
	kc_object_default(KC_POD, pod);
	assert_string_equal(kc_path_str(pod, "apiVersion"), "v1");
	assert_string_equal(kc_path_str(pod, "kind"), "Pod");
	assert_string_equal(kc_namespace(pod), "default");
	assert_true(json_is_object(kc_path(pod, "metadata.labels")));
	assert_string_equal(kc_path_str(pod, "spec.restartPolicy"), "Always");
	assert_int_equal(kc_path_int(pod, "spec.terminationGracePeriodSeconds", -1), 30);
	assert_string_equal(kc_path_str(pod, "spec.schedulerName"), "default-scheduler");
	assert_null(kc_path(pod, "status")); /* status is the agent's to write */
	json_decref(pod);

	/* given values stay */
	pod = parse("{\"metadata\":{\"name\":\"p\",\"namespace\":\"x\"},\"spec\":{"
		    "\"restartPolicy\":\"Never\",\"terminationGracePeriodSeconds\":0}}");
	kc_object_default(KC_POD, pod);
	assert_string_equal(kc_namespace(pod), "x");
	assert_string_equal(kc_path_str(pod, "spec.restartPolicy"), "Never");
	assert_int_equal(kc_path_int(pod, "spec.terminationGracePeriodSeconds", -1), 0);
	json_decref(pod);

	json_t *rs = parse("{\"metadata\":{\"name\":\"web\"},\"spec\":{\"selector\":{}}}");
	kc_object_default(KC_REPLICASET, rs);
	assert_string_equal(kc_path_str(rs, "apiVersion"), "apps/v1");
	assert_int_equal(kc_path_int(rs, "spec.replicas", -1), 1);
	assert_string_equal(kc_path_str(rs, "spec.template.spec.restartPolicy"), "Always");
	assert_true(json_is_object(kc_path(rs, "spec.template.metadata.labels")));
	json_decref(rs);

	json_t *node = parse("{\"metadata\":{\"name\":\"n1\",\"namespace\":\"default\"}}");
	kc_object_default(KC_NODE, node);
	assert_null(kc_namespace(node));
	assert_string_equal(kc_path_str(node, "kind"), "Node");
	json_decref(node);

	/* a wrong type is left for validation, never replaced */
	pod = parse("{\"metadata\":{\"name\":\"p\"},\"spec\":[1]}");
	kc_object_default(KC_POD, pod);
	assert_true(json_is_array(kc_path(pod, "spec")));
	json_decref(pod);
	kc_object_default(KC_POD, NULL);
}

/* ---- validation ---------------------------------------------------------------------------- */

#define SUBDOMAIN_MSG                                                                             \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' " \
	"or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "     \
	"regex used for validation is "                                                           \
	"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
#define LABEL_MSG                                                                                \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " \
	"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
#define QNAME_MSG                                                                                 \
	"name part must consist of alphanumeric characters, '-', '_' or '.', and must start and " \
	"end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex " \
	"used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
#define LABEL_VALUE_MSG                                                                          \
	"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
	"or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "    \
	"'my_value',  or '12345', regex used for validation is "                                 \
	"'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

#define GOOD_POD                                                                                  \
	"{\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":" \
	"[{\"name\":\"main\",\"command\":[\"sleep\"],\"args\":[\"3600\"],\"env\":[{\"name\":"     \
	"\"A\",\"value\":\"b\"}],\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":"       \
	"\"16Mi\"},\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}}],\"nodeSelector\":{"       \
	"\"disk\":\"ssd\"},\"tolerations\":[{\"key\":\"k\",\"operator\":\"Equal\",\"value\":"     \
	"\"v\",\"effect\":\"NoSchedule\"}]}}"

/* Validates pod text after `path` = value changes (NULL value: removed). */
/* Defaults then validates obj (consumed): valid when want is NULL, else exactly want. */
static void expect_validation(kc_kind_t kind, json_t *obj, const char *want)
{
	kc_object_default(kind, obj);
	char msg[4096] = "";
	int r = kc_object_validate(kind, obj, msg, sizeof(msg));
	if (!want) {
		if (r != 0)
			fail_msg("unexpected: %s", msg);
	} else {
		assert_int_equal(r, -1);
		if (strcmp(msg, want) != 0)
			fail_msg("\n got: %s\nwant: %s", msg, want);
	}
	json_decref(obj);
}

static void expect_pod(const char *path, const char *value, const char *want)
{
	json_t *pod = parse(GOOD_POD);
	if (path) {
		if (value) {
			json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
			assert_non_null(v);
			assert_int_equal(kc_path_set(pod, path, v), 0);
		} else {
			const char *dot = strrchr(path, '.');
			char parent[128];
			snprintf(parent, sizeof(parent), "%.*s", (int)(dot - path), path);
			json_object_del(kc_path(pod, parent), dot + 1);
		}
	}
	expect_validation(KC_POD, pod, want);
}

static void test_validate_accepts_a_good_pod(void **state)
{
	(void)state;
	expect_pod(NULL, NULL, NULL);
	expect_pod("spec.tolerations[0]", "{\"operator\":\"Exists\"}", NULL);
	expect_pod("metadata.labels", "{\"kubernetes.io/hostname\":\"n1\",\"empty\":\"\"}", NULL);
	expect_pod("spec.containers[0].resources.requests.cpu", "\"500m\"", NULL);
}

static void test_validate_pod_names(void **state)
{
	(void)state;
	expect_pod("metadata.name", NULL,
		   "The Pod \"\" is invalid: metadata.name: Required value: name or generateName "
		   "is required");
	expect_pod("metadata.name", "\"Web\"",
		   "The Pod \"Web\" is invalid: metadata.name: Invalid value: "
		   "\"Web\": " SUBDOMAIN_MSG);
	expect_pod("metadata.namespace", "\"My_NS\"",
		   "The Pod \"web\" is invalid: metadata.namespace: Invalid value: "
		   "\"My_NS\": " LABEL_MSG);
	/* generateName alone is enough for a create */
	json_t *pod = parse(GOOD_POD);
	json_object_del(json_object_get(pod, "metadata"), "name");
	json_object_set_new(json_object_get(pod, "metadata"), "generateName", json_string("web-"));
	kc_object_default(KC_POD, pod);
	char msg[1024];
	assert_int_equal(kc_object_validate(KC_POD, pod, msg, sizeof(msg)), 0);
	json_decref(pod);
}

static void test_validate_pod_labels(void **state)
{
	(void)state;
	expect_pod("metadata.labels", "{\"bad key!\":\"x\"}",
		   "The Pod \"web\" is invalid: metadata.labels: Invalid value: \"bad "
		   "key!\": " QNAME_MSG);
	expect_pod("metadata.labels", "{\"app\":\"bad value!\"}",
		   "The Pod \"web\" is invalid: metadata.labels: Invalid value: \"bad "
		   "value!\": " LABEL_VALUE_MSG);
	expect_pod("metadata.labels", "{\"Bad_Prefix/app\":\"x\"}",
		   "The Pod \"web\" is invalid: metadata.labels: Invalid value: "
		   "\"Bad_Prefix/app\": "
		   "prefix part " SUBDOMAIN_MSG);
	expect_pod("metadata.labels",
		   "{\"app\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		   "aaaaaaaaaaaaaaaaa\"}",
		   "The Pod \"web\" is invalid: metadata.labels: Invalid value: "
		   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must "
		   "be "
		   "no more than 63 characters");
}

static void test_validate_pod_containers(void **state)
{
	(void)state;
	expect_pod("spec.containers", "[]",
		   "The Pod \"web\" is invalid: spec.containers: Required value");
	expect_pod("spec.containers[0].command", NULL,
		   "The Pod \"web\" is invalid: spec.containers[0].command: Required value");
	expect_pod("spec.containers[0].command", "[]",
		   "The Pod \"web\" is invalid: spec.containers[0].command: Required value");
	expect_pod("spec.containers[0].command", "[\"sleep\",5]",
		   "The Pod \"web\" is invalid: spec.containers[0].command[1]: Invalid value: 5: "
		   "must be a string");
	expect_pod("spec.containers[0].command", "\"sleep 5\"",
		   "The Pod \"web\" is invalid: spec.containers[0].command: Invalid value: "
		   "\"sleep 5\": must be a list of strings");
	expect_pod("spec.containers[0].args", "{\"a\":1}",
		   "The Pod \"web\" is invalid: spec.containers[0].args: Invalid value: {\"a\":1}: "
		   "must be a list of strings");
	expect_pod("spec.containers[0].name", NULL,
		   "The Pod \"web\" is invalid: spec.containers[0].name: Required value");
	expect_pod("spec.containers[0].name", "\"Main\"",
		   "The Pod \"web\" is invalid: spec.containers[0].name: Invalid value: "
		   "\"Main\": " LABEL_MSG);
	expect_pod("spec.containers[1]", "{\"name\":\"main\",\"command\":[\"true\"]}",
		   "The Pod \"web\" is invalid: spec.containers[1].name: Duplicate value: "
		   "\"main\"");
	expect_pod("spec.containers[0].env[0].name", "\"1A\"",
		   "The Pod \"web\" is invalid: spec.containers[0].env[0].name: Invalid value: "
		   "\"1A\": a valid environment variable name must consist of alphabetic "
		   "characters, digits, '_', '-', or '.', and must not start with a digit (e.g. "
		   "'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation "
		   "is '[-._a-zA-Z][-._a-zA-Z0-9]*')");
	expect_pod("spec.containers[0].env[0].value", "3",
		   "The Pod \"web\" is invalid: spec.containers[0].env[0].value: Invalid value: 3: "
		   "must be a string");
	expect_pod("spec.containers[0].env[0].name", NULL,
		   "The Pod \"web\" is invalid: spec.containers[0].env[0].name: Required value");
}

static void test_validate_pod_resources(void **state)
{
	(void)state;
	expect_pod("spec.containers[0].resources.requests.cpu", "\"600m\"",
		   "The Pod \"web\" is invalid: spec.containers[0].resources.requests: Invalid "
		   "value: \"600m\": must be less than or equal to cpu limit");
	expect_pod("spec.containers[0].resources.requests.memory", "\"1Gi\"",
		   "The Pod \"web\" is invalid: spec.containers[0].resources.requests: Invalid "
		   "value: \"1Gi\": must be less than or equal to memory limit");
	expect_pod("spec.containers[0].resources.limits.cpu", "\"lots\"",
		   "The Pod \"web\" is invalid: spec.containers[0].resources.limits[cpu]: Invalid "
		   "value: \"lots\": quantities must match the regular expression "
		   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
	expect_pod("spec.containers[0].resources.requests.cpu", "\"-1\"",
		   "The Pod \"web\" is invalid: spec.containers[0].resources.requests[cpu]: "
		   "Invalid value: \"-1\": must be greater than or equal to 0");
	expect_pod("spec.containers[0].resources.requests.gpu", "\"1\"",
		   "The Pod \"web\" is invalid: spec.containers[0].resources.requests[gpu]: "
		   "Invalid value: \"gpu\": must be a standard resource for containers");
}

#define HUGE_CPU "\"9223372036854775\""
#define CTR(n, res) "{\"name\":\"" n "\",\"command\":[\"true\"],\"resources\":" res "}"

/* Review M3: the scheduler adds the containers' requests (limits when a request is missing);
 * sums past INT64_MAX milli-units are refused on the quantity that overflows them. */
static void test_validate_pod_summed_resources_must_not_overflow(void **state)
{
	(void)state;
	expect_pod("spec.containers",
		   "[" CTR("a", "{\"requests\":{\"cpu\":" HUGE_CPU "}}") ","
		   CTR("b", "{\"requests\":{\"cpu\":" HUGE_CPU "}}") "]",
		   "The Pod \"web\" is invalid: spec.containers[1].resources.requests[cpu]: "
		   "Invalid value: " HUGE_CPU ": the pod's total cpu requests must be no more "
		   "than 9223372036854775807m");
	expect_pod("spec.containers",
		   "[" CTR("a", "{\"limits\":{\"memory\":\"5Pi\"}}") ","
		   CTR("b", "{}") ","
		   CTR("c", "{\"limits\":{\"memory\":\"5Pi\"}}") "]",
		   "The Pod \"web\" is invalid: spec.containers[2].resources.limits[memory]: "
		   "Invalid value: \"5Pi\": the pod's total memory limits must be no more "
		   "than 9223372036854775807m");
	/* Neither sum overflows, but the requests (a missing one counts its limit) do. */
	expect_pod("spec.containers",
		   "[" CTR("a", "{\"requests\":{\"cpu\":" HUGE_CPU "}}") ","
		   CTR("b", "{\"limits\":{\"cpu\":" HUGE_CPU "}}") "]",
		   "The Pod \"web\" is invalid: spec.containers[1].resources.limits[cpu]: "
		   "Invalid value: " HUGE_CPU ": the pod's total cpu requests must be no more "
		   "than 9223372036854775807m");
	/* Large sums that still fit are accepted. */
	expect_pod("spec.containers",
		   "[" CTR("a", "{\"requests\":{\"cpu\":\"4611686018427387\"}}") ","
		   CTR("b", "{\"requests\":{\"cpu\":\"4611686018427387\"},\"limits\":{"
			    "\"memory\":\"8Pi\"}}") "]",
		   NULL);
}

/* Review H1: the agent names directories after metadata.uid, so it must be a token. */
static void test_validate_uid_is_a_token(void **state)
{
	(void)state;
	expect_pod("metadata.uid", "\"7c9e6679-7425-40de-944b-e07fc1f90ae7\"", NULL);
	expect_pod("metadata.uid", "\"u1\"", NULL);
	expect_pod("metadata.uid", "\"../../victim\"",
		   "The Pod \"web\" is invalid: metadata.uid: Invalid value: \"../../victim\": "
		   "a valid uid must be 1 to 64 alphanumeric characters or '-' (e.g. "
		   "'7c9e6679-7425-40de-944b-e07fc1f90ae7', regex used for validation is "
		   "'[-A-Za-z0-9]{1,64}')");
	expect_pod("metadata.uid", "\"\"",
		   "The Pod \"web\" is invalid: metadata.uid: Invalid value: \"\": "
		   "a valid uid must be 1 to 64 alphanumeric characters or '-' (e.g. "
		   "'7c9e6679-7425-40de-944b-e07fc1f90ae7', regex used for validation is "
		   "'[-A-Za-z0-9]{1,64}')");
	expect_pod("metadata.uid",
		   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
		   "The Pod \"web\" is invalid: metadata.uid: Invalid value: "
		   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": "
		   "a valid uid must be 1 to 64 alphanumeric characters or '-' (e.g. "
		   "'7c9e6679-7425-40de-944b-e07fc1f90ae7', regex used for validation is "
		   "'[-A-Za-z0-9]{1,64}')");
	/* Every kind: a Node with a path for a uid is refused as well. */
	json_t *node = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Node",
				 "metadata", "name", "n1", "uid", "a/b");
	char msg[1024];
	assert_int_equal(kc_object_validate(KC_NODE, node, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "metadata.uid: Invalid value: \"a/b\""));
	json_decref(node);
}

static void test_validate_pod_spec_fields(void **state)
{
	(void)state;
	expect_pod("spec.restartPolicy", "\"Sometimes\"",
		   "The Pod \"web\" is invalid: spec.restartPolicy: Unsupported value: "
		   "\"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
	expect_pod("spec.terminationGracePeriodSeconds", "-1",
		   "The Pod \"web\" is invalid: spec.terminationGracePeriodSeconds: Invalid "
		   "value: -1: must be greater than or equal to 0");
	expect_pod("spec.terminationGracePeriodSeconds", "\"30\"",
		   "The Pod \"web\" is invalid: spec.terminationGracePeriodSeconds: Invalid "
		   "value: \"30\": must be an integer");
	expect_pod("spec.nodeSelector", "{\"disk\":1}",
		   "The Pod \"web\" is invalid: spec.nodeSelector: Invalid value: 1: must be a "
		   "string");
	expect_pod("spec.nodeSelector", "[\"disk\"]",
		   "The Pod \"web\" is invalid: spec.nodeSelector: Invalid value: [\"disk\"]: must "
		   "be a map of strings");
	expect_pod("spec.nodeName", "\"N_1\"",
		   "The Pod \"web\" is invalid: spec.nodeName: Invalid value: "
		   "\"N_1\": " SUBDOMAIN_MSG);
}

static void test_validate_pod_tolerations(void **state)
{
	(void)state;
	expect_pod("spec.tolerations[0].operator", "\"Foo\"",
		   "The Pod \"web\" is invalid: spec.tolerations[0].operator: Unsupported value: "
		   "\"Foo\": supported values: \"Equal\", \"Exists\"");
	expect_pod("spec.tolerations[0].effect", "\"Sometimes\"",
		   "The Pod \"web\" is invalid: spec.tolerations[0].effect: Unsupported value: "
		   "\"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", "
		   "\"NoExecute\"");
	expect_pod("spec.tolerations[0]", "{\"key\":\"k\",\"operator\":\"Exists\",\"value\":\"v\"}",
		   "The Pod \"web\" is invalid: spec.tolerations[0].operator: Invalid value: "
		   "\"v\": value must be empty when `operator` is 'Exists'");
	expect_pod("spec.tolerations[0]", "{\"value\":\"v\"}",
		   "The Pod \"web\" is invalid: spec.tolerations[0].operator: Invalid value: "
		   "\"\": operator must be Exists when `key` is empty, which means \"match all "
		   "values and all keys\"");
	expect_pod("spec.tolerations[0]",
		   "{\"key\":\"k\",\"operator\":\"Exists\","
		   "\"effect\":\"NoSchedule\",\"tolerationSeconds\":5}",
		   "The Pod \"web\" is invalid: spec.tolerations[0].effect: Invalid value: "
		   "\"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set");
	expect_pod("spec.tolerations[0]",
		   "{\"key\":\"k\",\"operator\":\"Exists\","
		   "\"effect\":\"\"}",
		   NULL);
}

static void test_validate_pod_metadata_and_status(void **state)
{
	(void)state;
	expect_pod("metadata.ownerReferences",
		   "[{\"apiVersion\":\"apps/v1\",\"kind\":"
		   "\"ReplicaSet\",\"name\":\"web\",\"uid\":\"u1\",\"controller\":true}]",
		   NULL);
	expect_pod("metadata.ownerReferences",
		   "[{\"apiVersion\":\"apps/v1\",\"kind\":"
		   "\"ReplicaSet\",\"name\":\"web\"}]",
		   "The Pod \"web\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": "
		   "uid must not be empty");
	expect_pod("metadata.ownerReferences",
		   "[{\"apiVersion\":\"v1\",\"kind\":\"A\","
		   "\"name\":\"a\",\"uid\":\"1\",\"controller\":true},{\"apiVersion\":\"v1\","
		   "\"kind\":\"B\",\"name\":\"b\",\"uid\":\"2\",\"controller\":true}]",
		   "The Pod \"web\" is invalid: metadata.ownerReferences: Invalid value: [{"
		   "\"apiVersion\":\"v1\",\"kind\":\"A\",\"name\":\"a\",\"uid\":\"1\","
		   "\"controller\":true},{\"apiVersion\":\"v1\",\"kind\":\"B\",\"name\":\"b\","
		   "\"uid\":\"2\",\"controller\":true}]: Only one reference can have Controller "
		   "set to true");
	expect_pod("metadata.deletionTimestamp", "\"soon\"",
		   "The Pod \"web\" is invalid: metadata.deletionTimestamp: Invalid value: "
		   "\"soon\": must be an RFC 3339 timestamp");
	expect_pod("metadata.deletionGracePeriodSeconds", "-5",
		   "The Pod \"web\" is invalid: metadata.deletionGracePeriodSeconds: Invalid "
		   "value: -5: must be greater than or equal to 0");
	expect_pod("status.phase", "\"Done\"",
		   "The Pod \"web\" is invalid: status.phase: Unsupported value: \"Done\": "
		   "supported values: \"Pending\", \"Running\", \"Succeeded\", \"Failed\", "
		   "\"Unknown\"");
	expect_pod("status.conditions", "[{\"type\":\"Ready\",\"status\":\"Yes\"}]",
		   "The Pod \"web\" is invalid: status.conditions[0].status: Unsupported value: "
		   "\"Yes\": supported values: \"True\", \"False\", \"Unknown\"");
	expect_pod("status.conditions", "[{\"type\":\"Ready\",\"status\":\"True\"}]", NULL);
}

static void test_validate_joins_several_errors_in_brackets(void **state)
{
	(void)state;
	json_t *pod = parse("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"containers\":[{\"name\":"
			    "\"main\"}],\"restartPolicy\":\"Sometimes\"}}");
	kc_object_default(KC_POD, pod);
	char msg[1024];
	assert_int_equal(kc_object_validate(KC_POD, pod, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "The Pod \"x\" is invalid: [spec.containers[0].command: Required "
				 "value, spec.restartPolicy: Unsupported value: \"Sometimes\": "
				 "supported values: \"Always\", \"OnFailure\", \"Never\"]");
	json_decref(pod);
}

#define GOOD_RS                                                                                    \
	"{\"metadata\":{\"name\":\"web\"},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":" \
	"{\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\",\"tier\":"     \
	"\"fe\"}},\"spec\":{\"containers\":[{\"name\":\"main\",\"command\":[\"sleep\",\"1\"]}]}}}" \
	"}"

static void expect_rs(const char *path, const char *value, const char *want)
{
	json_t *rs = parse(GOOD_RS);
	if (path)
		assert_int_equal(kc_path_set(rs, path, json_loads(value, JSON_DECODE_ANY, NULL)),
				 0);
	expect_validation(KC_REPLICASET, rs, want);
}

static void test_validate_replicaset(void **state)
{
	(void)state;
	expect_rs(NULL, NULL, NULL);
	expect_rs("spec.replicas", "0", NULL);
	expect_rs("spec.selector",
		  "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\","
		  "\"values\":[\"fe\",\"be\"]}]}",
		  NULL);
	expect_rs("spec.replicas", "-1",
		  "The ReplicaSet \"web\" is invalid: spec.replicas: Invalid value: -1: must be "
		  "greater than or equal to 0");
	expect_rs("spec.selector", "{}",
		  "The ReplicaSet \"web\" is invalid: spec.selector: Invalid value: {}: empty "
		  "selector is invalid for deployment");
	expect_rs("spec.selector", "null",
		  "The ReplicaSet \"web\" is invalid: spec.selector: Required value");
	expect_rs("spec.template.metadata.labels", "{\"app\":\"x\"}",
		  "The ReplicaSet \"web\" is invalid: spec.template.metadata.labels: Invalid "
		  "value: "
		  "{\"app\":\"x\"}: `selector` does not match template `labels`");
	expect_rs("spec.template.spec.restartPolicy", "\"Never\"",
		  "The ReplicaSet \"web\" is invalid: spec.template.spec.restartPolicy: "
		  "Unsupported value: \"Never\": supported values: \"Always\"");
	expect_rs("spec.template.spec.containers[0].command", "[]",
		  "The ReplicaSet \"web\" is invalid: spec.template.spec.containers[0].command: "
		  "Required value");
	expect_rs("spec.selector", "{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\"}]}",
		  "The ReplicaSet \"web\" is invalid: spec.selector.matchExpressions[0].values: "
		  "Required value: must be specified when `operator` is 'In' or 'NotIn'");
	expect_rs("spec.selector",
		  "{\"matchExpressions\":[{\"key\":\"app\",\"operator\":"
		  "\"Exists\",\"values\":[\"web\"]}]}",
		  "The ReplicaSet \"web\" is invalid: spec.selector.matchExpressions[0].values: "
		  "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
	expect_rs("spec.selector",
		  "{\"matchExpressions\":[{\"key\":\"app\",\"operator\":"
		  "\"Near\",\"values\":[\"web\"]}]}",
		  "The ReplicaSet \"web\" is invalid: spec.selector.matchExpressions[0].operator: "
		  "Invalid value: \"Near\": not a valid selector operator");
	expect_rs("spec.selector", "{\"matchLabels\":{\"app\":\"-web\"}}",
		  "The ReplicaSet \"web\" is invalid: spec.selector.matchLabels: Invalid value: "
		  "\"-web\": " LABEL_VALUE_MSG);
	expect_rs("status", "{\"replicas\":-2,\"readyReplicas\":1}",
		  "The ReplicaSet \"web\" is invalid: status.replicas: Invalid value: -2: must be "
		  "greater than or equal to 0");
}

static void test_validate_node_and_lease(void **state)
{
	(void)state;
	char msg[2048];
	json_t *node = parse("{\"metadata\":{\"name\":\"n1\"},\"spec\":{\"taints\":[{\"key\":\"k\","
			     "\"effect\":\"NoSchedule\"},{\"key\":\"k2\"},{\"key\":\"k3\","
			     "\"effect\":"
			     "\"Never\"}]},\"status\":{\"capacity\":{\"cpu\":\"2\",\"memory\":"
			     "\"24Gi\"}}}");
	kc_object_default(KC_NODE, node);
	assert_int_equal(kc_object_validate(KC_NODE, node, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "The Node \"n1\" is invalid: [spec.taints[1].effect: Required "
				 "value, spec.taints[2].effect: Unsupported value: \"Never\": "
				 "supported values: \"NoSchedule\", \"PreferNoSchedule\", "
				 "\"NoExecute\"]");
	json_array_remove(kc_path(node, "spec.taints"), 2);
	json_array_remove(kc_path(node, "spec.taints"), 1);
	assert_int_equal(kc_object_validate(KC_NODE, node, msg, sizeof(msg)), 0);
	json_object_set_new(json_object_get(node, "metadata"), "namespace", json_string("x"));
	assert_int_equal(kc_object_validate(KC_NODE, node, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "The Node \"n1\" is invalid: metadata.namespace: Forbidden: not "
				 "allowed on this type");
	json_decref(node);

	json_t *lease = parse("{\"metadata\":{\"name\":\"n1\",\"namespace\":\"kube-node-lease\"},"
			      "\"spec\":{\"holderIdentity\":\"n1\",\"leaseDurationSeconds\":10,"
			      "\"renewTime\":\"2026-11-27T15:04:05Z\"}}");
	kc_object_default(KC_LEASE, lease);
	assert_int_equal(kc_object_validate(KC_LEASE, lease, msg, sizeof(msg)), 0);
	kc_path_set(lease, "spec.leaseDurationSeconds", json_integer(0));
	kc_path_set(lease, "spec.holderIdentity", json_integer(1));
	assert_int_equal(kc_object_validate(KC_LEASE, lease, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "The Lease \"n1\" is invalid: [spec.holderIdentity: Invalid "
				 "value: "
				 "1: must be a string, spec.leaseDurationSeconds: Invalid value: "
				 "0: "
				 "must be greater than 0]");
	kc_path_set(lease, "spec.leaseDurationSeconds", json_integer(10));
	kc_path_set(lease, "spec.holderIdentity", json_string("n1"));
	kc_path_set(lease, "spec.renewTime", json_string("yesterday"));
	assert_int_equal(kc_object_validate(KC_LEASE, lease, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "The Lease \"n1\" is invalid: spec.renewTime: Invalid value: "
				 "\"yesterday\": must be an RFC 3339 timestamp");
	json_decref(lease);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_lookup_accepts_every_kubectl_name),
		cmocka_unit_test(test_kind_table_matches_kubernetes),
		cmocka_unit_test(test_kind_of_reads_api_version_and_kind),
		cmocka_unit_test(test_keys_round_trip),
		cmocka_unit_test(test_key_parse_rejects_non_object_keys),
		cmocka_unit_test(test_prefix_and_object_key),
		cmocka_unit_test(test_paths_read_nested_values_and_arrays),
		cmocka_unit_test(test_path_set_creates_and_refuses_clashes),
		cmocka_unit_test(test_metadata_accessors),
		cmocka_unit_test(test_time_format_and_parse),
		cmocka_unit_test(test_condition_transition_time_changes_only_with_status),
		cmocka_unit_test(test_toleration_rules),
		cmocka_unit_test(test_defaults_fill_what_kubernetes_would),
		cmocka_unit_test(test_validate_accepts_a_good_pod),
		cmocka_unit_test(test_validate_pod_names),
		cmocka_unit_test(test_validate_pod_labels),
		cmocka_unit_test(test_validate_pod_containers),
		cmocka_unit_test(test_validate_pod_resources),
		cmocka_unit_test(test_validate_pod_summed_resources_must_not_overflow),
		cmocka_unit_test(test_validate_uid_is_a_token),
		cmocka_unit_test(test_validate_pod_spec_fields),
		cmocka_unit_test(test_validate_pod_tolerations),
		cmocka_unit_test(test_validate_pod_metadata_and_status),
		cmocka_unit_test(test_validate_joins_several_errors_in_brackets),
		cmocka_unit_test(test_validate_replicaset),
		cmocka_unit_test(test_validate_node_and_lease),
	};
	return cmocka_run_group_tests_name("cluster_object", tests, NULL, NULL);
}
