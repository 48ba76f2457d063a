/* cli/ctl_watch.c — etcdctl watch on libkeel: one watch from the arguments (optionally
 * running a command per event, with etcdctl's ETCD_WATCH_* variables), or an interactive
 * session of "watch ..." and "progress" lines. Events print in every output format; the
 * callbacks run on libkeel's callback thread and only print or run the command. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv.pb-c.h"
#include "rpc.pb-c.h"

#include "ctl.h"

typedef struct watch_run {
	ctl_t *c;
	char **exec;                 /* NULL-terminated command, or NULL */
	int n_exec;
	bool interactive;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ended;                  /* the server canceled the watch */
	int exit_code;               /* set by a failed exec */
	keel_watch_t *w;
} watch_run_t;

static const char *const event_names[] = {"PUT", "DELETE"};

/* etcdctl's JSON of clientv3.WatchResponse: "Events" is [] even when empty. */
static void watch_print_json(const keel_watch_resp_t *r)
{
	fputs("{\"Header\":", stdout);
	ctl_fput_json_header(stdout, &r->header);
	fputs(",\"Events\":", stdout);
	putchar('[');
	for (size_t i = 0; i < r->n_events; i++) {
		const keel_event_t *e = &r->events[i];
		bool any = false;
		printf("%s{", i ? "," : "");
		if (e->type != KEEL_EVENT_PUT) {
			printf("\"type\":%d", (int)e->type);
			any = true;
		}
		printf("%s\"kv\":", any ? "," : "");
		ctl_fput_json_kv(stdout, &e->kv);
		if (e->prev_kv) {
			fputs(",\"prev_kv\":", stdout);
			ctl_fput_json_kv(stdout, e->prev_kv);
		}
		putchar('}');
	}
	putchar(']');
	printf(",\"CompactRevision\":%lld,\"Canceled\":%s,\"Created\":%s}\n",
	       (long long)r->compact_revision, r->canceled ? "true" : "false",
	       r->created ? "true" : "false");
}

static void watch_print_pb(const keel_watch_resp_t *r)
{
	void *a = ctl_pb_arena_new();
	Etcdserverpb__WatchResponse m = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	if (!a)
		return;
	m.header = ctl_pb_header(a, &r->header);
	m.compact_revision = r->compact_revision;
	m.canceled = r->canceled;
	m.created = r->created;
	m.n_events = r->n_events;
	m.events = ctl_pb_alloc(a, r->n_events * sizeof(*m.events));
	for (size_t i = 0; m.events && i < r->n_events; i++) {
		Mvccpb__Event *e = ctl_pb_alloc(a, sizeof(*e));
		if (!e)
			break;
		mvccpb__event__init(e);
		e->type = r->events[i].type == KEEL_EVENT_DELETE ? MVCCPB__EVENT__EVENT_TYPE__DELETE
								  : MVCCPB__EVENT__EVENT_TYPE__PUT;
		e->kv = ctl_pb_kv(a, &r->events[i].kv);
		if (r->events[i].prev_kv)
			e->prev_kv = ctl_pb_kv(a, r->events[i].prev_kv);
		m.events[i] = e;
	}
	if (m.header && (r->n_events == 0 || m.events))
		ctl_print_pb(&m.base);
	ctl_pb_arena_free(a);
}

/* etcdctl's display.Watch for one response. */
static void watch_print(ctl_t *c, const keel_watch_resp_t *r)
{
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		for (size_t i = 0; i < r->n_events; i++) {
			const keel_event_t *e = &r->events[i];
			puts(event_names[e->type == KEEL_EVENT_DELETE]);
			if (e->prev_kv)
				ctl_print_kv_simple(c, e->prev_kv);
			ctl_print_kv_simple(c, &e->kv);
		}
		break;
	case CTL_OUT_JSON:
		watch_print_json(r);
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		for (size_t i = 0; i < r->n_events; i++) {
			const keel_event_t *e = &r->events[i];
			printf("\"Type\" : %s\n", event_names[e->type == KEEL_EVENT_DELETE]);
			if (e->prev_kv)
				ctl_print_kv_fields("Prev", e->prev_kv);
			ctl_print_kv_fields("", &e->kv);
		}
		break;
	case CTL_OUT_PROTOBUF:
		watch_print_pb(r);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format_async(c);
	}
}

static int setenv_fmt(const char *name, char *val)
{
	int rc = val ? setenv(name, val, 1) : -1;
	free(val);
	return rc;
}

/* Runs the exec command for one event, its output on ours; etcdctl exits 1 on failure. */
static int watch_exec(watch_run_t *run, const keel_watch_resp_t *r, const keel_event_t *e)
{
	char rev[32];
	fflush(stdout);
	snprintf(rev, sizeof(rev), "%lld", (long long)r->header.revision);
	pid_t pid = fork();
	if (pid == 0) {
		const char *type = event_names[e->type == KEEL_EVENT_DELETE];
		setenv("ETCD_WATCH_REVISION", rev, 1);
		setenv_fmt("ETCD_WATCH_EVENT_TYPE", ctl_quote_dup(type, strlen(type)));
		setenv_fmt("ETCD_WATCH_KEY", ctl_quote_dup(e->kv.key, e->kv.key_len));
		setenv_fmt("ETCD_WATCH_VALUE", ctl_quote_dup(e->kv.value, e->kv.value_len));
		execvp(run->exec[0], run->exec);
		_exit(127);
	}
	int st = 0;
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fputs("command [", stderr);
	for (int i = 0; i < run->n_exec; i++) {
		if (i)
			fputc(' ', stderr);
		ctl_fput_quoted(stderr, run->exec[i], strlen(run->exec[i]));
	}
	if (pid < 0)
		fprintf(stderr, "] error (fork/exec: %s)\n", strerror(errno));
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		fprintf(stderr, "] error (exec: \"%s\": executable file not found in $PATH)\n",
			run->exec[0]);
	else if (WIFEXITED(st))
		fprintf(stderr, "] error (exit status %d)\n", WEXITSTATUS(st));
	else
		fprintf(stderr, "] error (signal: %s)\n", strsignal(WTERMSIG(st)));
	return -1;
}

static const char *cancel_text(const keel_watch_resp_t *r, char *buf, size_t len)
{
	if (r->compact_revision != 0)
		return "etcdserver: mvcc: required revision has been compacted";
	if (r->cancel_reason && *r->cancel_reason) {
		keel_error_t e = {.code = KEEL_CODE_FAILED_PRECONDITION};
		snprintf(e.message, sizeof(e.message), "%s", r->cancel_reason);
		return ctl_err_text(&e, buf, len);
	}
	return "etcdserver: mvcc: required revision is a future revision";
}

static void watch_cb(void *ud, const keel_watch_resp_t *r)
{
	watch_run_t *run = ud;
	char buf[700];
	if (r->created && !r->canceled)
		return;  /* clientv3 keeps the creation response to itself */
	if (r->canceled)
		fprintf(stderr, "watch was canceled (%s)\n", cancel_text(r, buf, sizeof(buf)));
	if (!r->canceled && r->n_events == 0 && r->compact_revision == 0 &&
	    r->header.revision != 0)
		printf("progress notify: %lld\n", (long long)r->header.revision);
	watch_print(run->c, r);
	fflush(stdout);
	for (size_t i = 0; run->exec && i < r->n_events; i++) {
		if (watch_exec(run, r, &r->events[i]) < 0) {
			pthread_mutex_lock(&run->mu);
			run->exit_code = CTL_EXIT_ERROR;
			run->ended = true;
			pthread_cond_signal(&run->cv);
			pthread_mutex_unlock(&run->mu);
			return;
		}
	}
	if (r->canceled) {
		pthread_mutex_lock(&run->mu);
		run->ended = true;
		pthread_cond_signal(&run->cv);
		pthread_mutex_unlock(&run->mu);
	}
}

/* getWatchChan: key [range_end] with --prefix/--rev/--prev-kv from f. Returns 0, or -1
 * with the reason in why (the watch is not started). */
static int watch_start(ctl_t *c, const ctl_t *f, watch_run_t *run, int n, char **a,
		       keel_watch_t **out, char *why, size_t wlen)
{
	static const uint8_t zero[1] = {0};
	keel_watch_req_t req;
	keel_error_t err;
	uint8_t *end_buf = NULL;
	bool prefix = ctl_flag_bool(f, "prefix");
	if (n < 1) {
		snprintf(why, wlen, "bad number of arguments");
		return -1;
	}
	memset(&req, 0, sizeof(req));
	req.key = a[0];
	req.key_len = strlen(a[0]);
	if (n == 2) {
		if (prefix) {
			snprintf(why, wlen, "`range_end` and `--prefix` are mutually exclusive");
			return -1;
		}
		req.range_end = a[1];
		req.range_end_len = strlen(a[1]);
	}
	if (prefix) {
		if (req.key_len == 0) {
			req.key = zero;
			req.key_len = 1;
			req.range_end = zero;
			req.range_end_len = 1;
		} else {
			end_buf = malloc(req.key_len);
			if (!end_buf)
				ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
			req.range_end_len = keel_prefix_end(req.key, req.key_len, end_buf);
			req.range_end = end_buf;
		}
	}
	req.start_revision = ctl_flag_int(f, "rev");
	req.prev_kv = ctl_flag_bool(f, "prev-kv");
	int rc = keel_watch(ctl_client(c), &req, watch_cb, run, out, &err);
	free(end_buf);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	return 0;
}

static void run_init(watch_run_t *run, ctl_t *c)
{
	memset(run, 0, sizeof(*run));
	run->c = c;
	pthread_mutex_init(&run->mu, NULL);
	pthread_cond_init(&run->cv, NULL);
}

/* etcdctl's parseWatchArgs: the "--" split and the ETCDCTL_WATCH_KEY rules. Fills wa
 * (room for 4: key, range end) and returns its count; *n_exec arguments after "--" start
 * at pos + np - *n_exec. Exits with ExitBadArgs as etcdctl does. */
static int watch_args(ctl_t *c, int np, char **pos, int dash, bool interactive,
		      const char *env_key, const char *env_range, char **wa, int *n_exec)
{
	int nw = dash >= 0 ? dash : np, k = 0;
	if (dash >= 0 && dash == np)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad number of arguments (found separator --, but "
			  "no commands)");
	if (dash < 0 && nw < 1 && !*env_key)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad number of arguments");
	if (*env_key && nw > 0 && (dash < 0 || !interactive))
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad number of arguments (found conflicting "
			  "environment key)");
	if (*env_key) {
		wa[k++] = (char *)env_key;
		if (*env_range)
			wa[k++] = (char *)env_range;
	}
	for (int i = 0; i < nw && k < 4; i++)
		wa[k++] = pos[i];
	*n_exec = dash >= 0 ? np - dash : 0;
	return k;
}

static void run_free(watch_run_t *run)
{
	for (int j = 0; run->exec && j < run->n_exec; j++)
		free(run->exec[j]);
	free(run->exec);
	pthread_mutex_destroy(&run->mu);
	pthread_cond_destroy(&run->cv);
	free(run);
}

/* One "watch ..." line of an interactive session; returns the started watch or NULL. */
static watch_run_t *watch_line(ctl_t *c, const char *line, int na, char **args, char **pos,
			       const char *env_key, const char *env_range)
{
	ctl_t sub;
	char why[1024], *wa[4];
	int n_exec;
	if (na < 2 && !*env_key) {
		fprintf(stderr, "Invalid command %s (command type or key is not provided)\n", line);
		return NULL;
	}
	int np = ctl_parse_sub(c, &sub, "watch", na - 1, args + 1, pos, why, sizeof(why));
	if (np < 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "%s", why);
	int k = watch_args(c, np, pos, sub.args_at_dash, true, env_key, env_range, wa, &n_exec);
	watch_run_t *run = malloc(sizeof(*run));
	if (!run)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	run_init(run, c);
	run->interactive = true;
	if (n_exec) {
		run->n_exec = n_exec;
		run->exec = calloc((size_t)n_exec + 1, sizeof(char *));
		for (int i = 0; run->exec && i < n_exec; i++)
			run->exec[i] = strdup(pos[np - n_exec + i]);
	}
	sub.k = c->k;
	if (watch_start(c, &sub, run, k, wa, &run->w, why, sizeof(why)) < 0) {
		fprintf(stderr, "Invalid command %s (%s)\n", line, why);
		run_free(run);
		return NULL;
	}
	return run;
}

static void runs_free(watch_run_t **runs, int n)
{
	for (int i = 0; i < n; i++) {
		keel_watch_cancel(runs[i]->w);
		run_free(runs[i]);
	}
}

static int watch_interactive(ctl_t *c, const char *env_key, const char *env_range)
{
	watch_run_t *runs[64];
	int n_runs = 0;
	char *line = NULL;
	size_t cap = 0;
	keel_error_t err;
	ctl_client(c);
	for (;;) {
		ssize_t n = getline(&line, &cap, stdin);
		if (n <= 0 || line[n - 1] != '\n') {
			free(line);
			runs_free(runs, n_runs);
			ctl_fatal(c, CTL_EXIT_INVALID_INPUT,
				  "Error reading watch request line: EOF");
		}
		line[n - 1] = '\0';
		size_t ll = strlen(line);
		char **args = calloc(ll + 2, sizeof(char *));
		char **pos = calloc(ll + 2, sizeof(char *));
		char *store = malloc(ll * 2 + 2);
		if (!args || !pos || !store)
			ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
		int na = ctl_argify(line, args, (int)ll + 1, store);
		if (na < 1) {
			fprintf(stderr, "Invalid command: %s (watch and progress supported)\n",
				line);
		} else if (strcmp(args[0], "watch") == 0) {
			watch_run_t *run = watch_line(c, line, na, args, pos, env_key, env_range);
			if (run && n_runs < 64)
				runs[n_runs++] = run;
			else if (run)
				ctl_fatal(c, CTL_EXIT_ERROR, "too many watches");
		} else if (strcmp(args[0], "progress") == 0) {
			if (keel_watch_request_progress(c->k, &err) != 0)
				ctl_fatal_err(c, &err);
		} else {
			fprintf(stderr, "Invalid command %s (only support watch)\n", line);
		}
		free(args);
		free(pos);
		free(store);
	}
}

int ctl_cmd_watch(ctl_t *c, int argc, char **argv)
{
	const char *env_key = getenv("ETCDCTL_WATCH_KEY");
	const char *env_range = getenv("ETCDCTL_WATCH_RANGE_END");
	char why[512], *wa[4];
	env_key = env_key ? env_key : "";
	env_range = env_range ? env_range : "";
	if (!*env_key && *env_range)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "ETCDCTL_WATCH_KEY is empty but got "
			  "ETCDCTL_WATCH_RANGE_END=\"%s\"", env_range);
	if (ctl_flag_bool(c, "interactive"))
		return watch_interactive(c, env_key, env_range);

	watch_run_t run;
	int np = argc - 1;
	run_init(&run, c);
	int k = watch_args(c, np, argv + 1, c->args_at_dash, false, env_key, env_range, wa,
			   &run.n_exec);
	if (run.n_exec)
		run.exec = argv + 1 + np - run.n_exec;
	if (watch_start(c, c, &run, k, wa, &run.w, why, sizeof(why)) < 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "%s", why);
	pthread_mutex_lock(&run.mu);
	while (!run.ended)
		pthread_cond_wait(&run.cv, &run.mu);
	pthread_mutex_unlock(&run.mu);
	keel_watch_cancel(run.w);
	if (run.exit_code)
		ctl_exit(c, run.exit_code);
	ctl_fatal(c, CTL_EXIT_INTERRUPTED, "watch is canceled by the server");
}
