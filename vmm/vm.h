/* A KVM virtual machine: vCPUs, memory, buses, interrupts. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"
#include "bus.h"
#include "mem.h"

#define VM_MAX_VCPUS 64
#define VM_MIN_MEM_MIB 16
#define VM_MAX_MEM_MIB (1024ULL * 1024) /* 1 TiB */

/* Fixed legacy interrupt lines (IOAPIC pins). */
#define VM_IRQ_UART 4

/* Why the guest stopped. */
enum vm_exit {
	VM_EXIT_NONE,
	VM_EXIT_RESET,	      /* guest reboot (i8042 reset, triple fault on reset path) */
	VM_EXIT_POWEROFF,     /* guest powered off (ACPI-less: KVM_EXIT_SHUTDOWN after halt) */
	VM_EXIT_TRIPLE_FAULT, /* shutdown exit not caused by a requested reset */
	VM_EXIT_PANIC,	      /* guest kernel panic seen on the console */
	VM_EXIT_ERROR,	      /* VMM or KVM failure (internal error, failed entry) */
	VM_EXIT_TERMINATED,   /* stopped by the host */
};

struct vm_config {
	int nr_cpus;
	uint64_t mem_mib;
};

struct mem_slots;
struct vcpu;
struct vm;

int vm_create(struct vm **out, const struct vm_config *cfg) __attribute__((warn_unused_result));
/* With UVM_LOG=debug, logs the VM's exits to user space (vmm/exit_stats.h) first. */
void vm_destroy(struct vm *vm);

struct guest_mem *vm_mem(struct vm *vm);
/* Guest memory added at runtime (vmm/mem_slots.h). */
struct mem_slots *vm_mem_slots(struct vm *vm);
struct bus *vm_pio_bus(struct vm *vm);
struct bus *vm_mmio_bus(struct vm *vm);
int vm_fd(struct vm *vm);
int vm_nr_cpus(struct vm *vm);

/*
 * Maps size bytes at hva (page-aligned, living until vm_destroy) at gpa as a
 * KVM slot, read-only when KVM offers it (*read_only says): guest writes then
 * exit as MMIO and are dropped. One such slot per VM (the firmware).
 */
int vm_map_rom(struct vm *vm, uint64_t gpa, void *hva, uint64_t size, bool *read_only)
	__attribute__((warn_unused_result));

/* Applies the loader's register state to vCPU 0 (others wait for INIT/SIPI). */
int vm_set_boot_regs(struct vm *vm, const struct boot_regs *regs)
	__attribute__((warn_unused_result));

/*
 * fn runs on each vCPU thread right before its first KVM_RUN (the shim
 * installs the thread's seccomp filter there); an error ends the VM with
 * VM_EXIT_ERROR. Set before vm_start.
 */
void vm_set_vcpu_hook(struct vm *vm, int (*fn)(void *opaque, int id), void *opaque);

/* Starts one thread per vCPU. */
int vm_start(struct vm *vm) __attribute__((warn_unused_result));
/* Pause/resume all vCPUs (kick out of KVM_RUN, wait until all are parked). */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
/* Records why the VM ends and kicks every vCPU out; the first reason wins. */
void vm_request_exit(struct vm *vm, enum vm_exit why);
/* eventfd readable once the VM has stopped running (any vm_exit). */
int vm_exit_fd(struct vm *vm);
enum vm_exit vm_exit_reason(struct vm *vm);
/*
 * The guest has written the ACPI PM block (vmm/acpi_pm.c): its power-off
 * will come as an S5 write there, so the console's "Power down" line (the
 * fallback for guests without ACPI) must not end the VM before it.
 */
void vm_note_acpi_pm_used(struct vm *vm);
bool vm_acpi_pm_used(struct vm *vm);
const char *vm_exit_name(enum vm_exit why);
/* Joins the vCPU threads; call after vm_request_exit. */
void vm_join(struct vm *vm);

/* Interrupts. */
int vm_irq_line(struct vm *vm, uint32_t gsi, bool level);
/* Allocates a GSI number above the IOAPIC pins for an MSI route. */
int vm_msi_gsi_alloc(struct vm *vm, uint32_t *gsi);
void vm_msi_gsi_free(struct vm *vm, uint32_t gsi);
/* Sets (or with addr 0, masks off) the MSI message for gsi and commits the routing table. */
int vm_msi_route_set(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data);
int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign);
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int efd, bool pio, bool assign);

#endif
