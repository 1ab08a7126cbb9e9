/*
 * The containerd shim's daemon under the sandbox vm.start puts it in
 * (docs/containerd.md "The sandbox"). In a forked child set up as daemon_run
 * and machine_start leave it (the opener forked first, every capability
 * dropped, Landlock, the loop filter in kill mode, after the rootfs was
 * "mounted" and the VM started), a running task is served over a connection
 * accepted on the daemon's listening socket, over a fake control protocol:
 * Connect, State, Pause and Resume (the events dialled to a socket standing in
 * for containerd; then, that socket closed as by a containerd restart, an
 * event that waits and the retry that delivers it once containerd is back), Kill, the VM's exit, a
 * second Create refused, Delete (the rootfs left to containerd), Shutdown, and the socket removed
 * through the opener at exit. A call missing from the loop list kills the child with SIGSYS.
 * Without the restructuring (an in-process unmount, a plain unlink) the child dies: checked too.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "shim/ctl.h"
#include "shim/opener.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/loop.h"

static char dir[64];

static void sock_path(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, name);
}

static int listening(const char *name)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sock_path(&sa, name);
	unlink(sa.sun_path); /* an earlier child's, killed before it could */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4))
		return -1;
	return fd;
}

/* ---- in the child: a client of the daemon on the same thread ------------------------- */

struct client {
	struct taskd *d;
	int fd;
	uint32_t stream;
	struct ttrpc_dec dec;
};

/* The status code of method's answer (its message in msg), or -1 when none came. */
static int client_call(struct client *c, const char *method, const ProtobufCMessage *req, char *msg,
		       size_t cap)
{
	uint32_t stream = c->stream;
	uint8_t *frame, buf[4096];
	size_t len;

	c->stream += 2;
	if (ttrpc_request_pack(stream, TASK_SERVICE, method, req, NULL, &frame, &len))
		return -1;
	if (write(c->fd, frame, len) != (ssize_t)len) {
		free(frame);
		return -1;
	}
	free(frame);
	for (int i = 0; i < 300; i++) {
		struct ttrpc_frame fr;
		ssize_t k;

		loop_run_once(c->d->loop, 10);
		k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k > 0 && ttrpc_dec_feed(&c->dec, buf, k))
			return -1;
		if (ttrpc_dec_next(&c->dec, &fr) == 1) {
			Uvm__Ttrpc__Response *r = ttrpc_response_unpack(&fr);
			int code;

			if (!r || fr.stream != stream)
				return -1;
			code = r->status ? r->status->code : 0;
			snprintf(msg, cap, "%s",
				 r->status && r->status->message ? r->status->message : "");
			protobuf_c_message_free_unpacked(&r->base, NULL);
			return code;
		}
	}
	return -1;
}

/* The fake control protocol: every request answered {} (vm.*, container.*, plan9.remove). */
static void fake_method(void *opaque, struct ctl_req *req)
{
	(void)opaque;
	ctl_req_result(req, cJSON_CreateObject());
}

static const struct ctl_method fake_methods[] = {
    {"vm.pause", fake_method, 0, 0},
    {"vm.resume", fake_method, 0, 0},
    {"container.signal", fake_method, 0, 0},
    {"container.delete", fake_method, 0, 0},
    {"plan9.remove", fake_method, 0, 0},
    {"vm.terminate", fake_method, 0, 0},
    {NULL, NULL, 0, 0},
};

/*
 * The daemon with task t1 running (pid 42), its rootfs "mounted" and the VM
 * started; the sandbox on as machine_start leaves this thread.
 */
static int daemon_sandboxed(struct taskd **out, struct ctl **fake, int *ev_listen)
{
	struct sockaddr_un ev;
	struct taskd *d;
	int listen_fd;

	unsetenv("UVM_NO_SECCOMP");
	unsetenv("UVM_SECCOMP_LOG");
	setenv("UVM_SHIM_CONFIG", "/nonexistent/uvm.json", 1);
	sandbox_configure(false);
	if (opener_start() || !opener_running())
		return 1;
	listen_fd = listening("shim.sock");
	*ev_listen = listening("events.sock");
	sock_path(&ev, "events.sock");
	if (listen_fd < 0 || *ev_listen < 0 ||
	    task_daemon_create(&d, listen_fd, "default", ev.sun_path))
		return 2;
	d->socket_path = malloc(sizeof(ev.sun_path));
	snprintf(d->socket_path, sizeof(ev.sun_path), "%s/shim.sock", dir);
	if (task_new(&d->tasks, "t1", dir) || task_proc_started(task_init_proc(d->tasks), 42) ||
	    ctl_create(fake, &(struct ctl_config){.out_fd = d->ctl_wr, .methods = fake_methods}))
		return 3;
	d->ctl = *fake;
	d->tasks->rootfs_mounted = true;
	d->vm_up = d->vm_started = true;
	if (sandbox_drop_privileges() || sandbox_landlock() || sandbox_apply(SANDBOX_LOOP))
		return 4;
	*out = d;
	return 0;
}

static int client_connect(struct client *c, struct taskd *d)
{
	struct sockaddr_un sa;

	sock_path(&sa, "shim.sock");
	c->d = d;
	c->stream = 1;
	ttrpc_dec_init(&c->dec, 0);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) ? -1 : 0;
}

/* What containerd got on its events socket (emptied when it "restarts"). */
static char got[16384];
static size_t len;

/* What containerd got on its events socket contains topic. */
static bool event_seen(int ev_listen, int *ev_conn, const char *topic)
{
	if (*ev_conn < 0)
		*ev_conn = accept4(ev_listen, NULL, NULL, SOCK_CLOEXEC);
	for (int i = 0; *ev_conn >= 0 && i < 100; i++) {
		ssize_t k = recv(*ev_conn, got + len, sizeof(got) - len, MSG_DONTWAIT);

		if (k > 0)
			len += k;
		if (memmem(got, len, topic, strlen(topic)))
			return true;
		if (k <= 0 || len == sizeof(got))
			return false;
	}
	return false;
}

static int child_serve_a_task(void)
{
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__KillRequest k = UVM__CTRD__KILL_REQUEST__INIT;
	Uvm__Ctrd__CreateTaskRequest cr = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__ShutdownRequest sd = UVM__CTRD__SHUTDOWN_REQUEST__INIT;
	struct taskd *d = NULL;
	struct ctl *fake = NULL;
	struct client c;
	char msg[512], *back;
	int ev_listen = -1, ev_conn = -1, ev_back, ret;
	struct sockaddr_un sa;

	/* Where containerd comes back after its restart: bound now, not under the filter. */
	ev_back = listening("events2.sock");
	sock_path(&sa, "events2.sock");
	back = strdup(sa.sun_path);
	ret = daemon_sandboxed(&d, &fake, &ev_listen);
	if (ret)
		return ret;
	if (client_connect(&c, d))
		return 10;
	id.id = "t1";
	if (client_call(&c, "Connect", &id.base, msg, sizeof(msg)) ||
	    client_call(&c, "State", &id.base, msg, sizeof(msg)))
		return 11;
	if (client_call(&c, "Pause", &id.base, msg, sizeof(msg)) ||
	    !event_seen(ev_listen, &ev_conn, "/tasks/paused"))
		return 12;
	if (client_call(&c, "Resume", &id.base, msg, sizeof(msg)) ||
	    !event_seen(ev_listen, &ev_conn, "/tasks/resumed"))
		return 13;
	/*
	 * containerd restarts: its events socket refuses. The event waits and the
	 * retry timer dials again (timerfd_settime, read, socket, connect under the
	 * filter); containerd back (at another path here: this thread may not bind),
	 * the event goes out.
	 */
	close(ev_conn);
	close(ev_listen);
	ev_conn = -1;
	d->ev.retry_ms = 10;
	if (client_call(&c, "Pause", &id.base, msg, sizeof(msg)))
		return 20;
	for (int i = 0; i < 10; i++)
		loop_run_once(d->loop, 10);
	if (d->ev.queued != 1 || d->ev.tries < 2)
		return 21;
	free(d->ev.address);
	d->ev.address = back;
	ev_listen = ev_back;
	len = 0;
	for (int i = 0; i < 10 && d->ev.queued; i++)
		loop_run_once(d->loop, 10);
	if (d->ev.queued || !event_seen(ev_listen, &ev_conn, "/tasks/paused"))
		return 22;
	if (client_call(&c, "Resume", &id.base, msg, sizeof(msg)) ||
	    !event_seen(ev_listen, &ev_conn, "/tasks/resumed"))
		return 23;
	k.id = "t1";
	k.signal = SIGKILL;
	if (client_call(&c, "Kill", &k.base, msg, sizeof(msg)))
		return 14;
	/* A second Create, not of this pod, would mount: refused before it reaches mount(2). */
	cr.id = "t2";
	cr.bundle = dir;
	if (client_call(&c, "Create", &cr.base, msg, sizeof(msg)) != TTRPC_FAILED_PRECONDITION)
		return 15;
	task_on_event(d, "vm.exited", NULL);
	/* Delete: container.delete, plan9.remove, then the rootfs left to containerd. */
	if (client_call(&c, "Delete", &id.base, msg, sizeof(msg)) || d->tasks ||
	    !event_seen(ev_listen, &ev_conn, "/tasks/delete"))
		return 16;
	sd.id = "t1";
	if (client_call(&c, "Shutdown", &sd.base, msg, sizeof(msg)) || !d->exiting)
		return 17;
	d->ctl = NULL; /* the fake is ours */
	ctl_destroy(fake);
	task_daemon_destroy(d); /* the socket goes through the opener */
	return 0;
}

/*
 * The same daemon doing what it did before it was sandboxed: the rootfs
 * unmounted in-process (as task_cleanup_host did), or its socket removed with
 * unlink(2). Either is outside the loop list.
 */
static bool by_unlink;

static int child_old_ways(void)
{
	struct taskd *d = NULL;
	struct ctl *fake = NULL;
	int ev_listen = -1, ret = daemon_sandboxed(&d, &fake, &ev_listen);

	if (ret)
		return ret;
	if (by_unlink) {
		unlink(d->socket_path);
	} else {
		d->vm_started = false;
		task_cleanup_host(d, d->tasks);
	}
	return 99;
}

/* fn in a forked child: it must exit 0 (sig 0) or die of signal sig. */
static void expect_child(int (*fn)(void), int sig, const char *what)
{
	pid_t pid;
	int st = -1;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st) && WTERMSIG(st) != sig)
		fail_msg("%s: died of signal %d (31: a call outside the loop list)", what,
			 WTERMSIG(st));
	if (WIFEXITED(st) && (sig || WEXITSTATUS(st)))
		fail_msg("%s: exit %d, expected %s", what, WEXITSTATUS(st),
			 sig ? "a death by signal" : "0");
}

/* ---- tests ------------------------------------------------------------------------------ */

static int setup(void **st)
{
	char rootfs[96];

	(void)st;
	strcpy(dir, "/tmp/test-task-sb-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	assert_int_equal(mkdir(rootfs, 0755), 0);
	return 0;
}

static int teardown(void **st)
{
	char cmd[128];

	(void)st;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_daemon_serves_under_the_loop_filter(void **st)
{
	char path[96];
	struct stat s;

	(void)st;
	expect_child(child_serve_a_task, 0, "the sandboxed daemon");
	snprintf(path, sizeof(path), "%s/shim.sock", dir);
	assert_int_equal(lstat(path, &s), -1); /* removed by the opener */
	snprintf(path, sizeof(path), "%s/events.sock", dir);
	assert_int_equal(lstat(path, &s), 0);
}

static void test_in_process_unmount_or_unlink_is_killed(void **st)
{
	(void)st;
	by_unlink = false;
	expect_child(child_old_ways, SIGSYS, "an in-process unmount");
	by_unlink = true;
	expect_child(child_old_ways, SIGSYS, "unlink of the socket");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_daemon_serves_under_the_loop_filter, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_in_process_unmount_or_unlink_is_killed, setup,
					    teardown),
	};

#if defined(__SANITIZE_THREAD__)
	/* The TSan runtime makes calls no allowlist has (tests/unit/tsan.mk skips test_seccomp). */
	fprintf(stderr, "SKIP: test_task_sandbox installs seccomp filters; not under TSan\n");
	return 0;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
