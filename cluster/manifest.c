/* cluster/manifest.c — manifests in (YAML through libyaml's event parser, or JSON through
 * jansson) and YAML out in kubectl's block style. Owns the scalar typing rules (YAML 1.2 core
 * schema) used both ways, so that dump then parse gives back an equal value. Never reads files:
 * callers pass the text and a source name for messages. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cluster.h"

/* Anchors may expand an alias many times: a document never needs more nodes than this. */
#define MANIFEST_MAX_NODES 1000000
/* jansson frees and copies values recursively: deeper nesting could overflow the C stack. */
#define MANIFEST_MAX_DEPTH 512

static void set_msg(char *msg, size_t n, const char *fmt, ...)
{
	if (!msg || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, n, fmt, ap);
	va_end(ap);
}

/* ---- the YAML 1.2 core schema for plain scalars -------------------------------------------- */

static bool one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

static bool all_digits(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s)
{
	const char *p = s + (*s == '-' || *s == '+');
	size_t ipart = strspn(p, "0123456789");
	p += ipart;
	size_t fpart = 0;
	if (*p == '.') {
		p++;
		fpart = strspn(p, "0123456789");
		p += fpart;
	}
	if (ipart == 0 && fpart == 0)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		p += *p == '-' || *p == '+';
		size_t e = strspn(p, "0123456789");
		if (e == 0)
			return false;
		p += e;
	}
	return *p == '\0';
}

typedef enum scalar_type {
	SCALAR_STRING,
	SCALAR_NULL,
	SCALAR_BOOL,
	SCALAR_INT,
	SCALAR_FLOAT,
	SCALAR_NONFINITE, /* .inf, .nan: a YAML float that JSON cannot hold */
} scalar_type_t;

static scalar_type_t scalar_resolve(const char *s)
{
	if (one_of(s, null_words))
		return SCALAR_NULL;
	if (one_of(s, true_words) || one_of(s, false_words))
		return SCALAR_BOOL;
	const char *p = s + (*s == '-' || *s == '+');
	if (all_digits(p, "0123456789"))
		return SCALAR_INT;
	if ((strncmp(s, "0x", 2) == 0 && all_digits(s + 2, "0123456789abcdefABCDEF")) ||
	    (strncmp(s, "0o", 2) == 0 && all_digits(s + 2, "01234567")))
		return SCALAR_INT;
	if (is_core_float(s))
		return SCALAR_FLOAT;
	if (one_of(p, inf_words) || one_of(s, nan_words))
		return SCALAR_NONFINITE;
	return SCALAR_STRING;
}

static json_t *scalar_int(const char *s)
{
	int base = 10;
	const char *digits = s;
	if (strncmp(s, "0x", 2) == 0) {
		base = 16;
		digits = s + 2;
	} else if (strncmp(s, "0o", 2) == 0) {
		base = 8;
		digits = s + 2;
	}
	errno = 0;
	char *end;
	long long v = strtoll(digits, &end, base);
	if (errno == ERANGE)
		return json_real(strtod(s, NULL)); /* beyond int64: a number all the same */
	return json_integer(v);
}

/* The JSON value of a plain scalar; NULL (with *nonfinite) for .inf and .nan. */
static json_t *scalar_plain(const char *s, bool *nonfinite)
{
	*nonfinite = false;
	switch (scalar_resolve(s)) {
	case SCALAR_NULL:
		return json_null();
	case SCALAR_BOOL:
		return json_boolean(one_of(s, true_words));
	case SCALAR_INT:
		return scalar_int(s);
	case SCALAR_FLOAT:
		return json_real(strtod(s, NULL));
	case SCALAR_NONFINITE:
		*nonfinite = true;
		return NULL;
	case SCALAR_STRING:
		break;
	}
	return json_string(s);
}

/* ---- YAML events to JSON ------------------------------------------------------------------- */

typedef struct frame {
	json_t *node; /* object or array being filled */
	char *key;    /* an object's key waiting for its value */
	size_t key_line;
	json_t *merged;    /* members from "<<: *base": a mapping's own keys win over them */
	bool key_is_merge; /* the waiting key is a plain << (a quoted one is just a key) */
} frame_t;

typedef struct anchor {
	char *name;
	json_t *node;
} anchor_t;

typedef struct yconv {
	const char *source;
	char *msg;
	size_t n;
	frame_t *stack;
	size_t depth, cap;
	anchor_t *anchors;
	size_t nanchors, anchors_cap;
	json_t *root;
	bool have_root;
	size_t root_line; /* where the document's value starts, for messages about it */
	size_t nodes;
} yconv_t;

static int yfail(yconv_t *c, const yaml_mark_t *mark, const char *fmt, ...)
{
	if (!c->msg || !c->n)
		return -1;
	int off = snprintf(c->msg, c->n, "%s:%zu: ", c->source, mark->line + 1);
	if (off < 0 || (size_t)off >= c->n)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg + off, c->n - (size_t)off, fmt, ap);
	va_end(ap);
	return -1;
}

static void anchors_clear(yconv_t *c)
{
	for (size_t i = 0; i < c->nanchors; i++) {
		free(c->anchors[i].name);
		json_decref(c->anchors[i].node);
	}
	c->nanchors = 0;
}

static int anchor_add(yconv_t *c, const yaml_char_t *name, json_t *node)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < c->nanchors; i++) {
		if (strcmp(c->anchors[i].name, (const char *)name) == 0) {
			/* a redefined anchor: later aliases see the new node */
			json_decref(c->anchors[i].node);
			c->anchors[i].node = json_incref(node);
			return 0;
		}
	}
	if (c->nanchors == c->anchors_cap) {
		size_t cap = c->anchors_cap ? c->anchors_cap * 2 : 8;
		anchor_t *a = realloc(c->anchors, cap * sizeof(*a));
		if (!a)
			return -1;
		c->anchors = a;
		c->anchors_cap = cap;
	}
	char *dup = strdup((const char *)name);
	if (!dup)
		return -1;
	c->anchors[c->nanchors].name = dup;
	c->anchors[c->nanchors++].node = json_incref(node);
	return 0;
}

static size_t json_count(const json_t *v, size_t limit)
{
	size_t total = 1;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x) {
			total += json_count(x, limit);
			if (total > limit)
				return total;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			total += json_count(x, limit);
			if (total > limit)
				return total;
		}
	}
	return total;
}

/* "<<: *base" merges base's keys that the mapping does not set itself. */
static int merge_into(json_t *obj, json_t *src)
{
	const char *k;
	json_t *v;
	if (json_is_array(src)) {
		size_t i;
		json_t *x;
		json_array_foreach(src, i, x)
			if (!json_is_object(x) || merge_into(obj, x) != 0)
				return -1;
		return 0;
	}
	if (!json_is_object(src))
		return -1;
	json_object_foreach(src, k, v)
		if (!json_object_get(obj, k) && json_object_set(obj, k, v) != 0)
			return -1;
	return 0;
}

/* Places a finished value (stolen) where the stack says: root, array item or object member. */
static int place(yconv_t *c, json_t *v, const yaml_mark_t *mark)
{
	if (!v)
		return yfail(c, mark, "out of memory");
	if (++c->nodes > MANIFEST_MAX_NODES) {
		json_decref(v);
		return yfail(c, mark, "document too large (more than %d nodes)",
			     MANIFEST_MAX_NODES);
	}
	if (c->depth == 0) {
		if (!json_is_object(v) && !json_is_array(v))
			c->root_line = mark->line + 1;
		c->root = v;
		c->have_root = true;
		return 0;
	}
	frame_t *f = &c->stack[c->depth - 1];
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) == 0 ? 0 : yfail(c, mark, "out of memory");
	if (!f->key) {
		/* a mapping key: only scalars name JSON members */
		const char *s = json_string_value(v);
		char buf[64];
		if (!s && (json_is_integer(v) || json_is_real(v) || json_is_boolean(v))) {
			char *d = json_dumps(v, JSON_ENCODE_ANY);
			snprintf(buf, sizeof(buf), "%s", d ? d : "");
			free(d);
			s = buf;
		} else if (json_is_null(v)) {
			s = "null";
		}
		if (!s) {
			json_decref(v);
			return yfail(c, mark, "mapping keys must be scalars");
		}
		f->key = strdup(s);
		f->key_line = mark->line;
		json_decref(v);
		return f->key ? 0 : yfail(c, mark, "out of memory");
	}
	char *key = f->key;
	bool merge = f->key_is_merge;
	f->key = NULL;
	f->key_is_merge = false;
	int r = 0;
	if (merge) {
		if (!f->merged)
			f->merged = json_object();
		if (!f->merged || merge_into(f->merged, v) != 0)
			r = yfail(c, mark,
				  "map merge requires map or sequence of maps as the value");
		json_decref(v);
	} else if (json_object_get(f->node, key)) {
		yaml_mark_t km = {0, f->key_line, 0};
		json_decref(v);
		r = yfail(c, &km, "mapping key \"%s\" already defined", key);
	} else if (json_object_set_new(f->node, key, v) != 0) {
		r = yfail(c, mark, "out of memory");
	}
	free(key);
	return r;
}

static int push(yconv_t *c, json_t *node, const yaml_char_t *anchor, const yaml_mark_t *mark)
{
	if (!node)
		return yfail(c, mark, "out of memory");
	if (c->depth > 0 && json_is_object(c->stack[c->depth - 1].node) &&
	    !c->stack[c->depth - 1].key) {
		json_decref(node);
		return yfail(c, mark, "mapping keys must be scalars");
	}
	if (c->depth == 0)
		c->root_line = mark->line + 1;
	if (c->depth >= MANIFEST_MAX_DEPTH) {
		json_decref(node);
		return yfail(c, mark, "nesting deeper than %d levels", MANIFEST_MAX_DEPTH);
	}
	if (c->depth == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		frame_t *s = realloc(c->stack, cap * sizeof(*s));
		if (!s) {
			json_decref(node);
			return yfail(c, mark, "out of memory");
		}
		c->stack = s;
		c->cap = cap;
	}
	c->stack[c->depth++] = (frame_t){node, NULL, 0, NULL, false};
	return anchor_add(c, anchor, node) == 0 ? 0 : yfail(c, mark, "out of memory");
}

static int pop(yconv_t *c, const yaml_mark_t *mark)
{
	frame_t f = c->stack[--c->depth];
	free(f.key);
	if (f.merged) {
		int r = merge_into(f.node, f.merged);
		json_decref(f.merged);
		if (r != 0) {
			json_decref(f.node);
			return yfail(c, mark, "out of memory");
		}
	}
	return place(c, f.node, mark);
}

static const char *tag_of(const yaml_event_t *ev)
{
	const yaml_char_t *t = ev->data.scalar.tag;
	return t ? (const char *)t : "";
}

static json_t *scalar_tagged(yconv_t *c, const yaml_event_t *ev, const char *s, int *err)
{
	const char *tag = tag_of(ev);
	bool nonfinite = false;
	json_t *v;
	*err = 0;
	if (strcmp(tag, YAML_STR_TAG) == 0 || (!*tag && !ev->data.scalar.plain_implicit))
		return json_string(s);
	if (*tag && strcmp(tag, "!") == 0)
		return json_string(s);
	v = scalar_plain(s, &nonfinite);
	if (nonfinite) {
		*err = yfail(c, &ev->start_mark, "%s cannot be represented in JSON", s);
		return NULL;
	}
	if (*tag && strcmp(tag, YAML_NULL_TAG) != 0 && strcmp(tag, YAML_BOOL_TAG) != 0 &&
	    strcmp(tag, YAML_INT_TAG) != 0 && strcmp(tag, YAML_FLOAT_TAG) != 0)
		return v; /* an unknown local tag: the value as if untagged */
	if ((strcmp(tag, YAML_INT_TAG) == 0 && !json_is_integer(v)) ||
	    (strcmp(tag, YAML_FLOAT_TAG) == 0 && !json_is_number(v)) ||
	    (strcmp(tag, YAML_BOOL_TAG) == 0 && !json_is_boolean(v)) ||
	    (strcmp(tag, YAML_NULL_TAG) == 0 && !json_is_null(v))) {
		json_decref(v);
		*err = yfail(c, &ev->start_mark, "cannot decode \"%s\" as %s", s, tag);
		return NULL;
	}
	if (strcmp(tag, YAML_FLOAT_TAG) == 0 && json_is_integer(v)) {
		json_t *r = json_real((double)json_integer_value(v));
		json_decref(v);
		return r;
	}
	return v;
}

static int on_scalar(yconv_t *c, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	if (strlen(s) != ev->data.scalar.length)
		return yfail(c, &ev->start_mark, "NUL character in a scalar");
	bool is_key = c->depth > 0 && json_is_object(c->stack[c->depth - 1].node) &&
		      !c->stack[c->depth - 1].key;
	json_t *v;
	int err = 0;
	if (is_key) {
		v = json_string(s);
		c->stack[c->depth - 1].key_is_merge =
			ev->data.scalar.plain_implicit && strcmp(s, "<<") == 0;
	} else
		v = scalar_tagged(c, ev, s, &err);
	if (err)
		return -1;
	if (v && ev->data.scalar.anchor && anchor_add(c, ev->data.scalar.anchor, v) != 0) {
		json_decref(v);
		return yfail(c, &ev->start_mark, "out of memory");
	}
	return place(c, v, &ev->start_mark);
}

static int on_alias(yconv_t *c, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	for (size_t i = c->nanchors; i-- > 0;) {
		if (strcmp(c->anchors[i].name, name) != 0)
			continue;
		size_t count = json_count(c->anchors[i].node, MANIFEST_MAX_NODES);
		if (c->nodes + count > MANIFEST_MAX_NODES)
			return yfail(c, &ev->start_mark, "document too large (more than %d nodes)",
				     MANIFEST_MAX_NODES);
		c->nodes += count - 1;
		/* a copy: changing one place of the result must not change the other */
		return place(c, json_deep_copy(c->anchors[i].node), &ev->start_mark);
	}
	return yfail(c, &ev->start_mark, "unknown anchor '%s' referenced", name);
}

static void yconv_reset(yconv_t *c)
{
	while (c->depth > 0) {
		frame_t *f = &c->stack[--c->depth];
		free(f->key);
		json_decref(f->merged);
		json_decref(f->node);
	}
	anchors_clear(c);
	json_decref(c->root);
	c->root = NULL;
	c->have_root = false;
	c->nodes = 0;
}

/* ---- documents ----------------------------------------------------------------------------- */

static bool is_list(const json_t *doc)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	size_t len = kind ? strlen(kind) : 0;
	return len >= 4 && strcmp(kind + len - 4, "List") == 0 &&
	       json_is_array(json_object_get(doc, "items"));
}

/* Appends one document (stolen) to docs: a map, or a List whose items are maps. */
static int add_doc(json_t *docs, json_t *doc, const char *source, size_t line, char *msg, size_t n)
{
	int r = 0;
	if (json_is_null(doc)) {
		json_decref(doc);
		return 0; /* an empty document, as between two --- */
	}
	if (!json_is_object(doc)) {
		set_msg(msg, n, "%s:%zu: a manifest document must be a map, not a %s", source, line,
			json_is_array(doc) ? "list" : "scalar");
		json_decref(doc);
		return -1;
	}
	if (!is_list(doc))
		return json_array_append_new(docs, doc) == 0 ? 0 : -1;
	size_t i;
	json_t *item;
	json_array_foreach(json_object_get(doc, "items"), i, item) {
		if (!json_is_object(item)) {
			set_msg(msg, n, "%s:%zu: items[%zu] of the List is not a map", source, line,
				i);
			r = -1;
			break;
		}
		if (json_array_append(docs, item) != 0) {
			r = -1;
			break;
		}
	}
	json_decref(doc);
	return r;
}

static int yaml_event_step(yconv_t *c, yaml_event_t *ev, json_t *docs)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		yconv_reset(c);
		return 0;
	case YAML_DOCUMENT_END_EVENT: {
		int r = 0;
		if (c->have_root) {
			r = add_doc(docs, c->root, c->source, c->root_line, c->msg, c->n);
			c->root = NULL;
			c->have_root = false;
		}
		anchors_clear(c);
		return r;
	}
	case YAML_MAPPING_START_EVENT:
		return push(c, json_object(), ev->data.mapping_start.anchor, &ev->start_mark);
	case YAML_SEQUENCE_START_EVENT:
		return push(c, json_array(), ev->data.sequence_start.anchor, &ev->start_mark);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		return pop(c, &ev->start_mark);
	case YAML_SCALAR_EVENT:
		return on_scalar(c, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(c, ev);
	default:
		return 0;
	}
}

static int parse_yaml(const char *text, size_t len, const char *source, json_t *docs, char *msg,
		      size_t n)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	yconv_t c = {.source = source, .msg = msg, .n = n};
	int r = 0;
	if (!yaml_parser_initialize(&parser)) {
		set_msg(msg, n, "%s: out of memory", source);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&parser, &ev)) {
			size_t line = parser.problem_mark.line + 1;
			if (parser.context)
				set_msg(msg, n, "%s:%zu: %s %s", source, line, parser.problem,
					parser.context);
			else
				set_msg(msg, n, "%s:%zu: %s", source, line,
					parser.problem ? parser.problem : "invalid YAML");
			r = -1;
			break;
		}
		bool end = ev.type == YAML_STREAM_END_EVENT;
		r = yaml_event_step(&c, &ev, docs);
		yaml_event_delete(&ev);
		if (r != 0 || end)
			break;
	}
	yconv_reset(&c);
	free(c.stack);
	free(c.anchors);
	yaml_parser_delete(&parser);
	return r;
}

/* JSON values one after another (a top-level array is a list of documents). */
static int parse_json(const char *text, size_t len, const char *source, json_t *docs, char *msg,
		      size_t n)
{
	size_t pos = 0, line = 1;
	for (;;) {
		while (pos < len && isspace((unsigned char)text[pos])) {
			line += text[pos] == '\n';
			pos++;
		}
		if (pos >= len)
			return 0;
		json_error_t err;
		json_t *v = json_loadb(text + pos, len - pos, JSON_DISABLE_EOF_CHECK, &err);
		if (!v) {
			set_msg(msg, n, "%s:%zu: %s", source,
				line + (size_t)(err.line > 0 ? err.line - 1 : 0), err.text);
			return -1;
		}
		size_t used = (size_t)err.position;
		if (used == 0 || used > len - pos)
			used = len - pos;
		size_t start_line = line;
		for (size_t i = 0; i < used; i++)
			line += text[pos + i] == '\n';
		pos += used;
		if (json_is_array(v)) {
			size_t i;
			json_t *item;
			json_array_foreach(v, i, item) {
				if (add_doc(docs, json_incref(item), source, start_line, msg, n) !=
				    0) {
					json_decref(v);
					return -1;
				}
			}
			json_decref(v);
		} else if (add_doc(docs, v, source, start_line, msg, n) != 0) {
			return -1;
		}
	}
}

int kc_manifest_parse(const char *text, size_t len, const char *source, json_t **docs, char *msg,
		      size_t n)
{
	if (!source)
		source = "<stdin>";
	*docs = NULL;
	json_t *out = json_array();
	if (!out || (!text && len)) {
		json_decref(out);
		set_msg(msg, n, "%s: out of memory", source);
		return -1;
	}
	size_t i = 0;
	while (i < len && isspace((unsigned char)text[i]))
		i++;
	int r;
	if (i < len && (text[i] == '{' || text[i] == '['))
		r = parse_json(text, len, source, out, msg, n);
	else
		r = parse_yaml(text ? text : "", len, source, out, msg, n);
	if (r != 0) {
		json_decref(out);
		return -1;
	}
	*docs = out;
	return 0;
}

/* ---- YAML out ------------------------------------------------------------------------------ */

typedef struct ybuf {
	char *s;
	size_t len, cap;
	bool failed;
} ybuf_t;

static void yb_addn(ybuf_t *b, const char *t, size_t l)
{
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
	memcpy(b->s + b->len, t, l);
	b->len += l;
	b->s[b->len] = '\0';
}

static void yb_add(ybuf_t *b, const char *t)
{
	yb_addn(b, t, strlen(t));
}

static void yb_indent(ybuf_t *b, int indent)
{
	for (int i = 0; i < indent; i++)
		yb_addn(b, " ", 1);
}

/* YAML 1.1 readers (kubectl's) take these as booleans: quote them too. */
static const char *const yaml11_bools[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
					   "N",  "no",  "No",  "NO",  "on",  "On",
					   "ON", "off", "Off", "OFF", NULL};

/* Looks like some YAML version's number (0755, 1_000, 12:30, 0b101): quoted to be safe. */
static bool numberish(const char *s)
{
	const char *p = s + (*s == '-' || *s == '+' || *s == '.');
	return isdigit((unsigned char)*p) &&
	       strspn(s, "0123456789_:.+-eEoOxXbBabcdefABCDEF") == strlen(s);
}

static bool needs_double_quotes(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* A plain scalar that some YAML reader would take for a number, boolean, null or merge key:
 * kubectl (go-yaml) double-quotes these ("2", "", "yes"). */
static bool reads_as_other_type(const char *s)
{
	return *s == '\0' || scalar_resolve(s) != SCALAR_STRING || one_of(s, yaml11_bools) ||
	       numberish(s) || strcmp(s, "<<") == 0;
}

/* What YAML allows unquoted in block context (libyaml's emitter rules). */
static bool plain_ok(const char *s)
{
	size_t len = strlen(s);
	if (strchr("#,[]{}&*!|>'\"%@` ", s[0]) || s[len - 1] == ' ' || s[len - 1] == ':')
		return false;
	if (strchr("-?:", s[0]) && (len == 1 || s[1] == ' '))
		return false;
	return !strstr(s, ": ") && !strstr(s, " #") && strncmp(s, "---", 3) != 0 &&
	       strncmp(s, "...", 3) != 0;
}

static void dump_double_quoted(ybuf_t *b, const char *s)
{
	yb_add(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		switch (*p) {
		case '"':
			yb_add(b, "\\\"");
			break;
		case '\\':
			yb_add(b, "\\\\");
			break;
		case '\n':
			yb_add(b, "\\n");
			break;
		case '\t':
			yb_add(b, "\\t");
			break;
		case '\r':
			yb_add(b, "\\r");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				yb_add(b, esc);
			} else {
				yb_addn(b, (const char *)p, 1);
			}
		}
	}
	yb_add(b, "\"");
}

/* Multi-line text prints as a literal block ("|" or "|-") the way kubectl shows it, when
 * that reads back exactly: no other control characters, no leading blank, no trailing spaces
 * on a line, at most one final newline. Anything else is double-quoted. */
static bool literal_ok(const char *s)
{
	size_t len = strlen(s);
	if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n' ||
	    (len >= 2 && s[len - 1] == '\n' && s[len - 2] == '\n'))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			return false;
		if (*p == ' ' && (p[1] == '\n' || p[1] == '\0'))
			return false;
	}
	return true;
}

static void dump_literal(ybuf_t *b, const char *s, int indent)
{
	size_t len = strlen(s);
	bool final_newline = s[len - 1] == '\n';
	yb_add(b, final_newline ? "|" : "|-");
	const char *p = s, *end = s + len - (final_newline ? 1 : 0);
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		yb_add(b, "\n");
		if (l > 0) {
			yb_indent(b, indent);
			yb_addn(b, p, l);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* block_indent: the column of a literal block's lines; < 0 where only one line fits (keys). */
static void dump_string(ybuf_t *b, const char *s, int block_indent)
{
	if (block_indent >= 0 && literal_ok(s)) {
		dump_literal(b, s, block_indent);
	} else if (needs_double_quotes(s) || reads_as_other_type(s)) {
		dump_double_quoted(b, s);
	} else if (plain_ok(s)) {
		yb_add(b, s);
	} else {
		yb_add(b, "'");
		for (const char *p = s; *p; p++)
			yb_addn(b, *p == '\'' ? "''" : p, *p == '\'' ? 2 : 1);
		yb_add(b, "'");
	}
}

/* The shortest text that reads back as the same double, always with a '.' or an exponent. */
static void dump_real(ybuf_t *b, double d)
{
	char buf[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, "eE") && fabs(d) < 1e16 && d == floor(d))
		snprintf(buf, sizeof(buf), "%.1f", d);
	if (!strpbrk(buf, ".eEn"))
		strcat(buf, ".0");
	else if (!strchr(buf, '.') && strpbrk(buf, "eE") && scalar_resolve(buf) != SCALAR_FLOAT)
		snprintf(buf, sizeof(buf), "%.17g", d);
	yb_add(b, buf);
}

static void dump_scalar(ybuf_t *b, const json_t *v, int indent)
{
	char buf[32];
	switch (json_typeof(v)) {
	case JSON_STRING:
		dump_string(b, json_string_value(v), indent + 2);
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		yb_add(b, buf);
		break;
	case JSON_REAL:
		dump_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		yb_add(b, "true");
		break;
	case JSON_FALSE:
		yb_add(b, "false");
		break;
	default:
		yb_add(b, "null");
		break;
	}
}

static bool is_empty_container(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

static void dump_node(ybuf_t *b, const json_t *v, int indent);

/* A container's members, the first line already started at column `indent`
 * (first_inline: the caller wrote "- " and the first member continues that line). */
static void dump_object(ybuf_t *b, const json_t *v, int indent, bool first_inline)
{
	const char *k;
	json_t *x;
	bool first = true;
	json_object_foreach((json_t *)v, k, x) {
		if (!(first && first_inline))
			yb_indent(b, indent);
		first = false;
		dump_string(b, k, -1);
		yb_add(b, ":");
		if (is_empty_container(x) || (!json_is_object(x) && !json_is_array(x))) {
			yb_add(b, " ");
			dump_node(b, x, indent);
			yb_add(b, "\n");
		} else if (json_is_object(x)) {
			yb_add(b, "\n");
			dump_object(b, x, indent + 2, false);
		} else {
			/* kubectl prints a map's list at the map's own indentation */
			yb_add(b, "\n");
			dump_node(b, x, indent);
		}
	}
}

static void dump_array(ybuf_t *b, const json_t *v, int indent, bool first_inline)
{
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		if (!(i == 0 && first_inline))
			yb_indent(b, indent);
		yb_add(b, "- ");
		if (json_is_object(x) && json_object_size(x) > 0) {
			dump_object(b, x, indent + 2, true);
		} else if (json_is_array(x) && json_array_size(x) > 0) {
			dump_array(b, x, indent + 2, true);
		} else {
			dump_node(b, x, indent);
			yb_add(b, "\n");
		}
	}
}

/* A value at column indent: scalars and empty containers inline (no newline), others as
 * block lines that each end in a newline. */
static void dump_node(ybuf_t *b, const json_t *v, int indent)
{
	if (json_is_object(v) && json_object_size(v) > 0)
		dump_object(b, v, indent, false);
	else if (json_is_array(v) && json_array_size(v) > 0)
		dump_array(b, v, indent, false);
	else if (json_is_object(v))
		yb_add(b, "{}");
	else if (json_is_array(v))
		yb_add(b, "[]");
	else
		dump_scalar(b, v, indent);
}

char *kc_yaml_dump(const json_t *v)
{
	ybuf_t b = {0};
	yb_add(&b, "");
	dump_node(&b, v, 0);
	if (!(json_is_object(v) || json_is_array(v)) || is_empty_container(v))
		yb_add(&b, "\n");
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
