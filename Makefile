# uvm-shim build. Fragments in sub-folders (*.mk) add their own targets and
# append to TEST_STEPS / BENCH_STEPS; this file owns the product build.

CC	?= gcc
BUILD	:= build
WARN	:= -Wall -Wextra -Werror -Wimplicit-fallthrough -Wformat=2 -Wno-unused-parameter
CFLAGS	:= -std=gnu11 -O2 -g -D_GNU_SOURCE -pthread -I. -I$(BUILD)/gen $(WARN) -MMD -MP
ASAN	:= -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS	:= -pthread -lcjson -lseccomp -lcap-ng -luuid -luring -lunwind -lunwind-x86_64 -lprotobuf-c

LIB_DIRS := vmm virtio boot seccomp shim
LIB_SRCS := $(filter-out shim/main.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
# The bridge codec (gcs/protocol.h), the socket connect (gcs/sock.h) and the
# stack capture (gcs/stacks_core.h) are compiled into both the shim and the GCS.
LIB_SRCS += gcs/bridge_codec.c gcs/sock.c gcs/stacks_core.c
# MAC and prefix parsing (gcs/net_addr.h): the shim checks nic.* parameters, the GCS applies them.
LIB_SRCS += gcs/net_addr.c
# containerd's messages (shim/proto/*.proto, docs/containerd.md): C generated
# by Debian's protoc-c at build time into $(BUILD)/gen, never committed.
PROTO_SRCS := $(wildcard shim/proto/*.proto)
PROTO_GEN := $(PROTO_SRCS:%.proto=$(BUILD)/gen/%.pb-c.c)
LIB_SRCS += $(PROTO_GEN)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
ASAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/asan/obj/%.o)

TEST_STEPS :=
BENCH_STEPS :=
# What the TEST_STEPS need built: made first, in parallel, by `make test`
# (the steps themselves then run one at a time). Fragments append theirs.
TEST_BUILD = $(UNIT_BINS) $(BUILD)/uvm-shim $(BUILD)/asan/uvm-shim

.PHONY: all test unit bench clean format deps
all: $(BUILD)/uvm-shim

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	@protoc-c --c_out=$(BUILD)/gen -I. $<
# Every object may include a generated header: generate them first.
$(LIB_OBJS) $(ASAN_OBJS) $(BUILD)/obj/shim/main.o $(BUILD)/asan/obj/shim/main.o \
	$(LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o): | $(PROTO_GEN:.c=.h)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-ASAN $<"
	@$(CC) $(CFLAGS) $(ASAN) -c $< -o $@

$(BUILD)/uvm-shim: $(BUILD)/obj/shim/main.o $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/uvm-shim: $(BUILD)/asan/obj/shim/main.o $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(ASAN) -o $@ $^ $(LDLIBS)

# Unit tests: tests/unit/test_<module>.c, each linked with every library object.
# Only the test's own .c and the objects: the .d of a test that #includes a .c
# (test_gcs_stacks) names that .c as a prerequisite, which must not be linked twice.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/asan/tests/%)

$(BUILD)/asan/tests/%: tests/unit/%.c $(ASAN_OBJS)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS) $(ASAN) -o $@ $< $(ASAN_OBJS) -lcmocka $(LDLIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

-include $(sort $(wildcard */*.mk tests/*/*.mk))

# The README's commands: install what is missing, then build and run.
TEST_JOBS ?= $(shell nproc)
test:
	./tests/install-deps
	$(MAKE) -j$(TEST_JOBS) $(TEST_BUILD)
	$(MAKE) unit $(TEST_STEPS)

bench: $(BENCH_STEPS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
