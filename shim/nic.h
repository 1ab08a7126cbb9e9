/*
 * The NIC manager: virtio-net functions by id, each on a tap (opened by name,
 * optionally in a network namespace) or on a user-mode passt. The same shape
 * as the scsi manager (shim/scsi.h): slots, cold-plug before vm.start with the
 * guest configuring them once its agent is up, hot-add (plug, then the agent
 * finds the interface by MAC and configures it) and hot-remove (the agent
 * takes the interface down and removes the function; only then the shim
 * unplugs it and closes the backend).
 *
 * Everything runs on the control thread.
 */
#ifndef SHIM_NIC_H
#define SHIM_NIC_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gcs/net_addr.h"
#include "shim/ctl.h"
#include "shim/manager.h"

#define NIC_MAX		    8
#define NIC_ID_MAX	    64
#define NIC_MAX_ITEMS	    8 /* addresses, routes, DNS servers each */
#define NIC_DEFAULT_MTU	    1500
#define NIC_DEFAULT_TIMEOUT 30000 /* ms: the guest rescans and waits this long */

struct bridge;
struct guest_mem;
struct io_threads;
struct loop;
struct pci_bus;
struct virtio_dev;
struct nic_mgr;

enum nic_backend_kind { NIC_TAP, NIC_USER };

/* nic.add (or one entry of vm.create's "nics"). Strings borrowed from the request. */
struct nic_params {
	const char *id;
	enum nic_backend_kind backend;
	const char *tap, *netns; /* tap: its name, and the namespace it lives in (or NULL) */
	bool has_mac;
	uint8_t mac[6];
	uint16_t mtu;
	struct net_cidr user_addr, user_gw; /* user: what passt assumes the guest has */
	cJSON *guest;			    /* what the agent applies (owned: nic_params_free) */
	uint64_t timeout_ms;
};

/* RETIRING: the guest let go; unplugged from the loop, then answered (shim/manager.h). */
enum nic_state { NIC_FREE = 0, NIC_ADDING, NIC_ATTACHED, NIC_UPDATING, NIC_REMOVING, NIC_RETIRING };

struct nic {
	struct nic_mgr *owner;
	enum nic_state state;
	char id[NIC_ID_MAX + 1];
	uint8_t mac[6];
	char mac_str[18];
	enum nic_backend_kind backend;
	char *tap;
	bool link_up;
	bool in_guest;
	char ifname[32];
	cJSON *guest; /* the agent's configuration (addresses, routes ...) */
	struct virtio_dev *dev;
	struct ctl_req *req;
};

typedef void (*nic_boot_fn)(void *opaque, int err, const char *msg);

struct nic_mgr {
	struct mgr_reaper reaper; /* NICs the guest let go of, torn down from the loop */
	struct nic nics[NIC_MAX];
	struct pci_bus *pci;
	struct guest_mem *mem;
	struct loop *loop;
	struct io_threads *io; /* the NICs' loops; NULL: loop (unit tests) */
	nic_boot_fn boot_fn;
	void *boot_opaque;
	int boot_pending, boot_err;
	char boot_msg[256];
};

/* ---- pure parts (unit-tested) ---------------------------------------------------- */

/* Parses nic.add params; -EINVAL with err naming the parameter. */
int nic_parse_add(const cJSON *params, struct nic_params *p, char err[CTL_ERRLEN]);
void nic_params_free(struct nic_params *p);
/*
 * Parses nic.update params: the id, the link state (*link: -1 unchanged, 0
 * down, 1 up) and what goes to the agent (*guest, NULL when nothing does).
 */
int nic_parse_update(const cJSON *params, const char **id, int *link, cJSON **guest,
		     char err[CTL_ERRLEN]);

void nic_init(struct nic_mgr *nm);
struct nic *nic_find(struct nic_mgr *nm, const char *id);
int nic_count(const struct nic_mgr *nm);

/* ---- with a machine --------------------------------------------------------------- */

/* io: the I/O threads the NICs' queues and backends run on (NULL: loop, unit tests). */
void nic_bind(struct nic_mgr *nm, struct pci_bus *pci, struct guest_mem *mem, struct loop *loop,
	      struct io_threads *io);
/* Unplugs every NIC (the VM is stopped) and forgets the machine. */
void nic_unbind(struct nic_mgr *nm);
/* Cold-plugs a NIC (before vm.start); takes p->guest. 0 or -errno with err. */
int nic_attach_cold(struct nic_mgr *nm, struct nic_params *p, char *err, size_t errlen, int *code)
    __attribute__((warn_unused_result));

void nic_method_add(struct nic_mgr *nm, struct bridge *bridge, bool running, struct ctl_req *req);
void nic_method_remove(struct nic_mgr *nm, struct bridge *bridge, bool running,
		       struct ctl_req *req);
void nic_method_update(struct nic_mgr *nm, struct bridge *bridge, bool running,
		       struct ctl_req *req);
/* Once the agent negotiated: has it configure every cold-plugged NIC; fn runs once. */
void nic_boot_attach(struct nic_mgr *nm, struct bridge *bridge, nic_boot_fn fn, void *opaque);
/* Per-NIC counters for vm.stats: [{"id", "mac", "rx_packets", ...}]. */
cJSON *nic_stats(struct nic_mgr *nm);

#endif
