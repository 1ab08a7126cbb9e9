/*
 * virtio/net.c driven through the transport like a guest driver would, with
 * a SOCK_SEQPACKET socketpair as the tap (one message = header + frame).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"
#include "virtio/net.h"
#include "vmm/io_thread.h"

#define QS	 256
#define RXQ	 0
#define TXQ	 1
#define RXBUF	 0x40000ULL /* rx buffer i at RXBUF + i * RXSTRIDE */
#define RXSTRIDE 0x2000ULL
#define TXBUF	 0xc0000ULL
#define F(b)	 NET_FBIT(VIRTIO_NET_F_##b)
#define F_V1	 (1ULL << VIRTIO_F_VERSION_1)
#define F_BASE	 (F_V1 | F(MAC) | F(STATUS))

struct fx {
	struct tmach m;
	struct virtio_dev *dev;
	struct tdrv drv;
	int host; /* the "tap" side */
	uint16_t rx_next, tx_next;
};

static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void fx_probe(struct fx *f, uint64_t features)
{
	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	assert_int_equal(tdrv_probe(&f->drv, features, 2, QS), 0);
}

static struct fx *fx_new_on(struct loop *loop, uint64_t features, bool probe)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct net_config cfg = {.mtu = 1500, .link_up = true};
	struct net_backend *be;
	int sv[2];

	memcpy(cfg.mac, mac, 6);
	assert_int_equal(tm_init(&f->m, 1 << 20), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	f->host = sv[1];
	assert_int_equal(net_fd_backend(sv[0], &be), 0);
	assert_int_equal(virtio_net_create(f->m.pbus, f->m.mem, loop, &cfg, be, &f->dev), 0);
	if (probe)
		fx_probe(f, features);
	return f;
}

static struct fx *fx_new(uint64_t features, bool probe)
{
	return fx_new_on(NULL, features, probe);
}

static void fx_free(struct fx *f)
{
	virtio_dev_destroy(f->dev);
	close(f->host);
	tm_fini(&f->m);
	free(f);
}

static struct net_stats stats(struct fx *f)
{
	struct net_stats st;

	virtio_net_get_stats(f->dev, &st);
	return st;
}

static uint8_t *gp(struct fx *f, uint64_t gpa)
{
	return f->m.ram + gpa;
}

/* ---- rx helpers --------------------------------------------------------------------------- */

/* Posts one writable rx buffer of len bytes (one descriptor). */
static uint16_t post_rx(struct fx *f, uint32_t len)
{
	uint16_t i = f->rx_next++;

	tq_set_desc(&f->m, RXQ, i, RXBUF + i * RXSTRIDE, len, VIRTQ_DESC_F_WRITE, 0);
	tq_avail_add(&f->m, RXQ, QS, i);
	return i;
}

/* The host sends a frame of len bytes (pattern seeded by seed) behind header h. */
static void host_send(struct fx *f, const struct net_hdr *h, size_t len, uint8_t seed)
{
	uint8_t *buf = malloc(NET_HDR_LEN + len);

	memcpy(buf, h, NET_HDR_LEN);
	for (size_t i = 0; i < len; i++)
		buf[NET_HDR_LEN + i] = (uint8_t)(i * 7 + seed);
	assert_int_equal(send(f->host, buf, NET_HDR_LEN + len, 0), (ssize_t)(NET_HDR_LEN + len));
	free(buf);
}

static void check_pattern(const uint8_t *p, size_t len, size_t from, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)((from + i) * 7 + seed))
			fail_msg("byte %zu: %#x", from + i, p[i]);
}

/* ---- tx helpers --------------------------------------------------------------------------- */

/* Puts a header + frame of len bytes at TXBUF and offers it as one chain cut at the given sizes. */
static void post_tx(struct fx *f, const struct net_hdr *h, size_t len, const uint32_t *cuts,
		    int ncuts)
{
	uint8_t *p = gp(f, TXBUF);
	uint64_t at = TXBUF;
	uint16_t head = f->tx_next;

	memcpy(p, h, NET_HDR_LEN);
	for (size_t i = 0; i < len; i++)
		p[NET_HDR_LEN + i] = (uint8_t)(i * 3 + 1);
	for (int c = 0; c < ncuts; c++) {
		uint16_t i = f->tx_next++ % QS;

		tq_set_desc(&f->m, TXQ, i, at, cuts[c], c + 1 < ncuts ? VIRTQ_DESC_F_NEXT : 0,
			    (i + 1) % QS);
		at += cuts[c];
	}
	tq_avail_add(&f->m, TXQ, QS, head % QS);
}

static ssize_t host_recv(struct fx *f, uint8_t *buf, size_t cap)
{
	return recv(f->host, buf, cap, MSG_DONTWAIT);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_config(void **state)
{
	struct fx *f = fx_new(0, false);
	uint64_t dev_f;
	uint64_t cfg;

	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	dev_f = tdrv_device_features(&f->drv);
	/* The fd backend carries every offload; MRG_RXBUF, MAC, STATUS, MTU always. */
	assert_true((dev_f & (F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(MTU))) ==
		    (F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(MTU)));
	assert_true((dev_f & NET_OFFLOAD_ALL) == NET_OFFLOAD_ALL);
	assert_true(dev_f & (1ULL << VIRTIO_F_EVENT_IDX));
	for (int i = 0; i < 6; i++)
		assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + i, 1),
				 mac[i]);
	cfg = mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 6, 2);
	assert_int_equal(cfg, VIRTIO_NET_S_LINK_UP);
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 10, 2), 1500);

	uint8_t gen = cc_rd(&f->drv, VIRTIO_PCI_COMMON_CFGGEN, 1);

	virtio_net_set_link(f->dev, false);
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 6, 2), 0);
	assert_int_not_equal(cc_rd(&f->drv, VIRTIO_PCI_COMMON_CFGGEN, 1), gen);
	virtio_net_set_link(f->dev, true);
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 6, 2), 1);
	fx_free(f);
}

static void test_create_bad(void **state)
{
	struct tmach m;
	struct net_config cfg = {.mtu = 67};
	struct net_backend *be;
	struct virtio_dev *dev;
	int sv[2];

	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(virtio_net_create(m.pbus, m.mem, NULL, &cfg, NULL, &dev), -EINVAL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(net_fd_backend(sv[0], &be), 0);
	/* The backend is consumed even on failure (ASan would report the leak). */
	assert_int_equal(virtio_net_create(m.pbus, m.mem, NULL, &cfg, be, &dev), -ERANGE);
	assert_int_equal(net_fd_backend(-1, &be), -EBADF);
	close(sv[1]);
	tm_fini(&m);
}

static void test_tx_frames(void **state)
{
	struct fx *f = fx_new(F_BASE | F(CSUM) | F(HOST_TSO4), true);
	struct net_hdr h = {0};
	uint8_t buf[4096];
	/* Header whole, header split 4 + 8 and 11 + 1 + frame, many small pieces. */
	static const uint32_t cut_a[] = {12 + 100};
	static const uint32_t cut_b[] = {4, 8, 100};
	static const uint32_t cut_c[] = {11, 1 + 30, 70};
	static const uint32_t cut_d[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 50, 50};
	const uint32_t *cuts[] = {cut_a, cut_b, cut_c, cut_d};
	int ncuts[] = {1, 3, 3, 14};

	for (int t = 0; t < 4; t++) {
		h.flags = t == 2 ? NET_HDR_F_NEEDS_CSUM : 0;
		h.csum_start = 34;
		h.csum_offset = 16;
		post_tx(f, &h, 100, cuts[t], ncuts[t]);
		tdrv_kick(&f->drv, TXQ);
		assert_int_equal(host_recv(f, buf, sizeof(buf)), 112);
		assert_int_equal(buf[0], h.flags);
		if (t != 2) {
			/* No checksum asked: the device does not pass on csum fields. */
			assert_int_equal(buf[6] | buf[7], 0);
		}
		for (int i = 0; i < 100; i++)
			assert_int_equal(buf[12 + i], (uint8_t)(i * 3 + 1));
		assert_int_equal(tq_used_idx(&f->m, TXQ), t + 1);
	}
	assert_int_equal(stats(f).tx_packets, 4);
	assert_int_equal(stats(f).tx_bytes, 400);
	assert_int_equal(stats(f).tx_drops, 0);
	fx_free(f);
}

static void test_tx_malformed(void **state)
{
	struct fx *f = fx_new(F_BASE | F(CSUM), true);
	struct net_hdr h = {0};
	uint8_t buf[256];
	static const uint32_t hdr_only[] = {12}, short_hdr[] = {6}, runt[] = {12 + 13};
	static const uint32_t ok[] = {12 + 60};

	/* No frame, half a header, a frame shorter than Ethernet's header. */
	post_tx(f, &h, 0, hdr_only, 1);
	post_tx(f, &h, 0, short_hdr, 1);
	post_tx(f, &h, 13, runt, 1);
	/* An offload the guest did not negotiate (TSO4), a checksum past the frame. */
	h = (struct net_hdr){.flags = NET_HDR_F_NEEDS_CSUM,
			     .gso_type = NET_GSO_TCPV4,
			     .gso_size = 1000,
			     .csum_start = 34,
			     .csum_offset = 16};
	post_tx(f, &h, 60, ok, 1);
	h = (struct net_hdr){.flags = NET_HDR_F_NEEDS_CSUM, .csum_start = 59, .csum_offset = 0};
	post_tx(f, &h, 60, ok, 1);
	tdrv_kick(&f->drv, TXQ);
	assert_int_equal(host_recv(f, buf, sizeof(buf)), -1);
	assert_int_equal(stats(f).tx_malformed, 5);
	assert_int_equal(stats(f).tx_drops, 5);
	assert_int_equal(tq_used_idx(&f->m, TXQ), 5); /* every chain is returned */
	/* The device keeps working. */
	h = (struct net_hdr){0};
	post_tx(f, &h, 60, ok, 1);
	tdrv_kick(&f->drv, TXQ);
	assert_int_equal(host_recv(f, buf, sizeof(buf)), 72);
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	/* A descriptor past the end of RAM breaks the ring rules: NEEDS_RESET, no crash. */
	tq_set_desc(&f->m, TXQ, 200, (1 << 20) - 8, 72, 0, 0);
	tq_avail_add(&f->m, TXQ, QS, 200);
	tdrv_kick(&f->drv, TXQ);
	assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	fx_free(f);
}

static void test_tx_link_down(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {0};
	uint8_t buf[256];
	static const uint32_t ok[] = {12 + 60};

	virtio_net_set_link(f->dev, false);
	post_tx(f, &h, 60, ok, 1);
	tdrv_kick(&f->drv, TXQ);
	assert_int_equal(host_recv(f, buf, sizeof(buf)), -1);
	assert_int_equal(stats(f).tx_drops, 1);
	assert_int_equal(stats(f).tx_malformed, 0);
	virtio_net_set_link(f->dev, true);
	post_tx(f, &h, 60, ok, 1);
	tdrv_kick(&f->drv, TXQ);
	assert_int_equal(host_recv(f, buf, sizeof(buf)), 72);
	fx_free(f);
}

/* A guest flooding tx gets a budget per kick; the rest waits for the re-kick. */
static void test_tx_budget(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {0};
	uint8_t buf[256];
	static const uint32_t ok[] = {12 + 60};
	int got = 0;

	for (int i = 0; i < 200; i++)
		post_tx(f, &h, 60, ok, 1);
	tdrv_kick(&f->drv, TXQ);
	assert_true(tq_used_idx(&f->m, TXQ) < 200);
	assert_true(tq_used_idx(&f->m, TXQ) > 0);
	while (host_recv(f, buf, sizeof(buf)) > 0)
		got++;
	tdrv_kick(&f->drv, TXQ); /* what the loop's re-kick does */
	while (host_recv(f, buf, sizeof(buf)) > 0)
		got++;
	assert_int_equal(tq_used_idx(&f->m, TXQ), 200);
	assert_int_equal(got, 200);
	fx_free(f);
}

/* The backend is full: tx stops without dropping and resumes when it is writable. */
static void test_tx_backpressure(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {0};
	static uint8_t buf[8192];
	static const uint32_t big[] = {12 + 4000};
	int got = 0, n = 0;

	/* Fill the socket: the device's end has a small send buffer. */
	for (int i = 0; i < 100; i++)
		post_tx(f, &h, 4000, big, 1);
	for (int round = 0; round < 10; round++)
		tdrv_kick(&f->drv, TXQ);
	n = tq_used_idx(&f->m, TXQ);
	assert_true(n < 100);
	assert_int_equal(stats(f).tx_drops, 0);
	while (got < 100) {
		ssize_t r = host_recv(f, buf, sizeof(buf));

		if (r < 0) {
			virtio_net_backend_ready(f->dev, EPOLLOUT);
			continue;
		}
		assert_int_equal(r, 4012);
		got++;
	}
	assert_int_equal(tq_used_idx(&f->m, TXQ), 100);
	assert_int_equal(stats(f).tx_packets, 100);
	assert_int_equal(stats(f).tx_drops, 0);
	fx_free(f);
}

static void test_rx_simple(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {.flags = NET_HDR_F_DATA_VALID};
	uint32_t id, len;
	uint16_t b = post_rx(f, 2048);

	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 1000, 5);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 1);
	tq_used_elem(&f->m, RXQ, QS, 0, &id, &len);
	assert_int_equal(id, b);
	assert_int_equal(len, 1012);
	/* No GUEST_CSUM: DATA_VALID is not passed on; num_buffers is 1. */
	assert_int_equal(gp(f, RXBUF + b * RXSTRIDE)[0], 0);
	assert_int_equal(gp(f, RXBUF + b * RXSTRIDE)[10], 1);
	check_pattern(gp(f, RXBUF + b * RXSTRIDE + 12), 1000, 0, 5);
	assert_int_equal(stats(f).rx_packets, 1);
	assert_int_equal(stats(f).rx_bytes, 1000);
	fx_free(f);
}

static void test_rx_mergeable(void **state)
{
	struct fx *f = fx_new(F_BASE | F(MRG_RXBUF), true);
	struct net_hdr h = {0};
	uint32_t id, len;
	uint16_t b0;

	/* One 1000-byte buffer is not enough for 2500 bytes: the frame waits, nothing dropped. */
	b0 = post_rx(f, 1000);
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 2500, 9);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 0);
	assert_int_equal(stats(f).rx_no_buffer, 1);
	assert_int_equal(stats(f).rx_drops, 0);
	/* Two more: delivered over three chains, starting with the one given back. */
	post_rx(f, 1000);
	post_rx(f, 1000);
	tdrv_kick(&f->drv, RXQ);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 3);
	for (int i = 0; i < 3; i++) {
		tq_used_elem(&f->m, RXQ, QS, i, &id, &len);
		assert_int_equal(id, b0 + i);
		assert_int_equal(len, i < 2 ? 1000 : 512);
	}
	assert_int_equal(gp(f, RXBUF + b0 * RXSTRIDE)[10], 3); /* num_buffers */
	check_pattern(gp(f, RXBUF + b0 * RXSTRIDE + 12), 988, 0, 9);
	check_pattern(gp(f, RXBUF + (b0 + 1) * RXSTRIDE), 1000, 988, 9);
	check_pattern(gp(f, RXBUF + (b0 + 2) * RXSTRIDE), 512, 1988, 9);
	assert_int_equal(stats(f).rx_packets, 1);
	/* Frames queued in the backend follow once buffers come. */
	for (int i = 0; i < 5; i++)
		host_send(f, &h, 100, i);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 3);
	for (int i = 0; i < 5; i++)
		post_rx(f, 1000);
	tdrv_kick(&f->drv, RXQ);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 8);
	assert_int_equal(stats(f).rx_packets, 6);
	assert_int_equal(stats(f).rx_drops, 0);
	fx_free(f);
}

static void test_rx_too_big(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {0};
	uint32_t id, len;
	uint16_t b = post_rx(f, 1526);

	tdrv_kick(&f->drv, RXQ);
	/* Without MRG_RXBUF a frame must fit one chain: dropped, counted, chain kept. */
	host_send(f, &h, 3000, 1);
	host_send(f, &h, 1514, 2);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(stats(f).rx_drops, 1);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 1);
	tq_used_elem(&f->m, RXQ, QS, 0, &id, &len);
	assert_int_equal(id, b);
	assert_int_equal(len, 1526);
	fx_free(f);
}

static void test_rx_offloads(void **state)
{
	struct fx *f = fx_new(F_BASE | F(GUEST_CSUM) | F(GUEST_TSO4), true);
	struct net_hdr gso4 = {.flags = NET_HDR_F_NEEDS_CSUM,
			       .gso_type = NET_GSO_TCPV4,
			       .gso_size = 1448,
			       .hdr_len = 54,
			       .csum_start = 34,
			       .csum_offset = 16};
	struct net_hdr gso6 = gso4;

	gso6.gso_type = NET_GSO_TCPV6;
	post_rx(f, 8000);
	post_rx(f, 8000);
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &gso6, 5000, 1); /* TSO6 not negotiated: dropped */
	host_send(f, &gso4, 5000, 2);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(stats(f).rx_drops, 1);
	assert_int_equal(stats(f).rx_packets, 1);
	assert_int_equal(gp(f, RXBUF)[0], NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(gp(f, RXBUF)[1], NET_GSO_TCPV4);
	fx_free(f);
}

static void test_rx_link_down(void **state)
{
	struct fx *f = fx_new(F_BASE, true);
	struct net_hdr h = {0};

	post_rx(f, 2048);
	tdrv_kick(&f->drv, RXQ);
	virtio_net_set_link(f->dev, false);
	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(stats(f).rx_drops, 1);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 0);
	virtio_net_set_link(f->dev, true);
	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 1);
	fx_free(f);
}

static void test_rx_hostile(void **state)
{
	struct fx *f;
	struct net_hdr h = {0};
	uint16_t *avail;

	/* An rx buffer smaller than a header. */
	f = fx_new(F_BASE | F(MRG_RXBUF), true);
	post_rx(f, 8);
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	fx_free(f);

	/* avail idx far ahead of what the ring holds. */
	f = fx_new(F_BASE | F(MRG_RXBUF), true);
	post_rx(f, 100);
	avail = (uint16_t *)gp(f, tq_avail(RXQ));
	avail[1] = 5000;
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	fx_free(f);

	/*
	 * Mergeable with the same 12-byte buffer offered all around the ring: a 64 KiB
	 * frame needs more chains than the ring holds, which must end, not loop.
	 */
	f = fx_new(F_BASE | F(MRG_RXBUF), true);
	for (int i = 0; i < QS; i++) {
		tq_set_desc(&f->m, RXQ, i, RXBUF, 12, VIRTQ_DESC_F_WRITE, 0);
		tq_avail_add(&f->m, RXQ, QS, i);
	}
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 60000, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 0);
	assert_int_equal(stats(f).rx_drops, 1);
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	/* The buffers were kept: a frame that fits one of them arrives. */
	host_send(f, &h, 0, 1);
	fx_free(f);
}

/* Reset with a frame waiting: it is counted as dropped, and the device works after. */
static void test_rx_reset(void **state)
{
	struct fx *f = fx_new(F_BASE | F(MRG_RXBUF), true);
	struct net_hdr h = {0};

	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(stats(f).rx_no_buffer, 1);
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(stats(f).rx_drops, 1);
	memset(f->m.ram, 0, f->m.ram_size);
	f->rx_next = 0;
	fx_probe(f, F_BASE | F(MRG_RXBUF));
	post_rx(f, 2048);
	tdrv_kick(&f->drv, RXQ);
	host_send(f, &h, 100, 1);
	virtio_net_backend_ready(f->dev, EPOLLIN);
	assert_int_equal(tq_used_idx(&f->m, RXQ), 1);
	fx_free(f);
}

/* The peer went away: the backend is marked failed, the link goes down, nothing spins. */
static void test_backend_gone(void **state)
{
	struct fx *f = fx_new(F_BASE, true);

	post_rx(f, 2048);
	tdrv_kick(&f->drv, RXQ);
	close(f->host);
	f->host = -1;
	virtio_net_backend_ready(f->dev, EPOLLIN | EPOLLHUP);
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 6, 2), 0);
	virtio_net_backend_ready(f->dev, EPOLLIN | EPOLLHUP);
	fx_free(f);
}

/* ---- On an I/O thread --------------------------------------------------------------------- */

struct sender {
	int fd;
	unsigned sent;
	bool stop; /* atomics */
};

/* The host keeps sending frames until told to stop or the NIC's end is closed. */
static void *send_thread(void *opaque)
{
	struct sender *sd = opaque;
	uint8_t buf[NET_HDR_LEN + 200] = {0};

	while (!__atomic_load_n(&sd->stop, __ATOMIC_ACQUIRE)) {
		ssize_t n = send(sd->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0)
			__atomic_fetch_add(&sd->sent, 1, __ATOMIC_RELAXED);
		else if (errno != EAGAIN)
			break;
		else
			nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	}
	return NULL;
}

/* Waits up to 5 s for queue q's used index to reach want, reading the stats meanwhile. */
static void wait_used(struct fx *f, int q, uint16_t want)
{
	for (int i = 0; i < 5000 && tq_used_idx(&f->m, q) != want; i++) {
		(void)stats(f); /* the control thread reads them while io0 counts */
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	assert_int_equal(tq_used_idx(&f->m, q), want);
}

/*
 * The NIC as the shim runs it: kicks through the kick eventfds and frames
 * through the backend fd, all served on io0 while this thread plays the vCPU
 * and the control thread. Then it is torn down while the host still sends
 * and io0 still delivers: once virtio_dev_destroy returns, nothing of it
 * runs there (ASan and TSan watch the freed device).
 */
static void test_io_thread(void **state)
{
	struct io_threads *io;
	struct fx *f;
	struct sender sd = {0};
	struct net_hdr h = {0};
	uint8_t buf[2048];
	const uint32_t cut[] = {NET_HDR_LEN + 300};
	pthread_t t;
	ssize_t n = -1;

	(void)state;
	assert_int_equal(io_threads_create(1, &io), 0);
	assert_int_equal(io_threads_start(io, NULL, NULL), 0);
	f = fx_new_on(io_threads_pick(io), F_BASE, true);
	for (int i = 0; i < 32; i++)
		post_rx(f, 2048);
	tdrv_kick(&f->drv, RXQ);
	for (int i = 0; i < 32; i++)
		host_send(f, &h, 100, (uint8_t)i);
	wait_used(f, RXQ, 32);
	assert_int_equal(stats(f).rx_packets, 32);

	post_tx(f, &h, 300, cut, 1);
	tdrv_kick(&f->drv, TXQ);
	wait_used(f, TXQ, 1);
	for (int i = 0; i < 5000 && n < 0; i++) {
		n = host_recv(f, buf, sizeof(buf));
		if (n < 0)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	assert_int_equal(n, NET_HDR_LEN + 300);
	assert_int_equal(stats(f).tx_packets, 1);

	/* The rest of the buffers RAM holds for the sender's frames, teardown among them. */
	for (int i = 32; i < (int)((TXBUF - RXBUF) / RXSTRIDE); i++)
		post_rx(f, 2048);
	sd.fd = f->host;
	assert_int_equal(pthread_create(&t, NULL, send_thread, &sd), 0);
	tdrv_kick(&f->drv, RXQ);
	while (tq_used_idx(&f->m, RXQ) < 40)
		nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	virtio_dev_destroy(f->dev);
	f->dev = NULL;
	__atomic_store_n(&sd.stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	close(f->host);
	tm_fini(&f->m);
	free(f);
	io_threads_destroy(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),	    cmocka_unit_test(test_create_bad),
	    cmocka_unit_test(test_tx_frames),	    cmocka_unit_test(test_tx_malformed),
	    cmocka_unit_test(test_tx_link_down),    cmocka_unit_test(test_tx_budget),
	    cmocka_unit_test(test_tx_backpressure), cmocka_unit_test(test_rx_simple),
	    cmocka_unit_test(test_rx_mergeable),    cmocka_unit_test(test_rx_too_big),
	    cmocka_unit_test(test_rx_offloads),	    cmocka_unit_test(test_rx_link_down),
	    cmocka_unit_test(test_rx_hostile),	    cmocka_unit_test(test_rx_reset),
	    cmocka_unit_test(test_backend_gone),    cmocka_unit_test(test_io_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
