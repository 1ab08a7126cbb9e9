/*
 * A vCPU resetting the vsock device while the event loop drains its tx queue
 * and runs the endpoint's callbacks (issue 9, defect 2), for ThreadSanitizer
 * (`make tsan`, tests/unit/tsan.mk) and ASan (`make unit`).
 *
 * Threads, as in the shim:
 *  - loop: loop_run; the kick eventfd drains tx under the device lock and
 *    calls the host endpoint (the place the bridge sits): accept, readable
 *    (which answers the guest, and retires one of a set of virtio-rng
 *    functions the way a manager answers scsi.remove: mgr_retire, so the
 *    teardown, which takes the PCI bus lock, runs later on the loop, outside
 *    the device lock), closed;
 *  - vcpu: a driver that probes the device, posts rx buffers, connects and
 *    sends a burst, kicks, and without waiting writes device status 0
 *    through the PCI_CFG capability window (config space: the PCI bus lock,
 *    then the device's reset and its lock), over and over.
 * What fails: a deadlock (the test hangs; TSan names the inversion first), a
 * data race or use-after-free on device or endpoint state, or a function
 * retired while the loop never reaped it.
 *
 * Guest memory is shared with a guest by design: the driver thread's own
 * ring and buffer writes are published with the release store of the avail
 * index (tq_avail_add), as a guest's are with its barriers.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/manager.h"
#include "virtio/vsock.h"
#include "virtio_test_util.h"
#include "vmm/loop.h"

#define CID	 42
#define HPORT	 1234
#define GPORT	 5000
#define QS	 16
#define RXBUF	 0x40000 /* 8 rx buffers of 0x2000 */
#define TXBUF	 0x60000
#define NR_RNG	 8
#define ROUNDS	 300
#define F_V1	 (1ULL << VIRTIO_F_VERSION_1)
#define GUESTBUF (4096 + VSOCK_HDR_SIZE)

struct race {
	struct tmach m;
	struct loop *loop;
	struct vsock *vs;
	struct virtio_dev *dev;
	struct virtio_dev *rng[NR_RNG];
	struct mgr_reaper reaper;
	struct tdrv drv;
	uint32_t pcicfg;
	uint16_t tx_head;
	/* endpoint state: callbacks only, under the device lock */
	int accepted, reads, closed, retired, live;
};

/* ---- the host endpoint (loop thread, and the vCPU for closed on a reset) ------------------ */

static void ep_readable(void *o, struct vsock_conn *c)
{
	struct race *r = o;
	uint8_t buf[256];

	while (vsock_conn_recv(c, buf, sizeof(buf)) > 0)
		r->reads++;
	/* The bridge answers from here... */
	(void)vsock_conn_send(c, "ok", 2);
	/* ...and a manager retires a function from here (defect 2: never destroyed here). */
	if (r->retired < NR_RNG) {
		mgr_retire(&r->reaper, r->rng[r->retired], NULL, 0, NULL, NULL, NULL, NULL);
		r->rng[r->retired++] = NULL;
	}
}

static void ep_closed(void *o, struct vsock_conn *c)
{
	struct race *r = o;

	r->closed++;
	r->live--;
}

static void ep_nop(void *o, struct vsock_conn *c)
{
}

static void ep_connected(void *o, struct vsock_conn *c, int err)
{
}

static const struct vsock_conn_ops ep_ops = {
    .connected = ep_connected,
    .readable = ep_readable,
    .writable = ep_nop,
    .eof = ep_nop,
    .closed = ep_closed,
};

static int ep_accept(void *opaque, struct vsock_conn *c, uint32_t port,
		     const struct vsock_conn_ops **ops, void **conn_opaque)
{
	struct race *r = opaque;

	r->accepted++;
	r->live++;
	*ops = &ep_ops;
	*conn_opaque = r;
	return 0;
}

/* ---- the driver (vCPU thread) ------------------------------------------------------------- */

static void post_tx(struct race *r, uint16_t op, uint32_t src_port, const void *pay, uint32_t len)
{
	struct vsock_hdr h = {.src_cid = CID,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = src_port,
			      .dst_port = HPORT,
			      .len = len,
			      .type = VSOCK_TYPE_STREAM,
			      .op = op,
			      .buf_alloc = VSOCK_BUF_ALLOC};
	uint16_t head = r->tx_head % QS;
	uint64_t at = TXBUF + 0x1000 * (head / 2);

	memcpy(r->m.ram + at, &h, sizeof(h));
	if (len)
		memcpy(r->m.ram + at + 64, pay, len);
	tq_set_desc(&r->m, 1, head, at, sizeof(h), len ? VIRTQ_DESC_F_NEXT : 0, head + 1);
	if (len)
		tq_set_desc(&r->m, 1, head + 1, at + 64, len, 0, 0);
	r->tx_head += 2;
	tq_avail_add(&r->m, 1, QS, head);
}

/* Device status 0 through the PCI_CFG window: config space only, as a vCPU does it. */
static void reset_through_pcicfg(struct race *r)
{
	cfg_wr(&r->m, r->drv.slot, r->pcicfg + 4, 1, 0); /* BAR 0 */
	cfg_wr(&r->m, r->drv.slot, r->pcicfg + 8, 4,
	       VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_STATUS);
	cfg_wr(&r->m, r->drv.slot, r->pcicfg + 12, 4, 1);
	cfg_wr(&r->m, r->drv.slot, r->pcicfg + 16, 1, 0);
}

static void *vcpu_thread(void *opaque)
{
	struct race *r = opaque;
	static const char msg[] = "0123456789abcdef";

	for (int round = 0; round < ROUNDS; round++) {
		/* After the reset the device touches no ring: the driver starts them over. */
		memset(r->m.ram + tq_desc(0), 0, 0x8000);
		r->tx_head = 0;
		if (tdrv_probe(&r->drv, F_V1, 3, QS))
			return (void *)1;
		for (int i = 0; i < 8; i++) {
			tq_set_desc(&r->m, 0, i, RXBUF + 0x2000 * i, GUESTBUF, VIRTQ_DESC_F_WRITE,
				    0);
			tq_avail_add(&r->m, 0, QS, i);
		}
		tdrv_kick(&r->drv, 0);
		/* A connection and a burst: seven packets, fourteen descriptors of sixteen. */
		post_tx(r, VSOCK_OP_REQUEST, GPORT + round, NULL, 0);
		tdrv_kick(&r->drv, 1);
		for (int i = 0; i < 6; i++) {
			post_tx(r, VSOCK_OP_RW, GPORT + round, msg, sizeof(msg) - 1);
			if (i % 2)
				tdrv_kick(&r->drv, 1);
		}
		/* Every other round the loop gets a head start; otherwise the reset races it. */
		if (round % 2)
			usleep(200);
		reset_through_pcicfg(r);
		if (tdrv_status(&r->drv) != 0)
			return (void *)2;
	}
	return NULL;
}

static void *loop_thread(void *opaque)
{
	return (void *)(intptr_t)loop_run(opaque);
}

/* The PCI_CFG capability (vendor-specific, cfg_type 5) in the function's list. */
static uint32_t find_pcicfg(struct tmach *m, int slot)
{
	uint32_t p = cfg_rd(m, slot, PCI_CAP_PTR, 1);

	for (int hops = 0; p && hops < 48; hops++) {
		if (cfg_rd(m, slot, p, 1) == PCI_CAP_ID_VNDR && cfg_rd(m, slot, p + 3, 1) == 5)
			return p;
		p = cfg_rd(m, slot, p + 1, 1);
	}
	return 0;
}

static void test_reset_races_drain_and_callbacks(void **state)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t lt, vt;
	void *vres, *lres;

	assert_non_null(r);
	assert_int_equal(tm_init(&r->m, 1 << 20), 0);
	assert_int_equal(loop_create(&r->loop), 0);
	r->reaper.loop = r->loop;
	assert_int_equal(vsock_engine_create(&r->vs, CID), 0);
	assert_int_equal(vsock_listen(r->vs, HPORT, ep_accept, r), 0);
	assert_int_equal(virtio_vsock_create(r->m.pbus, r->m.mem, r->loop, r->vs, &r->dev), 0);
	for (int i = 0; i < NR_RNG; i++)
		assert_int_equal(virtio_rng_create(r->m.pbus, r->m.mem, r->loop, &r->rng[i]), 0);
	tdrv_attach(&r->drv, &r->m, r->dev->pci.slot);
	r->pcicfg = find_pcicfg(&r->m, r->drv.slot);
	assert_true(r->pcicfg != 0);

	assert_int_equal(pthread_create(&lt, NULL, loop_thread, r->loop), 0);
	assert_int_equal(pthread_create(&vt, NULL, vcpu_thread, r), 0);
	assert_int_equal(pthread_join(vt, &vres), 0);
	/* Whatever was retired is reaped by the loop before it stops. */
	for (int i = 0; i < 500 && __atomic_load_n(&r->reaper.queued, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	loop_stop(r->loop);
	assert_int_equal(pthread_join(lt, &lres), 0);
	assert_null(vres);
	assert_null(lres);

	/* Connections came and went; functions were retired and are gone from the bus. */
	assert_true(r->accepted > 0);
	assert_int_equal(r->live, 0);
	assert_true(r->retired > 0);
	assert_null(r->reaper.list);
	{
		int present = 0;

		for (int i = 0; i < 32; i++)
			present += cfg_rd(&r->m, i, 0, 2) != 0xffff;
		/* The host bridge, the vsock function and the rng functions not retired. */
		assert_int_equal(present, 2 + NR_RNG - r->retired);
	}
	printf("%d rounds: %d connections, %d reads, %d closed by resets, %d functions retired\n",
	       ROUNDS, r->accepted, r->reads, r->closed, r->retired);

	for (int i = 0; i < NR_RNG; i++)
		virtio_dev_destroy(r->rng[i]);
	virtio_dev_destroy(r->dev);
	vsock_engine_destroy(r->vs);
	loop_destroy(r->loop);
	tm_fini(&r->m);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reset_races_drain_and_callbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
