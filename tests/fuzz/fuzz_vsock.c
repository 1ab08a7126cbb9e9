/*
 * virtio-vsock engine on hostile guest packets. The input is a script: each
 * step is one byte of action then, for packets, a length byte and the bytes
 * of the packet (the source CID is forced to the guest's so the state machine
 * is reached instead of the early CID check). Endpoints read, write, close
 * and reset at the script's whim; rx buffers are drained between steps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/vsock.h"

#define CID 3

static const uint8_t *g_data;
static size_t g_left;

static uint8_t next_byte(void)
{
	if (!g_left)
		return 0;
	g_left--;
	return *g_data++;
}

static void on_readable(void *o, struct vsock_conn *c)
{
	uint8_t buf[512];
	uint8_t a = next_byte();

	if (a == 0xff)
		vsock_conn_reset(c);
	else if (a == 0xfe)
		vsock_conn_close(c);
	else if (a & 1)
		vsock_conn_recv(c, buf, (size_t)a * 2);
}

static void on_writable(void *o, struct vsock_conn *c)
{
	vsock_conn_send(c, "w", 1);
}

static void on_eof(void *o, struct vsock_conn *c)
{
	if (next_byte() & 1)
		vsock_conn_close(c);
}

static const struct vsock_conn_ops ops = {
    .readable = on_readable,
    .writable = on_writable,
    .eof = on_eof,
};

static int on_accept(void *o, struct vsock_conn *c, uint32_t port,
		     const struct vsock_conn_ops **out_ops, void **opaque)
{
	static uint8_t junk[70000];

	if (port & 1)
		return -1;
	*out_ops = &ops;
	*opaque = NULL;
	vsock_conn_send(c, junk, (port & 0xff) * 300);
	return 0;
}

static void drain(struct vsock *vs)
{
	static uint8_t buf[4096 + VSOCK_HDR_SIZE];
	struct iovec iov = {buf, sizeof(buf)};
	int budget = 64;

	while (vsock_rx_pending(vs) && budget--) {
		long n = vsock_rx(vs, &iov, 1, sizeof(buf));
		struct vsock_hdr h;

		if (n < 0)
			abort();
		if (n == 0)
			break;
		memcpy(&h, buf, sizeof(h));
		if (h.len + VSOCK_HDR_SIZE != (uint64_t)n || h.dst_cid != CID ||
		    h.op < VSOCK_OP_REQUEST || h.op > VSOCK_OP_CREDIT_REQUEST)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsock *vs;
	struct vsock_conn *c;

	if (vsock_engine_create(&vs, CID) < 0)
		return 0;
	if (vsock_listen(vs, 0, on_accept, NULL) < 0 || vsock_listen(vs, 2, on_accept, NULL) < 0)
		goto out;
	g_data = data;
	g_left = size;
	while (g_left) {
		uint8_t act = next_byte();

		if (act < 0xf0) {
			uint8_t pkt[255 + VSOCK_HDR_SIZE];
			size_t len = next_byte() + VSOCK_HDR_SIZE / 2;
			struct iovec iov[2];
			uint64_t cid = CID, host = VSOCK_HOST_CID;

			if (len > g_left)
				len = g_left;
			memcpy(pkt, g_data, len);
			g_data += len;
			g_left -= len;
			if (len >= 16 && !(act & 0x80)) {
				memcpy(pkt, &cid, 8);
				memcpy(pkt + 8, &host, 8);
			}
			/* Split the packet where the action byte says. */
			iov[0] = (struct iovec){pkt, (act % 64) < len ? (act % 64) : len};
			iov[1] = (struct iovec){pkt + iov[0].iov_len, len - iov[0].iov_len};
			vsock_tx(vs, iov, 2, len);
		} else if (act == 0xf0) {
			if (vsock_connect(vs, next_byte(), 0, &ops, NULL, &c) == 0 &&
			    (next_byte() & 1))
				vsock_conn_send(c, "hello", 5);
		} else if (act == 0xf1) {
			vsock_reset(vs);
		}
		drain(vs);
	}
out:
	vsock_engine_destroy(vs);
	return 0;
}
