/*
 * The ACPI PM block's registers driven by a guest script: each step is an
 * offset (around the block, some far past it), a length (0-8), a direction
 * and the bytes. Checks the invariants the VMM relies on: SLP_EN never
 * reads back, SCI_EN always reads 1, only defined bits stick.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "vmm/acpi_pm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acpi_pm_regs r = {0};
	struct in in = {data, size};
	uint64_t now = 0;

	while (in.n) {
		unsigned op = take(&in);
		uint64_t off = op & 0x80 ? (uint64_t)take32(&in) << 32 | take32(&in) : op & 0x0f;
		uint32_t len = take(&in) & 7;
		uint8_t buf[8];
		bool is_write = op & 0x40;

		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)take(&in);
		now += (uint64_t)take(&in) << 20;
		(void)acpi_pm_regs_access(&r, off, buf, len, is_write, now);
		(void)acpi_pm_regs_sci(&r);
		if (r.cnt & ACPI_PM1_SLP_EN)
			abort();
		uint8_t cnt[2];
		(void)acpi_pm_regs_access(&r, 4, cnt, 2, false, now);
		if (!(cnt[0] & ACPI_PM1_SCI_EN))
			abort();
	}
	return 0;
}
