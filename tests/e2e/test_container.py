"""Containers in the utility VM (container.*), driven through `uvm-shim serve`
as a container runtime would: a busybox root file system built here from
Debian's busybox-static into an ext4 layer (given as a VPMem device) and an
erofs layer (a read-only SCSI disk), a scratch SCSI disk the guest formats,
an OCI spec like the one `crun spec` writes. The guest agent mounts the layers, makes
the overlay and runs crun (gcs/container*.c).

One VM serves the whole module (a boot costs ~15 s in the test host).
Needs a real /dev/kvm (`make e2e`), busybox-static, e2fsprogs and erofs-utils
on the host."""

import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

import pytest

from test_scsi import host_cat, sh, tool
from test_serve import Fifos, Shim

BAD_PARAMS, WRONG_STATE, GUEST, NOT_FOUND = -32602, -32001, -32002, -32003
HOSTNAME = "ctr-test"
LONG = 300  # container operations run crun in a TCG-emulated guest: slow


def need_tools():
    for t in ("mkfs.ext4", "debugfs", "mkfs.erofs"):
        if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t) and \
                not os.path.exists("/sbin/" + t):
            pytest.skip("%s is not installed (e2fsprogs, erofs-utils)" % t)
    bb = shutil.which("busybox")
    if not bb or subprocess.run(["ldd", bb], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0:
        pytest.skip("no static busybox on the host (apt-get install busybox-static)")
    return bb


def make_rootfs(root, bb):
    """busybox and its applets in /bin, a user 1000, a working directory."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "work", "home/user"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(bb, os.path.join(root, "bin/busybox"))
    applets = subprocess.run([bb, "--list"], stdout=subprocess.PIPE, check=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nuser:x:1000:\n")
    with open(os.path.join(root, "etc/layer-marker"), "w") as f:
        f.write("from the layer\n")


CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
# What `crun spec` writes (crun 1.8.1), root.path and process filled in per test.
BASE_SPEC = {
    "ociVersion": "1.0.0",
    "process": {
        "terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
        "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
        "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "crun",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                        "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def images():
    bb = need_tools()
    d = tempfile.mkdtemp(prefix="uvm-e2e-ctr-img-")
    src = os.path.join(d, "rootfs")
    make_rootfs(src, bb)
    ext4 = os.path.join(d, "busybox.ext4")
    with open(ext4, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run([tool("mkfs.ext4"), "-F", "-q", "-b", "4096", "-d", src, ext4], check=True)
    erofs = os.path.join(d, "busybox.erofs")
    subprocess.run([tool("mkfs.erofs"), "--quiet", erofs, src], check=True,
                   stdout=subprocess.DEVNULL)
    yield {"dir": d, "ext4": ext4, "erofs": erofs, "spec": BASE_SPEC,
           "sums": {p: sha(p) for p in (ext4, erofs)}}
    shutil.rmtree(d, ignore_errors=True)


def scratch_disk(d, name, mib=64):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.truncate(mib << 20)
    return p


@pytest.fixture(scope="module")
def cvm(paths, kvm, images):
    d = tempfile.mkdtemp(prefix="uvm-e2e-ctr-")
    s = Shim(paths, d)
    s.dir = d
    s.boot(memory_mib=1024, vpmem_count=4, vpmem_max_bytes=64 << 20)
    # Layers: ext4 on VPMem 0 and erofs on a read-only SCSI disk, attached only (the
    # guest agent mounts each once, for every container using it).
    s.ok("vpmem.add", timeout=LONG, device=0, host_path=images["ext4"], read_only=True)
    s.ok("scsi.add", timeout=LONG, controller=0, lun=1, host_path=images["erofs"],
         read_only=True, fs_type="erofs")
    s.next_lun = 2
    yield s
    assert s.close() == 0, s.log()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="uvm-e2e-ctr-t-") as d:
        yield d


def spec_of(images, args, **proc):
    s = json.loads(json.dumps(images["spec"]))
    s["hostname"] = HOSTNAME
    s["root"]["readonly"] = proc.pop("readonly", False)
    p = s["process"]
    p["terminal"] = proc.pop("terminal", False)
    p["args"] = args
    for k, v in proc.items():
        p[k] = v
    return s


def add_scratch(cvm, tmp, name="scratch.img"):
    lun = cvm.next_lun
    cvm.next_lun += 1
    img = scratch_disk(tmp, name)
    cvm.ok("scsi.add", timeout=LONG, controller=0, lun=lun, host_path=img, read_only=False)
    return lun, img


def create(cvm, tmp, cid, spec, layers=None, scratch=None, fmt=False, stdin=False):
    f = Fifos(tmp, cid, stdin=stdin, stderr=not spec["process"]["terminal"])
    root = {"layers": layers or [{"vpmem": 0}]}
    if scratch is not None:
        root["scratch"] = {"scsi": {"controller": 0, "lun": scratch}}
        root["format"] = fmt
    params = {k: v for k, v in f.paths.items()}
    r = cvm.ok("container.create", timeout=LONG, id=cid, spec=spec, root=root, **params)
    assert r["id"] == cid and r["pid"] > 0, r
    return f, r["pid"]


def run_container(cvm, tmp, cid, spec, **kw):
    """create + start + output + exit; returns (exit params, stdout, stderr)."""
    f, pid = create(cvm, tmp, cid, spec, **kw)
    assert cvm.ok("container.start", timeout=LONG, id=cid) == {}
    out = Fifos.read_all(f.out, LONG)
    err = Fifos.read_all(f.err, LONG) if f.err is not None else b""
    ex = cvm.ok("container.wait", timeout=LONG, id=cid)
    assert ex["pid"] == pid
    return ex, out.decode(errors="replace"), err.decode(errors="replace")


def guest_mounts(cvm, tmp):
    code, out, _ = sh(cvm, tmp, "cat /proc/mounts", timeout=LONG)
    assert code == 0
    return out


# ---- tests ---------------------------------------------------------------------------------

def test_hi_hostname_pid1(cvm, tmp, images):
    spec = spec_of(images, ["/bin/sh", "-c", "echo hi; hostname; echo $$"])
    ex, out, err = run_container(cvm, tmp, "c1", spec)
    assert out.split() == ["hi", HOSTNAME, "1"], (out, err, cvm.log())
    assert ex["exit_code"] == 0 and ex["signal"] == 0 and ex["oom_killed"] is False
    ev = cvm.event("container.exited", lambda p: p["id"] == "c1", timeout=LONG)
    assert ev["exit_code"] == 0
    assert [c["state"] for c in cvm.ok("container.list")["containers"]
            if c["id"] == "c1"] == ["stopped"]
    assert cvm.ok("container.delete", timeout=LONG, id="c1") == {}
    mounts = guest_mounts(cvm, tmp)
    assert "/run/gcs/c/c1" not in mounts and "/run/gcs/layers/" not in mounts, mounts


def test_crun_binary_sealed_read_only(cvm, tmp, images):
    """The agent binds crun read-only onto itself (gcs_crun_seal), so crun
    skips copying itself on every run; nothing can write the binary."""
    crun = [line.split() for line in guest_mounts(cvm, tmp).splitlines()
            if line.split()[1:2] == ["/usr/bin/crun"]]
    assert crun and "ro" in crun[-1][3].split(","), crun
    code, _, err = sh(cvm, tmp, "echo x >> /usr/bin/crun", timeout=LONG)
    assert code != 0 and "Read-only" in err, (code, err)


def test_user_env_cwd_readonly_root_on_erofs_scsi(cvm, tmp, images):
    script = ("id -u; id -g; echo $FOO; pwd; "
              "if touch /x 2>/dev/null; then echo writable; else echo readonly; fi")
    spec = spec_of(images, ["/bin/sh", "-c", script], readonly=True, cwd="/work",
                   env=["PATH=/bin", "FOO=bar"], user={"uid": 1000, "gid": 1000})
    ex, out, err = run_container(cvm, tmp, "c2", spec,
                                 layers=[{"scsi": {"controller": 0, "lun": 1}}])
    assert out.split() == ["1000", "1000", "bar", "/work", "readonly"], (out, err)
    assert ex["exit_code"] == 0
    assert cvm.ok("container.delete", timeout=LONG, id="c2") == {}


def test_write_lands_in_scratch_layers_unchanged(cvm, tmp, images):
    lun, img = add_scratch(cvm, tmp)
    spec = spec_of(images, ["/bin/sh", "-c",
                            "echo scratch-data > /data.txt; echo more >> /etc/layer-marker; "
                            "cat /etc/layer-marker"])
    ex, out, err = run_container(cvm, tmp, "c3", spec, scratch=lun, fmt=True)
    assert ex["exit_code"] == 0, (out, err)
    assert out == "from the layer\nmore\n", out
    assert cvm.ok("container.delete", timeout=LONG, id="c3") == {}
    assert cvm.ok("scsi.remove", timeout=LONG, controller=0, lun=lun) == {"controller": 0,
                                                                          "lun": lun}
    assert host_cat(img, "/upper/data.txt") == b"scratch-data\n"
    assert host_cat(img, "/upper/etc/layer-marker") == b"from the layer\nmore\n"
    for p, digest in images["sums"].items():
        assert sha(p) == digest, "%s changed on the host" % p


def test_unformatted_scratch_is_refused(cvm, tmp, images):
    lun, img = add_scratch(cvm, tmp, "raw.img")
    spec = spec_of(images, ["/bin/true"])
    f = Fifos(tmp, "c4")
    msg = cvm.error("container.create", GUEST, timeout=LONG, id="c4", spec=spec,
                    root={"layers": [{"vpmem": 0}],
                          "scratch": {"scsi": {"controller": 0, "lun": lun}}},
                    stdout=f.paths["stdout"])
    assert "format" in msg, msg
    assert cvm.ok("scsi.remove", timeout=LONG, controller=0, lun=lun)
    assert "c4" not in [c["id"] for c in cvm.ok("container.list")["containers"]]


def test_delete_while_creating(cvm, tmp, images):
    """container.delete sent right behind a create that formats its scratch: the guest
    stops the create where it is (mounting or formatting), the create answers -32009, the
    delete {}; nothing of it stays (no entry, no mount, the disk removable), and the
    same id is created again on the same disk, formatted anew."""
    lun, img = add_scratch(cvm, tmp, "del.img")
    spec = spec_of(images, ["/bin/sh", "-c", "echo again"])
    f = Fifos(tmp, "dc1-cancelled")
    root = {"layers": [{"vpmem": 0}], "scratch": {"scsi": {"controller": 0, "lun": lun}},
            "format": True}
    rc = cvm.send("container.create", id="dc1", spec=spec, root=root, **f.paths)
    rd = cvm.send("container.delete", id="dc1")
    d = cvm.wait_id(rd, LONG)
    c = cvm.wait_id(rc, LONG)
    assert d.get("result") == {}, (d, cvm.log())
    assert c.get("error", {}).get("code") == -32009, (c, cvm.log())
    assert "deleted while" in c["error"]["message"], c
    assert "dc1" not in [x["id"] for x in cvm.ok("container.list")["containers"]]
    assert "/run/gcs/c/dc1" not in guest_mounts(cvm, tmp)
    ex, out, err = run_container(cvm, tmp, "dc1", spec, scratch=lun, fmt=True)
    assert ex["exit_code"] == 0 and out == "again\n", (ex, out, err)
    assert cvm.ok("container.delete", timeout=LONG, id="dc1") == {}
    assert cvm.ok("scsi.remove", timeout=LONG, controller=0, lun=lun)


def test_memory_limit_oom_reported(cvm, tmp, images):
    spec = spec_of(images, ["/bin/sh", "-c",
                            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"])
    spec["linux"].setdefault("resources", {})["memory"] = {"limit": 32 << 20}
    ex, out, err = run_container(cvm, tmp, "c5", spec)
    assert "survived" not in out
    assert ex["oom_killed"] is True, (ex, out, err)
    assert ex["signal"] == 9 or ex["exit_code"] != 0, ex
    assert cvm.ok("container.delete", timeout=LONG, id="c5") == {}


def exec_in(cvm, tmp, cid, args, name, **proc):
    f = Fifos(tmp, name)
    p = {"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    p.update(proc)
    pid = cvm.ok("container.exec", timeout=LONG, id=cid, process=p,
                 stdout=f.paths["stdout"], stderr=f.paths["stderr"])["pid"]
    out = Fifos.read_all(f.out, LONG).decode(errors="replace")
    err = Fifos.read_all(f.err, LONG).decode(errors="replace")
    st = cvm.ok("process.wait", timeout=LONG, pid=pid)
    return st, out, err


def test_running_container_exec_stats_update_delete(cvm, tmp, images):
    spec = spec_of(images, ["/bin/sh", "-c", "echo up; exec sleep 100000"])
    f, pid = create(cvm, tmp, "c6", spec)
    assert cvm.ok("container.start", timeout=LONG, id="c6") == {}
    s1 = cvm.ok("container.stats", timeout=LONG, id="c6")
    assert s1["memory"]["current"] > 0 and s1["pids"]["current"] >= 1, s1
    # exec: same namespaces (hostname, pid 1 is the init)
    st, out, err = exec_in(cvm, tmp, "c6", ["/bin/sh", "-c", "hostname; cat /proc/1/cmdline"],
                           "e1")
    assert st["exit_code"] == 0 and out.startswith(HOSTNAME + "\n"), (out, err)
    assert "sleep" in out, out
    # load: CPU use grows
    st, _, _ = exec_in(cvm, tmp, "c6", ["/bin/sh", "-c",
                                        "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done"], "e2")
    s2 = cvm.ok("container.stats", timeout=LONG, id="c6")
    assert s2["cpu"]["usage_usec"] > s1["cpu"]["usage_usec"], (s1, s2)
    # memory: 16 MiB written to the container's /dev/shm (tmpfs, charged to its cgroup)
    st, out, err = exec_in(cvm, tmp, "c6", ["/bin/sh", "-c",
                                            "head -c 16777216 /dev/zero > /dev/shm/blob"], "em")
    assert st["exit_code"] == 0, (st, out, err)
    s3 = cvm.ok("container.stats", timeout=LONG, id="c6")
    print("memory.current %d -> %d bytes after 16 MiB in /dev/shm" %
          (s1["memory"]["current"], s3["memory"]["current"]))
    assert s3["memory"]["current"] >= s1["memory"]["current"] + (15 << 20), (s1, s3)
    assert s3["memory"]["peak"] in (-2,) or s3["memory"]["peak"] >= s3["memory"]["current"]
    # pids limit lowered: a fork past it fails
    assert cvm.ok("container.update", timeout=LONG, id="c6", pids=3) == {}
    assert cvm.ok("container.stats", timeout=LONG, id="c6")["pids"]["max"] == 3
    st, out, err = exec_in(cvm, tmp, "c6", ["/bin/sh", "-c",
                                            "sleep 30 & sleep 30 & sleep 30 & echo forked"],
                           "e3")
    assert "fork" in err or st["exit_code"] != 0, (st, out, err)
    # raised again, or crun itself cannot start the next exec in the container
    assert cvm.ok("container.update", timeout=LONG, id="c6", pids=64) == {}
    # a terminal exec with a resize
    g = Fifos(tmp, "tty", stdin=True, stderr=False)
    tpid = cvm.ok("container.exec", timeout=LONG, id="c6", rows=24, cols=80,
                  process={"args": ["/bin/sh", "-c", "stty size; read x; stty size"],
                           "cwd": "/", "terminal": True, "env": ["PATH=/bin"],
                           "user": {"uid": 0, "gid": 0}},
                  stdin=g.paths["stdin"], stdout=g.paths["stdout"])["pid"]
    win = g.open_stdin()
    got = b""
    deadline = time.monotonic() + LONG
    while b"24 80" not in got:
        assert time.monotonic() < deadline, got
        r, _, _ = select.select([g.out], [], [], 5)
        if r:
            got += os.read(g.out, 4096)
    assert cvm.ok("process.resize", pid=tpid, rows=40, cols=120) == {}
    os.write(win, b"go\n")
    got += Fifos.read_all(g.out, LONG)
    os.close(win)
    assert b"40 120" in got, got
    # delete without force refused while running; with force: nothing left
    assert "force" in cvm.error("container.delete", WRONG_STATE, id="c6")
    assert cvm.ok("container.delete", timeout=LONG, id="c6", force=True) == {}
    # the killed init's exit is an event like any exit
    ev = cvm.event("container.exited", lambda p: p["id"] == "c6", timeout=LONG)
    assert ev["pid"] == pid and ev["signal"] == 9, ev
    Fifos.read_all(f.out, LONG)
    Fifos.read_all(f.err, LONG)
    mounts = guest_mounts(cvm, tmp)
    assert "/run/gcs/c/c6" not in mounts and "/run/gcs/layers/" not in mounts, mounts
    code, out, _ = sh(cvm, tmp, "ps; ls /run/gcs/c /sys/fs/cgroup/containers", timeout=LONG)
    assert "sleep 100000" not in out and "c6" not in out, out


def test_two_containers_isolated_and_signal(cvm, tmp, images):
    """Two at once on one shared layer: neither sees the other's files or processes."""
    a = spec_of(images, ["/bin/sh", "-c", "echo a > /only-a; echo ready; exec sleep 100000"])
    fa, pa = create(cvm, tmp, "c7", a)
    assert cvm.ok("container.start", timeout=LONG, id="c7") == {}
    b = spec_of(images, ["/bin/sh", "-c", "ls /only-a 2>&1; ps -o comm | grep -c sleep; "
                                          "echo > /only-b"])
    ex, out, err = run_container(cvm, tmp, "c8", b)
    assert "No such file" in out and out.split()[-1] == "0", (out, err)
    st, out, err = exec_in(cvm, tmp, "c7", ["/bin/sh", "-c", "ls /only-b 2>&1; cat /only-a"],
                           "e7")
    assert "No such file" in out and out.endswith("a\n"), (out, err)
    mounts = guest_mounts(cvm, tmp)
    assert mounts.count("/run/gcs/layers/pmem0 ") == 1, mounts  # one mount for both
    # the shared layer cannot be pulled from under them
    assert "used by container" in cvm.error("vpmem.remove", -32004, device=0)
    # SIGKILL to the init: its exit reports the signal
    assert cvm.ok("container.signal", timeout=LONG, id="c7", signal=9) == {}
    ev = cvm.event("container.exited", lambda p: p["id"] == "c7", timeout=LONG)
    assert ev["signal"] == 9 and ev["pid"] == pa and ev["oom_killed"] is False, ev
    Fifos.read_all(fa.out, LONG)
    Fifos.read_all(fa.err, LONG)
    assert "stopped" in cvm.error("container.signal", WRONG_STATE, id="c7", signal=15)
    for cid in ("c7", "c8"):
        assert cvm.ok("container.delete", timeout=LONG, id=cid) == {}
    assert "/run/gcs/layers/" not in guest_mounts(cvm, tmp)


def test_bad_input_clear_errors(cvm, tmp, images):
    spec = spec_of(images, ["/bin/true"])
    root = {"layers": [{"vpmem": 0}]}
    assert "JSON" in cvm.error("container.create", BAD_PARAMS, id="b1", spec="{not json",
                               root=root)
    assert "spec" in cvm.error("container.create", BAD_PARAMS, id="b1", root=root)
    assert "vpmem device 3" in cvm.error("container.create", NOT_FOUND, id="b1", spec=spec,
                                         root={"layers": [{"vpmem": 3}]})
    assert "params.id" in cvm.error("container.create", BAD_PARAMS, id="b/1", spec=spec,
                                    root=root)
    nospec = json.loads(json.dumps(spec))
    del nospec["process"]["args"]
    assert "process.args" in cvm.error("container.create", GUEST, timeout=LONG, id="b2",
                                       spec=nospec, root=root)
    assert "no container" in cvm.error("container.start", NOT_FOUND, id="nosuch")
    assert "no container" in cvm.error("container.exec", NOT_FOUND, id="nosuch",
                                       process={"args": ["/bin/true"]})
    # a spec crun itself rejects: its message comes back
    bad = json.loads(json.dumps(spec))
    bad["linux"]["namespaces"].append({"type": "no-such-namespace"})
    msg = cvm.error("container.create", GUEST, timeout=LONG, id="b4", spec=bad, root=root)
    assert "crun" in msg, msg
    assert "/run/gcs/c/b4" not in guest_mounts(cvm, tmp)
    f, _ = create(cvm, tmp, "b3", spec)
    assert "already exists" in cvm.error("container.create", BAD_PARAMS, id="b3", spec=spec,
                                         root=root)
    assert "not running" in cvm.error("container.exec", WRONG_STATE, id="b3",
                                      process={"args": ["/bin/true"]})
    assert cvm.ok("container.delete", timeout=LONG, id="b3") == {}
    # the VM still serves
    code, out, _ = sh(cvm, tmp, "echo alive")
    assert out == "alive\n"


def test_container_in_its_own_network_namespace(cvm, tmp, images):
    """netns.add, a NIC moved into it (nic.add guest_netns), a container joining it by
    path: the host pings the container's address, which the VM's own namespace lacks."""
    from test_net import host_ping, ip, need_net
    need_net()
    tap = "uvmct%d" % (os.getpid() % 10000)
    host, guest, mac = "10.77.0.1", "10.77.0.2", "02:00:00:00:77:02"
    # In the test host's own namespace: once the VM runs, the shim opens taps only there.
    ip("tuntap", "add", tap, "mode", "tap")
    try:
        ip("addr", "add", host + "/24", "dev", tap)
        ip("link", "set", tap, "up")
        assert cvm.ok("netns.add", timeout=LONG, name="n1") == {}
        assert "exists" in cvm.error("netns.add", GUEST, timeout=LONG, name="n1")
        cvm.ok("nic.add", timeout=LONG, id="ct0", backend="tap", tap=tap, mac=mac,
               addresses=[guest + "/24"], guest_netns="n1")
        r = host_ping(guest)
        assert r.returncode == 0, r.stdout
        code, out, _ = sh(cvm, tmp, "ip addr", timeout=LONG)
        assert guest not in out, out  # not in the VM's own namespace
        spec = spec_of(images, ["/bin/sh", "-c", "ip addr; ping -c 1 -W 10 %s" % host])
        spec["process"]["capabilities"] = {k: CAPS + ["CAP_NET_RAW"] for k in
                                           ("bounding", "effective", "permitted", "ambient")}
        spec["linux"]["namespaces"] = [
            n if n["type"] != "network" else {"type": "network", "path": "/run/netns/n1"}
            for n in spec["linux"]["namespaces"]]
        ex, out, err = run_container(cvm, tmp, "c9", spec)
        assert guest in out and ex["exit_code"] == 0, (out, err)
        assert cvm.ok("container.delete", timeout=LONG, id="c9") == {}
        cvm.ok("nic.remove", timeout=LONG, id="ct0")
        assert cvm.ok("netns.remove", timeout=LONG, name="n1") == {}
        assert "no such" in cvm.error("netns.remove", GUEST, timeout=LONG, name="n1")
        assert "params.name" in cvm.error("netns.add", BAD_PARAMS, name="../x")
    finally:
        ip("link", "del", tap, check=False)


def test_crun_runs_off_the_agents_loop(cvm, tmp, images):
    """crun create held 30 s by a createRuntime hook (run by crun in the VM): meanwhile the
    agent answers a guest.exec and its wait, and another container's stats, all before
    the create; then the slow container starts and runs."""
    fast = spec_of(images, ["/bin/sh", "-c", "exec sleep 100000"])
    ff, _ = create(cvm, tmp, "fast", fast)
    assert cvm.ok("container.start", timeout=LONG, id="fast") == {}
    slow = spec_of(images, ["/bin/sh", "-c", "echo slow-ran"])
    slow["hooks"] = {"createRuntime": [{"path": "/bin/busybox", "args": ["sleep", "30"]}]}
    f = Fifos(tmp, "slow")
    t0 = time.monotonic()
    rid = cvm.send("container.create", id="slow", spec=slow,
                   root={"layers": [{"vpmem": 0}]}, **f.paths)
    time.sleep(2)  # let crun reach the hook
    code, out, _ = sh(cvm, tmp, "echo alive", timeout=LONG)
    assert code == 0 and out == "alive\n"
    st = cvm.ok("container.stats", timeout=LONG, id="fast")
    assert st["pids"]["current"] >= 1, st
    t_other = time.monotonic() - t0
    assert rid not in cvm.responses, "the create answered first: crun held the agent's loop"
    r = cvm.wait_id(rid, LONG)
    t_create = time.monotonic() - t0
    assert "result" in r, (r, cvm.log())
    print("guest.exec and stats answered after %.1f s, the held create after %.1f s" %
          (t_other, t_create))
    assert t_create >= 30 > t_other, (t_other, t_create)
    assert cvm.ok("container.start", timeout=LONG, id="slow") == {}
    assert Fifos.read_all(f.out, LONG) == b"slow-ran\n"
    Fifos.read_all(f.err, LONG)
    assert cvm.ok("container.wait", timeout=LONG, id="slow")["exit_code"] == 0
    for cid in ("slow", "fast"):
        assert cvm.ok("container.delete", timeout=LONG, id=cid, force=True) == {}
    Fifos.read_all(ff.out, LONG)
    Fifos.read_all(ff.err, LONG)

def test_root_from_plan9_shares(cvm, tmp, images):
    """A root file system the parent prepared in a host directory, shared over 9p:
    read-only under an overlay in guest memory (the host directory unchanged), and
    writable as the root itself (the container's writes land in the host directory)."""
    bb = need_tools()
    ro = os.path.join(tmp, "ro-root")
    make_rootfs(ro, bb)
    bundle = os.path.join(tmp, "bundle")
    make_rootfs(os.path.join(bundle, "rootfs"), bb)
    cvm.ok("plan9.add", timeout=LONG, name="p9ro", host_path=ro, guest_path="/run/e2e/p9ro",
           read_only=True)
    cvm.ok("plan9.add", timeout=LONG, name="p9rw", host_path=bundle,
           guest_path="/run/e2e/p9rw")
    try:
        spec = spec_of(images, ["/bin/sh", "-c", "echo hi > /new; echo more >> "
                                "/etc/layer-marker; cat /new /etc/layer-marker; hostname"])
        f = Fifos(tmp, "p1")
        r = cvm.ok("container.create", timeout=LONG, id="p1", spec=spec,
                   root={"plan9": "p9ro"}, **f.paths)
        assert cvm.ok("container.start", timeout=LONG, id="p1") == {}
        out = Fifos.read_all(f.out, LONG).decode(errors="replace")
        err = Fifos.read_all(f.err, LONG).decode(errors="replace")
        ex = cvm.ok("container.wait", timeout=LONG, id="p1")
        assert ex["exit_code"] == 0 and ex["pid"] == r["pid"], (ex, out, err, cvm.log())
        assert out.split() == ["hi", "from", "the", "layer", "more", HOSTNAME], (out, err)
        assert not os.path.exists(os.path.join(ro, "new"))
        with open(os.path.join(ro, "etc/layer-marker")) as m:
            assert m.read() == "from the layer\n"
        # the share stays while its container does
        assert "root of container p1" in cvm.error("plan9.remove", -32004, name="p9ro")
        assert cvm.ok("container.delete", timeout=LONG, id="p1") == {}

        # writable: no overlay, a scratch is refused
        assert "writable" in cvm.error("container.create", BAD_PARAMS, id="p2", spec=spec,
                                       root={"plan9": "p9rw", "subdir": "rootfs",
                                             "scratch": {"path": "/tmp"}})
        assert "no share" in cvm.error("container.create", NOT_FOUND, id="p2", spec=spec,
                                       root={"plan9": "nosuch"})
        spec = spec_of(images, ["/bin/sh", "-c", "echo from-ctr > /written; "
                                "grep -c ' / 9p ' /proc/mounts; cat /etc/layer-marker"])
        ex, out, err = run_plan9(cvm, tmp, "p2", spec, {"plan9": "p9rw", "subdir": "rootfs"})
        assert ex["exit_code"] == 0, (ex, out, err)
        assert out.split() == ["1", "from", "the", "layer"], (out, err)  # 9p is its root
        with open(os.path.join(bundle, "rootfs/written")) as w:
            assert w.read() == "from-ctr\n"
        assert cvm.ok("container.delete", timeout=LONG, id="p2") == {}
        mounts = guest_mounts(cvm, tmp)
        assert "/run/gcs/c/p1" not in mounts and "/run/gcs/c/p2" not in mounts, mounts
    finally:
        for name in ("p9ro", "p9rw"):
            cvm.call("plan9.remove", timeout=LONG, name=name)


def run_plan9(cvm, tmp, cid, spec, root):
    f = Fifos(tmp, cid)
    r = cvm.ok("container.create", timeout=LONG, id=cid, spec=spec, root=root, **f.paths)
    assert cvm.ok("container.start", timeout=LONG, id=cid) == {}
    out = Fifos.read_all(f.out, LONG).decode(errors="replace")
    err = Fifos.read_all(f.err, LONG).decode(errors="replace")
    ex = cvm.ok("container.wait", timeout=LONG, id=cid)
    assert ex["pid"] == r["pid"]
    return ex, out, err


def test_run_rootfs_command_in_a_container(paths, kvm, tmp):
    """`uvm-shim run --rootfs DIR -- CMD`: CMD in a container whose root is DIR (shared
    read-only over 9p, its writes in guest memory), stdin piped through, its status ours."""
    from test_run_cmd import run_cmd, why
    root = os.path.join(tmp, "root")
    make_rootfs(root, need_tools())
    st, out, err = run_cmd(paths.shim, [
        "--memory", "512", "--rootfs", root, "--",
        "/bin/sh", "-c", 'echo hi > /x; cat /x; hostname; echo $$; cat /etc/layer-marker; '
        'read line; echo "got $line"; exit 7'], input=b"from stdin\n")
    assert st == 7, why(st, out, err)
    assert out == b"hi\nuvm\n1\nfrom the layer\ngot from stdin\n", why(st, out, err)
    assert not os.path.exists(os.path.join(root, "x"))
    st, out, err = run_cmd(paths.shim, ["--memory", "512", "--rootfs", root, "--", "nosuch"])
    assert st == 127 and "nosuch" in err, why(st, out, err)
