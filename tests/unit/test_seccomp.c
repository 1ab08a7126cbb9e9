/*
 * seccomp/: each test forks a child, installs a class filter there and checks
 * that an allowed call works and that a forbidden one kills the child (the
 * whole child process, SIGSYS). Children leave with _exit: the leak check at
 * exit is not theirs to run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"

/* Child exit codes that mean "the filter let something wrong through" or setup failed. */
#define CHILD_SETUP_FAILED   100
#define CHILD_ALLOWED_FAILED 101
#define CHILD_SURVIVED	     102

typedef int (*child_fn)(void);

static int run_child(enum sandbox_class cls, enum sandbox_action act, child_fn fn)
{
	pid_t pid;
	int st = -1;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_apply_action(cls, act))
			_exit(CHILD_SETUP_FAILED);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void assert_killed_by_sigsys(int st)
{
	if (WIFEXITED(st))
		fail_msg("child exited with %d instead of dying of SIGSYS", WEXITSTATUS(st));
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void assert_exited_ok(int st)
{
	if (WIFSIGNALED(st))
		fail_msg("child died of signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- children ------------------------------------------------------------------------- */

static int pipe_fds[2] = {-1, -1};

/* write (allowed for both classes), then socket(AF_INET) (allowed for none). */
static int child_write_then_inet(void)
{
	if (write(pipe_fds[1], "x", 1) != 1)
		return CHILD_ALLOWED_FAILED;
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	return CHILD_SURVIVED;
}

static int child_execve(void)
{
	char *argv[] = {"/bin/true", NULL};

	syscall(SYS_execve, "/bin/true", argv, NULL);
	return CHILD_SURVIVED;
}

static int child_unix_socket_ok(void)
{
	long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return CHILD_ALLOWED_FAILED;
	close((int)fd);
	return 0;
}

static int devnull = -1;

/* KVM_RUN is allowed on a vCPU thread: on /dev/null the kernel answers ENOTTY. */
static int child_kvm_run_then_create_vm(void)
{
	if (syscall(SYS_ioctl, devnull, KVM_RUN, 0) != -1 || errno != ENOTTY)
		return CHILD_ALLOWED_FAILED;
	syscall(SYS_ioctl, devnull, KVM_CREATE_VM, 0);
	return CHILD_SURVIVED;
}

/* The filter compares the 32 bits the kernel reads: high garbage does not change the verdict. */
static int child_kvm_run_high_bits(void)
{
	if (syscall(SYS_ioctl, devnull, 0xdead000000000000ULL | KVM_RUN, 0) != -1 ||
	    errno != ENOTTY)
		return CHILD_ALLOWED_FAILED;
	syscall(SYS_ioctl, devnull, 0xdead000000000000ULL | KVM_CREATE_VCPU, 0);
	return CHILD_SURVIVED;
}

static int child_tcgets(void)
{
	struct termios t;

	/* TCGETS on /dev/null: ENOTTY from the kernel, not a kill from the filter. */
	syscall(SYS_ioctl, devnull, TCGETS, &t);
	return 0;
}

static int child_tiocgwinsz(void)
{
	struct winsize ws;

	/* run -- CMD reads the terminal's size on the loop (SIGWINCH): ENOTTY here, not a kill. */
	syscall(SYS_ioctl, devnull, TIOCGWINSZ, &ws);
	return 0;
}

static int child_mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return CHILD_ALLOWED_FAILED;
	syscall(SYS_mprotect, p, 4096, PROT_READ | PROT_EXEC);
	return CHILD_SURVIVED;
}

/* cmos_access's gmtime_r: glibc must not need /etc/localtime any more. */
static int child_time_conversion(void)
{
	time_t now = time(NULL);
	struct tm tm;

	return gmtime_r(&now, &tm) ? 0 : CHILD_ALLOWED_FAILED;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int child_inet_socket(void)
{
	syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
	return CHILD_SURVIVED;
}


/* Signals to this process's own threads pass; to any other process they kill (issue 9). */
static int child_tgkill_self_then_parent(void)
{
	if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) != 0)
		return CHILD_ALLOWED_FAILED;
	syscall(SYS_tgkill, getppid(), getppid(), 0);
	return CHILD_SURVIVED;
}

static int child_sigqueue_other(void)
{
	siginfo_t si = {.si_code = SI_QUEUE};

	syscall(SYS_rt_tgsigqueueinfo, 1, 1, 0, &si);
	return CHILD_SURVIVED;
}

/* A vCPU never enters an io_uring: only the loop's rings (issue 9). */
static int child_io_uring_enter(void)
{
	syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
	return CHILD_SURVIVED;
}

static int child_io_uring_enter_ok(void)
{
	/* EBADF from the kernel, not SIGSYS. */
	return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EBADF
		   ? 0
		   : CHILD_ALLOWED_FAILED;
}

static int io_epfd = -1, io_efd = -1;

/* An I/O thread's loop: epoll on fds made before the filter, eventfd reads and writes. */
static int child_epoll_loop_ok(void)
{
	struct epoll_event ev = {.events = EPOLLIN}, out;
	uint64_t one = 1, v;

	if (epoll_ctl(io_epfd, EPOLL_CTL_ADD, io_efd, &ev) || write(io_efd, &one, 8) != 8 ||
	    epoll_wait(io_epfd, &out, 1, 1000) != 1 || read(io_efd, &v, 8) != 8 ||
	    epoll_ctl(io_epfd, EPOLL_CTL_DEL, io_efd, NULL))
		return CHILD_ALLOWED_FAILED;
	return 0;
}

static int io_sock[2] = {-1, -1};

/* A NIC on an I/O thread: header and frame in one readv/writev, the guest's offloads set. */
static int child_net_io_ok(void)
{
	char hdr[12] = {1}, frame[60] = {2}, in_hdr[12], in_frame[60];
	struct iovec out[2] = {{hdr, sizeof(hdr)}, {frame, sizeof(frame)}};
	struct iovec in[2] = {{in_hdr, sizeof(in_hdr)}, {in_frame, sizeof(in_frame)}};

	if (writev(io_sock[0], out, 2) != 72 || readv(io_sock[1], in, 2) != 72 || in_hdr[0] != 1 ||
	    in_frame[0] != 2)
		return CHILD_ALLOWED_FAILED;
	/* ENOTTY from /dev/null, not SIGSYS. */
	if (syscall(SYS_ioctl, devnull, TUNSETOFFLOAD, 0) != -1 || errno != ENOTTY)
		return CHILD_ALLOWED_FAILED;
	return 0;
}

/* ...but it never opens or configures a tap: TUNSETIFF is the control thread's. */
static int child_tunsetiff(void)
{
	syscall(SYS_ioctl, devnull, TUNSETIFF, 0);
	return CHILD_SURVIVED;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_vcpu_allows_write_forbids_inet_socket(void **state)
{
	char c = 0;
	int st;

	(void)state;
	assert_int_equal(pipe(pipe_fds), 0);
	st = run_child(SANDBOX_VCPU, SANDBOX_KILL, child_write_then_inet);
	assert_killed_by_sigsys(st);
	/* The allowed write went through before the kill. */
	assert_int_equal(read(pipe_fds[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void test_vcpu_forbids_execve(void **state)
{
	(void)state;
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_execve));
}

static void test_loop_forbids_execve(void **state)
{
	(void)state;
	assert_killed_by_sigsys(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_execve));
}

static void test_vcpu_forbids_unix_socket(void **state)
{
	(void)state;
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_unix_socket_ok));
}

static void test_loop_allows_unix_socket_only(void **state)
{
	(void)state;
	assert_exited_ok(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_unix_socket_ok));
	assert_killed_by_sigsys(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_inet_socket));
}

static void test_vcpu_ioctl_numbers(void **state)
{
	(void)state;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	assert_killed_by_sigsys(
	    run_child(SANDBOX_VCPU, SANDBOX_KILL, child_kvm_run_then_create_vm));
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_kvm_run_high_bits));
	/* A tty ioctl is the loop's (run's console), never a vCPU's. */
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_tcgets));
	assert_exited_ok(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_tcgets));
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_tiocgwinsz));
	assert_exited_ok(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_tiocgwinsz));
	/* KVM_CREATE_VM is for setup only: the loop cannot make a VM either. */
	assert_killed_by_sigsys(
	    run_child(SANDBOX_LOOP, SANDBOX_KILL, child_kvm_run_then_create_vm));
	close(devnull);
}

static void test_no_executable_mappings(void **state)
{
	(void)state;
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_mmap_exec));
	assert_killed_by_sigsys(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_mmap_exec));
}

static void test_vcpu_time_conversion(void **state)
{
	(void)state;
	assert_exited_ok(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_time_conversion));
}

static void test_kill_takes_the_whole_process(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, sleeper, NULL))
			_exit(CHILD_SETUP_FAILED);
		if (sandbox_apply_action(SANDBOX_VCPU, SANDBOX_KILL))
			_exit(CHILD_SETUP_FAILED);
		_exit(child_inet_socket());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_killed_by_sigsys(st);
}

/* A vCPU thread with the program sandbox_prepare compiled on the main thread. */
static void *prepared_vcpu(void *arg)
{
	int *res = arg;

	*res = sandbox_apply(SANDBOX_VCPU) ? CHILD_SETUP_FAILED : child_time_conversion();
	if (!*res)
		*res = child_write_then_inet(); /* dies of SIGSYS after the write */
	return NULL;
}

static void prepared_child(bool refork)
{
	pthread_t t;
	int res = CHILD_SETUP_FAILED;

	sandbox_configure(false);
	if (sandbox_prepare(SANDBOX_VCPU))
		_exit(CHILD_SETUP_FAILED);
	if (refork) {
		/* Another pid: the prepared program's tgkill rule names the parent; built anew. */
		pid_t pid = fork();
		int st;

		if (pid < 0)
			_exit(CHILD_SETUP_FAILED);
		if (pid) {
			if (waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st))
				_exit(CHILD_SURVIVED);
			_exit(0);
		}
	}
	if (pthread_create(&t, NULL, prepared_vcpu, &res) || pthread_join(t, NULL))
		_exit(CHILD_SETUP_FAILED);
	_exit(res);
}

static void test_prepared_filter_is_the_same_list(void **state)
{
	char c = 0;
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(pipe(pipe_fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		prepared_child(false);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_killed_by_sigsys(st);
	assert_int_equal(read(pipe_fds[0], &c, 1), 1);
	/* Prepared in one process, applied in its forked child: the child's own filter. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		prepared_child(true);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_exited_ok(st); /* the grandchild died of SIGSYS after its write */
	assert_int_equal(read(pipe_fds[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void test_log_mode_lets_the_call_run(void **state)
{
	(void)state;
	/* socket(AF_UNIX) is not a vCPU call: logged by the kernel, then it runs. */
	assert_exited_ok(run_child(SANDBOX_VCPU, SANDBOX_LOG, child_unix_socket_ok));
}

static void test_trap_mode_names_the_call(void **state)
{
	char buf[512] = {0};
	ssize_t n, got = 0;
	int p[2], st;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		setenv("UVM_SECCOMP_LOG", "trap", 1);
		unsetenv("UVM_NO_SECCOMP");
		sandbox_configure(false);
		if (sandbox_mode() != SANDBOX_TRAP || sandbox_apply(SANDBOX_VCPU))
			_exit(CHILD_SETUP_FAILED);
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		_exit(CHILD_SURVIVED);
	}
	close(p[1]);
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_killed_by_sigsys(st);
	if (!strstr(buf, "syscall 41 ")) /* x86-64 socket */
		fail_msg("trap message missing the syscall number: %s", buf);
}

static void test_off_installs_nothing(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsetenv("UVM_SECCOMP_LOG");
		setenv("UVM_NO_SECCOMP", "1", 1);
		sandbox_configure(false);
		if (sandbox_mode() != SANDBOX_OFF || sandbox_apply(SANDBOX_VCPU) ||
		    sandbox_drop_privileges())
			_exit(CHILD_SETUP_FAILED);
		/* No filter: a call outside every list just works. */
		_exit(child_unix_socket_ok());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_exited_ok(st);
	/* --no-seccomp alone does it too. */
	pid = fork();
	if (pid == 0) {
		unsetenv("UVM_NO_SECCOMP");
		sandbox_configure(true);
		_exit(sandbox_mode() == SANDBOX_OFF ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_exited_ok(st);
}

/* "CapEff:\t0000000000000000" etc. from /proc/self/status. */
static int status_field(const char *name, char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ':') {
			snprintf(out, len, "%s", line + strlen(name) + 1);
			out[strcspn(out, "\n")] = '\0';
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static void test_drop_privileges(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	if (geteuid() != 0) {
		printf("[  SKIPPED ] not root: there are no capabilities to drop\n");
		skip();
	}
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char eff[64], bnd[64], prm[64], nnp[64];

		unsetenv("UVM_NO_SECCOMP");
		unsetenv("UVM_SECCOMP_LOG");
		sandbox_configure(false);
		if (sandbox_drop_privileges())
			_exit(1);
		if (status_field("CapEff", eff, sizeof(eff)) ||
		    status_field("CapPrm", prm, sizeof(prm)) ||
		    status_field("CapBnd", bnd, sizeof(bnd)) ||
		    status_field("NoNewPrivs", nnp, sizeof(nnp)))
			_exit(2);
		if (strcmp(eff, "\t0000000000000000") || strcmp(prm, "\t0000000000000000") ||
		    strcmp(bnd, "\t0000000000000000") || strcmp(nnp, "\t1")) {
			fprintf(stderr, "eff%s prm%s bnd%s nnp%s\n", eff, prm, bnd, nnp);
			_exit(3);
		}
		/* Root without CAP_SYS_ADMIN still loads its filter (no_new_privs is set). */
		if (sandbox_apply(SANDBOX_LOOP))
			_exit(4);
		_exit(child_unix_socket_ok());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_exited_ok(st);
}

static void test_class_names(void **state)
{
	(void)state;
	assert_string_equal(sandbox_class_name(SANDBOX_VCPU), "vcpu");
	assert_string_equal(sandbox_class_name(SANDBOX_LOOP), "loop");
	assert_string_equal(sandbox_class_name(SANDBOX_IO), "io");
	assert_string_equal(sandbox_class_name(SANDBOX_NR_CLASSES), "?");
	assert_int_equal(sandbox_apply_action(SANDBOX_NR_CLASSES, SANDBOX_KILL), -EINVAL);
}

static void test_signals_pinned_to_self(void **state)
{
	(void)state;
	assert_killed_by_sigsys(
	    run_child(SANDBOX_VCPU, SANDBOX_KILL, child_tgkill_self_then_parent));
	assert_killed_by_sigsys(
	    run_child(SANDBOX_LOOP, SANDBOX_KILL, child_tgkill_self_then_parent));
	assert_killed_by_sigsys(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_sigqueue_other));
	/*
	 * kill() is not in the product's loop list either (passt is signalled through its
	 * pidfd), but the ASan build this test runs in allows it for LeakSanitizer.
	 */
}

static void test_io_uring_loop_only(void **state)
{
	(void)state;
	assert_killed_by_sigsys(run_child(SANDBOX_VCPU, SANDBOX_KILL, child_io_uring_enter));
	assert_exited_ok(run_child(SANDBOX_LOOP, SANDBOX_KILL, child_io_uring_enter_ok));
	assert_exited_ok(run_child(SANDBOX_IO, SANDBOX_KILL, child_io_uring_enter_ok));
}

/* An I/O thread parses guest rings: no socket, no exec, no KVM, no tty, no executable map. */
static void test_io_class_is_narrow(void **state)
{
	(void)state;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_unix_socket_ok));
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_execve));
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_kvm_run_then_create_vm));
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_tcgets));
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_mmap_exec));
	assert_killed_by_sigsys(
	    run_child(SANDBOX_IO, SANDBOX_KILL, child_tgkill_self_then_parent));
	io_epfd = epoll_create1(EPOLL_CLOEXEC);
	io_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(io_epfd >= 0 && io_efd >= 0);
	assert_exited_ok(run_child(SANDBOX_IO, SANDBOX_KILL, child_epoll_loop_ok));
	close(io_epfd);
	close(io_efd);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, io_sock), 0);
	assert_exited_ok(run_child(SANDBOX_IO, SANDBOX_KILL, child_net_io_ok));
	close(io_sock[0]);
	close(io_sock[1]);
	assert_killed_by_sigsys(run_child(SANDBOX_IO, SANDBOX_KILL, child_tunsetiff));
	close(devnull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vcpu_allows_write_forbids_inet_socket),
	    cmocka_unit_test(test_vcpu_forbids_execve),
	    cmocka_unit_test(test_signals_pinned_to_self),
	    cmocka_unit_test(test_io_uring_loop_only),
	    cmocka_unit_test(test_io_class_is_narrow),
	    cmocka_unit_test(test_loop_forbids_execve),
	    cmocka_unit_test(test_vcpu_forbids_unix_socket),
	    cmocka_unit_test(test_loop_allows_unix_socket_only),
	    cmocka_unit_test(test_vcpu_ioctl_numbers),
	    cmocka_unit_test(test_no_executable_mappings),
	    cmocka_unit_test(test_vcpu_time_conversion),
	    cmocka_unit_test(test_kill_takes_the_whole_process),
	    cmocka_unit_test(test_prepared_filter_is_the_same_list),
	    cmocka_unit_test(test_log_mode_lets_the_call_run),
	    cmocka_unit_test(test_trap_mode_names_the_call),
	    cmocka_unit_test(test_off_installs_nothing),
	    cmocka_unit_test(test_drop_privileges),
	    cmocka_unit_test(test_class_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
