/* Control protocol: framing, validation, errors, deferred answers, output. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"

struct fixture {
	struct ctl *ctl;
	int out[2];	      /* ctl writes out[1]; the test reads out[0] */
	struct ctl_req *held; /* a deferred request */
	int gate_code;
	char gate_msg[64];
	int calls;
};

static void h_echo(void *opaque, struct ctl_req *req)
{
	struct fixture *f = opaque;

	f->calls++;
	ctl_req_result(req, cJSON_Duplicate(req->params, 1));
}

static void h_defer(void *opaque, struct ctl_req *req)
{
	struct fixture *f = opaque;

	f->calls++;
	f->held = req;
}

static void h_fail(void *opaque, struct ctl_req *req)
{
	ctl_req_error(req, CTL_ERR_NOT_FOUND, "no process %d", 42);
}

static int gate(void *opaque, const struct ctl_method *m, char *msg, size_t len)
{
	struct fixture *f = opaque;

	if (f->gate_code && strcmp(m->name, "echo") == 0) {
		snprintf(msg, len, "%s", f->gate_msg);
		return f->gate_code;
	}
	return 0;
}

static const struct ctl_method methods[] = {
    {"echo", h_echo, 0, 0},
    {"slow", h_defer, 0, 0},
    {"fail", h_fail, 0, 0},
    {NULL, NULL, 0, 0},
};

static struct fixture *fixture_new(size_t line_max)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ctl_config cfg = {.methods = methods, .gate = gate, .line_max = line_max};

	assert_non_null(f);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	cfg.out_fd = f->out[1];
	cfg.opaque = f;
	assert_int_equal(ctl_create(&f->ctl, &cfg), 0);
	return f;
}

static int setup(void **state)
{
	*state = fixture_new(0);
	return 0;
}

static int setup_small(void **state)
{
	*state = fixture_new(64);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ctl_destroy(f->ctl);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

/* Everything written so far, as one string. */
static char *drain(struct fixture *f)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t n;

	while ((n = read(f->out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	return buf;
}

/* Reads exactly one line and parses it; fails if there is not exactly one. */
static cJSON *one(struct fixture *f)
{
	char *s = drain(f);
	char *nl = strchr(s, '\n');
	cJSON *j;

	assert_non_null(nl);
	assert_int_equal(nl[1], 0);
	*nl = 0;
	j = cJSON_Parse(s);
	assert_non_null(j);
	return j;
}

static void feed(struct fixture *f, const char *s)
{
	ctl_feed(f->ctl, s, strlen(s));
}

static int err_code(cJSON *j)
{
	cJSON *e = cJSON_GetObjectItem(j, "error");

	assert_non_null(e);
	assert_null(cJSON_GetObjectItem(j, "result"));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
	return (int)cJSON_GetObjectItem(e, "code")->valuedouble;
}

static void expect_error(struct fixture *f, const char *line, int code)
{
	cJSON *j;

	feed(f, line);
	j = one(f);
	assert_int_equal(err_code(j), code);
	cJSON_Delete(j);
}

/* After any bad line, a good one must still be served. */
static void expect_alive(struct fixture *f)
{
	cJSON *j;

	feed(f, "{\"id\":99,\"method\":\"echo\",\"params\":{\"a\":1}}\n");
	j = one(f);
	assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 99);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "a")->valueint, 1);
	cJSON_Delete(j);
}

static void test_echo_number_and_string_ids(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	feed(f, "{\"id\":7,\"method\":\"echo\",\"params\":{\"x\":\"y\"}}\n");
	j = one(f);
	assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 7);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "x")->valuestring,
			    "y");
	cJSON_Delete(j);

	feed(f, "{\"id\":\"abc\",\"method\":\"echo\"}\n");
	j = one(f);
	assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "abc");
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "result")));
	cJSON_Delete(j);

	/* params: null is the same as absent */
	feed(f, "{\"id\":1,\"method\":\"echo\",\"params\":null}\r\n");
	j = one(f);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "result")));
	cJSON_Delete(j);
	assert_int_equal(ctl_pending(f->ctl), 0);
}

static void test_bad_lines(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	expect_error(f, "{not json\n", CTL_ERR_PARSE);
	expect_alive(f);
	expect_error(f, "{\"id\":1,\"method\":\"echo\"} trailing\n", CTL_ERR_PARSE);
	expect_error(f, "[1,2]\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "\"str\"\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"method\":\"echo\"}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":true,\"method\":\"echo\"}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":null,\"method\":\"echo\"}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":[1],\"method\":\"echo\"}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":1}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":1,\"method\":5}\n", CTL_ERR_INVALID_REQUEST);
	expect_error(f, "{\"id\":1,\"method\":\"echo\",\"params\":[1]}\n", CTL_ERR_BAD_PARAMS);
	expect_error(f, "{\"id\":1,\"method\":\"echo\",\"params\":3}\n", CTL_ERR_BAD_PARAMS);
	expect_error(f, "{\"id\":1,\"method\":\"nope\"}\n", CTL_ERR_UNKNOWN_METHOD);
	expect_alive(f);

	/* The id of a request that names an unknown method is echoed back. */
	feed(f, "{\"id\":\"q\",\"method\":\"vm.fly\"}\n");
	j = one(f);
	assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "q");
	assert_non_null(
	    strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
		   "vm.fly"));
	cJSON_Delete(j);

	/* A line that failed before the id was read has id null. */
	feed(f, "garbage\n");
	j = one(f);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "id")));
	cJSON_Delete(j);

	/* Blank lines produce nothing. */
	feed(f, "\n   \n\t\r\n");
	assert_string_equal(drain(f), "");
	assert_int_equal(ctl_pending(f->ctl), 0);
}

static void test_handler_error(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	feed(f, "{\"id\":3,\"method\":\"fail\"}\n");
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_NOT_FOUND);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
	    "no process 42");
	cJSON_Delete(j);
}

static void test_split_and_batched_lines(void **state)
{
	struct fixture *f = *state;
	const char *req = "{\"id\":5,\"method\":\"echo\"}\n";
	char *out;

	/* One byte at a time. */
	for (const char *p = req; *p; p++) {
		assert_string_equal(drain(f), "");
		ctl_feed(f->ctl, p, 1);
	}
	cJSON_Delete(one(f));
	/* Three requests in one read. */
	feed(f, "{\"id\":1,\"method\":\"echo\"}\n{\"id\":2,\"method\":\"echo\"}\n{\"id\":3,"
		"\"method\":\"echo\"}\n");
	out = drain(f);
	assert_string_equal(out, "{\"id\":1,\"result\":{}}\n{\"id\":2,\"result\":{}}\n"
				 "{\"id\":3,\"result\":{}}\n");
	assert_int_equal(f->calls, 4);
}

static void test_line_too_long(void **state)
{
	struct fixture *f = *state; /* line_max 64 */
	char big[200];
	cJSON *j;

	memset(big, ' ', sizeof(big));
	/* Fed in pieces: exactly one error when the limit is crossed. */
	ctl_feed(f->ctl, big, 50);
	assert_string_equal(drain(f), "");
	ctl_feed(f->ctl, big, 50);
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_TOO_LARGE);
	cJSON_Delete(j);
	ctl_feed(f->ctl, big, 200);
	assert_string_equal(drain(f), "");
	/* The rest of the long line, up to its newline, is skipped; the next is served. */
	feed(f, "{\"id\":1,\"method\":\"echo\"}\n{\"id\":2,\"method\":\"echo\"}\n");
	assert_string_equal(drain(f), "{\"id\":2,\"result\":{}}\n");
	assert_int_equal(f->calls, 1);

	/* Exactly at the limit is fine. */
	snprintf(big, sizeof(big), "{\"id\":3,\"method\":\"echo\"}");
	memset(big + strlen(big), ' ', 64 - strlen(big));
	big[64] = '\n';
	ctl_feed(f->ctl, big, 65);
	assert_string_equal(drain(f), "{\"id\":3,\"result\":{}}\n");
	/* One more byte is not. */
	big[64] = ' ';
	big[65] = '\n';
	ctl_feed(f->ctl, big, 66);
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_TOO_LARGE);
	cJSON_Delete(j);
	/* A huge line in one write also yields one error. */
	{
		size_t n = 3 * 1024 * 1024;
		char *huge = malloc(n);

		memset(huge, 'x', n);
		huge[n - 1] = '\n';
		ctl_feed(f->ctl, huge, n);
		free(huge);
	}
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_TOO_LARGE);
	cJSON_Delete(j);
	expect_alive(f);
}

static void test_default_limit(void **state)
{
	struct fixture *f = *state;
	size_t n = CTL_LINE_MAX + 2;
	char *huge = malloc(n);
	cJSON *j;

	memset(huge, ' ', n);
	huge[n - 1] = '\n';
	ctl_feed(f->ctl, huge, n);
	free(huge);
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_TOO_LARGE);
	cJSON_Delete(j);
	expect_alive(f);
}

static void test_deferred_and_duplicate(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	feed(f, "{\"id\":10,\"method\":\"slow\"}\n");
	assert_string_equal(drain(f), "");
	assert_non_null(f->held);
	assert_int_equal(ctl_pending(f->ctl), 1);
	/* Others are served while it waits. */
	expect_alive(f);
	/* The same id again is refused; a different type with the same text is not the same id. */
	expect_error(f, "{\"id\":10,\"method\":\"echo\"}\n", CTL_ERR_DUPLICATE_ID);
	feed(f, "{\"id\":\"10\",\"method\":\"echo\"}\n");
	cJSON_Delete(one(f));
	/* Answer later. */
	ctl_req_result(f->held, cJSON_CreateString("done"));
	f->held = NULL;
	j = one(f);
	assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 10);
	assert_string_equal(cJSON_GetObjectItem(j, "result")->valuestring, "done");
	cJSON_Delete(j);
	assert_int_equal(ctl_pending(f->ctl), 0);
	/* Now the id is free again. */
	feed(f, "{\"id\":10,\"method\":\"echo\"}\n");
	cJSON_Delete(one(f));
}

static void test_destroy_cancels_pending(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	feed(f, "{\"id\":\"w\",\"method\":\"slow\"}\n");
	ctl_destroy(f->ctl);
	f->ctl = NULL;
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_CANCELLED);
	assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "w");
	cJSON_Delete(j);
}

static void test_gate(void **state)
{
	struct fixture *f = *state;
	cJSON *j;

	f->gate_code = CTL_ERR_WRONG_STATE;
	snprintf(f->gate_msg, sizeof(f->gate_msg), "echo is not allowed in state Paused");
	feed(f, "{\"id\":4,\"method\":\"echo\"}\n");
	j = one(f);
	assert_int_equal(err_code(j), CTL_ERR_WRONG_STATE);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
	    "echo is not allowed in state Paused");
	cJSON_Delete(j);
	assert_int_equal(f->calls, 0);
	/* Unknown methods are reported as such, before the gate. */
	expect_error(f, "{\"id\":4,\"method\":\"nope\"}\n", CTL_ERR_UNKNOWN_METHOD);
	f->gate_code = 0;
	expect_alive(f);
}

static void test_event(void **state)
{
	struct fixture *f = *state;
	cJSON *p = cJSON_CreateObject();

	cJSON_AddNumberToObject(p, "exit_code", 0);
	assert_int_equal(ctl_event(f->ctl, "vm.exited", p), 0);
	assert_string_equal(drain(f), "{\"event\":\"vm.exited\",\"params\":{\"exit_code\":0}}\n");
	assert_int_equal(ctl_event(f->ctl, "x", NULL), 0);
	assert_string_equal(drain(f), "{\"event\":\"x\",\"params\":{}}\n");
}

static void test_read_eof_dispatches_partial(void **state)
{
	struct fixture *f = *state;
	int in[2];

	assert_int_equal(pipe(in), 0);
	assert_int_equal(
	    write(in[1], "{\"id\":1,\"method\":\"echo\"}\n{\"id\":2,\"method\":\"echo\"}", 49), 49);
	close(in[1]);
	assert_int_equal(ctl_read(f->ctl, in[0]), 49);
	assert_string_equal(drain(f), "{\"id\":1,\"result\":{}}\n");
	assert_int_equal(ctl_read(f->ctl, in[0]), 0);
	assert_string_equal(drain(f), "{\"id\":2,\"result\":{}}\n");
	close(in[0]);
}

struct writer_arg {
	struct ctl *ctl;
	int n;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	char pad[300];

	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = 0;
	for (int i = 0; i < a->n; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "pad", pad);
		ctl_event(a->ctl, "tick", o);
	}
	return NULL;
}

/* Lines written from several threads never interleave. */
static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct writer_arg a = {.ctl = f->ctl, .n = 100};
	pthread_t t[4];
	char *s, *line;
	int count = 0;

	fcntl(f->out[0], F_SETPIPE_SZ, 1 << 20);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, writer, &a);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	s = drain(f);
	for (line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *j = cJSON_Parse(line);

		assert_non_null(j);
		assert_int_equal(
		    strlen(
			cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "pad")->valuestring),
		    299);
		cJSON_Delete(j);
		count++;
	}
	assert_int_equal(count, 400);
}

static void test_output_broken(void **state)
{
	struct fixture *f = *state;

	signal(SIGPIPE, SIG_IGN);
	close(f->out[0]);
	f->out[0] = open("/dev/null", O_RDONLY);
	assert_false(ctl_output_broken(f->ctl));
	assert_int_equal(ctl_event(f->ctl, "x", NULL), -EPIPE);
	assert_true(ctl_output_broken(f->ctl));
	/* Requests are still handled (and answers dropped) without crashing. */
	feed(f, "{\"id\":1,\"method\":\"echo\"}\n");
	assert_int_equal(ctl_pending(f->ctl), 0);
}

static void test_params(void **state)
{
	cJSON *p = cJSON_Parse("{\"s\":\"x\",\"n\":5,\"neg\":-1,\"frac\":1.5,\"big\":1e300,"
			       "\"b\":true,\"v\":[\"a\",\"b\"],\"vbad\":[\"a\",1],\"o\":{},"
			       "\"nul\":null}");
	char err[CTL_ERRLEN];
	const char *s = NULL;
	uint64_t u = 0;
	bool b = false;
	const cJSON *o;
	size_t cnt;

	assert_int_equal(ctl_param_str(p, "s", true, &s, err), 0);
	assert_string_equal(s, "x");
	assert_int_equal(ctl_param_str(p, "n", true, &s, err), -EINVAL);
	assert_string_equal(err, "params.n: expected a string");
	assert_int_equal(ctl_param_str(p, "missing", true, &s, err), -EINVAL);
	assert_string_equal(err, "params.missing: required");
	assert_int_equal(ctl_param_str(p, "missing", false, &s, err), -ENOENT);
	assert_int_equal(ctl_param_str(p, "nul", false, &s, err), -ENOENT);

	assert_int_equal(ctl_param_u64(p, "n", true, 1, 10, &u, err), 0);
	assert_int_equal(u, 5);
	assert_int_equal(ctl_param_u64(p, "n", true, 6, 10, &u, err), -EINVAL);
	assert_int_equal(ctl_param_u64(p, "n", true, 0, 4, &u, err), -EINVAL);
	assert_int_equal(ctl_param_u64(p, "neg", true, 0, 10, &u, err), -EINVAL);
	assert_int_equal(ctl_param_u64(p, "frac", true, 0, 10, &u, err), -EINVAL);
	assert_int_equal(ctl_param_u64(p, "big", true, 0, UINT64_MAX, &u, err), -EINVAL);
	assert_int_equal(ctl_param_u64(p, "s", true, 0, 10, &u, err), -EINVAL);

	assert_int_equal(ctl_param_bool(p, "b", true, &b, err), 0);
	assert_true(b);
	assert_int_equal(ctl_param_bool(p, "n", true, &b, err), -EINVAL);

	assert_int_equal(ctl_param_strv(p, "v", true, 8, &o, &cnt, err), 0);
	assert_int_equal(cnt, 2);
	assert_int_equal(ctl_param_strv(p, "v", true, 1, &o, &cnt, err), -EINVAL);
	assert_int_equal(ctl_param_strv(p, "vbad", true, 8, &o, &cnt, err), -EINVAL);
	assert_int_equal(ctl_param_strv(p, "s", true, 8, &o, &cnt, err), -EINVAL);

	assert_int_equal(ctl_param_obj(p, "o", true, &o, err), 0);
	assert_int_equal(ctl_param_obj(p, "v", true, &o, err), -EINVAL);
	cJSON_Delete(p);
}

static void test_err_names(void **state)
{
	assert_string_equal(ctl_err_name(CTL_ERR_WRONG_STATE), "wrong_state");
	assert_string_equal(ctl_err_name(CTL_ERR_PARSE), "parse_error");
	assert_string_equal(ctl_err_name(12345), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_echo_number_and_string_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handler_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_and_batched_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_too_long, setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_default_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_and_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destroy_cancels_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_eof_dispatches_partial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_broken, setup, teardown),
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_err_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
