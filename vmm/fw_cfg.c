/*
 * fw_cfg: the item table, the byte-wide data port and DMA transfers
 * (facts from QEMU's docs/specs/fw_cfg.rst; nothing copied). A transfer
 * is bounded by its 32-bit length and each piece of guest memory is
 * reached through mem_read/mem_write, so a descriptor pointing past RAM or
 * wrapping around ends with the error bit, never outside the guest.
 */
#include "fw_cfg.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "mem.h"
#include "vm.h"

#define FW_CFG_FEATURES	 0x3 /* traditional interface and DMA */
#define FW_CFG_DIR_ENTRY 64  /* be32 size, be16 select, u16 reserved, name[56] */
#define FW_CFG_DMA_DESC	 16
#define FW_CFG_CHUNK	 4096

struct fw_cfg_item {
	uint16_t key;
	char name[FW_CFG_MAX_NAME]; /* files only */
	uint8_t *data;
	uint32_t len;
};

struct fw_cfg {
	struct guest_mem *mem;
	struct vm *vm; /* set by fw_cfg_attach */
	struct bus_region *sel_region, *dma_region;
	pthread_mutex_t lock;
	struct fw_cfg_item items[FW_CFG_MAX_ITEMS];
	int nr_items;
	uint16_t next_file_key;
	/* Guest-visible state. */
	uint16_t sel;
	uint32_t offset;
	uint8_t dma_addr[8]; /* big-endian, as written */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static struct fw_cfg_item *fw_cfg_find(struct fw_cfg *fc, uint16_t key)
{
	for (int i = 0; i < fc->nr_items; i++)
		if (fc->items[i].key == key)
			return &fc->items[i];
	return NULL;
}

/* Takes ownership of data (malloc'd) on success. */
static int fw_cfg_put(struct fw_cfg *fc, uint16_t key, const char *name, uint8_t *data,
		      uint32_t len)
{
	struct fw_cfg_item *it = fw_cfg_find(fc, key);

	if (!it) {
		if (fc->nr_items == FW_CFG_MAX_ITEMS)
			return -ENOSPC;
		it = &fc->items[fc->nr_items++];
		memset(it, 0, sizeof(*it));
		it->key = key;
	}
	free(it->data);
	it->data = data;
	it->len = len;
	if (name)
		snprintf(it->name, sizeof(it->name), "%s", name);
	return 0;
}

static int fw_cfg_copy_in(struct fw_cfg *fc, uint16_t key, const char *name, const void *data,
			  size_t len)
{
	uint8_t *copy;
	int ret;

	if (len > FW_CFG_MAX_BLOB || (len && !data))
		return len > FW_CFG_MAX_BLOB ? -E2BIG : -EINVAL;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	ret = fw_cfg_put(fc, key, name, copy, (uint32_t)len);
	if (ret)
		free(copy);
	return ret;
}

/* The directory: be32 count, then one entry per file, in the order they were added. */
static int fw_cfg_rebuild_dir(struct fw_cfg *fc)
{
	uint32_t n = 0;
	uint8_t *dir, *e;

	for (int i = 0; i < fc->nr_items; i++)
		n += fc->items[i].name[0] != 0;
	dir = calloc(1, 4 + (size_t)n * FW_CFG_DIR_ENTRY);
	if (!dir)
		return -ENOMEM;
	put_be32(dir, n);
	e = dir + 4;
	for (int i = 0; i < fc->nr_items; i++) {
		const struct fw_cfg_item *it = &fc->items[i];

		if (!it->name[0])
			continue;
		put_be32(e, it->len);
		e[4] = (uint8_t)(it->key >> 8);
		e[5] = (uint8_t)it->key;
		memcpy(e + 8, it->name, sizeof(it->name));
		e += FW_CFG_DIR_ENTRY;
	}
	if (fw_cfg_put(fc, FW_CFG_FILE_DIR, NULL, dir, 4 + n * FW_CFG_DIR_ENTRY)) {
		free(dir);
		return -ENOSPC;
	}
	return 0;
}

int fw_cfg_create(struct fw_cfg **out, struct guest_mem *mem)
{
	struct fw_cfg *fc;
	uint8_t id[4] = {FW_CFG_FEATURES, 0, 0, 0}; /* little-endian u32 */
	int ret;

	*out = NULL;
	if (!mem)
		return -EINVAL;
	fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	fc->mem = mem;
	fc->next_file_key = FW_CFG_FILE_FIRST;
	fc->sel = FW_CFG_INVALID;
	pthread_mutex_init(&fc->lock, NULL);
	ret = fw_cfg_copy_in(fc, FW_CFG_SIGNATURE, NULL, "QEMU", 4);
	if (!ret)
		ret = fw_cfg_copy_in(fc, FW_CFG_ID, NULL, id, sizeof(id));
	if (!ret)
		ret = fw_cfg_rebuild_dir(fc);
	if (ret) {
		fw_cfg_destroy(fc);
		return ret;
	}
	*out = fc;
	return 0;
}

void fw_cfg_destroy(struct fw_cfg *fc)
{
	if (!fc)
		return;
	if (fc->vm) {
		bus_unregister(vm_pio_bus(fc->vm), fc->sel_region);
		bus_unregister(vm_pio_bus(fc->vm), fc->dma_region);
	}
	for (int i = 0; i < fc->nr_items; i++)
		free(fc->items[i].data);
	pthread_mutex_destroy(&fc->lock);
	free(fc);
}

int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const void *data, size_t len)
{
	int ret;

	/* The directory and the files are managed here; the write channel is no key. */
	if (key == FW_CFG_FILE_DIR || key >= FW_CFG_FILE_FIRST || key & FW_CFG_WRITE_CHANNEL)
		return -EINVAL;
	pthread_mutex_lock(&fc->lock);
	ret = fw_cfg_copy_in(fc, key, NULL, data, len);
	pthread_mutex_unlock(&fc->lock);
	return ret;
}

int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, size_t len,
		    uint16_t *key)
{
	uint16_t k;
	int ret;

	if (!name || !name[0] || strnlen(name, FW_CFG_MAX_NAME) == FW_CFG_MAX_NAME)
		return -EINVAL;
	pthread_mutex_lock(&fc->lock);
	for (int i = 0; i < fc->nr_items; i++) {
		if (!strcmp(fc->items[i].name, name)) {
			pthread_mutex_unlock(&fc->lock);
			return -EEXIST;
		}
	}
	k = fc->next_file_key;
	ret = k >= FW_CFG_WRITE_CHANNEL ? -ENOSPC : fw_cfg_copy_in(fc, k, name, data, len);
	if (!ret) {
		fc->next_file_key++;
		ret = fw_cfg_rebuild_dir(fc);
	}
	pthread_mutex_unlock(&fc->lock);
	if (!ret && key)
		*key = k;
	return ret;
}

static void fw_cfg_select(struct fw_cfg *fc, uint16_t key)
{
	/* Data writes are not offered: the write-channel bit selects the same item. */
	fc->sel = key & (uint16_t)~FW_CFG_WRITE_CHANNEL;
	pr_dbg("fw_cfg", "select 0x%x%s", fc->sel, fw_cfg_find(fc, fc->sel) ? "" : " (absent)");
	fc->offset = 0;
}

static uint8_t fw_cfg_data_byte(struct fw_cfg *fc)
{
	const struct fw_cfg_item *it = fw_cfg_find(fc, fc->sel);

	if (!it || fc->offset >= it->len)
		return 0;
	return it->data[fc->offset++];
}

static int fw_cfg_zero_fill(struct fw_cfg *fc, uint64_t gpa, uint32_t len)
{
	static const uint8_t zeros[FW_CFG_CHUNK];

	while (len) {
		uint32_t n = len < FW_CFG_CHUNK ? len : FW_CFG_CHUNK;

		if (mem_write(fc->mem, gpa, zeros, n))
			return -EFAULT;
		gpa += n;
		len -= n;
	}
	return 0;
}

/* One transfer as the descriptor says; returns the control value to write back. */
static uint32_t fw_cfg_dma_run(struct fw_cfg *fc, uint32_t control, uint32_t length, uint64_t addr)
{
	const struct fw_cfg_item *it;
	uint32_t avail = 0, n;
	uint64_t end;

	if (control & FW_CFG_DMA_SELECT)
		fw_cfg_select(fc, (uint16_t)(control >> 16));
	if (control & FW_CFG_DMA_WRITE && !(control & FW_CFG_DMA_READ))
		return FW_CFG_DMA_ERROR; /* no item is writable */
	if (!(control & (FW_CFG_DMA_READ | FW_CFG_DMA_SKIP)))
		return 0;
	it = fw_cfg_find(fc, fc->sel);
	if (it && fc->offset < it->len)
		avail = it->len - fc->offset;
	n = length < avail ? length : avail;
	if (control & FW_CFG_DMA_READ) {
		/* The whole destination must be guest RAM (one region) and not wrap: all or
		 * nothing. */
		if (__builtin_add_overflow(addr, (uint64_t)length, &end) ||
		    (length && !gpa_to_hva(fc->mem, addr, length)))
			return FW_CFG_DMA_ERROR;
		if (n && mem_write(fc->mem, addr, it->data + fc->offset, n))
			return FW_CFG_DMA_ERROR;
		if (fw_cfg_zero_fill(fc, addr + n, length - n))
			return FW_CFG_DMA_ERROR;
	}
	fc->offset += n; /* never past the item's end */
	return 0;
}

static void fw_cfg_dma(struct fw_cfg *fc, uint64_t desc)
{
	uint8_t d[FW_CFG_DMA_DESC], done[4];
	uint32_t control;

	if (mem_read(fc->mem, desc, d, sizeof(d))) {
		log_ratelimited(LOG_WARN, "fw_cfg", "DMA descriptor at 0x%llx is not in guest RAM",
				(unsigned long long)desc);
		return;
	}
	control = fw_cfg_dma_run(fc, be32(d), be32(d + 4), be64(d + 8));
	if (control & FW_CFG_DMA_ERROR)
		log_ratelimited(LOG_WARN, "fw_cfg",
				"DMA transfer 0x%x of %u bytes to 0x%llx failed", be32(d),
				be32(d + 4), (unsigned long long)be64(d + 8));
	put_be32(done, control);
	(void)mem_write(fc->mem, desc, done, sizeof(done));
}

void fw_cfg_io(struct fw_cfg *fc, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	static const char sig[8] = FW_CFG_DMA_SIGNATURE;
	bool start_dma = false;
	uint64_t at;

	pthread_mutex_lock(&fc->lock);
	if (off == 0 && len == 2) {
		if (is_write)
			fw_cfg_select(fc, (uint16_t)(data[0] | data[1] << 8));
		else
			memset(data, 0, len);
		pthread_mutex_unlock(&fc->lock);
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		if (__builtin_add_overflow(off, i, &at))
			at = UINT64_MAX;
		if (at == 1) { /* the data port: reads stream the item, writes are ignored */
			if (!is_write)
				data[i] = fw_cfg_data_byte(fc);
		} else if (at >= 4 && at < 12) {
			if (!is_write) {
				data[i] = (uint8_t)sig[at - 4];
			} else {
				fc->dma_addr[at - 4] = data[i];
				start_dma |= at == 11; /* the low half's last byte */
			}
		} else if (!is_write) {
			data[i] = 0;
		}
	}
	if (start_dma) {
		uint64_t desc = be64(fc->dma_addr);

		memset(fc->dma_addr, 0, sizeof(fc->dma_addr));
		fw_cfg_dma(fc, desc);
	}
	pthread_mutex_unlock(&fc->lock);
}

static void fw_cfg_sel_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	fw_cfg_io(opaque, off, data, len, is_write);
}

static void fw_cfg_dma_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	uint64_t at;

	fw_cfg_io(opaque, __builtin_add_overflow(off, 4, &at) ? UINT64_MAX : at, data, len,
		  is_write);
}

int fw_cfg_attach(struct fw_cfg *fc, struct vm *vm)
{
	struct bus *pio = vm_pio_bus(vm);
	int ret;

	if (fc->vm)
		return -EBUSY;
	ret = bus_register(pio, FW_CFG_PORT_SEL, 2, fw_cfg_sel_access, fc, &fc->sel_region);
	if (ret)
		return ret;
	ret = bus_register(pio, FW_CFG_PORT_DMA, 8, fw_cfg_dma_access, fc, &fc->dma_region);
	if (ret) {
		bus_unregister(pio, fc->sel_region);
		fc->sel_region = NULL;
		return ret;
	}
	fc->vm = vm;
	return 0;
}
