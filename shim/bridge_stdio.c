/*
 * Process stdio relays (bridge.h): one vsock connection per stream, dialled by
 * the GCS to a port we listen on, relayed to the FIFO, Unix socket or file
 * the parent named. Event loop thread only.
 */
#include "shim/bridge.h"
#include "shim/opener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "gcs/sock.h"
#include "virtio/vsock.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG   "stdio"
#define CHUNK 65536

struct stdio_relay {
	struct vsock *vs;
	struct loop *loop;
	enum stdio_dir dir;
	uint32_t port;
	bool listening;
	int fd;
	bool polled; /* fd is in the loop (FIFOs, sockets); regular files are not */
	uint32_t events;
	struct vsock_conn *conn;
	void (*done)(void *opaque);
	void *opaque;
	bool finished;
	/* host -> guest bytes the engine did not take yet */
	uint8_t *pend;
	size_t pend_off, pend_len;
	bool host_eof, guest_eof;
	int busy;
	bool dead;
};

static uint32_t next_port = BRIDGE_STDIO_PORT_BASE;

int stdio_open_pinned(int pfd, enum stdio_dir dir)
{
	char proc[32];
	struct stat st;
	int fd, flags;

	if (fstat(pfd, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) /* O_PATH | O_NOFOLLOW opens the link itself */
		return -ELOOP;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	if (S_ISSOCK(st.st_mode)) {
		fd = sock_connect_unix(proc);
		if (fd >= 0)
			fcntl(fd, F_SETFL, O_NONBLOCK);
		return fd;
	}
	if (S_ISFIFO(st.st_mode))
		/*
		 * Input: read-only, so EOF comes when the parent's writer closes (epoll
		 * reports nothing until a writer has appeared). Output: read-write, so
		 * opening never fails for want of a reader yet and our close is the EOF.
		 */
		flags = (dir == STDIO_TO_GUEST ? O_RDONLY : O_RDWR) | O_NONBLOCK;
	else if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))
		flags = dir == STDIO_TO_GUEST ? O_RDONLY : O_WRONLY | O_APPEND;
	else
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	fd = open(proc, flags | O_NOCTTY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int stdio_open_direct(const char *path, enum stdio_dir dir)
{
	int pfd, fd;

	/*
	 * One lookup: the O_PATH fd pins the inode whose type decides how to open
	 * it, and the open goes through that fd, so a rename or a symlink planted
	 * between the check and the open cannot redirect it.
	 */
	pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	fd = stdio_open_pinned(pfd, dir);
	close(pfd);
	return fd;
}

int stdio_open_host(const char *path, enum stdio_dir dir)
{
	/* Once the sandbox is up this thread may not open by path: the opener does it. */
	return opener_running() ? opener_stdio(path, dir) : stdio_open_direct(path, dir);
}

static void relay_hold(struct stdio_relay *r)
{
	r->busy++;
}

static void relay_free_mem(struct stdio_relay *r)
{
	free(r->pend);
	free(r);
}

static bool relay_release(struct stdio_relay *r)
{
	if (--r->busy == 0 && r->dead) {
		relay_free_mem(r);
		return true;
	}
	return r->dead;
}

static void set_events(struct stdio_relay *r, uint32_t ev)
{
	if (!r->polled || r->fd < 0 || ev == r->events)
		return;
	r->events = ev;
	loop_mod(r->loop, r->fd, ev);
}

static void close_fd(struct stdio_relay *r)
{
	if (r->fd < 0)
		return;
	if (r->polled)
		loop_del(r->loop, r->fd);
	close(r->fd);
	r->fd = -1;
}

/* The stream ended: host fd closed (the parent's EOF), done() told. */
static void finish(struct stdio_relay *r)
{
	if (r->finished)
		return;
	r->finished = true;
	close_fd(r);
	if (r->conn) {
		struct vsock_conn *c = r->conn;

		r->conn = NULL;
		vsock_conn_close(c);
	}
	if (r->done)
		r->done(r->opaque);
}

/* ---- guest -> host -------------------------------------------------------------- */

static void flush_to_host(struct stdio_relay *r)
{
	struct iovec iov[2];
	int n;

	while (r->conn && r->fd >= 0 && (n = vsock_conn_peek(r->conn, iov)) > 0) {
		ssize_t w = writev(r->fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_events(r, EPOLLOUT);
				return;
			}
			/* The parent stopped reading: drop the rest, keep the guest flowing. */
			log_ratelimited(LOG_WARN, TAG, "port %u: host side gone: %s", r->port,
					strerror(errno));
			close_fd(r);
			break;
		}
		vsock_conn_consume(r->conn, w);
		if (r->dead)
			return;
	}
	if (r->dead)
		return;
	if (r->fd < 0 && r->conn) {
		/* Nowhere to write: swallow, so the process is not blocked forever. */
		vsock_conn_consume(r->conn, vsock_conn_readable(r->conn));
		if (r->dead)
			return;
	}
	set_events(r, 0);
	if (r->guest_eof && (!r->conn || !vsock_conn_readable(r->conn)))
		finish(r);
}

/* ---- host -> guest -------------------------------------------------------------- */

static void push_pending(struct stdio_relay *r)
{
	while (r->pend_len && r->conn) {
		size_t n = vsock_conn_send(r->conn, r->pend + r->pend_off, r->pend_len);

		if (!n)
			return;
		r->pend_off += n;
		r->pend_len -= n;
	}
}

/* Reads the host fd while the engine takes everything. */
static void pump_in(struct stdio_relay *r)
{
	if (!r->conn)
		return;
	push_pending(r);
	while (!r->pend_len && !r->host_eof && r->conn && r->fd >= 0) {
		ssize_t n;

		if (!r->pend) {
			r->pend = malloc(CHUNK);
			if (!r->pend)
				return;
		}
		n = read(r->fd, r->pend, CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_events(r, EPOLLIN);
				return;
			}
			n = 0; /* an error on stdin is its end */
		}
		if (n == 0) {
			r->host_eof = true;
			set_events(r, 0);
			vsock_conn_shutdown_send(r->conn);
			close_fd(r);
			return;
		}
		r->pend_off = 0;
		r->pend_len = n;
		push_pending(r);
	}
	/* Bytes wait for the engine: stop reading until writable() (backpressure). */
	set_events(r, r->pend_len || r->host_eof ? 0 : EPOLLIN);
}

static void on_fd(void *opaque, uint32_t events)
{
	struct stdio_relay *r = opaque;

	relay_hold(r);
	if (r->dir == STDIO_TO_GUEST) {
		pump_in(r);
	} else {
		/* A reader that hung up reports HUP/ERR forever: stop polling it. */
		if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLOUT))
			close_fd(r);
		flush_to_host(r);
	}
	relay_release(r);
}

/* ---- vsock callbacks ------------------------------------------------------------- */

static void c_readable(void *opaque, struct vsock_conn *c)
{
	struct stdio_relay *r = opaque;

	relay_hold(r);
	if (r->dir == STDIO_FROM_GUEST)
		flush_to_host(r);
	else /* nothing should come this way: discard */
		vsock_conn_consume(c, vsock_conn_readable(c));
	relay_release(r);
}

static void c_writable(void *opaque, struct vsock_conn *c)
{
	struct stdio_relay *r = opaque;

	relay_hold(r);
	if (r->dir == STDIO_TO_GUEST)
		pump_in(r);
	relay_release(r);
}

static void c_eof(void *opaque, struct vsock_conn *c)
{
	struct stdio_relay *r = opaque;

	relay_hold(r);
	r->guest_eof = true;
	if (r->dir == STDIO_FROM_GUEST)
		flush_to_host(r);
	else
		finish(r); /* the process closed its stdin: nothing more to send */
	relay_release(r);
}

static void c_closed(void *opaque, struct vsock_conn *c)
{
	struct stdio_relay *r = opaque;

	relay_hold(r);
	r->conn = NULL;
	finish(r);
	relay_release(r);
}

static const struct vsock_conn_ops relay_conn_ops = {
    .readable = c_readable,
    .writable = c_writable,
    .eof = c_eof,
    .closed = c_closed,
};

static int on_accept(void *opaque, struct vsock_conn *c, uint32_t port,
		     const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct stdio_relay *r = opaque;

	/* One connection per stream: the port is free again at once. */
	vsock_unlisten(r->vs, r->port);
	r->listening = false;
	r->conn = c;
	*ops = &relay_conn_ops;
	*conn_opaque = r;
	/* Polled only from now on: before, there is nowhere to put the bytes. */
	r->events = r->dir == STDIO_TO_GUEST ? EPOLLIN : 0;
	r->polled = loop_add(r->loop, r->fd, r->events, on_fd, r) == 0;
	if (r->dir == STDIO_TO_GUEST && !r->polled)
		pump_in(r); /* a regular file is always readable */
	return 0;
}

int stdio_relay_create(struct stdio_relay **out, struct vsock *vs, struct loop *loop, int host_fd,
		       enum stdio_dir dir, void (*done)(void *opaque), void *opaque, uint32_t *port)
{
	struct stdio_relay *r = calloc(1, sizeof(*r));
	int ret = -EADDRNOTAVAIL;

	if (!r) {
		close(host_fd);
		return -ENOMEM;
	}
	r->vs = vs;
	r->loop = loop;
	r->dir = dir;
	r->fd = host_fd;
	r->done = done;
	r->opaque = opaque;
	for (uint32_t tries = 0; tries < 4096; tries++) {
		uint32_t p = next_port++;

		if (next_port > BRIDGE_STDIO_PORT_LIMIT)
			next_port = BRIDGE_STDIO_PORT_BASE;
		ret = vsock_listen(vs, p, on_accept, r);
		if (ret == 0) {
			r->port = p;
			r->listening = true;
			break;
		}
		if (ret != -EADDRINUSE)
			break;
	}
	if (ret < 0) {
		close_fd(r);
		free(r);
		return ret;
	}
	*port = r->port;
	*out = r;
	return 0;
}

void stdio_relay_destroy(struct stdio_relay *r)
{
	if (!r)
		return;
	if (r->listening)
		vsock_unlisten(r->vs, r->port);
	if (r->conn) {
		struct vsock_conn *c = r->conn;

		r->conn = NULL;
		vsock_conn_reset(c);
	}
	close_fd(r);
	r->dead = true;
	if (!r->busy)
		relay_free_mem(r);
}
