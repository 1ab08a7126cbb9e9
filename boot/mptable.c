/*
 * Intel MultiProcessor Specification 1.4 tables. Without ACPI this is how
 * Linux learns the vCPUs' APIC ids and where the IOAPIC is and how ISA IRQs
 * reach it.
 */
#include <errno.h>

#include "boot/boot_priv.h"

#define MP_FPS_SIZE	 16
#define MP_HDR_SIZE	 44
#define MP_CPU_SIZE	 20
#define MP_ENTRY_SIZE	 8 /* bus, IOAPIC, I/O and local interrupt entries */
#define MP_SPEC_REV	 4 /* 1.4 */
#define MP_LAPIC_ADDR	 0xfee00000u
#define MP_IOAPIC_ADDR	 0xfec00000u
#define MP_LAPIC_VERSION 0x14
#define MP_IOAPIC_VER	 0x11
#define MP_BUS_PCI	 0
#define MP_BUS_ISA	 1
#define MP_ISA_IRQS	 16
#define MP_IRQ0_PIN	 0 /* see the IRQ entries below */

enum { MP_T_CPU, MP_T_BUS, MP_T_IOAPIC, MP_T_IOINT, MP_T_LINT };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static uint8_t *mp_bus(uint8_t *p, uint8_t id, const char name[6])
{
	p[0] = MP_T_BUS;
	p[1] = id;
	memcpy(p + 2, name, 6);
	return p + MP_ENTRY_SIZE;
}

/* An I/O (type 3) or local (type 4) interrupt assignment entry; flags 0 = bus default. */
static uint8_t *mp_irq(uint8_t *p, uint8_t type, uint8_t irqtype, uint8_t bus, uint8_t bus_irq,
		       uint8_t dst, uint8_t dst_pin)
{
	p[0] = type;
	p[1] = irqtype;
	boot_put16(p + 2, 0);
	p[4] = bus;
	p[5] = bus_irq;
	p[6] = dst;
	p[7] = dst_pin;
	return p + MP_ENTRY_SIZE;
}

int boot_mptable_write(struct boot_plan *plan, int nr_cpus, char *err, size_t errlen)
{
	uint8_t *fps, *hdr, *p;
	uint64_t size;
	uint16_t count = 0;
	int i;

	if (!plan || nr_cpus < 1 || nr_cpus > BOOT_MAX_CPUS)
		return boot_fail(err, errlen, -EINVAL, "%d vCPUs: the MP table takes 1 to %d",
				 nr_cpus, BOOT_MAX_CPUS);
	size = MP_FPS_SIZE + MP_HDR_SIZE + (uint64_t)nr_cpus * MP_CPU_SIZE +
	       (2 + 1 + MP_ISA_IRQS + 2) * MP_ENTRY_SIZE;
	fps = BOOT_ADDR_MPTABLE + size <= plan->ram.lo_size
		  ? boot_low(plan, BOOT_ADDR_MPTABLE, size)
		  : NULL;
	if (!fps)
		return boot_fail(err, errlen, -E2BIG, "no room for the MP table at 0x%x",
				 BOOT_ADDR_MPTABLE);
	memset(fps, 0, size);
	hdr = fps + MP_FPS_SIZE;
	p = hdr + MP_HDR_SIZE;

	/* Entries must come sorted by type: CPUs, buses, IOAPICs, I/O, local. */
	for (i = 0; i < nr_cpus; i++, count++) {
		p[0] = MP_T_CPU;
		p[1] = (uint8_t)i;
		p[2] = MP_LAPIC_VERSION;
		p[3] = 0x01 | (i == 0 ? 0x02 : 0);	  /* enabled, bootstrap processor */
		boot_put32(p + 4, 0x600);		  /* family 6 */
		boot_put32(p + 8, (1u << 0) | (1u << 9)); /* FPU, APIC */
		p += MP_CPU_SIZE;
	}
	p = mp_bus(p, MP_BUS_PCI, "PCI   ");
	p = mp_bus(p, MP_BUS_ISA, "ISA   ");
	count += 2;

	p[0] = MP_T_IOAPIC;
	p[1] = (uint8_t)nr_cpus;
	p[2] = MP_IOAPIC_VER;
	p[3] = 0x01; /* enabled */
	boot_put32(p + 4, MP_IOAPIC_ADDR);
	p += MP_ENTRY_SIZE;
	count++;

	/*
	 * ISA IRQ i on IOAPIC pin i, IRQ 0 included: vmm/ keeps KVM's default
	 * routing (GSI i -> PIC and IOAPIC pin i) and the in-kernel PIT raises
	 * GSI 0. A PC-style "IRQ 0 on pin 2" entry needs GSI 0 routed to pin 2.
	 */
	for (i = 0; i < MP_ISA_IRQS; i++) {
		p = mp_irq(p, MP_T_IOINT, MP_INT, MP_BUS_ISA, (uint8_t)i, (uint8_t)nr_cpus,
			   i == 0 ? MP_IRQ0_PIN : (uint8_t)i);
		count++;
	}
	/* Virtual wire: the 8259 reaches every LAPIC's LINT0, NMI its LINT1. */
	p = mp_irq(p, MP_T_LINT, MP_EXTINT, MP_BUS_ISA, 0, 0xff, 0);
	p = mp_irq(p, MP_T_LINT, MP_NMI, MP_BUS_ISA, 0, 0xff, 1);
	count += 2;

	memcpy(hdr, "PCMP", 4);
	boot_put16(hdr + 4, (uint16_t)(p - hdr));
	hdr[6] = MP_SPEC_REV;
	memcpy(hdr + 8, "UVMSHIM ", 8);
	memcpy(hdr + 16, "UVM-SHIM    ", 12);
	boot_put16(hdr + 34, count);
	boot_put32(hdr + 36, MP_LAPIC_ADDR);
	hdr[7] = mp_checksum(hdr, (size_t)(p - hdr));

	memcpy(fps, "_MP_", 4);
	boot_put32(fps + 4, BOOT_ADDR_MPTABLE + MP_FPS_SIZE);
	fps[8] = 1; /* length in 16-byte units */
	fps[9] = MP_SPEC_REV;
	/* feature1 = 0: a config table is present; feature2 = 0: virtual wire mode. */
	fps[10] = mp_checksum(fps, MP_FPS_SIZE);
	return (int)(p - fps);
}
