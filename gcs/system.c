/* The guest's state for the host: properties (processes, memory) and dump_stacks. */
#include "gcs/bridge.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dump_stacks: how long the loop waits for the threads' answers (twice at most). */
#define GCS_STACKS_TIMEOUT_MS 1000

static long meminfo_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

void gcs_system_properties(uint32_t type, uint64_t id, const cJSON *req)
{
	cJSON *b = cJSON_CreateObject(), *procs = cJSON_AddArrayToObject(b, "processes");
	DIR *d = opendir("/proc");
	struct dirent *de;
	char buf[4096];
	long page_kib = sysconf(_SC_PAGESIZE) / 1024;
	int fd;

	while (d && (de = readdir(d))) {
		char path[300], comm[64] = "", state;
		int ppid = 0;
		long rss = 0;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		/* pid (comm) state ppid ... field 24 is rss in pages */
		if (fscanf(f,
			   "%*d (%63[^)]) %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
			   "%*d %*d %*d %*d %*d %*u %*u %ld",
			   comm, &state, &ppid, &rss) >= 3) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddNumberToObject(e, "pid", atoi(de->d_name));
			cJSON_AddNumberToObject(e, "ppid", ppid);
			cJSON_AddStringToObject(e, "name", comm);
			cJSON_AddNumberToObject(e, "rss_kib", rss * page_kib);
			cJSON_AddItemToArray(procs, e);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		cJSON *m = cJSON_AddObjectToObject(b, "memory");

		close(fd);
		buf[n > 0 ? n : 0] = 0;
		cJSON_AddNumberToObject(m, "total_kib", meminfo_kib(buf, "MemTotal:"));
		cJSON_AddNumberToObject(m, "free_kib", meminfo_kib(buf, "MemFree:"));
		cJSON_AddNumberToObject(m, "available_kib", meminfo_kib(buf, "MemAvailable:"));
	}
	gcs_bridge_respond(type, id, 0, b, NULL);
}

/*
 * Every thread of the bridge process: this one (the loop) and the storage
 * workers (stacks.c). The loop waits for the answers, at most
 * GCS_STACKS_TIMEOUT_MS twice; a worker stuck in the kernel costs that.
 */
void gcs_system_dump_stacks(uint32_t type, uint64_t id, const cJSON *req)
{
	char *text = gcs_stacks_dump(GCS_STACKS_TIMEOUT_MS);
	cJSON *b;

	if (!text) {
		gcs_bridge_respond(type, id, -EIO, NULL,
				   "dump_stacks: no stack handler, or /proc/self/task unreadable");
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "stacks", text);
	free(text);
	gcs_bridge_respond(type, id, 0, b, NULL);
}
