/*
 * `uvm-shim run --rootfs DIR -- CMD` (run_spec.h): the container_create
 * request for CMD, with an OCI runtime spec written here, close to what
 * `crun spec` writes plus the capabilities a container engine gives by
 * default, so a command tried by hand behaves as it would under one.
 */
#include "shim/run_spec.h"

#include <stdio.h>
#include <string.h>

/* Docker's default capability set: enough for package managers and the like. */
static const char *const run_caps[] = {
    "CAP_CHOWN",      "CAP_DAC_OVERRIDE", "CAP_FSETID",	     "CAP_FOWNER",	     "CAP_MKNOD",
    "CAP_NET_RAW",    "CAP_SETGID",	  "CAP_SETUID",	     "CAP_SETFCAP",	     "CAP_SETPCAP",
    "CAP_SYS_CHROOT", "CAP_KILL",	  "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE",
};

/* crun spec's mounts: {destination, type, source, options (comma-separated, or NULL)}. */
static const char *const run_mounts[][4] = {
    {"/proc", "proc", "proc", NULL},
    {"/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"},
    {"/dev/pts", "devpts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"},
    {"/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"},
    {"/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"},
    {"/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"},
    {"/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"},
};

static const char *const run_masked[] = {
    "/proc/acpi",	   "/proc/kcore",      "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug",   "/sys/firmware",    "/proc/scsi",
};

static const char *const run_readonly[] = {"/proc/asound", "/proc/bus", "/proc/fs",
					   "/proc/irq",	   "/proc/sys", "/proc/sysrq-trigger"};

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

static cJSON *strings(const char *const *v, int n)
{
	return cJSON_CreateStringArray(v, n);
}

static cJSON *split_options(const char *opts)
{
	cJSON *a = cJSON_CreateArray();
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		cJSON_AddItemToArray(a, cJSON_CreateString(t));
	return a;
}

static cJSON *process(char *const *argv, int argc, bool tty, const char *term)
{
	cJSON *p = cJSON_CreateObject(), *user, *env, *caps, *rl;
	char tbuf[128];

	cJSON_AddBoolToObject(p, "terminal", tty);
	user = cJSON_AddObjectToObject(p, "user");
	cJSON_AddNumberToObject(user, "uid", 0);
	cJSON_AddNumberToObject(user, "gid", 0);
	cJSON_AddItemToObject(p, "args", strings((const char *const *)argv, argc));
	env = cJSON_AddArrayToObject(p, "env");
	cJSON_AddItemToArray(env, cJSON_CreateString("PATH=/usr/local/sbin:/usr/local/bin:"
						     "/usr/sbin:/usr/bin:/sbin:/bin"));
	cJSON_AddItemToArray(env, cJSON_CreateString("HOME=/root"));
	snprintf(tbuf, sizeof(tbuf), "TERM=%.100s", tty && term && *term ? term : "xterm");
	cJSON_AddItemToArray(env, cJSON_CreateString(tbuf));
	cJSON_AddStringToObject(p, "cwd", "/");
	caps = cJSON_AddObjectToObject(p, "capabilities");
	for (int i = 0; i < 4; i++) {
		static const char *const sets[] = {"bounding", "effective", "permitted", "ambient"};

		cJSON_AddItemToObject(caps, sets[i], strings(run_caps, N(run_caps)));
	}
	rl = cJSON_CreateObject();
	cJSON_AddStringToObject(rl, "type", "RLIMIT_NOFILE");
	cJSON_AddNumberToObject(rl, "hard", 1048576);
	cJSON_AddNumberToObject(rl, "soft", 1048576);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "rlimits"), rl);
	cJSON_AddBoolToObject(p, "noNewPrivileges", true);
	return p;
}

cJSON *run_container_spec(char *const *argv, int argc, bool tty, const char *term)
{
	cJSON *s = cJSON_CreateObject(), *mounts, *linux_, *ns, *dev;

	if (!s || argc < 1)
		goto fail;
	cJSON_AddStringToObject(s, "ociVersion", "1.0.0");
	cJSON_AddItemToObject(s, "process", process(argv, argc, tty, term));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "root"), "path", "rootfs");
	cJSON_AddStringToObject(s, "hostname", RUN_CONTAINER_HOSTNAME);
	mounts = cJSON_AddArrayToObject(s, "mounts");
	for (int i = 0; i < N(run_mounts); i++) {
		cJSON *m = cJSON_CreateObject();

		cJSON_AddStringToObject(m, "destination", run_mounts[i][0]);
		cJSON_AddStringToObject(m, "type", run_mounts[i][1]);
		cJSON_AddStringToObject(m, "source", run_mounts[i][2]);
		if (run_mounts[i][3])
			cJSON_AddItemToObject(m, "options", split_options(run_mounts[i][3]));
		cJSON_AddItemToArray(mounts, m);
	}
	linux_ = cJSON_AddObjectToObject(s, "linux");
	dev = cJSON_CreateObject();
	cJSON_AddBoolToObject(dev, "allow", false);
	cJSON_AddStringToObject(dev, "access", "rwm");
	cJSON_AddItemToArray(
	    cJSON_AddArrayToObject(cJSON_AddObjectToObject(linux_, "resources"), "devices"), dev);
	/* No network namespace: CMD uses the VM's, where --net's NICs are. */
	ns = cJSON_AddArrayToObject(linux_, "namespaces");
	for (int i = 0; i < 4; i++) {
		static const char *const types[] = {"pid", "ipc", "uts", "mount"};
		cJSON *n = cJSON_CreateObject();

		cJSON_AddStringToObject(n, "type", types[i]);
		cJSON_AddItemToArray(ns, n);
	}
	cJSON_AddItemToObject(linux_, "maskedPaths", strings(run_masked, N(run_masked)));
	cJSON_AddItemToObject(linux_, "readonlyPaths", strings(run_readonly, N(run_readonly)));
	return s;
fail:
	cJSON_Delete(s);
	return NULL;
}

cJSON *run_container_body(char *const *argv, int argc, bool tty, const char *term,
			  const char *guest_root)
{
	cJSON *b = cJSON_CreateObject(), *spec = run_container_spec(argv, argc, tty, term), *l;

	if (!b || !spec) {
		cJSON_Delete(b);
		cJSON_Delete(spec);
		return NULL;
	}
	cJSON_AddStringToObject(b, "id", RUN_CONTAINER_ID);
	cJSON_AddItemToObject(b, "spec", spec);
	/* The share is read-only: CMD's writes go to an upper layer in guest memory. */
	l = cJSON_CreateObject();
	cJSON_AddStringToObject(l, "path", guest_root);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(b, "layers"), l);
	return b;
}
