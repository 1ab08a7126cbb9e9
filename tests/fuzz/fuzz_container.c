/*
 * The container manager's readers of guest bodies (shim/container_parse.c):
 * container_exited, container_oom and the stats answer. The input is a
 * script that builds a JSON object from the fields those readers look for
 * (numbers at and past every bound, strings, wrong types, nesting), so the
 * fuzzer reaches the checks instead of stopping at JSON syntax. Whatever the
 * readers accept must be in range; nothing may crash or leak.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "shim/container.h"
#include "tests/fuzz/fuzz_input.h"

static const char *const keys[] = {"id",	  "pid",    "exit_code", "signal",     "oom_killed",
				   "oom_kills",	  "memory", "cpu",	 "pids",       "io",
				   "current",	  "max",    "peak",	 "usage_usec", "user_usec",
				   "system_usec", "rbytes", "wbytes",	 "rios",       "wios",
				   "status",	  "state"};

static const double numbers[] = {0,
				 1,
				 -1,
				 -2,
				 -3,
				 9,
				 64,
				 65,
				 255,
				 383,
				 384,
				 0.5,
				 1e300,
				 -1e300,
				 2147483647.0,
				 2147483648.0,
				 9007199254740992.0,
				 9007199254740994.0};

static cJSON *build(struct in *in, int depth)
{
	unsigned t = take(in) % 8;
	char s[CONTAINER_ID_MAX + 8];
	cJSON *o;

	switch (t) {
	case 0:
		return cJSON_CreateNumber(
		    numbers[take(in) % (sizeof(numbers) / sizeof(numbers[0]))]);
	case 1:
		return cJSON_CreateNumber((double)(int32_t)take32(in));
	case 2: {
		unsigned n = take(in) % sizeof(s);

		for (unsigned i = 0; i < n; i++)
			s[i] = "c1-._/ \n\xc3"
			       "a"[take(in) % 11];
		s[n] = '\0';
		return cJSON_CreateString(s);
	}
	case 3:
		return cJSON_CreateBool(take(in) & 1);
	case 4:
		return cJSON_CreateNull();
	case 5:
		if (depth < 3) {
			o = cJSON_CreateArray();
			for (unsigned n = take(in) % 4; n; n--)
				cJSON_AddItemToArray(o, build(in, depth + 1));
			return o;
		}
		return cJSON_CreateNull();
	default:
		if (depth >= 3)
			return cJSON_CreateNumber(NAN);
		o = cJSON_CreateObject();
		for (unsigned n = take(in) % 12; n; n--)
			cJSON_AddItemToObject(o, keys[take(in) % (sizeof(keys) / sizeof(keys[0]))],
					      build(in, depth + 1));
		return o;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	char id[CONTAINER_ID_MAX + 1];
	struct ctr_exit x;
	uint64_t kills;
	cJSON *body, *r;

	/* First byte: raw JSON text (odd) or a built object. */
	if (take(&in) & 1) {
		body = cJSON_ParseWithLength((const char *)in.p, in.n);
	} else {
		body = cJSON_CreateObject();
		while (in.n)
			cJSON_AddItemToObject(body,
					      keys[take(&in) % (sizeof(keys) / sizeof(keys[0]))],
					      build(&in, 1));
	}
	if (!body)
		return 0;
	if (container_parse_exit(body, &x) == 0) {
		if (x.pid < 1 || x.signal < 0 || x.signal > 64 || x.exit_code < -1 ||
		    x.exit_code > 383 || !container_id_valid(x.id))
			abort();
	}
	if (container_parse_oom(body, id, &kills) == 0 &&
	    (!container_id_valid(id) || kills > (1ULL << 53)))
		abort();
	r = container_stats_result(body);
	if (r) {
		char *text = cJSON_PrintUnformatted(r);

		if (!text || strlen(text) > 1024)
			abort();
		cJSON_free(text);
		cJSON_Delete(r);
	}
	cJSON_Delete(body);
	return 0;
}
