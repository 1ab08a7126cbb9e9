/* The resource managers' shared pieces (manager.h). */
#include "shim/manager.h"

#include <stdio.h>
#include <stdlib.h>

#include "shim/ctl.h"
#include "virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/loop.h"

struct mgr_retiree {
	struct virtio_dev *dev;
	struct ctl_req *req;
	int code;
	cJSON *result;
	char msg[256];
	void (*release)(void *opaque);
	void *opaque;
	struct mgr_retiree *next;
};

void mgr_reap(struct mgr_reaper *r)
{
	struct mgr_retiree *l = r->list;

	r->list = NULL;
	r->queued = false;
	while (l) {
		struct mgr_retiree *x = l;

		l = l->next;
		virtio_dev_destroy(x->dev);
		if (x->release)
			x->release(x->opaque);
		if (x->req && x->code)
			ctl_req_error(x->req, x->code, "%s", x->msg);
		else if (x->req)
			ctl_req_result(x->req, x->result);
		else
			cJSON_Delete(x->result);
		free(x);
	}
}

static void reap_cb(void *opaque, uint32_t events)
{
	mgr_reap(opaque);
}

void mgr_retire(struct mgr_reaper *r, struct virtio_dev *dev, struct ctl_req *req, int code,
		cJSON *result, const char *msg, void (*release)(void *opaque), void *opaque)
{
	struct mgr_retiree *x = calloc(1, sizeof(*x)), **pp = &r->list;

	if (!x) {
		/* Out of memory: do it now rather than never (the old risk, once). */
		pr_err("manager", "out of memory: tearing a device down at once");
		virtio_dev_destroy(dev);
		if (release)
			release(opaque);
		if (req)
			ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		cJSON_Delete(result);
		return;
	}
	*x = (struct mgr_retiree){.dev = dev,
				  .req = req,
				  .code = code,
				  .result = result,
				  .release = release,
				  .opaque = opaque};
	snprintf(x->msg, sizeof(x->msg), "%s", msg ? msg : "");
	while (*pp)
		pp = &(*pp)->next; /* answers go out in the order things were retired */
	*pp = x;
	if (r->queued)
		return;
	if (r->loop && loop_defer(r->loop, reap_cb, r) == 0) {
		r->queued = true;
		return;
	}
	mgr_reap(r);
}
