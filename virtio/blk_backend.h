/*
 * Host side of virtio-blk: asynchronous I/O on one file descriptor. The
 * device (blk.c) serialises every call with its own lock; completions are
 * delivered from blk_backend_reap(), never from another thread.
 */
#ifndef VIRTIO_BLK_BACKEND_H
#define VIRTIO_BLK_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,	     /* deallocate; unsupported by the host is not an error */
	BLK_OP_WRITE_ZEROES, /* zero the range, allocation kept */
	BLK_OP_WRITE_ZEROES_UNMAP,
};

struct blk_io {
	enum blk_op op;
	uint64_t offset, len;
	const struct iovec *iov;
	int niov;
	/* res: bytes transferred (read/write), 0 for the others, or -errno. */
	void (*done)(struct blk_io *io, int64_t res);
	bool retried; /* backend use */
};

struct blk_backend;

/* depth: the most requests ever in flight at once. */
int blk_uring_create(struct blk_backend **out, int fd, unsigned depth)
    __attribute__((warn_unused_result));
void blk_backend_destroy(struct blk_backend *b);
/* Queues io; it is started by the next blk_backend_kick. */
int blk_backend_queue(struct blk_backend *b, struct blk_io *io) __attribute__((warn_unused_result));
/* Starts everything queued. */
int blk_backend_kick(struct blk_backend *b);
/* Readable when completions wait; for the event loop. */
int blk_backend_event_fd(struct blk_backend *b);
/* Runs done() for finished requests; with wait_all, until none is in flight. Returns how many. */
unsigned blk_backend_reap(struct blk_backend *b, bool wait_all);
/*
 * Runs done() for requests already finished, without a system call unless
 * one was (then the event fd is cleared). For right after a kick: reads from
 * the page cache complete inside the submit.
 */
unsigned blk_backend_poll(struct blk_backend *b);
unsigned blk_backend_inflight(struct blk_backend *b);
/* The io_uring's fd (tests check its restrictions). */
int blk_backend_ring_fd(struct blk_backend *b);

#endif
