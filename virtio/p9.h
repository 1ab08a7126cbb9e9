/*
 * The 9P2000.L server behind virtio-9p (virtio/9p.c), kept apart from the
 * device so it can be tested and fuzzed on its own over a scratch directory.
 *
 * Confinement by construction: the server holds an O_PATH fd of the share
 * root and one fd per fid; every guest name is a single checked component
 * resolved beneath a held directory fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_XDEV]). No host
 * path string is ever built from guest input; the only strings built are
 * "/proc/self/fd/<our own fd number>" to reopen an fd already beneath the root.
 *
 * Thread-safe: several workers may call p9_server_handle at once.
 */
#ifndef VIRTIO_P9_H
#define VIRTIO_P9_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define P9_MSIZE_MAX	(512 * 1024) /* largest msize the server agrees to */
#define P9_MSIZE_MIN	4096	     /* smaller Tversion msize: refused */
#define P9_MAX_FIDS_DEF 4096	     /* per server (device) */
#define P9_HDR_SIZE	7	     /* size[4] type[1] tag[2] */
#define P9_MAX_ALLOWED	256	     /* allowed names per restricted share */

struct p9_share_config {
	const char *path; /* host directory (trusted: given by the parent) */
	bool has_root_fd; /* root_fd is the directory, already open (O_PATH): dup'ed */
	int root_fd;
	bool read_only;	    /* every modifying operation fails with EROFS */
	bool allow_xdev;    /* walks may cross into mounts beneath the root */
	bool allow_devices; /* mknod of char/block nodes, opening device nodes */
	/* Restricted share: only these entries of the root are shown or opened. */
	const char *const *allowed_names;
	int nr_allowed; /* 0: not restricted */
	int max_fids;	/* 0 -> P9_MAX_FIDS_DEF */
};

struct p9_server;

/* Opens the share root (must be a directory). Returns 0 or -errno. */
int p9_server_create(const struct p9_share_config *cfg, struct p9_server **out)
    __attribute__((warn_unused_result));
/* Closes every fid. NULL ok. No call may be in progress. */
void p9_server_destroy(struct p9_server *s);

/*
 * Serves one T-message (in, in_len bytes, the whole message) and writes the
 * R-message into out (out_cap bytes). Returns the response length, or 0 when
 * out_cap cannot hold even an Rlerror (the caller then has nothing to send).
 * Never fails otherwise: malformed input is answered with Rlerror.
 */
size_t p9_server_handle(struct p9_server *s, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t out_cap);

/* The msize agreed by the last Tversion (P9_MSIZE_MAX before any). */
uint32_t p9_server_msize(const struct p9_server *s);
/* Number of live fids (tests, leak checks). */
int p9_server_nr_fids(struct p9_server *s);

/* Wire helpers the device needs without the whole codec. */
#define P9_TFLUSH  108
#define P9_RLERROR 7
/* Writes an Rlerror for tag into out (11 bytes); returns its length or 0 if cap is short. */
size_t p9_build_rlerror(uint8_t *out, size_t cap, uint16_t tag, uint32_t ecode);
/* Writes an Rflush for tag (7 bytes); returns its length or 0 if cap is short. */
size_t p9_build_rflush(uint8_t *out, size_t cap, uint16_t tag);

/* The 9p device's stall report period (9p.c p9_watch; tests lower it before creating one). */
extern int p9_watch_ms;

/* ---- Worker pools (p9_pool.c), one per share (9p device) ------------------------------------ */

struct p9_pool;

/* Each worker's buffers, P9_MSIZE_MAX bytes each. */
/* A worker idle this long gives its buffers' pages back (tests lower it). */
extern int p9_pool_idle_release_ms;
struct p9_worker_bufs {
	uint8_t *in, *out;
};

/* A unit of work; fn runs on a worker (bufs NULL if the worker could not get its buffers). */
struct p9_work {
	void (*fn)(struct p9_work *w, struct p9_worker_bufs *bufs);
	struct p9_work *next;
};

/*
 * nr threads (1..16); each calls thread_init(opaque) first when given (the
 * place to drop privileges and install a seccomp filter of its own), and the
 * pool is made only if every worker's thread_init returned 0 (else the first
 * error, nothing left running). Create it while threads may still be created
 * (before the event loop's sandbox).
 */
int p9_pool_create(int nr, int (*thread_init)(void *opaque), void *opaque, struct p9_pool **out)
    __attribute__((warn_unused_result));
/* The same with the threads named prefix0, prefix1... (p9_pool_create: "9p-w"). */
int p9_pool_create_named(const char *prefix, int nr, int (*thread_init)(void *opaque),
			 void *opaque, struct p9_pool **out) __attribute__((warn_unused_result));
/* Stops and joins the workers (no device may still use the pool). NULL ok. */
void p9_pool_destroy(struct p9_pool *pool);
void p9_pool_submit(struct p9_pool *pool, struct p9_work *w);
/* Takes w back if no worker took it yet; returns whether it did. */
bool p9_pool_cancel(struct p9_pool *pool, struct p9_work *w);
/*
 * An idle worker calls fn(opaque) every period_ms, outside the pool's lock
 * (the 9p device's stall report). fn NULL or period_ms <= 0 removes it; a call
 * running meanwhile has finished when this returns. Not from fn itself.
 */
void p9_pool_set_watch(struct p9_pool *pool, int period_ms, void (*fn)(void *opaque),
		       void *opaque);
/* Work items waiting for a worker, and workers running one (the stall report). */
void p9_pool_stats(struct p9_pool *pool, int *queued, int *busy);

/* ---- The spawner (p9_spawn.c): makes a share's pool after the loop may no longer ------------ */

struct p9_spawner;

/*
 * One thread ("9p-spawn0") that runs self_init(opaque) first (its sandbox: it
 * must still allow making threads) and then makes pools on request. Create
 * it while threads may still be created; 0 or the error (nothing left running).
 */
int p9_spawner_create(int (*self_init)(void *opaque), void *opaque, struct p9_spawner **out)
    __attribute__((warn_unused_result));
/* p9_pool_create(nr, thread_init, opaque, out) run on the spawner's thread; waits for it. */
int p9_spawner_pool(struct p9_spawner *sp, int nr, int (*thread_init)(void *opaque), void *opaque,
		    struct p9_pool **out) __attribute__((warn_unused_result));
/* Stops and joins the spawner (its pools are their owners'). NULL ok. */
void p9_spawner_destroy(struct p9_spawner *sp);

#endif
