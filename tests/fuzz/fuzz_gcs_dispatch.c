/*
 * The guest agent's request dispatch (gcs/bridge.c) on hostile host bytes:
 * the real on_bridge reads a fuzzed stream from its connection (a socketpair
 * here), frames it (bridge_rx), parses each body, gates everything on
 * negotiate, routes by type and answers through gcs_bridge_respond, whose
 * bytes are read back and checked:
 *  - every answer is a response to a request the stream carried, with that
 *    request's id, and its body is a JSON object with an integer status <= 0;
 *  - before a negotiate succeeded, no request but negotiate gets status 0;
 *  - no request is answered twice (ids are made unique per input);
 *  - nothing crashes, hangs or leaks (ASan/LSan).
 * The handlers behind the routes (processes, disks, containers, networks)
 * act on the guest system, so here each is a stand-in that reads the fields
 * the real one reads, with the real field readers (gcs/fields.c), and answers
 * once; their own parsers are fuzzed elsewhere (fuzz_container.c, ...).
 * Bodies are either raw fuzz bytes or JSON objects built from a script of
 * those field names and edge values, so the fuzzer gets past JSON syntax.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* do_shutdown syncs the guest's disks: not the fuzzing machine's, thousands of times. */
static void fuzz_sync(void)
{
}
#define sync fuzz_sync

#include "gcs/bridge.c"
#include "gcs/fields.c"
#include "tests/fuzz/fuzz_input.h"

#undef sync

/* ---- stand-ins for the rest of the agent -------------------------------------------- */

void gcs_log(const char *fmt, ...)
{
	(void)fmt;
}

void gcs_log_errno(const char *fmt, ...)
{
	(void)fmt;
}

static const char *const keys[] = {
    "cols",	   "cwd",	"device",    "fs",	  "gid",     "id",	"max_version",
    "min_version", "mount",	"msize",     "name",	  "options", "path",	"pci_slot",
    "pid",	   "rows",	"serial",    "signal",	  "tag",     "term",	"timeout_ms",
    "uid",	   "addresses", "all",	     "args",	  "argv",    "dns",	"dst",
    "env",	   "force",	"format",    "gateway",	  "layers",  "mac",	"mtu",
    "netns",	   "process",	"read_only", "resources", "routes",  "scratch", "spec",
    "terminal",	   "tty",	"via"};

/* What every real handler does first: read its fields, refuse what is out of range. */
static void stand_in(uint32_t type, uint64_t id, const cJSON *req)
{
	long long v;
	int bad = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *s = gcs_bridge_str(req, keys[i]);

		if (s && strlen(s) > BRIDGE_MSG_MAX)
			abort(); /* a string longer than its message */
		if (gcs_bridge_int(req, keys[i], INT32_MIN, INT32_MAX, 0, &v))
			bad++;
		else if (v < INT32_MIN || v > INT32_MAX)
			abort();
	}
	if (bad)
		gcs_bridge_respond(type, id, -EINVAL, NULL, "%s: %d bad fields",
				   bridge_type_name(type), bad);
	else
		gcs_bridge_respond(type, id, 0, NULL, NULL); /* the dispatch let it through */
}

#define STAND_IN(name)                                                                             \
	void name(uint32_t type, uint64_t id, const cJSON *req)                                    \
	{                                                                                          \
		stand_in(type, id, req);                                                           \
	}
STAND_IN(gcs_process_exec)
STAND_IN(gcs_process_wait)
STAND_IN(gcs_process_signal)
STAND_IN(gcs_process_resize)
STAND_IN(gcs_system_properties)
STAND_IN(gcs_system_dump_stacks)
STAND_IN(gcs_scsi_add)
STAND_IN(gcs_scsi_remove)
STAND_IN(gcs_pmem_add_req)
STAND_IN(gcs_pmem_remove_req)
STAND_IN(gcs_plan9_add_req)
STAND_IN(gcs_plan9_remove_req)
STAND_IN(gcs_nic_req)
STAND_IN(gcs_container_create)
STAND_IN(gcs_container_start)
STAND_IN(gcs_container_exec)
STAND_IN(gcs_container_signal)
STAND_IN(gcs_container_update)
STAND_IN(gcs_container_stats)
STAND_IN(gcs_container_delete)
STAND_IN(gcs_netns_add_req)
STAND_IN(gcs_netns_remove_req)

/* gcs_bridge_main's calls: never run here. */
void gcs_storage_set_sysfs(const char *root)
{
	(void)root;
}
int gcs_vsock_tool(int argc, char **argv)
{
	(void)argc, (void)argv;
	return 1;
}
int gcs_stacks_init(void)
{
	return 0;
}
void gcs_process_reap(void)
{
}
void gcs_process_sweep(void)
{
}
int gcs_scsi_init(void)
{
	return 0;
}
void gcs_scsi_stop(void)
{
}
int gcs_container_init(void)
{
	return 0;
}
void gcs_container_set_paths(const char *dir, const char *mke2fs)
{
	(void)dir, (void)mke2fs;
}
void gcs_container_stop(void)
{
}

/* ---- the host's side ------------------------------------------------------------------ */

#define MAX_REQS 512

static struct {
	uint64_t id;
	uint32_t type;
	bool answered;
} sent[MAX_REQS];
static int nr_sent;
static bool lied; /* a header in this input lied about its size */

static const double numbers[] = {0,
				 1,
				 -1,
				 2,
				 3,
				 7,
				 31,
				 1e300,
				 -1e300,
				 0.5,
				 4294967295.0,
				 4294967296.0,
				 2147483648.0,
				 -2147483649.0,
				 9007199254740993.0,
				 NAN,
				 INFINITY};

static cJSON *build_value(struct in *in, int depth)
{
	unsigned k = take(in);

	switch (k % 8) {
	case 0:
		return cJSON_CreateNumber(
		    numbers[take(in) % (sizeof(numbers) / sizeof(numbers[0]))]);
	case 1:
		return cJSON_CreateNumber((double)(int32_t)take32(in));
	case 2: {
		char s[48];
		unsigned n = take(in) % sizeof(s);

		for (unsigned i = 0; i < n; i++)
			s[i] = (char)take(in);
		s[n] = '\0';
		return cJSON_CreateString(s);
	}
	case 3:
		return cJSON_CreateBool(k & 8);
	case 4:
		return cJSON_CreateNull();
	case 5:
	case 6: {
		cJSON *a = k % 8 == 5 ? cJSON_CreateArray() : cJSON_CreateObject();
		unsigned n = depth < 3 ? take(in) % 4 : 0;

		for (unsigned i = 0; i < n; i++) {
			cJSON *v = build_value(in, depth + 1);

			if (k % 8 == 5)
				cJSON_AddItemToArray(a, v);
			else
				cJSON_AddItemToObject(
				    a, keys[take(in) % (sizeof(keys) / sizeof(keys[0]))], v);
		}
		return a;
	}
	default:
		return cJSON_CreateString(keys[take(in) % (sizeof(keys) / sizeof(keys[0]))]);
	}
}

/* One message onto buf; returns its length. The id is unique within the input. */
static size_t build_msg(struct in *in, uint8_t *buf, size_t cap, uint64_t id)
{
	static const uint32_t kinds[] = {BRIDGE_KIND_REQUEST, BRIDGE_KIND_RESPONSE,
					 BRIDGE_KIND_NOTIFY};
	unsigned sel = take(in), mode = take(in);
	uint32_t type;
	char *text = NULL;
	size_t body_len, len;
	uint32_t size;

	if (sel < 200)
		type = routes[sel % (sizeof(routes) / sizeof(routes[0]))].type;
	else if (sel < 240)
		type = BRIDGE_TYPE(kinds[sel % 3], take(in) % 8, take(in) % 32);
	else
		type = take32(in);
	if (mode & 1) {
		/* Raw bytes: whatever follows, up to a length the script gives. */
		body_len = take(in) * 4;
		if (body_len > in->n)
			body_len = in->n;
		if (BRIDGE_HDR_SIZE + body_len > cap)
			body_len = cap - BRIDGE_HDR_SIZE;
		memcpy(buf + BRIDGE_HDR_SIZE, in->p, body_len);
		in->p += body_len;
		in->n -= body_len;
	} else {
		cJSON *o = cJSON_CreateObject();
		unsigned n = take(in) % 8;

		/* negotiate's own fields, right most of the time. */
		if (type == routes[0].type && (mode & 2)) {
			cJSON_AddNumberToObject(o, "min_version", BRIDGE_VERSION);
			cJSON_AddNumberToObject(o, "max_version", BRIDGE_VERSION);
		}
		for (unsigned i = 0; i < n; i++)
			cJSON_AddItemToObject(o, keys[take(in) % (sizeof(keys) / sizeof(keys[0]))],
					      build_value(in, 0));
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		body_len = text ? strlen(text) : 0;
		if (BRIDGE_HDR_SIZE + body_len > cap)
			body_len = cap - BRIDGE_HDR_SIZE;
		if (text)
			memcpy(buf + BRIDGE_HDR_SIZE, text, body_len);
		free(text);
	}
	len = BRIDGE_HDR_SIZE + body_len;
	size = (uint32_t)len;
	/*
	 * Now and then a lying size: framing must refuse or stop, never overrun.
	 * What follows is then read from the middle of a body: ids nobody sent.
	 */
	if ((mode & 0x1c) == 0x1c) {
		size = take32(in);
		lied = true;
	}
	bridge_hdr_encode(buf, type, size, id);
	if (nr_sent < MAX_REQS) {
		sent[nr_sent].id = id;
		sent[nr_sent].type = type;
		sent[nr_sent].answered = false;
		nr_sent++;
	}
	return len;
}

/* Reads the agent's answers so far and checks each. */
static void check_answers(int fd, struct bridge_rx *rx, bool *negotiated)
{
	uint8_t buf[65536];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		size_t off = 0, used;

		while (off < (size_t)n) {
			struct bridge_rx_event ev;
			enum bridge_rx_result r =
			    bridge_rx_feed(rx, buf + off, n - off, &used, &ev);
			const cJSON *st;
			cJSON *j;
			int i;

			off += used;
			if (r == BRIDGE_RX_MORE)
				break;
			if (r != BRIDGE_RX_MSG)
				abort(); /* the agent's own framing is always right */
			for (i = 0; i < nr_sent; i++)
				if (sent[i].id == ev.hdr.id)
					break;
			if (bridge_type_kind(ev.hdr.type) != BRIDGE_KIND_RESPONSE)
				abort();
			if (!lied && (i == nr_sent || sent[i].answered ||
				      ev.hdr.type != bridge_response_type(sent[i].type) ||
				      bridge_type_kind(sent[i].type) != BRIDGE_KIND_REQUEST))
				abort();
			if (i < nr_sent)
				sent[i].answered = true;
			j = cJSON_ParseWithLength(ev.body, ev.body_len);
			st = cJSON_GetObjectItemCaseSensitive(j, "status");
			if (!cJSON_IsObject(j) || !cJSON_IsNumber(st) || st->valuedouble > 0 ||
			    st->valuedouble != (double)(int)st->valuedouble)
				abort();
			if (ev.hdr.type == bridge_response_type(routes[0].type) &&
			    st->valuedouble == 0)
				*negotiated = true;
			else if (!*negotiated && st->valuedouble == 0)
				abort(); /* served before negotiate */
			cJSON_Delete(j);
			free(ev.body);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t stream[1 << 17];
	struct in in = {data, size};
	struct bridge_rx host_rx;
	size_t len = 0, off = 0;
	bool negotiated = false;
	int sv[2], sndbuf = 1 << 20;
	uint64_t id = take32(&in);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	B.fd = sv[0];
	B.negotiated = false;
	B.quit = false;
	bridge_rx_init(&B.rx, BRIDGE_MSG_MAX);
	bridge_rx_init(&host_rx, BRIDGE_MSG_MAX);
	nr_sent = 0;
	lied = false;
	while (in.n && nr_sent < MAX_REQS && len + 4096 < sizeof(stream))
		len += build_msg(&in, stream + len, 4096, id++);
	/* Written and read in chunks the script's first byte picks: headers split across reads. */
	if (!size)
		len = 0;
	while (off < len && !B.quit) {
		size_t chunk = 1 + (data[0] % 64) * 61; /* size > 0: id took bytes */

		if (chunk > len - off)
			chunk = len - off;
		if (write(sv[1], stream + off, chunk) != (ssize_t)chunk)
			abort();
		off += chunk;
		on_bridge(&B.fd_w, EPOLLIN);
		check_answers(sv[1], &host_rx, &negotiated);
	}
	bridge_rx_fini(&host_rx);
	bridge_rx_fini(&B.rx);
	close(sv[0]);
	close(sv[1]);
	B.fd = -1;
	return 0;
}
