/* Guest RAM's regions: private to vmm/ (mem.c maps them, vm.c hands them to KVM). */
#ifndef VMM_MEM_PRIV_H
#define VMM_MEM_PRIV_H

#include "mem.h"

#define MEM_MAX_REGIONS 4

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region regions[MEM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size; /* total bytes of RAM */
	bool owned;	   /* regions were mmap'd by mem_create */
};

#endif
