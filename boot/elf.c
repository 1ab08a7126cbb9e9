/*
 * ELF vmlinux loader with the PVH entry: the kernel's Xen note
 * XEN_ELFNOTE_PHYS32_ENTRY names a 32-bit entry that takes an
 * hvm_start_info in ebx, flat protected mode, paging off.
 */
#include <elf.h>
#include <errno.h>

#include "boot/boot_priv.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define ELF_MAX_PHDRS		 64 /* vmlinux has a handful; bounds the overlap check */

#define PVH_MAGIC	      0x336ec578
#define PVH_INFO_SIZE	      56
#define PVH_MODLIST_OFF	      0x40
#define PVH_MEMMAP_OFF	      0x80
#define PVH_MODLIST_SIZE      32
#define PVH_MEMMAP_ENTRY_SIZE 24

/* Validates the ELF and program headers; *phdrs points to them in the image. */
static int elf_check(const uint8_t *k, size_t size, const uint8_t **phdrs, int *nr, char *err,
		     size_t errlen)
{
	Elf64_Ehdr eh;
	uint64_t ph_end;

	if (size < sizeof(eh))
		return boot_fail(err, errlen, -ENOEXEC,
				 "ELF truncated: %zu bytes, header needs %zu", size, sizeof(eh));
	memcpy(&eh, k, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return boot_fail(err, errlen, -ENOEXEC, "not an ELF file");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return boot_fail(err, errlen, -ENOEXEC,
				 "ELF kernel is not 64-bit little-endian x86-64 (class %u, data "
				 "%u, machine %u)",
				 eh.e_ident[EI_CLASS], eh.e_ident[EI_DATA], eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return boot_fail(err, errlen, -ENOEXEC, "ELF kernel has type %u, not ET_EXEC",
				 eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS)
		return boot_fail(err, errlen, -ENOEXEC,
				 "ELF program headers: %u of %u bytes (want 1-%d of %zu)",
				 eh.e_phnum, eh.e_phentsize, ELF_MAX_PHDRS, sizeof(Elf64_Phdr));
	if (__builtin_add_overflow(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr),
				   &ph_end) ||
	    ph_end > size)
		return boot_fail(err, errlen, -ENOEXEC,
				 "ELF program headers at 0x%llx run past the %zu-byte file",
				 (unsigned long long)eh.e_phoff, size);
	/* A byte pointer: the image need not be aligned, headers are copied out. */
	*phdrs = k + eh.e_phoff;
	*nr = eh.e_phnum;
	return 0;
}

/* Searches one PT_NOTE segment for the PVH entry note. Returns 1 if found. */
static int elf_scan_notes(const uint8_t *k, size_t size, const Elf64_Phdr *ph, uint32_t *entry,
			  char *err, size_t errlen)
{
	uint64_t off = ph->p_offset, end, align = ph->p_align == 8 ? 8 : 4;

	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &end) || end > size)
		return boot_fail(err, errlen, -ENOEXEC,
				 "ELF note segment at 0x%llx runs past the file",
				 (unsigned long long)ph->p_offset);
	while (end - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name, desc, next;

		memcpy(&nh, k + off, sizeof(nh));
		name = off + sizeof(nh);
		/* 32-bit sizes into 64-bit offsets: the sums cannot overflow. */
		desc = name + ((nh.n_namesz + align - 1) & ~(align - 1));
		next = desc + ((nh.n_descsz + align - 1) & ~(align - 1));
		if (desc + nh.n_descsz > end)
			return boot_fail(err, errlen, -ENOEXEC,
					 "ELF note at 0x%llx runs past its segment",
					 (unsigned long long)off);
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(k + name, "Xen", 4) == 0) {
			uint64_t v;

			/* Linux emits a .quad on 64-bit builds; the address is 32-bit either way.
			 */
			if (nh.n_descsz == 4) {
				v = boot_get32(k + desc);
			} else if (nh.n_descsz == 8) {
				v = boot_get64(k + desc);
			} else {
				return boot_fail(err, errlen, -ENOEXEC,
						 "PVH entry note has a %u-byte value", nh.n_descsz);
			}
			if (v > UINT32_MAX)
				return boot_fail(err, errlen, -ENOEXEC,
						 "PVH entry 0x%llx is above 4 GiB",
						 (unsigned long long)v);
			*entry = (uint32_t)v;
			return 1;
		}
		if (next >= end)
			break;
		off = next;
	}
	return 0;
}

int boot_elf_pvh_entry(const uint8_t *k, size_t size, uint32_t *entry, char *err, size_t errlen)
{
	const uint8_t *ph;
	int i, nr, rc;

	if (!k)
		return boot_fail(err, errlen, -EINVAL, "no kernel image");
	rc = elf_check(k, size, &ph, &nr, err, errlen);
	if (rc)
		return rc;
	for (i = 0; i < nr; i++) {
		Elf64_Phdr p;

		memcpy(&p, ph + i * sizeof(p), sizeof(p));
		if (p.p_type != PT_NOTE)
			continue;
		rc = elf_scan_notes(k, size, &p, entry, err, errlen);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	return boot_fail(err, errlen, -ENOEXEC,
			 "ELF kernel has no PVH entry note (Xen note type 18): build it with "
			 "CONFIG_PVH or boot the bzImage");
}

/* Writes hvm_start_info with its module list and memory map at BOOT_ADDR_PVH_INFO. */
static int pvh_write_start_info(struct boot_plan *plan, uint64_t initrd, size_t initrd_size,
				bool acpi)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	uint8_t *si, *e;
	int n, i;

	n = boot_e820_build(tab, BOOT_E820_MAX, &plan->ram);
	if (n < 0)
		return n;
	si = boot_low(plan, BOOT_ADDR_PVH_INFO,
		      PVH_MEMMAP_OFF + BOOT_E820_MAX * PVH_MEMMAP_ENTRY_SIZE);
	memset(si, 0, PVH_MEMMAP_OFF + BOOT_E820_MAX * PVH_MEMMAP_ENTRY_SIZE);
	boot_put32(si + 0, PVH_MAGIC);
	boot_put32(si + 4, 1); /* version 1: has the memmap fields */
	boot_put32(si + 8, 0); /* flags */
	if (initrd_size) {
		boot_put32(si + 12, 1);
		boot_put64(si + 16, BOOT_ADDR_PVH_INFO + PVH_MODLIST_OFF);
		e = si + PVH_MODLIST_OFF;
		boot_put64(e + 0, initrd);
		boot_put64(e + 8, initrd_size);
	}
	boot_put64(si + 24, BOOT_ADDR_CMDLINE);
	/* rsdp_paddr: boot_load writes the tables after this; without, the MP table alone. */
	boot_put64(si + 32, acpi ? BOOT_ADDR_ACPI : 0);
	boot_put64(si + 40, BOOT_ADDR_PVH_INFO + PVH_MEMMAP_OFF);
	boot_put32(si + 48, (uint32_t)n);
	for (i = 0; i < n; i++) {
		e = si + PVH_MEMMAP_OFF + i * PVH_MEMMAP_ENTRY_SIZE;
		boot_put64(e + 0, tab[i].addr);
		boot_put64(e + 8, tab[i].size);
		boot_put32(e + 16, tab[i].type);
	}
	return 0;
}

int boot_elf_load(struct boot_plan *plan, const struct boot_input *in, struct boot_regs *regs,
		  char *err, size_t errlen)
{
	const uint8_t *k = in->kernel;
	const uint8_t *ph;
	uint64_t kernel_end = 0, initrd;
	uint32_t entry;
	bool entry_loaded = false;
	int i, j, nr, rc;

	rc = boot_elf_pvh_entry(k, in->kernel_size, &entry, err, errlen);
	if (rc)
		return rc;
	rc = elf_check(k, in->kernel_size, &ph, &nr, err, errlen);
	if (rc)
		return rc;

	/* Check every segment before writing any, and that none overlap in RAM. */
	for (i = 0; i < nr; i++) {
		Elf64_Phdr p;
		uint64_t fend, mend;

		memcpy(&p, ph + i * sizeof(p), sizeof(p));
		if (p.p_type != PT_LOAD || !p.p_memsz)
			continue;
		if (p.p_filesz > p.p_memsz)
			return boot_fail(
			    err, errlen, -ENOEXEC,
			    "ELF segment %d: file size 0x%llx above memory size 0x%llx", i,
			    (unsigned long long)p.p_filesz, (unsigned long long)p.p_memsz);
		if (__builtin_add_overflow(p.p_offset, p.p_filesz, &fend) || fend > in->kernel_size)
			return boot_fail(err, errlen, -ENOEXEC,
					 "ELF segment %d: file range runs past the %zu-byte file",
					 i, in->kernel_size);
		if (__builtin_add_overflow(p.p_paddr, p.p_memsz, &mend) ||
		    p.p_paddr < BOOT_ADDR_HIMEM || mend > plan->ram.lo_size)
			return boot_fail(err, errlen, -E2BIG,
					 "ELF segment %d at [0x%llx, +0x%llx) is outside guest RAM "
					 "[1 MiB, 0x%llx)",
					 i, (unsigned long long)p.p_paddr,
					 (unsigned long long)p.p_memsz,
					 (unsigned long long)plan->ram.lo_size);
		for (j = 0; j < i; j++) {
			Elf64_Phdr q;

			memcpy(&q, ph + j * sizeof(q), sizeof(q));
			if (q.p_type != PT_LOAD || !q.p_memsz)
				continue;
			/* q passed the checks above, so q.p_paddr + q.p_memsz cannot wrap. */
			if (p.p_paddr < q.p_paddr + q.p_memsz && q.p_paddr < mend)
				return boot_fail(err, errlen, -ENOEXEC,
						 "ELF segments %d and %d overlap in memory", j, i);
		}
		if (entry >= p.p_paddr && entry < p.p_paddr + p.p_filesz)
			entry_loaded = true;
		if (mend > kernel_end)
			kernel_end = mend;
	}
	if (!entry_loaded)
		return boot_fail(err, errlen, -ENOEXEC,
				 "PVH entry 0x%x is not inside any loaded segment", entry);

	rc = boot_write_cmdline(plan, in->cmdline, BOOT_CMDLINE_MAX, err, errlen);
	if (rc)
		return rc;
	rc = boot_place_initrd(plan, in, kernel_end, 4ULL << 30, &initrd, err, errlen);
	if (rc)
		return rc;
	for (i = 0; i < nr; i++) {
		Elf64_Phdr p;

		memcpy(&p, ph + i * sizeof(p), sizeof(p));
		if (p.p_type != PT_LOAD || !p.p_memsz)
			continue;
		rc = boot_add_seg(plan, p.p_paddr, k + p.p_offset, p.p_filesz,
				  p.p_memsz - p.p_filesz);
		if (rc)
			return boot_fail(err, errlen, rc, "no room for ELF segment %d", i);
	}
	rc = pvh_write_start_info(plan, initrd, in->initrd_size, in->acpi != NULL);
	if (rc)
		return boot_fail(err, errlen, rc, "cannot build the PVH memory map");
	boot_write_gdt(plan, BOOT_GDT_CODE32, regs);
	regs->mode = BOOT_MODE_PROT32;
	regs->rip = entry;
	regs->rbx = BOOT_ADDR_PVH_INFO;
	regs->rsp = BOOT_ADDR_STACK_TOP;
	return 0;
}
