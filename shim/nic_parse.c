/* nic.add and nic.update parameters (nic.h): checked here, applied by nic.c and the agent. */
#include "shim/nic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "shim/container.h"
#include "virtio/net_hdr.h"

/* User-mode defaults, as QEMU's slirp numbers them: guest, gateway (the host), DNS. */
#define USER_ADDR "10.0.2.15/24"
#define USER_GW	  "10.0.2.2"
#define USER_DNS  "10.0.2.3"

static void ip_format(const struct net_cidr *c, char *buf, size_t len)
{
	if (!inet_ntop(c->family, c->addr, buf, len))
		snprintf(buf, len, "?");
}

/* Fills err and evaluates to -EINVAL. */
#define BAD(err, ...) (snprintf(err, CTL_ERRLEN, __VA_ARGS__), -EINVAL)

/* An array (at most NIC_MAX_ITEMS) of addresses, normalized into out[key]. */
static int parse_addr_list(const cJSON *params, const char *key, int bare, cJSON *out,
			   char err[CTL_ERRLEN])
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(params, key), *x;
	cJSON *arr;
	int i = 0;

	if (!a)
		return 0;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > NIC_MAX_ITEMS)
		return BAD(err, "params.%s: expected an array of at most %d addresses", key,
			   NIC_MAX_ITEMS);
	arr = cJSON_AddArrayToObject(out, key);
	cJSON_ArrayForEach(x, a)
	{
		struct net_cidr c;
		char buf[64];

		if (!cJSON_IsString(x) || net_parse_cidr(x->valuestring, bare, &c))
			return BAD(err,
				   bare ? "params.%s[%d]: expected an IP address"
					: "params.%s[%d]: expected ADDR/PREFIX (\"10.0.0.2/24\")",
				   key, i);
		if (bare)
			ip_format(&c, buf, sizeof(buf));
		else
			net_cidr_format(&c, buf, sizeof(buf));
		cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
		i++;
	}
	return 0;
}

/* mtu, addresses, gateway, routes, dns: whichever are present, into guest. */
static int parse_guest_fields(const cJSON *params, cJSON *guest, char err[CTL_ERRLEN])
{
	const cJSON *gw = cJSON_GetObjectItemCaseSensitive(params, "gateway");
	const cJSON *routes = cJSON_GetObjectItemCaseSensitive(params, "routes"), *x;
	uint64_t mtu;
	int ret, i = 0;

	ret = ctl_param_u64(params, "mtu", false, NET_MTU_MIN, NET_MTU_MAX, &mtu, err);
	if (ret == -EINVAL)
		return ret;
	if (!ret)
		cJSON_AddNumberToObject(guest, "mtu", (double)mtu);
	if (parse_addr_list(params, "addresses", 0, guest, err) ||
	    parse_addr_list(params, "dns", 1, guest, err))
		return -EINVAL;
	if (gw) {
		struct net_cidr c;
		char buf[64];

		if (!cJSON_IsString(gw) || net_parse_cidr(gw->valuestring, 1, &c) ||
		    c.prefix != (c.family == AF_INET ? 32 : 128))
			return BAD(err, "params.gateway: expected an IP address");
		ip_format(&c, buf, sizeof(buf));
		cJSON_AddStringToObject(guest, "gateway", buf);
	}
	if (!routes)
		return 0;
	if (!cJSON_IsArray(routes) || cJSON_GetArraySize(routes) > NIC_MAX_ITEMS)
		return BAD(err, "params.routes: expected an array of at most %d routes",
			   NIC_MAX_ITEMS);
	cJSON *arr = cJSON_AddArrayToObject(guest, "routes");

	cJSON_ArrayForEach(x, routes)
	{
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(x, "dst");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "via");
		struct net_cidr dc, vc;
		cJSON *r;
		char buf[64];

		if (!cJSON_IsString(d) || net_parse_cidr(d->valuestring, 0, &dc) ||
		    (v && (!cJSON_IsString(v) || net_parse_cidr(v->valuestring, 1, &vc) ||
			   vc.family != dc.family)))
			return BAD(
			    err,
			    "params.routes[%d]: expected {\"dst\": \"ADDR/PREFIX\", \"via\": IP}",
			    i);
		r = cJSON_CreateObject();
		net_cidr_format(&dc, buf, sizeof(buf));
		cJSON_AddStringToObject(r, "dst", buf);
		if (v) {
			ip_format(&vc, buf, sizeof(buf));
			cJSON_AddStringToObject(r, "via", buf);
		}
		cJSON_AddItemToArray(arr, r);
		i++;
	}
	return 0;
}

static int parse_id(const cJSON *params, const char **id, char err[CTL_ERRLEN])
{
	if (ctl_param_str(params, "id", true, id, err))
		return -EINVAL;
	if (!**id || strlen(*id) > NIC_ID_MAX ||
	    strspn(*id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		strlen(*id))
		return BAD(err, "params.id: expected 1 to %d letters, digits, '.', '_' or '-'",
			   NIC_ID_MAX);
	return 0;
}

/* The first IPv4 address of guest.addresses, and the gateway: what passt is told. */
static int user_addresses(struct nic_params *p, char err[CTL_ERRLEN])
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(p->guest, "addresses"), *x;
	const cJSON *gw = cJSON_GetObjectItemCaseSensitive(p->guest, "gateway");
	bool found = false;

	cJSON_ArrayForEach(x, a)
	{
		if (!net_parse_cidr(x->valuestring, 0, &p->user_addr) &&
		    p->user_addr.family == AF_INET) {
			found = true;
			break;
		}
	}
	if (!found)
		return BAD(err, "params.addresses: user networking needs an IPv4 address");
	if (net_parse_cidr(gw->valuestring, 1, &p->user_gw) || p->user_gw.family != AF_INET)
		return BAD(err, "params.gateway: user networking needs an IPv4 gateway");
	return 0;
}

int nic_parse_add(const cJSON *params, struct nic_params *p, char err[CTL_ERRLEN])
{
	const char *backend, *mac = NULL, *gns = NULL;
	uint64_t timeout = NIC_DEFAULT_TIMEOUT;

	memset(p, 0, sizeof(*p));
	p->mtu = NIC_DEFAULT_MTU;
	if (!cJSON_IsObject(params))
		return BAD(err, "params: expected an object");
	if (parse_id(params, &p->id, err) || ctl_param_str(params, "backend", true, &backend, err))
		return -EINVAL;
	if (!strcmp(backend, "tap"))
		p->backend = NIC_TAP;
	else if (!strcmp(backend, "user"))
		p->backend = NIC_USER;
	else
		return BAD(err, "params.backend: expected \"tap\" or \"user\"");
	if (ctl_param_str(params, "tap", p->backend == NIC_TAP, &p->tap, err) == -EINVAL ||
	    ctl_param_str(params, "netns", false, &p->netns, err) == -EINVAL ||
	    ctl_param_str(params, "mac", false, &mac, err) == -EINVAL ||
	    ctl_param_u64(params, "timeout_ms", false, 1, 3600000, &timeout, err) == -EINVAL)
		return -EINVAL;
	if (p->backend == NIC_USER && (p->tap || p->netns))
		return BAD(err, "params.%s: only with backend \"tap\"", p->tap ? "tap" : "netns");
	if (p->tap && (!*p->tap || strlen(p->tap) > 15 || strchr(p->tap, '/')))
		return BAD(err, "params.tap: expected an interface name (1 to 15 characters)");
	if (p->netns && p->netns[0] != '/')
		return BAD(err, "params.netns: expected an absolute path");
	if (mac) {
		if (net_parse_mac(mac, p->mac))
			return BAD(err, "params.mac: expected a unicast MAC address "
					"(\"02:00:00:00:00:01\")");
		p->has_mac = true;
	}
	p->timeout_ms = timeout;
	p->guest = cJSON_CreateObject();
	if (!p->guest)
		return BAD(err, "out of memory");
	if (parse_guest_fields(params, p->guest, err))
		goto fail;
	/* A guest network namespace (netns.add) the agent moves the NIC into. */
	if (ctl_param_str(params, "guest_netns", false, &gns, err) == -EINVAL)
		goto fail;
	if (gns && !container_id_valid(gns)) {
		snprintf(err, CTL_ERRLEN, "params.guest_netns: a namespace name from netns.add");
		goto fail;
	}
	if (gns)
		cJSON_AddStringToObject(p->guest, "netns", gns);
	if (!cJSON_GetObjectItemCaseSensitive(p->guest, "mtu"))
		cJSON_AddNumberToObject(p->guest, "mtu", NIC_DEFAULT_MTU);
	p->mtu = (uint16_t)cJSON_GetObjectItemCaseSensitive(p->guest, "mtu")->valuedouble;
	if (p->backend == NIC_USER) {
		/* passt answers as the gateway and forwards DNS: the guest needs these three. */
		if (!cJSON_GetObjectItemCaseSensitive(p->guest, "addresses"))
			cJSON_AddItemToArray(cJSON_AddArrayToObject(p->guest, "addresses"),
					     cJSON_CreateString(USER_ADDR));
		if (!cJSON_GetObjectItemCaseSensitive(p->guest, "gateway"))
			cJSON_AddStringToObject(p->guest, "gateway", USER_GW);
		if (!cJSON_GetObjectItemCaseSensitive(p->guest, "dns"))
			cJSON_AddItemToArray(cJSON_AddArrayToObject(p->guest, "dns"),
					     cJSON_CreateString(USER_DNS));
		if (user_addresses(p, err))
			goto fail;
	}
	cJSON_AddNumberToObject(p->guest, "timeout_ms", (double)timeout);
	return 0;
fail:
	nic_params_free(p);
	return -EINVAL;
}

void nic_params_free(struct nic_params *p)
{
	cJSON_Delete(p->guest);
	p->guest = NULL;
}

int nic_parse_update(const cJSON *params, const char **id, int *link, cJSON **guest,
		     char err[CTL_ERRLEN])
{
	bool up;
	int ret;

	*link = -1;
	*guest = NULL;
	if (!cJSON_IsObject(params))
		return BAD(err, "params: expected an object");
	if (parse_id(params, id, err))
		return -EINVAL;
	ret = ctl_param_bool(params, "link_up", false, &up, err);
	if (ret == -EINVAL)
		return ret;
	if (!ret)
		*link = up;
	*guest = cJSON_CreateObject();
	if (!*guest || parse_guest_fields(params, *guest, err)) {
		cJSON_Delete(*guest);
		*guest = NULL;
		return -EINVAL;
	}
	if (!(*guest)->child) {
		cJSON_Delete(*guest);
		*guest = NULL;
		if (*link < 0)
			return BAD(err, "params: nothing to update (link_up, mtu, addresses, "
					"gateway, routes, dns)");
	}
	return 0;
}
