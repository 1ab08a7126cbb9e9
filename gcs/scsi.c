/*
 * Disks (scsi_add, scsi_remove): each operation runs on a worker thread
 * (storage.c, its jobs) and is answered from the loop when the worker is
 * done, so a disk that takes long to appear does not stall the other
 * requests. Two operations on one serial never overlap: the second fails
 * with -EBUSY (storage.c says why).
 */
#include "gcs/bridge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gcs_watch done_w; /* storage.c's eventfd: a worker finished */

static int copy_field(char *dst, size_t len, const char *src, const char *what, char *err,
		      size_t errlen)
{
	if (!src)
		src = "";
	if (strlen(src) >= len) {
		snprintf(err, errlen, "%s: longer than %zu bytes", what, len - 1);
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

/* A job for request (type, id) with what every kind shares; NULL (answered) when out of memory. */
static struct gcs_storage_job *job_new(uint32_t type, uint64_t id, const cJSON *req, bool remove,
				       long long timeout, long long def)
{
	struct gcs_storage_job *j = calloc(1, sizeof(*j));

	if (!j) {
		gcs_bridge_respond(type, id, -ENOMEM, NULL, "out of memory");
		return NULL;
	}
	j->type = type;
	j->id = id;
	j->remove = remove;
	j->read_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "read_only"));
	j->timeout_ms = timeout > 0 ? timeout : def;
	return j;
}

/* The request's mount, fs (default ext4) and options into j; 0 or -errno with err. */
static int job_mount_fields(struct gcs_storage_job *j, const cJSON *req, char *err, size_t len)
{
	const char *fs = gcs_bridge_str(req, "fs");
	int ret = copy_field(j->mnt, sizeof(j->mnt), gcs_bridge_str(req, "mount"), "mount", err, len);

	if (!ret)
		ret = copy_field(j->fs, sizeof(j->fs), fs ? fs : "ext4", "fs", err, len);
	if (!ret)
		ret = copy_field(j->opts, sizeof(j->opts), gcs_bridge_str(req, "options"), "options",
				 err, len);
	return ret;
}

/* Hands j to the workers unless ret already failed; a failure is answered and j freed. */
static void job_submit(struct gcs_storage_job *j, int ret, char *err, size_t len)
{
	if (!ret)
		ret = gcs_storage_submit(j, err, len);
	if (ret) {
		gcs_bridge_respond(j->type, j->id, ret, NULL, "%s", err);
		free(j);
	}
}

static void scsi_submit(uint32_t type, uint64_t id, const cJSON *req, bool remove)
{
	const char *what = remove ? "scsi_remove" : "scsi_add";
	const char *serial = gcs_bridge_str(req, "serial");
	long long def = remove ? 10000 : 30000, timeout;
	struct gcs_storage_job *j;
	char err[512];
	int ret;

	if (!serial || !*serial) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: no serial", what);
		return;
	}
	/* int range: a deadline of now + timeout must not overflow (the shim sends <= 1 h). */
	if (gcs_bridge_int(req, "timeout_ms", INT32_MIN, INT32_MAX, def, &timeout)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "%s: timeout_ms must be an integer of at most %d", what,
				   INT32_MAX);
		return;
	}
	j = job_new(type, id, req, remove, timeout, def);
	if (!j)
		return;
	ret = copy_field(j->serial, sizeof(j->serial), serial, "serial", err, sizeof(err));
	if (!ret)
		ret = job_mount_fields(j, req, err, sizeof(err));
	job_submit(j, ret, err, sizeof(err));
}

/* Answers the disk operations whose workers are done. */
static void on_jobs_done(struct gcs_watch *w, uint32_t events)
{
	struct gcs_storage_job *j;

	while ((j = gcs_storage_reap())) {
		if (j->ret) {
			gcs_bridge_respond(j->type, j->id, j->ret, NULL, "%s", j->err);
		} else if (j->remove) {
			gcs_bridge_respond(j->type, j->id, 0, NULL, NULL);
		} else {
			cJSON *b = cJSON_CreateObject();

			cJSON_AddStringToObject(b, "device", j->dev);
			if (j->run) /* pmem: whether the mount got DAX */
				cJSON_AddBoolToObject(b, "dax", j->dax);
			gcs_bridge_respond(j->type, j->id, 0, b, NULL);
		}
		free(j);
	}
}

int gcs_scsi_init(void)
{
	int fd = gcs_storage_jobs_init();

	if (fd < 0)
		return fd;
	done_w.fn = on_jobs_done;
	return gcs_bridge_watch(fd, &done_w);
}

void gcs_scsi_add(uint32_t type, uint64_t id, const cJSON *req)
{
	scsi_submit(type, id, req, false);
}

void gcs_scsi_remove(uint32_t type, uint64_t id, const cJSON *req)
{
	scsi_submit(type, id, req, true);
}

/* pmem devices: the same jobs, keyed "pmemN" so that two operations on one never overlap. */
static void pmem_submit(uint32_t type, uint64_t id, const cJSON *req, bool remove)
{
	const char *what = remove ? "pmem_remove" : "pmem_add";
	long long def = remove ? 10000 : 30000, timeout, slot, dev;
	struct gcs_storage_job *j;
	char err[512];
	int ret;

	if (gcs_bridge_int(req, "timeout_ms", INT32_MIN, INT32_MAX, def, &timeout) ||
	    gcs_bridge_int(req, "pci_slot", 1, 31, -1, &slot) || slot < 1 ||
	    gcs_bridge_int(req, "device", 0, 1023, -1, &dev) || dev < 0) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: bad device, pci_slot or timeout_ms",
				   what);
		return;
	}
	j = job_new(type, id, req, remove, timeout, def);
	if (!j)
		return;
	j->run = remove ? gcs_pmem_remove : gcs_pmem_add;
	j->pci_slot = (int)slot;
	snprintf(j->serial, sizeof(j->serial), "pmem%lld", dev);
	ret = job_mount_fields(j, req, err, sizeof(err));
	job_submit(j, ret, err, sizeof(err));
}

void gcs_pmem_add_req(uint32_t type, uint64_t id, const cJSON *req)
{
	pmem_submit(type, id, req, false);
}

void gcs_pmem_remove_req(uint32_t type, uint64_t id, const cJSON *req)
{
	pmem_submit(type, id, req, true);
}

/* 9p shares: the same jobs, keyed by the mount tag. */
static void plan9_submit(uint32_t type, uint64_t id, const cJSON *req, bool remove)
{
	const char *what = remove ? "plan9_remove" : "plan9_add";
	const char *tag = gcs_bridge_str(req, "tag"), *mnt = gcs_bridge_str(req, "mount");
	long long def = remove ? 10000 : 30000, timeout, msize;
	struct gcs_storage_job *j;
	char err[512];
	int ret;

	if (!tag || !*tag || !mnt || mnt[0] != '/') {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: expected a tag and an absolute mount",
				   what);
		return;
	}
	if (gcs_bridge_int(req, "timeout_ms", INT32_MIN, INT32_MAX, def, &timeout) ||
	    gcs_bridge_int(req, "msize", 4096, 1 << 20, 512000, &msize)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: bad timeout_ms or msize", what);
		return;
	}
	j = job_new(type, id, req, remove, timeout, def);
	if (!j)
		return;
	j->plan9 = true;
	j->msize = msize;
	ret = copy_field(j->serial, sizeof(j->serial), tag, "tag", err, sizeof(err));
	if (!ret)
		ret = copy_field(j->mnt, sizeof(j->mnt), mnt, "mount", err, sizeof(err));
	job_submit(j, ret, err, sizeof(err));
}

void gcs_plan9_add_req(uint32_t type, uint64_t id, const cJSON *req)
{
	plan9_submit(type, id, req, false);
}

void gcs_plan9_remove_req(uint32_t type, uint64_t id, const cJSON *req)
{
	plan9_submit(type, id, req, true);
}

void gcs_scsi_stop(void)
{
	gcs_storage_jobs_stop();
}
