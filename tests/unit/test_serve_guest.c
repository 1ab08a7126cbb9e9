/*
 * serve's requests to the guest agent (shim/serve_guest.c): what a bridge
 * status means to the parent, the answers built from the guest's bodies, and
 * the refusal when no agent is connected.
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
#include "shim/stacks.h"

static void test_err_code(void **state)
{
	assert_int_equal(serve_guest_err_code(-ESRCH), CTL_ERR_NOT_FOUND);
	assert_int_equal(serve_guest_err_code(-ECANCELED), CTL_ERR_CANCELLED);
	assert_int_equal(serve_guest_err_code(-ECONNRESET), CTL_ERR_CANCELLED);
	assert_int_equal(serve_guest_err_code(-EIO), CTL_ERR_GUEST);
	assert_int_equal(serve_guest_err_code(-ETIMEDOUT), CTL_ERR_GUEST);
	assert_int_equal(serve_guest_err_code(-ENOENT), CTL_ERR_GUEST);
	assert_int_equal(serve_guest_err_code(-1), CTL_ERR_GUEST);
	assert_int_equal(serve_guest_err_code(ESRCH), CTL_ERR_GUEST); /* only -errno means it */
}

static char *print(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);

	assert_non_null(s);
	return s;
}

/* The guest's body minus its status, the body itself untouched. */
static void test_forward_result(void **state)
{
	const char *in = "{\"status\":0,\"memory\":{\"total\":1},\"processes\":[{\"pid\":1}]}";
	cJSON *body = cJSON_Parse(in), *r;
	char *s;

	assert_non_null(body);
	r = serve_forward_result(body);
	s = print(r);
	assert_string_equal(s, "{\"memory\":{\"total\":1},\"processes\":[{\"pid\":1}]}");
	free(s);
	cJSON_Delete(r);
	s = print(body);
	assert_string_equal(s, in);
	free(s);
	cJSON_Delete(body);

	body = cJSON_Parse("{\"x\":\"y\"}");
	r = serve_forward_result(body);
	s = print(r);
	assert_string_equal(s, "{\"x\":\"y\"}");
	free(s);
	cJSON_Delete(r);
	cJSON_Delete(body);
}

/* The shim's capture failed: a sentence in its place, the GCS's text as given. */
static void test_stacks_result_not_captured(void **state)
{
	cJSON *body = cJSON_Parse("{\"status\":0,\"stacks\":\"thread 1 (init) S\\n\"}");
	cJSON *r = serve_stacks_result(NULL, -ETIMEDOUT, body);
	const cJSON *threads = cJSON_GetObjectItem(r, "shim_threads");
	char want[128];

	snprintf(want, sizeof(want), "uvm-shim pid %d: stacks not captured: %s\n", getpid(),
		 strerror(ETIMEDOUT));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "shim")), want);
	assert_true(cJSON_IsArray(threads));
	assert_int_equal(cJSON_GetArraySize(threads), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "gcs")),
			    "thread 1 (init) S\n");
	assert_null(cJSON_GetObjectItem(r, "status"));
	cJSON_Delete(r);
	cJSON_Delete(body);

	/* No body, or stacks that are not text: the GCS part is empty. */
	r = serve_stacks_result(NULL, -EPERM, NULL);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "gcs")), "");
	cJSON_Delete(r);
	body = cJSON_Parse("{\"stacks\":[1]}");
	r = serve_stacks_result(NULL, -EPERM, body);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "gcs")), "");
	cJSON_Delete(r);
	cJSON_Delete(body);
}

/* A real capture of this process: the text and the per-thread list agree. */
static void test_stacks_result_captured(void **state)
{
	struct stacks *st = NULL;
	cJSON *body = cJSON_Parse("{\"stacks\":\"g\"}"), *r, *t, *th;
	bool self = false;
	const char *text;
	char head[64];

	assert_int_equal(stacks_init(), 0);
	assert_int_equal(stacks_capture(&st, 2000), 0);
	r = serve_stacks_result(st, 0, body);
	text = cJSON_GetStringValue(cJSON_GetObjectItem(r, "shim"));
	assert_non_null(text);
	snprintf(head, sizeof(head), "uvm-shim pid %d\n", getpid());
	assert_memory_equal(text, head, strlen(head));
	t = cJSON_GetObjectItem(r, "shim_threads");
	assert_true(cJSON_GetArraySize(t) >= 1);
	cJSON_ArrayForEach(th, t)
	{
		if (cJSON_GetNumberValue(cJSON_GetObjectItem(th, "tid")) == getpid())
			self = true;
	}
	assert_true(self); /* this thread (the main one) is among them */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "gcs")), "g");
	cJSON_Delete(r);
	cJSON_Delete(body);
	stacks_free(st);
}

/* ---- no agent connected ------------------------------------------------------------ */

static const struct ctl_method methods[] = {
    {"guest.properties", serve_guest_properties, 0, 0},
    {"guest.dump_stacks", serve_guest_dump_stacks, 0, 0},
    {NULL, NULL, 0, 0},
};

static void test_not_connected(void **state)
{
	struct serve s = {0};
	struct ctl_config cfg = {.methods = methods, .opaque = &s};
	char buf[4096], w[256];
	int fds[2];
	ssize_t n;

	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	cfg.out_fd = fds[1];
	assert_int_equal(ctl_create(&s.ctl, &cfg), 0);
	for (int id = 1; id <= 2; id++) {
		const char *line = id == 1 ? "{\"id\":1,\"method\":\"guest.properties\"}\n"
					   : "{\"id\":2,\"method\":\"guest.dump_stacks\"}\n";

		ctl_feed(s.ctl, line, strlen(line));
		n = read(fds[0], buf, sizeof(buf) - 1);
		assert_true(n > 0);
		buf[n] = 0;
		snprintf(w, sizeof(w),
			 "{\"id\":%d,\"error\":{\"code\":-32002,\"message\":\"the guest agent is "
			 "not connected\"",
			 id);
		assert_memory_equal(buf, w, strlen(w));
	}
	assert_int_equal(ctl_pending(s.ctl), 0);
	ctl_destroy(s.ctl);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_code),
	    cmocka_unit_test(test_forward_result),
	    cmocka_unit_test(test_stacks_result_not_captured),
	    cmocka_unit_test(test_stacks_result_captured),
	    cmocka_unit_test(test_not_connected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
