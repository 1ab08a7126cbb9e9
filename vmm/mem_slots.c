/* Runtime guest memory slots (see mem_slots.h): range allocator, file mappings, KVM slots. */
#include "mem_slots.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm.h"
#include "log.h"

#define TAG "memslot"

/* ---- range allocator ------------------------------------------------------------- */

static bool round_up(uint64_t v, uint64_t align, uint64_t *out)
{
	if (__builtin_add_overflow(v, align - 1, out))
		return false;
	*out &= ~(align - 1);
	return true;
}

int gpa_alloc_init(struct gpa_alloc *a, uint64_t base, uint64_t end, uint64_t align)
{
	memset(a, 0, sizeof(*a));
	if (!align || (align & (align - 1)) || !round_up(base, align, &a->base))
		return -EINVAL;
	a->end = end & ~(align - 1);
	a->align = align;
	return a->base < a->end ? 0 : -EINVAL;
}

int gpa_alloc_take(struct gpa_alloc *a, uint64_t size, uint64_t *start)
{
	uint64_t want, at = a->base;
	int i;

	if (!size || !round_up(size, a->align, &want))
		return -EINVAL;
	if (a->nr >= MEM_SLOTS_MAX)
		return -ENOSPC;
	/* Gaps in address order: before used[0], between neighbours, after the last. */
	for (i = 0; i <= a->nr; i++) {
		uint64_t gap_end = i < a->nr ? a->used[i].start : a->end;

		if (gap_end >= at && gap_end - at >= want)
			break;
		if (i < a->nr)
			at = a->used[i].start + a->used[i].size;
	}
	if (i > a->nr)
		return -ENOSPC;
	memmove(&a->used[i + 1], &a->used[i], (a->nr - i) * sizeof(a->used[0]));
	a->used[i] = (struct gpa_range){.start = at, .size = want};
	a->nr++;
	*start = at;
	return 0;
}

int gpa_alloc_give(struct gpa_alloc *a, uint64_t start)
{
	for (int i = 0; i < a->nr; i++)
		if (a->used[i].start == start) {
			memmove(&a->used[i], &a->used[i + 1], (a->nr - i - 1) * sizeof(a->used[0]));
			a->nr--;
			return 0;
		}
	return -ENOENT;
}

/* ---- slots ----------------------------------------------------------------------- */

int mem_slots_create(struct mem_slots **out, int vm_fd, uint64_t base, uint64_t end,
		     bool readonly_ok)
{
	struct mem_slots *ms;
	int ret;

	*out = NULL;
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	ret = gpa_alloc_init(&ms->alloc, base, end, MEM_SLOT_SECTION);
	if (ret) {
		free(ms);
		return ret;
	}
	pthread_mutex_init(&ms->lock, NULL);
	ms->vm_fd = vm_fd;
	ms->readonly_ok = readonly_ok;
	*out = ms;
	return 0;
}

void mem_slots_destroy(struct mem_slots *ms)
{
	if (!ms)
		return;
	for (int i = 0; i < MEM_SLOTS_MAX; i++)
		if (ms->slots[i]) {
			pr_warn(TAG, "slot %u at 0x%llx still mapped at teardown", ms->slots[i]->id,
				(unsigned long long)ms->slots[i]->gpa);
			mem_slot_remove(ms->slots[i]);
		}
	pthread_mutex_destroy(&ms->lock);
	free(ms);
}

static int kvm_slot_set(struct mem_slots *ms, const struct mem_slot *s, bool add)
{
	struct kvm_userspace_memory_region r = {
	    .slot = s->id,
	    .flags = add && s->read_only ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = s->gpa,
	    .memory_size = add ? s->size : 0, /* size 0 deletes the slot */
	    .userspace_addr = (uintptr_t)s->hva,
	};

	if (ms->vm_fd < 0)
		return 0;
	long ret = kvm_ioctl_ptr(ms->vm_fd, KVM_SET_USER_MEMORY_REGION, &r,
				 add ? "(runtime slot added)" : "(runtime slot deleted)");

	return ret < 0 ? (int)ret : 0;
}

/* The file at the start, anonymous zero pages up to the 2 MiB boundary. */
static int map_file(struct mem_slot *s, int fd)
{
	int prot = s->read_only ? PROT_READ : PROT_READ | PROT_WRITE;
	uint8_t *p;

	p = mmap(NULL, s->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (mmap(p, s->file_size, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		goto fail;
	if (s->size > s->file_size &&
	    mmap(p + s->file_size, s->size - s->file_size, prot,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		goto fail;
	/* Forked helpers must not keep the file mapped (or share guest-visible pages). */
	madvise(p, s->size, MADV_DONTFORK);
	s->hva = p;
	return 0;
fail : {
	int ret = -errno;

	munmap(p, s->size);
	return ret;
}
}

int mem_slot_add(struct mem_slots *ms, int fd, uint64_t file_size, bool read_only,
		 struct mem_slot **out)
{
	struct mem_slot *s;
	int idx = -1, ret;

	*out = NULL;
	if (!file_size || (file_size & 0xfff))
		return -EINVAL;
	if (read_only && ms->vm_fd >= 0 && !ms->readonly_ok)
		return -EOPNOTSUPP;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->owner = ms;
	s->read_only = read_only;
	s->file_size = file_size;
	if (!round_up(file_size, MEM_SLOT_SUBSECT, &s->size)) {
		free(s);
		return -EINVAL;
	}
	pthread_mutex_lock(&ms->lock);
	for (int i = 0; i < MEM_SLOTS_MAX && idx < 0; i++)
		if (!ms->slots[i])
			idx = i;
	ret = idx < 0 ? -ENOSPC : gpa_alloc_take(&ms->alloc, s->size, &s->gpa);
	if (ret)
		goto unlock;
	s->id = MEM_SLOTS_FIRST_ID + idx;
	s->range = (s->size + MEM_SLOT_SECTION - 1) & ~(MEM_SLOT_SECTION - 1); /* what was taken */
	ret = map_file(s, fd);
	if (ret)
		goto give;
	ret = kvm_slot_set(ms, s, true);
	if (ret)
		goto unmap;
	ms->slots[idx] = s;
	ms->nr++;
	pthread_mutex_unlock(&ms->lock);
	pr_info(TAG, "slot %u: %s 0x%llx+0x%llx (file %llu bytes)", s->id, read_only ? "ro" : "rw",
		(unsigned long long)s->gpa, (unsigned long long)s->size,
		(unsigned long long)file_size);
	*out = s;
	return 0;
unmap:
	munmap(s->hva, s->size);
give:
	gpa_alloc_give(&ms->alloc, s->gpa);
unlock:
	pthread_mutex_unlock(&ms->lock);
	free(s);
	return ret;
}

void mem_slot_remove(struct mem_slot *s)
{
	struct mem_slots *ms;

	if (!s)
		return;
	ms = s->owner;
	pthread_mutex_lock(&ms->lock);
	/* KVM first: once the slot is gone no vCPU can reach the pages we unmap. */
	if (kvm_slot_set(ms, s, false))
		pr_err(TAG, "slot %u: the range stays reserved", s->id);
	else
		gpa_alloc_give(&ms->alloc, s->gpa);
	munmap(s->hva, s->size);
	ms->slots[s->id - MEM_SLOTS_FIRST_ID] = NULL;
	ms->nr--;
	pthread_mutex_unlock(&ms->lock);
	pr_info(TAG, "slot %u: removed", s->id);
	free(s);
}

int mem_slots_count(struct mem_slots *ms)
{
	int n;

	pthread_mutex_lock(&ms->lock);
	n = ms->nr;
	pthread_mutex_unlock(&ms->lock);
	return n;
}

void mem_slots_usage(struct mem_slots *ms, uint64_t *reserved, uint64_t *mapped)
{
	*reserved = *mapped = 0;
	pthread_mutex_lock(&ms->lock);
	for (int i = 0; i < MEM_SLOTS_MAX; i++)
		if (ms->slots[i]) {
			*reserved += ms->slots[i]->range;
			*mapped += ms->slots[i]->size;
		}
	pthread_mutex_unlock(&ms->lock);
}
