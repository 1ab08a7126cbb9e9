/*
 * virtio-9p (virtio 1.x, device id 9): one request queue, the mount tag in
 * config space, the 9P2000.L server of p9_server.c behind it.
 *
 * Host I/O never runs on the device's loop (in the shim an I/O thread's,
 * vmm/io_thread.h, never the control loop): a kick only takes chains and
 * peeks at their 9P header; the share's worker pool (p9_pool.c) copies each
 * request out of guest memory, serves it, writes the answer back and pushes
 * the chain itself, so requests are served in parallel (a slow fsync does
 * not hold up a stat). A Tflush for a request still waiting is answered in
 * the kick: the old request gets Rlerror(EINTR), then the flush its Rflush;
 * for one already running, the Rflush follows its answer.
 *
 * Locking: vdev.dev_lock covers the ring, the request slots and the work queue;
 * it is taken inside the transport lock (reset), and workers hold it only to
 * mark a request running and to push its answer; the pool's lock is taken
 * inside it. Reset takes back what waits and waits for what runs.
 */
#include "virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "p9.h"
#include "vmm/log.h"

#define VIRTIO_9P_F_MOUNT_TAG 0
#define P9_QUEUE_SIZE	      128
#define P9_IOV_SPACE	      ((size_t)P9_QUEUE_SIZE * VIRTQ_MAX_SIZE * sizeof(struct iovec))
#define P9_TAG_MAX	      64
#define P9_KICK_BUDGET	      P9_QUEUE_SIZE /* chains per call before yielding the loop */

enum p9_req_state { P9_REQ_FREE, P9_REQ_QUEUED, P9_REQ_RUNNING, P9_REQ_FLUSH_WAIT };

struct p9_dev;

struct p9_req {
	struct p9_work work; /* first: what the pool runs */
	struct p9_dev *dev;
	enum p9_req_state state;
	bool submitted; /* QUEUED and given to the pool (else still in this kick's batch) */
	uint16_t head;
	uint16_t tag;
	uint16_t nr_out, nr_in;
	uint32_t out_len, in_len;
	struct p9_req *flush_waiter; /* a Tflush answered once this one is */
	struct iovec *iov; /* VIRTQ_MAX_SIZE entries of p9_dev.iov_space */
};

struct p9_dev {
	struct virtio_dev vdev;
	struct p9_server *server;
	struct p9_pool *pool;
	char name[16];

	/* vdev.dev_lock covers what follows; vdev.active is the transport's */
	pthread_cond_t idle_cv;
	int inflight; /* given to the pool and not finished */
	struct virtq_chain chain;
	struct p9_req reqs[P9_QUEUE_SIZE]; /* indexed by descriptor head */
	/* The requests' iovec arrays (512 KiB), a mapping of their own: a page is
	 * resident only once a request on its head has used it. */
	struct iovec *iov_space;
	/* What one kick took, given to the pool once the kick is done: a Tflush in
	 * the same kick finds its request still here and cancels it for sure. */
	struct p9_req *batch[P9_QUEUE_SIZE];
	int nr_batch;
	/* What the device did, for the stall report (p9_watch); *_seen: at the last watch. */
	uint64_t nr_kicks, nr_taken, nr_pushed;
	uint64_t kicks_seen, pushed_seen;
	bool stall_reported; /* warned about this stall; again only after progress */

	uint8_t cfg[2 + P9_TAG_MAX]; /* virtio_9p_config: le16 tag_len, tag bytes */
};

int p9_watch_ms = 10000;

static struct p9_dev *to_p9(struct virtio_dev *vdev)
{
	return container_of(vdev, struct p9_dev, vdev);
}

/* ---- Answers ------------------------------------------------------------------------------ */

/* Writes len bytes of answer into req's writable buffers and returns the chain. Lock held. */
static void req_push(struct p9_dev *p9, struct p9_req *req, const uint8_t *buf, size_t len)
{
	struct virtq *vq = &p9->vdev.vqs[0];
	size_t done = 0;

	req->state = P9_REQ_FREE;
	if (!p9->vdev.active)
		return; /* the ring was reset: nobody waits for this */
	if (buf && len)
		done = iov_from_buf(req->iov + req->nr_out, req->nr_in, 0, buf, len);
	virtq_push(vq, req->head, done);
	p9->nr_pushed++;
	virtio_dev_notify(&p9->vdev, 0);
}

static void req_push_small(struct p9_dev *p9, struct p9_req *req, bool flush, uint32_t ecode)
{
	uint8_t msg[16];
	size_t n = flush ? p9_build_rflush(msg, sizeof(msg), req->tag)
			 : p9_build_rlerror(msg, sizeof(msg), req->tag, ecode);

	req_push(p9, req, msg, n);
}

/* ---- Workers ------------------------------------------------------------------------------ */

static size_t serve(struct p9_dev *p9, struct p9_req *req, struct p9_worker_bufs *b)
{
	size_t in_len = req->out_len, cap = req->in_len;

	if (in_len > P9_MSIZE_MAX)
		return p9_build_rlerror(b->out, P9_MSIZE_MAX, req->tag, EMSGSIZE);
	iov_to_buf(req->iov, req->nr_out, 0, b->in, in_len);
	if (cap > P9_MSIZE_MAX)
		cap = P9_MSIZE_MAX;
	return p9_server_handle(p9->server, b->in, in_len, b->out, cap);
}

/* Done with a request given to the pool. Lock held. */
static void req_retire(struct p9_dev *p9)
{
	if (--p9->inflight == 0)
		pthread_cond_broadcast(&p9->idle_cv);
}

static void req_work(struct p9_work *w, struct p9_worker_bufs *b)
{
	struct p9_req *req = (struct p9_req *)w;
	struct p9_dev *p9 = req->dev;
	const uint8_t *ans = b ? b->out : NULL;
	uint8_t small[16];
	size_t len, done;

	pthread_mutex_lock(&p9->vdev.dev_lock);
	if (!p9->vdev.active || req->state != P9_REQ_QUEUED) {
		/* Reset while it waited: nobody wants the answer. */
		req->state = P9_REQ_FREE;
		req_retire(p9);
		pthread_mutex_unlock(&p9->vdev.dev_lock);
		return;
	}
	req->state = P9_REQ_RUNNING;
	pthread_mutex_unlock(&p9->vdev.dev_lock);

	/* Guest memory stays valid while inflight > 0: reset and destroy wait for us. */
	if (b) {
		len = serve(p9, req, b);
	} else {
		len = p9_build_rlerror(small, sizeof(small), req->tag, ENOMEM);
		ans = small;
	}
	done = len ? iov_from_buf(req->iov + req->nr_out, req->nr_in, 0, ans, len) : 0;

	pthread_mutex_lock(&p9->vdev.dev_lock);
	if (p9->vdev.active) {
		struct p9_req *fw = req->flush_waiter;

		req->state = P9_REQ_FREE;
		req->flush_waiter = NULL;
		virtq_push(&p9->vdev.vqs[0], req->head, done);
		p9->nr_pushed++;
		virtio_dev_notify(&p9->vdev, 0);
		if (fw)
			req_push_small(p9, fw, true, 0);
	} else {
		req->state = P9_REQ_FREE;
		req->flush_waiter = NULL;
	}
	req_retire(p9);
	pthread_mutex_unlock(&p9->vdev.dev_lock);
}

/* ---- Kicks (the device's loop) ------------------------------------------------------------- */

static struct p9_req *find_tag(struct p9_dev *p9, uint16_t tag, struct p9_req *skip)
{
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		struct p9_req *r = &p9->reqs[i];

		if (r != skip && r->tag == tag &&
		    (r->state == P9_REQ_QUEUED || r->state == P9_REQ_RUNNING))
			return r;
	}
	return NULL;
}

/* A Tflush: cancel the request it names if it still waits. Lock held. */
static void flush(struct p9_dev *p9, struct p9_req *req, uint16_t oldtag)
{
	struct p9_req *old = find_tag(p9, oldtag, req);

	if (old && old->state == P9_REQ_QUEUED &&
	    (!old->submitted || p9_pool_cancel(p9->pool, &old->work))) {
		if (old->submitted)
			req_retire(p9);
		req_push_small(p9, old, false, EINTR);
	} else if (old && !old->flush_waiter) {
		old->flush_waiter = req;
		req->state = P9_REQ_FLUSH_WAIT;
		return;
	}
	req_push_small(p9, req, true, 0);
}

/*
 * Takes available chains, at most P9_KICK_BUDGET (so the batch never holds
 * more, even when a guest refills heads a flush answered in this kick). Lock
 * held. Returns 1 when the budget ran out (the caller re-kicks), 0 when the ring
 * is empty and the driver's kick armed, -EIO when the driver broke the ring.
 */
static int take_requests(struct p9_dev *p9)
{
	struct virtq *vq = &p9->vdev.vqs[0];
	struct virtq_chain *c = &p9->chain;
	int r, budget = P9_KICK_BUDGET;

	for (;;) {
		/* Out of budget: always come back, even to a ring that looks empty now.
		 * Only a pop that finds it empty re-arms the driver's kick (EVENT_IDX);
		 * stopping here without one left the driver never kicking again. */
		if (budget-- == 0)
			return 1;
		if ((r = virtq_pop(vq, c)) <= 0)
			break;
		p9->nr_taken++;
		struct p9_req *req = &p9->reqs[c->head % P9_QUEUE_SIZE];
		uint8_t hdr[P9_HDR_SIZE + 2] = {0};

		if (c->head >= P9_QUEUE_SIZE || req->state != P9_REQ_FREE)
			return -EIO; /* a head in flight handed out twice */
		req->head = c->head;
		req->nr_out = c->nr_out;
		req->nr_in = c->nr_in;
		req->out_len = c->out_len;
		req->in_len = c->in_len;
		req->flush_waiter = NULL;
		memcpy(req->iov, c->iov, (c->nr_out + c->nr_in) * sizeof(c->iov[0]));
		iov_to_buf(c->iov, c->nr_out, 0, hdr, sizeof(hdr));
		req->tag = hdr[5] | hdr[6] << 8;
		if (c->out_len < P9_HDR_SIZE) {
			req_push_small(p9, req, false, EINVAL);
		} else if (hdr[4] == P9_TFLUSH && c->out_len == P9_HDR_SIZE + 2) {
			flush(p9, req, hdr[7] | hdr[8] << 8);
		} else {
			req->state = P9_REQ_QUEUED;
			req->submitted = false;
			p9->batch[p9->nr_batch++] = req;
		}
	}
	return r;
}

/* Gives the pool what the kick took and no flush cancelled. Lock held. */
static void submit_batch(struct p9_dev *p9)
{
	for (int i = 0; i < p9->nr_batch; i++) {
		struct p9_req *req = p9->batch[i];

		if (req->state != P9_REQ_QUEUED || req->submitted)
			continue;
		req->submitted = true;
		p9->inflight++;
		p9_pool_submit(p9->pool, &req->work);
	}
	p9->nr_batch = 0;
}

static void p9_queue_notify(struct virtio_dev *vdev, int q)
{
	struct p9_dev *p9 = to_p9(vdev);
	int err = 0;

	pthread_mutex_lock(&p9->vdev.dev_lock);
	p9->nr_kicks++;
	if (p9->vdev.active && q == 0) {
		err = take_requests(p9);
		submit_batch(p9);
		if (err > 0) {
			virtio_dev_rekick(vdev, q);
			err = 0;
		}
	}
	pthread_mutex_unlock(&p9->vdev.dev_lock);
	if (err)
		virtio_dev_set_needs_reset(vdev);
}

/* ---- Stall report ------------------------------------------------------------------------- */

/*
 * Every p9_watch_ms an idle worker looks at the ring (p9_pool_set_watch).
 * A device that did nothing since the last look (no kick, no answer) while
 * the guest waits for it logs a warning with the state that says why: a
 * chain made available and not taken (a kick not seen), a request taken and
 * not answered (a worker or the pool), or answers the driver has not
 * consumed (an interrupt it did not get: notified_used says whether we
 * asked for one past its used_event). Once per stall: the next warning needs
 * progress first. With UVM_LOG=debug it logs the same line at every look.
 */
static void p9_watch(void *opaque)
{
	struct p9_dev *p9 = opaque;
	struct virtq_state st;
	int queued, busy;
	bool progress, waiting, stall;

	pthread_mutex_lock(&p9->vdev.dev_lock);
	if (!p9->vdev.active) {
		pthread_mutex_unlock(&p9->vdev.dev_lock);
		return;
	}
	virtq_get_state(&p9->vdev.vqs[0], &st);
	progress = p9->nr_kicks != p9->kicks_seen || p9->nr_pushed != p9->pushed_seen;
	p9->kicks_seen = p9->nr_kicks;
	p9->pushed_seen = p9->nr_pushed;
	waiting = st.avail_idx != st.last_avail || p9->inflight ||
		  (st.event_idx && st.used_event != st.used_idx);
	stall = !progress && waiting && !p9->stall_reported;
	if (progress)
		p9->stall_reported = false;
	if (stall)
		p9->stall_reported = true;
	if (stall || log_threshold >= LOG_DEBUG) {
		p9_pool_stats(p9->pool, &queued, &busy);
		log_ratelimited(
		    stall ? LOG_WARN : LOG_DEBUG, "9p",
		    "%s: %s %d ms%s: avail %u taken %u avail_event %u flags %#x; "
		    "used %u used_event %u notified %u%s; in flight %d (pool: %d queued, %d busy); "
		    "kicks %llu rekicks %llu taken %llu answered %llu",
		    p9->name, progress ? "progress in the last" : "no progress for", p9_watch_ms,
		    !progress && waiting ? ", the guest waits" : "", st.avail_idx, st.last_avail,
		    st.avail_event, st.avail_flags, st.used_idx, st.used_event, st.notified_used,
		    st.event_idx ? "" : " (no EVENT_IDX)", p9->inflight, queued, busy,
		    (unsigned long long)p9->nr_kicks, (unsigned long long)p9->vdev.rekicks,
		    (unsigned long long)p9->nr_taken, (unsigned long long)p9->nr_pushed);
	}
	pthread_mutex_unlock(&p9->vdev.dev_lock);
}

/* ---- Device ops --------------------------------------------------------------------------- */

static void p9_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_p9(vdev)->cfg + off, len);
}

static void p9_reset(struct virtio_dev *vdev)
{
	struct p9_dev *p9 = to_p9(vdev);

	/* Waiting requests are dropped; running ones finish (their answers are dropped). */
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		struct p9_req *r = &p9->reqs[i];

		if (r->state == P9_REQ_QUEUED && r->submitted &&
		    p9_pool_cancel(p9->pool, &r->work)) {
			r->state = P9_REQ_FREE;
			req_retire(p9);
		}
	}
	while (p9->inflight)
		pthread_cond_wait(&p9->idle_cv, &p9->vdev.dev_lock);
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		p9->reqs[i].state = P9_REQ_FREE;
		p9->reqs[i].flush_waiter = NULL;
	}
}

/* Before the device goes: no watch runs past this. */
static void p9_detach(struct virtio_dev *vdev)
{
	struct p9_dev *p9 = to_p9(vdev);

	p9_pool_set_watch(p9->pool, 0, NULL, NULL);
}

static void p9_free(struct p9_dev *p9)
{
	p9_server_destroy(p9->server);
	pthread_cond_destroy(&p9->idle_cv);
	if (p9->iov_space)
		munmap(p9->iov_space, P9_IOV_SPACE);
	free(p9);
}

static void p9_destroy(struct virtio_dev *vdev)
{
	p9_free(to_p9(vdev));
}

static const struct virtio_dev_ops p9_ops = {
    .config_read = p9_config_read,
    .queue_notify = p9_queue_notify,
    .reset = p9_reset,
    .detach = p9_detach,
    .destroy = p9_destroy,
};

/* ---- Creation ----------------------------------------------------------------------------- */

int virtio_9p_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		     struct p9_pool *pool, const char *tag, const struct p9_share_config *share,
		     struct virtio_dev **out)
{
	static int counter;
	size_t tag_len = tag ? strlen(tag) : 0;
	struct p9_dev *p9;
	int err, slot;

	if (tag_len == 0 || tag_len > P9_TAG_MAX || !share || !pool)
		return -EINVAL;
	p9 = calloc(1, sizeof(*p9));
	if (!p9)
		return -ENOMEM;
	pthread_cond_init(&p9->idle_cv, NULL);
	p9->pool = pool;
	p9->iov_space = mmap(NULL, P9_IOV_SPACE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p9->iov_space == MAP_FAILED) {
		p9->iov_space = NULL;
		p9_free(p9);
		return -ENOMEM;
	}
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		p9->reqs[i].dev = p9;
		p9->reqs[i].work.fn = req_work;
		p9->reqs[i].iov = p9->iov_space + (size_t)i * VIRTQ_MAX_SIZE;
	}
	snprintf(p9->name, sizeof(p9->name), "9p%d", __atomic_fetch_add(&counter, 1, 0));
	p9->cfg[0] = tag_len & 0xff;
	p9->cfg[1] = tag_len >> 8;
	memcpy(p9->cfg + 2, tag, tag_len);
	err = p9_server_create(share, &p9->server);
	if (err) {
		pr_err("9p", "%s: cannot share %s (%s)", p9->name, share->path,
			strerror(-err));
		p9_free(p9);
		return err;
	}
	err = virtio_dev_init(&p9->vdev, p9->name, VIRTIO_ID_9P, 1, P9_QUEUE_SIZE,
			      2 + tag_len, 1ULL << VIRTIO_9P_F_MOUNT_TAG, &p9_ops, mem, loop);
	if (err) {
		p9_free(p9);
		return err;
	}
	slot = virtio_dev_plug(&p9->vdev, pbus);
	if (slot < 0) {
		virtio_dev_destroy(&p9->vdev);
		return slot;
	}
	pr_info("9p", "%s: tag %s, %s%s, slot %d", p9->name, tag, share->path,
		share->read_only ? " (ro)" : "", slot);
	p9_pool_set_watch(pool, p9_watch_ms, p9_watch, p9);
	*out = &p9->vdev;
	return 0;
}
