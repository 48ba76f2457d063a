/* tests/maint/maint_load.c — the load of maint.py's defrag-under-load test, through
 * libkeel against any etcd-compatible endpoint. Two modes:
 *   maint_load fill ENDPOINT PREFIX COUNT VALUE_BYTES
 *       puts COUNT keys PREFIX<n> of VALUE_BYTES each, as fast as one client can.
 *   maint_load write ENDPOINT PREFIX SECONDS VALUE_BYTES OUT
 *       puts one key after another (PREFIX<n mod 1000>) for SECONDS and writes one line
 *       per put to OUT: "<start, CLOCK_REALTIME seconds> <latency µs> <0 ok | error>".
 *   maint_load hash ENDPOINT
 *       Maintenance.Hash (etcdctl 3.4 has no command for it): "hash <h> revision <r>".
 *   maint_load move-leader ENDPOINT TARGET_HEX
 *       Maintenance.MoveLeader sent to exactly that member, whatever it is (etcdctl only
 *       ever sends it to the leader): "ok" or "error <code> <message>".
 * Talks to loopback endpoints only (whatever it is given); stops by itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"
#include "rpc.pb-c.h"
#include "transport.h"

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int usage(void)
{
	fprintf(stderr, "usage: maint_load fill ENDPOINT PREFIX COUNT VALUE_BYTES\n"
			"       maint_load write ENDPOINT PREFIX SECONDS VALUE_BYTES OUT\n");
	return 2;
}

static int do_fill(keel_t *k, const char *prefix, long count, char *value)
{
	char key[256];
	keel_error_t err;
	for (long i = 0; i < count; i++) {
		snprintf(key, sizeof(key), "%s%06ld", prefix, i);
		if (keel_put_str(k, key, value, 0, &err) != 0) {
			fprintf(stderr, "maint_load: put %s: %s\n", key, err.message);
			return 1;
		}
	}
	return 0;
}

static int do_write(keel_t *k, const char *prefix, double seconds, char *value, FILE *out)
{
	char key[256];
	keel_error_t err;
	uint64_t end = now_us() + (uint64_t)(seconds * 1e6);
	long n = 0, failed = 0;
	while (now_us() < end) {
		snprintf(key, sizeof(key), "%s%03ld", prefix, n % 1000);
		double t = now_real();
		uint64_t t0 = now_us();
		int rc = keel_put_str(k, key, value, 0, &err);
		uint64_t lat = now_us() - t0;
		fprintf(out, "%.6f %llu %d\n", t, (unsigned long long)lat, rc ? 1 : 0);
		if (rc != 0 && failed++ < 5)
			fprintf(stderr, "maint_load: put %s: %s\n", key, err.message);
		n++;
	}
	fprintf(stderr, "maint_load: %ld puts, %ld failed\n", n, failed);
	return failed ? 1 : 0;
}

/* One raw unary call; prints the error and returns 1 when it fails. */
static int raw_call(const char *endpoint, const char *path, const ProtobufCMessage *req,
		    uint8_t **resp, size_t *resp_len)
{
	kt_options_t o = {0};
	const char *eps[] = { endpoint };
	o.endpoints = eps;
	o.n_endpoints = 1;
	o.dial_timeout_ms = 5000;
	o.call_timeout_ms = 30000;
	kt_t *t = NULL;
	keel_error_t err;
	if (kt_new(&o, &t, &err) != 0) {
		printf("error %d %s\n", err.code, err.message);
		return 1;
	}
	uint8_t buf[64];
	size_t n = protobuf_c_message_pack(req, buf);
	int rc = kt_unary(t, path, endpoint, buf, n, 0, false, resp, resp_len, &err);
	if (rc != 0)
		printf("error %d %s\n", err.code, err.message);
	kt_free(t);
	return rc ? 1 : 0;
}

static int do_rpc(int argc, char **argv)
{
	uint8_t *resp = NULL;
	size_t len = 0;
	if (strcmp(argv[1], "hash") == 0) {
		Etcdserverpb__HashRequest req = ETCDSERVERPB__HASH_REQUEST__INIT;
		if (raw_call(argv[2], "/etcdserverpb.Maintenance/Hash", &req.base, &resp, &len))
			return 0;
		Etcdserverpb__HashResponse *r =
			etcdserverpb__hash_response__unpack(NULL, len, resp);
		if (r)
			printf("hash %u revision %lld\n", r->hash,
			       r->header ? (long long)r->header->revision : 0LL);
		else
			printf("error - undecodable answer\n");
		if (r)
			etcdserverpb__hash_response__free_unpacked(r, NULL);
	} else if (argc >= 4) {
		Etcdserverpb__MoveLeaderRequest req = ETCDSERVERPB__MOVE_LEADER_REQUEST__INIT;
		req.targetid = strtoull(argv[3], NULL, 16);
		if (raw_call(argv[2], "/etcdserverpb.Maintenance/MoveLeader", &req.base, &resp,
			     &len))
			return 0;
		printf("ok\n");
	} else {
		return usage();
	}
	free(resp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && (strcmp(argv[1], "hash") == 0 || strcmp(argv[1], "move-leader") == 0)) {
		keel_init();
		return do_rpc(argc, argv);
	}
	if (argc < 6)
		return usage();
	bool fill = strcmp(argv[1], "fill") == 0;
	if (!fill && (strcmp(argv[1], "write") != 0 || argc < 7))
		return usage();
	long vlen = atol(argv[5]);
	if (vlen < 0 || vlen > (1 << 20))
		return usage();
	char *value = malloc((size_t)vlen + 1);
	if (!value)
		return 1;
	for (long i = 0; i < vlen; i++)
		value[i] = (char)('a' + i % 26);
	value[vlen] = 0;
	keel_init();
	keel_options_t opt;
	keel_options_init(&opt);
	const char *eps[] = { argv[2] };
	opt.endpoints = eps;
	opt.n_endpoints = 1;
	opt.call_timeout_ms = 60000; /* etcd's defrag blocks writes for as long as it runs */
	keel_t *k = NULL;
	keel_error_t err;
	if (keel_connect(&opt, &k, &err) != 0) {
		fprintf(stderr, "maint_load: connect: %s\n", err.message);
		free(value);
		return 1;
	}
	int rc;
	if (fill) {
		rc = do_fill(k, argv[3], atol(argv[4]), value);
	} else {
		FILE *out = fopen(argv[6], "w");
		if (!out) {
			perror(argv[6]);
			rc = 1;
		} else {
			rc = do_write(k, argv[3], atof(argv[4]), value, out);
			fclose(out);
		}
	}
	keel_close(k);
	free(value);
	return rc;
}
