/*
 * bzImage loader, Linux x86 boot protocol 2.06 and later. Two entries:
 * the 64-bit one (zero page + identity page tables, jump to load + 0x200)
 * and the 16-bit one (boot sector + setup at 0x10000, cs:ip = 0x1020:0).
 */
#include <errno.h>

#include "boot/boot_priv.h"

/* Setup header fields, as offsets into the file and into struct boot_params. */
#define HDR_SETUP_SECTS	     0x1f1
#define HDR_SYSSIZE	     0x1f4
#define HDR_BOOT_FLAG	     0x1fe
#define HDR_JUMP	     0x200
#define HDR_MAGIC	     0x202
#define HDR_VERSION	     0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS	     0x211
#define HDR_CODE32_START     0x214
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE	     0x234
#define HDR_XLOADFLAGS	     0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_PAYLOAD_OFFSET   0x248
#define HDR_PAYLOAD_LENGTH   0x24c
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE	     0x260
#define BP_E820_ENTRIES	     0x1e8
#define BP_ACPI_RSDP_ADDR    0x070 /* boot_params.acpi_rsdp_addr (protocol 2.14+) */
#define BP_HDR_LIMIT	     0x290 /* setup header area ends here in boot_params */
#define BP_E820_TABLE	     0x2d0
#define BP_E820_MAX	     128
#define BP_SIZE		     4096

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01

#define LOADER_UNDEFINED 0xff	/* type_of_loader for loaders without an assigned id */
#define SETUP_MAX	 0x8000 /* real-mode code below the heap/stack, per the protocol */

static const char *const sizes_hint = "(boot sector + setup + protected-mode kernel)";

int boot_bzimage_parse(const uint8_t *k, size_t size, struct boot_bzimage_info *bz, char *err,
		       size_t errlen)
{
	unsigned int sects;
	uint64_t syssize;

	memset(bz, 0, sizeof(*bz));
	if (!k || size < HDR_VERSION + 2)
		return boot_fail(err, errlen, -ENOEXEC,
				 "bzImage truncated: %zu bytes, the setup header needs %d", size,
				 HDR_VERSION + 2);
	if (boot_get16(k + HDR_BOOT_FLAG) != 0xaa55)
		return boot_fail(err, errlen, -ENOEXEC, "bzImage boot_flag is 0x%04x, not 0xaa55",
				 boot_get16(k + HDR_BOOT_FLAG));
	if (memcmp(k + HDR_MAGIC, "HdrS", 4) != 0)
		return boot_fail(err, errlen, -ENOEXEC, "no bzImage setup header (\"HdrS\" magic)");
	bz->version = boot_get16(k + HDR_VERSION);
	if (bz->version < 0x0206)
		return boot_fail(err, errlen, -ENOEXEC,
				 "bzImage boot protocol %u.%02u is older than 2.06",
				 bz->version >> 8, bz->version & 0xff);

	/* Historical quirk: 0 setup sectors means 4. */
	sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
	bz->setup_size = (sects + 1) * 512;
	if (size <= bz->setup_size)
		return boot_fail(err, errlen, -ENOEXEC,
				 "bzImage truncated: %zu bytes, setup alone is %u %s", size,
				 bz->setup_size, sizes_hint);
	bz->pm_offset = bz->setup_size;
	bz->pm_size = size - bz->setup_size;
	syssize = (uint64_t)boot_get32(k + HDR_SYSSIZE) * 16;
	if (syssize > bz->pm_size)
		return boot_fail(
		    err, errlen, -ENOEXEC,
		    "bzImage truncated: protected-mode kernel is %llu bytes, the header "
		    "says %llu",
		    (unsigned long long)bz->pm_size, (unsigned long long)syssize);

	bz->hdr_end = HDR_MAGIC + k[HDR_JUMP + 1];
	if (bz->hdr_end > BP_HDR_LIMIT)
		bz->hdr_end = BP_HDR_LIMIT;
	bz->loadflags = k[HDR_LOADFLAGS];
	if (!(bz->loadflags & LOADED_HIGH))
		return boot_fail(err, errlen, -ENOEXEC,
				 "zImage (kernel not loaded high) is not supported");
	bz->initrd_addr_max = boot_get32(k + HDR_INITRD_ADDR_MAX);
	bz->kernel_alignment = boot_get32(k + HDR_KERNEL_ALIGNMENT);
	bz->relocatable = k[HDR_RELOCATABLE] != 0;
	bz->cmdline_size = boot_get32(k + HDR_CMDLINE_SIZE);
	if (bz->version >= 0x0208) {
		uint64_t end;

		bz->payload_offset = boot_get32(k + HDR_PAYLOAD_OFFSET);
		bz->payload_length = boot_get32(k + HDR_PAYLOAD_LENGTH);
		end = (uint64_t)bz->payload_offset + bz->payload_length;
		if (end > bz->pm_size)
			return boot_fail(err, errlen, -ENOEXEC,
					 "bzImage payload [0x%x, +0x%x) runs past the %llu-byte "
					 "protected-mode kernel",
					 bz->payload_offset, bz->payload_length,
					 (unsigned long long)bz->pm_size);
	}
	bz->pref_address = BOOT_ADDR_HIMEM;
	if (bz->version >= 0x020a) {
		bz->pref_address = boot_get64(k + HDR_PREF_ADDRESS);
		bz->init_size = boot_get32(k + HDR_INIT_SIZE);
		if (bz->pref_address < BOOT_ADDR_HIMEM || bz->pref_address >= (4ULL << 30))
			return boot_fail(err, errlen, -ENOEXEC,
					 "bzImage pref_address 0x%llx is outside [1 MiB, 4 GiB)",
					 (unsigned long long)bz->pref_address);
	}
	if (bz->version >= 0x020c)
		bz->xloadflags = boot_get16(k + HDR_XLOADFLAGS);
	return 0;
}

/* Writes the e820 table into a boot_params-layout buffer. */
static int bz_write_e820(struct boot_plan *plan, uint8_t *bp)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = boot_e820_build(tab, BOOT_E820_MAX, &plan->ram);

	if (n < 0)
		return n;
	_Static_assert(BOOT_E820_MAX <= BP_E820_MAX, "zero page e820 table too small");
	memcpy(bp + BP_E820_TABLE, tab, (size_t)n * sizeof(tab[0]));
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	return 0;
}

/* Identity map of [0, 4 GiB) with 2 MiB pages: PML4 -> one PDPT -> four PDs. */
static void bz_write_page_tables(struct boot_plan *plan)
{
	uint8_t *pml4 = boot_low(plan, BOOT_ADDR_PML4, 4096);
	uint8_t *pdpt = boot_low(plan, BOOT_ADDR_PDPT, 4096);
	uint8_t *pd = boot_low(plan, BOOT_ADDR_PD, 4 * 4096);
	int i;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	boot_put64(pml4, BOOT_ADDR_PDPT | 0x3); /* present, writable */
	for (i = 0; i < 4; i++)
		boot_put64(pdpt + i * 8, (BOOT_ADDR_PD + i * 4096) | 0x3);
	for (i = 0; i < 4 * 512; i++)
		boot_put64(pd + i * 8, ((uint64_t)i << 21) | 0x83); /* present, writable, 2 MiB */
}

/* Header fields the loader owns, in the zero page or in the loaded setup copy. */
static void bz_fill_header(uint8_t *bp, uint64_t initrd, size_t initrd_size)
{
	bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	boot_put16(bp + HDR_HEAP_END_PTR, BOOT_REAL_HEAP_END - 0x200);
	boot_put32(bp + HDR_CMD_LINE_PTR, BOOT_ADDR_CMDLINE);
	boot_put32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd);
	boot_put32(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_size);
}

int boot_bzimage_load(struct boot_plan *plan, const struct boot_input *in, struct boot_regs *regs,
		      char *err, size_t errlen)
{
	struct boot_bzimage_info bz;
	const uint8_t *k = in->kernel;
	bool real16 = in->entry == BOOT_ENTRY_REAL16;
	uint64_t load, kernel_end, run_end, initrd = 0, top;
	uint8_t *bp;
	int rc;

	rc = boot_bzimage_parse(k, in->kernel_size, &bz, err, errlen);
	if (rc)
		return rc;
	if (!real16 && !(bz.xloadflags & XLF_KERNEL_64))
		return boot_fail(err, errlen, -ENOEXEC,
				 "bzImage (protocol %u.%02u) has no 64-bit entry point "
				 "(XLF_KERNEL_64)",
				 bz.version >> 8, bz.version & 0xff);
	if (real16 && bz.setup_size > SETUP_MAX)
		return boot_fail(err, errlen, -ENOEXEC,
				 "bzImage setup of %u bytes exceeds the %u bytes real mode allows",
				 bz.setup_size, SETUP_MAX);

	/*
	 * A relocatable kernel runs at pref_address or above whatever address it
	 * is loaded at (and needs init_size bytes there), so load it there
	 * directly; otherwise at 1 MiB, and it still decompresses to
	 * pref_address. Either way RAM must hold [pref_address, + init_size).
	 */
	load = (!real16 && bz.relocatable) ? bz.pref_address : BOOT_ADDR_HIMEM;
	if (__builtin_add_overflow(load, bz.pm_size, &kernel_end))
		return boot_fail(err, errlen, -E2BIG, "bzImage kernel size overflows");
	run_end = bz.pref_address + bz.init_size;
	if (run_end > kernel_end)
		kernel_end = run_end;
	if (kernel_end > plan->ram.lo_size)
		return boot_fail(err, errlen, -E2BIG,
				 "kernel needs guest RAM up to 0x%llx (loaded at 0x%llx, init_size "
				 "0x%x), low RAM ends at 0x%llx",
				 (unsigned long long)kernel_end, (unsigned long long)load,
				 bz.init_size, (unsigned long long)plan->ram.lo_size);

	rc = boot_write_cmdline(plan, in->cmdline, bz.cmdline_size, err, errlen);
	if (rc)
		return rc;
	top = (uint64_t)bz.initrd_addr_max + 1;
	rc = boot_place_initrd(plan, in, kernel_end, top, &initrd, err, errlen);
	if (rc)
		return rc;
	rc = boot_add_seg(plan, load, k + bz.pm_offset, bz.pm_size, 0);
	if (rc)
		return boot_fail(err, errlen, rc, "no room for the kernel segment");

	if (real16) {
		/* The setup code reads its header, and our answers, from its own copy. */
		bp = boot_low(plan, BOOT_ADDR_REAL_SETUP, bz.setup_size);
		memcpy(bp, k, bz.setup_size);
		bz_fill_header(bp, initrd, in->initrd_size);
		boot_put32(bp + HDR_CODE32_START, (uint32_t)load);
		regs->mode = BOOT_MODE_REAL16;
		regs->real_cs = BOOT_REAL_CS;
		regs->real_ds = BOOT_REAL_DS;
		regs->rip = 0;
		regs->rsp = BOOT_REAL_HEAP_END;
		return 0;
	}

	bp = boot_low(plan, BOOT_ADDR_ZERO_PAGE, BP_SIZE);
	memset(bp, 0, BP_SIZE);
	memcpy(bp + HDR_SETUP_SECTS, k + HDR_SETUP_SECTS, bz.hdr_end - HDR_SETUP_SECTS);
	bz_fill_header(bp, initrd, in->initrd_size);
	if (in->acpi) /* boot_load writes the tables after this */
		boot_put64(bp + BP_ACPI_RSDP_ADDR, BOOT_ADDR_ACPI);
	rc = bz_write_e820(plan, bp);
	if (rc)
		return boot_fail(err, errlen, rc, "cannot build the e820 map");
	bz_write_page_tables(plan);
	boot_write_gdt(plan, BOOT_GDT_CODE64, regs);
	regs->mode = BOOT_MODE_LONG64;
	regs->cr3 = BOOT_ADDR_PML4;
	regs->rip = load + 0x200; /* startup_64 */
	regs->rsi = BOOT_ADDR_ZERO_PAGE;
	regs->rsp = BOOT_ADDR_STACK_TOP;
	return 0;
}
