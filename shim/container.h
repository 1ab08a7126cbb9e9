/*
 * The container manager: containers in the utility VM, as hcsshim's LCOW
 * runs them. The parent names the container's read-only layers (VPMem
 * devices or SCSI disks it added, or guest paths) and a scratch, and gives
 * an OCI runtime spec; the guest agent mounts the layers once each, makes
 * the overlay and drives crun (gcs/container*.c).
 *
 * Same shape as the other managers (shim/manager.h): parse and check the
 * params, take an entry in the table, ask the guest agent, answer; delete
 * lets the guest go first, then the entry is retired and the request
 * answered. The container's processes (its init, and each exec) are
 * records of serve's process table, so stdio, process.wait, process.signal
 * and process.resize are guest.exec's own.
 *
 * Everything runs on the event loop thread.
 */
#ifndef SHIM_CONTAINER_H
#define SHIM_CONTAINER_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shim/ctl.h"
#include "shim/manager.h"
#include "shim/plan9.h"

#define CONTAINER_MAX	     256
#define CONTAINER_ID_MAX     64
#define CONTAINER_MAX_LAYERS 64

/* ---- pure parts (shim/container_parse.c, unit-tested) ---------------------------------- */

/* [A-Za-z0-9][A-Za-z0-9_.-]*, 1..CONTAINER_ID_MAX: what the guest accepts too. */
bool container_id_valid(const char *id);

enum ctr_ref_kind { CTR_REF_VPMEM, CTR_REF_SCSI, CTR_REF_PATH };

/* A layer or the scratch as the parent names it. */
struct ctr_ref {
	enum ctr_ref_kind kind;
	unsigned number;	  /* vpmem device */
	unsigned controller, lun; /* scsi */
	const char *path;	  /* guest path (borrowed from the params) */
};

struct ctr_root {
	struct ctr_ref layers[CONTAINER_MAX_LAYERS];
	unsigned nr_layers; /* 0 with a plan9 root */
	/* Or a Plan 9 share as the root (borrowed from the params): read-only, the
	 * overlay's one lower layer; writable, the root itself. */
	const char *plan9;
	const char *subdir; /* a relative path in the share, or NULL */
	bool has_scratch;   /* else the upper layer lives in guest memory */
	struct ctr_ref scratch;
	bool format; /* format the scratch ext4 first */
};

/* params.root of container.create. -EINVAL with err naming the parameter. */
int container_parse_root(const cJSON *root, struct ctr_root *out, char err[CTL_ERRLEN]);

/*
 * params.spec: an object, or a string of JSON text (as a config.json holds).
 * *out is a new object the caller frees. -EINVAL with err.
 */
int container_parse_spec(const cJSON *params, cJSON **out, char err[CTL_ERRLEN]);

/* container.update's params as OCI linux.resources (new object), -EINVAL with err. */
int container_parse_update(const cJSON *params, cJSON **out, char err[CTL_ERRLEN]);

/* ---- what the guest sends: checked, never trusted ---- */

struct ctr_exit {
	char id[CONTAINER_ID_MAX + 1];
	int pid, exit_code, signal;
	bool oom_killed;
};

/* A container_exited notification body. -EPROTO when anything is off. */
int container_parse_exit(const cJSON *body, struct ctr_exit *out);
/* A container_oom notification body: id and the cgroup's OOM kills. -EPROTO. */
int container_parse_oom(const cJSON *body, char id[CONTAINER_ID_MAX + 1], uint64_t *kills);
/*
 * container.stats's result from the guest's answer: only the known figures,
 * each a whole number in range (-2..2^53; -1 "no limit", -2 "not known").
 * NULL when the answer is malformed.
 */
cJSON *container_stats_result(const cJSON *body);

/* ---- the table ---------------------------------------------------------------------- */

enum ctr_state {
	CTR_CREATING, /* container_create is out */
	CTR_CREATED,
	CTR_STARTING,
	CTR_RUNNING,
	CTR_STOPPED,
	CTR_DELETING, /* container_delete is out (the create may be too) */
};

struct container_mgr;
struct req_list;

struct ctr_entry {
	struct container_mgr *m;
	char id[CONTAINER_ID_MAX + 1];
	enum ctr_state state;
	int pid;
	bool exited;	  /* container_exited arrived (exit fields set) */
	bool output_done; /* its init's output is all relayed */
	bool reported;	  /* container.exited was sent */
	struct ctr_exit exit;
	uint64_t oom_kills;
	/*
	 * A container.delete may be sent while the create is still out (the
	 * guest cancels a scratch format, or deletes once created): the entry
	 * then waits for both answers, in either order.
	 */
	bool create_out;	  /* container_create's answer is still to come */
	bool create_failed;	  /* ... and came as a failure while a delete was out */
	enum ctr_state del_from;  /* the state a delete was sent in (restored if it fails) */
	struct req_list *waiters; /* container.wait */
	/* the vpmem devices and scsi disks it stands on (layers, scratch): not removable */
	struct ctr_ref devs[CONTAINER_MAX_LAYERS + 1];
	unsigned nr_devs;
	char share[PLAN9_NAME_MAX + 1]; /* the plan9 share it stands on, or "" */
	struct ctr_entry *next;
};

struct container_mgr {
	struct ctr_entry *list;
	unsigned count;
	struct mgr_reaper reaper; /* deleted entries: released, then answered */
};

const char *container_state_name(enum ctr_state s);

/* The entry standing on a vpmem device (kind CTR_REF_VPMEM) or scsi disk, or NULL. */
struct ctr_entry *container_using(struct container_mgr *m, const struct ctr_ref *dev);
/* The entry whose root is the plan9 share named name, or NULL. */
struct ctr_entry *container_using_share(struct container_mgr *m, const char *name);

#endif
