/* ttrpc frame codec (see ttrpc.h): pure, no I/O. */
#include "shim/ttrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ----------------------------------------------------------------------- */

void ttrpc_dec_init(struct ttrpc_dec *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max ? max : TTRPC_MAX_MSG;
}

void ttrpc_dec_fini(struct ttrpc_dec *d)
{
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

size_t ttrpc_dec_pending(const struct ttrpc_dec *d)
{
	return d->len - d->off;
}

int ttrpc_dec_feed(struct ttrpc_dec *d, const void *p, size_t n)
{
	const uint8_t *b = p;

	/* The tail of an oversized payload is dropped as it comes. */
	if (d->skip) {
		size_t k = n < d->skip ? n : (size_t)d->skip;

		d->skip -= k;
		b += k;
		n -= k;
	}
	if (!n)
		return 0;
	/* Consumed bytes go first, so the buffer never grows past one frame and a read. */
	if (d->off) {
		memmove(d->buf, d->buf + d->off, d->len - d->off);
		d->len -= d->off;
		d->off = 0;
	}
	if (d->len + n > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		uint8_t *nb;

		while (cap < d->len + n)
			cap *= 2;
		nb = realloc(d->buf, cap);
		if (!nb)
			return -ENOMEM;
		d->buf = nb;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, b, n);
	d->len += n;
	return 0;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int ttrpc_dec_next(struct ttrpc_dec *d, struct ttrpc_frame *f)
{
	size_t avail = d->len - d->off;
	const uint8_t *h = d->buf + d->off;

	if (d->skip || avail < TTRPC_HDR_LEN)
		return 0;
	memset(f, 0, sizeof(*f));
	f->len = get_be32(h);
	f->stream = get_be32(h + 4);
	f->type = h[8];
	f->flags = h[9];
	if (f->len > d->max) {
		size_t here = avail - TTRPC_HDR_LEN;

		/* Drop what is here of it, and the rest as it arrives. */
		f->oversized = true;
		if (here >= f->len) {
			d->off += TTRPC_HDR_LEN + f->len;
		} else {
			d->skip = f->len - here;
			d->off = d->len;
		}
		return 1;
	}
	if (avail - TTRPC_HDR_LEN < f->len)
		return 0;
	f->data = h + TTRPC_HDR_LEN;
	d->off += TTRPC_HDR_LEN + f->len;
	return 1;
}

/* ---- writing ----------------------------------------------------------------------- */

void ttrpc_put_header(uint8_t hdr[TTRPC_HDR_LEN], uint32_t len, uint32_t stream, uint8_t type,
		      uint8_t flags)
{
	for (int i = 0; i < 4; i++) {
		hdr[i] = len >> (24 - 8 * i);
		hdr[4 + i] = stream >> (24 - 8 * i);
	}
	hdr[8] = type;
	hdr[9] = flags;
}

int ttrpc_frame_pack(uint32_t stream, uint8_t type, const ProtobufCMessage *msg, uint8_t **out,
		     size_t *outlen)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *b;

	if (n > TTRPC_MAX_MSG)
		return -EMSGSIZE;
	b = malloc(TTRPC_HDR_LEN + n);
	if (!b)
		return -ENOMEM;
	ttrpc_put_header(b, n, stream, type, 0);
	protobuf_c_message_pack(msg, b + TTRPC_HDR_LEN);
	*out = b;
	*outlen = TTRPC_HDR_LEN + n;
	return 0;
}

/* msg packed into a malloc'd buffer (NULL msg: empty). */
static int pack_payload(const ProtobufCMessage *msg, ProtobufCBinaryData *bd)
{
	bd->len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	bd->data = NULL;
	if (bd->len > TTRPC_MAX_MSG)
		return -EMSGSIZE;
	if (!bd->len)
		return 0;
	bd->data = malloc(bd->len);
	if (!bd->data)
		return -ENOMEM;
	protobuf_c_message_pack(msg, bd->data);
	return 0;
}

int ttrpc_response_pack(uint32_t stream, int code, const char *message, const ProtobufCMessage *msg,
			uint8_t **out, size_t *outlen)
{
	Uvm__Ttrpc__Response r = UVM__TTRPC__RESPONSE__INIT;
	Uvm__Ttrpc__Status st = UVM__TTRPC__STATUS__INIT;
	int ret;

	st.code = code;
	st.message = (char *)(message ? message : "");
	r.status = &st;
	ret = pack_payload(code ? NULL : msg, &r.payload);
	if (!ret)
		ret = ttrpc_frame_pack(stream, TTRPC_TYPE_RESPONSE, &r.base, out, outlen);
	free(r.payload.data);
	return ret;
}

int ttrpc_request_pack(uint32_t stream, const char *service, const char *method,
		       const ProtobufCMessage *msg, const char *const *metadata, uint8_t **out,
		       size_t *outlen)
{
	Uvm__Ttrpc__Request r = UVM__TTRPC__REQUEST__INIT;
	Uvm__Ttrpc__KeyValue kv[4], *kvp[4];
	size_t n = 0;
	int ret;

	while (metadata && metadata[2 * n] && n < 4) {
		uvm__ttrpc__key_value__init(&kv[n]);
		kv[n].key = (char *)metadata[2 * n];
		kv[n].value = (char *)metadata[2 * n + 1];
		kvp[n] = &kv[n];
		n++;
	}
	r.service = (char *)service;
	r.method = (char *)method;
	r.n_metadata = n;
	r.metadata = kvp;
	ret = pack_payload(msg, &r.payload);
	if (!ret)
		ret = ttrpc_frame_pack(stream, TTRPC_TYPE_REQUEST, &r.base, out, outlen);
	free(r.payload.data);
	return ret;
}

Uvm__Ttrpc__Request *ttrpc_request_unpack(const struct ttrpc_frame *f)
{
	if (f->oversized)
		return NULL;
	return uvm__ttrpc__request__unpack(NULL, f->len, f->data);
}

Uvm__Ttrpc__Response *ttrpc_response_unpack(const struct ttrpc_frame *f)
{
	if (f->oversized)
		return NULL;
	return uvm__ttrpc__response__unpack(NULL, f->len, f->data);
}
