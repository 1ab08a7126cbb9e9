/*
 * Events while containerd is away (restarting): they wait in order and go
 * out once its socket answers again; after the retries they are dropped;
 * the queue is bounded. A socket in a temporary directory stands in for
 * containerd's TTRPC_ADDRESS.
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/proto/events.pb-c.h"
#include "shim/task_events.h"
#include "shim/ttrpc.h"
#include "vmm/loop.h"

struct fx {
	char dir[64], path[128];
	struct loop *loop;
	struct task_events ev;
	int listen_fd;
};

static int setup(void **st)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test-task-events-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/ttrpc.sock", f->dir);
	f->listen_fd = -1;
	assert_int_equal(loop_create(&f->loop), 0);
	assert_int_equal(task_events_init(&f->ev, f->loop, f->path, "ns1"), 0);
	f->ev.retry_ms = 20;
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fx *f = *st;

	task_events_fini(&f->ev);
	loop_destroy(f->loop);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* containerd (back): listening on the address. */
static void listen_now(struct fx *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	strcpy(sa.sun_path, f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 4), 0);
}

static void publish(struct fx *f, const char *id)
{
	Uvm__Ctrd__TaskPaused e = UVM__CTRD__TASK_PAUSED__INIT;

	e.container_id = (char *)id;
	assert_int_equal(task_publish(&f->ev, "/tasks/paused", "TaskPaused", &e.base), 0);
}

static void run_for(struct fx *f, int ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		loop_run_once(f->loop, 5);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

/* The container ids of the events that arrived on conn, in order, into ids (n at most). */
static int received(struct fx *f, int conn, char ids[][16], int n)
{
	struct ttrpc_dec dec;
	struct ttrpc_frame fr;
	uint8_t buf[65536];
	uint32_t last = 0;
	int got = 0;
	ssize_t k;

	ttrpc_dec_init(&dec, 0);
	while ((k = recv(conn, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(ttrpc_dec_feed(&dec, buf, k), 0);
	while (got < n && ttrpc_dec_next(&dec, &fr) == 1) {
		Uvm__Ttrpc__Request *r = ttrpc_request_unpack(&fr);
		Uvm__Ctrd__ForwardRequest *fw;
		Uvm__Ctrd__TaskPaused *e;

		assert_non_null(r);
		assert_true(fr.stream > last); /* stream ids grow, also across the wait */
		last = fr.stream;
		fw = uvm__ctrd__forward_request__unpack(NULL, r->payload.len, r->payload.data);
		assert_non_null(fw);
		assert_string_equal(fw->envelope->namespace_, "ns1");
		e = uvm__ctrd__task_paused__unpack(NULL, fw->envelope->event->value.len,
						   fw->envelope->event->value.data);
		assert_non_null(e);
		snprintf(ids[got++], 16, "%s", e->container_id);
		protobuf_c_message_free_unpacked(&e->base, NULL);
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	ttrpc_dec_fini(&dec);
	return got;
}

/* Away, then back within the retries: everything arrives, in order, on one connection. */
static void test_wait_then_send(void **st)
{
	struct fx *f = *st;
	char ids[8][16];
	int conn;

	publish(f, "a1");
	publish(f, "a2");
	assert_int_equal(f->ev.queued, 2);
	assert_int_equal(f->ev.sent, 0);
	run_for(f, 60); /* a few retries fail */
	assert_int_equal(f->ev.queued, 2);
	assert_true(f->ev.tries >= 1);
	listen_now(f);
	publish(f, "a3"); /* behind the waiting ones, though containerd is back */
	assert_int_equal(f->ev.queued, 3);
	run_for(f, 60);
	assert_int_equal(f->ev.queued, 0);
	assert_int_equal(f->ev.sent, 3);
	assert_int_equal(f->ev.dropped, 0);
	conn = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	assert_int_equal(received(f, conn, ids, 8), 3);
	assert_string_equal(ids[0], "a1");
	assert_string_equal(ids[1], "a2");
	assert_string_equal(ids[2], "a3");
	/* connected now: the next goes at once */
	publish(f, "a4");
	assert_int_equal(f->ev.queued, 0);
	assert_int_equal(received(f, conn, ids, 8), 1);
	assert_string_equal(ids[0], "a4");
	close(conn);
}

/* Away for longer than the retries: the waiting events are dropped, the timer stops. */
static void test_give_up(void **st)
{
	struct fx *f = *st;

	f->ev.retries = 3;
	publish(f, "b1");
	publish(f, "b2");
	run_for(f, 200);
	assert_int_equal(f->ev.queued, 0);
	assert_int_equal(f->ev.dropped, 2);
	assert_int_equal(f->ev.sent, 0);
	/* a later event starts over (and waits) */
	publish(f, "b3");
	assert_int_equal(f->ev.queued, 1);
	assert_int_equal(f->ev.tries, 0);
}

/* At most TASK_EVENTS_QUEUE_MAX wait; the rest are dropped, counted. */
static void test_bounded(void **st)
{
	struct fx *f = *st;

	for (int i = 0; i < TASK_EVENTS_QUEUE_MAX + 5; i++)
		publish(f, "c");
	assert_int_equal(f->ev.queued, TASK_EVENTS_QUEUE_MAX);
	assert_int_equal(f->ev.dropped, 5);
}

/* No TTRPC_ADDRESS: events go nowhere, nothing waits, no timer. */
static void test_no_address(void **st)
{
	struct task_events ev;
	struct loop *loop;
	Uvm__Ctrd__TaskPaused e = UVM__CTRD__TASK_PAUSED__INIT;

	assert_int_equal(loop_create(&loop), 0);
	assert_int_equal(task_events_init(&ev, loop, NULL, NULL), 0);
	assert_int_equal(ev.timer_fd, -1);
	e.container_id = "x";
	assert_int_equal(task_publish(&ev, "/tasks/paused", "TaskPaused", &e.base), 0);
	assert_int_equal(ev.queued, 0);
	task_events_fini(&ev);
	loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_wait_then_send, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_give_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
	    cmocka_unit_test(test_no_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
