/*
 * What the resource managers (shim/scsi.c, shim/vpmem.c, and the ones that
 * follow their shape) share. The shape: parse and check the params, reserve
 * a slot, plug the device (cold before start, hot while running), ask the
 * guest agent, answer; to remove, the guest lets go first, then the device
 * is retired here and torn down from the loop, then the request is answered.
 *
 * Why retire: the guest's answer arrives inside the vsock device's lock (the
 * bridge runs in its ring work), and tearing a device down takes the PCI bus
 * lock, which a vCPU resetting the vsock device holds while it waits for the
 * vsock lock. So no device is torn down in a bridge callback: it is handed
 * to a reaper, which does it from a loop_defer()red call. Loop thread.
 */
#ifndef SHIM_MANAGER_H
#define SHIM_MANAGER_H

#include <stdbool.h>

#include <cjson/cJSON.h>

struct ctl_req;
struct loop;
struct mgr_retiree;
struct virtio_dev;

struct mgr_reaper {
	struct loop *loop; /* NULL: retire tears down at once (unit tests without a loop) */
	struct mgr_retiree *list;
	bool queued; /* a loop_defer of mgr_reap is out */
};

/*
 * dev (may be NULL) is done with: it is destroyed from the loop, then
 * release(opaque) runs (the manager frees its slot), then req (may be NULL)
 * is answered: code 0 with result (consumed; NULL: {}), else the error code
 * with the message. The slot must stay reserved until release runs.
 */
void mgr_retire(struct mgr_reaper *r, struct virtio_dev *dev, struct ctl_req *req, int code,
		cJSON *result, const char *msg, void (*release)(void *opaque), void *opaque);
/* Does now what was retired (unbind: before the bus goes). */
void mgr_reap(struct mgr_reaper *r);

#endif
