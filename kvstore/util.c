/* util.c — small shared pieces of kvstore/: big-endian integers, the meta database,
 * error mapping with messages, event buffers and etcd's range conventions. No policy. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

void kv_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t kv_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int kv_set_error(kv_t *kv, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kv->errbuf, sizeof(kv->errbuf), fmt, ap);
	va_end(ap);
	return err;
}

int kv_from_mdb(kv_t *kv, int rc, const char *what)
{
	int err;
	switch (rc) {
	case MDB_SUCCESS:
		return KV_OK;
	case MDB_MAP_FULL:
		err = KV_ERR_NO_SPACE;
		break;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		err = KV_ERR_CORRUPT;
		break;
	case ENOMEM:
		err = KV_ERR_NOMEM;
		break;
	default:
		err = KV_ERR_IO;
		break;
	}
	return kv_set_error(kv, err, "%s: %s: %s", kv->path ? kv->path : "kvstore", what,
			    mdb_strerror(rc));
}

int kv_meta_get(kv_t *kv, MDB_txn *txn, const char *name, uint64_t *v)
{
	MDB_val k = { strlen(name), (void *)name }, d;
	int rc = mdb_get(txn, kv->dbi_meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return KV_OK;
	}
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, name);
	if (d.mv_size != 8)
		return kv_set_error(kv, KV_ERR_CORRUPT, "%s: meta value %s has %zu bytes, not 8",
				    kv->path, name, d.mv_size);
	*v = kv_get_be64(d.mv_data);
	return KV_OK;
}

int kv_meta_put(kv_t *kv, MDB_txn *txn, const char *name, uint64_t v)
{
	uint8_t buf[8];
	kv_put_be64(buf, v);
	MDB_val k = { strlen(name), (void *)name }, d = { 8, buf };
	return kv_from_mdb(kv, mdb_put(txn, kv->dbi_meta, &k, &d, 0), name);
}

int kv_events_push(kv_events_t *e, Mvccpb__Event *ev)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		Mvccpb__Event **p = realloc(e->ev, cap * sizeof(*p));
		if (!p)
			return KV_ERR_NOMEM;
		e->ev = p;
		e->cap = cap;
	}
	e->ev[e->n++] = ev;
	return KV_OK;
}

void kv_events_clear(kv_events_t *e)
{
	for (size_t i = 0; i < e->n; i++)
		protobuf_c_message_free_unpacked(&e->ev[i]->base, NULL);
	e->n = 0;
}

int kv_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

bool kv_in_range(const ProtobufCBinaryData *key, const ProtobufCBinaryData *start,
		 const ProtobufCBinaryData *end)
{
	if (end->len == 0)
		return kv_key_cmp(key->data, key->len, start->data, start->len) == 0;
	bool from_key = end->len == 1 && end->data[0] == 0;
	if (kv_key_cmp(key->data, key->len, start->data, start->len) < 0 &&
	    !(start->len == 1 && start->data[0] == 0 && from_key))
		return false;
	if (from_key)
		return true;
	return kv_key_cmp(key->data, key->len, end->data, end->len) < 0;
}

uint32_t kv_crc32c(uint32_t crc, const void *p, size_t n)
{
	return raft_crc32c(crc, p, n);
}

int kv_bin_dup(ProtobufCBinaryData *dst, const void *p, size_t n)
{
	dst->len = n;
	dst->data = NULL;
	if (!n)
		return KV_OK;
	dst->data = malloc(n);
	if (!dst->data) {
		dst->len = 0;
		return KV_ERR_NOMEM;
	}
	memcpy(dst->data, p, n);
	return KV_OK;
}

Etcdserverpb__ResponseHeader *kv_header_new(int64_t revision)
{
	Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	etcdserverpb__response_header__init(h);
	h->revision = revision;
	return h;
}
