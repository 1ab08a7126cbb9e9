/*
 * The GCS bridge: wire definitions shared by the shim (host side) and the GCS
 * (guest side). docs/protocol.md describes every message with an example.
 *
 * The guest dials the host (CID 2) on BRIDGE_PORT. Every message is a 16-byte
 * little-endian header then exactly one JSON object:
 *
 *   u32 type   kind << 28 | category << 20 | rpc << 8 | version
 *   u32 size   header included, at most BRIDGE_MSG_MAX
 *   u64 id     a request's id; its response carries the same id
 *
 * The host speaks first with BRIDGE_RPC_NEGOTIATE; nothing else is accepted
 * before it. Responses may come back in any order. Every response body has
 * "status" (0 or a negative errno) and, when non-zero, "error" (a message).
 *
 * Process stdio does not go over the bridge: for each stream the host listens
 * on a port it allocates from BRIDGE_STDIO_PORT_BASE and names it in the exec
 * request; the guest dials it. The GCS writes its log as text lines to
 * BRIDGE_LOG_PORT.
 */
#ifndef GCS_PROTOCOL_H
#define GCS_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- addressing ------------------------------------------------------------ */

#define BRIDGE_HOST_CID		2u
#define BRIDGE_PORT		0x40000000u
#define BRIDGE_STDIO_PORT_BASE	0x40000001u
#define BRIDGE_STDIO_PORT_LIMIT 0x4fffffffu /* last port the host hands out */
#define BRIDGE_LOG_PORT		109u

/* ---- framing --------------------------------------------------------------- */

#define BRIDGE_HDR_SIZE 16u
/* Both sides refuse anything bigger; an exec with a large env fits easily. */
#define BRIDGE_MSG_MAX (1u << 20)

/* The header as carried on the wire (little-endian fields). */
struct bridge_hdr {
	uint32_t type;
	uint32_t size;
	uint64_t id;
} __attribute__((packed));

_Static_assert(sizeof(struct bridge_hdr) == BRIDGE_HDR_SIZE, "bridge header is 16 bytes");
_Static_assert(offsetof(struct bridge_hdr, size) == 4, "size at offset 4");
_Static_assert(offsetof(struct bridge_hdr, id) == 8, "id at offset 8");

/* ---- message types --------------------------------------------------------- */

enum bridge_kind {
	BRIDGE_KIND_REQUEST = 1,
	BRIDGE_KIND_RESPONSE = 2,
	BRIDGE_KIND_NOTIFY = 3,
};

enum bridge_category {
	BRIDGE_CAT_SYSTEM = 1,	/* negotiate, shutdown, properties, stacks */
	BRIDGE_CAT_PROCESS = 2, /* processes in the utility VM */
	BRIDGE_CAT_DEVICE = 3,	/* hot-plugged devices (scsi, later others) */
	/* containers: layers, overlay, crun */
	BRIDGE_CAT_CONTAINER = 4,
};

/* RPC numbers, per category. */
enum {
	BRIDGE_RPC_NEGOTIATE = 1,   /* system */
	BRIDGE_RPC_SHUTDOWN = 2,    /* system */
	BRIDGE_RPC_PROPERTIES = 3,  /* system: processes and memory figures */
	BRIDGE_RPC_DUMP_STACKS = 4, /* system */

	BRIDGE_RPC_EXEC = 1,   /* process */
	BRIDGE_RPC_WAIT = 2,   /* process */
	BRIDGE_RPC_SIGNAL = 3, /* process */
	BRIDGE_RPC_RESIZE = 4, /* process */

	BRIDGE_RPC_SCSI_ADD = 1,    /* device */
	BRIDGE_RPC_SCSI_REMOVE = 2, /* device */
	BRIDGE_RPC_PMEM_ADD = 3,    /* device: a virtio-pmem function, found by PCI slot */
	BRIDGE_RPC_PMEM_REMOVE = 4, /* device */
	BRIDGE_RPC_PLAN9_ADD = 5,    /* device: mount a virtio-9p share by its tag */
	BRIDGE_RPC_PLAN9_REMOVE = 6, /* device: unmount it and remove its function */
	BRIDGE_RPC_NIC_ADD = 7,	    /* device */
	BRIDGE_RPC_NIC_REMOVE = 8,  /* device */
	BRIDGE_RPC_NIC_UPDATE = 9,  /* device */

	BRIDGE_NOTIFY_PROCESS_EXITED = 1, /* process: sent by the guest, no response */
};

/* RPC numbers of the container category. */
enum {
	BRIDGE_RPC_CONTAINER_CREATE = 1,
	BRIDGE_RPC_CONTAINER_START = 2,
	BRIDGE_RPC_CONTAINER_EXEC = 3,
	BRIDGE_RPC_CONTAINER_SIGNAL = 4,
	BRIDGE_RPC_CONTAINER_UPDATE = 5,
	BRIDGE_RPC_CONTAINER_STATS = 6,
	BRIDGE_RPC_CONTAINER_DELETE = 7,
	BRIDGE_RPC_NETNS_ADD = 8, /* a named network namespace */
	BRIDGE_RPC_NETNS_REMOVE = 9,

	BRIDGE_NOTIFY_CONTAINER_EXITED = 1, /* sent by the guest: its init was reaped */
	BRIDGE_NOTIFY_CONTAINER_OOM = 2,    /* sent by the guest: its cgroup's OOM killer fired */
};

#define BRIDGE_VERSION_1 1u
/* Message framing version this build speaks (the low byte of every type). */
#define BRIDGE_VERSION BRIDGE_VERSION_1

#define BRIDGE_TYPE(kind, cat, rpc)                                                                \
	(((uint32_t)(kind) << 28) | ((uint32_t)(cat) << 20) | ((uint32_t)(rpc) << 8) |             \
	 BRIDGE_VERSION)

static inline unsigned bridge_type_kind(uint32_t t)
{
	return t >> 28;
}
static inline unsigned bridge_type_cat(uint32_t t)
{
	return (t >> 20) & 0xff;
}
static inline unsigned bridge_type_rpc(uint32_t t)
{
	return (t >> 8) & 0xfff;
}
static inline unsigned bridge_type_version(uint32_t t)
{
	return t & 0xff;
}
/* The response type that answers request type t. */
static inline uint32_t bridge_response_type(uint32_t t)
{
	return (t & 0x0fffffffu) | ((uint32_t)BRIDGE_KIND_RESPONSE << 28);
}

/*
 * Bodies (JSON; unknown fields are ignored, missing optional ones default):
 *
 * negotiate   req  {"min_version":1,"max_version":1,"capabilities":[...]}
 *             resp {"status":0,"version":1,"capabilities":[...],"kernel":"6.1.0-..."}
 * shutdown    req  {"timeout_ms":N}            resp {"status":0} then power off
 * properties  req  {"processes":true,"memory":true}
 *             resp {"status":0,"processes":[{"pid":1,"ppid":0,"name":"init",
 *                   "rss_kib":N}],"memory":{"total_kib":N,"free_kib":N,"available_kib":N}}
 * dump_stacks req  {}                          resp {"status":0,"stacks":"text"}
 * exec        req  {"argv":[...],"env":["K=V",...],"cwd":"/","uid":0,"gid":0,
 *                   "tty":false,"rows":24,"cols":80,
 *                   "stdin_port":P,"stdout_port":P,"stderr_port":P}  (port 0: none)
 *             resp {"status":0,"pid":N}  or {"status":-2,"error":"exec sh: ..."}
 * wait        req  {"pid":N}   resp, once it exits: {"status":0,"exit_code":N,"signal":S}
 *                   (signal 0 when it exited; exit_code 128+S when killed)
 * signal      req  {"pid":N,"signal":S}        resp {"status":0}
 * resize      req  {"pid":N,"rows":R,"cols":C}  resp {"status":0}
 * scsi_add    req  {"controller":C,"lun":L,"serial":"uvm-c0-l1","mount":"/path",
 *                   "fs":"ext4","options":"noatime","read_only":false,"timeout_ms":N}
 *             resp {"status":0,"device":"/dev/vdb"}: found by serial after a PCI
 *                   rescan (and mounted); on failure the guest removed it again
 * scsi_remove req  {"controller":C,"lun":L,"serial":"uvm-c0-l1","mount":"/path"}
 *             resp {"status":0} once unmounted and its PCI function removed
 * nic_add     req  {"mac":"02:..","mtu":1500,"addresses":["10.0.0.2/24"],"gateway":"10.0.0.1",
 *                   "routes":[{"dst":"10.1.0.0/16","via":"10.0.0.254"}],"dns":["10.0.0.1"],
 *                   "timeout_ms":N}  (all but mac optional)
 *             resp {"status":0,"interface":"eth1"}: found by MAC after a PCI rescan, up,
 *                   configured over rtnetlink; DNS servers written to /etc/resolv.conf
 * nic_update  req  {"mac":"02:..", and any of mtu, addresses, gateway, routes, dns}
 *             resp {"status":0}: the fields given replace what was set before
 * nic_remove  req  {"mac":"02:..","timeout_ms":N}
 *             resp {"status":0} once the link is down and its PCI function removed
 * process_exited notify {"pid":N,"exit_code":N,"signal":S}
 *
 * container_create req {"id":"c1","spec":{OCI runtime spec},
 *                   "layers":[{"device":"/dev/pmem0","fs":"ext4"} | {"path":"/guest/dir"}, ...]
 *                   (top first), "scratch":{"device":"/dev/vdc","format":true} |
 *                   {"path":"/guest/dir"} | absent (tmpfs); or instead of both
 *                   "rootfs":{"path":"/guest/dir"} (a writable 9p share, bound as the
 *                   root itself); and exec's stdio fields
 *                   (stdin_port, stdout_port, stderr_port, rows, cols); a terminal when
 *                   spec.process.terminal}
 *             resp {"status":0,"pid":N}: created (crun create), waiting for start; the pid
 *                   is served by wait/signal/resize like an exec'd one
 * container_start  req {"id":"c1"}              resp {"status":0}
 * container_exec   req {"id":"c1","process":{OCI process}, stdio fields}
 *             resp {"status":0,"pid":N}
 * container_signal req {"id":"c1","signal":S,"all":false}  resp {"status":0}
 * container_update req {"id":"c1","resources":{OCI linux.resources}}  resp {"status":0}
 * container_stats  req {"id":"c1"}
 *             resp {"status":0,"memory":{"current":B,"max":B,"peak":B,"oom_kills":N},
 *                   "cpu":{"usage_usec":N,"user_usec":N,"system_usec":N},
 *                   "pids":{"current":N,"max":N},"io":{"rbytes":B,"wbytes":B,"rios":N,
 *                   "wios":N}}  (max -1: no limit)
 * container_delete req {"id":"c1","force":false}  resp {"status":0}: crun delete, overlay,
 *                   scratch and unshared layers unmounted, its directory removed
 * netns_add        req {"name":"n1"}  resp {"status":0}: /run/netns/n1, lo up
 * netns_remove     req {"name":"n1"}  resp {"status":0}
 *             (nic_add's "netns":"n1" moves the NIC into it before configuring it there)
 * container_exited notify {"id":"c1","pid":N,"exit_code":N,"signal":S,"oom_killed":B}
 * container_oom    notify {"id":"c1","oom_kills":N}
 */
#define BRIDGE_NEGOTIATE_TIMEOUT_MS 10000

/* Capabilities exchanged at negotiation (strings in "capabilities"). */
#define BRIDGE_CAP_EXEC	       "exec"
#define BRIDGE_CAP_TTY	       "tty"
#define BRIDGE_CAP_SIGNAL      "signal"
#define BRIDGE_CAP_PROPERTIES  "properties"
#define BRIDGE_CAP_DUMP_STACKS "dump_stacks"
#define BRIDGE_CAP_SHUTDOWN    "shutdown"
#define BRIDGE_CAP_SCSI	       "scsi"
#define BRIDGE_CAP_PLAN9       "plan9"
#define BRIDGE_CAP_NIC	       "nic"
#define BRIDGE_CAP_CONTAINER   "container"

/* ---- codec (gcs/bridge_codec.c, compiled into both sides) ------------------ */

/* Name of a known type ("exec request"), or NULL when the type is unknown. */
const char *bridge_type_name(uint32_t type);

/* Writes a header in wire order. */
void bridge_hdr_encode(uint8_t out[BRIDGE_HDR_SIZE], uint32_t type, uint32_t size, uint64_t id);

/*
 * Reads and checks a header. Returns 0, or:
 *   -EBADMSG   size below the header: framing is lost, drop the connection
 *   -EMSGSIZE  size over max: the body can be skipped, framing survives
 *   -EPROTO    unknown type or version: likewise skippable
 * *h is filled in every case so the caller can name the id in its answer.
 */
int bridge_hdr_decode(const uint8_t in[BRIDGE_HDR_SIZE], struct bridge_hdr *h, uint32_t max);

/*
 * Encodes header + body (body_len bytes of JSON) into a new buffer. Returns its
 * length, or -EMSGSIZE when header + body exceeds max, -ENOMEM.
 */
long bridge_msg_encode(uint8_t **out, uint32_t type, uint64_t id, const char *body, size_t body_len,
		       uint32_t max);

/*
 * Incremental reader for a byte stream: feed what the socket gave, get whole
 * messages. A message with a bad but skippable header is reported and its body
 * discarded without buffering it, so an oversized message costs no memory.
 */
struct bridge_rx {
	uint32_t max;
	uint8_t hdr_buf[BRIDGE_HDR_SIZE];
	uint32_t hdr_len;
	struct bridge_hdr hdr; /* valid once hdr_len == BRIDGE_HDR_SIZE */
	char *body;	       /* body_len bytes expected, body_got received */
	uint32_t body_len, body_got;
	uint64_t skip; /* bytes still to discard for a refused message */
	bool broken;   /* framing lost: nothing more can be read */
};

enum bridge_rx_result {
	BRIDGE_RX_MORE = 0, /* everything consumed, no complete message yet */
	BRIDGE_RX_MSG,	    /* a message: hdr + body (NUL-terminated, body_len bytes) */
	BRIDGE_RX_REFUSED,  /* a bad header (err says why); its body is being skipped */
	BRIDGE_RX_BROKEN,   /* framing lost (size below the header); stop reading */
};

struct bridge_rx_event {
	struct bridge_hdr hdr;
	char *body; /* BRIDGE_RX_MSG: owned by the caller now (free()) */
	uint32_t body_len;
	int err; /* BRIDGE_RX_REFUSED/BROKEN: -EMSGSIZE, -EPROTO, -EBADMSG, -ENOMEM */
};

void bridge_rx_init(struct bridge_rx *rx, uint32_t max);
void bridge_rx_fini(struct bridge_rx *rx);
/*
 * Consumes up to len bytes, stopping after the first event. *used says how
 * many were consumed; call again with the rest until BRIDGE_RX_MORE.
 */
enum bridge_rx_result bridge_rx_feed(struct bridge_rx *rx, const uint8_t *data, size_t len,
				     size_t *used, struct bridge_rx_event *ev);

#endif
