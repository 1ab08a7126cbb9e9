# tests/kvm: tiny guest payloads booted by build/uvm-shim on this host's /dev/kvm.
KVM_PAYLOADS := $(BUILD)/kvm/payload_bz.bin $(BUILD)/kvm/payload_pvh.elf $(BUILD)/kvm/payload_idle.elf

$(BUILD)/kvm/payload_bz.bin: tests/kvm/payload_bz.S
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $(BUILD)/kvm/payload_bz.o
	ld -Ttext=0 --oformat=binary -e _start $(BUILD)/kvm/payload_bz.o -o $@

$(BUILD)/kvm/payload_pvh.elf: tests/kvm/payload_pvh.S tests/kvm/pvh.ld
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $(BUILD)/kvm/payload_pvh.o
	ld -T tests/kvm/pvh.ld -nostdlib --no-warn-rwx-segments $(BUILD)/kvm/payload_pvh.o -o $@

# The same with -DPAYLOAD_IDLE: it halts after its long-mode line (tests/bench/overhead.py).
$(BUILD)/kvm/payload_idle.elf: tests/kvm/payload_pvh.S tests/kvm/pvh.ld
	@mkdir -p $(dir $@)
	$(CC) -DPAYLOAD_IDLE -c $< -o $(BUILD)/kvm/payload_idle.o
	ld -T tests/kvm/pvh.ld -nostdlib --no-warn-rwx-segments $(BUILD)/kvm/payload_idle.o -o $@

.PHONY: kvm-test
kvm-test: $(BUILD)/asan/uvm-shim $(KVM_PAYLOADS)
	UVM_SHIM=$(BUILD)/asan/uvm-shim UVM_KVM_PAYLOADS=$(BUILD)/kvm \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/kvm

TEST_STEPS += kvm-test
