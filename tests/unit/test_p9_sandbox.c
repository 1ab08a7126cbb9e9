/*
 * The 9p worker's sandbox (seccomp/caps.c sandbox_p9_spawner and
 * sandbox_p9_worker, SANDBOX_P9_SPAWN and SANDBOX_P9 in seccomp/filter.c,
 * Landlock beneath the share in seccomp/landlock.c): a child process takes
 * the spawner's sandbox, then the worker's, and serves a session that uses
 * every operation; nothing it does may hit the filter. What a worker never
 * needs (sockets, execve, ioctl, process creation) kills it; as root it keeps
 * only the file-ownership capabilities (one on a read-only share); it opens
 * nothing outside its share, even by an absolute path. Workers made by a real
 * spawner under its filter serve a session and are confined the same way.
 */
#include <linux/capability.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* Asked before any sandbox: landlock_create_ruleset is not on the workers' list. */
static int landlock_abi;

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
	CHILD_SANDBOXED, /* the child's thread takes the spawner's, then the worker's sandbox */
	CHILD_READ_ONLY, /* the same for a read-only share */
	CHILD_SPAWNER,	 /* the spawner's sandbox only */
	CHILD_PLAIN,	 /* no sandbox on the child's thread (fn makes its own workers) */
	CHILD_LOG_ONLY = 0x100, /* with one of the above: the filter logs instead of killing */
};

/* The child's sandbox for mode, as the spawner then a worker of fx's share take it. */
static int child_sandbox(struct fx *fx, enum child_mode mode)
{
	int root;

	if (mode == CHILD_PLAIN)
		return 0;
	if (sandbox_p9_spawner())
		return -1;
	if (mode == CHILD_SPAWNER)
		return 0;
	root = open(fx->share, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || sandbox_p9_worker(root, mode == CHILD_READ_ONLY))
		return -1;
	close(root);
	return 0;
}

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
		if (mode & CHILD_LOG_ONLY)
			setenv("UVM_SECCOMP_LOG", "1", 1);
		sandbox_configure(false);
		if (child_sandbox(fx, mode & ~CHILD_LOG_ONLY))
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

/* The thread's effective and permitted sets (raw capget: /proc is out of a worker's reach). */
static int thread_caps(uint64_t *eff, uint64_t *prm)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

#define CAPBIT(c) (1ULL << (c))

/* Exit 0: only the five file capabilities are left (as root), none when not root. */
static int child_caps(struct fx *fx)
{
	const uint64_t kept = CAPBIT(CAP_CHOWN) | CAPBIT(CAP_DAC_OVERRIDE) |
			      CAPBIT(CAP_DAC_READ_SEARCH) | CAPBIT(CAP_FOWNER) | CAPBIT(CAP_FSETID);
	uint64_t eff, prm;

	(void)fx;
	if (thread_caps(&eff, &prm))
		return 2;
	if ((eff | prm) & ~kept)
		return 3;
	return geteuid() == 0 && (eff != kept || prm != kept) ? 1 : 0;
}

/* A read-only share's worker: reading files of any owner, nothing more. */
static int child_caps_read_only(struct fx *fx)
{
	uint64_t eff, prm;

	(void)fx;
	if (thread_caps(&eff, &prm))
		return 2;
	if ((eff | prm) & ~CAPBIT(CAP_DAC_READ_SEARCH))
		return 3;
	return geteuid() == 0 && eff != CAPBIT(CAP_DAC_READ_SEARCH) ? 1 : 0;
}

static void test_capabilities_left(void **state)
{
	if (geteuid() != 0)
		printf("note: not root, so no capability to drop; checking none is left\n");
	assert_exit_code(in_child(*state, child_caps, CHILD_SANDBOXED | CHILD_LOG_ONLY), 0);
	assert_exit_code(in_child(*state, child_caps_read_only, CHILD_READ_ONLY | CHILD_LOG_ONLY),
			 0);
}

/* errno of open(path, flags), 0 when it opened. */
static int open_errno(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/*
 * Landlock beneath the share: by an absolute path too (p9_reopen's openat is
 * not pinned to /proc/self/fd by the filter), a worker reaches nothing outside
 * its share, and a read-only share's worker writes nothing in it.
 */
static int confined(struct fx *fx, bool read_only)
{
	char p[192];

	if (landlock_abi < 1) {
		fprintf(stderr, "note: no Landlock in this kernel; only openat2 confines\n");
		return 0;
	}
	snprintf(p, sizeof(p), "%s/outside/secret", fx->dir);
	if (open_errno(p, O_RDONLY) != EACCES)
		return 10;
	if (open_errno("/etc/passwd", O_RDONLY) != EACCES)
		return 11;
	snprintf(p, sizeof(p), "%s/made-outside", fx->dir);
	if (mkdirat(AT_FDCWD, p, 0700) == 0 || errno != EACCES) /* the 9p list has no mkdir */
		return 12;
	snprintf(p, sizeof(p), "%s/f", fx->share);
	if (open_errno(p, O_RDONLY) != 0)
		return 13;
	if (open_errno(p, O_WRONLY) != (read_only ? EACCES : 0))
		return 14;
	snprintf(p, sizeof(p), "%s/%s", fx->share, read_only ? "d-ro" : "d");
	if (read_only ? (mkdirat(AT_FDCWD, p, 0700) == 0 || errno != EACCES)
		      : mkdirat(AT_FDCWD, p, 0700) != 0)
		return 15;
	return 0;
}

static int child_confined(struct fx *fx)
{
	return confined(fx, false);
}

static int child_confined_read_only(struct fx *fx)
{
	return confined(fx, true);
}

/* A file of another owner (0600 then 0644) in the share. */
static void make_foreign_file(struct fx *fx)
{
	char p[160];
	int fd;

	snprintf(p, sizeof(p), "%s/f", fx->share);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	if (geteuid() == 0)
		assert_int_equal(chown(p, 65534, 65534), 0);
}

static void test_worker_confined_to_its_share(void **state)
{
	make_foreign_file(*state);
	assert_exit_code(in_child(*state, child_confined, CHILD_SANDBOXED), 0);
	assert_exit_code(in_child(*state, child_confined_read_only, CHILD_READ_ONLY), 0);
}

/*
 * Why a writable share's worker keeps CAP_DAC_OVERRIDE: the guest's root
 * writes files of other owners (QEMU's passthrough model); without it, uid 0
 * cannot open another user's 0644 file for writing. Reading needs only
 * CAP_DAC_READ_SEARCH (what a read-only share's worker keeps).
 */
static int child_without_dac_override(struct fx *fx)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	char p[160];

	snprintf(p, sizeof(p), "%s/f", fx->share);
	if (chmod(p, 0644))
		return 2;
	if (syscall(SYS_capget, &h, d) < 0)
		return 3;
	d[0].effective &= ~CAPBIT(CAP_DAC_OVERRIDE);
	if (syscall(SYS_capset, &h, d) < 0)
		return 4;
	if (open_errno(p, O_WRONLY) != EACCES)
		return 10;
	if (chmod(p, 0600) || open_errno(p, O_RDONLY) != 0)
		return 11;
	return 0;
}

static void test_dac_override_needed_for_writes(void **state)
{
	if (geteuid() != 0) {
		printf("SKIP: needs root (a file of another owner)\n");
		skip();
	}
	make_foreign_file(*state);
	assert_exit_code(in_child(*state, child_without_dac_override, CHILD_PLAIN), 0);
}

/* ---- Workers made by the spawner, under its filter ------------------------------------------ */

struct worker_job {
	struct p9_work work;
	struct fx *fx;
	bool run_session;
	int session, outside;
	sem_t done;
};

static void job_run(struct p9_work *w, struct p9_worker_bufs *b)
{
	struct worker_job *j = (struct worker_job *)w;
	char p[192];

	(void)b;
	j->session = j->run_session ? session(j->fx) : 0;
	snprintf(p, sizeof(p), "%s/outside/secret", j->fx->dir);
	j->outside = open_errno(p, O_RDONLY);
	sem_post(&j->done);
}

struct share_args {
	int root_fd;
};

static int spawner_init(void *opaque)
{
	(void)opaque;
	return sandbox_p9_spawner();
}

static int worker_init(void *opaque)
{
	return sandbox_p9_worker(((struct share_args *)opaque)->root_fd, false);
}

static int child_spawned_workers(struct fx *fx)
{
	struct worker_job j = {.work.fn = job_run, .fx = fx};
	struct share_args a = {.root_fd = open(fx->share, O_PATH | O_DIRECTORY | O_CLOEXEC)};
	struct p9_spawner *sp;
	struct p9_pool *pool;

	if (a.root_fd < 0 || sem_init(&j.done, 0, 0))
		return 2;
	if (p9_spawner_create(spawner_init, NULL, &sp))
		return 3;
	/* Twice: a share added, removed, and another added (a worker serves one share). */
	for (int i = 0; i < 2; i++) {
		if (p9_spawner_pool(sp, 2, worker_init, &a, &pool))
			return 4;
		j.run_session = i == 0;
		p9_pool_submit(pool, &j.work);
		sem_wait(&j.done);
		p9_pool_destroy(pool);
		if (j.session)
			return 10 + j.session;
		if (landlock_abi >= 1 && j.outside != EACCES)
			return 5;
	}
	p9_spawner_destroy(sp);
	return 0;
}

static void test_spawned_workers(void **state)
{
	assert_exit_code(in_child(*state, child_spawned_workers, CHILD_PLAIN), 0);
}

/* The spawner makes threads of this process and nothing else. */
static __attribute__((unused)) int child_spawner_forks(struct fx *fx)
{
	(void)fx;
	syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	return 0;
}

static int child_spawner_clone3(struct fx *fx)
{
	(void)fx;
	/* Answered ENOSYS (glibc then uses clone, whose flags the filter checks). */
	return syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS ? 0 : 1;
}

static void test_spawner_limits(void **state)
{
	int st;

	assert_exit_code(in_child(*state, child_spawner_clone3, CHILD_SPAWNER), 0);
	st = in_child(*state, child_unix_socket, CHILD_SPAWNER);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
#ifndef __SANITIZE_ADDRESS__ /* ASan's own list allows clone, for its leak checker */
	st = in_child(*state, child_spawner_forks, CHILD_SPAWNER);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
#endif
}

/*
 * guest.dump_stacks asks every thread of the shim for its stack, 9p workers
 * included: the request's handler runs on the worker under its filter.
 */
static pthread_barrier_t ready;
static sem_t never; /* the worker waits here (a futex) until the child exits */

static struct fx *stacks_fx;

static void *sandboxed_worker(void *arg)
{
	int *err = arg;

	*err = child_sandbox(stacks_fx, CHILD_SANDBOXED);
	pthread_barrier_wait(&ready);
	sem_wait(&never);
	return NULL;
}

static int child_stacks(struct fx *fx)
{
	struct stacks_core_thread *t = NULL;
	pthread_t th;
	int err = 0, n = 0, pid, ret = 0;

	stacks_fx = fx;
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
	    cmocka_unit_test_setup_teardown(test_worker_confined_to_its_share, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dac_override_needed_for_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spawned_workers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spawner_limits, setup, teardown),
	};

	landlock_abi = sandbox_landlock_abi();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
