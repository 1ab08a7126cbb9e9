/* The guest agent's link: vsock engine, device, Unix sockets, bridge (guest_link.h). */
#include "shim/guest_link.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shim/bridge.h"
#include "shim/machine.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"
#include "vmm/vm.h"

int guest_link_create(struct guest_link *l, struct machine *m, struct loop *loop, uint64_t cid,
		      const char *vsock_path, const struct bridge_ops *ops, void *opaque,
		      char *err, size_t errlen)
{
	const char *what = "vsock";
	int ret;

	*l = (struct guest_link){0};
	ret = vsock_engine_create(&l->vs, cid ? cid : GUEST_LINK_DEFAULT_CID);
	if (!ret)
		ret = virtio_vsock_create(m->pci, vm_mem(m->vm), loop, l->vs, &l->dev);
	if (!ret && vsock_path) {
		what = vsock_path;
		ret = vsock_uds_create(&l->uds, l->vs, loop, vsock_path);
	}
	if (!ret) {
		what = "the bridge";
		ret = bridge_create(&l->bridge, l->vs, ops, opaque);
	}
	if (ret) {
		snprintf(err, errlen, "guest agent link: %s: %s", what,
			 ret == -EEXIST && l->vs && !l->uds && vsock_path
			     ? "exists and is not a socket"
			     : strerror(-ret));
		guest_link_destroy(l);
	}
	return ret;
}

void guest_link_close_bridge(struct guest_link *l)
{
	bridge_destroy(l->bridge);
	l->bridge = NULL;
}

void guest_link_destroy(struct guest_link *l)
{
	guest_link_close_bridge(l);
	if (l->dev)
		virtio_dev_destroy(l->dev);
	vsock_uds_destroy(l->uds);
	vsock_engine_destroy(l->vs);
	*l = (struct guest_link){0};
}
