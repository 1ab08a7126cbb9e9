/*
 * The VM's lifecycle (DESIGN.md "Lifecycle"): its states, the events that move
 * it between them, and for each control method the states it is allowed in.
 * One table of each, so the documentation, the gate and the tests agree.
 */
#ifndef SHIM_LIFECYCLE_H
#define SHIM_LIFECYCLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum lc_state {
	LC_NOT_CREATED,
	LC_CREATED,
	LC_RUNNING,
	LC_PAUSED,
	LC_TERMINATED,
	LC_INVALID,
	LC_NR_STATES,
};

#define LC_BIT(s) (1u << (s))
#define LC_ANY	  ((1u << LC_NR_STATES) - 1)
/* States in which a VM object exists and has not been torn down. */
#define LC_LIVE (LC_BIT(LC_CREATED) | LC_BIT(LC_RUNNING) | LC_BIT(LC_PAUSED))

/* What happened; the result of an operation, or the guest acting on its own. */
enum lc_event {
	LC_EV_CREATED,		/* vm.create succeeded */
	LC_EV_STARTED,		/* vm.start: guest running and GCS negotiated */
	LC_EV_START_FAILED,	/* vm.start failed after the guest began running */
	LC_EV_PAUSED,		/* vm.pause succeeded */
	LC_EV_RESUMED,		/* vm.resume succeeded */
	LC_EV_GUEST_EXITED,	/* the guest powered off, rebooted, crashed */
	LC_EV_TERMINATED,	/* vm.terminate (or teardown at exit) succeeded */
	LC_EV_TERMINATE_FAILED, /* vm.terminate could not stop the VM */
	LC_NR_EVENTS,
};

/* Method flags. */
#define LC_F_EXCLUSIVE 0x1 /* changes the state: one such method in flight at a time */

struct lc_method {
	const char *name;
	uint32_t allowed; /* LC_BIT mask */
	uint32_t flags;
};

struct lifecycle {
	pthread_mutex_t lock;
	enum lc_state state;
	const char *busy; /* the LC_F_EXCLUSIVE method in flight, or NULL */
};

void lifecycle_init(struct lifecycle *lc);
void lifecycle_fini(struct lifecycle *lc);

const char *lifecycle_state_name(enum lc_state s);
const char *lifecycle_event_name(enum lc_event ev);
enum lc_state lifecycle_state(struct lifecycle *lc);

/* The row of method, or NULL when the table has none. */
const struct lc_method *lifecycle_method(const char *name);
/* The whole table (for docs and tests). */
const struct lc_method *lifecycle_methods(size_t *count);

/*
 * Whether method may start now. Returns 0, or a ctl error code (-32001 wrong
 * state, -32004 busy, -32603 no row) with a message naming the state. On 0 for
 * an LC_F_EXCLUSIVE method, marks it in flight: the caller must call
 * lifecycle_done() once that method has answered.
 */
int lifecycle_begin(struct lifecycle *lc, const char *method, char *msg, size_t msglen);
void lifecycle_done(struct lifecycle *lc, const char *method);

/*
 * Applies ev. Returns 0 and the new state in *to (may be NULL), or -EINVAL when
 * ev cannot happen in the current state (the state is unchanged).
 */
int lifecycle_event(struct lifecycle *lc, enum lc_event ev, enum lc_state *to);
/* The pure transition function: the target state, or -1 when not allowed. */
int lifecycle_next(enum lc_state from, enum lc_event ev);

#endif
