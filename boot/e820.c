/*
 * The guest memory map handed to the kernel (zero page e820 table, PVH
 * memmap): conventional RAM, the reserved EBDA/VGA/BIOS window where the MP
 * table lives, RAM from 1 MiB, and RAM above the 4 GiB MMIO hole.
 */
#include <errno.h>

#include "boot/boot_priv.h"

static int e820_add(struct boot_e820_entry *tab, int max, int *n, uint64_t addr, uint64_t size,
		    uint32_t type)
{
	if (*n >= max)
		return -E2BIG;
	tab[*n].addr = addr;
	tab[*n].size = size;
	tab[*n].type = type;
	(*n)++;
	return 0;
}

int boot_e820_build(struct boot_e820_entry *tab, int max, const struct boot_ram *ram)
{
	uint64_t hi_end;
	int n = 0, rc;

	if (!tab || !ram || ram->lo_size < BOOT_ADDR_HIMEM || ram->lo_size > (4ULL << 30) ||
	    __builtin_add_overflow(4ULL << 30, ram->hi_size, &hi_end))
		return -EINVAL;
	rc = e820_add(tab, max, &n, 0, BOOT_ADDR_EBDA, BOOT_E820_RAM);
	if (!rc)
		rc = e820_add(tab, max, &n, BOOT_ADDR_EBDA, BOOT_ADDR_HIMEM - BOOT_ADDR_EBDA,
			      BOOT_E820_RESERVED);
	if (!rc && ram->lo_size > BOOT_ADDR_HIMEM)
		rc = e820_add(tab, max, &n, BOOT_ADDR_HIMEM, ram->lo_size - BOOT_ADDR_HIMEM,
			      BOOT_E820_RAM);
	if (!rc && ram->hi_size)
		rc = e820_add(tab, max, &n, 4ULL << 30, ram->hi_size, BOOT_E820_RAM);
	return rc ? rc : n;
}
