/*
 * virtio-blk (virtio 1.x, 5.2) over a raw file or block device. Requests are
 * parsed on the event loop and handed to the backend (io_uring); completions
 * come back on the loop. One blk lock covers the rings, the request slots
 * and the backend, so reset (on a vCPU thread) can drain safely.
 */
#include "virtio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blk_backend.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/host_open.h"

#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WZ_UNMAP 1

#define BLK_SECTOR	    512
#define BLK_QUEUE_SIZE	    256
#define BLK_MAX_QUEUES	    16
#define BLK_QUEUE_BUDGET    BLK_QUEUE_SIZE /* chains per call before yielding the loop */
#define BLK_MAX_DISCARD_SEC 0x400000 /* 2 GiB per request */
/*
 * Poll window after a kick, in microseconds. Measured in the nested test host
 * (docs/virtio.md): 100-500 us cut kicks and interrupts per I/O by half or
 * more and raised IOPS; 200 is the default.
 */
#define BLK_POLL_US_DEFAULT 200
/* A poll after a kick never holds the event loop longer than this. */
#define BLK_POLL_MAX_NS 1000000

/* virtio_blk_config, little-endian (x86 host and guest). */
struct blk_cfg_layout {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct blk_cfg_layout) == 60, "virtio_blk_config layout");

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct blk_dev;

struct blk_req {
	struct blk_io io;
	struct blk_queue *bq;
	uint16_t head;
	bool busy;
	uint8_t *status;
	uint32_t used_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

struct blk_queue {
	struct blk_dev *blk;
	int index;
	bool pushed; /* used entries not yet signalled */
	struct virtq_chain chain;
	struct blk_req reqs[BLK_QUEUE_SIZE]; /* indexed by head */
};

/* What the loop did, for the log at destroy (UVM_LOG=debug) and the benchmark. */
struct blk_stats {
	uint64_t kicks;	      /* queue_notify calls */
	uint64_t reqs;	      /* chains taken */
	uint64_t done_inline; /* completions found right after submitting */
	uint64_t done_polled; /* completions found while polling the avail ring */
	uint64_t done_async;  /* completions that came through the eventfd */
	uint64_t async_wakes; /* eventfd wake-ups */
	uint64_t poll_hits;   /* polls that found new requests without a kick */
};

struct blk_dev {
	struct virtio_dev vdev; /* vdev.dev_lock covers everything below */
	int fd;
	bool read_only;
	uint64_t capacity; /* sectors */
	char serial[BLK_SERIAL_LEN];
	char name[32];
	struct blk_backend *backend;
	bool efd_on_loop;
	struct blk_cfg_layout cfg;
	uint64_t poll_ns; /* after a kick, look for more requests this long (0: never) */
	struct blk_stats stats;
	int nr_queues;
	struct blk_queue *queues;
};

static struct blk_dev *to_blk(struct virtio_dev *vdev)
{
	return container_of(vdev, struct blk_dev, vdev);
}

/* ---- Completion --------------------------------------------------------------------------- */

static void req_finish(struct blk_req *req, uint8_t status)
{
	struct blk_queue *bq = req->bq;

	req->busy = false;
	/* After a reset the ring belongs to nobody: drop the result. */
	if (!bq->blk->vdev.active)
		return;
	*req->status = status;
	virtq_push(&bq->blk->vdev.vqs[bq->index], req->head, req->used_len);
	bq->pushed = true;
}

static void req_io_done(struct blk_io *io, int64_t res)
{
	struct blk_req *req = (struct blk_req *)io;
	bool ok = res >= 0;

	if (ok && (io->op == BLK_OP_READ || io->op == BLK_OP_WRITE) && (uint64_t)res != io->len)
		ok = false; /* short transfer: the file shrank or the host disk is full */
	if (!ok) {
		log_ratelimited(LOG_WARN, "blk", "%s: host I/O op %d at %llu failed (%lld)",
				req->bq->blk->name, io->op, (unsigned long long)io->offset,
				(long long)res);
		if (io->op == BLK_OP_READ)
			req->used_len = 1;
	}
	req_finish(req, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
}

static void signal_queues(struct blk_dev *blk)
{
	for (int q = 0; q < blk->nr_queues; q++) {
		if (blk->queues[q].pushed) {
			blk->queues[q].pushed = false;
			virtio_dev_notify(&blk->vdev, q);
		}
	}
}

static void blk_completion_ready(void *opaque, uint32_t events)
{
	struct blk_dev *blk = opaque;

	pthread_mutex_lock(&blk->vdev.dev_lock);
	blk->stats.async_wakes++;
	blk->stats.done_async += blk_backend_reap(blk->backend, false);
	if (blk->vdev.active)
		signal_queues(blk);
	pthread_mutex_unlock(&blk->vdev.dev_lock);
}

/* ---- Request parsing ---------------------------------------------------------------------- */

/* Is [sector, sector + bytes/512) inside the disk? */
static bool in_range(struct blk_dev *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / BLK_SECTOR;

	return sector <= blk->capacity && n <= blk->capacity - sector;
}

/* Parses and starts one request; returns a status to report now, or -1 when submitted. */
static int req_start(struct blk_dev *blk, struct blk_req *req, struct virtq_chain *c)
{
	const struct iovec *out = c->iov, *in = c->iov + c->nr_out;
	struct blk_req_hdr h;
	struct blk_dwz_seg seg;
	uint64_t len;
	int n;

	if (c->out_len < sizeof(h))
		return VIRTIO_BLK_S_IOERR;
	iov_to_buf(out, c->nr_out, 0, &h, sizeof(h));
	req->io.done = req_io_done;
	req->io.iov = req->iov;
	req->io.niov = 0;
	req->io.len = 0;
	req->io.offset = 0;

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (h.type == VIRTIO_BLK_T_OUT && blk->read_only)
			return VIRTIO_BLK_S_IOERR;
		len = h.type == VIRTIO_BLK_T_IN ? c->in_len - 1 : c->out_len - sizeof(h);
		if (len % BLK_SECTOR || !in_range(blk, h.sector, len))
			return VIRTIO_BLK_S_IOERR;
		if (len == 0)
			return VIRTIO_BLK_S_OK;
		if (h.type == VIRTIO_BLK_T_IN)
			n = iov_slice(in, c->nr_in, 0, len, req->iov, VIRTQ_MAX_SIZE);
		else
			n = iov_slice(out, c->nr_out, sizeof(h), len, req->iov, VIRTQ_MAX_SIZE);
		if (n < 0)
			return VIRTIO_BLK_S_IOERR;
		req->io.op = h.type == VIRTIO_BLK_T_IN ? BLK_OP_READ : BLK_OP_WRITE;
		req->io.niov = n;
		req->io.len = len;
		req->io.offset = h.sector * BLK_SECTOR;
		if (h.type == VIRTIO_BLK_T_IN)
			req->used_len = len + 1;
		break;
	case VIRTIO_BLK_T_FLUSH:
		req->io.op = BLK_OP_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		uint32_t room = c->in_len - 1;
		uint32_t k = room < BLK_SERIAL_LEN ? room : BLK_SERIAL_LEN;

		req->used_len = 1 + iov_from_buf(in, c->nr_in, 0, blk->serial, k);
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool dis = h.type == VIRTIO_BLK_T_DISCARD;

		if (!virtio_dev_has_feature(&blk->vdev,
					    dis ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
			return VIRTIO_BLK_S_UNSUPP;
		/* We advertise one segment per request. */
		if (c->out_len - sizeof(h) != sizeof(seg))
			return VIRTIO_BLK_S_UNSUPP;
		iov_to_buf(out, c->nr_out, sizeof(h), &seg, sizeof(seg));
		if (seg.flags & ~(dis ? 0u : VIRTIO_BLK_WZ_UNMAP))
			return VIRTIO_BLK_S_UNSUPP;
		if (seg.num_sectors > BLK_MAX_DISCARD_SEC ||
		    !in_range(blk, seg.sector, (uint64_t)seg.num_sectors * BLK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		if (!seg.num_sectors)
			return VIRTIO_BLK_S_OK;
		req->io.op = dis				 ? BLK_OP_DISCARD
			     : (seg.flags & VIRTIO_BLK_WZ_UNMAP) ? BLK_OP_WRITE_ZEROES_UNMAP
								 : BLK_OP_WRITE_ZEROES;
		req->io.offset = seg.sector * BLK_SECTOR;
		req->io.len = (uint64_t)seg.num_sectors * BLK_SECTOR;
		break;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (blk_backend_queue(blk->backend, &req->io))
		return VIRTIO_BLK_S_IOERR;
	return -1;
}

/*
 * Takes and starts the queue's available requests. With arm, it goes on until
 * virtq_pop finds the ring empty, which asks the driver for a kick at the
 * next one; without, it stops at the last one and kicks stay suppressed (for
 * polling). At most BLK_QUEUE_BUDGET chains per call: requests that finish
 * at once (bad ones) free their slot, so a guest refilling the ring could
 * otherwise hold the loop here. Called with blk->vdev.dev_lock held. Returns 1 when
 * the budget ran out with work left, -EIO when the driver broke the rules.
 */
static int process_queue(struct blk_dev *blk, int qi, bool arm)
{
	struct blk_queue *bq = &blk->queues[qi];
	struct virtq *vq = &blk->vdev.vqs[qi];
	struct virtq_chain *c = &bq->chain;
	int r, st, budget = BLK_QUEUE_BUDGET;

	for (;;) {
		if (!arm && !virtq_avail_pending(vq))
			return 0;
		if (budget-- == 0)
			return 1;
		r = virtq_pop(vq, c);
		if (r <= 0)
			break;
		struct blk_req *req = &bq->reqs[c->head];
		const struct iovec *last;

		blk->stats.reqs++;
		/* A head still in flight was handed out twice. */
		if (req->busy)
			return -EIO;
		if (c->in_len == 0) {
			/* No status byte: nothing to report into. Return the buffers and go on. */
			log_ratelimited(LOG_WARN, "blk", "%s: request without status byte",
					blk->name);
			virtq_push(vq, c->head, 0);
			bq->pushed = true;
			continue;
		}
		last = &c->iov[c->nr_out + c->nr_in - 1];
		req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
		req->bq = bq; /* set here, not at creation: a slot's pages stay untouched till used */
		req->head = c->head;
		req->used_len = 1;
		req->busy = true;
		st = req_start(blk, req, c);
		if (st >= 0)
			req_finish(req, st);
	}
	return r;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/*
 * Submits what was queued and completes what finished inside the submit
 * (page-cache reads usually do): their interrupt goes out now, without a
 * loop round trip through the completion eventfd.
 */
static void submit_and_complete(struct blk_dev *blk)
{
	blk_backend_kick(blk->backend);
	if (blk->vdev.loop)
		blk->stats.done_inline += blk_backend_poll(blk->backend);
	else
		blk_backend_reap(blk->backend, true); /* unit tests: complete here */
	signal_queues(blk);
}

/*
 * Bounded poll after a kick: while the driver keeps adding requests within
 * poll_ns of each other (and for BLK_POLL_MAX_NS at most), take them without
 * letting it kick, since every kick is a VM exit. Kicks are re-armed before
 * returning.
 */
static int poll_queues(struct blk_dev *blk)
{
	uint64_t start = now_ns(), idle_since = start, t;
	int err = 0;

	for (;;) {
		bool found = false;

		for (int q = 0; q < blk->nr_queues && err >= 0; q++) {
			if (virtq_avail_pending(&blk->vdev.vqs[q])) {
				found = true;
				err = process_queue(blk, q, false);
			}
		}
		if (err < 0)
			return err;
		err = 0; /* out of budget: the poll comes back to it */
		t = now_ns();
		if (found) {
			blk->stats.poll_hits++;
			submit_and_complete(blk);
			idle_since = t;
		} else {
			/* Host I/O that did not finish inside the submit completes meanwhile. */
			unsigned n = blk_backend_poll(blk->backend);

			blk->stats.done_polled += n;
			if (n)
				signal_queues(blk);
			if (t - idle_since >= blk->poll_ns)
				break;
		}
		if (t - start >= BLK_POLL_MAX_NS)
			break;
		__builtin_ia32_pause();
	}
	for (int q = 0; q < blk->nr_queues && err >= 0; q++)
		if ((err = process_queue(blk, q, true)) > 0) {
			virtio_dev_rekick(&blk->vdev, q);
			err = 0;
		}
	return err;
}

static void blk_queue_notify(struct virtio_dev *vdev, int q)
{
	struct blk_dev *blk = to_blk(vdev);
	bool poll = blk->poll_ns && vdev->loop;
	int err = 0;

	pthread_mutex_lock(&blk->vdev.dev_lock);
	if (blk->vdev.active && q < blk->nr_queues) {
		blk->stats.kicks++;
		err = process_queue(blk, q, !poll);
		submit_and_complete(blk);
		if (err > 0 && !poll)
			virtio_dev_rekick(vdev, q);
		if (poll && err >= 0) {
			err = poll_queues(blk);
			submit_and_complete(blk); /* what came in while kicks were re-armed */
		}
	}
	pthread_mutex_unlock(&blk->vdev.dev_lock);
	if (err < 0)
		virtio_dev_set_needs_reset(vdev);
}

/* ---- Device ops --------------------------------------------------------------------------- */

static void blk_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct blk_dev *blk = to_blk(vdev);

	memcpy(data, (uint8_t *)&blk->cfg + off, len);
}

static void blk_reset(struct virtio_dev *vdev)
{
	struct blk_dev *blk = to_blk(vdev);

	/* Wait for the host to finish what it was given; results are dropped. */
	if (blk->backend)
		blk_backend_reap(blk->backend, true);
	for (int q = 0; q < blk->nr_queues; q++) {
		blk->queues[q].pushed = false;
		/* Read before writing: a slot never used stays off the resident set. */
		for (int i = 0; i < BLK_QUEUE_SIZE; i++)
			if (blk->queues[q].reqs[i].busy)
				blk->queues[q].reqs[i].busy = false;
	}
}

/* No completion callback runs on the I/O thread once this returns (virtio_dev_ops.detach). */
static void blk_detach(struct virtio_dev *vdev)
{
	struct blk_dev *blk = to_blk(vdev);

	if (blk->efd_on_loop)
		loop_del(vdev->loop, blk_backend_event_fd(blk->backend));
	blk->efd_on_loop = false;
}

static void blk_destroy(struct virtio_dev *vdev)
{
	struct blk_dev *blk = to_blk(vdev);
	struct blk_stats *s = &blk->stats;

	pr_dbg("blk",
	       "%s: %llu kicks, %llu requests, %llu completed inline, %llu while polling, "
	       "%llu through %llu "
	       "eventfd wake-ups, %llu polls found requests",
	       blk->name, (unsigned long long)s->kicks, (unsigned long long)s->reqs,
	       (unsigned long long)s->done_inline, (unsigned long long)s->done_polled,
	       (unsigned long long)s->done_async, (unsigned long long)s->async_wakes,
	       (unsigned long long)s->poll_hits);
	blk_backend_destroy(blk->backend);
	if (blk->fd >= 0)
		close(blk->fd);
	free(blk->queues);
	free(blk);
}

static const struct virtio_dev_ops blk_ops = {
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .detach = blk_detach,
    .destroy = blk_destroy,
};

/* ---- Creation ----------------------------------------------------------------------------- */

static int disk_size(int fd, uint64_t *bytes)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, bytes) ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*bytes = st.st_size;
	return 0;
}

/* UVM_BLK_POLL_US overrides the poll window (0 turns polling off); docs/virtio.md. */
static void blk_poll_config(struct blk_dev *blk)
{
	const char *us = getenv("UVM_BLK_POLL_US");
	unsigned long v = BLK_POLL_US_DEFAULT;

	if (us && *us)
		v = strtoul(us, NULL, 10);
	if (v > BLK_POLL_MAX_NS / 1000)
		v = BLK_POLL_MAX_NS / 1000;
	blk->poll_ns = v * 1000;
}

int virtio_blk_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      const struct blk_config *cfg, struct virtio_dev **out)
{
	static int counter;
	struct blk_dev *blk;
	uint64_t bytes, features;
	int nq = cfg->num_queues > 0 ? cfg->num_queues : 1;
	int err, slot;

	if (!cfg->path)
		return -EINVAL;
	/*
	 * Each queue has about 1 MiB of request slots, left untouched (not resident)
	 * until the guest uses their heads; the guest maps more CPUs onto fewer queues.
	 */
	if (nq > BLK_MAX_QUEUES)
		nq = BLK_MAX_QUEUES;
	blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	blk->fd = -1;
	snprintf(blk->name, sizeof(blk->name), "blk%d", __atomic_fetch_add(&counter, 1, 0));
	blk->read_only = cfg->read_only;
	blk_poll_config(blk);
	/* Not NUL-terminated: the id is exactly 20 bytes, zero-padded. */
	if (cfg->serial)
		memcpy(blk->serial, cfg->serial, strnlen(cfg->serial, BLK_SERIAL_LEN));
	blk->nr_queues = nq;
	blk->queues = calloc(nq, sizeof(*blk->queues));
	if (!blk->queues) {
		err = -ENOMEM;
		goto fail_free;
	}
	for (int q = 0; q < nq; q++) {
		blk->queues[q].blk = blk;
		blk->queues[q].index = q;
	}

	/* Through the opener once the sandbox is up (vmm/host_open.h). */
	blk->fd = host_open(cfg->path, cfg->read_only ? O_RDONLY : O_RDWR, 0);
	if (blk->fd < 0) {
		err = blk->fd;
		blk->fd = -1;
		pr_err("blk", "open %s: %s", cfg->path, strerror(-err));
		goto fail_free;
	}
	err = disk_size(blk->fd, &bytes);
	if (err) {
		pr_err("blk", "%s: not a file or block device (%d)", cfg->path, err);
		goto fail_free;
	}
	blk->capacity = bytes / BLK_SECTOR;
	err = blk_uring_create(&blk->backend, blk->fd, nq * BLK_QUEUE_SIZE);
	if (err) {
		pr_err("blk", "io_uring setup failed (%d)", err);
		goto fail_free;
	}

	blk->cfg.capacity = blk->capacity;
	blk->cfg.seg_max = BLK_QUEUE_SIZE - 2; /* header and status take two descriptors */
	blk->cfg.blk_size = BLK_SECTOR;
	blk->cfg.num_queues = nq;
	features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
		   (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_MQ);
	if (cfg->read_only) {
		features |= 1ULL << VIRTIO_BLK_F_RO;
	} else {
		features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
		blk->cfg.max_discard_sectors = BLK_MAX_DISCARD_SEC;
		blk->cfg.max_discard_seg = 1;
		blk->cfg.discard_sector_alignment = 8;
		blk->cfg.max_write_zeroes_sectors = BLK_MAX_DISCARD_SEC;
		blk->cfg.max_write_zeroes_seg = 1;
		blk->cfg.write_zeroes_may_unmap = 1;
	}

	err = virtio_dev_init(&blk->vdev, blk->name, VIRTIO_ID_BLK, nq, BLK_QUEUE_SIZE,
			      sizeof(blk->cfg), features, &blk_ops, mem, loop);
	if (err)
		goto fail_free;
	if (loop) {
		err = loop_add(loop, blk_backend_event_fd(blk->backend), EPOLLIN,
			       blk_completion_ready, blk);
		if (err)
			goto fail_dev;
		blk->efd_on_loop = true;
	}
	slot = virtio_dev_plug(&blk->vdev, pbus);
	if (slot < 0) {
		err = slot;
		goto fail_dev;
	}
	pr_info("blk", "%s: %s%s, %llu sectors, %d queue(s), slot %d", blk->name,
		cfg->path, cfg->read_only ? " (ro)" : "", (unsigned long long)blk->capacity, nq,
		slot);
	*out = &blk->vdev;
	return 0;
fail_dev:
	virtio_dev_destroy(&blk->vdev); /* calls blk_destroy */
	return err;
fail_free:
	blk_backend_destroy(blk->backend);
	if (blk->fd >= 0)
		close(blk->fd);
	free(blk->queues);
	free(blk);
	return err;
}
