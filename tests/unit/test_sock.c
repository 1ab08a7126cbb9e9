/*
 * gcs/sock.c: connecting to a listening Unix socket, to a path with no
 * listener, to no path at all, and to one too long for sun_path.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "gcs/sock.h"

struct fixture {
	char dir[64];
	char path[100];
	int listener;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sock.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->listener = socket(AF_UNIX, SOCK_STREAM, 0);
	if (f->listener < 0 || bind(f->listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->listener, 4) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->listener);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_connects_to_a_listener(void **state)
{
	struct fixture *f = *state;
	int fd = sock_connect_unix(f->path), peer;
	char c = 0;

	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	peer = accept(f->listener, NULL, NULL);
	assert_true(peer >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(read(peer, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(peer);
	close(fd);
}

static void test_no_listener_is_refused(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[100];
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	/* Bound but not listening: the kernel refuses the connection. */
	snprintf(path, sizeof(path), "%s/quiet", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(sock_connect_unix(path), -ECONNREFUSED);
	close(s);
	unlink(path);
}

static void test_missing_path(void **state)
{
	struct fixture *f = *state;
	char path[100];

	snprintf(path, sizeof(path), "%s/absent", f->dir);
	assert_int_equal(sock_connect_unix(path), -ENOENT);
}

static void test_path_too_long_is_not_truncated(void **state)
{
	struct sockaddr_un sa;
	char path[sizeof(sa.sun_path) + 8];

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(sock_connect_unix(path), -ENAMETOOLONG);
	/* Exactly one byte too long: sun_path needs room for the NUL. */
	path[sizeof(sa.sun_path)] = '\0';
	assert_int_equal(sock_connect_unix(path), -ENAMETOOLONG);
}

static void test_generic_connect_reports_errno(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/nonexistent-dir/s");
	assert_int_equal(sock_connect((struct sockaddr *)&sa, sizeof(sa)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_connects_to_a_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_listener_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_path, setup, teardown),
	    cmocka_unit_test(test_path_too_long_is_not_truncated),
	    cmocka_unit_test(test_generic_connect_reports_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
