/* Children of PID 1: the guest command or a shell, reaping, shutdown. */
#include "gcs/gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The parent blocks the signals it takes through a signalfd; children must
 * not inherit that. */
void gcs_child_reset_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

int gcs_spawn_command(const char *cmd, pid_t *pid)
{
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		gcs_child_reset_signals();
		setsid();
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		gcs_log_errno("exec /bin/sh");
		_exit(127);
	}
	*pid = p;
	return 0;
}

/*
 * /dev/console cannot be a controlling terminal; the shell gets the real
 * device behind it (the last one in /sys/class/tty/console/active), so that
 * job control and Ctrl-C work.
 */
static int gcs_open_console_tty(void)
{
	char buf[256], path[300], *name;
	ssize_t n;
	int fd;

	fd = open("/sys/class/tty/console/active", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			name = strrchr(buf, ' ');
			name = name ? name + 1 : buf;
			snprintf(path, sizeof(path), "/dev/%s", name);
			fd = open(path, O_RDWR);
			if (fd >= 0)
				return fd;
		}
	}
	return open("/dev/console", O_RDWR);
}

int gcs_spawn_shell(pid_t *pid)
{
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		int fd;

		gcs_child_reset_signals();
		setsid();
		fd = gcs_open_console_tty();
		if (fd >= 0) {
			ioctl(fd, TIOCSCTTY, 0);
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		execl("/bin/sh", "-sh", (char *)NULL);
		gcs_log_errno("exec /bin/sh");
		_exit(127);
	}
	*pid = p;
	return 0;
}

int gcs_reap(pid_t watch, int *status)
{
	int found = 0, st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (p == watch) {
			*status = st;
			found = 1;
		}
	}
	return found;
}

int gcs_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

void gcs_shutdown(int code)
{
	fflush(stdout);
	fflush(stderr);
	if (getpid() != 1)
		exit(code);
	/* Let the serial port drain: the VMM stops at the reset, and bytes
	 * still in the tty buffer would be lost. */
	tcdrain(1);
	sync();
	reboot(RB_AUTOBOOT);
	gcs_log_errno("reboot");
	for (;;)
		pause();
}
