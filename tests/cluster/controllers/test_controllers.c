/* tests/cluster/controllers/test_controllers.c — the controllers' pure logic in memory: which
 * pods are active and ready, the order in which a ReplicaSet deletes pods, status counts,
 * slow-start batches, expectations and flag parsing. No store, no threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controllers_int.h"

static json_t *pod_parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);
	if (!v)
		fail_msg("bad test JSON: %s: %s", jerr.text, text);
	return v;
}

/* A pod: name, node ("" = unscheduled), phase, ready (-1 = no condition), restarts, creation. */
static json_t *pod_make(const char *name, const char *node, const char *phase, int ready,
			int restarts, const char *created)
{
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
		 "\"namespace\":\"default\",\"labels\":{\"app\":\"web\"},"
		 "\"creationTimestamp\":\"%s\"},\"spec\":{\"nodeName\":\"%s\"},"
		 "\"status\":{\"phase\":\"%s\",\"containerStatuses\":[{\"name\":\"main\","
		 "\"restartCount\":%d}]%s}}",
		 name, created, node, phase, restarts,
		 ready < 0 ? ""
		 : ready	? ",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
			  "\"lastTransitionTime\":\"2026-11-27T10:00:00Z\"}]"
			: ",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]");
	return pod_parse(buf);
}

static void test_pod_active_excludes_terminating_and_terminal(void **state)
{
	(void)state;
	json_t *running = pod_make("a", "n1", "Running", 1, 0, "2026-11-27T10:00:00Z");
	json_t *pending = pod_make("b", "", "Pending", -1, 0, "2026-11-27T10:00:00Z");
	json_t *done = pod_make("c", "n1", "Succeeded", 0, 0, "2026-11-27T10:00:00Z");
	json_t *failed = pod_make("d", "n1", "Failed", 0, 0, "2026-11-27T10:00:00Z");
	json_t *terminating = pod_make("e", "n1", "Running", 1, 0, "2026-11-27T10:00:00Z");
	kc_path_set(terminating, "metadata.deletionTimestamp", json_string("2026-11-27T11:00:00Z"));
	assert_true(kctl_pod_active(running));
	assert_true(kctl_pod_active(pending));
	assert_false(kctl_pod_active(done));
	assert_false(kctl_pod_active(failed));
	assert_false(kctl_pod_active(terminating));
	json_decref(running);
	json_decref(pending);
	json_decref(done);
	json_decref(failed);
	json_decref(terminating);
}

static void test_pod_ready_needs_ready_condition_true(void **state)
{
	(void)state;
	json_t *ready = pod_make("a", "n1", "Running", 1, 0, "2026-11-27T10:00:00Z");
	json_t *not_ready = pod_make("b", "n1", "Running", 0, 0, "2026-11-27T10:00:00Z");
	json_t *none = pod_make("c", "n1", "Running", -1, 0, "2026-11-27T10:00:00Z");
	assert_true(kctl_pod_ready(ready));
	assert_false(kctl_pod_ready(not_ready));
	assert_false(kctl_pod_ready(none));
	json_decref(ready);
	json_decref(not_ready);
	json_decref(none);
}

static void test_pod_available_waits_min_ready_seconds(void **state)
{
	(void)state;
	json_t *pod = pod_make("a", "n1", "Running", 1, 0, "2026-11-27T10:00:00Z");
	int64_t t = kc_time_parse("2026-11-27T10:00:00Z");
	assert_true(kctl_pod_available(pod, 0, t));
	assert_false(kctl_pod_available(pod, 10, t + 9));
	assert_true(kctl_pod_available(pod, 10, t + 10));
	json_decref(pod);
}

/* Kubernetes' ranking: unscheduled, then Pending, then not ready, then the newest. */
static void test_delete_order_unscheduled_pending_not_ready_newest(void **state)
{
	(void)state;
	json_t *p[6];
	p[0] = pod_make("old-ready", "n1", "Running", 1, 0, "2026-11-27T09:00:00Z");
	p[1] = pod_make("new-ready", "n1", "Running", 1, 0, "2026-11-27T10:00:00Z");
	p[2] = pod_make("not-ready", "n1", "Running", 0, 0, "2026-11-27T08:00:00Z");
	p[3] = pod_make("pending", "n1", "Pending", -1, 0, "2026-11-27T07:00:00Z");
	p[4] = pod_make("unscheduled", "", "Pending", -1, 0, "2026-11-27T06:00:00Z");
	p[5] = pod_make("new-ready-restarted", "n1", "Running", 1, 3, "2026-11-27T09:00:00Z");
	const json_t *order[6] = {p[0], p[1], p[2], p[3], p[4], p[5]};
	kctl_pods_sort_for_delete(order, 6);
	const char *want[6] = {"unscheduled", "pending", "not-ready", "new-ready-restarted",
			       "new-ready", "old-ready"};
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(kc_name(order[i]), want[i]);
	for (size_t i = 0; i < 6; i++)
		json_decref(p[i]);
}

static void test_delete_order_is_a_strict_order(void **state)
{
	(void)state;
	json_t *a = pod_make("a", "n1", "Running", 1, 0, "2026-11-27T09:00:00Z");
	json_t *b = pod_make("b", "n1", "Running", 1, 0, "2026-11-27T09:00:00Z");
	/* Same rank: names break the tie both ways, never "equal". */
	assert_true(kctl_pod_delete_cmp(a, b) < 0);
	assert_true(kctl_pod_delete_cmp(b, a) > 0);
	assert_int_equal(kctl_pod_delete_cmp(a, a), 0);
	json_decref(a);
	json_decref(b);
}

static void test_rs_count_counts_ready_available_and_fully_labeled(void **state)
{
	(void)state;
	json_t *rs = pod_parse(
		"{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
		"\"metadata\":{\"name\":\"web\"},"
		"\"spec\":{\"replicas\":3,\"minReadySeconds\":60,"
		"\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\",\"tier\":\"fe\"}}}}}");
	json_t *p0 = pod_make("a", "n1", "Running", 1, 0, "2026-11-27T09:00:00Z");
	json_t *p1 = pod_make("b", "n1", "Running", 0, 0, "2026-11-27T09:00:00Z");
	json_t *p2 = pod_make("c", "", "Pending", -1, 0, "2026-11-27T09:00:00Z");
	kc_path_set(p0, "metadata.labels.tier", json_string("fe"));
	kc_path_set(p2, "metadata.labels.tier", json_string("fe"));
	const json_t *pods[3] = {p0, p1, p2};
	kctl_rs_counts_t c;
	int64_t t = kc_time_parse("2026-11-27T10:00:30Z"); /* p0 ready since 10:00:00 */
	kctl_rs_count(rs, pods, 3, t, &c);
	assert_int_equal(c.replicas, 3);
	assert_int_equal(c.fully_labeled, 2);
	assert_int_equal(c.ready, 1);
	assert_int_equal(c.available, 0); /* ready for 30 s of the 60 asked */
	kctl_rs_count(rs, pods, 3, t + 30, &c);
	assert_int_equal(c.available, 1);
	json_decref(rs);
	json_decref(p0);
	json_decref(p1);
	json_decref(p2);
}

static void test_batches_start_slow_and_double(void **state)
{
	(void)state;
	size_t want = 10, done = 0, sizes[8], n = 0;
	for (size_t b = kctl_batch_next(0, want); b > 0; b = kctl_batch_next(b, want - done)) {
		assert_true(n < 8);
		sizes[n++] = b;
		done += b;
	}
	assert_int_equal(n, 4);
	assert_int_equal(sizes[0], 1);
	assert_int_equal(sizes[1], 2);
	assert_int_equal(sizes[2], 4);
	assert_int_equal(sizes[3], 3);
	assert_int_equal(done, 10);
	assert_int_equal(kctl_batch_next(0, 0), 0);
}

static void test_expectations_wait_for_every_add(void **state)
{
	(void)state;
	kctl_expect_t *e = kctl_expect_new();
	const char *k = "/registry/replicasets/default/web";
	assert_true(kctl_expect_satisfied(e, k, 0));
	assert_int_equal(kctl_expect_set(e, k, 3, NULL, 0, 1000), 0);
	assert_false(kctl_expect_satisfied(e, k, 1000));
	kctl_expect_observe_add(e, k);
	kctl_expect_observe_add(e, k);
	assert_false(kctl_expect_satisfied(e, k, 1000));
	kctl_expect_observe_add(e, k);
	assert_true(kctl_expect_satisfied(e, k, 1000));
	/* Another key is independent. */
	kctl_expect_set(e, "/registry/replicasets/default/db", 1, NULL, 0, 1000);
	assert_true(kctl_expect_satisfied(e, k, 1000));
	assert_false(kctl_expect_satisfied(e, "/registry/replicasets/default/db", 1000));
	kctl_expect_free(e);
}

/* A pod seen Terminating and later gone must count once, and unknown pods not at all. */
static void test_expectations_count_each_deleted_pod_once(void **state)
{
	(void)state;
	kctl_expect_t *e = kctl_expect_new();
	const char *k = "/registry/replicasets/default/web";
	const char *dels[2] = {"/registry/pods/default/web-a", "/registry/pods/default/web-b"};
	kctl_expect_set(e, k, 0, dels, 2, 0);
	kctl_expect_observe_delete(e, k, dels[0]);
	kctl_expect_observe_delete(e, k, dels[0]);
	kctl_expect_observe_delete(e, k, "/registry/pods/default/web-zzz");
	assert_false(kctl_expect_satisfied(e, k, 0));
	kctl_expect_observe_delete(e, k, dels[1]);
	assert_true(kctl_expect_satisfied(e, k, 0));
	kctl_expect_free(e);
}

static void test_expectations_expire_and_can_be_forgotten(void **state)
{
	(void)state;
	kctl_expect_t *e = kctl_expect_new();
	const char *k = "/registry/replicasets/default/web";
	kctl_expect_set(e, k, 5, NULL, 0, 1000);
	assert_false(kctl_expect_satisfied(e, k, 1000 + KCTL_EXPECT_TIMEOUT_MS));
	assert_true(kctl_expect_satisfied(e, k, 1001 + KCTL_EXPECT_TIMEOUT_MS));
	kctl_expect_set(e, k, 5, NULL, 0, 1000);
	kctl_expect_forget(e, k);
	assert_true(kctl_expect_satisfied(e, k, 1000));
	/* Observing a key without a record is harmless. */
	kctl_expect_observe_add(e, k);
	kctl_expect_observe_delete(e, k, "x");
	kctl_expect_free(e);
}

static void test_flags_defaults_and_values(void **state)
{
	(void)state;
	kctl_config_t cfg;
	char msg[2048];
	assert_int_equal(kctl_config_parse(0, NULL, &cfg, msg, sizeof(msg)), 0);
	assert_true(cfg.leader_elect);
	assert_int_equal(cfg.lease_duration_s, 15);
	assert_int_equal(cfg.pod_eviction_timeout_s, 30);
	assert_int_equal(cfg.workers, 4);
	assert_null(cfg.endpoints);
	char *argv[] = {"--endpoints", "127.0.0.1:1", "--leader-elect=false",
			"--leader-elect-lease-duration=2", "--pod-eviction-timeout", "2",
			"--workers", "8", "-v"};
	assert_int_equal(kctl_config_parse(9, argv, &cfg, msg, sizeof(msg)), 0);
	assert_string_equal(cfg.endpoints, "127.0.0.1:1");
	assert_false(cfg.leader_elect);
	assert_int_equal(cfg.lease_duration_s, 2);
	assert_int_equal(cfg.pod_eviction_timeout_s, 2);
	assert_int_equal(cfg.workers, 8);
	assert_int_equal(cfg.verbose, 1);
}

static void test_flags_reject_bad_input(void **state)
{
	(void)state;
	kctl_config_t cfg;
	char msg[2048];
	char *unknown[] = {"--bogus", "1"};
	assert_int_equal(kctl_config_parse(2, unknown, &cfg, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "unknown flag: --bogus"));
	char *notint[] = {"--workers", "many"};
	assert_int_equal(kctl_config_parse(2, notint, &cfg, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "--workers"));
	char *zero[] = {"--workers=0"};
	assert_int_equal(kctl_config_parse(1, zero, &cfg, msg, sizeof(msg)), -1);
	char *missing[] = {"--pod-eviction-timeout"};
	assert_int_equal(kctl_config_parse(1, missing, &cfg, msg, sizeof(msg)), -1);
	char *badbool[] = {"--leader-elect=maybe"};
	assert_int_equal(kctl_config_parse(1, badbool, &cfg, msg, sizeof(msg)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pod_active_excludes_terminating_and_terminal),
		cmocka_unit_test(test_pod_ready_needs_ready_condition_true),
		cmocka_unit_test(test_pod_available_waits_min_ready_seconds),
		cmocka_unit_test(test_delete_order_unscheduled_pending_not_ready_newest),
		cmocka_unit_test(test_delete_order_is_a_strict_order),
		cmocka_unit_test(test_rs_count_counts_ready_available_and_fully_labeled),
		cmocka_unit_test(test_batches_start_slow_and_double),
		cmocka_unit_test(test_expectations_wait_for_every_add),
		cmocka_unit_test(test_expectations_count_each_deleted_pod_once),
		cmocka_unit_test(test_expectations_expire_and_can_be_forgotten),
		cmocka_unit_test(test_flags_defaults_and_values),
		cmocka_unit_test(test_flags_reject_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
