/*
 * uvm-gcs: the guest's /init. As PID 1 it mounts the basics, loads the
 * kernel modules the initrd lists, says it is ready, then runs the command
 * from the kernel command line (or a shell), reaps children and reboots the
 * VM when that command ends or a reboot is requested.
 *
 * The shim (`serve`, and `run -- CMD`) boots it with "/init bridge" as that
 * command: the bridge (bridge.c, process.c ...) runs the processes the host asks for and
 * reports their status over vsock; PID 1 only powers off when it ends.
 */
#include "gcs/container.h"
#include "gcs/gcs.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define GCS_MODULE_DIR	 "/lib/modules"
#define GCS_MODULE_ORDER "order"
/* The command the shim gives (shim/bridge.h BRIDGE_GUEST_COMMAND). */
#define GCS_BRIDGE_COMMAND "/init bridge"

static long gcs_ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void gcs_setup(bool pid1)
{
	struct timespec t0;
	int loaded, failed;

	if (!pid1)
		return;
	failed = gcs_root_off_initramfs();
	gcs_mount_basics();
	gcs_console_fds();
	if (failed) {
		errno = -failed;
		gcs_log_errno("root off the initramfs (containers cannot pivot_root)");
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	failed = gcs_load_modules(GCS_MODULE_DIR, GCS_MODULE_ORDER, &loaded);
	if (failed < 0) {
		errno = -failed;
		gcs_log_errno("module list %s/%s", GCS_MODULE_DIR, GCS_MODULE_ORDER);
	} else {
		gcs_log("%d modules loaded, %d failed, in %ld ms", loaded, failed,
			gcs_ms_since(&t0));
	}
	failed = gcs_crun_seal();
	if (failed && failed != -ENOENT) { /* ENOENT: an initrd without crun */
		errno = -failed;
		gcs_log_errno("crun: read-only bind (crun copies itself on every run)");
	}
}

/* Outside PID 1 (host-side tests) the command line can be given in
 * UVM_GCS_CMDLINE instead of the host's own. */
static char *gcs_command(bool pid1)
{
	const char *env = pid1 ? NULL : getenv("UVM_GCS_CMDLINE");
	char *cmdline, *cmd;

	if (env)
		return gcs_cmdline_command(env);
	cmdline = gcs_read_cmdline();
	if (!cmdline)
		return NULL;
	cmd = gcs_cmdline_command(cmdline);
	free(cmdline);
	return cmd;
}

int main(int argc, char **argv)
{
	bool pid1 = getpid() == 1;
	struct epoll_event ev = {.events = EPOLLIN};
	int sfd, efd, status = 0;
	char *cmd;
	pid_t child;
	sigset_t set;

	/* Run as the guest command by PID 1: the bridge to the shim. */
	if (argc > 1 && strcmp(argv[1], "bridge") == 0)
		return gcs_bridge_main(argc - 1, argv + 1);
	/* Signals arrive through a signalfd in the event loop: SIGCHLD to reap,
	 * the others are reboot/poweroff requests (busybox reboot sends
	 * SIGTERM, poweroff SIGUSR2, halt SIGUSR1; Ctrl-Alt-Del SIGINT). */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGPWR);
	sigprocmask(SIG_BLOCK, &set, NULL);

	setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin", 1);
	setenv("HOME", "/", 0);
	setenv("TERM", "linux", 0);
	gcs_setup(pid1);

	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	efd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = sfd;
	if (sfd < 0 || efd < 0 || epoll_ctl(efd, EPOLL_CTL_ADD, sfd, &ev)) {
		gcs_log_errno("signalfd/epoll");
		gcs_shutdown(1);
	}

	cmd = gcs_command(pid1);
	gcs_log("ready");
	if (cmd ? gcs_spawn_command(cmd, &child) : gcs_spawn_shell(&child)) {
		gcs_log_errno("cannot start %s", cmd ? "the command" : "a shell");
		gcs_shutdown(1);
	}

	for (;;) {
		struct signalfd_siginfo si;
		struct epoll_event out;
		int n = epoll_wait(efd, &out, 1, -1);

		if (n < 0 && errno != EINTR) {
			gcs_log_errno("epoll_wait");
			gcs_shutdown(1);
		}
		if (n <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			if (gcs_reap(child, &status)) {
				/* The bridge's own status is not the host's command's: say so. */
				if (cmd && !strcmp(cmd, GCS_BRIDGE_COMMAND))
					gcs_log("bridge ended (%d): powering off",
						gcs_exit_code(status));
				else if (cmd)
					gcs_log("exit %d", gcs_exit_code(status));
				else
					gcs_log("shell ended");
				gcs_shutdown(gcs_exit_code(status));
			}
			continue;
		}
		gcs_log("reboot requested (%s)", strsignal(si.ssi_signo));
		gcs_shutdown(0);
	}
}
