/*
 * virtio-net (virtio 1.x, 5.1) and its host backends.
 *
 * Three layers, as for blk: the transport (pci.c), the device (net.c: rings,
 * header checks, mergeable rx filling, counters, link state) and one backend
 * per file that moves Ethernet frames to and from the host:
 *  - net_tap.c: a tap device (IFF_VNET_HDR: frames carry the virtio-net
 *    header, so checksum and TSO offloads pass both ways);
 *  - net_passt.c: Debian's passt (user-mode networking, no root) as a child
 *    process on a stream socket with QEMU's framing (a 32-bit big-endian
 *    length before each frame; no offloads).
 *
 * What the VMM calls (all return 0 or -errno):
 *
 *	struct net_backend *be;
 *	net_tap_open("tap0", NULL, &be);       or net_passt_start(&pcfg, &be);
 *	struct net_config cfg = { .mac = {...}, .mtu = 1500, .link_up = true };
 *	virtio_net_create(pbus, mem, loop, &cfg, be, &dev);   (owns be from here on)
 *	virtio_net_set_link(dev, false);   virtio_net_get_stats(dev, &st);
 *	virtio_dev_destroy(dev);           (closes the backend)
 *
 * Threads: all ring and backend work runs on the loop given at create (in the
 * shim an I/O thread's, vmm/io_thread.h; the backend's fd is read and written
 * there only). Register accesses (activate, reset) come from vCPU threads and
 * only flip state under the device lock; link and stats are set and read from
 * any thread under it. Nothing blocks: the backend fd is non-blocking, rx stops
 * reading when the guest has no buffers (the frame waits in the device, then
 * in the backend's own queue), tx stops popping when the backend is full.
 */
#ifndef VIRTIO_NET_H
#define VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "virtio/net_hdr.h"
#include "virtio/virtio.h"

struct loop;
struct net_backend;

struct net_config {
	uint8_t mac[6];
	uint16_t mtu; /* offered as VIRTIO_NET_F_MTU; 0: not offered */
	bool link_up;
};

/* Per NIC, since creation; every frame not delivered is counted in a drop counter. */
struct net_stats {
	uint64_t rx_packets, rx_bytes, rx_drops; /* host -> guest */
	uint64_t tx_packets, tx_bytes, tx_drops; /* guest -> host */
	uint64_t tx_malformed;			 /* part of tx_drops: chains that broke the rules */
	uint64_t rx_no_buffer;			 /* times rx waited for the guest's buffers */
};

/* Plugs a virtio-net function. It owns be from this call on, also when it fails. */
int virtio_net_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      const struct net_config *cfg, struct net_backend *be, struct virtio_dev **out)
    __attribute__((warn_unused_result));
/* Link up/down: STATUS in config space and a config interrupt. Down drops traffic both ways. */
void virtio_net_set_link(struct virtio_dev *dev, bool up);
void virtio_net_get_stats(struct virtio_dev *dev, struct net_stats *st);
/*
 * The backend fd is ready (events: EPOLLIN/EPOLLOUT). The loop calls it; unit
 * tests without a loop call it directly.
 */
void virtio_net_backend_ready(struct virtio_dev *dev, uint32_t events);

/* ---- Backends ----------------------------------------------------------------------------- */

struct net_backend_ops {
	/*
	 * One frame to the host: hdr (checked and cleaned by the device) and the
	 * frame. 0: taken; -EAGAIN: full, call again after EPOLLOUT (or flush);
	 * other -errno: dropped.
	 */
	int (*send)(struct net_backend *be, const struct net_hdr *hdr, const struct iovec *iov,
		    int niov, size_t len);
	/*
	 * The next frame from the host into buf (at most cap bytes) and its header
	 * (zeroed when the backend has none). Returns the frame length, -EAGAIN when
	 * none is waiting, other -errno when the backend broke.
	 */
	ssize_t (*recv)(struct net_backend *be, struct net_hdr *hdr, void *buf, size_t cap);
	/* Optional: whether recv has a frame buffered without the fd being readable. */
	bool (*rx_buffered)(struct net_backend *be);
	/* Optional: writes out a frame held back by -EAGAIN; 0 once nothing is held. */
	int (*flush)(struct net_backend *be);
	/* Optional: the offloads the guest accepted (VIRTIO_NET_F_GUEST_* bits). */
	int (*set_offloads)(struct net_backend *be, uint64_t guest_features);
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	int fd;		   /* polled by the device; owned by the backend */
	uint64_t offloads; /* VIRTIO_NET_F_* offload bits the backend can carry */
	char name[32];
};

/* Closes a backend that no device owns yet. NULL ok. */
void net_backend_destroy(struct net_backend *be);

/*
 * Opens tap ifname (must exist: created by the runtime or the test), in the
 * network namespace at netns_path when given (the shim enters it, opens the
 * tap and comes back). -ENOENT no such tap, -EBUSY taken, -EINVAL netns_path
 * is not a network namespace.
 */
int net_tap_open(const char *ifname, const char *netns_path, struct net_backend **out)
    __attribute__((warn_unused_result));
/*
 * A backend on an fd with tap semantics (one read or write = one frame behind
 * a 12-byte virtio-net header): a tap fd handed over by a parent, or a
 * SOCK_SEQPACKET socket in tests. Takes fd.
 */
int net_fd_backend(int fd, struct net_backend **out) __attribute__((warn_unused_result));

struct net_passt_config {
	const char *binary; /* NULL: "passt" from PATH */
	const char *addr;   /* guest IPv4 address passt assumes (NULL: 10.0.2.15) */
	int prefix;	    /* 0: 24 */
	const char *gw;	    /* gateway, which reaches the host's loopback (NULL: 10.0.2.2) */
	const char *dns;    /* DNS address passt forwards to the host's resolver (NULL: 10.0.2.3) */
	uint16_t mtu;	    /* 0: 1500 */
};
/* Starts passt as a child on a socketpair; -ENOENT when passt is not installed. */
int net_passt_start(const struct net_passt_config *cfg, struct net_backend **out)
    __attribute__((warn_unused_result));
/* A backend on a connected stream socket with QEMU's framing (tests, or passt by hand). */
int net_stream_backend(int fd, struct net_backend **out) __attribute__((warn_unused_result));

#endif
