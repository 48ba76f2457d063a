/* kv_harness.c — temporary stores with a virtual clock for the kvstore tests. Owns the
 * temporary directories and removes them; never touches anything outside them. */
#include "kv_harness.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const ProtobufCBinaryData kvh_zero = { 1, (uint8_t *)"" };

static uint64_t kvh_clock(void *ctx)
{
	return ((kvh_t *)ctx)->now_ms;
}

static void kvh_open(kvh_t *h)
{
	char err[512];
	int rc = kv_open(h->path, &h->opt, &h->kv, err, sizeof(err));
	if (rc != KV_OK)
		fail_msg("kv_open %s: %s", h->path, err);
}

kvh_t *kvh_new(const kv_options_t *opt)
{
	kvh_t *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	test_tmpdir(h->dir, sizeof(h->dir), "kv");
	snprintf(h->path, sizeof(h->path), "%s/db", h->dir);
	if (opt)
		h->opt = *opt;
	else
		kv_options_default(&h->opt);
	if (!opt || !opt->map_size)
		h->opt.map_size = 256u << 20;
	h->opt.no_sync = true;
	h->opt.now_ms = kvh_clock;
	h->opt.clock_ctx = h;
	h->now_ms = 1000000;
	h->term = 1;
	kvh_open(h);
	return h;
}

void kvh_free(kvh_t *h)
{
	if (!h)
		return;
	kv_close(h->kv);
	if (test_rmtree(h->dir) != 0)
		fprintf(stderr, "kv_harness: could not remove %s\n", h->dir);
	free(h);
}

void kvh_reopen(kvh_t *h)
{
	kv_close(h->kv);
	h->kv = NULL;
	kvh_open(h);
	assert_int_equal(kv_applied_index(h->kv), h->index);
}

int kvh_apply(kvh_t *h, const Etcdserverpb__InternalRaftRequest *req, kv_result_t *res)
{
	kv_result_t local;
	kv_result_t *r = res ? res : &local;
	memset(r, 0, sizeof(*r));
	h->index++;
	int rc = kv_apply_request(h->kv, h->index, h->term, req, r);
	assert_int_equal(rc, KV_OK);
	if (!res && r->resp)
		protobuf_c_message_free_unpacked(r->resp, NULL);
	return r->err;
}

ProtobufCBinaryData kvh_bin(const char *s)
{
	ProtobufCBinaryData b = { s ? strlen(s) : 0, (uint8_t *)s };
	return b;
}

int64_t kvh_put(kvh_t *h, const char *key, const char *value, int64_t lease)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key = kvh_bin(key);
	put.value = kvh_bin(value);
	put.lease = lease;
	req.put = &put;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (err != KV_OK)
		fail_msg("put %s: %s", key, kv_strerror(err));
	protobuf_c_message_free_unpacked(res.resp, NULL);
	return res.revision;
}

int64_t kvh_del(kvh_t *h, const char *key, const char *end)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	del.key = kvh_bin(key);
	del.range_end = kvh_bin(end);
	req.delete_range = &del;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (err != KV_OK)
		fail_msg("delete %s: %s", key, kv_strerror(err));
	int64_t deleted = ((Etcdserverpb__DeleteRangeResponse *)res.resp)->deleted;
	protobuf_c_message_free_unpacked(res.resp, NULL);
	return deleted;
}

Etcdserverpb__RangeResponse *kvh_get(kvh_t *h, const char *key, const char *end, int64_t rev)
{
	Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin(key);
	req.range_end = kvh_bin(end);
	req.revision = rev;
	Etcdserverpb__RangeResponse *resp = NULL;
	int err = kv_range(h->kv, &req, &resp);
	if (err != KV_OK)
		fail_msg("range %s: %s", key, kv_strerror(err));
	return resp;
}

void kvh_range_free(Etcdserverpb__RangeResponse *r)
{
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

int64_t kvh_grant(kvh_t *h, int64_t id, int64_t ttl)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
	g.id = id ? id : kv_lease_new_id(h->kv);
	g.ttl = ttl;
	req.lease_grant = &g;
	kv_result_t res;
	int err = kvh_apply(h, &req, &res);
	if (err != KV_OK)
		fail_msg("grant %lld: %s", (long long)g.id, kv_strerror(err));
	int64_t got = ((Etcdserverpb__LeaseGrantResponse *)res.resp)->id;
	protobuf_c_message_free_unpacked(res.resp, NULL);
	return got;
}

int kvh_revoke(kvh_t *h, int64_t id)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
	r.id = id;
	req.lease_revoke = &r;
	return kvh_apply(h, &req, NULL);
}

int kvh_compact(kvh_t *h, int64_t rev)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
	c.revision = rev;
	req.compaction = &c;
	int err = kvh_apply(h, &req, NULL);
	if (err != KV_OK)
		return err;
	bool done = false;
	while (!done)
		assert_int_equal(kv_compact_step(h->kv, 100, &done), KV_OK);
	return KV_OK;
}

uint32_t kvh_hash(kvh_t *h, int64_t rev)
{
	uint32_t hash;
	int64_t compact, hrev;
	assert_int_equal(kv_hash_kv(h->kv, rev, &hash, &compact, &hrev), KV_OK);
	return hash;
}
