/*
 * 9P2000.L operations on fids: session (version, attach, walk, clunk,
 * remove, flush), open/create and file I/O (attributes: p9_attr.c). Each
 * handler parses its whole body first (P9_PARSED), then acts on fds held by
 * fids.
 */
#include "p9_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Open flags a guest may ask for (9P2000.L uses Linux's generic values). */
#define P9_OPEN_KEEP                                                                               \
	(O_ACCMODE | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECTORY | O_EXCL)

void p9_fd_name(int fd, char buf[16])
{
	snprintf(buf, 16, "%d", fd);
}

int p9_stat_qid(int fd, struct stat *st, struct p9_qid *q)
{
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	p9_qid_from_stat(st, q);
	return 0;
}

void p9_own_new(struct p9_server *s, int fd, uint32_t uid, uint32_t gid)
{
	/* Best effort, as a passthrough server without privileges would: the
	 * object keeps the shim's ids when it may not give it the guest's (EPERM).
	 * Tried every time: the share is made on the loop thread, whose seccomp
	 * list has no geteuid. */
	(void)fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

static bool writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
}

/* ---- Session -------------------------------------------------------------------------------- */

int p9_op_version(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t msize = p9_get_u32(in);
	struct p9_str v = p9_get_str(in);
	static const char want[] = "9P2000.L";

	P9_PARSED(in);
	if (msize < P9_MSIZE_MIN)
		return -EINVAL;
	if (msize > P9_MSIZE_MAX)
		msize = P9_MSIZE_MAX;
	/* A new session: every fid of the old one is gone. */
	p9_fid_clear(s);
	__atomic_store_n(&s->msize, msize, __ATOMIC_RELAXED);
	p9_put_u32(out, msize);
	if (v.len == sizeof(want) - 1 && !memcmp(v.s, want, v.len))
		p9_put_str(out, want, sizeof(want) - 1);
	else
		p9_put_str(out, "unknown", 7);
	return 0;
}

int p9_op_attach(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), afid = p9_get_u32(in);
	struct p9_qid q;
	struct stat st;
	struct p9_fid *f;
	uint32_t uid;
	int fd, err;

	p9_get_str(in); /* uname */
	p9_get_str(in); /* aname: one share per device */
	uid = p9_get_u32(in);
	P9_PARSED(in);
	if (afid != P9_NOFID)
		return -EOPNOTSUPP; /* no authentication */
	fd = fcntl(s->root_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = p9_fid_new(s, fd, -1, NULL, true, uid, &f);
	if (err)
		return err;
	err = p9_stat_qid(f->fd, &st, &q);
	if (!err)
		err = p9_fid_insert(s, fid, f, false);
	else
		p9_fid_put(f);
	if (err)
		return err;
	p9_put_qid(out, &q);
	return 0;
}

int p9_op_walk(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), newfid = p9_get_u32(in);
	uint16_t nwname = p9_get_u16(in);
	char names[P9_MAXWELEM][P9_NAME_MAX + 1];
	int cur = -1, dir = -1, err = 0, i;
	const char *last = NULL;
	struct p9_fid *f, *nf;
	uint8_t *count;

	if (nwname > P9_MAXWELEM)
		return -EINVAL;
	for (i = 0; i < nwname; i++) {
		err = p9_name_check(p9_get_str(in), names[i]);
		if (in->err)
			return -EINVAL;
		if (err)
			return err;
	}
	P9_PARSED(in);
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->xattr != P9_XATTR_NONE) {
		err = -EINVAL;
		goto out;
	}
	cur = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0) {
		err = -errno;
		goto out;
	}
	if (nwname == 0) {
		if (newfid == fid)
			goto out; /* Rwalk with no qids, nothing changes */
		if (f->parent_fd >= 0 && (dir = fcntl(f->parent_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			err = -errno;
			goto out;
		}
		last = f->name;
	}
	count = p9_put_space(out, 2);
	for (i = 0; i < nwname; i++) {
		struct p9_qid q;
		struct stat st;
		int nfd;

		if (i == 0 && f->is_root && !p9_name_allowed(s, names[0])) {
			err = -ENOENT;
			break;
		}
		nfd = p9_walk_one(s, cur, names[i]);
		if (nfd < 0) {
			err = nfd;
			break;
		}
		err = p9_stat_qid(nfd, &st, &q);
		if (err) {
			close(nfd);
			break;
		}
		p9_put_qid(out, &q);
		if (dir >= 0)
			close(dir);
		dir = cur;
		cur = nfd;
		last = names[i];
	}
	if (count) {
		count[0] = i & 0xff;
		count[1] = i >> 8;
	}
	if (i < nwname) {
		/* The first name failing is an error; a later one a short Rwalk (no newfid). */
		if (i > 0)
			err = 0;
		goto out;
	}
	err = p9_fid_new(s, cur, dir, last, nwname == 0 && f->is_root, f->uid, &nf);
	cur = dir = -1;
	if (!err)
		err = p9_fid_insert(s, newfid, nf, newfid == fid);
out:
	if (cur >= 0)
		close(cur);
	if (dir >= 0)
		close(dir);
	p9_fid_put(f);
	return err;
}

int p9_op_clunk(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_fid *f;
	int err = 0;

	P9_PARSED(in);
	f = p9_fid_remove(s, fid);
	if (!f)
		return -EBADF;
	if (f->xattr == P9_XATTR_WRITE)
		err = p9_xattr_commit(s, f);
	p9_fid_put(f);
	return err;
}

int p9_op_remove(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct stat a, b;
	struct p9_fid *f;
	int err = 0;

	P9_PARSED(in);
	f = p9_fid_remove(s, fid); /* Tremove clunks the fid whatever happens */
	if (!f)
		return -EBADF;
	if (s->read_only)
		err = -EROFS;
	else if (f->is_root || f->parent_fd < 0 || !f->name)
		err = -EBUSY;
	else if (fstatat(f->fd, "", &a, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
		 fstatat(f->parent_fd, f->name, &b, AT_SYMLINK_NOFOLLOW) < 0)
		err = -errno;
	else if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		err = -ENOENT; /* renamed away since the walk */
	else if (unlinkat(f->parent_fd, f->name, S_ISDIR(a.st_mode) ? AT_REMOVEDIR : 0) < 0)
		err = -errno;
	p9_fid_put(f);
	return err;
}

int p9_op_flush(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	p9_get_u16(in); /* oldtag: a waiting request is cancelled by the device */
	P9_PARSED(in);
	return 0;
}

/* ---- Open, create, I/O ---------------------------------------------------------------------- */

/* Installs an open fd on f (once). */
static int set_open(struct p9_fid *f, int fd, int flags)
{
	int err = 0;

	pthread_mutex_lock(&f->lock);
	if (f->open_fd >= 0 || f->xattr != P9_XATTR_NONE) {
		err = -EBUSY;
	} else {
		f->open_fd = fd;
		f->open_flags = flags;
	}
	pthread_mutex_unlock(&f->lock);
	if (err)
		close(fd);
	return err;
}

int p9_op_lopen(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), flags = p9_get_u32(in);
	struct p9_fid *f;
	struct p9_qid q;
	struct stat st;
	int fd, err;

	P9_PARSED(in);
	flags &= P9_OPEN_KEEP & ~O_EXCL;
	if (s->read_only && writes(flags))
		return -EROFS;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->type == S_IFDIR && writes(flags)) {
		err = -EISDIR;
		goto out;
	}
	err = p9_stat_qid(f->fd, &st, &q);
	if (err)
		goto out;
	fd = p9_reopen(s, f->fd, flags);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	err = set_open(f, fd, flags);
	if (err)
		goto out;
	p9_put_qid(out, &q);
	p9_put_u32(out, 0); /* iounit: msize - P9_IOHDRSZ */
out:
	p9_fid_put(f);
	return err;
}

int p9_op_lcreate(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	uint32_t flags = p9_get_u32(in), mode = p9_get_u32(in), gid = p9_get_u32(in);
	char name[P9_NAME_MAX + 1];
	struct open_how how = {0};
	int fd = -1, pfd = -1, dfd = -1, err;
	struct p9_fid *f, *nf;
	struct p9_qid q;
	struct stat st;

	P9_PARSED(in);
	err = p9_name_check(n, name);
	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->type != S_IFDIR) {
		err = -ENOTDIR;
		goto out;
	}
	if (f->is_root && !p9_name_allowed(s, name)) {
		err = -EACCES;
		goto out;
	}
	how.flags = (flags & P9_OPEN_KEEP & ~O_DIRECTORY) | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
	how.mode = mode & 07777;
	how.resolve = s->resolve;
	fd = syscall(SYS_openat2, f->fd, name, &how, sizeof(how));
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	p9_own_new(s, fd, f->uid, gid);
	err = p9_stat_qid(fd, &st, &q);
	if (err)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		err = -EPERM;
		goto out;
	}
	pfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	dfd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
	if (pfd < 0 || dfd < 0) {
		err = -errno;
		goto out;
	}
	/* The fid now stands for the new, open file. */
	err = p9_fid_new(s, pfd, dfd, name, false, f->uid, &nf);
	pfd = dfd = -1;
	if (err)
		goto out;
	nf->open_fd = fd;
	nf->open_flags = how.flags;
	fd = -1;
	err = p9_fid_insert(s, fid, nf, true);
	if (err)
		goto out;
	p9_put_qid(out, &q);
	p9_put_u32(out, 0);
out:
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	if (dfd >= 0)
		close(dfd);
	p9_fid_put(f);
	return err;
}

/* The open fd of f, or -EBADF (not opened) / -EISDIR. */
static int io_fd(struct p9_fid *f)
{
	int fd;

	pthread_mutex_lock(&f->lock);
	fd = f->open_fd;
	pthread_mutex_unlock(&f->lock);
	if (fd < 0)
		return -EBADF;
	return f->type == S_IFDIR ? -EISDIR : fd;
}

int p9_op_read(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	uint64_t off = p9_get_u64(in);
	uint32_t count = p9_get_u32(in);
	struct p9_fid *f;
	uint8_t *cnt, *data;
	size_t room;
	ssize_t got;
	int fd, err = 0;

	P9_PARSED(in);
	if (off > INT64_MAX)
		return -EINVAL;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->xattr == P9_XATTR_READ) {
		err = p9_xattr_read(f, off, count, out);
		goto out;
	}
	fd = io_fd(f);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	cnt = p9_put_space(out, 4);
	if (!cnt) {
		err = -ENOBUFS;
		goto out;
	}
	room = out->cap - out->off;
	if (count > room)
		count = room;
	data = out->p + out->off;
	got = pread(fd, data, count, (off_t)off);
	if (got < 0) {
		err = -errno;
		goto out;
	}
	out->off += got;
	cnt[0] = got & 0xff;
	cnt[1] = got >> 8 & 0xff;
	cnt[2] = got >> 16 & 0xff;
	cnt[3] = got >> 24 & 0xff;
out:
	p9_fid_put(f);
	return err;
}

int p9_op_write(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	uint64_t off = p9_get_u64(in);
	uint32_t count = p9_get_u32(in);
	const uint8_t *data = p9_get_bytes(in, count);
	struct p9_fid *f;
	ssize_t done;
	int fd, err = 0;

	P9_PARSED(in);
	if (off > INT64_MAX || count > INT64_MAX - off)
		return -EINVAL;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->xattr == P9_XATTR_WRITE) {
		err = p9_xattr_write(f, off, data, count);
		if (!err)
			p9_put_u32(out, count);
		goto out;
	}
	fd = io_fd(f);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	done = pwrite(fd, data, count, (off_t)off);
	if (done < 0)
		err = -errno;
	else
		p9_put_u32(out, done);
out:
	p9_fid_put(f);
	return err;
}

int p9_op_fsync(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), datasync = p9_get_u32(in);
	struct p9_fid *f;
	int fd, err = 0;

	P9_PARSED(in);
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	pthread_mutex_lock(&f->lock);
	fd = f->open_fd;
	pthread_mutex_unlock(&f->lock);
	if (fd < 0)
		err = -EBADF;
	else if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
		err = -errno;
	p9_fid_put(f);
	return err;
}
