/*
 * A struct vm without KVM for the legacy devices' tests (test_legacy.c,
 * fuzz_legacy.c): a PIO bus, guest memory and the exit state, nothing else.
 * vm_irq_line is replaced at link time (-Wl,--wrap=vm_irq_line, set for
 * these targets in tests/unit/legacy.mk): the wrapper records each line's
 * level instead of calling KVM.
 */
#ifndef TESTS_UNIT_FAKE_VM_H
#define TESTS_UNIT_FAKE_VM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "vmm/bus.h"
#include "vmm/mem.h"
#include "vmm/vm_priv.h"

#define FAKE_VM_IRQS 24

static bool fake_irq_level[FAKE_VM_IRQS];
static unsigned fake_irq_changes;

int __wrap_vm_irq_line(struct vm *vm, uint32_t gsi, bool level);
int __wrap_vm_irq_line(struct vm *vm, uint32_t gsi, bool level)
{
	(void)vm;
	if (gsi >= FAKE_VM_IRQS)
		return -EINVAL;
	fake_irq_level[gsi] = level;
	fake_irq_changes++;
	return 0;
}

static inline struct vm *fake_vm_create(uint64_t ram_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = -1;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	if (bus_create(&vm->pio, "pio") || mem_create(&vm->mem, ram_size)) {
		free(vm);
		return NULL;
	}
	for (int i = 0; i < FAKE_VM_IRQS; i++)
		fake_irq_level[i] = false;
	fake_irq_changes = 0;
	return vm;
}

static inline enum vm_exit fake_vm_exit_reason(struct vm *vm)
{
	return (enum vm_exit)__atomic_load_n(&vm->exit_reason, __ATOMIC_SEQ_CST);
}

static inline void fake_vm_destroy(struct vm *vm)
{
	mem_destroy(vm->mem);
	bus_destroy(vm->pio);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	free(vm);
}

#endif
