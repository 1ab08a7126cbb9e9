/* The plan9 manager's pure parts and cold attach: params, names, duplicates, slots. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "shim/plan9.h"
#include "tests/unit/p9_test_util.h"
#include "tests/unit/virtio_test_util.h"

static int parse(const char *json, char err[CTL_ERRLEN])
{
	cJSON *o = cJSON_Parse(json);
	struct plan9_params p;
	int ret;

	assert_non_null(o);
	err[0] = '\0';
	ret = plan9_parse_add(o, &p, err);
	cJSON_Delete(o);
	return ret;
}

static void test_parse(void **state)
{
	char err[CTL_ERRLEN];

	assert_int_equal(parse("{\"name\":\"s0\",\"host_path\":\"/tmp\",\"guest_path\":\"/mnt/s\","
			       "\"read_only\":true,\"allowed_names\":[\"a\",\"b\"]}",
			       err),
			 0);
	assert_int_equal(parse("[]", err), -EINVAL);
	assert_int_equal(parse("{\"host_path\":\"/tmp\",\"guest_path\":\"/m\"}", err), -EINVAL);
	assert_non_null(strstr(err, "params.name"));
	assert_int_equal(
	    parse("{\"name\":\"a/b\",\"host_path\":\"/tmp\",\"guest_path\":\"/m\"}", err), -EINVAL);
	assert_non_null(strstr(err, "params.name"));
	assert_int_equal(
	    parse("{\"name\":\"x\",\"host_path\":\"/nonexistent\",\"guest_path\":\"/m\"}", err),
	    -EINVAL);
	assert_non_null(strstr(err, "params.host_path"));
	assert_int_equal(
	    parse("{\"name\":\"x\",\"host_path\":\"/etc/passwd\",\"guest_path\":\"/m\"}", err),
	    -EINVAL);
	assert_non_null(strstr(err, "not a directory"));
	assert_int_equal(parse("{\"name\":\"x\",\"host_path\":\"/tmp\",\"guest_path\":\"m\"}", err),
			 -EINVAL);
	assert_non_null(strstr(err, "params.guest_path"));
	assert_int_equal(parse("{\"name\":\"x\",\"host_path\":\"/tmp\",\"guest_path\":\"/m\","
			       "\"allowed_names\":[\"../etc\"]}",
			       err),
			 -EINVAL);
	assert_non_null(strstr(err, "params.allowed_names"));
	assert_int_equal(parse("{\"name\":\"x\",\"host_path\":\"/tmp\",\"guest_path\":\"/m\","
			       "\"allowed_names\":[]}",
			       err),
			 -EINVAL);
	assert_int_equal(parse("{\"name\":\"x\",\"host_path\":\"/tmp\",\"guest_path\":\"/m\","
			       "\"allowed_names\":[1]}",
			       err),
			 -EINVAL);
}

static int attach(struct plan9 *pl, const char *json, char *err, size_t len)
{
	char perr[CTL_ERRLEN];
	cJSON *o = cJSON_Parse(json);
	struct plan9_params p;
	int ret;

	assert_non_null(o);
	assert_int_equal(plan9_parse_add(o, &p, perr), 0);
	ret = plan9_attach_cold(pl, &p, err, len);
	cJSON_Delete(o);
	return ret;
}

static void test_cold_attach(void **state)
{
	struct tmach m;
	struct plan9 pl;
	char err[256], dir[64], share[96], json[512];

	assert_int_equal(p9t_tree(dir, share), 0);
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	plan9_init(&pl);
	snprintf(json, sizeof(json), "{\"name\":\"s0\",\"host_path\":\"%s\",\"guest_path\":\"/a\"}",
		 share);
	assert_int_equal(attach(&pl, json, err, sizeof(err)), -ENODEV); /* no VM bound */
	assert_int_equal(plan9_count(&pl), 0);
	assert_int_equal(plan9_bind(&pl, m.pbus, m.mem, NULL, NULL), 0);
	assert_int_equal(attach(&pl, json, err, sizeof(err)), 0);
	assert_non_null(plan9_find(&pl, "s0"));
	assert_int_equal(attach(&pl, json, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "named s0"));
	snprintf(json, sizeof(json), "{\"name\":\"s1\",\"host_path\":\"%s\",\"guest_path\":\"/a\"}",
		 share);
	assert_int_equal(attach(&pl, json, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "already mounted on /a"));
	snprintf(json, sizeof(json),
		 "{\"name\":\"s1\",\"host_path\":\"%s\",\"guest_path\":\"/b\",\"read_only\":true,"
		 "\"allowed_names\":[\"x\"]}",
		 share);
	assert_int_equal(attach(&pl, json, err, sizeof(err)), 0);
	assert_int_equal(plan9_count(&pl), 2);
	assert_true(plan9_find(&pl, "s1")->read_only);
	assert_int_equal(plan9_find(&pl, "s1")->nr_allowed, 1);
	plan9_unbind(&pl);
	assert_int_equal(plan9_count(&pl), 0);
	tm_fini(&m);
	p9t_tree_remove(dir);
}

int main(void)
{
	/* The manager's own logic; its workers' sandbox is test_p9_sandbox's. */
	sandbox_configure(true);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_cold_attach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
