/*
 * PCIe ECAM on the Q35 layout: OVMF's PCI library reaches config space through
 * memory at Q35_ECAM_BASE (bus << 20 | device << 15 | function << 12 | register)
 * once its platform code has programmed PCIEXBAR. Only bus 0 function 0 exists
 * here, with the 256 bytes of conventional config space behind it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "pci.h"
#include "q35.h"

struct pci_ecam {
	struct pci_bus *pbus;
	struct bus *mmio;
	struct bus_region *region;
};

bool pci_ecam_decode(uint64_t off, struct pci_ecam_addr *a)
{
	if (off >= Q35_ECAM_SIZE)
		return false;
	a->bus = (uint8_t)(off >> 20);
	a->dev = (uint8_t)((off >> 15) & 0x1f);
	a->fn = (uint8_t)((off >> 12) & 7);
	a->reg = (uint16_t)(off & 0xfff);
	return true;
}

void pci_ecam_access(struct pci_bus *pbus, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_ecam_addr a;
	bool ok = len && len <= 4 && !(len & (len - 1)) && pci_ecam_decode(off, &a) && a.bus == 0 &&
		  a.fn == 0 && (a.reg & 3) + len <= 4;

	if (!ok || a.reg + len > PCI_CFG_SIZE) {
		/* Absent functions and extended config space: all-ones, writes dropped. */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write)
		pci_config_write(pbus, a.dev, a.reg, len, pci_get_le(data, len));
	else
		pci_put_le(data, len, pci_config_read(pbus, a.dev, a.reg, len));
}

static void ecam_mmio(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_ecam *e = opaque;

	pci_ecam_access(e->pbus, off, data, len, is_write);
}

int pci_ecam_create(struct pci_ecam **out, struct pci_bus *pbus, struct bus *mmio)
{
	struct pci_ecam *e = calloc(1, sizeof(*e));
	int ret;

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->pbus = pbus;
	e->mmio = mmio;
	ret = bus_register(mmio, Q35_ECAM_BASE, Q35_ECAM_SIZE, ecam_mmio, e, &e->region);
	if (ret) {
		free(e);
		return ret;
	}
	*out = e;
	return 0;
}

void pci_ecam_destroy(struct pci_ecam *e)
{
	if (!e)
		return;
	bus_unregister(e->mmio, e->region);
	free(e);
}
