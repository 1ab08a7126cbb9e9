/*
 * Threads with their stack sized to what they run, not glibc's default of
 * RLIMIT_STACK (8 MiB) each: a host runs thousands of VMs, each with a thread
 * per vCPU plus device workers (docs/vmm.md "Overhead"). Only touched stack
 * pages are resident either way; the saving is address space and commit.
 */
#ifndef VMM_THREAD_H
#define VMM_THREAD_H

#include <pthread.h>
#include <stddef.h>

/*
 * vCPU threads and 9p workers: device emulation, log lines (2 KiB buffers),
 * libc file calls with PATH_MAX names, and guest.dump_stacks' libunwind walk
 * in a signal handler. Measured need is tens of KiB; 256 KiB leaves margin.
 */
#define THREAD_STACK_WORKER (256u << 10)
/* A thread that makes a few system calls and may log (vm.c's ram-slots). */
#define THREAD_STACK_SMALL (64u << 10)

/* pthread_create with that stack size (4x under ASan and TSan, whose frames are larger). */
int thread_create(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg)
	__attribute__((warn_unused_result));

/*
 * The process's malloc settings, made before anything is allocated:
 * - a fixed mmap threshold (128 KiB), so that big buffers (a file read whole,
 *   a long control line, a vsock ring grown under a burst) get mappings of
 *   their own that go back to the kernel when freed. glibc would otherwise
 *   raise the threshold to the size of each such buffer freed (up to 32 MiB)
 *   and serve the next ones from the heap, whose pages stay resident below
 *   anything still allocated above them;
 * - one malloc arena: each thread that allocates would otherwise get an arena
 *   of its own (up to 8 per core) that keeps its touched pages. The threads
 *   that allocate on a hot path (9p workers) mostly hit their thread cache.
 * Figures: docs/vmm.md "Overhead".
 */
void thread_heap_configure(void);

#endif
