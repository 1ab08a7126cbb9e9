/*
 * PCI host bridge on configuration mechanism 1 (0xCF8 address, 0xCFC-0xCFF
 * data), bus 0 only. Slot 0 is the host bridge; every other slot holds at
 * most one function (function 0) that a device embeds as struct pci_dev.
 *
 * The bridge owns config space semantics (write masks, RW1C status bits,
 * capability list, BAR sizing and placement, MSI-X) and keeps each BAR's
 * MMIO region registered on the bus exactly while the guest has memory
 * decoding enabled. Functions can be added and removed while vCPUs run.
 *
 * Locking: one bus lock serialises config space accesses, BAR moves and
 * hot-add/remove. BAR access callbacks run without it and must never take
 * it (a BAR move unregisters the region and waits for callbacks to leave).
 * MSI-X state has its own per-function lock.
 */
#ifndef VMM_PCI_H
#define VMM_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

#define PCI_NR_SLOTS 32
#define PCI_CFG_SIZE 256
#define PCI_NR_BARS  6
#define PCI_MSIX_MAX 64 /* vectors per function */

/* 32-bit MMIO window below the IOAPIC; the 64-bit window starts at mem_top(). */
#define PCI_MMIO32_START 0xC0000000ULL
#define PCI_MMIO32_END	 0xFEC00000ULL
#define PCI_MMIO64_SIZE	 (64ULL << 30)

/* Standard header offsets used by the bridge and by devices. */
#define PCI_VENDOR_ID	   0x00
#define PCI_DEVICE_ID	   0x02
#define PCI_COMMAND	   0x04
#define PCI_STATUS	   0x06
#define PCI_REVISION_ID	   0x08
#define PCI_CLASS_PROG	   0x09
#define PCI_CLASS_DEVICE   0x0a
#define PCI_HEADER_TYPE	   0x0e
#define PCI_BAR0	   0x10
#define PCI_SUBSYS_VENDOR  0x2c
#define PCI_SUBSYS_ID	   0x2e
#define PCI_ROM_ADDRESS	   0x30
#define PCI_CAP_PTR	   0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN  0x3d
#define PCI_CAP_START	   0x40

#define PCI_COMMAND_IO		 0x0001
#define PCI_COMMAND_MEMORY	 0x0002
#define PCI_COMMAND_MASTER	 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST	 0x0010

#define PCI_BAR_MEM_64	     0x04
#define PCI_BAR_MEM_PREFETCH 0x08

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* MSI-X capability (offsets inside it) and table layout. */
#define PCI_MSIX_FLAGS		    2
#define PCI_MSIX_FLAGS_ENABLE	    0x8000
#define PCI_MSIX_FLAGS_MASKALL	    0x4000
#define PCI_MSIX_TABLE		    4
#define PCI_MSIX_PBA		    8
#define PCI_MSIX_ENTRY_SIZE	    16
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 1
#define PCI_MSIX_PBA_OFFSET	    0x800 /* inside the MSI-X BAR */
#define PCI_MSIX_BAR_SIZE	    0x1000

struct pci_bus;
struct pci_dev;

/*
 * What the bridge needs from the hypervisor: MSI routes, irqfds and
 * ioeventfds. Production uses pci_host_ops_vm (over vm_*); unit tests fake it.
 */
struct pci_host_ops {
	int (*gsi_alloc)(void *opaque, uint32_t *gsi);
	void (*gsi_free)(void *opaque, uint32_t gsi);
	/* addr 0 disables the route. */
	int (*msi_route)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data);
	int (*irqfd)(void *opaque, int efd, uint32_t gsi, bool assign);
	/* MMIO ioeventfd without data match. */
	int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t len, int efd, bool assign);
	/* The guest asked for a system reset through port 0xCF9; optional. */
	void (*reset)(void *opaque);
};

struct vm;
extern const struct pci_host_ops pci_host_ops_vm; /* opaque is a struct vm * */

/* Hooks a device may give; all optional. Called with the bus lock held. */
struct pci_dev_ops {
	/* After the generic config write handling (masks already applied). */
	void (*config_write)(struct pci_dev *dev, uint32_t off, uint32_t len);
	/* Before a config read of [off, off+len): may refresh dev->cfg (windows onto a BAR). */
	void (*config_read)(struct pci_dev *dev, uint32_t off, uint32_t len);
	/* A BAR's region was just registered at addr (mapped) or removed (!mapped). */
	void (*bar_map)(struct pci_dev *dev, int bar, uint64_t addr, bool mapped);
};

struct pci_bar {
	uint64_t size;	     /* 0: unused; else a power of two >= 4096 */
	uint64_t alloc_addr; /* where the bridge placed it (kept reserved) */
	uint64_t addr;	     /* address the guest programmed */
	bool is64;
	bus_access_fn fn;
	void *opaque;
	struct bus_region *region; /* non-NULL while mapped */
};

struct pci_msix_vec {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl;
	int efd; /* -1 until first routed */
	uint32_t gsi;
	bool have_gsi;
	bool routed; /* route + irqfd installed for current addr/data */
};

struct pci_msix {
	pthread_mutex_t lock;
	int nr;
	int bar;
	uint8_t cap;	 /* config space offset of the capability */
	bool enabled;	 /* MSI-X enable bit */
	bool masked_all; /* function mask bit */
	uint64_t pba;	 /* pending bits, one per vector */
	struct pci_msix_vec vec[PCI_MSIX_MAX];
};

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];   /* bits the guest may write */
	uint8_t w1cmask[PCI_CFG_SIZE]; /* bits the guest clears by writing 1 */
	uint8_t cap_end;	       /* next free capability offset */
	uint8_t cap_last;	       /* offset of the last capability (0: none) */
	struct pci_bar bars[PCI_NR_BARS];
	const struct pci_dev_ops *ops;
	struct pci_bus *bus; /* set while added */
	int slot;
	struct pci_msix *msix; /* NULL unless pci_msix_init */
	const char *name;
};

/*
 * pio/mmio: the buses the bridge registers on; host/host_opaque: interrupt
 * backend; mmio64_start: first address of the 64-bit window (mem_top()).
 */
int pci_bus_create(struct pci_bus **out, struct bus *pio, struct bus *mmio, uint64_t mmio64_start,
		   const struct pci_host_ops *host, void *host_opaque)
    __attribute__((warn_unused_result));
/* Production: buses, memory top and interrupts of a KVM VM. */
int pci_bus_create_vm(struct pci_bus **out, struct vm *vm) __attribute__((warn_unused_result));
/* Removes every remaining function (without destroying them) and the ports. */
void pci_bus_destroy(struct pci_bus *pbus);

const struct pci_host_ops *pci_bus_host(struct pci_bus *pbus, void **opaque);

/*
 * Builds a type-0 header: ids, class (24 bits: class, subclass, prog-if),
 * revision. Call before adding BARs and capabilities.
 */
void pci_dev_init(struct pci_dev *dev, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops);
/* Memory BAR of size bytes (power of two, >= 4096); is64 uses two BAR slots. */
int pci_dev_set_bar(struct pci_dev *dev, int bar, uint64_t size, bool is64, bus_access_fn fn,
		    void *opaque) __attribute__((warn_unused_result));
/*
 * Appends a capability: data[0] must be the id, data[1] is overwritten with
 * the next pointer. wmask (same length, may be NULL) marks writable bits.
 * Returns the offset (>= 0x40) or -ENOSPC.
 */
int pci_cap_add(struct pci_dev *dev, const void *data, uint32_t len, const uint8_t *wmask)
    __attribute__((warn_unused_result));
/* MSI-X with nr vectors: table at offset 0, PBA at 0x800 of a 4 KiB BAR `bar`. */
int pci_msix_init(struct pci_dev *dev, int nr, int bar) __attribute__((warn_unused_result));
void pci_msix_cleanup(struct pci_dev *dev);

/*
 * Places the BARs, picks a free slot (slot < 0) or the given one, and makes
 * the function visible. Returns the slot or -errno.
 */
int pci_dev_add(struct pci_bus *pbus, struct pci_dev *dev, int slot)
    __attribute__((warn_unused_result));
/*
 * Hides the function, unregisters its regions (waiting for vCPUs inside
 * them), frees its BAR space and slot. The caller still owns dev.
 */
void pci_dev_remove(struct pci_dev *dev);

/* Raises MSI-X vector; masked vectors become pending. 0 or -errno. */
int pci_msix_notify(struct pci_dev *dev, int vector);
bool pci_msix_enabled(struct pci_dev *dev);

/* Config space access as the CPU sees it through 0xCF8/0xCFC (tests, firmware tables). */
uint32_t pci_config_read(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len);
void pci_config_write(struct pci_bus *pbus, int slot, uint32_t off, uint32_t len, uint32_t val);

/* Little-endian helpers over a byte array. */
static inline uint32_t pci_get_le(const uint8_t *p, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline void pci_put_le(uint8_t *p, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = v >> (8 * i);
}

#endif
