/*
 * The guest agent (GCS): the guest's /init. What the pieces of gcs/ offer
 * each other; main() lives in init.c, the bridge to the shim comes later
 * (its wire format will be in protocol.h).
 */
#ifndef GCS_GCS_H
#define GCS_GCS_H

#include <stddef.h>
#include <sys/types.h>

/* log.c: lines "uvm-gcs: ..." on the console (stderr of PID 1). */
void gcs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with ": strerror(errno)" appended. */
void gcs_log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mount.c: /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /tmp, /run.
 * Returns 0 or the first -errno; every mount is tried. */
int gcs_mount_basics(void);
/* Makes sure fds 0-2 are open (on /dev/console), for when the kernel could
 * not open a console before starting us. */
void gcs_console_fds(void);

/* modules.c: loads the modules named one a line in `order` (paths relative
 * to `dir`), in that order. Failures are logged and skipped; returns how
 * many failed, or -errno when the list cannot be read. */
int gcs_load_modules(const char *dir, const char *order, int *loaded);

/* cmdline.c: the guest command from the kernel command line: the words
 * after a "--" word, split and unquoted the way the kernel does ("..."
 * groups blanks into a word, quotes are dropped), run as an argv; else the
 * value of gcs.cmd=, run with /bin/sh -c. */
struct gcs_command {
	char **argv;  /* NULL-terminated, or NULL */
	char *script; /* when argv is NULL: for /bin/sh -c, or NULL */
	char *words;  /* storage behind argv */
};
/* Returns 0 with *cmd filled (both NULL: no command) or -ENOMEM. */
int gcs_cmdline_command(const char *cmdline, struct gcs_command *cmd)
    __attribute__((warn_unused_result));
void gcs_command_free(struct gcs_command *cmd);
/* Reads /proc/cmdline into a malloc'ed string (NULL on error). */
char *gcs_read_cmdline(void);

/* proc.c: children of PID 1. */
/* Runs the command in its own session, on our console fds. */
int gcs_spawn_command(const struct gcs_command *cmd, pid_t *pid)
    __attribute__((warn_unused_result));
/* Runs an interactive shell with the console as its controlling tty. */
int gcs_spawn_shell(pid_t *pid) __attribute__((warn_unused_result));
/* Reaps every exited child without blocking; when `watch` is among them,
 * sets *status (wait status) and returns 1, else 0. */
int gcs_reap(pid_t watch, int *status);
/* Wait status as a shell would report it: code, or 128 + signal. */
int gcs_exit_code(int status);

/* bridge.c: `/init bridge`, the command the shim boots the guest with: dials the
 * host over vsock and serves the bridge (gcs/protocol.h) until shutdown or
 * until the host goes away. Returns the process's exit status. */
int gcs_bridge_main(int argc, char **argv);

/* Ends the VM: sync, then reboot (the VMM ends on the guest's reboot).
 * Outside PID 1 (tests), exits with `code` instead. */
void gcs_shutdown(int code) __attribute__((noreturn));

#endif
