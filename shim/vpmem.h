/*
 * The vpmem resource manager: read-only container layers (or writable
 * scratch) as virtio-pmem devices, numbered 0..count-1 as hcsshim numbers its
 * VPMem devices (64 by default, at most 128, 4 GiB each by default).
 *
 * Same order as the scsi manager (shim/scsi.h): parse, reserve a number,
 * place the function and its memory slot, ask the GCS to find /dev/pmemN (by
 * PCI slot) and mount it (DAX where the file system allows), answer. Remove
 * reverses it: the GCS unmounts and removes the function first; only after
 * its ack does the shim unplug, delete the memory slot and unmap the file.
 * Devices added before vm.start are cold-plugged and mounted by
 * vpmem_boot_attach() before vm.start answers.
 *
 * Everything runs on the control thread.
 */
#ifndef SHIM_VPMEM_H
#define SHIM_VPMEM_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shim/ctl.h"
#include "shim/manager.h"
#include "shim/scsi.h"

#define VPMEM_DEFAULT_COUNT	64
#define VPMEM_MAX_COUNT		128
#define VPMEM_DEFAULT_MAX_BYTES (4ULL << 30)
#define VPMEM_MAX_MAX_BYTES	(64ULL << 30) /* vm.create's vpmem_max_bytes ceiling */
#define VPMEM_DEFAULT_TIMEOUT	30000	      /* ms */

struct bridge;
struct guest_mem;
struct io_threads;
struct loop;
struct mem_slots;
struct pci_bus;
struct virtio_dev;
struct vpmem;

struct vpmem_params {
	int number; /* -1: the lowest free one */
	const char *host_path;
	bool read_only;
	const char *guest_path; /* NULL: attach only */
	const char *fs_type;	/* "ext4" (default) or "erofs" */
	char options[SCSI_OPTIONS_MAX];
	uint64_t timeout_ms;
};

/* RETIRING: the guest let go; unplugged from the loop, then answered (shim/manager.h). */
enum vpmem_state { VPMEM_FREE = 0, VPMEM_ADDING, VPMEM_ATTACHED, VPMEM_REMOVING, VPMEM_RETIRING };

struct vpmem_dev {
	struct vpmem *owner;
	enum vpmem_state state;
	unsigned number;
	char *host_path, *guest_path, *fs_type, *options;
	bool read_only;
	bool in_guest; /* the GCS has found it */
	bool dax;      /* mounted with DAX (the GCS says) */
	uint64_t timeout_ms;
	char device[32]; /* "/dev/pmem3" */
	struct virtio_dev *dev;
	struct ctl_req *req;
};

typedef void (*vpmem_boot_fn)(void *opaque, int err, const char *msg);

struct vpmem {
	struct vpmem_dev devs[VPMEM_MAX_COUNT];
	struct mgr_reaper reaper; /* devices the guest let go of, torn down from the loop */
	unsigned count;		  /* numbers 0..count-1 (vm.create's vpmem_count) */
	uint64_t max_bytes;	  /* per file (vpmem_max_bytes) */
	struct pci_bus *pci;
	struct guest_mem *mem;
	struct loop *loop;
	struct io_threads *io; /* the devices' loops; NULL: loop (unit tests) */
	struct mem_slots *slots;
	vpmem_boot_fn boot_fn;
	void *boot_opaque;
	int boot_pending, boot_err;
	char boot_msg[256];
};

/* ---- pure parts (unit-tested) ---------------------------------------------------- */

/* vm.create's vpmem_count and vpmem_max_bytes into count and max_bytes. */
int vpmem_parse_limits(const cJSON *params, unsigned *count, uint64_t *max_bytes,
		       char err[CTL_ERRLEN]);
/* vpmem.add params; count bounds "device". -EINVAL with err. */
int vpmem_parse_add(const cJSON *params, unsigned count, struct vpmem_params *p,
		    char err[CTL_ERRLEN]);
int vpmem_parse_remove(const cJSON *params, unsigned count, unsigned *number, char err[CTL_ERRLEN]);

void vpmem_init(struct vpmem *vp, unsigned count, uint64_t max_bytes);
struct vpmem_dev *vpmem_find(struct vpmem *vp, unsigned number);
/* Takes p's number (or the lowest free one): -EEXIST, -ENOSPC, -ENOMEM. */
int vpmem_reserve(struct vpmem *vp, const struct vpmem_params *p, struct vpmem_dev **out)
    __attribute__((warn_unused_result));
void vpmem_release(struct vpmem_dev *d);
int vpmem_count_used(const struct vpmem *vp);

/* ---- with a machine --------------------------------------------------------------- */

void vpmem_bind(struct vpmem *vp, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
		struct io_threads *io, struct mem_slots *slots);
/* Unplugs every device (the VM is stopped) and forgets the machine. */
void vpmem_unbind(struct vpmem *vp);

void vpmem_method_add(struct vpmem *vp, struct bridge *bridge, bool running, struct ctl_req *req);
void vpmem_method_remove(struct vpmem *vp, struct bridge *bridge, bool running,
			 struct ctl_req *req);
/* Once the GCS negotiated: finds and mounts every cold-plugged device; fn runs once. */
void vpmem_boot_attach(struct vpmem *vp, struct bridge *bridge, vpmem_boot_fn fn, void *opaque);

#endif
