/*
 * Landlock (seccomp.h): once the VM is built the shim's threads open nothing
 * by path beyond what they still need themselves, listed below. Every file
 * the parent names after that comes from the opener process
 * (shim/opener.h), which is not Landlocked and checks what it opens.
 *
 * Landlock domains belong to a thread and the threads it creates later: the
 * loop thread restricts itself before it starts the vCPUs, so they inherit
 * it. The 9p spawner (made at vm.create) stays outside, and each worker it
 * makes for a share added later restricts itself beneath that share's root
 * (sandbox_landlock_beneath): a domain can only narrow, so a worker serves one
 * share (docs/seccomp.md).
 *
 * Rights handled: every filesystem right of ABI 1, REFER (ABI 2), TRUNCATE
 * (ABI 3) when the kernel has them. Debian 12's 6.1 kernel has ABI 2.
 */
#include "seccomp/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"

#define TAG "landlock"

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule	     445
#define __NR_landlock_restrict_self  446
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/* ABI 1: execute .. make_sym, the 13 first bits. */
#define LL_ABI1 ((1ULL << 13) - 1)
/* Rights that make sense on a file (not a directory) in a rule. */
#define LL_FILE_RIGHTS                                                                             \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

int sandbox_landlock_abi(void)
{
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return abi < 0 ? -errno : (int)abi;
}

static int add_path(int rfd, const char *path, uint64_t access, uint64_t handled)
{
	struct landlock_path_beneath_attr pb = {.allowed_access = access & handled};
	struct stat st;
	int ret = 0;

	pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (pb.parent_fd < 0)
		return -errno;
	if (fstat(pb.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode))
		pb.allowed_access &= LL_FILE_RIGHTS;
	if (syscall(__NR_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		ret = -errno;
	close(pb.parent_fd);
	return ret;
}

/*
 * guest.dump_stacks symbolizes the shim's frames from the ELF files mapped
 * (shim/stacks.c): each may be read, nothing beside it.
 */
static int add_mapped_files(int rfd, uint64_t handled)
{
	char line[4352], last[4096] = "";
	FILE *f = fopen("/proc/self/maps", "re");
	int ret = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');
		size_t n;

		if (!path)
			continue;
		n = strcspn(path, "\n");
		path[n] = '\0';
		if (strstr(path, " (deleted)") || !strcmp(path, last) || n >= sizeof(last))
			continue;
		memcpy(last, path, n + 1);
		ret = add_path(rfd, path, LANDLOCK_ACCESS_FS_READ_FILE, handled);
		if (ret && ret != -ENOENT && ret != -EACCES)
			break;
		ret = 0;
	}
	fclose(f);
	return ret;
}

/* Every right this kernel knows (of those above), for a ruleset's handled set. */
static uint64_t handled_rights(int abi)
{
	uint64_t h = LL_ABI1;

	if (abi >= 2)
		h |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		h |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return h;
}

/* Enters the domain of ruleset rfd (closed). Needs no_new_privs, set here. */
static int restrict_self(int rfd)
{
	int ret = 0;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(__NR_landlock_restrict_self, rfd, 0) < 0)
		ret = -errno;
	close(rfd);
	return ret;
}

int sandbox_landlock_beneath(int root_fd, bool read_only)
{
	struct landlock_ruleset_attr attr = {0};
	struct landlock_path_beneath_attr pb = {.parent_fd = root_fd};
	int abi = sandbox_landlock_abi(), rfd, ret;

	if (abi < 1)
		return 1;
	attr.handled_access_fs = handled_rights(abi);
	/*
	 * A read-only share is read and listed; a writable one gets every right but
	 * execute (a worker never executes) and device nodes (CAP_MKNOD is gone).
	 */
	pb.allowed_access = read_only ? LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR
				      : attr.handled_access_fs & ~(LANDLOCK_ACCESS_FS_EXECUTE |
								   LANDLOCK_ACCESS_FS_MAKE_CHAR |
								   LANDLOCK_ACCESS_FS_MAKE_BLOCK);
	rfd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rfd < 0)
		return -errno;
	if (syscall(__NR_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
		ret = -errno;
		close(rfd);
		return ret;
	}
	return restrict_self(rfd);
}

int sandbox_landlock(void)
{
	struct landlock_ruleset_attr attr = {0};
	int abi, rfd, ret;

	if (sandbox_mode() == SANDBOX_OFF)
		return 0;
	abi = sandbox_landlock_abi();
	if (abi < 1) {
		pr_warn(TAG,
			"Landlock is not available (%s): the shim's threads keep their access "
			"to the filesystem (files named after setup still come from the opener)",
			strerror(abi < 0 ? -abi : ENOSYS));
		return 0;
	}
	attr.handled_access_fs = handled_rights(abi);
	rfd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rfd < 0) {
		ret = -errno;
		pr_err(TAG, "landlock_create_ruleset: %s", strerror(-ret));
		return ret;
	}
	/*
	 * What the threads still open themselves:
	 *  - /proc, read: guest.dump_stacks lists /proc/self/task and reads each
	 *    thread's stat (gcs/stacks_core.c); the sanitizer runtime reads
	 *    /proc/self/maps;
	 *  - the mapped ELF files, read: dump_stacks' symbols;
	 *  - /dev/net/tun, read and write: nic.add of a tap, opened in the pod's
	 *    network namespace (virtio/net_tap.c), which the opener cannot enter.
	 * Namespace files (nsfs) and the fds of pipes and sockets are not
	 * Landlock's to refuse.
	 */
	ret = add_path(rfd, "/proc", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR,
		       attr.handled_access_fs);
	if (!ret)
		ret = add_mapped_files(rfd, attr.handled_access_fs);
	if (!ret) {
		ret = add_path(rfd, "/dev/net/tun",
			       LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
			       attr.handled_access_fs);
		if (ret == -ENOENT)
			ret = 0;
	}
	if (ret) {
		pr_err(TAG, "cannot add a rule: %s", strerror(-ret));
		goto out;
	}
	/* cmos_access's first time conversion reads /etc/localtime: before the door shuts. */
	tzset();
	ret = restrict_self(rfd);
	if (ret)
		pr_err(TAG, "landlock_restrict_self: %s", strerror(-ret));
	else
		pr_info(TAG, "Landlock ABI %d: files named from now on come from the opener", abi);
	return ret;
out:
	close(rfd);
	return ret;
}
