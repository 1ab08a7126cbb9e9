/*
 * What UEFI boot needs from boot/: the kernel cut the way QEMU's fw_cfg hands
 * it to OVMF (the setup part and the rest; OVMF joins them again into the
 * file it starts through the kernel's EFI stub) and the memory map of
 * fw_cfg's etc/e820. Pure: the shim puts the pieces into vmm/fw_cfg.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot/boot_priv.h"

#define MZ_PE_OFFSET 0x3c

int boot_uefi_split(const uint8_t *kernel, size_t size, size_t *setup_size, char *err,
		    size_t errlen)
{
	struct boot_bzimage_info bz;
	uint32_t pe;
	int ret;

	if (!kernel || !setup_size) {
		snprintf(err, errlen, "no kernel");
		return -EINVAL;
	}
	ret = boot_bzimage_parse(kernel, size, &bz, err, errlen);
	if (ret)
		return ret;
	/* The EFI stub makes the bzImage a PE file: "MZ", then "PE\0\0" where 0x3c says. */
	pe = (uint32_t)kernel[MZ_PE_OFFSET] | (uint32_t)kernel[MZ_PE_OFFSET + 1] << 8 |
	     (uint32_t)kernel[MZ_PE_OFFSET + 2] << 16 | (uint32_t)kernel[MZ_PE_OFFSET + 3] << 24;
	if (memcmp(kernel, "MZ", 2) || pe > size - 4 || memcmp(kernel + pe, "PE\0\0", 4)) {
		snprintf(err, errlen,
			 "bzImage has no EFI stub (a PE header): build it with "
			 "CONFIG_EFI_STUB");
		return -ENOEXEC;
	}
	*setup_size = bz.setup_size;
	return 0;
}

int boot_uefi_e820(struct boot_e820_entry *tab, int max, const struct boot_ram *ram)
{
	uint64_t hi_end;
	int n = 0;

	if (!tab || !ram || ram->lo_size < BOOT_ADDR_HIMEM || ram->lo_size > (4ULL << 30) ||
	    __builtin_add_overflow(4ULL << 30, ram->hi_size, &hi_end))
		return -EINVAL;
	if (max < (ram->hi_size ? 2 : 1))
		return -E2BIG;
	/* No holes below 1 MiB: the firmware builds its own map from this. */
	tab[n++] = (struct boot_e820_entry){.addr = 0, .size = ram->lo_size, .type = BOOT_E820_RAM};
	if (ram->hi_size)
		tab[n++] = (struct boot_e820_entry){
		    .addr = 4ULL << 30, .size = ram->hi_size, .type = BOOT_E820_RAM};
	return n;
}
