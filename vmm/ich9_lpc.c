/*
 * ICH9 LPC bridge (00:1f.0, 8086:2918), as far as OVMF's Q35 path uses it:
 * PMBASE (0x40) and ACPI_CNTL (0x44) tell the firmware's timer and reset
 * code where the ACPI PM block is, the PIRQ route registers take the IRQs
 * its PCI code assigns, RCBA takes the root complex base. The PM block
 * itself (vmm/acpi_pm.c) is fixed at the port OVMF programs (0x600): a guest
 * that enables another base is logged, and the block does not move.
 */
#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "pci.h"
#include "q35.h"

struct ich9_lpc {
	struct pci_dev dev; /* first: config hooks reach the lpc from the dev */
	uint16_t served_base;
};

static struct ich9_lpc *lpc_of(struct pci_dev *dev)
{
	return (struct ich9_lpc *)dev; /* dev is the first member */
}

uint16_t ich9_lpc_pm_base(const struct ich9_lpc *lpc, bool *enabled)
{
	if (enabled)
		*enabled = lpc->dev.cfg[ICH9_ACPI_CNTL] & ICH9_ACPI_EN;
	return (uint16_t)(pci_get_le(&lpc->dev.cfg[ICH9_PMBASE], 2) & 0xff80);
}

static void lpc_config_write(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	struct ich9_lpc *lpc = lpc_of(dev);
	bool en;
	uint16_t base;

	if (off + len <= ICH9_PMBASE || off > ICH9_ACPI_CNTL)
		return;
	base = ich9_lpc_pm_base(lpc, &en);
	if (en && base != lpc->served_base)
		log_ratelimited(LOG_WARN, "lpc",
				"PMBASE 0x%x ignored: the ACPI PM block stays at 0x%x", base,
				lpc->served_base);
}

static const struct pci_dev_ops lpc_ops = {.config_write = lpc_config_write};

void ich9_lpc_init(struct ich9_lpc *lpc, uint16_t pm_base)
{
	struct pci_dev *d = &lpc->dev;

	/* Class 06/01 (ISA bridge), revision 2 as on QEMU's q35. */
	pci_dev_init(d, "ich9-lpc", 0x8086, ICH9_LPC_DEVICE_ID, 0x060100, 2, 0x1af4, 0x1100,
		     &lpc_ops);
	lpc->served_base = pm_base;
	/* PMBASE: bits 15:7 writable, bit 0 (I/O space) reads 1. Reset value: the served base. */
	pci_put_le(&d->cfg[ICH9_PMBASE], 4, pm_base | 1u);
	pci_put_le(&d->wmask[ICH9_PMBASE], 2, 0xff80);
	/* ACPI_CNTL: ACPI_EN and the SCI IRQ select (0: IRQ 9). */
	d->wmask[ICH9_ACPI_CNTL] = ICH9_ACPI_EN | 0x07;
	/* PIRQ routes: reset 0x80 (disabled), IRQ number and disable bit writable. */
	for (int i = 0; i < 4; i++) {
		d->cfg[ICH9_PIRQA_ROUT + i] = d->cfg[ICH9_PIRQE_ROUT + i] = 0x80;
		d->wmask[ICH9_PIRQA_ROUT + i] = d->wmask[ICH9_PIRQE_ROUT + i] = 0x8f;
	}
	pci_put_le(&d->wmask[ICH9_GEN_PMCON_1], 2, 0xffff);
	pci_put_le(&d->wmask[ICH9_RCBA], 4, 0xffffc001);
}

struct pci_dev *ich9_lpc_dev(struct ich9_lpc *lpc)
{
	return &lpc->dev;
}

int ich9_lpc_create(struct ich9_lpc **out, struct pci_bus *pbus, uint16_t pm_base)
{
	struct ich9_lpc *lpc = calloc(1, sizeof(*lpc));
	int ret;

	*out = NULL;
	if (!lpc)
		return -ENOMEM;
	ich9_lpc_init(lpc, pm_base);
	ret = pci_dev_add(pbus, &lpc->dev, ICH9_LPC_SLOT);
	if (ret < 0) {
		free(lpc);
		return ret;
	}
	*out = lpc;
	return 0;
}

void ich9_lpc_destroy(struct ich9_lpc *lpc)
{
	if (!lpc)
		return;
	pci_dev_remove(&lpc->dev);
	free(lpc);
}
