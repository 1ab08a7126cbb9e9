/*
 * gcs/relay.c, the GCS's tty/stdin relays, on socketpairs driven by an
 * epoll loop of the test's own: bytes pass in order and EOF follows them;
 * a destination that is not read stops the relay reading its source (at
 * most GCS_RELAY_BUF held) and never blocks the loop; a destination that
 * goes away makes the relay drain and drop its source; the EOF byte (a
 * tty's ^D) comes after the data; src_ended runs once.
 *
 * A relay that blocked would hang a test here: alarm() ends it instead.
 * relay.c is compiled into the test (the GCS's objects are not among the
 * unit tests' library objects; it needs nothing else from gcs/).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "gcs/gcs.h"
#include "gcs/relay.c"

struct rig {
	int epfd;
	int writer, reader; /* the test's ends: writes reach r.src, r.dst's bytes reach reader */
	struct gcs_relay r;
	int ended;
};

static struct rig *ended_rig;

static void count_end(struct gcs_relay *r)
{
	ended_rig->ended++;
}

/* eof_byte -1 or a byte; dst_gone: no destination at all. */
static void rig_start(struct rig *g, int eof_byte, bool dst_gone)
{
	int a[2], b[2];

	memset(g, 0, sizeof(*g));
	g->epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(g->epfd >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	g->writer = a[0];
	g->reader = b[1];
	if (dst_gone) {
		close(b[0]);
		b[0] = -1;
	}
	ended_rig = g;
	assert_int_equal(gcs_relay_start(&g->r, g->epfd, a[1], b[0], eof_byte, count_end), 0);
	fcntl(g->writer, F_SETFL, O_NONBLOCK);
	fcntl(g->reader, F_SETFL, O_NONBLOCK);
}

static void rig_stop(struct rig *g)
{
	gcs_relay_close(&g->r);
	if (g->writer >= 0)
		close(g->writer);
	close(g->reader);
	close(g->epfd);
}

/* One round of the loop: every ready watch runs once. Returns how many ran. */
static int pump(struct rig *g, int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(g->epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct gcs_watch *w = evs[i].data.ptr;

		w->fn(w, evs[i].events);
	}
	return n < 0 ? 0 : n;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

/* Writes what the socket takes of [*off, total), pattern bytes. */
static void feed(struct rig *g, size_t *off, size_t total)
{
	uint8_t buf[8192];

	while (*off < total) {
		size_t n = total - *off < sizeof(buf) ? total - *off : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(*off + i);
		w = write(g->writer, buf, n);
		if (w <= 0)
			return;
		*off += w;
	}
}

/* Reads what is there, checking the pattern; returns false at EOF. */
static bool drain(struct rig *g, size_t *got)
{
	uint8_t buf[8192];

	for (;;) {
		ssize_t n = read(g->reader, buf, sizeof(buf));

		if (n == 0)
			return false;
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			return true;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(*got + i))
				fail_msg("byte %zu: 0x%x, want 0x%x", *got + i, buf[i],
					 pattern(*got + i));
		*got += n;
	}
}

static void test_bytes_in_order_then_eof(void **state)
{
	const size_t total = 3 << 20;
	size_t off = 0, got = 0;
	struct rig g;
	bool open_ = true;

	rig_start(&g, -1, false);
	for (int rounds = 0; open_ && rounds < 100000; rounds++) {
		feed(&g, &off, total);
		if (off == total && g.writer >= 0) {
			close(g.writer);
			g.writer = -1;
		}
		pump(&g, 10);
		open_ = drain(&g, &got);
	}
	assert_false(open_);
	assert_int_equal(got, total);
	assert_int_equal(g.ended, 1);
	assert_false(gcs_relay_active(&g.r));
	rig_stop(&g);
}

static void test_unread_destination_stops_the_source(void **state)
{
	const size_t total = 8 << 20;
	size_t off = 0, got = 0;
	struct rig g;
	int idle = 0;

	rig_start(&g, -1, false);
	/* Nobody reads: the loop keeps turning (never blocks), the relay fills and stops. */
	for (int rounds = 0; rounds < 2000 && idle < 20; rounds++) {
		feed(&g, &off, total);
		idle = pump(&g, 0) ? 0 : idle + 1;
	}
	assert_true(off < total); /* back-pressure reached the writer */
	assert_int_equal(g.r.len, GCS_RELAY_BUF);
	assert_int_equal(g.r.src_ev, 0); /* source not watched while the buffer is full */
	assert_int_equal(g.r.dst_ev, EPOLLOUT);
	/* The reader comes back: everything flows, nothing lost. */
	for (int rounds = 0; got < total && rounds < 100000; rounds++) {
		feed(&g, &off, total);
		pump(&g, 10);
		assert_true(drain(&g, &got));
	}
	assert_int_equal(got, total);
	rig_stop(&g);
}

static void test_destination_gone_source_is_drained(void **state)
{
	const size_t total = 1 << 20;
	size_t off = 0;
	struct rig g;

	rig_start(&g, -1, false);
	close(g.reader);
	g.reader = open("/dev/null", O_RDONLY);
	/* The writer is never held up by the missing reader. */
	for (int rounds = 0; off < total && rounds < 100000; rounds++) {
		feed(&g, &off, total);
		pump(&g, 10);
	}
	assert_int_equal(off, total);
	assert_int_equal(g.r.dst, -1);
	assert_true(gcs_relay_active(&g.r));
	close(g.writer);
	g.writer = -1;
	for (int rounds = 0; gcs_relay_active(&g.r) && rounds < 1000; rounds++)
		pump(&g, 10);
	assert_false(gcs_relay_active(&g.r));
	assert_int_equal(g.ended, 1);
	rig_stop(&g);
}

static void test_no_destination_discards(void **state)
{
	size_t off = 0;
	struct rig g;

	rig_start(&g, -1, true);
	for (int rounds = 0; off < (1 << 20) && rounds < 100000; rounds++) {
		feed(&g, &off, 1 << 20);
		pump(&g, 10);
	}
	assert_int_equal(off, 1 << 20);
	close(g.writer);
	g.writer = -1;
	for (int rounds = 0; gcs_relay_active(&g.r) && rounds < 1000; rounds++)
		pump(&g, 10);
	assert_false(gcs_relay_active(&g.r));
	rig_stop(&g);
}

static void test_eof_byte_after_the_data(void **state)
{
	char buf[64];
	size_t n = 0;
	ssize_t r;
	struct rig g;

	rig_start(&g, 0x04, false);
	assert_int_equal(write(g.writer, "hello\n", 6), 6);
	close(g.writer);
	g.writer = -1;
	for (int rounds = 0; gcs_relay_active(&g.r) && rounds < 1000; rounds++)
		pump(&g, 10);
	assert_false(gcs_relay_active(&g.r));
	while ((r = read(g.reader, buf + n, sizeof(buf) - n)) > 0)
		n += r;
	assert_int_equal(r, 0); /* then EOF */
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "hello\n\x04", 7);
	rig_stop(&g);
}

static void test_close_while_events_pending(void **state)
{
	struct epoll_event evs[8];
	struct rig g;
	int n;

	/* An event of the current batch for a relay closed earlier in it does nothing. */
	rig_start(&g, -1, false);
	assert_int_equal(write(g.writer, "x", 1), 1);
	n = epoll_wait(g.epfd, evs, 8, 1000);
	assert_int_equal(n, 1);
	gcs_relay_close(&g.r);
	((struct gcs_watch *)evs[0].data.ptr)->fn(evs[0].data.ptr, evs[0].events);
	assert_false(gcs_relay_active(&g.r));
	assert_int_equal(g.ended, 0);
	rig_stop(&g);
}

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(60); /* a relay that blocks would hang here */
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bytes_in_order_then_eof),
	    cmocka_unit_test(test_unread_destination_stops_the_source),
	    cmocka_unit_test(test_destination_gone_source_is_drained),
	    cmocka_unit_test(test_no_destination_discards),
	    cmocka_unit_test(test_eof_byte_after_the_data),
	    cmocka_unit_test(test_close_while_events_pending),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
