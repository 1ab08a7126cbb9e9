/*
 * boot/aml.c: PkgLength at every encoding boundary, NameStrings (root,
 * parent, dual, multi, padding, and bad names), integers, EISA ids,
 * buffers sized at the end, and a full buffer or bad nesting failing without
 * writing past the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "boot/aml.h"

/* Decodes a PkgLength; returns its byte count, the length into *len. */
static size_t pkglen_decode(const uint8_t *p, uint32_t *len)
{
	size_t n = (p[0] >> 6) + 1;

	if (n == 1) {
		*len = p[0] & 0x3f;
		return 1;
	}
	*len = p[0] & 0x0f;
	for (size_t i = 1; i < n; i++)
		*len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	return n;
}

static void test_pkglen(void **state)
{
	static const struct {
		uint32_t content;
		size_t bytes;
	} cases[] = {
	    {0, 1},    {62, 1},	  {63, 2}, /* 63 + 1 = 64 no longer fits one byte */
	    {4093, 2}, {4094, 3}, {0xffffc, 3}, {0xffffd, 4}, {0xffffffb, 4},
	};
	uint8_t enc[4];
	uint32_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = aml_pkglen_encode(cases[i].content, enc);

		assert_int_equal(n, cases[i].bytes);
		assert_int_equal(pkglen_decode(enc, &len), n);
		assert_int_equal(len, cases[i].content + n); /* PkgLength counts itself */
	}
	/* Bits 5-4 of a multi-byte lead byte are reserved (zero). */
	assert_int_equal(aml_pkglen_encode(4000, enc), 2);
	assert_int_equal(enc[0] & 0x30, 0);
	assert_int_equal(aml_pkglen_encode(0xffffffc, enc), 0);
	assert_int_equal(aml_pkglen_encode(UINT32_MAX, enc), 0);
}

static void expect_bytes(struct aml *a, const uint8_t *want, size_t n)
{
	assert_false(a->failed);
	assert_int_equal(a->len, n);
	assert_memory_equal(a->buf, want, n);
}

static void test_names(void **state)
{
	uint8_t buf[64];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "_HID");
	expect_bytes(&a, (const uint8_t *)"_HID", 4);

	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "\\_SB");
	expect_bytes(&a, (const uint8_t *)"\\_SB_", 5);

	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "\\_SB.PCI0");
	expect_bytes(&a, (const uint8_t *)"\\\x2e_SB_PCI0", 10);

	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "^^A.B.C");
	expect_bytes(&a,
		     (const uint8_t *)"^^\x2f\x03"
				      "A___B___C___",
		     16);

	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "\\");
	expect_bytes(&a, (const uint8_t *)"\\\0", 2); /* root, NullName */

	static const char *const bad[] = {"pci0", "A..B", "ABCDE", "A.", ".A", "1ABC", "A-B", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name(&a, bad[i]);
		if (bad[i][0]) /* "" is the NullName: fine */
			assert_true(a.failed);
	}
	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, NULL);
	assert_true(a.failed);
}

static void test_ints_strings_eisaid(void **state)
{
	uint8_t buf[64];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, 0xff);
	aml_int(&a, 0x100);
	aml_int(&a, 0x10000);
	aml_int(&a, 0x100000000ULL);
	expect_bytes(&a, (const uint8_t[]){0x00, 0x01, 0x0a, 0xff, 0x0b, 0x00, 0x01,
					   0x0c, 0x00, 0x00, 0x01, 0x00, 0x0e, 0,
					   0,	 0,    0,    1,	   0,	 0,    0},
		     21);

	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, "ab");
	expect_bytes(&a,
		     (const uint8_t *)"\x0d"
				      "ab\0",
		     4);
	aml_string(&a, "\xff");
	assert_true(a.failed);

	/* EisaId("PNP0A03") is 0x030AD041, as every PC firmware has it. */
	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "PNP0A03");
	expect_bytes(&a, (const uint8_t[]){0x0c, 0x41, 0xd0, 0x0a, 0x03}, 5);
	static const char *const bad[] = {"pnp0A03", "PNP0A0", "PNP0A033", "PNP0G03", "PN10A03"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_eisaid(&a, bad[i]);
		assert_true(a.failed);
	}
}

static void test_device_and_buffer(void **state)
{
	uint8_t buf[128];
	uint32_t len;
	size_t n;
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_device_begin(&a, "COM1");
	aml_name_decl(&a, "_CRS");
	aml_buffer_begin(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 0, 8);
	aml_res_irq(&a, 4);
	aml_res_end(&a);
	aml_end(&a);
	aml_end(&a);
	assert_false(a.failed);
	assert_int_equal(a.depth, 0);
	/* Device: 5B 82, PkgLength covering the rest, the name. */
	assert_int_equal(buf[0], 0x5b);
	assert_int_equal(buf[1], 0x82);
	n = pkglen_decode(buf + 2, &len);
	assert_int_equal(2 + len, a.len);
	assert_memory_equal(buf + 2 + n, "COM1", 4);
	/* Name(_CRS, Buffer(DWord size) {...}): 8 (IO) + 3 (IRQ) + 2 (end) bytes. */
	const uint8_t *p = buf + 2 + n + 4;
	assert_int_equal(p[0], 0x08);
	assert_memory_equal(p + 1, "_CRS", 4);
	assert_int_equal(p[5], 0x11);
	n = pkglen_decode(p + 6, &len);
	assert_int_equal(p[6 + n], 0x0c);
	assert_int_equal(p[7 + n] | p[8 + n] << 8 | p[9 + n] << 16 | p[10 + n] << 24, 13);
	assert_int_equal(len, n + 5 + 13);
	assert_memory_equal(p + 11 + n, "\x47\x01\xf8\x03\xf8\x03\x00\x08\x22\x10\x00\x79\x00", 13);
}

static void test_long_package(void **state)
{
	uint8_t buf[5000];
	uint32_t len;
	struct aml a;

	(void)state;
	/* A package whose PkgLength takes two bytes: the content slides down by two. */
	aml_init(&a, buf, sizeof(buf));
	aml_package_begin(&a, 200);
	for (int i = 0; i < 200; i++)
		aml_int(&a, 0x1234);
	aml_end(&a);
	assert_false(a.failed);
	assert_int_equal(buf[0], 0x12);
	assert_int_equal(pkglen_decode(buf + 1, &len), 2);
	assert_int_equal(len, 2 + 1 + 600);
	assert_int_equal(a.len, 1 + len);
	assert_int_equal(buf[3], 200);
	assert_int_equal(buf[4], 0x0b);
	assert_int_equal(buf[a.len - 1], 0x12);
}

static void test_hostile(void **state)
{
	uint8_t buf[16];
	struct aml a;

	(void)state;
	/* Out of room: sticky failure, nothing written past cap. */
	memset(buf, 0xee, sizeof(buf));
	aml_init(&a, buf, 8);
	aml_device_begin(&a, "ABCD");
	aml_int(&a, 0x12345678);
	aml_end(&a);
	assert_true(a.failed);
	assert_true(a.len <= 8);
	for (int i = 8; i < 16; i++)
		assert_int_equal(buf[i], 0xee);
	/* aml_end without a begin. */
	aml_init(&a, buf, sizeof(buf));
	aml_end(&a);
	assert_true(a.failed);
	/* Nesting deeper than AML_MAX_NESTING. */
	uint8_t big[256];
	aml_init(&a, big, sizeof(big));
	for (int i = 0; i <= AML_MAX_NESTING; i++)
		aml_scope_begin(&a, "A");
	assert_true(a.failed);
	assert_int_equal(a.depth, AML_MAX_NESTING);
	aml_init(&a, buf, sizeof(buf));
	aml_res_irq(&a, 16);
	assert_true(a.failed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pkglen),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_ints_strings_eisaid),
	    cmocka_unit_test(test_device_and_buffer),
	    cmocka_unit_test(test_long_package),
	    cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
