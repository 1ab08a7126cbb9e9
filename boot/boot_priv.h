/*
 * Private helpers shared by the loaders in boot/: the plan's low-memory buffer
 * and segments, little-endian field access, the error reporter and the
 * pieces both entry paths build (GDT, command line, initrd, MP table).
 */
#ifndef BOOT_BOOT_PRIV_H
#define BOOT_BOOT_PRIV_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "boot/boot.h"

/* x86 descriptors for the boot GDT (flat 4 GiB, present, DPL 0). */
#define BOOT_GDT_CODE64	 0x00af9b000000ffffULL /* L=1, execute/read */
#define BOOT_GDT_CODE32	 0x00cf9b000000ffffULL /* D=1, execute/read */
#define BOOT_GDT_DATA	 0x00cf93000000ffffULL /* read/write */
#define BOOT_GDT_ENTRIES 4		       /* null, null, code 0x10, data 0x18 */

/* Writes "fmt..." into err (if any) and returns rc, so callers can `return boot_fail(...)`. */
int boot_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The plan's buffer for guest [gpa, gpa + len), which must lie below 1 MiB
 * (NULL otherwise); its pages are marked to be written when the plan is
 * applied. A page reads as zeros the first time it is handed out after a
 * reset (it is cleared then); later calls see what earlier ones wrote.
 */
uint8_t *boot_low(struct boot_plan *plan, uint64_t gpa, uint64_t len);

/*
 * Records a copy of len bytes from src to guest gpa, then zero bytes of
 * zeros; the range must lie inside low RAM. -E2BIG if it does not or the
 * plan is full.
 */
int boot_add_seg(struct boot_plan *plan, uint64_t gpa, const uint8_t *src, uint64_t len,
		 uint64_t zero);

static inline uint16_t boot_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t boot_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t boot_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void boot_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void boot_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void boot_put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Writes the 4-entry GDT at BOOT_ADDR_GDT with the given code descriptor; fills regs. */
void boot_write_gdt(struct boot_plan *plan, uint64_t code_desc, struct boot_regs *regs);

/* Copies the command line (NULL = empty) to BOOT_ADDR_CMDLINE; limit excludes the NUL. */
int boot_write_cmdline(struct boot_plan *plan, const char *cmdline, size_t limit, char *err,
		       size_t errlen);

/*
 * Places the initrd page-aligned as high as possible below top and not below
 * floor (the end of the kernel); *addr receives its guest address. A missing
 * initrd (size 0) gives *addr = 0.
 */
int boot_place_initrd(struct boot_plan *plan, const struct boot_input *in, uint64_t floor,
		      uint64_t top, uint64_t *addr, char *err, size_t errlen);

int boot_bzimage_load(struct boot_plan *plan, const struct boot_input *in, struct boot_regs *regs,
		      char *err, size_t errlen);
int boot_elf_load(struct boot_plan *plan, const struct boot_input *in, struct boot_regs *regs,
		  char *err, size_t errlen);

#endif
