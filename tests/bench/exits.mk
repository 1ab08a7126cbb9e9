# `make bench-exits`: the default guest's boot counted in KVM exits by the test
# host's kernel (tracefs hist triggers: exit reason, exits to user space, I/O
# port, MMIO address, MSR) and its wall time, uvm-shim beside Debian's QEMU
# (-M microvm, -M pc) with the same kernel, initrd, vCPUs, memory and command
# line, alternating, medians (tests/bench/exits.py). Before/after a change:
# BENCH_EXITS_ARGS="--other-shim path/to/old/uvm-shim".
BENCH_EXITS_ARGS ?=

.PHONY: bench-exits
bench-exits: $(BUILD)/uvm-shim guest
	@echo "bench-exits: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --timeout 1800 -- python3 tests/bench/exits.py $(BENCH_EXITS_ARGS)
