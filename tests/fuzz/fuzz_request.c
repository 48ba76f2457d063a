/* tests/fuzz/fuzz_request.c — libFuzzer target for the decoding end of keeld's request path:
 * bytes checked by pbcheck.c as one of etcd's request messages (the first byte picks which),
 * then decoded by protobuf-c when the check accepts them, as services.c does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pbcheck.h"
#include "rpc.pb-c.h"

static const ProtobufCMessageDescriptor *const requests[] = {
	&etcdserverpb__range_request__descriptor,
	&etcdserverpb__put_request__descriptor,
	&etcdserverpb__delete_range_request__descriptor,
	&etcdserverpb__txn_request__descriptor,
	&etcdserverpb__compaction_request__descriptor,
	&etcdserverpb__watch_request__descriptor,
	&etcdserverpb__lease_grant_request__descriptor,
	&etcdserverpb__lease_revoke_request__descriptor,
	&etcdserverpb__lease_keep_alive_request__descriptor,
	&etcdserverpb__lease_time_to_live_request__descriptor,
	&etcdserverpb__hash_kvrequest__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const ProtobufCMessageDescriptor *d = requests[data[0] % (sizeof(requests) /
								 sizeof(requests[0]))];
	char err[512];
	uint8_t *clean = NULL;
	size_t clean_len = 0;
	if (pb_check(d, data + 1, size - 1, err, sizeof(err), &clean, &clean_len) == 0) {
		ProtobufCMessage *m = clean ? protobuf_c_message_unpack(d, NULL, clean_len, clean)
					    : protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
	}
	free(clean);
	return 0;
}
