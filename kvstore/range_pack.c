/* range_pack.c — a range answered as one buffer of protobuf wire bytes (kv_range_pack):
 * the read transaction, the buffer (mapped when large, given back from the front as it is
 * sent) and protobuf's varints. Picking and writing the records is mvcc.c's; this file
 * never builds a KeyValue and never writes to the store. */
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kv_int.h"

/* Below this a buffer is malloc'd; from it on, mapped so that its pages can be returned
 * one stretch at a time, and never less than this at once (one munmap per MiB sent). */
#define KV_PACK_MAP_MIN ((size_t)1 << 20)

size_t kv_pb_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

uint8_t *kv_pb_put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static size_t kv_page_size(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	return pg > 0 ? (size_t)pg : 4096;
}

int kv_packed_alloc(kv_packed_t *p, size_t len)
{
	memset(p, 0, sizeof(*p));
	if (len < KV_PACK_MAP_MIN) {
		p->data = malloc(len ? len : 1);
		if (!p->data)
			return KV_ERR_NOMEM;
		p->len = len;
		return KV_OK;
	}
	size_t pg = kv_page_size();
	if (len > SIZE_MAX - pg)
		return KV_ERR_NOMEM;
	size_t map_len = (len + pg - 1) / pg * pg;
	void *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return KV_ERR_NOMEM;
	p->data = p->map = m;
	p->len = len;
	p->map_len = map_len;
	return KV_OK;
}

void kv_packed_release(kv_packed_t *p, size_t upto)
{
	if (!p->map || p->map_len == 0)
		return;
	if (upto > p->len)
		upto = p->len;
	size_t pg = kv_page_size();
	uint8_t *cut = p->data + upto / pg * pg;
	if (cut <= p->map || (size_t)(cut - p->map) < KV_PACK_MAP_MIN)
		return;
	size_t drop = (size_t)(cut - p->map);
	if (munmap(p->map, drop) != 0)
		return;              /* keep holding it; kv_packed_free unmaps the rest */
	p->map = cut;
	p->map_len -= drop;
}

void kv_packed_free(kv_packed_t *p)
{
	if (p->map) {
		if (p->map_len)
			munmap(p->map, p->map_len);
	} else {
		free(p->data);
	}
	memset(p, 0, sizeof(*p));
}

int kv_range_pack(kv_t *kv, const Etcdserverpb__RangeRequest *req,
		  const Etcdserverpb__ResponseHeader *hdr, size_t max_len, kv_packed_t *out)
{
	memset(out, 0, sizeof(*out));
	MDB_txn *txn;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	/* The revision this snapshot sees, not kv->rev: apply may be running elsewhere. */
	int rc = kv_read_begin(kv, &txn, &h.revision);
	if (rc != KV_OK)
		return rc;
	if (hdr) {
		h.cluster_id = hdr->cluster_id;
		h.member_id = hdr->member_id;
		h.raft_term = hdr->raft_term;
	}
	rc = mvcc_range_pack(kv, txn, h.revision, req, &h, max_len, out);
	mdb_txn_abort(txn);
	return rc;
}
