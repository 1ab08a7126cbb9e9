/*
 * Containers in the guest, as their pieces see each other (private to
 * gcs/container*.c; the requests' doors are in bridge.h).
 *
 *   container.c         the table, each container's queue, create/start/delete,
 *                       exits and OOM events
 *   container_verbs.c   exec, signal, update, stats
 *   container_crun.c    children run off the loop: crun, mke2fs
 *   container_layers.c  read-only layers (mounted once, refcounted), the
 *                       scratch (formatted off the loop when asked), the overlay
 *   container_mounts.c  the worker thread those mounts and unmounts run on
 *   container_bundle.c  config.json and crun (create/start/exec/kill/update/delete)
 *   container_stats.c   figures from the container's cgroup
 *   container_netns.c   named network namespaces (gcs.h; netns_* served in netns_req.c)
 *
 * Layout, as hcsshim's guest lays it out: /run/gcs/c/<id>/ holds config.json,
 * the rootfs (the overlay), the scratch mount, crun's log and pid file and the
 * console socket; layers given by device are mounted at /run/gcs/layers/<dev>.
 * crun keeps its state under /run/crun; the cgroup is /sys/fs/cgroup/containers/<id>.
 *
 * Everything runs on the bridge loop but the mounts; crun and mke2fs run as
 * children the loop does not wait for (container_crun.c): their exits come
 * through process.c's reaper, and each container's requests queue behind
 * its running one. Mounts and unmounts (and the files of a container's
 * directory, so that they keep their order with them) run on the mount
 * worker (container_mounts.c), which alone touches the layer table.
 */
#ifndef GCS_CONTAINER_H
#define GCS_CONTAINER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "gcs/bridge.h"

#define GCS_CTR_DIR	   "/run/gcs/c"
#define GCS_CTR_LAYER_DIR  "/run/gcs/layers"
#define GCS_CTR_CGROUP	   "/sys/fs/cgroup/containers"
#define GCS_CTR_CGROUP_REL "/containers" /* linux.cgroupsPath's prefix */
#define GCS_CTR_ID_MAX	   64
#define GCS_CTR_MAX_LAYERS 64
#define GCS_CTR_ERRLEN	   512

/* An id is [A-Za-z0-9][A-Za-z0-9_.-]* up to GCS_CTR_ID_MAX: safe in paths and crun's argv. */
bool gcs_ctr_id_valid(const char *id);

/* ---- container_mounts.c: the mount worker ------------------------------------------------- */

/*
 * A job for the worker: run there (mount(2), umount(2), the container's
 * directory), then done from the loop. Jobs run one at a time, in their
 * order of submission. The submitter owns j (done may free it).
 */
struct gcs_mount_job {
	void (*run)(struct gcs_mount_job *j);  /* on the worker: sets ret and err */
	void (*done)(struct gcs_mount_job *j); /* then on the loop */
	void *opaque;
	int ret;
	char err[GCS_CTR_ERRLEN];
	struct gcs_mount_job *next; /* private */
};

/* Queues j (the worker starts with the first one): 0, or -errno when there is no worker. */
int gcs_mounts_submit(struct gcs_mount_job *j) __attribute__((warn_unused_result));
/* Jobs submitted whose done has not run yet. */
unsigned gcs_mounts_pending(void);
/* The loop is ending: done callbacks give up instead of going on (gcs_mounts_stop). */
bool gcs_mounts_stopping(void);
/* Waits for every job, runs its done (which may submit more: waited for), ends the worker. */
void gcs_mounts_stop(void);

/* ---- container_layers.c ---------------------------------------------------------------- */

struct gcs_rootfs {
	char *layers[GCS_CTR_MAX_LAYERS];   /* mount points, top first */
	bool layer_ref[GCS_CTR_MAX_LAYERS]; /* a device layer this container holds a ref on */
	int nr_layers;
	bool scratch_mounted; /* dir/scratch is a mount of ours (device or tmpfs) */
	bool rootfs_mounted;
	char format_dev[64]; /* gcs_rootfs_begin: the scratch device to format first, or "" */
};

/*
 * Mounts the root of the container whose directory is dir, from the
 * container_create request req, in two steps so that formatting the
 * scratch runs off the loop between them. gcs_rootfs_begin checks the
 * request (the scratch whole, before any mount) and takes each layer of
 * req's `layers` (mounted once for every container, refcounted); with
 * `rootfs: {"path"}` (a writable Plan 9 share) it binds that directory at
 * dir/rootfs, which is all such a root needs. When the scratch device is to
 * be formatted ext4 first, r->format_dev names it (gcs_format_start).
 * gcs_rootfs_end then mounts the scratch or a tmpfs and the overlay at
 * dir/rootfs. Each: 0 or -errno with err; on failure nothing is left
 * mounted.
 */
int gcs_rootfs_begin(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
int gcs_rootfs_end(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		   size_t errlen) __attribute__((warn_unused_result));
/* Undoes it (idempotent). 0 or the first -errno with err (what stays mounted is named). */
int gcs_rootfs_unmount(struct gcs_rootfs *r, const char *dir, char *err, size_t errlen);
/*
 * Tests only (the agent never calls it): fakes in place of mount(2) and
 * umount(2) for every mount of container_layers.c, e.g. one that is slow
 * or fails; NULL puts the real call back. Set while no mount job runs.
 */
typedef int (*gcs_mount_syscall)(const char *source, const char *target, const char *fstype,
				 unsigned long flags, const void *data);
typedef int (*gcs_umount_syscall)(const char *target);
void gcs_rootfs_set_mount_fns(gcs_mount_syscall m, gcs_umount_syscall u);

/* ---- container_bundle.c ---------------------------------------------------------------- */

/*
 * Writes dir/config.json: spec with root.path at dir/rootfs (root.readonly
 * kept) and linux.cgroupsPath at /containers/<id>. Checks what crun needs
 * and would report badly: ociVersion, process.args. 0 or -errno with err.
 */
int gcs_bundle_write(const char *dir, const char *id, const cJSON *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Starts path with argv and fds 0-2 (NULL or -1: /dev/null), no signal
 * blocked or handled: its pid, or -errno with err. Nothing waits for it.
 */
pid_t gcs_tool_spawn(const char *path, const char *const *argv, const int fds[3], char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/*
 * Binds crun's binary read-only onto itself, once, at the agent's start
 * (PID 1): from then on crun runs without copying itself first (the copy is
 * its guard against a container overwriting it; the read-only mount is the
 * same guard). 0 or -errno; on failure crun keeps making its copy.
 */
int gcs_crun_seal(void);
/*
 * Starts `crun --log=file:dir/crun.log <args...>` with fds 0-2 of the
 * container process (NULL or -1: /dev/null): its pid, or -errno with err.
 * process.c's reaper sees it end (gcs_crun_reaped).
 */
pid_t gcs_crun_spawn(const char *dir, const int fds[3], const char *const *args, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/* crun's wait status as 0, or -EIO with crun's own message (its log's last line) in err. */
int gcs_crun_result(const char *dir, const char *verb, int status, char *err, size_t errlen);
/* The last non-empty line of a tool's log, non-printing bytes as '?': 0, or -ENOENT for none. */
int gcs_log_last_line(const char *path, char *out, size_t len);

/* ---- container_crun.c: children off the loop --------------------------------------------- */

/* ret 0, or -errno with the child's message in err. */
typedef void (*gcs_crun_fn)(void *opaque, int ret, const char *err);
/* A child's wait status as 0, or -errno with its message in err (what: its job's name). */
typedef int (*gcs_job_result)(const char *dir, const char *what, int status, char *err,
			      size_t errlen);
/*
 * Watches child pid: once process.c reaps it, fn runs from the loop with
 * result's verdict on its wait status. what names the job (crun's verb, or
 * the device mke2fs formats: a "/dev/" name never collides with a verb).
 * 0 or -ENOMEM (pid is not watched then: the caller stops it).
 */
int gcs_job_watch(pid_t pid, const char *dir, const char *what, gcs_job_result result,
		  gcs_crun_fn fn, void *opaque) __attribute__((warn_unused_result));
/* The pid of a job named what still running, or 0. */
pid_t gcs_job_find(const char *what);
/* SIGKILL to a job's child (nothing when pid is no job's): its fn runs once it is reaped. */
void gcs_job_cancel(pid_t pid);
/* Same, and reaped now, fn run before this returns: for when the loop is ending. */
void gcs_job_stop(pid_t pid);
/*
 * Runs crun (gcs_crun_spawn's arguments) while the loop goes on; fn runs
 * from the loop once it has exited, or before this returns when it could
 * not start.
 */
void gcs_crun_start(const char *dir, const int fds[3], const char *const *args, gcs_crun_fn fn,
		    void *opaque);
/* Jobs (crun runs, formats) started and not yet reaped. */
unsigned gcs_crun_running(void);

/*
 * container_layers.c: mke2fs formats dev ext4 (quiet, whole device) while
 * the loop goes on; its stderr goes to dir/mke2fs.log, whose last line
 * becomes the message when it fails. 0: *pid is the job's (gcs_job_cancel),
 * fn runs from the loop once mke2fs has exited. -errno with err, fn never
 * runs: it could not start, or dev is being formatted already (-EBUSY).
 */
int gcs_format_start(const char *dir, const char *dev, gcs_crun_fn fn, void *opaque, pid_t *pid,
		     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Tests: mke2fs at path instead of /usr/sbin/mke2fs (set before any create). */
void gcs_format_set_tool(const char *path);

/* ---- the table and each container's queue of operations (container.c) ------------------- */

enum gcs_ctr_state { GCS_CTR_CREATING, GCS_CTR_CREATED, GCS_CTR_RUNNING, GCS_CTR_STOPPED };

struct gcs_ctr;
struct gcs_ctr_op;
typedef void (*gcs_ctr_op_fn)(struct gcs_ctr *c, struct gcs_ctr_op *op);

/*
 * A request on one container. A container's requests run one after the
 * other, in their order of arrival (crun's verbs on one container do not
 * overlap), while other containers' and other requests are served.
 */
struct gcs_ctr_op {
	struct gcs_ctr *c;
	uint32_t type;
	uint64_t id;
	cJSON *req; /* a copy of the request */
	gcs_ctr_op_fn run;
	/* a process crun starts (create, exec): */
	struct gcs_stdio io;
	bool tty;
	int lfd; /* the console socket, -1 */
	char pidfile[PATH_MAX];
	char tmpfile[PATH_MAX]; /* exec's process.json, update's resources.json, or "" */
	void (*on_exit)(pid_t pid, int status);
	bool crun_ok; /* crun create/exec itself succeeded */
	int status;   /* a failure kept while crun cleans up */
	char err[GCS_CTR_ERRLEN];
	void (*spawned)(struct gcs_ctr_op *op, pid_t pid, const char *err);
	void (*crun_done)(struct gcs_ctr_op *op, int ret, const char *err);
	pid_t format;		 /* create: mke2fs formatting the scratch (a job), 0 */
	bool mounting;		 /* create: mj (its root's mounts) is out on the mount worker */
	struct gcs_mount_job mj; /* create's mounts, delete's unmounts */
	struct gcs_ctr_op *next;
};

struct gcs_ctr {
	char id[GCS_CTR_ID_MAX + 1];
	char dir[128];
	enum gcs_ctr_state state;
	pid_t pid;
	struct gcs_rootfs rootfs;
	int wd; /* inotify watch on memory.events, -1 */
	long long oom_kills;
	unsigned execs;		/* numbers the exec's process files */
	struct gcs_ctr_op *ops; /* the running one first */
	bool busy;
	struct gcs_ctr_op *deleting;   /* a forced delete waiting for the killed init's exit */
	bool cancelled;		       /* deleted while its create formatted or mounted */
	struct gcs_mount_job teardown; /* out of the table: unmounted, its directory removed */
	/* gcs_now_ms() as its create, crun create and crun start began: the log's phases */
	long t_create, t_crun, t_start;
	struct gcs_ctr *next;
};

extern const char *const gcs_ctr_state_names[];

/* The request's container; answers the error itself when there is none. */
struct gcs_ctr *gcs_ctr_of(uint32_t type, uint64_t id, const cJSON *req);
/* A new container in the table (state creating); answers the error itself and returns NULL. */
struct gcs_ctr *gcs_ctr_add(uint32_t type, uint64_t id, const char *cid);
/* c leaves the table: its queued requests are answered, its mounts go on the worker. */
void gcs_ctr_remove(struct gcs_ctr *c);
/* Watches c's memory.events for OOM kills (c->wd; a failure is logged, not fatal). */
void gcs_ctr_watch_oom(struct gcs_ctr *c);
/* A container's init ended (op->on_exit of its create): state, event, the delete waiting on it. */
void gcs_ctr_exited(pid_t pid, int status);
/* The op that creates c (container_create.c): a delete meanwhile cancels its mounts. */
void gcs_ctr_create_run(struct gcs_ctr *c, struct gcs_ctr_op *op);
/* Queues fn for the request; it runs once c's earlier ones are done. -ENOMEM: answered. */
int gcs_ctr_queue(struct gcs_ctr *c, uint32_t type, uint64_t id, const cJSON *req,
		  gcs_ctr_op_fn fn);
/* The running op of c answered its request: it goes, the next one runs. */
void gcs_ctr_op_done(struct gcs_ctr_op *op);
/* spec.process.terminal */
bool gcs_ctr_terminal(const cJSON *proc);
/* A terminal process gets the request's rows and cols as its consoleSize (unless it has one). */
void gcs_ctr_console_size(cJSON *proc, const cJSON *req);
/* crun for op with no stdio; done runs from the loop. */
void gcs_ctr_crun(struct gcs_ctr_op *op, const char *const *args,
		  void (*done)(struct gcs_ctr_op *op, int ret, const char *err));
/*
 * crun create or exec (args, with --pid-file op->pidfile and, for a
 * terminal, --console-socket): the process it leaves is adopted with
 * op->io and op->on_exit; spawned gets its pid or -errno with err.
 */
void gcs_ctr_spawn(struct gcs_ctr_op *op, const char *const *args,
		   void (*spawned)(struct gcs_ctr_op *op, pid_t pid, const char *err));

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
