/* MSI-X: the table in a BAR, routes and irqfds through the host ops (pci_priv.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "pci_priv.h"

/* ---- MSI-X -------------------------------------------------------------------------------- */

static bool msix_vec_masked(const struct pci_msix *m, int v)
{
	return !m->enabled || m->masked_all || (m->vec[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

void pci_msix_vec_teardown(struct pci_dev *dev, struct pci_msix_vec *vec)
{
	void *op;
	const struct pci_host_ops *h = pci_bus_host(dev->bus, &op);

	if (vec->routed) {
		h->irqfd(op, vec->efd, vec->gsi, false);
		h->msi_route(op, vec->gsi, 0, 0);
		vec->routed = false;
	}
	if (vec->have_gsi) {
		h->gsi_free(op, vec->gsi);
		vec->have_gsi = false;
	}
	if (vec->efd >= 0) {
		close(vec->efd);
		vec->efd = -1;
	}
}

/* Installs (or refreshes) the route for an unmasked vector, then delivers what is pending. */
static void msix_vec_update(struct pci_dev *dev, int v)
{
	struct pci_msix *m = dev->msix;
	struct pci_msix_vec *vec = &m->vec[v];
	void *op;
	const struct pci_host_ops *h;
	int err;

	if (msix_vec_masked(m, v) || !dev->bus)
		return;
	h = pci_bus_host(dev->bus, &op);
	if (vec->efd < 0) {
		vec->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vec->efd < 0) {
			pr_err_errno("pci", "%s: msix eventfd", dev->name);
			return;
		}
	}
	if (!vec->have_gsi) {
		err = h->gsi_alloc(op, &vec->gsi);
		if (err) {
			log_ratelimited(LOG_ERROR, "pci", "%s: no GSI for MSI-X vector %d (%d)",
					dev->name, v, err);
			return;
		}
		vec->have_gsi = true;
	}
	err = h->msi_route(op, vec->gsi, vec->addr, vec->data);
	if (err) {
		log_ratelimited(LOG_ERROR, "pci", "%s: MSI route for vector %d failed (%d)",
				dev->name, v, err);
		return;
	}
	if (!vec->routed) {
		err = h->irqfd(op, vec->efd, vec->gsi, true);
		if (err) {
			log_ratelimited(LOG_ERROR, "pci", "%s: irqfd for vector %d failed (%d)",
					dev->name, v, err);
			return;
		}
		vec->routed = true;
	}
	if (m->pba & (1ULL << v)) {
		uint64_t one = 1;

		m->pba &= ~(1ULL << v);
		if (write(vec->efd, &one, sizeof(one)) < 0)
			pr_warn_errno("pci", "%s: msix signal", dev->name);
	}
}

static void msix_update_all(struct pci_dev *dev)
{
	for (int v = 0; v < dev->msix->nr; v++)
		msix_vec_update(dev, v);
}

/* Called with the bus lock held after a write touched the MSI-X flags. */
void pci_msix_ctrl_written(struct pci_dev *dev)
{
	struct pci_msix *m = dev->msix;
	uint16_t flags = pci_get_le(&dev->cfg[m->cap + PCI_MSIX_FLAGS], 2);

	pthread_mutex_lock(&m->lock);
	m->enabled = flags & PCI_MSIX_FLAGS_ENABLE;
	m->masked_all = flags & PCI_MSIX_FLAGS_MASKALL;
	msix_update_all(dev);
	pthread_mutex_unlock(&m->lock);
}

static void msix_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_dev *dev = opaque;
	struct pci_msix *m = dev->msix;
	uint64_t table_end = (uint64_t)m->nr * PCI_MSIX_ENTRY_SIZE;

	/* The spec allows dword and qword accesses; anything else reads as 0 and is dropped. */
	if ((len != 4 && len != 8) || (off & (len - 1))) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (off + len <= table_end) {
		for (uint32_t done = 0; done < len; done += 4) {
			uint64_t o = off + done;
			struct pci_msix_vec *vec = &m->vec[o / PCI_MSIX_ENTRY_SIZE];
			uint32_t *field;
			uint32_t lo = vec->addr, hi = vec->addr >> 32;

			switch (o % PCI_MSIX_ENTRY_SIZE) {
			case 0:
				field = &lo;
				break;
			case 4:
				field = &hi;
				break;
			case 8:
				field = &vec->data;
				break;
			default:
				field = &vec->ctrl;
				break;
			}
			if (!is_write) {
				pci_put_le(data + done, 4, *field);
				continue;
			}
			*field = pci_get_le(data + done, 4);
			if (field == &vec->ctrl)
				vec->ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
			vec->addr = (uint64_t)hi << 32 | lo;
			msix_vec_update(dev, o / PCI_MSIX_ENTRY_SIZE);
		}
	} else if (off >= PCI_MSIX_PBA_OFFSET && off + len <= PCI_MSIX_PBA_OFFSET + 8) {
		/* PBA is read-only. */
		if (!is_write) {
			uint64_t v = m->pba >> (8 * (off - PCI_MSIX_PBA_OFFSET));

			for (uint32_t i = 0; i < len; i++)
				data[i] = v >> (8 * i);
		}
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&m->lock);
}

int pci_msix_init(struct pci_dev *dev, int nr, int bar)
{
	struct pci_msix *m;
	uint8_t cap[12] = {PCI_CAP_ID_MSIX}, wm[12] = {0};
	int off, err;

	if (nr < 1 || nr > PCI_MSIX_MAX || dev->msix)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->nr = nr;
	m->bar = bar;
	for (int v = 0; v < PCI_MSIX_MAX; v++) {
		m->vec[v].efd = -1;
		m->vec[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT; /* vectors start masked */
	}
	pci_put_le(&cap[PCI_MSIX_FLAGS], 2, nr - 1);
	pci_put_le(&cap[PCI_MSIX_TABLE], 4, 0 | bar);
	pci_put_le(&cap[PCI_MSIX_PBA], 4, PCI_MSIX_PBA_OFFSET | bar);
	wm[PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	err = pci_dev_set_bar(dev, bar, PCI_MSIX_BAR_SIZE, false, msix_bar_access, dev);
	if (err)
		goto fail;
	off = pci_cap_add(dev, cap, sizeof(cap), wm);
	if (off < 0) {
		err = off;
		goto fail;
	}
	m->cap = off;
	dev->msix = m;
	return 0;
fail:
	pthread_mutex_destroy(&m->lock);
	free(m);
	return err;
}

/* After pci_dev_remove (or before add): closes eventfds and releases GSIs. */
void pci_msix_cleanup(struct pci_dev *dev)
{
	struct pci_msix *m = dev ? dev->msix : NULL;

	if (!m)
		return;
	for (int v = 0; v < m->nr; v++) {
		if (m->vec[v].have_gsi || m->vec[v].routed) {
			/* Routes live on the bus that made them; it must still exist. */
			if (dev->bus)
				pci_msix_vec_teardown(dev, &m->vec[v]);
		}
		if (m->vec[v].efd >= 0)
			close(m->vec[v].efd);
		m->vec[v].efd = -1;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
	dev->msix = NULL;
}

int pci_msix_notify(struct pci_dev *dev, int vector)
{
	struct pci_msix *m = dev->msix;
	uint64_t one = 1;
	int ret = 0;

	if (!m || vector < 0 || vector >= m->nr)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled) {
		ret = -EAGAIN; /* no INTx fallback: nothing to deliver */
	} else if (msix_vec_masked(m, vector) || !m->vec[vector].routed) {
		m->pba |= 1ULL << vector;
	} else if (write(m->vec[vector].efd, &one, sizeof(one)) < 0) {
		ret = -errno;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

bool pci_msix_enabled(struct pci_dev *dev)
{
	bool en;

	if (!dev->msix)
		return false;
	pthread_mutex_lock(&dev->msix->lock);
	en = dev->msix->enabled;
	pthread_mutex_unlock(&dev->msix->lock);
	return en;
}
