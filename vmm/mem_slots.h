/*
 * Guest memory added and removed at runtime (virtio-pmem): a guest-physical
 * range allocator above RAM and the 64-bit PCI window, and host files mapped
 * into those ranges as KVM memory slots.
 *
 * Placement: every range starts on a 128 MiB boundary and spans whole 128 MiB
 * sections (the memory-hotplug section of x86-64 Linux), so no two devices
 * share a section in the guest. The mapping itself (and the KVM slot) is the
 * file rounded up to 2 MiB, the subsection ZONE_DEVICE memory must fill: the
 * bytes past the end of the file read as zeros and are never written back.
 *
 * Threads: add and remove run on the control thread; slot fields are
 * immutable while the slot exists, so device threads may read them.
 */
#ifndef VMM_MEM_SLOTS_H
#define VMM_MEM_SLOTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MEM_SLOT_SECTION   (128ULL << 20) /* range alignment and granule */
#define MEM_SLOT_SUBSECT   (2ULL << 20)	  /* mapping granule */
#define MEM_SLOTS_MAX	   256		  /* ranges (and KVM slots) at once */
#define MEM_SLOTS_FIRST_ID 16		  /* KVM slot ids below are RAM's */

/* ---- the range allocator (pure; unit-tested) ------------------------------------- */

struct gpa_range {
	uint64_t start, size;
};

/* First-fit over [base, end), ranges kept sorted by start. */
struct gpa_alloc {
	uint64_t base, end, align;
	int nr;
	struct gpa_range used[MEM_SLOTS_MAX];
};

/* base and end are rounded inwards to align (a power of two); -EINVAL when nothing is left. */
int gpa_alloc_init(struct gpa_alloc *a, uint64_t base, uint64_t end, uint64_t align)
    __attribute__((warn_unused_result));
/* Takes size bytes (rounded up to align) at the lowest free address: 0, -ENOSPC, -EINVAL. */
int gpa_alloc_take(struct gpa_alloc *a, uint64_t size, uint64_t *start)
    __attribute__((warn_unused_result));
/* Gives back the range that starts at start: 0 or -ENOENT. */
int gpa_alloc_give(struct gpa_alloc *a, uint64_t start);

/* ---- file-backed slots --------------------------------------------------------------- */

struct mem_slot {
	struct mem_slots *owner;
	uint32_t id;	    /* KVM slot id */
	uint64_t gpa;	    /* guest-physical start (128 MiB aligned) */
	uint64_t size;	    /* bytes mapped and given to KVM (2 MiB multiple) */
	uint64_t file_size; /* bytes of the file behind [gpa, gpa+file_size) */
	uint64_t range;	    /* bytes reserved in the allocator (128 MiB multiple) */
	uint8_t *hva;
	bool read_only;
};

struct mem_slots {
	pthread_mutex_t lock;
	int vm_fd; /* -1: no KVM (tests map only) */
	bool readonly_ok;
	struct gpa_alloc alloc;
	struct mem_slot *slots[MEM_SLOTS_MAX];
	int nr;
};

/*
 * vm_fd may be -1 (no KVM slots: unit tests). The ranges live in [base, end).
 * readonly_ok: the host's KVM has KVM_CAP_READONLY_MEM.
 */
int mem_slots_create(struct mem_slots **out, int vm_fd, uint64_t base, uint64_t end,
		     bool readonly_ok) __attribute__((warn_unused_result));
/* Every slot must be gone (a leftover is unmapped and logged). NULL ok. */
void mem_slots_destroy(struct mem_slots *ms);

/*
 * Maps file_size bytes of fd (a page multiple, > 0) MAP_SHARED (PROT_READ and
 * a KVM_MEM_READONLY slot when read_only) at a fresh range. -EINVAL (size),
 * -ENOSPC (no range or slot left), -EOPNOTSUPP (read-only slots unsupported),
 * or the mmap/ioctl errno.
 */
int mem_slot_add(struct mem_slots *ms, int fd, uint64_t file_size, bool read_only,
		 struct mem_slot **out) __attribute__((warn_unused_result));
/* Deletes the KVM slot, unmaps, frees the range. NULL ok. */
void mem_slot_remove(struct mem_slot *s);
int mem_slots_count(struct mem_slots *ms);
/* Bytes reserved in guest-physical space and bytes mapped, summed over the slots. */
void mem_slots_usage(struct mem_slots *ms, uint64_t *reserved, uint64_t *mapped);

#endif
