/*
 * Named network namespaces for containers (hcsshim's AddNetNS / RemoveNetNS):
 * /run/netns/<name>, a bind mount of a new namespace's nsfs file, as
 * `ip netns add` makes them. A container's spec joins one by path
 * (linux.namespaces: {"type":"network","path":"/run/netns/<name>"}); nic_add
 * with "netns" moves a NIC into one (net.c, through gcs_netns_enter). The
 * bridge's netns_add / netns_remove are served in netns_req.c. Only libc
 * and gcs_log here: net.c's host-side test links it.
 */
#include "gcs/gcs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns"

/* ---- the namespaces -------------------------------------------------------------- */

int gcs_netns_path(const char *name, char *out, size_t len)
{
	size_t n = name ? strlen(name) : 0;

	/* As a container id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64. */
	if (n < 1 || n > 64 || !isalnum((unsigned char)name[0]))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return -EINVAL;
	snprintf(out, len, "%s/%s", NETNS_DIR, name);
	return 0;
}

int gcs_netns_make(const char *path)
{
	int status, fd;
	pid_t pid;

	if (mkdir(NETNS_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return -errno;
	close(fd);
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		struct ifreq ifr = {.ifr_name = "lo"};
		int s;

		if (unshare(CLONE_NEWNET) < 0 ||
		    mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
			_exit(1);
		s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags |= IFF_UP;
			ioctl(s, SIOCSIFFLAGS, &ifr);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			goto fail;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	errno = EIO;
fail:
	status = -errno;
	unlink(path);
	return status;
}

int gcs_netns_enter(const char *name, int *saved)
{
	char path[PATH_MAX];
	int fd, ret = 0;

	if (gcs_netns_path(name, path, sizeof(path)))
		return -EINVAL;
	*saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*saved < 0 || fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	if (ret && *saved >= 0) {
		close(*saved);
		*saved = -1;
	}
	return ret;
}

void gcs_netns_leave(int saved)
{
	if (saved < 0)
		return;
	if (setns(saved, CLONE_NEWNET) < 0)
		gcs_log_errno("netns: cannot return to the agent's namespace");
	close(saved);
}

int gcs_netns_open(const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (gcs_netns_path(name, path, sizeof(path)))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}
