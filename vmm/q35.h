/*
 * The Q35 chipset pieces that OVMF's platform code probes (docs/boot.md,
 * "UEFI"): the MCH's registers on the host bridge, PCIe ECAM (memory-mapped
 * config space) at Q35_ECAM_BASE, and the ICH9 LPC bridge at 00:1f.0 with its
 * PMBASE and ACPI_CNTL registers. Direct-boot guests do without them; the
 * host bridge answers as the Q35 MCH in both modes.
 */
#ifndef VMM_Q35_H
#define VMM_Q35_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct pci_bus;
struct pci_dev;

/* ---- ECAM (vmm/pci_ecam.c) ---------------------------------------------------------------- */

/* OVMF's fixed PcdPciExpressBaseAddress; 256 buses of 1 MiB. Low RAM must end below it. */
#define Q35_ECAM_BASE 0xB0000000ULL
#define Q35_ECAM_SIZE 0x10000000ULL

/* Where an ECAM offset points: bus, device, function, register. */
struct pci_ecam_addr {
	uint8_t bus, dev, fn;
	uint16_t reg;
};

/* Decodes off (from Q35_ECAM_BASE); false when off is outside the window. */
bool pci_ecam_decode(uint64_t off, struct pci_ecam_addr *a);

/*
 * One guest access at off: bus 0 function 0 reaches pbus's config space
 * (dword-contained accesses of 1, 2 or 4 bytes); everything else reads as
 * all-ones and swallows writes.
 */
void pci_ecam_access(struct pci_bus *pbus, uint64_t off, uint8_t *data, uint32_t len,
		     bool is_write);

struct pci_ecam;
int pci_ecam_create(struct pci_ecam **out, struct pci_bus *pbus, struct bus *mmio)
    __attribute__((warn_unused_result));
void pci_ecam_destroy(struct pci_ecam *e);

/* ---- MCH registers on the host bridge (vmm/q35_mch.c) ------------------------------------- */

#define Q35_MCH_PCIEXBAR 0x60 /* 64 bits: base | length | enable */
#define Q35_MCH_PAM0	 0x90 /* PAM0-6: BIOS area read/write enables */
#define Q35_MCH_SMRAM	 0x9d
#define Q35_MCH_ESMRAMC	 0x9e

/*
 * Makes the MCH registers firmware writes read back what it wrote (the memory
 * behind PAM and SMRAM never changes: RAM stays RAM, and ECAM stays at
 * Q35_ECAM_BASE whatever PCIEXBAR says; a different value is logged).
 */
void q35_mch_setup(struct pci_bus *pbus);

/* ---- ICH9 LPC bridge at 00:1f.0 (vmm/ich9_lpc.c) ------------------------------------------ */

#define ICH9_LPC_SLOT	   31
#define ICH9_LPC_DEVICE_ID 0x2918
#define ICH9_PMBASE	   0x40 /* bits 15:7 the I/O base, bit 0 reads 1 */
#define ICH9_ACPI_CNTL	   0x44 /* bit 7 ACPI_EN, bits 2:0 SCI IRQ select */
#define ICH9_ACPI_EN	   0x80
#define ICH9_PIRQA_ROUT	   0x60 /* PIRQ A-D route control, E-H at 0x68 */
#define ICH9_PIRQE_ROUT	   0x68
#define ICH9_GEN_PMCON_1   0xa0
#define ICH9_RCBA	   0xf0

struct ich9_lpc;
/* Initialises the function (not yet on a bus); pm_base is where vmm/acpi_pm.c serves the block. */
void ich9_lpc_init(struct ich9_lpc *lpc, uint16_t pm_base);
/* The PM base the guest programmed, and whether ACPI_EN is set. */
uint16_t ich9_lpc_pm_base(const struct ich9_lpc *lpc, bool *enabled);

int ich9_lpc_create(struct ich9_lpc **out, struct pci_bus *pbus, uint16_t pm_base)
    __attribute__((warn_unused_result));
/* Removes it from the bus (if added) and frees it. NULL ok. */
void ich9_lpc_destroy(struct ich9_lpc *lpc);
/* The embedded function (tests drive its config space through pci_config_*). */
struct pci_dev *ich9_lpc_dev(struct ich9_lpc *lpc);

#endif
