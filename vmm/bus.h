/*
 * PIO and MMIO buses: address ranges mapped to device callbacks. Lookups run
 * on vCPU threads; a region removed while a vCPU is inside it stays valid
 * until that access returns (bus_unregister waits for it).
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct bus_region;

/* offset is relative to the region base; len is 1, 2, 4 or 8. */
typedef void (*bus_access_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write);

int bus_create(struct bus **out, const char *name) __attribute__((warn_unused_result));
void bus_destroy(struct bus *bus);

/* Fails with -EEXIST when the range overlaps a registered one, -EINVAL on len 0/overflow. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn fn, void *opaque,
		 struct bus_region **out) __attribute__((warn_unused_result));
/*
 * Removes the region and waits until no access is inside its callback.
 * Must not be called from within that region's own callback. NULL is a no-op.
 */
void bus_unregister(struct bus *bus, struct bus_region *region);

/* Dispatches one access; returns false when no region covers addr. */
bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

/*
 * For a device with 1-byte registers: a wider read returns the register in
 * data[0] and zeroes above it, never what the buffer held before.
 */
static inline void bus_read_zero_upper(uint8_t *data, uint32_t len)
{
	for (uint32_t i = 1; i < len; i++)
		data[i] = 0;
}

#endif
