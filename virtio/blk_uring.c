/*
 * virtio-blk host backend on io_uring (liburing): nothing here waits for the
 * disk unless asked to drain. Completion notification goes through an
 * eventfd so the event loop can watch it.
 */
#include "blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

struct blk_backend {
	struct io_uring ring;
	bool ring_ok;
	int fd;
	int efd;
	unsigned inflight; /* queued or submitted, done() not yet called */
};

int blk_uring_create(struct blk_backend **out, int fd, unsigned depth)
{
	struct blk_backend *b;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = fd;
	b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->efd < 0) {
		err = -errno;
		goto fail;
	}
	/* The CQ is twice the SQ by default, so it cannot overflow at `depth` in flight. */
	err = io_uring_queue_init(depth < 8 ? 8 : depth, &b->ring, 0);
	if (err)
		goto fail;
	b->ring_ok = true;
	err = io_uring_register_eventfd(&b->ring, b->efd);
	if (err)
		goto fail;
	*out = b;
	return 0;
fail:
	blk_backend_destroy(b);
	return err;
}

void blk_backend_destroy(struct blk_backend *b)
{
	if (!b)
		return;
	if (b->ring_ok) {
		blk_backend_reap(b, true);
		io_uring_queue_exit(&b->ring);
	}
	if (b->efd >= 0)
		close(b->efd);
	free(b);
}

static int prep(struct blk_backend *b, struct blk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
	int mode;

	if (!sqe) {
		/* Full: push what is queued and try once more. */
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe)
			return -EBUSY;
	}
	switch (io->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, b->fd, io->iov, io->niov, io->offset);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, b->fd, io->iov, io->niov, io->offset);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES_UNMAP:
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, b->fd, mode, io->offset, io->len);
		break;
	case BLK_OP_WRITE_ZEROES:
		/* After a host refusal, punching a hole still reads back as zeroes. */
		mode = io->retried ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
				   : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, b->fd, mode, io->offset, io->len);
		break;
	default:
		return -EINVAL;
	}
	io_uring_sqe_set_data(sqe, io);
	return 0;
}

int blk_backend_queue(struct blk_backend *b, struct blk_io *io)
{
	int err;

	io->retried = false;
	err = prep(b, io);
	if (!err)
		b->inflight++;
	return err;
}

int blk_backend_kick(struct blk_backend *b)
{
	int r;

	/* Kicks come often while polling: no system call when there is nothing to start. */
	if (!io_uring_sq_ready(&b->ring))
		return 0;
	r = io_uring_submit(&b->ring);

	return r < 0 ? r : 0;
}

int blk_backend_event_fd(struct blk_backend *b)
{
	return b->efd;
}

unsigned blk_backend_inflight(struct blk_backend *b)
{
	return b->inflight;
}

static void complete(struct blk_backend *b, struct blk_io *io, int64_t res)
{
	if (res == -EOPNOTSUPP || res == -EINVAL) {
		if (io->op == BLK_OP_DISCARD) {
			res = 0; /* advisory: the data may stay */
		} else if (io->op == BLK_OP_WRITE_ZEROES && !io->retried) {
			io->retried = true;
			if (prep(b, io) == 0) {
				io_uring_submit(&b->ring);
				return;
			}
		}
	}
	b->inflight--;
	io->done(io, res);
}

/* Runs done() for every completion already posted; returns how many. */
static unsigned drain_posted(struct blk_backend *b)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
		struct blk_io *io = io_uring_cqe_get_data(cqe);
		int64_t res = cqe->res;

		io_uring_cqe_seen(&b->ring, cqe);
		complete(b, io, res);
		n++;
	}
	return n;
}

static void clear_efd(struct blk_backend *b)
{
	uint64_t v;

	if (read(b->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg_errno(LOG_WARN, "blk", "completion eventfd");
}

unsigned blk_backend_poll(struct blk_backend *b)
{
	unsigned n;

	/* The eventfd is cleared only after a completion was seen, and the ring read
	 * again after clearing: a completion posted after the read signals anew. */
	n = drain_posted(b);
	if (n) {
		clear_efd(b);
		n += drain_posted(b);
	}
	return n;
}

unsigned blk_backend_reap(struct blk_backend *b, bool wait_all)
{
	struct io_uring_cqe *cqe;
	unsigned n;

	clear_efd(b);
	n = drain_posted(b);
	while (wait_all && b->inflight) {
		int err;

		io_uring_submit(&b->ring);
		err = io_uring_wait_cqe(&b->ring, &cqe);
		if (err == -EINTR)
			continue;
		if (err)
			break;
		n += drain_posted(b);
	}
	return n;
}
