/* tests/cluster/runtime/fixture.h — what the runtime tests share: an embedded store in a fresh
 * temporary directory (removed afterwards) and small helpers to build and read objects. */
#ifndef KEEL_TEST_CLUSTER_FIXTURE_H
#define KEEL_TEST_CLUSTER_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>
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
#include "tmpdir.h"

/* Elections in tens of milliseconds, so each open takes little time. */
static const char *const fx_flags[] = {"--heartbeat-interval", "10", "--election-timeout", "100"};

typedef struct fx {
	char dir[256];
	keel_t *k;
} fx_t;

/* A loopback port that was free a moment ago (for a member that listens). */
static inline int fx_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static inline keel_t *fx_open(const char *dir)
{
	keel_open_options_t opt;
	keel_error_t err;
	keel_t *k = NULL;

	keel_open_options_init(&opt);
	opt.flags = fx_flags;
	opt.n_flags = sizeof(fx_flags) / sizeof(fx_flags[0]);
	if (keel_open(dir, &opt, &k, &err) != 0)
		fail_msg("keel_open %s: %s", dir, err.message);
	return k;
}

static inline int fx_setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));

	test_tmpdir(fx->dir, sizeof(fx->dir), "cluster-runtime");
	fx->k = fx_open(fx->dir);
	*state = fx;
	return 0;
}

static inline int fx_teardown(void **state)
{
	fx_t *fx = *state;

	keel_close(fx->k);
	assert_int_equal(test_rmtree(fx->dir), 0);
	free(fx);
	return 0;
}

/* A valid pod (new reference); node may be NULL (unbound). */
static inline json_t *fx_pod(const char *name, const char *node)
{
	json_error_t je;
	json_t *pod = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
				 "\"metadata\":{\"namespace\":\"default\",\"labels\":{\"app\":\"web\"}},"
				 "\"spec\":{\"containers\":[{\"name\":\"main\",\"command\":[\"sleep\"],"
				 "\"args\":[\"3600\"]}]}}",
				 0, &je);

	if (!pod)
		fail_msg("fx_pod: %s", je.text);
	if (name)
		json_object_set_new(json_object_get(pod, "metadata"), "name", json_string(name));
	if (node)
		json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(node));
	return pod;
}

static inline void fx_create(keel_t *k, json_t *obj)
{
	keel_error_t err;

	if (kc_create(k, obj, &err) != 0)
		fail_msg("kc_create: %s", err.message);
}

static inline void fx_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

#endif
