/*
 * MAC addresses and IP prefixes as the parent writes them ("52:54:00:12:34:56",
 * "10.0.0.2/24", "fd00::2/64"). Pure parsing, compiled into both the shim
 * (nic.* and run --net check them) and the GCS (which applies them).
 */
#ifndef GCS_NET_ADDR_H
#define GCS_NET_ADDR_H

#include <stdint.h>

struct net_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

/* Six hex octets separated by ':' (or '-'); a guest MAC must be unicast and not zero. */
int net_parse_mac(const char *s, uint8_t mac[6]) __attribute__((warn_unused_result));
/* "ADDR/PREFIX" (IPv4 or IPv6); without "/PREFIX" when allow_bare, a host prefix (32/128). */
int net_parse_cidr(const char *s, int allow_bare, struct net_cidr *out)
    __attribute__((warn_unused_result));
/* A random locally administered unicast MAC. */
void net_mac_generate(uint8_t mac[6]);
/* "xx:xx:xx:xx:xx:xx" into buf (18 bytes). */
void net_mac_format(const uint8_t mac[6], char buf[18]);
/* "ADDR/PREFIX" into buf (at least 50 bytes). */
void net_cidr_format(const struct net_cidr *c, char *buf, int size);

#endif
