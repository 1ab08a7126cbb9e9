/*
 * The container manager's pure parts (shim/container_parse.c): the parent's
 * params, and hostile guest bodies (container_exited, container_oom, the
 * stats answer) that must be refused without a crash or a leak.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shim/container.h"

static cJSON *parse(const char *json)
{
	cJSON *o = cJSON_Parse(json);

	assert_non_null(o);
	return o;
}

static void test_id(void **state)
{
	char long_id[CONTAINER_ID_MAX + 2];

	assert_true(container_id_valid("c1"));
	assert_true(container_id_valid("A-b_c.9"));
	assert_false(container_id_valid(NULL));
	assert_false(container_id_valid(""));
	assert_false(container_id_valid("-c"));
	assert_false(container_id_valid(".."));
	assert_false(container_id_valid("a/b"));
	assert_false(container_id_valid("a b"));
	assert_false(container_id_valid("a\nb"));
	assert_false(container_id_valid("\xc3\xa9"));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(container_id_valid(long_id));
	long_id[CONTAINER_ID_MAX] = '\0';
	assert_true(container_id_valid(long_id));
}

static void test_root(void **state)
{
	static const struct {
		const char *json;
		const char *err; /* NULL: accepted */
	} cases[] = {
	    {"{\"layers\":[{\"vpmem\":0}]}", NULL},
	    {"{\"layers\":[{\"vpmem\":3},{\"scsi\":{\"controller\":1,\"lun\":63}},{\"path\":\"/"
	     "l\"}],"
	     "\"scratch\":{\"scsi\":{\"controller\":0,\"lun\":2}},\"format\":true}",
	     NULL},
	    {"{\"layers\":[{\"vpmem\":0}],\"scratch\":{\"path\":\"/s\"}}", NULL},
	    {"{\"layers\":[{\"vpmem\":0}],\"scratch\":null}", NULL},
	    {"[]", "params.root"},
	    {"{}", "params.root.layers"},
	    {"{\"layers\":[]}", "params.root.layers"},
	    {"{\"layers\":{}}", "params.root.layers"},
	    {"{\"layers\":[1]}", "params.root.layers[0]"},
	    {"{\"layers\":[{}]}", "exactly one"},
	    {"{\"layers\":[{\"vpmem\":0,\"path\":\"/x\"}]}", "exactly one"},
	    {"{\"layers\":[{\"vpmem\":-1}]}", "params.root.layers[0].vpmem"},
	    {"{\"layers\":[{\"vpmem\":0.5}]}", "params.root.layers[0].vpmem"},
	    {"{\"layers\":[{\"vpmem\":1e300}]}", "params.root.layers[0].vpmem"},
	    {"{\"layers\":[{\"vpmem\":\"0\"}]}", "params.root.layers[0].vpmem"},
	    {"{\"layers\":[{\"vpmem\":128}]}", "params.root.layers[0].vpmem"},
	    {"{\"layers\":[{\"scsi\":{\"controller\":4,\"lun\":0}}]}",
	     "params.root.layers[0].scsi"},
	    {"{\"layers\":[{\"scsi\":{\"lun\":0}}]}", "params.root.layers[0].scsi"},
	    {"{\"layers\":[{\"scsi\":[0,1]}]}", "params.root.layers[0].scsi"},
	    {"{\"layers\":[{\"path\":\"rel\"}]}", "params.root.layers[0].path"},
	    {"{\"layers\":[{\"path\":\"/a/../b\"}]}", "params.root.layers[0].path"},
	    {"{\"layers\":[{\"path\":\"/a:b\"}]}", "params.root.layers[0].path"},
	    {"{\"layers\":[{\"path\":\"/a,upperdir=/x\"}]}", "params.root.layers[0].path"},
	    {"{\"layers\":[{\"path\":7}]}", "params.root.layers[0].path"},
	    {"{\"layers\":[{\"vpmem\":0}],\"scratch\":{\"vpmem\":1}}", "params.root.scratch"},
	    {"{\"layers\":[{\"vpmem\":0}],\"scratch\":5}", "params.root.scratch"},
	    {"{\"layers\":[{\"vpmem\":0}],\"format\":true}", "params.root.format"},
	    {"{\"layers\":[{\"vpmem\":0}],\"scratch\":{\"path\":\"/s\"},\"format\":true}",
	     "params.root.format"},
	    {"{\"layers\":[{\"vpmem\":0}],\"format\":\"yes\"}", "params.root.format"},
	    /* a Plan 9 share as the root */
	    {"{\"plan9\":\"share0\"}", NULL},
	    {"{\"plan9\":\"b.1\",\"subdir\":\"bundle/rootfs/\"}", NULL},
	    {"{\"plan9\":\"s\",\"subdir\":null,\"scratch\":{\"path\":\"/s\"}}", NULL},
	    {"{\"plan9\":\"s\",\"layers\":[{\"vpmem\":0}]}", "layers or plan9, not both"},
	    {"{\"plan9\":\"\"}", "params.root.plan9"},
	    {"{\"plan9\":\"a/b\"}", "params.root.plan9"},
	    {"{\"plan9\":7}", "params.root.plan9"},
	    {"{\"plan9\":null}", "params.root.plan9"},
	    {"{\"plan9\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "params.root.plan9"},
	    {"{\"plan9\":\"s\",\"subdir\":\"/abs\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"..\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a/../b\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a/./b\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a//b\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a,upperdir=/x\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a:b\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"a\\nb\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":\"\"}", "params.root.subdir"},
	    {"{\"plan9\":\"s\",\"subdir\":[]}", "params.root.subdir"},
	    {"{\"subdir\":\"x\",\"layers\":[{\"vpmem\":0}]}", "only with plan9"},
	    {"{\"plan9\":\"s\",\"format\":true}", "params.root.format"},
	};
	char err[CTL_ERRLEN];
	struct ctr_root r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *o = parse(cases[i].json);
		int ret;

		err[0] = '\0';
		ret = container_parse_root(o, &r, err);
		if (!cases[i].err) {
			assert_int_equal(ret, 0);
		} else {
			assert_int_equal(ret, -EINVAL);
			if (!strstr(err, cases[i].err))
				fail_msg("%s: %s does not name %s", cases[i].json, err,
					 cases[i].err);
		}
		cJSON_Delete(o);
	}
	/* The layer count is bounded. */
	{
		char buf[8192] = "{\"layers\":[";
		cJSON *o;

		for (int i = 0; i <= CONTAINER_MAX_LAYERS; i++)
			strcat(buf, i ? ",{\"vpmem\":1}" : "{\"vpmem\":1}");
		strcat(buf, "]}");
		o = parse(buf);
		assert_int_equal(container_parse_root(o, &r, err), -EINVAL);
		cJSON_Delete(o);
	}
	{
		cJSON *o =
		    parse("{\"layers\":[{\"vpmem\":3},{\"scsi\":{\"controller\":1,\"lun\":9}}],"
			  "\"scratch\":{\"scsi\":{\"controller\":0,\"lun\":2}},\"format\":true}");

		assert_int_equal(container_parse_root(o, &r, err), 0);
		assert_int_equal(r.nr_layers, 2);
		assert_int_equal(r.layers[0].kind, CTR_REF_VPMEM);
		assert_int_equal(r.layers[0].number, 3);
		assert_int_equal(r.layers[1].kind, CTR_REF_SCSI);
		assert_int_equal(r.layers[1].controller, 1);
		assert_int_equal(r.layers[1].lun, 9);
		assert_true(r.has_scratch && r.format);
		assert_int_equal(r.scratch.lun, 2);
		cJSON_Delete(o);
	}
	{
		cJSON *o = parse("{\"plan9\":\"b1\",\"subdir\":\"rootfs\"}");

		assert_int_equal(container_parse_root(o, &r, err), 0);
		assert_int_equal(r.nr_layers, 0);
		assert_string_equal(r.plan9, "b1");
		assert_string_equal(r.subdir, "rootfs");
		assert_false(r.has_scratch);
		cJSON_Delete(o);
	}
}

static void test_spec(void **state)
{
	char err[CTL_ERRLEN];
	cJSON *o, *spec;

	o = parse("{\"spec\":{\"ociVersion\":\"1.0.2\"}}");
	assert_int_equal(container_parse_spec(o, &spec, err), 0);
	assert_string_equal(cJSON_GetObjectItem(spec, "ociVersion")->valuestring, "1.0.2");
	cJSON_Delete(spec);
	cJSON_Delete(o);
	o = parse("{\"spec\":\"{\\\"ociVersion\\\":\\\"1.0.2\\\"}\"}");
	assert_int_equal(container_parse_spec(o, &spec, err), 0);
	assert_true(cJSON_IsObject(spec));
	cJSON_Delete(spec);
	cJSON_Delete(o);
	static const char *const bad[] = {"{}",
					  "{\"spec\":1}",
					  "{\"spec\":[]}",
					  "{\"spec\":\"{not json\"}",
					  "{\"spec\":\"[1,2]\"}",
					  "{\"spec\":\"{} trailing\"}",
					  "{\"spec\":\"\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(bad[i]);
		assert_int_equal(container_parse_spec(o, &spec, err), -EINVAL);
		assert_null(spec);
		assert_non_null(strstr(err, "params.spec"));
		cJSON_Delete(o);
	}
}

static void test_update(void **state)
{
	char err[CTL_ERRLEN], *text;
	cJSON *o, *r;

	o = parse("{\"id\":\"c\",\"memory\":33554432,\"cpu_quota\":50000,\"cpu_weight\":200,"
		  "\"pids\":16}");
	assert_int_equal(container_parse_update(o, &r, err), 0);
	text = cJSON_PrintUnformatted(r);
	assert_string_equal(text, "{\"memory\":{\"limit\":33554432},\"cpu\":{\"quota\":50000,"
				  "\"period\":100000},\"unified\":{\"cpu.weight\":\"200\"},"
				  "\"pids\":{\"limit\":16}}");
	cJSON_free(text);
	cJSON_Delete(r);
	cJSON_Delete(o);
	static const struct {
		const char *json, *err;
	} bad[] = {
	    {"{\"id\":\"c\"}", "nothing to update"},
	    {"{\"memory\":1}", "params.memory"},
	    {"{\"memory\":-5}", "params.memory"},
	    {"{\"memory\":\"1G\"}", "params.memory"},
	    {"{\"pids\":0}", "params.pids"},
	    {"{\"pids\":1.5}", "params.pids"},
	    {"{\"cpu_weight\":0}", "params.cpu_weight"},
	    {"{\"cpu_weight\":10001}", "params.cpu_weight"},
	    {"{\"cpu_quota\":10}", "params.cpu_quota"},
	    {"{\"cpu_quota\":5000,\"cpu_period\":1}", "params.cpu_period"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(bad[i].json);
		assert_int_equal(container_parse_update(o, &r, err), -EINVAL);
		assert_null(r);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: %s", bad[i].json, err);
		cJSON_Delete(o);
	}
}

/* ---- guest bodies ---------------------------------------------------------------------- */

static void test_exit(void **state)
{
	struct ctr_exit x;
	cJSON *o = parse("{\"id\":\"c1\",\"pid\":57,\"exit_code\":137,\"signal\":9,"
			 "\"oom_killed\":true}");

	assert_int_equal(container_parse_exit(o, &x), 0);
	assert_string_equal(x.id, "c1");
	assert_int_equal(x.pid, 57);
	assert_int_equal(x.exit_code, 137);
	assert_int_equal(x.signal, 9);
	assert_true(x.oom_killed);
	cJSON_Delete(o);
	static const char *const bad[] = {
	    "[]",
	    "{}",
	    "{\"id\":\"c1\",\"pid\":0,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":-1,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":2147483648,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":1e300,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":1.5,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":5,\"exit_code\":-1e308,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":5,\"exit_code\":1000,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":5,\"exit_code\":0,\"signal\":65}",
	    "{\"id\":\"c1\",\"pid\":5,\"exit_code\":0}",
	    "{\"id\":\"c1\",\"pid\":\"5\",\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"../x\",\"pid\":5,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"\",\"pid\":5,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":7,\"pid\":5,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":"
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"pid\":5,\"exit_code\":0,\"signal\":0}",
	    "{\"id\":\"c1\",\"pid\":5,\"exit_code\":0,\"signal\":0,\"oom_killed\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(bad[i]);
		if (container_parse_exit(o, &x) != -EPROTO)
			fail_msg("accepted: %s", bad[i]);
		cJSON_Delete(o);
	}
	assert_int_equal(container_parse_exit(NULL, &x), -EPROTO);
}

static void test_oom(void **state)
{
	char id[CONTAINER_ID_MAX + 1];
	uint64_t k;
	cJSON *o = parse("{\"id\":\"c1\",\"oom_kills\":3}");

	assert_int_equal(container_parse_oom(o, id, &k), 0);
	assert_string_equal(id, "c1");
	assert_int_equal(k, 3);
	cJSON_Delete(o);
	static const char *const bad[] = {"{\"id\":\"c1\"}",
					  "{\"id\":\"c1\",\"oom_kills\":-1}",
					  "{\"id\":\"c1\",\"oom_kills\":1e300}",
					  "{\"id\":\"c 1\",\"oom_kills\":1}",
					  "{\"oom_kills\":1}",
					  "{\"id\":\"c1\",\"oom_kills\":null}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(bad[i]);
		assert_int_equal(container_parse_oom(o, id, &k), -EPROTO);
		cJSON_Delete(o);
	}
}

#define STATS_OK                                                                                   \
	"\"memory\":{\"current\":100,\"max\":-1,\"peak\":200,\"oom_kills\":0},"                    \
	"\"cpu\":{\"usage_usec\":5,\"user_usec\":3,\"system_usec\":2},"                            \
	"\"pids\":{\"current\":1,\"max\":-1},"

static void test_stats(void **state)
{
	cJSON *o = parse("{\"status\":0,\"state\":\"running\",\"junk\":\"x\"," STATS_OK
			 "\"io\":{\"rbytes\":1,\"wbytes\":2,\"rios\":3,\"wios\":4,\"extra\":9}}");
	cJSON *r = container_stats_result(o);
	char *text;

	assert_non_null(r);
	text = cJSON_PrintUnformatted(r);
	/* only the known figures, nothing else the guest put in */
	assert_string_equal(text, "{\"memory\":{\"current\":100,\"max\":-1,\"peak\":200,"
				  "\"oom_kills\":0},\"cpu\":{\"usage_usec\":5,\"user_usec\":3,"
				  "\"system_usec\":2},\"pids\":{\"current\":1,\"max\":-1},"
				  "\"io\":{\"rbytes\":1,\"wbytes\":2,\"rios\":3,\"wios\":4}}");
	cJSON_free(text);
	cJSON_Delete(r);
	cJSON_Delete(o);
	static const char *const bad[] = {
	    "{}",
	    "[]",
	    "{" STATS_OK "\"x\":1}",
	    "{" STATS_OK "\"io\":[]}",
	    "{" STATS_OK "\"io\":{\"rbytes\":1,\"wbytes\":2,\"rios\":3}}",
	    "{" STATS_OK "\"io\":{\"rbytes\":-3,\"wbytes\":2,\"rios\":3,\"wios\":4}}",
	    "{" STATS_OK "\"io\":{\"rbytes\":1e300,\"wbytes\":2,\"rios\":3,\"wios\":4}}",
	    "{" STATS_OK "\"io\":{\"rbytes\":0.5,\"wbytes\":2,\"rios\":3,\"wios\":4}}",
	    "{" STATS_OK "\"io\":{\"rbytes\":\"1\",\"wbytes\":2,\"rios\":3,\"wios\":4}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(bad[i]);
		r = container_stats_result(o);
		if (r)
			fail_msg("accepted: %s", bad[i]);
		cJSON_Delete(o);
	}
	assert_null(container_stats_result(NULL));
}

static void test_state_names(void **state)
{
	assert_string_equal(container_state_name(CTR_RUNNING), "running");
	assert_string_equal(container_state_name(CTR_STOPPED), "stopped");
	assert_string_equal(container_state_name((enum ctr_state)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_id),	  cmocka_unit_test(test_root),
	    cmocka_unit_test(test_spec),  cmocka_unit_test(test_update),
	    cmocka_unit_test(test_exit),  cmocka_unit_test(test_oom),
	    cmocka_unit_test(test_stats), cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
