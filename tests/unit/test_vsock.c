/*
 * virtio-vsock engine on a fake guest: packets are built and read here the
 * way a guest driver would put them on the tx queue and find them on rx.
 */
#include <errno.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/vsock.h"
#include "virtio_test_util.h"
#include "vmm/loop.h"

#define CID	 42
#define HPORT	 1234 /* host listener */
#define GPORT	 5000 /* guest's source port */
#define GUESTBUF (4096 + VSOCK_HDR_SIZE)

struct ep {
	struct vsock_conn *c;
	int readable, writable, eof, closed, connected, conn_err;
	size_t got;
	uint8_t data[VSOCK_BUF_ALLOC * 2];
	bool auto_read;	    /* consume everything on readable */
	bool reset_on_read; /* reset the connection inside readable */
	bool close_on_eof;  /* close inside eof */
	int refuse;	    /* accept returns this */
	bool direct;	    /* offer write_direct */
	size_t direct_take; /* bytes write_direct takes per call */
	int direct_calls;
	bool reset_on_direct;
};

static void ep_connected(void *o, struct vsock_conn *c, int err)
{
	struct ep *e = o;

	e->connected++;
	e->conn_err = err;
}

static void ep_readable(void *o, struct vsock_conn *c)
{
	struct ep *e = o;

	e->readable++;
	if (e->reset_on_read) {
		vsock_conn_reset(c);
		e->c = NULL;
		return;
	}
	if (e->auto_read)
		e->got += vsock_conn_recv(c, e->data + e->got, sizeof(e->data) - e->got);
}

static void ep_writable(void *o, struct vsock_conn *c)
{
	((struct ep *)o)->writable++;
}

static void ep_eof(void *o, struct vsock_conn *c)
{
	struct ep *e = o;

	e->eof++;
	if (e->close_on_eof) {
		vsock_conn_close(c);
		e->c = NULL;
	}
}

static void ep_closed(void *o, struct vsock_conn *c)
{
	struct ep *e = o;

	e->closed++;
	e->c = NULL;
}

static const struct vsock_conn_ops ep_ops = {
    .connected = ep_connected,
    .readable = ep_readable,
    .writable = ep_writable,
    .eof = ep_eof,
    .closed = ep_closed,
};

/* Takes up to direct_take bytes of the packet, in order, into data. */
static size_t ep_write_direct(void *o, struct vsock_conn *c, const struct iovec *iov, int niov)
{
	struct ep *e = o;
	size_t took = 0;

	e->direct_calls++;
	if (e->reset_on_direct) {
		vsock_conn_reset(c);
		e->c = NULL;
		return 0;
	}
	for (int i = 0; i < niov && took < e->direct_take; i++) {
		size_t n = iov[i].iov_len < e->direct_take - took ? iov[i].iov_len
								     : e->direct_take - took;

		memcpy(e->data + e->got, iov[i].iov_base, n);
		e->got += n;
		took += n;
	}
	return took;
}

static const struct vsock_conn_ops ep_direct_ops = {
    .connected = ep_connected,
    .readable = ep_readable,
    .write_direct = ep_write_direct,
    .writable = ep_writable,
    .eof = ep_eof,
    .closed = ep_closed,
};

static int accept_fn(void *opaque, struct vsock_conn *c, uint32_t port,
		     const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct ep *e = opaque;

	if (e->refuse)
		return e->refuse;
	e->c = c;
	*ops = e->direct ? &ep_direct_ops : &ep_ops;
	*conn_opaque = e;
	return 0;
}

struct fx {
	struct vsock *vs;
	struct ep *ep;
	int kicks;
	uint32_t guest_fwd; /* what the fake guest consumed of host data */
};

static void on_kick(void *o)
{
	((struct fx *)o)->kicks++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->ep = calloc(1, sizeof(*f->ep));
	assert_int_equal(vsock_engine_create(&f->vs, CID), 0);
	vsock_set_rx_kick(f->vs, on_kick, f);
	assert_int_equal(vsock_listen(f->vs, HPORT, accept_fn, f->ep), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vsock_engine_destroy(f->vs);
	free(f->ep);
	free(f);
	return 0;
}

/* The guest sends one packet, optionally split into header and payload buffers. */
static int gsend_full(struct fx *f, uint64_t src_cid, uint16_t type, uint16_t op, uint32_t sport,
		      uint32_t dport, const void *payload, uint32_t hdr_len, size_t real_len,
		      uint32_t buf_alloc, uint32_t flags)
{
	struct vsock_hdr h = {
	    .src_cid = src_cid,
	    .dst_cid = VSOCK_HOST_CID,
	    .src_port = sport,
	    .dst_port = dport,
	    .len = hdr_len,
	    .type = type,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = buf_alloc,
	    .fwd_cnt = f->guest_fwd,
	};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, real_len}};

	return vsock_tx(f->vs, iov, real_len ? 2 : 1, sizeof(h) + real_len);
}

static int gsend(struct fx *f, uint16_t op, const void *payload, uint32_t len)
{
	return gsend_full(f, CID, VSOCK_TYPE_STREAM, op, GPORT, HPORT, payload, len, len,
			  VSOCK_BUF_ALLOC, 0);
}

/* The guest takes the next packet; returns its op (0: none). */
static int grecv(struct fx *f, struct vsock_hdr *h, uint8_t *payload)
{
	static uint8_t buf[GUESTBUF];
	struct iovec iov[2] = {{buf, 20}, {buf + 20, sizeof(buf) - 20}}; /* header split too */
	long n = vsock_rx(f->vs, iov, 2, sizeof(buf));

	assert_true(n >= 0);
	if (n == 0)
		return 0;
	assert_true(n >= VSOCK_HDR_SIZE);
	memcpy(h, buf, sizeof(*h));
	assert_int_equal(h->len, n - VSOCK_HDR_SIZE);
	assert_int_equal(h->src_cid, VSOCK_HOST_CID);
	assert_int_equal(h->dst_cid, CID);
	assert_int_equal(h->type, VSOCK_TYPE_STREAM);
	assert_int_equal(h->buf_alloc, VSOCK_BUF_ALLOC);
	if (payload)
		memcpy(payload, buf + VSOCK_HDR_SIZE, h->len);
	return h->op;
}

static void expect_op(struct fx *f, int op, uint32_t sport, uint32_t dport)
{
	struct vsock_hdr h;

	assert_int_equal(grecv(f, &h, NULL), op);
	assert_int_equal(h.src_port, sport);
	assert_int_equal(h.dst_port, dport);
}

static void expect_nothing(struct fx *f)
{
	struct vsock_hdr h;

	assert_false(vsock_rx_pending(f->vs));
	assert_int_equal(grecv(f, &h, NULL), 0);
}

static void connect_guest(struct fx *f)
{
	assert_int_equal(gsend(f, VSOCK_OP_REQUEST, NULL, 0), 0);
	assert_non_null(f->ep->c);
	expect_op(f, VSOCK_OP_RESPONSE, HPORT, GPORT);
	expect_nothing(f);
}

static void test_connect_and_refuse(void **state)
{
	struct fx *f = *state;
	struct vsock_stats st;

	connect_guest(f);
	assert_true(f->kicks > 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 1);
	/* No listener on that port: reset. */
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, GPORT, 999, NULL,
				    0, 0, VSOCK_BUF_ALLOC, 0),
			 0);
	expect_op(f, VSOCK_OP_RST, 999, GPORT);
	/* Listener refuses: reset, no connection left. */
	f->ep->refuse = -ECONNREFUSED;
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, GPORT + 1, HPORT,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, 0),
			 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT + 1);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 1);
	assert_int_equal(vsock_listen(f->vs, HPORT, accept_fn, f->ep), -EADDRINUSE);
}

static void test_rst_for_unknown_connections(void **state)
{
	struct fx *f = *state;
	static const int ops[] = {VSOCK_OP_RESPONSE, VSOCK_OP_SHUTDOWN, VSOCK_OP_RW,
				  VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_CREDIT_REQUEST};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		assert_int_equal(gsend(f, ops[i], "x", ops[i] == VSOCK_OP_RW), 0);
		expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
		expect_nothing(f);
	}
	/* An RST for nothing is not answered (no RST storms). */
	assert_int_equal(gsend(f, VSOCK_OP_RST, NULL, 0), 0);
	expect_nothing(f);
}

static void test_guest_to_host_data_and_credit_update(void **state)
{
	struct fx *f = *state;
	static uint8_t chunk[4096];
	struct vsock_hdr h;
	size_t sent = 0;

	f->ep->auto_read = true;
	connect_guest(f);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = i * 7;
	/* Consumed data is credited back once a quarter of the buffer went through. */
	while (sent < VSOCK_BUF_ALLOC / 4 - sizeof(chunk)) {
		assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
		sent += sizeof(chunk);
		expect_nothing(f);
	}
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
	sent += sizeof(chunk);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, sent);
	assert_int_equal(f->ep->got, sent);
	assert_memory_equal(f->ep->data, chunk, sizeof(chunk));
	/* An explicit request is answered with the current count. */
	assert_int_equal(gsend(f, VSOCK_OP_CREDIT_REQUEST, NULL, 0), 0);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, sent);
	expect_nothing(f);
}

/*
 * write_direct: what the endpoint takes from the packet skips the buffer, the rest is
 * buffered behind it, nothing is offered directly while older bytes wait, and all of it
 * counts towards the guest's credit.
 */
static void test_guest_to_host_direct(void **state)
{
	struct fx *f = *state;
	static uint8_t chunk[4096], want[4 * 4096];
	struct vsock_hdr h;
	size_t sent = 0, base;

	f->ep->direct = true;
	f->ep->direct_take = sizeof(chunk);
	connect_guest(f);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 13 + 1);
	/* All taken directly: nothing buffered, no readable callback. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, want, sizeof(chunk)), 0);
	sent += sizeof(chunk);
	assert_int_equal(f->ep->direct_calls, 1);
	assert_int_equal(f->ep->readable, 0);
	assert_int_equal(vsock_conn_readable(f->ep->c), 0);
	/* Partly taken: the tail is buffered and announced. */
	f->ep->direct_take = 1000;
	assert_int_equal(gsend(f, VSOCK_OP_RW, want + sent, sizeof(chunk)), 0);
	sent += sizeof(chunk);
	assert_int_equal(f->ep->direct_calls, 2);
	assert_int_equal(f->ep->readable, 1);
	assert_int_equal(vsock_conn_readable(f->ep->c), sizeof(chunk) - 1000);
	/* Bytes are waiting: the next packet must queue behind them, not overtake. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, want + sent, sizeof(chunk)), 0);
	sent += sizeof(chunk);
	assert_int_equal(f->ep->direct_calls, 2);
	f->ep->got += vsock_conn_recv(f->ep->c, f->ep->data + f->ep->got,
				      sizeof(f->ep->data) - f->ep->got);
	/* Drained: direct again. */
	f->ep->direct_take = sizeof(chunk);
	assert_int_equal(gsend(f, VSOCK_OP_RW, want + sent, sizeof(chunk)), 0);
	sent += sizeof(chunk);
	assert_int_equal(f->ep->direct_calls, 3);
	assert_int_equal(f->ep->got, sent);
	assert_memory_equal(f->ep->data, want, sent);
	/* 16 KiB consumed: under the update threshold; a request reports every byte. */
	assert_int_equal(gsend(f, VSOCK_OP_CREDIT_REQUEST, NULL, 0), 0);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, sent);
	expect_nothing(f);
	/* A quarter of the buffer past the last update, direct consumption sends one itself. */
	base = sent;
	while (sent - base < VSOCK_BUF_ALLOC / 4) {
		assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
		sent += sizeof(chunk);
	}
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, sent);
}

/* An endpoint that resets the connection from write_direct leaves nothing behind. */
static void test_guest_to_host_direct_reset(void **state)
{
	struct fx *f = *state;
	static uint8_t chunk[512];
	struct vsock_stats st;

	f->ep->direct = true;
	f->ep->reset_on_direct = true;
	connect_guest(f);
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
}

/* A guest that ignores our credit is reset: we never buffer more than we offered. */
static void test_guest_credit_exhaustion(void **state)
{
	struct fx *f = *state;
	static uint8_t chunk[VSOCK_MAX_PKT_PAYLOAD];
	struct vsock_stats st;

	connect_guest(f); /* no auto_read: the endpoint is slow */
	for (unsigned i = 0; i < VSOCK_BUF_ALLOC / sizeof(chunk); i++)
		assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
	assert_int_equal(vsock_conn_readable(f->ep->c), VSOCK_BUF_ALLOC);
	expect_nothing(f);
	/* One byte more than the credit. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, 1), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	assert_int_equal(f->ep->closed, 1);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.credit_violations, 1);
	assert_int_equal(st.conns, 0);
	/* Later packets on that pair find no connection. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, 1), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
}

/* Partial consumption frees exactly that much credit. */
static void test_guest_credit_partial(void **state)
{
	struct fx *f = *state;
	static uint8_t chunk[VSOCK_MAX_PKT_PAYLOAD], sink[VSOCK_MAX_PKT_PAYLOAD];

	connect_guest(f);
	for (unsigned i = 0; i < VSOCK_BUF_ALLOC / sizeof(chunk); i++)
		assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, sizeof(chunk)), 0);
	assert_int_equal(vsock_conn_recv(f->ep->c, sink, 100), 100);
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, 100), 0);
	assert_int_equal(f->ep->closed, 0);
	assert_int_equal(gsend(f, VSOCK_OP_RW, chunk, 1), 0);
	assert_int_equal(f->ep->closed, 1);
}

/* Host -> guest obeys the guest's buf_alloc and resumes on its credit update. */
static void test_host_to_guest_credit(void **state)
{
	struct fx *f = *state;
	static uint8_t data[5000], got[5000];
	struct vsock_hdr h;
	size_t off = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = i % 251;
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, GPORT, HPORT, NULL,
				    0, 0, 1000, 0),
			 0);
	expect_op(f, VSOCK_OP_RESPONSE, HPORT, GPORT);
	assert_int_equal(vsock_conn_send(f->ep->c, data, sizeof(data)), sizeof(data));
	assert_int_equal(grecv(f, &h, got), VSOCK_OP_RW);
	assert_int_equal(h.len, 1000);
	off += 1000;
	/* Out of credit: one credit request, then silence. */
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_REQUEST);
	expect_nothing(f);
	/* The guest read 600 bytes and says so. */
	f->guest_fwd = 600;
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE, GPORT, HPORT,
				    NULL, 0, 0, 1000, 0),
			 0);
	assert_int_equal(grecv(f, &h, got + off), VSOCK_OP_RW);
	assert_int_equal(h.len, 600);
	off += 600;
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_CREDIT_REQUEST);
	expect_nothing(f);
	/* The guest grows its buffer: the rest flows, in 4 KiB guest buffers. */
	f->guest_fwd = 1600;
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE, GPORT, HPORT,
				    NULL, 0, 0, 1 << 20, 0),
			 0);
	while (off < sizeof(data)) {
		assert_int_equal(grecv(f, &h, got + off), VSOCK_OP_RW);
		assert_true(h.len <= 4096);
		off += h.len;
	}
	assert_int_equal(off, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	expect_nothing(f);
}

/* The host side's buffer is bounded; a stalled writer hears when room frees. */
static void test_host_buffer_bounded(void **state)
{
	struct fx *f = *state;
	static uint8_t big[VSOCK_OUT_MAX + 1000];
	struct vsock_hdr h;
	size_t drained = 0;

	connect_guest(f);
	assert_int_equal(vsock_conn_send(f->ep->c, big, sizeof(big)), VSOCK_OUT_MAX);
	assert_int_equal(vsock_conn_send(f->ep->c, big, 10), 0);
	assert_int_equal(f->ep->writable, 0);
	while (f->ep->writable == 0) {
		assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_RW);
		drained += h.len;
	}
	assert_true(drained >= VSOCK_OUT_MAX / 2);
	assert_int_equal(vsock_conn_send(f->ep->c, big, 10), 10);
}

static void test_malformed(void **state)
{
	struct fx *f = *state;
	uint8_t small[10] = {0};
	struct iovec iov = {small, sizeof(small)};
	static uint8_t big[VSOCK_MAX_PKT_PAYLOAD + 1];
	struct vsock_stats st;

	/* Shorter than a header: dropped, nothing to answer. */
	assert_int_equal(vsock_tx(f->vs, &iov, 1, sizeof(small)), -EINVAL);
	expect_nothing(f);
	/* Spoofed source CID: dropped silently. */
	assert_int_equal(gsend_full(f, CID + 1, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, GPORT, HPORT,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, 0),
			 -EINVAL);
	expect_nothing(f);
	assert_null(f->ep->c);
	/* Header claims more payload than the buffers hold. */
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_RW, GPORT, HPORT, "abc",
				    100, 3, VSOCK_BUF_ALLOC, 0),
			 -EINVAL);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	/* Payload over the packet limit. */
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_RW, GPORT, HPORT, big,
				    sizeof(big), sizeof(big), VSOCK_BUF_ALLOC, 0),
			 -EINVAL);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	/* Seqpacket and unknown ops are reset; a live connection goes down with them. */
	connect_guest(f);
	assert_int_equal(
	    gsend_full(f, CID, 2, VSOCK_OP_RW, GPORT, HPORT, "a", 1, 1, VSOCK_BUF_ALLOC, 0),
	    -EINVAL);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	assert_int_equal(f->ep->closed, 1);
	assert_int_equal(
	    gsend_full(f, CID, VSOCK_TYPE_STREAM, 99, GPORT, HPORT, NULL, 0, 0, VSOCK_BUF_ALLOC, 0),
	    -EINVAL);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.malformed, 6);
	/* Still serving. */
	connect_guest(f);
}

static void test_host_connect(void **state)
{
	struct fx *f = *state;
	struct ep e = {0};
	struct vsock_conn *c;
	struct vsock_hdr h;
	uint8_t buf[16];

	assert_int_equal(vsock_connect(f->vs, 7000, 0, &ep_ops, &e, &c), 0);
	/* Data queued before the guest answers waits for the response. */
	assert_int_equal(vsock_conn_send(c, "hello", 5), 5);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 7000);
	assert_true(h.src_port >= 49152);
	expect_nothing(f);
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_RESPONSE, 7000, h.src_port,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, 0),
			 0);
	assert_int_equal(e.connected, 1);
	assert_int_equal(e.conn_err, 0);
	assert_int_equal(grecv(f, &h, buf), VSOCK_OP_RW);
	assert_memory_equal(buf, "hello", 5);

	/* Refused: reported through connected, not closed. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(vsock_connect(f->vs, 7001, 0, &ep_ops, &e, &c), 0);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_REQUEST);
	assert_int_equal(
	    gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_RST, 7001, h.src_port, NULL, 0, 0, 0, 0),
	    0);
	assert_int_equal(e.connected, 1);
	assert_int_equal(e.conn_err, -ECONNREFUSED);
	assert_int_equal(e.closed, 0);
	/* A response nobody asked for resets. */
	connect_guest(f);
	assert_int_equal(gsend(f, VSOCK_OP_RESPONSE, NULL, 0), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	assert_int_equal(f->ep->closed, 1);
	/* Fixed host port already paired with that guest port. */
	assert_int_equal(vsock_connect(f->vs, 7000, 0, &ep_ops, &e, &c), 0);
	assert_int_equal(vsock_connect(f->vs, 7000, vsock_conn_host_port(c), &ep_ops, &e, &c),
			 -EADDRINUSE);
}

static void test_shutdown_paths(void **state)
{
	struct fx *f = *state;
	struct vsock_hdr h;
	uint8_t buf[16];

	connect_guest(f);
	assert_int_equal(gsend(f, VSOCK_OP_RW, "abc", 3), 0);
	/* Guest EOF: reported only once its data has been read. */
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_SHUTDOWN, GPORT, HPORT,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, VSOCK_SHUTDOWN_SEND),
			 0);
	assert_int_equal(f->ep->eof, 0);
	assert_int_equal(vsock_conn_recv(f->ep->c, buf, sizeof(buf)), 3);
	assert_int_equal(f->ep->eof, 1);
	/* Data after EOF is a protocol error. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, "x", 1), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	assert_int_equal(f->ep->closed, 1);

	/* Host half-close: data first, then SHUTDOWN(SEND); later sends refused. */
	connect_guest(f);
	assert_int_equal(vsock_conn_send(f->ep->c, "xyz", 3), 3);
	vsock_conn_shutdown_send(f->ep->c);
	assert_int_equal(vsock_conn_send(f->ep->c, "late", 4), 0);
	assert_int_equal(grecv(f, &h, buf), VSOCK_OP_RW);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
	expect_nothing(f);
	/* Guest closes both ways: we reset and the endpoint hears closed. */
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_SHUTDOWN, GPORT, HPORT,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, VSOCK_SHUTDOWN_BOTH),
			 0);
	assert_int_equal(f->ep->eof, 2);
	assert_int_equal(f->ep->closed, 2);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	expect_nothing(f);
}

static void test_close_from_host(void **state)
{
	struct fx *f = *state;
	struct vsock_hdr h;
	struct vsock_stats st;

	connect_guest(f);
	assert_int_equal(vsock_conn_send(f->ep->c, "bye", 3), 3);
	assert_int_equal(gsend(f, VSOCK_OP_RW, "unread", 6), 0);
	vsock_conn_close(f->ep->c);
	f->ep->c = NULL;
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_RW);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_BOTH);
	assert_int_equal(h.fwd_cnt, 6); /* unread data was credited back */
	expect_nothing(f);
	/* Data arriving after close is credited and dropped, no callback. */
	assert_int_equal(gsend(f, VSOCK_OP_RW, "more", 4), 0);
	assert_int_equal(f->ep->readable, 1);
	/* The guest's RST finishes it; no closed callback after close. */
	assert_int_equal(gsend(f, VSOCK_OP_RST, NULL, 0), 0);
	assert_int_equal(f->ep->closed, 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
	expect_nothing(f);
}

/* Callbacks may end their own connection. ASan catches any use after free. */
static void test_reentrant_close(void **state)
{
	struct fx *f = *state;

	f->ep->reset_on_read = true;
	connect_guest(f);
	assert_int_equal(gsend(f, VSOCK_OP_RW, "a", 1), 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	assert_int_equal(f->ep->closed, 0);

	f->ep->reset_on_read = false;
	f->ep->close_on_eof = true;
	f->ep->auto_read = true;
	connect_guest(f);
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_SHUTDOWN, GPORT, HPORT,
				    NULL, 0, 0, VSOCK_BUF_ALLOC, VSOCK_SHUTDOWN_BOTH),
			 0);
	assert_int_equal(f->ep->eof, 1);
	/* closed() was not called: the endpoint had let go inside eof. */
	assert_int_equal(f->ep->closed, 0);
	expect_op(f, VSOCK_OP_RST, HPORT, GPORT);
	expect_nothing(f);
}

static void test_conn_limit_and_reset(void **state)
{
	struct fx *f = *state;
	struct vsock_stats st;
	struct vsock_hdr h;

	for (uint32_t i = 0; i < VSOCK_MAX_CONNS; i++) {
		assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 10000 + i,
					    HPORT, NULL, 0, 0, VSOCK_BUF_ALLOC, 0),
				 0);
		assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_RESPONSE);
	}
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 9999, HPORT, NULL,
				    0, 0, VSOCK_BUF_ALLOC, 0),
			 0);
	expect_op(f, VSOCK_OP_RST, HPORT, 9999);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, VSOCK_MAX_CONNS);
	f->ep->closed = 0;
	vsock_reset(f->vs);
	assert_int_equal(f->ep->closed, VSOCK_MAX_CONNS);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
	expect_nothing(f);
}

/* Orphan control packets are bounded: a flood of junk cannot grow us. */
static void test_orphan_bound(void **state)
{
	struct fx *f = *state;
	struct vsock_stats st;
	struct vsock_hdr h;
	int n = 0;

	for (int i = 0; i < VSOCK_ORPHAN_MAX + 50; i++)
		assert_int_equal(gsend(f, VSOCK_OP_RW, "x", 1), 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.orphans_dropped, 50);
	while (grecv(f, &h, NULL))
		n++;
	assert_int_equal(n, VSOCK_ORPHAN_MAX);
}

static void test_tiny_rx_buffer(void **state)
{
	struct fx *f = *state;
	uint8_t buf[VSOCK_HDR_SIZE];
	struct iovec iov = {buf, sizeof(buf)};

	connect_guest(f);
	assert_int_equal(vsock_conn_send(f->ep->c, "abc", 3), 3);
	assert_int_equal(vsock_rx(f->vs, &iov, 1, 10), -ENOSPC);
	/* Exactly a header: no room for data, and no endless loop either. */
	assert_int_equal(vsock_rx(f->vs, &iov, 1, sizeof(buf)), 0);
}

static void test_bad_cid(void **state)
{
	struct vsock *vs;

	assert_int_equal(vsock_engine_create(&vs, 2), -EINVAL);
	assert_int_equal(vsock_engine_create(&vs, 0xffffffffULL), -EINVAL);
	vsock_engine_destroy(NULL);
}

/* ---- Unix socket backend ------------------------------------------------------- */

struct ufx {
	struct fx f;
	struct loop *loop;
	struct vsock_uds *uds;
	int tfd;
	char dir[64], path[96];
};

static void on_timer(void *o, uint32_t ev)
{
	struct ufx *u = o;
	uint64_t v;

	if (read(u->tfd, &v, sizeof(v)) < 0) {
		/* spurious wakeup */
	}
	loop_stop(u->loop);
}

/* Runs the event loop for a short while. */
static void pump(struct ufx *u)
{
	struct itimerspec its = {.it_value = {0, 20 * 1000 * 1000}};

	timerfd_settime(u->tfd, 0, &its, NULL);
	assert_int_equal(loop_run(u->loop), 0);
}

static int usetup(void **state)
{
	struct ufx *u = calloc(1, sizeof(*u));

	u->f.ep = calloc(1, sizeof(*u->f.ep));
	assert_int_equal(vsock_engine_create(&u->f.vs, CID), 0);
	assert_int_equal(loop_create(&u->loop), 0);
	u->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	assert_int_equal(loop_add(u->loop, u->tfd, EPOLLIN, on_timer, u), 0);
	snprintf(u->dir, sizeof(u->dir), "/tmp/vsock-test-XXXXXX");
	assert_non_null(mkdtemp(u->dir));
	snprintf(u->path, sizeof(u->path), "%s/v.sock", u->dir);
	assert_int_equal(vsock_uds_create(&u->uds, u->f.vs, u->loop, u->path), 0);
	*state = u;
	return 0;
}

static int uteardown(void **state)
{
	struct ufx *u = *state;
	char cmd[128];

	vsock_uds_destroy(u->uds);
	vsock_engine_destroy(u->f.vs);
	loop_del(u->loop, u->tfd);
	close(u->tfd);
	loop_destroy(u->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", u->dir);
	assert_int_equal(system(cmd), 0);
	free(u->f.ep);
	free(u);
	return 0;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads what is there within a short wait; returns bytes (0 at EOF, -1 if nothing came). */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 200) <= 0)
		return -1;
	return read(fd, buf, len);
}

static void gsend_ports(struct fx *f, uint16_t op, uint32_t sport, uint32_t dport,
			const void *payload, uint32_t len, uint32_t flags)
{
	assert_int_equal(gsend_full(f, CID, VSOCK_TYPE_STREAM, op, sport, dport, payload, len, len,
				    VSOCK_BUF_ALLOC, flags),
			 0);
}

static void test_uds_host_connect(void **state)
{
	struct ufx *u = *state;
	struct fx *f = &u->f;
	struct vsock_hdr h;
	uint8_t buf[256];
	char want[32];
	uint32_t hp;
	int fd = unix_connect(u->path);

	/* Payload right behind the handshake line must not be lost. */
	assert_int_equal(write(fd, "CONNECT 52\nearly", 16), 16);
	pump(u);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 52);
	hp = h.src_port;
	expect_nothing(f);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), -1); /* no OK before the guest accepts */
	gsend_ports(f, VSOCK_OP_RESPONSE, 52, hp, NULL, 0, 0);
	pump(u);
	snprintf(want, sizeof(want), "OK %u\n", hp);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	assert_int_equal(grecv(f, &h, buf), VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "early", 5);
	/* guest -> program */
	gsend_ports(f, VSOCK_OP_RW, 52, hp, "pong", 4, 0);
	pump(u);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	/* The program's EOF becomes SHUTDOWN(SEND) for the guest. */
	shutdown(fd, SHUT_WR);
	pump(u);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
	/* The guest's full shutdown: the program reads EOF. */
	gsend_ports(f, VSOCK_OP_SHUTDOWN, 52, hp, NULL, 0, VSOCK_SHUTDOWN_BOTH);
	pump(u);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), 0);
	close(fd);
	pump(u);
}

static void test_uds_host_connect_refused_and_bad(void **state)
{
	struct ufx *u = *state;
	struct fx *f = &u->f;
	struct vsock_hdr h;
	uint8_t buf[64];
	int fd = unix_connect(u->path);

	assert_int_equal(write(fd, "CONNECT 53\n", 11), 11);
	pump(u);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_REQUEST);
	gsend_ports(f, VSOCK_OP_RST, 53, h.src_port, NULL, 0, 0);
	pump(u);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), 0); /* closed, no OK */
	close(fd);

	static const char *const bad[] = {"HELLO 5\n", "CONNECT x\n", "CONNECT 99999999999\n",
					  "CONNECT 5 6\n",
					  "CONNECT 000000000000000000000000000001"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = unix_connect(u->path);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])), strlen(bad[i]));
		pump(u);
		/* Closed: EOF, or a reset when our unread bytes were still in its buffer. */
		errno = 0;
		assert_true(read_some(fd, buf, sizeof(buf)) == 0 || errno == ECONNRESET);
		close(fd);
		expect_nothing(f);
	}
}

static void test_uds_guest_connect(void **state)
{
	struct ufx *u = *state;
	struct fx *f = &u->f;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vsock_hdr h;
	uint8_t buf[64];
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_700", u->path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	gsend_ports(f, VSOCK_OP_REQUEST, 3000, 700, NULL, 0, 0);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_RESPONSE);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	gsend_ports(f, VSOCK_OP_RW, 3000, 700, "ping", 4, 0);
	pump(u);
	assert_int_equal(read_some(fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(fd, "pong", 4), 4);
	pump(u);
	assert_int_equal(grecv(f, &h, buf), VSOCK_OP_RW);
	assert_memory_equal(buf, "pong", 4);
	/* The program closes: SHUTDOWN(SEND) first, and the guest's RST ends it. */
	close(fd);
	pump(u);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_SHUTDOWN);
	gsend_ports(f, VSOCK_OP_RST, 3000, 700, NULL, 0, 0);
	pump(u);
	/* No socket for port 701: the guest is reset. */
	gsend_ports(f, VSOCK_OP_REQUEST, 3001, 701, NULL, 0, 0);
	expect_op(f, VSOCK_OP_RST, 701, 3001);
	close(lfd);
}

/* 4 MiB each way through a program that echoes, with credit limits in play. */
static void test_uds_bulk_echo(void **state)
{
	struct ufx *u = *state;
	struct fx *f = &u->f;
	struct vsock_hdr h;
	static uint8_t out[4 << 20], back[4 << 20], buf[GUESTBUF], echo[1 << 20];
	size_t sent = 0, got = 0, echo_len = 0;
	uint32_t hp, host_fwd = 0;
	int fd = unix_connect(u->path), rounds = 0;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (i * 2654435761u) >> 13;
	assert_int_equal(write(fd, "CONNECT 60\n", 11), 11);
	pump(u);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_REQUEST);
	hp = h.src_port;
	gsend_ports(f, VSOCK_OP_RESPONSE, 60, hp, NULL, 0, 0);
	pump(u);
	assert_true(read_some(fd, buf, sizeof(buf)) > 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (got < sizeof(out)) {
		ssize_t n;
		int op;

		assert_true(++rounds < 20000);
		/* The guest sends what the host's credit allows. */
		while (sent < sizeof(out) && sent - host_fwd + 4096 <= VSOCK_BUF_ALLOC) {
			gsend_ports(f, VSOCK_OP_RW, 60, hp, out + sent, 4096, 0);
			sent += 4096;
		}
		loop_stop(u->loop); /* one pass over whatever is ready */
		assert_int_equal(loop_run(u->loop), 0);
		/* The program echoes, never blocking (it shares this thread with the loop). */
		if (echo_len < sizeof(echo)) {
			n = read(fd, echo + echo_len, sizeof(echo) - echo_len);
			if (n > 0)
				echo_len += n;
		}
		if (echo_len) {
			n = write(fd, echo, echo_len);
			if (n > 0) {
				memmove(echo, echo + n, echo_len - n);
				echo_len -= n;
			}
		}
		loop_stop(u->loop);
		assert_int_equal(loop_run(u->loop), 0);
		/* The guest reads everything and tells the host when asked. */
		while ((op = grecv(f, &h, back + got)) != 0) {
			host_fwd = h.fwd_cnt;
			if (op == VSOCK_OP_RW) {
				got += h.len;
				f->guest_fwd += h.len;
			} else if (op == VSOCK_OP_CREDIT_REQUEST) {
				gsend_ports(f, VSOCK_OP_CREDIT_UPDATE, 60, hp, NULL, 0, 0);
			}
		}
		if (sent == sizeof(out))
			gsend_ports(f, VSOCK_OP_CREDIT_UPDATE, 60, hp, NULL, 0, 0);
	}
	assert_memory_equal(back, out, sizeof(out));
	close(fd);
	pump(u);
}

/* ---- the virtio device, driven through PCI by a tiny driver ------------------------- */

#define DQS   16
#define RXBUF 0x40000 /* 8 rx buffers of 0x2000 */
#define TXBUF 0x60000
#define F_V1  (1ULL << VIRTIO_F_VERSION_1)

struct dfx {
	struct ufx u; /* engine, loop, timer (no uds) */
	struct tmach m;
	struct virtio_dev *dev;
	struct tdrv drv;
	uint16_t rx_seen, tx_head;
};

static int dsetup(void **state)
{
	struct dfx *d = calloc(1, sizeof(*d));

	d->u.f.ep = calloc(1, sizeof(*d->u.f.ep));
	assert_int_equal(tm_init(&d->m, 1 << 20), 0);
	assert_int_equal(vsock_engine_create(&d->u.f.vs, CID), 0);
	assert_int_equal(vsock_listen(d->u.f.vs, HPORT, accept_fn, d->u.f.ep), 0);
	assert_int_equal(loop_create(&d->u.loop), 0);
	d->u.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	assert_int_equal(loop_add(d->u.loop, d->u.tfd, EPOLLIN, on_timer, &d->u), 0);
	assert_int_equal(virtio_vsock_create(d->m.pbus, d->m.mem, d->u.loop, d->u.f.vs, &d->dev),
			 0);
	tdrv_attach(&d->drv, &d->m, d->dev->pci.slot);
	assert_int_equal(tdrv_probe(&d->drv, F_V1, 3, DQS), 0);
	/* Eight rx buffers, as a driver posts them. */
	for (int i = 0; i < 8; i++) {
		tq_set_desc(&d->m, 0, i, RXBUF + 0x2000 * i, GUESTBUF, VIRTQ_DESC_F_WRITE, 0);
		tq_avail_add(&d->m, 0, DQS, i);
	}
	tdrv_kick(&d->drv, 0);
	*state = d;
	return 0;
}

static int dteardown(void **state)
{
	struct dfx *d = *state;

	virtio_dev_destroy(d->dev);
	vsock_engine_destroy(d->u.f.vs);
	loop_del(d->u.loop, d->u.tfd);
	close(d->u.tfd);
	loop_destroy(d->u.loop);
	tm_fini(&d->m);
	free(d->u.f.ep);
	free(d);
	return 0;
}

/* Puts a packet on the tx queue (header and payload in separate descriptors), maybe kicks. */
static void dpost(struct dfx *d, uint16_t op, const void *payload, uint32_t len, bool kick)
{
	struct vsock_hdr h = {.src_cid = CID,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = GPORT,
			      .dst_port = HPORT,
			      .len = len,
			      .type = VSOCK_TYPE_STREAM,
			      .op = op,
			      .buf_alloc = VSOCK_BUF_ALLOC};
	uint16_t head = d->tx_head % DQS;
	uint64_t at = TXBUF + 0x1000 * (head / 2);

	memcpy(d->m.ram + at, &h, sizeof(h));
	if (len)
		memcpy(d->m.ram + at + 64, payload, len);
	tq_set_desc(&d->m, 1, head, at, sizeof(h), len ? VIRTQ_DESC_F_NEXT : 0, head + 1);
	if (len)
		tq_set_desc(&d->m, 1, head + 1, at + 64, len, 0, 0);
	d->tx_head += 2;
	tq_avail_add(&d->m, 1, DQS, head);
	if (kick)
		tdrv_kick(&d->drv, 1);
}

static void dsend(struct dfx *d, uint16_t op, const void *payload, uint32_t len)
{
	dpost(d, op, payload, len, true);
}

/* The next used rx packet (0: none). The driver reposts the buffer. */
static int drecv(struct dfx *d, struct vsock_hdr *h, void *payload)
{
	uint32_t id, len;

	pump(&d->u);
	if (tq_used_idx(&d->m, 0) == d->rx_seen)
		return 0;
	tq_used_elem(&d->m, 0, DQS, d->rx_seen++, &id, &len);
	assert_true(id < 8);
	assert_true(len >= VSOCK_HDR_SIZE);
	memcpy(h, d->m.ram + RXBUF + 0x2000 * id, sizeof(*h));
	assert_int_equal(h->len, len - VSOCK_HDR_SIZE);
	if (payload)
		memcpy(payload, d->m.ram + RXBUF + 0x2000 * id + VSOCK_HDR_SIZE, h->len);
	tq_avail_add(&d->m, 0, DQS, id);
	tdrv_kick(&d->drv, 0);
	return h->op;
}

static void test_device_end_to_end(void **state)
{
	struct dfx *d = *state;
	struct ep *e = d->u.f.ep;
	struct vsock_hdr h;
	uint8_t buf[64];
	uint64_t cid = 0;

	/* The guest CID, as the driver reads it from device config. */
	for (int i = 0; i < 8; i++)
		cid |= mmio_rd(&d->m, d->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + i, 1) << (8 * i);
	assert_int_equal(cid, CID);
	assert_int_equal(cfg_rd(&d->m, d->dev->pci.slot, PCI_DEVICE_ID, 2), 0x1040 + 19);

	dsend(d, VSOCK_OP_REQUEST, NULL, 0);
	assert_int_equal(drecv(d, &h, NULL), VSOCK_OP_RESPONSE);
	assert_int_equal(h.dst_port, GPORT);
	assert_non_null(e->c);
	dsend(d, VSOCK_OP_RW, "hello", 5);
	pump(&d->u);
	assert_int_equal(vsock_conn_recv(e->c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(vsock_conn_send(e->c, "world", 5), 5);
	assert_int_equal(drecv(d, &h, buf), VSOCK_OP_RW);
	assert_memory_equal(buf, "world", 5);
	/* More packets than rx buffers: they wait for the driver to repost. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(vsock_conn_send(e->c, "x", 1), 1);
		pump(&d->u);
	}
	{
		int got = 0;

		while (drecv(d, &h, buf) == VSOCK_OP_RW)
			got += h.len;
		assert_int_equal(got, 20);
	}
	/* A malformed packet is dropped; the device keeps working. */
	{
		uint16_t head = d->tx_head++ % DQS;

		tq_set_desc(&d->m, 1, head, TXBUF + 0x8000, 10, 0, 0);
		tq_avail_add(&d->m, 1, DQS, head);
		tdrv_kick(&d->drv, 1);
		pump(&d->u);
		assert_false(tdrv_status(&d->drv) & VIRTIO_STATUS_NEEDS_RESET);
	}
	dsend(d, VSOCK_OP_RW, "again", 5);
	pump(&d->u);
	assert_int_equal(vsock_conn_readable(e->c), 5);
	/* The driver resets the device: every connection closes. */
	cc_wr(&d->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	pump(&d->u);
	assert_int_equal(e->closed, 1);
	assert_null(e->c);
}

/*
 * Bulk guest->host: every packet the guest queued before one kick is handled in
 * that kick (not one per kick), and consumed bytes come back as credit without
 * the guest asking, before it can run out.
 */
static void test_device_tx_batch_and_credit(void **state)
{
	struct dfx *d = *state;
	struct ep *e = d->u.f.ep;
	static uint8_t pay[4000];
	struct vsock_hdr h;
	uint32_t sent = 0, credited = 0;
	int updates = 0;

	e->auto_read = true;
	dsend(d, VSOCK_OP_REQUEST, NULL, 0);
	assert_int_equal(drecv(d, &h, NULL), VSOCK_OP_RESPONSE);
	for (int round = 0; round < 12; round++) {
		uint16_t used = tq_used_idx(&d->m, 1);

		/* The guest may only send within the credit it was last told of. */
		assert_true(sent + 8 * sizeof(pay) - credited <= VSOCK_BUF_ALLOC);
		for (int i = 0; i < 8; i++) {
			memset(pay, round * 8 + i, sizeof(pay));
			dpost(d, VSOCK_OP_RW, pay, sizeof(pay), i == 7);
		}
		sent += 8 * sizeof(pay);
		pump(&d->u);
		assert_int_equal((uint16_t)(tq_used_idx(&d->m, 1) - used), 8);
		assert_int_equal(e->got, sent);
		while (drecv(d, &h, NULL) == VSOCK_OP_CREDIT_UPDATE) {
			updates++;
			credited = h.fwd_cnt;
		}
		/* Never more than a quarter of the buffer consumed but not yet credited. */
		assert_true(sent - credited < VSOCK_BUF_ALLOC / 4);
	}
	assert_true(updates >= 1);
	assert_true(e->data[sent - 1] == 95);
}

/* Issue 9, defect 5: guest connections to host sockets cost host fds: bounded. */
static void test_uds_guest_connect_limit(void **state)
{
	struct ufx *u = *state;
	struct fx *f = &u->f;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vsock_hdr h;
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), n = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_800", u->path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 512), 0);
	for (uint32_t i = 0; i < 200; i++) {
		gsend_ports(f, VSOCK_OP_REQUEST, 5000 + i, 800, NULL, 0, 0);
		if (grecv(f, &h, NULL) == VSOCK_OP_RESPONSE)
			n++;
		else
			assert_int_equal(h.op, VSOCK_OP_RST);
	}
	assert_int_equal(n, 128);
	/* One closes: room for one more. */
	gsend_ports(f, VSOCK_OP_RST, 5000, 800, NULL, 0, 0);
	pump(u);
	gsend_ports(f, VSOCK_OP_REQUEST, 6000, 800, NULL, 0, 0);
	assert_int_equal(grecv(f, &h, NULL), VSOCK_OP_RESPONSE);
	close(lfd);
}

/* Whatever is at the socket path and is not a socket stays, and the listener fails. */
static void test_uds_path_not_a_socket(void **state)
{
	struct vsock *vs;
	struct loop *loop;
	struct vsock_uds *uds;
	char dir[] = "/tmp/vsock-test-XXXXXX", path[128], cmd[160];
	struct stat st;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/precious", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vsock_engine_create(&vs, CID), 0);
	assert_int_equal(loop_create(&loop), 0);
	assert_int_equal(vsock_uds_create(&uds, vs, loop, path), -EEXIST);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	loop_destroy(loop);
	vsock_engine_destroy(vs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_connect_and_refuse),
	    T(test_rst_for_unknown_connections),
	    T(test_guest_to_host_data_and_credit_update),
	    T(test_guest_to_host_direct),
	    T(test_guest_to_host_direct_reset),
	    T(test_guest_credit_exhaustion),
	    T(test_guest_credit_partial),
	    T(test_host_to_guest_credit),
	    T(test_host_buffer_bounded),
	    T(test_malformed),
	    T(test_host_connect),
	    T(test_shutdown_paths),
	    T(test_close_from_host),
	    T(test_reentrant_close),
	    T(test_conn_limit_and_reset),
	    T(test_orphan_bound),
	    T(test_tiny_rx_buffer),
	    cmocka_unit_test(test_bad_cid),
	    cmocka_unit_test_setup_teardown(test_uds_host_connect, usetup, uteardown),
	    cmocka_unit_test_setup_teardown(test_uds_host_connect_refused_and_bad, usetup,
					    uteardown),
	    cmocka_unit_test_setup_teardown(test_uds_guest_connect, usetup, uteardown),
	    cmocka_unit_test_setup_teardown(test_uds_guest_connect_limit, usetup, uteardown),
	    cmocka_unit_test(test_uds_path_not_a_socket),
	    cmocka_unit_test_setup_teardown(test_uds_bulk_echo, usetup, uteardown),
	    cmocka_unit_test_setup_teardown(test_device_end_to_end, dsetup, dteardown),
	    cmocka_unit_test_setup_teardown(test_device_tx_batch_and_credit, dsetup, dteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
