/*
 * virtio-net device (virtio 1.x, 5.1): queues rx (0) and tx (1), MAC, link
 * status and MTU in config space. Frames move between the rings and a
 * backend (net.h); the header rules live in net_hdr.c.
 *
 * rx: a frame is read from the backend into a bounce buffer (header then
 * frame), checked against what the guest negotiated, then spread over one
 * chain, or several with MRG_RXBUF. When the guest has no room, the chains
 * taken are given back (virtq_unpop), the frame waits here and the backend fd
 * is not polled for reading until the guest's next rx kick: nothing is
 * dropped for lack of buffers, the backend (the tap's queue) holds the rest.
 * tx: chains go to the backend straight from guest memory behind a checked
 * copy of the header; a backend that is full stops tx until it is writable.
 * Both directions take a budget per run and re-kick themselves.
 *
 * Threads: the kicks, the wake eventfd and the backend fd are served on the
 * device's loop, an I/O thread's (vmm/io_thread.h) in the shim, so frames
 * never wait behind the control protocol or vsock; only that thread polls
 * the backend fd (update_events, backend_failed). The transport's vCPU-side
 * hooks (activate, reset) only change state under the lock and wake the
 * loop; the stats and the link are read and set from the control thread
 * under the same lock. Teardown takes the fds off the loop first (net_detach).
 */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG	      "net"
#define NET_QSIZE     256
#define Q_RX	      0
#define Q_TX	      1
#define NET_NR_QUEUES 2
/* Frames per run before yielding the loop to the other devices on it. */
#define TX_BUDGET 128
#define RX_BUDGET 128

/* virtio_net_config, little-endian. */
struct net_cfg_layout {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));
_Static_assert(sizeof(struct net_cfg_layout) == 12, "virtio_net_config layout");

struct net_dev {
	struct virtio_dev vdev;
	struct net_backend *be;
	struct loop *loop;
	int efd; /* wakes the loop: state changed (activate/reset) or rx has more */
	bool fd_on_loop;
	uint32_t events; /* what the backend fd is polled for now */

	/* vdev.dev_lock covers everything below; vdev.active is the transport's */
	bool link_up;
	bool be_dead; /* the backend failed (passt exited, tap gone): traffic is dropped */
	uint64_t features;
	bool rx_pending;       /* the bounce buffer holds a frame for the guest */
	bool rx_wait_buf;      /* not reading until the guest adds rx buffers */
	bool tx_blocked;       /* the backend is full: tx waits for EPOLLOUT */
	bool offloads_pending; /* features negotiated, not yet applied to the backend */
	size_t rx_len;	       /* header + frame bytes in bounce */
	uint8_t *bounce;       /* NET_HDR_LEN + NET_MAX_FRAME */
	struct net_cfg_layout cfg;
	struct net_stats st;
	struct virtq_chain first, cur; /* rx: the packet's first chain, the one being filled */
	uint16_t heads[NET_QSIZE];
	uint32_t lens[NET_QSIZE];
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
	char name[32];
};

static struct net_dev *to_net(struct virtio_dev *vdev)
{
	return container_of(vdev, struct net_dev, vdev);
}

static void wake_loop(struct net_dev *d)
{
	uint64_t one = 1;

	if (d->efd >= 0 && write(d->efd, &one, sizeof(one)) < 0) {
		/* Counter saturated: a wakeup is pending anyway. */
	}
}

/* The device's loop thread (or none), lock held: poll the backend fd for what the state needs. */
static void update_events(struct net_dev *d)
{
	uint32_t want = 0;

	if (!d->fd_on_loop)
		return;
	if (d->vdev.active && !d->rx_wait_buf && !d->rx_pending)
		want |= EPOLLIN;
	if (d->tx_blocked)
		want |= EPOLLOUT;
	if (want != d->events && loop_mod(d->loop, d->be->fd, want) == 0)
		d->events = want;
}

/* Lock held. The backend cannot go on: stop polling it and drop traffic from now on. */
static void backend_failed(struct net_dev *d, int err)
{
	if (d->be_dead)
		return;
	d->be_dead = true;
	pr_err(TAG, "%s: backend %s failed (%s): the NIC drops all traffic", d->name, d->be->name,
	       strerror(-err));
	if (d->fd_on_loop) {
		loop_del(d->loop, d->be->fd);
		d->fd_on_loop = false;
	}
}

/* ---- Receive ------------------------------------------------------------------------------ */

/*
 * Lock held. Places the pending frame into the guest's rx chains. Returns 1
 * when it was delivered or dropped, 0 when the guest has no room yet (every
 * chain taken is given back), -EIO when the driver broke the ring rules.
 */
static int rx_deliver(struct net_dev *d, bool *pushed)
{
	struct virtq *vq = &d->vdev.vqs[Q_RX];
	bool mrg = d->features & NET_FBIT(VIRTIO_NET_F_MRG_RXBUF);
	struct net_rx_fill f;
	uint16_t n = 0;
	int r;

	net_rx_fill_init(&f, d->bounce, d->rx_len);
	while (!net_rx_fill_done(&f)) {
		struct virtq_chain *c = n == 0 ? &d->first : &d->cur;

		if (n == vq->size) {
			/* The whole ring cannot hold it: drop the frame, keep the buffers. */
			virtq_unpop(vq, n);
			d->st.rx_drops++;
			d->rx_pending = false;
			log_ratelimited(LOG_WARN, TAG, "%s: rx frame of %zu bytes > the whole ring",
					d->name, d->rx_len);
			return 1;
		}
		r = virtq_pop(vq, c);
		if (r < 0)
			return -EIO;
		if (r == 0) {
			virtq_unpop(vq, n);
			return 0;
		}
		n++;
		/* The spec requires every rx buffer to hold at least a header. */
		if (c->in_len < NET_HDR_LEN) {
			log_ratelimited(LOG_WARN, TAG, "%s: rx chain of %u bytes", d->name,
					c->in_len);
			return -EIO;
		}
		if (!mrg && c->in_len < d->rx_len) {
			/* Too big for the guest's buffers (above its MTU): drop, keep the chain. */
			virtq_unpop(vq, 1);
			d->st.rx_drops++;
			d->rx_pending = false;
			log_ratelimited(LOG_WARN, TAG, "%s: rx frame of %zu bytes > buffer of %u",
					d->name, d->rx_len, c->in_len);
			return 1;
		}
		d->heads[n - 1] = c->head;
		d->lens[n - 1] = net_rx_fill_chain(&f, c->iov + c->nr_out, c->nr_in);
	}
	if (mrg)
		net_rx_set_num_buffers(d->first.iov + d->first.nr_out, d->first.nr_in, n);
	for (uint16_t i = 0; i < n; i++)
		virtq_push(vq, d->heads[i], d->lens[i]);
	*pushed = true;
	d->st.rx_packets++;
	d->st.rx_bytes += d->rx_len - NET_HDR_LEN;
	d->rx_pending = false;
	return 1;
}

/* Lock held. Reads one frame into the bounce buffer: 1 pending, 0 dropped, -EAGAIN none. */
static int rx_read(struct net_dev *d)
{
	struct net_hdr h;
	ssize_t n;

	n = d->be->ops->recv(d->be, &h, d->bounce + NET_HDR_LEN, NET_MAX_FRAME);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n < 0) {
		backend_failed(d, (int)n);
		return -EAGAIN;
	}
	if (!d->link_up || (size_t)n < NET_ETH_HLEN ||
	    net_hdr_rx_fix(&h, d->bounce + NET_HDR_LEN, n, d->features)) {
		d->st.rx_drops++;
		return 0;
	}
	memcpy(d->bounce, &h, NET_HDR_LEN);
	d->rx_len = NET_HDR_LEN + n;
	d->rx_pending = true;
	return 1;
}

/* Lock held. Moves frames to the guest until the backend is empty, the guest full, or the
 * budget spent. */
static void rx_run(struct net_dev *d)
{
	bool pushed = false;
	int budget = RX_BUDGET, r;

	while (d->vdev.active && !d->be_dead && !d->rx_wait_buf && budget > 0) {
		if (!d->rx_pending) {
			r = rx_read(d);
			if (r == -EAGAIN)
				break;
			budget--;
			if (r == 0)
				continue;
		}
		r = rx_deliver(d, &pushed);
		if (r == 0) {
			d->rx_wait_buf = true;
			d->st.rx_no_buffer++;
		} else if (r < 0) {
			virtio_dev_set_needs_reset(&d->vdev);
			d->vdev.active = false;
		}
	}
	if (pushed)
		virtio_dev_notify(&d->vdev, Q_RX);
	/* Out of budget, or frames buffered that a level-triggered poll would not announce. */
	if (d->vdev.active && !d->be_dead && !d->rx_wait_buf &&
	    (budget == 0 || (d->be->ops->rx_buffered && d->be->ops->rx_buffered(d->be))))
		wake_loop(d);
	update_events(d);
}

/* ---- Transmit ----------------------------------------------------------------------------- */

/* Lock held. One tx chain: 0 done (sent or dropped and counted), -EAGAIN backend full. */
static int tx_one(struct net_dev *d, const struct virtq_chain *c)
{
	struct net_hdr gh, h;
	size_t frame_len;
	int n, r;

	if (c->out_len < NET_HDR_LEN) {
		log_ratelimited(LOG_WARN, TAG, "%s: tx chain of %u bytes, shorter than a header",
				d->name, c->out_len);
		goto malformed;
	}
	/* One copy of the header: the guest may rewrite its buffer while we look. */
	iov_to_buf(c->iov, c->nr_out, 0, &gh, sizeof(gh));
	frame_len = c->out_len - NET_HDR_LEN;
	if (net_hdr_tx_check(&gh, frame_len, d->features, &h)) {
		log_ratelimited(LOG_WARN, TAG,
				"%s: tx header refused (flags %#x gso %#x, frame %zu bytes)",
				d->name, gh.flags, gh.gso_type, frame_len);
		goto malformed;
	}
	if (!d->link_up || d->be_dead) {
		d->st.tx_drops++;
		return 0;
	}
	n = iov_slice(c->iov, c->nr_out, NET_HDR_LEN, frame_len, d->tx_iov, VIRTQ_MAX_SIZE);
	if (n < 0)
		goto malformed;
	r = d->be->ops->send(d->be, &h, d->tx_iov, n, frame_len);
	if (r == -EAGAIN)
		return -EAGAIN;
	if (r < 0) {
		log_ratelimited(LOG_WARN, TAG, "%s: backend refused a frame of %zu bytes (%s)",
				d->name, frame_len, strerror(-r));
		d->st.tx_drops++;
		if (r == -EPIPE || r == -ECONNRESET)
			backend_failed(d, r);
		return 0;
	}
	d->st.tx_packets++;
	d->st.tx_bytes += frame_len;
	return 0;
malformed:
	d->st.tx_malformed++;
	d->st.tx_drops++;
	return 0;
}

/* Lock held. */
static void tx_run(struct net_dev *d)
{
	struct virtq *vq = &d->vdev.vqs[Q_TX];
	bool pushed = false;
	int budget = TX_BUDGET, r;

	while (d->vdev.active && !d->tx_blocked && budget > 0) {
		r = virtq_pop(vq, &d->cur);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_dev_set_needs_reset(&d->vdev);
			d->vdev.active = false;
			break;
		}
		if (tx_one(d, &d->cur) == -EAGAIN) {
			virtq_unpop(vq, 1);
			d->tx_blocked = true;
			break;
		}
		virtq_push(vq, d->cur.head, 0);
		pushed = true;
		budget--;
	}
	if (pushed)
		virtio_dev_notify(&d->vdev, Q_TX);
	if (budget == 0)
		virtio_dev_rekick(&d->vdev, Q_TX); /* more may be waiting: after the others */
	update_events(d);
}

/* ---- Events ------------------------------------------------------------------------------- */

void virtio_net_backend_ready(struct virtio_dev *vdev, uint32_t events)
{
	struct net_dev *d = to_net(vdev);
	bool dead;

	pthread_mutex_lock(&d->vdev.dev_lock);
	dead = d->be_dead;
	if ((events & EPOLLOUT) && d->tx_blocked && !d->be_dead) {
		int r = d->be->ops->flush ? d->be->ops->flush(d->be) : 0;

		if (r == 0) {
			d->tx_blocked = false;
			tx_run(d);
		} else if (r != -EAGAIN) {
			backend_failed(d, r);
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		rx_run(d); /* a closed or failed backend shows up as a recv error */
	if (!d->be_dead && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
		backend_failed(d, -EPIPE);
	update_events(d);
	dead = !dead && d->be_dead;
	pthread_mutex_unlock(&d->vdev.dev_lock);
	if (dead)
		virtio_net_set_link(vdev, false);
}

static void apply_offloads(struct net_dev *d);

static void be_fd_ready(void *opaque, uint32_t events)
{
	virtio_net_backend_ready(opaque, events);
}

static void efd_ready(void *opaque, uint32_t events)
{
	struct net_dev *d = opaque;
	uint64_t v;

	if (read(d->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: an earlier run took it */
	}
	pthread_mutex_lock(&d->vdev.dev_lock);
	apply_offloads(d);
	rx_run(d);
	update_events(d);
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

static void net_queue_notify(struct virtio_dev *vdev, int q)
{
	struct net_dev *d = to_net(vdev);

	pthread_mutex_lock(&d->vdev.dev_lock);
	if (q == Q_TX) {
		tx_run(d);
	} else if (q == Q_RX) {
		/* New buffers: deliver the waiting frame, then read on. */
		d->rx_wait_buf = false;
		rx_run(d);
	}
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

/* ---- Transport hooks ---------------------------------------------------------------------- */

static void net_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct net_dev *d = to_net(vdev);

	pthread_mutex_lock(&d->vdev.dev_lock);
	d->cfg.status = htole16(d->link_up ? VIRTIO_NET_S_LINK_UP : 0);
	memcpy(data, (uint8_t *)&d->cfg + off, len); /* bounds checked by the transport */
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

/*
 * Lock held, loop thread (or the test's thread without a loop): what the tap may
 * hand us follows the guest's features. Until this runs the tap hands plain
 * frames (no offloads, as opened), which every guest takes.
 */
static void apply_offloads(struct net_dev *d)
{
	int err;

	if (!d->offloads_pending)
		return;
	d->offloads_pending = false;
	if (!d->be->ops->set_offloads || d->be_dead)
		return;
	err = d->be->ops->set_offloads(d->be, d->features);
	if (err)
		pr_warn(TAG, "%s: offloads %#llx on %s: %s; frames stay without offloads", d->name,
			(unsigned long long)d->features, d->be->name, strerror(-err));
}

static int net_activate(struct virtio_dev *vdev)
{
	struct net_dev *d = to_net(vdev);

	/* vCPU thread, dev_lock held. */
	d->features = vdev->guest_features;
	/* The ioctl belongs to the loop (its seccomp class allows it). */
	d->offloads_pending = true;
	if (!d->loop)
		apply_offloads(d);
	/* The loop starts polling the backend (the fd's events belong to the loop thread). */
	wake_loop(d);
	return 0;
}

static void net_reset(struct virtio_dev *vdev)
{
	struct net_dev *d = to_net(vdev);

	/* dev_lock held, active already cleared. */
	if (d->rx_pending)
		d->st.rx_drops++;
	d->rx_pending = false;
	d->rx_wait_buf = false;
	d->features = 0;
	d->offloads_pending = true; /* back to none */
	if (!d->loop)
		apply_offloads(d);
	wake_loop(d);
}

static void net_destroy(struct virtio_dev *vdev)
{
	struct net_dev *d = to_net(vdev);
	struct net_stats *s = &d->st;

	pr_info(TAG,
		"%s: rx %llu packets %llu bytes %llu drops (%llu waits for buffers); tx %llu "
		"packets %llu bytes %llu drops (%llu malformed)",
		d->name, (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes,
		(unsigned long long)s->rx_drops, (unsigned long long)s->rx_no_buffer,
		(unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes,
		(unsigned long long)s->tx_drops, (unsigned long long)s->tx_malformed);
	if (d->efd >= 0)
		close(d->efd);
	net_backend_destroy(d->be);
	free(d->bounce);
	free(d);
}

/*
 * The control thread, no lock held (virtio_dev_ops.detach): after the kick fds,
 * the wake eventfd and the backend fd leave the loop; once loop_del returns no
 * callback of this NIC runs on its I/O thread. The backend fd may be gone
 * already (backend_failed, on that thread): then loop_del finds nothing.
 */
static void net_detach(struct virtio_dev *vdev)
{
	struct net_dev *d = to_net(vdev);

	if (!d->loop)
		return;
	if (d->efd >= 0)
		loop_del(d->loop, d->efd);
	loop_del(d->loop, d->be->fd);
	d->fd_on_loop = false;
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .detach = net_detach,
    .destroy = net_destroy,
};

/* ---- API ---------------------------------------------------------------------------------- */

void virtio_net_set_link(struct virtio_dev *vdev, bool up)
{
	struct net_dev *d = to_net(vdev);
	bool changed;

	pthread_mutex_lock(&d->vdev.dev_lock);
	changed = d->link_up != up;
	d->link_up = up;
	pthread_mutex_unlock(&d->vdev.dev_lock);
	if (changed)
		virtio_dev_config_changed(vdev);
}

void virtio_net_get_stats(struct virtio_dev *vdev, struct net_stats *st)
{
	struct net_dev *d = to_net(vdev);

	pthread_mutex_lock(&d->vdev.dev_lock);
	*st = d->st;
	pthread_mutex_unlock(&d->vdev.dev_lock);
}

void net_backend_destroy(struct net_backend *be)
{
	if (be)
		be->ops->destroy(be);
}

int virtio_net_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      const struct net_config *cfg, struct net_backend *be, struct virtio_dev **out)
{
	static int seq;
	uint64_t features = NET_FBIT(VIRTIO_NET_F_MAC) | NET_FBIT(VIRTIO_NET_F_STATUS) |
			    NET_FBIT(VIRTIO_NET_F_MRG_RXBUF);
	struct net_dev *d;
	int err, slot;

	if (!be)
		return -EINVAL;
	if (cfg->mtu && (cfg->mtu < NET_MTU_MIN || cfg->mtu > NET_MTU_MAX)) {
		net_backend_destroy(be);
		return -ERANGE;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		net_backend_destroy(be);
		return -ENOMEM;
	}
	d->be = be;
	d->loop = loop;
	d->efd = -1;
	d->link_up = cfg->link_up;
	snprintf(d->name, sizeof(d->name), "net%d", __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	memcpy(d->cfg.mac, cfg->mac, 6);
	d->cfg.max_virtqueue_pairs = htole16(1);
	if (cfg->mtu) {
		d->cfg.mtu = htole16(cfg->mtu);
		features |= NET_FBIT(VIRTIO_NET_F_MTU);
	}
	features |= be->offloads & NET_OFFLOAD_ALL;
	err = -ENOMEM;
	d->bounce = malloc(NET_HDR_LEN + NET_MAX_FRAME);
	if (!d->bounce)
		goto fail;
	if (loop) {
		d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->efd < 0) {
			err = -errno;
			goto fail;
		}
		err = loop_add(loop, d->efd, EPOLLIN, efd_ready, d);
		if (err) {
			close(d->efd);
			d->efd = -1;
			goto fail;
		}
		/* Polled for nothing until the driver is ready (errors still show up). */
		err = loop_add(loop, be->fd, 0, be_fd_ready, &d->vdev);
		if (err) {
			loop_del(loop, d->efd);
			close(d->efd);
			d->efd = -1;
			goto fail;
		}
		d->fd_on_loop = true;
	}
	err = virtio_dev_init(&d->vdev, d->name, VIRTIO_ID_NET, NET_NR_QUEUES, NET_QSIZE,
			      sizeof(d->cfg), features, &net_ops, mem, loop);
	if (err)
		goto fail;
	slot = virtio_dev_plug(&d->vdev, pbus);
	if (slot < 0) {
		virtio_dev_destroy(&d->vdev); /* calls net_destroy */
		return slot;
	}
	pr_info(TAG, "%s: %02x:%02x:%02x:%02x:%02x:%02x on %s, slot %d", d->name, cfg->mac[0],
		cfg->mac[1], cfg->mac[2], cfg->mac[3], cfg->mac[4], cfg->mac[5], be->name, slot);
	*out = &d->vdev;
	return 0;
fail:
	if (d->fd_on_loop)
		loop_del(loop, be->fd);
	if (d->efd >= 0) {
		loop_del(loop, d->efd);
		close(d->efd);
	}
	net_backend_destroy(be);
	free(d->bounce);
	free(d);
	return err;
}
