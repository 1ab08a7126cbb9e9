/*
 * The Task service without a VM: bad input gets an error status and the
 * daemon keeps serving on the same connection (unknown methods, payloads
 * that do not decode, bad ids, a bundle without config.json, a VM that
 * cannot be created, calls for a task that does not exist), then Shutdown.
 * Pause, Resume and Update of a running task over a fake control protocol
 * (no VM here): the calls it receives, State while paused, what a paused
 * task refuses, the events containerd gets, hostile resources.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/ctl.h"
#include "shim/proto/events.pb-c.h"
#include "shim/proto/task.pb-c.h"
#include "shim/proto/runtimeoptions.pb-c.h"
#include "shim/task_options.h"
#include "shim/task_priv.h"
#include "vmm/loop.h"

#include "task_fx.h"

static void test_bad_input_keeps_serving(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__KillRequest k = UVM__CTRD__KILL_REQUEST__INIT;
	char msg[512];

	id.id = "t1";
	assert_int_equal(call(f, "Checkpoint", &id.base, msg, sizeof(msg)), TTRPC_UNIMPLEMENTED);
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_NOT_FOUND);
	assert_int_equal(call(f, "Resume", &id.base, msg, sizeof(msg)), TTRPC_NOT_FOUND);
	assert_int_equal(call(f, "Update", &id.base, msg, sizeof(msg)), TTRPC_NOT_FOUND);
	assert_int_equal(call_raw(f, "Pause", "\x0a\xff\xff\xff", 4), TTRPC_INVALID_ARGUMENT);
	assert_int_equal(call_raw(f, "Resume", "\x12", 1), TTRPC_INVALID_ARGUMENT);
	/* resources (field 2) claims more bytes than the payload has */
	assert_int_equal(call_raw(f, "Update", "\x0a\x02t1\x12\x40\x0a", 7),
			 TTRPC_INVALID_ARGUMENT);
	assert_int_equal(call(f, "Connect", &id.base, msg, sizeof(msg)), TTRPC_NOT_FOUND);
	assert_non_null(strstr(msg, "t1"));
	assert_int_equal(call(f, "State", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	assert_int_equal(call(f, "Wait", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	k.id = "t1";
	k.signal = 9;
	assert_int_equal(call(f, "Kill", &k.base, NULL, 0), TTRPC_NOT_FOUND);
	assert_int_equal(call_raw(f, "Create", "\xff\xff", 2), TTRPC_INVALID_ARGUMENT);
	c.id = "../t1";
	c.bundle = f->bundle;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "id"));
	c.id = "t1";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "config.json"));
	c.checkpoint = "/cp";
	assert_int_equal(call(f, "Create", &c.base, NULL, 0), TTRPC_UNIMPLEMENTED);
	assert_null(f->d->tasks);
}

/* A VM that cannot be created fails the Create; the task is gone, Shutdown then exits. */
static void test_failed_create_then_shutdown(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__ShutdownRequest sd = UVM__CTRD__SHUTDOWN_REQUEST__INIT;
	char path[128], msg[512];
	FILE *cfg;

	snprintf(path, sizeof(path), "%s/config.json", f->bundle);
	cfg = fopen(path, "w");
	fputs("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"true\"]}}", cfg);
	fclose(cfg);
	snprintf(path, sizeof(path), "%s/rootfs", f->bundle);
	assert_int_equal(mkdir(path, 0755), 0);
	c.id = "t1";
	c.bundle = f->bundle;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "vm.create"));
	assert_null(f->d->tasks);
	assert_false(f->d->vm_creating);
	id.id = "t1";
	assert_int_equal(call(f, "Delete", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	sd.id = "t1";
	assert_int_equal(call(f, "Shutdown", &sd.base, NULL, 0), 0);
	assert_true(f->d->exiting);
}

static void test_pause_resume(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	Uvm__Ctrd__KillRequest k = UVM__CTRD__KILL_REQUEST__INIT;
	Uvm__Ctrd__ExecProcessRequest x = UVM__CTRD__EXEC_PROCESS_REQUEST__INIT;
	Uvm__Ctrd__Any spec = UVM__CTRD__ANY__INIT;
	Uvm__Ctrd__UpdateTaskRequest u = UVM__CTRD__UPDATE_TASK_REQUEST__INIT;
	char msg[512];

	id.id = "t2";
	assert_int_equal(call(f, "Pause", &id.base, NULL, 0), TTRPC_NOT_FOUND);
	id.id = "t1";
	assert_int_equal(state_of(f, ""), TASK_RUNNING);
	assert_int_equal(call(f, "Resume", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "not paused"));
	assert_int_equal(f->fake.resumes, 0);

	x.id = "t1";
	x.exec_id = "e1";
	spec.value.data = (uint8_t *)"{\"args\":[\"true\"]}";
	spec.value.len = strlen((char *)spec.value.data);
	x.spec = &spec;
	assert_int_equal(call(f, "Exec", &x.base, NULL, 0), 0);

	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), 0);
	assert_int_equal(f->fake.pauses, 1);
	next_event(f, "/tasks/paused", "containerd.events.TaskPaused");
	assert_int_equal(state_of(f, ""), TASK_PAUSED);
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "already paused"));
	assert_int_equal(f->fake.pauses, 1);

	/* What needs the guest is refused by name; nothing reaches the control protocol. */
	k.id = "t1";
	k.signal = 9;
	assert_int_equal(call(f, "Kill", &k.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "paused"));
	assert_int_equal(call(f, "Stats", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	u.id = "t1";
	assert_int_equal(call(f, "Update", &u.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "paused"));
	assert_int_equal(call(f, "Delete", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "paused"));
	assert_int_equal(f->fake.signals + f->fake.stats + f->fake.updates, 0);
	/* No exec into a paused task (as runc's shim); one recorded before cannot start. */
	x.exec_id = "e2";
	assert_int_equal(call(f, "Exec", &x.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "paused"));
	assert_null(task_find(f->d->tasks, "e2"));
	id.exec_id = "e1";
	assert_int_equal(call(f, "Start", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "paused"));
	assert_int_equal(state_of(f, "e1"), TASK_CREATED);
	id.exec_id = "";
	assert_int_equal(call(f, "Pids", &id.base, NULL, 0), 0);

	assert_int_equal(call(f, "Resume", &id.base, msg, sizeof(msg)), 0);
	assert_int_equal(f->fake.resumes, 1);
	next_event(f, "/tasks/resumed", "containerd.events.TaskResumed");
	assert_int_equal(state_of(f, ""), TASK_RUNNING);
	assert_int_equal(call(f, "Kill", &k.base, NULL, 0), 0);
	assert_int_equal(f->fake.signals, 1);
}

/* The VM refuses (or cannot) pause: the error, the task still runs; a stopped VM ends a pause. */
static void test_pause_refused_and_vm_gone(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	char msg[512];

	id.id = "t1";
	f->fake.fail = CTL_ERR_WRONG_STATE;
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "vm.pause"));
	assert_false(f->d->tasks->paused);
	assert_false(f->d->pause_busy);
	assert_int_equal(state_of(f, ""), TASK_RUNNING);
	f->fake.fail = 0;
	assert_int_equal(call(f, "Pause", &id.base, NULL, 0), 0);
	f->fake.fail = CTL_ERR_HOST;
	assert_int_not_equal(call(f, "Resume", &id.base, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "vm.resume"));
	assert_int_equal(state_of(f, ""), TASK_PAUSED);
	/* The VM dies while paused: the processes end, nothing is left to resume. */
	task_on_event(f->d, "vm.exited", NULL);
	assert_int_equal(state_of(f, ""), TASK_STOPPED);
	assert_int_equal(call(f, "Resume", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "stopped"));
	assert_int_equal(f->fake.resumes, 1);
}

/* Pause before Start: refused, the VM is not asked. */
static void test_pause_before_start(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__TaskIdRequest id = UVM__CTRD__TASK_ID_REQUEST__INIT;
	char msg[512];

	task_free(f->d->tasks);
	assert_int_equal(task_new(&f->d->tasks, "t1", f->bundle), 0);
	id.id = "t1";
	assert_int_equal(call(f, "Pause", &id.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "not started"));
	assert_int_equal(f->fake.pauses, 0);
}

static int update(struct fx *f, const char *type, const char *json, char *msg, size_t len)
{
	Uvm__Ctrd__UpdateTaskRequest u = UVM__CTRD__UPDATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__Any any = UVM__CTRD__ANY__INIT;

	u.id = "t1";
	any.type_url = (char *)type;
	any.value.data = (uint8_t *)json;
	any.value.len = strlen(json);
	u.resources = &any;
	return call(f, "Update", &u.base, msg, len);
}

#define LINUX_RESOURCES "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

static double param(struct fx *f, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->fake.params, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_update(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__UpdateTaskRequest u = UVM__CTRD__UPDATE_TASK_REQUEST__INIT;
	char msg[512];

	assert_int_equal(
	    update(f, LINUX_RESOURCES,
		   "{\"memory\":{\"limit\":67108864,\"swap\":0},\"cpu\":{\"shares\":1024,"
		   "\"quota\":50000,\"period\":200000,\"cpus\":\"\"},\"pids\":{\"limit\":32},"
		   "\"devices\":[]}",
		   msg, sizeof(msg)),
	    0);
	assert_int_equal(f->fake.updates, 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(f->fake.params, "id")->valuestring,
			    "t1");
	assert_true(param(f, "memory") == 67108864);
	assert_true(param(f, "cpu_quota") == 50000);
	assert_true(param(f, "cpu_period") == 200000);
	assert_true(param(f, "pids") == 32);
	/* shares 1024 of 2..262144 -> weight 39 of 1..10000; the ends map to the ends */
	assert_true(param(f, "cpu_weight") == 39);
	assert_int_equal(update(f, LINUX_RESOURCES, "{\"cpu\":{\"shares\":2}}", NULL, 0), 0);
	assert_true(param(f, "cpu_weight") == 1);
	assert_int_equal(update(f, LINUX_RESOURCES, "{\"cpu\":{\"shares\":1e9}}", NULL, 0), 0);
	assert_true(param(f, "cpu_weight") == 10000);
	assert_int_equal(f->fake.updates, 3);

	/* Nothing set (zero values, annotations only): answered, the guest not asked. */
	assert_int_equal(
	    update(f, LINUX_RESOURCES, "{\"memory\":{\"limit\":0},\"pids\":null}", NULL, 0), 0);
	u.id = "t1";
	assert_int_equal(call(f, "Update", &u.base, NULL, 0), 0);
	assert_int_equal(f->fake.updates, 3);

	/* The control protocol's refusal comes back as its code. */
	f->fake.fail = CTL_ERR_BAD_PARAMS;
	assert_int_equal(update(f, LINUX_RESOURCES, "{\"pids\":{\"limit\":3}}", msg, sizeof(msg)),
			 TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "refused by the fake"));
}

/* Hostile resources: each one answered with its code, none reaches the guest. */
static void test_update_hostile(void **st)
{
	static const struct {
		const char *type, *json;
		int code;
		const char *says;
	} cases[] = {
	    {"types.containerd.io/opencontainers/runtime-spec/1/WindowsResources", "{}", 3,
	     "LinuxResources"},
	    {"", "{}", 3, "LinuxResources"},
	    {LINUX_RESOURCES, "", 3, "object"},
	    {LINUX_RESOURCES, "{\"memory\":", 3, "object"},
	    {LINUX_RESOURCES, "[1]", 3, "object"},
	    {LINUX_RESOURCES, "\"memory\"", 3, "object"},
	    {LINUX_RESOURCES, "{\"memory\":5}", 3, "memory"},
	    {LINUX_RESOURCES, "{\"cpu\":[]}", 3, "cpu"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":\"1g\"}}", 3, "memory.limit"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":1048576.5}}", 3, "memory.limit"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":1e300}}", 3, "memory.limit"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":4096}}", 3, "memory.limit"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":-1}}", 12, "no limit"},
	    {LINUX_RESOURCES, "{\"memory\":{\"limit\":1e7,\"swap\":1}}", 12, "memory.swap"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"period\":100000}}", 12, "cpu.period"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"quota\":10}}", 3, "cpu.quota"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"quota\":-1}}", 12, "cpu.quota"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"quota\":50000,\"period\":10}}", 3, "cpu.period"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"shares\":-5}}", 12, "cpu.shares"},
	    {LINUX_RESOURCES, "{\"cpu\":{\"cpus\":\"0-1\"}}", 12, "cpu.cpus"},
	    {LINUX_RESOURCES, "{\"pids\":{\"limit\":5000000}}", 3, "pids.limit"},
	    {LINUX_RESOURCES, "{\"pids\":{\"limit\":true}}", 3, "pids.limit"},
	    {LINUX_RESOURCES, "{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}", 12,
	     "devices"},
	    {LINUX_RESOURCES, "{\"unified\":{\"memory.high\":\"1\"}}", 12, "unified"},
	    {LINUX_RESOURCES, "{\"blockIO\":{\"weight\":10},\"memory\":{\"limit\":1e7}}", 12,
	     "blockIO"},
	};
	struct fx *f = *st;
	char msg[512], *deep;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int code = update(f, cases[i].type, cases[i].json, msg, sizeof(msg));

		if (code != cases[i].code || !strstr(msg, cases[i].says))
			fail_msg("case %zu (%s): code %d, \"%s\"", i, cases[i].json, code, msg);
	}
	assert_int_equal(f->fake.updates, 0);
	/* Nesting past cJSON's limit does not parse; an empty nest within it sets nothing. */
	deep = malloc(2 * 3000 + 16);
	for (int depth = 3000; depth >= 500; depth -= 2500) {
		size_t n = 0;

		n += sprintf(deep + n, "{\"x\":");
		for (int i = 0; i < depth; i++)
			deep[n++] = '[';
		for (int i = 0; i < depth; i++)
			deep[n++] = ']';
		strcpy(deep + n, "}");
		assert_int_equal(update(f, LINUX_RESOURCES, deep, msg, sizeof(msg)),
				 depth > 1000 ? TTRPC_INVALID_ARGUMENT : 0);
	}
	free(deep);
	assert_int_equal(f->fake.updates, 0);
	assert_int_equal(task_init_proc(f->d->tasks)->status, TASK_RUNNING);
}

/*
 * CreateTaskRequest.options: the config file it names gives vm.create's
 * params (instead of the daemon's default); a file that is missing or does
 * not parse, options of another type or that do not decode fail the Create
 * before any VM is asked for, and the daemon keeps serving: the next Create
 * without options gets the default again.
 */
static void test_create_options(void **st)
{
	struct fx *f = *st;
	Uvm__Ctrd__CreateTaskRequest c = UVM__CTRD__CREATE_TASK_REQUEST__INIT;
	Uvm__Ctrd__RuntimeOptions o = UVM__CTRD__RUNTIME_OPTIONS__INIT;
	Uvm__Ctrd__Any any = UVM__CTRD__ANY__INIT;
	uint8_t val[512], raw[1024];
	char msg[512], good[128], bad[128], missing[128];
	const cJSON *shares;
	size_t n;

	write_file(f, "config.json",
		   "{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"true\"]}}");
	snprintf(good, sizeof(good), "%s",
		 write_file(f, "good.json",
			    "{\"cpus\": 3, \"memory_mib\": 200, \"start_timeout_ms\": 5000}"));
	snprintf(bad, sizeof(bad), "%s", write_file(f, "bad.json", "cpus = 3\n"));
	snprintf(missing, sizeof(missing), "%s/missing.json", f->bundle);
	/* the daemon's default file, as load_config would have read it */
	f->d->vm_config = cJSON_Parse("{\"cpus\": 1, \"memory_mib\": 128}");
	c.id = "t1";
	c.bundle = f->bundle;

	/* no options: the default */
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "vm.create"));
	assert_int_equal(f->fake.creates, 1);
	assert_int_equal(param(f, "cpus"), 1);
	assert_int_equal(param(f, "memory_mib"), 128);

	/* options naming a good file: its params, without start_timeout_ms, plus the share */
	any.type_url = TASK_OPTIONS_TYPE;
	o.config_path = good;
	any.value.data = val;
	any.value.len = uvm__ctrd__runtime_options__pack(&o, val);
	c.options = &any;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_int_equal(f->fake.creates, 2);
	assert_int_equal(param(f, "cpus"), 3);
	assert_int_equal(param(f, "memory_mib"), 200);
	assert_null(cJSON_GetObjectItem(f->fake.params, "start_timeout_ms"));
	shares = cJSON_GetObjectItem(f->fake.params, "plan9");
	assert_int_equal(cJSON_GetArraySize(shares), 1);
	assert_null(f->d->tasks);

	/* a missing file, a file that does not parse: refused before vm.create */
	o.config_path = missing;
	any.value.len = uvm__ctrd__runtime_options__pack(&o, val);
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, missing));
	assert_non_null(strstr(msg, "No such file"));
	o.config_path = bad;
	any.value.len = uvm__ctrd__runtime_options__pack(&o, val);
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "not a JSON object"));
	/* a relative path, options of runc's type */
	o.config_path = "good.json";
	any.value.len = uvm__ctrd__runtime_options__pack(&o, val);
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "absolute"));
	o.config_path = good;
	any.value.len = uvm__ctrd__runtime_options__pack(&o, val);
	any.type_url = "containerd.runc.v1.Options";
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "containerd.runc.v1.Options"));
	/* the options' value claims more bytes than it has: the Create does not decode */
	any.type_url = TASK_OPTIONS_TYPE;
	n = uvm__ctrd__create_task_request__pack(&c, raw);
	assert_true(n > 4);
	assert_int_equal(call_raw(f, "Create", raw, n - 3), TTRPC_INVALID_ARGUMENT);
	assert_int_equal(f->fake.creates, 2);
	assert_null(f->d->tasks);
	assert_false(f->d->vm_creating);

	/* and the daemon serves on: no options is the default again */
	c.options = NULL;
	assert_int_equal(call(f, "Create", &c.base, msg, sizeof(msg)), TTRPC_INVALID_ARGUMENT);
	assert_int_equal(f->fake.creates, 3);
	assert_int_equal(param(f, "cpus"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bad_input_keeps_serving, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_create_then_shutdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_options, setup_fake, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_resume, setup_task, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_refused_and_vm_gone, setup_task, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_before_start, setup_task, teardown),
	    cmocka_unit_test_setup_teardown(test_update, setup_task, teardown),
	    cmocka_unit_test_setup_teardown(test_update_hostile, setup_task, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
