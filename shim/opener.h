/*
 * The opener: a small process forked when the shim starts, before anything
 * else exists, that opens the host files the parent names at run time
 * (scsi.add disks, vpmem layers, plan9 share roots, guest.exec stdio paths,
 * console files) and hands the fds back over a socketpair (SCM_RIGHTS).
 *
 * Once the VM is built the shim's threads are Landlocked (seccomp/landlock.c)
 * and can open nothing by path; the opener is not, but it is a process of its
 * own with no capability, its own seccomp filter (SANDBOX_OPENER) and a fixed
 * set of requests. Each name is looked up once as an O_PATH fd, with no
 * /proc magic link and no ".." on the way, and checked on that fd before it
 * is opened for I/O: the kind of file its flags allow (opener_kind_refused:
 * a disk is a regular file or a block device, a share root a directory, a
 * console log a regular file), then the paths refused whatever the request
 * (opener_path_refused: system directories; devices but block devices,
 * /dev/null, /dev/zero and ptys). See docs/seccomp.md.
 *
 * Not started when the sandbox is off: the calls then open in-process.
 */
#ifndef SHIM_OPENER_H
#define SHIM_OPENER_H

#include <stdbool.h>
#include <sys/types.h>

#include "shim/bridge.h"

/*
 * Forks the opener and routes host_open (vmm/host_open.h) through it. Call
 * once, from the main thread, before any other thread or VM fd exists. A
 * no-op when the sandbox is off. -errno when the fork fails.
 */
int opener_start(void) __attribute__((warn_unused_result));
/* Closes the channel (the opener exits); host_open opens in-process again. */
void opener_stop(void);
bool opener_running(void);

/* host_open's hook: path opened by the opener with flags (checked), or -errno. */
int opener_open(const char *path, int flags, mode_t mode);
/* stdio_open_host through the opener (FIFO, file, character device, or a Unix socket). */
int opener_stdio(const char *path, enum stdio_dir dir);
/* Removes path if, and only if, it is a Unix socket (the VM's vsock socket). */
int opener_unlink_socket(const char *path);

/*
 * The opener's path rule, exposed for tests: nonzero (-EACCES) when the
 * resolved path canon (no symlink left) of a file of mode st_mode is one the
 * opener never opens.
 */
int opener_path_refused(const char *canon, mode_t st_mode);
/*
 * The kind of file an open request may reach, by its flags (tests): with
 * O_DIRECTORY a directory (a share root), with O_CREAT a regular file (a
 * console log), else a regular file or a block device (a disk, a pmem file);
 * a network namespace is let through apart. 0 or -errno.
 */
int opener_kind_refused(int flags, mode_t st_mode);

#endif
