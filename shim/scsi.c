/* The scsi resource manager (see scsi.h): slots, serials, hot-add and hot-remove. */
#include "shim/scsi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/manager.h"
#include "virtio/virtio.h"
#include "vmm/io_thread.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "scsi"

/* ---- parameters ------------------------------------------------------------------- */

static int parse_addr(const cJSON *params, unsigned *c, unsigned *l, char err[CTL_ERRLEN])
{
	uint64_t v;
	int ret;

	ret = ctl_param_u64(params, "controller", true, 0, SCSI_MAX_CONTROLLERS - 1, &v, err);
	if (ret)
		return -EINVAL;
	*c = v;
	ret = ctl_param_u64(params, "lun", true, 0, SCSI_MAX_LUNS - 1, &v, err);
	if (ret)
		return -EINVAL;
	*l = v;
	return 0;
}

int scsi_parse_options(const cJSON *params, char out[SCSI_OPTIONS_MAX], char err[CTL_ERRLEN])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "options");
	const cJSON *o;
	size_t len = 0;

	out[0] = '\0';
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) >= SCSI_OPTIONS_MAX)
			goto too_long;
		strcpy(out, v->valuestring);
		return 0;
	}
	if (!cJSON_IsArray(v)) {
		snprintf(err, CTL_ERRLEN,
			 "params.options: expected a string or an array of strings");
		return -EINVAL;
	}
	cJSON_ArrayForEach(o, v)
	{
		size_t n;

		if (!cJSON_IsString(o) || !o->valuestring[0]) {
			snprintf(err, CTL_ERRLEN, "params.options: expected non-empty strings");
			return -EINVAL;
		}
		n = strlen(o->valuestring);
		if (len + n + 2 > SCSI_OPTIONS_MAX)
			goto too_long;
		if (len)
			out[len++] = ',';
		memcpy(out + len, o->valuestring, n + 1);
		len += n;
	}
	return 0;
too_long:
	snprintf(err, CTL_ERRLEN, "params.options: longer than %d bytes", SCSI_OPTIONS_MAX - 1);
	return -EINVAL;
}

int scsi_parse_add(const cJSON *params, struct scsi_params *p, char err[CTL_ERRLEN])
{
	memset(p, 0, sizeof(*p));
	p->fs_type = "ext4";
	p->timeout_ms = SCSI_DEFAULT_TIMEOUT;
	if (!cJSON_IsObject(params)) {
		snprintf(err, CTL_ERRLEN, "params: expected an object");
		return -EINVAL;
	}
	if (parse_addr(params, &p->controller, &p->lun, err))
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
	if (!p->fs_type[0] || strlen(p->fs_type) > 64) {
		snprintf(err, CTL_ERRLEN, "params.fs_type: expected a file system name");
		return -EINVAL;
	}
	return scsi_parse_options(params, p->options, err);
}

int scsi_parse_remove(const cJSON *params, unsigned *controller, unsigned *lun,
		      char err[CTL_ERRLEN])
{
	if (!cJSON_IsObject(params)) {
		snprintf(err, CTL_ERRLEN, "params: expected an object");
		return -EINVAL;
	}
	return parse_addr(params, controller, lun, err);
}

void scsi_serial(unsigned controller, unsigned lun, char out[SCSI_SERIAL_LEN + 1])
{
	snprintf(out, SCSI_SERIAL_LEN + 1, "uvm-c%u-l%u", controller, lun);
}

/* ---- slots ------------------------------------------------------------------------- */

void scsi_init(struct scsi *sc)
{
	memset(sc, 0, sizeof(*sc));
	for (int i = 0; i < SCSI_MAX_DISKS; i++)
		sc->disks[i].owner = sc;
}

struct scsi_disk *scsi_find(struct scsi *sc, unsigned controller, unsigned lun)
{
	for (int i = 0; i < SCSI_MAX_DISKS; i++) {
		struct scsi_disk *d = &sc->disks[i];

		if (d->state != SCSI_FREE && d->controller == controller && d->lun == lun)
			return d;
	}
	return NULL;
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

int scsi_reserve(struct scsi *sc, const struct scsi_params *p, struct scsi_disk **out)
{
	struct scsi_disk *d = NULL;
	bool oom = false;

	*out = NULL;
	if (scsi_find(sc, p->controller, p->lun))
		return -EEXIST;
	for (int i = 0; i < SCSI_MAX_DISKS && !d; i++)
		if (sc->disks[i].state == SCSI_FREE)
			d = &sc->disks[i];
	if (!d)
		return -ENOSPC;
	d->owner = sc;
	d->controller = p->controller;
	d->lun = p->lun;
	scsi_serial(p->controller, p->lun, d->serial);
	d->host_path = dup_or_null(p->host_path, &oom);
	d->guest_path = dup_or_null(p->guest_path, &oom);
	d->fs_type = dup_or_null(p->fs_type, &oom);
	d->options = dup_or_null(p->options, &oom);
	d->read_only = p->read_only;
	d->timeout_ms = p->timeout_ms;
	d->in_guest = false;
	d->device[0] = '\0';
	d->dev = NULL;
	d->req = NULL;
	d->state = SCSI_ADDING;
	if (oom) {
		scsi_release(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void scsi_release(struct scsi_disk *d)
{
	free(d->host_path);
	free(d->guest_path);
	free(d->fs_type);
	free(d->options);
	d->host_path = d->guest_path = d->fs_type = d->options = NULL;
	d->dev = NULL;
	d->req = NULL;
	d->state = SCSI_FREE;
}

int scsi_count(const struct scsi *sc)
{
	int n = 0;

	for (int i = 0; i < SCSI_MAX_DISKS; i++)
		n += sc->disks[i].state != SCSI_FREE;
	return n;
}

/* ---- the machine ------------------------------------------------------------------- */

void scsi_bind(struct scsi *sc, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	       struct io_threads *io, int num_queues)
{
	sc->pci = pci;
	sc->mem = mem;
	sc->loop = loop;
	sc->io = io;
	sc->reaper.loop = loop;
	sc->num_queues = num_queues;
}

static void release_cb(void *opaque)
{
	scsi_release(opaque);
}

/* The guest is done with d: unplugged from the loop, slot freed, then req answered. */
static void retire(struct scsi_disk *d, int code, cJSON *result, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void retire(struct scsi_disk *d, int code, cJSON *result, const char *fmt, ...)
{
	struct ctl_req *req = d->req;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->state = SCSI_RETIRING;
	d->req = NULL;
	mgr_retire(&d->owner->reaper, d->dev, req, code, result, msg, release_cb, d);
}

void scsi_unbind(struct scsi *sc)
{
	mgr_reap(&sc->reaper);
	for (int i = 0; i < SCSI_MAX_DISKS; i++) {
		struct scsi_disk *d = &sc->disks[i];

		if (d->state == SCSI_FREE)
			continue;
		if (d->req)
			ctl_req_error(d->req, CTL_ERR_CANCELLED, "the VM ended");
		d->req = NULL;
		virtio_dev_destroy(d->dev);
		scsi_release(d);
	}
	sc->pci = NULL;
	sc->mem = NULL;
	sc->loop = NULL;
	sc->io = NULL;
	sc->reaper.loop = NULL;
	sc->boot_fn = NULL;
}

/* Places the function on the bus. Safe while vCPUs run: the bus lock serialises it. */
static int plug(struct scsi *sc, struct scsi_disk *d, char *err, size_t errlen)
{
	struct blk_config bc = {.path = d->host_path,
				.read_only = d->read_only,
				.serial = d->serial,
				.num_queues = sc->num_queues > 0 ? sc->num_queues : 1};
	int ret;

	if (!sc->pci) {
		snprintf(err, errlen, "there is no VM");
		return -ENODEV;
	}
	ret =
	    virtio_blk_create(sc->pci, sc->mem, io_threads_pick_or(sc->io, sc->loop), &bc, &d->dev);
	if (ret) {
		d->dev = NULL;
		snprintf(err, errlen, "cannot attach '%s': %s", d->host_path, strerror(-ret));
	}
	return ret;
}

static int plug_err_code(int ret)
{
	switch (ret) {
	case -ENOENT:
	case -EISDIR:
	case -EINVAL:
	case -EACCES:
	case -EROFS:
		return CTL_ERR_BAD_PARAMS;
	case -ENOSPC:
	case -EBUSY:
		return CTL_ERR_BUSY;
	default:
		return CTL_ERR_HOST;
	}
}

static cJSON *disk_result(const struct scsi_disk *d)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "controller", d->controller);
	cJSON_AddNumberToObject(r, "lun", d->lun);
	cJSON_AddStringToObject(r, "serial", d->serial);
	if (d->in_guest)
		cJSON_AddStringToObject(r, "device", d->device);
	else
		cJSON_AddNullToObject(r, "device");
	if (d->guest_path)
		cJSON_AddStringToObject(r, "guest_path", d->guest_path);
	return r;
}

static int guest_code(int status)
{
	return status == -ETIMEDOUT   ? CTL_ERR_TIMEOUT
	       : status == -ECANCELED ? CTL_ERR_CANCELLED
				      : CTL_ERR_GUEST;
}

/* Asks the GCS to find the disk by serial and mount it if asked. */
static int guest_add(struct scsi_disk *d, struct bridge *bridge, bridge_resp_fn fn)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "controller", d->controller);
	cJSON_AddNumberToObject(b, "lun", d->lun);
	cJSON_AddStringToObject(b, "serial", d->serial);
	if (d->guest_path) {
		cJSON_AddStringToObject(b, "mount", d->guest_path);
		cJSON_AddStringToObject(b, "fs", d->fs_type);
		cJSON_AddStringToObject(b, "options", d->options ? d->options : "");
	}
	cJSON_AddBoolToObject(b, "read_only", d->read_only);
	cJSON_AddNumberToObject(b, "timeout_ms", (double)d->timeout_ms);
	return bridge_request(
	    bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_ADD), b, fn,
	    d);
}

static void note_device(struct scsi_disk *d, const cJSON *body)
{
	const cJSON *dev = body ? cJSON_GetObjectItemCaseSensitive(body, "device") : NULL;

	if (cJSON_IsString(dev)) {
		snprintf(d->device, sizeof(d->device), "%s", dev->valuestring);
		d->in_guest = true;
	}
}

/* ---- scsi.add ---------------------------------------------------------------------- */

static void on_add_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct scsi_disk *d = opaque;
	struct ctl_req *req = d->req;

	if (status) {
		/* The GCS took the function out again if it had found it. */
		pr_err(TAG, "%s: the guest failed to attach it: %s", d->serial,
		       error ? error : strerror(-status));
		retire(d, guest_code(status), NULL, "the guest could not attach the disk: %s",
		       error ? error : strerror(-status));
		return;
	}
	d->req = NULL;
	note_device(d, body);
	d->state = SCSI_ATTACHED;
	pr_info(TAG, "%s: attached as %s", d->serial, d->device);
	if (req)
		ctl_req_result(req, disk_result(d));
}

int scsi_attach_cold(struct scsi *sc, const struct scsi_params *p, char *err, size_t errlen)
{
	struct scsi_disk *d;
	int ret = scsi_reserve(sc, p, &d);

	if (ret == -EEXIST)
		snprintf(err, errlen, "controller %u lun %u is already attached", p->controller,
			 p->lun);
	else if (ret == -ENOSPC)
		snprintf(err, errlen, "at most %d disks", SCSI_MAX_DISKS);
	else if (ret)
		snprintf(err, errlen, "%s", strerror(-ret));
	if (ret)
		return ret;
	ret = plug(sc, d, err, errlen);
	if (ret) {
		scsi_release(d);
		return ret;
	}
	d->state = SCSI_ATTACHED;
	return 0;
}

void scsi_method_add(struct scsi *sc, struct bridge *bridge, bool running, struct ctl_req *req)
{
	struct scsi_params p;
	struct scsi_disk *d;
	char err[CTL_ERRLEN], why[256];
	int ret;

	if (scsi_parse_add(req->params, &p, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (running && !bridge_ready(bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	if (!running) {
		ret = scsi_attach_cold(sc, &p, why, sizeof(why));
		if (ret)
			ctl_req_error(req, ret == -EEXIST ? CTL_ERR_BUSY : plug_err_code(ret), "%s",
				      why);
		else
			ctl_req_result(req, disk_result(scsi_find(sc, p.controller, p.lun)));
		return;
	}
	ret = scsi_reserve(sc, &p, &d);
	if (ret == -EEXIST) {
		ctl_req_error(req, CTL_ERR_BUSY, "controller %u lun %u is already attached",
			      p.controller, p.lun);
		return;
	}
	if (ret) {
		ctl_req_error(req, ret == -ENOSPC ? CTL_ERR_BUSY : CTL_ERR_INTERNAL, "%s",
			      ret == -ENOSPC ? "no free disk slot" : strerror(-ret));
		return;
	}
	ret = plug(sc, d, why, sizeof(why));
	if (ret) {
		scsi_release(d);
		ctl_req_error(req, plug_err_code(ret), "%s", why);
		return;
	}
	d->req = req;
	ret = guest_add(d, bridge, on_add_resp);
	if (ret < 0)
		on_add_resp(d, ret, "cannot send the request to the guest", NULL);
}

/* ---- scsi.remove ------------------------------------------------------------------- */

static void on_remove_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct scsi_disk *d = opaque;

	if (status && status != -ECANCELED) {
		struct ctl_req *req = d->req;

		/* Still in the guest: keep the function, the parent may retry. */
		d->req = NULL;
		d->state = SCSI_ATTACHED;
		if (req)
			ctl_req_error(req, guest_code(status),
				      "the guest could not remove the disk: %s",
				      error ? error : strerror(-status));
		return;
	}
	/* Only now that the guest let go: unplug and close the backend (from the loop). */
	if (status) {
		retire(d, CTL_ERR_CANCELLED, NULL, "the VM went away during the removal");
	} else {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddNumberToObject(r, "controller", d->controller);
		cJSON_AddNumberToObject(r, "lun", d->lun);
		retire(d, 0, r, "removed");
	}
}

void scsi_method_remove(struct scsi *sc, struct bridge *bridge, bool running, struct ctl_req *req)
{
	unsigned c, l;
	struct scsi_disk *d;
	char err[CTL_ERRLEN];
	cJSON *b;
	int ret;

	if (scsi_parse_remove(req->params, &c, &l, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	d = scsi_find(sc, c, l);
	if (!d) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no disk at controller %u lun %u", c, l);
		return;
	}
	if (d->state != SCSI_ATTACHED) {
		ctl_req_error(req, CTL_ERR_BUSY, "controller %u lun %u is being %s", c, l,
			      d->state == SCSI_ADDING ? "added" : "removed");
		return;
	}
	if (!running || !d->in_guest) {
		/* The guest never saw it (cold-plugged, not started): just unplug. */
		d->req = req;
		on_remove_resp(d, 0, NULL, NULL);
		return;
	}
	if (!bridge_ready(bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "controller", c);
	cJSON_AddNumberToObject(b, "lun", l);
	cJSON_AddStringToObject(b, "serial", d->serial);
	if (d->guest_path)
		cJSON_AddStringToObject(b, "mount", d->guest_path);
	d->state = SCSI_REMOVING;
	d->req = req;
	ret = bridge_request(
	    bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_REMOVE), b,
	    on_remove_resp, d);
	if (ret < 0) {
		d->state = SCSI_ATTACHED;
		d->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

/* ---- disks present at boot --------------------------------------------------------- */

static void boot_finish_one(struct scsi *sc)
{
	scsi_boot_fn fn;

	if (--sc->boot_pending > 0 || !sc->boot_fn)
		return;
	fn = sc->boot_fn;
	sc->boot_fn = NULL;
	fn(sc->boot_opaque, sc->boot_err, sc->boot_msg);
}

static void on_boot_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct scsi_disk *d = opaque;
	struct scsi *sc = d->owner;

	if (status) {
		if (!sc->boot_err) {
			sc->boot_err = status;
			snprintf(sc->boot_msg, sizeof(sc->boot_msg), "disk %s (%s): %s", d->serial,
				 d->host_path, error ? error : strerror(-status));
		}
		d->state = SCSI_ATTACHED; /* on the bus; the guest may or may not have it */
	} else {
		note_device(d, body);
		d->state = SCSI_ATTACHED;
	}
	boot_finish_one(sc);
}

void scsi_boot_attach(struct scsi *sc, struct bridge *bridge, scsi_boot_fn fn, void *opaque)
{
	sc->boot_fn = fn;
	sc->boot_opaque = opaque;
	sc->boot_err = 0;
	sc->boot_msg[0] = '\0';
	sc->boot_pending = 1; /* held until every request is out */
	for (int i = 0; i < SCSI_MAX_DISKS; i++) {
		struct scsi_disk *d = &sc->disks[i];

		if (d->state != SCSI_ATTACHED || d->in_guest)
			continue;
		d->state = SCSI_ADDING;
		sc->boot_pending++;
		if (guest_add(d, bridge, on_boot_resp) < 0)
			on_boot_resp(d, -ENOTCONN, "cannot send the request to the guest", NULL);
	}
	boot_finish_one(sc);
}
