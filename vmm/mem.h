/* Guest physical memory: the only way device and loader code reaches it. */
#ifndef VMM_MEM_H
#define VMM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Layout: RAM from 0 up to MEM_HOLE_START, the rest above 4 GiB. */
#define MEM_HOLE_START 0xC0000000ULL /* 3 GiB: start of the 32-bit MMIO hole */
#define MEM_4G	       0x100000000ULL

/* Opaque outside vmm/ (vmm/mem_priv.h): nothing above reaches RAM but through gpa_to_hva. */
struct guest_mem;

/* Anonymous MAP_NORESERVE RAM of ram_size bytes, split around the hole. */
int mem_create(struct guest_mem **out, uint64_t ram_size) __attribute__((warn_unused_result));
/* Wraps caller-owned buffers (unit tests, fuzzers): one region at gpa 0. */
int mem_wrap(struct guest_mem **out, void *buf, uint64_t size) __attribute__((warn_unused_result));
void mem_destroy(struct guest_mem *mem);

/*
 * Host address of [gpa, gpa+len) or NULL when any byte is outside RAM, the
 * range wraps, or it crosses a region boundary. len 0 is treated as 1.
 */
void *gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Checked copies; return 0 or -EFAULT. */
int mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, size_t len);
int mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, size_t len);

/* Total bytes of RAM. */
uint64_t mem_ram_size(const struct guest_mem *mem);
/* Bytes of RAM from 0 up to the hole, and from 4 GiB up (0 when all RAM is below the hole). */
void mem_layout(const struct guest_mem *mem, uint64_t *lo_size, uint64_t *hi_size);

/* First GPA above RAM (start of the 64-bit MMIO window). */
uint64_t mem_top(const struct guest_mem *mem);

#endif
