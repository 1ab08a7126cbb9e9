# libFuzzer targets: tests/fuzz/fuzz_<name>.c, each built with clang against
# every library object; `make fuzz-short` (part of make test) runs each briefly.
FUZZ_CC     := clang
FUZZ_FLAGS  := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_SECONDS ?= 10

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -MMD -MP,$(CFLAGS)) $(FUZZ_FLAGS) -c $< -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -MMD -MP,$(CFLAGS)) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

.PHONY: fuzz fuzz-build fuzz-short
fuzz-build: $(FUZZ_BINS)

# The long run: every target for FUZZ_RUNS executions (10M) or FUZZ_MAX_SECONDS
# (4 h), whichever ends first, on its kept corpus; prints executions and
# execs/s per target. A crash stops it with the reproducer's path: turn that
# input into a unit test.
FUZZ_RUNS	 ?= 10000000
FUZZ_MAX_SECONDS ?= 14400
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus/$$n $(BUILD)/fuzz/crashes; \
		$$f -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_MAX_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/crashes/$$n- $(BUILD)/fuzz/corpus/$$n \
			>$(BUILD)/fuzz/$$n.log 2>&1 || { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
		echo "$$n: $$(sed -n 's/^stat::number_of_executed_units: *//p' $(BUILD)/fuzz/$$n.log) executions, $$(sed -n 's/^stat::average_exec_per_sec: *//p' $(BUILD)/fuzz/$$n.log) execs/s"; \
	done

fuzz-short: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		mkdir -p $(BUILD)/fuzz/corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/corpus/$$(basename $$f) >$(BUILD)/fuzz/last.log 2>&1 \
			|| { tail -40 $(BUILD)/fuzz/last.log; exit 1; }; \
		echo "   $$(sed -n 's/^stat::number_of_executed_units: *//p' $(BUILD)/fuzz/last.log) executions, $$(sed -n 's/^stat::average_exec_per_sec: *//p' $(BUILD)/fuzz/last.log) execs/s"; \
	done

TEST_STEPS += fuzz-short
TEST_BUILD += $(FUZZ_BINS)
.SECONDARY: $(FUZZ_OBJS)
