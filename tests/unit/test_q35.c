/*
 * The Q35 pieces OVMF probes (vmm/q35.h): ECAM decoding and accesses (bus 0
 * function 0 reach config space, everything else reads all-ones), the MCH's
 * PCIEXBAR/PAM/SMRAM registers, the ICH9 LPC's PMBASE and ACPI_CNTL, and the
 * debug port's line assembly. Hostile input: every width and misalignment,
 * offsets past the window, garbage into every LPC and MCH register.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/virtio_test_util.h"
#include "vmm/legacy.h"
#include "vmm/q35.h"

static uint32_t ecam_rd(struct tmach *m, uint64_t off, uint32_t len)
{
	uint8_t d[8] = {0};

	pci_ecam_access(m->pbus, off, d, len, false);
	return pci_get_le(d, len > 4 ? 4 : len);
}

static void ecam_wr(struct tmach *m, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[8] = {0};

	pci_put_le(d, len > 4 ? 4 : len, v);
	pci_ecam_access(m->pbus, off, d, len, true);
}

static uint64_t at(int bus, int dev, int fn, int reg)
{
	return (uint64_t)bus << 20 | (uint64_t)dev << 15 | (uint64_t)fn << 12 | (uint64_t)reg;
}

static void test_ecam_decode(void **state)
{
	struct pci_ecam_addr a;

	(void)state;
	assert_true(pci_ecam_decode(at(3, 31, 7, 0xffc), &a));
	assert_int_equal(a.bus, 3);
	assert_int_equal(a.dev, 31);
	assert_int_equal(a.fn, 7);
	assert_int_equal(a.reg, 0xffc);
	assert_true(pci_ecam_decode(Q35_ECAM_SIZE - 1, &a));
	assert_int_equal(a.bus, 255);
	assert_false(pci_ecam_decode(Q35_ECAM_SIZE, &a));
	assert_false(pci_ecam_decode(UINT64_MAX, &a));
}

static void test_ecam_reaches_config_space(void **state)
{
	struct tmach m;

	(void)state;
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	/* The host bridge at 00:00.0, the same bytes as through 0xCF8/0xCFC. */
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0), 4), 0x29c08086);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 2), 2), 0x29c0);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0xb), 1), 0x06);
	/* Writes land: the latency timer register is writable. */
	ecam_wr(&m, at(0, 0, 0, 0xd), 1, 0x40);
	assert_int_equal(cfg_rd(&m, 0, 0xd, 1), 0x40);
	/* Absent: other functions, buses, empty slots, extended config space. */
	assert_int_equal(ecam_rd(&m, at(0, 0, 1, 0), 4), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(1, 0, 0, 0), 4), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(0, 7, 0, 0), 4), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0x100), 4), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0xffc), 4), 0xffffffff);
	/* Hostile widths and alignment: all-ones, nothing written. */
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 2), 4), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 3), 2), 0xffffffff & 0xffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0), 3), 0xffffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0), 8), 0xffffffff);
	assert_int_equal(ecam_rd(&m, at(0, 0, 0, 0), 0), 0);
	ecam_wr(&m, at(0, 0, 0, 0xc), 4, 0x11223344); /* valid: cache line, latency */
	assert_int_equal(cfg_rd(&m, 0, 0xd, 1), 0x33);
	ecam_wr(&m, at(0, 0, 0, 0xd), 8, 0x55);
	ecam_wr(&m, at(0, 0, 0, 0xf), 2, 0x66);
	ecam_wr(&m, Q35_ECAM_SIZE + 0xd, 1, 0x77);
	ecam_wr(&m, UINT64_MAX, 4, 0x88);
	assert_int_equal(cfg_rd(&m, 0, 0xd, 1), 0x33);
	/* The vendor id is read-only through ECAM too. */
	ecam_wr(&m, at(0, 0, 0, 0), 4, 0);
	assert_int_equal(cfg_rd(&m, 0, 0, 2), 0x8086);
	tm_fini(&m);
}

static void test_ecam_on_the_mmio_bus(void **state)
{
	struct tmach m;
	struct pci_ecam *e;
	uint8_t d[4];

	(void)state;
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(pci_ecam_create(&e, m.pbus, m.mmio), 0);
	assert_true(bus_access(m.mmio, Q35_ECAM_BASE, d, 4, false));
	assert_int_equal(pci_get_le(d, 4), 0x29c08086);
	assert_true(bus_access(m.mmio, Q35_ECAM_BASE + Q35_ECAM_SIZE - 4, d, 4, false));
	assert_int_equal(pci_get_le(d, 4), 0xffffffff);
	assert_false(bus_access(m.mmio, Q35_ECAM_BASE + Q35_ECAM_SIZE, d, 4, false));
	pci_ecam_destroy(e);
	assert_false(bus_access(m.mmio, Q35_ECAM_BASE, d, 4, false));
	pci_ecam_destroy(NULL);
	tm_fini(&m);
}

static void test_mch_registers(void **state)
{
	struct tmach m;

	(void)state;
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	/* Before setup the MCH registers are read-only zeros. */
	cfg_wr(&m, 0, Q35_MCH_PAM0, 1, 0x33);
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PAM0, 1), 0);
	q35_mch_setup(m.pbus);
	/* PCIEXBAR reads as where ECAM is, enabled; OVMF's value reads back. */
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PCIEXBAR, 4), (uint32_t)Q35_ECAM_BASE | 1);
	cfg_wr(&m, 0, Q35_MCH_PCIEXBAR + 4, 4, 0);
	cfg_wr(&m, 0, Q35_MCH_PCIEXBAR, 4, (uint32_t)Q35_ECAM_BASE | 1);
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PCIEXBAR, 4), (uint32_t)Q35_ECAM_BASE | 1);
	/* Another base is kept in the register (and logged); reserved bits are not. */
	cfg_wr(&m, 0, Q35_MCH_PCIEXBAR, 4, 0xffffffff);
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PCIEXBAR, 4), 0xf0000007);
	cfg_wr(&m, 0, Q35_MCH_PCIEXBAR + 4, 4, 0xffffffff);
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PCIEXBAR + 4, 4), 0xf);
	for (int i = 0; i < 7; i++) {
		cfg_wr(&m, 0, Q35_MCH_PAM0 + i, 1, 0xff);
		assert_int_equal(cfg_rd(&m, 0, Q35_MCH_PAM0 + i, 1), 0x33);
	}
	cfg_wr(&m, 0, Q35_MCH_SMRAM, 1, 0xff);
	assert_int_equal(cfg_rd(&m, 0, Q35_MCH_SMRAM, 1), 0x78);
	/* Garbage everywhere else above the header: nothing changes the ids. */
	for (uint32_t off = 0x40; off < 0x100; off += 4)
		cfg_wr(&m, 0, off, 4, 0xdeadbeef);
	assert_int_equal(cfg_rd(&m, 0, PCI_DEVICE_ID, 2), 0x29c0);
	tm_fini(&m);
}

static void test_lpc(void **state)
{
	struct tmach m;
	struct ich9_lpc *lpc;
	bool en;

	(void)state;
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(ich9_lpc_create(&lpc, m.pbus, 0x600), 0);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, PCI_DEVICE_ID, 2), ICH9_LPC_DEVICE_ID);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, PCI_CLASS_DEVICE, 2), 0x0601);
	/* Reset: PMBASE where the block is served, I/O space bit set, ACPI off. */
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_PMBASE, 4), 0x601);
	assert_int_equal(ich9_lpc_pm_base(lpc, &en), 0x600);
	assert_false(en);
	/* What OVMF does: PMBASE, I/O decode, ACPI_EN. */
	cfg_wr(&m, ICH9_LPC_SLOT, ICH9_PMBASE, 4, 0x600);
	cfg_wr(&m, ICH9_LPC_SLOT, PCI_COMMAND, 2, PCI_COMMAND_IO);
	cfg_wr(&m, ICH9_LPC_SLOT, ICH9_ACPI_CNTL, 1, ICH9_ACPI_EN);
	assert_int_equal(ich9_lpc_pm_base(lpc, &en), 0x600);
	assert_true(en);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_PMBASE, 4), 0x601);
	/* Hostile: all ones into PMBASE keeps the mask, bit 0 stays 1. */
	cfg_wr(&m, ICH9_LPC_SLOT, ICH9_PMBASE, 4, 0xffffffff);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_PMBASE, 4), 0xff81);
	assert_int_equal(ich9_lpc_pm_base(lpc, NULL), 0xff80);
	cfg_wr(&m, ICH9_LPC_SLOT, ICH9_ACPI_CNTL, 1, 0xff);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_ACPI_CNTL, 1), 0x87);
	/* PIRQ routes start disabled and take IRQ numbers. */
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_PIRQA_ROUT, 4), 0x80808080);
	cfg_wr(&m, ICH9_LPC_SLOT, ICH9_PIRQE_ROUT, 4, 0x0b0a0b0a);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, ICH9_PIRQE_ROUT, 4), 0x0b0a0b0a);
	for (uint32_t off = 0x40; off < 0x100; off++)
		cfg_wr(&m, ICH9_LPC_SLOT, off, 1, 0xa5);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, PCI_DEVICE_ID, 2), ICH9_LPC_DEVICE_ID);
	ich9_lpc_destroy(lpc);
	assert_int_equal(cfg_rd(&m, ICH9_LPC_SLOT, PCI_VENDOR_ID, 2), 0xffff);
	ich9_lpc_destroy(NULL);
	tm_fini(&m);
}

static void test_debug_port_lines(void **state)
{
	struct debug_port_line l = {0};
	const char *msg = "PlatformPei\r\n";
	int done = 0;

	(void)state;
	for (const char *p = msg; *p; p++)
		done += debug_port_line_feed(&l, (uint8_t)*p);
	assert_int_equal(done, 1);
	assert_int_equal(l.len, 11);
	assert_memory_equal(l.buf, "PlatformPei", 11);
	/* A line that never ends is cut at DEBUG_PORT_LINE bytes; NULs become spaces. */
	l.len = 0;
	done = 0;
	for (int i = 0; i < 3 * DEBUG_PORT_LINE; i++) {
		if (debug_port_line_feed(&l, i % 7 ? (uint8_t)('a' + i % 26) : 0)) {
			assert_int_equal(l.len, DEBUG_PORT_LINE);
			assert_null(memchr(l.buf, 0, l.len));
			l.len = 0;
			done++;
		}
		assert_true(l.len < DEBUG_PORT_LINE);
	}
	assert_true(done >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ecam_decode),
	    cmocka_unit_test(test_ecam_reaches_config_space),
	    cmocka_unit_test(test_ecam_on_the_mmio_bus),
	    cmocka_unit_test(test_mch_registers),
	    cmocka_unit_test(test_lpc),
	    cmocka_unit_test(test_debug_port_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
