/*
 * i8042 keyboard controller, only as far as Linux needs: its probe answers
 * and the pulse-reset command (0xFE), which is how the guest reboots.
 * Port 0x92 bit 0 (fast reset) is handled too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "bus.h"
#include "legacy.h"
#include "vm.h"

#define I8042_DATA    0x60
#define I8042_CMD     0x64
#define I8042_PORT_92 0x92

#define STS_OBF 0x01 /* output buffer full */
#define STS_SYS 0x04

struct i8042 {
	struct vm *vm;
	struct bus_region *data_region, *cmd_region, *port92_region;
	pthread_mutex_t lock;
	uint8_t ctr;	    /* controller configuration byte */
	uint8_t out;	    /* byte waiting in the output buffer */
	bool out_full;
	uint8_t pending_cmd; /* command expecting a data byte on 0x60 */
};

static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case 0x20: /* read configuration byte */
		i8042_reply(k, k->ctr);
		break;
	case 0x60: /* write configuration byte: data follows */
	case 0xd1: /* write output port: data follows */
		k->pending_cmd = cmd;
		break;
	case 0xaa: /* controller self-test */
		i8042_reply(k, 0x55);
		break;
	case 0xa9: /* aux port test: report failure, there is no mouse */
	case 0xab: /* keyboard port test */
		i8042_reply(k, cmd == 0xab ? 0x00 : 0x01);
		break;
	case 0xfe: /* pulse the reset line */
		vm_request_exit(k->vm, VM_EXIT_RESET);
		break;
	default:
		break;
	}
}

static void i8042_data(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	(void)off;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		if (k->pending_cmd == 0x60)
			k->ctr = data[0];
		else if (k->pending_cmd == 0xd1 && !(data[0] & 1))
			vm_request_exit(k->vm, VM_EXIT_RESET); /* output port bit 0 low: reset */
		k->pending_cmd = 0;
	} else {
		data[0] = k->out_full ? k->out : 0;
		k->out_full = false;
		bus_read_zero_upper(data, len);
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_cmd(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	(void)off;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		i8042_command(k, data[0]);
	} else {
		data[0] = STS_SYS | (k->out_full ? STS_OBF : 0);
		bus_read_zero_upper(data, len);
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_port92(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	(void)off;
	if (is_write) {
		if (data[0] & 1)
			vm_request_exit(k->vm, VM_EXIT_RESET);
	} else {
		data[0] = 0x02; /* A20 enabled */
		bus_read_zero_upper(data, len);
	}
}

int i8042_create(struct vm *vm, struct i8042 **out)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	struct bus *pio = vm_pio_bus(vm);
	int ret;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	k->vm = vm;
	k->ctr = 0x45; /* keyboard interrupt on, translation on, system flag */
	pthread_mutex_init(&k->lock, NULL);
	ret = bus_register(pio, I8042_DATA, 1, i8042_data, k, &k->data_region);
	if (!ret)
		ret = bus_register(pio, I8042_CMD, 1, i8042_cmd, k, &k->cmd_region);
	if (!ret)
		ret = bus_register(pio, I8042_PORT_92, 1, i8042_port92, k, &k->port92_region);
	if (ret) {
		i8042_destroy(k);
		return ret;
	}
	*out = k;
	return 0;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	bus_unregister(vm_pio_bus(k->vm), k->data_region);
	bus_unregister(vm_pio_bus(k->vm), k->cmd_region);
	bus_unregister(vm_pio_bus(k->vm), k->port92_region);
	pthread_mutex_destroy(&k->lock);
	free(k);
}
