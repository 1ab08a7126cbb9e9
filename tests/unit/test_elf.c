/*
 * ELF vmlinux / PVH loader: synthetic ELFs built here (with and without the
 * PVH note, hostile program headers and notes), the hvm_start_info it
 * writes, and Debian's real vmlinux pulled out of the bzImage with xz.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "tests/unit/boot_test_image.h"

#define MiB	    (1ULL << 20)
#define RAM_SIZE    (64 * MiB)
#define ENTRY	    0x1000100
#define NOTE_OFF    0x200
#define SEG0_OFF    0x1000
#define SEG0_PADDR  0x1000000
#define SEG0_FILESZ 0x2000
#define SEG0_MEMSZ  0x3000
#define SEG1_OFF    0x3000
#define SEG1_PADDR  0x1200000
#define SEG1_SIZE   0x800
#define IMG_SIZE    0x3800

struct img {
	uint8_t *buf;
	size_t size;
	size_t note_size;
};

/* Two PT_LOAD (the first with bss) and a PT_NOTE holding a GNU note, a Xen note and the PVH note.
 */
static struct img make_elf(uint32_t pvh_descsz)
{
	struct img im = {.size = IMG_SIZE};
	uint8_t gnu[20] = {1, 2, 3}, xen_entry[8] = {0};
	uint64_t entry = ENTRY;
	size_t i, off = NOTE_OFF;

	im.buf = calloc(1, IMG_SIZE);
	assert_non_null(im.buf);
	for (i = SEG0_OFF; i < IMG_SIZE; i++)
		im.buf[i] = (uint8_t)(i * 13 + 1);
	bootimg_elf_header(im.buf, 0xffffffff81000000ULL, 3);

	off += bootimg_elf_add_note(im.buf + off, "GNU", NT_GNU_BUILD_ID, gnu, sizeof(gnu));
	off += bootimg_elf_add_note(im.buf + off, "Xen", 1, xen_entry,
				    sizeof(xen_entry)); /* XEN_ELFNOTE_ENTRY */
	if (pvh_descsz)
		off +=
		    bootimg_elf_add_note(im.buf + off, "Xen", BOOTIMG_NOTE_PVH, &entry, pvh_descsz);
	im.note_size = off - NOTE_OFF;

	bootimg_elf_set_phdr(im.buf, 0,
			     &(Elf64_Phdr){.p_type = PT_LOAD,
					   .p_offset = SEG0_OFF,
					   .p_vaddr = 0xffffffff81000000ULL,
					   .p_paddr = SEG0_PADDR,
					   .p_filesz = SEG0_FILESZ,
					   .p_memsz = SEG0_MEMSZ,
					   .p_align = 0x200000});
	bootimg_elf_set_phdr(im.buf, 1,
			     &(Elf64_Phdr){.p_type = PT_LOAD,
					   .p_offset = SEG1_OFF,
					   .p_vaddr = 0xffffffff81200000ULL,
					   .p_paddr = SEG1_PADDR,
					   .p_filesz = SEG1_SIZE,
					   .p_memsz = SEG1_SIZE,
					   .p_align = 0x1000});
	bootimg_elf_set_phdr(im.buf, 2,
			     &(Elf64_Phdr){.p_type = PT_NOTE,
					   .p_offset = NOTE_OFF,
					   .p_filesz = im.note_size,
					   .p_memsz = im.note_size,
					   .p_align = 4});
	return im;
}

static int load(const struct img *im, struct boot_input *in, uint64_t ram_size,
		struct boot_regs *regs, char *err, size_t errlen)
{
	struct boot_ram ram = {.lo_size = ram_size};

	in->kernel = im->buf;
	in->kernel_size = im->size;
	return bootimg_load(&ram, in, regs, err, errlen);
}

static void expect_fail(const struct img *im, int rc, const char *what)
{
	struct boot_input in = {.nr_cpus = 1};
	struct boot_regs regs;
	char err[256] = "";

	assert_int_equal(load(im, &in, RAM_SIZE, &regs, err, sizeof(err)), rc);
	bootimg_expect_err(err, what);
}

/* ---- good images ---- */

static void test_pvh_entry_note(void **state)
{
	struct img im8 = make_elf(8), im4 = make_elf(4);
	uint32_t entry = 0;
	char err[256] = "";

	assert_int_equal(boot_elf_pvh_entry(im8.buf, im8.size, &entry, err, sizeof(err)), 0);
	assert_int_equal(entry, ENTRY);
	entry = 0;
	assert_int_equal(boot_elf_pvh_entry(im4.buf, im4.size, &entry, err, sizeof(err)), 0);
	assert_int_equal(entry, ENTRY);
	free(im8.buf);
	free(im4.buf);
}

static void test_load(void **state)
{
	struct img im = make_elf(8);
	uint8_t initrd[5000];
	struct boot_input in = {.initrd = initrd,
				.initrd_size = sizeof(initrd),
				.cmdline = "console=ttyS0",
				.nr_cpus = 3};
	struct boot_regs regs;
	char err[256] = "";
	const uint8_t *si = bootimg_ram + BOOT_ADDR_PVH_INFO, *mod, *mm;
	uint64_t initrd_addr;
	uint32_t i, n;

	memset(initrd, 0x3c, sizeof(initrd));
	memset(bootimg_ram, 0xaa, RAM_SIZE); /* so the bss must really be cleared */
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_string_equal(err, "");

	assert_int_equal(regs.mode, BOOT_MODE_PROT32);
	assert_int_equal(regs.rip, ENTRY);
	assert_int_equal(regs.rbx, BOOT_ADDR_PVH_INFO);
	assert_int_equal(regs.code_sel, 0x10);
	assert_int_equal(regs.data_sel, 0x18);
	assert_int_equal(regs.gdt_base, BOOT_ADDR_GDT);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_GDT + 16), 0x00cf9b000000ffffULL);
	assert_int_equal(bootimg_get64(bootimg_ram + BOOT_ADDR_GDT + 24), 0x00cf93000000ffffULL);

	/* Segments at p_paddr, bss zeroed, nothing past it touched. */
	assert_memory_equal(bootimg_ram + SEG0_PADDR, im.buf + SEG0_OFF, SEG0_FILESZ);
	for (i = SEG0_FILESZ; i < SEG0_MEMSZ; i++)
		assert_int_equal(bootimg_ram[SEG0_PADDR + i], 0);
	assert_int_equal(bootimg_ram[SEG0_PADDR + SEG0_MEMSZ], 0xaa);
	assert_memory_equal(bootimg_ram + SEG1_PADDR, im.buf + SEG1_OFF, SEG1_SIZE);

	/* hvm_start_info v1. */
	assert_int_equal(bootimg_get32(si), 0x336ec578);
	assert_int_equal(bootimg_get32(si + 4), 1);
	assert_int_equal(bootimg_get32(si + 12), 1); /* nr_modules */
	assert_string_equal((const char *)bootimg_ram + bootimg_get64(si + 24), "console=ttyS0");
	assert_int_equal(bootimg_get64(si + 32), 0); /* rsdp */
	mod = bootimg_ram + bootimg_get64(si + 16);
	initrd_addr = bootimg_get64(mod);
	assert_int_equal(initrd_addr, (RAM_SIZE - sizeof(initrd)) & ~0xfffULL);
	assert_int_equal(bootimg_get64(mod + 8), sizeof(initrd));
	assert_memory_equal(bootimg_ram + initrd_addr, initrd, sizeof(initrd));

	n = bootimg_get32(si + 48);
	assert_int_equal(n, 3);
	mm = bootimg_ram + bootimg_get64(si + 40);
	assert_int_equal(bootimg_get64(mm + 0), 0);
	assert_int_equal(bootimg_get32(mm + 16), 1);
	assert_int_equal(bootimg_get64(mm + 24), 0x9fc00);
	assert_int_equal(bootimg_get32(mm + 24 + 16), 2);
	assert_int_equal(bootimg_get64(mm + 48), MiB);
	assert_int_equal(bootimg_get64(mm + 48 + 8), RAM_SIZE - MiB);
	assert_int_equal(bootimg_get32(mm + 48 + 16), 1);
	assert_int_equal(bootimg_get32(mm + 48 + 20), 0);

	assert_memory_equal(bootimg_ram + BOOT_ADDR_MPTABLE, "_MP_", 4);

	/* No initrd: no module. */
	in.initrd = NULL;
	in.initrd_size = 0;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	assert_int_equal(bootimg_get32(si + 12), 0);
	assert_int_equal(bootimg_get64(si + 16), 0);
	free(im.buf);
}

static void test_initrd_limits(void **state)
{
	struct img im = make_elf(8);
	size_t room = RAM_SIZE - (SEG1_PADDR + SEG1_SIZE);
	uint8_t *initrd = malloc(room + 4096);
	struct boot_input in = {.initrd = initrd, .nr_cpus = 1};
	struct boot_regs regs;
	char err[256] = "";

	assert_non_null(initrd);
	memset(initrd, 1, room + 4096);
	/* Just fits above the last segment (page-aligned down). */
	in.initrd_size = room & ~0xfffULL;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	in.initrd_size = room + 1;
	assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "initrd"));
	free(initrd);
	free(im.buf);
}

/* ---- hostile images ---- */

static void test_no_pvh_note(void **state)
{
	struct img im = make_elf(0);
	Elf64_Phdr ph;

	expect_fail(&im, -ENOEXEC, "PVH");
	/* Without any PT_NOTE at all. */
	ph = bootimg_elf_get_phdr(im.buf, 2);
	ph.p_type = PT_NULL;
	bootimg_elf_set_phdr(im.buf, 2, &ph);
	expect_fail(&im, -ENOEXEC, "PVH");
	free(im.buf);

	/* make_elf(0) had a "Xen" note of another type; now a type-18 note under another name. */
	im = make_elf(8);
	memcpy(im.buf + NOTE_OFF + 12 + 4 + 20 + 12 + 4 + 8 + 12, "Xem", 4);
	expect_fail(&im, -ENOEXEC, "PVH");
	free(im.buf);
}

static void test_bad_notes(void **state)
{
	struct img im = make_elf(8);
	Elf64_Phdr ph = bootimg_elf_get_phdr(im.buf, 2);
	size_t pvh = NOTE_OFF + 12 + 4 + 20 + 12 + 4 + 8; /* the PVH note's header */
	uint32_t v;

	/* Odd descriptor size. */
	v = 6;
	memcpy(im.buf + pvh + 4, &v, 4);
	expect_fail(&im, -ENOEXEC, "6-byte");
	/* Descriptor running past the segment, and 32-bit size wraparound. */
	v = 0xfffffffc;
	memcpy(im.buf + pvh + 4, &v, 4);
	expect_fail(&im, -ENOEXEC, "runs past");
	memcpy(im.buf + NOTE_OFF, &v, 4); /* first note's namesz */
	expect_fail(&im, -ENOEXEC, "runs past");
	free(im.buf);

	/* Entry above 4 GiB in an 8-byte note. */
	im = make_elf(8);
	im.buf[pvh + 12 + 4 + 5] = 1;
	expect_fail(&im, -ENOEXEC, "above 4 GiB");
	free(im.buf);

	/* Note segment beyond the file. */
	im = make_elf(8);
	ph.p_offset = IMG_SIZE - 4;
	bootimg_elf_set_phdr(im.buf, 2, &ph);
	expect_fail(&im, -ENOEXEC, "note segment");
	ph.p_offset = UINT64_MAX - 2;
	bootimg_elf_set_phdr(im.buf, 2, &ph);
	expect_fail(&im, -ENOEXEC, "note segment");
	free(im.buf);

	/* Entry outside every loaded segment (in the bss does not count). */
	im = make_elf(8);
	v = SEG0_PADDR + SEG0_FILESZ + 4;
	memcpy(im.buf + pvh + 12 + 4, &v, 4);
	expect_fail(&im, -ENOEXEC, "not inside any loaded segment");
	free(im.buf);
}

static void test_bad_ehdr(void **state)
{
	struct img im = make_elf(8);
	Elf64_Ehdr eh;

	memcpy(&eh, im.buf, sizeof(eh));
#define TRY(field, val, rc, what)                                                                  \
	do {                                                                                       \
		Elf64_Ehdr e = eh;                                                                 \
		e.field = val;                                                                     \
		memcpy(im.buf, &e, sizeof(e));                                                     \
		expect_fail(&im, rc, what);                                                        \
	} while (0)
	TRY(e_ident[EI_CLASS], ELFCLASS32, -ENOEXEC, "64-bit");
	TRY(e_ident[EI_DATA], ELFDATA2MSB, -ENOEXEC, "little-endian");
	TRY(e_machine, EM_386, -ENOEXEC, "x86-64");
	TRY(e_type, ET_DYN, -ENOEXEC, "ET_EXEC");
	TRY(e_phentsize, 32, -ENOEXEC, "program headers");
	TRY(e_phnum, 0, -ENOEXEC, "program headers");
	TRY(e_phnum, 65, -ENOEXEC, "program headers");
	TRY(e_phoff, IMG_SIZE - 8, -ENOEXEC, "program headers");
	TRY(e_phoff, UINT64_MAX - 8, -ENOEXEC, "program headers");
#undef TRY
	memcpy(im.buf, &eh, sizeof(eh));
	{
		struct boot_input in = {.nr_cpus = 1};
		struct boot_regs regs;
		char err[256];

		assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
		in.entry = BOOT_ENTRY_REAL16;
		assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), -EINVAL);
	}
	free(im.buf);
}

static void test_bad_phdrs(void **state)
{
	struct img im = make_elf(8);
	Elf64_Phdr good = bootimg_elf_get_phdr(im.buf, 1), ph;

#define TRY(field, val, rc, what)                                                                  \
	do {                                                                                       \
		ph = good;                                                                         \
		ph.field = val;                                                                    \
		bootimg_elf_set_phdr(im.buf, 1, &ph);                                              \
		expect_fail(&im, rc, what);                                                        \
	} while (0)
	TRY(p_filesz, SEG1_SIZE + 1, -ENOEXEC, "above memory size");
	TRY(p_offset, IMG_SIZE - 4, -ENOEXEC, "past the");
	TRY(p_offset, UINT64_MAX - 4, -ENOEXEC, "past the");
	TRY(p_paddr, RAM_SIZE - SEG1_SIZE + 1, -E2BIG, "outside guest RAM");
	TRY(p_paddr, UINT64_MAX - 4, -E2BIG, "outside guest RAM");
	TRY(p_paddr, 0x7000, -E2BIG, "outside guest RAM"); /* onto the zero page */
	TRY(p_memsz, RAM_SIZE, -E2BIG, "outside guest RAM");
	/* Overlaps segment 0 (its bss included). */
	TRY(p_paddr, SEG0_PADDR + SEG0_MEMSZ - 1, -ENOEXEC, "overlap");
	TRY(p_paddr, SEG0_PADDR - SEG1_SIZE + 1, -ENOEXEC, "overlap");
#undef TRY
	/* Touching, not overlapping: fine. */
	ph = good;
	ph.p_paddr = SEG0_PADDR + SEG0_MEMSZ;
	bootimg_elf_set_phdr(im.buf, 1, &ph);
	{
		struct boot_input in = {.nr_cpus = 1};
		struct boot_regs regs;
		char err[256];

		assert_int_equal(load(&im, &in, RAM_SIZE, &regs, err, sizeof(err)), 0);
	}
	free(im.buf);
}

static void test_truncated_everywhere(void **state)
{
	struct img im = make_elf(8);
	struct boot_input in = {.nr_cpus = 1};
	struct boot_regs regs;
	char err[256];
	size_t n;

	for (n = 0; n < im.size; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		int rc;

		memcpy(copy, im.buf, n);
		in.kernel = copy;
		in.kernel_size = n;
		err[0] = 0;
		rc = bootimg_load(&(struct boot_ram){.lo_size = RAM_SIZE}, &in, &regs, err,
				  sizeof(err));
		if (rc != -ENOEXEC)
			fail_msg("prefix of %zu bytes: %d (%s)", n, rc, err);
		assert_true(strlen(err) > 0);
		free(copy);
	}
	free(im.buf);
}

/* ---- Debian's vmlinux, out of its bzImage ---- */

/* Decompresses the bzImage's XZ payload with xz(1). NULL (and a reason) if it cannot. */
static uint8_t *extract_vmlinux(const uint8_t *k, size_t size, size_t *out_size, char *why,
				size_t whylen)
{
	struct boot_bzimage_info bz;
	char tmp[] = "/tmp/uvm-test-payload-XXXXXX", cmd[128];
	uint8_t *out = NULL;
	size_t cap = 0, len = 0, n;
	FILE *p;
	int fd;

	if (boot_bzimage_parse(k, size, &bz, why, whylen))
		return NULL;
	if (bz.payload_length < 6 || memcmp(k + bz.pm_offset + bz.payload_offset,
					    "\xfd"
					    "7zXZ\0",
					    6) != 0) {
		snprintf(why, whylen, "payload is not XZ-compressed");
		return NULL;
	}
	fd = mkstemp(tmp);
	if (fd < 0 || write(fd, k + bz.pm_offset + bz.payload_offset, bz.payload_length) !=
			  (ssize_t)bz.payload_length) {
		snprintf(why, whylen, "cannot write %s", tmp);
		goto out;
	}
	/* --single-stream: the payload is followed by the decompressed size. */
	snprintf(cmd, sizeof(cmd), "xz -dc --single-stream < %s 2>/dev/null", tmp);
	p = popen(cmd, "r");
	if (!p) {
		snprintf(why, whylen, "cannot run xz");
		goto out;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 64 << 20;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		n = fread(out + len, 1, cap - len, p);
		if (!n)
			break;
		len += n;
	}
	if (pclose(p) != 0 || len == 0) {
		snprintf(why, whylen, "xz -dc failed (is xz-utils installed?)");
		free(out);
		out = NULL;
	}
	*out_size = len;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return out;
}

static void test_debian_vmlinux(void **state)
{
	const char *path = getenv("UVM_TEST_KERNEL");
	struct boot_ram ram = {.lo_size = BOOTIMG_RAM_SIZE};
	struct boot_input in;
	struct boot_regs regs;
	char err[256] = "", why[256] = "";
	uint8_t initrd[4096] = {7};
	uint8_t *k, *elf;
	size_t size, elf_size = 0;
	uint32_t entry = 0;
	FILE *f;
	long n;

	if (!path || !*path)
		path = "/tmp/k/root/boot/vmlinuz-6.1.0-56-amd64";
	f = fopen(path, "rb");
	if (!f) {
		printf("SKIP test_debian_vmlinux: no kernel at %s (set UVM_TEST_KERNEL)\n", path);
		skip();
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	size = (size_t)n;
	k = malloc(size);
	assert_non_null(k);
	assert_int_equal(fread(k, 1, size, f), size);
	fclose(f);
	elf = extract_vmlinux(k, size, &elf_size, why, sizeof(why));
	free(k);
	if (!elf) {
		printf("SKIP test_debian_vmlinux: %s\n", why);
		skip();
	}
	assert_int_equal(boot_detect(elf, elf_size), BOOT_FORMAT_ELF);
	assert_int_equal(boot_elf_pvh_entry(elf, elf_size, &entry, err, sizeof(err)), 0);
	printf("%s: vmlinux %zu bytes, PVH entry 0x%x\n", path, elf_size, entry);
	assert_true(entry >= 0x1000000 && entry < 0x10000000);

	in = (struct boot_input){.kernel = elf,
				 .kernel_size = elf_size,
				 .initrd = initrd,
				 .initrd_size = sizeof(initrd),
				 .cmdline = "console=ttyS0",
				 .nr_cpus = 2};
	assert_int_equal(bootimg_load(&ram, &in, &regs, err, sizeof(err)), 0);
	assert_int_equal(regs.mode, BOOT_MODE_PROT32);
	assert_int_equal(regs.rip, entry);
	assert_int_equal(bootimg_get32(bootimg_ram + BOOT_ADDR_PVH_INFO), 0x336ec578);

	/* Too small for it. */
	ram.lo_size = 16 * MiB;
	assert_int_equal(bootimg_load(&ram, &in, &regs, err, sizeof(err)), -E2BIG);
	printf("16 MiB: %s\n", err);
	free(elf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pvh_entry_note), cmocka_unit_test(test_load),
	    cmocka_unit_test(test_initrd_limits),  cmocka_unit_test(test_no_pvh_note),
	    cmocka_unit_test(test_bad_notes),	   cmocka_unit_test(test_bad_ehdr),
	    cmocka_unit_test(test_bad_phdrs),	   cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_debian_vmlinux),
	};

	return cmocka_run_group_tests(tests, bootimg_ram_setup, bootimg_ram_teardown);
}
