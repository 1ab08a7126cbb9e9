/*
 * virtio-rng (virtio 1.x, 5.4): every writable buffer the driver offers is
 * filled from getrandom(), which does not block once the host pool is up.
 */
#include "virtio.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "vmm/log.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_BYTES  (64 * 1024) /* per request: keeps one kick short */
#define RNG_BUDGET     RNG_QUEUE_SIZE /* requests per kick before yielding the loop */

struct rng_dev {
	struct virtio_dev vdev;
	struct virtq_chain chain; /* under vdev.dev_lock */
};

static struct rng_dev *to_rng(struct virtio_dev *vdev)
{
	return container_of(vdev, struct rng_dev, vdev);
}

static uint32_t fill(const struct iovec *iov, int n)
{
	uint32_t done = 0;

	for (int i = 0; i < n && done < RNG_MAX_BYTES; i++) {
		size_t want = iov[i].iov_len;
		ssize_t got;

		if (want > RNG_MAX_BYTES - done)
			want = RNG_MAX_BYTES - done;
		got = getrandom(iov[i].iov_base, want, GRND_NONBLOCK);
		if (got <= 0) {
			if (got < 0 && errno != EAGAIN)
				pr_warn_errno("rng", "getrandom");
			break;
		}
		done += got;
		if ((size_t)got < want)
			break;
	}
	return done;
}

static void rng_queue_notify(struct virtio_dev *vdev, int q)
{
	struct rng_dev *rng = to_rng(vdev);
	struct virtq *vq = &vdev->vqs[0];
	bool pushed = false;
	int r = 0, budget = RNG_BUDGET;

	pthread_mutex_lock(&vdev->dev_lock);
	if (vdev->active && q == 0) {
		while (budget-- > 0 && (r = virtq_pop(vq, &rng->chain)) > 0) {
			struct virtq_chain *c = &rng->chain;

			/* Readable buffers mean nothing to this device; only the writable part
			 * counts. */
			virtq_push(vq, c->head, fill(c->iov + c->nr_out, c->nr_in));
			pushed = true;
		}
		if (pushed)
			virtio_dev_notify(vdev, 0);
		if (budget < 0)
			virtio_dev_rekick(vdev, 0); /* more may be waiting: after the others */
	}
	pthread_mutex_unlock(&vdev->dev_lock);
	if (r < 0)
		virtio_dev_set_needs_reset(vdev);
}

static void rng_destroy(struct virtio_dev *vdev)
{
	free(to_rng(vdev));
}

/* No config space, nothing to do at activation or reset beyond the transport's. */
static const struct virtio_dev_ops rng_ops = {
    .queue_notify = rng_queue_notify,
    .destroy = rng_destroy,
};

int virtio_rng_create(struct pci_bus *pbus, struct guest_mem *mem, struct loop *loop,
		      struct virtio_dev **out)
{
	struct rng_dev *rng;
	int err, slot;

	rng = calloc(1, sizeof(*rng));
	if (!rng)
		return -ENOMEM;
	err = virtio_dev_init(&rng->vdev, "rng", VIRTIO_ID_RNG, 1, RNG_QUEUE_SIZE, 0, 0, &rng_ops,
			      mem, loop);
	if (err) {
		free(rng);
		return err;
	}
	slot = virtio_dev_plug(&rng->vdev, pbus);
	if (slot < 0) {
		virtio_dev_destroy(&rng->vdev);
		return slot;
	}
	*out = &rng->vdev;
	return 0;
}
