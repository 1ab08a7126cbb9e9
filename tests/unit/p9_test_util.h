/*
 * A tiny 9P2000.L client for the server's unit tests and fuzzer: builds
 * T-messages with the server's own writers and reads the R-message back.
 * Each call returns 0 (with c->r positioned on the R body) or -ecode of Rlerror.
 */
#ifndef TESTS_P9_TEST_UTIL_H
#define TESTS_P9_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/p9_priv.h"

#define P9T_BUF (P9_MSIZE_MAX + 64)

struct p9t {
	struct p9_server *s;
	uint8_t *req, *resp;
	size_t rlen;
	uint8_t rtype;
	struct p9_wr w;
	struct p9_rd r;
	uint16_t tag;
};

static inline int p9t_init(struct p9t *c, const struct p9_share_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->req = malloc(P9T_BUF);
	c->resp = malloc(P9T_BUF);
	if (!c->req || !c->resp)
		return -ENOMEM;
	return p9_server_create(cfg, &c->s);
}

static inline void p9t_fini(struct p9t *c)
{
	p9_server_destroy(c->s);
	free(c->req);
	free(c->resp);
}

/* Starts a message of type: the header is filled by p9t_send. */
static inline struct p9_wr *p9t_begin(struct p9t *c, uint8_t type)
{
	c->w = (struct p9_wr){.p = c->req, .cap = P9T_BUF, .off = P9_HDR_SIZE};
	c->req[4] = type;
	return &c->w;
}

/* Sends len raw bytes as they are (hostile framing) and parses the answer. */
static inline int p9t_raw(struct p9t *c, const uint8_t *msg, size_t len)
{
	c->rlen = p9_server_handle(c->s, msg, len, c->resp, P9T_BUF);
	c->r = (struct p9_rd){.p = c->resp, .len = c->rlen};
	if (c->rlen < P9_HDR_SIZE)
		return -1000;
	if (p9_get_u32(&c->r) != c->rlen)
		return -1001;
	c->rtype = p9_get_u8(&c->r);
	p9_get_u16(&c->r);
	if (c->rtype == P9_RLERROR)
		return -(int)p9_get_u32(&c->r);
	return 0;
}

static inline int p9t_send(struct p9t *c)
{
	struct p9_wr h = {.p = c->req, .cap = P9_HDR_SIZE};
	uint8_t type = c->req[4];
	int r;

	p9_put_u32(&h, c->w.off);
	p9_put_u8(&h, type);
	p9_put_u16(&h, ++c->tag);
	r = p9t_raw(c, c->req, c->w.off);
	if (!r && c->rtype != type + 1)
		return -1002;
	return r;
}

static inline void p9t_str(struct p9_wr *w, const char *s)
{
	p9_put_str(w, s, strlen(s));
}

/* ---- One helper per message the tests use ------------------------------------------------- */

static inline int p9t_version(struct p9t *c, uint32_t msize, const char *v)
{
	struct p9_wr *w = p9t_begin(c, P9_TVERSION);

	p9_put_u32(w, msize);
	p9t_str(w, v);
	return p9t_send(c);
}

static inline int p9t_attach(struct p9t *c, uint32_t fid)
{
	struct p9_wr *w = p9t_begin(c, P9_TATTACH);

	p9_put_u32(w, fid);
	p9_put_u32(w, P9_NOFID);
	p9t_str(w, "root");
	p9t_str(w, "");
	p9_put_u32(w, 0);
	return p9t_send(c);
}

/* Returns the number of qids walked (>= 0) or -errno. */
static inline int p9t_walkv(struct p9t *c, uint32_t fid, uint32_t newfid, int n,
			    const char *const *names)
{
	struct p9_wr *w = p9t_begin(c, P9_TWALK);
	int r;

	p9_put_u32(w, fid);
	p9_put_u32(w, newfid);
	p9_put_u16(w, n);
	for (int i = 0; i < n; i++)
		p9t_str(w, names[i]);
	r = p9t_send(c);
	return r ? r : p9_get_u16(&c->r);
}

/* Walk of one path "a/b/c" split on '/' by the test (never by the server). */
static inline int p9t_walk(struct p9t *c, uint32_t fid, uint32_t newfid, const char *path)
{
	const char *names[P9_MAXWELEM + 4];
	char buf[1024];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *t = strtok_r(buf, "/", &save); t && n < P9_MAXWELEM + 4;
	     t = strtok_r(NULL, "/", &save))
		names[n++] = t;
	return p9t_walkv(c, fid, newfid, n, names);
}

static inline int p9t_fid_op(struct p9t *c, uint8_t type, uint32_t fid)
{
	struct p9_wr *w = p9t_begin(c, type);

	p9_put_u32(w, fid);
	return p9t_send(c);
}

static inline int p9t_lopen(struct p9t *c, uint32_t fid, uint32_t flags)
{
	struct p9_wr *w = p9t_begin(c, P9_TLOPEN);

	p9_put_u32(w, fid);
	p9_put_u32(w, flags);
	return p9t_send(c);
}

static inline int p9t_lcreate(struct p9t *c, uint32_t fid, const char *name, uint32_t flags,
			      uint32_t mode)
{
	struct p9_wr *w = p9t_begin(c, P9_TLCREATE);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9_put_u32(w, flags);
	p9_put_u32(w, mode);
	p9_put_u32(w, 0);
	return p9t_send(c);
}

static inline int p9t_mkdir(struct p9t *c, uint32_t fid, const char *name)
{
	struct p9_wr *w = p9t_begin(c, P9_TMKDIR);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9_put_u32(w, 0755);
	p9_put_u32(w, 0);
	return p9t_send(c);
}

static inline int p9t_symlink(struct p9t *c, uint32_t fid, const char *name, const char *target)
{
	struct p9_wr *w = p9t_begin(c, P9_TSYMLINK);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9t_str(w, target);
	p9_put_u32(w, 0);
	return p9t_send(c);
}

static inline int p9t_link(struct p9t *c, uint32_t dfid, uint32_t fid, const char *name)
{
	struct p9_wr *w = p9t_begin(c, P9_TLINK);

	p9_put_u32(w, dfid);
	p9_put_u32(w, fid);
	p9t_str(w, name);
	return p9t_send(c);
}

static inline int p9t_mknod(struct p9t *c, uint32_t fid, const char *name, uint32_t mode)
{
	struct p9_wr *w = p9t_begin(c, P9_TMKNOD);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9_put_u32(w, mode);
	p9_put_u32(w, 1);
	p9_put_u32(w, 3);
	p9_put_u32(w, 0);
	return p9t_send(c);
}

static inline int p9t_renameat(struct p9t *c, uint32_t ofid, const char *on, uint32_t nfid,
			       const char *nn)
{
	struct p9_wr *w = p9t_begin(c, P9_TRENAMEAT);

	p9_put_u32(w, ofid);
	p9t_str(w, on);
	p9_put_u32(w, nfid);
	p9t_str(w, nn);
	return p9t_send(c);
}

static inline int p9t_unlinkat(struct p9t *c, uint32_t fid, const char *name, uint32_t flags)
{
	struct p9_wr *w = p9t_begin(c, P9_TUNLINKAT);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9_put_u32(w, flags);
	return p9t_send(c);
}

/* Returns bytes read into buf or -errno. */
static inline int p9t_read(struct p9t *c, uint32_t fid, uint64_t off, uint32_t count, void *buf,
			   size_t cap)
{
	struct p9_wr *w = p9t_begin(c, P9_TREAD);
	uint32_t n;
	int r;

	p9_put_u32(w, fid);
	p9_put_u64(w, off);
	p9_put_u32(w, count);
	r = p9t_send(c);
	if (r)
		return r;
	n = p9_get_u32(&c->r);
	if (n > cap || c->r.len - c->r.off != n)
		return -1003;
	memcpy(buf, c->r.p + c->r.off, n);
	return n;
}

static inline int p9t_write(struct p9t *c, uint32_t fid, uint64_t off, const void *data,
			    uint32_t count)
{
	struct p9_wr *w = p9t_begin(c, P9_TWRITE);
	int r;

	p9_put_u32(w, fid);
	p9_put_u64(w, off);
	p9_put_u32(w, count);
	memcpy(p9_put_space(w, count), data, count);
	r = p9t_send(c);
	return r ? r : (int)p9_get_u32(&c->r);
}

static inline int p9t_setattr(struct p9t *c, uint32_t fid, uint32_t valid, uint32_t mode,
			      uint64_t size)
{
	struct p9_wr *w = p9t_begin(c, P9_TSETATTR);

	p9_put_u32(w, fid);
	p9_put_u32(w, valid);
	p9_put_u32(w, mode);
	p9_put_u32(w, 0);
	p9_put_u32(w, 0);
	p9_put_u64(w, size);
	for (int i = 0; i < 4; i++)
		p9_put_u64(w, 1);
	return p9t_send(c);
}

static inline int p9t_xattrcreate(struct p9t *c, uint32_t fid, const char *name, uint64_t size)
{
	struct p9_wr *w = p9t_begin(c, P9_TXATTRCREATE);

	p9_put_u32(w, fid);
	p9t_str(w, name);
	p9_put_u64(w, size);
	p9_put_u32(w, 0);
	return p9t_send(c);
}

static inline int p9t_xattrwalk(struct p9t *c, uint32_t fid, uint32_t newfid, const char *name)
{
	struct p9_wr *w = p9t_begin(c, P9_TXATTRWALK);

	p9_put_u32(w, fid);
	p9_put_u32(w, newfid);
	p9t_str(w, name);
	return p9t_send(c);
}

static inline int p9t_readdir(struct p9t *c, uint32_t fid, uint64_t off, uint32_t count)
{
	struct p9_wr *w = p9t_begin(c, P9_TREADDIR);

	p9_put_u32(w, fid);
	p9_put_u64(w, off);
	p9_put_u32(w, count);
	return p9t_send(c);
}

/* ---- Scratch trees -------------------------------------------------------------------------- */

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir/share (served) beside dir/outside/secret (must stay out of reach). */
static inline int p9t_tree(char dir[64], char share[96])
{
	char p[160];
	int fd;

	snprintf(dir, 64, "/tmp/p9test.XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(share, 96, "%s/share", dir);
	snprintf(p, sizeof(p), "%s/outside", dir);
	if (mkdir(share, 0755) || mkdir(p, 0755))
		return -errno;
	snprintf(p, sizeof(p), "%s/outside/secret", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || write(fd, "secret", 6) != 6)
		return -EIO;
	close(fd);
	return 0;
}

static inline int p9t_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? 0 : 0;
}

static inline void p9t_tree_remove(const char *dir)
{
	nftw(dir, p9t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
