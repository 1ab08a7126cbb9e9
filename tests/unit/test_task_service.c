/*
 * The Task service without a VM: bad input gets an error status and the
 * daemon keeps serving on the same connection (unknown methods, payloads
 * that do not decode, bad ids, a bundle without config.json, a VM that
 * cannot be created, calls for a task that does not exist), then Shutdown.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/loop.h"

struct fx {
	struct taskd *d;
	int peer;
	struct ttrpc_dec dec;
	uint32_t stream;
	char bundle[64];
};

static int setup(void **st)
{
	struct fx *f = calloc(1, sizeof(*f));
	int sv[2];

	setenv("UVM_SHIM_CONFIG", "/nonexistent/uvm.json", 1);
	setenv("UVM_GUEST_DIR", "/nonexistent", 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(task_daemon_create(&f->d, -1, "default", NULL), 0);
	assert_int_equal(ttrpc_server_adopt(f->d->srv, sv[0]), 0);
	f->peer = sv[1];
	f->stream = 1;
	ttrpc_dec_init(&f->dec, 0);
	strcpy(f->bundle, "/tmp/test-task-XXXXXX");
	assert_non_null(mkdtemp(f->bundle));
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fx *f = *st;
	char cmd[128];

	task_daemon_destroy(f->d);
	close(f->peer);
	ttrpc_dec_fini(&f->dec);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->bundle);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs the loop until the answer to stream comes: its code, its message in text. */
static int answer(struct fx *f, uint32_t stream, char *text, size_t textlen)
{
	struct ttrpc_frame fr;
	uint8_t buf[4096];

	for (int i = 0; i < 200; i++) {
		ssize_t k;

		loop_run_once(f->d->loop, 10);
		k = recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT);
		if (k > 0)
			assert_int_equal(ttrpc_dec_feed(&f->dec, buf, k), 0);
		if (ttrpc_dec_next(&f->dec, &fr) == 1) {
			Uvm__Ttrpc__Response *r = ttrpc_response_unpack(&fr);
			int code;

			assert_int_equal(fr.stream, stream);
			assert_non_null(r);
			code = r->status ? r->status->code : 0;
			if (text)
				snprintf(text, textlen, "%s",
					 r->status && r->status->message ? r->status->message : "");
			protobuf_c_message_free_unpacked(&r->base, NULL);
			return code;
		}
	}
	fail_msg("no answer on stream %u", stream);
	return -1;
}

static int call(struct fx *f, const char *method, const ProtobufCMessage *msg, char *text,
		size_t textlen)
{
	uint32_t stream = f->stream;
	uint8_t *b;
	size_t n;

	f->stream += 2;
	assert_int_equal(ttrpc_request_pack(stream, TASK_SERVICE, method, msg, NULL, &b, &n), 0);
	assert_int_equal(write(f->peer, b, n), (ssize_t)n);
	free(b);
	return answer(f, stream, text, textlen);
}

/* A request whose payload is raw bytes (not the method's message). */
static int call_raw(struct fx *f, const char *method, const void *payload, size_t len)
{
	Uvm__Ttrpc__Request r = UVM__TTRPC__REQUEST__INIT;
	uint32_t stream = f->stream;
	uint8_t *b;
	size_t n;

	f->stream += 2;
	r.service = TASK_SERVICE;
	r.method = (char *)method;
	r.payload.data = (uint8_t *)payload;
	r.payload.len = len;
	assert_int_equal(ttrpc_frame_pack(stream, TTRPC_TYPE_REQUEST, &r.base, &b, &n), 0);
	assert_int_equal(write(f->peer, b, n), (ssize_t)n);
	free(b);
	return answer(f, stream, NULL, 0);
}

static void test_bad_input_keeps_serving(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__KillRequest k = UVM__CTRD__KILL_REQUEST__INIT;
	char msg[512];

	id.id = "t1";
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_UNIMPLEMENTED);
	assert_int_equal(call(f, "Connect", &id.base, msg, sizeof(msg)), TTRPC_NOT_FOUND);
	assert_non_null(strstr(msg, "t1"));
	assert_int_equal(call(f, "State", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	assert_int_equal(call(f, "Wait", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	k.id = "t1";
	k.signal = 9;
	assert_int_equal(call(f, "Kill", &k.base, NULL, 0), TTRPC_NOT_FOUND);
	assert_int_equal(call_raw(f, "Create", "\xff\xff", 2), TTRPC_INVALID_ARGUMENT);
	c.id = "../t1";
	c.bundle = f->bundle;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "id"));
	c.id = "t1";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "config.json"));
	c.checkpoint = "/cp";
	assert_int_equal(call(f, "Create", &c.base, NULL, 0), TTRPC_UNIMPLEMENTED);
	assert_null(f->d->task);
}

/* A VM that cannot be created fails the Create; the task is gone, Shutdown then exits. */
static void test_failed_create_then_shutdown(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__ShutdownRequest sd = UVM__CTRD__SHUTDOWN_REQUEST__INIT;
	char path[128], msg[512];
	FILE *cfg;

	snprintf(path, sizeof(path), "%s/config.json", f->bundle);
	cfg = fopen(path, "w");
	fputs("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"true\"]}}", cfg);
	fclose(cfg);
	snprintf(path, sizeof(path), "%s/rootfs", f->bundle);
	assert_int_equal(mkdir(path, 0755), 0);
	c.id = "t1";
	c.bundle = f->bundle;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "vm.create"));
	assert_null(f->d->task);
	assert_false(f->d->creating);
	id.id = "t1";
	assert_int_equal(call(f, "Delete", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	sd.id = "t1";
	assert_int_equal(call(f, "Shutdown", &sd.base, NULL, 0), 0);
	assert_true(f->d->exiting);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bad_input_keeps_serving, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_create_then_shutdown, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
