/*
 * ACPI tables for direct boot, built from the VM's configuration: RSDP, XSDT,
 * FACS, FADT (PM1 blocks, PM timer, reset register), MADT (every vCPU, the
 * IOAPIC, interrupt overrides) and a DSDT (PCI root with its windows, COM1,
 * \_S5). Layouts from the ACPI 6.x specification; placed in the plan's low
 * memory at BOOT_ADDR_ACPI, below the MP table.
 */
#include <errno.h>

#include "boot/acpi_priv.h"
#include "boot/aml.h"
#include "boot/boot_priv.h"

#define FADT_SCI_INT	    46
#define FADT_PM1A_EVT	    56
#define FADT_PM1A_CNT	    64
#define FADT_PM_TMR	    76
#define FADT_PM1_EVT_LEN    88
#define FADT_PM1_CNT_LEN    89
#define FADT_PM_TMR_LEN	    91
#define FADT_P_LVL2_LAT	    96
#define FADT_P_LVL3_LAT	    98
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS	    112
#define FADT_RESET_REG	    116
#define FADT_RESET_VALUE    128
#define FADT_HYPERVISOR_ID  268

#define FADT_F_WBINVD	     (1u << 0)
#define FADT_F_PROC_C1	     (1u << 2)
#define FADT_F_SLP_BUTTON    (1u << 5) /* 1: no fixed-feature sleep button */
#define FADT_F_TMR_VAL_EXT   (1u << 8) /* 32-bit PM timer */
#define FADT_F_RESET_REG_SUP (1u << 10)

#define IAPC_LEGACY_DEVICES  (1u << 0)
#define IAPC_8042	     (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)

#define GAS_SYSTEM_IO	1
#define GAS_ACCESS_BYTE 1

/* MADT entry types and flags. */
#define MADT_LAPIC	 0
#define MADT_IOAPIC	 1
#define MADT_ISO	 2
#define MADT_LAPIC_NMI	 4
#define MADT_PCAT_COMPAT 1
#define MADT_ENABLED	 1
#define MPS_HIGH_EDGE	 0x0005 /* polarity bits 1-0 = 01 high, trigger bits 3-2 = 01 edge */
#define MPS_HIGH_LEVEL	 0x000d /* 01 high, 11 level */

#define ACPI_IOAPIC_ADDR 0xfec00000u
#define ACPI_LAPIC_ADDR	 0xfee00000u
#define ACPI_COM1_PORT	 0x3f8
#define ACPI_COM1_IRQ	 4

uint8_t boot_acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	boot_put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "UVMSHM", 6);
	memcpy(t + 16, "UVM-SHIM", 8);
	boot_put32(t + 24, 1);	   /* OEM revision */
	memcpy(t + 28, "UVMS", 4); /* creator id */
	boot_put32(t + 32, 1);	   /* creator revision */
	t[9] = 0;
	t[9] = boot_acpi_checksum(t, len);
}

static void acpi_gas(uint8_t *g, uint8_t space, uint8_t width, uint8_t access, uint64_t addr)
{
	g[0] = space;
	g[1] = width;
	g[2] = 0; /* bit offset */
	g[3] = access;
	boot_put64(g + 4, addr);
}

static void acpi_fadt(uint8_t *t, uint32_t base, const struct boot_acpi *c)
{
	uint32_t dsdt = base + ACPI_OFF_DSDT;

	boot_put32(t + FADT_FACS, base + ACPI_OFF_FACS);
	boot_put32(t + FADT_DSDT, dsdt);
	boot_put16(t + FADT_SCI_INT, c->sci_irq);
	/* SMI_CMD 0: the machine is always in ACPI mode (SCI_EN reads 1). */
	boot_put32(t + FADT_PM1A_EVT, c->pm_base);
	boot_put32(t + FADT_PM1A_CNT, c->pm_base + 4u);
	boot_put32(t + FADT_PM_TMR, c->pm_base + 8u);
	t[FADT_PM1_EVT_LEN] = 4;
	t[FADT_PM1_CNT_LEN] = 2;
	t[FADT_PM_TMR_LEN] = 4;
	boot_put16(t + FADT_P_LVL2_LAT, 101);  /* > 100: no C2 */
	boot_put16(t + FADT_P_LVL3_LAT, 1001); /* > 1000: no C3 */
	boot_put16(t + FADT_IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT);
	/* PWR_BUTTON clear: the power button is the fixed-feature one in PM1. */
	boot_put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
				       FADT_F_TMR_VAL_EXT | FADT_F_RESET_REG_SUP);
	acpi_gas(t + FADT_RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, c->reset_port);
	t[FADT_RESET_VALUE] = c->reset_value;
	boot_put64(t + FADT_X_DSDT, dsdt);
	memcpy(t + FADT_HYPERVISOR_ID, "UVMSHIM", 8);
	acpi_header(t, "FACP", ACPI_FADT_SIZE, ACPI_FADT_REV);
}

static uint8_t *madt_entry(uint8_t *p, uint8_t type, uint8_t len)
{
	p[0] = type;
	p[1] = len;
	return p + 2;
}

static uint8_t *madt_iso(uint8_t *p, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	uint8_t *e = madt_entry(p, MADT_ISO, 10);

	e[0] = 0; /* bus: ISA */
	e[1] = irq;
	boot_put32(e + 2, gsi);
	boot_put16(e + 6, flags);
	return p + 10;
}

size_t boot_acpi_madt_size(int nr_cpus)
{
	return 44 + (size_t)nr_cpus * 8 + 12 + 2 * 10 + 6;
}

static void acpi_madt(uint8_t *t, int nr_cpus, uint8_t sci_irq)
{
	uint8_t *p = t + 44, *e;

	boot_put32(t + 36, ACPI_LAPIC_ADDR);
	boot_put32(t + 40, MADT_PCAT_COMPAT); /* there are 8259s, masked by the guest */
	for (int i = 0; i < nr_cpus; i++) {
		e = madt_entry(p, MADT_LAPIC, 8);
		e[0] = (uint8_t)i; /* ACPI processor uid */
		e[1] = (uint8_t)i; /* APIC id */
		boot_put32(e + 2, MADT_ENABLED);
		p += 8;
	}
	e = madt_entry(p, MADT_IOAPIC, 12);
	e[0] = (uint8_t)nr_cpus; /* IOAPIC id after the CPUs', as in the MP table */
	e[1] = 0;
	boot_put32(e + 2, ACPI_IOAPIC_ADDR);
	boot_put32(e + 6, 0); /* GSI base */
	p += 12;
	/*
	 * IRQ 0 on GSI 0 (not the PC's pin 2): vmm/ keeps KVM's identity routing
	 * and its PIT raises GSI 0 (see the MP table). The SCI is level, active
	 * high, as the PM block drives it.
	 */
	p = madt_iso(p, 0, 0, MPS_HIGH_EDGE);
	p = madt_iso(p, sci_irq, sci_irq, MPS_HIGH_LEVEL);
	e = madt_entry(p, MADT_LAPIC_NMI, 6);
	e[0] = 0xff; /* every processor */
	boot_put16(e + 1, 0);
	e[3] = 1; /* LINT1 */
	p += 6;
	acpi_header(t, "APIC", (uint32_t)(p - t), ACPI_MADT_REV);
}

/* The DSDT's AML body into a; the caller checks a->failed. */
static void acpi_dsdt_body(struct aml *a, const struct boot_acpi *c)
{
	/* \_S5: SLP_TYPa, SLP_TYPb and two reserved values. */
	aml_name_decl(a, "\\_S5");
	aml_package_begin(a, 4);
	aml_int(a, c->s5_type);
	aml_int(a, c->s5_type);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a);

	aml_scope_begin(a, "\\_SB");

	aml_device_begin(a, "PCI0");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0A03");
	aml_name_decl(a, "_UID");
	aml_int(a, 0);
	aml_name_decl(a, "_SEG");
	aml_int(a, 0);
	aml_name_decl(a, "_BBN");
	aml_int(a, 0);
	aml_name_decl(a, "_CRS");
	aml_buffer_begin(a);
	aml_res_word(a, AML_RES_BUS, 0, 0xff);
	aml_res_io(a, 0xcf8, 0xcf8, 1, 8); /* config mechanism 1 */
	aml_res_word(a, AML_RES_IO, 0, 0xcf7);
	aml_res_word(a, AML_RES_IO, 0xd00, 0xffff);
	aml_res_dword_mem(a, (uint32_t)c->mmio32_start, (uint32_t)(c->mmio32_end - 1));
	if (c->mmio64_end > c->mmio64_start)
		aml_res_qword_mem(a, c->mmio64_start, c->mmio64_end - 1);
	aml_res_end(a);
	aml_end(a); /* _CRS */
	aml_end(a); /* PCI0 */

	aml_device_begin(a, "COM1");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name_decl(a, "_UID");
	aml_int(a, 1);
	aml_name_decl(a, "_CRS");
	aml_buffer_begin(a);
	aml_res_io(a, ACPI_COM1_PORT, ACPI_COM1_PORT, 0, 8);
	aml_res_irq(a, ACPI_COM1_IRQ);
	aml_res_end(a);
	aml_end(a); /* _CRS */
	aml_end(a); /* COM1 */

	aml_end(a); /* \_SB */
}

int acpi_build(uint8_t *buf, uint32_t base, const struct boot_acpi *c, int nr_cpus, char *err,
	       size_t errlen)
{
	uint8_t *rsdp, *xsdt, *facs, *dsdt;
	struct aml a;

	if (!buf || !c || nr_cpus < 1 || nr_cpus > BOOT_MAX_CPUS)
		return boot_fail(err, errlen, -EINVAL, "%d vCPUs: the ACPI tables take 1 to %d",
				 nr_cpus, BOOT_MAX_CPUS);
	if (c->mmio32_start < BOOT_ADDR_HIMEM || c->mmio32_start >= c->mmio32_end ||
	    c->mmio32_end > (1ULL << 32) || c->mmio64_start > c->mmio64_end || c->sci_irq > 15 ||
	    c->s5_type > 7 || c->pm_base > 0xffff - 12)
		return boot_fail(err, errlen, -EINVAL,
				 "ACPI: bad PCI windows, SCI, S5 type or PM base");
	_Static_assert(ACPI_OFF_MADT + 44 + BOOT_MAX_CPUS * 8 + 12 + 2 * 10 + 6 <= ACPI_OFF_DSDT,
		       "MADT runs into the DSDT");
	memset(buf, 0, ACPI_BLOB_SIZE);

	dsdt = buf + ACPI_OFF_DSDT;
	aml_init(&a, dsdt + ACPI_HDR_SIZE, ACPI_DSDT_MAX - ACPI_HDR_SIZE);
	acpi_dsdt_body(&a, c);
	if (a.failed || a.depth)
		return boot_fail(err, errlen, -E2BIG, "cannot encode the DSDT");
	acpi_header(dsdt, "DSDT", (uint32_t)(ACPI_HDR_SIZE + a.len), ACPI_DSDT_REV);

	acpi_fadt(buf + ACPI_OFF_FADT, base, c);
	acpi_madt(buf + ACPI_OFF_MADT, nr_cpus, c->sci_irq);

	facs = buf + ACPI_OFF_FACS;
	memcpy(facs, "FACS", 4);
	boot_put32(facs + 4, ACPI_FACS_SIZE);
	facs[32] = 2; /* version */

	xsdt = buf + ACPI_OFF_XSDT;
	boot_put64(xsdt + ACPI_HDR_SIZE, (uint64_t)base + ACPI_OFF_FADT);
	boot_put64(xsdt + ACPI_HDR_SIZE + 8, (uint64_t)base + ACPI_OFF_MADT);
	acpi_header(xsdt, "XSDT", ACPI_HDR_SIZE + ACPI_XSDT_TABLES * 8, 1);

	rsdp = buf + ACPI_OFF_RSDP;
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "UVMSHM", 6);
	rsdp[15] = 2;		  /* revision: ACPI 2.0+, XSDT */
	boot_put32(rsdp + 16, 0); /* no RSDT */
	boot_put32(rsdp + 20, ACPI_RSDP_SIZE);
	boot_put64(rsdp + 24, (uint64_t)base + ACPI_OFF_XSDT);
	rsdp[8] = boot_acpi_checksum(rsdp, 20);
	rsdp[32] = boot_acpi_checksum(rsdp, ACPI_RSDP_SIZE);
	return 0;
}

int boot_acpi_write(struct boot_plan *plan, const struct boot_acpi *c, int nr_cpus, char *err,
		    size_t errlen)
{
	uint8_t *buf;

	_Static_assert(BOOT_ADDR_ACPI + ACPI_BLOB_SIZE <= BOOT_ADDR_MPTABLE,
		       "ACPI tables run into the MP table");
	if (!plan)
		return boot_fail(err, errlen, -EINVAL, "boot_acpi_write: no plan");
	if (BOOT_ADDR_ACPI + ACPI_BLOB_SIZE > plan->ram.lo_size)
		return boot_fail(err, errlen, -E2BIG, "no room for the ACPI tables at 0x%x",
				 BOOT_ADDR_ACPI);
	/* On failure the plan is not applied (boot_load's contract), so build in place. */
	buf = boot_low(plan, BOOT_ADDR_ACPI, ACPI_BLOB_SIZE);
	return acpi_build(buf, BOOT_ADDR_ACPI, c, nr_cpus, err, errlen);
}
