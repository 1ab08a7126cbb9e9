/*
 * A ttrpc server on the event loop: a listening Unix socket, its
 * connections, and a table of methods. Each request becomes a call its
 * handler answers once, now or later (a Wait stays pending while other
 * calls on the same connection are answered). Bad input gets an error
 * status and the server keeps serving: a request that does not decode
 * (INVALID_ARGUMENT), an unknown service or method (UNIMPLEMENTED, 12), a
 * frame over 4 MiB (RESOURCE_EXHAUSTED, its payload skipped).
 */
#ifndef SHIM_TTRPC_SERVER_H
#define SHIM_TTRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "shim/ttrpc.h"

struct loop;
struct ttrpc_conn;
struct ttrpc_server;

/* One request until it is answered. */
struct ttrpc_call {
	struct ttrpc_conn *conn; /* a reference: the answer to a closed one is dropped */
	uint32_t stream;
	Uvm__Ttrpc__Request *req; /* service, method, payload, metadata */
	void *data;		  /* the handler's, while the call is pending */
	struct ttrpc_call *next;  /* free for the handler's own lists */
};

typedef void (*ttrpc_method_fn)(void *opaque, struct ttrpc_call *call);

struct ttrpc_method {
	const char *service;
	const char *method;
	ttrpc_method_fn fn;
};

/*
 * listen_fd: a listening SOCK_STREAM socket, taken. table ends with {NULL}.
 * closed (may be NULL) runs when a connection ends.
 */
int ttrpc_server_create(struct ttrpc_server **out, struct loop *loop, int listen_fd,
			const struct ttrpc_method *table, void *opaque)
    __attribute__((warn_unused_result));
/* Closes the listener and every connection; calls still out keep their references. */
void ttrpc_server_destroy(struct ttrpc_server *srv);
/* Serves an already connected socket (taken) as one more connection: for tests. */
int ttrpc_server_adopt(struct ttrpc_server *srv, int fd) __attribute__((warn_unused_result));
/* Connections open now. */
unsigned ttrpc_server_conns(const struct ttrpc_server *srv);

/* Answers with msg (NULL: an empty message) and frees the call. */
void ttrpc_reply(struct ttrpc_call *call, const ProtobufCMessage *msg);
/* Answers with an error status and frees the call. */
void ttrpc_reply_error(struct ttrpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Decodes the call's payload with desc; NULL (and the call answered with
 * INVALID_ARGUMENT naming the message) when it does not decode.
 */
ProtobufCMessage *ttrpc_call_unpack(struct ttrpc_call *call,
				    const ProtobufCMessageDescriptor *desc);

#endif
