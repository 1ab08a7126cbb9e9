/*
 * Byte rings for a vsock connection's data (vsock_priv.h). A ring is sized to
 * what it holds, not to its limit: it starts at RING_MIN bytes on first use,
 * doubles (up to the limit its caller passes) when a put needs more room, and
 * a drained ring larger than RING_KEEP is freed. Connections that move little
 * data or keep up with it (the bridge, the guest's log, an idle stdio stream)
 * hold a few KiB instead of the full credit they advertise (VSOCK_BUF_ALLOC).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio/vsock_priv.h"
#include "vmm/log.h"

#define TAG "vsock"

#define RING_MIN  (4u << 10)
#define RING_KEEP (16u << 10)

/* ---- byte rings ------------------------------------------------------------ */

size_t vsock_ring_room(const struct ring *r, uint32_t cap)
{
	return cap - r->len;
}

/*
 * Room for need bytes in all: a new buffer of the next power of two from
 * RING_MIN (at most max) with the content moved to its start. False when out
 * of memory.
 */
static bool ring_reserve(struct ring *r, uint32_t max, size_t need)
{
	struct iovec iov[2];
	uint32_t cap = r->cap ? r->cap : RING_MIN;
	size_t off = 0;
	uint8_t *p;
	int n;

	if (r->data && need <= r->cap)
		return true;
	while (cap < need && cap < max)
		cap = cap > max / 2 ? max : cap * 2;
	if (cap > max)
		cap = max;
	if (cap < need)
		return false;
	p = malloc(cap);
	if (!p)
		return false;
	n = vsock_ring_peek(r, iov);
	for (int i = 0; i < n; i++) {
		memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	free(r->data);
	r->data = p;
	r->cap = cap;
	r->head = 0;
	return true;
}

/* Copies from an iovec list (skipping skip bytes) into the ring. Returns bytes copied. */
size_t vsock_ring_put_iov(struct ring *r, uint32_t cap, const struct iovec *iov, int niov,
			  size_t skip, size_t len)
{
	size_t done = 0;

	if (len > vsock_ring_room(r, cap))
		len = vsock_ring_room(r, cap);
	if (!len || !ring_reserve(r, cap, r->len + len))
		return 0;
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
	if (r->len)
		return;
	r->head = 0;
	if (r->cap > RING_KEEP)
		vsock_ring_free(r);
}

void vsock_ring_free(struct ring *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}
