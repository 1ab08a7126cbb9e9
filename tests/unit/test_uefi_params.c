/*
 * vm.create's "uefi" object (shim/uefi_params.c): the dir/path/args form,
 * with hostile paths (.., absolute, links leading out, magic links, FIFOs,
 * directories), fields of the wrong type, the parts not built (vars, disk)
 * and the vm.create fields it excludes.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "shim/uefi_params.h"

static char dir[PATH_MAX], real_dir[PATH_MAX], outside[PATH_MAX];
static cJSON *last; /* the strings a parse borrows live until the next parse */

static void touch(const char *name)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
}

static int setup(void **state)
{
	char p[PATH_MAX * 2], tmpl[] = "/tmp/uvm-test-uefi-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	snprintf(outside, sizeof(outside), "%s", tmpl);
	snprintf(dir, sizeof(dir), "%s/esp", tmpl);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_non_null(realpath(dir, real_dir));
	touch("vmlinuz");
	touch("initrd.img");
	snprintf(p, sizeof(p), "%s/secret", outside);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof(p), "%s/sub", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/fifo", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/abs", dir);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/up", dir);
	assert_int_equal(symlink("../secret", p), 0);
	snprintf(p, sizeof(p), "%s/sub/chain", dir);
	assert_int_equal(symlink("../up", p), 0);
	snprintf(p, sizeof(p), "%s/inside", dir);
	assert_int_equal(symlink("sub/../vmlinuz", p), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	cJSON_Delete(last);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", outside);
	return system(cmd) == 0 ? 0 : -1;
}

/* Parses a vm.create params object written as JSON with one %s for the dir. */
static int parse(const char *fmt, struct uefi_params *u, char err[CTL_ERRLEN])
{
	const char *at = strstr(fmt, "%s");
	char json[PATH_MAX + 512];
	cJSON *p;
	int ret;

	assert_non_null(at);
	snprintf(json, sizeof(json), "%.*s%s%s", (int)(at - fmt), fmt, dir, at + 2);
	p = cJSON_Parse(json);
	assert_non_null(p);
	err[0] = '\0';
	ret = uefi_params_parse(p, u, err);
	cJSON_Delete(last);
	last = p;
	return ret;
}

static void expect_error(const char *fmt, const char *needle)
{
	struct uefi_params u;
	char err[CTL_ERRLEN];

	assert_int_equal(parse(fmt, &u, err), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("%s: error %s, want it to contain %s", fmt, err, needle);
}

static void test_absent(void **state)
{
	struct uefi_params u = {.args = "untouched"};
	char err[CTL_ERRLEN];

	assert_int_equal(parse("{\"cpus\":1,\"x\":\"%s\"}", &u, err), -ENOENT);
	assert_string_equal(u.args, "untouched");
}

static void test_good(void **state)
{
	struct uefi_params u;
	char err[CTL_ERRLEN], want[PATH_MAX * 2];

	assert_int_equal(
	    parse("{\"uefi\":{\"firmware\":\"/fw.fd\",\"dir\":\"%s\","
		  "\"path\":\"vmlinuz\",\"args\":\"quiet\",\"initrd\":\"initrd.img\"}}",
		  &u, err),
	    0);
	assert_string_equal(u.firmware, "/fw.fd");
	snprintf(want, sizeof(want), "%s/vmlinuz", real_dir);
	assert_string_equal(u.kernel, want);
	snprintf(want, sizeof(want), "%s/initrd.img", real_dir);
	assert_string_equal(u.initrd, want);
	assert_string_equal(u.args, "quiet");

	/* No initrd, a link that stays inside: the target's path is handed on. */
	assert_int_equal(parse("{\"uefi\":{\"firmware\":\"/fw.fd\",\"dir\":\"%s\","
			       "\"path\":\"inside\"}}",
			       &u, err),
			 0);
	snprintf(want, sizeof(want), "%s/vmlinuz", real_dir);
	assert_string_equal(u.kernel, want);
	assert_string_equal(u.initrd, "");
	assert_null(u.args);
}

static void test_escapes(void **state)
{
	static const char *const paths[] = {
	    "../secret",
	    "/etc/passwd",
	    "abs",
	    "up",
	    "sub/chain",
	    "sub/../../secret",
	    "/proc/self/root/etc/passwd",
	    "../esp/../secret",
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char fmt[512];

		snprintf(fmt, sizeof(fmt),
			 "{\"uefi\":{\"firmware\":\"/fw.fd\",\"dir\":\"%%s\",\"path\":\"%s\"}}",
			 paths[i]);
		expect_error(fmt, "params.uefi.path");
		snprintf(fmt, sizeof(fmt),
			 "{\"uefi\":{\"firmware\":\"/fw.fd\",\"dir\":\"%%s\",\"path\":\"vmlinuz\","
			 "\"initrd\":\"%s\"}}",
			 paths[i]);
		expect_error(fmt, "params.uefi.initrd");
	}
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"../secret\"}}",
		     "leads outside params.uefi.dir");
}

static void test_not_files(void **state)
{
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"sub\"}}",
		     "not a regular file");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"fifo\"}}",
		     "not a regular file");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"\"}}", "empty path");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"nope\"}}",
		     "No such file");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s/vmlinuz\",\"path\":\"x\"}}",
		     "params.uefi.dir");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s/none\",\"path\":\"x\"}}",
		     "params.uefi.dir");
}

static void test_bad_fields(void **state)
{
	expect_error("{\"uefi\":\"%s\"}", "params.uefi: expected an object");
	expect_error("{\"uefi\":{\"dir\":\"%s\",\"path\":\"vmlinuz\"}}",
		     "params.uefi.firmware: required");
	expect_error("{\"uefi\":{\"firmware\":7,\"dir\":\"%s\",\"path\":\"vmlinuz\"}}",
		     "params.uefi.firmware: expected a string");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":[1]}}",
		     "params.uefi.path: expected a string");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"vmlinuz\","
		     "\"args\":false}}",
		     "params.uefi.args");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\"}}",
		     "params.uefi.path: missing");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"path\":\"vmlinuz\",\"x\":\"%s\"}}",
		     "params.uefi.dir: missing");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"disk\":\"yes\"}}",
		     "params.uefi.disk");
}

static void test_not_built_and_excluded(void **state)
{
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\",\"path\":\"vmlinuz\","
		     "\"vars\":\"/v.fd\"}}",
		     "not built");
	expect_error("{\"uefi\":{\"firmware\":\"/f\",\"disk\":true,\"x\":\"%s\"}}", "not built");
	expect_error("{\"kernel\":\"/k\",\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\","
		     "\"path\":\"vmlinuz\"}}",
		     "params.uefi: excludes params.kernel");
	expect_error("{\"firmware\":\"/k\",\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\","
		     "\"path\":\"vmlinuz\"}}",
		     "excludes params.firmware");
	expect_error("{\"cmdline\":\"x\",\"uefi\":{\"firmware\":\"/f\",\"dir\":\"%s\","
		     "\"path\":\"vmlinuz\"}}",
		     "excludes params.cmdline");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_absent),     cmocka_unit_test(test_good),
	    cmocka_unit_test(test_escapes),    cmocka_unit_test(test_not_files),
	    cmocka_unit_test(test_bad_fields), cmocka_unit_test(test_not_built_and_excluded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
