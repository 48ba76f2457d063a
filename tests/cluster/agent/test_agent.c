/* tests/cluster/agent/test_agent.c — the agent's parts that need no store: flag parsing, the
 * per-pod state file (and its refusal of malformed input), process start times, and starting a
 * container (process group, env, log, RLIMIT_AS, exec failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_int.h"
#include "tmpdir.h"

static int parse(agent_config_t *cfg, char *msg, size_t n, int argc, ...)
{
	char *argv[32];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc && i < 32; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	msg[0] = 0;
	return agent_config_parse(argc, argv, cfg, msg, n);
}

static void test_flags_have_kubelet_like_defaults(void **state)
{
	(void)state;
	agent_config_t cfg;
	char msg[512];
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 3, "agent", "--node", "n1"), 0);
	assert_string_equal(cfg.node, "n1");
	assert_int_equal(cfg.max_pods, 110);
	assert_int_equal(cfg.lease_duration, 10);
	assert_int_equal(cfg.backoff_initial_ms, 10000);
	assert_int_equal(cfg.backoff_max_ms, 300000);
	assert_int_equal(cfg.port, 0);
	assert_string_equal(cfg.address, "127.0.0.1");
	assert_string_equal(cfg.root_dir, "./keel-agent/n1");
	assert_true(cfg.cpu_milli < 0 && cfg.memory_bytes < 0); /* from /proc later */
	assert_false(cfg.hollow);
	agent_config_free(&cfg);
}

static void test_flags_take_both_spellings_and_quantities(void **state)
{
	(void)state;
	agent_config_t cfg;
	char msg[512];
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 9, "agent", "--node=n2", "--cpu", "1500m",
			       "--memory=2Gi", "--port", "0", "--backoff-initial=200", "-v"), 0);
	assert_string_equal(cfg.node, "n2");
	assert_int_equal(cfg.cpu_milli, 1500);
	assert_int_equal(cfg.memory_bytes, (int64_t)2 << 30);
	assert_int_equal(cfg.backoff_initial_ms, 200);
	assert_int_equal(cfg.verbose, 1);
	agent_config_free(&cfg);
}

static void test_flags_hollow_needs_no_node_and_has_its_capacity(void **state)
{
	(void)state;
	agent_config_t cfg;
	char msg[512];
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 6, "agent", "--hollow", "--nodes", "7",
			       "--node-prefix", "h-"), 0);
	assert_true(cfg.hollow);
	assert_int_equal(cfg.nodes, 7);
	assert_string_equal(cfg.node_prefix, "h-");
	assert_int_equal(cfg.cpu_milli, 4000);
	assert_int_equal(cfg.memory_bytes, (int64_t)16 << 30);
	agent_config_free(&cfg);
}

static void test_flags_refuse_bad_input_with_a_reason(void **state)
{
	(void)state;
	agent_config_t cfg;
	char msg[512];
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 1, "agent"), -1);
	assert_non_null(strstr(msg, "--node is required"));
	agent_config_free(&cfg);
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 5, "agent", "--node", "n", "--port", "70000"), -1);
	assert_non_null(strstr(msg, "invalid value \"70000\" for flag --port"));
	agent_config_free(&cfg);
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 5, "agent", "--node", "n", "--cpu", "lots"), -1);
	assert_non_null(strstr(msg, "--cpu"));
	agent_config_free(&cfg);
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 4, "agent", "--node", "n", "--bogus=1"), -1);
	assert_non_null(strstr(msg, "unknown flag: --bogus"));
	agent_config_free(&cfg);
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 4, "agent", "--node", "n", "--max-pods"), -1);
	assert_non_null(strstr(msg, "flag needs an argument: --max-pods"));
	agent_config_free(&cfg);
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 5, "agent", "--node", "n",
			       "--lease-duration", "0"), -1);
	agent_config_free(&cfg);
}

static agent_pod_t *pod_make(const char *dir)
{
	agent_pod_t *p = calloc(1, sizeof(*p));
	p->key = strdup("/registry/pods/default/web");
	p->ns = strdup("default");
	p->name = strdup("web");
	p->uid = strdup("u-1");
	p->dir = strdup(dir);
	p->start_time = 1700000000;
	p->n_ctrs = 2;
	p->ctrs = calloc(2, sizeof(agent_ctr_t));
	p->ctrs[0].name = strdup("main");
	p->ctrs[0].pid = 4242;
	p->ctrs[0].proc_start = 987654321;
	p->ctrs[0].restart_count = 3;
	p->ctrs[0].started_at = 1700000100;
	p->ctrs[1].name = strdup("side");
	p->ctrs[1].pid = 0;
	p->ctrs[1].last_pid = 77;
	return p;
}

static void test_state_file_round_trips(void **state)
{
	(void)state;
	char dir[256], msg[512];
	test_tmpdir(dir, sizeof(dir), "agent-state");
	agent_pod_t *p = pod_make(dir);
	assert_int_equal(agent_proc_state_write(p), 0);
	agent_pod_t *r = agent_proc_state_read(dir, msg, sizeof(msg));
	assert_non_null(r);
	assert_string_equal(r->key, p->key);
	assert_string_equal(r->ns, "default");
	assert_string_equal(r->name, "web");
	assert_string_equal(r->uid, "u-1");
	assert_int_equal(r->start_time, 1700000000);
	assert_int_equal(r->n_ctrs, 2);
	assert_string_equal(r->ctrs[0].name, "main");
	assert_int_equal(r->ctrs[0].pid, 4242);
	assert_int_equal(r->ctrs[0].proc_start, 987654321);
	assert_int_equal(r->ctrs[0].restart_count, 3);
	assert_int_equal(r->ctrs[1].pid, 0); /* not running: nothing to adopt */
	agent_pod_free(r);
	agent_pod_free(p);
	test_rmtree(dir);
}

static void test_state_file_malformed_is_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"{\"key\": ",
		"[]",
		"{\"key\": 7, \"uid\": \"u\", \"containers\": []}",
		"{\"key\": \"/registry/nodes/n1\", \"uid\": \"u\", \"containers\": []}",
		"{\"key\": \"/registry/pods/default/web\", \"uid\": \"u\", \"containers\": {}}",
		"{\"key\": \"/registry/pods/default/web\", \"uid\": \"u\", \"containers\": [{\"pid\": 1}]}",
		"{\"key\": \"/registry/pods/default/web\", \"uid\": \"u\", \"containers\": "
		"[{\"name\": \"m\", \"pid\": -5}]}",
	};
	char dir[256], path[512], msg[512];
	test_tmpdir(dir, sizeof(dir), "agent-bad");
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_null(agent_proc_state_read(dir, msg, sizeof(msg))); /* missing */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		msg[0] = 0;
		assert_null(agent_proc_state_read(dir, msg, sizeof(msg)));
		assert_non_null(strstr(msg, "state.json"));
	}
	test_rmtree(dir);
}

static void test_start_time_tells_a_process_from_its_successor(void **state)
{
	(void)state;
	uint64_t me = agent_proc_start_time(getpid());
	assert_true(me > 0);
	assert_true(agent_proc_same(getpid(), me));
	assert_false(agent_proc_same(getpid(), me + 1));
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	int st;
	waitpid(child, &st, 0);
	assert_false(agent_proc_same(child, agent_proc_start_time(child) + 1));
	assert_int_equal(agent_proc_start_time(child), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int wait_exit(pid_t pid)
{
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_spawn_runs_in_its_group_with_env_log_and_rlimit(void **state)
{
	(void)state;
	char dir[256], msg[512], log[512];
	test_tmpdir(dir, sizeof(dir), "agent-spawn");
	agent_pod_t *p = pod_make(dir);
	json_t *ctr = json_pack("{s:s, s:[s,s], s:[s], s:[{s:s, s:s}], s:s, s:{s:{s:s}}}",
		"name", "main", "command", "sh", "-c", "args",
		"echo \"$A $KEEL_POD_NAME $KEEL_POD_NAMESPACE $KEEL_NODE_NAME\"; pwd; ulimit -v; "
		"[ \"$(ps -o pgid= -p $$ | tr -d ' ')\" = \"$$\" ] && echo own-group",
		"env", "name", "A", "value", "b", "workingDir", "/tmp",
		"resources", "limits", "memory", "64Mi");
	agent_limits_t lim = { AGENT_LIMITS_SETRLIMIT, NULL };
	agent_spawn_t s = { .limits = &lim, .node = "n9", .pod = p, .container = ctr };
	pid_t pid = agent_proc_spawn(&s, msg, sizeof(msg));
	assert_true(pid > 0);
	assert_int_equal(wait_exit(pid), 0);
	snprintf(log, sizeof(log), "%s/main.log", dir);
	char *text = slurp(log);
	assert_non_null(strstr(text, "b web default n9\n/tmp\n65536\n"));
	assert_non_null(strstr(text, "own-group"));
	free(text);
	json_decref(ctr);
	agent_pod_free(p);
	test_rmtree(dir);
}

static void test_spawn_exec_failure_logs_and_exits_127(void **state)
{
	(void)state;
	char dir[256], msg[512], log[512];
	test_tmpdir(dir, sizeof(dir), "agent-noexec");
	agent_pod_t *p = pod_make(dir);
	json_t *ctr = json_pack("{s:s, s:[s]}", "name", "main", "command", "/nonexistent/x");
	agent_limits_t lim = { AGENT_LIMITS_SETRLIMIT, NULL };
	agent_spawn_t s = { .limits = &lim, .node = "n9", .pod = p, .container = ctr };
	pid_t pid = agent_proc_spawn(&s, msg, sizeof(msg));
	assert_true(pid > 0);
	assert_int_equal(wait_exit(pid), 127);
	snprintf(log, sizeof(log), "%s/main.log", dir);
	char *text = slurp(log);
	assert_non_null(strstr(text, "cannot start container main (/nonexistent/x): no such file"));
	free(text);
	/* No command at all: refused before any fork. */
	json_t *none = json_pack("{s:s}", "name", "main");
	s.container = none;
	assert_int_equal(agent_proc_spawn(&s, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "has no command"));
	json_decref(none);
	json_decref(ctr);
	agent_pod_free(p);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags_have_kubelet_like_defaults),
		cmocka_unit_test(test_flags_take_both_spellings_and_quantities),
		cmocka_unit_test(test_flags_hollow_needs_no_node_and_has_its_capacity),
		cmocka_unit_test(test_flags_refuse_bad_input_with_a_reason),
		cmocka_unit_test(test_state_file_round_trips),
		cmocka_unit_test(test_state_file_malformed_is_refused),
		cmocka_unit_test(test_start_time_tells_a_process_from_its_successor),
		cmocka_unit_test(test_spawn_runs_in_its_group_with_env_log_and_rlimit),
		cmocka_unit_test(test_spawn_exec_failure_logs_and_exits_127),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
