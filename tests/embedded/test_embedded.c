/* tests/embedded/test_embedded.c — keel_open: the whole client API on a member running in
 * this process, its data surviving a close, two stores at once, refusals of bad
 * directories and flags, and no TCP listener unless flags ask for one. Every store lives
 * in a fresh temporary directory that the test removes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keel/keel.h"
#include "tmpdir.h"

/* Elections in tens of milliseconds, so each open takes little time. */
static const char *const fast_flags[] = {"--heartbeat-interval", "10",
					 "--election-timeout", "100"};
#define N_FAST (sizeof(fast_flags) / sizeof(fast_flags[0]))

typedef struct fx {
	char dir[256];
	keel_t *k;
} fx_t;

static keel_t *open_fast(const char *dir)
{
	keel_open_options_t opt;
	keel_error_t err;
	keel_t *k = NULL;
	keel_open_options_init(&opt);
	opt.flags = fast_flags;
	opt.n_flags = N_FAST;
	int rc = keel_open(dir, &opt, &k, &err);
	if (rc != 0)
		fail_msg("keel_open %s: %s", dir, err.message);
	assert_non_null(k);
	return k;
}

static int fx_setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	test_tmpdir(fx->dir, sizeof(fx->dir), "embedded");
	fx->k = open_fast(fx->dir);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	fx_t *fx = *state;
	keel_close(fx->k);
	assert_int_equal(test_rmtree(fx->dir), 0);
	free(fx);
	return 0;
}

static void put(keel_t *k, const char *key, const char *value)
{
	keel_error_t err;
	if (keel_put_str(k, key, value, 0, &err) != 0)
		fail_msg("put %s: %s", key, err.message);
}

/* The value of key, or NULL when absent (the caller frees). */
static char *get(keel_t *k, const char *key)
{
	keel_range_result_t *r;
	keel_error_t err;
	if (keel_get(k, key, &r, &err) != 0)
		fail_msg("get %s: %s", key, err.message);
	char *v = NULL;
	if (r->n_kvs == 1)
		v = strndup((const char *)r->kvs[0].value, r->kvs[0].value_len);
	keel_range_result_free(r);
	return v;
}

static void assert_value(keel_t *k, const char *key, const char *want)
{
	char *v = get(k, key);
	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

/* ---- TCP listeners of this process, from /proc ---- */

static bool inode_listed(const unsigned long *inodes, size_t n, unsigned long ino)
{
	for (size_t i = 0; i < n; i++)
		if (inodes[i] == ino)
			return true;
	return false;
}

/* Inodes of the namespace's listening TCP sockets (state 0A) from one /proc table. */
static size_t listen_inodes(const char *table, unsigned long *out, size_t cap, size_t n)
{
	FILE *f = fopen(table, "r");
	char line[512];
	if (!f)
		return n;
	while (fgets(line, sizeof(line), f)) {
		unsigned st;
		unsigned long ino;
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &ino) == 2 &&
		    st == 0x0A && n < cap)
			out[n++] = ino;
	}
	fclose(f);
	return n;
}

/* How many of this process's descriptors are listening TCP sockets. */
static int own_tcp_listeners(void)
{
	unsigned long inodes[4096];
	size_t n = listen_inodes("/proc/self/net/tcp", inodes, 4096, 0);
	n = listen_inodes("/proc/self/net/tcp6", inodes, 4096, n);
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[300], target[128];
		unsigned long ino;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &ino) == 1 && inode_listed(inodes, n, ino))
			found++;
	}
	closedir(d);
	return found;
}

/* A port nobody listens on now (bound, read back, released). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- tests ---- */

static void test_listener_probe_sees_a_listening_socket(void **state)
{
	(void)state;
	int before = own_tcp_listeners();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(own_tcp_listeners(), before + 1);
	close(fd);
	assert_int_equal(own_tcp_listeners(), before);
}

static void test_default_open_listens_on_no_tcp_port(void **state)
{
	char dir[256];
	keel_t *k;
	keel_error_t err;
	(void)state;
	assert_int_equal(own_tcp_listeners(), 0);
	test_tmpdir(dir, sizeof(dir), "embedded");
	assert_int_equal(keel_open(dir, NULL, &k, &err), 0);
	put(k, "k", "v");
	assert_value(k, "k", "v");
	assert_int_equal(own_tcp_listeners(), 0);
	keel_close(k);
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_put_get_range_and_delete(void **state)
{
	fx_t *fx = *state;
	keel_error_t err;
	put(fx->k, "fruit/apple", "red");
	put(fx->k, "fruit/banana", "yellow");
	put(fx->k, "fruit/cherry", "dark");
	put(fx->k, "veg/leek", "green");
	assert_value(fx->k, "fruit/banana", "yellow");

	uint8_t end[16];
	keel_range_req_t rq = {.key = "fruit/", .key_len = 6};
	rq.range_end = end;
	rq.range_end_len = keel_prefix_end("fruit/", 6, end);
	keel_range_result_t *r;
	assert_int_equal(keel_range(fx->k, &rq, &r, &err), 0);
	assert_int_equal(r->n_kvs, 3);
	assert_int_equal(r->count, 3);
	assert_memory_equal(r->kvs[0].key, "fruit/apple", 11);
	assert_memory_equal(r->kvs[2].key, "fruit/cherry", 12);
	assert_int_equal(r->kvs[0].create_revision + 2, r->kvs[2].create_revision);
	int64_t rev = r->header.revision;
	keel_range_result_free(r);

	keel_delete_req_t dq = {.key = "fruit/", .key_len = 6, .range_end = end,
				.range_end_len = rq.range_end_len, .prev_kv = true};
	keel_delete_result_t *d;
	assert_int_equal(keel_delete(fx->k, &dq, &d, &err), 0);
	assert_int_equal(d->deleted, 3);
	assert_int_equal(d->n_prev_kvs, 3);
	assert_int_equal(d->header.revision, rev + 1);
	keel_delete_result_free(d);
	assert_value(fx->k, "fruit/apple", NULL);
	assert_value(fx->k, "veg/leek", "green");
}

static void test_txn_takes_the_branch_its_compare_chooses(void **state)
{
	fx_t *fx = *state;
	keel_error_t err;
	put(fx->k, "cfg", "v1");
	for (int round = 0; round < 2; round++) {
		keel_txn_t *t = keel_txn_new();
		keel_txn_cmp_value(t, KEEL_CMP_EQUAL, "cfg", 3, NULL, 0, "v1", 2);
		keel_put_req_t p = {.key = "cfg", .key_len = 3, .value = "v2", .value_len = 2};
		keel_txn_put(t, KEEL_THEN, &p);
		keel_range_req_t g = {.key = "cfg", .key_len = 3};
		keel_txn_range(t, KEEL_ELSE, &g);
		keel_txn_result_t *r;
		assert_int_equal(keel_txn_commit(fx->k, t, &r, &err), 0);
		/* the first round sees v1 and writes v2; the second sees v2 and reads it */
		assert_int_equal(r->succeeded, round == 0);
		assert_int_equal(r->n_responses, 1);
		assert_int_equal(r->responses[0].type, round == 0 ? KEEL_OP_PUT : KEEL_OP_RANGE);
		if (round == 1) {
			assert_int_equal(r->responses[0].u.range->n_kvs, 1);
			assert_memory_equal(r->responses[0].u.range->kvs[0].value, "v2", 2);
		}
		keel_txn_result_free(r);
		keel_txn_free(t);
	}
}

static void test_lease_grant_ttl_and_revoke_deletes_its_keys(void **state)
{
	fx_t *fx = *state;
	keel_error_t err;
	keel_lease_grant_req_t g = {.ttl = 30};
	keel_lease_grant_result_t lease;
	assert_int_equal(keel_lease_grant(fx->k, &g, &lease, &err), 0);
	assert_true(lease.id != 0);
	assert_int_equal(lease.ttl, 30);
	assert_int_equal(keel_put_str(fx->k, "held", "x", lease.id, &err), 0);

	keel_lease_id_req_t q = {.id = lease.id, .keys = true};
	keel_lease_ttl_result_t *ttl;
	assert_int_equal(keel_lease_ttl(fx->k, &q, &ttl, &err), 0);
	assert_int_equal(ttl->granted_ttl, 30);
	assert_true(ttl->ttl > 0 && ttl->ttl <= 30);
	assert_int_equal(ttl->n_keys, 1);
	assert_memory_equal(ttl->keys[0].key, "held", 4);
	keel_lease_ttl_result_free(ttl);

	keel_header_t h;
	assert_int_equal(keel_lease_revoke(fx->k, &q, &h, &err), 0);
	assert_value(fx->k, "held", NULL);
	assert_int_equal(keel_lease_ttl(fx->k, &q, &ttl, &err), 0);
	assert_int_equal(ttl->ttl, -1);
	keel_lease_ttl_result_free(ttl);
}

typedef struct events {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int n;
	keel_event_type_t type[8];
	char key[8][32];
	char value[8][32];
} events_t;

static void on_watch(void *ud, const keel_watch_resp_t *resp)
{
	events_t *ev = ud;
	pthread_mutex_lock(&ev->mu);
	for (size_t i = 0; i < resp->n_events && ev->n < 8; i++) {
		const keel_event_t *e = &resp->events[i];
		ev->type[ev->n] = e->type;
		snprintf(ev->key[ev->n], 32, "%.*s", (int)e->kv.key_len, (const char *)e->kv.key);
		snprintf(ev->value[ev->n], 32, "%.*s", (int)e->kv.value_len,
			 (const char *)e->kv.value);
		ev->n++;
	}
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->mu);
}

static void wait_events(events_t *ev, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&ev->mu);
	while (ev->n < n && pthread_cond_timedwait(&ev->cond, &ev->mu, &until) == 0)
		;
	int got = ev->n;
	pthread_mutex_unlock(&ev->mu);
	assert_int_equal(got, n);
}

static void test_watch_delivers_puts_and_deletes_in_order(void **state)
{
	fx_t *fx = *state;
	keel_error_t err;
	events_t ev = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	uint8_t end[8];
	keel_watch_req_t wq = {.key = "w/", .key_len = 2, .range_end = end};
	wq.range_end_len = keel_prefix_end("w/", 2, end);
	keel_watch_t *w;
	assert_int_equal(keel_watch(fx->k, &wq, on_watch, &ev, &w, &err), 0);
	put(fx->k, "w/a", "1");
	put(fx->k, "other", "not watched");
	put(fx->k, "w/a", "2");
	keel_delete_req_t dq = {.key = "w/a", .key_len = 3};
	keel_delete_result_t *d;
	assert_int_equal(keel_delete(fx->k, &dq, &d, &err), 0);
	keel_delete_result_free(d);
	wait_events(&ev, 3);
	keel_watch_cancel(w);
	assert_int_equal(ev.type[0], KEEL_EVENT_PUT);
	assert_string_equal(ev.value[0], "1");
	assert_int_equal(ev.type[1], KEEL_EVENT_PUT);
	assert_string_equal(ev.value[1], "2");
	assert_int_equal(ev.type[2], KEEL_EVENT_DELETE);
	assert_string_equal(ev.key[2], "w/a");
}

static void test_reopen_finds_the_data_and_revision_continues(void **state)
{
	fx_t *fx = *state;
	keel_error_t err;
	put(fx->k, "durable", "yes");
	keel_range_result_t *r;
	assert_int_equal(keel_get(fx->k, "durable", &r, &err), 0);
	int64_t rev = r->header.revision;
	keel_range_result_free(r);
	for (int i = 0; i < 2; i++) {
		keel_close(fx->k);
		fx->k = open_fast(fx->dir);
		assert_value(fx->k, "durable", "yes");
	}
	put(fx->k, "after", "reopen");
	assert_int_equal(keel_get(fx->k, "after", &r, &err), 0);
	assert_int_equal(r->header.revision, rev + 1);
	keel_range_result_free(r);
}

static void test_two_stores_at_once_keep_their_own_data(void **state)
{
	fx_t *fx = *state;
	char dir2[256];
	test_tmpdir(dir2, sizeof(dir2), "embedded");
	keel_t *k2 = open_fast(dir2);
	put(fx->k, "where", "first");
	put(k2, "where", "second");
	put(k2, "only", "second");
	assert_value(fx->k, "where", "first");
	assert_value(k2, "where", "second");
	assert_value(fx->k, "only", NULL);
	keel_close(k2);
	/* closing one leaves the other serving */
	assert_value(fx->k, "where", "first");
	assert_int_equal(test_rmtree(dir2), 0);
}

static void test_same_dir_opened_twice_is_refused(void **state)
{
	fx_t *fx = *state;
	keel_t *k2 = NULL;
	keel_error_t err;
	assert_int_not_equal(keel_open(fx->dir, NULL, &k2, &err), 0);
	assert_null(k2);
	assert_int_equal(err.code, KEEL_CODE_LOCAL);
	assert_non_null(strstr(err.message, "locked"));
	/* the first store is untouched */
	put(fx->k, "still", "here");
	assert_value(fx->k, "still", "here");
}

static void test_dir_that_is_a_file_is_refused_with_its_name(void **state)
{
	char dir[256], file[300];
	keel_t *k = NULL;
	keel_error_t err;
	(void)state;
	test_tmpdir(dir, sizeof(dir), "embedded");
	snprintf(file, sizeof(file), "%s/plain-file", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_not_equal(keel_open(file, NULL, &k, &err), 0);
	assert_null(k);
	assert_int_equal(err.code, KEEL_CODE_LOCAL);
	assert_non_null(strstr(err.message, file));
	assert_non_null(strstr(err.message, "Not a directory"));
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_unwritable_dir_is_refused_with_a_reason(void **state)
{
	char dir[256], sub[300];
	keel_t *k = NULL;
	keel_error_t err;
	(void)state;
	test_tmpdir(dir, sizeof(dir), "embedded");
	snprintf(sub, sizeof(sub), "%s/store", dir);
	assert_int_equal(chmod(dir, 0500), 0);
	/* root writes anywhere: a directory under /proc stands in for an unwritable one */
	const char *target = geteuid() == 0 ? "/proc/keel-embedded-test" : sub;
	assert_int_not_equal(keel_open(target, NULL, &k, &err), 0);
	assert_null(k);
	assert_int_equal(err.code, KEEL_CODE_LOCAL);
	assert_non_null(strstr(err.message, target));
	assert_non_null(strstr(err.message, "cannot create directory"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_bad_flags_are_refused_by_name(void **state)
{
	char dir[256];
	keel_open_options_t opt;
	keel_t *k = NULL;
	keel_error_t err;
	(void)state;
	test_tmpdir(dir, sizeof(dir), "embedded");
	keel_open_options_init(&opt);
	static const char *const data_dir[] = {"--data-dir", "/elsewhere"};
	opt.flags = data_dir;
	opt.n_flags = 2;
	assert_int_not_equal(keel_open(dir, &opt, &k, &err), 0);
	assert_non_null(strstr(err.message, "--data-dir"));
	/* a cluster needs a peer listener */
	static const char *const lonely[] = {
		"--name", "a", "--initial-advertise-peer-urls", "http://127.0.0.1:1",
		"--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:2"};
	opt.flags = lonely;
	opt.n_flags = 6;
	assert_int_not_equal(keel_open(dir, &opt, &k, &err), 0);
	assert_non_null(strstr(err.message, "--listen-peer-urls"));
	static const char *const unknown[] = {"--no-such-flag"};
	opt.flags = unknown;
	opt.n_flags = 1;
	assert_int_not_equal(keel_open(dir, &opt, &k, &err), 0);
	assert_non_null(strstr(err.message, "no-such-flag"));
	assert_null(k);
	assert_int_equal(own_tcp_listeners(), 0);
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_flags_can_add_a_client_listener(void **state)
{
	char dir[256], url[64], ep[64];
	keel_open_options_t opt;
	keel_t *k, *remote;
	keel_error_t err;
	(void)state;
	test_tmpdir(dir, sizeof(dir), "embedded");
	int port = free_port();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
	const char *flags[] = {"--listen-client-urls", url, "--advertise-client-urls", url,
			       "--heartbeat-interval", "10", "--election-timeout", "100"};
	keel_open_options_init(&opt);
	opt.flags = flags;
	opt.n_flags = 8;
	if (keel_open(dir, &opt, &k, &err) != 0)
		fail_msg("keel_open: %s", err.message);
	assert_int_equal(own_tcp_listeners(), 1);
	put(k, "shared", "over tcp too");

	keel_options_t co;
	const char *eps[] = {ep};
	keel_options_init(&co);
	co.endpoints = eps;
	co.n_endpoints = 1;
	assert_int_equal(keel_connect(&co, &remote, &err), 0);
	assert_value(remote, "shared", "over tcp too");
	keel_close(remote);
	keel_close(k);
	assert_int_equal(own_tcp_listeners(), 0);
	assert_int_equal(test_rmtree(dir), 0);
}

static void test_two_embedded_members_form_one_cluster(void **state)
{
	char dir[2][256], peer[2][64], cluster[200];
	keel_t *k[2];
	keel_error_t err;
	(void)state;
	for (int i = 0; i < 2; i++) {
		test_tmpdir(dir[i], sizeof(dir[i]), "embedded");
		snprintf(peer[i], sizeof(peer[i]), "http://127.0.0.1:%d", free_port());
	}
	snprintf(cluster, sizeof(cluster), "a=%s,b=%s", peer[0], peer[1]);
	for (int i = 0; i < 2; i++) {
		const char *flags[] = {"--name", i ? "b" : "a", "--initial-advertise-peer-urls",
				       peer[i], "--listen-peer-urls", peer[i], "--initial-cluster",
				       cluster, "--heartbeat-interval", "10", "--election-timeout",
				       "100"};
		keel_open_options_t opt;
		keel_open_options_init(&opt);
		opt.flags = flags;
		opt.n_flags = sizeof(flags) / sizeof(flags[0]);
		if (keel_open(dir[i], &opt, &k[i], &err) != 0)
			fail_msg("keel_open %s: %s", dir[i], err.message);
	}
	/* a write through one member is read through the other (linearizable read) */
	put(k[0], "replicated", "through a");
	assert_value(k[1], "replicated", "through a");
	put(k[1], "replicated", "through b");
	assert_value(k[0], "replicated", "through b");
	keel_member_req_t q = {0};
	keel_member_result_t *r;
	assert_int_equal(keel_member_list(k[1], &q, &r, &err), 0);
	assert_int_equal(r->n_members, 2);
	keel_member_result_free(r);
	/* the peer listeners are the only TCP ports */
	assert_int_equal(own_tcp_listeners(), 2);
	for (int i = 0; i < 2; i++) {
		keel_close(k[i]);
		assert_int_equal(test_rmtree(dir[i]), 0);
	}
	assert_int_equal(own_tcp_listeners(), 0);
}

static void test_member_list_shows_one_member_without_client_urls(void **state)
{
	fx_t *fx = *state;
	keel_member_req_t q = {0};
	keel_member_result_t *r;
	keel_error_t err;
	assert_int_equal(keel_member_list(fx->k, &q, &r, &err), 0);
	assert_int_equal(r->n_members, 1);
	assert_string_equal(r->members[0].name, "default");
	assert_int_equal(r->members[0].n_client_urls, 0);
	assert_int_equal(r->members[0].id, r->header.member_id);
	keel_member_result_free(r);
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listener_probe_sees_a_listening_socket),
		cmocka_unit_test(test_default_open_listens_on_no_tcp_port),
		FX_TEST(test_put_get_range_and_delete),
		FX_TEST(test_txn_takes_the_branch_its_compare_chooses),
		FX_TEST(test_lease_grant_ttl_and_revoke_deletes_its_keys),
		FX_TEST(test_watch_delivers_puts_and_deletes_in_order),
		FX_TEST(test_reopen_finds_the_data_and_revision_continues),
		FX_TEST(test_two_stores_at_once_keep_their_own_data),
		FX_TEST(test_same_dir_opened_twice_is_refused),
		cmocka_unit_test(test_dir_that_is_a_file_is_refused_with_its_name),
		cmocka_unit_test(test_unwritable_dir_is_refused_with_a_reason),
		cmocka_unit_test(test_bad_flags_are_refused_by_name),
		cmocka_unit_test(test_flags_can_add_a_client_listener),
		cmocka_unit_test(test_two_embedded_members_form_one_cluster),
		FX_TEST(test_member_list_shows_one_member_without_client_urls),
	};
	keel_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
