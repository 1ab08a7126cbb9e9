/*
 * The plan9 resource manager: host directories shared into the guest over
 * virtio-9p (virtio/9p.c), as hcsshim's Plan9 manager shares them. A share
 * is named; the name is its mount tag. It may be read-only and may be
 * restricted to a list of allowed names in its root.
 *
 * Same order as the scsi manager (scsi.c): hot-add places the function on the
 * running machine's bus, then asks the GCS to find it by tag and mount it;
 * hot-remove has the GCS unmount and remove the function first, and only
 * after its ack unplugs it. Shares added before vm.start (plan9.add in
 * Created, or vm.create's "plan9" array) are mounted by plan9_boot_attach
 * before vm.start answers.
 *
 * The 9p spawner is made at bind (vm.create), while the control thread may
 * still create threads; it makes PLAN9_WORKERS workers for each share when
 * the share is added, each Landlocked beneath that share's root. Everything
 * else runs on the control thread.
 */
#ifndef SHIM_PLAN9_H
#define SHIM_PLAN9_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shim/ctl.h"
#include "shim/manager.h"

#define PLAN9_MAX_SHARES      32
#define PLAN9_NAME_MAX	      32
#define PLAN9_MAX_ALLOWED     256
#define PLAN9_WORKERS	      4	     /* per share */
#define PLAN9_MSIZE	      512000 /* what Linux's virtio transport takes at most (6.1) */
#define PLAN9_DEFAULT_TIMEOUT 30000

struct bridge;
struct guest_mem;
struct io_threads;
struct loop;
struct pci_bus;
struct virtio_dev;
struct p9_pool;
struct p9_spawner;
struct plan9;

/* What plan9.add asks for. Strings borrowed from the request's params. */
struct plan9_params {
	const char *name;
	const char *host_path;
	const char *guest_path;
	bool read_only;
	const cJSON *allowed; /* array of strings, or NULL: not restricted */
	size_t nr_allowed;
	uint64_t timeout_ms;
};

/* RETIRING: the guest let go; unplugged from the loop, then answered (shim/manager.h). */
enum plan9_state { PLAN9_FREE = 0, PLAN9_ADDING, PLAN9_ATTACHED, PLAN9_REMOVING, PLAN9_RETIRING };

struct plan9_share {
	struct plan9 *owner;
	enum plan9_state state;
	char *name, *host_path, *guest_path;
	char **allowed;
	int nr_allowed;
	bool read_only;
	bool in_guest; /* mounted by the GCS */
	uint64_t timeout_ms;
	char device[32];
	struct virtio_dev *dev;
	struct p9_pool *pool; /* its workers, Landlocked beneath its root */
	struct ctl_req *req;
};

typedef void (*plan9_boot_fn)(void *opaque, int err, const char *msg);

struct plan9 {
	struct mgr_reaper reaper; /* shares the guest let go of, torn down from the loop */
	struct plan9_share shares[PLAN9_MAX_SHARES];
	struct pci_bus *pci;
	struct guest_mem *mem;
	struct loop *loop;
	struct io_threads *io;	    /* the shares' kick loops; NULL: loop (unit tests) */
	struct p9_spawner *spawner; /* makes each share's workers */
	plan9_boot_fn boot_fn;
	void *boot_opaque;
	int boot_pending, boot_err;
	char boot_msg[256];
};

/* ---- pure parts (unit-tested) ---------------------------------------------------- */

/* Parses plan9.add params (or one entry of vm.create's "plan9"); -EINVAL with err. */
int plan9_parse_add(const cJSON *params, struct plan9_params *p, char err[CTL_ERRLEN]);
/* 1..PLAN9_NAME_MAX of [A-Za-z0-9_.-]: a share's name (and mount tag). */
bool plan9_name_valid(const char *name);
void plan9_init(struct plan9 *pl);
struct plan9_share *plan9_find(struct plan9 *pl, const char *name);
int plan9_count(const struct plan9 *pl);

/* ---- with a machine --------------------------------------------------------------- */

/*
 * Takes the machine and makes the 9p spawner; io: the I/O threads the shares'
 * kicks run on (NULL: loop). Returns 0 or -errno.
 */
int plan9_bind(struct plan9 *pl, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	       struct io_threads *io) __attribute__((warn_unused_result));
/* Unplugs every share (the VM is stopped), stops the workers, forgets the machine. */
void plan9_unbind(struct plan9 *pl);
/* Cold-plugs a share (before vm.start). Returns 0 or -errno with err filled. */
int plan9_attach_cold(struct plan9 *pl, const struct plan9_params *p, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void plan9_method_add(struct plan9 *pl, struct bridge *bridge, bool running, struct ctl_req *req);
void plan9_method_remove(struct plan9 *pl, struct bridge *bridge, bool running,
			 struct ctl_req *req);
/* Once the GCS negotiated: mounts every cold-plugged share; fn runs once, when all are done. */
void plan9_boot_attach(struct plan9 *pl, struct bridge *bridge, plan9_boot_fn fn, void *opaque);

#endif
