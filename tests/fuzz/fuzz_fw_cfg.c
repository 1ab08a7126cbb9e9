/*
 * fw_cfg driven by a hostile guest: the input is a script of port accesses
 * (selector, data, DMA register bytes at any offset and width) over a 64 KiB
 * guest whose first 4 KiB the input also fills, so DMA descriptors come from
 * the fuzzer: addresses past RAM, lengths that wrap, every control bit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "vmm/fw_cfg.h"
#include "vmm/mem.h"

#define RAM_SIZE (64u << 10)

static uint8_t *ram;
static struct guest_mem *mem;
static struct fw_cfg *fc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static uint8_t blob[10000];

	(void)argc;
	(void)argv;
	ram = calloc(1, RAM_SIZE);
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)i;
	if (!ram || mem_wrap(&mem, ram, RAM_SIZE) || fw_cfg_create(&fc, mem) ||
	    fw_cfg_add_file(fc, "etc/small", "abc", 3, NULL) ||
	    fw_cfg_add_file(fc, "etc/big", blob, sizeof(blob), NULL) ||
	    fw_cfg_add_file(fc, "etc/empty", NULL, 0, NULL) ||
	    fw_cfg_add_item(fc, FW_CFG_NB_CPUS, "\1\0", 2))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	size_t pre = size < 4096 ? size : 4096;

	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data, pre);
	while (in.n) {
		unsigned op = take(&in);
		uint64_t off = op & 0x80 ? (uint64_t)take32(&in) << 32 | take32(&in) : op & 0x0f;
		uint32_t len = take(&in) & 15;
		uint8_t buf[16];

		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)take(&in);
		fw_cfg_io(fc, off, buf, len, op & 0x40);
	}
	/* Leave no selection or half-written DMA address to the next input. */
	uint8_t zero[8] = {0};
	fw_cfg_io(fc, 0, zero, 2, true);
	fw_cfg_io(fc, 4, (uint8_t[8]){0, 0, 0, 0, 0, 0, 0xff, 0xf0}, 8, true);
	return 0;
}
