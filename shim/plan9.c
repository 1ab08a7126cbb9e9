/* The plan9 resource manager (see plan9.h): named 9p shares, hot-add and hot-remove. */
#include "shim/plan9.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "seccomp/seccomp.h"
#include "shim/bridge.h"
#include "virtio/p9.h"
#include "virtio/virtio.h"
#include "vmm/host_open.h"
#include "vmm/io_thread.h"
#include "vmm/log.h"

#define TAG "plan9"

/* ---- parameters ------------------------------------------------------------------- */

bool plan9_name_valid(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > PLAN9_NAME_MAX)
		return false;
	for (const char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
			return false;
	return true;
}

int plan9_parse_add(const cJSON *params, struct plan9_params *p, char err[CTL_ERRLEN])
{
	const cJSON *o;
	struct stat st;

	memset(p, 0, sizeof(*p));
	p->timeout_ms = PLAN9_DEFAULT_TIMEOUT;
	if (!cJSON_IsObject(params)) {
		snprintf(err, CTL_ERRLEN, "params: expected an object");
		return -EINVAL;
	}
	if (ctl_param_str(params, "name", true, &p->name, err) ||
	    ctl_param_str(params, "host_path", true, &p->host_path, err) ||
	    ctl_param_str(params, "guest_path", true, &p->guest_path, err))
		return -EINVAL;
	if (!plan9_name_valid(p->name)) {
		snprintf(err, CTL_ERRLEN,
			 "params.name: expected 1 to %d of [A-Za-z0-9_.-] (it is the mount tag)",
			 PLAN9_NAME_MAX);
		return -EINVAL;
	}
	if (p->guest_path[0] != '/' || strlen(p->guest_path) > 1024) {
		snprintf(err, CTL_ERRLEN, "params.guest_path: expected an absolute path");
		return -EINVAL;
	}
	if (stat(p->host_path, &st) < 0) {
		snprintf(err, CTL_ERRLEN, "params.host_path: %.100s: %s", p->host_path,
			 strerror(errno));
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, CTL_ERRLEN, "params.host_path: %.100s is not a directory",
			 p->host_path);
		return -EINVAL;
	}
	if (ctl_param_bool(params, "read_only", false, &p->read_only, err) == -EINVAL ||
	    ctl_param_u64(params, "timeout_ms", false, 1, 3600000, &p->timeout_ms, err) ==
		-EINVAL ||
	    ctl_param_strv(params, "allowed_names", false, PLAN9_MAX_ALLOWED, &p->allowed,
			   &p->nr_allowed, err) == -EINVAL)
		return -EINVAL;
	cJSON_ArrayForEach(o, p->allowed)
	{
		const char *n = o->valuestring;

		if (!*n || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, "..")) {
			snprintf(err, CTL_ERRLEN,
				 "params.allowed_names: expected names in the share's root");
			return -EINVAL;
		}
	}
	if (p->allowed && !p->nr_allowed) {
		snprintf(err, CTL_ERRLEN, "params.allowed_names: empty (the share would be empty)");
		return -EINVAL;
	}
	return 0;
}

/* ---- slots ------------------------------------------------------------------------- */

void plan9_init(struct plan9 *pl)
{
	memset(pl, 0, sizeof(*pl));
	for (int i = 0; i < PLAN9_MAX_SHARES; i++)
		pl->shares[i].owner = pl;
}

struct plan9_share *plan9_find(struct plan9 *pl, const char *name)
{
	for (int i = 0; i < PLAN9_MAX_SHARES; i++) {
		struct plan9_share *sh = &pl->shares[i];

		if (sh->state != PLAN9_FREE && !strcmp(sh->name, name))
			return sh;
	}
	return NULL;
}

int plan9_count(const struct plan9 *pl)
{
	int n = 0;

	for (int i = 0; i < PLAN9_MAX_SHARES; i++)
		n += pl->shares[i].state != PLAN9_FREE;
	return n;
}

static void release(struct plan9_share *sh)
{
	p9_pool_destroy(sh->pool); /* its device is gone: nothing is queued */
	for (int i = 0; i < sh->nr_allowed; i++)
		free(sh->allowed[i]);
	free(sh->allowed);
	free(sh->name);
	free(sh->host_path);
	free(sh->guest_path);
	memset((char *)sh + sizeof(sh->owner), 0, sizeof(*sh) - sizeof(sh->owner));
}

/* A free slot for p (state ADDING); err says why not. */
static int reserve(struct plan9 *pl, const struct plan9_params *p, struct plan9_share **out,
		   char *err, size_t errlen)
{
	struct plan9_share *sh = NULL;
	const cJSON *o;
	bool oom = false;

	if (plan9_find(pl, p->name)) {
		snprintf(err, errlen, "a share named %s exists", p->name);
		return -EEXIST;
	}
	for (int i = 0; i < PLAN9_MAX_SHARES; i++) {
		if (pl->shares[i].state != PLAN9_FREE &&
		    !strcmp(pl->shares[i].guest_path, p->guest_path)) {
			snprintf(err, errlen, "share %s is already mounted on %s",
				 pl->shares[i].name, p->guest_path);
			return -EEXIST;
		}
		if (!sh && pl->shares[i].state == PLAN9_FREE)
			sh = &pl->shares[i];
	}
	if (!sh) {
		snprintf(err, errlen, "at most %d shares", PLAN9_MAX_SHARES);
		return -ENOSPC;
	}
	sh->state = PLAN9_ADDING;
	sh->name = strdup(p->name);
	sh->host_path = strdup(p->host_path);
	sh->guest_path = strdup(p->guest_path);
	oom = !sh->name || !sh->host_path || !sh->guest_path;
	if (p->nr_allowed && !(sh->allowed = calloc(p->nr_allowed, sizeof(char *))))
		oom = true;
	cJSON_ArrayForEach(o, p->allowed)
	{
		if (!sh->allowed || !(sh->allowed[sh->nr_allowed] = strdup(o->valuestring))) {
			oom = true;
			break;
		}
		sh->nr_allowed++;
	}
	sh->read_only = p->read_only;
	sh->timeout_ms = p->timeout_ms;
	if (oom) {
		release(sh);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*out = sh;
	return 0;
}

/* ---- the machine ------------------------------------------------------------------- */

/* The spawner, before it makes anything: file capabilities only, its filter. */
static int spawner_sandbox(void *opaque)
{
	(void)opaque;
	return sandbox_p9_spawner();
}

struct worker_args {
	int root_fd;
	bool read_only;
};

/* Each worker of a share, before it serves anything: Landlock beneath the root, the 9p filter. */
static int worker_sandbox(void *opaque)
{
	const struct worker_args *a = opaque;

	return sandbox_p9_worker(a->root_fd, a->read_only);
}

int plan9_bind(struct plan9 *pl, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	       struct io_threads *io)
{
	int ret = p9_spawner_create(spawner_sandbox, NULL, &pl->spawner);

	if (ret)
		return ret;
	pl->pci = pci;
	pl->mem = mem;
	pl->loop = loop;
	pl->io = io;
	pl->reaper.loop = loop;
	return 0;
}

void plan9_unbind(struct plan9 *pl)
{
	mgr_reap(&pl->reaper);
	for (int i = 0; i < PLAN9_MAX_SHARES; i++) {
		struct plan9_share *sh = &pl->shares[i];

		if (sh->state == PLAN9_FREE)
			continue;
		if (sh->req)
			ctl_req_error(sh->req, CTL_ERR_CANCELLED, "the VM ended");
		sh->req = NULL;
		virtio_dev_destroy(sh->dev);
		release(sh);
	}
	p9_spawner_destroy(pl->spawner);
	pl->spawner = NULL;
	pl->pci = NULL;
	pl->mem = NULL;
	pl->loop = NULL;
	pl->io = NULL;
	pl->reaper.loop = NULL;
	pl->boot_fn = NULL;
}

static int plug(struct plan9 *pl, struct plan9_share *sh, char *err, size_t errlen)
{
	struct p9_share_config cfg = {
	    .path = sh->host_path,
	    .has_root_fd = true,
	    .read_only = sh->read_only,
	    .allowed_names = (const char *const *)sh->allowed,
	    .nr_allowed = sh->nr_allowed,
	};
	struct worker_args args = {.read_only = sh->read_only};
	int ret;

	if (!pl->pci || !pl->spawner) {
		snprintf(err, errlen, "there is no VM");
		return -ENODEV;
	}
	/* The root first (from the opener): the workers are confined beneath it. */
	ret = host_open(sh->host_path, O_PATH | O_DIRECTORY, 0);
	if (ret < 0) {
		snprintf(err, errlen, "cannot share '%s': %s", sh->host_path, strerror(-ret));
		return ret;
	}
	cfg.root_fd = args.root_fd = ret;
	ret = p9_spawner_pool(pl->spawner, PLAN9_WORKERS, worker_sandbox, &args, &sh->pool);
	if (ret) {
		sh->pool = NULL;
		snprintf(err, errlen, "cannot make the workers of '%s': %s", sh->host_path,
			 strerror(-ret));
	} else {
		/* Its kicks run on an I/O thread; its host I/O on the share's workers. */
		ret = virtio_9p_create(pl->pci, pl->mem, io_threads_pick_or(pl->io, pl->loop),
				       sh->pool, sh->name, &cfg, &sh->dev);
		if (ret) {
			sh->dev = NULL;
			snprintf(err, errlen, "cannot share '%s': %s", sh->host_path,
				 strerror(-ret));
		}
	}
	close(cfg.root_fd);
	return ret;
}

static int plug_err_code(int ret)
{
	return ret == -ENOENT || ret == -ENOTDIR || ret == -EACCES || ret == -EINVAL
		   ? CTL_ERR_BAD_PARAMS
	       : ret == -ENOSPC || ret == -EEXIST ? CTL_ERR_BUSY
						  : CTL_ERR_HOST;
}

static int guest_code(int status)
{
	return status == -ETIMEDOUT   ? CTL_ERR_TIMEOUT
	       : status == -ECANCELED ? CTL_ERR_CANCELLED
				      : CTL_ERR_GUEST;
}

static cJSON *share_result(const struct plan9_share *sh)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "name", sh->name);
	cJSON_AddStringToObject(r, "guest_path", sh->guest_path);
	cJSON_AddBoolToObject(r, "read_only", sh->read_only);
	cJSON_AddNumberToObject(r, "msize", PLAN9_MSIZE);
	if (sh->in_guest)
		cJSON_AddStringToObject(r, "device", sh->device);
	return r;
}

static int guest_request(struct plan9_share *sh, struct bridge *bridge, int rpc, bridge_resp_fn fn)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "tag", sh->name);
	cJSON_AddStringToObject(b, "mount", sh->guest_path);
	cJSON_AddBoolToObject(b, "read_only", sh->read_only);
	cJSON_AddNumberToObject(b, "msize", PLAN9_MSIZE);
	cJSON_AddNumberToObject(b, "timeout_ms", (double)sh->timeout_ms);
	return bridge_request(bridge, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, rpc), b,
			      fn, sh);
}

static void note_mounted(struct plan9_share *sh, const cJSON *body)
{
	const cJSON *dev = body ? cJSON_GetObjectItemCaseSensitive(body, "device") : NULL;

	snprintf(sh->device, sizeof(sh->device), "%s", cJSON_IsString(dev) ? dev->valuestring : "");
	sh->in_guest = true;
	sh->state = PLAN9_ATTACHED;
}

/* ---- plan9.add --------------------------------------------------------------------- */

static void release_cb(void *opaque)
{
	release(opaque);
}

/* The guest is done with sh: unplugged from the loop, slot freed, then req answered. */
static void retire(struct plan9_share *sh, struct ctl_req *req, int code, cJSON *result,
		   const char *msg)
{
	sh->state = PLAN9_RETIRING;
	sh->req = NULL;
	mgr_retire(&sh->owner->reaper, sh->dev, req, code, result, msg, release_cb, sh);
}

static void on_add_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct plan9_share *sh = opaque;
	struct ctl_req *req = sh->req;

	sh->req = NULL;
	if (status) {
		char msg[256];

		pr_err(TAG, "%s: the guest failed to mount it: %s", sh->name,
		       error ? error : strerror(-status));
		snprintf(msg, sizeof(msg), "the guest could not mount the share: %s",
			 error ? error : strerror(-status));
		retire(sh, req, guest_code(status), NULL, msg);
		return;
	}
	note_mounted(sh, body);
	pr_info(TAG, "%s: mounted on %s", sh->name, sh->guest_path);
	if (req)
		ctl_req_result(req, share_result(sh));
}

int plan9_attach_cold(struct plan9 *pl, const struct plan9_params *p, char *err, size_t errlen)
{
	struct plan9_share *sh;
	int ret = reserve(pl, p, &sh, err, errlen);

	if (ret)
		return ret;
	ret = plug(pl, sh, err, errlen);
	if (ret) {
		release(sh);
		return ret;
	}
	sh->state = PLAN9_ATTACHED;
	return 0;
}

void plan9_method_add(struct plan9 *pl, struct bridge *bridge, bool running, struct ctl_req *req)
{
	struct plan9_params p;
	struct plan9_share *sh;
	char err[CTL_ERRLEN], why[256];
	int ret;

	if (plan9_parse_add(req->params, &p, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (running && !bridge_ready(bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	if (!running) {
		ret = plan9_attach_cold(pl, &p, why, sizeof(why));
		if (ret)
			ctl_req_error(req, plug_err_code(ret), "%s", why);
		else
			ctl_req_result(req, share_result(plan9_find(pl, p.name)));
		return;
	}
	ret = reserve(pl, &p, &sh, why, sizeof(why));
	if (!ret) {
		ret = plug(pl, sh, why, sizeof(why));
		if (ret)
			release(sh);
	}
	if (ret) {
		ctl_req_error(req, plug_err_code(ret), "%s", why);
		return;
	}
	sh->req = req;
	ret = guest_request(sh, bridge, BRIDGE_RPC_PLAN9_ADD, on_add_resp);
	if (ret < 0)
		on_add_resp(sh, ret, "cannot send the request to the guest", NULL);
}

/* ---- plan9.remove ------------------------------------------------------------------ */

static void on_remove_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct plan9_share *sh = opaque;
	struct ctl_req *req = sh->req;
	cJSON *r;

	sh->req = NULL;
	if (status && status != -ECANCELED) {
		sh->state = PLAN9_ATTACHED; /* still mounted: the parent may retry */
		if (req)
			ctl_req_error(req, guest_code(status),
				      "the guest could not unmount the share: %s",
				      error ? error : strerror(-status));
		return;
	}
	/* Only now that the guest let go: unplug and free (from the loop). */
	if (status) {
		retire(sh, req, CTL_ERR_CANCELLED, NULL, "the VM went away during the removal");
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "name", sh->name);
	retire(sh, req, 0, r, NULL);
}

void plan9_method_remove(struct plan9 *pl, struct bridge *bridge, bool running, struct ctl_req *req)
{
	char err[CTL_ERRLEN];
	struct plan9_share *sh;
	const char *name;
	int ret;

	if (!cJSON_IsObject(req->params)) {
		ctl_req_bad_params(req, "params: expected an object");
		return;
	}
	if (ctl_param_str(req->params, "name", true, &name, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	sh = plan9_find(pl, name);
	if (!sh) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no share named %s", name);
		return;
	}
	if (sh->state != PLAN9_ATTACHED) {
		ctl_req_error(req, CTL_ERR_BUSY, "share %s is being %s", name,
			      sh->state == PLAN9_ADDING ? "added" : "removed");
		return;
	}
	sh->req = req;
	if (!running || !sh->in_guest) {
		on_remove_resp(sh, 0, NULL, NULL); /* the guest never mounted it */
		return;
	}
	if (!bridge_ready(bridge)) {
		sh->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	sh->state = PLAN9_REMOVING;
	ret = guest_request(sh, bridge, BRIDGE_RPC_PLAN9_REMOVE, on_remove_resp);
	if (ret < 0) {
		sh->state = PLAN9_ATTACHED;
		sh->req = NULL;
		ctl_req_error(req, CTL_ERR_GUEST, "cannot reach the guest agent: %s",
			      strerror(-ret));
	}
}

/* ---- shares present at boot -------------------------------------------------------- */

static void boot_finish_one(struct plan9 *pl)
{
	plan9_boot_fn fn;

	if (--pl->boot_pending > 0 || !pl->boot_fn)
		return;
	fn = pl->boot_fn;
	pl->boot_fn = NULL;
	fn(pl->boot_opaque, pl->boot_err, pl->boot_msg);
}

static void on_boot_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct plan9_share *sh = opaque;
	struct plan9 *pl = sh->owner;

	if (status) {
		if (!pl->boot_err) {
			pl->boot_err = status;
			snprintf(pl->boot_msg, sizeof(pl->boot_msg), "share %s (%s): %s", sh->name,
				 sh->host_path, error ? error : strerror(-status));
		}
		sh->state = PLAN9_ATTACHED;
	} else {
		note_mounted(sh, body);
	}
	boot_finish_one(pl);
}

void plan9_boot_attach(struct plan9 *pl, struct bridge *bridge, plan9_boot_fn fn, void *opaque)
{
	pl->boot_fn = fn;
	pl->boot_opaque = opaque;
	pl->boot_err = 0;
	pl->boot_msg[0] = '\0';
	pl->boot_pending = 1;
	for (int i = 0; i < PLAN9_MAX_SHARES; i++) {
		struct plan9_share *sh = &pl->shares[i];

		if (sh->state != PLAN9_ATTACHED || sh->in_guest)
			continue;
		sh->state = PLAN9_ADDING;
		pl->boot_pending++;
		if (guest_request(sh, bridge, BRIDGE_RPC_PLAN9_ADD, on_boot_resp) < 0)
			on_boot_resp(sh, -ENOTCONN, "cannot send the request to the guest", NULL);
	}
	boot_finish_one(pl);
}
