/* test_kv_range_pack.c — kv_range_pack (a range written straight from LMDB into wire bytes)
 * against protobuf-c's packing of kv_range's answer, over seeded random stores and
 * requests: same errors, same bytes. Also its buffer: mapped when large, given back from
 * the front, refused above max_len. Touches only temporary stores.
 * Usage: unit_kv_range_pack [first..last] (seeds of the random test; default 1..150). */
#include "kv_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Etcdserverpb__RangeRequest range_req_t;
typedef Etcdserverpb__RangeResponse range_resp_t;
typedef ProtobufCBinaryData bin_t;

static unsigned seed_first = 1, seed_last = 150;

/* The header keeld puts on a range: kv_range leaves all but the revision to the server. */
static const Etcdserverpb__ResponseHeader test_hdr = {
	PROTOBUF_C_MESSAGE_INIT(&etcdserverpb__response_header__descriptor),
	0xfedcba9876543210ULL, 0x8000000000000001ULL, 0, 7 };

/* ---- a small PRNG (xorshift64*), so a seed names one run everywhere --------------------- */

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static unsigned rnd(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd_next(s) % n);
}

/* ---- the reference: kv_range, then protobuf-c --------------------------------------- */

/* kv_range's answer with test_hdr's fields, packed by protobuf-c (malloc'd). */
static int old_pack(kvh_t *h, const range_req_t *req, uint8_t **buf, size_t *len)
{
	range_resp_t *resp = NULL;
	int rc = kv_range(h->kv, req, &resp);
	if (rc != KV_OK)
		return rc;
	assert_non_null(resp->header);
	resp->header->cluster_id = test_hdr.cluster_id;
	resp->header->member_id = test_hdr.member_id;
	resp->header->raft_term = test_hdr.raft_term;
	*len = protobuf_c_message_get_packed_size(&resp->base);
	*buf = malloc(*len ? *len : 1);
	assert_non_null(*buf);
	assert_int_equal(protobuf_c_message_pack(&resp->base, *buf), *len);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return KV_OK;
}

static void describe(const range_req_t *r, char *out, size_t n)
{
	snprintf(out, n, "key %zuB range_end %zuB rev %" PRId64 " limit %" PRId64 " sort %d/%d "
		 "keys_only %d count_only %d mod [%" PRId64 ",%" PRId64 "] create [%" PRId64
		 ",%" PRId64 "]", r->key.len, r->range_end.len, r->revision, r->limit,
		 r->sort_order, r->sort_target, r->keys_only, r->count_only, r->min_mod_revision,
		 r->max_mod_revision, r->min_create_revision, r->max_create_revision);
}

/* Both ways must give the same error or the same bytes. Returns the answer's length. */
static size_t check_same(kvh_t *h, const range_req_t *req, unsigned seed)
{
	uint8_t *want = NULL;
	size_t want_len = 0;
	int want_rc = old_pack(h, req, &want, &want_len);
	kv_packed_t got;
	int rc = kv_range_pack(h->kv, req, &test_hdr, 0, &got);
	char what[400];
	describe(req, what, sizeof(what));
	if (rc != want_rc)
		fail_msg("seed %u: %s: kv_range %d, kv_range_pack %d", seed, what, want_rc, rc);
	if (rc != KV_OK) {
		assert_null(got.data);
		return 0;
	}
	if (got.len != want_len || memcmp(got.data, want, want_len) != 0)
		fail_msg("seed %u: %s: packed %zu bytes, protobuf-c %zu, or they differ", seed,
			 what, got.len, want_len);
	kv_packed_free(&got);
	free(want);
	return want_len;
}

/* ---- random stores ----------------------------------------------------------------- */

/* Keys from a few bytes (0x00, 0xff and >= 0x80 included) so prefixes and ranges overlap;
 * now and then a long one, whose length takes two varint bytes. */
static size_t rnd_key(uint64_t *s, uint8_t *k)
{
	static const uint8_t abc[] = { 0x00, 'a', 'b', 'c', 0x7f, 0x80, 0xff };
	if (rnd(s, 40) == 0) {
		size_t n = 128 + rnd(s, 300);
		for (size_t i = 0; i < n; i++)
			k[i] = abc[1 + rnd(s, 3)];
		return n;
	}
	size_t n = 1 + rnd(s, 3);
	for (size_t i = 0; i < n; i++)
		k[i] = abc[rnd(s, sizeof(abc))];
	return n;
}

/* Few distinct values so value sorts meet ties; lengths across varint widths (0: left out
 * of the KeyValue; 1, 2 and 3 bytes of length). */
static size_t rnd_value(uint64_t *s, uint8_t *v)
{
	static const size_t lens[] = { 0, 1, 3, 5, 127, 128, 300, 16384, 20000 };
	size_t n = lens[rnd(s, rnd(s, 6) == 0 ? 9 : 5)];
	uint8_t fill = (uint8_t)('a' + rnd(s, 3));
	memset(v, fill, n);
	return n;
}

static int64_t put_bin(kvh_t *h, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
		       int64_t lease)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	put.key.data = (uint8_t *)k;
	put.key.len = kl;
	put.value.data = (uint8_t *)v;
	put.value.len = vl;
	put.lease = lease;
	req.put = &put;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
	return kv_revision(h->kv);
}

static void del_bin(kvh_t *h, const uint8_t *k, size_t kl, const uint8_t *e, size_t el)
{
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	del.key.data = (uint8_t *)k;
	del.key.len = kl;
	del.range_end.data = (uint8_t *)e;
	del.range_end.len = el;
	req.delete_range = &del;
	assert_int_equal(kvh_apply(h, &req, NULL), KV_OK);
}

/* Puts (some with leases whose IDs take 9 varint bytes), deletes, and a compaction that
 * is sometimes carried out physically too. */
static void rnd_store(kvh_t *h, uint64_t *s, int ops)
{
	static uint8_t v[20000];
	uint8_t k[512], e[512];
	int64_t leases[2] = { kvh_grant(h, 0x7fffffffffff0001LL, 3600), kvh_grant(h, 5, 3600) };
	for (int i = 0; i < ops; i++) {
		size_t kl = rnd_key(s, k);
		unsigned op = rnd(s, 10);
		if (op < 7) {
			size_t vl = rnd_value(s, v);
			put_bin(h, k, kl, v, vl, rnd(s, 3) ? 0 : leases[rnd(s, 2)]);
		} else if (op < 9) {
			size_t el = rnd(s, 2) ? rnd_key(s, e) : 0;
			del_bin(h, k, kl, e, el);
		} else if (kv_revision(h->kv) > 4 && rnd(s, 3) == 0) {
			int64_t rev = 2 + (int64_t)rnd(s, (unsigned)(kv_revision(h->kv) - 2));
			if (rev > kv_compact_revision(h->kv))
				assert_int_equal(kvh_compact(h, rev), KV_OK);
			bool done = false;
			while (rnd(s, 2) && !done) {
				size_t keys = 1 + rnd(s, 4);
				assert_int_equal(kv_compact_step(h->kv, keys, &done), KV_OK);
			}
		}
	}
}

/* ---- random requests --------------------------------------------------------------- */

static int64_t rnd_rev(uint64_t *s, int64_t cur)
{
	switch (rnd(s, 5)) {
	case 0:
	case 1:
		return 0;
	case 2:
		return cur + (int64_t)rnd(s, 3) - 1;   /* cur + 1: a future revision */
	default:
		return (int64_t)rnd(s, (unsigned)cur + 2) - 1;
	}
}

static void rnd_request(uint64_t *s, int64_t cur, range_req_t *r, uint8_t *k, uint8_t *e)
{
	etcdserverpb__range_request__init(r);
	r->key.data = k;
	r->key.len = rnd(s, 30) == 0 ? 0 : rnd_key(s, k);
	r->range_end.data = e;
	switch (rnd(s, 4)) {
	case 0:                                        /* one key */
		r->range_end.len = 0;
		break;
	case 1:                                        /* from key; "\0" alone is every key */
		e[0] = 0;
		r->range_end.len = 1;
		if (rnd(s, 3) == 0) {
			k[0] = 0;
			r->key.len = 1;
		}
		break;
	default:
		r->range_end.len = rnd_key(s, e);
	}
	r->revision = rnd_rev(s, cur);
	static const int64_t limits[] = { 0, 0, 1, 2, 3, 5, 200, -1 };
	r->limit = limits[rnd(s, 8)];
	if (rnd(s, 2)) {
		r->sort_order = (Etcdserverpb__RangeRequest__SortOrder)rnd(s, 3);
		r->sort_target = (Etcdserverpb__RangeRequest__SortTarget)rnd(s, 5);
	}
	r->keys_only = rnd(s, 3) == 0;
	r->count_only = rnd(s, 6) == 0;
	r->serializable = rnd(s, 2);
	if (rnd(s, 3) == 0) {
		r->min_mod_revision = rnd(s, 2) ? rnd_rev(s, cur) : 0;
		r->max_mod_revision = rnd(s, 2) ? rnd_rev(s, cur) : 0;
		r->min_create_revision = rnd(s, 2) ? rnd_rev(s, cur) : 0;
		r->max_create_revision = rnd(s, 2) ? rnd_rev(s, cur) : 0;
	}
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_random_ranges_pack_the_bytes_protobuf_c_packs(void **state)
{
	(void)state;
	uint8_t k[512], e[512];
	size_t answers = 0, bytes = 0;
	for (unsigned seed = seed_first; seed <= seed_last; seed++) {
		uint64_t s = 0x9e3779b97f4a7c15ULL * seed + 1;
		kvh_t *h = kvh_new(NULL);
		rnd_store(h, &s, 20 + (int)rnd(&s, 120));
		for (int i = 0; i < 60; i++) {
			range_req_t req;
			rnd_request(&s, kv_revision(h->kv), &req, k, e);
			size_t n = check_same(h, &req, seed);
			answers += n > 0;
			bytes += n;
		}
		kvh_free(h);
	}
	/* The runs must have met real answers, not only errors. */
	assert_true(answers > (seed_last - seed_first + 1) * 20);
	assert_true(bytes > 0);
}

static void test_every_sort_of_one_store_packs_like_protobuf_c(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	uint64_t s = 42;
	rnd_store(h, &s, 300);
	range_req_t req;
	uint8_t all = 0;
	for (int order = 0; order < 3; order++)
		for (int target = 0; target < 5; target++)
			for (int flags = 0; flags < 8; flags++) {
				etcdserverpb__range_request__init(&req);
				req.key.data = &all;
				req.key.len = 1;
				req.range_end = kvh_zero;
				req.sort_order = (Etcdserverpb__RangeRequest__SortOrder)order;
				req.sort_target = (Etcdserverpb__RangeRequest__SortTarget)target;
				req.keys_only = flags & 1;
				req.limit = flags & 2 ? 7 : 0;
				req.min_mod_revision = flags & 4 ? 10 : 0;
				assert_true(check_same(h, &req, 42) > 0);
			}
	kvh_free(h);
}

static void test_history_and_its_errors_pack_like_kv_range(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	kvh_put(h, "a", "1", 0);
	kvh_put(h, "b", "2", 0);
	kvh_put(h, "a", "3", 0);
	kvh_del(h, "b", NULL);
	assert_int_equal(kvh_compact(h, 3), KV_OK);
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("a");
	req.range_end = kvh_bin("z");
	for (int64_t rev = 0; rev <= kv_revision(h->kv) + 1; rev++) {
		req.revision = rev;
		check_same(h, &req, 0);
	}
	kv_packed_t p;
	req.revision = 2;
	assert_int_equal(kv_range_pack(h->kv, &req, NULL, 0, &p), KV_ERR_COMPACTED);
	req.revision = 99;
	assert_int_equal(kv_range_pack(h->kv, &req, NULL, 0, &p), KV_ERR_FUTURE_REV);
	req.revision = 0;
	req.key.len = 0;
	assert_int_equal(kv_range_pack(h->kv, &req, NULL, 0, &p), KV_ERR_EMPTY_KEY);
	assert_null(p.data);
	kvh_free(h);
}

/* A store of n keys "k%06d" with vlen-byte values. */
static kvh_t *big_store(int n, size_t vlen)
{
	kvh_t *h = kvh_new(NULL);
	char *v = malloc(vlen + 1);
	assert_non_null(v);
	memset(v, 'v', vlen);
	v[vlen] = 0;
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%06d", i);
		v[0] = (char)('a' + i % 26);
		kvh_put(h, k, v, 0);
	}
	free(v);
	return h;
}

static void test_large_answer_is_given_back_from_the_front(void **state)
{
	(void)state;
	kvh_t *h = big_store(800, 4000);
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("k");
	req.range_end = kvh_bin("l");
	uint8_t *want;
	size_t want_len;
	assert_int_equal(old_pack(h, &req, &want, &want_len), KV_OK);
	assert_true(want_len > (1u << 20));
	kv_packed_t p;
	assert_int_equal(kv_range_pack(h->kv, &req, &test_hdr, 0, &p), KV_OK);
	assert_non_null(p.map);                   /* large: a mapping, not the heap */
	size_t held = p.map_len;
	kv_packed_release(&p, 1000);               /* less than a step: nothing yet */
	assert_int_equal(p.map_len, held);
	size_t upto = want_len / 2 + 123;
	kv_packed_release(&p, upto);
	assert_true(p.map_len < held);
	assert_true(p.map <= p.data + upto);
	/* What was not given back is intact. */
	assert_memory_equal(p.data + upto, want + upto, want_len - upto);
	kv_packed_release(&p, want_len + 99);
	assert_memory_equal(p.map, want + (size_t)(p.map - p.data),
			    want_len - (size_t)(p.map - p.data));
	kv_packed_free(&p);
	assert_null(p.data);
	free(want);
	kvh_free(h);
}

static void test_answer_over_max_len_is_sized_not_built(void **state)
{
	(void)state;
	kvh_t *h = big_store(50, 100);
	range_req_t req = ETCDSERVERPB__RANGE_REQUEST__INIT;
	req.key = kvh_bin("k");
	req.range_end = kvh_bin("l");
	uint8_t *want;
	size_t want_len;
	assert_int_equal(old_pack(h, &req, &want, &want_len), KV_OK);
	kv_packed_t p;
	assert_int_equal(kv_range_pack(h->kv, &req, &test_hdr, want_len - 1, &p), KV_OK);
	assert_null(p.data);
	assert_int_equal(p.len, want_len);
	kv_packed_free(&p);
	assert_int_equal(kv_range_pack(h->kv, &req, &test_hdr, want_len, &p), KV_OK);
	assert_non_null(p.data);
	assert_null(p.map);                        /* small: malloc'd */
	assert_memory_equal(p.data, want, want_len);
	kv_packed_release(&p, want_len);           /* nothing to give back early */
	assert_memory_equal(p.data, want, want_len);
	kv_packed_free(&p);
	free(want);
	kvh_free(h);
}

int main(int argc, char **argv)
{
	if (argc > 1 && sscanf(argv[1], "%u..%u", &seed_first, &seed_last) != 2) {
		fprintf(stderr, "usage: %s [first..last]\n", argv[0]);
		return 2;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_ranges_pack_the_bytes_protobuf_c_packs),
		cmocka_unit_test(test_every_sort_of_one_store_packs_like_protobuf_c),
		cmocka_unit_test(test_history_and_its_errors_pack_like_kv_range),
		cmocka_unit_test(test_large_answer_is_given_back_from_the_front),
		cmocka_unit_test(test_answer_over_max_len_is_sized_not_built),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
