/* Events to containerd over ttrpc (see task_events.h). */
#include "shim/task_events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim/proto/events.pb-c.h"
#include "shim/ttrpc.h"
#include "shim/ttrpc_conn.h"
#include "vmm/log.h"

#define TAG "events"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"

int task_events_init(struct task_events *ev, struct loop *loop, const char *address, const char *ns)
{
	memset(ev, 0, sizeof(*ev));
	ev->loop = loop;
	ev->next_stream = 1;
	if (address && !strncmp(address, "unix://", 7))
		address += 7;
	ev->address = address && address[0] ? strdup(address) : NULL;
	ev->ns = strdup(ns ? ns : "default");
	if ((address && address[0] && !ev->address) || !ev->ns)
		return -ENOMEM;
	return 0;
}

void task_events_fini(struct task_events *ev)
{
	if (ev->conn) {
		ttrpc_conn_close(ev->conn); /* closed() clears it */
		ttrpc_conn_put(ev->conn);
		ev->conn = NULL;
	}
	free(ev->address);
	free(ev->ns);
}

static void on_frame(void *opaque, struct ttrpc_conn *c, const struct ttrpc_frame *f)
{
	struct task_events *ev = opaque;
	Uvm__Ttrpc__Response *r = ttrpc_response_unpack(f);

	if (!r || (r->status && r->status->code)) {
		ev->failed++;
		pr_warn(TAG, "containerd refused event (stream %u): %s", f->stream,
			r && r->status && r->status->message ? r->status->message : "no answer");
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void on_closed(void *opaque, struct ttrpc_conn *c)
{
	struct task_events *ev = opaque;

	if (ev->conn == c) {
		ev->conn = NULL;
		ttrpc_conn_put(c); /* our reference */
	}
}

static const struct ttrpc_conn_ops event_conn_ops = {.frame = on_frame, .closed = on_closed};

static int dial(struct task_events *ev)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(ev->address) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, ev->address);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	if (ttrpc_conn_create(&ev->conn, ev->loop, fd, &event_conn_ops, ev))
		return -EIO;
	ttrpc_conn_get(ev->conn); /* ours, dropped in on_closed or fini */
	return 0;
}

int task_publish(struct task_events *ev, const char *topic, const char *name,
		 const ProtobufCMessage *event)
{
	Uvm__Ctrd__ForwardRequest fwd = UVM__CTRD__FORWARD_REQUEST__INIT;
	Uvm__Ctrd__Envelope env = UVM__CTRD__ENVELOPE__INIT;
	Uvm__Ctrd__Timestamp ts = UVM__CTRD__TIMESTAMP__INIT;
	Uvm__Ctrd__Any any = UVM__CTRD__ANY__INIT;
	const char *md[] = {"containerd-namespace-ttrpc", ev->ns, NULL};
	char type[96];
	struct timespec now;
	uint8_t *frame;
	size_t len;
	int ret;

	pr_info(TAG, "%s", topic);
	if (!ev->address)
		return 0;
	if (!ev->conn && (ret = dial(ev))) {
		ev->failed++;
		pr_warn(TAG, "%s: cannot reach containerd at %s: %s", topic, ev->address,
			strerror(-ret));
		return ret;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = now.tv_nsec;
	snprintf(type, sizeof(type), "containerd.events.%s", name);
	any.type_url = type;
	any.value.len = protobuf_c_message_get_packed_size(event);
	any.value.data = malloc(any.value.len ? any.value.len : 1);
	if (!any.value.data)
		return -ENOMEM;
	protobuf_c_message_pack(event, any.value.data);
	env.timestamp = &ts;
	env.namespace_ = ev->ns;
	env.topic = (char *)topic;
	env.event = &any;
	fwd.envelope = &env;
	ret = ttrpc_request_pack(ev->next_stream, EVENTS_SERVICE, "Forward", &fwd.base, md, &frame,
				 &len);
	free(any.value.data);
	if (ret)
		return ret;
	ev->next_stream += 2;
	ret = ttrpc_conn_send(ev->conn, frame, len);
	if (!ret)
		ev->sent++;
	return ret;
}
