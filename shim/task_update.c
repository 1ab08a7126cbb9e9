/*
 * Update: the Linux resources containerd sends (an OCI linux.resources
 * object as JSON in an Any) applied to the container in the guest with the
 * control protocol's container.update (crun update in the guest).
 *
 * What the guest applies: memory.limit, cpu.shares (as cgroup v2's
 * cpu.weight), cpu.quota with cpu.period, pids.limit. A field left at its
 * zero value means "not set" (as containerd sends it); any other field with
 * a value is refused, UNIMPLEMENTED naming it, rather than dropped.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shim/proto/task.pb-c.h"
#include "shim/task_priv.h"

#define UNPACK(call, type, desc) ((type *)ttrpc_call_unpack(call, &desc))

/* The Any's type: containerd's typeurl for the runtime spec's LinuxResources. */
#define RESOURCES_TYPE_SUFFIX "/LinuxResources"
/* Limits container.update takes (docs/protocol.md). */
#define MIN_MEMORY    (1u << 20)
#define MAX_EXACT     0x1p53
#define MIN_CPU_QUOTA 1000
#define MAX_CPU_QUOTA 0x1p40
#define MIN_PERIOD    1000
#define MAX_PERIOD    1000000
#define MAX_PIDS      4194304
/* cgroup v1's cpu.shares range, which cpu.weight's 1..10000 maps from. */
#define MIN_SHARES 2
#define MAX_SHARES 262144

/* A value that sets nothing: null, false, 0, "", or an array/object of such. */
static bool unset(const cJSON *v)
{
	const cJSON *c;

	if (cJSON_IsNull(v) || cJSON_IsFalse(v))
		return true;
	if (cJSON_IsNumber(v))
		return v->valuedouble == 0;
	if (cJSON_IsString(v))
		return !v->valuestring[0];
	if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		cJSON_ArrayForEach(c, v) if (!unset(c)) return false;
		return true;
	}
	return false;
}

/* Refuses the first member of o with a value that is not in known (NULL-terminated). */
static int only(const cJSON *o, const char *group, const char *const *known, char *err,
		size_t errlen)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, o)
	{
		const char *const *k = known;

		while (*k && strcmp(*k, c->string))
			k++;
		if (!*k && !unset(c)) {
			snprintf(err, errlen,
				 "linux resources: %s%s%.64s is not supported by uvm-shim", group,
				 group[0] ? "." : "", c->string);
			return TTRPC_UNIMPLEMENTED;
		}
	}
	return 0;
}

/* Finite and whole (no libm: every double of 2^53 or more is whole). */
static bool is_whole(double x)
{
	double a = x < 0 ? -x : x;

	if (!(a <= 0x1p64))
		return false; /* NaN, infinities, beyond any limit */
	return a >= 0x1p53 || a == (double)(int64_t)a;
}

/*
 * o.key as a whole number: 0 and absent leave *out at 0; a negative value
 * ("no limit" in OCI) and values outside [min, max] are refused.
 */
static int whole(const cJSON *o, const char *group, const char *key, double min, double max,
		 double *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !is_whole(v->valuedouble)) {
		snprintf(err, errlen, "linux resources: %s.%s: expected a whole number", group,
			 key);
		return TTRPC_INVALID_ARGUMENT;
	}
	if (v->valuedouble == 0)
		return 0;
	if (v->valuedouble < 0) {
		snprintf(err, errlen,
			 "linux resources: %s.%s: no limit (a negative value) is not supported",
			 group, key);
		return TTRPC_UNIMPLEMENTED;
	}
	if (v->valuedouble < min || v->valuedouble > max) {
		snprintf(err, errlen, "linux resources: %s.%s: expected %.0f..%.0f", group, key,
			 min, max);
		return TTRPC_INVALID_ARGUMENT;
	}
	*out = v->valuedouble;
	return 0;
}

/* The group's object, NULL when absent or null; -1 when it is not an object. */
static int group_of(const cJSON *res, const char *name, const cJSON **out, char *err, size_t errlen)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(res, name);

	*out = NULL;
	if (!g || cJSON_IsNull(g))
		return 0;
	if (!cJSON_IsObject(g)) {
		snprintf(err, errlen, "linux resources: %s: expected an object", name);
		return TTRPC_INVALID_ARGUMENT;
	}
	*out = g;
	return 0;
}

static int cpu_params(const cJSON *cpu, cJSON *p, char *err, size_t errlen)
{
	static const char *const known[] = {"shares", "quota", "period", NULL};
	double shares, quota, period;
	int ret;

	if ((ret = only(cpu, "cpu", known, err, errlen)) ||
	    (ret = whole(cpu, "cpu", "shares", 1, 0x1p64, &shares, err, errlen)) ||
	    (ret = whole(cpu, "cpu", "quota", MIN_CPU_QUOTA, MAX_CPU_QUOTA, &quota, err, errlen)) ||
	    (ret = whole(cpu, "cpu", "period", MIN_PERIOD, MAX_PERIOD, &period, err, errlen)))
		return ret;
	if (shares) {
		/* cgroup v2 has cpu.weight 1..10000 where v1 had shares 2..262144: linear. */
		uint64_t sh = shares < MIN_SHARES   ? MIN_SHARES
			      : shares > MAX_SHARES ? MAX_SHARES
						    : (uint64_t)shares;

		cJSON_AddNumberToObject(p, "cpu_weight",
					1 + (sh - MIN_SHARES) * 9999 / (MAX_SHARES - MIN_SHARES));
	}
	if (period && !quota) {
		snprintf(err, errlen,
			 "linux resources: cpu.period without cpu.quota is not supported by "
			 "uvm-shim");
		return TTRPC_UNIMPLEMENTED;
	}
	if (quota) {
		cJSON_AddNumberToObject(p, "cpu_quota", quota);
		if (period)
			cJSON_AddNumberToObject(p, "cpu_period", period);
	}
	return 0;
}

int task_update_params(const cJSON *res, cJSON **out, char *err, size_t errlen)
{
	static const char *const known[] = {"memory", "cpu", "pids", NULL};
	static const char *const mem_known[] = {"limit", NULL};
	static const char *const pids_known[] = {"limit", NULL};
	const cJSON *mem, *cpu, *pids;
	cJSON *p;
	double v;
	int ret;

	*out = NULL;
	if (!cJSON_IsObject(res)) {
		snprintf(err, errlen, "linux resources: expected a JSON object");
		return TTRPC_INVALID_ARGUMENT;
	}
	if ((ret = only(res, "", known, err, errlen)) ||
	    (ret = group_of(res, "memory", &mem, err, errlen)) ||
	    (ret = group_of(res, "cpu", &cpu, err, errlen)) ||
	    (ret = group_of(res, "pids", &pids, err, errlen)))
		return ret;
	p = cJSON_CreateObject();
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return TTRPC_INTERNAL;
	}
	if (mem && ((ret = only(mem, "memory", mem_known, err, errlen)) ||
		    (ret = whole(mem, "memory", "limit", MIN_MEMORY, MAX_EXACT, &v, err, errlen))))
		goto fail;
	if (mem && v)
		cJSON_AddNumberToObject(p, "memory", v);
	if (cpu && (ret = cpu_params(cpu, p, err, errlen)))
		goto fail;
	if (pids && ((ret = only(pids, "pids", pids_known, err, errlen)) ||
		     (ret = whole(pids, "pids", "limit", 1, MAX_PIDS, &v, err, errlen))))
		goto fail;
	if (pids && v)
		cJSON_AddNumberToObject(p, "pids", v);
	if (!p->child) {
		cJSON_Delete(p);
		return 0;
	}
	*out = p;
	return 0;
fail:
	cJSON_Delete(p);
	return ret;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

void task_update(void *opaque, struct ttrpc_call *call)
{
	struct taskd *d = opaque;
	Uvm__Ctrd__UpdateTaskRequest *q =
	    UNPACK(call, Uvm__Ctrd__UpdateTaskRequest, uvm__ctrd__update_task_request__descriptor);
	cJSON *res = NULL, *params = NULL;
	struct task *t;
	char err[256];
	int code;

	if (!q)
		return;
	t = task_named(d, call, q->id);
	if (!t || task_refuse_paused(t, call, "Update"))
		goto out;
	if (t->creating || task_init_proc(t)->status == TASK_STOPPED || t->deleting) {
		ttrpc_reply_error(call, TTRPC_FAILED_PRECONDITION,
				  "task %.80s has no live container to update", q->id);
		goto out;
	}
	/* Annotations alone (field 3, not decoded): nothing for the guest to apply. */
	if (!q->resources) {
		ttrpc_reply(call, NULL);
		goto out;
	}
	if (!q->resources->type_url || !ends_with(q->resources->type_url, RESOURCES_TYPE_SUFFIX)) {
		ttrpc_reply_error(
		    call, TTRPC_INVALID_ARGUMENT,
		    "resources: expected the runtime spec's LinuxResources, not %.80s",
		    q->resources->type_url ? q->resources->type_url : "");
		goto out;
	}
	res =
	    cJSON_ParseWithLength((const char *)q->resources->value.data, q->resources->value.len);
	code = task_update_params(res, &params, err, sizeof(err));
	if (code) {
		ttrpc_reply_error(call, code, "%s", err);
	} else if (!params) {
		ttrpc_reply(call, NULL);
	} else {
		cJSON_AddStringToObject(params, "id", t->id);
		task_ctl_call(d, "container.update", params, task_reply_plain, call);
	}
out:
	cJSON_Delete(res);
	protobuf_c_message_free_unpacked(&q->base, NULL);
}
