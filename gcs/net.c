/*
 * Network interfaces of the utility VM, configured by the agent itself over
 * rtnetlink (no `ip` binary): a NIC the host hot-added is found by its MAC
 * after a PCI rescan, then gets its MTU, addresses, link state, default
 * gateway and routes; DNS servers go to /etc/resolv.conf. Removal takes the
 * link down and removes the PCI function, then waits for the interface to go.
 *
 * The agent remembers what it set per MAC (addresses, routes) so that an
 * update replaces them instead of piling up.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gcs/gcs.h"
#include "gcs/net_addr.h"

#define NET_MAX_NICS  16
#define NET_MAX_ITEMS 16
#define NL_BUF	      8192
#define RESOLV_CONF   "/etc/resolv.conf"

struct gnic {
	bool used;
	uint8_t mac[6];
	char ifname[IFNAMSIZ];
	char netns[72]; /* a named namespace it was moved into (container_netns.c), or "" */
	int nr_addrs, nr_routes, nr_dns;
	struct net_cidr addrs[NET_MAX_ITEMS];
	struct net_cidr route_dst[NET_MAX_ITEMS], route_via[NET_MAX_ITEMS];
	bool route_has_via[NET_MAX_ITEMS];
	struct net_cidr dns[NET_MAX_ITEMS];
};

static struct gnic nics[NET_MAX_NICS];
static const char *sysfs = "/sys";
static const char *resolv_conf = RESOLV_CONF;

/* ---- rtnetlink ---------------------------------------------------------------------------- */

struct nlreq {
	struct nlmsghdr h;
	char body[512];
};

/* Appends an attribute (the requests here stay far below the buffer). */
static void nl_attr(struct nlreq *r, int type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h.nlmsg_len) - sizeof(r->h);
	struct rtattr a = {.rta_type = type, .rta_len = RTA_LENGTH(len)};

	if (off + RTA_ALIGN(a.rta_len) > sizeof(r->body))
		return;
	memcpy(r->body + off, &a, sizeof(a));
	memcpy(r->body + off + RTA_LENGTH(0), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a.rta_len);
}

/* Sends one request and returns the kernel's answer: 0 or -errno. */
static int nl_talk(struct nlmsghdr *h)
{
	static unsigned seq;
	char buf[NL_BUF];
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int fd, ret = -EIO;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = ++seq;
	if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *r;

		if (n < 0) {
			ret = -errno;
			goto out;
		}
		for (r = (struct nlmsghdr *)buf; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_seq != h->nlmsg_seq)
				continue;
			if (r->nlmsg_type == NLMSG_ERROR) {
				ret = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
				goto out;
			}
		}
	}
out:
	close(fd);
	return ret;
}

static int link_set(int ifindex, int up, unsigned mtu)
{
	struct nlreq r = {0};
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(*ifi));
	r.h.nlmsg_type = RTM_NEWLINK;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	if (up >= 0) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = up ? IFF_UP : 0;
	}
	if (mtu)
		nl_attr(&r, IFLA_MTU, &mtu, sizeof(mtu));
	return nl_talk(&r.h);
}

/* The index of the interface name in the calling thread's namespace, or 0. */
static int ifindex_of(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (s < 0)
		return 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFINDEX, &ifr) == 0)
		ret = ifr.ifr_ifindex;
	close(s);
	return ret;
}

/* Moves the link into the network namespace nsfd names. */
static int link_move(int ifindex, int nsfd)
{
	struct nlreq r = {0};
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
	uint32_t fd = nsfd;

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(*ifi));
	r.h.nlmsg_type = RTM_NEWLINK;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	nl_attr(&r, IFLA_NET_NS_FD, &fd, sizeof(fd));
	return nl_talk(&r.h);
}

static int addr_change(int ifindex, const struct net_cidr *c, bool add)
{
	struct nlreq r = {0};
	struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);
	size_t alen = c->family == AF_INET ? 4 : 16;

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(*ifa));
	r.h.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	if (add)
		r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	ifa->ifa_family = c->family;
	ifa->ifa_prefixlen = c->prefix;
	ifa->ifa_index = ifindex;
	nl_attr(&r, IFA_LOCAL, c->addr, alen);
	nl_attr(&r, IFA_ADDRESS, c->addr, alen);
	return nl_talk(&r.h);
}

/* A route to dst (prefix 0: the default route) through via, or on the link. */
static int route_change(int ifindex, const struct net_cidr *dst, const struct net_cidr *via,
			bool add)
{
	struct nlreq r = {0};
	struct rtmsg *rt = NLMSG_DATA(&r.h);
	size_t alen = dst->family == AF_INET ? 4 : 16;

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(*rt));
	r.h.nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	if (add)
		r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	rt->rtm_family = dst->family;
	rt->rtm_dst_len = dst->prefix;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rt->rtm_type = RTN_UNICAST;
	if (dst->prefix)
		nl_attr(&r, RTA_DST, dst->addr, alen);
	if (via)
		nl_attr(&r, RTA_GATEWAY, via->addr, alen);
	nl_attr(&r, RTA_OIF, &ifindex, sizeof(ifindex));
	return nl_talk(&r.h);
}

/* ---- finding the interface ---------------------------------------------------------------- */

/* The interface carrying mac: its name and index, or -ENOENT. */
static int find_by_mac(const uint8_t mac[6], char name[IFNAMSIZ], int *ifindex)
{
	char path[512], buf[64];
	struct dirent *e;
	uint8_t m[6];
	DIR *d;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "%s/class/net", sysfs);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ)
			continue;
		snprintf(path, sizeof(path), "%s/class/net/%s/address", sysfs, e->d_name);
		if (gcs_read_line(path, buf, sizeof(buf)) || net_parse_mac(buf, m) ||
		    memcmp(m, mac, 6))
			continue;
		snprintf(path, sizeof(path), "%s/class/net/%s/ifindex", sysfs, e->d_name);
		if (gcs_read_line(path, buf, sizeof(buf)))
			continue;
		snprintf(name, IFNAMSIZ, "%s", e->d_name);
		*ifindex = atoi(buf);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

static int wait_for_mac(const uint8_t mac[6], long timeout_ms, char name[IFNAMSIZ], int *ifindex)
{
	long deadline = gcs_now_ms() + timeout_ms;
	char path[256];

	if (!find_by_mac(mac, name, ifindex))
		return 0;
	snprintf(path, sizeof(path), "%s/bus/pci/rescan", sysfs);
	gcs_write_str(path, "1");
	while (gcs_now_ms() < deadline) {
		if (!find_by_mac(mac, name, ifindex))
			return 0;
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
	return -ETIMEDOUT;
}

/* ---- the configuration -------------------------------------------------------------------- */

static struct gnic *gnic_find(const uint8_t mac[6])
{
	for (int i = 0; i < NET_MAX_NICS; i++)
		if (nics[i].used && !memcmp(nics[i].mac, mac, 6))
			return &nics[i];
	return NULL;
}

/* Parses an array of CIDR strings (bare addresses when bare) into out; -EINVAL names it. */
static int parse_list(const cJSON *a, const char *what, int bare, struct net_cidr *out, int *n,
		      char *err, size_t errlen)
{
	const cJSON *x;

	*n = 0;
	if (!a)
		return 0;
	if (!cJSON_IsArray(a))
		goto bad;
	cJSON_ArrayForEach(x, a)
	{
		if (*n >= NET_MAX_ITEMS || !cJSON_IsString(x) ||
		    net_parse_cidr(x->valuestring, bare, &out[*n]))
			goto bad;
		(*n)++;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: expected at most %d %s", what, NET_MAX_ITEMS,
		 bare ? "addresses" : "ADDR/PREFIX strings");
	return -EINVAL;
}

static int write_resolv_conf(void)
{
	char tmp[256], a[INET6_ADDRSTRLEN];
	FILE *f;
	bool any = false;

	for (int i = 0; i < NET_MAX_NICS; i++)
		any |= nics[i].used && nics[i].nr_dns;
	if (!any)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", resolv_conf);
	/* The initrd may come without /etc. */
	if (!strcmp(resolv_conf, RESOLV_CONF) && mkdir("/etc", 0755) && errno != EEXIST)
		return -errno;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "# written by the uvm-shim guest agent\n");
	for (int i = 0; i < NET_MAX_NICS; i++)
		for (int k = 0; nics[i].used && k < nics[i].nr_dns; k++)
			if (inet_ntop(nics[i].dns[k].family, nics[i].dns[k].addr, a, sizeof(a)))
				fprintf(f, "nameserver %s\n", a);
	if (fclose(f))
		return -errno;
	return rename(tmp, resolv_conf) ? -errno : 0;
}

/*
 * Applies the fields present in body to the interface; what is absent stays.
 * addresses/routes replace what the agent set before (the rest is left alone).
 */
static int apply(struct gnic *g, int ifindex, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(body, "addresses");
	const cJSON *routes = cJSON_GetObjectItemCaseSensitive(body, "routes");
	const cJSON *gw = cJSON_GetObjectItemCaseSensitive(body, "gateway");
	const cJSON *dns = cJSON_GetObjectItemCaseSensitive(body, "dns");
	const cJSON *mtu = cJSON_GetObjectItemCaseSensitive(body, "mtu");
	struct net_cidr na[NET_MAX_ITEMS], nd[NET_MAX_ITEMS], rd[NET_MAX_ITEMS], rv[NET_MAX_ITEMS];
	bool rhv[NET_MAX_ITEMS] = {0};
	int nna = 0, nnd = 0, nr = 0, ret;
	const cJSON *x;

	if (parse_list(addrs, "addresses", 0, na, &nna, err, errlen) ||
	    parse_list(dns, "dns", 1, nd, &nnd, err, errlen))
		return -EINVAL;
	if (mtu && (!cJSON_IsNumber(mtu) || mtu->valuedouble < 68 || mtu->valuedouble > 65535)) {
		snprintf(err, errlen, "mtu: expected 68..65535");
		return -EINVAL;
	}
	if (routes && !cJSON_IsArray(routes)) {
		snprintf(err, errlen, "routes: expected an array");
		return -EINVAL;
	}
	cJSON_ArrayForEach(x, routes)
	{
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(x, "dst");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "via");

		if (nr >= NET_MAX_ITEMS - 1 || !cJSON_IsString(d) ||
		    net_parse_cidr(d->valuestring, 0, &rd[nr]) ||
		    (v && (!cJSON_IsString(v) || net_parse_cidr(v->valuestring, 1, &rv[nr])))) {
			snprintf(err, errlen, "routes[%d]: expected {\"dst\": CIDR, \"via\": IP}",
				 nr);
			return -EINVAL;
		}
		rhv[nr++] = v != NULL;
	}
	/* A new gateway alone keeps the routes set before. */
	if (!routes && gw) {
		for (int i = 0; i < g->nr_routes && nr < NET_MAX_ITEMS - 1; i++) {
			if (!g->route_dst[i].prefix)
				continue;
			rd[nr] = g->route_dst[i];
			rv[nr] = g->route_via[i];
			rhv[nr++] = g->route_has_via[i];
		}
	}
	/* The default route is one more route, through the gateway. */
	if (cJSON_IsString(gw)) {
		if (net_parse_cidr(gw->valuestring, 1, &rv[nr])) {
			snprintf(err, errlen, "gateway: not an IP address");
			return -EINVAL;
		}
		memset(&rd[nr], 0, sizeof(rd[nr]));
		rd[nr].family = rv[nr].family;
		rhv[nr++] = true;
	}
	if (mtu && (ret = link_set(ifindex, -1, (unsigned)mtu->valuedouble))) {
		snprintf(err, errlen, "setting MTU %d on %s: %s", (int)mtu->valuedouble, g->ifname,
			 strerror(-ret));
		return ret;
	}
	ret = link_set(ifindex, 1, 0);
	if (ret) {
		snprintf(err, errlen, "setting %s up: %s", g->ifname, strerror(-ret));
		return ret;
	}
	if (addrs) {
		for (int i = 0; i < g->nr_addrs; i++)
			addr_change(ifindex, &g->addrs[i], false);
		g->nr_addrs = 0;
		for (int i = 0; i < nna; i++) {
			ret = addr_change(ifindex, &na[i], true);
			if (ret) {
				snprintf(err, errlen, "address %d on %s: %s", i, g->ifname,
					 strerror(-ret));
				return ret;
			}
			g->addrs[g->nr_addrs++] = na[i];
		}
	}
	if (routes || gw) {
		for (int i = 0; i < g->nr_routes; i++)
			route_change(ifindex, &g->route_dst[i],
				     g->route_has_via[i] ? &g->route_via[i] : NULL, false);
		g->nr_routes = 0;
		for (int i = 0; i < nr; i++) {
			ret = route_change(ifindex, &rd[i], rhv[i] ? &rv[i] : NULL, true);
			if (ret) {
				snprintf(err, errlen, "route %d on %s: %s", i, g->ifname,
					 strerror(-ret));
				return ret;
			}
			g->route_dst[g->nr_routes] = rd[i];
			g->route_via[g->nr_routes] = rv[i];
			g->route_has_via[g->nr_routes++] = rhv[i];
		}
	}
	if (dns) {
		memcpy(g->dns, nd, sizeof(nd[0]) * nnd);
		g->nr_dns = nnd;
		ret = write_resolv_conf();
		if (ret) {
			snprintf(err, errlen, "%s: %s", resolv_conf, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int body_mac(const cJSON *body, uint8_t mac[6], char *err, size_t errlen)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "mac");

	if (!cJSON_IsString(m) || net_parse_mac(m->valuestring, mac)) {
		snprintf(err, errlen, "mac: expected a unicast MAC address");
		return -EINVAL;
	}
	return 0;
}

static int unplug(const uint8_t mac[6], const char *name, int ifindex, long deadline, char *err,
		  size_t errlen);

/*
 * With "netns" (add): the link moves into that named namespace first and is
 * configured there (the agent's thread enters it for the netlink requests).
 * A NIC already in one is configured there (update).
 */
static int netns_apply(struct gnic *g, int ifindex, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(body, "netns");
	int fd, saved, ret;

	if (ns && !g->netns[0]) {
		if (!cJSON_IsString(ns) || gcs_netns_path(ns->valuestring, NULL, 0)) {
			snprintf(err, errlen, "netns: a namespace name");
			return -EINVAL;
		}
		fd = gcs_netns_open(ns->valuestring);
		if (fd < 0) {
			snprintf(err, errlen, "netns %s: %s", ns->valuestring, strerror(-fd));
			return fd;
		}
		ret = link_move(ifindex, fd);
		close(fd);
		if (ret) {
			snprintf(err, errlen, "moving %s into netns %s: %s", g->ifname,
				 ns->valuestring, strerror(-ret));
			return ret;
		}
		snprintf(g->netns, sizeof(g->netns), "%s", ns->valuestring);
	}
	if (!g->netns[0])
		return apply(g, ifindex, body, err, errlen);
	ret = gcs_netns_enter(g->netns, &saved);
	if (ret) {
		snprintf(err, errlen, "netns %s: %s", g->netns, strerror(-ret));
		return ret;
	}
	ifindex = ifindex_of(g->ifname);
	ret = ifindex ? apply(g, ifindex, body, err, errlen) : -ENODEV;
	if (!ifindex)
		snprintf(err, errlen, "%s is not in netns %s", g->ifname, g->netns);
	gcs_netns_leave(saved);
	return ret;
}

/* A NIC in a named namespace comes back to the agent's (then sysfs sees it again). */
static void netns_return(struct gnic *g)
{
	int saved, root, ifindex;

	if (!g || !g->netns[0])
		return;
	root = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (root >= 0 && !gcs_netns_enter(g->netns, &saved)) {
		ifindex = ifindex_of(g->ifname);
		if (ifindex && link_move(ifindex, root))
			gcs_log("net: %s stays in netns %s", g->ifname, g->netns);
		gcs_netns_leave(saved);
	}
	if (root >= 0)
		close(root);
	g->netns[0] = '\0';
}

int gcs_net_add(const cJSON *body, char *ifname, size_t len, char *err, size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout_ms");
	long timeout = cJSON_IsNumber(t) && t->valuedouble > 0 ? (long)t->valuedouble : 30000;
	struct gnic *g = NULL;
	uint8_t mac[6];
	int ifindex, ret;

	if (body_mac(body, mac, err, errlen))
		return -EINVAL;
	if (gnic_find(mac)) {
		snprintf(err, errlen, "a NIC with this MAC is already configured");
		return -EEXIST;
	}
	for (int i = 0; i < NET_MAX_NICS && !g; i++)
		if (!nics[i].used)
			g = &nics[i];
	if (!g) {
		snprintf(err, errlen, "at most %d NICs", NET_MAX_NICS);
		return -ENOSPC;
	}
	memset(g, 0, sizeof(*g));
	memcpy(g->mac, mac, 6);
	ret = wait_for_mac(mac, timeout, g->ifname, &ifindex);
	if (ret) {
		snprintf(err, errlen, "no interface with this MAC appeared within %ld ms", timeout);
		return ret;
	}
	g->used = true;
	ret = netns_apply(g, ifindex, body, err, errlen);
	if (ret) {
		char why[128];

		/* As for disks: the function goes again, so the host can unplug it safely. */
		g->used = false;
		if (unplug(mac, g->ifname, ifindex, gcs_now_ms() + timeout, why, sizeof(why)))
			gcs_log("net: %s: %s", g->ifname, why);
		return ret;
	}
	snprintf(ifname, len, "%s", g->ifname);
	gcs_log("net: %s configured", g->ifname);
	return 0;
}

int gcs_net_update(const cJSON *body, char *err, size_t errlen)
{
	struct gnic *g;
	uint8_t mac[6];
	int ifindex;

	if (body_mac(body, mac, err, errlen))
		return -EINVAL;
	g = gnic_find(mac);
	if (g && g->netns[0])
		return netns_apply(g, 0, body, err, errlen);
	if (!g || find_by_mac(mac, g->ifname, &ifindex)) {
		snprintf(err, errlen, "no configured NIC with this MAC");
		return -ENOENT;
	}
	return apply(g, ifindex, body, err, errlen);
}

/* Takes the interface down and removes its PCI function; waits until it is gone. */
static int unplug(const uint8_t mac[6], const char *name, int ifindex, long deadline, char *err,
		  size_t errlen)
{
	char path[512], left[IFNAMSIZ];
	int ret;

	link_set(ifindex, 0, 0);
	/* device is the virtio device; the PCI function (with "remove") is its parent. */
	snprintf(path, sizeof(path), "%s/class/net/%s/device/../remove", sysfs, name);
	ret = gcs_write_str(path, "1");
	if (ret == -ENOENT) {
		snprintf(path, sizeof(path), "%s/class/net/%s/device/remove", sysfs, name);
		ret = gcs_write_str(path, "1");
	}
	if (ret) {
		snprintf(err, errlen, "removing the PCI function of %s: %s", name, strerror(-ret));
		return ret;
	}
	while (!find_by_mac(mac, left, &ifindex)) {
		if (gcs_now_ms() > deadline) {
			snprintf(err, errlen, "%s did not go away", name);
			return -ETIMEDOUT;
		}
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
	return 0;
}

int gcs_net_remove(const cJSON *body, char *err, size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout_ms");
	long deadline =
	    gcs_now_ms() + (cJSON_IsNumber(t) && t->valuedouble > 0 ? (long)t->valuedouble : 30000);
	char name[IFNAMSIZ];
	struct gnic *g;
	uint8_t mac[6];
	int ifindex, ret;

	if (body_mac(body, mac, err, errlen))
		return -EINVAL;
	g = gnic_find(mac);
	netns_return(g);
	if (find_by_mac(mac, name, &ifindex)) {
		/* Already gone from the guest: nothing holds the function. */
		if (g)
			g->used = false;
		return 0;
	}
	ret = unplug(mac, name, ifindex, deadline, err, errlen);
	if (ret)
		return ret;
	if (g) {
		g->used = false;
		g->nr_dns = 0;
		write_resolv_conf();
	}
	gcs_log("net: %s removed", name);
	return 0;
}

void gcs_net_set_paths(const char *sys, const char *resolv)
{
	sysfs = sys;
	resolv_conf = resolv;
}

