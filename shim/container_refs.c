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

/*
 * A plan9 root: a read-only share is the overlay's one lower layer (the
 * container writes to the scratch, or guest memory); a writable one is
 * the root itself, written to directly ("rootfs").
 */
static int plan9_root_fields(struct serve *s, const struct ctr_root *root, cJSON *body,
			     char err[CTL_ERRLEN])
{
	struct plan9_share *sh = plan9_find(&s->plan9, root->plan9);
	char path[1600];
	cJSON *o;

	if (!sh || sh->state != PLAN9_ATTACHED || !sh->in_guest) {
		snprintf(err, CTL_ERRLEN, "params.root.plan9: no share %s mounted in the guest",
			 root->plan9);
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s%s%s", sh->guest_path, root->subdir ? "/" : "",
		 root->subdir ? root->subdir : "");
	if (strpbrk(path, ":,\\") || strstr(path, "/..") || strlen(path) >= 1024) {
		snprintf(err, CTL_ERRLEN,
			 "params.root.plan9: share %s's guest path cannot be a root (':', ',', "
			 "'..' or over 1023 bytes)",
			 sh->name);
		return -EINVAL;
	}
	if (!sh->read_only && root->has_scratch) {
		snprintf(err, CTL_ERRLEN,
			 "params.root.scratch: share %s is writable: the container writes into it "
			 "(no scratch; share it read_only for an overlay)",
			 sh->name);
		return -EINVAL;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", path);
	if (sh->read_only)
		cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "layers"), o);
	else
		cJSON_AddItemToObject(body, "rootfs", o);
	return 0;
}

/* The guest's "layers" and "scratch" (or "rootfs") into body; -ENOENT (not attached) or
 * -EINVAL (misused) with err. */
int container_root_fields(struct serve *s, const struct ctr_root *root, cJSON *body,
			  char err[CTL_ERRLEN])
{
	cJSON *layers, *o;
	char what[48];
	int ret;

	if (root->plan9) {
		ret = plan9_root_fields(s, root, body, err);
		if (ret)
			return ret;
	} else {
		layers = cJSON_AddArrayToObject(body, "layers");
		for (unsigned i = 0; i < root->nr_layers; i++) {
			snprintf(what, sizeof(what), "root.layers[%u]", i);
			o = resolve(s, &root->layers[i], what, false, err);
			if (!o)
				return -ENOENT;
			cJSON_AddItemToArray(layers, o);
		}
	}
	if (!root->has_scratch)
		return 0;
	o = resolve(s, &root->scratch, "root.scratch", true, err);
	if (!o)
		return -ENOENT;
	if (root->format && cJSON_GetObjectItem(o, "path")) {
		cJSON_Delete(o);
		snprintf(err, CTL_ERRLEN,
			 "params.root.format: the scratch disk is mounted; add it without a mount");
		return -ENOENT;
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

struct ctr_entry *container_using_share(struct container_mgr *m, const char *name)
{
	for (struct ctr_entry *e = m->list; e; e = e->next)
		if (e->share[0] && !strcmp(e->share, name))
			return e;
	return NULL;
}

bool serve_containers_hold_share(struct serve *s, struct ctl_req *req)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req->params, "name");
	struct ctr_entry *e;

	if (!cJSON_IsString(name)) /* the manager's own parse answers it */
		return false;
	e = container_using_share(&s->ctrs, name->valuestring);
	if (!e)
		return false;
	ctl_req_error(req, CTL_ERR_BUSY, "share %s is the root of container %s (delete it first)",
		      e->share, e->id);
	return true;
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
