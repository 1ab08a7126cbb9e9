# `make bench` virtio-pmem figure: the same ~256 MiB read-only erofs layer as a
# pmem device mounted with DAX and as a virtio-blk disk, alternating runs in
# fresh `uvm-shim serve` VMs inside one test-host boot: time to read every file
# and the guest's page-cache growth (tests/bench/pmem.py).
BENCH_PMEM_ARGS ?=

.PHONY: bench-pmem
bench-pmem: $(BUILD)/uvm-shim guest
	@echo "bench-pmem: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --mem 3072 --timeout 3600 -- python3 tests/bench/pmem.py $(BENCH_PMEM_ARGS)

BENCH_STEPS += bench-pmem
