/*
 * A fake guest agent for unit tests of the shim's bridge client and what sits
 * behind it: it dials the bridge port on an in-memory vsock engine, answers
 * the negotiation, sends whatever messages a test wants (honest or hostile)
 * and reads back what the shim sends. No VM, no virtio device.
 */
#ifndef TESTS_FAKE_GCS_H
#define TESTS_FAKE_GCS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "virtio/vsock.h"

#define FAKE_GCS_CID  7
#define FAKE_GCS_PORT 3000

struct fake_gcs {
	struct vsock *vs;
	uint32_t fwd;	     /* bytes of the shim's stream consumed (credit) */
	struct bridge_rx rx; /* the guest's reader of what the shim sends */
};

/* The guest sends one vsock packet to the bridge port; returns vsock_tx's result. */
static inline int fake_gcs_pkt(struct fake_gcs *g, uint16_t op, const void *payload, uint32_t len)
{
	struct vsock_hdr h = {.src_cid = FAKE_GCS_CID,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = FAKE_GCS_PORT,
			      .dst_port = BRIDGE_PORT,
			      .len = len,
			      .type = VSOCK_TYPE_STREAM,
			      .op = op,
			      .buf_alloc = 1 << 20,
			      .fwd_cnt = g->fwd};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, len}};

	return vsock_tx(g->vs, iov, len ? 2 : 1, sizeof(h) + len);
}

/* The guest writes a bridge message (header + body); size 0 means the honest size. */
static inline int fake_gcs_msg(struct fake_gcs *g, uint32_t type, uint32_t size, uint64_t id,
			       const char *body)
{
	uint8_t buf[4096];
	size_t blen = strlen(body);

	if (16 + blen > sizeof(buf))
		return -1;
	bridge_hdr_encode(buf, type, size ? size : 16 + blen, id);
	memcpy(buf + 16, body, blen);
	return fake_gcs_pkt(g, VSOCK_OP_RW, buf, 16 + blen);
}

/*
 * Drains packets for the guest; returns 0 with the next bridge message the
 * shim sent, -2 on a reset, -1 when nothing (whole) is pending.
 */
static inline int fake_gcs_next(struct fake_gcs *g, struct bridge_hdr *hdr, char *body,
				size_t cap)
{
	static uint8_t pkt[65536 + VSOCK_HDR_SIZE];
	struct iovec iov = {pkt, sizeof(pkt)};
	long n;

	while ((n = vsock_rx(g->vs, &iov, 1, sizeof(pkt))) > 0) {
		struct vsock_hdr h;
		size_t used, off = 0;

		memcpy(&h, pkt, sizeof(h));
		if (h.op == VSOCK_OP_RST)
			return -2;
		if (h.op != VSOCK_OP_RW)
			continue;
		g->fwd += h.len;
		while (off < h.len) {
			struct bridge_rx_event ev;
			enum bridge_rx_result r = bridge_rx_feed(&g->rx, pkt + VSOCK_HDR_SIZE + off,
								 h.len - off, &used, &ev);

			off += used;
			if (r == BRIDGE_RX_MSG) {
				*hdr = ev.hdr;
				snprintf(body, cap, "%s", ev.body);
				free(ev.body);
				return off == h.len ? 0 : -3; /* one message per packet here */
			}
			if (r != BRIDGE_RX_MORE)
				return -3;
		}
	}
	return -1;
}

/* Dials the bridge and answers its negotiation: 0 once the shim's side is ready. */
static inline int fake_gcs_connect(struct fake_gcs *g, struct vsock *vs)
{
	struct bridge_hdr h = {0};
	char body[512];

	g->vs = vs;
	g->fwd = 0;
	bridge_rx_init(&g->rx, BRIDGE_MSG_MAX);
	if (fake_gcs_pkt(g, VSOCK_OP_REQUEST, NULL, 0) < 0 ||
	    fake_gcs_next(g, &h, body, sizeof(body)) != 0 ||
	    h.type != BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_NEGOTIATE) ||
	    !strstr(body, "\"max_version\":1"))
		return -1;
	return fake_gcs_msg(g, bridge_response_type(h.type), 0, h.id,
			    "{\"status\":0,\"version\":1}");
}

static inline void fake_gcs_fini(struct fake_gcs *g)
{
	bridge_rx_fini(&g->rx);
}

#endif
