/* The firmware image: checked, copied into page-aligned memory, mapped below 4 GiB. */
#include "firmware.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "vm.h"

#define FV_SIGNATURE_OFF 0x28 /* EFI_FIRMWARE_VOLUME_HEADER.Signature */
#define FV_HDRLEN_OFF	 0x30 /* .HeaderLength (u16) */
#define FV_LENGTH_OFF	 0x20 /* .FvLength (u64) */
#define RESET_VECTOR	 16

struct firmware {
	uint8_t *image; /* mmap'd, size bytes */
	size_t size;
	bool read_only;
};

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int firmware_check(const uint8_t *img, size_t size, char *err, size_t errlen)
{
	const uint8_t *rv = img + size - RESET_VECTOR;
	uint64_t fv_len;
	bool flat = true;

	if (size < FIRMWARE_MIN_SIZE || size > FIRMWARE_MAX_SIZE || size % 4096) {
		snprintf(
		    err, errlen,
		    "has %zu bytes; a firmware image is a 4 KiB multiple from 128 KiB to 16 MiB",
		    size);
		return -EINVAL;
	}
	fv_len = le(img + FV_LENGTH_OFF, 8);
	if (memcmp(img + FV_SIGNATURE_OFF, "_FVH", 4) || fv_len > size ||
	    le(img + FV_HDRLEN_OFF, 2) < 0x38 || le(img + FV_HDRLEN_OFF, 2) > fv_len) {
		snprintf(err, errlen, "does not start with a UEFI firmware volume");
		return -EINVAL;
	}
	for (int i = 1; i < RESET_VECTOR; i++)
		flat &= rv[i] == rv[0];
	if (flat) {
		snprintf(err, errlen, "has no code at the reset vector (a variable store alone?)");
		return -EINVAL;
	}
	return 0;
}

int firmware_load(struct firmware **out, const char *path, char *err, size_t errlen)
{
	char why[160];
	struct firmware *fw = NULL;
	struct stat st;
	size_t done = 0;
	int fd, ret;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open firmware '%s': %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "firmware '%s' is not a regular file", path);
		ret = -EINVAL;
		goto fail;
	}
	if (st.st_size < (off_t)FIRMWARE_MIN_SIZE || st.st_size > (off_t)FIRMWARE_MAX_SIZE) {
		snprintf(err, errlen,
			 "firmware '%s' has %lld bytes; a firmware image is a 4 KiB multiple "
			 "from 128 KiB to 16 MiB",
			 path, (long long)st.st_size);
		ret = -EINVAL;
		goto fail;
	}
	fw = calloc(1, sizeof(*fw));
	if (!fw) {
		ret = -ENOMEM;
		goto fail;
	}
	fw->size = st.st_size;
	fw->image =
	    mmap(NULL, fw->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fw->image == MAP_FAILED) {
		fw->image = NULL;
		ret = -ENOMEM;
		snprintf(err, errlen, "no memory for firmware '%s'", path);
		goto fail;
	}
	while (done < fw->size) {
		ssize_t n = read(fd, fw->image + done, fw->size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "cannot read firmware '%s': %s", path,
				 n < 0 ? strerror(errno) : "file shrank while being read");
			goto fail;
		}
		done += n;
	}
	ret = firmware_check(fw->image, fw->size, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "firmware '%s' %s", path, why);
		goto fail;
	}
	close(fd);
	*out = fw;
	return 0;
fail:
	close(fd);
	firmware_destroy(fw);
	return ret;
}

uint64_t firmware_gpa(const struct firmware *fw)
{
	return MEM_4G - fw->size;
}

int firmware_map(struct firmware *fw, struct vm *vm)
{
	int ret = vm_map_rom(vm, firmware_gpa(fw), fw->image, fw->size, &fw->read_only);

	if (!ret && fw->read_only)
		(void)mprotect(fw->image, fw->size, PROT_READ); /* nothing writes it any more */
	if (!ret)
		pr_info("fw", "firmware of %zu KiB at 0x%llx (%s)", fw->size >> 10,
			(unsigned long long)firmware_gpa(fw), fw->read_only ? "read-only" : "RAM");
	return ret;
}

void firmware_destroy(struct firmware *fw)
{
	if (!fw)
		return;
	if (fw->image)
		munmap(fw->image, fw->size);
	free(fw);
}
