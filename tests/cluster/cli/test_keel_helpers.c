/* tests/cluster/cli/test_keel_helpers.c — the keel CLI's pure helpers (cli/keel.h): kubectl's
 * human durations, a pod's STATUS/READY/RESTARTS as kubectl computes them from the status,
 * node STATUS, and the tabwriter layout of tables. No store is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel.h"

static void check_duration(int64_t sec, const char *want)
{
	char buf[32];
	keel_human_duration(sec, buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		fail_msg("%lld s: got %s, want %s", (long long)sec, buf, want);
}

static void test_human_duration_follows_kubectl_steps(void **state)
{
	(void)state;
	check_duration(-5, "<invalid>");
	check_duration(-1, "0s");
	check_duration(0, "0s");
	check_duration(45, "45s");
	check_duration(119, "119s");
	check_duration(120, "2m");
	check_duration(150, "2m30s");
	check_duration(599, "9m59s");
	check_duration(600, "10m");
	check_duration(179 * 60 + 59, "179m");
	check_duration(3 * 3600 + 4 * 60 + 5, "3h4m");
	check_duration(5 * 3600, "5h");
	check_duration(8 * 3600 + 60, "8h");
	check_duration(47 * 3600, "47h");
	check_duration(2 * 86400 + 3 * 3600, "2d3h");
	check_duration(5 * 86400, "5d");
	check_duration(30 * 86400, "30d");
	check_duration(3 * 365 * 86400 + 4 * 86400, "3y4d");
	check_duration(10 * 365 * 86400, "10y");
}

static void test_age_of_object_without_timestamp_is_unknown(void **state)
{
	(void)state;
	char buf[32];
	json_t *o = json_pack("{s:{s:s}}", "metadata", "name", "x");
	keel_age(o, 1000, buf, sizeof(buf));
	assert_string_equal(buf, "<unknown>");
	json_object_set_new(json_object_get(o, "metadata"), "creationTimestamp",
			    json_string("2026-11-27T15:00:00Z"));
	keel_age(o, 1795791600 + 150, buf, sizeof(buf)); /* 2026-11-27T15:00:00Z + 2m30s */
	assert_string_equal(buf, "2m30s");
	json_decref(o);
}

static json_t *pod(const char *status_json)
{
	json_error_t e;
	json_t *p = json_loads("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":"
			       "[{\"name\":\"a\"},{\"name\":\"b\"}]}}", 0, &e);
	json_t *st = json_loads(status_json, 0, &e);
	assert_non_null(st);
	json_object_set_new(p, "status", st);
	return p;
}

static void check_pod(const char *status_json, const char *want, int ready, int restarts)
{
	keel_pod_summary_t s;
	json_t *p = pod(status_json);
	keel_pod_summarize(p, &s);
	if (strcmp(s.status, want) != 0 || s.ready != ready || s.restarts != restarts)
		fail_msg("%s: got %s %d/%d %d, want %s %d/2 %d", status_json, s.status, s.ready,
			 s.total, s.restarts, want, ready, restarts);
	assert_int_equal(s.total, 2);
	json_decref(p);
}

#define RUN(n, r)                                                                                  \
	"{\"name\":\"" n "\",\"ready\":" r ",\"restartCount\":0,\"state\":{\"running\":{}}}"

static void test_pod_status_from_phase_and_containers(void **state)
{
	(void)state;
	check_pod("{}", "Pending", 0, 0);
	check_pod("{\"phase\":\"Pending\"}", "Pending", 0, 0);
	check_pod("{\"phase\":\"Running\",\"containerStatuses\":[" RUN("a", "true") ","
		  RUN("b", "true") "]}", "Running", 2, 0);
	check_pod("{\"phase\":\"Running\",\"containerStatuses\":[" RUN("a", "true") ","
		  RUN("b", "false") "]}", "Running", 1, 0);
	check_pod("{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"waiting\":{\"reason\":\"ContainerCreating\"}}}]}", "ContainerCreating", 0, 0);
	check_pod("{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":"
		  "4,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}," RUN("b", "true")
		  "]}", "CrashLoopBackOff", 1, 4);
	check_pod("{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}]}",
		  "Completed", 0, 0);
	check_pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"exitCode\":1,\"reason\":\"Error\"}}}]}", "Error", 0, 0);
	check_pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}", "OOMKilled", 0,
		  0);
	check_pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"exitCode\":3}}}]}", "ExitCode:3", 0, 0);
	check_pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"exitCode\":0,\"signal\":9}}}]}", "Signal:9", 0, 0);
	check_pod("{\"phase\":\"Failed\",\"reason\":\"Evicted\"}", "Evicted", 0, 0);
}

static void test_pod_status_first_container_reason_wins(void **state)
{
	(void)state;
	check_pod("{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}},{\"name\":\"b\",\"state\":"
		  "{\"terminated\":{\"reason\":\"Error\"}}}]}", "CrashLoopBackOff", 0, 0);
}

static void test_pod_completed_with_running_container_is_running_or_notready(void **state)
{
	(void)state;
	check_pod(
		"{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
		"\"containerStatuses\":[{\"name\":\"a\",\"state\":{\"terminated\":{\"reason\":"
		"\"Completed\"}}}," RUN("b", "true") "]}",
		"Running", 1, 0);
	check_pod("{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\",\"state\":"
		  "{\"terminated\":{\"reason\":\"Completed\"}}}," RUN("b", "true") "]}", "NotReady",
		  1, 0);
}

static void test_pod_with_deletion_timestamp_is_terminating(void **state)
{
	(void)state;
	keel_pod_summary_t s;
	json_t *p = pod("{\"phase\":\"Running\",\"containerStatuses\":[" RUN("a", "true") "]}");
	json_object_set_new(json_object_get(p, "metadata"), "deletionTimestamp",
			    json_string("2026-11-27T15:00:00Z"));
	keel_pod_summarize(p, &s);
	assert_string_equal(s.status, "Terminating");
	json_decref(p);
}

static void test_restarts_show_how_long_ago_the_last_was(void **state)
{
	(void)state;
	keel_pod_summary_t s;
	char buf[64];
	json_t *p =
		pod("{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\","
		    "\"restartCount\":3,\"ready\":true,\"state\":{\"running\":{}},\"lastState\":"
		    "{\"terminated\":{\"finishedAt\":\"2026-11-27T15:00:00Z\"}}}]}");
	keel_pod_summarize(p, &s);
	assert_int_equal(s.restarts, 3);
	keel_restarts_text(&s, 1795791600 + 125, buf, sizeof(buf));
	assert_string_equal(buf, "3 (2m5s ago)");
	s.restarts = 0;
	keel_restarts_text(&s, 1795791600 + 125, buf, sizeof(buf));
	assert_string_equal(buf, "0");
	json_decref(p);
}

static void check_node(const char *node_json, const char *want)
{
	char buf[64];
	json_t *n = json_loads(node_json, 0, NULL);
	assert_non_null(n);
	keel_node_status(n, buf, sizeof(buf));
	assert_string_equal(buf, want);
	json_decref(n);
}

static void test_node_status_ready_notready_cordoned(void **state)
{
	(void)state;
	check_node("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
		   "Ready");
	check_node("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}",
		   "NotReady");
	check_node("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"Unknown\"}]}}",
		   "NotReady");
	check_node("{\"spec\":{\"unschedulable\":true},\"status\":{\"conditions\":"
		   "[{\"type\":\"Ready\",\"status\":\"True\"}]}}", "Ready,SchedulingDisabled");
	check_node("{}", "Unknown");
}

static char *print_table(const keel_table_t *t, size_t from)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	keel_table_print(t, NULL, from, f);
	fclose(f);
	return text;
}

static void test_table_columns_as_wide_as_content_plus_three(void **state)
{
	(void)state;
	keel_table_t *t = keel_table_new(3);
	const char *h[] = {"NAME", "READY", "AGE"};
	const char *r1[] = {"web-x7k2p-long", "1/1", "5d"};
	const char *r2[] = {"a", NULL, "45s"};
	assert_int_equal(keel_table_add(t, h), 0);
	assert_int_equal(keel_table_add(t, r1), 0);
	assert_int_equal(keel_table_add(t, r2), 0);
	size_t w[3];
	keel_table_widths(t, w);
	assert_int_equal(w[0], 14);
	assert_int_equal(w[1], 5);
	assert_int_equal(w[2], 3);
	char *text = print_table(t, 0);
	assert_string_equal(text, "NAME             READY   AGE\n"
				  "web-x7k2p-long   1/1     5d\n"
				  "a                        45s\n");
	free(text);
	text = print_table(t, 1); /* --no-headers keeps the header's widths */
	assert_string_equal(text, "web-x7k2p-long   1/1     5d\n"
				  "a                        45s\n");
	free(text);
	keel_table_free(t);
}

static void test_table_narrow_column_is_at_least_six_wide(void **state)
{
	(void)state;
	keel_table_t *t = keel_table_new(2);
	const char *r[] = {"a", "b"};
	keel_table_add(t, r);
	char *text = print_table(t, 0);
	assert_string_equal(text, "a     b\n");
	free(text);
	keel_table_free(t);
}

static void test_tabwrite_aligns_each_block_like_go_tabwriter(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	keel_tabwrite("Name:\tweb\nNamespace:\tdefault\n\tsecond=label\nContainers:\n"
		      "  main:\n    Ready:\tTrue\n    Restart Count:\t0\n  Type\tStatus\tX\n"
		      "  Ready \tTrue \tlonger\tlast\n", 0, 2, f);
	fclose(f);
	assert_string_equal(text, "Name:       web\n"
				  "Namespace:  default\n"
				  "            second=label\n"
				  "Containers:\n"
				  "  main:\n"
				  "    Ready:          True\n"
				  "    Restart Count:  0\n"
				  "  Type              Status  X\n"
				  "  Ready             True    longer  last\n");
	free(text);
}

static void test_duration_flags_parse_like_kubectl(void **state)
{
	(void)state;
	assert_int_equal(keel_duration_ms("5s"), 5000);
	assert_int_equal(keel_duration_ms("1m30s"), 90000);
	assert_int_equal(keel_duration_ms("500ms"), 500);
	assert_int_equal(keel_duration_ms("2"), 2000);
	assert_int_equal(keel_duration_ms("1h"), 3600000);
	assert_int_equal(keel_duration_ms("x"), -1);
	assert_int_equal(keel_duration_ms("5q"), -1);
	assert_int_equal(keel_duration_ms(""), -1);
}

static void test_flags_parse_long_short_inline_and_positionals(void **state)
{
	(void)state;
	const keel_flag_t spec[] = {
		{"output", 'o', KEEL_FLAG_VALUE, ""},
		{"watch", 'w', KEEL_FLAG_BOOL, ""},
		{"filename", 'f', KEEL_FLAG_MULTI, ""},
		{NULL, 0, 0, NULL},
	};
	char *argv[] = {"pods", "-owide", "--watch=false", "-f", "a.yaml", "--filename=b.yaml",
			"web", "-", NULL};
	keel_flags_t f;
	assert_int_equal(keel_flags_parse("get", 8, argv, spec, &f), 0);
	assert_string_equal(f.val[0], "wide");
	assert_false(keel_flag_bool(&f, 1, true));
	assert_int_equal(f.n_multi, 2);
	assert_string_equal(f.multi[1], "b.yaml");
	assert_int_equal(f.n_pos, 3);
	assert_string_equal(f.pos[2], "-");
	keel_flags_free(&f);
	char *bad[] = {"--nope", NULL};
	assert_int_equal(keel_flags_parse("get", 1, bad, spec, &f), 1);
	keel_flags_free(&f);
}

static void test_flags_parse_combined_shorthands_like_pflag(void **state)
{
	(void)state;
	const keel_flag_t spec[] = {
		{"container", 'c', KEEL_FLAG_VALUE, ""},
		{"follow", 'f', KEEL_FLAG_BOOL, ""},
		{"previous", 'p', KEEL_FLAG_BOOL, ""},
		{NULL, 0, 0, NULL},
	};
	keel_flags_t f;
	char *fp[] = {"pod", "-fp", NULL};
	assert_int_equal(keel_flags_parse("logs", 2, fp, spec, &f), 0);
	assert_true(keel_flag_bool(&f, 1, false));
	assert_true(keel_flag_bool(&f, 2, false));
	assert_int_equal(f.n_pos, 1);
	keel_flags_free(&f);
	/* a value flag ends the cluster: the rest, or else the next argument, is its value */
	char *fc[] = {"-fcmain", "-pc", "side", NULL};
	assert_int_equal(keel_flags_parse("logs", 3, fc, spec, &f), 0);
	assert_string_equal(f.val[0], "side");
	assert_true(keel_flag_bool(&f, 1, false));
	assert_true(keel_flag_bool(&f, 2, false));
	assert_int_equal(f.n_pos, 0);
	keel_flags_free(&f);
	char *eq[] = {"-f=false", "-ph", NULL};
	assert_int_equal(keel_flags_parse("logs", 2, eq, spec, &f), 0);
	assert_false(keel_flag_bool(&f, 1, true));
	assert_true(keel_flag_bool(&f, 2, false));
	assert_true(f.help);
	keel_flags_free(&f);
	char *bad[] = {"-fx", NULL};
	assert_int_equal(keel_flags_parse("logs", 1, bad, spec, &f), 1);
	keel_flags_free(&f);
	char *missing[] = {"-fc", NULL};
	assert_int_equal(keel_flags_parse("logs", 1, missing, spec, &f), 1);
	keel_flags_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_human_duration_follows_kubectl_steps),
		cmocka_unit_test(test_age_of_object_without_timestamp_is_unknown),
		cmocka_unit_test(test_pod_status_from_phase_and_containers),
		cmocka_unit_test(test_pod_status_first_container_reason_wins),
		cmocka_unit_test(test_pod_completed_with_running_container_is_running_or_notready),
		cmocka_unit_test(test_pod_with_deletion_timestamp_is_terminating),
		cmocka_unit_test(test_restarts_show_how_long_ago_the_last_was),
		cmocka_unit_test(test_node_status_ready_notready_cordoned),
		cmocka_unit_test(test_table_columns_as_wide_as_content_plus_three),
		cmocka_unit_test(test_table_narrow_column_is_at_least_six_wide),
		cmocka_unit_test(test_tabwrite_aligns_each_block_like_go_tabwriter),
		cmocka_unit_test(test_duration_flags_parse_like_kubectl),
		cmocka_unit_test(test_flags_parse_long_short_inline_and_positionals),
		cmocka_unit_test(test_flags_parse_combined_shorthands_like_pflag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
