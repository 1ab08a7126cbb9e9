/*
 * virtio-net receive path, three ways from one input:
 *  - the device: rx queue memory (avail ring, descriptors) from the fuzzer,
 *    then frames from the "tap" (header + frame, sizes from the input) spread
 *    over the guest's chains, mergeable or not;
 *  - the header fix-up and software checksum on a frame from the input;
 *  - the passt stream parser fed the input as its byte stream.
 * No crash, no access outside guest RAM or the buffers (ASan), no hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"
#include "virtio/net.h"

#define RAM_SIZE (256 * 1024)
#define QS	 16
#define RXQ	 0

static struct tmach m;
static struct tdrv drv;
static struct virtio_dev *dev;
static int host = -1;

static void init_once(void)
{
	struct net_config cfg = {.mac = {0x02, 0, 0, 0, 0, 1}, .mtu = 1500, .link_up = true};
	struct net_backend *be;
	int sv[2];

	if (tm_init(&m, RAM_SIZE) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) ||
	    net_fd_backend(sv[0], &be) || virtio_net_create(m.pbus, m.mem, NULL, &cfg, be, &dev))
		abort();
	host = sv[1];
	tdrv_attach(&drv, &m, dev->pci.slot);
}

static void fuzz_hdr_fix(const uint8_t *data, size_t size, uint64_t features)
{
	static uint8_t frame[NET_MAX_FRAME];
	struct net_hdr h;
	size_t len;

	if (size < NET_HDR_LEN)
		return;
	memcpy(&h, data, NET_HDR_LEN);
	len = size - NET_HDR_LEN < sizeof(frame) ? size - NET_HDR_LEN : sizeof(frame);
	memcpy(frame, data + NET_HDR_LEN, len);
	net_hdr_rx_fix(&h, frame, len, features);
	net_hdr_tx_check(&h, len, features, &h);
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
	static uint8_t frame[NET_MAX_FRAME];
	struct net_backend *be;
	struct net_hdr h;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	if (net_stream_backend(sv[0], &be))
		abort();
	if (write(sv[1], data, size) < 0) {
		/* larger than the socket buffer: the parser sees a prefix */
	}
	close(sv[1]);
	for (int i = 0; i < 10000; i++)
		if (be->ops->recv(be, &h, frame, sizeof(frame)) < 0)
			break;
	net_backend_destroy(be);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[NET_HDR_LEN + 70000];
	uint64_t features = (1ULL << VIRTIO_F_VERSION_1) | NET_FBIT(VIRTIO_NET_F_MAC) |
			    NET_FBIT(VIRTIO_NET_F_STATUS);
	const uint8_t *all = data;
	size_t all_size = size;
	int nframes;

	if (!dev)
		init_once();
	if (size < 3)
		return 0;
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (data[0] & 4)
		features |= NET_FBIT(VIRTIO_NET_F_MRG_RXBUF);
	if (data[0] & 8)
		features |= NET_FBIT(VIRTIO_NET_F_GUEST_CSUM);
	if (data[0] & 16)
		features |= NET_FBIT(VIRTIO_NET_F_GUEST_TSO4);
	if (data[0] & 32)
		features |= NET_FBIT(VIRTIO_NET_F_GUEST_TSO6);
	if (data[0] & 64)
		features |= NET_FBIT(VIRTIO_NET_F_GUEST_ECN);
	virtio_net_set_link(dev, !(data[1] & 0x80));
	nframes = data[1] & 7;
	memset(m.ram, 0, RAM_SIZE);
	if (tdrv_probe(&drv, features, 2, QS))
		abort();
	data += 3;
	size -= 3;
	tm_fill(&m, tq_avail(RXQ), 6 + 2 * QS, &data, &size);
	tm_fill(&m, tq_desc(RXQ), 16 * QS, &data, &size);
	tdrv_kick(&drv, RXQ);
	/* Frames: a 16-bit length then header + frame bytes (repeated from the input). */
	for (int i = 0; i < nframes && size >= 2; i++) {
		size_t len = (size_t)(data[0] | data[1] << 8) * 2 + 1;
		size_t have;

		data += 2;
		size -= 2;
		if (len > sizeof(msg))
			len = sizeof(msg);
		have = size < len ? size : len;
		memset(msg, 0, len);
		memcpy(msg, data, have);
		data += have;
		size -= have;
		if (send(host, msg, len, MSG_DONTWAIT) < 0)
			break;
	}
	virtio_net_backend_ready(dev, EPOLLIN);
	tdrv_kick(&drv, RXQ);
	fuzz_hdr_fix(all, all_size, features);
	fuzz_stream(all, all_size);
	return 0;
}
