/*
 * Lifecycle: every method of serve's one table (shim/ctl_serve.c) in every
 * state, every event from every state, the gate released when a request is
 * answered.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"
#include "shim/ctl_serve.h"
#include "shim/lifecycle.h"

/*
 * The expected allowed states, restated independently of the table:
 * N NotCreated, C Created, R Running, P Paused, T Terminated, I Invalid.
 */
static const struct {
	const char *method;
	const char *states;
} expect[] = {
    {"vm.create", "N"},
    {"vm.start", "C"},
    {"vm.pause", "R"},
    {"vm.resume", "P"},
    {"vm.save", "P"},
    {"vm.terminate", "NCRPTI"},
    {"vm.shutdown", "R"},
    {"vm.wait", "CRPTI"},
    {"vm.state", "NCRPTI"},
    {"vm.stats", "CRP"},
    {"vm.capabilities", "NCRPTI"},
    {"vm.update_memory", "R"},
    {"vm.update_cpu_limits", "R"},
    {"scsi.add", "CR"},
    {"scsi.remove", "CR"},
    {"nic.add", "CR"},
    {"nic.remove", "CR"},
    {"nic.update", "R"},
    {"vpmem.add", "CR"},
    {"vpmem.remove", "CR"},
    {"plan9.add", "CR"},
    {"plan9.remove", "CR"},
    {"vsock.update_service", "CR"},
    {"vsock.remove_service", "CR"},
    {"guest.exec", "R"},
    {"guest.dump_stacks", "R"},
    {"guest.properties", "R"},
    {"process.wait", "RP"},
    {"process.signal", "R"},
    {"process.resize", "R"},
    {"container.create", "R"},
    {"container.start", "R"},
    {"container.exec", "R"},
    {"container.signal", "R"},
    {"container.wait", "RP"},
    {"container.delete", "R"},
    {"container.stats", "R"},
    {"container.update", "R"},
    {"container.list", "RP"},
    {"netns.add", "R"},
    {"netns.remove", "R"},
};

static const char letters[LC_NR_STATES] = {
    [LC_NOT_CREATED] = 'N', [LC_CREATED] = 'C',	   [LC_RUNNING] = 'R',
    [LC_PAUSED] = 'P',	    [LC_TERMINATED] = 'T', [LC_INVALID] = 'I',
};

static void force_state(struct lifecycle *lc, enum lc_state s)
{
	lc->state = s;
	lc->busy = NULL;
}

static const struct ctl_method *row(const char *name)
{
	for (const struct ctl_method *m = ctl_serve_methods(); m->name; m++)
		if (!strcmp(m->name, name))
			return m;
	return NULL;
}

static void test_every_method_every_state(void **state)
{
	struct lifecycle lc;
	size_t n = 0;

	lifecycle_init(&lc);
	/* The table has no method the test does not know, and the reverse. */
	for (const struct ctl_method *m = ctl_serve_methods(); m->name; m++, n++)
		assert_non_null(m->fn);
	assert_int_equal(n, sizeof(expect) / sizeof(expect[0]));
	for (size_t i = 0; i < n; i++) {
		const struct ctl_method *m = row(expect[i].method);

		if (!m)
			fail_msg("%s has no row", expect[i].method);
		for (int s = 0; s < LC_NR_STATES; s++) {
			bool ok = strchr(expect[i].states, letters[s]) != NULL;
			char msg[128] = "";
			int ret;

			force_state(&lc, s);
			ret = lifecycle_begin(&lc, m->name, m->allowed, m->flags, msg, sizeof(msg));
			if (ok) {
				if (ret)
					fail_msg("%s refused in %s: %s", expect[i].method,
						 lifecycle_state_name(s), msg);
				lifecycle_done(&lc, expect[i].method);
			} else {
				char want[128];

				if (ret != CTL_ERR_WRONG_STATE)
					fail_msg("%s allowed in %s", expect[i].method,
						 lifecycle_state_name(s));
				/* The message names the method and the state. */
				snprintf(want, sizeof(want), "%s is not allowed in state %s",
					 expect[i].method, lifecycle_state_name(s));
				assert_string_equal(msg, want);
			}
			assert_int_equal(lifecycle_state(&lc), s); /* checking never moves it */
		}
	}
	lifecycle_fini(&lc);
}

/* The methods that change the state are the exclusive ones, and only those. */
static void test_exclusive_rows(void **state)
{
	static const char *const x[] = {"vm.create", "vm.start",  "vm.pause",
					"vm.resume", "vm.save",	  "vm.shutdown"};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		assert_true(row(x[i])->flags & LC_F_EXCLUSIVE);
	for (const struct ctl_method *m = ctl_serve_methods(); m->name; m++)
		n += !!(m->flags & LC_F_EXCLUSIVE);
	assert_int_equal(n, sizeof(x) / sizeof(x[0]));
}

/* Expected transitions, restated: -1 means refused. */
static void test_every_event_every_state(void **state)
{
	static const int want[LC_NR_EVENTS][LC_NR_STATES] = {
	    /*                        N           C           R              P           T I */
	    [LC_EV_CREATED] = {LC_CREATED, -1, -1, -1, -1, -1},
	    [LC_EV_STARTED] = {-1, LC_RUNNING, -1, -1, -1, -1},
	    [LC_EV_START_FAILED] = {-1, LC_INVALID, -1, -1, -1, -1},
	    [LC_EV_PAUSED] = {-1, -1, LC_PAUSED, -1, -1, -1},
	    [LC_EV_RESUMED] = {-1, -1, -1, LC_RUNNING, -1, -1},
	    [LC_EV_GUEST_EXITED] = {-1, -1, LC_TERMINATED, LC_TERMINATED, -1, -1},
	    [LC_EV_TERMINATED] = {LC_TERMINATED, LC_TERMINATED, LC_TERMINATED, LC_TERMINATED,
				  LC_TERMINATED, LC_TERMINATED},
	    [LC_EV_TERMINATE_FAILED] = {-1, LC_INVALID, LC_INVALID, LC_INVALID, -1, -1},
	};
	struct lifecycle lc;

	lifecycle_init(&lc);
	for (int ev = 0; ev < LC_NR_EVENTS; ev++) {
		for (int s = 0; s < LC_NR_STATES; s++) {
			enum lc_state to;
			int ret;

			assert_int_equal(lifecycle_next(s, ev), want[ev][s]);
			force_state(&lc, s);
			ret = lifecycle_event(&lc, ev, &to);
			if (want[ev][s] < 0) {
				assert_int_equal(ret, -EINVAL);
				assert_int_equal(to, s);
			} else {
				assert_int_equal(ret, 0);
				assert_int_equal(to, want[ev][s]);
			}
			assert_int_equal(lifecycle_state(&lc), to);
		}
	}
	lifecycle_fini(&lc);
}

/* The whole happy path and the Invalid escape hatch. */
static void test_paths(void **state)
{
	struct lifecycle lc;

	lifecycle_init(&lc);
	assert_int_equal(lifecycle_state(&lc), LC_NOT_CREATED);
	assert_int_equal(lifecycle_event(&lc, LC_EV_CREATED, NULL), 0);
	assert_int_equal(lifecycle_event(&lc, LC_EV_STARTED, NULL), 0);
	assert_int_equal(lifecycle_event(&lc, LC_EV_PAUSED, NULL), 0);
	assert_int_equal(lifecycle_event(&lc, LC_EV_PAUSED, NULL), -EINVAL);
	assert_int_equal(lifecycle_event(&lc, LC_EV_RESUMED, NULL), 0);
	assert_int_equal(lifecycle_event(&lc, LC_EV_GUEST_EXITED, NULL), 0);
	assert_int_equal(lifecycle_state(&lc), LC_TERMINATED);

	force_state(&lc, LC_CREATED);
	assert_int_equal(lifecycle_event(&lc, LC_EV_START_FAILED, NULL), 0);
	assert_int_equal(lifecycle_state(&lc), LC_INVALID);
	assert_int_equal(lifecycle_event(&lc, LC_EV_STARTED, NULL), -EINVAL);
	assert_int_equal(lifecycle_event(&lc, LC_EV_TERMINATED, NULL), 0);
	assert_int_equal(lifecycle_state(&lc), LC_TERMINATED);
	lifecycle_fini(&lc);
}

static int begin(struct lifecycle *lc, const char *name, char *msg, size_t len)
{
	const struct ctl_method *m = row(name);

	return lifecycle_begin(lc, m->name, m->allowed, m->flags, msg, len);
}

static void test_exclusive(void **state)
{
	struct lifecycle lc;
	char msg[128];

	lifecycle_init(&lc);
	force_state(&lc, LC_CREATED);
	assert_int_equal(begin(&lc, "vm.start", msg, sizeof(msg)), 0);
	/* A second start while the first is in flight is busy, not wrong state. */
	assert_int_equal(begin(&lc, "vm.start", msg, sizeof(msg)), CTL_ERR_BUSY);
	assert_non_null(strstr(msg, "vm.start is in progress"));
	/* Non-exclusive methods still run; terminate can cut the start short. */
	assert_int_equal(begin(&lc, "vm.state", msg, sizeof(msg)), 0);
	assert_int_equal(begin(&lc, "vm.terminate", msg, sizeof(msg)), 0);
	/* Done by another name does not release it. */
	lifecycle_done(&lc, "vm.pause");
	assert_int_equal(begin(&lc, "vm.start", msg, sizeof(msg)), CTL_ERR_BUSY);
	lifecycle_done(&lc, "vm.start");
	assert_int_equal(begin(&lc, "vm.start", msg, sizeof(msg)), 0);
	lifecycle_done(&lc, "vm.start");
	lifecycle_fini(&lc);
}

static void test_names(void **state)
{
	assert_string_equal(lifecycle_state_name(LC_NOT_CREATED), "NotCreated");
	assert_string_equal(lifecycle_state_name(LC_INVALID), "Invalid");
	assert_string_equal(lifecycle_state_name(LC_NR_STATES), "?");
	assert_string_equal(lifecycle_event_name(LC_EV_GUEST_EXITED), "guest_exited");
	for (int s = 0; s < LC_NR_STATES; s++)
		assert_string_not_equal(lifecycle_state_name(s), "?");
	for (int e = 0; e < LC_NR_EVENTS; e++)
		assert_string_not_equal(lifecycle_event_name(e), "?");
}

/* The lifecycle as the control protocol's gate: the parent sees the state named. */
static int gate(void *opaque, const struct ctl_method *m, char *msg, size_t len)
{
	return lifecycle_begin(opaque, m->name, m->allowed, m->flags, msg, len);
}

static void release(void *opaque, const struct ctl_method *m)
{
	if (m->flags & LC_F_EXCLUSIVE)
		lifecycle_done(opaque, m->name);
}

/* Answers without any lifecycle call: the release on answering frees the turn. */
static void h_ok(void *opaque, struct ctl_req *req)
{
	ctl_req_result(req, NULL);
}

static struct ctl_req *held;

static void h_hold(void *opaque, struct ctl_req *req)
{
	held = req;
}

static void test_through_ctl(void **state)
{
	static const struct ctl_method m[] = {
	    {"vm.start", h_ok, LC_BIT(LC_CREATED), LC_F_EXCLUSIVE},
	    {"vm.state", h_ok, LC_ANY, 0},
	    {"vm.pause", h_hold, LC_BIT(LC_CREATED), LC_F_EXCLUSIVE},
	    {NULL}};
	struct lifecycle lc;
	struct ctl *ctl;
	int fds[2];
	char buf[512];
	ssize_t n;
	const char *l = "{\"id\":1,\"method\":\"vm.start\"}\n";

	lifecycle_init(&lc);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(
	    ctl_create(
		&ctl,
		&(struct ctl_config){.out_fd = fds[1],
				     .methods = m,
				     .opaque = &lc,
				     .gate = gate,
				     .release = release}),
	    0);
	ctl_feed(ctl, l, strlen(l));
	n = read(fds[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "{\"id\":1,\"error\":{\"code\":-32001,\"message\":\"vm.start is "
				 "not allowed in state NotCreated\"}}\n");
	force_state(&lc, LC_CREATED);
	ctl_feed(ctl, l, strlen(l));
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n] = 0;
	assert_string_equal(buf, "{\"id\":1,\"result\":{}}\n");
	/* Answered, released: the same exclusive method runs again. */
	ctl_feed(ctl, l, strlen(l));
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n] = 0;
	assert_string_equal(buf, "{\"id\":1,\"result\":{}}\n");
	/* One held unanswered keeps every other exclusive one out, until its answer. */
	l = "{\"id\":2,\"method\":\"vm.pause\"}\n";
	ctl_feed(ctl, l, strlen(l));
	assert_non_null(held);
	l = "{\"id\":3,\"method\":\"vm.start\"}\n";
	ctl_feed(ctl, l, strlen(l));
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n] = 0;
	assert_non_null(strstr(buf, "-32004"));
	ctl_req_error(held, CTL_ERR_HOST, "no");
	n = read(fds[0], buf, sizeof(buf) - 1);
	ctl_feed(ctl, l, strlen(l));
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n] = 0;
	assert_string_equal(buf, "{\"id\":3,\"result\":{}}\n");
	ctl_destroy(ctl);
	close(fds[0]);
	close(fds[1]);
	lifecycle_fini(&lc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_method_every_state),
	    cmocka_unit_test(test_exclusive_rows),
	    cmocka_unit_test(test_every_event_every_state),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_exclusive),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_through_ctl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
