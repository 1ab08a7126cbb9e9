/*
 * The legacy PC devices (vmm/uart.c, vmm/i8042.c, vmm/cmos.c) on a VM
 * without KVM (tests/unit/fake_vm.h): what Linux's drivers rely on, and what
 * a hostile guest gets from every register at every width.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "tests/unit/fake_vm.h"
#include "vmm/legacy.h"
#include "vmm/log.h"

#define COM1	 0x3f8
#define COM1_IRQ 4

struct sink {
	uint8_t buf[4096];
	size_t len;
};

static void sink_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct sink *s = opaque;

	for (size_t i = 0; i < len && s->len < sizeof(s->buf); i++)
		s->buf[s->len++] = buf[i];
}

static uint8_t in8(struct vm *vm, uint16_t port)
{
	uint8_t d[8];

	memset(d, 0xaa, sizeof(d));
	assert_true(bus_access(vm_pio_bus(vm), port, d, 1, false));
	return d[0];
}

static void out8(struct vm *vm, uint16_t port, uint8_t v)
{
	assert_true(bus_access(vm_pio_bus(vm), port, &v, 1, true));
}

/* A read of len bytes at port: returns byte 0, and the bytes above it must be zero. */
static uint8_t in_wide(struct vm *vm, uint16_t port, uint32_t len)
{
	uint8_t d[8];

	memset(d, 0xaa, sizeof(d));
	assert_true(bus_access(vm_pio_bus(vm), port, d, len, false));
	for (uint32_t i = 1; i < len; i++)
		assert_int_equal(d[i], 0);
	return d[0];
}

/* ---- UART ---- */

static void test_uart_transmit_and_thre(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct sink s = {0};
	struct uart *u;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(uart_create(vm, COM1, COM1_IRQ, sink_out, &s, &u), 0);
	out8(vm, COM1 + 0, 'h');
	out8(vm, COM1 + 0, 'i');
	assert_int_equal(s.len, 2);
	assert_memory_equal(s.buf, "hi", 2);
	/* THR always empty. */
	assert_int_equal(in8(vm, COM1 + 5) & 0x60, 0x60);
	/* Enabling THRI raises the line at once; reading IIR (THRI) lowers it. */
	assert_false(fake_irq_level[COM1_IRQ]);
	out8(vm, COM1 + 1, 0x02);
	assert_true(fake_irq_level[COM1_IRQ]);
	assert_int_equal(in8(vm, COM1 + 2) & 0x0f, 0x02);
	assert_false(fake_irq_level[COM1_IRQ]);
	assert_int_equal(in8(vm, COM1 + 2) & 0x0f, 0x01);
	/* Every byte written re-arms it, so interrupt-driven output keeps going. */
	out8(vm, COM1 + 0, '!');
	assert_true(fake_irq_level[COM1_IRQ]);
	uart_destroy(u);
	fake_vm_destroy(vm);
}

static void test_uart_receive_bounded(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct sink s = {0};
	uint8_t big[3000];
	struct uart *u;
	size_t n;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(uart_create(vm, COM1, COM1_IRQ, sink_out, &s, &u), 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	/* The FIFO is bounded: the rest is refused, not dropped silently. */
	n = uart_input(u, big, sizeof(big));
	assert_int_equal(n, 1024);
	assert_int_equal(uart_input(u, big, 1), 0);
	assert_int_equal(in8(vm, COM1 + 5) & 0x01, 0x01);
	out8(vm, COM1 + 1, 0x01); /* RDI */
	assert_true(fake_irq_level[COM1_IRQ]);
	assert_int_equal(in8(vm, COM1 + 2) & 0x0f, 0x04);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(in8(vm, COM1 + 0), (uint8_t)i);
	assert_int_equal(in8(vm, COM1 + 5) & 0x01, 0);
	assert_false(fake_irq_level[COM1_IRQ]);
	/* An empty FIFO reads 0; the FCR clear empties a full one. */
	assert_int_equal(in8(vm, COM1 + 0), 0);
	assert_int_equal(uart_input(u, big, 10), 10);
	out8(vm, COM1 + 2, 0x03);
	assert_int_equal(in8(vm, COM1 + 5) & 0x01, 0);
	uart_destroy(u);
	fake_vm_destroy(vm);
}

static void test_uart_divisor_and_loopback(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct sink s = {0};
	struct uart *u;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(uart_create(vm, COM1, COM1_IRQ, sink_out, &s, &u), 0);
	/* With DLAB set, offsets 0 and 1 are the divisor: nothing is sent. */
	out8(vm, COM1 + 3, 0x83);
	out8(vm, COM1 + 0, 0x01);
	out8(vm, COM1 + 1, 0x02);
	assert_int_equal(in8(vm, COM1 + 0), 0x01);
	assert_int_equal(in8(vm, COM1 + 1), 0x02);
	assert_int_equal(s.len, 0);
	out8(vm, COM1 + 3, 0x03);
	assert_int_equal(in8(vm, COM1 + 1), 0); /* IER untouched */
	/* Loopback (Linux's probe): output stays inside, MSR mirrors MCR. */
	out8(vm, COM1 + 4, 0x1f);
	out8(vm, COM1 + 0, 'x');
	assert_int_equal(s.len, 0);
	assert_int_equal(in8(vm, COM1 + 6) & 0xf0, 0xf0);
	out8(vm, COM1 + 4, 0x10);
	assert_int_equal(in8(vm, COM1 + 6) & 0xf0, 0);
	out8(vm, COM1 + 4, 0x0b);
	assert_int_equal(in8(vm, COM1 + 6), 0xb0);
	out8(vm, COM1 + 7, 0x5a);
	assert_int_equal(in8(vm, COM1 + 7), 0x5a);
	uart_destroy(u);
	fake_vm_destroy(vm);
}

/* Every value into every register at widths 1-8, then reads: upper bytes are zero, it still sends. */
static void test_uart_hostile(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct sink s = {0};
	struct uart *u;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(uart_create(vm, COM1, COM1_IRQ, sink_out, &s, &u), 0);
	for (unsigned off = 0; off < 8; off++) {
		for (unsigned v = 0; v < 256; v += 7) {
			for (uint32_t len = 1; len <= 8; len++) {
				uint8_t d[8];

				memset(d, v, sizeof(d));
				assert_true(bus_access(vm_pio_bus(vm), COM1 + off, d, len, true));
				(void)in_wide(vm, COM1 + off, len);
			}
		}
	}
	/* Fill from the host while the guest reprograms: bounded still. */
	for (int i = 0; i < 5; i++) {
		uint8_t b[512] = {0};

		(void)uart_input(u, b, sizeof(b));
	}
	out8(vm, COM1 + 2, 0x03);
	out8(vm, COM1 + 3, 0x03);
	out8(vm, COM1 + 4, 0x08);
	s.len = 0;
	out8(vm, COM1 + 0, 'k');
	assert_int_equal(s.len, 1);
	assert_int_equal(s.buf[0], 'k');
	uart_destroy(u);
	fake_vm_destroy(vm);
}

/* ---- i8042 ---- */

static void test_i8042_probe_answers(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct i8042 *k;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(i8042_create(vm, &k), 0);
	assert_int_equal(in8(vm, 0x64) & 0x01, 0);
	out8(vm, 0x64, 0xaa);
	assert_int_equal(in8(vm, 0x64) & 0x01, 0x01);
	assert_int_equal(in8(vm, 0x60), 0x55);
	assert_int_equal(in8(vm, 0x64) & 0x01, 0);
	assert_int_equal(in8(vm, 0x60), 0); /* empty */
	out8(vm, 0x64, 0x60);
	out8(vm, 0x60, 0x21);
	out8(vm, 0x64, 0x20);
	assert_int_equal(in8(vm, 0x60), 0x21);
	out8(vm, 0x64, 0xa9); /* no mouse */
	assert_int_equal(in8(vm, 0x60), 0x01);
	out8(vm, 0x64, 0xab);
	assert_int_equal(in8(vm, 0x60), 0x00);
	assert_int_equal(in8(vm, 0x92), 0x02);
	assert_int_equal(fake_vm_exit_reason(vm), VM_EXIT_NONE);
	i8042_destroy(k);
	fake_vm_destroy(vm);
}

enum reset_way { RESET_CMD_FE, RESET_OUTPUT_PORT, RESET_PORT_92 };

static void test_i8042_resets(void **state)
{
	(void)state;
	for (int way = RESET_CMD_FE; way <= RESET_PORT_92; way++) {
		struct vm *vm = fake_vm_create(64 << 20);
		struct i8042 *k;

		assert_non_null(vm);
		assert_int_equal(i8042_create(vm, &k), 0);
		if (way == RESET_CMD_FE) {
			out8(vm, 0x64, 0xfe);
		} else if (way == RESET_OUTPUT_PORT) {
			out8(vm, 0x64, 0xd1);
			out8(vm, 0x60, 0x03); /* bit 0 high: no reset */
			assert_int_equal(fake_vm_exit_reason(vm), VM_EXIT_NONE);
			out8(vm, 0x64, 0xd1);
			out8(vm, 0x60, 0x02);
		} else {
			out8(vm, 0x92, 0x02); /* A20 alone */
			assert_int_equal(fake_vm_exit_reason(vm), VM_EXIT_NONE);
			out8(vm, 0x92, 0x01);
		}
		assert_int_equal(fake_vm_exit_reason(vm), VM_EXIT_RESET);
		i8042_destroy(k);
		fake_vm_destroy(vm);
	}
}

/* Every command but the reset ones, and data with no command pending, leave the VM running. */
static void test_i8042_hostile(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct i8042 *k;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(i8042_create(vm, &k), 0);
	for (unsigned cmd = 0; cmd < 256; cmd++) {
		if (cmd == 0xfe || cmd == 0xd1)
			continue;
		out8(vm, 0x64, (uint8_t)cmd);
		out8(vm, 0x60, 0x00); /* a data byte after it: the reset only follows 0xd1 */
		for (uint32_t len = 1; len <= 8; len++) {
			(void)in_wide(vm, 0x60, len);
			(void)in_wide(vm, 0x64, len);
			assert_int_equal(in_wide(vm, 0x92, len), 0x02);
		}
	}
	for (unsigned v = 0; v < 256; v += 2)
		out8(vm, 0x92, (uint8_t)v);
	assert_int_equal(fake_vm_exit_reason(vm), VM_EXIT_NONE);
	i8042_destroy(k);
	fake_vm_destroy(vm);
}

/* ---- CMOS ---- */

static uint8_t cmos_rd(struct vm *vm, uint8_t idx)
{
	out8(vm, 0x70, idx);
	return in8(vm, 0x71);
}

static int from_bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0x0f);
}

static void test_cmos_clock_and_memory(void **state)
{
	struct vm *vm = fake_vm_create(5ULL << 30);
	struct cmos *c;
	struct tm tm;
	time_t now = time(NULL);
	int year;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(cmos_create(vm, &c), 0);
	gmtime_r(&now, &tm);
	year = from_bcd(cmos_rd(vm, 0x32)) * 100 + from_bcd(cmos_rd(vm, 0x09));
	assert_true(year == tm.tm_year + 1900 || year == tm.tm_year + 1901);
	assert_in_range(from_bcd(cmos_rd(vm, 0x08)), 1, 12);
	assert_in_range(from_bcd(cmos_rd(vm, 0x04)), 0, 23);
	assert_in_range(from_bcd(cmos_rd(vm, 0x00)), 0, 59);
	assert_int_equal(cmos_rd(vm, 0x0b), 0x02);
	assert_int_equal(cmos_rd(vm, 0x0d), 0x80);
	assert_int_equal(cmos_rd(vm, 0x0a) & 0x80, 0); /* no update in progress */
	/* 5 GiB: 3 GiB below the hole, 2 GiB above 4 GiB, in 64 KiB units. */
	assert_int_equal(cmos_rd(vm, 0x34) | cmos_rd(vm, 0x35) << 8, (0xC0000000 - (16 << 20)) >> 16);
	assert_int_equal(cmos_rd(vm, 0x5b) | cmos_rd(vm, 0x5c) << 8 | cmos_rd(vm, 0x5d) << 16,
			 (2ULL << 30) >> 16);
	/* Bit 7 of the index is the NMI mask, not part of it. */
	out8(vm, 0x70, 0x80 | 0x40);
	out8(vm, 0x71, 0x77);
	assert_int_equal(cmos_rd(vm, 0x40), 0x77);
	assert_int_equal(in8(vm, 0x70), 0x40);
	cmos_destroy(c);
	fake_vm_destroy(vm);
}

static void test_cmos_hostile(void **state)
{
	struct vm *vm = fake_vm_create(64 << 20);
	struct cmos *c;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(cmos_create(vm, &c), 0);
	for (unsigned idx = 0; idx < 256; idx++) {
		for (uint32_t len = 1; len <= 8; len++) {
			uint8_t d[8];

			memset(d, (uint8_t)idx, sizeof(d));
			assert_true(bus_access(vm_pio_bus(vm), 0x70, d, len, true));
			memset(d, 0xff, sizeof(d));
			assert_true(bus_access(vm_pio_bus(vm), 0x71, d, len, true));
			(void)in_wide(vm, 0x71, len);
			assert_int_equal(in_wide(vm, 0x80, len), 0);
		}
	}
	/* The clock's status registers are computed, not what the guest wrote. */
	assert_int_equal(cmos_rd(vm, 0x0b), 0x02);
	assert_int_equal(cmos_rd(vm, 0x0d), 0x80);
	cmos_destroy(c);
	fake_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uart_transmit_and_thre),
	    cmocka_unit_test(test_uart_receive_bounded),
	    cmocka_unit_test(test_uart_divisor_and_loopback),
	    cmocka_unit_test(test_uart_hostile),
	    cmocka_unit_test(test_i8042_probe_answers),
	    cmocka_unit_test(test_i8042_resets),
	    cmocka_unit_test(test_i8042_hostile),
	    cmocka_unit_test(test_cmos_clock_and_memory),
	    cmocka_unit_test(test_cmos_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
