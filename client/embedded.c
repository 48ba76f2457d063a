/* client/embedded.c — keel_open: a keeld member running on a thread of the calling process,
 * reached by the ordinary client through socketpairs its gRPC server adopts, so no port is
 * opened unless the caller's flags ask for one. Never touches the member's state from any
 * thread but the member's own loop thread; never blocks that loop. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "keeld.h"

/* How often the opener's wait looks for a leader, and the most it waits beyond two
 * election timeouts (etcd's request timeout has the same shape). */
#define EMBEDDED_READY_POLL_MS 5
#define EMBEDDED_READY_SLACK_MS 5000

typedef struct embedded {
	keeld_config_t cfg;          /* the member keeps a pointer to it */
	keeld_t server;
	uv_loop_t loop;
	uv_async_t wake;             /* fds to adopt, or a stop request */
	uv_check_t check;            /* notices a member that stopped by itself */
	uv_timer_t ready_timer;      /* the opener's wait for a leader */
	uint64_t ready_deadline_ms;
	bool handles_closed;
	pthread_t thread;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* Under mu: */
	bool accepting;              /* wake may be signalled: the loop runs and takes fds */
	bool stop_requested;
	int *fds;                    /* dialled ends waiting for the loop to adopt them */
	size_t n_fds, cap_fds;
	bool reported;               /* the opener has its answer */
	int start_rc;
	char start_err[1024];
} embedded_t;

void keel_open_options_init(keel_open_options_t *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->call_timeout_ms = 5000;
}

/* ---- on the member's loop thread ---- */

static void member_report(embedded_t *e, int rc, const char *err)
{
	pthread_mutex_lock(&e->mu);
	if (!e->reported) {
		e->reported = true;
		e->start_rc = rc;
		snprintf(e->start_err, sizeof(e->start_err), "%s", err ? err : "");
		if (rc == 0)
			e->accepting = true;
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->mu);
}

/* Takes the dialled fds out of the queue (the caller owns the returned array). */
static int *member_take_fds(embedded_t *e, size_t *n, bool *stop)
{
	pthread_mutex_lock(&e->mu);
	int *fds = e->fds;
	*n = e->n_fds;
	*stop = e->stop_requested;
	e->fds = NULL;
	e->n_fds = e->cap_fds = 0;
	pthread_mutex_unlock(&e->mu);
	return fds;
}

static void member_adopt(embedded_t *e, int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char err[256];
		if (e->server.stopping || !e->server.grpc) {
			close(fds[i]);
			continue;
		}
		if (grpc_server_adopt_fd(e->server.grpc, fds[i], err, sizeof(err)) != 0)
			LOG_WARN("embedded: %s", err);
	}
	free(fds);
}

static void on_wake(uv_async_t *h)
{
	embedded_t *e = h->data;
	size_t n;
	bool stop;
	int *fds = member_take_fds(e, &n, &stop);
	member_adopt(e, fds, n);
	if (stop)
		keeld_stop(&e->server, 0);
}

/* The member stopped (asked to, on a disk error, or failing to start): no more fds are
 * taken, and this file's own handles go so the loop can end. */
static void member_shutdown(embedded_t *e)
{
	if (e->handles_closed)
		return;
	e->handles_closed = true;
	pthread_mutex_lock(&e->mu);
	e->accepting = false;
	pthread_mutex_unlock(&e->mu);
	size_t n;
	bool stop;
	int *fds = member_take_fds(e, &n, &stop);
	member_adopt(e, fds, n); /* closes them: the member is stopping */
	member_report(e, -1, "the member stopped while starting");
	uv_close((uv_handle_t *)&e->wake, NULL);
	uv_close((uv_handle_t *)&e->check, NULL);
	uv_close((uv_handle_t *)&e->ready_timer, NULL);
}

static void on_check(uv_check_t *h)
{
	embedded_t *e = h->data;
	if (e->server.stopping)
		member_shutdown(e);
}

/* A store of one member answers calls only once it has elected itself: the opener waits
 * for that, so the first call on the handle does not pay for the election. */
static void on_ready_poll(uv_timer_t *h)
{
	embedded_t *e = h->data;
	if (e->server.lead == 0 && !e->server.stopping && keeld_now_ms() < e->ready_deadline_ms)
		return;
	uv_timer_stop(h);
	member_report(e, 0, NULL);
}

static void member_init_handles(embedded_t *e)
{
	uv_async_init(&e->loop, &e->wake, on_wake);
	e->wake.data = e;
	uv_check_init(&e->loop, &e->check);
	e->check.data = e;
	uv_check_start(&e->check, on_check);
	uv_timer_init(&e->loop, &e->ready_timer);
	e->ready_timer.data = e;
}

static void *member_main(void *arg)
{
	embedded_t *e = arg;
	char err[1024];
	member_init_handles(e);
	if (keeld_start(&e->server, &e->cfg, &e->loop, err, sizeof(err)) != 0) {
		member_report(e, -1, err);
		keeld_stop(&e->server, 1);
		member_shutdown(e); /* nothing else would wake the loop to notice */
	} else if (e->cfg.n_members <= 1) {
		e->ready_deadline_ms = keeld_now_ms() + 2 * (uint64_t)e->cfg.election_ms +
				       EMBEDDED_READY_SLACK_MS;
		uv_timer_start(&e->ready_timer, on_ready_poll, 0, EMBEDDED_READY_POLL_MS);
	} else {
		/* a member of a larger cluster may wait long for its peers: the calls say so */
		member_report(e, 0, NULL);
	}
	uv_run(&e->loop, UV_RUN_DEFAULT);
	keeld_free(&e->server);
	if (uv_loop_close(&e->loop) != 0)
		LOG_WARN("embedded: the member's loop still had handles at exit");
	return NULL;
}

/* ---- on the caller's and the client's threads ---- */

/* The transport's dial: one end of a fresh socketpair for the client, the other for the
 * member's gRPC server (adopted on the member's loop). Runs on the client's I/O thread. */
static int embedded_dial(void *arg, char *errbuf, size_t errlen)
{
	embedded_t *e = arg;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(errbuf, errlen, "embedded store: socketpair: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&e->mu);
	bool ok = e->accepting;
	if (ok && e->n_fds == e->cap_fds) {
		size_t cap = e->cap_fds ? 2 * e->cap_fds : 4;
		int *p = realloc(e->fds, cap * sizeof(*p));
		ok = p != NULL;
		if (p) {
			e->fds = p;
			e->cap_fds = cap;
		}
	}
	if (ok) {
		e->fds[e->n_fds++] = sv[0];
		uv_async_send(&e->wake);
	}
	bool stopped = !e->accepting;
	pthread_mutex_unlock(&e->mu);
	if (!ok) {
		close(sv[0]);
		close(sv[1]);
		snprintf(errbuf, errlen, "%s", stopped ? "embedded store: the member has stopped"
						       : "embedded store: out of memory");
		return -1;
	}
	return sv[1];
}

static void embedded_free(embedded_t *e)
{
	for (size_t i = 0; i < e->n_fds; i++)
		close(e->fds[i]);
	free(e->fds);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cond);
	free(e);
}

/* keel_close calls this after the transport is gone: nothing dials any more. */
static void embedded_stop(void *arg)
{
	embedded_t *e = arg;
	pthread_mutex_lock(&e->mu);
	e->stop_requested = true;
	if (e->accepting)
		uv_async_send(&e->wake);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	embedded_free(e);
}

/* Starts the member thread and waits until the member serves (or failed to start). */
static int embedded_start(embedded_t *e, keel_error_t *err)
{
	if (uv_loop_init(&e->loop) != 0)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: cannot create a loop");
	int rc = pthread_create(&e->thread, NULL, member_main, e);
	if (rc != 0) {
		uv_loop_close(&e->loop);
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: cannot start a thread: %s",
				      strerror(rc));
	}
	pthread_mutex_lock(&e->mu);
	while (!e->reported)
		pthread_cond_wait(&e->cond, &e->mu);
	rc = e->start_rc;
	pthread_mutex_unlock(&e->mu);
	if (rc == 0)
		return 0;
	pthread_join(e->thread, NULL);
	return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open %s: %s", e->cfg.data_dir,
			      e->start_err);
}

/* etcd's flags, as keeld reads them, with the directory given apart. */
static int embedded_configure(embedded_t *e, const char *dir, const keel_open_options_t *opt,
			      keel_error_t *err)
{
	size_t n = opt->flags ? opt->n_flags : 0;
	char **argv = calloc(n + 2, sizeof(*argv));
	if (!argv)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: out of memory");
	argv[0] = (char *)"keel_open";
	for (size_t i = 0; i < n; i++) {
		if (!opt->flags[i]) {
			free(argv);
			return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: flag %zu is NULL",
					      i);
		}
		argv[i + 1] = (char *)opt->flags[i];
	}
	char msg[1024];
	int rc = keeld_config_parse_embedded(&e->cfg, (int)n + 1, argv, dir, msg, sizeof(msg));
	free(argv);
	if (rc != 0)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: %s", msg);
	/* the level is process-wide: the last store opened sets it */
	keeld_log_set_level(opt->log ? e->cfg.log_level : KEELD_LOG_ERROR);
	return 0;
}

static embedded_t *embedded_new(void)
{
	embedded_t *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cond, NULL);
	return e;
}

int keel_open(const char *dir, const keel_open_options_t *opt, keel_t **out, keel_error_t *err)
{
	keel_open_options_t defaults;
	if (!out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: no handle to fill");
	*out = NULL;
	if (!dir || !*dir)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: no data directory given");
	if (!opt) {
		keel_open_options_init(&defaults);
		opt = &defaults;
	}
	keel_init();
	embedded_t *e = embedded_new();
	if (!e)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_open: out of memory");
	int rc = embedded_configure(e, dir, opt, err);
	if (rc == 0)
		rc = embedded_start(e, err);
	if (rc != 0) {
		embedded_free(e);
		return rc;
	}
	/* The endpoint only names the store in messages: every dial is a socketpair. */
	static const char *const endpoints[] = {"embedded:2379"};
	kt_options_t ko = {
		.endpoints = endpoints,
		.n_endpoints = 1,
		.dial_timeout_ms = 5000,
		.call_timeout_ms = opt->call_timeout_ms ? opt->call_timeout_ms : 5000,
		.keepalive_time_ms = 10000,
		.keepalive_timeout_ms = 3000,
		.user_loop = opt->loop,
		.dial = embedded_dial,
		.dial_arg = e,
	};
	keel_t *k;
	rc = keel_client_new(&ko, &k, err);
	if (rc != 0) {
		embedded_stop(e);
		return rc;
	}
	k->embedded = e;
	k->embedded_stop = embedded_stop;
	*out = k;
	return 0;
}
