/*
 * The container manager's pure parts (container.h): the parent's params,
 * and what the guest sends back, which is checked field by field and never
 * passed on as it came.
 */
#include "shim/container.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "shim/scsi.h"
#include "shim/vpmem.h"

bool container_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 1 || n > CONTAINER_ID_MAX || !isalnum((unsigned char)id[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-", id[i]))
			return false;
	return true;
}

const char *container_state_name(enum ctr_state s)
{
	static const char *const names[] = {"creating", "created", "starting",
					    "running",	"stopped", "deleting"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- the parent's params ------------------------------------------------------------- */

/* A whole number o[k] in [min, max]; absent: -ENOENT. */
static int num_in(const cJSON *o, const char *k, double min, double max, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!v)
		return -ENOENT;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max) ||
	    v->valuedouble != floor(v->valuedouble))
		return -EINVAL;
	*out = (uint64_t)v->valuedouble;
	return 0;
}

/* One reference: {"vpmem":N} | {"scsi":{"controller":C,"lun":L}} | {"path":"/dir"}. */
static int parse_ref(const cJSON *e, const char *what, struct ctr_ref *r, char err[CTL_ERRLEN])
{
	const cJSON *scsi = cJSON_GetObjectItemCaseSensitive(e, "scsi");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
	uint64_t v, c, l;
	int kinds;

	if (!cJSON_IsObject(e)) {
		snprintf(err, CTL_ERRLEN, "params.%s: must be an object (vpmem, scsi or path)",
			 what);
		return -EINVAL;
	}
	kinds = !!cJSON_GetObjectItemCaseSensitive(e, "vpmem") + !!scsi + !!path;
	if (kinds != 1) {
		snprintf(err, CTL_ERRLEN, "params.%s: exactly one of vpmem, scsi, path", what);
		return -EINVAL;
	}
	if (path) {
		if (!cJSON_IsString(path) || path->valuestring[0] != '/' ||
		    strlen(path->valuestring) >= 1024 || strpbrk(path->valuestring, ":,\\") ||
		    strstr(path->valuestring, "/..")) {
			snprintf(err, CTL_ERRLEN,
				 "params.%s.path: an absolute guest path without .., ':' or ','",
				 what);
			return -EINVAL;
		}
		*r = (struct ctr_ref){.kind = CTR_REF_PATH, .path = path->valuestring};
		return 0;
	}
	if (scsi) {
		if (num_in(scsi, "controller", 0, SCSI_MAX_CONTROLLERS - 1, &c) ||
		    num_in(scsi, "lun", 0, SCSI_MAX_LUNS - 1, &l)) {
			snprintf(err, CTL_ERRLEN,
				 "params.%s.scsi: {\"controller\": 0..%d, \"lun\": 0..%d}", what,
				 SCSI_MAX_CONTROLLERS - 1, SCSI_MAX_LUNS - 1);
			return -EINVAL;
		}
		*r = (struct ctr_ref){.kind = CTR_REF_SCSI, .controller = c, .lun = l};
		return 0;
	}
	if (num_in(e, "vpmem", 0, VPMEM_MAX_COUNT - 1, &v)) {
		snprintf(err, CTL_ERRLEN, "params.%s.vpmem: a device number, 0..%d", what,
			 VPMEM_MAX_COUNT - 1);
		return -EINVAL;
	}
	*r = (struct ctr_ref){.kind = CTR_REF_VPMEM, .number = v};
	return 0;
}

/* A relative path inside a share: plain components, none "." or "..", nothing overlay splits on. */
static bool subdir_valid(const char *p)
{
	size_t n = strlen(p);

	if (n < 1 || n >= 512 || p[0] == '/' || strpbrk(p, ":,\\"))
		return false;
	for (const char *c = p; *c; c++)
		if (!isprint((unsigned char)*c))
			return false;
	for (const char *c = p; *c;) {
		size_t len = strcspn(c, "/");

		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && !strncmp(c, "..", 2)))
			return false;
		c += len;
		if (*c == '/')
			c++; /* a trailing '/' is allowed */
	}
	return true;
}

/* root.plan9 and root.subdir into out. */
static int parse_plan9_root(const cJSON *root, struct ctr_root *out, char err[CTL_ERRLEN])
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "plan9");
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, "subdir");

	if (!cJSON_IsString(name) || !plan9_name_valid(name->valuestring)) {
		snprintf(err, CTL_ERRLEN, "params.root.plan9: the name of a plan9.add share");
		return -EINVAL;
	}
	out->plan9 = name->valuestring;
	if (sub && !cJSON_IsNull(sub)) {
		if (!cJSON_IsString(sub) || !subdir_valid(sub->valuestring)) {
			snprintf(err, CTL_ERRLEN,
				 "params.root.subdir: a relative path in the share, without "
				 "., .., ':' or ','");
			return -EINVAL;
		}
		out->subdir = sub->valuestring;
	}
	return 0;
}

int container_parse_root(const cJSON *root, struct ctr_root *out, char err[CTL_ERRLEN])
{
	const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
	const cJSON *scratch = cJSON_GetObjectItemCaseSensitive(root, "scratch");
	const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
	const cJSON *e;
	char what[64];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root)) {
		snprintf(err, CTL_ERRLEN, "params.root: required, an object with layers or plan9");
		return -EINVAL;
	}
	if (cJSON_GetObjectItemCaseSensitive(root, "plan9")) {
		if (layers) {
			snprintf(err, CTL_ERRLEN, "params.root: layers or plan9, not both");
			return -EINVAL;
		}
		ret = parse_plan9_root(root, out, err);
		if (ret)
			return ret;
	} else if (cJSON_GetObjectItemCaseSensitive(root, "subdir")) {
		snprintf(err, CTL_ERRLEN, "params.root.subdir: only with plan9");
		return -EINVAL;
	} else if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1 ||
		   cJSON_GetArraySize(layers) > CONTAINER_MAX_LAYERS) {
		snprintf(err, CTL_ERRLEN,
			 "params.root.layers: an array of 1..%d layers (top first), or "
			 "params.root.plan9: a share",
			 CONTAINER_MAX_LAYERS);
		return -EINVAL;
	}
	if (out->plan9)
		layers = NULL;
	cJSON_ArrayForEach(e, layers)
	{
		snprintf(what, sizeof(what), "root.layers[%u]", out->nr_layers);
		ret = parse_ref(e, what, &out->layers[out->nr_layers], err);
		if (ret)
			return ret;
		out->nr_layers++;
	}
	if (format && !cJSON_IsBool(format)) {
		snprintf(err, CTL_ERRLEN, "params.root.format: true or false");
		return -EINVAL;
	}
	out->format = cJSON_IsTrue(format);
	if (scratch && !cJSON_IsNull(scratch)) {
		ret = parse_ref(scratch, "root.scratch", &out->scratch, err);
		if (ret)
			return ret;
		if (out->scratch.kind == CTR_REF_VPMEM) {
			snprintf(err, CTL_ERRLEN,
				 "params.root.scratch: a SCSI disk or a guest path");
			return -EINVAL;
		}
		out->has_scratch = true;
	}
	if (out->format && (!out->has_scratch || out->scratch.kind != CTR_REF_SCSI)) {
		snprintf(err, CTL_ERRLEN, "params.root.format: only for a scratch SCSI disk");
		return -EINVAL;
	}
	return 0;
}

int container_parse_spec(const cJSON *params, cJSON **out, char err[CTL_ERRLEN])
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(params, "spec");
	const char *end = NULL;

	*out = NULL;
	if (cJSON_IsObject(spec)) {
		*out = cJSON_Duplicate(spec, 1);
	} else if (cJSON_IsString(spec)) {
		*out = cJSON_ParseWithOpts(spec->valuestring, &end, 1);
		if (!cJSON_IsObject(*out)) {
			size_t at =
			    end && end >= spec->valuestring ? (size_t)(end - spec->valuestring) : 0;

			cJSON_Delete(*out);
			*out = NULL;
			snprintf(err, CTL_ERRLEN, "params.spec: not a JSON object (at byte %zu)",
				 at);
			return -EINVAL;
		}
	} else {
		snprintf(err, CTL_ERRLEN,
			 "params.spec: required, an OCI runtime spec (object or "
			 "JSON text)");
		return -EINVAL;
	}
	if (!*out) {
		snprintf(err, CTL_ERRLEN, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int container_parse_update(const cJSON *params, cJSON **out, char err[CTL_ERRLEN])
{
	uint64_t mem, quota, period = 100000, weight, pids;
	cJSON *r = cJSON_CreateObject();
	int got = 0, ret;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	if ((ret = num_in(params, "memory", 1 << 20, 0x1p53, &mem)) != -ENOENT) {
		if (ret)
			goto bad_memory;
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(r, "memory"), "limit", mem);
		got++;
	}
	if ((ret = num_in(params, "cpu_period", 1000, 1000000, &period)) == -EINVAL) {
		snprintf(err, CTL_ERRLEN, "params.cpu_period: 1000..1000000 (us)");
		goto fail;
	}
	if ((ret = num_in(params, "cpu_quota", 1000, 0x1p40, &quota)) != -ENOENT) {
		cJSON *cpu;

		if (ret) {
			snprintf(err, CTL_ERRLEN, "params.cpu_quota: 1000.. (us per period)");
			goto fail;
		}
		cpu = cJSON_AddObjectToObject(r, "cpu");
		cJSON_AddNumberToObject(cpu, "quota", quota);
		cJSON_AddNumberToObject(cpu, "period", period);
		got++;
	}
	if ((ret = num_in(params, "cpu_weight", 1, 10000, &weight)) != -ENOENT) {
		char w[16];

		if (ret) {
			snprintf(err, CTL_ERRLEN, "params.cpu_weight: 1..10000");
			goto fail;
		}
		snprintf(w, sizeof(w), "%u", (unsigned)weight);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "unified"), "cpu.weight", w);
		got++;
	}
	if ((ret = num_in(params, "pids", 1, 4194304, &pids)) != -ENOENT) {
		if (ret) {
			snprintf(err, CTL_ERRLEN, "params.pids: 1..4194304 (a limit)");
			goto fail;
		}
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(r, "pids"), "limit", pids);
		got++;
	}
	if (!got) {
		snprintf(
		    err, CTL_ERRLEN,
		    "params: nothing to update (memory, cpu_quota/cpu_period, cpu_weight, pids)");
		goto fail;
	}
	*out = r;
	return 0;
bad_memory:
	snprintf(err, CTL_ERRLEN, "params.memory: a limit in bytes, at least 1 MiB");
fail:
	cJSON_Delete(r);
	return -EINVAL;
}

/* ---- what the guest sends ------------------------------------------------------------- */

/* A whole number in [min, max] (doubles checked before any cast). */
static bool guest_int(const cJSON *o, const char *k, double min, double max, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max) ||
	    v->valuedouble != floor(v->valuedouble))
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool guest_id(const cJSON *o, char id[CONTAINER_ID_MAX + 1])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");

	if (!cJSON_IsString(v) || !container_id_valid(v->valuestring))
		return false;
	memcpy(id, v->valuestring, strlen(v->valuestring) + 1);
	return true;
}

int container_parse_exit(const cJSON *body, struct ctr_exit *out)
{
	const cJSON *oom = cJSON_GetObjectItemCaseSensitive(body, "oom_killed");
	int64_t pid, code, sig;

	if (!cJSON_IsObject(body) || !guest_id(body, out->id) ||
	    !guest_int(body, "pid", 1, INT32_MAX, &pid) ||
	    !guest_int(body, "exit_code", -1, 255 + 128, &code) ||
	    !guest_int(body, "signal", 0, 64, &sig) || (oom && !cJSON_IsBool(oom)))
		return -EPROTO;
	out->pid = pid;
	out->exit_code = code;
	out->signal = sig;
	out->oom_killed = cJSON_IsTrue(oom);
	return 0;
}

int container_parse_oom(const cJSON *body, char id[CONTAINER_ID_MAX + 1], uint64_t *kills)
{
	int64_t k;

	if (!cJSON_IsObject(body) || !guest_id(body, id) ||
	    !guest_int(body, "oom_kills", 0, 0x1p53, &k))
		return -EPROTO;
	*kills = k;
	return 0;
}

/* Copies the figures of group g (keys) from the guest's body into r; false when malformed. */
static bool stats_group(const cJSON *body, cJSON *r, const char *g, const char *const *keys)
{
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(body, g);
	cJSON *dst;

	if (!cJSON_IsObject(src))
		return false;
	dst = cJSON_AddObjectToObject(r, g);
	for (; *keys; keys++) {
		int64_t v;

		if (!guest_int(src, *keys, -2, 0x1p53, &v))
			return false;
		cJSON_AddNumberToObject(dst, *keys, (double)v);
	}
	return true;
}

cJSON *container_stats_result(const cJSON *body)
{
	static const char *const mem[] = {"current", "max", "peak", "oom_kills", NULL};
	static const char *const cpu[] = {"usage_usec", "user_usec", "system_usec", NULL};
	static const char *const pids[] = {"current", "max", NULL};
	static const char *const io[] = {"rbytes", "wbytes", "rios", "wios", NULL};
	cJSON *r = cJSON_CreateObject();

	if (!r || !cJSON_IsObject(body) || !stats_group(body, r, "memory", mem) ||
	    !stats_group(body, r, "cpu", cpu) || !stats_group(body, r, "pids", pids) ||
	    !stats_group(body, r, "io", io)) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}
