/*
 * One ttrpc connection on the event loop: frames in (ttrpc_dec), frames out
 * through a bounded buffer (non-blocking writes, EPOLLOUT when the peer is
 * slow). Used by the Task server's connections and by the events client.
 * Everything runs on the loop's thread.
 */
#ifndef SHIM_TTRPC_CONN_H
#define SHIM_TTRPC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "shim/ttrpc.h"

struct loop;
struct ttrpc_conn;

/* Unsent bytes a peer may leave with us before its connection is dropped. */
#define TTRPC_CONN_OUT_MAX (16u << 20)

struct ttrpc_conn_ops {
	/* A whole frame (oversized ones too, payload skipped). */
	void (*frame)(void *opaque, struct ttrpc_conn *c, const struct ttrpc_frame *f);
	/* The connection ended (EOF, error, torn frame); no frame follows. Optional. */
	void (*closed)(void *opaque, struct ttrpc_conn *c);
};

/* Takes fd (closed on error too). The loop holds one reference until it closes. */
int ttrpc_conn_create(struct ttrpc_conn **out, struct loop *loop, int fd,
		      const struct ttrpc_conn_ops *ops, void *opaque)
    __attribute__((warn_unused_result));
void ttrpc_conn_get(struct ttrpc_conn *c);
/* Drops a reference; the last one frees. NULL is a no-op. */
void ttrpc_conn_put(struct ttrpc_conn *c);
/* Queues frame (malloc'd, taken). 0, or -EPIPE once closed, -ENOBUFS (the connection is dropped).
 */
int ttrpc_conn_send(struct ttrpc_conn *c, uint8_t *frame, size_t len);
/* Stops I/O now (closed() runs) and drops the loop's reference. */
void ttrpc_conn_close(struct ttrpc_conn *c);
int ttrpc_conn_is_closed(const struct ttrpc_conn *c);

#endif
