/*
 * The Task service's test fixture (test_task_service.c, test_task_pod.c): a
 * daemon without a VM serving one end of a socketpair, a fake control
 * protocol that records what reaches it, and events collected on a socket
 * standing in for containerd's.
 */
#ifndef TESTS_UNIT_TASK_FX_H
#define TESTS_UNIT_TASK_FX_H

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
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"
#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"
#include "vmm/loop.h"

/* The fake control protocol's record: requests by method, the last params, the answer to give. */
struct fake {
	unsigned pauses, resumes, updates, signals, stats, creates;
	unsigned shares_added, shares_removed, ctr_creates, ctr_deletes;
	cJSON *params;		 /* the last request's */
	cJSON *share_params;	 /* the last plan9.add's */
	cJSON *ctr_params;	 /* the last container.create's */
	int fail;		 /* 0: answer {}; else this ctl error code */
	const char *fail_method; /* with fail: only this method fails (NULL: every one) */
};

struct fx {
	struct taskd *d;
	int peer;
	struct ttrpc_dec dec;
	uint32_t stream;
	char bundle[64];
	uint8_t *last;	 /* the last answer's payload */
	size_t last_len; /* and its length */
	/* setup_task: a running task over a fake control protocol, events to ev_listen */
	struct ctl *fake_ctl, *real_ctl;
	struct fake fake;
	int ev_listen, ev_conn;
	struct ttrpc_dec ev_dec;
};

static inline __attribute__((unused)) int setup_with(void **st, bool events)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int sv[2];

	setenv("UVM_SHIM_CONFIG", "/nonexistent/uvm.json", 1);
	setenv("UVM_GUEST_DIR", "/nonexistent", 1);
	f->ev_listen = f->ev_conn = -1;
	strcpy(f->bundle, "/tmp/test-task-XXXXXX");
	assert_non_null(mkdtemp(f->bundle));
	if (events) {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/events.sock", f->bundle);
		f->ev_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(f->ev_listen, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(f->ev_listen, 4), 0);
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(task_daemon_create(&f->d, -1, "default", events ? sa.sun_path : NULL), 0);
	assert_int_equal(ttrpc_server_adopt(f->d->srv, sv[0]), 0);
	f->peer = sv[1];
	f->stream = 1;
	ttrpc_dec_init(&f->dec, 0);
	ttrpc_dec_init(&f->ev_dec, 0);
	*st = f;
	return 0;
}

static inline __attribute__((unused)) int setup(void **st)
{
	return setup_with(st, false);
}

static inline __attribute__((unused)) int teardown(void **st)
{
	struct fx *f = *st;
	char cmd[128];

	if (f->fake_ctl) {
		f->d->ctl = f->real_ctl;
		ctl_destroy(f->fake_ctl);
	}
	cJSON_Delete(f->fake.params);
	cJSON_Delete(f->fake.share_params);
	cJSON_Delete(f->fake.ctr_params);
	if (f->ev_conn >= 0)
		close(f->ev_conn);
	if (f->ev_listen >= 0)
		close(f->ev_listen);
	ttrpc_dec_fini(&f->ev_dec);
	task_daemon_destroy(f->d);
	close(f->peer);
	ttrpc_dec_fini(&f->dec);
	free(f->last);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->bundle);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs the loop until the answer to stream comes: its code, its message in text. */
static inline __attribute__((unused)) int answer(struct fx *f, uint32_t stream, char *text,
						 size_t textlen)
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
			free(f->last);
			f->last = malloc(r->payload.len + 1);
			if (r->payload.len)
				memcpy(f->last, r->payload.data, r->payload.len);
			f->last_len = r->payload.len;
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

static inline __attribute__((unused)) int
call(struct fx *f, const char *method, const ProtobufCMessage *msg, char *text, size_t textlen)
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
static inline __attribute__((unused)) int call_raw(struct fx *f, const char *method,
						   const void *payload, size_t len)
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

/* ---- a running task over a fake control protocol ------------------------------------- */

static inline __attribute__((unused)) void fake_method(void *opaque, struct ctl_req *req)
{
	struct fx *f = opaque;

	if (!strcmp(req->method, "vm.pause"))
		f->fake.pauses++;
	else if (!strcmp(req->method, "vm.resume"))
		f->fake.resumes++;
	else if (!strcmp(req->method, "container.update"))
		f->fake.updates++;
	else if (!strcmp(req->method, "container.signal"))
		f->fake.signals++;
	else if (!strcmp(req->method, "container.stats"))
		f->fake.stats++;
	else if (!strcmp(req->method, "vm.create"))
		f->fake.creates++;
	else if (!strcmp(req->method, "plan9.remove"))
		f->fake.shares_removed++;
	else if (!strcmp(req->method, "container.delete"))
		f->fake.ctr_deletes++;
	if (!strcmp(req->method, "plan9.add")) {
		f->fake.shares_added++;
		cJSON_Delete(f->fake.share_params);
		f->fake.share_params = cJSON_Duplicate(req->params, true);
	}
	if (!strcmp(req->method, "container.create")) {
		f->fake.ctr_creates++;
		cJSON_Delete(f->fake.ctr_params);
		f->fake.ctr_params = cJSON_Duplicate(req->params, true);
	}
	cJSON_Delete(f->fake.params);
	f->fake.params = cJSON_Duplicate(req->params, true);
	if (f->fake.fail && (!f->fake.fail_method || !strcmp(req->method, f->fake.fail_method))) {
		ctl_req_error(req, f->fake.fail, "refused by the fake");
	} else if (!strcmp(req->method, "container.create")) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddNumberToObject(r, "pid", 100 + f->fake.ctr_creates);
		ctl_req_result(req, r);
	} else {
		ctl_req_result(req, cJSON_CreateObject());
	}
}

static const struct ctl_method fake_methods[] __attribute__((unused)) = {
    {"vm.pause", fake_method, 0, 0},
    {"vm.resume", fake_method, 0, 0},
    {"container.update", fake_method, 0, 0},
    {"container.signal", fake_method, 0, 0},
    {"container.stats", fake_method, 0, 0},
    {"vm.terminate", fake_method, 0, 0},
    {"vm.create", fake_method, 0, 0},
    {"plan9.add", fake_method, 0, 0},
    {"plan9.remove", fake_method, 0, 0},
    {"container.create", fake_method, 0, 0},
    {"container.delete", fake_method, 0, 0},
    {"container.start", fake_method, 0, 0},
    {NULL, NULL, 0, 0},
};

/* Task t1 whose init runs (pid 42); the control protocol is the fake; events are collected. */
static inline __attribute__((unused)) void use_fake_ctl(struct fx *f)
{
	assert_int_equal(ctl_create(&f->fake_ctl, &(struct ctl_config){.out_fd = f->d->ctl_wr,
								       .methods = fake_methods,
								       .opaque = f}),
			 0);
	f->real_ctl = f->d->ctl;
	f->d->ctl = f->fake_ctl;
}

static inline __attribute__((unused)) int setup_task(void **st)
{
	struct fx *f;

	setup_with(st, true);
	f = *st;
	assert_int_equal(task_new(&f->d->tasks, "t1", f->bundle), 0);
	assert_int_equal(task_proc_started(task_init_proc(f->d->tasks), 42), 0);
	use_fake_ctl(f);
	return 0;
}

/* No task yet; the control protocol is the fake, which refuses vm.create (so no VM is made). */
static inline __attribute__((unused)) int setup_fake(void **st)
{
	struct fx *f;

	setup_with(st, false);
	f = *st;
	use_fake_ctl(f);
	f->fake.fail = CTL_ERR_BAD_PARAMS;
	return 0;
}

/* The next event on topic containerd would get (others skipped): its Any's type and container. */
static inline __attribute__((unused)) void next_event(struct fx *f, const char *topic,
						      const char *type)
{
	struct ttrpc_frame fr;
	uint8_t buf[4096];

	if (f->ev_conn < 0) {
		f->ev_conn = accept4(f->ev_listen, NULL, NULL, SOCK_CLOEXEC);
		assert_true(f->ev_conn >= 0);
	}
	for (int i = 0; i < 200; i++) {
		ssize_t k;

		if (ttrpc_dec_next(&f->ev_dec, &fr) == 1) {
			Uvm__Ttrpc__Request *r = ttrpc_request_unpack(&fr);
			Uvm__Ctrd__ForwardRequest *fw;
			Uvm__Ctrd__TaskPaused *ev;

			assert_non_null(r);
			assert_string_equal(r->method, "Forward");
			fw = uvm__ctrd__forward_request__unpack(NULL, r->payload.len,
								r->payload.data);
			assert_non_null(fw);
			assert_non_null(fw->envelope);
			assert_non_null(fw->envelope->event);
			if (strcmp(fw->envelope->topic, topic)) { /* another event (exec-added) */
				protobuf_c_message_free_unpacked(&fw->base, NULL);
				protobuf_c_message_free_unpacked(&r->base, NULL);
				continue;
			}
			assert_string_equal(fw->envelope->event->type_url, type);
			/* TaskPaused and TaskResumed: container_id is field 1 of both */
			ev = uvm__ctrd__task_paused__unpack(NULL, fw->envelope->event->value.len,
							    fw->envelope->event->value.data);
			assert_non_null(ev);
			assert_string_equal(ev->container_id, "t1");
			protobuf_c_message_free_unpacked(&ev->base, NULL);
			protobuf_c_message_free_unpacked(&fw->base, NULL);
			protobuf_c_message_free_unpacked(&r->base, NULL);
			return;
		}
		k = recv(f->ev_conn, buf, sizeof(buf), MSG_DONTWAIT);
		if (k > 0)
			assert_int_equal(ttrpc_dec_feed(&f->ev_dec, buf, k), 0);
		else
			loop_run_once(f->d->loop, 10);
	}
	fail_msg("no event %s", topic);
}

/* State of exec_id ("" the init): its status. */
static inline __attribute__((unused)) int state_of(struct fx *f, const char *exec_id)
{
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__StateResponse *r;
	int status;

	id.id = "t1";
	id.exec_id = (char *)exec_id;
	assert_int_equal(call(f, "State", &id.base, NULL, 0), 0);
	r = uvm__ctrd__state_response__unpack(NULL, f->last_len, f->last);
	assert_non_null(r);
	status = r->status;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return status;
}

static inline __attribute__((unused)) const char *write_file(struct fx *f, const char *name,
							     const char *text)
{
	static char path[128];
	FILE *o;

	snprintf(path, sizeof(path), "%s/%s", f->bundle, name);
	o = fopen(path, "w");
	assert_non_null(o);
	fputs(text, o);
	fclose(o);
	return path;
}

#endif
