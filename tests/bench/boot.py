#!/usr/bin/env python3
"""Boot benchmark: the default guest (Debian's kernel, our initrd) under
uvm-shim and under Debian's QEMU (-M pc, KVM), same kernel, initrd, command
line, vCPUs and memory; the guest runs `true` and reboots.

Both VMMs boot the same kernel file: the ELF vmlinux (PVH entry, what
`uvm-shim run` boots by default; QEMU takes it too) and the bzImage (whose
XZ decompression is guest work both pay), each compared on its own.
For each run: seconds from exec to the init's readiness line, and to the
VMM's exit. Runs alternate between the two VMMs to spread machine noise;
medians and the ratio uvm-shim / QEMU are printed. Needs a real /dev/kvm
(`make bench` runs it inside the test host)."""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY = b"uvm-gcs: ready"
# QEMU gets the string uvm-shim builds: its base command line (read from
# shim/run.c so the two cannot drift apart; this copy is the fallback).
BASE_CMDLINE = ("console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp "
                "i8042.dumbkbd")


def shim_base_cmdline():
    try:
        with open(os.path.join(REPO, "shim", "machine.h")) as f:
            src = f.read()
    except OSError:
        return BASE_CMDLINE
    m = re.search(r"#define\s+MACHINE_BASE_CMDLINE\s*\\?\s*((?:\"[^\"]*\"\s*)+)", src)
    if not m:
        return BASE_CMDLINE
    return "".join(re.findall(r"\"([^\"]*)\"", m.group(1)))


TARGET = 0.8


def measure(argv, timeout):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    t_ready = None
    out = b""
    while True:
        line = p.stdout.readline()
        if not line:
            break
        out += line
        if t_ready is None and READY in line:
            t_ready = time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            p.kill()
            break
    err = p.stderr.read()
    rc = p.wait()
    t_exit = time.monotonic() - t0
    if rc != 0 or t_ready is None:
        sys.stderr.write("bench: %s failed (status %d, ready %s)\n--- stdout:\n%s\n"
                         "--- stderr:\n%s\n" % (argv[0], rc, t_ready is not None,
                                                out.decode(errors="replace")[-3000:],
                                                err.decode(errors="replace")[-2000:]))
        sys.exit(1)
    return t_ready, t_exit


def compare(name, kernel, initrd, shim, args, cmdline):
    """Alternating runs of both VMMs on one kernel file; returns the exit ratio."""
    extra = args.extra.strip()
    # The console on stdout, where measure() looks for the readiness line (with a
    # command, run sends it to stderr by default).
    shim_argv = [shim, "run", "--console", "stdio", "--kernel", kernel, "--initrd", initrd,
                 "--cpus", str(args.cpus), "--memory", str(args.memory)]
    if extra:
        shim_argv += ["--cmdline", extra]
    shim_argv += ["--", "true"]
    qemu_argv = ["qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
                 "-smp", str(args.cpus), "-m", str(args.memory),
                 "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                 "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
                 "-append", cmdline]
    print("== %s (%s, %d MB)" % (name, os.path.basename(kernel),
                                  os.path.getsize(kernel) >> 20), flush=True)
    results = {"uvm-shim": [], "qemu": []}
    for i in range(args.runs):
        for vmm, argv in (("uvm-shim", shim_argv), ("qemu", qemu_argv)):
            t_ready, t_exit = measure(argv, args.timeout)
            results[vmm].append((t_ready, t_exit))
            print("run %d %-8s ready %6.2f s  exit %6.2f s  (test host load %.1f)"
                  % (i + 1, vmm, t_ready, t_exit, os.getloadavg()[0]), flush=True)
    med = {n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for n, v in results.items()}
    print("median   uvm-shim: ready %.2f s, exit %.2f s" % med["uvm-shim"])
    print("median   qemu:     ready %.2f s, exit %.2f s" % med["qemu"])
    ratio_ready = med["uvm-shim"][0] / med["qemu"][0]
    ratio_exit = med["uvm-shim"][1] / med["qemu"][1]
    print("ratio uvm-shim/qemu (%s): to ready %.2fx, to exit %.2fx (target <= %.1fx: %s)"
          % (name, ratio_ready, ratio_exit, TARGET,
             "met" if ratio_exit <= TARGET else "NOT met"), flush=True)
    return med["uvm-shim"][1], med["qemu"][1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--extra", default="",
                    help="added to the kernel command line of both")
    ap.add_argument("--kernel", choices=("vmlinux", "bzimage", "both"), default="both",
                    help="the kernel file both VMMs boot: the ELF vmlinux (PVH entry, "
                    "what `uvm-shim run` boots by default), the bzImage, or each in turn")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        sys.exit("bench: needs a real /dev/kvm (not PVM): run it with `make bench`, "
                 "which uses the test host")
    guest = os.path.join(REPO, "build", "guest")
    kernels = {"vmlinux": os.path.join(guest, "vmlinux"),
               "bzimage": os.path.join(guest, "vmlinuz")}
    initrd = os.path.join(guest, "initrd.img")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in list(kernels.values()) + [initrd, shim]:
        if not os.path.exists(f):
            sys.exit("bench: %s missing (run make and make guest)" % f)

    extra = args.extra.strip()
    cmdline = " ".join(x for x in (shim_base_cmdline(), extra, "-- true") if x)
    names = ("vmlinux", "bzimage") if args.kernel == "both" else (args.kernel,)
    exits = {}
    for name in names:
        exits[name] = compare(name, kernels[name], initrd, shim, args, cmdline)
    if len(names) > 1:
        # Each VMM on the file it boots faster: QEMU loads a large ELF slowly (through
        # its option ROM), so the vmlinux comparison alone would flatter uvm-shim.
        u = min(names, key=lambda n: exits[n][0])
        q = min(names, key=lambda n: exits[n][1])
        ratio = exits[u][0] / exits[q][1]
        print("each on its faster file: uvm-shim %.2f s (%s) vs qemu %.2f s (%s): "
              "%.2fx (target <= %.1fx: %s)"
              % (exits[u][0], u, exits[q][1], q, ratio, TARGET,
                 "met" if ratio <= TARGET else "NOT met"))
    print("(%d vCPU, %d MiB, cmdline: %s; inside the test host, times are nested "
          "KVM under TCG)" % (args.cpus, args.memory, cmdline))


if __name__ == "__main__":
    main()
