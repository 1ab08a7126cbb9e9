"""`uvm-shim serve` driven from pytest exactly as a container runtime would:
JSON lines on the shim's stdin/stdout, process stdio through FIFOs.

Most tests share one booted VM (a boot costs ~15 s in the test host); the
lifecycle tests boot their own. Needs a real /dev/kvm: `make e2e` runs the
suite inside the test host."""

import hashlib
import json
import os
import queue
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

START_TIMEOUT = float(os.environ.get("E2E_VM_TIMEOUT", "240"))


class Shim:
    """One `uvm-shim serve` process and the parent's side of the protocol."""

    def __init__(self, paths, tmp):
        self.tmp = tmp
        self.log_path = os.path.join(tmp, "shim.log")
        self.proc = subprocess.Popen([paths.shim, "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "w"))
        self.next_id = 0
        self.msgs = queue.Queue()
        self.events = []
        self.responses = {}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.msgs.put(json.loads(line))
            except ValueError:
                self.msgs.put({"bad_line": line.decode(errors="replace")})
        self.msgs.put(None)

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, method, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method}
        if params:
            msg["params"] = params
        self.send_raw((json.dumps(msg) + "\n").encode())
        return self.next_id

    def _pump(self, timeout):
        m = self.msgs.get(timeout=timeout)
        if m is None:
            raise EOFError("the shim closed stdout\n" + self.log())
        assert "bad_line" not in m, "non-JSON line on stdout: %r" % m
        if "event" in m:
            self.events.append(m)
        else:
            self.responses[m["id"]] = m
        return m

    def wait_id(self, rid, timeout=60):
        deadline = time.monotonic() + timeout
        while rid not in self.responses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to request %r\n%s" % (rid, self.log()))
            try:
                self._pump(left)
            except queue.Empty:
                pass
        return self.responses.pop(rid)

    def next_response(self, timeout=30):
        """The next response with any id (for lines that yield id null)."""
        deadline = time.monotonic() + timeout
        while True:
            for k in list(self.responses):
                return self.responses.pop(k)
            self._pump(max(0.01, deadline - time.monotonic()))

    def call(self, method, timeout=60, **params):
        return self.wait_id(self.send(method, **params), timeout)

    def ok(self, method, timeout=60, **params):
        r = self.call(method, timeout, **params)
        assert "result" in r, "%s failed: %r\n%s" % (method, r, self.log())
        return r["result"]

    def error(self, method, code, timeout=60, **params):
        r = self.call(method, timeout, **params)
        assert "error" in r, "%s should fail with %d: %r" % (method, code, r)
        assert r["error"]["code"] == code, r
        return r["error"]["message"]

    def event(self, name, pred=lambda p: True, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name and pred(e["params"]):
                    self.events.remove(e)
                    return e["params"]
            try:
                self._pump(max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError("no %s event\n%s" % (name, self.log()))

    def boot(self, **create):
        create.setdefault("console", os.path.join(self.tmp, "console.log"))
        create.setdefault("cmdline", "quiet")
        assert self.ok("vm.create", **create)["state"] == "Created"
        r = self.ok("vm.start", timeout=START_TIMEOUT)
        assert r["state"] == "Running"
        return r

    def close(self, timeout=20):
        """EOF on stdin: the shim must terminate the VM and exit by itself."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        return self.proc.wait(timeout=timeout)


class Fifos:
    """Named pipes for one process's stdio, opened the way containerd does."""

    def __init__(self, tmp, name, stdin=False, stderr=True):
        self.paths = {}
        for stream in (["stdin"] if stdin else []) + ["stdout"] + (["stderr"] if stderr else []):
            p = os.path.join(tmp, "%s.%s" % (name, stream))
            os.mkfifo(p)
            self.paths[stream] = p
        # Readers first (non-blocking), so the shim's opens never wait.
        self.out = os.open(self.paths["stdout"], os.O_RDONLY | os.O_NONBLOCK)
        self.err = os.open(self.paths["stderr"], os.O_RDONLY | os.O_NONBLOCK) if stderr else None

    def open_stdin(self):
        # After guest.exec: the shim's reader is open, this does not block.
        return os.open(self.paths["stdin"], os.O_WRONLY)

    @staticmethod
    def read_all(fd, timeout=60, limit=1 << 30):
        """Everything until EOF (the shim closes its side at the process's EOF)."""
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < limit:
            left = deadline - time.monotonic()
            assert left > 0, "no EOF within %.0f s (got %d bytes)" % (timeout, len(out))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            out += chunk
        os.close(fd)
        return bytes(out)


def run(shim, tmp, argv, name=None, timeout=60, **params):
    """Runs argv in the guest; returns (exit status dict, stdout, stderr)."""
    f = Fifos(tmp, name or ("p%d" % shim.next_id))
    pid = shim.ok("guest.exec", argv=argv, stdout=f.paths["stdout"], stderr=f.paths["stderr"],
                  **params)["pid"]
    out = Fifos.read_all(f.out, timeout)
    err = Fifos.read_all(f.err, timeout)
    st = shim.ok("process.wait", timeout=timeout, pid=pid)
    return st, out, err


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="uvm-e2e-") as d:
        yield d


@pytest.fixture(scope="module")
def vm(paths, kvm):
    """One running VM for the tests that do not change its state for good."""
    d = tempfile.mkdtemp(prefix="uvm-e2e-vm-")
    s = Shim(paths, d)
    s.vsock_path = os.path.join(d, "v.sock")
    s.boot(vsock_path=s.vsock_path)
    yield s
    # stdin EOF ends the shim, which takes its VM along.
    assert s.close() == 0, s.log()


# ---- processes -------------------------------------------------------------------------------

def test_echo_hi(vm, tmp):
    st, out, err = run(vm, tmp, ["echo", "hi"])
    assert out == b"hi\n"
    assert st["exit_code"] == 0 and st["signal"] == 0
    assert vm.event("process.exited", lambda p: p["pid"] == st["pid"])["exit_code"] == 0


def test_exit_status_7(vm, tmp):
    st, _, _ = run(vm, tmp, ["sh", "-c", "exit 7"])
    assert st["exit_code"] == 7


def test_stderr_env_cwd(vm, tmp):
    st, out, err = run(vm, tmp, ["sh", "-c", "echo $FOO; pwd; echo oops >&2"],
                       env=["FOO=bar", "PATH=/bin:/sbin"], cwd="/proc")
    assert out == b"bar\n/proc\n" and err == b"oops\n" and st["exit_code"] == 0


def test_16mib_through_stdin_and_back(vm, tmp):
    data = os.urandom(16 << 20)
    f = Fifos(tmp, "cat", stdin=True, stderr=False)
    pid = vm.ok("guest.exec", argv=["cat"], stdin=f.paths["stdin"],
                stdout=f.paths["stdout"])["pid"]
    win = f.open_stdin()
    got = bytearray()
    sent = 0
    t0 = time.monotonic()
    while sent < len(data) or win is not None:
        assert time.monotonic() - t0 < 240, "16 MiB did not make it through in 240 s"
        r, w, _ = select.select([f.out], [win] if win is not None else [], [], 5)
        if w:
            n = os.write(win, data[sent:sent + 65536])
            sent += n
            if sent == len(data):
                os.close(win)  # EOF for cat
                win = None
        if r:
            chunk = os.read(f.out, 1 << 20)
            assert chunk, "stdout ended early after %d bytes" % len(got)
            got += chunk
    got += Fifos.read_all(f.out, 120)
    assert len(got) == len(data)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert vm.ok("process.wait", pid=pid)["exit_code"] == 0


def test_20_processes_at_once(vm, tmp):
    procs = []
    for i in range(20):
        f = Fifos(tmp, "many%d" % i, stderr=False)
        pid = vm.ok("guest.exec", argv=["sh", "-c", "sleep 1; echo n%d; exit %d" % (i, i)],
                    stdout=f.paths["stdout"])["pid"]
        procs.append((i, pid, f))
    for i, pid, f in procs:
        assert Fifos.read_all(f.out, 120) == b"n%d\n" % i
        assert vm.ok("process.wait", timeout=120, pid=pid)["exit_code"] == i


def test_signal(vm, tmp):
    f = Fifos(tmp, "sleep", stderr=False)
    pid = vm.ok("guest.exec", argv=["sleep", "1000"], stdout=f.paths["stdout"])["pid"]
    wid = vm.send("process.wait", pid=pid)
    time.sleep(0.5)
    assert vm.ok("process.signal", pid=pid, signal=signal.SIGTERM) == {}
    st = vm.wait_id(wid)["result"]
    assert st["signal"] == signal.SIGTERM and st["exit_code"] == 128 + signal.SIGTERM
    Fifos.read_all(f.out)
    vm.error("process.signal", -32003, pid=999999, signal=9)


def test_tty_and_resize(vm, tmp):
    f = Fifos(tmp, "tty", stdin=True, stderr=False)
    pid = vm.ok("guest.exec", argv=["sh", "-c", "stty size; read x; stty size"], tty=True,
                rows=24, cols=80, stdin=f.paths["stdin"], stdout=f.paths["stdout"])["pid"]
    win = f.open_stdin()
    out = b""
    deadline = time.monotonic() + 60
    while b"24 80" not in out:
        assert time.monotonic() < deadline, out
        r, _, _ = select.select([f.out], [], [], 5)
        if r:
            out += os.read(f.out, 4096)
    assert vm.ok("process.resize", pid=pid, rows=40, cols=120) == {}
    os.write(win, b"go\n")
    out += Fifos.read_all(f.out)
    os.close(win)
    assert b"40 120" in out, out
    assert vm.ok("process.wait", pid=pid)["exit_code"] == 0
    # A process without a terminal cannot be resized.
    g = Fifos(tmp, "notty", stderr=False)
    pid2 = vm.ok("guest.exec", argv=["sleep", "2"], stdout=g.paths["stdout"])["pid"]
    assert "terminal" in vm.error("process.resize", -32002, pid=pid2, rows=1, cols=1)
    Fifos.read_all(g.out)


def test_missing_binary(vm, tmp):
    msg = vm.error("guest.exec", -32002, argv=["/no/such/binary"])
    assert "No such file" in msg, msg


def check_shim_stacks(vm, s):
    """The shim's own threads in guest.dump_stacks, taken with the seccomp
    filters on (the default): every vCPU thread answers and sits in KVM_RUN
    (libc's ioctl under vcpu_thread), the loop thread answers from inside
    the capture, and only io_uring kernel workers may lack frames."""
    pid = vm.proc.pid
    print(s["shim"])  # shown with pytest -s
    threads = {t["tid"]: t for t in s["shim_threads"]}
    names = {t["name"] for t in threads.values()}
    assert "main" in names or any(t["tid"] == pid for t in threads.values()), s["shim"]
    vcpus = [t for t in threads.values() if t["name"].startswith("vcpu")]
    assert vcpus, s["shim"]
    for t in vcpus:
        with open("/proc/%d/task/%d/status" % (pid, t["tid"])) as f:
            assert "Seccomp:\t2" in f.read(), "vCPU thread %d is not filtered" % t["tid"]
        assert t["answered"], s["shim"]
        fns = [f["function"] for f in t["frames"]]
        assert "vcpu_thread" in fns, s["shim"]
        # Stopped by the signal in KVM_RUN, or (rarely) while handling an exit.
        # (ASan builds add their ioctl interceptor between the two.)
        assert "ioctl" in fns[:3] or "vcpu_handle_exit" in fns or "bus_access" in fns, s["shim"]
        assert "thread %d (%s)" % (t["tid"], t["name"]) in s["shim"]
    loop = threads[pid]
    assert loop["answered"] and "stacks_capture" in [f["function"] for f in loop["frames"]], \
        s["shim"]
    for t in threads.values():
        assert t["answered"] or t["name"].startswith("iou-"), s["shim"]
    # A second capture works (slots are reused, nothing left armed).
    again = vm.ok("guest.dump_stacks")
    assert all(t["answered"] for t in again["shim_threads"]
               if not t["name"].startswith("iou-")), again["shim"]


def test_properties_stacks_stats(vm):
    p = vm.ok("guest.properties")
    assert p["memory"]["total_kib"] > 0
    assert any(x["pid"] == 1 for x in p["processes"])
    s = vm.ok("guest.dump_stacks")
    assert "gcs_bridge_main" in s["gcs"], s
    assert "uvm-shim pid" in s["shim"]
    check_shim_stacks(vm, s)
    st = vm.ok("vm.stats")
    assert st["state"] == "Running" and st["vsock"]["connections"] >= 1


# ---- bad input ------------------------------------------------------------------------------

def test_malformed_lines_keep_serving(vm):
    vm.send_raw(b"this is not json\n")
    assert vm.next_response()["error"]["code"] == -32700
    vm.send_raw(b'{"method":"vm.state"}\n')
    assert vm.next_response()["error"]["code"] == -32600
    vm.send_raw(b"x" * (1024 * 1024 + 10) + b"\n")
    assert vm.next_response()["error"]["code"] == -32005
    vm.error("vm.fly", -32601)
    vm.error("guest.exec", -32602, argv="not a list")
    vm.error("process.wait", -32602, pid="x")
    vm.error("process.wait", -32003, pid=424242)
    assert vm.ok("vm.state")["state"] == "Running"


def test_wrong_state_calls(vm):
    for m in ("vm.create", "vm.start", "vm.resume"):
        msg = vm.error(m, -32001)
        assert "Running" in msg, msg


def test_pause_resume_then_exec(vm, tmp):
    assert vm.ok("vm.pause")["state"] == "Paused"
    msg = vm.error("guest.exec", -32001, argv=["true"])
    assert "Paused" in msg
    vm.error("vm.pause", -32001)
    assert vm.ok("vm.state")["state"] == "Paused"
    assert vm.ok("vm.resume")["state"] == "Running"
    st, out, _ = run(vm, tmp, ["echo", "after-resume"])
    assert out == b"after-resume\n" and st["exit_code"] == 0


# ---- lifecycle, each with its own shim ----------------------------------------------------------

def test_terminate_not_created(paths, tmp):
    s = Shim(paths, tmp)
    assert s.ok("vm.terminate")["state"] == "Terminated"
    assert s.ok("vm.terminate")["state"] == "Terminated"
    s.error("vm.create", -32001)
    assert s.close() == 0


def test_terminate_created(paths, kvm, tmp):
    s = Shim(paths, tmp)
    s.ok("vm.create")
    assert s.ok("vm.state")["state"] == "Created"
    s.error("guest.exec", -32001, argv=["true"])
    s.error("vm.pause", -32001)
    assert s.ok("vm.terminate")["state"] == "Terminated"
    assert s.ok("vm.wait")["exit"] == "terminated"
    assert s.close() == 0


def test_start_timeout_invalid_then_terminate(paths, kvm, tmp):
    s = Shim(paths, tmp)
    s.ok("vm.create")
    s.error("vm.start", -32006, timeout_ms=1)
    assert s.ok("vm.state")["state"] == "Invalid"
    s.error("guest.exec", -32001, argv=["true"])
    assert s.ok("vm.terminate")["state"] == "Terminated"
    assert s.close() == 0


def test_terminate_running_and_paused_and_shutdown(paths, kvm, tmp):
    # Running -> terminate, with a vm.wait pending and a process running.
    s = Shim(paths, tmp)
    s.boot()
    f = Fifos(tmp, "long", stderr=False)
    pid = s.ok("guest.exec", argv=["sleep", "1000"], stdout=f.paths["stdout"])["pid"]
    wid = s.send("vm.wait")
    pwid = s.send("process.wait", pid=pid)
    assert s.ok("vm.terminate")["state"] == "Terminated"
    assert s.wait_id(wid)["result"]["exit"] == "terminated"
    assert s.wait_id(pwid)["error"]["code"] == -32009
    assert s.event("vm.exited")["exit"] == "terminated"
    assert s.close() == 0

    # Paused -> terminate.
    s = Shim(paths, tmp)
    s.boot()
    s.ok("vm.pause")
    assert s.ok("vm.terminate")["state"] == "Terminated"
    assert s.close() == 0

    # Graceful shutdown through the GCS.
    s = Shim(paths, tmp)
    s.boot()
    r = s.ok("vm.shutdown", timeout=120)
    assert r["state"] == "Terminated" and r["exit"] in ("reset", "poweroff"), r
    assert s.close() == 0


def test_parent_sigkill_leaves_no_shim(paths, kvm, tmp):
    # A parent (sh) starts the shim with a pipe on stdin, then dies by SIGKILL.
    pidfile = os.path.join(tmp, "pid")
    parent = subprocess.Popen(
        ["sh", "-c", 'sleep 1000 | { "%s" serve & echo $! > %s; wait; }' % (paths.shim, pidfile)],
        start_new_session=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(pidfile) or not open(pidfile).read().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shim_pid = int(open(pidfile).read())
    time.sleep(0.5)
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 2
    while os.path.exists("/proc/%d" % shim_pid):
        with open("/proc/%d/stat" % shim_pid) as st:
            if st.read().split()[2] == "Z":
                break  # exited, only not reaped (its parent is gone too)
        assert time.monotonic() < deadline, "uvm-shim %d still alive 2 s after its parent died" % shim_pid
        time.sleep(0.05)


def test_stdin_eof_ends_shim_and_vm(paths, kvm, tmp):
    s = Shim(paths, tmp)
    s.boot()
    pid = s.proc.pid
    t0 = time.monotonic()
    assert s.close(timeout=10) == 0
    assert time.monotonic() - t0 < 10
    assert not os.path.exists("/proc/%d" % pid)
    # vm.exited was the last thing said.
    while True:
        try:
            m = s.msgs.get(timeout=5)
        except queue.Empty:
            break
        if m is None:
            break
        if "event" in m:
            s.events.append(m)
    assert any(e["event"] == "vm.exited" for e in s.events)


def read_until(fd, marker, timeout=60):
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out:
        assert time.monotonic() < deadline, out
        r, _, _ = select.select([fd], [], [], 5)
        if r:
            chunk = os.read(fd, 4096)
            assert chunk, out
            out += chunk
    return out


def test_connect_convention_host_to_guest(vm, tmp):
    # A guest program listens on vsock port 5000 and echoes (the GCS's self-test mode).
    f = Fifos(tmp, "echo", stderr=False)
    pid = vm.ok("guest.exec", argv=["/init", "bridge", "--vsock-echo", "5000"],
                stdout=f.paths["stdout"])["pid"]
    read_until(f.out, b"listening 5000\n")
    data = os.urandom(1 << 20)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(60)
    c.connect(vm.vsock_path)
    c.sendall(b"CONNECT 5000\n")
    line = b""
    while not line.endswith(b"\n"):
        line += c.recv(1)
    assert line.startswith(b"OK ") and int(line[3:]) > 0, line
    sender = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
    sender.start()
    got = bytearray()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    sender.join()
    c.close()
    assert bytes(got) == data
    assert vm.ok("process.wait", pid=pid)["exit_code"] == 0
    Fifos.read_all(f.out)
    # Nobody listens on guest port 5001: the socket is closed without OK.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(30)
    c.connect(vm.vsock_path)
    c.sendall(b"CONNECT 5001\n")
    assert c.recv(100) == b""
    c.close()


def test_connect_convention_guest_to_host(vm, tmp):
    # A guest connecting to host port 6000 reaches the Unix socket <vsock_path>_6000.
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(vm.vsock_path + "_6000")
    lst.listen(1)
    lst.settimeout(60)
    f = Fifos(tmp, "dial", stdin=True, stderr=False)
    pid = vm.ok("guest.exec", argv=["/init", "bridge", "--vsock-dial", "6000"],
                stdin=f.paths["stdin"], stdout=f.paths["stdout"])["pid"]
    win = f.open_stdin()
    os.write(win, b"hello from the guest\n")
    os.close(win)
    c, _ = lst.accept()
    c.settimeout(60)
    got = b""
    while True:
        chunk = c.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got == b"hello from the guest\n"
    c.sendall(b"hello from the host\n")
    c.close()
    lst.close()
    assert Fifos.read_all(f.out) == b"hello from the host\n"
    assert vm.ok("process.wait", pid=pid)["exit_code"] == 0
