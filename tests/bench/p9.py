#!/usr/bin/env python3
"""virtio-9p benchmark: one host directory (on the test host's tmpfs, so the
host disk is out of the picture) shared into a guest under uvm-shim (`run
--share`, mounted by the guest agent) and under Debian's QEMU (`-virtfs
local,security_model=passthrough`, mounted by the same command line with the
agent's options: trans=virtio, 9p2000.L, msize 512000, cache=mmap). Same
kernel, initrd, vCPUs and memory; runs alternate between the VMMs. In the
guest, timed from /proc/uptime:
  - write: 256 MiB into a new file (dd, 1 MiB blocks, fsync at the end);
  - read: the same file back after dropping the guest's caches (cat);
  - metadata: 2,000 files created (a shell redirection), each stat'ed (the
    shell's `[ -e ]`), then all unlinked by one rm: 6,000 operations.
Medians of MB/s and operations per second and the ratios uvm-shim / QEMU are
printed. Targets: metadata >= 1.5x, read and write >= 1.2x. Needs a real
/dev/kvm: `make bench-9p` runs it inside the test host."""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "testhost"))
from hang_report import children_of, threads_of  # noqa: E402
# uvm-shim's base command line (shim/machine.c); QEMU gets the same string.
BASE_CMDLINE = ("console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp "
                "i8042.dumbkbd")
MNT = "/mnt/share"
TAG = "bench9p"
# The guest agent's mount options (gcs/storage.c gcs_plan9_add), for QEMU's mount.
MOUNT_OPTS = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap"
TARGETS = {"write": 1.2, "read": 1.2, "meta": 1.5}
UNITS = {"write": "MB/s", "read": "MB/s", "meta": "ops/s"}


def guest_script(size_mib, nfiles):
    """The measurement, one `RESULT name seconds` line per part (centiseconds)."""
    t = "read u _ < /proc/uptime; echo ${u%.*}${u#*.}"
    return (
        "set -e; cd %(m)s; "
        # Progress on stderr: with --vmm-log it lands in the log as it happens.
        "echo PHASE write >&2; "
        "t0=$(%(t)s); dd if=/dev/zero of=big bs=1M count=%(n)d conv=fsync 2>/dev/null; "
        "t1=$(%(t)s); echo RESULT write $((t1-t0)); "
        "echo 3 > /proc/sys/vm/drop_caches; echo PHASE read >&2; "
        "t0=$(%(t)s); cat big > /dev/null; t1=$(%(t)s); echo RESULT read $((t1-t0)); "
        "rm big; mkdir m; cd m; echo PHASE meta >&2; "
        "t0=$(%(t)s); i=0; while [ $i -lt %(f)d ]; do : > f$i; [ -e f$i ]; i=$((i+1)); done; "
        "rm -f f*; t1=$(%(t)s); echo RESULT meta $((t1-t0)); "
        "cd ..; rmdir m; echo RESULT done 0"
        % {"m": MNT, "t": t, "n": size_mib, "f": nfiles})


def results_of(out):
    r = {}
    for m in re.finditer(r"^RESULT (\w+) (\d+)\s*$", out, re.M):
        r[m.group(1)] = int(m.group(2)) / 100.0
    return r if "done" in r else None


def clean_share(share):
    """Removes what an earlier run left in the share (a run that failed or was
    killed leaves its file or work directory behind), keeping the script."""
    for name in os.listdir(share):
        if name == "bench.sh":
            continue
        path = os.path.join(share, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def threads_cpus(pid):
    """Each thread's state and the CPU it last ran on (/proc/PID/task/TID/stat)."""
    out = []
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError:
        return ""
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        rest = st[st.rindex(")") + 2:].split()
        # rest[0] is field 3 (state); the last CPU is field 39.
        out.append("%s %s cpu%s" % (name, rest[0], rest[36]))
    return "threads (state, last CPU): " + ", ".join(out) + "\n"


def local_timer_ticks():
    """Local timer interrupts per CPU of this (test) host, read twice 2 s
    apart: a CPU whose count stands still has stopped taking its timer (the
    test host's CPU 0 did in the hang of session 11, docs/virtio.md)."""
    def loc():
        try:
            with open("/proc/interrupts") as f:
                for line in f:
                    if line.split(":")[0].strip() == "LOC":
                        return [int(x) for x in line.split(":")[1].split() if x.isdigit()]
        except OSError:
            pass
        return []
    a = loc()
    time.sleep(2)
    b = loc()
    return "local timer interrupts per CPU in 2 s: %s\n" % (
        " ".join("cpu%d +%d" % (i, y - x) for i, (x, y) in enumerate(zip(a, b))) or "unknown")


def run(argv, timeout, log=None):
    """Runs one VM; on a timeout, says what the VMM's threads were doing and
    what the guest printed before it is killed. With log (a file open for
    appending), the VMM's stderr goes there as it is written, so a test host
    that goes down does not take the VMM's last lines with it."""
    # A session of its own: on a timeout the whole group goes (a child left holding the
    # pipes kept communicate() waiting for ever in session 10, and the report with it).
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=log if log else subprocess.PIPE, start_new_session=True)
    try:
        so, se = p.communicate(timeout=timeout)
        se = se or b""
    except subprocess.TimeoutExpired:
        where = (threads_of(p.pid) + threads_cpus(p.pid) + local_timer_ticks() +
                 children_of(p.pid))
        print("run timed out after %d s; the VMM's threads:\n%s" % (timeout, where), flush=True)
        os.killpg(p.pid, signal.SIGKILL)
        try:
            so, se = p.communicate(timeout=60)
            se = se or b""
        except subprocess.TimeoutExpired:
            so, se = b"", b"(its output pipes stayed open 60 s after the kill)"
        tail = (so + se).decode(errors="replace").replace("\r", "")[-3000:]
        return None, "timed out after %d s\n%s--- its output:\n%s" % (timeout, where, tail)
    out = so.decode(errors="replace").replace("\r", "")
    r = results_of(out)
    if r is None:
        tail = (out + se.decode(errors="replace"))[-1500:]
        return None, "status %d, no result:\n%s" % (p.returncode, tail)
    return r, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--first", choices=("uvm-shim", "qemu"), default="uvm-shim",
                    help="the VMM each round starts with")
    ap.add_argument("--vmm-log", metavar="FILE",
                    help="append each VMM's stderr to FILE as it runs (survives a test host "
                    "that goes down; use a path in the work tree, which the test host exports)")
    ap.add_argument("--only", choices=("uvm-shim", "qemu"),
                    help="run one VMM only (to reproduce a failure; no ratios)")
    args = ap.parse_args()

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        sys.exit("bench-9p: needs a real /dev/kvm (not PVM): run it with `make bench-9p`, "
                 "which uses the test host")
    kernel = os.path.join(REPO, "build", "guest", "vmlinuz")
    initrd = os.path.join(REPO, "build", "guest", "initrd.img")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, initrd, shim):
        if not os.path.exists(f):
            sys.exit("bench-9p: %s missing (run make, make guest)" % f)

    with tempfile.TemporaryDirectory(dir="/tmp") as share:
        # The script lives in the share: a kernel command line holds at most 32
        # words for init, too few for the script itself.
        with open(os.path.join(share, "bench.sh"), "w") as f:
            f.write(guest_script(args.size_mib, args.files) + "\n")
        script = "%s/bench.sh" % MNT
        shim_argv = [shim, "run", "--kernel", kernel, "--initrd", initrd,
                     "--cpus", str(args.cpus), "--memory", str(args.memory),
                     "--share", "%s:%s" % (share, MNT), "--", "sh", script]
        qemu_cmd = "mkdir -p %s; mount -t 9p -o %s %s %s; sh %s" % (
            MNT, MOUNT_OPTS, TAG, MNT, script)
        qemu_argv = ["qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
                     "-smp", str(args.cpus), "-m", str(args.memory),
                     "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                     "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
                     # The agent runs the words after "--" with /bin/sh -c (gcs/cmdline.c).
                     "-append", "%s -- %s" % (BASE_CMDLINE, qemu_cmd),
                     "-virtfs", "local,path=%s,mount_tag=%s,security_model=passthrough,"
                     "id=p9" % (share, TAG)]
        vmms = [("uvm-shim", shim_argv), ("qemu", qemu_argv)]
        if args.first == "qemu":
            vmms.reverse()
        if args.only:
            vmms = [v for v in vmms if v[0] == args.only]
        results = {name: {k: [] for k in TARGETS} for name, _ in vmms}
        for i in range(args.runs):
            for name, argv in vmms:
                clean_share(share)
                log = None
                if args.vmm_log:
                    log = open(args.vmm_log, "ab", buffering=0)
                    log.write(b"=== run %d %s\n" % (i + 1, name.encode()))
                r, why = run(argv, args.timeout, log)
                if log:
                    log.close()
                if r is None:
                    print("run %d %-9s FAILED: %s" % (i + 1, name, why), flush=True)
                    continue
                fig = {"write": args.size_mib * 1.048576 / max(r["write"], 0.01),
                       "read": args.size_mib * 1.048576 / max(r["read"], 0.01),
                       "meta": 3 * args.files / max(r["meta"], 0.01)}
                for k, v in fig.items():
                    results[name][k].append(v)
                print("run %d %-9s write %7.1f MB/s (%.2f s)  read %7.1f MB/s (%.2f s)  "
                      "meta %7.0f ops/s (%.2f s)"
                      % (i + 1, name, fig["write"], r["write"], fig["read"], r["read"],
                         fig["meta"], r["meta"]), flush=True)

    if any(not results[n]["read"] for n, _ in vmms):
        sys.exit("bench-9p: a VMM has no result at all")
    if args.only:
        return
    med = {n: {k: statistics.median(v) for k, v in results[n].items()} for n, _ in vmms}
    for name, _ in vmms:
        print("median   %-9s write %.1f MB/s, read %.1f MB/s, meta %.0f ops/s (%d runs)"
              % (name + ":", med[name]["write"], med[name]["read"], med[name]["meta"],
                 len(results[name]["read"])))
    for k, target in TARGETS.items():
        ratio = med["uvm-shim"][k] / med["qemu"][k]
        print("ratio uvm-shim/qemu %-5s %.2fx (target >= %.1fx: %s)"
              % (k + ":", ratio, target, "met" if ratio >= target else "NOT met"))
    print("(%d MiB file, %d files x create+stat+unlink, share on tmpfs, %d vCPUs, %d MiB; "
          "inside the test host: nested KVM under TCG)"
          % (args.size_mib, args.files, args.cpus, args.memory))


if __name__ == "__main__":
    main()
