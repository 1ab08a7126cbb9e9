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

/* ---- BAR address allocator ---------------------------------------------------------------- */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int window_alloc(struct pci_window *w, uint64_t size, uint64_t *out)
{
	uint64_t cand = align_up(w->start, size);

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
				cand = align_up(e, size);
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

static void window_free(struct pci_window *w, uint64_t base)
{
	for (int i = 0; i < w->nr; i++) {
		if (w->used[i].base == base) {
			w->used[i] = w->used[--w->nr];
			return;
		}
	}
}

static struct pci_window *bar_window(struct pci_bus *pbus, struct pci_bar *b)
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

static void bar_unmap(struct pci_dev *dev, int i)
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
static void bar_update(struct pci_dev *dev, int i)
{
	struct pci_bar *b = &dev->bars[i];
	uint16_t cmd = pci_get_le(&dev->cfg[PCI_COMMAND], 2);
	uint64_t addr = bar_cfg_addr(dev, i);
	bool want = (cmd & PCI_COMMAND_MEMORY) && addr != 0 && addr + b->size > addr;
	int err;

	if (!b->size)
		return;
	if (b->region && (!want || addr != b->addr))
		bar_unmap(dev, i);
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

static void bars_update(struct pci_dev *dev)
{
	for (int i = 0; i < PCI_NR_BARS; i++)
		bar_update(dev, i);
}

/* ---- MSI-X -------------------------------------------------------------------------------- */

static bool msix_vec_masked(const struct pci_msix *m, int v)
{
	return !m->enabled || m->masked_all || (m->vec[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void msix_vec_teardown(struct pci_dev *dev, struct pci_msix_vec *vec)
{
	void *op;
	const struct pci_host_ops *h = pci_bus_host(dev->bus, &op);

	if (vec->routed) {
		h->irqfd(op, vec->efd, vec->gsi, false);
		h->msi_route(op, vec->gsi, 0, 0);
		vec->routed = false;
	}
	if (vec->have_gsi) {
		h->gsi_free(op, vec->gsi);
		vec->have_gsi = false;
	}
	if (vec->efd >= 0) {
		close(vec->efd);
		vec->efd = -1;
	}
}

/* Installs (or refreshes) the route for an unmasked vector, then delivers what is pending. */
static void msix_vec_update(struct pci_dev *dev, int v)
{
	struct pci_msix *m = dev->msix;
	struct pci_msix_vec *vec = &m->vec[v];
	void *op;
	const struct pci_host_ops *h;
	int err;

	if (msix_vec_masked(m, v) || !dev->bus)
		return;
	h = pci_bus_host(dev->bus, &op);
	if (vec->efd < 0) {
		vec->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vec->efd < 0) {
			log_msg_errno(LOG_ERROR, "pci", "%s: msix eventfd", dev->name);
			return;
		}
	}
	if (!vec->have_gsi) {
		err = h->gsi_alloc(op, &vec->gsi);
		if (err) {
			log_ratelimited(LOG_ERROR, "pci", "%s: no GSI for MSI-X vector %d (%d)",
					dev->name, v, err);
			return;
		}
		vec->have_gsi = true;
	}
	err = h->msi_route(op, vec->gsi, vec->addr, vec->data);
	if (err) {
		log_ratelimited(LOG_ERROR, "pci", "%s: MSI route for vector %d failed (%d)",
				dev->name, v, err);
		return;
	}
	if (!vec->routed) {
		err = h->irqfd(op, vec->efd, vec->gsi, true);
		if (err) {
			log_ratelimited(LOG_ERROR, "pci", "%s: irqfd for vector %d failed (%d)",
					dev->name, v, err);
			return;
		}
		vec->routed = true;
	}
	if (m->pba & (1ULL << v)) {
		uint64_t one = 1;

		m->pba &= ~(1ULL << v);
		if (write(vec->efd, &one, sizeof(one)) < 0)
			log_msg_errno(LOG_WARN, "pci", "%s: msix signal", dev->name);
	}
}

static void msix_update_all(struct pci_dev *dev)
{
	for (int v = 0; v < dev->msix->nr; v++)
		msix_vec_update(dev, v);
}

/* Called with the bus lock held after a write touched the MSI-X flags. */
static void msix_ctrl_written(struct pci_dev *dev)
{
	struct pci_msix *m = dev->msix;
	uint16_t flags = pci_get_le(&dev->cfg[m->cap + PCI_MSIX_FLAGS], 2);

	pthread_mutex_lock(&m->lock);
	m->enabled = flags & PCI_MSIX_FLAGS_ENABLE;
	m->masked_all = flags & PCI_MSIX_FLAGS_MASKALL;
	msix_update_all(dev);
	pthread_mutex_unlock(&m->lock);
}

static void msix_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_dev *dev = opaque;
	struct pci_msix *m = dev->msix;
	uint64_t table_end = (uint64_t)m->nr * PCI_MSIX_ENTRY_SIZE;

	/* The spec allows dword and qword accesses; anything else reads as 0 and is dropped. */
	if ((len != 4 && len != 8) || (off & (len - 1))) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (off + len <= table_end) {
		for (uint32_t done = 0; done < len; done += 4) {
			uint64_t o = off + done;
			struct pci_msix_vec *vec = &m->vec[o / PCI_MSIX_ENTRY_SIZE];
			uint32_t *field;
			uint32_t lo = vec->addr, hi = vec->addr >> 32;

			switch (o % PCI_MSIX_ENTRY_SIZE) {
			case 0:
				field = &lo;
				break;
			case 4:
				field = &hi;
				break;
			case 8:
				field = &vec->data;
				break;
			default:
				field = &vec->ctrl;
				break;
			}
			if (!is_write) {
				pci_put_le(data + done, 4, *field);
				continue;
			}
			*field = pci_get_le(data + done, 4);
			if (field == &vec->ctrl)
				vec->ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
			vec->addr = (uint64_t)hi << 32 | lo;
			msix_vec_update(dev, o / PCI_MSIX_ENTRY_SIZE);
		}
	} else if (off >= PCI_MSIX_PBA_OFFSET && off + len <= PCI_MSIX_PBA_OFFSET + 8) {
		/* PBA is read-only. */
		if (!is_write) {
			uint64_t v = m->pba >> (8 * (off - PCI_MSIX_PBA_OFFSET));

			for (uint32_t i = 0; i < len; i++)
				data[i] = v >> (8 * i);
		}
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&m->lock);
}

int pci_msix_init(struct pci_dev *dev, int nr, int bar)
{
	struct pci_msix *m;
	uint8_t cap[12] = {PCI_CAP_ID_MSIX}, wm[12] = {0};
	int off, err;

	if (nr < 1 || nr > PCI_MSIX_MAX || dev->msix)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->nr = nr;
	m->bar = bar;
	for (int v = 0; v < PCI_MSIX_MAX; v++) {
		m->vec[v].efd = -1;
		m->vec[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT; /* vectors start masked */
	}
	pci_put_le(&cap[PCI_MSIX_FLAGS], 2, nr - 1);
	pci_put_le(&cap[PCI_MSIX_TABLE], 4, 0 | bar);
	pci_put_le(&cap[PCI_MSIX_PBA], 4, PCI_MSIX_PBA_OFFSET | bar);
	wm[PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	err = pci_dev_set_bar(dev, bar, PCI_MSIX_BAR_SIZE, false, msix_bar_access, dev);
	if (err)
		goto fail;
	off = pci_cap_add(dev, cap, sizeof(cap), wm);
	if (off < 0) {
		err = off;
		goto fail;
	}
	m->cap = off;
	dev->msix = m;
	return 0;
fail:
	pthread_mutex_destroy(&m->lock);
	free(m);
	return err;
}

/* After pci_dev_remove (or before add): closes eventfds and releases GSIs. */
void pci_msix_cleanup(struct pci_dev *dev)
{
	struct pci_msix *m = dev ? dev->msix : NULL;

	if (!m)
		return;
	for (int v = 0; v < m->nr; v++) {
		if (m->vec[v].have_gsi || m->vec[v].routed) {
			/* Routes live on the bus that made them; it must still exist. */
			if (dev->bus)
				msix_vec_teardown(dev, &m->vec[v]);
		}
		if (m->vec[v].efd >= 0)
			close(m->vec[v].efd);
		m->vec[v].efd = -1;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
	dev->msix = NULL;
}

int pci_msix_notify(struct pci_dev *dev, int vector)
{
	struct pci_msix *m = dev->msix;
	uint64_t one = 1;
	int ret = 0;

	if (!m || vector < 0 || vector >= m->nr)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled) {
		ret = -EAGAIN; /* no INTx fallback: nothing to deliver */
	} else if (msix_vec_masked(m, vector) || !m->vec[vector].routed) {
		m->pba |= 1ULL << vector;
	} else if (write(m->vec[vector].efd, &one, sizeof(one)) < 0) {
		ret = -errno;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

bool pci_msix_enabled(struct pci_dev *dev)
{
	bool en;

	if (!dev->msix)
		return false;
	pthread_mutex_lock(&dev->msix->lock);
	en = dev->msix->enabled;
	pthread_mutex_unlock(&dev->msix->lock);
	return en;
}

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
	dev->cap_end = align_up(off + len, 4);
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
		bars_update(dev);
	} else if (overlaps(off, len, PCI_BAR0, 4 * PCI_NR_BARS)) {
		for (int i = 0; i < PCI_NR_BARS; i++) {
			uint32_t n = dev->bars[i].is64 ? 8 : 4;

			if (dev->bars[i].size && overlaps(off, len, PCI_BAR0 + 4 * i, n))
				bar_update(dev, i);
		}
	}
	if (dev->msix && overlaps(off, len, dev->msix->cap + PCI_MSIX_FLAGS, 2))
		msix_ctrl_written(dev);
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
	pbus->win64.start = align_up(mmio64_start < MEM_4G ? MEM_4G : mmio64_start, 1ULL << 30);
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
		err = window_alloc(bar_window(pbus, b), b->size, &addr);
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
	bars_update(dev);
	err = slot;
	goto out;
undo:
	while (--i >= 0)
		if (dev->bars[i].size)
			window_free(bar_window(pbus, &dev->bars[i]), dev->bars[i].alloc_addr);
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
		bar_unmap(dev, i);
		window_free(bar_window(pbus, &dev->bars[i]), dev->bars[i].alloc_addr);
	}
	if (dev->msix) {
		pthread_mutex_lock(&dev->msix->lock);
		for (int v = 0; v < dev->msix->nr; v++)
			msix_vec_teardown(dev, &dev->msix->vec[v]);
		pthread_mutex_unlock(&dev->msix->lock);
	}
	pthread_mutex_unlock(&pbus->lock);
	dev->slot = -1;
	dev->bus = NULL;
}
