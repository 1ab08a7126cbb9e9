/* Connecting stream sockets (sock.h). */
#include "gcs/sock.h"

#include <errno.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int sock_connect(const struct sockaddr *addr, socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, addr, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int sock_connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);

	/* A truncated path would reach another socket, or none. */
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	return sock_connect((struct sockaddr *)&sa, sizeof(sa));
}
