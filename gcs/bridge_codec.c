/*
 * Bridge header codec and stream reader (gcs/protocol.h). Compiled into both
 * the shim and the GCS: keep it free of anything but libc.
 */
#include "gcs/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	uint32_t type;
	const char *name;
} known_types[] = {
#define REQ_RESP(cat, rpc, n)                                                                      \
	{BRIDGE_TYPE(BRIDGE_KIND_REQUEST, cat, rpc), n " request"},                                \
	{                                                                                          \
		BRIDGE_TYPE(BRIDGE_KIND_RESPONSE, cat, rpc), n " response"                         \
	}
    REQ_RESP(BRIDGE_CAT_SYSTEM, BRIDGE_RPC_NEGOTIATE, "negotiate"),
    REQ_RESP(BRIDGE_CAT_SYSTEM, BRIDGE_RPC_SHUTDOWN, "shutdown"),
    REQ_RESP(BRIDGE_CAT_SYSTEM, BRIDGE_RPC_PROPERTIES, "properties"),
    REQ_RESP(BRIDGE_CAT_SYSTEM, BRIDGE_RPC_DUMP_STACKS, "dump_stacks"),
    REQ_RESP(BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC, "exec"),
    REQ_RESP(BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT, "wait"),
    REQ_RESP(BRIDGE_CAT_PROCESS, BRIDGE_RPC_SIGNAL, "signal"),
    REQ_RESP(BRIDGE_CAT_PROCESS, BRIDGE_RPC_RESIZE, "resize"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_ADD, "scsi_add"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_SCSI_REMOVE, "scsi_remove"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_PMEM_ADD, "pmem_add"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_PMEM_REMOVE, "pmem_remove"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_PLAN9_ADD, "plan9_add"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_PLAN9_REMOVE, "plan9_remove"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_ADD, "nic_add"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_REMOVE, "nic_remove"),
    REQ_RESP(BRIDGE_CAT_DEVICE, BRIDGE_RPC_NIC_UPDATE, "nic_update"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_CREATE, "container_create"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_START, "container_start"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_EXEC, "container_exec"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_SIGNAL, "container_signal"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_UPDATE, "container_update"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_STATS, "container_stats"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_CONTAINER_DELETE, "container_delete"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_NETNS_ADD, "netns_add"),
    REQ_RESP(BRIDGE_CAT_CONTAINER, BRIDGE_RPC_NETNS_REMOVE, "netns_remove"),
    {BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS, BRIDGE_NOTIFY_PROCESS_EXITED),
     "process_exited notify"},
    {BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_EXITED),
     "container_exited notify"},
    {BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_CONTAINER, BRIDGE_NOTIFY_CONTAINER_OOM),
     "container_oom notify"},
#undef REQ_RESP
};

const char *bridge_type_name(uint32_t type)
{
	for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++)
		if (known_types[i].type == type)
			return known_types[i].name;
	return NULL;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void bridge_hdr_encode(uint8_t out[BRIDGE_HDR_SIZE], uint32_t type, uint32_t size, uint64_t id)
{
	put_le32(out, type);
	put_le32(out + 4, size);
	put_le32(out + 8, (uint32_t)id);
	put_le32(out + 12, (uint32_t)(id >> 32));
}

int bridge_hdr_decode(const uint8_t in[BRIDGE_HDR_SIZE], struct bridge_hdr *h, uint32_t max)
{
	h->type = get_le32(in);
	h->size = get_le32(in + 4);
	h->id = (uint64_t)get_le32(in + 8) | (uint64_t)get_le32(in + 12) << 32;
	if (h->size < BRIDGE_HDR_SIZE)
		return -EBADMSG;
	if (h->size > max)
		return -EMSGSIZE;
	if (!bridge_type_name(h->type))
		return -EPROTO;
	return 0;
}

long bridge_msg_encode(uint8_t **out, uint32_t type, uint64_t id, const char *body, size_t body_len,
		       uint32_t max)
{
	uint8_t *buf;

	if (body_len > max || BRIDGE_HDR_SIZE + body_len > max)
		return -EMSGSIZE;
	buf = malloc(BRIDGE_HDR_SIZE + body_len);
	if (!buf)
		return -ENOMEM;
	bridge_hdr_encode(buf, type, BRIDGE_HDR_SIZE + body_len, id);
	memcpy(buf + BRIDGE_HDR_SIZE, body, body_len);
	*out = buf;
	return BRIDGE_HDR_SIZE + body_len;
}

void bridge_rx_init(struct bridge_rx *rx, uint32_t max)
{
	memset(rx, 0, sizeof(*rx));
	rx->max = max;
}

void bridge_rx_fini(struct bridge_rx *rx)
{
	free(rx->body);
	rx->body = NULL;
}

enum bridge_rx_result bridge_rx_feed(struct bridge_rx *rx, const uint8_t *data, size_t len,
				     size_t *used, struct bridge_rx_event *ev)
{
	size_t off = 0;

	memset(ev, 0, sizeof(*ev));
	*used = 0;
	if (rx->broken) {
		ev->err = -EBADMSG;
		return BRIDGE_RX_BROKEN;
	}
	while (off < len) {
		if (rx->skip) {
			size_t n = len - off < rx->skip ? len - off : rx->skip;

			off += n;
			rx->skip -= n;
			continue;
		}
		if (rx->hdr_len < BRIDGE_HDR_SIZE) {
			size_t n = BRIDGE_HDR_SIZE - rx->hdr_len;
			int err;

			if (n > len - off)
				n = len - off;
			memcpy(rx->hdr_buf + rx->hdr_len, data + off, n);
			rx->hdr_len += n;
			off += n;
			if (rx->hdr_len < BRIDGE_HDR_SIZE)
				break;
			err = bridge_hdr_decode(rx->hdr_buf, &rx->hdr, rx->max);
			if (err == -EBADMSG) {
				rx->broken = true;
				ev->hdr = rx->hdr;
				ev->err = err;
				*used = off;
				return BRIDGE_RX_BROKEN;
			}
			if (err) {
				/* Keep framing: discard exactly the announced body. */
				rx->skip = rx->hdr.size - BRIDGE_HDR_SIZE;
				rx->hdr_len = 0;
				ev->hdr = rx->hdr;
				ev->err = err;
				*used = off;
				return BRIDGE_RX_REFUSED;
			}
			rx->body_len = rx->hdr.size - BRIDGE_HDR_SIZE;
			rx->body_got = 0;
			rx->body = malloc(rx->body_len + 1);
			if (!rx->body) {
				rx->skip = rx->body_len;
				rx->hdr_len = 0;
				ev->hdr = rx->hdr;
				ev->err = -ENOMEM;
				*used = off;
				return BRIDGE_RX_REFUSED;
			}
		}
		if (rx->body_got < rx->body_len) {
			size_t n = rx->body_len - rx->body_got;

			if (n > len - off)
				n = len - off;
			memcpy(rx->body + rx->body_got, data + off, n);
			rx->body_got += n;
			off += n;
		}
		if (rx->body_got == rx->body_len) {
			rx->body[rx->body_len] = 0;
			ev->hdr = rx->hdr;
			ev->body = rx->body;
			ev->body_len = rx->body_len;
			rx->body = NULL;
			rx->hdr_len = 0;
			*used = off;
			return BRIDGE_RX_MSG;
		}
	}
	*used = off;
	return BRIDGE_RX_MORE;
}
