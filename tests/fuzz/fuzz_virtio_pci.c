/*
 * The PCI bridge and the virtio-pci transport under a driver the fuzzer
 * writes: any sequence of config space accesses (BAR moves, command, MSI-X
 * control, the PCI_CFG window), BAR 0 register accesses (status, features,
 * queue setup, kicks) and MSI-X table accesses, against a virtio-rng device
 * whose guest memory is the tail of the input. Nothing may crash, leak or
 * hang; the device is reset and reused between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/virtio_test_util.h"

#define RAM_SIZE (128 * 1024)
#define OP_SIZE	 8

static struct tmach m;
static struct virtio_dev *rng;

static uint64_t bar_addr(int bar)
{
	return cfg_rd(&m, rng->pci.slot, PCI_BAR0 + 4 * bar, 4) & ~0xfULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t lens[4] = {1, 2, 4, 8};
	size_t nops;

	if (!rng) {
		if (tm_init(&m, RAM_SIZE) || virtio_rng_create(m.pbus, m.mem, NULL, &rng))
			abort();
	}
	/* Back to a known state: BARs where the bridge put them, decode on, device reset. */
	cfg_wr(&m, rng->pci.slot, PCI_BAR0, 4, rng->pci.bars[0].alloc_addr);
	cfg_wr(&m, rng->pci.slot, PCI_BAR0 + 8, 4, rng->pci.bars[2].alloc_addr);
	cfg_wr(&m, rng->pci.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	mmio_wr(&m, bar_addr(0) + VIRTIO_PCI_COMMON_STATUS, 1, 0);
	memset(m.ram, 0, RAM_SIZE);

	/* Up to 64 operations of 8 bytes: op, len, offset (le16), value (le32); the rest is RAM. */
	nops = size / OP_SIZE < 64 ? size / OP_SIZE : 64;
	if (size > nops * OP_SIZE)
		memcpy(m.ram + 0x10000, data + nops * OP_SIZE,
		       size - nops * OP_SIZE < RAM_SIZE - 0x10000 ? size - nops * OP_SIZE
								  : RAM_SIZE - 0x10000);
	for (size_t i = 0; i < nops; i++) {
		const uint8_t *o = data + i * OP_SIZE;
		uint32_t len = lens[o[1] & 3], off = o[2] | o[3] << 8;
		uint64_t val = (uint64_t)(o[4] | o[5] << 8 | o[6] << 16 | (uint32_t)o[7] << 24);

		switch (o[0] % 7) {
		case 0:
			cfg_rd(&m, rng->pci.slot, off & 0xff, len > 4 ? 4 : len);
			break;
		case 1:
			cfg_wr(&m, rng->pci.slot, off & 0xff, len > 4 ? 4 : len, val);
			break;
		case 2:
			mmio_rd(&m, bar_addr(0) + (off & 0x3fff), len);
			break;
		case 3:
			mmio_wr(&m, bar_addr(0) + (off & 0x3fff), len, val);
			break;
		case 4:
			mmio_wr(&m, bar_addr(2) + (off & 0xfff), len, val);
			break;
		case 5:
			mmio_rd(&m, bar_addr(2) + (off & 0xfff), len);
			break;
		default:
			/* Ring addresses point into the input-filled RAM more often this way. */
			mmio_wr(&m, bar_addr(0) + VIRTIO_PCI_COMMON_Q_DESCLO + (o[1] & 0x1c), 4,
				0x10000 + (val & 0xfff0));
			break;
		}
	}
	return 0;
}
