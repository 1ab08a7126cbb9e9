/*
 * The 9p worker's sandbox (seccomp/caps.c sandbox_p9_worker, SANDBOX_P9 in
 * seccomp/filter.c): a child process takes the worker's sandbox and serves a
 * session that uses every operation; nothing it does may hit the filter. Then
 * what a worker never needs (sockets, execve, ioctl, process creation) kills
 * it, and as root it keeps only the file-ownership capabilities.
 */
#include <cap-ng.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "gcs/stacks_core.h"
#include "seccomp/seccomp.h"
#include "tests/unit/p9_test_util.h"

struct fx {
	char dir[64], share[96];
	struct p9t c;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(p9t_tree(fx->dir, fx->share), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	p9t_tree_remove(fx->dir);
	free(fx);
	return 0;
}

enum child_mode {
	CHILD_SANDBOXED, /* the child's thread takes the worker's sandbox before fn */
	CHILD_LOG_ONLY,	 /* the same, the filter logging instead of killing (fn may read /proc) */
	CHILD_PLAIN,	 /* no sandbox on the child's thread (fn makes its own workers) */
};

/*
 * Forks; the child makes the share's server (its /proc/self/fd is the
 * child's), takes the sandbox as mode says, runs fn and exits with what it
 * returns. Returns the child's wait status.
 */
static int in_child(struct fx *fx, int (*fn)(struct fx *fx), enum child_mode mode)
{
	int st = -1;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct p9_share_config cfg = {.path = fx->share};

		if (p9t_init(&fx->c, &cfg))
			_exit(98);
		if (mode == CHILD_LOG_ONLY)
			setenv("UVM_SECCOMP_LOG", "1", 1);
		sandbox_configure(false);
		if (mode != CHILD_PLAIN && sandbox_p9_worker())
			_exit(99);
		_exit(fn(fx));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void assert_exit_code(int st, int code)
{
	if (WIFSIGNALED(st))
		fail_msg("the child died of signal %d (%s)", WTERMSIG(st),
			 WTERMSIG(st) == SIGSYS ? "a call outside SANDBOX_P9" : "?");
	assert_int_equal(WEXITSTATUS(st), code);
}

static int u32_op(struct p9t *c, uint8_t type, uint32_t fid, uint32_t arg)
{
	struct p9_wr *w = p9t_begin(c, type);

	p9_put_u32(w, fid);
	p9_put_u32(w, arg);
	return p9t_send(c);
}

static int lock_op(struct p9t *c, uint8_t type, uint32_t fid)
{
	struct p9_wr *w = p9t_begin(c, type);

	p9_put_u32(w, fid);
	p9_put_u8(w, 1); /* F_WRLCK */
	if (type == P9_TLOCK)
		p9_put_u32(w, 0);
	p9_put_u64(w, 0);
	p9_put_u64(w, 10);
	p9_put_u32(w, 1);
	p9t_str(w, "host");
	return p9t_send(c);
}

/*
 * Every operation a guest's client sends, in the order a session would. Returns
 * 0, or the step that failed (an errno from the server: the sandbox got in the
 * way of something it must allow, or the server broke).
 */
static int session(struct fx *fx)
{
	struct p9t *c = &fx->c;
	char buf[64];
	int step = 0;

#define STEP(expr)                                                                                 \
	do {                                                                                       \
		int r_ = (expr);                                                                   \
		step++;                                                                            \
		if (r_ < 0) {                                                                      \
			fprintf(stderr, "step %d: %s: %d\n", step, #expr, r_);                     \
			return step;                                                               \
		}                                                                                  \
	} while (0)
	STEP(p9t_version(c, 65536, "9P2000.L"));
	STEP(p9t_attach(c, 1));
	STEP(p9t_walkv(c, 1, 2, 0, NULL));
	STEP(p9t_lcreate(c, 2, "f", O_RDWR, 0644));
	STEP(p9t_write(c, 2, 0, "hello", 5));
	STEP(p9t_read(c, 2, 0, 5, buf, sizeof(buf)) == 5 ? 0 : -1);
	STEP(u32_op(c, P9_TFSYNC, 2, 0));
	STEP(u32_op(c, P9_TFSYNC, 2, 1));
	STEP(lock_op(c, P9_TLOCK, 2));
	STEP(lock_op(c, P9_TGETLOCK, 2));
	STEP(p9t_setattr(c, 2, 0x1 | 0x8, 0600, 3)); /* mode and size */
	step++;
	if (p9t_xattrcreate(c, 2, "user.t", 1) == 0) /* may be unsupported by /tmp's fs */
		STEP(p9t_write(c, 2, 0, "v", 1));
	STEP(p9t_fid_op(c, P9_TCLUNK, 2));
	STEP(p9t_walk(c, 1, 3, "f"));
	{
		struct p9_wr *w = p9t_begin(c, P9_TGETATTR);

		p9_put_u32(w, 3);
		p9_put_u64(w, 0x3fff);
		STEP(p9t_send(c));
	}
	step++;
	if (p9t_xattrwalk(c, 3, 4, "") == 0) /* the list of names */
		STEP(p9t_fid_op(c, P9_TCLUNK, 4));
	STEP(p9t_setattr(c, 3, 0x20 | 0x40, 0, 0)); /* atime, mtime: now */
	STEP(p9t_mkdir(c, 1, "d"));
	STEP(p9t_symlink(c, 1, "l", "f"));
	STEP(p9t_walk(c, 1, 5, "l"));
	STEP(p9t_fid_op(c, P9_TREADLINK, 5));
	STEP(p9t_link(c, 1, 3, "hard"));
	STEP(p9t_renameat(c, 1, "hard", 1, "hard2"));
	STEP(p9t_walk(c, 1, 6, "d"));
	{
		struct p9_wr *w = p9t_begin(c, P9_TRENAME);

		p9_put_u32(w, 3);
		p9_put_u32(w, 6);
		p9t_str(w, "moved");
		STEP(p9t_send(c));
	}
	STEP(p9t_mknod(c, 6, "fifo", S_IFIFO | 0600) == -EPERM ? 0 : 0);
	STEP(p9t_walkv(c, 1, 7, 0, NULL));
	STEP(p9t_lopen(c, 7, O_RDONLY | O_DIRECTORY));
	STEP(p9t_readdir(c, 7, 0, 4096));
	STEP(p9t_fid_op(c, P9_TSTATFS, 7));
	STEP(p9t_unlinkat(c, 1, "hard2", 0));
	STEP(p9t_fid_op(c, P9_TREMOVE, 5));
	STEP(p9t_lopen(c, 3, O_WRONLY | O_TRUNC));
	STEP(p9t_fid_op(c, P9_TCLUNK, 3));
	STEP(p9t_unlinkat(c, 6, "moved", 0));
	STEP(p9t_unlinkat(c, 1, "d", AT_REMOVEDIR) == -ENOTEMPTY ? 0 : 0);
#undef STEP
	return 0;
}

static void test_session_within_the_filter(void **state)
{
	assert_exit_code(in_child(*state, session, CHILD_SANDBOXED), 0);
}

static int child_unix_socket(struct fx *fx)
{
	(void)fx;
	socket(AF_UNIX, SOCK_STREAM, 0);
	return 0;
}

static int child_execve(struct fx *fx)
{
	static char *const argv[] = {"/bin/true", NULL};

	(void)fx;
	execve(argv[0], argv, NULL);
	return 0;
}

static int child_ioctl(struct fx *fx)
{
	struct termios t;

	(void)fx;
	ioctl(0, TCGETS, &t);
	return 0;
}

static __attribute__((unused)) int child_fork(struct fx *fx)
{
	(void)fx;
	syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	return 0;
}

static void test_what_a_worker_never_needs_kills(void **state)
{
	int (*const fns[])(struct fx *) = {
		child_unix_socket, child_execve, child_ioctl,
#ifndef __SANITIZE_ADDRESS__
		child_fork, /* ASan's own list allows clone, for its leak checker */
#endif
	};

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		int st = in_child(*state, fns[i], CHILD_SANDBOXED);

		if (!WIFSIGNALED(st))
			fail_msg("child %zu exited with %d instead of dying of SIGSYS", i,
				 WEXITSTATUS(st));
		assert_int_equal(WTERMSIG(st), SIGSYS);
	}
}

/* Exit 0: only the five file capabilities are left (as root), none when not root. */
static int child_caps(struct fx *fx)
{
	static const unsigned kept[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
					CAP_FOWNER, CAP_FSETID};
	int nr = 0;

	(void)fx;
	capng_get_caps_process();
	for (unsigned cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (capng_have_capability(CAPNG_EFFECTIVE, cap) ||
		    capng_have_capability(CAPNG_PERMITTED, cap)) {
			bool ok = false;

			for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
				ok |= kept[i] == cap;
			if (!ok)
				return 10 + cap;
			nr++;
		}
	return geteuid() == 0 && nr != 5 ? 1 : 0;
}

static void test_capabilities_left(void **state)
{
	if (geteuid() != 0)
		printf("note: not root, so no capability to drop; checking none is left\n");
	assert_exit_code(in_child(*state, child_caps, CHILD_LOG_ONLY), 0);
}

/*
 * guest.dump_stacks asks every thread of the shim for its stack, 9p workers
 * included: the request's handler runs on the worker under its filter.
 */
static pthread_barrier_t ready;
static sem_t never; /* the worker waits here (a futex) until the child exits */

static void *sandboxed_worker(void *arg)
{
	int *err = arg;

	*err = sandbox_p9_worker();
	pthread_barrier_wait(&ready);
	sem_wait(&never);
	return NULL;
}

static int child_stacks(struct fx *fx)
{
	struct stacks_core_thread *t = NULL;
	pthread_t th;
	int err = 0, n = 0, pid, ret = 0;

	(void)fx;
	if (stacks_core_init(SIGRTMIN + 2))
		return 20;
	pthread_barrier_init(&ready, NULL, 2);
	sem_init(&never, 0, 0);
	if (pthread_create(&th, NULL, sandboxed_worker, &err))
		return 21;
	pthread_barrier_wait(&ready);
	if (err)
		return 22;
	if (stacks_core_capture(5000, &t, &n, &pid))
		return 23;
	for (int i = 0; i < n; i++)
		if (t[i].result != STACKS_CORE_OK)
			ret = 24;
	return n == 2 ? ret : 25;
}

static void test_stack_request_within_the_filter(void **state)
{
	/* Only the worker thread takes the sandbox; the child's main thread asks. */
	assert_exit_code(in_child(*state, child_stacks, CHILD_PLAIN), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_session_within_the_filter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_what_a_worker_never_needs_kills, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capabilities_left, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stack_request_within_the_filter, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
