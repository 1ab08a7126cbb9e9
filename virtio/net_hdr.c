/*
 * virtio-net header rules (virtio 1.x, 5.1.6): what a guest may send given
 * the features it negotiated, what it may receive, and the software fallback
 * for a checksum it cannot finish. Pure functions on plain buffers.
 */
#include "net_hdr.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "virtio.h"

static bool has(uint64_t features, unsigned bit)
{
	return features & NET_FBIT(bit);
}

/* Is the 2-byte field at start + off inside a frame of len bytes? */
static bool csum_in_frame(size_t len, size_t start, size_t off)
{
	return start <= len && off <= len - start && len - start - off >= 2;
}

int net_hdr_tx_check(const struct net_hdr *in, size_t frame_len, uint64_t features,
		     struct net_hdr *out)
{
	struct net_hdr h = *in;
	uint8_t gso = h.gso_type & ~NET_GSO_ECN;
	size_t hdr_len = le16toh(h.hdr_len);

	memset(out, 0, sizeof(*out));
	if (frame_len < NET_ETH_HLEN || frame_len > NET_MAX_FRAME)
		return -EINVAL;
	if (h.flags & NET_HDR_F_NEEDS_CSUM) {
		if (!has(features, VIRTIO_NET_F_CSUM) ||
		    !csum_in_frame(frame_len, le16toh(h.csum_start), le16toh(h.csum_offset)))
			return -EINVAL;
		out->flags = NET_HDR_F_NEEDS_CSUM;
		out->csum_start = h.csum_start;
		out->csum_offset = h.csum_offset;
	}
	switch (gso) {
	case NET_GSO_NONE:
		if (h.gso_type & NET_GSO_ECN)
			return -EINVAL;
		/* hdr_len is only a hint here (how much to copy linearly); keep it if sane. */
		if (hdr_len <= frame_len)
			out->hdr_len = h.hdr_len;
		return 0;
	case NET_GSO_TCPV4:
		if (!has(features, VIRTIO_NET_F_HOST_TSO4))
			return -EINVAL;
		break;
	case NET_GSO_TCPV6:
		if (!has(features, VIRTIO_NET_F_HOST_TSO6))
			return -EINVAL;
		break;
	default: /* UDP (UFO) and unknown types are never offered */
		return -EINVAL;
	}
	if ((h.gso_type & NET_GSO_ECN) && !has(features, VIRTIO_NET_F_HOST_ECN))
		return -EINVAL;
	/* Segmentation needs the checksum left to the device and a segment size. */
	if (!(h.flags & NET_HDR_F_NEEDS_CSUM) || !h.gso_size || hdr_len > frame_len)
		return -EINVAL;
	out->gso_type = h.gso_type;
	out->gso_size = h.gso_size;
	out->hdr_len = h.hdr_len;
	return 0;
}

int net_hdr_rx_fix(struct net_hdr *h, uint8_t *frame, size_t len, uint64_t features)
{
	uint8_t gso = h->gso_type & ~NET_GSO_ECN;
	bool gcsum = has(features, VIRTIO_NET_F_GUEST_CSUM);
	size_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);

	h->num_buffers = htole16(1);
	h->flags &= NET_HDR_F_NEEDS_CSUM | NET_HDR_F_DATA_VALID;
	if (gso != NET_GSO_NONE) {
		bool ok = (gso == NET_GSO_TCPV4 && has(features, VIRTIO_NET_F_GUEST_TSO4)) ||
			  (gso == NET_GSO_TCPV6 && has(features, VIRTIO_NET_F_GUEST_TSO6));

		if ((h->gso_type & NET_GSO_ECN) && !has(features, VIRTIO_NET_F_GUEST_ECN))
			ok = false;
		/* A GSO frame must leave the checksum to the receiver, which must accept that. */
		if (!ok || !gcsum || !(h->flags & NET_HDR_F_NEEDS_CSUM))
			return -EOPNOTSUPP;
	} else {
		h->gso_type = NET_GSO_NONE;
		h->gso_size = 0;
	}
	if (h->flags & NET_HDR_F_NEEDS_CSUM) {
		if (!csum_in_frame(len, start, off))
			return -EINVAL;
		if (!gcsum) {
			net_csum_fill(frame, len, start, off);
			h->flags &= ~NET_HDR_F_NEEDS_CSUM;
			h->csum_start = h->csum_offset = 0;
		}
	}
	if (!gcsum)
		h->flags &= ~NET_HDR_F_DATA_VALID;
	return 0;
}

int net_csum_fill(uint8_t *frame, size_t len, size_t start, size_t off)
{
	uint32_t sum = 0;
	uint16_t c;
	size_t i;

	if (!csum_in_frame(len, start, off) || len > NET_MAX_FRAME)
		return -EINVAL;
	/* The field holds the pseudo-header sum already (CHECKSUM_PARTIAL); it is summed too. */
	for (i = start; i + 1 < len; i += 2)
		sum += (uint32_t)frame[i] << 8 | frame[i + 1];
	if (i < len)
		sum += (uint32_t)frame[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	c = ~sum;
	/* 0 and 0xffff are the same in ones' complement; UDP reserves 0 for "no checksum". */
	if (!c)
		c = 0xffff;
	frame[start + off] = c >> 8;
	frame[start + off + 1] = c & 0xff;
	return 0;
}

size_t net_rx_fill_chain(struct net_rx_fill *f, const struct iovec *iov, int niov)
{
	size_t done = 0;

	if (f->off < f->len)
		done = iov_from_buf(iov, niov, 0, f->pkt + f->off, f->len - f->off);
	f->off += done;
	f->nbufs++;
	return done;
}

void net_rx_set_num_buffers(const struct iovec *first, int niov, uint16_t nbufs)
{
	uint16_t v = htole16(nbufs);

	iov_from_buf(first, niov, offsetof(struct net_hdr, num_buffers), &v, sizeof(v));
}
