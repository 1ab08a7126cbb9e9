"""virtio-blk and virtio-rng on a real Linux guest booted by `uvm-shim run`:
data read back bit for bit, writes and discards landing in the host file,
read-only disks, several disks with their serials, and the rng device.

Guest commands print `E2E-NAME=value` markers that the tests read back
(conftest.VmResult.marker). The command goes to the guest agent over the
bridge as an argv (docs/run.md)."""

import hashlib
import os
import subprocess
import time

import pytest
from conftest import VM_TIMEOUT

QUIET = "quiet"
MIB = 1024 * 1024


def sha256_file(path, start=0, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            n = MIB if left is None else min(MIB, left)
            b = f.read(n)
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
        f.write(os.urandom(size % MIB))


def test_random_disk_reads_back_and_guest_writes_reach_the_file(run_vm, tmp_path):
    disk = str(tmp_path / "disk.img")
    random_file(disk, 64 * MIB)
    want = sha256_file(disk)
    before_tail = sha256_file(disk, 4 * MIB)
    cmd = ("echo E2E-SHA=$(sha256sum /dev/vda | cut -d' ' -f1); "
           "echo E2E-SIZE=$(cat /sys/block/vda/size); "
           "echo E2E-NRQ=$(ls /sys/block/vda/mq | wc -l); "
           # 4 KiB at 1 MiB: a marker padded with zeros, written through to the device.
           "echo E2E-WRITTEN-BY-GUEST | dd of=/dev/vda bs=4096 seek=256 count=1 conv=sync,fsync"
           " 2>/dev/null; echo E2E-DD=$?; "
           # Discard 1 MiB at 2 MiB: the host file reads zeroes there afterwards.
           "blkdiscard -o 2097152 -l 1048576 /dev/vda; echo E2E-DISCARD=$?; sync")
    r = run_vm("--cpus", "2", "--cmdline", QUIET, "--disk", disk, "--", "sh", "-c", cmd)
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-SHA") == want, r.describe()
    assert r.marker("E2E-SIZE") == str(64 * MIB // 512), r.describe()
    # One request queue per vCPU.
    assert r.marker("E2E-NRQ") == "2", r.describe()
    assert r.marker("E2E-DD") == "0", r.describe()
    assert r.marker("E2E-DISCARD") == "0", r.describe()
    with open(disk, "rb") as f:
        f.seek(1 * MIB)
        block = f.read(4096)
        f.seek(2 * MIB)
        discarded = f.read(MIB)
    assert block == b"E2E-WRITTEN-BY-GUEST\n" + bytes(4096 - 21)
    assert discarded == bytes(MIB)
    # Everything from 4 MiB on is untouched; the file kept its size.
    assert sha256_file(disk, 4 * MIB) == before_tail
    assert os.path.getsize(disk) == 64 * MIB


def test_read_only_disk_rejects_writes(run_vm, tmp_path):
    disk = str(tmp_path / "ro.img")
    random_file(disk, 4 * MIB)
    want = sha256_file(disk)
    cmd = ("echo E2E-RO=$(cat /sys/block/vda/ro); "
           "echo E2E-SHA=$(sha256sum /dev/vda | cut -d' ' -f1); "
           "dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; "
           "echo E2E-DD=$?")
    r = run_vm("--cmdline", QUIET, "--disk", disk + ",ro", "--", "sh", "-c", cmd)
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-RO") == "1", r.describe()
    assert r.marker("E2E-SHA") == want, r.describe()
    assert r.marker("E2E-DD") not in (None, "0"), r.describe()
    assert sha256_file(disk) == want


def test_four_disks_each_with_its_serial(run_vm, tmp_path):
    args = []
    want = {}
    for i in range(4):
        path = str(tmp_path / ("d%d.img" % i))
        with open(path, "wb") as f:
            f.truncate((i + 1) * MIB)
        serial = "uvm-e2e-disk-%d" % i
        args += ["--disk", "%s,serial=%s" % (path, serial)]
        want[serial] = str((i + 1) * MIB // 512)
    cmd = ("for d in /sys/block/vd*; do "
           "echo E2E-DISK-$(cat $d/serial)=$(cat $d/size); done; "
           "echo E2E-COUNT=$(ls -d /sys/block/vd* | wc -l)")
    r = run_vm("--cmdline", QUIET, *args, "--", "sh", "-c", cmd)
    assert r.returncode == 0, r.describe()
    assert r.marker("E2E-COUNT") == "4", r.describe()
    for serial, sectors in want.items():
        assert r.marker("E2E-DISK-" + serial) == sectors, r.describe()


def test_rng_present_and_produces_bytes(run_vm):
    cmd = ("echo E2E-RNG=$(cat /sys/devices/virtual/misc/hw_random/rng_current); "
           "echo E2E-BYTES=$(head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \\n')")
    r = run_vm("--cmdline", QUIET, "--", "sh", "-c", cmd)
    assert r.returncode == 0, r.describe()
    assert (r.marker("E2E-RNG") or "").startswith("virtio_rng"), r.describe()
    data = r.marker("E2E-BYTES") or ""
    assert len(data) == 128, r.describe()
    assert data != "0" * 128, r.describe()


def _thread_cpu_ticks(pid, name):
    """utime + stime (clock ticks) of pid's thread called name, or None."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        if comm == name:
            fields = st[st.rindex(")") + 2:].split()
            return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return None


def test_disk_io_runs_on_the_io_thread(paths, kvm, tmp_path):
    """The disk's queue work runs on the I/O thread `io0`, not on the control loop:
    io0 exists while the guest reads the disk and uses CPU time doing it."""
    disk = str(tmp_path / "io.img")
    random_file(disk, 64 * MIB)
    cmd = "for i in 1 2 3; do dd if=/dev/vda of=/dev/null bs=64k iflag=direct 2>/dev/null; done"
    p = subprocess.Popen([paths.shim, "run", "--console", "none", "--cpus", "2",
                          "--cmdline", QUIET, "--disk", disk, "--", "sh", "-c", cmd],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    seen, deadline = None, time.monotonic() + VM_TIMEOUT
    while p.poll() is None and time.monotonic() < deadline:
        t = _thread_cpu_ticks(p.pid, "io0")
        if t is not None:
            seen = t
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
    err = p.communicate()[1].decode(errors="replace")
    assert p.returncode == 0, (p.returncode, err[-2000:])
    assert seen is not None, "no thread io0 in the shim\n" + err[-2000:]
    # 3 x 64 MiB of O_DIRECT reads are ~3,000 requests through the ring.
    assert seen > 0, "io0 used no CPU time while the guest read its disk"
