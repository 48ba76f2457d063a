/* tests/fuzz/fuzz_peer.c — libFuzzer target for the peer frame decoder: each input is what
 * one receiving connection of member 2 (cluster 0xC1, knowing member 1) reads, fed in
 * pieces whose sizes the input also chooses. Must never crash, leak or hang. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

/* Input layout: byte 0 is f << 7 | n; the next n bytes are piece sizes (each + 1, used in
 * turn), the rest is the stream. n = 0 feeds the stream in one piece. With f set, the
 * checksum of every whole frame is recomputed first, so mutations reach the payload
 * decoders instead of stopping at the CRC. Seeds in corpus/fuzz_peer come from
 * `unit_peer --write-seeds DIR` (tests/unit/test_peer.c). */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fix_checksums(uint8_t *p, size_t len)
{
	size_t off = 0;
	while (len - off >= PEER_FRAME_HEADER_SIZE) {
		uint32_t flen = be32(p + off);
		if (flen < 5 || flen > len - off - 4)
			return;
		uint32_t crc = raft_crc32c(0, p + off + 4, 1);
		crc = raft_crc32c(crc, p + off + PEER_FRAME_HEADER_SIZE, flen - 5);
		for (int i = 0; i < 4; i++)
			p[off + 5 + i] = (uint8_t)(crc >> (24 - 8 * i));
		off += 4 + (size_t)flen;
	}
}

static void on_raft(void *ud, raft_msg_t *m)
{
	(void)ud;
	raft_msg_free(m);
}

static void on_app(void *ud, uint64_t from, uint32_t kind, const uint8_t *data, size_t len)
{
	(void)ud;
	(void)from;
	(void)kind;
	(void)data;
	(void)len;
}

static bool known_sender(void *ud, uint64_t id)
{
	(void)ud;
	return id == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n_sizes = data[0] & 0x7f;
	bool fix = data[0] & 0x80;
	if (size < 1 + n_sizes)
		return 0;
	const uint8_t *sizes = data + 1;
	size_t len = size - 1 - n_sizes;
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1 + n_sizes, len);
	if (fix)
		fix_checksums(p, len);

	peer_options_t opt;
	peer_options_default(&opt);
	opt.cluster_id = 0xC1;
	opt.max_frame_size = 64 * 1024; /* small, so long frames are cheap to reach */
	static const peer_decoder_callbacks_t cb = {
		.on_raft = on_raft, .on_app = on_app, .known_sender = known_sender};
	peer_decoder_t *d = peer_decoder_new(2, &opt, &cb, NULL);
	if (!d) {
		free(p);
		return 0;
	}
	char err[256];
	for (size_t i = 0, off = 0; off < len; i++) {
		size_t piece = n_sizes ? (size_t)sizes[i % n_sizes] + 1 : len;
		if (piece > len - off)
			piece = len - off;
		if (peer_decoder_feed(d, p + off, piece, err, sizeof(err)) < 0)
			break;
		off += piece;
	}
	peer_decoder_free(d);
	free(p);
	return 0;
}
