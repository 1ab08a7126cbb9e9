/*
 * The mounter (shim/mounter.h): its rules against hostile requests (bundles
 * outside the sandbox's directory, sources outside its snapshots, `..`,
 * prefixes that only look alike, mount types and overlay options it does not
 * take), and, as root, the process itself: a bind mounted with nosuid and
 * nodev, symlinked sources and targets refused, the process confined
 * (seccomp, CAP_SYS_ADMIN and overlayfs's file capabilities only) and
 * serving on after each refusal.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "shim/mounter.h"

#define MOUNTER_CAPS (0x1full | 1ull << 21 | 1ull << 27)
#define SNAP "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"

static Uvm__Ctrd__Mount *mk(const char *type, const char *source, const char *o1, const char *o2,
			    const char *o3)
{
	static Uvm__Ctrd__Mount ms[8];
	static char *opts[8][3];
	static int next;
	Uvm__Ctrd__Mount *m = &ms[next % 8];
	char **o = opts[next++ % 8];
	size_t n = 0;

	uvm__ctrd__mount__init(m);
	m->type = (char *)type;
	m->source = (char *)source;
	m->target = "";
	if (o1)
		o[n++] = (char *)o1;
	if (o2)
		o[n++] = (char *)o2;
	if (o3)
		o[n++] = (char *)o3;
	m->options = o;
	m->n_options = n;
	return m;
}

static Uvm__Ctrd__Mount *overlay(const char *lower, const char *upper, const char *work)
{
	return mk("overlay", "overlay", lower, upper, work);
}

static void test_rules(void **st)
{
	struct mounter_rules r;
	Uvm__Ctrd__Mount *m[MOUNTER_MOUNTS_MAX + 1];
	char err[TASK_MOUNT_ERRLEN];

	assert_int_equal(mounter_rules_init(&r, "relative/sb"), -EINVAL);
	assert_int_equal(mounter_rules_init(&r, "/s/ns/../sb"), -EINVAL);
	assert_int_equal(mounter_rules_init(&r, "/s/ns/sb"), 0);
	m[0] = overlay("lowerdir=" SNAP "/1/fs:" SNAP "/2/fs", "upperdir=" SNAP "/3/fs",
		       "workdir=" SNAP "/3/work");
	/* Before the roots nothing passes. */
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 1, err), -EPERM);
	assert_int_equal(mounter_rules_set_roots(&r, m, 1), 0);
	assert_int_equal(r.nr_roots, 1);
	assert_string_equal(r.roots[0], SNAP);
	assert_int_equal(mounter_rules_set_roots(&r, m, 1), -EPERM);
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 1, err), 0);
	m[0] = mk("bind", SNAP "/4/fs", "rbind", "ro", NULL);
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 1, err), 0);
	m[0] = overlay("lowerdir=" SNAP "/1/fs", "index=off", "userxattr");
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 1, err), 0);
}

static void test_rules_hostile(void **st)
{
	static const char *const bad_bundles[] = {
	    "/s/ns/../ns/c1", "/s/other/c1", "/s/ns/c1/x", "/s/ns/", "s/ns/c1",	  "/s/ns/.c1",
	    "/s/ns//c1",      "/s/ns/.",     "/s/ns/..",   "/s/ns",  "/s/nsx/c1", "/",
	};
	struct {
		const char *type, *source, *o1, *o2, *o3;
	} bad[] = {
	    {"overlay", "overlay", "lowerdir=/etc", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs:/etc", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/../../../../etc", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/./fs", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "//1", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=snapshots/1/fs", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "x/1/fs", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP, NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs", "upperdir=/root", NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs", "workdir=/tmp/w", NULL},
	    {"overlay", "overlay", "lowerdir+=/etc", NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs", "x-evil=/etc", NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs", "index=/etc", NULL},
	    {"overlay", "overlay", "upperdir=" SNAP "/1/fs", NULL, NULL},
	    {"overlay", "overlay", "bind", "lowerdir=" SNAP "/1/fs", NULL},
	    {"bind", "/", "rbind", NULL, NULL},
	    {"bind", "/etc", "bind", NULL, NULL},
	    {"", SNAP "/../x", "bind", NULL, NULL},
	    {"bind", "relative", "bind", NULL, NULL},
	    {"tmpfs", "tmpfs", NULL, NULL, NULL},
	    {"proc", "proc", NULL, NULL, NULL},
	    {"rbind", SNAP "/1/fs", "rbind", NULL, NULL},
	    {"ext4", "/dev/sda1", NULL, NULL, NULL},
	    {"overlay", "overlay", "lowerdir=" SNAP "/1/fs", "o\x01pt", NULL},
	};
	struct mounter_rules r;
	Uvm__Ctrd__Mount *m[MOUNTER_MOUNTS_MAX + 1];
	char err[TASK_MOUNT_ERRLEN];

	assert_int_equal(mounter_rules_init(&r, "/s/ns/sb"), 0);
	m[0] = overlay("lowerdir=" SNAP "/1/fs", NULL, NULL);
	/* Roots only from snapshot paths: /etc in the sandbox's mounts gives none. */
	m[1] = mk("bind", "/etc", "rbind", NULL, NULL);
	assert_int_equal(mounter_rules_set_roots(&r, m, 2), 0);
	assert_int_equal(r.nr_roots, 1);
	for (size_t i = 0; i < sizeof(bad_bundles) / sizeof(bad_bundles[0]); i++)
		assert_int_equal(mounter_rules_check(&r, bad_bundles[i], m, 1, err), -EACCES);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m[0] = mk(bad[i].type, bad[i].source, bad[i].o1, bad[i].o2, bad[i].o3);
		err[0] = 0;
		if (!mounter_rules_check(&r, "/s/ns/c1", m, 1, err))
			fail_msg("bad mount %zu passed", i);
		assert_true(err[0]);
	}
	/* Counts: none, one over the limit. */
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 0, err), -EINVAL);
	for (int i = 0; i <= MOUNTER_MOUNTS_MAX; i++)
		m[i] = overlay("lowerdir=" SNAP "/1/fs", NULL, NULL);
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, MOUNTER_MOUNTS_MAX + 1, err),
			 -EINVAL);
	/* A sandbox whose mounts are no snapshot's leaves no root: nothing passes. */
	assert_int_equal(mounter_rules_init(&r, "/s/ns/sb"), 0);
	m[0] = mk("bind", "/srv/rootfs", "rbind", NULL, NULL);
	assert_int_equal(mounter_rules_set_roots(&r, m, 1), 0);
	assert_int_equal(r.nr_roots, 0);
	assert_int_equal(mounter_rules_check(&r, "/s/ns/c1", m, 1, err), -EPERM);
}

/* ---- the process, as root ------------------------------------------------------------------ */

static char base[64];

static void mkdirs(const char *rel)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s", base, rel);
	assert_int_equal(system(cmd), 0);
}

static char *at(const char *rel)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, 256, "%s/%s", base, rel);
	return p;
}

/* The mount on path's line in mountinfo (its options), or "" when there is none. */
static const char *mount_line(const char *path)
{
	static char line[1024];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char needle[300];

	snprintf(needle, sizeof(needle), " %s ", path);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, needle)) {
			fclose(f);
			return line;
		}
	if (f)
		fclose(f);
	return "";
}

static void status_of_child(const char *name, char *seccomp, unsigned long long *cap)
{
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = %s ] && "
		 "[ \"$(awk '/^PPid/{print $2}' $d/status)\" = %d ] && "
		 "awk '/^Seccomp:|^CapEff:/{print $2}' $d/status; done",
		 name, (int)getpid());
	p = popen(cmd, "r");
	assert_non_null(p);
	/* /proc/PID/status lists CapEff before Seccomp. */
	assert_int_equal(fscanf(p, "%llx", cap), 1);
	assert_int_equal(fscanf(p, "%15s", seccomp), 1);
	pclose(p);
}

static void test_mounter_process(void **st)
{
	Uvm__Ctrd__Mount *m[1];
	char err[TASK_MOUNT_ERRLEN], seccomp[16];
	unsigned long long cap;
	int fd;

	if (geteuid() != 0)
		skip(); /* needs root: prints SKIPPED */
	sandbox_configure(false);
	if (sandbox_mode() == SANDBOX_OFF) {
		print_message("the sandbox is off (UVM_NO_SECCOMP): no mounter to test\n");
		skip();
	}
	strcpy(base, "/tmp/test-mounter-XXXXXX");
	assert_non_null(mkdtemp(base));
	mkdirs("state/ns/sb/rootfs");
	mkdirs("state/ns/c1/rootfs");
	mkdirs("state/ns/c2/rootfs");
	mkdirs("state/other/c3/rootfs");
	mkdirs("snap/snapshots/0");
	mkdirs("snap/snapshots/1");
	mkdirs("state/ns/c4");
	assert_int_equal(symlink("/tmp", at("state/ns/c4/rootfs")), 0);
	assert_int_equal(symlink("/etc", at("snap/snapshots/link")), 0);
	fd = open(at("snap/snapshots/1/hello"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	/* A host without mount rights (a container): the test cannot run here. */
	if (mount(at("snap/snapshots/0"), at("state/ns/sb/rootfs"), NULL, MS_BIND, NULL)) {
		print_message("bind mounts are refused here (%s): skipped\n", strerror(errno));
		skip();
	}
	umount2(at("state/ns/sb/rootfs"), MNT_DETACH);
	assert_int_equal(mounter_start(at("state/ns/sb")), 0);
	assert_true(mounter_running());
	m[0] = mk("bind", at("snap/snapshots/0"), "rbind", NULL, NULL);
	assert_int_equal(mounter_set_roots(m, 1), 0);
	assert_int_equal(mounter_set_roots(m, 1), -EPERM);
	/* Refused: another namespace's bundle, a symlinked source, a symlinked rootfs. */
	m[0] = mk("bind", at("snap/snapshots/1"), "rbind", NULL, NULL);
	assert_int_equal(mounter_mount(at("state/other/c3"), m, 1, err), -EACCES);
	assert_string_equal(mount_line(at("state/other/c3/rootfs")), "");
	m[0] = mk("bind", at("snap/snapshots/link"), "rbind", NULL, NULL);
	assert_int_equal(mounter_mount(at("state/ns/c2"), m, 1, err), -ELOOP);
	assert_non_null(strstr(err, "link"));
	m[0] = mk("bind", at("snap/snapshots/1"), "rbind", NULL, NULL);
	assert_int_equal(mounter_mount(at("state/ns/c4"), m, 1, err), -ELOOP);
	/* And then one that passes: the snapshot seen on rootfs/, nosuid and nodev. */
	assert_int_equal(mounter_mount(at("state/ns/c1"), m, 1, err), 0);
	assert_int_equal(access(at("state/ns/c1/rootfs/hello"), F_OK), 0);
	assert_non_null(strstr(mount_line(at("state/ns/c1/rootfs")), "nosuid"));
	assert_non_null(strstr(mount_line(at("state/ns/c1/rootfs")), "nodev"));
	/* The process: filtered; CAP_SYS_ADMIN (21) and the file capabilities overlayfs
	 * uses (CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2, FOWNER 3, FSETID 4, MKNOD 27). */
	status_of_child("mounter", seccomp, &cap);
	assert_int_equal(atoi(seccomp), 2);
	assert_int_equal(cap, MOUNTER_CAPS);
	mounter_stop();
	assert_false(mounter_running());
	assert_int_equal(task_unmount_rootfs(at("state/ns/c1/rootfs")), 0);
	assert_int_equal(system("true"), 0);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_rules_hostile),
	    cmocka_unit_test(test_mounter_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
