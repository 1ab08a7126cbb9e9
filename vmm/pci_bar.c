/* PCI BARs: address windows and mapping onto the PIO/MMIO buses (pci_priv.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pci_priv.h"

/* ---- BAR address allocator ---------------------------------------------------------------- */

uint64_t pci_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t *out)
{
	uint64_t cand = pci_align_up(w->start, size);

	if (w->nr >= PCI_MAX_ALLOCS)
		return -ENOSPC;
	/* First fit: restart after every overlapping allocation; at most nr restarts each. */
	for (int pass = 0; pass <= w->nr; pass++) {
		bool clash = false;

		if (cand < w->start || cand + size > w->end || cand + size < cand)
			return -ENOSPC;
		for (int i = 0; i < w->nr; i++) {
			uint64_t b = w->used[i].base, e = b + w->used[i].size;

			if (cand < e && b < cand + size) {
				cand = pci_align_up(e, size);
				clash = true;
				break;
			}
		}
		if (!clash) {
			w->used[w->nr].base = cand;
			w->used[w->nr].size = size;
			w->nr++;
			*out = cand;
			return 0;
		}
	}
	return -ENOSPC;
}

void pci_window_free(struct pci_window *w, uint64_t base)
{
	for (int i = 0; i < w->nr; i++) {
		if (w->used[i].base == base) {
			w->used[i] = w->used[--w->nr];
			return;
		}
	}
}

struct pci_window *pci_bar_window(struct pci_bus *pbus, struct pci_bar *b)
{
	return b->is64 ? &pbus->win64 : &pbus->win32;
}

/* ---- BAR mapping -------------------------------------------------------------------------- */

static uint64_t bar_cfg_addr(const struct pci_dev *dev, int i)
{
	uint64_t a = pci_get_le(&dev->cfg[PCI_BAR0 + 4 * i], 4) & ~0xfULL;

	if (dev->bars[i].is64)
		a |= (uint64_t)pci_get_le(&dev->cfg[PCI_BAR0 + 4 * (i + 1)], 4) << 32;
	return a;
}

void pci_bar_unmap(struct pci_dev *dev, int i)
{
	struct pci_bar *b = &dev->bars[i];

	if (!b->region)
		return;
	bus_unregister(dev->bus->mmio, b->region);
	b->region = NULL;
	if (dev->ops && dev->ops->bar_map)
		dev->ops->bar_map(dev, i, b->addr, false);
}

/* Makes the bus match what config space says: mapped iff memory decode is on. */
void pci_bar_update(struct pci_dev *dev, int i)
{
	struct pci_bar *b = &dev->bars[i];
	uint16_t cmd = pci_get_le(&dev->cfg[PCI_COMMAND], 2);
	uint64_t addr = bar_cfg_addr(dev, i);
	bool want = (cmd & PCI_COMMAND_MEMORY) && addr != 0 && addr + b->size > addr;
	int err;

	if (!b->size)
		return;
	if (b->region && (!want || addr != b->addr))
		pci_bar_unmap(dev, i);
	if (!want || b->region)
		return;
	err = bus_register(dev->bus->mmio, addr, b->size, b->fn, b->opaque, &b->region);
	if (err) {
		/* The guest placed it over something else: leave it unreachable, as hardware would.
		 */
		log_ratelimited(LOG_WARN, "pci", "%s: BAR%d at 0x%llx not mapped (%d)", dev->name,
				i, (unsigned long long)addr, err);
		b->region = NULL;
		return;
	}
	b->addr = addr;
	if (dev->ops && dev->ops->bar_map)
		dev->ops->bar_map(dev, i, addr, true);
}

void pci_bars_update(struct pci_dev *dev)
{
	for (int i = 0; i < PCI_NR_BARS; i++)
		pci_bar_update(dev, i);
}
