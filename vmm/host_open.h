/*
 * Host files the parent named (a disk, a pmem file, a share root, a console
 * file, the vsock socket's path). Devices call these instead of open() and
 * unlink(): once the sandbox is up the shim's threads may open nothing by
 * path (Landlock), and the hooks the shim installs (shim/opener.h) have a
 * helper process do it and hand the fd back. Without hooks they are plain
 * calls.
 */
#ifndef VMM_HOST_OPEN_H
#define VMM_HOST_OPEN_H

#include <sys/types.h>

struct host_open_ops {
	/* An fd (O_CLOEXEC) or -errno. */
	int (*open)(const char *path, int flags, mode_t mode);
	/* Removes path only if it is a Unix socket: 0 or -errno. */
	int (*unlink_socket)(const char *path);
};

/* Installs ops (NULL: plain calls). Call before any other thread exists. */
void host_open_set_ops(const struct host_open_ops *ops);

/* The fd (O_CLOEXEC added) or -errno. */
int host_open(const char *path, int flags, mode_t mode);
/* unlink(path) if path is a Unix socket (not followed): 0, -ENOTSOCK or -errno. */
int host_unlink_socket(const char *path);

#endif
