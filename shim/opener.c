/*
 * The opener (opener.h): a process that opens the host files the parent
 * names after the shim's threads lost the right to (Landlock), and passes the
 * fds back with SCM_RIGHTS.
 *
 * Wire: a SOCK_SEQPACKET socketpair, one request per message (op, flags,
 * mode, a NUL-terminated path), one answer per request ({err} and, when err
 * is 0, one fd). The shim side serializes calls with a mutex: every caller is
 * the loop thread today, and an answer never goes to the wrong caller.
 */
#include "shim/opener.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp/seccomp.h"
#include "vmm/host_open.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define TAG "opener"

enum opener_op {
	OPENER_OPEN = 1,
	OPENER_STDIO_IN,    /* stdio_open_host(path, STDIO_TO_GUEST) */
	OPENER_STDIO_OUT,   /* stdio_open_host(path, STDIO_FROM_GUEST) */
	OPENER_UNLINK_SOCK, /* unlink a Unix socket, nothing else */
};

struct opener_req {
	uint32_t op;
	int32_t flags;
	uint32_t mode;
	char path[PATH_MAX];
};
#define OPENER_REQ_HDR offsetof(struct opener_req, path)

struct opener_resp {
	int32_t err; /* 0: an fd rides along (none for OPENER_UNLINK_SOCK) */
};

/* What a request may ask for: no O_TMPFILE, O_DIRECT, O_LARGEFILE games, ... */
#define OPENER_FLAGS                                                                               \
	(O_ACCMODE | O_NONBLOCK | O_NOFOLLOW | O_CREAT | O_EXCL | O_TRUNC | O_APPEND |             \
	 O_DIRECTORY | O_PATH | O_CLOEXEC | O_NOCTTY)

static int chan = -1;
static pid_t opener_pid = -1;
static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- the rule: paths the opener never opens ---------------------------------------------- */

static bool beneath(const char *canon, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(canon, dir, n) && (canon[n] == '\0' || canon[n] == '/');
}

int opener_path_refused(const char *canon, mode_t st_mode)
{
	/* The host's own configuration, kernel interfaces and programs: no VM is made of them. */
	static const char *const system_dirs[] = {"/etc",  "/proc",  "/sys",   "/boot",
						  "/root", "/usr",   "/bin",   "/sbin",
						  "/lib",  "/lib32", "/lib64", "/libx32"};

	if (canon[0] != '/')
		return -EACCES; /* "socket:[...]", "anon_inode:...": never named by a path */
	for (size_t i = 0; i < ARRAY_SIZE(system_dirs); i++)
		if (beneath(canon, system_dirs[i]))
			return -EACCES;
	if (beneath(canon, "/dev")) {
		/* Disks may be block devices; stdio and consoles may be /dev/null or a pty. */
		if (S_ISBLK(st_mode) ||
		    (beneath(canon, "/dev/pts") && strcmp(canon, "/dev/pts/ptmx")))
			return 0;
		if (!strcmp(canon, "/dev/null") || !strcmp(canon, "/dev/zero"))
			return 0;
		if (beneath(canon, "/dev/shm") && !S_ISCHR(st_mode))
			return 0;
		return -EACCES; /* /dev/kvm, /dev/mem, /dev/sda's partitions named by... */
	}
	if (S_ISCHR(st_mode))
		return -EACCES; /* a device node outside /dev */
	return 0;
}

int opener_kind_refused(int flags, mode_t st_mode)
{
	if (S_ISLNK(st_mode)) /* O_NOFOLLOW was asked and the name is a symlink */
		return -ELOOP;
	if (flags & O_DIRECTORY) /* a share's root */
		return S_ISDIR(st_mode) ? 0 : -ENOTDIR;
	if (flags & O_CREAT) /* a console log */
		return S_ISREG(st_mode) ? 0 : -EACCES;
	if (S_ISDIR(st_mode))
		return -EISDIR;
	/* A disk or a pmem file: never a FIFO (it would hang the opener), nor a character device.
	 */
	return S_ISREG(st_mode) || S_ISBLK(st_mode) ? 0 : -EACCES;
}

/* The fd's resolved path passes the rule (-EACCES) and the fd is alive (-errno). */
static int check_fd(int fd)
{
	char proc[32], canon[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlinkat(AT_FDCWD, proc, canon, sizeof(canon) - 1);
	if (n < 0)
		return -errno;
	canon[n] = '\0';
	if (opener_path_refused(canon, st.st_mode)) {
		pr_warn(TAG, "refused: %s", canon);
		return -EACCES;
	}
	return 0;
}

static bool is_nsfs(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

/* A ".." component: the parent names clean paths; refused rather than resolved. */
static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

/*
 * path as an O_PATH fd (extra: O_NOFOLLOW, O_DIRECTORY), resolved without a
 * /proc magic link anywhere (/proc/PID/fd/N, /proc/PID/root/..., .../cwd/...:
 * another process's files, a VM's memory fd): nothing is opened for I/O
 * before the type and the path are checked on this fd.
 */
static int lookup(int dirfd, const char *path, int extra)
{
	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC | extra,
	    .resolve = RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (has_dotdot(path))
		return -EINVAL;
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/*
 * The directory of path, O_PATH, checked; *base points at the last component
 * (never empty, "." or ".."). For a file that may not exist yet.
 */
static int open_parent(const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dfd, ret;

	*base = slash ? slash + 1 : path;
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
		return -EINVAL;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = lookup(AT_FDCWD, dir, O_DIRECTORY);
	if (dfd < 0)
		return dfd;
	ret = check_fd(dfd);
	if (ret) {
		close(dfd);
		return ret;
	}
	return dfd;
}

/* ---- the opener process: one request ---------------------------------------------------- */

/* A new file (O_CREAT, the name does not exist): its directory passes the rule, no symlink. */
static int create_file(const char *path, int flags, mode_t mode)
{
	const char *base;
	int dfd, fd;

	dfd = open_parent(path, &base);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, base, (flags & ~O_TRUNC) | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
		    mode & 0666);
	if (fd < 0)
		fd = -errno;
	close(dfd);
	return fd;
}

/*
 * The name, then its checks (the kind the flags imply, the path rule), then
 * the open for I/O through the pinned fd: a FIFO or a character device is
 * refused before it is ever opened, and nothing swapped in between is reached.
 */
static int serve_open(const char *path, int flags, mode_t mode)
{
	char proc[32];
	struct stat st;
	int pfd, fd, ret, oflags;

	if (flags & ~OPENER_FLAGS)
		return -EINVAL;
	/* Truncating is for a file the opener may create (a console log), and only once checked. */
	if ((flags & O_TRUNC) && !(flags & O_CREAT))
		return -EINVAL;
	pfd = lookup(AT_FDCWD, path, flags & (O_NOFOLLOW | O_DIRECTORY));
	if (pfd == -ELOOP && !(flags & (O_DIRECTORY | O_CREAT | O_NOFOLLOW))) {
		/* nic.add's netns may be /proc/PID/ns/net, a magic link: a namespace only. */
		pfd = open(path, O_PATH | O_CLOEXEC);
		if (pfd < 0)
			return -errno;
		if (!is_nsfs(pfd)) {
			close(pfd);
			return -ELOOP;
		}
	} else if (pfd == -ENOENT && (flags & O_CREAT)) {
		return create_file(path, flags, mode);
	} else if (pfd < 0) {
		return pfd;
	}
	if ((flags & O_EXCL) && (flags & O_CREAT)) {
		ret = -EEXIST;
	} else if (fstat(pfd, &st) < 0) {
		ret = -errno;
	} else if (is_nsfs(pfd)) {
		/* nic.add's netns: a handle, named "net:[...]", not a path. */
		ret = flags & (O_DIRECTORY | O_CREAT) ? -EACCES : 0;
	} else {
		ret = opener_kind_refused(flags, st.st_mode);
		if (!ret)
			ret = check_fd(pfd);
	}
	if (ret || (flags & O_PATH)) {
		if (ret)
			close(pfd);
		return ret ? ret : pfd;
	}
	/* O_NOFOLLOW would refuse the magic link itself; the name was looked up already. */
	oflags = (flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW)) | O_NOCTTY | O_CLOEXEC;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, oflags);
	ret = fd < 0 ? -errno : 0;
	close(pfd);
	/* The checked file, truncated as O_TRUNC would have (only ever a regular file here). */
	if (!ret && (flags & O_TRUNC) && ftruncate(fd, 0) < 0)
		ret = -errno;
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	return fd;
}

static int serve_stdio(const char *path, enum stdio_dir dir)
{
	struct stat st;
	int pfd, fd, ret;

	/* One lookup, checked by its path (a socket's fd would not tell where it was). */
	pfd = lookup(AT_FDCWD, path, O_NOFOLLOW);
	if (pfd < 0)
		return pfd;
	ret = check_fd(pfd);
	if (ret) {
		close(pfd);
		return ret;
	}
	fd = stdio_open_pinned(pfd, dir);
	close(pfd);
	if (fd < 0 || (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)))
		return fd;
	ret = check_fd(fd);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int serve_unlink_socket(const char *path)
{
	const char *base;
	struct stat st;
	int dfd, ret = 0;

	dfd = open_parent(path, &base);
	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		ret = -errno;
	else if (!S_ISSOCK(st.st_mode))
		ret = -ENOTSOCK;
	else if (unlinkat(dfd, base, 0) < 0)
		ret = -errno;
	close(dfd);
	return ret;
}

static int send_answer(int sock, int err, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct opener_resp resp = {.err = err};
	struct iovec iov = {.iov_base = &resp, .iov_len = sizeof(resp)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		memset(&c, 0, sizeof(c));
		msg.msg_control = c.buf;
		msg.msg_controllen = sizeof(c.buf);
		CMSG_FIRSTHDR(&msg)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&msg)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&msg)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static __attribute__((noreturn)) void opener_main(int sock, pid_t parent)
{
	static struct opener_req req;
	int null;

	/* The shim's death ends the opener; it may have died before the line above. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "opener");
	/* Of the shim's fds only stderr (logs) and the channel stay; stdout is the protocol. */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
		_exit(1);
	if (dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	sock = 3;
	if (sandbox_drop_privileges() || sandbox_apply(SANDBOX_OPENER))
		_exit(1);
	for (;;) {
		ssize_t n = recv(sock, &req, sizeof(req), 0);
		int fd = -1, err;

		if (n <= 0) /* the shim closed its end or went away */
			_exit(0);
		if ((size_t)n <= OPENER_REQ_HDR || req.path[n - OPENER_REQ_HDR - 1] != '\0' ||
		    strlen(req.path) != (size_t)n - OPENER_REQ_HDR - 1) {
			err = -EINVAL;
		} else {
			switch (req.op) {
			case OPENER_OPEN:
				fd = serve_open(req.path, req.flags, req.mode);
				break;
			case OPENER_STDIO_IN:
				fd = serve_stdio(req.path, STDIO_TO_GUEST);
				break;
			case OPENER_STDIO_OUT:
				fd = serve_stdio(req.path, STDIO_FROM_GUEST);
				break;
			case OPENER_UNLINK_SOCK:
				fd = serve_unlink_socket(req.path); /* 0: no fd rides along */
				break;
			default:
				fd = -EINVAL;
				break;
			}
			err = fd < 0 ? fd : 0;
			if (fd < 0 || req.op == OPENER_UNLINK_SOCK)
				fd = -1;
		}
		if (send_answer(sock, err, fd) < 0)
			_exit(0);
		if (fd >= 0)
			close(fd);
	}
}

/* ---- the shim's side -------------------------------------------------------------------- */

/* One request, one answer: the fd passed (or 0 when none comes) or -errno. */
static int call(uint32_t op, const char *path, int flags, mode_t mode)
{
	static struct opener_req req;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct opener_resp resp;
	struct iovec iov = {.iov_base = &resp, .iov_len = sizeof(resp)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = c.buf,
			     .msg_controllen = sizeof(c.buf)};
	size_t len = strlen(path);
	struct cmsghdr *cm;
	ssize_t n;
	int fd = -1, ret;

	if (len >= sizeof(req.path))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&chan_lock);
	req.op = op;
	req.flags = flags;
	req.mode = mode;
	memcpy(req.path, path, len + 1);
	if (send(chan, &req, OPENER_REQ_HDR + len + 1, MSG_NOSIGNAL) < 0) {
		ret = -errno;
		goto dead;
	}
	do
		n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		ret = -errno;
		goto dead;
	}
	pthread_mutex_unlock(&chan_lock);
	cm = CMSG_FIRSTHDR(&msg);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (n != sizeof(resp) || resp.err > 0 || (resp.err < 0 && fd >= 0) ||
	    (resp.err == 0 && (fd >= 0) != (op != OPENER_UNLINK_SOCK))) {
		if (fd >= 0)
			close(fd);
		pr_err(TAG, "malformed answer for '%s'", path);
		return -EIO;
	}
	return resp.err ? resp.err : (fd >= 0 ? fd : 0);
dead:
	pthread_mutex_unlock(&chan_lock);
	pr_err(TAG, "the opener is gone (%s): '%s' not opened", strerror(-ret), path);
	return -EIO;
}

int opener_open(const char *path, int flags, mode_t mode)
{
	return call(OPENER_OPEN, path, flags, mode);
}

int opener_stdio(const char *path, enum stdio_dir dir)
{
	return call(dir == STDIO_TO_GUEST ? OPENER_STDIO_IN : OPENER_STDIO_OUT, path, 0, 0);
}

int opener_unlink_socket(const char *path)
{
	return call(OPENER_UNLINK_SOCK, path, 0, 0);
}

static const struct host_open_ops opener_ops = {
    .open = opener_open,
    .unlink_socket = opener_unlink_socket,
};

bool opener_running(void)
{
	return chan >= 0;
}

int opener_start(void)
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
		pr_err_errno(TAG, "fork");
		return ret;
	}
	if (pid == 0) {
		close(sv[0]);
		opener_main(sv[1], parent);
	}
	close(sv[1]);
	chan = sv[0];
	opener_pid = pid;
	host_open_set_ops(&opener_ops);
	pr_dbg(TAG, "opener started (pid %d)", (int)pid);
	return 0;
}

void opener_stop(void)
{
	siginfo_t si;

	if (chan < 0)
		return;
	host_open_set_ops(NULL);
	close(chan);
	chan = -1;
	/* EOF ends it at once. */
	while (waitid(P_PID, (id_t)opener_pid, &si, WEXITED) < 0 && errno == EINTR)
		;
	opener_pid = -1;
}
