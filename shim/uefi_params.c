/* vm.create's "uefi" object (uefi_params.h). */
#include "shim/uefi_params.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Opens rel beneath dirfd as a regular file and writes its resolved path to out. */
static int resolve_beneath(int dirfd, const char *field, const char *dirfield, const char *rel,
			   char *out, size_t len, char err[CTL_ERRLEN])
{
	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char link[64];
	struct stat st;
	ssize_t n;
	int fd;

	if (!*rel) {
		snprintf(err, CTL_ERRLEN, "%s: empty path", field);
		return -EINVAL;
	}
	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0) {
		int e = errno;

		snprintf(err, CTL_ERRLEN, "%s: %s: %s%s", field, rel,
			 e == EXDEV ? "leads outside " : strerror(e), e == EXDEV ? dirfield : "");
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, CTL_ERRLEN, "%s: %s: not a regular file", field, rel);
		close(fd);
		return -EINVAL;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, len - 1);
	close(fd);
	if (n < 0 || (size_t)n >= len - 1) {
		snprintf(err, CTL_ERRLEN, "%s: %s: cannot name the resolved file", field, rel);
		return -EINVAL;
	}
	out[n] = '\0';
	return 0;
}

const char *const uefi_json_names[3] = {"params.uefi.dir", "params.uefi.path",
					"params.uefi.initrd"};
const char *const uefi_cli_names[3] = {"--efi-dir", "--efi-path", "--efi-initrd"};

int uefi_resolve_app(const char *dir, const char *path, const char *initrd,
		     const char *const names[3], char kernel_out[PATH_MAX],
		     char initrd_out[PATH_MAX], char err[CTL_ERRLEN])
{
	int dirfd, ret;

	initrd_out[0] = '\0';
	dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		snprintf(err, CTL_ERRLEN, "%s: %s: %s", names[0], dir, strerror(errno));
		return -EINVAL;
	}
	ret = resolve_beneath(dirfd, names[1], names[0], path, kernel_out, PATH_MAX, err);
	if (!ret && initrd)
		ret = resolve_beneath(dirfd, names[2], names[0], initrd, initrd_out, PATH_MAX, err);
	close(dirfd);
	return ret;
}

int uefi_params_parse(const cJSON *params, struct uefi_params *u, char err[CTL_ERRLEN])
{
	static const char *const excluded[] = {"kernel", "initrd", "firmware", "cmdline"};
	const char *dir = NULL, *path = NULL, *initrd = NULL, *vars = NULL;
	const cJSON *o;
	bool disk = false;
	int ret;

	ret = ctl_param_obj(params, "uefi", false, &o, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++)
		if (cJSON_GetObjectItemCaseSensitive(params, excluded[i])) {
			snprintf(err, CTL_ERRLEN, "params.uefi: excludes params.%s", excluded[i]);
			return -EINVAL;
		}
	*u = (struct uefi_params){0};
	if (ctl_param_str(o, "firmware", true, &u->firmware, err) ||
	    ctl_param_str(o, "vars", false, &vars, err) == -EINVAL ||
	    ctl_param_bool(o, "disk", false, &disk, err) == -EINVAL ||
	    ctl_param_str(o, "dir", false, &dir, err) == -EINVAL ||
	    ctl_param_str(o, "path", false, &path, err) == -EINVAL ||
	    ctl_param_str(o, "args", false, &u->args, err) == -EINVAL ||
	    ctl_param_str(o, "initrd", false, &initrd, err) == -EINVAL)
		goto prefix;
	if (vars) {
		snprintf(err, CTL_ERRLEN,
			 "params.uefi.vars: a persistent variable store is not built yet "
			 "(docs/boot.md)");
		return -EINVAL;
	}
	if (disk) {
		snprintf(err, CTL_ERRLEN,
			 "params.uefi.disk: booting from a disk's EFI system partition is not "
			 "built yet (docs/boot.md)");
		return -EINVAL;
	}
	if (!dir || !path) {
		snprintf(err, CTL_ERRLEN,
			 "params.uefi.%s: missing (the EFI application is "
			 "dir/path)",
			 dir ? "path" : "dir");
		return -EINVAL;
	}
	return uefi_resolve_app(dir, path, initrd, uefi_json_names, u->kernel, u->initrd, err);
prefix:
	/* The helpers name the key alone: say it is inside "uefi". */
	if (!strncmp(err, "params.", 7)) {
		char msg[CTL_ERRLEN];

		snprintf(msg, sizeof(msg), "params.uefi.%s", err + 7);
		memcpy(err, msg, CTL_ERRLEN);
	}
	return -EINVAL;
}
