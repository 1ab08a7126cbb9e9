/*
 * virtio-vsock, in process (no vhost): the guest's AF_VSOCK stream sockets end
 * in host endpoints of this process.
 *
 * Two layers:
 *  - the engine (vsock_conn.c): packets, connections, credit-based flow
 *    control both ways, bounded buffering. It knows no virtqueue: the device
 *    hands it each packet the guest sent (vsock_tx) and asks it for the next
 *    packet for the guest (vsock_rx) whenever the guest left a buffer.
 *  - the device (vsock.c): virtqueues rx/tx/event and the guest CID config.
 *
 * "tx" and "rx" are always the guest's, as the virtqueues are named: tx is
 * guest->host (vsock_tx), rx is host->guest (vsock_rx). Where a count is
 * kept from the host's side it is named by direction instead (a
 * connection's rx_cnt/tx_cnt sit under "guest -> host" and "host -> guest"
 * in vsock_priv.h; the stats say from_guest/to_guest).
 *
 * Host endpoints are in-process callbacks (the GCS bridge, stdio relays) or,
 * through vsock_uds.c, external programs on a Unix socket with the
 * Firecracker convention (host: "CONNECT <port>\n" -> "OK <port>\n"; a guest
 * connecting to host port P reaches "<path>_P").
 *
 * Threads: the engine is single-threaded. Every call, and every callback it
 * makes, happens on the event loop thread. Callbacks may call back into the
 * engine, including closing the connection they were called for.
 */
#ifndef VIRTIO_VSOCK_H
#define VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HOST_CID 2u
#define VSOCK_HDR_SIZE 44u
/* Our receive buffer per connection: what the guest may send before we consume it. */
#define VSOCK_BUF_ALLOC (256u * 1024)
/* Host data waiting for the guest, per connection (vsock_conn_send accepts up to this). */
#define VSOCK_OUT_MAX (256u * 1024)
/* Largest payload in one packet either way (Linux uses 64 KiB). */
#define VSOCK_MAX_PKT_PAYLOAD (64u * 1024)
#define VSOCK_MAX_CONNS	      1024
/* Control packets for connections we no longer (or never) had, e.g. RSTs. */
#define VSOCK_ORPHAN_MAX 256

/* Packet header (virtio spec 5.10.6), little-endian on the wire. */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vsock_hdr) == VSOCK_HDR_SIZE, "virtio-vsock header is 44 bytes");

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
};

#define VSOCK_SHUTDOWN_RCV  1u /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2u /* the sender will send no more */
#define VSOCK_SHUTDOWN_BOTH 3u

struct vsock;
struct vsock_conn;

/* What a host endpoint is told. All optional. */
struct vsock_conn_ops {
	/* A host-initiated connect finished: 0, or -ECONNREFUSED / -ECONNRESET. */
	void (*connected)(void *opaque, struct vsock_conn *c, int err);
	/* Guest data is waiting: take it with vsock_conn_recv / peek+consume. */
	void (*readable)(void *opaque, struct vsock_conn *c);
	/*
	 * Optional: guest data straight from the packet (guest memory), offered only while
	 * nothing is buffered, so order holds. Returns the bytes taken without blocking; the
	 * rest is buffered and announced with readable. Saves a copy per packet.
	 */
	size_t (*write_direct)(void *opaque, struct vsock_conn *c, const struct iovec *iov,
			       int niov);
	/* Room freed in the host->guest buffer after a short vsock_conn_send. */
	void (*writable)(void *opaque, struct vsock_conn *c);
	/* The guest shut down its sending side: EOF once the buffered data is read. */
	void (*eof)(void *opaque, struct vsock_conn *c);
	/*
	 * The connection is gone (guest reset or closed it, or the device reset):
	 * the last callback; c is invalid once it returns.
	 */
	void (*closed)(void *opaque, struct vsock_conn *c);
};

/*
 * A guest connected to a host port with a listener: accept by filling
 * *ops and *opaque and returning 0, refuse (the guest gets a reset) with -errno.
 */
typedef int (*vsock_accept_fn)(void *opaque, struct vsock_conn *c, uint32_t host_port,
			       const struct vsock_conn_ops **ops, void **conn_opaque);
/*
 * Called when the guest connects to a port without a listener (the Unix
 * socket backend uses it for "<path>_P"). Same contract as vsock_accept_fn.
 */
typedef vsock_accept_fn vsock_fallback_fn;

/* ---- engine (vsock_conn.c) -------------------------------------------------- */

int vsock_engine_create(struct vsock **out, uint64_t guest_cid) __attribute__((warn_unused_result));
/* Closes every connection (their closed callbacks run). NULL ok. */
void vsock_engine_destroy(struct vsock *vs);
uint64_t vsock_guest_cid(const struct vsock *vs);

/* Called whenever the engine has a packet for the guest (the device then fills rx). */
void vsock_set_rx_kick(struct vsock *vs, void (*kick)(void *opaque), void *opaque);

/*
 * A packet from the guest: header and payload as the tx chain's readable
 * buffers (total len bytes). Returns 0, or -EINVAL for a malformed packet
 * (dropped, answered with a reset where a connection can be named).
 */
int vsock_tx(struct vsock *vs, const struct iovec *iov, int niov, size_t len);
/* Whether vsock_rx has something to write. */
bool vsock_rx_pending(const struct vsock *vs);
/*
 * Writes the next packet for the guest into the rx buffer iov (header, then
 * payload) and returns its length, 0 when nothing is pending, -ENOSPC when
 * the buffer cannot even hold a header.
 */
long vsock_rx(struct vsock *vs, const struct iovec *iov, int niov, size_t cap);
/* The device was reset: every connection is closed without packets. */
void vsock_reset(struct vsock *vs);

int vsock_listen(struct vsock *vs, uint32_t port, vsock_accept_fn fn, void *opaque)
    __attribute__((warn_unused_result));
void vsock_unlisten(struct vsock *vs, uint32_t port);
void vsock_set_fallback(struct vsock *vs, vsock_fallback_fn fn, void *opaque);

/*
 * Connects to guest port; ops->connected reports the outcome. host_port 0
 * picks a free one from the ephemeral range.
 */
int vsock_connect(struct vsock *vs, uint32_t guest_port, uint32_t host_port,
		  const struct vsock_conn_ops *ops, void *opaque, struct vsock_conn **out)
    __attribute__((warn_unused_result));

/* Queues up to len bytes for the guest; returns how many were taken (0: full). */
size_t vsock_conn_send(struct vsock_conn *c, const void *buf, size_t len);
/* Bytes the guest sent that the endpoint has not consumed yet. */
size_t vsock_conn_readable(const struct vsock_conn *c);
/* Copies up to len buffered bytes out and consumes them. */
size_t vsock_conn_recv(struct vsock_conn *c, void *buf, size_t len);
/* Contiguous buffered bytes without consuming (up to two spans when wrapped). */
int vsock_conn_peek(const struct vsock_conn *c, struct iovec iov[2]);
void vsock_conn_consume(struct vsock_conn *c, size_t n);
/* No more host data (EOF for the guest once the buffer has drained). */
void vsock_conn_shutdown_send(struct vsock_conn *c);
/*
 * The endpoint is done: buffered host data still goes out, then a full
 * shutdown; no callback runs after this returns. c must not be used again.
 */
void vsock_conn_close(struct vsock_conn *c);
/* Drops the connection at once with a reset; no callback runs. */
void vsock_conn_reset(struct vsock_conn *c);
uint32_t vsock_conn_host_port(const struct vsock_conn *c);
uint32_t vsock_conn_guest_port(const struct vsock_conn *c);

struct vsock_stats {
	unsigned conns;
	/* Named by direction: the device's tx queue carries guest->host. */
	uint64_t from_guest_pkts, to_guest_pkts, from_guest_bytes, to_guest_bytes;
	uint64_t malformed, resets_sent, credit_violations, orphans_dropped;
};
void vsock_get_stats(const struct vsock *vs, struct vsock_stats *st);

/* ---- device (vsock.c) ------------------------------------------------------- */

struct pci_bus;
struct guest_mem;
struct loop;
struct virtio_dev;

#define VIRTIO_ID_VSOCK 19

/*
 * Plugs a virtio-vsock function for vs's guest CID. vs stays the caller's: destroy
 * the device first, then the Unix socket backend, then the engine.
 */
int virtio_vsock_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
			struct vsock *vs, struct virtio_dev **out)
    __attribute__((warn_unused_result));

/* ---- Unix socket backend (vsock_uds.c) ------------------------------------- */

struct vsock_uds;

/*
 * Listens on path for host programs ("CONNECT <port>\n") and routes guest
 * connections to ports without an in-process listener to "<path>_<port>"
 * (at most 128 of those open at once: each holds a host fd; more are reset).
 * A socket left at path by an earlier run is replaced; anything else there
 * fails with -EEXIST and is left alone.
 */
int vsock_uds_create(struct vsock_uds **out, struct vsock *vs, struct loop *loop, const char *path)
    __attribute__((warn_unused_result));
void vsock_uds_destroy(struct vsock_uds *u);

#endif
