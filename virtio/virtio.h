/*
 * virtio/: split virtqueues, the modern virtio-pci transport and the devices
 * built on them (blk, rng, vsock, pmem, net, 9p; each has its header or a
 * section below).
 *
 * Three layers: the transport (virtio/pci.c) owns the PCI function, the
 * registers, feature negotiation, device status, the device lock and the
 * active flag; a device (blk.c, rng.c ...)
 * plugs in through a const struct virtio_dev_ops and reaches its own struct
 * with container_of (vmm/util.h); a host backend (blk_uring.c) does the
 * device's I/O.
 * Devices raise interrupts with virtio_dev_notify(), ask for another turn
 * with virtio_dev_rekick(), and never see PCI or the transport's fds.
 *
 * What the VMM calls (all return 0 or -errno):
 *
 *	struct pci_bus *pbus;  pci_bus_create_vm(&pbus, vm);          (vmm/pci.h)
 *	struct blk_config cfg = { .path = "disk.img", .read_only = false,
 *                                  .serial = "disk0", .num_queues = vm_nr_cpus(vm) };
 *	virtio_blk_create(pbus, vm_mem(vm), loop, &cfg, &dev);
 *	virtio_rng_create(pbus, vm_mem(vm), loop, &dev);
 *	...
 *	virtio_dev_destroy(dev);   (hot-remove: unplug the function, close the backend)
 *	pci_bus_destroy(pbus);
 *
 * Threads: register accesses run on vCPU threads; queue kicks arrive as
 * ioeventfds handled on the device's loop (in the shim an I/O thread's,
 * vmm/io_thread.h, for blk, pmem, net and 9p; the control loop's for rng
 * and vsock), where the devices do their ring work; blk I/O goes to io_uring
 * and completes on that loop too. Nothing on a loop blocks on disk I/O.
 * Creation and virtio_dev_destroy run on the control thread, holding no lock
 * a device callback takes (loop_add/loop_del on an I/O loop wait for it).
 */
#ifndef VIRTIO_VIRTIO_H
#define VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/mem.h"
#include "vmm/pci.h"
#include "vmm/util.h"

struct loop;

/* ---- Split virtqueue (queue.c) ------------------------------------------------------------ */

#define VIRTQ_MAX_SIZE 256

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc layout");

struct virtq {
	/* Programmed by the driver through the transport. */
	uint16_t size;
	uint16_t max_size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Set by virtq_start from the above; NULL while stopped. */
	const struct guest_mem *mem;
	struct virtq_desc *desc;
	uint16_t *avail; /* flags, idx, ring[size], used_event */
	uint8_t *used;	 /* flags, idx, ring[size] of {id, len}, avail_event */
	bool event_idx;
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t used_idx;   /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_valid;
	uint16_t notified_used; /* used_idx when virtq_should_notify last said yes */
};

/* A queue's indices as they are now, the driver's and ours (a device's stall report). */
struct virtq_state {
	uint16_t avail_idx, last_avail, avail_event; /* the driver's, ours, what we asked for */
	uint16_t used_idx, used_event, notified_used;
	uint16_t avail_flags;
	bool event_idx;
};

/* One request as a list of guest buffers: readable ones first, then writable ones. */
struct virtq_chain {
	uint16_t head;
	uint16_t nr_out; /* readable (driver -> device) iovecs, iov[0 .. nr_out) */
	uint16_t nr_in;	 /* writable iovecs, iov[nr_out .. nr_out + nr_in) */
	uint32_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/*
 * Validates the ring addresses (size, alignment, inside RAM) and resets the
 * indices. Returns 0 or -EINVAL/-EFAULT.
 */
int virtq_start(struct virtq *q, const struct guest_mem *mem, bool event_idx)
    __attribute__((warn_unused_result));
/* Forgets the ring (device reset); the programmed fields go back to defaults. */
void virtq_reset(struct virtq *q);
/*
 * Takes the next available chain: 1 when one was taken, 0 when the ring is
 * empty, -EIO when the driver broke the rules (the device must then be marked
 * NEEDS_RESET). Never reads outside guest RAM, never takes more hops than the
 * queue size.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *chain) __attribute__((warn_unused_result));
/*
 * Gives back the last n chains virtq_pop took and that were not pushed: the
 * next pops return them again (a mergeable rx packet that did not fit).
 */
void virtq_unpop(struct virtq *q, uint16_t n);
/*
 * Whether the driver has made a buffer available that virtq_pop has not taken.
 * Unlike virtq_pop it never asks the driver for a kick (EVENT_IDX), so a
 * device that polls with it keeps the driver's notifications suppressed.
 */
bool virtq_avail_pending(const struct virtq *q);
/* Returns a chain with len bytes written into its writable buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* After pushes: whether the driver wants an interrupt now (EVENT_IDX or NO_INTERRUPT). */
bool virtq_should_notify(struct virtq *q);
/* Reads the indices above (zeroes for a stopped queue); the caller serialises with the device. */
void virtq_get_state(const struct virtq *q, struct virtq_state *st);

/* Copies up to len bytes out of/into an iovec list starting at byte skip; returns bytes done. */
size_t iov_to_buf(const struct iovec *iov, int n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, int n, size_t skip, const void *buf, size_t len);
/* Fills dst (up to max entries) with the bytes [skip, skip+len) of src; returns entries or -1. */
int iov_slice(const struct iovec *src, int n, size_t skip, size_t len, struct iovec *dst, int max);

/* ---- Transport (pci.c) -------------------------------------------------------------------- */

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80

#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_MAX_QUEUES    64

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_9P  9

/* BAR 0 layout of the transport (offsets of each structure). */
#define VIRTIO_PCI_COMMON_OFF  0x0000
#define VIRTIO_PCI_ISR_OFF     0x1000
#define VIRTIO_PCI_DEVCFG_OFF  0x2000
#define VIRTIO_PCI_NOTIFY_OFF  0x3000
#define VIRTIO_PCI_BAR_SIZE    0x4000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_BAR    2

/* Common configuration structure offsets (virtio 1.x, 4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT  0x00
#define VIRTIO_PCI_COMMON_DF	    0x04
#define VIRTIO_PCI_COMMON_GFSELECT  0x08
#define VIRTIO_PCI_COMMON_GF	    0x0c
#define VIRTIO_PCI_COMMON_MSIX	    0x10
#define VIRTIO_PCI_COMMON_NUMQ	    0x12
#define VIRTIO_PCI_COMMON_STATUS    0x14
#define VIRTIO_PCI_COMMON_CFGGEN    0x15
#define VIRTIO_PCI_COMMON_Q_SELECT  0x16
#define VIRTIO_PCI_COMMON_Q_SIZE    0x18
#define VIRTIO_PCI_COMMON_Q_MSIX    0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE  0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF    0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO  0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI  0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO  0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI  0x34
#define VIRTIO_PCI_COMMON_SIZE	    0x38

struct virtio_dev;

/*
 * What a device gives the transport; every hook is optional. The transport
 * sets dev->active under dev->dev_lock at DRIVER_OK and clears it on reset,
 * so a device without more to do at those moments needs neither hook.
 */
struct virtio_dev_ops {
	/* Device-specific config space (bounds already checked; absent: reads as zeroes). */
	void (*config_read)(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len);
	/*
	 * DRIVER_OK with negotiated features and started queues; dev_lock held,
	 * active already set; nonzero -> NEEDS_RESET.
	 */
	int (*activate)(struct virtio_dev *dev);
	/* The driver kicked queue q (runs on the device's loop: an I/O thread's or the control
	 * loop). */
	void (*queue_notify)(struct virtio_dev *dev, int q);
	/*
	 * Stop all work and forget in-flight requests; returns once nothing
	 * touches the rings. dev_lock held, active already cleared. On a device
	 * whose loop is an I/O thread's this runs there (the vCPU that wrote the
	 * status has gone on; the driver polls the status until it reads 0), else
	 * on that vCPU with the register lock held too.
	 */
	void (*reset)(struct virtio_dev *dev);
	/*
	 * Teardown, after the unplug, the reset and the kick fds' removal, with no
	 * lock held: takes the device's own fds (completion eventfd, backend) off
	 * its loop. On an I/O loop their callbacks run on another thread; once
	 * this returns none runs, so the transport may destroy the locks they take.
	 */
	void (*detach)(struct virtio_dev *dev);
	/* Release the device's resources (after it has been unplugged and detached). */
	void (*destroy)(struct virtio_dev *dev);
};

struct virtio_dev {
	struct pci_dev pci; /* first: the PCI function */
	const struct virtio_dev_ops *ops;
	struct guest_mem *mem;
	struct loop *loop; /* NULL: kicks are handled inline on the vCPU (unit tests) */
	const char *name;
	uint16_t device_id;
	uint32_t config_len;
	uint64_t host_features;	 /* offered (the transport adds its own bits) */
	uint64_t guest_features; /* accepted by the driver */

	/*
	 * The device's lock: its ring work (queue_notify, completions) runs under
	 * it, and the transport takes it to flip active around activate/reset.
	 * Taken inside lock, never the other way round.
	 */
	pthread_mutex_t dev_lock;
	bool active; /* DRIVER_OK and not reset: under dev_lock */

	pthread_mutex_t lock; /* registers below */
	uint32_t dfselect, gfselect;
	uint16_t msix_config;
	uint8_t status; /* atomics: devices set NEEDS_RESET from other threads */
	uint8_t isr;	/* atomics */
	uint8_t config_generation;
	/*
	 * The driver wrote 0 and the reset runs on the device's I/O thread: status
	 * reads back as before (non-zero) until it is done, other writes are ignored.
	 */
	bool resetting;
	uint16_t queue_select;
	int nr_queues;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	int kick_fd[VIRTIO_MAX_QUEUES];
	struct virtio_kick {
		struct virtio_dev *dev;
		int q;
	} kick[VIRTIO_MAX_QUEUES]; /* loop callback context per queue */
	uint64_t notify_base;	   /* guest address of the notify area while mapped, else 0 */
	bool ioeventfds;	   /* kick_fds are registered as ioeventfds */
	uint8_t pcicfg_cap;	   /* config offset of the PCI_CFG access capability */
	uint64_t rekicks;	   /* virtio_dev_rekick calls: handlers that ran out of budget */
};

/*
 * Builds the PCI function for a device (ids, the class its device id calls
 * for, capabilities, BARs, MSI-X with nr_queues + 1 vectors, kick eventfds on
 * the loop) without plugging it.
 */
int virtio_dev_init(struct virtio_dev *dev, const char *name, uint16_t device_id,
		    int nr_queues, uint16_t queue_size, uint32_t config_len,
		    uint64_t features, const struct virtio_dev_ops *ops, struct guest_mem *mem,
		    struct loop *loop) __attribute__((warn_unused_result));
/* Places the function on the bus (hot-add when the guest runs); returns the slot. */
int virtio_dev_plug(struct virtio_dev *dev, struct pci_bus *pbus)
    __attribute__((warn_unused_result));
/* Unplugs (if plugged), resets the device, and calls ops->destroy, which frees it. NULL ok. */
void virtio_dev_destroy(struct virtio_dev *dev);

/* Raises queue q's interrupt if the driver wants one (virtq_should_notify). */
void virtio_dev_notify(struct virtio_dev *dev, int q);
/*
 * A queue handler used up its per-kick budget with work left: queue q is
 * handled again once the loop has served everyone else, so a guest that keeps
 * refilling a ring cannot hold the loop. Loop thread.
 */
void virtio_dev_rekick(struct virtio_dev *dev, int q);
/* The driver broke the protocol: set DEVICE_NEEDS_RESET and raise a config interrupt. */
void virtio_dev_set_needs_reset(struct virtio_dev *dev);
/* The device config changed (e.g. capacity): bump the generation and notify. */
void virtio_dev_config_changed(struct virtio_dev *dev);
bool virtio_dev_has_feature(const struct virtio_dev *dev, unsigned bit);
/* Status as the driver would read it. */
uint8_t virtio_dev_status(const struct virtio_dev *dev);

/* ---- Devices ------------------------------------------------------------------------------ */

#define BLK_SERIAL_LEN 20 /* VIRTIO_BLK_ID_BYTES */

struct blk_config {
	const char *path;
	bool read_only;
	const char *serial; /* NULL or "" -> none; longer than 20 bytes is cut */
	int num_queues;	    /* 0 -> 1; one per vCPU is the intent; capped at 16 */
};

/* Opens path (regular file or block device) and plugs a virtio-blk function. */
int virtio_blk_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      const struct blk_config *cfg, struct virtio_dev **out)
    __attribute__((warn_unused_result));
/* Entropy device backed by getrandom(). */
int virtio_rng_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      struct virtio_dev **out) __attribute__((warn_unused_result));

struct p9_share_config; /* virtio/p9.h */
struct p9_pool;		/* virtio/p9.h: the VM's 9p workers, p9_pool_create */

/*
 * Shares a host directory under a mount tag (at most 64 bytes) through the
 * 9P2000.L server of virtio/p9.h; the pool's workers serve the requests.
 */
int virtio_9p_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		     struct p9_pool *pool, const char *tag, const struct p9_share_config *share,
		     struct virtio_dev **out)
    __attribute__((warn_unused_result));

#endif
