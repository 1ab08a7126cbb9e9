/*
 * Pure kernel loaders: parse a kernel image and write it, the boot structures
 * and the initial register state into a guest RAM buffer. No ioctls here;
 * vmm/ applies the resulting struct boot_regs to vCPU 0.
 */
#ifndef BOOT_BOOT_H
#define BOOT_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The guest's RAM as the loaders see it: low RAM [0, lo_size) is writable at lo. */
struct boot_ram {
	uint8_t *lo;	  /* host address of guest physical 0 */
	uint64_t lo_size; /* bytes of RAM below the MMIO hole */
	uint64_t hi_size; /* bytes of RAM at 4 GiB and above (only reported in e820) */
};

enum boot_entry {
	BOOT_ENTRY_DEFAULT, /* bzImage: 64-bit; ELF: PVH 32-bit */
	BOOT_ENTRY_REAL16,  /* bzImage: 16-bit real-mode entry at setup + 0x200 */
};

struct boot_input {
	const uint8_t *kernel;
	size_t kernel_size;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_size;
	const char *cmdline; /* may be NULL */
	int nr_cpus;	     /* for the MP table */
	enum boot_entry entry;
};

enum boot_mode {
	BOOT_MODE_REAL16, /* real mode: cs = real_cs (base real_cs << 4), ip = rip */
	BOOT_MODE_PROT32, /* flat 32-bit protected mode, paging off (PVH) */
	BOOT_MODE_LONG64, /* 64-bit long mode on identity page tables at cr3 */
};

/* Initial state of the boot vCPU. Segment descriptors are flat; vmm/ builds them. */
struct boot_regs {
	enum boot_mode mode;
	uint64_t rip, rsp, rsi, rbx;
	uint64_t cr3;		     /* LONG64 only */
	uint64_t gdt_base;	     /* PROT32/LONG64: GDT written into guest RAM */
	uint16_t gdt_limit;
	uint16_t code_sel, data_sel; /* selectors into that GDT */
	/*
	 * REAL16 only, per the boot protocol's "running the kernel" recipe:
	 * cs = real_cs (0x1020), ip = rip (0); ds = es = fs = gs = ss = real_ds
	 * (0x1000, the segment of the loaded boot sector + setup); sp = rsp
	 * (0xe000, heap_end, stack grows down below it). Segment bases are
	 * selector << 4, limits 0xffff. Interrupts off. The setup code then asks
	 * the BIOS for memory (int 15h e820) and video: vmm/ must answer those.
	 */
	uint16_t real_cs;
	uint16_t real_ds;
};

enum boot_format { BOOT_FORMAT_UNKNOWN, BOOT_FORMAT_BZIMAGE, BOOT_FORMAT_ELF };

enum boot_format boot_detect(const uint8_t *kernel, size_t size);

/*
 * Loads in->kernel (bzImage or ELF with PVH note) and everything around it
 * into ram; fills regs. On failure returns -errno and writes a one-line
 * reason into err (e.g. "bzImage boot protocol 2.03 is older than 2.06").
 */
int boot_load(const struct boot_ram *ram, const struct boot_input *in, struct boot_regs *regs,
	      char *err, size_t errlen) __attribute__((warn_unused_result));

/* Protocol limit on the command line length (bytes, without the NUL). */
#define BOOT_CMDLINE_MAX 2047

#endif
