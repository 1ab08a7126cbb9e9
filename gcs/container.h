/*
 * Containers in the guest, as their pieces see each other (private to
 * gcs/container*.c; the requests' doors are in bridge.h).
 *
 *   container.c         the table, the requests, exits and OOM events
 *   container_layers.c  read-only layers (mounted once, refcounted), the
 *                       scratch (formatted when asked), the overlay
 *   container_bundle.c  config.json and crun (create/start/exec/kill/update/delete)
 *   container_stats.c   figures from the container's cgroup
 *   container_netns.c   named network namespaces (gcs.h; netns_* served in netns_req.c)
 *
 * Layout, as hcsshim's guest lays it out: /run/gcs/c/<id>/ holds config.json,
 * the rootfs (the overlay), the scratch mount, crun's log and pid file and the
 * console socket; layers given by device are mounted at /run/gcs/layers/<dev>.
 * crun keeps its state under /run/crun; the cgroup is /sys/fs/cgroup/containers/<id>.
 *
 * Everything runs on the bridge loop; crun is run to completion from it (a
 * known limit: a slow crun holds the other requests back meanwhile).
 */
#ifndef GCS_CONTAINER_H
#define GCS_CONTAINER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define GCS_CTR_DIR	   "/run/gcs/c"
#define GCS_CTR_LAYER_DIR  "/run/gcs/layers"
#define GCS_CTR_CGROUP	   "/sys/fs/cgroup/containers"
#define GCS_CTR_CGROUP_REL "/containers" /* linux.cgroupsPath's prefix */
#define GCS_CTR_ID_MAX	   64
#define GCS_CTR_MAX_LAYERS 64
#define GCS_CTR_ERRLEN	   512

/* An id is [A-Za-z0-9][A-Za-z0-9_.-]* up to GCS_CTR_ID_MAX: safe in paths and crun's argv. */
bool gcs_ctr_id_valid(const char *id);

/* ---- container_layers.c ---------------------------------------------------------------- */

struct gcs_rootfs {
	char *layers[GCS_CTR_MAX_LAYERS];   /* mount points, top first */
	bool layer_ref[GCS_CTR_MAX_LAYERS]; /* a device layer this container holds a ref on */
	int nr_layers;
	bool scratch_mounted; /* dir/scratch is a mount of ours (device or tmpfs) */
	bool rootfs_mounted;
};

/*
 * Mounts the root of the container whose directory is dir, from the
 * container_create request req: each layer of req's `layers` (mounted once
 * for every container, refcounted), the scratch (formatted ext4 first when
 * it says so) or a tmpfs, and the overlay at dir/rootfs; or, with
 * `rootfs: {"path"}` (a writable Plan 9 share), a bind of that directory at
 * dir/rootfs. 0 or -errno with err; on failure nothing is left mounted.
 */
int gcs_rootfs_mount(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/* Undoes it (idempotent). 0 or the first -errno with err (what stays mounted is named). */
int gcs_rootfs_unmount(struct gcs_rootfs *r, const char *dir, char *err, size_t errlen);

/* ---- container_bundle.c ---------------------------------------------------------------- */

/*
 * Writes dir/config.json: spec with root.path at dir/rootfs (root.readonly
 * kept) and linux.cgroupsPath at /containers/<id>. Checks what crun needs
 * and would report badly: ociVersion, process.args. 0 or -errno with err.
 */
int gcs_bundle_write(const char *dir, const char *id, const cJSON *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Runs `crun --log=file:dir/crun.log <args...>` to completion, with fds 0-2
 * of the container process (-1: /dev/null). 0, or -errno with crun's own
 * message (the last line of its log) in err.
 */
int gcs_crun(const char *dir, const int fds[3], const char *const *args, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A listening Unix socket at path for crun's --console-socket: fd or -errno. */
int gcs_console_listen(const char *path);
/* The terminal master crun sent on a connection to lfd (already queued): fd or -errno. */
int gcs_console_take(int lfd);

/* Reads a pid file crun wrote: pid or -errno. */
pid_t gcs_pidfile_read(const char *path);

/* ---- container_stats.c ----------------------------------------------------------------- */

/* container_stats's answer body (protocol.h) from the cgroup of id; NULL when it is gone. */
cJSON *gcs_ctr_stats(const char *id);
/* memory.events' oom_kill of id's cgroup, or -1. */
long long gcs_ctr_oom_kills(const char *id);
/* memory.events' path in id's cgroup. */
void gcs_ctr_events_path(const char *id, char *out, size_t len);

/* Removes dir and what container*.c put in it (files, empty directories). */
void gcs_ctr_rmdir(const char *dir);

#endif
