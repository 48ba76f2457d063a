/* tests/unit/test_pbcheck.c — server/pbcheck.c gives etcd 3.4's decoder texts for malformed
 * requests and accepts what etcd accepts. The expected texts were read off a running etcd
 * 3.4.23 (tests/badinput asks both servers the same bytes in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pbcheck.h"
#include "rpc.pb-c.h"

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;
	for (; hex[0] && hex[1]; hex += 2) {
		unsigned v;
		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

/* Checks hex as message d: NULL want means accepted. */
static void expect(const ProtobufCMessageDescriptor *d, const char *hex, const char *want)
{
	uint8_t buf[64], *clean = NULL;
	size_t n = unhex(hex, buf), clean_len = 0;
	char err[256] = "";
	int rc = pb_check(d, buf, n, err, sizeof(err), &clean, &clean_len);
	free(clean);
	if (!want) {
		if (rc != 0)
			fail_msg("%s %s refused: %s", d->short_name, hex, err);
		return;
	}
	if (rc == 0)
		fail_msg("%s %s accepted, etcd says: %s", d->short_name, hex, want);
	if (strcmp(err, want) != 0)
		fail_msg("%s %s: \"%s\", etcd says \"%s\"", d->short_name, hex, err, want);
}

#define RANGE (&etcdserverpb__range_request__descriptor)
#define PUT (&etcdserverpb__put_request__descriptor)
#define TXN (&etcdserverpb__txn_request__descriptor)

static void test_truncations_are_unexpected_eof(void **state)
{
	(void)state;
	expect(RANGE, "0a", "unexpected EOF");
	expect(RANGE, "0a80", "unexpected EOF");
	expect(RANGE, "0a05616263", "unexpected EOF");
	expect(RANGE, "ffffffff", "unexpected EOF");
	expect(PUT, "0a0161128080", "unexpected EOF");
	expect(PUT, "0a01611880", "unexpected EOF");
	expect(RANGE, "0a0161a306", "unexpected EOF"); /* unknown group without its end */
	expect(RANGE, "0a0161a106", "unexpected EOF"); /* unknown fixed64 cut short */
}

static void test_wrong_wire_types_name_the_go_field(void **state)
{
	(void)state;
	expect(RANGE, "0801", "proto: wrong wireType = 0 for field Key");
	expect(RANGE, "0f", "proto: wrong wireType = 7 for field Key");
	expect(RANGE, "0a01611a0100", "proto: wrong wireType = 2 for field Limit");
	expect(PUT, "0a01611a0100", "proto: wrong wireType = 2 for field Lease");
	expect(RANGE, "0a01612200", "proto: wrong wireType = 2 for field Revision");
}

static void test_bad_tags_name_the_message(void **state)
{
	(void)state;
	expect(RANGE, "0c", "proto: RangeRequest: wiretype end group for non-group");
	expect(PUT, "00", "proto: PutRequest: illegal tag 0 (wire type 0)");
	expect(RANGE, "8080808040",
	       "proto: RangeRequest: illegal tag -2147483648 (wire type 17179869184)");
	expect(TXN, "0a0100", "proto: Compare: illegal tag 0 (wire type 0)");
}

static void test_lengths_and_varints(void **state)
{
	(void)state;
	expect(RANGE, "0affffffffffffffffff01", "proto: negative length found during unmarshaling");
	expect(RANGE, "0affffffffffffffffffff01", "proto: integer overflow");
	expect(RANGE, "a606", "proto: illegal wireType 6");
}

static void test_what_etcd_accepts(void **state)
{
	(void)state;
	expect(RANGE, "", NULL);
	expect(RANGE, "0a0161", NULL);
	expect(RANGE, "0a0161a306a406", NULL);  /* an unknown group, properly ended */
	expect(RANGE, "0a0161c83e05", NULL);    /* an unknown varint field */
	expect(RANGE, "0a01611880808080808080808001", NULL); /* a 10th varint byte over 1 */
}

static void test_unknown_group_is_stripped_for_protobuf_c(void **state)
{
	(void)state;
	uint8_t buf[16], *clean = NULL;
	size_t n = unhex("0a0161a306a4061801", buf), clean_len = 0;
	char err[64];
	assert_int_equal(pb_check(RANGE, buf, n, err, sizeof(err), &clean, &clean_len), 0);
	assert_non_null(clean);
	Etcdserverpb__RangeRequest *r = etcdserverpb__range_request__unpack(NULL, clean_len, clean);
	assert_non_null(r);
	assert_int_equal(r->key.len, 1);
	assert_int_equal(r->limit, 1);
	etcdserverpb__range_request__free_unpacked(r, NULL);
	free(clean);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truncations_are_unexpected_eof),
		cmocka_unit_test(test_wrong_wire_types_name_the_go_field),
		cmocka_unit_test(test_bad_tags_name_the_message),
		cmocka_unit_test(test_lengths_and_varints),
		cmocka_unit_test(test_what_etcd_accepts),
		cmocka_unit_test(test_unknown_group_is_stripped_for_protobuf_c),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
