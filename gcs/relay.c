/*
 * Stream relays of the bridge loop (gcs.h): tty output to the host, host
 * input to the tty. Nothing here may block: a process that never reads its
 * stdin, or a host that stops reading the process's output, must cost only
 * that stream, never the other requests (issue 9, defect 4).
 */
#include "gcs/gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Registers fd for `want` (0: not at all), from what it has now in *cur. 0 or -errno. */
static int watch_set(int epfd, int fd, uint32_t *cur, uint32_t want, struct gcs_watch *w)
{
	struct epoll_event ev = {.events = want, .data.ptr = w};
	int op;

	if (fd < 0 || *cur == want)
		return 0;
	op = !want ? EPOLL_CTL_DEL : *cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev) < 0 && op != EPOLL_CTL_DEL)
		return -errno;
	*cur = want;
	return 0;
}

/* Closes one end; epoll forgets it explicitly (a dup of the same tty may stay open). */
static void end_close(struct gcs_relay *r, int *fd, uint32_t *cur)
{
	if (*fd < 0)
		return;
	watch_set(r->epfd, *fd, cur, 0, NULL);
	close(*fd);
	*fd = -1;
}

/*
 * What each end waits for now: src while there is room, dst while something
 * is held or its end is still to be written. Only ENOMEM/ENOSPC can fail
 * here (start reports them); later the stream would stall, never the loop.
 */
static int relay_update(struct gcs_relay *r)
{
	bool room = r->len < GCS_RELAY_BUF;
	int ret;

	ret = watch_set(r->epfd, r->src, &r->src_ev, !r->src_done && room ? EPOLLIN : 0, &r->src_w);
	if (!ret)
		ret = watch_set(r->epfd, r->dst, &r->dst_ev, r->len || r->src_done ? EPOLLOUT : 0,
				&r->dst_w);
	return ret;
}

static void dst_failed(struct gcs_relay *r)
{
	end_close(r, &r->dst, &r->dst_ev);
	r->head = r->len = 0;
	r->eof_byte = -1;
}

/* Writes what dst takes now; at src's end, finishes dst once all is out. */
static void relay_flush(struct gcs_relay *r)
{
	while (r->dst >= 0 && r->len) {
		ssize_t n = write(r->dst, r->buf + r->head, r->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			dst_failed(r);
			return;
		}
		r->head += n;
		r->len -= n;
	}
	r->head = 0;
	if (!r->src_done || r->dst < 0)
		return;
	if (r->eof_byte >= 0) {
		char c = r->eof_byte;
		ssize_t n = write(r->dst, &c, 1);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		r->eof_byte = -1;
	}
	shutdown(r->dst, SHUT_WR); /* a socket's EOF; ENOTSOCK for a tty, whose ^D went */
	end_close(r, &r->dst, &r->dst_ev);
}

static void src_end(struct gcs_relay *r)
{
	end_close(r, &r->src, &r->src_ev);
	r->src_done = true;
	if (r->src_ended)
		r->src_ended(r); /* may close the relay */
}

static void on_src(struct gcs_watch *w, uint32_t events)
{
	struct gcs_relay *r = gcs_container_of(w, struct gcs_relay, src_w);
	ssize_t n;

	/* Closed earlier in this epoll batch, or full (a read of 0 bytes would look like EOF). */
	if (r->src < 0 || r->len == GCS_RELAY_BUF)
		return;
	if (r->head && r->head + r->len == GCS_RELAY_BUF) {
		memmove(r->buf, r->buf + r->head, r->len);
		r->head = 0;
	}
	n = read(r->src, r->buf + r->head + r->len, GCS_RELAY_BUF - r->head - r->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF, or EIO from a tty master once every slave fd closed: the output is complete.
		 */
		src_end(r);
	} else if (r->dst < 0) {
		/* nobody reads any more: drop it, so the writer never stalls */
	} else {
		r->len += n;
	}
	relay_flush(r);
	(void)relay_update(r);
}

static void on_dst(struct gcs_watch *w, uint32_t events)
{
	struct gcs_relay *r = gcs_container_of(w, struct gcs_relay, dst_w);

	if (r->dst < 0)
		return;
	relay_flush(r);
	(void)relay_update(r);
}

void gcs_relay_init(struct gcs_relay *r)
{
	memset(r, 0, sizeof(*r));
	r->epfd = r->src = r->dst = -1;
	r->eof_byte = -1;
}

int gcs_relay_start(struct gcs_relay *r, int epfd, int src, int dst, int eof_byte,
		    void (*src_ended)(struct gcs_relay *r))
{
	int ret;

	gcs_relay_init(r);
	r->epfd = epfd;
	r->src = src;
	r->dst = dst;
	r->eof_byte = eof_byte;
	r->src_ended = src_ended;
	r->src_w.fn = on_src;
	r->dst_w.fn = on_dst;
	r->buf = malloc(GCS_RELAY_BUF);
	if (!r->buf) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = set_nonblock(src);
	if (!ret && dst >= 0)
		ret = set_nonblock(dst);
	if (ret)
		goto fail;
	ret = relay_update(r);
	if (ret)
		goto fail;
	return 0;
fail:
	gcs_relay_close(r);
	return ret;
}

void gcs_relay_close(struct gcs_relay *r)
{
	end_close(r, &r->src, &r->src_ev);
	end_close(r, &r->dst, &r->dst_ev);
	free(r->buf);
	r->buf = NULL;
	r->head = r->len = 0;
	r->src_done = true;
}

bool gcs_relay_active(const struct gcs_relay *r)
{
	return r->src >= 0 || r->dst >= 0;
}
