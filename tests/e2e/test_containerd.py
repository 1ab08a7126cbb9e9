"""uvm-shim under Debian's real containerd (1.6) as the runtime v2 shim
`io.containerd.uvm.v1` (docs/containerd.md): a private containerd started
by the test, a busybox-static image imported offline as an OCI tarball,
`ctr run` running it in a uvm-shim VM."""

import json
import os
import re
import subprocess
import time

import pytest

# The private containerd and the image, shared with tests/bench/containerd.py.
import containerd_env
from containerd_env import IMAGE, LONG, NS, RUNTIME, SNAPSHOTTER

VM_MIB = 256


def guest_release(vmlinuz):
    """The kernel release in a bzImage's header (kernel_version, at 0x20e)."""
    with open(vmlinuz, "rb") as f:
        data = f.read(1 << 16)
    off = int.from_bytes(data[0x20e:0x210], "little") + 0x200
    return data[off:off + 128].split(b"\0")[0].split()[0].decode()


@pytest.fixture(scope="module")
def ctrd(paths, kvm):
    # The log outlives the test host's /tmp in the work tree's build/e2e.
    keep = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "build", "e2e")
    try:
        c = containerd_env.start(paths.shim, paths.guest_dir,
                                 {"cpus": 1, "memory_mib": VM_MIB, "start_timeout_ms": 240000},
                                 log_dir=keep)
    except containerd_env.Unavailable as e:
        pytest.skip(str(e))
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield c
    finally:
        c.cleanup(keep)


def test_run_echo_hi(ctrd):
    p = ctrd.run("t1", "echo", "hi")
    assert p.returncode == 0, ctrd.describe(["run", "t1"], p)
    assert p.stdout.replace("\r", "") == "hi\n", ctrd.describe(["run", "t1"], p)


def test_exit_code_propagates(ctrd):
    p = ctrd.run("t2", "sh", "-c", "exit 3")
    assert p.returncode == 3, ctrd.describe(["run", "t2"], p)


def test_runs_on_the_guest_kernel_in_a_vm(ctrd, paths):
    """uname -r is the guest kernel's release, and the memory is the VM's."""
    p = ctrd.run("t3", "sh", "-c", "uname -r; head -1 /proc/meminfo")
    assert p.returncode == 0, ctrd.describe(["run", "t3"], p)
    release, meminfo = p.stdout.splitlines()[:2]
    assert release == guest_release(paths.vmlinuz)
    kib = int(re.search(r"(\d+) kB", meminfo).group(1))
    with open("/proc/meminfo") as f:
        host_kib = int(re.search(r"(\d+) kB", f.readline()).group(1))
    assert kib <= VM_MIB * 1024 < host_kib, (meminfo, host_kib)


def test_events_of_a_run(ctrd):
    ev = subprocess.Popen(["ctr", "-a", ctrd.sock, "events"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        p = ctrd.run("t4", "true")
        assert p.returncode == 0, ctrd.describe(["run", "t4"], p)
        time.sleep(2)
    finally:
        ev.terminate()
        out = ev.communicate(timeout=30)[0]
    for topic in ("/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"):
        assert re.search(r"%s\s+%s" % (NS, re.escape(topic)), out), (topic, out)


def start_detached(ctrd, cid, *cmd):
    p = ctrd.ctr("run", "-d", "--snapshotter", SNAPSHOTTER, "--runtime", RUNTIME, IMAGE, cid,
                 *cmd)
    assert p.returncode == 0, ctrd.describe(["run", "-d", cid], p)


def wait_stopped(ctrd, cid, seconds=60):
    for _ in range(int(seconds * 5)):
        out = ctrd.ctr("task", "ls", check=True).stdout
        if re.search(r"^%s\s+\d+\s+STOPPED" % re.escape(cid), out, re.M):
            return
        time.sleep(0.2)
    pytest.fail("%s did not stop:\n%s\n%s" % (cid, out, ctrd.log_tail()))


def remove(ctrd, cid):
    ctrd.ctr("task", "rm", "-f", cid)
    ctrd.ctr("container", "rm", cid)


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def check_daemon_sandboxed(ctrd, cid):
    """cid's daemon is confined as `serve` is after vm.start (docs/containerd.md
    "The sandbox"): its loop thread filtered, no_new_privs, no capability; its opener too."""
    def bundle_of(p):
        try:
            return os.path.basename(os.readlink("/proc/%d/cwd" % p))
        except OSError:  # an earlier run's daemon that just exited
            return None
    daemons = [p for p in ctrd.shim_pids() if bundle_of(p) == cid]
    assert len(daemons) == 1, daemons
    pid = daemons[0]
    st = proc_status(pid)
    assert st["Seccomp"] == "2", st["Seccomp"]
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]
    assert int(st["CapEff"], 16) == 0, st["CapEff"]
    assert int(st["CapPrm"], 16) == 0, st["CapPrm"]
    openers = [p for p in ctrd.shim_pids(openers=True)
               if p != pid and proc_status(p)["PPid"] == str(pid)]
    assert len(openers) == 1, openers
    ost = proc_status(openers[0])
    assert ost["Seccomp"] == "2" and int(ost["CapEff"], 16) == 0, ost


def test_exec_ps_metrics_kill(ctrd):
    start_detached(ctrd, "t5", "sleep", "600")
    try:
        check_daemon_sandboxed(ctrd, "t5")
        p = ctrd.ctr("task", "exec", "--exec-id", "e1", "t5", "echo", "inexec")
        assert p.returncode == 0 and p.stdout == "inexec\n", ctrd.describe(["exec", "e1"], p)
        p = ctrd.ctr("task", "exec", "--exec-id", "e2", "t5", "sh", "-c", "exit 5")
        assert p.returncode == 5, ctrd.describe(["exec", "e2"], p)
        p = ctrd.ctr("task", "ps", "t5", check=True)
        pids = [l.split()[0] for l in p.stdout.splitlines()[1:] if l.strip()]
        assert pids and all(x.isdigit() for x in pids), p.stdout
        p = ctrd.ctr("task", "metrics", "t5", check=True)
        assert "memory" in p.stdout and "pids" in p.stdout, p.stdout
        ctrd.ctr("task", "kill", "-s", "SIGKILL", "t5", check=True)
        wait_stopped(ctrd, "t5")
    finally:
        remove(ctrd, "t5")


def test_run_with_a_terminal(ctrd):
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    # A sized terminal: ctr passes the size on (ResizePty -> process.resize).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen(["ctr", "-a", ctrd.sock, "-n", NS, "run", "--rm", "-t", "--snapshotter",
                          SNAPSHOTTER, "--runtime", RUNTIME, IMAGE, "t6", "sh", "-c",
                          "tty; echo term-ok"], stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + LONG
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    rc = p.wait(timeout=60)
    text = out.decode(errors="replace").replace("\r", "")
    assert rc == 0 and "term-ok" in text, (rc, text, ctrd.log_tail())
    assert re.search(r"^/dev/pts/\d+$", text, re.M), text


def test_two_tasks_run_in_two_vms(ctrd):
    start_detached(ctrd, "t7", "sleep", "600")
    try:
        start_detached(ctrd, "t8", "sleep", "600")
        try:
            ids = []
            for cid in ("t7", "t8"):
                p = ctrd.ctr("task", "exec", "--exec-id", "b", cid, "cat",
                             "/proc/sys/kernel/random/boot_id")
                assert p.returncode == 0, ctrd.describe(["exec", cid], p)
                ids.append(p.stdout.strip())
            assert len(ctrd.shim_pids()) == 2
            assert ids[0] != ids[1], ids  # two kernels booted: two VMs
        finally:
            ctrd.ctr("task", "kill", "-s", "SIGKILL", "t8")
            wait_stopped(ctrd, "t8")
            remove(ctrd, "t8")
    finally:
        ctrd.ctr("task", "kill", "-s", "SIGKILL", "t7")
        wait_stopped(ctrd, "t7")
        remove(ctrd, "t7")


def guest_clock_lag(ctrd, cid, exec_id):
    """Host time minus the guest's `date +%s`, in seconds (within the exec's latency)."""
    before = time.time()
    p = ctrd.ctr("task", "exec", "--exec-id", exec_id, cid, "date", "+%s")
    assert p.returncode == 0, ctrd.describe(["exec", exec_id], p)
    return (before + time.time()) / 2 - int(p.stdout.strip())


def test_pause_resume(ctrd):
    """ctr task pause stops the whole VM: State says PAUSED, what needs the guest is
    refused, no tick of the container's loop happens while paused (the guest's clock
    jumps over the pause, or stood still through it), TaskPaused/TaskResumed are sent."""
    pause_s = 10
    ev = subprocess.Popen(["ctr", "-a", ctrd.sock, "events"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    start_detached(ctrd, "t9", "sh", "-c", "while true; do date +%s >> /ticks; sleep 1; done")
    try:
        lag0 = guest_clock_lag(ctrd, "t9", "c0")
        ctrd.ctr("task", "pause", "t9", check=True)
        t0 = time.monotonic()
        out = ctrd.ctr("task", "ls", check=True).stdout
        assert re.search(r"^t9\s+\d+\s+PAUSED", out, re.M), out
        p = ctrd.ctr("task", "pause", "t9")
        assert p.returncode != 0 and "already paused" in p.stderr, ctrd.describe(["pause"], p)
        p = ctrd.ctr("task", "kill", "-s", "SIGTERM", "t9")
        assert p.returncode != 0 and "paused" in p.stderr, ctrd.describe(["kill"], p)
        p = ctrd.ctr("task", "exec", "--exec-id", "p1", "t9", "true", timeout=60)
        assert p.returncode != 0 and "paused" in p.stderr, ctrd.describe(["exec", "p1"], p)
        # containerd drops a task whose Stats failed: ctr says "no metrics received".
        p = ctrd.ctr("task", "metrics", "t9")
        assert p.returncode != 0, ctrd.describe(["metrics"], p)
        time.sleep(max(0, pause_s - (time.monotonic() - t0)))
        ctrd.ctr("task", "resume", "t9", check=True)
        out = ctrd.ctr("task", "ls", check=True).stdout
        assert re.search(r"^t9\s+\d+\s+RUNNING", out, re.M), out
        p = ctrd.ctr("task", "resume", "t9")
        assert p.returncode != 0 and "not paused" in p.stderr, ctrd.describe(["resume"], p)
        time.sleep(3)
        lag1 = guest_clock_lag(ctrd, "t9", "c1")
        p = ctrd.ctr("task", "exec", "--exec-id", "c2", "t9", "cat", "/ticks")
        assert p.returncode == 0, ctrd.describe(["exec", "c2"], p)
        ticks = [int(x) for x in p.stdout.split()]
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        print("pause of %d s: largest gap between ticks %d s, guest clock lag %.1f -> %.1f s"
              % (pause_s, max(gaps), lag0, lag1))
        # Paused vCPUs run no loop: either the guest clock jumped over the pause (a gap
        # between two ticks) or it stood still (the guest fell behind the host's clock).
        assert max(gaps) >= pause_s - 3 or lag1 - lag0 >= pause_s - 3, (gaps, lag0, lag1)
        ctrd.ctr("task", "kill", "-s", "SIGKILL", "t9", check=True)
        wait_stopped(ctrd, "t9")
    finally:
        # A paused task cannot be removed: resume it (an error when it runs) and end it.
        ctrd.ctr("task", "resume", "t9")
        ctrd.ctr("task", "kill", "-s", "SIGKILL", "t9")
        remove(ctrd, "t9")
        time.sleep(1)
        ev.terminate()
        events = ev.communicate(timeout=30)[0]
    for topic in ("/tasks/paused", "/tasks/resumed"):
        assert re.search(r"%s\s+%s" % (NS, re.escape(topic)), events), (topic, events)


# ---- a ttrpc call straight to the shim: ctr 1.6 has no `task update` -------------------------

def pb_varint(n):
    out = b""
    while True:
        b, n = n & 0x7f, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_fields(data):
    """Top-level fields of a message: {number: value} (varints as int, the rest as bytes)."""
    out, i = {}, 0
    while i < len(data):
        key, i = pb_read_varint(data, i)
        if key & 7 == 0:
            out[key >> 3], i = pb_read_varint(data, i)
        elif key & 7 == 2:
            n, i = pb_read_varint(data, i)
            out[key >> 3], i = data[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % (key & 7))
    return out


def pb_read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def shim_call(ctrd, cid, method, payload, answer=False):
    """(code, message) of one Task call made on the shim's own socket; with answer=True,
    (code, message, the answer's payload)."""
    import socket
    import struct
    bundle = os.path.join(ctrd.d, "state", "io.containerd.runtime.v2.task", NS, cid)
    with open(os.path.join(bundle, "address")) as f:
        path = f.read().strip()[len("unix://"):]
    req = (pb_bytes(1, "containerd.task.v2.Task") + pb_bytes(2, method) + pb_bytes(3, payload)
           + pb_bytes(5, pb_bytes(1, "containerd-namespace-ttrpc") + pb_bytes(2, NS)))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(LONG)
        s.connect(path)
        s.sendall(struct.pack(">IIBB", len(req), 1, 1, 0) + req)
        buf = b""
        while len(buf) < 10 or len(buf) < 10 + struct.unpack(">I", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "the shim closed the connection"
            buf += chunk
    resp = pb_fields(buf[10:10 + struct.unpack(">I", buf[:4])[0]])
    status = pb_fields(resp.get(1, b""))
    if answer:
        return status.get(1, 0), status.get(2, b"").decode(errors="replace"), resp.get(2, b"")
    return status.get(1, 0), status.get(2, b"").decode(errors="replace")


def update_request(cid, resources):
    value = resources if isinstance(resources, bytes) else json.dumps(resources).encode()
    any_ = (pb_bytes(1, "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources")
            + pb_bytes(2, value))
    return pb_bytes(1, cid) + pb_bytes(2, any_)


def test_update_resources(ctrd):
    """Update (containerd's Tasks.Update, as CRI's UpdateContainerResources sends it)
    sets the container's cgroup limits in the guest; metrics read them back."""
    start_detached(ctrd, "t10", "sleep", "600")
    try:
        res = {"memory": {"limit": 64 << 20, "swap": 0},
               "cpu": {"shares": 512, "quota": 50000, "period": 100000},
               "pids": {"limit": 50}}
        code, msg = shim_call(ctrd, "t10", "Update", update_request("t10", res))
        assert code == 0, (msg, ctrd.log_tail())
        p = ctrd.ctr("task", "metrics", "t10", check=True)
        assert re.search(r"^memory\.usage_limit\s+%d\s*$" % (64 << 20), p.stdout, re.M), p.stdout
        assert re.search(r"^pids\.limit\s+50\s*$", p.stdout, re.M), p.stdout
        # What the guest cannot apply is refused by name, bad values are invalid.
        code, msg = shim_call(ctrd, "t10", "Update", update_request("t10", {"cpu": {"cpus": "0"}}))
        assert code == 12 and "cpu.cpus" in msg, (code, msg)
        code, msg = shim_call(ctrd, "t10", "Update",
                              update_request("t10", {"memory": {"limit": 4096}}))
        assert code == 3 and "memory.limit" in msg, (code, msg)
        code, msg = shim_call(ctrd, "t10", "Update", update_request("t10", b"{\"memory\":"))
        assert code == 3, (code, msg)
        # The shim still serves containerd: the limit is unchanged.
        p = ctrd.ctr("task", "metrics", "t10", check=True)
        assert re.search(r"^memory\.usage_limit\s+%d\s*$" % (64 << 20), p.stdout, re.M), p.stdout
        ctrd.ctr("task", "kill", "-s", "SIGKILL", "t10", check=True)
        wait_stopped(ctrd, "t10")
    finally:
        remove(ctrd, "t10")


# ---- runtime options: ctr run --runtime-config-path -----------------------------------------

def test_runtime_config_path(ctrd):
    """The config file the runtime options name (not the default file, 1 vCPU and VM_MIB)
    gives the task's VM its vCPUs and memory: the container sees them."""
    cfg = os.path.join(ctrd.d, "big.json")
    with open(cfg, "w") as f:
        json.dump({"cpus": 2, "memory_mib": 384, "start_timeout_ms": 240000}, f)
    p = ctrd.run("o1", "sh", "-c", "grep -c ^processor /proc/cpuinfo; head -1 /proc/meminfo",
                 opts=("--runtime-config-path", cfg))
    assert p.returncode == 0, ctrd.describe(["run", "o1"], p)
    cpus, meminfo = p.stdout.splitlines()[:2]
    kib = int(re.search(r"(\d+) kB", meminfo).group(1))
    print("--runtime-config-path %s: %s vCPUs, %s" % (cfg, cpus, meminfo))
    assert int(cpus) == 2, p.stdout
    assert VM_MIB * 1024 < kib <= 384 * 1024, meminfo


def daemons_of(ctrd, cid):
    """The shim daemons (and openers) whose working directory is cid's bundle."""
    out = []
    for pid in ctrd.shim_pids(openers=True):
        try:
            if os.path.basename(os.readlink("/proc/%d/cwd" % pid)) == cid:
                out.append(pid)
        except OSError:
            pass
    return out


def wait_gone(what, check, seconds=60):
    """Polls check() until it returns something false; fails with its last value."""
    for _ in range(int(seconds * 5)):
        left = check()
        if not left:
            return
        time.sleep(0.2)
    pytest.fail("%s left: %r" % (what, left))


def test_runtime_config_path_refused(ctrd):
    """A config path that does not exist, is relative, does not parse or holds params
    vm.create refuses fails `ctr run` with the reason; no shim or VM is left, and
    containerd runs the next task as usual (test_nothing_left_after_runs)."""
    bad = os.path.join(ctrd.d, "bad.toml")
    with open(bad, "w") as f:
        f.write('cpus = 2\n')
    small = os.path.join(ctrd.d, "small.json")
    with open(small, "w") as f:
        json.dump({"memory_mib": 1}, f)
    missing = os.path.join(ctrd.d, "missing.json")
    before = set(ctrd.shim_pids(openers=True))
    for cid, path, words in (("o2", missing, [missing, "No such file"]),
                             ("o3", "big.json", ["not an absolute path"]),
                             ("o4", bad, [bad, "not a JSON object"]),
                             ("o5", small, ["vm.create", "memory_mib"])):
        p = ctrd.run(cid, "true", opts=("--runtime-config-path", path), timeout=120)
        try:
            assert p.returncode != 0, ctrd.describe(["run", cid], p)
            for w in words:
                assert w in p.stderr, (w, ctrd.describe(["run", cid], p))
            wait_gone("shim of " + cid,
                      lambda: [x for x in ctrd.shim_pids(openers=True) if x not in before])
            assert not re.search(r"^%s\s" % cid, ctrd.ctr("task", "ls", check=True).stdout,
                                 re.M)
            bundle = os.path.join(ctrd.d, "state", "io.containerd.runtime.v2.task", NS, cid)
            assert not os.path.exists(bundle), os.listdir(bundle)
            assert [m for m in ctrd.mounts_under() if "/%s/rootfs" % cid in m] == []
        finally:
            ctrd.ctr("container", "rm", cid)


# ---- recovery: containerd restarted, the shim killed ------------------------------------------

def bundle_of(ctrd, cid):
    return os.path.join(ctrd.d, "state", "io.containerd.runtime.v2.task", NS, cid)


def socket_of(ctrd, cid):
    with open(os.path.join(bundle_of(ctrd, cid), "address")) as f:
        return f.read().strip()[len("unix://"):]


def boot_id(ctrd, cid, exec_id):
    p = ctrd.ctr("task", "exec", "--exec-id", exec_id, cid, "cat",
                 "/proc/sys/kernel/random/boot_id")
    assert p.returncode == 0, ctrd.describe(["exec", cid, exec_id], p)
    return p.stdout.strip()


def test_containerd_restart(ctrd):
    """containerd 1.6 stopped with SIGTERM leaves its shims running; started again, it
    reconnects to each through the bundle's `address` (its shim manager's loadShim,
    which calls Connect) and manages the task as before: r1 keeps running in the same
    VM (same daemon, same guest boot_id), execs and is killed and removed through
    containerd; r2, killed on the shim's socket while containerd was down, shows STOPPED
    and is removed, and its TaskExit, which waited in the shim while containerd was away,
    reaches the new containerd (its log says "event forwarded" for /tasks/exit).
    Both shims exit."""
    start_detached(ctrd, "r1", "sleep", "600")
    try:
        start_detached(ctrd, "r2", "sleep", "600")
        try:
            d1 = [p for p in daemons_of(ctrd, "r1") if p in ctrd.shim_pids()]
            d2 = [p for p in daemons_of(ctrd, "r2") if p in ctrd.shim_pids()]
            assert len(d1) == 1 and len(d2) == 1, (d1, d2)
            boot = boot_id(ctrd, "r1", "b1")
            ctrd.stop()
            assert os.path.exists("/proc/%d" % d1[0]) and os.path.exists("/proc/%d" % d2[0])
            # containerd is down: the task is killed on the shim's own socket.
            code, msg = shim_call(ctrd, "r2", "Kill",
                                  pb_bytes(1, "r2") + pb_varint(3 << 3) + pb_varint(9))
            assert code == 0, msg
            for _ in range(300):  # STOPPED (3): its TaskExit had nowhere to go
                code, msg, state = shim_call(ctrd, "r2", "State", pb_bytes(1, "r2"), answer=True)
                assert code == 0, msg
                if pb_fields(state).get(4) == 3:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("r2 did not stop on the shim's Kill")
            log = os.path.join(ctrd.d, "containerd.log")
            offset = os.path.getsize(log)
            ctrd.launch()
            assert d1[0] in ctrd.shim_pids()
            out = ctrd.ctr("task", "ls", check=True).stdout
            assert re.search(r"^r1\s+\d+\s+RUNNING", out, re.M), (out, ctrd.log_tail())
            wait_stopped(ctrd, "r2")
            # The only exit since the restart is r2's (r1 runs on).
            forwarded = r'msg="event forwarded" ns=%s topic=/tasks/exit ' % NS
            for _ in range(150):
                with open(log, errors="replace") as f:
                    f.seek(offset)
                    if re.search(forwarded, f.read()):
                        break
                time.sleep(0.2)
            else:
                pytest.fail("r2's TaskExit did not reach the new containerd:\n" + ctrd.log_tail())
            assert boot_id(ctrd, "r1", "b2") == boot  # the same VM
            p = ctrd.ctr("task", "ps", "r1", check=True)
            assert len(p.stdout.splitlines()) >= 2, p.stdout
            p = ctrd.ctr("task", "rm", "r2")
            assert p.returncode == 0, ctrd.describe(["task", "rm", "r2"], p)
            wait_gone("r2's shim", lambda: [x for x in d2 if os.path.exists("/proc/%d" % x)])
            ctrd.ctr("task", "kill", "-s", "SIGKILL", "r1", check=True)
            wait_stopped(ctrd, "r1")
            p = ctrd.ctr("task", "rm", "r1")
            assert p.returncode == 0, ctrd.describe(["task", "rm", "r1"], p)
            wait_gone("r1's shim", lambda: [x for x in d1 if os.path.exists("/proc/%d" % x)])
        finally:
            remove(ctrd, "r2")
    finally:
        remove(ctrd, "r1")
    for cid in ("r1", "r2"):
        assert not os.path.exists(bundle_of(ctrd, cid))


def test_killed_shim_cleaned_up_by_delete(ctrd):
    """The shim daemon killed with SIGKILL (its VM and opener die with it): containerd sees
    the connection drop and runs the binary's `delete` in the bundle, which removes the
    shim's socket (nothing else would: the daemon is gone); containerd then unmounts and
    removes the bundle. No uvm-shim process, mount or socket is left; the task is gone
    from containerd, whose exit status for it is 137."""
    start_detached(ctrd, "k1", "sleep", "600")
    try:
        daemon = [p for p in daemons_of(ctrd, "k1") if p in ctrd.shim_pids()]
        assert len(daemon) == 1, daemon
        procs = daemons_of(ctrd, "k1")
        assert len(procs) >= 2, procs  # the daemon and its opener
        sock = socket_of(ctrd, "k1")
        assert os.path.exists(sock)
        assert [m for m in ctrd.mounts_under() if "/k1/rootfs" in m], ctrd.mounts_under()
        ev = subprocess.Popen(["ctr", "-a", ctrd.sock, "events"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1)
            os.kill(daemon[0], 9)
            wait_gone("k1's shim and opener",
                      lambda: [x for x in procs if os.path.exists("/proc/%d" % x)])
            wait_gone("k1's socket", lambda: os.path.exists(sock))
            wait_gone("k1's rootfs mount",
                      lambda: [m for m in ctrd.mounts_under() if "/k1/rootfs" in m])
            wait_gone("k1's task", lambda: re.findall(
                r"^k1\s.*", ctrd.ctr("task", "ls", check=True).stdout, re.M))
            wait_gone("k1's bundle", lambda: os.path.exists(bundle_of(ctrd, "k1")))
            time.sleep(1)
        finally:
            ev.terminate()
            events = ev.communicate(timeout=30)[0]
        with open(os.path.join(ctrd.d, "containerd.log"), errors="replace") as f:
            log = f.read()
        assert re.search(r"cleaning up (after shim disconnected|dead shim)", log), ctrd.log_tail()
        exits = [l for l in events.splitlines() if "/tasks/exit" in l and '"k1"' in l]
        assert exits and re.search(r'"exit_status":\s*137', exits[-1]), events
    finally:
        remove(ctrd, "k1")


# ---- pods: a CRI sandbox's VM shared by the pod's containers ----------------------------------

CRI_TYPE = "io.kubernetes.cri.container-type"
CRI_SANDBOX = "io.kubernetes.cri.sandbox-id"


def pod_opts(kind, sandbox):
    return ("--annotation", "%s=%s" % (CRI_TYPE, kind),
            "--annotation", "%s=%s" % (CRI_SANDBOX, sandbox))


def test_pod_containers_share_the_sandbox_vm(ctrd):
    """What CRI asks of a runtime v2 shim for a pod (docs/containerd.md "Pods"), with
    CRI's annotations set through ctr: the sandbox p1 gets a shim and a VM; the pod's
    containers join them (no second daemon, the guest's boot_id the sandbox's), each from
    its own root filesystem, with its own exit status; one killed and removed leaves the
    sandbox running; a container naming a sandbox that has no shim fails; once the
    sandbox is removed its shim is gone."""
    before = set(ctrd.shim_pids(openers=True))
    p = ctrd.ctr("run", "-d", "--snapshotter", SNAPSHOTTER, "--runtime", RUNTIME,
                 *pod_opts("sandbox", "p1"), IMAGE, "p1", "sleep", "600")
    assert p.returncode == 0, ctrd.describe(["run", "-d", "p1"], p)
    try:
        daemons = [x for x in ctrd.shim_pids() if x not in before]
        assert len(daemons) == 1, daemons
        vm_boot = boot_id(ctrd, "p1", "b1")
        p = ctrd.run("p1c", "sh", "-c", "cat /proc/sys/kernel/random/boot_id; "
                     "echo mine > /owned; cat /owned; exit 7", opts=pod_opts("container", "p1"))
        assert p.returncode == 7, ctrd.describe(["run", "p1c"], p)
        assert p.stdout.replace("\r", "").splitlines() == [vm_boot, "mine"], p.stdout
        assert [x for x in ctrd.shim_pids() if x not in before] == daemons
        # The sandbox's root is its own: the container's file is not in it.
        p = ctrd.ctr("task", "exec", "--exec-id", "b2", "p1", "ls", "/owned")
        assert p.returncode != 0, ctrd.describe(["exec", "p1", "b2"], p)
        p = ctrd.ctr("run", "-d", "--snapshotter", SNAPSHOTTER, "--runtime", RUNTIME,
                     *pod_opts("container", "p1"), IMAGE, "p1d", "sleep", "600")
        assert p.returncode == 0, ctrd.describe(["run", "-d", "p1d"], p)
        assert socket_of(ctrd, "p1d") == socket_of(ctrd, "p1")
        assert boot_id(ctrd, "p1d", "d1") == vm_boot
        out = ctrd.ctr("task", "ls", check=True).stdout
        for cid in ("p1", "p1d"):
            assert re.search(r"^%s\s+\d+\s+RUNNING" % cid, out, re.M), out
        assert ctrd.ctr("task", "kill", "-s", "9", "p1d").returncode == 0
        wait_stopped(ctrd, "p1d")
        remove(ctrd, "p1d")
        assert not os.path.exists(bundle_of(ctrd, "p1d"))
        assert boot_id(ctrd, "p1", "b3") == vm_boot
        assert [x for x in ctrd.shim_pids() if x not in before] == daemons
        # A sandbox nobody started: `start` finds no shim for it.
        p = ctrd.run("p2c", "true", opts=pod_opts("container", "nosuch"), timeout=120)
        assert p.returncode != 0 and "nosuch" in p.stderr, ctrd.describe(["run", "p2c"], p)
    finally:
        for cid in ("p2c", "p1d", "p1"):
            remove(ctrd, cid)
    wait_gone("shim of p1", lambda: [x for x in ctrd.shim_pids(openers=True) if x not in before])


def overlayfs_usable(ctrd):
    """Why the overlayfs snapshotter cannot be used here, or None."""
    with open("/proc/filesystems") as f:
        if not re.search(r"\boverlay$", f.read(), re.M):
            return "no overlay filesystem in this kernel (the test host loads the module)"
    out = ctrd.ctr("plugins", "ls", check=True).stdout
    if not re.search(r"io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok", out):
        return "containerd's overlayfs snapshotter is not ok here:\n" + out
    return None


def test_pod_overlay_roots_through_the_mounter(ctrd):
    """With the overlayfs snapshotter (Kubernetes' default) a pod's container's root is an
    overlay mount, which the sandboxed daemon may not make: the sandbox's daemon forked the
    mounter (filtered, CAP_SYS_ADMIN and overlayfs's file capabilities only), which mounts it on the
    container's rootfs/ (nosuid, nodev) before it is shared into the VM. The container runs
    from it; once both are removed no overlay mount is left."""
    why = overlayfs_usable(ctrd)
    if why:
        pytest.skip(why)
    before = set(ctrd.shim_pids(openers=True))
    p = ctrd.ctr("run", "-d", "--snapshotter", "overlayfs", "--runtime", RUNTIME,
                 *pod_opts("sandbox", "p3"), IMAGE, "p3", "sleep", "600")
    assert p.returncode == 0, ctrd.describe(["run", "-d", "p3"], p)
    try:
        daemons = [x for x in ctrd.shim_pids() if x not in before]
        assert len(daemons) == 1, daemons
        kids = [x for x in ctrd.shim_pids(openers=True)
                if x not in before and proc_status(x)["PPid"] == str(daemons[0])]
        mounters = [x for x in kids if proc_status(x)["Name"] == "mounter"]
        assert len(mounters) == 1, [proc_status(x)["Name"] for x in kids]
        st = proc_status(mounters[0])
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
        # CAP_SYS_ADMIN and the file capabilities overlayfs uses on its layers (caps.c).
        caps = 0x1f | 1 << 21 | 1 << 27
        assert int(st["CapEff"], 16) == caps and int(st["CapPrm"], 16) == caps, st
        p = ctrd.ctr("run", "-d", "--snapshotter", "overlayfs", "--runtime", RUNTIME,
                     *pod_opts("container", "p3"), IMAGE, "p3c", "sleep", "600")
        assert p.returncode == 0, ctrd.describe(["run", "-d", "p3c"], p)
        line = [m for m in ctrd.mounts_under() if "/p3c/rootfs " in m]
        assert len(line) == 1 and " overlay " in line[0], line
        assert "nosuid" in line[0].split()[5] and "nodev" in line[0].split()[5], line
        p = ctrd.ctr("task", "exec", "--exec-id", "c1", "p3c", "sh", "-c",
                     "echo ovl > /made; cat /made; ls /bin/busybox")
        assert p.returncode == 0 and p.stdout.split() == ["ovl", "/bin/busybox"], \
            ctrd.describe(["exec", "p3c"], p)
        assert boot_id(ctrd, "p3c", "c2") == boot_id(ctrd, "p3", "b1")
    finally:
        for cid in ("p3c", "p3"):
            remove(ctrd, cid)
    wait_gone("shim of p3", lambda: [x for x in ctrd.shim_pids(openers=True) if x not in before])
    assert [m for m in ctrd.mounts_under() if "/p3" in m] == []


def test_nothing_left_after_runs(ctrd):
    """Each run's shim exited, its VM with it; no mount, no socket."""
    for _ in range(100):
        if not ctrd.shim_pids():
            break
        time.sleep(0.2)
    assert ctrd.shim_pids(openers=True) == []
    # The sandboxed daemon leaves rootfs/ to containerd, which unmounts it with the bundle.
    assert [m for m in ctrd.mounts_under() if "/rootfs" in m] == []
    s = os.path.join(ctrd.d, "s")
    assert not os.path.isdir(s) or os.listdir(s) == []
    tasks = ctrd.ctr("tasks", "ls", check=True).stdout.splitlines()[1:]
    assert tasks == []
    # containerd stopped: still nothing (the native snapshotter mounts nothing of its own).
    ctrd.stop()
    time.sleep(1)
    assert ctrd.shim_pids(openers=True) == []
    assert ctrd.mounts_under() == []
    assert not os.path.isdir(s) or os.listdir(s) == []
