/*
 * PCI host bridge, configuration mechanism 1, bus 0. See pci.h for the model
 * and the locking rules.
 */
#include "pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pci_priv.h"

/* ---- Function setup ----------------------------------------------------------------------- */

void pci_dev_init(struct pci_dev *dev, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops)
{
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	dev->ops = ops;
	dev->slot = -1;
	dev->cap_end = PCI_CAP_START;
	pci_put_le(&dev->cfg[PCI_VENDOR_ID], 2, vendor);
	pci_put_le(&dev->cfg[PCI_DEVICE_ID], 2, device);
	dev->cfg[PCI_REVISION_ID] = revision;
	pci_put_le(&dev->cfg[PCI_CLASS_PROG], 3, class_code);
	pci_put_le(&dev->cfg[PCI_SUBSYS_VENDOR], 2, subsys_vendor);
	pci_put_le(&dev->cfg[PCI_SUBSYS_ID], 2, subsys_id);
	/* Command: I/O, memory, bus master, parity, SERR, INTx disable. */
	pci_put_le(&dev->wmask[PCI_COMMAND], 2, 0x0547);
	/* Status error bits are write-1-to-clear. */
	pci_put_le(&dev->w1cmask[PCI_STATUS], 2, 0xf900);
	dev->wmask[0x0c] = 0xff; /* cache line size */
	dev->wmask[0x0d] = 0xff; /* latency timer */
	dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

int pci_dev_set_bar(struct pci_dev *dev, int bar, uint64_t size, bool is64, bus_access_fn fn,
		    void *opaque)
{
	struct pci_bar *b;
	uint32_t flags = is64 ? PCI_BAR_MEM_64 : 0;
	uint64_t mask = ~(size - 1);

	if (bar < 0 || bar >= PCI_NR_BARS || (is64 && bar == PCI_NR_BARS - 1) || !fn)
		return -EINVAL;
	if (size < 4096 || (size & (size - 1)) || (!is64 && size > (1ULL << 31)))
		return -EINVAL;
	b = &dev->bars[bar];
	if (b->size || (bar > 0 && dev->bars[bar - 1].is64) || (is64 && dev->bars[bar + 1].size))
		return -EBUSY;
	b->size = size;
	b->is64 = is64;
	b->fn = fn;
	b->opaque = opaque;
	pci_put_le(&dev->cfg[PCI_BAR0 + 4 * bar], 4, flags);
	pci_put_le(&dev->wmask[PCI_BAR0 + 4 * bar], 4, (uint32_t)mask & ~0xfU);
	if (is64)
		pci_put_le(&dev->wmask[PCI_BAR0 + 4 * (bar + 1)], 4, mask >> 32);
	return 0;
}

int pci_cap_add(struct pci_dev *dev, const void *data, uint32_t len, const uint8_t *wmask)
{
	uint32_t off = dev->cap_end;

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(&dev->cfg[off], data, len);
	dev->cfg[off + 1] = 0;
	if (wmask)
		memcpy(&dev->wmask[off], wmask, len);
	/* The id and next pointer are never writable. */
	dev->wmask[off] = dev->wmask[off + 1] = 0;
	if (dev->cap_last)
		dev->cfg[dev->cap_last + 1] = off;
	else
		dev->cfg[PCI_CAP_PTR] = off;
	dev->cap_last = off;
	dev->cap_end = pci_align_up(off + len, 4);
	dev->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	return off;
}

/* ---- Config space access ------------------------------------------------------------------ */

static struct pci_dev *slot_dev(struct pci_bus *pbus, int slot)
{
	if (slot < 0 || slot >= PCI_NR_SLOTS)
		return NULL;
	return pbus->slots[slot];
}

static uint32_t cfg_read_locked(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len)
{
	struct pci_dev *dev = slot_dev(pbus, slot);

	if (!dev || off + len > PCI_CFG_SIZE)
		return 0xffffffffu >> (8 * (4 - len));
	if (dev->ops && dev->ops->config_read)
		dev->ops->config_read(dev, off, len);
	return pci_get_le(&dev->cfg[off], len);
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

static void cfg_write_locked(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len,
			     uint32_t val)
{
	struct pci_dev *dev = slot_dev(pbus, slot);

	if (!dev || off + len > PCI_CFG_SIZE)
		return;
	for (uint32_t i = 0; i < len; i++) {
		uint8_t b = val >> (8 * i), o = off + i;
		uint8_t wm = dev->wmask[o], w1c = dev->w1cmask[o];

		dev->cfg[o] = (dev->cfg[o] & ~wm) | (b & wm);
		dev->cfg[o] &= ~(b & w1c);
	}
	if (overlaps(off, len, PCI_COMMAND, 2)) {
		pci_bars_update(dev);
	} else if (overlaps(off, len, PCI_BAR0, 4 * PCI_NR_BARS)) {
		for (int i = 0; i < PCI_NR_BARS; i++) {
			uint32_t n = dev->bars[i].is64 ? 8 : 4;

			if (dev->bars[i].size && overlaps(off, len, PCI_BAR0 + 4 * i, n))
				pci_bar_update(dev, i);
		}
	}
	if (dev->msix && overlaps(off, len, dev->msix->cap + PCI_MSIX_FLAGS, 2))
		pci_msix_ctrl_written(dev);
	if (dev->ops && dev->ops->config_write)
		dev->ops->config_write(dev, off, len);
}

uint32_t pci_config_read(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len)
{
	uint32_t v;

	pthread_mutex_lock(&pbus->lock);
	v = cfg_read_locked(pbus, slot, off, len);
	pthread_mutex_unlock(&pbus->lock);
	return v;
}

void pci_config_write(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len, uint32_t val)
{
	pthread_mutex_lock(&pbus->lock);
	cfg_write_locked(pbus, slot, off, len, val);
	pthread_mutex_unlock(&pbus->lock);
}

static void cf8_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pbus = opaque;

	/*
	 * Byte 0xCF9 is the chipset's reset control register: Linux's reboot=pci and
	 * some firmware fallbacks write SYS_RST (bit 1) then RST_CPU (bit 2); RST_CPU
	 * going from 0 to 1 resets the machine, which ends the VM like the i8042 reset.
	 */
	if (off == 1 && len == 1) {
		bool reset = false;

		pthread_mutex_lock(&pbus->lock);
		if (is_write) {
			reset = (data[0] & 0x04) && !(pbus->rcr & 0x04);
			pbus->rcr = data[0] & 0x0a; /* RST_CPU reads back as 0 */
		} else {
			data[0] = pbus->rcr;
		}
		pthread_mutex_unlock(&pbus->lock);
		if (reset && pbus->host->reset) {
			pr_info("pci", "the guest reset the machine through port 0xCF9");
			pbus->host->reset(pbus->host_opaque);
		}
		return;
	}
	/* Only full dword accesses reach the address register (other byte ports are absent). */
	if (off != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&pbus->lock);
	if (is_write)
		pbus->cf8 = pci_get_le(data, 4) & 0x80fffffc;
	else
		pci_put_le(data, 4, pbus->cf8);
	pthread_mutex_unlock(&pbus->lock);
}

static void cfc_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pbus = opaque;
	uint32_t a;
	int slot = -1;
	uint32_t reg;

	if (len > 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&pbus->lock);
	a = pbus->cf8;
	reg = (a & 0xfc) + off;
	/* Enabled, bus 0, function 0; everything else is absent. */
	if ((a & 0x80000000u) && ((a >> 16) & 0xff) == 0 && ((a >> 8) & 7) == 0 && off + len <= 4)
		slot = (a >> 11) & 0x1f;
	if (is_write)
		cfg_write_locked(pbus, slot, reg, len, pci_get_le(data, len));
	else
		pci_put_le(data, len, cfg_read_locked(pbus, slot, reg, len));
	pthread_mutex_unlock(&pbus->lock);
}

/* ---- Bus ---------------------------------------------------------------------------------- */

int pci_bus_create(struct pci_bus **out, struct bus *pio, struct bus *mmio, uint64_t mmio64_start,
		   const struct pci_host_ops *host, void *host_opaque)
{
	struct pci_bus *pbus;
	int err;

	pbus = calloc(1, sizeof(*pbus));
	if (!pbus)
		return -ENOMEM;
	pthread_mutex_init(&pbus->lock, NULL);
	pbus->pio = pio;
	pbus->mmio = mmio;
	pbus->host = host;
	pbus->host_opaque = host_opaque;
	pbus->win32.start = PCI_MMIO32_START;
	pbus->win32.end = PCI_MMIO32_END;
	pbus->win64.start = pci_align_up(mmio64_start < MEM_4G ? MEM_4G : mmio64_start, 1ULL << 30);
	pbus->win64.end = pbus->win64.start + PCI_MMIO64_SIZE;

	/* Host bridge: Intel Q35 DRAM controller ids, class "host bridge". */
	pci_dev_init(&pbus->bridge, "host-bridge", 0x8086, 0x29c0, 0x060000, 0, 0x1af4, 0x1100,
		     NULL);
	pbus->bridge.bus = pbus;
	pbus->bridge.slot = 0;
	pbus->slots[0] = &pbus->bridge;

	err = bus_register(pio, PCI_CF8, 4, cf8_access, pbus, &pbus->cf8_region);
	if (err)
		goto fail;
	err = bus_register(pio, PCI_CFC, 4, cfc_access, pbus, &pbus->cfc_region);
	if (err)
		goto fail;
	*out = pbus;
	return 0;
fail:
	pci_bus_destroy(pbus);
	return err;
}

void pci_bus_destroy(struct pci_bus *pbus)
{
	if (!pbus)
		return;
	bus_unregister(pbus->pio, pbus->cfc_region);
	bus_unregister(pbus->pio, pbus->cf8_region);
	for (int s = 1; s < PCI_NR_SLOTS; s++)
		if (pbus->slots[s])
			pci_dev_remove(pbus->slots[s]);
	pthread_mutex_destroy(&pbus->lock);
	free(pbus);
}

const struct pci_host_ops *pci_bus_host(struct pci_bus *pbus, void **opaque)
{
	*opaque = pbus->host_opaque;
	return pbus->host;
}

int pci_dev_add(struct pci_bus *pbus, struct pci_dev *dev, int slot)
{
	int err = 0, i;

	pthread_mutex_lock(&pbus->lock);
	if (dev->bus) {
		err = -EBUSY;
		goto out;
	}
	if (slot < 0) {
		for (slot = 1; slot < PCI_NR_SLOTS && pbus->slots[slot]; slot++)
			;
		if (slot == PCI_NR_SLOTS) {
			err = -ENOSPC;
			goto out;
		}
	} else if (slot == 0 || slot >= PCI_NR_SLOTS || pbus->slots[slot]) {
		err = slot == 0 || slot >= PCI_NR_SLOTS ? -EINVAL : -EBUSY;
		goto out;
	}
	for (i = 0; i < PCI_NR_BARS; i++) {
		struct pci_bar *b = &dev->bars[i];
		uint64_t addr;

		if (!b->size)
			continue;
		err = pci_window_alloc(pci_bar_window(pbus, b), b->size, &addr);
		if (err)
			goto undo;
		b->alloc_addr = addr;
		b->addr = addr;
		pci_put_le(&dev->cfg[PCI_BAR0 + 4 * i], 4,
			   (uint32_t)addr | (b->is64 ? PCI_BAR_MEM_64 : 0));
		if (b->is64)
			pci_put_le(&dev->cfg[PCI_BAR0 + 4 * (i + 1)], 4, addr >> 32);
	}
	dev->bus = pbus;
	dev->slot = slot;
	pbus->slots[slot] = dev;
	/* Decode may already be on (a re-add after remove keeps config space). */
	pci_bars_update(dev);
	err = slot;
	goto out;
undo:
	while (--i >= 0)
		if (dev->bars[i].size)
			pci_window_free(pci_bar_window(pbus, &dev->bars[i]),
					dev->bars[i].alloc_addr);
out:
	pthread_mutex_unlock(&pbus->lock);
	return err;
}

void pci_dev_remove(struct pci_dev *dev)
{
	struct pci_bus *pbus = dev ? dev->bus : NULL;

	if (!pbus)
		return;
	pthread_mutex_lock(&pbus->lock);
	pbus->slots[dev->slot] = NULL;
	/*
	 * bar_unmap waits for BAR callbacks in flight, which never take the bus
	 * lock. Config-space callbacks do run under it (a status write through
	 * the PCI_CFG window resets a device, which takes that device's lock), so
	 * nobody may call this while holding a device's lock: managers retire
	 * devices from the loop (loop_defer), never from a device callback.
	 */
	for (int i = 0; i < PCI_NR_BARS; i++) {
		if (!dev->bars[i].size)
			continue;
		pci_bar_unmap(dev, i);
		pci_window_free(pci_bar_window(pbus, &dev->bars[i]), dev->bars[i].alloc_addr);
	}
	if (dev->msix) {
		pthread_mutex_lock(&dev->msix->lock);
		for (int v = 0; v < dev->msix->nr; v++)
			pci_msix_vec_teardown(dev, &dev->msix->vec[v]);
		pthread_mutex_unlock(&dev->msix->lock);
	}
	pthread_mutex_unlock(&pbus->lock);
	dev->slot = -1;
	dev->bus = NULL;
}
