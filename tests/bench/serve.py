#!/usr/bin/env python3
"""`uvm-shim serve` benchmarks, beside Debian's QEMU in the same test-host run:

1. GCS ready: exec of `uvm-shim serve` to the answer of vm.start (the guest
   agent dialled in and negotiated), three runs, median; QEMU: exec to the
   init's readiness line ("uvm-gcs: ready") on the same kernel and initrd.
   Target: uvm-shim <= 1.0x QEMU.
2. vsock throughput over a 256 MiB transfer, guest->host and host->guest,
   alternating runs (--runs, default 3), medians:
   uvm-shim's in-process virtio-vsock (host end: the Unix socket convention)
   against QEMU's vhost-vsock-pci (host end: AF_VSOCK). The guest side is
   the GCS's self-test tool (`/init bridge --vsock-dial PORT`) in both.
   Target: uvm-shim >= 1.0x QEMU.

Needs a real /dev/kvm: `make bench` runs it inside the test host."""

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY = b"uvm-gcs: ready"
BASE_CMDLINE = ("console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp "
                "i8042.dumbkbd")
SIZE = 256 << 20  # --mib changes it
PORT_G2H, PORT_H2G = 7000, 7001
PROG = "bench-serve"  # the prefix of error messages (tests/bench/pmem.py sets its own)


def die(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(1)


class Serve:
    def __init__(self, shim, log):
        self.p = subprocess.Popen([shim, "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log)
        self.n = 0
        self.buf = b""

    def call(self, method, timeout=300, **params):
        self.n += 1
        self.p.stdin.write((json.dumps({"id": self.n, "method": method, "params": params})
                            + "\n").encode())
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                m = json.loads(line)
                if m.get("id") == self.n:
                    if "error" in m:
                        die("%s: %s" % (method, m["error"]))
                    return m["result"]
            r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            if not r:
                die("no answer to %s" % method)
            chunk = os.read(fd, 65536)
            if not chunk:
                die("the shim closed stdout during %s" % method)
            self.buf += chunk

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def serve_ready(shim, kernel, initrd, cpus, mem, log):
    t0 = time.monotonic()
    s = Serve(shim, log)
    s.call("vm.create", kernel=kernel, initrd=initrd, cpus=cpus, memory_mib=mem, cmdline="quiet")
    s.call("vm.start")
    t = time.monotonic() - t0
    s.close()
    return t


def qemu_argv(kernel, initrd, cpus, mem, command, vsock=False):
    argv = ["qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
            "-smp", str(cpus), "-m", str(mem), "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd,
            "-append", "%s -- %s" % (BASE_CMDLINE, command)]
    if vsock:
        argv += ["-device", "vhost-vsock-pci,guest-cid=3"]
    return argv


def qemu_ready(argv, timeout=300):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    t = None
    for line in p.stdout:
        if READY in line:
            t = time.monotonic() - t0
            break
        if time.monotonic() - t0 > timeout:
            break
    p.kill()
    p.wait()
    if t is None:
        die("QEMU never printed the readiness line")
    return t


def receive_all(lst):
    """Accepts one connection, reads to EOF: (bytes, seconds from accept to EOF)."""
    c, _ = lst.accept()
    t0 = time.monotonic()
    total = 0
    buf = bytearray(1 << 20)
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        total += n
    t = time.monotonic() - t0
    c.close()
    return total, t


def send_all(lst):
    """Accepts one connection, writes SIZE bytes, waits for the guest to close."""
    c, _ = lst.accept()
    t0 = time.monotonic()
    chunk = b"\0" * (1 << 20)
    for _ in range(SIZE // len(chunk)):
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    while c.recv(4096):
        pass  # the guest's tool closes once it has read everything
    t = time.monotonic() - t0
    c.close()
    return SIZE, t


def guest_cmd():
    # The guest writes from memory (--vsock-send), not from a busybox pipeline, so
    # the figure is the vsock path's and not the pipe's.
    return ("/init bridge --vsock-send %d %d; "
            "/init bridge --vsock-dial %d </dev/null >/dev/null" % (PORT_G2H, SIZE, PORT_H2G))


def run_transfers(make_listener, start_guest, log_what):
    res = {}
    l1, l2 = make_listener(PORT_G2H), make_listener(PORT_H2G)
    out = {}

    def run(key, fn, lst):
        try:
            out[key] = fn(lst)
        except Exception as e:  # reported below as a missing result
            sys.stderr.write("bench-serve: %s %s: %r\n" % (log_what, key, e))

    t1 = threading.Thread(target=run, args=("g2h", receive_all, l1))
    t2 = threading.Thread(target=run, args=("h2g", send_all, l2))
    t1.start()
    t2.start()
    finish = start_guest()
    t1.join(600)
    t2.join(600)
    finish()
    for k in ("g2h", "h2g"):
        if k not in out:
            die("%s: the %s transfer did not finish" % (log_what, k))
        n, t = out[k]
        print("%s %s: %d bytes in %.2f s" % (log_what, k, n, t), flush=True)
        if n != SIZE:
            die("%s: %s moved %d bytes, not %d" % (log_what, k, n, SIZE))
        res[k] = SIZE / t / 1e6
    l1.close()
    l2.close()
    return res


def shim_throughput(shim, kernel, initrd, cpus, mem, tmp, log):
    path = tempfile.mktemp(prefix="v", suffix=".sock", dir=tmp)  # a fresh name per run

    def listener(port):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("%s_%d" % (path, port))
        s.listen(1)
        return s

    s = Serve(shim, log)
    s.call("vm.create", kernel=kernel, initrd=initrd, cpus=cpus, memory_mib=mem,
           cmdline="quiet", vsock_path=path)
    s.call("vm.start")

    def start():
        pid = s.call("guest.exec", argv=["sh", "-c", guest_cmd()])["pid"]
        return lambda: (s.call("process.wait", timeout=600, pid=pid), s.close())

    return run_transfers(listener, start, "uvm-shim")


def qemu_throughput(kernel, initrd, cpus, mem):
    if not os.path.exists("/dev/vhost-vsock"):
        subprocess.run(["modprobe", "vhost_vsock"], check=False)
    if not os.path.exists("/dev/vhost-vsock"):
        return None

    def listener(port):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, port))
        s.listen(1)
        return s

    def start():
        p = subprocess.Popen(qemu_argv(kernel, initrd, cpus, mem, guest_cmd(), vsock=True),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        return lambda: (p.wait(timeout=120) if p.poll() is None else None)

    return run_transfers(listener, start, "qemu")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--mib", type=int, default=256, help="vsock transfer size")
    ap.add_argument("--skip-ready", action="store_true")
    ap.add_argument("--kernel", choices=("vmlinux", "bzimage"), default="vmlinux",
                    help="the kernel file both VMMs boot (default: the ELF vmlinux, "
                    "what the default guest boots)")
    ap.add_argument("--qemu-kernel", choices=("vmlinux", "bzimage"),
                    help="another kernel file for QEMU's boot-to-init (QEMU loads a "
                    "large ELF slowly; default: as --kernel)")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    global SIZE
    SIZE = args.mib << 20
    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("needs a real /dev/kvm (not PVM): run it with `make bench` (the test host)")
    guest = os.path.join(REPO, "build", "guest")
    kernel = os.path.join(guest, "vmlinux" if args.kernel == "vmlinux" else "vmlinuz")
    initrd = os.path.join(guest, "initrd.img")
    qkernel = kernel
    if args.qemu_kernel:
        qkernel = os.path.join(guest, "vmlinux" if args.qemu_kernel == "vmlinux" else "vmlinuz")
    print("kernel: %s (QEMU's boot-to-init: %s)" % (kernel, qkernel), flush=True)
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, initrd, shim):
        if not os.path.exists(f):
            die("%s missing (run make and make guest)" % f)
    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    log = open(os.path.join(tmp, "shim.log"), "w")

    shim_t, qemu_t = [], []
    qargv = qemu_argv(qkernel, initrd, args.cpus, args.memory, "true")
    for i in range(0 if args.skip_ready else args.runs):
        shim_t.append(serve_ready(shim, kernel, initrd, args.cpus, args.memory, log))
        qemu_t.append(qemu_ready(qargv))
        print("run %d  uvm-shim serve -> vm.start answered %6.2f s   qemu -> init ready %6.2f s"
              % (i + 1, shim_t[-1], qemu_t[-1]), flush=True)
    if shim_t:
        ms, mq = statistics.median(shim_t), statistics.median(qemu_t)
        print("median GCS ready: uvm-shim %.2f s, QEMU boot-to-init %.2f s: %.2fx (target <= 1.0x: %s)"
              % (ms, mq, ms / mq, "met" if ms / mq <= 1.0 else "NOT met"), flush=True)
    if args.skip_throughput:
        return

    # Alternating runs, medians: one transfer each swings by tens of percent.
    runs = {"uvm-shim": {"g2h": [], "h2g": []}, "qemu": {"g2h": [], "h2g": []}}
    for i in range(args.runs):
        st = shim_throughput(shim, kernel, initrd, args.cpus, args.memory, tmp, log)
        print("run %d uvm-shim vsock %d MiB: guest->host %.1f MB/s, host->guest %.1f MB/s"
              % (i + 1, args.mib, st["g2h"], st["h2g"]), flush=True)
        qt = qemu_throughput(kernel, initrd, args.cpus, args.memory)
        if qt is None:
            print("QEMU vhost-vsock: skipped (no /dev/vhost-vsock; module vhost_vsock missing)")
            return
        print("run %d QEMU vhost-vsock %d MiB: guest->host %.1f MB/s, host->guest %.1f MB/s"
              % (i + 1, args.mib, qt["g2h"], qt["h2g"]), flush=True)
        for name, res in (("uvm-shim", st), ("qemu", qt)):
            for k in ("g2h", "h2g"):
                runs[name][k].append(res[k])
    for k, name in (("g2h", "guest->host"), ("h2g", "host->guest")):
        ms, mq = statistics.median(runs["uvm-shim"][k]), statistics.median(runs["qemu"][k])
        r = ms / mq
        print("median %s (%d runs): uvm-shim %.1f MB/s, QEMU %.1f MB/s: %.2fx "
              "(target >= 1.0x: %s)" % (name, args.runs, ms, mq, r, "met" if r >= 1.0 else "NOT met"))
    print("(%d vCPU, %d MiB; inside the test host: nested KVM under TCG)"
          % (args.cpus, args.memory))


if __name__ == "__main__":
    main()
