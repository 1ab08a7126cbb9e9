/* virtio/net_hdr.c and gcs/net_addr.c: header rules per offload, checksums, mergeable filling,
 * parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "gcs/net_addr.h"
#include "virtio/net_hdr.h"

#define F(b)	  NET_FBIT(VIRTIO_NET_F_##b)
#define HOST_ALL  (F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN))
#define GUEST_ALL (F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN))

static struct net_hdr hdr(uint8_t flags, uint8_t gso, uint16_t hdr_len, uint16_t gso_size,
			  uint16_t start, uint16_t off)
{
	return (struct net_hdr){.flags = flags,
				.gso_type = gso,
				.hdr_len = hdr_len,
				.gso_size = gso_size,
				.csum_start = start,
				.csum_offset = off,
				.num_buffers = 7};
}

/* ---- tx: what the guest may send ---------------------------------------------------------- */

static void test_tx_plain(void **state)
{
	struct net_hdr in = hdr(0xfc | NET_HDR_F_DATA_VALID, 0, 54, 99, 5, 6), out;

	assert_int_equal(net_hdr_tx_check(&in, 60, 0, &out), 0);
	/* Flags the guest has no business setting on tx are cleared; no GSO fields leak. */
	assert_int_equal(out.flags, 0);
	assert_int_equal(out.gso_type, 0);
	assert_int_equal(out.gso_size, 0);
	assert_int_equal(out.num_buffers, 0);
	assert_int_equal(out.hdr_len, 54);
	/* A hdr_len beyond the frame is not passed on. */
	in.hdr_len = 61;
	assert_int_equal(net_hdr_tx_check(&in, 60, 0, &out), 0);
	assert_int_equal(out.hdr_len, 0);
}

static void test_tx_frame_size(void **state)
{
	struct net_hdr in = hdr(0, 0, 0, 0, 0, 0), out;

	assert_int_equal(net_hdr_tx_check(&in, 0, HOST_ALL, &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 13, HOST_ALL, &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 14, HOST_ALL, &out), 0);
	assert_int_equal(net_hdr_tx_check(&in, NET_MAX_FRAME, HOST_ALL, &out), 0);
	assert_int_equal(net_hdr_tx_check(&in, NET_MAX_FRAME + 1, HOST_ALL, &out), -EINVAL);
}

static void test_tx_csum(void **state)
{
	struct net_hdr in = hdr(NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16), out;

	/* Not negotiated: refused. */
	assert_int_equal(net_hdr_tx_check(&in, 100, F(HOST_TSO4), &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 100, F(CSUM), &out), 0);
	assert_int_equal(out.flags, NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(out.csum_start, 34);
	assert_int_equal(out.csum_offset, 16);
	/* The checksum field must lie inside the frame: exactly at the end is fine, one past not.
	 */
	assert_int_equal(net_hdr_tx_check(&in, 52, F(CSUM), &out), 0);
	assert_int_equal(net_hdr_tx_check(&in, 51, F(CSUM), &out), -EINVAL);
	in = hdr(NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0xffff, 0xffff);
	assert_int_equal(net_hdr_tx_check(&in, 1000, F(CSUM), &out), -EINVAL);
}

static void test_tx_tso(void **state)
{
	struct net_hdr in = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 66, 1448, 34, 16), out;
	uint64_t f4 = F(CSUM) | F(HOST_TSO4), f6 = F(CSUM) | F(HOST_TSO6);

	assert_int_equal(net_hdr_tx_check(&in, 30000, F(CSUM), &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 30000, f6, &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 30000, f4, &out), 0);
	assert_int_equal(out.gso_type, NET_GSO_TCPV4);
	assert_int_equal(out.gso_size, 1448);
	assert_int_equal(out.hdr_len, 66);
	in.gso_type = NET_GSO_TCPV6;
	assert_int_equal(net_hdr_tx_check(&in, 30000, f4, &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 30000, f6, &out), 0);
	/* ECN only with HOST_ECN, and never without GSO. */
	in.gso_type = NET_GSO_TCPV6 | NET_GSO_ECN;
	assert_int_equal(net_hdr_tx_check(&in, 30000, f6, &out), -EINVAL);
	assert_int_equal(net_hdr_tx_check(&in, 30000, f6 | F(HOST_ECN), &out), 0);
	assert_int_equal(out.gso_type, NET_GSO_TCPV6 | NET_GSO_ECN);
	in = hdr(0, NET_GSO_ECN, 0, 0, 0, 0);
	assert_int_equal(net_hdr_tx_check(&in, 100, HOST_ALL, &out), -EINVAL);
	/* GSO without a pending checksum, without a segment size, or a header past the frame. */
	in = hdr(0, NET_GSO_TCPV4, 66, 1448, 0, 0);
	assert_int_equal(net_hdr_tx_check(&in, 30000, HOST_ALL, &out), -EINVAL);
	in = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 66, 0, 34, 16);
	assert_int_equal(net_hdr_tx_check(&in, 30000, HOST_ALL, &out), -EINVAL);
	in = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 30001, 1448, 34, 16);
	assert_int_equal(net_hdr_tx_check(&in, 30000, HOST_ALL, &out), -EINVAL);
	/* UFO and unknown types are never offered. */
	in = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_UDP, 42, 1400, 34, 6);
	assert_int_equal(net_hdr_tx_check(&in, 30000, HOST_ALL, &out), -EINVAL);
	for (int t = 5; t < 0x80; t++) {
		in.gso_type = t;
		assert_int_equal(net_hdr_tx_check(&in, 30000, HOST_ALL, &out), -EINVAL);
	}
}

/* ---- checksums ---------------------------------------------------------------------------- */

/* Ones' complement sum of a byte string as 16-bit big-endian words, folded. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += p[i] << 8 | p[i + 1];
	if (n & 1)
		s += p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* An Ethernet + IPv4 + UDP frame with payload of n bytes; returns the frame length. */
static size_t udp_frame(uint8_t *f, size_t n, uint32_t *pseudo)
{
	size_t ulen = 8 + n;
	uint8_t ph[12];

	memset(f, 0, 14 + 20 + ulen);
	f[12] = 0x08;
	f[14] = 0x45;
	f[14 + 9] = 17;
	memcpy(f + 14 + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	f[34] = 0x12, f[35] = 0x34, f[36] = 0x00, f[37] = 0x35;
	f[38] = ulen >> 8, f[39] = ulen & 0xff;
	for (size_t i = 0; i < n; i++)
		f[42 + i] = (uint8_t)(i * 31 + 7);
	memcpy(ph, f + 26, 8);
	ph[8] = 0, ph[9] = 17, ph[10] = ulen >> 8, ph[11] = ulen & 0xff;
	*pseudo = sum16(ph, 12, 0);
	return 14 + 20 + ulen;
}

static void test_csum_fill(void **state)
{
	static uint8_t f[2000];

	for (size_t n = 0; n < 40; n++) {
		uint32_t ps;
		size_t len = udp_frame(f, n * 37 % 1400 + (n & 1), &ps);

		/* CHECKSUM_PARTIAL: the field holds the pseudo-header sum. */
		f[40] = ps >> 8, f[41] = ps & 0xff;
		assert_int_equal(net_csum_fill(f, len, 34, 6), 0);
		/* A receiver's check: pseudo header + segment with the checksum sums to 0xffff. */
		{
			uint8_t ph[12];
			uint32_t s;

			memcpy(ph, f + 26, 8);
			ph[8] = 0, ph[9] = 17, ph[10] = f[38], ph[11] = f[39];
			s = sum16(f + 34, len - 34, sum16(ph, 12, 0));
			assert_int_equal(s, 0xffff);
		}
		assert_false(f[40] == 0 && f[41] == 0);
	}
	assert_int_equal(net_csum_fill(f, 100, 99, 0), -EINVAL);
	assert_int_equal(net_csum_fill(f, 100, 98, 0), 0);
	assert_int_equal(net_csum_fill(f, 100, 101, 0), -EINVAL);
	assert_int_equal(net_csum_fill(f, 100, 0, SIZE_MAX), -EINVAL);
	assert_int_equal(net_csum_fill(f, 100, SIZE_MAX, 2), -EINVAL);
}

/* ---- rx: what the guest may receive ------------------------------------------------------- */

static void test_rx_csum(void **state)
{
	static uint8_t f[2000];
	uint32_t ps;
	size_t len = udp_frame(f, 333, &ps);
	struct net_hdr h = hdr(NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 6);

	f[40] = ps >> 8, f[41] = ps & 0xff;
	/* The guest can finish the checksum: left as is. */
	assert_int_equal(net_hdr_rx_fix(&h, f, len, F(GUEST_CSUM)), 0);
	assert_int_equal(h.flags, NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(h.num_buffers, 1);
	assert_int_equal(f[40] << 8 | f[41], ps);
	/* It cannot: done here, flag off. */
	assert_int_equal(net_hdr_rx_fix(&h, f, len, 0), 0);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.csum_start, 0);
	assert_int_not_equal(f[40] << 8 | f[41], ps);
	/* A checksum position outside the frame is refused either way. */
	h = hdr(NET_HDR_F_NEEDS_CSUM, 0, 0, 0, len - 1, 0);
	assert_int_equal(net_hdr_rx_fix(&h, f, len, F(GUEST_CSUM)), -EINVAL);
	h = hdr(NET_HDR_F_NEEDS_CSUM, 0, 0, 0, len - 1, 0);
	assert_int_equal(net_hdr_rx_fix(&h, f, len, 0), -EINVAL);
	/* DATA_VALID only for a guest that negotiated checksums. */
	h = hdr(NET_HDR_F_DATA_VALID | 0x80, NET_GSO_ECN, 0, 77, 0, 0);
	assert_int_equal(net_hdr_rx_fix(&h, f, len, F(GUEST_CSUM)), 0);
	assert_int_equal(h.flags, NET_HDR_F_DATA_VALID);
	assert_int_equal(h.gso_type, 0);
	assert_int_equal(h.gso_size, 0);
	h = hdr(NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0);
	assert_int_equal(net_hdr_rx_fix(&h, f, len, 0), 0);
	assert_int_equal(h.flags, 0);
}

static void test_rx_gso(void **state)
{
	static uint8_t f[100];
	struct net_hdr h;

	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 66, 1448, 34, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL), 0);
	assert_int_equal(h.gso_type, NET_GSO_TCPV4);
	assert_int_equal(h.gso_size, 1448);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 66, 1448, 34, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL & ~F(GUEST_TSO4)), -EOPNOTSUPP);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV6, 86, 1428, 54, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL & ~F(GUEST_TSO6)), -EOPNOTSUPP);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV6, 86, 1428, 54, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL), 0);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4 | NET_GSO_ECN, 66, 1448, 34, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL & ~F(GUEST_ECN)), -EOPNOTSUPP);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4 | NET_GSO_ECN, 66, 1448, 34, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL), 0);
	/* TSO negotiated without checksums (a driver bug): GSO cannot be delivered. */
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_TCPV4, 66, 1448, 34, 16);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, F(GUEST_TSO4)), -EOPNOTSUPP);
	/* GSO without a pending checksum, and UFO, are never delivered. */
	h = hdr(0, NET_GSO_TCPV4, 66, 1448, 0, 0);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL), -EOPNOTSUPP);
	h = hdr(NET_HDR_F_NEEDS_CSUM, NET_GSO_UDP, 42, 1400, 34, 6);
	assert_int_equal(net_hdr_rx_fix(&h, f, 100, GUEST_ALL), -EOPNOTSUPP);
}

/* ---- mergeable rx filling ----------------------------------------------------------------- */

static void test_rx_fill_chains(void **state)
{
	static uint8_t pkt[3012], a[1000], b1[4], b2[700], b3[800], c[2000];
	struct iovec ca[] = {{a, sizeof(a)}};
	struct iovec cb[] = {{b1, sizeof(b1)}, {b2, sizeof(b2)}, {b3, sizeof(b3)}};
	struct iovec cc[] = {{c, sizeof(c)}};
	struct net_rx_fill f;
	size_t n;

	for (size_t i = 0; i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)(i * 13 + 1);
	net_rx_fill_init(&f, pkt, sizeof(pkt));
	assert_false(net_rx_fill_done(&f));
	assert_int_equal(net_rx_fill_chain(&f, ca, 1), 1000);
	n = net_rx_fill_chain(&f, cb, 3);
	assert_int_equal(n, 1504);
	assert_false(net_rx_fill_done(&f));
	assert_int_equal(net_rx_fill_chain(&f, cc, 1), 3012 - 2504);
	assert_true(net_rx_fill_done(&f));
	assert_int_equal(f.nbufs, 3);
	assert_memory_equal(a, pkt, 1000);
	assert_memory_equal(b1, pkt + 1000, 4);
	assert_memory_equal(b2, pkt + 1004, 700);
	assert_memory_equal(b3, pkt + 1704, 800);
	assert_memory_equal(c, pkt + 2504, 508);

	/* num_buffers lands at offset 10 even when the header spans buffers (4 + 700 here). */
	net_rx_set_num_buffers(cb, 3, 0x1234);
	assert_int_equal(b2[6], 0x34);
	assert_int_equal(b2[7], 0x12);
	/* A chain with no room takes nothing (the device treats it as a driver error). */
	net_rx_fill_init(&f, pkt, sizeof(pkt));
	assert_int_equal(net_rx_fill_chain(&f, NULL, 0), 0);
	assert_int_equal(f.off, 0);
}

/* ---- MAC and CIDR parsing ----------------------------------------------------------------- */

static void test_mac_parse(void **state)
{
	uint8_t m[6] = {0}, g[6];
	char s[18];
	static const char *bad[] = {
	    "",
	    "52:54:00:12:34",
	    "52:54:00:12:34:56:78",
	    "52:54:00:12:34:5g",
	    "52-54:00:12:34:56",
	    "01:00:5e:00:00:01",
	    "00:00:00:00:00:00",
	    "ff:ff:ff:ff:ff:ff",
	    " 52:54:00:12:34:5",
	    "52:54:00:12:34:56 ",
	    "525400123456",
	    "52::54:00:12:34:5",
	};

	assert_int_equal(net_parse_mac("52:54:00:AB:cd:EF", m), 0);
	assert_memory_equal(m, "\x52\x54\x00\xab\xcd\xef", 6);
	assert_int_equal(net_parse_mac("02-00-00-00-00-01", m), 0);
	assert_int_equal(net_parse_mac(NULL, m), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(m, 0xaa, 6);
		assert_int_equal(net_parse_mac(bad[i], m), -EINVAL);
		assert_int_equal(m[0], 0xaa); /* untouched on error */
	}
	for (int i = 0; i < 100; i++) {
		net_mac_generate(g);
		assert_int_equal(g[0] & 3, 2); /* unicast, locally administered */
		net_mac_format(g, s);
		assert_int_equal(net_parse_mac(s, m), 0);
		assert_memory_equal(m, g, 6);
	}
}

static void test_cidr_parse(void **state)
{
	struct net_cidr c;
	char buf[64];
	static const char *bad[] = {
	    "",
	    "/24",
	    "10.0.0.1/",
	    "10.0.0.1/33",
	    "10.0.0.1/-1",
	    "10.0.0.1/+8",
	    "10.0.0.1/ 8",
	    "10.0.0.1/8 ",
	    "10.0.0.256/8",
	    "10.0.0/8",
	    "fd00::1/129",
	    "fd00:::1/64",
	    "10.0.0.1/0008",
	    "host/24",
	    "10.0.0.1/2a",
	};

	assert_int_equal(net_parse_cidr("10.1.2.3/24", 0, &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 24);
	assert_memory_equal(c.addr, "\x0a\x01\x02\x03", 4);
	net_cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "10.1.2.3/24");
	assert_int_equal(net_parse_cidr("fd00::2/64", 0, &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 64);
	assert_int_equal(net_parse_cidr("0.0.0.0/0", 0, &c), 0);
	assert_int_equal(c.prefix, 0);
	/* Bare addresses only where allowed (a gateway), with a host prefix. */
	assert_int_equal(net_parse_cidr("10.0.0.1", 0, &c), -EINVAL);
	assert_int_equal(net_parse_cidr("10.0.0.1", 1, &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(net_parse_cidr("::1", 1, &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(net_parse_cidr(NULL, 1, &c), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(net_parse_cidr(bad[i], 0, &c), -EINVAL);
	/* Longer than any address. */
	memset(buf, '1', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	assert_int_equal(net_parse_cidr(buf, 1, &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tx_plain),  cmocka_unit_test(test_tx_frame_size),
	    cmocka_unit_test(test_tx_csum),   cmocka_unit_test(test_tx_tso),
	    cmocka_unit_test(test_csum_fill), cmocka_unit_test(test_rx_csum),
	    cmocka_unit_test(test_rx_gso),    cmocka_unit_test(test_rx_fill_chains),
	    cmocka_unit_test(test_mac_parse), cmocka_unit_test(test_cidr_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
