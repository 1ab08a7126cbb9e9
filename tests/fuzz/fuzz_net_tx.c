/*
 * virtio-net transmit path: a running device whose tx queue memory (avail
 * ring, descriptors, headers, frames) comes from the fuzzer, with the
 * negotiated offloads and the link state picked by the first byte. The
 * backend is a SOCK_SEQPACKET socketpair drained after each input. Whatever
 * the input, the device must neither crash nor touch memory outside guest
 * RAM (ASan), and a kick must return.
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
#define TXQ	 1

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t sink[NET_HDR_LEN + NET_MAX_FRAME];
	uint64_t features = (1ULL << VIRTIO_F_VERSION_1) | NET_FBIT(VIRTIO_NET_F_MAC) |
			    NET_FBIT(VIRTIO_NET_F_STATUS);

	if (!dev)
		init_once();
	if (size < 2)
		return 0;
	/* Offloads and ring options from the first byte, link state from the second. */
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (data[0] & 4)
		features |= NET_FBIT(VIRTIO_NET_F_CSUM);
	if (data[0] & 8)
		features |= NET_FBIT(VIRTIO_NET_F_HOST_TSO4);
	if (data[0] & 16)
		features |= NET_FBIT(VIRTIO_NET_F_HOST_TSO6);
	if (data[0] & 32)
		features |= NET_FBIT(VIRTIO_NET_F_HOST_ECN);
	if (data[0] & 64)
		features |= NET_FBIT(VIRTIO_NET_F_MRG_RXBUF);
	virtio_net_set_link(dev, !(data[1] & 1));
	memset(m.ram, 0, RAM_SIZE);
	if (tdrv_probe(&drv, features, 2, QS))
		abort();
	data += 2;
	size -= 2;
	tm_fill(&m, tq_avail(TXQ), 6 + 2 * QS, &data, &size);
	tm_fill(&m, tq_desc(TXQ), 16 * QS, &data, &size);
	tm_fill(&m, 0, tq_desc(0), &data, &size);
	tdrv_kick(&drv, TXQ);
	tdrv_kick(&drv, TXQ); /* the budget's re-kick */
	while (recv(host, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	virtio_net_backend_ready(dev, EPOLLOUT);
	return 0;
}
