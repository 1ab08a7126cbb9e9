/*
 * The split-queue walker on guest memory the fuzzer controls entirely: ring
 * indices, descriptors, indirect tables. Every chain it returns must lie
 * inside guest RAM; pop must terminate; push must stay inside the used ring.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "vmm/mem.h"

#define RAM_SIZE (64 * 1024)

static uint8_t *ram;
static struct guest_mem *mem;
static struct virtq_chain chain;

static void take(uint64_t at, size_t max, const uint8_t **data, size_t *size)
{
	size_t n = *size < max ? *size : max;

	memcpy(ram + at, *data, n);
	*data += n;
	*size -= n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtq q = {.max_size = VIRTQ_MAX_SIZE};
	bool event_idx;
	uint16_t start;

	if (!ram) {
		ram = aligned_alloc(4096, RAM_SIZE);
		if (!ram || mem_wrap(&mem, ram, RAM_SIZE))
			abort();
	}
	if (size < 4)
		return 0;
	virtq_reset(&q);
	q.size = 1u << (data[0] % 9); /* 1 .. 256 */
	event_idx = data[1] & 1;
	start = data[2] | data[3] << 8;
	q.desc_gpa = 0;
	q.avail_gpa = 0x1000;
	q.used_gpa = 0x2000;
	memset(ram, 0, RAM_SIZE);
	/*
	 * Input order: avail ring, descriptor table, then everything else from
	 * 0x3000 (buffers, indirect tables), so short inputs reach the rings.
	 */
	data += 4;
	size -= 4;
	take(0x1000, 6 + 2 * q.size, &data, &size);
	take(0, 16 * q.size, &data, &size);
	take(0x3000, RAM_SIZE - 0x3000, &data, &size);
	if (virtq_start(&q, mem, event_idx))
		abort(); /* the fixed layout is always valid */
	/* A ring already in use: the driver's avail idx is relative to this. */
	q.last_avail = start;
	q.used_idx = q.last_avail;

	for (int i = 0; i < 2 * q.size + 2; i++) {
		int r = virtq_pop(&q, &chain);
		uint32_t in = 0;

		if (r <= 0)
			break;
		if (chain.head >= q.size || chain.nr_out + chain.nr_in > VIRTQ_MAX_SIZE)
			abort();
		for (int k = 0; k < chain.nr_out + chain.nr_in; k++) {
			uint8_t *b = chain.iov[k].iov_base;

			if (b < ram || b + chain.iov[k].iov_len > ram + RAM_SIZE ||
			    chain.iov[k].iov_len == 0)
				abort();
			if (k >= chain.nr_out)
				in += chain.iov[k].iov_len;
		}
		if (in != chain.in_len)
			abort();
		virtq_push(&q, chain.head, chain.in_len);
		(void)virtq_should_notify(&q);
	}
	return 0;
}
