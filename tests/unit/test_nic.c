/* shim/nic_parse.c and shim/nic.c without a guest: parameters, slots, cold-plug on a fake machine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shim/nic.h"
#include "tests/unit/virtio_test_util.h"

static cJSON *J(const char *s)
{
	cJSON *j = cJSON_Parse(s);

	assert_non_null(j);
	return j;
}

/* Parses s as nic.add params; returns the error (or "" when it parsed). */
static const char *add_err(const char *s)
{
	static char err[CTL_ERRLEN];
	struct nic_params p;
	cJSON *j = J(s);

	err[0] = '\0';
	if (!nic_parse_add(j, &p, err))
		nic_params_free(&p);
	cJSON_Delete(j);
	return err;
}

static void test_parse_add_ok(void **state)
{
	struct nic_params p;
	char err[CTL_ERRLEN], *txt;
	cJSON *j =
	    J("{\"id\":\"eth1\",\"backend\":\"tap\",\"tap\":\"tap0\",\"netns\":\"/run/netns/"
	      "x\",\"mac\":\"02:AA:bb:00:00:01\",\"mtu\":9000,\"addresses\":[\"10.0.0.2/24\","
	      "\"fd00::0002/64\"],\"gateway\":\"10.0.0.1\",\"routes\":[{\"dst\":\"10.1.0.0/"
	      "16\",\"via\":\"10.0.0.254\"},{\"dst\":\"192.168.0.0/24\"}],\"dns\":[\"1.1.1.1\"]}");

	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_string_equal(p.id, "eth1");
	assert_int_equal(p.backend, NIC_TAP);
	assert_string_equal(p.tap, "tap0");
	assert_string_equal(p.netns, "/run/netns/x");
	assert_true(p.has_mac);
	assert_memory_equal(p.mac, "\x02\xaa\xbb\x00\x00\x01", 6);
	assert_int_equal(p.mtu, 9000);
	/* What the agent gets is normalized. */
	txt = cJSON_PrintUnformatted(p.guest);
	assert_string_equal(txt, "{\"mtu\":9000,\"addresses\":[\"10.0.0.2/24\",\"fd00::2/64\"],"
				 "\"dns\":[\"1.1.1.1\"],\"gateway\":\"10.0.0.1\",\"routes\":[{"
				 "\"dst\":\"10.1.0.0/16\",\"via\":\"10.0.0.254\"},{\"dst\":\"192."
				 "168.0.0/24\"}],\"timeout_ms\":30000}");
	free(txt);
	nic_params_free(&p);
	cJSON_Delete(j);
}

/* guest_netns: a netns.add name, passed to the agent as "netns". */
static void test_parse_guest_netns(void **state)
{
	struct nic_params p;
	char err[CTL_ERRLEN];
	cJSON *j = J("{\"id\":\"n\",\"backend\":\"tap\",\"tap\":\"t0\",\"guest_netns\":\"n1\"}");

	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_string_equal(cJSON_GetObjectItem(p.guest, "netns")->valuestring, "n1");
	nic_params_free(&p);
	cJSON_Delete(j);
	assert_non_null(strstr(add_err("{\"id\":\"n\",\"backend\":\"tap\",\"tap\":\"t0\","
				       "\"guest_netns\":\"../x\"}"),
			       "params.guest_netns"));
	assert_non_null(strstr(add_err("{\"id\":\"n\",\"backend\":\"tap\",\"tap\":\"t0\","
				       "\"guest_netns\":7}"),
			       "guest_netns"));
}

static void test_parse_user_defaults(void **state)
{
	struct nic_params p;
	char err[CTL_ERRLEN], *txt;
	cJSON *j = J("{\"id\":\"u\",\"backend\":\"user\"}");

	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(p.backend, NIC_USER);
	assert_false(p.has_mac);
	assert_int_equal(p.mtu, 1500);
	assert_int_equal(p.user_addr.prefix, 24);
	assert_memory_equal(p.user_addr.addr, "\x0a\x00\x02\x0f", 4);
	assert_memory_equal(p.user_gw.addr, "\x0a\x00\x02\x02", 4);
	txt = cJSON_PrintUnformatted(p.guest);
	assert_non_null(strstr(txt, "\"addresses\":[\"10.0.2.15/24\"]"));
	assert_non_null(strstr(txt, "\"gateway\":\"10.0.2.2\""));
	assert_non_null(strstr(txt, "\"dns\":[\"10.0.2.3\"]"));
	free(txt);
	nic_params_free(&p);
	cJSON_Delete(j);
}

static void test_parse_add_bad(void **state)
{
	static const struct {
		const char *json, *names;
	} bad[] = {
	    {"[]", "params"},
	    {"{\"backend\":\"tap\",\"tap\":\"t\"}", "params.id"},
	    {"{\"id\":\"\",\"backend\":\"tap\",\"tap\":\"t\"}", "params.id"},
	    {"{\"id\":\"a b\",\"backend\":\"tap\",\"tap\":\"t\"}", "params.id"},
	    {"{\"id\":\"a\"}", "params.backend"},
	    {"{\"id\":\"a\",\"backend\":\"vde\"}", "params.backend"},
	    {"{\"id\":\"a\",\"backend\":\"tap\"}", "params.tap"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"0123456789abcdef\"}", "params.tap"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"../x\"}", "params.tap"},
	    {"{\"id\":\"a\",\"backend\":\"user\",\"tap\":\"t\"}", "params.tap"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"netns\":\"rel\"}", "params.netns"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"mac\":\"01:00:5e:00:00:01\"}",
	     "params.mac"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"mac\":\"zz\"}", "params.mac"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"mtu\":67}", "params.mtu"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"mtu\":65521}", "params.mtu"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"addresses\":\"10.0.0.1/24\"}",
	     "params.addresses"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"addresses\":[\"10.0.0.1\"]}",
	     "params.addresses[0]"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"addresses\":[\"10.0.0.1/24\","
	     "\"10.0.0.300/24\"]}",
	     "params.addresses[1]"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"gateway\":\"10.0.0.0/8\"}",
	     "params.gateway"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"routes\":[{\"via\":\"10.0.0.1\"}]}",
	     "params.routes[0]"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"routes\":[{\"dst\":\"10.0.0.0/8\","
	     "\"via\":\"fd00::1\"}]}",
	     "params.routes[0]"},
	    {"{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"dns\":[\"resolver\"]}",
	     "params.dns[0]"},
	    {"{\"id\":\"a\",\"backend\":\"user\",\"addresses\":[\"fd00::2/64\"]}",
	     "params.addresses"},
	    {"{\"id\":\"a\",\"backend\":\"user\",\"gateway\":\"fd00::1\"}", "params.gateway"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *e = add_err(bad[i].json);

		if (strncmp(e, bad[i].names, strlen(bad[i].names)))
			fail_msg("%s: error '%s' does not name %s", bad[i].json, e, bad[i].names);
	}
	/* Nine addresses is one too many. */
	assert_non_null(
	    strstr(add_err("{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t\",\"dns\":["
			   "\"1.1.1.1\",\"1.1.1.1\",\"1.1.1.1\",\"1.1.1.1\",\"1.1.1.1\","
			   "\"1.1.1.1\",\"1.1.1.1\",\"1.1.1.1\",\"1.1.1.1\"]}"),
		   "params.dns"));
}

static void test_parse_update(void **state)
{
	const char *id;
	char err[CTL_ERRLEN];
	cJSON *g, *j;
	int link;

	j = J("{\"id\":\"eth1\",\"link_up\":false}");
	assert_int_equal(nic_parse_update(j, &id, &link, &g, err), 0);
	assert_int_equal(link, 0);
	assert_null(g);
	cJSON_Delete(j);
	j = J("{\"id\":\"eth1\",\"addresses\":[\"10.0.0.9/24\"]}");
	assert_int_equal(nic_parse_update(j, &id, &link, &g, err), 0);
	assert_int_equal(link, -1);
	assert_non_null(cJSON_GetObjectItem(g, "addresses"));
	assert_null(cJSON_GetObjectItem(g, "mtu"));
	cJSON_Delete(g);
	cJSON_Delete(j);
	j = J("{\"id\":\"eth1\"}");
	assert_int_equal(nic_parse_update(j, &id, &link, &g, err), -EINVAL);
	assert_non_null(strstr(err, "nothing to update"));
	cJSON_Delete(j);
	j = J("{\"id\":\"eth1\",\"link_up\":\"yes\"}");
	assert_int_equal(nic_parse_update(j, &id, &link, &g, err), -EINVAL);
	assert_non_null(strstr(err, "link_up"));
	cJSON_Delete(j);
}

/* Cold-plug on a fake machine: slots, duplicate id and MAC, backend errors naming the parameter. */
static void test_manager_cold(void **state)
{
	struct tmach m;
	struct nic_mgr nm;
	struct nic_params p;
	char err[CTL_ERRLEN], why[256];
	cJSON *j;
	int code;

	assert_int_equal(tm_init(&m, 1 << 20), 0);
	nic_init(&nm);
	/* No machine yet. */
	j = J("{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"uvmnosuch0\"}");
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -ENODEV);
	nic_params_free(&p);
	assert_int_equal(nic_count(&nm), 0);
	nic_bind(&nm, m.pbus, m.mem, NULL, NULL);
	/* A tap that does not exist. */
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -ENOENT);
	assert_int_equal(code, CTL_ERR_BAD_PARAMS);
	assert_non_null(strstr(why, "params.tap"));
	nic_params_free(&p);
	cJSON_Delete(j);
	/* A netns path that does not exist. */
	j = J("{\"id\":\"a\",\"backend\":\"tap\",\"tap\":\"t0\",\"netns\":\"/nonexistent/ns\"}");
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -ENOENT);
	assert_non_null(strstr(why, "params.netns"));
	nic_params_free(&p);
	cJSON_Delete(j);
	/* passt missing is said plainly (PATH without passt). */
	{
		const char *path = getenv("PATH");
		char *saved = path ? strdup(path) : NULL;

		setenv("PATH", "/nonexistent", 1);
		j = J("{\"id\":\"u\",\"backend\":\"user\"}");
		assert_int_equal(nic_parse_add(j, &p, err), 0);
		assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -ENOENT);
		assert_non_null(strstr(why, "passt"));
		nic_params_free(&p);
		cJSON_Delete(j);
		if (saved)
			setenv("PATH", saved, 1);
		free(saved);
	}
	assert_int_equal(nic_count(&nm), 0);
	/* With passt installed: a user NIC plugs, and a second with its MAC or id is refused. */
	j = J("{\"id\":\"u\",\"backend\":\"user\",\"mac\":\"02:00:00:00:00:07\"}");
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	if (nic_attach_cold(&nm, &p, why, sizeof(why), &code) == -ENOENT) {
		nic_params_free(&p);
		cJSON_Delete(j);
		nic_unbind(&nm);
		tm_fini(&m);
		print_message("skip: passt is not installed\n");
		skip();
	}
	nic_params_free(&p);
	assert_int_equal(nic_count(&nm), 1);
	assert_non_null(nic_find(&nm, "u"));
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -EEXIST);
	assert_non_null(strstr(why, "params.id"));
	nic_params_free(&p);
	cJSON_Delete(j);
	j = J("{\"id\":\"v\",\"backend\":\"user\",\"mac\":\"02:00:00:00:00:07\"}");
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), -EEXIST);
	assert_non_null(strstr(why, "params.mac"));
	nic_params_free(&p);
	cJSON_Delete(j);
	/* Generated MACs are locally administered and distinct. */
	j = J("{\"id\":\"w\",\"backend\":\"user\"}");
	assert_int_equal(nic_parse_add(j, &p, err), 0);
	assert_int_equal(nic_attach_cold(&nm, &p, why, sizeof(why), &code), 0);
	nic_params_free(&p);
	cJSON_Delete(j);
	assert_int_equal(nic_find(&nm, "w")->mac[0] & 3, 2);
	{
		cJSON *st = nic_stats(&nm);

		assert_int_equal(cJSON_GetArraySize(st), 2);
		assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 0), "rx_drops"));
		cJSON_Delete(st);
	}
	nic_unbind(&nm); /* unplugs, kills and reaps both passts */
	assert_int_equal(nic_count(&nm), 0);
	tm_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_add_ok),      cmocka_unit_test(test_parse_user_defaults),
	    cmocka_unit_test(test_parse_guest_netns), cmocka_unit_test(test_parse_add_bad),
	    cmocka_unit_test(test_parse_update),      cmocka_unit_test(test_manager_cold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
