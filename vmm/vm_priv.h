/* Internals shared by vm.c, vcpu.c and the legacy devices. */
#ifndef VMM_VM_PRIV_H
#define VMM_VM_PRIV_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "exit_stats.h"
#include "vm.h"

#define VM_GSI_MAX     1024
#define VM_IOAPIC_PINS 24
/* Routing entries: PIC pins 0-15 but 2, every IOAPIC pin, one MSI per GSI above them. */
#define VM_ROUTES_MAX (15 + VM_IOAPIC_PINS + (VM_GSI_MAX - VM_IOAPIC_PINS))

/* A KVM call made on a thread of its own during setup, joined before the vCPUs run. */
struct vm_job {
	struct vm *vm;
	const char *name; /* the thread's name */
	int (*fn)(struct vm *vm);
	pthread_t thread;
	bool pending; /* started, not joined */
	int ret;
};

enum { VM_JOB_PIT, VM_JOB_RAM_SLOTS, VM_NR_JOBS };

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
};

struct vm {
	int kvm_fd, vm_fd;
	struct guest_mem *mem;
	struct mem_slots *slots; /* runtime slots (mem_slots.h) */
	struct bus *pio, *mmio;
	int nr_vcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct kvm_cpuid2 *cpuid;
	struct exit_stats *exits;
	struct timespec started_at; /* vm_start */

	/* Exit: the first reason wins; exit_fd becomes readable. */
	int exit_reason; /* enum vm_exit, atomic */
	bool acpi_pm_used; /* atomic: the guest drives the ACPI PM block */
	int exit_fd;

	/* Pause: vCPUs park while pause_req is set. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool pause_req;
	int parked;

	/* GSI routing: the irqchip pins plus MSI routes, room for routes_cap
	 * entries, grown as MSI vectors are set (up to VM_ROUTES_MAX). */
	pthread_mutex_t route_lock;
	struct kvm_irq_routing *routing;
	uint32_t routes_cap;
	unsigned char gsi_used[VM_GSI_MAX];

	/* KVM setup calls that mostly wait, each on a thread while setup goes on (vm.c). */
	struct vm_job jobs[VM_NR_JOBS];

	/* Runs on each vCPU thread before its first KVM_RUN (vm_set_vcpu_hook). */
	int (*vcpu_hook)(void *opaque, int id);
	void *vcpu_hook_opaque;
};

int cpuid_setup(struct vm *vm);
int cpuid_apply(struct vm *vm, struct vcpu *vcpu);
int vcpu_init(struct vm *vm, struct vcpu *vcpu, int id);
void vcpu_fini(struct vcpu *vcpu);
int vcpu_set_boot_regs(struct vcpu *vcpu, const struct boot_regs *regs);
void vcpu_kick(struct vcpu *vcpu);
void vcpu_dump(struct vcpu *vcpu);
void *vcpu_thread(void *arg);

#endif
