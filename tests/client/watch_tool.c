/* tests/client/watch_tool.c — watches a prefix through libkeel and prints what it sees, for
 * resume.py: "ready <rev>" once the watch is created, "ev <mod_revision> <key>" per event,
 * "canceled <compact_revision> <reason>" if the server ends the watch. Reads commands on
 * stdin: "who" prints "member <id>" (the member the handle talks to now); EOF or "quit"
 * cancels the watch, closes the handle and exits 0.
 * It also keeps a lease of LEASE_TTL seconds alive, with the key PREFIX + "lease" attached
 * (outside the watched range's events: the key is written before the watch starts), and
 * prints "lease-lost" if the keep-alive ever reports the lease gone.
 *   usage: watch_tool PREFIX ENDPOINT... */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/keel.h"

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&out_mu);
	vprintf(fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	va_end(ap);
}

#define LEASE_TTL 5

static void on_keepalive(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	(void)ud, (void)h, (void)id;
	if (ttl == 0)
		say("lease-lost\n");
}

static void on_watch(void *ud, const keel_watch_resp_t *r)
{
	(void)ud;
	if (r->created)
		say("ready %" PRId64 "\n", r->header.revision);
	for (size_t i = 0; i < r->n_events; i++)
		say("ev %" PRId64 " %s\n", r->events[i].kv.mod_revision,
		    (const char *)r->events[i].kv.key);
	if (r->canceled)
		say("canceled %" PRId64 " %s\n", r->compact_revision, r->cancel_reason);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: watch_tool PREFIX ENDPOINT...\n");
		return 2;
	}
	keel_init();
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = (const char *const *)&argv[2];
	o.n_endpoints = (size_t)(argc - 2);
	keel_t *k;
	keel_error_t e;
	if (keel_connect(&o, &k, &e) != 0) {
		fprintf(stderr, "watch_tool: %s\n", e.message);
		return 1;
	}
	const char *prefix = argv[1];
	size_t len = strlen(prefix);
	keel_lease_grant_result_t g;
	keel_keepalive_t *ka;
	char lease_key[256];
	snprintf(lease_key, sizeof lease_key, "%slease", prefix);
	if (keel_lease_grant(k, &(keel_lease_grant_req_t){ .ttl = LEASE_TTL }, &g, &e) != 0 ||
	    keel_put_str(k, lease_key, "alive", g.id, &e) != 0 ||
	    keel_lease_keepalive(k, g.id, on_keepalive, NULL, &ka, &e) != 0) {
		fprintf(stderr, "watch_tool: lease: %s\n", e.message);
		keel_close(k);
		return 1;
	}
	uint8_t *end = malloc(len + 1);
	keel_watch_req_t req = {
		.key = prefix, .key_len = len,
		.range_end = end, .range_end_len = keel_prefix_end(prefix, len, end),
	};
	keel_watch_t *w;
	int rc = keel_watch(k, &req, on_watch, NULL, &w, &e);
	free(end);
	if (rc != 0) {
		fprintf(stderr, "watch_tool: watch: %s\n", e.message);
		keel_keepalive_stop(ka);
		keel_close(k);
		return 1;
	}
	char line[128];
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "quit", 4) == 0)
			break;
		if (strncmp(line, "who", 3) == 0) {
			keel_status_result_t *st;
			if (keel_status(k, NULL, &st, &e) == 0) {
				say("member %" PRIu64 "\n", st->header.member_id);
				keel_status_result_free(st);
			} else {
				say("member 0 %s\n", e.message);
			}
		}
	}
	keel_watch_cancel(w);
	keel_keepalive_stop(ka);
	keel_close(k);
	return 0;
}
