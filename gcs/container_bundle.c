/*
 * A container's bundle and crun (container.h): config.json written from the
 * host's spec, crun run to completion with its log in the container's
 * directory (so its errors reach the host and never the container's
 * stderr), the console socket crun hands a terminal's master through, and
 * crun's pid file.
 */
#include "gcs/container.h"
#include "gcs/bridge.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CRUN /* unit tests run a fake */
#define CRUN "/usr/bin/crun"
#endif
#define CRUN_MAX_ARGS 32
/*
 * crun guards against CVE-2019-5736 (a container overwriting the runtime's
 * binary through /proc/self/exe) by binding itself read-only onto a
 * temporary file and executing that: two execs and two dynamic loads on
 * every run. It skips that when its binary already sits on a read-only
 * mount (crun 1.8.1: one execve instead of two under strace), so the agent
 * makes that mount once.
 */
int gcs_crun_seal(void)
{
	if (mount(CRUN, CRUN, NULL, MS_BIND, NULL))
		return -errno;
	if (mount(NULL, CRUN, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)) {
		int err = -errno;

		umount2(CRUN, MNT_DETACH);
		return err;
	}
	return 0;
}

bool gcs_ctr_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 1 || n > GCS_CTR_ID_MAX || !isalnum((unsigned char)id[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-", id[i]))
			return false;
	return true;
}

/* Sets o[k] to v (consumed), replacing what was there. */
static void set_item(cJSON *o, const char *k, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(o, k))
		cJSON_ReplaceItemInObjectCaseSensitive(o, k, v);
	else
		cJSON_AddItemToObject(o, k, v);
}

/* o[k] as an object, made when absent; NULL when it is something else. */
static cJSON *object_at(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!v)
		v = cJSON_AddObjectToObject(o, k);
	return cJSON_IsObject(v) ? v : NULL;
}

int gcs_bundle_write(const char *dir, const char *id, const cJSON *spec, char *err, size_t errlen)
{
	char path[PATH_MAX], cg[GCS_CTR_ID_MAX + 32];
	const cJSON *proc, *args;
	cJSON *s = NULL, *root, *linux_;
	char *text = NULL;
	int fd = -1, ret = -EINVAL;

	if (!cJSON_IsObject(spec)) {
		snprintf(err, errlen, "spec: must be an OCI runtime spec object");
		return -EINVAL;
	}
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(spec, "ociVersion"))) {
		snprintf(err, errlen, "spec.ociVersion: missing (a string, \"1.0.2\")");
		return -EINVAL;
	}
	proc = cJSON_GetObjectItemCaseSensitive(spec, "process");
	args = cJSON_GetObjectItemCaseSensitive(proc, "args");
	if (!cJSON_IsObject(proc) || !cJSON_IsArray(args) || cJSON_GetArraySize(args) < 1 ||
	    !cJSON_IsString(cJSON_GetArrayItem(args, 0))) {
		snprintf(err, errlen, "spec.process.args: missing (a non-empty array of strings)");
		return -EINVAL;
	}
	s = cJSON_Duplicate(spec, 1);
	root = s ? object_at(s, "root") : NULL;
	linux_ = s ? object_at(s, "linux") : NULL;
	if (!root || !linux_) {
		snprintf(err, errlen, "spec.root and spec.linux: must be objects");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/rootfs", dir);
	set_item(root, "path", cJSON_CreateString(path));
	/* One place for every container's cgroup: stats and OOM read it there. */
	snprintf(cg, sizeof(cg), "%s/%s", GCS_CTR_CGROUP_REL, id);
	set_item(linux_, "cgroupsPath", cJSON_CreateString(cg));
	text = cJSON_PrintUnformatted(s);
	if (!text) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ret = fd < 0 ? -errno : gcs_write_all(fd, text, strlen(text));
	if (ret)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
out:
	if (fd >= 0)
		close(fd);
	free(text);
	cJSON_Delete(s);
	return ret;
}

int gcs_log_last_line(const char *path, char *out, size_t len)
{
	char buf[4096], *line, *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;
	off_t size;

	if (fd >= 0) {
		size = lseek(fd, 0, SEEK_END);
		lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0,
		      SEEK_SET);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	end = buf + n;
	while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (!*line)
		return -ENOENT;
	for (char *c = line; *c; c++)
		if (!isprint((unsigned char)*c))
			*c = '?';
	snprintf(out, len, "%s", line);
	return 0;
}

/* The last non-empty line of crun's log (its error). */
static void crun_message(const char *log, char *err, size_t errlen)
{
	char line[GCS_CTR_ERRLEN];

	/* text format: "2026-..T..Z: error msg" or "level msg"; kept whole but short */
	if (gcs_log_last_line(log, line, sizeof(line)))
		return;
	if (snprintf(err, errlen, "crun: %s", line) >= (int)errlen)
		return; /* cut: its start says what failed */
}

pid_t gcs_tool_spawn(const char *path, const char *const *argv, const int fds[3], char *err,
		     size_t errlen)
{
	pid_t pid = fork();

	if (pid < 0) {
		snprintf(err, errlen, "fork %s: %s", path, strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC), tmp[3];

		gcs_child_reset_signals();
		/* Into fresh numbers first: a target fd may be another's source. */
		for (int i = 0; i < 3; i++)
			tmp[i] = fcntl(fds && fds[i] >= 0 ? fds[i] : nullfd, F_DUPFD_CLOEXEC, 10);
		for (int i = 0; i < 3; i++)
			dup2(tmp[i], i);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

pid_t gcs_crun_spawn(const char *dir, const int fds[3], const char *const *args, char *err,
		     size_t errlen)
{
	char log[PATH_MAX], logarg[PATH_MAX + 16];
	const char *argv[CRUN_MAX_ARGS + 4];
	int n = 0;

	snprintf(log, sizeof(log), "%s/crun.log", dir);
	snprintf(logarg, sizeof(logarg), "--log=file:%s", log);
	argv[n++] = CRUN;
	argv[n++] = logarg;
	for (int i = 0; args[i]; i++) {
		if (n >= CRUN_MAX_ARGS + 2) {
			snprintf(err, errlen, "crun: too many arguments");
			return -E2BIG;
		}
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	unlink(log);
	return gcs_tool_spawn(CRUN, argv, fds, err, errlen);
}

int gcs_crun_result(const char *dir, const char *verb, int status, char *err, size_t errlen)
{
	char log[PATH_MAX];

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(err, errlen, "crun %s failed (%d)", verb, gcs_exit_code(status));
	if (snprintf(log, sizeof(log), "%s/crun.log", dir) < (int)sizeof(log))
		crun_message(log, err, errlen);
	return -EIO;
}

int gcs_console_listen(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

int gcs_console_take(int lfd)
{
	char cbuf[CMSG_SPACE(sizeof(int))], byte[256];
	struct iovec iov = {.iov_base = byte, .iov_len = sizeof(byte)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), fd = -EPROTO;
	ssize_t n;

	if (cfd < 0)
		return -errno;
	n = recvmsg(cfd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		fd = -errno;
	for (c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	close(cfd);
	return fd;
}

pid_t gcs_pidfile_read(const char *path)
{
	char buf[32];
	long v;
	char *end;
	int ret = gcs_read_line(path, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || v < 1 || v > INT32_MAX)
		return -EPROTO;
	return (pid_t)v;
}

void gcs_ctr_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		/* Only what we made: files and empty directories (a mount point left busy stays).
		 */
		if (unlink(p) < 0 && (errno == EISDIR || errno == EPERM))
			rmdir(p);
	}
	closedir(d);
	if (rmdir(dir) < 0)
		gcs_log_errno("remove %s", dir);
}
