/* Inside the virtio-pci transport, shared by pci.c and pci_common.c. */
#ifndef VIRTIO_PCI_PRIV_H
#define VIRTIO_PCI_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"

/* What the transport offers on top of each device's features. */
#define VIRTIO_TRANSPORT_FEATURES                                                                  \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |                         \
	 (1ULL << VIRTIO_F_EVENT_IDX))

/* A driver's access to the common configuration structure (off relative to it). */
void virtio_common_access(struct virtio_dev *dev, uint64_t off, uint8_t *data, uint32_t len,
			  bool is_write);
/* A driver's write of the device status byte; dev->lock held. */
void virtio_status_write(struct virtio_dev *dev, uint8_t val);

#endif
