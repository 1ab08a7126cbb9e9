"""UEFI boot through Debian's unmodified OVMF.fd (docs/boot.md, "UEFI boot"):
the default guest's bzImage, initrd and command line handed to the firmware
over fw_cfg, the agent reached, a command run, /sys/firmware/efi present.
And parent mistakes: firmware files that are missing, empty, of a size no
firmware has, not a firmware volume, or a variable store alone; too much
memory for the Q35 layout. Needs a real /dev/kvm (test host) and `ovmf`."""

import os

import pytest

OVMF = "/usr/share/ovmf/OVMF.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
RUN_EXIT_USAGE = 2


@pytest.fixture(scope="module")
def ovmf():
    if not os.path.exists(OVMF):
        pytest.skip("%s absent: install Debian's ovmf (tests/install-deps)" % OVMF)
    return OVMF


def tcg_test_host_reason():
    """Why OVMF cannot run nested here, or None.

    The test host is QEMU with TCG (docs/testing.md). Its QEMU 7.2 (and
    bookworm-backports' 10.0.2, tried) aborts
    (tcg_handle_interrupt: assertion qemu_mutex_iothread_locked) when a
    nested guest writes CR8 while KVM has a virtual interrupt pending, and
    edk2 writes CR8 on every interrupt return: every OVMF boot in the test
    host ends with the test host itself, in DXE, after the kernel items are
    read (docs/boot.md, "How far it gets"). Under KVM (L0 = KVM) the guest
    kernel offers kvm-clock; under TCG it does not.
    """
    if os.environ.get("UVM_TEST_UEFI_FORCE") == "1":
        return None
    try:
        vendor = open("/sys/class/dmi/id/sys_vendor").read().strip()
        clocks = open("/sys/devices/system/clocksource/clocksource0/"
                      "available_clocksource").read()
    except OSError:
        return None
    if vendor == "QEMU" and "kvm-clock" not in clocks:
        return ("this machine is a QEMU TCG guest (the test host): QEMU 7.2's TCG aborts "
                "the whole test host when a nested guest writes CR8 with a virtual interrupt "
                "pending, which edk2 does on every interrupt return; OVMF gets into DXE and "
                "reads the kernel items, then the test host dies (docs/boot.md). "
                "UVM_TEST_UEFI_FORCE=1 runs it anyway")
    return None


def test_default_guest_boots_through_ovmf(run_vm, paths, ovmf):
    reason = tcg_test_host_reason()
    if reason:
        pytest.skip(reason)
    r = run_vm("--firmware", ovmf, "--", "sh", "-c",
               "echo E2E-UNAME=$(uname -r); "
               "test -d /sys/firmware/efi && echo E2E-EFI=yes || echo E2E-EFI=no")
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-UNAME"), r.describe()
    assert r.marker("E2E-EFI") == "yes", r.describe()


def bad(run_vm, paths, firmware, *extra):
    r = run_vm("--firmware", firmware, *extra, "--", "true", timeout=120)
    assert r.returncode == RUN_EXIT_USAGE, r.describe()
    return r


def test_missing_firmware(run_vm, paths):
    r = bad(run_vm, paths, "/nonexistent/OVMF.fd")
    assert "cannot open firmware '/nonexistent/OVMF.fd'" in r.stderr, r.describe()


@pytest.mark.parametrize("kind", ["empty", "odd-size", "not-a-volume"])
def test_bad_firmware_file(run_vm, paths, tmp_path, kind):
    f = tmp_path / ("fw-" + kind)
    if kind == "empty":
        f.write_bytes(b"")
        want = "has 0 bytes"
    elif kind == "odd-size":
        f.write_bytes(b"\x90" * (1 << 20) + b"\x90" * 100)
        want = "4 KiB multiple"
    else:
        f.write_bytes(os.urandom(1 << 20))
        want = "does not start with a UEFI firmware volume"
    r = bad(run_vm, paths, str(f))
    assert want in r.stderr, r.describe()
    assert str(f) in r.stderr, r.describe()


def test_variable_store_alone_is_refused(run_vm, paths):
    if not os.path.exists(OVMF_VARS):
        pytest.skip("%s absent: install Debian's ovmf" % OVMF_VARS)
    r = bad(run_vm, paths, OVMF_VARS)
    assert "no code at the reset vector" in r.stderr, r.describe()


def test_too_much_memory_for_uefi(run_vm, paths, ovmf):
    r = bad(run_vm, paths, ovmf, "--memory", "4096")
    assert "UEFI boot takes at most 2816 MiB" in r.stderr, r.describe()


def test_efi_path_escaping_its_dir_is_refused(run_vm, paths, ovmf, tmp_path):
    # hcsshim's SetUEFIBoot(dir, path, args) form: path resolves beneath dir.
    esp = tmp_path / "esp"
    esp.mkdir()
    (tmp_path / "secret").write_bytes(b"x")
    (esp / "out").symlink_to("../secret")
    for rel in ("../secret", "out", "/etc/passwd"):
        r = bad(run_vm, paths, ovmf, "--efi-dir", str(esp), "--efi-path", rel)
        assert "--efi-path: %s: leads outside --efi-dir" % rel in r.stderr, r.describe()
    r = bad(run_vm, paths, ovmf, "--efi-dir", str(esp), "--efi-path", "missing.efi")
    assert "--efi-path: missing.efi: No such file" in r.stderr, r.describe()
