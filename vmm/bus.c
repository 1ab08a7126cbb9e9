/*
 * PIO/MMIO bus: a sorted array of regions under a rwlock. Each access pins
 * its region with a reference so bus_unregister can wait for in-flight
 * accesses before the owner frees the device behind it.
 */
#include "bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bus_region {
	uint64_t base, len;
	bus_access_fn fn;
	void *opaque;
	int refs;     /* accesses inside fn right now */
	bool removed; /* unregister is waiting for refs to drop to 0 */
};

struct bus {
	char name[16];
	pthread_rwlock_t lock;
	struct bus_region **regions; /* sorted by base, non-overlapping */
	int nr, cap;
	pthread_mutex_t drain_lock;
	pthread_cond_t drained;
};

int bus_create(struct bus **out, const char *name)
{
	struct bus *bus = calloc(1, sizeof(*bus));

	*out = NULL;
	if (!bus)
		return -ENOMEM;
	strncpy(bus->name, name ? name : "bus", sizeof(bus->name) - 1);
	pthread_rwlock_init(&bus->lock, NULL);
	pthread_mutex_init(&bus->drain_lock, NULL);
	pthread_cond_init(&bus->drained, NULL);
	*out = bus;
	return 0;
}

void bus_destroy(struct bus *bus)
{
	if (!bus)
		return;
	for (int i = 0; i < bus->nr; i++)
		free(bus->regions[i]);
	free(bus->regions);
	pthread_rwlock_destroy(&bus->lock);
	pthread_mutex_destroy(&bus->drain_lock);
	pthread_cond_destroy(&bus->drained);
	free(bus);
}

/* Index of the first region whose end is above addr (caller holds the lock). */
static int bus_find(const struct bus *bus, uint64_t addr)
{
	int lo = 0, hi = bus->nr;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_region *r = bus->regions[mid];

		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn fn, void *opaque,
		 struct bus_region **out)
{
	struct bus_region *r;
	uint64_t end;
	int idx, ret = 0;

	if (out)
		*out = NULL;
	if (len == 0 || !fn || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct bus_region){.base = base, .len = len, .fn = fn, .opaque = opaque};

	pthread_rwlock_wrlock(&bus->lock);
	idx = bus_find(bus, base);
	if (idx < bus->nr && bus->regions[idx]->base < end) {
		ret = -EEXIST;
		goto unlock;
	}
	if (bus->nr == bus->cap) {
		int cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_region **n = realloc(bus->regions, cap * sizeof(*n));

		if (!n) {
			ret = -ENOMEM;
			goto unlock;
		}
		bus->regions = n;
		bus->cap = cap;
	}
	memmove(&bus->regions[idx + 1], &bus->regions[idx], (bus->nr - idx) * sizeof(r));
	bus->regions[idx] = r;
	bus->nr++;
unlock:
	pthread_rwlock_unlock(&bus->lock);
	if (ret) {
		free(r);
		return ret;
	}
	if (out)
		*out = r;
	return 0;
}

void bus_unregister(struct bus *bus, struct bus_region *region)
{
	bool found = false;

	if (!region)
		return;
	pthread_rwlock_wrlock(&bus->lock);
	for (int i = 0; i < bus->nr; i++) {
		if (bus->regions[i] == region) {
			memmove(&bus->regions[i], &bus->regions[i + 1],
				(bus->nr - i - 1) * sizeof(region));
			bus->nr--;
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	if (!found)
		return;
	/* No new access can find the region now; wait for the ones inside it. */
	__atomic_store_n(&region->removed, true, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&bus->drain_lock);
	while (__atomic_load_n(&region->refs, __ATOMIC_SEQ_CST) > 0)
		pthread_cond_wait(&bus->drained, &bus->drain_lock);
	pthread_mutex_unlock(&bus->drain_lock);
	free(region);
}

bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct bus_region *r = NULL;
	int idx;

	pthread_rwlock_rdlock(&bus->lock);
	idx = bus_find(bus, addr);
	if (idx < bus->nr && bus->regions[idx]->base <= addr) {
		r = bus->regions[idx];
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_rwlock_unlock(&bus->lock);
	if (!r)
		return false;

	r->fn(r->opaque, addr - r->base, data, len, is_write);

	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&r->removed, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&bus->drain_lock);
		pthread_cond_broadcast(&bus->drained);
		pthread_mutex_unlock(&bus->drain_lock);
	}
	return true;
}
