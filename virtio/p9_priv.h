/* Private to the 9P server: the codec (p9_codec.c), fids (p9_fid.c), operations (p9_ops*.c). */
#ifndef VIRTIO_P9_PRIV_H
#define VIRTIO_P9_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "p9.h"

/* ---- Message types (9P2000.L and the 9P2000 core it keeps) --------------------------------- */

enum {
	P9_TSTATFS = 8,
	P9_TLOPEN = 12,
	P9_TLCREATE = 14,
	P9_TSYMLINK = 16,
	P9_TMKNOD = 18,
	P9_TRENAME = 20,
	P9_TREADLINK = 22,
	P9_TGETATTR = 24,
	P9_TSETATTR = 26,
	P9_TXATTRWALK = 30,
	P9_TXATTRCREATE = 32,
	P9_TREADDIR = 40,
	P9_TFSYNC = 50,
	P9_TLOCK = 52,
	P9_TGETLOCK = 54,
	P9_TLINK = 70,
	P9_TMKDIR = 72,
	P9_TRENAMEAT = 74,
	P9_TUNLINKAT = 76,
	P9_TVERSION = 100,
	P9_TAUTH = 102,
	P9_TATTACH = 104,
	/* P9_TFLUSH = 108 in p9.h */
	P9_TWALK = 110,
	P9_TREAD = 116,
	P9_TWRITE = 118,
	P9_TCLUNK = 120,
	P9_TREMOVE = 122,
};

#define P9_NOTAG     0xffff
#define P9_NOFID     0xffffffffu
#define P9_MAXWELEM  16
#define P9_QID_SIZE  13
#define P9_IOHDRSZ   24 /* header of Rread/Twrite plus slack, as clients assume */
#define P9_QTDIR     0x80
#define P9_QTSYMLINK 0x02
#define P9_QTFILE    0x00
#define P9_XATTR_MAX (64 * 1024) /* XATTR_SIZE_MAX */
#define P9_NAME_MAX  255
#define P9_PATH_MAX  4095

/* ---- Codec (p9_codec.c) --------------------------------------------------------------------- */

/* Reader over a received message; any short read sets err and yields zeros. */
struct p9_rd {
	const uint8_t *p;
	size_t len, off;
	bool err;
};

/* Writer into a response buffer; overflowing sets err. */
struct p9_wr {
	uint8_t *p;
	size_t cap, off;
	bool err;
};

struct p9_str {
	const char *s; /* not NUL-terminated; points into the message */
	uint16_t len;
};

struct p9_qid {
	uint8_t type;
	uint32_t version;
	uint64_t path;
};

uint8_t p9_get_u8(struct p9_rd *r);
uint16_t p9_get_u16(struct p9_rd *r);
uint32_t p9_get_u32(struct p9_rd *r);
uint64_t p9_get_u64(struct p9_rd *r);
struct p9_str p9_get_str(struct p9_rd *r);
/* Pointer to the next n bytes (and skips them), or NULL with err set. */
const uint8_t *p9_get_bytes(struct p9_rd *r, size_t n);
/* Whether the message was consumed exactly (no error, no trailing bytes). */
bool p9_rd_done(const struct p9_rd *r);

void p9_put_u8(struct p9_wr *w, uint8_t v);
void p9_put_u16(struct p9_wr *w, uint16_t v);
void p9_put_u32(struct p9_wr *w, uint32_t v);
void p9_put_u64(struct p9_wr *w, uint64_t v);
void p9_put_str(struct p9_wr *w, const char *s, size_t len);
void p9_put_qid(struct p9_wr *w, const struct p9_qid *q);
/* Reserves n bytes and returns them (NULL with err set when they do not fit). */
uint8_t *p9_put_space(struct p9_wr *w, size_t n);

bool p9_utf8_valid(const char *s, size_t len);
/*
 * Checks a guest file name (one component): 1..255 bytes, valid UTF-8, no
 * '/', no NUL, not "." or "..". Copies it NUL-terminated into buf
 * (P9_NAME_MAX + 1 bytes). Returns 0 or -EINVAL/-ENAMETOOLONG/-EILSEQ.
 */
int p9_name_check(struct p9_str n, char *buf);

void p9_qid_from_stat(const struct stat *st, struct p9_qid *q);

/* ---- Fids (p9_fid.c) ------------------------------------------------------------------------ */

enum p9_xattr_kind { P9_XATTR_NONE, P9_XATTR_READ, P9_XATTR_WRITE };

struct p9_fid {
	uint32_t id;
	int refs;	     /* atomics: the table holds one, each request in flight one */
	struct p9_fid *next; /* hash chain */
	int fd;	       /* the object, beneath the root: O_PATH, or the open fd after lcreate */
	int parent_fd; /* O_PATH of the directory it was walked from (-1 at the root) */
	char *name;    /* entry name in parent_fd (NULL at the root) */
	mode_t type;   /* S_IFMT of the object */
	bool is_root;
	uint32_t uid;

	pthread_mutex_t lock; /* the fields below */
	int open_fd;	      /* -1 until lopen/lcreate */
	int open_flags;
	enum p9_xattr_kind xattr;
	uint8_t *xbuf;
	size_t xlen; /* bytes held (read) or expected (write) */
	size_t xfill;
	char *xname;
	int xflags;
};

#define P9_FID_BUCKETS 256

struct p9_server {
	int root_fd;
	int proc_fd; /* /proc/self/fd, to reopen our own O_PATH fds */
	uint64_t resolve;
	bool read_only, allow_devices;
	char **allowed;
	int nr_allowed;
	int max_fids;
	uint32_t msize; /* atomics */

	pthread_mutex_t fids_lock;
	int nr_fids;
	struct p9_fid *fids[P9_FID_BUCKETS];
};

/* A new fid object (not in the table), owning fd, parent_fd and name. */
int p9_fid_new(struct p9_server *s, int fd, int parent_fd, const char *name, bool is_root,
	       uint32_t uid, struct p9_fid **out);
/* Looks id up and takes a reference; NULL if unknown. */
struct p9_fid *p9_fid_get(struct p9_server *s, uint32_t id);
void p9_fid_put(struct p9_fid *f);
/*
 * Inserts f under id. replace: an existing fid with that id is dropped
 * (walk with newfid == fid); otherwise -EBADF... -EEXIST if in use, -EMFILE when full.
 * On failure f is released.
 */
int p9_fid_insert(struct p9_server *s, uint32_t id, struct p9_fid *f, bool replace);
/* Removes id from the table; returns the fid (caller holds the table's ref) or NULL. */
struct p9_fid *p9_fid_remove(struct p9_server *s, uint32_t id);
/* Drops every fid (Tversion, destroy). */
void p9_fid_clear(struct p9_server *s);

/* Resolves one checked name beneath dirfd into an O_PATH fd (the object itself, no link followed).
 */
int p9_walk_one(struct p9_server *s, int dirfd, const char *name);
/* Opens a real fd on the object fd refers to (/proc/self/fd/N); refuses symlinks. */
int p9_reopen(struct p9_server *s, int fd, int flags);
/* Whether name may be seen in the root of a restricted share. */
bool p9_name_allowed(const struct p9_server *s, const char *name);

/* ---- Operations (p9_ops.c, p9_ops_dir.c) ---------------------------------------------------- */

/* A handler parses its body from in, writes its R body into out; 0 or -errno (-> Rlerror). */
typedef int (*p9_op_fn)(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);

#define P9_OPS_CORE(X)                                                                             \
	X(version)                                                                                 \
	X(attach) X(walk) X(clunk) X(remove) X(getattr) X(setattr) X(lopen) X(lcreate) X(read)     \
	    X(write) X(fsync) X(statfs) X(flush)
#define P9_DECLARE_OP(n) int p9_op_##n(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
P9_OPS_CORE(P9_DECLARE_OP)

/* Every field parsed and nothing left over: only then may a handler act. */
#define P9_PARSED(in)                                                                              \
	do {                                                                                       \
		if (!p9_rd_done(in))                                                               \
			return -EINVAL;                                                            \
	} while (0)

int p9_op_mkdir(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_symlink(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_mknod(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_link(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_rename(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_renameat(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_unlinkat(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_readlink(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_readdir(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_lock(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_getlock(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_xattrwalk(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
int p9_op_xattrcreate(struct p9_server *s, struct p9_rd *in, struct p9_wr *out);
/* The xattr fid paths of Tread/Twrite/Tclunk (p9_ops_dir.c). */
int p9_xattr_read(struct p9_fid *f, uint64_t off, uint32_t count, struct p9_wr *out);
int p9_xattr_write(struct p9_fid *f, uint64_t off, const uint8_t *data, uint32_t count);
int p9_xattr_commit(struct p9_server *s, struct p9_fid *f);

/* After lcreate/mkdir/symlink/mknod: give the new object (fd) the guest's ids when we may. */
void p9_own_new(struct p9_server *s, int fd, uint32_t uid, uint32_t gid);
/* "N" for our own fd, to open or change it through s->proc_fd (never guest input). */
void p9_fd_name(int fd, char buf[16]);
/* Stats fd (AT_EMPTY_PATH, no follow) and fills the qid. */
int p9_stat_qid(int fd, struct stat *st, struct p9_qid *q);

#endif
