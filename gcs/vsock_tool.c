/*
 * `/init bridge --vsock-*`: guest-side AF_VSOCK programs for the e2e tests
 * and benchmarks (the guest's busybox has none). Each runs as a process of
 * its own, so its blocking copies stall nothing but itself.
 *
 * --vsock-echo PORT: accepts one vsock connection on PORT, echoes it until EOF.
 * --vsock-dial PORT: connects to host port PORT, sends stdin, then
 *   half-closes and copies the answer to stdout.
 * --vsock-send PORT BYTES: connects to host port PORT and writes BYTES zero
 *   bytes in 64 KiB writes, then closes; for the throughput benchmark (a
 *   shell pipeline feeding --vsock-dial would measure busybox and the pipe
 *   as much as the vsock device).
 */
#include "gcs/bridge.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
		if (gcs_write_all(out, buf, n) < 0)
			return -1;
		total += n;
	}
	return total;
}

static int vsock_echo(uint32_t port)
{
	struct sockaddr_vm sv = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int fd, c;

	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sv, sizeof(sv)) < 0 || listen(fd, 1) < 0) {
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

static int vsock_dial(uint32_t port)
{
	int fd = gcs_bridge_dial(port);

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

static int vsock_send(uint32_t port, unsigned long long left)
{
	static char zeros[1 << 16];
	int fd = gcs_bridge_dial(port);

	if (fd < 0) {
		errno = -fd;
		gcs_log_errno("vsock-send: host port %u", port);
		return 1;
	}
	while (left) {
		size_t n = left < sizeof(zeros) ? left : sizeof(zeros);

		if (gcs_write_all(fd, zeros, n) < 0) {
			gcs_log_errno("vsock-send: write");
			return 1;
		}
		left -= n;
	}
	close(fd);
	return 0;
}

int gcs_vsock_tool(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--vsock-echo") == 0)
		return vsock_echo(strtoul(argv[2], NULL, 0));
	if (argc == 3 && strcmp(argv[1], "--vsock-dial") == 0)
		return vsock_dial(strtoul(argv[2], NULL, 0));
	if (argc == 4 && strcmp(argv[1], "--vsock-send") == 0)
		return vsock_send(strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	gcs_log("bridge: unknown option %s", argv[1]);
	return 2;
}
