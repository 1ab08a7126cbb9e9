# `make bench-overhead`: per-VM overhead, uvm-shim beside Debian's QEMU (-M microvm,
# -M pc) in one run (tests/bench/overhead.py): exec -> first KVM_RUN (wall and CPU)
# and idle memory outside guest RAM, here on any /dev/kvm (PVM included). The
# boot-to-init part needs the test host:
#   tests/testhost/run -- python3 tests/bench/overhead.py --mode boot
BENCH_OVERHEAD_ARGS ?=

$(BUILD)/bench/overhead_preload.so: tests/bench/overhead_preload.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

.PHONY: bench-overhead
bench-overhead: $(BUILD)/uvm-shim $(BUILD)/bench/overhead_preload.so $(BUILD)/kvm/payload_idle.elf
	@echo "bench-overhead: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	python3 tests/bench/overhead.py $(BENCH_OVERHEAD_ARGS)

BENCH_STEPS += bench-overhead
