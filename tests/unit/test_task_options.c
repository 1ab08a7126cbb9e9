/*
 * containerd's runtime options (CreateTaskRequest.options) and the config
 * file they name: what containerd sends decodes to the path; an Any of
 * another type, truncated or over-long values, NUL bytes, repeated fields,
 * relative and over-long paths are refused; config files that are missing,
 * not regular (a FIFO is not waited on), too large or not a JSON object of
 * the right shape are refused with the path named.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "shim/proto/runtimeoptions.pb-c.h"
#include "shim/task_options.h"
#include "shim/ttrpc.h"

static char err[TASK_OPTIONS_ERRLEN];

/* The Any containerd 1.6 builds for `ctr run --runtime-config-path`, packed by protobuf-c. */
static size_t pack_options(const char *type_url, const char *config_path, uint8_t *buf)
{
	Uvm__Ctrd__RuntimeOptions o = UVM__CTRD__RUNTIME_OPTIONS__INIT;

	o.type_url = (char *)type_url;
	o.config_path = (char *)config_path;
	return uvm__ctrd__runtime_options__pack(&o, buf);
}

static int decode(const char *type_url, const void *value, size_t len, char **path)
{
	Uvm__Ctrd__Any a = UVM__CTRD__ANY__INIT;

	a.type_url = (char *)type_url;
	a.value.data = (uint8_t *)value;
	a.value.len = len;
	err[0] = 0;
	return task_options_config_path(&a, path, err, sizeof(err));
}

static void test_no_options(void **st)
{
	Uvm__Ctrd__Any empty = UVM__CTRD__ANY__INIT;
	char *path = (char *)1;
	uint8_t buf[64];
	size_t n;

	assert_int_equal(task_options_config_path(NULL, &path, err, sizeof(err)), 0);
	assert_null(path);
	assert_int_equal(task_options_config_path(&empty, &path, err, sizeof(err)), 0);
	assert_null(path);
	/* Options without a config_path (or with an empty one): the default file. */
	assert_int_equal(decode(TASK_OPTIONS_TYPE, "", 0, &path), 0);
	assert_null(path);
	n = pack_options("io.containerd.uvm.v1.json", "", buf);
	assert_int_equal(decode(TASK_OPTIONS_TYPE, buf, n, &path), 0);
	assert_null(path);
}

static void test_config_path(void **st)
{
	/* field 1 "t", field 2 "/etc/u.json", as Go's marshaller writes them */
	static const uint8_t wire[] = "\x0a\x01t\x12\x0b/etc/u.json";
	uint8_t buf[128];
	char *path;
	size_t n;

	assert_int_equal(decode(TASK_OPTIONS_TYPE, wire, sizeof(wire) - 1, &path), 0);
	assert_string_equal(path, "/etc/u.json");
	free(path);
	n = pack_options("", "/run/uvm/vm 2.json", buf);
	assert_int_equal(decode("type.googleapis.com/" TASK_OPTIONS_TYPE, buf, n, &path), 0);
	assert_string_equal(path, "/run/uvm/vm 2.json");
	free(path);
	/* containerd 1.7's config_body (field 3), unknown here, is skipped. */
	static const uint8_t body[] = "\x12\x03/u1\x1a\x08x = \"y\"\n";
	assert_int_equal(decode(TASK_OPTIONS_TYPE, body, sizeof(body) - 1, &path), 0);
	assert_string_equal(path, "/u1");
	free(path);
}

static void test_wrong_type(void **st)
{
	static const char *const types[] = {
	    "containerd.runc.v1.Options",  "runtimeoptions.v1.Options2",
	    "xruntimeoptions.v1.Options",  "runtimeoptions.v1.options",
	    "/runtimeoptions.v1.Options/", "", /* a value without a type */
	};
	uint8_t buf[64];
	size_t n = pack_options("", "/etc/u.json", buf);
	char *path = (char *)1;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_int_equal(decode(types[i], buf, n, &path), TTRPC_INVALID_ARGUMENT);
		assert_null(path);
		assert_non_null(strstr(err, TASK_OPTIONS_TYPE));
	}
	/* a type_url as long as a ttrpc message may carry is cut in the message */
	{
		char *url = malloc(1 << 20);

		memset(url, 'a', (1 << 20) - 1);
		url[(1 << 20) - 1] = 0;
		assert_int_equal(decode(url, buf, n, &path), TTRPC_INVALID_ARGUMENT);
		assert_true(strlen(err) < sizeof(err));
		free(url);
	}
}

/* Every cut of a valid value either fails or decodes to no path: never a shortened path. */
static void test_truncated(void **st)
{
	uint8_t buf[128];
	size_t n = pack_options("io.containerd.uvm.v1", "/etc/uvm-shim/task.json", buf);

	for (size_t cut = 0; cut < n; cut++) {
		char *path = NULL;
		int ret = decode(TASK_OPTIONS_TYPE, buf, cut, &path);

		if (ret) {
			assert_int_equal(ret, TTRPC_INVALID_ARGUMENT);
			assert_null(path);
		} else {
			assert_null(path);
		}
	}
}

static void test_hostile_lengths(void **st)
{
	/* expect: in the error; "not a valid" where protobuf-c itself refuses */
	static const struct {
		const char *bytes;
		size_t len;
		const char *expect;
	} bad[] = {
	    {"\x12\xff\xff\xff\xff\x0f/a", 8, "not a valid"},		       /* length 4 GiB */
	    {"\x12\xff\xff\xff\xff\xff\xff\xff\xff\x7f/a", 12, "not a valid"}, /* 2^63 */
	    {"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
	     "not a valid"},			/* 11-byte varint */
	    {"\x12\x10/etc", 6, "not a valid"}, /* length past the end */
	    {"\x12", 1, "not a valid"},		/* a tag without its value */
	    {"\x02\x01/", 3, "not a valid"},	/* field 0 */
	    {"\x13", 1, "not a valid"},		/* a group's start */
	    /* what protobuf-c takes but would misread: caught by the re-encoding */
	    {"\x12\x0a/etc\0/x.js", 12, "given twice"}, /* a NUL inside the path */
	    {"\x12\x02/a\x12\x02/b", 8, "given twice"}, /* config_path twice */
	    {"\x12\x06u.json", 8, "not an absolute path"},
	    {"\x12\x02./", 4, "not an absolute path"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *path = (char *)1;

		assert_int_equal(decode(TASK_OPTIONS_TYPE, bad[i].bytes, bad[i].len, &path),
				 TTRPC_INVALID_ARGUMENT);
		assert_null(path);
		if (!strstr(err, bad[i].expect))
			fail_msg("case %zu: \"%s\" without \"%s\"", i, err, bad[i].expect);
	}
}

static void test_long_path(void **st)
{
	char *p = malloc(PATH_MAX + 1);
	uint8_t *buf = malloc(PATH_MAX + 16);
	char *path;
	size_t n;

	memset(p, 'a', PATH_MAX);
	p[0] = '/';
	p[PATH_MAX - 1] = 0; /* PATH_MAX - 1 bytes: the longest taken */
	n = pack_options("", p, buf);
	assert_int_equal(decode(TASK_OPTIONS_TYPE, buf, n, &path), 0);
	assert_int_equal(strlen(path), PATH_MAX - 1);
	free(path);
	p[PATH_MAX - 1] = 'a';
	p[PATH_MAX] = 0;
	n = pack_options("", p, buf);
	assert_int_equal(decode(TASK_OPTIONS_TYPE, buf, n, &path), TTRPC_INVALID_ARGUMENT);
	assert_null(path);
	assert_non_null(strstr(err, "at most"));
	free(buf);
	free(p);
}

/* ---- the config file ------------------------------------------------------------------ */

static char dir[64];

static int setup(void **st)
{
	strcpy(dir, "/tmp/test-task-options-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **st)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static const char *file_with(const char *name, const char *text, size_t len)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

static void test_config_good(void **st)
{
	const char *text = "{\"cpus\": 2, \"memory_mib\": 384, \"start_timeout_ms\": 90000}";
	const char *p = file_with("good.json", text, strlen(text));
	cJSON *c;

	assert_int_equal(task_config_load(p, &c, err, sizeof(err)), 0);
	assert_int_equal(cJSON_GetObjectItem(c, "cpus")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(c, "memory_mib")->valueint, 384);
	cJSON_Delete(c);
}

static void test_config_bad(void **st)
{
	static const struct {
		const char *text;
		int ret;
	} bad[] = {
	    {"", -EINVAL},
	    {"[1, 2]", -EINVAL},
	    {"\"cpus\"", -EINVAL},
	    {"{\"cpus\": 2", -EINVAL},
	    {"{\"cpus\": 2} trailing", -EINVAL},
	    {"cpus = 2\n", -EINVAL}, /* TOML is not read */
	    {"{\"start_timeout_ms\": \"60000\"}", -EINVAL},
	    {"{\"start_timeout_ms\": 0}", -EINVAL},
	    {"{\"start_timeout_ms\": 1.5}", -EINVAL},
	    {"{\"start_timeout_ms\": 1e300}", -EINVAL},
	    {"{\"start_timeout_ms\": -1}", -EINVAL},
	};
	char path[128];
	cJSON *c = (cJSON *)1;
	char *big;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *p = file_with("bad.json", bad[i].text, strlen(bad[i].text));

		assert_int_equal(task_config_load(p, &c, err, sizeof(err)), bad[i].ret);
		assert_null(c);
		assert_non_null(strstr(err, p));
	}
	/* A NUL inside, even after a whole object. */
	assert_int_equal(
	    task_config_load(file_with("nul.json", "{\"cpus\":\0 1}", 12), &c, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    task_config_load(file_with("nul2.json", "{}\0{}", 5), &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	/* One byte over the limit, though valid JSON. */
	big = malloc(TASK_CONFIG_MAX + 1);
	memset(big, ' ', TASK_CONFIG_MAX + 1);
	big[0] = '{';
	big[TASK_CONFIG_MAX] = '}';
	assert_int_equal(
	    task_config_load(file_with("big.json", big, TASK_CONFIG_MAX + 1), &c, err, sizeof(err)),
	    -EFBIG);
	/* At the limit it loads. */
	big[TASK_CONFIG_MAX - 1] = '}';
	assert_int_equal(
	    task_config_load(file_with("max.json", big, TASK_CONFIG_MAX), &c, err, sizeof(err)), 0);
	cJSON_Delete(c);
	free(big);

	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(task_config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing.json"));
	assert_int_equal(task_config_load(dir, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(task_config_load("/dev/zero", &c, err, sizeof(err)), -EINVAL);
	/* A FIFO with no writer: refused at once, not waited on. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(task_config_load(path, &c, err, sizeof(err)), -EINVAL);
	/* A path over the limits of open. */
	{
		char *longp = malloc(PATH_MAX + 2);

		memset(longp, 'a', PATH_MAX + 1);
		longp[0] = '/';
		longp[PATH_MAX + 1] = 0;
		assert_int_equal(task_config_load(longp, &c, err, sizeof(err)), -ENAMETOOLONG);
		assert_true(strlen(err) < sizeof(err));
		free(longp);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_options),
	    cmocka_unit_test(test_config_path),
	    cmocka_unit_test(test_wrong_type),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_hostile_lengths),
	    cmocka_unit_test(test_long_path),
	    cmocka_unit_test_setup_teardown(test_config_good, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_bad, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
