/*
 * Confinement of the 9P server: escape attempts through symlinks (absolute,
 * relative, chains, to /proc magic links), '..', names with '/', hard links,
 * renames under a walk, mounts beneath the root, device nodes, xattrs;
 * read-only and allowed-names shares. None may reach dir/outside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/p9_test_util.h"

struct fx {
	char dir[64], share[96], path[256];
	struct p9t c;
};

static const char *at(struct fx *fx, const char *rel)
{
	snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, rel);
	return fx->path;
}

static int setup_with(void **state, struct p9_share_config cfg)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char link[256];

	assert_non_null(fx);
	assert_int_equal(p9t_tree(fx->dir, fx->share), 0);
	/* The escape hatches a hostile host tree (or earlier guest) could hold. */
	assert_int_equal(symlink("/etc", at(fx, "share/etc_link")), 0);
	snprintf(link, sizeof(link), "%s/outside", fx->dir);
	assert_int_equal(symlink(link, at(fx, "share/abs_out")), 0);
	assert_int_equal(symlink("../outside", at(fx, "share/rel_out")), 0);
	assert_int_equal(symlink("rel_out", at(fx, "share/chain1")), 0);
	assert_int_equal(symlink("chain1", at(fx, "share/chain2")), 0);
	assert_int_equal(symlink("../outside/secret", at(fx, "share/secret_link")), 0);
	assert_int_equal(symlink("/proc/self/root", at(fx, "share/proc_root")), 0);
	assert_int_equal(symlink("/proc/self/cwd", at(fx, "share/proc_cwd")), 0);
	assert_int_equal(symlink("/proc/self/fd", at(fx, "share/proc_fd")), 0);
	assert_int_equal(mkdir(at(fx, "share/d1"), 0755), 0);
	assert_int_equal(mkdir(at(fx, "share/d1/d2"), 0755), 0);
	assert_int_equal(symlink("../../../outside", at(fx, "share/d1/d2/up3")), 0);
	assert_int_equal(mkfifo(at(fx, "share/fifo"), 0644), 0);
	{
		int fd = open(at(fx, "share/file"), O_CREAT | O_WRONLY, 0644);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "inside", 6), 6);
		close(fd);
	}
	cfg.path = fx->share;
	assert_int_equal(p9t_init(&fx->c, &cfg), 0);
	assert_int_equal(p9t_version(&fx->c, 65536, "9P2000.L"), 0);
	assert_int_equal(p9t_attach(&fx->c, 1), 0);
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, (struct p9_share_config){0});
}

static int setup_ro(void **state)
{
	return setup_with(state, (struct p9_share_config){.read_only = true});
}

static const char *const allowed[] = {"file", "d1", "secret_link", "newfile"};

static int setup_restricted(void **state)
{
	return setup_with(state,
			  (struct p9_share_config){.allowed_names = allowed, .nr_allowed = 4});
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	p9t_fini(&fx->c);
	p9t_tree_remove(fx->dir);
	free(fx);
	return 0;
}

/* The outside is as the fixture made it: one file "secret" holding "secret". */
static void assert_outside_intact(struct fx *fx)
{
	char buf[16] = "";
	struct stat st;
	int fd = open(at(fx, "outside/secret"), O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	assert_memory_equal(buf, "secret", 6);
	assert_int_equal(stat(at(fx, "outside/secret"), &st), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(stat(at(fx, "outside/new"), &st), -1);
}

/* ---- Walks through links ------------------------------------------------------------------- */

/* 1-9: a walk never goes through a symlink, whatever it points to. */
static void test_walk_through_links(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	static const struct {
		const char *path;
		int walked; /* qids answered: up to and including the link, never past it */
	} cases[] = {
	    {"etc_link/passwd", 1}, {"abs_out/secret", 1},   {"rel_out/secret", 1},
	    {"chain2/secret", 1},   {"proc_root/etc", 1},    {"proc_cwd/etc", 1},
	    {"proc_fd/0", 1},	    {"d1/d2/up3/secret", 3}, {"chain1/secret", 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(p9t_walk(c, 1, 2, cases[i].path), cases[i].walked);
		/* A short walk makes no fid. */
		assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 2), -EBADF);
	}
	assert_outside_intact(fx);
}

/* 10-13: the link fid itself cannot be opened, read through, or used as a directory. */
static void test_link_fid_not_followed(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;

	assert_int_equal(p9t_walk(c, 1, 2, "secret_link"), 1);
	assert_int_equal(p9t_lopen(c, 2, O_RDONLY), -ELOOP);
	assert_int_equal(p9t_walk(c, 1, 3, "abs_out"), 1);
	assert_int_equal(p9t_walk(c, 3, 4, "secret"), -ENOTDIR);
	assert_int_equal(p9t_lcreate(c, 3, "new", O_RDWR, 0644), -ENOTDIR);
	assert_int_equal(p9t_mkdir(c, 3, "new"), -ENOTDIR);
	assert_int_equal(p9t_walk(c, 1, 5, "proc_root"), 1);
	assert_int_equal(p9t_lopen(c, 5, O_RDONLY), -ELOOP);
	/* Readlink just reports the text. */
	assert_int_equal(p9t_fid_op(c, P9_TREADLINK, 2), 0);
	assert_outside_intact(fx);
}

/* 14-17: '..', '.', '/' and an absolute name are refused as names. */
static void test_dotdot_and_slashes(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	const char *names[] = {".."};

	assert_int_equal(p9t_walkv(c, 1, 2, 1, names), -EINVAL);
	names[0] = ".";
	assert_int_equal(p9t_walkv(c, 1, 2, 1, names), -EINVAL);
	names[0] = "../outside";
	assert_int_equal(p9t_walkv(c, 1, 2, 1, names), -EINVAL);
	names[0] = "/etc";
	assert_int_equal(p9t_walkv(c, 1, 2, 1, names), -EINVAL);
	assert_int_equal(p9t_walk(c, 1, 2, "d1/d2"), 2);
	names[0] = "..";
	assert_int_equal(p9t_walkv(c, 2, 3, 1, names), -EINVAL);
	assert_int_equal(p9t_lcreate(c, 1, "../outside/new", O_RDWR, 0644), -EINVAL);
	assert_int_equal(p9t_mkdir(c, 1, ".."), -EINVAL);
	assert_int_equal(p9t_unlinkat(c, 1, "../outside/secret", 0), -EINVAL);
	assert_int_equal(p9t_renameat(c, 1, "file", 1, "../outside/new"), -EINVAL);
	assert_int_equal(p9t_renameat(c, 1, "../outside/secret", 1, "stolen"), -EINVAL);
	assert_int_equal(p9t_symlink(c, 1, "../x", "y"), -EINVAL);
	assert_outside_intact(fx);
}

/* 18-19: creating through a symlink (O_CREAT on a link to outside) fails. */
static void test_create_through_links(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	char target[200];

	snprintf(target, sizeof(target), "%s/outside/new", fx->dir);
	assert_int_equal(symlink(target, at(fx, "share/dangling")), 0);
	assert_int_equal(p9t_walk(c, 1, 2, ""), 0);
	assert_int_equal(p9t_lcreate(c, 2, "dangling", O_RDWR, 0644), -ELOOP);
	assert_int_equal(p9t_walk(c, 1, 3, ""), 0);
	assert_int_equal(p9t_lcreate(c, 3, "secret_link", O_RDWR | O_TRUNC, 0644), -ELOOP);
	assert_outside_intact(fx);
}

/* 20-21: a hard link of a link fid links the link, never its target; a symlink stays text. */
static void test_links_stay_links(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct stat st;

	assert_int_equal(p9t_walk(c, 1, 2, "secret_link"), 1);
	assert_int_equal(p9t_link(c, 1, 2, "hard"), 0);
	assert_int_equal(lstat(at(fx, "share/hard"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(p9t_symlink(c, 1, "mine", "/etc/shadow"), 0);
	assert_int_equal(p9t_walk(c, 1, 3, "mine"), 1);
	assert_int_equal(p9t_lopen(c, 3, O_RDONLY), -ELOOP);
	assert_int_equal(p9t_link(c, 3, 2, "x"), -ENOTDIR);
	assert_outside_intact(fx);
}

/* 22-24: attribute changes on a link fid never reach the target. */
static void test_setattr_on_links(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;

	assert_int_equal(p9t_walk(c, 1, 2, "secret_link"), 1);
	assert_int_equal(p9t_setattr(c, 2, 0x1, 0777, 0), -EOPNOTSUPP);
	assert_int_equal(p9t_setattr(c, 2, 0x8, 0, 0), -EINVAL);
	assert_int_equal(p9t_setattr(c, 2, 0x10 | 0x20 | 0x80 | 0x100, 0, 0), 0);
	assert_int_equal(p9t_xattrwalk(c, 2, 3, "user.x"), -EOPNOTSUPP);
	assert_int_equal(p9t_xattrcreate(c, 2, "user.x", 1), -EOPNOTSUPP);
	assert_outside_intact(fx);
}

/* 25: a directory renamed (by the guest) while a fid sits inside it stays inside. */
static void test_rename_under_walk(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct stat st;

	assert_int_equal(p9t_walk(c, 1, 2, "d1/d2"), 2);
	assert_int_equal(p9t_renameat(c, 1, "d1", 1, "moved"), 0);
	assert_int_equal(p9t_lcreate(c, 2, "after", O_RDWR, 0644), 0);
	assert_int_equal(stat(at(fx, "share/moved/d2/after"), &st), 0);
	/* Tremove of a fid whose entry was swapped on the host removes nothing else. */
	assert_int_equal(p9t_walk(c, 1, 3, "file"), 1);
	{
		char old[256];

		snprintf(old, sizeof(old), "%s", at(fx, "share/file"));
		assert_int_equal(rename(old, at(fx, "share/file.old")), 0);
	}
	assert_int_equal(mkdir(at(fx, "share/file"), 0755), 0);
	assert_int_equal(p9t_fid_op(c, P9_TREMOVE, 3), -ENOENT);
	assert_int_equal(stat(at(fx, "share/file"), &st), 0);
	assert_outside_intact(fx);
}

/* 26-28: device nodes and FIFOs: no char/block node is made, none is opened (no hang). */
static void test_devices(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;

	assert_int_equal(p9t_mknod(c, 1, "mem", S_IFCHR | 0600), -EPERM);
	assert_int_equal(p9t_mknod(c, 1, "sda", S_IFBLK | 0600), -EPERM);
	assert_int_equal(p9t_mknod(c, 1, "odd", 0170000 | 0600), -EINVAL);
	assert_int_equal(p9t_walk(c, 1, 2, "fifo"), 1);
	assert_int_equal(p9t_lopen(c, 2, O_RDONLY), -EPERM);
	assert_int_equal(p9t_mknod(c, 1, "pipe", S_IFIFO | 0600), 0);
}

/* 29: walks do not cross into another mount beneath the root. */
static void test_no_xdev(void **state)
{
	struct p9_share_config cfg = {.path = "/", .read_only = true};
	struct stat root, proc;
	struct p9t c;

	if (stat("/", &root) || stat("/proc", &proc) || root.st_dev == proc.st_dev) {
		skip(); /* needs /proc mounted apart from / */
		return;
	}
	assert_int_equal(p9t_init(&c, &cfg), 0);
	assert_int_equal(p9t_version(&c, 65536, "9P2000.L"), 0);
	assert_int_equal(p9t_attach(&c, 1), 0);
	assert_int_equal(p9t_walk(&c, 1, 2, "proc"), -EXDEV);
	assert_int_equal(p9t_walk(&c, 1, 2, "proc/self/root"), -EXDEV);
	p9t_fini(&c);
}

/* 30-31: xattrs that could give host files powers are never set. */
static void test_xattr_namespaces(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;

	assert_int_equal(p9t_walk(c, 1, 2, "file"), 1);
	assert_int_equal(p9t_xattrcreate(c, 2, "security.capability", 20), -EOPNOTSUPP);
	assert_int_equal(p9t_xattrcreate(c, 2, "trusted.overlay.redirect", 4), -EOPNOTSUPP);
	assert_int_equal(p9t_xattrcreate(c, 2, "security.selinux", 4), -EOPNOTSUPP);
}

/* ---- Read-only and restricted shares ------------------------------------------------------- */

static void test_read_only(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct stat before, after;

	assert_int_equal(stat(at(fx, "share/file"), &before), 0);
	assert_int_equal(p9t_walk(c, 1, 2, "file"), 1);
	assert_int_equal(p9t_lopen(c, 2, O_WRONLY), -EROFS);
	assert_int_equal(p9t_lopen(c, 2, O_RDWR), -EROFS);
	assert_int_equal(p9t_lopen(c, 2, O_RDONLY | O_TRUNC), -EROFS);
	assert_int_equal(p9t_lopen(c, 2, O_RDONLY), 0);
	assert_int_equal(p9t_write(c, 2, 0, "x", 1), -EROFS);
	assert_int_equal(p9t_setattr(c, 2, 0x8, 0, 0), -EROFS);
	assert_int_equal(p9t_setattr(c, 2, 0x1, 0777, 0), -EROFS);
	assert_int_equal(p9t_walk(c, 1, 3, ""), 0);
	assert_int_equal(p9t_lcreate(c, 3, "new", O_RDWR, 0644), -EROFS);
	assert_int_equal(p9t_mkdir(c, 1, "newdir"), -EROFS);
	assert_int_equal(p9t_symlink(c, 1, "s", "t"), -EROFS);
	assert_int_equal(p9t_link(c, 1, 2, "h"), -EROFS);
	assert_int_equal(p9t_mknod(c, 1, "p", S_IFIFO | 0600), -EROFS);
	assert_int_equal(p9t_renameat(c, 1, "file", 1, "f2"), -EROFS);
	assert_int_equal(p9t_unlinkat(c, 1, "file", 0), -EROFS);
	assert_int_equal(p9t_xattrcreate(c, 2, "user.x", 1), -EROFS);
	assert_int_equal(p9t_walk(c, 1, 4, "file"), 1);
	assert_int_equal(p9t_fid_op(c, P9_TREMOVE, 4), -EROFS);
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 4), -EBADF); /* remove clunked it */
	assert_int_equal(stat(at(fx, "share/file"), &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mode, after.st_mode);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	assert_int_equal(access(at(fx, "share/new"), F_OK), -1);
}

static void test_restricted(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct p9_rd r;
	uint32_t n;
	int seen = 0;

	assert_int_equal(p9t_walk(c, 1, 2, "file"), 1);
	assert_int_equal(p9t_walk(c, 1, 3, "etc_link"), -ENOENT);
	assert_int_equal(p9t_walk(c, 1, 3, "fifo"), -ENOENT);
	assert_int_equal(p9t_walk(c, 1, 3, "d1/d2/up3"), 3); /* below the root: all names */
	assert_int_equal(p9t_walk(c, 1, 4, ""), 0);
	assert_int_equal(p9t_lcreate(c, 4, "other", O_RDWR, 0644), -EACCES);
	assert_int_equal(p9t_lcreate(c, 4, "newfile", O_RDWR, 0644), 0);
	assert_int_equal(p9t_renameat(c, 1, "file", 1, "other"), -EACCES);
	assert_int_equal(p9t_unlinkat(c, 1, "fifo", 0), -ENOENT);
	assert_int_equal(p9t_mkdir(c, 1, "other"), -EACCES);
	/* Readdir of the root shows ".", "..", and only the allowed names that exist. */
	assert_int_equal(p9t_walk(c, 1, 5, ""), 0);
	assert_int_equal(p9t_lopen(c, 5, O_RDONLY), 0);
	assert_int_equal(p9t_readdir(c, 5, 0, 8192), 0);
	r = c->r;
	n = p9_get_u32(&r);
	assert_int_equal(n, r.len - r.off);
	while (r.off < r.len && !r.err) {
		struct p9_str name;

		p9_get_bytes(&r, P9_QID_SIZE + 8 + 1);
		name = p9_get_str(&r);
		assert_false(r.err);
		if ((name.len == 1 && name.s[0] == '.') ||
		    (name.len == 2 && !memcmp(name.s, "..", 2)))
			continue;
		assert_true((name.len == 4 && !memcmp(name.s, "file", 4)) ||
			    (name.len == 2 && !memcmp(name.s, "d1", 2)) ||
			    (name.len == 11 && !memcmp(name.s, "secret_link", 11)) ||
			    (name.len == 7 && !memcmp(name.s, "newfile", 7)));
		seen++;
	}
	assert_int_equal(seen, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_walk_through_links, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_fid_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotdot_and_slashes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_through_links, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_links_stay_links, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setattr_on_links, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename_under_walk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
	    cmocka_unit_test(test_no_xdev),
	    cmocka_unit_test_setup_teardown(test_xattr_namespaces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_restricted, setup_restricted, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
