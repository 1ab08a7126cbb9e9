# `make install`: uvm-shim, the link containerd runs it through
# (containerd-shim-uvm-v1, the runtime io.containerd.uvm.v1) and the default
# guest (docs/containerd.md).
PREFIX ?= /usr/local
.PHONY: install
install: $(BUILD)/uvm-shim guest
	install -D -m 0755 $(BUILD)/uvm-shim $(DESTDIR)$(PREFIX)/bin/uvm-shim
	ln -sf uvm-shim $(DESTDIR)$(PREFIX)/bin/containerd-shim-uvm-v1
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/uvm-shim/guest \
		$(BUILD)/guest/vmlinux $(BUILD)/guest/vmlinuz $(BUILD)/guest/initrd.img
