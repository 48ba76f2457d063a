/* bench/sched/sched_load.c — the scheduling benchmark's load: creates N pods through kc_create
 * on T threads and, through a pod informer, records when each got a node and when it ran.
 * Prints pods scheduled per second, the time until all ran and create->bind latencies.
 * Only ever creates pods named <prefix>NNNNN in one namespace; never deletes anything. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

typedef struct load {
	keel_t *k;
	int n, threads, timeout_s, wait_nodes, make_nodes;
	bool wait_running;
	const char *prefix, *ns;
	pthread_mutex_t mu;
	int next;              /* next pod index to create */
	int created, failed, bound, running, nodes_ready;
	int64_t *t_create;     /* µs, monotonic; 0: not yet */
	int64_t *t_bound;
	int64_t *t_running;
} load_t;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The index of one of our pods from its name, or -1. */
static int load_index(const load_t *l, const char *name)
{
	size_t plen = strlen(l->prefix);
	if (!name || strncmp(name, l->prefix, plen))
		return -1;
	char *end;
	long i = strtol(name + plen, &end, 10);
	return *end || i < 0 || i >= l->n ? -1 : (int)i;
}

static void load_on_pod(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			const json_t *new_obj)
{
	load_t *l = ud;
	(void)kind;
	(void)key;
	(void)old_obj;
	if (!new_obj)
		return;
	const char *ns = kc_namespace(new_obj);
	int i = load_index(l, kc_name(new_obj));
	if (i < 0 || !ns || strcmp(ns, l->ns))
		return;
	int64_t t = now_us();
	const char *node = kc_path_str(new_obj, "spec.nodeName");
	const char *phase = kc_path_str(new_obj, "status.phase");
	pthread_mutex_lock(&l->mu);
	if (node && *node && !l->t_bound[i]) {
		l->t_bound[i] = t;
		l->bound++;
	}
	if (phase && !strcmp(phase, "Running") && !l->t_running[i]) {
		l->t_running[i] = t;
		l->running++;
	}
	pthread_mutex_unlock(&l->mu);
}

static void load_on_node(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			 const json_t *new_obj)
{
	load_t *l = ud;
	(void)kind;
	(void)key;
	int d = (new_obj && kc_node_ready(new_obj)) - (old_obj && kc_node_ready(old_obj));
	pthread_mutex_lock(&l->mu);
	l->nodes_ready += d;
	pthread_mutex_unlock(&l->mu);
}

static json_t *load_pod(const load_t *l, int i)
{
	char name[64];
	snprintf(name, sizeof(name), "%s%05d", l->prefix, i);
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:[{s:s, s:[s], s:[s], "
			 "s:{s:{s:s, s:s}}}], s:s}}",
			 "apiVersion", "v1", "kind", "Pod",
			 "metadata", "name", name, "namespace", l->ns, "labels", "app",
			 "sched-bench",
			 "spec", "containers", "name", "main", "command", "sleep", "args", "3600",
			 "resources", "requests", "cpu", "100m", "memory", "64Mi",
			 "restartPolicy", "Always");
}

static void *load_creator(void *arg)
{
	load_t *l = arg;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		int i = l->next < l->n ? l->next++ : -1;
		pthread_mutex_unlock(&l->mu);
		if (i < 0)
			return NULL;
		json_t *pod = load_pod(l, i);
		keel_error_t err = {0};
		int64_t t = now_us();
		int rc = pod ? kc_create(l->k, pod, &err) : -1;
		pthread_mutex_lock(&l->mu);
		if (rc) {
			l->failed++;
			if (l->failed <= 5)
				fprintf(stderr, "sched_load: create %d: %s\n", i,
					pod ? err.message : "out of memory");
		} else {
			l->t_create[i] = t;
			l->created++;
		}
		pthread_mutex_unlock(&l->mu);
		json_decref(pod);
	}
}

/* Stand-in nodes (Ready, 4 cpu, 16Gi, 110 pods) for runs without a hollow agent. */
static int load_make_nodes(load_t *l)
{
	char ts[32];
	kc_time_now(ts);
	for (int i = 0; i < l->make_nodes; i++) {
		char name[64];
		snprintf(name, sizeof(name), "fake-%05d", i);
		json_t *node = json_pack(
			"{s:s, s:s, s:{s:s, s:{s:s}}, s:{}, "
			"s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, "
			"s:[{s:s, s:s, s:s, s:s, s:s, s:s}]}}",
			"apiVersion", "v1", "kind", "Node", "metadata", "name", name, "labels",
			"kubernetes.io/hostname", name, "spec", "status", "capacity", "cpu", "4",
			"memory", "16Gi", "pods", "110", "allocatable", "cpu", "4", "memory",
			"16Gi", "pods", "110", "conditions", "type", "Ready", "status", "True",
			"reason", "AgentReady", "message", "sched_load stand-in",
			"lastHeartbeatTime", ts, "lastTransitionTime", ts);
		keel_error_t err = {0};
		int rc = node ? kc_create(l->k, node, &err) : -1;
		json_decref(node);
		if (rc && rc != KEEL_CODE_ALREADY_EXISTS) {
			fprintf(stderr, "sched_load: create node %s: %s\n", name, err.message);
			return -1;
		}
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: sched_load [--endpoints E] [-n PODS] [-t THREADS] [--timeout S]\n"
		"                  [--wait-nodes N] [--make-nodes N] [--no-running] [--prefix P]\n"
		"                  [--namespace NS]\n");
}

/* Waits (polling the counters the informers keep) until done() or the deadline. */
static bool load_wait(load_t *l, int64_t deadline_us, bool (*done)(load_t *))
{
	int64_t next_report = now_us() + 5000000;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		bool ok = done(l);
		int nodes = l->nodes_ready, bound = l->bound, running = l->running;
		pthread_mutex_unlock(&l->mu);
		if (ok)
			return true;
		int64_t t = now_us();
		if (t > deadline_us)
			return false;
		if (t > next_report) {
			fprintf(stderr, "sched_load: %d nodes Ready, %d pods bound, %d running\n",
				nodes, bound, running);
			next_report = t + 5000000;
		}
		usleep(20 * 1000);
	}
}

static bool nodes_done(load_t *l)
{
	return l->nodes_ready >= l->wait_nodes;
}

static bool pods_done(load_t *l)
{
	int target = l->created + l->failed == l->n ? l->created : l->n;
	return l->bound >= target && (!l->wait_running || l->running >= target);
}

int main(int argc, char **argv)
{
	load_t l = {.n = 1000, .threads = 8, .timeout_s = 300, .wait_running = true,
		    .prefix = "bench-", .ns = "default"};
	const char *endpoints = NULL;
	static const struct option opts[] = {
		{"endpoints", required_argument, NULL, 'e'},
		{"pods", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'},
		{"timeout", required_argument, NULL, 'T'},
		{"wait-nodes", required_argument, NULL, 'w'},
		{"no-running", no_argument, NULL, 'R'},
		{"make-nodes", required_argument, NULL, 'm'},
		{"prefix", required_argument, NULL, 'p'},
		{"namespace", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'e': endpoints = optarg; break;
		case 'n': l.n = atoi(optarg); break;
		case 't': l.threads = atoi(optarg); break;
		case 'T': l.timeout_s = atoi(optarg); break;
		case 'w': l.wait_nodes = atoi(optarg); break;
		case 'R': l.wait_running = false; break;
		case 'm': l.make_nodes = atoi(optarg); break;
		case 'p': l.prefix = optarg; break;
		case 's': l.ns = optarg; break;
		default: usage(); return 2;
		}
	}
	if (l.n <= 0 || l.n > 99999 || l.threads <= 0 || l.timeout_s <= 0) {
		usage();
		return 2;
	}
	keel_error_t err = {0};
	if (kc_connect(endpoints, &l.k, &err)) {
		fprintf(stderr, "sched_load: %s\n", err.message);
		return 1;
	}
	pthread_mutex_init(&l.mu, NULL);
	l.t_create = calloc((size_t)l.n, sizeof(int64_t));
	l.t_bound = calloc((size_t)l.n, sizeof(int64_t));
	l.t_running = calloc((size_t)l.n, sizeof(int64_t));
	kc_informer_t *pods = NULL, *nodes = NULL;
	int status = 1;
	if (!l.t_create || !l.t_bound || !l.t_running)
		goto out;
	int64_t deadline = now_us() + (int64_t)l.timeout_s * 1000000;
	if (l.make_nodes > 0 && load_make_nodes(&l))
		goto out;
	if (l.wait_nodes > 0) {
		if (kc_informer_start(l.k, KC_NODE, NULL, load_on_node, &l, &nodes, &err)) {
			fprintf(stderr, "sched_load: watching nodes: %s\n", err.message);
			goto out;
		}
		if (!load_wait(&l, deadline, nodes_done)) {
			fprintf(stderr, "sched_load: only %d of %d nodes Ready\n", l.nodes_ready,
				l.wait_nodes);
			goto out;
		}
		kc_informer_stop(nodes);
		nodes = NULL;
		fprintf(stderr, "sched_load: %d nodes Ready\n", l.wait_nodes);
	}
	if (kc_informer_start(l.k, KC_POD, l.ns, load_on_pod, &l, &pods, &err)) {
		fprintf(stderr, "sched_load: watching pods: %s\n", err.message);
		goto out;
	}
	pthread_t *th = calloc((size_t)l.threads, sizeof(*th));
	int started = 0;
	int64_t t0 = now_us();
	for (int i = 0; th && i < l.threads; i++)
		if (!pthread_create(&th[i], NULL, load_creator, &l))
			started++;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	int64_t t_created = now_us();
	bool all = started && load_wait(&l, deadline, pods_done);
	kc_informer_stop(pods);
	pods = NULL;

	int64_t first_create = INT64_MAX, last_bind = 0, last_running = 0;
	int64_t *lat = malloc((size_t)l.n * sizeof(int64_t));
	int n_lat = 0;
	for (int i = 0; i < l.n; i++) {
		if (l.t_create[i] && l.t_create[i] < first_create)
			first_create = l.t_create[i];
		if (l.t_bound[i] > last_bind)
			last_bind = l.t_bound[i];
		if (l.t_running[i] > last_running)
			last_running = l.t_running[i];
		if (lat && l.t_create[i] && l.t_bound[i])
			lat[n_lat++] = l.t_bound[i] > l.t_create[i] ?
					       l.t_bound[i] - l.t_create[i] : 0;
	}
	if (first_create == INT64_MAX)
		first_create = t0;
	if (lat)
		qsort(lat, (size_t)n_lat, sizeof(*lat), cmp_i64);
	double sched_s = last_bind > first_create ? (last_bind - first_create) / 1e6 : 0;
	double run_s = last_running > first_create ? (last_running - first_create) / 1e6 : 0;
	double create_s = (t_created - t0) / 1e6;
	double p50 = n_lat ? lat[n_lat / 2] / 1e3 : 0;
	double p99 = n_lat ? lat[(size_t)((n_lat - 1) * 0.99)] / 1e3 : 0;
	printf("pods            %d (created %d, failed %d, bound %d, running %d)\n", l.n,
	       l.created, l.failed, l.bound, l.running);
	printf("create rate     %.0f pods/s (%.2f s, %d threads)\n",
	       create_s > 0 ? l.created / create_s : 0, create_s, started);
	printf("scheduled       %.0f pods/s (%.2f s from first create to last bind)\n",
	       sched_s > 0 ? l.bound / sched_s : 0, sched_s);
	if (l.wait_running)
		printf("all running     %.2f s after the first create\n", run_s);
	printf("create->bind    p50 %.1f ms, p99 %.1f ms\n", p50, p99);
	printf("RESULT {\"pods\":%d,\"created\":%d,\"bound\":%d,\"running\":%d,"
	       "\"sched_per_s\":%.1f,\"sched_s\":%.3f,\"running_s\":%.3f,\"create_per_s\":%.1f,"
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n",
	       l.n, l.created, l.bound, l.running, sched_s > 0 ? l.bound / sched_s : 0, sched_s,
	       run_s, create_s > 0 ? l.created / create_s : 0, p50, p99);
	free(lat);
	if (!all)
		fprintf(stderr, "sched_load: timed out after %d s\n", l.timeout_s);
	status = all && !l.failed ? 0 : 1;
out:
	if (nodes)
		kc_informer_stop(nodes);
	if (pods)
		kc_informer_stop(pods);
	free(l.t_create);
	free(l.t_bound);
	free(l.t_running);
	pthread_mutex_destroy(&l.mu);
	keel_close(l.k);
	return status;
}
