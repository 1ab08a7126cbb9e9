# `make bench` virtio-net figures: TCP throughput both ways (iperf3) and 1-byte
# round trips per second, uvm-shim on a tap vs Debian's QEMU virtio-net-pci on
# the same tap with vhost=off and vhost=on, inside one test-host boot
# (tests/bench/net.py). The guest is the default kernel with an initrd that
# also carries iperf3, its shared libraries and the guest script.
BENCH_NET_ARGS ?=
BENCH_NET_INITRD := $(BUILD)/bench/initrd-net.img

$(BENCH_NET_INITRD): $(GUEST)/kernel.path $(BUILD)/gcs/gcs configs/guest-modules.txt gcs/mkinitrd tests/bench/net-guest.sh
	@command -v iperf3 >/dev/null || { echo "bench-net: iperf3 is not installed (tests/install-deps)"; exit 1; }
	libs=$$(ldd "$$(command -v iperf3)" | awk '/=> \//{print $$3} /^\t\/lib/{print $$1}'); \
	files="--file $$(command -v iperf3):/bin/iperf3 --file tests/bench/net-guest.sh:/bench/net.sh"; \
	for l in $$libs; do files="$$files --file $$(readlink -f $$l):$$l"; done; \
	gcs/mkinitrd --kroot "$$(cat $(GUEST)/kernel.path)" --modules configs/guest-modules.txt \
		--init $(BUILD)/gcs/gcs --busybox $$files -o $@

.PHONY: bench-net
bench-net: $(BUILD)/uvm-shim guest $(BENCH_NET_INITRD)
	@echo "bench-net: machine load: $$(cut -d" " -f1-3 /proc/loadavg)"
	tests/testhost/run --mem 3072 --timeout 3600 -- python3 tests/bench/net.py \
		--initrd $(BENCH_NET_INITRD) $(BENCH_NET_ARGS)

BENCH_STEPS += bench-net
