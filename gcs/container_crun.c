/*
 * crun off the loop (container.h). crun is the agent's child like any
 * other: the loop goes on serving while it runs, and process.c's reaper,
 * which reaps every child on SIGCHLD, hands it the pids it does not know
 * (gcs_crun_reaped); the job's callback then runs from the loop.
 */
#include "gcs/container.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crun_job {
	pid_t pid;
	char dir[PATH_MAX];
	char verb[16];
	gcs_crun_fn fn;
	void *opaque;
	struct crun_job *next;
};

static struct crun_job *jobs;
static unsigned nr_jobs;

void gcs_crun_start(const char *dir, const int fds[3], const char *const *args, gcs_crun_fn fn,
		    void *opaque)
{
	struct crun_job *j = calloc(1, sizeof(*j));
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
	j->pid = pid;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	snprintf(j->verb, sizeof(j->verb), "%s", args[0]);
	j->fn = fn;
	j->opaque = opaque;
	j->next = jobs;
	jobs = j;
	nr_jobs++;
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
	ret = gcs_crun_result(j->dir, j->verb, status, err, sizeof(err));
	j->fn(j->opaque, ret, ret ? err : NULL);
	free(j);
}

unsigned gcs_crun_running(void)
{
	return nr_jobs;
}
