/*
 * Privilege drop (seccomp.h): once the VM is built, nothing the shim does
 * needs a capability.
 *
 * After machine_start the shim opens files (guest.exec's stdio paths, later
 * scsi.add disks), Unix sockets and eventfds, and talks to fds it already
 * holds (/dev/kvm, the VM, the disks). Run as root without capabilities it
 * still opens every file root owns through the owner's permission bits, which
 * covers what a runtime hands a shim (its state and FIFO directories, layer
 * files it created). CAP_DAC_OVERRIDE is dropped as well: a file of another
 * user must be made accessible to the shim by the caller, and a compromised
 * shim cannot reach files root itself cannot open. The same goes for
 * CAP_NET_ADMIN (a later nic.add on a tap must get a tap the shim may open).
 */
#include "seccomp/seccomp.h"

#include <cap-ng.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "vmm/log.h"

#define TAG "seccomp"

/* no_new_privs, then every capability but keep[] (all of them when nr_keep is 0). */
static int drop_all_but(const unsigned *keep, int nr_keep)
{
	int ret;

	/* No execve can give back what is dropped here (setuid files, file caps). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		pr_err_errno(TAG, "PR_SET_NO_NEW_PRIVS");
		return ret;
	}
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE)
		return 0; /* an unprivileged user: nothing to drop */
	/* The bounding set goes first (it needs CAP_SETPCAP), then the sets. */
	capng_clear(CAPNG_SELECT_ALL);
	for (int i = 0; i < nr_keep; i++)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
			     keep[i]);
	ret = capng_apply(CAPNG_SELECT_ALL);
	if (ret < 0) {
		pr_err(TAG, "cannot drop capabilities (capng_apply %d)", ret);
		return -EPERM;
	}
	pr_dbg(TAG, "capabilities dropped (%d kept)", nr_keep);
	return 0;
}

int sandbox_drop_privileges(void)
{
	if (sandbox_mode() == SANDBOX_OFF)
		return 0;
	return drop_all_but(NULL, 0);
}

/*
 * The mounter keeps CAP_SYS_ADMIN to mount, and what overlayfs needs of the
 * process that mounts it: overlayfs acts on its upper layer with the mounter's
 * credentials for the mount's whole life (copy-up keeps a file's owner, mode
 * and times: CHOWN, FOWNER, FSETID; whiteouts are 0:0 character devices:
 * MKNOD; layers of other owners: DAC_OVERRIDE, DAC_READ_SEARCH; without
 * DAC_OVERRIDE the mount itself fails with EACCES).
 */
int sandbox_mounter(void)
{
	static const unsigned keep[] = {
	    CAP_SYS_ADMIN, CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
	    CAP_FOWNER,	   CAP_FSETID, CAP_MKNOD};

	if (sandbox_mode() == SANDBOX_OFF)
		return 0;
	return drop_all_but(keep, sizeof(keep) / sizeof(keep[0])) ? -EPERM
								  : sandbox_apply(SANDBOX_MOUNTER);
}

int sandbox_p9_spawner(void)
{
	static const unsigned keep[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
					CAP_FOWNER, CAP_FSETID};
	int ret;

	if (sandbox_mode() == SANDBOX_OFF)
		return 0;
	ret = drop_all_but(keep, sizeof(keep) / sizeof(keep[0]));
	/* The workers install theirs with one seccomp() call: no libseccomp under this filter. */
	if (!ret)
		ret = sandbox_prepare(SANDBOX_P9);
	return ret ? ret : sandbox_apply(SANDBOX_P9_SPAWN);
}

/*
 * A read-only share needs to read files of any owner, nothing else: the four
 * other capabilities go from this thread (raw capget/capset: lowering needs
 * no privilege; the bounding set cannot shrink without CAP_SETPCAP, and with
 * no_new_privs and no execve it gives nothing back).
 */
static int keep_read_search_only(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	const int i = CAP_TO_INDEX(CAP_DAC_READ_SEARCH);
	const uint32_t m = CAP_TO_MASK(CAP_DAC_READ_SEARCH);

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	for (int k = 0; k < 2; k++) {
		d[k].effective &= k == i ? m : 0;
		d[k].permitted &= k == i ? m : 0;
		d[k].inheritable = 0;
	}
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int sandbox_p9_worker(int root_fd, bool read_only)
{
	int ret;

	if (sandbox_mode() == SANDBOX_OFF)
		return 0;
	ret = read_only ? keep_read_search_only() : 0;
	if (!ret) {
		ret = sandbox_landlock_beneath(root_fd, read_only);
		if (ret > 0)
			ret = 0; /* no Landlock: openat2 beneath the root still confines */
	}
	return ret ? ret : sandbox_apply(SANDBOX_P9);
}
