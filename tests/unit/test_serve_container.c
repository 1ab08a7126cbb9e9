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

#include "fake_gcs.h"
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
	/* A delete during the create goes to the guest: here there is none, nothing changes. */
	expect(f, "{\"id\":1,\"method\":\"container.delete\",\"params\":{\"id\":\"new\"}}",
	       "cannot reach the guest agent");
	add_ctr(&f->s, "gone", 8, CTR_DELETING);
	expect(f, "{\"id\":1,\"method\":\"container.delete\",\"params\":{\"id\":\"gone\"}}",
	       "\"code\":-32004,\"message\":\"container gone is deleting");
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
	       "{\"id\":\"gone\",\"state\":\"deleting\",\"pid\":8},{\"id\":\"new\",\"state\":"
	       "\"creating\",\"pid\":7},{\"id\":\"stop\",\"state\":\"stopped\",\"pid\":6},{\"id\":"
	       "\"run\",\"state\":\"running\",\"pid\":5}");
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

/* ---- with a fake guest agent on the bridge ---- */

struct gfixture {
	struct fixture f; /* first: setup/teardown's */
	struct fake_gcs g;
};

static void g_ready(void *o, int err, const cJSON *answer)
{
}

static void g_closed(void *o)
{
}

static void g_notify(void *o, uint32_t type, const cJSON *body)
{
	serve_containers_notify(o, type, body);
}

static const struct bridge_ops gops = {.ready = g_ready,
				       .process_exited = serve_on_process_exited,
				       .notify = g_notify,
				       .closed = g_closed};

static int gsetup(void **state)
{
	struct gfixture *gf = calloc(1, sizeof(*gf));
	struct fixture *f = &gf->f;
	struct ctl_config cfg = {.methods = methods};

	assert_non_null(gf);
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	cfg.out_fd = f->out[1];
	cfg.opaque = &f->s;
	assert_int_equal(ctl_create(&f->s.ctl, &cfg), 0);
	assert_int_equal(vsock_engine_create(&f->s.vs, FAKE_GCS_CID), 0);
	assert_int_equal(bridge_create(&f->s.bridge, f->s.vs, &gops, &f->s), 0);
	assert_int_equal(fake_gcs_connect(&gf->g, f->s.vs), 0);
	*state = gf;
	return 0;
}

static int gteardown(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;

	bridge_destroy(f->s.bridge);
	serve_containers_free(&f->s);
	serve_procs_free(&f->s);
	vsock_engine_destroy(f->s.vs);
	fake_gcs_fini(&gf->g);
	ctl_destroy(f->s.ctl);
	close(f->out[0]);
	close(f->out[1]);
	free(gf);
	return 0;
}

/*
 * A forced delete of a running container: the guest sends the killed
 * init's exit, then the delete's answer, while the init's output may still
 * be on its way. The exit is an event (and the wait's answer) all the same.
 */
static void test_force_delete_reports_the_exit(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct ctr_entry *e = add_ctr(&f->s, "c1", 42, CTR_RUNNING);
	struct sproc *p = calloc(1, sizeof(*p));
	struct bridge_hdr h = {0};
	char body[1024], *out;

	/* its init, whose output is not all relayed yet */
	assert_non_null(p);
	p->s = &f->s;
	guest_proc_init(&p->gp, &serve_proc_ops);
	p->gp.pid = 42;
	p->owner = e;
	p->next = f->s.procs;
	f->s.procs = p;
	f->s.nr_procs++;
	expect(f, "{\"id\":1,\"method\":\"container.wait\",\"params\":{\"id\":\"c1\"}}", "");
	feed(
	    f,
	    "{\"id\":2,\"method\":\"container.delete\",\"params\":{\"id\":\"c1\",\"force\":true}}");
	assert_int_equal(fake_gcs_next(&gf->g, &h, body, sizeof(body)), 0);
	assert_int_equal(bridge_type_rpc(h.type), BRIDGE_RPC_CONTAINER_DELETE);
	assert_non_null(strstr(body, "\"force\":true"));
	assert_int_equal(fake_gcs_msg(&gf->g, EXITED, 0, 0,
				      "{\"id\":\"c1\",\"pid\":42,\"exit_code\":137,\"signal\":9}"),
			 0);
	assert_string_equal(drain(f), ""); /* its output is still coming */
	assert_int_equal(
	    fake_gcs_msg(&gf->g, bridge_response_type(h.type), 0, h.id, "{\"status\":0}"), 0);
	out = drain(f);
	if (!strstr(out, "{\"event\":\"container.exited\",\"params\":{\"id\":\"c1\",\"pid\":42,"
			 "\"exit_code\":137,\"signal\":9") ||
	    !strstr(out, "{\"id\":1,\"result\":{\"id\":\"c1\",\"pid\":42") ||
	    !strstr(out, "{\"id\":2,\"result\":{}}"))
		fail_msg("got %s", out);
	assert_null(f->s.ctrs.list);
	assert_null(p->owner);
}

/* ---- container.delete while the create is out: both answers, in any order ---- */

#define CREATE_LINE                                                                                \
	"{\"id\":1,\"method\":\"container.create\",\"params\":{\"id\":\"c1\",\"spec\":{},"         \
	"\"root\":{\"layers\":[{\"path\":\"/l\"}]}}}"
#define DELETE_LINE "{\"id\":2,\"method\":\"container.delete\",\"params\":{\"id\":\"c1\"}}"

/*
 * The next message the shim sent the guest: its header (rpc checked). The
 * shim may have written several into one packet (a create and a delete
 * sent before the guest read either): they are kept in order here. Only
 * container requests are looked at.
 */
static struct bridge_hdr g_sent(struct gfixture *gf, uint32_t rpc)
{
	static struct bridge_hdr kept[8];
	static unsigned nr_kept;
	static uint8_t pkt[65536 + VSOCK_HDR_SIZE];
	struct iovec iov = {pkt, sizeof(pkt)};
	struct bridge_hdr h;
	long n;

	while (!nr_kept && (n = vsock_rx(gf->g.vs, &iov, 1, sizeof(pkt))) > 0) {
		struct vsock_hdr vh;
		size_t used, off = 0;

		memcpy(&vh, pkt, sizeof(vh));
		if (vh.op != VSOCK_OP_RW)
			continue;
		gf->g.fwd += vh.len;
		while (off < vh.len) {
			struct bridge_rx_event ev;
			enum bridge_rx_result r = bridge_rx_feed(
			    &gf->g.rx, pkt + VSOCK_HDR_SIZE + off, vh.len - off, &used, &ev);

			off += used;
			if (r == BRIDGE_RX_MSG) {
				/* not the init's process wait, once created */
				assert_true(nr_kept < 8);
				if (bridge_type_cat(ev.hdr.type) == BRIDGE_CAT_CONTAINER)
					kept[nr_kept++] = ev.hdr;
				free(ev.body);
			} else {
				assert_int_equal(r, BRIDGE_RX_MORE);
			}
		}
	}
	assert_true(nr_kept > 0);
	h = kept[0];
	memmove(kept, kept + 1, --nr_kept * sizeof(kept[0]));
	assert_int_equal(bridge_type_rpc(h.type), rpc);
	return h;
}

static void g_answer(struct gfixture *gf, const struct bridge_hdr *h, const char *body)
{
	assert_int_equal(fake_gcs_msg(&gf->g, bridge_response_type(h->type), 0, h->id, body), 0);
}

/* The control output holds every one of the strings (NULL-ended). */
static void drained(struct fixture *f, ...)
{
	char *out = drain(f);
	const char *want;
	va_list ap;

	va_start(ap, f);
	while ((want = va_arg(ap, const char *)))
		if (!strstr(out, want))
			fail_msg("got %s, wanted %s", out, want);
	va_end(ap);
}

/*
 * A create, then a delete of it, both out: read by the guest one by one, or
 * together (the delete sent before the guest read the create).
 */
static void both_out(struct gfixture *gf, bool unread, struct bridge_hdr *hc, struct bridge_hdr *hd)
{
	feed(&gf->f, CREATE_LINE);
	if (!unread)
		*hc = g_sent(gf, BRIDGE_RPC_CONTAINER_CREATE);
	feed(&gf->f, DELETE_LINE);
	if (unread)
		*hc = g_sent(gf, BRIDGE_RPC_CONTAINER_CREATE);
	*hd = g_sent(gf, BRIDGE_RPC_CONTAINER_DELETE);
}

/* Nothing left of c1: no entry, no slot, no process record, no request out. */
static void assert_clean(struct fixture *f)
{
	assert_null(f->s.ctrs.list);
	assert_int_equal(f->s.ctrs.count, 0);
	for (struct sproc *p = f->s.procs; p; p = p->next)
		assert_null(p->owner);
	expect(f, "{\"id\":9,\"method\":\"container.list\"}", "{\"containers\":[]}");
}

/*
 * The guest's own order when a delete stops the scratch format: the create
 * fails -ECANCELED, then the delete succeeds. The delete is sent before the
 * guest read the create (both wait in the stream, in order); a second
 * delete meanwhile is refused.
 */
static void test_delete_cancels_create(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	feed(f, CREATE_LINE);
	feed(f, DELETE_LINE);
	assert_string_equal(drain(f), "");
	expect(f, "{\"id\":3,\"method\":\"container.delete\",\"params\":{\"id\":\"c1\"}}",
	       "\"code\":-32004,\"message\":\"container c1 is deleting");
	expect(f,
	       "{\"id\":3,\"method\":\"container.create\",\"params\":{\"id\":\"c1\",\"spec\":{},"
	       "\"root\":{\"layers\":[{\"path\":\"/l\"}]}}}",
	       "container c1 already exists");
	hc = g_sent(gf, BRIDGE_RPC_CONTAINER_CREATE);
	hd = g_sent(gf, BRIDGE_RPC_CONTAINER_DELETE);
	assert_int_equal(f->s.ctrs.count, 1);
	g_answer(gf, &hc,
		 "{\"status\":-125,\"error\":\"container c1: deleted while its scratch was being "
		 "formatted\"}");
	drained(f, "{\"id\":1,\"error\":{\"code\":-32009,\"message\":\"container c1: deleted",
		NULL);
	assert_int_equal(f->s.ctrs.count, 1); /* the delete's answer retires it */
	expect(f, "{\"id\":9,\"method\":\"container.list\"}", "\"state\":\"deleting\"");
	g_answer(gf, &hd, "{\"status\":0}");
	drained(f, "{\"id\":2,\"result\":{}}", NULL);
	assert_clean(f);
	assert_null(f->s.procs); /* the failed create's record went */
	/* Deleted: a third delete finds nothing, the id is free again. */
	expect(f, "{\"id\":4,\"method\":\"container.delete\",\"params\":{\"id\":\"c1\"}}",
	       "\"code\":-32003");
}

/* The create won the race: its pid, then the killed init's exit, then the delete's answer. */
static void test_delete_after_create_answer(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, false, &hc, &hd);
	g_answer(gf, &hc, "{\"status\":0,\"pid\":93}");
	drained(f, "{\"id\":1,\"result\":{\"id\":\"c1\",\"pid\":93}}", NULL);
	expect(f, "{\"id\":9,\"method\":\"container.list\"}",
	       "{\"id\":\"c1\",\"state\":\"deleting\",\"pid\":93}");
	/* still being deleted: start is refused */
	expect(f, "{\"id\":5,\"method\":\"container.start\",\"params\":{\"id\":\"c1\"}}",
	       "is deleting, not created");
	assert_int_equal(fake_gcs_msg(&gf->g, EXITED, 0, 0,
				      "{\"id\":\"c1\",\"pid\":93,\"exit_code\":137,\"signal\":9}"),
			 0);
	g_answer(gf, &hd, "{\"status\":0}");
	drained(f, "\"container.exited\"", "{\"id\":2,\"result\":{}}", NULL);
	assert_clean(f);
	assert_non_null(serve_proc_find(&f->s, 93)); /* its record, for process.wait */
}

/* Hostile: the delete answered before the create; the late create cannot revive it. */
static void test_delete_answered_first(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, false, &hc, &hd);
	g_answer(gf, &hd, "{\"status\":0}");
	drained(f, "{\"id\":2,\"result\":{}}", NULL);
	assert_clean(f);
	g_answer(gf, &hc, "{\"status\":0,\"pid\":93}");
	drained(f, "{\"id\":1,\"error\":{\"code\":-32009,\"message\":\"the container was deleted",
		NULL);
	assert_clean(f);
	/* a repeated answer of either is no request's */
	g_answer(gf, &hd, "{\"status\":0}");
	g_answer(gf, &hc, "{\"status\":-125}");
	assert_string_equal(drain(f), "");
	/* and the id can be created again */
	feed(f, CREATE_LINE);
	hc = g_sent(gf, BRIDGE_RPC_CONTAINER_CREATE);
	assert_int_equal(f->s.ctrs.count, 1);
	g_answer(gf, &hc, "{\"status\":0,\"pid\":94}");
	drained(f, "{\"id\":1,\"result\":{\"id\":\"c1\",\"pid\":94}}", NULL);
}

/* The create failed in the guest, which answers the delete queued behind it -ENOENT: done. */
static void test_delete_after_failed_create(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, true, &hc, &hd);
	g_answer(gf, &hc, "{\"status\":-5,\"error\":\"container c1: layer /l: no such dir\"}");
	drained(f, "{\"id\":1,\"error\":{\"code\":-32002,\"message\":\"container c1: layer", NULL);
	g_answer(gf, &hd, "{\"status\":-2,\"error\":\"no container c1\"}");
	drained(f, "{\"id\":2,\"result\":{}}", NULL);
	assert_clean(f);
	assert_null(f->s.procs);
}

/* A delete the guest refuses leaves the container as it was (created, once answered). */
static void test_delete_refused(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, true, &hc, &hd);
	/* refused while the create is still out: creating again */
	g_answer(gf, &hd, "{\"status\":-5,\"error\":\"container c1: crun: busy\"}");
	drained(f, "{\"id\":2,\"error\":{\"code\":-32002,\"message\":\"container c1: crun: busy",
		NULL);
	expect(f, "{\"id\":9,\"method\":\"container.list\"}", "\"state\":\"creating\"");
	g_answer(gf, &hc, "{\"status\":0,\"pid\":93}");
	drained(f, "{\"id\":1,\"result\":{\"id\":\"c1\",\"pid\":93}}", NULL);
	expect(f, "{\"id\":9,\"method\":\"container.list\"}", "\"state\":\"created\"");
	/* refused once created: created again */
	feed(f, DELETE_LINE);
	hd = g_sent(gf, BRIDGE_RPC_CONTAINER_DELETE);
	g_answer(gf, &hd, "{\"status\":-16,\"error\":\"busy\"}");
	drained(f, "\"code\":-32002", NULL);
	expect(f, "{\"id\":9,\"method\":\"container.list\"}", "\"state\":\"created\"");
	assert_int_equal(f->s.ctrs.count, 1);
}

/* Hostile: the create fails, then the delete fails too: nothing is there to keep. */
static void test_delete_refused_after_failed_create(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, true, &hc, &hd);
	g_answer(gf, &hc, "{\"status\":-125,\"error\":\"cancelled\"}");
	g_answer(gf, &hd, "{\"status\":-5,\"error\":\"odd\"}");
	drained(f, "{\"id\":1,\"error\":{\"code\":-32009", "{\"id\":2,\"error\":{\"code\":-32002",
		NULL);
	assert_clean(f);
	assert_null(f->s.procs);
}

/* The bridge breaks with both out: each is answered, nothing stays. */
static void test_bridge_lost_with_create_and_delete_out(void **state)
{
	struct gfixture *gf = *state;
	struct fixture *f = &gf->f;
	struct bridge_hdr hc, hd;

	both_out(gf, true, &hc, &hd);
	assert_int_equal(fake_gcs_msg(&gf->g, 0, 8, 1, ""), 0); /* broken framing: reset */
	assert_false(bridge_ready(f->s.bridge));
	drained(f, "{\"id\":1,\"error\":{\"code\":-32009", "{\"id\":2,\"error\":{\"code\":-32009",
		NULL);
	assert_clean(f);
	assert_null(f->s.procs);
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
	    cmocka_unit_test_setup_teardown(test_force_delete_reports_the_exit, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_cancels_create, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_after_create_answer, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_answered_first, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_after_failed_create, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_refused, gsetup, gteardown),
	    cmocka_unit_test_setup_teardown(test_delete_refused_after_failed_create, gsetup,
					    gteardown),
	    cmocka_unit_test_setup_teardown(test_bridge_lost_with_create_and_delete_out, gsetup,
					    gteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
