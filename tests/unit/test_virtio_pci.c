/* virtio/pci: capabilities, feature negotiation, status transitions, reset, kicks, rng. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"

#define A  VIRTIO_STATUS_ACKNOWLEDGE
#define D  VIRTIO_STATUS_DRIVER
#define FO VIRTIO_STATUS_FEATURES_OK
#define DO VIRTIO_STATUS_DRIVER_OK

#define DUMMY_FEATURE (1ULL << 5)
#define NQ	      2
#define QSIZE	      8

struct dummy {
	struct virtio_dev vdev;
	uint8_t cfg[8];
	int activations, resets, kicks[NQ], destroyed;
	int fail_activate;
};

static struct dummy *to_dummy(struct virtio_dev *v)
{
	return (struct dummy *)v;
}

static void d_cfg_read(struct virtio_dev *v, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_dummy(v)->cfg + off, len);
}

static void d_cfg_write(struct virtio_dev *v, uint32_t off, const void *data, uint32_t len)
{
	memcpy(to_dummy(v)->cfg + off, data, len);
}

static int d_activate(struct virtio_dev *v)
{
	/* The transport set active, under the device lock it holds. */
	assert_true(v->active);
	assert_int_equal(pthread_mutex_trylock(&v->dev_lock), EBUSY);
	to_dummy(v)->activations++;
	return to_dummy(v)->fail_activate ? -EIO : 0;
}

static void d_notify(struct virtio_dev *v, int q)
{
	to_dummy(v)->kicks[q]++;
}

static void d_reset(struct virtio_dev *v)
{
	assert_false(v->active);
	assert_int_equal(pthread_mutex_trylock(&v->dev_lock), EBUSY);
	to_dummy(v)->resets++;
}

static void d_destroy(struct virtio_dev *v)
{
	/* The test owns the memory; record the call. */
	to_dummy(v)->destroyed++;
}

static const struct virtio_dev_ops dummy_ops = {
    .config_read = d_cfg_read,
    .config_write = d_cfg_write,
    .activate = d_activate,
    .queue_notify = d_notify,
    .reset = d_reset,
    .destroy = d_destroy,
};

struct fx {
	struct tmach m;
	struct dummy d;
	struct tdrv drv;
	int slot;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(tm_init(&f->m, 1 << 20), 0);
	assert_int_equal(virtio_dev_init(&f->d.vdev, "dummy", 0x1a, NQ, QSIZE,
					 sizeof(f->d.cfg), DUMMY_FEATURE, &dummy_ops, f->m.mem,
					 NULL),
			 0);
	f->slot = virtio_dev_plug(&f->d.vdev, f->m.pbus);
	assert_true(f->slot > 0);
	tdrv_attach(&f->drv, &f->m, f->slot);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	virtio_dev_destroy(&f->d.vdev);
	assert_int_equal(f->d.destroyed, 1);
	tm_fini(&f->m);
	free(f);
	return 0;
}

static void test_ids_and_caps(void **state)
{
	struct fx *f = *state;
	struct tmach *m = &f->m;
	int seen[6] = {0}, pcicfg = 0;

	assert_int_equal(cfg_rd(m, f->slot, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_rd(m, f->slot, PCI_DEVICE_ID, 2), 0x1040 + 0x1a);
	assert_int_equal(cfg_rd(m, f->slot, PCI_REVISION_ID, 1), 1);
	/* The class comes from the device type: an unknown one is "unclassified, other". */
	assert_int_equal(cfg_rd(m, f->slot, PCI_REVISION_ID, 4) >> 8, 0x00ff00);
	assert_int_equal(cfg_rd(m, f->slot, PCI_SUBSYS_VENDOR, 2), 0x1af4);
	for (int off = cfg_rd(m, f->slot, PCI_CAP_PTR, 1); off;
	     off = cfg_rd(m, f->slot, off + 1, 1)) {
		uint8_t id = cfg_rd(m, f->slot, off, 1);

		if (id == PCI_CAP_ID_MSIX) {
			assert_int_equal(cfg_rd(m, f->slot, off + 2, 2) & 0x7ff, NQ); /* NQ+1 - 1 */
			seen[0]++;
			continue;
		}
		assert_int_equal(id, PCI_CAP_ID_VNDR);
		uint8_t type = cfg_rd(m, f->slot, off + 3, 1);
		uint32_t bar = cfg_rd(m, f->slot, off + 4, 1);
		uint32_t o = cfg_rd(m, f->slot, off + 8, 4);
		uint32_t len = cfg_rd(m, f->slot, off + 12, 4);

		assert_true(type >= 1 && type <= 5);
		assert_int_equal(bar, 0);
		assert_true(o + len <= VIRTIO_PCI_BAR_SIZE);
		seen[type]++;
		if (type == 5)
			pcicfg = off;
		if (type == 2) {
			assert_int_equal(cfg_rd(m, f->slot, off + 2, 1), 20);
			assert_int_equal(cfg_rd(m, f->slot, off + 16, 4), VIRTIO_PCI_NOTIFY_MULT);
		}
		if (type == 4)
			assert_int_equal(len, 8);
	}
	for (int i = 0; i <= 5; i++)
		assert_int_equal(seen[i], 1);
	/* The PCI_CFG window reaches BAR 0 through config space alone. */
	cfg_wr(m, f->slot, pcicfg + 4, 1, 0);
	cfg_wr(m, f->slot, pcicfg + 8, 4, VIRTIO_PCI_COMMON_NUMQ);
	cfg_wr(m, f->slot, pcicfg + 12, 4, 2);
	assert_int_equal(cfg_rd(m, f->slot, pcicfg + 16, 2), NQ);
	cfg_wr(m, f->slot, pcicfg + 8, 4, VIRTIO_PCI_COMMON_STATUS);
	cfg_wr(m, f->slot, pcicfg + 12, 4, 1);
	cfg_wr(m, f->slot, pcicfg + 16, 1, A);
	assert_int_equal(tdrv_status(&f->drv), A);
	assert_int_equal(cfg_rd(m, f->slot, pcicfg + 16, 1), A);
	/* Bad windows (other BAR, odd length, past the BAR) do nothing. */
	cfg_wr(m, f->slot, pcicfg + 4, 1, 2);
	cfg_wr(m, f->slot, pcicfg + 16, 1, 0);
	assert_int_equal(tdrv_status(&f->drv), A);
	cfg_wr(m, f->slot, pcicfg + 4, 1, 0);
	cfg_wr(m, f->slot, pcicfg + 12, 4, 3);
	cfg_wr(m, f->slot, pcicfg + 16, 1, 0);
	assert_int_equal(tdrv_status(&f->drv), A);
	cfg_wr(m, f->slot, pcicfg + 8, 4, 0xfffffffc);
	cfg_wr(m, f->slot, pcicfg + 12, 4, 4);
	cfg_rd(m, f->slot, pcicfg + 16, 4);
	cfg_wr(m, f->slot, pcicfg + 16, 4, 0);
	assert_int_equal(tdrv_status(&f->drv), A);
	/* Queue notify offsets follow the multiplier. */
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	assert_int_equal(cc_rd(&f->drv, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	assert_int_equal(cc_rd(&f->drv, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
	/* ioeventfds are only used with an event loop; here there is none. */
	assert_int_equal(m->host.ioeventfds, 0);
}

static void test_features(void **state)
{
	struct fx *f = *state;
	struct tdrv *d = &f->drv;
	uint64_t df = tdrv_device_features(d);

	assert_true(df & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(df & (1ULL << VIRTIO_F_EVENT_IDX));
	assert_true(df & (1ULL << VIRTIO_F_INDIRECT_DESC));
	assert_true(df & DUMMY_FEATURE);
	cc_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_DF, 4), 0);

	/* Without VERSION_1: FEATURES_OK does not stick. */
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D);
	tdrv_set_features(d, DUMMY_FEATURE);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO);
	assert_int_equal(tdrv_status(d), A | D);
	/* A feature that was not offered: refused too. */
	tdrv_set_features(d, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 40));
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO);
	assert_int_equal(tdrv_status(d), A | D);
	/* A subset with VERSION_1: accepted and readable back. */
	tdrv_set_features(d, (1ULL << VIRTIO_F_VERSION_1) | DUMMY_FEATURE);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO);
	assert_int_equal(tdrv_status(d), A | D | FO);
	assert_true(virtio_dev_has_feature(&f->d.vdev, 5));
	assert_false(virtio_dev_has_feature(&f->d.vdev, VIRTIO_F_EVENT_IDX));
	/* Features are frozen after FEATURES_OK. */
	tdrv_set_features(d, 1ULL << VIRTIO_F_VERSION_1);
	cc_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)DUMMY_FEATURE);
}

/* Drives the device to one of the canonical states along the valid path. */
static void goto_state(struct fx *f, uint8_t st)
{
	static const uint8_t path[] = {A, A | D, A | D | FO, A | D | FO | DO};

	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	tdrv_set_features(&f->drv, 1ULL << VIRTIO_F_VERSION_1);
	for (size_t i = 0; i < sizeof(path) && st; i++) {
		if ((path[i] & st) != path[i])
			break;
		cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, path[i]);
	}
	assert_int_equal(tdrv_status(&f->drv), st);
}

static void test_status_every_pair(void **state)
{
	struct fx *f = *state;
	static const uint8_t states[] = {0, A, A | D, A | D | FO, A | D | FO | DO};
	/* Some out-of-order values a driver might write. */
	static const uint8_t others[] = {D, FO, DO, A | FO, A | DO, A | D | DO, D | FO | DO};
	int n = sizeof(states);

	for (int i = 0; i < n; i++) {
		for (int j = 0; j < n; j++) {
			uint8_t from = states[i], to = states[j], want;

			goto_state(f, from);
			cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, to);
			/* Allowed: reset, staying, or exactly the next step. */
			want = (to == 0 || to == from || j == i + 1) ? to : from;
			assert_int_equal(tdrv_status(&f->drv), want);
		}
		for (size_t k = 0; k < sizeof(others); k++) {
			goto_state(f, states[i]);
			cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, others[k]);
			assert_int_equal(tdrv_status(&f->drv), states[i]);
		}
		/* FAILED can be set from anywhere and sticks until reset. */
		goto_state(f, states[i]);
		cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, states[i] | VIRTIO_STATUS_FAILED);
		assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_FAILED);
		cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO | DO);
		assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_FAILED);
	}
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(&f->drv), 0);
}

static void test_probe_activate_reset(void **state)
{
	struct fx *f = *state;
	struct tdrv *d = &f->drv;
	uint64_t feat = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX);
	int resets;

	assert_int_equal(tdrv_probe(d, feat, NQ, QSIZE), 0);
	assert_int_equal(f->d.activations, 1);
	assert_ptr_not_equal(f->d.vdev.vqs[0].desc, NULL);
	assert_true(f->d.vdev.vqs[0].event_idx);
	/* Queue registers are frozen while running. */
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x5000);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), tq_desc(0));
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	/* Kicks through the notify area reach the device's queue. */
	tdrv_kick(d, 1);
	tdrv_kick(d, 1);
	tdrv_kick(d, 0);
	assert_int_equal(f->d.kicks[1], 2);
	assert_int_equal(f->d.kicks[0], 1);
	/* A kick for a queue that does not exist is ignored. */
	tdrv_kick(d, NQ + 3);
	/* Device config goes to the device; past its length reads 0 and writes vanish. */
	mmio_wr(&f->m, d->bar0 + VIRTIO_PCI_DEVCFG_OFF + 2, 2, 0xbeef);
	assert_int_equal(f->d.cfg[2], 0xef);
	assert_int_equal(mmio_rd(&f->m, d->bar0 + VIRTIO_PCI_DEVCFG_OFF + 2, 2), 0xbeef);
	assert_int_equal(mmio_rd(&f->m, d->bar0 + VIRTIO_PCI_DEVCFG_OFF + 6, 4), 0);
	mmio_wr(&f->m, d->bar0 + VIRTIO_PCI_DEVCFG_OFF + 7, 2, 0xffff);
	assert_int_equal(f->d.cfg[7], 0);

	/* Reset: device told, registers back to their initial values. */
	resets = f->d.resets;
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(f->d.resets, resets + 1);
	assert_int_equal(tdrv_status(d), 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cc_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_GF, 4), 0);
	assert_null(f->d.vdev.vqs[0].desc);
	/* Kicks after reset do not reach the device. */
	tdrv_kick(d, 0);
	assert_int_equal(f->d.kicks[0], 1);
	/* And the device can be probed again. */
	assert_int_equal(tdrv_probe(d, feat, NQ, QSIZE), 0);
	assert_int_equal(f->d.activations, 2);
}

static void test_queue_registers(void **state)
{
	struct fx *f = *state;
	struct tdrv *d = &f->drv;

	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | 0);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 3); /* not a power of two */
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64); /* above the maximum */
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 4);
	/* Vectors beyond the MSI-X table read back as NO_VECTOR. */
	cc_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, NQ); /* NQ + 1 vectors: 0 .. NQ */
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), NQ);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, NQ + 1);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cc_wr(d, VIRTIO_PCI_COMMON_MSIX, 2, 99);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	/* 64-bit address written in halves, also with 8-byte and 1-byte accesses. */
	cc_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x12345000);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x1);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0x112345000ULL);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, 0x200000000ULL | 0x6000);
	assert_int_equal(f->d.vdev.vqs[0].avail_gpa, 0x200006000ULL);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO + 1, 1, 0x70);
	assert_int_equal(f->d.vdev.vqs[0].used_gpa, 0x7000);
	/* A queue that does not exist reads as size 0. */
	cc_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, NQ);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	/* Read-only registers ignore writes. */
	cc_wr(d, VIRTIO_PCI_COMMON_NUMQ, 2, 9);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
	/* Past the structure: zero. */
	assert_int_equal(mmio_rd(&f->m, d->bar0 + 0x80, 4), 0);
}

static void test_bad_rings_need_reset(void **state)
{
	struct fx *f = *state;
	struct tdrv *d = &f->drv;

	/* Queue enabled with its used ring outside RAM: activation fails -> NEEDS_RESET. */
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D);
	tdrv_set_features(d, 1ULL << VIRTIO_F_VERSION_1);
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO);
	tdrv_setup_queue(d, 0, QSIZE, 1);
	cc_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0); /* frozen: enabled */
	f->d.vdev.vqs[0].used_gpa = f->m.ram_size;  /* what a hostile driver could program */
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO | DO);
	assert_true(tdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Kicks are ignored while the device needs a reset. */
	tdrv_kick(d, 0);
	assert_int_equal(f->d.kicks[0], 0);
	/* Reset clears it. */
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(d), 0);
	/* A device activation failure has the same effect. */
	f->d.fail_activate = 1;
	assert_int_equal(tdrv_probe(d, 1ULL << VIRTIO_F_VERSION_1, NQ, QSIZE), -EIO);
	assert_true(tdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_isr_and_config_interrupt(void **state)
{
	struct fx *f = *state;
	struct tdrv *d = &f->drv;
	uint64_t n = 0;

	assert_int_equal(tdrv_probe(d, 1ULL << VIRTIO_F_VERSION_1, NQ, QSIZE), 0);
	/* Enable MSI-X with vector 0 (config) unmasked. */
	for (int off = cfg_rd(&f->m, f->slot, PCI_CAP_PTR, 1); off;
	     off = cfg_rd(&f->m, f->slot, off + 1, 1))
		if (cfg_rd(&f->m, f->slot, off, 1) == PCI_CAP_ID_MSIX)
			cfg_wr(&f->m, f->slot, off + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	mmio_wr(&f->m, d->msix + 0, 4, 0xfee00000);
	mmio_wr(&f->m, d->msix + 8, 4, 0x30);
	mmio_wr(&f->m, d->msix + 12, 4, 0);
	virtio_dev_config_changed(&f->d.vdev);
	assert_int_equal(cc_rd(d, VIRTIO_PCI_COMMON_CFGGEN, 1), 1);
	assert_int_equal(read(f->d.vdev.pci.msix->vec[0].efd, &n, 8), 8);
	assert_int_equal(n, 1);
	/* ISR: config bit set, read clears. */
	assert_int_equal(mmio_rd(&f->m, d->bar0 + VIRTIO_PCI_ISR_OFF, 1), 2);
	assert_int_equal(mmio_rd(&f->m, d->bar0 + VIRTIO_PCI_ISR_OFF, 1), 0);
	/* NEEDS_RESET raises the config vector as well. */
	virtio_dev_set_needs_reset(&f->d.vdev);
	assert_int_equal(read(f->d.vdev.pci.msix->vec[0].efd, &n, 8), 8);
	assert_true(tdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* The driver cannot clear NEEDS_RESET except by resetting. */
	cc_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, A | D | FO | DO);
	assert_true(tdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_unplug_while_configured(void **state)
{
	struct fx *f = *state;
	uint64_t bar0 = f->drv.bar0;

	assert_int_equal(tdrv_probe(&f->drv, 1ULL << VIRTIO_F_VERSION_1, NQ, QSIZE), 0);
	pci_dev_remove(&f->d.vdev.pci);
	assert_int_equal(mmio_rd(&f->m, bar0, 4), ~0ULL);
	assert_int_equal(cfg_rd(&f->m, f->slot, 0, 4), 0xffffffff);
	/* Teardown destroys the (already unplugged) device. */
}

/* ---- rng through the same transport ------------------------------------------------------- */

static void test_rng(void **state)
{
	struct tmach m;
	struct virtio_dev *rng;
	struct tdrv d;
	uint32_t id, len;
	int slot;
	uint8_t zero[64] = {0};

	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(virtio_rng_create(m.pbus, m.mem, NULL, &rng), 0);
	slot = rng->pci.slot;
	assert_int_equal(cfg_rd(&m, slot, PCI_DEVICE_ID, 2), 0x1044);
	tdrv_attach(&d, &m, slot);
	assert_int_equal(tdrv_probe(&d, (1ULL << VIRTIO_F_VERSION_1), 1, 16), 0);
	/* A readable descriptor first (ignored), then two writable buffers. */
	tq_set_desc(&m, 0, 0, 0x40000, 8, VIRTQ_DESC_F_NEXT, 1);
	tq_set_desc(&m, 0, 1, 0x41000, 40, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	tq_set_desc(&m, 0, 2, 0x42000, 24, VIRTQ_DESC_F_WRITE, 0);
	tq_avail_add(&m, 0, 16, 0);
	tdrv_kick(&d, 0);
	assert_int_equal(tq_used_idx(&m, 0), 1);
	tq_used_elem(&m, 0, 16, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 64);
	assert_memory_not_equal(m.ram + 0x41000, zero, 40);
	assert_memory_not_equal(m.ram + 0x42000, zero, 24);
	/* A looping chain marks the device NEEDS_RESET instead of hanging. */
	tq_set_desc(&m, 0, 3, 0x41000, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
	tq_avail_add(&m, 0, 16, 3);
	tdrv_kick(&d, 0);
	assert_true(tdrv_status(&d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(tq_used_idx(&m, 0), 1);
	virtio_dev_destroy(rng);
	tm_fini(&m);
}

/*
 * Issue 9, defect 3: a driver that refills the ring as fast as the device
 * empties it must not keep one kick going: after its budget the handler
 * re-kicks itself and returns.
 */
static void test_rng_budget(void **state)
{
	struct tq_refiller r = {.q = 0, .qsize = 16, .max = 100000};
	struct virtio_dev *rng;
	struct tmach m;
	struct tdrv d;
	pthread_t th;
	uint16_t used;

	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(virtio_rng_create(m.pbus, m.mem, NULL, &rng), 0);
	tdrv_attach(&d, &m, rng->pci.slot);
	assert_int_equal(tdrv_probe(&d, (1ULL << VIRTIO_F_VERSION_1), 1, 16), 0);
	for (int i = 0; i < 16; i++)
		tq_set_desc(&m, 0, i, 0x40000 + 64 * i, 8, VIRTQ_DESC_F_WRITE, 0);
	r.m = &m;
	assert_int_equal(pthread_create(&th, NULL, tq_refill_thread, &r), 0);
	while (__atomic_load_n(&r.added, __ATOMIC_ACQUIRE) < 16)
		;
	tdrv_kick(&d, 0); /* inline: no loop */
	used = tq_used_idx(&m, 0);
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	if (used > 64)
		fail_msg("one kick served %u requests", used);
	/* With the ring kept full, the budget ran out: the handler asked to come back. */
	if (used == 64)
		assert_int_equal(rng->rekicks, 1);
	virtio_dev_destroy(rng);
	tm_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ids_and_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_every_pair, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_probe_activate_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_registers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_rings_need_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_isr_and_config_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unplug_while_configured, setup, teardown),
	    cmocka_unit_test(test_rng),
	    cmocka_unit_test(test_rng_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
