/* The task's root filesystem on the host (see task_mount.h). */
#include "shim/task_mount.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

static const struct {
	const char *name;
	unsigned long set, clear;
} flag_opts[] = {
    {"ro", MS_RDONLY, 0},
    {"rw", 0, MS_RDONLY},
    {"bind", MS_BIND, 0},
    {"rbind", MS_BIND | MS_REC, 0},
    {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},
    {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},
    {"exec", 0, MS_NOEXEC},
    {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS},
    {"noatime", MS_NOATIME, 0},
    {"nodiratime", MS_NODIRATIME, 0},
    {"relatime", MS_RELATIME, 0},
    {"strictatime", MS_STRICTATIME, 0},
    {"rprivate", MS_PRIVATE | MS_REC, 0},
    {"private", MS_PRIVATE, 0},
};

int task_mount_options(char *const *opts, size_t n, unsigned long *flags, char *data, size_t cap)
{
	size_t len = 0;

	*flags = 0;
	if (cap)
		data[0] = 0;
	for (size_t i = 0; i < n; i++) {
		const char *o = opts[i];
		bool known = false;

		for (const char *c = o; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == ',')
				return -EINVAL;
		for (size_t k = 0; k < sizeof(flag_opts) / sizeof(flag_opts[0]); k++)
			if (!strcmp(o, flag_opts[k].name)) {
				*flags = (*flags & ~flag_opts[k].clear) | flag_opts[k].set;
				known = true;
			}
		if (known || !o[0])
			continue;
		if (len + (len ? 1 : 0) + strlen(o) + 1 > cap)
			return -E2BIG;
		len += snprintf(data + len, cap - len, "%s%s", len ? "," : "", o);
	}
	return 0;
}

bool task_mount_is_bind(const Uvm__Ctrd__Mount *m, unsigned long flags)
{
	return (flags & MS_BIND) && (!m->type[0] || !strcmp(m->type, "bind"));
}

int task_unmount_rootfs(const char *target)
{
	/* Stacked mounts come off one at a time; a bound on the loop in case of a surprise. */
	for (int i = 0; i < 64; i++)
		if (umount2(target, MNT_DETACH))
			return errno == EINVAL || errno == ENOENT ? 0 : -errno;
	return -EBUSY;
}

int task_mount_rootfs(Uvm__Ctrd__Mount *const *m, size_t n, const char *target,
		      char err[TASK_MOUNT_ERRLEN])
{
	char data[TASK_MOUNT_DATA_MAX];
	unsigned long flags;
	int ret;

	for (size_t i = 0; i < n; i++) {
		const char *type = m[i]->type && m[i]->type[0] ? m[i]->type : NULL;

		ret =
		    task_mount_options(m[i]->options, m[i]->n_options, &flags, data, sizeof(data));
		if (ret) {
			snprintf(err, TASK_MOUNT_ERRLEN, "rootfs[%zu]: %s", i,
				 ret == -E2BIG ? "options over a page" : "a bad option");
			goto fail;
		}
		if (type && !strcmp(type, "bind"))
			flags |= MS_BIND, type = NULL;
		if (!type && !(flags & MS_BIND)) {
			snprintf(err, TASK_MOUNT_ERRLEN, "rootfs[%zu]: no type", i);
			ret = -EINVAL;
			goto fail;
		}
		if (mount(m[i]->source, target, type, flags & MS_BIND ? flags & ~MS_RDONLY : flags,
			  data[0] ? data : NULL)) {
			ret = -errno;
			snprintf(err, TASK_MOUNT_ERRLEN, "rootfs[%zu]: mount %.40s on %.120s: %s",
				 i, type ? type : "bind", target, strerror(-ret));
			goto fail;
		}
		/* A read-only bind takes a remount. */
		if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
		    mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)) {
			ret = -errno;
			snprintf(err, TASK_MOUNT_ERRLEN, "rootfs[%zu]: read-only remount: %s", i,
				 strerror(-ret));
			goto fail;
		}
	}
	return 0;
fail:
	task_unmount_rootfs(target);
	return ret;
}
