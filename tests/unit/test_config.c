/* tests/unit/test_config.c — keeld's configuration against etcd 3.4's: defaults, both flag
 * spellings, ETCD_* variables, every refusal with etcd's wording, member and cluster ids.
 * Never touches the network; the one test needing a data directory makes its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tmpdir.h"

#define MAX_ARGS 32

struct run {
	keeld_config_t *cfg;
	int rc;
	char err[1024];
	char warnings[4096]; /* what the parse wrote to stderr */
};

/* Parses "keeld" + the NULL-terminated args with envp, capturing stderr. */
static void run_env(struct run *r, char **envp, ...)
{
	char *argv[MAX_ARGS] = {"keeld"};
	int argc = 1;
	va_list ap;
	va_start(ap, envp);
	for (char *a; (a = va_arg(ap, char *)) && argc < MAX_ARGS - 1;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	char path[] = "/tmp/keel-config-stderr-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	dup2(fd, 2);
	memset(r->err, 'x', sizeof(r->err));
	r->rc = keeld_config_parse(r->cfg, argc, argv, envp, r->err, sizeof(r->err));
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, r->warnings, sizeof(r->warnings) - 1, 0);
	r->warnings[n > 0 ? n : 0] = '\0';
	close(fd);
}

#define run(r, ...) run_env(r, NULL, __VA_ARGS__, (char *)NULL)
#define run0(r) run_env(r, NULL, (char *)NULL)

static int setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->cfg = calloc(1, sizeof(*r->cfg));
	*state = r;
	return r->cfg ? 0 : -1;
}

static int teardown(void **state)
{
	struct run *r = *state;
	free(r->cfg);
	free(r);
	return 0;
}

static void assert_ok(struct run *r)
{
	if (r->rc != 0)
		fail_msg("parse failed: %s", r->err);
}

static void assert_refused(struct run *r, const char *want)
{
	if (r->rc == 0)
		fail_msg("parse accepted what should be refused with: %s", want);
	if (!strstr(r->err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", r->err, want);
}

static void assert_warned(struct run *r, const char *want)
{
	if (!strstr(r->warnings, want))
		fail_msg("stderr \"%s\" does not contain \"%s\"", r->warnings, want);
}

/* ---- defaults ---- */

static void test_no_flags_gives_etcd_defaults(void **state)
{
	struct run *r = *state;
	keeld_config_t *c = r->cfg;
	run0(r);
	assert_ok(r);
	assert_string_equal(c->name, "default");
	assert_string_equal(c->data_dir, "default.keel");
	assert_int_equal(c->listen_client_urls.n, 1);
	assert_string_equal(c->listen_client_urls.v[0].text, "http://localhost:2379");
	assert_string_equal(c->listen_client_urls.v[0].host, "localhost");
	assert_int_equal(c->listen_client_urls.v[0].port, 2379);
	assert_string_equal(c->advertise_client_urls.v[0].text, "http://localhost:2379");
	assert_string_equal(c->listen_peer_urls.v[0].text, "http://localhost:2380");
	assert_string_equal(c->initial_advertise_peer_urls.v[0].text, "http://localhost:2380");
	assert_int_equal(c->n_members, 1);
	assert_string_equal(c->members[0].name, "default");
	assert_string_equal(c->members[0].peer_urls.v[0].text, "http://localhost:2380");
	assert_false(c->cluster_state_existing);
	assert_string_equal(c->cluster_token, "etcd-cluster");
	assert_int_equal(c->heartbeat_ms, 100);
	assert_int_equal(c->election_ms, 1000);
	assert_int_equal(c->snapshot_count, 100000);
	assert_int_equal(c->quota_backend_bytes, 0);
	assert_int_equal(c->max_request_bytes, 1572864);
	assert_int_equal(c->compaction_mode, KEELD_COMPACT_PERIODIC);
	assert_int_equal(c->compaction_retention, 0);
	assert_int_equal(c->log_level, KEELD_LOG_INFO);
	assert_false(c->show_version);
	assert_false(c->show_help);
	assert_int_not_equal(c->self_id, 0);
	assert_int_equal(c->self_id, c->members[0].id);
	assert_int_not_equal(c->cluster_id, 0);
	assert_string_equal(r->warnings, "");
}

static void test_data_dir_defaults_to_name_dot_keel(void **state)
{
	struct run *r = *state;
	run(r, "--name", "infra1");
	assert_ok(r);
	assert_string_equal(r->cfg->data_dir, "infra1.keel");
	run(r, "--name", "infra1", "--data-dir", "/var/lib/keel");
	assert_ok(r);
	assert_string_equal(r->cfg->data_dir, "/var/lib/keel");
	run(r, "--name", "infra1", "--data-dir=");
	assert_ok(r);
	assert_string_equal(r->cfg->data_dir, "infra1.keel");
}

static void test_name_alone_makes_single_member_cluster_of_that_name(void **state)
{
	struct run *r = *state;
	run(r, "--name", "solo", "--initial-advertise-peer-urls", "http://127.0.0.1:12380",
	    "--listen-peer-urls", "http://127.0.0.1:12380");
	assert_ok(r);
	assert_int_equal(r->cfg->n_members, 1);
	assert_string_equal(r->cfg->members[0].name, "solo");
	assert_string_equal(r->cfg->members[0].peer_urls.v[0].text, "http://127.0.0.1:12380");
	/* etcd replaces its unchanged default cluster string too, once --name is given */
	run(r, "--name", "solo", "--initial-cluster", "default=http://localhost:2380");
	assert_ok(r);
	assert_string_equal(r->cfg->members[0].name, "solo");
}

/* ---- every flag, every spelling ---- */

typedef void (*check_fn)(const keeld_config_t *c);

static void check_name(const keeld_config_t *c) { assert_string_equal(c->name, "n1"); }
static void check_data_dir(const keeld_config_t *c) { assert_string_equal(c->data_dir, "/d/x"); }
static void check_lc(const keeld_config_t *c)
{
	assert_string_equal(c->listen_client_urls.v[0].text, "http://127.0.0.1:4001");
}
static void check_ac(const keeld_config_t *c)
{
	assert_string_equal(c->advertise_client_urls.v[0].text, "http://10.0.0.1:4001");
}
static void check_lp(const keeld_config_t *c)
{
	assert_string_equal(c->listen_peer_urls.v[0].text, "http://0.0.0.0:4002");
}
static void check_ap(const keeld_config_t *c)
{
	assert_string_equal(c->initial_advertise_peer_urls.v[0].text, "http://10.0.0.1:4002");
	assert_string_equal(c->members[0].peer_urls.v[0].text, "http://10.0.0.1:4002");
}
static void check_cluster(const keeld_config_t *c)
{
	assert_int_equal(c->n_members, 2);
	assert_string_equal(c->members[1].name, "other");
}
static void check_state(const keeld_config_t *c) { assert_true(c->cluster_state_existing); }
static void check_token(const keeld_config_t *c) { assert_string_equal(c->cluster_token, "tk"); }
static void check_hb(const keeld_config_t *c) { assert_int_equal(c->heartbeat_ms, 50); }
static void check_el(const keeld_config_t *c) { assert_int_equal(c->election_ms, 2500); }
static void check_sc(const keeld_config_t *c) { assert_int_equal(c->snapshot_count, 7); }
static void check_quota(const keeld_config_t *c)
{
	assert_int_equal(c->quota_backend_bytes, 8589934592LL);
}
static void check_mrb(const keeld_config_t *c) { assert_int_equal(c->max_request_bytes, 1024); }
static void check_mode(const keeld_config_t *c)
{
	assert_int_equal(c->compaction_mode, KEELD_COMPACT_REVISION);
}
static void check_ret(const keeld_config_t *c)
{
	assert_int_equal(c->compaction_retention, 30 * 60 * 1000);
}
static void check_ll(const keeld_config_t *c) { assert_int_equal(c->log_level, KEELD_LOG_WARN); }

static const struct {
	const char *flag, *value, *env;
	check_fn check;
} each_flag[] = {
	{"name", "n1", "ETCD_NAME", check_name},
	{"data-dir", "/d/x", "ETCD_DATA_DIR", check_data_dir},
	{"listen-client-urls", "http://127.0.0.1:4001", "ETCD_LISTEN_CLIENT_URLS", check_lc},
	{"advertise-client-urls", "http://10.0.0.1:4001", "ETCD_ADVERTISE_CLIENT_URLS", check_ac},
	{"listen-peer-urls", "http://0.0.0.0:4002", "ETCD_LISTEN_PEER_URLS", check_lp},
	{"initial-advertise-peer-urls", "http://10.0.0.1:4002",
	 "ETCD_INITIAL_ADVERTISE_PEER_URLS", check_ap},
	{"initial-cluster", "default=http://localhost:2380,other=http://10.0.0.9:2380",
	 "ETCD_INITIAL_CLUSTER", check_cluster},
	{"initial-cluster-state", "existing", "ETCD_INITIAL_CLUSTER_STATE", check_state},
	{"initial-cluster-token", "tk", "ETCD_INITIAL_CLUSTER_TOKEN", check_token},
	{"heartbeat-interval", "50", "ETCD_HEARTBEAT_INTERVAL", check_hb},
	{"election-timeout", "2500", "ETCD_ELECTION_TIMEOUT", check_el},
	{"snapshot-count", "7", "ETCD_SNAPSHOT_COUNT", check_sc},
	{"quota-backend-bytes", "8589934592", "ETCD_QUOTA_BACKEND_BYTES", check_quota},
	{"max-request-bytes", "1024", "ETCD_MAX_REQUEST_BYTES", check_mrb},
	{"auto-compaction-mode", "revision", "ETCD_AUTO_COMPACTION_MODE", check_mode},
	{"auto-compaction-retention", "30m", "ETCD_AUTO_COMPACTION_RETENTION", check_ret},
	{"log-level", "warn", "ETCD_LOG_LEVEL", check_ll},
};

#define N_EACH (sizeof(each_flag) / sizeof(each_flag[0]))

/* The other flags a value needs to be accepted on its own (etcd's checks). */
static void companions(size_t i, char **extra, int *n)
{
	const char *f = each_flag[i].flag;
	*n = 0;
	if (!strcmp(f, "listen-client-urls")) {
		extra[(*n)++] = "--advertise-client-urls";
		extra[(*n)++] = "http://127.0.0.1:4001";
	} else if (!strcmp(f, "name")) {
		extra[(*n)++] = "--initial-cluster";
		extra[(*n)++] = "n1=http://localhost:2380";
	} else if (!strcmp(f, "initial-advertise-peer-urls")) {
		extra[(*n)++] = "--initial-cluster";
		extra[(*n)++] = "default=http://10.0.0.1:4002";
	}
}

static void run_flag_spelling(struct run *r, size_t i, int spelling)
{
	char one[512], flag[128];
	char *extra[4];
	int n;
	companions(i, extra, &n);
	snprintf(flag, sizeof(flag), "%s%s", spelling & 1 ? "-" : "--", each_flag[i].flag);
	snprintf(one, sizeof(one), "%s=%s", flag, each_flag[i].value);
	if (spelling & 2)
		run(r, one, n ? extra[0] : (char *)NULL, n ? extra[1] : (char *)NULL);
	else
		run(r, flag, each_flag[i].value, n ? extra[0] : (char *)NULL,
		    n ? extra[1] : (char *)NULL);
}

static void test_each_flag_takes_both_dashes_and_both_value_forms(void **state)
{
	struct run *r = *state;
	for (size_t i = 0; i < N_EACH; i++) {
		for (int spelling = 0; spelling < 4; spelling++) {
			run_flag_spelling(r, i, spelling);
			if (r->rc)
				fail_msg("--%s (spelling %d): %s", each_flag[i].flag, spelling,
					 r->err);
			each_flag[i].check(r->cfg);
		}
	}
}

static void test_each_flag_is_read_from_its_etcd_variable(void **state)
{
	struct run *r = *state;
	for (size_t i = 0; i < N_EACH; i++) {
		char kv[512], kv2[512];
		char *extra[4];
		int n;
		companions(i, extra, &n);
		snprintf(kv, sizeof(kv), "%s=%s", each_flag[i].env, each_flag[i].value);
		char *envp[] = {"PATH=/bin", kv, n ? kv2 : NULL, NULL};
		if (n) /* the companion through its variable too: "--a-b" -> "ETCD_A_B" */
			snprintf(kv2, sizeof(kv2), "ETCD_%s=%s",
				 !strcmp(extra[0], "--initial-cluster") ? "INITIAL_CLUSTER"
									  : "ADVERTISE_CLIENT_URLS",
				 extra[1]);
		run_env(r, envp, (char *)NULL);
		if (r->rc)
			fail_msg("%s: %s", each_flag[i].env, r->err);
		each_flag[i].check(r->cfg);
		assert_string_equal(r->warnings, "");
	}
}

static void test_version_is_a_bool_flag(void **state)
{
	struct run *r = *state;
	run(r, "--version");
	assert_ok(r);
	assert_true(r->cfg->show_version);
	run(r, "-version=true");
	assert_ok(r);
	assert_true(r->cfg->show_version);
	run(r, "--version=false");
	assert_ok(r);
	assert_false(r->cfg->show_version);
	run(r, "--version=maybe");
	assert_refused(r, "invalid boolean value \"maybe\" for -version: parse error");
	/* a bool flag takes no separate value: "false" is then a stray argument */
	run(r, "--version", "false");
	assert_refused(r, "'false' is not a valid flag");
}

static void test_version_skips_the_checks_as_etcd_does(void **state)
{
	struct run *r = *state;
	run(r, "--version", "--election-timeout", "1");
	assert_ok(r);
	assert_true(r->cfg->show_version);
}

static void test_help_in_every_spelling_stops_parsing(void **state)
{
	struct run *r = *state;
	const char *forms[] = {"-h", "--h", "-help", "--help"};
	for (size_t i = 0; i < 4; i++) {
		run(r, forms[i], "--no-such-flag");
		assert_ok(r);
		assert_true(r->cfg->show_help);
	}
	run(r, "--no-such-flag", "-h");
	assert_refused(r, "flag provided but not defined: -no-such-flag");
}

static void test_usage_lists_every_supported_flag(void **state)
{
	(void)state;
	const char *u = keeld_config_usage();
	for (size_t i = 0; i < N_EACH; i++) {
		char want[128];
		snprintf(want, sizeof(want), "--%s ", each_flag[i].flag);
		if (!strstr(u, want))
			fail_msg("usage misses %s", want);
	}
	assert_non_null(strstr(u, "--version"));
	assert_non_null(strstr(u, "--help"));
	assert_null(strstr(u, "--cert-file"));
}

/* ---- environment ---- */

static void test_env_shadowed_by_flag_is_refused_as_etcd_does(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_NAME=from-env", "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://a:1", NULL};
	run_env(r, envp, "--name", "from-flag", (char *)NULL);
	assert_refused(r, "conflicting environment variable \"ETCD_NAME\" is shadowed by "
			  "corresponding command-line flag (either unset environment variable or "
			  "disable flag)");
	/* the variable without a flag is used */
	run_env(r, envp, (char *)NULL);
	assert_ok(r);
	assert_string_equal(r->cfg->name, "from-env");
	assert_string_equal(r->cfg->members[0].peer_urls.v[0].text, "http://a:1");
	assert_string_equal(r->warnings, "");
}

static void test_unknown_etcd_variable_warns_and_is_ignored(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_NO_SUCH_THING=1", NULL};
	run_env(r, envp, (char *)NULL);
	assert_ok(r);
	assert_warned(r, "keeld: warning: unrecognized environment variable ETCD_NO_SUCH_THING=1");
	/* the name must match exactly, as os.Getenv does */
	char *lower[] = {"ETCD_name=x", NULL};
	run_env(r, lower, (char *)NULL);
	assert_ok(r);
	assert_string_equal(r->cfg->name, "default");
	assert_warned(r, "unrecognized environment variable ETCD_name=x");
}

static void test_etcdctl_and_other_variables_are_not_ours(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCDCTL_API=3", "ETCDCTL_ENDPOINTS=http://x:1", "HOME=/root", "ETCD=1",
			NULL};
	run_env(r, envp, (char *)NULL);
	assert_ok(r);
	assert_string_equal(r->warnings, "");
}

static void test_empty_variables_are_skipped_as_etcd_skips_them(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_NAME=", "ETCD_HEARTBEAT_INTERVAL=", "ETCD_LISTEN_CLIENT_URLS=", NULL};
	run_env(r, envp, (char *)NULL);
	assert_ok(r);
	assert_string_equal(r->cfg->name, "default");
	assert_int_equal(r->cfg->heartbeat_ms, 100);
	assert_string_equal(r->warnings, "");
}

static void test_variable_naming_unsupported_etcd_flag_is_refused(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_CERT_FILE=/etc/cert.pem", NULL};
	run_env(r, envp, (char *)NULL);
	assert_refused(r, "environment variable ETCD_CERT_FILE sets etcd flag --cert-file, which "
			  "keeld does not support");
	char *v2[] = {"ETCD_ENABLE_V2=true", NULL};
	run_env(r, v2, (char *)NULL);
	assert_refused(r, "ETCD_ENABLE_V2");
	/* etcd ignores empty variables, so an empty one sets nothing keeld could miss */
	char *empty[] = {"ETCD_CERT_FILE=", NULL};
	run_env(r, empty, (char *)NULL);
	assert_ok(r);
}

static void test_variable_with_bad_value_is_named(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_HEARTBEAT_INTERVAL=abc", NULL};
	run_env(r, envp, (char *)NULL);
	assert_int_equal(r->rc, 1);
	assert_refused(r, "error verifying flags, invalid value \"abc\" for "
			  "ETCD_HEARTBEAT_INTERVAL: parse error. See 'keeld --help'.");
	/* ETCD_VERSION is read (and must be a bool) but, as in etcd, prints nothing */
	char *ver[] = {"ETCD_VERSION=v3.4.0", NULL};
	run_env(r, ver, (char *)NULL);
	assert_refused(r, "invalid value \"v3.4.0\" for ETCD_VERSION: parse error");
	char *ver_ok[] = {"ETCD_VERSION=true", NULL};
	run_env(r, ver_ok, (char *)NULL);
	assert_ok(r);
	assert_false(r->cfg->show_version);
}

static void test_listen_client_from_env_also_needs_advertise(void **state)
{
	struct run *r = *state;
	char *envp[] = {"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:4001", NULL};
	run_env(r, envp, (char *)NULL);
	assert_refused(r, "--advertise-client-urls is required when --listen-client-urls is set "
			  "explicitly");
}

/* ---- refusals of the command line ---- */

static void test_unknown_flag_is_refused_naming_keeld(void **state)
{
	struct run *r = *state;
	run(r, "--no-such-flag");
	assert_int_equal(r->rc, 2);
	assert_refused(r, "flag provided but not defined: -no-such-flag (see 'keeld --help')");
	run(r, "-no-such-flag=3");
	assert_refused(r, "flag provided but not defined: -no-such-flag");
}

static void test_unsupported_etcd_flags_are_refused_by_name(void **state)
{
	struct run *r = *state;
	const char *flags[] = {"cert-file", "enable-v2", "auth-token", "listen-metrics-urls",
			       "experimental-initial-corrupt-check", "proxy", "discovery",
			       "wal-dir", "max-txn-ops", "grpc-keepalive-timeout", "logger",
			       "log-outputs", "config-file", "force-new-cluster"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		char dd[128], d1[128], want[160];
		snprintf(dd, sizeof(dd), "--%s", flags[i]);
		snprintf(d1, sizeof(d1), "-%s=x", flags[i]);
		snprintf(want, sizeof(want), "flag --%s is an etcd flag keeld does not support",
			 flags[i]);
		run(r, dd, "x");
		assert_refused(r, want);
		run(r, d1);
		assert_refused(r, want);
	}
}

static void test_etcd2_flags_etcd_ignores_are_ignored_with_a_warning(void **state)
{
	struct run *r = *state;
	run(r, "-v", "--peer-heartbeat-interval=5");
	assert_ok(r);
	assert_warned(r, "keeld: warning: flag \"-v\" is no longer supported - ignoring.");
	assert_warned(r, "flag \"-peer-heartbeat-interval\" is no longer supported");
}

static void test_malformed_command_lines_get_go_flag_messages(void **state)
{
	struct run *r = *state;
	run(r, "---name", "x");
	assert_refused(r, "bad flag syntax: ---name");
	run(r, "--=x");
	assert_refused(r, "bad flag syntax: --=x");
	run(r, "--name");
	assert_refused(r, "flag needs an argument: -name");
	run(r, "stray");
	assert_int_equal(r->rc, 1);
	assert_refused(r, "error verifying flags, 'stray' is not a valid flag. "
			  "See 'keeld --help'.");
	run(r, "--", "--name", "x");
	assert_refused(r, "'--name' is not a valid flag");
	run(r, "--name", "--x", "--initial-cluster", "--x=http://localhost:2380");
	assert_ok(r); /* a value may start with a dash, as in Go */
	assert_string_equal(r->cfg->name, "--x");
}

static void test_bad_numbers_are_refused_naming_the_flag(void **state)
{
	struct run *r = *state;
	static const struct {
		const char *flag, *value, *want;
	} bad[] = {
		{"--heartbeat-interval", "abc",
		 "invalid value \"abc\" for flag -heartbeat-interval: parse error"},
		{"--heartbeat-interval", "-1", "invalid value \"-1\" for flag -heartbeat-interval: "
					       "parse error"},
		{"--election-timeout", "99999999999",
		 "for flag -election-timeout: value out of range"},
		{"--snapshot-count", "x",
		 "invalid value \"x\" for flag -snapshot-count: parse error"},
		{"--snapshot-count", "1e5", "for flag -snapshot-count: parse error"},
		{"--quota-backend-bytes", "x", "for flag -quota-backend-bytes: parse error"},
		{"--max-request-bytes", "-5", "invalid value \"-5\" for flag -max-request-bytes: "
					      "parse error"},
		{"--max-request-bytes", "", "for flag -max-request-bytes: parse error"},
		{"--snapshot-count", "1__0", "parse error"},
		{"--snapshot-count", "99999999999999999999", "value out of range"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(r, bad[i].flag, bad[i].value);
		assert_int_equal(r->rc, 2);
		assert_refused(r, bad[i].want);
	}
}

static void test_numbers_take_go_base_prefixes(void **state)
{
	struct run *r = *state;
	run(r, "--snapshot-count", "0x10", "--max-request-bytes", "010", "--quota-backend-bytes",
	    "-1_000");
	assert_ok(r);
	assert_int_equal(r->cfg->snapshot_count, 16);
	assert_int_equal(r->cfg->max_request_bytes, 8);
	assert_int_equal(r->cfg->quota_backend_bytes, -1000);
}

static void test_bad_enums_are_refused(void **state)
{
	struct run *r = *state;
	run(r, "--initial-cluster-state", "foo");
	assert_refused(r, "invalid value \"foo\" for flag -initial-cluster-state: invalid value");
	run(r, "--auto-compaction-mode", "foo");
	assert_refused(r, "error verifying flags, unknown auto-compaction-mode \"foo\". See "
			  "'keeld --help'.");
	run(r, "--log-level", "foo");
	assert_refused(r, "invalid value \"foo\" for flag -log-level: unknown level \"foo\"");
	run(r, "--log-level", "INFO");
	assert_refused(r, "unknown level \"INFO\"");
}

static void test_log_levels_include_etcds_panic_and_fatal(void **state)
{
	struct run *r = *state;
	static const struct {
		const char *name;
		keeld_log_level_t level;
	} levels[] = {
		{"debug", KEELD_LOG_DEBUG}, {"info", KEELD_LOG_INFO}, {"warn", KEELD_LOG_WARN},
		{"error", KEELD_LOG_ERROR}, {"dpanic", KEELD_LOG_ERROR},
		{"panic", KEELD_LOG_ERROR}, {"fatal", KEELD_LOG_ERROR},
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		run(r, "--log-level", levels[i].name);
		assert_ok(r);
		assert_int_equal(r->cfg->log_level, levels[i].level);
	}
}

static void test_https_and_unix_urls_are_refused_until_keeld_has_tls(void **state)
{
	struct run *r = *state;
	run(r, "--listen-client-urls", "https://127.0.0.1:4001", "--advertise-client-urls",
	    "https://127.0.0.1:4001");
	assert_int_equal(r->rc, 2);
	assert_refused(r, "invalid value \"https://127.0.0.1:4001\" for flag -listen-client-urls: "
			  "URL scheme https is not supported by keeld yet");
	run(r, "--initial-advertise-peer-urls", "unix://x:1");
	assert_refused(r, "-initial-advertise-peer-urls: URL scheme unix is not supported");
	run(r, "--initial-cluster", "default=https://localhost:2380");
	assert_refused(r, "error setting up initial cluster: --initial-cluster: URL scheme https "
			  "is not supported by keeld yet");
}

static void test_bad_urls_get_etcds_messages(void **state)
{
	struct run *r = *state;
	static const struct {
		const char *flag, *value, *want;
	} bad[] = {
		{"--listen-peer-urls", "foo://127.0.0.1:1",
		 "URL scheme must be http, https, unix, or unixs: foo://127.0.0.1:1"},
		{"--listen-peer-urls", "127.0.0.1:2380",
		 "URL scheme must be http, https, unix, or unixs: 127.0.0.1:2380"},
		{"--listen-peer-urls", "http://127.0.0.1",
		 "URL address does not have the form \"host:port\": http://127.0.0.1"},
		{"--listen-peer-urls", "http://::1:2380", "does not have the form \"host:port\""},
		{"--listen-peer-urls", "http://127.0.0.1:2380/x",
		 "URL must not contain a path: http://127.0.0.1:2380/x"},
		{"--listen-peer-urls", "http://127.0.0.1:2380/", "URL must not contain a path"},
		{"--listen-peer-urls", "http://127.0.0.1:2380?a=b", "must not contain a query"},
		{"--listen-peer-urls", "http://u@127.0.0.1:2380",
		 "must not contain user information"},
		{"--listen-peer-urls", "http://[::1:2380", "missing ']' in host"},
		{"--listen-peer-urls", "http://127.0.0.1:abc",
		 "parse \"http://127.0.0.1:abc\": invalid port \":abc\" after host"},
		{"--listen-peer-urls", "http://127.0.0.1:", "invalid port"},
		{"--listen-peer-urls", "http://127.0.0.1:99999", "URL port out of range"},
		{"--listen-peer-urls", "http://127.0.0.1:2380,",
		 "invalid value \"http://127.0.0.1:2380,\" for flag -listen-peer-urls: URL scheme "
		 "must be http"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(r, bad[i].flag, bad[i].value);
		assert_int_equal(r->rc, 2);
		assert_refused(r, bad[i].want);
	}
	/* listening needs an address, advertising needs a host */
	run(r, "--listen-peer-urls", "http://example.com:2380");
	assert_refused(r, "error verifying flags, expected IP in URL for binding "
			  "(http://example.com:2380). See 'keeld --help'.");
	run(r, "--advertise-client-urls", "http://:2379");
	assert_refused(r, "error verifying flags, --advertise-client-urls \"http://:2379\" must be "
			  "\"host:port\" (unexpected empty host (http://:2379)).");
	run(r, "--initial-advertise-peer-urls", "http://:2380");
	assert_refused(r, "--initial-advertise-peer-urls \"http://:2380\" must be \"host:port\"");
}

static void test_listen_client_urls_without_advertise_is_refused(void **state)
{
	struct run *r = *state;
	run(r, "--listen-client-urls", "http://127.0.0.1:4001");
	assert_int_equal(r->rc, 1);
	assert_refused(r, "error verifying flags, --advertise-client-urls is required when "
			  "--listen-client-urls is set explicitly. See 'keeld --help'.");
}

static void test_election_timeout_must_be_five_heartbeats(void **state)
{
	struct run *r = *state;
	run(r, "--election-timeout", "400");
	assert_refused(r, "error verifying flags, --election-timeout[400ms] should be at least as "
			  "5 times as --heartbeat-interval[100ms]. See 'keeld --help'.");
	run(r, "--heartbeat-interval", "201");
	assert_refused(r, "--election-timeout[1000ms] should be at least as 5 times as "
			  "--heartbeat-interval[201ms]");
	run(r, "--heartbeat-interval", "200"); /* exactly five is enough */
	assert_ok(r);
	run(r, "--heartbeat-interval", "0");
	assert_refused(r, "--heartbeat-interval must be >0 (set to 0ms)");
	run(r, "--election-timeout", "0");
	assert_refused(r, "--election-timeout must be >0 (set to 0ms)");
	run(r, "--election-timeout", "60000");
	assert_refused(r, "--election-timeout[60000ms] is too long, and should be set less than "
			  "50000ms");
}

/* ---- the initial cluster ---- */

#define C3 "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:12380," \
	   "infra3=http://127.0.0.1:22380"

static void test_name_missing_from_initial_cluster_is_refused(void **state)
{
	struct run *r = *state;
	run(r, "--name", "infra4", "--initial-cluster", C3);
	assert_int_equal(r->rc, 1);
	assert_refused(r, "couldn't find local name \"infra4\" in the initial cluster "
			  "configuration");
	run(r, "--initial-cluster", "");
	assert_refused(r, "couldn't find local name \"default\"");
}

static void test_advertised_peer_urls_must_match_the_cluster_entry(void **state)
{
	struct run *r = *state;
	run(r, "--name", "infra2", "--initial-cluster", C3, "--initial-advertise-peer-urls",
	    "http://127.0.0.1:2380");
	assert_refused(r, "--initial-cluster has infra2=http://127.0.0.1:12380 but missing from "
			  "--initial-advertise-peer-urls=http://127.0.0.1:2380");
	run(r, "--name", "infra1", "--initial-cluster", C3, "--initial-advertise-peer-urls",
	    "http://127.0.0.1:2380,http://127.0.0.1:2381");
	assert_refused(r, "--initial-advertise-peer-urls has http://127.0.0.1:2381 but missing "
			  "from --initial-cluster=infra1=http://127.0.0.1:2380,"
			  "infra1=http://127.0.0.1:2381");
	/* no name resolution: localhost is not 127.0.0.1 here, as in etcd's own check */
	run(r, "--name", "infra1", "--initial-cluster", C3, "--initial-advertise-peer-urls",
	    "http://localhost:2380");
	assert_refused(r, "missing from --initial-advertise-peer-urls=http://localhost:2380");
	/* joining an existing cluster skips the match, as etcd's VerifyJoinExisting does */
	run(r, "--name", "infra1", "--initial-cluster", C3, "--initial-advertise-peer-urls",
	    "http://127.0.0.1:2381", "--initial-cluster-state", "existing");
	assert_ok(r);
	run(r, "--name", "infra1", "--initial-cluster", C3, "--initial-advertise-peer-urls",
	    "http://127.0.0.1:2380");
	assert_ok(r);
}

static void test_duplicate_and_malformed_cluster_entries_are_refused(void **state)
{
	struct run *r = *state;
	run(r, "--initial-cluster", "default=http://localhost:2380,b=http://localhost:2380");
	assert_refused(r, "initial cluster b=http://localhost:2380,default=http://localhost:2380 "
			  "has duplicate url");
	run(r, "--initial-cluster", "default=http://localhost:2380,b");
	assert_refused(r, "error setting up initial cluster: --initial-cluster: URL scheme must be "
			  "http, https, unix, or unixs: ");
	/* a name given twice collects both URLs; empty entries are skipped */
	run(r, "--initial-cluster", "default=http://localhost:2380,,default=http://localhost:2381",
	    "--initial-advertise-peer-urls", "http://localhost:2381,http://localhost:2380");
	assert_ok(r);
	assert_int_equal(r->cfg->n_members, 1);
	assert_int_equal(r->cfg->members[0].peer_urls.n, 2);
}

static void test_existing_wal_skips_bootstrap_checks_as_etcd_does(void **state)
{
	struct run *r = *state;
	char dir[256], wal[300];
	test_tmpdir(dir, sizeof(dir), "config");
	run(r, "--data-dir", dir, "--name", "elsewhere", "--initial-cluster",
	    "a=http://127.0.0.1:2380");
	assert_refused(r, "couldn't find local name");
	snprintf(wal, sizeof(wal), "%s/member", dir);
	assert_int_equal(mkdir(wal, 0700), 0);
	snprintf(wal, sizeof(wal), "%s/member/wal", dir);
	assert_int_equal(mkdir(wal, 0700), 0);
	run(r, "--data-dir", dir, "--name", "elsewhere", "--initial-cluster",
	    "a=http://127.0.0.1:2380");
	assert_int_equal(test_rmtree(dir), 0);
	assert_ok(r);
	assert_int_equal(r->cfg->self_id, 0); /* the member's id comes from its WAL */
}

/* ---- ids ---- */

static void test_every_member_computes_the_same_ids(void **state)
{
	struct run *r = *state;
	static const char *names[] = {"infra1", "infra2", "infra3"};
	static const char *peers[] = {"http://127.0.0.1:2380", "http://127.0.0.1:12380",
				      "http://127.0.0.1:22380"};
	uint64_t ids[3][3], cluster[3], self[3];
	for (int m = 0; m < 3; m++) {
		run(r, "--name", names[m], "--initial-advertise-peer-urls", peers[m],
		    "--initial-cluster", C3, "--initial-cluster-token", "keel-cluster-1");
		assert_ok(r);
		assert_int_equal(r->cfg->n_members, 3);
		for (int i = 0; i < 3; i++)
			ids[m][i] = r->cfg->members[i].id;
		cluster[m] = r->cfg->cluster_id;
		self[m] = r->cfg->self_id;
	}
	for (int m = 1; m < 3; m++) {
		assert_memory_equal(ids[m], ids[0], sizeof(ids[0]));
		assert_int_equal(cluster[m], cluster[0]);
	}
	for (int m = 0; m < 3; m++)
		assert_int_equal(self[m], ids[0][m]);
	assert_int_not_equal(ids[0][0], ids[0][1]);
	assert_int_not_equal(ids[0][1], ids[0][2]);
	assert_int_not_equal(ids[0][0], ids[0][2]);
	/* another token is another cluster, with other ids */
	run(r, "--name", "infra1", "--initial-advertise-peer-urls", peers[0], "--initial-cluster",
	    C3, "--initial-cluster-token", "keel-cluster-2");
	assert_ok(r);
	assert_int_not_equal(r->cfg->members[0].id, ids[0][0]);
	assert_int_not_equal(r->cfg->cluster_id, cluster[0]);
}

/* The ids etcd 3.4 gives the same flags (etcd --name r1 --initial-cluster
 * r1=http://127.0.0.1:24480,r2=http://127.0.0.1:24482 --initial-cluster-token tok), so an
 * etcdctl snapshot restore and keeld agree on who is who. */
static void test_member_and_cluster_ids_are_etcds(void **state)
{
	(void)state;
	keeld_member_conf_t m[2];
	char err[256];
	memset(m, 0, sizeof(m));
	assert_int_equal(keeld_parse_urls("http://127.0.0.1:24480", &m[0].peer_urls, err,
					  sizeof(err)), 0);
	assert_int_equal(keeld_parse_urls("http://127.0.0.1:24482", &m[1].peer_urls, err,
					  sizeof(err)), 0);
	m[0].id = keeld_member_id(&m[0].peer_urls, "tok");
	m[1].id = keeld_member_id(&m[1].peer_urls, "tok");
	assert_int_equal(m[0].id, 0x5c0c46ee57ec7cf0ULL);
	assert_int_equal(m[1].id, 0xc276e2a3e720e186ULL);
	assert_int_equal(keeld_cluster_id(m, 2), 0x9b2aa6306af819e8ULL);
}

static void test_member_id_is_stable_and_order_free(void **state)
{
	(void)state;
	keeld_url_list_t a, b, c;
	char err[256];
	assert_int_equal(keeld_parse_urls("http://10.0.0.1:2380,http://10.0.0.2:2380", &a, err,
					  sizeof(err)), 0);
	assert_int_equal(keeld_parse_urls("http://10.0.0.2:2380,http://10.0.0.1:2380", &b, err,
					  sizeof(err)), 0);
	assert_int_equal(keeld_parse_urls("http://10.0.0.1:2380", &c, err, sizeof(err)), 0);
	uint64_t ida = keeld_member_id(&a, "t");
	assert_int_not_equal(ida, 0);
	assert_int_equal(ida, keeld_member_id(&a, "t"));
	assert_int_equal(ida, keeld_member_id(&b, "t"));
	/* the unsorted list gives the same id, so callers need not sort */
	keeld_url_list_t swapped = a;
	swapped.v[0] = a.v[1];
	swapped.v[1] = a.v[0];
	assert_int_equal(ida, keeld_member_id(&swapped, "t"));
	assert_int_not_equal(ida, keeld_member_id(&c, "t"));
	assert_int_not_equal(ida, keeld_member_id(&a, "u"));
	assert_int_not_equal(keeld_member_id(&c, ""), keeld_member_id(&c, "t"));

	keeld_member_conf_t m[2];
	memset(m, 0, sizeof(m));
	m[0].id = ida;
	m[1].id = keeld_member_id(&c, "t");
	uint64_t cid = keeld_cluster_id(m, 2);
	keeld_member_conf_t rev[2] = {m[1], m[0]};
	assert_int_equal(cid, keeld_cluster_id(rev, 2));
	assert_int_not_equal(cid, keeld_cluster_id(m, 1));
	assert_int_not_equal(cid, 0);
}

static void test_member_id_does_not_change_between_builds(void **state)
{
	(void)state;
	keeld_url_list_t l;
	char err[256];
	assert_int_equal(keeld_parse_urls("http://localhost:2380", &l, err, sizeof(err)), 0);
	/* pinned values, etcd's own for a member started with no flags: a change here would
	 * give new members ids that differ from etcd's for the same flags */
	assert_int_equal(keeld_member_id(&l, "etcd-cluster"), 0x8e9e05c52164694dULL);
	keeld_member_conf_t m = {.id = 0x8e9e05c52164694dULL};
	assert_int_equal(keeld_cluster_id(&m, 1), 0xcdf818194e3a8c32ULL);
}

/* ---- URL lists ---- */

static void test_url_lists_with_several_entries(void **state)
{
	struct run *r = *state;
	keeld_url_list_t l;
	char err[256];
	assert_int_equal(keeld_parse_urls(" http://127.0.0.1:2379 ,http://[::1]:2379,"
					  "HTTP://10.0.0.1:02379,http://127.0.0.1:2379", &l, err,
					  sizeof(err)), 0);
	/* sorted as etcd sorts them, duplicates dropped, scheme lower-cased */
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].text, "http://10.0.0.1:2379");
	assert_string_equal(l.v[1].text, "http://127.0.0.1:2379");
	assert_string_equal(l.v[2].text, "http://[::1]:2379");
	assert_string_equal(l.v[2].host, "::1");
	assert_int_equal(l.v[2].port, 2379);

	char many[1024] = "";
	for (int i = 0; i <= KEELD_MAX_URLS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%shttp://10.0.0.%d:1",
			 i ? "," : "", i + 1);
	assert_int_equal(keeld_parse_urls(many, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many URLs"));
	assert_int_equal(keeld_parse_urls("", &l, err, sizeof(err)), -1);

	run(r, "--listen-client-urls", "http://127.0.0.1:4001,http://[::1]:4001",
	    "--advertise-client-urls", "http://a.example:4001,http://b.example:4001");
	assert_ok(r);
	assert_int_equal(r->cfg->listen_client_urls.n, 2);
	assert_int_equal(r->cfg->advertise_client_urls.n, 2);
	/* etcd keeps what it had when a URL flag is given "" */
	run(r, "--listen-peer-urls", "");
	assert_ok(r);
	assert_string_equal(r->cfg->listen_peer_urls.v[0].text, "http://localhost:2380");
}

/* ---- compaction retention ---- */

static void test_retention_is_hours_or_a_go_duration_or_revisions(void **state)
{
	struct run *r = *state;
	static const struct {
		const char *mode, *value;
		uint64_t want;
	} ok[] = {
		{"periodic", "0", 0},           {"periodic", "1", 3600000},
		{"periodic", "+2", 7200000},    {"periodic", "010", 36000000},
		{"periodic", "72h", 259200000}, {"periodic", "30m", 1800000},
		{"periodic", "1.5h", 5400000},  {"periodic", "1h30m", 5400000},
		{"periodic", "90s", 90000},     {"periodic", "500us", 1},
		{"periodic", "0s", 0},          {"periodic", ".5m", 30000},
		{"revision", "1000", 1000},     {"revision", "0", 0},
		{"periodic", "1.00000000000000000000000001h", 3600000},
		{"periodic", "0.99999999999999999999h", 3599999},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		run(r, "--auto-compaction-mode", ok[i].mode, "--auto-compaction-retention",
		    ok[i].value);
		if (r->rc)
			fail_msg("%s %s: %s", ok[i].mode, ok[i].value, r->err);
		assert_int_equal(r->cfg->compaction_retention, ok[i].want);
	}
	static const struct {
		const char *mode, *value, *want;
	} bad[] = {
		{"periodic", "abc", "error parsing CompactionRetention: time: invalid duration "
				    "\"abc\""},
		{"periodic", "1x", "time: unknown unit \"x\" in duration \"1x\""},
		{"periodic", "-1", "time: missing unit in duration \"-1\""},
		{"periodic", "-1h", "negative duration"},
		{"periodic", "", "time: invalid duration \"\""},
		{"periodic", "99999999999999999999", "value out of range"},
		{"periodic", "999999999h", "time: invalid duration"},
		{"revision", "1h", "in revision mode it is a number of revisions"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(r, "--auto-compaction-mode", bad[i].mode, "--auto-compaction-retention",
		    bad[i].value);
		assert_refused(r, bad[i].want);
		assert_refused(r, "-auto-compaction-retention");
	}
}

static void test_overlong_values_are_refused_not_truncated(void **state)
{
	struct run *r = *state;
	char name[200], url[700], dir[5000];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	run(r, "--name", name);
	assert_refused(r, "for flag -name: too long (keeld takes at most 127 bytes)");
	snprintf(url, sizeof(url), "http://%0600d:1", 0);
	run(r, "--listen-peer-urls", url);
	assert_refused(r, "URL is too long");
	memset(dir, 'd', sizeof(dir) - 1);
	dir[sizeof(dir) - 1] = '\0';
	run(r, "--data-dir", dir);
	assert_refused(r, "for flag -data-dir: too long");
	char *envp[] = {"ETCD_INITIAL_CLUSTER_TOKEN=" /* 300 bytes */
			"0123456789012345678901234567890123456789012345678901234567890123456789"
			"0123456789012345678901234567890123456789012345678901234567890123456789"
			"0123456789012345678901234567890123456789012345678901234567890123456789"
			"0123456789012345678901234567890123456789012345678901234567890123456789"
			"01234567890123456789", NULL};
	run_env(r, envp, (char *)NULL);
	assert_refused(r, "for flag -initial-cluster-token: too long");
}

static void test_err_is_cleared_on_success(void **state)
{
	struct run *r = *state;
	run0(r);
	assert_ok(r);
	assert_string_equal(r->err, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_no_flags_gives_etcd_defaults),
		T(test_data_dir_defaults_to_name_dot_keel),
		T(test_name_alone_makes_single_member_cluster_of_that_name),
		T(test_each_flag_takes_both_dashes_and_both_value_forms),
		T(test_each_flag_is_read_from_its_etcd_variable),
		T(test_version_is_a_bool_flag),
		T(test_version_skips_the_checks_as_etcd_does),
		T(test_help_in_every_spelling_stops_parsing),
		T(test_usage_lists_every_supported_flag),
		T(test_env_shadowed_by_flag_is_refused_as_etcd_does),
		T(test_unknown_etcd_variable_warns_and_is_ignored),
		T(test_etcdctl_and_other_variables_are_not_ours),
		T(test_empty_variables_are_skipped_as_etcd_skips_them),
		T(test_variable_naming_unsupported_etcd_flag_is_refused),
		T(test_variable_with_bad_value_is_named),
		T(test_listen_client_from_env_also_needs_advertise),
		T(test_unknown_flag_is_refused_naming_keeld),
		T(test_unsupported_etcd_flags_are_refused_by_name),
		T(test_etcd2_flags_etcd_ignores_are_ignored_with_a_warning),
		T(test_malformed_command_lines_get_go_flag_messages),
		T(test_bad_numbers_are_refused_naming_the_flag),
		T(test_numbers_take_go_base_prefixes),
		T(test_bad_enums_are_refused),
		T(test_log_levels_include_etcds_panic_and_fatal),
		T(test_https_and_unix_urls_are_refused_until_keeld_has_tls),
		T(test_bad_urls_get_etcds_messages),
		T(test_listen_client_urls_without_advertise_is_refused),
		T(test_election_timeout_must_be_five_heartbeats),
		T(test_name_missing_from_initial_cluster_is_refused),
		T(test_advertised_peer_urls_must_match_the_cluster_entry),
		T(test_duplicate_and_malformed_cluster_entries_are_refused),
		T(test_existing_wal_skips_bootstrap_checks_as_etcd_does),
		T(test_every_member_computes_the_same_ids),
		T(test_member_id_is_stable_and_order_free),
		T(test_member_id_does_not_change_between_builds),
		T(test_member_and_cluster_ids_are_etcds),
		T(test_url_lists_with_several_entries),
		T(test_retention_is_hours_or_a_go_duration_or_revisions),
		T(test_overlong_values_are_refused_not_truncated),
		T(test_err_is_cleared_on_success),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
