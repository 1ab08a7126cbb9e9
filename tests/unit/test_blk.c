/* virtio/blk: request parsing and execution against a real file, driven through the transport. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "virtio/blk_backend.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"
#include "vmm/loop.h"

#define DISK_BYTES (1 << 20)
#define SECTORS	   (DISK_BYTES / 512)
#define QS	   16
#define HDR	   0x40000
#define DATA	   0x50000
#define STATUS	   0x70000

#define T_IN	       0
#define T_OUT	       1
#define T_FLUSH	       4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13
#define S_OK	       0
#define S_IOERR	       1
#define S_UNSUPP       2

#define F_RO	       (1ULL << 5)
#define F_FLUSH	       (1ULL << 9)
#define F_MQ	       (1ULL << 12)
#define F_DISCARD      (1ULL << 13)
#define F_WRITE_ZEROES (1ULL << 14)
#define F_V1	       (1ULL << VIRTIO_F_VERSION_1)

struct fx {
	struct tmach m;
	char path[64];
	int fd; /* test's own handle on the disk file */
	struct virtio_dev *dev;
	struct tdrv drv;
	uint16_t next_head;
	int nq;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 ^ (i >> 9));
}

static void fx_open(struct fx *f, bool ro, int nq, uint64_t features)
{
	struct blk_config cfg = {
	    .path = f->path, .read_only = ro, .serial = "disk-serial-1234", .num_queues = nq};

	assert_int_equal(virtio_blk_create(f->m.pbus, f->m.mem, NULL, &cfg, &f->dev), 0);
	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	f->nq = nq;
	assert_int_equal(tdrv_probe(&f->drv, features, nq, QS), 0);
}

static int setup_common(void **state, bool ro)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t *buf = malloc(DISK_BYTES);

	assert_int_equal(tm_init(&f->m, 1 << 20), 0);
	strcpy(f->path, "/tmp/uvm-test-blk-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	for (size_t i = 0; i < DISK_BYTES; i++)
		buf[i] = pattern(i);
	assert_int_equal(pwrite(f->fd, buf, DISK_BYTES, 0), DISK_BYTES);
	free(buf);
	fx_open(f, ro, 1, F_V1 | F_FLUSH | (ro ? F_RO : F_DISCARD | F_WRITE_ZEROES));
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_ro(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	virtio_dev_destroy(f->dev);
	close(f->fd);
	unlink(f->path);
	tm_fini(&f->m);
	free(f);
	return 0;
}

/*
 * One request on queue q: header (hdr_len bytes of it), optional data buffer
 * (device-writable for reads), optional status byte. Returns the status byte
 * (or -1 when none) and the used length.
 */
static int req_ex(struct fx *f, int q, uint32_t type, uint64_t sector, uint32_t hdr_len,
		  uint32_t data_len, bool data_writable, bool with_status, uint32_t *used_len)
{
	struct tmach *m = &f->m;
	uint16_t h = f->next_head;
	uint16_t before = tq_used_idx(m, q);
	uint32_t id, len;
	int n = 0;

	f->next_head = (h + 3) % QS;
	memcpy(m->ram + HDR, &type, 4);
	memset(m->ram + HDR + 4, 0, 4);
	memcpy(m->ram + HDR + 8, &sector, 8);
	m->ram[STATUS] = 0xee;
	tq_set_desc(m, q, h, HDR, hdr_len, VIRTQ_DESC_F_NEXT, (h + 1) % QS);
	n++;
	if (data_len) {
		tq_set_desc(m, q, (h + 1) % QS, DATA, data_len,
			    (data_writable ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT,
			    (h + 2) % QS);
		n++;
	}
	if (with_status) {
		tq_set_desc(m, q, (h + n) % QS, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	} else {
		/* Clear NEXT on the last descriptor. */
		struct virtq_desc d;

		memcpy(&d, m->ram + tq_desc(q) + 16 * ((h + n - 1) % QS), 16);
		d.flags &= ~VIRTQ_DESC_F_NEXT;
		memcpy(m->ram + tq_desc(q) + 16 * ((h + n - 1) % QS), &d, 16);
	}
	tq_avail_add(m, q, QS, h);
	tdrv_kick(&f->drv, q);
	assert_int_equal(tq_used_idx(m, q), (uint16_t)(before + 1));
	tq_used_elem(m, q, QS, before, &id, &len);
	assert_int_equal(id, h);
	if (used_len)
		*used_len = len;
	return with_status ? m->ram[STATUS] : -1;
}

static int req(struct fx *f, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable,
	       uint32_t *used_len)
{
	return req_ex(f, 0, type, sector, 16, data_len, data_writable, true, used_len);
}

static void test_config(void **state)
{
	struct fx *f = *state;
	uint64_t base = f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF;
	uint64_t df = tdrv_device_features(&f->drv);

	assert_int_equal(mmio_rd(&f->m, base + 0, 8), SECTORS);
	assert_int_equal(mmio_rd(&f->m, base + 0, 4), SECTORS); /* low half alone */
	assert_int_equal(mmio_rd(&f->m, base + 12, 4), 254);	/* seg_max */
	assert_int_equal(mmio_rd(&f->m, base + 20, 4), 512);	/* blk_size */
	assert_int_equal(mmio_rd(&f->m, base + 34, 2), 1);	/* num_queues */
	assert_int_equal(mmio_rd(&f->m, base + 40, 4), 1);	/* max_discard_seg */
	assert_false(df & F_RO);
	assert_true(df & F_DISCARD);
	assert_true(df & F_WRITE_ZEROES);
	assert_true(df & F_FLUSH);
	assert_true(df & F_MQ);
	assert_int_equal(cfg_rd(&f->m, f->dev->pci.slot, PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(cfg_rd(&f->m, f->dev->pci.slot, PCI_CLASS_DEVICE, 2), 0x0180);
}

static void test_read(void **state)
{
	struct fx *f = *state;
	uint32_t used;

	assert_int_equal(req(f, T_IN, 3, 1024, true, &used), S_OK);
	assert_int_equal(used, 1025);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(f->m.ram[DATA + i], pattern(3 * 512 + i));
	/* The last sector is readable. */
	assert_int_equal(req(f, T_IN, SECTORS - 1, 512, true, &used), S_OK);
	assert_int_equal(f->m.ram[DATA + 511], pattern(DISK_BYTES - 1));
}

static void test_write(void **state)
{
	struct fx *f = *state;
	uint8_t back[2048];

	for (int i = 0; i < 2048; i++)
		f->m.ram[DATA + i] = 0xa0 ^ i;
	assert_int_equal(req(f, T_OUT, 10, 2048, false, NULL), S_OK);
	assert_int_equal(pread(f->fd, back, sizeof(back), 10 * 512), sizeof(back));
	assert_memory_equal(back, f->m.ram + DATA, 2048);
	/* Neighbours untouched. */
	assert_int_equal(pread(f->fd, back, 1, 10 * 512 - 1), 1);
	assert_int_equal(back[0], pattern(10 * 512 - 1));
	assert_int_equal(req(f, T_FLUSH, 0, 0, false, NULL), S_OK);
}

static void test_get_id(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	char want[20] = "disk-serial-1234";

	memset(f->m.ram + DATA, 0xff, 32);
	assert_int_equal(req(f, T_GET_ID, 0, 20, true, &used), S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(f->m.ram + DATA, want, 20);
	/* A smaller buffer gets a prefix. */
	memset(f->m.ram + DATA, 0xff, 32);
	assert_int_equal(req(f, T_GET_ID, 0, 8, true, &used), S_OK);
	assert_int_equal(used, 9);
	assert_memory_equal(f->m.ram + DATA, want, 8);
	assert_int_equal(f->m.ram[DATA + 8], 0xff);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	uint32_t used;

	/* Unknown type. */
	assert_int_equal(req(f, 99, 0, 512, true, NULL), S_UNSUPP);
	/* Header too short (8 of 16 bytes). */
	assert_int_equal(req_ex(f, 0, T_IN, 0, 8, 512, true, true, NULL), S_IOERR);
	/* Sector past the end, straddling the end, and wrapping. */
	assert_int_equal(req(f, T_IN, SECTORS, 512, true, NULL), S_IOERR);
	assert_int_equal(req(f, T_IN, SECTORS - 1, 1024, true, NULL), S_IOERR);
	assert_int_equal(req(f, T_OUT, UINT64_MAX, 512, false, NULL), S_IOERR);
	assert_int_equal(req(f, T_IN, UINT64_MAX / 512 + 1, 512, true, NULL), S_IOERR);
	/* Length not a multiple of the sector size. */
	assert_int_equal(req(f, T_IN, 0, 100, true, NULL), S_IOERR);
	/* Status byte missing: buffers come back with nothing written, device keeps going. */
	req_ex(f, 0, T_IN, 0, 16, 512, false, false, &used);
	assert_int_equal(used, 0);
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(req(f, T_IN, 0, 512, true, NULL), S_OK);
	/* A read whose data buffer is device-readable has no room for data. */
	assert_int_equal(req(f, T_IN, 0, 512, false, &used), S_OK);
	assert_int_equal(used, 1);
	/* Discard with flags it must not have. */
	{
		uint8_t seg[16] = {0};

		seg[8] = 1;  /* num_sectors = 1 */
		seg[12] = 1; /* unmap flag: not valid for discard */
		memcpy(f->m.ram + DATA, seg, 16);
		assert_int_equal(req(f, T_DISCARD, 0, 16, false, NULL), S_UNSUPP);
		/* Two segments: we advertise one. */
		memcpy(f->m.ram + DATA + 16, seg, 16);
		assert_int_equal(req(f, T_WRITE_ZEROES, 0, 32, false, NULL), S_UNSUPP);
	}
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
}

static void put_seg(struct fx *f, uint64_t sector, uint32_t n, uint32_t flags)
{
	memcpy(f->m.ram + DATA, &sector, 8);
	memcpy(f->m.ram + DATA + 8, &n, 4);
	memcpy(f->m.ram + DATA + 12, &flags, 4);
}

static void test_discard_write_zeroes(void **state)
{
	struct fx *f = *state;
	uint8_t back[8192], zero[8192] = {0};

	put_seg(f, 16, 16, 0);
	assert_int_equal(req(f, T_DISCARD, 0, 16, false, NULL), S_OK);
	assert_int_equal(pread(f->fd, back, 8192, 16 * 512), 8192);
	/* tmpfs and ext4 both punch holes; either way discarded data may read as zeroes. */
	assert_memory_equal(back, zero, 8192);
	put_seg(f, 64, 16, 0);
	assert_int_equal(req(f, T_WRITE_ZEROES, 0, 16, false, NULL), S_OK);
	assert_int_equal(pread(f->fd, back, 8192, 64 * 512), 8192);
	assert_memory_equal(back, zero, 8192);
	put_seg(f, 128, 16, 1); /* with unmap */
	assert_int_equal(req(f, T_WRITE_ZEROES, 0, 16, false, NULL), S_OK);
	assert_int_equal(pread(f->fd, back, 8192, 128 * 512), 8192);
	assert_memory_equal(back, zero, 8192);
	/* Around the zeroed range, the data is intact. */
	assert_int_equal(pread(f->fd, back, 1, 144 * 512), 1);
	assert_int_equal(back[0], pattern(144 * 512));
	/* The file keeps its size. */
	assert_int_equal(lseek(f->fd, 0, SEEK_END), DISK_BYTES);
	/* Out of range. */
	put_seg(f, SECTORS - 1, 2, 0);
	assert_int_equal(req(f, T_DISCARD, 0, 16, false, NULL), S_IOERR);
}

static void test_host_error(void **state)
{
	struct fx *f = *state;

	/* The file shrinks under the device: reads past the new end fail, others still work. */
	assert_int_equal(ftruncate(f->fd, DISK_BYTES / 2), 0);
	assert_int_equal(req(f, T_IN, SECTORS - 8, 4096, true, NULL), S_IOERR);
	assert_int_equal(req(f, T_IN, 0, 4096, true, NULL), S_OK);
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_read_only(void **state)
{
	struct fx *f = *state;
	uint64_t df = tdrv_device_features(&f->drv);
	uint8_t back[512];

	assert_true(df & F_RO);
	assert_false(df & F_DISCARD);
	memset(f->m.ram + DATA, 0x11, 512);
	assert_int_equal(req(f, T_OUT, 0, 512, false, NULL), S_IOERR);
	assert_int_equal(pread(f->fd, back, 512, 0), 512);
	assert_int_equal(back[1], pattern(1));
	put_seg(f, 0, 1, 0);
	assert_int_equal(req(f, T_DISCARD, 0, 16, false, NULL), S_UNSUPP);
	assert_int_equal(req(f, T_WRITE_ZEROES, 0, 16, false, NULL), S_UNSUPP);
	/* Reads, flush and get-id still work. */
	assert_int_equal(req(f, T_IN, 0, 512, true, NULL), S_OK);
	assert_int_equal(req(f, T_FLUSH, 0, 0, false, NULL), S_OK);
	assert_int_equal(req(f, T_GET_ID, 0, 20, true, NULL), S_OK);
}

static void test_multiqueue_and_reset(void **state)
{
	struct fx *f = *state;
	uint64_t base;

	virtio_dev_destroy(f->dev);
	fx_open(f, false, 3, F_V1 | F_MQ);
	base = f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF;
	assert_int_equal(mmio_rd(&f->m, base + 34, 2), 3);
	assert_int_equal(cc_rd(&f->drv, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	f->next_head = 0;
	assert_int_equal(req_ex(f, 2, T_IN, 5, 16, 512, true, true, NULL), S_OK);
	assert_int_equal(f->m.ram[DATA + 7], pattern(5 * 512 + 7));
	assert_int_equal(req_ex(f, 1, T_IN, 6, 16, 512, true, true, NULL), S_OK);
	/* Flush was not negotiated but is harmless; discard was not negotiated: UNSUPP. */
	put_seg(f, 0, 1, 0);
	assert_int_equal(req_ex(f, 0, T_DISCARD, 0, 16, 16, false, true, NULL), S_UNSUPP);
	/* Reset and probe again: rings start from zero. */
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	memset(f->m.ram + 0x10000, 0, 0x4000 * 3);
	assert_int_equal(tdrv_probe(&f->drv, F_V1, 3, QS), 0);
	f->next_head = 0;
	assert_int_equal(req_ex(f, 2, T_IN, 5, 16, 512, true, true, NULL), S_OK);
	assert_int_equal(tq_used_idx(&f->m, 2), 1);
}

static void test_loop_needs_reset(void **state)
{
	struct fx *f = *state;

	f->next_head = 0;
	assert_int_equal(req(f, T_IN, 0, 512, true, NULL), S_OK);
	/* A loop in the chain: NEEDS_RESET, no crash, nothing used. */
	tq_set_desc(&f->m, 0, 5, HDR, 16, VIRTQ_DESC_F_NEXT, 6);
	tq_set_desc(&f->m, 0, 6, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	tq_avail_add(&f->m, 0, QS, 5);
	tdrv_kick(&f->drv, 0);
	assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(tq_used_idx(&f->m, 0), 1);
}

static void test_queue_count_capped(void **state)
{
	struct fx *f = *state;
	struct blk_config cfg = {.path = f->path, .num_queues = 64};
	struct virtio_dev *dev;
	struct tdrv d;

	/* 64 vCPUs still get a disk, with the queue count capped. */
	assert_int_equal(virtio_blk_create(f->m.pbus, f->m.mem, NULL, &cfg, &dev), 0);
	tdrv_attach(&d, &f->m, dev->pci.slot);
	assert_int_equal(mmio_rd(&f->m, d.bar0 + VIRTIO_PCI_DEVCFG_OFF + 34, 2), 16);
	assert_int_equal(cc_rd(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 16);
	virtio_dev_destroy(dev);
}

/* ---- With an event loop: kicks through eventfds, completions from io_uring ------------- */

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

/* A 3-descriptor read of one sector on queue q at heads 3i..3i+2, data and status per i. */
static void post_read_q(struct fx *f, int q, int i, uint64_t sector)
{
	struct tmach *m = &f->m;
	uint16_t h = 3 * i;
	uint32_t type = T_IN;

	memset(m->ram + HDR + 16 * i, 0, 16);
	memcpy(m->ram + HDR + 16 * i, &type, 4);
	memcpy(m->ram + HDR + 16 * i + 8, &sector, 8);
	m->ram[STATUS + i] = 0xee;
	tq_set_desc(m, q, h, HDR + 16 * i, 16, VIRTQ_DESC_F_NEXT, h + 1);
	tq_set_desc(m, q, h + 1, DATA + 512 * i, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
		    h + 2);
	tq_set_desc(m, q, h + 2, STATUS + i, 1, VIRTQ_DESC_F_WRITE, 0);
	tq_avail_add(m, q, QS, h);
}

static void post_read(struct fx *f, int i, uint64_t sector)
{
	post_read_q(f, 0, i, sector);
}

static bool wait_used(struct fx *f, uint16_t n)
{
	for (int i = 0; i < 5000; i++) {
		if (__atomic_load_n((uint16_t *)(f->m.ram + tq_used(0) + 2), __ATOMIC_ACQUIRE) == n)
			return true;
		usleep(1000);
	}
	return false;
}

/*
 * Replaces the fixture's device by one served from an event loop thread, EVENT_IDX on;
 * threaded: a loop like an I/O thread's (vmm/io_thread.c), where resets run too.
 */
static void loop_fx_start(struct fx *f, struct loop **loop, pthread_t *th, int nq, bool threaded)
{
	struct blk_config cfg = {.path = f->path, .serial = "x", .num_queues = nq};

	virtio_dev_destroy(f->dev);
	assert_int_equal(loop_create(loop), 0);
	if (threaded)
		loop_set_threaded(*loop);
	assert_int_equal(virtio_blk_create(f->m.pbus, f->m.mem, *loop, &cfg, &f->dev), 0);
	assert_int_equal(pthread_create(th, NULL, loop_thread, *loop), 0);
	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	assert_int_equal(tdrv_probe(&f->drv, F_V1 | (1ULL << VIRTIO_F_EVENT_IDX), nq, QS), 0);
}

static void loop_fx_stop(struct fx *f, struct loop *loop, pthread_t th)
{
	loop_stop(loop);
	pthread_join(th, NULL);
	virtio_dev_destroy(f->dev);
	assert_int_equal(f->m.host.ioeventfds, 0);
	f->dev = NULL;
	loop_destroy(loop);
}

static void test_event_loop_path(void **state)
{
	struct fx *f = *state;
	struct loop *loop;
	pthread_t th;
	uint64_t n = 0;
	int cap = 0;

	loop_fx_start(f, &loop, &th, 1, false);
	/* The queue's notify address was handed to the (fake) hypervisor as an ioeventfd. */
	assert_int_equal(f->m.host.ioeventfds, 1);
	assert_int_equal(f->m.host.ioevt_addr[0], f->drv.bar0 + VIRTIO_PCI_NOTIFY_OFF);
	/* MSI-X on, queue 0's vector (1) unmasked. */
	for (int off = cfg_rd(&f->m, f->dev->pci.slot, PCI_CAP_PTR, 1); off;
	     off = cfg_rd(&f->m, f->dev->pci.slot, off + 1, 1))
		if (cfg_rd(&f->m, f->dev->pci.slot, off, 1) == PCI_CAP_ID_MSIX)
			cap = off;
	cfg_wr(&f->m, f->dev->pci.slot, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	mmio_wr(&f->m, f->drv.msix + 16, 4, 0xfee00000);
	mmio_wr(&f->m, f->drv.msix + 16 + 8, 4, 0x41);
	mmio_wr(&f->m, f->drv.msix + 16 + 12, 4, 0);

	/* Five reads, one kick (the MMIO fallback path: KVM is not here to catch it). */
	for (int i = 0; i < 5; i++)
		post_read(f, i, 100 + i);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 5));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(f->m.ram[STATUS + i], S_OK);
		assert_int_equal(f->m.ram[DATA + 512 * i + 9], pattern((100 + i) * 512 + 9));
	}
	assert_int_equal(read(f->dev->pci.msix->vec[1].efd, &n, 8), 8);
	assert_true(n >= 1);

	/* The same head offered twice while the first is still in flight: NEEDS_RESET. */
	post_read(f, 0, 1);
	tq_avail_add(&f->m, 0, QS, 0);
	tdrv_kick(&f->drv, 0);
	for (int i = 0; i < 5000 && !(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);

	/* Reset drains what is in flight; a fresh probe works again. */
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(&f->drv), 0);
	memset(f->m.ram + tq_desc(0), 0, 0x4000);
	assert_int_equal(tdrv_probe(&f->drv, F_V1, 1, QS), 0);
	post_read(f, 2, 7);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 1));
	assert_int_equal(f->m.ram[STATUS + 2], S_OK);
	assert_int_equal(f->m.ram[DATA + 1024 + 3], pattern(7 * 512 + 3));

	loop_fx_stop(f, loop, th);
}

static sem_t gate_in, gate_go;

/* Holds the disk's thread, as a slow drain of its I/O would. */
static void gate(void *opaque, uint32_t events)
{
	sem_post(&gate_in);
	while (sem_wait(&gate_go))
		;
}

/*
 * On an I/O thread the disk's reset runs there: the vCPU's write of 0 returns
 * while that thread is busy, the status reads non-zero until the reset is
 * done (the driver polls it), then 0, and the disk serves a fresh probe.
 */
static void test_reset_off_the_vcpu(void **state)
{
	struct fx *f = *state;
	struct loop *loop;
	pthread_t th;
	uint8_t st;

	loop_fx_start(f, &loop, &th, 1, true);
	post_read(f, 0, 3);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 1));
	sem_init(&gate_in, 0, 0);
	sem_init(&gate_go, 0, 0);
	assert_int_equal(loop_defer(loop, gate, NULL), 0);
	while (sem_wait(&gate_in))
		;
	st = tdrv_status(&f->drv);
	assert_true(st & VIRTIO_STATUS_DRIVER_OK);
	cc_wr(&f->drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(tdrv_status(&f->drv), st);
	sem_post(&gate_go);
	assert_int_equal(tdrv_reset(&f->drv), 0);
	memset(f->m.ram + tq_desc(0), 0, 0x4000);
	assert_int_equal(tdrv_probe(&f->drv, F_V1, 1, QS), 0);
	post_read(f, 1, 9);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 1));
	assert_int_equal(f->m.ram[STATUS + 1], S_OK);
	assert_int_equal(f->m.ram[DATA + 512 + 5], pattern(9 * 512 + 5));
	loop_fx_stop(f, loop, th);
	sem_destroy(&gate_in);
	sem_destroy(&gate_go);
}

/* Waits up to 5 s for *p == v. */
static bool wait_u16(const uint16_t *p, uint16_t v)
{
	for (int i = 0; i < 5000; i++) {
		if (__atomic_load_n(p, __ATOMIC_ACQUIRE) == v)
			return true;
		usleep(1000);
	}
	return false;
}

/*
 * UVM_BLK_POLL_US: after a kick the device keeps looking at the avail rings
 * of all its queues, so a request the driver did not kick for is served; when
 * the poll ends, every queue's avail_event is published so the next request
 * kicks again. Deterministic: queue 1's request is there before queue 0's kick.
 */
static void test_poll_serves_without_kick(void **state)
{
	struct fx *f = *state;
	uint16_t *used1 = (uint16_t *)(f->m.ram + tq_used(1) + 2);
	uint16_t *avail_event0 = (uint16_t *)(f->m.ram + tq_used(0) + 4 + 8 * QS);
	uint16_t *avail_event1 = (uint16_t *)(f->m.ram + tq_used(1) + 4 + 8 * QS);
	struct loop *loop;
	pthread_t th;

	setenv("UVM_BLK_POLL_US", "200", 1);
	loop_fx_start(f, &loop, &th, 2, false);
	unsetenv("UVM_BLK_POLL_US");
	*avail_event0 = *avail_event1 = 0xdead;
	post_read_q(f, 1, 2, 40); /* no kick for queue 1 */
	post_read_q(f, 0, 1, 20);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 1));
	assert_int_equal(f->m.ram[STATUS + 1], S_OK);
	assert_true(wait_u16(used1, 1));
	assert_int_equal(f->m.ram[STATUS + 2], S_OK);
	assert_int_equal(f->m.ram[DATA + 1024 + 5], pattern(40 * 512 + 5));
	/* The poll ended: both queues ask for a kick at their next request. */
	assert_true(wait_u16(avail_event0, 1));
	assert_true(wait_u16(avail_event1, 1));

	/* Without polling, queue 1 waits for its own kick. */
	loop_fx_stop(f, loop, th);
	setenv("UVM_BLK_POLL_US", "0", 1);
	memset(f->m.ram + tq_desc(0), 0, 0x8000);
	loop_fx_start(f, &loop, &th, 2, false);
	unsetenv("UVM_BLK_POLL_US");
	post_read_q(f, 1, 2, 41);
	post_read_q(f, 0, 1, 21);
	tdrv_kick(&f->drv, 0);
	assert_true(wait_used(f, 1));
	usleep(20000);
	assert_int_equal(__atomic_load_n(used1, __ATOMIC_ACQUIRE), 0);
	tdrv_kick(&f->drv, 1);
	assert_true(wait_u16(used1, 1));
	loop_fx_stop(f, loop, th);
}

static void test_create_errors(void **state)
{
	struct tmach m;
	struct virtio_dev *dev;
	struct blk_config cfg = {.path = "/nonexistent/disk.img"};

	assert_int_equal(tm_init(&m, 1 << 20), 0);
	assert_int_equal(virtio_blk_create(m.pbus, m.mem, NULL, &cfg, &dev), -ENOENT);
	cfg.path = "/tmp";
	cfg.read_only = true;
	assert_int_equal(virtio_blk_create(m.pbus, m.mem, NULL, &cfg, &dev), -EINVAL);
	cfg.path = NULL;
	assert_int_equal(virtio_blk_create(m.pbus, m.mem, NULL, &cfg, &dev), -EINVAL);
	/* Nothing was left on the bus. */
	assert_int_equal(cfg_rd(&m, 1, 0, 4), 0xffffffff);
	tm_fini(&m);
}

/*
 * Issue 9, defect 3: bad requests finish at once and free their slot, so a
 * driver refilling the ring as fast as the device empties it could hold one
 * kick for ever. The handler stops after its budget and re-kicks itself.
 */
static void test_kick_budget(void **state)
{
	struct fx *f = *state;
	struct tq_refiller r = {.m = &f->m, .q = 0, .qsize = QS, .max = 1000000};
	uint16_t before = tq_used_idx(&f->m, 0), used;
	pthread_t th;

	/* Header only, no status byte: returned with nothing written. */
	for (int i = 0; i < QS; i++)
		tq_set_desc(&f->m, 0, i, HDR, 16, 0, 0);
	assert_int_equal(pthread_create(&th, NULL, tq_refill_thread, &r), 0);
	while (__atomic_load_n(&r.added, __ATOMIC_ACQUIRE) < QS)
		;
	tdrv_kick(&f->drv, 0);
	used = tq_used_idx(&f->m, 0) - before;
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	if (used > 256)
		fail_msg("one kick served %u requests", used);
	if (used == 256)
		assert_int_equal(f->dev->rekicks, 1);
	assert_false(tdrv_status(&f->drv) & VIRTIO_STATUS_NEEDS_RESET);
}

/*
 * Issue 9: seccomp cannot see inside a ring, so the ring itself is restricted:
 * after setup no registration is allowed (a personality, files, buffers...).
 */
static void test_ring_is_restricted(void **state)
{
	struct blk_backend *b;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	long r;

	assert_int_equal(blk_uring_create(&b, fd, 8), 0);
	r = syscall(__NR_io_uring_register, blk_backend_ring_fd(b), IORING_REGISTER_PERSONALITY,
		    NULL, 0);
	assert_int_equal(r, -1);
	assert_int_equal(errno, EACCES);
	blk_backend_destroy(b);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kick_budget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_multiqueue_and_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_count_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_loop_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_off_the_vcpu, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_poll_serves_without_kick, setup, teardown),
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_ring_is_restricted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
