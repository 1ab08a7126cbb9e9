/* containerd's rootfs mount options: flags, data, hostile options. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>

#include <cmocka.h>

#include "shim/task_mount.h"

static void test_overlay_options(void **st)
{
	char *o[] = {"index=off", "workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs"};
	char data[TASK_MOUNT_DATA_MAX];
	unsigned long flags;

	assert_int_equal(task_mount_options(o, 4, &flags, data, sizeof(data)), 0);
	assert_int_equal(flags, 0);
	assert_string_equal(data, "index=off,workdir=/s/2/work,upperdir=/s/2/fs,lowerdir=/s/1/fs");
}

static void test_bind_flags(void **st)
{
	char *o[] = {"rbind", "ro", "nosuid", "", "rw", "ro"};
	char data[64];
	unsigned long flags;

	assert_int_equal(task_mount_options(o, 6, &flags, data, sizeof(data)), 0);
	assert_int_equal(flags, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID);
	assert_string_equal(data, "");
}

static void test_hostile_options(void **st)
{
	char *comma[] = {"lowerdir=/a,upperdir=/evil"};
	char *ctl[] = {"x=\n"};
	char *big[] = {"lowerdir=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		       "upperdir=/bbbbbbbbbbbbbbbbbbbbbb"};
	char data[48];
	unsigned long flags;

	assert_int_equal(task_mount_options(comma, 1, &flags, data, sizeof(data)), -EINVAL);
	assert_int_equal(task_mount_options(ctl, 1, &flags, data, sizeof(data)), -EINVAL);
	assert_int_equal(task_mount_options(big, 2, &flags, data, sizeof(data)), -E2BIG);
	assert_int_equal(task_mount_options(big, 1, &flags, data, sizeof(data)), 0);
	assert_true(strlen(data) < sizeof(data));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_overlay_options),
	    cmocka_unit_test(test_bind_flags),
	    cmocka_unit_test(test_hostile_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
