/* The bridge's nic_* requests (net.c does the work over rtnetlink). */
#include "gcs/bridge.h"

#include <stdio.h>

/*
 * nic_*: done inline on the bridge loop. An add waits for the interface (a PCI
 * rescan finds it in well under a second; the timeout bounds the wait).
 */
void gcs_nic_req(uint32_t type, uint64_t id, const cJSON *req)
{
	char err[256] = "", ifname[32] = "";
	unsigned rpc = bridge_type_rpc(type);
	int ret;

	if (rpc == BRIDGE_RPC_NIC_ADD)
		ret = gcs_net_add(req, ifname, sizeof(ifname), err, sizeof(err));
	else if (rpc == BRIDGE_RPC_NIC_UPDATE)
		ret = gcs_net_update(req, err, sizeof(err));
	else
		ret = gcs_net_remove(req, err, sizeof(err));
	if (ret) {
		gcs_bridge_respond(type, id, ret, NULL, "%s", err);
	} else if (rpc == BRIDGE_RPC_NIC_ADD) {
		cJSON *b = cJSON_CreateObject();

		cJSON_AddStringToObject(b, "interface", ifname);
		gcs_bridge_respond(type, id, 0, b, NULL);
	} else {
		gcs_bridge_respond(type, id, 0, NULL, NULL);
	}
}
