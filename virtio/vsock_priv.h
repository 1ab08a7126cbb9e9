/*
 * The vsock engine's inside, shared by its files (vsock.h is its door):
 *   vsock_ring.c    byte rings that hold a connection's data each way
 *   vsock_conn.c    connections: table, scheduling, lifetime, the endpoint API
 *   vsock_pkt.c     the packet codec and state machine, both directions
 *   vsock_engine.c  the engine: creation, listeners, connects, reset, stats
 * Loop thread only, like the engine.
 */
#ifndef VIRTIO_VSOCK_PRIV_H
#define VIRTIO_VSOCK_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/vsock.h"

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
	uint8_t *data; /* cap bytes, grown as needed and freed when drained (vsock_ring.c) */
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
	uint32_t rx_cnt;       /* payload bytes received from the guest */
	uint32_t fwd_cnt;      /* of those, consumed by the endpoint */
	uint32_t fwd_cnt_sent; /* fwd_cnt as last told to the guest */
	uint32_t peer_shut;    /* VSOCK_SHUTDOWN_* received */
	bool eof_told;

	/* host -> guest */
	struct ring out;
	uint32_t tx_cnt; /* payload bytes sent to the guest */
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

/* ---- vsock_ring.c ---- */

size_t vsock_ring_room(const struct ring *r, uint32_t cap);
/* Copies from an iovec list (skipping skip bytes) into the ring. Returns bytes copied. */
size_t vsock_ring_put_iov(struct ring *r, uint32_t cap, const struct iovec *iov, int niov,
			  size_t skip, size_t len);
int vsock_ring_peek(const struct ring *r, struct iovec iov[2]);
void vsock_ring_consume(struct ring *r, size_t n);
void vsock_ring_free(struct ring *r);

/* ---- vsock_conn.c ---- */

struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t host_port, uint32_t guest_port);
uint32_t vsock_credit_to_guest(const struct vsock_conn *c);
void vsock_conn_schedule(struct vsock_conn *c);
/* Queues a control packet that belongs to no live connection. */
void vsock_orphan_push(struct vsock *vs, uint32_t host_port, uint32_t guest_port, uint16_t op,
		       uint32_t flags);
/* A connection must stay allocated while one of its callbacks runs. */
void vsock_conn_get(struct vsock_conn *c);
/* Returns true when c was freed (the caller must not touch it). */
bool vsock_conn_put(struct vsock_conn *c);
/*
 * Removes c: optional RST to the guest, optional closed callback. Safe inside
 * any of c's callbacks: the memory goes when the last one returns.
 */
void vsock_conn_kill(struct vsock_conn *c, bool send_rst, bool notify);
struct vsock_conn *vsock_conn_new(struct vsock *vs, uint32_t host_port, uint32_t guest_port);
/* After the endpoint consumed guest data, or after a SHUTDOWN arrived. */
void vsock_conn_after_consume(struct vsock_conn *c);

/* ---- vsock_pkt.c ---- */

struct listener *vsock_listener_find(struct vsock *vs, uint32_t port);

#endif
