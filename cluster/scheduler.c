/* cluster/scheduler.c — `keel scheduler`: assigns pending pods to nodes by kube-scheduler's
 * rules (filter, score, assume, bind on worker threads). Writes nothing but the pods it
 * schedules; never parses JSON per node while scheduling a pod (the node cache holds numbers). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "scheduler_int.h"

#define SCHED_NAME "default-scheduler"
#define SCHED_BACKOFF_MIN_MS 1000
#define SCHED_BACKOFF_MAX_MS 10000
#define SCHED_BIND_RETRIES 5
/* sched_run's status when the leader election was lost: campaign again. */
#define SCHED_LOST_LEADERSHIP 3
/* sched_run's status when the store could not be listed or watched: try again after a pause. */
#define SCHED_WATCH_FAILED 4

static int sched_parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "1")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "false") || !strcmp(s, "0")) {
		*out = false;
		return 0;
	}
	return -1;
}

static int sched_parse_int(const char *s, int min, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

static const char sched_usage[] =
	"usage: keel scheduler [--endpoints E] [--leader-elect=true|false]\n"
	"                      [--leader-elect-lease-duration SECONDS] [--workers N] [-v]\n";

int sched_opts_parse(int argc, char **argv, sched_opts_t *o)
{
	*o = (sched_opts_t){.leader_elect = true, .lease_duration = 15, .workers = 8};
	for (int i = argc > 0 && !strcmp(argv[0], "scheduler") ? 1 : 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(sched_usage, stdout);
			return 1;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose") || !strncmp(a, "-v=", 3) ||
		    !strncmp(a, "--v=", 4)) {
			o->verbose = true;
			continue;
		}
		const char *name = a[0] == '-' && a[1] == '-' ? a + 2 : NULL;
		if (!name) {
			fprintf(stderr, "keel scheduler: unexpected argument \"%s\"\n%s", a,
				sched_usage);
			return -1;
		}
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = eq ? eq + 1 : NULL;
		enum { F_ENDPOINTS, F_LEADER, F_LEASE, F_WORKERS, F_NONE } f = F_NONE;
		static const char *const flags[] = {"endpoints", "leader-elect",
						    "leader-elect-lease-duration", "workers"};
		for (int j = 0; j < F_NONE; j++)
			if (strlen(flags[j]) == nlen && !strncmp(name, flags[j], nlen))
				f = j;
		if (f == F_NONE) {
			fprintf(stderr, "keel scheduler: unknown flag: --%.*s\n%s", (int)nlen, name,
				sched_usage);
			return -1;
		}
		if (!val && f != F_LEADER) {
			if (i + 1 >= argc) {
				fprintf(stderr, "keel scheduler: flag needs an argument: %s\n", a);
				return -1;
			}
			val = argv[++i];
		}
		int rc = 0;
		if (f == F_LEADER)
			rc = val ? sched_parse_bool(val, &o->leader_elect)
				 : (o->leader_elect = true, 0);
		else if (f == F_ENDPOINTS)
			o->endpoints = val;
		else if (f == F_LEASE)
			rc = sched_parse_int(val, 1, &o->lease_duration);
		else
			rc = sched_parse_int(val, 1, &o->workers);
		if (rc) {
			fprintf(stderr, "keel scheduler: invalid value \"%s\" for --%.*s\n", val,
				(int)nlen, name);
			return -1;
		}
	}
	return 0;
}


/* ---- pure decisions (scheduler_int.h) ------------------------------------------------------ */

static const char *const sched_reason_text[7] = {
	"node(s) were unschedulable",
	NULL, /* taints carry their own text */
	"node(s) were not ready",
	"node(s) didn't match Pod's node affinity/selector",
	"Insufficient cpu",
	"Insufficient memory",
	"Too many pods",
};

static int64_t sched_quantity(const json_t *q)
{
	int64_t milli = 0;
	char msg[128];
	if (!q || kc_quantity_parse(q, &milli, msg, sizeof(msg)))
		return 0;
	return milli;
}

static bool sched_hard_effect(const json_t *taint)
{
	const char *e = json_string_value(json_object_get(taint, "effect"));
	return e && (!strcmp(e, "NoSchedule") || !strcmp(e, "NoExecute"));
}

/* The NoSchedule/NoExecute taints of a node (a new array), or NULL when it has none. */
static json_t *sched_hard_taints(const json_t *node)
{
	json_t *all = kc_path(node, "spec.taints"), *out = NULL, *t;
	size_t i;
	json_array_foreach(all, i, t) {
		if (!sched_hard_effect(t))
			continue;
		if (!out)
			out = json_array();
		json_array_append_new(out, json_deep_copy(t));
	}
	return out;
}

static bool sched_json_same(const json_t *a, const json_t *b)
{
	if (!a || !b)
		return !a == !b;
	return json_equal((json_t *)a, (json_t *)b);
}

bool sched_node_differs(const sched_node_t *n, const json_t *node)
{
	const json_t *labels = kc_path(node, "metadata.labels");
	if (labels && !json_object_size(labels))
		labels = NULL;
	json_t *taints = sched_hard_taints(node);
	int64_t cpu = sched_quantity(kc_path(node, "status.allocatable.cpu"));
	int64_t mem = sched_quantity(kc_path(node, "status.allocatable.memory")) / 1000;
	int64_t pods = sched_quantity(kc_path(node, "status.allocatable.pods")) / 1000;
	bool differs = !n->present || n->ready != kc_node_ready(node) ||
		       n->unschedulable != json_is_true(kc_path(node, "spec.unschedulable")) ||
		       n->alloc_cpu != cpu || n->alloc_mem != mem || n->alloc_pods != pods ||
		       !sched_json_same(n->taints, taints) || !sched_json_same(n->labels, labels);
	json_decref(taints);
	return differs;
}

void sched_node_set(sched_node_t *n, const json_t *node)
{
	const char *name = kc_name(node);
	if (!n->name || strcmp(n->name, name ? name : "")) {
		free(n->name);
		n->name = strdup(name ? name : "");
	}
	json_decref(n->taints);
	json_decref(n->labels);
	n->present = true;
	n->ready = kc_node_ready(node);
	n->unschedulable = json_is_true(kc_path(node, "spec.unschedulable"));
	n->taints = sched_hard_taints(node);
	const json_t *labels = kc_path(node, "metadata.labels");
	n->labels = labels && json_object_size(labels) ? json_deep_copy(labels) : NULL;
	n->alloc_cpu = sched_quantity(kc_path(node, "status.allocatable.cpu"));
	n->alloc_mem = sched_quantity(kc_path(node, "status.allocatable.memory")) / 1000;
	n->alloc_pods = sched_quantity(kc_path(node, "status.allocatable.pods")) / 1000;
}

void sched_node_clear(sched_node_t *n)
{
	free(n->name);
	json_decref(n->taints);
	json_decref(n->labels);
	memset(n, 0, sizeof(*n));
}

/* NodeUnschedulable lets through pods that tolerate the taint a cordon stands for. */
static bool sched_tolerates_cordon(const json_t *tolerations)
{
	if (!json_array_size(tolerations))
		return false;
	json_t *t = json_pack("{s:s, s:s}", "key", "node.kubernetes.io/unschedulable", "effect",
			      "NoSchedule");
	bool ok = t && kc_tolerates(tolerations, t);
	json_decref(t);
	return ok;
}

static bool sched_selector_matches(const json_t *labels, const json_t *selector)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)selector, k, v) {
		const char *have = json_string_value(json_object_get(labels, k));
		const char *want = json_string_value(v);
		if (!have || !want || strcmp(have, want))
			return false;
	}
	return true;
}

unsigned sched_filter(const sched_node_t *n, const sched_pod_t *p, const json_t **taint)
{
	if (n->unschedulable && !sched_tolerates_cordon(p->tolerations))
		return SCHED_FAIL_UNSCHEDULABLE;
	size_t i;
	json_t *t;
	json_array_foreach(n->taints, i, t) {
		if (!kc_tolerates(p->tolerations, t)) {
			if (taint)
				*taint = t;
			return SCHED_FAIL_TAINT;
		}
	}
	if (!n->ready)
		return SCHED_FAIL_NOT_READY;
	if (json_object_size(p->node_selector) && !sched_selector_matches(n->labels,
									  p->node_selector))
		return SCHED_FAIL_SELECTOR;
	unsigned r = 0;
	if (p->cpu > 0 && p->cpu > n->alloc_cpu - n->req_cpu)
		r |= SCHED_FAIL_CPU;
	if (p->mem > 0 && p->mem > n->alloc_mem - n->req_mem)
		r |= SCHED_FAIL_MEMORY;
	if (n->pods + 1 > n->alloc_pods)
		r |= SCHED_FAIL_PODS;
	return r;
}

/* A pod's requests, each within [0, 2^50] (2^50 is a petabyte, or a trillion cores): node
 * totals are sums over at most a few thousand pods, so no sum or difference can overflow
 * even for pods written to the store with absurd requests. */
#define SCHED_REQUEST_MAX (INT64_C(1) << 50)
static void sched_pod_requests(const json_t *pod, int64_t *cpu, int64_t *mem)
{
	kc_pod_requests(pod, cpu, mem);
	if (*cpu < 0)
		*cpu = 0;
	if (*mem < 0)
		*mem = 0;
	if (*cpu > SCHED_REQUEST_MAX)
		*cpu = SCHED_REQUEST_MAX;
	if (*mem > SCHED_REQUEST_MAX)
		*mem = SCHED_REQUEST_MAX;
}

static int64_t sched_free_fraction(int64_t alloc, int64_t used)
{
	if (alloc <= 0 || used > alloc)
		return 0;
	return (alloc - used) * 100 / alloc;
}

int64_t sched_score(const sched_node_t *n, const sched_pod_t *p, int32_t owner_count,
		    int32_t owner_max)
{
	int64_t least = (sched_free_fraction(n->alloc_cpu, n->req_cpu + p->cpu) +
			 sched_free_fraction(n->alloc_mem, n->req_mem + p->mem)) / 2;
	int64_t spread = owner_max > 0 ? (int64_t)(owner_max - owner_count) * 100 / owner_max : 100;
	return least + 2 * spread;
}

static int32_t sched_owner_count(const sched_pod_t *p, size_t slot)
{
	return p->owner_counts && slot < p->n_owner_counts ? p->owner_counts[slot] : 0;
}

int sched_select(const sched_node_t *nodes, size_t n, const sched_pod_t *p, size_t rr,
		 int32_t *scratch, sched_failures_t *f)
{
	size_t n_fit = 0;
	int32_t owner_max = 0;
	for (size_t i = 0; i < n; i++) {
		if (!nodes[i].present)
			continue;
		const json_t *taint = NULL;
		unsigned why = sched_filter(&nodes[i], p, &taint);
		if (why) {
			if (f)
				sched_failures_add(f, why, taint);
			continue;
		}
		scratch[n_fit++] = (int32_t)i;
		int32_t c = sched_owner_count(p, i);
		if (c > owner_max)
			owner_max = c;
	}
	if (!n_fit)
		return -1;
	int best = -1;
	int64_t best_score = INT64_MIN;
	size_t start = rr % n_fit;
	for (size_t j = 0; j < n_fit; j++) {
		int32_t slot = scratch[(start + j) % n_fit];
		int64_t s = sched_score(&nodes[slot], p, sched_owner_count(p, (size_t)slot),
					owner_max);
		if (s > best_score) {
			best_score = s;
			best = slot;
		}
	}
	return best;
}

void sched_failures_add(sched_failures_t *f, unsigned reasons, const json_t *taint)
{
	f->n_nodes++;
	for (int b = 0; b < 7; b++) {
		if (!(reasons & (1u << b)))
			continue;
		if ((1u << b) != SCHED_FAIL_TAINT) {
			f->by_reason[b]++;
			continue;
		}
		const char *key = json_string_value(json_object_get(taint, "key"));
		const char *value = json_string_value(json_object_get(taint, "value"));
		char text[512];
		snprintf(text, sizeof(text), "node(s) had untolerated taint {%s: %s}",
			 key ? key : "", value ? value : "");
		size_t i = 0;
		while (i < f->n_taints && strcmp(f->taints[i].text, text))
			i++;
		if (i == f->n_taints) {
			sched_taint_tally_t *t = realloc(f->taints, (i + 1) * sizeof(*t));
			char *copy = strdup(text);
			if (!t || !copy) {
				free(copy);
				if (t)
					f->taints = t;
				continue;
			}
			f->taints = t;
			f->taints[i] = (sched_taint_tally_t){.text = copy, .count = 0};
			f->n_taints++;
		}
		f->taints[i].count++;
	}
}

void sched_failures_clear(sched_failures_t *f)
{
	for (size_t i = 0; i < f->n_taints; i++)
		free(f->taints[i].text);
	free(f->taints);
	memset(f, 0, sizeof(*f));
}

static int sched_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *sched_failures_message(const sched_failures_t *f)
{
	if (!f->n_nodes)
		return strdup("no nodes available to schedule pods");
	size_t n = 0, cap = 7 + f->n_taints;
	char **parts = calloc(cap, sizeof(*parts));
	if (!parts)
		return NULL;
	for (int b = 0; b < 7; b++) {
		if (f->by_reason[b] && sched_reason_text[b] &&
		    asprintf(&parts[n], "%d %s", f->by_reason[b], sched_reason_text[b]) >= 0)
			n++;
	}
	for (size_t i = 0; i < f->n_taints; i++) {
		if (asprintf(&parts[n], "%d %s", f->taints[i].count, f->taints[i].text) >= 0)
			n++;
	}
	qsort(parts, n, sizeof(*parts), sched_cmp_str);
	size_t len = 64;
	for (size_t i = 0; i < n; i++)
		len += strlen(parts[i]) + 2;
	char *msg = malloc(len);
	if (msg) {
		int off = snprintf(msg, len, "0/%d nodes are available%s", f->n_nodes,
				   n ? ": " : "");
		for (size_t i = 0; i < n; i++)
			off += snprintf(msg + off, len - (size_t)off, "%s%s", i ? ", " : "",
					parts[i]);
		snprintf(msg + off, len - (size_t)off, ".");
	}
	for (size_t i = 0; i < n; i++)
		free(parts[i]);
	free(parts);
	return msg;
}

/* ---- a string-keyed hash map --------------------------------------------------------------- */

typedef struct sched_entry {
	char *key;
	void *val;
	struct sched_entry *next;
} sched_entry_t;

typedef struct sched_map {
	sched_entry_t **b;
	size_t nb, n;
} sched_map_t;

static uint64_t sched_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static sched_entry_t **sched_map_slot(const sched_map_t *m, const char *key)
{
	sched_entry_t **e = &m->b[sched_hash(key) & (m->nb - 1)];
	while (*e && strcmp((*e)->key, key))
		e = &(*e)->next;
	return e;
}

static void *sched_map_get(const sched_map_t *m, const char *key)
{
	if (!m->nb)
		return NULL;
	sched_entry_t *e = *sched_map_slot(m, key);
	return e ? e->val : NULL;
}

static int sched_map_grow(sched_map_t *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	sched_entry_t **b = calloc(nb, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < m->nb; i++) {
		for (sched_entry_t *e = m->b[i], *next; e; e = next) {
			next = e->next;
			size_t h = sched_hash(e->key) & (nb - 1);
			e->next = b[h];
			b[h] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

/* Adds key (copied) -> val; the key must not be there yet. */
static int sched_map_put(sched_map_t *m, const char *key, void *val)
{
	if (m->n >= m->nb && sched_map_grow(m))
		return -1;
	sched_entry_t *e = malloc(sizeof(*e));
	if (!e || !(e->key = strdup(key))) {
		free(e);
		return -1;
	}
	e->val = val;
	sched_entry_t **slot = &m->b[sched_hash(key) & (m->nb - 1)];
	e->next = *slot;
	*slot = e;
	m->n++;
	return 0;
}

static void *sched_map_del(sched_map_t *m, const char *key)
{
	if (!m->nb)
		return NULL;
	sched_entry_t **slot = sched_map_slot(m, key), *e = *slot;
	if (!e)
		return NULL;
	void *val = e->val;
	*slot = e->next;
	free(e->key);
	free(e);
	m->n--;
	return val;
}

static void sched_map_free(sched_map_t *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->nb; i++) {
		for (sched_entry_t *e = m->b[i], *next; e; e = next) {
			next = e->next;
			if (free_val)
				free_val(e->val);
			free(e->key);
			free(e);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* ---- the cache: nodes, pods' accounting, owners, queues ------------------------------------ */

/* Pods of one controller owner per node slot, for the spread score. */
typedef struct sched_owner {
	char *uid;
	int32_t *counts;
	size_t n_counts;
	int refs; /* pod records naming this owner */
} sched_owner_t;

typedef struct sched_podrec {
	int32_t slot;        /* the node its requests count on, -1: none */
	int64_t cpu, mem;    /* what it counts there */
	sched_owner_t *owner;
	bool assumed;        /* counted on slot by us; the bind's event is not seen yet */
	bool queued;         /* in the active queue */
	bool unschedulable;  /* waiting in the unschedulable list */
	int backoff_ms;
	int64_t retry_at;    /* kc_mono_ms when it goes back to active */
} sched_podrec_t;

typedef struct sched_keylist {
	char **keys;
	size_t head, n, cap; /* ring buffer for the FIFO; plain array (head 0) otherwise */
} sched_keylist_t;

typedef struct sched_job {
	struct sched_job *next;
	char *key;
	json_t *pod;  /* the informer's object it was scheduled from (a reference) */
	char *node;   /* bind: the chosen node; NULL: write the unschedulable condition */
	char *message;
	int32_t slot;
} sched_job_t;

typedef struct sched {
	keel_t *k;
	bool verbose;
	int workers;
	int bind_delay_ms; /* KEEL_TEST_BIND_DELAY_MS: each bind waits this long first (tests) */
	kc_informer_t *nodes_inf, *pods_inf;

	pthread_mutex_t mu;
	pthread_cond_t active_cv, jobs_cv;
	bool stopping;
	sched_node_t *nodes;
	size_t n_nodes, cap_nodes;
	int32_t *scratch;
	sched_map_t node_slots; /* name -> slot + 1 */
	sched_map_t pods;       /* pod key -> sched_podrec_t */
	sched_map_t owners;     /* uid -> sched_owner_t */
	sched_keylist_t active;
	sched_keylist_t unsched;
	size_t rr;
	int64_t next_due;       /* kc_mono_ms when the unschedulable list is next due */
	sched_job_t *jobs_head, *jobs_tail;
	uint64_t bound, bind_failures, unschedulable; /* for the exit line */
} sched_t;

static void sched_log(const char *fmt, ...)
{
	char ts[32], line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	kc_time_now(ts);
	fprintf(stderr, "%s scheduler: %s\n", ts, line);
}

static int sched_keylist_push(sched_keylist_t *l, const char *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		char **keys = malloc(cap * sizeof(*keys));
		if (!keys)
			return -1;
		for (size_t i = 0; i < l->n; i++)
			keys[i] = l->keys[(l->head + i) % l->cap];
		free(l->keys);
		l->keys = keys;
		l->cap = cap;
		l->head = 0;
	}
	char *copy = strdup(key);
	if (!copy)
		return -1;
	l->keys[(l->head + l->n) % l->cap] = copy;
	l->n++;
	return 0;
}

static char *sched_keylist_pop(sched_keylist_t *l)
{
	if (!l->n)
		return NULL;
	char *key = l->keys[l->head];
	l->head = (l->head + 1) % l->cap;
	l->n--;
	return key;
}

static void sched_keylist_free(sched_keylist_t *l)
{
	char *key;
	while ((key = sched_keylist_pop(l)))
		free(key);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

/* The slot of a node name, made (not present) when the name is new: pods may name a node
 * before its object is seen. -1 when out of memory. */
static int32_t sched_slot_of(sched_t *s, const char *name)
{
	uintptr_t v = (uintptr_t)sched_map_get(&s->node_slots, name);
	if (v)
		return (int32_t)(v - 1);
	if (s->n_nodes == s->cap_nodes) {
		size_t cap = s->cap_nodes ? s->cap_nodes * 2 : 64;
		sched_node_t *nodes = realloc(s->nodes, cap * sizeof(*nodes));
		if (!nodes)
			return -1;
		s->nodes = nodes;
		int32_t *scratch = realloc(s->scratch, cap * sizeof(*scratch));
		if (!scratch)
			return -1;
		s->scratch = scratch;
		s->cap_nodes = cap;
	}
	sched_node_t *n = &s->nodes[s->n_nodes];
	memset(n, 0, sizeof(*n));
	if (!(n->name = strdup(name)))
		return -1;
	if (sched_map_put(&s->node_slots, name, (void *)(uintptr_t)(s->n_nodes + 1))) {
		free(n->name);
		n->name = NULL;
		return -1;
	}
	return (int32_t)s->n_nodes++;
}

static sched_owner_t *sched_owner_ref(sched_t *s, const json_t *pod)
{
	const char *uid = json_string_value(json_object_get(kc_controller_ref(pod), "uid"));
	if (!uid || !*uid)
		return NULL;
	sched_owner_t *o = sched_map_get(&s->owners, uid);
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o || !(o->uid = strdup(uid)) || sched_map_put(&s->owners, uid, o)) {
			if (o)
				free(o->uid);
			free(o);
			return NULL;
		}
	}
	o->refs++;
	return o;
}

static void sched_owner_unref(sched_t *s, sched_owner_t *o)
{
	if (!o || --o->refs > 0)
		return;
	sched_map_del(&s->owners, o->uid);
	free(o->uid);
	free(o->counts);
	free(o);
}

static void sched_owner_add(sched_owner_t *o, int32_t slot, int d)
{
	if (!o || slot < 0)
		return;
	if ((size_t)slot >= o->n_counts) {
		size_t n = (size_t)slot + 64;
		int32_t *c = realloc(o->counts, n * sizeof(*c));
		if (!c)
			return;
		memset(c + o->n_counts, 0, (n - o->n_counts) * sizeof(*c));
		o->counts = c;
		o->n_counts = n;
	}
	o->counts[slot] += d;
}

/* Moves a pod's requests onto slot (-1: off every node). */
static void sched_account(sched_t *s, sched_podrec_t *r, int32_t slot, int64_t cpu, int64_t mem)
{
	if (r->slot >= 0) {
		sched_node_t *n = &s->nodes[r->slot];
		n->req_cpu -= r->cpu;
		n->req_mem -= r->mem;
		n->pods--;
		sched_owner_add(r->owner, r->slot, -1);
	}
	r->slot = slot;
	r->cpu = cpu;
	r->mem = mem;
	if (slot >= 0) {
		sched_node_t *n = &s->nodes[slot];
		n->req_cpu += cpu;
		n->req_mem += mem;
		n->pods++;
		sched_owner_add(r->owner, slot, 1);
	}
}

static void sched_activate(sched_t *s, const char *key, sched_podrec_t *r)
{
	if (r->queued || r->unschedulable)
		return;
	if (!sched_keylist_push(&s->active, key)) {
		r->queued = true;
		pthread_cond_signal(&s->active_cv);
	}
}

/* A node appeared or changed, or a bound pod went away: every unschedulable pod may fit now. */
static void sched_flush_unschedulable(sched_t *s)
{
	char *key;
	while ((key = sched_keylist_pop(&s->unsched))) {
		sched_podrec_t *r = sched_map_get(&s->pods, key);
		if (r && r->unschedulable) {
			r->unschedulable = false;
			sched_activate(s, key, r);
		}
		free(key);
	}
}

/* Puts a pod that failed aside until its backoff (1 s doubling to 10 s) passes. */
static void sched_backoff(sched_t *s, const char *key, sched_podrec_t *r)
{
	r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : SCHED_BACKOFF_MIN_MS;
	if (r->backoff_ms > SCHED_BACKOFF_MAX_MS)
		r->backoff_ms = SCHED_BACKOFF_MAX_MS;
	r->retry_at = kc_mono_ms() + r->backoff_ms;
	if (!r->unschedulable && !r->queued && !sched_keylist_push(&s->unsched, key))
		r->unschedulable = true;
	if (r->retry_at < s->next_due) {
		s->next_due = r->retry_at;
		pthread_cond_signal(&s->active_cv);
	}
}

static bool sched_pod_wanted(const json_t *pod)
{
	const char *node = kc_path_str(pod, "spec.nodeName");
	const char *name = kc_path_str(pod, "spec.schedulerName");
	return (!node || !*node) && !kc_deleting(pod) && (!name || !strcmp(name, SCHED_NAME));
}

static bool sched_pod_terminal(const json_t *pod)
{
	const char *phase = kc_path_str(pod, "status.phase");
	return phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
}

static void sched_podrec_drop(sched_t *s, const char *key)
{
	sched_podrec_t *r = sched_map_del(&s->pods, key);
	if (!r)
		return;
	bool freed = r->slot >= 0;
	sched_account(s, r, -1, 0, 0);
	sched_owner_unref(s, r->owner);
	free(r);
	if (freed)
		sched_flush_unschedulable(s);
}

static void sched_on_pod(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			 const json_t *new_obj)
{
	sched_t *s = ud;
	(void)kind;
	pthread_mutex_lock(&s->mu);
	if (!new_obj) {
		sched_podrec_drop(s, key);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	sched_podrec_t *r = sched_map_get(&s->pods, key);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r || sched_map_put(&s->pods, key, r)) {
			free(r);
			pthread_mutex_unlock(&s->mu);
			return;
		}
		r->slot = -1;
		r->owner = sched_owner_ref(s, new_obj);
	}
	const char *node = kc_path_str(new_obj, "spec.nodeName");
	if (node && *node) {
		int32_t slot = sched_pod_terminal(new_obj) ? -1 : sched_slot_of(s, node);
		bool freed = r->slot >= 0 && slot < 0;
		int64_t cpu = 0, mem = 0;
		if (slot >= 0)
			sched_pod_requests(new_obj, &cpu, &mem);
		if (slot != r->slot || cpu != r->cpu || mem != r->mem)
			sched_account(s, r, slot, cpu, mem);
		r->assumed = false;
		r->unschedulable = false;
		r->backoff_ms = 0;
		if (freed)
			sched_flush_unschedulable(s);
	} else if (!r->assumed && sched_pod_wanted(new_obj)) {
		/* A changed spec (tolerations, selector, requests) is worth a try at once; our
		 * own condition writes change only the status and leave the backoff alone. */
		if (r->unschedulable && old_obj &&
		    !sched_json_same(json_object_get(old_obj, "spec"),
				     json_object_get(new_obj, "spec")))
			r->unschedulable = false;
		sched_activate(s, key, r);
	}
	pthread_mutex_unlock(&s->mu);
}

static void sched_on_node(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			  const json_t *new_obj)
{
	sched_t *s = ud;
	(void)kind;
	(void)key;
	pthread_mutex_lock(&s->mu);
	const json_t *obj = new_obj ? new_obj : old_obj;
	const char *name = kc_name(obj);
	int32_t slot = name ? sched_slot_of(s, name) : -1;
	if (slot >= 0) {
		sched_node_t *n = &s->nodes[slot];
		if (!new_obj) {
			n->present = false;
		} else if (sched_node_differs(n, new_obj)) {
			sched_node_set(n, new_obj);
			sched_flush_unschedulable(s);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* ---- scheduling: one thread, filter + score + assume --------------------------------------- */

static void sched_job_push(sched_t *s, sched_job_t *j)
{
	j->next = NULL;
	if (s->jobs_tail)
		s->jobs_tail->next = j;
	else
		s->jobs_head = j;
	s->jobs_tail = j;
	pthread_cond_signal(&s->jobs_cv);
}

static void sched_job_free(sched_job_t *j)
{
	if (!j)
		return;
	free(j->key);
	json_decref(j->pod);
	free(j->node);
	free(j->message);
	free(j);
}

/* Moves the pods whose backoff passed back to active; returns ms until the next one is due. */
static int sched_requeue_due(sched_t *s)
{
	int64_t now = kc_mono_ms();
	if (now < s->next_due)
		return (int)(s->next_due - now);
	int64_t next = now + 1000;
	size_t n = s->unsched.n;
	for (size_t i = 0; i < n; i++) {
		char *key = sched_keylist_pop(&s->unsched);
		sched_podrec_t *r = sched_map_get(&s->pods, key);
		if (r && r->unschedulable && r->retry_at <= now) {
			r->unschedulable = false;
			sched_activate(s, key, r);
		} else if (r && r->unschedulable) {
			if (r->retry_at < next)
				next = r->retry_at;
			if (sched_keylist_push(&s->unsched, key))
				r->unschedulable = false;
		}
		free(key);
	}
	s->next_due = next;
	return (int)(next - now);
}

static char *sched_next_key(sched_t *s)
{
	pthread_mutex_lock(&s->mu);
	char *key = NULL;
	while (!s->stopping) {
		int wait_ms = sched_requeue_due(s);
		if ((key = sched_keylist_pop(&s->active))) {
			sched_podrec_t *r = sched_map_get(&s->pods, key);
			if (r)
				r->queued = false;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->active_cv, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return key;
}

/* Whether the pod's PodScheduled condition already says this. */
static bool sched_condition_is(const json_t *pod, const char *status, const char *reason,
			       const char *message)
{
	size_t i;
	json_t *c;
	json_array_foreach(kc_path(pod, "status.conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		if (!type || strcmp(type, "PodScheduled"))
			continue;
		const char *st = json_string_value(json_object_get(c, "status"));
		const char *re = json_string_value(json_object_get(c, "reason"));
		const char *me = json_string_value(json_object_get(c, "message"));
		return st && !strcmp(st, status) && re && !strcmp(re, reason) && me &&
		       !strcmp(me, message);
	}
	return false;
}

static void sched_one(sched_t *s, char *key)
{
	json_t *pod = kc_informer_get(s->pods_inf, key);
	if (!pod || !sched_pod_wanted(pod)) {
		json_decref(pod);
		free(key);
		return;
	}
	sched_pod_t p = {
		.tolerations = kc_path(pod, "spec.tolerations"),
		.node_selector = kc_path(pod, "spec.nodeSelector"),
	};
	sched_pod_requests(pod, &p.cpu, &p.mem);
	sched_failures_t f = {0};
	sched_job_t *job = NULL;
	pthread_mutex_lock(&s->mu);
	sched_podrec_t *r = sched_map_get(&s->pods, key);
	if (!r || r->slot >= 0 || r->assumed || r->unschedulable) {
		pthread_mutex_unlock(&s->mu);
		json_decref(pod);
		free(key);
		return;
	}
	if (r->owner) {
		p.owner_counts = r->owner->counts;
		p.n_owner_counts = r->owner->n_counts;
	}
	int slot = sched_select(s->nodes, s->n_nodes, &p, s->rr, s->scratch, &f);
	job = calloc(1, sizeof(*job));
	if (job && slot >= 0 && (job->node = strdup(s->nodes[slot].name))) {
		s->rr++;
		sched_account(s, r, slot, p.cpu, p.mem);
		r->assumed = true;
		job->slot = slot;
	} else {
		sched_backoff(s, key, r);
		s->unschedulable++;
		if (job && slot < 0)
			job->message = sched_failures_message(&f);
	}
	if (job && (job->node || job->message)) {
		const char *reason = "Unschedulable";
		if (job->node || !sched_condition_is(pod, "False", reason, job->message)) {
			job->key = key;
			job->pod = pod;
			key = NULL;
			pod = NULL;
			sched_job_push(s, job);
			job = NULL;
		}
	}
	pthread_mutex_unlock(&s->mu);
	sched_failures_clear(&f);
	sched_job_free(job);
	json_decref(pod);
	free(key);
}

static void *sched_loop(void *arg)
{
	sched_t *s = arg;
	char *key;
	while ((key = sched_next_key(s)))
		sched_one(s, key);
	return NULL;
}

/* ---- binding: worker threads, one kc_update per pod ---------------------------------------- */

static int sched_set_bound(json_t *pod, const char *node)
{
	if (kc_path_set(pod, "spec.nodeName", json_string(node)))
		return -1;
	return kc_condition_set(pod, "PodScheduled", "True", NULL, NULL) < 0 ? -1 : 0;
}

static bool sched_is_stopping(sched_t *s)
{
	pthread_mutex_lock(&s->mu);
	bool stopping = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return stopping;
}

/* Writes the binding; on a conflict re-reads and retries while the pod is still unbound.
 * 0 bound, 1 nothing to do any more (gone, bound elsewhere, deleting), -1 failed. */
static int sched_bind(sched_t *s, sched_job_t *j, keel_error_t *err)
{
	json_t *pod = json_deep_copy(j->pod);
	const char *ns = kc_namespace(j->pod), *name = kc_name(j->pod);
	const char *uid = kc_uid(j->pod);
	for (int attempt = 0; attempt < SCHED_BIND_RETRIES; attempt++) {
		if (!pod || sched_set_bound(pod, j->node)) {
			json_decref(pod);
			return -1;
		}
		int rc = kc_update(s->k, pod, err);
		json_decref(pod);
		pod = NULL;
		if (rc == 0)
			return 0;
		if (rc != KEEL_CODE_ABORTED)
			return -1;
		if (sched_is_stopping(s)) /* no retry for a scheduler that stopped leading */
			return 1;
		rc = kc_get(s->k, KC_POD, ns, name, &pod, err);
		if (rc == KEEL_CODE_NOT_FOUND)
			return 1;
		if (rc)
			return -1;
		const char *now_uid = kc_uid(pod);
		if (!sched_pod_wanted(pod) || (uid && now_uid && strcmp(uid, now_uid))) {
			json_decref(pod);
			return 1;
		}
	}
	json_decref(pod);
	return -1;
}

typedef struct sched_cond_ud {
	const char *message;
	const char *uid;
} sched_cond_ud_t;

static int sched_cond_mutate(void *ud, json_t *obj, keel_error_t *err)
{
	sched_cond_ud_t *c = ud;
	(void)err;
	const char *uid = kc_uid(obj);
	if (!sched_pod_wanted(obj) || (c->uid && uid && strcmp(c->uid, uid)))
		return 1;
	int rc = kc_condition_set(obj, "PodScheduled", "False", "Unschedulable", c->message);
	return rc < 0 ? KEEL_CODE_INTERNAL : rc == 0 ? 1 : 0;
}

static void sched_forget(sched_t *s, sched_job_t *j, bool requeue)
{
	pthread_mutex_lock(&s->mu);
	sched_podrec_t *r = sched_map_get(&s->pods, j->key);
	if (r && r->assumed) {
		sched_account(s, r, -1, 0, 0);
		r->assumed = false;
		if (requeue)
			sched_backoff(s, j->key, r);
	}
	pthread_mutex_unlock(&s->mu);
}

static void sched_do_job(sched_t *s, sched_job_t *j)
{
	keel_error_t err = {0};
	const char *ns = kc_namespace(j->pod), *name = kc_name(j->pod);
	if (!j->node) {
		sched_cond_ud_t c = {.message = j->message, .uid = kc_uid(j->pod)};
		int rc = kc_modify(s->k, KC_POD, ns, name, sched_cond_mutate, &c, NULL, &err);
		if (rc && rc != KEEL_CODE_NOT_FOUND)
			sched_log("cannot mark %s/%s unschedulable: %s", ns, name, err.message);
		else if (s->verbose)
			sched_log("%s/%s is unschedulable: %s", ns, name, j->message);
		return;
	}
	if (s->bind_delay_ms > 0)
		usleep((useconds_t)s->bind_delay_ms * 1000);
	int rc = sched_bind(s, j, &err);
	pthread_mutex_lock(&s->mu);
	if (rc == 0)
		s->bound++;
	else if (rc < 0)
		s->bind_failures++;
	pthread_mutex_unlock(&s->mu);
	if (rc == 0) {
		if (s->verbose)
			sched_log("bound %s/%s to %s", ns, name, j->node);
		return;
	}
	/* A stored pod that fails validation (written past the API) cannot be bound however
	 * often it is tried: it waits for its next change (its update event activates it). */
	bool invalid = rc < 0 && err.code == KEEL_CODE_INVALID_ARGUMENT;
	if (rc < 0)
		sched_log("cannot bind %s/%s to %s: %s%s", ns, name, j->node, err.message,
			  invalid ? " (skipped until the pod changes)" : "");
	sched_forget(s, j, rc < 0 && !invalid);
}

static void *sched_binder(void *arg)
{
	sched_t *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->jobs_head && !s->stopping)
			pthread_cond_wait(&s->jobs_cv, &s->mu);
		/* Stopping (leadership lost, or exiting): the jobs left are dropped, not bound.
		 * Their pods stay pending for the next leader, whose cache cannot know what this
		 * one assumed: binding on would double-book nodes. sched_free frees them. */
		sched_job_t *j = s->jobs_head;
		if (!j || s->stopping)
			break;
		s->jobs_head = j->next;
		if (!s->jobs_head)
			s->jobs_tail = NULL;
		pthread_mutex_unlock(&s->mu);
		sched_do_job(s, j);
		sched_job_free(j);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void sched_free(sched_t *s)
{
	sched_job_t *j;
	while ((j = s->jobs_head)) {
		s->jobs_head = j->next;
		sched_job_free(j);
	}
	for (size_t i = 0; i < s->n_nodes; i++)
		sched_node_clear(&s->nodes[i]);
	free(s->nodes);
	free(s->scratch);
	sched_map_free(&s->node_slots, NULL);
	sched_map_free(&s->pods, free);
	/* owners are freed with their last pod record's reference; what remains is freed here */
	for (size_t i = 0; i < s->owners.nb; i++) {
		for (sched_entry_t *e = s->owners.b[i]; e; e = e->next) {
			sched_owner_t *o = e->val;
			free(o->uid);
			free(o->counts);
			free(o);
		}
	}
	sched_map_free(&s->owners, NULL);
	sched_keylist_free(&s->active);
	sched_keylist_free(&s->unsched);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->active_cv);
	pthread_cond_destroy(&s->jobs_cv);
}

/* Runs the informers and threads until *stop (0), a failure (1), a lost leadership
 * (SCHED_LOST_LEADERSHIP) or a store it could not watch (SCHED_WATCH_FAILED). */
static int sched_run(sched_t *s, volatile sig_atomic_t *stop, kc_leader_t *leader)
{
	keel_error_t err = {0};
	int rc = kc_informer_start(s->k, KC_NODE, NULL, sched_on_node, s, &s->nodes_inf, &err);
	if (!rc)
		rc = kc_informer_start(s->k, KC_POD, NULL, sched_on_pod, s, &s->pods_inf, &err);
	if (rc) {
		sched_log("cannot watch the cluster: %s", err.message);
		if (s->nodes_inf)
			kc_informer_stop(s->nodes_inf);
		return SCHED_WATCH_FAILED;
	}
	pthread_t loop, *binders = calloc((size_t)s->workers, sizeof(*binders));
	int n_binders = 0, status = 0;
	bool loop_started = binders && !pthread_create(&loop, NULL, sched_loop, s);
	for (int i = 0; loop_started && i < s->workers; i++) {
		if (pthread_create(&binders[i], NULL, sched_binder, s))
			break;
		n_binders++;
	}
	if (!loop_started || !n_binders) {
		sched_log("cannot start threads");
		status = 1;
	}
	if (!status)
		sched_log("scheduling (%d binders)", n_binders);
	while (!status && !*stop) {
		if (leader && kc_leader_lost(leader)) {
			sched_log("leader election lost: stopping, then campaigning again");
			status = SCHED_LOST_LEADERSHIP;
			break;
		}
		usleep(100 * 1000);
	}
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->active_cv);
	pthread_cond_broadcast(&s->jobs_cv);
	pthread_mutex_unlock(&s->mu);
	if (loop_started)
		pthread_join(loop, NULL);
	for (int i = 0; i < n_binders; i++)
		pthread_join(binders[i], NULL);
	free(binders);
	kc_informer_stop(s->pods_inf);
	kc_informer_stop(s->nodes_inf);
	sched_log("stopped: %llu pods bound, %llu failed binds, %llu unschedulable attempts",
		  (unsigned long long)s->bound, (unsigned long long)s->bind_failures,
		  (unsigned long long)s->unschedulable);
	return status;
}

static void sched_sleep_interruptible(volatile sig_atomic_t *stop, int ms)
{
	for (int t = 0; t < ms && !*stop; t += 100)
		usleep(100 * 1000);
}

int kc_scheduler_main(int argc, char **argv)
{
	sched_opts_t o;
	int prc = sched_opts_parse(argc, argv, &o);
	if (prc)
		return prc < 0 ? 2 : 0;
	volatile sig_atomic_t *stop = kc_signals_install();
	keel_t *k = NULL;
	keel_error_t err = {0};
	if (kc_connect(o.endpoints, &k, &err)) {
		sched_log("cannot connect: %s", err.message);
		return 1;
	}
	/* A replica that loses its leadership drops everything it knew and campaigns again, so a
	 * store that was away longer than the lease never leaves the cluster without a scheduler. */
	/* A failed campaign (the store unreachable) is retried the same way, as the controllers
	 * do: a standby must outlive a store outage. */
	const char *delay = getenv("KEEL_TEST_BIND_DELAY_MS");
	int bind_delay_ms = delay && atoi(delay) > 0 && atoi(delay) < 10000 ? atoi(delay) : 0;
	int status = 0;
	while (!*stop) {
		kc_leader_t *leader = NULL;
		if (o.leader_elect) {
			char id[256];
			kc_identity(id, sizeof(id));
			sched_log("waiting to lead as %s", id);
			memset(&err, 0, sizeof(err));
			int rc = kc_leader_acquire(k, "keel-scheduler", id, o.lease_duration, stop,
						   &leader, &err);
			if (rc == KEEL_CODE_CANCELLED || *stop)
				break;
			if (rc) {
				sched_log("leader election failed: %s; retrying", err.message);
				sched_sleep_interruptible(stop, 1000);
				continue;
			}
			sched_log("leading as %s", id);
		}
		sched_t s = {.k = k, .verbose = o.verbose, .workers = o.workers,
			     .bind_delay_ms = bind_delay_ms};
		pthread_mutex_init(&s.mu, NULL);
		pthread_cond_init(&s.active_cv, NULL);
		pthread_cond_init(&s.jobs_cv, NULL);
		status = sched_run(&s, stop, leader);
		sched_free(&s);
		if (leader)
			kc_leader_release(leader);
		if (status == SCHED_WATCH_FAILED)
			sched_sleep_interruptible(stop, 1000);
		else if (status != SCHED_LOST_LEADERSHIP)
			break;
		status = 0;
	}
	keel_close(k);
	return status;
}
