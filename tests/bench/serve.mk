# `make bench` serve figures: GCS-ready time and vsock throughput, uvm-shim
# beside QEMU (vhost-vsock) inside one test-host boot (tests/bench/serve.py).
BENCH_SERVE_ARGS ?=

.PHONY: bench-serve
bench-serve: $(BUILD)/uvm-shim guest
	tests/testhost/run --timeout 2400 -- python3 tests/bench/serve.py $(BENCH_SERVE_ARGS)

BENCH_STEPS += bench-serve
