/*
 * The firmware debug port at 0x402 (QEMU's isa-debugcon as OVMF's debug
 * builds expect it): a read returns 0xE9 ("present"), each byte written is
 * part of a line logged at debug level (UVM_LOG=debug). Lines are cut at
 * DEBUG_PORT_LINE bytes; log_msg escapes what the guest sends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "legacy.h"
#include "log.h"
#include "vm.h"

struct debug_port {
	struct vm *vm;
	struct bus_region *region;
	pthread_mutex_t lock;
	struct debug_port_line line;
};

bool debug_port_line_feed(struct debug_port_line *l, uint8_t c)
{
	if (c == '\r')
		return false;
	if (c == '\n')
		return true;
	l->buf[l->len++] = (char)(c ? c : ' ');
	return l->len == DEBUG_PORT_LINE;
}

static void debug_port_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	struct debug_port *d = opaque;

	(void)off;
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = DEBUG_PORT_MAGIC;
		return;
	}
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (!debug_port_line_feed(&d->line, data[i]))
			continue;
		d->line.buf[d->line.len] = '\0';
		pr_dbg("fw", "%s", d->line.buf);
		d->line.len = 0;
	}
	pthread_mutex_unlock(&d->lock);
}

int debug_port_create(struct vm *vm, struct debug_port **out)
{
	struct debug_port *d = calloc(1, sizeof(*d));
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	pthread_mutex_init(&d->lock, NULL);
	ret = bus_register(vm_pio_bus(vm), DEBUG_PORT, 1, debug_port_access, d, &d->region);
	if (ret) {
		pthread_mutex_destroy(&d->lock);
		free(d);
		return ret;
	}
	*out = d;
	return 0;
}

void debug_port_destroy(struct debug_port *d)
{
	if (!d)
		return;
	bus_unregister(vm_pio_bus(d->vm), d->region);
	if (d->line.len) {
		d->line.buf[d->line.len] = '\0';
		pr_dbg("fw", "%s", d->line.buf);
	}
	pthread_mutex_destroy(&d->lock);
	free(d);
}
