/*
 * gcs/fields.c, how the GCS reads numbers from the host's requests: absent
 * and null take the default; strings, fractions, values out of range and
 * huge ones (1e300, which a bare cast would turn into undefined behaviour)
 * are -EINVAL and leave *out alone; the bounds themselves are accepted.
 * fields.c is compiled into the test (it needs nothing else from gcs/).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gcs/fields.c"

static int parse_int(const char *json, long long min, long long max, long long def, long long *out)
{
	cJSON *o = cJSON_Parse(json);
	int ret;

	assert_non_null(o);
	ret = gcs_bridge_int(o, "n", min, max, def, out);
	cJSON_Delete(o);
	return ret;
}

static void test_absent_and_null_take_the_default(void **state)
{
	long long v = 0;

	assert_int_equal(parse_int("{}", 0, 10, 7, &v), 0);
	assert_int_equal(v, 7);
	v = 0;
	assert_int_equal(parse_int("{\"n\":null}", 0, 10, -1, &v), 0);
	assert_int_equal(v, -1);
}

static void test_bounds_are_accepted(void **state)
{
	long long v;

	assert_int_equal(parse_int("{\"n\":0}", 0, UINT32_MAX, 5, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_int("{\"n\":4294967295}", 0, UINT32_MAX, 5, &v), 0);
	assert_int_equal(v, 4294967295LL);
	assert_int_equal(parse_int("{\"n\":-2147483648}", INT32_MIN, INT32_MAX, 5, &v), 0);
	assert_int_equal(v, INT32_MIN);
	assert_int_equal(parse_int("{\"n\":-0}", -1, 1, 5, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_int("{\"n\":1e3}", 0, 1000, 5, &v), 0);
	assert_int_equal(v, 1000);
}

static void test_hostile_values_are_refused(void **state)
{
	static const char *const bad[] = {
	    "{\"n\":4294967296}",	/* max + 1 */
	    "{\"n\":-1}",		/* min - 1 */
	    "{\"n\":1e300}",		/* far beyond any integer type */
	    "{\"n\":-1e300}",		/* and below */
	    "{\"n\":1.5}",		/* a fraction */
	    "{\"n\":\"12\"}",		/* a string */
	    "{\"n\":true}",		/* a bool */
	    "{\"n\":[1]}",		/* an array */
	    "{\"n\":9007199254740994}", /* beyond 2^53: no exact integer in a double */
	};
	long long v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long long max = i == 8 ? LLONG_MAX : UINT32_MAX;

		if (parse_int(bad[i], 0, max, 5, &v) != -EINVAL)
			fail_msg("%s: accepted as %lld", bad[i], v);
		assert_int_equal(v, 42);
	}
	/* The widest range there is still refuses what no long long holds. */
	assert_int_equal(parse_int("{\"n\":1e19}", LLONG_MIN, LLONG_MAX, 5, &v), -EINVAL);
	assert_int_equal(parse_int("{\"n\":-1e19}", LLONG_MIN, LLONG_MAX, 5, &v), -EINVAL);
	assert_int_equal(v, 42);
}

static void test_strings(void **state)
{
	cJSON *o = cJSON_Parse("{\"s\":\"x\",\"n\":1,\"z\":null}");

	assert_string_equal(gcs_bridge_str(o, "s"), "x");
	assert_null(gcs_bridge_str(o, "n"));
	assert_null(gcs_bridge_str(o, "z"));
	assert_null(gcs_bridge_str(o, "absent"));
	cJSON_Delete(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_absent_and_null_take_the_default),
	    cmocka_unit_test(test_bounds_are_accepted),
	    cmocka_unit_test(test_hostile_values_are_refused),
	    cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
