/*
 * `uvm-shim serve`: processes started by guest.exec, and process.wait,
 * process.signal, process.resize on them. The table keeps a record after the
 * process is over so that a later process.wait still gets its status; each
 * record is a struct guest_proc (shim/guest_proc.c: relays, exec, exit) plus
 * the requests waiting on it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "shim/ctl.h"
#include "shim/guest_proc.h"
#include "shim/serve_priv.h"
#include "vmm/util.h"

#define MAX_EXEC_ARGS 4096

/* ---- the table ---------------------------------------------------------------------- */

static struct sproc *sproc_of(struct guest_proc *gp)
{
	return container_of(gp, struct sproc, gp);
}

struct sproc *serve_proc_find(struct serve *s, int pid)
{
	struct sproc *p = s->procs;

	while (p && p->gp.pid != pid)
		p = p->next;
	return p;
}

cJSON *serve_proc_result(const struct sproc *p)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "pid", p->gp.pid);
	cJSON_AddNumberToObject(r, "exit_code", p->gp.exit_code);
	cJSON_AddNumberToObject(r, "signal", p->gp.signal);
	return r;
}

/* The exit is known and the output is all relayed: tell everyone who asked. */
static void proc_finished(struct guest_proc *gp)
{
	struct sproc *p = sproc_of(gp);
	struct ctl_req *req;

	ctl_event(p->s->ctl, "process.exited", serve_proc_result(p));
	while ((req = serve_req_list_pop(&p->waiters)))
		ctl_req_result(req, serve_proc_result(p));
	guest_proc_drop_relays(gp);
	if (p->hooks && p->hooks->finished)
		p->hooks->finished(p);
}

/* The VM is gone: nobody will exit any more. */
void serve_procs_cancel_all(struct serve *s)
{
	for (struct sproc *p = s->procs; p; p = p->next) {
		struct ctl_req *req;

		while ((req = serve_req_list_pop(&p->waiters)))
			ctl_req_error(req, CTL_ERR_CANCELLED,
				      "the VM ended before process %d exited", p->gp.pid);
		guest_proc_drop_relays(&p->gp);
	}
}

void serve_procs_free(struct serve *s)
{
	serve_procs_cancel_all(s);
	while (s->procs) {
		struct sproc *p = s->procs;

		s->procs = p->next;
		free(p);
	}
	s->nr_procs = 0;
}

/* Old reported records go first when the table is full (never while a request is out). */
void serve_procs_trim(struct serve *s, unsigned max)
{
	struct sproc **pp = &s->procs, **oldest = NULL;

	if (s->nr_procs < max)
		return;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->gp.finished && !guest_proc_busy(&(*pp)->gp))
			oldest = pp; /* the list is newest first: the last match is the oldest */
	if (oldest) {
		struct sproc *p = *oldest;

		*oldest = p->next;
		free(p);
		s->nr_procs--;
	}
}

void serve_proc_unlink_free(struct serve *s, struct sproc *p)
{
	for (struct sproc **pp = &s->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			s->nr_procs--;
			break;
		}
	free(p);
}

/*
 * The process notification can beat the wait response: either one settles it.
 * The pid is the guest's word: -1 and 0 would match records whose exec is
 * still unanswered (their pid is -1 until then).
 */
void serve_on_process_exited(void *opaque, int pid, int code, int sig)
{
	struct sproc *p = pid > 0 ? serve_proc_find(opaque, pid) : NULL;

	if (p)
		guest_proc_exited(&p->gp, code, sig);
}

static void proc_started(struct guest_proc *gp, int status, const char *error)
{
	struct sproc *p = sproc_of(gp);
	struct ctl_req *req = p->exec_req;
	cJSON *r;

	p->exec_req = NULL;
	if (p->hooks) {
		p->hooks->started(p, req, status, error);
	} else if (status != 0) {
		ctl_req_error(req, serve_guest_err_code(status), "%s", error);
	} else {
		r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "pid", gp->pid);
		ctl_req_result(req, r);
	}
	if (status != 0)
		serve_proc_unlink_free(p->s, p);
}

const struct guest_proc_ops serve_proc_ops = {
    .started = proc_started,
    .finished = proc_finished,
};

/* ---- methods ------------------------------------------------------------------------ */

void serve_guest_exec(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	const cJSON *argv, *env = NULL;
	const char *cwd = NULL, *paths[3] = {NULL, NULL, NULL};
	char err[CTL_ERRLEN];
	size_t argc, envc;
	uint64_t uid = 0, gid = 0, rows = 24, cols = 80;
	bool tty = false;
	struct guest_exec x;

	if (ctl_param_strv(req->params, "argv", true, MAX_EXEC_ARGS, &argv, &argc, err) ||
	    ctl_param_strv(req->params, "env", false, MAX_EXEC_ARGS, &env, &envc, err) == -EINVAL ||
	    ctl_param_str(req->params, "cwd", false, &cwd, err) == -EINVAL ||
	    ctl_param_u64(req->params, "uid", false, 0, UINT32_MAX - 1, &uid, err) == -EINVAL ||
	    ctl_param_u64(req->params, "gid", false, 0, UINT32_MAX - 1, &gid, err) == -EINVAL ||
	    ctl_param_bool(req->params, "tty", false, &tty, err) == -EINVAL ||
	    ctl_param_u64(req->params, "rows", false, 1, 65535, &rows, err) == -EINVAL ||
	    ctl_param_u64(req->params, "cols", false, 1, 65535, &cols, err) == -EINVAL ||
	    ctl_param_str(req->params, "stdin", false, &paths[0], err) == -EINVAL ||
	    ctl_param_str(req->params, "stdout", false, &paths[1], err) == -EINVAL ||
	    ctl_param_str(req->params, "stderr", false, &paths[2], err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	if (argc == 0) {
		ctl_req_bad_params(req, "params.argv: must name a program");
		return;
	}
	if (tty && paths[2]) {
		ctl_req_bad_params(req,
				   "params.stderr: a tty process has one output stream (stdout)");
		return;
	}
	if (!bridge_ready(s->bridge)) {
		ctl_req_error(req, CTL_ERR_GUEST, "the guest agent is not connected");
		return;
	}
	x = (struct guest_exec){.argv = argv,
				.env = env,
				.cwd = cwd,
				.uid = uid,
				.gid = gid,
				.tty = tty,
				.rows = rows,
				.cols = cols};
	serve_proc_spawn(s, req, &x, paths, NULL, NULL);
}

int serve_proc_spawn(struct serve *s, struct ctl_req *req, struct guest_exec *x,
		     const char *const paths[3], const struct sproc_hooks *hooks, void *owner)
{
	static const char *const names[3] = {"stdin", "stdout", "stderr"};
	char err[CTL_ERRLEN];
	struct sproc *p;
	int ret;

	for (int i = 0; i < 3; i++)
		x->fds[i] = -1;
	for (int i = 0; i < 3; i++) {
		if (!paths[i])
			continue;
		x->fds[i] = stdio_open_host(paths[i], i == 0 ? STDIO_TO_GUEST : STDIO_FROM_GUEST);
		if (x->fds[i] < 0) {
			ctl_req_error(req, CTL_ERR_HOST, "%s %s: %s", names[i], paths[i],
				      strerror(-x->fds[i]));
			goto fail;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		ctl_req_error(req, CTL_ERR_INTERNAL, "out of memory");
		goto fail;
	}
	p->s = s;
	p->exec_req = req;
	p->hooks = hooks;
	p->owner = owner;
	guest_proc_init(&p->gp, &serve_proc_ops);
	serve_procs_trim(s, SERVE_MAX_PROCS_KEPT);
	p->next = s->procs;
	s->procs = p;
	s->nr_procs++;
	/* From here proc_started answers req (and frees p if the exec failed). */
	ret = guest_proc_exec(&p->gp, s->bridge, s->vs, s->loop, x, err, sizeof(err));
	if (ret < 0) {
		ctl_req_error(req, CTL_ERR_HOST, "%s", err);
		serve_proc_unlink_free(s, p);
		return -1;
	}
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		if (x->fds[i] >= 0)
			close(x->fds[i]);
	return -1;
}

static int known_pid(struct serve *s, struct ctl_req *req, uint64_t *pid)
{
	char err[CTL_ERRLEN];

	if (ctl_param_u64(req->params, "pid", true, 1, INT32_MAX, pid, err)) {
		ctl_req_bad_params(req, err);
		return -1;
	}
	if (!serve_proc_find(s, (int)*pid)) {
		ctl_req_error(req, CTL_ERR_NOT_FOUND, "no process %llu started by guest.exec",
			      (unsigned long long)*pid);
		return -1;
	}
	return 0;
}

void serve_process_wait(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	struct sproc *p;
	uint64_t pid;

	if (known_pid(s, req, &pid))
		return;
	p = serve_proc_find(s, (int)pid);
	if (p->gp.finished)
		ctl_req_result(req, serve_proc_result(p));
	else
		serve_req_list_add(&p->waiters, req);
}

void serve_process_signal(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t pid, sig;
	cJSON *b;

	if (known_pid(s, req, &pid))
		return;
	if (ctl_param_u64(req->params, "signal", true, 1, 64, &sig, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	b = guest_proc_signal_body((int)pid, (int)sig);
	serve_forward(s, req, BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL, b);
}

void serve_process_resize(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;
	char err[CTL_ERRLEN];
	uint64_t pid, rows, cols;
	cJSON *b;

	if (known_pid(s, req, &pid))
		return;
	if (ctl_param_u64(req->params, "rows", true, 1, 65535, &rows, err) ||
	    ctl_param_u64(req->params, "cols", true, 1, 65535, &cols, err)) {
		ctl_req_bad_params(req, err);
		return;
	}
	b = guest_proc_resize_body((int)pid, rows, cols);
	serve_forward(s, req, BRIDGE_CAT_PROCESS, BRIDGE_RPC_RESIZE, b);
}
