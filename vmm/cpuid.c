/* CPUID: what KVM supports, filtered to what a simple VM should advertise. */
#include "vm_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm.h"
#include "log.h"

#define CPUID_MAX_ENTRIES 256

int cpuid_setup(struct vm *vm)
{
	struct kvm_cpuid2 *c;
	long ret;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	ret = kvm_ioctl_ptr(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c, NULL);
	if (ret < 0) {
		free(c);
		return ret;
	}
	/* KVM emulates the TSC-deadline timer but leaves advertising it to user space;
	 * without it Linux calibrates the LAPIC timer against the PIT, which fails
	 * under load and nesting and leaves the guest ticking on the PIT. */
	bool tsc_deadline =
	    kvm_ioctl_raw(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 0x1:
			/* Tell the guest it is virtualized. */
			e->ecx |= 1u << 31;
			if (tsc_deadline)
				e->ecx |= 1u << 24;
			break;
		case 0xa:
			/* No architectural PMU: the guest would otherwise program counters
			 * that the host may not offer. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		default:
			break;
		}
	}
	vm->cpuid = c;
	return 0;
}

/* Copies the VM's CPUID with this vCPU's topology ids filled in. */
int cpuid_apply(struct vm *vm, struct vcpu *vcpu)
{
	size_t size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, size);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 0x1:
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)vcpu->id << 24) |
				 ((uint32_t)vm->nr_vcpus << 16);
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the logical count above is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->id;
			break;
		default:
			break;
		}
	}
	ret = kvm_ioctl_ptr(vcpu->fd, KVM_SET_CPUID2, c, "(vCPU)");
	if (ret > 0)
		ret = 0;
	free(c);
	return ret;
}
