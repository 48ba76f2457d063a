/* cluster/selector.c — label selectors: kubectl's -l text and LabelSelector objects parsed into
 * one list of requirements, matched against a labels map, and printed back. Never keeps a
 * reference to the JSON it was built from. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

typedef enum sel_op {
	SEL_EQ,
	SEL_NEQ,
	SEL_IN,
	SEL_NOTIN,
	SEL_EXISTS,
	SEL_NOTEXISTS,
} sel_op_t;

typedef struct sel_req {
	char *key;
	sel_op_t op;
	char **values; /* sorted */
	size_t nvalues;
	size_t order; /* position as written: keeps the sort by key stable */
} sel_req_t;

struct kc_selector {
	sel_req_t *reqs;
	size_t n, cap;
	bool nothing; /* a null LabelSelector: matches no object, as in Kubernetes */
};

static int fail(char *msg, size_t n, const char *fmt, const char *a, const char *b)
{
	if (msg && n)
		snprintf(msg, n, fmt, a, b);
	return -1;
}

static void req_clear(sel_req_t *r)
{
	free(r->key);
	for (size_t i = 0; i < r->nvalues; i++)
		free(r->values[i]);
	free(r->values);
}

void kc_selector_free(kc_selector_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		req_clear(&s->reqs[i]);
	free(s->reqs);
	free(s);
}

static sel_req_t *sel_add(kc_selector_t *s, const char *key, size_t klen, sel_op_t op)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		sel_req_t *r = realloc(s->reqs, cap * sizeof(*r));
		if (!r)
			return NULL;
		s->reqs = r;
		s->cap = cap;
	}
	sel_req_t *r = &s->reqs[s->n];
	memset(r, 0, sizeof(*r));
	r->key = strndup(key, klen);
	if (!r->key)
		return NULL;
	r->op = op;
	r->order = s->n++;
	return r;
}

static int req_add_value(sel_req_t *r, const char *v, size_t len)
{
	char **vals = realloc(r->values, (r->nvalues + 1) * sizeof(*vals));
	if (!vals)
		return -1;
	r->values = vals;
	if (!(vals[r->nvalues] = strndup(v, len)))
		return -1;
	r->nvalues++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_req(const void *a, const void *b)
{
	const sel_req_t *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Kubernetes keeps requirements sorted by key and set values sorted. */
static void sel_finish(kc_selector_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->reqs[i].nvalues > 1)
			qsort(s->reqs[i].values, s->reqs[i].nvalues, sizeof(char *), cmp_str);
	if (s->n > 1)
		qsort(s->reqs, s->n, sizeof(sel_req_t), cmp_req);
}

/* ---- label key and value checks (Kubernetes' qualified name and label value) -------------- */

static bool is_alnum(char c)
{
	return isalnum((unsigned char)c);
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters; empty allowed if may_empty. */
static bool label_value_ok(const char *v, size_t len, bool may_empty)
{
	if (len == 0)
		return may_empty;
	if (len > 63 || !is_alnum(v[0]) || !is_alnum(v[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(v[i]) && v[i] != '-' && v[i] != '_' && v[i] != '.')
			return false;
	return true;
}

static bool dns_subdomain_ok(const char *v, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		bool edge = i == 0 || i == len - 1 || v[i - 1] == '.' || v[i + 1] == '.';
		if (c == '.' && !edge)
			continue;
		if (islower((unsigned char)c) || isdigit((unsigned char)c))
			continue;
		if (c == '-' && !edge)
			continue;
		return false;
	}
	return true;
}

static bool label_key_ok(const char *k, size_t len)
{
	const char *slash = memchr(k, '/', len);
	if (!slash)
		return label_value_ok(k, len, false);
	size_t plen = (size_t)(slash - k);
	return dns_subdomain_ok(k, plen) && label_value_ok(slash + 1, len - plen - 1, false);
}

/* ---- kubectl's -l syntax ------------------------------------------------------------------- */

typedef struct lexer {
	const char *p;
	char *msg;
	size_t n;
} lexer_t;

static void skip_space(lexer_t *lx)
{
	while (isspace((unsigned char)*lx->p))
		lx->p++;
}

/* A key or value: everything up to a delimiter. */
static size_t word_len(const char *p)
{
	size_t i = 0;
	while (p[i] && !isspace((unsigned char)p[i]) && !strchr("=!(),", p[i]))
		i++;
	return i;
}

/* "found 'x', expected: ..." naming the one token at p, as Kubernetes' lexer does. */
static int fail_found(lexer_t *lx, const char *p, const char *expected)
{
	size_t len = word_len(p);
	if (len == 0 && *p)
		len = (strncmp(p, "!=", 2) == 0 || strncmp(p, "==", 2) == 0) ? 2 : 1;
	if (lx->msg && lx->n)
		snprintf(lx->msg, lx->n, "unable to parse requirement: found '%.*s', expected: %s",
			 (int)len, p, expected);
	return -1;
}

static bool word_is(const char *p, size_t len, const char *w)
{
	return strlen(w) == len && strncmp(p, w, len) == 0;
}

static int parse_value_set(lexer_t *lx, sel_req_t *r)
{
	skip_space(lx);
	if (*lx->p != '(')
		return fail_found(lx, lx->p, "'('");
	lx->p++;
	for (;;) {
		skip_space(lx);
		size_t len = word_len(lx->p);
		if (len == 0 && *lx->p == ')' && r->nvalues == 0)
			return fail(lx->msg, lx->n,
				    "unable to parse requirement: for 'in', 'notin' "
				    "operators, values set can't be empty",
				    NULL, NULL);
		if (!label_value_ok(lx->p, len, true)) {
			if (lx->msg && lx->n)
				snprintf(lx->msg, lx->n,
					 "unable to parse requirement: invalid label "
					 "value: \"%.*s\"",
					 (int)len, lx->p);
			return -1;
		}
		if (req_add_value(r, lx->p, len) != 0)
			return fail(lx->msg, lx->n, "out of memory", NULL, NULL);
		lx->p += len;
		skip_space(lx);
		if (*lx->p == ',') {
			lx->p++;
			continue;
		}
		if (*lx->p == ')') {
			lx->p++;
			return 0;
		}
		return fail_found(lx, lx->p, "',', ')'");
	}
}

static int bad_key(lexer_t *lx, const char *key, size_t len)
{
	if (lx->msg && lx->n)
		snprintf(lx->msg, lx->n,
			 "unable to parse requirement: invalid label key \"%.*s\": "
			 "name part must consist of alphanumeric characters, '-', '_' "
			 "or '.', and must start and end with an alphanumeric character",
			 (int)len, key);
	return -1;
}

static int parse_requirement(lexer_t *lx, kc_selector_t *s)
{
	skip_space(lx);
	bool negated = false;
	if (*lx->p == '!') {
		negated = true;
		lx->p++;
		skip_space(lx);
	}
	const char *key = lx->p;
	size_t klen = word_len(key);
	if (klen == 0)
		return fail_found(lx, key, "identifier");
	if (!label_key_ok(key, klen))
		return bad_key(lx, key, klen);
	lx->p += klen;
	skip_space(lx);
	if (negated || *lx->p == '\0' || *lx->p == ',') {
		if (!sel_add(s, key, klen, negated ? SEL_NOTEXISTS : SEL_EXISTS))
			return fail(lx->msg, lx->n, "out of memory", NULL, NULL);
		return 0;
	}
	sel_op_t op;
	size_t wl = word_len(lx->p);
	if (word_is(lx->p, wl, "in") || word_is(lx->p, wl, "notin")) {
		op = wl == 2 ? SEL_IN : SEL_NOTIN;
		lx->p += wl;
		sel_req_t *r = sel_add(s, key, klen, op);
		if (!r)
			return fail(lx->msg, lx->n, "out of memory", NULL, NULL);
		return parse_value_set(lx, r);
	}
	if (strncmp(lx->p, "==", 2) == 0 || strncmp(lx->p, "!=", 2) == 0) {
		op = *lx->p == '!' ? SEL_NEQ : SEL_EQ;
		lx->p += 2;
	} else if (*lx->p == '=') {
		op = SEL_EQ;
		lx->p++;
	} else {
		return fail_found(lx, lx->p, "'=', '!=', '==', 'in', notin'");
	}
	skip_space(lx);
	size_t vlen = word_len(lx->p);
	if (!label_value_ok(lx->p, vlen, true)) {
		if (lx->msg && lx->n)
			snprintf(lx->msg, lx->n,
				 "unable to parse requirement: invalid label value: "
				 "\"%.*s\"",
				 (int)vlen, lx->p);
		return -1;
	}
	sel_req_t *r = sel_add(s, key, klen, op);
	if (!r || req_add_value(r, lx->p, vlen) != 0)
		return fail(lx->msg, lx->n, "out of memory", NULL, NULL);
	lx->p += vlen;
	return 0;
}

int kc_selector_parse(const char *text, kc_selector_t **out, char *msg, size_t n)
{
	kc_selector_t *s = calloc(1, sizeof(*s));
	lexer_t lx = {text ? text : "", msg, n};
	if (!s)
		return fail(msg, n, "out of memory", NULL, NULL);
	skip_space(&lx);
	while (*lx.p) {
		if (parse_requirement(&lx, s) != 0)
			goto bad;
		skip_space(&lx);
		if (*lx.p == ',') {
			lx.p++;
			skip_space(&lx);
			if (*lx.p == '\0') {
				fail(msg, n,
				     "unable to parse requirement: found '', expected: "
				     "identifier",
				     NULL, NULL);
				goto bad;
			}
		} else if (*lx.p) {
			fail_found(&lx, lx.p, "','");
			goto bad;
		}
	}
	sel_finish(s);
	*out = s;
	return 0;
bad:
	kc_selector_free(s);
	return -1;
}

/* ---- LabelSelector objects ----------------------------------------------------------------- */

static int add_match_labels(kc_selector_t *s, const json_t *ml, char *msg, size_t n)
{
	const char *k;
	json_t *v;
	if (ml && !json_is_null(ml) && !json_is_object(ml))
		return fail(msg, n, "matchLabels must be a map of strings", NULL, NULL);
	json_object_foreach((json_t *)ml, k, v) {
		const char *vs = json_string_value(v);
		if (!vs)
			return fail(msg, n, "matchLabels: the value of \"%s\" must be a string", k,
				    NULL);
		if (!label_key_ok(k, strlen(k)))
			return fail(msg, n, "invalid label key \"%s\"", k, NULL);
		if (!label_value_ok(vs, strlen(vs), true))
			return fail(msg, n, "invalid label value: \"%s\"", vs, NULL);
		sel_req_t *r = sel_add(s, k, strlen(k), SEL_EQ);
		if (!r || req_add_value(r, vs, strlen(vs)) != 0)
			return fail(msg, n, "out of memory", NULL, NULL);
	}
	return 0;
}

static int add_expression(kc_selector_t *s, const json_t *e, char *msg, size_t n)
{
	static const struct {
		const char *name;
		sel_op_t op;
		bool values;
	} ops[] = {{"In", SEL_IN, true},
		   {"NotIn", SEL_NOTIN, true},
		   {"Exists", SEL_EXISTS, false},
		   {"DoesNotExist", SEL_NOTEXISTS, false}};
	const char *key = json_string_value(json_object_get(e, "key"));
	const char *opname = json_string_value(json_object_get(e, "operator"));
	json_t *values = json_object_get(e, "values");
	if (!key || !*key)
		return fail(msg, n, "matchExpressions: key: Required value", NULL, NULL);
	if (!label_key_ok(key, strlen(key)))
		return fail(msg, n, "invalid label key \"%s\"", key, NULL);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!opname || strcmp(opname, ops[i].name) != 0)
			continue;
		if (values && !json_is_null(values) && !json_is_array(values))
			return fail(msg, n, "matchExpressions: values must be a list of strings",
				    NULL, NULL);
		if (ops[i].values && json_array_size(values) == 0)
			return fail(msg, n,
				    "values: Required value: must be specified when "
				    "`operator` is 'In' or 'NotIn'",
				    NULL, NULL);
		if (!ops[i].values && json_array_size(values) > 0)
			return fail(msg, n,
				    "values: Forbidden: may not be specified when `operator` "
				    "is 'Exists' or 'DoesNotExist'",
				    NULL, NULL);
		sel_req_t *r = sel_add(s, key, strlen(key), ops[i].op);
		if (!r)
			return fail(msg, n, "out of memory", NULL, NULL);
		size_t j;
		json_t *v;
		json_array_foreach(values, j, v) {
			const char *vs = json_string_value(v);
			if (!vs)
				return fail(msg, n,
					    "matchExpressions: values must be a list of strings",
					    NULL, NULL);
			if (!label_value_ok(vs, strlen(vs), true))
				return fail(msg, n, "invalid label value: \"%s\"", vs, NULL);
			if (req_add_value(r, vs, strlen(vs)) != 0)
				return fail(msg, n, "out of memory", NULL, NULL);
		}
		return 0;
	}
	return fail(msg, n, "\"%s\" is not a valid label selector operator", opname ? opname : "",
		    NULL);
}

int kc_selector_from_json(const json_t *sel, kc_selector_t **out, char *msg, size_t n)
{
	kc_selector_t *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(msg, n, "out of memory", NULL, NULL);
	if (!sel || json_is_null(sel)) {
		s->nothing = true;
		*out = s;
		return 0;
	}
	if (!json_is_object(sel)) {
		fail(msg, n, "a label selector must be a map", NULL, NULL);
		goto bad;
	}
	if (add_match_labels(s, json_object_get(sel, "matchLabels"), msg, n) != 0)
		goto bad;
	json_t *exprs = json_object_get(sel, "matchExpressions");
	if (exprs && !json_is_null(exprs) && !json_is_array(exprs)) {
		fail(msg, n, "matchExpressions must be a list", NULL, NULL);
		goto bad;
	}
	size_t i;
	json_t *e;
	json_array_foreach(exprs, i, e)
		if (add_expression(s, e, msg, n) != 0)
			goto bad;
	sel_finish(s);
	*out = s;
	return 0;
bad:
	kc_selector_free(s);
	return -1;
}

/* ---- matching and printing ----------------------------------------------------------------- */

static bool req_has_value(const sel_req_t *r, const char *v)
{
	for (size_t i = 0; i < r->nvalues; i++)
		if (strcmp(r->values[i], v) == 0)
			return true;
	return false;
}

static bool req_matches(const sel_req_t *r, const json_t *labels)
{
	json_t *lv = json_object_get(labels, r->key);
	const char *v = json_string_value(lv);
	switch (r->op) {
	case SEL_EQ:
	case SEL_IN:
		return v && req_has_value(r, v);
	case SEL_NEQ:
	case SEL_NOTIN:
		return !v || !req_has_value(r, v);
	case SEL_EXISTS:
		return lv != NULL;
	case SEL_NOTEXISTS:
		return lv == NULL;
	}
	return false;
}

bool kc_selector_matches(const kc_selector_t *s, const json_t *labels)
{
	if (!s || s->nothing)
		return false;
	for (size_t i = 0; i < s->n; i++)
		if (!req_matches(&s->reqs[i], labels))
			return false;
	return true;
}

/* A growing string; on out of memory it stays failed and the result is NULL. */
typedef struct strbuf {
	char *s;
	size_t len, cap;
	bool failed;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *t)
{
	size_t l = strlen(t);
	if (b->failed)
		return;
	if (b->len + l + 1 > b->cap) {
		size_t cap = (b->len + l + 1) * 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->failed = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, t, l + 1);
	b->len += l;
}

static void sb_req(strbuf_t *b, const sel_req_t *r)
{
	static const char *const opnames[] = {"=", "!=", " in ", " notin ", "", ""};
	if (r->op == SEL_NOTEXISTS)
		sb_add(b, "!");
	sb_add(b, r->key);
	sb_add(b, opnames[r->op]);
	if (r->op == SEL_IN || r->op == SEL_NOTIN) {
		sb_add(b, "(");
		for (size_t i = 0; i < r->nvalues; i++) {
			if (i)
				sb_add(b, ",");
			sb_add(b, r->values[i]);
		}
		sb_add(b, ")");
	} else if (r->op == SEL_EQ || r->op == SEL_NEQ) {
		sb_add(b, r->nvalues ? r->values[0] : "");
	}
}

char *kc_selector_string(const kc_selector_t *s)
{
	strbuf_t b = {0};
	sb_add(&b, "");
	for (size_t i = 0; s && i < s->n; i++) {
		if (i)
			sb_add(&b, ",");
		sb_req(&b, &s->reqs[i]);
	}
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
