"""A private Debian containerd (1.6) with a busybox-static image imported offline,
shared by tests/e2e/test_containerd.py and tests/bench/containerd.py
(docs/containerd.md): its own root, state and socket under one /tmp directory,
CRI off, `containerd-shim-uvm-v1` a link to the shim put first in its PATH."""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

RUNTIME = "io.containerd.uvm.v1"
RUNC_RUNTIME = "io.containerd.runc.v2"
IMAGE = "docker.io/library/uvm-busybox:1"
NS = "uvm-e2e"
# ctr run boots a VM and runs crun in it, all inside the TCG test host: slow.
LONG = 300
# The test host has no overlay module: the native snapshotter gives the shim bind mounts.
SNAPSHOTTER = os.environ.get("E2E_CTRD_SNAPSHOTTER", "native")


class Unavailable(Exception):
    """This machine lacks what a private containerd needs (the message says what)."""


def static_busybox():
    """The host's busybox if it is static, else None."""
    bb = shutil.which("busybox")
    if not bb or subprocess.run(["ldd", bb], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0:
        return None
    return bb


def blob(d, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(d, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def build_image(d, bb):
    """An OCI image layout tarball: one layer with busybox and its applets in /bin."""
    lay = os.path.join(d, "oci")
    os.makedirs(os.path.join(lay, "blobs", "sha256"))
    buf = io.BytesIO()
    applets = subprocess.run([bb, "--list"], stdout=subprocess.PIPE, check=True,
                             text=True).stdout.split()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for dname in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
            ti = tarfile.TarInfo(dname)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        t.add(bb, "bin/busybox")
        for a in applets:
            if a != "busybox":
                ti = tarfile.TarInfo("bin/" + a)
                ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
                t.addfile(ti)
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    layer = buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    lay_desc = dict(blob(lay, layer), mediaType="application/vnd.oci.image.layer.v1.tar")
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cfg_desc = dict(blob(lay, config), mediaType="application/vnd.oci.image.config.v1+json")
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg_desc, "layers": [lay_desc]}).encode()
    man_desc = dict(blob(lay, manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
                    annotations={"io.containerd.image.name": IMAGE,
                                 "org.opencontainers.image.ref.name": "1"},
                    platform={"architecture": "amd64", "os": "linux"})
    with open(os.path.join(lay, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [man_desc]}, f)
    with open(os.path.join(lay, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    out = os.path.join(d, "busybox-oci.tar")
    with tarfile.open(out, "w") as t:
        for name in sorted(os.listdir(lay)):
            t.add(os.path.join(lay, name), name)
    return out


class Containerd:
    def __init__(self, d, sock, env, proc, shim):
        self.d, self.sock, self.env, self.proc, self.shim = d, sock, env, proc, shim

    def ctr(self, *args, timeout=LONG, check=False, stdin=subprocess.DEVNULL):
        p = subprocess.run(["ctr", "-a", self.sock, "-n", NS, *args], stdin=stdin,
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, self.describe(args, p)
        return p

    def run(self, cid, *cmd, opts=(), runtime=RUNTIME, **kw):
        return self.ctr("run", "--rm", "--snapshotter", SNAPSHOTTER, "--runtime", runtime,
                        *opts, IMAGE, cid, *cmd, **kw)

    def log_tail(self, n=60):
        with open(os.path.join(self.d, "containerd.log"), errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:])

    def describe(self, args, p):
        return ("ctr %s: status %d\n--- stdout:\n%s\n--- stderr:\n%s\n--- containerd.log:\n%s"
                % (" ".join(args), p.returncode, p.stdout, p.stderr, self.log_tail()))

    def stop(self):
        """containerd stopped with SIGTERM (SIGKILL after 30 s); the shims it started run on."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def launch(self):
        """Starts containerd on this directory's config (again, after stop()) and waits until
        it answers; RuntimeError with its log tail when it does not come up. Its log is
        appended to, so a restart keeps what came before."""
        log = open(os.path.join(self.d, "containerd.log"), "a")
        self.proc = subprocess.Popen(["containerd", "--config",
                                      os.path.join(self.d, "config.toml"), "--log-level",
                                      "debug"], stdout=log, stderr=log, env=self.env,
                                     start_new_session=True)
        log.close()  # containerd holds its own copy of the fd
        for _ in range(600):
            if os.path.exists(self.sock) and self.ctr("version", timeout=30).returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited:\n" + self.log_tail())
            time.sleep(0.1)
        raise RuntimeError("containerd did not come up:\n" + self.log_tail())

    def restart(self):
        """containerd stopped with SIGTERM and started again on the same root and state."""
        self.stop()
        self.launch()

    def shim_pids(self, openers=False):
        """Processes running our binary: the daemons `start` leaves, and with openers=True
        also each daemon's helpers (forked children named `opener`, and `mounter` for a
        pod's sandbox)."""
        want = os.path.realpath(self.shim)
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.path.realpath("/proc/%s/exe" % pid) != want:
                    continue
                with open("/proc/%s/comm" % pid) as f:
                    if openers or f.read().strip() not in ("opener", "mounter"):
                        pids.append(int(pid))
            except OSError:
                pass
        return pids

    def mounts_under(self):
        with open("/proc/self/mountinfo") as f:
            return [l for l in f if (" " + self.d) in l]

    def cleanup(self, keep_log=None):
        """Stop containerd, kill what is left of our shims, unmount and remove the
        directory (kept with E2E_KEEP=1); containerd's log is copied into keep_log
        (a directory) first when that exists."""
        self.stop()
        if keep_log and os.path.isdir(keep_log):
            shutil.copy(os.path.join(self.d, "containerd.log"),
                        os.path.join(keep_log, "containerd.log"))
        for pid in self.shim_pids(openers=True):
            os.kill(pid, signal.SIGKILL)
        for line in reversed(self.mounts_under()):
            subprocess.run(["umount", "-l", line.split()[4]], stderr=subprocess.DEVNULL)
        if os.environ.get("E2E_KEEP"):
            print("containerd test directory kept: %s" % self.d)
        else:
            shutil.rmtree(self.d, ignore_errors=True)


def start(shim, guest_dir, vm_config, log_dir=None):
    """A private containerd with the busybox image imported, or Unavailable (why) when the
    machine lacks containerd, root or a static busybox; RuntimeError when containerd does
    not come up (its log tail in the message; everything cleaned up)."""
    for tool in ("containerd", "ctr"):
        if not shutil.which(tool):
            raise Unavailable("%s is not installed (apt-get install containerd)" % tool)
    if os.geteuid() != 0:
        raise Unavailable("containerd needs root")
    bb = static_busybox()
    if not bb:
        raise Unavailable("no static busybox on the host (apt-get install busybox-static)")
    d = tempfile.mkdtemp(prefix="uvm-ctrd-", dir="/tmp")
    bindir = os.path.join(d, "bin")
    os.makedirs(bindir)
    os.symlink(shim, os.path.join(bindir, "containerd-shim-uvm-v1"))
    sock = os.path.join(d, "containerd.sock")
    with open(os.path.join(d, "uvm.json"), "w") as f:
        json.dump(vm_config, f)
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                '[grpc]\n  address = "%s"\n' % (d, d, sock))
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               UVM_SHIM_CONFIG=os.path.join(d, "uvm.json"),
               UVM_SHIM_SOCKET_DIR=os.path.join(d, "s"), UVM_GUEST_DIR=guest_dir)
    open(os.path.join(d, "containerd.log"), "w").close()
    c = Containerd(d, sock, env, None, shim)
    try:
        c.launch()
        p = c.ctr("images", "import", "--snapshotter", SNAPSHOTTER, build_image(d, bb))
        if p.returncode:
            raise RuntimeError(c.describe(["images", "import"], p))
    except BaseException:
        c.cleanup(log_dir)
        raise
    return c
