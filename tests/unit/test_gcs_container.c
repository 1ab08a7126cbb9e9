/*
 * The GCS's container bundle (gcs/container_bundle.c) on the host: ids,
 * config.json from the host's spec (root.path and cgroupsPath replaced,
 * required fields checked, hostile specs refused), crun's pid file with
 * hostile contents, the console socket's fd passing, crun's log message,
 * hostile root descriptions (container_layers.c, the scratch and its format
 * flag included) refused before any mount, the first step of a good one,
 * crun run off the loop (container_crun.c) with a fake crun: its end seen
 * through the reaper, its message passed on, exits of unknown children
 * kept for adopt but never a live process's. The real crun runs in the
 * e2e tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#include "gcs/bridge.h"
#include "gcs/container.h"
#include "gcs/log.c"
static char fake_crun[PATH_MAX];
#define CRUN fake_crun
#include "gcs/container_bundle.c"
#include "gcs/container_crun.c"
#include "gcs/container_layers.c"
#include "gcs/fields.c"
#include "gcs/fileio.c"

/* ---- what bundle.c takes from the rest of the agent ---- */

int gcs_write_all(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

int gcs_mkdir_p(const char *path)
{
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

void gcs_child_reset_signals(void)
{
}

int gcs_exit_code(int status)
{
	return status;
}

static char dir[] = "/tmp/gcs-ctr-test-XXXXXX";

static int setup(void **state)
{
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(fake_crun, sizeof(fake_crun), "%s/fake-crun", dir);
	f = fopen(fake_crun, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nlog=${1#--log=file:}; shift\ncase \"$1\" in\n"
	      "slow) sleep 1 ;;\n"
	      "fail) echo 'time=\"x\" level=error msg=\"fake: no such container\"' > \"$log\";"
	      " exit 1 ;;\nesac\nexit 0\n",
	      f);
	fclose(f);
	chmod(fake_crun, 0755);
	return 0;
}

static int teardown(void **state)
{
	gcs_ctr_rmdir(dir);
	return 0;
}

static void test_ids(void **state)
{
	assert_true(gcs_ctr_id_valid("c1"));
	assert_false(gcs_ctr_id_valid(NULL));
	assert_false(gcs_ctr_id_valid(""));
	assert_false(gcs_ctr_id_valid("../x"));
	assert_false(gcs_ctr_id_valid("a/b"));
	assert_false(gcs_ctr_id_valid("-rf"));
	assert_false(gcs_ctr_id_valid("a b"));
}

static cJSON *read_config(void)
{
	char path[PATH_MAX], buf[8192];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	return cJSON_Parse(buf);
}

static void test_bundle(void **state)
{
	char err[256], want[PATH_MAX];
	cJSON *spec = cJSON_Parse("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"sh\"]},"
				  "\"root\":{\"path\":\"/etc\",\"readonly\":true},"
				  "\"linux\":{\"cgroupsPath\":\"/../../escape\"}}");
	cJSON *c;

	assert_int_equal(gcs_bundle_write(dir, "c1", spec, err, sizeof(err)), 0);
	c = read_config();
	snprintf(want, sizeof(want), "%s/rootfs", dir);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(c, "root"), "path")->valuestring, want);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "root"), "readonly")));
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(c, "linux"), "cgroupsPath")->valuestring,
	    "/containers/c1");
	cJSON_Delete(c);
	cJSON_Delete(spec);
	/* root and linux absent: made */
	spec = cJSON_Parse("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"sh\"]}}");
	assert_int_equal(gcs_bundle_write(dir, "c1", spec, err, sizeof(err)), 0);
	cJSON_Delete(spec);

	static const struct {
		const char *json, *err;
	} bad[] = {
	    {"[]", "spec"},
	    {"{}", "spec.ociVersion"},
	    {"{\"ociVersion\":1,\"process\":{\"args\":[\"sh\"]}}", "spec.ociVersion"},
	    {"{\"ociVersion\":\"1\"}", "spec.process.args"},
	    {"{\"ociVersion\":\"1\",\"process\":{\"args\":[]}}", "spec.process.args"},
	    {"{\"ociVersion\":\"1\",\"process\":{\"args\":[1]}}", "spec.process.args"},
	    {"{\"ociVersion\":\"1\",\"process\":{\"args\":\"sh\"}}", "spec.process.args"},
	    {"{\"ociVersion\":\"1\",\"process\":{\"args\":[\"sh\"]},\"root\":\"/\"}", "spec.root"},
	    {"{\"ociVersion\":\"1\",\"process\":{\"args\":[\"sh\"]},\"linux\":[]}", "spec.root"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		spec = cJSON_Parse(bad[i].json);
		assert_non_null(spec);
		err[0] = 0;
		assert_int_equal(gcs_bundle_write(dir, "c1", spec, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: %s", bad[i].json, err);
		cJSON_Delete(spec);
	}
	assert_int_equal(gcs_bundle_write(dir, "c1", NULL, err, sizeof(err)), -EINVAL);
}

static void put(const char *name, const char *text)
{
	char p[PATH_MAX];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_pidfile(void **state)
{
	static const struct {
		const char *text;
		pid_t want;
	} cases[] = {
	    {"93", 93},
	    {"93\n", 93},
	    {"", -EPROTO},
	    {"0", -EPROTO},
	    {"-5", -EPROTO},
	    {"abc", -EPROTO},
	    {"2147483648", -EPROTO},
	    {"99999999999999999999", -EPROTO},
	};
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/pid", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put("pid", cases[i].text);
		if (gcs_pidfile_read(p) != cases[i].want)
			fail_msg("'%s': %d", cases[i].text, gcs_pidfile_read(p));
	}
	snprintf(p, sizeof(p), "%s/nosuch", dir);
	assert_int_equal(gcs_pidfile_read(p), -ENOENT);
}

/* crun's side of --console-socket: connect and send one fd. */
static void send_fd(const char *path, int fd, bool with_fd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(sizeof(int))] = {0}, byte = 'x';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(a.sun_path, path);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	if (with_fd) {
		struct cmsghdr *c;

		m.msg_control = cbuf;
		m.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(s, &m, 0), 1);
	close(s);
}

static void test_console_socket(void **state)
{
	char path[PATH_MAX];
	int lfd, got, p[2];

	snprintf(path, sizeof(path), "%s/console.sock", dir);
	lfd = gcs_console_listen(path);
	assert_true(lfd >= 0);
	/* nobody connected yet: no wait */
	assert_int_equal(gcs_console_take(lfd), -EAGAIN);
	assert_int_equal(pipe(p), 0);
	send_fd(path, p[1], true);
	got = gcs_console_take(lfd);
	assert_true(got >= 0);
	assert_int_equal(write(got, "z", 1), 1);
	{
		char c;

		assert_int_equal(read(p[0], &c, 1), 1);
		assert_int_equal(c, 'z');
	}
	close(got);
	/* a connection without an fd */
	send_fd(path, -1, false);
	assert_true(gcs_console_take(lfd) < 0);
	close(lfd);
	close(p[0]);
	close(p[1]);
	unlink(path);
	/* a path that does not fit sun_path */
	memset(path, 'a', sizeof(path) - 1);
	path[200] = 0;
	assert_int_equal(gcs_console_listen(path), -ENAMETOOLONG);
}

static void test_crun_message(void **state)
{
	char log[PATH_MAX], err[64] = "before";

	snprintf(log, sizeof(log), "%s/crun.log", dir);
	put("crun.log", "first line\nsecond: pivot_root: Invalid argument\n\n");
	crun_message(log, err, sizeof(err));
	assert_string_equal(err, "crun: second: pivot_root: Invalid argument");
	put("crun.log", "bad \x01\x1b[31m bytes");
	crun_message(log, err, sizeof(err));
	assert_string_equal(err, "crun: bad ??[31m bytes");
	/* empty or absent: err kept */
	put("crun.log", "");
	snprintf(err, sizeof(err), "kept");
	crun_message(log, err, sizeof(err));
	assert_string_equal(err, "kept");
	unlink(log);
	crun_message(log, err, sizeof(err));
	assert_string_equal(err, "kept");
}

/* Hostile or inconsistent root descriptions: refused before anything is mounted. */
static void test_rootfs_refused(void **state)
{
	static const char *const bad[] = {
	    "{\"rootfs\":{\"path\":\"rel\"}}",
	    "{\"rootfs\":{\"path\":\"/a/../b\"}}",
	    "{\"rootfs\":{\"path\":\"/a/..\"}}",
	    "{\"rootfs\":{\"path\":7}}",
	    "{\"rootfs\":\"/x\"}",
	    "{\"rootfs\":{}}",
	    "{\"rootfs\":{\"path\":\"/x\"},\"layers\":[{\"path\":\"/l\"}]}",
	    "{\"rootfs\":{\"path\":\"/x\"},\"scratch\":{\"path\":\"/s\"}}",
	    "{}",
	    "{\"layers\":[]}",
	    "{\"layers\":{}}",
	    "{\"layers\":[{\"path\":\"rel\"}]}",
	    "{\"layers\":[{\"path\":\"/l,upperdir=/etc\"}]}",
	    "{\"layers\":[{\"path\":\"/l:/etc\"}]}",
	    "{\"layers\":[{\"device\":\"/dev/../etc\"}]}",
	    "{\"layers\":[{\"device\":\"/dev/pmem0\",\"fs\":\"xfs\"}]}",
	    "{\"layers\":[{\"path\":\"/l\"},7]}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"path\":\"rel\"}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/x/y\"}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":5}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":[]}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/"
	    "vdc\",\"format\":\"yes\"}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/vdc\",\"format\":1}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"path\":\"/s\",\"format\":true}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"format\":true}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/vdc\",\"path\":7}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/\",\"format\":true}}",
	    "{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/"
	    "vdcvdcvdcvdcvdcvdcvdcvdcvdcvdcvdcvdc\",\"format\":true}}",
	    /* a bad scratch costs no layer mount: refused before the layer below is looked at */
	    "{\"layers\":[{\"device\":\"/dev/nosuchlayer0\"}],\"scratch\":{\"format\":true}}",
	};
	char err[GCS_CTR_ERRLEN], cdir[PATH_MAX];

	snprintf(cdir, sizeof(cdir), "%s/c", dir);
	assert_int_equal(gcs_mkdir_p(cdir), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *req = cJSON_Parse(bad[i]);
		struct gcs_rootfs r = {0};

		assert_non_null(req);
		err[0] = '\0';
		if (gcs_rootfs_begin(&r, cdir, req, err, sizeof(err)) != -EINVAL)
			fail_msg("%s: not refused (%s)", bad[i], err);
		assert_true(err[0] != '\0');
		assert_false(r.rootfs_mounted || r.scratch_mounted);
		assert_int_equal(r.nr_layers, 0);
		cJSON_Delete(req);
	}
	gcs_ctr_rmdir(cdir);
}

/* The first step of a root with layers by path mounts nothing and says what to format. */
static void test_rootfs_begin(void **state)
{
	static const struct {
		const char *json, *format;
	} ok[] = {
	    {"{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/"
	     "vdc\",\"format\":true}}",
	     "/dev/vdc"},
	    {"{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/"
	     "vdc\",\"format\":false}}",
	     ""},
	    {"{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"device\":\"/dev/vdc\"}}", ""},
	    {"{\"layers\":[{\"path\":\"/l\"}],\"scratch\":{\"path\":\"/s\",\"format\":false}}", ""},
	    {"{\"layers\":[{\"path\":\"/l\"},{\"path\":\"/m\"}]}", ""},
	    {"{\"layers\":[{\"path\":\"/l\"}],\"scratch\":null}", ""},
	};
	char err[GCS_CTR_ERRLEN], cdir[PATH_MAX];

	snprintf(cdir, sizeof(cdir), "%s/c", dir);
	assert_int_equal(gcs_mkdir_p(cdir), 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cJSON *req = cJSON_Parse(ok[i].json);
		struct gcs_rootfs r = {0};

		assert_non_null(req);
		snprintf(r.format_dev, sizeof(r.format_dev), "stale");
		if (gcs_rootfs_begin(&r, cdir, req, err, sizeof(err)))
			fail_msg("%s: %s", ok[i].json, err);
		assert_string_equal(r.format_dev, ok[i].format);
		assert_false(r.rootfs_mounted || r.scratch_mounted);
		assert_true(r.nr_layers >= 1);
		assert_int_equal(gcs_rootfs_unmount(&r, cdir, err, sizeof(err)), 0);
		assert_int_equal(r.nr_layers, 0);
		cJSON_Delete(req);
	}
	gcs_ctr_rmdir(cdir);
}

struct crun_res {
	int calls, ret;
	char err[GCS_CTR_ERRLEN];
};

static void crun_cb(void *opaque, int ret, const char *err)
{
	struct crun_res *r = opaque;

	r->calls++;
	r->ret = ret;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

/* What process.c's reaper does: every child reaped, the unknown ones handed over. */
static void reap_all(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, 0)) > 0)
		gcs_crun_reaped(pid, status);
}

static void test_crun_off_the_loop(void **state)
{
	const char *slow[] = {"slow", "c1", NULL}, *fail[] = {"fail", "c1", NULL};
	struct crun_res a = {0}, b = {0};
	int status;
	pid_t pid;

	/* started, not waited for: the caller goes on while it runs */
	gcs_crun_start(dir, NULL, slow, crun_cb, &a);
	gcs_crun_start(dir, NULL, fail, crun_cb, &b);
	assert_int_equal(gcs_crun_running(), 2);
	assert_int_equal(a.calls + b.calls, 0);
	reap_all();
	assert_int_equal(gcs_crun_running(), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.ret, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.ret, -EIO);
	assert_non_null(strstr(b.err, "fake: no such container"));

	/* a child nobody knew: kept for adopt, taken once */
	pid = fork();
	if (pid == 0)
		_exit(3);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	gcs_crun_reaped(pid, status);
	assert_int_equal(a.calls + b.calls, 2);
	status = 0;
	assert_true(gcs_crun_exit_taken(pid, &status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_false(gcs_crun_exit_taken(pid, &status));
	/* a kept exit whose number a live process has now is another's: never taken */
	gcs_crun_reaped(getpid(), 0);
	assert_false(gcs_crun_exit_taken(getpid(), &status));
	/* more unknown exits than are kept: the table wraps, nothing breaks */
	for (int i = 0; i < 200; i++)
		gcs_crun_reaped(4000000 + i, 0);
	assert_false(gcs_crun_exit_taken(4000000, &status));
	assert_true(gcs_crun_exit_taken(4000199, &status));
}

/* crun missing or not executable: the callback says so, nothing waits forever. */
static void test_crun_missing(void **state)
{
	const char *args[] = {"create", "c1", NULL};
	struct crun_res r = {0};
	char saved[PATH_MAX];

	snprintf(saved, sizeof(saved), "%s", fake_crun);
	snprintf(fake_crun, sizeof(fake_crun), "%s/no-crun-here", dir);
	gcs_crun_start(dir, NULL, args, crun_cb, &r);
	reap_all();
	snprintf(fake_crun, sizeof(fake_crun), "%s", saved);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.ret, -EIO);
	assert_non_null(strstr(r.err, "crun create failed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),		 cmocka_unit_test(test_bundle),
	    cmocka_unit_test(test_pidfile),	 cmocka_unit_test(test_console_socket),
	    cmocka_unit_test(test_crun_message), cmocka_unit_test(test_rootfs_refused),
	    cmocka_unit_test(test_rootfs_begin), cmocka_unit_test(test_crun_off_the_loop),
	    cmocka_unit_test(test_crun_missing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
