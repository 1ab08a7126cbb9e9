/* vmm/bus: lookup by address, overlap rules, removal while accesses run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "vmm/bus.h"

struct probe {
	uint64_t last_off;
	uint32_t last_len;
	int writes, reads;
	uint8_t value;
	int delay_us;
};

static void probe_fn(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct probe *p = opaque;

	if (p->delay_us)
		usleep(p->delay_us);
	__atomic_store_n(&p->last_off, off, __ATOMIC_RELAXED);
	__atomic_store_n(&p->last_len, len, __ATOMIC_RELAXED);
	if (is_write) {
		__atomic_fetch_add(&p->writes, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&p->value, data[0], __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&p->reads, 1, __ATOMIC_RELAXED);
		memset(data, __atomic_load_n(&p->value, __ATOMIC_RELAXED), len);
	}
}

static void test_lookup(void **state)
{
	struct bus *bus;
	struct probe a = {.value = 0xaa}, b = {.value = 0xbb};
	struct bus_region *ra, *rb;
	uint8_t d[4] = {0};

	(void)state;
	assert_int_equal(bus_create(&bus, "t"), 0);
	assert_int_equal(bus_register(bus, 0x3f8, 8, probe_fn, &a, &ra), 0);
	assert_int_equal(bus_register(bus, 0x60, 1, probe_fn, &b, &rb), 0);
	assert_true(bus_access(bus, 0x3fd, d, 1, false));
	assert_int_equal(d[0], 0xaa);
	assert_int_equal(a.last_off, 5);
	assert_true(bus_access(bus, 0x60, d, 1, false));
	assert_int_equal(d[0], 0xbb);
	/* Just outside each region. */
	assert_false(bus_access(bus, 0x3f7, d, 1, false));
	assert_false(bus_access(bus, 0x400, d, 1, false));
	assert_false(bus_access(bus, 0x61, d, 1, false));
	assert_false(bus_access(bus, 0x5f, d, 1, false));
	d[0] = 0x42;
	assert_true(bus_access(bus, 0x3f8, d, 4, true));
	assert_int_equal(a.value, 0x42);
	assert_int_equal(a.last_len, 4);
	bus_unregister(bus, ra);
	assert_false(bus_access(bus, 0x3f8, d, 1, false));
	assert_true(bus_access(bus, 0x60, d, 1, false));
	bus_unregister(bus, NULL);
	bus_destroy(bus);
}

static void test_overlap_and_bad_ranges(void **state)
{
	struct bus *bus;
	struct probe p = {0};
	struct bus_region *r;

	(void)state;
	assert_int_equal(bus_create(&bus, "t"), 0);
	assert_int_equal(bus_register(bus, 0x1000, 0x100, probe_fn, &p, &r), 0);
	assert_int_equal(bus_register(bus, 0x10ff, 1, probe_fn, &p, NULL), -EEXIST);
	assert_int_equal(bus_register(bus, 0xf00, 0x101, probe_fn, &p, NULL), -EEXIST);
	assert_int_equal(bus_register(bus, 0x0, 0x10000, probe_fn, &p, NULL), -EEXIST);
	assert_int_equal(bus_register(bus, 0x1100, 1, probe_fn, &p, NULL), 0);
	assert_int_equal(bus_register(bus, 0xfff, 1, probe_fn, &p, NULL), 0);
	assert_int_equal(bus_register(bus, 0x5000, 0, probe_fn, &p, NULL), -EINVAL);
	assert_int_equal(bus_register(bus, UINT64_MAX - 1, 4, probe_fn, &p, NULL), -EINVAL);
	assert_int_equal(bus_register(bus, 0x6000, 4, NULL, &p, NULL), -EINVAL);
	/* Many regions stay sorted and findable. */
	for (uint64_t i = 0; i < 200; i++)
		assert_int_equal(bus_register(bus, 0x100000 + i * 0x10, 0x10, probe_fn, &p, NULL), 0);
	for (uint64_t i = 0; i < 200; i++) {
		uint8_t d;

		assert_true(bus_access(bus, 0x100000 + i * 0x10 + 7, &d, 1, false));
		assert_int_equal(p.last_off, 7);
	}
	bus_destroy(bus);
}

struct hammer {
	struct bus *bus;
	bool stop; /* atomics */
	long hits;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	uint8_t d;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE))
		if (bus_access(h->bus, 0x2000, &d, 1, false))
			h->hits++;
	return NULL;
}

/* A region removed while another thread is inside it stays valid until that access ends. */
static void test_remove_while_in_use(void **state)
{
	struct hammer h = {0};
	struct probe p = {.value = 1, .delay_us = 200};
	struct bus_region *r;
	pthread_t t;

	(void)state;
	assert_int_equal(bus_create(&h.bus, "t"), 0);
	assert_int_equal(bus_register(h.bus, 0x2000, 4, probe_fn, &p, &r), 0);
	assert_int_equal(pthread_create(&t, NULL, hammer_thread, &h), 0);
	while (__atomic_load_n(&p.reads, __ATOMIC_RELAXED) < 3)
		usleep(100);
	bus_unregister(h.bus, r);
	/* After unregister returns, the callback is never entered again. */
	int reads = __atomic_load_n(&p.reads, __ATOMIC_SEQ_CST);
	usleep(2000);
	assert_int_equal(__atomic_load_n(&p.reads, __ATOMIC_SEQ_CST), reads);
	__atomic_store_n(&h.stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_true(h.hits >= 3);
	bus_destroy(h.bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_overlap_and_bad_ranges),
		cmocka_unit_test(test_remove_while_in_use),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
