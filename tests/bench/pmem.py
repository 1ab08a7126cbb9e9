#!/usr/bin/env python3
"""virtio-pmem benchmark: one read-only erofs layer (~256 MiB, a few thousand
files of mixed sizes generated here from a fixed seed, built with
mkfs.erofs) given to a fresh `uvm-shim serve` VM once as a read-only pmem
device mounted with DAX (vpmem.add) and once as a read-only virtio-blk disk
(scsi.add), alternating runs. In the guest: drop the caches, read `Cached`
from /proc/meminfo, read every file (find | cat > /dev/null, timed in the
guest from /proc/uptime), read `Cached` again. Medians of the read time and
of the page-cache growth are printed with the ratios pmem / blk.
Targets: pmem read time <= 1.0x blk's; pmem page-cache growth < 10% of blk's.

The image is built without inline (tail-packed) data (`-E noinline_data`):
erofs gives DAX only to files whose data is in whole blocks, a tail-packed
file is read through the page cache even on a DAX mount. Both devices get
the same image file (on the test host's tmpfs, so the host disk is out of
the picture). Needs a real /dev/kvm: `make bench-pmem` runs it inside the
test host."""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve  # noqa: E402  (the `uvm-shim serve` client)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 20240601
MNT = "/layer"
TIME_TARGET = 1.0    # pmem read time / blk read time at most this
CACHE_TARGET = 0.10  # pmem page-cache growth / blk's under this


def die(msg):
    sys.stderr.write("bench-pmem: %s\n" % msg)
    sys.exit(1)


def tool(name):
    for p in (shutil.which(name), "/usr/sbin/" + name, "/sbin/" + name):
        if p and os.path.exists(p):
            return p
    die("%s is not installed (erofs-utils; tests/install-deps)" % name)


def make_tree(root, total):
    """Files of mixed sizes under 64 directories, `total` bytes in all, the
    same every time (fixed seed). Returns the number of files."""
    rng = random.Random(SEED)
    left, n = total, 0
    while left > 0:
        c = rng.random()
        if c < 0.6:
            size = rng.randint(1, 16 << 10)
        elif c < 0.9:
            size = rng.randint(16 << 10, 256 << 10)
        else:
            size = rng.randint(256 << 10, 1 << 20)
        size = min(size, left)
        d = os.path.join(root, "d%02d" % (n % 8), "s%02d" % (n % 64 // 8))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d" % n), "wb") as f:
            f.write(rng.randbytes(size))
        left -= size
        n += 1
    return n


def make_image(tmp, mib):
    src = os.path.join(tmp, "src")
    img = os.path.join(tmp, "layer.erofs")
    # The files take the image's size less ~2% for metadata and block tails.
    n = make_tree(src, (mib << 20) * 979 // 1000)
    subprocess.run([tool("mkfs.erofs"), "--quiet", "-Enoinline_data", "-T0", "--all-root",
                    "-U00000000-0000-0000-0000-000000000001", img, src], check=True)
    shutil.rmtree(src)
    size = os.path.getsize(img)
    if size % 4096:  # vpmem.add takes whole pages; zeros past the end are harmless
        os.truncate(img, size + 4096 - size % 4096)
    return img, n


GUEST_SCRIPT = (
    "sync; echo 3 > /proc/sys/vm/drop_caches; "
    "echo C0 $(grep '^Cached:' /proc/meminfo); "
    "read t0 x < /proc/uptime; "
    "find %(m)s -type f -exec cat {} + > /dev/null; rc=$?; "
    "read t1 x < /proc/uptime; "
    "echo C1 $(grep '^Cached:' /proc/meminfo); "
    "echo T $t0 $t1 $rc; "
    "echo N $(find %(m)s -type f | wc -l); "
    "echo M $(grep ' %(m)s ' /proc/mounts); "
    "echo END")


def parse(out):
    """(read seconds, page-cache growth in MiB, files seen, mount line) from
    the guest script's output, or a die with the output."""
    v = {}
    for line in out.splitlines():
        f = line.split()
        if f:
            v[f[0]] = f[1:]
    try:
        c0, c1 = int(v["C0"][1]), int(v["C1"][1])  # "Cached: N kB"
        t0, t1, rc = float(v["T"][0]), float(v["T"][1]), int(v["T"][2])
        n = int(v["N"][0])
    except (KeyError, IndexError, ValueError):
        die("unexpected guest output:\n%s" % out)
    if rc != 0:
        die("reading the files failed in the guest (status %d):\n%s" % (rc, out))
    return t1 - t0, (c1 - c0) / 1024.0, n, " ".join(v.get("M", []))


def guest_sh(s, tmp, script, timeout):
    """Runs script in the guest, its stdout appended to a host file; returns it."""
    out = tempfile.mktemp(prefix="out", dir=tmp)
    err = out + ".err"
    open(out, "w").close()
    open(err, "w").close()
    pid = s.call("guest.exec", argv=["sh", "-c", script], stdout=out, stderr=err)["pid"]
    st = s.call("process.wait", timeout=timeout, pid=pid)
    if st.get("exit_code") != 0:
        with open(err) as f:
            die("the guest script ended with %r: %s" % (st, f.read()[-2000:]))
    # The relay may still be writing when the wait is answered.
    deadline = time.monotonic() + 30
    while True:
        with open(out) as f:
            text = f.read()
        if "END" in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def one_run(shim, kernel, initrd, args, img, kind, tmp, log):
    s = serve.Serve(shim, log)
    s.call("vm.create", kernel=kernel, initrd=initrd, cpus=args.cpus, memory_mib=args.memory,
           cmdline="quiet")
    s.call("vm.start")
    if kind == "pmem":
        r = s.call("vpmem.add", timeout=args.timeout, host_path=img, read_only=True,
                   guest_path=MNT, fs_type="erofs", timeout_ms=120000)
        if not r.get("dax"):
            die("the pmem layer was mounted without DAX: %r" % r)
    else:
        s.call("scsi.add", timeout=args.timeout, controller=0, lun=0, host_path=img,
               read_only=True, guest_path=MNT, fs_type="erofs", timeout_ms=120000)
    out = guest_sh(s, tmp, GUEST_SCRIPT % {"m": MNT}, args.timeout)
    s.close()
    return parse(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256, help="image size (about)")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", type=int, default=1024, help="guest MiB")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    serve.PROG = "bench-pmem"

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("needs a real /dev/kvm (not PVM): run it with `make bench-pmem` (the test host)")
    guest = os.path.join(REPO, "build", "guest")
    kernel, initrd = os.path.join(guest, "vmlinux"), os.path.join(guest, "initrd.img")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, initrd, shim):
        if not os.path.exists(f):
            die("%s missing (run make and make guest)" % f)

    tmp = tempfile.mkdtemp(prefix="bench-pmem-", dir="/tmp")
    log = open(os.path.join(tmp, "shim.log"), "w")
    t = time.monotonic()
    img, nfiles = make_image(tmp, args.mib)
    print("image: %s, %.1f MiB, %d files (erofs, no inline data; built in %.0f s)"
          % (img, os.path.getsize(img) / 1048576.0, nfiles, time.monotonic() - t), flush=True)

    res = {"pmem": {"t": [], "c": []}, "blk": {"t": [], "c": []}}
    for i in range(args.runs):
        for kind in ("pmem", "blk"):
            secs, grow, n, mount = one_run(shim, kernel, initrd, args, img, kind, tmp, log)
            if n != nfiles:
                die("%s: the guest sees %d files, not %d" % (kind, n, nfiles))
            res[kind]["t"].append(secs)
            res[kind]["c"].append(grow)
            print("run %d %-4s read %7.2f s, page cache +%7.1f MiB  (%s)"
                  % (i + 1, kind, secs, grow, mount), flush=True)

    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in res.items()}
    for k in ("pmem", "blk"):
        print("median %-4s read %7.2f s, page cache +%7.1f MiB" % (k, med[k]["t"], med[k]["c"]))
    rt = med["pmem"]["t"] / med["blk"]["t"]
    print("read time pmem/blk: %.2fx (target <= %.1fx: %s)"
          % (rt, TIME_TARGET, "met" if rt <= TIME_TARGET else "NOT met"))
    if med["blk"]["c"] > 0:
        rc = med["pmem"]["c"] / med["blk"]["c"]
        print("page-cache growth pmem/blk: %.1f%% (target < %.0f%%: %s)"
              % (rc * 100, CACHE_TARGET * 100, "met" if rc < CACHE_TARGET else "NOT met"))
    else:
        print("page-cache growth pmem/blk: no ratio, blk's growth is %.1f MiB" % med["blk"]["c"])
    print("(%d runs, %.0f MiB erofs image on tmpfs, %d files, %d vCPU, %d MiB guest; "
          "inside the test host: nested KVM under TCG)"
          % (args.runs, os.path.getsize(img) / 1048576.0, nfiles, args.cpus, args.memory))
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
