/*
 * What a daemon taken over by its guest could send the mounter: arbitrary
 * bytes decoded as its request (a CreateTaskRequest's bundle and rootfs
 * mounts), checked by the rules a sandbox's overlay mounts fixed. A request
 * the rules pass must name a bundle beside the sandbox's and only paths
 * beneath its snapshots, without `..`: anything else traps. The same bytes
 * also fix the roots of fresh rules (the trusted side, for coverage), and
 * are read as a config.json's pod annotations.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shim/mounter.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"

#define SNAP "/c/io.containerd.snapshotter.v1.overlayfs/snapshots"

static int beneath(const char *path, void *arg)
{
	if (strncmp(path, SNAP "/", sizeof(SNAP)) || strstr(path, "/../") || strstr(path, "/./") ||
	    strstr(path, "//"))
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *opts[] = {"lowerdir=" SNAP "/1/fs", "upperdir=" SNAP "/2/fs",
			       "workdir=" SNAP "/2/work"};
	Uvm__Ctrd__Mount m = UVM__CTRD__MOUNT__INIT, *ms[] = {&m};
	Uvm__Ctrd__CreateTaskRequest *q;
	struct mounter_rules r;
	char err[TASK_MOUNT_ERRLEN], *text, sandbox[128];

	q = uvm__ctrd__create_task_request__unpack(NULL, size, data);
	if (q) {
		m.type = "overlay";
		m.source = "overlay";
		m.options = opts;
		m.n_options = 3;
		if (mounter_rules_init(&r, "/s/ns/sb") || mounter_rules_set_roots(&r, ms, 1))
			__builtin_trap();
		if (!mounter_rules_check(&r, q->bundle, q->rootfs, q->n_rootfs, err)) {
			if (strncmp(q->bundle, "/s/ns/", 6) || strchr(q->bundle + 6, '/') ||
			    q->bundle[6] == '.')
				__builtin_trap();
			for (size_t i = 0; i < q->n_rootfs; i++)
				mounter_for_each_path(q->rootfs[i], beneath, NULL);
		}
		if (!mounter_rules_init(&r, "/s/ns/sb"))
			mounter_rules_set_roots(&r, q->rootfs, q->n_rootfs);
		protobuf_c_message_free_unpacked(&q->base, NULL);
	}
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	task_pod_sandbox_of(text, sandbox, sizeof(sandbox));
	task_pod_is_sandbox(text);
	free(text);
	return 0;
}
