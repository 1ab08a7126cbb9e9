/*
 * The scsi resource manager: virtio-blk disks addressed by (controller, lun),
 * as hcsshim addresses its SCSI disks. Each disk gets a serial derived from
 * its address ("uvm-c0-l1") by which the GCS finds it in /sys/block.
 *
 * Hot-add: the shim places a virtio-blk function on the running machine's PCI
 * bus, then asks the GCS to rescan, wait for the serial and mount. Hot-remove:
 * the GCS unmounts and removes the function in the guest first; only after its
 * ack does the shim unplug the function and close the backend.
 *
 * Disks added before vm.start (scsi.add in Created, or vm.create's "scsi"
 * array) are cold-plugged; scsi_boot_attach() mounts them once the GCS is up.
 *
 * Everything runs on the control thread. A disk the guest let go of is
 * retired (shim/manager.h says why): unplugged from the loop, then answered.
 */
#ifndef SHIM_SCSI_H
#define SHIM_SCSI_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shim/ctl.h"
#include "shim/manager.h"

#define SCSI_MAX_DISKS	     32
#define SCSI_MAX_CONTROLLERS 4
#define SCSI_MAX_LUNS	     64
#define SCSI_SERIAL_LEN	     20 /* virtio-blk's serial field */
#define SCSI_OPTIONS_MAX     512
#define SCSI_DEFAULT_TIMEOUT 30000 /* ms: the guest rescans and waits this long */

struct bridge;
struct guest_mem;
struct io_threads;
struct loop;
struct pci_bus;
struct virtio_dev;
struct scsi;

/* What scsi.add asks for. Strings borrowed from the request's params. */
struct scsi_params {
	unsigned controller, lun;
	const char *host_path;
	bool read_only;
	const char *guest_path;		/* NULL: attach only */
	const char *fs_type;		/* default "ext4" */
	char options[SCSI_OPTIONS_MAX]; /* mount options, comma-joined ("" = none) */
	uint64_t timeout_ms;
};

enum scsi_disk_state {
	SCSI_FREE = 0,
	SCSI_ADDING,   /* the guest is looking for it / mounting */
	SCSI_ATTACHED, /* on the bus (and mounted if asked) */
	SCSI_REMOVING, /* the guest is unmounting / removing it */
	SCSI_RETIRING, /* the guest let go: unplugged on the loop, then answered */
};

struct scsi_disk {
	struct scsi *owner;
	enum scsi_disk_state state;
	unsigned controller, lun;
	char serial[SCSI_SERIAL_LEN + 1];
	char *host_path, *guest_path, *fs_type, *options;
	bool read_only;
	bool in_guest; /* the GCS has seen it (device name known) */
	uint64_t timeout_ms;
	char device[32]; /* guest device, "/dev/vdb" */
	struct virtio_dev *dev;
	struct ctl_req *req; /* the add/remove being served */
};

typedef void (*scsi_boot_fn)(void *opaque, int err, const char *msg);

struct scsi {
	struct scsi_disk disks[SCSI_MAX_DISKS];
	/* the machine, while there is one */
	struct pci_bus *pci;
	struct guest_mem *mem;
	struct loop *loop;
	struct io_threads *io; /* the disks' loops; NULL: loop (unit tests) */
	int num_queues;
	struct mgr_reaper reaper; /* disks the guest let go of, torn down from the loop */
	/* boot-time attach in progress */
	scsi_boot_fn boot_fn;
	void *boot_opaque;
	int boot_pending, boot_err;
	char boot_msg[256];
};

/* ---- pure parts (unit-tested) ---------------------------------------------------- */

/* Parses scsi.add params (or one entry of vm.create's "scsi"); -EINVAL with err. */
int scsi_parse_add(const cJSON *params, struct scsi_params *p, char err[CTL_ERRLEN]);
/*
 * params.options: a string ("ro,noatime") or an array of strings, joined with
 * commas into out ("" when absent). Shared with the vpmem manager.
 */
int scsi_parse_options(const cJSON *params, char out[SCSI_OPTIONS_MAX], char err[CTL_ERRLEN]);
/* Parses scsi.remove params. */
int scsi_parse_remove(const cJSON *params, unsigned *controller, unsigned *lun,
		      char err[CTL_ERRLEN]);
/* The serial the disk at (controller, lun) carries. */
void scsi_serial(unsigned controller, unsigned lun, char out[SCSI_SERIAL_LEN + 1]);

void scsi_init(struct scsi *sc);
struct scsi_disk *scsi_find(struct scsi *sc, unsigned controller, unsigned lun);
/*
 * Takes a free slot for p (state SCSI_ADDING, strings copied). -EEXIST when the
 * address is taken, -ENOSPC when all slots are, -ENOMEM.
 */
int scsi_reserve(struct scsi *sc, const struct scsi_params *p, struct scsi_disk **out)
    __attribute__((warn_unused_result));
/* Frees a slot's strings and marks it free (the device must be gone). */
void scsi_release(struct scsi_disk *d);
int scsi_count(const struct scsi *sc);

/* ---- with a machine --------------------------------------------------------------- */

void scsi_bind(struct scsi *sc, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	       struct io_threads *io, int num_queues);
/* Unplugs every disk (the VM is stopped) and forgets the machine. */
void scsi_unbind(struct scsi *sc);

/* Cold-plugs a disk (before vm.start). Returns 0 or -errno with err filled. */
int scsi_attach_cold(struct scsi *sc, const struct scsi_params *p, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Control methods. bridge is NULL (or not ready) before the GCS is up. */
void scsi_method_add(struct scsi *sc, struct bridge *bridge, bool running, struct ctl_req *req);
void scsi_method_remove(struct scsi *sc, struct bridge *bridge, bool running, struct ctl_req *req);

/*
 * Once the GCS negotiated: has it find (and mount) every cold-plugged disk.
 * fn runs once, when all are done (at once if there are none); err is the first
 * failure's.
 */
void scsi_boot_attach(struct scsi *sc, struct bridge *bridge, scsi_boot_fn fn, void *opaque);

#endif
