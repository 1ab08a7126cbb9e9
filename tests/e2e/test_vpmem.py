"""vpmem.add / vpmem.remove driven through `uvm-shim serve`: container layers
as virtio-pmem devices. An ext4 layer (mkfs.ext4 -d) and an erofs layer
(mkfs.erofs) built here from one directory are hot-added read-only, mounted
in the guest with DAX (checked in /proc/mounts), every file read back with a
matching sha256; writes fail in the guest and leave the host image
byte-for-byte unchanged; a writable device's data reaches the host file; 8
layers come and go twice with no memory slot left behind (vm.stats).
Needs a real /dev/kvm (`make e2e`)."""

import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from test_scsi import host_cat, sh, tool
from test_serve import Shim

NOT_FOUND, BUSY, BAD_PARAMS = -32003, -32004, -32602
COUNT = 10
MAX_BYTES = 64 << 20


def need_tools():
    for t in ("mkfs.ext4", "debugfs", "mkfs.erofs"):
        if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t) and \
                not os.path.exists("/sbin/" + t):
            pytest.skip("%s is not installed (e2fsprogs, erofs-utils)" % t)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_tree(root):
    """A small layer: text, a 1 MiB binary, a nested directory, an empty file."""
    files = {}
    os.makedirs(os.path.join(root, "etc/app"))
    os.makedirs(os.path.join(root, "usr/lib"))
    content = {
        "etc/app/config": b"key=value\n" * 100,
        "usr/lib/blob.bin": os.urandom(1 << 20),
        "hello.txt": b"hello from a pmem layer\n",
        "empty": b"",
    }
    for rel, data in content.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        files[rel] = hashlib.sha256(data).hexdigest()
    return files


def make_ext4_layer(path, src, mib=8):
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    # 4 KiB blocks: ext4 does DAX only with blocks of the page size.
    subprocess.run([tool("mkfs.ext4"), "-F", "-q", "-b", "4096", "-d", src, path], check=True)


def make_erofs_layer(path, src):
    subprocess.run([tool("mkfs.erofs"), "--quiet", path, src], check=True,
                   stdout=subprocess.DEVNULL)
    size = os.path.getsize(path)
    assert size % 4096 == 0, size


def guest_sums(svm, tmp, mnt, files):
    script = " ; ".join("sha256sum %s/%s" % (mnt, rel) for rel in sorted(files))
    code, out, err = sh(svm, tmp, script, timeout=120)
    assert code == 0, (out, err)
    got = {}
    for line in out.splitlines():
        digest, path = line.split()
        got[path[len(mnt) + 1:]] = digest
    return got


def mount_line(svm, tmp, mnt):
    code, out, _ = sh(svm, tmp, "cat /proc/mounts")
    lines = [l for l in out.splitlines() if l.split()[1] == mnt]
    assert lines, out
    return lines[0]


def slots(svm):
    return svm.ok("vm.stats")["memory_slots"]


@pytest.fixture(scope="module")
def layers():
    need_tools()
    d = tempfile.mkdtemp(prefix="uvm-e2e-vpmem-img-")
    src = os.path.join(d, "src")
    files = make_tree(src)
    ext4 = os.path.join(d, "layer.ext4")
    erofs = os.path.join(d, "layer.erofs")
    make_ext4_layer(ext4, src)
    make_erofs_layer(erofs, src)
    yield {"dir": d, "files": files, "ext4": ext4, "erofs": erofs}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def svm(paths, kvm, layers):
    d = tempfile.mkdtemp(prefix="uvm-e2e-vpmem-")
    s = Shim(paths, d)
    s.boot(vpmem_count=COUNT, vpmem_max_bytes=MAX_BYTES)
    yield s
    assert s.close() == 0, s.log()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="uvm-e2e-vpmem-t-") as d:
        yield d


@pytest.mark.parametrize("fs", ["ext4", "erofs"])
def test_vpmem_read_only_layer_dax(svm, tmp, layers, fs):
    img = layers[fs]
    before = sha(img)
    mnt = "/layers/" + fs
    r = svm.ok("vpmem.add", timeout=120, host_path=img, read_only=True, guest_path=mnt,
               fs_type=fs)
    assert r["guest_device"].startswith("/dev/pmem"), r
    assert r["gpa"] % (128 << 20) == 0 and r["size"] >= os.path.getsize(img), r
    assert r["dax"] is True, r
    line = mount_line(svm, tmp, mnt)
    assert line.split()[2] == fs and "dax" in line and " ro," in " " + line.split()[3] + ",", line
    assert guest_sums(svm, tmp, mnt, layers["files"]) == layers["files"]
    # Writes fail in the guest: through the file system and through the block device.
    code, out, _ = sh(svm, tmp, "echo x > %s/hello.txt 2>&1; echo rc=$?; "
                                "touch %s/new 2>&1; echo rc=$?; "
                                "dd if=/dev/zero of=%s bs=4096 count=1 conv=notrunc 2>&1; "
                                "echo rc=$?; cat /sys/block/%s/ro"
                      % (mnt, mnt, r["guest_device"], r["guest_device"][5:]))
    assert out.count("rc=0") == 0 and out.strip().endswith("1"), out
    assert svm.ok("vpmem.remove", timeout=120, device=r["device"]) == {"device": r["device"]}
    assert sha(img) == before
    code, out, _ = sh(svm, tmp, "cat /proc/mounts; ls /sys/block")
    assert " %s " % mnt not in out and r["guest_device"][5:] not in out.split(), out
    assert slots(svm)["count"] == 0


def test_vpmem_writable_flush_reaches_host(svm, tmp, layers):
    img = os.path.join(tmp, "rw.ext4")
    make_ext4_layer(img, os.path.join(layers["dir"], "src"), mib=4)
    r = svm.ok("vpmem.add", timeout=120, host_path=img, read_only=False,
               guest_path="/scratch", fs_type="ext4")
    code, out, err = sh(svm, tmp, "echo written-through-pmem > /scratch/w && sync && "
                                  "cat /scratch/w")
    assert code == 0 and out == "written-through-pmem\n", (out, err)
    svm.ok("vpmem.remove", timeout=120, device=r["device"])
    assert host_cat(img, "/w") == b"written-through-pmem\n"


def test_vpmem_eight_layers_twice_no_slot_left(svm, tmp, layers):
    for rnd in range(2):
        added = []
        for i in range(8):
            fs = "erofs" if i % 2 else "ext4"
            r = svm.ok("vpmem.add", timeout=180, host_path=layers[fs], read_only=True,
                       guest_path="/l/%d" % i, fs_type=fs)
            added.append(r)
        assert len({r["device"] for r in added}) == 8
        assert len({r["gpa"] for r in added}) == 8
        st = slots(svm)
        assert st["count"] == 8 and st["vpmem_devices"] == 8, st
        code, out, _ = sh(svm, tmp, "cat /l/0/hello.txt /l/7/hello.txt")
        assert out == "hello from a pmem layer\n" * 2, (rnd, out)
        for r in added:
            svm.ok("vpmem.remove", timeout=120, device=r["device"])
        st = slots(svm)
        assert st == {"count": 0, "reserved_bytes": 0, "mapped_bytes": 0,
                      "vpmem_devices": 0}, st


def test_vpmem_errors(svm, tmp, layers):
    odd = os.path.join(tmp, "odd.img")
    with open(odd, "wb") as f:
        f.truncate(4096 + 100)
    big = os.path.join(tmp, "big.img")
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 4096)
    img = layers["erofs"]
    assert "multiple of 4096" in svm.error("vpmem.add", BAD_PARAMS, host_path=odd,
                                           read_only=True)
    assert "maximum" in svm.error("vpmem.add", BAD_PARAMS, host_path=big, read_only=True)
    assert "directory" in svm.error("vpmem.add", BAD_PARAMS, host_path=tmp, read_only=True)
    svm.error("vpmem.add", BAD_PARAMS, host_path=os.path.join(tmp, "missing"), read_only=True)
    svm.error("vpmem.add", BAD_PARAMS, host_path=img, read_only=True, fs_type="xfs")
    svm.error("vpmem.add", BAD_PARAMS, host_path=img, fs_type="erofs")  # erofs needs ro
    svm.error("vpmem.add", BAD_PARAMS, host_path=img, read_only=True, device=COUNT)
    svm.error("vpmem.remove", NOT_FOUND, device=3)
    svm.error("vpmem.remove", BAD_PARAMS)
    # All numbers taken: the next is refused, the VM unaffected; a named one is busy.
    added = [svm.ok("vpmem.add", timeout=120, host_path=img, read_only=True)
             for _ in range(COUNT)]
    assert sorted(r["device"] for r in added) == list(range(COUNT))
    assert "in use" in svm.error("vpmem.add", BUSY, host_path=img, read_only=True)
    svm.error("vpmem.add", BUSY, host_path=img, read_only=True, device=4)
    for r in added:
        svm.ok("vpmem.remove", timeout=120, device=r["device"])
    # A guest-side failure (bad fs) frees the number and the slot.
    msg = svm.error("vpmem.add", -32002, timeout=120, host_path=img, read_only=True,
                    guest_path="/bad", fs_type="ext4")
    assert "mount" in msg, msg
    assert slots(svm)["count"] == 0
    assert svm.ok("vm.state")["state"] == "Running"


def test_vpmem_at_create(paths, kvm, layers, tmp):
    s = Shim(paths, tmp)
    try:
        s.error("vpmem.add", -32001, host_path=layers["ext4"], read_only=True)
        s.error("vm.create", BAD_PARAMS, vpmem_count=129)
        s.ok("vm.create", console=os.path.join(tmp, "console.log"), cmdline="quiet",
             vpmem_count=2)
        r = s.ok("vpmem.add", host_path=layers["erofs"], read_only=True, guest_path="/boot-layer",
                 fs_type="erofs")
        assert r["guest_device"] is None  # cold: the guest has not seen it yet
        s.ok("vm.start", timeout=240)
        code, out, _ = sh(s, tmp, "grep ' /boot-layer ' /proc/mounts && cat /boot-layer/hello.txt")
        assert code == 0 and "erofs" in out and "hello from a pmem layer" in out, out
        s.ok("vpmem.remove", timeout=120, device=r["device"])
        assert s.ok("vm.stats")["memory_slots"]["count"] == 0
    finally:
        assert s.close() == 0, s.log()


def test_run_pmem_option(paths, kvm, layers):
    """`uvm-shim run --pmem PATH,ro`: the file is /dev/pmem0 in the guest, read-only content."""
    p = subprocess.run([paths.shim, "run", "--pmem", layers["erofs"] + ",ro", "--",
                        "sh", "-c", "cat /sys/block/pmem0/size; "
                        "head -c 4 /dev/pmem0 | od -An -tx1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    size_sectors, first = p.stdout.decode().split("\n", 1)
    # The slot is the file rounded up to 2 MiB.
    want = (os.path.getsize(layers["erofs"]) + (2 << 20) - 1) // (2 << 20) * (2 << 20)
    assert int(size_sectors) * 512 == want, p.stdout
    with open(layers["erofs"], "rb") as f:
        assert first.split() == ["%02x" % b for b in f.read(4)], p.stdout
