/*
 * virtio-pmem request path: a running device (read-only or writable, by the
 * first input byte) whose queue memory (rings, descriptors, requests, answer
 * buffers) comes from the fuzzer. The file is a 16 KiB memfd mapped into a
 * slot without KVM. Whatever the input, the device must neither crash nor
 * touch memory outside guest RAM (ASan), and a kick must return.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"
#include "virtio/pmem.h"
#include "vmm/mem_slots.h"

#define RAM_SIZE (256 * 1024)
#define QS	 16

static struct tmach m;
static struct mem_slots *slots;
static struct tdrv drv[2];
static struct virtio_dev *dev[2];

static void init_once(void)
{
	static char path[64];
	char err[256];
	int fd = memfd_create("fuzz-pmem", 0);

	if (fd < 0 || ftruncate(fd, 16384) || tm_init(&m, RAM_SIZE) ||
	    mem_slots_create(&slots, -1, 68ULL << 30, 72ULL << 30, true))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	for (int i = 0; i < 2; i++) {
		struct pmem_config cfg = {.path = path, .read_only = i == 1};

		if (virtio_pmem_create(m.pbus, m.mem, NULL, slots, &cfg, &dev[i], err, sizeof(err)))
			abort();
		tdrv_attach(&drv[i], &m, dev[i]->pci.slot);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t features = 1ULL << VIRTIO_F_VERSION_1;
	struct tdrv *d;

	if (!dev[0])
		init_once();
	if (size < 2)
		return 0;
	d = &drv[data[0] >> 7];
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	memset(m.ram, 0, RAM_SIZE);
	if (tdrv_probe(d, features, 1, QS))
		abort();
	/* Avail ring and descriptors first, then buffers from guest address 0. */
	data += 2;
	size -= 2;
	tm_fill(&m, tq_avail(0), 6 + 2 * QS, &data, &size);
	tm_fill(&m, tq_desc(0), 16 * QS, &data, &size);
	tm_fill(&m, 0, tq_desc(0), &data, &size);
	tdrv_kick(d, 0);
	tdrv_kick(d, 0); /* the budget's remainder, if any */
	return 0;
}
