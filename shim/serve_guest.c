/*
 * `uvm-shim serve`: requests the guest agent answers, passed on over the
 * bridge (guest.properties, guest.dump_stacks, and process.signal/resize
 * for serve_procs.c), and what a bridge status means to the parent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/ctl.h"
#include "shim/serve_priv.h"
#include "shim/stacks.h"
#include "vmm/log.h"

#define TAG "serve"

/* Bridge status -> control error code: a guest-side failure, or its meaning. */
int serve_guest_err_code(int status)
{
	switch (status) {
	case -ESRCH:
		return CTL_ERR_NOT_FOUND;
	case -ECANCELED:
	case -ECONNRESET:
		return CTL_ERR_CANCELLED;
	default:
		return CTL_ERR_GUEST;
	}
}

/* ---- forwarding --------------------------------------------------------------------- */

cJSON *serve_forward_result(const cJSON *body)
{
	cJSON *r = cJSON_Duplicate(body, 1);

	cJSON_DeleteItemFromObject(r, "status");
	return r;
}

/* A request whose answer is the guest's body minus its status. */
static void on_forward_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct ctl_req *req = opaque;

	if (status) {
		ctl_req_error(req, serve_guest_err_code(status), "%s",
			      error ? error : strerror(-status));
		return;
	}
	ctl_req_result(req, serve_forward_result(body));
}

void serve_forward(struct serve *s, struct ctl_req *req, uint32_t cat, uint32_t rpc, cJSON *body)
{
	int ret;

	if (!bridge_ready(s->bridge)) {
		cJSON_Delete(body);
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	ret = bridge_request(s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, cat, rpc), body,
			     on_forward_resp, req);
	if (ret < 0)
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
}

void serve_guest_properties(void *opaque, struct ctl_req *req)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddTrueToObject(b, "processes");
	cJSON_AddTrueToObject(b, "memory");
	serve_forward(opaque, req, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_PROPERTIES, b);
}

/* ---- guest.dump_stacks -------------------------------------------------------------- */

/*
 * guest.dump_stacks: the shim's threads are captured when the request comes
 * (shim/stacks.c: a signal per thread, a bounded wait, so a vCPU or a stuck
 * thread costs the loop at most STACKS_TIMEOUT_MS twice), the GCS's when
 * its answer comes; the answer carries both.
 */
#define STACKS_TIMEOUT_MS 1000

struct stacks_req {
	struct ctl_req *req;
	struct stacks *shim; /* NULL when the capture failed (err says why) */
	int err;
};

static void stacks_req_free(struct stacks_req *sr)
{
	stacks_free(sr->shim);
	free(sr);
}

cJSON *serve_stacks_result(const struct stacks *shim, int err, const cJSON *gcs_body)
{
	const cJSON *stacks = gcs_body ? cJSON_GetObjectItem(gcs_body, "stacks") : NULL;
	cJSON *r = cJSON_CreateObject();
	char *text = NULL;

	if (shim) {
		text = stacks_format(shim);
		cJSON_AddStringToObject(r, "shim", text ? text : "");
		cJSON_AddItemToObject(r, "shim_threads", stacks_to_json(shim));
	} else {
		char msg[128];

		snprintf(msg, sizeof(msg), "uvm-shim pid %d: stacks not captured: %s\n", getpid(),
			 strerror(-err));
		cJSON_AddStringToObject(r, "shim", msg);
		cJSON_AddArrayToObject(r, "shim_threads");
	}
	cJSON_AddStringToObject(r, "gcs", cJSON_IsString(stacks) ? stacks->valuestring : "");
	free(text);
	return r;
}

static void on_stacks_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct stacks_req *sr = opaque;

	if (status) {
		ctl_req_error(sr->req, serve_guest_err_code(status), "%s", error ? error : "?");
		stacks_req_free(sr);
		return;
	}
	ctl_req_result(sr->req, serve_stacks_result(sr->shim, sr->err, body));
	stacks_req_free(sr);
}

void serve_guest_dump_stacks(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct stacks_req *sr;
	int ret;

	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	sr = calloc(1, sizeof(*sr));
	if (!sr) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		return;
	}
	sr->req = req;
	sr->err = stacks_capture(&sr->shim, STACKS_TIMEOUT_MS);
	if (sr->err)
		pr_warn(TAG, "dump_stacks: the shim's stacks: %s", strerror(-sr->err));
	ret = bridge_request(
	    s->bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_DUMP_STACKS),
	    cJSON_CreateObject(), on_stacks_resp, sr);
	if (ret < 0) {
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
		stacks_req_free(sr);
	}
}
