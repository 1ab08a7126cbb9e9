#!/usr/bin/env python3
"""Boot exits: what the default guest's boot costs in KVM exits under
uvm-shim and under Debian's QEMU (-M microvm and -M pc), counted by the
test host's kernel.

Each VMM boots the same kernel (the ELF vmlinux by default), initrd, vCPUs,
memory and command line (uvm-shim's base command line, shim/machine.h, plus
`-- true`); the guest agent prints its readiness line, runs `true` and
reboots; the VMM is killed at the readiness line. Runs alternate between the VMMs. For each run, hist triggers on the
kvm tracepoints (tracefs, mounted here if it is not) count every exit from
the VMM's exec to its end: kvm_exit by exit reason, kvm_userspace_exit by
reason (the exits that reach the VMM's process), kvm_pio by port and
direction, kvm_mmio by address and type, kvm_msr by MSR and direction. Only
one VM runs at a time (the test host's kvm-keeper holds a VM whose vCPU
never runs), so the counts are this VM's. Printed per VMM: medians over the
runs of the wall time exec -> readiness line, the
total exits, exits by reason, the busiest ports, MMIO addresses and MSRs.

Needs a real /dev/kvm and root (tracefs): run it inside the test host,
`make bench-exits` (tests/bench/exits.mk)."""

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from boot import shim_base_cmdline  # noqa: E402  (the shim's own kernel command line)

READY = b"uvm-gcs: ready"
VMMS = ("uvm-shim", "qemu-microvm", "qemu-pc")
TRACEFS = "/sys/kernel/tracing"

# One hist trigger per tracepoint; the spec is written again with "!" to remove it.
TRIGGERS = {
    "kvm_exit": "hist:keys=exit_reason:vals=hitcount:size=256",
    "kvm_userspace_exit": "hist:keys=reason:vals=hitcount:size=128",
    "kvm_pio": "hist:keys=port,rw:vals=hitcount:size=512",
    "kvm_mmio": "hist:keys=gpa,type:vals=hitcount:size=2048",
    "kvm_msr": "hist:keys=ecx,write:vals=hitcount:size=512",
}

# include/uapi/linux/kvm.h KVM_EXIT_* (what KVM_RUN returns to user space).
USER_EXITS = {0: "unknown", 2: "io", 5: "hlt", 6: "mmio", 7: "irq_window_open", 8: "shutdown",
              9: "fail_entry", 10: "intr", 17: "internal_error", 24: "system_event",
              29: "x86_rdmsr", 30: "x86_wrmsr"}
# kvm_mmio's type (include/trace/events/kvm.h).
MMIO_TYPES = {0: "read-unsatisfied", 1: "read", 2: "write"}

PORTS = [  # (first, last, what): to name the busiest ports
    (0x00, 0x1f, "DMA1"), (0x20, 0x21, "PIC master"), (0x40, 0x43, "PIT"),
    (0x60, 0x60, "i8042 data"), (0x61, 0x61, "port B (PIT gate/speaker)"),
    (0x64, 0x64, "i8042 cmd"), (0x70, 0x71, "CMOS/RTC"), (0x80, 0x80, "POST delay"),
    (0x81, 0x8f, "DMA page"), (0x92, 0x92, "fast A20/reset"), (0xa0, 0xa1, "PIC slave"),
    (0xc0, 0xdf, "DMA2"), (0xf0, 0xff, "FPU"), (0x1f0, 0x1f7, "IDE"), (0x278, 0x27f, "LPT2"),
    (0x2e8, 0x2ef, "COM4"), (0x2f8, 0x2ff, "COM2"), (0x378, 0x37f, "LPT1"),
    (0x3b0, 0x3df, "VGA"), (0x3e8, 0x3ef, "COM3"), (0x3f0, 0x3f7, "floppy"),
    (0x3f8, 0x3ff, "COM1"), (0x402, 0x402, "debug"), (0x4d0, 0x4d1, "ELCR"),
    (0x510, 0x51b, "fw_cfg"), (0x600, 0x63f, "ACPI PM"), (0xae00, 0xaf1f, "QEMU PCI/CPU hotplug"),
    (0xafe0, 0xafe3, "QEMU GPE"), (0xb000, 0xb03f, "QEMU ACPI PM"), (0xcf8, 0xcff, "PCI config"),
]
MSRS = {0x10: "TSC", 0x1b: "APIC_BASE", 0x3a: "FEATURE_CONTROL", 0x48: "SPEC_CTRL",
        0x8b: "UCODE_REV", 0xe7: "MPERF", 0xe8: "APERF", 0x10a: "ARCH_CAPABILITIES",
        0x1a0: "MISC_ENABLE", 0x277: "PAT", 0x6e0: "TSC_DEADLINE", 0x802: "x2APIC ID",
        0x803: "x2APIC version", 0x808: "x2APIC TPR", 0x80b: "x2APIC EOI",
        0x80d: "x2APIC LDR", 0x80f: "x2APIC SVR", 0x828: "x2APIC ESR", 0x830: "x2APIC ICR",
        0x832: "x2APIC LVT timer", 0x835: "x2APIC LINT0", 0x836: "x2APIC LINT1",
        0x837: "x2APIC LVT error", 0x838: "x2APIC timer initial count",
        0x83e: "x2APIC timer divide", 0xc0000080: "EFER", 0xc0000081: "STAR",
        0xc0000082: "LSTAR", 0xc0000083: "CSTAR", 0xc0000084: "FMASK", 0xc0000100: "FS_BASE",
        0xc0000101: "GS_BASE", 0xc0000102: "KERNEL_GS_BASE", 0xc0000103: "TSC_AUX",
        0x4b564d00: "KVM wall clock", 0x4b564d01: "KVM system time",
        0x4b564d02: "KVM async PF", 0x4b564d03: "KVM steal time", 0x4b564d04: "KVM PV EOI",
        0x4b564d05: "KVM poll control", 0x4b564d06: "KVM async PF int",
        0x4b564d07: "KVM async PF ack", 0x4b564d08: "KVM migration control"}


def die(msg):
    sys.stderr.write("bench-exits: %s\n" % msg)
    sys.exit(1)


def port_name(port):
    for lo, hi, what in PORTS:
        if lo <= port <= hi:
            return what
    return ""


def exit_reason_names():
    """Exit code -> name, from the uapi header of the test host's CPU vendor."""
    svm = os.path.exists("/sys/module/kvm_amd")
    hdr = "/usr/include/x86_64-linux-gnu/asm/" + ("svm.h" if svm else "vmx.h")
    pat = r"#define\s+SVM_EXIT_(\w+)\s+(0x[0-9a-fA-F]+)" if svm else \
        r"#define\s+EXIT_REASON_(\w+)\s+(\d+)"
    names = {}
    try:
        with open(hdr) as f:
            for name, val in re.findall(pat, f.read()):
                names.setdefault(int(val, 0), name.lower())
    except OSError:
        pass  # numbers only
    return names


def tracefs():
    if not os.path.exists(os.path.join(TRACEFS, "events")):
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS],
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            die("cannot mount tracefs on %s: %s" % (TRACEFS, r.stderr.decode().strip()))
    for ev in TRIGGERS:
        if not os.path.exists(os.path.join(TRACEFS, "events", "kvm", ev)):
            die("no kvm:%s tracepoint (kvm loaded? CONFIG_HIST_TRIGGERS?)" % ev)


def trigger(ev, on):
    """Adds (on) or removes one event's hist trigger (sizes: powers of two, >= 128)."""
    path = os.path.join(TRACEFS, "events", "kvm", ev, "trigger")
    try:
        with open(path, "w") as f:
            f.write(("" if on else "!") + TRIGGERS[ev] + "\n")
    except OSError as e:
        if not on:
            return  # it was never added
        try:
            with open(os.path.join(TRACEFS, "error_log")) as f:
                log = f.read().strip()
        except OSError:
            log = ""
        die("kvm:%s trigger %r: %s\n%s" % (ev, TRIGGERS[ev], e, log))


def read_hist(ev):
    """{key tuple: hits} and the Dropped count of one event's hist."""
    with open(os.path.join(TRACEFS, "events", "kvm", ev, "hist")) as f:
        text = f.read()
    out = {}
    for line in text.splitlines():
        m = re.match(r"\{(.*)\}\s+hitcount:\s+(\d+)", line)
        if not m:
            continue
        key = tuple(int(v, 0) for v in re.findall(r":\s*(0x[0-9a-fA-F]+|\d+)", m.group(1)))
        out[key] = out.get(key, 0) + int(m.group(2))
    dropped = re.search(r"Dropped:\s*(\d+)", text)
    return out, int(dropped.group(1)) if dropped else 0


def argv_for(vmm, shim, kernel, initrd, args, cmdline):
    if vmm.startswith("uvm-shim"):
        a = [shim, "run", "--console", "stdio", "--kernel", kernel, "--initrd", initrd,
             "--cpus", str(args.cpus), "--memory", str(args.memory)]
        if args.extra:
            a += ["--cmdline", args.extra]
        return a + ["--", "true"]
    machine = vmm.split("-")[1]
    # -arch-capabilities: QEMU 7.2 asserts on MSR 0x10a under TCG-nested KVM.
    return ["qemu-system-x86_64", "-M", machine, "-enable-kvm", "-cpu", "host,-arch-capabilities",
            "-smp", str(args.cpus), "-m", str(args.memory), "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
            "-initrd", initrd, "-append", cmdline + " -- true"]


def one_run(argv, timeout):
    """Counts and wall times of one boot, the triggers armed around it."""
    for ev in TRIGGERS:
        trigger(ev, True)
    try:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        # readline() blocks: a guest that goes quiet is killed by this timer.
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        t_ready, out = None, b""
        while True:
            line = p.stdout.readline()
            if not line:
                break
            out += line
            if READY in line:
                # Counted to here: after `true` the guest reboots, which QEMU's
                # microvm answers by booting it again (its firmware reloads the
                # kernel) instead of exiting with -no-reboot.
                t_ready = time.monotonic() - t0
                p.kill()
                break
        timer.cancel()
        p.kill()
        err = p.stderr.read()
        rc = p.wait()
        hists = {}
        dropped = 0
        for ev in TRIGGERS:
            hists[ev], d = read_hist(ev)
            dropped += d
    finally:
        for ev in TRIGGERS:
            trigger(ev, False)
    if t_ready is None:
        die("%s failed (status %d, ready %s)\n--- stdout:\n%s\n--- stderr:\n%s"
            % (argv[0], rc, t_ready is not None, out.decode(errors="replace")[-3000:],
               err.decode(errors="replace")[-2000:]))
    if dropped:
        sys.stderr.write("bench-exits: %d hist entries dropped (a table was full)\n" % dropped)
    return {"ready": t_ready, "hists": hists}


def median_counts(runs, ev, fold=lambda k: k):
    """{folded key: median over runs of its hits} (a key missing from a run counts 0)."""
    per_run = []
    for r in runs:
        c = {}
        for k, v in r["hists"][ev].items():
            c[fold(k)] = c.get(fold(k), 0) + v
        per_run.append(c)
    keys = set().union(*per_run)
    return {k: statistics.median(c.get(k, 0) for c in per_run) for k in keys}


def table(title, rows, vmms, label, top):
    """rows: {key: {vmm: count}}; the `top` busiest keys of each VMM, one column each."""
    keep = set()
    for v in vmms:
        keep.update(sorted((k for k in rows if rows[k].get(v)), key=lambda k: -rows[k][v])[:top])
    keep = sorted(keep, key=lambda k: -max(rows[k].get(v, 0) for v in vmms))
    print("-- %s" % title)
    print("  %-40s" % "" + "".join("%14s" % v for v in vmms))
    for k in keep:
        print("  %-40s" % label(k)[:40] + "".join("%14d" % rows[k].get(v, 0) for v in vmms))


def report(results, vmms, names, top):
    med = {v: {"ready": statistics.median(r["ready"] for r in results[v])} for v in vmms}
    for v in vmms:
        runs = results[v]
        med[v]["total"] = statistics.median(sum(r["hists"]["kvm_exit"].values()) for r in runs)
        med[v]["user"] = statistics.median(sum(r["hists"]["kvm_userspace_exit"].values())
                                           for r in runs)
        for ev, fold in (("kvm_exit", lambda k: k[0]), ("kvm_userspace_exit", lambda k: k[0]),
                         ("kvm_pio", lambda k: (k[0], k[1])),
                         ("kvm_mmio", lambda k: (k[0], k[1])),
                         ("kvm_msr", lambda k: (k[0], k[1]))):
            med[v][ev] = median_counts(runs, ev, fold)
    n = len(results[vmms[0]])
    print("== medians of %d runs" % n)
    print("  %-40s" % "" + "".join("%14s" % v for v in vmms))
    print("  %-40s" % "exec -> ready (s)" + "".join("%14.2f" % med[v]["ready"] for v in vmms))
    print("  %-40s" % "KVM exits (all)" + "".join("%14d" % med[v]["total"] for v in vmms))
    print("  %-40s" % "exits to user space" + "".join("%14d" % med[v]["user"] for v in vmms))

    def rows(ev):
        r = {}
        for v in vmms:
            for k, c in med[v][ev].items():
                r.setdefault(k, {})[v] = c
        return r

    table("KVM exits by reason (kvm_exit)", rows("kvm_exit"), vmms,
          lambda k: "%s (0x%x)" % (names.get(k, "?"), k), 99)
    table("exits to user space by reason (kvm_userspace_exit)", rows("kvm_userspace_exit"),
          vmms, lambda k: USER_EXITS.get(k, str(k)), 99)
    table("port I/O (kvm_pio; in the kernel or in the VMM)", rows("kvm_pio"), vmms,
          lambda k: "0x%x %s %s" % (k[0], "out" if k[1] else "in", port_name(k[0])), top)
    table("MMIO (kvm_mmio)", rows("kvm_mmio"), vmms,
          lambda k: "0x%x %s" % (k[0], MMIO_TYPES.get(k[1], k[1])), top)
    table("MSR accesses (kvm_msr; only those that exit)", rows("kvm_msr"), vmms,
          lambda k: "0x%x %s %s" % (k[0], "wr" if k[1] else "rd", MSRS.get(k[0], "")), top)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--kernel", choices=("vmlinux", "bzimage"), default="vmlinux",
                    help="the guest's ELF vmlinux (PVH entry, uvm-shim's default) or bzImage")
    ap.add_argument("--initrd", help="default: build/guest/initrd.img")
    ap.add_argument("--extra", default="", help="added to every VMM's kernel command line")
    ap.add_argument("--vmms", default=",".join(VMMS),
                    help="comma-separated subset of " + ",".join(VMMS))
    ap.add_argument("--shim", default=os.path.join(REPO, "build", "uvm-shim"))
    ap.add_argument("--other-shim", help="another uvm-shim build, run as uvm-shim-other "
                    "beside the others (before/after a change)")
    ap.add_argument("--top", type=int, default=12, help="busiest ports/addresses/MSRs shown")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    args.extra = args.extra.strip()

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("needs a real /dev/kvm (not PVM): run it in the test host (make bench-exits)")
    if os.geteuid() != 0:
        die("needs root (tracefs)")
    vmms = [v for v in args.vmms.split(",") if v]
    if any(v not in VMMS for v in vmms):
        die("--vmms: any of %s" % ",".join(VMMS))
    guest = os.path.join(REPO, "build", "guest")
    kernel = os.path.join(guest, "vmlinux" if args.kernel == "vmlinux" else "vmlinuz")
    initrd = args.initrd or os.path.join(guest, "initrd.img")
    shims = {"uvm-shim": os.path.abspath(args.shim)}
    if args.other_shim:
        shims["uvm-shim-other"] = os.path.abspath(args.other_shim)
        vmms.insert(vmms.index("uvm-shim") + 1 if "uvm-shim" in vmms else 0, "uvm-shim-other")
    for f in [kernel, initrd] + [shims[v] for v in vmms if v in shims]:
        if not os.path.exists(f):
            die("%s missing (make and make guest)" % f)
    tracefs()
    names = exit_reason_names()
    cmdline = " ".join(x for x in (shim_base_cmdline(), args.extra) if x)

    results = {v: [] for v in vmms}
    for i in range(args.runs):
        for v in vmms:
            r = one_run(argv_for(v, shims.get(v), kernel, initrd, args, cmdline), args.timeout)
            results[v].append(r)
            print("run %d %-14s ready %6.2f s  exits %7d (user space %6d)  "
                  "(test host load %.1f)"
                  % (i + 1, v, r["ready"], sum(r["hists"]["kvm_exit"].values()),
                     sum(r["hists"]["kvm_userspace_exit"].values()), os.getloadavg()[0]),
                  flush=True)
    report(results, vmms, names, args.top)
    print("(%d vCPU, %d MiB, %s and %s, cmdline: %s -- true; inside the test host, exits "
          "counted by its kernel (nested KVM under TCG))"
          % (args.cpus, args.memory, os.path.basename(kernel), os.path.basename(initrd), cmdline))


if __name__ == "__main__":
    main()
