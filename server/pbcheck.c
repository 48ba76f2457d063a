/* server/pbcheck.c — reads a request's bytes the way etcd 3.4's generated (gogo) decoders
 * do, before protobuf-c decodes them, so a malformed request gets etcd's own error text
 * ("proto: wrong wireType = 0 for field Key", "unexpected EOF", ...): grpc-go puts that
 * text in the status, and it is what etcd's users see. Checking only: it never decodes
 * values, and it walks the message descriptors protobuf-c generated. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbcheck.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_GROUP_START = 3,
       WIRE_GROUP_END = 4, WIRE_FIXED32 = 5 };

typedef struct rd {
	const uint8_t *p;
	size_t n, i;
	char *err;
	size_t errlen;
} rd_t;

static int fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd_t *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A varint as gogo reads one: more than 63 bits of shift is an overflow, running out of
 * bytes is io.ErrUnexpectedEOF. */
static int read_varint(rd_t *r, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0;; shift += 7) {
		if (shift >= 64)
			return fail(r, "proto: integer overflow");
		if (r->i >= r->n)
			return fail(r, "unexpected EOF");
		uint8_t b = r->p[r->i++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (b < 0x80)
			return 0;
	}
}

/* A length prefix: Go reads it into an int, so bit 63 makes it negative. */
static int read_length(rd_t *r, size_t *end)
{
	uint64_t len;
	if (read_varint(r, &len))
		return -1;
	if ((int64_t)len < 0)
		return fail(r, "proto: negative length found during unmarshaling");
	if (len > r->n - r->i)
		return fail(r, "unexpected EOF");
	*end = r->i + (size_t)len;
	return 0;
}

/* gogo's skip function for fields the message does not know; returns the new offset
 * through r->i, which may run past the end (the caller reports that as EOF). */
static int skip_field(rd_t *r, uint64_t *pos)
{
	uint64_t wire;
	if (read_varint(r, &wire))
		return -1;
	switch (wire & 7) {
	case WIRE_VARINT:
		for (;;) {
			if (r->i >= r->n)
				return fail(r, "unexpected EOF");
			if (r->p[r->i++] < 0x80)
				break;
		}
		*pos = r->i;
		return 0;
	case WIRE_FIXED64:
		*pos = r->i + 8;
		return 0;
	case WIRE_BYTES: {
		uint64_t len;
		if (read_varint(r, &len))
			return -1;
		if ((int64_t)len < 0)
			return fail(r, "proto: negative length found during unmarshaling");
		*pos = r->i + len;
		return 0;
	}
	case WIRE_GROUP_START:
		for (;;) {
			size_t start = r->i;
			uint64_t inner;
			if (read_varint(r, &inner))
				return -1;
			if ((inner & 7) == WIRE_GROUP_END)
				break;
			r->i = start;
			uint64_t next;
			if (skip_field(r, &next))
				return -1;
			if (next > r->n)
				return fail(r, "unexpected EOF");
			r->i = (size_t)next;
		}
		*pos = r->i;
		return 0;
	case WIRE_GROUP_END:
		*pos = r->i;
		return 0;
	case WIRE_FIXED32:
		*pos = r->i + 4;
		return 0;
	default:
		return fail(r, "proto: illegal wireType %d", (int)(wire & 7));
	}
}

/* The Go field name gogo prints: the proto name in CamelCase ("range_end" -> "RangeEnd"). */
static void go_name(const char *proto, char *out, size_t len)
{
	size_t o = 0;
	bool up = true;
	for (const char *c = proto; *c && o + 1 < len; c++) {
		if (*c == '_') {
			up = true;
			continue;
		}
		out[o++] = up && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
		up = false;
	}
	out[o] = 0;
}

static int wire_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return WIRE_FIXED64;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return WIRE_FIXED32;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return WIRE_BYTES;
	default:
		return WIRE_VARINT;
	}
}

static int check_message(rd_t *r, const ProtobufCMessageDescriptor *d, size_t end, int depth,
			 bool *unknown_group);

static int check_field(rd_t *r, const ProtobufCFieldDescriptor *f, int wt, int depth)
{
	char name[128];
	int want = wire_of(f->type);
	bool packable = f->label == PROTOBUF_C_LABEL_REPEATED && want != WIRE_BYTES;
	if (wt != want && !(packable && wt == WIRE_BYTES)) {
		go_name(f->name, name, sizeof(name));
		return fail(r, "proto: wrong wireType = %d for field %s", wt, name);
	}
	uint64_t v;
	size_t end = 0;
	switch (wt) {
	case WIRE_VARINT:
		return read_varint(r, &v);
	case WIRE_FIXED64:
	case WIRE_FIXED32: {
		size_t w = wt == WIRE_FIXED64 ? 8 : 4;
		if (w > r->n - r->i)
			return fail(r, "unexpected EOF");
		r->i += w;
		return 0;
	}
	default:
		if (read_length(r, &end))
			return -1;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			bool ignored = false;
			if (check_message(r, f->descriptor, end, depth + 1, &ignored))
				return -1;
		} else if (packable) {
			size_t saved = r->n;
			r->n = end;
			while (r->i < end) {
				int rc = want == WIRE_VARINT ? read_varint(r, &v)
							    : (r->i += want == WIRE_FIXED64 ? 8 : 4,
							       r->i > end ? fail(r, "unexpected EOF") : 0);
				if (rc) {
					r->n = saved;
					return -1;
				}
			}
			r->n = saved;
		}
		r->i = end;
		return 0;
	}
}

static int check_message(rd_t *r, const ProtobufCMessageDescriptor *d, size_t end, int depth,
			 bool *unknown_group)
{
	if (depth > 64)
		return fail(r, "proto: %s: nesting too deep", d->short_name);
	size_t saved = r->n;
	r->n = end;
	while (r->i < end) {
		size_t pre = r->i;
		uint64_t wire;
		if (read_varint(r, &wire))
			goto bad;
		int32_t num = (int32_t)(uint32_t)(wire >> 3);
		int wt = (int)(wire & 7);
		if (wt == WIRE_GROUP_END) {
			fail(r, "proto: %s: wiretype end group for non-group", d->short_name);
			goto bad;
		}
		if (num <= 0) {
			fail(r, "proto: %s: illegal tag %d (wire type %llu)", d->short_name, num,
			     (unsigned long long)wire);
			goto bad;
		}
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(d, (unsigned)num);
		if (f) {
			if (check_field(r, f, wt, depth))
				goto bad;
			continue;
		}
		r->i = pre;
		uint64_t next;
		if (skip_field(r, &next))
			goto bad;
		if (next > end) {
			fail(r, "unexpected EOF");
			goto bad;
		}
		if (wt == WIRE_GROUP_START)
			*unknown_group = true;
		r->i = (size_t)next;
	}
	r->n = saved;
	return 0;
bad:
	r->n = saved;
	return -1;
}

/* Copies the known fields of a message whose unknown fields include a group, which gogo
 * skips and protobuf-c cannot: the copy decodes the same for etcd and for protobuf-c. */
static uint8_t *strip_unknown(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
			      size_t *out_len)
{
	uint8_t *out = malloc(n ? n : 1);
	if (!out)
		return NULL;
	char err[8];
	rd_t r = {p, n, 0, err, sizeof(err)};
	size_t o = 0;
	while (r.i < n) {
		size_t pre = r.i;
		uint64_t wire, next;
		if (read_varint(&r, &wire))
			break;
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(d, (unsigned)(wire >> 3));
		r.i = pre;
		if (skip_field(&r, &next) || next > n)
			break;
		if (f) {
			memcpy(out + o, p + pre, (size_t)next - pre);
			o += (size_t)next - pre;
		}
		r.i = (size_t)next;
	}
	*out_len = o;
	return out;
}

int pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *err,
	     size_t errlen, uint8_t **clean, size_t *clean_len)
{
	rd_t r = {p, n, 0, err, errlen};
	bool unknown_group = false;
	*clean = NULL;
	*clean_len = 0;
	if (check_message(&r, d, n, 0, &unknown_group))
		return -1;
	if (unknown_group)
		*clean = strip_unknown(d, p, n, clean_len);
	return 0;
}
