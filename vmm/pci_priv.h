/*
 * vmm/pci.c's inside, shared by its files (pci.h is the door):
 *   pci.c       function setup, config space (0xCF8/0xCFC, 0xCF9), the bus, hot add/remove
 *   pci_bar.c   BAR address windows and mapping BARs onto the buses
 *   pci_msix.c  MSI-X tables, routes and irqfds
 * Locking as pci.h says: the bus lock, then a function's MSI-X lock.
 */
#ifndef VMM_PCI_PRIV_H
#define VMM_PCI_PRIV_H

#include "pci.h"

#define PCI_CF8	       0xcf8
#define PCI_CFC	       0xcfc
#define PCI_MAX_ALLOCS (PCI_NR_SLOTS * PCI_NR_BARS)

struct pci_window {
	uint64_t start, end; /* [start, end) */
	int nr;
	struct {
		uint64_t base, size;
	} used[PCI_MAX_ALLOCS];
};

struct pci_bus {
	pthread_mutex_t lock;
	struct bus *pio, *mmio;
	const struct pci_host_ops *host;
	void *host_opaque;
	uint32_t cf8;
	uint8_t rcr; /* reset control register, port 0xCF9 */
	struct pci_dev *slots[PCI_NR_SLOTS];
	struct pci_dev bridge;
	struct bus_region *cf8_region, *cfc_region;
	struct pci_window win32, win64;
};

/* ---- pci_bar.c ---- */

uint64_t pci_align_up(uint64_t v, uint64_t a);
int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t *out);
void pci_window_free(struct pci_window *w, uint64_t base);
struct pci_window *pci_bar_window(struct pci_bus *pbus, struct pci_bar *b);
void pci_bar_unmap(struct pci_dev *dev, int i);
/* Makes the bus match what config space says: mapped iff memory decode is on. */
void pci_bar_update(struct pci_dev *dev, int i);
void pci_bars_update(struct pci_dev *dev);

/* ---- pci_msix.c ---- */

void pci_msix_vec_teardown(struct pci_dev *dev, struct pci_msix_vec *vec);
/* Called with the bus lock held after a write touched the MSI-X flags. */
void pci_msix_ctrl_written(struct pci_dev *dev);

#endif
