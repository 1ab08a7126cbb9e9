/* virtio-vsock engine, packets: the codec and the state machine, guest -> host and host -> guest.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio/vsock_priv.h"
#include "vmm/log.h"

#define TAG "vsock"

/* ---- packets from the guest ------------------------------------------------- */

static void hdr_from_le(struct vsock_hdr *h)
{
	h->src_cid = le64toh(h->src_cid);
	h->dst_cid = le64toh(h->dst_cid);
	h->src_port = le32toh(h->src_port);
	h->dst_port = le32toh(h->dst_port);
	h->len = le32toh(h->len);
	h->type = le16toh(h->type);
	h->op = le16toh(h->op);
	h->flags = le32toh(h->flags);
	h->buf_alloc = le32toh(h->buf_alloc);
	h->fwd_cnt = le32toh(h->fwd_cnt);
}

static void hdr_to_le(struct vsock_hdr *h)
{
	h->src_cid = htole64(h->src_cid);
	h->dst_cid = htole64(h->dst_cid);
	h->src_port = htole32(h->src_port);
	h->dst_port = htole32(h->dst_port);
	h->len = htole32(h->len);
	h->type = htole16(h->type);
	h->op = htole16(h->op);
	h->flags = htole32(h->flags);
	h->buf_alloc = htole32(h->buf_alloc);
	h->fwd_cnt = htole32(h->fwd_cnt);
}

struct listener *vsock_listener_find(struct vsock *vs, uint32_t port)
{
	struct listener *l = vs->listeners;

	while (l && l->port != port)
		l = l->next;
	return l;
}

static void handle_request(struct vsock *vs, const struct vsock_hdr *h)
{
	struct listener *l = vsock_listener_find(vs, h->dst_port);
	vsock_accept_fn fn = l ? l->fn : vs->fallback;
	void *fn_opaque = l ? l->opaque : vs->fallback_opaque;
	const struct vsock_conn_ops *ops = NULL;
	void *opaque = NULL;
	struct vsock_conn *c;
	int ret;

	if (!fn) {
		vsock_orphan_push(vs, h->dst_port, h->src_port, VSOCK_OP_RST, 0);
		return;
	}
	c = vsock_conn_new(vs, h->dst_port, h->src_port);
	if (!c) {
		log_ratelimited(LOG_WARN, TAG, "refusing guest port %u -> %u: too many connections",
				h->src_port, h->dst_port);
		vsock_orphan_push(vs, h->dst_port, h->src_port, VSOCK_OP_RST, 0);
		return;
	}
	c->state = CS_CONNECTED;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	/* Set first: an acceptor that sends at once must not get data ahead of the response. */
	c->pend |= P_RESPONSE;
	vsock_conn_get(c);
	ret = fn(fn_opaque, c, h->dst_port, &ops, &opaque);
	if (vsock_conn_put(c))
		return; /* the acceptor reset it already */
	if (ret < 0) {
		c->pend = 0;
		vsock_conn_kill(c, true, false);
		return;
	}
	c->ops = ops;
	c->opaque = opaque;
	vsock_conn_schedule(c);
}

/*
 * The payload (after the header) as an iovec array for write_direct; bytes taken.
 * The caller holds a reference: the endpoint may close the connection meanwhile.
 */
static size_t offer_direct(struct vsock_conn *c, const struct iovec *iov, int niov, size_t len)
{
	struct iovec part[16];
	int n = iov_slice(iov, niov, VSOCK_HDR_SIZE, len, part, sizeof(part) / sizeof(part[0]));
	size_t taken;

	if (n < 0)
		return 0; /* unusually scattered: take the buffered path */
	taken = c->ops->write_direct(c->opaque, c, part, n);
	return taken > len ? len : taken;
}

static void handle_rw(struct vsock_conn *c, const struct vsock_hdr *h, const struct iovec *iov,
		      int niov)
{
	uint32_t buffered = c->rx_cnt - c->fwd_cnt;

	if (!h->len)
		return;
	if (c->peer_shut & VSOCK_SHUTDOWN_SEND) {
		/* Data after the guest's own EOF: a broken driver. */
		c->vs->st.malformed++;
		vsock_conn_kill(c, true, true);
		return;
	}
	if (h->len > VSOCK_BUF_ALLOC - buffered) {
		/* Over the credit we gave: buffering it would let the guest grow us. */
		c->vs->st.credit_violations++;
		log_ratelimited(LOG_WARN, TAG, "guest port %u sent %u bytes over its credit of %u",
				c->guest_port, h->len, VSOCK_BUF_ALLOC - buffered);
		vsock_conn_kill(c, true, true);
		return;
	}
	c->rx_cnt += h->len;
	if (c->ops && c->ops->write_direct && !c->in.len) {
		size_t taken;

		vsock_conn_get(c);
		taken = offer_direct(c, iov, niov, h->len);
		if (vsock_conn_put(c))
			return; /* closed by the endpoint meanwhile */
		if (taken) {
			c->fwd_cnt += taken;
			if (taken == h->len) {
				vsock_conn_after_consume(c);
				return;
			}
			/* The rest is buffered below: skip what the endpoint took. */
			if (vsock_ring_put_iov(&c->in, VSOCK_BUF_ALLOC, iov, niov,
					       VSOCK_HDR_SIZE + taken,
					       h->len - taken) < h->len - taken) {
				pr_err(TAG, "out of memory buffering guest data on port %u",
				       c->host_port);
				vsock_conn_kill(c, true, true);
				return;
			}
			goto announce;
		}
	}
	if (!c->ops) {
		/* Closed by the endpoint: nobody will read, but keep the guest's credit flowing. */
		c->fwd_cnt += h->len;
		vsock_conn_after_consume(c);
		return;
	}
	if (vsock_ring_put_iov(&c->in, VSOCK_BUF_ALLOC, iov, niov, VSOCK_HDR_SIZE, h->len) <
	    h->len) {
		pr_err(TAG, "out of memory buffering guest data on port %u", c->host_port);
		vsock_conn_kill(c, true, true);
		return;
	}
announce:
	if (c->ops && c->ops->readable) {
		vsock_conn_get(c);
		c->ops->readable(c->opaque, c);
		vsock_conn_put(c);
	}
}

int vsock_tx(struct vsock *vs, const struct iovec *iov, int niov, size_t len)
{
	struct vsock_hdr h;
	struct vsock_conn *c;

	if (len < VSOCK_HDR_SIZE || iov_to_buf(iov, niov, 0, &h, sizeof(h)) < sizeof(h)) {
		vs->st.malformed++;
		log_ratelimited(LOG_WARN, TAG, "dropping a %zu-byte packet: shorter than a header",
				len);
		return -EINVAL;
	}
	hdr_from_le(&h);
	vs->st.from_guest_pkts++;
	if (h.src_cid != vs->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		/* Not ours to answer: an RST would go to an address the guest cannot own. */
		vs->st.malformed++;
		log_ratelimited(LOG_WARN, TAG, "dropping packet from cid %llu to cid %llu",
				(unsigned long long)h.src_cid, (unsigned long long)h.dst_cid);
		return -EINVAL;
	}
	c = vsock_conn_find(vs, h.dst_port, h.src_port);
	if (h.len > len - VSOCK_HDR_SIZE || h.len > VSOCK_MAX_PKT_PAYLOAD ||
	    h.type != VSOCK_TYPE_STREAM || h.op == VSOCK_OP_INVALID ||
	    h.op > VSOCK_OP_CREDIT_REQUEST) {
		vs->st.malformed++;
		log_ratelimited(LOG_WARN, TAG,
				"malformed packet port %u -> %u: op %u type %u len %u of %zu",
				h.src_port, h.dst_port, h.op, h.type, h.len, len - VSOCK_HDR_SIZE);
		if (c)
			vsock_conn_kill(c, true, true);
		else if (h.op != VSOCK_OP_RST)
			vsock_orphan_push(vs, h.dst_port, h.src_port, VSOCK_OP_RST, 0);
		return -EINVAL;
	}
	vs->st.from_guest_bytes += h.len;

	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			handle_request(vs, &h);
		else if (h.op != VSOCK_OP_RST)
			vsock_orphan_push(vs, h.dst_port, h.src_port, VSOCK_OP_RST, 0);
		return 0;
	}

	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VSOCK_OP_REQUEST:
		/* A second request for a live pair: the guest lost track; start over. */
		vsock_conn_kill(c, true, true);
		break;
	case VSOCK_OP_RESPONSE:
		if (c->state != CS_CONNECTING) {
			vsock_conn_kill(c, true, true);
			break;
		}
		c->state = CS_CONNECTED;
		if (c->ops && c->ops->connected) {
			vsock_conn_get(c);
			c->ops->connected(c->opaque, c, 0);
			if (vsock_conn_put(c))
				break;
		}
		vsock_conn_schedule(c);
		break;
	case VSOCK_OP_RST:
		if (c->state == CS_CONNECTING && c->ops && c->ops->connected) {
			const struct vsock_conn_ops *ops = c->ops;

			/* A refused connect is reported through connected(), not closed(). */
			c->ops = NULL;
			vsock_conn_get(c);
			ops->connected(c->opaque, c, -ECONNREFUSED);
			if (vsock_conn_put(c))
				break;
		}
		vsock_conn_kill(c, false, true);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->peer_shut |= h.flags & VSOCK_SHUTDOWN_BOTH;
		if (c->peer_shut & VSOCK_SHUTDOWN_RCV)
			vsock_ring_consume(&c->out, c->out.len); /* nobody will read it */
		vsock_conn_after_consume(c);
		break;
	case VSOCK_OP_RW:
		if (c->state != CS_CONNECTED) {
			vsock_conn_kill(c, true, true);
			break;
		}
		handle_rw(c, &h, iov, niov);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		c->credit_req_sent = false;
		vsock_conn_schedule(c);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pend |= P_CREDIT_UPDATE;
		vsock_conn_schedule(c);
		break;
	}
	return 0;
}

/* ---- packets for the guest -------------------------------------------------- */

bool vsock_rx_pending(const struct vsock *vs)
{
	return vs->o_len || vs->qhead;
}

/* Builds c's next packet into iov. Returns its length or 0 if it had nothing. */
static long conn_emit(struct vsock_conn *c, const struct iovec *iov, int niov, size_t cap)
{
	struct vsock_hdr h = {
	    .src_cid = VSOCK_HOST_CID,
	    .dst_cid = c->vs->guest_cid,
	    .src_port = c->host_port,
	    .dst_port = c->guest_port,
	    .type = VSOCK_TYPE_STREAM,
	    .buf_alloc = VSOCK_BUF_ALLOC,
	};
	uint32_t credit = vsock_credit_to_guest(c);
	uint32_t payload = 0;
	struct iovec span[2];

	if (c->pend & P_REQUEST) {
		h.op = VSOCK_OP_REQUEST;
		c->pend &= ~P_REQUEST;
	} else if (c->pend & P_RESPONSE) {
		h.op = VSOCK_OP_RESPONSE;
		c->pend &= ~P_RESPONSE;
	} else if (c->state == CS_CONNECTED && c->out.len && credit && cap > VSOCK_HDR_SIZE) {
		h.op = VSOCK_OP_RW;
		payload = c->out.len;
		if (payload > credit)
			payload = credit;
		if (payload > VSOCK_MAX_PKT_PAYLOAD)
			payload = VSOCK_MAX_PKT_PAYLOAD;
		if (payload > cap - VSOCK_HDR_SIZE)
			payload = cap - VSOCK_HDR_SIZE;
	} else if (c->pend & P_CREDIT_REQUEST) {
		h.op = VSOCK_OP_CREDIT_REQUEST;
		c->pend &= ~P_CREDIT_REQUEST;
		c->credit_req_sent = true;
	} else if (c->pend & P_CREDIT_UPDATE) {
		h.op = VSOCK_OP_CREDIT_UPDATE;
	} else if (c->state == CS_CONNECTED && !c->out.len && c->shut_want && !c->shut_sent) {
		h.op = VSOCK_OP_SHUTDOWN;
		h.flags = c->shut_want;
		c->shut_sent = true;
	} else {
		return 0;
	}
	/* Every packet carries our fwd_cnt, so any of them is a credit update. */
	h.fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
	c->pend &= ~P_CREDIT_UPDATE;
	h.len = payload;
	hdr_to_le(&h);
	iov_from_buf(iov, niov, 0, &h, sizeof(h));
	if (payload) {
		int n = vsock_ring_peek(&c->out, span);
		size_t off = VSOCK_HDR_SIZE, left = payload;

		for (int i = 0; i < n && left; i++) {
			size_t k = span[i].iov_len < left ? span[i].iov_len : left;

			iov_from_buf(iov, niov, off, span[i].iov_base, k);
			off += k;
			left -= k;
		}
		vsock_ring_consume(&c->out, payload);
		c->tx_cnt += payload;
		c->vs->st.to_guest_bytes += payload;
		/* Half empty again: let a stalled writer refill (avoids a callback per packet). */
		if (c->writable_wanted && c->out.len <= VSOCK_OUT_MAX / 2) {
			c->writable_wanted = false;
			if (c->ops && c->ops->writable) {
				vsock_conn_get(c);
				c->ops->writable(c->opaque, c);
				vsock_conn_put(c);
			}
		}
	}
	return VSOCK_HDR_SIZE + payload;
}

long vsock_rx(struct vsock *vs, const struct iovec *iov, int niov, size_t cap)
{
	if (!vsock_rx_pending(vs))
		return 0;
	if (cap < VSOCK_HDR_SIZE)
		return -ENOSPC;
	if (vs->o_len) {
		struct vsock_hdr h = vs->orphans[vs->o_head];

		vs->o_head = (vs->o_head + 1) % VSOCK_ORPHAN_MAX;
		vs->o_len--;
		hdr_to_le(&h);
		iov_from_buf(iov, niov, 0, &h, sizeof(h));
		vs->st.to_guest_pkts++;
		return VSOCK_HDR_SIZE;
	}
	/* Bounded: a connection whose data does not fit this buffer must not spin us. */
	for (unsigned budget = vs->nr_conns + 1; vs->qhead && budget; budget--) {
		struct vsock_conn *c = vs->qhead;
		long n;

		vs->qhead = c->qnext;
		if (!vs->qhead)
			vs->qtail = NULL;
		c->queued = false;
		c->qnext = NULL;
		vsock_conn_get(c);
		n = conn_emit(c, iov, niov, cap);
		if (!vsock_conn_put(c))
			vsock_conn_schedule(c); /* round robin: back of the line if it has more */
		if (n > 0) {
			vs->st.to_guest_pkts++;
			return n;
		}
	}
	return 0;
}
