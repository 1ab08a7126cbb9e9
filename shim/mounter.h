/*
 * The mounter: a process the containerd shim's daemon forks when it starts,
 * before its sandbox, that keeps CAP_SYS_ADMIN (and the file capabilities
 * overlayfs uses on its layers with its mounter's credentials) to mount a CRI pod container's root filesystem (the overlayfs
 * snapshotter's overlay, a bind) on its bundle's rootfs/, which the
 * sandboxed daemon no longer may (docs/containerd.md "Pods").
 *
 * The daemon is trusted until its VM starts and not after (a guest that
 * took it over could ask for anything), so the mounter checks every request
 * against rules fixed while it was trusted:
 *   - the roots: the first request (mounter_set_roots, sent at the VM's first
 *     Create, before vm.start) names the sandbox's own mounts; the snapshot
 *     directories they live in (a path's prefix up to its `snapshots`
 *     component) are the only places a later mount may take its sources from;
 *   - the target: `<dir>/<id>/rootfs` where dir is where the daemon's own
 *     bundle is (containerd's bundles of one namespace), id a container id,
 *     no symlink on the way;
 *   - the mounts: `overlay` (lowerdir, upperdir, workdir and a short list of
 *     plain options) or a bind, at most TASK_MOUNT_MAX, every source path
 *     absolute, without `.`/`..`, beneath a root and free of symlinks;
 *     nosuid and nodev are added (the guest reaches the files over 9p, which
 *     gives no device and honours no setuid of the host).
 * Its own seccomp filter (SANDBOX_MOUNTER) allows mount and umount2 and the
 * few calls around them (no open for I/O, no exec, no socket); it has
 * no_new_privs, and dies with the daemon. Only a pod's sandbox's daemon
 * starts one.
 */
#ifndef SHIM_MOUNTER_H
#define SHIM_MOUNTER_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/proto/types.pb-c.h"
#include "shim/task_mount.h"

#define MOUNTER_ROOTS_MAX  8
#define MOUNTER_MOUNTS_MAX 8

/* What a request is checked against (mounter_rules.c, pure). */
struct mounter_rules {
	char bundles[4096]; /* the directory of the daemon's own bundle */
	char roots[MOUNTER_ROOTS_MAX][4096];
	int nr_roots;
	bool roots_set;
};

/* The rules of a daemon whose bundle is bundle (absolute): -EINVAL when it is not. */
int mounter_rules_init(struct mounter_rules *r, const char *bundle);
/* Fixes the roots from the trusted first task's mounts: -EPERM when already set. */
int mounter_rules_set_roots(struct mounter_rules *r, Uvm__Ctrd__Mount *const *m, size_t n);
/*
 * Whether mounting m[0..n) on bundle's rootfs/ passes the rules (the paths'
 * shape and place only; symlinks are the caller's check). 0 or -errno with err.
 */
int mounter_rules_check(const struct mounter_rules *r, const char *bundle,
			Uvm__Ctrd__Mount *const *m, size_t n, char err[TASK_MOUNT_ERRLEN]);
/* Calls fn on every host path a mount names (bind source, overlay dirs); stops at nonzero. */
int mounter_for_each_path(const Uvm__Ctrd__Mount *m, int (*fn)(const char *path, void *arg),
			  void *arg);

/* Forks the mounter for the daemon whose bundle is bundle. A no-op when the sandbox is off. */
int mounter_start(const char *bundle) __attribute__((warn_unused_result));
bool mounter_running(void);
void mounter_stop(void);
/* The roots, from the first task's mounts (before vm.start). 0 or -errno. */
int mounter_set_roots(Uvm__Ctrd__Mount *const *m, size_t n);
/* m[0..n) mounted on bundle's rootfs/ by the mounter: 0, or -errno with err. */
int mounter_mount(const char *bundle, Uvm__Ctrd__Mount *const *m, size_t n,
		  char err[TASK_MOUNT_ERRLEN]);

#endif
