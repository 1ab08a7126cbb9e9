/*
 * ttrpc: the frame codec (split and merged reads, oversized frames), the
 * protobuf round trips of the messages the Task service uses, and the
 * server over a socketpair (unknown methods, bad payloads, answers out of
 * order, serving on after hostile input).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/ttrpc.h"
#include "shim/ttrpc_server.h"
#include "vmm/loop.h"

/* ---- codec ------------------------------------------------------------------------- */

static void make_frame(uint8_t *b, uint32_t len, uint32_t stream, uint8_t fill)
{
	ttrpc_put_header(b, len, stream, TTRPC_TYPE_REQUEST, 0);
	memset(b + TTRPC_HDR_LEN, fill, len);
}

static void test_header_layout(void **st)
{
	uint8_t h[TTRPC_HDR_LEN];
	static const uint8_t want[] = {0, 0, 1, 2, 0x80, 0, 0, 7, 2, 1};

	ttrpc_put_header(h, 0x102, 0x80000007, 2, 1);
	assert_memory_equal(h, want, sizeof(want));
}

/* Three frames written as one stream, fed one byte at a time, then all at once. */
static void test_split_and_merged(void **st)
{
	uint8_t buf[3 * (TTRPC_HDR_LEN + 5)];
	struct ttrpc_dec d;
	struct ttrpc_frame f;
	unsigned got = 0;

	for (int i = 0; i < 3; i++)
		make_frame(buf + i * (TTRPC_HDR_LEN + 5), 5, 2 * i + 1, 'a' + i);
	ttrpc_dec_init(&d, 0);
	for (size_t i = 0; i < sizeof(buf); i++) {
		assert_int_equal(ttrpc_dec_feed(&d, buf + i, 1), 0);
		while (ttrpc_dec_next(&d, &f) == 1) {
			assert_int_equal(f.stream, 2 * got + 1);
			assert_int_equal(f.len, 5);
			assert_int_equal(f.data[4], 'a' + got);
			got++;
		}
	}
	assert_int_equal(got, 3);
	assert_int_equal(ttrpc_dec_pending(&d), 0);
	got = 0;
	assert_int_equal(ttrpc_dec_feed(&d, buf, sizeof(buf) - 2), 0);
	while (ttrpc_dec_next(&d, &f) == 1)
		got++;
	assert_int_equal(got, 2);
	assert_int_equal(ttrpc_dec_pending(&d), TTRPC_HDR_LEN + 3); /* a torn frame */
	ttrpc_dec_fini(&d);
}

/* A frame over the limit is reported once, skipped as it streams past, and the next one decodes. */
static void test_oversized_skipped(void **st)
{
	struct ttrpc_dec d;
	struct ttrpc_frame f;
	uint8_t big[TTRPC_HDR_LEN + 100], small[TTRPC_HDR_LEN + 3];

	ttrpc_dec_init(&d, 64);
	make_frame(big, 100, 1, 'x');
	make_frame(small, 3, 3, 'y');
	assert_int_equal(ttrpc_dec_feed(&d, big, 40), 0);
	assert_int_equal(ttrpc_dec_next(&d, &f), 1);
	assert_true(f.oversized);
	assert_null(f.data);
	assert_int_equal(f.stream, 1);
	assert_int_equal(ttrpc_dec_next(&d, &f), 0);
	assert_int_equal(ttrpc_dec_feed(&d, big + 40, sizeof(big) - 40), 0);
	assert_int_equal(ttrpc_dec_feed(&d, small, sizeof(small)), 0);
	assert_int_equal(ttrpc_dec_next(&d, &f), 1);
	assert_false(f.oversized);
	assert_int_equal(f.stream, 3);
	assert_memory_equal(f.data, "yyy", 3);
	/* A 4 GiB length in a default decoder: reported, nothing allocated for it. */
	ttrpc_dec_fini(&d);
	ttrpc_dec_init(&d, 0);
	memset(big, 0xff, TTRPC_HDR_LEN);
	assert_int_equal(ttrpc_dec_feed(&d, big, TTRPC_HDR_LEN), 0);
	assert_int_equal(ttrpc_dec_next(&d, &f), 1);
	assert_true(f.oversized);
	assert_true(d.cap < 65536);
	ttrpc_dec_fini(&d);
}

static void test_request_round_trip(void **st)
{
	Uvm__Ctrd__TaskIdRequest in = UVM__CTRD__TASK_ID_REQUEST__INIT, *out;
	static const char *const md[] = {"containerd-namespace-ttrpc", "default", NULL};
	Uvm__Ttrpc__Request *req;
	struct ttrpc_dec d;
	struct ttrpc_frame f;
	uint8_t *b;
	size_t n;

	in.id = "t1";
	in.exec_id = "e1";
	assert_int_equal(
	    ttrpc_request_pack(7, "containerd.task.v2.Task", "State", &in.base, md, &b, &n), 0);
	ttrpc_dec_init(&d, 0);
	assert_int_equal(ttrpc_dec_feed(&d, b, n), 0);
	free(b);
	assert_int_equal(ttrpc_dec_next(&d, &f), 1);
	assert_int_equal(f.type, TTRPC_TYPE_REQUEST);
	assert_int_equal(f.stream, 7);
	req = ttrpc_request_unpack(&f);
	assert_non_null(req);
	assert_string_equal(req->service, "containerd.task.v2.Task");
	assert_string_equal(req->method, "State");
	assert_int_equal(req->n_metadata, 1);
	assert_string_equal(req->metadata[0]->value, "default");
	out = uvm__ctrd__task_id_request__unpack(NULL, req->payload.len, req->payload.data);
	assert_non_null(out);
	assert_string_equal(out->id, "t1");
	assert_string_equal(out->exec_id, "e1");
	uvm__ctrd__task_id_request__free_unpacked(out, NULL);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	ttrpc_dec_fini(&d);
}

/* Each message the service uses survives pack/unpack with its fields. */
static void test_messages_round_trip(void **st)
{
	Uvm__Ctrd__Mount m = UVM__CTRD__MOUNT__INIT, *mp = &m;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT, *c2;
	Uvm__Ctrd__StateResponse s = UVM__CTRD__STATE_RESPONSE__INIT, *s2;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	Uvm__Ctrd__TaskExit ex = UVM__CTRD__TASK_EXIT__INIT, *ex2;
	char *opts[] = {"lowerdir=/a:/b", "upperdir=/u"};
	uint8_t buf[1024];
	size_t n;

	m.type = "overlay";
	m.source = "overlay";
	m.n_options = 2;
	m.options = opts;
	c.id = "t1";
	c.bundle = "/run/b";
	c.n_rootfs = 1;
	c.rootfs = &mp;
	c.terminal = true;
	c.stdout = "/run/fifo";
	n = uvm__ctrd__create_task_request__pack(&c, buf);
	c2 = uvm__ctrd__create_task_request__unpack(NULL, n, buf);
	assert_non_null(c2);
	assert_string_equal(c2->rootfs[0]->options[1], "upperdir=/u");
	assert_true(c2->terminal);
	assert_string_equal(c2->stdout, "/run/fifo");
	uvm__ctrd__create_task_request__free_unpacked(c2, NULL);

	ts.seconds = 1700000000;
	ts.nanos = 5;
	s.id = "t1";
	s.pid = 93;
	s.status = UVM__CTRD__TASK_STATUS__STOPPED;
	s.exit_status = 3;
	s.exited_at = &ts;
	n = uvm__ctrd__state_response__pack(&s, buf);
	s2 = uvm__ctrd__state_response__unpack(NULL, n, buf);
	assert_non_null(s2);
	assert_int_equal(s2->status, UVM__CTRD__TASK_STATUS__STOPPED);
	assert_int_equal(s2->exit_status, 3);
	assert_int_equal(s2->exited_at->seconds, 1700000000);
	uvm__ctrd__state_response__free_unpacked(s2, NULL);

	ex.container_id = "t1";
	ex.id = "t1";
	ex.pid = 93;
	ex.exit_status = 137;
	ex.exited_at = &ts;
	n = uvm__ctrd__task_exit__pack(&ex, buf);
	ex2 = uvm__ctrd__task_exit__unpack(NULL, n, buf);
	assert_non_null(ex2);
	assert_int_equal(ex2->exit_status, 137);
	uvm__ctrd__task_exit__free_unpacked(ex2, NULL);
	/* The wire bytes of field 1 (string "t1"): tag 0x0a, length 2. */
	assert_int_equal(buf[0], 0x0a);
	assert_int_equal(buf[1], 2);
}

/* ---- server ------------------------------------------------------------------------ */

struct srv_fx {
	struct loop *loop;
	struct ttrpc_server *srv;
	int peer; /* the test's end */
	struct ttrpc_call *held;
	unsigned echoes;
};

static void m_echo(void *opaque, struct ttrpc_call *call)
{
	struct srv_fx *fx = opaque;
	Uvm__Ctrd__TaskIdRequest *r = (Uvm__Ctrd__TaskIdRequest *)ttrpc_call_unpack(
	    call, &uvm__ctrd__task_id_request__descriptor);
	Uvm__Ctrd__StartResponse a = UVM__CTRD__START_RESPONSE__INIT;

	if (!r)
		return;
	a.pid = strlen(r->id);
	fx->echoes++;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	ttrpc_reply(call, &a.base);
}

/* Held until the next Release: a Wait answered after later calls. */
static void m_hold(void *opaque, struct ttrpc_call *call)
{
	((struct srv_fx *)opaque)->held = call;
}

static void m_release(void *opaque, struct ttrpc_call *call)
{
	struct srv_fx *fx = opaque;

	if (fx->held)
		ttrpc_reply_error(fx->held, TTRPC_NOT_FOUND, "released");
	fx->held = NULL;
	ttrpc_reply(call, NULL);
}

static const struct ttrpc_method table[] = {
    {"svc", "Echo", m_echo},
    {"svc", "Hold", m_hold},
    {"svc", "Release", m_release},
    {NULL, NULL, NULL},
};

static int srv_setup(void **st)
{
	struct srv_fx *fx = calloc(1, sizeof(*fx));
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(loop_create(&fx->loop), 0);
	assert_int_equal(ttrpc_server_create(&fx->srv, fx->loop, -1, table, fx), 0);
	assert_int_equal(ttrpc_server_adopt(fx->srv, sv[0]), 0);
	fx->peer = sv[1];
	*st = fx;
	return 0;
}

static int srv_teardown(void **st)
{
	struct srv_fx *fx = *st;

	if (fx->held)
		ttrpc_reply(fx->held, NULL);
	ttrpc_server_destroy(fx->srv);
	loop_destroy(fx->loop);
	close(fx->peer);
	free(fx);
	return 0;
}

static void send_req(struct srv_fx *fx, uint32_t stream, const char *method, const char *id)
{
	Uvm__Ctrd__TaskIdRequest r = UVM__CTRD__TASK_ID_REQUEST__INIT;
	uint8_t *b;
	size_t n;

	r.id = (char *)id;
	assert_int_equal(ttrpc_request_pack(stream, "svc", method, &r.base, NULL, &b, &n), 0);
	assert_int_equal(write(fx->peer, b, n), (ssize_t)n);
	free(b);
}

/* Runs the loop until a response arrives; returns it (stream in *stream). */
static Uvm__Ttrpc__Response *recv_resp(struct srv_fx *fx, struct ttrpc_dec *d, uint32_t *stream)
{
	struct ttrpc_frame f;
	uint8_t buf[4096];

	for (int i = 0; i < 50; i++) {
		if (ttrpc_dec_next(d, &f) == 1) {
			assert_int_equal(f.type, TTRPC_TYPE_RESPONSE);
			*stream = f.stream;
			return ttrpc_response_unpack(&f);
		}
		loop_run_once(fx->loop, 20);
		ssize_t n = recv(fx->peer, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			assert_int_equal(ttrpc_dec_feed(d, buf, n), 0);
	}
	fail_msg("no response");
	return NULL;
}

static int resp_code(Uvm__Ttrpc__Response *r)
{
	return r->status ? r->status->code : 0;
}

static void test_server_errors_then_serves(void **st)
{
	struct srv_fx *fx = *st;
	struct ttrpc_dec d;
	Uvm__Ttrpc__Response *r;
	uint32_t stream;
	uint8_t junk[TTRPC_HDR_LEN + 4];

	ttrpc_dec_init(&d, 0);
	/* Unknown method: code 12, naming it. */
	send_req(fx, 1, "Nope", "x");
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 1);
	assert_int_equal(resp_code(r), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(r->status->message, "svc/Nope"));
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* A payload that is not a protobuf Request. */
	ttrpc_put_header(junk, 4, 3, TTRPC_TYPE_REQUEST, 0);
	memcpy(junk + TTRPC_HDR_LEN, "\xff\xff\xff\xff", 4);
	assert_int_equal(write(fx->peer, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 3);
	assert_int_equal(resp_code(r), TTRPC_INVALID_ARGUMENT);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* Still serving on the same connection. */
	send_req(fx, 9, "Echo", "ok");
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 9);
	assert_int_equal(resp_code(r), 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_int_equal(fx->echoes, 1);
	/* A frame claiming 5 MiB: RESOURCE_EXHAUSTED once its header is read. */
	ttrpc_put_header(junk, 5u << 20, 5, TTRPC_TYPE_REQUEST, 0);
	assert_int_equal(write(fx->peer, junk, TTRPC_HDR_LEN), TTRPC_HDR_LEN);
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 5);
	assert_int_equal(resp_code(r), TTRPC_RESOURCE_EXHAUSTED);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	ttrpc_dec_fini(&d);
}

/* Hold (stream 1) stays pending while Echo (3) is answered; Release (5) then answers both. */
static void test_out_of_order(void **st)
{
	struct srv_fx *fx = *st;
	struct ttrpc_dec d;
	Uvm__Ttrpc__Response *r;
	uint32_t stream;
	Uvm__Ctrd__StartResponse *a;

	ttrpc_dec_init(&d, 0);
	send_req(fx, 1, "Hold", "w");
	send_req(fx, 3, "Echo", "abcd");
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 3);
	assert_int_equal(resp_code(r), 0);
	a = uvm__ctrd__start_response__unpack(NULL, r->payload.len, r->payload.data);
	assert_int_equal(a->pid, 4);
	uvm__ctrd__start_response__free_unpacked(a, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	assert_non_null(fx->held);
	send_req(fx, 5, "Release", "");
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 1);
	assert_int_equal(resp_code(r), TTRPC_NOT_FOUND);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = recv_resp(fx, &d, &stream);
	assert_int_equal(stream, 5);
	assert_int_equal(resp_code(r), 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	ttrpc_dec_fini(&d);
}

/* A call held when its connection closes is answered into the void, without a leak. */
static void test_answer_after_close(void **st)
{
	struct srv_fx *fx = *st;

	send_req(fx, 1, "Hold", "w");
	for (int i = 0; i < 10 && !fx->held; i++)
		loop_run_once(fx->loop, 20);
	assert_non_null(fx->held);
	close(fx->peer);
	fx->peer = -1;
	for (int i = 0; i < 10 && ttrpc_server_conns(fx->srv); i++)
		loop_run_once(fx->loop, 20);
	assert_int_equal(ttrpc_server_conns(fx->srv), 0);
	ttrpc_reply(fx->held, NULL);
	fx->held = NULL;
}

/* Frames merged into one write and a torn frame at close. */
static void test_merged_writes(void **st)
{
	struct srv_fx *fx = *st;
	struct ttrpc_dec d;
	Uvm__Ttrpc__Response *r;
	uint32_t stream;
	unsigned seen = 0;

	ttrpc_dec_init(&d, 0);
	for (uint32_t s = 1; s < 40; s += 2)
		send_req(fx, s, "Echo", "x");
	while (seen < 20) {
		r = recv_resp(fx, &d, &stream);
		assert_int_equal(stream, 2 * seen + 1);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		seen++;
	}
	assert_int_equal(fx->echoes, 20);
	assert_int_equal(write(fx->peer, "\0\0\0\x05", 4), 4);
	ttrpc_dec_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_layout),
	    cmocka_unit_test(test_split_and_merged),
	    cmocka_unit_test(test_oversized_skipped),
	    cmocka_unit_test(test_request_round_trip),
	    cmocka_unit_test(test_messages_round_trip),
	    cmocka_unit_test_setup_teardown(test_server_errors_then_serves, srv_setup,
					    srv_teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_answer_after_close, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_merged_writes, srv_setup, srv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
