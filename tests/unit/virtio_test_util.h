/*
 * Shared by the PCI/virtio unit tests and fuzzers: a fake interrupt backend,
 * config space through 0xCF8/0xCFC, and a tiny virtio driver that talks to a
 * function only through the buses, as a guest would.
 */
#ifndef TESTS_VIRTIO_TEST_UTIL_H
#define TESTS_VIRTIO_TEST_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/mem.h"
#include "vmm/pci.h"

/* ---- Fake hypervisor ---------------------------------------------------------------------- */

struct fake_host {
	uint32_t next_gsi;
	int gsis_live;
	struct {
		uint64_t addr;
		uint32_t data;
	} route[64];
	int irqfd_assigned[64]; /* by gsi - 32 */
	int route_calls;
	int ioeventfds; /* currently assigned */
	uint64_t ioevt_addr[64];
	int fail_ioeventfd; /* make ioeventfd fail (MMIO fallback path) */
	int resets;	    /* port 0xCF9 resets asked for */
};

static inline int fake_gsi_alloc(void *o, uint32_t *gsi)
{
	struct fake_host *h = o;

	if (h->next_gsi >= 64)
		return -ENOSPC;
	*gsi = 32 + h->next_gsi++;
	h->gsis_live++;
	return 0;
}

static inline void fake_gsi_free(void *o, uint32_t gsi)
{
	((struct fake_host *)o)->gsis_live--;
}

static inline int fake_msi_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct fake_host *h = o;

	h->route[gsi - 32].addr = addr;
	h->route[gsi - 32].data = data;
	h->route_calls++;
	return 0;
}

static inline int fake_irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	struct fake_host *h = o;

	h->irqfd_assigned[gsi - 32] += assign ? 1 : -1;
	return 0;
}

static inline int fake_ioeventfd(void *o, uint64_t addr, uint32_t len, int efd, bool assign)
{
	struct fake_host *h = o;

	if (h->fail_ioeventfd)
		return -ENOSYS;
	if (assign && h->ioeventfds < 64)
		h->ioevt_addr[h->ioeventfds] = addr;
	h->ioeventfds += assign ? 1 : -1;
	return 0;
}

static inline void fake_reset(void *o)
{
	((struct fake_host *)o)->resets++;
}

static const struct pci_host_ops fake_host_ops = {
    .gsi_alloc = fake_gsi_alloc,
    .gsi_free = fake_gsi_free,
    .msi_route = fake_msi_route,
    .irqfd = fake_irqfd,
    .ioeventfd = fake_ioeventfd,
    .reset = fake_reset,
};

/* ---- A machine: buses, PCI, RAM ----------------------------------------------------------- */

struct tmach {
	struct bus *pio, *mmio;
	struct pci_bus *pbus;
	struct fake_host host;
	uint8_t *ram;
	size_t ram_size;
	struct guest_mem *mem;
};

static inline int tm_init(struct tmach *m, size_t ram_size)
{
	memset(m, 0, sizeof(*m));
	m->ram_size = ram_size;
	m->ram = aligned_alloc(4096, ram_size);
	if (!m->ram)
		return -ENOMEM;
	memset(m->ram, 0, ram_size);
	if (mem_wrap(&m->mem, m->ram, ram_size) || bus_create(&m->pio, "pio") ||
	    bus_create(&m->mmio, "mmio") ||
	    pci_bus_create(&m->pbus, m->pio, m->mmio, mem_top(m->mem), &fake_host_ops, &m->host))
		return -EIO;
	return 0;
}

/* Fuzzers: up to max bytes of the input (*data, *size) into guest RAM at gpa at. */
static inline void tm_fill(struct tmach *m, uint64_t at, size_t max, const uint8_t **data,
			   size_t *size)
{
	size_t n = *size < max ? *size : max;

	memcpy(m->ram + at, *data, n);
	*data += n;
	*size -= n;
}

static inline void tm_fini(struct tmach *m)
{
	pci_bus_destroy(m->pbus);
	bus_destroy(m->mmio);
	bus_destroy(m->pio);
	mem_destroy(m->mem);
	free(m->ram);
}

static inline uint32_t cfg_rd(struct tmach *m, int slot, uint32_t off, uint32_t len)
{
	uint8_t d[4];

	pci_put_le(d, 4, 0x80000000u | slot << 11 | (off & 0xfc));
	bus_access(m->pio, 0xcf8, d, 4, true);
	memset(d, 0, 4);
	bus_access(m->pio, 0xcfc + (off & 3), d, len, false);
	return pci_get_le(d, len);
}

static inline void cfg_wr(struct tmach *m, int slot, uint32_t off, uint32_t len, uint32_t v)
{
	uint8_t d[4];

	pci_put_le(d, 4, 0x80000000u | slot << 11 | (off & 0xfc));
	bus_access(m->pio, 0xcf8, d, 4, true);
	pci_put_le(d, len, v);
	bus_access(m->pio, 0xcfc + (off & 3), d, len, true);
}

static inline uint64_t mmio_rd(struct tmach *m, uint64_t addr, uint32_t len)
{
	uint8_t d[8] = {0};
	uint64_t v = 0;

	if (!bus_access(m->mmio, addr, d, len, false))
		return ~0ULL;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static inline bool mmio_wr(struct tmach *m, uint64_t addr, uint32_t len, uint64_t v)
{
	uint8_t d[8];

	for (uint32_t i = 0; i < len; i++)
		d[i] = v >> (8 * i);
	return bus_access(m->mmio, addr, d, len, true);
}

/* ---- Minimal virtio-pci driver ------------------------------------------------------------ */

struct tdrv {
	struct tmach *m;
	int slot;
	uint64_t bar0;
	uint64_t msix;
};

static inline void tdrv_attach(struct tdrv *d, struct tmach *m, int slot)
{
	d->m = m;
	d->slot = slot;
	d->bar0 = cfg_rd(m, slot, PCI_BAR0, 4) & ~0xfULL;
	d->msix = cfg_rd(m, slot, PCI_BAR0 + 4 * VIRTIO_PCI_MSIX_BAR, 4) & ~0xfULL;
	cfg_wr(m, slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static inline uint64_t cc_rd(struct tdrv *d, uint32_t off, uint32_t len)
{
	return mmio_rd(d->m, d->bar0 + VIRTIO_PCI_COMMON_OFF + off, len);
}

static inline void cc_wr(struct tdrv *d, uint32_t off, uint32_t len, uint64_t v)
{
	mmio_wr(d->m, d->bar0 + VIRTIO_PCI_COMMON_OFF + off, len, v);
}

static inline uint8_t tdrv_status(struct tdrv *d)
{
	return cc_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline uint64_t tdrv_device_features(struct tdrv *d)
{
	uint64_t f;

	cc_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = cc_rd(d, VIRTIO_PCI_COMMON_DF, 4);
	cc_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | cc_rd(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static inline void tdrv_set_features(struct tdrv *d, uint64_t f)
{
	cc_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	cc_wr(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	cc_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	cc_wr(d, VIRTIO_PCI_COMMON_GF, 4, f >> 32);
}

/* Ring placement for queue q inside guest RAM: desc, avail, used; 16 KiB per queue. */
static inline uint64_t tq_desc(int q)
{
	return 0x10000 + 0x4000ULL * q;
}
static inline uint64_t tq_avail(int q)
{
	return tq_desc(q) + 0x1000;
}
static inline uint64_t tq_used(int q)
{
	return tq_desc(q) + 0x2000;
}

static inline void tdrv_setup_queue(struct tdrv *d, int q, uint16_t size, uint16_t vector)
{
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)tq_desc(q));
	cc_wr(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, tq_desc(q) >> 32);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)tq_avail(q));
	cc_wr(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)tq_used(q));
	cc_wr(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/*
 * Reset as Linux's vp_reset does: write 0, then wait (5 s at most) for the
 * status to read 0. A device on an I/O thread resets there, after the write
 * has returned. Returns the status last read.
 */
static inline uint8_t tdrv_reset(struct tdrv *d)
{
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	for (int t = 0; t < 50000 && tdrv_status(d) != 0; t++)
		nanosleep(&(struct timespec){0, 100000}, NULL);
	return tdrv_status(d);
}

/* Full probe: reset, ACK, DRIVER, features, FEATURES_OK, queues, DRIVER_OK. */
static inline int tdrv_probe(struct tdrv *d, uint64_t features, int nq, uint16_t qsize)
{
	if (tdrv_reset(d) != 0)
		return -ETIMEDOUT;
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	tdrv_set_features(d, features);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1,
	      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(tdrv_status(d) & VIRTIO_STATUS_FEATURES_OK))
		return -EINVAL;
	for (int q = 0; q < nq; q++)
		tdrv_setup_queue(d, q, qsize, q + 1);
	cc_wr(d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1,
	      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		  VIRTIO_STATUS_DRIVER_OK);
	return tdrv_status(d) == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				  VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)
		   ? 0
		   : -EIO;
}

static inline void tdrv_kick(struct tdrv *d, int q)
{
	mmio_wr(d->m, d->bar0 + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, 2, q);
}

/* Writes a descriptor of queue q's table. */
static inline void tq_set_desc(struct tmach *m, int q, uint16_t i, uint64_t addr, uint32_t len,
			       uint16_t flags, uint16_t next)
{
	struct virtq_desc dd = {.addr = addr, .len = len, .flags = flags, .next = next};

	memcpy(m->ram + tq_desc(q) + 16ULL * i, &dd, 16);
}

/* Makes head available on queue q of size qsize. */
static inline void tq_avail_add(struct tmach *m, int q, uint16_t qsize, uint16_t head)
{
	uint16_t *av = (uint16_t *)(m->ram + tq_avail(q));
	uint16_t idx = av[1];

	av[2 + idx % qsize] = head;
	__atomic_store_n(&av[1], (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

/* Acquire: a device thread publishes the used entries before the index. */
static inline uint16_t tq_used_idx(struct tmach *m, int q)
{
	return __atomic_load_n((uint16_t *)(m->ram + tq_used(q) + 2), __ATOMIC_ACQUIRE);
}

/* The (id, len) of used entry i. */
static inline void tq_used_elem(struct tmach *m, int q, uint16_t qsize, uint16_t i, uint32_t *id,
				uint32_t *len)
{
	uint8_t *e = m->ram + tq_used(q) + 4 + 8 * (i % qsize);

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/*
 * A driver on another thread (a vCPU) that keeps queue q full: heads 0..qsize-1
 * first, then each head again as soon as the device returned it (read from
 * the used ring, so a device that answers out of order is never handed a
 * head it still holds), up to max additions. The test sets every head's
 * descriptors up first.
 */
struct tq_refiller {
	struct tmach *m;
	int q;
	uint16_t qsize;
	unsigned max, added;
	bool stop; /* atomics */
};

static inline void *tq_refill_thread(void *opaque)
{
	struct tq_refiller *r = opaque;
	uint16_t *used_idx = (uint16_t *)(r->m->ram + tq_used(r->q) + 2);
	uint16_t seen = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);

	while (r->added < r->max && !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint32_t id, len;

		if (r->added < r->qsize) {
			tq_avail_add(r->m, r->q, r->qsize, r->added);
		} else if (__atomic_load_n(used_idx, __ATOMIC_ACQUIRE) != seen) {
			tq_used_elem(r->m, r->q, r->qsize, seen++, &id, &len);
			tq_avail_add(r->m, r->q, r->qsize, (uint16_t)id);
		} else {
			continue;
		}
		__atomic_store_n(&r->added, r->added + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

#endif
