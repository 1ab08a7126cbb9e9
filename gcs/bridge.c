/*
 * The GCS side of the bridge (gcs/protocol.h, docs/protocol.md): dials the
 * host on vsock, negotiates, then runs processes for it and reports on them.
 *
 * It runs as `/init bridge`, the command PID 1 starts: the processes it execs
 * are its children, so it reaps them itself, and when it ends (shutdown, lost
 * host) PID 1 syncs and ends the VM.
 *
 * Process stdio goes straight over vsock: in pipe mode the process's fds 0-2
 * are the connected sockets themselves (no copy in the GCS); in tty mode the
 * GCS relays between the pty master and the sockets.
 *
 * Host-side tests: with UVM_GCS_UNIX=PATH set, every "dial host port P"
 * connects to the Unix socket PATH_P instead (the vsock Unix convention),
 * and UVM_GCS_SYSFS=DIR, if set too, stands for /sys in the disk operations
 * (gcs/selftest-bridge keeps a scsi_add waiting that way).
 */
#include "gcs/gcs.h"
#include "gcs/protocol.h"
#include "gcs/sock.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS    1024
#define MAX_ARGS     4096
#define CONNECT_SECS 30
/* dump_stacks: how long the loop waits for the threads' answers (twice at most). */
#define GCS_STACKS_TIMEOUT_MS 1000

static const char *const caps[] = {
    BRIDGE_CAP_EXEC,	    BRIDGE_CAP_TTY,	 BRIDGE_CAP_SIGNAL, BRIDGE_CAP_PROPERTIES,
    BRIDGE_CAP_DUMP_STACKS, BRIDGE_CAP_SHUTDOWN, BRIDGE_CAP_SCSI, BRIDGE_CAP_NIC};

struct waiter {
	uint64_t id;
	struct waiter *next;
};

struct proc {
	pid_t pid;
	bool exited;
	bool waited; /* a wait was answered: the host knows, the entry may go */
	int status;  /* wait status */
	struct waiter *waiters;
	/* tty mode: master <-> sockets */
	int master;
	int in_sock, out_sock; /* -1 when not relayed (or done) */
	struct proc *next;
};

static struct {
	int fd;	  /* the bridge connection */
	int epfd; /* epoll: bridge, signalfd, pty relays */
	int sfd;
	int storage_fd; /* eventfd: a disk operation finished (storage.c) */
	bool negotiated;
	bool quit;
	struct bridge_rx rx;
	struct proc *procs;
	unsigned nr_procs;
	const char *unix_base; /* test mode */
} B = {.fd = -1, .epfd = -1, .sfd = -1, .storage_fd = -1};

/* ---- dialling the host ---------------------------------------------------------- */

static int dial(uint32_t port)
{
	if (B.unix_base) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s_%u", B.unix_base, port);
		return sock_connect_unix(path);
	}
	struct sockaddr_vm sv = {
	    .svm_family = AF_VSOCK, .svm_cid = BRIDGE_HOST_CID, .svm_port = port};

	return sock_connect((struct sockaddr *)&sv, sizeof(sv));
}

/* ---- sending ---------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

/* Sends type/id with body obj (consumed). */
static void send_msg(uint32_t type, uint64_t id, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	uint8_t *buf;
	long n;

	cJSON_Delete(obj);
	if (!text)
		return;
	n = bridge_msg_encode(&buf, type, id, text, strlen(text), BRIDGE_MSG_MAX);
	free(text);
	if (n < 0) {
		gcs_log("cannot encode a %s: %s", bridge_type_name(type), strerror(-n));
		return;
	}
	if (write_all(B.fd, buf, n) < 0) {
		gcs_log_errno("bridge write");
		B.quit = true;
	}
	free(buf);
}

static void respond(uint32_t req_type, uint64_t id, int status, cJSON *body, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void respond(uint32_t req_type, uint64_t id, int status, cJSON *body, const char *fmt, ...)
{
	if (!body)
		body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "status", status);
	if (status && fmt) {
		char msg[512];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cJSON_AddStringToObject(body, "error", msg);
	}
	send_msg(bridge_response_type(req_type), id, body);
}

/* ---- processes -------------------------------------------------------------------- */

static struct proc *proc_find(pid_t pid)
{
	struct proc *p = B.procs;

	while (p && p->pid != pid)
		p = p->next;
	return p;
}

static int exit_code(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static cJSON *exit_body(const struct proc *p)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "pid", p->pid);
	cJSON_AddNumberToObject(b, "exit_code", exit_code(p->status));
	cJSON_AddNumberToObject(b, "signal", WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0);
	return b;
}

static void proc_relay_close(struct proc *p)
{
	if (p->master >= 0) {
		epoll_ctl(B.epfd, EPOLL_CTL_DEL, p->master, NULL);
		close(p->master);
		p->master = -1;
	}
	if (p->in_sock >= 0) {
		epoll_ctl(B.epfd, EPOLL_CTL_DEL, p->in_sock, NULL);
		close(p->in_sock);
		p->in_sock = -1;
	}
	if (p->out_sock >= 0) {
		close(p->out_sock);
		p->out_sock = -1;
	}
}

/* Answers the waits of p and forgets it once nobody can ask any more. */
static void proc_report(struct proc *p)
{
	const uint32_t wait_type =
	    BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT);

	while (p->waiters) {
		struct waiter *w = p->waiters;

		p->waiters = w->next;
		respond(wait_type, w->id, 0, exit_body(p), NULL);
		free(w);
		p->waited = true;
	}
}

/*
 * Entries go once the process exited, a wait was answered and its relays are
 * closed. Only between epoll batches: an event of the current batch may still
 * point at one.
 */
static void procs_sweep(void)
{
	struct proc **pp = &B.procs;

	while (*pp) {
		struct proc *p = *pp;

		if (p->exited && p->waited && p->master < 0 && p->in_sock < 0) {
			*pp = p->next;
			B.nr_procs--;
			free(p);
		} else {
			pp = &p->next;
		}
	}
}

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = proc_find(pid);

		if (!p)
			continue;
		p->exited = true;
		p->status = status;
		gcs_log("pid %d exited: %d", pid, exit_code(status));
		send_msg(BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS,
				     BRIDGE_NOTIFY_PROCESS_EXITED),
			 0, exit_body(p));
		proc_report(p);
	}
}

/* tty relay: master -> stdout socket, stdin socket -> master. Small, blocking writes. */
static void relay_event(struct proc *p, int fd)
{
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (fd == p->master) {
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				return;
			/* EIO: every slave fd closed, the output is complete. */
			proc_relay_close(p);
			return;
		}
		if (p->out_sock >= 0 && write_all(p->out_sock, buf, n) < 0) {
			close(p->out_sock);
			p->out_sock = -1;
		}
		return;
	}
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		/* Host closed stdin: send the terminal's EOF character. */
		epoll_ctl(B.epfd, EPOLL_CTL_DEL, p->in_sock, NULL);
		close(p->in_sock);
		p->in_sock = -1;
		if (p->master >= 0)
			write_all(p->master, "\x04", 1);
		return;
	}
	if (p->master >= 0)
		write_all(p->master, buf, n);
}

static int epoll_add_ptr(int fd, void *ptr)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};

	return epoll_ctl(B.epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Marks in epoll data which fd of a proc fired: the low bit selects stdin. */
#define TAG_IN 1ul

static void child_reset_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

static char **strv_from(const cJSON *arr, size_t max, int *err)
{
	size_t n = cJSON_GetArraySize(arr), i = 0;
	const cJSON *e;
	char **v;

	*err = 0;
	if (n > max) {
		*err = -E2BIG;
		return NULL;
	}
	v = calloc(n + 1, sizeof(*v));
	if (!v) {
		*err = -ENOMEM;
		return NULL;
	}
	cJSON_ArrayForEach(e, arr)
	{
		if (!cJSON_IsString(e)) {
			free(v);
			*err = -EINVAL;
			return NULL;
		}
		v[i++] = e->valuestring;
	}
	return v;
}

static int num_field(const cJSON *o, const char *k, long def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : def;
}

static void do_exec(uint32_t type, uint64_t id, const cJSON *req)
{
	const cJSON *jargv = cJSON_GetObjectItemCaseSensitive(req, "argv");
	const cJSON *jenv = cJSON_GetObjectItemCaseSensitive(req, "env");
	const cJSON *jcwd = cJSON_GetObjectItemCaseSensitive(req, "cwd");
	const cJSON *jterm = cJSON_GetObjectItemCaseSensitive(req, "term");
	bool tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "tty"));
	uint32_t ports[3] = {num_field(req, "stdin_port", 0), num_field(req, "stdout_port", 0),
			     num_field(req, "stderr_port", 0)};
	int socks[3] = {-1, -1, -1}, errpipe[2] = {-1, -1}, master = -1, slave = -1, err, cerr;
	char **argv = NULL, **envp = NULL;
	struct winsize ws = {.ws_row = num_field(req, "rows", 24),
			     .ws_col = num_field(req, "cols", 80)};
	struct proc *p = NULL;
	ssize_t n;
	pid_t pid;

	if (!cJSON_IsArray(jargv) || cJSON_GetArraySize(jargv) < 1) {
		respond(type, id, -EINVAL, NULL, "exec: argv must be a non-empty array of strings");
		return;
	}
	argv = strv_from(jargv, MAX_ARGS, &err);
	if (!argv) {
		respond(type, id, err, NULL, "exec: bad argv: %s", strerror(-err));
		return;
	}
	if (jenv && !cJSON_IsNull(jenv)) {
		envp = cJSON_IsArray(jenv) ? strv_from(jenv, MAX_ARGS, &err) : NULL;
		if (!envp) {
			respond(type, id, -EINVAL, NULL, "exec: env must be an array of strings");
			goto out;
		}
	}
	if (B.nr_procs >= MAX_PROCS) {
		respond(type, id, -EAGAIN, NULL, "exec: too many processes (%d)", MAX_PROCS);
		goto out;
	}
	/* Connect every stream before the process starts, so no byte is written to nowhere. */
	for (int i = 0; i < 3; i++) {
		if (!ports[i])
			continue;
		socks[i] = dial(ports[i]);
		if (socks[i] < 0) {
			err = socks[i];
			socks[i] = -1;
			respond(type, id, err, NULL, "exec: stdio port %u: %s", ports[i],
				strerror(-err));
			goto out;
		}
	}
	if (tty && openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		err = -errno;
		respond(type, id, err, NULL, "exec: openpty: %s", strerror(errno));
		goto out;
	}
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		err = -errno;
		respond(type, id, err, NULL, "exec: pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		err = -errno;
		respond(type, id, err, NULL, "exec: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int nullfd = open("/dev/null", O_RDWR);

		child_reset_signals();
		setsid();
		if (tty) {
			ioctl(slave, TIOCSCTTY, 0);
			dup2(slave, 0);
			dup2(slave, 1);
			dup2(slave, 2);
		} else {
			for (int i = 0; i < 3; i++)
				dup2(socks[i] >= 0 ? socks[i] : nullfd, i);
		}
		if (cJSON_IsString(jcwd) && chdir(jcwd->valuestring) < 0)
			goto fail;
		/* The host terminal's type, for a tty; an explicit env has the last word. */
		if (tty && !envp && cJSON_IsString(jterm) && jterm->valuestring[0] &&
		    strlen(jterm->valuestring) < 64)
			setenv("TERM", jterm->valuestring, 1);
		if (setgid(num_field(req, "gid", 0)) < 0 || setuid(num_field(req, "uid", 0)) < 0)
			goto fail;
		if (envp)
			execvpe(argv[0], argv, envp);
		else
			execvp(argv[0], argv);
	fail:
		cerr = errno;
		if (write(errpipe[1], &cerr, sizeof(cerr)) < 0) {
			/* the parent reports a generic failure */
		}
		_exit(127);
	}
	close(errpipe[1]);
	errpipe[1] = -1;
	do
		n = read(errpipe[0], &cerr, sizeof(cerr));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(cerr)) {
		/* exec failed: reap now, nobody will ever wait for it */
		waitpid(pid, NULL, 0);
		respond(type, id, -cerr, NULL, "exec %s: %s", argv[0], strerror(cerr));
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		kill(pid, SIGKILL);
		respond(type, id, -ENOMEM, NULL, "exec: out of memory");
		goto out;
	}
	p->pid = pid;
	p->master = p->in_sock = p->out_sock = -1;
	if (tty) {
		p->master = master;
		master = -1;
		p->in_sock = socks[0];
		p->out_sock = socks[1];
		socks[0] = socks[1] = -1;
		epoll_add_ptr(p->master, p);
		if (p->in_sock >= 0)
			epoll_add_ptr(p->in_sock, (void *)((uintptr_t)p | TAG_IN));
	}
	p->next = B.procs;
	B.procs = p;
	B.nr_procs++;
	{
		cJSON *b = cJSON_CreateObject();

		cJSON_AddNumberToObject(b, "pid", pid);
		respond(type, id, 0, b, NULL);
	}
	gcs_log("exec %s: pid %d%s", argv[0], pid, tty ? " (tty)" : "");
out:
	for (int i = 0; i < 3; i++)
		if (socks[i] >= 0)
			close(socks[i]); /* the child holds its own copies */
	if (master >= 0)
		close(master);
	if (slave >= 0)
		close(slave);
	if (errpipe[0] >= 0)
		close(errpipe[0]);
	if (errpipe[1] >= 0)
		close(errpipe[1]);
	free(argv);
	free(envp);
}

static void do_wait(uint32_t type, uint64_t id, const cJSON *req)
{
	struct proc *p = proc_find(num_field(req, "pid", -1));
	struct waiter *w;

	if (!p) {
		respond(type, id, -ESRCH, NULL, "wait: no process %d", num_field(req, "pid", -1));
		return;
	}
	if (p->exited) {
		respond(type, id, 0, exit_body(p), NULL);
		p->waited = true;
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		respond(type, id, -ENOMEM, NULL, "wait: out of memory");
		return;
	}
	w->id = id;
	w->next = p->waiters;
	p->waiters = w;
}

static void do_signal(uint32_t type, uint64_t id, const cJSON *req)
{
	struct proc *p = proc_find(num_field(req, "pid", -1));
	int sig = num_field(req, "signal", -1);

	if (!p) {
		respond(type, id, -ESRCH, NULL, "signal: no process %d", num_field(req, "pid", -1));
		return;
	}
	if (sig < 0 || sig >= NSIG) {
		respond(type, id, -EINVAL, NULL, "signal: bad signal %d", sig);
		return;
	}
	if (p->exited) {
		respond(type, id, -ESRCH, NULL, "signal: process %d has exited", p->pid);
		return;
	}
	/* The process leads its own session and group: signal the whole group. */
	if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0) {
		respond(type, id, -errno, NULL, "signal %d: %s", p->pid, strerror(errno));
		return;
	}
	respond(type, id, 0, NULL, NULL);
}

static void do_resize(uint32_t type, uint64_t id, const cJSON *req)
{
	struct proc *p = proc_find(num_field(req, "pid", -1));
	struct winsize ws = {.ws_row = num_field(req, "rows", 24),
			     .ws_col = num_field(req, "cols", 80)};

	if (!p) {
		respond(type, id, -ESRCH, NULL, "resize: no process %d", num_field(req, "pid", -1));
		return;
	}
	if (p->master < 0) {
		respond(type, id, -ENOTTY, NULL, "resize: process %d has no terminal", p->pid);
		return;
	}
	if (ioctl(p->master, TIOCSWINSZ, &ws) < 0) {
		respond(type, id, -errno, NULL, "resize: %s", strerror(errno));
		return;
	}
	respond(type, id, 0, NULL, NULL);
}

static long meminfo_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void do_properties(uint32_t type, uint64_t id, const cJSON *req)
{
	cJSON *b = cJSON_CreateObject(), *procs = cJSON_AddArrayToObject(b, "processes");
	DIR *d = opendir("/proc");
	struct dirent *de;
	char buf[4096];
	long page_kib = sysconf(_SC_PAGESIZE) / 1024;
	int fd;

	while (d && (de = readdir(d))) {
		char path[300], comm[64] = "", state;
		int ppid = 0;
		long rss = 0;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		/* pid (comm) state ppid ... field 24 is rss in pages */
		if (fscanf(f,
			   "%*d (%63[^)]) %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
			   "%*d %*d %*d %*d %*d %*u %*u %ld",
			   comm, &state, &ppid, &rss) >= 3) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddNumberToObject(e, "pid", atoi(de->d_name));
			cJSON_AddNumberToObject(e, "ppid", ppid);
			cJSON_AddStringToObject(e, "name", comm);
			cJSON_AddNumberToObject(e, "rss_kib", rss * page_kib);
			cJSON_AddItemToArray(procs, e);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		cJSON *m = cJSON_AddObjectToObject(b, "memory");

		close(fd);
		buf[n > 0 ? n : 0] = 0;
		cJSON_AddNumberToObject(m, "total_kib", meminfo_kib(buf, "MemTotal:"));
		cJSON_AddNumberToObject(m, "free_kib", meminfo_kib(buf, "MemFree:"));
		cJSON_AddNumberToObject(m, "available_kib", meminfo_kib(buf, "MemAvailable:"));
	}
	respond(type, id, 0, b, NULL);
}

/*
 * Every thread of the bridge process: this one (the loop) and the storage
 * workers (stacks.c). The loop waits for the answers, at most
 * GCS_STACKS_TIMEOUT_MS twice; a worker stuck in the kernel costs that.
 */
static void do_dump_stacks(uint32_t type, uint64_t id, const cJSON *req)
{
	char *text = gcs_stacks_dump(GCS_STACKS_TIMEOUT_MS);
	cJSON *b;

	if (!text) {
		respond(type, id, -EIO, NULL,
			"dump_stacks: no stack handler, or /proc/self/task unreadable");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "stacks", text);
	free(text);
	respond(type, id, 0, b, NULL);
}

static void do_negotiate(uint32_t type, uint64_t id, const cJSON *req)
{
	int minv = num_field(req, "min_version", 1), maxv = num_field(req, "max_version", 1);
	cJSON *b, *c;
	struct utsname u;

	if (minv > (int)BRIDGE_VERSION || maxv < (int)BRIDGE_VERSION) {
		respond(type, id, -EPROTONOSUPPORT, NULL, "negotiate: versions %d..%d, I speak %u",
			minv, maxv, BRIDGE_VERSION);
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "version", BRIDGE_VERSION);
	c = cJSON_AddArrayToObject(b, "capabilities");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		cJSON_AddItemToArray(c, cJSON_CreateString(caps[i]));
	if (uname(&u) == 0)
		cJSON_AddStringToObject(b, "kernel", u.release);
	B.negotiated = true;
	respond(type, id, 0, b, NULL);
	gcs_log("bridge negotiated (version %u)", BRIDGE_VERSION);
}

static void do_shutdown(uint32_t type, uint64_t id, const cJSON *req)
{
	respond(type, id, 0, NULL, NULL);
	gcs_log("shutdown requested");
	sync();
	B.quit = true; /* PID 1 powers the VM off when we end */
}

static const char *str_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * Disks: each operation runs on a worker thread (storage.c, its jobs) and is
 * answered from the loop when the worker is done, so a disk that takes long
 * to appear does not stall the other requests. Two operations on one serial
 * never overlap: the second fails with -EBUSY (storage.c says why).
 */
static int copy_field(char *dst, size_t len, const char *src, const char *what, char *err,
		      size_t errlen)
{
	if (!src)
		src = "";
	if (strlen(src) >= len) {
		snprintf(err, errlen, "%s: longer than %zu bytes", what, len - 1);
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static void scsi_submit(uint32_t type, uint64_t id, const cJSON *req, bool remove)
{
	const char *serial = str_field(req, "serial"), *fs = str_field(req, "fs");
	long timeout = num_field(req, "timeout_ms", remove ? 10000 : 30000);
	struct gcs_storage_job *j;
	char err[512];
	int ret;

	if (!serial || !*serial) {
		respond(type, id, -EINVAL, NULL, "%s: no serial",
			remove ? "scsi_remove" : "scsi_add");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		respond(type, id, -ENOMEM, NULL, "out of memory");
		return;
	}
	j->type = type;
	j->id = id;
	j->remove = remove;
	j->read_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "read_only"));
	j->timeout_ms = timeout > 0 ? timeout : (remove ? 10000 : 30000);
	ret = copy_field(j->serial, sizeof(j->serial), serial, "serial", err, sizeof(err));
	if (!ret)
		ret = copy_field(j->mnt, sizeof(j->mnt), str_field(req, "mount"), "mount", err,
				 sizeof(err));
	if (!ret)
		ret = copy_field(j->fs, sizeof(j->fs), fs ? fs : "ext4", "fs", err, sizeof(err));
	if (!ret)
		ret = copy_field(j->opts, sizeof(j->opts), str_field(req, "options"), "options",
				 err, sizeof(err));
	if (!ret)
		ret = gcs_storage_submit(j, err, sizeof(err));
	if (ret) {
		respond(type, id, ret, NULL, "%s", err);
		free(j);
	}
}

/* Answers the disk operations whose workers are done. */
static void scsi_reap(void)
{
	struct gcs_storage_job *j;

	while ((j = gcs_storage_reap())) {
		if (j->ret) {
			respond(j->type, j->id, j->ret, NULL, "%s", j->err);
		} else if (j->remove) {
			respond(j->type, j->id, 0, NULL, NULL);
		} else {
			cJSON *b = cJSON_CreateObject();

			cJSON_AddStringToObject(b, "device", j->dev);
			respond(j->type, j->id, 0, b, NULL);
		}
		free(j);
	}
}

static void do_scsi_add(uint32_t type, uint64_t id, const cJSON *req)
{
	scsi_submit(type, id, req, false);
}

static void do_scsi_remove(uint32_t type, uint64_t id, const cJSON *req)
{
	scsi_submit(type, id, req, true);
}

/*
 * nic_*: done inline on the bridge loop. An add waits for the interface (a PCI
 * rescan finds it in well under a second; the timeout bounds the wait).
 */
static void do_nic(uint32_t type, uint64_t id, const cJSON *req)
{
	char err[256] = "", ifname[32] = "";
	unsigned rpc = bridge_type_rpc(type);
	int ret;

	if (rpc == BRIDGE_RPC_NIC_ADD)
		ret = gcs_net_add(req, ifname, sizeof(ifname), err, sizeof(err));
	else if (rpc == BRIDGE_RPC_NIC_UPDATE)
		ret = gcs_net_update(req, err, sizeof(err));
	else
		ret = gcs_net_remove(req, err, sizeof(err));
	if (ret) {
		respond(type, id, ret, NULL, "%s", err);
	} else if (rpc == BRIDGE_RPC_NIC_ADD) {
		cJSON *b = cJSON_CreateObject();

		cJSON_AddStringToObject(b, "interface", ifname);
		respond(type, id, 0, b, NULL);
	} else {
		respond(type, id, 0, NULL, NULL);
	}
}

static void dispatch(const struct bridge_rx_event *ev)
{
	uint32_t type = ev->hdr.type;
	cJSON *req;

	if (bridge_type_kind(type) != BRIDGE_KIND_REQUEST) {
		gcs_log("ignoring a %s from the host", bridge_type_name(type));
		return;
	}
	req = cJSON_ParseWithLength(ev->body, ev->body_len);
	if (!cJSON_IsObject(req)) {
		respond(type, ev->hdr.id, -EBADMSG, NULL, "%s: body is not a JSON object",
			bridge_type_name(type));
		cJSON_Delete(req);
		return;
	}
	if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_NEGOTIATE))
		do_negotiate(type, ev->hdr.id, req);
	else if (!B.negotiated)
		respond(type, ev->hdr.id, -EPROTO, NULL, "negotiate first");
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC))
		do_exec(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT))
		do_wait(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL))
		do_signal(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_RESIZE))
		do_resize(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_PROPERTIES))
		do_properties(type, ev->hdr.id, req);
	else if (type ==
		 BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_DUMP_STACKS))
		do_dump_stacks(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_SHUTDOWN))
		do_shutdown(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_ADD))
		do_scsi_add(type, ev->hdr.id, req);
	else if (type ==
		 BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_REMOVE))
		do_scsi_remove(type, ev->hdr.id, req);
	else if (type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_ADD) ||
		 type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_UPDATE) ||
		 type == BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_REMOVE))
		do_nic(type, ev->hdr.id, req);
	else
		respond(type, ev->hdr.id, -EOPNOTSUPP, NULL, "%s is not supported",
			bridge_type_name(type));
	cJSON_Delete(req);
}

static void on_bridge_readable(void)
{
	uint8_t buf[65536];
	ssize_t n = read(B.fd, buf, sizeof(buf));
	size_t off = 0, used;

	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		gcs_log("host closed the bridge");
		B.quit = true;
		return;
	}
	while (off < (size_t)n) {
		struct bridge_rx_event ev;
		enum bridge_rx_result r = bridge_rx_feed(&B.rx, buf + off, n - off, &used, &ev);

		off += used;
		if (r == BRIDGE_RX_MORE)
			break;
		if (r == BRIDGE_RX_MSG) {
			dispatch(&ev);
			free(ev.body);
		} else if (r == BRIDGE_RX_REFUSED) {
			gcs_log("refused a message (type 0x%x, %u bytes): %s", ev.hdr.type,
				ev.hdr.size, strerror(-ev.err));
			if (bridge_type_kind(ev.hdr.type) == BRIDGE_KIND_REQUEST &&
			    bridge_type_name(ev.hdr.type))
				respond(ev.hdr.type, ev.hdr.id, ev.err, NULL, "message refused: %s",
					strerror(-ev.err));
		} else {
			gcs_log("bridge framing lost (size %u); closing", ev.hdr.size);
			B.quit = true;
			return;
		}
	}
}

/* ---- vsock self-test helpers (e2e tests, benchmarks) ------------------------------- */

/* Copies in -> out until EOF; returns bytes copied or -1. */
static long long copy_fd(int in, int out)
{
	static char buf[1 << 16];
	long long total = 0;
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (write_all(out, buf, n) < 0)
			return -1;
		total += n;
	}
	return total;
}

/*
 * `bridge --vsock-echo PORT`: accepts one vsock connection on PORT, echoes it
 * until EOF. `bridge --vsock-dial PORT`: connects to host port PORT, sends
 * stdin, then half-closes and copies the answer to stdout. Both give the
 * tests a guest-side AF_VSOCK program (the guest's busybox has none).
 */
static int vsock_tool(const char *mode, const char *port_s)
{
	uint32_t port = strtoul(port_s, NULL, 0);
	int fd, c;

	if (strcmp(mode, "--vsock-echo") == 0) {
		struct sockaddr_vm sv = {
		    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};

		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sv, sizeof(sv)) < 0 ||
		    listen(fd, 1) < 0) {
			gcs_log_errno("vsock-echo: listen on %u", port);
			return 1;
		}
		printf("listening %u\n", port);
		fflush(stdout);
		c = accept(fd, NULL, NULL);
		if (c < 0) {
			gcs_log_errno("vsock-echo: accept");
			return 1;
		}
		copy_fd(c, c);
		close(c);
		close(fd);
		return 0;
	}
	if (strcmp(mode, "--vsock-dial") == 0) {
		fd = dial(port);
		if (fd < 0) {
			errno = -fd;
			gcs_log_errno("vsock-dial: host port %u", port);
			return 1;
		}
		if (copy_fd(STDIN_FILENO, fd) < 0)
			return 1;
		shutdown(fd, SHUT_WR);
		return copy_fd(fd, STDOUT_FILENO) < 0;
	}
	gcs_log("bridge: unknown option %s", mode);
	return 2;
}

/*
 * `bridge --vsock-send PORT BYTES`: connects to host port PORT and writes BYTES zero bytes
 * in 64 KiB writes, then closes. For the throughput benchmark: a shell pipeline feeding
 * --vsock-dial would measure busybox and the pipe as much as the vsock device.
 */
static int vsock_send(const char *port_s, const char *bytes_s)
{
	static char zeros[1 << 16];
	unsigned long long left = strtoull(bytes_s, NULL, 0);
	int fd = dial(strtoul(port_s, NULL, 0));

	if (fd < 0) {
		errno = -fd;
		gcs_log_errno("vsock-send: host port %s", port_s);
		return 1;
	}
	while (left) {
		size_t n = left < sizeof(zeros) ? left : sizeof(zeros);

		if (write_all(fd, zeros, n) < 0) {
			gcs_log_errno("vsock-send: write");
			return 1;
		}
		left -= n;
	}
	close(fd);
	return 0;
}

int gcs_bridge_main(int argc, char **argv)
{
	sigset_t set;
	int logfd, ret;
	struct epoll_event ev = {.events = EPOLLIN};

	B.unix_base = getenv("UVM_GCS_UNIX");
	/* Test mode only: disks looked for under a fake sysfs, not the test machine's. */
	if (B.unix_base && getenv("UVM_GCS_SYSFS"))
		gcs_storage_set_sysfs(getenv("UVM_GCS_SYSFS"));
	if (argc == 3)
		return vsock_tool(argv[1], argv[2]);
	if (argc == 4 && strcmp(argv[1], "--vsock-send") == 0)
		return vsock_send(argv[2], argv[3]);
	signal(SIGPIPE, SIG_IGN);
	ret = gcs_stacks_init();
	if (ret) {
		errno = -ret;
		gcs_log_errno("bridge: dump_stacks will have no stacks");
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	B.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	B.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (B.sfd < 0 || B.epfd < 0) {
		gcs_log_errno("bridge: signalfd/epoll");
		return 1;
	}
	/* The vsock transport may still be probing: retry for a while. */
	for (int i = 0; i < CONNECT_SECS * 10; i++) {
		B.fd = dial(BRIDGE_PORT);
		if (B.fd >= 0)
			break;
		usleep(100 * 1000);
	}
	if (B.fd < 0) {
		errno = -B.fd;
		gcs_log_errno("bridge: cannot reach the host on port 0x%x", BRIDGE_PORT);
		return 1;
	}
	/* Our log goes to the host from now on; the console keeps PID 1's. */
	logfd = dial(BRIDGE_LOG_PORT);
	if (logfd >= 0) {
		dup2(logfd, STDERR_FILENO);
		close(logfd);
	}
	gcs_log("bridge connected");
	bridge_rx_init(&B.rx, BRIDGE_MSG_MAX);
	ev.data.ptr = &B.fd;
	epoll_ctl(B.epfd, EPOLL_CTL_ADD, B.fd, &ev);
	ev.data.ptr = &B.sfd;
	epoll_ctl(B.epfd, EPOLL_CTL_ADD, B.sfd, &ev);
	/* Finished disk operations (storage.c workers) wake the loop. */
	B.storage_fd = gcs_storage_jobs_init();
	if (B.storage_fd < 0) {
		errno = -B.storage_fd;
		gcs_log_errno("bridge: storage jobs");
		return 1;
	}
	ev.data.ptr = &B.storage_fd;
	epoll_ctl(B.epfd, EPOLL_CTL_ADD, B.storage_fd, &ev);

	while (!B.quit) {
		struct epoll_event evs[16];
		int n = epoll_wait(B.epfd, evs, 16, -1);

		if (n < 0 && errno != EINTR) {
			gcs_log_errno("bridge: epoll_wait");
			break;
		}
		for (int i = 0; i < n && !B.quit; i++) {
			void *ptr = evs[i].data.ptr;

			if (ptr == &B.fd) {
				on_bridge_readable();
			} else if (ptr == &B.sfd) {
				struct signalfd_siginfo si;

				while (read(B.sfd, &si, sizeof(si)) == sizeof(si))
					;
				reap();
			} else if (ptr == &B.storage_fd) {
				scsi_reap();
			} else {
				struct proc *p = (struct proc *)((uintptr_t)ptr & ~TAG_IN);
				bool in = (uintptr_t)ptr & TAG_IN;
				int fd = in ? p->in_sock : p->master;

				if (fd >= 0)
					relay_event(p, fd);
			}
		}
		procs_sweep();
	}
	/* Disk operations still running give up; their answers would go nowhere. */
	gcs_storage_jobs_stop();
	bridge_rx_fini(&B.rx);
	close(B.fd);
	return 0;
}
