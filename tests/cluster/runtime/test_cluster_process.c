/* tests/cluster/runtime/test_cluster_process.c — process setup: SIGINT and SIGTERM set the stop
 * flag instead of killing, SIGPIPE is ignored, and the default identity is <hostname>_<pid>. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

static void test_signals_set_the_flag_and_sigpipe_is_ignored(void **state)
{
	volatile sig_atomic_t *stop;

	(void)state;
	stop = kc_signals_install();
	assert_non_null(stop);
	assert_int_equal(*stop, 0);
	raise(SIGPIPE);              /* would end the test run were it not ignored */
	assert_int_equal(*stop, 0);
	raise(SIGTERM);
	assert_int_equal(*stop, 1);
	*stop = 0;
	raise(SIGINT);
	assert_int_equal(*stop, 1);
	/* Installing again hands out the same flag. */
	assert_ptr_equal(kc_signals_install(), stop);
	*stop = 0;
}

static void test_identity_is_hostname_and_pid(void **state)
{
	char host[256], want[300], got[300], small[8];

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "%s_%ld", host, (long)getpid());
	kc_identity(got, sizeof(got));
	assert_string_equal(got, want);
	kc_identity(small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, want, sizeof(small) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signals_set_the_flag_and_sigpipe_is_ignored),
		cmocka_unit_test(test_identity_is_hostname_and_pid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
