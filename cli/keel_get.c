/* cli/keel_get.c — `keel get` (kubectl's tables, -o wide|json|yaml|name, -l, -A, -w) and
 * `keel describe`, with the helpers every command shares: the connection, errors, flags and the
 * pure table helpers. It only reads the store; it never writes an object. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "keel.h"

/* ---- connection ----------------------------------------------------------------------------- */

keel_t *keel_ctx_store(keel_ctx_t *c)
{
	if (c->k)
		return c->k;
	keel_init();
	const char *eps = c->endpoints;
	if (!eps || !*eps)
		eps = getenv("KEEL_ENDPOINTS");
	if (!eps || !*eps)
		eps = "127.0.0.1:2379";
	char *copy = strdup(eps);
	const char *list[32];
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < 32;
	     t = strtok_r(NULL, ",", &save))
		if (*t)
			list[n++] = t;
	keel_options_t opt;
	keel_options_init(&opt);
	opt.endpoints = list;
	opt.n_endpoints = n;
	if (c->timeout_ms > 0)
		opt.call_timeout_ms = c->timeout_ms;
	keel_error_t err = {0};
	/* keel_connect copies what it keeps: the endpoint strings are ours to free. */
	if (n == 0 || keel_connect(&opt, &c->k, &err) != 0) {
		if (n == 0)
			keel_fail("no endpoints given");
		else
			keel_print_error(&err);
		c->k = NULL;
	}
	free(copy);
	return c->k;
}

void keel_ctx_close(keel_ctx_t *c)
{
	if (c->k)
		keel_close(c->k);
	c->k = NULL;
}

/* ---- errors --------------------------------------------------------------------------------- */

void keel_print_error_in(const keel_error_t *err, const char *what, const char *source)
{
	const char *reason = NULL;
	char ctx[1024] = "";
	if (what && source)
		snprintf(ctx, sizeof(ctx), "error when %s \"%s\": ", what, source);
	switch (err->code) {
	case KEEL_CODE_NOT_FOUND: reason = "NotFound"; break;
	case KEEL_CODE_ALREADY_EXISTS: reason = "AlreadyExists"; break;
	case KEEL_CODE_ABORTED: reason = "Conflict"; break;
	case KEEL_CODE_INVALID_ARGUMENT:
		/* kubectl prints an Invalid status bare: "The Pod "x" is invalid: ..." */
		fprintf(stderr, "%s\n", err->message);
		return;
	case KEEL_CODE_UNAVAILABLE:
	case KEEL_CODE_DEADLINE_EXCEEDED:
		/* No store answered: kubectl's words for an API server it cannot reach. */
		fprintf(stderr, "Unable to connect to the server: %s\n", err->message);
		return;
	default: break;
	}
	if (reason)
		fprintf(stderr, "Error from server (%s): %s%s\n", reason, ctx, err->message);
	else
		fprintf(stderr, "error: %s%s\n", ctx,
			err->message[0] ? err->message : "unknown error");
}

void keel_print_error(const keel_error_t *err)
{
	keel_print_error_in(err, NULL, NULL);
}

int keel_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* ---- flags ---------------------------------------------------------------------------------- */

static int keel_flag_find_long(const keel_flag_t *spec, const char *name, size_t len)
{
	for (int i = 0; spec[i].name; i++)
		if (strlen(spec[i].name) == len && strncmp(spec[i].name, name, len) == 0)
			return i;
	return -1;
}

static int keel_flag_find_short(const keel_flag_t *spec, char c)
{
	for (int i = 0; spec[i].name; i++)
		if (spec[i].shorthand == c)
			return i;
	return -1;
}

static int keel_flag_store(const char *cmd, const keel_flag_t *spec, int i, const char *v,
			   keel_flags_t *out)
{
	if (spec[i].type == KEEL_FLAG_MULTI) {
		if (out->n_multi >= KEEL_MAX_MULTI)
			return keel_fail("too many -%s flags for keel %s", spec[i].name, cmd);
		out->multi[out->n_multi++] = v;
	}
	out->val[i] = v;
	return 0;
}

/* A bool flag's value: "true" without one; -1 after kubectl's error for anything else. */
static int keel_flag_set_bool(const keel_flag_t *spec, int i, const char *v, keel_flags_t *out)
{
	out->val[i] = v ? v : "true";
	if (strcmp(out->val[i], "true") == 0 || strcmp(out->val[i], "false") == 0)
		return 0;
	fprintf(stderr, "error: invalid argument \"%s\" for \"--%s\" flag: strconv.ParseBool: "
		"parsing \"%s\": invalid syntax\n", out->val[i], spec[i].name, out->val[i]);
	return -1;
}

/* A value flag's value: inline, else the next argument (*a advances). */
static int keel_flag_take(const char *cmd, const keel_flag_t *spec, int i, const char *inline_val,
			  int argc, char **argv, int *a, keel_flags_t *out)
{
	const char *v = inline_val;
	if (!v) {
		if (*a + 1 >= argc) {
			fprintf(stderr, "error: flag needs an argument: --%s\nSee 'keel %s --help' "
				"for usage.\n", spec[i].name, cmd);
			return -1;
		}
		v = argv[++*a];
	}
	return keel_flag_store(cmd, spec, i, v, out) != 0 ? -1 : 0;
}

/* A cluster of shorthands as pflag reads it: "-fp" is -f -p; a value flag takes the rest of
 * the cluster ("-otable", "-o=json") or else the next argument; "-f=false" sets a bool. */
static int keel_flags_short(const char *cmd, int argc, char **argv, int *a,
			    const keel_flag_t *spec, keel_flags_t *out)
{
	const char *sh = argv[*a] + 1;
	while (*sh) {
		int i = keel_flag_find_short(spec, *sh);
		if (i < 0 && *sh == 'h') {
			out->help = true;
			sh++;
			continue;
		}
		if (i < 0) {
			fprintf(stderr, "error: unknown shorthand flag: '%c' in -%s\nSee 'keel %s "
				"--help' for usage.\n", *sh, sh, cmd);
			return -1;
		}
		const char *inline_val = NULL;
		if (sh[1] == '=')
			inline_val = sh + 2;
		else if (spec[i].type != KEEL_FLAG_BOOL && sh[1])
			inline_val = sh + 1;
		if (spec[i].type == KEEL_FLAG_BOOL) {
			if (keel_flag_set_bool(spec, i, inline_val, out) != 0)
				return -1;
		} else if (keel_flag_take(cmd, spec, i, inline_val, argc, argv, a, out) != 0) {
			return -1;
		}
		if (inline_val)
			break;
		sh++;
	}
	return 0;
}

int keel_flags_parse(const char *cmd, int argc, char **argv, const keel_flag_t *spec,
		     keel_flags_t *out)
{
	memset(out, 0, sizeof(*out));
	out->pos = calloc((size_t)argc + 1, sizeof(char *));
	if (!out->pos)
		return keel_fail("out of memory");
	bool only_pos = false;
	for (int a = 0; a < argc; a++) {
		char *arg = argv[a];
		if (only_pos || arg[0] != '-' || arg[1] == '\0') {
			out->pos[out->n_pos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (strcmp(arg, "--help") == 0) {
			out->help = true;
			continue;
		}
		if (arg[1] != '-') {
			if (keel_flags_short(cmd, argc, argv, &a, spec, out) != 0)
				return 1;
			continue;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int i = keel_flag_find_long(spec, name, len);
		if (i < 0) {
			fprintf(stderr, "error: unknown flag: --%.*s\nSee 'keel %s --help' for "
				"usage.\n", (int)len, name, cmd);
			return 1;
		}
		const char *inline_val = eq ? eq + 1 : NULL;
		if (spec[i].type == KEEL_FLAG_BOOL) {
			if (keel_flag_set_bool(spec, i, inline_val, out) != 0)
				return 1;
		} else if (keel_flag_take(cmd, spec, i, inline_val, argc, argv, &a, out) != 0) {
			return 1;
		}
	}
	return 0;
}

void keel_flags_free(keel_flags_t *f)
{
	free(f->pos);
	f->pos = NULL;
}

bool keel_flag_bool(const keel_flags_t *f, int i, bool dflt)
{
	if (!f->val[i])
		return dflt;
	return strcmp(f->val[i], "true") == 0;
}

void keel_usage(FILE *out, const char *usage, const keel_flag_t *spec)
{
	fprintf(out, "%s\n\nOptions:\n", usage);
	for (int i = 0; spec[i].name; i++) {
		char left[64];
		if (spec[i].shorthand)
			snprintf(left, sizeof(left), "-%c, --%s", spec[i].shorthand, spec[i].name);
		else
			snprintf(left, sizeof(left), "    --%s", spec[i].name);
		fprintf(out, "    %-28s %s\n", left, spec[i].usage);
	}
	fprintf(out, "    %-28s %s\n", "-h, --help", "help for this command");
	fprintf(out, "\nGlobal options: --endpoints, -n/--namespace, --request-timeout "
		"(see keel --help)\n");
}

int64_t keel_duration_ms(const char *s)
{
	if (!s || !*s)
		return -1;
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || v < 0)
			return -1;
		double unit;
		if (*end == '\0' && p == s)
			unit = 1000; /* plain number: seconds */
		else if (strncmp(end, "ms", 2) == 0)
			unit = 1, end += 2;
		else if (*end == 's')
			unit = 1000, end++;
		else if (*end == 'm')
			unit = 60000, end++;
		else if (*end == 'h')
			unit = 3600000, end++;
		else
			return -1;
		total += (int64_t)(v * unit);
		p = end;
	}
	return total;
}

/* ---- pure helpers --------------------------------------------------------------------------- */

void keel_human_duration(int64_t sec, char *buf, size_t n)
{
	if (sec < -1) {
		snprintf(buf, n, "<invalid>");
		return;
	}
	if (sec < 0)
		sec = 0;
	if (sec < 120) {
		snprintf(buf, n, "%llds", (long long)sec);
		return;
	}
	long long m = sec / 60, h = sec / 3600, d = h / 24;
	if (m < 10) {
		if (sec % 60)
			snprintf(buf, n, "%lldm%llds", m, (long long)(sec % 60));
		else
			snprintf(buf, n, "%lldm", m);
	} else if (m < 180) {
		snprintf(buf, n, "%lldm", m);
	} else if (h < 8) {
		if (m % 60)
			snprintf(buf, n, "%lldh%lldm", h, m % 60);
		else
			snprintf(buf, n, "%lldh", h);
	} else if (h < 48) {
		snprintf(buf, n, "%lldh", h);
	} else if (h < 24 * 8) {
		if (h % 24)
			snprintf(buf, n, "%lldd%lldh", d, h % 24);
		else
			snprintf(buf, n, "%lldd", d);
	} else if (h < 24 * 365 * 2) {
		snprintf(buf, n, "%lldd", d);
	} else if (h < 24 * 365 * 8) {
		if (d % 365)
			snprintf(buf, n, "%lldy%lldd", d / 365, d % 365);
		else
			snprintf(buf, n, "%lldy", d / 365);
	} else {
		snprintf(buf, n, "%lldy", d / 365);
	}
}

/* Unix seconds of an RFC 3339 UTC timestamp (what the cluster layer writes), -1 otherwise.
 * Local so the pure helpers need nothing from the store. */
static int64_t keel_time_parse(const char *s)
{
	struct tm tm = {0};
	if (!s)
		return -1;
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	return (int64_t)timegm(&tm);
}

void keel_age(const json_t *obj, int64_t now, char *buf, size_t n)
{
	const json_t *md = json_object_get(obj, "metadata");
	int64_t t = keel_time_parse(json_string_value(json_object_get(md, "creationTimestamp")));
	if (t < 0) {
		snprintf(buf, n, "<unknown>");
		return;
	}
	keel_human_duration(now - t, buf, n);
}

static const char *keel_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool keel_has_ready_condition(const json_t *pod)
{
	const json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
	size_t i;
	const json_t *c;
	json_array_foreach(conds, i, c) {
		const char *type = keel_str(c, "type"), *st = keel_str(c, "status");
		if (type && st && strcmp(type, "Ready") == 0 && strcmp(st, "True") == 0)
			return true;
	}
	return false;
}

void keel_pod_summarize(const json_t *pod, keel_pod_summary_t *s)
{
	memset(s, 0, sizeof(*s));
	const json_t *status = json_object_get(pod, "status");
	const json_t *spec = json_object_get(pod, "spec");
	s->total = (int)json_array_size(json_object_get(spec, "containers"));
	const char *phase = keel_str(status, "phase"), *preason = keel_str(status, "reason");
	snprintf(s->status, sizeof(s->status), "%s",
		 preason && *preason ? preason : phase && *phase ? phase : "Pending");
	const json_t *cs = json_object_get(status, "containerStatuses");
	bool running = false;
	/* kubectl walks the containers from the last: the first container's reason wins. */
	for (size_t i = json_array_size(cs); i-- > 0;) {
		const json_t *c = json_array_get(cs, i);
		const json_t *state = json_object_get(c, "state");
		const json_t *w = json_object_get(state, "waiting");
		const json_t *t = json_object_get(state, "terminated");
		s->restarts += (int)json_integer_value(json_object_get(c, "restartCount"));
		const json_t *last = json_object_get(json_object_get(c, "lastState"), "terminated");
		int64_t fin = keel_time_parse(keel_str(last, "finishedAt"));
		if (fin > s->last_restart)
			s->last_restart = fin;
		const char *wr = keel_str(w, "reason"), *tr = keel_str(t, "reason");
		if (w && wr && *wr) {
			snprintf(s->status, sizeof(s->status), "%s", wr);
		} else if (t && tr && *tr) {
			snprintf(s->status, sizeof(s->status), "%s", tr);
		} else if (t) {
			long long sig = json_integer_value(json_object_get(t, "signal"));
			if (sig)
				snprintf(s->status, sizeof(s->status), "Signal:%lld", sig);
			else
				snprintf(s->status, sizeof(s->status), "ExitCode:%lld",
					 (long long)json_integer_value(
						 json_object_get(t, "exitCode")));
		} else if (json_is_true(json_object_get(c, "ready")) &&
			   json_object_get(state, "running")) {
			running = true;
			s->ready++;
		}
	}
	if (strcmp(s->status, "Completed") == 0 && running)
		snprintf(s->status, sizeof(s->status), "%s",
			 keel_has_ready_condition(pod) ? "Running" : "NotReady");
	const json_t *md = json_object_get(pod, "metadata");
	if (json_object_get(md, "deletionTimestamp")) {
		bool unreachable = preason && strcmp(preason, "NodeLost") == 0;
		snprintf(s->status, sizeof(s->status), "%s",
			 unreachable ? "Unknown" : "Terminating");
	}
}

void keel_restarts_text(const keel_pod_summary_t *s, int64_t now, char *buf, size_t n)
{
	if (s->restarts == 0 || s->last_restart <= 0) {
		snprintf(buf, n, "%d", s->restarts);
		return;
	}
	char ago[32];
	keel_human_duration(now - s->last_restart, ago, sizeof(ago));
	snprintf(buf, n, "%d (%s ago)", s->restarts, ago);
}

void keel_node_status(const json_t *node, char *buf, size_t n)
{
	const json_t *conds = json_object_get(json_object_get(node, "status"), "conditions");
	const char *ready = NULL;
	size_t i;
	const json_t *c;
	json_array_foreach(conds, i, c) {
		const char *type = keel_str(c, "type");
		if (type && strcmp(type, "Ready") == 0)
			ready = keel_str(c, "status");
	}
	const char *text = !ready ? "Unknown" : strcmp(ready, "True") == 0 ? "Ready" : "NotReady";
	bool cordoned = json_is_true(json_object_get(json_object_get(node, "spec"),
						     "unschedulable"));
	snprintf(buf, n, "%s%s", text, cordoned ? ",SchedulingDisabled" : "");
}

keel_table_t *keel_table_new(size_t cols)
{
	keel_table_t *t = calloc(1, sizeof(*t));
	if (t)
		t->cols = cols;
	return t;
}

int keel_table_add(keel_table_t *t, const char *const *cells)
{
	if (t->rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->cols * sizeof(char *));
		if (!nc)
			return -1;
		t->cells = nc;
		t->cap = cap;
	}
	char **row = t->cells + t->rows * t->cols;
	for (size_t c = 0; c < t->cols; c++) {
		row[c] = strdup(cells[c] ? cells[c] : "");
		if (!row[c]) {
			while (c-- > 0)
				free(row[c]);
			return -1;
		}
	}
	t->rows++;
	return 0;
}

void keel_table_widths(const keel_table_t *t, size_t *widths)
{
	for (size_t c = 0; c < t->cols; c++) {
		widths[c] = 0;
		for (size_t r = 0; r < t->rows; r++) {
			size_t len = strlen(t->cells[r * t->cols + c]);
			if (len > widths[c])
				widths[c] = len;
		}
	}
}

void keel_table_print(const keel_table_t *t, const size_t *widths, size_t from, FILE *out)
{
	size_t own[64];
	if (!widths) {
		keel_table_widths(t, own);
		widths = own;
	}
	for (size_t r = from; r < t->rows; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const char *cell = t->cells[r * t->cols + c];
			if (c + 1 == t->cols) {
				fprintf(out, "%s\n", cell);
				continue;
			}
			size_t w = widths[c] + 3 < 6 ? 6 : widths[c] + 3;
			fprintf(out, "%-*s", (int)w, cell);
		}
	}
}

void keel_table_free(keel_table_t *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->rows * t->cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* Go's text/tabwriter: cells are tab-terminated; a column's block is a run of consecutive lines
 * that have a cell in that column, as wide as its widest cell plus padding. */
typedef struct keel_tw_line {
	const char *cells[KEEL_TW_MAX_CELLS];
	size_t lens[KEEL_TW_MAX_CELLS];
	size_t n; /* cells, the last one unterminated */
} keel_tw_line_t;

static void keel_tw_write(const keel_tw_line_t *lines, size_t l0, size_t l1, const size_t *widths,
			  size_t nw, FILE *out)
{
	for (size_t l = l0; l < l1; l++) {
		for (size_t j = 0; j < lines[l].n; j++) {
			fwrite(lines[l].cells[j], 1, lines[l].lens[j], out);
			if (j < nw && j + 1 < lines[l].n)
				for (size_t p = lines[l].lens[j]; p < widths[j]; p++)
					fputc(' ', out);
		}
		fputc('\n', out);
	}
}

static void keel_tw_format(const keel_tw_line_t *lines, size_t l0, size_t l1, size_t *widths,
			   size_t nw, size_t minwidth, size_t padding, FILE *out)
{
	size_t col = nw;
	for (size_t l = l0; l < l1; l++) {
		if (col + 1 >= lines[l].n || col >= KEEL_TW_MAX_CELLS)
			continue;
		keel_tw_write(lines, l0, l, widths, nw, out);
		l0 = l;
		size_t width = minwidth;
		for (; l < l1 && col + 1 < lines[l].n; l++)
			if (lines[l].lens[col] + padding > width)
				width = lines[l].lens[col] + padding;
		widths[col] = width;
		keel_tw_format(lines, l0, l, widths, nw + 1, minwidth, padding, out);
		l0 = l;
		l--;
	}
	keel_tw_write(lines, l0, l1, widths, nw, out);
}

void keel_tabwrite(const char *text, size_t minwidth, size_t padding, FILE *out)
{
	size_t n = 0, cap = 0;
	keel_tw_line_t *lines = NULL;
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			keel_tw_line_t *nl = realloc(lines, cap * sizeof(*nl));
			if (!nl) {
				free(lines);
				fputs(text, out);
				return;
			}
			lines = nl;
		}
		keel_tw_line_t *ln = &lines[n++];
		ln->n = 0;
		const char *c = p, *end = p + len;
		while (ln->n + 1 < KEEL_TW_MAX_CELLS) {
			const char *tab = memchr(c, '\t', (size_t)(end - c));
			if (!tab)
				break;
			ln->cells[ln->n] = c;
			ln->lens[ln->n++] = (size_t)(tab - c);
			c = tab + 1;
		}
		ln->cells[ln->n] = c;
		ln->lens[ln->n++] = (size_t)(end - c);
		p = eol ? eol + 1 : end;
	}
	size_t widths[KEEL_TW_MAX_CELLS];
	keel_tw_format(lines, 0, n, widths, 0, minwidth, padding, out);
	free(lines);
}

void keel_kind_qualified(const kc_kind_info_t *ki, char *buf, size_t n)
{
	const char *slash = strchr(ki->api_version, '/');
	if (slash)
		snprintf(buf, n, "%s.%.*s", ki->singular, (int)(slash - ki->api_version),
			 ki->api_version);
	else
		snprintf(buf, n, "%s", ki->singular);
}

/* ---- rows of each kind ---------------------------------------------------------------------- */

#define KEEL_MAX_COLS 16

typedef struct keel_view {
	kc_kind_t kind;
	bool wide;
	bool with_ns;    /* -A on a namespaced kind: NAMESPACE first */
	bool kind_names; /* several kinds printed: NAME shows "pod/x" */
	int64_t now;
} keel_view_t;

static const char *const keel_pod_cols[] = {"NAME", "READY", "STATUS", "RESTARTS", "AGE", NULL};
static const char *const keel_pod_wide[] = {"IP", "NODE", "NOMINATED NODE", "READINESS GATES",
					    NULL};
static const char *const keel_node_cols[] = {"NAME", "STATUS", "ROLES", "AGE", "VERSION", NULL};
static const char *const keel_node_wide[] = {"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
					     "KERNEL-VERSION", "CONTAINER-RUNTIME", NULL};
static const char *const keel_rs_cols[] = {"NAME", "DESIRED", "CURRENT", "READY", "AGE", NULL};
static const char *const keel_rs_wide[] = {"CONTAINERS", "IMAGES", "SELECTOR", NULL};
static const char *const keel_lease_cols[] = {"NAME", "HOLDER", "AGE", NULL};
static const char *const keel_no_wide[] = {NULL};

static size_t keel_view_header(const keel_view_t *v, const char **cells)
{
	const char *const *base, *const *wide;
	switch (v->kind) {
	case KC_POD: base = keel_pod_cols, wide = keel_pod_wide; break;
	case KC_NODE: base = keel_node_cols, wide = keel_node_wide; break;
	case KC_REPLICASET: base = keel_rs_cols, wide = keel_rs_wide; break;
	default: base = keel_lease_cols, wide = keel_no_wide; break;
	}
	size_t n = 0;
	if (v->with_ns)
		cells[n++] = "NAMESPACE";
	for (size_t i = 0; base[i]; i++)
		cells[n++] = base[i];
	for (size_t i = 0; v->wide && wide[i]; i++)
		cells[n++] = wide[i];
	return n;
}

/* Row cells live in one buffer per row: short texts joined with their own terminators. */
typedef struct keel_row {
	char buf[4096];
	size_t used;
	const char *cells[KEEL_MAX_COLS];
	size_t n;
} keel_row_t;

static void keel_row_add(keel_row_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void keel_row_add(keel_row_t *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *at = r->buf + r->used;
	size_t room = sizeof(r->buf) - r->used;
	int len = room > 1 ? vsnprintf(at, room, fmt, ap) : -1;
	va_end(ap);
	if (len < 0) {
		r->cells[r->n++] = "";
		return;
	}
	size_t used = (size_t)len < room ? (size_t)len + 1 : room;
	r->cells[r->n++] = at;
	r->used += used;
}

static const char *keel_or_none(const char *s)
{
	return s && *s ? s : "<none>";
}

static void keel_row_name(keel_row_t *r, const keel_view_t *v, const json_t *obj)
{
	if (v->with_ns)
		keel_row_add(r, "%s", keel_or_none(kc_namespace(obj)));
	if (v->kind_names) {
		char q[64];
		keel_kind_qualified(kc_kind_info(v->kind), q, sizeof(q));
		keel_row_add(r, "%s/%s", q, kc_name(obj) ? kc_name(obj) : "");
	} else {
		keel_row_add(r, "%s", kc_name(obj) ? kc_name(obj) : "");
	}
}

static void keel_row_pod(keel_row_t *r, const keel_view_t *v, const json_t *pod)
{
	keel_pod_summary_t s;
	char age[32], restarts[64];
	keel_pod_summarize(pod, &s);
	keel_age(pod, v->now, age, sizeof(age));
	keel_restarts_text(&s, v->now, restarts, sizeof(restarts));
	keel_row_add(r, "%d/%d", s.ready, s.total);
	keel_row_add(r, "%s", s.status);
	keel_row_add(r, "%s", restarts);
	keel_row_add(r, "%s", age);
	if (!v->wide)
		return;
	/* Keel's pods share their node's network: the host's IP is theirs. */
	const char *ip = kc_path_str(pod, "status.podIP");
	if (!ip)
		ip = kc_path_str(pod, "status.hostIP");
	keel_row_add(r, "%s", keel_or_none(ip));
	keel_row_add(r, "%s", keel_or_none(kc_path_str(pod, "spec.nodeName")));
	keel_row_add(r, "%s", keel_or_none(kc_path_str(pod, "status.nominatedNodeName")));
	keel_row_add(r, "%s", "<none>");
}

/* ROLES: node-role.kubernetes.io/<role> labels, and kubernetes.io/role's value. */
static void keel_node_roles(const json_t *node, char *buf, size_t n)
{
	const json_t *labels = kc_path(node, "metadata.labels");
	const char *key;
	const json_t *val;
	size_t used = 0;
	buf[0] = '\0';
	json_object_foreach((json_t *)labels, key, val) {
		const char *role = NULL;
		if (strncmp(key, "node-role.kubernetes.io/", 24) == 0)
			role = key + 24;
		else if (strcmp(key, "kubernetes.io/role") == 0)
			role = json_string_value(val);
		if (!role || !*role || used + strlen(role) + 2 >= n)
			continue;
		used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "," : "", role);
	}
	if (!used)
		snprintf(buf, n, "<none>");
}

static const char *keel_node_address(const json_t *node, const char *type)
{
	const json_t *addrs = kc_path(node, "status.addresses");
	size_t i;
	const json_t *a;
	json_array_foreach(addrs, i, a) {
		const char *t = keel_str(a, "type");
		if (t && strcmp(t, type) == 0)
			return keel_str(a, "address");
	}
	return NULL;
}

static const char *keel_or_unknown(const char *s)
{
	return s && *s ? s : "<unknown>";
}

static void keel_row_node(keel_row_t *r, const keel_view_t *v, const json_t *node)
{
	char status[64], roles[256], age[32];
	keel_node_status(node, status, sizeof(status));
	keel_node_roles(node, roles, sizeof(roles));
	keel_age(node, v->now, age, sizeof(age));
	keel_row_add(r, "%s", status);
	keel_row_add(r, "%s", roles);
	keel_row_add(r, "%s", age);
	keel_row_add(r, "%s", kc_path_str(node, "status.nodeInfo.kubeletVersion") ?
		     kc_path_str(node, "status.nodeInfo.kubeletVersion") : "");
	if (!v->wide)
		return;
	keel_row_add(r, "%s", keel_or_none(keel_node_address(node, "InternalIP")));
	keel_row_add(r, "%s", keel_or_none(keel_node_address(node, "ExternalIP")));
	keel_row_add(r, "%s", keel_or_unknown(kc_path_str(node, "status.nodeInfo.osImage")));
	keel_row_add(r, "%s", keel_or_unknown(kc_path_str(node, "status.nodeInfo.kernelVersion")));
	keel_row_add(r, "%s",
		     keel_or_unknown(kc_path_str(node, "status.nodeInfo.containerRuntimeVersion")));
}

/* Joins the containers' names (field "name") or commands ("command" words) with commas. */
static void keel_containers_join(const json_t *containers, bool commands, char *buf, size_t n)
{
	size_t used = 0, i;
	const json_t *c;
	buf[0] = '\0';
	json_array_foreach(containers, i, c) {
		if (used + 2 >= n)
			break;
		if (i)
			buf[used++] = ',', buf[used] = '\0';
		if (!commands) {
			used += (size_t)snprintf(buf + used, n - used, "%s",
						 keel_str(c, "name") ? keel_str(c, "name") : "");
		} else {
			size_t j;
			const json_t *w;
			json_array_foreach(json_object_get(c, "command"), j, w) {
				if (used + 2 >= n)
					break;
				used += (size_t)snprintf(buf + used, n - used, "%s%s", j ? " " : "",
							 json_string_value(w) ? json_string_value(w)
									      : "");
			}
		}
		if (used >= n)
			used = n - 1;
	}
}

static void keel_row_rs(keel_row_t *r, const keel_view_t *v, const json_t *rs)
{
	char age[32];
	keel_age(rs, v->now, age, sizeof(age));
	keel_row_add(r, "%lld", (long long)kc_path_int(rs, "spec.replicas", 1));
	keel_row_add(r, "%lld", (long long)kc_path_int(rs, "status.replicas", 0));
	keel_row_add(r, "%lld", (long long)kc_path_int(rs, "status.readyReplicas", 0));
	keel_row_add(r, "%s", age);
	if (!v->wide)
		return;
	const json_t *containers = kc_path(rs, "spec.template.spec.containers");
	char names[1024], cmds[1024];
	keel_containers_join(containers, false, names, sizeof(names));
	keel_containers_join(containers, true, cmds, sizeof(cmds));
	keel_row_add(r, "%s", names);
	keel_row_add(r, "%s", cmds);
	kc_selector_t *sel = NULL;
	char msg[256];
	char *text = NULL;
	if (kc_selector_from_json(kc_path(rs, "spec.selector"), &sel, msg, sizeof(msg)) == 0)
		text = kc_selector_string(sel);
	keel_row_add(r, "%s", text && *text ? text : "<none>");
	free(text);
	kc_selector_free(sel);
}

static void keel_row_lease(keel_row_t *r, const keel_view_t *v, const json_t *lease)
{
	char age[32];
	keel_age(lease, v->now, age, sizeof(age));
	keel_row_add(r, "%s", keel_or_none(kc_path_str(lease, "spec.holderIdentity")));
	keel_row_add(r, "%s", age);
}

static void keel_view_row(const keel_view_t *v, const json_t *obj, keel_row_t *r)
{
	r->used = 0;
	r->n = 0;
	keel_row_name(r, v, obj);
	switch (v->kind) {
	case KC_POD: keel_row_pod(r, v, obj); break;
	case KC_NODE: keel_row_node(r, v, obj); break;
	case KC_REPLICASET: keel_row_rs(r, v, obj); break;
	default: keel_row_lease(r, v, obj); break;
	}
}

/* ---- get ------------------------------------------------------------------------------------ */

static const keel_flag_t keel_get_flags[] = {
	{"output", 'o', KEEL_FLAG_VALUE, "output format: wide, json, yaml or name"},
	{"selector", 'l', KEEL_FLAG_VALUE, "label selector (app=web,tier!=db,env in (a,b))"},
	{"watch", 'w', KEEL_FLAG_BOOL, "after listing, print a row for every change"},
	{"no-headers", 0, KEEL_FLAG_BOOL, "omit the header row of tables"},
	{"all-namespaces", 'A', KEEL_FLAG_BOOL, "list across every namespace"},
	{"watch-only", 0, KEEL_FLAG_BOOL, "print only the changes, not the initial list"},
	{NULL, 0, 0, NULL},
};
enum { GF_OUTPUT, GF_SELECTOR, GF_WATCH, GF_NO_HEADERS, GF_ALL_NS, GF_WATCH_ONLY };

static const char keel_get_usage[] =
	"Display one or many resources: nodes (no), pods (po), replicasets (rs), leases.\n\n"
	"Usage:\n"
	"  keel get TYPE [NAME ...] [-o wide|json|yaml|name] [-l SELECTOR] [-w] [-A]\n"
	"  keel get TYPE/NAME ...";

typedef enum { OUT_TABLE = 0, OUT_WIDE, OUT_JSON, OUT_YAML, OUT_NAME } keel_out_t;

/* One request of `keel get`: a kind and the names asked for (none: a list). */
typedef struct keel_get_req {
	const kc_kind_info_t *ki;
	const char **names;
	size_t n_names;
	int64_t *rvs;        /* per name: the resourceVersion printed first (-w skips older) */
} keel_get_req_t;

typedef struct keel_get {
	keel_ctx_t *c;
	keel_out_t out;
	bool no_headers;
	kc_selector_t *sel;
	keel_get_req_t reqs[8];
	size_t n_reqs;
	bool single;         /* one object named: -o json/yaml print it, not a List */
	int rc;
} keel_get_t;

static int keel_get_parse_out(const char *o, keel_out_t *out)
{
	if (!o || !*o)
		*out = OUT_TABLE;
	else if (strcmp(o, "wide") == 0)
		*out = OUT_WIDE;
	else if (strcmp(o, "json") == 0)
		*out = OUT_JSON;
	else if (strcmp(o, "yaml") == 0)
		*out = OUT_YAML;
	else if (strcmp(o, "name") == 0)
		*out = OUT_NAME;
	else
		return keel_fail("unable to match a printer suitable for the output format \"%s\", "
				 "allowed formats are: json,name,wide,yaml", o);
	return 0;
}

static const kc_kind_info_t *keel_lookup_kind(const char *name)
{
	const kc_kind_info_t *ki = kc_kind_lookup(name);
	if (!ki)
		fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", name);
	return ki;
}

/* "pods a b" or "rs/web pod/x": requests grouped by kind, in the order first given. */
static int keel_get_requests(keel_get_t *g, char **pos, int n_pos, const char **names_buf)
{
	if (strchr(pos[0], '/')) {
		const kc_kind_info_t *kinds[64];
		if (n_pos > 64)
			return keel_fail("too many arguments");
		for (int i = 0; i < n_pos; i++) {
			char *slash = strchr(pos[i], '/');
			if (!slash)
				return keel_fail("there is no need to specify a resource type as a "
						 "separate argument when passing arguments in "
						 "resource/name form (e.g. 'keel get resource/<"
						 "resource_name>' instead of 'keel get resource "
						 "resource/<resource_name>'");
			*slash = '\0';
			kinds[i] = keel_lookup_kind(pos[i]);
			*slash = '/';
			if (!kinds[i])
				return 1;
		}
		size_t used = 0;
		for (int i = 0; i < n_pos; i++) {
			size_t r;
			for (r = 0; r < g->n_reqs && g->reqs[r].ki != kinds[i]; r++)
				;
			if (r < g->n_reqs)
				continue;
			if (g->n_reqs == 8)
				return keel_fail("too many resource types");
			g->reqs[r] = (keel_get_req_t){.ki = kinds[i], .names = names_buf + used};
			for (int j = i; j < n_pos; j++)
				if (kinds[j] == kinds[i])
					names_buf[used++] = strchr(pos[j], '/') + 1;
			g->reqs[r].n_names = (size_t)(names_buf + used - g->reqs[r].names);
			g->n_reqs++;
		}
		g->single = n_pos == 1;
		return 0;
	}
	char *types = pos[0];
	for (char *save = NULL, *t = strtok_r(types, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		const kc_kind_info_t *ki = keel_lookup_kind(t);
		if (!ki)
			return 1;
		if (g->n_reqs == 8)
			return keel_fail("too many resource types");
		g->reqs[g->n_reqs].ki = ki;
		g->reqs[g->n_reqs].names = (const char **)(pos + 1);
		g->reqs[g->n_reqs].n_names = (size_t)n_pos - 1;
		g->n_reqs++;
	}
	g->single = g->n_reqs == 1 && n_pos == 2;
	return 0;
}

/* Fetches a request's objects into items (a new array); prints NotFound errors. */
/* *revision: where a watch starts so that no later change is missed: the list's revision, or
 * for named objects the oldest of their resourceVersions (rq->rvs then filters replays). */
static int keel_get_fetch(keel_get_t *g, keel_get_req_t *rq, json_t *items, int64_t *revision)
{
	keel_t *k = keel_ctx_store(g->c);
	keel_error_t err = {0};
	if (!k)
		return -1;
	const char *ns = rq->ki->namespaced ? g->c->ns : NULL;
	*revision = 0;
	if (rq->n_names) {
		free(rq->rvs);
		rq->rvs = calloc(rq->n_names, sizeof(int64_t));
		if (!rq->rvs)
			return keel_fail("out of memory"), -1;
		for (size_t i = 0; i < rq->n_names; i++) {
			json_t *obj = NULL;
			if (kc_get(k, rq->ki->kind, ns, rq->names[i], &obj, &err) != 0) {
				keel_print_error(&err);
				g->rc = 1;
				if (err.code != KEEL_CODE_NOT_FOUND)
					return -1;
				continue;
			}
			rq->rvs[i] = kc_resource_version(obj);
			if (*revision == 0 || rq->rvs[i] < *revision)
				*revision = rq->rvs[i];
			if (!g->sel || kc_selector_matches(g->sel, kc_path(obj, "metadata.labels")))
				json_array_append_new(items, obj);
			else
				json_decref(obj);
		}
		return 0;
	}
	json_t *all = NULL;
	if (kc_list(k, rq->ki->kind, rq->ki->namespaced && !g->c->all_ns ? ns : NULL, &all,
		    revision, &err) != 0) {
		keel_print_error(&err);
		g->rc = 1;
		return -1;
	}
	size_t i;
	json_t *obj;
	json_array_foreach(all, i, obj)
		if (!g->sel || kc_selector_matches(g->sel, kc_path(obj, "metadata.labels")))
			json_array_append(items, obj);
	json_decref(all);
	return 0;
}

static void keel_print_json(const json_t *v, FILE *out)
{
	char *text = json_dumps(v, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	if (text)
		fprintf(out, "%s\n", text);
	free(text);
}

static void keel_print_yaml(const json_t *v, FILE *out)
{
	char *text = kc_yaml_dump(v);
	if (text)
		fputs(text, out);
	free(text);
}

static json_t *keel_list_wrap(json_t *items)
{
	return json_pack("{s:s, s:O, s:s, s:{s:s}}", "apiVersion", "v1", "items", items,
			 "kind", "List", "metadata", "resourceVersion", "");
}

static void keel_print_name(const kc_kind_info_t *ki, const json_t *obj, FILE *out)
{
	char q[64];
	keel_kind_qualified(ki, q, sizeof(q));
	fprintf(out, "%s/%s\n", q, kc_name(obj) ? kc_name(obj) : "");
	fflush(out);
}

/* The printed state of one kind's table, kept for -w's rows. */
typedef struct keel_get_table {
	keel_view_t view;
	size_t widths[KEEL_MAX_COLS];
	size_t ncols;
	bool header_done;
} keel_get_table_t;

static void keel_get_print_table(keel_get_t *g, keel_get_table_t *gt, json_t *items)
{
	const char *hdr[KEEL_MAX_COLS];
	size_t ncols = keel_view_header(&gt->view, hdr);
	keel_table_t *t = keel_table_new(ncols);
	keel_row_t *row = malloc(sizeof(*row));
	if (!t || !row) {
		keel_table_free(t);
		free(row);
		return;
	}
	/* Without headers kubectl's tabwriter never sees them: widths come from the rows. */
	if (!g->no_headers)
		keel_table_add(t, hdr);
	size_t i;
	json_t *obj;
	json_array_foreach(items, i, obj) {
		keel_view_row(&gt->view, obj, row);
		keel_table_add(t, row->cells);
	}
	keel_table_widths(t, gt->widths);
	gt->ncols = ncols;
	if (json_array_size(items) > 0) {
		keel_table_print(t, gt->widths, 0, stdout);
		gt->header_done = true;
	}
	fflush(stdout);
	free(row);
	keel_table_free(t);
}

/* One object as -w prints it: a row padded to the first table's widths, or the object. */
static void keel_get_print_change(keel_get_t *g, keel_get_table_t *gt, const kc_kind_info_t *ki,
				  const json_t *obj)
{
	switch (g->out) {
	case OUT_JSON: keel_print_json(obj, stdout); break;
	case OUT_YAML: fputs("---\n", stdout); keel_print_yaml(obj, stdout); break;
	case OUT_NAME: keel_print_name(ki, obj, stdout); break;
	default: {
		keel_table_t *t = keel_table_new(gt->ncols);
		keel_row_t *row = malloc(sizeof(*row));
		const char *hdr[KEEL_MAX_COLS];
		if (!t || !row) {
			keel_table_free(t);
			free(row);
			return;
		}
		bool header = !gt->header_done && !g->no_headers;
		keel_view_header(&gt->view, hdr);
		if (header)
			keel_table_add(t, hdr);
		keel_view_row(&gt->view, obj, row);
		keel_table_add(t, row->cells);
		size_t w[KEEL_MAX_COLS];
		keel_table_widths(t, w);
		for (size_t c = 0; c < gt->ncols; c++)
			if (gt->widths[c] > w[c])
				w[c] = gt->widths[c];
		keel_table_print(t, w, 0, stdout);
		gt->header_done = true;
		keel_table_free(t);
		free(row);
	}
	}
	fflush(stdout);
}

/* ---- get -w: a store watch from the list's revision ---------------------------------------- */

typedef struct keel_watcher {
	keel_get_t *g;
	keel_get_table_t *gt;
	const keel_get_req_t *rq;
	volatile sig_atomic_t *stop;
	volatile sig_atomic_t ended;
	char message[512];
} keel_watcher_t;

/* An event is printed when it is about a named object (any, without names), newer than what
 * was printed of it, and matches the selector. */
static bool keel_watch_wanted(const keel_watcher_t *w, const json_t *obj, int64_t mod_revision)
{
	if (w->rq->n_names) {
		size_t i;
		for (i = 0; i < w->rq->n_names; i++)
			if (kc_name(obj) && strcmp(kc_name(obj), w->rq->names[i]) == 0)
				break;
		if (i == w->rq->n_names || mod_revision <= w->rq->rvs[i])
			return false;
	}
	return !w->g->sel || kc_selector_matches(w->g->sel, kc_path(obj, "metadata.labels"));
}

static json_t *keel_kv_object(const keel_kv_t *kv)
{
	json_t *obj = json_loadb((const char *)kv->value, kv->value_len, 0, NULL);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return NULL;
	}
	char rv[32];
	snprintf(rv, sizeof(rv), "%lld", (long long)kv->mod_revision);
	kc_path_set(obj, "metadata.resourceVersion", json_string(rv));
	return obj;
}

static void keel_watch_cb(void *ud, const keel_watch_resp_t *resp)
{
	keel_watcher_t *w = ud;
	if (resp->canceled) {
		snprintf(w->message, sizeof(w->message), "%s",
			 resp->compact_revision > 0 ? "the watch's revision has been compacted" :
			 resp->cancel_reason);
		w->ended = 1;
		return;
	}
	for (size_t i = 0; i < resp->n_events; i++) {
		const keel_event_t *ev = &resp->events[i];
		const keel_kv_t *kv = ev->type == KEEL_EVENT_PUT ? &ev->kv : ev->prev_kv;
		if (!kv)
			continue;
		json_t *obj = keel_kv_object(kv);
		/* ev->kv carries the event's revision (a delete's too; kv may be its prev_kv). */
		if (obj && keel_watch_wanted(w, obj, ev->kv.mod_revision))
			keel_get_print_change(w->g, w->gt, w->rq->ki, obj);
		json_decref(obj);
	}
}

static int keel_get_watch(keel_get_t *g, keel_get_table_t *gt, const keel_get_req_t *rq,
			  int64_t revision)
{
	keel_t *k = keel_ctx_store(g->c);
	if (!k)
		return 1;
	const char *ns = rq->ki->namespaced && !g->c->all_ns ? g->c->ns : NULL;
	char *prefix = kc_prefix(rq->ki->kind, ns);
	if (!prefix)
		return keel_fail("out of memory");
	size_t plen = strlen(prefix);
	uint8_t *end = malloc(plen + 1);
	size_t end_len = end ? keel_prefix_end(prefix, plen, end) : 0;
	keel_watcher_t w = {.g = g, .gt = gt, .rq = rq, .stop = kc_signals_install()};
	keel_watch_req_t req = {.key = prefix, .key_len = plen, .range_end = end,
				.range_end_len = end_len, .start_revision = revision + 1,
				.prev_kv = true};
	keel_watch_t *h = NULL;
	keel_error_t err = {0};
	int rc = 0;
	if (!end || keel_watch(k, &req, keel_watch_cb, &w, &h, &err) != 0) {
		if (end)
			keel_print_error(&err);
		rc = 1;
	}
	while (rc == 0 && !*w.stop && !w.ended) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (h)
		keel_watch_cancel(h);
	if (w.ended && !*w.stop)
		rc = keel_fail("watch ended: %s", w.message);
	free(end);
	free(prefix);
	return rc;
}

static void keel_get_no_resources(keel_get_t *g)
{
	bool namespaced = false;
	for (size_t r = 0; r < g->n_reqs; r++)
		namespaced |= g->reqs[r].ki->namespaced;
	if (namespaced && !g->c->all_ns)
		fprintf(stderr, "No resources found in %s namespace.\n", g->c->ns);
	else
		fprintf(stderr, "No resources found\n");
}

static int keel_get_run(keel_get_t *g, bool watch, bool watch_only)
{
	json_t *lists[8] = {0};
	int64_t revs[8] = {0};
	size_t total = 0;
	bool any_list = false;
	for (size_t r = 0; r < g->n_reqs; r++) {
		lists[r] = json_array();
		if (!lists[r] || keel_get_fetch(g, &g->reqs[r], lists[r], &revs[r]) != 0) {
			for (size_t j = 0; j <= r; j++)
				json_decref(lists[j]);
			return 1;
		}
		total += json_array_size(lists[r]);
		any_list |= g->reqs[r].n_names == 0;
	}
	keel_get_table_t gts[8];
	memset(gts, 0, sizeof(gts));
	size_t printed_tables = 0;
	if (g->out == OUT_JSON || g->out == OUT_YAML) {
		if (!watch_only) {
			json_t *all = json_array();
			for (size_t r = 0; r < g->n_reqs; r++)
				json_array_extend(all, lists[r]);
			if (watch) {
				/* kubectl -w -o json|yaml: each object alone, like the changes */
				size_t i;
				json_t *one;
				json_array_foreach(all, i, one) {
					if (g->out == OUT_YAML && i)
						fputs("---\n", stdout);
					g->out == OUT_JSON ? keel_print_json(one, stdout) :
							     keel_print_yaml(one, stdout);
				}
			} else if (g->single && json_array_size(all) == 1) {
				json_t *one = json_array_get(all, 0);
				g->out == OUT_JSON ? keel_print_json(one, stdout) :
						     keel_print_yaml(one, stdout);
			} else if (!g->single || json_array_size(all) > 0) {
				json_t *list = keel_list_wrap(all);
				g->out == OUT_JSON ? keel_print_json(list, stdout) :
						     keel_print_yaml(list, stdout);
				json_decref(list);
			}
			json_decref(all);
		}
	} else {
		for (size_t r = 0; r < g->n_reqs; r++) {
			gts[r].view.kind = g->reqs[r].ki->kind;
			gts[r].view.wide = g->out == OUT_WIDE;
			gts[r].view.with_ns = g->c->all_ns && g->reqs[r].ki->namespaced;
			gts[r].view.kind_names = g->n_reqs > 1;
			gts[r].view.now = (int64_t)time(NULL);
			if (watch_only) {
				json_t *none = json_array();
				keel_get_print_table(g, &gts[r], none);
				json_decref(none);
				continue;
			}
			if (json_array_size(lists[r]) == 0 && g->out != OUT_NAME) {
				keel_get_print_table(g, &gts[r], lists[r]);
				continue;
			}
			if (g->out == OUT_NAME) {
				size_t i;
				json_t *obj;
				json_array_foreach(lists[r], i, obj)
					keel_print_name(g->reqs[r].ki, obj, stdout);
				continue;
			}
			if (printed_tables++)
				fputc('\n', stdout);
			keel_get_print_table(g, &gts[r], lists[r]);
		}
		if (total == 0 && any_list && !watch_only)
			keel_get_no_resources(g);
	}
	fflush(stdout);
	for (size_t r = 0; r < g->n_reqs; r++)
		json_decref(lists[r]);
	if (!watch || g->rc)
		return g->rc;
	if (g->n_reqs != 1)
		return keel_fail("you may only specify a single resource type");
	return keel_get_watch(g, &gts[0], &g->reqs[0], revs[0]);
}

int keel_get_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	keel_get_t g = {.c = c};
	if (keel_flags_parse("get", argc, argv, keel_get_flags, &f) != 0) {
		keel_flags_free(&f);
		return 1;
	}
	int rc = 1;
	const char **names = NULL;
	if (f.help) {
		keel_usage(stdout, keel_get_usage, keel_get_flags);
		rc = 0;
		goto out;
	}
	if (keel_flag_bool(&f, GF_ALL_NS, false))
		c->all_ns = true;
	g.no_headers = keel_flag_bool(&f, GF_NO_HEADERS, false);
	if (keel_get_parse_out(f.val[GF_OUTPUT], &g.out) != 0)
		goto out;
	if (f.n_pos == 0) {
		fprintf(stderr, "You must specify the type of resource to get. Use \"keel get "
			"--help\" for the supported types.\nerror: Required resource not "
			"specified.\n");
		goto out;
	}
	if (f.val[GF_SELECTOR]) {
		char msg[512];
		if (kc_selector_parse(f.val[GF_SELECTOR], &g.sel, msg, sizeof(msg)) != 0) {
			keel_fail("%s", msg);
			goto out;
		}
	}
	names = calloc((size_t)f.n_pos + 1, sizeof(char *));
	if (!names || keel_get_requests(&g, f.pos, f.n_pos, names) != 0)
		goto out;
	bool watch_only = keel_flag_bool(&f, GF_WATCH_ONLY, false);
	rc = keel_get_run(&g, watch_only || keel_flag_bool(&f, GF_WATCH, false), watch_only);
out:
	for (size_t r = 0; r < g.n_reqs; r++)
		free(g.reqs[r].rvs);
	free(names);
	kc_selector_free(g.sel);
	keel_flags_free(&f);
	return rc;
}

/* ---- describe ------------------------------------------------------------------------------- */

static const keel_flag_t keel_describe_flags[] = {
	{"selector", 'l', KEEL_FLAG_VALUE, "label selector"},
	{"all-namespaces", 'A', KEEL_FLAG_BOOL, "describe across every namespace"},
	{NULL, 0, 0, NULL},
};

static const char keel_describe_usage[] =
	"Show details of a resource or group of resources.\n\n"
	"Usage:\n"
	"  keel describe TYPE [NAME ...] [-l SELECTOR]\n"
	"  keel describe TYPE/NAME";

/* "Key:\tvalue": keel_tabwrite aligns the values of each block of such lines, as kubectl's
 * describe does through its tabwriter. */
static void keel_d(FILE *o, int indent, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void keel_d(FILE *o, int indent, const char *key, const char *fmt, ...)
{
	fprintf(o, "%*s%s:\t", indent, "", key);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(o, fmt, ap);
	va_end(ap);
	fputc('\n', o);
}

/* Labels/annotations: first on the key's line, the rest aligned under it; "<none>". */
static void keel_d_map(FILE *o, int indent, const char *key, const json_t *map)
{
	if (json_object_size(map) == 0) {
		keel_d(o, indent, key, "<none>");
		return;
	}
	const char *k;
	const json_t *v;
	bool first = true;
	json_object_foreach((json_t *)map, k, v) {
		char val[1024];
		if (json_is_string(v))
			snprintf(val, sizeof(val), "%s", json_string_value(v));
		else {
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			snprintf(val, sizeof(val), "%s", t ? t : "");
			free(t);
		}
		if (first)
			keel_d(o, indent, key, "%s=%s", k, val);
		else
			fprintf(o, "%*s\t%s=%s\n", indent, "", k, val);
		first = false;
	}
}

/* kubectl's describe times: "Fri, 27 Nov 2026 15:04:05 +0000"; "<none>" when absent. */
static void keel_time_human(const char *ts, char *buf, size_t n)
{
	int64_t t = keel_time_parse(ts);
	struct tm tm;
	time_t tt = (time_t)t;
	if (t < 0 || !gmtime_r(&tt, &tm) ||
	    strftime(buf, n, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		snprintf(buf, n, "<none>");
}

static void keel_d_time(FILE *o, int indent, const char *key, const char *ts)
{
	char buf[64];
	keel_time_human(ts, buf, sizeof(buf));
	keel_d(o, indent, key, "%s", buf);
}

static void keel_d_conditions(FILE *o, const json_t *conds, bool node)
{
	if (json_array_size(conds) == 0) {
		fprintf(o, "Conditions:\t<none>\n");
		return;
	}
	fprintf(o, "Conditions:\n");
	if (node)
		fprintf(o,
			"  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n"
			"  ----\t------\t-----------------\t------------------\t------\t-------\n");
	else
		fprintf(o, "  Type\tStatus\n");
	size_t i;
	const json_t *c;
	json_array_foreach(conds, i, c) {
		const char *type = keel_str(c, "type"), *st = keel_str(c, "status");
		if (!node) {
			fprintf(o, "  %s \t%s \n", type ? type : "", st ? st : "");
			continue;
		}
		char hb[64], tr[64];
		keel_time_human(keel_str(c, "lastHeartbeatTime"), hb, sizeof(hb));
		keel_time_human(keel_str(c, "lastTransitionTime"), tr, sizeof(tr));
		const char *reason = keel_str(c, "reason"), *msg = keel_str(c, "message");
		fprintf(o, "  %s\t%s\t%s\t%s\t%s\t%s\n", type ? type : "", st ? st : "", hb, tr,
			reason ? reason : "", msg ? msg : "");
	}
}

static void keel_d_state(FILE *o, int in, const char *key, const json_t *state)
{
	const json_t *s;
	if ((s = json_object_get(state, "running"))) {
		keel_d(o, in, key, "Running");
		keel_d_time(o, in + 2, "Started", keel_str(s, "startedAt"));
	} else if ((s = json_object_get(state, "waiting"))) {
		keel_d(o, in, key, "Waiting");
		if (keel_str(s, "reason"))
			keel_d(o, in + 2, "Reason", "%s", keel_str(s, "reason"));
		if (keel_str(s, "message"))
			keel_d(o, in + 2, "Message", "%s", keel_str(s, "message"));
	} else if ((s = json_object_get(state, "terminated"))) {
		keel_d(o, in, key, "Terminated");
		if (keel_str(s, "reason"))
			keel_d(o, in + 2, "Reason", "%s", keel_str(s, "reason"));
		keel_d(o, in + 2, "Exit Code", "%lld",
		       (long long)json_integer_value(json_object_get(s, "exitCode")));
		if (json_integer_value(json_object_get(s, "signal")))
			keel_d(o, in + 2, "Signal", "%lld",
			       (long long)json_integer_value(json_object_get(s, "signal")));
		keel_d_time(o, in + 2, "Started", keel_str(s, "startedAt"));
		keel_d_time(o, in + 2, "Finished", keel_str(s, "finishedAt"));
	} else {
		keel_d(o, in, key, "Waiting");
	}
}

static void keel_d_resources(FILE *o, int in, const char *key, const json_t *res)
{
	if (json_object_size(res) == 0)
		return;
	fprintf(o, "%*s%s:\n", in, "", key);
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)res, k, v) {
		char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
		keel_d(o, in + 2, k, "%s", t ? t : json_string_value(v));
		free(t);
	}
}

/* A pod's containers (is_pod: with their states) or a template's. */
static void keel_d_containers(FILE *o, const json_t *spec, const json_t *status, bool is_pod,
			      int indent)
{
	const json_t *cs = json_object_get(status, "containerStatuses");
	/* kubectl's layout: a pod's container names at 2, a template's at 3; fields at 4. */
	int in = 4;
	fprintf(o, "%*sContainers:\n", indent, "");
	size_t i;
	const json_t *c;
	json_array_foreach(json_object_get(spec, "containers"), i, c) {
		const char *name = keel_str(c, "name") ? keel_str(c, "name") : "";
		const json_t *st = NULL;
		size_t j;
		const json_t *x;
		json_array_foreach(cs, j, x)
			if (keel_str(x, "name") && strcmp(keel_str(x, "name"), name) == 0)
				st = x;
		fprintf(o, "%*s%s:\n", indent ? indent + 1 : 2, "", name);
		if (st && keel_str(st, "containerID"))
			keel_d(o, in, "Container ID", "%s", keel_str(st, "containerID"));
		const json_t *cmd = json_object_get(c, "command"),
			     *args = json_object_get(c, "args");
		if (json_array_size(cmd)) {
			fprintf(o, "%*sCommand:\n", in, "");
			json_array_foreach(cmd, j, x)
				fprintf(o, "%*s%s\n", in + 2, "",
					json_string_value(x) ? json_string_value(x) : "");
		}
		if (json_array_size(args)) {
			fprintf(o, "%*sArgs:\n", in, "");
			json_array_foreach(args, j, x)
				fprintf(o, "%*s%s\n", in + 2, "",
					json_string_value(x) ? json_string_value(x) : "");
		}
		if (st) {
			keel_d_state(o, in, "State", json_object_get(st, "state"));
			if (json_object_size(json_object_get(st, "lastState")))
				keel_d_state(o, in, "Last State", json_object_get(st, "lastState"));
			keel_d(o, in, "Ready", "%s",
			       json_is_true(json_object_get(st, "ready")) ? "True" : "False");
			keel_d(o, in, "Restart Count", "%lld",
			       (long long)json_integer_value(json_object_get(st, "restartCount")));
		} else if (is_pod) {
			keel_d(o, in, "State", "Waiting");
			keel_d(o, in, "Ready", "False");
			keel_d(o, in, "Restart Count", "0");
		}
		const json_t *res = json_object_get(c, "resources");
		keel_d_resources(o, in, "Limits", json_object_get(res, "limits"));
		keel_d_resources(o, in, "Requests", json_object_get(res, "requests"));
		const json_t *env = json_object_get(c, "env");
		if (json_array_size(env) == 0) {
			keel_d(o, in, "Environment", "<none>");
		} else {
			fprintf(o, "%*sEnvironment:\n", in, "");
			json_array_foreach(env, j, x)
				fprintf(o, "%*s%s:\t%s\n", in + 2, "",
					keel_str(x, "name") ? keel_str(x, "name") : "",
					keel_str(x, "value") ? keel_str(x, "value") : "");
		}
		if (keel_str(c, "workingDir"))
			keel_d(o, in, "Working Dir", "%s", keel_str(c, "workingDir"));
	}
}

static void keel_d_meta(FILE *o, const json_t *obj, bool namespaced)
{
	keel_d(o, 0, "Name", "%s", kc_name(obj) ? kc_name(obj) : "");
	if (namespaced)
		keel_d(o, 0, "Namespace", "%s", keel_or_none(kc_namespace(obj)));
}

static void keel_d_tolerations(FILE *o, const json_t *tols)
{
	if (json_array_size(tols) == 0) {
		keel_d(o, 0, "Tolerations", "<none>");
		return;
	}
	size_t i;
	const json_t *t;
	json_array_foreach(tols, i, t) {
		char line[512];
		const char *key = keel_str(t, "key"), *op = keel_str(t, "operator");
		const char *val = keel_str(t, "value"), *eff = keel_str(t, "effect");
		/* kubectl: "key=value:Effect", or "key op=Exists:Effect" */
		const char *mid = "", *shown = "";
		if (op && strcmp(op, "Exists") == 0)
			mid = " op=Exists";
		else if (val && *val)
			mid = "=", shown = val;
		snprintf(line, sizeof(line), "%s%s%s%s%s", key ? key : "", mid, shown,
			 eff && *eff ? ":" : "", eff ? eff : "");
		if (i == 0)
			keel_d(o, 0, "Tolerations", "%s", line);
		else
			fprintf(o, "\t%s\n", line);
	}
}

static void keel_describe_pod(FILE *o, const json_t *pod)
{
	const json_t *spec = json_object_get(pod, "spec"), *status = json_object_get(pod, "status");
	keel_pod_summary_t s;
	keel_pod_summarize(pod, &s);
	keel_d_meta(o, pod, true);
	keel_d(o, 0, "Priority", "0");
	const char *node = keel_str(spec, "nodeName");
	const char *host = keel_str(status, "hostIP");
	if (node)
		keel_d(o, 0, "Node", "%s/%s", node, host ? host : "");
	else
		keel_d(o, 0, "Node", "<none>");
	if (keel_str(status, "startTime"))
		keel_d_time(o, 0, "Start Time", keel_str(status, "startTime"));
	keel_d_map(o, 0, "Labels", kc_path(pod, "metadata.labels"));
	keel_d_map(o, 0, "Annotations", kc_path(pod, "metadata.annotations"));
	if (kc_deleting(pod)) {
		keel_d(o, 0, "Status", "Terminating (lasts %s)", "<unknown>");
		keel_d(o, 0, "Termination Grace Period", "%llds", (long long)
		       kc_path_int(pod, "metadata.deletionGracePeriodSeconds", 30));
	} else {
		keel_d(o, 0, "Status", "%s", keel_str(status, "phase") ? keel_str(status, "phase") :
		       "Pending");
	}
	if (keel_str(status, "reason"))
		keel_d(o, 0, "Reason", "%s", keel_str(status, "reason"));
	if (keel_str(status, "message"))
		keel_d(o, 0, "Message", "%s", keel_str(status, "message"));
	const char *ip = keel_str(status, "podIP") ? keel_str(status, "podIP") :
						     keel_str(status, "hostIP");
	keel_d(o, 0, "IP", "%s", ip ? ip : "");
	const json_t *owner = kc_controller_ref(pod);
	if (owner)
		keel_d(o, 0, "Controlled By", "%s/%s", keel_str(owner, "kind") ?
		       keel_str(owner, "kind") : "", keel_str(owner, "name") ?
		       keel_str(owner, "name") : "");
	keel_d_containers(o, spec, status, true, 0);
	if (json_array_size(json_object_get(status, "conditions")))
		keel_d_conditions(o, json_object_get(status, "conditions"), false);
	keel_d_map(o, 0, "Node-Selectors", json_object_get(spec, "nodeSelector"));
	keel_d_tolerations(o, json_object_get(spec, "tolerations"));
	fprintf(o, "Events:\t<none>\n");
}

static void keel_d_quantities(FILE *o, const char *key, const json_t *q)
{
	fprintf(o, "%s:\n", key);
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)q, k, v) {
		char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
		fprintf(o, "  %s:\t%s\n", k, t ? t : json_string_value(v));
		free(t);
	}
}

static void keel_describe_node_pods(FILE *o, keel_ctx_t *c, const json_t *node)
{
	keel_t *k = keel_ctx_store(c);
	json_t *pods = NULL;
	int64_t rev;
	keel_error_t err = {0};
	if (!k || kc_list(k, KC_POD, NULL, &pods, &rev, &err) != 0) {
		fprintf(o, "Non-terminated Pods:\t<unknown>\n");
		return;
	}
	size_t n = 0, i;
	const json_t *p;
	json_array_foreach(pods, i, p) {
		const char *pn = kc_path_str(p, "spec.nodeName");
		const char *phase = kc_path_str(p, "status.phase");
		bool done =
			phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
		if (pn && strcmp(pn, kc_name(node)) == 0 && !done)
			n++;
	}
	fprintf(o, "Non-terminated Pods:\t(%zu in total)\n", n);
	fprintf(o, "  Namespace\tName\tCPU Requests\tMemory Requests\tAge\n"
		"  ---------\t----\t------------\t---------------\t---\n");
	int64_t now = (int64_t)time(NULL);
	json_array_foreach(pods, i, p) {
		const char *pn = kc_path_str(p, "spec.nodeName");
		const char *phase = kc_path_str(p, "status.phase");
		if (!pn || strcmp(pn, kc_name(node)) != 0)
			continue;
		if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0))
			continue;
		int64_t cpu = 0, mem = 0;
		kc_pod_requests(p, &cpu, &mem);
		char cr[32], mr[32], age[32];
		kc_format_cpu(cpu, cr, sizeof(cr));
		kc_format_memory(mem, mr, sizeof(mr));
		keel_age(p, now, age, sizeof(age));
		fprintf(o, "  %s\t%s\t%s\t%s\t%s\n", kc_namespace(p) ? kc_namespace(p) : "",
			kc_name(p) ? kc_name(p) : "", cr, mr, age);
	}
	json_decref(pods);
}

static void keel_describe_node(FILE *o, keel_ctx_t *c, const json_t *node)
{
	const json_t *spec = json_object_get(node, "spec"),
		     *status = json_object_get(node, "status");
	char roles[256];
	keel_node_roles(node, roles, sizeof(roles));
	keel_d_meta(o, node, false);
	keel_d(o, 0, "Roles", "%s", roles);
	keel_d_map(o, 0, "Labels", kc_path(node, "metadata.labels"));
	keel_d_map(o, 0, "Annotations", kc_path(node, "metadata.annotations"));
	keel_d_time(o, 0, "CreationTimestamp", kc_path_str(node, "metadata.creationTimestamp"));
	const json_t *taints = json_object_get(spec, "taints");
	if (json_array_size(taints) == 0)
		keel_d(o, 0, "Taints", "<none>");
	size_t i;
	const json_t *t;
	json_array_foreach(taints, i, t) {
		char line[512];
		const char *val = keel_str(t, "value");
		snprintf(line, sizeof(line), "%s%s%s:%s",
			 keel_str(t, "key") ? keel_str(t, "key") : "", val && *val ? "=" : "",
			 val ? val : "", keel_str(t, "effect") ? keel_str(t, "effect") : "");
		if (i == 0)
			keel_d(o, 0, "Taints", "%s", line);
		else
			fprintf(o, "\t%s\n", line);
	}
	keel_d(o, 0, "Unschedulable", "%s",
	       json_is_true(json_object_get(spec, "unschedulable")) ? "true" : "false");
	keel_d_conditions(o, json_object_get(status, "conditions"), true);
	fprintf(o, "Addresses:\n");
	json_array_foreach(json_object_get(status, "addresses"), i, t)
		fprintf(o, "  %s:\t%s\n", keel_str(t, "type") ? keel_str(t, "type") : "",
			keel_str(t, "address") ? keel_str(t, "address") : "");
	keel_d_quantities(o, "Capacity", json_object_get(status, "capacity"));
	keel_d_quantities(o, "Allocatable", json_object_get(status, "allocatable"));
	const json_t *info = json_object_get(status, "nodeInfo");
	fprintf(o, "System Info:\n");
	fprintf(o, "  Kernel Version:\t%s\n", keel_or_none(keel_str(info, "kernelVersion")));
	fprintf(o, "  OS Image:\t%s\n", keel_or_none(keel_str(info, "osImage")));
	fprintf(o, "  Operating System:\t%s\n",
		keel_or_none(keel_str(info, "operatingSystem")));
	fprintf(o, "  Architecture:\t%s\n", keel_or_none(keel_str(info, "architecture")));
	fprintf(o, "  Kubelet Version:\t%s\n",
		keel_or_none(keel_str(info, "kubeletVersion")));
	if (keel_str(status, "limits"))
		fprintf(o, "  Resource Limits:\t%s\n", keel_str(status, "limits"));
	keel_describe_node_pods(o, c, node);
	fprintf(o, "Events:\t<none>\n");
}

static void keel_describe_rs(FILE *o, keel_ctx_t *c, const json_t *rs)
{
	keel_d_meta(o, rs, true);
	kc_selector_t *sel = NULL;
	char msg[256];
	char *seltext = NULL;
	if (kc_selector_from_json(kc_path(rs, "spec.selector"), &sel, msg, sizeof(msg)) == 0)
		seltext = kc_selector_string(sel);
	keel_d(o, 0, "Selector", "%s", seltext && *seltext ? seltext : "<none>");
	free(seltext);
	keel_d_map(o, 0, "Labels", kc_path(rs, "metadata.labels"));
	keel_d_map(o, 0, "Annotations", kc_path(rs, "metadata.annotations"));
	keel_d(o, 0, "Replicas", "%lld current / %lld desired",
	       (long long)kc_path_int(rs, "status.replicas", 0),
	       (long long)kc_path_int(rs, "spec.replicas", 1));
	int running = 0, waiting = 0, succeeded = 0, failed = 0;
	json_t *pods = NULL;
	int64_t rev;
	keel_error_t err = {0};
	keel_t *k = keel_ctx_store(c);
	if (k && sel && kc_list(k, KC_POD, kc_namespace(rs), &pods, &rev, &err) == 0) {
		size_t i;
		const json_t *p;
		json_array_foreach(pods, i, p) {
			const json_t *ref = kc_controller_ref(p);
			const char *uid = keel_str(ref, "uid");
			if (!uid || !kc_uid(rs) || strcmp(uid, kc_uid(rs)) != 0 || kc_deleting(p))
				continue;
			const char *phase = kc_path_str(p, "status.phase");
			if (!phase || strcmp(phase, "Pending") == 0)
				waiting++;
			else if (strcmp(phase, "Running") == 0)
				running++;
			else if (strcmp(phase, "Succeeded") == 0)
				succeeded++;
			else if (strcmp(phase, "Failed") == 0)
				failed++;
		}
	}
	json_decref(pods);
	kc_selector_free(sel);
	keel_d(o, 0, "Pods Status", "%d Running / %d Waiting / %d Succeeded / %d Failed", running,
	       waiting, succeeded, failed);
	const json_t *tmpl = kc_path(rs, "spec.template");
	fprintf(o, "Pod Template:\n");
	keel_d_map(o, 2, "Labels", kc_path(tmpl, "metadata.labels"));
	keel_d_containers(o, json_object_get(tmpl, "spec"), NULL, false, 2);
	fprintf(o, "Events:\t<none>\n");
}

static void keel_describe_lease(FILE *o, const json_t *lease)
{
	keel_d_meta(o, lease, true);
	keel_d_map(o, 0, "Labels", kc_path(lease, "metadata.labels"));
	keel_d_map(o, 0, "Annotations", kc_path(lease, "metadata.annotations"));
	keel_d(o, 0, "Holder Identity", "%s",
	       keel_or_none(kc_path_str(lease, "spec.holderIdentity")));
	keel_d(o, 0, "Lease Duration Seconds", "%lld",
	       (long long)kc_path_int(lease, "spec.leaseDurationSeconds", 0));
	keel_d(o, 0, "Renew Time", "%s", keel_or_none(kc_path_str(lease, "spec.renewTime")));
	fprintf(o, "Events:\t<none>\n");
}

static void keel_describe_one(keel_ctx_t *c, kc_kind_t kind, const json_t *obj)
{
	char *text = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&text, &len);
	if (!o) {
		keel_fail("out of memory");
		return;
	}
	switch (kind) {
	case KC_POD: keel_describe_pod(o, obj); break;
	case KC_NODE: keel_describe_node(o, c, obj); break;
	case KC_REPLICASET: keel_describe_rs(o, c, obj); break;
	default: keel_describe_lease(o, obj); break;
	}
	fclose(o);
	keel_tabwrite(text ? text : "", 0, 2, stdout);
	free(text);
}

int keel_describe_main(keel_ctx_t *c, int argc, char **argv)
{
	keel_flags_t f;
	if (keel_flags_parse("describe", argc, argv, keel_describe_flags, &f) != 0) {
		keel_flags_free(&f);
		return 1;
	}
	int rc = 1;
	kc_selector_t *sel = NULL;
	json_t *items = NULL;
	if (f.help) {
		keel_usage(stdout, keel_describe_usage, keel_describe_flags);
		rc = 0;
		goto out;
	}
	if (keel_flag_bool(&f, 1, false))
		c->all_ns = true;
	if (f.n_pos == 0) {
		fprintf(stderr, "You must specify the type of resource to describe. Use \"keel "
			"describe --help\" for the supported types.\nerror: Required resource not "
			"specified.\n");
		goto out;
	}
	char *type = f.pos[0];
	char **names = f.pos + 1;
	int n_names = f.n_pos - 1;
	char *slash = strchr(type, '/');
	if (slash) {
		*slash = '\0';
		names = &f.pos[0];
		n_names = 1;
	}
	const kc_kind_info_t *ki = keel_lookup_kind(type);
	if (slash)
		*slash = '/';
	if (!ki)
		goto out;
	if (f.val[0]) {
		char msg[512];
		if (kc_selector_parse(f.val[0], &sel, msg, sizeof(msg)) != 0) {
			keel_fail("%s", msg);
			goto out;
		}
	}
	keel_t *k = keel_ctx_store(c);
	if (!k)
		goto out;
	keel_error_t err = {0};
	const char *ns = ki->namespaced ? c->ns : NULL;
	rc = 0;
	items = json_array();
	if (n_names) {
		for (int i = 0; i < n_names; i++) {
			const char *name = slash && i == 0 ? slash + 1 : names[i];
			json_t *obj = NULL;
			if (kc_get(k, ki->kind, ns, name, &obj, &err) != 0) {
				keel_print_error(&err);
				rc = 1;
				continue;
			}
			json_array_append_new(items, obj);
		}
	} else {
		json_t *all = NULL;
		int64_t rev;
		if (kc_list(k, ki->kind, ki->namespaced && !c->all_ns ? ns : NULL, &all, &rev,
			    &err) != 0) {
			keel_print_error(&err);
			rc = 1;
			goto out;
		}
		size_t i;
		json_t *obj;
		json_array_foreach(all, i, obj)
			if (!sel || kc_selector_matches(sel, kc_path(obj, "metadata.labels")))
				json_array_append(items, obj);
		json_decref(all);
		if (json_array_size(items) == 0) {
			if (ki->namespaced && !c->all_ns)
				fprintf(stderr, "No resources found in %s namespace.\n", c->ns);
			else
				fprintf(stderr, "No resources found\n");
		}
	}
	size_t i;
	json_t *obj;
	json_array_foreach(items, i, obj) {
		if (i)
			fputs("\n\n", stdout);
		keel_describe_one(c, ki->kind, obj);
	}
	fflush(stdout);
out:
	json_decref(items);
	kc_selector_free(sel);
	keel_flags_free(&f);
	return rc;
}
