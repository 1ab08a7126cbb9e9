/*
 * 9P fids and confinement. A fid holds an fd of its object taken beneath the
 * share root; a fid is reference-counted so a clunk racing a read on another
 * worker closes the fd only when the read is done. Every lookup of a guest
 * name goes through p9_walk_one: one checked component, openat2 beneath a
 * held directory fd, no symlink followed, no magic link, no mount crossed.
 */
#include "p9_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fid_free(struct p9_fid *f)
{
	if (f->open_fd >= 0)
		close(f->open_fd);
	if (f->fd >= 0)
		close(f->fd);
	if (f->parent_fd >= 0)
		close(f->parent_fd);
	free(f->name);
	free(f->xbuf);
	free(f->xname);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int p9_fid_new(struct p9_server *s, int fd, int parent_fd, const char *name, bool is_root,
	       uint32_t uid, struct p9_fid **out)
{
	struct p9_fid *f = calloc(1, sizeof(*f));
	struct stat st;

	if (!f || (name && !(f->name = strdup(name)))) {
		free(f);
		if (fd >= 0)
			close(fd);
		if (parent_fd >= 0)
			close(parent_fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&f->lock, NULL);
	f->refs = 1;
	f->fd = fd;
	f->parent_fd = parent_fd;
	f->open_fd = -1;
	f->is_root = is_root;
	f->uid = uid;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = -errno;

		fid_free(f);
		return err;
	}
	f->type = st.st_mode & S_IFMT;
	*out = f;
	return 0;
}

void p9_fid_put(struct p9_fid *f)
{
	if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		fid_free(f);
}

static struct p9_fid **bucket(struct p9_server *s, uint32_t id)
{
	return &s->fids[(id * 2654435761u) >> 24 & (P9_FID_BUCKETS - 1)];
}

struct p9_fid *p9_fid_get(struct p9_server *s, uint32_t id)
{
	struct p9_fid *f;

	pthread_mutex_lock(&s->fids_lock);
	for (f = *bucket(s, id); f; f = f->next)
		if (f->id == id)
			break;
	if (f)
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&s->fids_lock);
	return f;
}

/* Unlinks id from its chain; the caller owns the table's reference. Lock held. */
static struct p9_fid *unlink_locked(struct p9_server *s, uint32_t id)
{
	for (struct p9_fid **pp = bucket(s, id); *pp; pp = &(*pp)->next) {
		struct p9_fid *f = *pp;

		if (f->id == id) {
			*pp = f->next;
			f->next = NULL;
			s->nr_fids--;
			return f;
		}
	}
	return NULL;
}

int p9_fid_insert(struct p9_server *s, uint32_t id, struct p9_fid *f, bool replace)
{
	struct p9_fid *old = NULL, *it;
	int err = 0;

	if (id == P9_NOFID) {
		p9_fid_put(f);
		return -EBADF;
	}
	pthread_mutex_lock(&s->fids_lock);
	for (it = *bucket(s, id); it; it = it->next)
		if (it->id == id)
			break;
	if (it && !replace)
		err = -EEXIST;
	else if (!it && s->nr_fids >= s->max_fids)
		err = -EMFILE;
	if (!err) {
		if (it)
			old = unlink_locked(s, id);
		f->id = id;
		f->next = *bucket(s, id);
		*bucket(s, id) = f;
		s->nr_fids++;
	}
	pthread_mutex_unlock(&s->fids_lock);
	if (err)
		p9_fid_put(f);
	p9_fid_put(old);
	return err;
}

struct p9_fid *p9_fid_remove(struct p9_server *s, uint32_t id)
{
	struct p9_fid *f;

	pthread_mutex_lock(&s->fids_lock);
	f = unlink_locked(s, id);
	pthread_mutex_unlock(&s->fids_lock);
	return f;
}

void p9_fid_clear(struct p9_server *s)
{
	struct p9_fid *all = NULL;

	pthread_mutex_lock(&s->fids_lock);
	for (int i = 0; i < P9_FID_BUCKETS; i++) {
		while (s->fids[i]) {
			struct p9_fid *f = s->fids[i];

			s->fids[i] = f->next;
			f->next = all;
			all = f;
		}
	}
	s->nr_fids = 0;
	pthread_mutex_unlock(&s->fids_lock);
	while (all) {
		struct p9_fid *f = all;

		all = f->next;
		f->next = NULL;
		/* An xattr fid dropped without a clunk sets nothing. */
		p9_fid_put(f);
	}
}

int p9_server_nr_fids(struct p9_server *s)
{
	int n;

	pthread_mutex_lock(&s->fids_lock);
	n = s->nr_fids;
	pthread_mutex_unlock(&s->fids_lock);
	return n;
}

/* ---- Confinement ---------------------------------------------------------------------------- */

int p9_walk_one(struct p9_server *s, int dirfd, const char *name)
{
	/* O_PATH | O_NOFOLLOW with RESOLVE_NO_SYMLINKS yields the link itself when
	 * the name is a symlink: the guest reads it and resolves it on its side. */
	struct open_how how = {
	    .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
	    .resolve = s->resolve,
	};
	int fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

int p9_reopen(struct p9_server *s, int fd, int flags)
{
	char num[16];
	struct stat st;
	int nfd;

	/* Through the magic link a symlink would be followed; device nodes and
	 * FIFOs are opened only where the share allows devices. */
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !s->allow_devices)
		return -EPERM;
	snprintf(num, sizeof(num), "%d", fd);
	nfd = openat(s->proc_fd, num, flags | O_CLOEXEC);
	return nfd < 0 ? -errno : nfd;
}

bool p9_name_allowed(const struct p9_server *s, const char *name)
{
	if (!s->nr_allowed)
		return true;
	for (int i = 0; i < s->nr_allowed; i++)
		if (!strcmp(s->allowed[i], name))
			return true;
	return false;
}
