/*
 * vmm/fw_cfg.c without a VM (fw_cfg_io on a wrapped buffer): signature and
 * feature bits through the data port, the file directory, DMA reads with
 * select, skip and zero fill, and hostile input: descriptors outside RAM,
 * destinations that wrap or leave RAM, writes, unknown keys, odd port
 * widths, offsets past an item, and bad host-side arguments.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/fw_cfg.h"
#include "vmm/mem.h"

#define RAM_SIZE (1u << 20)
#define DESC	 0x1000
#define BUF	 0x2000

struct fx {
	uint8_t *ram;
	struct guest_mem *mem;
	struct fw_cfg *fc;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	if (!f->ram || mem_wrap(&f->mem, f->ram, RAM_SIZE) || fw_cfg_create(&f->fc, f->mem))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fw_cfg_destroy(f->fc);
	mem_destroy(f->mem);
	free(f->ram);
	free(f);
	return 0;
}

static void sel(struct fw_cfg *fc, uint16_t key)
{
	uint8_t b[2] = {(uint8_t)key, (uint8_t)(key >> 8)};

	fw_cfg_io(fc, 0, b, 2, true);
}

static void read_data(struct fw_cfg *fc, void *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fw_cfg_io(fc, 1, (uint8_t *)out + i, 1, false);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes a descriptor at DESC and starts it the way OVMF does (two big-endian halves). */
static uint32_t dma_at(struct fx *f, uint64_t desc, uint32_t control, uint32_t len, uint64_t addr)
{
	uint8_t hi[4], lo[4];

	if (desc <= RAM_SIZE - 16) {
		put_be32(f->ram + desc, control);
		put_be32(f->ram + desc + 4, len);
		put_be32(f->ram + desc + 8, (uint32_t)(addr >> 32));
		put_be32(f->ram + desc + 12, (uint32_t)addr);
	}
	put_be32(hi, (uint32_t)(desc >> 32));
	put_be32(lo, (uint32_t)desc);
	fw_cfg_io(f->fc, 4, hi, 4, true);
	fw_cfg_io(f->fc, 8, lo, 4, true);
	return desc <= RAM_SIZE - 16 ? get_be32(f->ram + desc) : 0;
}

static uint32_t dma(struct fx *f, uint32_t control, uint32_t len, uint64_t addr)
{
	return dma_at(f, DESC, control, len, addr);
}

static void test_signature_and_id(void **state)
{
	struct fx *f = *state;
	char sig[5] = {0};
	uint8_t id[4], dsig[8];

	sel(f->fc, FW_CFG_SIGNATURE);
	read_data(f->fc, sig, 4);
	assert_string_equal(sig, "QEMU");
	/* Past the end: zeros. */
	read_data(f->fc, id, 1);
	assert_int_equal(id[0], 0);
	sel(f->fc, FW_CFG_ID);
	read_data(f->fc, id, 4);
	assert_int_equal(id[0], 3); /* traditional + DMA */
	/* The DMA register reads as "QEMU CFG", any width. */
	fw_cfg_io(f->fc, 4, dsig, 8, false);
	assert_memory_equal(dsig, "QEMU CFG", 8);
	fw_cfg_io(f->fc, 8, dsig, 4, false);
	assert_memory_equal(dsig, " CFG", 4);
	/* Unknown key: zeros; the write channel bit selects the same item. */
	sel(f->fc, 0x1234);
	read_data(f->fc, id, 4);
	assert_memory_equal(id, "\0\0\0\0", 4);
	sel(f->fc, FW_CFG_SIGNATURE | FW_CFG_WRITE_CHANNEL);
	read_data(f->fc, sig, 4);
	assert_string_equal(sig, "QEMU");
}

static void test_files_and_directory(void **state)
{
	struct fx *f = *state;
	uint8_t dir[4 + 3 * 64];
	uint16_t k1, k2;
	char got[16] = {0};

	assert_int_equal(fw_cfg_add_file(f->fc, "etc/one", "first", 5, &k1), 0);
	assert_int_equal(fw_cfg_add_file(f->fc, "opt/two", "second!", 7, &k2), 0);
	assert_int_equal(k1, FW_CFG_FILE_FIRST);
	assert_int_equal(k2, FW_CFG_FILE_FIRST + 1);
	assert_int_equal(fw_cfg_add_file(f->fc, "etc/one", "x", 1, NULL), -EEXIST);
	sel(f->fc, FW_CFG_FILE_DIR);
	read_data(f->fc, dir, sizeof(dir));
	assert_int_equal(get_be32(dir), 2);
	assert_int_equal(get_be32(dir + 4), 5);
	assert_int_equal(dir[8] << 8 | dir[9], k1);
	assert_string_equal((char *)dir + 12, "etc/one");
	assert_int_equal(get_be32(dir + 68), 7);
	assert_int_equal(dir[72] << 8 | dir[73], k2);
	assert_string_equal((char *)dir + 76, "opt/two");
	/* A file through the data port. */
	sel(f->fc, k2);
	read_data(f->fc, got, 7);
	assert_string_equal(got, "second!");
	/* Host-side mistakes. */
	char longname[FW_CFG_MAX_NAME + 1];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[FW_CFG_MAX_NAME] = 0;
	assert_int_equal(fw_cfg_add_file(f->fc, longname, "x", 1, NULL), -EINVAL);
	longname[FW_CFG_MAX_NAME - 1] = 0; /* 55 characters + NUL fits */
	assert_int_equal(fw_cfg_add_file(f->fc, longname, "x", 1, NULL), 0);
	assert_int_equal(fw_cfg_add_file(f->fc, "", "x", 1, NULL), -EINVAL);
	assert_int_equal(fw_cfg_add_file(f->fc, NULL, "x", 1, NULL), -EINVAL);
	assert_int_equal(fw_cfg_add_item(f->fc, FW_CFG_FILE_DIR, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_item(f->fc, FW_CFG_FILE_FIRST, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_item(f->fc, FW_CFG_NB_CPUS, NULL, 2), -EINVAL);
	assert_int_equal(fw_cfg_add_item(f->fc, FW_CFG_NB_CPUS, "\2\0", 2), 0);
	/* The table fills up with -ENOSPC, never overflows. */
	int ret = 0;
	for (int i = 0; i < 2 * FW_CFG_MAX_ITEMS && !ret; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		ret = fw_cfg_add_file(f->fc, name, "y", 1, NULL);
	}
	assert_int_equal(ret, -ENOSPC);
}

static void test_dma_read(void **state)
{
	struct fx *f = *state;
	uint16_t k;

	assert_int_equal(fw_cfg_add_file(f->fc, "etc/data", "0123456789", 10, &k), 0);
	memset(f->ram + BUF, 0xee, 32);
	/* Select and read 4 bytes. */
	assert_int_equal(dma(f, (uint32_t)k << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 4, BUF),
			 0);
	assert_memory_equal(f->ram + BUF, "0123", 4);
	assert_int_equal(f->ram[BUF + 4], 0xee);
	/* Skip 2, read on from offset 6, past the end: the rest is zeros. */
	assert_int_equal(dma(f, FW_CFG_DMA_SKIP, 2, 0), 0);
	assert_int_equal(dma(f, FW_CFG_DMA_READ, 8, BUF), 0);
	assert_memory_equal(f->ram + BUF, "6789\0\0\0\0", 8);
	assert_int_equal(f->ram[BUF + 8], 0xee);
	/* The data port continues where DMA left off (at the end: zeros). */
	uint8_t b = 1;
	read_data(f->fc, &b, 1);
	assert_int_equal(b, 0);
	/* A control word of 0 does nothing and completes. */
	assert_int_equal(dma(f, 0, 4, BUF), 0);
}

static void test_dma_hostile(void **state)
{
	struct fx *f = *state;
	uint16_t k;

	assert_int_equal(fw_cfg_add_file(f->fc, "etc/h", "abcdef", 6, &k), 0);
	uint32_t rd = (uint32_t)k << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
	/* Destination past RAM, straddling its end, wrapping around, huge. */
	assert_int_equal(dma(f, rd, 4, RAM_SIZE), FW_CFG_DMA_ERROR);
	memset(f->ram + RAM_SIZE - 2, 0x55, 2);
	assert_int_equal(dma(f, rd, 4, RAM_SIZE - 2), FW_CFG_DMA_ERROR);
	assert_int_equal(f->ram[RAM_SIZE - 2], 0x55); /* all or nothing */
	assert_int_equal(dma(f, rd, 0x10, UINT64_MAX - 4), FW_CFG_DMA_ERROR);
	assert_int_equal(dma(f, rd, UINT32_MAX, BUF), FW_CFG_DMA_ERROR);
	/* Writes are refused; unknown bits ignored. */
	assert_int_equal(dma(f, (uint32_t)k << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE, 4, BUF),
			 FW_CFG_DMA_ERROR);
	assert_int_equal(dma(f, rd | 0xe0, 2, BUF), 0);
	assert_memory_equal(f->ram + BUF, "ab", 2);
	/* Skip far past the end, then read: zeros. */
	assert_int_equal(dma(f, FW_CFG_DMA_SKIP, UINT32_MAX, 0), 0);
	assert_int_equal(dma(f, FW_CFG_DMA_READ, 2, BUF), 0);
	assert_memory_equal(f->ram + BUF, "\0\0", 2);
	/* Descriptors outside RAM or straddling its end: ignored, nothing written. */
	(void)dma_at(f, RAM_SIZE, rd, 4, BUF);
	(void)dma_at(f, UINT64_MAX - 7, rd, 4, BUF);
	memset(f->ram + RAM_SIZE - 8, 0x77, 8);
	(void)dma_at(f, RAM_SIZE - 8, rd, 4, BUF);
	for (int i = 8; i > 0; i--)
		assert_int_equal(f->ram[RAM_SIZE - i], 0x77);
	/* The descriptor as its own destination: overwritten, then completed. */
	assert_int_equal(dma_at(f, DESC, rd, 16, DESC), 0);
	/* Odd widths and offsets on the ports. */
	uint8_t junk[16];
	memset(junk, 0xff, sizeof(junk));
	fw_cfg_io(f->fc, 0, junk, 1, true);
	fw_cfg_io(f->fc, 0, junk, 16, true);
	fw_cfg_io(f->fc, 0, junk, 16, false);
	fw_cfg_io(f->fc, UINT64_MAX, junk, 16, true);
	fw_cfg_io(f->fc, UINT64_MAX, junk, 16, false);
	fw_cfg_io(f->fc, 2, junk, 0, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_signature_and_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_files_and_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dma_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dma_hostile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
