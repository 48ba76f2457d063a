/* bench/fsync_floor.c — the disk's own floor for a synced commit: COUNT appends of SIZE bytes
 * to a preallocated file with one fdatasync after each, timed one by one (ops/s, average,
 * p50, p99); with --jobs N, N threads do it at once on N files, as the members of a local
 * cluster do on one disk. Touches nothing but a scratch directory it creates and removes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A WAL-like record: an etcd put of an 8-byte key and a 256-byte value packed as an
 * InternalRaftRequest (~280 bytes), its raft entry header and frame, and the hard state
 * record a synced Ready carries with it. */
#define FLOOR_WAL_RECORD 320
#define FLOOR_MAX_SIZES 8
#define FLOOR_MAX_JOBS 16

typedef struct floor_opts {
	long count;
	const char *dir;
	size_t sizes[FLOOR_MAX_SIZES];
	int nsizes;
	int zeroed;
	int jobs;
} floor_opts_t;

/* One writer: its own file, its own latencies; rc and total_us are its results. */
typedef struct floor_job {
	const floor_opts_t *o;
	char path[4096 + 32];
	size_t size;
	double *lat;
	double total_us;
	int rc;
} floor_job_t;

static double floor_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int floor_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void floor_usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-n COUNT] [-s SIZE]... [-j JOBS] [--dir D] [--zeroed]\n"
		"  -n, --count N  synced appends per size and job (default 2000)\n"
		"  -j, --jobs N   writers at once, each on its own file (default 1)\n"
		"  -s, --size N   bytes per append; repeatable (default: 4096 and %d, a WAL record)\n"
		"      --dir D    parent of the scratch directory (default $TMPDIR or /tmp)\n"
		"      --zeroed   preallocate by writing zeros instead of posix_fallocate\n",
		prog, FLOOR_WAL_RECORD);
}

static int floor_parse_args(int argc, char **argv, floor_opts_t *o)
{
	static const struct option longs[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "zeroed", no_argument, NULL, 'z' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tmp = getenv("TMPDIR");
	*o = (floor_opts_t){ .count = 2000, .dir = tmp && *tmp ? tmp : "/tmp", .jobs = 1 };
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "n:s:j:h", longs, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->count = strtol(optarg, &end, 10);
			if (*end || o->count < 1 || o->count > 10000000)
				goto bad;
			break;
		case 's': {
			long s = strtol(optarg, &end, 10);
			if (*end || s < 1 || s > (1 << 24) || o->nsizes == FLOOR_MAX_SIZES)
				goto bad;
			o->sizes[o->nsizes++] = (size_t)s;
			break;
		}
		case 'j':
			o->jobs = (int)strtol(optarg, &end, 10);
			if (*end || o->jobs < 1 || o->jobs > FLOOR_MAX_JOBS)
				goto bad;
			break;
		case 'd': o->dir = optarg; break;
		case 'z': o->zeroed = 1; break;
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (!o->nsizes) {
		o->sizes[o->nsizes++] = 4096;
		o->sizes[o->nsizes++] = FLOOR_WAL_RECORD;
	}
	return 0;
bad:
	floor_usage(argv[0]);
	return -1;
}

/* As the WAL does (posix_fallocate), or with written zeros so no extent is left unwritten. */
static int floor_prealloc(int fd, off_t len, int zeroed)
{
	if (!zeroed) {
		int e = posix_fallocate(fd, 0, len);
		if (e)
			errno = e;
		return e ? -1 : fsync(fd);
	}
	static const char zeros[1 << 16];
	for (off_t off = 0; off < len; off += (off_t)sizeof(zeros)) {
		size_t n = len - off < (off_t)sizeof(zeros) ? (size_t)(len - off) : sizeof(zeros);
		if (pwrite(fd, zeros, n, off) != (ssize_t)n)
			return -1;
	}
	return fsync(fd);
}

static void *floor_job_run(void *arg)
{
	floor_job_t *j = arg;
	const floor_opts_t *o = j->o;
	int fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char *buf = malloc(j->size);
	j->rc = 1;
	if (fd < 0 || !buf) {
		fprintf(stderr, "fsync_floor: %s: %s\n", j->path, strerror(errno));
		goto out;
	}
	memset(buf, 'f', j->size);
	if (floor_prealloc(fd, (off_t)j->size * o->count, o->zeroed)) {
		fprintf(stderr, "fsync_floor: preallocate %s: %s\n", j->path, strerror(errno));
		goto out;
	}
	double t0 = floor_now_us();
	for (long i = 0; i < o->count; i++) {
		double t = floor_now_us();
		if (pwrite(fd, buf, j->size, (off_t)j->size * i) != (ssize_t)j->size ||
		    fdatasync(fd)) {
			fprintf(stderr, "fsync_floor: write %s: %s\n", j->path, strerror(errno));
			goto out;
		}
		j->lat[i] = floor_now_us() - t;
	}
	j->total_us = floor_now_us() - t0;
	j->rc = 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(j->path);
	free(buf);
	return NULL;
}

/* Runs o->jobs writers of SIZE-byte appends at once; prints one line for all of them. */
static int floor_run_size(const floor_opts_t *o, const char *dir, size_t size, double *lat)
{
	floor_job_t jobs[FLOOR_MAX_JOBS];
	pthread_t tids[FLOOR_MAX_JOBS];
	int started = 0, rc = 0;
	for (int i = 0; i < o->jobs; i++) {
		jobs[i] = (floor_job_t){ .o = o, .size = size, .lat = lat + (size_t)i * o->count };
		snprintf(jobs[i].path, sizeof(jobs[i].path), "%s/floor-%d.log", dir, i);
		if (pthread_create(&tids[i], NULL, floor_job_run, &jobs[i]) != 0) {
			fprintf(stderr, "fsync_floor: cannot start writer %d\n", i);
			rc = 1;
			break;
		}
		started++;
	}
	double total = 0, ops = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		rc |= jobs[i].rc;
		if (jobs[i].total_us > total)
			total = jobs[i].total_us;
	}
	if (rc)
		return 1;
	long n = o->count * o->jobs;
	for (long i = 0; i < n; i++)
		ops += lat[i];
	qsort(lat, (size_t)n, sizeof(*lat), floor_cmp_double);
	printf("fsync_floor size=%zu count=%ld jobs=%d prealloc=%s ops_per_s=%.0f avg_us=%.1f "
	       "p50_us=%.1f p99_us=%.1f\n",
	       size, o->count, o->jobs, o->zeroed ? "zeroed" : "fallocate", n * 1e6 / total,
	       ops / (double)n, lat[n / 2], lat[(n * 99) / 100]);
	return 0;
}

int main(int argc, char **argv)
{
	floor_opts_t o;
	if (floor_parse_args(argc, argv, &o))
		return 2;
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/keel-fsync-floor-XXXXXX", o.dir) >= (int)sizeof(dir))
		return 2;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "fsync_floor: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	double *lat = malloc(sizeof(*lat) * (size_t)o.count * (size_t)o.jobs);
	int rc = lat ? 0 : 1;
	for (int i = 0; i < o.nsizes && !rc; i++)
		rc = floor_run_size(&o, dir, o.sizes[i], lat);
	free(lat);
	rmdir(dir);
	return rc;
}
