/*
 * boot_load on hostile bzImages into a 4 MiB guest. The first byte picks the
 * options; with its top bit set the rest overwrites the setup header of a
 * valid template image (so the fuzzer starts past the magic checks),
 * otherwise the rest is the whole kernel image.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "tests/unit/boot_test_image.h"

#define RAM_SIZE (4u << 20)
#define SETUP	 (5 * 512) /* bootimg_bz_setup_size(4) */
#define PM_SIZE	 0x2000

static uint8_t *ram;
static struct boot_plan *plan;
static uint8_t tmpl[SETUP + PM_SIZE];
static uint8_t initrd[3 * 4096];
static char cmdline[3000];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ram = malloc(RAM_SIZE);
	plan = malloc(sizeof(*plan));
	if (!ram || !plan)
		abort();
	/* pref_address 1 MiB, so that a 4 MiB guest fits. */
	bootimg_bz_header(tmpl, 4, PM_SIZE, 0x100000, 0x10000);
	memset(cmdline, 'c', sizeof(cmdline) - 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[SETUP + PM_SIZE];
	struct boot_ram r = {.lo_size = RAM_SIZE};
	struct boot_input in = {0};
	char err[256];
	uint8_t opt;

	if (size < 1)
		return 0;
	opt = data[0];
	data++;
	size--;
	if (opt & 0x80) {
		bootimg_overlay(img, tmpl, sizeof(img), 0x1f1, data, size);
		in.kernel = img;
		in.kernel_size = sizeof(img);
	} else {
		in.kernel = data;
		in.kernel_size = size;
	}
	in.entry = (opt & 1) ? BOOT_ENTRY_REAL16 : BOOT_ENTRY_DEFAULT;
	in.initrd = initrd;
	in.initrd_size = (opt >> 1) & 3 ? ((opt >> 1) & 3) * 4096 - 1 : 0;
	in.cmdline = cmdline + ((opt >> 3) & 7) * 400; /* 2999 down to 199 bytes */
	in.nr_cpus = 1 + ((opt >> 6) & 1) * 7;
	/* A plan boot_load accepted must fit the RAM it was made for. */
	if (!boot_load(plan, &r, &in, err, sizeof(err)) && bootimg_apply(plan, ram, RAM_SIZE))
		abort();
	return 0;
}
