/*
 * virtio/net_passt.c and net_tap.c: QEMU stream framing (split, joined, bad
 * lengths, partial writes), passt itself when installed, and the tap's
 * parameter errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/net.h"

static uint8_t rbuf[NET_MAX_FRAME];

struct sfx {
	struct net_backend *be;
	int peer;
};

static void sfx_open(struct sfx *s)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(net_stream_backend(sv[0], &s->be), 0);
	s->peer = sv[1];
}

static void sfx_close(struct sfx *s)
{
	net_backend_destroy(s->be);
	if (s->peer >= 0)
		close(s->peer);
}

static ssize_t recv1(struct sfx *s)
{
	struct net_hdr h;

	memset(&h, 0xee, sizeof(h));
	ssize_t n = s->be->ops->recv(s->be, &h, rbuf, sizeof(rbuf));

	if (n >= 0)
		assert_int_equal(h.flags | h.gso_type | h.num_buffers, 0);
	return n;
}

static void test_stream_split_and_joined(void **state)
{
	struct sfx s;
	uint8_t wire[3 * (4 + 300)];
	size_t w = 0;

	sfx_open(&s);
	for (int k = 0; k < 3; k++) {
		uint32_t len = htonl(100 * (k + 1));

		memcpy(wire + w, &len, 4);
		w += 4;
		for (int i = 0; i < 100 * (k + 1); i++)
			wire[w++] = (uint8_t)(k * 50 + i);
	}
	/* One byte at a time: nothing until a frame is whole. */
	for (size_t i = 0; i < 4 + 100; i++) {
		assert_int_equal(recv1(&s), -EAGAIN);
		assert_int_equal(write(s.peer, wire + i, 1), 1);
	}
	assert_int_equal(recv1(&s), 100);
	assert_memory_equal(rbuf, wire + 4, 100);
	/* The other two in one write: both come out, the second without the fd readable. */
	assert_int_equal(write(s.peer, wire + 104, w - 104), (ssize_t)(w - 104));
	assert_int_equal(recv1(&s), 200);
	assert_true(s.be->ops->rx_buffered(s.be));
	assert_int_equal(recv1(&s), 300);
	assert_memory_equal(rbuf, wire + 104 + 4 + 200 + 4, 300);
	assert_false(s.be->ops->rx_buffered(s.be));
	assert_int_equal(recv1(&s), -EAGAIN);
	/* Zero-length frames are passed on (the device drops them as runts). */
	assert_int_equal(write(s.peer, "\0\0\0\0", 4), 4);
	assert_int_equal(recv1(&s), 0);
	/* The peer leaves. */
	close(s.peer);
	s.peer = -1;
	assert_int_equal(recv1(&s), -EPIPE);
	sfx_close(&s);
}

static void test_stream_bad_length(void **state)
{
	struct sfx s;
	uint32_t len = htonl(NET_MAX_FRAME + 1);

	sfx_open(&s);
	assert_int_equal(write(s.peer, &len, 4), 4);
	assert_int_equal(recv1(&s), -EPROTO);
	assert_true(s.be->ops->rx_buffered(s.be)); /* so the device hears about it at once */
	sfx_close(&s);
	/* The largest allowed frame passes. */
	sfx_open(&s);
	{
		static uint8_t big[4 + NET_MAX_FRAME];

		len = htonl(NET_MAX_FRAME);
		memset(big, 0x5a, sizeof(big));
		memcpy(big, &len, 4);
		assert_int_equal(write(s.peer, big, sizeof(big)), (ssize_t)sizeof(big));
		assert_int_equal(recv1(&s), NET_MAX_FRAME);
		assert_memory_equal(rbuf, big + 4, NET_MAX_FRAME);
	}
	sfx_close(&s);
}

/* A frame the socket takes only partly is finished by flush before any other frame. */
static void test_stream_partial_write(void **state)
{
	struct sfx s;
	static uint8_t frame[60000], got[2 * 60004];
	struct iovec iov = {frame, sizeof(frame)};
	struct net_hdr h = {0};
	int sndbuf = 4096;
	size_t have = 0;
	int r;

	sfx_open(&s);
	setsockopt(s.be->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 11);
	/* Keep sending until the socket pushes back. */
	for (r = 0; r == 0;)
		r = s.be->ops->send(s.be, &h, &iov, 1, sizeof(frame));
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(s.be->ops->flush(s.be), -EAGAIN);
	/* Drain the peer while flushing; every frame arrives whole and in order. */
	for (int rounds = 0; rounds < 100000; rounds++) {
		ssize_t n = recv(s.peer, got + have, sizeof(got) - have, MSG_DONTWAIT);

		if (n > 0)
			have += n;
		while (have >= 4) {
			uint32_t len;

			memcpy(&len, got, 4);
			assert_int_equal(ntohl(len), sizeof(frame));
			if (have < 4 + sizeof(frame))
				break;
			assert_memory_equal(got + 4, frame, sizeof(frame));
			memmove(got, got + 4 + sizeof(frame), have - 4 - sizeof(frame));
			have -= 4 + sizeof(frame);
		}
		if (s.be->ops->flush(s.be) == 0 && have == 0 && n <= 0)
			break;
	}
	assert_int_equal(s.be->ops->flush(s.be), 0);
	assert_int_equal(have, 0);
	sfx_close(&s);
}

/* passt itself: an ARP request for the gateway gets an answer. Skipped without passt. */
static void test_passt_arp(void **state)
{
	struct net_passt_config cfg = {0};
	struct net_backend *be;
	static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
	uint8_t arp[42] = {0};
	struct iovec iov = {arp, sizeof(arp)};
	struct net_hdr h = {0};
	int err = net_passt_start(&cfg, &be);
	ssize_t n = -EAGAIN;

	if (err == -ENOENT) {
		print_message("skip: passt is not installed (Debian package passt)\n");
		skip();
	}
	assert_int_equal(err, 0);
	memset(arp, 0xff, 6);
	memcpy(arp + 6, mac, 6);
	arp[12] = 0x08, arp[13] = 0x06;			       /* ARP */
	arp[14] = 0, arp[15] = 1, arp[16] = 0x08, arp[17] = 0; /* Ethernet, IPv4 */
	arp[18] = 6, arp[19] = 4, arp[20] = 0, arp[21] = 1;    /* request */
	memcpy(arp + 22, mac, 6);
	memcpy(arp + 28, "\x0a\x00\x02\x0f", 4); /* 10.0.2.15 */
	memcpy(arp + 38, "\x0a\x00\x02\x02", 4); /* who has 10.0.2.2 */
	assert_int_equal(be->ops->send(be, &h, &iov, 1, sizeof(arp)), 0);
	for (int i = 0; i < 50 && n == -EAGAIN; i++) {
		struct pollfd p = {.fd = be->fd, .events = POLLIN};

		poll(&p, 1, 100);
		n = be->ops->recv(be, &h, rbuf, sizeof(rbuf));
	}
	if (n < 0 && n != -EAGAIN) {
		/* passt exited: this version needs an interface with an IPv4 default route. */
		net_backend_destroy(be);
		print_message("skip: passt exited (no external interface with an IPv4 default "
			      "route here?)\n");
		skip();
	}
	assert_true(n >= 42);
	assert_memory_equal(rbuf, mac, 6);		       /* to us */
	assert_int_equal(rbuf[12] << 8 | rbuf[13], 0x0806);    /* ARP */
	assert_int_equal(rbuf[20] << 8 | rbuf[21], 2);	       /* reply */
	assert_memory_equal(rbuf + 28, "\x0a\x00\x02\x02", 4); /* the gateway */
	net_backend_destroy(be);			       /* reaps passt */
}

static void test_passt_missing(void **state)
{
	struct net_passt_config cfg = {.binary = "/nonexistent/passt"};
	struct net_backend *be;

	assert_int_equal(net_passt_start(&cfg, &be), -ENOENT);
}

static void test_tap_errors(void **state)
{
	struct net_backend *be;
	char tmp[] = "/tmp/uvm-test-netns-XXXXXX";
	int fd = mkstemp(tmp);

	assert_int_equal(net_tap_open(NULL, NULL, &be), -EINVAL);
	assert_int_equal(net_tap_open("", NULL, &be), -EINVAL);
	assert_int_equal(net_tap_open("a-name-longer-than-16", NULL, &be), -EINVAL);
	assert_int_equal(net_tap_open("a/b", NULL, &be), -EINVAL);
	assert_int_equal(net_tap_open("uvmnosuch0", NULL, &be), -ENOENT);
	assert_int_equal(net_tap_open("uvmnosuch0", "/nonexistent/netns", &be), -ENOENT);
	/* A file that is not a network namespace. */
	assert_true(fd >= 0);
	{
		int r = net_tap_open("uvmnosuch0", tmp, &be);

		assert_true(r == -EINVAL || r == -EPERM);
	}
	close(fd);
	unlink(tmp);
}

/* Creates (persist = 1) or deletes (0) a tap by name; -errno when the host does not allow it. */
static int tap_persist(const char *name, int persist)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, persist) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* A real tap: opened by name, busy while held, offloads follow the guest's features. */
static void test_tap_real(void **state)
{
	char name[IFNAMSIZ];
	struct net_backend *be, *be2;
	uint64_t all = NET_FBIT(VIRTIO_NET_F_GUEST_CSUM) | NET_FBIT(VIRTIO_NET_F_GUEST_TSO4) |
		       NET_FBIT(VIRTIO_NET_F_GUEST_TSO6) | NET_FBIT(VIRTIO_NET_F_GUEST_ECN);
	int err;

	snprintf(name, sizeof(name), "uvmut%d", (int)getpid() % 100000);
	err = tap_persist(name, 1);
	if (err) {
		print_message("skip: cannot create a tap here (%s)\n", strerror(-err));
		skip();
	}
	assert_int_equal(net_tap_open(name, NULL, &be), 0);
	assert_string_equal(be->name + 4, name);
	assert_int_equal(be->offloads, NET_OFFLOAD_ALL);
	assert_int_equal(net_tap_open(name, NULL, &be2), -EBUSY);
	assert_int_equal(be->ops->set_offloads(be, all), 0);
	assert_int_equal(be->ops->set_offloads(be, NET_FBIT(VIRTIO_NET_F_GUEST_TSO4)), 0);
	assert_int_equal(be->ops->set_offloads(be, 0), 0);
	/* Nothing to read on a fresh tap, and reading does not block. */
	{
		struct net_hdr h;
		ssize_t n = be->ops->recv(be, &h, rbuf, sizeof(rbuf));

		assert_true(n == -EAGAIN || n == -EIO || n >= 0);
	}
	net_backend_destroy(be);
	assert_int_equal(tap_persist(name, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_split_and_joined),
	    cmocka_unit_test(test_stream_bad_length),
	    cmocka_unit_test(test_stream_partial_write),
	    cmocka_unit_test(test_passt_arp),
	    cmocka_unit_test(test_passt_missing),
	    cmocka_unit_test(test_tap_errors),
	    cmocka_unit_test(test_tap_real),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
