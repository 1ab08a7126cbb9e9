/* Events to containerd over ttrpc (see task_events.h). */
#include "shim/task_events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim/proto/events.pb-c.h"
#include "shim/ttrpc.h"
#include "shim/ttrpc_conn.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "events"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"

/* A packed Forward request waiting for containerd. */
struct task_event_frame {
	struct task_event_frame *next;
	uint8_t *data;
	size_t len;
};

static void on_retry(void *opaque, uint32_t events);

int task_events_init(struct task_events *ev, struct loop *loop, const char *address, const char *ns)
{
	memset(ev, 0, sizeof(*ev));
	ev->loop = loop;
	ev->next_stream = 1;
	ev->queue_tail = &ev->queue;
	ev->retry_ms = TASK_EVENTS_RETRY_MS;
	ev->retries = TASK_EVENTS_RETRIES;
	ev->timer_fd = -1;
	if (address && !strncmp(address, "unix://", 7))
		address += 7;
	ev->address = address && address[0] ? strdup(address) : NULL;
	ev->ns = strdup(ns ? ns : "default");
	if ((address && address[0] && !ev->address) || !ev->ns)
		return -ENOMEM;
	if (!ev->address)
		return 0;
	/* Made now: the sandbox (after vm.start) allows timerfd_settime, not timerfd_create. */
	ev->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ev->timer_fd < 0)
		return -errno;
	return loop_add(loop, ev->timer_fd, EPOLLIN, on_retry, ev);
}

static void drop_queue(struct task_events *ev)
{
	for (struct task_event_frame *f = ev->queue, *n; f; f = n) {
		n = f->next;
		free(f->data);
		free(f);
	}
	ev->dropped += ev->queued;
	ev->queue = NULL;
	ev->queue_tail = &ev->queue;
	ev->queued = 0;
}

void task_events_fini(struct task_events *ev)
{
	if (ev->conn) {
		ttrpc_conn_close(ev->conn); /* closed() clears it */
		ttrpc_conn_put(ev->conn);
		ev->conn = NULL;
	}
	if (ev->queued)
		pr_warn(TAG, "%u event(s) never reached containerd", ev->queued);
	drop_queue(ev);
	if (ev->timer_fd >= 0) {
		loop_del(ev->loop, ev->timer_fd);
		close(ev->timer_fd);
		ev->timer_fd = -1;
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

static void arm(struct task_events *ev)
{
	struct itimerspec it = {.it_value = {.tv_sec = ev->retry_ms / 1000,
					     .tv_nsec = (ev->retry_ms % 1000) * 1000000L}};

	if (ev->timer_fd >= 0 && timerfd_settime(ev->timer_fd, 0, &it, NULL))
		pr_warn_errno(TAG, "arming the events retry");
}

/* frame (taken) waits at the end of the queue; the retry is armed with the first. */
static void enqueue(struct task_events *ev, uint8_t *data, size_t len)
{
	struct task_event_frame *f;

	if (ev->queued >= TASK_EVENTS_QUEUE_MAX || !(f = calloc(1, sizeof(*f)))) {
		ev->dropped++;
		log_ratelimited(LOG_WARN, TAG, "event dropped: %u waiting for containerd",
				ev->queued);
		free(data);
		return;
	}
	f->data = data;
	f->len = len;
	*ev->queue_tail = f;
	ev->queue_tail = &f->next;
	if (!ev->queued++) {
		ev->tries = 0;
		arm(ev);
	}
}

/*
 * Sends data (taken) on the connection, dialled if need be; what cannot go is
 * queued (a copy is kept until the send took it: a connection that just broke
 * frees what it was given).
 */
static void send_or_queue(struct task_events *ev, uint8_t *data, size_t len)
{
	uint8_t *copy;
	int ret;

	if (!ev->conn && (ret = dial(ev))) {
		ev->failed++;
		pr_warn(TAG, "cannot reach containerd at %s: %s (the event waits)", ev->address,
			strerror(-ret));
		enqueue(ev, data, len);
		return;
	}
	copy = malloc(len);
	if (copy)
		memcpy(copy, data, len);
	ret = ttrpc_conn_send(ev->conn, data, len);
	if (!ret) {
		ev->sent++;
		free(copy);
	} else if (copy) {
		ev->failed++;
		enqueue(ev, copy, len);
	}
}

/* Sends what waits, oldest first; one that cannot go stays first and the retry is armed. */
static void flush_queue(struct task_events *ev)
{
	while (ev->queue) {
		struct task_event_frame *f = ev->queue;
		uint8_t *copy = malloc(f->len);

		if (!copy || !ev->conn) {
			free(copy);
			arm(ev);
			return;
		}
		memcpy(copy, f->data, f->len);
		if (ttrpc_conn_send(ev->conn, copy, f->len)) { /* copy taken either way */
			ev->failed++;
			arm(ev);
			return;
		}
		ev->sent++;
		ev->queue = f->next;
		if (!ev->queue)
			ev->queue_tail = &ev->queue;
		ev->queued--;
		free(f->data);
		free(f);
	}
}

/* The retry timer: dial again and send what waits, in order; give up after retries. */
static void on_retry(void *opaque, uint32_t events)
{
	struct task_events *ev = opaque;
	uint64_t n;

	if (read(ev->timer_fd, &n, sizeof(n)) != sizeof(n) || !ev->queued)
		return;
	if (!ev->conn && dial(ev)) {
		if (++ev->tries < ev->retries) {
			arm(ev);
			return;
		}
		pr_warn(TAG, "containerd at %s unreachable for %u tries: %u event(s) dropped",
			ev->address, ev->tries, ev->queued);
		drop_queue(ev);
		return;
	}
	pr_info(TAG, "containerd reached again: sending %u waiting event(s)", ev->queued);
	ev->tries = 0;
	flush_queue(ev);
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
	/* Behind events already waiting, in order. */
	if (ev->queued)
		enqueue(ev, frame, len);
	else
		send_or_queue(ev, frame, len);
	return 0;
}
