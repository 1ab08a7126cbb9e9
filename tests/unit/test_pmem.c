/* virtio/pmem: config space, flushes (ok, read-only, failing backend), hostile chains, budget. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/virtio_test_util.h"
#include "virtio/pmem.h"
#include "vmm/mem_slots.h"

#define QS	16
#define REQ	0x40000 /* request buffers: 8 bytes apart */
#define RESP	0x60000
#define FILE_SZ (3 * 4096)
#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define BASE	(68ULL << 30)

struct fx {
	struct tmach m;
	struct mem_slots *slots;
	char path[64];
	int fd;
	struct virtio_dev *dev;
	struct tdrv drv;
	uint16_t next_head;
};

static int make_file(struct fx *f, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);

	strcpy(f->path, "/tmp/uvm-test-pmem-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 13);
	assert_int_equal(pwrite(f->fd, buf, size, 0), (ssize_t)size);
	free(buf);
	return 0;
}

static int create(struct fx *f, bool ro, uint64_t max, char *err)
{
	struct pmem_config cfg = {.path = f->path, .read_only = ro, .max_bytes = max};

	return virtio_pmem_create(f->m.pbus, f->m.mem, NULL, f->slots, &cfg, &f->dev, err, 256);
}

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(tm_init(&f->m, 1 << 20), 0);
	assert_int_equal(mem_slots_create(&f->slots, -1, BASE, BASE + (8ULL << 30), true), 0);
	f->fd = -1;
	return f;
}

static void fx_free(struct fx *f)
{
	virtio_dev_destroy(f->dev);
	assert_int_equal(mem_slots_count(f->slots), 0); /* the device gave its slot back */
	mem_slots_destroy(f->slots);
	if (f->fd >= 0)
		close(f->fd);
	if (f->path[0])
		unlink(f->path);
	tm_fini(&f->m);
	free(f);
}

static int setup_common(void **state, bool ro)
{
	struct fx *f = fx_new();
	char err[256];

	make_file(f, FILE_SZ);
	assert_int_equal(create(f, ro, 0, err), 0);
	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	assert_int_equal(tdrv_probe(&f->drv, F_V1, 1, QS), 0);
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
	fx_free(*state);
	return 0;
}

/* Builds one chain from (addr, len, writable) triples and makes it available. */
static uint16_t post(struct fx *f, int n, const uint64_t *addr, const uint32_t *len, const bool *wr)
{
	uint16_t h = f->next_head;

	for (int i = 0; i < n; i++)
		tq_set_desc(&f->m, 0, (h + i) % QS, addr[i], len[i],
			    (wr[i] ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
			    (h + i + 1) % QS);
	f->next_head = (h + n) % QS;
	tq_avail_add(&f->m, 0, QS, h);
	return h;
}

/* A flush of type `type`; returns the answer (or -1 when the used length is not 4). */
static int64_t flush(struct fx *f, uint32_t type)
{
	uint64_t a[2] = {REQ, RESP};
	uint32_t l[2] = {4, 4}, id, len;
	bool w[2] = {false, true};
	uint16_t before = tq_used_idx(&f->m, 0);
	uint32_t resp;

	memcpy(f->m.ram + REQ, &type, 4);
	memset(f->m.ram + RESP, 0xee, 4);
	post(f, 2, a, l, w);
	tdrv_kick(&f->drv, 0);
	assert_int_equal(tq_used_idx(&f->m, 0), (uint16_t)(before + 1));
	tq_used_elem(&f->m, 0, QS, before, &id, &len);
	if (len != 4)
		return -1;
	memcpy(&resp, f->m.ram + RESP, 4);
	return resp;
}

static void test_config_space(void **state)
{
	struct fx *f = *state;
	uint64_t start, size;

	assert_int_equal(cfg_rd(&f->m, f->drv.slot, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_PMEM);
	start = mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF, 8);
	size = mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 8, 8);
	assert_int_equal(start, BASE);
	assert_int_equal(start % MEM_SLOT_SECTION, 0);
	assert_int_equal(size, MEM_SLOT_SUBSECT); /* 12 KiB rounded up to 2 MiB */
	/* 4-byte halves read the same bytes. */
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 4, 4), start >> 32);
	/* Past the 16-byte config: nothing of ours leaks (reads as zero or all-ones). */
	uint64_t past = mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF + 16, 4);
	assert_true(past == 0 || past == 0xffffffffULL || past == ~0ULL);
	/* Writes to the config are ignored. */
	mmio_wr(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF, 8, 0x1234);
	assert_int_equal(mmio_rd(&f->m, f->drv.bar0 + VIRTIO_PCI_DEVCFG_OFF, 8), BASE);
	virtio_pmem_range(f->dev, &start, &size);
	assert_int_equal(start, BASE);
	/* No device feature bits (0-23) of its own: no SHMEM_REGION. */
	assert_int_equal(tdrv_device_features(&f->drv) & 0xffffffULL, 0);
}

static void test_flush_ok_reaches_file(void **state)
{
	struct fx *f = *state;
	struct mem_slot *s = f->slots->slots[0];
	struct pmem_stats st;
	uint8_t got = 0;

	assert_non_null(s);
	assert_false(s->read_only);
	/* The guest's view of the file is the mapping: a store there is in the file. */
	assert_int_equal(s->hva[100], (uint8_t)(100 * 13));
	s->hva[100] = 0x77;
	assert_int_equal(flush(f, PMEM_REQ_FLUSH), PMEM_RESP_OK);
	assert_int_equal(pread(f->fd, &got, 1, 100), 1);
	assert_int_equal(got, 0x77);
	virtio_pmem_stats(f->dev, &st);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(virtio_dev_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_flush_failing_backend(void **state)
{
	struct fx *f = *state;
	struct pmem_stats st;
	int p[2];

	/* fdatasync on a pipe fails (EINVAL): the guest gets an error answer, not a hang. */
	assert_int_equal(pipe(p), 0);
	assert_true(dup2(p[0], virtio_pmem_backend_fd(f->dev)) >= 0);
	assert_int_equal(flush(f, PMEM_REQ_FLUSH), PMEM_RESP_EIO);
	assert_int_equal(flush(f, PMEM_REQ_FLUSH), PMEM_RESP_EIO);
	virtio_pmem_stats(f->dev, &st);
	assert_int_equal(st.flushes, 2);
	assert_int_equal(st.errors, 2);
	assert_int_equal(virtio_dev_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET, 0);
	close(p[0]);
	close(p[1]);
}

static void test_readonly(void **state)
{
	struct fx *f = *state;
	struct stat before, after;
	struct pmem_stats st;
	int p[2];

	assert_true(f->slots->slots[0]->read_only);
	/* Read-only flushes succeed without a system call: even a broken fd is not touched. */
	assert_int_equal(fstat(f->fd, &before), 0);
	assert_int_equal(pipe(p), 0);
	assert_true(dup2(p[0], virtio_pmem_backend_fd(f->dev)) >= 0);
	assert_int_equal(flush(f, PMEM_REQ_FLUSH), PMEM_RESP_OK);
	virtio_pmem_stats(f->dev, &st);
	assert_int_equal(st.errors, 0);
	assert_int_equal(fstat(f->fd, &after), 0);
	assert_int_equal(before.st_mtime, after.st_mtime);
	close(p[0]);
	close(p[1]);
}

static void test_unknown_type(void **state)
{
	struct fx *f = *state;

	assert_int_equal(flush(f, 7), PMEM_RESP_EIO);
	assert_int_equal(flush(f, 0xffffffffu), PMEM_RESP_EIO);
	assert_int_equal(flush(f, PMEM_REQ_FLUSH), PMEM_RESP_OK);
}

/* Chains that cannot carry a request and an answer: returned with length 0, device lives. */
static void test_malformed_chains(void **state)
{
	struct fx *f = *state;
	struct pmem_stats st;
	uint16_t before;
	uint32_t id, len;
	struct {
		int n;
		uint64_t a[6];
		uint32_t l[6];
		bool w[6];
	} cases[] = {
	    {1, {REQ}, {4}, {false}},		     /* no answer buffer */
	    {1, {RESP}, {4}, {true}},		     /* no request */
	    {2, {REQ, RESP}, {3, 4}, {false, true}}, /* short request */
	    {2, {REQ, RESP}, {4, 3}, {false, true}}, /* short answer */
	    {2, {REQ, RESP}, {0, 0}, {false, true}}, /* empty buffers */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t t = PMEM_REQ_FLUSH;

		memcpy(f->m.ram + REQ, &t, 4);
		memset(f->m.ram + RESP, 0xee, 8);
		before = tq_used_idx(&f->m, 0);
		post(f, cases[i].n, cases[i].a, cases[i].l, cases[i].w);
		tdrv_kick(&f->drv, 0);
		assert_int_equal(tq_used_idx(&f->m, 0), (uint16_t)(before + 1));
		tq_used_elem(&f->m, 0, QS, before, &id, &len);
		assert_int_equal(len, 0);
		assert_int_equal(f->m.ram[RESP], 0xee); /* nothing written */
		assert_int_equal(virtio_dev_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET, 0);
	}
	virtio_pmem_stats(f->dev, &st);
	assert_int_equal(st.malformed, sizeof(cases) / sizeof(cases[0]));
	/* An answer split over 4 buffers (and an empty one between) is fine. */
	{
		uint64_t a[6] = {REQ, RESP, RESP + 1, RESP + 2, RESP + 3, RESP + 3};
		uint32_t l[6] = {4, 1, 1, 1, 0, 1};
		bool w[6] = {false, true, true, true, true, true};
		uint32_t t = PMEM_REQ_FLUSH, resp = 0xffffffff;

		memcpy(f->m.ram + REQ, &t, 4);
		before = tq_used_idx(&f->m, 0);
		post(f, 6, a, l, w);
		tdrv_kick(&f->drv, 0);
		tq_used_elem(&f->m, 0, QS, before, &id, &len);
		assert_int_equal(len, 4);
		memcpy(&resp, f->m.ram + RESP, 4);
		assert_int_equal(resp, PMEM_RESP_OK);
	}
	/* A descriptor outside RAM breaks the ring: NEEDS_RESET, no crash. */
	{
		uint64_t a[2] = {REQ, 1ULL << 40};
		uint32_t l[2] = {4, 4};
		bool w[2] = {false, true};

		before = tq_used_idx(&f->m, 0);
		post(f, 2, a, l, w);
		tdrv_kick(&f->drv, 0);
		assert_int_equal(tq_used_idx(&f->m, 0), before);
		assert_true(virtio_dev_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET);
	}
}

/* One kick takes at most PMEM_BUDGET requests; the next kick takes the rest. */
static void test_budget(void **state)
{
	struct fx *f = *state;
	uint16_t before = tq_used_idx(&f->m, 0);
	uint32_t t = PMEM_REQ_FLUSH;

	/* A full ring of well-formed flushes (under the budget): all answered in one kick. */
	memcpy(f->m.ram + REQ, &t, 4);
	for (int i = 0; i < QS / 2; i++) {
		uint64_t a[2] = {REQ, RESP};
		uint32_t l[2] = {4, 4};
		bool w[2] = {false, true};

		post(f, 2, a, l, w);
	}
	tdrv_kick(&f->drv, 0);
	assert_int_equal((uint16_t)(tq_used_idx(&f->m, 0) - before), QS / 2);
}

static void test_budget_cap(void **state)
{
	struct fx *f = fx_new();
	char err[256];
	uint32_t t = PMEM_REQ_FLUSH;
	uint16_t before;

	(void)state;
	make_file(f, FILE_SZ);
	assert_int_equal(create(f, false, 0, err), 0);
	tdrv_attach(&f->drv, &f->m, f->dev->pci.slot);
	assert_int_equal(tdrv_probe(&f->drv, F_V1, 1, PMEM_QUEUE_SIZE), 0);
	memcpy(f->m.ram + REQ, &t, 4);
	/* 40 one-descriptor chains (malformed: no answer) are cheap to post. */
	before = tq_used_idx(&f->m, 0);
	for (int i = 0; i < PMEM_BUDGET + 8; i++) {
		tq_set_desc(&f->m, 0, i, REQ, 4, 0, 0);
		tq_avail_add(&f->m, 0, PMEM_QUEUE_SIZE, i);
	}
	tdrv_kick(&f->drv, 0);
	assert_int_equal((uint16_t)(tq_used_idx(&f->m, 0) - before), PMEM_BUDGET);
	tdrv_kick(&f->drv, 0);
	assert_int_equal((uint16_t)(tq_used_idx(&f->m, 0) - before), PMEM_BUDGET + 8);
	fx_free(f);
}

static void test_bad_files(void **state)
{
	struct fx *f = fx_new();
	char err[256];

	(void)state;
	/* Missing. */
	strcpy(f->path, "/nonexistent/uvm-pmem.img");
	assert_int_equal(create(f, true, 0, err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/uvm-pmem.img"));
	/* A directory. */
	strcpy(f->path, "/tmp");
	assert_int_equal(create(f, true, 0, err), -EISDIR);
	assert_non_null(strstr(err, "directory"));
	f->path[0] = '\0';
	/* Not a page multiple, empty, over the maximum. */
	make_file(f, 4096 + 512);
	assert_int_equal(create(f, true, 0, err), -EINVAL);
	assert_non_null(strstr(err, "multiple of 4096"));
	assert_int_equal(ftruncate(f->fd, 0), 0);
	assert_int_equal(create(f, true, 0, err), -EINVAL);
	assert_int_equal(ftruncate(f->fd, 2 * 4096), 0);
	assert_int_equal(create(f, true, 4096, err), -EFBIG);
	assert_non_null(strstr(err, "maximum"));
	assert_null(f->dev);
	/* Nothing leaked: no slot, no PCI function. */
	assert_int_equal(mem_slots_count(f->slots), 0);
	assert_int_equal(f->slots->alloc.nr, 0);
	/* And at the limit it works. */
	assert_int_equal(create(f, true, 2 * 4096, err), 0);
	assert_int_equal(mem_slots_count(f->slots), 1);
	fx_free(f);
}

/* The window full: -ENOSPC with a sentence, nothing left behind. */
static void test_no_room(void **state)
{
	struct fx *f = fx_new();
	struct virtio_dev *devs[3];
	char err[256];

	(void)state;
	mem_slots_destroy(f->slots);
	assert_int_equal(mem_slots_create(&f->slots, -1, BASE, BASE + 2 * MEM_SLOT_SECTION, true),
			 0);
	make_file(f, FILE_SZ);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(create(f, true, 0, err), 0);
		devs[i] = f->dev;
	}
	assert_int_equal(create(f, true, 0, err), -ENOSPC);
	assert_non_null(strstr(err, "no guest-physical range"));
	assert_int_equal(mem_slots_count(f->slots), 2);
	virtio_dev_destroy(devs[0]);
	assert_int_equal(create(f, true, 0, err), 0); /* the freed range is taken again */
	devs[2] = f->dev;
	virtio_dev_destroy(devs[1]);
	f->dev = devs[2];
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_ok_reaches_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_failing_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
	    cmocka_unit_test(test_budget_cap),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_no_room),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
