/* One ttrpc connection on the event loop (see ttrpc_conn.h). */
#include "shim/ttrpc_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "ttrpc"

struct ttrpc_conn {
	struct loop *loop;
	int fd;
	unsigned refs;
	bool closed, want_out;
	const struct ttrpc_conn_ops *ops;
	void *opaque;
	struct ttrpc_dec dec;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
};

void ttrpc_conn_get(struct ttrpc_conn *c)
{
	c->refs++;
}

void ttrpc_conn_put(struct ttrpc_conn *c)
{
	if (!c || --c->refs)
		return;
	ttrpc_dec_fini(&c->dec);
	free(c->out);
	free(c);
}

int ttrpc_conn_is_closed(const struct ttrpc_conn *c)
{
	return c->closed;
}

void ttrpc_conn_close(struct ttrpc_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	loop_del(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->ops->closed)
		c->ops->closed(c->opaque, c);
	ttrpc_conn_put(c);
}

/* Writes what it can; 0, or -errno when the connection broke. */
static int flush(struct ttrpc_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -EPIPE;
		c->out_off += n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if ((c->out_len != 0) != c->want_out) {
		c->want_out = c->out_len != 0;
		loop_mod(c->loop, c->fd, EPOLLIN | (c->want_out ? EPOLLOUT : 0));
	}
	return 0;
}

int ttrpc_conn_send(struct ttrpc_conn *c, uint8_t *frame, size_t len)
{
	int ret = 0;

	if (c->closed) {
		ret = -EPIPE;
		goto out;
	}
	if (c->out_len - c->out_off + len > TTRPC_CONN_OUT_MAX) {
		pr_warn(TAG, "peer is not reading (%zu bytes unsent): dropping the connection",
			c->out_len - c->out_off);
		ttrpc_conn_close(c);
		ret = -ENOBUFS;
		goto out;
	}
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		uint8_t *nb;

		while (cap < c->out_len + len)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb) {
			ret = -ENOMEM;
			goto out;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, frame, len);
	c->out_len += len;
	if (flush(c)) {
		ttrpc_conn_close(c);
		ret = -EPIPE;
	}
out:
	free(frame);
	return ret;
}

static void on_io(void *opaque, uint32_t events)
{
	struct ttrpc_conn *c = opaque;
	struct ttrpc_frame f;
	uint8_t buf[LOOP_READ_BUF];
	ssize_t n;

	if ((events & EPOLLOUT) && flush(c)) {
		ttrpc_conn_close(c);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (ttrpc_dec_pending(&c->dec))
			pr_warn(TAG, "connection closed inside a frame (%zu bytes dropped)",
				ttrpc_dec_pending(&c->dec));
		ttrpc_conn_close(c);
		return;
	}
	if (ttrpc_dec_feed(&c->dec, buf, n)) {
		pr_err(TAG, "out of memory reading a frame: dropping the connection");
		ttrpc_conn_close(c);
		return;
	}
	/* A handler may close the connection: hold it while frames are handed out. */
	ttrpc_conn_get(c);
	while (!c->closed && ttrpc_dec_next(&c->dec, &f) == 1)
		c->ops->frame(c->opaque, c, &f);
	ttrpc_conn_put(c);
}

int ttrpc_conn_create(struct ttrpc_conn **out, struct loop *loop, int fd,
		      const struct ttrpc_conn_ops *ops, void *opaque)
{
	struct ttrpc_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->loop = loop;
	c->fd = fd;
	c->refs = 1;
	c->ops = ops;
	c->opaque = opaque;
	ttrpc_dec_init(&c->dec, TTRPC_MAX_MSG);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (loop_add(loop, fd, EPOLLIN, on_io, c)) {
		close(fd);
		free(c);
		return -EIO;
	}
	*out = c;
	return 0;
}
