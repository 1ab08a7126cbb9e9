/*
 * The shim's side of the GCS bridge (gcs/protocol.h): listens on vsock for
 * the guest agent, negotiates, matches responses to requests by id, relays
 * the agent's log and each process stdio stream.
 *
 * Runs on the event loop thread, like the vsock engine it sits on.
 */
#ifndef SHIM_BRIDGE_H
#define SHIM_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct bridge;
struct vsock;
struct loop;

/* The guest command (after "--" on the kernel command line) that starts the GCS's bridge. */
#define BRIDGE_GUEST_COMMAND "/init bridge"

struct bridge_ops {
	/* Negotiation finished: err 0 and the guest's answer, or -errno. */
	void (*ready)(void *opaque, int err, const cJSON *answer);
	/* A process_exited notification. */
	void (*process_exited)(void *opaque, int pid, int exit_code, int signal);
	/* Optional: any other notification (container_exited ...): a JSON object, unchecked. */
	void (*notify)(void *opaque, uint32_t type, const cJSON *body);
	/* The connection is gone (guest reset or malformed stream). */
	void (*closed)(void *opaque);
};

/*
 * A response: status 0 or -errno, error the guest's message (or ours: a
 * malformed response, a lost connection), body the whole JSON (borrowed, may
 * be NULL when status reports a local failure).
 */
typedef void (*bridge_resp_fn)(void *opaque, int status, const char *error, const cJSON *body);

int bridge_create(struct bridge **out, struct vsock *vs, const struct bridge_ops *ops, void *opaque)
    __attribute__((warn_unused_result));
/* Fails every pending request with -ECANCELED, closes the connection. NULL ok. */
void bridge_destroy(struct bridge *b);
bool bridge_ready(const struct bridge *b);

/* Sends a request (body consumed); fn runs exactly once, possibly later. */
int bridge_request(struct bridge *b, uint32_t type, cJSON *body, bridge_resp_fn fn, void *opaque)
    __attribute__((warn_unused_result));

/* ---- stdio relays (bridge_stdio.c) -------------------------------------------- */

struct stdio_relay;

enum stdio_dir {
	STDIO_TO_GUEST,	  /* stdin: host fd -> guest */
	STDIO_FROM_GUEST, /* stdout, stderr: guest -> host fd */
};

/*
 * Opens a host path named by the parent: a FIFO, a Unix socket (connected), a
 * character device, or a regular file (appended for output). A symbolic link
 * as the last component is refused (-ELOOP), a directory (-EISDIR) and other
 * types (-EINVAL) too; never becomes a controlling terminal. Returns the fd
 * or -errno.
 */
int stdio_open_host(const char *path, enum stdio_dir dir);
/* The same, in this process whatever the sandbox (the opener runs it: shim/opener.h). */
int stdio_open_direct(const char *path, enum stdio_dir dir);
/* The same on what pfd (an O_PATH fd of the name, looked up by the caller) names. */
int stdio_open_pinned(int pfd, enum stdio_dir dir);

/*
 * Listens on a free vsock port from BRIDGE_STDIO_PORT_BASE (*port) and relays
 * the first guest connection to/from host_fd (owned by the relay from now on).
 * done(opaque) runs once the stream has ended: for output, after the last
 * byte reached host_fd and it was closed.
 */
int stdio_relay_create(struct stdio_relay **out, struct vsock *vs, struct loop *loop, int host_fd,
		       enum stdio_dir dir, void (*done)(void *opaque), void *opaque, uint32_t *port)
    __attribute__((warn_unused_result));
/* Stops relaying (without running done) and frees. NULL ok. */
void stdio_relay_destroy(struct stdio_relay *r);

#endif
