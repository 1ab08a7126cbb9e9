"""`uvm-shim run -- CMD`: CMD runs in the default guest through the GCS
bridge, with uvm-shim's stdin, stdout and stderr (pipes, or a pty in the
guest when stdin is a terminal), and uvm-shim exits with CMD's status.

The console (kernel log, "uvm-gcs: ready") goes to stderr when a command is
given, so stdout holds exactly what CMD wrote."""

import fcntl
import hashlib
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import VM_TIMEOUT

READY = "uvm-gcs: ready"


@pytest.fixture
def shim(paths, kvm):
    return paths.shim


def run_cmd(shim, args, stdin=subprocess.DEVNULL, input=None, timeout=VM_TIMEOUT, env=None):
    """Runs `uvm-shim run ARGS` to its end; returns (status, stdout bytes, stderr text)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([shim, "run", *args], stdin=stdin if input is None else None,
                           input=input, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail("uvm-shim run %s did not end within %.0f s\n--- stderr (tail):\n%s" % (
            " ".join(args), timeout, (e.stderr or b"").decode(errors="replace")[-3000:]))
    err = p.stderr.decode(errors="replace")
    print("uvm-shim run %s: status %d in %.1f s" % (" ".join(args[-4:]), p.returncode,
                                                    time.monotonic() - t0))
    return p.returncode, p.stdout, err


def why(st, out, err):
    return "status %d\n--- stdout:\n%r\n--- stderr (tail):\n%s" % (
        st, out[-2000:], err[-3000:])


def test_stdin_is_piped_through_and_stdout_is_only_the_commands(shim):
    st, out, err = run_cmd(shim, ["--", "cat"], input=b"abc\n")
    assert st == 0, why(st, out, err)
    # Nothing but cat's output: the console went to stderr.
    assert out == b"abc\n", why(st, out, err)
    assert READY in err, why(st, out, err)


def test_a_mebibyte_through_cat_and_back(shim):
    # EOF on our stdin must reach cat, and no byte may be lost either way.
    data = os.urandom(1 << 20)
    st, out, err = run_cmd(shim, ["--", "cat"], input=data)
    assert st == 0, why(st, b"", err)
    assert len(out) == len(data), why(st, b"", err)
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()


def test_stdout_and_stderr_stay_apart_and_argv_is_not_reparsed(shim):
    # No shell between us and the program: blanks, $ and double quotes arrive as given.
    st, out, err = run_cmd(shim, ["--", "sh", "-c", 'echo "$1"; echo to-stderr >&2; exit 5',
                                  "sh", 'a  "b" $HOME'])
    assert st == 5, why(st, out, err)
    assert out == b'a  "b" $HOME\n', why(st, out, err)
    assert "to-stderr" in err, why(st, out, err)


def test_exit_status_of_a_process_killed_by_a_signal(shim):
    st, out, err = run_cmd(shim, ["--", "sh", "-c", "kill -USR1 $$"])
    assert st == 128 + signal.SIGUSR1, why(st, out, err)


def test_missing_and_unexecutable_programs(shim):
    st, out, err = run_cmd(shim, ["--", "/no/such/program", "arg"])
    assert st == 127, why(st, out, err)
    assert re.search(r"/no/such/program.*No such file or directory", err), why(st, out, err)
    assert out == b"", why(st, out, err)
    # Found but not executable (a 0444 file): 126, as a shell says.
    st, out, err = run_cmd(shim, ["--", "/proc/cmdline"])
    assert st == 126, why(st, out, err)
    assert "Permission denied" in err, why(st, out, err)


def test_console_on_stdout_when_asked(shim):
    st, out, err = run_cmd(shim, ["--console", "stdio", "--", "echo", "E2E-MIXED=1"])
    assert st == 0, why(st, out, err)
    text = out.decode(errors="replace").replace("\r", "")
    assert READY in text and "E2E-MIXED=1\n" in text, why(st, out, err)


def read_until(proc_out, pattern, deadline):
    """Reads proc_out (a pipe of the shim's stdout) until pattern shows up."""
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc_out], [], [], 1.0)
        if r:
            chunk = os.read(proc_out.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if pattern in buf:
                return buf
    return buf


def test_a_signal_to_uvm_shim_reaches_the_command(shim):
    # The first SIGTERM goes to the guest process group: sleep dies of it, so does sh.
    p = subprocess.Popen([shim, "run", "--", "sh", "-c", "echo E2E-STARTED; sleep 1000; "
                          "echo not-reached"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out = read_until(p.stdout, b"E2E-STARTED\n", time.monotonic() + VM_TIMEOUT)
        assert b"E2E-STARTED" in out, out
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = err.decode(errors="replace")
    assert p.returncode == 128 + signal.SIGTERM, why(p.returncode, out + rest, err)
    assert b"not-reached" not in rest, why(p.returncode, out + rest, err)
    # It went the graceful way: forwarded, then the guest powered off.
    assert "forwarded" in err, why(p.returncode, out + rest, err)
    assert "bridge ended" in err, why(p.returncode, out + rest, err)


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Pty:
    """uvm-shim on a pseudo-terminal of ours, as in an interactive shell."""

    def __init__(self, argv, term=None):
        self.master, self.slave = os.openpty()
        set_winsize(self.slave, 30, 100)
        self.saved = termios.tcgetattr(self.slave)
        # Its own session with the pty as controlling terminal: SIGWINCH reaches it.
        self.proc = subprocess.Popen(
            argv, stdin=self.slave, stdout=self.slave, stderr=self.slave,
            start_new_session=True,
            env=dict(os.environ, TERM=term) if term else None,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        self.out = b""

    def expect(self, pattern, timeout):
        """Reads until the regex pattern (bytes, . matching newlines too) matches the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.out, re.S)
            if m:
                return m
            r, _, _ = select.select([self.master], [], [], 1.0)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:  # EIO: every slave end closed
                    break
        m = re.search(pattern, self.out, re.S)
        assert m, "no %r in the pty output within %.0f s:\n%s" % (
            pattern, timeout, self.out.decode(errors="replace")[-3000:])
        return m

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_tty_session_window_size_resize_and_ctrl_c(shim):
    script = ("echo E2E-TERM=$TERM; tty; stty size; echo E2E-R1; "
              "trap 'stty size; echo E2E-R2' WINCH; "
              "trap 'echo E2E-GOT-INT; exit 7' INT; "
              "while :; do sleep 1; done")
    t = Pty([shim, "run", "--", "sh", "-c", script], term="e2e-term-42")
    try:
        m = t.expect(rb"(/dev/pts/\d+)\r?\n(\d+) (\d+)\r?\nE2E-R1", VM_TIMEOUT)
        assert m.group(2, 3) == (b"30", b"100"), t.out
        # Our TERM reached the guest process (its terminfo need not exist there).
        assert b"E2E-TERM=e2e-term-42" in t.out, t.out
        # While CMD runs, our terminal is raw: keys (Ctrl-C too) go to the guest as bytes.
        lflag = termios.tcgetattr(t.slave)[3]
        assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG), hex(lflag)
        set_winsize(t.slave, 40, 120)  # the kernel sends SIGWINCH to uvm-shim
        m = t.expect(rb"E2E-R1.*?(\d+) (\d+)\r?\nE2E-R2", 60)
        assert m.group(1, 2) == (b"40", b"120"), t.out
        os.write(t.master, b"\x03")
        t.expect(rb"E2E-GOT-INT", 60)
        assert t.proc.wait(timeout=120) == 7, t.out
        # The guest's pty got the byte: uvm-shim itself was never interrupted.
        assert b"forwarded" not in t.out, t.out
        # Our terminal is as it was.
        assert termios.tcgetattr(t.slave) == t.saved
    finally:
        t.close()


def test_no_tty_forces_pipes_on_a_terminal(shim):
    t = Pty([shim, "run", "--no-tty", "--", "sh", "-c",
             "if [ -t 0 ]; then echo E2E-TTY=yes; else echo E2E-TTY=no; fi"])
    try:
        t.expect(rb"E2E-TTY=(yes|no)", VM_TIMEOUT)
        assert t.proc.wait(timeout=120) == 0, t.out
        assert b"E2E-TTY=no" in t.out, t.out
        assert termios.tcgetattr(t.slave) == t.saved
    finally:
        t.close()
