/* bench/raft_bench.c — throughput of the consensus core alone: 3 nodes in one process on
 * memstorage, messages handed between nodes by pointer (no serialization), no I/O, one
 * core. Prints committed entries per second and microseconds per committed entry. */

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "raft.h"

#define BENCH_NODES 3
#define BENCH_STALL_ROUNDS 10000 /* rounds without progress before giving up */

struct bench_opts {
	uint64_t entries;       /* entries to commit in the measured run */
	uint64_t batch;         /* proposals handed to the leader per round */
	uint64_t entry_size;    /* bytes of data per entry (>= 8: a sequence number) */
	uint64_t compact_every; /* compact a node's storage every this many entries; 0: never */
	uint64_t seed;
	bool quiet;
};

struct bench_node {
	uint64_t id;
	raft_memstorage_t *ms;
	raft_node_t *node;
	uint64_t applied;       /* last raft index applied */
	uint64_t applied_seq;   /* benchmark entries applied, checked to arrive in order */
	uint64_t compacted;     /* index of the last storage compaction */
};

struct bench {
	struct bench_opts o;
	struct bench_node nodes[BENCH_NODES];
	raft_msg_t **queue;     /* messages sent this round, delivered at its end */
	size_t n_queue, cap_queue;
	uint64_t msgs;          /* messages delivered in the measured run */
	uint64_t rounds;
	uint64_t keep;          /* entries kept behind applied when compacting */
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "raft_bench: %s: %s\n", what, raft_strerror(rc));
	exit(1);
}

static void queue_push(struct bench *b, raft_msg_t *m)
{
	if (b->n_queue == b->cap_queue) {
		size_t cap = b->cap_queue ? 2 * b->cap_queue : 1024;
		raft_msg_t **q = realloc(b->queue, cap * sizeof(*q));
		if (!q)
			die("queue", RAFT_ERR_NOMEM);
		b->queue = q;
		b->cap_queue = cap;
	}
	b->queue[b->n_queue++] = m;
}

/* Snapshot (empty data) and compaction well behind applied, as a server would, so the
 * run measures a steady state rather than an ever-growing log. */
static void bench_compact(struct bench *b, struct bench_node *bn)
{
	if (!b->o.compact_every || bn->applied < bn->compacted + b->o.compact_every + b->keep)
		return;
	uint64_t index = bn->applied - b->keep;
	raft_conf_t conf;
	raft_applied_conf(bn->node, &conf);
	int rc = raft_memstorage_create_snapshot(bn->ms, index, &conf, NULL, 0);
	if (rc)
		die("create_snapshot", rc);
	rc = raft_memstorage_compact(bn->ms, index);
	if (rc)
		die("compact", rc);
	bn->compacted = index;
}

/* One Ready of one node, handled in the order of the contract in raft.h. */
static void bench_handle_ready(struct bench *b, struct bench_node *bn)
{
	raft_ready_t rd;
	int rc = raft_ready(bn->node, &rd);
	if (rc)
		die("raft_ready", rc);

	/* 1. persist */
	if (rd.snapshot) {
		/* Only a node left behind a compaction gets one; the run's checks of the
		 * applied sequence cannot continue across it. */
		fprintf(stderr, "raft_bench: node %" PRIu64 " got a snapshot at %" PRIu64
			"; use a larger --compact-every\n", bn->id, rd.snapshot->metadata->index);
		exit(1);
	}
	if (rd.n_entries) {
		rc = raft_memstorage_append(bn->ms, rd.entries, rd.n_entries);
		if (rc)
			die("memstorage_append", rc);
	}
	if (rd.hard_state_changed) {
		rc = raft_memstorage_set_hard_state(bn->ms, &rd.hard_state);
		if (rc)
			die("memstorage_set_hard_state", rc);
	}
	/* 2. send */
	for (size_t i = 0; i < rd.n_msgs; i++)
		queue_push(b, rd.msgs[i]);
	/* 3. apply */
	for (size_t i = 0; i < rd.n_committed; i++) {
		const raft_entry_t *e = rd.committed[i];
		if (e->index != bn->applied + 1) {
			fprintf(stderr, "raft_bench: node %" PRIu64 " applies index %" PRIu64
				" after %" PRIu64 "\n", bn->id, e->index, bn->applied);
			exit(1);
		}
		bn->applied = e->index;
		if (e->type != RAFT_ENTRY_NORMAL || e->data.len == 0)
			continue; /* bootstrap conf changes, a new leader's empty entry */
		uint64_t seq = 0;
		if (e->data.len == b->o.entry_size)
			memcpy(&seq, e->data.data, sizeof(seq));
		if (seq != bn->applied_seq + 1) {
			fprintf(stderr, "raft_bench: node %" PRIu64 " index %" PRIu64
				": unexpected entry (%zu bytes) after sequence %" PRIu64 "\n",
				bn->id, e->index, e->data.len, bn->applied_seq);
			exit(1);
		}
		bn->applied_seq = seq;
	}
	/* 5. advance */
	raft_advance(bn->node, &rd);
	bench_compact(b, bn);
}

/* One round: every node with something ready handles it, then every message sent in the
 * round is delivered. Returns the number of messages delivered. */
static size_t bench_round(struct bench *b)
{
	for (int i = 0; i < BENCH_NODES; i++)
		if (raft_has_ready(b->nodes[i].node))
			bench_handle_ready(b, &b->nodes[i]);
	size_t n = b->n_queue;
	for (size_t i = 0; i < n; i++) {
		raft_msg_t *m = b->queue[i];
		if (m->to >= 1 && m->to <= BENCH_NODES) {
			int rc = raft_step(b->nodes[m->to - 1].node, m);
			if (rc && rc != RAFT_ERR_STEP_PEER_NOT_FOUND)
				die("raft_step", rc);
		}
		raft_msg_free(m);
	}
	b->n_queue = 0;
	b->rounds++;
	return n;
}

static void bench_report_stall(struct bench *b, const char *phase)
{
	fprintf(stderr, "raft_bench: no progress for %d rounds (%s)\n", BENCH_STALL_ROUNDS,
		phase);
	for (int i = 0; i < BENCH_NODES; i++) {
		raft_status_t st;
		raft_status(b->nodes[i].node, &st);
		fprintf(stderr, "  node %" PRIu64 ": %s term %" PRIu64 " lead %" PRIu64
			" commit %" PRIu64 " applied %" PRIu64 " last %" PRIu64 " seq %" PRIu64 "\n",
			st.id, raft_state_name(st.state), st.term, st.lead, st.commit, st.applied,
			st.last_index, b->nodes[i].applied_seq);
	}
	exit(1);
}

static void bench_init(struct bench *b)
{
	static const uint64_t peers[BENCH_NODES] = {1, 2, 3};
	for (int i = 0; i < BENCH_NODES; i++) {
		struct bench_node *bn = &b->nodes[i];
		bn->id = peers[i];
		bn->ms = raft_memstorage_new();
		if (!bn->ms)
			die("memstorage_new", RAFT_ERR_NOMEM);
		raft_config_t cfg;
		raft_config_default(&cfg, bn->id, raft_memstorage_storage(bn->ms));
		cfg.peers = peers;
		cfg.n_peers = BENCH_NODES;
		cfg.seed = b->o.seed + bn->id;
		int rc = raft_node_new(&cfg, &bn->node);
		if (rc)
			die("raft_node_new", rc);
	}
}

/* Node 1 campaigns; no ticks are ever given, so nobody else will. Returns once it leads
 * and every node has applied everything in its log so far. */
static void bench_elect(struct bench *b)
{
	int rc = raft_campaign(b->nodes[0].node);
	if (rc)
		die("raft_campaign", rc);
	for (uint64_t idle = 0;; idle++) {
		bench_round(b);
		raft_status_t st;
		raft_status(b->nodes[0].node, &st);
		bool done = st.state == RAFT_LEADER;
		for (int i = 0; i < BENCH_NODES && done; i++)
			done = b->nodes[i].applied == st.last_index &&
			       !raft_has_ready(b->nodes[i].node);
		if (done)
			return;
		if (idle > BENCH_STALL_ROUNDS)
			bench_report_stall(b, "electing node 1");
	}
}

static uint64_t bench_min_seq(const struct bench *b)
{
	uint64_t min = UINT64_MAX;
	for (int i = 0; i < BENCH_NODES; i++)
		if (b->nodes[i].applied_seq < min)
			min = b->nodes[i].applied_seq;
	return min;
}

static double bench_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: raft_bench [options]\n"
		"  -n, --entries N        entries to commit (default 1000000)\n"
		"  -b, --batch N          proposals to the leader per round (default 256)\n"
		"  -s, --entry-size N     bytes per entry, at least 8 (default 128)\n"
		"  -c, --compact-every N  snapshot+compact storage every N entries, 0: never\n"
		"                         (default 65536)\n"
		"      --seed N           PRNG seed of the nodes (default 1)\n"
		"  -q, --quiet            print one line\n");
}

static uint64_t parse_u64(const char *s, const char *name)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0') {
		fprintf(stderr, "raft_bench: %s wants a number, got '%s'\n", name, s);
		exit(2);
	}
	return (uint64_t)v;
}

static void parse_opts(struct bench_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"entries", required_argument, NULL, 'n'},
		{"batch", required_argument, NULL, 'b'},
		{"entry-size", required_argument, NULL, 's'},
		{"compact-every", required_argument, NULL, 'c'},
		{"seed", required_argument, NULL, 'S'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct bench_opts){.entries = 1000000, .batch = 256, .entry_size = 128,
				 .compact_every = 65536, .seed = 1};
	int c;
	while ((c = getopt_long(argc, argv, "n:b:s:c:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': o->entries = parse_u64(optarg, "--entries"); break;
		case 'b': o->batch = parse_u64(optarg, "--batch"); break;
		case 's': o->entry_size = parse_u64(optarg, "--entry-size"); break;
		case 'c': o->compact_every = parse_u64(optarg, "--compact-every"); break;
		case 'S': o->seed = parse_u64(optarg, "--seed"); break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	const char *bad = optind != argc ? "unexpected argument"
			: o->entries == 0 ? "--entries must be at least 1"
			: o->batch == 0 ? "--batch must be at least 1"
			: o->entry_size < 8 || o->entry_size > (64u << 20)
				? "--entry-size must be 8 bytes to 64 MiB" : NULL;
	if (bad) {
		fprintf(stderr, "raft_bench: %s\n", bad);
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct bench b = {0};
	parse_opts(&b.o, argc, argv);
	/* Keep well more than the entries in flight (a few rounds of batches) when
	 * compacting, so no follower ever needs a snapshot. */
	b.keep = 16 * b.o.batch > 10000 ? 16 * b.o.batch : 10000;

	bench_init(&b);
	bench_elect(&b);

	unsigned char *buf = calloc(1, b.o.entry_size);
	if (!buf)
		die("buffer", RAFT_ERR_NOMEM);
	memset(buf, 0xab, b.o.entry_size);

	uint64_t proposed = 0, last_min = 0, idle = 0;
	uint64_t rounds0 = b.rounds;
	raft_node_t *leader = b.nodes[0].node;
	double wall0 = bench_seconds(CLOCK_MONOTONIC);
	double cpu0 = bench_seconds(CLOCK_PROCESS_CPUTIME_ID);
	for (;;) {
		uint64_t min = bench_min_seq(&b);
		if (min >= b.o.entries)
			break;
		for (uint64_t i = 0; i < b.o.batch && proposed < b.o.entries; i++) {
			uint64_t seq = ++proposed;
			memcpy(buf, &seq, sizeof(seq));
			int rc = raft_propose(leader, buf, b.o.entry_size);
			if (rc)
				die("raft_propose", rc);
		}
		b.msgs += bench_round(&b);
		idle = min == last_min ? idle + 1 : 0;
		last_min = min;
		if (idle > BENCH_STALL_ROUNDS)
			bench_report_stall(&b, "replicating");
	}
	double wall = bench_seconds(CLOCK_MONOTONIC) - wall0;
	double cpu = bench_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double n = (double)b.o.entries;
	if (b.o.quiet) {
		printf("raft_bench: entries %" PRIu64 " batch %" PRIu64 " size %" PRIu64
		       ": %.0f entries/s, %.3f us/entry\n", b.o.entries, b.o.batch,
		       b.o.entry_size, n / wall, wall * 1e6 / n);
	} else {
		printf("raft_bench: %d nodes in one process, memstorage, no I/O, one core\n"
		       "  entries %" PRIu64 " x %" PRIu64 " B, batch %" PRIu64
		       " per round, compact every %" PRIu64 "\n"
		       "  committed and applied on all %d nodes in %.3f s wall, %.3f s cpu, "
		       "%" PRIu64 " rounds\n"
		       "  %.0f entries/s, %.3f us/entry, %.2f msgs/entry, max rss %ld MiB\n",
		       BENCH_NODES, b.o.entries, b.o.entry_size, b.o.batch, b.o.compact_every,
		       BENCH_NODES, wall, cpu, b.rounds - rounds0, n / wall, wall * 1e6 / n,
		       (double)b.msgs / n, ru.ru_maxrss / 1024);
	}

	for (int i = 0; i < BENCH_NODES; i++) {
		raft_node_free(b.nodes[i].node);
		raft_memstorage_free(b.nodes[i].ms);
	}
	free(b.queue);
	free(buf);
	return 0;
}
