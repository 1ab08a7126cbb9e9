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
#include "tests/unit/boot_test_image.h"

#define RAM_SIZE (4u << 20)
#define IMG_SIZE 0x2000

static uint8_t *ram;
static struct boot_plan *plan;
static uint8_t tmpl[IMG_SIZE];
static uint8_t initrd[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t gnu_id[8];
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
	    {.p_type = PT_NOTE, .p_offset = 0x200, .p_align = 4},
	};
	uint64_t entry = 0x200010;
	size_t notes;

	ram = malloc(RAM_SIZE);
	plan = malloc(sizeof(*plan));
	if (!ram || !plan)
		abort();
	bootimg_elf_header(tmpl, 0, 3);
	/* A GNU note first (0x200), so the walk has to step over one; the PVH note at 0x218. */
	notes = bootimg_elf_add_note(tmpl + 0x200, "GNU", NT_GNU_BUILD_ID, gnu_id, sizeof(gnu_id));
	notes += bootimg_elf_add_note(tmpl + 0x200 + notes, "Xen", BOOTIMG_NOTE_PVH, &entry, 8);
	ph[2].p_filesz = notes;
	for (int i = 0; i < 3; i++)
		bootimg_elf_set_phdr(tmpl, i, &ph[i]);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[IMG_SIZE];
	struct boot_ram r = {.lo_size = RAM_SIZE};
	struct boot_input in = {.nr_cpus = 2, .cmdline = "console=ttyS0"};
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

		bootimg_overlay(img, tmpl, sizeof(img), at[(opt >> 1) & 3], data, size);
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
	/* A plan boot_load accepted must fit the RAM it was made for. */
	if (!boot_load(plan, &r, &in, err, sizeof(err)) && bootimg_apply(plan, ram, RAM_SIZE))
		abort();
	return 0;
}
