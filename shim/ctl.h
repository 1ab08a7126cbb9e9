/*
 * Control protocol: the parent drives the shim with newline-delimited JSON on
 * stdin and reads responses and events on stdout (docs/protocol.md).
 *
 * This module owns framing (a bounded line reader), request validation, the
 * method table, the single writer of stdout and the requests still pending.
 * It knows nothing about VMs: a gate callback (the lifecycle) says whether a
 * method may run now, handlers do the work.
 */
#ifndef SHIM_CTL_H
#define SHIM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/* Longest accepted request line, newline excluded. */
#define CTL_LINE_MAX (1024 * 1024)

/* Error codes: JSON-RPC 2.0 where one fits, project codes from -32001. */
enum ctl_err {
	CTL_ERR_PARSE = -32700,		  /* the line is not JSON */
	CTL_ERR_INVALID_REQUEST = -32600, /* JSON, but not a request object */
	CTL_ERR_UNKNOWN_METHOD = -32601,
	CTL_ERR_BAD_PARAMS = -32602,   /* missing, mistyped or out-of-range parameter */
	CTL_ERR_INTERNAL = -32603,     /* a bug or an allocation failure in the shim */
	CTL_ERR_WRONG_STATE = -32001,  /* method not allowed in the VM's current state */
	CTL_ERR_GUEST = -32002,	       /* the guest (GCS) reported a failure */
	CTL_ERR_NOT_FOUND = -32003,    /* no such process, disk, container ... */
	CTL_ERR_BUSY = -32004,	       /* a conflicting operation is in progress */
	CTL_ERR_TOO_LARGE = -32005,    /* request line over CTL_LINE_MAX */
	CTL_ERR_TIMEOUT = -32006,      /* the guest did not answer in time */
	CTL_ERR_HOST = -32007,	       /* a host resource failed (file, KVM, socket) */
	CTL_ERR_UNSUPPORTED = -32008,  /* known method, not available in this build */
	CTL_ERR_CANCELLED = -32009,    /* the VM ended before the operation completed */
	CTL_ERR_DUPLICATE_ID = -32010, /* id equals that of a request still pending */
};

/* Short symbolic name of a code ("wrong_state"), for logs and data.kind. */
const char *ctl_err_name(int code);

struct ctl;

/*
 * One request, from parsing until it is answered. The handler owns it and must
 * answer it exactly once, now or later, from any thread, with ctl_req_result()
 * or ctl_req_error(); either one frees it.
 */
struct ctl_method;

struct ctl_req {
	struct ctl *ctl;
	cJSON *id;		     /* detached copy of the request's id: number or string */
	const char *method;	     /* points into the method table */
	const struct ctl_method *m;  /* its row */
	cJSON *params;		     /* always an object (empty when the request had none) */
	void *data;		     /* free for the handler while the request is pending */
	struct ctl_req *prev, *next; /* pending list, under ctl->lock */
};

typedef void (*ctl_handler_fn)(void *opaque, struct ctl_req *req);

/*
 * One row per method: its name, the states it may run in and its flags
 * (meaning the owner's: serve's are lifecycle.h's LC_BIT masks and LC_F_*
 * flags; ctl only hands them to the gate), and the handler. New managers add
 * rows; nothing else lists methods.
 */
struct ctl_method {
	const char *name;
	ctl_handler_fn fn;
	uint32_t allowed;
	uint32_t flags;
};

/*
 * Decides whether a request for m may run now. Returns 0, or an error code
 * with a message written into msg (e.g. "vm.start is not allowed in state
 * Running"). A request the gate let through is released (below) when it is
 * answered, whichever answer and from wherever.
 */
typedef int (*ctl_gate_fn)(void *opaque, const struct ctl_method *m, char *msg, size_t msglen);
typedef void (*ctl_release_fn)(void *opaque, const struct ctl_method *m);

struct ctl_config {
	int out_fd;			  /* where responses and events go (stdout) */
	const struct ctl_method *methods; /* terminated by a {NULL} entry */
	void *opaque;			  /* passed to handlers, gate and release */
	ctl_gate_fn gate;		  /* may be NULL: every method allowed */
	ctl_release_fn release;		  /* may be NULL; runs before the answer goes out */
	size_t line_max;		  /* 0: CTL_LINE_MAX */
};

int ctl_create(struct ctl **out, const struct ctl_config *cfg) __attribute__((warn_unused_result));
/* Answers every pending request with CTL_ERR_CANCELLED, then frees. NULL is a no-op. */
void ctl_destroy(struct ctl *ctl);

/*
 * Feeds bytes read from the parent. Complete lines are dispatched at once; a
 * partial line is kept for the next call. Runs handlers on the caller's thread.
 */
void ctl_feed(struct ctl *ctl, const char *data, size_t len);
/*
 * Reads once from fd and feeds what came. Returns the byte count, 0 at EOF
 * (a partial last line is then dispatched as if it ended), or -errno
 * (-EAGAIN when a non-blocking fd had nothing).
 */
ssize_t ctl_read(struct ctl *ctl, int fd);

/* Answers and frees req. result (may be NULL: {}) is consumed. */
void ctl_req_result(struct ctl_req *req, cJSON *result);
/* Answers with an error and frees req. */
void ctl_req_error(struct ctl_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reply with CTL_ERR_BAD_PARAMS and the message a ctl_param_* helper left in err. */
void ctl_req_bad_params(struct ctl_req *req, const char *err);

/* Sends {"event": name, "params": params}; params (may be NULL) is consumed. */
int ctl_event(struct ctl *ctl, const char *name, cJSON *params);

/* Number of requests not answered yet. */
unsigned ctl_pending(struct ctl *ctl);
/* True once a write to the parent failed (it went away). */
bool ctl_output_broken(struct ctl *ctl);

/*
 * Parameter helpers. Each returns 0 when found and valid, -ENOENT when absent
 * and optional (out untouched), -EINVAL otherwise with a message in err
 * ("params.cpus: expected an integer in [1, 64]").
 */
#define CTL_ERRLEN 160
int ctl_param_str(const cJSON *params, const char *key, bool required, const char **out,
		  char err[CTL_ERRLEN]);
int ctl_param_u64(const cJSON *params, const char *key, bool required, uint64_t min, uint64_t max,
		  uint64_t *out, char err[CTL_ERRLEN]);
int ctl_param_bool(const cJSON *params, const char *key, bool required, bool *out,
		   char err[CTL_ERRLEN]);
/* An array of strings; *out is the array node (borrowed), *count its length. */
int ctl_param_strv(const cJSON *params, const char *key, bool required, size_t max,
		   const cJSON **out, size_t *count, char err[CTL_ERRLEN]);
int ctl_param_obj(const cJSON *params, const char *key, bool required, const cJSON **out,
		  char err[CTL_ERRLEN]);

#endif
