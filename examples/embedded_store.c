/* examples/embedded_store.c — libkeel as an embedded store: opens a store in a directory
 * (argument 1, or a fresh temporary one), puts and gets a key, watches it with a callback,
 * and attaches a key to a lease. No server and no port: the member runs in this process.
 * Build: cc embedded_store.c $(pkg-config --cflags --libs keel) */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keel/keel.h>

/* What the watch callback saw; it runs on libkeel's callback thread. */
typedef struct seen {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int events;
} seen_t;

static void on_watch(void *ud, const keel_watch_resp_t *resp)
{
	seen_t *seen = ud;
	for (size_t i = 0; i < resp->n_events; i++) {
		const keel_event_t *ev = &resp->events[i];
		printf("watch: %s %.*s = %.*s (revision %lld)\n",
		       ev->type == KEEL_EVENT_PUT ? "PUT" : "DELETE", (int)ev->kv.key_len,
		       (const char *)ev->kv.key, (int)ev->kv.value_len,
		       (const char *)ev->kv.value, (long long)ev->kv.mod_revision);
	}
	pthread_mutex_lock(&seen->mu);
	seen->events += (int)resp->n_events;
	pthread_cond_broadcast(&seen->cond);
	pthread_mutex_unlock(&seen->mu);
}

/* Waits (at most 5 s) until the callback has seen n events. */
static int wait_events(seen_t *seen, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&seen->mu);
	int rc = 0;
	while (seen->events < n && rc == 0)
		rc = pthread_cond_timedwait(&seen->cond, &seen->mu, &until);
	int got = seen->events;
	pthread_mutex_unlock(&seen->mu);
	return got >= n ? 0 : -1;
}

static int fail(const char *what, const keel_error_t *err)
{
	fprintf(stderr, "embedded_store: %s: %s\n", what, err->message);
	return 1;
}

static int demo(keel_t *k)
{
	keel_error_t err;
	seen_t seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

	keel_watch_req_t wreq = {.key = "greeting", .key_len = 8};
	keel_watch_t *w;
	if (keel_watch(k, &wreq, on_watch, &seen, &w, &err) != 0)
		return fail("watch", &err);
	printf("watching greeting\n");

	printf("put greeting = hello, keel\n");
	if (keel_put_str(k, "greeting", "hello, keel", 0, &err) != 0)
		return fail("put", &err);

	keel_range_result_t *r;
	if (keel_get(k, "greeting", &r, &err) != 0)
		return fail("get", &err);
	if (r->n_kvs == 1)
		printf("get greeting -> %.*s (version %lld)\n", (int)r->kvs[0].value_len,
		       (const char *)r->kvs[0].value, (long long)r->kvs[0].version);
	keel_range_result_free(r);

	if (wait_events(&seen, 1) != 0) {
		fprintf(stderr, "embedded_store: the watch saw no event\n");
		return 1;
	}
	keel_watch_cancel(w);

	keel_lease_grant_req_t greq = {.ttl = 60};
	keel_lease_grant_result_t lease;
	if (keel_lease_grant(k, &greq, &lease, &err) != 0)
		return fail("lease grant", &err);
	printf("lease %llx granted for %lld s\n", (unsigned long long)lease.id,
	       (long long)lease.ttl);
	if (keel_put_str(k, "session", "alive", lease.id, &err) != 0)
		return fail("put with lease", &err);
	printf("put session = alive with lease %llx\n", (unsigned long long)lease.id);

	keel_lease_id_req_t lreq = {.id = lease.id, .keys = true};
	keel_lease_ttl_result_t *ttl;
	if (keel_lease_ttl(k, &lreq, &ttl, &err) != 0)
		return fail("lease ttl", &err);
	printf("lease %llx: ttl %lld s, %zu key(s) attached\n", (unsigned long long)lease.id,
	       (long long)ttl->ttl, ttl->n_keys);
	keel_lease_ttl_result_free(ttl);

	keel_header_t h;
	if (keel_lease_revoke(k, &lreq, &h, &err) != 0)
		return fail("lease revoke", &err);
	if (keel_get(k, "session", &r, &err) != 0)
		return fail("get", &err);
	printf("lease revoked: session %s\n", r->n_kvs == 0 ? "is gone" : "is still there");
	keel_range_result_free(r);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/keel-example-XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
	if (!dir) {
		perror("embedded_store: mkdtemp");
		return 1;
	}
	keel_init();
	printf("libkeel %s: opening a store in %s\n", keel_version(), dir);

	keel_t *k;
	keel_error_t err;
	if (keel_open(dir, NULL, &k, &err) != 0)
		return fail("open", &err);
	int rc = demo(k);
	keel_close(k);
	printf("closed\n");
	if (argc <= 1 && nftw(tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "embedded_store: could not remove %s\n", tmp);
	return rc;
}
