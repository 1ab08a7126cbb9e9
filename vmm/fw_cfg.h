/*
 * QEMU's firmware configuration interface (fw_cfg), the way OVMF and Linux
 * probe it on x86: a 16-bit selector at 0x510, a byte-wide data port at
 * 0x511 and the DMA address register at 0x514 (8 bytes, big-endian: writing
 * its low half at 0x518 starts the transfer). Items are blobs under a 16-bit
 * key; files get keys from 0x20 and are listed in the directory item 0x19.
 * Everything the guest sends is hostile: DMA descriptors are read and
 * written through vmm/'s checked guest-memory calls only.
 */
#ifndef VMM_FW_CFG_H
#define VMM_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct guest_mem;
struct fw_cfg;

#define FW_CFG_PORT_SEL	 0x510 /* selector (2 bytes) and data (0x511, 1 byte) */
#define FW_CFG_PORT_DMA	 0x514 /* DMA address, high half 0x514, low half 0x518 */
#define FW_CFG_MAX_ITEMS 64
#define FW_CFG_MAX_NAME	 56	    /* file names, NUL included */
#define FW_CFG_MAX_BLOB	 (1u << 30) /* sizes are 32 bits on the wire; 1 GiB is plenty */

/* Well-known keys. */
#define FW_CFG_SIGNATURE     0x0000 /* "QEMU" */
#define FW_CFG_ID	     0x0001 /* feature bits: 1 traditional, 2 DMA */
#define FW_CFG_RAM_SIZE	     0x0003
#define FW_CFG_NB_CPUS	     0x0005
#define FW_CFG_FILE_DIR	     0x0019
#define FW_CFG_FILE_FIRST    0x0020
#define FW_CFG_WRITE_CHANNEL 0x4000
#define FW_CFG_INVALID	     0xffff

/* DMA control bits (the descriptor is {be32 control, be32 length, be64 address}). */
#define FW_CFG_DMA_ERROR     0x01
#define FW_CFG_DMA_READ	     0x02
#define FW_CFG_DMA_SKIP	     0x04
#define FW_CFG_DMA_SELECT    0x08
#define FW_CFG_DMA_WRITE     0x10
#define FW_CFG_DMA_SIGNATURE "QEMU CFG" /* what the 8 bytes at 0x514 read as */

/* An interface with the signature, the feature bits and an empty directory; mem is borrowed. */
int fw_cfg_create(struct fw_cfg **out, struct guest_mem *mem) __attribute__((warn_unused_result));
/* Detaches from the bus (if attached) and frees every item. Accepts NULL. */
void fw_cfg_destroy(struct fw_cfg *fc);

/* Adds (or replaces) the item key with a copy of data. -EINVAL, -E2BIG, -ENOSPC, -ENOMEM. */
int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const void *data, size_t len)
    __attribute__((warn_unused_result));
/* Adds a file (a copy of data) under the next free key, listed in the directory. -EEXIST on a name
 * clash. */
int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, size_t len,
		    uint16_t *key) __attribute__((warn_unused_result));

/*
 * A guest access at off from FW_CFG_PORT_SEL: 0-1 selector/data, 4-11 the
 * DMA register. Any width is accepted; what does not fit the registers is
 * ignored (reads give 0).
 */
void fw_cfg_io(struct fw_cfg *fc, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/* Puts the ports on vm's PIO bus. */
int fw_cfg_attach(struct fw_cfg *fc, struct vm *vm) __attribute__((warn_unused_result));

#endif
