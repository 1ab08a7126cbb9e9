/*
 * `uvm-shim run --rootfs DIR -- CMD`: CMD runs in a container whose root is
 * DIR, shared read-only over 9p, with an upper layer in guest memory. Pure
 * (unit-tested): the request body; run_guest.c sends it.
 */
#ifndef SHIM_RUN_SPEC_H
#define SHIM_RUN_SPEC_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#define RUN_CONTAINER_ID       "run"
#define RUN_CONTAINER_HOSTNAME "uvm"
/* Where the agent mounts the --rootfs share (the overlay's lower layer). */
#define RUN_ROOTFS_GUEST "/run/gcs/rootfs"
#define RUN_ROOTFS_SHARE "rootfs"

/*
 * An OCI runtime spec running argv (as given, no shell) as root in /, with
 * a terminal when tty (TERM=term, else xterm), in its own pid, ipc, uts and
 * mount namespaces (the VM's network). NULL when argc < 1 or out of memory.
 */
cJSON *run_container_spec(char *const *argv, int argc, bool tty, const char *term);

/* The container_create body (gcs/protocol.h) for it, on guest_root as the lower layer. */
cJSON *run_container_body(char *const *argv, int argc, bool tty, const char *term,
			  const char *guest_root);

#endif
