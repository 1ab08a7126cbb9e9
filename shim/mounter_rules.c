/* What the mounter agrees to mount (see mounter.h): pure checks on paths and options. */
#include "shim/mounter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "shim/container.h"

/* Overlay options that name no path and change nothing the rules care about. */
static const char *const overlay_plain[] = {
    "index=", "redirect_dir=", "metacopy=", "xino=", "nfs_export=", "userxattr", "volatile"};

static bool plain_overlay_option(const char *o)
{
	for (size_t i = 0; i < sizeof(overlay_plain) / sizeof(overlay_plain[0]); i++) {
		size_t n = strlen(overlay_plain[i]);

		if (overlay_plain[i][n - 1] == '='
			? !strncmp(o, overlay_plain[i], n) && !strchr(o, '/')
			: !strcmp(o, overlay_plain[i]))
			return true;
	}
	return false;
}

/* Absolute, under PATH_MAX, no empty, "." or ".." component. */
static bool path_shape_ok(const char *p)
{
	size_t len = strlen(p);

	if (p[0] != '/' || len < 2 || len >= sizeof(((struct mounter_rules *)0)->roots[0]))
		return false;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		if (c[1] == '/' || c[1] == '\0')
			return false;
		if (c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
			return false;
		if (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))
			return false;
	}
	return true;
}

int mounter_for_each_path(const Uvm__Ctrd__Mount *m, int (*fn)(const char *path, void *arg),
			  void *arg)
{
	char data[TASK_MOUNT_DATA_MAX];
	unsigned long flags;
	int ret;

	if (task_mount_options(m->options, m->n_options, &flags, data, sizeof(data)))
		return -EINVAL;
	if (task_mount_is_bind(m, flags))
		return fn(m->source, arg);
	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i], *v = NULL;
		char one[4096];

		if (!strncmp(o, "upperdir=", 9) || !strncmp(o, "workdir=", 8)) {
			v = strchr(o, '=') + 1;
			if ((ret = fn(v, arg)))
				return ret;
		} else if (!strncmp(o, "lowerdir=", 9)) {
			for (v = o + 9; *v;) {
				size_t n = strcspn(v, ":");

				if (n >= sizeof(one))
					return -ENAMETOOLONG;
				memcpy(one, v, n);
				one[n] = 0;
				if ((ret = fn(one, arg)))
					return ret;
				v += n + (v[n] == ':');
			}
		}
	}
	return 0;
}

int mounter_rules_init(struct mounter_rules *r, const char *bundle)
{
	const char *slash = strrchr(bundle, '/');

	memset(r, 0, sizeof(*r));
	if (!path_shape_ok(bundle) || !slash || slash == bundle)
		return -EINVAL;
	snprintf(r->bundles, sizeof(r->bundles), "%.*s", (int)(slash - bundle), bundle);
	return 0;
}

/* The snapshot directory a path lives in: its prefix up to a `snapshots` component. */
static bool root_of(const char *p, char *out, size_t cap)
{
	const char *s = strstr(p, "/snapshots/");

	if (!s || !path_shape_ok(p) || (size_t)(s - p) + 10 >= cap)
		return false;
	snprintf(out, cap, "%.*s", (int)(s - p) + 10, p);
	return true;
}

static int add_root(const char *path, void *arg)
{
	struct mounter_rules *r = arg;
	char root[sizeof(r->roots[0])];

	if (!root_of(path, root, sizeof(root)))
		return 0; /* not a snapshot's: gives no root */
	for (int i = 0; i < r->nr_roots; i++)
		if (!strcmp(r->roots[i], root))
			return 0;
	if (r->nr_roots == MOUNTER_ROOTS_MAX)
		return 0;
	memcpy(r->roots[r->nr_roots++], root, strlen(root) + 1);
	return 0;
}

int mounter_rules_set_roots(struct mounter_rules *r, Uvm__Ctrd__Mount *const *m, size_t n)
{
	if (r->roots_set)
		return -EPERM;
	r->roots_set = true;
	for (size_t i = 0; i < n && i < MOUNTER_MOUNTS_MAX; i++)
		mounter_for_each_path(m[i], add_root, r);
	return 0;
}

struct path_check {
	const struct mounter_rules *r;
	const char *bad;
};

static int beneath_root(const char *path, void *arg)
{
	struct path_check *pc = arg;

	if (path_shape_ok(path))
		for (int i = 0; i < pc->r->nr_roots; i++) {
			size_t n = strlen(pc->r->roots[i]);

			if (!strncmp(path, pc->r->roots[i], n) && path[n] == '/')
				return 0;
		}
	pc->bad = path;
	return -EACCES;
}

static int check_one(const struct mounter_rules *r, const Uvm__Ctrd__Mount *m,
		     char err[TASK_MOUNT_ERRLEN])
{
	char data[TASK_MOUNT_DATA_MAX];
	struct path_check pc = {.r = r};
	unsigned long flags;
	bool dirs = false;
	int ret;

	if (task_mount_options(m->options, m->n_options, &flags, data, sizeof(data))) {
		snprintf(err, TASK_MOUNT_ERRLEN, "mount options that do not parse");
		return -EINVAL;
	}
	if (!task_mount_is_bind(m, flags)) {
		if (strcmp(m->type, "overlay") || (flags & MS_BIND)) {
			snprintf(err, TASK_MOUNT_ERRLEN, "mount type %.40s: only overlay and bind",
				 m->type);
			return -EINVAL;
		}
		for (size_t i = 0; i < m->n_options; i++) {
			const char *o = m->options[i];
			unsigned long f;
			char d[8];

			if (!strncmp(o, "lowerdir=", 9) || !strncmp(o, "upperdir=", 9) ||
			    !strncmp(o, "workdir=", 8)) {
				dirs |= !strncmp(o, "lowerdir=", 9);
				continue;
			}
			/* A flag (ro, nosuid ...) leaves no data behind. */
			if (!task_mount_options((char *const *)&o, 1, &f, d, sizeof(d)) && !d[0])
				continue;
			if (!plain_overlay_option(o)) {
				snprintf(err, TASK_MOUNT_ERRLEN, "overlay option %.60s not allowed",
					 o);
				return -EINVAL;
			}
		}
		if (!dirs) {
			snprintf(err, TASK_MOUNT_ERRLEN, "overlay without lowerdir");
			return -EINVAL;
		}
	}
	ret = mounter_for_each_path(m, beneath_root, &pc);
	if (ret) {
		snprintf(err, TASK_MOUNT_ERRLEN, "%.200s is not beneath the sandbox's snapshots",
			 pc.bad ? pc.bad : "a path");
		return -EACCES;
	}
	return 0;
}

int mounter_rules_check(const struct mounter_rules *r, const char *bundle,
			Uvm__Ctrd__Mount *const *m, size_t n, char err[TASK_MOUNT_ERRLEN])
{
	size_t dl = strlen(r->bundles);
	int ret;

	if (!r->roots_set || !r->nr_roots) {
		snprintf(err, TASK_MOUNT_ERRLEN, "no snapshot directory known from the sandbox");
		return -EPERM;
	}
	if (!path_shape_ok(bundle) || strncmp(bundle, r->bundles, dl) || bundle[dl] != '/' ||
	    !container_id_valid(bundle + dl + 1)) {
		snprintf(err, TASK_MOUNT_ERRLEN, "bundle %.200s is not beside the sandbox's",
			 bundle);
		return -EACCES;
	}
	if (n == 0 || n > MOUNTER_MOUNTS_MAX) {
		snprintf(err, TASK_MOUNT_ERRLEN, "%zu mounts: expected 1 to %d", n,
			 MOUNTER_MOUNTS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((ret = check_one(r, m[i], err)))
			return ret;
	return 0;
}
