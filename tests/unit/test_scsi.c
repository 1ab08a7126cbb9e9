/* The scsi manager's pure parts: params, serials, slots; and its answers to bad requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"
#include "shim/scsi.h"

static int parse(const char *json, struct scsi_params *p, char err[CTL_ERRLEN])
{
	cJSON *o = cJSON_Parse(json);
	int ret;

	assert_non_null(o);
	ret = scsi_parse_add(o, p, err);
	/* p borrows strings from o: copy what the tests look at. */
	static char host[256], guest[256], fs[64];
	if (!ret) {
		snprintf(host, sizeof(host), "%s", p->host_path);
		p->host_path = host;
		snprintf(guest, sizeof(guest), "%s", p->guest_path ? p->guest_path : "");
		p->guest_path = p->guest_path ? guest : NULL;
		snprintf(fs, sizeof(fs), "%s", p->fs_type);
		p->fs_type = fs;
	}
	cJSON_Delete(o);
	return ret;
}

static void test_parse_full(void **state)
{
	struct scsi_params p;
	char err[CTL_ERRLEN] = "";

	assert_int_equal(parse("{\"controller\":1,\"lun\":63,\"host_path\":\"/d.img\","
			       "\"read_only\":true,\"guest_path\":\"/mnt/x\",\"fs_type\":\"xfs\","
			       "\"options\":[\"noatime\",\"nouuid\"],\"timeout_ms\":500}",
			       &p, err),
			 0);
	assert_int_equal(p.controller, 1);
	assert_int_equal(p.lun, 63);
	assert_string_equal(p.host_path, "/d.img");
	assert_true(p.read_only);
	assert_string_equal(p.guest_path, "/mnt/x");
	assert_string_equal(p.fs_type, "xfs");
	assert_string_equal(p.options, "noatime,nouuid");
	assert_int_equal(p.timeout_ms, 500);
}

static void test_parse_defaults(void **state)
{
	struct scsi_params p;
	char err[CTL_ERRLEN] = "";

	assert_int_equal(parse("{\"controller\":0,\"lun\":0,\"host_path\":\"a\"}", &p, err), 0);
	assert_false(p.read_only);
	assert_null(p.guest_path);
	assert_string_equal(p.fs_type, "ext4");
	assert_string_equal(p.options, "");
	assert_int_equal(p.timeout_ms, SCSI_DEFAULT_TIMEOUT);
	assert_int_equal(parse("{\"controller\":0,\"lun\":0,\"host_path\":\"a\","
			       "\"options\":\"ro,sync\"}",
			       &p, err),
			 0);
	assert_string_equal(p.options, "ro,sync");
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *json, *needle;
	} bad[] = {
	    {"{\"lun\":0,\"host_path\":\"a\"}", "controller"},
	    {"{\"controller\":0,\"host_path\":\"a\"}", "lun"},
	    {"{\"controller\":0,\"lun\":0}", "host_path"},
	    {"{\"controller\":4,\"lun\":0,\"host_path\":\"a\"}", "controller"},
	    {"{\"controller\":0,\"lun\":64,\"host_path\":\"a\"}", "lun"},
	    {"{\"controller\":-1,\"lun\":0,\"host_path\":\"a\"}", "controller"},
	    {"{\"controller\":0.5,\"lun\":0,\"host_path\":\"a\"}", "controller"},
	    {"{\"controller\":\"0\",\"lun\":0,\"host_path\":\"a\"}", "controller"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"\"}", "host_path"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":7}", "host_path"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"read_only\":1}", "read_only"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"guest_path\":\"rel\"}",
	     "guest_path"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"fs_type\":\"\"}", "fs_type"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"options\":[1]}", "options"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"options\":[\"\"]}", "options"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"options\":{}}", "options"},
	    {"{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"timeout_ms\":0}", "timeout_ms"},
	    {"[]", "object"},
	};
	struct scsi_params p;
	char err[CTL_ERRLEN];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i].json, &p, err), -EINVAL);
		if (!strstr(err, bad[i].needle))
			fail_msg("%s: message '%s' does not name %s", bad[i].json, err,
				 bad[i].needle);
	}
}

static void test_parse_options_too_long(void **state)
{
	char json[4096], err[CTL_ERRLEN];
	struct scsi_params p;
	int n;

	/* 100 options of 9 bytes: over SCSI_OPTIONS_MAX once joined. */
	n = snprintf(json, sizeof(json),
		     "{\"controller\":0,\"lun\":0,\"host_path\":\"a\",\"options\":[");
	for (int i = 0; i < 100; i++)
		n += snprintf(json + n, sizeof(json) - n, "%s\"abcdefgh\"", i ? "," : "");
	snprintf(json + n, sizeof(json) - n, "]}");
	assert_int_equal(parse(json, &p, err), -EINVAL);
	assert_non_null(strstr(err, "options"));
}

static void test_parse_remove(void **state)
{
	cJSON *o = cJSON_Parse("{\"controller\":3,\"lun\":7}");
	char err[CTL_ERRLEN];
	unsigned c, l;

	assert_int_equal(scsi_parse_remove(o, &c, &l, err), 0);
	assert_int_equal(c, 3);
	assert_int_equal(l, 7);
	cJSON_Delete(o);
	o = cJSON_Parse("{\"controller\":3}");
	assert_int_equal(scsi_parse_remove(o, &c, &l, err), -EINVAL);
	cJSON_Delete(o);
}

static void test_serial(void **state)
{
	char s[SCSI_SERIAL_LEN + 1];

	scsi_serial(0, 1, s);
	assert_string_equal(s, "uvm-c0-l1");
	/* The largest address still fits virtio-blk's 20-byte serial. */
	scsi_serial(SCSI_MAX_CONTROLLERS - 1, SCSI_MAX_LUNS - 1, s);
	assert_string_equal(s, "uvm-c3-l63");
}

static void test_slots(void **state)
{
	static struct scsi sc;
	struct scsi_params p = {.host_path = "/x", .fs_type = "ext4", .timeout_ms = 1};
	struct scsi_disk *d, *first;
	int ret;

	scsi_init(&sc);
	assert_null(scsi_find(&sc, 0, 0));
	for (int i = 0; i < SCSI_MAX_DISKS; i++) {
		p.controller = i / SCSI_MAX_LUNS;
		p.lun = i % SCSI_MAX_LUNS;
		ret = scsi_reserve(&sc, &p, &d);
		assert_int_equal(ret, 0);
		assert_int_equal(d->state, SCSI_ADDING);
		assert_ptr_equal(scsi_find(&sc, p.controller, p.lun), d);
	}
	assert_int_equal(scsi_count(&sc), SCSI_MAX_DISKS);
	/* Taken address first, then a full table. */
	p.controller = 0;
	p.lun = 5;
	assert_int_equal(scsi_reserve(&sc, &p, &d), -EEXIST);
	assert_null(d);
	p.controller = 3;
	assert_int_equal(scsi_reserve(&sc, &p, &d), -ENOSPC);
	/* A released slot is reused; its old address is free. */
	first = scsi_find(&sc, 0, 5);
	assert_string_equal(first->serial, "uvm-c0-l5");
	scsi_release(first);
	assert_null(scsi_find(&sc, 0, 5));
	ret = scsi_reserve(&sc, &p, &d);
	assert_int_equal(ret, 0);
	assert_ptr_equal(d, first);
	assert_string_equal(d->serial, "uvm-c3-l5");
	assert_string_equal(d->host_path, "/x");
	for (int i = 0; i < SCSI_MAX_DISKS; i++)
		scsi_release(&sc.disks[i]);
	assert_int_equal(scsi_count(&sc), 0);
}

/* ---- the methods through a real ctl, without a VM ---------------------------------- */

static struct scsi g_sc;

static void m_add(void *opaque, struct ctl_req *req)
{
	scsi_method_add(&g_sc, NULL, false, req);
}

static void m_remove(void *opaque, struct ctl_req *req)
{
	scsi_method_remove(&g_sc, NULL, false, req);
}

static const struct ctl_method methods[] = {
    {"scsi.add", m_add},
    {"scsi.remove", m_remove},
    {NULL, NULL},
};

static void call(struct ctl *ctl, int rfd, const char *line, char *out, size_t len)
{
	ssize_t n;

	ctl_feed(ctl, line, strlen(line));
	n = read(rfd, out, len - 1);
	assert_true(n > 0);
	out[n] = '\0';
}

static void test_methods_errors(void **state)
{
	struct ctl *ctl;
	char out[1024];
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	scsi_init(&g_sc);
	assert_int_equal(
	    ctl_create(&ctl, &(struct ctl_config){.out_fd = fds[1], .methods = methods}), 0);
	call(ctl, fds[0], "{\"id\":1,\"method\":\"scsi.add\",\"params\":{\"lun\":1}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "-32602"));
	call(ctl, fds[0],
	     "{\"id\":2,\"method\":\"scsi.remove\",\"params\":{\"controller\":0,\"lun\":9}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "-32003"));
	call(ctl, fds[0], "{\"id\":3,\"method\":\"scsi.remove\",\"params\":{\"lun\":9}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "-32602"));
	/* No machine bound: the add fails on the host side and leaves no slot behind. */
	call(ctl, fds[0],
	     "{\"id\":4,\"method\":\"scsi.add\",\"params\":{\"controller\":0,\"lun\":0,"
	     "\"host_path\":\"/nonexistent\"}}\n",
	     out, sizeof(out));
	assert_non_null(strstr(out, "\"error\""));
	assert_int_equal(scsi_count(&g_sc), 0);
	ctl_destroy(ctl);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_full),	 cmocka_unit_test(test_parse_defaults),
	    cmocka_unit_test(test_parse_bad),	 cmocka_unit_test(test_parse_options_too_long),
	    cmocka_unit_test(test_parse_remove), cmocka_unit_test(test_serial),
	    cmocka_unit_test(test_slots),	 cmocka_unit_test(test_methods_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
