/*
 * Format dispatch and the pieces every loader shares: argument checks, the
 * boot GDT, the command line and initrd placement.
 */
#include <errno.h>
#include <stdio.h>

#include "boot/boot_priv.h"

int boot_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

enum boot_format boot_detect(const uint8_t *kernel, size_t size)
{
	if (!kernel)
		return BOOT_FORMAT_UNKNOWN;
	/* The bzImage's setup header magic sits at 0x202, after the boot sector. */
	if (size >= 0x206 && memcmp(kernel + 0x202, "HdrS", 4) == 0)
		return BOOT_FORMAT_BZIMAGE;
	if (size >= 4 && memcmp(kernel, "\177ELF", 4) == 0)
		return BOOT_FORMAT_ELF;
	return BOOT_FORMAT_UNKNOWN;
}

void boot_write_gdt(struct boot_plan *plan, uint64_t code_desc, struct boot_regs *regs)
{
	/* Below 1 MiB, so always in the plan's low buffer. */
	uint8_t *gdt = boot_low(plan, BOOT_ADDR_GDT, BOOT_GDT_ENTRIES * 8);

	boot_put64(gdt + 0, 0);
	boot_put64(gdt + 8, 0);
	boot_put64(gdt + 16, code_desc);
	boot_put64(gdt + 24, BOOT_GDT_DATA);
	regs->gdt_base = BOOT_ADDR_GDT;
	regs->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	regs->code_sel = 0x10;
	regs->data_sel = 0x18;
}

int boot_write_cmdline(struct boot_plan *plan, const char *cmdline, size_t limit, char *err,
		       size_t errlen)
{
	size_t len;
	uint8_t *dst;

	if (!cmdline)
		cmdline = "";
	if (limit > BOOT_CMDLINE_MAX)
		limit = BOOT_CMDLINE_MAX;
	/* strnlen: the caller's string may be huge, never scan past what we accept. */
	len = strnlen(cmdline, limit + 1);
	if (len > limit)
		return boot_fail(err, errlen, -E2BIG,
				 "command line is longer than the kernel's limit of %zu bytes",
				 limit);
	dst = boot_low(plan, BOOT_ADDR_CMDLINE, len + 1);
	memcpy(dst, cmdline, len);
	dst[len] = 0;
	return 0;
}

int boot_place_initrd(struct boot_plan *plan, const struct boot_input *in, uint64_t floor,
		      uint64_t top, uint64_t *addr, char *err, size_t errlen)
{
	uint64_t start;

	*addr = 0;
	if (!in->initrd_size)
		return 0;
	if (top > plan->ram.lo_size)
		top = plan->ram.lo_size;
	if (in->initrd_size > top || ((top - in->initrd_size) & ~0xfffULL) < floor)
		return boot_fail(err, errlen, -E2BIG,
				 "initrd of %zu bytes does not fit in guest RAM between the kernel "
				 "end 0x%llx and 0x%llx",
				 in->initrd_size, (unsigned long long)floor,
				 (unsigned long long)top);
	start = (top - in->initrd_size) & ~0xfffULL;
	*addr = start;
	return boot_add_seg(plan, start, in->initrd, in->initrd_size, 0);
}

int boot_load(struct boot_plan *plan, const struct boot_ram *ram, const struct boot_input *in,
	      char *err, size_t errlen)
{
	struct boot_regs *regs;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!plan || !ram || !in || !in->kernel)
		return boot_fail(err, errlen, -EINVAL, "boot_load: missing plan, RAM or input");
	if (ram->lo_size < BOOT_ADDR_HIMEM || ram->lo_size > (4ULL << 30))
		return boot_fail(err, errlen, -EINVAL,
				 "guest low RAM of 0x%llx bytes: need 1 MiB to 4 GiB",
				 (unsigned long long)ram->lo_size);
	if (in->initrd_size && !in->initrd)
		return boot_fail(err, errlen, -EINVAL, "initrd size %zu without initrd data",
				 in->initrd_size);
	if (in->nr_cpus < 1 || in->nr_cpus > BOOT_MAX_CPUS)
		return boot_fail(err, errlen, -EINVAL, "%d vCPUs: the MP table takes 1 to %d",
				 in->nr_cpus, BOOT_MAX_CPUS);
	boot_plan_reset(plan, ram);
	regs = &plan->regs;

	switch (boot_detect(in->kernel, in->kernel_size)) {
	case BOOT_FORMAT_BZIMAGE:
		rc = boot_bzimage_load(plan, in, regs, err, errlen);
		break;
	case BOOT_FORMAT_ELF:
		if (in->entry != BOOT_ENTRY_DEFAULT)
			return boot_fail(err, errlen, -EINVAL,
					 "the real-mode entry needs a bzImage, not an ELF vmlinux");
		rc = boot_elf_load(plan, in, regs, err, errlen);
		break;
	default:
		return boot_fail(err, errlen, -ENOEXEC,
				 "kernel image of %zu bytes is neither a bzImage (no \"HdrS\" at "
				 "0x202) nor an ELF file",
				 in->kernel_size);
	}
	if (rc < 0)
		return rc;
	rc = boot_mptable_write(plan, in->nr_cpus, err, errlen);
	if (rc >= 0 && in->acpi)
		rc = boot_acpi_write(plan, in->acpi, in->nr_cpus, err, errlen);
	return rc < 0 ? rc : 0;
}
