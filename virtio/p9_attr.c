/*
 * 9P2000.L attributes: getattr, setattr, statfs. A symlink fid's attributes
 * are changed on the link itself (its entry), never through it.
 */
#include "p9_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define P9_GETATTR_BASIC 0x7ffULL

#define P9_SETATTR_MODE	     0x1
#define P9_SETATTR_UID	     0x2
#define P9_SETATTR_GID	     0x4
#define P9_SETATTR_SIZE	     0x8
#define P9_SETATTR_ATIME     0x10
#define P9_SETATTR_MTIME     0x20
#define P9_SETATTR_ATIME_SET 0x80
#define P9_SETATTR_MTIME_SET 0x100

int p9_op_getattr(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_fid *f;
	struct p9_qid q;
	struct stat st;
	int err;

	p9_get_u64(in); /* request mask: the basic set is always returned */
	P9_PARSED(in);
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	err = p9_stat_qid(f->fd, &st, &q);
	p9_fid_put(f);
	if (err)
		return err;
	p9_put_u64(out, P9_GETATTR_BASIC);
	p9_put_qid(out, &q);
	p9_put_u32(out, st.st_mode);
	p9_put_u32(out, st.st_uid);
	p9_put_u32(out, st.st_gid);
	p9_put_u64(out, st.st_nlink);
	p9_put_u64(out, st.st_rdev);
	p9_put_u64(out, st.st_size);
	p9_put_u64(out, st.st_blksize);
	p9_put_u64(out, st.st_blocks);
	p9_put_u64(out, st.st_atim.tv_sec);
	p9_put_u64(out, st.st_atim.tv_nsec);
	p9_put_u64(out, st.st_mtim.tv_sec);
	p9_put_u64(out, st.st_mtim.tv_nsec);
	p9_put_u64(out, st.st_ctim.tv_sec);
	p9_put_u64(out, st.st_ctim.tv_nsec);
	for (int i = 0; i < 4; i++)
		p9_put_u64(out, 0); /* btime, gen, data_version: not in the valid mask */
	return 0;
}

static int set_times(struct p9_server *s, struct p9_fid *f, uint32_t valid,
		     const struct timespec ts[2])
{
	struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	char num[16];

	for (int i = 0; i < 2; i++) {
		uint32_t has = i ? P9_SETATTR_MTIME : P9_SETATTR_ATIME;
		uint32_t set = i ? P9_SETATTR_MTIME_SET : P9_SETATTR_ATIME_SET;

		if (!(valid & has))
			continue;
		if (valid & set) {
			if (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000L)
				return -EINVAL;
			t[i] = ts[i];
		} else {
			t[i].tv_nsec = UTIME_NOW;
		}
	}
	if (f->type == S_IFLNK) {
		/* The magic link would follow the symlink: use its entry instead. */
		if (f->parent_fd < 0 || !f->name)
			return -EINVAL;
		return utimensat(f->parent_fd, f->name, t, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	}
	p9_fd_name(f->fd, num);
	return utimensat(s->proc_fd, num, t, 0) < 0 ? -errno : 0;
}

int p9_op_setattr(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in), valid = p9_get_u32(in), mode = p9_get_u32(in);
	uint32_t uid = p9_get_u32(in), gid = p9_get_u32(in);
	uint64_t size = p9_get_u64(in);
	struct timespec ts[2];
	struct p9_fid *f;
	char num[16];
	int err = 0;

	for (int i = 0; i < 2; i++) {
		ts[i].tv_sec = (int64_t)p9_get_u64(in);
		ts[i].tv_nsec = (long)p9_get_u64(in);
	}
	P9_PARSED(in);
	if ((valid & P9_SETATTR_SIZE) && size > INT64_MAX)
		return -EINVAL;
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	p9_fd_name(f->fd, num);
	if (valid & P9_SETATTR_MODE) {
		if (f->type == S_IFLNK)
			err = -EOPNOTSUPP;
		else if (fchmodat(s->proc_fd, num, mode & 07777, 0) < 0)
			err = -errno;
	}
	if (!err && (valid & (P9_SETATTR_UID | P9_SETATTR_GID))) {
		uid_t u = valid & P9_SETATTR_UID ? uid : (uid_t)-1;
		gid_t g = valid & P9_SETATTR_GID ? gid : (gid_t)-1;

		if (fchownat(f->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			err = -errno;
	}
	if (!err && (valid & P9_SETATTR_SIZE)) {
		int fd = f->type == S_IFREG ? p9_reopen(s, f->fd, O_WRONLY) : -EINVAL;

		if (fd < 0) {
			err = f->type == S_IFDIR ? -EISDIR : fd;
		} else {
			if (ftruncate(fd, (off_t)size) < 0)
				err = -errno;
			close(fd);
		}
	}
	if (!err && (valid & (P9_SETATTR_ATIME | P9_SETATTR_MTIME)))
		err = set_times(s, f, valid, ts);
	p9_fid_put(f);
	return err;
}

int p9_op_statfs(struct p9_server *s, struct p9_rd *in, struct p9_wr *out)
{
	uint32_t fid = p9_get_u32(in);
	struct p9_fid *f;
	struct statfs sf;
	int err = 0;

	P9_PARSED(in);
	f = p9_fid_get(s, fid);
	if (!f)
		return -EBADF;
	if (fstatfs(f->fd, &sf) < 0)
		err = -errno;
	p9_fid_put(f);
	if (err)
		return err;
	p9_put_u32(out, sf.f_type);
	p9_put_u32(out, sf.f_bsize);
	p9_put_u64(out, sf.f_blocks);
	p9_put_u64(out, sf.f_bfree);
	p9_put_u64(out, sf.f_bavail);
	p9_put_u64(out, sf.f_files);
	p9_put_u64(out, sf.f_ffree);
	p9_put_u64(out,
		   (uint64_t)(uint32_t)sf.f_fsid.__val[0] | (uint64_t)sf.f_fsid.__val[1] << 32);
	p9_put_u32(out, sf.f_namelen);
	return 0;
}
