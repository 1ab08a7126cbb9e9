# End-to-end suite (pytest): real guests booted by build/uvm-shim. All of
# tests/e2e runs inside one test-host boot, where /dev/kvm is real (here it
# is PVM, see docs/testing.md); tests/e2e/run-suite boots a fresh test host
# for the unfinished tests if the test host's kernel locks up (at most
# E2E_BOOTS boots). E2E_ARGS adds pytest arguments (e.g. E2E_ARGS='-k
# panic'). tests/kvm runs there too, on real (non-PVM) KVM.
# One boot's limit: the whole suite took 1,097 s on a quiet machine
# (2026-12-04, 128 passed, 3 skipped, one boot); 3,000 s leaves room for a
# loaded one.
E2E_TIMEOUT ?= 3000
E2E_BOOTS   ?= 3
E2E_ARGS    ?=
# A test whose failure message names an inner guest's triple fault runs once
# more, in the same boot: the test host's own reset of a booting inner guest
# (every register at its reset value; issue 18, docs/testing.md). pytest's
# summary counts it as a rerun; a second failure fails it.
E2E_RERUN   := $(shell /usr/bin/python3 -c 'import pytest_rerunfailures' 2>/dev/null && \
		echo '--reruns 1 --only-rerun guest.triple.fault')

.PHONY: e2e
e2e: $(BUILD)/uvm-shim $(BUILD)/asan/uvm-shim guest $(BUILD)/kvm/payload_bz.bin $(BUILD)/kvm/payload_pvh.elf
	@t0=$$(date +%s); \
	tests/e2e/run-suite --timeout $(E2E_TIMEOUT) --boots $(E2E_BOOTS) \
		--log-dir $(BUILD)/e2e --env UVM_SHIM=$(CURDIR)/$(BUILD)/asan/uvm-shim \
		-- -rs -v --durations=25 $(E2E_RERUN) tests/e2e tests/kvm $(E2E_ARGS); rc=$$?; \
	echo "e2e: test host boot + suite: $$(( $$(date +%s) - t0 )) s, status $$rc"; \
	exit $$rc

TEST_STEPS += e2e
TEST_BUILD += guest $(BUILD)/kvm/payload_bz.bin $(BUILD)/kvm/payload_pvh.elf $(BUILD)/e2e/hostile-initrd.img

# The hostile guest program (tests/e2e/test_hostile.py): static, appended to a
# copy of the default initrd as /bin/hostile (initramfs takes concatenated cpios).
$(BUILD)/e2e/hostile: tests/e2e/hostile/hostile.c
	@mkdir -p $(dir $@)
	$(CC) -D_GNU_SOURCE -std=gnu11 -O2 -static $(WARN) -o $@ $<

$(BUILD)/e2e/hostile-initrd.img: $(BUILD)/e2e/hostile $(BUILD)/guest/initrd.img
	@rm -rf $(BUILD)/e2e/hostile-root && mkdir -p $(BUILD)/e2e/hostile-root/bin
	cp $< $(BUILD)/e2e/hostile-root/bin/hostile
	(cd $(BUILD)/e2e/hostile-root && echo bin/hostile | cpio -o -H newc --quiet) > $@.extra
	cat $(BUILD)/guest/initrd.img $@.extra > $@
	rm -f $@.extra

e2e: $(BUILD)/e2e/hostile-initrd.img
