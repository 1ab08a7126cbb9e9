/*
 * Lifecycle tables and the gate the control protocol consults (lifecycle.h).
 */
#include "shim/lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shim/ctl.h"

#define B(s) LC_BIT(LC_##s)

static const char *const state_names[LC_NR_STATES] = {
    [LC_NOT_CREATED] = "NotCreated", [LC_CREATED] = "Created",	     [LC_RUNNING] = "Running",
    [LC_PAUSED] = "Paused",	     [LC_TERMINATED] = "Terminated", [LC_INVALID] = "Invalid",
};

static const char *const event_names[LC_NR_EVENTS] = {
    [LC_EV_CREATED] = "created",	   [LC_EV_STARTED] = "started",
    [LC_EV_START_FAILED] = "start_failed", [LC_EV_PAUSED] = "paused",
    [LC_EV_RESUMED] = "resumed",	   [LC_EV_GUEST_EXITED] = "guest_exited",
    [LC_EV_TERMINATED] = "terminated",	   [LC_EV_TERMINATE_FAILED] = "terminate_failed",
};

/* Transitions of DESIGN.md; anything not listed is refused. */
static const struct {
	uint32_t from;
	enum lc_event ev;
	enum lc_state to;
} transitions[] = {
    {B(NOT_CREATED), LC_EV_CREATED, LC_CREATED},
    {B(CREATED), LC_EV_STARTED, LC_RUNNING},
    {B(CREATED), LC_EV_START_FAILED, LC_INVALID},
    {B(RUNNING), LC_EV_PAUSED, LC_PAUSED},
    {B(PAUSED), LC_EV_RESUMED, LC_RUNNING},
    {B(RUNNING) | B(PAUSED), LC_EV_GUEST_EXITED, LC_TERMINATED},
    /*
     * Terminating before create (nothing to stop) and again once terminated are
     * accepted so a runtime's cleanup path never has to know the state.
     */
    {B(NOT_CREATED) | LC_LIVE | B(INVALID) | B(TERMINATED), LC_EV_TERMINATED, LC_TERMINATED},
    {LC_LIVE, LC_EV_TERMINATE_FAILED, LC_INVALID},
};

const char *lifecycle_state_name(enum lc_state s)
{
	return (unsigned)s < LC_NR_STATES ? state_names[s] : "?";
}

const char *lifecycle_event_name(enum lc_event ev)
{
	return (unsigned)ev < LC_NR_EVENTS ? event_names[ev] : "?";
}

int lifecycle_next(enum lc_state from, enum lc_event ev)
{
	if ((unsigned)from >= LC_NR_STATES)
		return -1;
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].ev == ev && (transitions[i].from & LC_BIT(from)))
			return transitions[i].to;
	return -1;
}

void lifecycle_init(struct lifecycle *lc)
{
	pthread_mutex_init(&lc->lock, NULL);
	lc->state = LC_NOT_CREATED;
	lc->busy = NULL;
}

void lifecycle_fini(struct lifecycle *lc)
{
	pthread_mutex_destroy(&lc->lock);
}

enum lc_state lifecycle_state(struct lifecycle *lc)
{
	enum lc_state s;

	pthread_mutex_lock(&lc->lock);
	s = lc->state;
	pthread_mutex_unlock(&lc->lock);
	return s;
}

int lifecycle_begin(struct lifecycle *lc, const char *method, uint32_t allowed, uint32_t flags,
		    char *msg, size_t msglen)
{
	int ret = 0;

	pthread_mutex_lock(&lc->lock);
	if (!(allowed & LC_BIT(lc->state))) {
		snprintf(msg, msglen, "%s is not allowed in state %s", method,
			 state_names[lc->state]);
		ret = CTL_ERR_WRONG_STATE;
	} else if ((flags & LC_F_EXCLUSIVE) && lc->busy) {
		snprintf(msg, msglen, "%s refused: %s is in progress (state %s)", method, lc->busy,
			 state_names[lc->state]);
		ret = CTL_ERR_BUSY;
	} else if (flags & LC_F_EXCLUSIVE) {
		lc->busy = method;
	}
	pthread_mutex_unlock(&lc->lock);
	return ret;
}

void lifecycle_done(struct lifecycle *lc, const char *method)
{
	pthread_mutex_lock(&lc->lock);
	if (lc->busy && strcmp(lc->busy, method) == 0)
		lc->busy = NULL;
	pthread_mutex_unlock(&lc->lock);
}

int lifecycle_event(struct lifecycle *lc, enum lc_event ev, enum lc_state *to)
{
	int next;

	pthread_mutex_lock(&lc->lock);
	next = lifecycle_next(lc->state, ev);
	if (next >= 0)
		lc->state = next;
	if (to)
		*to = lc->state;
	pthread_mutex_unlock(&lc->lock);
	return next >= 0 ? 0 : -EINVAL;
}
