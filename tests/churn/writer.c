/* tests/churn/writer.c — the load and the verdict of the membership-churn test: "write" puts
 * numbered keys from N threads until SIGTERM and logs each acknowledged one; "verify" checks
 * every logged key on each endpoint (serializable) and compares the endpoints' HashKV.
 * A key is logged only after its put returned success: never count a failed put as written.
 *   usage: churn_writer write --endpoints A,B,.. --log FILE [--threads N] [--deadline-ms MS]
 *                             [--prefix P]
 *          churn_writer verify --endpoints A,B,.. --log FILE [--prefix P] [--timeout-ms MS]
 * write prints "progress acked=N errors=M" every 100 ms and a "summary ..." line at the end;
 * verify prints one "endpoint ..." line per endpoint and "verdict ok|FAIL" (exit 0 or 1). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/keel.h"

#define VALUE_LEN 100
#define MAX_THREADS 64
#define MAX_ENDPOINTS 16
#define KEY_MAX 128
#define N_KINDS (KEEL_E_CLOSED + 1)
#define PAGE 2000

static const char *const kind_names[N_KINDS] = {
	[KEEL_E_NONE] = "none", [KEEL_E_OTHER] = "other", [KEEL_E_COMPACTED] = "compacted",
	[KEEL_E_FUTURE_REV] = "future_rev", [KEEL_E_LEASE_NOT_FOUND] = "lease_not_found",
	[KEEL_E_LEASE_EXISTS] = "lease_exists", [KEEL_E_NO_LEADER] = "no_leader",
	[KEEL_E_TIMEOUT] = "timeout", [KEEL_E_DEADLINE] = "deadline",
	[KEEL_E_NO_SPACE] = "no_space", [KEEL_E_TOO_MANY_OPS] = "too_many_ops",
	[KEEL_E_DUPLICATE_KEY] = "duplicate_key", [KEEL_E_REQUEST_TOO_LARGE] = "too_large",
	[KEEL_E_MEMBER_NOT_FOUND] = "member_not_found", [KEEL_E_UNAVAILABLE] = "unavailable",
	[KEEL_E_CLOSED] = "closed",
};

typedef struct args {
	const char *mode;
	const char *endpoints[MAX_ENDPOINTS];
	size_t n_endpoints;
	const char *log_path;
	const char *prefix;
	int threads;
	int deadline_ms;
	int timeout_ms;
} args_t;

typedef struct shared {
	const args_t *a;
	FILE *log;
	pthread_mutex_t log_lock;
	atomic_bool stop;
	atomic_long acked;
	atomic_long errors;
} shared_t;

typedef struct worker {
	shared_t *sh;
	int id;
	pthread_t thread;
	long errs[N_KINDS];
	char first_err[N_KINDS][600];
	int64_t max_latency_us;
	int failed_setup;
} worker_t;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The value is a function of the key alone, so a retried put that committed twice leaves
 * the same value, and the verifier needs nothing but the key. */
static void value_of(const char *key, char *buf)
{
	int n = snprintf(buf, VALUE_LEN + 1, "val-%s-", key);
	if (n < 0)
		n = 0;
	for (int i = n; i < VALUE_LEN; i++)
		buf[i] = (char)('a' + i % 26);
	buf[VALUE_LEN] = 0;
}

static int split_endpoints(char *list, args_t *a)
{
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (a->n_endpoints == MAX_ENDPOINTS) {
			fprintf(stderr, "churn_writer: more than %d endpoints\n", MAX_ENDPOINTS);
			return -1;
		}
		a->endpoints[a->n_endpoints++] = tok;
	}
	return a->n_endpoints ? 0 : -1;
}

static int parse_args(int argc, char **argv, args_t *a)
{
	*a = (args_t){.prefix = "churn/", .threads = 8, .deadline_ms = 2000,
		      .timeout_ms = 30000};
	if (argc < 2)
		return -1;
	a->mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			return -1;
		i++;
		if (strcmp(f, "--endpoints") == 0) {
			if (split_endpoints(v, a))
				return -1;
		} else if (strcmp(f, "--log") == 0) {
			a->log_path = v;
		} else if (strcmp(f, "--prefix") == 0) {
			a->prefix = v;
		} else if (strcmp(f, "--threads") == 0) {
			a->threads = atoi(v);
		} else if (strcmp(f, "--deadline-ms") == 0) {
			a->deadline_ms = atoi(v);
		} else if (strcmp(f, "--timeout-ms") == 0) {
			a->timeout_ms = atoi(v);
		} else {
			return -1;
		}
	}
	if (!a->log_path || !a->n_endpoints || a->threads < 1 || a->threads > MAX_THREADS ||
	    a->deadline_ms < 1 || strlen(a->prefix) > 64)
		return -1;
	return 0;
}

/* ---- write ------------------------------------------------------------------------- */

/* Each thread starts at a different endpoint, so the load reaches followers too. */
static int worker_connect(const worker_t *w, keel_t **k)
{
	const args_t *a = w->sh->a;
	const char *eps[MAX_ENDPOINTS];
	for (size_t i = 0; i < a->n_endpoints; i++)
		eps[i] = a->endpoints[(i + (size_t)w->id) % a->n_endpoints];
	keel_options_t opt;
	keel_options_init(&opt);
	opt.endpoints = eps;
	opt.n_endpoints = a->n_endpoints;
	opt.dial_timeout_ms = 1000;
	opt.call_timeout_ms = a->deadline_ms;
	opt.keepalive_time_ms = 1000;
	opt.keepalive_timeout_ms = 1000;
	keel_error_t err;
	if (keel_connect(&opt, k, &err) != 0) {
		fprintf(stderr, "churn_writer: connect: %s\n", err.message);
		return -1;
	}
	return 0;
}

static void worker_count_error(worker_t *w, const keel_error_t *err)
{
	unsigned kind = err->kind < N_KINDS ? (unsigned)err->kind : KEEL_E_OTHER;
	if (w->errs[kind]++ == 0)
		snprintf(w->first_err[kind], sizeof(w->first_err[kind]), "code %d: %s",
			 err->code, err->message);
	atomic_fetch_add(&w->sh->errors, 1);
}

static void worker_log_ack(worker_t *w, const char *key, int64_t latency_us)
{
	shared_t *sh = w->sh;
	pthread_mutex_lock(&sh->log_lock);
	fprintf(sh->log, "%s %" PRId64 "\n", key, latency_us);
	pthread_mutex_unlock(&sh->log_lock);
	atomic_fetch_add(&sh->acked, 1);
}

static void *worker_run(void *arg)
{
	worker_t *w = arg;
	shared_t *sh = w->sh;
	keel_t *k;
	if (worker_connect(w, &k) != 0) {
		w->failed_setup = 1;
		atomic_store(&sh->stop, true);
		return NULL;
	}
	char key[KEY_MAX], value[VALUE_LEN + 1];
	for (uint64_t seq = 0; !atomic_load(&sh->stop);) {
		snprintf(key, sizeof(key), "%st%02d/%08" PRIu64, sh->a->prefix, w->id, seq);
		value_of(key, value);
		keel_put_req_t req = {.timeout_ms = sh->a->deadline_ms, .key = key,
				      .key_len = strlen(key), .value = value,
				      .value_len = VALUE_LEN};
		keel_error_t err;
		keel_put_result_t *res = NULL;
		int64_t t0 = now_us();
		int rc = keel_put(k, &req, &res, &err);
		int64_t took = now_us() - t0;
		keel_put_result_free(res);
		if (rc != 0) {
			/* Same key again: it may have committed anyway, which is fine. */
			worker_count_error(w, &err);
			sleep_ms(20);
			continue;
		}
		if (took > w->max_latency_us)
			w->max_latency_us = took;
		worker_log_ack(w, key, took);
		seq++;
	}
	keel_close(k);
	return NULL;
}

/* SIGTERM and SIGINT are taken by sigtimedwait in the main thread only: the workers block
 * them, so a signal never interrupts a put half way. */
static void writer_wait_for_stop(shared_t *sh, const sigset_t *sigs, int64_t *max_stall_us)
{
	int64_t last_change = now_us(), last_print = 0;
	long last_acked = 0;
	while (!atomic_load(&sh->stop)) {
		struct timespec ts = {0, 10 * 1000000};
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig > 0)
			break;
		int64_t t = now_us();
		long acked = atomic_load(&sh->acked);
		if (acked != last_acked) {
			last_acked = acked;
			last_change = t;
		} else if (acked > 0 && t - last_change > *max_stall_us) {
			*max_stall_us = t - last_change;
		}
		if (t - last_print >= 100000) {
			last_print = t;
			printf("progress acked=%ld errors=%ld\n", acked, atomic_load(&sh->errors));
			fflush(stdout);
		}
	}
	atomic_store(&sh->stop, true);
}

static void writer_summary(shared_t *sh, worker_t *ws, int n, int64_t max_stall_us)
{
	long errs[N_KINDS] = {0};
	int64_t max_lat = 0;
	for (int i = 0; i < n; i++) {
		for (int e = 0; e < N_KINDS; e++)
			errs[e] += ws[i].errs[e];
		if (ws[i].max_latency_us > max_lat)
			max_lat = ws[i].max_latency_us;
	}
	printf("summary acked=%ld errors=%ld max_latency_ms=%.1f max_stall_ms=%.0f",
	       atomic_load(&sh->acked), atomic_load(&sh->errors), max_lat / 1000.0,
	       max_stall_us / 1000.0);
	for (int e = 0; e < N_KINDS; e++)
		if (errs[e])
			printf(" err.%s=%ld", kind_names[e], errs[e]);
	printf("\n");
	for (int e = 0; e < N_KINDS; e++)
		for (int i = 0; i < n; i++)
			if (ws[i].errs[e]) {
				printf("first_error %s %s\n", kind_names[e], ws[i].first_err[e]);
				break;
			}
	fflush(stdout);
}

static int writer_main(const args_t *a)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	shared_t sh = {.a = a};
	pthread_mutex_init(&sh.log_lock, NULL);
	sh.log = fopen(a->log_path, "w");
	if (!sh.log) {
		fprintf(stderr, "churn_writer: %s: %s\n", a->log_path, strerror(errno));
		return 2;
	}
	worker_t *ws = calloc((size_t)a->threads, sizeof(*ws));
	if (!ws) {
		fclose(sh.log);
		return 2;
	}
	int started = 0;
	for (; started < a->threads; started++) {
		ws[started].sh = &sh;
		ws[started].id = started;
		if (pthread_create(&ws[started].thread, NULL, worker_run, &ws[started]) != 0) {
			atomic_store(&sh.stop, true);
			break;
		}
	}
	int64_t max_stall_us = 0;
	writer_wait_for_stop(&sh, &sigs, &max_stall_us);
	int failed = started < a->threads;
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].thread, NULL);
		failed |= ws[i].failed_setup;
	}
	int rc = fclose(sh.log) != 0 || failed ? 2 : 0;
	writer_summary(&sh, ws, started, max_stall_us);
	free(ws);
	pthread_mutex_destroy(&sh.log_lock);
	return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

typedef struct keyset {
	char **keys;
	size_t n, cap;
} keyset_t;

static void keyset_free(keyset_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The log's keys, sorted: the same order as a range over the prefix (the keys are plain
 * ASCII, so strcmp and the store's byte order agree). */
static int keyset_load(const char *path, keyset_t *s)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "churn_writer: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[KEY_MAX + 64];
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, " \n")] = 0;
		if (!line[0])
			continue;
		if (s->n == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 4096;
			char **k = realloc(s->keys, cap * sizeof(*k));
			if (!k) {
				rc = -1;
				break;
			}
			s->keys = k;
			s->cap = cap;
		}
		if (!(s->keys[s->n] = strdup(line))) {
			rc = -1;
			break;
		}
		s->n++;
	}
	fclose(f);
	if (rc == 0 && s->n > 1)
		qsort(s->keys, s->n, sizeof(*s->keys), cmp_str);
	return rc;
}

static keel_t *connect_one(const char *endpoint, int timeout_ms)
{
	keel_options_t opt;
	keel_options_init(&opt);
	opt.endpoints = &endpoint;
	opt.n_endpoints = 1;
	opt.dial_timeout_ms = 1000;
	opt.call_timeout_ms = timeout_ms;
	keel_t *k = NULL;
	keel_error_t err;
	if (keel_connect(&opt, &k, &err) != 0)
		fprintf(stderr, "churn_writer: connect %s: %s\n", endpoint, err.message);
	return k;
}

typedef struct ep_report {
	long keys, found, missing, mismatched, extra;
	uint32_t hash;
	int64_t compact_revision;
	uint64_t member_id;
	int hash_ok;
	char error[600];
} ep_report_t;

/* Waits until the endpoint has applied the marker write (so it holds everything acked
 * before it), reading serializably so the member answers from its own store. */
static int verify_wait_marker(keel_t *k, const char *marker, const char *value, int timeout_ms,
			      ep_report_t *r)
{
	int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
	keel_error_t err = {0};
	while (now_us() < deadline) {
		keel_range_req_t req = {.timeout_ms = 2000, .key = marker,
					.key_len = strlen(marker), .serializable = true};
		keel_range_result_t *res = NULL;
		int rc = keel_range(k, &req, &res, &err);
		int seen = rc == 0 && res->n_kvs == 1 &&
			   strcmp((const char *)res->kvs[0].value, value) == 0;
		if (rc == 0)
			r->member_id = res->header.member_id;
		keel_range_result_free(res);
		if (seen)
			return 0;
		sleep_ms(50);
	}
	snprintf(r->error, sizeof(r->error), "did not catch up to the marker in %d ms (last: %s)",
		 timeout_ms, err.message);
	return -1;
}

static void verify_kv(const keel_kv_t *kv, const keyset_t *acked, size_t *pos, ep_report_t *r)
{
	const char *key = (const char *)kv->key;
	while (*pos < acked->n && strcmp(acked->keys[*pos], key) < 0) {
		if (r->missing++ < 5)
			fprintf(stderr, "  missing: %s\n", acked->keys[*pos]);
		(*pos)++;
	}
	if (*pos < acked->n && strcmp(acked->keys[*pos], key) == 0) {
		char want[VALUE_LEN + 1];
		value_of(key, want);
		if (kv->value_len == VALUE_LEN && memcmp(kv->value, want, VALUE_LEN) == 0) {
			r->found++;
		} else if (r->mismatched++ < 5) {
			fprintf(stderr, "  wrong value of %s: %.*s\n", key, (int)kv->value_len,
				(const char *)kv->value);
		}
		(*pos)++;
		return;
	}
	r->extra++;
}

/* Pages through the prefix at revision rev on this member alone and walks the sorted
 * acknowledged keys beside it. */
static int verify_range(keel_t *k, const char *prefix, int64_t rev, const keyset_t *acked,
			ep_report_t *r)
{
	uint8_t end[KEY_MAX];
	size_t end_len = keel_prefix_end(prefix, strlen(prefix), end);
	uint8_t start[KEY_MAX + 1];
	size_t start_len = strlen(prefix);
	memcpy(start, prefix, start_len);
	size_t pos = 0;
	for (bool more = true; more;) {
		keel_range_req_t req = {.timeout_ms = 10000, .key = start, .key_len = start_len,
					.range_end = end, .range_end_len = end_len,
					.limit = PAGE, .revision = rev, .serializable = true};
		keel_range_result_t *res = NULL;
		keel_error_t err;
		if (keel_range(k, &req, &res, &err) != 0) {
			snprintf(r->error, sizeof(r->error), "range: %s", err.message);
			return -1;
		}
		for (size_t i = 0; i < res->n_kvs; i++)
			verify_kv(&res->kvs[i], acked, &pos, r);
		r->keys += (long)res->n_kvs;
		more = res->more && res->n_kvs > 0;
		const keel_kv_t *last = res->n_kvs ? &res->kvs[res->n_kvs - 1] : NULL;
		if (more && last->key_len >= KEY_MAX) {
			keel_range_result_free(res);
			snprintf(r->error, sizeof(r->error), "a key longer than %d bytes", KEY_MAX);
			return -1;
		}
		if (more) {
			/* The next page starts just after the last key: key + "\0". */
			memcpy(start, last->key, last->key_len);
			start[last->key_len] = 0;
			start_len = last->key_len + 1;
		}
		keel_range_result_free(res);
	}
	for (; pos < acked->n; pos++)
		if (r->missing++ < 5)
			fprintf(stderr, "  missing: %s\n", acked->keys[pos]);
	return 0;
}

static void verify_endpoint(const args_t *a, const char *ep, const char *marker,
			    const char *marker_value, int64_t rev, const keyset_t *acked,
			    ep_report_t *r)
{
	keel_t *k = connect_one(ep, 10000);
	if (!k) {
		snprintf(r->error, sizeof(r->error), "cannot connect");
		return;
	}
	if (verify_wait_marker(k, marker, marker_value, a->timeout_ms, r) == 0 &&
	    verify_range(k, a->prefix, rev, acked, r) == 0) {
		keel_endpoint_req_t req = {.timeout_ms = 10000, .endpoint = ep, .revision = rev};
		keel_hashkv_result_t h;
		keel_error_t err;
		if (keel_hashkv(k, &req, &h, &err) == 0) {
			r->hash = h.hash;
			r->compact_revision = h.compact_revision;
			r->hash_ok = 1;
		} else {
			snprintf(r->error, sizeof(r->error), "hashkv: %s", err.message);
		}
	}
	keel_close(k);
}

/* A linearizable marker put through any endpoint: its revision is the point every member
 * must reach, and the revision HashKV compares at. */
static int verify_put_marker(const args_t *a, const char *marker, const char *value,
			     int64_t *rev)
{
	keel_options_t opt;
	keel_options_init(&opt);
	opt.endpoints = a->endpoints;
	opt.n_endpoints = a->n_endpoints;
	opt.dial_timeout_ms = 1000;
	opt.call_timeout_ms = 5000;
	keel_t *k;
	keel_error_t err;
	if (keel_connect(&opt, &k, &err) != 0) {
		fprintf(stderr, "churn_writer: connect: %s\n", err.message);
		return -1;
	}
	int64_t deadline = now_us() + (int64_t)a->timeout_ms * 1000;
	int rc;
	do {
		keel_put_req_t req = {.key = marker, .key_len = strlen(marker), .value = value,
				      .value_len = strlen(value)};
		keel_put_result_t *res = NULL;
		rc = keel_put(k, &req, &res, &err);
		if (rc == 0)
			*rev = res->header.revision;
		keel_put_result_free(res);
		if (rc != 0)
			sleep_ms(100);
	} while (rc != 0 && now_us() < deadline);
	keel_close(k);
	if (rc != 0)
		fprintf(stderr, "churn_writer: marker put: %s\n", err.message);
	return rc ? -1 : 0;
}

static int verifier_main(const args_t *a)
{
	keyset_t acked = {0};
	if (keyset_load(a->log_path, &acked) != 0) {
		keyset_free(&acked);
		return 2;
	}
	char marker[KEY_MAX], value[64];
	snprintf(marker, sizeof(marker), "%.*s-marker", (int)strlen(a->prefix) - 1, a->prefix);
	snprintf(value, sizeof(value), "%d-%" PRId64, (int)getpid(), now_us());
	int64_t rev = 0;
	if (verify_put_marker(a, marker, value, &rev) != 0) {
		keyset_free(&acked);
		return 2;
	}
	printf("acked %zu marker_revision %" PRId64 "\n", acked.n, rev);
	int ok = 1;
	ep_report_t first = {0};
	for (size_t i = 0; i < a->n_endpoints; i++) {
		ep_report_t r = {0};
		verify_endpoint(a, a->endpoints[i], marker, value, rev, &acked, &r);
		printf("endpoint %s member=%016" PRIx64 " keys=%ld found=%ld missing=%ld "
		       "mismatched=%ld unacked_present=%ld hash=%" PRIu32
		       " compact_revision=%" PRId64 "%s%s\n", a->endpoints[i], r.member_id, r.keys, r.found, r.missing,
		       r.mismatched, r.extra, r.hash, r.compact_revision,
		       r.error[0] ? " error=" : "", r.error);
		if (r.error[0] || !r.hash_ok || r.missing || r.mismatched ||
		    r.found != (long)acked.n)
			ok = 0;
		if (i == 0)
			first = r;
		else if (r.hash != first.hash || r.keys != first.keys)
			ok = 0;
	}
	printf("verdict %s\n", ok ? "ok" : "FAIL");
	keyset_free(&acked);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	args_t a;
	if (parse_args(argc, argv, &a) != 0) {
		fprintf(stderr, "usage: churn_writer write|verify --endpoints A,B,.. --log FILE"
			" [--threads N] [--deadline-ms MS] [--prefix P] [--timeout-ms MS]\n");
		return 2;
	}
	keel_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(a.mode, "write") == 0)
		return writer_main(&a);
	if (strcmp(a.mode, "verify") == 0)
		return verifier_main(&a);
	fprintf(stderr, "churn_writer: unknown mode %s\n", a.mode);
	return 2;
}
