/* cli/ctl_kv.c — etcdctl's get, put, del, txn and compaction on libkeel: argument checks
 * and their messages as etcdctl's, requests built as clientv3 builds them. Printing is
 * print.c's; this file never formats a response itself. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc.pb-c.h"

#include "ctl.h"

static const uint8_t zero_key[1] = {0};

/* A key with its optional range end, owning the prefix-end buffer. */
typedef struct ctl_keyrange {
	const void *key;
	size_t key_len;
	const void *end;
	size_t end_len;
	uint8_t *end_buf;
} ctl_keyrange_t;

/* clientv3's WithPrefix / WithFromKey / WithRange on key (etcdctl's getGetOp rules). */
static void keyrange_build(ctl_t *c, ctl_keyrange_t *kr, const char *key, const char *end,
			   bool prefix, bool from_key)
{
	memset(kr, 0, sizeof(*kr));
	kr->key = key;
	kr->key_len = strlen(key);
	if (end) {
		kr->end = end;
		kr->end_len = strlen(end);
	}
	if (prefix) {
		if (kr->key_len == 0) {
			kr->key = zero_key;
			kr->key_len = 1;
			kr->end = zero_key;
			kr->end_len = 1;
		} else {
			kr->end_buf = malloc(kr->key_len);
			if (!kr->end_buf)
				ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
			kr->end_len = keel_prefix_end(kr->key, kr->key_len, kr->end_buf);
			kr->end = kr->end_buf;
		}
	}
	if (from_key) {
		if (kr->key_len == 0) {
			kr->key = zero_key;
			kr->key_len = 1;
		}
		kr->end = zero_key;
		kr->end_len = 1;
	}
}

/* etcdctl's getGetOp: f holds the flags (c itself, or a txn line's own parse). */
static void get_op(ctl_t *c, const ctl_t *f, int n, char **a, keel_range_req_t *req,
		   ctl_keyrange_t *kr)
{
	static const char *const targets[] = {"KEY", "VERSION", "CREATE", "MODIFY", "VALUE"};
	static const keel_sort_target_t tv[] = {KEEL_SORT_BY_KEY, KEEL_SORT_BY_VERSION,
						KEEL_SORT_BY_CREATE, KEEL_SORT_BY_MOD,
						KEEL_SORT_BY_VALUE};
	bool prefix = ctl_flag_bool(f, "prefix"), from_key = ctl_flag_bool(f, "from-key");
	if (n == 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "get command needs one argument as key and an "
			  "optional argument as range_end");
	if (prefix && from_key)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the "
			  "same time, choose one");
	memset(req, 0, sizeof(*req));
	const char *cons = ctl_flag_str(f, "consistency");
	if (strcmp(cons, "s") == 0)
		req->serializable = true;
	else if (strcmp(cons, "l") != 0)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "unknown consistency flag \"%s\"", cons);
	if (n > 1 && (prefix || from_key))
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "too many arguments, only accept one argument when "
			  "`--prefix` or `--from-key` is set");
	req->limit = ctl_flag_int(f, "limit");
	if (ctl_flag_int(f, "rev") > 0)
		req->revision = ctl_flag_int(f, "rev");
	const char *order = ctl_flag_str(f, "order");
	if (strcasecmp(order, "ASCEND") == 0)
		req->sort_order = KEEL_SORT_ASCEND;
	else if (strcasecmp(order, "DESCEND") == 0)
		req->sort_order = KEEL_SORT_DESCEND;
	else if (*order)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "bad sort order %s", order);
	const char *target = ctl_flag_str(f, "sort-by");
	bool known = *target == '\0';
	for (size_t i = 0; i < 5; i++) {
		if (strcasecmp(target, targets[i]) == 0) {
			req->sort_target = tv[i];
			known = true;
		}
	}
	if (!known)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "bad sort target %s", target);
	/* clientv3's WithSort: ascending by key is the server's natural order. */
	if (req->sort_target == KEEL_SORT_BY_KEY && req->sort_order == KEEL_SORT_ASCEND)
		req->sort_order = KEEL_SORT_NONE;
	keyrange_build(c, kr, a[0], n > 1 ? a[1] : NULL, prefix, from_key);
	req->key = kr->key;
	req->key_len = kr->key_len;
	req->range_end = kr->end;
	req->range_end_len = kr->end_len;
	req->keys_only = ctl_flag_bool(f, "keys-only");
	req->timeout_ms = ctl_timeout_ms(c);
}

/* Everything left on stdin (argOrStdin). Returns NULL when empty. */
static char *read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	while (b) {
		if (n == cap) {
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
			cap *= 2;
		}
		size_t r = fread(b + n, 1, cap - n, stdin);
		if (r == 0)
			break;
		n += r;
	}
	if (b && n == 0) {
		free(b);
		return NULL;
	}
	*len = n;
	return b;
}

/* Go's strconv.ParseInt(s, 16, 64); 0 on success. */
static int parse_hex64(const char *s, int64_t *out, char *why, size_t wlen)
{
	const char *p = s;
	bool neg = false;
	uint64_t v = 0;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p == '\0')
		goto syntax;
	for (; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			goto syntax;
		if (v > (UINT64_MAX >> 4))
			goto range;
		v = v << 4 | (uint64_t)d;
	}
	if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
		goto range;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
syntax:
	snprintf(why, wlen, "strconv.ParseInt: parsing \"%s\": invalid syntax", s);
	return -1;
range:
	snprintf(why, wlen, "strconv.ParseInt: parsing \"%s\": value out of range", s);
	return -1;
}

/* etcdctl's getPutOp. *owned receives a buffer to free (a value read from stdin). In a
 * txn (!use_stdin) etcdctl's reader has already buffered stdin, so a missing value is an
 * error there. */
static void put_op(ctl_t *c, const ctl_t *f, int n, char **a, keel_put_req_t *req, char **owned,
		   bool use_stdin)
{
	bool ignore_value = ctl_flag_bool(f, "ignore-value");
	char why[256];
	*owned = NULL;
	if (n == 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "put command needs 1 argument and input from stdin "
			  "or 2 arguments");
	if (ignore_value && n > 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "put command needs only 1 argument when "
			  "'ignore-value' is set");
	memset(req, 0, sizeof(*req));
	req->key = a[0];
	req->key_len = strlen(a[0]);
	if (!ignore_value) {
		if (n > 1) {
			req->value = a[1];
			req->value_len = strlen(a[1]);
		} else {
			*owned = use_stdin ? read_stdin(&req->value_len) : NULL;
			if (!*owned)
				ctl_fatal(c, CTL_EXIT_BAD_ARGS, "put command needs 1 argument and "
					  "input from stdin or 2 arguments");
			req->value = *owned;
		}
	}
	if (parse_hex64(ctl_flag_str(f, "lease"), &req->lease, why, sizeof(why)) < 0) {
		free(*owned);
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad lease ID (%s), expecting ID in Hex", why);
	}
	req->prev_kv = ctl_flag_bool(f, "prev-kv");
	req->ignore_value = ignore_value;
	req->ignore_lease = ctl_flag_bool(f, "ignore-lease");
	req->timeout_ms = ctl_timeout_ms(c);
}

/* etcdctl's getDelOp. */
static void del_op(ctl_t *c, const ctl_t *f, int n, char **a, keel_delete_req_t *req,
		   ctl_keyrange_t *kr)
{
	bool prefix = ctl_flag_bool(f, "prefix"), from_key = ctl_flag_bool(f, "from-key");
	if (n == 0 || n > 2)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "del command needs one argument as key and an "
			  "optional argument as range_end");
	if (prefix && from_key)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the "
			  "same time, choose one");
	if (n > 1 && (prefix || from_key))
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "too many arguments, only accept one argument when "
			  "`--prefix` or `--from-key` is set");
	keyrange_build(c, kr, a[0], n > 1 ? a[1] : NULL, prefix, from_key);
	memset(req, 0, sizeof(*req));
	req->key = kr->key;
	req->key_len = kr->key_len;
	req->range_end = kr->end;
	req->range_end_len = kr->end_len;
	req->prev_kv = ctl_flag_bool(f, "prev-kv");
	req->timeout_ms = ctl_timeout_ms(c);
}

int ctl_cmd_get(ctl_t *c, int argc, char **argv)
{
	keel_range_req_t req;
	ctl_keyrange_t kr;
	keel_range_result_t *res = NULL;
	keel_error_t err;
	get_op(c, c, argc - 1, argv + 1, &req, &kr);
	int rc = keel_range(ctl_client(c), &req, &res, &err);
	free(kr.end_buf);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	if (ctl_flag_bool(c, "print-value-only")) {
		if (c->out != CTL_OUT_SIMPLE) {
			keel_range_result_free(res);
			ctl_fatal(c, CTL_EXIT_BAD_ARGS, "print-value-only is only for "
				  "`--write-out=simple`");
		}
		c->value_only = true;
	}
	ctl_print_get(c, res);
	keel_range_result_free(res);
	return CTL_EXIT_SUCCESS;
}

/* grpc-go refuses to send a request over its 2 MiB default before it leaves etcdctl. */
static void check_send_size(ctl_t *c, const keel_put_req_t *req, char *owned)
{
	Etcdserverpb__PutRequest m = ETCDSERVERPB__PUT_REQUEST__INIT;
	m.key.data = (uint8_t *)req->key;
	m.key.len = req->key_len;
	m.value.data = (uint8_t *)req->value;
	m.value.len = req->value_len;
	m.lease = req->lease;
	m.prev_kv = req->prev_kv;
	m.ignore_value = req->ignore_value;
	m.ignore_lease = req->ignore_lease;
	size_t n = protobuf_c_message_get_packed_size(&m.base);
	if (n > 2097152) {
		keel_error_t err = {.code = KEEL_CODE_RESOURCE_EXHAUSTED, .kind = KEEL_E_OTHER};
		snprintf(err.message, sizeof(err.message),
			 "trying to send message larger than max (%zu vs. 2097152)", n);
		free(owned);
		ctl_client(c);
		ctl_fatal_err(c, &err);
	}
}

int ctl_cmd_put(ctl_t *c, int argc, char **argv)
{
	keel_put_req_t req;
	keel_put_result_t *res = NULL;
	keel_error_t err;
	char *owned;
	put_op(c, c, argc - 1, argv + 1, &req, &owned, true);
	check_send_size(c, &req, owned);
	int rc = keel_put(ctl_client(c), &req, &res, &err);
	free(owned);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ctl_print_put(c, res);
	keel_put_result_free(res);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_del(ctl_t *c, int argc, char **argv)
{
	keel_delete_req_t req;
	ctl_keyrange_t kr;
	keel_delete_result_t *res = NULL;
	keel_error_t err;
	del_op(c, c, argc - 1, argv + 1, &req, &kr);
	int rc = keel_delete(ctl_client(c), &req, &res, &err);
	free(kr.end_buf);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ctl_print_del(c, res);
	keel_delete_result_free(res);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_compaction(ctl_t *c, int argc, char **argv)
{
	keel_compact_req_t req;
	keel_error_t err;
	char *end;
	(void)argv;
	if (argc != 2)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "compaction command needs 1 argument");
	errno = 0;
	long long rev = strtoll(argv[1], &end, 10);
	if (argv[1][0] == '\0' || *end != '\0' || isspace((unsigned char)argv[1][0]))
		ctl_fatal(c, CTL_EXIT_ERROR, "strconv.ParseInt: parsing \"%s\": invalid syntax",
			  argv[1]);
	if (errno == ERANGE)
		ctl_fatal(c, CTL_EXIT_ERROR, "strconv.ParseInt: parsing \"%s\": value out of range",
			  argv[1]);
	memset(&req, 0, sizeof(req));
	req.revision = rev;
	req.physical = ctl_flag_bool(c, "physical");
	req.timeout_ms = ctl_timeout_ms(c);
	if (keel_compact(ctl_client(c), &req, NULL, &err) != 0)
		ctl_fatal_err(c, &err);
	printf("compacted revision %lld\n", rev);
	return CTL_EXIT_SUCCESS;
}

/* ---- txn --------------------------------------------------------------------------------- */

/* One line of stdin, as bufio's ReadString('\n'): NULL at EOF before a newline (etcdctl
 * then fails with "EOF"). The caller frees. */
static char *txn_read_line(size_t *len)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n <= 0 || line[n - 1] != '\n') {
		free(line);
		return NULL;
	}
	*len = (size_t)n;
	return line;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r' ||
		     s[n - 1] == '\v' || s[n - 1] == '\f'))
		s[--n] = '\0';
	return s;
}

/* Go's %q scanning: a "double-quoted" string with escapes or a `raw` one, from *p. The
 * result is written into out (room for strlen(*p)+1); returns 0 or -1. */
static int go_unquote(const char **p, char *out, size_t *olen)
{
	const char *s = *p;
	size_t n = 0;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '`') {
		const char *e = strchr(s + 1, '`');
		if (!e)
			return -1;
		memcpy(out, s + 1, (size_t)(e - s - 1));
		n = (size_t)(e - s - 1);
		*p = e + 1;
	} else if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s != '\\') {
				out[n++] = *s;
				continue;
			}
			s++;
			switch (*s) {
			case 'a': out[n++] = '\a'; break;
			case 'b': out[n++] = '\b'; break;
			case 'f': out[n++] = '\f'; break;
			case 'n': out[n++] = '\n'; break;
			case 'r': out[n++] = '\r'; break;
			case 't': out[n++] = '\t'; break;
			case 'v': out[n++] = '\v'; break;
			case '\\': out[n++] = '\\'; break;
			case '"': out[n++] = '"'; break;
			case '\'': out[n++] = '\''; break;
			case 'x': {
				/* Exactly two hex digits: sscanf's %2x took one (then stepped
				 * over the end of the string), a sign or a space. */
				static const char hex[] = "0123456789abcdef";
				const char *h1 = isxdigit((unsigned char)s[1]) ?
						 strchr(hex, tolower((unsigned char)s[1])) : NULL;
				const char *h2 = h1 && isxdigit((unsigned char)s[2]) ?
						 strchr(hex, tolower((unsigned char)s[2])) : NULL;
				if (!h2)
					return -1;
				out[n++] = (char)((h1 - hex) * 16 + (h2 - hex));
				s += 2;
				break;
			}
			default:
				if (*s >= '0' && *s <= '3' && s[1] >= '0' && s[1] <= '7' &&
				    s[2] >= '0' && s[2] <= '7') {
					out[n++] = (char)((*s - '0') * 64 + (s[1] - '0') * 8 +
							  (s[2] - '0'));
					s += 2;
					break;
				}
				return -1;
			}
		}
		if (*s != '"')
			return -1;
		*p = s + 1;
	} else {
		return -1;
	}
	out[n] = '\0';
	*olen = n;
	return 0;
}

static void txn_bad(ctl_t *c, keel_txn_t *t, char *line, const char *fmt, const char *arg)
	__attribute__((noreturn));
static void txn_bad(ctl_t *c, keel_txn_t *t, char *line, const char *fmt, const char *arg)
{
	char msg[2048];
	snprintf(msg, sizeof(msg), fmt, arg);
	keel_txn_free(t);
	free(line);
	ctl_fatal(c, CTL_EXIT_INVALID_INPUT, "%s", msg);
}

/* etcdctl's parseCompare: target("key") op "value", scanned as Sscanf("%q) %s %q"). */
static void txn_compare(ctl_t *c, keel_txn_t *t, char *raw, char *line)
{
	static const struct {
		const char *name;
		keel_cmp_target_t target;
	} targets[] = {{"ver", KEEL_CMP_VERSION}, {"version", KEEL_CMP_VERSION},
		       {"c", KEEL_CMP_CREATE}, {"create", KEEL_CMP_CREATE}, {"m", KEEL_CMP_MOD},
		       {"mod", KEEL_CMP_MOD}, {"val", KEEL_CMP_VALUE}, {"value", KEEL_CMP_VALUE}};
	const char *paren = strchr(line, '(');
	if (!paren)
		txn_bad(c, t, raw, "malformed comparison: %s", line);
	size_t tl = (size_t)(paren - line), room = strlen(paren) + 1, klen = 0, vlen = 0, ol = 0;
	const char *p = paren + 1;
	char *target = strndup(line, tl), *key = calloc(1, room), *val = calloc(1, room);
	char *op = calloc(1, room);
	if (!target || !key || !val || !op)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	int n = 0;
	if (go_unquote(&p, key, &klen) == 0) {
		n = 1;
		if (*p == ')') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			ol = strcspn(p, " \t");
			if (ol > 0) {
				memcpy(op, p, ol);
				p += ol;
				n = 2;
				if (go_unquote(&p, val, &vlen) == 0)
					n = 3;
			}
		}
	}
	char msg[4096];
	msg[0] = '\0';
	int ti = -1;
	for (int i = 0; i < (int)(sizeof(targets) / sizeof(targets[0])); i++)
		if (strcmp(target, targets[i].name) == 0)
			ti = i;
	keel_cmp_op_t cop = KEEL_CMP_EQUAL;
	bool op_ok = true;
	if (strcmp(op, "=") == 0 || strcmp(op, "==") == 0)
		cop = KEEL_CMP_EQUAL;
	else if (strcmp(op, "!=") == 0)
		cop = KEEL_CMP_NOT_EQUAL;
	else if (strcmp(op, "<") == 0)
		cop = KEEL_CMP_LESS;
	else if (strcmp(op, ">") == 0)
		cop = KEEL_CMP_GREATER;
	else
		op_ok = false;
	if (n != 3) {
		char *qk = ctl_quote_dup(key, klen), *qv = ctl_quote_dup(val, vlen);
		snprintf(msg, sizeof(msg), "malformed comparison: %s; got %s(%s) %s %s", line,
			 target, qk ? qk : "", op, qv ? qv : "");
		free(qk);
		free(qv);
	} else if (ti < 0) {
		snprintf(msg, sizeof(msg), "malformed comparison: %s (unknown target %s)", line,
			 target);
	} else if (!op_ok) {
		/* etcdctl panics here ("Unknown result op"); keelctl says what is wrong */
		snprintf(msg, sizeof(msg), "malformed comparison: %s (unknown operator %s)", line,
			 op);
	} else if (targets[ti].target == KEEL_CMP_VALUE) {
		keel_txn_cmp_value(t, cop, key, klen, NULL, 0, val, vlen);
	} else {
		char *end;
		errno = 0;
		long long v = strtoll(val, &end, 10);
		if (!*val || *end || errno == ERANGE || isspace((unsigned char)val[0]))
			snprintf(msg, sizeof(msg), "invalid txn compare request: %s", line);
		else
			keel_txn_cmp_int(t, targets[ti].target, cop, key, klen, NULL, 0, v);
	}
	free(target);
	free(key);
	free(val);
	free(op);
	if (msg[0])
		txn_bad(c, t, raw, "%s", msg);
}

/* etcdctl's argify: "double quoted" (Go-unquoted), 'single quoted' (with etcdctl's own
 * slicing by the number of arguments, kept for identical results) or bare words. */
int ctl_argify(char *line, char **args, int max, char *store)
{
	int n = 0;
	char *p = line, *o = store;
	while (*p && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char *start = p;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p == '"')
				p++;
		} else if (*p == '\'') {
			char *e = strchr(p + 1, '\'');
			p = e ? e + 1 : p + strlen(p);
		} else {
			while (*p && *p != ' ' && *p != '\t')
				p++;
		}
		size_t l = (size_t)(p - start);
		memcpy(o, start, l);
		o[l] = '\0';
		args[n++] = o;
		o += l + 1;
	}
	for (int i = 0; i < n; i++) {
		if (args[i][0] == '"') {
			const char *q = args[i];
			size_t len;
			char *tmp = strdup(args[i]);
			if (!tmp || go_unquote(&q, tmp, &len) < 0) {
				free(tmp);
				return -2;
			}
			strcpy(args[i], tmp);
			free(tmp);
		} else if (args[i][0] == '\'') {
			size_t l = strlen(args[i]);
			if (n - 1 < 1 || (size_t)(n - 1) > l)
				return -2;
			args[i][n - 1] = '\0';
			args[i]++;
		}
	}
	return n;
}

static void txn_op(ctl_t *c, keel_txn_t *t, keel_branch_t b, char *raw, char *line)
{
	static const char *const cmds[] = {"del", "get", "put"};
	size_t ll = strlen(line);
	char **args = calloc(ll + 2, sizeof(char *)), **pos = calloc(ll + 2, sizeof(char *));
	char *store = malloc(ll * 2 + 2), why[1024];
	if (!args || !pos || !store)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	int n = ctl_argify(line, args, (int)ll + 1, store);
	if (n < 2) {
		free(args);
		free(pos);
		free(store);
		/* etcdctl's Argify fails on a bad quoted word with strconv's error. */
		txn_bad(c, t, raw, n == -2 ? "invalid syntax%.0s"
				   : "invalid txn compare request: %s", line);
	}
	const char *cmd = NULL;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(args[0], cmds[i]) == 0) {
			cmd = cmds[i];
			break;
		}
		if (strncmp(cmds[i], args[0], strlen(args[0])) == 0)
			cmd = cmd ? "" : cmds[i];
	}
	ctl_t sub;
	int np = cmd && *cmd ? ctl_parse_sub(c, &sub, cmd, n - 1, args + 1, pos, why, sizeof(why))
			     : -1;
	if (np < 0) {
		free(args);
		free(pos);
		free(store);
		txn_bad(c, t, raw, "invalid txn request: %s", line);
	}
	if (cmd[0] == 'g') {
		keel_range_req_t req;
		ctl_keyrange_t kr;
		get_op(c, &sub, np, pos, &req, &kr);
		keel_txn_range(t, b, &req);
		free(kr.end_buf);
	} else if (cmd[0] == 'p') {
		keel_put_req_t req;
		char *owned;
		put_op(c, &sub, np, pos, &req, &owned, false);
		keel_txn_put(t, b, &req);
		free(owned);
	} else {
		keel_delete_req_t req;
		ctl_keyrange_t kr;
		del_op(c, &sub, np, pos, &req, &kr);
		keel_txn_delete(t, b, &req);
		free(kr.end_buf);
	}
	free(args);
	free(pos);
	free(store);
}

/* Reads lines up to an empty one: compares (branch < 0) or requests. */
static void txn_read_block(ctl_t *c, keel_txn_t *t, int branch)
{
	for (;;) {
		size_t len;
		char *raw = txn_read_line(&len);
		if (!raw) {
			keel_txn_free(t);
			ctl_fatal(c, CTL_EXIT_INVALID_INPUT, "EOF");
		}
		/* A NUL byte would cut the line short here (into an empty one, ending the
		 * block early): no compare or request can hold one, so the line is refused. */
		bool nul = memchr(raw, '\0', len) != NULL;
		char *line = trim(raw);
		if (nul)
			txn_bad(c, t, raw, branch < 0 ? "malformed comparison: %s"
					   : "invalid txn request: %s", line);
		if (!*line) {
			free(raw);
			return;
		}
		if (branch < 0)
			txn_compare(c, t, raw, line);
		else
			txn_op(c, t, (keel_branch_t)branch, raw, line);
		free(raw);
	}
}

int ctl_cmd_txn(ctl_t *c, int argc, char **argv)
{
	keel_txn_result_t *res = NULL;
	keel_error_t err;
	bool interactive = ctl_flag_bool(c, "interactive");
	(void)argv;
	if (argc != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "txn command does not accept argument");
	keel_t *k = ctl_client(c);
	keel_txn_t *t = keel_txn_new();
	if (!t)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	/* etcdctl commits a txn without a deadline (context.Background()). */
	keel_txn_timeout(t, -1);
	if (interactive)
		puts("compares:");
	fflush(stdout);
	txn_read_block(c, t, -1);
	if (interactive)
		puts("success requests (get, put, del):");
	fflush(stdout);
	txn_read_block(c, t, KEEL_THEN);
	if (interactive)
		puts("failure requests (get, put, del):");
	fflush(stdout);
	txn_read_block(c, t, KEEL_ELSE);
	int rc = keel_txn_commit(k, t, &res, &err);
	keel_txn_free(t);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ctl_print_txn(c, res);
	keel_txn_result_free(res);
	return CTL_EXIT_SUCCESS;
}
