/*
 * CMOS/RTC at ports 0x70/0x71: the wall clock (BCD, 24-hour, read from the
 * host), the status registers Linux checks, and the memory-size bytes.
 * Also swallows the POST diagnostic port 0x80 that Linux uses as a delay.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "bus.h"
#include "legacy.h"
#include "mem.h"
#include "vm.h"

#define CMOS_INDEX 0x70
#define POST_PORT  0x80

struct cmos {
	struct vm *vm;
	struct bus_region *region, *post_region;
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
};

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t cmos_read(struct cmos *c, uint8_t idx)
{
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	switch (idx) {
	case 0x00: return bcd(tm.tm_sec);
	case 0x02: return bcd(tm.tm_min);
	case 0x04: return bcd(tm.tm_hour);
	case 0x06: return bcd(tm.tm_wday + 1);
	case 0x07: return bcd(tm.tm_mday);
	case 0x08: return bcd(tm.tm_mon + 1);
	case 0x09: return bcd(tm.tm_year % 100);
	case 0x32: return bcd((tm.tm_year + 1900) / 100);
	case 0x0a: return 0x26; /* 32.768 kHz base, 1.024 kHz rate, no update in progress */
	case 0x0b: return 0x02; /* 24-hour mode, BCD */
	case 0x0c: return 0x00;
	case 0x0d: return 0x80; /* valid RAM and time */
	default: return c->ram[idx & 0x7f];
	}
}

static void cmos_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct cmos *c = opaque;

	pthread_mutex_lock(&c->lock);
	if (off == 0) {
		if (is_write)
			c->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			data[0] = c->index;
	} else {
		if (is_write)
			c->ram[c->index] = data[0];
		else
			data[0] = cmos_read(c, c->index);
	}
	if (!is_write)
		bus_read_zero_upper(data, len);
	pthread_mutex_unlock(&c->lock);
}

static void post_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0;
}

/* Memory size bytes as a PC BIOS leaves them (some guests read them). */
static void cmos_set_memory(struct cmos *c, uint64_t ram)
{
	uint64_t lo = ram < MEM_HOLE_START ? ram : MEM_HOLE_START;
	uint64_t above16m = lo > (16ULL << 20) ? (lo - (16ULL << 20)) >> 16 : 0;
	uint64_t above4g = ram > lo ? (ram - lo) >> 16 : 0;

	if (above16m > 0xffff)
		above16m = 0xffff;
	c->ram[0x34] = above16m & 0xff;
	c->ram[0x35] = (above16m >> 8) & 0xff;
	c->ram[0x5b] = above4g & 0xff;
	c->ram[0x5c] = (above4g >> 8) & 0xff;
	c->ram[0x5d] = (above4g >> 16) & 0xff;
}

int cmos_create(struct vm *vm, struct cmos **out)
{
	struct cmos *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->vm = vm;
	pthread_mutex_init(&c->lock, NULL);
	cmos_set_memory(c, mem_ram_size(vm_mem(vm)));
	ret = bus_register(vm_pio_bus(vm), CMOS_INDEX, 2, cmos_access, c, &c->region);
	if (!ret)
		ret = bus_register(vm_pio_bus(vm), POST_PORT, 1, post_access, c, &c->post_region);
	if (ret) {
		cmos_destroy(c);
		return ret;
	}
	*out = c;
	return 0;
}

void cmos_destroy(struct cmos *c)
{
	if (!c)
		return;
	bus_unregister(vm_pio_bus(c->vm), c->region);
	bus_unregister(vm_pio_bus(c->vm), c->post_region);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
