/*
 * Pods: a CRI container joins the VM its sandbox's Create made, over the
 * fake control protocol (no VM): its root shared as its own 9p share, the
 * calls that name it reach its container, its Delete removes its share and
 * leaves the sandbox; a Create that is not of this pod, a pod container
 * whose root needs a host mount, and a container.create that fails are
 * refused with nothing left behind. The annotations' parser against hostile
 * specs.
 */
#include "task_fx.h"

#define POD_SPEC(type, sandbox)                                                                    \
	"{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"true\"]},\"annotations\":{"            \
	"\"io.kubernetes.cri.container-type\":\"" type "\","                                       \
	"\"io.kubernetes.cri.sandbox-id\":\"" sandbox "\"}}"

/* The sandbox sb runs (pid 42) in a started VM; the control protocol is the fake. */
static int setup_pod(void **st)
{
	struct fx *f;

	setup_with(st, true);
	f = *st;
	assert_int_equal(task_new(&f->d->tasks, "sb", f->bundle), 0);
	assert_int_equal(task_proc_started(task_init_proc(f->d->tasks), 42), 0);
	f->d->sandbox_id = strdup("sb");
	f->d->vm_up = f->d->vm_started = true;
	use_fake_ctl(f);
	return 0;
}

/* A bundle dir/<name> with that config.json; its path in out. */
static void bundle_with(struct fx *f, const char *name, const char *spec, char *out, size_t cap)
{
	char path[256];
	FILE *o;

	snprintf(out, cap, "%s/%s", f->bundle, name);
	assert_int_equal(mkdir(out, 0755), 0);
	snprintf(path, sizeof(path), "%s/rootfs", out);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/config.json", out);
	o = fopen(path, "w");
	assert_non_null(o);
	fputs(spec, o);
	fclose(o);
}

static int status_of(struct fx *f, const char *id, uint32_t *pid, uint32_t *exit_status)
{
	Uvm__Ctrd__TaskIdRequest q = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__StateResponse *r;
	int status, code;

	q.id = (char *)id;
	code = call(f, "State", &q.base, NULL, 0);
	if (code)
		return -code;
	r = uvm__ctrd__state_response__unpack(NULL, f->last_len, f->last);
	assert_non_null(r);
	status = r->status;
	if (pid)
		*pid = r->pid;
	if (exit_status)
		*exit_status = r->exit_status;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return status;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_sandbox_of_hostile(void **st)
{
	static const char *const not_pod[] = {
	    "{}",
	    "{\"annotations\":[]}",
	    "{\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\"}}",
	    POD_SPEC("sandbox", "sb"),
	    "{\"annotations\":{\"io.kubernetes.cri.container-type\":\"container\"}}",
	    "{\"annotations\":{\"io.kubernetes.cri.container-type\":7,"
	    "\"io.kubernetes.cri.sandbox-id\":\"sb\"}}",
	    "{\"annotations\":{\"io.kubernetes.cri.container-type\":\"container\","
	    "\"io.kubernetes.cri.sandbox-id\":null}}",
	};
	static const char *const bad[] = {
	    "",
	    "[",
	    "null",
	    "\"x\"",
	    "[1,2]",
	    POD_SPEC("container", "../etc"),
	    POD_SPEC("container", ""),
	    POD_SPEC("container", "a/b"),
	    POD_SPEC("container",
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
	};
	char out[128], tiny[3];

	for (size_t i = 0; i < sizeof(not_pod) / sizeof(not_pod[0]); i++)
		assert_int_equal(task_pod_sandbox_of(not_pod[i], out, sizeof(out)), -ENOENT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(task_pod_sandbox_of(bad[i], out, sizeof(out)) < 0);
	assert_int_equal(task_pod_sandbox_of(POD_SPEC("container", "sb-1"), out, sizeof(out)), 0);
	assert_string_equal(out, "sb-1");
	assert_int_equal(task_pod_sandbox_of(POD_SPEC("container", "sb-1"), tiny, sizeof(tiny)),
			 -ENAMETOOLONG);
}

/* c1 joins with a read-only bind root; it runs, exits, is deleted; the sandbox stays. */
static void test_container_joins_pod(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__ShutdownRequest sd = UVM__CTRD__SHUTDOWN_REQUEST__INIT;
	Uvm__Ctrd__CreateTaskResponse *cr;
	Uvm__Ctrd__Mount m = UVM__CTRD__MOUNT__INIT, *ms[] = {&m};
	char *opts[] = {"rbind", "ro"};
	char bundle[128], snap[128], share[64], msg[512];
	cJSON *exited;
	uint32_t pid, status;

	bundle_with(f, "c1", POD_SPEC("container", "sb"), bundle, sizeof(bundle));
	snprintf(snap, sizeof(snap), "%s/snap", f->bundle);
	assert_int_equal(mkdir(snap, 0755), 0);
	m.type = "bind";
	m.source = snap;
	m.options = opts;
	m.n_options = 2;
	c.id = "c1";
	c.bundle = bundle;
	c.n_rootfs = 1;
	c.rootfs = ms;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), 0);
	cr = uvm__ctrd__create_task_response__unpack(NULL, f->last_len, f->last);
	assert_non_null(cr);
	assert_int_equal(cr->pid, 101);
	protobuf_c_message_free_unpacked(&cr->base, NULL);
	/* Its root: the bind's source as it is, read-only, a share of its own. */
	assert_int_equal(f->fake.shares_added, 1);
	assert_string_equal(str(f->fake.share_params, "host_path"), snap);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f->fake.share_params, "read_only")));
	snprintf(share, sizeof(share), "%s", str(f->fake.share_params, "name"));
	assert_string_not_equal(share, TASK_ROOTFS_SHARE);
	assert_string_equal(str(f->fake.ctr_params, "id"), "c1");
	assert_string_equal(str(cJSON_GetObjectItem(f->fake.ctr_params, "root"), "plan9"), share);
	assert_int_equal(f->fake.creates, 0); /* no second VM */
	assert_int_equal(status_of(f, "c1", &pid, NULL), TASK_CREATED);
	assert_int_equal(pid, 101);
	assert_int_equal(status_of(f, "sb", &pid, NULL), TASK_RUNNING);
	assert_int_equal(pid, 42);
	/* The same id again; Pause of a pod's container (the VM is the pod's). */
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_ALREADY_EXISTS);
	id.id = "c1";
	assert_int_equal(call(f, "Start", &id.base, msg, sizeof(msg)), 0);
	assert_int_equal(status_of(f, "c1", NULL, NULL), TASK_RUNNING);
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(msg, "sandbox"));
	assert_int_equal(f->fake.pauses, 0);
	assert_int_equal(call(f, "Connect", &id.base, msg, sizeof(msg)), 0);
	/* Its exit is its own; Shutdown keeps the shim while tasks remain. */
	exited = cJSON_Parse("{\"id\":\"c1\",\"exit_code\":3}");
	task_on_event(f->d, "container.exited", exited);
	cJSON_Delete(exited);
	assert_int_equal(status_of(f, "c1", NULL, &status), TASK_STOPPED);
	assert_int_equal(status, 3);
	assert_int_equal(status_of(f, "sb", NULL, NULL), TASK_RUNNING);
	assert_int_equal(call(f, "Delete", &id.base, msg, sizeof(msg)), 0);
	assert_int_equal(f->fake.ctr_deletes, 1);
	assert_int_equal(f->fake.shares_removed, 1);
	assert_string_equal(str(f->fake.params, "name"), share);
	assert_int_equal(status_of(f, "c1", NULL, NULL), -TTRPC_NOT_FOUND);
	sd.id = "c1";
	assert_int_equal(call(f, "Shutdown", &sd.base, NULL, 0), 0);
	assert_false(f->d->exiting);
	/* The VM goes: the sandbox's init ends with it. */
	task_on_event(f->d, "vm.exited", NULL);
	assert_int_equal(status_of(f, "sb", NULL, &status), TASK_STOPPED);
	assert_int_equal(status, 255);
}

/* Creates that may not join: each refused, no share, container or task left. */
static void test_join_refused(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__Mount m = UVM__CTRD__MOUNT__INIT, *ms[] = {&m};
	char *opts[] = {"lowerdir=/nonexistent/l", "upperdir=/nonexistent/u",
			"workdir=/nonexistent/w"};
	char bundle[128], msg[512];

	/* Not a pod container: no annotations, or another pod's. */
	bundle_with(f, "plain", "{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"true\"]}}",
		    bundle, sizeof(bundle));
	c.id = "plain";
	c.bundle = bundle;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "io.kubernetes.cri.sandbox-id=sb"));
	bundle_with(f, "other", POD_SPEC("container", "sb2"), bundle, sizeof(bundle));
	c.id = "other";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	/* A bind whose source is relative. */
	bundle_with(f, "rel", POD_SPEC("container", "sb"), bundle, sizeof(bundle));
	c.id = "rel";
	m.type = "bind";
	m.source = "snap";
	m.options = opts;
	m.n_options = 0;
	opts[0] = "rbind";
	m.n_options = 1;
	c.n_rootfs = 1;
	c.rootfs = ms;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "absolute"));
	/* An overlay: mounting it on the host is refused or fails (no such layers). */
	bundle_with(f, "ovl", POD_SPEC("container", "sb"), bundle, sizeof(bundle));
	c.id = "ovl";
	m.type = "overlay";
	m.source = "overlay";
	opts[0] = "lowerdir=/nonexistent/l";
	m.n_options = 3;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "overlay"));
	/* container.create fails after the share was added: the share goes again. */
	bundle_with(f, "bad", POD_SPEC("container", "sb"), bundle, sizeof(bundle));
	c.id = "bad";
	c.n_rootfs = 0;
	f->fake.fail = CTL_ERR_GUEST;
	f->fake.fail_method = "container.create";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_UNKNOWN);
	assert_int_equal(f->fake.shares_added, 1);
	assert_int_equal(f->fake.shares_removed, 1);
	assert_int_equal(f->fake.creates, 0);
	assert_int_equal(f->fake.signals + f->fake.pauses, 0);
	for (struct task *t = f->d->tasks; t; t = t->next)
		assert_string_equal(t->id, "sb");
	/* Once the VM is gone nothing joins. */
	f->fake.fail = 0;
	task_on_event(f->d, "vm.exited", NULL);
	c.id = "late";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "gone"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sandbox_of_hostile),
	    cmocka_unit_test_setup_teardown(test_container_joins_pod, setup_pod, teardown),
	    cmocka_unit_test_setup_teardown(test_join_refused, setup_pod, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
