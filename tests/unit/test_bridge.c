/* GCS bridge wire codec: header checks and the stream reader. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gcs/protocol.h"
#include "shim/bridge.h"
#include "virtio/vsock.h"

#include "fake_gcs.h"

#define T_EXEC_REQ  BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC)
#define T_EXEC_RESP BRIDGE_TYPE(BRIDGE_KIND_RESPONSE, BRIDGE_CAT_PROCESS, BRIDGE_RPC_EXEC)

static void test_type_layout(void **state)
{
	/* Pinned values: a change here breaks every deployed guest. */
	assert_int_equal(T_EXEC_REQ, 0x10200101);
	assert_int_equal(T_EXEC_RESP, 0x20200101);
	assert_int_equal(BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_SYSTEM, BRIDGE_RPC_NEGOTIATE),
			 0x10100101);
	assert_int_equal(bridge_response_type(T_EXEC_REQ), T_EXEC_RESP);
	assert_int_equal(bridge_type_kind(T_EXEC_REQ), BRIDGE_KIND_REQUEST);
	assert_int_equal(bridge_type_cat(T_EXEC_REQ), BRIDGE_CAT_PROCESS);
	assert_int_equal(bridge_type_rpc(T_EXEC_REQ), BRIDGE_RPC_EXEC);
	assert_int_equal(bridge_type_version(T_EXEC_REQ), BRIDGE_VERSION_1);
	assert_string_equal(bridge_type_name(T_EXEC_REQ), "exec request");
	assert_string_equal(bridge_type_name(T_EXEC_RESP), "exec response");
	assert_null(bridge_type_name(0));
	assert_null(bridge_type_name(T_EXEC_REQ + 1));	      /* version 2 */
	assert_null(bridge_type_name(BRIDGE_TYPE(4, 2, 1)));  /* kind 4 */
	assert_null(bridge_type_name(BRIDGE_TYPE(1, 2, 99))); /* rpc 99 */
	assert_null(bridge_type_name(BRIDGE_TYPE(3, 2, 2)));  /* wait is not a notify */
	assert_int_equal(sizeof(struct bridge_hdr), BRIDGE_HDR_SIZE);
}

static void test_header_roundtrip_le(void **state)
{
	uint8_t b[16];
	struct bridge_hdr h = {0};

	bridge_hdr_encode(b, T_EXEC_REQ, 0x20, 0x0102030405060708ULL);
	static const uint8_t want[16] = {0x01, 0x01, 0x20, 0x10, 0x20, 0,    0,	   0,
					 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	assert_memory_equal(b, want, 16);
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), 0);
	assert_int_equal(h.type, T_EXEC_REQ);
	assert_int_equal(h.size, 0x20);
	assert_true(h.id == 0x0102030405060708ULL);
}

static void test_header_checks(void **state)
{
	uint8_t b[16];
	struct bridge_hdr h = {0};

	for (uint32_t size = 0; size < BRIDGE_HDR_SIZE; size++) {
		bridge_hdr_encode(b, T_EXEC_REQ, size, 1);
		assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), -EBADMSG);
	}
	bridge_hdr_encode(b, T_EXEC_REQ, BRIDGE_HDR_SIZE, 1); /* empty body: framing ok */
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), 0);
	bridge_hdr_encode(b, T_EXEC_REQ, BRIDGE_MSG_MAX, 1);
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), 0);
	bridge_hdr_encode(b, T_EXEC_REQ, BRIDGE_MSG_MAX + 1, 9);
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), -EMSGSIZE);
	assert_int_equal(h.id, 9); /* still reported, so the answer can name it */
	bridge_hdr_encode(b, 0xffffffff, UINT32_MAX, 1);
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), -EMSGSIZE);
	bridge_hdr_encode(b, 0xdeadbeef, 100, 3);
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), -EPROTO);
	bridge_hdr_encode(b, T_EXEC_REQ + 1, 100, 3); /* unknown version */
	assert_int_equal(bridge_hdr_decode(b, &h, BRIDGE_MSG_MAX), -EPROTO);
}

static void test_msg_encode(void **state)
{
	uint8_t *buf = NULL;
	struct bridge_hdr h = {0};
	long n = bridge_msg_encode(&buf, T_EXEC_RESP, 77, "{\"status\":0}", 12, BRIDGE_MSG_MAX);

	assert_int_equal(n, 28);
	assert_int_equal(bridge_hdr_decode(buf, &h, BRIDGE_MSG_MAX), 0);
	assert_int_equal(h.size, 28);
	assert_int_equal(h.id, 77);
	assert_memory_equal(buf + 16, "{\"status\":0}", 12);
	free(buf);
	assert_int_equal(bridge_msg_encode(&buf, T_EXEC_RESP, 1, "x", 1, 16), -EMSGSIZE);
	assert_int_equal(bridge_msg_encode(&buf, T_EXEC_RESP, 1, "x", 1, 17), 17);
	free(buf);
	assert_int_equal(bridge_msg_encode(&buf, T_EXEC_RESP, 1, "x", SIZE_MAX - 4, 1000),
			 -EMSGSIZE);
}

/* Builds a stream of messages into buf; returns its length. */
static size_t put(uint8_t *buf, uint32_t type, uint32_t size, uint64_t id, const char *body)
{
	/* size 0: the honest one */
	bridge_hdr_encode(buf, type, size ? size : 16 + strlen(body), id);
	memcpy(buf + 16, body, strlen(body));
	return 16 + strlen(body);
}

static void test_rx_split_anywhere(void **state)
{
	uint8_t stream[256];
	size_t len = 0;

	len += put(stream + len, T_EXEC_REQ, 0, 1, "{\"a\":1}");
	len += put(stream + len, T_EXEC_RESP, 16, 2, "");
	len += put(stream + len, T_EXEC_REQ, 0, 3, "{}");

	/* Every split point into two feeds gives the same three messages. */
	for (size_t cut = 0; cut <= len; cut++) {
		struct bridge_rx rx;
		struct bridge_rx_event ev;
		uint64_t ids[3];
		int got = 0;
		size_t pieces[2][2] = {{0, cut}, {cut, len - cut}};

		bridge_rx_init(&rx, BRIDGE_MSG_MAX);
		for (int p = 0; p < 2; p++) {
			const uint8_t *d = stream + pieces[p][0];
			size_t n = pieces[p][1], used;
			enum bridge_rx_result r;

			while ((r = bridge_rx_feed(&rx, d, n, &used, &ev)) != BRIDGE_RX_MORE) {
				assert_int_equal(r, BRIDGE_RX_MSG);
				assert_true(got < 3);
				ids[got++] = ev.hdr.id;
				assert_int_equal(ev.body_len, ev.hdr.size - 16);
				assert_int_equal(strlen(ev.body), ev.body_len);
				free(ev.body);
				d += used;
				n -= used;
			}
			assert_int_equal(used, n);
		}
		assert_int_equal(got, 3);
		assert_int_equal(ids[0], 1);
		assert_int_equal(ids[1], 2);
		assert_int_equal(ids[2], 3);
		bridge_rx_fini(&rx);
	}
}

static void test_rx_byte_at_a_time(void **state)
{
	uint8_t stream[64];
	size_t len = put(stream, T_EXEC_REQ, 0, 5, "{\"a\":1}");
	struct bridge_rx rx;
	struct bridge_rx_event ev;
	size_t used;

	bridge_rx_init(&rx, BRIDGE_MSG_MAX);
	for (size_t i = 0; i + 1 < len; i++) {
		assert_int_equal(bridge_rx_feed(&rx, stream + i, 1, &used, &ev), BRIDGE_RX_MORE);
		assert_int_equal(used, 1);
	}
	assert_int_equal(bridge_rx_feed(&rx, stream + len - 1, 1, &used, &ev), BRIDGE_RX_MSG);
	assert_string_equal(ev.body, "{\"a\":1}");
	free(ev.body);
	bridge_rx_fini(&rx);
}

/* An oversized or unknown message is refused and skipped; the next one is read. */
static void test_rx_refused_keeps_framing(void **state)
{
	static uint8_t stream[4096];
	size_t len = 0, used, off = 0;
	struct bridge_rx rx;
	struct bridge_rx_event ev;

	bridge_hdr_encode(stream, T_EXEC_REQ, 16 + 2000, 11); /* over max 1024 */
	memset(stream + 16, 'x', 2000);
	len = 2016;
	len += put(stream + len, 0x77777777, 0, 12, "abc"); /* unknown type */
	len += put(stream + len, T_EXEC_REQ, 0, 13, "{}");

	bridge_rx_init(&rx, 1024);
	assert_int_equal(bridge_rx_feed(&rx, stream, len, &used, &ev), BRIDGE_RX_REFUSED);
	assert_int_equal(ev.err, -EMSGSIZE);
	assert_int_equal(ev.hdr.id, 11);
	assert_null(ev.body);
	off += used;
	assert_int_equal(bridge_rx_feed(&rx, stream + off, len - off, &used, &ev),
			 BRIDGE_RX_REFUSED);
	assert_int_equal(ev.err, -EPROTO);
	assert_int_equal(ev.hdr.id, 12);
	off += used;
	assert_int_equal(bridge_rx_feed(&rx, stream + off, len - off, &used, &ev), BRIDGE_RX_MSG);
	assert_int_equal(ev.hdr.id, 13);
	free(ev.body);
	off += used;
	assert_int_equal(off, len);
	/* No memory was held for the oversized body. */
	assert_null(rx.body);
	bridge_rx_fini(&rx);
}

static void test_rx_broken(void **state)
{
	uint8_t stream[64];
	struct bridge_rx rx;
	struct bridge_rx_event ev;
	size_t used;

	bridge_hdr_encode(stream, T_EXEC_REQ, 8, 4); /* size below the header */
	bridge_rx_init(&rx, BRIDGE_MSG_MAX);
	assert_int_equal(bridge_rx_feed(&rx, stream, 32, &used, &ev), BRIDGE_RX_BROKEN);
	assert_int_equal(ev.err, -EBADMSG);
	assert_int_equal(ev.hdr.id, 4);
	/* Nothing after it can be trusted. */
	put(stream, T_EXEC_REQ, 18, 5, "{}");
	assert_int_equal(bridge_rx_feed(&rx, stream, 18, &used, &ev), BRIDGE_RX_BROKEN);
	bridge_rx_fini(&rx);
}

/* A reader torn down halfway through a body frees it. */
static void test_rx_fini_midway(void **state)
{
	uint8_t stream[64];
	struct bridge_rx rx;
	struct bridge_rx_event ev;
	size_t used;

	put(stream, T_EXEC_REQ, 16 + 30, 5, "{\"partial\":");
	bridge_rx_init(&rx, BRIDGE_MSG_MAX);
	assert_int_equal(bridge_rx_feed(&rx, stream, 27, &used, &ev), BRIDGE_RX_MORE);
	assert_non_null(rx.body);
	bridge_rx_fini(&rx); /* ASan reports a leak if not */
}

/* ---- the shim's bridge client against a fake guest on the vsock engine --------------- */

struct cfx {
	struct vsock *vs;
	struct bridge *b;
	struct fake_gcs g;
	int ready, ready_err, closed, exited_pid, exited_code;
	/* the last response delivered to a request */
	int calls, status;
	char error[256];
	char body[512];
};

static void c_ready(void *o, int err, const cJSON *answer)
{
	struct cfx *f = o;

	f->ready++;
	f->ready_err = err;
}

static void c_exited(void *o, int pid, int code, int sig)
{
	struct cfx *f = o;

	f->exited_pid = pid;
	f->exited_code = code;
}

static void c_closed(void *o)
{
	((struct cfx *)o)->closed++;
}

static const struct bridge_ops cops = {
    .ready = c_ready, .process_exited = c_exited, .closed = c_closed};

static void c_resp(void *o, int status, const char *error, const cJSON *body)
{
	struct cfx *f = o;
	char *t = body ? cJSON_PrintUnformatted(body) : NULL;

	f->calls++;
	f->status = status;
	snprintf(f->error, sizeof(f->error), "%s", error ? error : "");
	snprintf(f->body, sizeof(f->body), "%s", t ? t : "");
	free(t);
}

#define g_pkt(f, op, p, len)	       assert_int_equal(fake_gcs_pkt(&(f)->g, op, p, len), 0)
#define g_msg(f, type, size, id, body) assert_int_equal(fake_gcs_msg(&(f)->g, type, size, id, body), 0)
#define g_next(f, h, body, cap)	       fake_gcs_next(&(f)->g, h, body, cap)

static int csetup(void **state)
{
	struct cfx *f = calloc(1, sizeof(*f));

	assert_int_equal(vsock_engine_create(&f->vs, FAKE_GCS_CID), 0);
	assert_int_equal(bridge_create(&f->b, f->vs, &cops, f), 0);
	assert_false(bridge_ready(f->b));
	/* The GCS dials in; the shim speaks first, with negotiate. */
	assert_int_equal(fake_gcs_connect(&f->g, f->vs), 0);
	assert_int_equal(f->ready, 1);
	assert_int_equal(f->ready_err, 0);
	assert_true(bridge_ready(f->b));
	*state = f;
	return 0;
}

static int cteardown(void **state)
{
	struct cfx *f = *state;

	bridge_destroy(f->b);
	vsock_engine_destroy(f->vs);
	fake_gcs_fini(&f->g);
	free(f);
	return 0;
}

#define T_WAIT_REQ BRIDGE_TYPE(BRIDGE_KIND_REQUEST, BRIDGE_CAT_PROCESS, BRIDGE_RPC_WAIT)

static uint64_t ask(struct cfx *f, uint32_t type)
{
	struct bridge_hdr h = {0};
	char body[512];

	assert_int_equal(bridge_request(f->b, type, cJSON_CreateObject(), c_resp, f), 0);
	assert_int_equal(g_next(f, &h, body, sizeof(body)), 0);
	assert_int_equal(h.type, type);
	return h.id;
}

static void test_client_out_of_order(void **state)
{
	struct cfx *f = *state;
	uint64_t a = ask(f, T_WAIT_REQ), b = ask(f, T_EXEC_REQ);

	assert_true(a != b);
	g_msg(f, T_EXEC_RESP, 0, b, "{\"status\":0,\"pid\":42}");
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->body, "{\"status\":0,\"pid\":42}");
	g_msg(f, bridge_response_type(T_WAIT_REQ), 0, a,
	      "{\"status\":-2,\"error\":\"exec x: No such..\"}");
	assert_int_equal(f->calls, 2);
	assert_int_equal(f->status, -2);
	assert_string_equal(f->error, "exec x: No such..");
	/* A notification. */
	g_msg(f, BRIDGE_TYPE(BRIDGE_KIND_NOTIFY, BRIDGE_CAT_PROCESS, BRIDGE_NOTIFY_PROCESS_EXITED),
	      0, 0, "{\"pid\":42,\"exit_code\":7,\"sig\":0}");
	assert_int_equal(f->exited_pid, 42);
	assert_int_equal(f->exited_code, 7);
	/* A response nobody asked for is ignored. */
	g_msg(f, T_EXEC_RESP, 0, 9999, "{\"status\":0}");
	assert_int_equal(f->calls, 2);
}

/* Malformed guest messages fail the request they answer, and the bridge keeps going. */
static void test_client_bad_guest_messages(void **state)
{
	struct cfx *f = *state;
	static char big[BRIDGE_MSG_MAX + 100];
	uint64_t id;

	id = ask(f, T_EXEC_REQ);
	g_msg(f, T_EXEC_RESP, 0, id, "not json");
	assert_int_equal(f->status, -EBADMSG);
	assert_non_null(strstr(f->error, "malformed"));

	id = ask(f, T_EXEC_REQ);
	g_msg(f, T_EXEC_RESP, 0, id, "{\"pid\":1}"); /* no status */
	assert_int_equal(f->status, -EBADMSG);

	id = ask(f, T_EXEC_REQ);
	g_msg(f, bridge_response_type(T_WAIT_REQ), 0, id, "{\"status\":0}"); /* wrong type */
	assert_int_equal(f->status, -EPROTO);

	/* Oversized: refused by its header, body skipped as it streams in. */
	id = ask(f, T_EXEC_REQ);
	memset(big, ' ', sizeof(big));
	{
		uint8_t hdr[16];
		size_t left = sizeof(big);

		bridge_hdr_encode(hdr, T_EXEC_RESP, 16 + sizeof(big), id);
		g_pkt(f, VSOCK_OP_RW, hdr, 16);
		assert_int_equal(f->status, -EMSGSIZE);
		assert_non_null(strstr(f->error, "size limit"));
		while (left) {
			size_t n = left < 60000 ? left : 60000;

			g_pkt(f, VSOCK_OP_RW, big, n);
			left -= n;
			/* Let the shim credit us back, as a real driver would be told. */
			{
				struct bridge_hdr h;
				char b[64];

				g_next(f, &h, b, sizeof(b));
			}
		}
	}
	/* Unknown type: skipped. */
	g_msg(f, 0x7f000001, 0, 5, "{}");
	/* Still working. */
	id = ask(f, T_EXEC_REQ);
	g_msg(f, T_EXEC_RESP, 0, id, "{\"status\":0,\"pid\":43}");
	assert_int_equal(f->status, 0);
	assert_int_equal(f->closed, 0);
}

static void test_client_broken_framing_and_reconnect(void **state)
{
	struct cfx *f = *state;
	struct bridge_hdr h = {0};
	char body[256];

	ask(f, T_EXEC_REQ);
	g_msg(f, T_EXEC_RESP, 8, 1, ""); /* size below the header */
	assert_int_equal(f->status, -ECONNRESET);
	assert_int_equal(f->closed, 1);
	assert_false(bridge_ready(f->b));
	assert_int_equal(g_next(f, &h, body, sizeof(body)), -2); /* the guest got a reset */
	assert_int_equal(bridge_request(f->b, T_EXEC_REQ, cJSON_CreateObject(), c_resp, f),
			 -ENOTCONN);
	/* A new GCS connection negotiates again. */
	bridge_rx_fini(&f->g.rx);
	bridge_rx_init(&f->g.rx, BRIDGE_MSG_MAX);
	f->g.fwd = 0;
	g_pkt(f, VSOCK_OP_REQUEST, NULL, 0);
	assert_int_equal(g_next(f, &h, body, sizeof(body)), 0);
	g_msg(f, bridge_response_type(h.type), 0, h.id, "{\"status\":0}");
	assert_true(bridge_ready(f->b));
}

static void test_client_destroy_cancels(void **state)
{
	struct cfx *f = *state;

	ask(f, T_WAIT_REQ);
	bridge_destroy(f->b);
	f->b = NULL;
	assert_int_equal(f->status, -ECANCELED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_type_layout),
	    cmocka_unit_test(test_header_roundtrip_le),
	    cmocka_unit_test(test_header_checks),
	    cmocka_unit_test(test_msg_encode),
	    cmocka_unit_test(test_rx_split_anywhere),
	    cmocka_unit_test(test_rx_byte_at_a_time),
	    cmocka_unit_test(test_rx_refused_keeps_framing),
	    cmocka_unit_test(test_rx_broken),
	    cmocka_unit_test(test_rx_fini_midway),
	    cmocka_unit_test_setup_teardown(test_client_out_of_order, csetup, cteardown),
	    cmocka_unit_test_setup_teardown(test_client_bad_guest_messages, csetup, cteardown),
	    cmocka_unit_test_setup_teardown(test_client_broken_framing_and_reconnect, csetup,
					    cteardown),
	    cmocka_unit_test_setup_teardown(test_client_destroy_cancels, csetup, cteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
