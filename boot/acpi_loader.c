/*
 * The ACPI tables in the form firmware built for QEMU reads them from fw_cfg
 * (OVMF's AcpiPlatformDxe, SeaBIOS): two files, "etc/acpi/rsdp" and
 * "etc/acpi/tables", whose pointers hold offsets into "etc/acpi/tables",
 * and the command file "etc/table-loader" that has the firmware allocate
 * them, add each file's address to the pointers and fill in the checksums
 * (which must be 0 in the files). Commands are 128 bytes, little-endian.
 */
#include <errno.h>

#include "boot/acpi_priv.h"
#include "boot/boot_priv.h"

#define LOADER_ALLOCATE	    1
#define LOADER_ADD_POINTER  2
#define LOADER_ADD_CHECKSUM 3
#define LOADER_ZONE_HIGH    1 /* anywhere in 32-bit memory */
#define LOADER_ZONE_FSEG    2 /* 0xE0000-0xFFFFF: where an OS may scan for the RSDP */

static uint8_t *loader_cmd(struct boot_acpi_blobs *b, uint32_t command)
{
	uint8_t *e = b->loader + b->loader_len;

	/* The command count is fixed by the tables below: BOOT_ACPI_LOADER_CMDS is its bound. */
	memset(e, 0, BOOT_ACPI_LOADER_ENTRY);
	boot_put32(e, command);
	b->loader_len += BOOT_ACPI_LOADER_ENTRY;
	return e;
}

static void loader_name(uint8_t *dst, const char *name)
{
	/* 56 bytes, NUL-padded: every name used here is short. */
	memcpy(dst, name, strlen(name));
}

static void loader_allocate(struct boot_acpi_blobs *b, const char *file, uint32_t align,
			    uint8_t zone)
{
	uint8_t *e = loader_cmd(b, LOADER_ALLOCATE);

	loader_name(e + 4, file);
	boot_put32(e + 60, align);
	e[64] = zone;
}

static void loader_pointer(struct boot_acpi_blobs *b, const char *dest, const char *src,
			   uint32_t offset, uint8_t size)
{
	uint8_t *e = loader_cmd(b, LOADER_ADD_POINTER);

	loader_name(e + 4, dest);
	loader_name(e + 60, src);
	boot_put32(e + 116, offset);
	e[120] = size;
}

static void loader_checksum(struct boot_acpi_blobs *b, const char *file, uint32_t result,
			    uint32_t start, uint32_t length)
{
	uint8_t *e = loader_cmd(b, LOADER_ADD_CHECKSUM);

	loader_name(e + 4, file);
	boot_put32(e + 60, result);
	boot_put32(e + 64, start);
	boot_put32(e + 68, length);
}

/* A table's checksum goes through the loader: zero it here, ask for it there. */
static void loader_table_checksum(struct boot_acpi_blobs *b, uint32_t off)
{
	b->tables[off + 9] = 0;
	loader_checksum(b, BOOT_ACPI_FILE_TABLES, off + 9, off, boot_get32(b->tables + off + 4));
}

int boot_acpi_blobs_build(struct boot_acpi_blobs *b, const struct boot_acpi *c, int nr_cpus,
			  char *err, size_t errlen)
{
	static const char *const T = BOOT_ACPI_FILE_TABLES, *const R = BOOT_ACPI_FILE_RSDP;
	int rc;

	_Static_assert(sizeof(b->tables) == ACPI_BLOB_SIZE, "tables file size");
	if (!b)
		return boot_fail(err, errlen, -EINVAL, "boot_acpi_blobs_build: no output");
	b->loader_len = 0;
	/* Base 0: every pointer is an offset into the tables file. */
	rc = acpi_build(b->tables, 0, c, nr_cpus, err, errlen);
	if (rc)
		return rc;
	memcpy(b->rsdp, b->tables + ACPI_OFF_RSDP, sizeof(b->rsdp));
	memset(b->tables + ACPI_OFF_RSDP, 0, ACPI_RSDP_SIZE); /* the RSDP has its own file */
	b->rsdp[8] = 0;
	b->rsdp[32] = 0;

	loader_allocate(b, R, 16, LOADER_ZONE_FSEG);
	loader_allocate(b, T, 64, LOADER_ZONE_HIGH); /* 64: the FACS's alignment */
	loader_pointer(b, T, T, ACPI_OFF_FADT + FADT_FACS, 4);
	loader_pointer(b, T, T, ACPI_OFF_FADT + FADT_DSDT, 4);
	loader_pointer(b, T, T, ACPI_OFF_FADT + FADT_X_DSDT, 8);
	for (uint32_t i = 0; i < ACPI_XSDT_TABLES; i++)
		loader_pointer(b, T, T, ACPI_OFF_XSDT + ACPI_HDR_SIZE + 8 * i, 8);
	loader_pointer(b, R, T, 24, 8); /* RSDP -> XSDT */
	/* Checksums after the pointers they cover; the RSDP's short one before its long one. */
	loader_table_checksum(b, ACPI_OFF_DSDT);
	loader_table_checksum(b, ACPI_OFF_FADT);
	loader_table_checksum(b, ACPI_OFF_MADT);
	loader_table_checksum(b, ACPI_OFF_XSDT);
	loader_checksum(b, R, 8, 0, 20);
	loader_checksum(b, R, 32, 0, ACPI_RSDP_SIZE);
	return 0;
}
