/*
 * I/O threads: a thread running an event loop of its own, for devices whose
 * queue work must not wait behind the control protocol, vsock or another
 * device (a disk's kicks, completions and polling). The machine makes the
 * set before the VM runs (the sandboxed control thread may not create
 * threads) and hands each new device, cold-plugged or hot-added, the loop
 * of the least busy thread: a thread of its own while one is idle
 * (docs/architecture.md "Threads").
 */
#ifndef VMM_IO_THREAD_H
#define VMM_IO_THREAD_H

#include "vmm/loop.h"

#define IO_THREADS_MAX 8

struct io_threads;

/*
 * Makes n (1..IO_THREADS_MAX) loops; their threads start with
 * io_threads_start. Devices may be added to the loops before.
 */
int io_threads_create(int n, struct io_threads **out) __attribute__((warn_unused_result));
/*
 * Starts the threads ("io0", "io1", ...). Each runs init(opaque) first (its
 * sandbox) and serves nothing when that fails; returns the first failure.
 */
int io_threads_start(struct io_threads *t, int (*init)(void *opaque), void *opaque)
    __attribute__((warn_unused_result));
/*
 * The loop for the next device: the one watching the fewest fds (the first
 * such), so each device gets an idle thread while there is one, and a
 * removed device's thread (its fds gone) is the next one handed out.
 * Devices add their fds when they are created, so call it, then create.
 */
struct loop *io_threads_pick(struct io_threads *t);
/*
 * What a manager hands a device it plugs: the next loop of t, or fallback when
 * there is no set (unit tests run the devices on their own loop, or none).
 */
struct loop *io_threads_pick_or(struct io_threads *t, struct loop *fallback);
int io_threads_count(const struct io_threads *t);
/* Stops and joins the threads, frees the loops. Devices must be gone. NULL: no-op. */
void io_threads_destroy(struct io_threads *t);

#endif
