/*
 * Fields of the host's requests (bridge.h): numbers range-checked as
 * doubles before any conversion, so no value the host sends reaches an
 * out-of-range cast (undefined behaviour).
 */
#include "gcs/bridge.h"

#include <errno.h>

int gcs_bridge_int(const cJSON *o, const char *k, long long min, long long max, long long def,
		   long long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	double d;

	if (!v || cJSON_IsNull(v)) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	/* Range first, as doubles (NaN fails too): no out-of-range value reaches a cast (UB).
	 * Beyond 2^53 a double holds no exact integer anyway. */
	if (!(d >= (double)min && d <= (double)max) || d < -0x1p53 || d > 0x1p53)
		return -EINVAL;
	if ((double)(long long)d != d)
		return -EINVAL; /* a fraction */
	*out = (long long)d;
	return 0;
}

const char *gcs_bridge_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}
