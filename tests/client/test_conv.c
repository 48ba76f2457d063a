/* tests/client/test_conv.c — libkeel's conversions from etcd's messages, without a server:
 * responses are built and encoded with protobuf-c as a server would send them, decoded,
 * converted, and compared; every allocation of a conversion is made to fail in turn and
 * the result must be NULL with nothing leaked (the ASan build checks the leaks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv.h"

/* ---- allocation failure injection (the test links with --wrap=malloc,calloc,realloc) -- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static long fail_at = -1;            /* the allocation number to fail; -1 = none */
static long n_allocs;

static bool alloc_fails(void)
{
	return fail_at >= 0 && n_allocs++ == fail_at;
}

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return alloc_fails() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

/* ---- message builders ---------------------------------------------------------------- */

static ProtobufCBinaryData bin(const char *s)
{
	ProtobufCBinaryData b = { strlen(s), (uint8_t *)(uintptr_t)s };
	return b;
}

static Etcdserverpb__ResponseHeader hdr = { PROTOBUF_C_MESSAGE_INIT(
	&etcdserverpb__response_header__descriptor), 11, 22, 33, 44 };

static void kv_init(Mvccpb__KeyValue *kv, const char *k, const char *v, int64_t rev)
{
	mvccpb__key_value__init(kv);
	kv->key = bin(k);
	kv->value = bin(v);
	kv->create_revision = rev - 1;
	kv->mod_revision = rev;
	kv->version = 2;
	kv->lease = 7;
}

/* Encodes msg and decodes it again, as a response would arrive from the wire. */
static ProtobufCMessage *roundtrip(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = __real_malloc(len + 1);
	protobuf_c_message_pack(msg, buf);
	ProtobufCMessage *m = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	assert_non_null(m);
	return m;
}

static void assert_header(const keel_header_t *h)
{
	assert_int_equal(h->cluster_id, 11);
	assert_int_equal(h->member_id, 22);
	assert_int_equal(h->revision, 33);
	assert_int_equal(h->raft_term, 44);
}

static void assert_kv(const keel_kv_t *kv, const char *k, const char *v, int64_t rev)
{
	assert_int_equal(kv->key_len, strlen(k));
	assert_memory_equal(kv->key, k, strlen(k));
	assert_int_equal(kv->key[kv->key_len], 0);
	assert_int_equal(kv->value_len, strlen(v));
	assert_string_equal((const char *)kv->value, v);
	assert_int_equal(kv->mod_revision, rev);
	assert_int_equal(kv->create_revision, rev - 1);
	assert_int_equal(kv->version, 2);
	assert_int_equal(kv->lease, 7);
}

/* Runs conv on msg with allocation n failing, for n = 0, 1, ... until conv succeeds:
 * every failing run must give NULL. Returns the successful result. */
typedef void *(*conv_fn)(const ProtobufCMessage *m);
typedef void (*free_fn)(void *r);

static void *conv_under_oom(conv_fn conv, const ProtobufCMessage *m, free_fn fr)
{
	for (long n = 0;; n++) {
		n_allocs = 0;
		fail_at = n;
		void *r = conv(m);
		bool failed = n_allocs > n;
		fail_at = -1;
		if (!failed) {
			assert_non_null(r);
			return r;
		}
		if (r) {
			/* An allocation failed but the converter hid it: that is a bug
			 * unless the failure was in nothing the result needs. */
			fr(r);
			fail_msg("allocation %ld failed, yet a result came back", n);
		}
	}
}

/* ---- range --------------------------------------------------------------------------- */

static void *conv_range_any(const ProtobufCMessage *m)
{
	return conv_range_result((const Etcdserverpb__RangeResponse *)m);
}

static void range_free_any(void *r)
{
	keel_range_result_free(r);
}

static void test_range_response_copies_kvs_with_nul_terminator(void **state)
{
	(void)state;
	Mvccpb__KeyValue a, b;
	kv_init(&a, "/a", "one", 10);
	kv_init(&b, "/b", "", 12);
	Mvccpb__KeyValue *kvs[] = { &a, &b };
	Etcdserverpb__RangeResponse m = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	m.header = &hdr;
	m.kvs = kvs;
	m.n_kvs = 2;
	m.more = 1;
	m.count = 5;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_range_result_t *r = conv_under_oom(conv_range_any, w, range_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_header(&r->header);
	assert_int_equal(r->n_kvs, 2);
	assert_true(r->more);
	assert_int_equal(r->count, 5);
	assert_kv(&r->kvs[0], "/a", "one", 10);
	assert_kv(&r->kvs[1], "/b", "", 12);
	keel_range_result_free(r);
}

static void test_range_response_without_header_gives_zero_header(void **state)
{
	(void)state;
	Etcdserverpb__RangeResponse m = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	keel_range_result_t *r = conv_range_result(&m);
	assert_non_null(r);
	assert_int_equal(r->header.revision, 0);
	assert_int_equal(r->n_kvs, 0);
	assert_null(r->kvs);
	keel_range_result_free(r);
	keel_range_result_free(NULL);
}

/* ---- put / delete -------------------------------------------------------------------- */

static void test_put_response_prev_kv_only_when_sent(void **state)
{
	(void)state;
	Mvccpb__KeyValue prev;
	kv_init(&prev, "k", "old", 4);
	Etcdserverpb__PutResponse m = ETCDSERVERPB__PUT_RESPONSE__INIT;
	m.header = &hdr;
	keel_put_result_t *r = conv_put_result(&m);
	assert_null(r->prev_kv);
	keel_put_result_free(r);
	m.prev_kv = &prev;
	ProtobufCMessage *w = roundtrip(&m.base);
	r = conv_put_result((Etcdserverpb__PutResponse *)w);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_header(&r->header);
	assert_kv(r->prev_kv, "k", "old", 4);
	keel_put_result_free(r);
}

static void *conv_delete_any(const ProtobufCMessage *m)
{
	return conv_delete_result((const Etcdserverpb__DeleteRangeResponse *)m);
}

static void delete_free_any(void *r)
{
	keel_delete_result_free(r);
}

static void test_delete_response_copies_prev_kvs(void **state)
{
	(void)state;
	Mvccpb__KeyValue a, b;
	kv_init(&a, "x1", "v1", 8);
	kv_init(&b, "x2", "v2", 9);
	Mvccpb__KeyValue *kvs[] = { &a, &b };
	Etcdserverpb__DeleteRangeResponse m = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
	m.header = &hdr;
	m.deleted = 2;
	m.prev_kvs = kvs;
	m.n_prev_kvs = 2;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_delete_result_t *r = conv_under_oom(conv_delete_any, w, delete_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_int_equal(r->deleted, 2);
	assert_int_equal(r->n_prev_kvs, 2);
	assert_kv(&r->prev_kvs[1], "x2", "v2", 9);
	keel_delete_result_free(r);
}

/* ---- txn ----------------------------------------------------------------------------- */

static void *conv_txn_any(const ProtobufCMessage *m)
{
	return conv_txn_result((const Etcdserverpb__TxnResponse *)m);
}

static void txn_free_any(void *r)
{
	keel_txn_result_free(r);
}

static void test_txn_response_converts_every_op_kind_and_nesting(void **state)
{
	(void)state;
	Mvccpb__KeyValue a, prev;
	kv_init(&a, "t/a", "va", 20);
	kv_init(&prev, "t/p", "vp", 19);
	Mvccpb__KeyValue *kvs[] = { &a };
	Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	rr.kvs = kvs;
	rr.n_kvs = 1;
	rr.count = 1;
	Etcdserverpb__PutResponse pr = ETCDSERVERPB__PUT_RESPONSE__INIT;
	pr.prev_kv = &prev;
	Etcdserverpb__DeleteRangeResponse dr = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
	dr.deleted = 3;
	/* The nested txn holds a range of its own. */
	Etcdserverpb__ResponseOp inner_op = ETCDSERVERPB__RESPONSE_OP__INIT;
	inner_op.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
	inner_op.response_range = &rr;
	Etcdserverpb__ResponseOp *inner_ops[] = { &inner_op };
	Etcdserverpb__TxnResponse inner = ETCDSERVERPB__TXN_RESPONSE__INIT;
	inner.succeeded = 0;
	inner.responses = inner_ops;
	inner.n_responses = 1;
	Etcdserverpb__ResponseOp ops[4];
	for (int i = 0; i < 4; i++)
		etcdserverpb__response_op__init(&ops[i]);
	ops[0].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
	ops[0].response_range = &rr;
	ops[1].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
	ops[1].response_put = &pr;
	ops[2].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
	ops[2].response_delete_range = &dr;
	ops[3].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
	ops[3].response_txn = &inner;
	Etcdserverpb__ResponseOp *opp[] = { &ops[0], &ops[1], &ops[2], &ops[3] };
	Etcdserverpb__TxnResponse m = ETCDSERVERPB__TXN_RESPONSE__INIT;
	m.header = &hdr;
	m.succeeded = 1;
	m.responses = opp;
	m.n_responses = 4;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_txn_result_t *r = conv_under_oom(conv_txn_any, w, txn_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_header(&r->header);
	assert_true(r->succeeded);
	assert_int_equal(r->n_responses, 4);
	assert_int_equal(r->responses[0].type, KEEL_OP_RANGE);
	assert_kv(&r->responses[0].u.range->kvs[0], "t/a", "va", 20);
	assert_int_equal(r->responses[1].type, KEEL_OP_PUT);
	assert_kv(r->responses[1].u.put->prev_kv, "t/p", "vp", 19);
	assert_int_equal(r->responses[2].type, KEEL_OP_DELETE);
	assert_int_equal(r->responses[2].u.del->deleted, 3);
	assert_int_equal(r->responses[3].type, KEEL_OP_TXN);
	keel_txn_result_t *in = r->responses[3].u.txn;
	assert_false(in->succeeded);
	assert_int_equal(in->n_responses, 1);
	assert_int_equal(in->responses[0].u.range->count, 1);
	keel_txn_result_free(r);
}

/* ---- lease, cluster, maintenance ------------------------------------------------------ */

static void *conv_ttl_any(const ProtobufCMessage *m)
{
	return conv_lease_ttl_result((const Etcdserverpb__LeaseTimeToLiveResponse *)m);
}

static void ttl_free_any(void *r)
{
	keel_lease_ttl_result_free(r);
}

static void test_lease_ttl_response_copies_keys(void **state)
{
	(void)state;
	ProtobufCBinaryData keys[] = { bin("k1"), bin("key2") };
	Etcdserverpb__LeaseTimeToLiveResponse m = ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
	m.header = &hdr;
	m.id = 99;
	m.ttl = 8;
	m.grantedttl = 10;
	m.keys = keys;
	m.n_keys = 2;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_lease_ttl_result_t *r = conv_under_oom(conv_ttl_any, w, ttl_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_int_equal(r->id, 99);
	assert_int_equal(r->ttl, 8);
	assert_int_equal(r->granted_ttl, 10);
	assert_int_equal(r->n_keys, 2);
	assert_string_equal((char *)r->keys[1].key, "key2");
	assert_int_equal(r->keys[1].key_len, 4);
	keel_lease_ttl_result_free(r);
}

static void test_lease_list_response_gives_ids(void **state)
{
	(void)state;
	Etcdserverpb__LeaseStatus s1 = ETCDSERVERPB__LEASE_STATUS__INIT, s2 = s1;
	s1.id = 5;
	s2.id = 6;
	Etcdserverpb__LeaseStatus *ls[] = { &s1, &s2 };
	Etcdserverpb__LeaseLeasesResponse m = ETCDSERVERPB__LEASE_LEASES_RESPONSE__INIT;
	m.leases = ls;
	m.n_leases = 2;
	keel_lease_list_result_t *r = conv_lease_list_result(&m);
	assert_int_equal(r->n_ids, 2);
	assert_int_equal(r->ids[0], 5);
	assert_int_equal(r->ids[1], 6);
	keel_lease_list_result_free(r);
}

static void *conv_member_any(const ProtobufCMessage *msg)
{
	const Etcdserverpb__MemberAddResponse *m = (const Etcdserverpb__MemberAddResponse *)msg;
	return conv_member_result(m->header, m->member, m->n_members, m->members);
}

static void member_free_any(void *r)
{
	keel_member_result_free(r);
}

static void test_member_response_copies_names_and_urls(void **state)
{
	(void)state;
	char *peers[] = { "http://127.0.0.1:1", "http://127.0.0.1:2" };
	char *clients[] = { "http://127.0.0.1:3" };
	Etcdserverpb__Member a = ETCDSERVERPB__MEMBER__INIT, b = ETCDSERVERPB__MEMBER__INIT;
	a.id = 1;
	a.name = "m0";
	a.peerurls = peers;
	a.n_peerurls = 2;
	a.clienturls = clients;
	a.n_clienturls = 1;
	b.id = 2;
	b.islearner = 1;        /* a learner that has not started: no name, no client URL */
	b.peerurls = peers;
	b.n_peerurls = 1;
	Etcdserverpb__Member *ms[] = { &a, &b };
	Etcdserverpb__MemberAddResponse m = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
	m.header = &hdr;
	m.member = &b;
	m.members = ms;
	m.n_members = 2;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_member_result_t *r = conv_under_oom(conv_member_any, w, member_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_header(&r->header);
	assert_int_equal(r->member->id, 2);
	assert_true(r->member->is_learner);
	assert_string_equal(r->member->name, "");
	assert_int_equal(r->n_members, 2);
	assert_string_equal(r->members[0].name, "m0");
	assert_int_equal(r->members[0].n_peer_urls, 2);
	assert_string_equal(r->members[0].peer_urls[1], "http://127.0.0.1:2");
	assert_string_equal(r->members[0].client_urls[0], "http://127.0.0.1:3");
	assert_int_equal(r->members[1].n_client_urls, 0);
	keel_member_result_free(r);
}

static void *conv_status_any(const ProtobufCMessage *m)
{
	return conv_status_result((const Etcdserverpb__StatusResponse *)m);
}

static void status_free_any(void *r)
{
	keel_status_result_free(r);
}

static void test_status_response_copies_version_and_errors(void **state)
{
	(void)state;
	char *errs[] = { "NOSPACE", "CORRUPT" };
	Etcdserverpb__StatusResponse m = ETCDSERVERPB__STATUS_RESPONSE__INIT;
	m.header = &hdr;
	m.version = "3.4.27";
	m.dbsize = 100;
	m.dbsizeinuse = 50;
	m.leader = 3;
	m.raftindex = 4;
	m.raftterm = 5;
	m.raftappliedindex = 6;
	m.errors = errs;
	m.n_errors = 2;
	m.islearner = 1;
	ProtobufCMessage *w = roundtrip(&m.base);
	keel_status_result_t *r = conv_under_oom(conv_status_any, w, status_free_any);
	protobuf_c_message_free_unpacked(w, NULL);
	assert_string_equal(r->version, "3.4.27");
	assert_int_equal(r->db_size, 100);
	assert_int_equal(r->db_size_in_use, 50);
	assert_int_equal(r->leader, 3);
	assert_int_equal(r->raft_index, 4);
	assert_int_equal(r->raft_term, 5);
	assert_int_equal(r->raft_applied_index, 6);
	assert_true(r->is_learner);
	assert_int_equal(r->n_errors, 2);
	assert_string_equal(r->errors[1], "CORRUPT");
	keel_status_result_free(r);
}

static void test_alarm_response_gives_members_and_types(void **state)
{
	(void)state;
	Etcdserverpb__AlarmMember a = ETCDSERVERPB__ALARM_MEMBER__INIT;
	a.memberid = 77;
	a.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
	Etcdserverpb__AlarmMember *as[] = { &a };
	Etcdserverpb__AlarmResponse m = ETCDSERVERPB__ALARM_RESPONSE__INIT;
	m.alarms = as;
	m.n_alarms = 1;
	keel_alarm_result_t *r = conv_alarm_result(&m);
	assert_int_equal(r->n_alarms, 1);
	assert_int_equal(r->alarms[0].member_id, 77);
	assert_int_equal(r->alarms[0].alarm, KEEL_ALARM_NOSPACE);
	keel_alarm_result_free(r);
}

/* ---- watch events -------------------------------------------------------------------- */

static void test_event_copies_kv_and_prev_kv(void **state)
{
	(void)state;
	Mvccpb__KeyValue kv, prev;
	kv_init(&kv, "w", "new", 30);
	kv_init(&prev, "w", "old", 29);
	Mvccpb__Event e = MVCCPB__EVENT__INIT;
	e.type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
	e.kv = &kv;
	e.prev_kv = &prev;
	for (long n = 0;; n++) {
		keel_event_t ev;
		n_allocs = 0;
		fail_at = n;
		int rc = conv_event(&ev, &e);
		bool failed = n_allocs > n;
		fail_at = -1;
		if (failed) {
			assert_int_equal(rc, -1);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(ev.type, KEEL_EVENT_DELETE);
		assert_kv(&ev.kv, "w", "new", 30);
		assert_kv(ev.prev_kv, "w", "old", 29);
		conv_event_clear(&ev);
		break;
	}
}

/* ---- requests ------------------------------------------------------------------------ */

static void test_range_request_carries_every_field(void **state)
{
	(void)state;
	keel_range_req_t req = {
		.key = "a", .key_len = 1, .range_end = "b", .range_end_len = 1,
		.limit = 3, .revision = 4, .sort_order = KEEL_SORT_DESCEND,
		.sort_target = KEEL_SORT_BY_MOD, .serializable = true, .keys_only = true,
		.count_only = true, .min_mod_revision = 5, .max_mod_revision = 6,
		.min_create_revision = 7, .max_create_revision = 8,
	};
	Etcdserverpb__RangeRequest m;
	conv_range_req(&m, &req);
	Etcdserverpb__RangeRequest *w = (Etcdserverpb__RangeRequest *)roundtrip(&m.base);
	assert_int_equal(w->key.len, 1);
	assert_int_equal(w->range_end.data[0], 'b');
	assert_int_equal(w->limit, 3);
	assert_int_equal(w->revision, 4);
	assert_int_equal(w->sort_order, ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND);
	assert_int_equal(w->sort_target, ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD);
	assert_true(w->serializable && w->keys_only && w->count_only);
	assert_int_equal(w->min_mod_revision, 5);
	assert_int_equal(w->max_create_revision, 8);
	protobuf_c_message_free_unpacked(&w->base, NULL);
}

static void test_prefix_end_increments_last_byte_below_ff(void **state)
{
	(void)state;
	uint8_t buf[8];
	assert_int_equal(keel_prefix_end("abc", 3, buf), 3);
	assert_memory_equal(buf, "abd", 3);
	assert_int_equal(keel_prefix_end("a\xff\xff", 3, buf), 1);
	assert_int_equal(buf[0], 'b');
	assert_int_equal(keel_prefix_end("\xff\xff", 2, buf), 1);
	assert_int_equal(buf[0], 0);
	assert_int_equal(keel_prefix_end("", 0, buf), 1);
	assert_int_equal(buf[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_response_copies_kvs_with_nul_terminator),
		cmocka_unit_test(test_range_response_without_header_gives_zero_header),
		cmocka_unit_test(test_put_response_prev_kv_only_when_sent),
		cmocka_unit_test(test_delete_response_copies_prev_kvs),
		cmocka_unit_test(test_txn_response_converts_every_op_kind_and_nesting),
		cmocka_unit_test(test_lease_ttl_response_copies_keys),
		cmocka_unit_test(test_lease_list_response_gives_ids),
		cmocka_unit_test(test_member_response_copies_names_and_urls),
		cmocka_unit_test(test_status_response_copies_version_and_errors),
		cmocka_unit_test(test_alarm_response_gives_members_and_types),
		cmocka_unit_test(test_event_copies_kv_and_prev_kv),
		cmocka_unit_test(test_range_request_carries_every_field),
		cmocka_unit_test(test_prefix_end_increments_last_byte_below_ff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
