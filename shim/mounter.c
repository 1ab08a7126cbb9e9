/*
 * The mounter process (mounter.h): forked by the containerd shim's daemon
 * before its sandbox, it mounts pod containers' root filesystems for it.
 *
 * Wire: a SOCK_SEQPACKET socketpair, one request per message (a u32 op,
 * then a CreateTaskRequest packed with only its bundle and rootfs: the
 * project's own message, so no second encoding), one answer per request
 * ({err, message}).
 */
#include "shim/mounter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp/seccomp.h"
#include "shim/proto/task.pb-c.h"
#include "vmm/log.h"

#define TAG "mounter"

#define MOUNTER_REQ_MAX (64u << 10)

enum mounter_op {
	MOUNTER_SET_ROOTS = 1,
	MOUNTER_MOUNT,
};

struct mounter_resp {
	int32_t err;
	char msg[TASK_MOUNT_ERRLEN];
};

static int chan = -1;
static pid_t mounter_pid = -1;

/* ---- the mounter process ---------------------------------------------------------------- */

/* No symlink and no magic link anywhere on path: what the rules' string checks cannot see. */
static int no_symlink(const char *path, void *arg)
{
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	if (fd < 0) {
		*(const char **)arg = path;
		return -errno;
	}
	close(fd);
	return 0;
}

/*
 * The mounts, then nosuid and nodev on the one on top (the guest sees the files
 * over 9p): a per-mount flag change, which a bind takes only this way.
 */
static int mount_hardened(Uvm__Ctrd__Mount *const *m, size_t n, const char *target,
			  char err[TASK_MOUNT_ERRLEN])
{
	char data[TASK_MOUNT_DATA_MAX];
	unsigned long flags = 0;
	int ret = task_mount_rootfs(m, n, target, err);

	if (ret)
		return ret;
	task_mount_options(m[n - 1]->options, m[n - 1]->n_options, &flags, data, sizeof(data));
	if (mount(NULL, target, NULL,
		  MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (flags & MS_RDONLY), NULL)) {
		ret = -errno;
		snprintf(err, TASK_MOUNT_ERRLEN, "nosuid,nodev remount: %s", strerror(-ret));
		task_unmount_rootfs(target);
	}
	return ret;
}

static int serve_mount(const struct mounter_rules *r, const Uvm__Ctrd__CreateTaskRequest *q,
		       char err[TASK_MOUNT_ERRLEN])
{
	char target[4200];
	const char *bad = NULL;
	int ret = mounter_rules_check(r, q->bundle, q->rootfs, q->n_rootfs, err);

	if (ret)
		return ret;
	snprintf(target, sizeof(target), "%s/rootfs", q->bundle);
	ret = no_symlink(target, &bad);
	for (size_t i = 0; !ret && i < q->n_rootfs; i++)
		ret = mounter_for_each_path(q->rootfs[i], no_symlink, &bad);
	if (ret) {
		snprintf(err, TASK_MOUNT_ERRLEN, "%.200s: %s (symlinks are not followed)",
			 bad ? bad : "a path", strerror(-ret));
		return ret;
	}
	return mount_hardened(q->rootfs, q->n_rootfs, target, err);
}

static __attribute__((noreturn)) void mounter_main(int sock, pid_t parent, const char *bundle)
{
	static uint8_t buf[MOUNTER_REQ_MAX];
	struct mounter_rules rules;
	int null;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "mounter");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	sock = 3;
	if (mounter_rules_init(&rules, bundle) || sandbox_mounter())
		_exit(1);
	for (;;) {
		ssize_t n = recv(sock, buf, sizeof(buf), 0);
		struct mounter_resp resp = {0};
		Uvm__Ctrd__CreateTaskRequest *q = NULL;
		uint32_t op;

		if (n <= 0)
			_exit(0);
		if ((size_t)n > sizeof(op))
			q = uvm__ctrd__create_task_request__unpack(NULL, n - sizeof(op),
								   buf + sizeof(op));
		if (!q) {
			resp.err = -EINVAL;
			snprintf(resp.msg, sizeof(resp.msg), "a request that does not decode");
		} else {
			memcpy(&op, buf, sizeof(op));
			if (op == MOUNTER_SET_ROOTS)
				resp.err = mounter_rules_set_roots(&rules, q->rootfs, q->n_rootfs);
			else if (op == MOUNTER_MOUNT)
				resp.err = serve_mount(&rules, q, resp.msg);
			else
				resp.err = -EINVAL;
			if (resp.err && !resp.msg[0])
				snprintf(resp.msg, sizeof(resp.msg), "%s", strerror(-resp.err));
			protobuf_c_message_free_unpacked(&q->base, NULL);
		}
		if (send(sock, &resp, sizeof(resp), MSG_NOSIGNAL) < 0)
			_exit(0);
	}
}

/* ---- the daemon's side -------------------------------------------------------------------- */

static int call(uint32_t op, const char *bundle, Uvm__Ctrd__Mount *const *m, size_t n,
		char err[TASK_MOUNT_ERRLEN])
{
	static uint8_t buf[MOUNTER_REQ_MAX];
	Uvm__Ctrd__CreateTaskRequest q = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	struct mounter_resp resp;
	size_t len;
	ssize_t k;

	if (chan < 0) {
		snprintf(err, TASK_MOUNT_ERRLEN, "no mounter is running");
		return -ENOSYS;
	}
	q.bundle = (char *)(bundle ? bundle : "");
	q.rootfs = (Uvm__Ctrd__Mount **)m;
	q.n_rootfs = n;
	len = uvm__ctrd__create_task_request__get_packed_size(&q);
	if (len > sizeof(buf) - sizeof(op)) {
		snprintf(err, TASK_MOUNT_ERRLEN, "mounts over %u KiB", MOUNTER_REQ_MAX >> 10);
		return -E2BIG;
	}
	memcpy(buf, &op, sizeof(op));
	uvm__ctrd__create_task_request__pack(&q, buf + sizeof(op));
	if (send(chan, buf, sizeof(op) + len, MSG_NOSIGNAL) < 0 ||
	    (k = recv(chan, &resp, sizeof(resp), 0)) != sizeof(resp)) {
		snprintf(err, TASK_MOUNT_ERRLEN, "the mounter is gone");
		return -EIO;
	}
	resp.msg[sizeof(resp.msg) - 1] = 0;
	if (resp.err > 0 || (resp.err && !resp.msg[0])) {
		snprintf(err, TASK_MOUNT_ERRLEN, "a malformed answer from the mounter");
		return -EIO;
	}
	if (resp.err)
		snprintf(err, TASK_MOUNT_ERRLEN, "%s", resp.msg);
	return resp.err;
}

int mounter_set_roots(Uvm__Ctrd__Mount *const *m, size_t n)
{
	char err[TASK_MOUNT_ERRLEN];
	int ret = call(MOUNTER_SET_ROOTS, NULL, m, n, err);

	if (ret)
		pr_warn(TAG, "setting the roots: %s", err);
	return ret;
}

int mounter_mount(const char *bundle, Uvm__Ctrd__Mount *const *m, size_t n,
		  char err[TASK_MOUNT_ERRLEN])
{
	return call(MOUNTER_MOUNT, bundle, m, n, err);
}

bool mounter_running(void)
{
	return chan >= 0;
}

int mounter_start(const char *bundle)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (sandbox_mode() == SANDBOX_OFF || chan >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int ret = -errno;

		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (pid == 0) {
		close(sv[0]);
		mounter_main(sv[1], parent, bundle);
	}
	close(sv[1]);
	chan = sv[0];
	mounter_pid = pid;
	pr_dbg(TAG, "mounter started (pid %d)", (int)pid);
	return 0;
}

void mounter_stop(void)
{
	siginfo_t si;

	if (chan < 0)
		return;
	close(chan);
	chan = -1;
	while (waitid(P_PID, (id_t)mounter_pid, &si, WEXITED) < 0 && errno == EINTR)
		;
	mounter_pid = -1;
}
