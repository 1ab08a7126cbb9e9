"""scsi.add no longer stalls the guest agent: while the GCS waits for a disk
that is slow to appear, an exec (and its wait) is answered.

How the disk is made slow, honestly and without a test hook in the GCS: the
guest turns driver autoprobing off on the virtio bus
(`/sys/bus/virtio/drivers_autoprobe`; the PCI bus would not do: a function
found by a rescan is attached whatever its bus's setting) before the add.
The shim hot-adds the function, the GCS's rescan finds it and virtio-pci
binds it, but virtio_blk does not bind the virtio device, so no
/sys/block/vdX with the disk's serial shows up: the GCS keeps waiting, as it
would for a slow guest. Meanwhile an exec must answer. Then an exec turns
autoprobing back on and probes the unbound virtio devices: the disk
appears, the GCS mounts it and the scsi.add answers.
With the old synchronous storage code the first exec would not be answered
until the add timed out (60 s here), so this test fails on it.
Needs a real /dev/kvm (`make e2e`)."""

import os
import time

import pytest

# svm and tmp are test_scsi's fixtures: module-scoped, so this file still gets a VM of its own.
from test_scsi import make_ext4, sh, svm, tmp  # noqa: F401

BUSY = -32004
ADD_TIMEOUT_MS = 60000


PROBE_UNBOUND = ("echo 1 > /sys/bus/virtio/drivers_autoprobe; "
                 "for d in /sys/bus/virtio/devices/*; do "
                 "[ -e $d/driver ] || echo ${d##*/} > /sys/bus/virtio/drivers_probe 2>/dev/null; "
                 "done; true")
VIRTIO_BLK = "0x0002"  # /sys/bus/virtio/devices/*/device of a block device


def unbound_virtio(svm, tmp):
    """How many virtio block devices have no driver bound."""
    code, out, _ = sh(svm, tmp, "for d in /sys/bus/virtio/devices/*; do "
                                "[ -e $d/driver ] || cat $d/device; done")
    assert code == 0
    return out.split().count(VIRTIO_BLK)


def wait_unbound(svm, tmp, want, ids):
    deadline = time.monotonic() + 30
    while unbound_virtio(svm, tmp) < want:
        if time.monotonic() > deadline or any(i in svm.responses for i in ids):
            _, out, _ = sh(svm, tmp, "for d in /sys/bus/virtio/devices/*; do "
                                     "echo $d $(cat $d/device) $(readlink $d/driver); "
                                     "done; ls /sys/block; cat /sys/bus/virtio/drivers_autoprobe")
            pytest.fail("the disk's PCI function did not show up unbound\n%s\nanswers %r\n%s"
                        % (out, {i: svm.responses.get(i) for i in ids}, svm.log()))
        time.sleep(0.5)


def test_exec_answers_while_a_disk_is_awaited(svm, tmp):
    base = unbound_virtio(svm, tmp)
    img = os.path.join(tmp, "slow.img")
    make_ext4(img, label="slow")
    code, out, err = sh(svm, tmp, "echo 0 > /sys/bus/virtio/drivers_autoprobe && "
                                  "cat /sys/bus/virtio/drivers_autoprobe")
    assert code == 0 and out.strip() == "0", (out, err)
    try:
        add_id = svm.send("scsi.add", controller=2, lun=5, host_path=img, read_only=False,
                          guest_path="/mnt/slow", fs_type="ext4", timeout_ms=ADD_TIMEOUT_MS)
        # Let the shim hot-add the function and the GCS start its wait (rescan done,
        # no driver bound): the add must still be pending afterwards.
        wait_unbound(svm, tmp, base + 1, [add_id])  # found by the rescan, no virtio_blk: ours
        assert add_id not in svm.responses, svm.responses[add_id]

        # The point: requests are served while the GCS waits for the disk.
        t0 = time.monotonic()
        code, out, err = sh(svm, tmp, "echo hi", timeout=30)
        took = time.monotonic() - t0
        assert code == 0 and out == "hi\n", (code, out, err)
        assert add_id not in svm.responses, "the add ended before the exec: %r" % \
            svm.responses[add_id]
        assert took < 20, "an exec took %.1f s while a disk was awaited" % took
        # The host refuses a remove of a disk it is still adding.
        svm.error("scsi.remove", BUSY, controller=2, lun=5)
    finally:
        code, out, err = sh(svm, tmp, PROBE_UNBOUND)
    # Probed now: the GCS finds the disk, mounts it, and answers the add.
    r = svm.wait_id(add_id, timeout=ADD_TIMEOUT_MS / 1000 + 30)
    assert "result" in r, "%r\n%s" % (r, svm.log())
    dev = r["result"]["device"]
    assert dev.startswith("/dev/vd"), r
    code, out, _ = sh(svm, tmp, "cat /proc/mounts")
    assert "%s /mnt/slow ext4" % dev in out, out
    svm.ok("scsi.remove", timeout=120, controller=2, lun=5)
    code, out, _ = sh(svm, tmp, "cat /proc/mounts")
    assert "/mnt/slow " not in out, out


def test_two_disks_in_parallel_and_an_exec(svm, tmp):
    """Two adds awaited at once, both answered once probed; exec answered meanwhile."""
    imgs = []
    for i in range(2):
        imgs.append(os.path.join(tmp, "p%d.img" % i))
        make_ext4(imgs[-1], label="p%d" % i)
    base = unbound_virtio(svm, tmp)
    code, _, _ = sh(svm, tmp, "echo 0 > /sys/bus/virtio/drivers_autoprobe")
    assert code == 0
    try:
        ids = [svm.send("scsi.add", controller=3, lun=i, host_path=imgs[i], read_only=False,
                        guest_path="/mnt/p%d" % i, timeout_ms=ADD_TIMEOUT_MS) for i in range(2)]
        wait_unbound(svm, tmp, base + 2, ids)
        code, out, _ = sh(svm, tmp, "echo still-serving", timeout=30)
        assert out == "still-serving\n"
        assert not any(i in svm.responses for i in ids)
    finally:
        sh(svm, tmp, PROBE_UNBOUND)
    devs = set()
    for rid in ids:
        r = svm.wait_id(rid, timeout=ADD_TIMEOUT_MS / 1000 + 30)
        assert "result" in r, "%r\n%s" % (r, svm.log())
        devs.add(r["result"]["device"])
    assert len(devs) == 2, devs
    for i in range(2):
        svm.ok("scsi.remove", timeout=120, controller=3, lun=i)


# ---- the GCS alone, against a fake host ----------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GCS = os.path.join(REPO, "build", "gcs", "gcs")
BRIDGE_PORT, LOG_PORT = 0x40000000, 109
NEGOTIATE, PROPERTIES = 0x10100101, 0x10100301
SCSI_ADD, SCSI_REMOVE = 0x10300101, 0x10300201
EBUSY, ETIMEDOUT = 16, 110


class FakeHost:
    """The host side of the bridge over the GCS's Unix-socket test mode
    (UVM_GCS_UNIX=BASE: the GCS dials BASE_<port> instead of vsock)."""

    def __init__(self, base):
        import socket
        self.listeners = {}
        for port in (BRIDGE_PORT, LOG_PORT):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("%s_%d" % (base, port))
            s.listen(1)
            s.settimeout(20)
            self.listeners[port] = s
        self.conn = None
        self.buf = b""

    def accept(self):
        self.conn, _ = self.listeners[BRIDGE_PORT].accept()
        self.conn.settimeout(30)

    def send(self, rid, typ, body):
        import json
        import struct
        data = json.dumps(body).encode()
        self.conn.sendall(struct.pack("<IIQ", typ, 16 + len(data), rid) + data)

    def recv(self):
        """(type, id, body, arrival time) of the next message."""
        import json
        import struct
        while True:
            if len(self.buf) >= 16:
                typ, size, rid = struct.unpack("<IIQ", self.buf[:16])
                if len(self.buf) >= size:
                    body, self.buf = self.buf[16:size], self.buf[size:]
                    return typ, rid, json.loads(body), time.monotonic()
            chunk = self.conn.recv(65536)
            assert chunk, "the GCS closed the bridge"
            self.buf += chunk

    def close(self):
        if self.conn:
            self.conn.close()
        for s in self.listeners.values():
            s.close()


def test_gcs_overlapping_ops_on_one_serial_and_a_request_meanwhile(kvm, tmp):
    """The GCS's own rules, without a VM: while an add waits for a disk that
    never comes, a remove of the same serial is refused at once with -EBUSY,
    another request is answered, and the add ends with -ETIMEDOUT after its
    timeout; then the serial is free again. The GCS rescans the PCI bus of
    the machine it runs on, so this runs only where the kvm fixture says we
    are in the test host (a throwaway machine), as root."""
    import subprocess
    if os.geteuid() != 0 or not os.path.exists("/sys/bus/pci/rescan"):
        pytest.skip("needs root and /sys/bus/pci/rescan (the GCS rescans the bus)")
    if not os.path.exists(GCS):
        pytest.skip("%s is not built (make guest)" % GCS)
    base = os.path.join(tmp, "h")
    host = FakeHost(base)
    log = open(os.path.join(tmp, "gcs.log"), "w")
    env = dict(os.environ, UVM_GCS_UNIX=base)
    gcs = subprocess.Popen([GCS, "bridge"], env=env, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=log)
    try:
        host.accept()
        host.send(1, NEGOTIATE, {"min_version": 1, "max_version": 1, "capabilities": []})
        typ, rid, body, _ = host.recv()
        assert (typ, rid, body["status"]) == (NEGOTIATE & 0x0fffffff | 2 << 28, 1, 0), body
        serial = "uvm-test-absent"
        t_add = time.monotonic()
        host.send(2, SCSI_ADD, {"serial": serial, "timeout_ms": 4000})
        host.send(3, SCSI_REMOVE, {"serial": serial, "timeout_ms": 1000})
        host.send(4, PROPERTIES, {"processes": True, "memory": True})
        got = {}
        while 2 not in got:
            typ, rid, body, t = host.recv()
            got[rid] = (body, t)
        # Answered before the add ended: the refused remove and the properties.
        assert 3 in got and 4 in got, got
        assert got[3][0]["status"] == -EBUSY, got[3]
        assert "still running" in got[3][0]["error"], got[3]
        assert got[4][0]["status"] == 0 and got[4][1] < got[2][1], got
        assert got[3][1] - t_add < 2.0, "the refusal took %.1f s" % (got[3][1] - t_add)
        add = got[2][0]
        assert add["status"] == -ETIMEDOUT and serial in add["error"], add
        assert got[2][1] - t_add >= 3.9, "the add gave up early"
        # The serial is free again: a remove now runs (the disk is not there: ok).
        host.send(5, SCSI_REMOVE, {"serial": serial, "timeout_ms": 1000})
        typ, rid, body, _ = host.recv()
        assert (rid, body["status"]) == (5, 0), body
    finally:
        host.close()  # the GCS ends when the host goes away
        try:
            rc = gcs.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gcs.kill()
            rc = gcs.wait()
        log.close()
    with open(os.path.join(tmp, "gcs.log")) as f:
        out = f.read()
    assert rc == 0, "gcs exited with %s:\n%s" % (rc, out)
