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

struct machine_config {
	int cpus;
	uint64_t mem_mib;
	const char *kernel;
	const char *initrd;  /* may be NULL */
	const char *cmdline; /* the complete kernel command line */
	bool entry16;
	uart_out_fn console_out; /* on vCPU threads */
	void *console_opaque;
	struct machine_disk disks[MACHINE_MAX_DISKS];
	int nr_disks;
	struct machine_pmem pmems[MACHINE_MAX_PMEM]; /* virtio-pmem, 4 GiB each at most */
	int nr_pmems;
};

struct machine {
	struct vm *vm;
	struct loop *loop; /* borrowed: device I/O runs on it */
	struct uart *uart;
	struct i8042 *kbc;
	struct cmos *cmos;
	struct pci_bus *pci;
	struct virtio_dev *rng;
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
