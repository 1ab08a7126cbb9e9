/*
 * The stack capture of every thread of this process, written once for the
 * shim (shim/stacks.c, guest.dump_stacks) and the GCS (gcs/stacks.c,
 * dump_stacks): compiled into both, as the bridge codec is.
 *
 * A thread can only walk its own stack, so each one is asked with a queued
 * real-time signal whose value names a slot in a static table and a
 * generation; its handler walks the interrupted context with libunwind into
 * that slot and posts a semaphore. The asking thread waits a bounded time:
 * a thread that never takes the signal (blocked, or asleep in the kernel in
 * an uninterruptible wait) is reported as not answering. Naming the frames
 * is each side's own business, done afterwards on the asking thread.
 *
 * Syscalls (the shim's seccomp filters, docs/seccomp.md): the handler uses
 * rt_sigreturn, futex (sem_post) and what libunwind's local walk needs
 * (mmap/munmap/rt_sigprocmask, mincore, and read/write on its probe pipe); the capture uses openat/getdents64/read on
 * /proc/self/task, rt_tgsigqueueinfo and futex.
 */
#ifndef GCS_STACKS_CORE_H
#define GCS_STACKS_CORE_H

#include <stdint.h>

#define STACKS_CORE_FRAMES 48
#define STACKS_CORE_SLOTS  256 /* threads asked at once; the others are TOO_MANY */

enum stacks_core_result {
	STACKS_CORE_OK,		   /* frames captured */
	STACKS_CORE_NO_ANSWER,	   /* the handler did not run within the bound */
	STACKS_CORE_STUCK,	   /* the handler started but did not finish in time */
	STACKS_CORE_GONE,	   /* the thread ended before it could be signalled */
	STACKS_CORE_KERNEL_WORKER, /* an io_uring worker: kernel code only, takes no signal */
	STACKS_CORE_TOO_MANY,	   /* more threads than slots */
	STACKS_CORE_SEND_FAILED,   /* rt_tgsigqueueinfo failed (errno in err) */
};

struct stacks_core_thread {
	int tid;
	char name[16];
	char state; /* /proc state letter: R, S, D, ... */
	enum stacks_core_result result;
	int err;
	int nframes;
	uintptr_t ip[STACKS_CORE_FRAMES]; /* innermost first: ip[0] interrupted, the rest return */
};

/*
 * Installs the handler for signo (SA_RESTART) and walks once, so that
 * libunwind's lazy setup never first runs inside a handler (nor under a
 * seccomp filter). Once per process: a second call with another signal is
 * -EBUSY, with the same one 0.
 */
int stacks_core_init(int signo) __attribute__((warn_unused_result));

/*
 * Lists the threads of the process (the caller included), asks each, waits
 * at most timeout_ms for the answers (and as much again for handlers already
 * walking). One capture at a time. *threads is malloc'ed (*n of them), *pid
 * the process's. 0, -EINVAL before init, or -errno when the threads cannot be
 * listed.
 */
int stacks_core_capture(int timeout_ms, struct stacks_core_thread **threads, int *n, int *pid)
    __attribute__((warn_unused_result));

#endif
