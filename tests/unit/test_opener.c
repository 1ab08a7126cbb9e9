/*
 * shim/opener.c and seccomp/landlock.c: once a thread is Landlocked it opens
 * nothing by path (a root-owned secret, /etc/passwd), nor do threads it
 * creates; files the parent names still arrive through the opener process
 * (a disk hot-added, a FIFO for stdio, a console file, a share root), and the
 * opener refuses system paths whatever it is asked. Each case runs in a
 * forked child (a Landlock domain cannot be left), which leaves with _exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "shim/bridge.h"
#include "shim/console.h"
#include "shim/opener.h"
#include "virtio_test_util.h"
#include "vmm/host_open.h"

static char dir[64];

static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int setup(void **state)
{
	int fd;

	strcpy(dir, "/tmp/uvm-test-opener-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* A root-only file standing for /etc/shadow, and a 1 MiB disk. */
	fd = open(in_dir("secret"), O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	fd = open(in_dir("disk.img"), O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
	assert_int_equal(mkdir(in_dir("share"), 0700), 0);
	assert_int_equal(symlink("/etc/passwd", in_dir("link")), 0);
	return 0;
}

static int teardown(void **state)
{
	const char *names[] = {"secret", "disk.img", "fifo", "console.log",
			       "sock",	 "share",    "link"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		remove(in_dir(names[i]));
	rmdir(dir);
	return 0;
}

/* Child codes: 0 passed, 77 skipped (reason on stderr), else the failed step. */
#define CHILD_SKIP 77

static int run_child(int (*fn)(void))
{
	pid_t pid;
	int st = -1;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("child died of signal %d", WTERMSIG(st));
	return WEXITSTATUS(st);
}

/* The opener, then the privilege drop and Landlock on this thread, as machine_start does. */
static int sandbox_up(void)
{
	int abi = sandbox_landlock_abi();

	if (abi < 1) {
		fprintf(stderr, "SKIP: this kernel has no Landlock (%s)\n", strerror(-abi));
		return CHILD_SKIP;
	}
	unsetenv("UVM_NO_SECCOMP");
	unsetenv("UVM_SECCOMP_LOG");
	sandbox_configure(false);
	if (opener_start() || !opener_running())
		return 1;
	if (sandbox_drop_privileges() || sandbox_landlock())
		return 2;
	return 0;
}

static int open_errno(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

static void *thread_open(void *arg)
{
	return (void *)(intptr_t)open_errno(arg, O_RDONLY);
}

static int child_no_open_by_path(void)
{
	pthread_t t;
	void *res;
	int ret = sandbox_up();

	if (ret)
		return ret;
	/* Readable before; Landlock says no now, root or not. */
	if (open_errno(in_dir("secret"), O_RDONLY) != EACCES)
		return 10;
	if (open_errno("/etc/passwd", O_RDONLY) != EACCES)
		return 11;
	if (open_errno(in_dir("disk.img"), O_RDWR) != EACCES)
		return 12;
	/* Nothing made or removed either. */
	if (mkdir(in_dir("newdir"), 0700) == 0 || errno != EACCES)
		return 13;
	if (unlink(in_dir("secret")) == 0 || errno != EACCES)
		return 14;
	/* A thread created now (a vCPU) is in the same domain. */
	if (pthread_create(&t, NULL, thread_open, (void *)in_dir("secret")) ||
	    pthread_join(t, &res) || (intptr_t)res != EACCES)
		return 15;
	/* What the thread still reads itself: /proc (dump_stacks). */
	if (open_errno("/proc/self/stat", O_RDONLY) != 0)
		return 16;
	return 0;
}

static int child_opener_refuses(void)
{
	int ret = sandbox_up();

	if (ret)
		return ret;
	/* The opener refuses system paths whatever the request. */
	if (host_open("/etc/passwd", O_RDONLY, 0) != -EACCES)
		return 10;
	if (host_open("/etc/shadow", O_RDONLY, 0) != -EACCES)
		return 11;
	if (host_open("/proc/1/environ", O_RDONLY, 0) != -EACCES)
		return 12;
	if (host_open("/dev/kvm", O_RDWR, 0) != -EACCES && access("/dev/kvm", F_OK) == 0)
		return 13;
	/* A symlink to /etc is followed (disks may be symlinks), then refused. */
	if (host_open(in_dir("link"), O_RDONLY, 0) != -EACCES)
		return 14;
	/* This thread could not plant another one. */
	if (symlink("/etc/shadow", in_dir("link2")) == 0 || errno != EACCES)
		return 20;
	/* A ".." is refused, not resolved. */
	if (host_open("/etc/../etc/passwd", O_RDONLY, 0) != -EINVAL)
		return 15;
	/* Truncation only with creation; unknown flags refused. */
	if (host_open(in_dir("disk.img"), O_RDWR | O_TRUNC, 0) != -EINVAL)
		return 16;
	if (host_open(in_dir("disk.img"), O_RDWR | O_DIRECT, 0) != -EINVAL)
		return 17;
	/* A console file is not created in /etc. */
	if (host_open("/etc/uvm-test-console", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644) !=
	    -EACCES)
		return 18;
	/* The vsock socket's unlink removes a socket only. */
	if (host_unlink_socket(in_dir("disk.img")) != -ENOTSOCK)
		return 19;
	return 0;
}

/*
 * What a compromised loop could ask the opener for before its rule became
 * by kind and without magic links: each of these opened, or hung the opener.
 * An alarm turns a hang into a failure.
 */
static int child_opener_hostile(void)
{
	char path[PATH_MAX + 64], proc[64];
	int ret, fd, mfd, dfd;

	alarm(20);
	/* Fds this process holds (a disk, a VM's memory), before the sandbox. */
	dfd = open(in_dir("disk.img"), O_RDWR | O_CLOEXEC);
	mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (dfd < 0 || mfd < 0 || ftruncate(mfd, 4096))
		return 9;
	ret = sandbox_up();
	if (ret)
		return ret;
	/* A FIFO named as a disk: refused before it is opened (it used to block the opener). */
	if (host_open(in_dir("fifo"), O_RDONLY, 0) != -EACCES)
		return 10;
	if (host_open(in_dir("fifo"), O_RDWR, 0) != -EACCES)
		return 11;
	/* ...nor as a console file to truncate (O_WRONLY on a FIFO blocked too). */
	if (host_open(in_dir("fifo"), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644) != -EACCES)
		return 12;
	/* Another process's fds through /proc/PID/fd: a disk, a VM's memory. */
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", (int)getpid(), dfd);
	if (host_open(proc, O_RDWR, 0) != -ELOOP)
		return 13;
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", (int)getpid(), mfd);
	if (host_open(proc, O_RDWR, 0) != -ELOOP)
		return 14;
	/* A file reached through /proc/PID/root (a magic link on the way). */
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)getpid(), in_dir("disk.img"));
	if (host_open(path, O_RDWR, 0) != -ELOOP)
		return 15;
	/* ...also for stdio. */
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)getpid(), in_dir("fifo"));
	if (stdio_open_host(path, STDIO_FROM_GUEST) != -ELOOP)
		return 16;
	/* Character devices are no disks, not even /dev/null; nor is a new pty. */
	if (host_open("/dev/null", O_RDWR, 0) != -EACCES)
		return 17;
	if (access("/dev/pts/ptmx", F_OK) == 0 && host_open("/dev/pts/ptmx", O_RDWR, 0) != -EACCES)
		return 18;
	/* A directory only as a share root (O_DIRECTORY). */
	if (host_open(in_dir("share"), O_RDONLY, 0) != -EISDIR)
		return 19;
	if (host_open(in_dir("disk.img"), O_PATH | O_DIRECTORY, 0) != -ENOTDIR)
		return 20;
	/* ".." is refused even where it would land on an allowed file. */
	if (host_open(in_dir("share/../disk.img"), O_RDWR, 0) != -EINVAL)
		return 21;
	/* A path longer than PATH_MAX never reaches the opener, which still serves. */
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	if (host_open(path, O_RDONLY, 0) != -ENAMETOOLONG)
		return 22;
	fd = host_open(in_dir("disk.img"), O_RDWR, 0);
	if (fd < 0)
		return 23;
	close(fd);
	return 0;
}

static int child_hot_add_through_opener(void)
{
	struct blk_config cfg = {.path = in_dir("disk.img"), .num_queues = 1};
	struct console_sink con;
	struct statfs sfs;
	struct virtio_dev *dev;
	struct tmach m;
	struct stat st;
	char c;
	int ret = sandbox_up(), fd;

	if (ret)
		return ret;
	/* scsi.add: virtio-blk opens its disk through host_open. */
	if (tm_init(&m, 1 << 20))
		return 10;
	if (virtio_blk_create(m.pbus, m.mem, NULL, &cfg, &dev))
		return 11;
	virtio_dev_destroy(dev);
	tm_fini(&m);
	/* A read-write fd on the disk, passed back. */
	fd = host_open(in_dir("disk.img"), O_RDWR, 0);
	if (fd < 0 || fstat(fd, &st) || st.st_size != 1 << 20 || pwrite(fd, "y", 1, 0) != 1)
		return 12;
	close(fd);
	/* guest.exec stdio: a FIFO (output side: read-write, non-blocking). */
	fd = stdio_open_host(in_dir("fifo"), STDIO_FROM_GUEST);
	if (fd < 0 || fstat(fd, &st) || !S_ISFIFO(st.st_mode) || write(fd, "z", 1) != 1 ||
	    read(fd, &c, 1) != 1 || c != 'z')
		return 13;
	close(fd);
	/* ...and a symlink is still refused there (O_NOFOLLOW), now by the opener. */
	if (stdio_open_host("/etc/passwd", STDIO_TO_GUEST) != -EACCES)
		return 14;
	/* A console file is created, then truncated when opened again. */
	if (console_sink_open(&con, in_dir("console.log")) || write(con.fd, "abc", 3) != 3)
		return 15;
	close(con.fd);
	if (console_sink_open(&con, in_dir("console.log")) || fstat(con.fd, &st) || st.st_size)
		return 16;
	close(con.fd);
	/* A plan9 share root (O_PATH directory). */
	fd = host_open(in_dir("share"), O_PATH | O_DIRECTORY, 0);
	if (fd < 0 || fstat(fd, &st) || !S_ISDIR(st.st_mode))
		return 17;
	close(fd);
	/* nic.add's netns: a namespace file is a handle the opener passes on. */
	fd = host_open("/proc/self/ns/net", O_RDONLY, 0);
	if (fd < 0 || fstatfs(fd, &sfs) || sfs.f_type != NSFS_MAGIC)
		return 21;
	close(fd);
	/* The vsock socket goes at teardown. */
	if (host_unlink_socket(in_dir("sock")))
		return 18;
	if (access(in_dir("sock"), F_OK) == 0)
		return 19;
	opener_stop();
	/* Without the opener host_open opens in-process: Landlock refuses. */
	if (host_open(in_dir("disk.img"), O_RDONLY, 0) != -EACCES)
		return 20;
	return 0;
}

static void expect(int code)
{
	if (code == CHILD_SKIP)
		skip();
	if (code)
		fail_msg("child failed at step %d", code);
}

static void test_no_open_by_path(void **state)
{
	expect(run_child(child_no_open_by_path));
}

static void test_opener_refuses(void **state)
{
	expect(run_child(child_opener_refuses));
}

static void test_opener_hostile(void **state)
{
	expect(run_child(child_opener_hostile));
}

static void test_hot_add_through_opener(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", in_dir("sock"));
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	expect(run_child(child_hot_add_through_opener));
	unlink(in_dir("sock"));
}

static void test_path_rule(void **state)
{
	assert_int_equal(opener_path_refused("/etc/shadow", S_IFREG), -EACCES);
	assert_int_equal(opener_path_refused("/etc", S_IFDIR), -EACCES);
	assert_int_equal(opener_path_refused("/proc/1/mem", S_IFREG), -EACCES);
	assert_int_equal(opener_path_refused("/usr/bin/su", S_IFREG), -EACCES);
	assert_int_equal(opener_path_refused("/dev/kvm", S_IFCHR), -EACCES);
	assert_int_equal(opener_path_refused("/dev/mem", S_IFCHR), -EACCES);
	assert_int_equal(opener_path_refused("/tmp/null", S_IFCHR), -EACCES);
	assert_int_equal(opener_path_refused("socket:[1234]", S_IFSOCK), -EACCES);
	assert_int_equal(opener_path_refused("/etcetera/disk.img", S_IFREG), 0);
	assert_int_equal(opener_path_refused("/var/lib/containerd/layer.vhd", S_IFREG), 0);
	assert_int_equal(opener_path_refused("/dev/sdb", S_IFBLK), 0);
	assert_int_equal(opener_path_refused("/dev/null", S_IFCHR), 0);
	assert_int_equal(opener_path_refused("/dev/pts/3", S_IFCHR), 0);
	assert_int_equal(opener_path_refused("/dev/shm/fifo", S_IFIFO), 0);
	assert_int_equal(opener_path_refused("/tmp/x/fifo", S_IFIFO), 0);
	assert_int_equal(opener_path_refused("/dev/pts/ptmx", S_IFCHR), -EACCES);
}

/* What each kind of request may reach (the flags say the kind). */
static void test_kind_rule(void **state)
{
	assert_int_equal(opener_kind_refused(O_RDWR, S_IFREG), 0);
	assert_int_equal(opener_kind_refused(O_RDWR, S_IFBLK), 0);
	assert_int_equal(opener_kind_refused(O_RDONLY, S_IFIFO), -EACCES);
	assert_int_equal(opener_kind_refused(O_RDWR, S_IFCHR), -EACCES);
	assert_int_equal(opener_kind_refused(O_RDWR, S_IFSOCK), -EACCES);
	assert_int_equal(opener_kind_refused(O_RDONLY, S_IFDIR), -EISDIR);
	assert_int_equal(opener_kind_refused(O_RDONLY | O_NOFOLLOW, S_IFLNK), -ELOOP);
	assert_int_equal(opener_kind_refused(O_PATH | O_DIRECTORY, S_IFDIR), 0);
	assert_int_equal(opener_kind_refused(O_PATH | O_DIRECTORY, S_IFREG), -ENOTDIR);
	assert_int_equal(opener_kind_refused(O_WRONLY | O_CREAT | O_TRUNC, S_IFREG), 0);
	assert_int_equal(opener_kind_refused(O_WRONLY | O_CREAT | O_TRUNC, S_IFIFO), -EACCES);
	assert_int_equal(opener_kind_refused(O_WRONLY | O_CREAT | O_TRUNC, S_IFCHR), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_rule),	   cmocka_unit_test(test_kind_rule),
	    cmocka_unit_test(test_opener_hostile), cmocka_unit_test(test_no_open_by_path),
	    cmocka_unit_test(test_opener_refuses), cmocka_unit_test(test_hot_add_through_opener),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
