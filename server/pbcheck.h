/* server/pbcheck.h — checks request bytes as etcd 3.4's generated decoders read them, for
 * etcd's error texts on malformed requests (pbcheck.c). */
#ifndef KEEL_SERVER_PBCHECK_H
#define KEEL_SERVER_PBCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* 0 when etcd would accept the bytes as message d; otherwise -1 and err holds etcd's text
 * (without grpc-go's "grpc: error unmarshalling request: " prefix). When the bytes carry an
 * unknown group field (which etcd skips and protobuf-c cannot), *clean is a malloc'd copy
 * without the unknown fields to decode instead (free it); else NULL. */
int pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *err,
	     size_t errlen, uint8_t **clean, size_t *clean_len);

#endif
