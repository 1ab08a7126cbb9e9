/*
 * Events to containerd: each one an Envelope{timestamp, namespace, topic,
 * Any{"containerd.events.TaskExit", bytes}} forwarded with
 * containerd.services.events.ttrpc.v1.Events/Forward over a ttrpc
 * connection to TTRPC_ADDRESS, dialled on first use (and again after it
 * broke). Sent in order; a failure is logged, never fatal.
 *
 * While containerd cannot be reached (it is restarting: its socket is gone
 * or refuses) events wait in a queue, in order, and the dial is retried
 * every retry_ms, retries times; then the queue is dropped with a warning.
 * An event whose send fails on a connection that just broke is queued too.
 * At most TASK_EVENTS_QUEUE_MAX wait; later ones are dropped.
 */
#ifndef SHIM_TASK_EVENTS_H
#define SHIM_TASK_EVENTS_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#define TASK_EVENTS_RETRY_MS  1000
#define TASK_EVENTS_RETRIES   60 /* a minute: containerd restarts in seconds */
#define TASK_EVENTS_QUEUE_MAX 256

struct loop;
struct ttrpc_conn;
struct task_event_frame;

struct task_events {
	struct loop *loop;
	char *address; /* NULL: events are dropped (no TTRPC_ADDRESS) */
	char *ns;
	struct ttrpc_conn *conn;
	uint32_t next_stream;
	unsigned sent, failed;
	/* events waiting for containerd, oldest first; the retry timer (made at init) */
	struct task_event_frame *queue, **queue_tail;
	unsigned queued, dropped;
	unsigned retry_ms, retries, tries;
	int timer_fd;
};

int task_events_init(struct task_events *ev, struct loop *loop, const char *address, const char *ns)
    __attribute__((warn_unused_result));
void task_events_fini(struct task_events *ev);
/* topic "/tasks/exit", name "TaskExit" (the Any's type is containerd.events.<name>). */
int task_publish(struct task_events *ev, const char *topic, const char *name,
		 const ProtobufCMessage *event);

#endif
