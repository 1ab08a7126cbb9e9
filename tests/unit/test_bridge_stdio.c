/*
 * shim/bridge_stdio.c: opening the host ends the parent names (issue 9,
 * defect 5: one lookup, no symlink as the last component, no controlling
 * terminal, only FIFOs, sockets, regular files and character devices).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/bridge.h"

static char dir[] = "/tmp/test_bridge_stdio_XXXXXX";

static const char *in_dir(const char *name)
{
	static char p[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static int setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void test_types(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, lfd, afd;
	char buf[8];

	/* A regular file: read as input, appended as output. */
	fd = open(in_dir("out.txt"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	fd = stdio_open_host(in_dir("out.txt"), STDIO_FROM_GUEST);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "de", 2), 2);
	close(fd);
	fd = stdio_open_host(in_dir("out.txt"), STDIO_TO_GUEST);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "abcde", 5);
	close(fd);
	/* FIFOs both ways, without waiting for the other end. */
	assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
	fd = stdio_open_host(in_dir("fifo"), STDIO_TO_GUEST);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	fd = stdio_open_host(in_dir("fifo"), STDIO_FROM_GUEST);
	assert_true(fd >= 0);
	close(fd);
	/* A listening Unix socket is connected to. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", in_dir("sock"));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	fd = stdio_open_host(in_dir("sock"), STDIO_FROM_GUEST);
	assert_true(fd >= 0);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(read(afd, buf, 1), 1);
	close(afd);
	close(fd);
	close(lfd);
	/* A character device. */
	fd = stdio_open_host("/dev/null", STDIO_FROM_GUEST);
	assert_true(fd >= 0);
	close(fd);
}

static void test_refused(void **state)
{
	struct stat st;
	int fd;

	fd = open(in_dir("target"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	assert_int_equal(symlink(in_dir("target"), in_dir("link")), 0);
	assert_int_equal(stdio_open_host(in_dir("link"), STDIO_FROM_GUEST), -ELOOP);
	assert_int_equal(stdio_open_host(in_dir("link"), STDIO_TO_GUEST), -ELOOP);
	assert_int_equal(stdio_open_host(dir, STDIO_TO_GUEST), -EISDIR);
	assert_int_equal(stdio_open_host(in_dir("missing"), STDIO_TO_GUEST), -ENOENT);
	assert_int_equal(stat(in_dir("target"), &st), 0);
	assert_int_equal(st.st_size, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
