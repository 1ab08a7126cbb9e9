/*
 * virtio-blk host backend on io_uring (liburing): nothing here waits for the
 * disk unless asked to drain. Completion notification goes through an
 * eventfd so the event loop can watch it.
 */
#include "blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"

struct blk_backend {
	struct io_uring ring;
	bool ring_ok;
	int fd;
	int efd;
	unsigned inflight; /* queued or submitted, done() not yet called */
};

/*
 * What the ring may do once enabled: the four operations prep() issues, on
 * any fd, and no further registration (no files, buffers or personalities a
 * compromised loop thread could add). seccomp cannot see inside a ring; this
 * is the filter it lacks.
 */
static int restrict_ring(struct io_uring *ring) /* and enable it */
{
	static const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				      IORING_OP_FALLOCATE};
	struct io_uring_restriction res[sizeof(ops)] = {0};

	for (size_t i = 0; i < sizeof(ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	/* Raw calls: Debian's liburing 2.3 declares the wrappers but does not export them. */
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res,
		    sizeof(ops)) < 0 ||
	    syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	return 0;
}

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
	/*
	 * The CQ is twice the SQ by default, so it cannot overflow at `depth` in
	 * flight. The ring starts disabled so that it can be restricted first.
	 */
	err = io_uring_queue_init(depth < 8 ? 8 : depth, &b->ring, IORING_SETUP_R_DISABLED);
	if (err)
		goto fail;
	b->ring_ok = true;
	err = io_uring_register_eventfd(&b->ring, b->efd);
	if (!err)
		err = restrict_ring(&b->ring);
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
		pr_warn_errno("blk", "completion eventfd");
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
	unsigned n;

	clear_efd(b);
	n = drain_posted(b);
	/*
	 * A reset waits here on a vCPU thread, which may not enter the ring
	 * (seccomp): every request was submitted at the end of its kick, so the
	 * wait is for completions only, on the eventfd. The timeout covers a
	 * signal the loop thread consumed first.
	 */
	if (wait_all && io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring); /* not reached from a reset: see above */
	while (wait_all && b->inflight) {
		struct pollfd p = {.fd = b->efd, .events = POLLIN};
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (ppoll(&p, 1, &ts, NULL) > 0)
			clear_efd(b);
		n += drain_posted(b);
	}
	return n;
}

int blk_backend_ring_fd(struct blk_backend *b)
{
	return b->ring.ring_fd;
}
