/*
 * Runtime options (CreateTaskRequest.options) and the config file they
 * name. containerd passes the options through untouched from `ctr run
 * --runtime-config-path` or from the CRI runtime's `options` table, so what
 * arrives is whatever a containerd client put there: checked, never trusted.
 */
#include "shim/task_options.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/proto/runtimeoptions.pb-c.h"
#include "shim/ttrpc.h"

/* type_url is TASK_OPTIONS_TYPE, or ends in "/" TASK_OPTIONS_TYPE (type.googleapis.com/...). */
static bool options_type(const char *url)
{
	size_t n = strlen(url), t = strlen(TASK_OPTIONS_TYPE);

	if (n < t || strcmp(url + n - t, TASK_OPTIONS_TYPE))
		return false;
	return n == t || url[n - t - 1] == '/';
}

int task_options_config_path(const Uvm__Ctrd__Any *opts, char **path, char *err, size_t errlen)
{
	Uvm__Ctrd__RuntimeOptions *o;
	const char *url;
	int ret = TTRPC_INVALID_ARGUMENT;

	*path = NULL;
	if (!opts)
		return 0;
	url = opts->type_url ? opts->type_url : "";
	if (!url[0] && !opts->value.len)
		return 0; /* an empty Any: no options */
	if (!options_type(url)) {
		snprintf(err, errlen,
			 "options: type \"%.100s\" is not %s (uvm-shim takes a config_path only)",
			 url, TASK_OPTIONS_TYPE);
		return ret;
	}
	o = uvm__ctrd__runtime_options__unpack(NULL, opts->value.len, opts->value.data);
	if (!o) {
		snprintf(err, errlen, "options: %zu bytes that are not a valid %s", opts->value.len,
			 TASK_OPTIONS_TYPE);
		return ret;
	}
	/*
	 * protobuf-c stops a string at its first NUL and keeps the last of repeated
	 * fields: a message that packs to another length said something else than
	 * what we read. (Unknown fields, containerd 1.7's config_body, are kept and
	 * packed again.)
	 */
	if (uvm__ctrd__runtime_options__get_packed_size(o) != opts->value.len) {
		snprintf(err, errlen,
			 "options: %s with a NUL byte inside a string or a field given twice",
			 TASK_OPTIONS_TYPE);
		goto out;
	}
	if (!o->config_path[0]) {
		ret = 0; /* the default file */
		goto out;
	}
	if (o->config_path[0] != '/') {
		snprintf(err, errlen, "options: config_path \"%.200s\" is not an absolute path",
			 o->config_path);
		goto out;
	}
	if (strlen(o->config_path) >= PATH_MAX) {
		snprintf(err, errlen, "options: config_path of %zu bytes (at most %d)",
			 strlen(o->config_path), PATH_MAX - 1);
		goto out;
	}
	*path = strdup(o->config_path);
	if (!*path) {
		snprintf(err, errlen, "options: out of memory");
		ret = TTRPC_INTERNAL;
		goto out;
	}
	ret = 0;
out:
	uvm__ctrd__runtime_options__free_unpacked(o, NULL);
	return ret;
}

int task_config_load(const char *path, cJSON **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	cJSON *c = NULL;
	const cJSON *t;
	ssize_t n = 0;
	int fd, ret;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "config file %.300s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "config file %.300s: not a regular file", path);
		ret = -EINVAL;
		goto out;
	}
	if (st.st_size > TASK_CONFIG_MAX) {
		snprintf(err, errlen, "config file %.300s: over %u KiB", path,
			 TASK_CONFIG_MAX >> 10);
		ret = -EFBIG;
		goto out;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "config file %.300s: out of memory", path);
		ret = -ENOMEM;
		goto out;
	}
	/* One read past the size: a file that grew since fstat is refused, not cut. */
	while (n <= st.st_size) {
		ssize_t k = read(fd, buf + n, st.st_size + 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ret = -errno;
			snprintf(err, errlen, "config file %.300s: %s", path, strerror(-ret));
			goto out;
		}
		if (!k)
			break;
		n += k;
	}
	if (n > st.st_size) {
		snprintf(err, errlen, "config file %.300s: changed while read", path);
		ret = -EINVAL;
		goto out;
	}
	if (memchr(buf, 0, n)) {
		snprintf(err, errlen, "config file %.300s: holds a NUL byte", path);
		ret = -EINVAL;
		goto out;
	}
	/* The whole file: nothing but white space after the object. */
	buf[n] = 0;
	c = cJSON_ParseWithLengthOpts(buf, n + 1, NULL, true);
	if (!cJSON_IsObject(c)) {
		snprintf(err, errlen, "config file %.300s: not a JSON object (vm.create's params)",
			 path);
		ret = -EINVAL;
		goto out;
	}
	t = cJSON_GetObjectItemCaseSensitive(c, "start_timeout_ms");
	if (t && !(cJSON_IsNumber(t) && t->valuedouble >= 1 &&
		   t->valuedouble <= TASK_START_TIMEOUT_MAX &&
		   t->valuedouble == (double)(long)t->valuedouble)) {
		snprintf(err, errlen,
			 "config file %.300s: start_timeout_ms: expected an integer 1..%d", path,
			 TASK_START_TIMEOUT_MAX);
		ret = -EINVAL;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	cJSON_Delete(c);
	free(buf);
	close(fd);
	return ret;
}
