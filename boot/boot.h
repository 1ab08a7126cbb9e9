/*
 * Pure kernel loaders: parse a kernel image into a plan (struct boot_plan):
 * the boot structures built below 1 MiB, the guest ranges to fill and the
 * initial register state. boot/ never holds a pointer into guest memory: the
 * caller applies the plan through vmm/'s checked writes (boot_plan_apply) and
 * hands the registers to vCPU 0.
 */
#ifndef BOOT_BOOT_H
#define BOOT_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The guest's RAM layout as the loaders see it: sizes only. */
struct boot_ram {
	uint64_t lo_size; /* bytes of RAM from 0 up to the MMIO hole */
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
	const struct boot_acpi *acpi; /* NULL: no ACPI tables (the MP table only) */
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
	uint64_t cr3;	   /* LONG64 only */
	uint64_t gdt_base; /* PROT32/LONG64: GDT written into guest RAM */
	uint16_t gdt_limit;
	uint16_t code_sel, data_sel; /* selectors into that GDT */
	/*
	 * REAL16 only, per the boot protocol's "running the kernel" recipe:
	 * cs = real_cs (0x1020), ip = rip (0); ds = es = fs = gs = ss = real_ds
	 * (0x1000, the segment of the loaded boot sector + setup); sp = rsp
	 * (0xe000, heap_end, stack grows down below it). Segment bases are
	 * selector << 4, limits 0xffff. Interrupts off. Linux's setup code
	 * would then ask the BIOS for memory (int 15h e820) and video, and
	 * there is no BIOS: this entry is for the tests/kvm payloads, which
	 * make no BIOS calls; real kernels enter in 64-bit or PVH mode.
	 */
	uint16_t real_cs;
	uint16_t real_ds;
};

enum boot_format { BOOT_FORMAT_UNKNOWN, BOOT_FORMAT_BZIMAGE, BOOT_FORMAT_ELF };

enum boot_format boot_detect(const uint8_t *kernel, size_t size);

/* ---- the plan ---- */

#define BOOT_PAGE_SIZE 4096
#define BOOT_LOW_SIZE  0x100000 /* the plan builds guest [0, 1 MiB) itself */
#define BOOT_MAX_SEGS  72	/* up to 64 ELF segments, the initrd, a margin */

/* A guest range to fill: len bytes from src, then zero bytes of zeros. */
struct boot_seg {
	uint64_t gpa;
	const uint8_t *src;
	uint64_t len;
	uint64_t zero;
};

/*
 * What boot_load decided. low is guest [0, 1 MiB) as the loaders built it;
 * only the pages marked in low_used are written. segs point into the caller's
 * kernel and initrd buffers, which must live until the plan is applied.
 * About 1 MiB: allocate it.
 */
struct boot_plan {
	struct boot_ram ram;
	uint8_t low[BOOT_LOW_SIZE];
	uint8_t low_used[BOOT_LOW_SIZE / BOOT_PAGE_SIZE];
	struct boot_seg segs[BOOT_MAX_SEGS];
	int nr_segs;
	struct boot_regs regs;
};

/*
 * Loads in->kernel (bzImage or ELF with PVH note) and everything around it
 * into plan (reset first) for a guest with the RAM layout ram. On failure
 * returns -errno and writes a one-line reason into err (e.g. "bzImage boot
 * protocol 2.03 is older than 2.06"); the plan is then not to be applied.
 */
int boot_load(struct boot_plan *plan, const struct boot_ram *ram, const struct boot_input *in,
	      char *err, size_t errlen) __attribute__((warn_unused_result));

/* Writes len bytes at guest gpa (vmm/'s mem_write behind it); 0 or -errno. */
typedef int (*boot_write_fn)(void *opaque, uint64_t gpa, const void *src, uint64_t len);

/*
 * Writes the plan into guest memory through write: the used low pages (runs
 * of them in one call each), then every segment, its zeros from a zero page.
 * Returns 0 or the first error write returned.
 */
int boot_plan_apply(const struct boot_plan *plan, boot_write_fn write, void *opaque)
    __attribute__((warn_unused_result));

/* Empties plan for a guest with the RAM layout ram. */
void boot_plan_reset(struct boot_plan *plan, const struct boot_ram *ram);

/* Protocol limit on the command line length (bytes, without the NUL). */
#define BOOT_CMDLINE_MAX 2047

/*
 * Low memory written by boot_load (guest physical addresses; docs/boot.md has
 * the picture). Everything below 1 MiB; kernels and initrds live above.
 */
#define BOOT_ADDR_GDT	     0x500  /* 4 entries: null, null, code 0x10, data 0x18 */
#define BOOT_ADDR_PVH_INFO   0x6000 /* hvm_start_info; modlist at +0x40, memmap at +0x80 */
#define BOOT_ADDR_ZERO_PAGE  0x7000 /* struct boot_params (64-bit entry) */
#define BOOT_ADDR_STACK_TOP  0x8ff0 /* initial rsp for PROT32/LONG64, page 0x8000 */
#define BOOT_ADDR_PML4	     0x9000 /* identity map of 0-4 GiB: PML4, PDPT, 4 PDs */
#define BOOT_ADDR_PDPT	     0xa000
#define BOOT_ADDR_PD	     0xb000  /* 4 pages, up to 0xefff */
#define BOOT_ADDR_REAL_SETUP 0x10000 /* REAL16: boot sector + setup, segment 0x1000 */
#define BOOT_ADDR_CMDLINE    0x20000
#define BOOT_ADDR_EBDA	     0x9fc00  /* e820 reserves 0x9fc00-0xfffff */
#define BOOT_ADDR_ACPI	     0xe0000  /* RSDP, then the ACPI tables (12 KiB at most) */
#define BOOT_ADDR_MPTABLE    0xf0000  /* MP floating pointer, config table at +0x10 */
#define BOOT_ADDR_HIMEM	     0x100000 /* 1 MiB: lowest kernel/initrd address */

/* REAL16 register values (see struct boot_regs). */
#define BOOT_REAL_CS	   0x1020
#define BOOT_REAL_DS	   0x1000
#define BOOT_REAL_HEAP_END 0xe000 /* sp, and heap_end_ptr + 0x200 */

/* ---- e820 ---- */

#define BOOT_E820_RAM	   1
#define BOOT_E820_RESERVED 2
#define BOOT_E820_MAX	   8 /* boot_e820_build never produces more */

/* Same layout as the zero page's e820 table. */
struct boot_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/*
 * The guest memory map: RAM [0, 0x9fc00), reserved [0x9fc00, 1 MiB) (EBDA,
 * VGA hole, BIOS area with the MP table), RAM [1 MiB, lo_size), RAM
 * [4 GiB, 4 GiB + hi_size). Returns the number of entries, -EINVAL if
 * lo_size is below 1 MiB or above 4 GiB, -E2BIG if max is too small.
 */
int boot_e820_build(struct boot_e820_entry *tab, int max, const struct boot_ram *ram);

/* ---- MP table ---- */

/* APIC ids are 8 bits, 0xff is broadcast and the IOAPIC takes id nr_cpus. */
#define BOOT_MAX_CPUS	      254
#define BOOT_MPTABLE_MAX_SIZE (16 + 44 + BOOT_MAX_CPUS * 20 + 21 * 8)

/*
 * Writes an Intel MP 1.4 floating pointer at BOOT_ADDR_MPTABLE and its
 * configuration table right after: nr_cpus processors (APIC id = index, CPU 0
 * is the BSP), buses PCI 0 and ISA 1, one IOAPIC (id nr_cpus, 0xfec00000),
 * ISA IRQs 0-15 on IOAPIC pins 0-15 (identity, IRQ 0 included: this matches
 * KVM's default GSI routing, which vmm/ keeps), ExtINT on LINT0 and NMI on
 * LINT1. At most BOOT_MPTABLE_MAX_SIZE bytes. Returns the bytes written
 * (floating pointer included) or -errno.
 */
int boot_mptable_write(struct boot_plan *plan, int nr_cpus, char *err, size_t errlen);

/* ---- ACPI ---- */

/* What the tables describe that the VMM decides. */
struct boot_acpi {
	uint16_t pm_base;    /* PM1a event block (4 bytes), control at +4 (2), timer at +8 (4) */
	uint8_t sci_irq;     /* ISA IRQ of the SCI (level, active high) */
	uint8_t s5_type;     /* SLP_TYP value that means S5 (power off) */
	uint16_t reset_port; /* FADT reset register (I/O port) and the value to write */
	uint8_t reset_value;
	uint64_t mmio32_start, mmio32_end; /* PCI root windows, [start, end) */
	uint64_t mmio64_start, mmio64_end; /* empty: no 64-bit window */
};

/*
 * Writes RSDP (rev 2) at BOOT_ADDR_ACPI and XSDT, FACS, FADT, MADT and DSDT
 * after it: nr_cpus local APICs (uid = APIC id = index), the IOAPIC (id
 * nr_cpus, 0xfec00000), overrides IRQ 0 -> GSI 0 and SCI level/high, LINT1
 * NMI; DSDT: \_S5, \_SB.PCI0 (bus 0-255, I/O, the two windows), \_SB.COM1.
 */
int boot_acpi_write(struct boot_plan *plan, const struct boot_acpi *acpi, int nr_cpus, char *err,
		    size_t errlen) __attribute__((warn_unused_result));
/*
 * The same tables for firmware that loads them from fw_cfg (OVMF): the files
 * BOOT_ACPI_FILE_RSDP and BOOT_ACPI_FILE_TABLES, whose pointers are offsets
 * into the tables file and whose checksums are 0, and the command file
 * BOOT_ACPI_FILE_LOADER that has the firmware place them, relocate the
 * pointers and fill the checksums (QEMU's linker/loader format).
 */
#define BOOT_ACPI_FILE_RSDP    "etc/acpi/rsdp"
#define BOOT_ACPI_FILE_TABLES  "etc/acpi/tables"
#define BOOT_ACPI_FILE_LOADER  "etc/table-loader"
#define BOOT_ACPI_LOADER_ENTRY 128
#define BOOT_ACPI_LOADER_CMDS  16

struct boot_acpi_blobs {
	uint8_t rsdp[36];
	uint8_t tables[0x3000];
	uint8_t loader[BOOT_ACPI_LOADER_CMDS * BOOT_ACPI_LOADER_ENTRY];
	size_t loader_len; /* bytes of loader used */
};

int boot_acpi_blobs_build(struct boot_acpi_blobs *b, const struct boot_acpi *acpi, int nr_cpus,
			  char *err, size_t errlen) __attribute__((warn_unused_result));

/* The value that makes the bytes sum to 0 (ACPI table and RSDP checksums). */
uint8_t boot_acpi_checksum(const uint8_t *p, size_t len);
size_t boot_acpi_madt_size(int nr_cpus);

/* ---- UEFI boot (boot/uefi.c) ---- */

/*
 * Where a bzImage is cut for fw_cfg (FW_CFG_SETUP_DATA gets the first
 * *setup_size bytes, FW_CFG_KERNEL_DATA the rest): its boot sector and setup.
 * The image must be a valid bzImage with an EFI stub (PE header), which OVMF
 * starts. -ENOEXEC with a reason otherwise.
 */
int boot_uefi_split(const uint8_t *kernel, size_t size, size_t *setup_size, char *err,
		    size_t errlen) __attribute__((warn_unused_result));
/* fw_cfg's etc/e820: RAM [0, lo_size) and [4 GiB, + hi_size). Entries or -EINVAL/-E2BIG. */
int boot_uefi_e820(struct boot_e820_entry *tab, int max, const struct boot_ram *ram);

/* ---- bzImage ---- */

struct boot_bzimage_info {
	uint16_t version; /* boot protocol, 0x020f = 2.15 */
	uint8_t loadflags;
	uint16_t xloadflags; /* 0 before 2.12 */
	bool relocatable;
	uint32_t setup_size;   /* boot sector + setup sectors, bytes */
	uint64_t pm_offset;    /* protected-mode kernel: file offset ... */
	uint64_t pm_size;      /* ... and size */
	uint32_t hdr_end;      /* end of the setup header (file offset) */
	uint64_t pref_address; /* 1 MiB before 2.10 */
	uint32_t init_size;    /* 0 before 2.10 */
	uint32_t kernel_alignment;
	uint32_t cmdline_size;	  /* without the NUL */
	uint32_t initrd_addr_max; /* highest byte address the initrd may use */
	uint32_t payload_offset;  /* compressed payload, from pm_offset (0 before 2.08) */
	uint32_t payload_length;
};

/* Checks and decodes a bzImage setup header. -ENOEXEC with a reason on bad input. */
int boot_bzimage_parse(const uint8_t *kernel, size_t size, struct boot_bzimage_info *info,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- ELF vmlinux (PVH) ---- */

/* Finds the PVH entry (Xen note XEN_ELFNOTE_PHYS32_ENTRY) of a 64-bit x86 ELF. */
int boot_elf_pvh_entry(const uint8_t *kernel, size_t size, uint32_t *entry, char *err,
		       size_t errlen) __attribute__((warn_unused_result));

#endif
