/*
 * The bridge's netns_add / netns_remove (protocol.h): named network
 * namespaces for containers, made by container_netns.c.
 */
#include "gcs/bridge.h"
#include "gcs/container.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

void gcs_netns_add_req(uint32_t type, uint64_t id, const cJSON *req)
{
	const char *name = gcs_bridge_str(req, "name");
	char path[PATH_MAX];
	int ret;

	if (gcs_netns_path(name, path, sizeof(path))) {
		gcs_bridge_respond(type, id, -EINVAL, NULL,
				   "netns_add: name: [A-Za-z0-9][A-Za-z0-9_.-]*, 1..%d",
				   GCS_CTR_ID_MAX);
		return;
	}
	ret = gcs_netns_make(path);
	if (ret == -EEXIST)
		gcs_bridge_respond(type, id, ret, NULL, "network namespace %s exists", name);
	else if (ret)
		gcs_bridge_respond(type, id, ret, NULL, "network namespace %s: %s", name,
				   strerror(-ret));
	else
		gcs_bridge_respond(type, id, 0, NULL, NULL);
}

void gcs_netns_remove_req(uint32_t type, uint64_t id, const cJSON *req)
{
	const char *name = gcs_bridge_str(req, "name");
	char path[PATH_MAX];

	if (gcs_netns_path(name, path, sizeof(path))) {
		gcs_bridge_respond(type, id, -EINVAL, NULL, "netns_remove: bad name");
		return;
	}
	/* Detached: a container still in it keeps it alive; its NICs return to the
	 * root namespace when the last user goes. */
	if (umount2(path, MNT_DETACH) < 0) {
		bool none = errno == EINVAL || errno == ENOENT; /* not a mount / no file */

		gcs_bridge_respond(type, id, none ? -ENOENT : -errno, NULL,
				   "network namespace %s: %s", name,
				   none ? "no such namespace" : strerror(errno));
		return;
	}
	unlink(path);
	gcs_bridge_respond(type, id, 0, NULL, NULL);
}
