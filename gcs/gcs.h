/*
 * The guest agent (GCS): the guest's /init. What the pieces of gcs/ offer
 * each other; main() lives in init.c, the bridge to the shim in bridge.c
 * (its wire format in protocol.h, its private pieces in bridge.h).
 */
#ifndef GCS_GCS_H
#define GCS_GCS_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* log.c: lines "uvm-gcs: ..." on the console (stderr of PID 1). */
void gcs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with ": strerror(errno)" appended. */
void gcs_log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mount.c: /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /tmp, /run, and
 * cgroup2 on /sys/fs/cgroup with the memory, cpu, pids, io controllers on.
 * Returns 0 or the first -errno; every mount is tried. */
int gcs_root_off_initramfs(void);
int gcs_mount_basics(void);
/* Makes sure fds 0-2 are open (on /dev/console), for when the kernel could
 * not open a console before starting us. */
void gcs_console_fds(void);

/* modules.c: loads the modules named one a line in `order` (paths relative
 * to `dir`), in that order. Failures are logged and skipped; returns how
 * many failed, or -errno when the list cannot be read. */
int gcs_load_modules(const char *dir, const char *order, int *loaded);

/* cmdline.c: the guest command from the kernel command line: the words
 * after a "--" word (kernel quoting: "..." groups, quotes dropped), joined
 * by spaces, else the value of gcs.cmd=. Returns a malloc'ed string, or
 * NULL when there is no command. */
char *gcs_cmdline_command(const char *cmdline);
/* Reads /proc/cmdline into a malloc'ed string (NULL on error). */
char *gcs_read_cmdline(void);

/* proc.c: children of PID 1. */
/* Runs `cmd` with /bin/sh -c in its own session, on our console fds. */
int gcs_spawn_command(const char *cmd, pid_t *pid) __attribute__((warn_unused_result));
/* Runs an interactive shell with the console as its controlling tty. */
int gcs_spawn_shell(pid_t *pid) __attribute__((warn_unused_result));
/* In a child: no signal blocked or handled (the parent takes its own through a signalfd). */
void gcs_child_reset_signals(void);
/* Reaps every exited child without blocking; when `watch` is among them,
 * sets *status (wait status) and returns 1, else 0. */
int gcs_reap(pid_t watch, int *status);
/* Wait status as a shell would report it: code, or 128 + signal. */
int gcs_exit_code(int status);

/*
 * The bridge's event loop watches fds through these: epoll's data.ptr is a
 * struct gcs_watch, embedded in its owner, and fn runs with the events.
 */
struct gcs_watch {
	void (*fn)(struct gcs_watch *w, uint32_t events);
};

#define gcs_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/*
 * relay.c: one stream copied from src to dst without ever blocking the loop:
 * both fds non-blocking, at most GCS_RELAY_BUF bytes held; src is not read
 * while the buffer is full (back-pressure), dst is watched only while it
 * holds bytes. At src's end (EOF or error) what is held is still written,
 * then eof_byte (when >= 0: a tty's ^D), then dst is shut down and closed.
 * A dst that fails (the reader went away) is closed and src read on and
 * discarded, so the writer never stalls on it. src_ended, if set, runs once
 * when src ends. The struct lives in its owner, which frees it only between
 * epoll batches (an event of the current batch may still point at it).
 */
#define GCS_RELAY_BUF (16 * 1024)

struct gcs_relay {
	int epfd;
	int src, dst; /* -1 once closed */
	struct gcs_watch src_w, dst_w;
	uint32_t src_ev, dst_ev; /* the events each is registered for (0: not) */
	char *buf;
	size_t head, len; /* held bytes: buf[head .. head + len) */
	bool src_done;
	int eof_byte; /* -1: none, else still to write after the data */
	void (*src_ended)(struct gcs_relay *r);
};

/* An idle relay: no fds, nothing held (what an owner does before start, or instead). */
void gcs_relay_init(struct gcs_relay *r);
/* Takes src and dst (dst may be -1: discard), even on failure. 0 or -errno. */
int gcs_relay_start(struct gcs_relay *r, int epfd, int src, int dst, int eof_byte,
		    void (*src_ended)(struct gcs_relay *r)) __attribute__((warn_unused_result));
/* Closes both ends now, dropping what is held; an idle relay stays idle. */
void gcs_relay_close(struct gcs_relay *r);
/* True while either end is open. */
bool gcs_relay_active(const struct gcs_relay *r);

/* bridge.c: `/init bridge`, the command the shim boots the guest with: dials the
 * host over vsock and serves the bridge (gcs/protocol.h) until shutdown or
 * until the host goes away. Returns the process's exit status. */
int gcs_bridge_main(int argc, char **argv);

/* Ends the VM: sync, then reboot (the VMM ends on the guest's reboot).
 * Outside PID 1 (tests), exits with `code` instead. */
void gcs_shutdown(int code) __attribute__((noreturn));

/* storage.c: a hot-plugged disk found by serial (and mounted), or unmounted and removed. */
int gcs_storage_add(const char *serial, const char *mnt, const char *fs, const char *opts,
		    bool read_only, long timeout_ms, char *dev, size_t devlen, char *err,
		    size_t errlen);
int gcs_storage_remove(const char *serial, const char *mnt, long timeout_ms, char *err,
		       size_t errlen);
/*
 * storage.c: a hot-plugged virtio-9p share found by its mount tag and mounted
 * (trans=virtio, 9p2000.L, msize, cache=mmap); or unmounted and its function
 * removed. dev gets the virtio device name ("virtio3").
 */
int gcs_plan9_add(const char *tag, const char *mnt, bool read_only, long msize, long timeout_ms,
		  char *dev, size_t devlen, char *err, size_t errlen);
int gcs_plan9_remove(const char *tag, const char *mnt, long timeout_ms, char *err,
		     size_t errlen);

/*
 * net.c: NICs found by MAC and configured over rtnetlink (bodies of nic_add,
 * nic_update, nic_remove in protocol.h). 0 or -errno with err filled.
 */
struct cJSON;
int gcs_net_add(const struct cJSON *body, char *ifname, size_t len, char *err, size_t errlen);
int gcs_net_update(const struct cJSON *body, char *err, size_t errlen);
int gcs_net_remove(const struct cJSON *body, char *err, size_t errlen);
/*
 * container_netns.c: named network namespaces (/run/netns/<name>). enter
 * moves the calling thread into one (saved: the namespace to go back to),
 * leave goes back; open gives its fd. 0 / fd or -errno.
 */
int gcs_netns_path(const char *name, char *out, size_t len);
/* A new namespace (lo up) bound at path (from gcs_netns_path): 0 or -errno (-EEXIST). */
int gcs_netns_make(const char *path);
int gcs_netns_enter(const char *name, int *saved) __attribute__((warn_unused_result));
void gcs_netns_leave(int saved);
int gcs_netns_open(const char *name);
/* Host-side tests: a directory standing for /sys, and a resolv.conf path. */
void gcs_net_set_paths(const char *sys, const char *resolv);
/* Host-side tests: a directory standing for /sys (bus/pci/rescan, block/). Set before any job. */
void gcs_storage_set_sysfs(const char *root);
/* storage.c helpers shared with pmem.c. */
const char *gcs_sysfs(void);
bool gcs_storage_stopping(void); /* the bridge is ending: waits give up */
int gcs_write_str(const char *path, const char *s);
int gcs_read_line(const char *path, char *buf, size_t len);
/* Up to len - 1 bytes of a file, NUL-terminated: the count or -errno. */
ssize_t gcs_read_file(const char *path, char *buf, size_t len);
long gcs_now_ms(void);
void gcs_sleep_ms(long ms);
/* /dev/<name> for /sys/block/<name> (made with mknod if devtmpfs lacks it). */
int gcs_blk_node(const char *name, char *dev, size_t len);
int gcs_mkdir_p(const char *path);
/* "ro,noatime,data=ordered" -> MS_* flags, and the fs's own options into data. */
unsigned long gcs_mount_flags(const char *opts, char *data, size_t len);

/*
 * storage.c: the same as jobs, each on a worker thread, for the bridge loop.
 * The bridge fills a malloc'ed job, submits it (-EBUSY when an operation on
 * the same serial is running, err says which), and when the fd from
 * gcs_storage_jobs_init() is readable reaps finished jobs (NULL when none
 * is left), answers them and frees them. jobs_stop cancels the waits, joins
 * every worker and frees the jobs not reaped.
 */
struct gcs_storage_job {
	/* request (filled by the caller) */
	uint32_t type;
	uint64_t id;
	bool remove;
	bool read_only;
	bool plan9; /* serial is a 9p mount tag (gcs_plan9_*) */
	long msize; /* plan9 */
	long timeout_ms;
	char serial[64];
	char mnt[4096];
	char fs[64];
	char opts[1024];
	int pci_slot;				     /* pmem: the function's slot */
	int (*run)(struct gcs_storage_job *j); /* NULL: the scsi add/remove above */
	/* result */
	int ret;
	bool dax; /* pmem: mounted with DAX */
	char dev[64];
	char err[512];
	/* private */
	pthread_t thread;
	struct gcs_storage_job *next, *done_next;
};
int gcs_storage_jobs_init(void);
/* pmem.c: job bodies (j->run) for a virtio-pmem device found by PCI slot. */
int gcs_pmem_add(struct gcs_storage_job *j);
int gcs_pmem_remove(struct gcs_storage_job *j);
int gcs_storage_submit(struct gcs_storage_job *j, char *err, size_t errlen)
    __attribute__((warn_unused_result));
struct gcs_storage_job *gcs_storage_reap(void);
void gcs_storage_jobs_stop(void);

/*
 * stacks.c: the stacks of every thread of this process (dump_stacks), each
 * walked by the thread itself in the handler of gcs_stacks_signal().
 * gcs_stacks_init installs the handler (once, before any thread starts);
 * a thread that blocks every signal (the storage workers) calls
 * gcs_stacks_allow to take this one. gcs_stacks_dump asks every thread,
 * waits at most timeout_ms (twice, for handlers already walking), and
 * returns the text (malloc'ed; NULL when the threads cannot be listed):
 * "gcs pid P: N threads\nthread T (name) S:\n  #0 0x... fn+0x1a\n...", a
 * thread without frames says why on its own line.
 */
int gcs_stacks_init(void) __attribute__((warn_unused_result));
int gcs_stacks_signal(void);
void gcs_stacks_allow(void);
char *gcs_stacks_dump(int timeout_ms);

#endif
