#!/usr/bin/env python3
"""virtio-blk benchmark: 4 KiB random reads with fio (O_DIRECT, libaio,
queue depth 32, one job) on a 1 GiB disk, in a guest under uvm-shim and under
Debian's QEMU (-M pc, KVM, virtio-blk-pci, cache=writeback like ours), same
kernel, initrd, vCPUs, memory and backing file (on tmpfs, so the host disk
is out of the picture). Runs alternate between the VMMs; the medians of IOPS
and the ratio uvm-shim / QEMU are printed. Needs a real /dev/kvm (`make
bench` runs it inside the test host)."""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# uvm-shim's base command line (shim/run.c); QEMU gets the same string.
BASE_CMDLINE = ("console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp "
                "i8042.dumbkbd")
TARGET = 1.2


def fio_cmd(runtime, iodepth):
    return ("fio --name=randread --filename=/dev/vda --direct=1 --rw=randread --bs=4k "
            "--ioengine=libaio --iodepth=%d --numjobs=1 --runtime=%d --time_based "
            "--ramp_time=2 --output-format=terse" % (iodepth, runtime))


def iops_of(out):
    """Read IOPS from fio's terse (v3) line: field 8."""
    for line in out.splitlines():
        f = line.strip().split(";")
        if len(f) > 8 and f[0] == "3" and f[1].startswith("fio"):
            return float(f[7])
    return None


def run(argv, timeout):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit("bench-blk: %s did not finish in %d s" % (argv[0], timeout))
    out = p.stdout.decode(errors="replace").replace("\r", "")
    iops = iops_of(out)
    if iops is None:
        sys.stderr.write("bench-blk: no fio result from %s (status %d)\n--- stdout:\n%s\n"
                         "--- stderr:\n%s\n" % (argv[0], p.returncode, out[-3000:],
                                                p.stderr.decode(errors="replace")[-2000:]))
        sys.exit(1)
    return iops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True, help="initrd with fio (tests/bench/blk.mk)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=10)
    ap.add_argument("--iodepth", type=int, default=32)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--disk-mib", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        sys.exit("bench-blk: needs a real /dev/kvm (not PVM): run it with `make bench`, "
                 "which uses the test host")
    kernel = os.path.join(REPO, "build", "guest", "vmlinuz")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, shim, args.initrd):
        if not os.path.exists(f):
            sys.exit("bench-blk: %s missing (run make, make guest)" % f)

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        disk = os.path.join(tmp, "disk.img")
        # Allocated (not sparse), so reads hit real pages on both VMMs.
        fd = os.open(disk, os.O_CREAT | os.O_RDWR, 0o600)
        os.posix_fallocate(fd, 0, args.disk_mib << 20)
        os.close(fd)
        cmd = fio_cmd(args.runtime, args.iodepth)
        shim_argv = [shim, "run", "--kernel", kernel, "--initrd", args.initrd,
                     "--cpus", str(args.cpus), "--memory", str(args.memory),
                     "--disk", disk, "--", "sh", "-c", cmd]
        qemu_argv = ["qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
                     "-smp", str(args.cpus), "-m", str(args.memory),
                     "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                     "-serial", "stdio", "-kernel", kernel, "-initrd", args.initrd,
                     # The guest agent joins the words after "--" with blanks and
                     # runs them with /bin/sh -c (gcs/cmdline.c): the fio command
                     # goes there as it is.
                     "-append", '%s -- %s' % (BASE_CMDLINE, cmd),
                     "-drive", "file=%s,format=raw,if=none,id=d0,cache=writeback" % disk,
                     "-device", "virtio-blk-pci,drive=d0,num-queues=%d" % args.cpus]
        results = {"uvm-shim": [], "qemu": []}
        for i in range(args.runs):
            for name, argv in (("uvm-shim", shim_argv), ("qemu", qemu_argv)):
                iops = run(argv, args.timeout)
                results[name].append(iops)
                print("run %d %-8s %8.0f IOPS" % (i + 1, name, iops), flush=True)

    med = {n: statistics.median(v) for n, v in results.items()}
    ratio = med["uvm-shim"] / med["qemu"]
    print("median   uvm-shim: %.0f IOPS" % med["uvm-shim"])
    print("median   qemu:     %.0f IOPS" % med["qemu"])
    print("ratio uvm-shim/qemu: %.2fx (target >= %.1fx: %s)"
          % (ratio, TARGET, "met" if ratio >= TARGET else "NOT met"))
    print("(4 KiB randread, O_DIRECT, libaio, iodepth %d, %d s per run, %d MiB disk on tmpfs, "
          "%d vCPUs, %d MiB; inside the test host: nested KVM under TCG)"
          % (args.iodepth, args.runtime, args.disk_mib, args.cpus, args.memory))


if __name__ == "__main__":
    main()
