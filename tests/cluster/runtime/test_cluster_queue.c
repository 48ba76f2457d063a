/* tests/cluster/runtime/test_cluster_queue.c — the work queue: waiting keys are not doubled,
 * a key being processed comes back only after done and is never handed to two workers,
 * delays (the earliest wins), per-key exponential backoff with its cap and forget, timeouts,
 * and shutdown waking every getter. */
#include <pthread.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

static void expect_key(kc_queue_t *q, int timeout_ms, const char *want)
{
	char *k = kc_queue_get(q, timeout_ms);

	if (!k)
		fail_msg("no key within %d ms, want %s", timeout_ms, want);
	assert_string_equal(k, want);
	kc_queue_done(q, k);
}

static void test_waiting_key_is_not_added_twice(void **state)
{
	kc_queue_t *q = kc_queue_new();

	(void)state;
	kc_queue_add(q, "a");
	kc_queue_add(q, "b");
	kc_queue_add(q, "a");
	assert_int_equal(kc_queue_len(q), 2);
	expect_key(q, 0, "a");
	expect_key(q, 0, "b");
	assert_null(kc_queue_get(q, 0));
	kc_queue_free(q);
}

static void test_key_added_while_processing_comes_back_after_done(void **state)
{
	kc_queue_t *q = kc_queue_new();
	char *k;

	(void)state;
	kc_queue_add(q, "a");
	k = kc_queue_get(q, 0);
	assert_string_equal(k, "a");
	kc_queue_add(q, "a");
	kc_queue_add(q, "a");
	assert_int_equal(kc_queue_len(q), 0);
	assert_null(kc_queue_get(q, 30));
	kc_queue_done(q, k);
	assert_int_equal(kc_queue_len(q), 1);
	expect_key(q, 0, "a");
	assert_null(kc_queue_get(q, 0));
	kc_queue_free(q);
}

static void test_get_times_out(void **state)
{
	kc_queue_t *q = kc_queue_new();
	int64_t t0 = kc_mono_ms();

	(void)state;
	assert_null(kc_queue_get(q, 60));
	assert_true(kc_mono_ms() - t0 >= 60);
	kc_queue_free(q);
}

static void test_add_after_waits_and_earliest_time_wins(void **state)
{
	kc_queue_t *q = kc_queue_new();
	int64_t t0 = kc_mono_ms(), dt;

	(void)state;
	kc_queue_add_after(q, "a", 100);
	assert_int_equal(kc_queue_len(q), 0);
	assert_null(kc_queue_get(q, 0));
	expect_key(q, 2000, "a");
	dt = kc_mono_ms() - t0;
	assert_true(dt >= 100);

	t0 = kc_mono_ms();
	kc_queue_add_after(q, "b", 5000);
	kc_queue_add_after(q, "b", 50);
	expect_key(q, 2000, "b");
	assert_true(kc_mono_ms() - t0 < 2000);
	/* The later entry does not bring it back. */
	kc_queue_add_after(q, "c", 80);
	kc_queue_add_after(q, "c", 300);
	expect_key(q, 2000, "c");
	assert_null(kc_queue_get(q, 400));
	kc_queue_free(q);
}

/* How long a rate-limited add of key takes to come out. */
static int64_t backoff_once(kc_queue_t *q, const char *key, int max_ms)
{
	int64_t t0 = kc_mono_ms();

	kc_queue_add_rate_limited(q, key, max_ms);
	expect_key(q, 10000, key);
	return kc_mono_ms() - t0;
}

static void test_backoff_doubles_per_failure_up_to_max(void **state)
{
	kc_queue_t *q = kc_queue_new();
	int64_t want = 5;

	(void)state;
	for (int i = 0; i < 5; i++, want *= 2) {
		int64_t dt = backoff_once(q, "a", 100000);

		if (dt < want)
			fail_msg("failure %d: back after %lld ms, want >= %lld", i, (long long)dt,
				 (long long)want);
	}
	/* Uncapped, the next would be 160, 320, 640 ms. */
	for (int i = 0; i < 3; i++) {
		int64_t dt = backoff_once(q, "b", 30);

		(void)dt;
	}
	for (int i = 0; i < 3; i++) {
		int64_t dt = backoff_once(q, "b", 30);

		assert_true(dt >= 30);
		assert_true(dt < 300);
	}
	kc_queue_free(q);
}

static void test_forget_resets_the_backoff(void **state)
{
	kc_queue_t *q = kc_queue_new();
	int64_t dt;

	(void)state;
	/* Ten failures in a row: the next would wait 5 s. */
	for (int i = 0; i < 10; i++)
		kc_queue_add_rate_limited(q, "a", 60000);
	expect_key(q, 2000, "a");
	kc_queue_forget(q, "a");
	dt = backoff_once(q, "a", 60000);
	assert_true(dt < 1000);
	/* Other keys have counts of their own. */
	for (int i = 0; i < 10; i++)
		kc_queue_add_rate_limited(q, "x", 60000);
	expect_key(q, 2000, "x");
	dt = backoff_once(q, "y", 60000);
	assert_true(dt < 1000);
	kc_queue_free(q);
}

typedef struct getter {
	kc_queue_t *q;
	char *got;
	bool returned;
} getter_t;

static void *getter_main(void *arg)
{
	getter_t *g = arg;

	g->got = kc_queue_get(g->q, -1);
	__atomic_store_n(&g->returned, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_shutdown_wakes_every_getter_and_drops_adds(void **state)
{
	kc_queue_t *q = kc_queue_new();
	getter_t g[3] = { { q, NULL, false }, { q, NULL, false }, { q, NULL, false } };
	pthread_t th[3];
	struct timespec ts = { 0, 50 * 1000000 };

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, getter_main, &g[i]), 0);
	nanosleep(&ts, NULL);
	for (int i = 0; i < 3; i++)
		assert_false(__atomic_load_n(&g[i].returned, __ATOMIC_SEQ_CST));
	kc_queue_shutdown(q);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_null(g[i].got);
	}
	kc_queue_add(q, "a");
	kc_queue_add_after(q, "b", 1);
	assert_null(kc_queue_get(q, -1));
	assert_int_equal(kc_queue_len(q), 0);
	kc_queue_free(q);
}

/* ---- many workers ------------------------------------------------------------------------ */

#define KEYS 50
#define ROUNDS 20

typedef struct pool {
	kc_queue_t *q;
	pthread_mutex_t mu;
	int busy[KEYS];              /* workers inside a key now */
	int handled;
	bool overlap;
} pool_t;

static void *worker_main(void *arg)
{
	pool_t *p = arg;
	char *k;

	while ((k = kc_queue_get(p->q, -1))) {
		int i = atoi(k);

		pthread_mutex_lock(&p->mu);
		if (p->busy[i]++ > 0)
			p->overlap = true;
		p->handled++;
		pthread_mutex_unlock(&p->mu);
		sched_yield();
		pthread_mutex_lock(&p->mu);
		p->busy[i]--;
		pthread_mutex_unlock(&p->mu);
		kc_queue_done(p->q, k);
	}
	return NULL;
}

static void test_a_key_is_never_handled_by_two_workers_at_once(void **state)
{
	pool_t p = { .q = kc_queue_new() };
	pthread_t th[4];

	(void)state;
	pthread_mutex_init(&p.mu, NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &p), 0);
	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < KEYS; i++) {
			char key[16];

			snprintf(key, sizeof(key), "%d", i);
			kc_queue_add(p.q, key);
		}
	while (kc_queue_len(p.q) > 0)
		sched_yield();
	struct timespec ts = { 0, 100 * 1000000 };
	nanosleep(&ts, NULL);
	kc_queue_shutdown(p.q);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_false(p.overlap);
	/* Deduplication: at least every key once, at most every add. */
	assert_true(p.handled >= KEYS);
	assert_true(p.handled <= KEYS * ROUNDS);
	print_message("%d adds handled as %d\n", KEYS * ROUNDS, p.handled);
	pthread_mutex_destroy(&p.mu);
	kc_queue_free(p.q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waiting_key_is_not_added_twice),
		cmocka_unit_test(test_key_added_while_processing_comes_back_after_done),
		cmocka_unit_test(test_get_times_out),
		cmocka_unit_test(test_add_after_waits_and_earliest_time_wins),
		cmocka_unit_test(test_backoff_doubles_per_failure_up_to_max),
		cmocka_unit_test(test_forget_resets_the_backoff),
		cmocka_unit_test(test_shutdown_wakes_every_getter_and_drops_adds),
		cmocka_unit_test(test_a_key_is_never_handled_by_two_workers_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
