/* tests/cluster/agent/hollow_load.c — load for the hollow agent's benchmark (hollow_bench.py):
 * creates N pods already bound to <prefix>NNNN (round robin over M nodes) through kc_create on
 * T threads and, through a pod informer, times until every one is Running. Not a test: it only
 * prints figures. Creates pods named hl<NNNNN> in namespace default; never deletes anything.
 *   usage: hollow_load PODS NODES THREADS [NODE_PREFIX]   (store from KEEL_ENDPOINTS) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

typedef struct hollow_load {
	keel_t *k;
	int pods, nodes;
	const char *prefix;
	pthread_mutex_t mu;
	int next, failed, running;
	int64_t t_last_running;
} hollow_load_t;

static void *hollow_load_worker(void *arg)
{
	hollow_load_t *l = arg;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		int i = l->next++;
		pthread_mutex_unlock(&l->mu);
		if (i >= l->pods)
			return NULL;
		char name[32], node[128];
		snprintf(name, sizeof(name), "hl%05d", i);
		snprintf(node, sizeof(node), "%.100s%04d", l->prefix, i % l->nodes);
		json_t *pod = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:[s]}]}}",
			"apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace",
			"default", "spec", "nodeName", node, "containers", "name", "main", "command",
			"sleep");
		keel_error_t err;
		if (kc_create(l->k, pod, &err) != 0) {
			fprintf(stderr, "hollow_load: %s: %s\n", name, err.message);
			pthread_mutex_lock(&l->mu);
			l->failed++;
			pthread_mutex_unlock(&l->mu);
		}
		json_decref(pod);
	}
}

static bool hollow_load_is_running(const json_t *pod)
{
	const char *ph = pod ? kc_path_str(pod, "status.phase") : NULL;
	return ph && !strcmp(ph, "Running");
}

static void hollow_load_cb(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			   const json_t *new_obj)
{
	hollow_load_t *l = ud;
	(void)kind;
	(void)key;
	if (!hollow_load_is_running(old_obj) && hollow_load_is_running(new_obj)) {
		pthread_mutex_lock(&l->mu);
		l->running++;
		l->t_last_running = kc_mono_ms();
		pthread_mutex_unlock(&l->mu);
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: hollow_load PODS NODES THREADS [NODE_PREFIX]\n");
		return 2;
	}
	hollow_load_t l = { .pods = atoi(argv[1]), .nodes = atoi(argv[2]),
			    .prefix = argc > 4 ? argv[4] : "hollow-" };
	int threads = atoi(argv[3]);
	if (l.pods <= 0 || l.nodes <= 0 || threads <= 0 || threads > 256) {
		fprintf(stderr, "hollow_load: PODS, NODES and THREADS (<= 256) must be positive\n");
		return 2;
	}
	pthread_mutex_init(&l.mu, NULL);
	keel_init();
	keel_error_t err;
	kc_informer_t *inf = NULL;
	if (kc_connect(NULL, &l.k, &err) != 0 ||
	    kc_informer_start(l.k, KC_POD, NULL, hollow_load_cb, &l, &inf, &err) != 0) {
		fprintf(stderr, "hollow_load: %s\n", err.message);
		return 1;
	}
	int64_t t0 = kc_mono_ms();
	pthread_t th[256];
	int started = 0;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[started], NULL, hollow_load_worker, &l) == 0)
			started++;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	int64_t t1 = kc_mono_ms();
	int want = l.pods - l.failed;
	printf("created %d bound pods on %d nodes in %.2f s (%.0f/s, %d threads, %d failed)\n",
	       want, l.nodes, (double)(t1 - t0) / 1000.0, want * 1000.0 / (double)(t1 - t0 + 1),
	       started, l.failed);
	for (int waited = 0; waited < 6000; waited++) {
		pthread_mutex_lock(&l.mu);
		int r = l.running;
		pthread_mutex_unlock(&l.mu);
		if (r >= want)
			break;
		usleep(100000);
	}
	pthread_mutex_lock(&l.mu);
	int running = l.running;
	int64_t last = l.t_last_running;
	pthread_mutex_unlock(&l.mu);
	printf("%d Running; the last %.2f s after the first create (%.0f pods/s end to end)\n",
	       running, (double)(last - t0) / 1000.0, running * 1000.0 / (double)(last - t0 + 1));
	kc_informer_stop(inf);
	keel_close(l.k);
	pthread_mutex_destroy(&l.mu);
	return running >= want && l.failed == 0 ? 0 : 1;
}
