/*
 * serve's state across guest messages (issue 9): a fuzzed sequence of parent
 * requests (guest.exec, process.wait/signal/resize, guest.properties,
 * guest.dump_stacks, scsi.add/remove) interleaved with a fuzzed guest that
 * answers them (any status, pid, type, order), sends exit notifications for
 * any pid, and writes junk on the bridge stream, with the event loop's
 * deferred work run between steps. ASan/UBSan catch memory errors, LSan what
 * the teardown leaves behind.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/ctl.h"
#include "shim/serve_priv.h"
#include "tests/unit/fake_gcs.h"
#include "tests/unit/virtio_test_util.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#include "fuzz_input.h"

#define MAX_PENDING 64

static char disk[] = "/tmp/fuzz_serve_disk_XXXXXX";
static struct serve *g_s;

static void m_scsi_add(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	scsi_method_add(&s->scsi, s->bridge, true, req);
}

static void m_scsi_remove(void *opaque, struct ctl_req *req)
{
	struct serve *s = opaque;

	scsi_method_remove(&s->scsi, s->bridge, true, req);
}

static const struct ctl_method methods[] = {
    {"guest.exec", serve_guest_exec, 0, 0},
    {"guest.properties", serve_guest_properties, 0, 0},
    {"guest.dump_stacks", serve_guest_dump_stacks, 0, 0},
    {"process.wait", serve_process_wait, 0, 0},
    {"process.signal", serve_process_signal, 0, 0},
    {"process.resize", serve_process_resize, 0, 0},
    {"scsi.add", m_scsi_add, 0, 0},
    {"scsi.remove", m_scsi_remove, 0, 0},
    {NULL, NULL, 0, 0},
};

static void on_ready(void *o, int err, const cJSON *answer)
{
}

static void on_closed(void *o)
{
}

static const struct bridge_ops ops = {
    .ready = on_ready, .process_exited = serve_on_process_exited, .closed = on_closed};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd = mkstemp(disk);

	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	log_threshold = LOG_ERROR;
	return 0;
}

static void parent(struct ctl *ctl, struct in *in, int id)
{
	static const char *const pids[] = {"1", "2", "100", "9000", "2147483647"};
	char line[512];
	unsigned op = take(in) % 8, a = take(in);

	switch (op) {
	case 0:
		snprintf(line, sizeof(line),
			 "{\"id\":%d,\"method\":\"guest.exec\",\"params\":{\"argv\":[\"x\"]%s}}\n",
			 id, a & 1 ? ",\"tty\":true" : "");
		break;
	case 1:
	case 2:
	case 3:
		snprintf(line, sizeof(line),
			 "{\"id\":%d,\"method\":\"process.%s\",\"params\":{\"pid\":%s,"
			 "\"signal\":9,\"rows\":3,\"cols\":4}}\n",
			 id, op == 1 ? "wait" : op == 2 ? "signal" : "resize", pids[a % 5]);
		break;
	case 4:
		snprintf(line, sizeof(line), "{\"id\":%d,\"method\":\"guest.properties\"}\n", id);
		break;
	case 5:
		/* Costly (captures the shim's own stacks): rarely. */
		if (a < 250)
			return;
		snprintf(line, sizeof(line), "{\"id\":%d,\"method\":\"guest.dump_stacks\"}\n", id);
		break;
	case 6:
		snprintf(line, sizeof(line),
			 "{\"id\":%d,\"method\":\"scsi.add\",\"params\":{\"controller\":0,\"lun\":%u,"
			 "\"host_path\":\"%s\"%s}}\n",
			 id, a % 3, disk, a & 4 ? ",\"guest_path\":\"/m\"" : "");
		break;
	default:
		snprintf(line, sizeof(line),
			 "{\"id\":%d,\"method\":\"scsi.remove\",\"params\":{\"controller\":0,"
			 "\"lun\":%u}}\n",
			 id, a % 3);
		break;
	}
	ctl_feed(ctl, line, strlen(line));
}

/* The guest answers one of the requests it has seen (or a made-up one). */
static void guest_answer(struct fake_gcs *g, struct in *in, struct bridge_hdr *pend, int *npend)
{
	static const char *const bodies[] = {
	    "{\"status\":0,\"pid\":%d}",
	    "{\"status\":%d,\"error\":\"no\"}",
	    "{\"status\":0,\"exit_code\":%d,\"signal\":9}",
	    "{\"status\":0,\"device\":\"/dev/vd%d\"}",
	    "{\"status\":%d}",
	    "{\"status\":0,\"processes\":[],\"memory\":{},\"x\":%d}",
	    "{\"status\":0,\"threads\":[{\"tid\":%d,\"frames\":[1,\"x\",{}]}]}",
	    "[%d]",
	};
	unsigned pick = take(in), kind = take(in);
	struct bridge_hdr h;
	char body[256];
	int32_t v = take32(in);

	if (*npend && pick % 8) {
		h = pend[pick % *npend];
		pend[pick % *npend] = pend[--*npend];
		h.type = kind & 0x80 ? h.type + (kind & 0xf) : bridge_response_type(h.type);
	} else {
		h.type = bridge_response_type(
		    BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC));
		h.id = (uint64_t)v;
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	/* Each template takes one int. */
	snprintf(body, sizeof(body), bodies[kind % 8], kind & 0x40 ? v : (int)(v & 0xff) - 8);
#pragma GCC diagnostic pop
	fake_gcs_msg(g, h.type, 0, h.id, body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct bridge_hdr pend[MAX_PENDING], h;
	struct serve s = {0};
	struct fake_gcs g = {0};
	struct tmach m;
	char body[4096];
	int out, npend = 0, id = 1;

	out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (out < 0 || tm_init(&m, 1 << 16) || loop_create(&s.loop) ||
	    ctl_create(&s.ctl, &(struct ctl_config){.out_fd = out, .methods = methods,
						    .opaque = &s}) ||
	    vsock_engine_create(&s.vs, FAKE_GCS_CID) || bridge_create(&s.bridge, s.vs, &ops, &s))
		abort();
	g_s = &s;
	scsi_init(&s.scsi);
	scsi_bind(&s.scsi, m.pbus, m.mem, s.loop, NULL, 1);
	if (fake_gcs_connect(&g, s.vs))
		abort();
	while (in.n) {
		unsigned op = take(&in) % 6;

		if (op <= 1) {
			parent(s.ctl, &in, id++);
		} else if (op == 2) {
			guest_answer(&g, &in, pend, &npend);
		} else if (op == 3) {
			char ev[128];

			snprintf(ev, sizeof(ev), "{\"pid\":%d,\"exit_code\":%d,\"signal\":0}",
				 (int)take32(&in), (int)take(&in));
			fake_gcs_msg(&g,
				     BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS,
						 BRIDGE_NOTIFY_PROCESS_EXITED),
				     0, 0, ev);
		} else if (op == 4) {
			size_t n = take(&in) % 48;

			if (n > in.n)
				n = in.n;
			fake_gcs_pkt(&g, VSOCK_OP_RW, in.p, (uint32_t)n);
			in.p += n;
			in.n -= n;
		} else {
			loop_run_once(s.loop, 0);
		}
		/* What the shim sent: remember the requests, so they can be answered. */
		for (int r; (r = fake_gcs_next(&g, &h, body, sizeof(body))) != -1;) {
			if (r == -2) {
				/* The shim reset the stream: dial again, as the GCS would. */
				fake_gcs_fini(&g);
				npend = 0;
				if (fake_gcs_connect(&g, s.vs))
					break;
				continue;
			}
			if (r == 0 && npend < MAX_PENDING)
				pend[npend++] = h;
		}
	}
	/* Teardown in serve's order: pending requests fail, records and disks go. */
	bridge_destroy(s.bridge);
	serve_procs_free(&s);
	scsi_unbind(&s.scsi);
	vsock_engine_destroy(s.vs);
	fake_gcs_fini(&g);
	ctl_destroy(s.ctl);
	loop_destroy(s.loop);
	tm_fini(&m);
	close(out);
	return 0;
}
