"""ACPI tables for direct boot and the ACPI PM block: the guest finds the
RSDP (no "A valid RSDP was not found"), lists the tables under
/sys/firmware/acpi/tables, takes the PCI root and the PM timer from them, and
a guest without our agent that powers off (`poweroff -f` as its init) ends
`uvm-shim run` with status 0 through an S5 write to PM1 control. Both entry
points: the bzImage's 64-bit entry (zero page acpi_rsdp_addr) and the PVH
ELF entry (hvm_start_info rsdp_paddr). Needs a real /dev/kvm (test host)."""

import pytest

QUIET = "quiet"
S5_LOG = "the guest entered S5 (ACPI power off)"
TABLES = ("APIC", "DSDT", "FACP", "FACS")


def explicit(paths, kernel=None):
    return ["--kernel", kernel or paths.vmlinuz, "--initrd", paths.initrd]


def acpi_report(run_vm, paths, kernel):
    r = run_vm(*explicit(paths, kernel), "--cmdline", QUIET, "--", "sh", "-c",
               "echo E2E-TABLES=$(ls /sys/firmware/acpi/tables | tr '\\n' ' '); "
               "dmesg | grep -i -e acpi -e rsdp -e 'root bridge'")
    assert r.returncode == 0, r.describe()
    return r


@pytest.mark.parametrize("entry", ["bzimage-64", "pvh-elf"])
def test_guest_finds_the_acpi_tables(run_vm, paths, entry):
    r = acpi_report(run_vm, paths, paths.vmlinuz if entry == "bzimage-64" else paths.vmlinux)
    listed = (r.marker("E2E-TABLES") or "").split()
    for t in TABLES:
        assert t in listed, r.describe()
    assert "A valid RSDP was not found" not in r.stdout, r.describe()
    assert "ACPI: RSDP 0x00000000000E0000" in r.stdout, r.describe()
    # The FADT's PM timer and the DSDT's PCI root, with the 64-bit window.
    assert "ACPI: PM-Timer IO Port: 0x608" in r.stdout, r.describe()
    assert "PCI Root Bridge [PCI0]" in r.stdout, r.describe()
    assert "ACPI Error" not in r.stdout, r.describe()


def test_poweroff_without_agent_ends_run_with_0(run_vm, paths):
    # The guest's init is busybox's `poweroff -f`: no agent, straight to the
    # kernel's power-off, which ACPI turns into SLP_TYP=S5 | SLP_EN.
    r = run_vm(*explicit(paths), "--cmdline", QUIET + " rdinit=/bin/poweroff -- -f")
    assert r.returncode == 0, r.describe()
    assert S5_LOG in r.stderr, r.describe()
    assert "A valid RSDP was not found" not in r.stdout, r.describe()


def test_sysrq_poweroff_ends_run_with_0(run_vm, paths):
    # Busybox's sh as init, no agent: SysRq 'o' powers off from a kernel worker.
    script = '"mount -t proc proc /proc; echo o >/proc/sysrq-trigger; sleep 600"'
    r = run_vm(*explicit(paths), "--cmdline", QUIET + " rdinit=/bin/sh -- -c " + script)
    assert r.returncode == 0, r.describe()
    assert S5_LOG in r.stderr, r.describe()


def test_garbage_in_the_pm_block_is_ignored(run_vm, paths):
    # Ones into every byte of the PM block through /dev/port, one byte at a
    # time: enables set, status cleared, then SLP_EN with sleep type 7 (not
    # offered): logged and ignored, the guest goes on and ends normally.
    r = run_vm(*explicit(paths), "--cmdline", QUIET, "--", "sh", "-c",
               "[ -c /dev/port ] || { echo E2E-NOPORT=1; exit 0; }; "
               "head -c 12 /dev/zero | tr '\\0' '\\377' | "
               "dd of=/dev/port bs=1 seek=1536 conv=notrunc 2>/dev/null; "
               "echo E2E-ALIVE=yes")
    if r.marker("E2E-NOPORT"):
        pytest.skip("the guest kernel has no /dev/port (CONFIG_DEVPORT)")
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-ALIVE") == "yes", r.describe()
    assert "sleep type 7 requested: not offered, ignored" in r.stderr, r.describe()
    assert S5_LOG not in r.stderr, r.describe()
