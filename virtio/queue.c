/*
 * Split virtqueues (virtio 1.x, 2.7). The rings live in guest memory that the
 * guest may change at any moment: every index and descriptor is read once
 * into a local copy, every buffer goes through gpa_to_hva with its length,
 * and a chain walk stops after the queue size in hops.
 */
#include "virtio.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"

/* avail: u16 flags, u16 idx, u16 ring[size], u16 used_event */
#define AVAIL_FLAGS 0
#define AVAIL_IDX   1
#define AVAIL_RING  2
/* used: u16 flags, u16 idx, {u32 id, u32 len} ring[size], u16 avail_event */
#define USED_IDX_OFF  2
#define USED_RING_OFF 4

static uint64_t avail_bytes(uint16_t size)
{
	return 6 + 2ULL * size;
}

static uint64_t used_bytes(uint16_t size)
{
	return 6 + 8ULL * size;
}

static uint16_t load16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static uint16_t *avail_event_ptr(struct virtq *q)
{
	return (uint16_t *)(q->used + USED_RING_OFF + 8ULL * q->size);
}

int virtq_start(struct virtq *q, const struct guest_mem *mem, bool event_idx)
{
	uint16_t n = q->size;

	if (n == 0 || n > q->max_size || (n & (n - 1)))
		return -EINVAL;
	/* Alignment the spec requires; it also keeps the atomic u16/u32 accesses aligned. */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	q->desc = gpa_to_hva(mem, q->desc_gpa, 16ULL * n);
	q->avail = gpa_to_hva(mem, q->avail_gpa, avail_bytes(n));
	q->used = gpa_to_hva(mem, q->used_gpa, used_bytes(n));
	if (!q->desc || !q->avail || !q->used) {
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return -EFAULT;
	}
	q->mem = mem;
	q->event_idx = event_idx;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	uint16_t max = q->max_size;

	memset(q, 0, sizeof(*q));
	q->max_size = max;
	q->size = max;
	q->msix_vector = VIRTIO_MSI_NO_VECTOR;
}

/* Walks one chain from head into c. -EIO on any rule the driver broke. */
static int virtq_walk(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t table_size = q->size, budget = q->size, idx = head;
	uint64_t out_len = 0, in_len = 0;
	bool indirect = false;
	int n = 0;

	c->head = head;
	c->nr_out = c->nr_in = 0;
	for (;;) {
		struct virtq_desc d;

		if (budget-- == 0 || idx >= table_size)
			return -EIO;
		memcpy(&d, table + 16ULL * idx, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* One level only, always the chain's last descriptor, whole entries. */
			if (indirect || (d.flags & VIRTQ_DESC_F_NEXT) || d.len == 0 ||
			    (d.len & 15) || d.len / 16 > q->size)
				return -EIO;
			table = gpa_to_hva(q->mem, d.addr, d.len);
			if (!table)
				return -EIO;
			table_size = d.len / 16;
			budget = table_size;
			indirect = true;
			idx = 0;
			continue;
		}
		if (d.len) {
			void *hva = gpa_to_hva(q->mem, d.addr, d.len);

			if (!hva || n >= VIRTQ_MAX_SIZE)
				return -EIO;
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				in_len += d.len;
				c->nr_in++;
			} else {
				/* Readable buffers must all come before the writable ones. */
				if (c->nr_in)
					return -EIO;
				out_len += d.len;
				c->nr_out++;
			}
			if (out_len > UINT32_MAX || in_len > UINT32_MAX)
				return -EIO;
			c->iov[n].iov_base = hva;
			c->iov[n].iov_len = d.len;
			n++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		idx = d.next;
	}
	c->out_len = out_len;
	c->in_len = in_len;
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
	uint16_t avail_idx, head;

	if (!q->desc)
		return 0;
	avail_idx = load16(&q->avail[AVAIL_IDX]);
	if (avail_idx == q->last_avail) {
		if (!q->event_idx)
			return 0;
		/* Ask for a kick at the next buffer, then look again to close the race. */
		store16(avail_event_ptr(q), q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(&q->avail[AVAIL_IDX]);
		if (avail_idx == q->last_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
		log_ratelimited(LOG_WARN, "virtq", "avail idx %u runs %u past our %u (size %u)",
				avail_idx, (uint16_t)(avail_idx - q->last_avail), q->last_avail,
				q->size);
		return -EIO;
	}
	head = load16(&q->avail[AVAIL_RING + q->last_avail % q->size]);
	q->last_avail++;
	if (head >= q->size || virtq_walk(q, head, chain)) {
		log_ratelimited(LOG_WARN, "virtq", "malformed chain at head %u", head);
		return -EIO;
	}
	return 1;
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
	q->last_avail -= n;
}

bool virtq_avail_pending(const struct virtq *q)
{
	return q->desc && load16(&q->avail[AVAIL_IDX]) != q->last_avail;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint8_t *elem;
	uint32_t id = head;

	if (!q->used)
		return;
	elem = q->used + USED_RING_OFF + 8ULL * (q->used_idx % q->size);
	memcpy(elem, &id, 4);
	memcpy(elem + 4, &len, 4);
	q->used_idx++;
	/* Release: the element is visible before the index that publishes it. */
	store16((uint16_t *)(q->used + USED_IDX_OFF), q->used_idx);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t new_idx, old_idx, event;
	bool valid, yes;

	if (!q->used)
		return false;
	/* Our used idx store must be ordered before reading the driver's suppression state. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx) {
		yes = !(load16(&q->avail[AVAIL_FLAGS]) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	} else {
		new_idx = q->used_idx;
		old_idx = q->signalled_used;
		valid = q->signalled_valid;
		event = load16(&q->avail[AVAIL_RING + q->size]);
		q->signalled_used = new_idx;
		q->signalled_valid = true;
		/* Notify when used_event lies in (old, new]: the driver asked to hear about it. */
		yes = !valid || (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
	}
	if (yes)
		q->notified_used = q->used_idx;
	return yes;
}

void virtq_get_state(const struct virtq *q, struct virtq_state *st)
{
	memset(st, 0, sizeof(*st));
	if (!q->avail || !q->used)
		return;
	st->avail_idx = load16(&q->avail[AVAIL_IDX]);
	st->avail_flags = load16(&q->avail[AVAIL_FLAGS]);
	st->last_avail = q->last_avail;
	st->avail_event = load16(avail_event_ptr((struct virtq *)q));
	st->used_idx = q->used_idx;
	st->used_event = load16(&q->avail[AVAIL_RING + q->size]);
	st->notified_used = q->notified_used;
	st->event_idx = q->event_idx;
}

/* ---- iovec helpers ------------------------------------------------------------------------ */

size_t iov_to_buf(const struct iovec *iov, int n, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, int n, size_t skip, const void *buf, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)buf + done, l);
		done += l;
		skip = 0;
	}
	return done;
}

int iov_slice(const struct iovec *src, int n, size_t skip, size_t len, struct iovec *dst, int max)
{
	int k = 0;

	for (int i = 0; i < n && len; i++) {
		size_t l = src[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		if (k == max)
			return -1;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = l;
		k++;
		len -= l;
		skip = 0;
	}
	return len ? -1 : k;
}
