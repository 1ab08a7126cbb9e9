"""Booting real Linux guests with `uvm-shim run`: the default guest, vCPUs,
memory, the command line, the PVH entry, and a guest kernel panic.

The guest's init (gcs) prints "uvm-gcs: ready" on the console and starts its
bridge; the shim runs the command given after "--" through it (stdout is the
command's, the console goes to stderr), then the guest powers off and the
shim ends with the command's status (tests/e2e/test_run_cmd.py has more)."""

import os
import re
import uuid

import pytest

READY = "uvm-gcs: ready"
# Kernel messages cost UART exits; tests that do not read them keep them off.
QUIET = "quiet"

_meminfo = {}


def explicit(paths, kernel=None):
    return ["--kernel", kernel or paths.vmlinuz, "--initrd", paths.initrd]


def test_default_guest_boots_and_exits_0_on_reboot(run_vm):
    # No --kernel/--initrd: the shim finds build/guest by itself.
    r = run_vm("--cmdline", QUIET, "--", "sh", "-c", "echo E2E-HELLO=from-guest")
    assert r.returncode == 0, r.describe()
    assert READY in r.stderr, r.describe()
    # stdout is the command's alone; the agent's end and the reboot are on the console.
    assert r.stdout == "E2E-HELLO=from-guest\n", r.describe()
    assert "uvm-gcs: bridge ended" in r.stderr, r.describe()


def test_reboot_through_port_cf9(run_vm, paths):
    # reboot=pci: the kernel resets through the chipset's reset control register.
    r = run_vm(*explicit(paths), "--cmdline", QUIET + " reboot=pci", "--", "true")
    assert r.returncode == 0, r.describe()
    assert "reset the machine through port 0xCF9" in r.stderr, r.describe()


def test_run_exits_with_the_guest_commands_status(run_vm, paths):
    r = run_vm(*explicit(paths), "--cmdline", QUIET, "--", "sh", "-c", "exit 4")
    assert r.returncode == 4, r.describe()
    r = run_vm(*explicit(paths), "--cmdline", QUIET, "--", "sh", "-c", "kill -9 $$")
    assert r.returncode == 137, r.describe()


def test_run_uname_prints_the_guest_kernel_release(run_vm, paths):
    # The release is the name of the modules directory in the unpacked kernel package.
    with open(os.path.join(paths.guest_dir, "kernel.path")) as f:
        kroot = f.read().strip()
    release = os.listdir(os.path.join(kroot, "lib", "modules"))[0]
    r = run_vm("--", "uname", "-r")
    assert r.returncode == 0, r.describe()
    assert release in r.stdout.splitlines(), r.describe()


@pytest.mark.parametrize("cpus", [1, 2])
def test_vcpus_seen_by_guest(run_vm, paths, cpus):
    r = run_vm(*explicit(paths), "--cpus", str(cpus), "--cmdline", QUIET, "--", "sh", "-c",
               "echo E2E-NCPU=$(grep -c ^processor /proc/cpuinfo)")
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-NCPU") == str(cpus), r.describe()


def boot_with_memory(run_vm, paths, mib):
    if mib not in _meminfo:
        r = run_vm(*explicit(paths), "--memory", str(mib), "--cmdline", QUIET, "--", "sh", "-c",
                   "grep MemTotal /proc/meminfo; dmesg | grep Memory:")
        assert r.returncode == 0, r.describe()
        total = re.search(r"^MemTotal:\s+(\d+) kB", r.stdout, re.M)
        phys = re.search(r"Memory: \d+K/(\d+)K available", r.stdout)
        assert total and phys, r.describe()
        _meminfo[mib] = (int(total.group(1)), int(phys.group(1)), r)
    return _meminfo[mib]


@pytest.mark.parametrize("mib", [128, 1024])
def test_memory_seen_by_guest(run_vm, paths, mib):
    memtotal_kib, phys_kib, r = boot_with_memory(run_vm, paths, mib)
    # The RAM the kernel found (e820), before it sets aside its own image.
    assert abs(phys_kib / 1024 - mib) <= 0.10 * mib, r.describe()
    assert memtotal_kib / 1024 <= mib, r.describe()
    if mib >= 1024:
        # Debian's kernel keeps about 45 MiB (code, data, bss) out of
        # MemTotal, which is a third of a 128 MiB guest; at 1 GiB MemTotal
        # itself agrees within 10%.
        assert abs(memtotal_kib / 1024 - mib) <= 0.10 * mib, r.describe()


def test_memtotal_grows_with_memory(run_vm, paths):
    # The kernel's fixed reservation cancels out: MemTotal(1024) -
    # MemTotal(128) is the 896 MiB added, within 10%.
    small, _, _ = boot_with_memory(run_vm, paths, 128)
    big, _, r = boot_with_memory(run_vm, paths, 1024)
    grown = (big - small) / 1024
    assert abs(grown - 896) <= 0.10 * 896, "MemTotal grew by %.0f MiB\n%s" % (
        grown, r.describe())


def test_cmdline_token_reaches_guest(run_vm, paths):
    token = "uvm_e2e_token=%s" % uuid.uuid4().hex[:12]
    r = run_vm(*explicit(paths), "--cmdline", "%s %s" % (QUIET, token), "--", "sh", "-c",
               "echo E2E-CMDLINE=$(cat /proc/cmdline)")
    assert r.returncode == 0, r.describe()
    seen = r.marker("E2E-CMDLINE")
    assert seen is not None, r.describe()
    # What precedes "--" is the kernel's part; the command itself follows.
    assert token in seen.split(" -- ")[0].split(), r.describe()


# type_of_loader (boot_params offset 0x210): the kernel's own PVH entry code
# fills it (0xb0 on KVM, 0x90 on Xen), so it tells which entry was taken.
LOADER = "echo E2E-LOADER=$(od -An -tx1 -j 528 -N 1 /sys/kernel/boot_params/data)"


@pytest.mark.parametrize("image", ["vmlinuz", "vmlinux"])
def test_bzimage_and_pvh_vmlinux_boot(run_vm, paths, image):
    kernel = paths.vmlinuz if image == "vmlinuz" else paths.vmlinux
    r = run_vm(*explicit(paths, kernel), "--cmdline", QUIET, "--", "sh", "-c", LOADER)
    assert r.returncode == 0, r.describe()
    assert READY in r.stderr, r.describe()
    loader = r.marker("E2E-LOADER")
    assert loader is not None, r.describe()
    if image == "vmlinux":
        assert loader in ("b0", "90"), "not booted through PVH: %s\n%s" % (
            loader, r.describe())
    else:
        assert loader not in ("b0", "90"), "bzImage booted as PVH?\n" + r.describe()


@pytest.mark.parametrize("panic", ["panic=-1", "panic=0"],
                         ids=["reboot-after-panic", "hang-after-panic"])
def test_guest_kernel_panic_fails_the_run(run_vm, paths, panic):
    # panic=-1 reboots at once (a reboot that must not count as success);
    # panic=0 leaves the guest spinning, so the shim must notice on its own.
    r = run_vm(*explicit(paths), "--cmdline", "%s %s" % (QUIET, panic), "--", "sh", "-c",
               "echo c > /proc/sysrq-trigger")
    assert READY in r.stderr, r.describe()
    assert "Kernel panic" in r.stderr, r.describe()
    assert r.returncode == 3, r.describe()
    assert "panic" in r.stderr.lower(), r.describe()
