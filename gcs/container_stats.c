/*
 * Figures from a container's cgroup (container.h): memory, OOM kills, CPU,
 * pids and io, read from the cgroup2 files crun's cgroup has.
 */
#include "gcs/container.h"
#include "gcs/gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A whole small cgroup file into buf (NUL-terminated): bytes read or -errno. */
static ssize_t cg_read(const char *id, const char *file, char *buf, size_t len)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s/%s", GCS_CTR_CGROUP, id, file);
	return gcs_read_file(p, buf, len);
}

/* A one-number file ("max" is -1); -2 when it cannot be read. */
static long long cg_num(const char *id, const char *file)
{
	char buf[64];

	if (cg_read(id, file, buf, sizeof(buf)) <= 0)
		return -2;
	if (!strncmp(buf, "max", 3))
		return -1;
	return strtoll(buf, NULL, 10);
}

/* key's value in a "key value" per line file (memory.events, cpu.stat); -1 when absent. */
static long long cg_key(const char *id, const char *file, const char *key)
{
	char buf[4096], *line, *save = NULL;
	size_t klen = strlen(key);

	if (cg_read(id, file, buf, sizeof(buf)) <= 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!strncmp(line, key, klen) && line[klen] == ' ')
			return strtoll(line + klen + 1, NULL, 10);
	return -1;
}

void gcs_ctr_events_path(const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/memory.events", GCS_CTR_CGROUP, id);
}

long long gcs_ctr_oom_kills(const char *id)
{
	return cg_key(id, "memory.events", "oom_kill");
}

/* Sums rbytes, wbytes, rios, wios over io.stat's devices into o. */
static void io_sums(const char *id, cJSON *o)
{
	static const char *const keys[] = {"rbytes", "wbytes", "rios", "wios"};
	long long sum[4] = {0, 0, 0, 0};
	char buf[8192], *tok, *save = NULL;

	if (cg_read(id, "io.stat", buf, sizeof(buf)) >= 0)
		for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
			for (int i = 0; i < 4; i++) {
				size_t k = strlen(keys[i]);

				if (!strncmp(tok, keys[i], k) && tok[k] == '=')
					sum[i] += strtoll(tok + k + 1, NULL, 10);
			}
	for (int i = 0; i < 4; i++)
		cJSON_AddNumberToObject(o, keys[i], sum[i]);
}

cJSON *gcs_ctr_stats(const char *id)
{
	long long cur = cg_num(id, "memory.current");
	cJSON *b, *m, *c, *p;

	if (cur == -2)
		return NULL;
	b = cJSON_CreateObject();
	m = cJSON_AddObjectToObject(b, "memory");
	cJSON_AddNumberToObject(m, "current", cur);
	cJSON_AddNumberToObject(m, "max", cg_num(id, "memory.max"));
	cJSON_AddNumberToObject(m, "peak", cg_num(id, "memory.peak")); /* -2: kernel < 5.19 */
	cJSON_AddNumberToObject(m, "oom_kills", gcs_ctr_oom_kills(id));
	c = cJSON_AddObjectToObject(b, "cpu");
	cJSON_AddNumberToObject(c, "usage_usec", cg_key(id, "cpu.stat", "usage_usec"));
	cJSON_AddNumberToObject(c, "user_usec", cg_key(id, "cpu.stat", "user_usec"));
	cJSON_AddNumberToObject(c, "system_usec", cg_key(id, "cpu.stat", "system_usec"));
	p = cJSON_AddObjectToObject(b, "pids");
	cJSON_AddNumberToObject(p, "current", cg_num(id, "pids.current"));
	cJSON_AddNumberToObject(p, "max", cg_num(id, "pids.max"));
	io_sums(id, cJSON_AddObjectToObject(b, "io"));
	return b;
}
