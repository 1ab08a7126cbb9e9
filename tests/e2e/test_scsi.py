"""scsi.add / scsi.remove driven through `uvm-shim serve`: virtio-blk disks
hot-added to a running VM (the GCS rescans PCI, finds the disk by serial and
mounts it) and removed (the GCS unmounts and removes the function first).
Disk images are ext4 files made here with mkfs.ext4; the data written in the
guest is read back on the host with debugfs. Needs a real /dev/kvm (`make e2e`)."""

import os
import shutil
import subprocess
import tempfile

import pytest

from test_serve import Shim, run  # the same parent-side client as test_serve

NOT_FOUND, BUSY, BAD_PARAMS = -32003, -32004, -32602


def need_tools():
    for t in ("mkfs.ext4", "debugfs"):
        if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t) and \
                not os.path.exists("/sbin/" + t):
            pytest.skip("%s is not installed (e2fsprogs)" % t)


def tool(name):
    return shutil.which(name) or next(p for p in ("/usr/sbin/" + name, "/sbin/" + name)
                                      if os.path.exists(p))


def make_ext4(path, mib=16, label="uvm"):
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    subprocess.run([tool("mkfs.ext4"), "-F", "-q", "-L", label, path], check=True)


def host_cat(image, guest_file):
    r = subprocess.run([tool("debugfs"), "-R", "cat " + guest_file, image],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return r.stdout


def sh(shim, tmp, script, timeout=60):
    st, out, err = run(shim, tmp, ["sh", "-c", script], timeout=timeout)
    return st["exit_code"], out.decode(errors="replace"), err.decode(errors="replace")


@pytest.fixture(scope="module")
def svm(paths, kvm):
    need_tools()
    d = tempfile.mkdtemp(prefix="uvm-e2e-scsi-")
    s = Shim(paths, d)
    s.boot()
    yield s
    assert s.close() == 0, s.log()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="uvm-e2e-scsi-t-") as d:
        yield d


def test_scsi_four_disks_hot_add_write_remove(svm, tmp):
    images = []
    for i in range(4):
        img = os.path.join(tmp, "disk%d.img" % i)
        make_ext4(img, label="d%d" % i)
        images.append(img)
    devices = {}
    for i, img in enumerate(images):
        r = svm.ok("scsi.add", timeout=120, controller=0, lun=i, host_path=img,
                   read_only=False, guest_path="/mnt/d%d" % i, fs_type="ext4",
                   options=["noatime"])
        assert r["serial"] == "uvm-c0-l%d" % i, r
        assert r["device"].startswith("/dev/vd"), r
        devices[i] = r["device"]
    assert len(set(devices.values())) == 4, devices
    code, out, _ = sh(svm, tmp, "cat /proc/mounts; ls /sys/block")
    assert code == 0
    for i in range(4):
        assert "%s /mnt/d%d ext4" % (devices[i], i) in out, out

    code, out, err = sh(svm, tmp, "echo hello-from-guest > /mnt/d1/file && "
                                  "cat /mnt/d1/file && sync")
    assert code == 0 and out == "hello-from-guest\n", (out, err)

    assert svm.ok("scsi.remove", timeout=120, controller=0, lun=1) == \
        {"controller": 0, "lun": 1}
    # Unmounted and removed in the guest, unplugged by the shim: the data is on the host file.
    assert host_cat(images[1], "/file") == b"hello-from-guest\n"
    name = os.path.basename(devices[1])
    code, out, _ = sh(svm, tmp, "ls /sys/block; echo --; cat /proc/mounts")
    blocks, mounts = out.split("--")
    assert name not in blocks.split(), out
    assert "/mnt/d1 " not in mounts, out
    for i in (0, 2, 3):
        assert os.path.basename(devices[i]) in blocks.split(), out
    # The address is free again: a second remove is "not found".
    svm.error("scsi.remove", NOT_FOUND, controller=0, lun=1)

    # The others still work, then go too.
    code, out, _ = sh(svm, tmp, "echo two > /mnt/d2/f2 && cat /mnt/d2/f2")
    assert code == 0 and out == "two\n"
    for i in (0, 2, 3):
        svm.ok("scsi.remove", timeout=120, controller=0, lun=i)
    assert host_cat(images[2], "/f2") == b"two\n"
    code, out, _ = sh(svm, tmp, "ls /sys/block")
    for d in devices.values():
        assert os.path.basename(d) not in out.split(), out


def test_scsi_read_only_and_readd(svm, tmp):
    img = os.path.join(tmp, "ro.img")
    make_ext4(img)
    r = svm.ok("scsi.add", timeout=120, controller=1, lun=0, host_path=img, read_only=True,
               guest_path="/mnt/ro")
    code, out, err = sh(svm, tmp, "touch /mnt/ro/x 2>&1; echo rc=$?; "
                                  "cat /sys/block/%s/ro" % os.path.basename(r["device"]))
    assert "rc=0" not in out and out.strip().endswith("1"), out
    svm.ok("scsi.remove", timeout=120, controller=1, lun=0)
    # Attach only (no mount), same address again: a fresh function.
    r = svm.ok("scsi.add", timeout=120, controller=1, lun=0, host_path=img, read_only=False)
    assert r["device"].startswith("/dev/vd")
    code, out, _ = sh(svm, tmp, "cat /sys/block/%s/serial" % os.path.basename(r["device"]))
    assert out.strip() == "uvm-c1-l0"
    svm.ok("scsi.remove", timeout=120, controller=1, lun=0)


def test_scsi_errors(svm, tmp):
    img = os.path.join(tmp, "e.img")
    make_ext4(img)
    svm.error("scsi.add", BAD_PARAMS, controller=0, host_path=img)           # no lun
    svm.error("scsi.add", BAD_PARAMS, controller=0, lun=1)                   # no host_path
    svm.error("scsi.add", BAD_PARAMS, controller=99, lun=0, host_path=img)   # out of range
    svm.error("scsi.add", BAD_PARAMS, controller=0, lun="1", host_path=img)  # mistyped
    svm.error("scsi.add", BAD_PARAMS, controller=0, lun=2, host_path=img, guest_path="rel")
    svm.error("scsi.add", BAD_PARAMS, controller=0, lun=2, host_path=img, options=[1])
    svm.error("scsi.add", BAD_PARAMS, controller=0, lun=2,
              host_path=os.path.join(tmp, "missing.img"))
    svm.error("scsi.remove", BAD_PARAMS, controller=0)
    svm.error("scsi.remove", NOT_FOUND, controller=3, lun=63)
    # A duplicate address is refused while the first is attached.
    svm.ok("scsi.add", timeout=120, controller=2, lun=5, host_path=img)
    svm.error("scsi.add", BUSY, controller=2, lun=5, host_path=img)
    # A guest failure (not ext4... a mount of a bad fs type) is reported, slot freed.
    msg = svm.error("scsi.add", -32002, timeout=120, controller=2, lun=6, host_path=img,
                    guest_path="/mnt/bad", fs_type="nosuchfs")
    assert "mount" in msg, msg
    svm.error("scsi.remove", NOT_FOUND, controller=2, lun=6)
    svm.ok("scsi.remove", timeout=120, controller=2, lun=5)
    # The shim kept serving.
    assert svm.ok("vm.state")["state"] == "Running"


def test_scsi_disks_at_create(paths, kvm, tmp):
    need_tools()
    img = os.path.join(tmp, "boot.img")
    make_ext4(img)
    s = Shim(paths, tmp)
    try:
        # Not allowed before create; allowed in Created (cold-plugged).
        s.error("scsi.add", -32001, controller=0, lun=0, host_path=img)
        s.ok("vm.create", console=os.path.join(tmp, "console.log"), cmdline="quiet",
             scsi=[{"controller": 0, "lun": 0, "host_path": img, "guest_path": "/data"}])
        img2 = os.path.join(tmp, "cold.img")
        make_ext4(img2)
        r = s.ok("scsi.add", controller=0, lun=1, host_path=img2, read_only=True)
        assert r["device"] is None  # the guest has not seen it yet
        s.ok("scsi.remove", controller=0, lun=1)  # cold: just unplugged
        s.ok("vm.start", timeout=240)
        code, out, _ = sh(s, tmp, "grep ' /data ' /proc/mounts && echo boot > /data/b && sync")
        assert code == 0 and "ext4" in out, out
        s.ok("scsi.remove", timeout=120, controller=0, lun=0)
        assert host_cat(img, "/b") == b"boot\n"
    finally:
        assert s.close() == 0, s.log()


def test_scsi_add_goes_through_the_opener(svm, tmp):
    """Once the VM runs the shim's threads are Landlocked (docs/seccomp.md): a
    disk hot-added comes from the opener process, a child of the shim with no
    capability and its own filter, which refuses system paths, even through a
    symlink the parent named. Without Landlock in the test host's kernel the
    shim says so in its log; the opener's refusals hold either way."""
    pid = svm.proc.pid
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(k) for k in f.read().split()]
    openers = []
    for k in kids:
        with open("/proc/%d/status" % k) as f:
            st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        if st["Name"] == "opener":
            openers.append(st)
    assert len(openers) == 1, kids
    assert openers[0]["Seccomp"] == "2" and openers[0]["NoNewPrivs"] == "1", openers[0]
    if os.geteuid() == 0:
        assert int(openers[0]["CapEff"], 16) == 0, openers[0]
    img = os.path.join(tmp, "ok.img")
    make_ext4(img)
    r = svm.ok("scsi.add", timeout=120, controller=3, lun=0, host_path=img, read_only=True)
    assert r["device"].startswith("/dev/vd"), r
    svm.ok("scsi.remove", timeout=120, controller=3, lun=0)
    link = os.path.join(tmp, "passwd.img")
    os.symlink("/etc/passwd", link)
    for path in ("/etc/passwd", link):
        msg = svm.error("scsi.add", BAD_PARAMS, controller=3, lun=1, host_path=path,
                        read_only=True)
        assert "Permission denied" in msg, msg
    assert svm.ok("vm.state")["state"] == "Running"
    with open(svm.log_path) as f:
        log = f.read()
    # Either line, never neither; securityfs (the LSM list) may not be mounted here.
    assert "Landlock ABI" in log or "Landlock is not available" in log, log[:3000]
    try:
        with open("/sys/kernel/security/lsm") as f:
            lsm = f.read().strip().split(",")
    except OSError:
        lsm = []
    if "landlock" in lsm:
        assert "Landlock ABI" in log, log[:3000]
