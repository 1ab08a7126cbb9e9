# `make bench` boot figure: uvm-shim vs Debian's QEMU on the same guest,
# three runs each, inside one test-host boot (a real /dev/kvm; here it is PVM).
BENCH_BOOT_ARGS ?=

.PHONY: bench-boot
bench-boot: $(BUILD)/uvm-shim guest
	@echo "bench-boot: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --timeout 1800 -- python3 tests/bench/boot.py $(BENCH_BOOT_ARGS)

BENCH_STEPS += bench-boot
