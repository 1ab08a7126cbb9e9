/* The PCI bridge's interrupt and ioeventfd backend on a KVM VM (vm_*). */
#include "pci.h"

#include "vm.h"

static int vm_gsi_alloc(void *opaque, uint32_t *gsi)
{
	return vm_msi_gsi_alloc(opaque, gsi);
}

static void vm_gsi_free(void *opaque, uint32_t gsi)
{
	vm_msi_gsi_free(opaque, gsi);
}

static int vm_msi_route(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return vm_msi_route_set(opaque, gsi, addr, data);
}

static int vm_irqfd_op(void *opaque, int efd, uint32_t gsi, bool assign)
{
	return vm_irqfd(opaque, efd, gsi, assign);
}

static int vm_ioeventfd_op(void *opaque, uint64_t addr, uint32_t len, int efd, bool assign)
{
	return vm_ioeventfd(opaque, addr, len, efd, false, assign);
}

static void vm_reset_op(void *opaque)
{
	vm_request_exit(opaque, VM_EXIT_RESET);
}

const struct pci_host_ops pci_host_ops_vm = {
    .gsi_alloc = vm_gsi_alloc,
    .gsi_free = vm_gsi_free,
    .msi_route = vm_msi_route,
    .irqfd = vm_irqfd_op,
    .ioeventfd = vm_ioeventfd_op,
    .reset = vm_reset_op,
};

int pci_bus_create_vm(struct pci_bus **out, struct vm *vm)
{
	return pci_bus_create(out, vm_pio_bus(vm), vm_mmio_bus(vm), mem_top(vm_mem(vm)),
			      &pci_host_ops_vm, vm);
}
