/*
 * Processes the host runs in the guest (exec), and their waits, signals and
 * terminal sizes.
 *
 * Process stdio goes straight over vsock: in pipe mode the process's fds 0-2
 * are the connected sockets themselves (no copy in the GCS); in tty mode two
 * relays (relay.c) copy the pty master to the stdout socket and the stdin
 * socket to the master, never blocking the loop.
 */
#include "gcs/bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pty.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PROCS 1024
#define MAX_ARGS  4096
/* The tty's end-of-file character, written when the host closes stdin. */
#define TTY_EOF 0x04

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
	int master;		  /* tty mode, for resize: -1 once the terminal is gone */
	struct gcs_relay out, in; /* tty mode: master -> stdout socket, stdin socket -> master */
	void (*on_exit)(pid_t pid, int status); /* adopted processes: their owner hears first */
	bool late; /* adopted after it was reaped: its exit goes out at the next sweep */
	struct proc *next;
};

static struct proc *procs;
static unsigned nr_procs;

static struct proc *proc_find(pid_t pid)
{
	struct proc *p = procs;

	while (p && p->pid != pid)
		p = p->next;
	return p;
}

/* The pid field of a request, and its process; answers -EINVAL/-ESRCH itself. */
static struct proc *proc_of(uint32_t type, uint64_t id, const cJSON *req, const char *what)
{
	long long pid;
	struct proc *p;

	if (gcs_bridge_int(req, "pid", 1, INT32_MAX, -1, &pid)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: pid must be a positive integer",
				   what);
		return NULL;
	}
	p = proc_find(pid);
	if (!p)
		gcs_bridge_respond(type, id, -ESRCH, NULL, "%s: no process %lld", what, pid);
	return p;
}

static cJSON *exit_body(const struct proc *p)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "pid", p->pid);
	cJSON_AddNumberToObject(b, "exit_code", gcs_exit_code(p->status));
	cJSON_AddNumberToObject(b, "signal", WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0);
	return b;
}

/* Answers the waits of p. */
static void proc_report(struct proc *p)
{
	const uint32_t wait_type =
	    BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT);

	while (p->waiters) {
		struct waiter *w = p->waiters;

		p->waiters = w->next;
		gcs_bridge_respond(wait_type, w->id, 0, exit_body(p), NULL);
		free(w);
		p->waited = true;
	}
}

static void proc_exited(struct proc *p, int status)
{
	p->exited = true;
	p->status = status;
	gcs_log("pid %d exited: %d", p->pid, gcs_exit_code(status));
	if (p->on_exit)
		p->on_exit(p->pid, status);
	gcs_bridge_send(
	    BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS, BRIDGE_NOTIFY_PROCESS_EXITED), 0,
	    exit_body(p));
	proc_report(p);
}

void gcs_process_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = proc_find(pid);

		if (p)
			proc_exited(p, status);
		else
			gcs_crun_reaped(pid, status); /* a crun run, or kept for adopt */
	}
}

/*
 * Entries go once the process exited, a wait was answered and its relays are
 * closed. Only between epoll batches: an event of the current batch may still
 * point at one.
 */
void gcs_process_sweep(void)
{
	struct proc **pp = &procs;

	for (struct proc *p = procs; p; p = p->next)
		if (p->late) {
			p->late = false;
			proc_exited(p, p->status);
		}

	while (*pp) {
		struct proc *p = *pp;

		if (p->exited && p->waited && !gcs_relay_active(&p->out) &&
		    !gcs_relay_active(&p->in)) {
			*pp = p->next;
			nr_procs--;
			gcs_relay_close(&p->out); /* frees the buffers */
			gcs_relay_close(&p->in);
			free(p);
		} else {
			pp = &p->next;
		}
	}
}

/* ---- the terminal ------------------------------------------------------------------- */

/* The master gave EOF (EIO: every slave fd closed): nothing will read stdin any more. */
static void tty_output_ended(struct gcs_relay *r)
{
	struct proc *p = gcs_container_of(r, struct proc, out);

	gcs_relay_close(&p->in);
	if (p->master >= 0) {
		close(p->master);
		p->master = -1;
	}
}

/*
 * Starts p's relays on the master and the sockets (each taken, -1 for none).
 * Without the output relay the terminal is closed: the process then reads
 * EOF and its writes fail, rather than fill a pty nobody drains.
 */
static int tty_relays_start(struct proc *p, int master, int in_sock, int out_sock)
{
	int epfd = gcs_bridge_epoll(), out_master, in_master = -1, ret;

	/* One fd per relay (epoll then watches each for its own direction); none for later
	 * children. */
	p->master = master;
	fcntl(master, F_SETFD, FD_CLOEXEC);
	out_master = fcntl(master, F_DUPFD_CLOEXEC, 0);
	if (out_master >= 0 && in_sock >= 0)
		in_master = fcntl(master, F_DUPFD_CLOEXEC, 0);
	if (out_master < 0 || (in_sock >= 0 && in_master < 0)) {
		ret = -errno;
		if (out_master >= 0)
			close(out_master);
		if (out_sock >= 0)
			close(out_sock);
		goto fail;
	}
	ret = gcs_relay_start(&p->out, epfd, out_master, out_sock, -1, tty_output_ended);
	if (ret)
		goto fail;
	if (in_sock >= 0)
		return gcs_relay_start(&p->in, epfd, in_sock, in_master, TTY_EOF, NULL);
	return 0;
fail:
	if (in_sock >= 0)
		close(in_sock);
	if (in_master >= 0)
		close(in_master);
	close(master);
	p->master = -1;
	return ret;
}

/* ---- stdio and adopted processes ------------------------------------------------- */

/* Dials each non-zero port into socks (all -1 again on failure). 0 or -errno. */
static int stdio_dial(const long long port[3], int socks[3])
{
	for (int i = 0; i < 3; i++) {
		if (!port[i])
			continue;
		socks[i] = gcs_bridge_dial(port[i]);
		if (socks[i] < 0) {
			int err = socks[i];

			for (int k = 0; k <= i; k++)
				if (socks[k] >= 0)
					close(socks[k]);
			for (int k = 0; k < 3; k++)
				socks[k] = -1;
			return err;
		}
	}
	return 0;
}

int gcs_stdio_dial(const cJSON *req, struct gcs_stdio *io, char *err, size_t errlen)
{
	static const char *const names[3] = {"stdin_port", "stdout_port", "stderr_port"};
	long long port[3], rows, cols;
	int ret;

	*io = (struct gcs_stdio){.socks = {-1, -1, -1}};
	for (int i = 0; i < 3; i++)
		if (gcs_bridge_int(req, names[i], 0, UINT32_MAX, 0, &port[i])) {
			snprintf(err, errlen, "%s is not a valid port", names[i]);
			return -EINVAL;
		}
	if (gcs_bridge_int(req, "rows", 0, USHRT_MAX, 24, &rows) ||
	    gcs_bridge_int(req, "cols", 0, USHRT_MAX, 80, &cols)) {
		snprintf(err, errlen, "rows and cols: 0..%d", USHRT_MAX);
		return -EINVAL;
	}
	io->rows = rows;
	io->cols = cols;
	ret = stdio_dial(port, io->socks);
	if (ret)
		snprintf(err, errlen, "stdio: %s", strerror(-ret));
	return ret;
}

void gcs_stdio_close(struct gcs_stdio *io)
{
	for (int i = 0; i < 3; i++) {
		if (io->socks[i] >= 0)
			close(io->socks[i]);
		io->socks[i] = -1;
	}
}

int gcs_process_adopt(pid_t pid, int master, struct gcs_stdio *io,
		      void (*on_exit)(pid_t pid, int status))
{
	struct proc *p = calloc(1, sizeof(*p));
	int err;

	if (!p) {
		if (master >= 0)
			close(master);
		gcs_stdio_close(io);
		return -ENOMEM;
	}
	p->pid = pid;
	p->master = -1;
	p->on_exit = on_exit;
	gcs_relay_init(&p->out);
	gcs_relay_init(&p->in);
	if (master >= 0) {
		/* The relays take the master and the sockets, even when they fail. */
		err = tty_relays_start(p, master, io->socks[0], io->socks[1]);
		io->socks[0] = io->socks[1] = -1;
		if (err) {
			errno = -err;
			gcs_log_errno("pid %d: its terminal is not relayed", pid);
		}
	}
	gcs_stdio_close(io); /* pipe mode: the process holds its own copies */
	p->next = procs;
	procs = p;
	nr_procs++;
	/* It ended before crun did: its exit goes out after the adopter's answer. */
	if (gcs_crun_exit_taken(pid, &p->status))
		p->late = true;
	return 0;
}

/* ---- exec --------------------------------------------------------------------------- */

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

/* The numbers of an exec request, each checked (gcs_bridge_int). */
struct exec_nums {
	long long port[3], uid, gid, rows, cols;
};

static const char *exec_nums_get(const cJSON *req, struct exec_nums *x)
{
	static const char *const port_names[3] = {"stdin_port", "stdout_port", "stderr_port"};

	for (int i = 0; i < 3; i++)
		if (gcs_bridge_int(req, port_names[i], 0, UINT32_MAX, 0, &x->port[i]))
			return port_names[i];
	if (gcs_bridge_int(req, "uid", 0, UINT32_MAX - 1, 0, &x->uid))
		return "uid";
	if (gcs_bridge_int(req, "gid", 0, UINT32_MAX - 1, 0, &x->gid))
		return "gid";
	if (gcs_bridge_int(req, "rows", 0, USHRT_MAX, 24, &x->rows))
		return "rows";
	if (gcs_bridge_int(req, "cols", 0, USHRT_MAX, 80, &x->cols))
		return "cols";
	return NULL;
}

/* In the child: never returns. Reports exec's errno on errfd. */
__attribute__((noreturn)) static void exec_child(const cJSON *req, char **argv, char **envp,
						 bool tty, int slave, const int socks[3],
						 const struct exec_nums *x, int errfd)
{
	const char *cwd = gcs_bridge_str(req, "cwd"), *term = gcs_bridge_str(req, "term");
	int nullfd = open("/dev/null", O_RDWR), cerr;

	gcs_child_reset_signals();
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
	if (cwd && chdir(cwd) < 0)
		goto fail;
	/* The host terminal's type, for a tty; an explicit env has the last word. */
	if (tty && !envp && term && term[0] && strlen(term) < 64)
		setenv("TERM", term, 1);
	if (setgid(x->gid) < 0 || setuid(x->uid) < 0)
		goto fail;
	if (envp)
		execvpe(argv[0], argv, envp);
	else
		execvp(argv[0], argv);
fail:
	cerr = errno;
	if (write(errfd, &cerr, sizeof(cerr)) < 0) {
		/* the parent reports a generic failure */
	}
	_exit(127);
}

void gcs_process_exec(uint32_t type, uint64_t id, const cJSON *req)
{
	const cJSON *jargv = cJSON_GetObjectItemCaseSensitive(req, "argv");
	const cJSON *jenv = cJSON_GetObjectItemCaseSensitive(req, "env");
	bool tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "tty"));
	int socks[3] = {-1, -1, -1}, errpipe[2] = {-1, -1}, master = -1, slave = -1, err, cerr;
	char **argv = NULL, **envp = NULL;
	struct exec_nums x;
	struct winsize ws;
	struct proc *p = NULL;
	const char *bad;
	ssize_t n;
	pid_t pid;

	if (!cJSON_IsArray(jargv) || cJSON_GetArraySize(jargv) < 1) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "exec: argv must be a non-empty array of strings");
		return;
	}
	bad = exec_nums_get(req, &x);
	if (bad) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "exec: %s is not a valid number", bad);
		return;
	}
	ws = (struct winsize){.ws_row = x.rows, .ws_col = x.cols};
	argv = strv_from(jargv, MAX_ARGS, &err);
	if (!argv) {
		gcs_bridge_respond(type, id, err, NULL, "exec: bad argv: %s", strerror(-err));
		return;
	}
	if (jenv && !cJSON_IsNull(jenv)) {
		envp = cJSON_IsArray(jenv) ? strv_from(jenv, MAX_ARGS, &err) : NULL;
		if (!envp) {
			gcs_bridge_respond(type, id, -EINVAL, NULL,
					   "exec: env must be an array of strings");
			goto out;
		}
	}
	if (nr_procs >= MAX_PROCS) {
		gcs_bridge_respond(type, id, -EAGAIN, NULL, "exec: too many processes (%d)",
				   MAX_PROCS);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "exec: out of memory");
		goto out;
	}
	/* Connect every stream before the process starts, so no byte is written to nowhere. */
	err = stdio_dial(x.port, socks);
	if (err) {
		gcs_bridge_respond(type, id, err, NULL, "exec: stdio: %s", strerror(-err));
		goto out;
	}
	if (tty && openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		err = errno;
		gcs_bridge_respond(type, id, -err, NULL, "exec: openpty: %s", strerror(err));
		goto out;
	}
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		err = errno;
		gcs_bridge_respond(type, id, -err, NULL, "exec: pipe: %s", strerror(err));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		err = errno;
		gcs_bridge_respond(type, id, -err, NULL, "exec: fork: %s", strerror(err));
		goto out;
	}
	if (pid == 0)
		exec_child(req, argv, envp, tty, slave, socks, &x, errpipe[1]);
	close(errpipe[1]);
	errpipe[1] = -1;
	do
		n = read(errpipe[0], &cerr, sizeof(cerr));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(cerr)) {
		/* exec failed: reap now, nobody will ever wait for it */
		waitpid(pid, NULL, 0);
		gcs_bridge_respond(type, id, -cerr, NULL, "exec %s: %s", argv[0], strerror(cerr));
		goto out;
	}
	p->pid = pid;
	p->master = -1;
	gcs_relay_init(&p->out);
	gcs_relay_init(&p->in);
	if (tty) {
		/* The relays take the master and the sockets, even when they fail. */
		err = tty_relays_start(p, master, socks[0], socks[1]);
		master = socks[0] = socks[1] = -1;
		if (err) {
			errno = -err;
			gcs_log_errno("exec %s: pid %d: its terminal is not relayed", argv[0], pid);
		}
	}
	p->next = procs;
	procs = p;
	nr_procs++;
	{
		cJSON *b = cJSON_CreateObject();

		cJSON_AddNumberToObject(b, "pid", pid);
		gcs_bridge_respond(type, id, 0, b, NULL);
	}
	gcs_log("exec %s: pid %d%s", argv[0], pid, tty ? " (tty)" : "");
	p = NULL;
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
	free(p);
	free(argv);
	free(envp);
}

/* ---- wait, signal, resize --------------------------------------------------------- */

void gcs_process_wait(uint32_t type, uint64_t id, const cJSON *req)
{
	struct proc *p = proc_of(type, id, req, "wait");
	struct waiter *w;

	if (!p)
		return;
	if (p->exited) {
		gcs_bridge_respond(type, id, 0, exit_body(p), NULL);
		p->waited = true;
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "wait: out of memory");
		return;
	}
	w->id = id;
	w->next = p->waiters;
	p->waiters = w;
}

void gcs_process_signal(uint32_t type, uint64_t id, const cJSON *req)
{
	long long sig;
	struct proc *p = proc_of(type, id, req, "signal");

	if (!p)
		return;
	if (gcs_bridge_int(req, "signal", 0, NSIG - 1, -1, &sig) || sig < 0) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "signal: bad signal");
		return;
	}
	if (p->exited) {
		gcs_bridge_respond(type, id, -ESRCH, NULL, "signal: process %d has exited", p->pid);
		return;
	}
	/* The process leads its own session and group: signal the whole group. */
	if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0) {
		gcs_bridge_respond(type, id, -errno, NULL, "signal %d: %s", p->pid,
				   strerror(errno));
		return;
	}
	gcs_bridge_respond(type, id, 0, NULL, NULL);
}

void gcs_process_resize(uint32_t type, uint64_t id, const cJSON *req)
{
	struct proc *p = proc_of(type, id, req, "resize");
	long long rows, cols;
	struct winsize ws;

	if (!p)
		return;
	if (gcs_bridge_int(req, "rows", 0, USHRT_MAX, 24, &rows) ||
	    gcs_bridge_int(req, "cols", 0, USHRT_MAX, 80, &cols)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "resize: rows and cols: 0..%d",
				   USHRT_MAX);
		return;
	}
	if (p->master < 0) {
		gcs_bridge_respond(type, id, -ENOTTY, NULL, "resize: process %d has no terminal",
				   p->pid);
		return;
	}
	ws = (struct winsize){.ws_row = rows, .ws_col = cols};
	if (ioctl(p->master, TIOCSWINSZ, &ws) < 0) {
		gcs_bridge_respond(type, id, -errno, NULL, "resize: %s", strerror(errno));
		return;
	}
	gcs_bridge_respond(type, id, 0, NULL, NULL);
}
