/*
 * Containers (container_* requests, protocol.h): the table, crun's verbs,
 * the container's processes handed to process.c (so wait, signal, resize
 * and the stdio relays are exec's own), exits and OOM kills pushed to the
 * host as notifications.
 *
 * The bridge is a child subreaper (bridge.c): the container's init and
 * exec'd processes, orphaned when crun returns, are reparented to it and
 * reaped by process.c, which calls ctr_exited for an init.
 */
#include "gcs/container.h"
#include "gcs/bridge.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONTAINERS 256

enum ctr_state { CTR_CREATED, CTR_RUNNING, CTR_STOPPED };

static const char *const state_names[] = {"created", "running", "stopped"};

struct ctr {
	char id[GCS_CTR_ID_MAX + 1];
	char dir[128];
	enum ctr_state state;
	pid_t pid;
	struct gcs_rootfs rootfs;
	int wd; /* inotify watch on memory.events, -1 */
	long long oom_kills;
	unsigned execs; /* numbers the exec's process files */
	struct ctr *next;
};

static struct ctr *ctrs;
static unsigned nr_ctrs;
static int ifd = -1; /* inotify: memory.events of every running container */
static struct gcs_watch ifd_w;

#define NOTIFY(n) BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_##n)

static struct ctr *ctr_find(const char *id)
{
	struct ctr *c = ctrs;

	while (c && strcmp(c->id, id))
		c = c->next;
	return c;
}

/* The request's container; answers the error itself when there is none. */
static struct ctr *ctr_of(uint32_t type, uint64_t id, const cJSON *req)
{
	const char *cid = gcs_bridge_str(req, "id");
	struct ctr *c;

	if (!gcs_ctr_id_valid(cid)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "%s: id: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d",
				   bridge_type_name(type), GCS_CTR_ID_MAX);
		return NULL;
	}
	c = ctr_find(cid);
	if (!c)
		gcs_bridge_respond(type, id, -ENOENT, NULL, "no container %s", cid);
	return c;
}

static void watch_drop(struct ctr *c)
{
	if (c->wd >= 0)
		inotify_rm_watch(ifd, c->wd);
	c->wd = -1;
}

/* process.c reaped a process it was given with this hook: a container's init. */
static void ctr_exited(pid_t pid, int status)
{
	struct ctr *c = ctrs;
	cJSON *b;
	long long kills;

	while (c && !(c->pid == pid && c->state != CTR_STOPPED))
		c = c->next;
	if (!c)
		return; /* deleted with force meanwhile */
	c->state = CTR_STOPPED;
	kills = gcs_ctr_oom_kills(c->id);
	watch_drop(c);
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "id", c->id);
	cJSON_AddNumberToObject(b, "pid", pid);
	cJSON_AddNumberToObject(b, "exit_code", gcs_exit_code(status));
	cJSON_AddNumberToObject(b, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cJSON_AddBoolToObject(b, "oom_killed", kills > 0);
	gcs_log("container %s exited: %d%s", c->id, gcs_exit_code(status),
		kills > 0 ? " (OOM kill in its cgroup)" : "");
	gcs_bridge_send(NOTIFY(EXITED), 0, b);
}

/* memory.events changed: a new OOM kill is pushed as container_oom. */
static void on_inotify(struct gcs_watch *w, uint32_t events)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(ifd, buf, sizeof(buf));

	for (ssize_t off = 0; n > 0 && off + (ssize_t)sizeof(struct inotify_event) <= n;) {
		const struct inotify_event *e = (const void *)(buf + off);

		for (struct ctr *c = ctrs; c; c = c->next) {
			long long kills;
			cJSON *b;

			if (c->wd != e->wd)
				continue;
			kills = gcs_ctr_oom_kills(c->id);
			if (kills <= c->oom_kills)
				break;
			c->oom_kills = kills;
			b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "id", c->id);
			cJSON_AddNumberToObject(b, "oom_kills", kills);
			gcs_bridge_send(NOTIFY(OOM), 0, b);
			break;
		}
		off += sizeof(*e) + e->len;
	}
}

int gcs_container_init(void)
{
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0)
		return -errno;
	ifd_w.fn = on_inotify;
	return gcs_bridge_watch(ifd, &ifd_w);
}

/* ---- create ---------------------------------------------------------------------------- */

/* Runs crun create (or exec: args) for c with io's streams, or a terminal through a
 * console socket; the new process is adopted. Returns its pid or -errno with err. */
static pid_t crun_spawn(struct ctr *c, const char *const *args, const char *pidfile, bool tty,
			struct gcs_stdio *io, void (*on_exit)(pid_t, int), char *err, size_t errlen)
{
	const int none[3] = {-1, -1, -1};
	char sock[PATH_MAX];
	int lfd = -1, master = -1, ret;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/console.sock", c->dir);
	if (tty) {
		lfd = gcs_console_listen(sock);
		if (lfd < 0) {
			snprintf(err, errlen, "console socket: %s", strerror(-lfd));
			return lfd;
		}
	}
	unlink(pidfile);
	ret = gcs_crun(c->dir, tty ? none : io->socks, args, err, errlen);
	if (ret)
		goto out;
	pid = gcs_pidfile_read(pidfile);
	if (pid < 0) {
		ret = pid;
		snprintf(err, errlen, "crun's pid file %s: %s", pidfile, strerror(-ret));
		goto out;
	}
	if (tty) {
		master = gcs_console_take(lfd);
		if (master < 0)
			gcs_log("container %s: no terminal from crun: %s", c->id,
				strerror(-master));
	}
	ret = gcs_process_adopt(pid, master, io, on_exit);
	if (ret) {
		kill(pid, SIGKILL);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = pid;
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(sock);
	}
	return ret;
}

static bool spec_terminal(const cJSON *proc)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "terminal"));
}

/*
 * A terminal process gets the request's rows and cols as its consoleSize
 * (unless it has one): crun sets it before the process runs, where a
 * resize after crun returned would race with the process's first look.
 */
static void console_size(cJSON *proc, const cJSON *req)
{
	long long rows, cols;
	cJSON *cs;

	if (!spec_terminal(proc) || cJSON_GetObjectItemCaseSensitive(proc, "consoleSize") ||
	    gcs_bridge_int(req, "rows", 1, USHRT_MAX, 24, &rows) ||
	    gcs_bridge_int(req, "cols", 1, USHRT_MAX, 80, &cols))
		return;
	cs = cJSON_AddObjectToObject(proc, "consoleSize");
	cJSON_AddNumberToObject(cs, "height", rows);
	cJSON_AddNumberToObject(cs, "width", cols);
}

static void ctr_free(struct ctr *c)
{
	char err[GCS_CTR_ERRLEN];

	watch_drop(c);
	if (gcs_rootfs_unmount(&c->rootfs, c->dir, err, sizeof(err)))
		gcs_log("container %s: %s", c->id, err);
	gcs_ctr_rmdir(c->dir);
	free(c);
}

void gcs_container_create(uint32_t type, uint64_t id, const cJSON *req)
{
	const char *cid = gcs_bridge_str(req, "id");
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(req, "spec");
	char err[GCS_CTR_ERRLEN] = "", pidfile[PATH_MAX], ev[PATH_MAX];
	cJSON *sized;
	struct gcs_stdio io = {.socks = {-1, -1, -1}};
	struct ctr *c = NULL;
	bool created = false;
	int ret;
	pid_t pid;

	if (!gcs_ctr_id_valid(cid)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "container_create: id: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d",
				   GCS_CTR_ID_MAX);
		return;
	}
	if (ctr_find(cid)) {
		gcs_bridge_respond(type, id, -EEXIST, NULL, "container %s exists", cid);
		return;
	}
	if (nr_ctrs >= MAX_CONTAINERS) {
		gcs_bridge_respond(type, id, -EAGAIN, NULL, "too many containers (%d)",
				   MAX_CONTAINERS);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "out of memory");
		return;
	}
	snprintf(c->id, sizeof(c->id), "%s", cid);
	snprintf(c->dir, sizeof(c->dir), "%s/%s", GCS_CTR_DIR, cid);
	c->wd = -1;
	ret = gcs_mkdir_p(c->dir);
	if (ret) {
		snprintf(err, sizeof(err), "mkdir %s: %s", c->dir, strerror(-ret));
		goto fail;
	}
	/* The spec first: a bad one costs no mount. */
	sized = cJSON_Duplicate(spec, 1);
	if (cJSON_IsObject(sized))
		console_size(cJSON_GetObjectItemCaseSensitive(sized, "process"), req);
	ret = gcs_bundle_write(c->dir, c->id, sized ? sized : spec, err, sizeof(err));
	cJSON_Delete(sized);
	if (!ret)
		ret = gcs_rootfs_mount(&c->rootfs, c->dir, req, err, sizeof(err));
	if (!ret)
		ret = gcs_stdio_dial(req, &io, err, sizeof(err));
	if (ret)
		goto fail;
	snprintf(pidfile, sizeof(pidfile), "%s/pid", c->dir);
	{
		char sock[PATH_MAX + 32];
		bool tty = spec_terminal(cJSON_GetObjectItemCaseSensitive(spec, "process"));
		/* crun pivots: the agent's root is not the initramfs (gcs_root_off_initramfs). */
		const char *args[] = {"create",
				      "--bundle",
				      c->dir,
				      "--pid-file",
				      pidfile,
				      tty ? "--console-socket" : c->id,
				      tty ? sock : NULL,
				      c->id,
				      NULL};

		snprintf(sock, sizeof(sock), "%s/console.sock", c->dir);
		pid = crun_spawn(c, args, pidfile, tty, &io, ctr_exited, err, sizeof(err));
	}
	if (pid < 0) {
		ret = pid;
		goto fail;
	}
	created = true;
	c->pid = pid;
	c->state = CTR_CREATED;
	gcs_ctr_events_path(c->id, ev, sizeof(ev));
	c->wd = inotify_add_watch(ifd, ev, IN_MODIFY);
	if (c->wd < 0)
		gcs_log_errno("container %s: no OOM watch on %s", c->id, ev);
	c->next = ctrs;
	ctrs = c;
	nr_ctrs++;
	{
		cJSON *b = cJSON_CreateObject();

		cJSON_AddNumberToObject(b, "pid", pid);
		gcs_bridge_respond(type, id, 0, b, NULL);
	}
	gcs_log("container %s created: pid %d", c->id, pid);
	return;
fail:
	gcs_stdio_close(&io);
	if (created) {
		const char *del[] = {"delete", "--force", c->id, NULL};
		char e2[GCS_CTR_ERRLEN];

		if (gcs_crun(c->dir, NULL, del, e2, sizeof(e2)))
			gcs_log("container %s: %s", c->id, e2);
	}
	gcs_bridge_respond(type, id, ret, NULL, "container %s: %s", c->id, err);
	ctr_free(c);
}

/* ---- the other verbs ------------------------------------------------------------------- */

void gcs_container_start(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	const char *args[] = {"start", c ? c->id : "", NULL};
	char err[GCS_CTR_ERRLEN];
	int ret;

	if (!c)
		return;
	if (c->state != CTR_CREATED) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "container %s is %s, not created",
				   c->id, state_names[c->state]);
		return;
	}
	ret = gcs_crun(c->dir, NULL, args, err, sizeof(err));
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "container %s: %s", c->id, err);
		return;
	}
	if (c->state == CTR_CREATED)
		c->state = CTR_RUNNING;
	gcs_bridge_respond(type, id, 0, NULL, NULL);
}

/* Writes obj as dir/name: 0 or -errno. */
static int write_json(const char *path, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	FILE *f;
	int ret = 0;

	if (!text)
		return -ENOMEM;
	f = fopen(path, "we");
	if (!f || fputs(text, f) < 0)
		ret = -errno;
	if (f && fclose(f) && !ret)
		ret = -errno;
	free(text);
	return ret;
}

void gcs_container_exec(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	const cJSON *proc = cJSON_GetObjectItemCaseSensitive(req, "process");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(proc, "args");
	char err[GCS_CTR_ERRLEN] = "", pfile[PATH_MAX], pidfile[PATH_MAX], sock[PATH_MAX];
	struct gcs_stdio io;
	bool tty;
	pid_t pid;
	int ret;

	if (!c)
		return;
	if (c->state != CTR_RUNNING) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "container %s is %s, not running",
				   c->id, state_names[c->state]);
		return;
	}
	if (!cJSON_IsObject(proc) || !cJSON_IsArray(args) || cJSON_GetArraySize(args) < 1) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "container_exec: process.args: a non-empty array of strings");
		return;
	}
	tty = spec_terminal(proc);
	c->execs++;
	snprintf(pfile, sizeof(pfile), "%s/exec-%u.json", c->dir, c->execs);
	snprintf(pidfile, sizeof(pidfile), "%s/exec-%u.pid", c->dir, c->execs);
	snprintf(sock, sizeof(sock), "%s/console.sock", c->dir);
	{
		cJSON *sized = cJSON_Duplicate(proc, 1);

		console_size(sized, req);
		ret = sized ? write_json(pfile, sized) : -ENOMEM;
		cJSON_Delete(sized);
	}
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "%s: %s", pfile, strerror(-ret));
		return;
	}
	ret = gcs_stdio_dial(req, &io, err, sizeof(err));
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "container_exec: %s", err);
		goto out;
	}
	{
		const char *a[] = {"exec",
				   "--detach",
				   "--pid-file",
				   pidfile,
				   "--process",
				   pfile,
				   tty ? "--console-socket" : c->id,
				   tty ? sock : NULL,
				   c->id,
				   NULL};

		pid = crun_spawn(c, a, pidfile, tty, &io, NULL, err, sizeof(err));
	}
	gcs_stdio_close(&io);
	if (pid < 0) {
		gcs_bridge_respond(type, id, pid, NULL, "container %s: %s", c->id, err);
	} else {
		cJSON *b = cJSON_CreateObject();

		cJSON_AddNumberToObject(b, "pid", pid);
		gcs_bridge_respond(type, id, 0, b, NULL);
	}
out:
	unlink(pfile);
	unlink(pidfile);
}

void gcs_container_signal(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	bool all = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "all"));
	char err[GCS_CTR_ERRLEN], sig[24];
	long long s;
	int ret;

	if (!c)
		return;
	if (gcs_bridge_int(req, "signal", 1, NSIG - 1, -1, &s) || s < 1) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "container_signal: signal: 1..%d",
				   NSIG - 1);
		return;
	}
	if (c->state == CTR_STOPPED) {
		gcs_bridge_respond(type, id, -ESRCH, NULL, "container %s has exited", c->id);
		return;
	}
	snprintf(sig, sizeof(sig), "%lld", s);
	{
		const char *a[] = {"kill", all ? "--all" : c->id, all ? c->id : sig,
				   all ? sig : NULL, NULL};

		ret = gcs_crun(c->dir, NULL, a, err, sizeof(err));
	}
	if (ret)
		gcs_bridge_respond(type, id, ret, NULL, "container %s: %s", c->id, err);
	else
		gcs_bridge_respond(type, id, 0, NULL, NULL);
}

void gcs_container_update(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(req, "resources");
	char err[GCS_CTR_ERRLEN], path[PATH_MAX], arg[PATH_MAX + 16];
	int ret;

	if (!c)
		return;
	if (!cJSON_IsObject(res)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "container_update: resources: an OCI linux.resources object");
		return;
	}
	if (c->state == CTR_STOPPED) {
		gcs_bridge_respond(type, id, -ESRCH, NULL, "container %s has exited", c->id);
		return;
	}
	snprintf(path, sizeof(path), "%s/resources.json", c->dir);
	snprintf(arg, sizeof(arg), "--resources=%s", path);
	ret = write_json(path, res);
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "%s: %s", path, strerror(-ret));
		return;
	}
	{
		const char *a[] = {"update", arg, c->id, NULL};

		ret = gcs_crun(c->dir, NULL, a, err, sizeof(err));
	}
	unlink(path);
	if (ret)
		gcs_bridge_respond(type, id, ret, NULL, "container %s: %s", c->id, err);
	else
		gcs_bridge_respond(type, id, 0, NULL, NULL);
}

void gcs_container_stats(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	cJSON *b;

	if (!c)
		return;
	b = gcs_ctr_stats(c->id);
	if (!b) {
		gcs_bridge_respond(type, id, -ENOENT, NULL, "container %s has no cgroup", c->id);
		return;
	}
	cJSON_AddStringToObject(b, "state", state_names[c->state]);
	gcs_bridge_respond(type, id, 0, b, NULL);
}

void gcs_container_delete(uint32_t type, uint64_t id, const cJSON *req)
{
	struct ctr *c = ctr_of(type, id, req);
	bool force = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "force"));
	char err[GCS_CTR_ERRLEN];
	int ret;

	if (!c)
		return;
	if (c->state == CTR_RUNNING && !force) {
		gcs_bridge_respond(type, id, -EBUSY, NULL,
				   "container %s is running (stop it, or delete with force)",
				   c->id);
		return;
	}
	{
		const char *a[] = {"delete", force || c->state == CTR_CREATED ? "--force" : c->id,
				   force || c->state == CTR_CREATED ? c->id : NULL, NULL};

		ret = gcs_crun(c->dir, NULL, a, err, sizeof(err));
	}
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "container %s: %s", c->id, err);
		return;
	}
	watch_drop(c);
	ret = gcs_rootfs_unmount(&c->rootfs, c->dir, err, sizeof(err));
	if (ret) {
		/* crun's part is done: the entry goes, what stays mounted is said */
		gcs_log("container %s: %s", c->id, err);
	}
	for (struct ctr **pp = &ctrs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			nr_ctrs--;
			break;
		}
	gcs_ctr_rmdir(c->dir);
	gcs_log("container %s deleted", c->id);
	free(c);
	if (ret)
		gcs_bridge_respond(type, id, ret, NULL, "container deleted, but %s", err);
	else
		gcs_bridge_respond(type, id, 0, NULL, NULL);
}
