/*
 * virtio-9p (virtio 1.x, device id 9): one request queue, the mount tag in
 * config space, the 9P2000.L server of p9_server.c behind it.
 *
 * Host I/O never runs on the event loop: a kick only takes chains and peeks
 * at their 9P header; a small pool of worker threads copies each request out
 * of guest memory, serves it and writes the answer back, so requests are
 * served in parallel (a slow fsync does not hold up a stat). A Tflush for a
 * request still waiting is answered on the loop: the old request gets
 * Rlerror(EINTR), then the flush its Rflush; for one already running, the
 * Rflush follows its answer.
 *
 * Locking: p9->lock covers the ring, the request slots and the work queue;
 * it is taken inside the transport lock (reset), and workers hold it only to
 * take work and to push answers. Reset waits for running requests to end.
 */
#include "virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p9.h"
#include "vmm/log.h"

#define VIRTIO_9P_F_MOUNT_TAG 0
#define P9_QUEUE_SIZE	      128
#define P9_WORKERS	      4
#define P9_TAG_MAX	      64
#define P9_BUF_SIZE	      P9_MSIZE_MAX

enum p9_req_state { P9_REQ_FREE, P9_REQ_QUEUED, P9_REQ_RUNNING, P9_REQ_FLUSH_WAIT };

struct p9_req {
	enum p9_req_state state;
	uint16_t head;
	uint16_t tag;
	uint16_t nr_out, nr_in;
	uint32_t out_len, in_len;
	struct p9_req *next;	     /* work queue */
	struct p9_req *flush_waiter; /* a Tflush answered once this one is */
	struct iovec iov[VIRTQ_MAX_SIZE];
};

struct p9_dev {
	struct virtio_dev vdev;
	struct p9_server *server;
	char name[16];

	pthread_mutex_t lock; /* below */
	pthread_cond_t work_cv, idle_cv;
	bool active, stopping;
	int running;
	struct p9_req *qhead, *qtail;
	struct virtq_chain chain;
	struct p9_req reqs[P9_QUEUE_SIZE]; /* indexed by descriptor head */

	int nr_workers;
	pthread_t workers[P9_WORKERS];
	uint8_t cfg[2 + P9_TAG_MAX]; /* virtio_9p_config: le16 tag_len, tag bytes */
};

static struct p9_dev *to_p9(struct virtio_dev *vdev)
{
	return (struct p9_dev *)((char *)vdev - offsetof(struct p9_dev, vdev));
}

/* ---- Answers ------------------------------------------------------------------------------ */

/* Writes len bytes of answer into req's writable buffers and returns the chain. Lock held. */
static void req_push(struct p9_dev *p9, struct p9_req *req, const uint8_t *buf, size_t len)
{
	struct virtq *vq = &p9->vdev.vqs[0];
	size_t done = 0;

	req->state = P9_REQ_FREE;
	if (!p9->active)
		return; /* the ring was reset: nobody waits for this */
	if (buf && len)
		done = iov_from_buf(req->iov + req->nr_out, req->nr_in, 0, buf, len);
	virtq_push(vq, req->head, done);
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

struct p9_worker_bufs {
	uint8_t *in, *out;
};

static size_t serve(struct p9_dev *p9, struct p9_req *req, struct p9_worker_bufs *b)
{
	size_t in_len = req->out_len, cap = req->in_len;

	if (in_len > P9_BUF_SIZE)
		return p9_build_rlerror(b->out, P9_BUF_SIZE, req->tag, EMSGSIZE);
	iov_to_buf(req->iov, req->nr_out, 0, b->in, in_len);
	if (cap > P9_BUF_SIZE)
		cap = P9_BUF_SIZE;
	return p9_server_handle(p9->server, b->in, in_len, b->out, cap);
}

static void *p9_worker(void *opaque)
{
	struct p9_dev *p9 = opaque;
	struct p9_worker_bufs b = {malloc(P9_BUF_SIZE), malloc(P9_BUF_SIZE)};

	pthread_mutex_lock(&p9->lock);
	while (b.in && b.out) {
		struct p9_req *req;
		size_t len, done;

		while (!p9->qhead && !p9->stopping)
			pthread_cond_wait(&p9->work_cv, &p9->lock);
		if (p9->stopping)
			break;
		req = p9->qhead;
		p9->qhead = req->next;
		if (!p9->qhead)
			p9->qtail = NULL;
		req->state = P9_REQ_RUNNING;
		p9->running++;
		pthread_mutex_unlock(&p9->lock);

		/* Guest memory stays mapped while running > 0: reset waits for us. */
		len = serve(p9, req, &b);
		done = len ? iov_from_buf(req->iov + req->nr_out, req->nr_in, 0, b.out, len) : 0;

		pthread_mutex_lock(&p9->lock);
		if (p9->active) {
			struct p9_req *fw = req->flush_waiter;

			req->state = P9_REQ_FREE;
			req->flush_waiter = NULL;
			virtq_push(&p9->vdev.vqs[0], req->head, done);
			virtio_dev_notify(&p9->vdev, 0);
			if (fw)
				req_push_small(p9, fw, true, 0);
		} else {
			req->state = P9_REQ_FREE;
			req->flush_waiter = NULL;
		}
		if (--p9->running == 0)
			pthread_cond_broadcast(&p9->idle_cv);
	}
	pthread_mutex_unlock(&p9->lock);
	if (!b.in || !b.out)
		log_msg(LOG_ERROR, "9p", "%s: worker without buffers", p9->name);
	free(b.in);
	free(b.out);
	return NULL;
}

/* ---- Kicks (event loop) ------------------------------------------------------------------- */

static struct p9_req *find_tag(struct p9_dev *p9, uint16_t tag, struct p9_req *not)
{
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		struct p9_req *r = &p9->reqs[i];

		if (r != not && r->tag == tag &&
		    (r->state == P9_REQ_QUEUED || r->state == P9_REQ_RUNNING))
			return r;
	}
	return NULL;
}

static void unqueue(struct p9_dev *p9, struct p9_req *req)
{
	struct p9_req **pp = &p9->qhead, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			if (p9->qtail == req)
				p9->qtail = prev;
			req->next = NULL;
			return;
		}
	}
}

/* A Tflush: cancel the request it names if it still waits. Lock held. */
static void flush(struct p9_dev *p9, struct p9_req *req, uint16_t oldtag)
{
	struct p9_req *old = find_tag(p9, oldtag, req);

	if (old && old->state == P9_REQ_QUEUED) {
		unqueue(p9, old);
		req_push_small(p9, old, false, EINTR);
	} else if (old && !old->flush_waiter) {
		old->flush_waiter = req;
		req->state = P9_REQ_FLUSH_WAIT;
		return;
	}
	req_push_small(p9, req, true, 0);
}

/* Takes every available chain. Lock held. Returns -EIO when the driver broke the ring. */
static int take_requests(struct p9_dev *p9)
{
	struct virtq *vq = &p9->vdev.vqs[0];
	struct virtq_chain *c = &p9->chain;
	bool queued = false;
	int r;

	while ((r = virtq_pop(vq, c)) > 0) {
		struct p9_req *req = &p9->reqs[c->head % P9_QUEUE_SIZE];
		uint8_t hdr[P9_HDR_SIZE + 2] = {0};

		if (c->head >= P9_QUEUE_SIZE || req->state != P9_REQ_FREE)
			return -EIO; /* a head in flight handed out twice */
		req->head = c->head;
		req->nr_out = c->nr_out;
		req->nr_in = c->nr_in;
		req->out_len = c->out_len;
		req->in_len = c->in_len;
		req->next = req->flush_waiter = NULL;
		memcpy(req->iov, c->iov, (c->nr_out + c->nr_in) * sizeof(c->iov[0]));
		iov_to_buf(c->iov, c->nr_out, 0, hdr, sizeof(hdr));
		req->tag = hdr[5] | hdr[6] << 8;
		if (c->out_len < P9_HDR_SIZE) {
			req_push_small(p9, req, false, EINVAL);
		} else if (hdr[4] == P9_TFLUSH && c->out_len == P9_HDR_SIZE + 2) {
			flush(p9, req, hdr[7] | hdr[8] << 8);
		} else {
			req->state = P9_REQ_QUEUED;
			if (p9->qtail)
				p9->qtail->next = req;
			else
				p9->qhead = req;
			p9->qtail = req;
			queued = true;
		}
	}
	if (queued)
		pthread_cond_broadcast(&p9->work_cv);
	return r;
}

static void p9_queue_notify(struct virtio_dev *vdev, int q)
{
	struct p9_dev *p9 = to_p9(vdev);
	int err = 0;

	pthread_mutex_lock(&p9->lock);
	if (p9->active && q == 0)
		err = take_requests(p9);
	pthread_mutex_unlock(&p9->lock);
	if (err)
		virtio_dev_set_needs_reset(vdev);
}

/* ---- Device ops --------------------------------------------------------------------------- */

static void p9_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_p9(vdev)->cfg + off, len);
}

static int p9_activate(struct virtio_dev *vdev)
{
	struct p9_dev *p9 = to_p9(vdev);

	pthread_mutex_lock(&p9->lock);
	p9->active = true;
	pthread_mutex_unlock(&p9->lock);
	return 0;
}

static void p9_reset(struct virtio_dev *vdev)
{
	struct p9_dev *p9 = to_p9(vdev);

	pthread_mutex_lock(&p9->lock);
	p9->active = false;
	/* Waiting requests are dropped; running ones finish (their answers are dropped). */
	while (p9->qhead) {
		struct p9_req *r = p9->qhead;

		p9->qhead = r->next;
		r->state = P9_REQ_FREE;
	}
	p9->qtail = NULL;
	while (p9->running)
		pthread_cond_wait(&p9->idle_cv, &p9->lock);
	for (int i = 0; i < P9_QUEUE_SIZE; i++) {
		p9->reqs[i].state = P9_REQ_FREE;
		p9->reqs[i].flush_waiter = NULL;
	}
	pthread_mutex_unlock(&p9->lock);
}

static void stop_workers(struct p9_dev *p9)
{
	pthread_mutex_lock(&p9->lock);
	p9->stopping = true;
	pthread_cond_broadcast(&p9->work_cv);
	pthread_mutex_unlock(&p9->lock);
	for (int i = 0; i < p9->nr_workers; i++)
		pthread_join(p9->workers[i], NULL);
	p9->nr_workers = 0;
}

static void p9_free(struct p9_dev *p9)
{
	stop_workers(p9);
	p9_server_destroy(p9->server);
	pthread_cond_destroy(&p9->work_cv);
	pthread_cond_destroy(&p9->idle_cv);
	pthread_mutex_destroy(&p9->lock);
	free(p9);
}

static void p9_destroy(struct virtio_dev *vdev)
{
	p9_free(to_p9(vdev));
}

static const struct virtio_dev_ops p9_ops = {
    .config_read = p9_config_read,
    .activate = p9_activate,
    .queue_notify = p9_queue_notify,
    .reset = p9_reset,
    .destroy = p9_destroy,
};

/* ---- Creation ----------------------------------------------------------------------------- */

int virtio_9p_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		     const char *tag, const struct p9_share_config *share, struct virtio_dev **out)
{
	static int counter;
	size_t tag_len = tag ? strlen(tag) : 0;
	struct p9_dev *p9;
	int err, slot;

	if (tag_len == 0 || tag_len > P9_TAG_MAX || !share)
		return -EINVAL;
	p9 = calloc(1, sizeof(*p9));
	if (!p9)
		return -ENOMEM;
	pthread_mutex_init(&p9->lock, NULL);
	pthread_cond_init(&p9->work_cv, NULL);
	pthread_cond_init(&p9->idle_cv, NULL);
	snprintf(p9->name, sizeof(p9->name), "9p%d", __atomic_fetch_add(&counter, 1, 0));
	p9->cfg[0] = tag_len & 0xff;
	p9->cfg[1] = tag_len >> 8;
	memcpy(p9->cfg + 2, tag, tag_len);
	err = p9_server_create(share, &p9->server);
	if (err) {
		log_msg(LOG_ERROR, "9p", "%s: cannot share %s (%s)", p9->name, share->path,
			strerror(-err));
		p9_free(p9);
		return err;
	}
	for (int i = 0; i < P9_WORKERS; i++) {
		char tname[32];

		err = -pthread_create(&p9->workers[i], NULL, p9_worker, p9);
		if (err) {
			p9_free(p9);
			return err;
		}
		p9->nr_workers++;
		snprintf(tname, sizeof(tname), "%.10s-w%d", p9->name, i);
		pthread_setname_np(p9->workers[i], tname);
	}
	/* Class 0x0180: mass storage, other (the driver binds by virtio id). */
	err = virtio_dev_init(&p9->vdev, p9->name, VIRTIO_ID_9P, 0x018000, 1, P9_QUEUE_SIZE,
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
	log_msg(LOG_INFO, "9p", "%s: tag %s, %s%s, slot %d", p9->name, tag, share->path,
		share->read_only ? " (ro)" : "", slot);
	*out = &p9->vdev;
	return 0;
}
