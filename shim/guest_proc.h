/*
 * One process run in the guest through the GCS bridge: its stdio relays, the
 * exec request, the wait, and the moment it is over (exit known and every
 * output byte relayed). Shared by `serve` (guest.exec) and `run -- CMD`.
 * Event loop thread only.
 */
#ifndef SHIM_GUEST_PROC_H
#define SHIM_GUEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct bridge;
struct loop;
struct stdio_relay;
struct vsock;
struct guest_proc;

struct guest_proc_ops {
	/*
	 * The exec was answered: status 0 (pid set) or -errno with the guest's
	 * message (relays already dropped). Exactly once per guest_proc_exec
	 * that returned 0; the owner may free p here when status != 0.
	 */
	void (*started)(struct guest_proc *p, int status, const char *error);
	/* Optional: the exit is known (output may still be in flight). */
	void (*exited)(struct guest_proc *p);
	/* The exit is known and the output is all relayed (or abandoned). Once. */
	void (*finished)(struct guest_proc *p);
};

/* What to run. Strings and JSON are borrowed for the duration of the call. */
struct guest_exec {
	const cJSON *argv; /* array of strings, at least one */
	const cJSON *env;  /* array of "K=V" strings, or NULL: the GCS's environment */
	const char *cwd;   /* or NULL */
	uint32_t uid, gid;
	bool tty; /* a pty in the guest: one output stream (stdout) */
	unsigned rows, cols;
	const char *term; /* tty only: TERM for the process (unless env sets it), or NULL */
	/* Host ends of stdin, stdout, stderr: -1 for none. Owned by the proc from the call on. */
	int fds[3];
	/*
	 * Optional, for a process the guest starts otherwise (containers): the
	 * request type (0: the process exec) and fields added to its body; argv
	 * may then be NULL. The answer is read the same way: {"pid": N}.
	 */
	uint32_t type;
	const cJSON *extra;
};

/* Embedded by its owner (container_of in the callbacks). */
struct guest_proc {
	const struct guest_proc_ops *ops;
	struct bridge *bridge;
	int pid; /* -1 until started */
	struct stdio_relay *relay[3];
	int outputs_open; /* stdout/stderr relays not finished */
	bool exited, finished;
	bool exec_pending; /* the exec request is out: p must outlive its answer or the bridge */
	bool wait_pending; /* a wait request is out: p must outlive its answer or the bridge */
	int exit_code;	   /* as a shell reports it: N, or 128 + signal */
	int signal;	   /* the signal that killed it, else 0 */
};

void guest_proc_init(struct guest_proc *p, const struct guest_proc_ops *ops);

/*
 * Listens for the stdio streams, sends the exec, and once it is answered
 * waits for the exit. Returns 0 (ops->started follows, possibly before this
 * returns) or -errno with a sentence in err when the host side could not be
 * set up (nothing sent; every fd closed).
 */
int guest_proc_exec(struct guest_proc *p, struct bridge *b, struct vsock *vs, struct loop *loop,
		    const struct guest_exec *x, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * A process_exited notification or a wait answer: either one settles it.
 * Ignored until the exec was answered with a pid (a guest-sent exit cannot
 * settle a process it has not started).
 */
void guest_proc_exited(struct guest_proc *p, int exit_code, int signal);

/* Whether a request about p is still out on the bridge: p must not be freed. */
bool guest_proc_busy(const struct guest_proc *p);

/* Gives up on the output still open (a background child holds it): finished follows. */
void guest_proc_abandon_output(struct guest_proc *p);

/* Stops and frees the relays (the VM is going, or the process is done). */
void guest_proc_drop_relays(struct guest_proc *p);

/* Request bodies of process.signal and process.resize, shared with serve. */
cJSON *guest_proc_signal_body(int pid, int signal);
cJSON *guest_proc_resize_body(int pid, unsigned rows, unsigned cols);

#endif
