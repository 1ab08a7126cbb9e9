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


RAMP = 2


def fio_cmd(runtime, iodepth):
    # The guest's virtio-blk request interrupts are counted around fio (same on
    # both VMMs): interrupts per I/O is what the device's batching buys.
    irqs = "grep req /proc/interrupts"
    return ("echo IRQ-BEFORE; %s; "
            "fio --name=randread --filename=/dev/vda --direct=1 --rw=randread --bs=4k "
            "--ioengine=libaio --iodepth=%d --numjobs=1 --runtime=%d --time_based "
            "--ramp_time=%d --output-format=terse; echo IRQ-AFTER; %s"
            % (irqs, iodepth, runtime, RAMP, irqs))


def iops_of(out):
    """Read IOPS from fio's terse (v3) line: field 8."""
    for line in out.splitlines():
        f = line.strip().split(";")
        if len(f) > 8 and f[0] == "3" and f[1].startswith("fio"):
            return float(f[7])
    return None


def irqs_of(out):
    """Virtio-blk request interrupts (all CPUs) during fio, or None."""
    sums = {}
    cur = None
    for line in out.splitlines():
        line = line.strip()
        if line in ("IRQ-BEFORE", "IRQ-AFTER"):
            cur = line
            sums[cur] = 0
            continue
        f = line.split()
        if cur and len(f) > 2 and f[0].endswith(":") and "req" in line:
            for tok in f[1:]:
                if not tok.isdigit():
                    break
                sums[cur] += int(tok)
    if "IRQ-BEFORE" in sums and "IRQ-AFTER" in sums:
        return sums["IRQ-AFTER"] - sums["IRQ-BEFORE"]
    return None


def run(argv, timeout, env=None, retry=True):
    """Returns (IOPS or None, request interrupts during fio or None, the VMM's stderr)."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        sys.exit("bench-blk: %s did not finish in %d s" % (argv[0], timeout))
    out = p.stdout.decode(errors="replace").replace("\r", "")
    iops = iops_of(out)
    if iops is None and retry:
        # Seen once under QEMU in the test host: the guest reset itself during fio
        # (status 0, no result). Say so and try the run once more.
        print("bench-blk: no fio result from %s (status %d); running it again"
              % (argv[0], p.returncode), flush=True)
        return run(argv, timeout, env, retry=False)
    if iops is None:
        # Seen in the test host under uvm-shim: the guest kernel died in fio twice
        # in a row (a double fault at entry_SYSCALL_64, see docs/virtio.md). The
        # run is counted as failed and the set goes on; the summary says so.
        sys.stdout.write("bench-blk: no fio result from %s (status %d): run FAILED\n"
                         "--- stdout:\n%s\n--- stderr:\n%s\n"
                         % (argv[0], p.returncode, out[-3000:],
                            p.stderr.decode(errors="replace")[-6000:]))
    return iops, irqs_of(out), p.stderr.decode(errors="replace")


def blk_stats_of(err):
    """uvm-shim's own counters (UVM_LOG=debug): the disk's, logged when it is
    destroyed, and the VM's exits to user space."""
    lines = []
    for line in err.splitlines():
        if ("kicks," in line and "requests" in line) or "exits to user space" in line:
            lines.append(line.split(": ", 1)[-1].strip())
    return "\n      ".join(lines) or None


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
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=V[,VAR=V]",
                    help="also run uvm-shim with these environment variables (repeatable), "
                         "e.g. poll50:UVM_BLK_POLL_US=50")
    ap.add_argument("--shim", action="append", default=[], metavar="NAME:PATH",
                    help="also run another uvm-shim binary, e.g. an older build for a "
                         "before/after comparison in the same run (repeatable)")
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
        shim_env = dict(os.environ, UVM_LOG="debug")
        vmms = [("uvm-shim", shim_argv, shim_env)]
        for v in args.variant:
            name, _, assigns = v.partition(":")
            env = dict(shim_env)
            for a in filter(None, assigns.split(",")):
                k, _, val = a.partition("=")
                env[k] = val
            vmms.append(("shim-" + name, shim_argv, env))
        for v in args.shim:
            name, _, path = v.partition(":")
            if not name or not os.access(path, os.X_OK):
                sys.exit("bench-blk: --shim %s: want NAME:PATH to an executable" % v)
            vmms.append(("shim-" + name, [path] + shim_argv[1:], shim_env))
        vmms.append(("qemu", qemu_argv, None))
        results = {name: [] for name, _, _ in vmms}
        failed = {name: 0 for name, _, _ in vmms}
        for i in range(args.runs):
            for name, argv, env in vmms:
                iops, irqs, err = run(argv, args.timeout, env)
                if iops is None:
                    failed[name] += 1
                    print("run %d %-12s FAILED" % (i + 1, name), flush=True)
                    continue
                results[name].append(iops)
                per_io = ""
                if irqs is not None and iops > 0:
                    # fio's IOPS leave out the ramp; the interrupts include it.
                    per_io = ", %d irqs, ~%.2f irq/IO" % (
                        irqs, irqs / (iops * (args.runtime + RAMP)))
                print("run %d %-12s %8.0f IOPS%s" % (i + 1, name, iops, per_io), flush=True)
                stats = blk_stats_of(err) if env is not None else None
                if stats:
                    print("      %s" % stats, flush=True)

    for name, n in failed.items():
        if n:
            print("FAILED runs (no fio result, twice): %s %d of %d; medians over the others"
                  % (name, n, args.runs))
    if any(not v for v in results.values()):
        sys.exit("bench-blk: a VMM has no result at all")
    med = {n: statistics.median(v) for n, v in results.items()}
    for name, _, _ in vmms:
        print("median   %-12s %.0f IOPS" % (name + ":", med[name]))
    for name, _, _ in vmms[:-1]:
        ratio = med[name] / med["qemu"]
        print("ratio %s/qemu: %.2fx (target >= %.1fx: %s)"
              % (name, ratio, TARGET, "met" if ratio >= TARGET else "NOT met"))
    print("(4 KiB randread, O_DIRECT, libaio, iodepth %d, %d s per run, %d MiB disk on tmpfs, "
          "%d vCPUs, %d MiB; inside the test host: nested KVM under TCG)"
          % (args.iodepth, args.runtime, args.disk_mib, args.cpus, args.memory))

if __name__ == "__main__":
    main()
