/* bench/wal_bench.c — the durable log on the real disk: N entries of SIZE bytes appended
 * in raft_wal_save calls of BATCH entries, each call synced (one fdatasync), or with --raw
 * the same number of write(SIZE*BATCH)+fdatasync on a plain preallocated file, the floor
 * any log can reach. Works in a fresh directory it removes afterwards; prints one line. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raft.h"

typedef struct bench_opts {
	uint64_t n;
	uint64_t batch;
	uint64_t size;
	const char *dir;
	bool raw;
} bench_opts_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-n ENTRIES] [-b BATCH] [-s SIZE] [--dir D] [--raw]\n"
		"  -n, --entries N  entries to append (default 10000)\n"
		"  -b, --batch N    entries per raft_wal_save, each synced (default 1)\n"
		"  -s, --size N     bytes of data per entry (default 256)\n"
		"      --dir D      parent of the scratch directory (default /tmp)\n"
		"      --raw        write(SIZE*BATCH)+fdatasync on a plain file instead\n",
		prog);
}

static int parse_args(int argc, char **argv, bench_opts_t *o)
{
	static const struct option longs[] = {
		{ "entries", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (bench_opts_t){ .n = 10000, .batch = 1, .size = 256, .dir = "/tmp" };
	int c;
	while ((c = getopt_long(argc, argv, "n:b:s:h", longs, NULL)) != -1) {
		switch (c) {
		case 'n': o->n = strtoull(optarg, NULL, 0); break;
		case 'b': o->batch = strtoull(optarg, NULL, 0); break;
		case 's': o->size = strtoull(optarg, NULL, 0); break;
		case 'd': o->dir = optarg; break;
		case 'r': o->raw = true; break;
		default: usage(argv[0]); return -1;
		}
	}
	if (!o->n || !o->batch || o->batch > 1000000) {
		usage(argv[0]);
		return -1;
	}
	return 0;
}

static void report(const bench_opts_t *o, uint64_t saves, double secs)
{
	printf("wal_bench mode=%s entries=%llu batch=%llu size=%llu saves=%llu seconds=%.3f "
	       "entries_per_s=%.0f saves_per_s=%.1f us_per_save=%.1f MiB_per_s=%.2f\n",
	       o->raw ? "raw" : "wal", (unsigned long long)o->n, (unsigned long long)o->batch,
	       (unsigned long long)o->size, (unsigned long long)saves, secs, (double)o->n / secs,
	       (double)saves / secs, secs * 1e6 / (double)saves,
	       (double)(o->n * o->size) / secs / (1 << 20));
}

static int run_raw(const bench_opts_t *o, const char *dir)
{
	char path[4096 + 16];
	snprintf(path, sizeof(path), "%s/raw.log", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	size_t len = o->batch * o->size;
	char *buf = malloc(len ? len : 1);
	if (fd < 0 || !buf) {
		fprintf(stderr, "wal_bench: %s: %s\n", path, strerror(errno));
		free(buf);
		return 1;
	}
	memset(buf, 'r', len);
	posix_fallocate(fd, 0, (off_t)(o->n * o->size)); /* as the WAL preallocates */
	fdatasync(fd);
	uint64_t saves = 0, off = 0;
	double t0 = now_s();
	for (uint64_t done = 0; done < o->n; done += o->batch, saves++) {
		size_t n = (size_t)((o->n - done < o->batch ? o->n - done : o->batch) * o->size);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n || fdatasync(fd)) {
			fprintf(stderr, "wal_bench: write %s: %s\n", path, strerror(errno));
			break;
		}
		off += n;
	}
	report(o, saves, now_s() - t0);
	close(fd);
	free(buf);
	return 0;
}

/* Opening again replays every segment into memory: the restart cost of this log. */
static int wal_reopen(const bench_opts_t *o, const char *dir)
{
	raft_wal_t *w;
	char err[1024];
	double t0 = now_s();
	int rc = raft_wal_open(dir, NULL, &w, err, sizeof(err));
	double secs = now_s() - t0;
	if (rc) {
		fprintf(stderr, "wal_bench: reopen: %s\n", err);
		return 1;
	}
	uint64_t last = 0;
	raft_storage_t st = raft_wal_storage(w);
	st.ops->last_index(st.ctx, &last);
	raft_wal_close(w);
	if (last != o->n) {
		fprintf(stderr, "wal_bench: reopened with %llu entries, want %llu\n",
			(unsigned long long)last, (unsigned long long)o->n);
		return 1;
	}
	printf("wal_bench reopen entries=%llu ms=%.1f\n", (unsigned long long)last, secs * 1e3);
	return 0;
}

static int run_wal(const bench_opts_t *o, const char *dir)
{
	raft_wal_t *w;
	char err[1024];
	int rc = raft_wal_open(dir, NULL, &w, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "wal_bench: %s\n", err);
		return 1;
	}
	raft_entry_t **ents = calloc(o->batch, sizeof(*ents));
	char *data = malloc(o->size ? o->size : 1);
	memset(data, 'w', o->size);
	for (uint64_t i = 0; i < o->batch; i++)
		ents[i] = raft_entry_new(1, 0, RAFT_ENTRY_NORMAL, data, o->size);
	raft_hard_state_t hs = { .term = 1, .vote = 1 };
	uint64_t saves = 0;
	double t0 = now_s();
	for (uint64_t done = 0; done < o->n; done += o->batch, saves++) {
		size_t n = (size_t)(o->n - done < o->batch ? o->n - done : o->batch);
		for (size_t i = 0; i < n; i++)
			ents[i]->index = done + 1 + i;
		hs.commit = done; /* like a Ready: the commit index moves with the log */
		if ((rc = raft_wal_save(w, &hs, ents, n, true))) {
			fprintf(stderr, "wal_bench: %s\n", raft_wal_error(w));
			break;
		}
	}
	report(o, saves, now_s() - t0);
	for (uint64_t i = 0; i < o->batch; i++)
		raft_entry_free(ents[i]);
	free(ents);
	free(data);
	raft_wal_close(w);
	return rc ? 1 : wal_reopen(o, dir);
}

int main(int argc, char **argv)
{
	bench_opts_t o;
	if (parse_args(argc, argv, &o))
		return 2;
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/keel-wal-bench-XXXXXX", o.dir) >= (int)sizeof(dir))
		return 2;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "wal_bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int rc = o.raw ? run_raw(&o, dir) : run_wal(&o, dir);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
