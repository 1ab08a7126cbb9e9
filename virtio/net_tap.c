/*
 * tap backend: one read or write on the tap fd is one Ethernet frame behind
 * a 12-byte virtio-net header (IFF_VNET_HDR, TUNSETVNETHDRSZ), so the guest's
 * checksum and segmentation offloads pass through the host kernel both ways.
 * The offloads the tap may hand us (TUNSETOFFLOAD) follow what the guest
 * negotiated. The same code serves any fd with those semantics (a tap fd
 * handed over by a parent, a SOCK_SEQPACKET socket in tests).
 */
#include "virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/host_open.h"

#define TAG "net-tap"

struct tap_be {
	struct net_backend be;
	bool is_tap; /* a real tap (offloads set by ioctl), not a socket */
};

static struct tap_be *to_tap(struct net_backend *be)
{
	return (struct tap_be *)((char *)be - offsetof(struct tap_be, be));
}

static int tap_send(struct net_backend *be, const struct net_hdr *hdr, const struct iovec *iov,
		    int niov, size_t len)
{
	struct iovec v[VIRTQ_MAX_SIZE + 1];

	if (niov < 0 || niov > VIRTQ_MAX_SIZE)
		return -EINVAL;
	v[0].iov_base = (void *)hdr;
	v[0].iov_len = NET_HDR_LEN;
	memcpy(v + 1, iov, niov * sizeof(*iov));
	if (writev(be->fd, v, niov + 1) < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

static ssize_t tap_recv(struct net_backend *be, struct net_hdr *hdr, void *buf, size_t cap)
{
	struct iovec v[2] = {{hdr, NET_HDR_LEN}, {buf, cap}};
	ssize_t n = readv(be->fd, v, 2);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	/* End of file: a socket whose peer closed (a tap never reads 0). */
	if (n == 0)
		return -EPIPE;
	/* Shorter than a header: nothing usable (the device drops a 0-byte frame and counts it). */
	if ((size_t)n < NET_HDR_LEN) {
		memset(hdr, 0, sizeof(*hdr));
		return 0;
	}
	return n - NET_HDR_LEN;
}

static int tap_set_offloads(struct net_backend *be, uint64_t f)
{
	unsigned int off = 0;

	if (!to_tap(be)->is_tap)
		return 0;
	/* The kernel refuses segmentation without checksum offload; so does the spec. */
	if (f & NET_FBIT(VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (f & NET_FBIT(VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (f & NET_FBIT(VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
		if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & NET_FBIT(VIRTIO_NET_F_GUEST_ECN)))
			off |= TUN_F_TSO_ECN;
	}
	if (ioctl(be->fd, TUNSETOFFLOAD, off) < 0)
		return -errno;
	return 0;
}

static void tap_destroy(struct net_backend *be)
{
	if (be->fd >= 0)
		close(be->fd);
	free(to_tap(be));
}

static const struct net_backend_ops tap_ops = {
    .send = tap_send,
    .recv = tap_recv,
    .set_offloads = tap_set_offloads,
    .destroy = tap_destroy,
};

int net_fd_backend(int fd, struct net_backend **out)
{
	struct tap_be *t;
	struct ifreq ifr = {0};
	int fl;

	if (fd < 0)
		return -EBADF;
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->be.ops = &tap_ops;
	t->be.fd = fd;
	t->be.offloads = NET_OFFLOAD_ALL;
	t->is_tap = ioctl(fd, TUNGETIFF, &ifr) == 0;
	if (t->is_tap)
		snprintf(t->be.name, sizeof(t->be.name), "tap %.*s", IFNAMSIZ, ifr.ifr_name);
	else
		snprintf(t->be.name, sizeof(t->be.name), "fd %d", fd);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = -errno;

		tap_destroy(&t->be);
		return err;
	}
	*out = &t->be;
	return 0;
}

/* Opens and configures the tap in the current network namespace. */
static int tap_open_here(const char *ifname, int *out)
{
	struct ifreq ifr = {0};
	int fd, err, hdrsz = NET_HDR_LEN;

	/* TUNSETIFF would create a missing tap; the runtime owns creating them. */
	if (!if_nametoindex(ifname))
		return -ENOENT;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

int net_tap_open(const char *ifname, const char *netns_path, struct net_backend **out)
{
	int fd = -1, nsfd = -1, home = -1, err;

	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/'))
		return -EINVAL;
	if (netns_path && *netns_path) {
		nsfd = host_open(netns_path, O_RDONLY, 0); /* the opener's, once sandboxed */
		if (nsfd < 0)
			return nsfd;
		home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (home < 0) {
			err = -errno;
			goto out;
		}
		/* setns moves this thread only; it comes back before returning. */
		if (setns(nsfd, CLONE_NEWNET) < 0) {
			err = errno == EINVAL ? -EINVAL : -errno;
			goto out;
		}
	}
	err = tap_open_here(ifname, &fd);
	if (home >= 0 && setns(home, CLONE_NEWNET) < 0) {
		/* This thread is stuck in the other namespace: say so loudly. */
		pr_err_errno(TAG, "returning from netns %s", netns_path);
		if (!err) {
			close(fd);
			err = -EIO;
		}
	}
	if (!err)
		err = net_fd_backend(fd, out);
out:
	if (home >= 0)
		close(home);
	if (nsfd >= 0)
		close(nsfd);
	return err;
}
