# test_legacy and fuzz_legacy run the legacy devices on a struct vm without
# KVM (tests/unit/fake_vm.h): their interrupt lines go to a recording stand-in.
LEGACY_TEST_BINS := $(BUILD)/asan/tests/test_legacy $(BUILD)/tsan/tests/test_legacy \
		    $(BUILD)/fuzz/fuzz_legacy
$(LEGACY_TEST_BINS): LDLIBS += -Wl,--wrap=vm_irq_line
