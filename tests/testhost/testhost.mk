# `make run`: build everything and boot the default guest with a demo
# command. On a PVM /dev/kvm (stock kernels do not boot there) the demo runs
# inside the test host instead, and says so.
RUN_DEMO ?= uname -a; echo vCPUs: $$(grep -c ^processor /proc/cpuinfo); head -1 /proc/meminfo

.PHONY: run testhost-check
run: $(BUILD)/uvm-shim guest
	@if [ -d /sys/module/kvm_pvm ] || [ ! -e /dev/kvm ]; then \
		echo "run: /dev/kvm here is PVM or absent: stock kernels cannot boot on it;"; \
		echo "run: running the demo inside the nested-KVM test host (tests/testhost/run)"; \
		tests/testhost/run -- $(BUILD)/uvm-shim run --cpus 2 -- sh -c '$(RUN_DEMO)'; \
	else \
		$(BUILD)/uvm-shim run --cpus 2 -- sh -c '$(RUN_DEMO)'; \
	fi

# The harness itself: output, exit status and the writable export.
testhost-check:
	tests/testhost/selftest

TEST_STEPS += testhost-check
