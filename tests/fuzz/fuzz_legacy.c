/*
 * The legacy PC devices (UART, i8042, CMOS/RTC and the POST port) driven by
 * a guest script of port accesses, with host input arriving for the UART in
 * between. Each step: a port (one of the devices' or a neighbour), a width
 * (1-8), a direction and the bytes. Checks what the vCPU relies on: every
 * read fills the whole access (the register in byte 0, zeros above it), and
 * the UART keeps sending whatever the guest did to its registers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "tests/unit/fake_vm.h"
#include "vmm/legacy.h"
#include "vmm/log.h"

static const uint16_t ports[] = {0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff,
				 0x60,	0x64,  0x92,  0x70,  0x71,  0x80,  0x61,  0x400};

static size_t sent;

static void count_out(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	sent += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct vm *vm;
	struct uart *u;
	struct i8042 *k;
	struct cmos *c;
	uint8_t one = 'z';

	log_threshold = LOG_ERROR;
	vm = fake_vm_create(64 << 20);
	if (!vm || uart_create(vm, 0x3f8, 4, count_out, NULL, &u) || i8042_create(vm, &k) ||
	    cmos_create(vm, &c))
		abort();
	while (in.n) {
		unsigned op = take(&in);
		uint16_t port = ports[op & 0x0f];
		uint32_t len = 1 + (take(&in) & 7);
		uint8_t buf[8];

		if (op & 0x20) {
			uint8_t host[64];
			size_t n = take(&in) % sizeof(host);

			for (size_t i = 0; i < n; i++)
				host[i] = (uint8_t)take(&in);
			(void)uart_input(u, host, n);
		}
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)take(&in);
		if (op & 0x40) {
			(void)bus_access(vm_pio_bus(vm), port, buf, len, true);
		} else {
			memset(buf, 0xa5, sizeof(buf));
			if (bus_access(vm_pio_bus(vm), port, buf, len, false))
				for (uint32_t i = 1; i < len; i++)
					if (buf[i])
						abort();
		}
	}
	/* Back to a sane line setting: the next byte must reach the sink. */
	sent = 0;
	(void)bus_access(vm_pio_bus(vm), 0x3fb, (uint8_t[]){0x03}, 1, true);
	(void)bus_access(vm_pio_bus(vm), 0x3fc, (uint8_t[]){0x08}, 1, true);
	(void)bus_access(vm_pio_bus(vm), 0x3f8, &one, 1, true);
	if (sent != 1)
		abort();
	cmos_destroy(c);
	i8042_destroy(k);
	uart_destroy(u);
	fake_vm_destroy(vm);
	return 0;
}
