/* tests/cluster/objects/test_cluster_quantity.c — Kubernetes quantities: parsing to exact
 * thousandths (rounding up what is not a whole milli-unit), errors, canonical formats, and a
 * pod's summed requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

typedef struct qcase {
	const char *text;
	int64_t milli;
} qcase_t;

static const qcase_t good[] = {
	{"0", 0},
	{"1", 1000},
	{"2", 2000},
	{"500m", 500},
	{"1.5", 1500},
	{"0.5", 500},
	{".5", 500},
	{"+3", 3000},
	{"-2", -2000},
	{"-500m", -500},
	{"1k", 1000000},
	{"1M", INT64_C(1000000000)},
	{"1G", INT64_C(1000000000000)},
	{"1T", INT64_C(1000000000000000)},
	{"2P", INT64_C(2000000000000000000)},
	{"1Ki", 1024000},
	{"128Mi", INT64_C(134217728000)},
	{"1.5Gi", INT64_C(1610612736000)},
	{"1Gi", INT64_C(1073741824000)},
	{"1Ti", INT64_C(1099511627776000)},
	{"1e3", 1000000},
	{"1E3", 1000000},
	{"1e-3", 1},
	{"12e+2", 1200000},
	{"1n", 1}, /* not a whole milli-unit: rounds up, as Kubernetes does */
	{"1u", 1},
	{"1500u", 2},
	{"1000000n", 1},
	{"0.0001", 1},
	{"1.0001m", 2},
	{"100m", 100},
	{"250m", 250},
	{"0.1", 100},
	{"3.14159", 3142},
	{"0n", 0},
};

static void test_quantity_table_parses_to_milli(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *q = json_string(good[i].text);
		int64_t milli = -12345;
		char msg[256] = "";
		int r = kc_quantity_parse(q, &milli, msg, sizeof(msg));
		if (r != 0 || milli != good[i].milli)
			fail_msg("%s: r=%d milli=%lld want %lld (%s)", good[i].text, r,
				 (long long)milli, (long long)good[i].milli, msg);
		json_decref(q);
	}
}

static void test_quantity_rejects_bad_text(void **state)
{
	(void)state;
	static const char *const bad[] = {"",   "abc", "1x",  "1.2.3", "m",    "1Kb", "1 Gi", "Gi1",
					  "1e", "1e+", "--1", "1mi",   "0x10", ".",   "1ki"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *q = json_string(bad[i]);
		int64_t milli = 7;
		char msg[256] = "";
		assert_int_equal(kc_quantity_parse(q, &milli, msg, sizeof(msg)), -1);
		assert_string_equal(msg, "quantities must match the regular expression "
					 "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
		assert_int_equal(milli, 7); /* untouched on error */
		json_decref(q);
	}
	json_t *obj = json_object();
	char msg[256];
	int64_t m;
	assert_int_equal(kc_quantity_parse(obj, &m, msg, sizeof(msg)), -1);
	assert_int_equal(kc_quantity_parse(NULL, &m, msg, sizeof(msg)), -1);
	json_decref(obj);
}

static void test_quantity_overflow_is_an_error(void **state)
{
	(void)state;
	static const char *const big[] = {"10E", "9223372036854775807", "1e30", "100000Pi", "8Ei"};
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		json_t *q = json_string(big[i]);
		int64_t milli;
		char msg[128] = "";
		assert_int_equal(kc_quantity_parse(q, &milli, msg, sizeof(msg)), -1);
		assert_string_equal(msg, "quantity is too large");
		json_decref(q);
	}
	json_t *q = json_integer(INT64_C(9223372036854775));
	int64_t milli;
	assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
	assert_int_equal(milli, INT64_C(9223372036854775000));
	json_decref(q);
	q = json_integer(INT64_C(9223372036854776));
	assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), -1);
	json_decref(q);
}

static void test_quantity_json_numbers_are_plain(void **state)
{
	(void)state;
	int64_t milli;
	json_t *q = json_integer(2);
	assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
	assert_int_equal(milli, 2000);
	json_decref(q);
	q = json_real(0.25);
	assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
	assert_int_equal(milli, 250);
	json_decref(q);
	q = json_real(1.5);
	assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
	assert_int_equal(milli, 1500);
	json_decref(q);
}

static void test_format_cpu_is_canonical(void **state)
{
	(void)state;
	char buf[32];
	kc_format_cpu(250, buf, sizeof(buf));
	assert_string_equal(buf, "250m");
	kc_format_cpu(2000, buf, sizeof(buf));
	assert_string_equal(buf, "2");
	kc_format_cpu(0, buf, sizeof(buf));
	assert_string_equal(buf, "0");
	kc_format_cpu(1500, buf, sizeof(buf));
	assert_string_equal(buf, "1500m");
}

static void test_format_memory_uses_exact_binary_suffix(void **state)
{
	(void)state;
	static const struct {
		int64_t bytes;
		const char *text;
	} cases[] = {
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1024, "1Ki"},
		{1536, "1536"},
		{1048576, "1Mi"},
		{134217728, "128Mi"},
		{INT64_C(1073741824), "1Gi"},
		{INT64_C(25769803776), "24Gi"},
		{INT64_C(1610612736), "1536Mi"},
		{INT64_C(1099511627776), "1Ti"},
		{1025, "1025"},
		{3072, "3Ki"},
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kc_format_memory(cases[i].bytes, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_format_then_parse_round_trips(void **state)
{
	(void)state;
	static const int64_t mem[] = {0, 1, 1024, 1536, 1048576, INT64_C(1073741824) * 24, 999};
	for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
		char buf[32];
		kc_format_memory(mem[i], buf, sizeof(buf));
		json_t *q = json_string(buf);
		int64_t milli;
		assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
		assert_int_equal(milli, mem[i] * 1000);
		json_decref(q);
	}
	static const int64_t cpu[] = {0, 1, 250, 1000, 1500, 64000};
	for (size_t i = 0; i < sizeof(cpu) / sizeof(cpu[0]); i++) {
		char buf[32];
		kc_format_cpu(cpu[i], buf, sizeof(buf));
		json_t *q = json_string(buf);
		int64_t milli;
		assert_int_equal(kc_quantity_parse(q, &milli, NULL, 0), 0);
		assert_int_equal(milli, cpu[i]);
		json_decref(q);
	}
}

static void test_pod_requests_default_to_limits(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *pod = json_loads("{\"spec\":{\"containers\":["
				 "{\"name\":\"a\",\"resources\":{\"requests\":{\"cpu\":\"100m\","
				 "\"memory\":\"16Mi\"},"
				 "\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}},"
				 "{\"name\":\"b\",\"resources\":{\"limits\":{\"cpu\":\"1\","
				 "\"memory\":\"1Gi\"}}},"
				 "{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"bogus\"}}}"
				 ","
				 "{\"name\":\"d\",\"resources\":{\"requests\":{\"memory\":\"1n\"}}}"
				 ","
				 "{\"name\":\"e\"}]}}",
				 0, &jerr);
	assert_non_null(pod);
	int64_t cpu = -1, mem = -1;
	kc_pod_requests(pod, &cpu, &mem);
	assert_int_equal(cpu, 1100);
	/* 16Mi + 1Gi + one byte (1n rounds up to a whole byte) */
	assert_int_equal(mem, INT64_C(16777216) + INT64_C(1073741824) + 1);
	json_decref(pod);
	kc_pod_requests(NULL, &cpu, &mem);
	assert_int_equal(cpu, 0);
	assert_int_equal(mem, 0);
}

/* Review M3: a pod's summed requests saturate at INT64_MAX (fits nowhere) instead of wrapping
 * to a negative request that fits on every node. */
static void test_pod_requests_saturate_instead_of_wrapping(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *pod = json_loads("{\"spec\":{\"containers\":["
				 "{\"name\":\"a\",\"resources\":{\"requests\":{\"cpu\":"
				 "\"9223372036854775\"}}},"
				 "{\"name\":\"b\",\"resources\":{\"limits\":{\"cpu\":"
				 "\"9223372036854775\"}}}]}}",
				 0, &jerr);
	assert_non_null(pod);
	int64_t cpu = -1, mem = -1;
	kc_pod_requests(pod, &cpu, &mem);
	assert_true(cpu == INT64_MAX);
	assert_int_equal(mem, 0);
	json_decref(pod);
	/* Memory is summed in whole bytes: 1100 containers of 8Pi each pass INT64_MAX. */
	pod = json_pack("{s:{s:[]}}", "spec", "containers");
	json_t *ctrs = kc_path(pod, "spec.containers");
	for (int i = 0; i < 1100; i++)
		json_array_append_new(ctrs, json_pack("{s:s, s:{s:{s:s}}}", "name", "c",
						      "resources", "requests", "memory", "8Pi"));
	kc_pod_requests(pod, &cpu, &mem);
	assert_int_equal(cpu, 0);
	assert_true(mem == INT64_MAX);
	json_decref(pod);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantity_table_parses_to_milli),
		cmocka_unit_test(test_quantity_rejects_bad_text),
		cmocka_unit_test(test_quantity_overflow_is_an_error),
		cmocka_unit_test(test_quantity_json_numbers_are_plain),
		cmocka_unit_test(test_format_cpu_is_canonical),
		cmocka_unit_test(test_format_memory_uses_exact_binary_suffix),
		cmocka_unit_test(test_format_then_parse_round_trips),
		cmocka_unit_test(test_pod_requests_default_to_limits),
		cmocka_unit_test(test_pod_requests_saturate_instead_of_wrapping),
	};
	return cmocka_run_group_tests_name("cluster_quantity", tests, NULL, NULL);
}
