/* server/peer_frame.c — the peer wire format: encoding frames and the incremental decoder
 * that checks a receiving connection's bytes. Pure: no sockets, no clocks, no globals; it
 * never trusts a length or an id it has not checked, and never aborts on bad input.
 *
 * Format (every integer big-endian, written byte by byte, never by casting a struct):
 *   frame   = u32 length | u8 type | u32 crc | payload
 *             length counts all after itself (5..max_frame_size); crc is the CRC-32C of
 *             type and payload, so a damaged frame is an error, never a different message
 *   HELLO 1 = u64 from | u64 to | u64 cluster | u32 version      (28 bytes, first frame)
 *   RAFT  2 = a packed raftpb.Message; to must be this member, from the HELLO's sender
 *   APP   3 = u32 kind | bytes                    (the server's own small messages)
 *   SNAP  4 = u64 total | u64 offset | bytes      one chunk of a packed MsgSnap
 *   ASK   5 = u32 version      instead of a HELLO: "who are the members?" (a member joining
 *             knows neither its id nor the cluster's yet); nothing may follow it
 *   MEMBERS 6 = a packed etcdserverpb.MemberListResponse     the answer to an ASK
 *   REMOVED 7 = u64 id         to a dialer whose id was removed from the cluster
 * MEMBERS and REMOVED travel the other way: from the receiving side to the dialer, which
 * reads them with peer_frame_parse.
 * Snapshot chunks arrive in order (offset = bytes received so far, total the same in
 * every chunk); the MsgSnap is unpacked and delivered only once all total bytes are in.
 * The reassembly buffer grows with the bytes actually received, never with a claimed
 * length, so a lying peer costs no more memory than it sends. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "peer.h"

#define FRAME_VERSION 1u
#define HELLO_PAYLOAD 28u
#define SNAP_PAYLOAD_HEADER 16u
#define KEEP_BUF_BYTES (2u << 20) /* above a default snapshot chunk */

enum frame_type {
	FRAME_HELLO = 1, FRAME_RAFT = 2, FRAME_APP = 3, FRAME_SNAP = 4, FRAME_ASK = 5,
	FRAME_MEMBERS = PEER_FRAME_MEMBERS, FRAME_REMOVED = PEER_FRAME_REMOVED,
};

struct peer_decoder {
	uint64_t self;
	uint64_t cluster;
	size_t max_frame;
	peer_decoder_callbacks_t cb;
	void *ud;
	bool hello_seen;
	bool asked;         /* an ASK came: the connection is only waiting for its answer */
	uint64_t from;      /* the HELLO's sender */
	bool failed;        /* sticky: a bad stream stays bad */
	uint8_t hdr[PEER_FRAME_HEADER_SIZE];
	size_t hdr_len;
	uint8_t type;
	size_t payload_len; /* of the frame being read (length - 5) */
	uint8_t *buf;       /* payload bytes of a frame that spans several feeds */
	size_t buf_len, buf_cap;
	bool in_snap;       /* a snapshot is being reassembled */
	uint64_t snap_total;
	uint8_t *snap;
	size_t snap_len, snap_cap;
};

static uint32_t frame_crc(uint8_t type, const uint8_t *payload, size_t n)
{
	return raft_crc32c(raft_crc32c(0, &type, 1), payload, n);
}

/* Writes the header of a frame whose payload is already at p + PEER_FRAME_HEADER_SIZE. */
static void frame_seal(uint8_t *p, uint8_t type, size_t payload_len)
{
	put_be32(p, (uint32_t)(payload_len + 5));
	p[4] = type;
	put_be32(p + 5, frame_crc(type, p + PEER_FRAME_HEADER_SIZE, payload_len));
}

void peer_frame_hello(uint8_t out[PEER_FRAME_HELLO_SIZE], uint64_t from, uint64_t to,
		      uint64_t cluster_id)
{
	uint8_t *p = out + PEER_FRAME_HEADER_SIZE;
	put_be64(p, from);
	put_be64(p + 8, to);
	put_be64(p + 16, cluster_id);
	put_be32(p + 24, FRAME_VERSION);
	frame_seal(out, FRAME_HELLO, HELLO_PAYLOAD);
}

uint8_t *peer_frame_raft(const raft_msg_t *m, size_t *len)
{
	size_t n = raftpb__message__get_packed_size(m);
	if (n >= UINT32_MAX - 5)
		return NULL;
	uint8_t *f = malloc(PEER_FRAME_HEADER_SIZE + n);
	if (!f)
		return NULL;
	raftpb__message__pack(m, f + PEER_FRAME_HEADER_SIZE);
	frame_seal(f, FRAME_RAFT, n);
	*len = PEER_FRAME_HEADER_SIZE + n;
	return f;
}

void peer_frame_ask(uint8_t out[PEER_FRAME_ASK_SIZE])
{
	put_be32(out + PEER_FRAME_HEADER_SIZE, FRAME_VERSION);
	frame_seal(out, FRAME_ASK, 4);
}

void peer_frame_removed(uint8_t out[PEER_FRAME_REMOVED_SIZE], uint64_t id)
{
	put_be64(out + PEER_FRAME_HEADER_SIZE, id);
	frame_seal(out, FRAME_REMOVED, 8);
}

uint8_t *peer_frame_members(const void *data, size_t dlen, size_t *len)
{
	if (dlen >= UINT32_MAX - 5)
		return NULL;
	uint8_t *f = malloc(PEER_FRAME_HEADER_SIZE + dlen);
	if (!f)
		return NULL;
	if (dlen)
		memcpy(f + PEER_FRAME_HEADER_SIZE, data, dlen);
	frame_seal(f, FRAME_MEMBERS, dlen);
	*len = PEER_FRAME_HEADER_SIZE + dlen;
	return f;
}

int peer_frame_parse(const uint8_t *buf, size_t len, size_t max_frame, uint8_t *type,
		     const uint8_t **payload, size_t *plen)
{
	if (len < PEER_FRAME_HEADER_SIZE)
		return 0;
	uint32_t flen = get_be32(buf);
	if (flen < 5 || flen > max_frame)
		return -1;
	if (len - 4 < flen)
		return 0;
	size_t n = flen - 5;
	if (frame_crc(buf[4], buf + PEER_FRAME_HEADER_SIZE, n) != get_be32(buf + 5))
		return -1;
	*type = buf[4];
	*payload = buf + PEER_FRAME_HEADER_SIZE;
	*plen = n;
	return (int)(4 + flen);
}

uint8_t *peer_frame_app(uint32_t kind, const void *data, size_t dlen, size_t *len)
{
	if (dlen >= UINT32_MAX - 9)
		return NULL;
	uint8_t *f = malloc(PEER_FRAME_HEADER_SIZE + 4 + dlen);
	if (!f)
		return NULL;
	put_be32(f + PEER_FRAME_HEADER_SIZE, kind);
	if (dlen)
		memcpy(f + PEER_FRAME_HEADER_SIZE + 4, data, dlen);
	frame_seal(f, FRAME_APP, 4 + dlen);
	*len = PEER_FRAME_HEADER_SIZE + 4 + dlen;
	return f;
}

void peer_frame_snap_header(uint8_t out[PEER_FRAME_SNAP_HEADER_SIZE], uint64_t total,
			    uint64_t offset, const uv_buf_t *chunk, size_t nbufs)
{
	uint8_t type = FRAME_SNAP;
	put_be64(out + PEER_FRAME_HEADER_SIZE, total);
	put_be64(out + PEER_FRAME_HEADER_SIZE + 8, offset);
	uint32_t crc = raft_crc32c(0, &type, 1);
	crc = raft_crc32c(crc, out + PEER_FRAME_HEADER_SIZE, SNAP_PAYLOAD_HEADER);
	size_t len = 0;
	for (size_t i = 0; i < nbufs; i++) {
		crc = raft_crc32c(crc, chunk[i].base, chunk[i].len);
		len += chunk[i].len;
	}
	put_be32(out, (uint32_t)(5 + SNAP_PAYLOAD_HEADER + len));
	out[4] = type;
	put_be32(out + 5, crc);
}

/* Here rather than in peer.c: the decoder (and the fuzz target) need it without libuv. */
void peer_options_default(peer_options_t *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->max_frame_size = 16u << 20;
	opt->snap_chunk_size = 1u << 20;
	opt->backoff_min_ms = 50;
	opt->backoff_max_ms = 2000;
	opt->max_queue_bytes = 64u << 20;
}

peer_decoder_t *peer_decoder_new(uint64_t self_id, const peer_options_t *opt,
				 const peer_decoder_callbacks_t *cb, void *ud)
{
	peer_decoder_t *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->self = self_id;
	d->cluster = opt->cluster_id;
	d->max_frame = opt->max_frame_size;
	d->cb = *cb;
	d->ud = ud;
	return d;
}

void peer_decoder_free(peer_decoder_t *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d->snap);
	free(d);
}

static int fail(peer_decoder_t *d, char *err, size_t errlen, const char *fmt, ...)
{
	d->failed = true;
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Grows *buf to hold need bytes, at most doubling, never past limit (need <= limit). */
static int buf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64 * 1024;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	if (n > limit)
		n = limit;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

static int decode_hello(peer_decoder_t *d, const uint8_t *p, size_t n, char *err, size_t el)
{
	if (n != HELLO_PAYLOAD)
		return fail(d, err, el, "HELLO of %zu bytes, want %u", n, HELLO_PAYLOAD);
	uint64_t from = get_be64(p), to = get_be64(p + 8), cluster = get_be64(p + 16);
	uint32_t version = get_be32(p + 24);
	if (version != FRAME_VERSION)
		return fail(d, err, el, "HELLO with frame version %" PRIu32 ", want %u", version,
			    FRAME_VERSION);
	if (cluster != d->cluster)
		return fail(d, err, el, "HELLO from cluster %" PRIx64 ", this is cluster %" PRIx64,
			    cluster, d->cluster);
	if (to != d->self)
		return fail(d, err, el, "HELLO for member %" PRIx64 ", this is member %" PRIx64,
			    to, d->self);
	if (from == RAFT_NONE || from == d->self)
		return fail(d, err, el, "HELLO from invalid sender %" PRIx64, from);
	if (d->cb.known_sender && !d->cb.known_sender(d->ud, from))
		return fail(d, err, el, "HELLO from unknown member %" PRIx64, from);
	d->hello_seen = true;
	d->from = from;
	return 0;
}

/* A dialer that does not know the cluster yet asks for its members; the owner answers
 * (on_ask) and the connection carries nothing else. */
static int decode_ask(peer_decoder_t *d, const uint8_t *p, size_t n, char *err, size_t el)
{
	if (n != 4 || get_be32(p) != FRAME_VERSION)
		return fail(d, err, el, "ASK of %zu bytes or of another frame version", n);
	if (!d->cb.on_ask)
		return fail(d, err, el, "ASK on a connection that does not answer one");
	d->asked = true;
	d->cb.on_ask(d->ud);
	return 0;
}

/* Unpacks and checks one Raft message; delivers it or fails. */
static int deliver_raft(peer_decoder_t *d, const uint8_t *p, size_t n, bool snap, char *err,
			size_t el)
{
	raft_msg_t *m = raftpb__message__unpack(NULL, n, p);
	if (!m)
		return fail(d, err, el, "undecodable raft message (%zu bytes)", n);
	const char *why = NULL;
	if (!protobuf_c_enum_descriptor_get_value(&raftpb__message_type__descriptor,
						  (int)m->type))
		why = "unknown message type";
	else if (m->to != d->self)
		why = "message for another member";
	else if (m->from != d->from)
		why = "message not from the HELLO's sender";
	else if (snap && m->type != RAFT_MSG_SNAP)
		why = "snapshot chunks that are not a MsgSnap";
	if (why) {
		int rc = fail(d, err, el, "%s (type %d, from %" PRIx64 ", to %" PRIx64 ")", why,
			      (int)m->type, m->from, m->to);
		raft_msg_free(m);
		return rc;
	}
	if (d->cb.on_raft)
		d->cb.on_raft(d->ud, m);
	else
		raft_msg_free(m);
	return 0;
}

static int decode_snap(peer_decoder_t *d, const uint8_t *p, size_t n, char *err, size_t el)
{
	if (n <= SNAP_PAYLOAD_HEADER)
		return fail(d, err, el, "snapshot chunk of %zu bytes has no data", n);
	uint64_t total = get_be64(p), offset = get_be64(p + 8);
	size_t chunk = n - SNAP_PAYLOAD_HEADER;
	if (offset == 0) {
		if (d->in_snap)
			return fail(d, err, el, "snapshot restarted before the previous completed");
		if (total > SIZE_MAX / 2)
			return fail(d, err, el, "snapshot of %" PRIu64 " bytes", total);
		d->in_snap = true;
		d->snap_total = total;
		d->snap_len = 0;
	} else if (!d->in_snap || total != d->snap_total || offset != d->snap_len) {
		return fail(d, err, el, "snapshot chunk at %" PRIu64 "/%" PRIu64 " out of order",
			    offset, total);
	}
	if (chunk > d->snap_total - d->snap_len)
		return fail(d, err, el, "snapshot chunk runs past its total of %" PRIu64, total);
	if (buf_reserve(&d->snap, &d->snap_cap, d->snap_len + chunk, (size_t)d->snap_total))
		return fail(d, err, el, "out of memory reassembling a snapshot");
	memcpy(d->snap + d->snap_len, p + SNAP_PAYLOAD_HEADER, chunk);
	d->snap_len += chunk;
	if (d->snap_len < d->snap_total)
		return 0;
	d->in_snap = false;
	int rc = deliver_raft(d, d->snap, d->snap_len, true, err, el);
	/* A snapshot is rare and big: give its memory back rather than keep it cached. */
	free(d->snap);
	d->snap = NULL;
	d->snap_cap = d->snap_len = 0;
	return rc;
}

static int decode_frame(peer_decoder_t *d, const uint8_t *p, size_t n, char *err, size_t el)
{
	uint32_t want = get_be32(d->hdr + 5), got = frame_crc(d->type, p, n);
	if (got != want)
		return fail(d, err, el, "frame of type %u fails its checksum (%08" PRIx32
			    " != %08" PRIx32 ")", d->type, got, want);
	if (d->asked)
		return fail(d, err, el, "frame of type %u after ASK", d->type);
	if (!d->hello_seen && d->type == FRAME_ASK)
		return decode_ask(d, p, n, err, el);
	if (!d->hello_seen) {
		if (d->type != FRAME_HELLO)
			return fail(d, err, el, "frame of type %u before HELLO", d->type);
		return decode_hello(d, p, n, err, el);
	}
	switch (d->type) {
	case FRAME_HELLO:
		return fail(d, err, el, "second HELLO on one connection");
	case FRAME_RAFT:
		return deliver_raft(d, p, n, false, err, el);
	case FRAME_APP:
		if (n < 4)
			return fail(d, err, el, "APP frame of %zu bytes", n);
		if (d->cb.on_app)
			d->cb.on_app(d->ud, d->from, get_be32(p), p + 4, n - 4);
		return 0;
	case FRAME_SNAP:
		return decode_snap(d, p, n, err, el);
	default:
		return fail(d, err, el, "unknown frame type %u", d->type);
	}
}

/* Consumes header bytes; on a complete header checks the length. */
static int feed_header(peer_decoder_t *d, const uint8_t **data, size_t *len, char *err,
		       size_t el)
{
	size_t take = PEER_FRAME_HEADER_SIZE - d->hdr_len;
	if (take > *len)
		take = *len;
	memcpy(d->hdr + d->hdr_len, *data, take);
	d->hdr_len += take;
	*data += take;
	*len -= take;
	if (d->hdr_len < PEER_FRAME_HEADER_SIZE)
		return 0;
	uint32_t flen = get_be32(d->hdr);
	if (flen < 5)
		return fail(d, err, el, "frame of length %" PRIu32, flen);
	if (flen > d->max_frame)
		return fail(d, err, el, "frame of %" PRIu32 " bytes exceeds the limit of %zu", flen,
			    d->max_frame);
	d->type = d->hdr[4];
	d->payload_len = flen - 5;
	d->buf_len = 0;
	return 0;
}

int peer_decoder_feed(peer_decoder_t *d, const uint8_t *data, size_t len, char *err,
		      size_t errlen)
{
	if (d->failed)
		return fail(d, err, errlen, "stream already failed");
	while (len > 0 || d->hdr_len == PEER_FRAME_HEADER_SIZE) {
		if (d->hdr_len < PEER_FRAME_HEADER_SIZE) {
			if (feed_header(d, &data, &len, err, errlen))
				return -1;
			continue;
		}
		size_t need = d->payload_len - d->buf_len;
		const uint8_t *frame;
		if (d->buf_len == 0 && len >= need) {
			frame = data; /* whole payload in this feed: decode in place */
		} else {
			size_t take = need < len ? need : len;
			if (take && buf_reserve(&d->buf, &d->buf_cap, d->buf_len + take,
						d->payload_len))
				return fail(d, err, errlen, "out of memory reading a frame");
			if (take)
				memcpy(d->buf + d->buf_len, data, take);
			d->buf_len += take;
			if (d->buf_len < d->payload_len)
				return 0; /* the whole feed is consumed; wait for more */
			need = take;
			frame = d->buf;
		}
		data += need;
		len -= need;
		d->hdr_len = 0;
		if (decode_frame(d, frame, d->payload_len, err, errlen))
			return -1;
		if (d->buf_cap > KEEP_BUF_BYTES) { /* one big frame should not pin its size */
			free(d->buf);
			d->buf = NULL;
			d->buf_cap = 0;
		}
	}
	return 0;
}
