/* kv_harness.h — a kvstore in a fresh temporary directory with a virtual clock, and
 * one-line helpers that apply requests at increasing Raft indexes, for kvstore tests. */
#ifndef KEEL_KV_HARNESS_H
#define KEEL_KV_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kvstore.h"

typedef struct kvh {
	char dir[256];
	char path[320];
	kv_t *kv;
	kv_options_t opt;
	uint64_t now_ms;             /* the virtual clock the store reads */
	uint64_t index;              /* Raft index of the last applied request */
	uint64_t term;
} kvh_t;

/* A new empty store; opt may be NULL for the defaults (the clock is always virtual). */
kvh_t *kvh_new(const kv_options_t *opt);
/* Closes the store and deletes its directory. */
void kvh_free(kvh_t *h);
/* Closes and opens the same file again, as a restart does. */
void kvh_reopen(kvh_t *h);

/* Applies req at the next index; returns the result's err, res (may be NULL) gets the
 * rest and then owns res->resp (kvh frees it when res is NULL). */
int kvh_apply(kvh_t *h, const Etcdserverpb__InternalRaftRequest *req, kv_result_t *res);

/* Shorthands that assert success. Keys and values are C strings; end NULL means a single
 * key, "" + from_key convention is the caller's ("\0" needs kvh_bin). */
int64_t kvh_put(kvh_t *h, const char *key, const char *value, int64_t lease);
int64_t kvh_del(kvh_t *h, const char *key, const char *end);
Etcdserverpb__RangeResponse *kvh_get(kvh_t *h, const char *key, const char *end, int64_t rev);
int64_t kvh_grant(kvh_t *h, int64_t id, int64_t ttl);
int kvh_revoke(kvh_t *h, int64_t id);
int kvh_compact(kvh_t *h, int64_t rev);
uint32_t kvh_hash(kvh_t *h, int64_t rev);
void kvh_range_free(Etcdserverpb__RangeResponse *r);

/* A binary datum from a C string; "\\0" spelled as kvh_zero. */
ProtobufCBinaryData kvh_bin(const char *s);
extern const ProtobufCBinaryData kvh_zero;   /* the one byte "\0": from-key range end */

#endif
