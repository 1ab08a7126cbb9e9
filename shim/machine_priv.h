/* Between machine.c and machine_uefi.c. */
#ifndef SHIM_MACHINE_PRIV_H
#define SHIM_MACHINE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"

struct loaded_file {
	uint8_t *data;
	size_t size;
	bool mapped; /* a private mapping of the file, else a malloc'd copy */
};

/*
 * A whole regular, non-empty file of at most limit bytes: mapped privately
 * (writable, copy on write) on a local filesystem, read into a buffer on a
 * network one; err names what and path.
 */
int machine_load_file(const char *path, const char *what, size_t limit, struct loaded_file *lf,
		      char *err, size_t errlen) __attribute__((warn_unused_result));
void machine_unload_file(struct loaded_file *lf);
/* cfg's kernel and (when given) initrd, each at most the guest's RAM in size. */
int machine_load_boot_files(const struct machine_config *cfg, struct loaded_file *kernel,
			    struct loaded_file *initrd, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Largest guest for UEFI boot: low RAM must end below Q35's ECAM (vmm/q35.h). */
#define MACHINE_UEFI_MAX_MEM_MIB 2816

/*
 * UEFI boot: maps cfg->firmware, fills fw_cfg with the memory map, the ACPI
 * tables and the kernel, initrd and command line, and adds the Q35 pieces
 * OVMF probes (ECAM, ICH9 LPC, MCH registers, debug port). Needs m->pci.
 */
int machine_uefi_setup(struct machine *m, const struct machine_config *cfg, char *err,
		       size_t errlen) __attribute__((warn_unused_result));
/* After vm_destroy (the firmware image backs a KVM slot until then). NULL ok. */
void machine_uefi_destroy(struct machine_uefi *u);
/* The parts that sit on the VM's buses, before vm_destroy. NULL ok. */
void machine_uefi_detach(struct machine_uefi *u);

#endif
