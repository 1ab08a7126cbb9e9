/*
 * Synthetic kernel images for the boot/ loader tests: the unit tests
 * (tests/unit/test_bzimage.c, test_elf.c) and the fuzz targets' templates
 * (tests/fuzz/fuzz_bzimage.c, fuzz_elf.c) are built with these, so a fix to
 * how a test image is laid out lands in all four.
 *
 * Header only (static inline): the unit and fuzz builds compile each test
 * file alone against the library objects, with no room for a shared object
 * of the tests' own. The cmocka fixtures are there only when cmocka.h was
 * included first: the fuzz targets include this file too.
 */
#ifndef TESTS_UNIT_BOOT_TEST_IMAGE_H
#define TESTS_UNIT_BOOT_TEST_IMAGE_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "boot/boot.h"
#include "vmm/mem.h"

/* ---- little-endian fields at any alignment ------------------------------------------- */

static inline void bootimg_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline void bootimg_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline void bootimg_put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline uint16_t bootimg_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t bootimg_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t bootimg_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* ---- applying a plan, as shim/machine.c does: through vmm/'s checked writes ---------- */

static inline int bootimg_write(void *opaque, uint64_t gpa, const void *src, uint64_t len)
{
	return mem_write(opaque, gpa, src, len);
}

/* Writes plan into buf, guest RAM [0, size); 0 or -errno. */
static inline int bootimg_apply(const struct boot_plan *plan, uint8_t *buf, uint64_t size)
{
	struct guest_mem *m;
	int rc = mem_wrap(&m, buf, size);

	if (rc)
		return rc;
	rc = boot_plan_apply(plan, bootimg_write, m);
	mem_destroy(m);
	return rc;
}

/* ---- fuzz inputs over a template ------------------------------------------------------ */

/* img = tmpl, then data written over it from off on, as much as fits. */
static inline void bootimg_overlay(uint8_t *img, const uint8_t *tmpl, size_t len, size_t off,
				   const uint8_t *data, size_t size)
{
	memcpy(img, tmpl, len);
	if (off < len)
		memcpy(img + off, data, size < len - off ? size : len - off);
}

/* ---- the unit tests' guest RAM (cmocka group fixtures) ----------------------------------- */

#ifdef cmocka_unit_test
#define BOOTIMG_RAM_SIZE (256ULL << 20)

/* Mapped once per group, anonymous: pages a load never touches cost nothing. */
static uint8_t *bootimg_ram;
static struct boot_plan *bootimg_plan;

__attribute__((unused)) static int bootimg_ram_setup(void **state)
{
	void *p = mmap(NULL, BOOTIMG_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	(void)state;
	bootimg_ram = p == MAP_FAILED ? NULL : p;
	bootimg_plan = malloc(sizeof(*bootimg_plan));
	return bootimg_ram && bootimg_plan ? 0 : -1;
}

__attribute__((unused)) static int bootimg_ram_teardown(void **state)
{
	(void)state;
	if (bootimg_ram)
		munmap(bootimg_ram, BOOTIMG_RAM_SIZE);
	bootimg_ram = NULL;
	free(bootimg_plan);
	bootimg_plan = NULL;
	return 0;
}

/*
 * boot_load into bootimg_plan, then, when it succeeds, the plan written into
 * bootimg_ram (which must hold it: a plan boot_load accepted always fits) and
 * its registers copied to regs.
 */
static inline int bootimg_load(const struct boot_ram *ram, const struct boot_input *in,
			       struct boot_regs *regs, char *err, size_t errlen)
{
	int rc = boot_load(bootimg_plan, ram, in, err, errlen);

	if (rc)
		return rc;
	assert_true(ram->lo_size <= BOOTIMG_RAM_SIZE);
	assert_int_equal(bootimg_apply(bootimg_plan, bootimg_ram, ram->lo_size), 0);
	if (regs)
		*regs = bootimg_plan->regs;
	return 0;
}

/* A load's error message must name what went wrong. */
static inline void bootimg_expect_err(const char *err, const char *what)
{
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err, what);
}
#endif

/* ---- bzImage -------------------------------------------------------------------------- */

/* Bytes before the protected-mode kernel: the boot sector and the setup sectors (0 means 4). */
static inline size_t bootimg_bz_setup_size(uint8_t setup_sects)
{
	return ((size_t)(setup_sects ? setup_sects : 4) + 1) * 512;
}

/*
 * Writes the setup header of a protocol-2.15 bzImage (as Debian's 6.1
 * kernels have it) into img, zeroing the rest of the header area first:
 * setup_sects as given (0 is legal, it means 4), pm_size bytes of kernel,
 * loaded high, relocatable, 64-bit entry, may go above 4 GiB, a payload of
 * 0x100 bytes at 0x10. img holds at least bootimg_bz_setup_size() bytes.
 */
static inline void bootimg_bz_header(uint8_t *img, uint8_t setup_sects, size_t pm_size,
				     uint64_t pref_address, uint32_t init_size)
{
	memset(img + 0x1f1, 0, 0x290 - 0x1f1);
	img[0x1f1] = setup_sects;
	bootimg_put32(img + 0x1f4, (uint32_t)(pm_size / 16)); /* syssize */
	bootimg_put16(img + 0x1fe, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* the jump over the header: it ends at 0x26c, as in 2.15 kernels */
	memcpy(img + 0x202, "HdrS", 4);
	bootimg_put16(img + 0x206, 0x020f);
	img[0x211] = 0x01;			/* LOADED_HIGH */
	bootimg_put32(img + 0x214, 0x100000);	/* code32_start */
	bootimg_put32(img + 0x22c, 0x7fffffff); /* initrd_addr_max */
	bootimg_put32(img + 0x230, 0x200000);	/* kernel_alignment */
	img[0x234] = 1;				/* relocatable */
	bootimg_put16(img + 0x236, 0x3);	/* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	bootimg_put32(img + 0x238, 0x7ff);	/* cmdline_size */
	bootimg_put32(img + 0x248, 0x10);	/* payload_offset */
	bootimg_put32(img + 0x24c, 0x100);	/* payload_length */
	bootimg_put64(img + 0x258, pref_address);
	bootimg_put32(img + 0x260, init_size);
}

/* ---- ELF vmlinux ---------------------------------------------------------------------- */

#define BOOTIMG_PHOFF 64 /* program headers right after the ELF header */

/* An x86-64 ET_EXEC header with phnum program headers at BOOTIMG_PHOFF. */
static inline void bootimg_elf_header(uint8_t *img, uint64_t entry, uint16_t phnum)
{
	Elf64_Ehdr eh = {.e_type = ET_EXEC,
			 .e_machine = EM_X86_64,
			 .e_version = EV_CURRENT,
			 .e_entry = entry,
			 .e_phoff = BOOTIMG_PHOFF,
			 .e_ehsize = sizeof(Elf64_Ehdr),
			 .e_phentsize = sizeof(Elf64_Phdr),
			 .e_phnum = phnum};

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	memcpy(img, &eh, sizeof(eh));
}

static inline void bootimg_elf_set_phdr(uint8_t *img, int i, const Elf64_Phdr *ph)
{
	memcpy(img + BOOTIMG_PHOFF + i * sizeof(*ph), ph, sizeof(*ph));
}

static inline Elf64_Phdr bootimg_elf_get_phdr(const uint8_t *img, int i)
{
	Elf64_Phdr ph;

	memcpy(&ph, img + BOOTIMG_PHOFF + i * sizeof(ph), sizeof(ph));
	return ph;
}

/* One note (header, name, desc, each padded to 4 bytes) at p; returns its size. */
static inline size_t bootimg_elf_add_note(uint8_t *p, const char *name, uint32_t type,
					  const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = {
	    .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz, .n_type = type};
	size_t off = sizeof(nh);

	memcpy(p, &nh, sizeof(nh));
	memcpy(p + off, name, nh.n_namesz);
	off += (nh.n_namesz + 3) & ~3u;
	memcpy(p + off, desc, descsz);
	off += (descsz + 3) & ~3u;
	return off;
}

/* The PVH entry note: Xen's type 18 (XEN_ELFNOTE_PHYS32_ENTRY). */
#define BOOTIMG_NOTE_PVH 18

#endif
