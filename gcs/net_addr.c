/* MAC and IP prefix parsing for the NIC parameters (net_addr.h). */
#include "gcs/net_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];
	char sep = 0;

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		m[i] = hi << 4 | lo;
		if (i < 5) {
			char c = s[3 * i + 2];

			if ((c != ':' && c != '-') || (sep && c != sep))
				return -EINVAL;
			sep = c;
		}
	}
	/* Multicast (group bit) or all-zero cannot be a NIC's own address. */
	if ((m[0] & 1) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
		return -EINVAL;
	memcpy(mac, m, 6);
	return 0;
}

int net_parse_cidr(const char *s, int allow_bare, struct net_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t alen;
	int max, prefix = -1;

	if (!s)
		return -EINVAL;
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = 0;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		const char *p = slash + 1;

		/* Decimal digits only, no sign, no spaces, at most three. */
		if (!*p || strlen(p) > 3)
			return -EINVAL;
		prefix = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -EINVAL;
			prefix = prefix * 10 + (*p - '0');
		}
		if (prefix > max)
			return -EINVAL;
	} else if (!allow_bare) {
		return -EINVAL;
	}
	out->prefix = prefix < 0 ? max : prefix;
	return 0;
}

void net_mac_generate(uint8_t mac[6])
{
	static unsigned int seq;

	if (getrandom(mac, 6, 0) != 6) {
		/* Never short for 6 bytes once the pool is up; else unique within this process. */
		unsigned int n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);

		memset(mac, 0, 6);
		memcpy(mac + 2, &n, 4);
	}
	mac[0] = (mac[0] & 0xfe) | 0x02; /* unicast, locally administered */
}

void net_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

void net_cidr_format(const struct net_cidr *c, char *buf, int size)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(buf, size, "%s/%d", a, c->prefix);
}
