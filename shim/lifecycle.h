/*
 * The VM's lifecycle (DESIGN.md "Lifecycle"): its states, the events that move
 * them, and the gate a control request passes. The states each method may run
 * in are columns of the one method table (shim/ctl_serve.c, struct ctl_method).
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

/* Method flags (struct ctl_method.flags). */
#define LC_F_EXCLUSIVE 0x1 /* changes the state: one such method in flight at a time */
#define LC_F_LONG      0x2 /* answers later (a guest round trip, the VM's exit): documentation */

/* Shorthands for method rows. */
#define LC_UP	   LC_BIT(LC_RUNNING)
#define LC_NOT_NEW (LC_ANY & ~LC_BIT(LC_NOT_CREATED))
#define LC_HOTPLUG (LC_BIT(LC_CREATED) | LC_UP) /* cold before start, hot while running */

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


/*
 * Whether method (allowed: LC_BIT mask of states) may start now. Returns 0, or
 * a ctl error code (-32001 wrong state, -32004 busy) with a message naming the
 * state. On 0 with LC_F_EXCLUSIVE, marks it in flight until lifecycle_done()
 * (serve calls it when the request is answered). method must outlive that.
 */
int lifecycle_begin(struct lifecycle *lc, const char *method, uint32_t allowed, uint32_t flags,
		    char *msg, size_t msglen);
void lifecycle_done(struct lifecycle *lc, const char *method);

/*
 * Applies ev. Returns 0 and the new state in *to (may be NULL), or -EINVAL when
 * ev cannot happen in the current state (the state is unchanged).
 */
int lifecycle_event(struct lifecycle *lc, enum lc_event ev, enum lc_state *to);
/* The pure transition function: the target state, or -1 when not allowed. */
int lifecycle_next(enum lc_state from, enum lc_event ev);

#endif
