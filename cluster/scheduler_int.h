/* cluster/scheduler_int.h — the scheduler's pure decisions: a node's schedulable numbers, the
 * filters, the scores, the choice among nodes and kube-scheduler's "0/N nodes are available"
 * text. Private to scheduler.c and its tests; nothing here touches the store or a lock. */
#ifndef KEEL_SCHEDULER_INT_H
#define KEEL_SCHEDULER_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* keel scheduler's flags. */
typedef struct sched_opts {
	const char *endpoints;       /* NULL: KEEL_ENDPOINTS, else 127.0.0.1:2379 */
	bool leader_elect;           /* default true */
	int lease_duration;          /* seconds, default 15 */
	int workers;                 /* binder threads, default 8 */
	bool verbose;
} sched_opts_t;

/* Fills o with the defaults, then the flags: --flag value and --flag=value, booleans also
 * bare, -v/--verbose/-v=N. A leading "scheduler" (the command's name, for callers that pass it
 * as main gets its program name) is skipped. 0, 1 after --help (usage printed), -1 with a
 * message on stderr. */
int sched_opts_parse(int argc, char **argv, sched_opts_t *o);

/* Why a node cannot take a pod; a node may fail for several resources at once. */
enum {
	SCHED_FAIL_UNSCHEDULABLE = 1u << 0, /* node(s) were unschedulable */
	SCHED_FAIL_TAINT = 1u << 1,         /* node(s) had untolerated taint {key: value} */
	SCHED_FAIL_NOT_READY = 1u << 2,     /* node(s) were not ready */
	SCHED_FAIL_SELECTOR = 1u << 3,      /* node(s) didn't match Pod's node affinity/selector */
	SCHED_FAIL_CPU = 1u << 4,           /* Insufficient cpu */
	SCHED_FAIL_MEMORY = 1u << 5,        /* Insufficient memory */
	SCHED_FAIL_PODS = 1u << 6,          /* Too many pods */
};

/* What scheduling needs of one node, kept current from node and pod events so that a pod's
 * filter and score over every node reads only these numbers. */
typedef struct sched_node {
	char *name;
	bool present;       /* the Node object exists (a slot may outlive it for its pods' sake) */
	bool ready;
	bool unschedulable; /* spec.unschedulable */
	json_t *taints;     /* own copy of the NoSchedule/NoExecute taints, or NULL */
	json_t *labels;     /* own copy of metadata.labels, or NULL */
	int64_t alloc_cpu;  /* millicores */
	int64_t alloc_mem;  /* bytes */
	int64_t alloc_pods;
	int64_t req_cpu;    /* summed over the non-terminal pods bound or assumed here */
	int64_t req_mem;
	int64_t pods;
} sched_node_t;

/* One pod being scheduled; the json parts are borrowed from the pod object. */
typedef struct sched_pod {
	int64_t cpu, mem;
	const json_t *tolerations;   /* spec.tolerations or NULL */
	const json_t *node_selector; /* spec.nodeSelector or NULL */
	const int32_t *owner_counts; /* by node slot: pods of the same controller owner, or NULL */
	size_t n_owner_counts;
} sched_pod_t;

/* Failures of one attempt, tallied by reason for the unschedulable message. */
typedef struct sched_taint_tally {
	char *text; /* "node(s) had untolerated taint {k: v}" */
	int count;
} sched_taint_tally_t;

typedef struct sched_failures {
	int n_nodes; /* nodes considered */
	int by_reason[7];
	sched_taint_tally_t *taints;
	size_t n_taints;
} sched_failures_t;

/* Fills a node's name, readiness, flags, taints, labels and allocatable from a Node object
 * (the requested sums are left alone). Frees what n held before. */
void sched_node_set(sched_node_t *n, const json_t *node);
/* Whether the node's scheduling-relevant fields differ from the Node object's. */
bool sched_node_differs(const sched_node_t *n, const json_t *node);
void sched_node_clear(sched_node_t *n);

/* 0 when the pod fits the node, else SCHED_FAIL_* bits of kube-scheduler's first failing
 * plugin (unschedulable, taints, readiness, node selector, resources). *taint (may be NULL)
 * gets the untolerated taint when SCHED_FAIL_TAINT. */
unsigned sched_filter(const sched_node_t *n, const sched_pod_t *p, const json_t **taint);

/* Higher is better: least requested (0..100, the average free fraction of cpu and memory
 * after placing the pod) plus twice the spread score (100 when the node has the fewest pods
 * of the pod's owner among feasible nodes, down to 0 at owner_max). */
int64_t sched_score(const sched_node_t *n, const sched_pod_t *p, int32_t owner_count,
		    int32_t owner_max);

/* Picks a node slot for the pod among nodes[0..n) (slots not present are skipped); ties go to
 * the first best node at or after slot rr % n, so equal nodes take turns. scratch holds n
 * ints. Returns -1 when none fits, with f (may be NULL) filled; release f with
 * sched_failures_clear. */
int sched_select(const sched_node_t *nodes, size_t n, const sched_pod_t *p, size_t rr,
		 int32_t *scratch, sched_failures_t *f);
/* Records one node's failure. */
void sched_failures_add(sched_failures_t *f, unsigned reasons, const json_t *taint);
void sched_failures_clear(sched_failures_t *f);
/* kube-scheduler's text (malloc'ed): "0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
 * didn't match Pod's node affinity/selector." — entries "<count> <reason>" sorted as strings. */
char *sched_failures_message(const sched_failures_t *f);

#endif
