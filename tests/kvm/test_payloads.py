"""Tiny guest payloads booted by uvm-shim on this host's /dev/kvm.

Each payload writes lines to the UART and resets through the i8042; the
tests check the console output and the process exit status. They skip,
with the reason, where /dev/kvm cannot be opened.
"""
import os
import subprocess

import pytest

SHIM = os.environ.get("UVM_SHIM", "build/uvm-shim")
PAYLOADS = os.environ.get("UVM_KVM_PAYLOADS", "build/kvm")
BZ = os.path.join(PAYLOADS, "payload_bz.bin")
PVH = os.path.join(PAYLOADS, "payload_pvh.elf")
# Payloads are emulated on PVM hosts (about a million instructions a second): generous.
TIMEOUT = 120


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return f"/dev/kvm cannot be opened: {e.strerror}"
    os.close(fd)
    return None


reason = kvm_usable()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


def run(*args):
    p = subprocess.run([SHIM, "run", "--console", "stdio", "--memory", "64", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def test_real_mode_entry():
    rc, out, err = run("--kernel", BZ, "--entry16")
    assert "uvm-kvm-test: hello from real mode" in out, err
    assert "long mode" not in out
    assert rc == 0, err


def test_bzimage_64bit_entry():
    rc, out, err = run("--kernel", BZ)
    assert "uvm-kvm-test: hello from long mode" in out, err
    assert rc == 0, err


def test_pvh_elf_one_vcpu():
    rc, out, err = run("--kernel", PVH)
    assert "PVH 32-bit entry, start_info ok" in out, err
    assert "AP up" not in out
    assert "PVH long mode ok" in out, err
    assert rc == 0, err


def test_pvh_elf_two_vcpus():
    rc, out, err = run("--kernel", PVH, "--cpus", "2")
    assert out.count("uvm-kvm-test: AP up") == 1, out + err
    assert "all APs up" in out, out + err
    assert "PVH long mode ok" in out
    assert rc == 0, err


def test_pvh_elf_four_vcpus():
    rc, out, err = run("--kernel", PVH, "--cpus", "4")
    assert out.count("uvm-kvm-test: AP up") == 3, out + err
    assert "all APs up" in out
    assert rc == 0, err


def test_triple_fault_is_a_guest_failure():
    rc, out, err = run("--kernel", BZ, "--cmdline", "!")
    assert "hello" not in out
    assert "vcpu0: rip" in err, err  # the register dump
    if os.path.exists("/sys/module/kvm_pvm"):
        # PVM's instruction emulator gives up on a fault with no IDT: an internal error,
        # with the faulting instruction in the dump.
        assert rc == 1, (rc, err)
        assert "KVM internal error" in err
        assert "rip 0000000000100" in err, err
    else:
        # A real shutdown exit; on AMD the vCPU state is already reset when it is reported.
        assert rc == 3, (rc, err)
        assert "triple fault" in err


def test_missing_kernel_is_a_usage_error():
    rc, out, err = run("--kernel", os.path.join(PAYLOADS, "no-such-kernel"))
    assert rc == 2
    assert "cannot open kernel" in err


def test_garbage_kernel_is_rejected(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 60)
    rc, out, err = run("--kernel", str(junk))
    assert rc == 2
    assert "cannot load kernel" in err


def test_bad_counts_are_usage_errors():
    for args in (["--cpus", "0"], ["--cpus", "1000"], ["--memory", "1"]):
        rc, out, err = run("--kernel", BZ, *args)
        assert rc == 2, args
        assert "must be" in err
