/* client/conv.c — etcd's protobuf-c messages <-> libkeel's result structs, the typed unary
 * call, and every result's *_free. Never keeps a pointer into a message; a result that
 * cannot be completed (out of memory) is freed before NULL is returned. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"

int conv_oom(keel_error_t *err)
{
	return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
}

/* protobuf-c unpacks nested messages by recursion without a limit, and TxnResponse nests
 * through ResponseOp: a hostile answer a few MiB long would overflow the caller's stack.
 * Deeper than this (64 nested txns) is refused before unpacking. */
#define CONV_MAX_DEPTH 128

static bool conv_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
		uint8_t b = p[(*i)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* False when the message d in p nests deeper than CONV_MAX_DEPTH. Anything malformed is
 * left for protobuf-c to reject; this walk only follows d's message fields. */
static bool conv_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
			  int depth)
{
	size_t i = 0;
	if (depth > CONV_MAX_DEPTH)
		return false;
	while (i < n) {
		uint64_t key, v;
		if (!conv_varint(p, n, &i, &key))
			return true;
		switch (key & 7) {
		case 0:
			if (!conv_varint(p, n, &i, &v))
				return true;
			break;
		case 1:
		case 5: {
			size_t w = (key & 7) == 1 ? 8 : 4;
			if (n - i < w)
				return true;
			i += w;
			break;
		}
		case 2: {
			if (!conv_varint(p, n, &i, &v) || v > n - i)
				return true;
			const ProtobufCFieldDescriptor *f =
				key >> 3 <= UINT32_MAX
					? protobuf_c_message_descriptor_get_field(
						  d, (unsigned)(key >> 3))
					: NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    !conv_depth_ok(f->descriptor, p + i, (size_t)v, depth + 1))
				return false;
			i += (size_t)v;
			break;
		}
		default:
			return true;
		}
	}
	return true;
}

int conv_call(kt_t *t, const char *path, const char *endpoint, const ProtobufCMessage *req,
	      int timeout_ms, bool idempotent, const ProtobufCMessageDescriptor *resp_desc,
	      ProtobufCMessage **resp, keel_error_t *err)
{
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return conv_oom(err);
	protobuf_c_message_pack(req, buf);
	uint8_t *out = NULL;
	size_t out_len = 0;
	int rc = kt_unary(t, path, endpoint, buf, len, timeout_ms, idempotent, &out, &out_len,
			  err);
	free(buf);
	if (rc != 0) {
		free(out);
		return rc;
	}
	if (!conv_depth_ok(resp_desc, out, out_len, 1)) {
		free(out);
		*resp = NULL;
		return keel_error_set(err, KEEL_CODE_INTERNAL,
				      "grpc: failed to unmarshal the received message (%s): "
				      "nested deeper than %d", resp_desc->name, CONV_MAX_DEPTH);
	}
	*resp = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
	free(out);
	if (!*resp)
		return keel_error_set(err, KEEL_CODE_INTERNAL,
				      "grpc: failed to unmarshal the received message (%s)",
				      resp_desc->name);
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

/* ---- parts --------------------------------------------------------------------------- */

void conv_header(keel_header_t *out, const Etcdserverpb__ResponseHeader *h)
{
	memset(out, 0, sizeof(*out));
	if (!h)
		return;
	out->cluster_id = h->cluster_id;
	out->member_id = h->member_id;
	out->revision = h->revision;
	out->raft_term = h->raft_term;
}

uint8_t *conv_bytes(const void *p, size_t n)
{
	uint8_t *b = malloc(n + 1);
	if (!b)
		return NULL;
	if (n)
		memcpy(b, p, n);
	b[n] = 0;
	return b;
}

int conv_kv(keel_kv_t *out, const Mvccpb__KeyValue *kv)
{
	memset(out, 0, sizeof(*out));
	out->key = conv_bytes(kv->key.data, kv->key.len);
	out->value = conv_bytes(kv->value.data, kv->value.len);
	if (!out->key || !out->value) {
		conv_kv_clear(out);
		return -1;
	}
	out->key_len = kv->key.len;
	out->value_len = kv->value.len;
	out->create_revision = kv->create_revision;
	out->mod_revision = kv->mod_revision;
	out->version = kv->version;
	out->lease = kv->lease;
	return 0;
}

void conv_kv_clear(keel_kv_t *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

/* An array of n copied KeyValues (NULL with n == 0 is fine); -1 on out of memory. */
static int conv_kvs(keel_kv_t **out, Mvccpb__KeyValue *const *kvs, size_t n)
{
	*out = NULL;
	if (n == 0)
		return 0;
	keel_kv_t *a = calloc(n, sizeof(*a));
	if (!a)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (conv_kv(&a[i], kvs[i]) != 0) {
			while (i-- > 0)
				conv_kv_clear(&a[i]);
			free(a);
			return -1;
		}
	}
	*out = a;
	return 0;
}

static void conv_kvs_free(keel_kv_t *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		conv_kv_clear(&a[i]);
	free(a);
}

static keel_kv_t *conv_kv_new(const Mvccpb__KeyValue *kv)
{
	keel_kv_t *p = malloc(sizeof(*p));
	if (p && conv_kv(p, kv) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

static void conv_kv_free(keel_kv_t *kv)
{
	if (kv)
		conv_kv_clear(kv);
	free(kv);
}

static char *conv_str(const char *s)
{
	s = s ? s : "";
	return (char *)conv_bytes(s, strlen(s));
}

static void conv_strs_free(char **a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		free(a[i]);
	free(a);
}

static int conv_strs(char ***out, char *const *s, size_t n)
{
	*out = NULL;
	if (n == 0)
		return 0;
	char **a = calloc(n, sizeof(*a));
	if (!a)
		return -1;
	for (size_t i = 0; i < n; i++) {
		a[i] = conv_str(s[i]);
		if (!a[i]) {
			conv_strs_free(a, i);
			return -1;
		}
	}
	*out = a;
	return 0;
}

/* ---- KV ------------------------------------------------------------------------------ */

keel_range_result_t *conv_range_result(const Etcdserverpb__RangeResponse *m)
{
	keel_range_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	r->more = m->more;
	r->count = m->count;
	if (conv_kvs(&r->kvs, m->kvs, m->n_kvs) != 0) {
		free(r);
		return NULL;
	}
	r->n_kvs = m->n_kvs;
	return r;
}

void keel_range_result_free(keel_range_result_t *r)
{
	if (!r)
		return;
	conv_kvs_free(r->kvs, r->n_kvs);
	free(r);
}

keel_put_result_t *conv_put_result(const Etcdserverpb__PutResponse *m)
{
	keel_put_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	if (m->prev_kv) {
		r->prev_kv = conv_kv_new(m->prev_kv);
		if (!r->prev_kv) {
			free(r);
			return NULL;
		}
	}
	return r;
}

void keel_put_result_free(keel_put_result_t *r)
{
	if (!r)
		return;
	conv_kv_free(r->prev_kv);
	free(r);
}

keel_delete_result_t *conv_delete_result(const Etcdserverpb__DeleteRangeResponse *m)
{
	keel_delete_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	r->deleted = m->deleted;
	if (conv_kvs(&r->prev_kvs, m->prev_kvs, m->n_prev_kvs) != 0) {
		free(r);
		return NULL;
	}
	r->n_prev_kvs = m->n_prev_kvs;
	return r;
}

void keel_delete_result_free(keel_delete_result_t *r)
{
	if (!r)
		return;
	conv_kvs_free(r->prev_kvs, r->n_prev_kvs);
	free(r);
}

/* One ResponseOp; an op whose oneof is unset (a newer server) becomes an empty range. */
static int conv_op_result(keel_op_result_t *out, const Etcdserverpb__ResponseOp *op)
{
	static const Etcdserverpb__RangeResponse empty = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	switch (op->response_case) {
	case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
		out->type = KEEL_OP_PUT;
		out->u.put = conv_put_result(op->response_put);
		return out->u.put ? 0 : -1;
	case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
		out->type = KEEL_OP_DELETE;
		out->u.del = conv_delete_result(op->response_delete_range);
		return out->u.del ? 0 : -1;
	case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
		out->type = KEEL_OP_TXN;
		out->u.txn = conv_txn_result(op->response_txn);
		return out->u.txn ? 0 : -1;
	case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
		out->type = KEEL_OP_RANGE;
		out->u.range = conv_range_result(op->response_range);
		return out->u.range ? 0 : -1;
	default:
		out->type = KEEL_OP_RANGE;
		out->u.range = conv_range_result(&empty);
		return out->u.range ? 0 : -1;
	}
}

static void conv_op_result_clear(keel_op_result_t *op)
{
	switch (op->type) {
	case KEEL_OP_RANGE:
		keel_range_result_free(op->u.range);
		break;
	case KEEL_OP_PUT:
		keel_put_result_free(op->u.put);
		break;
	case KEEL_OP_DELETE:
		keel_delete_result_free(op->u.del);
		break;
	case KEEL_OP_TXN:
		keel_txn_result_free(op->u.txn);
		break;
	}
}

keel_txn_result_t *conv_txn_result(const Etcdserverpb__TxnResponse *m)
{
	keel_txn_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	r->succeeded = m->succeeded;
	if (m->n_responses == 0)
		return r;
	r->responses = calloc(m->n_responses, sizeof(*r->responses));
	if (!r->responses) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < m->n_responses; i++) {
		if (conv_op_result(&r->responses[i], m->responses[i]) != 0) {
			keel_txn_result_free(r);
			return NULL;
		}
		r->n_responses = i + 1;
	}
	return r;
}

void keel_txn_result_free(keel_txn_result_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_responses; i++)
		conv_op_result_clear(&r->responses[i]);
	free(r->responses);
	free(r);
}

/* ---- lease --------------------------------------------------------------------------- */

keel_lease_ttl_result_t *conv_lease_ttl_result(const Etcdserverpb__LeaseTimeToLiveResponse *m)
{
	keel_lease_ttl_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	r->id = m->id;
	r->ttl = m->ttl;
	r->granted_ttl = m->grantedttl;
	if (m->n_keys == 0)
		return r;
	r->keys = calloc(m->n_keys, sizeof(*r->keys));
	if (!r->keys) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < m->n_keys; i++) {
		r->keys[i].key = conv_bytes(m->keys[i].data, m->keys[i].len);
		if (!r->keys[i].key) {
			keel_lease_ttl_result_free(r);
			return NULL;
		}
		r->keys[i].key_len = m->keys[i].len;
		r->n_keys = i + 1;
	}
	return r;
}

void keel_lease_ttl_result_free(keel_lease_ttl_result_t *r)
{
	if (!r)
		return;
	conv_kvs_free(r->keys, r->n_keys);
	free(r);
}

keel_lease_list_result_t *conv_lease_list_result(const Etcdserverpb__LeaseLeasesResponse *m)
{
	keel_lease_list_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	if (m->n_leases == 0)
		return r;
	r->ids = calloc(m->n_leases, sizeof(*r->ids));
	if (!r->ids) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < m->n_leases; i++)
		r->ids[i] = m->leases[i]->id;
	r->n_ids = m->n_leases;
	return r;
}

void keel_lease_list_result_free(keel_lease_list_result_t *r)
{
	if (!r)
		return;
	free(r->ids);
	free(r);
}

/* ---- cluster ------------------------------------------------------------------------- */

static void conv_member_clear(keel_member_t *m)
{
	free(m->name);
	conv_strs_free(m->peer_urls, m->n_peer_urls);
	conv_strs_free(m->client_urls, m->n_client_urls);
	memset(m, 0, sizeof(*m));
}

static int conv_member(keel_member_t *out, const Etcdserverpb__Member *m)
{
	memset(out, 0, sizeof(*out));
	out->id = m->id;
	out->is_learner = m->islearner;
	out->name = conv_str(m->name);
	if (!out->name)
		return -1;
	if (conv_strs(&out->peer_urls, m->peerurls, m->n_peerurls) != 0) {
		conv_member_clear(out);
		return -1;
	}
	out->n_peer_urls = m->n_peerurls;
	if (conv_strs(&out->client_urls, m->clienturls, m->n_clienturls) != 0) {
		conv_member_clear(out);
		return -1;
	}
	out->n_client_urls = m->n_clienturls;
	return 0;
}

keel_member_result_t *conv_member_result(const Etcdserverpb__ResponseHeader *h,
					 const Etcdserverpb__Member *added, size_t n,
					 Etcdserverpb__Member *const *members)
{
	keel_member_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, h);
	if (added) {
		r->member = calloc(1, sizeof(*r->member));
		if (!r->member || conv_member(r->member, added) != 0) {
			free(r->member);
			free(r);
			return NULL;
		}
	}
	if (n) {
		r->members = calloc(n, sizeof(*r->members));
		if (!r->members) {
			keel_member_result_free(r);
			return NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (conv_member(&r->members[i], members[i]) != 0) {
			keel_member_result_free(r);
			return NULL;
		}
		r->n_members = i + 1;
	}
	return r;
}

void keel_member_result_free(keel_member_result_t *r)
{
	if (!r)
		return;
	if (r->member)
		conv_member_clear(r->member);
	free(r->member);
	for (size_t i = 0; i < r->n_members; i++)
		conv_member_clear(&r->members[i]);
	free(r->members);
	free(r);
}

/* ---- maintenance --------------------------------------------------------------------- */

keel_status_result_t *conv_status_result(const Etcdserverpb__StatusResponse *m)
{
	keel_status_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	r->db_size = m->dbsize;
	r->db_size_in_use = m->dbsizeinuse;
	r->leader = m->leader;
	r->raft_index = m->raftindex;
	r->raft_term = m->raftterm;
	r->raft_applied_index = m->raftappliedindex;
	r->is_learner = m->islearner;
	r->version = conv_str(m->version);
	if (!r->version || conv_strs(&r->errors, m->errors, m->n_errors) != 0) {
		keel_status_result_free(r);
		return NULL;
	}
	r->n_errors = m->n_errors;
	return r;
}

void keel_status_result_free(keel_status_result_t *r)
{
	if (!r)
		return;
	free(r->version);
	conv_strs_free(r->errors, r->n_errors);
	free(r);
}

keel_alarm_result_t *conv_alarm_result(const Etcdserverpb__AlarmResponse *m)
{
	keel_alarm_result_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	conv_header(&r->header, m->header);
	if (m->n_alarms == 0)
		return r;
	r->alarms = calloc(m->n_alarms, sizeof(*r->alarms));
	if (!r->alarms) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < m->n_alarms; i++) {
		r->alarms[i].member_id = m->alarms[i]->memberid;
		r->alarms[i].alarm = (keel_alarm_type_t)m->alarms[i]->alarm;
	}
	r->n_alarms = m->n_alarms;
	return r;
}

void keel_alarm_result_free(keel_alarm_result_t *r)
{
	if (!r)
		return;
	free(r->alarms);
	free(r);
}

/* ---- watch --------------------------------------------------------------------------- */

int conv_event(keel_event_t *out, const Mvccpb__Event *e)
{
	static const Mvccpb__KeyValue none = MVCCPB__KEY_VALUE__INIT;
	memset(out, 0, sizeof(*out));
	out->type = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? KEEL_EVENT_DELETE
								  : KEEL_EVENT_PUT;
	if (conv_kv(&out->kv, e->kv ? e->kv : &none) != 0)
		return -1;
	if (e->prev_kv) {
		out->prev_kv = conv_kv_new(e->prev_kv);
		if (!out->prev_kv) {
			conv_kv_clear(&out->kv);
			return -1;
		}
	}
	return 0;
}

void conv_event_clear(keel_event_t *e)
{
	conv_kv_clear(&e->kv);
	conv_kv_free(e->prev_kv);
	e->prev_kv = NULL;
}

/* ---- requests ------------------------------------------------------------------------ */

/* A borrowed byte field (protobuf-c only reads it while packing). */
static ProtobufCBinaryData conv_bin(const void *p, size_t n)
{
	ProtobufCBinaryData b = { .len = p ? n : 0, .data = (uint8_t *)(uintptr_t)p };
	return b;
}

void conv_range_req(Etcdserverpb__RangeRequest *m, const keel_range_req_t *req)
{
	etcdserverpb__range_request__init(m);
	m->key = conv_bin(req->key, req->key_len);
	m->range_end = conv_bin(req->range_end, req->range_end_len);
	m->limit = req->limit;
	m->revision = req->revision;
	m->sort_order = (Etcdserverpb__RangeRequest__SortOrder)req->sort_order;
	m->sort_target = (Etcdserverpb__RangeRequest__SortTarget)req->sort_target;
	m->serializable = req->serializable;
	m->keys_only = req->keys_only;
	m->count_only = req->count_only;
	m->min_mod_revision = req->min_mod_revision;
	m->max_mod_revision = req->max_mod_revision;
	m->min_create_revision = req->min_create_revision;
	m->max_create_revision = req->max_create_revision;
}

void conv_put_req(Etcdserverpb__PutRequest *m, const keel_put_req_t *req)
{
	etcdserverpb__put_request__init(m);
	m->key = conv_bin(req->key, req->key_len);
	m->value = conv_bin(req->value, req->value_len);
	m->lease = req->lease;
	m->prev_kv = req->prev_kv;
	m->ignore_value = req->ignore_value;
	m->ignore_lease = req->ignore_lease;
}

void conv_delete_req(Etcdserverpb__DeleteRangeRequest *m, const keel_delete_req_t *req)
{
	etcdserverpb__delete_range_request__init(m);
	m->key = conv_bin(req->key, req->key_len);
	m->range_end = conv_bin(req->range_end, req->range_end_len);
	m->prev_kv = req->prev_kv;
}
