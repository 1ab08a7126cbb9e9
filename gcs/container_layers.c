/*
 * A container's root (container.h): read-only layers, the scratch, the
 * overlay. A layer given by device is mounted read-only once, at
 * /run/gcs/layers/<dev>, whatever number of containers use it, and
 * unmounted when the last one is deleted; a layer given by path (a disk the
 * host mounted with scsi.add or vpmem.add) is used where it is.
 *
 * In the agent all of it runs on the mount worker (container_mounts.c),
 * one job at a time: the layer table has no lock.
 */
#include "gcs/container.h"
#include "gcs/bridge.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MKE2FS /* unit tests run a fake */
#define MKE2FS "/usr/sbin/mke2fs"
#endif

struct layer {
	char dev[64];
	char mnt[128];
	int refs;
	struct layer *next;
};

static struct layer *layers;
static const char *mke2fs = MKE2FS;
/* mount(2) and umount(2), or a test's fakes (gcs_rootfs_set_mount_fns) */
static gcs_mount_syscall sys_mount = mount;
static gcs_umount_syscall sys_umount = umount;

void gcs_rootfs_set_mount_fns(gcs_mount_syscall m, gcs_umount_syscall u)
{
	sys_mount = m ? m : mount;
	sys_umount = u ? u : umount;
}

void gcs_format_set_tool(const char *path)
{
	mke2fs = path;
}

/* "/dev/pmem0", "/dev/vdb": one component of [a-z0-9] under /dev, nothing else. */
static bool dev_valid(const char *dev)
{
	const char *n;

	if (!dev || strncmp(dev, "/dev/", 5))
		return false;
	n = dev + 5;
	if (!*n || strlen(n) > 32)
		return false;
	for (; *n; n++)
		if (!islower((unsigned char)*n) && !isdigit((unsigned char)*n))
			return false;
	return true;
}

/* An absolute path with no ".." component and no ':' or ',' (overlay's separators). */
static bool path_valid(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	if (!p || p[0] != '/' || n >= 1024 || strpbrk(p, ":,\\"))
		return false;
	return !strstr(p, "/../") && !(n >= 3 && !strcmp(p + n - 3, "/.."));
}

static struct layer *layer_find(const char *dev)
{
	struct layer *l = layers;

	while (l && strcmp(l->dev, dev))
		l = l->next;
	return l;
}

/* A device layer mounted (or its ref taken): its mount point in l. */
static int layer_get(const char *dev, const char *fs, struct layer **out, char *err, size_t errlen)
{
	struct layer *l = layer_find(dev);
	int ret;

	if (l) {
		l->refs++;
		*out = l;
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(l->dev, sizeof(l->dev), "%s", dev);
	snprintf(l->mnt, sizeof(l->mnt), "%s/%s", GCS_CTR_LAYER_DIR, dev + 5);
	ret = gcs_mkdir_p(l->mnt);
	if (!ret && sys_mount(dev, l->mnt, fs, MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "layer %s (%s): %s", dev, fs, strerror(-ret));
		rmdir(l->mnt);
		free(l);
		return ret;
	}
	l->refs = 1;
	l->next = layers;
	layers = l;
	*out = l;
	gcs_log("layer %s mounted at %s", dev, l->mnt);
	return 0;
}

static void layer_put(const char *mnt)
{
	for (struct layer **pp = &layers; *pp; pp = &(*pp)->next) {
		struct layer *l = *pp;

		if (strcmp(l->mnt, mnt))
			continue;
		if (--l->refs > 0)
			return;
		if (sys_umount(l->mnt) < 0) {
			gcs_log_errno("layer %s: unmount %s", l->dev, l->mnt);
			l->refs = 1; /* still mounted: kept, so a later container can share it */
			return;
		}
		rmdir(l->mnt);
		gcs_log("layer %s unmounted", l->dev);
		*pp = l->next;
		free(l);
		return;
	}
}

/* ---- the scratch ------------------------------------------------------------------------- */

/*
 * The request's scratch: a device (maybe to format), a path, or nothing (a
 * tmpfs). Checked whole before anything is mounted. 0 or -EINVAL with err.
 */
static int scratch_parse(const cJSON *scratch, const char **dev, const char **path, bool *format,
			 char *err, size_t errlen)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(scratch, "format");

	*dev = *path = NULL;
	*format = false;
	if (!scratch || cJSON_IsNull(scratch))
		return 0;
	if (!cJSON_IsObject(scratch)) {
		snprintf(err, errlen, "scratch: must be an object");
		return -EINVAL;
	}
	*dev = gcs_bridge_str(scratch, "device");
	*path = gcs_bridge_str(scratch, "path");
	if (f && !cJSON_IsBool(f)) {
		snprintf(err, errlen, "scratch.format: true or false");
		return -EINVAL;
	}
	*format = cJSON_IsTrue(f);
	if (*path) {
		if (!path_valid(*path)) {
			snprintf(err, errlen, "scratch.path: not a plain absolute path");
			return -EINVAL;
		}
		*dev = NULL;
	} else if (cJSON_GetObjectItemCaseSensitive(scratch, "path")) {
		snprintf(err, errlen, "scratch.path: must be a string");
		return -EINVAL;
	} else if (!*dev && cJSON_GetObjectItemCaseSensitive(scratch, "device")) {
		snprintf(err, errlen, "scratch.device: must be a string");
		return -EINVAL;
	} else if (*dev && !dev_valid(*dev)) {
		snprintf(err, errlen, "scratch.device: not a /dev/<name> node");
		return -EINVAL;
	}
	if (*format && !*dev) {
		snprintf(err, errlen, "scratch.format: only for a scratch device");
		return -EINVAL;
	}
	return 0;
}

/* dir/scratch: the scratch device (formatted by now when asked), a path's bind, or a tmpfs. */
static int scratch_mount(struct gcs_rootfs *r, const char *dir, const cJSON *scratch, char *base,
			 size_t baselen, char *err, size_t errlen)
{
	const char *dev, *path;
	bool format;
	int ret;

	snprintf(base, baselen, "%s/scratch", dir);
	ret = scratch_parse(scratch, &dev, &path, &format, err, errlen);
	if (ret)
		return ret;
	if (path) {
		snprintf(base, baselen, "%s", path);
		return 0;
	}
	ret = gcs_mkdir_p(base);
	if (ret) {
		snprintf(err, errlen, "mkdir %s: %s", base, strerror(-ret));
		return ret;
	}
	if (!dev) {
		if (sys_mount("tmpfs", base, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755") < 0) {
			snprintf(err, errlen, "scratch tmpfs: %s", strerror(errno));
			return -errno;
		}
		r->scratch_mounted = true;
		return 0;
	}
	if (sys_mount(dev, base, "ext4", MS_NODEV | MS_NOSUID, NULL) < 0) {
		ret = -errno;
		if (ret == -EINVAL && !format)
			snprintf(err, errlen,
				 "scratch %s: no ext4 file system on it (ask format: true)", dev);
		else
			snprintf(err, errlen, "scratch %s: mount: %s", dev, strerror(-ret));
		return ret;
	}
	r->scratch_mounted = true;
	return 0;
}

/* ---- mke2fs, a child the loop does not wait for ------------------------------------------ */

/* mke2fs on dev (ext4, quiet, whole device), its stderr into dir/mke2fs.log: pid or -errno. */
static pid_t format_spawn(const char *dir, const char *dev, char *err, size_t errlen)
{
	const char *argv[] = {mke2fs, "-q", "-F", "-t", "ext4", dev, NULL};
	char log[PATH_MAX];
	int fds[3] = {-1, -1, -1};
	pid_t pid;

	if (snprintf(log, sizeof(log), "%s/mke2fs.log", dir) >= (int)sizeof(log)) {
		snprintf(err, errlen, "scratch %s: directory name too long", dev);
		return -ENAMETOOLONG;
	}
	fds[2] = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fds[2] < 0) {
		snprintf(err, errlen, "scratch %s: %.300s: %s", dev, log, strerror(errno));
		return -errno;
	}
	pid = gcs_tool_spawn(mke2fs, argv, fds, err, errlen);
	close(fds[2]);
	return pid;
}

/* mke2fs's wait status as 0, or -EIO with its last line of stderr in err. */
static int format_result(const char *dir, const char *dev, int status, char *err, size_t errlen)
{
	char log[PATH_MAX], line[GCS_CTR_ERRLEN / 2];

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(log, sizeof(log), "%s/mke2fs.log", dir);
	if (gcs_log_last_line(log, line, sizeof(line)))
		snprintf(err, errlen, "scratch %s: mke2fs failed (%d)", dev, gcs_exit_code(status));
	else
		snprintf(err, errlen, "scratch %s: mke2fs failed (%d): %s", dev,
			 gcs_exit_code(status), line);
	return -EIO;
}

int gcs_format_start(const char *dir, const char *dev, gcs_crun_fn fn, void *opaque, pid_t *pid,
		     char *err, size_t errlen)
{
	pid_t p;
	int ret;

	if (gcs_job_find(dev) > 0) {
		snprintf(err, errlen, "scratch %s: being formatted for another container", dev);
		return -EBUSY;
	}
	p = format_spawn(dir, dev, err, errlen);
	if (p < 0)
		return p;
	ret = gcs_job_watch(p, dir, dev, format_result, fn, opaque);
	if (ret) {
		kill(p, SIGKILL);
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	*pid = p;
	return 0;
}

/* The layers into r (refs taken), top first. */
static int layers_take(struct gcs_rootfs *r, const cJSON *jl, char *err, size_t errlen)
{
	const cJSON *e;
	int i = 0, ret;

	if (!cJSON_IsArray(jl) || cJSON_GetArraySize(jl) < 1 ||
	    cJSON_GetArraySize(jl) > GCS_CTR_MAX_LAYERS) {
		snprintf(err, errlen, "layers: an array of 1..%d layers", GCS_CTR_MAX_LAYERS);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, jl)
	{
		const char *dev = gcs_bridge_str(e, "device"), *path = gcs_bridge_str(e, "path");
		const char *fs = gcs_bridge_str(e, "fs");
		struct layer *l;

		if (path && path_valid(path)) {
			r->layers[i] = strdup(path);
		} else if (dev && dev_valid(dev)) {
			if (fs && strcmp(fs, "ext4") && strcmp(fs, "erofs")) {
				snprintf(err, errlen, "layers[%d].fs: ext4 or erofs", i);
				return -EINVAL;
			}
			ret = layer_get(dev, fs ? fs : "ext4", &l, err, errlen);
			if (ret)
				return ret;
			r->layer_ref[i] = true;
			r->layers[i] = strdup(l->mnt);
		} else {
			snprintf(
			    err, errlen,
			    "layers[%d]: needs a device (/dev/<name>) or a plain absolute path", i);
			return -EINVAL;
		}
		r->nr_layers = ++i;
		if (!r->layers[i - 1]) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* A writable directory (a Plan 9 share) as the root itself: bound at dir/rootfs. */
static int rootfs_bind(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		       size_t errlen)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(req, "rootfs");
	const char *path = gcs_bridge_str(o, "path");
	char rootfs[PATH_MAX];
	int ret;

	if (cJSON_GetObjectItemCaseSensitive(req, "layers") ||
	    cJSON_GetObjectItemCaseSensitive(req, "scratch")) {
		snprintf(err, errlen, "rootfs: not with layers or a scratch");
		return -EINVAL;
	}
	if (!path || !path_valid(path)) {
		snprintf(err, errlen, "rootfs.path: a plain absolute path");
		return -EINVAL;
	}
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	ret = gcs_mkdir_p(rootfs);
	if (ret) {
		snprintf(err, errlen, "mkdir %s: %s", rootfs, strerror(-ret));
		return ret;
	}
	if (sys_mount(path, rootfs, NULL, MS_BIND, NULL) < 0) {
		ret = -errno;
		snprintf(err, errlen, "rootfs %s: bind on %s: %s", path, rootfs, strerror(-ret));
		return ret;
	}
	r->rootfs_mounted = true;
	return 0;
}

int gcs_rootfs_begin(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		     size_t errlen)
{
	const char *dev, *path;
	bool format;
	int ret;

	r->format_dev[0] = '\0';
	if (cJSON_GetObjectItemCaseSensitive(req, "rootfs"))
		return rootfs_bind(r, dir, req, err, errlen);
	/* The whole scratch is checked first: a bad one costs no layer mount. */
	ret = scratch_parse(cJSON_GetObjectItemCaseSensitive(req, "scratch"), &dev, &path, &format,
			    err, errlen);
	if (ret)
		return ret;
	ret = layers_take(r, cJSON_GetObjectItemCaseSensitive(req, "layers"), err, errlen);
	if (ret) {
		char ignored[64];

		gcs_rootfs_unmount(r, dir, ignored, sizeof(ignored));
		return ret;
	}
	if (format)
		snprintf(r->format_dev, sizeof(r->format_dev), "%s", dev); /* dev_valid: fits */
	return 0;
}

int gcs_rootfs_end(struct gcs_rootfs *r, const char *dir, const cJSON *req, char *err,
		   size_t errlen)
{
	char base[PATH_MAX], upper[PATH_MAX + 16], work[PATH_MAX + 16], rootfs[PATH_MAX];
	const cJSON *scratch = cJSON_GetObjectItemCaseSensitive(req, "scratch");
	char *opts = NULL;
	size_t len = 0, used;
	int ret;

	if (r->rootfs_mounted)
		return 0; /* a share's directory, bound by gcs_rootfs_begin */
	ret = scratch_mount(r, dir, scratch, base, sizeof(base), err, errlen);
	if (ret)
		goto fail;
	snprintf(upper, sizeof(upper), "%s/upper", base);
	snprintf(work, sizeof(work), "%s/work", base);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	if ((ret = gcs_mkdir_p(upper)) || (ret = gcs_mkdir_p(work)) ||
	    (ret = gcs_mkdir_p(rootfs))) {
		snprintf(err, errlen, "upper, work or rootfs directory: %s", strerror(-ret));
		goto fail;
	}
	for (int i = 0; i < r->nr_layers; i++)
		len += strlen(r->layers[i]) + 1;
	len += strlen(upper) + strlen(work) + 64;
	opts = malloc(len);
	if (!opts) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	used = snprintf(opts, len, "lowerdir=");
	for (int i = 0; i < r->nr_layers; i++)
		used += snprintf(opts + used, len - used, "%s%s", i ? ":" : "", r->layers[i]);
	snprintf(opts + used, len - used, ",upperdir=%s,workdir=%s", upper, work);
	if (sys_mount("overlay", rootfs, "overlay", 0, opts) < 0) {
		ret = -errno;
		snprintf(err, errlen, "overlay on %s: %s", rootfs, strerror(-ret));
		goto fail;
	}
	r->rootfs_mounted = true;
	free(opts);
	return 0;
fail:
	free(opts);
	gcs_rootfs_unmount(r, dir, base, sizeof(base));
	return ret;
}

int gcs_rootfs_unmount(struct gcs_rootfs *r, const char *dir, char *err, size_t errlen)
{
	char p[PATH_MAX];
	int ret = 0;

	if (r->rootfs_mounted) {
		snprintf(p, sizeof(p), "%s/rootfs", dir);
		if (sys_umount(p) < 0 && errno != EINVAL) {
			ret = -errno;
			snprintf(err, errlen, "unmount %s: %s", p, strerror(errno));
			return ret; /* the layers and the scratch are still under it */
		}
		r->rootfs_mounted = false;
	}
	if (r->scratch_mounted) {
		snprintf(p, sizeof(p), "%s/scratch", dir);
		if (sys_umount(p) < 0 && errno != EINVAL) {
			ret = -errno;
			snprintf(err, errlen, "unmount %s: %s", p, strerror(errno));
		} else {
			r->scratch_mounted = false;
		}
	}
	for (int i = 0; i < r->nr_layers; i++) {
		if (r->layer_ref[i])
			layer_put(r->layers[i]);
		free(r->layers[i]);
		r->layers[i] = NULL;
		r->layer_ref[i] = false;
	}
	r->nr_layers = 0;
	return ret;
}
