/*
 * containerd-shim-uvm-v1: containerd runs
 *   <shim> -namespace NS -address ADDR -publish-binary BIN -id ID start
 * in the bundle with TTRPC_ADDRESS set; we bind our socket, fork the
 * daemon (detached, its stdout/stderr off containerd's pipes), print the
 * socket's address and return. `-id ID -bundle B delete` cleans up after a
 * shim that is gone and prints a DeleteResponse.
 */
#include "shim/task.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "seccomp/seccomp.h"
#include "shim/mounter.h"
#include "shim/opener.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_mount.h"
#include "shim/task_options.h"
#include "shim/task_priv.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "shim"

#define TASK_SOCKET_DIR	  "/run/uvm-shim"
#define TASK_CONFIG_PATH  "/etc/uvm-shim/containerd.json"
#define TASK_SUN_PATH_MAX 106 /* containerd's limit for a shim's socket path */

struct opts {
	const char *ns, *address, *publish, *id, *bundle, *command;
	bool debug;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const char *const names[] = {"namespace", "address", "publish-binary", "id",
					    "bundle"};
	const char **slots[] = {&o->ns, &o->address, &o->publish, &o->id, &o->bundle};

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq;
		size_t len;
		bool found = false;

		if (a[0] != '-') {
			o->command = a;
			continue;
		}
		a += a[1] == '-' ? 2 : 1;
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		if (len == 5 && !strncmp(a, "debug", 5)) {
			o->debug = !eq || strcmp(eq + 1, "false");
			continue;
		}
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (strlen(names[k]) == len && !strncmp(a, names[k], len)) {
				if (eq)
					*slots[k] = eq + 1;
				else if (i + 1 < argc)
					*slots[k] = argv[++i];
				found = true;
			}
		/* Unknown flags (newer containerd's) are skipped with their value, if any. */
		if (!found && !eq && i + 1 < argc && argv[i + 1][0] != '-' &&
		    strcmp(argv[i + 1], "start") && strcmp(argv[i + 1], "delete"))
			i++;
	}
	if (!o->ns || !o->ns[0])
		o->ns = "default";
	return o->command ? 0 : -EINVAL;
}

/* FNV-1a over address, namespace and id: the socket's name. */
static int socket_path(const struct opts *o, char *out, size_t cap)
{
	const char *dir = getenv("UVM_SHIM_SOCKET_DIR");
	const char *parts[] = {o->address ? o->address : "", o->ns, o->id};
	uint64_t h = 0xcbf29ce484222325ull;

	if (!dir || !dir[0])
		dir = TASK_SOCKET_DIR;
	for (int k = 0; k < 3; k++)
		for (const char *c = parts[k];; c++) {
			h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
			if (!*c)
				break;
		}
	if (mkdir(dir, 0711) && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(out, cap, "%s/%016llx.sock", dir, (unsigned long long)h) >= cap ||
	    strlen(out) > TASK_SUN_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Whether a shim listens on path. */
static bool socket_live(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	strcpy(sa.sun_path, path);
	live = !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return live;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (socket_live(path))
		return -EADDRINUSE; /* a live shim has it */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static void write_file(const char *name, const char *text)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		pr_warn(TAG, "writing %s failed", name);
	close(fd);
}

/* ---- the daemon --------------------------------------------------------------------- */

/* Our ttrpc socket goes at exit: through the opener once this thread is sandboxed. */
static void unlink_socket(const char *path)
{
	int ret = opener_running() ? opener_unlink_socket(path) : (unlink(path) ? -errno : 0);

	if (ret && ret != -ENOENT)
		pr_warn(TAG, "removing %s: %s", path, strerror(-ret));
}

void task_cleanup_host(struct taskd *d, struct task *t)
{
	char path[4096];
	int ret;

	if (!t->rootfs_mounted)
		return;
	/*
	 * vm.start took CAP_SYS_ADMIN and put umount2 out of this thread's reach (the
	 * loop filter would kill the process). The 9p share of rootfs/ is closed by
	 * now (Delete removes it first, a failed Create ends the VM or removes the
	 * share), so containerd's bundle removal unmounts it; `delete` does after a
	 * crash.
	 */
	if (d->vm_started && sandbox_mode() != SANDBOX_OFF) {
		pr_dbg(TAG, "rootfs/ left to containerd to unmount (the sandbox is on)");
		t->rootfs_mounted = false;
		return;
	}
	snprintf(path, sizeof(path), "%s/rootfs", t->bundle);
	ret = task_unmount_rootfs(path);
	if (ret)
		pr_warn(TAG, "unmounting %s: %s", path, strerror(-ret));
	t->rootfs_mounted = false;
}

static void exit_now(void *opaque, uint32_t events)
{
	loop_stop(((struct taskd *)opaque)->loop);
}

void task_exit(struct taskd *d)
{
	if (d->exiting)
		return;
	d->exiting = true;
	/* After the answer that asked for it has gone out. */
	if (loop_defer(d->loop, exit_now, d))
		loop_stop(d->loop);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct taskd *d = opaque;
	struct signalfd_siginfo si;

	if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	pr_info(TAG, "%s: terminating", strsignal(si.ssi_signo));
	d->status = 128 + si.ssi_signo;
	loop_stop(d->loop);
}

/*
 * The default config file, read at start: absent is the defaults; one that does
 * not load is logged and the defaults used. A Create whose options name a file
 * reads that one instead, strictly (task_service.c).
 */
static void load_config(struct taskd *d)
{
	const char *path = getenv("UVM_SHIM_CONFIG");
	char err[TASK_OPTIONS_ERRLEN];
	int ret;

	if (!path || !path[0])
		path = TASK_CONFIG_PATH;
	ret = task_config_load(path, &d->vm_config, err, sizeof(err));
	if (ret && ret != -ENOENT)
		pr_err(TAG, "%s: using the defaults", err);
}

int task_daemon_create(struct taskd **out, int listen_fd, const char *ns, const char *ttrpc_address)
{
	struct taskd *d = calloc(1, sizeof(*d));

	if (!d) {
		if (listen_fd >= 0)
			close(listen_fd);
		return -ENOMEM;
	}
	d->sig_fd = d->ctl_rd = d->ctl_wr = -1;
	load_config(d);
	if (loop_create(&d->loop) || task_events_init(&d->ev, d->loop, ttrpc_address, ns) ||
	    task_ctl_open(d) || ttrpc_server_create(&d->srv, d->loop, listen_fd, task_methods, d)) {
		task_daemon_destroy(d);
		return -EIO;
	}
	*out = d;
	return 0;
}

void task_daemon_destroy(struct taskd *d)
{
	if (!d)
		return;
	for (struct task *t = d->tasks; t; t = t->next)
		for (struct task_proc *p = t->procs; p; p = p->next)
			for (struct ttrpc_call *w = task_take_waiters(p), *n; w; w = n) {
				n = w->next;
				ttrpc_reply_error(w, TTRPC_UNAVAILABLE, "the shim is exiting");
			}
	ttrpc_server_destroy(d->srv);
	if (d->loop)
		task_ctl_close(d); /* terminates the VM */
	while (d->tasks) {
		struct task *t = d->tasks;

		d->tasks = t->next;
		task_cleanup_host(d, t);
		task_free(t);
	}
	free(d->sandbox_id);
	task_events_fini(&d->ev);
	if (d->sig_fd >= 0) {
		loop_del(d->loop, d->sig_fd);
		close(d->sig_fd);
	}
	loop_destroy(d->loop);
	if (d->socket_path)
		unlink_socket(d->socket_path);
	free(d->socket_path);
	cJSON_Delete(d->vm_config);
	free(d);
}

/*
 * A CRI pod's sandbox gets the mounter (shim/mounter.h), forked now with the
 * opener: its pod's containers join the VM after vm.start, and their overlay
 * roots need mounting then. Another task's daemon has no use for it.
 */
static int start_mounter(bool sandbox)
{
	char cwd[4096];

	if (!sandbox)
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return mounter_start(cwd);
}

static int daemon_run(int listen_fd, const struct opts *o, const char *sock, bool sandbox)
{
	struct taskd *d;
	sigset_t sigs;
	int ret = 1, sig_fd;

	/*
	 * The sandbox of `serve` (docs/containerd.md "The sandbox"): machine_start, at
	 * vm.start, drops every capability, Landlocks this thread and puts it under the
	 * loop filter. The rootfs is mounted before (Create), and the opener, forked now
	 * while the process holds nothing but its socket, opens the stdio FIFOs and
	 * removes our socket at exit. UVM_NO_SECCOMP=1 in containerd's environment turns
	 * it off.
	 */
	sandbox_configure(false);
	if (opener_start() || start_mounter(sandbox)) {
		pr_err(TAG, "cannot start the opener or the mounter process");
		close(listen_fd);
		unlink(sock);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0 || task_daemon_create(&d, listen_fd, o->ns, getenv("TTRPC_ADDRESS"))) {
		pr_err(TAG, "daemon setup failed");
		if (sig_fd >= 0)
			close(sig_fd);
		unlink_socket(sock);
		return 1;
	}
	d->sig_fd = sig_fd;
	d->socket_path = strdup(sock);
	if (loop_add(d->loop, d->sig_fd, EPOLLIN, on_signal, d)) {
		pr_err(TAG, "daemon setup failed");
		goto out;
	}
	pr_info(TAG, "serving %s/%s on %s", o->ns, o->id, sock);
	loop_run(d->loop);
	ret = d->status;
	/* No new connection from here: containerd runs `delete` as soon as ours closes. */
	unlink_socket(sock);
	/* Events and answers still queued get a moment to go out. */
	for (int i = 0; i < 10 && loop_run_once(d->loop, 10) > 0; i++)
		;
out:
	task_daemon_destroy(d);
	return ret;
}

/* ---- start, delete ------------------------------------------------------------------ */

/*
 * A CRI pod's container (its config.json's annotations name a sandbox other
 * than itself) runs in the sandbox's VM: no daemon of its own, the sandbox
 * shim's address instead (docs/containerd.md "Pods"). 1 when it was one
 * (answered, *status set), 0 when the task gets a shim of its own.
 */
static int start_in_pod(const struct opts *o, const char *spec, int *status)
{
	char sandbox[128], sock[256], addr[300];
	struct opts so = *o;
	int ret;

	if (!spec)
		return 0; /* Create says what is wrong with the bundle */
	ret = task_pod_sandbox_of(spec, sandbox, sizeof(sandbox));
	if (ret || !strcmp(sandbox, o->id))
		return 0;
	so.id = sandbox;
	*status = 1;
	ret = socket_path(&so, sock, sizeof(sock));
	if (ret) {
		fprintf(stderr, "containerd-shim-uvm-v1: socket path: %s\n", strerror(-ret));
		return 1;
	}
	if (!socket_live(sock)) {
		fprintf(stderr, "containerd-shim-uvm-v1: pod sandbox %s: no shim serves it (%s)\n",
			sandbox, sock);
		return 1;
	}
	snprintf(addr, sizeof(addr), "unix://%s", sock);
	write_file("address", addr);
	fputs(addr, stdout);
	*status = 0;
	return 1;
}

static int cmd_start(const struct opts *o)
{
	char sock[256], addr[300], err[256];
	int fd, ret, log_fd;
	bool sandbox;
	char *spec;
	pid_t pid;

	if (!o->id || !o->id[0]) {
		fprintf(stderr, "containerd-shim-uvm-v1: start: -id is required\n");
		return 2;
	}
	/* The bundle's config.json, read once: a pod's container, or its sandbox? */
	spec = task_read_spec(".", err, sizeof(err));
	sandbox = spec && task_pod_is_sandbox(spec);
	if (start_in_pod(o, spec, &ret)) {
		free(spec);
		return ret;
	}
	free(spec);
	ret = socket_path(o, sock, sizeof(sock));
	if (ret) {
		fprintf(stderr, "containerd-shim-uvm-v1: socket path: %s\n", strerror(-ret));
		return 1;
	}
	fd = listen_on(sock);
	if (fd < 0) {
		fprintf(stderr, "containerd-shim-uvm-v1: %s: %s\n", sock,
			fd == -EADDRINUSE ? "a shim for this task is already running"
					  : strerror(-fd));
		return 1;
	}
	snprintf(addr, sizeof(addr), "unix://%s", sock);
	pid = fork();
	if (pid < 0) {
		perror("containerd-shim-uvm-v1: fork");
		return 1;
	}
	if (pid > 0) {
		close(fd);
		write_file("address", addr);
		fputs(addr, stdout);
		return 0;
	}
	/* The daemon: its own session, off containerd's pipes (containerd waits for them to close).
	 */
	setsid();
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		/* Logs go to the bundle's log FIFO, which containerd reads (never blocking on it).
		 */
		log_fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		dup2(log_fd >= 0 ? log_fd : null, STDERR_FILENO);
		if (log_fd >= 0)
			close(log_fd);
		close(null);
	}
	{
		char pidbuf[32];

		snprintf(pidbuf, sizeof(pidbuf), "%d", getpid());
		write_file("shim.pid", pidbuf);
	}
	return daemon_run(fd, o, sock, sandbox);
}

/* A socket named as socket_path() names them: <16 hex digits>.sock. */
static bool is_our_socket(const char *path)
{
	const char *base = strrchr(path, '/');
	struct stat st;

	base = base ? base + 1 : path;
	if (strlen(base) != 21 || strcmp(base + 16, ".sock"))
		return false;
	for (int i = 0; i < 16; i++)
		if (!strchr("0123456789abcdef", base[i]))
			return false;
	return !lstat(path, &st) && S_ISSOCK(st.st_mode);
}

static int cmd_delete(const struct opts *o)
{
	Uvm__Ctrd__DeleteResponse r = UVM__CTRD__DELETE_RESPONSE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	char path[4096], buf[512];
	uint8_t out[128];
	struct timespec now;
	size_t n;
	bool own;
	int fd;

	if (o->bundle && chdir(o->bundle)) {
		fprintf(stderr, "containerd-shim-uvm-v1: delete: -bundle %s: %s\n", o->bundle,
			strerror(errno));
		return 1;
	}
	/*
	 * A daemon still alive (containerd lost it): it and its VM go. A pod's
	 * container has no shim.pid: its address is its sandbox's shim, not ours
	 * to kill or remove.
	 */
	fd = open("shim.pid", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	own = fd >= 0;
	if (fd >= 0) {
		ssize_t k = read(fd, buf, sizeof(buf) - 1);
		long pid = 0;

		close(fd);
		buf[k > 0 ? k : 0] = 0;
		pid = strtol(buf, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
		/* Only our own daemon: the pid's cwd is this bundle. */
		if (pid > 1 && getcwd(buf, sizeof(buf))) {
			char cwd[512];
			ssize_t m = readlink(path, cwd, sizeof(cwd) - 1);

			if (m > 0 && (cwd[m] = 0, !strcmp(cwd, buf)))
				kill(pid, SIGKILL);
		}
	}
	task_unmount_rootfs("rootfs");
	fd = own ? open("address", O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (fd >= 0) {
		ssize_t k = read(fd, buf, sizeof(buf) - 1);

		close(fd);
		buf[k > 0 ? k : 0] = 0;
		if (!strncmp(buf, "unix://", 7) && is_our_socket(buf + 7))
			unlink(buf + 7);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	task_timestamp(&ts, &now);
	r.exit_status = 128 + SIGKILL;
	r.exited_at = &ts;
	n = uvm__ctrd__delete_response__pack(&r, out);
	return fwrite(out, 1, n, stdout) == n ? 0 : 1;
}

int task_shim_main(int argc, char **argv)
{
	struct opts o;

	if (parse_opts(argc, argv, &o)) {
		fprintf(stderr, "usage: containerd-shim-uvm-v1 -namespace NS -address ADDR "
				"-publish-binary BIN -id ID [-bundle B] start|delete\n");
		return 2;
	}
	if (o.debug)
		log_threshold = LOG_DEBUG;
	if (!strcmp(o.command, "start"))
		return cmd_start(&o);
	if (!strcmp(o.command, "delete"))
		return cmd_delete(&o);
	fprintf(stderr, "containerd-shim-uvm-v1: unknown command '%s'\n", o.command);
	return 2;
}
