/*
 * ttrpc, containerd's RPC between it and its shims (docs/containerd.md):
 * the frame codec, the connection (ttrpc_conn.c) and the server's method
 * table (ttrpc_server.c).
 *
 * A frame is a 10-byte header, u32 big-endian payload length, u32
 * big-endian stream id, u8 type (1 request, 2 response), u8 flags, then the
 * payload: a protobuf Request{service, method, payload, timeout_nano,
 * metadata} or Response{status{code, message}, payload}
 * (shim/proto/ttrpc.proto). Payloads are at most 4 MiB. Answers carry the
 * stream id of their request and may go out in any order.
 */
#ifndef SHIM_TTRPC_H
#define SHIM_TTRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "shim/proto/ttrpc.pb-c.h"

#define TTRPC_HDR_LEN	    10
#define TTRPC_MAX_MSG	    (4u << 20)
#define TTRPC_TYPE_REQUEST  1
#define TTRPC_TYPE_RESPONSE 2

/* The status codes (gRPC's) ttrpc answers with. */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
};

/* One frame out of the decoder; data points into it until the next call. */
struct ttrpc_frame {
	uint32_t len;	 /* payload length */
	uint32_t stream; /* stream id */
	uint8_t type, flags;
	bool oversized; /* len > the limit: the payload was skipped, data is NULL */
	const uint8_t *data;
};

/*
 * The reader's side: bytes in as they come (frames split or merged across
 * reads), whole frames out. A frame over the limit is skipped as it streams
 * past (never buffered) and reported once with oversized set, so the server
 * can answer its stream and keep serving.
 */
struct ttrpc_dec {
	uint8_t *buf;
	size_t len, cap, off; /* unread bytes are buf[off, len) */
	size_t max;	      /* payload limit (TTRPC_MAX_MSG) */
	uint64_t skip;	      /* bytes of an oversized payload still to drop */
};

void ttrpc_dec_init(struct ttrpc_dec *d, size_t max);
void ttrpc_dec_fini(struct ttrpc_dec *d);
/* Appends n bytes. 0 or -ENOMEM. */
int ttrpc_dec_feed(struct ttrpc_dec *d, const void *p, size_t n)
    __attribute__((warn_unused_result));
/* 1: *f is the next frame; 0: more bytes needed. */
int ttrpc_dec_next(struct ttrpc_dec *d, struct ttrpc_frame *f);
/* Bytes held that do not make a whole frame yet (a peer that closes with some left sent a torn
 * frame). */
size_t ttrpc_dec_pending(const struct ttrpc_dec *d);

void ttrpc_put_header(uint8_t hdr[TTRPC_HDR_LEN], uint32_t len, uint32_t stream, uint8_t type,
		      uint8_t flags);

/*
 * A whole frame (header + packed msg) in *out (malloc'd), *outlen its size.
 * -EMSGSIZE when the payload would pass the limit, -ENOMEM.
 */
int ttrpc_frame_pack(uint32_t stream, uint8_t type, const ProtobufCMessage *msg, uint8_t **out,
		     size_t *outlen) __attribute__((warn_unused_result));
/* A Response frame: code/message, and payload (packed msg, may be NULL) when code is 0. */
int ttrpc_response_pack(uint32_t stream, int code, const char *message, const ProtobufCMessage *msg,
			uint8_t **out, size_t *outlen) __attribute__((warn_unused_result));
/* A Request frame for service/method with msg as payload and metadata pairs (NULL-ended, may be
 * NULL). */
int ttrpc_request_pack(uint32_t stream, const char *service, const char *method,
		       const ProtobufCMessage *msg, const char *const *metadata, uint8_t **out,
		       size_t *outlen) __attribute__((warn_unused_result));

/* Decodes a frame's payload; NULL when it does not decode. Free with
 * protobuf_c_message_free_unpacked. */
Uvm__Ttrpc__Request *ttrpc_request_unpack(const struct ttrpc_frame *f);
Uvm__Ttrpc__Response *ttrpc_response_unpack(const struct ttrpc_frame *f);

#endif
