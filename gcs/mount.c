/* The pseudo file systems every guest needs. */
#include "gcs/gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

struct gcs_mount {
	const char *source, *target, *type, *data;
	unsigned long flags;
	mode_t mode;
};

/* Controllers the containers' cgroups get (crun creates one per container below). */
#define GCS_CGROUP_CONTROLLERS "+memory +cpu +pids +io"

/* Order matters: /dev before /dev/pts and /dev/shm, /sys before its cgroup2. */
static const struct gcs_mount gcs_mounts[] = {
    {"proc", "/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0555},
    {"sysfs", "/sys", "sysfs", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0555},
    {"devtmpfs", "/dev", "devtmpfs", "mode=0755", MS_NOSUID, 0755},
    {"devpts", "/dev/pts", "devpts", "gid=5,mode=0620,ptmxmode=0666", MS_NOSUID | MS_NOEXEC, 0755},
    {"tmpfs", "/dev/shm", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, 01777},
    {"tmpfs", "/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, 01777},
    {"tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV, 0755},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0555},
};

/*
 * pivot_root(2) refuses a mount namespace whose root is the initramfs (the
 * rootfs mount has no parent), so crun could only chroot containers, which a
 * container with CAP_SYS_ADMIN can leave. A recursive bind of / moved over /
 * and chrooted into gives the agent, and every namespace it makes, a root
 * with a parent: crun pivots as it does on any host. Nothing is copied.
 */
int gcs_root_off_initramfs(void)
{
	if (mkdir("/.root", 0700) && errno != EEXIST)
		return -errno;
	if (mount("/", "/.root", NULL, MS_BIND | MS_REC, NULL) || chdir("/.root") ||
	    mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") || chdir("/"))
		return -errno;
	return 0;
}

int gcs_mount_basics(void)
{
	int ret = 0, err;

	for (size_t i = 0; i < sizeof(gcs_mounts) / sizeof(gcs_mounts[0]); i++) {
		const struct gcs_mount *m = &gcs_mounts[i];

		if (mkdir(m->target, m->mode) && errno != EEXIST) {
			gcs_log_errno("mkdir %s", m->target);
			if (!ret)
				ret = -errno;
			continue;
		}
		/* EBUSY: already mounted (the kernel may have mounted devtmpfs). */
		if (mount(m->source, m->target, m->type, m->flags, m->data) && errno != EBUSY) {
			gcs_log_errno("mount %s on %s", m->type, m->target);
			if (!ret)
				ret = -errno;
		}
	}
	/* The root cgroup holds the agent itself, which the no-internal-process
	 * rule allows; the containers' cgroups below it get these controllers. */
	err = gcs_write_str("/sys/fs/cgroup/cgroup.subtree_control", GCS_CGROUP_CONTROLLERS);
	if (err) {
		errno = -err;
		gcs_log_errno("cgroup2: enabling %s", GCS_CGROUP_CONTROLLERS);
		if (!ret)
			ret = err;
	}
	return ret;
}

void gcs_console_fds(void)
{
	int fd;

	if (fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}
