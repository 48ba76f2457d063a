/* tests/cluster/objects/test_cluster_manifest.c — manifests: several YAML documents, JSON in a
 * row, List expansion, YAML 1.2 core typing of plain scalars (quoted ones stay strings),
 * anchors and merges, errors naming source and line, and YAML dump then parse giving back an
 * equal value for random objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

static json_t *load(const char *text)
{
	json_t *docs = NULL;
	char msg[512] = "";
	if (kc_manifest_parse(text, strlen(text), "t.yaml", &docs, msg, sizeof(msg)) != 0)
		fail_msg("parse failed: %s", msg);
	return docs;
}

static void assert_json(const json_t *v, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
	assert_non_null(w);
	if (!json_equal(v, w)) {
		char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fail_msg("\n got: %s\nwant: %s", got, want);
	}
	json_decref(w);
}

static void test_yaml_several_documents_and_comments(void **state)
{
	(void)state;
	json_t *docs = load("# a pod and a node\n"
			    "apiVersion: v1\n"
			    "kind: Pod   # trailing comment\n"
			    "metadata:\n"
			    "  name: web\n"
			    "---\n"
			    "---\n"
			    "apiVersion: v1\n"
			    "kind: Node\n"
			    "metadata: {name: n1}\n"
			    "...\n");
	assert_json(docs, "[{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"}"
			  "},"
			  "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}"
			  "]");
	json_decref(docs);
	docs = load("");
	assert_int_equal(json_array_size(docs), 0);
	json_decref(docs);
	docs = load("# nothing\n---\n");
	assert_int_equal(json_array_size(docs), 0);
	json_decref(docs);
}

static void test_plain_scalars_follow_the_core_schema(void **state)
{
	(void)state;
	json_t *docs = load("cpu: 500m\n"
			    "n: 2\n"
			    "q: \"2\"\n"
			    "s: '2'\n"
			    "neg: -3\n"
			    "hex: 0x1F\n"
			    "oct: 0o17\n"
			    "dec0: 010\n"
			    "f: 1.5\n"
			    "e: 1e3\n"
			    "dot: .5\n"
			    "t: true\n"
			    "T: True\n"
			    "fq: \"false\"\n"
			    "yes: yes\n"
			    "off: off\n"
			    "n1: null\n"
			    "n2: ~\n"
			    "n3:\n"
			    "nq: 'null'\n"
			    "ver: 1.2.3\n"
			    "mem: 128Mi\n"
			    "big: 123456789012345678901234567890\n"
			    "lit: |\n"
			    "  a\n"
			    "  b\n"
			    "fold: >-\n"
			    "  a\n"
			    "  b\n"
			    "str: !!str 12\n");
	json_t *d = json_array_get(docs, 0);
	assert_json(json_object_get(d, "cpu"), "\"500m\"");
	assert_true(json_is_integer(json_object_get(d, "n")));
	assert_json(json_object_get(d, "n"), "2");
	assert_json(json_object_get(d, "q"), "\"2\"");
	assert_json(json_object_get(d, "s"), "\"2\"");
	assert_json(json_object_get(d, "neg"), "-3");
	assert_json(json_object_get(d, "hex"), "31");
	assert_json(json_object_get(d, "oct"), "15");
	assert_json(json_object_get(d, "dec0"), "10");
	assert_json(json_object_get(d, "f"), "1.5");
	assert_true(json_is_real(json_object_get(d, "e")));
	assert_json(json_object_get(d, "e"), "1000.0");
	assert_json(json_object_get(d, "dot"), "0.5");
	assert_json(json_object_get(d, "t"), "true");
	assert_json(json_object_get(d, "T"), "true");
	assert_json(json_object_get(d, "fq"), "\"false\"");
	assert_json(json_object_get(d, "yes"), "\"yes\"");
	assert_json(json_object_get(d, "off"), "\"off\"");
	assert_json(json_object_get(d, "n1"), "null");
	assert_json(json_object_get(d, "n2"), "null");
	assert_json(json_object_get(d, "n3"), "null");
	assert_json(json_object_get(d, "nq"), "\"null\"");
	assert_json(json_object_get(d, "ver"), "\"1.2.3\"");
	assert_json(json_object_get(d, "mem"), "\"128Mi\"");
	assert_true(json_is_real(json_object_get(d, "big")));
	assert_json(json_object_get(d, "lit"), "\"a\\nb\\n\"");
	assert_json(json_object_get(d, "fold"), "\"a b\"");
	assert_json(json_object_get(d, "str"), "\"12\"");
	json_decref(docs);
}

static void test_anchors_aliases_and_merge(void **state)
{
	(void)state;
	json_t *docs = load("base: &b\n"
			    "  app: web\n"
			    "  tier: fe\n"
			    "copy: *b\n"
			    "merged:\n"
			    "  <<: *b\n"
			    "  tier: be\n"
			    "name: &n web\n"
			    "again: *n\n"
			    "'<<': quoted\n");
	json_t *d = json_array_get(docs, 0);
	assert_json(json_object_get(d, "copy"), "{\"app\":\"web\",\"tier\":\"fe\"}");
	assert_json(json_object_get(d, "merged"), "{\"app\":\"web\",\"tier\":\"be\"}");
	assert_json(json_object_get(d, "again"), "\"web\"");
	assert_json(json_object_get(d, "<<"), "\"quoted\"");
	/* an alias is a copy: changing it leaves the anchored value alone */
	json_object_set_new(json_object_get(d, "copy"), "app", json_string("db"));
	assert_json(json_object_get(d, "base"), "{\"app\":\"web\",\"tier\":\"fe\"}");
	json_decref(docs);
}

static void test_json_input_one_or_several_values(void **state)
{
	(void)state;
	json_t *docs = load("  {\"kind\":\"Pod\",\"n\":\"2\",\"m\":2}\n{\"kind\":\"Node\"}\n"
			    "[{\"kind\":\"A\"},{\"kind\":\"B\"}]");
	assert_json(docs, "[{\"kind\":\"Pod\",\"n\":\"2\",\"m\":2},{\"kind\":\"Node\"},"
			  "{\"kind\":\"A\"},{\"kind\":\"B\"}]");
	json_decref(docs);
}

static void test_list_items_are_expanded(void **state)
{
	(void)state;
	json_t *docs = load("apiVersion: v1\n"
			    "kind: List\n"
			    "items:\n"
			    "- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n"
			    "- apiVersion: v1\n"
			    "  kind: Pod\n"
			    "  metadata: {name: b}\n"
			    "---\n"
			    "kind: Node\n");
	assert_int_equal(json_array_size(docs), 3);
	assert_string_equal(kc_name(json_array_get(docs, 0)), "a");
	assert_string_equal(kc_name(json_array_get(docs, 1)), "b");
	assert_string_equal(kc_path_str(json_array_get(docs, 2), "kind"), "Node");
	json_decref(docs);
	docs = load("{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"}]}");
	assert_json(docs, "[{\"kind\":\"Pod\"}]");
	json_decref(docs);
}

static void test_bad_input_names_source_and_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"a: b\n  c: d\n", "t.yaml:2: mapping values are not allowed in this context"},
		{"a: 1\nb: [1, 2\nc: 3\n", "t.yaml:3: did not find expected ',' or ']' while "
					   "parsing a flow sequence"},
		{"a: *nope\n", "t.yaml:1: unknown anchor 'nope' referenced"},
		{"a: 1\nb: 2\na: 3\n", "t.yaml:3: mapping key \"a\" already defined"},
		{"- 1\n- 2\n", "t.yaml:1: a manifest document must be a map, not a list"},
		{"kind: Pod\n---\nhello\n", "t.yaml:3: a manifest document must be a map, not a "
					    "scalar"},
		{"x: .inf\n", "t.yaml:1: .inf cannot be represented in JSON"},
		{"x:\n  y: .NaN\n", "t.yaml:2: .NaN cannot be represented in JSON"},
		{"? [a]\n: b\n", "t.yaml:1: mapping keys must be scalars"},
		{"a: \"open\n", "t.yaml:2: found unexpected end of stream while scanning a quoted "
				"scalar"},
		{"kind: List\nitems: [1]\n", "t.yaml:1: items[0] of the List is not a map"},
		{"a: !!int x\n", "t.yaml:1: cannot decode \"x\" as tag:yaml.org,2002:int"},
		{"{\"a\": 1,\n \"b\": }\n", "t.yaml:2: unexpected token near '}'"},
		{"{\"a\":1}\n\n{\"b\":", "t.yaml:3: unexpected token near end of file"},
		{"[1]", "t.yaml:1: a manifest document must be a map, not a scalar"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *docs = (json_t *)1;
		char msg[512] = "";
		if (kc_manifest_parse(cases[i].text, strlen(cases[i].text), "t.yaml", &docs, msg,
				      sizeof(msg)) != -1)
			fail_msg("case %zu parsed", i);
		if (strcmp(msg, cases[i].msg) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, msg, cases[i].msg);
		assert_null(docs);
	}
}

static void test_alias_expansion_is_bounded(void **state)
{
	(void)state;
	/* a billion laughs: each level doubles ten times over */
	char text[2048];
	size_t off =
		(size_t)snprintf(text, sizeof(text), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 9; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
					"a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
					"*a%d, "
					"*a%d, *a%d]\n",
					i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
					i - 1, i - 1, i - 1);
	json_t *docs = NULL;
	char msg[256] = "";
	assert_int_equal(kc_manifest_parse(text, off, "bomb.yaml", &docs, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "document too large"));
}

static void test_deep_nesting_is_refused(void **state)
{
	(void)state;
	size_t depth = 100000;
	char *text = malloc(depth * 2 + 8);
	assert_non_null(text);
	memcpy(text, "a: ", 3);
	memset(text + 3, '[', depth);
	memset(text + 3 + depth, ']', depth);
	json_t *docs = NULL;
	char msg[256] = "";
	assert_int_equal(
		kc_manifest_parse(text, 3 + 2 * depth, "deep.yaml", &docs, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "deep.yaml:1: nesting deeper than 512 levels");
	assert_null(docs);
	/* 500 levels are fine */
	memset(text + 3, '[', 500);
	memset(text + 3 + 500, ']', 500);
	assert_int_equal(kc_manifest_parse(text, 3 + 1000, "deep.yaml", &docs, msg, sizeof(msg)),
			 0);
	char *y = kc_yaml_dump(docs);
	assert_non_null(y);
	free(y);
	json_decref(docs);
	free(text);
}

static void test_dump_prints_kubectl_block_style(void **state)
{
	(void)state;
	json_t *v = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
			       "\"web\","
			       "\"labels\":{}},\"spec\":{\"containers\":[{\"name\":\"main\","
			       "\"command\":[\"sleep\","
			       "\"3600\"],\"env\":[]}],\"tolerations\":[{\"operator\":\"Exists\"}],"
			       "\"terminationGracePeriodSeconds\":30,\"x\":[[1,2],{}],\"ok\":true,"
			       "\"no\":null,"
			       "\"s\":\"yes\",\"e\":\"\",\"f\":1.5,\"m\":\"a\\nb\",\"q\":\"it's: "
			       "x\"}}",
			       0, NULL);
	char *y = kc_yaml_dump(v);
	assert_string_equal(y, "apiVersion: v1\n"
			       "kind: Pod\n"
			       "metadata:\n"
			       "  name: web\n"
			       "  labels: {}\n"
			       "spec:\n"
			       "  containers:\n"
			       "  - name: main\n"
			       "    command:\n"
			       "    - sleep\n"
			       "    - \"3600\"\n"
			       "    env: []\n"
			       "  tolerations:\n"
			       "  - operator: Exists\n"
			       "  terminationGracePeriodSeconds: 30\n"
			       "  x:\n"
			       "  - - 1\n"
			       "    - 2\n"
			       "  - {}\n"
			       "  ok: true\n"
			       "  \"no\": null\n"
			       "  s: \"yes\"\n"
			       "  e: \"\"\n"
			       "  f: 1.5\n"
			       "  m: |-\n"
			       "    a\n"
			       "    b\n"
			       "  q: 'it''s: x'\n");
	free(y);
	json_decref(v);
	/* multi-line text: a literal block when that reads back exactly, else double quotes */
	v = json_loads("{\"l\":[\"one\\n  two\\n\\nend\\n\"],\"k\":\"x \\ny\",\"t\":\"a\\n\\n\"}",
		       0, NULL);
	assert_non_null(v);
	y = kc_yaml_dump(v);
	assert_string_equal(y, "l:\n"
			       "- |\n"
			       "  one\n"
			       "    two\n"
			       "\n"
			       "  end\n"
			       "k: \"x \\ny\"\n"
			       "t: \"a\\n\\n\"\n");
	free(y);
	json_decref(v);
	/* strings that would read as another type: double quotes; special characters: single */
	v = json_loads("[\"-x\",\"- x\",\"-\",\"?x\",\"a: b\",\"#c\",\"a,b[c]{d}\",\"x:\","
		       "\"1.5\",\"0x1F\",\"~\",\"<<\",\"---\",\"a\\tb\"]",
		       0, NULL);
	assert_non_null(v);
	y = kc_yaml_dump(v);
	assert_string_equal(y, "- -x\n- '- x'\n- '-'\n- ?x\n- 'a: b'\n- '#c'\n- a,b[c]{d}\n"
			       "- 'x:'\n- \"1.5\"\n- \"0x1F\"\n- \"~\"\n- \"<<\"\n- '---'\n"
			       "- \"a\\tb\"\n");
	free(y);
	json_decref(v);
	v = json_object();
	y = kc_yaml_dump(v);
	assert_string_equal(y, "{}\n");
	free(y);
	json_decref(v);
	v = json_string("true");
	y = kc_yaml_dump(v);
	assert_string_equal(y, "\"true\"\n");
	free(y);
	json_decref(v);
}

/* ---- dump then parse: random objects ------------------------------------------------------- */

static uint64_t rnd_state;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rnd_state >> 33) % n;
}

/* Pieces chosen to hit every quoting rule. */
static const char *const pieces[] = {
	"a",    "web", "500m", "2",  "0x1F", "1.5",  "1e3",  "true", "False",
	"yes",  "NO",  "null", "~",  "",     " ",    ":",    ": ",   "#",
	" #",   "-",   "- ",   "?",  "'",    "\"",   "\\",   "\n",   "\t",
	"{",    "}",   "[",    "]",  ",",    "&",    "*",    "!",    "|",
	">",    "%",   "@",    "`",  "é",    "<<",   "---",  "...",  ".inf",
	".nan", "0o7", "-.5",  "+1", "1:2",  "0755", "\x01", "\x7f", "kubernetes.io/hostname",
	"=",
};

static char *rnd_string(void)
{
	char buf[256] = "";
	int parts = (int)rnd(4);
	for (int i = 0; i < parts; i++)
		strncat(buf, pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))],
			sizeof(buf) - strlen(buf) - 1);
	return strdup(buf);
}

static json_t *rnd_value(int depth)
{
	switch (rnd(depth > 3 ? 6 : 8)) {
	case 0:
		return json_integer((json_int_t)rnd(2000000) - 1000000);
	case 1: {
		static const double reals[] = {0.5, -1.25, 1e300, 3.0, 1e-7, 0.1, 123456.789, -0.0};
		return json_real(reals[rnd(8)]);
	}
	case 2:
		return json_boolean(rnd(2));
	case 3:
		return json_null();
	case 4:
	case 5: {
		char *s = rnd_string();
		json_t *v = json_string(s);
		free(s);
		return v;
	}
	case 6: {
		json_t *a = json_array();
		for (uint32_t i = 0, n = rnd(4); i < n; i++)
			json_array_append_new(a, rnd_value(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (uint32_t i = 0, n = rnd(5); i < n; i++) {
			char *k = rnd_string();
			json_object_set_new(o, k, rnd_value(depth + 1));
			free(k);
		}
		return o;
	}
	}
}

static void test_dump_then_parse_round_trips(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 2000; seed++) {
		rnd_state = seed;
		json_t *obj = json_object();
		for (uint32_t i = 0, n = 1 + rnd(6); i < n; i++) {
			char *k = rnd_string();
			json_object_set_new(obj, k, rnd_value(0));
			free(k);
		}
		char *y = kc_yaml_dump(obj);
		assert_non_null(y);
		json_t *docs = NULL;
		char msg[512] = "";
		if (kc_manifest_parse(y, strlen(y), "dump", &docs, msg, sizeof(msg)) != 0)
			fail_msg("seed %llu: %s\n%s", (unsigned long long)seed, msg, y);
		if (!json_equal(json_array_get(docs, 0), obj)) {
			char *a = json_dumps(obj, JSON_COMPACT);
			char *b = json_dumps(docs, JSON_COMPACT);
			fail_msg("seed %llu:\n in: %s\nout: %s\nyaml:\n%s",
				 (unsigned long long)seed, a, b, y);
		}
		json_decref(docs);
		free(y);
		json_decref(obj);
	}
}

/* Bad input gets an error and changes nothing: random byte edits of good manifests never crash
 * or leak (the ASan build checks), and a success always yields an array of maps. */
static void test_mutated_input_never_crashes(void **state)
{
	(void)state;
	static const char *const seeds[] = {
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: &l {app: web}\n"
		"spec:\n  containers:\n  - name: main\n    command: [\"sleep\", '1']\n"
		"  nodeSelector: *l\n---\nkind: List\nitems:\n- {kind: Pod}\n",
		"{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"x\":[1,2.5,true,null]}\n"
		"[{\"kind\":\"Node\"}]",
		"a: |\n  text\nb: >-\n  folded\nc: !!str 5\nd: {<<: {x: 1}, y: 2}\n",
	};
	char buf[512];
	rnd_state = 42;
	for (int iter = 0; iter < 3000; iter++) {
		const char *src = seeds[iter % 3];
		size_t len = strlen(src);
		memcpy(buf, src, len);
		for (uint32_t k = 0, edits = 1 + rnd(4); k < edits; k++) {
			static const char junk[] = "{}[]:,-&*!|>'\"#\n \t\\?%@`0aZ\x01\xff<";
			buf[rnd((uint32_t)len)] = junk[rnd(sizeof(junk) - 1)];
		}
		/* a shorter len must bound the parse: no NUL terminator is needed */
		size_t use = rnd(4) == 0 ? rnd((uint32_t)len + 1) : len;
		json_t *docs = NULL;
		char msg[256] = "";
		if (kc_manifest_parse(buf, use, "fuzz", &docs, msg, sizeof(msg)) == 0) {
			size_t i;
			json_t *d;
			json_array_foreach(docs, i, d)
				assert_true(json_is_object(d));
			char *y = kc_yaml_dump(docs);
			assert_non_null(y);
			free(y);
			json_decref(docs);
		} else {
			assert_null(docs);
			assert_int_equal(strncmp(msg, "fuzz:", 5), 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_several_documents_and_comments),
		cmocka_unit_test(test_plain_scalars_follow_the_core_schema),
		cmocka_unit_test(test_anchors_aliases_and_merge),
		cmocka_unit_test(test_json_input_one_or_several_values),
		cmocka_unit_test(test_list_items_are_expanded),
		cmocka_unit_test(test_bad_input_names_source_and_line),
		cmocka_unit_test(test_alias_expansion_is_bounded),
		cmocka_unit_test(test_deep_nesting_is_refused),
		cmocka_unit_test(test_dump_prints_kubectl_block_style),
		cmocka_unit_test(test_dump_then_parse_round_trips),
		cmocka_unit_test(test_mutated_input_never_crashes),
	};
	return cmocka_run_group_tests_name("cluster_manifest", tests, NULL, NULL);
}
