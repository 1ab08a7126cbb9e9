/*
 * serve's container manager (shim/container.c) without a VM: the parameter
 * checks of container.*, states, container.list, and the guest's
 * container_exited / container_oom notifications, hostile ones included
 * (unknown ids, wrong pids, repeats, malformed bodies), turned into events
 * and waits only when they are right.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gcs/protocol.h"
#include "shim/ctl.h"
#include "shim/serve_priv.h"

#define EXITED BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_EXITED)
#define OOM    BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_OOM)

/* What ctl_serve.c's scsi.remove / vpmem.remove do first; here {} when the manager would go on. */
static void m_hold(void *opaque, struct ctl_req *req, bool vpmem)
{
	if (!serve_containers_hold(opaque, req, vpmem))
		ctl_req_result(req, NULL);
}

static void m_vpmem_remove(void *opaque, struct ctl_req *req)
{
	m_hold(opaque, req, true);
}

static void m_scsi_remove(void *opaque, struct ctl_req *req)
{
	m_hold(opaque, req, false);
}

static void m_plan9_remove(void *opaque, struct ctl_req *req)
{
	if (!serve_containers_hold_share(opaque, req))
		ctl_req_result(req, NULL);
}

static const struct ctl_method methods[] = {
    {"vpmem.remove", m_vpmem_remove, 0, 0},
    {"scsi.remove", m_scsi_remove, 0, 0},
    {"plan9.remove", m_plan9_remove, 0, 0},
    {"container.create", serve_container_create, 0, 0},
    {"container.start", serve_container_start, 0, 0},
    {"container.exec", serve_container_exec, 0, 0},
    {"container.signal", serve_container_signal, 0, 0},
    {"container.wait", serve_container_wait, 0, 0},
    {"container.update", serve_container_update, 0, 0},
    {"container.stats", serve_container_stats, 0, 0},
    {"container.list", serve_container_list, 0, 0},
    {"container.delete", serve_container_delete, 0, 0},
    {NULL, NULL, 0, 0},
};

struct fixture {
	struct serve s;
	int out[2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ctl_config cfg = {.methods = methods};

	assert_non_null(f);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	cfg.out_fd = f->out[1];
	cfg.opaque = &f->s;
	assert_int_equal(ctl_create(&f->s.ctl, &cfg), 0);
	f->s.vpmem.count = 64;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	serve_containers_free(&f->s);
	serve_procs_free(&f->s);
	ctl_destroy(f->s.ctl);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

static char *drain(struct fixture *f)
{
	static char buf[1 << 16];
	size_t len = 0;
	ssize_t n;

	while ((n = read(f->out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	return buf;
}

static void feed(struct fixture *f, const char *line)
{
	ctl_feed(f->s.ctl, line, strlen(line));
	ctl_feed(f->s.ctl, "\n", 1);
}

/* One request; its answer must contain want. */
static void expect(struct fixture *f, const char *line, const char *want)
{
	char *got;

	feed(f, line);
	got = drain(f);
	if (!strstr(got, want))
		fail_msg("%s: got %s, wanted %s", line, got, want);
}

/* An entry as container.create leaves it once answered. */
static struct ctr_entry *add_ctr(struct serve *s, const char *id, int pid, enum ctr_state st)
{
	struct ctr_entry *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->m = &s->ctrs;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->pid = pid;
	e->state = st;
	e->next = s->ctrs.list;
	s->ctrs.list = e;
	s->ctrs.count++;
	return e;
}

static void notify(struct fixture *f, uint32_t type, const char *json)
{
	cJSON *b = cJSON_Parse(json);

	assert_non_null(b);
	serve_containers_notify(&f->s, type, b);
	cJSON_Delete(b);
}

static void test_create_params(void **state)
{
	struct fixture *f = *state;
	const char *root = "\"root\":{\"layers\":[{\"vpmem\":0}]}";
	char line[512];

	expect(f, "{\"id\":1,\"method\":\"container.create\",\"params\":{}}", "params.id");
	expect(f, "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"a/b\"}}",
	       "params.id");
	snprintf(line, sizeof(line),
		 "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c\",%s}}", root);
	expect(f, line, "params.spec");
	snprintf(line, sizeof(line),
		 "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c\",\"spec\":"
		 "\"{bad\",%s}}",
		 root);
	expect(f, line, "params.spec: not a JSON object");
	expect(f,
	       "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c\",\"spec\":{}}}",
	       "params.root");
	snprintf(line, sizeof(line),
		 "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c\",\"spec\":{"
		 "\"process\":{\"terminal\":true}},%s,\"stdout\":\"/x\",\"stderr\":\"/y\"}}",
		 root);
	expect(f, line, "params.stderr");
	/* Well-formed, but no guest agent here: said so, nothing kept. */
	snprintf(line, sizeof(line),
		 "{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c\",\"spec\":{},"
		 "%s}}",
		 root);
	expect(f, line, "not connected");
	assert_null(f->s.ctrs.list);
	/* A taken id. */
	add_ctr(&f->s, "c", 5, CTR_RUNNING);
	expect(f, line, "container c already exists");
}

static void test_states(void **state)
{
	struct fixture *f = *state;

	add_ctr(&f->s, "run", 5, CTR_RUNNING);
	add_ctr(&f->s, "stop", 6, CTR_STOPPED);
	add_ctr(&f->s, "new", 7, CTR_CREATING);
	expect(f, "{\"id\":1,\"method\":\"container.start\",\"params\":{\"id\":\"nosuch\"}}",
	       "\"code\":-32003");
	expect(f, "{\"id\":1,\"method\":\"container.start\",\"params\":{\"id\":\"run\"}}",
	       "is running, not created");
	expect(f,
	       "{\"id\":1,\"method\":\"container.exec\",\"params\":{\"id\":\"stop\",\"process\":{"
	       "\"args\":[\"true\"]}}}",
	       "is stopped, not running");
	expect(f, "{\"id\":1,\"method\":\"container.exec\",\"params\":{\"id\":\"run\"}}",
	       "params.process");
	expect(f, "{\"id\":1,\"method\":\"container.delete\",\"params\":{\"id\":\"run\"}}",
	       "delete with force");
	expect(f, "{\"id\":1,\"method\":\"container.delete\",\"params\":{\"id\":\"new\"}}",
	       "\"code\":-32004");
	expect(f,
	       "{\"id\":1,\"method\":\"container.signal\",\"params\":{\"id\":\"stop\","
	       "\"signal\":9}}",
	       "is stopped");
	expect(f,
	       "{\"id\":1,\"method\":\"container.signal\",\"params\":{\"id\":\"run\","
	       "\"signal\":65}}",
	       "params.signal");
	expect(f, "{\"id\":1,\"method\":\"container.update\",\"params\":{\"id\":\"run\"}}",
	       "nothing to update");
	expect(f, "{\"id\":1,\"method\":\"container.list\"}",
	       "{\"id\":\"new\",\"state\":\"creating\",\"pid\":7},{\"id\":\"stop\",\"state\":"
	       "\"stopped\",\"pid\":6},{\"id\":\"run\",\"state\":\"running\",\"pid\":5}");
}

static void test_exit_notifications(void **state)
{
	struct fixture *f = *state;
	struct ctr_entry *e = add_ctr(&f->s, "c1", 42, CTR_RUNNING);
	char *out;

	expect(f, "{\"id\":1,\"method\":\"container.wait\",\"params\":{\"id\":\"c1\"}}", "");
	assert_non_null(e->waiters);
	/* Hostile or wrong: nothing happens. */
	notify(f, EXITED, "{\"id\":\"c2\",\"pid\":42,\"exit_code\":0,\"signal\":0}");
	notify(f, EXITED, "{\"id\":\"c1\",\"pid\":43,\"exit_code\":0,\"signal\":0}");
	notify(f, EXITED, "{\"id\":\"c1\",\"pid\":42,\"exit_code\":1e300,\"signal\":0}");
	notify(f, EXITED, "{\"id\":\"c1\",\"pid\":42,\"exit_code\":0}");
	notify(f, EXITED, "[1,2]");
	notify(f, BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, 99), "{\"id\":\"c1\"}");
	assert_string_equal(drain(f), "");
	assert_false(e->exited);
	/* Right: the event and the wait, once. */
	notify(f, EXITED,
	       "{\"id\":\"c1\",\"pid\":42,\"exit_code\":137,\"signal\":9,\"oom_killed\":true}");
	out = drain(f);
	assert_non_null(strstr(out,
			       "{\"event\":\"container.exited\",\"params\":{\"id\":\"c1\","
			       "\"pid\":42,\"exit_code\":137,\"signal\":9,\"oom_killed\":true}}"));
	assert_non_null(strstr(out, "{\"id\":1,\"result\":{\"id\":\"c1\",\"pid\":42"));
	assert_int_equal(e->state, CTR_STOPPED);
	notify(f, EXITED, "{\"id\":\"c1\",\"pid\":42,\"exit_code\":0,\"signal\":0}");
	assert_string_equal(drain(f), "");
	/* A later wait answers at once. */
	expect(f, "{\"id\":2,\"method\":\"container.wait\",\"params\":{\"id\":\"c1\"}}",
	       "\"exit_code\":137");
}

static void test_oom_notifications(void **state)
{
	struct fixture *f = *state;

	add_ctr(&f->s, "c1", 42, CTR_RUNNING);
	notify(f, OOM, "{\"id\":\"nosuch\",\"oom_kills\":1}");
	notify(f, OOM, "{\"id\":\"c1\",\"oom_kills\":-1}");
	notify(f, OOM, "{\"id\":\"c1\"}");
	assert_string_equal(drain(f), "");
	notify(f, OOM, "{\"id\":\"c1\",\"oom_kills\":2}");
	assert_non_null(strstr(
	    drain(f), "{\"event\":\"container.oom\",\"params\":{\"id\":\"c1\",\"oom_kills\":2}}"));
}

/* The devices a container stands on cannot be removed under it. */
static void test_hold_devices(void **state)
{
	struct fixture *f = *state;
	struct ctr_entry *e = add_ctr(&f->s, "c1", 42, CTR_STOPPED);

	e->devs[0] = (struct ctr_ref){.kind = CTR_REF_VPMEM, .number = 3};
	e->devs[1] = (struct ctr_ref){.kind = CTR_REF_SCSI, .controller = 1, .lun = 7};
	e->nr_devs = 2;
	expect(f, "{\"id\":1,\"method\":\"vpmem.remove\",\"params\":{\"device\":3}}",
	       "\"code\":-32004,\"message\":\"vpmem device 3 is used by container c1");
	expect(f, "{\"id\":1,\"method\":\"vpmem.remove\",\"params\":{\"device\":4}}",
	       "\"result\":{}");
	expect(f,
	       "{\"id\":1,\"method\":\"scsi.remove\",\"params\":{\"controller\":1,"
	       "\"lun\":7}}",
	       "scsi disk 1:7 is used by container c1");
	expect(f,
	       "{\"id\":1,\"method\":\"scsi.remove\",\"params\":{\"controller\":1,"
	       "\"lun\":8}}",
	       "\"result\":{}");
	/* bad params are the manager's to answer */
	expect(f, "{\"id\":1,\"method\":\"vpmem.remove\",\"params\":{\"device\":\"x\"}}",
	       "\"result\":{}");
}

/* A share as shim/plan9.c leaves it once added. */
static void add_share(struct serve *s, int i, const char *name, const char *guest_path, bool ro,
		      bool in_guest)
{
	struct plan9_share *sh = &s->plan9.shares[i];

	sh->state = PLAN9_ATTACHED;
	sh->name = (char *)name;
	sh->guest_path = (char *)guest_path;
	sh->read_only = ro;
	sh->in_guest = in_guest;
}

/* root_fields for root (params.root's JSON): the guest's fields, or the error. */
static void root_case(struct fixture *f, const char *root, int want_ret, const char *want)
{
	cJSON *o = cJSON_Parse(root), *body = cJSON_CreateObject();
	char err[CTL_ERRLEN] = "", *text;
	struct ctr_root r;
	int ret;

	assert_int_equal(container_parse_root(o, &r, err), 0);
	ret = container_root_fields(&f->s, &r, body, err);
	text = cJSON_PrintUnformatted(body);
	if (ret != want_ret || !strstr(ret ? err : text, want))
		fail_msg("%s: %d %s %s, wanted %d %s", root, ret, err, text, want_ret, want);
	cJSON_free(text);
	cJSON_Delete(body);
	cJSON_Delete(o);
}

/* A Plan 9 share as a container's root: read-only under an overlay, writable as it is. */
static void test_plan9_root(void **state)
{
	struct fixture *f = *state;
	struct ctr_entry *e;

	add_share(&f->s, 0, "ro", "/mnt/ro", true, true);
	add_share(&f->s, 1, "rw", "/mnt/rw", false, true);
	add_share(&f->s, 2, "cold", "/mnt/cold", true, false);
	add_share(&f->s, 3, "comma", "/mnt/a,upperdir=/x", true, true);
	root_case(f, "{\"plan9\":\"ro\"}", 0, "{\"layers\":[{\"path\":\"/mnt/ro\"}]}");
	root_case(f, "{\"plan9\":\"ro\",\"subdir\":\"b/rootfs\",\"scratch\":{\"path\":\"/s\"}}", 0,
		  "{\"layers\":[{\"path\":\"/mnt/ro/b/rootfs\"}],\"scratch\":{\"path\":\"/s\","
		  "\"format\":false}}");
	root_case(f, "{\"plan9\":\"rw\",\"subdir\":\"rootfs\"}", 0,
		  "{\"rootfs\":{\"path\":\"/mnt/rw/rootfs\"}}");
	root_case(f, "{\"plan9\":\"rw\",\"scratch\":{\"path\":\"/s\"}}", -EINVAL,
		  "params.root.scratch: share rw is writable");
	root_case(f, "{\"plan9\":\"nosuch\"}", -ENOENT, "no share nosuch mounted");
	root_case(f, "{\"plan9\":\"cold\"}", -ENOENT, "no share cold mounted");
	root_case(f, "{\"plan9\":\"comma\"}", -EINVAL, "cannot be a root");
	f->s.plan9.shares[1].state = PLAN9_REMOVING;
	root_case(f, "{\"plan9\":\"rw\"}", -ENOENT, "no share rw mounted");
	/* The share of a container's root is not removed under it. */
	e = add_ctr(&f->s, "c1", 42, CTR_RUNNING);
	snprintf(e->share, sizeof(e->share), "ro");
	expect(f, "{\"id\":1,\"method\":\"plan9.remove\",\"params\":{\"name\":\"ro\"}}",
	       "\"code\":-32004,\"message\":\"share ro is the root of container c1");
	expect(f, "{\"id\":1,\"method\":\"plan9.remove\",\"params\":{\"name\":\"rw\"}}",
	       "\"result\":{}");
	expect(f, "{\"id\":1,\"method\":\"plan9.remove\",\"params\":{\"name\":5}}",
	       "\"result\":{}");
	/* A vpmem hold does not match an entry without devices. */
	assert_null(container_using(&f->s.ctrs, &(struct ctr_ref){.kind = CTR_REF_VPMEM}));
}

/* The VM's end fails the waits still out. */
static void test_cancel(void **state)
{
	struct fixture *f = *state;

	add_ctr(&f->s, "c1", 42, CTR_RUNNING);
	expect(f, "{\"id\":3,\"method\":\"container.wait\",\"params\":{\"id\":\"c1\"}}", "");
	serve_containers_cancel_all(&f->s);
	assert_non_null(strstr(drain(f), "\"code\":-32009"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_notifications, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom_notifications, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hold_devices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plan9_root, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
