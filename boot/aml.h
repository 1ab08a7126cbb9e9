/*
 * A tiny AML (ACPI Machine Language) encoder: just the constructs the DSDT
 * needs (scopes, devices, names, integers, strings, packages, buffers and the
 * resource descriptors of a _CRS). Writes into a caller's buffer; running out
 * of room sets a sticky error instead of writing past the end.
 */
#ifndef BOOT_AML_H
#define BOOT_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_NESTING 8

struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool failed; /* out of room, bad name or nesting: the bytes are not to be used */
	int depth;
	size_t open[AML_MAX_NESTING];	   /* where each open package's content starts */
	bool open_buffer[AML_MAX_NESTING]; /* ... and whether it is a Buffer to size */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_byte(struct aml *a, uint8_t v);
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * A NameString: "\\_SB_.PCI0", "_HID", "^FOO". Segments shorter than four
 * characters are padded with '_'; characters are A-Z, 0-9 and '_' (a digit
 * never first).
 */
void aml_name(struct aml *a, const char *path);
/* The smallest integer encoding: Zero, One, Byte, Word, DWord or QWord. */
void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* A compressed EISA id ("PNP0A03") as the DWord integer ACPI wants. */
void aml_eisaid(struct aml *a, const char *id);

/*
 * PkgLength-framed objects: *_begin writes the opcode (and the name) and
 * opens a package, aml_end closes the innermost one and encodes its length in
 * as few bytes as it takes.
 */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
void aml_package_begin(struct aml *a, uint8_t nr_elements);
/* A Buffer whose size is the content written until aml_end. */
void aml_buffer_begin(struct aml *a);
void aml_end(struct aml *a);
/* Name(path, ...): the caller writes the value right after. */
void aml_name_decl(struct aml *a, const char *path);

/* Encodes n (the PkgLength, its own bytes included) into out; returns its size, 0 if too big. */
size_t aml_pkglen_encode(uint32_t n, uint8_t out[4]);

/* ---- resource descriptors (inside aml_buffer_begin .. aml_end) ---- */

#define AML_RES_MEM 0
#define AML_RES_IO  1
#define AML_RES_BUS 2

/* IO(Decode16, min, max, align, len). */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq}: edge, active high, irq 0-15. */
void aml_res_irq(struct aml *a, uint8_t irq);
/* Word/DWord/QWord address space producers [min, max], fixed min and max. */
void aml_res_word(struct aml *a, uint8_t type, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max);
void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max);
/* The end tag: closes a resource template. */
void aml_res_end(struct aml *a);

#endif
