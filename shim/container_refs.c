/*
 * The container manager (container.h), its ties to the other managers: the
 * layer and scratch references resolved against the vpmem and scsi tables,
 * the devices a container stands on held against removal, and the guest's
 * named network namespaces (netns.*) containers join.
 */
#include "shim/container.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gcs/protocol.h"
#include "shim/serve_priv.h"

/* ---- references to layers and the scratch -------------------------------------------- */

/* A device the guest holds as {"path"} when mounted, else {"device","fs"}. */
static cJSON *dev_ref(const char *guest_path, const char *device, const char *fs)
{
	cJSON *o = cJSON_CreateObject();

	if (guest_path) {
		cJSON_AddStringToObject(o, "path", guest_path);
	} else {
		cJSON_AddStringToObject(o, "device", device);
		if (fs)
			cJSON_AddStringToObject(o, "fs", fs);
	}
	return o;
}

/* ref as the guest's layer or scratch object; NULL with err when it is not there. */
static cJSON *resolve(struct serve *s, const struct ctr_ref *r, const char *what, bool scratch,
		      char err[CTL_ERRLEN])
{
	if (r->kind == CTR_REF_PATH) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "path", r->path);
		return o;
	}
	if (r->kind == CTR_REF_VPMEM) {
		struct vpmem_dev *d = vpmem_find(&s->vpmem, r->number);

		if (!d || d->state != VPMEM_ATTACHED || !d->in_guest) {
			snprintf(err, CTL_ERRLEN, "params.%s: no vpmem device %u attached", what,
				 r->number);
			return NULL;
		}
		return dev_ref(d->guest_path, d->device, d->fs_type);
	}
	struct scsi_disk *d = scsi_find(&s->scsi, r->controller, r->lun);

	if (!d || d->state != SCSI_ATTACHED || !d->in_guest) {
		snprintf(err, CTL_ERRLEN, "params.%s: no scsi disk %u:%u attached", what,
			 r->controller, r->lun);
		return NULL;
	}
	if (!scratch && !d->read_only) {
		snprintf(err, CTL_ERRLEN, "params.%s: scsi disk %u:%u is not read-only", what,
			 r->controller, r->lun);
		return NULL;
	}
	if (scratch && d->read_only) {
		snprintf(err, CTL_ERRLEN, "params.%s: scsi disk %u:%u is read-only", what,
			 r->controller, r->lun);
		return NULL;
	}
	return dev_ref(d->guest_path, d->device, scratch ? NULL : d->fs_type);
}

/* The guest's "layers" and "scratch" into body; -EINVAL with err. */
int container_root_fields(struct serve *s, const struct ctr_root *root, cJSON *body,
			  char err[CTL_ERRLEN])
{
	cJSON *layers = cJSON_AddArrayToObject(body, "layers"), *o;
	char what[48];

	for (unsigned i = 0; i < root->nr_layers; i++) {
		snprintf(what, sizeof(what), "root.layers[%u]", i);
		o = resolve(s, &root->layers[i], what, false, err);
		if (!o)
			return -EINVAL;
		cJSON_AddItemToArray(layers, o);
	}
	if (!root->has_scratch)
		return 0;
	o = resolve(s, &root->scratch, "root.scratch", true, err);
	if (!o)
		return -EINVAL;
	if (root->format && cJSON_GetObjectItem(o, "path")) {
		cJSON_Delete(o);
		snprintf(err, CTL_ERRLEN,
			 "params.root.format: the scratch disk is mounted; add it without a mount");
		return -EINVAL;
	}
	cJSON_AddBoolToObject(o, "format", root->format);
	cJSON_AddItemToObject(body, "scratch", o);
	return 0;
}

/* ---- devices a container stands on --------------------------------------------------------- */

struct ctr_entry *container_using(struct container_mgr *m, const struct ctr_ref *dev)
{
	for (struct ctr_entry *e = m->list; e; e = e->next)
		for (unsigned i = 0; i < e->nr_devs; i++) {
			const struct ctr_ref *r = &e->devs[i];

			if (r->kind == dev->kind &&
			    (r->kind == CTR_REF_VPMEM
				 ? r->number == dev->number
				 : r->controller == dev->controller && r->lun == dev->lun))
				return e;
		}
	return NULL;
}

bool serve_containers_hold(struct serve *s, struct ctl_req *req, bool vpmem)
{
	struct ctr_ref d = {.kind = vpmem ? CTR_REF_VPMEM : CTR_REF_SCSI};
	char err[CTL_ERRLEN];
	struct ctr_entry *e;

	/* Bad params: the manager's own parse answers them. */
	if (vpmem ? vpmem_parse_remove(req->params, s->vpmem.count, &d.number, err)
		  : scsi_parse_remove(req->params, &d.controller, &d.lun, err))
		return false;
	e = container_using(&s->ctrs, &d);
	if (!e)
		return false;
	if (vpmem)
		ctl_req_error(req, CTL_ERR_BUSY,
			      "vpmem device %u is used by container %s (delete it first)", d.number,
			      e->id);
	else
		ctl_req_error(req, CTL_ERR_BUSY,
			      "scsi disk %u:%u is used by container %s (delete it first)",
			      d.controller, d.lun, e->id);
	return true;
}

/* ---- named network namespaces in the guest ------------------------------------------------ */

static void netns_forward(struct serve *s, struct ctl_req *req, uint32_t rpc)
{
	const char *name;
	char err[CTL_ERRLEN];
	cJSON *b;

	if (ctl_param_str(req->params, "name", true, &name, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (!container_id_valid(name)) {
		ctl_req_bad_params(req,
				   "params.name: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..64 characters");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", name);
	serve_forward(s, req, BRIDGE_CAT_CONTAINER, rpc, b);
}

void serve_netns_add(void *opaque, struct ctl_req *req)
{
	netns_forward(opaque, req, BRIDGE_RPC_NETNS_ADD);
}

void serve_netns_remove(void *opaque, struct ctl_req *req)
{
	netns_forward(opaque, req, BRIDGE_RPC_NETNS_REMOVE);
}
