/* Host files the parent named: plain calls unless the sandbox installed its opener. */
#include "vmm/host_open.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct host_open_ops *host_ops;

void host_open_set_ops(const struct host_open_ops *ops)
{
	__atomic_store_n(&host_ops, ops, __ATOMIC_RELEASE);
}

int host_open(const char *path, int flags, mode_t mode)
{
	const struct host_open_ops *ops = __atomic_load_n(&host_ops, __ATOMIC_ACQUIRE);
	int fd;

	if (ops)
		return ops->open(path, flags | O_CLOEXEC, mode);
	fd = open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

int host_unlink_socket(const char *path)
{
	const struct host_open_ops *ops = __atomic_load_n(&host_ops, __ATOMIC_ACQUIRE);
	struct stat st;

	if (ops)
		return ops->unlink_socket(path);
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	return unlink(path) < 0 ? -errno : 0;
}
