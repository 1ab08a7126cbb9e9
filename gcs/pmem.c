/*
 * Hot-plugged virtio-pmem devices in the guest: after a PCI rescan, the
 * virtio_pmem driver registers an nvdimm region and nd_pmem gives it a block
 * device, /dev/pmemN, whose N is the kernel's region number (not ours). The
 * device is found by its PCI function instead: /sys/block/pmemN resolves to
 * .../0000:00:SS.0/virtioK/ndbusM/regionN/namespaceN.0/block/pmemN.
 *
 * Mounting: read-only devices get the block device's read-only flag first
 * (BLKROSET: a write through /dev/pmemN fails instead of vanishing into the
 * read-only memory slot) and MS_RDONLY; DAX (dax=always) is asked for and,
 * when the file system refuses it (ext4 with blocks smaller than a page, an
 * erofs image that cannot do DAX), the mount is retried without it.
 *
 * These run on the storage workers (storage.c jobs) with j->run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "gcs/gcs.h"

#define POLL_MS	  20
#define RESCAN_MS 1000

/* <linux/fs.h> clashes with <sys/mount.h>: the value from there. */
#ifndef BLKROSET
#define BLKROSET _IO(0x12, 93)
#endif

/* Error text (cut to fit: paths may be long). */
__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t len, const char *fmt,
							  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* The pmemN under PCI slot `slot` into name; 0 or -ENOENT. */
static int find_by_slot(int slot, char *name, size_t len)
{
	char dir[PATH_MAX], pci[32];
	struct dirent *e;
	DIR *d;
	int ret = -ENOENT;

	snprintf(dir, sizeof(dir), "%s/block", gcs_sysfs());
	snprintf(pci, sizeof(pci), "/0000:00:%02x.0/", slot);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 256], real[PATH_MAX];

		if (strncmp(e->d_name, "pmem", 4) != 0 || strlen(e->d_name) >= len)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (realpath(path, real) && strstr(real, pci)) {
			memcpy(name, e->d_name, strlen(e->d_name) + 1);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

static void pci_dir(int slot, char *out, size_t len)
{
	snprintf(out, len, "%s/bus/pci/devices/0000:00:%02x.0", gcs_sysfs(), slot);
}

/* Takes the function out in the guest and waits (bounded) for its block device to go. */
static int pci_remove(int slot, const char *name, long deadline, char *err, size_t errlen)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], blk[PATH_MAX + 80];
	int ret;

	pci_dir(slot, dir, sizeof(dir));
	if (access(dir, F_OK) != 0)
		return 0; /* already gone */
	snprintf(path, sizeof(path), "%s/remove", dir);
	ret = gcs_write_str(path, "1");
	if (ret) {
		set_err(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	snprintf(blk, sizeof(blk), "%s/block/%s", gcs_sysfs(), name ? name : "-");
	while (name && access(blk, F_OK) == 0) {
		if (gcs_now_ms() > deadline || gcs_storage_stopping()) {
			set_err(err, errlen, "%s is still there after the removal", blk);
			return -ETIMEDOUT;
		}
		gcs_sleep_ms(POLL_MS);
	}
	gcs_log("pmem: removed slot %d (%s)", slot, name ? name : "no block device");
	return 0;
}

static int set_read_only(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC), one = 1, ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, BLKROSET, &one) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Mounts with dax=always first; falls back to a plain mount when the fs refuses DAX. */
static int mount_dax(struct gcs_storage_job *j, unsigned long flags, const char *data)
{
	char with[1200];

	if (strstr(data, "dax")) {
		/* The caller chose. */
		j->dax = strstr(data, "dax=never") == NULL;
		return mount(j->dev, j->mnt, j->fs, flags, data[0] ? data : NULL) ? -errno : 0;
	}
	snprintf(with, sizeof(with), "%s%sdax=always", data, data[0] ? "," : "");
	if (mount(j->dev, j->mnt, j->fs, flags, with) == 0) {
		j->dax = true;
		return 0;
	}
	gcs_log("pmem: %s on %s: DAX refused (%s), mounting without it", j->dev, j->mnt,
		strerror(errno));
	j->dax = false;
	return mount(j->dev, j->mnt, j->fs, flags, data[0] ? data : NULL) ? -errno : 0;
}

int gcs_pmem_add(struct gcs_storage_job *j)
{
	long t0 = gcs_now_ms(), last_scan = -RESCAN_MS;
	char name[64], data[1024], rescan[PATH_MAX];
	unsigned long flags;
	int ret;

	snprintf(rescan, sizeof(rescan), "%s/bus/pci/rescan", gcs_sysfs());
	for (;;) {
		if (gcs_now_ms() - last_scan >= RESCAN_MS) {
			last_scan = gcs_now_ms();
			ret = gcs_write_str(rescan, "1");
			if (ret) {
				set_err(j->err, sizeof(j->err), "%s: %s", rescan, strerror(-ret));
				return ret;
			}
		}
		if (find_by_slot(j->pci_slot, name, sizeof(name)) == 0)
			break;
		if (gcs_storage_stopping()) {
			set_err(j->err, sizeof(j->err), "cancelled: the bridge is ending");
			return -ECANCELED;
		}
		if (gcs_now_ms() - t0 > j->timeout_ms) {
			set_err(j->err, sizeof(j->err),
				"no pmem block device under PCI slot %d within %ld ms "
				"(modules virtio_pmem and nd_pmem loaded?)",
				j->pci_slot, j->timeout_ms);
			ret = -ETIMEDOUT;
			name[0] = '\0';
			goto undo;
		}
		gcs_sleep_ms(POLL_MS);
	}
	ret = gcs_blk_node(name, j->dev, sizeof(j->dev));
	if (ret) {
		set_err(j->err, sizeof(j->err), "no device node for %s: %s", name, strerror(-ret));
		goto undo;
	}
	if (j->read_only) {
		ret = set_read_only(j->dev);
		if (ret) {
			set_err(j->err, sizeof(j->err), "BLKROSET %s: %s", j->dev, strerror(-ret));
			goto undo;
		}
	}
	gcs_log("pmem: slot %d is %s%s", j->pci_slot, j->dev, j->read_only ? " (ro)" : "");
	if (!j->mnt[0])
		return 0;
	ret = gcs_mkdir_p(j->mnt);
	if (ret) {
		set_err(j->err, sizeof(j->err), "mkdir %s: %s", j->mnt, strerror(-ret));
		goto undo;
	}
	flags = gcs_mount_flags(j->opts, data, sizeof(data));
	if (j->read_only)
		flags |= MS_RDONLY;
	ret = mount_dax(j, flags, data);
	if (ret) {
		set_err(j->err, sizeof(j->err), "mount %s on %s (%s, %s): %s", j->dev, j->mnt,
			j->fs, j->opts, strerror(-ret));
		goto undo;
	}
	gcs_log("pmem: %s mounted on %s%s", j->dev, j->mnt, j->dax ? " with DAX" : "");
	return 0;
undo : {
	/* The host unplugs it on failure: take it out here first. */
	char why[256];

	if (pci_remove(j->pci_slot, name[0] ? name : NULL, gcs_now_ms() + 5000, why, sizeof(why)))
		gcs_log("pmem: cleanup of slot %d failed: %s", j->pci_slot, why);
}
	return ret;
}

int gcs_pmem_remove(struct gcs_storage_job *j)
{
	char name[64];
	bool have;

	if (j->mnt[0]) {
		if (umount2(j->mnt, 0) < 0 && errno != EINVAL && errno != ENOENT) {
			int ret = -errno;

			set_err(j->err, sizeof(j->err), "umount %s: %s", j->mnt, strerror(errno));
			return ret;
		}
		gcs_log("pmem: unmounted %s", j->mnt);
	}
	have = find_by_slot(j->pci_slot, name, sizeof(name)) == 0;
	return pci_remove(j->pci_slot, have ? name : NULL, gcs_now_ms() + j->timeout_ms, j->err,
			  sizeof(j->err));
}
