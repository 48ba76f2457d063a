/* tests/cluster/runtime/test_cluster_leader.c — leader election: of two candidates exactly one
 * leads; release, a revoked session or a killed leader process hands over (the last within
 * the lease TTL + 1 s); the stop flag cancels a waiting candidate within 500 ms and leaves no
 * key behind. The killed leader is this program re-run as a child that reaches the embedded
 * store over a loopback port. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keel/concurrency.h>

#include "fixture.h"

#define PREFIX "/registry/leader-election/"

typedef struct cand {
	keel_t *k;
	const char *name;
	const char *id;
	int ttl;
	volatile sig_atomic_t stop;
	kc_leader_t *l;
	int rc;
	keel_error_t err;
	int64_t done_ms;             /* 0 until acquire returned */
	pthread_t th;
} cand_t;

static void *cand_main(void *arg)
{
	cand_t *c = arg;

	c->rc = kc_leader_acquire(c->k, c->name, c->id, c->ttl, &c->stop, &c->l, &c->err);
	__atomic_store_n(&c->done_ms, kc_mono_ms(), __ATOMIC_SEQ_CST);
	return NULL;
}

static void cand_start(cand_t *c, keel_t *k, const char *name, const char *id, int ttl)
{
	c->k = k;
	c->name = name;
	c->id = id;
	c->ttl = ttl;
	assert_int_equal(pthread_create(&c->th, NULL, cand_main, c), 0);
}

static int64_t cand_done(cand_t *c)
{
	return __atomic_load_n(&c->done_ms, __ATOMIC_SEQ_CST);
}

/* Waits up to ms for the candidate to return; its return time or 0. */
static int64_t cand_wait(cand_t *c, int ms)
{
	int64_t until = kc_mono_ms() + ms;

	while (!cand_done(c) && kc_mono_ms() < until)
		fx_sleep_ms(10);
	return cand_done(c);
}

/* The elected value under name, or "" when there is no leader (static buffer). */
static const char *leader_value(keel_t *k, const char *name)
{
	static char buf[128];
	keel_range_result_t *r = NULL;
	char prefix[128];
	keel_error_t err;

	snprintf(prefix, sizeof(prefix), PREFIX "%s", name);
	buf[0] = '\0';
	if (keel_election_leader(k, prefix, &r, &err) == 0) {
		snprintf(buf, sizeof(buf), "%.*s", (int)r->kvs[0].value_len,
			 (const char *)r->kvs[0].value);
		keel_range_result_free(r);
	}
	return buf;
}

static int64_t key_count(keel_t *k, const char *name)
{
	keel_range_req_t req = { 0 };
	keel_range_result_t *r = NULL;
	char prefix[128];
	uint8_t end[128];
	keel_error_t err;
	int64_t n;

	snprintf(prefix, sizeof(prefix), PREFIX "%s/", name);
	req.key = prefix;
	req.key_len = strlen(prefix);
	req.range_end = end;
	req.range_end_len = keel_prefix_end(prefix, req.key_len, end);
	req.count_only = true;
	assert_int_equal(keel_range(k, &req, &r, &err), 0);
	n = r->count;
	keel_range_result_free(r);
	return n;
}

static void test_of_two_candidates_exactly_one_leads_until_release(void **state)
{
	fx_t *fx = *state;
	cand_t a = { 0 }, b = { 0 };

	cand_start(&a, fx->k, "sched", "a", 5);
	assert_true(cand_wait(&a, 5000) > 0);
	pthread_join(a.th, NULL);
	assert_int_equal(a.rc, 0);
	assert_string_equal(leader_value(fx->k, "sched"), "a");

	cand_start(&b, fx->k, "sched", "b", 5);
	assert_int_equal(cand_wait(&b, 700), 0);
	assert_string_equal(leader_value(fx->k, "sched"), "a");
	assert_false(kc_leader_lost(a.l));

	kc_leader_release(a.l);
	assert_true(cand_wait(&b, 3000) > 0);
	pthread_join(b.th, NULL);
	assert_int_equal(b.rc, 0);
	assert_string_equal(leader_value(fx->k, "sched"), "b");
	kc_leader_release(b.l);
	assert_string_equal(leader_value(fx->k, "sched"), "");
	assert_int_equal(key_count(fx->k, "sched"), 0);
}

static void test_revoked_session_is_lost_and_hands_over(void **state)
{
	fx_t *fx = *state;
	cand_t a = { 0 }, b = { 0 };
	keel_range_result_t *r = NULL;
	keel_lease_id_req_t rv = { 0 };
	keel_error_t err;
	int64_t until;

	cand_start(&a, fx->k, "ctl", "a", 2);
	assert_true(cand_wait(&a, 5000) > 0);
	pthread_join(a.th, NULL);
	assert_int_equal(a.rc, 0);
	cand_start(&b, fx->k, "ctl", "b", 2);
	assert_int_equal(cand_wait(&b, 300), 0);

	/* The store drops a's lease (as when its keep-alives stop getting through). */
	assert_int_equal(keel_election_leader(fx->k, PREFIX "ctl", &r, &err), 0);
	rv.id = r->kvs[0].lease;
	keel_range_result_free(r);
	assert_int_equal(keel_lease_revoke(fx->k, &rv, NULL, &err), 0);

	assert_true(cand_wait(&b, 3000) > 0);
	pthread_join(b.th, NULL);
	assert_int_equal(b.rc, 0);
	assert_string_equal(leader_value(fx->k, "ctl"), "b");
	until = kc_mono_ms() + 5000;
	while (!kc_leader_lost(a.l) && kc_mono_ms() < until)
		fx_sleep_ms(20);
	assert_true(kc_leader_lost(a.l));
	assert_false(kc_leader_lost(b.l));
	kc_leader_release(a.l);
	/* a's release must not touch b's leadership. */
	assert_string_equal(leader_value(fx->k, "ctl"), "b");
	kc_leader_release(b.l);
}

static void test_stop_flag_cancels_a_waiting_candidate(void **state)
{
	fx_t *fx = *state;
	cand_t a = { 0 }, b = { 0 }, c = { 0 };
	int64_t t0;

	cand_start(&a, fx->k, "x", "a", 5);
	assert_true(cand_wait(&a, 5000) > 0);
	pthread_join(a.th, NULL);
	assert_int_equal(a.rc, 0);

	cand_start(&b, fx->k, "x", "b", 5);
	assert_int_equal(cand_wait(&b, 300), 0);
	assert_int_equal(key_count(fx->k, "x"), 2);
	t0 = kc_mono_ms();
	b.stop = 1;
	assert_true(cand_wait(&b, 3000) > 0);
	pthread_join(b.th, NULL);
	assert_int_equal(b.rc, KEEL_CODE_CANCELLED);
	assert_null(b.l);
	print_message("stop noticed after %lld ms\n", (long long)(cand_done(&b) - t0));
	assert_true(cand_done(&b) - t0 <= 500);
	/* The candidate's key went with its session; the leader is untouched. */
	assert_int_equal(key_count(fx->k, "x"), 1);
	assert_string_equal(leader_value(fx->k, "x"), "a");
	assert_false(kc_leader_lost(a.l));

	/* Already stopped: no campaign at all. */
	c.stop = 1;
	cand_start(&c, fx->k, "x", "c", 5);
	assert_true(cand_wait(&c, 1000) > 0);
	pthread_join(c.th, NULL);
	assert_int_equal(c.rc, KEEL_CODE_CANCELLED);
	assert_int_equal(key_count(fx->k, "x"), 1);
	kc_leader_release(a.l);
}

/* ---- a leader process killed -------------------------------------------------------------- */

static const char *self_path;

/* The child: campaigns over the network, says "leading" on stdout, then waits to be killed. */
static int child_main(const char *endpoint, const char *ttl)
{
	kc_leader_t *l = NULL;
	keel_error_t err;
	keel_t *k = NULL;

	keel_init();
	if (kc_connect(endpoint, &k, &err) != 0 ||
	    kc_leader_acquire(k, "killed", "child", atoi(ttl), NULL, &l, &err) != 0) {
		fprintf(stderr, "child: %s\n", err.message);
		return 1;
	}
	printf("leading\n");
	fflush(stdout);
	for (;;)
		pause();
}

static void test_killed_leader_hands_over_within_its_ttl(void **state)
{
	const int ttl = 2;
	char dir[256], url[64], hostport[32], ttl_s[8], line[32] = "";
	const char *flags[] = {"--heartbeat-interval", "10", "--election-timeout", "100",
			       "--listen-client-urls", url, "--advertise-client-urls", url};
	keel_open_options_t opt;
	cand_t b = { 0 };
	keel_error_t err;
	keel_t *k = NULL;
	int port = fx_free_port(), pfd[2], status;
	int64_t killed, took;
	FILE *from_child;
	pid_t pid;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
	snprintf(ttl_s, sizeof(ttl_s), "%d", ttl);
	test_tmpdir(dir, sizeof(dir), "cluster-leader");
	keel_open_options_init(&opt);
	opt.flags = flags;
	opt.n_flags = sizeof(flags) / sizeof(flags[0]);
	if (keel_open(dir, &opt, &k, &err) != 0)
		fail_msg("keel_open: %s", err.message);

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(self_path, self_path, "--child", hostport, ttl_s, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	from_child = fdopen(pfd[0], "r");
	if (!fgets(line, sizeof(line), from_child) || strcmp(line, "leading\n") != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("the child did not lead");
	}
	assert_string_equal(leader_value(k, "killed"), "child");

	cand_start(&b, k, "killed", "parent", ttl);
	assert_int_equal(cand_wait(&b, 500), 0);
	killed = kc_mono_ms();
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fclose(from_child);
	assert_true(cand_wait(&b, (ttl + 5) * 1000) > 0);
	pthread_join(b.th, NULL);
	assert_int_equal(b.rc, 0);
	took = cand_done(&b) - killed;
	print_message("handover %lld ms after the kill (ttl %d s)\n", (long long)took, ttl);
	assert_true(took <= ttl * 1000 + 1000);
	assert_string_equal(leader_value(k, "killed"), "parent");
	kc_leader_release(b.l);
	keel_close(k);
	assert_int_equal(test_rmtree(dir), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
		T(test_of_two_candidates_exactly_one_leads_until_release),
		T(test_revoked_session_is_lost_and_hands_over),
		T(test_stop_flag_cancels_a_waiting_candidate),
		cmocka_unit_test(test_killed_leader_hands_over_within_its_ttl),
#undef T
	};

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2], argv[3]);
	self_path = argv[0];
	keel_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
