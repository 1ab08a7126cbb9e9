/*
 * Pods: a CRI sandbox's shim runs the VM, and the pod's other containers join
 * it (docs/containerd.md "Pods"). containerd starts the shim binary for each
 * container; `start` sees the CRI annotations in the bundle's config.json and
 * answers with the sandbox shim's address (task_main.c), so the container's
 * Create arrives here, on the daemon that already runs the VM. Its root
 * filesystem reaches the guest as a 9p share of its own, hot-added, and the
 * container is created beside the sandbox's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "seccomp/seccomp.h"
#include "shim/container.h"
#include "shim/mounter.h"
#include "shim/task_mount.h"
#include "shim/task_priv.h"
#include "vmm/log.h"

#define TAG "task"

/* Where a pod container's share is mounted in the guest: beside the sandbox's. */
#define TASK_POD_GUEST_DIR "/run/gcs/p9/"

int task_pod_sandbox_of(const char *spec, char *out, size_t cap)
{
	cJSON *j = cJSON_Parse(spec);
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(j, "annotations");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(ann, TASK_ANN_TYPE);
	const cJSON *sb = cJSON_GetObjectItemCaseSensitive(ann, TASK_ANN_SANDBOX);
	int ret = -ENOENT;

	if (!cJSON_IsObject(j))
		ret = -EINVAL;
	else if (cJSON_IsString(type) && !strcmp(type->valuestring, "container") &&
		 cJSON_IsString(sb)) {
		ret = container_id_valid(sb->valuestring) ? 0 : -EINVAL;
		if (!ret && (size_t)snprintf(out, cap, "%s", sb->valuestring) >= cap)
			ret = -ENAMETOOLONG;
	}
	cJSON_Delete(j);
	return ret;
}

bool task_pod_is_sandbox(const char *spec)
{
	cJSON *j = cJSON_Parse(spec);
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(j, "annotations");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(ann, TASK_ANN_TYPE);
	bool yes = cJSON_IsString(type) && !strcmp(type->valuestring, "sandbox");

	cJSON_Delete(j);
	return yes;
}

int task_pod_admit(struct taskd *d, const char *spec, char *err, size_t errlen)
{
	char sandbox[128];
	int ret;

	if (d->vm_creating) {
		snprintf(err, errlen, "this shim's VM is still being created for task %.80s",
			 d->sandbox_id ? d->sandbox_id : "");
		return -1;
	}
	if (!d->vm_started || d->vm_gone || !d->sandbox_id) {
		snprintf(err, errlen,
			 "this shim's VM was already created and is gone: Shutdown it");
		return -1;
	}
	ret = task_pod_sandbox_of(spec, sandbox, sizeof(sandbox));
	if (ret || strcmp(sandbox, d->sandbox_id)) {
		snprintf(err, errlen,
			 "this shim's VM runs task %.80s: another task joins it only as a "
			 "container of that pod (annotations " TASK_ANN_TYPE
			 "=container, " TASK_ANN_SANDBOX "=%.80s)",
			 d->sandbox_id, d->sandbox_id);
		return -1;
	}
	if (!task_by_id(d, d->sandbox_id)) {
		snprintf(err, errlen, "pod sandbox %.80s was deleted", d->sandbox_id);
		return -1;
	}
	return 0;
}

/*
 * The host directory a joining container's root is shared from. One bind
 * mount (the native snapshotter's) is shared from its source as it is, with
 * no mount on the host; none shares the bundle's rootfs/ as containerd left
 * it. Anything else (the overlayfs snapshotter's overlay) is mounted on
 * rootfs/: by the mounter (shim/mounter.h) once vm.start took the daemon's
 * capabilities, in-process with the sandbox off.
 */
static char *join_root(struct task *t, const Uvm__Ctrd__CreateTaskRequest *q, bool *ro, char *err,
		       size_t errlen)
{
	char data[TASK_MOUNT_DATA_MAX], merr[TASK_MOUNT_ERRLEN], *rootfs = NULL;
	unsigned long flags = 0;
	const Uvm__Ctrd__Mount *m = q->n_rootfs == 1 ? q->rootfs[0] : NULL;

	*ro = false;
	if (m && !task_mount_options(m->options, m->n_options, &flags, data, sizeof(data)) &&
	    task_mount_is_bind(m, flags)) {
		if (m->source[0] != '/') {
			snprintf(err, errlen, "rootfs: a bind of %.200s: expected an absolute path",
				 m->source);
			return NULL;
		}
		*ro = flags & MS_RDONLY;
		return strdup(m->source);
	}
	if (asprintf(&rootfs, "%s/rootfs", q->bundle) < 0) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!q->n_rootfs)
		return rootfs;
	if (sandbox_mode() != SANDBOX_OFF && !mounter_running()) {
		snprintf(err, errlen,
			 "rootfs: %zu mount(s), the first of type %.40s: this shim started no "
			 "mounter (its first task is not a CRI sandbox), and its sandbox took "
			 "mount(2): only a single bind mount is shared as it is",
			 q->n_rootfs, q->rootfs[0]->type[0] ? q->rootfs[0]->type : "(none)");
		free(rootfs);
		return NULL;
	}
	if (mounter_running() ? mounter_mount(q->bundle, q->rootfs, q->n_rootfs, merr)
			      : task_mount_rootfs(q->rootfs, q->n_rootfs, rootfs, merr)) {
		snprintf(err, errlen, "rootfs: %s", merr);
		free(rootfs);
		return NULL;
	}
	t->rootfs_mounted = true;
	return rootfs;
}

static void on_share_added(struct taskd *d, void *arg, const cJSON *r, int code, const char *msg)
{
	struct create_op *op = arg;
	struct task *t = task_by_serial(d, op->serial);

	if (!r || !t) {
		task_create_fail(d, op, r ? TTRPC_NOT_FOUND : task_ctl_code(code),
				 "plan9.add of its rootfs: %s", r ? "the task is gone" : msg);
		return;
	}
	op->share_added = true;
	task_create_container(d, op, t->share);
}

void task_pod_join(struct taskd *d, struct create_op *op, struct task *t)
{
	char err[512], name[32], guest[64];
	char *host;
	bool ro;
	cJSON *p;

	host = join_root(t, op->req, &ro, err, sizeof(err));
	if (!host) {
		task_create_fail(d, op, TTRPC_FAILED_PRECONDITION, "%s", err);
		return;
	}
	snprintf(name, sizeof(name), "%s-%llu", TASK_ROOTFS_SHARE, (unsigned long long)t->serial);
	snprintf(guest, sizeof(guest), TASK_POD_GUEST_DIR "%s", name);
	t->share = strdup(name);
	if (!t->share) {
		free(host);
		task_create_fail(d, op, TTRPC_INTERNAL, "out of memory");
		return;
	}
	pr_info(TAG, "create %s: joins pod %s, root %s%s shared as %s", op->req->id, d->sandbox_id,
		host, ro ? " (read-only)" : "", name);
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddStringToObject(p, "host_path", host);
	cJSON_AddStringToObject(p, "guest_path", guest);
	cJSON_AddBoolToObject(p, "read_only", ro);
	free(host);
	task_ctl_call(d, "plan9.add", p, on_share_added, op);
}
