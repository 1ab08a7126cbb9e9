/*
 * The GCS side of the bridge (gcs/protocol.h, docs/protocol.md): dials the
 * host on vsock, negotiates, then serves the host's requests, each through
 * a row of the dispatch table below, until shutdown or the host goes away.
 *
 * It runs as `/init bridge`, the command PID 1 starts: the processes it execs
 * are its children, so it reaps them itself (process.c), and when it ends
 * (shutdown, lost host) PID 1 syncs and ends the VM.
 *
 * One thread runs the loop and nothing in it blocks on a stream: tty relays
 * are non-blocking with bounded buffers (relay.c), disk operations run on
 * workers (scsi.c, storage.c), crun and mke2fs as children it does not wait
 * for (container_crun.c). Only the bridge connection itself is written
 * blocking: without the host reading it there is nothing left to serve.
 *
 * Host-side tests: with UVM_GCS_UNIX=PATH set, every "dial host port P"
 * connects to the Unix socket PATH_P instead (the vsock Unix convention),
 * and UVM_GCS_SYSFS=DIR, if set too, stands for /sys in the disk operations,
 * UVM_GCS_CTR_DIR=DIR for /run/gcs/c and UVM_GCS_MKE2FS=PATH for mke2fs
 * (gcs/selftest-bridge drives it that way).
 */
#include "gcs/bridge.h"
#include "gcs/sock.h"

#include <errno.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#define CONNECT_SECS 30

static struct {
	int fd;	  /* the bridge connection */
	int epfd; /* epoll: every fd the loop watches, data.ptr a struct gcs_watch */
	int sfd;  /* signalfd: SIGCHLD */
	struct gcs_watch fd_w, sfd_w;
	bool negotiated;
	bool quit;
	bool closed; /* the host went away: nothing more is written */
	struct bridge_rx rx;
	const char *unix_base; /* test mode */
} B = {.fd = -1, .epfd = -1, .sfd = -1};

/* ---- the connection ---------------------------------------------------------------- */

int gcs_bridge_dial(uint32_t port)
{
	if (B.unix_base) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s_%u", B.unix_base, port);
		return sock_connect_unix(path);
	}
	struct sockaddr_vm sv = {
	    .svm_family = AF_VSOCK, .svm_cid = BRIDGE_HOST_CID, .svm_port = port};

	return sock_connect((struct sockaddr *)&sv, sizeof(sv));
}

int gcs_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

void gcs_bridge_send(uint32_t type, uint64_t id, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	uint8_t *buf;
	long n;

	cJSON_Delete(obj);
	if (!text || B.closed) {
		free(text);
		return;
	}
	n = bridge_msg_encode(&buf, type, id, text, strlen(text), BRIDGE_MSG_MAX);
	free(text);
	if (n < 0) {
		gcs_log("cannot encode a %s: %s", bridge_type_name(type), strerror(-n));
		return;
	}
	if (gcs_write_all(B.fd, buf, n) < 0) {
		gcs_log_errno("bridge write");
		B.quit = B.closed = true;
	}
	free(buf);
}

void gcs_bridge_respond(uint32_t req_type, uint64_t id, int status, cJSON *body, const char *fmt,
			...)
{
	if (!body)
		body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "status", status);
	if (status && fmt) {
		char msg[512];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cJSON_AddStringToObject(body, "error", msg);
	}
	gcs_bridge_send(bridge_response_type(req_type), id, body);
}

int gcs_bridge_epoll(void)
{
	return B.epfd;
}

int gcs_bridge_watch(int fd, struct gcs_watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	return epoll_ctl(B.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void gcs_bridge_quit(void)
{
	B.quit = true;
}

/* ---- system requests the bridge itself answers -------------------------------------- */

static const char *const caps[] = {
    BRIDGE_CAP_EXEC,	    BRIDGE_CAP_TTY,	 BRIDGE_CAP_SIGNAL, BRIDGE_CAP_PROPERTIES,
    BRIDGE_CAP_DUMP_STACKS, BRIDGE_CAP_SHUTDOWN, BRIDGE_CAP_SCSI,   BRIDGE_CAP_PLAN9,
    BRIDGE_CAP_NIC,	    BRIDGE_CAP_CONTAINER};

static void do_negotiate(uint32_t type, uint64_t id, const cJSON *req)
{
	long long minv, maxv;
	cJSON *b, *c;
	struct utsname u;

	if (gcs_bridge_int(req, "min_version", 0, UINT32_MAX, 1, &minv) ||
	    gcs_bridge_int(req, "max_version", 0, UINT32_MAX, 1, &maxv)) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "negotiate: min_version and max_version must be integers");
		return;
	}
	if (minv > BRIDGE_VERSION || maxv < BRIDGE_VERSION) {
		gcs_bridge_respond(type, id, -EPROTONOSUPPORT, NULL,
				   "negotiate: versions %lld..%lld, I speak %u", minv, maxv,
				   BRIDGE_VERSION);
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "version", BRIDGE_VERSION);
	c = cJSON_AddArrayToObject(b, "capabilities");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		cJSON_AddItemToArray(c, cJSON_CreateString(caps[i]));
	if (uname(&u) == 0)
		cJSON_AddStringToObject(b, "kernel", u.release);
	B.negotiated = true;
	gcs_bridge_respond(type, id, 0, b, NULL);
	gcs_log("bridge negotiated (version %u)", BRIDGE_VERSION);
}

static void do_shutdown(uint32_t type, uint64_t id, const cJSON *req)
{
	gcs_bridge_respond(type, id, 0, NULL, NULL);
	gcs_log("shutdown requested");
	sync();
	B.quit = true; /* PID 1 powers the VM off when we end */
}

/* ---- dispatch ---------------------------------------------------------------------- */

#define REQ(cat, rpc) BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_##cat, BRIDGE_RPC_##rpc)

/* One row per request; only negotiate is served before negotiate. */
static const struct {
	uint32_t type;
	gcs_bridge_handler fn;
} routes[] = {
    {REQ(SYSTEM, NEGOTIATE), do_negotiate},
    {REQ(SYSTEM, SHUTDOWN), do_shutdown},
    {REQ(SYSTEM, PROPERTIES), gcs_system_properties},
    {REQ(SYSTEM, DUMP_STACKS), gcs_system_dump_stacks},
    {REQ(PROCESS, EXEC), gcs_process_exec},
    {REQ(PROCESS, WAIT), gcs_process_wait},
    {REQ(PROCESS, SIGNAL), gcs_process_signal},
    {REQ(PROCESS, RESIZE), gcs_process_resize},
    {REQ(DEVICE, SCSI_ADD), gcs_scsi_add},
    {REQ(DEVICE, SCSI_REMOVE), gcs_scsi_remove},
    {REQ(DEVICE, PMEM_ADD), gcs_pmem_add_req},
    {REQ(DEVICE, PMEM_REMOVE), gcs_pmem_remove_req},
    {REQ(DEVICE, PLAN9_ADD), gcs_plan9_add_req},
    {REQ(DEVICE, PLAN9_REMOVE), gcs_plan9_remove_req},
    {REQ(DEVICE, NIC_ADD), gcs_nic_req},
    {REQ(DEVICE, NIC_UPDATE), gcs_nic_req},
    {REQ(DEVICE, NIC_REMOVE), gcs_nic_req},
    {REQ(CONTAINER, CONTAINER_CREATE), gcs_container_create},
    {REQ(CONTAINER, CONTAINER_START), gcs_container_start},
    {REQ(CONTAINER, CONTAINER_EXEC), gcs_container_exec},
    {REQ(CONTAINER, CONTAINER_SIGNAL), gcs_container_signal},
    {REQ(CONTAINER, CONTAINER_UPDATE), gcs_container_update},
    {REQ(CONTAINER, CONTAINER_STATS), gcs_container_stats},
    {REQ(CONTAINER, CONTAINER_DELETE), gcs_container_delete},
    {REQ(CONTAINER, NETNS_ADD), gcs_netns_add_req},
    {REQ(CONTAINER, NETNS_REMOVE), gcs_netns_remove_req},
};

static void dispatch(const struct bridge_rx_event *ev)
{
	uint32_t type = ev->hdr.type;
	gcs_bridge_handler fn = NULL;
	cJSON *req;

	if (bridge_type_kind(type) != BRIDGE_KIND_REQUEST) {
		gcs_log("ignoring a %s from the host", bridge_type_name(type));
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].type == type)
			fn = routes[i].fn;
	req = cJSON_ParseWithLength(ev->body, ev->body_len);
	if (!cJSON_IsObject(req))
		gcs_bridge_respond(type, ev->hdr.id, -EBADMSG, NULL,
				   "%s: body is not a JSON object", bridge_type_name(type));
	else if (!B.negotiated && fn != do_negotiate)
		gcs_bridge_respond(type, ev->hdr.id, -EPROTO, NULL, "negotiate first");
	else if (!fn)
		gcs_bridge_respond(type, ev->hdr.id, -EOPNOTSUPP, NULL, "%s is not supported",
				   bridge_type_name(type));
	else
		fn(type, ev->hdr.id, req);
	cJSON_Delete(req);
}

static void on_bridge(struct gcs_watch *w, uint32_t events)
{
	uint8_t buf[65536];
	ssize_t n = read(B.fd, buf, sizeof(buf));
	size_t off = 0, used;

	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		gcs_log("host closed the bridge");
		B.quit = B.closed = true;
		return;
	}
	while (off < (size_t)n && !B.quit) {
		struct bridge_rx_event ev;
		enum bridge_rx_result r = bridge_rx_feed(&B.rx, buf + off, n - off, &used, &ev);

		off += used;
		if (r == BRIDGE_RX_MORE)
			break;
		if (r == BRIDGE_RX_MSG) {
			dispatch(&ev);
			free(ev.body);
		} else if (r == BRIDGE_RX_REFUSED) {
			gcs_log("refused a message (type 0x%x, %u bytes): %s", ev.hdr.type,
				ev.hdr.size, strerror(-ev.err));
			if (bridge_type_kind(ev.hdr.type) == BRIDGE_KIND_REQUEST &&
			    bridge_type_name(ev.hdr.type))
				gcs_bridge_respond(ev.hdr.type, ev.hdr.id, ev.err, NULL,
						   "message refused: %s", strerror(-ev.err));
		} else {
			gcs_log("bridge framing lost (size %u); closing", ev.hdr.size);
			B.quit = true;
			return;
		}
	}
}

static void on_signal(struct gcs_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	while (read(B.sfd, &si, sizeof(si)) == sizeof(si))
		;
	gcs_process_reap();
}

/* ---- main ---------------------------------------------------------------------------- */

static int bridge_connect(void)
{
	int logfd;

	/* The vsock transport may still be probing: retry for a while. */
	for (int i = 0; i < CONNECT_SECS * 10; i++) {
		B.fd = gcs_bridge_dial(BRIDGE_PORT);
		if (B.fd >= 0)
			break;
		usleep(100 * 1000);
	}
	if (B.fd < 0) {
		errno = -B.fd;
		gcs_log_errno("bridge: cannot reach the host on port 0x%x", BRIDGE_PORT);
		return -1;
	}
	/* Our log goes to the host from now on; the console keeps PID 1's. */
	logfd = gcs_bridge_dial(BRIDGE_LOG_PORT);
	if (logfd >= 0) {
		dup2(logfd, STDERR_FILENO);
		close(logfd);
	}
	gcs_log("bridge connected");
	return 0;
}

int gcs_bridge_main(int argc, char **argv)
{
	sigset_t set;
	int ret;

	B.unix_base = getenv("UVM_GCS_UNIX");
	/* Test mode only: disks looked for under a fake sysfs, not the test machine's. */
	if (B.unix_base && getenv("UVM_GCS_SYSFS"))
		gcs_storage_set_sysfs(getenv("UVM_GCS_SYSFS"));
	/* ... and containers' directories and mke2fs where the test says. */
	if (B.unix_base)
		gcs_container_set_paths(getenv("UVM_GCS_CTR_DIR"), getenv("UVM_GCS_MKE2FS"));
	if (argc > 1 && argv[1][0] == '-')
		return gcs_vsock_tool(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* Containers' processes outlive the crun that started them: they become ours. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		gcs_log_errno("bridge: not a subreaper; container exits will not be seen");
	ret = gcs_stacks_init();
	if (ret) {
		errno = -ret;
		gcs_log_errno("bridge: dump_stacks will have no stacks");
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	B.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	B.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (B.sfd < 0 || B.epfd < 0) {
		gcs_log_errno("bridge: signalfd/epoll");
		return 1;
	}
	if (bridge_connect() < 0)
		return 1;
	bridge_rx_init(&B.rx, BRIDGE_MSG_MAX);
	B.fd_w.fn = on_bridge;
	B.sfd_w.fn = on_signal;
	ret = gcs_bridge_watch(B.fd, &B.fd_w);
	if (!ret)
		ret = gcs_bridge_watch(B.sfd, &B.sfd_w);
	if (!ret)
		ret = gcs_scsi_init();
	if (!ret)
		ret = gcs_container_init();
	if (ret) {
		errno = -ret;
		gcs_log_errno("bridge: watching its fds");
		return 1;
	}
	while (!B.quit) {
		struct epoll_event evs[16];
		int n = epoll_wait(B.epfd, evs, 16, -1);

		if (n < 0 && errno != EINTR) {
			gcs_log_errno("bridge: epoll_wait");
			break;
		}
		for (int i = 0; i < n && !B.quit; i++) {
			struct gcs_watch *w = evs[i].data.ptr;

			w->fn(w, evs[i].events);
		}
		gcs_process_sweep();
	}
	gcs_scsi_stop();
	gcs_container_stop();
	bridge_rx_fini(&B.rx);
	close(B.fd);
	return 0;
}
