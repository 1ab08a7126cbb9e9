/* The vpmem manager: params, limits, numbers; cold adds and removes on a machine without KVM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shim/ctl.h"
#include "shim/vpmem.h"
#include "tests/unit/virtio_test_util.h"
#include "vmm/mem_slots.h"

static int parse_add(const char *json, unsigned count, struct vpmem_params *p, char err[CTL_ERRLEN])
{
	static char host[256], guest[256], fs[64];
	cJSON *o = cJSON_Parse(json);
	int ret;

	assert_non_null(o);
	ret = vpmem_parse_add(o, count, p, err);
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

static void test_parse_limits(void **state)
{
	char err[CTL_ERRLEN] = "";
	unsigned count;
	uint64_t max;
	struct {
		const char *json;
		int ret;
		unsigned count;
		uint64_t max;
		const char *names;
	} cases[] = {
	    {"{}", 0, 64, 4ULL << 30, NULL},
	    {"{\"vpmem_count\":128,\"vpmem_max_bytes\":8192}", 0, 128, 8192, NULL},
	    {"{\"vpmem_count\":0}", 0, 0, 4ULL << 30, NULL},
	    {"{\"vpmem_count\":129}", -EINVAL, 0, 0, "vpmem_count"},
	    {"{\"vpmem_count\":-1}", -EINVAL, 0, 0, "vpmem_count"},
	    {"{\"vpmem_count\":\"8\"}", -EINVAL, 0, 0, "vpmem_count"},
	    {"{\"vpmem_max_bytes\":4097}", -EINVAL, 0, 0, "vpmem_max_bytes"},
	    {"{\"vpmem_max_bytes\":0}", -EINVAL, 0, 0, "vpmem_max_bytes"},
	    {"{\"vpmem_max_bytes\":1e30}", -EINVAL, 0, 0, "vpmem_max_bytes"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *o = cJSON_Parse(cases[i].json);

		err[0] = '\0';
		assert_int_equal(vpmem_parse_limits(o, &count, &max, err), cases[i].ret);
		if (cases[i].ret == 0) {
			assert_int_equal(count, cases[i].count);
			assert_int_equal(max, cases[i].max);
		} else {
			assert_non_null(strstr(err, cases[i].names));
		}
		cJSON_Delete(o);
	}
}

static void test_parse_add(void **state)
{
	struct vpmem_params p;
	char err[CTL_ERRLEN] = "";

	assert_int_equal(parse_add("{\"host_path\":\"/l.img\"}", 64, &p, err), 0);
	assert_int_equal(p.number, -1);
	assert_false(p.read_only);
	assert_null(p.guest_path);
	assert_string_equal(p.fs_type, "ext4");
	assert_string_equal(p.options, "");
	assert_int_equal(p.timeout_ms, VPMEM_DEFAULT_TIMEOUT);
	assert_int_equal(parse_add("{\"device\":63,\"host_path\":\"/l.img\",\"read_only\":true,"
				   "\"guest_path\":\"/layers/1\",\"fs_type\":\"erofs\","
				   "\"options\":[\"noatime\"],\"timeout_ms\":9}",
				   64, &p, err),
			 0);
	assert_int_equal(p.number, 63);
	assert_true(p.read_only);
	assert_string_equal(p.guest_path, "/layers/1");
	assert_string_equal(p.fs_type, "erofs");
	assert_string_equal(p.options, "noatime");

	struct {
		const char *json;
		unsigned count;
		const char *names;
	} bad[] = {
	    {"[]", 64, "params"},
	    {"{}", 64, "host_path"},
	    {"{\"host_path\":\"\"}", 64, "host_path"},
	    {"{\"host_path\":7}", 64, "host_path"},
	    {"{\"host_path\":\"/l\",\"device\":64}", 64, "device"},
	    {"{\"host_path\":\"/l\",\"device\":-1}", 64, "device"},
	    {"{\"host_path\":\"/l\",\"device\":0}", 0, "vpmem_count"},
	    {"{\"host_path\":\"/l\",\"fs_type\":\"xfs\"}", 64, "fs_type"},
	    {"{\"host_path\":\"/l\",\"fs_type\":\"erofs\"}", 64, "read_only"},
	    {"{\"host_path\":\"/l\",\"guest_path\":\"rel\"}", 64, "guest_path"},
	    {"{\"host_path\":\"/l\",\"read_only\":1}", 64, "read_only"},
	    {"{\"host_path\":\"/l\",\"options\":[1]}", 64, "options"},
	    {"{\"host_path\":\"/l\",\"timeout_ms\":0}", 64, "timeout_ms"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse_add(bad[i].json, bad[i].count, &p, err), -EINVAL);
		if (!strstr(err, bad[i].names))
			fail_msg("%s: '%s' does not name %s", bad[i].json, err, bad[i].names);
	}
}

static void test_parse_remove(void **state)
{
	char err[CTL_ERRLEN];
	unsigned n;
	cJSON *o;

	o = cJSON_Parse("{\"device\":5}");
	assert_int_equal(vpmem_parse_remove(o, 8, &n, err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(vpmem_parse_remove(o, 5, &n, err), -EINVAL);
	cJSON_Delete(o);
	o = cJSON_Parse("{}");
	assert_int_equal(vpmem_parse_remove(o, 8, &n, err), -EINVAL);
	assert_non_null(strstr(err, "device"));
	cJSON_Delete(o);
}

static void test_numbers(void **state)
{
	static struct vpmem vp;
	struct vpmem_params p = {.number = -1, .host_path = "/x", .fs_type = "ext4"};
	struct vpmem_dev *d[4];

	vpmem_init(&vp, 3, 4096);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vpmem_reserve(&vp, &p, &d[i]), 0);
		assert_int_equal(d[i]->number, i);
	}
	assert_int_equal(vpmem_reserve(&vp, &p, &d[3]), -ENOSPC);
	vpmem_release(d[1]);
	assert_null(vpmem_find(&vp, 1));
	p.number = 2;
	assert_int_equal(vpmem_reserve(&vp, &p, &d[3]), -EEXIST);
	p.number = 3;
	assert_int_equal(vpmem_reserve(&vp, &p, &d[3]), -ENOSPC); /* past the count */
	p.number = -1;
	assert_int_equal(vpmem_reserve(&vp, &p, &d[3]), 0); /* the freed number */
	assert_int_equal(d[3]->number, 1);
	assert_ptr_equal(vpmem_find(&vp, 1), d[3]);
	assert_int_equal(vpmem_count_used(&vp), 3);
	for (int i = 0; i < 3; i++)
		vpmem_release(&vp.devs[i]);
	assert_int_equal(vpmem_count_used(&vp), 0);
	vpmem_init(&vp, 1000, 4096); /* capped */
	assert_int_equal(vp.count, VPMEM_MAX_COUNT);
}

/* ---- the methods through a real ctl, cold (no guest), on a machine without KVM ---------- */

static struct vpmem g_vp;

static void m_add(void *opaque, struct ctl_req *req)
{
	vpmem_method_add(&g_vp, NULL, false, req);
}

static void m_remove(void *opaque, struct ctl_req *req)
{
	vpmem_method_remove(&g_vp, NULL, false, req);
}

static const struct ctl_method methods[] = {
    {"vpmem.add", m_add, 0, 0},
    {"vpmem.remove", m_remove, 0, 0},
    {NULL, NULL, 0, 0},
};

static void call(struct ctl *ctl, int rfd, const char *line, char *out, size_t len)
{
	ssize_t n;

	ctl_feed(ctl, line, strlen(line));
	n = read(rfd, out, len - 1);
	assert_true(n > 0);
	out[n] = '\0';
}

static void test_methods_cold(void **state)
{
	struct mem_slots *slots;
	struct tmach m;
	struct ctl *ctl;
	char out[1024], line[512], path[] = "/tmp/uvm-test-vpmem-XXXXXX";
	int fds[2], fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(mem_slots_create(&slots, -1, 68ULL << 30, 72ULL << 30, true), 0);
	assert_int_equal(pipe(fds), 0);
	vpmem_init(&g_vp, 2, 8192);
	assert_int_equal(
	    ctl_create(&ctl, &(struct ctl_config){.out_fd = fds[1], .methods = methods}), 0);

	/* No machine bound yet: a host error, no number kept. */
	snprintf(line, sizeof(line),
		 "{\"id\":1,\"method\":\"vpmem.add\",\"params\":{\"host_path\":\"%s\"}}\n", path);
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "\"error\""));
	assert_int_equal(vpmem_count_used(&g_vp), 0);

	vpmem_bind(&g_vp, m.pbus, m.mem, NULL, NULL, slots);
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "\"device\":0"));
	assert_non_null(strstr(out, "\"guest_device\":null"));
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "\"device\":1"));
	assert_int_equal(mem_slots_count(slots), 2);
	/* Over the count. */
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "-32004"));
	assert_non_null(strstr(out, "in use"));
	call(ctl, fds[0], "{\"id\":2,\"method\":\"vpmem.remove\",\"params\":{\"device\":1}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "\"result\":{\"device\":1}"));
	assert_int_equal(mem_slots_count(slots), 1);
	/* Over the maximum size: a clear error, nothing left behind. */
	assert_int_equal(ftruncate(fd, 3 * 4096), 0);
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "-32602"));
	assert_non_null(strstr(out, "maximum"));
	/* Not a page multiple. */
	assert_int_equal(ftruncate(fd, 4096 + 1), 0);
	call(ctl, fds[0], line, out, sizeof(out));
	assert_non_null(strstr(out, "multiple of 4096"));
	/* A directory. */
	call(ctl, fds[0],
	     "{\"id\":3,\"method\":\"vpmem.add\",\"params\":{\"host_path\":\"/tmp\"}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "directory"));
	assert_int_equal(mem_slots_count(slots), 1);
	assert_int_equal(vpmem_count_used(&g_vp), 1);
	call(ctl, fds[0], "{\"id\":4,\"method\":\"vpmem.remove\",\"params\":{\"device\":1}}\n", out,
	     sizeof(out));
	assert_non_null(strstr(out, "-32003"));

	vpmem_unbind(&g_vp); /* the VM ends: every device goes */
	assert_int_equal(mem_slots_count(slots), 0);
	assert_int_equal(vpmem_count_used(&g_vp), 0);
	ctl_destroy(ctl);
	close(fds[0]);
	close(fds[1]);
	mem_slots_destroy(slots);
	tm_fini(&m);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_limits), cmocka_unit_test(test_parse_add),
	    cmocka_unit_test(test_parse_remove), cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_methods_cold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
