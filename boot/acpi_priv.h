/*
 * The ACPI tables' layout, shared by the direct-boot placement (acpi.c) and
 * the firmware loader's form of the same tables (acpi_loader.c).
 */
#ifndef BOOT_ACPI_PRIV_H
#define BOOT_ACPI_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"

#define ACPI_HDR_SIZE	 36
#define ACPI_RSDP_SIZE	 36
#define ACPI_FACS_SIZE	 64
#define ACPI_FADT_SIZE	 276
#define ACPI_FADT_REV	 6
#define ACPI_MADT_REV	 4
#define ACPI_DSDT_REV	 2 /* 2 and up: integers are 64 bits */
#define ACPI_XSDT_TABLES 2 /* FADT, MADT (the DSDT hangs off the FADT) */

/* Offsets from BOOT_ADDR_ACPI (the FACS must be 64-byte aligned). */
#define ACPI_OFF_RSDP 0x0
#define ACPI_OFF_XSDT 0x40
#define ACPI_OFF_FACS 0x100
#define ACPI_OFF_FADT 0x200
#define ACPI_OFF_MADT 0x400
#define ACPI_OFF_DSDT 0x1000
#define ACPI_DSDT_MAX 0x2000

/* FADT fields (byte offsets). */
#define FADT_FACS      36
#define FADT_DSDT      40
#define ACPI_BLOB_SIZE (ACPI_OFF_DSDT + ACPI_DSDT_MAX)

/* FADT fields the loader patches (byte offsets). */
#define FADT_FACS   36
#define FADT_DSDT   40
#define FADT_X_DSDT 140

/*
 * Builds every table into buf (ACPI_BLOB_SIZE bytes) at the fixed offsets
 * above, with pointers as if buf sat at guest address base (0 for the
 * loader's files, whose pointers are offsets it relocates).
 */
int acpi_build(uint8_t *buf, uint32_t base, const struct boot_acpi *c, int nr_cpus, char *err,
	       size_t errlen);

#endif
