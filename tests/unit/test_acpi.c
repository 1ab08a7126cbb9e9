/*
 * boot/acpi.c: the tables boot_acpi_write places, read back from guest RAM
 * the way an OS finds them (RSDP by its signature in 0xE0000-0xFFFFF, then
 * XSDT, FADT, FACS, DSDT, MADT): every checksum and length, the FADT's PM
 * blocks and reset register, MADT entries for 1 to 254 vCPUs, the DSDT's PCI
 * windows against the configuration; bad configurations; boot_load pointing
 * the zero page and hvm_start_info at the RSDP. With acpica-tools installed,
 * iasl disassembles every table as an independent check.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "shim/machine.h"
#include "tests/unit/boot_test_image.h"
#include "vmm/acpi_pm.h"
#include "vmm/pci.h"

#define RAM_SIZE (64u << 20)

static uint8_t *ram;
static struct boot_plan *plan;

static const struct boot_acpi cfg = {.pm_base = 0x600,
				     .sci_irq = 9,
				     .s5_type = 0,
				     .reset_port = 0xcf9,
				     .reset_value = 6,
				     .mmio32_start = 0xc0000000,
				     .mmio32_end = 0xfec00000,
				     .mmio64_start = 0x100000000ULL,
				     .mmio64_end = 0x1100000000ULL};

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SIZE);
	plan = malloc(sizeof(*plan));
	return ram && plan ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	free(plan);
	return 0;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

/* Builds the tables for nr_cpus into a zeroed RAM through a plan. */
static void build(int nr_cpus, const struct boot_acpi *c)
{
	char err[128] = "";

	memset(ram, 0, RAM_SIZE);
	boot_plan_reset(plan, &(struct boot_ram){.lo_size = RAM_SIZE});
	assert_int_equal(boot_acpi_write(plan, c, nr_cpus, err, sizeof(err)), 0);
	assert_int_equal(bootimg_apply(plan, ram, RAM_SIZE), 0);
}

/* The RSDP as an OS finds it: 16-byte aligned in the BIOS area. */
static const uint8_t *find_rsdp(void)
{
	for (uint32_t a = 0xe0000; a < 0x100000; a += 16)
		if (!memcmp(ram + a, "RSD PTR ", 8) && sum(ram + a, 20) == 0)
			return ram + a;
	return NULL;
}

/* A table at gpa: signature, a length that stays in RAM, checksum 0. */
static const uint8_t *table(uint64_t gpa, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	assert_true(gpa > 0 && gpa + 36 <= RAM_SIZE);
	t = ram + gpa;
	assert_memory_equal(t, sig, 4);
	len = bootimg_get32(t + 4);
	assert_true(len >= 36 && gpa + len <= RAM_SIZE);
	assert_int_equal(sum(t, len), 0);
	return t;
}

struct tables {
	const uint8_t *rsdp, *xsdt, *fadt, *facs, *dsdt, *madt;
};

static struct tables walk(void)
{
	struct tables t = {0};
	uint32_t n;

	t.rsdp = find_rsdp();
	assert_non_null(t.rsdp);
	assert_int_equal(t.rsdp[15], 2);
	assert_int_equal(bootimg_get32(t.rsdp + 20), 36);
	assert_int_equal(sum(t.rsdp, 36), 0);
	t.xsdt = table(bootimg_get64(t.rsdp + 24), "XSDT");
	n = (bootimg_get32(t.xsdt + 4) - 36) / 8;
	assert_int_equal(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = bootimg_get64(t.xsdt + 36 + 8 * i);

		if (!memcmp(ram + a, "FACP", 4))
			t.fadt = table(a, "FACP");
		else
			t.madt = table(a, "APIC");
	}
	assert_non_null(t.fadt);
	assert_non_null(t.madt);
	assert_int_equal(bootimg_get32(t.fadt + 4), 276);
	assert_int_equal(bootimg_get32(t.fadt + 40), bootimg_get64(t.fadt + 140));
	t.dsdt = table(bootimg_get64(t.fadt + 140), "DSDT");
	t.facs = ram + bootimg_get32(t.fadt + 36);
	assert_memory_equal(t.facs, "FACS", 4);
	assert_int_equal(bootimg_get32(t.facs + 4), 64);
	assert_int_equal((t.facs - ram) % 64, 0);
	return t;
}

static void test_fadt(void **state)
{
	struct tables t;
	const uint8_t *f;

	(void)state;
	build(2, &cfg);
	t = walk();
	f = t.fadt;
	assert_int_equal(f[8], 6);			/* revision */
	assert_int_equal(bootimg_get16(f + 46), 9);	/* SCI_INT */
	assert_int_equal(bootimg_get32(f + 48), 0);	/* SMI_CMD: always ACPI mode */
	assert_int_equal(bootimg_get32(f + 56), 0x600); /* PM1a_EVT_BLK */
	assert_int_equal(bootimg_get32(f + 64), 0x604); /* PM1a_CNT_BLK */
	assert_int_equal(bootimg_get32(f + 76), 0x608); /* PM_TMR_BLK */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(bootimg_get32(f + 112) & (1u << 10), 1u << 10); /* RESET_REG_SUP */
	assert_int_equal(bootimg_get32(f + 112) & (1u << 4), 0);	 /* fixed power button */
	assert_int_equal(bootimg_get32(f + 112) & (1u << 20), 0);	 /* not HW-reduced */
	assert_int_equal(f[116], 1);					 /* reset: system I/O */
	assert_int_equal(f[117], 8);
	assert_int_equal(bootimg_get64(f + 120), 0xcf9);
	assert_int_equal(f[128], 6);
}

/* Walks the MADT: every vCPU once, one IOAPIC, the overrides, an NMI entry. */
static void check_madt(const uint8_t *m, int nr_cpus)
{
	uint32_t len = bootimg_get32(m + 4);
	const uint8_t *p = m + 44, *end = m + len;
	int cpus = 0, ioapics = 0, isos = 0, nmis = 0;

	assert_int_equal(len, boot_acpi_madt_size(nr_cpus));
	assert_int_equal(bootimg_get32(m + 36), 0xfee00000);
	while (p < end) {
		assert_true(p[1] >= 2 && p + p[1] <= end);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], 8);
			assert_int_equal(p[2], cpus); /* uid */
			assert_int_equal(p[3], cpus); /* APIC id */
			assert_int_equal(bootimg_get32(p + 4), 1);
			cpus++;
			break;
		case 1:
			assert_int_equal(p[1], 12);
			assert_int_equal(p[2], nr_cpus);
			assert_int_equal(bootimg_get32(p + 4), 0xfec00000);
			assert_int_equal(bootimg_get32(p + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(p[1], 10);
			assert_int_equal(bootimg_get32(p + 4), p[3]); /* identity routing */
			if (p[3] == 9)
				assert_int_equal(bootimg_get16(p + 8), 0xd); /* level, high */
			isos++;
			break;
		case 4:
			assert_int_equal(p[1], 6);
			assert_int_equal(p[2], 0xff);
			assert_int_equal(p[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
		p += p[1];
	}
	assert_ptr_equal(p, end);
	assert_int_equal(cpus, nr_cpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_int_equal(nmis, 1);
}

static void test_madt_cpus(void **state)
{
	(void)state;
	for (int n = 1; n <= 64; n++) {
		build(n, &cfg);
		check_madt(walk().madt, n);
	}
	build(BOOT_MAX_CPUS, &cfg);
	check_madt(walk().madt, BOOT_MAX_CPUS);
}

/* Finds a resource descriptor of the given tag in the DSDT; NULL if none. */
static const uint8_t *find_res(const uint8_t *dsdt, uint8_t tag, uint8_t rtype, int nth)
{
	uint32_t len = bootimg_get32(dsdt + 4);

	for (const uint8_t *p = dsdt + 36; p + 3 < dsdt + len; p++)
		if (p[0] == tag && p[3] == rtype && p[4] == 0x0c && nth-- == 0)
			return p;
	return NULL;
}

static void test_dsdt_windows(void **state)
{
	struct boot_acpi c = cfg;
	const uint8_t *d, *w;

	(void)state;
	build(4, &c);
	d = walk().dsdt;
	assert_non_null(memmem(d, bootimg_get32(d + 4), "\x0c\x41\xd0\x0a\x03", 5)); /* PNP0A03 */
	assert_non_null(memmem(d, bootimg_get32(d + 4), "\x0c\x41\xd0\x05\x01", 5)); /* PNP0501 */
	assert_non_null(memmem(d, bootimg_get32(d + 4), "_S5_", 4));
	/* 32-bit window: DWord memory, [start, end - 1], length. */
	w = find_res(d, 0x87, 0, 0);
	assert_non_null(w);
	assert_int_equal(bootimg_get32(w + 10), c.mmio32_start);
	assert_int_equal(bootimg_get32(w + 14), c.mmio32_end - 1);
	assert_int_equal(bootimg_get32(w + 22), c.mmio32_end - c.mmio32_start);
	/* 64-bit window: QWord memory. */
	w = find_res(d, 0x8a, 0, 0);
	assert_non_null(w);
	assert_int_equal(bootimg_get64(w + 14), c.mmio64_start);
	assert_int_equal(bootimg_get64(w + 22), c.mmio64_end - 1);
	assert_int_equal(bootimg_get64(w + 38), c.mmio64_end - c.mmio64_start);
	/* Bus numbers 0-255 and the I/O ranges around 0xCF8. */
	w = find_res(d, 0x88, 2, 0);
	assert_non_null(w);
	assert_int_equal(bootimg_get16(w + 8), 0);
	assert_int_equal(bootimg_get16(w + 10), 0xff);
	w = find_res(d, 0x88, 1, 1);
	assert_non_null(w);
	assert_int_equal(bootimg_get16(w + 8), 0xd00);
	assert_int_equal(bootimg_get16(w + 10), 0xffff);

	/* No 64-bit window: no QWord descriptor. */
	c.mmio64_end = c.mmio64_start;
	build(1, &c);
	assert_null(find_res(walk().dsdt, 0x8a, 0, 0));
}

static void test_bad_config(void **state)
{
	struct boot_acpi c;
	char err[128];

	(void)state;
	boot_plan_reset(plan, &(struct boot_ram){.lo_size = RAM_SIZE});
	assert_int_equal(boot_acpi_write(plan, &cfg, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_acpi_write(plan, &cfg, BOOT_MAX_CPUS + 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_acpi_write(plan, NULL, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_acpi_write(NULL, &cfg, 1, NULL, 0), -EINVAL);
	c = cfg;
	c.mmio32_end = c.mmio32_start;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	c = cfg;
	c.mmio32_start = 0; /* a window over low RAM, and a length that does not fit 32 bits */
	c.mmio32_end = 1ULL << 32;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	c = cfg;
	c.mmio32_end = (1ULL << 32) + 1;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	c = cfg;
	c.mmio64_end = c.mmio64_start - 1;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	c = cfg;
	c.sci_irq = 16;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	c = cfg;
	c.pm_base = 0xfff8;
	assert_int_equal(boot_acpi_write(plan, &c, 1, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
}

/* boot_load with ACPI: the zero page's acpi_rsdp_addr and hvm_start_info's rsdp_paddr. */
static void test_boot_load_points_at_rsdp(void **state)
{
	static uint8_t img[5 * 512 + 0x2000];
	struct boot_input in = {
	    .kernel = img, .kernel_size = sizeof(img), .nr_cpus = 2, .acpi = &cfg};
	struct boot_ram r = {.lo_size = RAM_SIZE};
	char err[256] = "";

	(void)state;
	bootimg_bz_header(img, 4, 0x2000, 0x100000, 0x10000);
	memset(ram, 0, RAM_SIZE);
	assert_int_equal(boot_load(plan, &r, &in, err, sizeof(err)), 0);
	assert_int_equal(bootimg_apply(plan, ram, RAM_SIZE), 0);
	assert_int_equal(bootimg_get64(ram + BOOT_ADDR_ZERO_PAGE + 0x70), BOOT_ADDR_ACPI);
	assert_ptr_equal(find_rsdp(), ram + BOOT_ADDR_ACPI);
	walk();
	/* Without ACPI: no RSDP anywhere, the pointer stays 0. */
	in.acpi = NULL;
	memset(ram, 0, RAM_SIZE);
	assert_int_equal(boot_load(plan, &r, &in, err, sizeof(err)), 0);
	assert_int_equal(bootimg_apply(plan, ram, RAM_SIZE), 0);
	assert_int_equal(bootimg_get64(ram + BOOT_ADDR_ZERO_PAGE + 0x70), 0);
	assert_null(find_rsdp());
}

/* The shim's configuration: the windows vmm/pci.c decodes, the PM block vmm/acpi_pm.c serves. */
static void test_machine_config_matches_vmm(void **state)
{
	struct guest_mem *m;
	struct boot_acpi c;

	(void)state;
	assert_int_equal(mem_create(&m, 4ULL << 30), 0); /* RAM above 4 GiB too (not touched) */
	machine_acpi_config(&c, m);
	assert_int_equal(c.pm_base, ACPI_PM_BASE);
	assert_int_equal(c.sci_irq, ACPI_PM_SCI_IRQ);
	assert_int_equal(c.s5_type, ACPI_PM_S5_TYPE);
	assert_int_equal(c.mmio32_start, PCI_MMIO32_START);
	assert_int_equal(c.mmio32_end, PCI_MMIO32_END);
	assert_int_equal(c.mmio64_start, mem_top(m));
	assert_int_equal(c.mmio64_end, mem_top(m) + PCI_MMIO64_SIZE);
	assert_true(c.mmio64_start >= MEM_4G + (1ULL << 30));
	build(2, &c);
	walk();
	mem_destroy(m);
}

/*
 * Runs the loader's commands the way firmware does: each file allocated at
 * its own address in RAM, pointers relocated, checksums filled in.
 */
static void run_loader(const struct boot_acpi_blobs *b, uint64_t rsdp_at, uint64_t tables_at)
{
	struct {
		const char *name;
		const uint8_t *data;
		size_t len;
		uint64_t at;
		bool allocated;
	} files[2] = {{BOOT_ACPI_FILE_RSDP, b->rsdp, sizeof(b->rsdp), rsdp_at, false},
		      {BOOT_ACPI_FILE_TABLES, b->tables, sizeof(b->tables), tables_at, false}};
	int allocs = 0, pointers = 0, checksums = 0;

	assert_int_equal(b->loader_len % BOOT_ACPI_LOADER_ENTRY, 0);
	for (size_t off = 0; off < b->loader_len; off += BOOT_ACPI_LOADER_ENTRY) {
		const uint8_t *e = b->loader + off;
		int f = -1, g = -1;

		for (int i = 0; i < 2; i++) {
			if (!strncmp((const char *)e + 4, files[i].name, 56))
				f = i;
			if (!strncmp((const char *)e + 60, files[i].name, 56))
				g = i;
		}
		switch (bootimg_get32(e)) {
		case 1: /* allocate: file, align, zone */
			assert_true(f >= 0);
			assert_int_equal(files[f].at % bootimg_get32(e + 60), 0);
			assert_int_equal(e[64], f == 0 ? 2 : 1);
			memcpy(ram + files[f].at, files[f].data, files[f].len);
			files[f].allocated = true;
			allocs++;
			break;
		case 2: { /* add pointer: dest, src, offset, size */
			uint32_t at = bootimg_get32(e + 116);
			uint8_t size = e[120];
			uint64_t v = 0;

			assert_true(f >= 0 && g >= 0 && files[f].allocated && files[g].allocated);
			assert_true(size == 4 || size == 8);
			assert_true(at + size <= files[f].len);
			memcpy(&v, ram + files[f].at + at, size);
			assert_true(v < files[g].len); /* an offset into the source file */
			v += files[g].at;
			memcpy(ram + files[f].at + at, &v, size);
			pointers++;
			break;
		}
		case 3: { /* add checksum: file, result, start, length */
			uint32_t res = bootimg_get32(e + 60), start = bootimg_get32(e + 64),
				 len = bootimg_get32(e + 68);

			assert_true(f >= 0 && files[f].allocated);
			assert_true(start + len <= files[f].len && res >= start &&
				    res < start + len);
			assert_int_equal(ram[files[f].at + res], 0); /* must come zeroed */
			ram[files[f].at + res] = boot_acpi_checksum(ram + files[f].at + start, len);
			checksums++;
			break;
		}
		default:
			fail_msg("unknown loader command %u", bootimg_get32(e));
		}
	}
	assert_int_equal(allocs, 2);
	assert_int_equal(pointers, 6);
	assert_int_equal(checksums, 6);
}

static void test_loader_files(void **state)
{
	struct boot_acpi_blobs *b = malloc(sizeof(*b));
	char err[128];

	(void)state;
	assert_non_null(b);
	assert_int_equal(boot_acpi_blobs_build(b, &cfg, 4, err, sizeof(err)), 0);
	/* As they are in fw_cfg: no pointer resolved, no checksum filled. */
	assert_memory_equal(b->rsdp, "RSD PTR ", 8);
	assert_int_equal(b->rsdp[8], 0);
	assert_int_equal(b->rsdp[32], 0);
	assert_int_equal(bootimg_get64(b->rsdp + 24), 0x40); /* offset of the XSDT */
	/* Placed at two places, the way OVMF would: the OS sees the usual tables. */
	memset(ram, 0, RAM_SIZE);
	run_loader(b, 0xf5000, 0x123000);
	struct tables t = walk();
	assert_ptr_equal(t.rsdp, ram + 0xf5000);
	assert_ptr_equal(t.xsdt, ram + 0x123040);
	check_madt(t.madt, 4);
	assert_int_equal(bootimg_get32(t.fadt + 56), 0x600);
	/* And once more elsewhere: nothing depends on the first placement. */
	memset(ram, 0, RAM_SIZE);
	run_loader(b, 0xe0000, 0x2000000);
	assert_ptr_equal(walk().dsdt, ram + 0x2001000);
	assert_int_equal(boot_acpi_blobs_build(b, &cfg, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(boot_acpi_blobs_build(NULL, &cfg, 1, err, sizeof(err)), -EINVAL);
	free(b);
}

/* iasl (acpica-tools) must disassemble each table without an error. */
static void test_iasl(void **state)
{
	char dir[] = "/tmp/uvm-acpi-XXXXXX", path[256], cmd[1024];
	struct tables t;
	const uint8_t *tabs[4];
	const char *names[4] = {"dsdt", "facp", "apic", "xsdt"};
	int rc;

	(void)state;
	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		printf("SKIP test_iasl: iasl not installed (Debian package acpica-tools)\n");
		skip();
	}
	build(8, &cfg);
	t = walk();
	tabs[0] = t.dsdt;
	tabs[1] = t.fadt;
	tabs[2] = t.madt;
	tabs[3] = t.xsdt;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 4; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.dat", dir, names[i]);
		f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(tabs[i], bootimg_get32(tabs[i] + 4), 1, f), 1);
		fclose(f);
		snprintf(cmd, sizeof(cmd),
			 "cd %s && iasl -d %s.dat >%s.log 2>&1 && ! grep -qi 'error' %s.dsl", dir,
			 names[i], names[i], names[i]);
		rc = system(cmd);
		if (rc != 0) {
			snprintf(cmd, sizeof(cmd), "cat %s/%s.log %s/%s.dsl", dir, names[i], dir,
				 names[i]);
			(void)!system(cmd);
			fail_msg("iasl rejects %s", names[i]);
		}
	}
	/* The DSDT reads back as the ASL we meant. */
	snprintf(
	    cmd, sizeof(cmd),
	    "grep -q 'Device (PCI0)' %1$s/dsdt.dsl && grep -q 'EisaId (\"PNP0A03\")' %1$s/dsdt.dsl"
	    " && grep -q 'Device (COM1)' %1$s/dsdt.dsl && grep -q '_S5' %1$s/dsdt.dsl"
	    " && grep -q 'QWordMemory' %1$s/dsdt.dsl && grep -q 'IRQNoFlags' %1$s/dsdt.dsl",
	    dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fadt),
	    cmocka_unit_test(test_madt_cpus),
	    cmocka_unit_test(test_dsdt_windows),
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_boot_load_points_at_rsdp),
	    cmocka_unit_test(test_machine_config_matches_vmm),
	    cmocka_unit_test(test_loader_files),
	    cmocka_unit_test(test_iasl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
