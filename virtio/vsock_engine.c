/* virtio-vsock engine: creation, listeners, host connects, reset, stats (vsock.h). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio/vsock_priv.h"
#include "vmm/log.h"

#define TAG "vsock"

/* ---- engine ------------------------------------------------------------------- */

int vsock_engine_create(struct vsock **out, uint64_t guest_cid)
{
	struct vsock *vs;

	/* 0-2 are reserved (hypervisor, local, host); above 32 bits is reserved too. */
	if (guest_cid < 3 || guest_cid >= 0xffffffffULL)
		return -EINVAL;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->guest_cid = guest_cid;
	vs->next_port = EPHEMERAL_FIRST;
	*out = vs;
	return 0;
}

static void kill_all(struct vsock *vs, bool notify)
{
	for (unsigned i = 0; i < HASH_SIZE; i++)
		while (vs->hash[i])
			vsock_conn_kill(vs->hash[i], false, notify);
	vs->o_len = 0;
}

void vsock_engine_destroy(struct vsock *vs)
{
	struct listener *l;

	if (!vs)
		return;
	vs->kick = NULL;
	kill_all(vs, true);
	while ((l = vs->listeners)) {
		vs->listeners = l->next;
		free(l);
	}
	free(vs);
}

void vsock_reset(struct vsock *vs)
{
	kill_all(vs, true);
}

uint64_t vsock_guest_cid(const struct vsock *vs)
{
	return vs->guest_cid;
}

void vsock_set_rx_kick(struct vsock *vs, void (*fn)(void *opaque), void *opaque)
{
	vs->kick = fn;
	vs->kick_opaque = opaque;
}

int vsock_listen(struct vsock *vs, uint32_t port, vsock_accept_fn fn, void *opaque)
{
	struct listener *l;

	if (!fn)
		return -EINVAL;
	if (vsock_listener_find(vs, port))
		return -EADDRINUSE;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->port = port;
	l->fn = fn;
	l->opaque = opaque;
	l->next = vs->listeners;
	vs->listeners = l;
	return 0;
}

void vsock_unlisten(struct vsock *vs, uint32_t port)
{
	struct listener **pp = &vs->listeners;

	while (*pp && (*pp)->port != port)
		pp = &(*pp)->next;
	if (*pp) {
		struct listener *l = *pp;

		*pp = l->next;
		free(l);
	}
}

void vsock_set_fallback(struct vsock *vs, vsock_fallback_fn fn, void *opaque)
{
	vs->fallback = fn;
	vs->fallback_opaque = opaque;
}

int vsock_connect(struct vsock *vs, uint32_t guest_port, uint32_t host_port,
		  const struct vsock_conn_ops *ops, void *opaque, struct vsock_conn **out)
{
	struct vsock_conn *c;

	if (!host_port) {
		uint32_t tries = 0;

		do {
			host_port = vs->next_port++;
			if (vs->next_port > EPHEMERAL_LAST)
				vs->next_port = EPHEMERAL_FIRST;
			if (++tries > VSOCK_MAX_CONNS + 1)
				return -EADDRNOTAVAIL;
		} while (vsock_conn_find(vs, host_port, guest_port) ||
			 vsock_listener_find(vs, host_port));
	} else if (vsock_conn_find(vs, host_port, guest_port)) {
		return -EADDRINUSE;
	}
	c = vsock_conn_new(vs, host_port, guest_port);
	if (!c)
		return vs->nr_conns >= VSOCK_MAX_CONNS ? -EMFILE : -ENOMEM;
	c->state = CS_CONNECTING;
	c->ops = ops;
	c->opaque = opaque;
	c->pend = P_REQUEST;
	*out = c;
	vsock_conn_schedule(c);
	return 0;
}

void vsock_get_stats(const struct vsock *vs, struct vsock_stats *st)
{
	*st = vs->st;
	st->conns = vs->nr_conns;
}
