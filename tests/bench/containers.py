#!/usr/bin/env python3
"""Container benchmark (issue 14), in one `uvm-shim serve` VM:

1. A container run: container.create + container.start + container.wait of
   `/bin/true` in a container on a busybox ext4 layer given as VPMem device 0
   (scratch in guest memory), timed on the host from the create request to
   the wait's answer; container.delete follows, untimed. Beside it, a plain
   guest.exec of `/bin/true` in the same VM to its process.wait answer.
   Alternating runs (--runs, default 20): median and p95 of each, and the
   ratio of the medians. Target: a container run <= 3x a plain exec.
   Beside the host's phases (create, start, wait answered), the agent's own
   from its log lines (gcs/container.c): the root made (mounts), crun
   create, crun start, and crun start to the init's exit (the agent does
   not see a pipe's first output; /bin/true has none). Also a guest.exec of
   `crun --version`: crun's own process start, which a container run pays
   twice (crun create, crun start).
2. Guest memory per extra idle container: --idle containers running
   `sleep`, the guest's MemAvailable (guest.properties) before and after
   (page cache dropped both times), divided by their number; beside it the
   mean of their cgroups' memory.current (container.stats), which leaves
   out what the kernel spends outside the cgroup (mounts, crun's state).
3. With --compare-initrd PATH, a second VM booted from that initrd (the
   same guest with Debian's libsystemd for crun instead of the stand-in,
   gcs/stub/libsystemd.c) gets the same container run and crun --version
   right after each of the first VM's: both medians and their ratio.

The layer is built here from Debian's busybox-static (mkfs.ext4 -d). Needs a
real /dev/kvm: `make bench-containers` runs it inside the test host."""

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve  # noqa: E402  (the `uvm-shim serve` client)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = 3.0  # a container run at most this many plain execs
SPEC = {
    "ociVersion": "1.0.0",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]},
}


def die(msg):
    sys.stderr.write("bench-containers: %s\n" % msg)
    sys.exit(1)


def tool(name):
    for p in (shutil.which(name), "/usr/sbin/" + name, "/sbin/" + name):
        if p and os.path.exists(p):
            return p
    die("%s is not installed (tests/install-deps)" % name)


def make_layer(tmp):
    """A 4096-aligned ext4 image of busybox and its applets."""
    bb = shutil.which("busybox")
    if not bb or subprocess.run(["ldd", bb], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0:
        die("no static busybox on the host (apt-get install busybox-static)")
    root = os.path.join(tmp, "rootfs")
    for d in ("bin", "proc", "dev", "tmp"):
        os.makedirs(os.path.join(root, d))
    shutil.copy(bb, os.path.join(root, "bin/busybox"))
    for a in ("true", "sh", "sleep"):
        os.symlink("busybox", os.path.join(root, "bin", a))
    img = os.path.join(tmp, "layer.ext4")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run([tool("mkfs.ext4"), "-F", "-q", "-b", "4096", "-d", root, img], check=True)
    return img


def spec(args):
    s = dict(SPEC)
    s["process"] = dict(SPEC["process"], args=args)
    return s


def container_run(s, cid, timeout):
    """(create+start+exit, create, start, wait) seconds; the delete after is not counted."""
    t0 = time.monotonic()
    s.call("container.create", timeout=timeout, id=cid, spec=spec(["/bin/true"]),
           root={"layers": [{"vpmem": 0}]})
    t1 = time.monotonic()
    s.call("container.start", timeout=timeout, id=cid)
    t2 = time.monotonic()
    r = s.call("container.wait", timeout=timeout, id=cid)
    t3 = time.monotonic()
    if r.get("exit_code") != 0:
        die("container %s: /bin/true ended with %r" % (cid, r))
    s.call("container.delete", timeout=timeout, id=cid)
    return t3 - t0, t1 - t0, t2 - t1, t3 - t2


# crun's process start alone (exec, its shared libraries, exit): a container run pays it in
# `crun create` and again in `crun start`; printed beside the figures to show that floor.
CRUN_ALONE = ("/usr/bin/crun", "--version")


def exec_run(s, timeout, argv=("/bin/true",)):
    t0 = time.monotonic()
    pid = s.call("guest.exec", timeout=timeout, argv=list(argv))["pid"]
    r = s.call("process.wait", timeout=timeout, pid=pid)
    t = time.monotonic() - t0
    if r.get("exit_code") != 0:
        die("guest.exec %s ended with %r" % (" ".join(argv), r))
    return t


def available_kib(s, timeout):
    pid = s.call("guest.exec", timeout=timeout,
                 argv=["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])["pid"]
    s.call("process.wait", timeout=timeout, pid=pid)
    return s.call("guest.properties", timeout=timeout)["memory"]["available_kib"]


# The agent's log lines with timings (gcs/container.c): the phases each gives, its pattern.
AGENT_LINES = (
    (("root", "crun create"), re.compile(
        r"uvm-gcs: container (\S+) created: pid \d+ \(root (\d+) ms, crun create (\d+) ms\)")),
    (("crun start",), re.compile(r"uvm-gcs: container (\S+) started \(crun start (\d+) ms\)")),
    (("start to exit",), re.compile(
        r"uvm-gcs: container (\S+) exited: .*\((\d+) ms after its start\)")),
)


def agent_phases(text, ids):
    """{phase: [ms of each id]} from the agent's log lines (the shim's stderr), for ids."""
    got = {}
    for names, rx in AGENT_LINES:
        for m in rx.finditer(text):
            if m.group(1) in ids:
                for k, name in enumerate(names):
                    got.setdefault(name, []).append(int(m.group(k + 2)))
    return got


def p95(v):
    v = sorted(v)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle", type=int, default=8, help="idle containers for the memory figure")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", type=int, default=1024, help="guest MiB")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--compare-initrd", help="a second VM from this initrd, run alternately")
    args = ap.parse_args()
    serve.PROG = "bench-containers"
    if args.runs < 1 or args.idle < 1:
        die("--runs and --idle must be at least 1")
    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("needs a real /dev/kvm (not PVM): run it with `make bench-containers` (the test host)")
    guest = os.path.join(REPO, "build", "guest")
    kernel, initrd = os.path.join(guest, "vmlinux"), os.path.join(guest, "initrd.img")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, initrd, shim) + ((args.compare_initrd,) if args.compare_initrd else ()):
        if not os.path.exists(f):
            die("%s missing (run make and make guest)" % f)

    tmp = tempfile.mkdtemp(prefix="bench-containers-", dir="/tmp")
    log_path = os.path.join(tmp, "shim.log")
    log = open(log_path, "w")
    img = make_layer(tmp)
    s = serve.Serve(shim, log)
    s.call("vm.create", kernel=kernel, initrd=initrd, cpus=args.cpus, memory_mib=args.memory,
           cmdline="quiet", vpmem_count=1, vpmem_max_bytes=64 << 20)
    s.call("vm.start", timeout=args.timeout)
    s.call("vpmem.add", timeout=args.timeout, device=0, host_path=img, read_only=True)
    other = None
    if args.compare_initrd:
        other = serve.Serve(shim, open(os.path.join(tmp, "other.log"), "w"))
        other.call("vm.create", kernel=kernel, initrd=args.compare_initrd, cpus=args.cpus,
                   memory_mib=args.memory, cmdline="quiet", vpmem_count=1,
                   vpmem_max_bytes=64 << 20)
        other.call("vm.start", timeout=args.timeout)
        other.call("vpmem.add", timeout=args.timeout, device=0, host_path=img, read_only=True)
    # warm-up (first crun run, first layer mount, page cache): not counted
    for vm in (s, other) if other else (s,):
        container_run(vm, "warm", args.timeout)
        exec_run(vm, args.timeout)

    ctr, exe, crun, phases, octr, ocrun = [], [], [], [], [], []
    for i in range(args.runs):
        t = container_run(s, "b%d" % i, args.timeout)
        ctr.append(t[0])
        phases.append(t[1:])
        exe.append(exec_run(s, args.timeout))
        crun.append(exec_run(s, args.timeout, CRUN_ALONE))
        print("run %2d container %7.1f ms (create %.1f, start %.1f, wait %.1f), exec %7.1f ms,"
              " crun --version %7.1f ms"
              % (i + 1, t[0] * 1e3, t[1] * 1e3, t[2] * 1e3, t[3] * 1e3, exe[-1] * 1e3,
                 crun[-1] * 1e3), flush=True)
        if other:
            octr.append(container_run(other, "b%d" % i, args.timeout)[0])
            ocrun.append(exec_run(other, args.timeout, CRUN_ALONE))
            print("       other initrd: container %7.1f ms, crun --version %7.1f ms"
                  % (octr[-1] * 1e3, ocrun[-1] * 1e3), flush=True)
    mc, me = statistics.median(ctr), statistics.median(exe)
    print("container phases, medians: create %.1f ms, start %.1f ms, wait %.1f ms"
          % tuple(statistics.median(p[k] for p in phases) * 1e3 for k in range(3)))
    with open(log_path, errors="replace") as f:
        agent = agent_phases(f.read(), {"b%d" % i for i in range(args.runs)})
    if agent:
        print("agent's phases, medians: " + ", ".join(
            "%s %d ms (%d runs)" % (k, statistics.median(v), len(v)) for k, v in agent.items()))
    else:
        print("agent's phases: none in the shim's log (an agent without timings?)")
    print("container create+start+exit: median %.1f ms, p95 %.1f ms" % (mc * 1e3,
                                                                        p95(ctr) * 1e3))
    print("plain guest.exec:            median %.1f ms, p95 %.1f ms" % (me * 1e3, p95(exe) * 1e3))
    print("guest.exec crun --version:   median %.1f ms, p95 %.1f ms (crun's own process start;"
          " a container run starts crun twice)" % (statistics.median(crun) * 1e3,
                                                   p95(crun) * 1e3))
    print("container / exec: %.2fx (target <= %.1fx: %s)"
          % (mc / me, TARGET, "met" if mc / me <= TARGET else "NOT met"))
    if other:
        oc, ocr = statistics.median(octr), statistics.median(ocrun)
        print("other initrd (%s): container median %.1f ms, crun --version median %.1f ms; "
              "this guest / other: container %.2fx, crun --version %.2fx"
              % (os.path.basename(args.compare_initrd), oc * 1e3, ocr * 1e3, mc / oc,
                 statistics.median(crun) / ocr))
        other.close()

    before = available_kib(s, args.timeout)
    ids = ["idle%d" % i for i in range(args.idle)]
    for cid in ids:
        s.call("container.create", timeout=args.timeout, id=cid,
               spec=spec(["/bin/sleep", "100000"]), root={"layers": [{"vpmem": 0}]})
        s.call("container.start", timeout=args.timeout, id=cid)
    time.sleep(2)
    after = available_kib(s, args.timeout)
    cur = [s.call("container.stats", timeout=args.timeout, id=cid)["memory"]["current"]
           for cid in ids]
    for cid in ids:
        s.call("container.delete", timeout=args.timeout, id=cid, force=True)
    print("guest memory per idle container: %.0f KiB (MemAvailable %d -> %d KiB over %d%s); "
          "its cgroup's memory.current: mean %.0f KiB"
          % ((before - after) / len(ids), before, after, len(ids),
             "; within the noise of one reading: raise --idle" if after >= before else "",
             statistics.mean(cur) / 1024.0))
    print("(%d runs, %d idle containers, %d vCPU, %d MiB guest; inside the test host: "
          "nested KVM under TCG)" % (args.runs, args.idle, args.cpus, args.memory))
    s.close()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
