# End-to-end suite (pytest): real guests booted by build/uvm-shim. All of
# tests/e2e runs inside ONE test-host boot, where /dev/kvm is real (here it
# is PVM, see docs/testing.md). E2E_ARGS adds pytest arguments
# (e.g. E2E_ARGS='-k panic'). tests/kvm runs there too, on real (non-PVM) KVM.
E2E_TIMEOUT ?= 1700
E2E_ARGS    ?=
E2E_PYTEST  := /usr/bin/python3 -m pytest -p no:cacheprovider -rs -v tests/e2e tests/kvm $(E2E_ARGS)

.PHONY: e2e
e2e: $(BUILD)/uvm-shim $(BUILD)/asan/uvm-shim guest $(BUILD)/kvm/payload_bz.bin $(BUILD)/kvm/payload_pvh.elf
	@t0=$$(date +%s); \
	tests/testhost/run --timeout $(E2E_TIMEOUT) --env UVM_SHIM=$(CURDIR)/$(BUILD)/asan/uvm-shim -- $(E2E_PYTEST); rc=$$?; \
	echo "e2e: test host boot + suite: $$(( $$(date +%s) - t0 )) s, status $$rc"; \
	exit $$rc

TEST_STEPS += e2e
