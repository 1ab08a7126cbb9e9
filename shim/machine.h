/*
 * A whole machine: the VM, its legacy devices, the PCI bus with the virtio
 * devices, and the kernel loaded. Shared by `run` and `serve`.
 */
#ifndef SHIM_MACHINE_H
#define SHIM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/legacy.h"

#define MACHINE_MAX_DISKS 32
#define MACHINE_MAX_PMEM  16

/*
 * The kernel command line every guest starts from, `run` and `serve` alike.
 * `quiet`: every console byte is a VM exit. (The benchmarks in tests/bench read it here.)
 */
#define MACHINE_BASE_CMDLINE                                                                       \
	"console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"

/* Where the default guest lives: $UVM_GUEST_DIR, else build/guest beside the binary; or NULL. */
const char *machine_guest_dir(void);
/*
 * The default guest's files in dir: the ELF vmlinux (PVH entry, no XZ to
 * undo) when `make guest` left one, else the bzImage; and initrd.img.
 * Returns -ENOENT when either is missing (the buffers hold the paths tried).
 */
int machine_default_guest(const char *dir, char *kernel, size_t klen, char *initrd, size_t ilen);
/* The same for UEFI boot: the bzImage (its EFI stub is what the firmware starts). */
int machine_default_guest_efi(const char *dir, char *kernel, size_t klen, char *initrd,
			      size_t ilen);
/*
 * The whole command line: the base, then extra, then (agent) the word that
 * starts the guest agent's bridge ("-- /init bridge"). -E2BIG when it would
 * not fit cap or the boot protocol's limit.
 */
int machine_cmdline(char *out, size_t cap, const char *extra, bool agent);

struct boot_acpi;
struct guest_mem;
/* What the ACPI tables say about the platform vmm/ builds: PM block, SCI, PCI windows, reset port.
 */
void machine_acpi_config(struct boot_acpi *acpi, const struct guest_mem *mem);

struct io_threads;
struct loop;
struct vm;
struct pci_bus;

struct machine_disk {
	const char *path;
	bool read_only;
	const char *serial;
};

struct machine_pmem {
	const char *path;
	bool read_only;
};

struct machine_uefi;

struct machine_config {
	int cpus;
	uint64_t mem_mib;
	const char *kernel;
	const char *initrd;  /* may be NULL */
	const char *cmdline; /* the complete kernel command line */
	bool entry16;
	/*
	 * UEFI boot: the firmware image (OVMF.fd); kernel (a bzImage with an EFI
	 * stub), initrd and cmdline then go to the firmware through fw_cfg.
	 */
	const char *firmware;
	uart_out_fn console_out; /* on vCPU threads */
	void *console_opaque;
	struct machine_disk disks[MACHINE_MAX_DISKS];
	int nr_disks;
	struct machine_pmem pmems[MACHINE_MAX_PMEM]; /* virtio-pmem, 4 GiB each at most */
	int nr_pmems;
	/*
	 * I/O threads (1..IO_THREADS_MAX; 0 means MACHINE_IO_THREADS_DEFAULT) for
	 * the devices' queue work: virtio-blk, virtio-pmem, virtio-net (and its
	 * backend) and 9p's kicks, cold and hot-added: each device gets the least
	 * busy thread, one of its own while one is idle (io_threads_pick). It
	 * then never waits behind the control protocol, vsock or another device.
	 * `run --io-threads`, `vm.create`'s `io_threads`.
	 */
	int io_threads;
};

/* A disk, a NIC, a share and one hot-added device each on a thread of their own. */
#define MACHINE_IO_THREADS_DEFAULT 4

struct machine {
	struct vm *vm;
	struct loop *loop;     /* borrowed: the control loop (rng, timers) */
	struct io_threads *io; /* the devices' loops: blk, pmem, net, 9p (vmm/io_thread.h) */
	struct uart *uart;
	struct i8042 *kbc;
	struct cmos *cmos;
	struct acpi_pm *acpi_pm;
	struct pci_bus *pci;
	struct virtio_dev *rng;
	struct machine_uefi *uefi; /* UEFI boot only (shim/machine_uefi.c) */
	struct virtio_dev *disks[MACHINE_MAX_DISKS];
	int nr_disks;
	struct virtio_dev *pmems[MACHINE_MAX_PMEM];
	int nr_pmems;
};

/*
 * Builds the machine and loads the kernel. On failure returns -errno with a
 * sentence in err; a usage problem (bad kernel file) is -EINVAL/-ENOENT/-ENOEXEC.
 */
int machine_create(struct machine **out, const struct machine_config *cfg, struct loop *loop,
		   char *err, size_t errlen) __attribute__((warn_unused_result));
/* Starts the vCPUs. */
int machine_start(struct machine *m) __attribute__((warn_unused_result));
/* Ends the VM (if still running), joins the vCPUs and frees everything. NULL is a no-op. */
void machine_destroy(struct machine *m);

#endif
