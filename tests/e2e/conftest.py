"""Shared fixtures of the end-to-end suite: real Linux guests booted by
`uvm-shim run`. They need a real /dev/kvm (not PVM): `make e2e` runs the
whole suite inside one test-host boot (tests/testhost/run)."""

import os
import re
import subprocess
import time
from dataclasses import dataclass

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Generous: a guest boot takes about 20 s inside the TCG test host.
VM_TIMEOUT = float(os.environ.get("E2E_VM_TIMEOUT", "240"))

_suite_start = time.monotonic()


@dataclass
class Paths:
    shim: str
    guest_dir: str
    vmlinuz: str
    vmlinux: str
    initrd: str


@dataclass
class VmResult:
    args: list
    returncode: int
    stdout: str  # the guest command's output (the console too with --console stdio), "\r" removed
    stderr: str  # the shim's log and, with a command, the guest console
    seconds: float

    def describe(self):
        """Context for assertion messages: the tail of both streams."""
        return ("\n--- uvm-shim %s: status %d after %.1f s\n--- stdout (tail):\n%s\n"
                "--- stderr (tail):\n%s" % (
                    " ".join(self.args), self.returncode, self.seconds,
                    "\n".join(self.stdout.splitlines()[-40:]),
                    "\n".join(self.stderr.splitlines()[-20:])))

    def marker(self, name):
        """Value printed by the guest command as `NAME=value`, or None."""
        m = re.search(r"^%s=(.*)$" % re.escape(name), self.stdout, re.M)
        return m.group(1).strip() if m else None


def kvm_unusable_reason():
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm on this machine"
    if os.path.exists("/sys/module/kvm_pvm"):
        return ("/dev/kvm is PVM (module kvm_pvm): stock kernels do not boot on it; "
                "run the suite inside the test host with `make e2e`")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no read/write access to /dev/kvm"
    return None


@pytest.fixture(scope="session")
def paths():
    """The shim and the default guest, built by `make` and `make guest`."""
    guest = os.environ.get("UVM_GUEST_DIR") or os.path.join(REPO, "build", "guest")
    p = Paths(shim=os.environ.get("UVM_SHIM") or os.path.join(REPO, "build", "uvm-shim"),
              guest_dir=guest,
              vmlinuz=os.path.join(guest, "vmlinuz"),
              vmlinux=os.path.join(guest, "vmlinux"),
              initrd=os.path.join(guest, "initrd.img"))
    for f in (p.shim, p.vmlinuz, p.vmlinux, p.initrd):
        if not os.path.exists(f):
            pytest.skip("%s is not built (run `make` and `make guest`)" % f)
    return p


@pytest.fixture(scope="session")
def kvm():
    reason = kvm_unusable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def run_vm(paths, kvm):
    """run_vm(*args): runs `uvm-shim run ARGS` to its end (with a timeout)."""

    def run(*args, timeout=VM_TIMEOUT):
        argv = [paths.shim, "run", *args]
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace").replace("\r", "")
            err = (e.stderr or b"").decode(errors="replace")
            pytest.fail("uvm-shim run %s did not end within %.0f s\n--- stdout (tail):\n%s\n"
                        "--- stderr (tail):\n%s" % (
                            " ".join(args), timeout, "\n".join(out.splitlines()[-40:]),
                            "\n".join(err.splitlines()[-20:])))
        return VmResult(args=list(args), returncode=p.returncode,
                        stdout=p.stdout.decode(errors="replace").replace("\r", ""),
                        stderr=p.stderr.decode(errors="replace"),
                        seconds=time.monotonic() - t0)

    return run


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("e2e suite total time: %.1f s"
                                % (time.monotonic() - _suite_start))

