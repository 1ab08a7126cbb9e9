/* The NIC manager (see nic.h): slots, backends, hot-add, hot-remove, update. */
#include "shim/nic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "virtio/net.h"
#include "vmm/log.h"
#include "vmm/host_open.h"
#include "vmm/io_thread.h"

#define TAG "nic"

/* ---- slots ------------------------------------------------------------------------ */

void nic_init(struct nic_mgr *nm)
{
	memset(nm, 0, sizeof(*nm));
	for (int i = 0; i < NIC_MAX; i++)
		nm->nics[i].owner = nm;
}

struct nic *nic_find(struct nic_mgr *nm, const char *id)
{
	for (int i = 0; i < NIC_MAX; i++)
		if (nm->nics[i].state != NIC_FREE && !strcmp(nm->nics[i].id, id))
			return &nm->nics[i];
	return NULL;
}

static struct nic *find_mac(struct nic_mgr *nm, const uint8_t mac[6])
{
	for (int i = 0; i < NIC_MAX; i++)
		if (nm->nics[i].state != NIC_FREE && !memcmp(nm->nics[i].mac, mac, 6))
			return &nm->nics[i];
	return NULL;
}

int nic_count(const struct nic_mgr *nm)
{
	int n = 0;

	for (int i = 0; i < NIC_MAX; i++)
		n += nm->nics[i].state != NIC_FREE;
	return n;
}

static void release(struct nic *n)
{
	cJSON_Delete(n->guest);
	free(n->tap);
	n->guest = NULL;
	n->tap = NULL;
	n->dev = NULL;
	n->req = NULL;
	n->state = NIC_FREE;
}

/*
 * Takes a slot for p (state NIC_ADDING; p->guest moves into it). A MAC is
 * generated when none was given. -EEXIST (id or MAC taken, err says which),
 * -ENOSPC.
 */
static int reserve(struct nic_mgr *nm, struct nic_params *p, struct nic **out, char *err,
		   size_t errlen)
{
	struct nic *n = NULL;

	if (nic_find(nm, p->id)) {
		snprintf(err, errlen, "params.id: a NIC '%s' exists already", p->id);
		return -EEXIST;
	}
	if (p->has_mac && find_mac(nm, p->mac)) {
		snprintf(err, errlen, "params.mac: another NIC has this MAC");
		return -EEXIST;
	}
	for (int i = 0; i < NIC_MAX && !n; i++)
		if (nm->nics[i].state == NIC_FREE)
			n = &nm->nics[i];
	if (!n) {
		snprintf(err, errlen, "at most %d NICs", NIC_MAX);
		return -ENOSPC;
	}
	memset(n, 0, sizeof(*n));
	n->owner = nm;
	snprintf(n->id, sizeof(n->id), "%s", p->id);
	if (p->has_mac)
		memcpy(n->mac, p->mac, 6);
	else
		do
			net_mac_generate(n->mac);
		while (find_mac(nm, n->mac));
	net_mac_format(n->mac, n->mac_str);
	n->backend = p->backend;
	n->tap = p->tap ? strdup(p->tap) : NULL;
	n->link_up = true;
	n->guest = p->guest;
	p->guest = NULL;
	cJSON_AddStringToObject(n->guest, "mac", n->mac_str);
	n->state = NIC_ADDING;
	*out = n;
	return 0;
}

/* ---- backends and the device --------------------------------------------------------- */

static int open_backend(const struct nic_params *p, struct net_backend **be, char *err,
			size_t errlen)
{
	int ret;

	if (p->backend == NIC_USER) {
		char addr[64], gw[64];
		struct net_passt_config pc = {
		    .addr = addr, .prefix = p->user_addr.prefix, .gw = gw, .mtu = p->mtu};

		net_cidr_format(&p->user_addr, addr, sizeof(addr));
		*strchr(addr, '/') = '\0';
		net_cidr_format(&p->user_gw, gw, sizeof(gw));
		*strchr(gw, '/') = '\0';
		ret = net_passt_start(&pc, be);
		if (ret == -ENOENT)
			snprintf(err, errlen,
				 "params.backend: user networking needs passt, which "
				 "is not installed (Debian package passt)");
		else if (ret)
			snprintf(err, errlen, "params.backend: starting passt: %s", strerror(-ret));
		return ret;
	}
	if (p->netns) {
		int fd = host_open(p->netns, O_RDONLY, 0); /* the opener's, once sandboxed */

		if (fd < 0) {
			snprintf(err, errlen, "params.netns: %s: %s", p->netns, strerror(-fd));
			return fd;
		}
		close(fd);
	}
	ret = net_tap_open(p->tap, p->netns, be);
	if (ret == -ENOENT)
		snprintf(err, errlen, "params.tap: no tap named '%s'%s%s", p->tap,
			 p->netns ? " in " : "", p->netns ? p->netns : "");
	else if (ret == -EBUSY)
		snprintf(err, errlen, "params.tap: '%s' is in use by another process", p->tap);
	else if (ret == -EINVAL && p->netns)
		snprintf(err, errlen, "params.netns: %s is not a network namespace", p->netns);
	else if (ret == -EPERM)
		snprintf(err, errlen,
			 "params.%s: not permitted (once the VM runs the shim has no "
			 "capabilities: give taps and namespaces at vm.create)",
			 p->netns ? "netns" : "tap");
	else if (ret)
		snprintf(err, errlen, "params.tap: '%s': %s", p->tap, strerror(-ret));
	return ret;
}

static int plug(struct nic_mgr *nm, struct nic *n, const struct nic_params *p, char *err,
		size_t errlen)
{
	struct net_config cfg = {.link_up = true};
	struct net_backend *be;
	int ret;

	if (!nm->pci) {
		snprintf(err, errlen, "there is no VM");
		return -ENODEV;
	}
	ret = open_backend(p, &be, err, errlen);
	if (ret)
		return ret;
	memcpy(cfg.mac, n->mac, 6);
	/* No VIRTIO_NET_F_MTU: it would cap the guest at this MTU; the agent sets it. */
	/* Its kicks and its backend fd are served on an I/O thread, never the control loop. */
	ret = virtio_net_create(nm->pci, nm->mem, io_threads_pick_or(nm->io, nm->loop), &cfg, be,
				&n->dev);
	if (ret) {
		n->dev = NULL;
		snprintf(err, errlen, "cannot plug the NIC: %s", strerror(-ret));
	}
	return ret;
}

static int err_code(int ret)
{
	return ret == -ENOENT || ret == -EINVAL || ret == -EEXIST || ret == -EPERM || ret == -EACCES
		   ? CTL_ERR_BAD_PARAMS
	       : ret == -EBUSY || ret == -ENOSPC ? CTL_ERR_BUSY
						 : CTL_ERR_HOST;
}

static int guest_code(int status)
{
	return status == -ETIMEDOUT   ? CTL_ERR_TIMEOUT
	       : status == -ECANCELED ? CTL_ERR_CANCELLED
				      : CTL_ERR_GUEST;
}

static cJSON *nic_result(const struct nic *n)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "id", n->id);
	cJSON_AddStringToObject(r, "mac", n->mac_str);
	if (n->in_guest)
		cJSON_AddStringToObject(r, "interface", n->ifname);
	else
		cJSON_AddNullToObject(r, "interface");
	cJSON_AddBoolToObject(r, "link_up", n->link_up);
	return r;
}

static int guest_send(struct nic *n, struct bridge *bridge, unsigned rpc, cJSON *body,
		      bridge_resp_fn fn)
{
	return bridge_request(bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, rpc),
			      body, fn, n);
}

static void note_interface(struct nic *n, const cJSON *body)
{
	const cJSON *i = body ? cJSON_GetObjectItemCaseSensitive(body, "interface") : NULL;

	if (cJSON_IsString(i)) {
		snprintf(n->ifname, sizeof(n->ifname), "%s", i->valuestring);
		n->in_guest = true;
	}
}

/* ---- nic.add ------------------------------------------------------------------------ */

static void release_cb(void *opaque)
{
	release(opaque);
}

/* The guest is done with n: unplugged from the loop, slot freed, then req answered. */
static void retire(struct nic *n, struct ctl_req *req, int code, cJSON *result, const char *msg)
{
	n->state = NIC_RETIRING;
	n->req = NULL;
	mgr_retire(&n->owner->reaper, n->dev, req, code, result, msg, release_cb, n);
}

static void on_add_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct nic *n = opaque;
	struct ctl_req *req = n->req;

	n->req = NULL;
	if (status) {
		char msg[256];

		pr_err(TAG, "%s: the guest failed to configure it: %s", n->id,
		       error ? error : strerror(-status));
		snprintf(msg, sizeof(msg), "the guest could not configure the NIC: %s",
			 error ? error : strerror(-status));
		retire(n, req, guest_code(status), NULL, msg);
		return;
	}
	note_interface(n, body);
	n->state = NIC_ATTACHED;
	pr_info(TAG, "%s: %s is %s in the guest", n->id, n->mac_str, n->ifname);
	if (req)
		ctl_req_result(req, nic_result(n));
}

int nic_attach_cold(struct nic_mgr *nm, struct nic_params *p, char *err, size_t errlen, int *code)
{
	struct nic *n;
	int ret = reserve(nm, p, &n, err, errlen);

	if (!ret) {
		ret = plug(nm, n, p, err, errlen);
		if (ret)
			release(n);
		else
			n->state = NIC_ATTACHED;
	}
	*code = ret == -EEXIST ? CTL_ERR_BAD_PARAMS : err_code(ret);
	return ret;
}

void nic_method_add(struct nic_mgr *nm, struct bridge *bridge, bool running, struct ctl_req *req)
{
	struct nic_params p;
	struct nic *n;
	char err[CTL_ERRLEN], why[256];
	int ret, code;

	if (nic_parse_add(req->params, &p, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (running && !bridge_ready(bridge)) {
		nic_params_free(&p);
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	if (running && p.backend == NIC_USER) {
		/* passt would inherit the running shim's seccomp filter and die of it. */
		nic_params_free(&p);
		ctl_req_error(req, CTL_ERR_UNSUPPORTED,
			      "params.backend: a user NIC can only be added before vm.start");
		return;
	}
	if (!running) {
		ret = nic_attach_cold(nm, &p, why, sizeof(why), &code);
		nic_params_free(&p);
		if (ret)
			ctl_req_error(req, code, "%s", why);
		else
			ctl_req_result(req, nic_result(nic_find(nm, p.id)));
		return;
	}
	ret = reserve(nm, &p, &n, why, sizeof(why));
	if (!ret) {
		ret = plug(nm, n, &p, why, sizeof(why));
		if (ret)
			release(n);
	}
	nic_params_free(&p);
	if (ret) {
		ctl_req_error(req, ret == -EEXIST ? CTL_ERR_BAD_PARAMS : err_code(ret), "%s", why);
		return;
	}
	n->req = req;
	ret = guest_send(n, bridge, BRIDGE_RPC_NIC_ADD, cJSON_Duplicate(n->guest, 1), on_add_resp);
	if (ret < 0)
		on_add_resp(n, ret, "cannot send the request to the guest", NULL);
}

/* ---- nic.remove --------------------------------------------------------------------- */

static void on_remove_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct nic *n = opaque;
	struct ctl_req *req = n->req;
	cJSON *r;

	n->req = NULL;
	if (status && status != -ECANCELED) {
		n->state = NIC_ATTACHED; /* still in the guest: the parent may retry */
		if (req)
			ctl_req_error(req, guest_code(status),
				      "the guest could not remove the NIC: %s",
				      error ? error : strerror(-status));
		return;
	}
	/* Only now that the guest let go: unplug and close the backend (from the loop). */
	if (status) {
		retire(n, req, CTL_ERR_CANCELLED, NULL, "the VM went away during the removal");
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "id", n->id);
	retire(n, req, 0, r, NULL);
}

static struct nic *method_target(struct nic_mgr *nm, struct ctl_req *req, const char *id)
{
	struct nic *n = nic_find(nm, id);

	if (!n) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "params.id: no NIC '%s'", id);
		return NULL;
	}
	if (n->state != NIC_ATTACHED) {
		ctl_req_error(req, CTL_ERR_BUSY, "NIC '%s' is being %s", id,
			      n->state == NIC_ADDING	 ? "added"
			      : n->state == NIC_UPDATING ? "updated"
							 : "removed");
		return NULL;
	}
	return n;
}

void nic_method_remove(struct nic_mgr *nm, struct bridge *bridge, bool running, struct ctl_req *req)
{
	const char *id;
	char err[CTL_ERRLEN];
	struct nic *n;
	cJSON *b;
	int ret;

	if (!cJSON_IsObject(req->params) || ctl_param_str(req->params, "id", true, &id, err)) {
		ctl_req_bad_params(req, cJSON_IsObject(req->params) ? err
								    : "params: expected an object");
		return;
	}
	n = method_target(nm, req, id);
	if (!n)
		return;
	n->req = req;
	if (!running || !n->in_guest) {
		on_remove_resp(n, 0, NULL, NULL); /* the guest never had it */
		return;
	}
	if (!bridge_ready(bridge)) {
		n->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "mac", n->mac_str);
	n->state = NIC_REMOVING;
	ret = guest_send(n, bridge, BRIDGE_RPC_NIC_REMOVE, b, on_remove_resp);
	if (ret < 0) {
		n->state = NIC_ATTACHED;
		n->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

/* ---- nic.update --------------------------------------------------------------------- */

static void on_update_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct nic *n = opaque;
	struct ctl_req *req = n->req;

	n->req = NULL;
	n->state = NIC_ATTACHED;
	if (!req)
		return;
	if (status)
		ctl_req_error(req, guest_code(status), "the guest could not update the NIC: %s",
			      error ? error : strerror(-status));
	else
		ctl_req_result(req, nic_result(n));
}

void nic_method_update(struct nic_mgr *nm, struct bridge *bridge, bool running, struct ctl_req *req)
{
	const char *id;
	char err[CTL_ERRLEN];
	cJSON *guest, *x;
	struct nic *n;
	int link, ret;

	if (nic_parse_update(req->params, &id, &link, &guest, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	n = method_target(nm, req, id);
	if (!n) {
		cJSON_Delete(guest);
		return;
	}
	if (guest && (!running || !n->in_guest || !bridge_ready(bridge))) {
		cJSON_Delete(guest);
		ctl_req_error(req, CTL_ERR_GUEST, "NIC '%s' is not configured in the guest", id);
		return;
	}
	if (link >= 0) {
		n->link_up = link;
		virtio_net_set_link(n->dev, link);
	}
	if (!guest) {
		ctl_req_result(req, nic_result(n));
		return;
	}
	/* Remembered for the record; the agent replaces what it set before. */
	cJSON_ArrayForEach(x, guest)
	    cJSON_ReplaceItemInObjectCaseSensitive(n->guest, x->string, cJSON_Duplicate(x, 1));
	cJSON_AddStringToObject(guest, "mac", n->mac_str);
	n->req = req;
	n->state = NIC_UPDATING;
	ret = guest_send(n, bridge, BRIDGE_RPC_NIC_UPDATE, guest, on_update_resp);
	if (ret < 0)
		on_update_resp(n, ret, "cannot send the request to the guest", NULL);
}

/* ---- the machine --------------------------------------------------------------------- */

void nic_bind(struct nic_mgr *nm, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	      struct io_threads *io)
{
	nm->pci = pci;
	nm->mem = mem;
	nm->loop = loop;
	nm->io = io;
	nm->reaper.loop = loop;
}

void nic_unbind(struct nic_mgr *nm)
{
	mgr_reap(&nm->reaper);
	for (int i = 0; i < NIC_MAX; i++) {
		struct nic *n = &nm->nics[i];

		if (n->state == NIC_FREE)
			continue;
		if (n->req)
			ctl_req_error(n->req, CTL_ERR_CANCELLED, "the VM ended");
		n->req = NULL;
		virtio_dev_destroy(n->dev);
		release(n);
	}
	nm->pci = NULL;
	nm->mem = NULL;
	nm->loop = NULL;
	nm->io = NULL;
	nm->reaper.loop = NULL;
	nm->boot_fn = NULL;
}

static void boot_finish_one(struct nic_mgr *nm)
{
	nic_boot_fn fn;

	if (--nm->boot_pending > 0 || !nm->boot_fn)
		return;
	fn = nm->boot_fn;
	nm->boot_fn = NULL;
	fn(nm->boot_opaque, nm->boot_err, nm->boot_msg);
}

static void on_boot_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct nic *n = opaque;
	struct nic_mgr *nm = n->owner;

	if (status && !nm->boot_err) {
		nm->boot_err = status;
		snprintf(nm->boot_msg, sizeof(nm->boot_msg), "NIC %s (%s): %s", n->id, n->mac_str,
			 error ? error : strerror(-status));
	}
	if (!status)
		note_interface(n, body);
	n->state = NIC_ATTACHED;
	boot_finish_one(nm);
}

void nic_boot_attach(struct nic_mgr *nm, struct bridge *bridge, nic_boot_fn fn, void *opaque)
{
	nm->boot_fn = fn;
	nm->boot_opaque = opaque;
	nm->boot_err = 0;
	nm->boot_msg[0] = '\0';
	nm->boot_pending = 1; /* held until every request is out */
	for (int i = 0; i < NIC_MAX; i++) {
		struct nic *n = &nm->nics[i];

		if (n->state != NIC_ATTACHED || n->in_guest)
			continue;
		n->state = NIC_ADDING;
		nm->boot_pending++;
		if (guest_send(n, bridge, BRIDGE_RPC_NIC_ADD, cJSON_Duplicate(n->guest, 1),
			       on_boot_resp) < 0)
			on_boot_resp(n, -ENOTCONN, "cannot send the request to the guest", NULL);
	}
	boot_finish_one(nm);
}

cJSON *nic_stats(struct nic_mgr *nm)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; i < NIC_MAX; i++) {
		struct nic *n = &nm->nics[i];
		struct net_stats st;
		cJSON *o;

		if (n->state == NIC_FREE || !n->dev)
			continue;
		virtio_net_get_stats(n->dev, &st);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", n->id);
		cJSON_AddStringToObject(o, "mac", n->mac_str);
		cJSON_AddBoolToObject(o, "link_up", n->link_up);
		cJSON_AddNumberToObject(o, "rx_packets", (double)st.rx_packets);
		cJSON_AddNumberToObject(o, "rx_bytes", (double)st.rx_bytes);
		cJSON_AddNumberToObject(o, "rx_drops", (double)st.rx_drops);
		cJSON_AddNumberToObject(o, "tx_packets", (double)st.tx_packets);
		cJSON_AddNumberToObject(o, "tx_bytes", (double)st.tx_bytes);
		cJSON_AddNumberToObject(o, "tx_drops", (double)st.tx_drops);
		cJSON_AddNumberToObject(o, "tx_malformed", (double)st.tx_malformed);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}
