/*
 * shim/machine.c without a VM: the default guest's files, the one kernel command
 * line, and loading a file (mapped on a local filesystem).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "boot/boot.h"
#include "shim/machine.h"
#include "shim/machine_priv.h"

static void test_cmdline(void **state)
{
	char out[BOOT_CMDLINE_MAX + 1], big[BOOT_CMDLINE_MAX];

	/* run and serve start from the same base; quiet is in it. */
	assert_int_equal(machine_cmdline(out, sizeof(out), NULL, false), 0);
	assert_string_equal(out, MACHINE_BASE_CMDLINE);
	assert_non_null(strstr(out, " quiet "));
	assert_int_equal(machine_cmdline(out, sizeof(out), "loglevel=7", true), 0);
	assert_string_equal(out, MACHINE_BASE_CMDLINE " loglevel=7 -- /init bridge");
	/* Too long for the boot protocol, or for the buffer: refused, not cut. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(machine_cmdline(out, sizeof(out), big, false), -E2BIG);
	assert_int_equal(machine_cmdline(out, 16, NULL, false), -E2BIG);
}

static void touch(const char *dir, const char *name)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void test_default_guest(void **state)
{
	char dir[] = "/tmp/test_machine_XXXXXX", k[256], i[256], cmd[300];

	assert_non_null(mkdtemp(dir));
	assert_int_equal(machine_default_guest(dir, k, sizeof(k), i, sizeof(i)), -ENOENT);
	touch(dir, "vmlinuz");
	touch(dir, "initrd.img");
	assert_int_equal(machine_default_guest(dir, k, sizeof(k), i, sizeof(i)), 0);
	assert_non_null(strstr(k, "/vmlinuz"));
	assert_non_null(strstr(i, "/initrd.img"));
	/* The PVH vmlinux wins when it is there. */
	touch(dir, "vmlinux");
	assert_int_equal(machine_default_guest(dir, k, sizeof(k), i, sizeof(i)), 0);
	assert_non_null(strstr(k, "/vmlinux"));
	/* UVM_GUEST_DIR names it. */
	setenv("UVM_GUEST_DIR", dir, 1);
	assert_string_equal(machine_guest_dir(), dir);
	unsetenv("UVM_GUEST_DIR");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_load_file(void **state)
{
	char dir[] = "/tmp/test_machine_XXXXXX", path[300], err[256], cmd[300];
	struct loaded_file lf;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/kernel", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 10000; i++)
		fputc(i & 0xff, f);
	fclose(f);
	assert_int_equal(machine_load_file(path, "kernel", 1 << 20, &lf, err, sizeof(err)), 0);
	assert_int_equal(lf.size, 10000);
	assert_true(lf.mapped); /* /tmp is local (tmpfs or disk) */
	for (int i = 0; i < 10000; i++)
		assert_int_equal(lf.data[i], i & 0xff);
	lf.data[0] ^= 0xff; /* private: the file keeps its byte */
	machine_unload_file(&lf);
	assert_null(lf.data);
	assert_int_equal(machine_load_file(path, "kernel", 1 << 20, &lf, err, sizeof(err)), 0);
	assert_int_equal(lf.data[0], 0);
	machine_unload_file(&lf);
	/* Larger than the limit, empty, missing, a directory: refused with the name. */
	assert_int_equal(machine_load_file(path, "kernel", 9999, &lf, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "larger than guest memory"));
	assert_int_equal(machine_load_file(dir, "initrd", 1 << 20, &lf, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "initrd"));
	touch(dir, "empty");
	snprintf(path, sizeof(path), "%s/empty", dir);
	assert_int_equal(machine_load_file(path, "kernel", 1 << 20, &lf, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(machine_load_file(path, "kernel", 1 << 20, &lf, err, sizeof(err)),
			 -ENOENT);
	assert_null(lf.data);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmdline),
	    cmocka_unit_test(test_default_guest),
	    cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
