# `make bench-containerd`: `ctr run --rm /bin/true` wall time under Debian's containerd,
# io.containerd.uvm.v1 beside io.containerd.runc.v2, alternating in one test-host boot
# (median, ratio), and the shim daemon's memory outside guest RAM with one running task
# beside `uvm-shim run`'s own (tests/bench/containerd.py). Smallest smoke:
# BENCH_CONTAINERD_ARGS="--runs 2".
BENCH_CONTAINERD_ARGS ?=

.PHONY: bench-containerd
bench-containerd: $(BUILD)/uvm-shim $(BUILD)/kvm/payload_idle.elf guest
	@echo "bench-containerd: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --mem 3072 --timeout 3600 -- python3 tests/bench/containerd.py $(BENCH_CONTAINERD_ARGS)

BENCH_STEPS += bench-containerd
