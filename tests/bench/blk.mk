# `make bench` virtio-blk figure: 4 KiB random reads (fio, O_DIRECT, libaio,
# queue depth 32) on a 1 GiB disk, uvm-shim vs Debian's QEMU virtio-blk-pci on
# the same file, inside one test-host boot. The guest is the default kernel
# with an initrd that also carries fio and its shared libraries.
BENCH_BLK_ARGS ?=
BENCH_FIO_INITRD := $(BUILD)/bench/initrd-fio.img

$(BENCH_FIO_INITRD): $(GUEST)/kernel.path $(BUILD)/gcs/gcs configs/guest-modules.txt gcs/mkinitrd
	@command -v fio >/dev/null || { echo "bench-blk: fio is not installed (tests/install-deps)"; exit 1; }
	libs=$$(ldd "$$(command -v fio)" | awk '/=> \//{print $$3} /^\t\/lib/{print $$1}'); \
	files="--file $$(command -v fio):/bin/fio"; \
	for l in $$libs; do files="$$files --file $$(readlink -f $$l):$$l"; done; \
	gcs/mkinitrd --kroot "$$(cat $(GUEST)/kernel.path)" --modules configs/guest-modules.txt \
		--init $(BUILD)/gcs/gcs --busybox $$files -o $@

.PHONY: bench-blk
bench-blk: $(BUILD)/uvm-shim guest $(BENCH_FIO_INITRD)
	tests/testhost/run --mem 3072 --timeout 1800 -- python3 tests/bench/blk.py \
		--initrd $(BENCH_FIO_INITRD) $(BENCH_BLK_ARGS)

BENCH_STEPS += bench-blk
