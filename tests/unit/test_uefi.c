/*
 * UEFI boot's pure parts and the firmware image check: boot_uefi_split (where
 * a bzImage is cut for fw_cfg's setup and kernel items; a bzImage without an
 * EFI stub and every truncated prefix refused), boot_uefi_e820 (fw_cfg's
 * etc/e820), firmware_check and firmware_load (sizes, firmware volume,
 * reset vector, a variable store alone, missing and empty files). Debian's
 * kernel and OVMF are used when installed, else those cases print why and skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "tests/unit/boot_test_image.h"
#include "vmm/firmware.h"

#define KSIZE (64 << 10)

/* A bzImage with the PE header an EFI stub gives it. */
static uint8_t *efi_bzimage(size_t *size)
{
	uint8_t *k = calloc(1, KSIZE);

	assert_non_null(k);
	bootimg_bz_header(k, 4, KSIZE - bootimg_bz_setup_size(4), 0x1000000, 0x100000);
	k[0] = 'M';
	k[1] = 'Z';
	bootimg_put32(k + 0x3c, 0x40);
	memcpy(k + 0x40, "PE\0\0", 4);
	*size = KSIZE;
	return k;
}

static void test_split(void **state)
{
	char err[200] = "";
	size_t size, setup = 0;
	uint8_t *k = efi_bzimage(&size);

	(void)state;
	assert_int_equal(boot_uefi_split(k, size, &setup, err, sizeof(err)), 0);
	assert_int_equal(setup, bootimg_bz_setup_size(4));
	/* No PE header: no EFI stub. */
	k[0] = 0;
	assert_int_equal(boot_uefi_split(k, size, &setup, err, sizeof(err)), -ENOEXEC);
	bootimg_expect_err(err, "EFI stub");
	k[0] = 'M';
	/* The PE offset past the file, at its very end, and wrapping. */
	bootimg_put32(k + 0x3c, KSIZE - 3);
	assert_int_equal(boot_uefi_split(k, size, &setup, err, sizeof(err)), -ENOEXEC);
	bootimg_put32(k + 0x3c, 0xffffffff);
	assert_int_equal(boot_uefi_split(k, size, &setup, err, sizeof(err)), -ENOEXEC);
	bootimg_put32(k + 0x3c, KSIZE - 4);
	memcpy(k + KSIZE - 4, "PE\0\0", 4);
	assert_int_equal(boot_uefi_split(k, size, &setup, err, sizeof(err)), 0);
	/* Not a bzImage at all, and every truncated prefix: refused, never read past. */
	for (size_t n = 0; n < 0x1000; n += 7) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, k, n);
		assert_int_not_equal(boot_uefi_split(copy, n, &setup, err, sizeof(err)), 0);
		free(copy);
	}
	assert_int_equal(boot_uefi_split(NULL, size, &setup, err, sizeof(err)), -EINVAL);
	free(k);
}

static void test_e820(void **state)
{
	struct boot_e820_entry t[4];
	struct boot_ram ram = {.lo_size = 512ULL << 20};

	(void)state;
	assert_int_equal(boot_uefi_e820(t, 4, &ram), 1);
	assert_int_equal(t[0].addr, 0);
	assert_int_equal(t[0].size, 512ULL << 20);
	assert_int_equal(t[0].type, BOOT_E820_RAM);
	assert_int_equal(sizeof(t[0]), 20); /* QEMU's etc/e820 entry */
	ram.hi_size = 1ULL << 30;
	assert_int_equal(boot_uefi_e820(t, 4, &ram), 2);
	assert_int_equal(t[1].addr, 1ULL << 32);
	assert_int_equal(t[1].size, 1ULL << 30);
	assert_int_equal(boot_uefi_e820(t, 1, &ram), -E2BIG);
	ram.lo_size = 4096;
	assert_int_equal(boot_uefi_e820(t, 4, &ram), -EINVAL);
	ram = (struct boot_ram){.lo_size = 1 << 20, .hi_size = UINT64_MAX};
	assert_int_equal(boot_uefi_e820(t, 4, &ram), -EINVAL);
}

/* An image firmware_check accepts: a volume header at 0, code at the reset vector. */
static uint8_t *fake_firmware(size_t size)
{
	uint8_t *f = calloc(1, size);

	assert_non_null(f);
	memset(f, 0xff, size);
	bootimg_put64(f + 0x20, size); /* FvLength */
	memcpy(f + 0x28, "_FVH", 4);
	bootimg_put16(f + 0x30, 0x48); /* HeaderLength */
	memcpy(f + size - 16, "\x90\x90\xe9\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
	       16);
	return f;
}

static void test_firmware_check(void **state)
{
	char err[200];
	size_t size = 2 << 20;
	uint8_t *f = fake_firmware(size);

	(void)state;
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), 0);
	/* Sizes: too small, too large, not a page multiple. */
	assert_int_equal(firmware_check(f, 64 << 10, err, sizeof(err)), -EINVAL);
	bootimg_expect_err(err, "4 KiB multiple");
	assert_int_equal(firmware_check(f, size - 1, err, sizeof(err)), -EINVAL);
	/* No volume header, a volume longer than the file, a header length out of range. */
	memcpy(f + 0x28, "_FVX", 4);
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), -EINVAL);
	bootimg_expect_err(err, "firmware volume");
	memcpy(f + 0x28, "_FVH", 4);
	bootimg_put64(f + 0x20, (uint64_t)size + 1);
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), -EINVAL);
	bootimg_put64(f + 0x20, UINT64_MAX);
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), -EINVAL);
	bootimg_put64(f + 0x20, size);
	bootimg_put16(f + 0x30, 0x10);
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), -EINVAL);
	bootimg_put16(f + 0x30, 0x48);
	/* A variable store: a volume, and nothing at the reset vector. */
	memset(f + size - 16, 0xff, 16);
	assert_int_equal(firmware_check(f, size, err, sizeof(err)), -EINVAL);
	bootimg_expect_err(err, "reset vector");
	free(f);
}

static char *tmp_file(const void *data, size_t len)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/uvm-test-fw-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_firmware_load(void **state)
{
	struct firmware *fw = NULL;
	char err[300];
	size_t size = 1 << 20;
	uint8_t *f = fake_firmware(size);
	char *p;

	(void)state;
	p = tmp_file(f, size);
	assert_int_equal(firmware_load(&fw, p, err, sizeof(err)), 0);
	assert_int_equal(firmware_gpa(fw), (1ULL << 32) - size);
	firmware_destroy(fw);
	unlink(p);
	/* Empty, a directory, missing, not a volume: refused, naming the file. */
	p = tmp_file(f, 0);
	assert_int_equal(firmware_load(&fw, p, err, sizeof(err)), -EINVAL);
	assert_null(fw);
	bootimg_expect_err(err, p);
	unlink(p);
	assert_int_equal(firmware_load(&fw, "/tmp", err, sizeof(err)), -EINVAL);
	bootimg_expect_err(err, "regular file");
	assert_int_equal(firmware_load(&fw, "/nonexistent/OVMF.fd", err, sizeof(err)), -ENOENT);
	bootimg_expect_err(err, "/nonexistent/OVMF.fd");
	memset(f, 0, 0x100);
	p = tmp_file(f, size);
	assert_int_equal(firmware_load(&fw, p, err, sizeof(err)), -EINVAL);
	bootimg_expect_err(err, "firmware volume");
	unlink(p);
	firmware_destroy(NULL);
	free(f);
}

/* Debian's images, when the ovmf package is installed. */
static void test_debian_ovmf(void **state)
{
	struct firmware *fw = NULL;
	char err[300];

	(void)state;
	if (access("/usr/share/ovmf/OVMF.fd", R_OK)) {
		printf("SKIP test_debian_ovmf: /usr/share/ovmf/OVMF.fd absent (apt-get install "
		       "ovmf)\n");
		skip();
	}
	assert_int_equal(firmware_load(&fw, "/usr/share/ovmf/OVMF.fd", err, sizeof(err)), 0);
	firmware_destroy(fw);
	if (!access("/usr/share/OVMF/OVMF_CODE.fd", R_OK)) {
		assert_int_equal(
		    firmware_load(&fw, "/usr/share/OVMF/OVMF_CODE.fd", err, sizeof(err)), 0);
		firmware_destroy(fw);
	}
	if (!access("/usr/share/OVMF/OVMF_VARS.fd", R_OK)) {
		assert_int_equal(
		    firmware_load(&fw, "/usr/share/OVMF/OVMF_VARS.fd", err, sizeof(err)), -EINVAL);
		bootimg_expect_err(err, "reset vector");
	}
}

static void test_debian_kernel_split(void **state)
{
	const char *path = getenv("UVM_TEST_KERNEL");
	size_t setup = 0;
	char err[200];
	uint8_t *k;
	long n;
	FILE *f;

	(void)state;
	if (!path || !*path)
		path = "build/guest/vmlinuz";
	f = fopen(path, "rb");
	if (!f) {
		printf("SKIP test_debian_kernel_split: no kernel at %s (set UVM_TEST_KERNEL)\n",
		       path);
		skip();
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	k = malloc(n);
	assert_int_equal(fread(k, 1, n, f), (size_t)n);
	fclose(f);
	assert_int_equal(boot_uefi_split(k, n, &setup, err, sizeof(err)), 0);
	assert_int_equal(setup, ((size_t)(k[0x1f1] ? k[0x1f1] : 4) + 1) * 512);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),	   cmocka_unit_test(test_e820),
	    cmocka_unit_test(test_firmware_check), cmocka_unit_test(test_firmware_load),
	    cmocka_unit_test(test_debian_ovmf),	   cmocka_unit_test(test_debian_kernel_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
