#!/usr/bin/env python3
"""Per-VM overhead: uvm-shim beside Debian's QEMU (-M microvm and -M pc),
alternating in one run, medians and ratios (issue 17, docs/vmm.md "Overhead").

--mode setup (default; runs on any /dev/kvm, PVM included): the guest is the
idle PVH payload (build/kvm/payload_idle.elf: it prints a line and halts),
128 MiB, 1 vCPU and one 64 MiB raw disk (virtio-blk), the same for each VMM.
  * exec -> first KVM_RUN: wall time (CLOCK_MONOTONIC from just before the
    spawn to the first KVM_RUN ioctl) and the process's CPU time (user+sys)
    at that moment, both taken inside the VMM by an LD_PRELOAD library
    (tests/bench/overhead_preload.c), not under strace. CPU time does not
    change with the machine's load; wall time does, so it is a median.
  * memory with the guest idle (its line printed, then 0.3 s), from
    /proc/PID/smaps outside guest RAM (the anonymous mappings at least as
    large as 90% of guest RAM are left out), in runs without the preload:
    Anonymous (what this VM alone holds: heap, stacks, copy-on-write pages;
    the headline "private memory"), Private_Dirty (which also counts a
    file's dirty page cache that only this process maps: a binary linked
    moments ago; the script syncs first), Private_Clean + Private_Dirty, and
    Rss. Exact figures, independent of the load.
--mode boot (needs a real /dev/kvm: the test host; `make bench-overhead
BENCH_OVERHEAD_ARGS=--mode=boot`): the default guest (build/guest vmlinux and
initrd.img), seconds from exec to the init's "uvm-gcs: ready" line.

kvmtool is not in Debian bookworm (apt: no package kvmtool), so it is absent.
"""

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from boot import shim_base_cmdline  # noqa: E402  (the shim's own kernel command line)

BUILD = os.path.join(REPO, "build")
IDLE_LINE = b"PVH long mode ok"
READY = b"uvm-gcs: ready"
VMMS = ("uvm-shim", "qemu-microvm", "qemu-pc")
SHIM = os.path.join(BUILD, "uvm-shim")  # --shim changes it
OTHER_SHIM = None  # --other-shim: another build, run as "uvm-shim-other" (before/after)


def die(msg):
    sys.stderr.write("bench-overhead: %s\n" % msg)
    sys.exit(1)


def argv_for(vmm, kernel, initrd, mem, disk, cmdline):
    if vmm.startswith("uvm-shim"):
        a = [SHIM if vmm == "uvm-shim" else OTHER_SHIM, "run", "--console", "stdio", "--memory", str(mem),
             "--cpus", "1", "--kernel", kernel]
        if initrd:
            a += ["--initrd", initrd]
        if disk:
            a += ["--disk", disk]
        return a
    machine = vmm.split("-")[1]
    # -arch-capabilities: QEMU 7.2 asserts on MSR 0x10a under PVM and TCG-nested KVM.
    a = ["qemu-system-x86_64", "-M", machine, "-enable-kvm", "-cpu", "host,-arch-capabilities",
         "-smp", "1", "-m", str(mem), "-nodefaults", "-no-user-config", "-display", "none",
         "-no-reboot", "-serial", "stdio", "-kernel", kernel]
    if initrd:
        a += ["-initrd", initrd, "-append", cmdline]
    if disk:
        dev = "virtio-blk-pci" if machine == "pc" else "virtio-blk-device"
        a += ["-drive", "file=%s,if=none,id=d0,format=raw" % disk, "-device", dev + ",drive=d0"]
    return a


def first_run(argv, preload, tmp, timeout=30):
    """(wall seconds exec -> first KVM_RUN, CPU seconds at that moment)."""
    rec = os.path.join(tmp, "first-run")
    with open(rec, "wb") as f:
        f.write(b"\0" * 4096)
    env = dict(os.environ, LD_PRELOAD=preload, OVERHEAD_FIRST_RUN_FILE=rec)
    env.pop("UVM_LOG", None)
    t0 = time.monotonic_ns()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    seen = None
    while time.monotonic_ns() - t0 < timeout * 1e9:
        with open(rec, "rb") as f:
            seen, wall, cpu = struct.unpack("<QQQ", f.read(24))
        if seen or p.poll() is not None:
            break
        time.sleep(0.002)
    p.kill()
    p.wait()
    if not seen:
        die("%s: no KVM_RUN within %d s (status %s)" % (argv[0], timeout, p.returncode))
    return (wall - t0) / 1e9, cpu / 1e9


def smaps_sum(pid, guest_bytes):
    """(rss, private, private_dirty, excluded, anonymous) in KiB outside guest RAM."""
    tot = {"Rss": 0, "Private_Clean": 0, "Private_Dirty": 0, "Anonymous": 0}
    excluded = 0
    skip = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                anon = len(head) < 6 or not head[5].strip() or head[5].startswith("[anon")
                skip = anon and head[1].startswith("rw") and hi - lo >= 0.9 * guest_bytes
                excluded += skip
                continue
            key = head[0].rstrip(":")
            if key in tot and not skip:
                tot[key] += int(head[1])
    if not excluded:
        die("pid %d: no mapping the size of guest RAM in /proc/PID/smaps" % pid)
    return (tot["Rss"], tot["Private_Clean"] + tot["Private_Dirty"], tot["Private_Dirty"], excluded,
            tot["Anonymous"])


def wait_line(p, marker, timeout):
    """The monotonic time at which marker was read on p's stdout, or None."""
    t0 = time.monotonic()
    buf = b""
    os.set_blocking(p.stdout.fileno(), False)
    while time.monotonic() - t0 < timeout:
        chunk = p.stdout.read()
        if chunk:
            buf += chunk
            if marker in buf:
                return time.monotonic()
        elif p.poll() is not None:
            break
        time.sleep(0.005)
    return None


def idle_memory(argv, mem, timeout=120):
    """(rss, private, private_dirty, excluded, anonymous, threads) with the guest idle."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        if wait_line(p, IDLE_LINE, timeout) is None:
            die("%s: the idle payload never printed its line" % argv[0])
        time.sleep(0.3)
        return smaps_sum(p.pid, mem << 20) + (len(os.listdir("/proc/%d/task" % p.pid)),)
    finally:
        p.kill()
        p.wait()


def boot_ready(argv, timeout=600):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        t = wait_line(p, READY, timeout)
    finally:
        p.kill()
        p.wait()
    if t is None:
        die("%s: no readiness line in %d s" % (argv[0], timeout))
    return t - t0


def ratio_line(what, unit, fmt, med, target=None):
    s = med["uvm-shim"]
    parts = ["%s: uvm-shim %s %s" % (what, fmt % s, unit)]
    for q in med:
        if q != "uvm-shim":
            parts.append("%s %s (%.2fx)" % (q, fmt % med[q], s / med[q] if med[q] else 0))
    line = ", ".join(parts)
    if target:
        line += "  " + target
    print(line, flush=True)


def mode_setup(args, vmms):
    preload = os.path.join(BUILD, "bench", "overhead_preload.so")
    kernel = os.path.join(BUILD, "kvm", "payload_idle.elf")
    for f in (preload, kernel, SHIM, OTHER_SHIM or SHIM):
        if not os.path.exists(f):
            die("%s missing (make bench-overhead builds it)" % f)
    os.sync()  # a just-linked binary's dirty page cache would count as Private_Dirty
    tmp = tempfile.mkdtemp(prefix="bench-overhead-")
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    wall = {v: [] for v in vmms}
    cpu = {v: [] for v in vmms}
    memo = {v: [] for v in vmms}
    for i in range(args.runs):
        for v in vmms:
            argv = argv_for(v, kernel, None, args.memory, disk, None)
            w, c = first_run(argv, preload, tmp)
            wall[v].append(w)
            cpu[v].append(c)
            if i < args.memory_runs:
                memo[v].append(idle_memory(argv, args.memory))
            print("run %d %-13s exec->first KVM_RUN %7.2f ms wall %6.2f ms CPU" %
                  (i + 1, v, w * 1e3, c * 1e3) +
                  ("; idle: anonymous %d KiB, private dirty %d, RSS %d KiB, %d threads" %
                   (memo[v][-1][4], memo[v][-1][2], memo[v][-1][0], memo[v][-1][5])
                   if i < args.memory_runs else ""), flush=True)
    load = open("/proc/loadavg").read().split()[:3]
    print("medians over %d runs (memory: %d runs; exact, the same each run); load %s" %
          (args.runs, args.memory_runs, " ".join(load)))
    med_w = {v: statistics.median(wall[v]) * 1e3 for v in vmms}
    med_c = {v: statistics.median(cpu[v]) * 1e3 for v in vmms}
    ok_w = "qemu-microvm" not in vmms or med_w["uvm-shim"] <= 0.5 * med_w["qemu-microvm"]
    ratio_line("exec -> first KVM_RUN, wall", "ms", "%.2f", med_w,
               "(target <= 0.5x microvm and < 5 ms: %s)" %
               ("met" if ok_w and med_w["uvm-shim"] < 5 else "NOT met"))
    ratio_line("exec -> first KVM_RUN, CPU (user+sys)", "ms", "%.2f", med_c)
    for idx, what in ((4, "idle private (anonymous) memory outside guest RAM"),
                      (2, "idle Private_Dirty outside guest RAM"),
                      (1, "idle Private_Clean+Private_Dirty outside guest RAM"),
                      (0, "idle RSS outside guest RAM")):
        med = {v: statistics.median(m[idx] for m in memo[v]) for v in vmms}
        target = None
        if idx == 4:
            target = "(target <= 1024 KiB: %s)" % ("met" if med["uvm-shim"] <= 1024 else "NOT met")
        ratio_line(what, "KiB", "%d", med, target)
    print("(1 vCPU, %d MiB, one 64 MiB raw virtio-blk disk, the idle PVH payload; kvmtool: "
          "not in Debian bookworm)" % args.memory)


def mode_boot(args, vmms):
    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("--mode boot needs a real /dev/kvm (not PVM): run it in the test host")
    guest = os.path.join(BUILD, "guest")
    kernel, initrd = os.path.join(guest, "vmlinux"), os.path.join(guest, "initrd.img")
    for f in (kernel, initrd):
        if not os.path.exists(f):
            die("%s missing (make guest)" % f)
    cmdline = shim_base_cmdline()
    times = {v: [] for v in vmms}
    for i in range(args.runs):
        for v in vmms:
            times[v].append(boot_ready(argv_for(v, kernel, initrd, args.memory, None, cmdline)))
            print("run %d %-13s exec -> init ready %.2f s" % (i + 1, v, times[v][-1]),
                  flush=True)
    med = {v: statistics.median(times[v]) for v in vmms}
    ok = "qemu-microvm" in med and med["uvm-shim"] <= 0.6 * med["qemu-microvm"]
    ratio_line("boot to init (median of %d)" % args.runs, "s", "%.2f", med,
               "(target <= 0.6x microvm: %s)" % ("met" if ok else "NOT met"))
    print("(1 vCPU, %d MiB, %s and initrd.img, cmdline: %s)" % (args.memory, kernel, cmdline))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("setup", "boot"), default="setup")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--memory-runs", type=int, default=3)
    ap.add_argument("--memory", type=int,
                    help="guest RAM, MiB (default: 128 for setup, 512 for boot, as bench-boot)")
    ap.add_argument("--shim", help="the uvm-shim binary (default: build/uvm-shim)")
    ap.add_argument("--other-shim", help="another uvm-shim build, run as a VMM of its own "
                    "(uvm-shim-other, added to --vmms) to compare two builds")
    ap.add_argument("--vmms", default=",".join(VMMS),
                    help="comma-separated subset of " + ",".join(VMMS))
    args = ap.parse_args()
    global SHIM, OTHER_SHIM
    if args.shim:
        SHIM = os.path.abspath(args.shim)
    vmms = [v for v in args.vmms.split(",") if v]
    if vmms[:1] != ["uvm-shim"] or any(v not in VMMS for v in vmms):
        die("--vmms: uvm-shim first, then any of %s" % ", ".join(VMMS[1:]))
    if args.other_shim:
        OTHER_SHIM = os.path.abspath(args.other_shim)
        vmms.insert(1, "uvm-shim-other")
    args.memory_runs = min(args.memory_runs, args.runs)
    if args.memory is None:
        args.memory = 512 if args.mode == "boot" else 128
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        die("no usable /dev/kvm")
    (mode_boot if args.mode == "boot" else mode_setup)(args, vmms)


if __name__ == "__main__":
    main()
