/*
 * virtio-9p device: config space (mount tag), requests through the ring
 * served by the workers, a Tflush cancelling a waiting request, hostile
 * chains, reset with requests in flight.
 */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/p9_test_util.h"
#include "tests/unit/virtio_test_util.h"
#include "vmm/io_thread.h"
#include "vmm/loop.h"

#define RAM  (1 << 20)
#define QS   16
#define REQS 0x40000 /* request i at REQS + i * 0x4000: 8 KiB out, 8 KiB in */

struct fx {
	char dir[64], share[96];
	struct tmach m;
	struct tdrv d;
	struct virtio_dev *dev;
	struct p9_pool *pool;
	struct io_threads *io; /* NULL: kicks inline on the test's thread */
	uint16_t used_seen;
	uint16_t tag;
};

static int setup_on(void **state, bool io)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct p9_share_config share = {0};
	struct loop *loop = NULL;

	assert_non_null(fx);
	if (io) {
		/* As the shim runs it: kicks through the kick eventfd on an I/O thread. */
		assert_int_equal(io_threads_create(1, &fx->io), 0);
		assert_int_equal(io_threads_start(fx->io, NULL, NULL), 0);
		loop = io_threads_pick(fx->io);
	}
	assert_int_equal(p9t_tree(fx->dir, fx->share), 0);
	share.path = fx->share;
	assert_int_equal(tm_init(&fx->m, RAM), 0);
	assert_int_equal(p9_pool_create(4, NULL, NULL, &fx->pool), 0);
	assert_int_equal(
	    virtio_9p_create(fx->m.pbus, fx->m.mem, loop, fx->pool, "share0", &share, &fx->dev), 0);
	tdrv_attach(&fx->d, &fx->m, fx->dev->pci.slot);
	assert_int_equal(tdrv_probe(&fx->d, (1ULL << VIRTIO_F_VERSION_1) | 1, 1, QS), 0);
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_on(state, false);
}

static int setup_io(void **state)
{
	return setup_on(state, true);
}

/* The stall report every 50 ms instead of 10 s. */
static int setup_watch(void **state)
{
	p9_watch_ms = 50;
	return setup_on(state, false);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	virtio_dev_destroy(fx->dev);
	p9_pool_destroy(fx->pool);
	p9_watch_ms = 10000;
	io_threads_destroy(fx->io);
	tm_fini(&fx->m);
	p9t_tree_remove(fx->dir);
	free(fx);
	return 0;
}

static uint64_t req_gpa(int i)
{
	return REQS + 0x4000ULL * i;
}

/* Writes a T-message (type, body) as request slot i and makes it available. */
static void post(struct fx *fx, int i, uint8_t type, const uint8_t *body, size_t blen, uint16_t tag,
		 uint32_t in_cap)
{
	uint8_t *p = fx->m.ram + req_gpa(i);
	struct p9_wr w = {.p = p, .cap = 0x2000};

	p9_put_u32(&w, P9_HDR_SIZE + blen);
	p9_put_u8(&w, type);
	p9_put_u16(&w, tag);
	memcpy(p9_put_space(&w, blen), body, blen);
	tq_set_desc(&fx->m, 0, 2 * i, req_gpa(i), w.off, VIRTQ_DESC_F_NEXT, 2 * i + 1);
	tq_set_desc(&fx->m, 0, 2 * i + 1, req_gpa(i) + 0x2000, in_cap, VIRTQ_DESC_F_WRITE, 0);
	tq_avail_add(&fx->m, 0, QS, 2 * i);
}

/* Waits for the next used entry (5 s at most); returns its head and fills the answer. */
static int wait_used(struct fx *fx, uint32_t *len)
{
	uint32_t id = 0;

	for (int t = 0; t < 5000 && tq_used_idx(&fx->m, 0) == fx->used_seen; t++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_not_equal(tq_used_idx(&fx->m, 0), fx->used_seen);
	tq_used_elem(&fx->m, 0, QS, fx->used_seen++, &id, len);
	return id;
}

/* One request on slot 0, answered; returns the R type and leaves the answer at slot 0's in. */
static uint8_t call(struct fx *fx, uint8_t type, struct p9_wr *body, struct p9_rd *r)
{
	uint32_t len;

	post(fx, 0, type, body->p, body->off, ++fx->tag, 0x2000);
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 0);
	*r = (struct p9_rd){.p = fx->m.ram + req_gpa(0) + 0x2000, .len = len};
	assert_int_equal(p9_get_u32(r), len);
	type = p9_get_u8(r);
	assert_int_equal(p9_get_u16(r), fx->tag);
	return type;
}

static void test_config(void **state)
{
	struct fx *fx = *state;
	uint64_t cfg = fx->d.bar0 + VIRTIO_PCI_DEVCFG_OFF;
	char tag[7] = "";

	assert_int_equal(cfg_rd(&fx->m, fx->d.slot, 2, 2), 0x1040 + VIRTIO_ID_9P);
	assert_true(tdrv_device_features(&fx->d) & 1);
	assert_int_equal(mmio_rd(&fx->m, cfg, 2), 6);
	for (int i = 0; i < 6; i++)
		tag[i] = mmio_rd(&fx->m, cfg + 2 + i, 1);
	assert_string_equal(tag, "share0");
}

static void test_session(void **state)
{
	struct fx *fx = *state;
	uint8_t b[256];
	struct p9_wr w = {.p = b, .cap = sizeof(b)};
	struct p9_rd r;

	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	assert_int_equal(call(fx, P9_TVERSION, &w, &r), P9_TVERSION + 1);
	assert_int_equal(p9_get_u32(&r), 65536);
	w.off = 0;
	p9_put_u32(&w, 1);
	p9_put_u32(&w, P9_NOFID);
	p9_put_str(&w, "u", 1);
	p9_put_str(&w, "", 0);
	p9_put_u32(&w, 0);
	assert_int_equal(call(fx, P9_TATTACH, &w, &r), P9_TATTACH + 1);
	w.off = 0;
	p9_put_u32(&w, 1);
	p9_put_str(&w, "f", 1);
	p9_put_u32(&w, O_RDWR);
	p9_put_u32(&w, 0644);
	p9_put_u32(&w, 0);
	assert_int_equal(call(fx, P9_TLCREATE, &w, &r), P9_TLCREATE + 1);
	w.off = 0;
	p9_put_u32(&w, 1);
	p9_put_u64(&w, 0);
	p9_put_u32(&w, 5);
	memcpy(p9_put_space(&w, 5), "hello", 5);
	assert_int_equal(call(fx, P9_TWRITE, &w, &r), P9_TWRITE + 1);
	assert_int_equal(p9_get_u32(&r), 5);
	w.off = 0;
	p9_put_u32(&w, 1);
	p9_put_u64(&w, 0);
	p9_put_u32(&w, 100);
	assert_int_equal(call(fx, P9_TREAD, &w, &r), P9_TREAD + 1);
	assert_int_equal(p9_get_u32(&r), 5);
	assert_memory_equal(p9_get_bytes(&r, 5), "hello", 5);
	/* An unknown fid: Rlerror, and the device keeps serving. */
	w.off = 0;
	p9_put_u32(&w, 77);
	assert_int_equal(call(fx, P9_TCLUNK, &w, &r), P9_RLERROR);
	assert_int_equal(p9_get_u32(&r), EBADF);
	w.off = 0;
	p9_put_u32(&w, 1);
	assert_int_equal(call(fx, P9_TCLUNK, &w, &r), P9_TCLUNK + 1);
}

static void test_flush_cancels_waiting(void **state)
{
	struct fx *fx = *state;
	uint8_t ver[14], fl[2] = {5, 0};
	struct p9_wr w = {.p = ver, .cap = sizeof(ver)};
	uint32_t len, ids[2];
	struct p9_rd r;

	/* One kick brings both: the flush is seen before any worker takes tag 5. */
	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	post(fx, 0, P9_TVERSION, ver, w.off, 5, 0x2000);
	post(fx, 1, P9_TFLUSH, fl, 2, 6, 0x2000);
	tdrv_kick(&fx->d, 0);
	ids[0] = wait_used(fx, &len);
	assert_int_equal(ids[0], 0);
	r = (struct p9_rd){.p = fx->m.ram + req_gpa(0) + 0x2000, .len = len};
	p9_get_u32(&r);
	assert_int_equal(p9_get_u8(&r), P9_RLERROR);
	assert_int_equal(p9_get_u16(&r), 5);
	assert_int_equal(p9_get_u32(&r), EINTR);
	ids[1] = wait_used(fx, &len);
	assert_int_equal(ids[1], 2);
	assert_int_equal(len, 7);
	assert_int_equal(fx->m.ram[req_gpa(1) + 0x2000 + 4], P9_TFLUSH + 1);
	/* A flush of a tag nobody uses is answered at once. */
	fl[0] = 99;
	post(fx, 1, P9_TFLUSH, fl, 2, 7, 0x2000);
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 2);
}

static void test_hostile_chains(void **state)
{
	struct fx *fx = *state;
	uint32_t len;

	/* Shorter than a header. */
	tq_set_desc(&fx->m, 0, 0, req_gpa(0), 3, VIRTQ_DESC_F_NEXT, 1);
	tq_set_desc(&fx->m, 0, 1, req_gpa(0) + 0x2000, 64, VIRTQ_DESC_F_WRITE, 0);
	tq_avail_add(&fx->m, 0, QS, 0);
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 0);
	assert_int_equal(len, 11);
	assert_int_equal(fx->m.ram[req_gpa(0) + 0x2000 + 4], P9_RLERROR);
	/* No room for the answer: the chain comes back empty. */
	post(fx, 1, P9_TVERSION, (const uint8_t *)"\0\0\1\0\0\0", 6, 1, 0);
	tq_set_desc(&fx->m, 0, 2, req_gpa(1), 13, 0, 0);
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 2);
	assert_int_equal(len, 0);
	/* A size field larger than the chain: Rlerror EINVAL. */
	post(fx, 2, P9_TCLUNK, (const uint8_t *)"\1\0\0\0", 4, 3, 64);
	fx->m.ram[req_gpa(2)] = 200;
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 4);
	assert_int_equal(fx->m.ram[req_gpa(2) + 0x2000 + 4], P9_RLERROR);
	assert_false(tdrv_status(&fx->d) & VIRTIO_STATUS_NEEDS_RESET);
}

/*
 * Issue 9, defect 3, for 9p: a Tflush of a request taken in the same kick
 * answers both at once, so a driver refilling those heads as fast as they come
 * back could hold one kick for ever (and, before the budget, grow the kick's
 * batch past its end). One kick stops after its budget and re-kicks itself.
 */
static void test_kick_budget(void **state)
{
	struct fx *fx = *state;
	struct tq_refiller r = {.m = &fx->m, .q = 0, .qsize = QS, .max = 100000000};
	uint8_t ver[14], fl[2];
	struct p9_wr w = {.p = ver, .cap = sizeof(ver)};
	pthread_t th;

	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	/* Head 2k: Tversion with tag 2k; head 2k+1: a Tflush of tag 2k. No answer room. */
	for (int i = 0; i < QS; i += 2) {
		uint8_t *p = fx->m.ram + req_gpa(i);
		struct p9_wr m = {.p = p, .cap = 0x2000};

		p9_put_u32(&m, P9_HDR_SIZE + w.off);
		p9_put_u8(&m, P9_TVERSION);
		p9_put_u16(&m, i);
		memcpy(p9_put_space(&m, w.off), ver, w.off);
		tq_set_desc(&fx->m, 0, i, req_gpa(i), m.off, 0, 0);
		fl[0] = i;
		fl[1] = 0;
		m = (struct p9_wr){.p = p + 0x1000, .cap = 0x1000};
		p9_put_u32(&m, P9_HDR_SIZE + 2);
		p9_put_u8(&m, P9_TFLUSH);
		p9_put_u16(&m, i + 1);
		memcpy(p9_put_space(&m, 2), fl, 2);
		tq_set_desc(&fx->m, 0, i + 1, req_gpa(i) + 0x1000, m.off, 0, 0);
	}
	assert_int_equal(pthread_create(&th, NULL, tq_refill_thread, &r), 0);
	while (__atomic_load_n(&r.added, __ATOMIC_ACQUIRE) < QS)
		;
	/* Kick until one kick has run out of budget (the refiller kept up with it). */
	for (int k = 0; k < 200000 && !fx->dev->rekicks; k++) {
		unsigned before = __atomic_load_n(&r.added, __ATOMIC_ACQUIRE), during;

		if (!virtq_avail_pending(&fx->dev->vqs[0])) {
			nanosleep(&(struct timespec){0, 10000}, NULL);
			continue;
		}
		tdrv_kick(&fx->d, 0);
		/* That kick came back while the driver still had requests to give: a
		 * kick without a budget runs until the refiller stops (r.max). */
		during = __atomic_load_n(&r.added, __ATOMIC_ACQUIRE) - before;
		if (during >= 100000)
			fail_msg("one kick took %u requests the driver kept adding", during);
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_false(tdrv_status(&fx->d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Drain what is left (the caller re-kicks without a loop): every request answered. */
	for (int i = 0; i < 100000 && virtq_avail_pending(&fx->dev->vqs[0]); i++)
		tdrv_kick(&fx->d, 0);
	for (int t = 0; t < 5000 && tq_used_idx(&fx->m, 0) != (uint16_t)r.added; t++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_equal(tq_used_idx(&fx->m, 0), (uint16_t)r.added);
	assert_false(tdrv_status(&fx->d) & VIRTIO_STATUS_NEEDS_RESET);
	if (!fx->dev->rekicks) {
		printf("SKIP test_kick_budget: the refiller thread never kept up with a kick\n");
		skip();
	}
}

/*
 * A kick that takes exactly a full ring (P9_KICK_BUDGET chains) must still
 * leave the driver asked to kick again (EVENT_IDX: avail_event at the next
 * index). The old kick stopped on its budget, saw the ring empty and
 * returned without re-kicking or re-arming: avail_event stayed where the last
 * empty ring left it, so the driver's next request brought no kick and its
 * caller waited for ever (a hang seen in bench-9p).
 */
static void test_full_ring_kick_stays_armed(void **state)
{
	struct fx *fx = *state;
	enum { N = 128 }; /* the device's largest queue, its kick budget */
	uint64_t feat = (1ULL << VIRTIO_F_VERSION_1) | 1 | (1ULL << VIRTIO_F_EVENT_IDX);
	uint16_t *avail_event = (uint16_t *)(fx->m.ram + tq_used(0) + 4 + 8 * N);
	uint8_t ver[14];
	struct p9_wr w = {.p = ver, .cap = sizeof(ver)};
	unsigned kicks = 0, rekicks;
	uint16_t next;

	assert_int_equal(tdrv_probe(&fx->d, feat, 1, N), 0);
	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	/* N one-descriptor requests (no answer room), 64 bytes apart. */
	for (int i = 0; i < N; i++) {
		uint8_t *p = fx->m.ram + REQS + 64 * i;
		struct p9_wr m = {.p = p, .cap = 64};

		p9_put_u32(&m, P9_HDR_SIZE + w.off);
		p9_put_u8(&m, P9_TVERSION);
		p9_put_u16(&m, i);
		memcpy(p9_put_space(&m, w.off), ver, w.off);
		tq_set_desc(&fx->m, 0, i, REQS + 64 * i, m.off, 0, 0);
		tq_avail_add(&fx->m, 0, N, i);
	}
	/* Kick as the loop would: once, then again for every re-kick the device asked for. */
	do {
		rekicks = fx->dev->rekicks;
		tdrv_kick(&fx->d, 0);
		kicks++;
	} while (fx->dev->rekicks != rekicks && kicks < 10);
	for (int t = 0; t < 5000 && tq_used_idx(&fx->m, 0) != N; t++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_equal(tq_used_idx(&fx->m, 0), N);
	assert_false(tdrv_status(&fx->d) & VIRTIO_STATUS_NEEDS_RESET);
	/* The driver's next request (index N) is kicked iff avail_event is in [N, N+1). */
	next = N + 1;
	if ((uint16_t)(next - __atomic_load_n(avail_event, __ATOMIC_ACQUIRE) - 1) >=
	    (uint16_t)(next - N))
		fail_msg("after %u kick(s) avail_event is %u: the driver would not kick for "
			 "request %u",
			 kicks, *avail_event, N);
}

static void test_reset_in_flight(void **state)
{
	struct fx *fx = *state;
	uint8_t ver[14];
	struct p9_wr w = {.p = ver, .cap = sizeof(ver)};

	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	for (int i = 0; i < QS / 2; i++)
		post(fx, i, P9_TVERSION, ver, w.off, i, 0x2000);
	tdrv_kick(&fx->d, 0);
	/* Reset right away: it waits for running requests, drops the rest (on an I/O
	 * thread after the write returned: the status reads 0 once it is done). */
	assert_int_equal(tdrv_reset(&fx->d), 0);
	/* Fresh rings before the driver starts the device again. */
	memset(fx->m.ram + tq_avail(0), 0, 0x1000);
	memset(fx->m.ram + tq_used(0), 0, 0x1000);
	assert_int_equal(tdrv_probe(&fx->d, (1ULL << VIRTIO_F_VERSION_1) | 1, 1, QS), 0);
	fx->used_seen = 0;
	{
		struct p9_rd r;

		assert_int_equal(call(fx, P9_TVERSION, &w, &r), P9_TVERSION + 1);
	}
}

/*
 * On an I/O thread: requests kicked, then the device torn down at once while
 * io0 may still be taking them and the workers serving them (teardown).
 * Nothing of it runs after virtio_dev_destroy returns (ASan, TSan).
 */
static void test_io_destroy_in_flight(void **state)
{
	struct fx *fx = *state;
	uint8_t ver[14];
	struct p9_wr w = {.p = ver, .cap = sizeof(ver)};

	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	for (int i = 0; i < QS / 2; i++)
		post(fx, i, P9_TVERSION, ver, w.off, i, 0x2000);
	tdrv_kick(&fx->d, 0);
}

static sem_t gate_in, gate_go;

/* Holds io0 until the test lets it go: what a disk draining its I/O there looks like. */
static void gate(void *opaque, uint32_t events)
{
	(void)opaque;
	(void)events;
	sem_post(&gate_in);
	while (sem_wait(&gate_go))
		;
}

/*
 * A reset on an I/O thread's device runs there: the vCPU's status write
 * returns at once even while that thread is busy, the status reads non-zero
 * (and other writes are ignored) until the reset is done, then 0, and the
 * driver starts the device again.
 */
static void test_io_reset_async(void **state)
{
	struct fx *fx = *state;
	uint8_t b[64], st;
	struct p9_wr w = {.p = b, .cap = sizeof(b)};
	struct p9_rd r;

	sem_init(&gate_in, 0, 0);
	sem_init(&gate_go, 0, 0);
	assert_int_equal(loop_defer(fx->dev->loop, gate, NULL), 0);
	while (sem_wait(&gate_in))
		;
	st = tdrv_status(&fx->d);
	assert_true(st & VIRTIO_STATUS_DRIVER_OK);
	cc_wr(&fx->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(&fx->d), st);
	cc_wr(&fx->d, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	cc_wr(&fx->d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(&fx->d), st);
	sem_post(&gate_go);
	for (int t = 0; t < 5000 && tdrv_status(&fx->d) != 0; t++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_equal(tdrv_status(&fx->d), 0);
	assert_int_equal(tdrv_probe(&fx->d, (1ULL << VIRTIO_F_VERSION_1) | 1, 1, QS), 0);
	p9_put_u32(&w, 65536);
	p9_put_str(&w, "9P2000.L", 8);
	assert_int_equal(call(fx, P9_TVERSION, &w, &r), P9_TVERSION + 1);
	sem_destroy(&gate_in);
	sem_destroy(&gate_go);
}

static void test_create_errors(void **state)
{
	struct fx *fx = *state;
	struct p9_share_config share = {.path = "/nonexistent/p9"};
	struct virtio_dev *d = NULL;

	assert_int_equal(virtio_9p_create(fx->m.pbus, fx->m.mem, NULL, fx->pool, "t", &share, &d),
			 -ENOENT);
	share.path = "/etc/passwd";
	assert_int_equal(virtio_9p_create(fx->m.pbus, fx->m.mem, NULL, fx->pool, "t", &share, &d),
			 -ENOTDIR);
	share.path = fx->share;
	assert_int_equal(virtio_9p_create(fx->m.pbus, fx->m.mem, NULL, fx->pool, "", &share, &d),
			 -EINVAL);
	assert_null(d);
}

/* What stderr received within ms milliseconds (stderr goes to a pipe meanwhile). */
static void capture_stderr(int ms, char *buf, size_t cap)
{
	int fds[2], saved = dup(2);
	size_t got = 0;

	assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
	fflush(stderr);
	assert_int_equal(dup2(fds[1], 2), 2);
	for (int t = 0; t < ms / 10; t++) {
		ssize_t n = read(fds[0], buf + got, cap - 1 - got);

		if (n > 0)
			got += n;
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	}
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	for (ssize_t n; got < cap - 1 && (n = read(fds[0], buf + got, cap - 1 - got)) > 0;)
		got += n;
	buf[got] = 0;
	close(saved);
	close(fds[0]);
	close(fds[1]);
}

/*
 * The stall report (9p.c p9_watch): a chain the driver made available and the
 * device never took (a kick it did not see) is reported with the indices that
 * show it; once served, the next looks report nothing.
 */
static void test_stall_report(void **state)
{
	struct fx *fx = *state;
	uint8_t body[4] = {77, 0, 0, 0}; /* Tclunk of an unknown fid */
	char out[4096];
	uint32_t len;

	post(fx, 0, P9_TCLUNK, body, sizeof(body), 1, 0x2000);
	capture_stderr(300, out, sizeof(out));
	assert_non_null(strstr(out, "no progress for 50 ms, the guest waits: avail 1 taken 0"));
	assert_non_null(strstr(out, "in flight 0 (pool: 0 queued, 0 busy)"));
	/* Once per stall: the looks that follow stay quiet. */
	capture_stderr(200, out, sizeof(out));
	assert_null(strstr(out, "the guest waits"));
	tdrv_kick(&fx->d, 0);
	assert_int_equal(wait_used(fx, &len), 0);
	capture_stderr(300, out, sizeof(out));
	assert_null(strstr(out, "the guest waits"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_session, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_cancels_waiting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kick_budget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_ring_kick_stays_armed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stall_report, setup_watch, teardown),
	    /* The same device with its kicks on an I/O thread, as the shim runs it. */
	    cmocka_unit_test_setup_teardown(test_session, setup_io, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_cancels_waiting, setup_io, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_chains, setup_io, teardown),
	    cmocka_unit_test_setup_teardown(test_io_destroy_in_flight, setup_io, teardown),
	    cmocka_unit_test_setup_teardown(test_io_reset_async, setup_io, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_in_flight, setup_io, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
