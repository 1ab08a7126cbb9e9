/*
 * Events to containerd: each one an Envelope{timestamp, namespace, topic,
 * Any{"containerd.events.TaskExit", bytes}} forwarded with
 * containerd.services.events.ttrpc.v1.Events/Forward over a ttrpc
 * connection to TTRPC_ADDRESS, dialled on first use (and again after it
 * broke). Sent in order; a failure is logged, never fatal.
 */
#ifndef SHIM_TASK_EVENTS_H
#define SHIM_TASK_EVENTS_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

struct loop;
struct ttrpc_conn;

struct task_events {
	struct loop *loop;
	char *address; /* NULL: events are dropped (no TTRPC_ADDRESS) */
	char *ns;
	struct ttrpc_conn *conn;
	uint32_t next_stream;
	unsigned sent, failed;
};

int task_events_init(struct task_events *ev, struct loop *loop, const char *address, const char *ns)
    __attribute__((warn_unused_result));
void task_events_fini(struct task_events *ev);
/* topic "/tasks/exit", name "TaskExit" (the Any's type is containerd.events.<name>). */
int task_publish(struct task_events *ev, const char *topic, const char *name,
		 const ProtobufCMessage *event);

#endif
