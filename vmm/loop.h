/* The control thread's event loop (epoll). Callbacks run on the loop's thread. */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <stdint.h>

struct loop;

typedef void (*loop_fn)(void *opaque, uint32_t events);

int loop_create(struct loop **out) __attribute__((warn_unused_result));
void loop_destroy(struct loop *loop);
/* events: EPOLLIN/EPOLLOUT...; the fd stays owned by the caller. */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
	__attribute__((warn_unused_result));
int loop_mod(struct loop *loop, int fd, uint32_t events);
/* Safe from inside a callback: no callback for fd runs after this returns. */
int loop_del(struct loop *loop, int fd);
/* Runs until loop_stop(); returns 0 or -errno. */
int loop_run(struct loop *loop);
/* Thread-safe; may be called from any thread or a signal-free context. */
void loop_stop(struct loop *loop);

#endif
