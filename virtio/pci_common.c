/*
 * The virtio-pci common configuration structure (virtio 1.x, 4.1.4.3): the
 * driver's register reads and writes at any width, serialised to their byte
 * layout and applied field by field. Status writes go back to the transport
 * (pci.c, virtio_status_write). Runs on vCPU threads under dev->lock.
 */
#include <string.h>

#include "virtio/pci_priv.h"
#include "virtio/virtio.h"
#include "vmm/log.h"

static struct virtq *selected_queue(struct virtio_dev *dev)
{
	return dev->queue_select < dev->nr_queues ? &dev->vqs[dev->queue_select] : NULL;
}

/* Serialises the common cfg registers into their byte layout (for reads of any width). */
static void common_image(struct virtio_dev *dev, uint8_t img[VIRTIO_PCI_COMMON_SIZE])
{
	struct virtq *q = selected_queue(dev);
	uint64_t f = dev->host_features | VIRTIO_TRANSPORT_FEATURES;

	memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
	pci_put_le(img + VIRTIO_PCI_COMMON_DFSELECT, 4, dev->dfselect);
	pci_put_le(img + VIRTIO_PCI_COMMON_DF, 4,
		   dev->dfselect == 0	? (uint32_t)f
		   : dev->dfselect == 1 ? f >> 32
					: 0);
	pci_put_le(img + VIRTIO_PCI_COMMON_GFSELECT, 4, dev->gfselect);
	pci_put_le(img + VIRTIO_PCI_COMMON_GF, 4,
		   dev->gfselect == 0	? (uint32_t)dev->guest_features
		   : dev->gfselect == 1 ? dev->guest_features >> 32
					: 0);
	pci_put_le(img + VIRTIO_PCI_COMMON_MSIX, 2, dev->msix_config);
	pci_put_le(img + VIRTIO_PCI_COMMON_NUMQ, 2, dev->nr_queues);
	img[VIRTIO_PCI_COMMON_STATUS] = virtio_dev_status(dev);
	img[VIRTIO_PCI_COMMON_CFGGEN] = __atomic_load_n(&dev->config_generation, __ATOMIC_ACQUIRE);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, 2, dev->queue_select);
	if (!q)
		return;
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, q->msix_vector);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->enabled);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, 2, dev->queue_select);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, 4, q->desc_gpa);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_DESCHI, 4, q->desc_gpa >> 32);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 4, q->avail_gpa);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_AVAILHI, 4, q->avail_gpa >> 32);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, 4, q->used_gpa);
	pci_put_le(img + VIRTIO_PCI_COMMON_Q_USEDHI, 4, q->used_gpa >> 32);
}

static uint16_t checked_vector(struct virtio_dev *dev, uint16_t v)
{
	/* A vector the function does not have reads back as NO_VECTOR (4.1.5.1.2). */
	return v < dev->pci.msix->nr ? v : VIRTIO_MSI_NO_VECTOR;
}

static uint64_t set_half(uint64_t old, bool hi, uint32_t v)
{
	return hi ? (old & 0xffffffffULL) | (uint64_t)v << 32 : (old & ~0xffffffffULL) | v;
}

/* Applies one field whose bytes in img were (partly) written by the driver. */
static void common_commit(struct virtio_dev *dev, uint32_t field, const uint8_t *img)
{
	struct virtq *q = selected_queue(dev);
	uint8_t st = virtio_dev_status(dev);
	bool q_locked = (st & VIRTIO_STATUS_DRIVER_OK) || (q && q->enabled);
	uint32_t v32 = pci_get_le(img + field, 4);
	uint16_t v16 = v32;

	if (dev->resetting) {
		/* The driver must wait for status 0 before it writes again (reset_async). */
		log_ratelimited(LOG_WARN, "virtio", "%s: register write during a reset ignored",
				dev->name);
		return;
	}
	switch (field) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		dev->dfselect = v32;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		dev->gfselect = v32;
		return;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once FEATURES_OK was accepted. */
		if (st & VIRTIO_STATUS_FEATURES_OK || dev->gfselect > 1)
			return;
		dev->guest_features = set_half(dev->guest_features, dev->gfselect == 1, v32);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		__atomic_store_n(&dev->msix_config, checked_vector(dev, v16), __ATOMIC_RELAXED);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		virtio_status_write(dev, img[field]);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		dev->queue_select = v16;
		return;
	}
	if (!q)
		return;
	switch (field) {
	case VIRTIO_PCI_COMMON_Q_MSIX:
		__atomic_store_n(&q->msix_vector, checked_vector(dev, v16), __ATOMIC_RELAXED);
		return;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* Split rings need a power of two no larger than what we offered. */
		if (!q_locked && v16 && v16 <= q->max_size && !(v16 & (v16 - 1)))
			q->size = v16;
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Only 1 may be written; a queue is disabled by reset. */
		if (v16 == 1 && !q->enabled && !(st & VIRTIO_STATUS_DRIVER_OK))
			q->enabled = true;
		return;
	}
	if (q_locked)
		return;
	switch (field) {
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		q->desc_gpa = set_half(q->desc_gpa, field == VIRTIO_PCI_COMMON_Q_DESCHI, v32);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		q->avail_gpa = set_half(q->avail_gpa, field == VIRTIO_PCI_COMMON_Q_AVAILHI, v32);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		q->used_gpa = set_half(q->used_gpa, field == VIRTIO_PCI_COMMON_Q_USEDHI, v32);
		break;
	}
}

/* Field start offsets and widths, in layout order. */
static const uint8_t common_fields[][2] = {
    {VIRTIO_PCI_COMMON_DFSELECT, 4},  {VIRTIO_PCI_COMMON_DF, 4},
    {VIRTIO_PCI_COMMON_GFSELECT, 4},  {VIRTIO_PCI_COMMON_GF, 4},
    {VIRTIO_PCI_COMMON_MSIX, 2},      {VIRTIO_PCI_COMMON_NUMQ, 2},
    {VIRTIO_PCI_COMMON_STATUS, 1},    {VIRTIO_PCI_COMMON_CFGGEN, 1},
    {VIRTIO_PCI_COMMON_Q_SELECT, 2},  {VIRTIO_PCI_COMMON_Q_SIZE, 2},
    {VIRTIO_PCI_COMMON_Q_MSIX, 2},    {VIRTIO_PCI_COMMON_Q_ENABLE, 2},
    {VIRTIO_PCI_COMMON_Q_NOFF, 2},    {VIRTIO_PCI_COMMON_Q_DESCLO, 4},
    {VIRTIO_PCI_COMMON_Q_DESCHI, 4},  {VIRTIO_PCI_COMMON_Q_AVAILLO, 4},
    {VIRTIO_PCI_COMMON_Q_AVAILHI, 4}, {VIRTIO_PCI_COMMON_Q_USEDLO, 4},
    {VIRTIO_PCI_COMMON_Q_USEDHI, 4},
};

void virtio_common_access(struct virtio_dev *dev, uint64_t off, uint8_t *data, uint32_t len,
			  bool is_write)
{
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];

	if (off >= VIRTIO_PCI_COMMON_SIZE || off + len > VIRTIO_PCI_COMMON_SIZE) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	common_image(dev, img);
	if (!is_write) {
		memcpy(data, img + off, len);
	} else {
		memcpy(img + off, data, len);
		for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++) {
			uint32_t f = common_fields[i][0], n = common_fields[i][1];

			if (off < f + n && f < off + len)
				common_commit(dev, f, img);
		}
	}
	pthread_mutex_unlock(&dev->lock);
}
