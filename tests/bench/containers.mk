# `make bench` container figure: create + start + exit of /bin/true in a
# container on a VPMem layer, beside a plain guest.exec of /bin/true in the
# same VM (median, p95), and the guest memory per extra idle container
# (tests/bench/containers.py); beside it, alternating, the same runs in a VM
# whose crun loads Debian's libsystemd instead of the guest's stand-in
# (gcs/stub/libsystemd.c). Smallest smoke: BENCH_CONTAINERS_ARGS="--runs 1 --idle 1".
BENCH_CONTAINERS_ARGS ?=

.PHONY: bench-containers
bench-containers: $(BUILD)/uvm-shim guest $(GUEST)/initrd-libsystemd.img
	@echo "bench-containers: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --mem 3072 --timeout 3600 -- python3 tests/bench/containers.py \
		--compare-initrd $(GUEST)/initrd-libsystemd.img $(BENCH_CONTAINERS_ARGS)

BENCH_STEPS += bench-containers
