#!/usr/bin/env python3
"""virtio-net benchmark: TCP throughput both ways and request/response rate,
in a guest under uvm-shim (`run --net tap=...`) and under Debian's QEMU
(-M pc, KVM, virtio-net-pci on `-netdev tap`) once with vhost=off (QEMU's
userspace virtio-net) and once with vhost=on (the kernel's vhost-net), same
kernel, initrd, vCPUs, memory, MAC and addresses, on the same persistent tap
(made here, the host side 10.60.0.1/24, the guest 10.60.0.2/24). Runs
alternate between the VMMs inside one test-host boot; medians and ratios are
printed.

Each run is one boot whose command is /bench/net.sh (tests/bench/net-guest.sh,
on the benchmark initrd with Debian's iperf3 and its libraries, see
tests/bench/net.mk): it gives the NIC its address where the VMM did not (QEMU),
then runs
- guest -> host: `iperf3 -c HOST -t SECS -O OMIT` against `iperf3 -s` here,
  the receiver's Gbit/s;
- host -> guest: the same with -R (the host's iperf3 sends);
- round trips: `nc HOST PORT -e cat` (busybox): cat echoes each byte on the
  connection. Here a Python loop (TCP_NODELAY) sends 1 byte and waits for it
  to come back, RR_OMIT seconds left out then RR_SECS counted; the figure is
  round trips per second, like netperf's TCP_RR with 1-byte messages. The
  host side's own cost per round trip (two system calls in Python) is in the
  figure for every VMM alike.

Targets (uvm-shim / QEMU userspace): throughput >= 1.2x both ways, round
trips >= 1.0x; uvm-shim / vhost-net is printed as it is. Without
/dev/vhost-net in the test host (module vhost_net) the vhost row says so and
has no figures. Needs root, a real /dev/kvm, /dev/net/tun, iproute2 and
iperf3: `make bench-net` runs it inside the test host."""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "testhost"))
from hang_report import children_of, threads_of  # noqa: E402
# uvm-shim's base command line (shim/run.c); QEMU gets the same string.
BASE_CMDLINE = ("console=ttyS0 quiet reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp "
                "i8042.dumbkbd")
TAP = "uvmbn%d" % (os.getpid() % 100000)
HOST, GUEST, PREFIX = "10.60.0.1", "10.60.0.2", 24
MAC = "02:00:00:00:60:02"
IPERF_PORT, RR_PORT = 5201, 5301
TP_TARGET, RR_TARGET = 1.2, 1.0
METRICS = (("g2h", "Gbit/s guest->host"), ("h2g", "Gbit/s host->guest"), ("rr", "round trips/s"))


def die(msg):
    sys.stderr.write("bench-net: %s\n" % msg)
    sys.exit(1)


def sh(*argv, check=True):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=check)


def vhost_reason():
    """None when /dev/vhost-net is usable, else why not."""
    if not os.path.exists("/dev/vhost-net"):
        r = sh("modprobe", "vhost_net", check=False) if shutil.which("modprobe") else None
        if not os.path.exists("/dev/vhost-net"):
            return ("no /dev/vhost-net in the test host (module vhost_net not loaded%s)"
                    % (": " + r.stdout.strip() if r and r.stdout.strip() else ""))
    try:
        os.close(os.open("/dev/vhost-net", os.O_RDWR))
    except OSError as e:
        return "/dev/vhost-net cannot be opened: %s" % e
    return None


class RoundTrips(threading.Thread):
    """Takes one connection on lsock and bounces 1 byte over it: `omit`
    seconds of warm-up, then counts round trips for `secs` seconds."""

    def __init__(self, lsock, omit, secs):
        super().__init__(daemon=True)
        self.lsock, self.omit, self.secs = lsock, omit, secs
        self.rate, self.err = None, "no connection from the guest"
        self.stop = threading.Event()

    def run(self):
        self.lsock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
                break
            except socket.timeout:
                continue
        else:
            return
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(30)
        try:
            n, start = 0, time.monotonic() + self.omit
            t1 = None
            while True:
                c.sendall(b"x")
                if c.recv(1) != b"x":
                    self.err = "the guest's echo ended or answered something else"
                    return
                now = time.monotonic()
                if t1 is None:
                    if now >= start:
                        t1 = now
                    continue
                n += 1
                if now - t1 >= self.secs:
                    self.rate, self.err = n / (now - t1), None
                    return
        except OSError as e:
            self.err = "round trips: %s" % e
        finally:
            c.close()


def parse(out):
    """{"g2h": Gbit/s, "h2g": Gbit/s} from the guest's output (iperf3's
    receiver line after each marker), plus notes: NETBENCH-ERROR/NIC lines
    and the TCP retransmissions iperf3's sender line counts (a sign of
    frames lost on the way)."""
    vals, sec, notes = {}, None, []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("NETBENCH-"):
            word = line.split()[0][9:]
            sec = word.lower()
            if word in ("ERROR", "NIC"):
                notes.append(line)
            continue
        m = re.search(r"([\d.]+) Mbits/sec.*receiver", line)
        if m and sec in ("g2h", "h2g"):
            vals[sec] = float(m.group(1)) / 1000.0
        m = re.search(r"Mbits/sec\s+(\d+)\s+sender", line)
        if m and sec in ("g2h", "h2g"):
            notes.append("%s retr %s" % (sec, m.group(1)))
    return vals, notes


def one_run(name, argv, args, lsock):
    iperf = subprocess.Popen(["iperf3", "-s", "-B", HOST, "-p", str(IPERF_PORT)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rr = RoundTrips(lsock, args.rr_omit, args.rr_secs)
    rr.start()
    # A session of its own, so a timed-out VMM goes with everything it started.
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        so, se = p.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # A stalled inner guest: say what the VMM's threads wait on, then go on to
        # the next run (the set keeps its other figures).
        sys.stdout.write("bench-net: %s did not finish in %d s; its threads:\n%s"
                         % (name, args.timeout, threads_of(p.pid) + children_of(p.pid)))
        os.killpg(p.pid, signal.SIGKILL)
        try:
            so, se = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            so, se = b"", b"(its output pipes stayed open 60 s after the kill)"
    finally:
        rr.stop.set()
        rr.join(60)
        iperf.terminate()
        iperf.wait()
    out = so.decode(errors="replace").replace("\r", "")
    vals, notes = parse(out)
    if rr.rate is not None:
        vals["rr"] = rr.rate
    if len(vals) < 3:
        # QEMU runs with -no-reboot: a guest that resets (seen in the test host's nested
        # SVM, issue 18) ends it with status 0 before the script's last line.
        if "NETBENCH-END" not in out and "uvm-gcs: exit" not in out:
            sys.stdout.write("bench-net: %s: the guest's output stops before the script's end"
                             " (a guest reset or crash?)\n" % name)
        sys.stdout.write("bench-net: %s (status %d): missing %s%s\n--- stdout:\n%s\n"
                         "--- stderr:\n%s\n"
                         % (name, p.returncode, ", ".join(k for k, _ in METRICS if k not in vals),
                            "" if rr.rate is not None else " (%s)" % rr.err, out[-3000:],
                            se.decode(errors="replace")[-3000:]))
    return vals, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True, help="initrd with iperf3 (tests/bench/net.mk)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10, help="iperf3 seconds counted, each way")
    ap.add_argument("--omit", type=int, default=1, help="iperf3 seconds left out first")
    ap.add_argument("--rr-secs", type=float, default=10)
    ap.add_argument("--rr-omit", type=float, default=1)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per boot")
    args = ap.parse_args()

    if not os.path.exists("/dev/kvm") or os.path.exists("/sys/module/kvm_pvm"):
        die("needs a real /dev/kvm (not PVM): run it with `make bench-net` (the test host)")
    if os.geteuid() != 0:
        die("needs root (a tap)")
    if not os.path.exists("/dev/net/tun"):
        die("no /dev/net/tun (module tun)")
    for t in ("ip", "iperf3", "qemu-system-x86_64"):
        if not shutil.which(t):
            die("%s is not installed (tests/install-deps)" % t)
    kernel = os.path.join(REPO, "build", "guest", "vmlinuz")
    shim = os.path.join(REPO, "build", "uvm-shim")
    for f in (kernel, shim, args.initrd):
        if not os.path.exists(f):
            die("%s missing (run make, make guest)" % f)

    cmd = ["sh", "/bench/net.sh", HOST, "%s/%d" % (GUEST, PREFIX), MAC, str(args.secs),
           str(args.omit), str(RR_PORT)]
    shim_argv = [shim, "run", "--kernel", kernel, "--initrd", args.initrd,
                 "--cpus", str(args.cpus), "--memory", str(args.memory),
                 "--net", "tap=%s,mac=%s,ip=%s/%d" % (TAP, MAC, GUEST, PREFIX), "--"] + cmd

    def qemu_argv(vhost):
        return ["qemu-system-x86_64", "-M", "pc", "-enable-kvm", "-cpu", "host",
                "-smp", str(args.cpus), "-m", str(args.memory),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", "stdio", "-kernel", kernel, "-initrd", args.initrd,
                # The agent runs the words after "--" with /bin/sh -c (gcs/cmdline.c).
                "-append", "%s -- %s" % (BASE_CMDLINE, " ".join(cmd)),
                "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no,vhost=%s"
                % (TAP, "on" if vhost else "off"),
                "-device", "virtio-net-pci,netdev=n0,mac=%s" % MAC]

    vmms = [("uvm-shim", shim_argv), ("qemu", qemu_argv(False))]
    no_vhost = vhost_reason()
    if no_vhost is None:
        vmms.append(("qemu-vhost", qemu_argv(True)))
    else:
        print("qemu-vhost: unavailable: %s" % no_vhost, flush=True)

    sh("ip", "tuntap", "add", TAP, "mode", "tap")
    lsock = None
    try:
        sh("ip", "addr", "add", "%s/%d" % (HOST, PREFIX), "dev", TAP)
        sh("ip", "link", "set", TAP, "up")
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((HOST, RR_PORT))
        lsock.listen(1)
        res = {name: {k: [] for k, _ in METRICS} for name, _ in vmms}
        for i in range(args.runs):
            for name, argv in vmms:
                vals, notes = one_run(name, argv, args, lsock)
                for k, v in vals.items():
                    res[name][k].append(v)
                print("run %d %-10s %s%s" % (
                    i + 1, name,
                    "  ".join("%s %s" % (k, ("%.4f" if k != "rr" else "%.0f") % vals[k]
                                         if k in vals else "FAILED") for k, _ in METRICS),
                    "  (%s)" % "; ".join(notes) if notes else ""), flush=True)
    finally:
        if lsock:
            lsock.close()
        sh("ip", "link", "del", TAP, check=False)

    med = {}
    for name, _ in vmms:
        med[name] = {}
        for k, label in METRICS:
            v = res[name][k]
            if v:
                med[name][k] = statistics.median(v)
            print("median %-10s %-20s %s (%d of %d runs)"
                  % (name, label, ("%.4f" if k != "rr" else "%.0f") % med[name][k] if v else "none",
                     len(v), args.runs))
    if no_vhost is not None:
        print("median qemu-vhost: unavailable: %s" % no_vhost)
    for other, target in (("qemu", True), ("qemu-vhost", False)):
        if other not in med:
            continue
        for k, label in METRICS:
            a, b = med["uvm-shim"].get(k), med[other].get(k)
            if a is None or not b:
                print("ratio uvm-shim/%s %s: no figure" % (other, k))
                continue
            line = "ratio uvm-shim/%s %-3s %.2fx" % (other, k, a / b)
            if target:
                t = RR_TARGET if k == "rr" else TP_TARGET
                line += " (target >= %.1fx: %s)" % (t, "met" if a / b >= t else "NOT met")
            print(line)
    print("(iperf3 %d s + %d s omitted each way, %g s of 1-byte round trips after %g s; "
          "%d vCPUs, %d MiB; inside the test host: nested KVM under TCG)"
          % (args.secs, args.omit, args.rr_secs, args.rr_omit, args.cpus, args.memory))


if __name__ == "__main__":
    main()
