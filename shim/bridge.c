/*
 * GCS bridge client (bridge.h) over an in-process vsock listener.
 */
#include "shim/bridge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/protocol.h"
#include "virtio/vsock.h"
#include "vmm/log.h"
#include "vmm/loop.h"

/* Statuses are 0 or -errno; anything past the kernel's errno range is malformed. */
#define BRIDGE_MAX_ERRNO 4095

#define TAG "bridge"
/* Our outgoing queue: a guest that stops reading cannot grow us past this. */
#define OUT_MAX (4u * BRIDGE_MSG_MAX)

struct pending {
	uint64_t id;
	uint32_t type;
	bridge_resp_fn fn;
	void *opaque;
	struct pending *next;
};

struct bridge {
	struct vsock *vs;
	const struct bridge_ops *ops;
	void *opaque;
	struct vsock_conn *conn, *log_conn;
	bool negotiated;
	uint64_t next_id;
	struct pending *pending;
	struct bridge_rx rx;
	uint8_t *out;
	size_t out_len, out_cap;
	char logline[512];
	size_t log_len;
};

static void finish(struct pending *p, int status, const char *error, const cJSON *body)
{
	p->fn(p->opaque, status, error, body);
	free(p);
}

static void fail_all(struct bridge *b, int status, const char *why)
{
	while (b->pending) {
		struct pending *p = b->pending;

		b->pending = p->next;
		finish(p, status, why, NULL);
	}
}

static void flush_out(struct bridge *b)
{
	size_t n;

	if (!b->conn || !b->out_len)
		return;
	n = vsock_conn_send(b->conn, b->out, b->out_len);
	memmove(b->out, b->out + n, b->out_len - n);
	b->out_len -= n;
}

static int queue_out(struct bridge *b, const uint8_t *buf, size_t len)
{
	if (b->out_len + len > OUT_MAX)
		return -ENOBUFS;
	if (b->out_len + len > b->out_cap) {
		size_t cap = b->out_cap ? b->out_cap : 4096;
		uint8_t *nb;

		while (cap < b->out_len + len)
			cap *= 2;
		nb = realloc(b->out, cap);
		if (!nb)
			return -ENOMEM;
		b->out = nb;
		b->out_cap = cap;
	}
	memcpy(b->out + b->out_len, buf, len);
	b->out_len += len;
	flush_out(b);
	return 0;
}

static int send_msg(struct bridge *b, uint32_t type, uint64_t id, cJSON *body)
{
	char *text = cJSON_PrintUnformatted(body);
	uint8_t *buf;
	long n;
	int ret;

	cJSON_Delete(body);
	if (!text)
		return -ENOMEM;
	n = bridge_msg_encode(&buf, type, id, text, strlen(text), BRIDGE_MSG_MAX);
	free(text);
	if (n < 0)
		return (int)n;
	ret = queue_out(b, buf, n);
	free(buf);
	return ret;
}

int bridge_request(struct bridge *b, uint32_t type, cJSON *body, bridge_resp_fn fn, void *opaque)
{
	struct pending *p;
	int ret;

	if (!b->conn) {
		cJSON_Delete(body);
		return -ENOTCONN;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		cJSON_Delete(body);
		return -ENOMEM;
	}
	p->id = ++b->next_id;
	p->type = type;
	p->fn = fn;
	p->opaque = opaque;
	ret = send_msg(b, type, p->id, body);
	if (ret < 0) {
		free(p);
		return ret;
	}
	p->next = b->pending;
	b->pending = p;
	return 0;
}

static struct pending *take_pending(struct bridge *b, uint64_t id)
{
	struct pending **pp = &b->pending;

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	if (*pp) {
		struct pending *p = *pp;

		*pp = p->next;
		return p;
	}
	return NULL;
}

static void handle_msg(struct bridge *b, const struct bridge_rx_event *ev)
{
	unsigned kind = bridge_type_kind(ev->hdr.type);
	cJSON *body = cJSON_ParseWithLength(ev->body, ev->body_len);
	struct pending *p;

	if (kind == BRIDGE_KIND_NOTIFY) {
		if (ev->hdr.type != BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS,
						BRIDGE_NOTIFY_PROCESS_EXITED)) {
			if (cJSON_IsObject(body) && b->ops->notify)
				b->ops->notify(b->opaque, ev->hdr.type, body);
		} else if (cJSON_IsObject(body) && b->ops->process_exited) {
			const cJSON *pid = cJSON_GetObjectItem(body, "pid");
			const cJSON *code = cJSON_GetObjectItem(body, "exit_code");
			const cJSON *sig = cJSON_GetObjectItem(body, "signal");

			if (cJSON_IsNumber(pid) && cJSON_IsNumber(code))
				b->ops->process_exited(b->opaque, pid->valueint, code->valueint,
						       cJSON_IsNumber(sig) ? sig->valueint : 0);
		}
		goto out;
	}
	if (kind != BRIDGE_KIND_RESPONSE) {
		/* The guest has no business asking us anything (yet). */
		log_ratelimited(LOG_WARN, TAG, "ignoring a %s from the guest",
				bridge_type_name(ev->hdr.type));
		goto out;
	}
	p = take_pending(b, ev->hdr.id);
	if (!p) {
		log_ratelimited(LOG_WARN, TAG, "response for unknown request id %llu",
				(unsigned long long)ev->hdr.id);
		goto out;
	}
	if (bridge_response_type(p->type) != ev->hdr.type) {
		finish(p, -EPROTO, "the guest answered with the wrong message type", NULL);
	} else if (!cJSON_IsObject(body)) {
		finish(p, -EBADMSG, "malformed response from the guest (not a JSON object)", NULL);
	} else {
		const cJSON *st = cJSON_GetObjectItem(body, "status");
		const cJSON *err = cJSON_GetObjectItem(body, "error");

		if (!cJSON_IsNumber(st))
			finish(p, -EBADMSG, "malformed response from the guest (no status)", body);
		else if (st->valuedouble > 0 || st->valuedouble < -BRIDGE_MAX_ERRNO)
			/* Callers negate it for strerror: -INT_MIN would be undefined. */
			finish(p, -EPROTO, "malformed response from the guest (status out of range)",
			       body);
		else
			finish(p, st->valueint,
			       cJSON_IsString(err)
				   ? err->valuestring
				   : (st->valueint ? strerror(-st->valueint) : NULL),
			       body);
	}
out:
	cJSON_Delete(body);
}

static void conn_gone(struct bridge *b, const char *why)
{
	bool was = b->negotiated;

	b->conn = NULL;
	b->negotiated = false;
	b->out_len = 0;
	bridge_rx_fini(&b->rx);
	bridge_rx_init(&b->rx, BRIDGE_MSG_MAX);
	fail_all(b, -ECONNRESET, why);
	if (!was && b->ops->ready)
		b->ops->ready(b->opaque, -ECONNRESET, NULL);
	if (b->ops->closed)
		b->ops->closed(b->opaque);
}

static void on_readable(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;
	uint8_t buf[LOOP_READ_BUF];
	size_t n;

	while (b->conn == c && (n = vsock_conn_recv(c, buf, sizeof(buf))) > 0) {
		size_t off = 0, used;

		while (off < n) {
			struct bridge_rx_event ev;
			enum bridge_rx_result r =
			    bridge_rx_feed(&b->rx, buf + off, n - off, &used, &ev);

			off += used;
			if (r == BRIDGE_RX_MORE)
				break;
			if (r == BRIDGE_RX_MSG) {
				handle_msg(b, &ev);
				free(ev.body);
				if (b->conn != c)
					return;
			} else if (r == BRIDGE_RX_REFUSED) {
				struct pending *p;

				pr_warn(TAG, "guest sent a bad message (type 0x%x, %u bytes): %s",
					ev.hdr.type, ev.hdr.size, strerror(-ev.err));
				/* If it claimed to answer one of ours, that request failed. */
				p = bridge_type_kind(ev.hdr.type) == BRIDGE_KIND_RESPONSE
					? take_pending(b, ev.hdr.id)
					: NULL;
				if (p)
					finish(p, ev.err,
					       ev.err == -EMSGSIZE
						   ? "the guest's response is over the size limit"
						   : "the guest's response has an unknown type",
					       NULL);
			} else {
				pr_err(TAG, "guest broke the bridge framing (size %u); closing",
				       ev.hdr.size);
				vsock_conn_reset(c);
				conn_gone(b, "the guest broke the bridge framing");
				return;
			}
		}
	}
}

static void on_writable(void *opaque, struct vsock_conn *c)
{
	flush_out(opaque);
}

static void on_eof(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;

	pr_info(TAG, "the guest closed the bridge");
	vsock_conn_close(c);
	conn_gone(b, "the guest closed the bridge");
}

static void on_closed(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;

	if (b->conn == c)
		conn_gone(b, "the bridge connection was reset");
}

static const struct vsock_conn_ops bridge_conn_ops = {
    .readable = on_readable,
    .writable = on_writable,
    .eof = on_eof,
    .closed = on_closed,
};

static void negotiated(void *opaque, int status, const char *error, const cJSON *body)
{
	struct bridge *b = opaque;

	if (status == 0) {
		b->negotiated = true;
		pr_info(TAG, "GCS negotiated");
	} else {
		pr_err(TAG, "negotiation failed: %s", error ? error : strerror(-status));
	}
	if (b->ops->ready)
		b->ops->ready(b->opaque, status, body);
}

static int on_accept(void *opaque, struct vsock_conn *c, uint32_t port,
		     const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct bridge *b = opaque;
	cJSON *req, *caps;
	int ret;

	if (b->conn) {
		pr_warn(TAG, "a second bridge connection refused");
		return -EBUSY;
	}
	b->conn = c;
	*ops = &bridge_conn_ops;
	*conn_opaque = b;
	req = cJSON_CreateObject();
	cJSON_AddNumberToObject(req, "min_version", BRIDGE_VERSION_1);
	cJSON_AddNumberToObject(req, "max_version", BRIDGE_VERSION);
	caps = cJSON_AddArrayToObject(req, "capabilities");
	cJSON_AddItemToArray(caps, cJSON_CreateString(BRIDGE_CAP_EXEC));
	ret = bridge_request(
	    b, BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_NEGOTIATE), req,
	    negotiated, b);
	if (ret < 0) {
		b->conn = NULL;
		return ret;
	}
	pr_info(TAG, "GCS connected from guest port %u", vsock_conn_guest_port(c));
	return 0;
}

/* ---- the GCS's log ------------------------------------------------------------ */

static void log_readable(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;
	char buf[4096];
	size_t n;

	while ((n = vsock_conn_recv(c, buf, sizeof(buf))) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || b->log_len == sizeof(b->logline) - 1) {
				b->logline[b->log_len] = 0;
				pr_info("guest", "%s", b->logline);
				b->log_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			b->logline[b->log_len++] = buf[i];
		}
	}
}

static void log_eof(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;

	if (b->log_conn == c)
		b->log_conn = NULL;
	vsock_conn_close(c);
}

static void log_closed(void *opaque, struct vsock_conn *c)
{
	struct bridge *b = opaque;

	if (b->log_conn == c)
		b->log_conn = NULL;
}

static const struct vsock_conn_ops log_conn_ops = {
    .readable = log_readable,
    .eof = log_eof,
    .closed = log_closed,
};

static int on_log_accept(void *opaque, struct vsock_conn *c, uint32_t port,
			 const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct bridge *b = opaque;

	if (b->log_conn)
		return -EBUSY;
	b->log_conn = c;
	*ops = &log_conn_ops;
	*conn_opaque = b;
	return 0;
}

int bridge_create(struct bridge **out, struct vsock *vs, const struct bridge_ops *ops, void *opaque)
{
	struct bridge *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	b->vs = vs;
	b->ops = ops;
	b->opaque = opaque;
	bridge_rx_init(&b->rx, BRIDGE_MSG_MAX);
	ret = vsock_listen(vs, BRIDGE_PORT, on_accept, b);
	if (ret < 0)
		goto fail;
	ret = vsock_listen(vs, BRIDGE_LOG_PORT, on_log_accept, b);
	if (ret < 0) {
		vsock_unlisten(vs, BRIDGE_PORT);
		goto fail;
	}
	*out = b;
	return 0;
fail:
	bridge_rx_fini(&b->rx);
	free(b);
	return ret;
}

void bridge_destroy(struct bridge *b)
{
	if (!b)
		return;
	vsock_unlisten(b->vs, BRIDGE_PORT);
	vsock_unlisten(b->vs, BRIDGE_LOG_PORT);
	if (b->conn)
		vsock_conn_reset(b->conn);
	if (b->log_conn)
		vsock_conn_reset(b->log_conn);
	b->conn = b->log_conn = NULL;
	fail_all(b, -ECANCELED, "the VM is going away");
	bridge_rx_fini(&b->rx);
	free(b->out);
	free(b);
}

bool bridge_ready(const struct bridge *b)
{
	return b && b->negotiated;
}
