/*
 * Bridge stream reader on hostile bytes: whatever a guest sends, the reader
 * must either return messages whose body length matches the header, refuse
 * and skip, or stop; message bodies are then parsed as JSON like the shim does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gcs/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bridge_rx rx;
	struct bridge_rx_event ev;
	size_t used, off = 0;
	/* The first byte picks the chunk size, so split headers are covered. */
	size_t chunk = size ? (data[0] % 37) + 1 : 1;

	bridge_rx_init(&rx, 4096);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		enum bridge_rx_result r = bridge_rx_feed(&rx, data + off, n, &used, &ev);

		if (used > n)
			abort();
		off += used;
		if (r == BRIDGE_RX_MSG) {
			cJSON *j;

			if (ev.body_len != ev.hdr.size - BRIDGE_HDR_SIZE || ev.hdr.size > 4096 ||
			    !bridge_type_name(ev.hdr.type))
				abort();
			j = cJSON_ParseWithLength(ev.body, ev.body_len);
			cJSON_Delete(j);
			free(ev.body);
		} else if (r == BRIDGE_RX_BROKEN) {
			break;
		} else if (r == BRIDGE_RX_MORE && used != n) {
			abort();
		}
	}
	bridge_rx_fini(&rx);
	return 0;
}
