/* The vpmem resource manager (see vpmem.h): numbers, hot-add and hot-remove of pmem layers. */
#include "shim/vpmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "virtio/pmem.h"
#include "virtio/virtio.h"
#include "vmm/io_thread.h"
#include "vmm/log.h"

#define TAG "vpmem"

/* ---- parameters ------------------------------------------------------------------- */

int vpmem_parse_limits(const cJSON *params, unsigned *count, uint64_t *max_bytes,
		       char err[CTL_ERRLEN])
{
	uint64_t c = VPMEM_DEFAULT_COUNT, m = VPMEM_DEFAULT_MAX_BYTES;

	if (ctl_param_u64(params, "vpmem_count", false, 0, VPMEM_MAX_COUNT, &c, err) == -EINVAL ||
	    ctl_param_u64(params, "vpmem_max_bytes", false, 4096, VPMEM_MAX_MAX_BYTES, &m, err) ==
		-EINVAL)
		return -EINVAL;
	if (m % 4096) {
		snprintf(err, CTL_ERRLEN, "params.vpmem_max_bytes: not a multiple of 4096");
		return -EINVAL;
	}
	*count = c;
	*max_bytes = m;
	return 0;
}

static int parse_number(const cJSON *params, unsigned count, bool required, int *out,
			char err[CTL_ERRLEN])
{
	uint64_t v;
	int ret;

	*out = -1;
	if (!count) {
		snprintf(err, CTL_ERRLEN,
			 "vpmem is off for this VM (vm.create's vpmem_count is 0)");
		return -EINVAL;
	}
	ret = ctl_param_u64(params, "device", required, 0, count - 1, &v, err);
	if (ret == -EINVAL)
		return -EINVAL;
	if (ret == 0)
		*out = (int)v;
	return 0;
}

int vpmem_parse_add(const cJSON *params, unsigned count, struct vpmem_params *p,
		    char err[CTL_ERRLEN])
{
	memset(p, 0, sizeof(*p));
	p->fs_type = "ext4";
	p->timeout_ms = VPMEM_DEFAULT_TIMEOUT;
	if (!cJSON_IsObject(params)) {
		snprintf(err, CTL_ERRLEN, "params: expected an object");
		return -EINVAL;
	}
	if (parse_number(params, count, false, &p->number, err))
		return -EINVAL;
	if (ctl_param_str(params, "host_path", true, &p->host_path, err))
		return -EINVAL;
	if (!p->host_path[0]) {
		snprintf(err, CTL_ERRLEN, "params.host_path: empty");
		return -EINVAL;
	}
	if (ctl_param_bool(params, "read_only", false, &p->read_only, err) == -EINVAL ||
	    ctl_param_str(params, "guest_path", false, &p->guest_path, err) == -EINVAL ||
	    ctl_param_str(params, "fs_type", false, &p->fs_type, err) == -EINVAL ||
	    ctl_param_u64(params, "timeout_ms", false, 1, 3600000, &p->timeout_ms, err) == -EINVAL)
		return -EINVAL;
	if (p->guest_path && p->guest_path[0] != '/') {
		snprintf(err, CTL_ERRLEN, "params.guest_path: expected an absolute path");
		return -EINVAL;
	}
	if (strcmp(p->fs_type, "ext4") && strcmp(p->fs_type, "erofs")) {
		snprintf(err, CTL_ERRLEN, "params.fs_type: expected \"ext4\" or \"erofs\"");
		return -EINVAL;
	}
	if (!strcmp(p->fs_type, "erofs") && !p->read_only) {
		snprintf(err, CTL_ERRLEN, "params.read_only: erofs is read-only, set it to true");
		return -EINVAL;
	}
	return scsi_parse_options(params, p->options, err);
}

int vpmem_parse_remove(const cJSON *params, unsigned count, unsigned *number, char err[CTL_ERRLEN])
{
	int n;

	if (!cJSON_IsObject(params)) {
		snprintf(err, CTL_ERRLEN, "params: expected an object");
		return -EINVAL;
	}
	if (parse_number(params, count, true, &n, err))
		return -EINVAL;
	*number = n;
	return 0;
}

/* ---- numbers ---------------------------------------------------------------------- */

void vpmem_init(struct vpmem *vp, unsigned count, uint64_t max_bytes)
{
	memset(vp, 0, sizeof(*vp));
	vp->count = count > VPMEM_MAX_COUNT ? VPMEM_MAX_COUNT : count;
	vp->max_bytes = max_bytes;
	for (int i = 0; i < VPMEM_MAX_COUNT; i++) {
		vp->devs[i].owner = vp;
		vp->devs[i].number = i;
	}
}

struct vpmem_dev *vpmem_find(struct vpmem *vp, unsigned number)
{
	if (number >= vp->count || vp->devs[number].state == VPMEM_FREE)
		return NULL;
	return &vp->devs[number];
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *r;

	if (!s)
		return NULL;
	r = strdup(s);
	if (!r)
		*oom = true;
	return r;
}

int vpmem_reserve(struct vpmem *vp, const struct vpmem_params *p, struct vpmem_dev **out)
{
	struct vpmem_dev *d = NULL;
	bool oom = false;

	*out = NULL;
	if (p->number >= 0) {
		if ((unsigned)p->number >= vp->count)
			return -ENOSPC;
		if (vp->devs[p->number].state != VPMEM_FREE)
			return -EEXIST;
		d = &vp->devs[p->number];
	}
	for (unsigned i = 0; i < vp->count && !d; i++)
		if (vp->devs[i].state == VPMEM_FREE)
			d = &vp->devs[i];
	if (!d)
		return -ENOSPC;
	d->host_path = dup_or_null(p->host_path, &oom);
	d->guest_path = dup_or_null(p->guest_path, &oom);
	d->fs_type = dup_or_null(p->fs_type, &oom);
	d->options = dup_or_null(p->options, &oom);
	d->read_only = p->read_only;
	d->timeout_ms = p->timeout_ms;
	d->in_guest = d->dax = false;
	d->device[0] = '\0';
	d->dev = NULL;
	d->req = NULL;
	d->state = VPMEM_ADDING;
	if (oom) {
		vpmem_release(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void vpmem_release(struct vpmem_dev *d)
{
	free(d->host_path);
	free(d->guest_path);
	free(d->fs_type);
	free(d->options);
	d->host_path = d->guest_path = d->fs_type = d->options = NULL;
	d->dev = NULL;
	d->req = NULL;
	d->state = VPMEM_FREE;
}

int vpmem_count_used(const struct vpmem *vp)
{
	int n = 0;

	for (int i = 0; i < VPMEM_MAX_COUNT; i++)
		n += vp->devs[i].state != VPMEM_FREE;
	return n;
}

/* ---- the machine ------------------------------------------------------------------- */

void vpmem_bind(struct vpmem *vp, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
		struct io_threads *io, struct mem_slots *slots)
{
	vp->pci = pci;
	vp->mem = mem;
	vp->loop = loop;
	vp->io = io;
	vp->reaper.loop = loop;
	vp->slots = slots;
}

void vpmem_unbind(struct vpmem *vp)
{
	mgr_reap(&vp->reaper);
	for (int i = 0; i < VPMEM_MAX_COUNT; i++) {
		struct vpmem_dev *d = &vp->devs[i];

		if (d->state == VPMEM_FREE)
			continue;
		if (d->req)
			ctl_req_error(d->req, CTL_ERR_CANCELLED, "the VM ended");
		d->req = NULL;
		virtio_dev_destroy(d->dev); /* unplugs, deletes the slot, unmaps */
		vpmem_release(d);
	}
	vp->pci = NULL;
	vp->mem = NULL;
	vp->loop = NULL;
	vp->io = NULL;
	vp->reaper.loop = NULL;
	vp->slots = NULL;
	vp->boot_fn = NULL;
}

static int plug(struct vpmem *vp, struct vpmem_dev *d, char *err, size_t errlen)
{
	struct pmem_config pc = {
	    .path = d->host_path, .read_only = d->read_only, .max_bytes = vp->max_bytes};

	if (!vp->pci || !vp->slots) {
		snprintf(err, errlen, "there is no VM");
		return -ENODEV;
	}
	return virtio_pmem_create(vp->pci, vp->mem, io_threads_pick_or(vp->io, vp->loop), vp->slots,
				  &pc, &d->dev, err, errlen);
}

static int plug_err_code(int ret)
{
	switch (ret) {
	case -ENOENT:
	case -EISDIR:
	case -EINVAL:
	case -EACCES:
	case -EROFS:
	case -EFBIG:
		return CTL_ERR_BAD_PARAMS;
	case -ENOSPC:
	case -EBUSY:
		return CTL_ERR_BUSY;
	default:
		return CTL_ERR_HOST;
	}
}

static int guest_code(int status)
{
	return status == -ETIMEDOUT   ? CTL_ERR_TIMEOUT
	       : status == -ECANCELED ? CTL_ERR_CANCELLED
				      : CTL_ERR_GUEST;
}

static cJSON *dev_result(const struct vpmem_dev *d)
{
	cJSON *r = cJSON_CreateObject();
	uint64_t start = 0, size = 0;

	if (d->dev)
		virtio_pmem_range(d->dev, &start, &size);
	cJSON_AddNumberToObject(r, "device", d->number);
	cJSON_AddNumberToObject(r, "pci_slot", d->dev ? d->dev->pci.slot : -1);
	cJSON_AddNumberToObject(r, "gpa", (double)start);
	cJSON_AddNumberToObject(r, "size", (double)size);
	cJSON_AddBoolToObject(r, "read_only", d->read_only);
	if (d->in_guest)
		cJSON_AddStringToObject(r, "guest_device", d->device);
	else
		cJSON_AddNullToObject(r, "guest_device");
	if (d->guest_path) {
		cJSON_AddStringToObject(r, "guest_path", d->guest_path);
		cJSON_AddBoolToObject(r, "dax", d->dax);
	}
	return r;
}

/* Asks the GCS to find the device by PCI slot and mount it if asked. */
static int guest_add(struct vpmem_dev *d, struct bridge *bridge, bridge_resp_fn fn)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "device", d->number);
	cJSON_AddNumberToObject(b, "pci_slot", d->dev->pci.slot);
	if (d->guest_path) {
		cJSON_AddStringToObject(b, "mount", d->guest_path);
		cJSON_AddStringToObject(b, "fs", d->fs_type);
		cJSON_AddStringToObject(b, "options", d->options ? d->options : "");
	}
	cJSON_AddBoolToObject(b, "read_only", d->read_only);
	cJSON_AddNumberToObject(b, "timeout_ms", (double)d->timeout_ms);
	return bridge_request(
	    bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_PMEM_ADD), b, fn,
	    d);
}

static void note_device(struct vpmem_dev *d, const cJSON *body)
{
	const cJSON *dev = body ? cJSON_GetObjectItemCaseSensitive(body, "device") : NULL;

	if (cJSON_IsString(dev)) {
		snprintf(d->device, sizeof(d->device), "%s", dev->valuestring);
		d->in_guest = true;
	}
	d->dax = body && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "dax"));
}

/* ---- vpmem.add ---------------------------------------------------------------------- */

static void release_cb(void *opaque)
{
	vpmem_release(opaque);
}

/* The guest is done with d: unplugged from the loop, slot freed, then req answered. */
static void retire(struct vpmem_dev *d, struct ctl_req *req, int code, cJSON *result,
		   const char *msg)
{
	d->state = VPMEM_RETIRING;
	d->req = NULL;
	mgr_retire(&d->owner->reaper, d->dev, req, code, result, msg, release_cb, d);
}

static void on_add_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct vpmem_dev *d = opaque;
	struct ctl_req *req = d->req;

	d->req = NULL;
	if (status) {
		/* The GCS took the function out again if it had found it. */
		char msg[256];

		pr_err(TAG, "device %u: the guest failed to attach it: %s", d->number,
		       error ? error : strerror(-status));
		snprintf(msg, sizeof(msg), "the guest could not attach pmem device: %s",
			 error ? error : strerror(-status));
		retire(d, req, guest_code(status), NULL, msg);
		return;
	}
	note_device(d, body);
	d->state = VPMEM_ATTACHED;
	pr_info(TAG, "device %u: attached as %s%s", d->number, d->device, d->dax ? " (dax)" : "");
	if (req)
		ctl_req_result(req, dev_result(d));
}

static void reserve_error(struct ctl_req *req, struct vpmem *vp, const struct vpmem_params *p,
			  int ret)
{
	if (ret == -EEXIST)
		ctl_req_error(req, CTL_ERR_BUSY, "pmem device %d is already attached", p->number);
	else if (ret == -ENOSPC)
		ctl_req_error(req, CTL_ERR_BUSY, "all %u pmem devices are in use (vpmem_count)",
			      vp->count);
	else
		ctl_req_error(req, CTL_ERR_INTERNAL, "%s", strerror(-ret));
}

void vpmem_method_add(struct vpmem *vp, struct bridge *bridge, bool running, struct ctl_req *req)
{
	struct vpmem_params p;
	struct vpmem_dev *d;
	char err[CTL_ERRLEN], why[512];
	int ret;

	if (vpmem_parse_add(req->params, vp->count, &p, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (running && !bridge_ready(bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	ret = vpmem_reserve(vp, &p, &d);
	if (ret) {
		reserve_error(req, vp, &p, ret);
		return;
	}
	ret = plug(vp, d, why, sizeof(why));
	if (ret) {
		vpmem_release(d);
		ctl_req_error(req, plug_err_code(ret), "%s", why);
		return;
	}
	if (!running) {
		/* Cold: the guest finds it at boot (vpmem_boot_attach). */
		d->state = VPMEM_ATTACHED;
		ctl_req_result(req, dev_result(d));
		return;
	}
	d->req = req;
	ret = guest_add(d, bridge, on_add_resp);
	if (ret < 0)
		on_add_resp(d, ret, "cannot send the request to the guest", NULL);
}

/* ---- vpmem.remove ------------------------------------------------------------------- */

static void on_remove_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct vpmem_dev *d = opaque;
	struct ctl_req *req = d->req;
	cJSON *r;

	d->req = NULL;
	if (status && status != -ECANCELED) {
		/* Still in the guest: keep everything, the parent may retry. */
		d->state = VPMEM_ATTACHED;
		if (req)
			ctl_req_error(req, guest_code(status),
				      "the guest could not remove pmem device %u: %s", d->number,
				      error ? error : strerror(-status));
		return;
	}
	/* Only now that the guest let go: unplug, delete the slot, unmap, close (from the loop). */
	if (status) {
		retire(d, req, CTL_ERR_CANCELLED, NULL, "the VM went away during the removal");
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "device", d->number);
	retire(d, req, 0, r, NULL);
}

void vpmem_method_remove(struct vpmem *vp, struct bridge *bridge, bool running, struct ctl_req *req)
{
	struct vpmem_dev *d;
	char err[CTL_ERRLEN];
	unsigned n;
	cJSON *b;
	int ret;

	if (vpmem_parse_remove(req->params, vp->count, &n, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	d = vpmem_find(vp, n);
	if (!d) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no pmem device %u", n);
		return;
	}
	if (d->state != VPMEM_ATTACHED) {
		ctl_req_error(req, CTL_ERR_BUSY, "pmem device %u is being %s", n,
			      d->state == VPMEM_ADDING ? "added" : "removed");
		return;
	}
	if (!running || !d->in_guest) {
		d->req = req;
		on_remove_resp(d, 0, NULL, NULL);
		return;
	}
	if (!bridge_ready(bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "device", n);
	cJSON_AddNumberToObject(b, "pci_slot", d->dev->pci.slot);
	if (d->guest_path)
		cJSON_AddStringToObject(b, "mount", d->guest_path);
	d->state = VPMEM_REMOVING;
	d->req = req;
	ret = bridge_request(
	    bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_PMEM_REMOVE), b,
	    on_remove_resp, d);
	if (ret < 0) {
		d->state = VPMEM_ATTACHED;
		d->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

/* ---- devices present at boot -------------------------------------------------------- */

static void boot_finish_one(struct vpmem *vp)
{
	vpmem_boot_fn fn;

	if (--vp->boot_pending > 0 || !vp->boot_fn)
		return;
	fn = vp->boot_fn;
	vp->boot_fn = NULL;
	fn(vp->boot_opaque, vp->boot_err, vp->boot_msg);
}

static void on_boot_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct vpmem_dev *d = opaque;
	struct vpmem *vp = d->owner;

	if (status && !vp->boot_err) {
		vp->boot_err = status;
		snprintf(vp->boot_msg, sizeof(vp->boot_msg), "pmem device %u (%s): %s", d->number,
			 d->host_path, error ? error : strerror(-status));
	}
	if (!status)
		note_device(d, body);
	d->state = VPMEM_ATTACHED; /* on the bus; the guest may or may not have it */
	boot_finish_one(vp);
}

void vpmem_boot_attach(struct vpmem *vp, struct bridge *bridge, vpmem_boot_fn fn, void *opaque)
{
	vp->boot_fn = fn;
	vp->boot_opaque = opaque;
	vp->boot_err = 0;
	vp->boot_msg[0] = '\0';
	vp->boot_pending = 1; /* held until every request is out */
	for (unsigned i = 0; i < vp->count; i++) {
		struct vpmem_dev *d = &vp->devs[i];

		if (d->state != VPMEM_ATTACHED || d->in_guest)
			continue;
		d->state = VPMEM_ADDING;
		vp->boot_pending++;
		if (guest_add(d, bridge, on_boot_resp) < 0)
			on_boot_resp(d, -ENOTCONN, "cannot send the request to the guest", NULL);
	}
	boot_finish_one(vp);
}
