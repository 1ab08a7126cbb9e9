/*
 * ttrpc input from a hostile peer: arbitrary bytes on a server connection,
 * cut into two reads, with a small frame limit so skipping an oversized
 * frame is reached; each request goes through the method table (one method
 * decodes a Task message and its runtime options, one holds its call past
 * the connection's end). Answers go to the peer's end of a socketpair, which
 * is drained. The bytes are also decoded as the runtime options' value
 * (runtimeoptions.v1.Options) on their own, which a whole Create rarely reaches.
 */
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim/proto/task.pb-c.h"
#include "shim/task_options.h"
#include "shim/ttrpc.h"
#include "shim/ttrpc_server.h"
#include "vmm/loop.h"

static struct ttrpc_call *held;

static void options(const Uvm__Ctrd__Any *any)
{
	char err[TASK_OPTIONS_ERRLEN], *path = NULL;

	if (task_options_config_path(any, &path, err, sizeof(err)) == 0 && path &&
	    (path[0] != '/' || strlen(path) >= PATH_MAX))
		__builtin_trap(); /* a path the decoder promised not to return */
	free(path);
}

static void m_create(void *opaque, struct ttrpc_call *call)
{
	Uvm__Ctrd__CreateTaskRequest *q = (Uvm__Ctrd__CreateTaskRequest *)ttrpc_call_unpack(
	    call, &uvm__ctrd__create_task_request__descriptor);

	if (!q)
		return;
	options(q->options);
	protobuf_c_message_free_unpacked(&q->base, NULL);
	ttrpc_reply(call, NULL);
}

static void m_wait(void *opaque, struct ttrpc_call *call)
{
	if (held)
		ttrpc_reply_error(held, TTRPC_CANCELLED, "replaced");
	held = call;
}

static const struct ttrpc_method table[] = {
    {"containerd.task.v2.Task", "Create", m_create},
    {"containerd.task.v2.Task", "Wait", m_wait},
    {NULL, NULL, NULL},
};

static void drain(int fd)
{
	uint8_t buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ttrpc_dec d;
	struct ttrpc_frame f;
	struct loop *loop;
	struct ttrpc_server *srv;
	size_t cut = size ? data[0] % (size + 1) : 0;
	int sv[2];
	Uvm__Ctrd__Any any = UVM__CTRD__ANY__INIT;

	/* The options' value alone. */
	any.type_url = TASK_OPTIONS_TYPE;
	any.value.data = (uint8_t *)data;
	any.value.len = size;
	options(&any);

	/* The decoder alone, with a small limit and the bytes in two pieces. */
	ttrpc_dec_init(&d, 256);
	if (!ttrpc_dec_feed(&d, data, cut))
		while (ttrpc_dec_next(&d, &f) == 1) {
			Uvm__Ttrpc__Request *r = ttrpc_request_unpack(&f);

			if (r)
				protobuf_c_message_free_unpacked(&r->base, NULL);
		}
	if (!ttrpc_dec_feed(&d, data + cut, size - cut))
		while (ttrpc_dec_next(&d, &f) == 1)
			;
	ttrpc_dec_fini(&d);

	/* The server over a socketpair. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	if (loop_create(&loop)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	if (ttrpc_server_create(&srv, loop, -1, table, NULL) || ttrpc_server_adopt(srv, sv[0])) {
		loop_destroy(loop);
		close(sv[1]);
		return 0;
	}
	for (size_t off = 0; off < size;) {
		ssize_t n = write(sv[1], data + off, size - off > 32768 ? 32768 : size - off);

		if (n <= 0)
			break;
		off += n;
		while (loop_run_once(loop, 0) > 0)
			drain(sv[1]);
	}
	close(sv[1]);
	while (loop_run_once(loop, 0) > 0)
		;
	if (held)
		ttrpc_reply(held, NULL);
	held = NULL;
	ttrpc_server_destroy(srv);
	loop_destroy(loop);
	return 0;
}
