/* virtio/queue: split ring handling on fake guest memory, hostile chains included. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "virtio/virtio.h"
#include "vmm/mem.h"

#define RAM   (1 << 20)
#define QSZ   16
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define DATA  0x10000

struct env {
	uint8_t *ram;
	struct guest_mem *mem;
	struct virtq q;
	struct virtq_chain c;
};

static struct env *env_new(bool event_idx)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->ram = aligned_alloc(4096, RAM);
	assert_non_null(e->ram);
	memset(e->ram, 0, RAM);
	assert_int_equal(mem_wrap(&e->mem, e->ram, RAM), 0);
	e->q.max_size = QSZ;
	virtq_reset(&e->q);
	e->q.desc_gpa = DESC;
	e->q.avail_gpa = AVAIL;
	e->q.used_gpa = USED;
	assert_int_equal(virtq_start(&e->q, e->mem, event_idx), 0);
	return e;
}

static void env_free(struct env *e)
{
	mem_destroy(e->mem);
	free(e->ram);
	free(e);
}

static void set_desc(uint8_t *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct virtq_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};

	memcpy(table + 16 * i, &d, 16);
}

static void desc(struct env *e, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	set_desc(e->ram + DESC, i, addr, len, flags, next);
}

static uint16_t *avail(struct env *e)
{
	return (uint16_t *)(e->ram + AVAIL);
}

static uint16_t *used16(struct env *e)
{
	return (uint16_t *)(e->ram + USED);
}

static void offer(struct env *e, uint16_t head)
{
	uint16_t idx = avail(e)[1];

	avail(e)[2 + idx % QSZ] = head;
	avail(e)[1] = idx + 1;
}

static void test_start_checks(void **state)
{
	struct env *e = env_new(false);
	struct virtq q = {.max_size = QSZ};

	virtq_reset(&q);
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	q.size = 12; /* not a power of two */
	assert_int_equal(virtq_start(&q, e->mem, false), -EINVAL);
	q.size = 32; /* above the maximum */
	assert_int_equal(virtq_start(&q, e->mem, false), -EINVAL);
	q.size = QSZ;
	q.desc_gpa = DESC + 8; /* misaligned */
	assert_int_equal(virtq_start(&q, e->mem, false), -EINVAL);
	q.desc_gpa = DESC;
	q.used_gpa = RAM - 16; /* runs past the end of RAM */
	assert_int_equal(virtq_start(&q, e->mem, false), -EFAULT);
	q.used_gpa = USED;
	assert_int_equal(virtq_start(&q, e->mem, false), 0);
	/* Not started: pop sees nothing. */
	virtq_reset(&q);
	assert_int_equal(virtq_pop(&q, &e->c), 0);
	env_free(e);
}

static void test_simple_chain(void **state)
{
	struct env *e = env_new(false);
	uint32_t id, len;

	assert_int_equal(virtq_pop(&e->q, &e->c), 0);
	desc(e, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 7);
	desc(e, 7, DATA + 0x100, 100, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, DATA + 0x1000, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	desc(e, 2, DATA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 3);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	assert_int_equal(e->c.head, 3);
	assert_int_equal(e->c.nr_out, 2);
	assert_int_equal(e->c.nr_in, 2);
	assert_int_equal(e->c.out_len, 116);
	assert_int_equal(e->c.in_len, 513);
	assert_ptr_equal(e->c.iov[0].iov_base, e->ram + DATA);
	assert_ptr_equal(e->c.iov[2].iov_base, e->ram + DATA + 0x1000);
	assert_int_equal(e->c.iov[3].iov_len, 1);
	assert_int_equal(virtq_pop(&e->q, &e->c), 0);

	virtq_push(&e->q, 3, 513);
	assert_int_equal(used16(e)[1], 1);
	memcpy(&id, e->ram + USED + 4, 4);
	memcpy(&len, e->ram + USED + 8, 4);
	assert_int_equal(id, 3);
	assert_int_equal(len, 513);
	env_free(e);
}

static void test_wraparound(void **state)
{
	struct env *e = env_new(false);

	/* Many more requests than the ring holds, indices wrapping past 65535. */
	avail(e)[1] = 65530;
	e->q.last_avail = 65530;
	e->q.used_idx = 65530;
	desc(e, 0, DATA, 8, 0, 0);
	for (int i = 0; i < 40; i++) {
		offer(e, 0);
		assert_int_equal(virtq_pop(&e->q, &e->c), 1);
		virtq_push(&e->q, 0, 0);
	}
	assert_int_equal(used16(e)[1], (uint16_t)(65530 + 40));
	env_free(e);
}

static void test_loop(void **state)
{
	struct env *e = env_new(false);

	desc(e, 0, DATA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, DATA, 8, VIRTQ_DESC_F_NEXT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_self_loop(void **state)
{
	struct env *e = env_new(false);

	desc(e, 5, DATA, 8, VIRTQ_DESC_F_NEXT, 5);
	offer(e, 5);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_full_length_chain_ok_longer_fails(void **state)
{
	struct env *e = env_new(false);

	/* Exactly queue-size descriptors is legal. */
	for (int i = 0; i < QSZ; i++)
		desc(e, i, DATA + 16 * i, 16, i < QSZ - 1 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	assert_int_equal(e->c.nr_out, QSZ);
	/* One more hop (the last one pointing back) is not. */
	desc(e, QSZ - 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_next_out_of_table(void **state)
{
	struct env *e = env_new(false);

	desc(e, 0, DATA, 8, VIRTQ_DESC_F_NEXT, QSZ);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_head_out_of_range(void **state)
{
	struct env *e = env_new(false);

	offer(e, QSZ + 3);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_avail_idx_jump(void **state)
{
	struct env *e = env_new(false);

	avail(e)[1] = QSZ + 1; /* more entries than the ring can hold */
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_buffer_past_end(void **state)
{
	struct env *e = env_new(false);

	desc(e, 0, RAM - 8, 16, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	desc(e, 0, RAM + 4096, 1, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	/* The last byte of RAM is fine. */
	desc(e, 0, RAM - 1, 1, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	env_free(e);
}

static void test_address_wraps(void **state)
{
	struct env *e = env_new(false);

	desc(e, 0, UINT64_MAX - 4, 16, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_total_length_overflow(void **state)
{
	/* 1 GiB of address space, never touched: five 1 GiB buffers sum past 4 GiB. */
	size_t big = 1ULL << 30;
	uint8_t *ram = mmap(NULL, big, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct guest_mem *mem;
	struct virtq q = {.max_size = QSZ};
	static struct virtq_chain c;

	assert_true(ram != MAP_FAILED);
	assert_int_equal(mem_wrap(&mem, ram, big), 0);
	virtq_reset(&q);
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	assert_int_equal(virtq_start(&q, mem, false), 0);
	for (int i = 0; i < 5; i++)
		set_desc(ram + DESC, i, 0, (uint32_t)(big - 1), i < 4 ? VIRTQ_DESC_F_NEXT : 0,
			 i + 1);
	((uint16_t *)(ram + AVAIL))[2] = 0;
	((uint16_t *)(ram + AVAIL))[1] = 1;
	assert_int_equal(virtq_pop(&q, &c), -EIO);
	/* Four of them (just under 4 GiB) are accepted. */
	set_desc(ram + DESC, 3, 0, (uint32_t)(big - 1), 0, 0);
	((uint16_t *)(ram + AVAIL))[3] = 0;
	((uint16_t *)(ram + AVAIL))[1] = 2;
	assert_int_equal(virtq_pop(&q, &c), 1);
	mem_destroy(mem);
	munmap(ram, big);
}

static void test_readable_after_writable(void **state)
{
	struct env *e = env_new(false);

	desc(e, 0, DATA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, DATA, 8, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_indirect(void **state)
{
	struct env *e = env_new(false);
	uint8_t *tbl = e->ram + 0x8000;

	set_desc(tbl, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(tbl, 2, DATA + 0x1000, 4096, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(tbl, 1, DATA + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	desc(e, 4, 0x8000, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 4);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	assert_int_equal(e->c.head, 4);
	assert_int_equal(e->c.nr_out, 1);
	assert_int_equal(e->c.nr_in, 2);
	assert_int_equal(e->c.in_len, 4097);
	assert_ptr_equal(e->c.iov[1].iov_base, e->ram + DATA + 0x1000);
	env_free(e);
}

static void test_indirect_hostile(void **state)
{
	struct env *e = env_new(false);
	uint8_t *tbl = e->ram + 0x8000;

	/* Indirect table inside an indirect table. */
	set_desc(tbl, 0, 0x9000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(e->ram + 0x9000, 0, DATA, 16, 0, 0);
	desc(e, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* Size not a multiple of 16. */
	set_desc(tbl, 0, DATA, 16, 0, 0);
	desc(e, 0, 0x8000, 24, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* Empty table. */
	desc(e, 0, 0x8000, 0, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* INDIRECT together with NEXT. */
	desc(e, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, DATA, 16, 0, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* Table past the end of RAM. */
	desc(e, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* Loop inside the table. */
	set_desc(tbl, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(tbl, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	desc(e, 0, 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* next beyond the table's own length. */
	set_desc(tbl, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 5);
	desc(e, 0, 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);

	/* Table longer than the queue. */
	desc(e, 0, 0x8000, 16 * (QSZ + 1), VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), -EIO);
	env_free(e);
}

static void test_no_interrupt_flag(void **state)
{
	struct env *e = env_new(false);

	virtq_push(&e->q, 0, 0);
	assert_true(virtq_should_notify(&e->q));
	avail(e)[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtq_push(&e->q, 0, 0);
	assert_false(virtq_should_notify(&e->q));
	env_free(e);
}

static void test_event_idx_notify(void **state)
{
	struct env *e = env_new(true);
	uint16_t *used_event = &avail(e)[2 + QSZ];

	/* First decision always notifies (nothing signalled yet). */
	virtq_push(&e->q, 0, 0); /* used idx 1 */
	assert_true(virtq_should_notify(&e->q));
	/* Driver wants an interrupt once entry 3 is used (used_event = 3). */
	*used_event = 3;
	virtq_push(&e->q, 0, 0); /* 2 */
	assert_false(virtq_should_notify(&e->q));
	virtq_push(&e->q, 0, 0); /* 3 */
	assert_false(virtq_should_notify(&e->q));
	virtq_push(&e->q, 0, 0); /* 4: crossed used_event 3 */
	assert_true(virtq_should_notify(&e->q));
	/* Batch crossing the event in one go. */
	*used_event = 5;
	virtq_push(&e->q, 0, 0);
	virtq_push(&e->q, 0, 0);
	virtq_push(&e->q, 0, 0); /* 7 */
	assert_true(virtq_should_notify(&e->q));
	/* Nothing new since the last signal. */
	assert_false(virtq_should_notify(&e->q));
	/* The event lagging behind (driver is not interested yet) */
	*used_event = 6;
	virtq_push(&e->q, 0, 0); /* 8 */
	assert_false(virtq_should_notify(&e->q));
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	avail(e)[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	*used_event = 8;
	virtq_push(&e->q, 0, 0); /* 9 */
	assert_true(virtq_should_notify(&e->q));
	env_free(e);
}

static void test_event_idx_avail_event(void **state)
{
	struct env *e = env_new(true);
	uint16_t *avail_event = (uint16_t *)(e->ram + USED + 4 + 8 * QSZ);

	desc(e, 0, DATA, 8, 0, 0);
	offer(e, 0);
	offer(e, 0);
	*avail_event = 0xdead;
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	/* Going idle publishes where we stopped, so the next buffer gets a kick. */
	assert_int_equal(virtq_pop(&e->q, &e->c), 0);
	assert_int_equal(*avail_event, 2);
	env_free(e);
}

static void test_avail_pending_keeps_kicks_off(void **state)
{
	struct env *e = env_new(true);
	uint16_t *avail_event = (uint16_t *)(e->ram + USED + 4 + 8 * QSZ);

	desc(e, 0, DATA, 8, 0, 0);
	*avail_event = 0xdead;
	assert_false(virtq_avail_pending(&e->q));
	offer(e, 0);
	assert_true(virtq_avail_pending(&e->q));
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	/* Polling an empty ring must not ask the driver for a kick. */
	assert_false(virtq_avail_pending(&e->q));
	assert_int_equal(*avail_event, 0xdead);
	env_free(e);
}

static void test_zero_length_descriptor_skipped(void **state)
{
	struct env *e = env_new(false);

	/* Length 0 buffers carry nothing; their address is never used. */
	desc(e, 0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 0);
	assert_int_equal(virtq_pop(&e->q, &e->c), 1);
	assert_int_equal(e->c.nr_out + e->c.nr_in, 1);
	env_free(e);
}

static void test_iov_helpers(void **state)
{
	char a[4] = "abc", b[6] = "defgh", out[16] = {0};
	struct iovec iov[2] = {{a, 3}, {b, 5}}, dst[4];

	assert_int_equal(iov_to_buf(iov, 2, 2, out, 4), 4);
	assert_memory_equal(out, "cdef", 4);
	assert_int_equal(iov_from_buf(iov, 2, 1, "XYZ", 3), 3);
	assert_memory_equal(a, "aXY", 3);
	assert_int_equal(b[0], 'Z');
	assert_int_equal(iov_slice(iov, 2, 1, 5, dst, 4), 2);
	assert_int_equal(dst[0].iov_len, 2);
	assert_int_equal(dst[1].iov_len, 3);
	assert_int_equal(iov_slice(iov, 2, 1, 50, dst, 4), -1); /* not enough bytes */
	assert_int_equal(iov_slice(iov, 2, 0, 8, dst, 1), -1);	/* not enough room */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_start_checks),
	    cmocka_unit_test(test_simple_chain),
	    cmocka_unit_test(test_wraparound),
	    cmocka_unit_test(test_loop),
	    cmocka_unit_test(test_self_loop),
	    cmocka_unit_test(test_full_length_chain_ok_longer_fails),
	    cmocka_unit_test(test_next_out_of_table),
	    cmocka_unit_test(test_head_out_of_range),
	    cmocka_unit_test(test_avail_idx_jump),
	    cmocka_unit_test(test_buffer_past_end),
	    cmocka_unit_test(test_address_wraps),
	    cmocka_unit_test(test_total_length_overflow),
	    cmocka_unit_test(test_readable_after_writable),
	    cmocka_unit_test(test_indirect),
	    cmocka_unit_test(test_indirect_hostile),
	    cmocka_unit_test(test_no_interrupt_flag),
	    cmocka_unit_test(test_event_idx_notify),
	    cmocka_unit_test(test_avail_pending_keeps_kicks_off),
	    cmocka_unit_test(test_event_idx_avail_event),
	    cmocka_unit_test(test_zero_length_descriptor_skipped),
	    cmocka_unit_test(test_iov_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
