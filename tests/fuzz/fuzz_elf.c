/*
 * boot_load on hostile ELF kernels into a 4 MiB guest. With the first byte's
 * top bit set the rest overwrites part of a valid template (ELF header,
 * three program headers, notes with the PVH entry, one segment; bits 1-2
 * pick where), otherwise the rest is the whole image.
 */
#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"

#define RAM_SIZE (4u << 20)
#define IMG_SIZE 0x2000

static uint8_t *ram;
static uint8_t tmpl[IMG_SIZE];
static uint8_t initrd[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	Elf64_Ehdr eh = {.e_type = ET_EXEC,
			 .e_machine = EM_X86_64,
			 .e_version = EV_CURRENT,
			 .e_phoff = 64,
			 .e_ehsize = 64,
			 .e_phentsize = sizeof(Elf64_Phdr),
			 .e_phnum = 3};
	Elf64_Phdr ph[3] = {
	    {.p_type = PT_LOAD,
	     .p_offset = 0x1000,
	     .p_paddr = 0x200000,
	     .p_filesz = 0x1000,
	     .p_memsz = 0x3000},
	    {.p_type = PT_LOAD,
	     .p_offset = 0x1000,
	     .p_paddr = 0x300000,
	     .p_filesz = 0x800,
	     .p_memsz = 0x800},
	    {.p_type = PT_NOTE, .p_offset = 0x200, .p_filesz = 0x28, .p_align = 4},
	};
	Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = 8, .n_type = 18};
	uint64_t entry = 0x200010;

	ram = malloc(RAM_SIZE);
	if (!ram)
		abort();
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	memcpy(tmpl, &eh, sizeof(eh));
	memcpy(tmpl + 64, ph, sizeof(ph));
	/* A GNU note first, so the walk has to step over one. */
	nh.n_type = 3;
	memcpy(tmpl + 0x200, &nh, sizeof(nh));
	memcpy(tmpl + 0x20c, "GNU", 4);
	nh.n_type = 18;
	memcpy(tmpl + 0x218, &nh, sizeof(nh));
	memcpy(tmpl + 0x224, "Xen", 4);
	memcpy(tmpl + 0x228, &entry, 8);
	((Elf64_Phdr *)(tmpl + 64))[2].p_filesz = 0x30;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[IMG_SIZE];
	struct boot_ram r = {.lo = ram, .lo_size = RAM_SIZE};
	struct boot_input in = {.nr_cpus = 2, .cmdline = "console=ttyS0"};
	struct boot_regs regs;
	char err[256];
	uint8_t opt;

	if (size < 1)
		return 0;
	opt = data[0];
	data++;
	size--;
	if (opt & 0x80) {
		/* Overlay at the ELF header, the program headers or the notes. */
		static const size_t at[4] = {0, 64, 0x200, 0x218};
		size_t off = at[(opt >> 1) & 3];

		memcpy(img, tmpl, sizeof(img));
		memcpy(img + off, data, size < sizeof(img) - off ? size : sizeof(img) - off);
		in.kernel = img;
		in.kernel_size = sizeof(img);
	} else {
		in.kernel = data;
		in.kernel_size = size;
	}
	if (opt & 1) {
		in.initrd = initrd;
		in.initrd_size = sizeof(initrd);
	}
	(void)!boot_load(&r, &in, &regs, err, sizeof(err));
	return 0;
}
