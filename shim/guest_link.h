/*
 * The link to the guest agent, the same for `run -- CMD` and `serve`: the
 * vsock engine, its virtio device on the machine's bus, the optional Unix
 * socket convention for other host programs, and the bridge that waits for
 * the GCS to dial in. Event loop thread.
 */
#ifndef SHIM_GUEST_LINK_H
#define SHIM_GUEST_LINK_H

#include <stddef.h>
#include <stdint.h>

struct bridge;
struct bridge_ops;
struct loop;
struct machine;
struct virtio_dev;
struct vsock;
struct vsock_uds;

#define GUEST_LINK_DEFAULT_CID 3

struct guest_link {
	struct vsock *vs;
	struct virtio_dev *dev;
	struct vsock_uds *uds;
	struct bridge *bridge;
};

/*
 * Brings the link up on m before it starts: cid 0 means the default, a
 * vsock_path enables the Unix socket convention. On failure -errno with a
 * sentence in err, and nothing left behind.
 */
int guest_link_create(struct guest_link *l, struct machine *m, struct loop *loop, uint64_t cid,
		      const char *vsock_path, const struct bridge_ops *ops, void *opaque,
		      char *err, size_t errlen) __attribute__((warn_unused_result));
/* The bridge goes first: its pending requests fail now (their owners must still exist). */
void guest_link_close_bridge(struct guest_link *l);
/* Everything, in the safe order (the bridge if still there). A zeroed link is fine. */
void guest_link_destroy(struct guest_link *l);

#endif
