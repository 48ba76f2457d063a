/* server/main.c — the keeld program: reads etcd-style flags and ETCD_* variables, runs one
 * member on a libuv loop until SIGINT or SIGTERM, and exits non-zero when the member had to
 * stop on an error. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "keeld.h"

extern char **environ;

typedef struct main_ctx {
	keeld_t server;
	uv_signal_t sigint, sigterm;
	bool signals_closed;
} main_ctx_t;

static void main_close_signals(main_ctx_t *m)
{
	if (m->signals_closed)
		return;
	m->signals_closed = true;
	uv_close((uv_handle_t *)&m->sigint, NULL);
	uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	main_ctx_t *m = h->data;
	LOG_INFO("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
	keeld_stop(&m->server, 0);
	main_close_signals(m);
}

/* keeld_stop may also come from inside (a disk error): the signals must go too, or the
 * loop would never end. */
static void on_check(uv_check_t *h)
{
	main_ctx_t *m = h->data;
	if (m->server.stopping) {
		main_close_signals(m);
		uv_close((uv_handle_t *)h, NULL);
	}
}

int main(int argc, char **argv)
{
	static keeld_config_t cfg;
	char err[1024];
	int prc = keeld_config_parse(&cfg, argc, argv, environ, err, sizeof(err));
	if (prc != 0) {
		/* etcd's exit codes: 2 for the command line's syntax, 1 for a failed check */
		fprintf(stderr, "keeld: %s\n", err);
		return prc;
	}
	if (cfg.show_help) {
		fputs(keeld_config_usage(), stdout);
		return 0;
	}
	if (cfg.show_version) {
		printf("keeld Version: %s\nAPI Version: %s\n", KEELD_VERSION, KEELD_API_VERSION);
		return 0;
	}
	keeld_log_set_level(cfg.log_level);
	signal(SIGPIPE, SIG_IGN);

	uv_loop_t loop;
	uv_loop_init(&loop);
	static main_ctx_t m;
	uv_check_t check;
	uv_signal_init(&loop, &m.sigint);
	uv_signal_init(&loop, &m.sigterm);
	m.sigint.data = m.sigterm.data = &m;
	uv_signal_start(&m.sigint, on_signal, SIGINT);
	uv_signal_start(&m.sigterm, on_signal, SIGTERM);
	uv_check_init(&loop, &check);
	check.data = &m;
	uv_check_start(&check, on_check);

	int rc = 0;
	if (keeld_start(&m.server, &cfg, &loop, err, sizeof(err)) != 0) {
		LOG_ERROR("cannot start: %s", err);
		keeld_stop(&m.server, 1);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = m.server.exit_code;
	keeld_free(&m.server);
	if (uv_loop_close(&loop) != 0)
		LOG_WARN("the loop still had handles at exit");
	LOG_INFO("stopped");
	return rc;
}
