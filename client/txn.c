/* client/txn.c — the txn builder and its commit. The builder owns a TxnRequest message
 * whose every part it allocated (so protobuf-c frees it); adds never fail loudly, the
 * first failure is remembered and reported by keel_txn_commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "conv.h"

struct keel_txn {
	Etcdserverpb__TxnRequest *m;
	int timeout_ms;
	char error[128];             /* the first failed add; "" when none */
};

keel_txn_t *keel_txn_new(void)
{
	keel_txn_t *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->m = malloc(sizeof(*t->m));
	if (!t->m) {
		free(t);
		return NULL;
	}
	etcdserverpb__txn_request__init(t->m);
	return t;
}

void keel_txn_free(keel_txn_t *t)
{
	if (!t)
		return;
	protobuf_c_message_free_unpacked(&t->m->base, NULL);
	free(t);
}

void keel_txn_timeout(keel_txn_t *t, int timeout_ms)
{
	if (t)
		t->timeout_ms = timeout_ms;
}

static void txn_fail(keel_txn_t *t, const char *what)
{
	if (!t->error[0])
		snprintf(t->error, sizeof(t->error), "txn: %s", what);
}

/* A deep copy of msg made of malloc'ed parts only (a round trip through the wire form). */
static void *txn_copy(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(msg, buf);
	ProtobufCMessage *c = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return c;
}

static bool txn_append(void ***arr, size_t *n, void *item)
{
	void **a = realloc(*arr, (*n + 1) * sizeof(*a));
	if (!a)
		return false;
	a[(*n)++] = item;
	*arr = a;
	return true;
}

static void txn_add_cmp(keel_txn_t *t, Etcdserverpb__Compare *c)
{
	Etcdserverpb__Compare *copy = txn_copy(&c->base);
	if (!copy || !txn_append((void ***)&t->m->compare, &t->m->n_compare, copy)) {
		if (copy)
			protobuf_c_message_free_unpacked(&copy->base, NULL);
		txn_fail(t, "out of memory");
	}
}

static void txn_cmp_init(Etcdserverpb__Compare *c, keel_cmp_op_t op, const void *key,
			 size_t key_len, const void *range_end, size_t range_end_len)
{
	etcdserverpb__compare__init(c);
	c->result = (Etcdserverpb__Compare__CompareResult)op;
	c->key.data = (uint8_t *)(uintptr_t)key;
	c->key.len = key ? key_len : 0;
	c->range_end.data = (uint8_t *)(uintptr_t)range_end;
	c->range_end.len = range_end ? range_end_len : 0;
}

void keel_txn_cmp_int(keel_txn_t *t, keel_cmp_target_t target, keel_cmp_op_t op,
		      const void *key, size_t key_len, const void *range_end,
		      size_t range_end_len, int64_t v)
{
	if (!t)
		return;
	if ((unsigned)op > KEEL_CMP_NOT_EQUAL) {
		txn_fail(t, "bad compare operator");
		return;
	}
	Etcdserverpb__Compare c;
	txn_cmp_init(&c, op, key, key_len, range_end, range_end_len);
	c.target = (Etcdserverpb__Compare__CompareTarget)target;
	switch (target) {
	case KEEL_CMP_VERSION:
		c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
		c.version = v;
		break;
	case KEEL_CMP_CREATE:
		c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
		c.create_revision = v;
		break;
	case KEEL_CMP_MOD:
		c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
		c.mod_revision = v;
		break;
	case KEEL_CMP_LEASE:
		c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
		c.lease = v;
		break;
	default:
		txn_fail(t, "keel_txn_cmp_int: target is not an integer field");
		return;
	}
	txn_add_cmp(t, &c);
}

void keel_txn_cmp_value(keel_txn_t *t, keel_cmp_op_t op, const void *key, size_t key_len,
			const void *range_end, size_t range_end_len, const void *value,
			size_t value_len)
{
	if (!t)
		return;
	if ((unsigned)op > KEEL_CMP_NOT_EQUAL) {
		txn_fail(t, "bad compare operator");
		return;
	}
	Etcdserverpb__Compare c;
	txn_cmp_init(&c, op, key, key_len, range_end, range_end_len);
	c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
	c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
	c.value.data = (uint8_t *)(uintptr_t)value;
	c.value.len = value ? value_len : 0;
	txn_add_cmp(t, &c);
}

/* Adds op (a RequestOp borrowing the caller's buffers) to branch b as a deep copy. */
static void txn_add_op(keel_txn_t *t, keel_branch_t b, Etcdserverpb__RequestOp *op)
{
	if (b != KEEL_THEN && b != KEEL_ELSE) {
		txn_fail(t, "bad branch");
		return;
	}
	Etcdserverpb__RequestOp *copy = txn_copy(&op->base);
	bool ok = copy != NULL;
	if (ok && b == KEEL_THEN)
		ok = txn_append((void ***)&t->m->success, &t->m->n_success, copy);
	else if (ok)
		ok = txn_append((void ***)&t->m->failure, &t->m->n_failure, copy);
	if (!ok) {
		if (copy)
			protobuf_c_message_free_unpacked(&copy->base, NULL);
		txn_fail(t, "out of memory");
	}
}

/* The builders' argument check: a missing request fails the txn (a missing txn is a no-op). */
static bool txn_has_arg(keel_txn_t *t, const void *arg, const char *missing)
{
	if (t && !arg)
		txn_fail(t, missing);
	return t && arg;
}

void keel_txn_range(keel_txn_t *t, keel_branch_t b, const keel_range_req_t *req)
{
	if (!txn_has_arg(t, req, "keel_txn_range: no request"))
		return;
	Etcdserverpb__RangeRequest r;
	conv_range_req(&r, req);
	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
	op.request_range = &r;
	txn_add_op(t, b, &op);
}

void keel_txn_put(keel_txn_t *t, keel_branch_t b, const keel_put_req_t *req)
{
	if (!txn_has_arg(t, req, "keel_txn_put: no request"))
		return;
	Etcdserverpb__PutRequest r;
	conv_put_req(&r, req);
	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
	op.request_put = &r;
	txn_add_op(t, b, &op);
}

void keel_txn_delete(keel_txn_t *t, keel_branch_t b, const keel_delete_req_t *req)
{
	if (!txn_has_arg(t, req, "keel_txn_delete: no request"))
		return;
	Etcdserverpb__DeleteRangeRequest r;
	conv_delete_req(&r, req);
	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op.request_delete_range = &r;
	txn_add_op(t, b, &op);
}

void keel_txn_txn(keel_txn_t *t, keel_branch_t b, const keel_txn_t *sub)
{
	if (!txn_has_arg(t, sub, "keel_txn_txn: no sub-transaction"))
		return;
	if (sub->error[0]) {
		txn_fail(t, sub->error + 5);
		return;
	}
	Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
	op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
	op.request_txn = sub->m;
	txn_add_op(t, b, &op);
}

int keel_txn_commit(keel_t *k, const keel_txn_t *t, keel_txn_result_t **out, keel_error_t *err)
{
	if (!k || !t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_txn_commit: missing argument");
	if (out)
		*out = NULL;
	if (t->error[0])
		return keel_error_set(err, KEEL_CODE_LOCAL, "%s", t->error);
	ProtobufCMessage *resp;
	int rc = conv_call(k->t, "/etcdserverpb.KV/Txn", NULL, &t->m->base, t->timeout_ms, false,
			   &etcdserverpb__txn_response__descriptor, &resp, err);
	if (rc != 0)
		return rc;
	if (out)
		*out = conv_txn_result((Etcdserverpb__TxnResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return !out || *out ? 0 : conv_oom(err);
}
