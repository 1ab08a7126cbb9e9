/*
 * Modern virtio-pci transport (virtio 1.x, 4.1): the PCI function, feature
 * negotiation, device status, reset and queue notifications; the common
 * configuration registers are in pci_common.c. Devices only see struct
 * virtio_dev and their ops.
 *
 * BAR 0: common cfg, ISR, device cfg, notify (one 4-byte slot per queue).
 * BAR 2: MSI-X table and PBA (vmm/pci.c).
 */
#include "virtio.h"
#include "virtio/pci_priv.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define VIRTIO_PCI_VENDOR    0x1af4
#define VIRTIO_PCI_DEVICE(t) (0x1040 + (t))

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

static struct virtio_dev *to_vdev(struct pci_dev *p)
{
	return container_of(p, struct virtio_dev, pci);
}

/*
 * The PCI class a device type presents (24 bits: class, subclass, prog-if),
 * as other VMMs do; drivers bind by vendor/device id, the class is for lspci
 * and firmware. Unlisted types are "unclassified, other" (0x00ff00).
 */
static uint32_t class_of(uint16_t device_id)
{
	static const struct {
		uint16_t id;
		uint32_t cls;
	} classes[] = {
	    {1, 0x020000},  /* net: ethernet controller */
	    {2, 0x018000},  /* blk: mass storage, other */
	    {9, 0x018000},  /* 9p: mass storage, other */
	    {19, 0x078000}, /* vsock: communication controller, other */
	    {27, 0x058000}, /* pmem: memory controller, other */
	};

	for (size_t i = 0; i < ARRAY_SIZE(classes); i++)
		if (classes[i].id == device_id)
			return classes[i].cls;
	return 0x00ff00;
}

uint8_t virtio_dev_status(const struct virtio_dev *dev)
{
	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE);
}

bool virtio_dev_has_feature(const struct virtio_dev *dev, unsigned bit)
{
	return bit < 64 && (dev->guest_features & (1ULL << bit));
}

/* ---- Interrupts --------------------------------------------------------------------------- */

static void raise_vector(struct virtio_dev *dev, uint16_t vector, uint8_t isr_bit)
{
	__atomic_fetch_or(&dev->isr, isr_bit, __ATOMIC_RELEASE);
	if (vector != VIRTIO_MSI_NO_VECTOR)
		pci_msix_notify(&dev->pci, vector);
}

void virtio_dev_notify(struct virtio_dev *dev, int q)
{
	struct virtq *vq = &dev->vqs[q];

	if (virtq_should_notify(vq))
		raise_vector(dev, __atomic_load_n(&vq->msix_vector, __ATOMIC_RELAXED), 1);
}

void virtio_dev_set_needs_reset(struct virtio_dev *dev)
{
	uint8_t old = __atomic_fetch_or(&dev->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);

	if (old & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_ratelimited(LOG_WARN, "virtio", "%s: driver error, device needs reset", dev->name);
	if (old & VIRTIO_STATUS_DRIVER_OK)
		raise_vector(dev, __atomic_load_n(&dev->msix_config, __ATOMIC_RELAXED), 2);
}

void virtio_dev_config_changed(struct virtio_dev *dev)
{
	__atomic_fetch_add(&dev->config_generation, 1, __ATOMIC_RELEASE);
	if (virtio_dev_status(dev) & VIRTIO_STATUS_DRIVER_OK)
		raise_vector(dev, __atomic_load_n(&dev->msix_config, __ATOMIC_RELAXED), 2);
}

/* ---- Queue kicks -------------------------------------------------------------------------- */

static void kick_queue(struct virtio_dev *dev, int q)
{
	uint8_t st = virtio_dev_status(dev);

	/* Kicks before DRIVER_OK or after an error are ignored; the device is not running. */
	if ((st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET) &&
	    dev->ops->queue_notify)
		dev->ops->queue_notify(dev, q);
}

static void kick_fd_ready(void *opaque, uint32_t events)
{
	struct virtio_kick *k = opaque;
	uint64_t v;

	if (read(k->dev->kick_fd[k->q], &v, sizeof(v)) == sizeof(v))
		kick_queue(k->dev, k->q);
}

static void notify_write(struct virtio_dev *dev, uint32_t q)
{
	uint64_t one = 1;

	if (q >= (uint32_t)dev->nr_queues)
		return;
	if (!dev->loop) {
		kick_queue(dev, q);
		return;
	}
	/* Slow path (no ioeventfd): hand the kick to the loop like KVM would. */
	if (write(dev->kick_fd[q], &one, sizeof(one)) < 0)
		pr_warn_errno("virtio", "%s: kick", dev->name);
}

void virtio_dev_rekick(struct virtio_dev *dev, int q)
{
	uint64_t one = 1;

	if (q < 0 || q >= dev->nr_queues)
		return;
	dev->rekicks++;
	/* Without a loop (unit tests) the caller kicks again itself. */
	if (!dev->loop || dev->kick_fd[q] < 0)
		return;
	if (write(dev->kick_fd[q], &one, sizeof(one)) < 0)
		pr_warn_errno("virtio", "%s: re-kick", dev->name);
}

/* Moves the queue ioeventfds along with BAR 0. Called with the PCI bus lock held. */
static void virtio_bar_map(struct pci_dev *p, int bar, uint64_t addr, bool mapped)
{
	struct virtio_dev *dev = to_vdev(p);
	const struct pci_host_ops *h;
	void *op;

	if (bar != 0 || !p->bus)
		return;
	h = pci_bus_host(p->bus, &op);
	pthread_mutex_lock(&dev->lock);
	if (dev->ioeventfds) {
		for (int q = 0; q < dev->nr_queues; q++)
			h->ioeventfd(op, dev->notify_base + VIRTIO_PCI_NOTIFY_MULT * q, 2,
				     dev->kick_fd[q], false);
		dev->ioeventfds = false;
	}
	dev->notify_base = 0;
	if (mapped && dev->loop) {
		int q, err = 0;

		dev->notify_base = addr + VIRTIO_PCI_NOTIFY_OFF;
		for (q = 0; q < dev->nr_queues && !err; q++)
			err = h->ioeventfd(op, dev->notify_base + VIRTIO_PCI_NOTIFY_MULT * q, 2,
					   dev->kick_fd[q], true);
		if (err) {
			/* The MMIO write path still works, only slower. */
			pr_warn("virtio", "%s: ioeventfd failed (%d), using MMIO exits",
				dev->name, err);
			while (--q > 0)
				h->ioeventfd(op,
					     dev->notify_base + VIRTIO_PCI_NOTIFY_MULT * (q - 1), 2,
					     dev->kick_fd[q - 1], false);
		} else {
			dev->ioeventfds = true;
		}
	}
	pthread_mutex_unlock(&dev->lock);
}

/* ---- Status and reset --------------------------------------------------------------------- */

/* The device stops: active goes, then its own reset runs (both under dev_lock). */
static void device_stop(struct virtio_dev *dev)
{
	pthread_mutex_lock(&dev->dev_lock);
	dev->active = false;
	if (dev->ops->reset)
		dev->ops->reset(dev);
	pthread_mutex_unlock(&dev->dev_lock);
}

/* The registers and queues back to their initial values, status 0 last. dev->lock held. */
static void reset_registers(struct virtio_dev *dev)
{
	for (int q = 0; q < dev->nr_queues; q++)
		virtq_reset(&dev->vqs[q]);
	dev->guest_features = 0;
	dev->dfselect = dev->gfselect = 0;
	dev->queue_select = 0;
	__atomic_store_n(&dev->msix_config, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
	__atomic_store_n(&dev->isr, 0, __ATOMIC_RELAXED);
	dev->resetting = false;
	__atomic_store_n(&dev->status, 0, __ATOMIC_RELEASE);
}

static void reset_locked(struct virtio_dev *dev)
{
	device_stop(dev);
	reset_registers(dev);
}

/*
 * A reset deferred to the device's I/O thread (reset_async): the device's own
 * reset there (blk waits for its disk I/O, 9p for its workers), then the
 * registers, under the register lock only for that moment, so the vCPU
 * polling the status is never held behind the device's drain.
 */
static void reset_work(void *opaque, uint32_t events)
{
	struct virtio_dev *dev = opaque;

	(void)events;
	device_stop(dev);
	pthread_mutex_lock(&dev->lock);
	if (dev->resetting)
		reset_registers(dev);
	pthread_mutex_unlock(&dev->lock);
}

/*
 * The driver wrote 0 (vCPU, dev->lock held). On an I/O thread's loop the reset
 * runs there and the status reads back non-zero until it is done, which the
 * virtio spec allows (4.1.4.3.2: the driver waits for a read of 0; Linux's
 * modern driver polls it in vp_reset): a disk reset never blocks the vCPU on its I/O. Work
 * stops at once (active cleared). Returns false when the reset must run here:
 * no I/O thread, or a status already 0 (a read of 0 would let the driver go
 * on before the deferred reset wiped what it writes next).
 */
static bool reset_async(struct virtio_dev *dev)
{
	if (!dev->loop || !loop_is_threaded(dev->loop) || virtio_dev_status(dev) == 0)
		return false;
	pthread_mutex_lock(&dev->dev_lock);
	dev->active = false;
	pthread_mutex_unlock(&dev->dev_lock);
	dev->resetting = true;
	if (loop_defer(dev->loop, reset_work, dev)) {
		dev->resetting = false;
		return false;
	}
	return true;
}

static bool features_ok(struct virtio_dev *dev)
{
	uint64_t offered = dev->host_features | VIRTIO_TRANSPORT_FEATURES;

	if (dev->guest_features & ~offered) {
		log_ratelimited(LOG_WARN, "virtio", "%s: driver accepted unoffered features %#llx",
				dev->name, (unsigned long long)(dev->guest_features & ~offered));
		return false;
	}
	/* Legacy interface is not offered. */
	return virtio_dev_has_feature(dev, VIRTIO_F_VERSION_1);
}

static int activate(struct virtio_dev *dev)
{
	bool evidx = virtio_dev_has_feature(dev, VIRTIO_F_EVENT_IDX);
	int err = 0;

	for (int q = 0; q < dev->nr_queues; q++) {
		if (!dev->vqs[q].enabled)
			continue;
		if (!dev->vqs[q].desc && virtq_start(&dev->vqs[q], dev->mem, evidx))
			return -EINVAL;
	}
	pthread_mutex_lock(&dev->dev_lock);
	dev->active = true;
	if (dev->ops->activate && (err = dev->ops->activate(dev)))
		dev->active = false;
	pthread_mutex_unlock(&dev->dev_lock);
	return err;
}

/*
 * Device status moves only along these edges (NEEDS_RESET and FAILED aside):
 * 0 -> ACK -> ACK|DRIVER -> +FEATURES_OK -> +DRIVER_OK; writing 0 resets.
 */
static const struct {
	uint8_t from, to;
} status_edges[] = {
    {0, VIRTIO_STATUS_ACKNOWLEDGE},
    {VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER},
    {VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER,
     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK},
    {VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	 VIRTIO_STATUS_DRIVER_OK},
};

void virtio_status_write(struct virtio_dev *dev, uint8_t val)
{
	uint8_t cur = virtio_dev_status(dev);
	uint8_t keep = cur & VIRTIO_STATUS_NEEDS_RESET;
	uint8_t from = cur & ~(VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED);
	uint8_t to = val & ~(VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED);
	bool ok = false;

	if (val == 0) {
		if (!reset_async(dev))
			reset_locked(dev);
		return;
	}
	if (val & VIRTIO_STATUS_FAILED) {
		/* The driver gave up; keep what we have, mark it, stop work. */
		__atomic_fetch_or(&dev->status, VIRTIO_STATUS_FAILED, __ATOMIC_RELEASE);
		return;
	}
	if (cur & VIRTIO_STATUS_FAILED)
		return;
	if (to == from)
		return;
	for (size_t i = 0; i < sizeof(status_edges) / sizeof(status_edges[0]); i++)
		if (status_edges[i].from == from && status_edges[i].to == to)
			ok = true;
	if (!ok) {
		log_ratelimited(LOG_WARN, "virtio", "%s: invalid status %#x -> %#x ignored",
				dev->name, cur, val);
		return;
	}
	if ((to & VIRTIO_STATUS_FEATURES_OK) && !(from & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_ok(dev)) {
		/* Leave FEATURES_OK clear: the driver reads it back and fails the probe. */
		return;
	}
	if ((to & VIRTIO_STATUS_DRIVER_OK) && !keep) {
		__atomic_store_n(&dev->status, to, __ATOMIC_RELEASE);
		if (activate(dev)) {
			log_ratelimited(LOG_WARN, "virtio", "%s: activation failed", dev->name);
			virtio_dev_set_needs_reset(dev);
		}
		return;
	}
	__atomic_store_n(&dev->status, to | keep, __ATOMIC_RELEASE);
}

/* ---- BAR 0 dispatch ----------------------------------------------------------------------- */

static void bar0_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_dev *dev = opaque;

	if (off < VIRTIO_PCI_ISR_OFF) {
		virtio_common_access(dev, off - VIRTIO_PCI_COMMON_OFF, data, len, is_write);
	} else if (off < VIRTIO_PCI_DEVCFG_OFF) {
		/* ISR: reading returns and clears it (4.1.4.5). */
		if (!is_write) {
			memset(data, 0, len);
			if (off == VIRTIO_PCI_ISR_OFF)
				data[0] = __atomic_exchange_n(&dev->isr, 0, __ATOMIC_ACQ_REL);
		}
	} else if (off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVCFG_OFF;

		if (o + len > dev->config_len) {
			if (!is_write)
				memset(data, 0, len);
			return;
		}
		pthread_mutex_lock(&dev->lock);
		if (!is_write && dev->ops->config_read)
			dev->ops->config_read(dev, o, data, len);
		else if (!is_write)
			memset(data, 0, len);
		else if (dev->ops->config_write)
			dev->ops->config_write(dev, o, data, len);
		pthread_mutex_unlock(&dev->lock);
	} else {
		uint64_t o = off - VIRTIO_PCI_NOTIFY_OFF;

		if (!is_write)
			memset(data, 0, len);
		else if (o % VIRTIO_PCI_NOTIFY_MULT == 0)
			notify_write(dev, o / VIRTIO_PCI_NOTIFY_MULT);
	}
}

/* ---- Setup -------------------------------------------------------------------------------- */

/*
 * VIRTIO_PCI_CAP_PCI_CFG: a window onto BAR 0 through config space, for
 * drivers that cannot map the BAR (firmware). The driver writes bar, offset
 * and length, then reads or writes pci_cfg_data. Runs under the PCI bus lock.
 */
static bool pcicfg_window(struct virtio_dev *dev, uint32_t off, uint32_t len, uint64_t *bar_off,
			  uint32_t *n)
{
	const uint8_t *c = dev->pci.cfg + dev->pcicfg_cap;
	uint32_t data = dev->pcicfg_cap + 16;

	if (!dev->pcicfg_cap || off >= data + 4 || off + len <= data)
		return false;
	*bar_off = pci_get_le(c + 8, 4);
	*n = pci_get_le(c + 12, 4);
	/* Only BAR 0, naturally sized accesses inside it. */
	return c[4] == 0 && (*n == 1 || *n == 2 || *n == 4) && *bar_off % *n == 0 &&
	       *bar_off + *n <= VIRTIO_PCI_BAR_SIZE;
}

static void virtio_config_read(struct pci_dev *p, uint32_t off, uint32_t len)
{
	struct virtio_dev *dev = to_vdev(p);
	uint64_t bo;
	uint32_t n;
	uint8_t buf[4] = {0};

	if (!pcicfg_window(dev, off, len, &bo, &n))
		return;
	bar0_access(dev, bo, buf, n, false);
	memcpy(p->cfg + dev->pcicfg_cap + 16, buf, 4);
}

static void virtio_config_write(struct pci_dev *p, uint32_t off, uint32_t len)
{
	struct virtio_dev *dev = to_vdev(p);
	uint64_t bo;
	uint32_t n;

	if (!pcicfg_window(dev, off, len, &bo, &n))
		return;
	bar0_access(dev, bo, p->cfg + dev->pcicfg_cap + 16, n, true);
}

static const struct pci_dev_ops virtio_pci_ops = {
    .bar_map = virtio_bar_map,
    .config_read = virtio_config_read,
    .config_write = virtio_config_write,
};

static int add_cap(struct pci_dev *p, uint8_t type, uint32_t off, uint32_t len, bool notify)
{
	uint8_t cap[20] = {PCI_CAP_ID_VNDR};

	cap[2] = notify ? 20 : 16; /* cap_len */
	cap[3] = type;
	cap[4] = 0; /* bar */
	pci_put_le(&cap[8], 4, off);
	pci_put_le(&cap[12], 4, len);
	if (notify)
		pci_put_le(&cap[16], 4, VIRTIO_PCI_NOTIFY_MULT);
	return pci_cap_add(p, cap, cap[2], NULL);
}

int virtio_dev_init(struct virtio_dev *dev, const char *name, uint16_t device_id,
		    int nr_queues, uint16_t queue_size, uint32_t config_len,
		    uint64_t features, const struct virtio_dev_ops *ops, struct guest_mem *mem,
		    struct loop *loop)
{
	int err, q;

	if (nr_queues < 1 || nr_queues > VIRTIO_MAX_QUEUES || nr_queues + 1 > PCI_MSIX_MAX ||
	    !queue_size || queue_size > VIRTQ_MAX_SIZE || (queue_size & (queue_size - 1)) ||
	    config_len > VIRTIO_PCI_NOTIFY_OFF - VIRTIO_PCI_DEVCFG_OFF)
		return -EINVAL;
	memset(dev, 0, sizeof(*dev));
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		dev->kick_fd[q] = -1;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->dev_lock, NULL);
	dev->name = name;
	dev->ops = ops;
	dev->mem = mem;
	dev->loop = loop;
	dev->device_id = device_id;
	dev->config_len = config_len;
	dev->host_features = features;
	dev->nr_queues = nr_queues;
	dev->msix_config = VIRTIO_MSI_NO_VECTOR;
	for (q = 0; q < nr_queues; q++) {
		dev->vqs[q].max_size = queue_size;
		virtq_reset(&dev->vqs[q]);
	}

	pci_dev_init(&dev->pci, name, VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE(device_id), class_of(device_id), 1,
		     VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE(device_id), &virtio_pci_ops);
	err = pci_dev_set_bar(&dev->pci, 0, VIRTIO_PCI_BAR_SIZE, false, bar0_access, dev);
	if (err)
		goto fail;
	err = pci_msix_init(&dev->pci, nr_queues + 1, VIRTIO_PCI_MSIX_BAR);
	if (err)
		goto fail;
	if ((err = add_cap(&dev->pci, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			   VIRTIO_PCI_COMMON_SIZE, false)) < 0 ||
	    (err = add_cap(&dev->pci, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, false)) < 0 ||
	    (err = add_cap(&dev->pci, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
			   VIRTIO_PCI_NOTIFY_MULT * nr_queues, true)) < 0)
		goto fail;
	if (config_len && (err = add_cap(&dev->pci, VIRTIO_PCI_CAP_DEVICE_CFG,
					 VIRTIO_PCI_DEVCFG_OFF, config_len, false)) < 0)
		goto fail;
	{
		uint8_t cap[20] = {PCI_CAP_ID_VNDR, 0, 20, VIRTIO_PCI_CAP_PCI_CFG};
		uint8_t wm[20] = {0};

		/* bar, offset, length and the data window are the driver's to write. */
		wm[4] = 0xff;
		memset(wm + 8, 0xff, 12);
		err = pci_cap_add(&dev->pci, cap, sizeof(cap), wm);
		if (err < 0)
			goto fail;
		dev->pcicfg_cap = err;
	}

	if (loop) {
		for (q = 0; q < nr_queues; q++) {
			dev->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (dev->kick_fd[q] < 0) {
				err = -errno;
				goto fail;
			}
			dev->kick[q].dev = dev;
			dev->kick[q].q = q;
			err =
			    loop_add(loop, dev->kick_fd[q], EPOLLIN, kick_fd_ready, &dev->kick[q]);
			if (err) {
				close(dev->kick_fd[q]);
				dev->kick_fd[q] = -1;
				goto fail;
			}
		}
	}
	return 0;
fail:
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (dev->kick_fd[q] >= 0) {
			loop_del(loop, dev->kick_fd[q]);
			close(dev->kick_fd[q]);
			dev->kick_fd[q] = -1;
		}
	}
	pci_msix_cleanup(&dev->pci);
	pthread_mutex_destroy(&dev->lock);
	pthread_mutex_destroy(&dev->dev_lock);
	return err;
}

int virtio_dev_plug(struct virtio_dev *dev, struct pci_bus *pbus)
{
	return pci_dev_add(pbus, &dev->pci, -1);
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	if (!dev)
		return;
	/* Unplug first: after this no vCPU reaches the registers and no ioeventfd fires. */
	pci_dev_remove(&dev->pci);
	pthread_mutex_lock(&dev->lock);
	device_stop(dev);
	pthread_mutex_unlock(&dev->lock);
	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (dev->kick_fd[q] >= 0) {
			loop_del(dev->loop, dev->kick_fd[q]);
			close(dev->kick_fd[q]);
			dev->kick_fd[q] = -1;
		}
	}
	/* No kick, completion or backend callback runs past this point, on any thread. */
	if (dev->ops->detach)
		dev->ops->detach(dev);
	pci_msix_cleanup(&dev->pci);
	pthread_mutex_destroy(&dev->lock);
	pthread_mutex_destroy(&dev->dev_lock);
	if (dev->ops->destroy)
		dev->ops->destroy(dev);
}
