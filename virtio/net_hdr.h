/*
 * The virtio-net header and the pure functions around it (net_hdr.c): the
 * checks on a header the guest sent, the fixes on a header for the guest, the
 * software checksum, and mergeable rx filling. No device state: unit tests
 * and fuzzers call them on plain buffers.
 */
#ifndef VIRTIO_NET_HDR_H
#define VIRTIO_NET_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Feature bits (virtio 1.x, 5.1.3). */
#define VIRTIO_NET_F_CSUM	0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU	3
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16

#define NET_FBIT(b) (1ULL << (b))
/* Every offload bit a backend may carry. */
#define NET_OFFLOAD_ALL                                                                            \
	(NET_FBIT(VIRTIO_NET_F_CSUM) | NET_FBIT(VIRTIO_NET_F_GUEST_CSUM) |                         \
	 NET_FBIT(VIRTIO_NET_F_GUEST_TSO4) | NET_FBIT(VIRTIO_NET_F_GUEST_TSO6) |                   \
	 NET_FBIT(VIRTIO_NET_F_GUEST_ECN) | NET_FBIT(VIRTIO_NET_F_HOST_TSO4) |                     \
	 NET_FBIT(VIRTIO_NET_F_HOST_TSO6) | NET_FBIT(VIRTIO_NET_F_HOST_ECN))

#define VIRTIO_NET_S_LINK_UP 1

#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_F_DATA_VALID 2
#define NET_GSO_NONE	     0
#define NET_GSO_TCPV4	     1
#define NET_GSO_UDP	     3
#define NET_GSO_TCPV6	     4
#define NET_GSO_ECN	     0x80

/* struct virtio_net_hdr_v1: always 12 bytes with VERSION_1, little-endian. */
struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));
_Static_assert(sizeof(struct net_hdr) == 12, "virtio_net_hdr_v1 is 12 bytes");

#define NET_HDR_LEN  12u
#define NET_ETH_HLEN 14u
/* Largest frame either way: a 64 KiB GSO packet plus Ethernet and VLAN headers, with slack. */
#define NET_MAX_FRAME (65536u + 256u)
#define NET_MTU_MIN   68u
#define NET_MTU_MAX   65520u

/*
 * A header the guest sent with a frame of frame_len bytes, against the
 * features it negotiated. Writes the cleaned header to out (unknown flags
 * off, num_buffers 0) and returns 0, or -EINVAL for a header the guest had no
 * right to send (an offload it did not negotiate, a checksum outside the
 * frame, GSO without a size): the frame is dropped.
 */
int net_hdr_tx_check(const struct net_hdr *in, size_t frame_len, uint64_t features,
		     struct net_hdr *out);

/*
 * A header from the backend for a frame going to the guest: what the guest
 * did not negotiate is undone (a pending checksum is computed in software,
 * DATA_VALID cleared) or refused (-EOPNOTSUPP for GSO it cannot take,
 * -EINVAL for a checksum outside the frame). num_buffers is set to 1.
 */
int net_hdr_rx_fix(struct net_hdr *h, uint8_t *frame, size_t len, uint64_t features);

/*
 * Finishes a partial checksum (CHECKSUM_PARTIAL): the ones' complement sum of
 * frame[start, len) stored at start + off. -EINVAL when that lies outside.
 */
int net_csum_fill(uint8_t *frame, size_t len, size_t start, size_t off);

/* ---- Mergeable rx buffers ----------------------------------------------------------------- */

/* A packet (header then frame, contiguous) being spread over the guest's rx chains. */
struct net_rx_fill {
	const uint8_t *pkt;
	size_t len;
	size_t off; /* bytes already placed */
	uint16_t nbufs;
};

static inline void net_rx_fill_init(struct net_rx_fill *f, const uint8_t *pkt, size_t len)
{
	f->pkt = pkt;
	f->len = len;
	f->off = 0;
	f->nbufs = 0;
}

static inline bool net_rx_fill_done(const struct net_rx_fill *f)
{
	return f->off >= f->len;
}

/* Copies the next bytes into one chain's writable buffers; returns how many (its used length). */
size_t net_rx_fill_chain(struct net_rx_fill *f, const struct iovec *iov, int niov);
/* Writes num_buffers into the header at the start of the first chain's buffers. */
void net_rx_set_num_buffers(const struct iovec *first, int niov, uint16_t nbufs);

#endif
