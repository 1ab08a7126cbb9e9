/*
 * serve's process table (shim/serve_procs.c): records, trimming, process.wait
 * and what settles it, the parameter checks of guest.exec and process.*; and
 * the waiter lists of shim/ctl_serve.c. No VM and no bridge: requests that
 * would reach the guest must fail as "not connected".
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
#include "shim/serve_priv.h"
#include "virtio/vsock.h"

#include "fake_gcs.h"

static const struct ctl_method methods[] = {
    {"guest.exec", serve_guest_exec, 0, 0},
    {"process.wait", serve_process_wait, 0, 0},
    {"process.signal", serve_process_signal, 0, 0},
    {"process.resize", serve_process_resize, 0, 0},
    {NULL, NULL, 0, 0},
};

struct fixture {
	struct serve s;
	int out[2]; /* the ctl writes out[1]; the test reads out[0] */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ctl_config cfg = {.methods = methods};

	assert_non_null(f);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	cfg.out_fd = f->out[1];
	cfg.opaque = &f->s;
	assert_int_equal(ctl_create(&f->s.ctl, &cfg), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	serve_procs_free(&f->s);
	ctl_destroy(f->s.ctl);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

/* A record as guest.exec leaves it once the exec was answered. */
static struct sproc *add_proc(struct serve *s, int pid, bool finished, bool wait_pending)
{
	struct sproc *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->s = s;
	guest_proc_init(&p->gp, &serve_proc_ops);
	p->gp.pid = pid;
	p->gp.exited = p->gp.finished = finished;
	p->gp.wait_pending = wait_pending;
	p->next = s->procs;
	s->procs = p;
	s->nr_procs++;
	return p;
}

/* The pids of the table, newest first, as "5 4 2". */
static const char *pids(struct serve *s)
{
	static char buf[256];
	size_t n = 0;

	buf[0] = 0;
	for (struct sproc *p = s->procs; p; p = p->next)
		n += snprintf(buf + n, sizeof(buf) - n, "%s%d", n ? " " : "", p->gp.pid);
	return buf;
}

/* Everything the ctl wrote since the last call. */
static char *drain(struct fixture *f)
{
	static char buf[1 << 16];
	size_t len = 0;
	ssize_t n;

	while ((n = read(f->out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	return buf;
}

static void feed(struct fixture *f, const char *line)
{
	ctl_feed(f->s.ctl, line, strlen(line));
}

/* Feeds one request and expects this error code and a message starting with msg. */
static void expect_error(struct fixture *f, const char *line, int code, const char *msg)
{
	char want[512], *drain_last;

	feed(f, line);
	snprintf(want, sizeof(want), "{\"id\":1,\"error\":{\"code\":%d,\"message\":\"%s", code,
		 msg);
	drain_last = drain(f);
	if (strncmp(drain_last, want, strlen(want)))
		fail_msg("%s: got %s, not %s", line, drain_last, want);
}

/* ---- pure pieces --------------------------------------------------------------------- */

static void test_proc_result(void **state)
{
	struct fixture *f = *state;
	struct sproc *p = add_proc(&f->s, 7, true, false);
	cJSON *r;
	char *txt;

	p->gp.exit_code = 137;
	p->gp.signal = 9;
	r = serve_proc_result(p);
	txt = cJSON_PrintUnformatted(r);
	assert_string_equal(txt, "{\"pid\":7,\"exit_code\":137,\"signal\":9}");
	free(txt);
	cJSON_Delete(r);
}

static void test_find(void **state)
{
	struct fixture *f = *state;
	struct sproc *a = add_proc(&f->s, 10, false, false);
	struct sproc *b = add_proc(&f->s, 11, true, false);

	assert_ptr_equal(serve_proc_find(&f->s, 10), a);
	assert_ptr_equal(serve_proc_find(&f->s, 11), b);
	assert_null(serve_proc_find(&f->s, 12));
	assert_null(serve_proc_find(&f->s, -1));
}

/* The oldest record that is over and has no wait out goes, and only when full. */
static void test_trim(void **state)
{
	struct serve *s = &((struct fixture *)*state)->s;

	add_proc(s, 1, false, false); /* running */
	add_proc(s, 2, true, true);   /* over, a wait is out for it */
	add_proc(s, 3, true, false);
	add_proc(s, 4, true, false);
	add_proc(s, 5, false, false);
	assert_string_equal(pids(s), "5 4 3 2 1");

	serve_procs_trim(s, 6); /* not full */
	assert_string_equal(pids(s), "5 4 3 2 1");
	assert_int_equal(s->nr_procs, 5);

	serve_procs_trim(s, 5);
	assert_string_equal(pids(s), "5 4 2 1");
	assert_int_equal(s->nr_procs, 4);

	serve_procs_trim(s, 3); /* over the limit: still one at a time */
	assert_string_equal(pids(s), "5 2 1");
	assert_int_equal(s->nr_procs, 3);

	serve_procs_trim(s, 3); /* nothing may go: the table grows instead */
	assert_string_equal(pids(s), "5 2 1");
	assert_int_equal(s->nr_procs, 3);
}

/* At the real limit, one new exec costs exactly the oldest record. */
static void test_trim_at_limit(void **state)
{
	struct serve *s = &((struct fixture *)*state)->s;

	for (int pid = 1; pid <= SERVE_MAX_PROCS_KEPT; pid++)
		add_proc(s, pid, true, false);
	serve_procs_trim(s, SERVE_MAX_PROCS_KEPT);
	assert_int_equal(s->nr_procs, SERVE_MAX_PROCS_KEPT - 1);
	assert_null(serve_proc_find(s, 1));
	assert_non_null(serve_proc_find(s, 2));
	assert_non_null(serve_proc_find(s, SERVE_MAX_PROCS_KEPT));
	serve_procs_trim(s, SERVE_MAX_PROCS_KEPT);
	assert_int_equal(s->nr_procs, SERVE_MAX_PROCS_KEPT - 1);
}

static void test_unlink_free(void **state)
{
	struct serve *s = &((struct fixture *)*state)->s;
	struct sproc *a = add_proc(s, 1, false, false);
	struct sproc *b = add_proc(s, 2, false, false);
	struct sproc *c = add_proc(s, 3, false, false);
	struct sproc *stray = calloc(1, sizeof(*stray));

	(void)a;
	serve_proc_unlink_free(s, b);
	assert_string_equal(pids(s), "3 1");
	assert_int_equal(s->nr_procs, 2);
	serve_proc_unlink_free(s, c);
	assert_string_equal(pids(s), "1");
	assert_int_equal(s->nr_procs, 1);
	/* not in the table (an exec that failed before it was linked): freed, count kept */
	assert_non_null(stray);
	serve_proc_unlink_free(s, stray);
	assert_int_equal(s->nr_procs, 1);
}

/* ctl_serve.c's waiter lists: newest first, empty gives NULL. */
static void test_req_list(void **state)
{
	struct req_list *l = NULL;
	struct ctl_req a, b, c;

	assert_null(serve_req_list_pop(&l));
	serve_req_list_add(&l, &a);
	serve_req_list_add(&l, &b);
	serve_req_list_add(&l, &c);
	assert_ptr_equal(serve_req_list_pop(&l), &c);
	assert_ptr_equal(serve_req_list_pop(&l), &b);
	assert_ptr_equal(serve_req_list_pop(&l), &a);
	assert_null(serve_req_list_pop(&l));
	assert_null(l);
}

/* ---- process.wait ---------------------------------------------------------------------- */

static void test_wait_finished_answers_at_once(void **state)
{
	struct fixture *f = *state;
	struct sproc *p = add_proc(&f->s, 3, true, false);

	p->gp.exit_code = 7;
	feed(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":3}}\n");
	assert_string_equal(drain(f),
			    "{\"id\":1,\"result\":{\"pid\":3,\"exit_code\":7,\"signal\":0}}\n");
}

static void test_wait_unknown_and_bad_pid(void **state)
{
	struct fixture *f = *state;

	add_proc(&f->s, 3, true, false);
	expect_error(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":99}}\n",
		     CTL_ERR_NOT_FOUND, "no process 99 started by guest.exec");
	expect_error(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":0}}\n",
		     CTL_ERR_BAD_PARAMS, "params.pid");
	expect_error(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{}}\n",
		     CTL_ERR_BAD_PARAMS, "params.pid");
	expect_error(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":\"3\"}}\n",
		     CTL_ERR_BAD_PARAMS, "params.pid");
}

/* The exit notification answers every wait and sends process.exited first. */
static void test_wait_then_exit(void **state)
{
	struct fixture *f = *state;

	add_proc(&f->s, 5, false, false);
	add_proc(&f->s, 6, false, false);
	feed(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":5}}\n");
	feed(f, "{\"id\":2,\"method\":\"process.wait\",\"params\":{\"pid\":5}}\n");
	assert_string_equal(drain(f), "");
	assert_int_equal(ctl_pending(f->s.ctl), 2);

	serve_on_process_exited(&f->s, 77, 1, 0); /* not ours: ignored */
	serve_on_process_exited(&f->s, 5, 143, 15);
	assert_string_equal(drain(f),
			    "{\"event\":\"process.exited\",\"params\":{\"pid\":5,\"exit_code\":143,"
			    "\"signal\":15}}\n"
			    "{\"id\":2,\"result\":{\"pid\":5,\"exit_code\":143,\"signal\":15}}\n"
			    "{\"id\":1,\"result\":{\"pid\":5,\"exit_code\":143,\"signal\":15}}\n");
	assert_int_equal(ctl_pending(f->s.ctl), 0);
	assert_true(serve_proc_find(&f->s, 5)->gp.finished);
	assert_false(serve_proc_find(&f->s, 6)->gp.finished);

	/* A second notification (the wait's answer after it) changes nothing. */
	serve_on_process_exited(&f->s, 5, 0, 0);
	assert_string_equal(drain(f), "");
	assert_int_equal(serve_proc_find(&f->s, 5)->gp.exit_code, 143);
}

/* The VM ended: waits fail as cancelled, the records stay for later waits. */
static void test_cancel_all(void **state)
{
	struct fixture *f = *state;

	add_proc(&f->s, 6, false, false);
	feed(f, "{\"id\":1,\"method\":\"process.wait\",\"params\":{\"pid\":6}}\n");
	assert_string_equal(drain(f), "");
	serve_procs_cancel_all(&f->s);
	expect_error(f, "", CTL_ERR_CANCELLED, "the VM ended before process 6 exited");
	assert_int_equal(ctl_pending(f->s.ctl), 0);
	assert_int_equal(f->s.nr_procs, 1);
}

/* ---- guest.exec, process.signal, process.resize: checks before the guest ------------- */

static void test_exec_params(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"id\":1,\"method\":\"guest.exec\",\"params\":{}}\n", CTL_ERR_BAD_PARAMS,
		     "params.argv");
	expect_error(f, "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[]}}\n",
		     CTL_ERR_BAD_PARAMS, "params.argv: must name a program");
	expect_error(f, "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"true\",1]}}\n",
		     CTL_ERR_BAD_PARAMS, "params.argv");
	expect_error(f,
		     "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"sh\"],"
		     "\"tty\":true,\"stderr\":\"/tmp/x\"}}\n",
		     CTL_ERR_BAD_PARAMS,
		     "params.stderr: a tty process has one output stream (stdout)");
	expect_error(f,
		     "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"sh\"],"
		     "\"rows\":0}}\n",
		     CTL_ERR_BAD_PARAMS, "params.rows");
	expect_error(f,
		     "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"sh\"],"
		     "\"uid\":4294967295}}\n",
		     CTL_ERR_BAD_PARAMS, "params.uid");
	/* Valid, but nobody to run it: nothing is opened, no record is kept. */
	expect_error(f,
		     "{\"id\":1,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"true\"],"
		     "\"stdout\":\"/nonexistent/dir/out\"}}\n",
		     CTL_ERR_GUEST, "the guest agent is not connected");
	assert_null(f->s.procs);
	assert_int_equal(f->s.nr_procs, 0);
}

static void test_signal_resize_params(void **state)
{
	struct fixture *f = *state;

	add_proc(&f->s, 4, false, false);
	expect_error(
	    f, "{\"id\":1,\"method\":\"process.signal\",\"params\":{\"pid\":5,\"signal\":9}}\n",
	    CTL_ERR_NOT_FOUND, "no process 5 started by guest.exec");
	expect_error(
	    f, "{\"id\":1,\"method\":\"process.signal\",\"params\":{\"pid\":4,\"signal\":0}}\n",
	    CTL_ERR_BAD_PARAMS, "params.signal");
	expect_error(
	    f, "{\"id\":1,\"method\":\"process.signal\",\"params\":{\"pid\":4,\"signal\":65}}\n",
	    CTL_ERR_BAD_PARAMS, "params.signal");
	expect_error(
	    f, "{\"id\":1,\"method\":\"process.signal\",\"params\":{\"pid\":4,\"signal\":9}}\n",
	    CTL_ERR_GUEST, "the guest agent is not connected");
	expect_error(
	    f, "{\"id\":1,\"method\":\"process.resize\",\"params\":{\"pid\":4,\"rows\":24}}\n",
	    CTL_ERR_BAD_PARAMS, "params.cols");
	expect_error(f,
		     "{\"id\":1,\"method\":\"process.resize\",\"params\":{\"pid\":4,\"rows\":24,"
		     "\"cols\":65536}}\n",
		     CTL_ERR_BAD_PARAMS, "params.cols");
	expect_error(f,
		     "{\"id\":1,\"method\":\"process.resize\",\"params\":{\"pid\":4,\"rows\":24,"
		     "\"cols\":80}}\n",
		     CTL_ERR_GUEST, "the guest agent is not connected");
}

/* ---- a hostile guest behind a real bridge ------------------------------------------- */

#define T_EXEC_RESP BRIDGE_TYPE(BRIDGE_KIND_RESPONSE, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC)
#define T_NOTIFY_EXITED                                                                  \
	BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS, BRIDGE_NOTIFY_PROCESS_EXITED)

struct gfixture {
	struct fixture f; /* first: setup/teardown's */
	struct fake_gcs g;
};

static void g_ready(void *o, int err, const cJSON *answer)
{
}

static void g_closed(void *o)
{
}

static const struct bridge_ops gops = {
    .ready = g_ready, .process_exited = serve_on_process_exited, .closed = g_closed};

static int gsetup(void **state)
{
	struct gfixture *gf = calloc(1, sizeof(*gf));
	struct fixture *f = &gf->f;
	struct ctl_config cfg = {.methods = methods};

	assert_non_null(gf);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	cfg.out_fd = f->out[1];
	cfg.opaque = &f->s;
	assert_int_equal(ctl_create(&f->s.ctl, &cfg), 0);
	assert_int_equal(vsock_engine_create(&f->s.vs, FAKE_GCS_CID), 0);
	assert_int_equal(bridge_create(&f->s.bridge, f->s.vs, &gops, &f->s), 0);
	assert_int_equal(fake_gcs_connect(&gf->g, f->s.vs), 0);
	assert_true(bridge_ready(f->s.bridge));
	*state = gf;
	return 0;
}

static int gteardown(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;

	/* Pending requests are failed here: their records must still be alive. */
	bridge_destroy(f->s.bridge);
	serve_procs_free(&f->s);
	vsock_engine_destroy(f->s.vs);
	fake_gcs_fini(&gf->g);
	ctl_destroy(f->s.ctl);
	close(f->out[0]);
	close(f->out[1]);
	free(gf);
	return 0;
}

/* The parent asks for an exec; returns the bridge id of the request the guest got. */
static uint64_t exec_sent(struct gfixture *gf, int ctl_id)
{
	char line[128], body[1024];
	struct bridge_hdr h = {0};

	snprintf(line, sizeof(line),
		 "{\"id\":%d,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"true\"]}}\n", ctl_id);
	feed(&gf->f, line);
	assert_int_equal(fake_gcs_next(&gf->g, &h, body, sizeof(body)), 0);
	assert_int_equal(bridge_type_rpc(h.type), BRIDGE_RPC_EXEC);
	return h.id;
}

/*
 * Issue 9, defect 1: a guest-sent process_exited with pid -1 matched a record
 * whose exec was unanswered; with the table full it was trimmed while its
 * exec was on the bridge, and the answer ran on freed memory (ASan).
 */
static void test_exit_for_unanswered_exec(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	char want[64];
	uint64_t id;

	/* A full table of processes still running: none can be trimmed. */
	for (int i = 0; i < SERVE_MAX_PROCS_KEPT - 1; i++)
		add_proc(&f->s, 100 + i, false, true);
	id = exec_sent(gf, 1);
	assert_int_equal(fake_gcs_msg(&gf->g, T_NOTIFY_EXITED, 0, 0,
				      "{\"pid\":-1,\"exit_code\":0,\"signal\":0}"),
			 0);
	assert_int_equal(fake_gcs_msg(&gf->g, T_NOTIFY_EXITED, 0, 0,
				      "{\"pid\":0,\"exit_code\":0,\"signal\":0}"),
			 0);
	assert_string_equal(drain(f), ""); /* no process.exited for a process never started */
	exec_sent(gf, 2);		   /* trims: the unanswered exec must stay */
	assert_int_equal(fake_gcs_msg(&gf->g, T_EXEC_RESP, 0, id, "{\"status\":0,\"pid\":9000}"), 0);
	snprintf(want, sizeof(want), "{\"id\":1,\"result\":{\"pid\":9000}}\n");
	assert_string_equal(drain(f), want);
	assert_non_null(serve_proc_find(&f->s, 9000));
}

/* A record with a request out is never trimmed, finished or not. */
static void test_trim_spares_busy(void **state)
{
	struct fixture *f = *state;
	struct sproc *p = add_proc(&f->s, 5, true, false);

	p->gp.exec_pending = true;
	serve_procs_trim(&f->s, 1);
	assert_string_equal(pids(&f->s), "5");
	p->gp.exec_pending = false;
	serve_procs_trim(&f->s, 1);
	assert_string_equal(pids(&f->s), "");
}

/* Pids the guest makes up fail the exec; statuses out of range do not reach strerror. */
static void test_exec_bogus_answers(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	static const char *const bodies[] = {
	    "{\"status\":0,\"pid\":0}",	      "{\"status\":0,\"pid\":-7}",
	    "{\"status\":0,\"pid\":1.5}",     "{\"status\":0,\"pid\":1e12}",
	    "{\"status\":0,\"pid\":\"12\"}",  "{\"status\":0}",
	    "{\"status\":-2147483648}",	      "{\"status\":-1e300}",
	    "{\"status\":17,\"pid\":12}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		uint64_t id = exec_sent(gf, 1);
		const char *out;

		assert_int_equal(fake_gcs_msg(&gf->g, T_EXEC_RESP, 0, id, bodies[i]), 0);
		out = drain(f);
		if (!strstr(out, "\"error\""))
			fail_msg("%s: answered %s", bodies[i], out);
	}
	assert_string_equal(pids(&f->s), ""); /* every failed exec left the table */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_proc_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trim_at_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unlink_free, setup, teardown),
	    cmocka_unit_test(test_req_list),
	    cmocka_unit_test_setup_teardown(test_wait_finished_answers_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_unknown_and_bad_pid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_then_exit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signal_resize_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trim_spares_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_for_unanswered_exec, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_exec_bogus_answers, gsetup, gteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
