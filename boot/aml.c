/*
 * AML encoding (ACPI spec, "ACPI Machine Language Specification"): opcodes,
 * PkgLength, NameStrings and data objects; resource descriptors from the
 * "Resource Data Types" chapter.
 */
#include "boot/aml.h"

#include <string.h>

#define AML_ZERO	0x00
#define AML_ONE		0x01
#define AML_NAME	0x08
#define AML_BYTE	0x0a
#define AML_WORD	0x0b
#define AML_DWORD	0x0c
#define AML_STRING	0x0d
#define AML_QWORD	0x0e
#define AML_SCOPE	0x10
#define AML_BUFFER	0x11
#define AML_PACKAGE	0x12
#define AML_DUAL_NAME	0x2e
#define AML_MULTI_NAME	0x2f
#define AML_EXT		0x5b
#define AML_EXT_DEVICE	0x82
#define AML_ROOT	0x5c
#define AML_PARENT	0x5e
#define AML_PKGLEN_ROOM 4 /* bytes reserved while a package is open */
#define AML_NAME_SEGS	255

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->failed || n > a->cap - a->len) {
		a->failed = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, int n)
{
	uint8_t b[8];

	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, (size_t)n);
}

static bool aml_seg_char(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

void aml_name(struct aml *a, const char *path)
{
	uint8_t segs[AML_NAME_SEGS][4];
	size_t nr = 0;
	const char *p = path;

	if (!p) {
		a->failed = true;
		return;
	}
	if (*p == '\\') {
		aml_byte(a, AML_ROOT);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(a, AML_PARENT);
			p++;
		}
	}
	while (*p) {
		size_t n = 0;

		if (nr == AML_NAME_SEGS) {
			a->failed = true;
			return;
		}
		memset(segs[nr], '_', 4);
		while (*p && *p != '.') {
			if (n == 4 || !aml_seg_char(*p, n == 0)) {
				a->failed = true;
				return;
			}
			segs[nr][n++] = (uint8_t)*p++;
		}
		if (n == 0) { /* empty segment: "A..B", a trailing '.' */
			a->failed = true;
			return;
		}
		nr++;
		if (*p == '.' && !*++p) {
			a->failed = true;
			return;
		}
	}
	if (nr == 0) {
		aml_byte(a, AML_ZERO); /* NullName */
		return;
	}
	if (nr == 2) {
		aml_byte(a, AML_DUAL_NAME);
	} else if (nr > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nr);
	}
	aml_bytes(a, segs, nr * 4);
}

void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE);
		aml_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD);
		aml_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING);
	for (; s && *s; s++) {
		if ((uint8_t)*s > 0x7f) { /* AML strings are ASCII, 0x01-0x7f */
			a->failed = true;
			return;
		}
		aml_byte(a, (uint8_t)*s);
	}
	aml_byte(a, 0);
}

static int aml_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	/* Three letters of 5 bits each, then four hex digits; stored big-endian. */
	if (!id || strlen(id) != 7) {
		a->failed = true;
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			a->failed = true;
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int h = aml_hex(id[i]);

		if (h < 0) {
			a->failed = true;
			return;
		}
		v = (v << 4) | (uint32_t)h;
	}
	aml_byte(a, AML_DWORD);
	aml_le(a, __builtin_bswap32(v), 4);
}

size_t aml_pkglen_encode(uint32_t content, uint8_t out[4])
{
	static const uint32_t max[4] = {0x3f, 0xfff, 0xfffff, 0xfffffff};

	for (uint32_t n = 1; n <= 4; n++) {
		uint32_t total = content + n;

		if (total < content || total > max[n - 1])
			continue;
		if (n == 1) {
			out[0] = (uint8_t)total;
			return 1;
		}
		/* Lead byte: count of following bytes in bits 7-6, the low nibble in 3-0. */
		out[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (uint32_t i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return n;
	}
	return 0;
}

static void aml_open(struct aml *a, bool buffer)
{
	static const uint8_t room[AML_PKGLEN_ROOM];

	if (a->depth == AML_MAX_NESTING) {
		a->failed = true;
		return;
	}
	aml_bytes(a, room, sizeof(room));
	a->open_buffer[a->depth] = buffer;
	a->open[a->depth++] = a->len;
}

void aml_end(struct aml *a)
{
	uint8_t enc[4];
	size_t start, content, n;

	if (a->depth == 0) {
		a->failed = true;
		return;
	}
	start = a->open[--a->depth];
	if (a->failed)
		return;
	content = a->len - start;
	if (a->open_buffer[a->depth]) {
		/* BufferSize: a DWord integer (opcode + 4 bytes), then the bytes it counts. */
		uint32_t size = (uint32_t)(content - 5);

		for (int i = 0; i < 4; i++)
			a->buf[start + 1 + i] = (uint8_t)(size >> (8 * i));
	}
	n = content <= 0xfffffff ? aml_pkglen_encode((uint32_t)content, enc) : 0;
	if (!n) {
		a->failed = true;
		return;
	}
	/* Slide the content down over the unused part of the reserved room. */
	memmove(a->buf + start - AML_PKGLEN_ROOM + n, a->buf + start, content);
	memcpy(a->buf + start - AML_PKGLEN_ROOM, enc, n);
	a->len -= AML_PKGLEN_ROOM - n;
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE);
	aml_open(a, false);
	aml_name(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT);
	aml_byte(a, AML_EXT_DEVICE);
	aml_open(a, false);
	aml_name(a, path);
}

void aml_package_begin(struct aml *a, uint8_t nr_elements)
{
	aml_byte(a, AML_PACKAGE);
	aml_open(a, false);
	aml_byte(a, nr_elements);
}

/*
 * A Buffer's size is an integer object before its bytes, known only at the
 * end: always the DWord form, filled in by aml_end.
 */
void aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER);
	aml_open(a, true);
	aml_byte(a, AML_DWORD);
	aml_le(a, 0, 4);
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME);
	aml_name(a, path);
}

/* ---- resource descriptors ---- */

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, 0x47); /* small item: I/O port, 7 bytes */
	aml_byte(a, 0x01); /* decodes 16 address bits */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_res_irq(struct aml *a, uint8_t irq)
{
	if (irq > 15) {
		a->failed = true;
		return;
	}
	aml_byte(a, 0x22); /* small item: IRQ, 2 bytes (edge, active high) */
	aml_le(a, 1u << irq, 2);
}

/* General flags: producer, positive decode, min and max fixed. */
#define AML_RES_FIXED 0x0c

void aml_res_word(struct aml *a, uint8_t type, uint16_t min, uint16_t max)
{
	aml_byte(a, 0x88); /* large item: word address space, 13 bytes */
	aml_le(a, 13, 2);
	aml_byte(a, type);
	aml_byte(a, AML_RES_FIXED);
	aml_byte(a, type == AML_RES_IO ? 0x03 : 0); /* I/O: the entire range */
	aml_le(a, 0, 2);			    /* granularity */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_le(a, 0, 2); /* translation */
	aml_le(a, (uint32_t)max - min + 1, 2);
}

void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	aml_byte(a, 0x87); /* large item: dword address space, 23 bytes */
	aml_le(a, 23, 2);
	aml_byte(a, AML_RES_MEM);
	aml_byte(a, AML_RES_FIXED);
	aml_byte(a, 0x01); /* read-write, non-cacheable */
	aml_le(a, 0, 4);
	aml_le(a, min, 4);
	aml_le(a, max, 4);
	aml_le(a, 0, 4);
	aml_le(a, (uint64_t)max - min + 1, 4);
}

void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max)
{
	aml_byte(a, 0x8a); /* large item: qword address space, 43 bytes */
	aml_le(a, 43, 2);
	aml_byte(a, AML_RES_MEM);
	aml_byte(a, AML_RES_FIXED);
	aml_byte(a, 0x01);
	aml_le(a, 0, 8);
	aml_le(a, min, 8);
	aml_le(a, max, 8);
	aml_le(a, 0, 8);
	aml_le(a, max - min + 1, 8);
}

void aml_res_end(struct aml *a)
{
	aml_byte(a, 0x79); /* end tag; checksum 0: "treat as if the sum were zero" */
	aml_byte(a, 0);
}
