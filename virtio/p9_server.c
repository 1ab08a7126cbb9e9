/*
 * 9P server: share setup and the dispatch table (one row per T-message, with
 * whether it modifies the share). The header is checked here; handlers parse
 * their own bodies and must consume them exactly before acting.
 */
#include "p9_priv.h"
#include "vmm/host_open.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct p9_op_row {
	p9_op_fn fn;
	bool modifies; /* refused with EROFS on a read-only share */
};

static const struct p9_op_row p9_ops[128] = {
    [P9_TSTATFS] = {p9_op_statfs, false},
    [P9_TLOPEN] = {p9_op_lopen, false}, /* write flags checked inside */
    [P9_TLCREATE] = {p9_op_lcreate, true},
    [P9_TSYMLINK] = {p9_op_symlink, true},
    [P9_TMKNOD] = {p9_op_mknod, true},
    [P9_TRENAME] = {p9_op_rename, true},
    [P9_TREADLINK] = {p9_op_readlink, false},
    [P9_TGETATTR] = {p9_op_getattr, false},
    [P9_TSETATTR] = {p9_op_setattr, true},
    [P9_TXATTRWALK] = {p9_op_xattrwalk, false},
    [P9_TXATTRCREATE] = {p9_op_xattrcreate, true},
    [P9_TREADDIR] = {p9_op_readdir, false},
    [P9_TFSYNC] = {p9_op_fsync, false},
    [P9_TLOCK] = {p9_op_lock, false},
    [P9_TGETLOCK] = {p9_op_getlock, false},
    [P9_TLINK] = {p9_op_link, true},
    [P9_TMKDIR] = {p9_op_mkdir, true},
    [P9_TRENAMEAT] = {p9_op_renameat, true},
    [P9_TUNLINKAT] = {p9_op_unlinkat, true},
    [P9_TVERSION] = {p9_op_version, false},
    [P9_TATTACH] = {p9_op_attach, false},
    [P9_TFLUSH] = {p9_op_flush, false},
    [P9_TWALK] = {p9_op_walk, false},
    [P9_TREAD] = {p9_op_read, false},
    [P9_TWRITE] = {p9_op_write, true},
    [P9_TCLUNK] = {p9_op_clunk, false},
    [P9_TREMOVE] = {p9_op_remove, false}, /* clunks even on a read-only share */
};

int p9_server_create(const struct p9_share_config *cfg, struct p9_server **out)
{
	struct p9_server *s;
	struct stat st;
	int err;

	if (!cfg || !cfg->path || cfg->nr_allowed < 0 || cfg->nr_allowed > P9_MAX_ALLOWED ||
	    cfg->max_fids < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->fids_lock, NULL);
	s->proc_fd = -1;
	/* The share's root comes from the opener once the sandbox is up (vmm/host_open.h). */
	if (cfg->has_root_fd) {
		s->root_fd = fcntl(cfg->root_fd, F_DUPFD_CLOEXEC, 0);
		if (s->root_fd < 0)
			s->root_fd = -errno;
	} else
		s->root_fd = host_open(cfg->path, O_PATH | O_DIRECTORY, 0);
	if (s->root_fd < 0) {
		err = s->root_fd;
		s->root_fd = -1;
		goto fail;
	}
	if (fstat(s->root_fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		err = -ENOTDIR;
		goto fail;
	}
	s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->proc_fd < 0) {
		err = -errno;
		goto fail;
	}
	s->resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	if (!cfg->allow_xdev)
		s->resolve |= RESOLVE_NO_XDEV;
	s->read_only = cfg->read_only;
	s->allow_devices = cfg->allow_devices;
	s->max_fids = cfg->max_fids ? cfg->max_fids : P9_MAX_FIDS_DEF;
	s->msize = P9_MSIZE_MAX;
	if (cfg->nr_allowed) {
		s->allowed = calloc(cfg->nr_allowed, sizeof(char *));
		if (!s->allowed) {
			err = -ENOMEM;
			goto fail;
		}
		for (int i = 0; i < cfg->nr_allowed; i++) {
			const char *n = cfg->allowed_names[i];

			if (!n || !*n || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, "..") ||
			    !(s->allowed[s->nr_allowed] = strdup(n))) {
				err = n ? -EINVAL : -EFAULT;
				goto fail;
			}
			s->nr_allowed++;
		}
	}
	*out = s;
	return 0;
fail:
	p9_server_destroy(s);
	return err;
}

void p9_server_destroy(struct p9_server *s)
{
	if (!s)
		return;
	p9_fid_clear(s);
	for (int i = 0; i < s->nr_allowed; i++)
		free(s->allowed[i]);
	free(s->allowed);
	if (s->root_fd >= 0)
		close(s->root_fd);
	if (s->proc_fd >= 0)
		close(s->proc_fd);
	pthread_mutex_destroy(&s->fids_lock);
	free(s);
}

uint32_t p9_server_msize(const struct p9_server *s)
{
	return __atomic_load_n(&s->msize, __ATOMIC_RELAXED);
}

size_t p9_server_handle(struct p9_server *s, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t out_cap)
{
	struct p9_rd r = {.p = in, .len = in_len};
	struct p9_wr w = {.p = out, .cap = out_cap, .off = P9_HDR_SIZE};
	uint32_t size = p9_get_u32(&r);
	uint8_t type = p9_get_u8(&r);
	uint16_t tag = p9_get_u16(&r);
	const struct p9_op_row *row;
	int err;

	/* The answer never exceeds the agreed msize (Tversion itself may renegotiate). */
	if (type != P9_TVERSION && w.cap > p9_server_msize(s))
		w.cap = p9_server_msize(s);
	if (r.err)
		return p9_build_rlerror(out, out_cap, P9_NOTAG, EINVAL);
	if (size != in_len || size > P9_MSIZE_MAX)
		return p9_build_rlerror(out, out_cap, tag, EINVAL);
	if (type != P9_TVERSION && size > p9_server_msize(s))
		return p9_build_rlerror(out, out_cap, tag, EMSGSIZE);
	row = (type & 1) || type >= 128 ? NULL : &p9_ops[type];
	if (!row || !row->fn)
		return p9_build_rlerror(out, out_cap, tag, EOPNOTSUPP);
	if (row->modifies && s->read_only)
		return p9_build_rlerror(out, out_cap, tag, EROFS);
	err = row->fn(s, &r, &w);
	if (!err && w.err)
		err = -ENOBUFS;
	if (err)
		return p9_build_rlerror(out, out_cap, tag, -err);
	w.cap = out_cap;
	size = w.off;
	w.off = 0;
	p9_put_u32(&w, size);
	p9_put_u8(&w, type + 1);
	p9_put_u16(&w, tag);
	return size;
}
