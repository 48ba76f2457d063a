/* tests/cluster/scheduler/test_sched_filter.c — the scheduler's pure decisions: each filter,
 * the scores, spreading a ReplicaSet, round-robin ties and kube-scheduler's unschedulable text.
 * No store: nodes and pods are built in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "scheduler_int.h"

/* A Ready node with cpu millicores, memory MiB and pods allocatable, extra JSON merged in. */
static void node_make(sched_node_t *n, const char *name, const char *cpu, const char *mem,
		      const char *pods, const char *extra)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{}, s:{s:{s:s, s:s, s:s}, "
			      "s:[{s:s, s:s}]}}",
			      "apiVersion", "v1", "kind", "Node", "metadata", "name", name,
			      "labels", "kubernetes.io/hostname", name, "spec", "status",
			      "allocatable", "cpu", cpu, "memory", mem, "pods", pods,
			      "conditions", "type", "Ready", "status", "True");
	assert_non_null(o);
	if (extra) {
		json_t *e = json_loads(extra, 0, NULL);
		assert_non_null(e);
		const char *k;
		json_t *v;
		json_object_foreach(e, k, v) {
			json_t *dst = json_object_get(o, k);
			if (json_is_object(dst) && json_is_object(v))
				json_object_update(dst, v);
			else
				json_object_set(o, k, v);
		}
		json_decref(e);
	}
	memset(n, 0, sizeof(*n));
	sched_node_set(n, o);
	json_decref(o);
}

static sched_pod_t pod_make(int64_t cpu, int64_t mem)
{
	return (sched_pod_t){.cpu = cpu, .mem = mem};
}

static void test_node_set_reads_allocatable_in_plain_units(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "2", "1Gi", "110", NULL);
	assert_string_equal(n.name, "n1");
	assert_true(n.present && n.ready && !n.unschedulable);
	assert_int_equal(n.alloc_cpu, 2000);
	assert_int_equal(n.alloc_mem, 1024LL * 1024 * 1024);
	assert_int_equal(n.alloc_pods, 110);
	assert_null(n.taints);
	sched_node_clear(&n);
}

static void test_pod_that_fits_passes_every_filter(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "2", NULL);
	sched_pod_t p = pod_make(1000, 1024LL * 1024 * 1024);
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	sched_node_clear(&n);
}

static void test_not_ready_node_is_filtered(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10",
		  "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"Unknown\"}]}}");
	assert_false(n.ready);
	sched_pod_t p = pod_make(0, 0);
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_NOT_READY);
	sched_node_clear(&n);
}

static void test_cordoned_node_is_filtered_unless_tolerated(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10", "{\"spec\":{\"unschedulable\":true}}");
	sched_pod_t p = pod_make(0, 0);
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_UNSCHEDULABLE);
	json_t *tol = json_loads("[{\"key\":\"node.kubernetes.io/unschedulable\","
				 "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]", 0, NULL);
	p.tolerations = tol;
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	json_decref(tol);
	sched_node_clear(&n);
}

static void test_untolerated_noschedule_taint_is_filtered(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10",
		  "{\"spec\":{\"taints\":[{\"key\":\"soft\",\"value\":\"x\","
		  "\"effect\":\"PreferNoSchedule\"},{\"key\":\"gpu\",\"value\":\"yes\","
		  "\"effect\":\"NoSchedule\"}]}}");
	assert_int_equal(json_array_size(n.taints), 1); /* PreferNoSchedule is not a filter */
	sched_pod_t p = pod_make(0, 0);
	const json_t *taint = NULL;
	assert_int_equal(sched_filter(&n, &p, &taint), SCHED_FAIL_TAINT);
	assert_string_equal(json_string_value(json_object_get(taint, "key")), "gpu");
	json_t *wrong = json_loads("[{\"key\":\"gpu\",\"operator\":\"Equal\",\"value\":\"no\","
				   "\"effect\":\"NoSchedule\"}]", 0, NULL);
	p.tolerations = wrong;
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_TAINT);
	json_t *right = json_loads("[{\"key\":\"gpu\",\"operator\":\"Equal\",\"value\":\"yes\","
				   "\"effect\":\"NoSchedule\"}]", 0, NULL);
	p.tolerations = right;
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	json_decref(wrong);
	json_decref(right);
	sched_node_clear(&n);
}

static void test_noexecute_taint_is_filtered(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10",
		  "{\"spec\":{\"taints\":[{\"key\":\"node.kubernetes.io/unreachable\","
		  "\"effect\":\"NoExecute\"}]}}");
	sched_pod_t p = pod_make(0, 0);
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_TAINT);
	json_t *all = json_loads("[{\"operator\":\"Exists\"}]", 0, NULL);
	p.tolerations = all;
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	json_decref(all);
	sched_node_clear(&n);
}

static void test_node_selector_must_match_every_label(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10", "{\"metadata\":{\"labels\":{\"disk\":\"ssd\"}}}");
	sched_pod_t p = pod_make(0, 0);
	json_t *sel = json_loads("{\"disk\":\"ssd\"}", 0, NULL);
	p.node_selector = sel;
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	json_object_set_new(sel, "zone", json_string("a"));
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_SELECTOR);
	json_object_clear(sel);
	json_object_set_new(sel, "disk", json_string("hdd"));
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_SELECTOR);
	json_decref(sel);
	sched_node_clear(&n);
}

static void test_requests_must_fit_what_is_left(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "256Mi", "3", NULL);
	n.req_cpu = 600;
	n.req_mem = 128LL << 20;
	n.pods = 2;
	sched_pod_t p = pod_make(400, 128LL << 20);
	assert_int_equal(sched_filter(&n, &p, NULL), 0);
	p.cpu = 401;
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_CPU);
	p.mem = (128LL << 20) + 1;
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_CPU | SCHED_FAIL_MEMORY);
	n.pods = 3;
	p = pod_make(0, 0);
	assert_int_equal(sched_filter(&n, &p, NULL), SCHED_FAIL_PODS);
	sched_node_clear(&n);
}

static void test_least_requested_prefers_the_emptier_node(void **state)
{
	(void)state;
	sched_node_t a, b;
	node_make(&a, "a", "2", "2Gi", "10", NULL);
	node_make(&b, "b", "2", "2Gi", "10", NULL);
	b.req_cpu = 1000;
	b.req_mem = 1LL << 30;
	sched_pod_t p = pod_make(0, 0);
	assert_int_equal(sched_score(&a, &p, 0, 0), 100 + 200);
	assert_int_equal(sched_score(&b, &p, 0, 0), 50 + 200);
	/* cpu full, memory empty: the average of the two free fractions */
	b.req_cpu = 2000;
	b.req_mem = 0;
	assert_int_equal(sched_score(&b, &p, 0, 0), 50 + 200);
	sched_node_clear(&a);
	sched_node_clear(&b);
}

static void test_spread_score_falls_with_owner_pods_on_the_node(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n", "2", "2Gi", "10", NULL);
	sched_pod_t p = pod_make(0, 0);
	assert_int_equal(sched_score(&n, &p, 0, 2), 100 + 200);
	assert_int_equal(sched_score(&n, &p, 1, 2), 100 + 100);
	assert_int_equal(sched_score(&n, &p, 2, 2), 100);
	sched_node_clear(&n);
}

/* Schedules count pods of one owner on nodes as the scheduler does: select, then account. */
static void place(sched_node_t *nodes, size_t n, int64_t cpu, int count, int32_t *owner,
		  int *placed)
{
	int32_t scratch[16];
	for (int i = 0; i < count; i++) {
		sched_pod_t p = pod_make(cpu, 64LL << 20);
		p.owner_counts = owner;
		p.n_owner_counts = owner ? n : 0;
		int slot = sched_select(nodes, n, &p, (size_t)i, scratch, NULL);
		assert_true(slot >= 0);
		nodes[slot].req_cpu += p.cpu;
		nodes[slot].req_mem += p.mem;
		nodes[slot].pods++;
		if (owner)
			owner[slot]++;
		placed[slot]++;
	}
}

static void test_replicaset_of_six_spreads_two_two_two(void **state)
{
	(void)state;
	sched_node_t nodes[3];
	node_make(&nodes[0], "n1", "4", "8Gi", "110", NULL);
	node_make(&nodes[1], "n2", "4", "8Gi", "110", NULL);
	node_make(&nodes[2], "n3", "4", "8Gi", "110", NULL);
	/* another owner's pods already make n1 busier: spreading must still win */
	nodes[0].req_cpu = 500;
	nodes[0].pods = 1;
	int32_t owner[3] = {0};
	int placed[3] = {0};
	place(nodes, 3, 100, 6, owner, placed);
	assert_int_equal(placed[0], 2);
	assert_int_equal(placed[1], 2);
	assert_int_equal(placed[2], 2);
	for (int i = 0; i < 3; i++)
		sched_node_clear(&nodes[i]);
}

static void test_equal_nodes_take_turns(void **state)
{
	(void)state;
	sched_node_t nodes[4];
	for (int i = 0; i < 4; i++) {
		char name[8];
		snprintf(name, sizeof(name), "n%d", i);
		node_make(&nodes[i], name, "1000", "1000Gi", "110", NULL);
	}
	int placed[4] = {0};
	/* tiny pods on huge nodes: every score ties, round-robin spreads them */
	place(nodes, 4, 1, 8, NULL, placed);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(placed[i], 2);
		sched_node_clear(&nodes[i]);
	}
}

static void test_select_skips_absent_slots_and_reports_failures(void **state)
{
	(void)state;
	sched_node_t nodes[4];
	node_make(&nodes[0], "n1", "1", "1Gi", "10", "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}");
	node_make(&nodes[1], "n2", "1", "1Gi", "10", NULL);
	node_make(&nodes[2], "n3", "1", "1Gi", "10", NULL);
	node_make(&nodes[3], "gone", "64", "1Gi", "10",
		  "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}");
	nodes[3].present = false;
	sched_pod_t p = pod_make(2000, 0);
	json_t *sel = json_loads("{\"a\":\"b\"}", 0, NULL);
	p.node_selector = sel;
	int32_t scratch[4];
	sched_failures_t f = {0};
	assert_int_equal(sched_select(nodes, 4, &p, 0, scratch, &f), -1);
	char *msg = sched_failures_message(&f);
	assert_string_equal(msg, "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't "
				 "match Pod's node affinity/selector.");
	free(msg);
	sched_failures_clear(&f);
	p.cpu = 500;
	assert_int_equal(sched_select(nodes, 4, &p, 0, scratch, NULL), 0);
	json_decref(sel);
	for (int i = 0; i < 4; i++)
		sched_node_clear(&nodes[i]);
}

static void test_unschedulable_message_names_every_reason_sorted(void **state)
{
	(void)state;
	sched_failures_t f = {0};
	json_t *t1 = json_loads("{\"key\":\"gpu\",\"value\":\"yes\",\"effect\":\"NoSchedule\"}", 0,
				NULL);
	json_t *t2 = json_loads("{\"key\":\"node.kubernetes.io/unreachable\","
				"\"effect\":\"NoExecute\"}", 0, NULL);
	sched_failures_add(&f, SCHED_FAIL_CPU | SCHED_FAIL_MEMORY, NULL);
	sched_failures_add(&f, SCHED_FAIL_CPU, NULL);
	sched_failures_add(&f, SCHED_FAIL_PODS, NULL);
	sched_failures_add(&f, SCHED_FAIL_TAINT, t1);
	sched_failures_add(&f, SCHED_FAIL_TAINT, t1);
	sched_failures_add(&f, SCHED_FAIL_TAINT, t2);
	sched_failures_add(&f, SCHED_FAIL_UNSCHEDULABLE, NULL);
	sched_failures_add(&f, SCHED_FAIL_NOT_READY, NULL);
	char *msg = sched_failures_message(&f);
	assert_string_equal(msg, "0/8 nodes are available: 1 Insufficient memory, "
				 "1 Too many pods, "
				 "1 node(s) had untolerated taint "
				 "{node.kubernetes.io/unreachable: }, "
				 "1 node(s) were not ready, 1 node(s) were unschedulable, "
				 "2 Insufficient cpu, 2 node(s) had untolerated taint {gpu: yes}.");
	free(msg);
	sched_failures_clear(&f);
	msg = sched_failures_message(&f);
	assert_string_equal(msg, "no nodes available to schedule pods");
	free(msg);
	json_decref(t1);
	json_decref(t2);
}

static void test_node_differs_only_on_scheduling_fields(void **state)
{
	(void)state;
	sched_node_t n;
	node_make(&n, "n1", "1", "1Gi", "10", NULL);
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}, s:s}, s:{}, s:{s:{s:s, s:s, s:s}, "
			      "s:[{s:s, s:s, s:s}]}}",
			      "apiVersion", "v1", "kind", "Node", "metadata", "name", "n1",
			      "labels", "kubernetes.io/hostname", "n1", "resourceVersion", "99",
			      "spec", "status", "allocatable", "cpu", "1000m", "memory", "1Gi",
			      "pods", "10", "conditions", "type", "Ready", "status", "True",
			      "lastHeartbeatTime", "2026-11-27T15:04:05Z");
	assert_false(sched_node_differs(&n, o));
	json_object_set_new(kc_path(o, "status.allocatable"), "cpu", json_string("2"));
	assert_true(sched_node_differs(&n, o));
	json_decref(o);
	sched_node_clear(&n);
}

static int parse(sched_opts_t *o, int argc, ...)
{
	char *argv[16];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return sched_opts_parse(argc, argv, o);
}

static void test_flags_default_and_parse(void **state)
{
	(void)state;
	sched_opts_t o;
	assert_int_equal(parse(&o, 0), 0);
	assert_null(o.endpoints);
	assert_true(o.leader_elect);
	assert_int_equal(o.lease_duration, 15);
	assert_int_equal(o.workers, 8);
	assert_false(o.verbose);
	assert_int_equal(parse(&o, 7, "scheduler", "--endpoints", "a:1,b:2", "--leader-elect=false",
			       "--leader-elect-lease-duration", "2", "-v"), 0);
	assert_string_equal(o.endpoints, "a:1,b:2");
	assert_false(o.leader_elect);
	assert_int_equal(o.lease_duration, 2);
	assert_true(o.verbose);
	assert_int_equal(parse(&o, 2, "--workers=3", "--leader-elect"), 0);
	assert_int_equal(o.workers, 3);
	assert_true(o.leader_elect);
}

static void test_flags_reject_bad_input(void **state)
{
	(void)state;
	sched_opts_t o;
	assert_int_equal(parse(&o, 1, "--bogus"), -1);
	assert_int_equal(parse(&o, 1, "--workers"), -1);
	assert_int_equal(parse(&o, 1, "--workers=0"), -1);
	assert_int_equal(parse(&o, 2, "--leader-elect-lease-duration", "x"), -1);
	assert_int_equal(parse(&o, 1, "--leader-elect=maybe"), -1);
	assert_int_equal(parse(&o, 1, "stray"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_set_reads_allocatable_in_plain_units),
		cmocka_unit_test(test_pod_that_fits_passes_every_filter),
		cmocka_unit_test(test_not_ready_node_is_filtered),
		cmocka_unit_test(test_cordoned_node_is_filtered_unless_tolerated),
		cmocka_unit_test(test_untolerated_noschedule_taint_is_filtered),
		cmocka_unit_test(test_noexecute_taint_is_filtered),
		cmocka_unit_test(test_node_selector_must_match_every_label),
		cmocka_unit_test(test_requests_must_fit_what_is_left),
		cmocka_unit_test(test_least_requested_prefers_the_emptier_node),
		cmocka_unit_test(test_spread_score_falls_with_owner_pods_on_the_node),
		cmocka_unit_test(test_replicaset_of_six_spreads_two_two_two),
		cmocka_unit_test(test_equal_nodes_take_turns),
		cmocka_unit_test(test_select_skips_absent_slots_and_reports_failures),
		cmocka_unit_test(test_unschedulable_message_names_every_reason_sorted),
		cmocka_unit_test(test_node_differs_only_on_scheduling_fields),
		cmocka_unit_test(test_flags_default_and_parse),
		cmocka_unit_test(test_flags_reject_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
