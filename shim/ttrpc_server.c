/* A ttrpc server on the event loop (see ttrpc_server.h). */
#include "shim/ttrpc_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim/ttrpc_conn.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "ttrpc"

/* Connections one server keeps open at once (containerd uses one, `ctr` a few more). */
#define TTRPC_MAX_CONNS 64

struct ttrpc_server {
	struct loop *loop;
	int listen_fd;
	const struct ttrpc_method *table;
	void *opaque;
	struct ttrpc_conn *conns[TTRPC_MAX_CONNS];
	unsigned nr_conns;
};

static void send_status(struct ttrpc_conn *c, uint32_t stream, int code, const char *msg,
			const ProtobufCMessage *payload)
{
	uint8_t *frame;
	size_t len;
	int ret = ttrpc_response_pack(stream, code, msg, payload, &frame, &len);

	if (ret == -EMSGSIZE)
		ret = ttrpc_response_pack(stream, TTRPC_RESOURCE_EXHAUSTED,
					  "answer over the 4 MiB limit", NULL, &frame, &len);
	if (ret) {
		pr_err(TAG, "stream %u: the answer cannot be built (%s)", stream, strerror(-ret));
		return;
	}
	ttrpc_conn_send(c, frame, len);
}

static void call_free(struct ttrpc_call *call)
{
	ttrpc_conn_put(call->conn);
	if (call->req)
		protobuf_c_message_free_unpacked(&call->req->base, NULL);
	free(call);
}

void ttrpc_reply(struct ttrpc_call *call, const ProtobufCMessage *msg)
{
	send_status(call->conn, call->stream, TTRPC_OK, NULL, msg);
	call_free(call);
}

void ttrpc_reply_error(struct ttrpc_call *call, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_dbg(TAG, "stream %u: error %d: %s", call->stream, code, msg);
	send_status(call->conn, call->stream, code, msg, NULL);
	call_free(call);
}

ProtobufCMessage *ttrpc_call_unpack(struct ttrpc_call *call, const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m =
	    protobuf_c_message_unpack(desc, NULL, call->req->payload.len, call->req->payload.data);

	if (!m)
		ttrpc_reply_error(call, TTRPC_INVALID_ARGUMENT,
				  "%s/%s: the payload is not a valid %s", call->req->service,
				  call->req->method, desc->name);
	return m;
}

/* ---- connections ------------------------------------------------------------------- */

static void on_frame(void *opaque, struct ttrpc_conn *c, const struct ttrpc_frame *f)
{
	struct ttrpc_server *srv = opaque;
	const struct ttrpc_method *m;
	struct ttrpc_call *call;
	Uvm__Ttrpc__Request *req;

	if (f->oversized) {
		log_ratelimited(LOG_WARN, TAG, "stream %u: frame of %u bytes over the limit",
				f->stream, f->len);
		send_status(c, f->stream, TTRPC_RESOURCE_EXHAUSTED, "message over the 4 MiB limit",
			    NULL);
		return;
	}
	if (f->type != TTRPC_TYPE_REQUEST) {
		log_ratelimited(LOG_WARN, TAG, "stream %u: frame type %u ignored", f->stream,
				f->type);
		return;
	}
	req = ttrpc_request_unpack(f);
	if (!req || !req->service || !req->method) {
		send_status(c, f->stream, TTRPC_INVALID_ARGUMENT, "request does not decode", NULL);
		if (req)
			protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	for (m = srv->table; m->service; m++)
		if (!strcmp(m->service, req->service) && !strcmp(m->method, req->method))
			break;
	if (!m->service) {
		char msg[300];

		snprintf(msg, sizeof(msg), "%.120s/%.120s: not implemented", req->service,
			 req->method);
		send_status(c, f->stream, TTRPC_UNIMPLEMENTED, msg, NULL);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		send_status(c, f->stream, TTRPC_INTERNAL, "out of memory", NULL);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	ttrpc_conn_get(c);
	call->conn = c;
	call->stream = f->stream;
	call->req = req;
	pr_dbg(TAG, "stream %u: %s/%s", f->stream, req->service, req->method);
	m->fn(srv->opaque, call);
}

static void on_closed(void *opaque, struct ttrpc_conn *c)
{
	struct ttrpc_server *srv = opaque;

	for (unsigned i = 0; i < srv->nr_conns; i++)
		if (srv->conns[i] == c) {
			srv->conns[i] = srv->conns[--srv->nr_conns];
			break;
		}
}

static const struct ttrpc_conn_ops server_conn_ops = {.frame = on_frame, .closed = on_closed};

int ttrpc_server_adopt(struct ttrpc_server *srv, int fd)
{
	struct ttrpc_conn *c;
	int ret;

	if (srv->nr_conns == TTRPC_MAX_CONNS) {
		pr_warn(TAG, "%u connections open: refusing one more", srv->nr_conns);
		close(fd);
		return -EMFILE;
	}
	ret = ttrpc_conn_create(&c, srv->loop, fd, &server_conn_ops, srv);
	if (ret)
		return ret;
	srv->conns[srv->nr_conns++] = c;
	return 0;
}

unsigned ttrpc_server_conns(const struct ttrpc_server *srv)
{
	return srv->nr_conns;
}

static void on_listen(void *opaque, uint32_t events)
{
	struct ttrpc_server *srv = opaque;
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pr_warn_errno(TAG, "accept");
		return;
	}
	if (ttrpc_server_adopt(srv, fd))
		pr_warn(TAG, "a connection could not be served");
}

int ttrpc_server_create(struct ttrpc_server **out, struct loop *loop, int listen_fd,
			const struct ttrpc_method *table, void *opaque)
{
	struct ttrpc_server *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		if (listen_fd >= 0)
			close(listen_fd);
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->listen_fd = listen_fd;
	srv->table = table;
	srv->opaque = opaque;
	if (listen_fd >= 0 && loop_add(loop, listen_fd, EPOLLIN, on_listen, srv)) {
		close(listen_fd);
		free(srv);
		return -EIO;
	}
	*out = srv;
	return 0;
}

void ttrpc_server_destroy(struct ttrpc_server *srv)
{
	if (!srv)
		return;
	while (srv->nr_conns)
		ttrpc_conn_close(srv->conns[0]); /* on_closed takes it out */
	if (srv->listen_fd >= 0) {
		loop_del(srv->loop, srv->listen_fd);
		close(srv->listen_fd);
	}
	free(srv);
}
