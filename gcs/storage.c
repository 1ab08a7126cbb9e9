/*
 * Hot-plugged disks in the guest: find a virtio-blk disk by the serial the
 * host gave it (after a PCI rescan), mount it; unmount and remove its PCI
 * function before the host unplugs it. Each operation blocks, bounded by a
 * timeout, so the bridge runs it on a worker thread of its own (the jobs at
 * the end of this file) and answers when the worker is done: a disk that
 * takes seconds to appear does not hold up exec, wait or signal meanwhile.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "gcs/gcs.h"

#define POLL_MS	  20
#define RESCAN_MS 1000 /* rescan again in case the first came before the function */
#define MAX_JOBS  64   /* operations in flight at once (one thread each) */

/* Set by gcs_storage_jobs_stop: the waits below give up (the bridge is ending). */
static atomic_bool stopping;
/* Where sysfs is: "/sys", or a directory posing as it in host-side tests. */
static const char *sysfs = "/sys";

void gcs_storage_set_sysfs(const char *root)
{
	sysfs = root;
}

const char *gcs_sysfs(void)
{
	return sysfs;
}

bool gcs_storage_stopping(void)
{
	return atomic_load(&stopping);
}

void gcs_sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&t, NULL);
}

/* The vdX whose serial is serial, into name; 0 or -ENOENT. */
static int find_by_serial(const char *serial, char *name, size_t len)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int ret = -ENOENT;

	snprintf(dir, sizeof(dir), "%s/block", sysfs);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[PATH_MAX], got[64];

		if (strncmp(e->d_name, "vd", 2) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/block/%s/serial", sysfs, e->d_name);
		if (gcs_read_line(path, got, sizeof(got)) == 0 && strcmp(got, serial) == 0) {
			if (strlen(e->d_name) >= len)
				continue;
			memcpy(name, e->d_name, strlen(e->d_name) + 1);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Makes /dev/<name> exist (devtmpfs usually has it already). */
int gcs_blk_node(const char *name, char *dev, size_t len)
{
	char path[PATH_MAX], mm[32];
	unsigned maj, min;
	struct stat st;

	snprintf(dev, len, "/dev/%s", name);
	if (stat(dev, &st) == 0 && S_ISBLK(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "%s/block/%s/dev", sysfs, name);
	if (gcs_read_line(path, mm, sizeof(mm)) || sscanf(mm, "%u:%u", &maj, &min) != 2)
		return -ENODEV;
	if (mknod(dev, S_IFBLK | 0600, makedev(maj, min)) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int gcs_mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

/* Splits "ro,noatime,data=ordered" into mount flags and the fs's own data. */
unsigned long gcs_mount_flags(const char *opts, char *data, size_t len)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} known[] = {{"ro", MS_RDONLY},
		     {"nosuid", MS_NOSUID},
		     {"nodev", MS_NODEV},
		     {"noexec", MS_NOEXEC},
		     {"sync", MS_SYNCHRONOUS},
		     {"noatime", MS_NOATIME},
		     {"nodiratime", MS_NODIRATIME},
		     {"relatime", MS_RELATIME},
		     {"dirsync", MS_DIRSYNC}};
	char buf[1024], *save = NULL, *tok;
	unsigned long flags = 0;
	size_t used = 0;

	data[0] = '\0';
	snprintf(buf, sizeof(buf), "%s", opts ? opts : "");
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool hit = false;

		if (strcmp(tok, "rw") == 0 || strcmp(tok, "defaults") == 0)
			continue;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(tok, known[i].name) == 0) {
				flags |= known[i].flag;
				hit = true;
			}
		if (hit)
			continue;
		used += snprintf(data + used, used < len ? len - used : 0, "%s%s", used ? "," : "",
				 tok);
	}
	return flags;
}

/* The PCI function under a block device: /sys/devices/pci0000:00/0000:00:05.0. */
static int pci_dir_of(const char *name, char *out, size_t len)
{
	char link[PATH_MAX], real[PATH_MAX], *slash;

	/* /sys/block/vdX/device -> .../0000:00:05.0/virtioN */
	snprintf(link, sizeof(link), "%s/block/%s/device", sysfs, name);
	if (!realpath(link, real))
		return -errno;
	slash = strrchr(real, '/');
	if (!slash || strncmp(slash + 1, "virtio", 6) != 0)
		return -ENODEV;
	*slash = '\0';
	snprintf(out, len, "%s", real);
	return 0;
}

static int remove_function(const char *name, const char *dir, const char *blk, long deadline,
			   char *err, size_t errlen);

/* Removes the function in the guest and waits (bounded) for the disk to go. */
static int pci_remove(const char *name, long deadline, char *err, size_t errlen)
{
	char dir[PATH_MAX], blk[PATH_MAX];
	int ret = pci_dir_of(name, dir, sizeof(dir));

	if (ret) {
		snprintf(err, errlen, "cannot find the PCI function of %s: %s", name,
			 strerror(-ret));
		return ret;
	}
	snprintf(blk, sizeof(blk), "%s/block/%s", sysfs, name);
	return remove_function(name, dir, blk, deadline, err, errlen);
}

/* Writes 1 to dir/remove and waits (bounded) for gone to disappear. */
static int remove_function(const char *name, const char *dir, const char *blk, long deadline,
			   char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	int ret;

	snprintf(path, sizeof(path), "%s/remove", dir);
	ret = gcs_write_str(path, "1");
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	while (access(blk, F_OK) == 0) {
		if (gcs_now_ms() > deadline || atomic_load(&stopping)) {
			snprintf(err, errlen, "%s is still there after the removal", blk);
			return -ETIMEDOUT;
		}
		gcs_sleep_ms(POLL_MS);
	}
	gcs_log("storage: removed %s (%s)", name, dir);
	return 0;
}

int gcs_storage_add(const char *serial, const char *mnt, const char *fs, const char *opts,
		    bool read_only, long timeout_ms, char *dev, size_t devlen, char *err,
		    size_t errlen)
{
	long t0 = gcs_now_ms(), last_scan = -RESCAN_MS;
	char name[64], data[1024], rescan[PATH_MAX];
	unsigned long flags;
	int ret;

	snprintf(rescan, sizeof(rescan), "%s/bus/pci/rescan", sysfs);
	for (;;) {
		if (gcs_now_ms() - last_scan >= RESCAN_MS) {
			last_scan = gcs_now_ms();
			ret = gcs_write_str(rescan, "1");
			if (ret) {
				snprintf(err, errlen, "%s: %s", rescan, strerror(-ret));
				return ret;
			}
		}
		if (find_by_serial(serial, name, sizeof(name)) == 0)
			break;
		if (atomic_load(&stopping)) {
			snprintf(err, errlen, "cancelled: the bridge is ending");
			return -ECANCELED;
		}
		if (gcs_now_ms() - t0 > timeout_ms) {
			snprintf(err, errlen, "no disk with serial %s appeared within %ld ms",
				 serial, timeout_ms);
			return -ETIMEDOUT;
		}
		gcs_sleep_ms(POLL_MS);
	}
	ret = gcs_blk_node(name, dev, devlen);
	if (ret) {
		snprintf(err, errlen, "no device node for %s: %s", name, strerror(-ret));
		goto undo;
	}
	gcs_log("storage: %s is %s", serial, dev);
	if (!mnt || !*mnt)
		return 0;
	ret = gcs_mkdir_p(mnt);
	if (ret) {
		snprintf(err, errlen, "mkdir %s: %s", mnt, strerror(-ret));
		goto undo;
	}
	flags = gcs_mount_flags(opts, data, sizeof(data));
	if (read_only)
		flags |= MS_RDONLY;
	if (mount(dev, mnt, fs, flags, data[0] ? data : NULL) < 0) {
		ret = -errno;
		snprintf(err, errlen, "mount %s on %s (%s, %s): %s", dev, mnt, fs, opts ? opts : "",
			 strerror(errno));
		goto undo;
	}
	gcs_log("storage: %s mounted on %s", dev, mnt);
	return 0;
undo : {
	/* The host unplugs it on failure: take it out here first. */
	char why[256];

	if (pci_remove(name, gcs_now_ms() + 5000, why, sizeof(why)))
		gcs_log("storage: cleanup of %s failed: %s", name, why);
}
	return ret;
}

int gcs_storage_remove(const char *serial, const char *mnt, long timeout_ms, char *err,
		       size_t errlen)
{
	char name[64];
	int ret;

	if (mnt && *mnt) {
		if (umount2(mnt, 0) < 0 && errno != EINVAL && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "umount %s: %s", mnt, strerror(errno));
			return ret;
		}
		gcs_log("storage: unmounted %s", mnt);
	}
	if (find_by_serial(serial, name, sizeof(name))) {
		/* Already gone from the guest: nothing holds it, the host may unplug. */
		gcs_log("storage: %s is not in the guest", serial);
		return 0;
	}
	sync();
	return pci_remove(name, gcs_now_ms() + timeout_ms, err, errlen);
}

/* ---- 9p shares ------------------------------------------------------------------- */

/* The virtio device whose 9p mount tag (9pnet_virtio's mount_tag) is tag. */
static int find_by_tag(const char *tag, char *name, size_t len)
{
	char dir[PATH_MAX];
	struct dirent *e;
	int ret = -ENOENT;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/bus/virtio/devices", sysfs);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300], got[128];

		if (strncmp(e->d_name, "virtio", 6) != 0 || strlen(e->d_name) >= len)
			continue;
		snprintf(path, sizeof(path), "%s/%s/mount_tag", dir, e->d_name);
		if (gcs_read_line(path, got, sizeof(got)) == 0 && strcmp(got, tag) == 0) {
			memcpy(name, e->d_name, strlen(e->d_name) + 1);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Removes the PCI function under virtio device name and waits for it to go. */
static int virtio_remove(const char *name, long deadline, char *err, size_t errlen)
{
	char link[PATH_MAX], real[PATH_MAX], *slash;

	snprintf(link, sizeof(link), "%s/bus/virtio/devices/%s", sysfs, name);
	if (!realpath(link, real) || !(slash = strrchr(real, '/'))) {
		snprintf(err, errlen, "cannot find the PCI function of %s: %s", name,
			 strerror(errno));
		return -ENODEV;
	}
	*slash = '\0';
	return remove_function(name, real, link, deadline, err, errlen);
}

int gcs_plan9_add(const char *tag, const char *mnt, bool read_only, long msize, long timeout_ms,
		  char *dev, size_t devlen, char *err, size_t errlen)
{
	long t0 = gcs_now_ms(), last_scan = -RESCAN_MS;
	char name[64], data[256], rescan[PATH_MAX];
	int ret;

	snprintf(rescan, sizeof(rescan), "%s/bus/pci/rescan", sysfs);
	while (find_by_tag(tag, name, sizeof(name)) != 0) {
		if (atomic_load(&stopping)) {
			snprintf(err, errlen, "cancelled: the bridge is ending");
			return -ECANCELED;
		}
		if (gcs_now_ms() - t0 > timeout_ms) {
			snprintf(err, errlen, "no 9p share with tag %s appeared within %ld ms", tag,
				 timeout_ms);
			return -ETIMEDOUT;
		}
		if (gcs_now_ms() - last_scan >= RESCAN_MS) {
			last_scan = gcs_now_ms();
			ret = gcs_write_str(rescan, "1");
			if (ret) {
				snprintf(err, errlen, "%s: %s", rescan, strerror(-ret));
				return ret;
			}
		}
		gcs_sleep_ms(POLL_MS);
	}
	snprintf(dev, devlen, "%s", name);
	ret = gcs_mkdir_p(mnt);
	if (ret) {
		snprintf(err, errlen, "mkdir %s: %s", mnt, strerror(-ret));
		goto undo;
	}
	/* cache=mmap: reads and writes go to the host (changes there are seen at
	 * once), mmap (and so exec and shared writable maps) works. */
	snprintf(data, sizeof(data), "trans=virtio,version=9p2000.L,msize=%ld,cache=mmap", msize);
	if (mount(tag, mnt, "9p", read_only ? MS_RDONLY : 0, data) < 0) {
		ret = -errno;
		snprintf(err, errlen, "mount 9p %s on %s (%s): %s", tag, mnt, data,
			 strerror(errno));
		goto undo;
	}
	gcs_log("storage: 9p %s (%s) mounted on %s", tag, name, mnt);
	return 0;
undo : {
	char why[256];

	if (virtio_remove(name, gcs_now_ms() + 5000, why, sizeof(why)))
		gcs_log("storage: cleanup of %s failed: %s", name, why);
}
	return ret;
}

int gcs_plan9_remove(const char *tag, const char *mnt, long timeout_ms, char *err,
		     size_t errlen)
{
	char name[64];
	int ret;

	if (mnt && *mnt) {
		if (umount2(mnt, 0) < 0 && errno != EINVAL && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "umount %s: %s", mnt, strerror(errno));
			return ret;
		}
		gcs_log("storage: unmounted 9p %s from %s", tag, mnt);
	}
	if (find_by_tag(tag, name, sizeof(name))) {
		gcs_log("storage: 9p %s is not in the guest", tag);
		return 0;
	}
	return virtio_remove(name, gcs_now_ms() + timeout_ms, err, errlen);
}

/* ---- jobs: one worker thread per operation -------------------------------------- */

/*
 * Only the bridge thread submits, reaps and stops jobs; a worker touches its
 * own job and, when done, the done list (under done_lock) and the eventfd.
 *
 * Ordering: two operations on the same serial never run at once. A remove
 * (or a second add) of a serial whose add is still running fails at once
 * with -EBUSY and says so, rather than queueing behind it: the host's scsi
 * manager (shim/scsi.c) already refuses to remove a disk it is still adding,
 * so a queue here would only hide a host bug, and failing keeps the host's
 * view (adding, then attached or failed) the only source of truth.
 * Operations on different disks run in parallel: the kernel serializes PCI
 * rescan and removal itself.
 */
static struct gcs_storage_job *running; /* submitted, not yet reaped */
static struct gcs_storage_job *done;	/* finished, not yet reaped (done_lock) */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static int done_fd = -1;
static unsigned nr_running;

int gcs_storage_jobs_init(void)
{
	if (done_fd >= 0)
		return done_fd;
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return done_fd >= 0 ? done_fd : -errno;
}

static void *job_main(void *arg)
{
	struct gcs_storage_job *j = arg;
	uint64_t one = 1;

	/* Named for dump_stacks and ps; it takes the stack request, no other signal. */
	pthread_setname_np(pthread_self(), j->run	? (j->remove ? "pmem-remove" : "pmem-add")
					   : j->plan9	? (j->remove ? "9p-remove" : "9p-add")
					   : j->remove ? "scsi-remove"
						       : "scsi-add");
	gcs_stacks_allow();
	if (j->run)
		j->ret = j->run(j);
	else if (j->plan9 && j->remove)
		j->ret = gcs_plan9_remove(j->serial, j->mnt, j->timeout_ms, j->err, sizeof(j->err));
	else if (j->plan9)
		j->ret = gcs_plan9_add(j->serial, j->mnt, j->read_only, j->msize, j->timeout_ms,
				       j->dev, sizeof(j->dev), j->err, sizeof(j->err));
	else if (j->remove)
		j->ret = gcs_storage_remove(j->serial, j->mnt[0] ? j->mnt : NULL, j->timeout_ms,
					    j->err, sizeof(j->err));
	else
		j->ret = gcs_storage_add(j->serial, j->mnt[0] ? j->mnt : NULL, j->fs,
					 j->opts[0] ? j->opts : NULL, j->read_only, j->timeout_ms,
					 j->dev, sizeof(j->dev), j->err, sizeof(j->err));
	pthread_mutex_lock(&done_lock);
	j->done_next = done;
	done = j;
	pthread_mutex_unlock(&done_lock);
	if (write(done_fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow with at most MAX_JOBS posts */
	}
	return NULL;
}

int gcs_storage_submit(struct gcs_storage_job *j, char *err, size_t errlen)
{
	sigset_t all, old;
	int ret;

	if (done_fd < 0) {
		snprintf(err, errlen, "storage jobs are not set up");
		return -EINVAL;
	}
	for (struct gcs_storage_job *r = running; r; r = r->next)
		if (!strcmp(r->serial, j->serial)) {
			snprintf(err, errlen, "%s of disk %s is still running",
				 r->remove ? "a remove" : "an add", j->serial);
			return -EBUSY;
		}
	if (nr_running >= MAX_JOBS) {
		snprintf(err, errlen, "%u disk operations are already running", nr_running);
		return -EAGAIN;
	}
	/* Workers take no signal (but the stack request, job_main): SIGCHLD and the rest
	 * stay with the bridge thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&j->thread, NULL, job_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		snprintf(err, errlen, "cannot start a worker: %s", strerror(-ret));
		return ret;
	}
	j->next = running;
	running = j;
	nr_running++;
	return 0;
}

struct gcs_storage_job *gcs_storage_reap(void)
{
	struct gcs_storage_job *j, **pp;
	uint64_t n;

	pthread_mutex_lock(&done_lock);
	j = done;
	if (j)
		done = j->done_next;
	else if (read(done_fd, &n, sizeof(n)) < 0) {
		/* drained: EAGAIN */
	}
	pthread_mutex_unlock(&done_lock);
	if (!j)
		return NULL;
	pthread_join(j->thread, NULL); /* it has finished its work: returns at once */
	for (pp = &running; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			nr_running--;
			break;
		}
	return j;
}

void gcs_storage_jobs_stop(void)
{
	struct gcs_storage_job *j;

	atomic_store(&stopping, true);
	/* The waits poll every POLL_MS: every worker ends promptly. */
	while (running) {
		j = running;
		pthread_join(j->thread, NULL);
		running = j->next;
		free(j);
	}
	nr_running = 0;
	done = NULL;
}
