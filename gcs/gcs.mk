# The guest agent (gcs/: the guest's /init) and the default guest.
# `make guest` builds build/guest/vmlinuz (Debian's kernel, as shipped),
# build/guest/vmlinux (its ELF, for the PVH entry) and build/guest/initrd.img
# (the gcs as /init, the modules of configs/guest-modules.txt, busybox, and
# for containers Debian's crun and mke2fs with their shared libraries).
GCS_SRCS   := $(wildcard gcs/*.c)
GCS_OBJS   := $(GCS_SRCS:%.c=$(BUILD)/obj/%.o)
GCS_LDLIBS := -lcjson -lunwind
GUEST      := $(BUILD)/guest
# Programs the containers need in the guest (tests/install-deps: crun, e2fsprogs).
GUEST_EXECS := /usr/bin/crun /usr/sbin/mke2fs

$(BUILD)/gcs/gcs: $(GCS_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(GCS_LDLIBS)

# fetch-kernel asks apt for the current package every time (about a
# second); the file changes only when the answer does, so nothing
# downstream is rebuilt needlessly.
$(GUEST)/kernel.path: FORCE
	@mkdir -p $(dir $@)
	@root=$$(gcs/fetch-kernel) && \
		{ [ "$$(cat $@ 2>/dev/null)" = "$$root" ] || echo "$$root" >$@; }

$(GUEST)/vmlinuz: $(GUEST)/kernel.path
	cp "$$(ls -1 "$$(cat $<)"/boot/vmlinuz-* | sort -V | tail -1)" $@

$(GUEST)/vmlinux: $(GUEST)/vmlinuz gcs/extract-vmlinux
	gcs/extract-vmlinux $< $@

# crun's libsystemd.so.0 in the guest is gcs/stub/libsystemd.c (why: there), if
# it covers every symbol this crun imports from it (gcs/stub/covers); if not,
# the real library and its five dependencies go in, with a warning.
GUEST_LIBS := $(GUEST)/lib
$(GUEST_LIBS)/libsystemd.so.0: gcs/stub/libsystemd.c gcs/stub/libsystemd.map
	@mkdir -p $(dir $@)
	$(CC) -O2 -shared -fPIC -fvisibility=hidden $(WARN) -Wno-unused-parameter \
		-Wl,-soname,libsystemd.so.0 -Wl,--version-script=gcs/stub/libsystemd.map -o $@ $<

# The initrd with extra mkinitrd arguments $(1).
guest_initrd = gcs/mkinitrd --kroot "$$(cat $(GUEST)/kernel.path)" --modules configs/guest-modules.txt \
		--init $(BUILD)/gcs/gcs --busybox $(GUEST_EXECS:%=--exec %) $(1) -o $@

$(GUEST)/initrd.img: $(GUEST)/kernel.path $(BUILD)/gcs/gcs configs/guest-modules.txt gcs/mkinitrd \
		$(GUEST_LIBS)/libsystemd.so.0 gcs/stub/covers
	@if gcs/stub/covers /usr/bin/crun $(GUEST_LIBS)/libsystemd.so.0; then libs="--lib-dir $(GUEST_LIBS)"; \
	else echo "guest: crun gets the real libsystemd (the stub does not cover it)"; libs=; fi; \
	$(call guest_initrd,$$libs)

# The same guest with Debian's libsystemd for crun, which bench-containers runs beside it.
$(GUEST)/initrd-libsystemd.img: $(GUEST)/kernel.path $(BUILD)/gcs/gcs configs/guest-modules.txt gcs/mkinitrd
	$(call guest_initrd,)

.PHONY: guest gcs-selftest FORCE
FORCE:
guest: $(GUEST)/vmlinuz $(GUEST)/vmlinux $(GUEST)/initrd.img

# The init's command-line and exit-status handling, run on the host (not as
# PID 1, where it skips mounts and modules and exits instead of rebooting).
gcs-selftest: $(BUILD)/gcs/gcs
	gcs/selftest $(BUILD)/gcs/gcs

TEST_STEPS += gcs-selftest
TEST_BUILD += $(BUILD)/gcs/gcs
