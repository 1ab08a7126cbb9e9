# `make bench` virtio-9p figure: sequential write and read of a 256 MiB file
# and 2,000 x (create + stat + unlink) on a share, uvm-shim (`run --share`)
# beside Debian's QEMU (-virtfs, security_model=passthrough) on the same
# directory, alternating runs inside one test-host boot (tests/bench/p9.py).
BENCH_9P_ARGS ?=

.PHONY: bench-9p
bench-9p: $(BUILD)/uvm-shim guest
	@echo "bench-9p: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --mem 3072 --timeout 3600 -- python3 tests/bench/p9.py $(BENCH_9P_ARGS)

BENCH_STEPS += bench-9p
