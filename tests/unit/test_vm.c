/*
 * vmm/vm.c on /dev/kvm (PVM is fine: no guest code runs): the GSI routing
 * table holds every MSI route the allocator can hand out. Skips without KVM.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vm.h"

/*
 * Issue 9, defect 5: the table was sized for VM_GSI_MAX entries while the
 * irqchip routes plus one MSI route per allocatable GSI need 15 more; with
 * about 985 vectors routed the next route was written past it (ASan).
 */
static void test_every_msi_gsi_routed(void **state)
{
	struct vm_config cfg = {.nr_cpus = 1, .mem_mib = 16};
	struct vm *vm;
	uint32_t gsi;
	int n = 0, ret;

	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: no usable /dev/kvm\n");
		skip();
	}
	ret = vm_create(&vm, &cfg);
	if (ret) {
		printf("SKIP: vm_create: %d\n", ret);
		skip();
	}
	while (vm_msi_gsi_alloc(vm, &gsi) == 0) {
		ret = vm_msi_route_set(vm, gsi, 0xfee00000, 0x4000 | (n & 0xff));
		if (ret == -ENOSPC || ret == -EINVAL)
			fail_msg("route %d (gsi %u): %d", n, gsi, ret);
		/* KVM's own limit (KVM_MAX_IRQ_ROUTES) is 4096 on x86: every one fits. */
		assert_int_equal(ret, 0);
		n++;
	}
	assert_true(n > 985);
	/* Re-routing and dropping keep working at the top. */
	assert_int_equal(vm_msi_route_set(vm, gsi - 1, 0xfee01000, 0x4001), 0);
	vm_msi_gsi_free(vm, gsi - 1);
	assert_int_equal(vm_msi_gsi_alloc(vm, &gsi), 0);
	assert_int_equal(vm_msi_route_set(vm, gsi, 0xfee00000, 0x4002), 0);
	vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_msi_gsi_routed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
