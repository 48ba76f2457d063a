/* tests/cluster/runtime/test_cluster_store.c — store access: create/get/list/update/delete with
 * kubectl's error texts, resourceVersion never stored but always read back, read-modify-write
 * that loses no write under a concurrent writer, generateName, the pod deletion rules, and
 * undecodable values in the store. */
#include <pthread.h>
#include <unistd.h>

#include "fixture.h"

static void put_raw(keel_t *k, const char *key, const char *value)
{
	keel_error_t err;

	if (keel_put_str(k, key, value, 0, &err) != 0)
		fail_msg("put %s: %s", key, err.message);
}

/* The stored bytes of key (malloc'ed) or NULL. */
static char *get_raw(keel_t *k, const char *key)
{
	keel_range_result_t *r = NULL;
	keel_error_t err;
	char *v = NULL;

	if (keel_get(k, key, &r, &err) != 0)
		fail_msg("get %s: %s", key, err.message);
	if (r->n_kvs)
		v = strndup((const char *)r->kvs[0].value, r->kvs[0].value_len);
	keel_range_result_free(r);
	return v;
}

static void test_create_sets_uid_generation_and_resource_version(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *got = NULL;
	keel_error_t err;
	const char *uid;
	char *raw;

	fx_create(fx->k, pod);
	uid = kc_uid(pod);
	assert_non_null(uid);
	assert_int_equal(strlen(uid), 36);
	assert_int_equal(uid[14], '4');
	assert_true(strchr("89ab", uid[19]) != NULL);
	assert_non_null(kc_path_str(pod, "metadata.creationTimestamp"));
	assert_int_equal(kc_path_int(pod, "metadata.generation", 0), 1);
	assert_true(kc_resource_version(pod) > 0);

	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_string_equal(kc_uid(got), uid);
	assert_int_equal(kc_resource_version(got), kc_resource_version(pod));
	/* Defaults were applied before writing. */
	assert_string_equal(kc_path_str(got, "spec.restartPolicy"), "Always");

	raw = get_raw(fx->k, "/registry/pods/default/web-1");
	assert_non_null(raw);
	assert_null(strstr(raw, "resourceVersion"));
	assert_null(strstr(raw, "\": "));
	assert_null(strchr(raw, '\n'));
	free(raw);
	json_decref(got);
	json_decref(pod);
}

static void test_create_of_existing_name_is_already_exists(void **state)
{
	fx_t *fx = *state;
	json_t *a = fx_pod("web-1", NULL), *b = fx_pod("web-1", "n1"), *got = NULL;
	keel_error_t err;

	fx_create(fx->k, a);
	assert_int_equal(kc_create(fx->k, b, &err), KEEL_CODE_ALREADY_EXISTS);
	assert_string_equal(err.message, "pods \"web-1\" already exists");
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_null(kc_path_str(got, "spec.nodeName"));
	json_decref(got);
	json_decref(a);
	json_decref(b);
}

static void test_create_of_invalid_object_stores_nothing(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *items = NULL;
	keel_error_t err;

	json_object_del(json_object_get(pod, "spec"), "containers");
	assert_int_equal(kc_create(fx->k, pod, &err), KEEL_CODE_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "The Pod \"web-1\" is invalid"));
	assert_int_equal(kc_list(fx->k, KC_POD, NULL, &items, NULL, &err), 0);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
	json_decref(pod);

	pod = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Foo", "metadata",
			"name", "x");
	assert_int_equal(kc_create(fx->k, pod, &err), KEEL_CODE_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "Foo"));
	json_decref(pod);
}

static void test_generate_name_makes_distinct_names(void **state)
{
	fx_t *fx = *state;
	char names[20][64];

	for (int i = 0; i < 20; i++) {
		json_t *pod = fx_pod(NULL, NULL);
		const char *name;

		json_object_set_new(json_object_get(pod, "metadata"), "generateName",
				    json_string("web-"));
		fx_create(fx->k, pod);
		name = kc_name(pod);
		assert_non_null(name);
		assert_int_equal(strlen(name), 9);
		assert_memory_equal(name, "web-", 4);
		for (int c = 4; c < 9; c++)
			assert_non_null(strchr("bcdfghjklmnpqrstvwxz2456789", name[c]));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(names[j], name);
		snprintf(names[i], sizeof(names[i]), "%s", name);
		json_decref(pod);
	}
}

static void test_get_of_missing_object_is_not_found(void **state)
{
	fx_t *fx = *state;
	json_t *got = NULL;
	keel_error_t err;

	assert_int_equal(kc_get(fx->k, KC_POD, "default", "nope", &got, &err),
			 KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "pods \"nope\" not found");
	assert_null(got);
	assert_int_equal(kc_get(fx->k, KC_NODE, NULL, "n9", &got, &err), KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "nodes \"n9\" not found");
}

static void test_list_is_in_key_order_at_one_revision(void **state)
{
	fx_t *fx = *state;
	const char *names[] = {"b", "a", "c"};
	json_t *items = NULL, *other = fx_pod("z", NULL);
	keel_range_result_t *r = NULL;
	keel_error_t err;
	int64_t rev = 0;

	for (int i = 0; i < 3; i++) {
		json_t *pod = fx_pod(names[i], NULL);

		fx_create(fx->k, pod);
		json_decref(pod);
	}
	json_object_set_new(json_object_get(other, "metadata"), "namespace", json_string("prod"));
	fx_create(fx->k, other);

	assert_int_equal(kc_list(fx->k, KC_POD, "default", &items, &rev, &err), 0);
	assert_int_equal(json_array_size(items), 3);
	assert_string_equal(kc_name(json_array_get(items, 0)), "a");
	assert_string_equal(kc_name(json_array_get(items, 1)), "b");
	assert_string_equal(kc_name(json_array_get(items, 2)), "c");
	assert_int_equal(keel_get(fx->k, "/registry/pods/default/a", &r, &err), 0);
	assert_int_equal(rev, r->header.revision);
	assert_int_equal(kc_resource_version(json_array_get(items, 0)), r->kvs[0].mod_revision);
	keel_range_result_free(r);
	json_decref(items);

	assert_int_equal(kc_list(fx->k, KC_POD, NULL, &items, NULL, &err), 0);
	assert_int_equal(json_array_size(items), 4);
	assert_string_equal(kc_name(json_array_get(items, 3)), "z");
	json_decref(items);
	json_decref(other);
}

static void test_update_on_stale_resource_version_is_conflict(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *stale, *got = NULL;
	keel_error_t err;
	int64_t rv;

	fx_create(fx->k, pod);
	stale = json_deep_copy(pod);
	rv = kc_resource_version(pod);
	kc_path_set(pod, "spec.nodeName", json_string("n1"));
	assert_int_equal(kc_update(fx->k, pod, &err), 0);
	assert_true(kc_resource_version(pod) > rv);

	kc_path_set(stale, "spec.nodeName", json_string("n2"));
	assert_int_equal(kc_update(fx->k, stale, &err), KEEL_CODE_ABORTED);
	assert_string_equal(err.message,
			    "Operation cannot be fulfilled on pods \"web-1\": the object has been "
			    "modified; please apply your changes to the latest version and try "
			    "again");
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_string_equal(kc_path_str(got, "spec.nodeName"), "n1");
	assert_int_equal(kc_resource_version(got), kc_resource_version(pod));
	json_decref(got);

	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", 0, &err), 0);
	assert_int_equal(kc_update(fx->k, pod, &err), KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "pods \"web-1\" not found");
	json_decref(stale);
	json_decref(pod);
}

static void test_update_without_resource_version_is_refused(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL);
	keel_error_t err;

	fx_create(fx->k, pod);
	json_object_del(json_object_get(pod, "metadata"), "resourceVersion");
	assert_int_equal(kc_update(fx->k, pod, &err), KEEL_CODE_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "resourceVersion"));
	json_decref(pod);
}

static void test_delete_with_resource_version(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *got = NULL;
	keel_error_t err;
	int64_t rv;

	fx_create(fx->k, pod);
	rv = kc_resource_version(pod);
	kc_path_set(pod, "metadata.labels.x", json_string("y"));
	assert_int_equal(kc_update(fx->k, pod, &err), 0);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", rv, &err),
			 KEEL_CODE_ABORTED);
	assert_non_null(strstr(err.message, "Operation cannot be fulfilled on pods \"web-1\""));
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	json_decref(got);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", kc_resource_version(pod),
				   &err), 0);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", 0, &err),
			 KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "pods \"web-1\" not found");
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", 5, &err),
			 KEEL_CODE_NOT_FOUND);
	json_decref(pod);
}

/* ---- read-modify-write ---------------------------------------------------------------- */

#define BUMPS 40

typedef struct bump {
	keel_t *k;
	const char *label;
	int calls;
} bump_t;

static int bump_label(void *ud, json_t *obj, keel_error_t *err)
{
	bump_t *b = ud;
	char path[64], val[16];
	const char *cur;

	(void)err;
	b->calls++;
	snprintf(path, sizeof(path), "metadata.labels.%s", b->label);
	cur = kc_path_str(obj, path);
	snprintf(val, sizeof(val), "%d", cur ? atoi(cur) + 1 : 1);
	return kc_path_set(obj, path, json_string(val)) == 0 ? 0 : 99;
}

static void *bump_thread(void *arg)
{
	bump_t *b = arg;

	for (int i = 0; i < BUMPS; i++) {
		keel_error_t err;

		if (kc_modify(b->k, KC_POD, "default", "web-1", bump_label, b, NULL, &err) != 0)
			fail_msg("kc_modify: %s", err.message);
	}
	return NULL;
}

static void test_modify_loses_no_write_under_a_concurrent_writer(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *got = NULL;
	bump_t a = { fx->k, "a", 0 }, b = { fx->k, "b", 0 };
	keel_error_t err;
	pthread_t th;

	fx_create(fx->k, pod);
	assert_int_equal(pthread_create(&th, NULL, bump_thread, &a), 0);
	bump_thread(&b);
	pthread_join(th, NULL);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_string_equal(kc_path_str(got, "metadata.labels.a"), "40");
	assert_string_equal(kc_path_str(got, "metadata.labels.b"), "40");
	/* Label changes leave the spec, so the generation, alone. */
	assert_int_equal(kc_path_int(got, "metadata.generation", 0), 1);
	print_message("modify: %d + %d calls for %d writes\n", a.calls, b.calls, 2 * BUMPS);
	json_decref(got);
	json_decref(pod);
}

static int set_node(void *ud, json_t *obj, keel_error_t *err)
{
	(void)err;
	if (ud == NULL)
		return 1;
	kc_path_set(obj, "spec.nodeName", json_string(ud));
	return 0;
}

static int give_up(void *ud, json_t *obj, keel_error_t *err)
{
	(void)ud;
	(void)obj;
	return keel_error_set(err, KEEL_CODE_FAILED_PRECONDITION, "no thanks");
}

static void test_modify_bumps_generation_only_when_spec_changes(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *out = NULL;
	keel_error_t err;
	int64_t rv;

	fx_create(fx->k, pod);
	rv = kc_resource_version(pod);
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", set_node, "n1", &out, &err),
			 0);
	assert_int_equal(kc_path_int(out, "metadata.generation", 0), 2);
	assert_string_equal(kc_path_str(out, "spec.nodeName"), "n1");
	assert_true(kc_resource_version(out) > rv);
	rv = kc_resource_version(out);
	json_decref(out);

	/* fn returning 1: nothing written, *out is the stored object. */
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", set_node, NULL, &out, &err),
			 0);
	assert_int_equal(kc_resource_version(out), rv);
	json_decref(out);

	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", give_up, NULL, &out, &err),
			 KEEL_CODE_FAILED_PRECONDITION);
	assert_null(out);
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "gone", set_node, "n1", &out, &err),
			 KEEL_CODE_NOT_FOUND);
	json_decref(pod);
}

/* ---- pods ------------------------------------------------------------------------------- */

static void test_pod_delete_unbound_removes_at_once(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", NULL), *got = NULL;
	keel_error_t err;

	fx_create(fx->k, pod);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", -1, false, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err),
			 KEEL_CODE_NOT_FOUND);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", -1, false, &err),
			 KEEL_CODE_NOT_FOUND);
	assert_string_equal(err.message, "pods \"web-1\" not found");
	json_decref(pod);
}

static void test_pod_delete_bound_marks_it_with_its_grace(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", "n1"), *got = NULL;
	keel_error_t err;
	char *ts;

	kc_path_set(pod, "spec.terminationGracePeriodSeconds", json_integer(7));
	fx_create(fx->k, pod);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", -1, false, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_true(kc_deleting(got));
	ts = strdup(kc_path_str(got, "metadata.deletionTimestamp"));
	assert_true(kc_time_parse(ts) > 0);
	assert_int_equal(kc_path_int(got, "metadata.deletionGracePeriodSeconds", -1), 7);
	json_decref(got);

	/* A second delete may shorten the grace period, never lengthen it. */
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", 60, false, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_int_equal(kc_path_int(got, "metadata.deletionGracePeriodSeconds", -1), 7);
	json_decref(got);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", 0, false, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_int_equal(kc_path_int(got, "metadata.deletionGracePeriodSeconds", -1), 0);
	assert_string_equal(kc_path_str(got, "metadata.deletionTimestamp"), ts);
	json_decref(got);
	free(ts);
	json_decref(pod);
}

static void test_pod_delete_force_removes_a_bound_pod(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", "n1"), *got = NULL;
	keel_error_t err;

	fx_create(fx->k, pod);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", 30, true, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err),
			 KEEL_CODE_NOT_FOUND);
	assert_int_equal(kc_pod_delete(fx->k, "default", "web-1", 30, true, &err),
			 KEEL_CODE_NOT_FOUND);
	json_decref(pod);
}

static int set_owner(void *ud, json_t *obj, keel_error_t *err)
{
	(void)err;
	json_t *refs = json_pack("[{s:s, s:s, s:s, s:s, s:b}]", "apiVersion", "apps/v1", "kind",
				 "ReplicaSet", "name", "web", "uid", (const char *)ud, "controller", 1);
	return kc_path_set(obj, "metadata.ownerReferences", refs) ? -1 : 0;
}

static void test_pod_delete_if_spares_a_pod_recreated_or_readopted(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("web-1", "n1"), *examined = NULL, *got = NULL;
	keel_error_t err;

	/* Re-created under the same name: another uid, left alone, even by force. */
	fx_create(fx->k, pod);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &examined, &err), 0);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "web-1", 0, &err), 0);
	json_decref(pod);
	pod = fx_pod("web-1", "n1");
	fx_create(fx->k, pod);
	assert_int_equal(kc_pod_delete_if(fx->k, examined, -1, false, &err), KEEL_CODE_ABORTED);
	assert_int_equal(kc_pod_delete_if(fx->k, examined, -1, true, &err), KEEL_CODE_ABORTED);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_false(kc_deleting(got));
	json_decref(got);
	json_decref(examined);

	/* Examined while owned by one ReplicaSet, adopted by another since: left alone. */
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", set_owner, "uid-a", NULL,
				   &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &examined, &err), 0);
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", set_owner, "uid-b", NULL,
				   &err), 0);
	assert_int_equal(kc_pod_delete_if(fx->k, examined, -1, false, &err), KEEL_CODE_ABORTED);
	json_decref(examined);

	/* The incarnation examined, changed only in status since: marked for its agent. */
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &examined, &err), 0);
	bump_t b = {.label = "touched"};
	assert_int_equal(kc_modify(fx->k, KC_POD, "default", "web-1", bump_label, &b, NULL,
				   &err), 0);
	assert_int_equal(kc_pod_delete_if(fx->k, examined, -1, false, &err), 0);
	assert_int_equal(kc_get(fx->k, KC_POD, "default", "web-1", &got, &err), 0);
	assert_true(kc_deleting(got));
	json_decref(got);
	json_decref(examined);
	json_decref(pod);
}

static void test_undecodable_values_are_errors_on_get_and_skipped_by_list(void **state)
{
	fx_t *fx = *state;
	json_t *pod = fx_pod("good", NULL), *got = NULL, *items = NULL;
	keel_error_t err;

	fx_create(fx->k, pod);
	put_raw(fx->k, "/registry/pods/default/bad", "{not json");
	put_raw(fx->k, "/registry/pods/default/arr", "[1,2]");
	assert_int_not_equal(kc_get(fx->k, KC_POD, "default", "bad", &got, &err), 0);
	assert_null(got);
	assert_non_null(strstr(err.message, "/registry/pods/default/bad"));
	assert_int_not_equal(kc_get(fx->k, KC_POD, "default", "arr", &got, &err), 0);
	assert_non_null(strstr(err.message, "/registry/pods/default/arr"));
	assert_int_equal(kc_list(fx->k, KC_POD, "default", &items, NULL, &err), 0);
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(kc_name(json_array_get(items, 0)), "good");
	json_decref(items);
	json_decref(pod);
}

/* A pod created through a handle from kc_connect(endpoints) is read back through the test's. */
static void connect_and_create(keel_t *mine, const char *endpoints, const char *name)
{
	json_t *pod = fx_pod(name, NULL), *got = NULL;
	keel_error_t err;
	keel_t *k = NULL;

	assert_int_equal(kc_connect(endpoints, &k, &err), 0);
	if (kc_create(k, pod, &err) != 0)
		fail_msg("create through %s: %s", endpoints ? endpoints : "(env)", err.message);
	keel_close(k);
	assert_int_equal(kc_get(mine, KC_POD, "default", name, &got, &err), 0);
	json_decref(got);
	json_decref(pod);
}

static void test_connect_takes_endpoints_or_the_environment(void **state)
{
	char dir[256], url[64], list[128], env[64];
	const char *flags[] = {"--heartbeat-interval", "10", "--election-timeout", "100",
			       "--listen-client-urls", url, "--advertise-client-urls", url};
	int port = fx_free_port(), dead = fx_free_port();
	keel_open_options_t opt;
	keel_t *k = NULL, *none = NULL;
	keel_error_t err;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	test_tmpdir(dir, sizeof(dir), "cluster-connect");
	keel_open_options_init(&opt);
	opt.flags = flags;
	opt.n_flags = sizeof(flags) / sizeof(flags[0]);
	if (keel_open(dir, &opt, &k, &err) != 0)
		fail_msg("keel_open: %s", err.message);

	connect_and_create(k, url, "by-url");
	/* A list with an endpoint that refuses first: the next one is tried. */
	snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", dead, port);
	connect_and_create(k, list, "by-list");
	snprintf(env, sizeof(env), "127.0.0.1:%d", port);
	setenv("KEEL_ENDPOINTS", env, 1);
	connect_and_create(k, NULL, "by-env");
	connect_and_create(k, "", "by-empty");
	unsetenv("KEEL_ENDPOINTS");
	assert_int_not_equal(kc_connect(" , ", &none, &err), 0);
	assert_null(none);
	keel_close(k);
	assert_int_equal(test_rmtree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
		T(test_create_sets_uid_generation_and_resource_version),
		T(test_create_of_existing_name_is_already_exists),
		T(test_create_of_invalid_object_stores_nothing),
		T(test_generate_name_makes_distinct_names),
		T(test_get_of_missing_object_is_not_found),
		T(test_list_is_in_key_order_at_one_revision),
		T(test_update_on_stale_resource_version_is_conflict),
		T(test_update_without_resource_version_is_refused),
		T(test_delete_with_resource_version),
		T(test_modify_loses_no_write_under_a_concurrent_writer),
		T(test_modify_bumps_generation_only_when_spec_changes),
		T(test_pod_delete_unbound_removes_at_once),
		T(test_pod_delete_bound_marks_it_with_its_grace),
		T(test_pod_delete_force_removes_a_bound_pod),
		T(test_pod_delete_if_spares_a_pod_recreated_or_readopted),
		T(test_undecodable_values_are_errors_on_get_and_skipped_by_list),
#undef T
		cmocka_unit_test(test_connect_takes_endpoints_or_the_environment),
	};

	keel_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
