/*
 * bzImage loader: synthetic images built here (good and hostile headers),
 * what lands in guest RAM for both entries, and Debian's real kernel when
 * one is around ($UVM_TEST_KERNEL, or the unpacked package under /tmp/k).
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

#include "boot/boot.h"
#include "tests/unit/boot_test_image.h"

#define MiB	    (1ULL << 20)
#define RAM_SIZE    (64 * MiB)
#define PREF	    0x1000000
#define SETUP_SECTS 4
#define PM_SIZE	    0x3000

struct img {
	uint8_t *buf;
	size_t size;
};

/* A minimal protocol-2.15 bzImage: setup_sects setup sectors, pm_size bytes of kernel. */
static struct img make_bz(unsigned int setup_sects, size_t pm_size)
{
	struct img im = {.size = bootimg_bz_setup_size((uint8_t)setup_sects) + pm_size};
	size_t i;

	im.buf = calloc(1, im.size);
	assert_non_null(im.buf);
	for (i = 0; i < im.size; i++)
		im.buf[i] = (uint8_t)(i * 7 + 3);
	bootimg_bz_header(im.buf, (uint8_t)setup_sects, pm_size, PREF, 0x8000);
	return im;
}

static struct boot_ram ram_of(uint64_t size)
{
	return (struct boot_ram){.lo_size = size};
}

static struct boot_input input_of(const struct img *im)
{
	return (struct boot_input){.kernel = im->buf,
				   .kernel_size = im->size,
				   .cmdline = "console=ttyS0 quiet",
				   .nr_cpus = 2};
}

static int load(const struct img *im, struct boot_input *in, uint64_t ram_size,
		struct boot_regs *regs, char *err, size_t errlen)
{
	struct boot_ram ram = ram_of(ram_size);

	return bootimg_load(&ram, in, regs, err, errlen);
}

/* Expects a failure with rc and a message containing what. */
static void expect_fail(const struct img *im, struct boot_input *in, uint64_t ram_size, int rc,
			const char *what)
{
	struct boot_regs regs;
	char err[256] = "";

	assert_int_equal(load(im, in, ram_size, &regs, err, sizeof(err)), rc);
	bootimg_expect_err(err, what);
}

/* ---- good images ---- */

static void test_detect(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	static const uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	static const uint8_t junk[0x300];

	assert_int_equal(boot_detect(im.buf, im.size), BOOT_FORMAT_BZIMAGE);
	assert_int_equal(boot_detect(im.buf, 0x205), BOOT_FORMAT_UNKNOWN);
	assert_int_equal(boot_detect(elf, sizeof(elf)), BOOT_FORMAT_ELF);
	assert_int_equal(boot_detect(elf, 3), BOOT_FORMAT_UNKNOWN);
	assert_int_equal(boot_detect(junk, sizeof(junk)), BOOT_FORMAT_UNKNOWN);
	assert_int_equal(boot_detect(NULL, 100), BOOT_FORMAT_UNKNOWN);
	free(im.buf);
}

static void test_load_64(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	struct boot_e820_entry e;
	char err[256] = "";
	const uint8_t *zp = bootimg_ram + BOOT_ADDR_ZERO_PAGE, *gdt = bootimg_ram + BOOT_ADDR_GDT;
	size_t setup = (SETUP_SECTS + 1) * 512;

	memset(bootimg_ram, 0xcc, RAM_SIZE);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_string_equal(err, "");

	assert_int_equal(regs.mode, BOOT_MODE_LONG64);
	assert_int_equal(regs.rip, PREF + 0x200);
	assert_int_equal(regs.rsi, BOOT_ADDR_ZERO_PAGE);
	assert_int_equal(regs.cr3, BOOT_ADDR_PML4);
	assert_int_equal(regs.gdt_base, BOOT_ADDR_GDT);
	assert_int_equal(regs.gdt_limit, 31);
	assert_int_equal(regs.code_sel, 0x10);
	assert_int_equal(regs.data_sel, 0x18);
	assert_int_equal(regs.rsp, BOOT_ADDR_STACK_TOP);

	/* The protected-mode kernel, byte for byte, at pref_address. */
	assert_memory_equal(bootimg_ram + PREF, im.buf + setup, PM_SIZE);

	/* Zero page: header copied up to its end, the rest ours or zero. */
	assert_memory_equal(zp + 0x1f1, im.buf + 0x1f1, 0x210 - 0x1f1);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(zp[0x211], 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
	assert_int_equal(bootimg_get32(zp + 0x228), BOOT_ADDR_CMDLINE);
	assert_int_equal(bootimg_get32(zp + 0x218), 0);
	assert_int_equal(bootimg_get32(zp + 0x21c), 0);
	assert_int_equal(zp[0x26c], 0); /* past the header: not copied */
	assert_int_equal(zp[0x1ef], 0); /* sentinel */
	assert_int_equal(zp[0], 0);
	assert_string_equal((const char *)bootimg_ram + BOOT_ADDR_CMDLINE, "console=ttyS0 quiet");

	/* e820 in the zero page. */
	assert_int_equal(zp[0x1e8], 3);
	memcpy(&e, zp + 0x2d0 + 2 * 20, sizeof(e));
	assert_int_equal(e.addr, MiB);
	assert_int_equal(e.size, RAM_SIZE - MiB);
	assert_int_equal(e.type, BOOT_E820_RAM);

	/* Identity map: PML4 -> PDPT -> PD, 2 MiB pages up to 4 GiB. */
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PML4), BOOT_ADDR_PDPT | 3);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PML4 + 8), 0);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PDPT + 3 * 8),
			 (BOOT_ADDR_PD + 3 * 4096) | 3);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PDPT + 4 * 8), 0);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PD), 0x83);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PD + 8 * 8), (8ULL << 21) | 0x83);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_PD + 2047 * 8),
			 (2047ULL << 21) | 0x83);

	/* GDT: 64-bit code at 0x10, data at 0x18. */
	assert_int_equal(bootimg_get64(gdt), 0);
	assert_int_equal(bootimg_get64(gdt + 8), 0);
	assert_int_equal(bootimg_get64(gdt + 16), 0x00af9b000000ffffULL);
	assert_int_equal(bootimg_get64(gdt + 24), 0x00cf93000000ffffULL);

	/* The MP table is written for every format. */
	assert_memory_equal(bootimg_ram + BOOT_ADDR_MPTABLE, "_MP_", 4);
	free(im.buf);
}

static void test_initrd_placement(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256] = "";
	size_t size = MiB + 5;
	uint8_t *initrd = malloc(2 * MiB + 1); /* the largest size tried below */
	const uint8_t *zp = bootimg_ram + BOOT_ADDR_ZERO_PAGE;
	uint32_t addr;
	size_t i;

	assert_non_null(initrd);
	for (i = 0; i < size; i++)
		initrd[i] = (uint8_t)(i ^ (i >> 8));
	in.initrd = initrd;
	in.initrd_size = size;

	/* Highest page-aligned place below the end of RAM. */
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	addr = bootimg_get32(zp + 0x218);
	assert_int_equal(addr, (RAM_SIZE - size) & ~0xfffULL);
	assert_int_equal(bootimg_get32(zp + 0x21c), size);
	assert_memory_equal(bootimg_ram + addr, initrd, size);

	/* initrd_addr_max below the end of RAM wins. */
	bootimg_put32(im.buf + 0x22c, 40 * MiB - 1);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	addr = bootimg_get32(zp + 0x218);
	assert_int_equal(addr, (40 * MiB - size) & ~0xfffULL);
	assert_memory_equal(bootimg_ram + addr, initrd, size);

	/* Exactly enough room above the kernel's init_size footprint. */
	bootimg_put32(im.buf + 0x22c, PREF + 0x8000 + 2 * MiB - 1);
	in.initrd_size = 2 * MiB;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(bootimg_get32(zp + 0x218), PREF + 0x8000);

	/* One byte more would overlap the kernel. */
	in.initrd_size = 2 * MiB + 1;
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "initrd");

	/* An unaligned kernel end: the page holding its last byte is taken. */
	bootimg_put32(im.buf + 0x260, 0x8001);
	in.initrd_size = 2 * MiB;
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "initrd");
	bootimg_put32(im.buf + 0x260, 0x8000);

	/* Larger than RAM. */
	bootimg_put32(im.buf + 0x22c, 0x7fffffff);
	in.initrd_size = RAM_SIZE;
	in.initrd = malloc(RAM_SIZE);
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "initrd");
	free((void *)in.initrd);

	/* A size without data. */
	in.initrd = NULL;
	in.initrd_size = 10;
	expect_fail(&im, &in, RAM_SIZE, -EINVAL, "initrd");
	free(initrd);
	free(im.buf);
}

static void test_cmdline_limits(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256] = "";
	char *line = malloc(5000);

	assert_non_null(line);
	/* The header's cmdline_size (without the NUL) is the limit. */
	bootimg_put32(im.buf + 0x238, 100);
	memset(line, 'a', 100);
	line[100] = 0;
	in.cmdline = line;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(strlen((char *)bootimg_ram + BOOT_ADDR_CMDLINE), 100);
	line[100] = 'a';
	line[101] = 0;
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "command line");

	/* A huge cmdline_size is capped at BOOT_CMDLINE_MAX. */
	bootimg_put32(im.buf + 0x238, 0xffffffff);
	memset(line, 'b', 4999);
	line[4999] = 0;
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "command line");
	line[BOOT_CMDLINE_MAX] = 0;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(strlen((char *)bootimg_ram + BOOT_ADDR_CMDLINE), BOOT_CMDLINE_MAX);

	/* No command line: an empty one, still pointed at. */
	in.cmdline = NULL;
	memset(bootimg_ram + BOOT_ADDR_CMDLINE, 'x', 16);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(bootimg_ram[BOOT_ADDR_CMDLINE], 0);
	free(line);
	free(im.buf);
}

static void test_non_relocatable(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256] = "";

	im.buf[0x234] = 0;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.rip, 0x100200);
	assert_memory_equal(bootimg_ram + 0x100000, im.buf + (SETUP_SECTS + 1) * 512, PM_SIZE);
	free(im.buf);
}

static void test_setup_sects_zero(void **state)
{
	struct img im = make_bz(0, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	struct boot_bzimage_info bz;
	char err[256] = "";

	assert_int_equal(boot_bzimage_parse(im.buf, im.size, &bz, err, sizeof(err)), 0);
	assert_int_equal(bz.setup_size, 5 * 512);
	assert_int_equal(bz.pm_size, PM_SIZE);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_memory_equal(bootimg_ram + PREF, im.buf + 5 * 512, PM_SIZE);
	free(im.buf);
}

static void test_real16(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256] = "";
	uint8_t initrd[100] = {1, 2, 3};
	const uint8_t *s = bootimg_ram + BOOT_ADDR_REAL_SETUP;

	in.entry = BOOT_ENTRY_REAL16;
	bootimg_put32(im.buf + 0x214, 0x200000); /* code32_start: we load at 1 MiB and say so */
	in.initrd = initrd;
	in.initrd_size = sizeof(initrd);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.mode, BOOT_MODE_REAL16);
	assert_int_equal(regs.real_cs, 0x1020);
	assert_int_equal(regs.real_ds, 0x1000);
	assert_int_equal(regs.rip, 0);
	assert_int_equal(regs.rsp, 0xe000);

	/* Boot sector + setup at 0x10000, our fields filled in that copy. */
	assert_memory_equal(s, im.buf, 0x1f0);
	assert_memory_equal(s + 0x26c, im.buf + 0x26c, (SETUP_SECTS + 1) * 512 - 0x26c);
	assert_int_equal(s[0x210], 0xff);
	assert_true(s[0x211] & 0x80);
	assert_int_equal(bootimg_get16(s + 0x224), 0xe000 - 0x200);
	assert_int_equal(bootimg_get32(s + 0x228), BOOT_ADDR_CMDLINE);
	assert_int_equal(bootimg_get32(s + 0x214), 0x100000);
	assert_int_equal(bootimg_get32(s + 0x21c), sizeof(initrd));
	assert_int_equal(bootimg_get32(s + 0x218), (RAM_SIZE - sizeof(initrd)) & ~0xfffULL);
	assert_memory_equal(bootimg_ram + bootimg_get32(s + 0x218), initrd, sizeof(initrd));
	assert_memory_equal(bootimg_ram + 0x100000, im.buf + (SETUP_SECTS + 1) * 512, PM_SIZE);

	/* Real mode works from protocol 2.06 (no xloadflags, no pref_address). */
	bootimg_put16(im.buf + 0x206, 0x0206);
	in.initrd_size = 0;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.mode, BOOT_MODE_REAL16);
	free(im.buf);
}

/* ---- hostile images ---- */

static void test_truncated_everywhere(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256];
	size_t n;

	/* Every prefix of the image is refused, none crashes. */
	for (n = 0; n < im.size; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, im.buf, n);
		in.kernel = copy;
		in.kernel_size = n;
		err[0] = 0;
		if (load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)) != -ENOEXEC)
			fail_msg("prefix of %zu bytes not refused with -ENOEXEC", n);
		assert_true(strlen(err) > 0);
		free(copy);
	}
	in.kernel = im.buf;
	in.kernel_size = im.size;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	free(im.buf);
}

static void test_bad_header(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);

	bootimg_put16(im.buf + 0x1fe, 0x55aa);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "boot_flag");
	bootimg_put16(im.buf + 0x1fe, 0xaa55);

	memcpy(im.buf + 0x202, "HdrT", 4);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "neither a bzImage");
	memcpy(im.buf + 0x202, "HdrS", 4);

	bootimg_put16(im.buf + 0x206, 0x0205);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "2.05 is older than 2.06");
	bootimg_put16(im.buf + 0x206, 0x0203);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "2.03");
	/* 2.06 to 2.11 parse, but have no xloadflags: no 64-bit entry. */
	bootimg_put16(im.buf + 0x206, 0x0206);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "64-bit");
	bootimg_put16(im.buf + 0x206, 0x020f);

	bootimg_put16(im.buf + 0x236, 0x2);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "XLF_KERNEL_64");
	bootimg_put16(im.buf + 0x236, 0x3);

	im.buf[0x211] = 0;
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "zImage");
	im.buf[0x211] = 1;

	/* Setup but no kernel at all, even if syssize does not object. */
	{
		struct img cut = {.buf = im.buf, .size = (SETUP_SECTS + 1) * 512};

		bootimg_put32(im.buf + 0x1f4, 0);
		expect_fail(
		    &cut,
		    &(struct boot_input){.kernel = cut.buf, .kernel_size = cut.size, .nr_cpus = 1},
		    RAM_SIZE, -ENOEXEC, "truncated");
	}

	/* syssize says more than the file holds. */
	bootimg_put32(im.buf + 0x1f4, PM_SIZE / 16 + 1);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "truncated");
	bootimg_put32(im.buf + 0x1f4, PM_SIZE / 16);

	/* Compressed payload beyond the kernel, also with 32-bit wraparound. */
	bootimg_put32(im.buf + 0x24c, PM_SIZE);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "payload");
	bootimg_put32(im.buf + 0x248, 0xffffffff);
	bootimg_put32(im.buf + 0x24c, 2);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "payload");
	bootimg_put32(im.buf + 0x248, 0x10);
	bootimg_put32(im.buf + 0x24c, 0x100);

	/* pref_address that would clobber our low structures, or beyond 4 GiB. */
	bootimg_put64(im.buf + 0x258, 0x7000);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "pref_address");
	bootimg_put64(im.buf + 0x258, UINT64_MAX - 0x100);
	expect_fail(&im, &in, RAM_SIZE, -ENOEXEC, "pref_address");
	bootimg_put64(im.buf + 0x258, PREF);

	/* Still loads once repaired. */
	{
		struct boot_regs regs;
		char err[256];

		assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	}
	free(im.buf);
}

static void test_setup_sects_huge(void **state)
{
	struct img small = make_bz(SETUP_SECTS, PM_SIZE);
	struct img big = make_bz(255, PM_SIZE);
	struct boot_input in = input_of(&small);
	struct boot_regs regs;
	char err[256];

	/* 255 setup sectors claimed by a file that is too short for them. */
	small.buf[0x1f1] = 255;
	expect_fail(&small, &in, RAM_SIZE, -ENOEXEC, "truncated");

	/* A genuine 128 KiB setup loads with the 64-bit entry (setup not used)... */
	in = input_of(&big);
	assert_int_equal(load(&big, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	/* ...but cannot run in real mode below the heap at 0x8000. */
	in.entry = BOOT_ENTRY_REAL16;
	expect_fail(&big, &in, RAM_SIZE, -ENOEXEC, "setup");
	free(small.buf);
	free(big.buf);
}

static void test_kernel_too_big(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_regs regs;
	char err[256];

	/* init_size beyond RAM. */
	bootimg_put32(im.buf + 0x260, RAM_SIZE);
	expect_fail(&im, &in, RAM_SIZE, -E2BIG, "init_size");
	/* Exactly up to the end of RAM fits. */
	bootimg_put32(im.buf + 0x260, RAM_SIZE - PREF);
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	/* RAM smaller than pref_address. */
	bootimg_put32(im.buf + 0x260, 0x8000);
	expect_fail(&im, &in, 8 * MiB, -E2BIG, "low RAM ends");
	free(im.buf);
}

static void test_bad_args(void **state)
{
	struct img im = make_bz(SETUP_SECTS, PM_SIZE);
	struct boot_input in = input_of(&im);
	struct boot_ram ram = ram_of(RAM_SIZE);
	char err[256];

	in.nr_cpus = 0;
	expect_fail(&im, &in, RAM_SIZE, -EINVAL, "vCPUs");
	in.nr_cpus = BOOT_MAX_CPUS + 1;
	expect_fail(&im, &in, RAM_SIZE, -EINVAL, "vCPUs");
	in.nr_cpus = 1;
	expect_fail(&im, &in, MiB - 4096, -EINVAL, "low RAM");
	assert_int_equal(boot_load(bootimg_plan, NULL, &in, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_load(bootimg_plan, &ram, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_load(NULL, &ram, &in, err, sizeof(err)), -EINVAL);
	/* err may be absent. */
	in.nr_cpus = 0;
	assert_int_equal(boot_load(bootimg_plan, &ram, &in, NULL, 0), -EINVAL);
	free(im.buf);
}

/* ---- Debian's kernel ---- */

static uint8_t *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static const char *real_kernel_path(void)
{
	const char *p = getenv("UVM_TEST_KERNEL");

	return p && *p ? p : "/tmp/k/root/boot/vmlinuz-6.1.0-56-amd64";
}

static void test_debian_kernel(void **state)
{
	const char *path = real_kernel_path();
	struct boot_bzimage_info bz;
	struct boot_input in = {0};
	struct boot_ram ram = ram_of(BOOTIMG_RAM_SIZE);
	struct boot_regs regs;
	char err[256] = "";
	uint8_t initrd[8192];
	const uint8_t *zp = bootimg_ram + BOOT_ADDR_ZERO_PAGE;
	size_t size = 0;
	uint8_t *k = read_file(path, &size);

	if (!k) {
		printf("SKIP test_debian_kernel: no kernel at %s (set UVM_TEST_KERNEL)\n", path);
		skip();
	}
	assert_int_equal(boot_bzimage_parse(k, size, &bz, err, sizeof(err)), 0);
	printf("%s: protocol %u.%02u, setup %u, init_size 0x%x, pref 0x%llx\n", path,
	       bz.version >> 8, bz.version & 0xff, bz.setup_size, bz.init_size,
	       (unsigned long long)bz.pref_address);
	assert_true(bz.version >= 0x020f); /* 6.1 speaks 2.15 */
	assert_true(bz.xloadflags & 1);
	assert_true(bz.relocatable);
	/* The compressed payload is where the header says: XZ magic. */
	assert_memory_equal(k + bz.pm_offset + bz.payload_offset,
			    "\xfd"
			    "7zXZ\0",
			    6);

	memset(initrd, 0x5a, sizeof(initrd));
	in = (struct boot_input){.kernel = k,
				 .kernel_size = size,
				 .initrd = initrd,
				 .initrd_size = sizeof(initrd),
				 .cmdline = "console=ttyS0 earlyprintk=serial panic=-1",
				 .nr_cpus = 4};
	assert_int_equal(bootimg_load(&ram, &in, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.mode, BOOT_MODE_LONG64);
	assert_int_equal(regs.rip, bz.pref_address + 0x200);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_true(bootimg_get32(zp + 0x218) >= bz.pref_address + bz.init_size);
	assert_int_equal(bootimg_get32(zp + 0x218) + sizeof(initrd), BOOTIMG_RAM_SIZE);
	assert_memory_equal(bootimg_ram + bz.pref_address, k + bz.pm_offset, bz.pm_size);

	/* Real-mode entry too. */
	in.entry = BOOT_ENTRY_REAL16;
	assert_int_equal(bootimg_load(&ram, &in, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.mode, BOOT_MODE_REAL16);

	/* Too little RAM for its 60+ MiB init_size. */
	in.entry = BOOT_ENTRY_DEFAULT;
	ram.lo_size = 64 * MiB;
	assert_int_equal(bootimg_load(&ram, &in, &regs, err, sizeof(err)), -E2BIG);
	printf("64 MiB: %s\n", err);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_detect),	     cmocka_unit_test(test_load_64),
	    cmocka_unit_test(test_initrd_placement), cmocka_unit_test(test_cmdline_limits),
	    cmocka_unit_test(test_non_relocatable),  cmocka_unit_test(test_setup_sects_zero),
	    cmocka_unit_test(test_real16),	     cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_bad_header),	     cmocka_unit_test(test_setup_sects_huge),
	    cmocka_unit_test(test_kernel_too_big),   cmocka_unit_test(test_bad_args),
	    cmocka_unit_test(test_debian_kernel),
	};

	return cmocka_run_group_tests(tests, bootimg_ram_setup, bootimg_ram_teardown);
}
