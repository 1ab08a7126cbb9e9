/* The containerd shim's task table (see task_state.h). */
#include "shim/task_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim/ttrpc_server.h"

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void proc_free(struct task_proc *p)
{
	if (!p)
		return;
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p->spec);
	free(p);
}

static struct task_proc *proc_new(const char *exec_id, const char *spec, bool terminal,
				  const char *in, const char *out, const char *err)
{
	struct task_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->status = TASK_CREATED;
	p->terminal = terminal;
	p->exec_id = dup_or_empty(exec_id);
	p->stdin_path = dup_or_empty(in);
	p->stdout_path = dup_or_empty(out);
	p->stderr_path = dup_or_empty(err);
	p->spec = spec ? strdup(spec) : NULL;
	if (!p->exec_id || !p->stdin_path || !p->stdout_path || !p->stderr_path ||
	    (spec && !p->spec)) {
		proc_free(p);
		return NULL;
	}
	return p;
}

int task_new(struct task **out, const char *id, const char *bundle)
{
	struct task *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->id = strdup(id);
	t->bundle = strdup(bundle);
	t->procs = proc_new("", NULL, false, NULL, NULL, NULL);
	if (!t->id || !t->bundle || !t->procs) {
		task_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void task_free(struct task *t)
{
	if (!t)
		return;
	while (t->procs) {
		struct task_proc *p = t->procs;

		t->procs = p->next;
		proc_free(p);
	}
	free(t->id);
	free(t->bundle);
	free(t->share);
	free(t);
}

struct task_proc *task_init_proc(struct task *t)
{
	return t->procs;
}

struct task_proc *task_find(struct task *t, const char *exec_id)
{
	if (!exec_id || !exec_id[0])
		return t->procs;
	for (struct task_proc *p = t->procs->next; p; p = p->next)
		if (!strcmp(p->exec_id, exec_id))
			return p;
	return NULL;
}

struct task_proc *task_find_pid(struct task *t, uint32_t pid)
{
	if (!pid)
		return NULL;
	for (struct task_proc *p = t->procs; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

int task_add_exec(struct task *t, const char *exec_id, const char *spec, bool terminal,
		  const char *in, const char *out, const char *err, struct task_proc **pp)
{
	struct task_proc *p, **tail;

	if (!exec_id || !exec_id[0])
		return -EINVAL;
	if (task_find(t, exec_id))
		return -EEXIST;
	if (t->procs->status != TASK_RUNNING)
		return -EPERM;
	if (t->nr_execs >= TASK_MAX_EXECS)
		return -ENOSPC;
	p = proc_new(exec_id, spec, terminal, in, out, err);
	if (!p)
		return -ENOMEM;
	for (tail = &t->procs; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	t->nr_execs++;
	if (pp)
		*pp = p;
	return 0;
}

int task_proc_started(struct task_proc *p, uint32_t pid)
{
	if (p->status != TASK_CREATED)
		return -EPERM;
	p->status = TASK_RUNNING;
	p->pid = pid;
	return 0;
}

int task_proc_exited(struct task_proc *p, uint32_t exit_status)
{
	if (p->status == TASK_STOPPED)
		return -EALREADY;
	p->status = TASK_STOPPED;
	p->exit_status = exit_status;
	clock_gettime(CLOCK_REALTIME, &p->exited_at);
	return 0;
}

int task_remove_exec(struct task *t, const char *exec_id)
{
	struct task_proc **pp;

	if (!exec_id || !exec_id[0])
		return -EINVAL;
	for (pp = &t->procs->next; *pp; pp = &(*pp)->next) {
		struct task_proc *p = *pp;

		if (strcmp(p->exec_id, exec_id))
			continue;
		if (p->status == TASK_RUNNING)
			return -EPERM;
		*pp = p->next;
		t->nr_execs--;
		proc_free(p);
		return 0;
	}
	return -ENOENT;
}

bool task_init_deletable(struct task *t)
{
	if (t->procs->status == TASK_RUNNING)
		return false;
	for (struct task_proc *p = t->procs->next; p; p = p->next)
		if (p->status == TASK_RUNNING)
			return false;
	return true;
}

enum task_status task_shown_status(const struct task *t, const struct task_proc *p)
{
	return t->paused && p->status == TASK_RUNNING ? TASK_PAUSED : p->status;
}

struct ttrpc_call *task_take_waiters(struct task_proc *p)
{
	struct ttrpc_call *w = p->waiters;

	p->waiters = NULL;
	return w;
}

void task_add_waiter(struct task_proc *p, struct ttrpc_call *call)
{
	call->next = p->waiters;
	p->waiters = call;
}
