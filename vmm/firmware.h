/*
 * A UEFI firmware image (Debian's OVMF.fd) mapped read-only so that it ends at
 * 4 GiB, where the vCPU's reset vector (0xFFFFFFF0) points. OVMF.fd holds its
 * variable store too; finding it read-only (writes do not stick), OVMF keeps
 * its variables in RAM for the life of the VM.
 */
#ifndef VMM_FIRMWARE_H
#define VMM_FIRMWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FIRMWARE_MIN_SIZE (128u << 10)
#define FIRMWARE_MAX_SIZE (16u << 20) /* 0xFF000000 up to 4 GiB */

struct vm;
struct firmware;

/*
 * Checks an image as the parent gave it: a 4 KiB multiple in [128 KiB,
 * 16 MiB], a UEFI firmware volume ("_FVH" at 0x28, a header length inside the
 * file) at its start, and code at the reset vector (the last 16 bytes are not
 * all one byte: a variable store alone has none). -EINVAL with a reason.
 */
int firmware_check(const uint8_t *img, size_t size, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads and checks path. -errno with a sentence naming the file. */
int firmware_load(struct firmware **out, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Maps it at 4 GiB - size; the image must outlive the VM (destroy it after vm_destroy). */
int firmware_map(struct firmware *fw, struct vm *vm) __attribute__((warn_unused_result));
uint64_t firmware_gpa(const struct firmware *fw);
void firmware_destroy(struct firmware *fw);

#endif
