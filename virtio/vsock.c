/*
 * virtio-vsock device (virtio 1.x, 5.10): queues rx (0), tx (1), event (2)
 * and the guest CID in config space. The packet logic is the engine's
 * (vsock_conn.c); this file moves packets between it and the rings.
 *
 * Threads: all ring and engine work runs on the event loop (kicks arrive
 * there as eventfds). The engine asks for rx through an eventfd too, never
 * synchronously, so an endpoint sending from inside a callback cannot
 * re-enter the ring code. activate/reset come from vCPU threads and only
 * flip state under vdev.dev_lock; the engine itself is reset on the loop.
 */
#include "virtio/vsock.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG		"vsock"
#define VSOCK_QSIZE	256
#define Q_RX		0
#define Q_TX		1
#define Q_EVENT		2
#define VSOCK_NR_QUEUES 3
/* Packets handled per kick before yielding the loop to others. */
#define TX_BUDGET 256

struct vsock_dev {
	struct virtio_dev vdev;
	struct vsock *vs;
	struct loop *loop;
	int rx_efd; /* the engine has something for the guest, or a reset is due */
	/* Under vdev.dev_lock: */
	bool reset_pending; /* reset by the driver: drop every connection on the loop */
	bool ring_work;	    /* the loop is in drain/fill: it looks at the engine before leaving */
	struct virtq_chain chain;
	/* Ring activity, logged at destroy: shows batching (packets per kick) and rx starvation. */
	uint64_t tx_kicks, tx_pkts, rx_runs, rx_pkts, rx_starved;
};

static struct vsock_dev *to_vsock(struct virtio_dev *vdev)
{
	return container_of(vdev, struct vsock_dev, vdev);
}

/* Loop thread, lock held. Fills guest rx buffers while the engine has packets. */
static void fill_rx_locked(struct vsock_dev *d)
{
	struct virtq *vq = &d->vdev.vqs[Q_RX];
	bool pushed = false;

	while (d->vdev.active && vsock_rx_pending(d->vs)) {
		struct virtq_chain *c = &d->chain;
		long n;
		int r = virtq_pop(vq, c);

		if (r == 0) {
			d->rx_starved++;
			break; /* no buffer: the guest's next rx kick brings us back */
		}
		if (r < 0) {
			virtio_dev_set_needs_reset(&d->vdev);
			d->vdev.active = false;
			break;
		}
		n = vsock_rx(d->vs, c->iov + c->nr_out, c->nr_in, c->in_len);
		if (n < 0) {
			log_ratelimited(LOG_WARN, TAG, "rx buffer of %u bytes cannot hold a header",
					c->in_len);
			virtq_push(vq, c->head, 0);
			virtio_dev_set_needs_reset(&d->vdev);
			d->vdev.active = false;
			pushed = true;
			break;
		}
		virtq_push(vq, c->head, (uint32_t)n);
		d->rx_pkts++;
		pushed = true;
	}
	d->rx_runs++;
	if (pushed)
		virtio_dev_notify(&d->vdev, Q_RX);
}

/* Loop thread, lock held. */
static void drain_tx_locked(struct vsock_dev *d)
{
	struct virtq *vq = &d->vdev.vqs[Q_TX];
	bool pushed = false;
	int budget = TX_BUDGET, r;

	while (d->vdev.active && budget-- > 0) {
		struct virtq_chain *c = &d->chain;

		r = virtq_pop(vq, c);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_dev_set_needs_reset(&d->vdev);
			d->vdev.active = false;
			break;
		}
		/* Malformed packets are the engine's business (dropped or reset), not fatal. */
		vsock_tx(d->vs, c->iov, c->nr_out, c->out_len);
		virtq_push(vq, c->head, 0);
		d->tx_pkts++;
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(&d->vdev, Q_TX);
	if (budget < 0)
		virtio_dev_rekick(&d->vdev, Q_TX); /* more may be waiting: after the others */
}

/* Loop thread: handle a reset the driver asked for, before any new ring work. */
static void process_reset_locked(struct vsock_dev *d)
{
	if (!d->reset_pending)
		return;
	d->reset_pending = false;
	/* Endpoints hear closed(); none of them can reach the rings (inactive or fresh). */
	vsock_reset(d->vs);
}

static void vsock_queue_notify(struct virtio_dev *vdev, int q)
{
	struct vsock_dev *d = to_vsock(vdev);

	pthread_mutex_lock(&d->vdev.dev_lock);
	d->ring_work = true;
	process_reset_locked(d);
	if (q == Q_TX) {
		d->tx_kicks++;
		drain_tx_locked(d);
	}
	/* New rx buffers, or tx produced answers (responses, credit updates). */
	fill_rx_locked(d);
	/* Q_EVENT: buffers are kept for transport-reset events, which we never send. */
	d->ring_work = false;
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

static void rx_efd_ready(void *opaque, uint32_t events)
{
	struct vsock_dev *d = opaque;
	uint64_t v;

	if (read(d->rx_efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: a previous run already took it */
	}
	pthread_mutex_lock(&d->vdev.dev_lock);
	d->ring_work = true;
	process_reset_locked(d);
	fill_rx_locked(d);
	d->ring_work = false;
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

/* Engine -> device: something is pending for the guest. Any thread on the loop side. */
static void engine_kick(void *opaque)
{
	struct vsock_dev *d = opaque;
	uint64_t one = 1;

	if (write(d->rx_efd, &one, sizeof(one)) < 0) {
		/* Counter saturated: a wakeup is pending anyway. */
	}
}

/*
 * The engine's kick. It runs on the loop thread only (the engine's rule); when
 * that thread is inside drain/fill, fill_rx_locked runs after and loops while
 * anything is pending, so an eventfd round trip (write, epoll wakeup, read, an
 * empty fill) would be wasted: tx handling makes one per credit update.
 */
static void engine_rx_kick(void *opaque)
{
	struct vsock_dev *d = opaque;

	if (d->ring_work)
		return;
	engine_kick(d);
}

static void vsock_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct vsock_dev *d = to_vsock(vdev);
	uint64_t cid = htole64(vsock_guest_cid(d->vs));

	/* The transport checked off + len against config_len (8). */
	memcpy(data, (uint8_t *)&cid + off, len);
}

/* vCPU thread, dev_lock held (transport): the ring work itself happens on the loop. */
static int vsock_activate(struct virtio_dev *vdev)
{
	engine_kick(to_vsock(vdev)); /* packets queued before activation (e.g. a connect) */
	return 0;
}

static void vsock_dev_reset(struct virtio_dev *vdev)
{
	struct vsock_dev *d = to_vsock(vdev);

	d->reset_pending = true;
	engine_kick(d);
}

static void vsock_destroy(struct virtio_dev *vdev)
{
	struct vsock_dev *d = to_vsock(vdev);

	struct vsock_stats st;

	vsock_set_rx_kick(d->vs, NULL, NULL);
	vsock_get_stats(d->vs, &st);
	pr_info(TAG,
		"tx: %llu packets (%llu bytes) in %llu kicks; rx: %llu packets (%llu bytes) in "
		"%llu runs, %llu without a buffer",
		(unsigned long long)d->tx_pkts, (unsigned long long)st.from_guest_bytes,
		(unsigned long long)d->tx_kicks, (unsigned long long)d->rx_pkts,
		(unsigned long long)st.to_guest_bytes, (unsigned long long)d->rx_runs,
		(unsigned long long)d->rx_starved);
	if (d->rx_efd >= 0) {
		loop_del(d->loop, d->rx_efd);
		close(d->rx_efd);
	}
	free(d);
}

static const struct virtio_dev_ops vsock_ops = {
    .config_read = vsock_config_read,
    .activate = vsock_activate,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_dev_reset,
    .destroy = vsock_destroy,
};

int virtio_vsock_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
			struct vsock *vs, struct virtio_dev **out)
{
	struct vsock_dev *d;
	int err, slot;

	if (!loop || !vs)
		return -EINVAL; /* all of this device's work happens on the loop */
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vs = vs;
	d->loop = loop;
	d->rx_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->rx_efd < 0) {
		err = -errno;
		goto fail;
	}
	err = loop_add(loop, d->rx_efd, EPOLLIN, rx_efd_ready, d);
	if (err < 0) {
		close(d->rx_efd);
		goto fail;
	}
	err = virtio_dev_init(&d->vdev, "vsock", VIRTIO_ID_VSOCK, VSOCK_NR_QUEUES, VSOCK_QSIZE,
			      sizeof(uint64_t), 0, &vsock_ops, mem, loop);
	if (err) {
		loop_del(loop, d->rx_efd);
		close(d->rx_efd);
		goto fail;
	}
	vsock_set_rx_kick(vs, engine_rx_kick, d);
	slot = virtio_dev_plug(&d->vdev, pbus);
	if (slot < 0) {
		virtio_dev_destroy(&d->vdev); /* calls vsock_destroy */
		return slot;
	}
	*out = &d->vdev;
	return 0;
fail:
	free(d);
	return err;
}
