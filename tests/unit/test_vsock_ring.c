/*
 * vsock byte rings (virtio/vsock_ring.c): sized to what they hold, grown in
 * order across a wrap, bounded by the caller's limit, freed when drained.
 * Checked against a plain FIFO model under a fixed pseudo-random sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/vsock_priv.h"

#define MAX (256u * 1024)

static uint8_t model[4 * MAX];
static size_t model_head, model_len;

static size_t put(struct ring *r, uint32_t max, const uint8_t *p, size_t len)
{
	/* Two iovec pieces and a skip, as the packet path hands them over. */
	uint8_t pad[3] = {0xee, 0xee, 0xee};
	size_t half = len / 2;
	struct iovec iov[3] = {{pad, sizeof(pad)}, {(void *)p, half}, {(void *)(p + half), len - half}};

	return vsock_ring_put_iov(r, max, iov, 3, sizeof(pad), len);
}

static void expect_content(const struct ring *r)
{
	struct iovec iov[2];
	int n = vsock_ring_peek(r, iov);
	size_t off = 0;

	assert_int_equal(r->len, model_len);
	for (int i = 0; i < n; i++) {
		assert_memory_equal(iov[i].iov_base, model + model_head + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, model_len);
}

static void test_starts_small_and_grows_in_order(void **state)
{
	struct ring r = {0};
	uint8_t buf[70000];
	uint32_t seed = 12345;

	(void)state;
	model_head = model_len = 0;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(put(&r, MAX, buf, 100), 100);
	memcpy(model, buf, 100);
	model_len = 100;
	assert_true(r.cap >= 100 && r.cap <= 4096);
	for (int step = 0; step < 20000; step++) {
		seed = seed * 1103515245 + 12345;
		if ((seed >> 16) % 3) {
			size_t want = (seed >> 8) % 9000, room = MAX - r.len, got;

			if (step % 500 == 0)
				want = 60000; /* now and then a burst that makes it grow */
			got = put(&r, MAX, buf + (step % 1000), want);
			assert_int_equal(got, want < room ? want : room);
			if (model_head + model_len + got > sizeof(model)) {
				memmove(model, model + model_head, model_len);
				model_head = 0;
			}
			memcpy(model + model_head + model_len, buf + (step % 1000), got);
			model_len += got;
		} else {
			size_t n = (seed >> 4) % 12000;

			if (n > model_len)
				n = model_len;
			vsock_ring_consume(&r, n);
			model_head += n;
			model_len -= n;
		}
		expect_content(&r);
		assert_true(r.cap <= MAX);
		assert_true(r.len <= r.cap || !r.data);
	}
	vsock_ring_free(&r);
	assert_null(r.data);
}

static void test_drained_big_ring_is_freed_small_one_kept(void **state)
{
	struct ring r = {0};
	static uint8_t buf[MAX];

	(void)state;
	assert_int_equal(put(&r, MAX, buf, 1000), 1000);
	vsock_ring_consume(&r, 1000);
	assert_non_null(r.data); /* a small ring stays for the next packet */
	assert_int_equal(put(&r, MAX, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(r.cap, MAX);
	assert_int_equal(put(&r, MAX, buf, 1), 0); /* full: the limit holds */
	vsock_ring_consume(&r, MAX - 1);
	assert_non_null(r.data);
	vsock_ring_consume(&r, 1);
	assert_null(r.data); /* drained: its memory goes back */
	assert_int_equal(r.cap, 0);
	assert_int_equal(put(&r, MAX, buf, 10), 10);
	assert_true(r.cap <= 4096);
	vsock_ring_free(&r);
}

static void test_limit_not_a_power_of_two(void **state)
{
	struct ring r = {0};
	static uint8_t buf[20000];

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(put(&r, 10000, buf, 999), 999);
	assert_int_equal(put(&r, 10000, buf, 999), 10);
	assert_int_equal(r.len, 10000);
	assert_int_equal(r.cap, 10000);
	assert_int_equal(put(&r, 10000, buf, sizeof(buf)), 0);
	vsock_ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starts_small_and_grows_in_order),
	    cmocka_unit_test(test_drained_big_ring_is_freed_small_one_kept),
	    cmocka_unit_test(test_limit_not_a_power_of_two),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
