/*
 * The GCS's bridge server, as its pieces see each other: bridge.c owns the
 * connection, the event loop and the dispatch table; each request is
 * handled by a module of its own (process.c, system.c, scsi.c), which
 * answers through gcs_bridge_respond, now or later from the loop.
 */
#ifndef GCS_BRIDGE_H
#define GCS_BRIDGE_H

#include "gcs/gcs.h"
#include "gcs/protocol.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* A row of the dispatch table: the request type and what serves it. */
typedef void (*gcs_bridge_handler)(uint32_t type, uint64_t id, const cJSON *req);

/* ---- bridge.c: the connection and the loop -------------------------------------- */

/* Sends a message with body obj (consumed). A failed write ends the loop. */
void gcs_bridge_send(uint32_t type, uint64_t id, cJSON *obj);
/* Answers request (req_type, id): body (consumed; NULL: {}) gets "status", and
 * "error" (from fmt) when status is non-zero. */
void gcs_bridge_respond(uint32_t req_type, uint64_t id, int status, cJSON *body, const char *fmt,
			...) __attribute__((format(printf, 5, 6)));
/* Connects to host port `port` (vsock, or PATH_port in the Unix test mode): fd or -errno. */
int gcs_bridge_dial(uint32_t port);
/* Writes all of buf to a blocking fd: 0 or -errno. */
int gcs_write_all(int fd, const void *buf, size_t len);
/* The loop's epoll fd, for modules that watch fds of their own (relays). */
int gcs_bridge_epoll(void);
/* Adds fd to the loop for EPOLLIN, w->fn runs when it fires. 0 or -errno. */
int gcs_bridge_watch(int fd, struct gcs_watch *w);
/* Ends the loop once the current event is handled (shutdown). */
void gcs_bridge_quit(void);

/* ---- fields.c: reading the host's requests ---------------------------------------- */

/*
 * An integer field o[k] within [min, max] into *out: def when absent; -EINVAL
 * when it is not a number or is out of range (a host's 1e300 must not reach a
 * cast). Every handler reads its numbers through this.
 */
int gcs_bridge_int(const cJSON *o, const char *k, long long min, long long max, long long def,
		   long long *out) __attribute__((warn_unused_result));
/* o[k] when it is a string, else NULL. */
const char *gcs_bridge_str(const cJSON *o, const char *k);

/* ---- process.c: processes the host runs (exec) ---------------------------------- */
void gcs_process_exec(uint32_t type, uint64_t id, const cJSON *req);
void gcs_process_wait(uint32_t type, uint64_t id, const cJSON *req);
void gcs_process_signal(uint32_t type, uint64_t id, const cJSON *req);
void gcs_process_resize(uint32_t type, uint64_t id, const cJSON *req);
/*
 * Stdio for a process started elsewhere (container.c, through crun): the
 * request's stdin/stdout/stderr ports dialed (-1: none) and its terminal size.
 */
struct gcs_stdio {
	int socks[3];
	unsigned rows, cols;
};
/* 0, or -errno with err filled (nothing left open). */
int gcs_stdio_dial(const cJSON *req, struct gcs_stdio *io, char *err, size_t errlen);
void gcs_stdio_close(struct gcs_stdio *io);
/*
 * A process this agent's subreaper role made its child (crun's container
 * processes): wait, signal, resize and the exit notification serve it as an
 * exec'd one. master (>= 0: a terminal) and io's sockets are taken. on_exit
 * (may be NULL) runs when it is reaped, before the host hears of it.
 */
int gcs_process_adopt(pid_t pid, int master, struct gcs_stdio *io,
		      void (*on_exit)(pid_t pid, int status)) __attribute__((warn_unused_result));
/* SIGCHLD: reaps, notifies the host and answers the waits. */
void gcs_process_reap(void);
/* Frees what is done with; only between epoll batches. */
void gcs_process_sweep(void);

/* ---- system.c: reports on the guest ---------------------------------------------- */
void gcs_system_properties(uint32_t type, uint64_t id, const cJSON *req);
void gcs_system_dump_stacks(uint32_t type, uint64_t id, const cJSON *req);

/* ---- scsi.c: disks and pmem devices, on storage.c's worker threads ---------------- */
/* Starts the workers' completion watch in the loop. 0 or -errno. */
int gcs_scsi_init(void) __attribute__((warn_unused_result));
void gcs_scsi_add(uint32_t type, uint64_t id, const cJSON *req);
void gcs_scsi_remove(uint32_t type, uint64_t id, const cJSON *req);
/* Operations still running give up (their answers would go nowhere). */
void gcs_scsi_stop(void);
/* pmem devices on the same workers (pmem.c does the work), keyed "pmemN". */
void gcs_pmem_add_req(uint32_t type, uint64_t id, const cJSON *req);
void gcs_pmem_remove_req(uint32_t type, uint64_t id, const cJSON *req);
/* 9p shares on the same workers (storage.c mounts by tag), keyed by the tag. */
void gcs_plan9_add_req(uint32_t type, uint64_t id, const cJSON *req);
void gcs_plan9_remove_req(uint32_t type, uint64_t id, const cJSON *req);

/* ---- container.c: containers (container_* requests), crun run off the loop ----------- */
/*
 * process.c's reaper, for a child it did not know: a crun run of
 * container_crun.c (its callback runs), else an exit kept for a while: a
 * process crun started may end, be reparented to us and be reaped before
 * crun itself has exited and its pid was adopted.
 */
void gcs_crun_reaped(pid_t pid, int status);
/* gcs_process_adopt: pid's exit if it was kept so (and no live process has that pid now). */
bool gcs_crun_exit_taken(pid_t pid, int *status);
/* Test mode: containers' directories under dir, mke2fs at that path (NULL: as built). */
void gcs_container_set_paths(const char *dir, const char *mke2fs);
/* Starts the OOM watch (inotify on each container's memory.events) in the loop. */
int gcs_container_init(void) __attribute__((warn_unused_result));
void gcs_container_create(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_start(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_exec(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_signal(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_update(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_stats(uint32_t type, uint64_t id, const cJSON *req);
void gcs_container_delete(uint32_t type, uint64_t id, const cJSON *req);
/*
 * The bridge is ending: scratch formats still running are stopped, their creates
 * undone, and the mount worker (container_mounts.c) is waited for.
 */
void gcs_container_stop(void);
/* netns_req.c: netns_add / netns_remove (container_netns.c makes them) */
void gcs_netns_add_req(uint32_t type, uint64_t id, const cJSON *req);
void gcs_netns_remove_req(uint32_t type, uint64_t id, const cJSON *req);

/* ---- nic_req.c: NICs (nic_add, nic_update, nic_remove), done inline on the loop - */
void gcs_nic_req(uint32_t type, uint64_t id, const cJSON *req);

/* ---- vsock_tool.c: `bridge --vsock-*`, guest-side vsock programs for the tests --- */
/* Returns the exit status, or -1 when argv is not one of its commands. */
int gcs_vsock_tool(int argc, char **argv);

#endif
