/*
 * virtio-vsock engine, connections: the table, scheduling towards the guest,
 * lifetime, and the API host endpoints use (see vsock.h, vsock_priv.h).
 *
 * Credit (virtio spec 5.10.6.3): each side advertises buf_alloc, the size of
 * its receive buffer, and fwd_cnt, the bytes it has consumed so far. A sender
 * may have at most buf_alloc - (sent - peer_fwd_cnt) bytes outstanding. We
 * enforce that on the guest (a guest over its credit is reset: that is what
 * bounds our buffering) and obey it towards the guest.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio/vsock_priv.h"
#include "vmm/log.h"

#define TAG "vsock"

/* ---- connections ------------------------------------------------------------ */

static unsigned hash_of(uint32_t host_port, uint32_t guest_port)
{
	return (host_port * 2654435761u ^ guest_port * 40503u) % HASH_SIZE;
}

struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
{
	struct vsock_conn *c = vs->hash[hash_of(host_port, guest_port)];

	while (c && (c->host_port != host_port || c->guest_port != guest_port))
		c = c->hnext;
	return c;
}

uint32_t vsock_credit_to_guest(const struct vsock_conn *c)
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
		if (vsock_credit_to_guest(c))
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

void vsock_conn_schedule(struct vsock_conn *c)
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
	vsock_ring_free(&c->in);
	vsock_ring_free(&c->out);
	free(c);
}

/* Queues a control packet that belongs to no live connection. */
void vsock_orphan_push(struct vsock *vs, uint32_t host_port, uint32_t guest_port, uint16_t op,
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
void vsock_conn_get(struct vsock_conn *c)
{
	c->cb_depth++;
}

/* Returns true when c was freed (the caller must not touch it). */
bool vsock_conn_put(struct vsock_conn *c)
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
void vsock_conn_kill(struct vsock_conn *c, bool send_rst, bool notify)
{
	const struct vsock_conn_ops *ops = c->ops;

	if (c->dead)
		return;
	c->dead = true;
	conn_unhash(c);
	conn_unqueue(c);
	c->ops = NULL;
	if (send_rst)
		vsock_orphan_push(c->vs, c->host_port, c->guest_port, VSOCK_OP_RST, 0);
	if (notify && ops && ops->closed) {
		vsock_conn_get(c);
		ops->closed(c->opaque, c);
		c->cb_depth--;
	}
	if (c->cb_depth == 0)
		conn_free(c);
}

struct vsock_conn *vsock_conn_new(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
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
void vsock_conn_after_consume(struct vsock_conn *c)
{
	if (c->dead)
		return;
	if (c->fwd_cnt - c->fwd_cnt_sent >= CREDIT_UPDATE_THRESHOLD) {
		c->pend |= P_CREDIT_UPDATE;
		vsock_conn_schedule(c);
	}
	if (c->in.len)
		return;
	if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->eof_told) {
		c->eof_told = true;
		if (c->ops && c->ops->eof) {
			vsock_conn_get(c);
			c->ops->eof(c->opaque, c);
			if (vsock_conn_put(c))
				return;
		}
	}
	/* The guest closed both ways and we hold nothing of its data: finish (Linux does too). */
	if (c->peer_shut == VSOCK_SHUTDOWN_BOTH && !c->dead)
		vsock_conn_kill(c, true, true);
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
	n = vsock_ring_put_iov(&c->out, VSOCK_OUT_MAX, &iov, 1, 0, len);
	if (n < len)
		c->writable_wanted = true;
	if (n)
		vsock_conn_schedule(c);
	return n;
}

size_t vsock_conn_readable(const struct vsock_conn *c)
{
	return c->in.len;
}

int vsock_conn_peek(const struct vsock_conn *c, struct iovec iov[2])
{
	return vsock_ring_peek(&c->in, iov);
}

void vsock_conn_consume(struct vsock_conn *c, size_t n)
{
	if (n > c->in.len)
		n = c->in.len;
	vsock_ring_consume(&c->in, n);
	c->fwd_cnt += n;
	vsock_conn_after_consume(c);
}

size_t vsock_conn_recv(struct vsock_conn *c, void *buf, size_t len)
{
	struct iovec iov[2];
	int n = vsock_ring_peek(&c->in, iov);
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
	vsock_conn_schedule(c);
}

void vsock_conn_close(struct vsock_conn *c)
{
	if (c->dead)
		return;
	c->ops = NULL;
	if (c->state != CS_CONNECTED) {
		vsock_conn_kill(c, true, false);
		return;
	}
	/* Unread guest data is dropped but still credited, so the guest never stalls on us. */
	c->fwd_cnt += c->in.len;
	vsock_ring_free(&c->in);
	c->shut_want = VSOCK_SHUTDOWN_BOTH;
	c->shut_sent = false;
	/* The guest answers a full shutdown with RST, which frees the connection. */
	vsock_conn_schedule(c);
}

void vsock_conn_reset(struct vsock_conn *c)
{
	vsock_conn_kill(c, true, false);
}

uint32_t vsock_conn_host_port(const struct vsock_conn *c)
{
	return c->host_port;
}

uint32_t vsock_conn_guest_port(const struct vsock_conn *c)
{
	return c->guest_port;
}
