/*
 * The root filesystem containerd prepares for a task: the mounts of
 * CreateTaskRequest.rootfs (overlay with the overlayfs snapshotter, a bind
 * with native) made on the bundle's rootfs/ on the host, before it is
 * shared into the guest over 9p; undone when the task goes.
 */
#ifndef SHIM_TASK_MOUNT_H
#define SHIM_TASK_MOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/proto/types.pb-c.h"

#define TASK_MOUNT_DATA_MAX 4096 /* a page: what mount(2) takes as data */
#define TASK_MOUNT_ERRLEN   256

/*
 * Splits mount options into mount(2) flags (ro, bind, rbind, nosuid ...)
 * and the comma-joined rest (data, cap bytes). -E2BIG when the rest does not
 * fit, -EINVAL for an option with a control character or a comma.
 */
int task_mount_options(char *const *opts, size_t n, unsigned long *flags, char *data, size_t cap);

/* Whether m (its options parsed into flags) is a bind: type "bind" or none, with bind/rbind. */
bool task_mount_is_bind(const Uvm__Ctrd__Mount *m, unsigned long flags);

/*
 * Mounts each mount on target in order (an empty type with a bind option is
 * a bind). On failure nothing stays mounted; err says which mount failed.
 */
int task_mount_rootfs(Uvm__Ctrd__Mount *const *m, size_t n, const char *target,
		      char err[TASK_MOUNT_ERRLEN]);
/* Unmounts everything on target (detached); 0 when nothing is left mounted there. */
int task_unmount_rootfs(const char *target);

#endif
