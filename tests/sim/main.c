/* tests/sim/main.c — keel-sim's command line: runs one seed or a range of seeds for a
 * cluster size, or the demo, and on a failure prints the seed, the broken invariant, the
 * last events and the one command that replays it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

typedef struct sim_opts {
	int nodes;
	uint64_t first, last;   /* seeds */
	int verbose;
	bool demo, keep_going, stats, disk;
	uint64_t ticks;         /* override of the fault phase length; 0: per seed */
	const char *argv0;
} sim_opts_t;

typedef struct sim_totals {
	uint64_t seeds, failed, ticks, elections, acked, served, crashes, snaps, confs, msgs;
	uint64_t heal_max, heal_max_seed;
} sim_totals_t;

static void sim_usage(FILE *out)
{
	fprintf(out,
		"usage: keel-sim [--nodes 3|5|7] [--seed S | --seeds A-B] [--ticks T] [-v|-vv|-vvv]\n"
		"                [--keep-going] [--stats] [--disk]\n"
		"       keel-sim --demo [--seed S] [--disk] [-vv]\n"
		"Runs Keel's raft core in a deterministic simulated cluster with faults and checks\n"
		"Raft's safety properties after every step. A seed fully determines a run.\n"
		"  --nodes N     initial voters (default 3)\n"
		"  --seed S      run one seed (default 1)\n"
		"  --seeds A-B   run seeds A..B, stop at the first failure\n"
		"  --ticks T     ticks of faults before healing (default: chosen by the seed)\n"
		"  -v            print the story: elections, commits, faults, membership\n"
		"  -vv, -vvv     also client operations and applies; also every message\n"
		"  --keep-going  with --seeds: count failures instead of stopping\n"
		"  --stats       print totals at the end\n"
		"  --disk        every node persists through the real WAL and kvstore in a\n"
		"                temporary directory ($TMPDIR or /tmp); crashes cut the WAL\n"
		"                after its last sync, and members must end with equal HashKV\n"
		"  --demo        a scripted, narrated story of a 3-node cluster\n");
}

static bool sim_parse_u64(const char *s, uint64_t *v)
{
	char *end;
	if (!s || !*s)
		return false;
	*v = strtoull(s, &end, 10);
	return *end == '\0';
}

static bool sim_parse(int argc, char **argv, sim_opts_t *o)
{
	*o = (sim_opts_t){.nodes = 3, .first = 1, .last = 1, .argv0 = argv[0]};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t v;
		if (!strcmp(a, "--nodes") && sim_parse_u64(next, &v) && v >= 1 && v <= 9) {
			o->nodes = (int)v, i++;
		} else if (!strcmp(a, "--seed") && sim_parse_u64(next, &v)) {
			o->first = o->last = v, i++;
		} else if (!strcmp(a, "--seeds") && next) {
			char buf[64], *dash;
			snprintf(buf, sizeof(buf), "%s", next);
			if (!(dash = strchr(buf, '-')))
				return false;
			*dash = '\0';
			if (!sim_parse_u64(buf, &o->first) || !sim_parse_u64(dash + 1, &o->last) ||
			    o->last < o->first)
				return false;
			i++;
		} else if (!strcmp(a, "--ticks") && sim_parse_u64(next, &v) && v > 0) {
			o->ticks = v, i++;
		} else if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
			o->verbose = (int)strlen(a + 1);
		} else if (!strcmp(a, "--demo")) {
			o->demo = true;
		} else if (!strcmp(a, "--keep-going")) {
			o->keep_going = true;
		} else if (!strcmp(a, "--disk")) {
			o->disk = true;
		} else if (!strcmp(a, "--stats")) {
			o->stats = true;
		} else {
			return false;
		}
	}
	return true;
}

static void sim_report_failure(const sim_opts_t *o, sim_cluster_t *c)
{
	printf("\nkeel-sim: FAILED: seed %llu, %d nodes, at tick %llu\n",
	       (unsigned long long)c->p.seed, c->p.nodes, (unsigned long long)c->tick);
	printf("  invariant: %s\n  what:      %s\n  config:    ", c->chk.invariant, c->chk.detail);
	sim_params_print(&c->p, stdout);
	printf("  the story so far (last 25 cluster events):\n");
	sim_trace_dump(&c->trace, stdout, 25, 1);
	printf("  last 30 events, messages included:\n");
	sim_trace_dump(&c->trace, stdout, 30, 3);
	printf("  replay: %s --nodes %d --seed %llu%s", o->argv0, c->p.nodes,
	       (unsigned long long)c->p.seed, o->disk ? " --disk" : "");
	if (o->ticks)
		printf(" --ticks %llu", (unsigned long long)o->ticks);
	printf(" -v\n");
	fflush(stdout);
}

/* A fresh directory for one run's disks ($TMPDIR or /tmp); the run removes what it made. */
static const char *sim_tmpdir(char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, len, "%s/keel-sim-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("keel-sim: mkdtemp");
		exit(2);
	}
	return dir;
}

static bool sim_run_seed(const sim_opts_t *o, uint64_t seed, sim_totals_t *tot)
{
	sim_params_t p;
	sim_params_from_seed(&p, seed, o->nodes);
	if (o->ticks)
		p.chaos_ticks = o->ticks;
	char dir[512] = "";
	if (o->disk)
		p.disk_dir = sim_tmpdir(dir, sizeof(dir));
	if (o->verbose)
		sim_params_print(&p, stdout);
	sim_cluster_t *c = sim_cluster_new(&p, o->verbose, stdout);
	bool ok = sim_cluster_run(c);
	if (!ok)
		sim_report_failure(o, c);
	else if (o->verbose)
		printf("seed %llu: ok after %llu ticks: %llu leaders elected, %llu writes "
		       "acknowledged, %llu reads served, %llu crashes, %llu snapshots sent\n",
		       (unsigned long long)seed, (unsigned long long)c->tick,
		       (unsigned long long)c->elections, (unsigned long long)c->cl.acked,
		       (unsigned long long)c->cl.served, (unsigned long long)c->crashes,
		       (unsigned long long)c->snapshots_sent);
	tot->seeds++;
	tot->failed += !ok;
	tot->ticks += c->tick;
	tot->elections += c->elections;
	tot->acked += c->cl.acked;
	tot->served += c->cl.served;
	tot->crashes += c->crashes;
	tot->snaps += c->snapshots_sent;
	tot->confs += c->conf_changes;
	tot->msgs += c->net.sent;
	if (c->heal_took > tot->heal_max)
		tot->heal_max = c->heal_took, tot->heal_max_seed = seed;
	sim_cluster_free(c);
	if (o->disk && rmdir(dir) != 0)
		fprintf(stderr, "keel-sim: %s is not empty after the run\n", dir);
	return ok;
}

int main(int argc, char **argv)
{
	sim_opts_t o;
	if (!sim_parse(argc, argv, &o)) {
		sim_usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.demo) {
		char dir[512];
		int rc = sim_demo_run(o.first, o.verbose, stdout,
				      o.disk ? sim_tmpdir(dir, sizeof(dir)) : NULL);
		if (o.disk && rmdir(dir) != 0)
			fprintf(stderr, "keel-sim: %s is not empty after the run\n", dir);
		return rc;
	}
	sim_totals_t tot = {0};
	clock_t t0 = clock();
	for (uint64_t seed = o.first; seed <= o.last; seed++) {
		if (!sim_run_seed(&o, seed, &tot) && !o.keep_going)
			break;
		if (seed == UINT64_MAX)
			break;
	}
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("keel-sim: %d nodes, seeds %llu-%llu: %llu run, %llu failed (%.1f s CPU)\n",
	       o.nodes, (unsigned long long)o.first, (unsigned long long)o.last,
	       (unsigned long long)tot.seeds, (unsigned long long)tot.failed, secs);
	if (o.stats)
		printf("  %llu ticks, %llu messages, %llu leaders elected, %llu writes acknowledged, "
		       "%llu reads served, %llu crashes, %llu snapshots sent, %llu conf changes "
		       "proposed; slowest convergence %llu ticks (seed %llu)\n",
		       (unsigned long long)tot.ticks, (unsigned long long)tot.msgs,
		       (unsigned long long)tot.elections, (unsigned long long)tot.acked,
		       (unsigned long long)tot.served, (unsigned long long)tot.crashes,
		       (unsigned long long)tot.snaps, (unsigned long long)tot.confs,
		       (unsigned long long)tot.heal_max, (unsigned long long)tot.heal_max_seed);
	return tot.failed ? 1 : 0;
}
