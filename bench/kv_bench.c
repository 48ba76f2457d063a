/* bench/kv_bench.c — the MVCC store on the real disk: batched apply of puts (as the
 * server applies committed entries), random single-key ranges, the file's size per key,
 * and the time to open the store again. Prints one "name value unit" line per figure. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvstore.h"

typedef struct kvb_opts {
	uint64_t keys, batch, value_size, ranges;
	const char *dir;
	bool sync, quiet, cold;
} kvb_opts_t;

static double kvb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t kvb_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Keys are spread, not sequential, like a real key space: key i is a permutation of i. */
static int kvb_key(char *buf, uint64_t i, uint64_t n)
{
	return sprintf(buf, "/registry/k%010llu",
		       (unsigned long long)((i * 2654435761ull) % (n * 4 + 1)));
}

static raft_entry_t *kvb_put_entry(uint64_t index, uint64_t i, const kvb_opts_t *o,
				   const uint8_t *value)
{
	char key[64];
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__RequestHeader hdr = ETCDSERVERPB__REQUEST_HEADER__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	hdr.id = index;
	req.header = &hdr;
	put.key.len = (size_t)kvb_key(key, i, o->keys);
	put.key.data = (uint8_t *)key;
	put.value.len = o->value_size;
	put.value.data = (uint8_t *)value;
	req.put = &put;
	size_t len = etcdserverpb__internal_raft_request__get_packed_size(&req);
	uint8_t *buf = malloc(len);
	if (!buf)
		abort();
	etcdserverpb__internal_raft_request__pack(&req, buf);
	raft_entry_t *e = raft_entry_new(1, index, RAFT_ENTRY_NORMAL, buf, len);
	free(buf);
	return e;
}

static kv_t *kvb_open(const kvb_opts_t *o, const char *path)
{
	kv_options_t opt;
	kv_options_default(&opt);
	opt.no_sync = !o->sync;
	opt.map_size = (size_t)32 << 30;
	kv_t *kv;
	char err[512];
	if (kv_open(path, &opt, &kv, err, sizeof(err)) != KV_OK) {
		fprintf(stderr, "kv_bench: %s\n", err);
		exit(1);
	}
	return kv;
}

static double kvb_puts(kv_t *kv, const kvb_opts_t *o)
{
	uint8_t *value = malloc(o->value_size);
	raft_entry_t **batch = calloc(o->batch, sizeof(*batch));
	if (!value || !batch)
		abort();
	memset(value, 'v', o->value_size);
	double apply = 0;
	for (uint64_t done = 0; done < o->keys;) {
		uint64_t n = o->keys - done < o->batch ? o->keys - done : o->batch;
		for (uint64_t j = 0; j < n; j++)
			batch[j] = kvb_put_entry(done + j + 1, done + j, o, value);
		double t0 = kvb_now();
		if (kv_apply(kv, batch, n, NULL, NULL) != KV_OK) {
			fprintf(stderr, "kv_bench: apply: %s\n", kv_last_error(kv));
			exit(1);
		}
		apply += kvb_now() - t0;
		for (uint64_t j = 0; j < n; j++)
			raft_entry_free(batch[j]);
		done += n;
	}
	free(batch);
	free(value);
	return apply;
}

static double kvb_ranges(kv_t *kv, const kvb_opts_t *o, uint64_t *found)
{
	uint64_t seed = 42;
	*found = 0;
	double t0 = kvb_now();
	for (uint64_t i = 0; i < o->ranges; i++) {
		char key[64];
		Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
		req.key.len = (size_t)kvb_key(key, kvb_rand(&seed) % o->keys, o->keys);
		req.key.data = (uint8_t *)key;
		Etcdserverpb__RangeResponse *resp;
		if (kv_range(kv, &req, &resp) != KV_OK) {
			fprintf(stderr, "kv_bench: range: %s\n", kv_last_error(kv));
			exit(1);
		}
		*found += resp->n_kvs;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return kvb_now() - t0;
}

static void kvb_drop_caches(void)
{
	sync();
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
	if (!f || fputs("3\n", f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "kv_bench: --cold: cannot drop the page cache (not root?)\n");
		exit(1);
	}
}

static void kvb_usage(void)
{
	fprintf(stderr, "usage: kv_bench [-n KEYS] [-b BATCH] [-s VALUE_SIZE] [-r RANGES] "
			"[--dir DIR] [--sync] [-q]\n"
			"  -n  keys to put, one put per key (default 1000000)\n"
			"  -b  puts per apply batch, one LMDB transaction each (default 1000)\n"
			"  -s  value size in bytes (default 256)\n"
			"  -r  random single-key ranges to time (default 200000)\n"
			"  --dir   where the store is made (default $TMPDIR or /tmp); removed after\n"
			"  --sync  flush data pages at every commit (default: the WAL is the\n"
			"          durability point and apply commits are not flushed)\n"
			"  --cold  drop the page cache before reopening (needs root), so reopen and\n"
			"          the first range read the disk\n");
}

int main(int argc, char **argv)
{
	kvb_opts_t o = { .keys = 1000000, .batch = 1000, .value_size = 256, .ranges = 200000 };
	static const struct option longs[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "sync", no_argument, NULL, 'S' },
		{ "cold", no_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "n:b:s:r:q", longs, NULL)) != -1) {
		switch (ch) {
		case 'n': o.keys = strtoull(optarg, NULL, 10); break;
		case 'b': o.batch = strtoull(optarg, NULL, 10); break;
		case 's': o.value_size = strtoull(optarg, NULL, 10); break;
		case 'r': o.ranges = strtoull(optarg, NULL, 10); break;
		case 'd': o.dir = optarg; break;
		case 'S': o.sync = true; break;
		case 'C': o.cold = true; break;
		case 'q': o.quiet = true; break;
		default: kvb_usage(); return 2;
		}
	}
	if (!o.keys || !o.batch) {
		kvb_usage();
		return 2;
	}
	const char *tmp = o.dir ? o.dir : getenv("TMPDIR");
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/keel-kvbench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("kv_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/db", dir);

	kv_t *kv = kvb_open(&o, path);
	double put_s = kvb_puts(kv, &o);
	kv_sync(kv);
	kv_close(kv);
	struct stat st;
	stat(path, &st);
	if (o.cold)
		kvb_drop_caches();

	double t0 = kvb_now();
	kv = kvb_open(&o, path);
	double reopen_s = kvb_now() - t0;
	kvb_opts_t one = o;
	one.ranges = 1;
	uint64_t first_found;
	double first_s = kvb_ranges(kv, &one, &first_found);
	if (kv_revision(kv) != (int64_t)o.keys + 1) { /* a new store is at revision 1 */
		fprintf(stderr, "kv_bench: reopened at revision %lld, want %llu\n",
			(long long)kv_revision(kv), (unsigned long long)o.keys + 1);
		return 1;
	}
	uint64_t found;
	double range_s = kvb_ranges(kv, &o, &found);
	kv_close(kv);
	if (found != o.ranges) {
		fprintf(stderr, "kv_bench: %llu of %llu ranges found their key\n",
			(unsigned long long)found, (unsigned long long)o.ranges);
		return 1;
	}
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "kv_bench: could not remove %s\n", dir);
	if (o.quiet)
		return 0;
	printf("keys %llu value_bytes %llu batch %llu sync %s\n", (unsigned long long)o.keys,
	       (unsigned long long)o.value_size, (unsigned long long)o.batch, o.sync ? "yes" : "no");
	printf("put_apply %.0f puts/s\n", (double)o.keys / put_s);
	printf("range_get %.0f ranges/s\n", (double)o.ranges / range_s);
	printf("file_size %.1f MiB (%.1f bytes/key)\n", (double)st.st_size / (1 << 20),
	       (double)st.st_size / (double)o.keys);
	printf("reopen %.3f ms%s\n", reopen_s * 1e3, o.cold ? " (cold cache)" : "");
	printf("first_range_after_reopen %.3f ms\n", first_s * 1e3);
	return 0;
}
