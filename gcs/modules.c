/* Kernel module loading, in the order the initrd builder computed. */
#include "gcs/gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int gcs_load_module(int dirfd, const char *name)
{
	int fd, ret = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* No glibc wrapper for finit_module in bookworm's headers. */
	if (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST)
		ret = -errno;
	close(fd);
	return ret;
}

int gcs_load_modules(const char *dir, const char *order, int *loaded)
{
	char path[4096], line[256];
	int dirfd, failed = 0;
	FILE *f;

	*loaded = 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", dir, order);
	f = fopen(path, "re");
	if (!f) {
		int err = -errno;

		close(dirfd);
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		int ret;

		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		ret = gcs_load_module(dirfd, line);
		if (ret) {
			gcs_log("module %s: %s", line, strerror(-ret));
			failed++;
		} else {
			(*loaded)++;
		}
	}
	fclose(f);
	close(dirfd);
	return failed;
}
