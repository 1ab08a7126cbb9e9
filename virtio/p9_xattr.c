/*
 * 9P2000.L extended attributes. Txattrwalk reads a value (or the name list)
 * into a new fid that Tread returns; Txattrcreate turns a fid into a buffer
 * that Twrite fills and Tclunk sets. The object is reached through the magic
 * link of our own fd (never a symlink: those are refused). Only user.* and
 * the POSIX ACL names may be set: a guest must not plant security.capability
 * or trusted.* on host files.
 */
#include "p9_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static void proc_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

/* An attribute name: 1..255 bytes, no NUL. */
static int xname_check(struct p9_str n, char *buf)
{
	if (n.len == 0 || n.len > P9_NAME_MAX || memchr(n.s, '\0', n.len))
		return -EINVAL;
	memcpy(buf, n.s, n.len);
	buf[n.len] = '\0';
	return 0;
}

static bool settable(const char *name)
{
	return !strncmp(name, "user.", 5) || !strcmp(name, "system.posix_acl_access") ||
	       !strcmp(name, "system.posix_acl_default");
}

/* A new fid on the same object as f, for newfid. */
static int clone_fid(struct p9_server *s, struct p9_fid *f, struct p9_fid **out)
{
	int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0), pfd = -1;

	if (fd < 0)
		return -errno;
	if (f->parent_fd >= 0 && (pfd = fcntl(f->parent_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		close(fd);
		return -errno;
	}
	return p9_fid_new(s, fd, pfd, f->name, f->is_root, f->uid, out);
}

static ssize_t fetch(const char *path, const char *name, void *buf, size_t len)
{
	return name ? getxattr(path, name, buf, len) : listxattr(path, buf, len);
}

int p9_op_xattrwalk(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), newfid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	char name[P9_NAME_MAX + 1], path[32];
	struct p9_fid *f, *nf = NULL;
	uint8_t *buf = NULL;
	ssize_t len = 0;
	int err = 0;

	P9_PARSED(in);
	if (n.len && (err = xname_check(n, name)))
		return err;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->type == S_IFLNK || f->xattr != P9_XATTR_NONE) {
		err = -EOPNOTSUPP;
		goto out;
	}
	proc_path(f->fd, path);
	/* Size, then value; a value that grew in between is asked once more. */
	for (int tries = 0; tries < 2; tries++) {
		len = fetch(path, n.len ? name : NULL, NULL, 0);
		if (len < 0) {
			err = -errno;
			goto out;
		}
		if (len > P9_XATTR_MAX) {
			err = -E2BIG;
			goto out;
		}
		free(buf);
		buf = malloc(len ? len : 1);
		if (!buf) {
			err = -ENOMEM;
			goto out;
		}
		len = fetch(path, n.len ? name : NULL, buf, len);
		if (len >= 0 || errno != ERANGE)
			break;
	}
	if (len < 0) {
		err = -errno;
		goto out;
	}
	err = clone_fid(s, f, &nf);
	if (err)
		goto out;
	nf->xattr = P9_XATTR_READ;
	nf->xbuf = buf;
	nf->xlen = len;
	buf = NULL;
	err = p9_fid_insert(s, newfid, nf, newfid == fid);
	if (!err)
		p9_put_u64(out, len);
out:
	free(buf);
	p9_fid_put(f);
	return err;
}

int p9_op_xattrcreate(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	uint64_t size = p9_get_u64(in);
	uint32_t flags = p9_get_u32(in);
	char name[P9_NAME_MAX + 1];
	struct p9_fid *f, *nf;
	int err;

	P9_PARSED(in);
	err = xname_check(n, name);
	if (err)
		return err;
	if (size > P9_XATTR_MAX)
		return -E2BIG;
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if (!settable(name))
		return -EOPNOTSUPP;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->type == S_IFLNK || f->xattr != P9_XATTR_NONE) {
		err = -EOPNOTSUPP;
		goto out;
	}
	err = clone_fid(s, f, &nf);
	if (err)
		goto out;
	nf->xattr = P9_XATTR_WRITE;
	nf->xlen = size;
	nf->xflags = flags;
	nf->xbuf = calloc(1, size ? size : 1);
	nf->xname = strdup(name);
	if (!nf->xbuf || !nf->xname) {
		p9_fid_put(nf);
		err = -ENOMEM;
		goto out;
	}
	/* The fid itself becomes the attribute being written. */
	err = p9_fid_insert(s, fid, nf, true);
out:
	p9_fid_put(f);
	return err;
}

int p9_xattr_read(struct p9_fid *f, uint64_t off, uint32_t count, struct p9_wr *out)
{
	size_t n = 0;

	if (off < f->xlen)
		n = f->xlen - off;
	if (n > count)
		n = count;
	if (out->cap - out->off < 4 || n > out->cap - out->off - 4)
		return -ENOBUFS;
	p9_put_u32(out, n);
	memcpy(p9_put_space(out, n), f->xbuf + off * (n > 0), n);
	return 0;
}

int p9_xattr_write(struct p9_fid *f, uint64_t off, const uint8_t *data, uint32_t count)
{
	int err = 0;

	pthread_mutex_lock(&f->lock);
	if (off > f->xlen || count > f->xlen - off) {
		err = -EINVAL;
	} else {
		memcpy(f->xbuf + off, data, count);
		if (off + count > f->xfill)
			f->xfill = off + count;
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

int p9_xattr_commit(struct p9_server *s, struct p9_fid *f)
{
	char path[32];
	int r;

	if (s->read_only)
		return -EROFS;
	pthread_mutex_lock(&f->lock);
	proc_path(f->fd, path);
	if (f->xfill != f->xlen)
		r = (errno = EINVAL, -1);
	else if (f->xlen == 0)
		r = removexattr(path, f->xname); /* what the Linux client sends to remove */
	else
		r = setxattr(path, f->xname, f->xbuf, f->xlen, f->xflags);
	pthread_mutex_unlock(&f->lock);
	return r < 0 ? -errno : 0;
}
