/*
 * Backtraces of every thread of the shim process (guest.dump_stacks).
 *
 * Each thread is sent STACKS_SIGNAL (a real-time signal, queued with
 * rt_tgsigqueueinfo); its handler walks its own stack with libunwind into a
 * preallocated slot and posts a semaphore. The caller waits a bounded time:
 * a thread that blocks the signal (or never returns to user space) is
 * reported as not answering. Symbols are resolved afterwards, on the calling
 * thread, from the ELF files themselves (stacks.c says why not in the handler).
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

#define STACKS_MAX_FRAMES  48
#define STACKS_MAX_THREADS 256
#define STACKS_NAME_MAX	   96

/* Why a thread has no frames (struct stacks_thread.status). */
enum stacks_status {
	STACKS_OK,	      /* frames captured */
	STACKS_NO_ANSWER,     /* the handler did not run within the bound (signal blocked?) */
	STACKS_STUCK,	      /* the handler started but did not finish in time */
	STACKS_GONE,	      /* the thread ended before it could be signalled */
	STACKS_KERNEL_WORKER, /* an io_uring worker: kernel code only, takes no signal */
	STACKS_TOO_MANY,      /* over STACKS_MAX_THREADS */
	STACKS_SEND_FAILED,   /* rt_tgsigqueueinfo failed (errno in err) */
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
