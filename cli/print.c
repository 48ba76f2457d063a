/* cli/print.c — the pieces of etcdctl's output every keelctl command shares: Go's %q and
 * JSON encodings, the fields/JSON response header, tablewriter tables, humanized sizes,
 * Go durations, protobuf bytes and the terminal-only progress line. No I/O but stdout/stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "kv.pb-c.h"
#include "rpc.pb-c.h"

#include "ctl.h"

/* Length of a valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const uint8_t *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t len = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (len == 0 || len > n || s[0] >= 0xf8)
		return 0;
	uint32_t v = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (v < 0x800 || (v >= 0xd800 && v < 0xe000))) ||
	    (len == 4 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return len;
}

void ctl_fput_quoted(FILE *f, const void *sv, size_t n)
{
	const uint8_t *s = sv;
	fputc('"', f);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_len(s + i, n - i, &cp);
		if (l == 0) {
			fprintf(f, "\\x%02x", s[i]);
			i++;
			continue;
		}
		switch (cp) {
		case '\a': fputs("\\a", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\v': fputs("\\v", f); break;
		case '\\': fputs("\\\\", f); break;
		case '"': fputs("\\\"", f); break;
		default:
			if (cp < 0x20 || cp == 0x7f)
				fprintf(f, "\\x%02x", cp);
			else if (cp >= 0x80 && cp < 0xa0)
				fprintf(f, "\\u%04x", cp);
			else
				fwrite(s + i, 1, l, f);
		}
		i += l;
	}
	fputc('"', f);
}

char *ctl_quote_dup(const void *s, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	ctl_fput_quoted(f, s, n);
	fclose(f);
	return buf;
}

void ctl_fput_json_base64(FILE *f, const void *sv, size_t n)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *s = sv;
	fputc('"', f);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		fputc(b64[(v >> 18) & 63], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(i + 1 < n ? b64[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < n ? b64[v & 63] : '=', f);
	}
	fputc('"', f);
}

void ctl_fput_json_string(FILE *f, const char *str)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t n = strlen(str);
	fputc('"', f);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_len(s + i, n - i, &cp);
		if (l == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (char)cp);
		else if (cp == '\n')
			fputs("\\n", f);
		else if (cp == '\r')
			fputs("\\r", f);
		else if (cp == '\t')
			fputs("\\t", f);
		else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&' || cp == 0x2028 ||
			 cp == 0x2029)
			fprintf(f, "\\u%04x", cp);
		else
			fwrite(s + i, 1, l, f);
		i += l;
	}
	fputc('"', f);
}

void ctl_print_fields_header(const keel_header_t *h)
{
	printf("\"ClusterID\" : %llu\n", (unsigned long long)h->cluster_id);
	printf("\"MemberID\" : %llu\n", (unsigned long long)h->member_id);
	printf("\"Revision\" : %lld\n", (long long)h->revision);
	printf("\"RaftTerm\" : %llu\n", (unsigned long long)h->raft_term);
}

void ctl_fput_json_header(FILE *f, const keel_header_t *h)
{
	const char *sep = "";
	fputc('{', f);
	if (h->cluster_id) {
		fprintf(f, "%s\"cluster_id\":%llu", sep, (unsigned long long)h->cluster_id);
		sep = ",";
	}
	if (h->member_id) {
		fprintf(f, "%s\"member_id\":%llu", sep, (unsigned long long)h->member_id);
		sep = ",";
	}
	if (h->revision) {
		fprintf(f, "%s\"revision\":%lld", sep, (long long)h->revision);
		sep = ",";
	}
	if (h->raft_term)
		fprintf(f, "%s\"raft_term\":%llu", sep, (unsigned long long)h->raft_term);
	fputc('}', f);
}

void ctl_print_bytes_line(const ctl_t *c, const void *sv, size_t n)
{
	const uint8_t *s = sv;
	if (c->hex) {
		for (size_t i = 0; i < n; i++)
			printf("\\x%02x", s[i]);
	} else {
		fwrite(s, 1, n, stdout);
	}
	putchar('\n');
}

static void table_border(const size_t *w, size_t ncols)
{
	putchar('+');
	for (size_t j = 0; j < ncols; j++) {
		for (size_t k = 0; k < w[j] + 2; k++)
			putchar('-');
		putchar('+');
	}
	putchar('\n');
}

void ctl_print_table(const char *const *hdr, size_t ncols, const char *const *cells,
		     size_t nrows)
{
	size_t *w = calloc(ncols ? ncols : 1, sizeof(size_t));
	if (!w)
		return;
	for (size_t j = 0; j < ncols; j++) {
		w[j] = strlen(hdr[j]);
		for (size_t i = 0; i < nrows; i++)
			if (strlen(cells[i * ncols + j]) > w[j])
				w[j] = strlen(cells[i * ncols + j]);
	}
	table_border(w, ncols);
	putchar('|');
	for (size_t j = 0; j < ncols; j++) {
		size_t gap = w[j] - strlen(hdr[j]), left = gap / 2;
		printf(" %*s", (int)left, "");
		for (const char *p = hdr[j]; *p; p++)
			putchar(*p >= 'a' && *p <= 'z' ? *p - 32 : (*p == '_' ? ' ' : *p));
		printf("%*s |", (int)(gap - left), "");
	}
	putchar('\n');
	table_border(w, ncols);
	for (size_t i = 0; i < nrows; i++) {
		putchar('|');
		for (size_t j = 0; j < ncols; j++)
			printf(" %*s |", (int)w[j], cells[i * ncols + j]);
		putchar('\n');
	}
	table_border(w, ncols);
	free(w);
}

void ctl_humanize_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
	if (n < 10) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return;
	}
	double v = (double)n;
	int e = 0;
	while (v >= 1000 && e < 6) {
		v /= 1000;
		e++;
	}
	/* go-humanize rounds to one decimal first, then drops it from 10 up. */
	double r = (double)(long long)(v * 10 + 0.5) / 10;
	snprintf(buf, len, r < 10 ? "%.1f %s" : "%.0f %s", r, units[e]);
}

/* Go's fmtFrac/fmtInt: v with prec decimal digits, trailing zeros (and '.') dropped. */
static void dur_frac(char *out, size_t len, uint64_t v, int prec, const char *unit)
{
	uint64_t p = 1;
	for (int i = 0; i < prec; i++)
		p *= 10;
	uint64_t ip = v / p, fp = v % p;
	if (fp == 0) {
		snprintf(out, len, "%llu%s", (unsigned long long)ip, unit);
		return;
	}
	char fs[32];
	snprintf(fs, sizeof(fs), "%0*llu", prec, (unsigned long long)fp);
	size_t l = strlen(fs);
	while (l > 0 && fs[l - 1] == '0')
		fs[--l] = '\0';
	snprintf(out, len, "%llu.%s%s", (unsigned long long)ip, fs, unit);
}

void ctl_format_duration(int64_t ns, char *buf, size_t len)
{
	const char *sign = ns < 0 ? "-" : "";
	uint64_t u = ns < 0 ? (uint64_t)(-ns) : (uint64_t)ns;
	char body[64];
	if (u == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (u < 1000ULL) {
		snprintf(body, sizeof(body), "%lluns", (unsigned long long)u);
	} else if (u < 1000000ULL) {
		dur_frac(body, sizeof(body), u, 3, "\xc2\xb5s");
	} else if (u < 1000000000ULL) {
		dur_frac(body, sizeof(body), u, 6, "ms");
	} else {
		char secs[48];
		uint64_t s = u / 1000000000ULL, frac = u % 1000000000ULL;
		dur_frac(secs, sizeof(secs), (s % 60) * 1000000000ULL + frac, 9, "s");
		uint64_t m = s / 60, h = m / 60;
		if (h)
			snprintf(body, sizeof(body), "%lluh%llum%s", (unsigned long long)h,
				 (unsigned long long)(m % 60), secs);
		else if (m)
			snprintf(body, sizeof(body), "%llum%s", (unsigned long long)m, secs);
		else
			snprintf(body, sizeof(body), "%s", secs);
	}
	snprintf(buf, len, "%s%s", sign, body);
}

void ctl_print_pb(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return;
	protobuf_c_message_pack(msg, b);
	fwrite(b, 1, n, stdout);
	free(b);
}

bool ctl_progress_enabled(void)
{
	return isatty(STDERR_FILENO) == 1;
}

void ctl_progress(const char *fmt, ...)
{
	va_list ap;
	if (!ctl_progress_enabled())
		return;
	fputc('\r', stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
	fflush(stderr);
}

void ctl_progress_done(void)
{
	if (ctl_progress_enabled())
		fputc('\n', stderr);
}

void ctl_fatal_format_async(const ctl_t *c)
{
	fflush(stdout);
	fprintf(stderr, "Error: %s not supported as output format\n", ctl_out_name(c->out));
	fflush(stderr);
	_exit(CTL_EXIT_BAD_FEATURE);
}

void ctl_fatal_format(ctl_t *c)
{
	ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "%s not supported as output format",
		  ctl_out_name(c->out));
}

/* ---- KV responses: get, put, del, txn in every format ----------------------------------- */

/* protobuf-c messages built from keel results live in one arena, freed after printing. */
typedef struct pb_arena {
	void **blocks;
	size_t n, cap;
	bool failed;
} pb_arena_t;

static void *pb_alloc(pb_arena_t *a, size_t size)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 32;
		void **nb = realloc(a->blocks, nc * sizeof(void *));
		if (!nb) {
			a->failed = true;
			return NULL;
		}
		a->blocks = nb;
		a->cap = nc;
	}
	void *p = calloc(1, size ? size : 1);
	if (!p) {
		a->failed = true;
		return NULL;
	}
	a->blocks[a->n++] = p;
	return p;
}

static void pb_arena_free(pb_arena_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
}

static Etcdserverpb__ResponseHeader *pb_header(pb_arena_t *a, const keel_header_t *h)
{
	Etcdserverpb__ResponseHeader *m = pb_alloc(a, sizeof(*m));
	if (!m)
		return NULL;
	etcdserverpb__response_header__init(m);
	m->cluster_id = h->cluster_id;
	m->member_id = h->member_id;
	m->revision = h->revision;
	m->raft_term = h->raft_term;
	return m;
}

Mvccpb__KeyValue *ctl_pb_kv(void *arena, const keel_kv_t *kv)
{
	Mvccpb__KeyValue *m = pb_alloc(arena, sizeof(*m));
	if (!m)
		return NULL;
	mvccpb__key_value__init(m);
	m->key.data = kv->key;
	m->key.len = kv->key_len;
	m->create_revision = kv->create_revision;
	m->mod_revision = kv->mod_revision;
	m->version = kv->version;
	m->value.data = kv->value;
	m->value.len = kv->value_len;
	m->lease = kv->lease;
	return m;
}

static Mvccpb__KeyValue **pb_kvs(pb_arena_t *a, const keel_kv_t *kvs, size_t n)
{
	Mvccpb__KeyValue **v = pb_alloc(a, n * sizeof(*v));
	for (size_t i = 0; v && i < n; i++)
		v[i] = ctl_pb_kv(a, &kvs[i]);
	return v;
}

static Etcdserverpb__RangeResponse *pb_range(pb_arena_t *a, const keel_range_result_t *r)
{
	Etcdserverpb__RangeResponse *m = pb_alloc(a, sizeof(*m));
	if (!m)
		return NULL;
	etcdserverpb__range_response__init(m);
	m->header = pb_header(a, &r->header);
	m->n_kvs = r->n_kvs;
	m->kvs = pb_kvs(a, r->kvs, r->n_kvs);
	m->more = r->more;
	m->count = r->count;
	return m;
}

static Etcdserverpb__PutResponse *pb_put(pb_arena_t *a, const keel_put_result_t *r)
{
	Etcdserverpb__PutResponse *m = pb_alloc(a, sizeof(*m));
	if (!m)
		return NULL;
	etcdserverpb__put_response__init(m);
	m->header = pb_header(a, &r->header);
	if (r->prev_kv)
		m->prev_kv = ctl_pb_kv(a, r->prev_kv);
	return m;
}

static Etcdserverpb__DeleteRangeResponse *pb_del(pb_arena_t *a, const keel_delete_result_t *r)
{
	Etcdserverpb__DeleteRangeResponse *m = pb_alloc(a, sizeof(*m));
	if (!m)
		return NULL;
	etcdserverpb__delete_range_response__init(m);
	m->header = pb_header(a, &r->header);
	m->deleted = r->deleted;
	m->n_prev_kvs = r->n_prev_kvs;
	m->prev_kvs = pb_kvs(a, r->prev_kvs, r->n_prev_kvs);
	return m;
}

static Etcdserverpb__TxnResponse *pb_txn(pb_arena_t *a, const keel_txn_result_t *r)
{
	Etcdserverpb__TxnResponse *m = pb_alloc(a, sizeof(*m));
	if (!m)
		return NULL;
	etcdserverpb__txn_response__init(m);
	m->header = pb_header(a, &r->header);
	m->succeeded = r->succeeded;
	m->n_responses = r->n_responses;
	m->responses = pb_alloc(a, r->n_responses * sizeof(*m->responses));
	for (size_t i = 0; m->responses && i < r->n_responses; i++) {
		const keel_op_result_t *op = &r->responses[i];
		Etcdserverpb__ResponseOp *o = pb_alloc(a, sizeof(*o));
		if (!o)
			return m;
		etcdserverpb__response_op__init(o);
		switch (op->type) {
		case KEEL_OP_RANGE:
			o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
			o->response_range = pb_range(a, op->u.range);
			break;
		case KEEL_OP_PUT:
			o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
			o->response_put = pb_put(a, op->u.put);
			break;
		case KEEL_OP_DELETE:
			o->response_case =
				ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
			o->response_delete_range = pb_del(a, op->u.del);
			break;
		case KEEL_OP_TXN:
			o->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
			o->response_txn = pb_txn(a, op->u.txn);
			break;
		}
		m->responses[i] = o;
	}
	return m;
}

void *ctl_pb_arena_new(void)
{
	return calloc(1, sizeof(pb_arena_t));
}

void *ctl_pb_alloc(void *arena, size_t size)
{
	return pb_alloc(arena, size);
}

Etcdserverpb__ResponseHeader *ctl_pb_header(void *arena, const keel_header_t *h)
{
	return pb_header(arena, h);
}

void ctl_pb_arena_free(void *arena)
{
	if (arena)
		pb_arena_free(arena);
	free(arena);
}

/* Prints one message built by fn in a fresh arena. */
static void pb_print_built(ProtobufCMessage *m, pb_arena_t *a)
{
	if (m && !a->failed)
		ctl_print_pb(m);
	pb_arena_free(a);
}

/* JSON pieces, as Go's encoding/json writes etcd's gogo structs (omitempty everywhere). */
typedef struct jsep {
	FILE *f;
	bool any;
} jsep_t;

static void jkey(jsep_t *j, const char *k)
{
	fprintf(j->f, "%s\"%s\":", j->any ? "," : "", k);
	j->any = true;
}

static void jint(jsep_t *j, const char *k, int64_t v)
{
	if (v) {
		jkey(j, k);
		fprintf(j->f, "%lld", (long long)v);
	}
}

static void jtrue(jsep_t *j, const char *k, bool v)
{
	if (v) {
		jkey(j, k);
		fputs("true", j->f);
	}
}

/* Opens a response object with its header (every response has one, first). */
static jsep_t jopen(FILE *f, const keel_header_t *h)
{
	jsep_t j = {f, false};
	fputc('{', f);
	jkey(&j, "header");
	ctl_fput_json_header(f, h);
	return j;
}

void ctl_fput_json_kv(FILE *f, const keel_kv_t *kv)
{
	jsep_t j = {f, false};
	fputc('{', f);
	if (kv->key_len) {
		jkey(&j, "key");
		ctl_fput_json_base64(f, kv->key, kv->key_len);
	}
	jint(&j, "create_revision", kv->create_revision);
	jint(&j, "mod_revision", kv->mod_revision);
	jint(&j, "version", kv->version);
	if (kv->value_len) {
		jkey(&j, "value");
		ctl_fput_json_base64(f, kv->value, kv->value_len);
	}
	jint(&j, "lease", kv->lease);
	fputc('}', f);
}

static void jkvs(jsep_t *j, const char *k, const keel_kv_t *kvs, size_t n)
{
	if (!n)
		return;
	jkey(j, k);
	fputc('[', j->f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', j->f);
		ctl_fput_json_kv(j->f, &kvs[i]);
	}
	fputc(']', j->f);
}

static void json_range(FILE *f, const keel_range_result_t *r)
{
	jsep_t j = jopen(f, &r->header);
	jkvs(&j, "kvs", r->kvs, r->n_kvs);
	jtrue(&j, "more", r->more);
	jint(&j, "count", r->count);
	fputc('}', f);
}

static void json_put(FILE *f, const keel_put_result_t *r)
{
	jsep_t j = jopen(f, &r->header);
	if (r->prev_kv) {
		jkey(&j, "prev_kv");
		ctl_fput_json_kv(f, r->prev_kv);
	}
	fputc('}', f);
}

static void json_del(FILE *f, const keel_delete_result_t *r)
{
	jsep_t j = jopen(f, &r->header);
	jint(&j, "deleted", r->deleted);
	jkvs(&j, "prev_kvs", r->prev_kvs, r->n_prev_kvs);
	fputc('}', f);
}

static void json_txn(FILE *f, const keel_txn_result_t *r)
{
	static const char *const names[] = {"ResponseRange", "ResponsePut", "ResponseDeleteRange",
					    "ResponseTxn"};
	jsep_t j = jopen(f, &r->header);
	jtrue(&j, "succeeded", r->succeeded);
	if (r->n_responses) {
		jkey(&j, "responses");
		fputc('[', f);
		for (size_t i = 0; i < r->n_responses; i++) {
			const keel_op_result_t *op = &r->responses[i];
			fprintf(f, "%s{\"Response\":{\"%s\":", i ? "," : "", names[op->type]);
			switch (op->type) {
			case KEEL_OP_RANGE: json_range(f, op->u.range); break;
			case KEEL_OP_PUT: json_put(f, op->u.put); break;
			case KEEL_OP_DELETE: json_del(f, op->u.del); break;
			case KEEL_OP_TXN: json_txn(f, op->u.txn); break;
			}
			fputs("}}", f);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

void ctl_print_kv_simple(const ctl_t *c, const keel_kv_t *kv)
{
	if (!c->value_only)
		ctl_print_bytes_line(c, kv->key, kv->key_len);
	ctl_print_bytes_line(c, kv->value, kv->value_len);
}

void ctl_print_kv_fields(const char *pfx, const keel_kv_t *kv)
{
	printf("\"%sKey\" : ", pfx);
	ctl_fput_quoted(stdout, kv->key, kv->key_len);
	printf("\n\"%sCreateRevision\" : %lld\n", pfx, (long long)kv->create_revision);
	printf("\"%sModRevision\" : %lld\n", pfx, (long long)kv->mod_revision);
	printf("\"%sVersion\" : %lld\n", pfx, (long long)kv->version);
	printf("\"%sValue\" : ", pfx);
	ctl_fput_quoted(stdout, kv->value, kv->value_len);
	printf("\n\"%sLease\" : %lld\n", pfx, (long long)kv->lease);
}

void ctl_print_get(ctl_t *c, const keel_range_result_t *r)
{
	pb_arena_t a = {0};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		for (size_t i = 0; i < r->n_kvs; i++)
			ctl_print_kv_simple(c, &r->kvs[i]);
		break;
	case CTL_OUT_JSON:
		json_range(stdout, r);
		putchar('\n');
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		for (size_t i = 0; i < r->n_kvs; i++)
			ctl_print_kv_fields("", &r->kvs[i]);
		printf("\"More\" : %s\n", r->more ? "true" : "false");
		printf("\"Count\" : %lld\n", (long long)r->count);
		break;
	case CTL_OUT_PROTOBUF:
		pb_print_built((ProtobufCMessage *)pb_range(&a, r), &a);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
}

void ctl_print_put(ctl_t *c, const keel_put_result_t *r)
{
	pb_arena_t a = {0};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		puts("OK");
		if (r->prev_kv)
			ctl_print_kv_simple(c, r->prev_kv);
		break;
	case CTL_OUT_JSON:
		json_put(stdout, r);
		putchar('\n');
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		if (r->prev_kv)
			ctl_print_kv_fields("Prev", r->prev_kv);
		break;
	case CTL_OUT_PROTOBUF:
		pb_print_built((ProtobufCMessage *)pb_put(&a, r), &a);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
}

void ctl_print_del(ctl_t *c, const keel_delete_result_t *r)
{
	pb_arena_t a = {0};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("%lld\n", (long long)r->deleted);
		for (size_t i = 0; i < r->n_prev_kvs; i++)
			ctl_print_kv_simple(c, &r->prev_kvs[i]);
		break;
	case CTL_OUT_JSON:
		json_del(stdout, r);
		putchar('\n');
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		printf("\"Deleted\" : %lld\n", (long long)r->deleted);
		for (size_t i = 0; i < r->n_prev_kvs; i++)
			ctl_print_kv_fields("Prev", &r->prev_kvs[i]);
		break;
	case CTL_OUT_PROTOBUF:
		pb_print_built((ProtobufCMessage *)pb_del(&a, r), &a);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
}

/* One response of a txn in the current format; false for a nested txn (not printed). */
static bool print_op(ctl_t *c, const keel_op_result_t *op)
{
	switch (op->type) {
	case KEEL_OP_RANGE: ctl_print_get(c, op->u.range); return true;
	case KEEL_OP_PUT: ctl_print_put(c, op->u.put); return true;
	case KEEL_OP_DELETE: ctl_print_del(c, op->u.del); return true;
	case KEEL_OP_TXN: break;
	}
	return false;
}

void ctl_print_txn(ctl_t *c, const keel_txn_result_t *r)
{
	pb_arena_t a = {0};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		puts(r->succeeded ? "SUCCESS" : "FAILURE");
		for (size_t i = 0; i < r->n_responses; i++) {
			putchar('\n');
			if (!print_op(c, &r->responses[i]))
				printf("unexpected response %s\n", "txn");
		}
		break;
	case CTL_OUT_JSON:
		json_txn(stdout, r);
		putchar('\n');
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		printf("\"Succeeded\" : %s\n", r->succeeded ? "true" : "false");
		for (size_t i = 0; i < r->n_responses; i++)
			print_op(c, &r->responses[i]);
		break;
	case CTL_OUT_PROTOBUF:
		pb_print_built((ProtobufCMessage *)pb_txn(&a, r), &a);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
}
