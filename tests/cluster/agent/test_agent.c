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
#include <sys/stat.h>
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

static agent_pod_t *pod_make(const char *dir);

/* Review M7: the node name becomes store keys and paths, labels and taints a Node. */
static void expect_refused(const char *want, int argc, ...)
{
	char *argv[16];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc && i < 16; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	agent_config_t cfg;
	char msg[1024] = "";
	assert_int_equal(agent_config_parse(argc, argv, &cfg, msg, sizeof(msg)), -1);
	if (!strstr(msg, want))
		fail_msg("want \"%s\" in: %s", want, msg);
	agent_config_free(&cfg);
}

static void test_flags_refuse_invalid_node_name_labels_and_taints(void **state)
{
	(void)state;
	expect_refused("invalid value \"A/../B\" for flag --node: metadata.name: Invalid value: "
		       "\"A/../B\": a lowercase RFC 1123 subdomain",
		       3, "agent", "--node", "A/../B");
	expect_refused("invalid value \"N1\" for flag --node", 3, "agent", "--node", "N1");
	expect_refused("invalid value \"..\" for flag --node", 3, "agent", "--node", "..");
	expect_refused("invalid value \"x/\" for flag --node-prefix", 4, "agent", "--hollow",
		       "--node-prefix", "x/");
	expect_refused("invalid value \"zone=a/b\" for flag --labels: metadata.labels: Invalid "
		       "value: \"a/b\"", 5, "agent", "--node", "n1", "--labels", "zone=a/b");
	expect_refused("invalid value \"ok=1,bad key=v\" for flag --labels: metadata.labels: "
		       "Invalid value: \"bad key\"", 5, "agent", "--node", "n1", "--labels",
		       "ok=1,bad key=v");
	expect_refused("invalid label \"novalue\"", 5, "agent", "--node", "n1", "--labels",
		       "novalue");
	expect_refused("invalid value \"a/b/c=v:NoSchedule\" for flag --taints: spec.taints[0].key",
		       5, "agent", "--node", "n1", "--taints", "a/b/c=v:NoSchedule");
	expect_refused("for flag --taints: spec.taints[0].value: Invalid value: \"v v\"", 5,
		       "agent", "--node", "n1", "--taints", "k=v v:NoSchedule");
	/* What Kubernetes accepts still passes. */
	agent_config_t cfg;
	char msg[1024];
	assert_int_equal(parse(&cfg, msg, sizeof(msg), 7, "agent", "--node", "node-1.example.com",
			       "--labels", "zone=a,example.com/disk=ssd,empty=",
			       "--taints", "dedicated=x:NoSchedule,gpu:NoExecute"), 0);
	agent_config_free(&cfg);
}

/* Review H1: a uid from the store becomes a path only when it is a plain token. */
static void test_uid_is_a_token_never_a_path(void **state)
{
	(void)state;
	char u64[65];
	memset(u64, 'a', 64);
	u64[64] = 0;
	assert_true(agent_uid_ok("7c9e6679-7425-40de-944b-e07fc1f90ae7"));
	assert_true(agent_uid_ok("u-1"));
	assert_true(agent_uid_ok(u64));
	u64[63] = '.';
	assert_false(agent_uid_ok(u64));
	char u65[66];
	memset(u65, 'a', 65);
	u65[65] = 0;
	assert_false(agent_uid_ok(u65));
	assert_false(agent_uid_ok("../../victim"));
	assert_false(agent_uid_ok(".."));
	assert_false(agent_uid_ok("a/b"));
	assert_false(agent_uid_ok(""));
	assert_false(agent_uid_ok(NULL));
}

static void test_pod_dir_with_a_path_uid_is_neither_made_nor_removed(void **state)
{
	(void)state;
	char root[256], dir[512], victim[512], file[600], msg[512];
	test_tmpdir(root, sizeof(root), "agent-uid");
	snprintf(victim, sizeof(victim), "%s/victim", root);
	snprintf(dir, sizeof(dir), "%s/pods/../victim", root);
	agent_limits_t l = { 0 };
	agent_pod_t *p = pod_make(dir);
	free(p->uid);
	p->uid = strdup("../victim");
	json_t *pod = json_object();
	assert_int_equal(agent_proc_pod_setup(&l, p, pod, msg, sizeof(msg)), -1);
	assert_int_equal(access(victim, F_OK), -1);
	assert_int_equal(mkdir(victim, 0755), 0);
	snprintf(file, sizeof(file), "%s/precious", victim);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	agent_proc_pod_remove(&l, p);
	assert_int_equal(access(file, F_OK), 0);
	json_decref(pod);
	agent_pod_free(p);
	test_rmtree(root);
}

/* Review L4: a huge grace period saturates the SIGKILL deadline instead of wrapping it into
 * the past (which would SIGKILL at once). */
static void test_kill_deadline_saturates(void **state)
{
	(void)state;
	assert_int_equal(agent_kill_deadline(1000, 30), 31000);
	assert_int_equal(agent_kill_deadline(1000, 0), 1000);
	assert_int_equal(agent_kill_deadline(1000, -5), 1000);
	assert_true(agent_kill_deadline(1000, INT64_MAX) == INT64_MAX);
	assert_true(agent_kill_deadline(123456789, INT64_MAX / 1000) == INT64_MAX);
	assert_true(agent_kill_deadline(0, INT64_MAX / 1000) == INT64_MAX / 1000 * 1000);
	assert_true(agent_kill_deadline(1000, 9223372036854775LL) == INT64_MAX);
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
		cmocka_unit_test(test_flags_refuse_invalid_node_name_labels_and_taints),
		cmocka_unit_test(test_uid_is_a_token_never_a_path),
		cmocka_unit_test(test_pod_dir_with_a_path_uid_is_neither_made_nor_removed),
		cmocka_unit_test(test_kill_deadline_saturates),
		cmocka_unit_test(test_state_file_round_trips),
		cmocka_unit_test(test_state_file_malformed_is_refused),
		cmocka_unit_test(test_start_time_tells_a_process_from_its_successor),
		cmocka_unit_test(test_spawn_runs_in_its_group_with_env_log_and_rlimit),
		cmocka_unit_test(test_spawn_exec_failure_logs_and_exits_127),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
