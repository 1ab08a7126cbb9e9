/*
 * virtio-blk request path: a running device whose queue memory (rings,
 * descriptors, headers, payloads) comes from the fuzzer. The disk is a 1 MiB
 * memfd. Whatever the input, the device must neither crash nor touch memory
 * outside guest RAM (ASan), and a kick must return.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"

#define RAM_SIZE (256 * 1024)
#define QS	 16

static struct tmach m;
static struct tdrv drv;
static struct virtio_dev *dev;

static void init_once(void)
{
	static char path[64];
	struct blk_config cfg = {.path = path, .serial = "fuzz", .num_queues = 2};
	int fd = memfd_create("fuzz-disk", 0);

	if (fd < 0 || ftruncate(fd, 1 << 20) || tm_init(&m, RAM_SIZE))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (virtio_blk_create(m.pbus, m.mem, NULL, &cfg, &dev))
		abort();
	tdrv_attach(&drv, &m, dev->pci.slot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t features =
	    (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 13) | (1ULL << 14) | (1ULL << 9);

	if (!dev)
		init_once();
	if (size < 2)
		return 0;
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	memset(m.ram, 0, RAM_SIZE);
	if (tdrv_probe(&drv, features, 2, QS))
		abort();
	/*
	 * Input order: queue 0's avail ring and descriptors, then buffers from
	 * guest address 0, so short inputs already reach the request parser.
	 */
	data += 2;
	size -= 2;
	tm_fill(&m, tq_avail(0), 6 + 2 * QS, &data, &size);
	tm_fill(&m, tq_desc(0), 16 * QS, &data, &size);
	tm_fill(&m, 0, tq_desc(0), &data, &size);
	tdrv_kick(&drv, 0);
	return 0;
}
