"""A hostile guest costs only itself (issue 9).

Inside a real guest, `/bin/hostile` (tests/e2e/hostile/hostile.c, added to a
copy of the default initrd) floods the host with vsock connections and
garbage bridge frames, hammers a disk with random I/O, then writes garbage
through PCI config space and the virtio BARs (device resets under load,
MSI-X tables). Meanwhile the test asks that VM's shim for `vm.state` four
times a second, and a well-behaved VM in a second shim runs commands. The
shim under attack must answer every request within a second, end cleanly,
and the other VM must not notice."""

import os
import tempfile
import time

import pytest

from test_serve import Shim

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTILE_INITRD = os.path.join(REPO, "build", "e2e", "hostile-initrd.img")
ATTACK_S = 15


# The test host's nested KVM (QEMU TCG emulating AMD SVM) sometimes puts a vCPU of one
# of the two VMs back to its reset state under this load: the VM then ends with
# "shutdown exit (triple fault)" at the reset vector, every register at its reset value.
# Seen on the well-behaved VM, which runs only `true`: no user-space VMM can do that to
# another process's VM. A run that ends that way is the test host's (issue 18) and is
# tried once more in two fresh VMs; any other failure, or the same twice, fails.
TEST_HOST_RESET = "rip 000000000000fff0 rsp 0000000000000000 rflags 00000002"


def exec_ok(shim, argv, timeout=120):
    pid = shim.ok("guest.exec", argv=argv, timeout=timeout)["pid"]
    return shim.ok("process.wait", pid=pid, timeout=timeout)


def test_hostile_guest_costs_only_itself(paths, kvm):
    if not os.path.exists(HOSTILE_INITRD):
        pytest.skip("%s is not built (`make e2e` builds it)" % HOSTILE_INITRD)
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                _attack(paths, tmp)
                return
            except Exception:
                reset = _test_host_reset(tmp)
                if attempt == 2 or not reset:
                    raise
                print("the test host reset a vCPU of VM %s (rip fff0, registers at their "
                      "reset values; issue 18): once more in two fresh VMs" % reset)


def _test_host_reset(tmp):
    """Which VM ("a", "b") ended on a vCPU the test host put back to its reset state, if any."""
    for name in ("a", "b"):
        try:
            with open(os.path.join(tmp, name, "shim.log")) as f:
                if TEST_HOST_RESET in f.read():
                    return name
        except OSError:
            pass
    return None


def _attack(paths, tmp):
    da, db = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    os.mkdir(da)
    os.mkdir(db)
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    a, b = Shim(paths, da), Shim(paths, db)
    try:
        a.boot(initrd=HOSTILE_INITRD, cpus=2, vsock_path=os.path.join(da, "v.sock"))
        b.boot()
        dev = a.ok("scsi.add", controller=0, lun=0, host_path=disk, timeout=120)["device"]
        seed = str(int(time.time()))
        state = {"worst": 0.0, "answered": 0, "b_runs": 0, "next_b": 0.0}

        def watch(seconds):
            """vm.state to the attacked shim 4 times a second; a command in the other VM."""
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.monotonic()
                r = a.call("vm.state", timeout=10)
                state["worst"] = max(state["worst"], time.monotonic() - t0)
                assert "result" in r, r
                state["answered"] += 1
                if time.monotonic() >= state["next_b"]:
                    assert exec_ok(b, ["true"])["exit_code"] == 0
                    state["b_runs"] += 1
                    state["next_b"] = time.monotonic() + 3
                time.sleep(0.25)

        # Phase 1: vsock flood and disk hammering, the agent still alive to report.
        # The disk's attacker starts first: the flood dials the stdio ports too, and
        # a guest process that connects to a port the shim listens on for the next
        # exec's stdio gets that stream and the GCS a reset (docs/protocol.md,
        # "Process stdio and logs"). That costs only the guest, but it would fail
        # the blk exec here by chance.
        outs, pids = {}, {}
        for name, argv in (("blk", ["/bin/hostile", "blk", dev, str(ATTACK_S)]),
                           ("vsock", ["/bin/hostile", "vsock", str(ATTACK_S)])):
            outs[name] = os.path.join(da, name + ".out")
            open(outs[name], "w").close()
            pids[name] = a.ok("guest.exec", argv=argv, env=["SEED=" + seed],
                              stdout=outs[name], stderr=outs[name])["pid"]
        waits = {name: a.send("process.wait", pid=pid) for name, pid in pids.items()}
        watch(ATTACK_S + 5)
        for name, rid in waits.items():
            w = a.wait_id(rid, timeout=120)
            assert w["result"]["exit_code"] == 0, (name, w, open(outs[name]).read())
        report = {n: open(p).read().strip() for n, p in outs.items()}
        print("hostile guest, phase 1: %r" % report)
        conns = int(report["vsock"].split("vsock: ")[1].split()[0])
        assert conns + int(report["vsock"].split(", ")[1].split()[0]) > 0, report
        assert int(report["blk"].split("blk: ")[1].split()[0]) > 0, report
        # Phase 2: garbage through PCI config space and the BARs (resets under load).
        a.send("guest.exec", argv=["/bin/hostile", "pci", str(ATTACK_S)], env=["SEED=" + seed])
        watch(ATTACK_S + 5)
        r = a.ok("vm.state")
        print("hostile guest: %d vm.state answers, the slowest in %.3f s; "
              "the other VM ran %d commands; the attacked VM is %s"
              % (state["answered"], state["worst"], state["b_runs"], r["state"]))
        assert state["worst"] < 1.0, "vm.state took %.3f s under attack\n%s" % (
            state["worst"], a.log())
        # The attacked VM ends on request, whatever the guest is doing.
        assert a.ok("vm.terminate", timeout=30)["state"] == "Terminated"
        assert a.close() == 0, a.log()
        log = open(a.log_path).read()
        print("attacked shim: %d warnings; %s" % (
            log.count(" warn "), [l for l in log.splitlines() if "vsock: tx:" in l][-1:]))
        # The other VM never noticed.
        assert exec_ok(b, ["sh", "-c", "exit 7"])["exit_code"] == 7
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
