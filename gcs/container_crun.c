/*
 * Children off the loop (container.h): crun's runs, and mke2fs formatting a
 * scratch (container_layers.c). Each is the agent's child like any other:
 * the loop goes on serving while it runs, and process.c's reaper, which
 * reaps every child on SIGCHLD, hands it the pids it does not know
 * (gcs_crun_reaped); the job's callback then runs from the loop, exactly
 * once, whether the child ended, failed or was killed.
 */
#include "gcs/container.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

struct crun_job {
	pid_t pid;
	char dir[PATH_MAX];
	char what[64]; /* crun's verb, or the device mke2fs formats */
	gcs_job_result result;
	gcs_crun_fn fn;
	void *opaque;
	struct crun_job *next;
};

static struct crun_job *jobs;
static unsigned nr_jobs;

static struct crun_job *job_new(const char *dir, const char *what, gcs_job_result result,
				gcs_crun_fn fn, void *opaque)
{
	struct crun_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	snprintf(j->what, sizeof(j->what), "%s", what);
	j->result = result;
	j->fn = fn;
	j->opaque = opaque;
	return j;
}

static void job_link(struct crun_job *j, pid_t pid)
{
	j->pid = pid;
	j->next = jobs;
	jobs = j;
	nr_jobs++;
}

int gcs_job_watch(pid_t pid, const char *dir, const char *what, gcs_job_result result,
		  gcs_crun_fn fn, void *opaque)
{
	struct crun_job *j = job_new(dir, what, result, fn, opaque);

	if (!j)
		return -ENOMEM;
	job_link(j, pid);
	return 0;
}

pid_t gcs_job_find(const char *what)
{
	for (struct crun_job *j = jobs; j; j = j->next)
		if (!strcmp(j->what, what))
			return j->pid;
	return 0;
}

static struct crun_job *job_of(pid_t pid)
{
	struct crun_job *j = jobs;

	while (j && j->pid != pid)
		j = j->next;
	return j;
}

void gcs_job_cancel(pid_t pid)
{
	/* Not reaped yet, so the number is still this child's (a zombie at worst). */
	if (pid > 0 && job_of(pid))
		kill(pid, SIGKILL);
}

void gcs_job_stop(pid_t pid)
{
	int status;

	if (pid <= 0 || !job_of(pid))
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return; /* already reaped elsewhere: cannot happen on the loop */
	gcs_crun_reaped(pid, status);
}

void gcs_crun_start(const char *dir, const int fds[3], const char *const *args, gcs_crun_fn fn,
		    void *opaque)
{
	/* The job first: a crun that started is never left unwatched. */
	struct crun_job *j = job_new(dir, args[0], gcs_crun_result, fn, opaque);
	char err[GCS_CTR_ERRLEN];
	pid_t pid;

	if (!j) {
		fn(opaque, -ENOMEM, "out of memory");
		return;
	}
	pid = gcs_crun_spawn(dir, fds, args, err, sizeof(err));
	if (pid < 0) {
		free(j);
		fn(opaque, pid, err);
		return;
	}
	job_link(j, pid);
}

/* The last exits of children nobody knew (gcs_crun_reaped). */
#define MAX_UNCLAIMED 64

static struct {
	pid_t pid;
	int status;
} unclaimed[MAX_UNCLAIMED];
static unsigned unclaimed_next;

bool gcs_crun_exit_taken(pid_t pid, int *status)
{
	for (unsigned i = 0; i < MAX_UNCLAIMED; i++) {
		if (unclaimed[i].pid != pid)
			continue;
		unclaimed[i].pid = 0;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			return false; /* the number was taken again: that exit was another's */
		*status = unclaimed[i].status;
		return true;
	}
	return false;
}

void gcs_crun_reaped(pid_t pid, int status)
{
	char err[GCS_CTR_ERRLEN] = "";
	struct crun_job *j = NULL;
	int ret;

	for (struct crun_job **pp = &jobs; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid) {
			j = *pp;
			*pp = j->next;
			nr_jobs--;
			break;
		}
	if (!j) {
		unclaimed[unclaimed_next % MAX_UNCLAIMED].pid = pid;
		unclaimed[unclaimed_next % MAX_UNCLAIMED].status = status;
		unclaimed_next++;
		return;
	}
	ret = j->result(j->dir, j->what, status, err, sizeof(err));
	j->fn(j->opaque, ret, ret ? err : NULL);
	free(j);
}

unsigned gcs_crun_running(void)
{
	return nr_jobs;
}
