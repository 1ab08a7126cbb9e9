# ThreadSanitizer build of the unit tests (`make tsan`): the library objects
# and every tests/unit/test_*.c built with -fsanitize=thread, run one by one.
# Tests that install seccomp filters (test_seccomp, test_p9_sandbox,
# test_task_sandbox) are left
# out: the TSan runtime makes calls no allowlist has; so are the stack dumps
# (test_stacks, test_gcs_stacks),
# whose capture runs in signal handlers that TSan reports on but does not
# model. Part of `make test`.
# Race harnesses for it: test_vsock_race (a vCPU resetting vsock through the
# PCI_CFG window against the loop's tx drain and endpoint callbacks; its
# teardown done in the callback instead of deferred is reported as a
# lock-order inversion).
TSAN	      := -fsanitize=thread -fno-omit-frame-pointer -Wno-error=tsan -Wno-tsan
TSAN_OBJS     := $(LIB_SRCS:%.c=$(BUILD)/tsan/obj/%.o)
TSAN_SKIP     := test_seccomp test_p9_sandbox test_task_sandbox test_stacks test_gcs_stacks
TSAN_BINS     := $(filter-out $(TSAN_SKIP:%=$(BUILD)/tsan/tests/%),$(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tsan/tests/%))

# Objects may include containerd's generated headers (Makefile: PROTO_GEN).
$(TSAN_OBJS): | $(PROTO_GEN:.c=.h)

$(BUILD)/tsan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-TSAN $<"
	@$(CC) $(CFLAGS) $(TSAN) -c $< -o $@

$(BUILD)/tsan/tests/%: tests/unit/%.c $(TSAN_OBJS)
	@mkdir -p $(dir $@)
	@echo "  TSAN    $@"
	@$(CC) $(CFLAGS) $(TSAN) -o $@ $< $(TSAN_OBJS) -lcmocka $(LDLIBS)

.PHONY: tsan
tsan: $(TSAN_BINS)
	@set -e; for t in $(TSAN_BINS); do echo "== $$t"; \
		TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $$t; done

TEST_STEPS += tsan
TEST_BUILD += $(TSAN_BINS)
.SECONDARY: $(TSAN_OBJS)
