/* tests/cluster/objects/test_cluster_selector.c — label selectors: kubectl's -l syntax (and its
 * parse errors), LabelSelector objects with matchExpressions, matching, and the printed form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

static json_t *parse(const char *text)
{
	json_t *v = json_loads(text, 0, NULL);
	assert_non_null(v);
	return v;
}

static bool text_matches(const char *sel, const char *labels)
{
	kc_selector_t *s = NULL;
	char msg[256];
	if (kc_selector_parse(sel, &s, msg, sizeof(msg)) != 0)
		fail_msg("%s: %s", sel, msg);
	json_t *l = parse(labels);
	bool r = kc_selector_matches(s, l);
	json_decref(l);
	kc_selector_free(s);
	return r;
}

static void test_parse_matches_each_operator(void **state)
{
	(void)state;
	static const struct {
		const char *sel, *labels;
		bool match;
	} cases[] = {
		{"", "{}", true},
		{"", "{\"a\":\"b\"}", true},
		{"app=web", "{\"app\":\"web\"}", true},
		{"app==web", "{\"app\":\"web\"}", true},
		{"app=web", "{\"app\":\"db\"}", false},
		{"app=web", "{}", false},
		{"app!=web", "{}", true},
		{"app!=web", "{\"app\":\"db\"}", true},
		{"app!=web", "{\"app\":\"web\"}", false},
		{"env in (a,b)", "{\"env\":\"b\"}", true},
		{"env in (a, b)", "{\"env\":\"c\"}", false},
		{"env in (a,b)", "{}", false},
		{"env notin (a,b)", "{}", true},
		{"env notin (a,b)", "{\"env\":\"a\"}", false},
		{"env notin (a,b)", "{\"env\":\"c\"}", true},
		{"track", "{\"track\":\"\"}", true},
		{"track", "{}", false},
		{"!legacy", "{}", true},
		{"!legacy", "{\"legacy\":\"x\"}", false},
		{"app=web,tier!=db,env in (a,b),!legacy,track",
		 "{\"app\":\"web\",\"tier\":\"fe\",\"env\":\"a\",\"track\":\"1\"}", true},
		{"app=web,tier!=db,env in (a,b),!legacy,track",
		 "{\"app\":\"web\",\"tier\":\"fe\",\"env\":\"a\",\"track\":\"1\",\"legacy\":\"y\"}",
		 false},
		{" app = web , tier ", "{\"app\":\"web\",\"tier\":\"x\"}", true},
		{"app=", "{\"app\":\"\"}", true},
		{"app=", "{\"app\":\"x\"}", false},
		{"kubernetes.io/hostname=n1", "{\"kubernetes.io/hostname\":\"n1\"}", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (text_matches(cases[i].sel, cases[i].labels) != cases[i].match)
			fail_msg("%s on %s", cases[i].sel, cases[i].labels);
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *sel, *msg;
	} cases[] = {
		{"app=web,", "unable to parse requirement: found '', expected: identifier"},
		{"=web", "unable to parse requirement: found '=', expected: identifier"},
		{"app web", "unable to parse requirement: found 'web', expected: '=', '!=', '==', "
			    "'in', "
			    "notin'"},
		{"env in a,b", "unable to parse requirement: found 'a', expected: '('"},
		{"env in (a,b", "unable to parse requirement: found '', expected: ',', ')'"},
		{"env in ()", "unable to parse requirement: for 'in', 'notin' operators, values "
			      "set "
			      "can't be empty"},
		{"app=we b", "unable to parse requirement: found 'b', expected: ','"},
		{"app=a=b", "unable to parse requirement: found '=', expected: ','"},
		{"a!=b!=c", "unable to parse requirement: found '!=', expected: ','"},
		{"env in (a b)", "unable to parse requirement: found 'b', expected: ',', ')'"},
		{"app=bad!", "unable to parse requirement: found '!', expected: ','"},
		{"!", "unable to parse requirement: found '', expected: identifier"},
		{"bad key=x", "unable to parse requirement: found 'key', expected: '=', '!=', "
			      "'==', "
			      "'in', notin'"},
		{"-bad=x", "unable to parse requirement: invalid label key \"-bad\": name part "
			   "must "
			   "consist of alphanumeric characters, '-', '_' or '.', and must start "
			   "and "
			   "end with an alphanumeric character"},
		{"app=-x", "unable to parse requirement: invalid label value: \"-x\""},
		{"app>3", "unable to parse requirement: invalid label key \"app>3\": name part "
			  "must "
			  "consist of alphanumeric characters, '-', '_' or '.', and must start and "
			  "end "
			  "with an alphanumeric character"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kc_selector_t *s = (kc_selector_t *)1;
		char msg[512] = "";
		if (kc_selector_parse(cases[i].sel, &s, msg, sizeof(msg)) != -1)
			fail_msg("%s parsed", cases[i].sel);
		if (strcmp(msg, cases[i].msg) != 0)
			fail_msg("%s:\n got: %s\nwant: %s", cases[i].sel, msg, cases[i].msg);
		assert_ptr_equal(s, (kc_selector_t *)1); /* untouched on error */
	}
}

static char *string_of(const char *sel)
{
	kc_selector_t *s = NULL;
	char msg[256];
	assert_int_equal(kc_selector_parse(sel, &s, msg, sizeof(msg)), 0);
	char *out = kc_selector_string(s);
	kc_selector_free(s);
	return out;
}

static void test_string_form_is_sorted_like_kubernetes(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", ""},
		{"app=web", "app=web"},
		{"app==web", "app=web"},
		{"tier!=db,app=web", "app=web,tier!=db"},
		{"env in (b, a)", "env in (a,b)"},
		{"env notin (z,a)", "env notin (a,z)"},
		{"!legacy,track", "!legacy,track"},
		{"track,!legacy", "!legacy,track"},
		{"app=web,tier!=db,env in (a,b),!legacy,track", "app=web,env in "
								"(a,b),!legacy,tier!=db,track"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = string_of(cases[i].in);
		if (strcmp(s, cases[i].out) != 0)
			fail_msg("%s: got %s want %s", cases[i].in, s, cases[i].out);
		/* the printed form parses back to the same selector */
		char *again = string_of(s);
		assert_string_equal(again, s);
		free(again);
		free(s);
	}
}

static void test_from_json_with_match_expressions(void **state)
{
	(void)state;
	json_t *sel = parse("{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":["
			    "{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"fe\",\"api\"]},"
			    "{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"dev\"]},"
			    "{\"key\":\"track\",\"operator\":\"Exists\"},"
			    "{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"}]}");
	kc_selector_t *s = NULL;
	char msg[256];
	assert_int_equal(kc_selector_from_json(sel, &s, msg, sizeof(msg)), 0);
	json_t *l = parse("{\"app\":\"web\",\"tier\":\"fe\",\"track\":\"x\"}");
	assert_true(kc_selector_matches(s, l));
	json_object_set_new(l, "env", json_string("dev"));
	assert_false(kc_selector_matches(s, l));
	json_object_set_new(l, "env", json_string("prod"));
	assert_true(kc_selector_matches(s, l));
	json_object_set_new(l, "legacy", json_string(""));
	assert_false(kc_selector_matches(s, l));
	json_object_del(l, "legacy");
	json_object_del(l, "track");
	assert_false(kc_selector_matches(s, l));
	char *str = kc_selector_string(s);
	assert_string_equal(str, "app=web,env notin (dev),!legacy,tier in (api,fe),track");
	free(str);
	json_decref(l);
	kc_selector_free(s);
	json_decref(sel);
}

static void test_from_json_empty_matches_all_and_null_nothing(void **state)
{
	(void)state;
	json_t *labels = parse("{\"a\":\"b\"}");
	kc_selector_t *s = NULL;
	char msg[256];
	json_t *empty = json_object();
	assert_int_equal(kc_selector_from_json(empty, &s, msg, sizeof(msg)), 0);
	assert_true(kc_selector_matches(s, labels));
	assert_true(kc_selector_matches(s, NULL));
	kc_selector_free(s);
	json_decref(empty);
	assert_int_equal(kc_selector_from_json(NULL, &s, msg, sizeof(msg)), 0);
	assert_false(kc_selector_matches(s, labels));
	kc_selector_free(s);
	json_decref(labels);
}

static void test_from_json_errors(void **state)
{
	(void)state;
	static const struct {
		const char *sel, *msg;
	} cases[] = {
		{"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Foo\",\"values\":[\"x\"]}]}",
		 "\"Foo\" is not a valid label selector operator"},
		{"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[]}]}",
		 "values: Required value: must be specified when `operator` is 'In' or 'NotIn'"},
		{"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}"
		 "]}",
		 "values: Forbidden: may not be specified when `operator` is 'Exists' or "
		 "'DoesNotExist'"},
		{"{\"matchLabels\":{\"a\":1}}", "matchLabels: the value of \"a\" must be a string"},
		{"{\"matchLabels\":{\"a\":\"-x\"}}", "invalid label value: \"-x\""},
		{"{\"matchExpressions\":{}}", "matchExpressions must be a list"},
		{"[]", "a label selector must be a map"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *sel = parse(cases[i].sel);
		kc_selector_t *s = NULL;
		char msg[256] = "";
		assert_int_equal(kc_selector_from_json(sel, &s, msg, sizeof(msg)), -1);
		if (strcmp(msg, cases[i].msg) != 0)
			fail_msg("%s:\n got: %s\nwant: %s", cases[i].sel, msg, cases[i].msg);
		assert_null(s);
		json_decref(sel);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_matches_each_operator),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_string_form_is_sorted_like_kubernetes),
		cmocka_unit_test(test_from_json_with_match_expressions),
		cmocka_unit_test(test_from_json_empty_matches_all_and_null_nothing),
		cmocka_unit_test(test_from_json_errors),
	};
	return cmocka_run_group_tests_name("cluster_selector", tests, NULL, NULL);
}
