/*
 * Backtraces of every thread of the shim process (guest.dump_stacks).
 *
 * The capture is the GCS's too (gcs/stacks_core.h): each thread is sent
 * stacks_signal() (a real-time signal, queued with rt_tgsigqueueinfo); its
 * handler walks its own stack with libunwind into a preallocated slot and
 * posts a semaphore. The caller waits a bounded time: a thread that blocks
 * the signal (or never returns to user space) is reported as not answering.
 * Symbols are resolved afterwards, on the calling thread, from the ELF files
 * themselves (stacks.c says why not in the handler).
 *
 * Under the sandbox (docs/seccomp.md): call stacks_init() before the filters
 * go on (it installs the handler and warms libunwind up); the handler needs
 * rt_sigreturn and futex (vCPU list), the capture rt_tgsigqueueinfo and
 * getdents64 (loop list).
 */
#ifndef SHIM_STACKS_H
#define SHIM_STACKS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "gcs/stacks_core.h"

#define STACKS_MAX_FRAMES  STACKS_CORE_FRAMES
#define STACKS_MAX_THREADS STACKS_CORE_SLOTS
#define STACKS_NAME_MAX	   96

/* Why a thread has no frames (struct stacks_thread.status): the core's results. */
enum stacks_status {
	STACKS_OK = STACKS_CORE_OK,			  /* frames captured */
	STACKS_NO_ANSWER = STACKS_CORE_NO_ANSWER,	  /* no handler within the bound */
	STACKS_STUCK = STACKS_CORE_STUCK,		  /* the handler did not finish in time */
	STACKS_GONE = STACKS_CORE_GONE,			  /* ended before it could be signalled */
	STACKS_KERNEL_WORKER = STACKS_CORE_KERNEL_WORKER, /* io_uring worker: no user stack */
	STACKS_TOO_MANY = STACKS_CORE_TOO_MANY,		  /* over STACKS_MAX_THREADS */
	STACKS_SEND_FAILED = STACKS_CORE_SEND_FAILED, /* rt_tgsigqueueinfo failed (errno in err) */
};

struct stacks_frame {
	uintptr_t ip;
	uintptr_t offset;		/* ip - start of function (when function is known) */
	char function[STACKS_NAME_MAX]; /* "" when unknown */
	char object[64];		/* basename of the ELF file, "" when unknown */
};

struct stacks_thread {
	int tid;
	char name[16];
	char state; /* /proc state letter: R, S, D, ... */
	enum stacks_status status;
	int err; /* errno for STACKS_SEND_FAILED */
	int nframes;
	struct stacks_frame frames[STACKS_MAX_FRAMES];
};

struct stacks {
	int pid;
	int timeout_ms;
	int nthreads;
	struct stacks_thread *threads;
};

/* The real-time signal used to ask a thread for its stack (SIGRTMIN + 4). */
int stacks_signal(void);

/*
 * Installs the handler (SA_RESTART: interrupted syscalls elsewhere resume)
 * and unwinds once so libunwind's lazy setup does not first run inside a
 * filtered thread's handler. Call once, before the seccomp filters.
 */
int stacks_init(void) __attribute__((warn_unused_result));

/*
 * Captures and symbolizes every thread of the process, the caller included.
 * Waits at most timeout_ms for the answers (plus up to timeout_ms for
 * handlers already running). One capture at a time (serialized inside).
 */
int stacks_capture(struct stacks **out, int timeout_ms) __attribute__((warn_unused_result));
void stacks_free(struct stacks *st);

/* "thread 812 (main) S:\n  #0 0x... epoll_wait+0x1a (libc.so.6)\n..." (malloc'ed). */
char *stacks_format(const struct stacks *st);
/* [{"tid":..,"name":..,"state":..,"answered":..,"frames":[..]}, ...] */
cJSON *stacks_to_json(const struct stacks *st);
const char *stacks_status_text(enum stacks_status s);

#endif
