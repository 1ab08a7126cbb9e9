/*
 * A container's slow steps off the agent's loop (gcs/container.c,
 * container_layers.c, container_crun.c, container_mounts.c).
 *
 * The scratch's format, with a fake mke2fs: a
 * container_create that formats returns at once and other requests are
 * answered while mke2fs runs (stats, another container's create and its own
 * format, a refused one); the create goes on when mke2fs exits (here to the
 * scratch mount, which fails on the host's missing /dev node, so the error
 * names that step) or fails with mke2fs's own message; a delete while the
 * format runs stops mke2fs, the create fails -ECANCELED and the delete is
 * answered done; the bridge's end stops every format before it returns. Each
 * time: no child left, no fd leaked, the container's directory gone. The
 * real mke2fs runs in the e2e tests (test_container.py).
 *
 * The mounts and unmounts, with fake mount(2)/umount(2) that wait at a gate
 * (gcs_rootfs_set_mount_fns) and a fake crun: while the worker is held in
 * a create's mount, a failed create's unmount or a delete's, the loop (this
 * test's thread) still answers stats, other creates, and queues the
 * container's own requests; a container re-created under the same id while
 * the old one is being unmounted gets a fresh directory after it; a delete
 * during the mounts cancels the create.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char fake_crun[128];
#define CRUN fake_crun
#include "gcs/container.c"
#include "gcs/container_create.c"
#include "gcs/container_bundle.c"
#include "gcs/container_crun.c"
#include "gcs/container_layers.c"
#include "gcs/container_mounts.c"
#include "gcs/container_stats.c"
#include "gcs/container_verbs.c"
#include "gcs/fields.c"
#include "gcs/fileio.c"
#include "gcs/log.c"

/* ---- what container*.c take from the rest of the agent ---- */

#define MAX_ANSWERS 32

static struct answer {
	uint32_t type;
	uint64_t id;
	int status;
	char error[512];
} answers[MAX_ANSWERS];
static int nr_answers;

void gcs_bridge_respond(uint32_t req_type, uint64_t id, int status, cJSON *body, const char *fmt,
			...)
{
	struct answer *a = &answers[nr_answers++ % MAX_ANSWERS];
	va_list ap;

	*a = (struct answer){.type = req_type, .id = id, .status = status};
	if (status && fmt) {
		va_start(ap, fmt);
		vsnprintf(a->error, sizeof(a->error), fmt, ap);
		va_end(ap);
	}
	cJSON_Delete(body);
}

void gcs_bridge_send(uint32_t type, uint64_t id, cJSON *obj)
{
	cJSON_Delete(obj);
}

int gcs_bridge_watch(int fd, struct gcs_watch *w)
{
	return 0;
}

int gcs_write_all(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

int gcs_mkdir_p(const char *path)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -errno;
			*s = '/';
		}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

void gcs_child_reset_signals(void)
{
}

int gcs_exit_code(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void gcs_stacks_allow(void)
{
}

static bool stdio_ok;		     /* the create goes on to crun (the fake) */
static bool mount_held, umount_held; /* the fake mount, umount wait while these are set */

int gcs_stdio_dial(const cJSON *req, struct gcs_stdio *io, char *err, size_t errlen)
{
	if (stdio_ok)
		return 0;
	snprintf(err, errlen, "stdio: not in this test");
	return -ENOTCONN;
}

void gcs_stdio_close(struct gcs_stdio *io)
{
}

int gcs_process_adopt(pid_t pid, int master, struct gcs_stdio *io,
		      void (*on_exit)(pid_t pid, int status))
{
	return stdio_ok ? 0 : -ENOSYS;
}

/* ---- the test's fixtures ---- */

#define REQ_TYPE(rpc) BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_CONTAINER, BRIDGE_RPC_##rpc)
#define CREATE	      REQ_TYPE(CONTAINER_CREATE)

static char tmp[] = "/tmp/gcs-fmt-test-XXXXXX";
static char ctr_root[128], fake[128], go[128];
static int fds_at_start;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/*
 * The fake: writes its arguments beside itself (args.<device>); /dev/fmtfail* fails as
 * mke2fs does on a device in use, /dev/fmthold* waits for the go file (at
 * most 30 s, so a broken test leaves no process for long).
 */
static int setup(void **state)
{
	FILE *f;

	assert_non_null(mkdtemp(tmp));
	snprintf(ctr_root, sizeof(ctr_root), "%s/c", tmp);
	snprintf(fake, sizeof(fake), "%s/fake-mke2fs", tmp);
	snprintf(go, sizeof(go), "%s/go", tmp);
	f = fopen(fake, "w");
	assert_non_null(f);
	fprintf(f,
		"#!/bin/sh\necho \"$@\" > %s/args.${5#/dev/}\ncase \"$5\" in\n"
		"/dev/fmtfail*) echo 'mke2fs 1.47.0 (5-Feb-2023)' >&2;"
		" echo \"$5 is apparently in use by the system; will not make a filesystem "
		"here!\" >&2; exit 1 ;;\n"
		"/dev/fmthold*) i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.1;"
		" i=$((i+1)); done ;;\nesac\nexit 0\n",
		tmp, go);
	fclose(f);
	chmod(fake, 0755);
	/* crun: create writes a pid no process has (the delete's SIGKILL finds nobody) */
	snprintf(fake_crun, sizeof(fake_crun), "%s/fake-crun", tmp);
	f = fopen(fake_crun, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nshift\n[ \"$1\" = create ] && echo 2147483600 > \"$5\"\nexit 0\n", f);
	fclose(f);
	chmod(fake_crun, 0755);
	gcs_container_set_paths(ctr_root, fake);
	assert_int_equal(mounts_start(), 0); /* its eventfd stays: not a leak */
	fds_at_start = count_fds();
	return 0;
}

static int teardown(void **state)
{
	gcs_ctr_rmdir(ctr_root);
	gcs_ctr_rmdir(tmp);
	return 0;
}

/* Runs the done of every mount job until none is out (the loop's part). */
static void settle(void)
{
	while (gcs_mounts_pending()) {
		struct pollfd p = {.fd = efd, .events = POLLIN};

		assert_true(poll(&p, 1, 10000) == 1);
		mounts_reap();
	}
}

static void reset(void)
{
	nr_answers = 0;
	memset(answers, 0, sizeof(answers));
	unlink(go);
	alarm(60); /* a loop that waits for mke2fs would hang here: fail instead */
}

static struct answer *answer_of(uint64_t id)
{
	for (int i = 0; i < nr_answers && i < MAX_ANSWERS; i++)
		if (answers[i].id == id)
			return &answers[i];
	return NULL;
}

static void request(void (*fn)(uint32_t, uint64_t, const cJSON *), uint32_t type, uint64_t id,
		    const char *json)
{
	cJSON *req = cJSON_Parse(json);

	assert_non_null(req);
	fn(type, id, req);
	cJSON_Delete(req);
}

static void create(uint64_t id, const char *cid, const char *scratch_dev)
{
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"id\":\"%s\",\"spec\":{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":"
		 "[\"/bin/true\"]}},\"layers\":[{\"path\":\"/nonexistent-layer\"}],"
		 "\"scratch\":{\"device\":\"%s\",\"format\":true}}",
		 cid, scratch_dev);
	request(gcs_container_create, CREATE, id, json);
	settle(); /* its directory and layers: then the format starts */
}

/* What process.c's reaper does when the job's child has exited. */
static void reap(pid_t pid)
{
	int status;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	gcs_crun_reaped(pid, status);
	if (!mount_held && !umount_held)
		settle(); /* the mounts or the teardown that follow (unless the test holds them) */
}

static bool ctr_dir_exists(const char *cid)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", ctr_root, cid);
	return stat(p, &st) == 0;
}

/* Nothing left: no job, no child (not even a zombie), no fd, no container. */
static void assert_clean(void)
{
	assert_int_equal(gcs_crun_running(), 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(count_fds(), fds_at_start);
	assert_null(ctrs);
	assert_int_equal(gcs_mounts_pending(), 0);
	alarm(0);
}

static void test_loop_answers_while_formatting(void **state)
{
	struct answer *a;
	pid_t hold, fail;
	char path[PATH_MAX], args[256];

	reset();
	create(1, "c1", "/dev/fmthold0");
	/* returned with mke2fs still running: no answer yet */
	assert_null(answer_of(1));
	hold = gcs_job_find("/dev/fmthold0");
	assert_true(hold > 0);
	assert_int_equal(kill(hold, 0), 0);

	/* other requests meanwhile */
	request(gcs_container_stats, REQ_TYPE(CONTAINER_STATS), 2, "{\"id\":\"c1\"}");
	assert_non_null(answer_of(2)); /* no cgroup yet: answered all the same */
	create(3, "c2", "/dev/fmtfail0");
	assert_null(answer_of(3)); /* its own format runs beside c1's */
	assert_int_equal(gcs_crun_running(), 2);
	create(4, "c3", "/dev/fmthold0"); /* the device c1's mke2fs writes */
	a = answer_of(4);
	assert_non_null(a);
	assert_int_equal(a->status, -EBUSY);
	assert_non_null(strstr(a->error, "being formatted"));
	request(gcs_container_create, CREATE, 5, "{\"id\":\"c4\",\"spec\":{}}");
	settle();
	a = answer_of(5);
	assert_non_null(a);
	assert_int_equal(a->status, -EINVAL);
	request(gcs_container_start, REQ_TYPE(CONTAINER_START), 6, "{\"id\":\"c1\"}");
	assert_null(answer_of(6)); /* c1's own requests queue behind its create */

	/* c2's mke2fs fails: its message comes back, c2 leaves nothing */
	fail = gcs_job_find("/dev/fmtfail0");
	reap(fail);
	a = answer_of(3);
	assert_non_null(a);
	assert_int_equal(a->status, -EIO);
	assert_non_null(strstr(a->error, "container c2: scratch /dev/fmtfail0: mke2fs failed (1): "
					 "/dev/fmtfail0 is apparently in use"));
	assert_false(ctr_dir_exists("c2"));
	assert_null(answer_of(1));

	/* c1's mke2fs ends well: the create goes on to mount the scratch */
	assert_int_equal(close(open(go, O_CREAT | O_WRONLY, 0600)), 0);
	reap(hold);
	a = answer_of(1);
	assert_non_null(a);
	assert_true(a->status < 0);
	if (!strstr(a->error, "container c1: scratch /dev/fmthold0: mount: "))
		fail_msg("not the scratch mount's error: %s", a->error);
	snprintf(path, sizeof(path), "%s/args.fmthold0", tmp);
	assert_int_equal(gcs_read_line(path, args, sizeof(args)), 0);
	assert_string_equal(args, "-q -F -t ext4 /dev/fmthold0");
	a = answer_of(6);
	assert_non_null(a);
	assert_int_equal(a->status, -ENOENT);
	assert_false(ctr_dir_exists("c1"));
	assert_clean();
}

static void test_delete_stops_the_format(void **state)
{
	struct answer *a;
	pid_t hold;
	int status;

	reset();
	create(10, "c5", "/dev/fmthold1");
	hold = gcs_job_find("/dev/fmthold1");
	assert_true(hold > 0);
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 11, "{\"id\":\"c5\"}");
	/* killed, not yet reaped: both answers wait for the reaper */
	assert_null(answer_of(10));
	assert_null(answer_of(11));
	assert_int_equal(waitpid(hold, &status, 0), hold);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	gcs_crun_reaped(hold, status);
	settle();
	a = answer_of(10);
	assert_non_null(a);
	assert_int_equal(a->status, -ECANCELED);
	assert_non_null(strstr(a->error, "deleted while its scratch was being formatted"));
	a = answer_of(11);
	assert_non_null(a);
	assert_int_equal(a->status, 0);
	assert_false(ctr_dir_exists("c5"));
	assert_clean();
	/* the id is free again; a second delete finds nothing */
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 12, "{\"id\":\"c5\"}");
	assert_int_equal(answer_of(12)->status, -ENOENT);
}

static void test_bridge_end_stops_formats(void **state)
{
	reset();
	create(20, "c6", "/dev/fmthold2");
	create(21, "c7", "/dev/fmthold3");
	assert_int_equal(gcs_crun_running(), 2);
	gcs_container_stop(); /* reaps them itself: the loop is ending */
	assert_int_equal(answer_of(20)->status, -ECANCELED);
	assert_int_equal(answer_of(21)->status, -ECANCELED);
	assert_false(ctr_dir_exists("c6"));
	assert_false(ctr_dir_exists("c7"));
	assert_clean();
	gcs_container_stop(); /* nothing left: nothing done */
}

static void test_mke2fs_missing(void **state)
{
	char missing[PATH_MAX];
	struct answer *a;

	reset();
	snprintf(missing, sizeof(missing), "%s/no-mke2fs-here", tmp);
	gcs_format_set_tool(missing);
	create(30, "c8", "/dev/fmthold4");
	reap(gcs_job_find("/dev/fmthold4"));
	gcs_format_set_tool(fake);
	a = answer_of(30);
	assert_non_null(a);
	assert_int_equal(a->status, -EIO);
	assert_non_null(strstr(a->error, "scratch /dev/fmthold4: mke2fs failed (127)"));
	assert_clean();
}

/* mke2fs's stderr, hostile or empty: one printable line at most, never more than err holds. */
static void test_format_message(void **state)
{
	char err[96], log[PATH_MAX], cdir[128];
	FILE *f;

	snprintf(cdir, sizeof(cdir), "%s/m", tmp);
	assert_int_equal(gcs_mkdir_p(cdir), 0);
	snprintf(log, sizeof(log), "%s/mke2fs.log", cdir);
	f = fopen(log, "w");
	assert_non_null(f);
	fputs("first\n\x1b[31mred\x07 and a very long line that goes on and on past what the "
	      "error buffer holds\r\n\n",
	      f);
	fclose(f);
	assert_int_equal(format_result(cdir, "/dev/x", 1 << 8, err, sizeof(err)), -EIO);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_non_null(strstr(err, "mke2fs failed (1): ?[31mred? and a very"));
	assert_null(strchr(err, '\n'));
	/* empty: the exit code alone */
	f = fopen(log, "w");
	fclose(f);
	assert_int_equal(format_result(cdir, "/dev/x", 9, err, sizeof(err)), -EIO);
	assert_string_equal(err, "scratch /dev/x: mke2fs failed (137)");
	assert_int_equal(format_result(cdir, "/dev/x", 0, err, sizeof(err)), 0);
	gcs_ctr_rmdir(cdir);
}

/* ---- mounts and unmounts on the mount worker ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int held;	    /* fakes waiting at the gate now */
static char calls[4096];    /* "mount tmpfs <target>\n", "umount <target>\n" */
static bool on_test_thread; /* a fake ran on this test's thread (the loop) */
static pthread_t test_thread;

/* Records the call (target relative to ctr_root), then waits while held is set. */
static void fake_call(const char *what, const char *target, bool *hold)
{
	const char *rel =
	    strncmp(target, ctr_root, strlen(ctr_root)) ? target : target + strlen(ctr_root);

	pthread_mutex_lock(&gate_lock);
	snprintf(calls + strlen(calls), sizeof(calls) - strlen(calls), "%s %s\n", what, rel);
	if (pthread_equal(pthread_self(), test_thread))
		on_test_thread = true;
	held++;
	pthread_cond_broadcast(&gate_cond);
	while (*hold)
		pthread_cond_wait(&gate_cond, &gate_lock);
	held--;
	pthread_mutex_unlock(&gate_lock);
}

static int fake_mount(const char *source, const char *target, const char *fstype,
		      unsigned long flags, const void *data)
{
	char what[64];

	snprintf(what, sizeof(what), "mount %s", fstype ? fstype : "bind");
	fake_call(what, target, &mount_held);
	return 0;
}

/* The scratch's upper and work directories were on the tmpfs: gone with it. */
static int fake_umount(const char *target)
{
	char p[PATH_MAX];
	size_t n = strlen(target);

	fake_call("umount", target, &umount_held);
	if (n > 8 && !strcmp(target + n - 8, "/scratch")) {
		snprintf(p, sizeof(p), "%s/upper", target);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/work", target);
		rmdir(p);
	}
	return 0;
}

static void gate(bool *hold, bool value)
{
	pthread_mutex_lock(&gate_lock);
	*hold = value;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* Serves the loop's part until the worker waits at the gate (10 s at most). */
static void wait_at_gate(void)
{
	for (int i = 0; i < 1000; i++) {
		struct pollfd p = {.fd = efd, .events = POLLIN};

		pthread_mutex_lock(&gate_lock);
		if (held) {
			pthread_mutex_unlock(&gate_lock);
			return;
		}
		pthread_mutex_unlock(&gate_lock);
		if (poll(&p, 1, 10) == 1)
			mounts_reap();
	}
	fail_msg("the mount worker never reached the gate; calls so far:\n%s", calls);
}

static void fakes_on(void)
{
	reset();
	calls[0] = '\0';
	on_test_thread = false;
	test_thread = pthread_self();
	gate(&mount_held, false);
	gate(&umount_held, false);
	gcs_rootfs_set_mount_fns(fake_mount, fake_umount);
}

static void fakes_off(void)
{
	gate(&mount_held, false);
	gate(&umount_held, false);
	settle();
	gcs_rootfs_set_mount_fns(NULL, NULL);
	stdio_ok = false;
	assert_false(on_test_thread); /* never a mount on the loop */
}

/* A root on a tmpfs (no scratch), one layer by path: the mounts are the tmpfs and overlay. */
static void create_plain(uint64_t id, const char *cid)
{
	char json[512];

	snprintf(json, sizeof(json),
		 "{\"id\":\"%s\",\"spec\":{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":"
		 "[\"/bin/true\"]}},\"layers\":[{\"path\":\"/nonexistent-layer\"}]}",
		 cid);
	request(gcs_container_create, CREATE, id, json);
}

static void expect_calls(const char *want)
{
	if (strcmp(calls, want))
		fail_msg("mount calls:\n%s\nwanted:\n%s", calls, want);
}

/* A create's mount is slow: the loop answers meanwhile; the create goes on once it is done. */
static void test_loop_answers_while_mounting(void **state)
{
	struct answer *a;

	fakes_on();
	gate(&mount_held, true);
	create_plain(40, "m1");
	wait_at_gate(); /* the worker is in m1's scratch mount */
	assert_null(answer_of(40));
	request(gcs_container_stats, REQ_TYPE(CONTAINER_STATS), 41, "{\"id\":\"m1\"}");
	assert_non_null(answer_of(41));
	create_plain(42, "m2"); /* its mounts queue behind m1's */
	request(gcs_container_start, REQ_TYPE(CONTAINER_START), 43, "{\"id\":\"m1\"}");
	request(gcs_container_stats, REQ_TYPE(CONTAINER_STATS), 44, "{\"id\":\"nosuch\"}");
	assert_int_equal(answer_of(44)->status, -ENOENT);
	assert_null(answer_of(40));
	assert_null(answer_of(42));
	assert_null(answer_of(43));
	expect_calls("mount tmpfs /m1/scratch\n");
	/* done: overlay, then stdio (this test has none): the create fails and is undone */
	gate(&mount_held, false);
	settle();
	a = answer_of(40);
	assert_non_null(a);
	assert_int_equal(a->status, -ENOTCONN);
	assert_int_equal(answer_of(42)->status, -ENOTCONN);
	assert_int_equal(answer_of(43)->status, -ENOENT);
	/* one job at a time, in order: m1's teardown was queued before m2's root */
	expect_calls("mount tmpfs /m1/scratch\nmount overlay /m1/rootfs\n"
		     "umount /m1/rootfs\numount /m1/scratch\n"
		     "mount tmpfs /m2/scratch\nmount overlay /m2/rootfs\n"
		     "umount /m2/rootfs\numount /m2/scratch\n");
	assert_false(ctr_dir_exists("m1"));
	assert_false(ctr_dir_exists("m2"));
	fakes_off();
	assert_clean();
}

/*
 * A delete's unmount is slow (a scratch flushing): the loop answers
 * meanwhile, the delete once it is done. The same id created again while
 * the old root is being unmounted gets its own directory after it.
 */
static void test_loop_answers_while_unmounting(void **state)
{
	struct answer *a;
	char path[PATH_MAX];

	fakes_on();
	stdio_ok = true;
	create_plain(50, "u1");
	settle();
	reap(gcs_job_find("create"));
	a = answer_of(50);
	assert_non_null(a);
	assert_int_equal(a->status, 0);
	gate(&umount_held, true);
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 51, "{\"id\":\"u1\"}");
	reap(gcs_job_find("delete")); /* crun delete: then the unmounts, held */
	wait_at_gate();
	assert_null(answer_of(51)); /* answered once unmounted */
	request(gcs_container_stats, REQ_TYPE(CONTAINER_STATS), 52, "{\"id\":\"u1\"}");
	assert_non_null(answer_of(52));
	create_plain(53, "u1"); /* still in the table until unmounted */
	assert_int_equal(answer_of(53)->status, -EEXIST);
	gate(&umount_held, false);
	settle();
	assert_int_equal(answer_of(51)->status, 0);
	assert_false(ctr_dir_exists("u1"));
	expect_calls("mount tmpfs /u1/scratch\nmount overlay /u1/rootfs\n"
		     "umount /u1/rootfs\numount /u1/scratch\n");

	/*
	 * A create that fails is unmounted off the loop too, and answered once it
	 * is (the host may then remove its disks); its id is free at once.
	 */
	stdio_ok = false;
	calls[0] = '\0';
	gate(&umount_held, true);
	create_plain(54, "u2");
	wait_at_gate(); /* the teardown's unmount of the overlay */
	assert_null(answer_of(54));
	stdio_ok = true;
	create_plain(55, "u2"); /* queued behind the old one's teardown */
	assert_null(answer_of(55));
	gate(&umount_held, false);
	settle();
	assert_int_equal(answer_of(54)->status, -ENOTCONN);
	reap(gcs_job_find("create"));
	assert_int_equal(answer_of(55)->status, 0);
	expect_calls("mount tmpfs /u2/scratch\nmount overlay /u2/rootfs\n"
		     "umount /u2/rootfs\numount /u2/scratch\n"
		     "mount tmpfs /u2/scratch\nmount overlay /u2/rootfs\n");
	/* the teardown's rmdir came first: the new config.json is there */
	snprintf(path, sizeof(path), "%s/u2/config.json", ctr_root);
	assert_int_equal(access(path, F_OK), 0);
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 56, "{\"id\":\"u2\"}");
	reap(gcs_job_find("delete"));
	assert_int_equal(answer_of(56)->status, 0);
	fakes_off();
	assert_clean();
}

/* A delete while the create mounts: the create stops once its mount is back, both answered. */
static void test_delete_while_mounting(void **state)
{
	fakes_on();
	gate(&mount_held, true);
	create_plain(60, "d1");
	wait_at_gate();
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 61, "{\"id\":\"d1\"}");
	request(gcs_container_delete, REQ_TYPE(CONTAINER_DELETE), 62, "{\"id\":\"d1\"}");
	assert_null(answer_of(60));
	assert_null(answer_of(61));
	gate(&mount_held, false);
	settle();
	assert_int_equal(answer_of(60)->status, -ECANCELED);
	assert_non_null(strstr(answer_of(60)->error, "deleted while being created"));
	assert_int_equal(answer_of(61)->status, 0);
	assert_int_equal(answer_of(62)->status, 0);
	/* the root's job ends (tmpfs, overlay) before the create sees the delete */
	expect_calls("mount tmpfs /d1/scratch\nmount overlay /d1/rootfs\n"
		     "umount /d1/rootfs\numount /d1/scratch\n");
	assert_false(ctr_dir_exists("d1"));
	fakes_off();
	assert_clean();
}

/* The bridge ends with a mount held: the create gives up there, everything is undone. */
static void test_bridge_end_waits_for_mounts(void **state)
{
	fakes_on();
	gate(&mount_held, true);
	create_plain(70, "s1");
	wait_at_gate();
	gate(&mount_held, false); /* the mount ends (it always does), the stop waits for it */
	gcs_container_stop();
	assert_int_equal(answer_of(70)->status, -ECANCELED);
	assert_false(ctr_dir_exists("s1"));
	expect_calls("mount tmpfs /s1/scratch\nmount overlay /s1/rootfs\n"
		     "umount /s1/rootfs\numount /s1/scratch\n");
	fakes_off();
	assert_clean();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loop_answers_while_formatting),
	    cmocka_unit_test(test_delete_stops_the_format),
	    cmocka_unit_test(test_bridge_end_stops_formats),
	    cmocka_unit_test(test_mke2fs_missing),
	    cmocka_unit_test(test_format_message),
	    cmocka_unit_test(test_loop_answers_while_mounting),
	    cmocka_unit_test(test_loop_answers_while_unmounting),
	    cmocka_unit_test(test_delete_while_mounting),
	    cmocka_unit_test(test_bridge_end_waits_for_mounts),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
