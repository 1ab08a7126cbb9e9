"""guest.dump_stacks reports every thread of the GCS, not only its bridge
loop: while a scsi.add waits for a disk that does not appear, the storage
worker running it (gcs/storage.c, thread name scsi-add) is listed with its
frames beside the bridge thread.

The disk is kept from appearing as test_scsi_async.py does it: virtio
driver autoprobing is off in the guest, so the hot-added function is found
by the GCS's rescan but virtio_blk never binds it until the test probes it.
Needs a real /dev/kvm (`make e2e`)."""

import os
import re

# svm and tmp are test_scsi's fixtures: module-scoped, so this file gets a VM of its own.
from test_scsi import make_ext4, sh, svm, tmp  # noqa: F401
from test_scsi_async import PROBE_UNBOUND, unbound_virtio, wait_unbound

ADD_TIMEOUT_MS = 60000


def gcs_threads(text):
    """{tid: (name, [function names], why-no-frames)} from the "gcs" text."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"thread (\d+) \((.*)\) \S(:?)(.*)$", line)
        if m:
            cur = int(m.group(1))
            out[cur] = (m.group(2), [], m.group(4).strip())
            continue
        m = re.match(r"  #\d+ 0x[0-9a-f]+ (\S+?)(\+0x[0-9a-f]+)?$", line)
        if m and cur is not None:
            out[cur][1].append(m.group(1))
    return out


def test_gcs_stacks_list_a_waiting_storage_worker(svm, tmp):
    s = svm.ok("guest.dump_stacks")
    idle = gcs_threads(s["gcs"])
    print(s["gcs"])  # shown with pytest -s
    m = re.match(r"gcs pid (\d+): (\d+) threads?\n", s["gcs"])
    assert m and int(m.group(2)) == len(idle) >= 1, s["gcs"]
    bridge_tid = int(m.group(1))
    # The loop thread is named after the binary PID 1 runs as the bridge (/init).
    assert idle[bridge_tid][0] == "init" and "gcs_bridge_main" in idle[bridge_tid][1], s["gcs"]

    base = unbound_virtio(svm, tmp)
    img = os.path.join(tmp, "stk.img")
    make_ext4(img, label="stk")
    code, out, err = sh(svm, tmp, "echo 0 > /sys/bus/virtio/drivers_autoprobe")
    assert code == 0, (out, err)
    try:
        add_id = svm.send("scsi.add", controller=1, lun=7, host_path=img, read_only=False,
                          guest_path="/mnt/stk", fs_type="ext4", timeout_ms=ADD_TIMEOUT_MS)
        wait_unbound(svm, tmp, base + 1, [add_id])  # the GCS's worker is waiting now
        assert add_id not in svm.responses, svm.responses[add_id]
        s = svm.ok("guest.dump_stacks")
        print(s["gcs"])
        threads = gcs_threads(s["gcs"])
        assert add_id not in svm.responses, "the add ended during the dump"
    finally:
        sh(svm, tmp, PROBE_UNBOUND)
    m = re.match(r"gcs pid (\d+): (\d+) threads\n", s["gcs"])
    assert m and int(m.group(1)) == bridge_tid, s["gcs"]
    assert int(m.group(2)) == len(threads) >= 2, s["gcs"]
    assert "gcs_bridge_main" in threads[bridge_tid][1], s["gcs"]
    workers = [t for t, v in threads.items() if v[0] == "scsi-add"]
    assert len(workers) == 1, s["gcs"]
    name, fns, why = threads[workers[0]]
    assert not why and "job_main" in fns and "gcs_storage_add" in fns, s["gcs"]

    r = svm.wait_id(add_id, timeout=ADD_TIMEOUT_MS / 1000 + 30)
    assert "result" in r, "%r\n%s" % (r, svm.log())
    svm.ok("scsi.remove", timeout=120, controller=1, lun=7)
    # The worker has ended: the bridge thread alone again.
    s = svm.ok("guest.dump_stacks")
    assert re.match(r"gcs pid %d: 1 thread\n" % bridge_tid, s["gcs"]), s["gcs"]


def test_stdout_to_a_unix_socket(svm, tmp):
    """Process stdio to a Unix socket the parent listens on (shim/bridge_stdio.c
    connects with gcs/sock.c's sock_connect_unix, shared with the GCS's dial):
    the bytes arrive and EOF follows the process's end. Rides on this file's VM."""
    import socket
    path = os.path.join(tmp, "out.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    lst.settimeout(60)
    try:
        pid = svm.ok("guest.exec", argv=["sh", "-c", "echo via-socket; echo two"],
                     stdout=path)["pid"]
        c, _ = lst.accept()
        c.settimeout(60)
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.close()
    finally:
        lst.close()
    assert data == b"via-socket\ntwo\n", data
    st = svm.ok("process.wait", timeout=60, pid=pid)
    assert st["exit_code"] == 0, st
