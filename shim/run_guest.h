/*
 * `uvm-shim run -- CMD`: CMD runs in the guest through the GCS bridge, with
 * the shim's stdin, stdout and stderr relayed to it (a pty in the guest in
 * tty mode), then the guest is shut down. Event loop thread only.
 */
#ifndef SHIM_RUN_GUEST_H
#define SHIM_RUN_GUEST_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct machine;
struct run_guest;
struct run_tty;
struct plan9;
struct nic_mgr;

/* Seconds the guest agent gets to dial in and negotiate after the VM starts. */
#define RUN_AGENT_TIMEOUT_S 120
/* Seconds the output may stay open after CMD exited (a background child holds it). */
#define RUN_DRAIN_TIMEOUT_S 5
/* Seconds the guest gets to power off once CMD is done. */
#define RUN_SHUTDOWN_TIMEOUT_S 15

struct run_guest_config {
	char **argv; /* CMD and its arguments, run as given (no shell) */
	int argc;
	bool tty; /* a pty in the guest; stdout and stderr merged */
	struct run_tty
	    *raw; /* put in raw mode once CMD runs (tty mode, stdin a terminal), or NULL */
	struct plan9 *shares; /* --share: mounted once the agent is up, before CMD; or NULL */
	struct nic_mgr *nics; /* --net NICs the agent configures before CMD runs, or NULL */
	const char *rootfs;   /* --rootfs: the share's guest path, CMD's container's root; or NULL */
};

/*
 * Adds the vsock device and the bridge listener to m (before machine_start)
 * and prepares the host ends of stdin/stdout/stderr. -errno with err set.
 */
int run_guest_create(struct run_guest **out, struct machine *m, struct loop *loop,
		     const struct run_guest_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * A terminating signal reached uvm-shim: forwarded to CMD's process group
 * (true) the first time while CMD runs; false means "end the VM now".
 */
bool run_guest_forward_signal(struct run_guest *g, int signo);

/* SIGWINCH: the terminal's new size goes to CMD's pty. */
void run_guest_winch(struct run_guest *g);

/* CMD's exit status as a shell reports it (or 126/127 when it did not start); false if unknown. */
bool run_guest_status(const struct run_guest *g, int *status);

/* Tears down relays, bridge and device; the vCPUs must have stopped. NULL ok. */
void run_guest_destroy(struct run_guest *g);

#endif
