/*
 * `uvm-shim run -- CMD` through the GCS bridge (run_guest.h).
 *
 * The guest boots with "/init bridge" as its command, like `serve`'s. Once
 * the agent has negotiated, CMD is exec'd with one vsock stream per stdio
 * fd of ours; when it has exited and its output is relayed, the agent is
 * asked to shut down (sync, power off) and run.c returns CMD's status.
 *
 * Phases, each with its own deadline on one timerfd:
 *   boot     VM started, agent not negotiated yet   RUN_AGENT_TIMEOUT_S
 *   running  CMD runs                               none
 *   drain    CMD exited, output still flowing       RUN_DRAIN_TIMEOUT_S
 *   shutdown the agent was asked to power off       RUN_SHUTDOWN_TIMEOUT_S
 * A missed deadline ends the VM (or, in drain, drops the rest of the output).
 */
#include "shim/run_guest.h"
#include "shim/nic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/guest_link.h"
#include "shim/guest_proc.h"
#include "shim/machine.h"
#include "shim/plan9.h"
#include "shim/run.h"
#include "shim/run_spec.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define TAG	       "run"
#define EXIT_NOT_FOUND 127 /* a shell's status for a command it cannot find... */
#define EXIT_NO_EXEC   126 /* ...and for one it found but could not execute */

enum rg_phase { RG_BOOT, RG_RUNNING, RG_DRAIN, RG_SHUTDOWN };

struct run_guest {
	struct loop *loop;
	struct vm *vm;
	struct guest_link link;
	struct vsock *vs;      /* link.vs */
	struct bridge *bridge; /* link.bridge */
	struct guest_proc proc;
	bool exec_sent;
	struct run_guest_config cfg;
	int term_fd; /* a terminal of ours, for the window size; -1 */
	int fds[3];  /* host ends of stdin/stdout/stderr until the exec takes them */
	/* Flags of our fd i when its file description had to be made non-blocking. */
	int restore_fl[3];
	int timer_fd;
	enum rg_phase phase;
	bool have_status, forwarded;
	int status;
};

static struct run_guest *rg_of(struct guest_proc *p)
{
	return container_of(p, struct run_guest, proc);
}

static void arm(struct run_guest *g, enum rg_phase phase, int seconds)
{
	struct itimerspec its = {.it_value.tv_sec = seconds};

	g->phase = phase;
	timerfd_settime(g->timer_fd, 0, &its, NULL);
}

static void settle(struct run_guest *g, int status)
{
	if (g->have_status)
		return;
	g->have_status = true;
	g->status = status;
}

/* ---- the end: ask the agent to power off --------------------------------------------- */

static void on_shutdown_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct run_guest *g = opaque;

	(void)body;
	if (status && status != -ECANCELED) {
		pr_warn(TAG, "the guest agent refused to shut down (%s); ending the VM",
			error ? error : strerror(-status));
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
	}
}

static void shutdown_guest(struct run_guest *g)
{
	if (g->phase == RG_SHUTDOWN)
		return;
	arm(g, RG_SHUTDOWN, RUN_SHUTDOWN_TIMEOUT_S);
	if (!bridge_ready(g->bridge) ||
	    bridge_request(g->bridge,
			   BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_SHUTDOWN),
			   cJSON_CreateObject(), on_shutdown_resp, g) < 0)
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
}

/* ---- CMD -------------------------------------------------------------------------------- */

/* --rootfs: crun start refused (the container's init waits in crun's exec FIFO until then). */
static void on_start_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct run_guest *g = opaque;

	(void)body;
	if (!status || status == -ECANCELED)
		return;
	fprintf(stderr, "uvm-shim run: %s\n", error ? error : strerror(-status));
	settle(g, EXIT_NO_EXEC);
	shutdown_guest(g);
}

static void container_start(struct run_guest *g)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "id", RUN_CONTAINER_ID);
	if (bridge_request(g->bridge,
			   BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_CONTAINER,
				       BRIDGE_RPC_CONTAINER_START),
			   b, on_start_resp, g) < 0)
		on_start_resp(g, -ENOTCONN, "the guest agent went away", NULL);
}

static void proc_started(struct guest_proc *p, int status, const char *error)
{
	struct run_guest *g = rg_of(p);

	if (status) {
		/* The guest's message names the program: "exec foo: No such file or directory";
		 * crun's: "executable file `foo` not found in $PATH". */
		fprintf(stderr, "uvm-shim run: %s\n", error ? error : strerror(-status));
		settle(g, status == -ENOENT || (g->cfg.rootfs && error && strstr(error, "not found"))
			      ? EXIT_NOT_FOUND
			      : EXIT_NO_EXEC);
		shutdown_guest(g);
		return;
	}
	if (g->cfg.rootfs)
		container_start(g);
	pr_info(TAG, "%s runs in the guest as pid %d%s", g->cfg.argv[0], p->pid,
		g->cfg.tty ? " (tty)" : "");
	/* Raw only now: until CMD runs, Ctrl-C is ours and ends the boot. */
	if (g->cfg.raw)
		run_tty_raw(g->cfg.raw, STDIN_FILENO, false);
	/* The terminal may have changed size while the guest booted. */
	run_guest_winch(g);
}

static void proc_exited(struct guest_proc *p)
{
	struct run_guest *g = rg_of(p);

	if (g->phase == RG_RUNNING)
		arm(g, RG_DRAIN, RUN_DRAIN_TIMEOUT_S);
}

static void proc_finished(struct guest_proc *p)
{
	struct run_guest *g = rg_of(p);

	pr_info(TAG, "%s exited: %d%s", g->cfg.argv[0], p->exit_code,
		p->signal ? " (killed by a signal)" : "");
	settle(g, p->exit_code);
	guest_proc_drop_relays(p);
	shutdown_guest(g);
}

static const struct guest_proc_ops proc_ops = {
    .started = proc_started,
    .exited = proc_exited,
    .finished = proc_finished,
};

static void winsize(struct run_guest *g, unsigned *rows, unsigned *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (g->term_fd >= 0 && ioctl(g->term_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static void exec_cmd(struct run_guest *g)
{
	/* The terminal's type goes with a tty, so full-screen programs draw for it. */
	struct guest_exec x = {.tty = g->cfg.tty, .term = g->cfg.tty ? getenv("TERM") : NULL};
	char err[256];
	cJSON *argv = cJSON_CreateArray(), *ctr = NULL;
	int ret;

	for (int i = 0; i < g->cfg.argc; i++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(g->cfg.argv[i]));
	x.argv = argv;
	if (g->cfg.rootfs) {
		/* In a container on the --rootfs share: created here, started once answered. */
		ctr = run_container_body(g->cfg.argv, g->cfg.argc, g->cfg.tty, x.term,
					 g->cfg.rootfs);
		if (!ctr) {
			pr_err(TAG, "out of memory");
			cJSON_Delete(argv);
			settle(g, RUN_EXIT_VMM);
			shutdown_guest(g);
			return;
		}
		x.type = BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_CONTAINER,
				     BRIDGE_RPC_CONTAINER_CREATE);
		x.extra = ctr;
		x.argv = NULL;
	}
	winsize(g, &x.rows, &x.cols);
	for (int i = 0; i < 3; i++) {
		x.fds[i] = g->fds[i];
		g->fds[i] = -1; /* the proc owns them now */
	}
	g->exec_sent = true;
	ret = guest_proc_exec(&g->proc, g->bridge, g->vs, g->loop, &x, err, sizeof(err));
	cJSON_Delete(argv);
	cJSON_Delete(ctr);
	if (ret < 0) {
		pr_err(TAG, "cannot relay %s's stdio: %s", g->cfg.argv[0], err);
		settle(g, RUN_EXIT_VMM);
		shutdown_guest(g);
	}
}

/* ---- the bridge ------------------------------------------------------------------------ */

/* The --net NICs are configured (or not): CMD runs either way, a failure is said. */
static void on_nics_ready(void *opaque, int err, const char *msg)
{
	struct run_guest *g = opaque;

	if (err)
		pr_err(TAG, "network: %s", msg);
	exec_cmd(g);
}

/* The agent is up and the shares are in: configure the NICs, then run CMD. */
static void nics_then_exec(struct run_guest *g)
{
	arm(g, RG_RUNNING, 0); /* the agent is up: no deadline while CMD runs */
	if (g->cfg.nics && nic_count(g->cfg.nics)) {
		nic_boot_attach(g->cfg.nics, g->bridge, on_nics_ready, g);
		return;
	}
	exec_cmd(g);
}

/* --share: every share mounted (or one failed, which ends the VM). */
static void on_shares_mounted(void *opaque, int err, const char *msg)
{
	struct run_guest *g = opaque;

	if (err) {
		pr_err(TAG, "cannot mount a share in the guest: %s", msg);
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
		return;
	}
	nics_then_exec(g);
}

static void on_ready(void *opaque, int err, const cJSON *answer)
{
	struct run_guest *g = opaque;

	(void)answer;
	if (g->exec_sent)
		return;
	if (err) {
		pr_err(TAG, "the guest agent failed to negotiate: %s", strerror(-err));
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
		return;
	}
	g->exec_sent = true; /* a second ready must not run CMD twice */
	if (g->cfg.shares) {
		plan9_boot_attach(g->cfg.shares, g->bridge, on_shares_mounted, g);
		return;
	}
	nics_then_exec(g);
}

static void on_process_exited(void *opaque, int pid, int code, int sig)
{
	struct run_guest *g = opaque;

	if (g->proc.pid > 0 && pid == g->proc.pid)
		guest_proc_exited(&g->proc, code, sig);
}

static void on_closed(void *opaque)
{
	struct run_guest *g = opaque;

	if (g->phase == RG_SHUTDOWN)
		return;
	/* PID 1 powers the guest off when its agent ends; the deadline covers a guest that does
	 * not. */
	pr_err(TAG, "the guest agent closed the bridge before %s's exit status was known",
	       g->cfg.argv[0]);
	arm(g, RG_SHUTDOWN, RUN_SHUTDOWN_TIMEOUT_S);
}

static const struct bridge_ops bridge_ops = {
    .ready = on_ready,
    .process_exited = on_process_exited,
    .closed = on_closed,
};

static void on_timer(void *opaque, uint32_t events)
{
	struct run_guest *g = opaque;
	uint64_t n;

	(void)events;
	if (read(g->timer_fd, &n, sizeof(n)) != sizeof(n))
		return;
	switch (g->phase) {
	case RG_BOOT:
		pr_err(TAG,
		       "the guest agent did not connect within %d s (is the initrd's /init "
		       "uvm-gcs?)",
		       RUN_AGENT_TIMEOUT_S);
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
		break;
	case RG_DRAIN:
		pr_warn(TAG,
			"%s exited but its output is still open after %d s (a background "
			"process?); not waiting for it",
			g->cfg.argv[0], RUN_DRAIN_TIMEOUT_S);
		guest_proc_abandon_output(&g->proc);
		break;
	case RG_SHUTDOWN:
		pr_warn(TAG, "the guest did not power off within %d s; ending the VM",
			RUN_SHUTDOWN_TIMEOUT_S);
		vm_request_exit(g->vm, VM_EXIT_TERMINATED);
		break;
	default:
		break;
	}
}

/* ---- signals from the host -------------------------------------------------------------- */

static void on_signal_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	(void)opaque;
	(void)body;
	if (status && status != -ECANCELED && status != -ESRCH)
		pr_warn(TAG, "forwarding a signal failed: %s", error ? error : strerror(-status));
}

bool run_guest_forward_signal(struct run_guest *g, int signo)
{
	struct guest_proc *p = &g->proc;

	if (g->forwarded || p->pid <= 0 || p->exited || !bridge_ready(g->bridge))
		return false;
	if (bridge_request(g->bridge,
			   BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL),
			   guest_proc_signal_body(p->pid, signo), on_signal_resp, g) < 0)
		return false;
	g->forwarded = true;
	pr_warn(TAG, "signal %d forwarded to %s; another one ends the VM", signo, g->cfg.argv[0]);
	return true;
}

static void on_resize_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	(void)opaque;
	(void)body;
	if (status && status != -ECANCELED && status != -ESRCH)
		pr_dbg(TAG, "resize failed: %s", error ? error : strerror(-status));
}

void run_guest_winch(struct run_guest *g)
{
	struct guest_proc *p = &g->proc;
	unsigned rows, cols;

	if (!g->cfg.tty || g->term_fd < 0 || p->pid <= 0 || p->exited || !bridge_ready(g->bridge))
		return;
	winsize(g, &rows, &cols);
	if (bridge_request(g->bridge,
			   BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_RESIZE),
			   guest_proc_resize_body(p->pid, rows, cols), on_resize_resp, g) < 0)
		pr_dbg(TAG, "cannot send a resize");
}

bool run_guest_status(const struct run_guest *g, int *status)
{
	if (!g || !g->have_status)
		return false;
	*status = g->status;
	return true;
}

/* ---- setup -------------------------------------------------------------------------------- */

/*
 * The host end of our fd for a relay, which polls it non-blocking and closes
 * it. It gets its own file description where one can be had (reopening
 * /proc/self/fd/N: a tty, a pipe), so the flags of the caller's (and of our
 * fd 2, where the console and the log write blocking) stay as they are. A
 * regular file is shared (dup: the offset must move for the parent too) and
 * is never polled. Anything else (a socket) is shared: as input it is made
 * non-blocking (the relay reads until EAGAIN) and restored at the end; as
 * output it stays blocking, so a slow reader slows the loop but loses nothing
 * and the console's writes to the same socket never see EAGAIN.
 */
static int host_end(struct run_guest *g, int fd, bool input)
{
	struct stat st;
	char path[32];
	int nfd, fl;

	if (fstat(fd, &st) < 0)
		return -1; /* closed: no stream */
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return fcntl(fd, F_DUPFD_CLOEXEC, 3);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, (input ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd >= 0)
		return nfd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	fl = fcntl(fd, F_GETFL);
	if (input && nfd >= 0 && fl >= 0 && !(fl & O_NONBLOCK)) {
		g->restore_fl[fd] = fl;
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	}
	return nfd;
}

int run_guest_create(struct run_guest **out, struct machine *m, struct loop *loop,
		     const struct run_guest_config *cfg, char *err, size_t errlen)
{
	struct run_guest *g = calloc(1, sizeof(*g));
	int ret;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	g->loop = loop;
	g->vm = m->vm;
	g->cfg = *cfg;
	g->term_fd = -1;
	g->timer_fd = -1;
	guest_proc_init(&g->proc, &proc_ops);
	for (int i = 0; i < 3; i++) {
		g->restore_fl[i] = -1;
		g->fds[i] = -1;
		if (g->term_fd < 0 && isatty(i))
			g->term_fd = i;
	}
	g->fds[0] = host_end(g, STDIN_FILENO, true);
	g->fds[1] = host_end(g, STDOUT_FILENO, false);
	/* A tty merges stderr into stdout, as a terminal does. */
	if (!cfg->tty)
		g->fds[2] = host_end(g, STDERR_FILENO, false);

	g->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (g->timer_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		goto fail;
	}
	ret = guest_link_create(&g->link, m, loop, 0, NULL, &bridge_ops, g, err, errlen);
	if (ret)
		goto fail;
	g->vs = g->link.vs;
	g->bridge = g->link.bridge;
	ret = loop_add(loop, g->timer_fd, EPOLLIN, on_timer, g);
	if (ret) {
		snprintf(err, errlen, "guest agent link setup failed: %s", strerror(-ret));
		goto fail;
	}
	arm(g, RG_BOOT, RUN_AGENT_TIMEOUT_S);
	*out = g;
	return 0;
fail:
	run_guest_destroy(g);
	return ret;
}

void run_guest_destroy(struct run_guest *g)
{
	if (!g)
		return;
	/* The bridge first: its pending requests (wait, signal) point into g. */
	guest_link_close_bridge(&g->link);
	guest_proc_drop_relays(&g->proc); /* relays listen on the engine */
	guest_link_destroy(&g->link);
	if (g->timer_fd >= 0) {
		loop_del(g->loop, g->timer_fd);
		close(g->timer_fd);
	}
	for (int i = 0; i < 3; i++) {
		if (g->fds[i] >= 0)
			close(g->fds[i]);
		if (g->restore_fl[i] >= 0)
			fcntl(i, F_SETFL, g->restore_fl[i]);
	}
	free(g);
}
