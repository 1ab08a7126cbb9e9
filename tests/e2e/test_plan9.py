"""plan9.add / plan9.remove and vm.create's "plan9" array driven through
`uvm-shim serve`: host directories shared over virtio-9p, mounted by the GCS
(trans=virtio, 9p2000.L, cache=mmap), used from guest processes and compared
on the host. Symlinks in a share that point out of it must not reach the
host's files. Needs a real /dev/kvm (`make e2e`)."""

import hashlib
import os
import shutil
import tempfile
import warnings

import pytest

from test_serve import Shim, run  # the same parent-side client as test_serve

NOT_FOUND, BUSY, BAD_PARAMS, WRONG_STATE = -32003, -32004, -32602, -32001


def sh(shim, tmp, script, timeout=120):
    st, out, err = run(shim, tmp, ["sh", "-c", script], timeout=timeout)
    return st["exit_code"], out.decode(errors="replace"), err.decode(errors="replace")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# In the test host, a file-heavy 9p load sometimes resets the nested guest (a
# triple fault): tests/testhost/stress saw it under Debian's QEMU and its own
# virtio-9p as well, so it is the nested environment's (docs/virtio.md,
# virtio-9p). A test whose VM dies that way is run once more in a fresh VM and
# says so; a second reset, or any other failure, fails it.
RESET = "VM ended: guest triple fault"

# The heavy loads (1,000 files, 64 MiB both ways) take the nested test host
# itself down too often to sit in every `make test`: in session 5 its kernel
# went down or locked up in 3 of 4 full-suite runs during the 1,000-file test
# (twice in a row in a clean-clone CI run), the same load resets guests under
# QEMU's own 9p (tests/testhost/stress), and the 256 MiB bench took it down
# twice. They run with E2E_P9_HEAVY=1 (they passed in this session's
# dedicated runs); issue 18 is the way back to running them always.
heavy = pytest.mark.skipif(
    os.environ.get("E2E_P9_HEAVY") != "1",
    reason="heavy 9p load: the nested test host goes down under it (docs/testing.md, "
           "tests/testhost/stress); run with E2E_P9_HEAVY=1")


class Vms:
    """The module's VM (one share given at vm.create), booted again after a reset."""

    def __init__(self, paths):
        self.paths = paths
        self.vm = None
        self.resets = 0

    def boot(self):
        d = tempfile.mkdtemp(prefix="uvm-e2e-9p-")
        share = os.path.join(d, "boot-share")
        os.mkdir(share)
        with open(os.path.join(share, "hello"), "w") as f:
            f.write("from the host\n")
        s = Shim(self.paths, d)
        s.boot(plan9=[{"name": "boot0", "host_path": share, "guest_path": "/mnt/boot0"}])
        s.dir = d
        self.vm = s
        return s

    def close(self):
        assert self.vm.close() == 0, self.vm.log()
        shutil.rmtree(self.vm.dir, ignore_errors=True)

    def run(self, test, tmp):
        """test(vm, tmp), again in a fresh VM if the first VM was reset under it."""
        try:
            return test(self.vm, tmp)
        except Exception:
            if RESET not in self.vm.log():
                raise
        self.resets += 1
        msg = ("%s: the nested guest was reset (triple fault) during the test; running it "
               "once more in a fresh VM" % test.__name__)
        print("WARNING " + msg)
        warnings.warn(msg)
        self.vm.proc.kill()
        self.boot()
        for n in os.listdir(tmp):
            shutil.rmtree(os.path.join(tmp, n), ignore_errors=True)
        return test(self.vm, tmp)


@pytest.fixture(scope="module")
def vms(paths, kvm):
    v = Vms(paths)
    v.boot()
    yield v
    v.close()


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="uvm-e2e-9p-t-") as d:
        yield d


def add(vm, name, host, guest, **kw):
    r = vm.ok("plan9.add", timeout=180, name=name, host_path=host, guest_path=guest, **kw)
    assert r["name"] == name and r["guest_path"] == guest, r
    return r


def test_share_at_create_is_mounted(vms, tmp):
    vms.run(_share_at_create_is_mounted, tmp)


def _share_at_create_is_mounted(pvm, tmp):
    code, out, err = sh(pvm, tmp, "grep ' /mnt/boot0 9p ' /proc/mounts && cat /mnt/boot0/hello")
    assert code == 0, (out, err)
    assert "trans=virtio" in out and "from the host" in out, out


@heavy
def test_thousand_files_and_host_changes(vms, tmp):
    vms.run(_thousand_files_and_host_changes, tmp)


def _thousand_files_and_host_changes(pvm, tmp):
    host = os.path.join(tmp, "s")
    os.mkdir(host)
    add(pvm, "many", host, "/mnt/many")
    script = (
        "set -e; cd /mnt/many; mkdir d; i=0; while [ $i -lt 1000 ]; do "
        "echo file-$i > d/f$i; i=$((i+1)); done; "
        "i=0; while [ $i -lt 1000 ]; do mv d/f$i d/g$i; i=$((i+2)); done; "
        "i=0; while [ $i -lt 1000 ]; do rm d/f$((i+1)) d/g$i; i=$((i+4)); done; "
        "ls d | wc -l")
    code, out, err = sh(pvm, tmp, script, timeout=900)
    assert code == 0, (out, err)
    assert out.strip() == "500", out
    want = {}
    for i in range(1000):
        if i % 4 in (0, 1):
            continue  # removed: g(i) for i%4==0, f(i) for i%4==1
        want[("g%d" if i % 2 == 0 else "f%d") % i] = "file-%d\n" % i
    got = {}
    for n in os.listdir(os.path.join(host, "d")):
        with open(os.path.join(host, "d", n)) as f:
            got[n] = f.read()
    assert got == want
    # A file changed on the host is seen changed in the guest.
    with open(os.path.join(host, "hostfile"), "w") as f:
        f.write("one\n")
    code, out, _ = sh(pvm, tmp, "cat /mnt/many/hostfile")
    assert (code, out) == (0, "one\n")
    with open(os.path.join(host, "hostfile"), "w") as f:
        f.write("two, longer\n")
    code, out, _ = sh(pvm, tmp, "cat /mnt/many/hostfile")
    assert (code, out) == (0, "two, longer\n")
    assert pvm.ok("plan9.remove", timeout=120, name="many")["name"] == "many"
    code, out, _ = sh(pvm, tmp, "grep -c ' /mnt/many ' /proc/mounts || true")
    assert out.strip() == "0", out


@heavy
def test_64mib_both_ways(vms, tmp):
    vms.run(_64mib_both_ways, tmp)


def _64mib_both_ways(pvm, tmp):
    host = os.path.join(tmp, "s")
    os.mkdir(host)
    with open(os.path.join(host, "big"), "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    add(pvm, "big", host, "/mnt/big")
    code, out, err = sh(pvm, tmp, "sha256sum /mnt/big/big && cp /mnt/big/big /mnt/big/copy "
                        "&& sync", timeout=900)
    assert code == 0, (out, err)
    assert out.split()[0] == sha256(os.path.join(host, "big"))
    assert sha256(os.path.join(host, "copy")) == sha256(os.path.join(host, "big"))
    pvm.ok("plan9.remove", timeout=120, name="big")


def test_read_only_and_escapes(vms, tmp):
    vms.run(_read_only_and_escapes, tmp)


def _read_only_and_escapes(pvm, tmp):
    host = os.path.join(tmp, "s")
    outside = os.path.join(tmp, "outside")
    os.mkdir(host)
    os.mkdir(outside)
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("host secret\n")
    with open(os.path.join(host, "file"), "w") as f:
        f.write("ro\n")
    os.symlink("../outside/secret", os.path.join(host, "rel"))
    os.symlink(os.path.join(outside, "secret"), os.path.join(host, "abs"))
    os.symlink("/proc/self/root" + outside, os.path.join(host, "magic"))
    before = sorted(os.listdir(host))
    add(pvm, "ro", host, "/mnt/ro", read_only=True)
    code, out, err = sh(pvm, tmp, "cat /mnt/ro/file; echo x > /mnt/ro/file; echo rc=$?; "
                        "touch /mnt/ro/new; echo rc=$?; rm /mnt/ro/file; echo rc=$?")
    assert "ro\n" in out and "rc=0" not in out, (out, err)
    with open(os.path.join(host, "file")) as f:
        assert f.read() == "ro\n"
    assert sorted(os.listdir(host)) == before
    # The guest resolves links in its own namespace: none reaches the host's secret.
    code, out, err = sh(pvm, tmp, "for l in rel abs magic; do cat /mnt/ro/$l/secret /mnt/ro/$l;"
                        " done 2>&1; true")
    assert "host secret" not in out, out
    pvm.ok("plan9.remove", timeout=120, name="ro")


def test_allowed_names_and_two_shares(vms, tmp):
    vms.run(_allowed_names_and_two_shares, tmp)


def _allowed_names_and_two_shares(pvm, tmp):
    a = os.path.join(tmp, "a")
    b = os.path.join(tmp, "b")
    os.mkdir(a)
    os.mkdir(b)
    for n in ("shown", "hidden", "also"):
        with open(os.path.join(a, n), "w") as f:
            f.write(n + "\n")
    add(pvm, "restricted", a, "/mnt/ra", allowed_names=["shown", "also"])
    add(pvm, "second", b, "/mnt/rb")
    code, out, err = sh(pvm, tmp, "ls /mnt/ra; cat /mnt/ra/hidden; echo x > /mnt/rb/w")
    names = out.split()
    assert "shown" in names and "also" in names and "hidden" not in names, out
    with open(os.path.join(b, "w")) as f:
        assert f.read() == "x\n"
    pvm.error("plan9.add", BUSY, name="second", host_path=b, guest_path="/mnt/other")
    pvm.error("plan9.add", BUSY, name="third", host_path=b, guest_path="/mnt/rb")
    pvm.ok("plan9.remove", timeout=120, name="restricted")
    pvm.ok("plan9.remove", timeout=120, name="second")
    code, out, _ = sh(pvm, tmp, "grep -c ' 9p ' /proc/mounts")
    assert out.strip() == "1", out  # boot0 only


# CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID; a
# read-only share's workers keep CAP_DAC_READ_SEARCH alone (docs/seccomp.md).
FILE_CAPS, READ_SEARCH = 0x1f, 0x4


def p9_threads(pid):
    """Status fields of the shim's 9p threads: ([9p-spawn0], [9p-wN ...])."""
    spawn, workers = [], []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        if st["Name"] == "9p-spawn0":
            spawn.append(st)
        elif st["Name"].startswith("9p-w"):
            workers.append(st)
    return spawn, workers


def test_workers_per_share_sandboxed(vms, tmp):
    vms.run(_workers_per_share_sandboxed, tmp)


def _workers_per_share_sandboxed(pvm, tmp):
    """One spawner; 4 workers per share, made when it is added, gone when it is removed;
    each under two filters (the spawner's and its own), with the share's capabilities."""
    pid = pvm.proc.pid
    spawn, workers = p9_threads(pid)
    assert len(spawn) == 1 and len(workers) == 4, (len(spawn), len(workers))
    ro = os.path.join(tmp, "ro")
    os.mkdir(ro)
    add(pvm, "sbx-ro", ro, "/mnt/sbx-ro", read_only=True)
    spawn, workers = p9_threads(pid)
    assert len(workers) == 8, len(workers)
    assert spawn[0]["Seccomp"] == "2" and spawn[0]["NoNewPrivs"] == "1", spawn[0]
    if "Seccomp_filters" in spawn[0]:
        assert spawn[0]["Seccomp_filters"] == "1", spawn[0]["Seccomp_filters"]
    for st in workers:
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
        if "Seccomp_filters" in st:
            assert st["Seccomp_filters"] == "2", st["Seccomp_filters"]
    if os.geteuid() == 0:
        assert int(spawn[0]["CapEff"], 16) == FILE_CAPS, spawn[0]["CapEff"]
        caps = sorted(int(st["CapEff"], 16) for st in workers)
        assert caps == [READ_SEARCH] * 4 + [FILE_CAPS] * 4, caps
    assert pvm.ok("plan9.remove", timeout=120, name="sbx-ro")["name"] == "sbx-ro"
    # The share's pool goes with its device, before the answer.
    assert len(p9_threads(pid)[1]) == 4


def test_plan9_errors(vms, tmp):
    vms.run(_plan9_errors, tmp)


def _plan9_errors(pvm, tmp):
    pvm.error("plan9.add", BAD_PARAMS, name="x", host_path="/nonexistent", guest_path="/mnt/x")
    pvm.error("plan9.add", BAD_PARAMS, name="x", host_path="/etc/passwd", guest_path="/mnt/x")
    pvm.error("plan9.add", BAD_PARAMS, name="a/b", host_path=tmp, guest_path="/mnt/x")
    pvm.error("plan9.add", BAD_PARAMS, name="x", host_path=tmp, guest_path="rel")
    pvm.error("plan9.add", BAD_PARAMS, host_path=tmp, guest_path="/mnt/x")
    pvm.error("plan9.remove", NOT_FOUND, name="nope")
    pvm.error("plan9.remove", BAD_PARAMS)


def test_run_share(paths, kvm, tmp):
    """`uvm-shim run --share HOST:GUEST[,ro] -- CMD`: mounted before CMD runs."""
    from test_run_cmd import run_cmd, why
    rw = os.path.join(tmp, "rw")
    ro = os.path.join(tmp, "ro")
    os.mkdir(rw)
    os.mkdir(ro)
    with open(os.path.join(ro, "in"), "w") as f:
        f.write("host data\n")
    st, out, err = run_cmd(paths.shim, ["--share", rw + ":/mnt/rw", "--share", ro + ":/mnt/ro,ro",
                                        "--", "sh", "-c",
                                        "cat /mnt/ro/in > /mnt/rw/out; touch /mnt/ro/x; "
                                        "echo rc=$?"])
    assert st == 0, why(st, out, err)
    assert b"rc=0" not in out, why(st, out, err)
    with open(os.path.join(rw, "out")) as f:
        assert f.read() == "host data\n"
    assert sorted(os.listdir(ro)) == ["in"]
