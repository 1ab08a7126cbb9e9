/* The containerd shim's task table: statuses, execs, transitions refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "shim/task_state.h"
#include "shim/ttrpc_server.h"

static void test_init_lifecycle(void **st)
{
	struct task *t;
	struct task_proc *p;

	assert_int_equal(task_new(&t, "t1", "/b"), 0);
	p = task_init_proc(t);
	assert_ptr_equal(task_find(t, NULL), p);
	assert_ptr_equal(task_find(t, ""), p);
	assert_int_equal(p->status, TASK_CREATED);
	assert_true(task_init_deletable(t)); /* a failed start is deleted from CREATED */
	assert_int_equal(task_proc_started(p, 93), 0);
	assert_int_equal(task_proc_started(p, 94), -EPERM); /* started twice */
	assert_ptr_equal(task_find_pid(t, 93), p);
	assert_null(task_find_pid(t, 0));
	assert_false(task_init_deletable(t));
	assert_int_equal(task_proc_exited(p, 3), 0);
	assert_int_equal(task_proc_exited(p, 4), -EALREADY);
	assert_int_equal(p->exit_status, 3);
	assert_true(p->exited_at.tv_sec > 0);
	assert_true(task_init_deletable(t));
	task_free(t);
}

static void test_execs(void **st)
{
	struct task *t;
	struct task_proc *e, *e2;

	assert_int_equal(task_new(&t, "t1", "/b"), 0);
	/* Exec into a task that is not running. */
	assert_int_equal(task_add_exec(t, "e1", "{}", false, NULL, "/o", NULL, &e), -EPERM);
	assert_int_equal(task_proc_started(task_init_proc(t), 10), 0);
	assert_int_equal(task_add_exec(t, "", "{}", false, NULL, NULL, NULL, &e), -EINVAL);
	assert_int_equal(task_add_exec(t, "e1", "{\"args\":[\"sh\"]}", true, "/i", "/o", NULL, &e),
			 0);
	assert_string_equal(e->stdin_path, "/i");
	assert_string_equal(e->stderr_path, "");
	assert_true(e->terminal);
	assert_int_equal(task_add_exec(t, "e1", "{}", false, NULL, NULL, NULL, &e2), -EEXIST);
	assert_int_equal(task_add_exec(t, "e2", "{}", false, NULL, NULL, NULL, &e2), 0);
	assert_ptr_equal(task_find(t, "e2"), e2);
	assert_null(task_find(t, "e3"));
	assert_int_equal(task_proc_started(e, 20), 0);
	assert_ptr_equal(task_find_pid(t, 20), e);
	assert_false(task_init_deletable(t));
	assert_int_equal(task_remove_exec(t, "e1"), -EPERM); /* running */
	assert_int_equal(task_remove_exec(t, ""), -EINVAL);  /* the init */
	assert_int_equal(task_remove_exec(t, "nope"), -ENOENT);
	assert_int_equal(task_proc_exited(e, 0), 0);
	assert_int_equal(task_remove_exec(t, "e1"), 0);
	assert_int_equal(task_remove_exec(t, "e2"), 0); /* never started */
	assert_int_equal(t->nr_execs, 0);
	task_free(t);
}

static void test_exec_limit(void **st)
{
	struct task *t;
	char id[16];

	assert_int_equal(task_new(&t, "t1", "/b"), 0);
	assert_int_equal(task_proc_started(task_init_proc(t), 10), 0);
	for (int i = 0; i < TASK_MAX_EXECS; i++) {
		snprintf(id, sizeof(id), "e%d", i);
		assert_int_equal(task_add_exec(t, id, NULL, false, NULL, NULL, NULL, NULL), 0);
	}
	assert_int_equal(task_add_exec(t, "one-more", NULL, false, NULL, NULL, NULL, NULL),
			 -ENOSPC);
	task_free(t);
}

static void test_waiters(void **st)
{
	struct task *t;
	struct ttrpc_call a = {0}, b = {0}, *w;

	assert_int_equal(task_new(&t, "t1", "/b"), 0);
	task_add_waiter(task_init_proc(t), &a);
	task_add_waiter(task_init_proc(t), &b);
	w = task_take_waiters(task_init_proc(t));
	assert_ptr_equal(w, &b);
	assert_ptr_equal(w->next, &a);
	assert_null(task_take_waiters(task_init_proc(t)));
	task_free(t);
}

/* A paused task shows its running processes PAUSED; created and stopped ones keep theirs. */
static void test_paused_status(void **st)
{
	struct task *t;
	struct task_proc *init, *x, *y;

	assert_int_equal(task_new(&t, "t1", "/b"), 0);
	init = task_init_proc(t);
	assert_int_equal(task_proc_started(init, 7), 0);
	assert_int_equal(task_add_exec(t, "x", "{}", false, "", "", "", &x), 0);
	assert_int_equal(task_add_exec(t, "y", "{}", false, "", "", "", &y), 0);
	assert_int_equal(task_proc_started(y, 8), 0);
	assert_int_equal(task_proc_exited(y, 0), 0);
	t->paused = true;
	assert_int_equal(task_shown_status(t, init), TASK_PAUSED);
	assert_int_equal(task_shown_status(t, x), TASK_CREATED);
	assert_int_equal(task_shown_status(t, y), TASK_STOPPED);
	assert_int_equal(init->status, TASK_RUNNING); /* stored unchanged */
	t->paused = false;
	assert_int_equal(task_shown_status(t, init), TASK_RUNNING);
	task_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_lifecycle), cmocka_unit_test(test_execs),
	    cmocka_unit_test(test_exec_limit),	   cmocka_unit_test(test_waiters),
	    cmocka_unit_test(test_paused_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
