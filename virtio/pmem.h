/*
 * virtio-pmem (virtio 1.2, 5.19): a host file mapped as guest memory.
 *
 * The file is mapped MAP_SHARED into a runtime memory slot (vmm/mem_slots.h)
 * above RAM and the PCI windows; the device config announces that range
 * {start, size}, and the guest's nvdimm stack turns it into /dev/pmemN,
 * which file systems mount with DAX: the guest reads the host's page cache
 * directly. Read-only devices map PROT_READ into a KVM_MEM_READONLY slot.
 *
 * One request queue carries flushes: {le32 type} out, {le32 ret} in. A flush
 * is an fdatasync of the file, run asynchronously on io_uring (the blk
 * backend, virtio/blk_backend.h), so the event loop never waits for the
 * disk; the answer goes out when it completes. Every kick takes at most
 * PMEM_BUDGET requests and re-kicks itself for the rest.
 */
#ifndef VIRTIO_PMEM_H
#define VIRTIO_PMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

#define VIRTIO_ID_PMEM	   27
#define PMEM_REQ_FLUSH	   0
#define PMEM_RESP_OK	   0
#define PMEM_RESP_EIO	   1
#define PMEM_QUEUE_SIZE	   64
#define PMEM_BUDGET	   32 /* requests per kick */
#define PMEM_PAGE	   4096ULL
#define PMEM_MAX_BYTES_CAP (1ULL << 40) /* no single device above 1 TiB */

struct loop;
struct mem_slots;

struct pmem_config {
	const char *path;
	bool read_only;
	uint64_t max_bytes; /* refuse larger files; 0: PMEM_MAX_BYTES_CAP */
};

/* Device config space as the driver reads it (little-endian, x86). */
struct pmem_cfg_layout {
	uint64_t start;
	uint64_t size;
};
_Static_assert(sizeof(struct pmem_cfg_layout) == 16, "virtio_pmem_config layout");

struct pmem_stats {
	uint64_t flushes;   /* flush requests answered */
	uint64_t errors;    /* answered with PMEM_RESP_EIO */
	uint64_t malformed; /* chains too short for a request and a response */
};

/*
 * Opens cfg->path (a regular file: present, not a directory, a non-zero
 * multiple of 4 KiB, at most max_bytes), maps it into a slot of slots and
 * plugs the function. Returns 0 or -errno with a sentence in err:
 * -ENOENT/-EACCES (open), -EISDIR/-EINVAL (not a regular file, size),
 * -EFBIG (over max_bytes), -ENOSPC (no range or slot left), -EOPNOTSUPP.
 */
int virtio_pmem_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		       struct mem_slots *slots, const struct pmem_config *cfg,
		       struct virtio_dev **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Where the device sits in guest-physical space, for logs and results. */
void virtio_pmem_range(struct virtio_dev *dev, uint64_t *start, uint64_t *size);
void virtio_pmem_stats(struct virtio_dev *dev, struct pmem_stats *out);
/* Tests: the fd flushes go to (replace it to make the backend fail). */
int virtio_pmem_backend_fd(struct virtio_dev *dev);

#endif
