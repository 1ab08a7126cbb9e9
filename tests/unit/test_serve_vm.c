/*
 * serve's VM side (shim/serve_vm.c) without a VM: the exit words, and the
 * vm.* methods that answer from the state alone (vm.state, vm.stats,
 * vm.wait, vm.terminate). Booting is for tests/e2e/test_serve.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"
#include "shim/lifecycle.h"
#include "shim/serve_priv.h"

static void test_exit_word(void **state)
{
	assert_string_equal(serve_exit_word(VM_EXIT_RESET), "reset");
	assert_string_equal(serve_exit_word(VM_EXIT_POWEROFF), "poweroff");
	assert_string_equal(serve_exit_word(VM_EXIT_TRIPLE_FAULT), "triple_fault");
	assert_string_equal(serve_exit_word(VM_EXIT_PANIC), "panic");
	assert_string_equal(serve_exit_word(VM_EXIT_TERMINATED), "terminated");
	assert_string_equal(serve_exit_word(VM_EXIT_ERROR), "error");
	assert_string_equal(serve_exit_word((enum vm_exit)12345), "unknown");
}

/* ---- methods on a serve with no VM ----------------------------------------------- */

static const struct ctl_method methods[] = {
    {"vm.create", serve_vm_create, 0, 0},
    {"vm.state", serve_vm_state, 0, 0},
    {"vm.stats", serve_vm_stats, 0, 0},
    {"vm.wait", serve_vm_wait, 0, 0},
    {"vm.terminate", serve_vm_terminate, 0, 0},
    {NULL, NULL, 0, 0},
};

struct fixture {
	struct serve s;
	int out[2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ctl_config cfg = {.methods = methods};

	assert_non_null(f);
	assert_int_equal(pipe2(f->out, O_CLOEXEC | O_NONBLOCK), 0);
	cfg.out_fd = f->out[1];
	cfg.opaque = &f->s;
	assert_int_equal(ctl_create(&f->s.ctl, &cfg), 0);
	f->s.sig_fd = f->s.timer_fd = -1;
	console_sink_fd(&f->s.console, -1);
	lifecycle_init(&f->s.lc);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ctl_destroy(f->s.ctl);
	lifecycle_fini(&f->s.lc);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

/* Sends one request and returns everything written back. */
static const char *call(struct fixture *f, const char *line)
{
	static char buf[4096];
	ssize_t n;

	ctl_feed(f->s.ctl, line, strlen(line));
	n = read(f->out[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void test_state_and_stats(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(call(f, "{\"id\":1,\"method\":\"vm.state\"}\n"),
			    "{\"id\":1,\"result\":{\"state\":\"NotCreated\"}}\n");
	/* no vsock device yet: no "vsock" object */
	assert_string_equal(call(f, "{\"id\":2,\"method\":\"vm.stats\"}\n"),
			    "{\"id\":2,\"result\":{\"state\":\"NotCreated\",\"cpus\":0,"
			    "\"memory_mib\":0,\"uptime_ms\":0}}\n");
}

/* Terminate with nothing to stop ends in Terminated; a wait then answers at once. */
static void test_terminate_then_wait(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(call(f, "{\"id\":1,\"method\":\"vm.terminate\"}\n"),
			    "{\"id\":1,\"result\":{\"state\":\"Terminated\"}}\n");
	assert_int_equal(lifecycle_state(&f->s.lc), LC_TERMINATED);
	assert_string_equal(call(f, "{\"id\":2,\"method\":\"vm.wait\"}\n"),
			    "{\"id\":2,\"result\":{\"exit\":\"terminated\"}}\n");
	/* again: terminate is allowed in every state and changes nothing more */
	assert_string_equal(call(f, "{\"id\":3,\"method\":\"vm.terminate\"}\n"),
			    "{\"id\":3,\"result\":{\"state\":\"Terminated\"}}\n");
}

/* vm.create's uefi form refuses its bad input before any VM exists (shim/uefi_params.c). */
static void test_create_uefi_refused(void **state)
{
	struct fixture *f = *state;
	const char *r;

	r = call(f, "{\"id\":1,\"method\":\"vm.create\",\"params\":{\"uefi\":{\"firmware\":"
		    "\"/f\",\"dir\":\"/etc\",\"path\":\"../etc/passwd\"}}}\n");
	assert_non_null(strstr(r, "\"code\":-32602"));
	assert_non_null(strstr(r, "params.uefi.path: ../etc/passwd: leads outside params.uefi.dir"));
	r = call(f, "{\"id\":2,\"method\":\"vm.create\",\"params\":{\"kernel\":\"/k\","
		    "\"uefi\":{\"firmware\":\"/f\",\"dir\":\"/etc\",\"path\":\"passwd\"}}}\n");
	assert_non_null(strstr(r, "params.uefi: excludes params.kernel"));
	assert_null(f->s.m);
}

/* io_threads is 1..8 and a number: anything else is refused naming it, before any VM exists. */
static void test_create_io_threads_refused(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"0", "9", "-1", "2.5", "\"2\"", "true", "[1]"};
	char line[160];
	const char *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line),
			 "{\"id\":%zu,\"method\":\"vm.create\",\"params\":{\"io_threads\":%s}}\n",
			 i + 1, bad[i]);
		r = call(f, line);
		assert_non_null(strstr(r, "\"code\":-32602"));
		if (!strstr(r, "params.io_threads"))
			fail_msg("io_threads %s: %s", bad[i], r);
	}
	assert_null(f->s.m);
	assert_int_equal(lifecycle_state(&f->s.lc), LC_NOT_CREATED);
}

/* A VM that is still there: the wait is kept until its exit (vm_ended) answers it. */
static void test_wait_is_kept(void **state)
{
	struct fixture *f = *state;
	struct ctl_req *req;

	assert_int_equal(lifecycle_event(&f->s.lc, LC_EV_CREATED, NULL), 0);
	assert_string_equal(call(f, "{\"id\":1,\"method\":\"vm.wait\"}\n"), "");
	assert_int_equal(ctl_pending(f->s.ctl), 1);
	req = serve_req_list_pop(&f->s.vm_waiters);
	assert_non_null(req);
	assert_null(f->s.vm_waiters);
	ctl_req_result(req, NULL);
}

/* The VM is over: the wait reports how it ended. */
static void test_wait_after_exit(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(lifecycle_event(&f->s.lc, LC_EV_CREATED, NULL), 0);
	f->s.exited = true;
	f->s.exit_name = serve_exit_word(VM_EXIT_POWEROFF);
	assert_string_equal(call(f, "{\"id\":1,\"method\":\"vm.wait\"}\n"),
			    "{\"id\":1,\"result\":{\"exit\":\"poweroff\"}}\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_word),
	    cmocka_unit_test_setup_teardown(test_create_uefi_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_io_threads_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_and_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_terminate_then_wait, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_after_exit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
