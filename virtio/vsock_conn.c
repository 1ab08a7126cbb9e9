/*
 * virtio-vsock engine: connections, the packet state machine and credit-based
 * flow control, independent of virtqueues (see vsock.h).
 *
 * Credit (virtio spec 5.10.6.3): each side advertises buf_alloc, the size of
 * its receive buffer, and fwd_cnt, the bytes it has consumed so far. A sender
 * may have at most buf_alloc - (sent - peer_fwd_cnt) bytes outstanding. We
 * enforce that on the guest (a guest over its credit is reset: that is what
 * bounds our buffering) and obey it towards the guest.
 */
#include "virtio/vsock.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "vmm/log.h"

#define TAG "vsock"

#define HASH_SIZE 256
/* Tell the guest about consumed bytes once this many accumulated. */
#define CREDIT_UPDATE_THRESHOLD (VSOCK_BUF_ALLOC / 4)
#define EPHEMERAL_FIRST		49152u
#define EPHEMERAL_LAST		0x3fffffffu

/* Control packets a connection owes the guest. */
#define P_REQUEST	 0x1
#define P_RESPONSE	 0x2
#define P_CREDIT_UPDATE	 0x4
#define P_CREDIT_REQUEST 0x8

enum conn_state {
	CS_CONNECTING, /* we sent (or will send) REQUEST, waiting for RESPONSE */
	CS_CONNECTED,
};

struct ring {
	uint8_t *data; /* allocated on first use, cap bytes */
	uint32_t cap, head, len;
};

struct vsock_conn {
	struct vsock *vs;
	uint32_t host_port, guest_port;
	enum conn_state state;
	const struct vsock_conn_ops *ops; /* NULL once the endpoint let go */
	void *opaque;

	/* guest -> host */
	struct ring in;
	uint32_t rx_cnt;       /* payload bytes received */
	uint32_t fwd_cnt;      /* of those, consumed by the endpoint */
	uint32_t fwd_cnt_sent; /* fwd_cnt as last told to the guest */
	uint32_t peer_shut;    /* VSOCK_SHUTDOWN_* received */
	bool eof_told;

	/* host -> guest */
	struct ring out;
	uint32_t tx_cnt; /* payload bytes sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	bool credit_req_sent;
	bool writable_wanted; /* a send was short: call writable when room frees */
	uint32_t shut_want;   /* SHUTDOWN flags to send once out has drained */
	bool shut_sent;

	uint32_t pend; /* P_* */
	bool queued;   /* on vs->queue */
	int cb_depth;  /* callbacks running for this connection */
	bool dead;     /* unlinked; freed when cb_depth drops to 0 */
	struct vsock_conn *hnext, *qnext;
};

struct listener {
	uint32_t port;
	vsock_accept_fn fn;
	void *opaque;
	struct listener *next;
};

struct vsock {
	uint64_t guest_cid;
	struct vsock_conn *hash[HASH_SIZE];
	unsigned nr_conns;
	struct listener *listeners;
	vsock_fallback_fn fallback;
	void *fallback_opaque;
	struct vsock_conn *qhead, *qtail; /* connections with something for the guest */
	struct vsock_hdr orphans[VSOCK_ORPHAN_MAX];
	unsigned o_head, o_len;
	uint32_t next_port;
	void (*kick)(void *opaque);
	void *kick_opaque;
	struct vsock_stats st;
};

/* ---- byte rings ------------------------------------------------------------ */

static size_t ring_room(const struct ring *r, uint32_t cap)
{
	return cap - r->len;
}

/* Copies from an iovec list (skipping skip bytes) into the ring. Returns bytes copied. */
static size_t ring_put_iov(struct ring *r, uint32_t cap, const struct iovec *iov, int niov,
			   size_t skip, size_t len)
{
	size_t done = 0;

	if (len > ring_room(r, cap))
		len = ring_room(r, cap);
	if (!len)
		return 0;
	if (!r->data) {
		r->data = malloc(cap);
		if (!r->data)
			return 0;
		r->cap = cap;
		r->head = r->len = 0;
	}
	for (int i = 0; i < niov && done < len; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;

		if (skip >= n) {
			skip -= n;
			continue;
		}
		p += skip;
		n -= skip;
		skip = 0;
		if (n > len - done)
			n = len - done;
		while (n) {
			uint32_t tail = (r->head + r->len) % r->cap;
			size_t chunk = r->cap - tail < n ? r->cap - tail : n;

			memcpy(r->data + tail, p, chunk);
			r->len += chunk;
			p += chunk;
			n -= chunk;
			done += chunk;
		}
	}
	return done;
}

static int ring_peek(const struct ring *r, struct iovec iov[2])
{
	uint32_t first;

	if (!r->len)
		return 0;
	first = r->cap - r->head < r->len ? r->cap - r->head : r->len;
	iov[0] = (struct iovec){r->data + r->head, first};
	if (first == r->len)
		return 1;
	iov[1] = (struct iovec){r->data, r->len - first};
	return 2;
}

static void ring_consume(struct ring *r, size_t n)
{
	if (n > r->len)
		n = r->len;
	r->head = (r->head + n) % (r->cap ? r->cap : 1);
	r->len -= n;
	if (!r->len)
		r->head = 0;
}

static void ring_free(struct ring *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* ---- connections ------------------------------------------------------------ */

static unsigned hash_of(uint32_t host_port, uint32_t guest_port)
{
	return (host_port * 2654435761u ^ guest_port * 40503u) % HASH_SIZE;
}

static struct vsock_conn *conn_find(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
{
	struct vsock_conn *c = vs->hash[hash_of(host_port, guest_port)];

	while (c && (c->host_port != host_port || c->guest_port != guest_port))
		c = c->hnext;
	return c;
}

static uint32_t credit_to_guest(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool conn_wants_rx(struct vsock_conn *c)
{
	if (c->dead)
		return false;
	if (c->pend)
		return true;
	if (c->state != CS_CONNECTED)
		return false;
	if (c->out.len) {
		if (credit_to_guest(c))
			return true;
		if (!c->credit_req_sent) {
			/* Out of credit with data waiting: ask for an update, once. */
			c->pend |= P_CREDIT_REQUEST;
			return true;
		}
		return false;
	}
	return c->shut_want && !c->shut_sent;
}

static void kick(struct vsock *vs)
{
	if (vs->kick)
		vs->kick(vs->kick_opaque);
}

static void conn_schedule(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (c->queued || !conn_wants_rx(c))
		return;
	c->queued = true;
	c->qnext = NULL;
	if (vs->qtail)
		vs->qtail->qnext = c;
	else
		vs->qhead = c;
	vs->qtail = c;
	kick(vs);
}

static void conn_unqueue(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;
	struct vsock_conn **pp = &vs->qhead, *prev = NULL;

	if (!c->queued)
		return;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp) {
		*pp = c->qnext;
		if (vs->qtail == c)
			vs->qtail = prev;
	}
	c->queued = false;
	c->qnext = NULL;
}

static void conn_unhash(struct vsock_conn *c)
{
	struct vsock_conn **pp = &c->vs->hash[hash_of(c->host_port, c->guest_port)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = c->hnext;
		c->vs->nr_conns--;
	}
}

static void conn_free(struct vsock_conn *c)
{
	ring_free(&c->in);
	ring_free(&c->out);
	free(c);
}

/* Queues a control packet that belongs to no live connection. */
static void orphan_push(struct vsock *vs, uint32_t host_port, uint32_t guest_port, uint16_t op,
			uint32_t flags)
{
	struct vsock_hdr *h;

	if (vs->o_len == VSOCK_ORPHAN_MAX) {
		/* The guest will time out on its side; dropping keeps us bounded. */
		vs->st.orphans_dropped++;
		return;
	}
	h = &vs->orphans[(vs->o_head + vs->o_len++) % VSOCK_ORPHAN_MAX];
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = vs->guest_cid;
	h->src_port = host_port;
	h->dst_port = guest_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	if (op == VSOCK_OP_RST)
		vs->st.resets_sent++;
	kick(vs);
}

/* A connection must stay allocated while one of its callbacks runs. */
static void conn_get(struct vsock_conn *c)
{
	c->cb_depth++;
}

/* Returns true when c was freed (the caller must not touch it). */
static bool conn_put(struct vsock_conn *c)
{
	if (--c->cb_depth == 0 && c->dead) {
		conn_free(c);
		return true;
	}
	return c->dead;
}

/*
 * Removes c: optional RST to the guest, optional closed callback. Safe inside
 * any of c's callbacks: the memory goes when the last one returns.
 */
static void conn_kill(struct vsock_conn *c, bool send_rst, bool notify)
{
	const struct vsock_conn_ops *ops = c->ops;

	if (c->dead)
		return;
	c->dead = true;
	conn_unhash(c);
	conn_unqueue(c);
	c->ops = NULL;
	if (send_rst)
		orphan_push(c->vs, c->host_port, c->guest_port, VSOCK_OP_RST, 0);
	if (notify && ops && ops->closed) {
		conn_get(c);
		ops->closed(c->opaque, c);
		c->cb_depth--;
	}
	if (c->cb_depth == 0)
		conn_free(c);
}

static struct vsock_conn *conn_new(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
{
	struct vsock_conn *c;
	unsigned h;

	if (vs->nr_conns >= VSOCK_MAX_CONNS)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->vs = vs;
	c->host_port = host_port;
	c->guest_port = guest_port;
	h = hash_of(host_port, guest_port);
	c->hnext = vs->hash[h];
	vs->hash[h] = c;
	vs->nr_conns++;
	return c;
}

/* After the endpoint consumed guest data, or after a SHUTDOWN arrived. */
static void conn_after_consume(struct vsock_conn *c)
{
	if (c->dead)
		return;
	if (c->fwd_cnt - c->fwd_cnt_sent >= CREDIT_UPDATE_THRESHOLD) {
		c->pend |= P_CREDIT_UPDATE;
		conn_schedule(c);
	}
	if (c->in.len)
		return;
	if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->eof_told) {
		c->eof_told = true;
		if (c->ops && c->ops->eof) {
			conn_get(c);
			c->ops->eof(c->opaque, c);
			if (conn_put(c))
				return;
		}
	}
	/* The guest closed both ways and we hold nothing of its data: finish (Linux does too). */
	if (c->peer_shut == VSOCK_SHUTDOWN_BOTH && !c->dead)
		conn_kill(c, true, true);
}

/* ---- host endpoint API ------------------------------------------------------ */

size_t vsock_conn_send(struct vsock_conn *c, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};
	size_t n;

	if (c->dead || c->shut_want & VSOCK_SHUTDOWN_SEND)
		return 0;
	if (c->peer_shut & VSOCK_SHUTDOWN_RCV)
		return len; /* the guest reads no more: discard, like a socket would */
	n = ring_put_iov(&c->out, VSOCK_OUT_MAX, &iov, 1, 0, len);
	if (n < len)
		c->writable_wanted = true;
	if (n)
		conn_schedule(c);
	return n;
}

size_t vsock_conn_readable(const struct vsock_conn *c)
{
	return c->in.len;
}

int vsock_conn_peek(const struct vsock_conn *c, struct iovec iov[2])
{
	return ring_peek(&c->in, iov);
}

void vsock_conn_consume(struct vsock_conn *c, size_t n)
{
	if (n > c->in.len)
		n = c->in.len;
	ring_consume(&c->in, n);
	c->fwd_cnt += n;
	conn_after_consume(c);
}

size_t vsock_conn_recv(struct vsock_conn *c, void *buf, size_t len)
{
	struct iovec iov[2];
	int n = ring_peek(&c->in, iov);
	size_t done = 0;

	for (int i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy((uint8_t *)buf + done, iov[i].iov_base, k);
		done += k;
	}
	vsock_conn_consume(c, done);
	return done;
}

void vsock_conn_shutdown_send(struct vsock_conn *c)
{
	if (c->dead)
		return;
	c->shut_want |= VSOCK_SHUTDOWN_SEND;
	conn_schedule(c);
}

void vsock_conn_close(struct vsock_conn *c)
{
	if (c->dead)
		return;
	c->ops = NULL;
	if (c->state != CS_CONNECTED) {
		conn_kill(c, true, false);
		return;
	}
	/* Unread guest data is dropped but still credited, so the guest never stalls on us. */
	c->fwd_cnt += c->in.len;
	ring_free(&c->in);
	c->shut_want = VSOCK_SHUTDOWN_BOTH;
	c->shut_sent = false;
	/* The guest answers a full shutdown with RST, which frees the connection. */
	conn_schedule(c);
}

void vsock_conn_reset(struct vsock_conn *c)
{
	conn_kill(c, true, false);
}

uint32_t vsock_conn_host_port(const struct vsock_conn *c)
{
	return c->host_port;
}

uint32_t vsock_conn_guest_port(const struct vsock_conn *c)
{
	return c->guest_port;
}

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

static struct listener *listener_find(struct vsock *vs, uint32_t port)
{
	struct listener *l = vs->listeners;

	while (l && l->port != port)
		l = l->next;
	return l;
}

static void handle_request(struct vsock *vs, const struct vsock_hdr *h)
{
	struct listener *l = listener_find(vs, h->dst_port);
	vsock_accept_fn fn = l ? l->fn : vs->fallback;
	void *fn_opaque = l ? l->opaque : vs->fallback_opaque;
	const struct vsock_conn_ops *ops = NULL;
	void *opaque = NULL;
	struct vsock_conn *c;
	int ret;

	if (!fn) {
		orphan_push(vs, h->dst_port, h->src_port, VSOCK_OP_RST, 0);
		return;
	}
	c = conn_new(vs, h->dst_port, h->src_port);
	if (!c) {
		log_ratelimited(LOG_WARN, TAG, "refusing guest port %u -> %u: too many connections",
				h->src_port, h->dst_port);
		orphan_push(vs, h->dst_port, h->src_port, VSOCK_OP_RST, 0);
		return;
	}
	c->state = CS_CONNECTED;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	/* Set first: an acceptor that sends at once must not get data ahead of the response. */
	c->pend |= P_RESPONSE;
	conn_get(c);
	ret = fn(fn_opaque, c, h->dst_port, &ops, &opaque);
	if (conn_put(c))
		return; /* the acceptor reset it already */
	if (ret < 0) {
		c->pend = 0;
		conn_kill(c, true, false);
		return;
	}
	c->ops = ops;
	c->opaque = opaque;
	conn_schedule(c);
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
		conn_kill(c, true, true);
		return;
	}
	if (h->len > VSOCK_BUF_ALLOC - buffered) {
		/* Over the credit we gave: buffering it would let the guest grow us. */
		c->vs->st.credit_violations++;
		log_ratelimited(LOG_WARN, TAG, "guest port %u sent %u bytes over its credit of %u",
				c->guest_port, h->len, VSOCK_BUF_ALLOC - buffered);
		conn_kill(c, true, true);
		return;
	}
	c->rx_cnt += h->len;
	if (c->ops && c->ops->write_direct && !c->in.len) {
		size_t taken;

		conn_get(c);
		taken = offer_direct(c, iov, niov, h->len);
		if (conn_put(c))
			return; /* closed by the endpoint meanwhile */
		if (taken) {
			c->fwd_cnt += taken;
			if (taken == h->len) {
				conn_after_consume(c);
				return;
			}
			/* The rest is buffered below: skip what the endpoint took. */
			if (ring_put_iov(&c->in, VSOCK_BUF_ALLOC, iov, niov, VSOCK_HDR_SIZE + taken,
					 h->len - taken) < h->len - taken) {
				pr_err(TAG, "out of memory buffering guest data on port %u",
				       c->host_port);
				conn_kill(c, true, true);
				return;
			}
			goto announce;
		}
	}
	if (!c->ops) {
		/* Closed by the endpoint: nobody will read, but keep the guest's credit flowing. */
		c->fwd_cnt += h->len;
		conn_after_consume(c);
		return;
	}
	if (ring_put_iov(&c->in, VSOCK_BUF_ALLOC, iov, niov, VSOCK_HDR_SIZE, h->len) < h->len) {
		pr_err(TAG, "out of memory buffering guest data on port %u", c->host_port);
		conn_kill(c, true, true);
		return;
	}
announce:
	if (c->ops && c->ops->readable) {
		conn_get(c);
		c->ops->readable(c->opaque, c);
		conn_put(c);
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
	vs->st.tx_pkts++;
	if (h.src_cid != vs->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		/* Not ours to answer: an RST would go to an address the guest cannot own. */
		vs->st.malformed++;
		log_ratelimited(LOG_WARN, TAG, "dropping packet from cid %llu to cid %llu",
				(unsigned long long)h.src_cid, (unsigned long long)h.dst_cid);
		return -EINVAL;
	}
	c = conn_find(vs, h.dst_port, h.src_port);
	if (h.len > len - VSOCK_HDR_SIZE || h.len > VSOCK_MAX_PKT_PAYLOAD ||
	    h.type != VSOCK_TYPE_STREAM || h.op == VSOCK_OP_INVALID ||
	    h.op > VSOCK_OP_CREDIT_REQUEST) {
		vs->st.malformed++;
		log_ratelimited(LOG_WARN, TAG,
				"malformed packet port %u -> %u: op %u type %u len %u of %zu",
				h.src_port, h.dst_port, h.op, h.type, h.len, len - VSOCK_HDR_SIZE);
		if (c)
			conn_kill(c, true, true);
		else if (h.op != VSOCK_OP_RST)
			orphan_push(vs, h.dst_port, h.src_port, VSOCK_OP_RST, 0);
		return -EINVAL;
	}
	vs->st.tx_bytes += h.len;

	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			handle_request(vs, &h);
		else if (h.op != VSOCK_OP_RST)
			orphan_push(vs, h.dst_port, h.src_port, VSOCK_OP_RST, 0);
		return 0;
	}

	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VSOCK_OP_REQUEST:
		/* A second request for a live pair: the guest lost track; start over. */
		conn_kill(c, true, true);
		break;
	case VSOCK_OP_RESPONSE:
		if (c->state != CS_CONNECTING) {
			conn_kill(c, true, true);
			break;
		}
		c->state = CS_CONNECTED;
		if (c->ops && c->ops->connected) {
			conn_get(c);
			c->ops->connected(c->opaque, c, 0);
			if (conn_put(c))
				break;
		}
		conn_schedule(c);
		break;
	case VSOCK_OP_RST:
		if (c->state == CS_CONNECTING && c->ops && c->ops->connected) {
			const struct vsock_conn_ops *ops = c->ops;

			/* A refused connect is reported through connected(), not closed(). */
			c->ops = NULL;
			conn_get(c);
			ops->connected(c->opaque, c, -ECONNREFUSED);
			if (conn_put(c))
				break;
		}
		conn_kill(c, false, true);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->peer_shut |= h.flags & VSOCK_SHUTDOWN_BOTH;
		if (c->peer_shut & VSOCK_SHUTDOWN_RCV)
			ring_consume(&c->out, c->out.len); /* nobody will read it */
		conn_after_consume(c);
		break;
	case VSOCK_OP_RW:
		if (c->state != CS_CONNECTED) {
			conn_kill(c, true, true);
			break;
		}
		handle_rw(c, &h, iov, niov);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		c->credit_req_sent = false;
		conn_schedule(c);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pend |= P_CREDIT_UPDATE;
		conn_schedule(c);
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
	uint32_t credit = credit_to_guest(c);
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
		int n = ring_peek(&c->out, span);
		size_t off = VSOCK_HDR_SIZE, left = payload;

		for (int i = 0; i < n && left; i++) {
			size_t k = span[i].iov_len < left ? span[i].iov_len : left;

			iov_from_buf(iov, niov, off, span[i].iov_base, k);
			off += k;
			left -= k;
		}
		ring_consume(&c->out, payload);
		c->tx_cnt += payload;
		c->vs->st.rx_bytes += payload;
		/* Half empty again: let a stalled writer refill (avoids a callback per packet). */
		if (c->writable_wanted && c->out.len <= VSOCK_OUT_MAX / 2) {
			c->writable_wanted = false;
			if (c->ops && c->ops->writable) {
				conn_get(c);
				c->ops->writable(c->opaque, c);
				conn_put(c);
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
		vs->st.rx_pkts++;
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
		conn_get(c);
		n = conn_emit(c, iov, niov, cap);
		if (!conn_put(c))
			conn_schedule(c); /* round robin: back of the line if it has more */
		if (n > 0) {
			vs->st.rx_pkts++;
			return n;
		}
	}
	return 0;
}

/* ---- engine ------------------------------------------------------------------- */

int vsock_engine_create(struct vsock **out, uint64_t guest_cid)
{
	struct vsock *vs;

	/* 0-2 are reserved (hypervisor, local, host); above 32 bits is reserved too. */
	if (guest_cid < 3 || guest_cid >= 0xffffffffULL)
		return -EINVAL;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->guest_cid = guest_cid;
	vs->next_port = EPHEMERAL_FIRST;
	*out = vs;
	return 0;
}

static void kill_all(struct vsock *vs, bool notify)
{
	for (unsigned i = 0; i < HASH_SIZE; i++)
		while (vs->hash[i])
			conn_kill(vs->hash[i], false, notify);
	vs->o_len = 0;
}

void vsock_engine_destroy(struct vsock *vs)
{
	struct listener *l;

	if (!vs)
		return;
	vs->kick = NULL;
	kill_all(vs, true);
	while ((l = vs->listeners)) {
		vs->listeners = l->next;
		free(l);
	}
	free(vs);
}

void vsock_reset(struct vsock *vs)
{
	kill_all(vs, true);
}

uint64_t vsock_guest_cid(const struct vsock *vs)
{
	return vs->guest_cid;
}

void vsock_set_rx_kick(struct vsock *vs, void (*fn)(void *opaque), void *opaque)
{
	vs->kick = fn;
	vs->kick_opaque = opaque;
}

int vsock_listen(struct vsock *vs, uint32_t port, vsock_accept_fn fn, void *opaque)
{
	struct listener *l;

	if (!fn)
		return -EINVAL;
	if (listener_find(vs, port))
		return -EADDRINUSE;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->port = port;
	l->fn = fn;
	l->opaque = opaque;
	l->next = vs->listeners;
	vs->listeners = l;
	return 0;
}

void vsock_unlisten(struct vsock *vs, uint32_t port)
{
	struct listener **pp = &vs->listeners;

	while (*pp && (*pp)->port != port)
		pp = &(*pp)->next;
	if (*pp) {
		struct listener *l = *pp;

		*pp = l->next;
		free(l);
	}
}

void vsock_set_fallback(struct vsock *vs, vsock_fallback_fn fn, void *opaque)
{
	vs->fallback = fn;
	vs->fallback_opaque = opaque;
}

int vsock_connect(struct vsock *vs, uint32_t guest_port, uint32_t host_port,
		  const struct vsock_conn_ops *ops, void *opaque, struct vsock_conn **out)
{
	struct vsock_conn *c;

	if (!host_port) {
		uint32_t tries = 0;

		do {
			host_port = vs->next_port++;
			if (vs->next_port > EPHEMERAL_LAST)
				vs->next_port = EPHEMERAL_FIRST;
			if (++tries > VSOCK_MAX_CONNS + 1)
				return -EADDRNOTAVAIL;
		} while (conn_find(vs, host_port, guest_port) || listener_find(vs, host_port));
	} else if (conn_find(vs, host_port, guest_port)) {
		return -EADDRINUSE;
	}
	c = conn_new(vs, host_port, guest_port);
	if (!c)
		return vs->nr_conns >= VSOCK_MAX_CONNS ? -EMFILE : -ENOMEM;
	c->state = CS_CONNECTING;
	c->ops = ops;
	c->opaque = opaque;
	c->pend = P_REQUEST;
	*out = c;
	conn_schedule(c);
	return 0;
}

void vsock_get_stats(const struct vsock *vs, struct vsock_stats *st)
{
	*st = vs->st;
	st->conns = vs->nr_conns;
}
