/*
 * The Q35 pieces OVMF probes, driven by a hostile guest: a script of ECAM
 * accesses (any offset in and past the 256 MiB window, any width, reads and
 * writes) that reach the MCH registers of the host bridge and the ICH9 LPC
 * (PMBASE, ACPI_CNTL, PIRQ routes, RCBA), and bytes for the debug port's
 * line assembly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "tests/unit/virtio_test_util.h"
#include "vmm/legacy.h"
#include "vmm/log.h"
#include "vmm/q35.h"

static struct tmach m;
static struct ich9_lpc *lpc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_threshold = LOG_ERROR; /* the rate-limited warnings are the point, not the output */
	if (tm_init(&m, 1 << 20) || ich9_lpc_create(&lpc, m.pbus, 0x600))
		abort();
	q35_mch_setup(m.pbus);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct debug_port_line line = {0};

	while (in.n) {
		unsigned op = take(&in);
		uint64_t off;
		uint32_t len = op & 7;
		uint8_t buf[8];

		if ((op & 0x30) == 0x30) { /* a byte for the debug port */
			if (debug_port_line_feed(&line, (uint8_t)take(&in)))
				line.len = 0;
			continue;
		}
		/* Mostly bus 0 (slots 0 and 31), sometimes anywhere. */
		if (op & 0x80)
			off = (uint64_t)take32(&in) << 32 | take32(&in);
		else
			off = (uint64_t)(op & 0x40 ? 31 : 0) << 15 |
			      (take(&in) << 4 | take(&in)) % 0x1000;
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)take(&in);
		pci_ecam_access(m.pbus, off, buf, len, op & 0x08);
		if (line.len > DEBUG_PORT_LINE)
			abort();
	}
	return 0;
}
