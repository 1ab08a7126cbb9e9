/*
 * The host ends of guest streams on hostile packets (issue 9): a stdin relay
 * and a stdout relay (shim/bridge_stdio.c) on pipes, and guest connections
 * through the Unix socket convention (virtio/vsock_uds.c) to a host listener,
 * driven by a script of guest packets (requests, data, shutdowns, resets,
 * credit with made-up counters, to any of those ports) and host moves (write,
 * read, stop reading, close), with the event loop run between steps.
 * ASan/UBSan catch memory errors, LSan what the teardown leaves behind.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim/bridge.h"
#include "virtio/vsock.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#include "fuzz_input.h"

#define CID	 5
#define UDS_PORT 700

static char dir[] = "/tmp/fuzz_relay_XXXXXX";
static char sock_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/v.sock", dir);
	log_threshold = LOG_ERROR;
	signal(SIGPIPE, SIG_IGN); /* as run and serve do: a reader gone is an EPIPE */
	return 0;
}

static void done(void *opaque)
{
	(*(int *)opaque)++;
}

static void guest_pkt(struct vsock *vs, struct in *in, const uint32_t *ports, uint32_t gport)
{
	static const uint16_t ops[] = {VSOCK_OP_REQUEST,	VSOCK_OP_RW,
				       VSOCK_OP_SHUTDOWN,	VSOCK_OP_RST,
				       VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_CREDIT_REQUEST,
				       VSOCK_OP_RESPONSE};
	uint8_t payload[256];
	unsigned sel = take(in), len = 0;
	struct vsock_hdr h = {.src_cid = CID,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = gport + (sel >> 6),
			      .dst_port = ports[sel % 3],
			      .type = VSOCK_TYPE_STREAM,
			      .op = ops[take(in) % 7],
			      .flags = take(in) & 3,
			      .buf_alloc = take(in) & 1 ? take32(in) : 1 << 18,
			      .fwd_cnt = take(in) & 1 ? take32(in) : 0};
	struct iovec iov[2] = {{&h, sizeof(h)}, {payload, 0}};

	if (h.op == VSOCK_OP_RW) {
		len = take(in) % sizeof(payload);
		for (unsigned i = 0; i < len; i++)
			payload[i] = (uint8_t)take(in);
	}
	h.len = len;
	iov[1].iov_len = len;
	vsock_tx(vs, iov, len ? 2 : 1, sizeof(h) + len);
}

static void drain_guest(struct vsock *vs)
{
	static uint8_t buf[4096 + VSOCK_HDR_SIZE];
	struct iovec iov = {buf, sizeof(buf)};

	for (int budget = 64; vsock_rx_pending(vs) && budget--;)
		if (vsock_rx(vs, &iov, 1, sizeof(buf)) <= 0)
			break;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stdio_relay *rin = NULL, *rout = NULL;
	struct vsock_uds *uds = NULL;
	struct vsock *vs;
	struct loop *loop;
	int in_pipe[2], out_pipe[2], lfd, accepted[8], nacc = 0, dones = 0;
	uint32_t ports[3] = {0, 0, UDS_PORT};
	char buf[4096];

	if (vsock_engine_create(&vs, CID) || loop_create(&loop) ||
	    pipe2(in_pipe, O_CLOEXEC | O_NONBLOCK) || pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK))
		abort();
	if (stdio_relay_create(&rin, vs, loop, in_pipe[0], STDIO_TO_GUEST, NULL, NULL, &ports[0]) ||
	    stdio_relay_create(&rout, vs, loop, out_pipe[1], STDIO_FROM_GUEST, done, &dones,
			       &ports[1]) ||
	    vsock_uds_create(&uds, vs, loop, sock_path))
		abort();
	/* A host program listening for guest connections to port UDS_PORT. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", sock_path, UDS_PORT);
	unlink(sa.sun_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 16))
		abort();

	while (in.n) {
		unsigned op = take(&in) % 8;

		switch (op) {
		case 0:
		case 1:
		case 2:
			guest_pkt(vs, &in, ports, 4000);
			break;
		case 3: /* the parent writes stdin */
			if (in_pipe[1] >= 0) {
				size_t n = take(&in) * 16;

				memset(buf, 'i', sizeof(buf));
				if (write(in_pipe[1], buf, n < sizeof(buf) ? n : sizeof(buf)) < 0) {
					/* full: the relay must hold back, not lose */
				}
			}
			break;
		case 4: /* the parent reads stdout, or closes stdin / stdout */
			if (take(&in) & 1) {
				if (read(out_pipe[0], buf, sizeof(buf)) < 0) {
					/* nothing yet */
				}
			} else if (in_pipe[1] >= 0) {
				close(in_pipe[1]);
				in_pipe[1] = -1;
			} else if (out_pipe[0] >= 0) {
				close(out_pipe[0]);
				out_pipe[0] = -1;
			}
			break;
		case 5: /* the host program accepts, talks, or goes away */
			if (nacc < 8) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (fd >= 0)
					accepted[nacc++] = fd;
			}
			if (nacc && take(&in) & 1) {
				close(accepted[--nacc]);
			} else if (nacc) {
				if (write(accepted[nacc - 1], "host", 4) < 0 ||
				    read(accepted[nacc - 1], buf, sizeof(buf)) < 0) {
					/* would block */
				}
			}
			break;
		case 6:
			drain_guest(vs);
			break;
		default:
			loop_run_once(loop, 0);
			break;
		}
	}
	drain_guest(vs);
	loop_run_once(loop, 0);
	stdio_relay_destroy(rin);
	stdio_relay_destroy(rout);
	vsock_uds_destroy(uds);
	vsock_engine_destroy(vs);
	loop_destroy(loop);
	for (int i = 0; i < nacc; i++)
		close(accepted[i]);
	close(lfd);
	unlink(sa.sun_path);
	for (int i = 0; i < 2; i++) {
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
	}
	return 0;
}
