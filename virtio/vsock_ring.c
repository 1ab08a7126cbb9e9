/* Byte rings for a vsock connection's data, allocated on first use (vsock_priv.h). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio/vsock_priv.h"
#include "vmm/log.h"

#define TAG "vsock"

/* ---- byte rings ------------------------------------------------------------ */

size_t vsock_ring_room(const struct ring *r, uint32_t cap)
{
	return cap - r->len;
}

/* Copies from an iovec list (skipping skip bytes) into the ring. Returns bytes copied. */
size_t vsock_ring_put_iov(struct ring *r, uint32_t cap, const struct iovec *iov, int niov,
			  size_t skip, size_t len)
{
	size_t done = 0;

	if (len > vsock_ring_room(r, cap))
		len = vsock_ring_room(r, cap);
	if (!len)
		return 0;
	if (!r->data) {
		r->data = malloc(cap);
		if (!r->data)
			return 0;
		r->cap = cap;
		r->head = r->len = 0;
	}
	for (int i = 0; i < niov && done < len; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;

		if (skip >= n) {
			skip -= n;
			continue;
		}
		p += skip;
		n -= skip;
		skip = 0;
		if (n > len - done)
			n = len - done;
		while (n) {
			uint32_t tail = (r->head + r->len) % r->cap;
			size_t chunk = r->cap - tail < n ? r->cap - tail : n;

			memcpy(r->data + tail, p, chunk);
			r->len += chunk;
			p += chunk;
			n -= chunk;
			done += chunk;
		}
	}
	return done;
}

int vsock_ring_peek(const struct ring *r, struct iovec iov[2])
{
	uint32_t first;

	if (!r->len)
		return 0;
	first = r->cap - r->head < r->len ? r->cap - r->head : r->len;
	iov[0] = (struct iovec){r->data + r->head, first};
	if (first == r->len)
		return 1;
	iov[1] = (struct iovec){r->data, r->len - first};
	return 2;
}

void vsock_ring_consume(struct ring *r, size_t n)
{
	if (n > r->len)
		n = r->len;
	r->head = (r->head + n) % (r->cap ? r->cap : 1);
	r->len -= n;
	if (!r->len)
		r->head = 0;
}

void vsock_ring_free(struct ring *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}
