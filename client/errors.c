/* client/errors.c — etcd's error kinds recognised from a status code and the server's
 * message, and filling a keel_error_t. Pure: no I/O, no allocation; the messages are
 * matched as etcd 3.4 (and keeld, which copies them) sends them. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keel/keel.h"

/* Matched anywhere in the message: etcd prefixes most with "etcdserver: ", clientv3 and
 * gRPC wrappers may add their own prefix ("rpc error: code = ... desc = "). The more
 * specific texts come first where one contains another. */
static const struct {
	const char *text;
	keel_errkind_t kind;
} kt_error_texts[] = {
	{"mvcc: required revision has been compacted", KEEL_E_COMPACTED},
	{"mvcc: required revision is a future revision", KEEL_E_FUTURE_REV},
	{"mvcc: database space exceeded", KEEL_E_NO_SPACE},
	{"requested lease not found", KEEL_E_LEASE_NOT_FOUND},
	{"lease already exists", KEEL_E_LEASE_EXISTS},
	{"etcdserver: no leader", KEEL_E_NO_LEADER},
	/* ...and its variants: "possibly due to previous leader failure", "possibly due to
	 * connection lost", "waiting for the applied index took too long". */
	{"etcdserver: request timed out", KEEL_E_TIMEOUT},
	{"context deadline exceeded", KEEL_E_DEADLINE},
	{"too many operations in txn request", KEEL_E_TOO_MANY_OPS},
	{"duplicate key given in txn request", KEEL_E_DUPLICATE_KEY},
	{"etcdserver: request is too large", KEEL_E_REQUEST_TOO_LARGE},
	{"etcdserver: member not found", KEEL_E_MEMBER_NOT_FOUND},
	/* Local texts (transport.c): a handle or stream closed under a call. */
	{"grpc: the client connection is closing", KEEL_E_CLOSED},
	{"keel: handle closed", KEEL_E_CLOSED},
	{"keel: stream closed", KEEL_E_CLOSED},
};

keel_errkind_t keel_errkind_of(int code, const char *message)
{
	if (code == KEEL_CODE_OK)
		return KEEL_E_NONE;
	if (message && message[0]) {
		size_t n = sizeof kt_error_texts / sizeof kt_error_texts[0];
		for (size_t i = 0; i < n; i++)
			if (strstr(message, kt_error_texts[i].text))
				return kt_error_texts[i].kind;
	}
	/* Another etcd error (e.g. "etcdserver: unhealthy cluster", sent as Unavailable) is
	 * the server's answer, not an unreachable endpoint. */
	if (message && strncmp(message, "etcdserver: ", 12) == 0)
		return KEEL_E_OTHER;
	/* A status without a message etcd names: the code alone still says something. */
	switch (code) {
	case KEEL_CODE_DEADLINE_EXCEEDED:
		return KEEL_E_DEADLINE;
	case KEEL_CODE_UNAVAILABLE:
		return KEEL_E_UNAVAILABLE;
	default:
		return KEEL_E_OTHER;
	}
}

int keel_error_set(keel_error_t *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->message[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	err->kind = keel_errkind_of(code, err->message);
	return code;
}
