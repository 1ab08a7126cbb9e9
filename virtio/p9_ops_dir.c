/*
 * 9P2000.L operations on directory entries (mkdir, symlink, mknod, link,
 * rename, unlink, readdir), links, locks and extended attributes. Every
 * entry is named by a held directory fd and one checked name.
 */
#include "p9_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define P9_DOTL_AT_REMOVEDIR 0x200

#define P9_LOCK_TYPE_RDLCK 0
#define P9_LOCK_TYPE_WRLCK 1
#define P9_LOCK_TYPE_UNLCK 2
#define P9_LOCK_SUCCESS	   0
#define P9_LOCK_BLOCKED	   1
#define P9_LOCK_ERROR	   2

/* A directory fid and a checked new name in it (restricted roots: only allowed names). */
static int dir_and_name(struct p9_server *s, uint32_t fid, struct p9_str n, char *name,
			struct p9_fid **out)
{
	struct p9_fid *f;
	int err = p9_name_check(n, name);

	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (f->type != S_IFDIR)
		err = -ENOTDIR;
	else if (f->is_root && !p9_name_allowed(s, name))
		err = -EACCES;
	if (err) {
		p9_fid_put(f);
		return err;
	}
	*out = f;
	return 0;
}

/* After creating name in dir: owner, then the new entry's qid. */
static int created(struct p9_server *s, struct p9_fid *dir, const char *name, uint32_t gid,
		   struct p9_wr *out)
{
	struct p9_qid q;
	struct stat st;
	int fd = p9_walk_one(s, dir->fd, name), err;

	if (fd < 0)
		return fd;
	p9_own_new(s, fd, dir->uid, gid);
	err = p9_stat_qid(fd, &st, &q);
	close(fd);
	if (!err)
		p9_put_qid(out, &q);
	return err;
}

int p9_op_mkdir(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	uint32_t mode = p9_get_u32(in), gid = p9_get_u32(in);
	char name[P9_NAME_MAX + 1];
	struct p9_fid *d;
	int err;

	P9_PARSED(in);
	err = dir_and_name(s, fid, n, name, &d);
	if (err)
		return err;
	if (mkdirat(d->fd, name, mode & 07777) < 0)
		err = -errno;
	else
		err = created(s, d, name, gid, out);
	p9_fid_put(d);
	return err;
}

int p9_op_symlink(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in), t = p9_get_str(in);
	uint32_t gid = p9_get_u32(in);
	char name[P9_NAME_MAX + 1], target[P9_PATH_MAX + 1];
	struct p9_fid *d;
	int err;

	P9_PARSED(in);
	/* The target is stored, never followed by the server. */
	if (t.len == 0 || t.len > P9_PATH_MAX || memchr(t.s, '\0', t.len))
		return -EINVAL;
	memcpy(target, t.s, t.len);
	target[t.len] = '\0';
	err = dir_and_name(s, fid, n, name, &d);
	if (err)
		return err;
	if (symlinkat(target, d->fd, name) < 0)
		err = -errno;
	else
		err = created(s, d, name, gid, out);
	p9_fid_put(d);
	return err;
}

int p9_op_mknod(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	uint32_t mode = p9_get_u32(in), major = p9_get_u32(in), minor = p9_get_u32(in);
	uint32_t gid = p9_get_u32(in);
	char name[P9_NAME_MAX + 1];
	struct p9_fid *d;
	int err;

	P9_PARSED(in);
	switch (mode & S_IFMT) {
	case S_IFCHR:
	case S_IFBLK:
		if (!s->allow_devices)
			return -EPERM;
		break;
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		return -EINVAL;
	}
	err = dir_and_name(s, fid, n, name, &d);
	if (err)
		return err;
	if (mknodat(d->fd, name, mode & (S_IFMT | 07777), makedev(major, minor)) < 0)
		err = -errno;
	else
		err = created(s, d, name, gid, out);
	p9_fid_put(d);
	return err;
}

int p9_op_link(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t dfid = p9_get_u32(in), fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	char name[P9_NAME_MAX + 1], num[16];
	struct p9_fid *d, *f;
	int err;

	P9_PARSED(in);
	err = dir_and_name(s, dfid, n, name, &d);
	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f) {
		p9_fid_put(d);
		return -EBADF;
	}
	if (f->type == S_IFDIR) {
		err = -EPERM;
	} else if (linkat(f->fd, "", d->fd, name, AT_EMPTY_PATH) == 0) {
		err = 0;
	} else if (errno != ENOENT) {
		err = -errno;
	} else if (f->type == S_IFLNK) {
		/* Without CAP_DAC_READ_SEARCH: link the entry, which is not followed. */
		err = f->parent_fd < 0 || linkat(f->parent_fd, f->name, d->fd, name, 0) < 0
			  ? (f->parent_fd < 0 ? -EINVAL : -errno)
			  : 0;
	} else {
		/* The magic link of our own fd names exactly the fid's inode. */
		p9_fd_name(f->fd, num);
		err = linkat(s->proc_fd, num, d->fd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
	p9_fid_put(f);
	p9_fid_put(d);
	return err;
}

static int rename_entries(struct p9_server *s, struct p9_fid *od, const char *oname,
			  struct p9_fid *nd, const char *nname)
{
	if ((od->is_root && !p9_name_allowed(s, oname)) ||
	    (nd->is_root && !p9_name_allowed(s, nname)))
		return -EACCES;
	return renameat(od->fd, oname, nd->fd, nname) < 0 ? -errno : 0;
}

int p9_op_rename(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), dfid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	char name[P9_NAME_MAX + 1];
	struct p9_fid *f, *d;
	int err;

	P9_PARSED(in);
	err = dir_and_name(s, dfid, n, name, &d);
	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f) {
		err = -EBADF;
	} else if (f->is_root || f->parent_fd < 0 || !f->name) {
		err = -EBUSY;
	} else {
		/* The entry as walked: a fid renamed since keeps its old name (the
		 * Linux client uses Trenameat, which names both entries). */
		err = renameat(f->parent_fd, f->name, d->fd, name) < 0 ? -errno : 0;
	}
	p9_fid_put(f);
	p9_fid_put(d);
	return err;
}

int p9_op_renameat(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t ofid = p9_get_u32(in);
	struct p9_str on = p9_get_str(in);
	uint32_t nfid = p9_get_u32(in);
	struct p9_str nn = p9_get_str(in);
	char oname[P9_NAME_MAX + 1], nname[P9_NAME_MAX + 1];
	struct p9_fid *od, *nd;
	int err;

	P9_PARSED(in);
	err = dir_and_name(s, ofid, on, oname, &od);
	if (err)
		return err;
	err = dir_and_name(s, nfid, nn, nname, &nd);
	if (!err) {
		err = rename_entries(s, od, oname, nd, nname);
		p9_fid_put(nd);
	}
	p9_fid_put(od);
	return err;
}

int p9_op_unlinkat(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_str n = p9_get_str(in);
	uint32_t flags = p9_get_u32(in);
	char name[P9_NAME_MAX + 1];
	struct p9_fid *d;
	int err;

	P9_PARSED(in);
	if (flags & ~P9_DOTL_AT_REMOVEDIR)
		return -EINVAL;
	err = dir_and_name(s, fid, n, name, &d);
	if (err)
		return err == -EACCES ? -ENOENT : err;
	if (unlinkat(d->fd, name, flags & P9_DOTL_AT_REMOVEDIR ? AT_REMOVEDIR : 0) < 0)
		err = -errno;
	p9_fid_put(d);
	return err;
}

int p9_op_readlink(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	char buf[P9_PATH_MAX + 1];
	struct p9_fid *f;
	ssize_t n;

	P9_PARSED(in);
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	n = f->type == S_IFLNK ? readlinkat(f->fd, "", buf, sizeof(buf)) : (errno = EINVAL, -1);
	p9_fid_put(f);
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	p9_put_str(out, buf, n);
	return 0;
}

/* ---- Readdir -------------------------------------------------------------------------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

int p9_op_readdir(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	uint64_t offset = p9_get_u64(in);
	uint32_t count = p9_get_u32(in);
	char buf[16384] __attribute__((aligned(8)));
	uint8_t *cnt;
	size_t start, limit;
	struct p9_fid *f;
	struct stat dst;
	int err = 0;

	P9_PARSED(in);
	if (offset > INT64_MAX)
		return -EINVAL;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	cnt = p9_put_space(out, 4);
	if (!cnt) {
		p9_fid_put(f);
		return -ENOBUFS;
	}
	start = out->off;
	limit = out->cap - out->off < count ? out->cap - out->off : count;
	pthread_mutex_lock(&f->lock);
	if (f->open_fd < 0 || f->type != S_IFDIR) {
		err = f->open_fd < 0 ? -EBADF : -ENOTDIR;
		goto out;
	}
	if (fstat(f->open_fd, &dst) < 0 || lseek(f->open_fd, (off_t)offset, SEEK_SET) < 0) {
		err = -errno;
		goto out;
	}
	for (bool full = false; !full;) {
		long n = syscall(SYS_getdents64, f->open_fd, buf, sizeof(buf));

		if (n < 0)
			err = -errno;
		if (n <= 0)
			break;
		for (long pos = 0; pos < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
			size_t nlen = strnlen(d->d_name, d->d_reclen);
			bool dot = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");
			struct p9_qid q = {.type = P9_QTFILE};

			pos += d->d_reclen;
			if (f->is_root && !dot && !p9_name_allowed(s, d->d_name))
				continue;
			if (out->off - start + P9_QID_SIZE + 8 + 1 + 2 + nlen > limit) {
				full = true;
				break;
			}
			q.type = d->d_type == DT_DIR   ? P9_QTDIR
				 : d->d_type == DT_LNK ? P9_QTSYMLINK
						       : P9_QTFILE;
			/* ".." of the root would name the host's parent: show the root. */
			q.path = (f->is_root && !strcmp(d->d_name, "..") ? dst.st_ino : d->d_ino) ^
				 ((uint64_t)dst.st_dev << 48);
			p9_put_qid(out, &q);
			p9_put_u64(out, d->d_off);
			p9_put_u8(out, d->d_type);
			p9_put_str(out, d->d_name, nlen);
		}
	}
out:
	pthread_mutex_unlock(&f->lock);
	p9_fid_put(f);
	if (err && out->off == start)
		return err;
	err = out->off - start;
	cnt[0] = err & 0xff;
	cnt[1] = err >> 8 & 0xff;
	cnt[2] = err >> 16 & 0xff;
	cnt[3] = err >> 24 & 0xff;
	return 0;
}

/* ---- Locks: open file description locks, never blocking a worker ---------------------------- */

static int lock_args(struct p9_rd *in, struct flock *fl, uint8_t type, uint64_t start, uint64_t len)
{
	if (start > INT64_MAX || len > INT64_MAX)
		return -EINVAL;
	memset(fl, 0, sizeof(*fl));
	switch (type) {
	case P9_LOCK_TYPE_RDLCK:
		fl->l_type = F_RDLCK;
		break;
	case P9_LOCK_TYPE_WRLCK:
		fl->l_type = F_WRLCK;
		break;
	case P9_LOCK_TYPE_UNLCK:
		fl->l_type = F_UNLCK;
		break;
	default:
		return -EINVAL;
	}
	fl->l_whence = SEEK_SET;
	fl->l_start = start;
	fl->l_len = len;
	return 0;
}

static int open_fd_of(struct p9_fid *f)
{
	int fd;

	pthread_mutex_lock(&f->lock);
	fd = f->open_fd;
	pthread_mutex_unlock(&f->lock);
	return fd < 0 ? -EBADF : fd;
}

int p9_op_lock(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	uint8_t type = p9_get_u8(in);
	uint64_t start, len;
	struct flock fl;
	struct p9_fid *f;
	int fd, err;

	p9_get_u32(in); /* flags: P9_LOCK_FLAGS_BLOCK is answered BLOCKED, the client retries */
	start = p9_get_u64(in);
	len = p9_get_u64(in);
	p9_get_u32(in); /* proc_id */
	p9_get_str(in); /* client_id */
	P9_PARSED(in);
	err = lock_args(in, &fl, type, start, len);
	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	fd = open_fd_of(f);
	if (fd < 0) {
		err = fd;
	} else if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
		p9_put_u8(out, P9_LOCK_SUCCESS);
	} else {
		p9_put_u8(out,
			  errno == EAGAIN || errno == EACCES ? P9_LOCK_BLOCKED : P9_LOCK_ERROR);
	}
	p9_fid_put(f);
	return err;
}

int p9_op_getlock(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	uint8_t type = p9_get_u8(in);
	uint64_t start = p9_get_u64(in), len = p9_get_u64(in);
	uint32_t proc_id = p9_get_u32(in);
	struct p9_str client = p9_get_str(in);
	struct flock fl;
	struct p9_fid *f;
	int fd, err;

	P9_PARSED(in);
	err = lock_args(in, &fl, type, start, len);
	if (err)
		return err;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	fd = open_fd_of(f);
	if (fd < 0)
		err = fd;
	else if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		err = -errno;
	p9_fid_put(f);
	if (err)
		return err;
	p9_put_u8(out, fl.l_type == F_RDLCK   ? P9_LOCK_TYPE_RDLCK
		       : fl.l_type == F_WRLCK ? P9_LOCK_TYPE_WRLCK
					      : P9_LOCK_TYPE_UNLCK);
	p9_put_u64(out, fl.l_start);
	p9_put_u64(out, fl.l_len);
	/* Another open file holds it: no guest process id to give. */
	p9_put_u32(out, fl.l_type == F_UNLCK ? proc_id : 0);
	p9_put_str(out, client.s, client.len);
	return 0;
}
