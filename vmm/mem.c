/* Guest RAM: anonymous mappings split around the 32-bit MMIO hole. */
#include "mem_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MEM_HUGE_ALIGN (2ULL << 20)

/*
 * Maps size bytes aligned to 2 MiB, so that guest-physical 2 MiB frames line up
 * with host transparent huge pages: fewer nested page faults and TLB misses.
 */
static int mem_map_region(struct guest_mem *mem, uint64_t gpa, uint64_t size)
{
	uint64_t span = size + MEM_HUGE_ALIGN;
	uint8_t *raw, *p;

	raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	p = (uint8_t *)(((uintptr_t)raw + MEM_HUGE_ALIGN - 1) & ~(uintptr_t)(MEM_HUGE_ALIGN - 1));
	if (p > raw)
		munmap(raw, p - raw);
	if (p + size < raw + span)
		munmap(p + size, (raw + span) - (p + size));
	madvise(p, size, MADV_HUGEPAGE);
	/* Guest RAM should not be copied into forked children (helpers, execs). */
	madvise(p, size, MADV_DONTFORK);
	mem->regions[mem->nr_regions++] = (struct mem_region){.gpa = gpa, .size = size, .hva = p};
	return 0;
}

int mem_create(struct guest_mem **out, uint64_t ram_size)
{
	struct guest_mem *mem;
	uint64_t lo, hi;
	int ret;

	*out = NULL;
	if (ram_size == 0 || (ram_size & 0xfff))
		return -EINVAL;
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->owned = true;
	mem->ram_size = ram_size;
	lo = ram_size < MEM_HOLE_START ? ram_size : MEM_HOLE_START;
	hi = ram_size - lo;
	ret = mem_map_region(mem, 0, lo);
	if (ret == 0 && hi)
		ret = mem_map_region(mem, MEM_4G, hi);
	if (ret) {
		mem_destroy(mem);
		return ret;
	}
	*out = mem;
	return 0;
}

int mem_wrap(struct guest_mem **out, void *buf, uint64_t size)
{
	struct guest_mem *mem;

	*out = NULL;
	if (!buf || size == 0)
		return -EINVAL;
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->regions[0] = (struct mem_region){.gpa = 0, .size = size, .hva = buf};
	mem->nr_regions = 1;
	mem->ram_size = size;
	*out = mem;
	return 0;
}

void mem_destroy(struct guest_mem *mem)
{
	if (!mem)
		return;
	if (mem->owned)
		for (int i = 0; i < mem->nr_regions; i++)
			munmap(mem->regions[i].hva, mem->regions[i].size);
	free(mem);
}

void *gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t last;

	if (len == 0)
		len = 1;
	if (__builtin_add_overflow(gpa, len - 1, &last))
		return NULL;
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && last < r->gpa + r->size)
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, size_t len)
{
	void *src = gpa_to_hva(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

int mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, size_t len)
{
	void *dst = gpa_to_hva(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

uint64_t mem_top(const struct guest_mem *mem)
{
	uint64_t top = MEM_4G;

	for (int i = 0; i < mem->nr_regions; i++)
		if (mem->regions[i].gpa + mem->regions[i].size > top)
			top = mem->regions[i].gpa + mem->regions[i].size;
	return top;
}

uint64_t mem_ram_size(const struct guest_mem *mem)
{
	return mem->ram_size;
}

void mem_layout(const struct guest_mem *mem, uint64_t *lo_size, uint64_t *hi_size)
{
	*lo_size = 0;
	*hi_size = 0;
	for (int i = 0; i < mem->nr_regions; i++) {
		if (mem->regions[i].gpa < MEM_4G)
			*lo_size += mem->regions[i].size;
		else
			*hi_size += mem->regions[i].size;
	}
}
