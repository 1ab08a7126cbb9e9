/*
 * User-mode networking through Debian's passt: a separate process the shim
 * starts and owns, so the guest-facing TCP/IP stack stays out of the shim's
 * address space (passt also sandboxes itself: namespaces, seccomp, and it
 * drops to "nobody" when started as root). The shim keeps one end of a
 * socketpair and hands passt the other with --fd; frames go both ways with
 * QEMU's stream framing, a 32-bit big-endian length before each Ethernet
 * frame. There is no virtio-net header on this path: no offloads.
 *
 * passt maps the gateway address to the host's loopback (the guest reaches
 * host services on 127.0.0.1 through it) and forwards DNS queries sent to
 * the DNS address to the host's resolver.
 */
#include "virtio/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/log.h"

#define TAG	       "net-passt"
#define FRAME_HDR      4u
#define STREAM_MAX     (FRAME_HDR + NET_MAX_FRAME)
#define STREAM_IN_SIZE (4 * STREAM_MAX) /* several frames per read(2) */

extern char **environ;

struct stream_be {
	struct net_backend be;
	pid_t pid;  /* passt, or 0 */
	int pidfd; /* passt's pidfd (made before the sandbox), or -1: the only way to signal it */
	uint8_t *in;
	size_t in_off, in_len; /* unread bytes are in[in_off, in_len) */
	uint8_t *out;
	size_t out_off, out_len; /* a frame partly written: out[out_off, out_len) still to go */
};

static struct stream_be *to_stream(struct net_backend *be)
{
	return (struct stream_be *)((char *)be - offsetof(struct stream_be, be));
}

static int stream_flush(struct net_backend *be)
{
	struct stream_be *s = to_stream(be);

	while (s->out_off < s->out_len) {
		ssize_t n = write(be->fd, s->out + s->out_off, s->out_len - s->out_off);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN
			       : errno == EINTR			       ? -EAGAIN
								       : -errno;
		s->out_off += n;
	}
	s->out_off = s->out_len = 0;
	return 0;
}

static int stream_send(struct net_backend *be, const struct net_hdr *hdr, const struct iovec *iov,
		       int niov, size_t len)
{
	struct stream_be *s = to_stream(be);
	struct iovec v[VIRTQ_MAX_SIZE + 1];
	uint32_t blen = htonl((uint32_t)len);
	size_t total = FRAME_HDR + len;
	ssize_t n;

	if (niov < 0 || niov > VIRTQ_MAX_SIZE || len > NET_MAX_FRAME)
		return -EINVAL;
	/* No header goes out on this path: the device offered no offloads, so it is empty. */
	if (s->out_len)
		return -EAGAIN;
	v[0].iov_base = &blen;
	v[0].iov_len = FRAME_HDR;
	memcpy(v + 1, iov, niov * sizeof(*iov));
	n = writev(be->fd, v, niov + 1);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	if ((size_t)n == total)
		return 0;
	/* Partly written: the rest must follow before any other frame, so keep a copy. */
	memcpy(s->out, &blen, FRAME_HDR);
	iov_to_buf(iov, niov, 0, s->out + FRAME_HDR, len);
	s->out_off = n;
	s->out_len = total;
	return 0;
}

/* A whole frame waiting in the input buffer: its length, or -1 (none), -EPROTO (bad length). */
static long stream_frame(struct stream_be *s)
{
	uint32_t blen;
	size_t flen;

	if (s->in_len - s->in_off < FRAME_HDR)
		return -1;
	memcpy(&blen, s->in + s->in_off, FRAME_HDR);
	flen = ntohl(blen);
	if (flen > NET_MAX_FRAME)
		return -EPROTO;
	return s->in_len - s->in_off - FRAME_HDR >= flen ? (long)flen : -1;
}

static ssize_t stream_recv(struct net_backend *be, struct net_hdr *hdr, void *buf, size_t cap)
{
	struct stream_be *s = to_stream(be);

	memset(hdr, 0, sizeof(*hdr));
	for (;;) {
		long flen = stream_frame(s);
		ssize_t n;

		if (flen == -EPROTO) {
			log_ratelimited(LOG_ERROR, TAG, "%s: frame length beyond %u", be->name,
					NET_MAX_FRAME);
			return -EPROTO; /* the stream is out of step: nothing after it can be
					   trusted */
		}
		if (flen >= 0) {
			size_t take = (size_t)flen < cap ? (size_t)flen : cap;

			memcpy(buf, s->in + s->in_off + FRAME_HDR, take);
			s->in_off += FRAME_HDR + flen;
			if (s->in_off == s->in_len)
				s->in_off = s->in_len = 0;
			return take;
		}
		/* Make room for at least one whole frame behind what is buffered. */
		if (STREAM_IN_SIZE - s->in_len < STREAM_MAX) {
			memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
			s->in_len -= s->in_off;
			s->in_off = 0;
		}
		n = read(be->fd, s->in + s->in_len, STREAM_IN_SIZE - s->in_len);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN
											 : -errno;
		if (n == 0)
			return -EPIPE; /* passt exited */
		s->in_len += n;
	}
}

static bool stream_rx_buffered(struct net_backend *be)
{
	return stream_frame(to_stream(be)) != -1;
}

static void stream_destroy(struct net_backend *be)
{
	struct stream_be *s = to_stream(be);

	if (be->fd >= 0)
		close(be->fd);
	/*
	 * passt keeps no state worth a graceful end; killing it keeps the teardown free
	 * of sleeps. It runs on the sandboxed loop thread, which may signal a process
	 * only through a pidfd it already holds (pidfd_send_signal, waitid on it): no
	 * kill() to any pid, so a compromised shim cannot reach other processes.
	 */
	if (s->pidfd >= 0) {
		siginfo_t si;

		syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
		while (waitid(P_PIDFD, s->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
		close(s->pidfd);
	}
	free(s->in);
	free(s->out);
	free(s);
}

static const struct net_backend_ops stream_ops = {
    .send = stream_send,
    .recv = stream_recv,
    .rx_buffered = stream_rx_buffered,
    .flush = stream_flush,
    .destroy = stream_destroy,
};

int net_stream_backend(int fd, struct net_backend **out)
{
	struct stream_be *s;
	int fl;

	if (fd < 0)
		return -EBADF;
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->be.ops = &stream_ops;
	s->be.fd = fd;
	s->pidfd = -1;
	snprintf(s->be.name, sizeof(s->be.name), "stream fd %d", fd);
	s->in = malloc(STREAM_IN_SIZE);
	s->out = malloc(STREAM_MAX);
	fl = fcntl(fd, F_GETFL);
	if (!s->in || !s->out || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = s->in && s->out ? -errno : -ENOMEM;

		stream_destroy(&s->be);
		return err;
	}
	*out = &s->be;
	return 0;
}

int net_passt_start(const struct net_passt_config *cfg, struct net_backend **out)
{
	const char *bin = cfg->binary ? cfg->binary : "passt";
	char prefix[8], mtu[8];
	const char *argv[32];
	posix_spawn_file_actions_t fa;
	struct net_backend *be;
	int sv[2], argc = 0, err, pidfd;
	pid_t pid;

	snprintf(prefix, sizeof(prefix), "%d", cfg->prefix ? cfg->prefix : 24);
	snprintf(mtu, sizeof(mtu), "%u", cfg->mtu ? cfg->mtu : 1500);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	argv[argc++] = bin;
	argv[argc++] = "--foreground"; /* stays our child: we reap it */
	argv[argc++] = "--quiet";
	argv[argc++] = "--stderr";
	argv[argc++] = "--fd";
	argv[argc++] = "3";
	argv[argc++] = "--address";
	argv[argc++] = cfg->addr ? cfg->addr : "10.0.2.15";
	argv[argc++] = "--netmask";
	argv[argc++] = prefix;
	argv[argc++] = "--gateway";
	argv[argc++] = cfg->gw ? cfg->gw : "10.0.2.2";
	argv[argc++] = "--mtu";
	argv[argc++] = mtu;
	argv[argc++] = "--dns-forward";
	argv[argc++] = cfg->dns ? cfg->dns : "10.0.2.3";
	argv[argc++] = "--ipv4-only";
	argv[argc] = NULL;

	posix_spawn_file_actions_init(&fa);
	/* fd 3 is passt's end; its stdout must never reach our protocol stream. */
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	err = -posix_spawnp(&pid, bin, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (err) {
		close(sv[0]);
		return err;
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	err = pidfd < 0 ? -errno : net_stream_backend(sv[0], &be);
	if (err) {
		kill(pid, SIGKILL); /* still before the sandbox */
		waitpid(pid, NULL, 0);
		if (pidfd >= 0)
			close(pidfd);
		if (pidfd < 0)
			close(sv[0]);
		return err;
	}
	to_stream(be)->pid = pid;
	to_stream(be)->pidfd = pidfd;
	snprintf(be->name, sizeof(be->name), "passt pid %d", (int)pid);
	*out = be;
	return 0;
}
