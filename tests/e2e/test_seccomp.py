"""The sandbox is really on (docs/seccomp.md): once the VM starts, the loop
thread (main) and every vCPU thread run under exactly one seccomp filter
with no_new_privs set and, as root, no capability left; --no-seccomp and
UVM_NO_SECCOMP=1 leave them alone.

The rest of the suite is the proof that the allowlists are wide enough: it
runs with the filters on (a missing call kills the shim with SIGSYS).

These tests only watch the threads start, so they need /dev/kvm but not a
guest that boots: they also run on PVM hosts."""

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.environ.get("UVM_SHIM") or os.path.join(REPO, "build", "uvm-shim")
GUEST = os.environ.get("UVM_GUEST_DIR") or os.path.join(REPO, "build", "guest")


def _kvm_reason():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return "/dev/kvm cannot be opened: %s" % e.strerror
    os.close(fd)
    for f in (SHIM, os.path.join(GUEST, "vmlinuz"), os.path.join(GUEST, "initrd.img")):
        if not os.path.exists(f):
            return "%s is not built (run `make` and `make guest`)" % f
    return None


pytestmark = pytest.mark.skipif(_kvm_reason() is not None, reason=_kvm_reason() or "")


def status(pid, tid):
    """The fields of /proc/PID/task/TID/status, or None if the thread is gone."""
    try:
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def threads(pid):
    """{name: status} of the shim's main, vCPU and I/O threads (io_uring workers left out)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        st = status(pid, tid)
        if st and (st["Name"] == "main" or re.fullmatch(r"(vcpu|io)\d+", st["Name"])):
            out[st["Name"]] = st
    return out


def wait_threads(proc, cpus, filtered, timeout=60, ios=1):
    """Waits until main, vcpu0..cpus-1 and the I/O threads io0..ios-1 exist and (if
    filtered) all run under a filter."""
    deadline = time.monotonic() + timeout
    want = {"main"} | {"vcpu%d" % i for i in range(cpus)} | {"io%d" % i for i in range(ios)}
    t = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the shim exited with %s" % proc.returncode
        t = threads(proc.pid)
        if set(t) >= want and (not filtered or all(s["Seccomp"] == "2" for s in t.values())):
            return t
        time.sleep(0.05)
    raise AssertionError("threads never got there: %r" % {k: v.get("Seccomp") for k, v in t.items()})


def check_sandboxed(t):
    for name, st in t.items():
        assert st["Seccomp"] == "2", (name, st["Seccomp"])
        # One filter each: vCPUs and I/O threads are created before the loop filters itself.
        if "Seccomp_filters" in st:
            assert st["Seccomp_filters"] == "1", (name, st["Seccomp_filters"])
        assert st["NoNewPrivs"] == "1", name
        if os.geteuid() == 0:
            assert int(st["CapEff"], 16) == 0, (name, st["CapEff"])
            assert int(st["CapPrm"], 16) == 0, (name, st["CapPrm"])
            assert int(st["CapBnd"], 16) == 0, (name, st["CapBnd"])


def check_not_sandboxed(t):
    for name, st in t.items():
        assert st["Seccomp"] == "0", (name, st["Seccomp"])
        if os.geteuid() == 0:
            assert int(st["CapEff"], 16) != 0, (name, st["CapEff"])


def env(**kv):
    e = {k: v for k, v in os.environ.items() if not k.startswith("UVM_NO_SECCOMP")}
    e.pop("UVM_SECCOMP_LOG", None)
    e.update(kv)
    return e


def log_file():
    # A file, not a pipe: a shim blocked on a full stderr pipe would hang the test.
    return tempfile.TemporaryFile()


def read_log(f):
    f.seek(0)
    return f.read().decode(errors="replace")


def start_run(extra, environ):
    err = log_file()
    p = subprocess.Popen([SHIM, "run", "--console", "none", "--cpus", "2", "--memory", "256",
                          *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err, env=environ)
    p.log = err
    return p


def stop_run(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = read_log(proc.log)
    # SIGTERM is answered by the loop (signalfd): 128+15, not a SIGSYS death.
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-3000:])
    return err


def test_run_threads_are_filtered():
    p = start_run([], env())
    try:
        check_sandboxed(wait_threads(p, 2, True))
    finally:
        stop_run(p)


def test_run_io_threads_are_filtered():
    """--io-threads 3: three I/O threads, each under its one filter, and no fourth."""
    p = start_run(["--io-threads", "3"], env())
    try:
        t = wait_threads(p, 2, True, ios=3)
        check_sandboxed(t)
        assert "io3" not in threads(p.pid), sorted(t)
    finally:
        stop_run(p)


@pytest.mark.parametrize("how", ["option", "env"])
def test_run_no_seccomp(how):
    p = start_run(["--no-seccomp"] if how == "option" else [], env(UVM_NO_SECCOMP="1"
                                                                     if how == "env" else "0"))
    try:
        t = wait_threads(p, 2, False)
        time.sleep(0.5)  # the loop would filter itself right after vm_start
        check_not_sandboxed(threads(p.pid) or t)
    finally:
        err = stop_run(p)
    assert "the sandbox is off" in err


def serve(extra, environ):
    err = log_file()
    p = subprocess.Popen([SHIM, "serve", *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=err, env=environ)
    p.log = err
    return p


def create_and_start(p, **create):
    for i, (m, params) in enumerate([("vm.create", {"cpus": 2, "memory_mib": 256, **create}),
                                     ("vm.start", {})]):
        p.stdin.write((json.dumps({"id": i + 1, "method": m, "params": params}) + "\n").encode())
        p.stdin.flush()
    # vm.create answers at once; vm.start answers when the guest agent is up (or never on PVM).
    ready, _, _ = select.select([p.stdout], [], [], 60)
    assert ready, "no answer to vm.create\n" + read_log(p.log)[-3000:]
    r = json.loads(p.stdout.readline())
    assert r.get("id") == 1 and "result" in r, r


def stop_serve(p):
    p.stdin.close()  # EOF: the shim ends the VM and exits 0
    p.wait(timeout=60)
    err = read_log(p.log)
    assert p.returncode == 0, (p.returncode, err[-3000:])
    return err


def test_serve_threads_are_filtered_after_vm_start():
    p = serve([], env())
    try:
        # Before vm.start: setup phase, nothing filtered yet.
        time.sleep(0.2)
        assert status(p.pid, str(p.pid))["Seccomp"] == "0"
        create_and_start(p)
        check_sandboxed(wait_threads(p, 2, True))
    finally:
        stop_serve(p)


def test_serve_io_threads():
    """vm.create's io_threads: that many I/O threads, filtered once the VM starts."""
    p = serve([], env())
    try:
        create_and_start(p, io_threads=2)
        check_sandboxed(wait_threads(p, 2, True, ios=2))
        assert "io2" not in threads(p.pid)
    finally:
        stop_serve(p)


def test_serve_no_seccomp():
    p = serve(["--no-seccomp"], env())
    try:
        create_and_start(p)
        wait_threads(p, 2, False)
        time.sleep(0.5)
        check_not_sandboxed(threads(p.pid))
    finally:
        err = stop_serve(p)
    assert "the sandbox is off" in err


def test_disk_io_under_the_filters(run_vm, tmp_path):
    """virtio-blk on io_uring under the filters: the guest reads what the host
    wrote, writes, flushes and resets the device on its way down (blk_reset runs
    on a vCPU thread). A call missing from a list would kill the shim (SIGSYS)."""
    img = tmp_path / "disk.img"
    img.write_bytes(b"host-pattern-1234" + bytes(1024 * 1024 - 17))
    script = ("echo E2E-READ=$(head -c 17 /dev/vda); "
              "printf written-by-guest | dd of=/dev/vda bs=512 seek=8 2>/dev/null; sync; "
              "echo 3 > /proc/sys/vm/drop_caches; "
              "echo E2E-BACK=$(dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 16)")
    r = run_vm("--cmdline", "quiet", "--disk", str(img), "--", "sh", "-c", script)
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-READ") == "host-pattern-1234", r.describe()
    assert r.marker("E2E-BACK") == "written-by-guest", r.describe()
    assert img.read_bytes()[4096:4096 + 16] == b"written-by-guest"
