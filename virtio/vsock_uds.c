/*
 * vsock host backend for external programs, on a Unix socket (the convention
 * of Firecracker and Cloud Hypervisor):
 *  - a host program connects to <path>, writes "CONNECT <port>\n", and once
 *    the guest accepted reads "OK <host port>\n"; then bytes flow both ways;
 *  - a guest connecting to host port P (with no in-process listener) reaches
 *    whoever listens on the Unix socket "<path>_P".
 * Runs on the event loop thread, like the engine.
 */
#include "virtio/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/host_open.h"

#define TAG	 "vsock-uds"
#define LINE_MAX 32 /* "CONNECT 4294967295\n" is 19 */
#define CHUNK	 65536
/*
 * Guest-initiated connections to host Unix sockets open at once: each costs a
 * host fd, and the shim's fd limit is shared with disks, relays and the parent.
 */
#define UDS_MAX_GUEST_CONNS 128

enum uc_state {
	UC_HANDSHAKE,  /* reading "CONNECT <port>\n" */
	UC_CONNECTING, /* waiting for the guest's answer */
	UC_RELAY,
};

struct uds_conn {
	struct vsock_uds *u;
	int fd;
	struct vsock_conn *vc; /* NULL once the vsock side is gone */
	enum uc_state state;
	uint32_t events; /* current epoll interest */
	char line[LINE_MAX];
	size_t line_len;
	/* host -> guest bytes the engine did not take yet */
	uint8_t *pend;
	size_t pend_off, pend_len;
	bool host_eof;	/* the program shut down its sending side */
	bool guest_eof; /* the guest did; SHUT_WR once its data is written */
	bool wr_shut;
	bool in_flush;
	int busy;  /* entry points running for this connection */
	bool dead; /* unlinked and closed; memory goes when busy drops to 0 */
	bool from_guest; /* counted in nr_guest_conns */
	struct uds_conn *next;
};

struct vsock_uds {
	struct vsock *vs;
	struct loop *loop;
	char *path;
	int listen_fd;
	struct uds_conn *conns;
	unsigned nr_guest_conns;
};

static const struct vsock_conn_ops uc_ops;

/*
 * Engine calls made from here can call back into this file (consume -> eof or
 * closed), so every entry point holds the connection and checks dead after.
 */
static void uc_hold(struct uds_conn *uc)
{
	uc->busy++;
}

static bool uc_release(struct uds_conn *uc)
{
	if (--uc->busy == 0 && uc->dead) {
		free(uc);
		return true;
	}
	return uc->dead;
}

static void uc_set_events(struct uds_conn *uc, uint32_t events)
{
	if (uc->dead || uc->fd < 0 || events == uc->events)
		return;
	uc->events = events;
	loop_mod(uc->u->loop, uc->fd, events);
}

static void uc_free(struct uds_conn *uc)
{
	struct uds_conn **pp = &uc->u->conns;

	if (uc->dead)
		return;
	uc->dead = true;
	if (uc->from_guest)
		uc->u->nr_guest_conns--;
	while (*pp && *pp != uc)
		pp = &(*pp)->next;
	if (*pp)
		*pp = uc->next;
	if (uc->fd >= 0) {
		loop_del(uc->u->loop, uc->fd);
		close(uc->fd);
		uc->fd = -1;
	}
	free(uc->pend);
	uc->pend = NULL;
	uc->pend_len = 0;
	if (!uc->busy)
		free(uc);
}

/* Ends both sides. vsock_conn_close lets our queued bytes reach the guest first. */
static void uc_close(struct uds_conn *uc)
{
	if (uc->dead)
		return;
	if (uc->vc) {
		struct vsock_conn *vc = uc->vc;

		uc->vc = NULL;
		if (uc->state == UC_RELAY)
			vsock_conn_close(vc);
		else
			vsock_conn_reset(vc);
	}
	uc_free(uc);
}

static void uc_maybe_done(struct uds_conn *uc)
{
	/* Both directions finished: nothing more can flow. */
	if (!uc->dead && uc->host_eof && uc->wr_shut && !uc->pend_len)
		uc_close(uc);
}

/* guest -> host: write what the engine holds to the socket. Caller holds uc. */
static void uc_flush_to_host(struct uds_conn *uc)
{
	struct iovec iov[2];
	int n;

	if (uc->in_flush)
		return; /* re-entered through consume -> eof: the outer call finishes */
	uc->in_flush = true;
	while (!uc->dead && uc->vc && (n = vsock_conn_peek(uc->vc, iov)) > 0) {
		ssize_t w = writev(uc->fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				uc_set_events(uc, uc->events | EPOLLOUT);
				uc->in_flush = false;
				return;
			}
			uc->in_flush = false;
			uc_close(uc); /* the program went away */
			return;
		}
		vsock_conn_consume(uc->vc, w);
	}
	uc->in_flush = false;
	if (uc->dead)
		return;
	uc_set_events(uc, uc->events & ~EPOLLOUT);
	if (uc->guest_eof && !uc->wr_shut && (!uc->vc || !vsock_conn_readable(uc->vc))) {
		shutdown(uc->fd, SHUT_WR);
		uc->wr_shut = true;
		uc_maybe_done(uc);
	}
}

/* host -> guest: offer pending bytes to the engine. */
static void uc_push_pending(struct uds_conn *uc)
{
	while (!uc->dead && uc->pend_len && uc->vc) {
		size_t n = vsock_conn_send(uc->vc, uc->pend + uc->pend_off, uc->pend_len);

		if (!n)
			return; /* writable() will call us again */
		uc->pend_off += n;
		uc->pend_len -= n;
	}
	if (!uc->dead && !uc->pend_len && uc->state == UC_RELAY && !uc->host_eof)
		uc_set_events(uc, uc->events | EPOLLIN);
}

static void uc_read_host(struct uds_conn *uc)
{
	ssize_t n;

	if (!uc->pend) {
		uc->pend = malloc(CHUNK);
		if (!uc->pend) {
			uc_close(uc);
			return;
		}
	}
	n = read(uc->fd, uc->pend, CHUNK);
	if (n < 0) {
		if (errno != EINTR && errno != EAGAIN)
			uc_close(uc);
		return;
	}
	if (n == 0) {
		uc->host_eof = true;
		uc_set_events(uc, uc->events & ~EPOLLIN);
		if (uc->vc)
			vsock_conn_shutdown_send(uc->vc);
		uc_maybe_done(uc);
		return;
	}
	uc->pend_off = 0;
	uc->pend_len = n;
	uc_push_pending(uc);
	/*
	 * Stop reading until the engine took it all: that is the backpressure. Only
	 * then: toggling EPOLLIN per chunk would cost two epoll_ctl calls each.
	 */
	if (!uc->dead && uc->pend_len)
		uc_set_events(uc, uc->events & ~EPOLLIN);
}

/* "CONNECT <port>\n": returns the port or -1. */
static long parse_connect(const char *line)
{
	char *end;
	unsigned long port;

	if (strncmp(line, "CONNECT ", 8) != 0 || line[8] < '0' || line[8] > '9')
		return -1;
	errno = 0;
	port = strtoul(line + 8, &end, 10);
	if (errno || *end || port > 0xffffffffUL)
		return -1;
	return (long)port;
}

static void uc_handshake(struct uds_conn *uc)
{
	char buf[LINE_MAX];
	ssize_t n = recv(uc->fd, buf, sizeof(buf), MSG_PEEK);
	char *nl;
	size_t take;
	long port;
	int err;

	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		uc_close(uc);
		return;
	}
	/* Only up to the newline: what follows is payload for the guest. */
	nl = memchr(buf, '\n', n);
	take = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
	if (uc->line_len + take >= LINE_MAX) {
		log_ratelimited(LOG_WARN, TAG, "handshake line too long; closing");
		uc_close(uc);
		return;
	}
	if (read(uc->fd, uc->line + uc->line_len, take) != (ssize_t)take) {
		uc_close(uc);
		return;
	}
	uc->line_len += take;
	if (!nl)
		return;
	uc->line[uc->line_len - 1] = 0;
	port = parse_connect(uc->line);
	if (port < 0) {
		log_ratelimited(LOG_WARN, TAG, "bad handshake \"%.20s\"; closing", uc->line);
		uc_close(uc);
		return;
	}
	uc->state = UC_CONNECTING;
	uc_set_events(uc, 0);
	err = vsock_connect(uc->u->vs, (uint32_t)port, 0, &uc_ops, uc, &uc->vc);
	if (err < 0) {
		uc->vc = NULL;
		uc_close(uc);
	}
}

static void uc_on_fd(void *opaque, uint32_t events)
{
	struct uds_conn *uc = opaque;

	uc_hold(uc);
	if (uc->state == UC_HANDSHAKE) {
		uc_handshake(uc);
	} else {
		if (events & EPOLLOUT)
			uc_flush_to_host(uc);
		if (!uc->dead && (events & EPOLLERR) && !(events & EPOLLIN))
			uc_close(uc);
		else if (!uc->dead && (uc->events & EPOLLIN) && (events & (EPOLLIN | EPOLLHUP)))
			uc_read_host(uc);
		else if (!uc->dead && (events & EPOLLHUP) && !(events & EPOLLIN))
			uc_close(uc); /* both ways hung up and we were not reading */
	}
	uc_release(uc);
}

/* ---- engine callbacks --------------------------------------------------------- */

static void uc_connected(void *opaque, struct vsock_conn *c, int err)
{
	struct uds_conn *uc = opaque;
	char ok[32];
	int len;

	if (err) {
		uc->vc = NULL; /* the engine drops it after this callback */
		uc_free(uc);
		return;
	}
	len = snprintf(ok, sizeof(ok), "OK %u\n", vsock_conn_host_port(c));
	/* A fresh socket has room for a few bytes: this write does not block or split. */
	if (write(uc->fd, ok, len) != len) {
		uc_close(uc);
		return;
	}
	uc->state = UC_RELAY;
	uc_set_events(uc, EPOLLIN);
}

/* guest -> host without buffering, while nothing is queued before it. */
static size_t uc_write_direct(void *opaque, struct vsock_conn *c, const struct iovec *iov, int niov)
{
	struct uds_conn *uc = opaque;
	ssize_t w;

	if (uc->dead || uc->in_flush || uc->state != UC_RELAY || uc->wr_shut)
		return 0;
	do
		w = writev(uc->fd, iov, niov);
	while (w < 0 && errno == EINTR);
	/* EAGAIN or an error: the buffered path takes over and reports it. */
	return w > 0 ? (size_t)w : 0;
}

static void uc_readable(void *opaque, struct vsock_conn *c)
{
	struct uds_conn *uc = opaque;

	uc_hold(uc);
	uc_flush_to_host(uc);
	uc_release(uc);
}

static void uc_writable(void *opaque, struct vsock_conn *c)
{
	struct uds_conn *uc = opaque;

	uc_hold(uc);
	uc_push_pending(uc);
	uc_release(uc);
}

static void uc_eof(void *opaque, struct vsock_conn *c)
{
	struct uds_conn *uc = opaque;

	uc->guest_eof = true;
	uc_hold(uc);
	uc_flush_to_host(uc);
	uc_release(uc);
}

static void uc_closed(void *opaque, struct vsock_conn *c)
{
	struct uds_conn *uc = opaque;

	uc->vc = NULL;
	uc_free(uc);
}

static const struct vsock_conn_ops uc_ops = {
    .connected = uc_connected,
    .readable = uc_readable,
    .write_direct = uc_write_direct,
    .writable = uc_writable,
    .eof = uc_eof,
    .closed = uc_closed,
};

static struct uds_conn *uc_new(struct vsock_uds *u, int fd, enum uc_state state, uint32_t events)
{
	struct uds_conn *uc = calloc(1, sizeof(*uc));

	if (!uc)
		return NULL;
	uc->u = u;
	uc->fd = fd;
	uc->state = state;
	uc->events = events;
	if (loop_add(u->loop, fd, events, uc_on_fd, uc) < 0) {
		free(uc);
		return NULL;
	}
	uc->next = u->conns;
	u->conns = uc;
	return uc;
}

/* A host program connected to <path>. */
static void uds_on_listen(void *opaque, uint32_t events)
{
	struct vsock_uds *u = opaque;
	int fd = accept4(u->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (!uc_new(u, fd, UC_HANDSHAKE, EPOLLIN)) {
		log_ratelimited(LOG_WARN, TAG, "dropping a host connection: out of memory");
		close(fd);
	}
}

/* A guest connected to a host port nobody in-process listens on: try <path>_<port>. */
static int uds_fallback(void *opaque, struct vsock_conn *c, uint32_t port,
			const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct vsock_uds *u = opaque;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct uds_conn *uc;
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", u->path, port) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (u->nr_guest_conns >= UDS_MAX_GUEST_CONNS) {
		log_ratelimited(LOG_WARN, TAG, "guest connect to port %u refused: %d open", port,
				UDS_MAX_GUEST_CONNS);
		return -EMFILE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Unix stream connects complete at once or fail (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		pr_dbg(TAG, "guest connect to port %u: %s unreachable", port, sa.sun_path);
		close(fd);
		return err;
	}
	uc = uc_new(u, fd, UC_RELAY, EPOLLIN);
	if (!uc) {
		close(fd);
		return -ENOMEM;
	}
	uc->vc = c;
	uc->from_guest = true;
	u->nr_guest_conns++;
	*ops = &uc_ops;
	*conn_opaque = uc;
	return 0;
}

int vsock_uds_create(struct vsock_uds **out, struct vsock *vs, struct loop *loop, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vsock_uds *u;
	struct stat st;
	int ret;

	/* Room for "_4294967295" so every guest-initiated path fits too. */
	if (strlen(path) + 11 >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->vs = vs;
	u->loop = loop;
	u->listen_fd = -1;
	u->path = strdup(path);
	if (!u->path) {
		ret = -ENOMEM;
		goto fail;
	}
	strcpy(sa.sun_path, path);
	u->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->listen_fd < 0) {
		ret = -errno;
		goto fail;
	}
	/* A stale socket from an earlier run goes; anything else at path is not ours to remove. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			ret = -EEXIST;
			goto fail;
		}
		unlink(path);
	}
	if (bind(u->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(u->listen_fd, 64) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = loop_add(loop, u->listen_fd, EPOLLIN, uds_on_listen, u);
	if (ret < 0)
		goto fail;
	vsock_set_fallback(vs, uds_fallback, u);
	*out = u;
	return 0;
fail:
	if (u->listen_fd >= 0)
		close(u->listen_fd);
	free(u->path);
	free(u);
	return ret;
}

void vsock_uds_destroy(struct vsock_uds *u)
{
	if (!u)
		return;
	vsock_set_fallback(u->vs, NULL, NULL);
	while (u->conns) {
		struct uds_conn *uc = u->conns;

		if (uc->vc) {
			struct vsock_conn *vc = uc->vc;

			uc->vc = NULL;
			vsock_conn_reset(vc);
		}
		uc_free(uc);
	}
	loop_del(u->loop, u->listen_fd);
	close(u->listen_fd);
	/* Only a socket is removed; through the opener once the sandbox is up. */
	(void)host_unlink_socket(u->path);
	free(u->path);
	free(u);
}
