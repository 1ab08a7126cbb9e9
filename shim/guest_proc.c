/*
 * A process in the guest (guest_proc.h): relays, exec, wait, completion.
 */
#include "shim/guest_proc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "vmm/log.h"

#define TAG "proc"

void guest_proc_init(struct guest_proc *p, const struct guest_proc_ops *ops)
{
	*p = (struct guest_proc){.ops = ops, .pid = -1};
}

void guest_proc_drop_relays(struct guest_proc *p)
{
	for (int i = 0; i < 3; i++) {
		stdio_relay_destroy(p->relay[i]);
		p->relay[i] = NULL;
	}
}

static void maybe_finish(struct guest_proc *p)
{
	if (p->finished || !p->exited || p->outputs_open > 0)
		return;
	p->finished = true;
	p->ops->finished(p);
}

void guest_proc_exited(struct guest_proc *p, int exit_code, int signal)
{
	if (p->exited || p->pid <= 0)
		return;
	p->exited = true;
	p->exit_code = exit_code;
	p->signal = signal;
	if (p->ops->exited)
		p->ops->exited(p);
	maybe_finish(p);
}

void guest_proc_abandon_output(struct guest_proc *p)
{
	guest_proc_drop_relays(p);
	p->outputs_open = 0;
	maybe_finish(p);
}

bool guest_proc_busy(const struct guest_proc *p)
{
	return p->exec_pending || p->wait_pending;
}

static void output_done(void *opaque)
{
	struct guest_proc *p = opaque;

	p->outputs_open--;
	maybe_finish(p);
}

static void on_wait_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct guest_proc *p = opaque;

	p->wait_pending = false;
	if (status == 0) {
		const cJSON *code = cJSON_GetObjectItem(body, "exit_code");
		const cJSON *sig = cJSON_GetObjectItem(body, "signal");

		guest_proc_exited(p, cJSON_IsNumber(code) ? code->valueint : -1,
				  cJSON_IsNumber(sig) ? sig->valueint : 0);
	} else if (status != -ECANCELED && status != -ECONNRESET) {
		pr_warn(TAG, "wait for pid %d failed: %s", p->pid, error ? error : "?");
	}
}

static void on_exec_resp(void *opaque, int status, const char *error, const cJSON *body)
{
	struct guest_proc *p = opaque;
	const cJSON *pid = body ? cJSON_GetObjectItem(body, "pid") : NULL;
	cJSON *w;

	p->exec_pending = false;
	/* A pid the guest made up (0, negative, fractional, huge) is as good as none. */
	if (status == 0 && (!cJSON_IsNumber(pid) || pid->valuedouble < 1 ||
			    pid->valuedouble > INT32_MAX || pid->valuedouble != pid->valueint)) {
		status = -EPROTO;
		error = "the guest did not return a valid pid";
	}
	if (status != 0) {
		guest_proc_drop_relays(p);
		p->ops->started(p, status, error ? error : "the guest did not return a pid");
		return;
	}
	p->pid = pid->valueint;
	/* Every process is waited for: the answer carries the exit status. */
	w = cJSON_CreateObject();
	cJSON_AddNumberToObject(w, "pid", p->pid);
	if (bridge_request(p->bridge,
			   BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT), w,
			   on_wait_resp, p) < 0)
		pr_warn(TAG, "cannot wait for pid %d; relying on its exit notification", p->pid);
	else
		p->wait_pending = true;
	p->ops->started(p, 0, NULL);
}

int guest_proc_exec(struct guest_proc *p, struct bridge *b, struct vsock *vs, struct loop *loop,
		    const struct guest_exec *x, char *err, size_t errlen)
{
	static const char *const names[3] = {"stdin", "stdout", "stderr"};
	uint32_t ports[3] = {0, 0, 0};
	int fds[3] = {x->fds[0], x->fds[1], x->fds[2]}, ret;
	cJSON *body;

	p->bridge = b;
	for (int i = 0; i < 3; i++) {
		enum stdio_dir dir = i == 0 ? STDIO_TO_GUEST : STDIO_FROM_GUEST;

		if (fds[i] < 0)
			continue;
		ret = stdio_relay_create(&p->relay[i], vs, loop, fds[i], dir,
					 i ? output_done : NULL, p, &ports[i]);
		fds[i] = -1; /* the relay owns it, or closed it */
		if (ret < 0) {
			snprintf(err, errlen, "%s: no vsock port: %s", names[i], strerror(-ret));
			goto fail;
		}
		if (i)
			p->outputs_open++;
	}
	body = cJSON_CreateObject();
	if (x->argv)
		cJSON_AddItemToObject(body, "argv", cJSON_Duplicate(x->argv, 1));
	for (const cJSON *e = x->extra ? x->extra->child : NULL; e; e = e->next)
		cJSON_AddItemToObject(body, e->string, cJSON_Duplicate(e, 1));
	if (x->env)
		cJSON_AddItemToObject(body, "env", cJSON_Duplicate(x->env, 1));
	if (x->cwd)
		cJSON_AddStringToObject(body, "cwd", x->cwd);
	cJSON_AddNumberToObject(body, "uid", x->uid);
	cJSON_AddNumberToObject(body, "gid", x->gid);
	cJSON_AddBoolToObject(body, "tty", x->tty);
	cJSON_AddNumberToObject(body, "rows", x->rows);
	cJSON_AddNumberToObject(body, "cols", x->cols);
	if (x->tty && x->term && *x->term)
		cJSON_AddStringToObject(body, "term", x->term);
	cJSON_AddNumberToObject(body, "stdin_port", ports[0]);
	cJSON_AddNumberToObject(body, "stdout_port", ports[1]);
	cJSON_AddNumberToObject(body, "stderr_port", ports[2]);
	p->exec_pending = true;
	ret = bridge_request(
	    b,
	    x->type ? x->type
		    : BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC),
	    body, on_exec_resp, p);
	if (ret < 0)
		on_exec_resp(p, ret, "cannot send the request to the guest", NULL);
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	guest_proc_drop_relays(p);
	p->outputs_open = 0;
	return ret;
}

cJSON *guest_proc_signal_body(int pid, int signal)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "pid", pid);
	cJSON_AddNumberToObject(b, "signal", signal);
	return b;
}

cJSON *guest_proc_resize_body(int pid, unsigned rows, unsigned cols)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "pid", pid);
	cJSON_AddNumberToObject(b, "rows", rows);
	cJSON_AddNumberToObject(b, "cols", cols);
	return b;
}
