/* virtio-pmem (see pmem.h): the file in a memory slot, flushes on io_uring. */
#include "virtio/pmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/blk_backend.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/mem_slots.h"
#include "vmm/host_open.h"

#define TAG	     "pmem"
#define RESP_IOV_MAX 4 /* a 4-byte answer split over more buffers is refused */

struct pmem_dev;

/* A flush in flight, indexed by its chain's head. */
struct pmem_req {
	struct blk_io io;
	struct pmem_dev *pm;
	uint16_t head;
	bool busy;
	int nresp;
	struct iovec resp[RESP_IOV_MAX];
};

struct pmem_dev {
	struct virtio_dev vdev;
	bool pushed; /* used entries not yet signalled */
	int fd;
	bool read_only;
	char name[32];
	struct mem_slot *slot;
	struct blk_backend *backend;
	bool efd_on_loop;
	struct pmem_cfg_layout cfg;
	struct pmem_stats stats;
	struct virtq_chain chain;
	struct pmem_req reqs[PMEM_QUEUE_SIZE];
};

static struct pmem_dev *to_pmem(struct virtio_dev *vdev)
{
	return container_of(vdev, struct pmem_dev, vdev);
}

/* ---- requests ------------------------------------------------------------------------ */

/* Lock held. Writes the answer into the guest's buffer and returns the chain. */
static void answer(struct pmem_dev *pm, struct pmem_req *req, uint32_t ret)
{
	uint8_t le[4] = {ret, ret >> 8, ret >> 16, ret >> 24};

	iov_from_buf(req->resp, req->nresp, 0, le, sizeof(le));
	virtq_push(&pm->vdev.vqs[0], req->head, sizeof(le));
	pm->pushed = true;
	pm->stats.flushes++;
	if (ret != PMEM_RESP_OK)
		pm->stats.errors++;
	req->busy = false;
}

static void signal_queue(struct pmem_dev *pm)
{
	if (pm->pushed) {
		pm->pushed = false;
		virtio_dev_notify(&pm->vdev, 0);
	}
}

/* From blk_backend_reap, lock held. */
static void flush_done(struct blk_io *io, int64_t res)
{
	struct pmem_req *req = container_of(io, struct pmem_req, io);
	struct pmem_dev *pm = req->pm;

	if (!pm->vdev.active || !req->busy) {
		req->busy = false; /* a reset forgot the request: nothing to answer */
		return;
	}
	if (res < 0)
		log_ratelimited(LOG_WARN, TAG, "%s: flush failed: %s", pm->name, strerror(-res));
	answer(pm, req, res < 0 ? PMEM_RESP_EIO : PMEM_RESP_OK);
}

/*
 * One chain: at least 4 readable bytes (the type), then at least 4 writable
 * ones (the answer). Returns 0, or -EIO when the driver broke the rules badly
 * enough to need a reset (a head reused while in flight).
 */
static int handle_chain(struct pmem_dev *pm, struct virtq_chain *c)
{
	struct virtq *vq = &pm->vdev.vqs[0];
	struct pmem_req *req;
	uint8_t le[4];
	uint32_t type;
	int n;

	if (c->head >= PMEM_QUEUE_SIZE || pm->reqs[c->head].busy)
		return -EIO;
	req = &pm->reqs[c->head];
	if (c->out_len < 4 || c->in_len < 4 ||
	    (n = iov_slice(c->iov + c->nr_out, c->nr_in, 0, 4, req->resp, RESP_IOV_MAX)) < 0) {
		/* Nothing to answer into: give the buffers back untouched. */
		log_ratelimited(LOG_WARN, TAG, "%s: malformed request (out %u, in %u bytes)",
				pm->name, c->out_len, c->in_len);
		pm->stats.malformed++;
		virtq_push(vq, c->head, 0);
		pm->pushed = true;
		return 0;
	}
	iov_to_buf(c->iov, c->nr_out, 0, le, sizeof(le));
	type = le[0] | le[1] << 8 | le[2] << 16 | (uint32_t)le[3] << 24;
	req->nresp = n;
	req->head = c->head;
	req->busy = true;
	if (type != PMEM_REQ_FLUSH) {
		log_ratelimited(LOG_WARN, TAG, "%s: unknown request type %u", pm->name, type);
		answer(pm, req, PMEM_RESP_EIO);
		return 0;
	}
	/*
	 * Read-only: nothing can be dirty (PROT_READ mapping, read-only KVM slot),
	 * so the flush succeeds without touching the file. An error would make the
	 * guest's read-only file system report I/O errors for a no-op.
	 */
	if (pm->read_only) {
		answer(pm, req, PMEM_RESP_OK);
		return 0;
	}
	req->io = (struct blk_io){.op = BLK_OP_FLUSH, .done = flush_done};
	if (blk_backend_queue(pm->backend, &req->io) < 0)
		answer(pm, req, PMEM_RESP_EIO);
	return 0;
}

static void pmem_completion_ready(void *opaque, uint32_t events)
{
	struct pmem_dev *pm = opaque;

	pthread_mutex_lock(&pm->vdev.dev_lock);
	blk_backend_reap(pm->backend, false);
	signal_queue(pm);
	pthread_mutex_unlock(&pm->vdev.dev_lock);
}

static void pmem_queue_notify(struct virtio_dev *vdev, int q)
{
	struct pmem_dev *pm = to_pmem(vdev);
	int budget = PMEM_BUDGET, r = 0;

	pthread_mutex_lock(&pm->vdev.dev_lock);
	while (pm->vdev.active && q == 0 && budget > 0) {
		r = virtq_pop(&vdev->vqs[0], &pm->chain);
		if (r <= 0)
			break;
		budget--;
		r = handle_chain(pm, &pm->chain);
		if (r < 0)
			break;
	}
	if (pm->vdev.active) {
		blk_backend_kick(pm->backend);
		if (!vdev->loop)
			blk_backend_reap(pm->backend, true); /* unit tests: complete here */
		signal_queue(pm);
	}
	if (r < 0)
		vdev->active = false;
	pthread_mutex_unlock(&pm->vdev.dev_lock);
	if (r < 0) {
		log_ratelimited(LOG_WARN, TAG, "%s: broken queue, device needs a reset", pm->name);
		virtio_dev_set_needs_reset(vdev);
	} else if (budget == 0) {
		virtio_dev_rekick(vdev, 0); /* more may be waiting: after the others */
	}
}

/* ---- device ops ------------------------------------------------------------------------ */

static void pmem_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, (uint8_t *)&to_pmem(vdev)->cfg + off, len);
}

static void pmem_reset(struct virtio_dev *vdev)
{
	struct pmem_dev *pm = to_pmem(vdev);

	/* The flushes given to the host finish; their answers are dropped. */
	if (pm->backend)
		blk_backend_reap(pm->backend, true);
	for (int i = 0; i < PMEM_QUEUE_SIZE; i++)
		pm->reqs[i].busy = false;
	pm->pushed = false;
}

/* No completion callback runs on the I/O thread once this returns (virtio_dev_ops.detach). */
static void pmem_detach(struct virtio_dev *vdev)
{
	struct pmem_dev *pm = to_pmem(vdev);

	if (pm->efd_on_loop)
		loop_del(vdev->loop, blk_backend_event_fd(pm->backend));
	pm->efd_on_loop = false;
}

static void pmem_destroy(struct virtio_dev *vdev)
{
	struct pmem_dev *pm = to_pmem(vdev);

	pr_dbg(TAG, "%s: %llu flushes, %llu errors, %llu malformed", pm->name,
	       (unsigned long long)pm->stats.flushes, (unsigned long long)pm->stats.errors,
	       (unsigned long long)pm->stats.malformed);
	blk_backend_destroy(pm->backend);
	/* The function is unplugged: no vCPU can reach the range any more. */
	mem_slot_remove(pm->slot);
	if (pm->fd >= 0)
		close(pm->fd);
	free(pm);
}

static const struct virtio_dev_ops pmem_ops = {
    .config_read = pmem_config_read,
    .queue_notify = pmem_queue_notify,
    .reset = pmem_reset,
    .detach = pmem_detach,
    .destroy = pmem_destroy,
};

/* ---- creation -------------------------------------------------------------------------- */

/* Opens and checks the backing file; fills fd and size. */
static int open_backing(const struct pmem_config *cfg, int *fd, uint64_t *size, char *err,
			size_t errlen)
{
	uint64_t max = cfg->max_bytes ? cfg->max_bytes : PMEM_MAX_BYTES_CAP;
	struct stat st;
	int ret;

	*fd = host_open(cfg->path, cfg->read_only ? O_RDONLY : O_RDWR, 0);
	if (*fd < 0) {
		ret = *fd;
		*fd = -1;
		snprintf(err, errlen, "cannot open '%s': %s", cfg->path, strerror(-ret));
		return ret;
	}
	if (fstat(*fd, &st)) {
		ret = -errno;
		snprintf(err, errlen, "'%s': %s", cfg->path, strerror(errno));
		goto fail;
	}
	ret = -EINVAL;
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		snprintf(err, errlen, "'%s' is a directory", cfg->path);
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", cfg->path);
	} else if (st.st_size == 0 || (st.st_size % PMEM_PAGE)) {
		snprintf(err, errlen, "'%s' is %lld bytes: not a non-zero multiple of %llu",
			 cfg->path, (long long)st.st_size, PMEM_PAGE);
	} else if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		snprintf(err, errlen, "'%s' is %lld bytes, over the %llu-byte maximum", cfg->path,
			 (long long)st.st_size, (unsigned long long)max);
	} else {
		*size = st.st_size;
		return 0;
	}
fail:
	close(*fd);
	*fd = -1;
	return ret;
}

int virtio_pmem_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		       struct mem_slots *slots, const struct pmem_config *cfg,
		       struct virtio_dev **out, char *err, size_t errlen)
{
	static int counter;
	struct pmem_dev *pm;
	uint64_t size = 0;
	int ret, slot;

	*out = NULL;
	if (!cfg->path || !slots) {
		snprintf(err, errlen, "no file or no memory slots");
		return -EINVAL;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(pm->name, sizeof(pm->name), "pmem%d", __atomic_fetch_add(&counter, 1, 0));
	pm->read_only = cfg->read_only;
	for (int i = 0; i < PMEM_QUEUE_SIZE; i++)
		pm->reqs[i].pm = pm;
	ret = open_backing(cfg, &pm->fd, &size, err, errlen);
	if (ret)
		goto fail_free;
	ret = mem_slot_add(slots, pm->fd, size, cfg->read_only, &pm->slot);
	if (ret) {
		snprintf(err, errlen, "cannot map '%s' as guest memory: %s", cfg->path,
			 ret == -EOPNOTSUPP ? "this KVM has no read-only memory slots"
			 : ret == -ENOSPC   ? "no guest-physical range or memory slot left"
					    : strerror(-ret));
		goto fail_free;
	}
	ret = blk_uring_create(&pm->backend, pm->fd, PMEM_QUEUE_SIZE);
	if (ret) {
		snprintf(err, errlen, "io_uring setup failed: %s", strerror(-ret));
		goto fail_free;
	}
	pm->cfg.start = pm->slot->gpa;
	pm->cfg.size = pm->slot->size;
	ret = virtio_dev_init(&pm->vdev, pm->name, VIRTIO_ID_PMEM, 1, PMEM_QUEUE_SIZE,
			      sizeof(pm->cfg), 0, &pmem_ops, mem, loop);
	if (ret) {
		snprintf(err, errlen, "cannot build the PCI function: %s", strerror(-ret));
		goto fail_free;
	}
	if (loop) {
		ret = loop_add(loop, blk_backend_event_fd(pm->backend), EPOLLIN,
			       pmem_completion_ready, pm);
		if (ret) {
			snprintf(err, errlen, "event loop: %s", strerror(-ret));
			goto fail_dev;
		}
		pm->efd_on_loop = true;
	}
	slot = virtio_dev_plug(&pm->vdev, pbus);
	if (slot < 0) {
		ret = slot;
		snprintf(err, errlen, "no free PCI slot: %s", strerror(-ret));
		goto fail_dev;
	}
	pr_info(TAG, "%s: %s%s, %llu bytes at 0x%llx, PCI slot %d", pm->name, cfg->path,
		cfg->read_only ? " (ro)" : "", (unsigned long long)size,
		(unsigned long long)pm->cfg.start, slot);
	*out = &pm->vdev;
	return 0;
fail_dev:
	virtio_dev_destroy(&pm->vdev); /* calls pmem_destroy */
	return ret;
fail_free:
	blk_backend_destroy(pm->backend);
	mem_slot_remove(pm->slot);
	if (pm->fd >= 0)
		close(pm->fd);
	free(pm);
	return ret;
}

void virtio_pmem_range(struct virtio_dev *dev, uint64_t *start, uint64_t *size)
{
	struct pmem_dev *pm = to_pmem(dev);

	*start = pm->cfg.start;
	*size = pm->cfg.size;
}

void virtio_pmem_stats(struct virtio_dev *dev, struct pmem_stats *out)
{
	struct pmem_dev *pm = to_pmem(dev);

	pthread_mutex_lock(&pm->vdev.dev_lock);
	*out = pm->stats;
	pthread_mutex_unlock(&pm->vdev.dev_lock);
}

int virtio_pmem_backend_fd(struct virtio_dev *dev)
{
	return to_pmem(dev)->fd;
}
