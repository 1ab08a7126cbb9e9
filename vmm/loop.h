/*
 * An event loop (epoll): the control thread's, and one per I/O thread
 * (vmm/io_thread.h). Callbacks run on the thread that runs loop_run.
 * On a threaded loop (loop_set_threaded: the I/O threads'), loop_add/mod/del
 * may be called from any thread: from another thread while loop_run runs,
 * they are carried out on the loop's thread between two callbacks and return
 * when done (the caller must not hold a lock a callback of this loop takes).
 * On other loops they run where they are called. loop_run_once (tests,
 * shutdown drains) takes no such calls from other threads.
 */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/*
 * The stack buffer a callback reads its fd into. Small on purpose: everything
 * the callback goes on to call runs below that buffer, and the first byte
 * read lands at its deep end, so a 64 KiB buffer made every handler touch
 * stack pages 64 KiB deeper, which then stay resident (docs/vmm.md
 * "Overhead"). Level-triggered callbacks are simply called again for the rest.
 */
#define LOOP_READ_BUF 4096

typedef void (*loop_fn)(void *opaque, uint32_t events);

int loop_create(struct loop **out) __attribute__((warn_unused_result));
/* Before loop_run starts: other threads' table calls wait for the loop's thread (above). */
void loop_set_threaded(struct loop *loop);
bool loop_is_threaded(const struct loop *loop);
void loop_destroy(struct loop *loop);
/* events: EPOLLIN/EPOLLOUT...; the fd stays owned by the caller. */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
    __attribute__((warn_unused_result));
int loop_mod(struct loop *loop, int fd, uint32_t events);
/* Safe from inside a callback (and from other threads on a threaded loop): no callback for
 * fd runs after this returns. */
int loop_del(struct loop *loop, int fd);
/* How many fds loop watches (its own stop and defer fds not counted). Any thread. */
unsigned loop_nr_fds(const struct loop *loop);
/*
 * Runs fn(opaque, 0) once on the loop's thread, as a callback of its own: after
 * the callback now running has returned and released whatever it holds. The
 * way to tear a device down from code that runs inside another device's lock
 * (a bridge answer arrives inside the vsock device's tx drain). Thread-safe.
 * Deferred calls still queued when the loop is destroyed are dropped.
 */
int loop_defer(struct loop *loop, loop_fn fn, void *opaque) __attribute__((warn_unused_result));
/*
 * Waits up to timeout_ms (-1: for ever) for one batch of events and runs its
 * callbacks; returns how many ran, or -errno. For tests and shutdown drains.
 */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Runs until loop_stop(); returns 0 or -errno. */
int loop_run(struct loop *loop);
/* Thread-safe; may be called from any thread or a signal-free context. */
void loop_stop(struct loop *loop);

#endif
